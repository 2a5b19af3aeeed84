// The WAL benchmark: 1 MiB prepares appended through the journal on io_uring (O_DIRECT|O_DSYNC,
// several writes in flight, each prepare sealed with its checksums as a primary does), against
// a plain `pwrite` + `fdatasync` loop on the same file in the same run. Both make every prepare
// durable before counting it. Rounds alternate between the two so that the device's mood
// (this is a VM) affects both alike; the medians are compared.
//
// Fairness: both write the same WAL-prepares range of the same file. An untimed pass writes the
// range once first, so that neither side pays for the filesystem converting preallocated
// (unwritten) extents. The plain loop leaves garbage in the prepare slots, so the WAL is
// reformatted (untimed) before each journal round.

import Glibc
import LedgerIO
import LedgerKit
import LedgerVSR

struct WALRoundResult {
    var seconds: Double
    var latenciesNs: [UInt64]
}

func runWALBenchmark(directory: String, prepareCount: Int, inFlight: Int, rounds: Int) {
    let layout = DataFileLayout(.production)
    let path = createBenchmarkDataFile(directory: directory, name: "wal", layout: layout)
    defer { _ = unlink(path) }
    let megabytes = Double(prepareCount * Constants.messageSizeMax) / Double(1 << 20)
    print("wal: \(prepareCount) prepares of 1 MiB per round, \(rounds) rounds, file \(path)")

    _ = appendWithPwriteFdatasync(path: path, layout: layout, prepareCount: prepareCount)
    // Solo: the journal queues the pipeline's prepares and writes them one at a time (only the
    // redundant header overlaps the next prepare). Cluster: a backup's journal writes the
    // pipeline's prepares concurrently.
    var soloRates: [Double] = []
    var clusterRates: [Double] = []
    var plainRates: [Double] = []
    var soloLatencies: [UInt64] = []
    for round in 1...rounds {
        reformatWAL(path: path, layout: layout)
        let solo = appendThroughJournal(
            path: path, layout: layout, prepareCount: prepareCount, inFlight: inFlight, replicaCount: 1)
        reformatWAL(path: path, layout: layout)
        let cluster = appendThroughJournal(
            path: path, layout: layout, prepareCount: prepareCount, inFlight: inFlight, replicaCount: 3)
        let plain = appendWithPwriteFdatasync(path: path, layout: layout, prepareCount: prepareCount)
        soloRates.append(megabytes / solo.seconds)
        clusterRates.append(megabytes / cluster.seconds)
        plainRates.append(megabytes / plain.seconds)
        soloLatencies.append(contentsOf: solo.latenciesNs)
        print("  round \(round): journal solo \(formatFixed(megabytes / solo.seconds, digits: 0)) MiB/s, "
            + "journal cluster \(formatFixed(megabytes / cluster.seconds, digits: 0)) MiB/s, "
            + "pwrite+fdatasync \(formatFixed(megabytes / plain.seconds, digits: 0)) MiB/s")
    }
    let soloMedian = median(soloRates)
    let clusterMedian = median(clusterRates)
    let plainMedian = median(plainRates)
    soloLatencies.sort()
    func percentile(_ p: Double) -> String {
        let index = min(soloLatencies.count - 1, Int(Double(soloLatencies.count) * p))
        return formatFixed(Double(soloLatencies[index]) / 1e6, digits: 2)
    }
    print("wal journal solo (io_uring, O_DIRECT|O_DSYNC, \(inFlight) queued, prepares one at a time): "
        + "\(formatFixed(soloMedian, digits: 0)) MiB/s = \(formatFixed(soloMedian, digits: 0)) prepares/s (median); "
        + "submit-to-durable latency with \(inFlight) queued p50 \(percentile(0.5)) ms p99 \(percentile(0.99)) ms max \(percentile(1.0)) ms")
    print("wal journal cluster replica (\(inFlight) prepares in flight): \(formatFixed(clusterMedian, digits: 0)) MiB/s (median)")
    print("wal pwrite+fdatasync loop (buffered, 1 in flight): \(formatFixed(plainMedian, digits: 0)) MiB/s (median)")
    print("wal ratio journal/plain: solo \(formatFixed(soloMedian / plainMedian, digits: 2)), "
        + "cluster \(formatFixed(clusterMedian / plainMedian, digits: 2)) (target >= 0.9)")
}

