// ledger-inspect: reads a data file and shows what is in it, including what is damaged
// (storage spec §11). Read-only; never takes the replica's lock; never crashes on bad bytes.
//
//   ledger-inspect <path> superblock | wal [--slot=N] | replies [--slot=N] | grid [--block=A]
//                  | manifest [--verbose] | tables [--tree=<id|name>] [--level=N] [--json]

import ArgumentParser
import LedgerCommandLine
import LedgerIO
import LedgerKit
import LedgerVSR

enum Section: String, ExpressibleByArgument, CaseIterable {
    case superblock, wal, replies, grid, manifest, tables
}

struct LedgerInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-inspect",
        abstract: "Show the contents of a Ledger data file, damaged parts included.",
        discussion: """
            superblock  every copy's status, the quorum a replica would choose, its fields
            wal         every WAL slot: redundant header, prepare, and the recovery verdict
            replies     the client-replies zone, one slot per session
            grid        the grid's extent; --block=A decodes one block
            manifest    the checkpoint's manifest log, block by block, and the tables it replays to
            tables      the live tables: key range, snapshots, values, index block, per tree and level
            The exit status is 0 when what was shown is intact, 1 when it shows damage a replica
            would repair (or refuse), 64 for bad arguments.
            """)

    @Argument(help: "The data file or block device.")
    var path: String

    @Argument(help: "What to show: \(Section.allCases.map(\.rawValue).joined(separator: ", ")).")
    var section: Section

    @Option(help: "wal, replies: show one slot only.")
    var slot: Int?

    @Option(help: "grid: decode the block at this address (from 1).")
    var block: UInt64?

    @Option(help: "tables: show one tree only (its id or name, e.g. 18 or transfersObject).")
    var tree: String?

    @Option(help: "tables: show one level only (0 ...).")
    var level: Int?

    @Flag(help: "manifest: list every block's events.")
    var verbose = false

    @Flag(help: "Print JSON for scripts instead of text.")
    var json = false

    func validate() throws {
        if slot != nil && section != .wal && section != .replies {
            throw ValidationError("--slot applies to wal and replies only")
        }
        if block != nil && section != .grid {
            throw ValidationError("--block applies to grid only")
        }
        if (tree != nil || level != nil) && section != .tables {
            throw ValidationError("--tree and --level apply to tables only")
        }
        if verbose && section != .manifest {
            throw ValidationError("--verbose applies to manifest only")
        }
        if let tree, ManifestInspection.parseTree(tree) == nil {
            throw ValidationError("--tree must be a tree id (0...65535) or a tree name, got \(tree)")
        }
        if let level, !(0..<Constants.lsmLevels).contains(level) {
            throw ValidationError("--level must be between 0 and \(Constants.lsmLevels - 1), got \(level)")
        }
        let configuration = StorageConfiguration.production
        if let slot, section == .wal, !(0..<configuration.journalSlotCount).contains(slot) {
            throw ValidationError("--slot must be between 0 and \(configuration.journalSlotCount - 1), got \(slot)")
        }
        if let slot, section == .replies, !(0..<configuration.clientsMax).contains(slot) {
            throw ValidationError("--slot must be between 0 and \(configuration.clientsMax - 1), got \(slot)")
        }
        if let block, !(1...UInt64(configuration.gridBlockCountMax)).contains(block) {
            throw ValidationError("--block must be between 1 and \(configuration.gridBlockCountMax), got \(block)")
        }
    }

    func run() throws {
        let layout = DataFileLayout(.production)
        let reader: DataFileReader
        do {
            reader = try DataFileReader(path: path, layout: layout)
        } catch {
            throw ToolError("cannot open \(path): \(error)")
        }
        var notes: [String] = []
        if reader.isTruncated {
            notes.append("warning: file is truncated: \(reader.file.sizeBytes) bytes, a data file has at least \(layout.sizeMin); missing bytes read as zeros")
        }
        var healthy = true
        var lines: [String] = []
        var document: JSON = .null
        switch section {
        case .superblock:
            let inspection = try SuperblockInspection(reader: reader)
            healthy = inspection.isHealthy
            lines = inspection.text()
            document = inspection.json()
        case .wal:
            let superblock = try SuperblockInspection(reader: reader)
            let inspection = try WALInspection(reader: reader, superblock: superblock.working)
            healthy = inspection.badSlots.isEmpty && superblock.working != nil
            lines = inspection.text(slot: slot)
            document = inspection.json(slot: slot)
        case .replies:
            let inspection = try RepliesInspection(reader: reader, only: slot)
            healthy = !inspection.slots.contains { if case .corrupt = $0 { true } else if case .reply(_, let valid) = $0 { !valid } else { false } }
            lines = inspection.text(slot: slot)
            document = inspection.json(slot: slot)
        case .grid:
            let inspection = try GridInspection(reader: reader, address: block)
            switch inspection.block?.state {
            case .corrupt: healthy = false
            case .block(_, let bodyValid, let addressMatches, _): healthy = bodyValid && addressMatches
            case .empty, nil: break
            }
            lines = inspection.text()
            document = inspection.json()
        case .manifest, .tables:
            let superblock = try SuperblockInspection(reader: reader)
            let inspection = try ManifestInspection(reader: reader, superblock: superblock.working)
            healthy = inspection.isHealthy
            let treeId = tree.flatMap { ManifestInspection.parseTree($0) }
            lines = section == .manifest
                ? inspection.manifestText(verbose: verbose) : inspection.tablesText(treeId: treeId, level: level)
            document = section == .manifest
                ? inspection.manifestJSON(verbose: verbose) : inspection.tablesJSON(treeId: treeId, level: level)
        }
        if reader.unreadableSectorCount > 0 {
            notes.append("warning: \(reader.unreadableSectorCount) sectors could not be read (EIO) and are shown as zeros")
            healthy = false
        }
        if json {
            print(JSON.object([
                ("path", .string(path)),
                ("size", .unsigned(reader.file.sizeBytes)),
                ("block_device", .bool(reader.file.isBlockDevice)),
                ("healthy", .bool(healthy && !reader.isTruncated)),
                ("warnings", .array(notes.map { .string($0) })),
                (section.rawValue, document),
            ]).rendered())
        } else {
            let kind = reader.file.isBlockDevice ? "block device" : "regular file"
            print("\(path): \(kind), \(CommandLineValues.formatByteSize(reader.file.sizeBytes))")
            for note in notes { print(note) }
            for line in lines { print(line) }
        }
        if !healthy || reader.isTruncated { throw ExitCode(1) }
    }
}

Constants.verify()
runCommandLine(LedgerInspect.self, name: "ledger-inspect")
