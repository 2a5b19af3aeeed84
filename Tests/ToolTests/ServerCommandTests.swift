import Foundation
import LedgerIO
import LedgerKit
import Testing

/// The `ledger` binary as an operator meets it: `version`, the reasons it refuses to start (one
/// line each, non-zero exit), and a start followed by a clean stop on SIGTERM / SIGINT.
@Suite struct ServerCommandTests {
    static func ledger(_ arguments: [String]) throws -> ToolResult {
        try Tools.run(Tools.path(of: "ledger"), arguments)
    }

    @Test func versionPrintsTheRelease() throws {
        let result = try Self.ledger(["version"])
        #expect(result.exited(0), "\(result.summary)")
        #expect(result.stdout == "ledger 0.17.9\n")
        let verbose = try Self.ledger(["version", "--verbose"])
        #expect(verbose.exited(0), "\(verbose.summary)")
        #expect(verbose.stdout.contains("batch_size_limit=1048320"))
        #expect(verbose.stdout.contains("clients_max=64"))
    }

    @Test(arguments: [
        (["start", "/tmp/x"], "--addresses"),
        (["start", "--addresses=3000,3001", "/tmp/x"], "one-replica"),
        (["start", "--addresses=host:port:x", "/tmp/x"], "not an address"),
        (["start", "--addresses=70000", "/tmp/x"], "not an address"),
        (["start", "--addresses=3000", "--cache-grid=12345", "/tmp/x"], "multiple of the block size"),
        (["start", "--addresses=3000", "--cache-grid=lots", "/tmp/x"], "--cache-grid"),
        (["start", "--addresses=3000", "--cache-grid=512KiB", "/tmp/x"], "between"),
        (["start", "--addresses=3000", ""], "<path>"),
        (["stop"], "stop"),
    ])
    func badArgumentsAreOneLineAndExit64(arguments: [String], mention: String) throws {
        let result = try Self.ledger(arguments)
        #expect(result.exited(64), "\(result.summary)")
        #expect(result.stderrLines.count == 1, "\(result.summary)")
        #expect(result.stderr.hasPrefix("ledger: error: "), "\(result.summary)")
        #expect(result.stderr.contains(mention), "\(result.summary)")
    }

    @Test func refusesWhatItCannotServe() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }

        // A missing file.
        var result = try Self.ledger(["start", "--addresses=3999", "\(directory)/missing.ledger"])
        #expect(result.exited(1), "\(result.summary)")
        #expect(result.stderr.contains("data file not found"), "\(result.summary)")

        // A file of the right size that is not a data file (all zeros).
        let zeros = "\(directory)/zeros.ledger"
        try Fixture.makeSparseFile(zeros, sizeBytes: Fixture.layout.sizeMin)
        result = try Self.ledger(["start", "--addresses=3999", zeros])
        #expect(result.exited(1), "\(result.summary)")
        #expect(result.stderr.contains("not a Ledger data file"), "\(result.summary)")
        #expect(!result.signaled)

        // A file another process holds.
        let held = "\(directory)/held.ledger"
        try Fixture.format(held)
        let lock = try DataFile.open(path: held, layout: Fixture.layout, mode: .readWrite)
        result = try Self.ledger(["start", "--addresses=3999", held])
        lock.close()
        #expect(result.exited(1), "\(result.summary)")
        #expect(result.stderr.contains("locked"), "\(result.summary)")

        // A data file of a larger cluster.
        let member = "\(directory)/member.ledger"
        try Fixture.format(member, replica: 1, replicaCount: 3)
        result = try Self.ledger(["start", "--addresses=3999", member])
        #expect(result.exited(1), "\(result.summary)")
        #expect(result.stderr.contains("cluster of 3 replicas"), "\(result.summary)")
    }

    /// Starts the server on a fresh data file (port 0 is not a valid address, so a free port is
    /// picked by binding one first), waits until it listens, then stops it with `signal`.
    @Test(arguments: [SIGTERM, SIGINT])
    func startsAndStopsCleanlyOnASignal(signal: Int32) throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/0_0.ledger"
        try Fixture.format(path)
        let port = try Self.freePort()
        let log = "\(directory)/server.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Tools.path(of: "ledger"))
        process.arguments = ["start", "--addresses=127.0.0.1:\(port)", "--cache-grid=64MiB", path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = handle
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        // Bounded: the server formats nothing and replays nothing, so it listens within seconds;
        // a minute covers a loaded CI machine.
        var listening = false
        for _ in 0..<600 where process.isRunning {
            if (try? String(contentsOfFile: log, encoding: .utf8))?.contains("listening on") == true {
                listening = true
                break
            }
            usleep(100_000)
        }
        let started = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(listening, "the server listens: \(started)")
        guard listening else { return }
        // It accepts a connection.
        #expect(Self.canConnect(port: port))

        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit, "\(output)")
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains(signal == SIGTERM ? "stopping (SIGTERM)" : "stopping (SIGINT)"), "\(output)")
        #expect(output.contains("stopped"), "\(output)")
        // The lock went with the process: the file opens again.
        let reopened = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        reopened.close()
    }

    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ToolTestError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ToolTestError("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    static func canConnect(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0
    }
}
