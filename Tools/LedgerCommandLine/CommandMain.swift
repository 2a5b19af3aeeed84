#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// The `main` of every Ledger binary: parses the command line and runs the command, and turns
/// every failure into exactly one line on stderr (`<tool>: error: <what is wrong>`) and a
/// non-zero exit code. `--help` and `--version` print as usual.
///
/// ArgumentParser's own error output adds the usage text; operators asked for one clear line
/// (and scripts for a stable one), so only `--help` shows usage.
public func runCommandLine<Command: ParsableCommand>(_ command: Command.Type, name: String) -> Never {
    do {
        var parsed = try Command.parseAsRoot()
        try parsed.run()
        exit(0)
    } catch let exitCode as ExitCode {
        // A command that already printed its findings and only sets the status.
        exit(exitCode.rawValue)
    } catch {
        let code = Command.exitCode(for: error)
        if code == .success {
            Command.exit(withError: error)  // --help, --version: ArgumentParser prints them.
        }
        let message = Command.message(for: error)
        let firstLine = message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init)
        printError("\(name): error: \(firstLine ?? "failed")")
        exit(code.rawValue == 0 ? 1 : code.rawValue)
    }
}

/// Writes `line` and a newline to stderr, unbuffered (Swift 6 does not allow the `stderr`
/// global from non-isolated code).
public func printError(_ line: String) {
    var text = line
    text.append("\n")
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

/// An operating error of a tool, shown as one line: the message only, no usage text.
public struct ToolError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