/// Writes a fresh WAL (header ring and reserved slots) over whatever the plain loop left.
private func reformatWAL(path: String, layout: DataFileLayout) {
    let (file, io, storage) = openBenchmarkDataFile(path: path, layout: layout)
    defer { file.close() }
    var done = false
    JournalFormatter.format(storage: storage, cluster: 1, release: Constants.release) { done = true }
    guard io.run(until: { done }, timeoutNs: 60 * 1_000_000_000) else {
        printError("ledger-benchmark: reformatting the WAL did not finish within 60 s")
        exit(1)
    }
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Appends ops 1…prepareCount through a freshly recovered journal, `inFlight` at a time.
private func appendThroughJournal(
    path: String, layout: DataFileLayout, prepareCount: Int, inFlight: Int, replicaCount: Int
) -> WALRoundResult {
    let (file, io, storage) = openBenchmarkDataFile(path: path, layout: layout)
    defer { file.close() }
    let journal = Journal(storage: storage, cluster: 1)
    var recovered = false
    journal.recover(opCheckpoint: 0, replicaCount: replicaCount) { result in
        if case .failure(let error) = result {
            printError("ledger-benchmark: journal recovery failed: \(error)")
            exit(1)
        }
        recovered = true
    }
    _ = io.run(until: { recovered }, timeoutNs: 600 * 1_000_000_000)

    // One 1 MiB message buffer per write in flight, filled once with pseudo-random bytes; each
    // append changes the first body word so every prepare has its own checksums.
    let buffers = (0..<inFlight).map { _ in AlignedBuffer(count: Constants.messageSizeMax) }
    var prng = PRNG(seed: 42)
    for buffer in buffers {
        for index in stride(from: 0, to: buffer.count, by: 8) {
            buffer.bytes.storeBytes(of: prng.next(), toByteOffset: index, as: UInt64.self)
        }
    }
    var parent: UInt128 = journal.header(op: 0)?.frame.checksum ?? 0
    var nextOp: UInt64 = 1
    var completed = 0
    var startNs = [UInt64](repeating: 0, count: inFlight)
    var latencies: [UInt64] = []
    latencies.reserveCapacity(prepareCount)
    let clock = SystemClock()

    var submit: ((Int) -> Void)!
    submit = { index in
        let buffer = buffers[index]
        let body = UnsafeRawBufferPointer(rebasing: buffer.bytes[Constants.messageHeaderSize...])
        buffer.bytes.storeBytes(of: nextOp, toByteOffset: Constants.messageHeaderSize, as: UInt64.self)
        var header = PrepareHeader()
        header.frame.cluster = 1
        header.frame.size = UInt32(Constants.messageSizeMax)
        header.frame.release = Constants.release
        header.op = nextOp
        header.commit = nextOp - 1
        header.parent = parent
        header.timestamp = nextOp
        header.operation = Operation.createTransfers.rawValue
        header.seal(body: body)
        buffer.bytes.storeBytes(of: header, toByteOffset: 0, as: PrepareHeader.self)
        parent = header.frame.checksum
        nextOp += 1
        startNs[index] = clock.monotonicNs()
        journal.write(prepare: UnsafeRawBufferPointer(buffer.bytes)) { _ in
            latencies.append(clock.monotonicNs() - startNs[index])
            completed += 1
            if nextOp <= UInt64(prepareCount) { submit(index) }
        }
    }
    let begin = clock.monotonicNs()
    for index in 0..<min(inFlight, prepareCount) { submit(index) }
    let finished = io.run(until: { completed == prepareCount }, timeoutNs: 600 * 1_000_000_000)
    let seconds = Double(clock.monotonicNs() - begin) / 1e9
    precondition(finished, "the journal benchmark completes within 10 minutes")
    submit = nil
    return WALRoundResult(seconds: seconds, latenciesNs: latencies)
}

/// Writes the same amount through the page cache, one `pwrite` + `fdatasync` per prepare.
private func appendWithPwriteFdatasync(path: String, layout: DataFileLayout, prepareCount: Int) -> WALRoundResult {
    let fd = open(path, O_RDWR | O_CLOEXEC)
    guard fd >= 0 else {
        printError("ledger-benchmark: cannot open \(path) for the pwrite loop (errno \(errno))")
        exit(1)
    }
    defer { close(fd) }
    let buffer = AlignedBuffer(count: Constants.messageSizeMax)
    var prng = PRNG(seed: 43)
    for index in stride(from: 0, to: buffer.count, by: 8) {
        buffer.bytes.storeBytes(of: prng.next(), toByteOffset: index, as: UInt64.self)
    }
    let clock = SystemClock()
    let slots = layout.configuration.journalSlotCount
    let base = layout.offset(of: .walPrepares)
    let begin = clock.monotonicNs()
    for op in 1...prepareCount {
        let offset = base + layout.walPrepareOffset(slot: op % slots)
        var done = 0
        while done < buffer.count {
            let written = pwrite(fd, buffer.bytes.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            guard written > 0 else {
                printError("ledger-benchmark: pwrite failed (errno \(errno))")
                exit(1)
            }
            done += written
        }
        guard fdatasync(fd) == 0 else {
            printError("ledger-benchmark: fdatasync failed (errno \(errno))")
            exit(1)
        }
    }
    return WALRoundResult(seconds: Double(clock.monotonicNs() - begin) / 1e9, latenciesNs: [])
}
