// ledger-benchmark: prints the numbers behind our speed and memory targets. Always run it from
// a release build: `swift run -c release ledger-benchmark [state-machine|checksum|all]`.
import Glibc

let usage = """
    usage: ledger-benchmark [state-machine | checksum | lsm | wal | forest | replica | all] [--batches=N] [--accounts=N]
                            [--directory=PATH] [--prepares=N] [--transfers=N] [--lookup-batches=N]
      state-machine  prefetch+execute throughput of create_transfers batches of 8189 over
                     10 000 and 1 000 000 accounts, batch latency, heap allocations per batch
      checksum       AEGIS-128L checksum throughput (1 MiB) and latency (128 and 240 bytes)
      lsm            one LSM tree on a real file: batches of 8189 puts with a compaction beat
                     each (object tree and index tree), then random lookups
      wal            1 MiB prepares appended through the journal (io_uring, O_DIRECT|O_DSYNC)
                     against a pwrite+fdatasync loop on the same file: MiB/s and ratio
      forest         the state machine on the LSM forest on a real file (production geometry and
                     caches): N accounts, then transfers in batches of 8189 with a compaction
                     beat and checkpoints; transfers/s, batch latency over time, lookups/s, RSS.
                     Not part of `all` (10 M transfers take minutes and ~15 GiB of disk).
      replica        the server's request path in one process (data file, io_uring, replica,
                     an in-process bus, one client): N accounts, N transfers in requests of
                     8189, then 20 000 single-transfer requests; transfers/s, request latency,
                     heap allocations per request, RSS. Not part of `all`.
      --batches=N    timed batches per configuration (default 40; lsm: 250)
      --directory=PATH  where the wal benchmark creates its 1.1 GiB file (default: .);
                     must support direct IO (not tmpfs)
      --prepares=N   prepares per wal round (1...1000, default 300; 9 rounds)
      --accounts=N   run the state-machine benchmark over N accounts only (2...10000000);
                     forest: accounts created (default 100000); replica: (default 10000)
      --transfers=N  forest: transfers created (default 10000000); replica: (default 1000000)
      --lookup-batches=N  forest: lookup_transfers batches of 8189 random ids (default 10)
    """

/// Writes one line to standard error (the `stderr` global is not concurrency-safe in Swift 6).
func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

/// Parses the command line; prints one clear line and exits non-zero on bad arguments.
func parseArguments() -> (
    workload: String, batches: Int, accounts: [Int], directory: String, prepares: Int, transfers: Int,
    lookupBatches: Int, accountsGiven: Bool, transfersGiven: Bool
) {
    var workload = "all"
    var directory = "."
    var prepares = 300
    var batches: Int? = nil
    var accounts = [10_000, 1_000_000]
    var accountsGiven = false
    var transfers = 10_000_000
    var transfersGiven = false
    var lookupBatches = 10
    for argument in CommandLine.arguments.dropFirst() {
        if argument == "--help" || argument == "-h" {
            print(usage)
            exit(0)
        } else if argument.hasPrefix("--batches=") {
            guard let value = Int(argument.dropFirst("--batches=".count)), value > 0, value <= 10_000 else {
                printError("ledger-benchmark: --batches needs an integer in 1...10000, got '\(argument)'")
                exit(2)
            }
            batches = value
        } else if argument.hasPrefix("--accounts=") {
            guard let value = Int(argument.dropFirst("--accounts=".count)), value >= 2, value <= 10_000_000 else {
                printError("ledger-benchmark: --accounts needs an integer in 2...10000000, got '\(argument)'")
                exit(2)
            }
            accounts = [value]
            accountsGiven = true
        } else if argument.hasPrefix("--transfers=") {
            guard let value = Int(argument.dropFirst("--transfers=".count)), value >= 1, value <= 100_000_000 else {
                printError("ledger-benchmark: --transfers needs an integer in 1...100000000, got '\(argument)'")
                exit(2)
            }
            transfers = value
            transfersGiven = true
        } else if argument.hasPrefix("--lookup-batches=") {
            guard let value = Int(argument.dropFirst("--lookup-batches=".count)), value >= 0, value <= 10_000 else {
                printError("ledger-benchmark: --lookup-batches needs an integer in 0...10000, got '\(argument)'")
                exit(2)
            }
            lookupBatches = value
        } else if argument.hasPrefix("--directory=") {
            directory = String(argument.dropFirst("--directory=".count))
            guard !directory.isEmpty else {
                printError("ledger-benchmark: --directory needs a path")
                exit(2)
            }
        } else if argument.hasPrefix("--prepares=") {
            // At most 1000: ops up to op_prepare_max (1007) fit the first WAL wrap without a
            // checkpoint, which this benchmark does not run.
            guard let value = Int(argument.dropFirst("--prepares=".count)), value >= 1, value <= 1000 else {
                printError("ledger-benchmark: --prepares needs an integer in 1...1000, got '\(argument)'")
                exit(2)
            }
            prepares = value
        } else if ["state-machine", "checksum", "wal", "lsm", "forest", "replica", "all"].contains(argument) {
            workload = argument
        } else {
            printError("ledger-benchmark: unknown argument '\(argument)' (see --help)")
            exit(2)
        }
    }
    return (workload, batches ?? -1, accounts, directory, prepares, transfers, lookupBatches, accountsGiven, transfersGiven)
}

let arguments = parseArguments()
#if DEBUG
print("warning: debug build; numbers are meaningless (use swift run -c release ledger-benchmark)")
#endif
if arguments.workload == "state-machine" || arguments.workload == "all" {
    runStateMachineBenchmark(accounts: arguments.accounts, batches: arguments.batches > 0 ? arguments.batches : 40)
}
if arguments.workload == "checksum" || arguments.workload == "all" || arguments.workload == "wal" {
    runChecksumBenchmark()
}
if arguments.workload == "lsm" || arguments.workload == "all" {
    runLSMBenchmark(directory: arguments.directory, batches: arguments.batches > 0 ? arguments.batches : 250)
}
if arguments.workload == "wal" || arguments.workload == "all" {
    runWALBenchmark(directory: arguments.directory, prepareCount: arguments.prepares, inFlight: 8, rounds: 9)
}
if arguments.workload == "forest" {
    runForestBenchmark(
        directory: arguments.directory, transferCount: arguments.transfers,
        accountCount: arguments.accountsGiven ? arguments.accounts[0] : 100_000, lookupBatches: arguments.lookupBatches)
}
if arguments.workload == "replica" {
    runReplicaBenchmark(
        directory: arguments.directory, transferCount: arguments.transfersGiven ? arguments.transfers : 1_000_000,
        accountCount: arguments.accountsGiven ? arguments.accounts[0] : 10_000)
}
