// Runs the real `ledger-format` and `ledger-inspect` binaries (and system tools such as `dd`)
// as child processes and captures what they print and how they end.
//
// The Ledger binaries are built by `swift build --build-tests` next to the test bundle, so they
// are found relative to the running test binary (`/proc/self/exe`). A missing binary fails the
// test with a message that says how to build it: a skipped test would hide a broken build.

import Foundation
import Testing

/// How one child process ended and what it printed.
struct ToolResult {
    let command: String
    /// The exit status, or the signal number when `signaled`.
    let status: Int32
    /// The process died from a signal (a crash: SIGILL from a Swift trap, SIGSEGV, SIGABRT).
    let signaled: Bool
    let stdout: String
    let stderr: String

    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }

    /// Exited normally with `code`.
    func exited(_ code: Int32) -> Bool { !signaled && status == code }

    /// What a failed expectation shows: enough to see why without rerunning.
    var summary: String {
        let how = signaled ? "killed by signal \(status)" : "exit \(status)"
        return "\(command): \(how)\nstderr: \(stderr.prefix(2000))\nstdout: \(stdout.prefix(2000))"
    }

    /// stdout parsed as a JSON object.
    func jsonObject() throws -> [String: Any] {
        guard let data = stdout.data(using: .utf8) else { throw ToolTestError("stdout is not UTF-8: \(command)") }
        let parsed = try JSONSerialization.jsonObject(with: data)
        guard let object = parsed as? [String: Any] else {
            throw ToolTestError("stdout of \(command) is JSON but not an object")
        }
        return object
    }
}

struct ToolTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum Tools {
    /// The directory of the running test binary, where SwiftPM also puts the executables.
    static let buildDirectory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return (executable as NSString).deletingLastPathComponent
    }()

    static func path(of name: String) throws -> String {
        let path = "\(buildDirectory)/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ToolTestError(
                "\(name) was not found at \(path) (next to the test runner): build it with "
                    + "`swift build --build-tests` before `swift test --skip-build`")
        }
        return path
    }

    static func format(_ arguments: [String]) throws -> ToolResult {
        try run(path(of: "ledger-format"), arguments)
    }

    static func inspect(_ arguments: [String]) throws -> ToolResult {
        try run(path(of: "ledger-inspect"), arguments)
    }

    /// The path of a system tool (dd, losetup), if installed.
    static func system(_ name: String) -> String? {
        for directory in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs `executable` to completion. Output goes to unlinked temporary files rather than
    /// pipes: `wal --json` prints hundreds of KiB, and reading one pipe while the child blocks
    /// on the other would deadlock.
    static func run(_ executable: String, _ arguments: [String]) throws -> ToolResult {
        let stdoutFile = try UnlinkedTemporaryFile()
        let stderrFile = try UnlinkedTemporaryFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdoutFile.handle
        process.standardError = stderrFile.handle
        try process.run()
        process.waitUntilExit()
        let command = ([(executable as NSString).lastPathComponent] + arguments).joined(separator: " ")
        return ToolResult(
            command: command,
            status: process.terminationStatus,
            signaled: process.terminationReason == .uncaughtSignal,
            stdout: try stdoutFile.contents(),
            stderr: try stderrFile.contents())
    }
}

/// A temporary file already unlinked: it disappears with its descriptor, whatever happens.
private final class UnlinkedTemporaryFile {
    let handle: FileHandle

    init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/ledger-tool-output-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw ToolTestError("mkstemp failed: errno \(errno)") }
        unlink(template)  // The array converts to the C string mkstemp filled in.
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    func contents() throws -> String {
        try handle.seek(toOffset: 0)
        let data = try handle.readToEnd() ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
