import Foundation
import LedgerKit
import Testing

/// `ledger-format` refuses every bad command line with exactly one line on stderr (operators
/// and scripts rely on one stable line), nothing on stdout, a non-zero exit, and no file.
@Suite struct FormatArgumentTests {
    struct BadArguments: CustomTestStringConvertible, Sendable {
        let name: String
        /// The arguments; "PATH" is replaced by a fresh path in the test's directory.
        let arguments: [String]
        /// A piece of the error line that shows the right problem was reported.
        let mentions: String
        var testDescription: String { name }
    }

    static let sizeMin = Fixture.layout.sizeMin

    static let cases: [BadArguments] = [
        BadArguments(name: "missing --cluster", arguments: ["--replica=0", "--replica-count=1", "PATH"], mentions: "--cluster"),
        BadArguments(name: "--cluster=abc", arguments: ["--cluster=abc", "--replica=0", "--replica-count=1", "PATH"], mentions: "--cluster"),
        BadArguments(name: "--replica-count=0", arguments: ["--cluster=1", "--replica=0", "--replica-count=0", "PATH"], mentions: "--replica-count"),
        BadArguments(name: "--replica-count=7", arguments: ["--cluster=1", "--replica=0", "--replica-count=7", "PATH"], mentions: "--replica-count"),
        BadArguments(name: "--replica=3 of 3", arguments: ["--cluster=1", "--replica=3", "--replica-count=3", "PATH"], mentions: "--replica"),
        BadArguments(name: "--size=1GiB (too small)", arguments: ["--cluster=1", "--replica=0", "--replica-count=1", "--size=1GiB", "PATH"], mentions: "at least"),
        BadArguments(name: "--size=abc", arguments: ["--cluster=1", "--replica=0", "--replica-count=1", "--size=abc", "PATH"], mentions: "--size"),
        BadArguments(name: "--size not whole sectors", arguments: ["--cluster=1", "--replica=0", "--replica-count=1", "--size=\(sizeMin + 512)", "PATH"], mentions: "multiple of \(Constants.sectorSize)"),
        BadArguments(name: "unknown flag", arguments: ["--cluster=1", "--replica=0", "--replica-count=1", "--frobnicate", "PATH"], mentions: "--frobnicate"),
        BadArguments(name: "missing path", arguments: ["--cluster=1", "--replica=0", "--replica-count=1"], mentions: "<path>"),
        BadArguments(name: "path in a missing directory", arguments: ["--cluster=1", "--replica=0", "--replica-count=1", "PATH/missing/data.ledger"], mentions: "directory"),
    ]

    @Test(arguments: cases)
    func badArgumentGivesOneErrorLine(_ bad: BadArguments) throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/data.ledger"
        let arguments = bad.arguments.map { $0.replacingOccurrences(of: "PATH", with: path) }

        let result = try Tools.format(arguments)

        #expect(!result.signaled, "\(result.summary)")
        #expect(result.status != 0, "\(result.summary)")
        #expect(result.stdout.isEmpty, "\(result.summary)")
        #expect(result.stderrLines.count == 1, "\(result.summary)")
        #expect(result.stderr.hasPrefix("ledger-format: error: "), "\(result.summary)")
        #expect(result.stderr.contains(bad.mentions), "\(result.summary)")
        #expect(!FileManager.default.fileExists(atPath: path), "a refused format creates no file")
    }

    @Test func helpExitsZero() throws {
        let result = try Tools.format(["--help"])
        #expect(result.exited(0), "\(result.summary)")
        #expect(result.stdout.contains("--replica-count"), "\(result.summary)")
        #expect(!result.stdout.contains("error:"), "\(result.summary)")
    }
}
