import Foundation
import LedgerIO
import LedgerKit
import Testing

/// `ledger-inspect` takes no lock, so an operator can look at the data file of a running
/// replica; the replica's lock still keeps a second writer out.
@Suite struct LockingTests {
    @Test func inspectWorksWhileAReplicaHoldsTheFile() throws {
        let directory = try Fixture.makeDirectory()
        defer { Fixture.removeDirectory(directory) }
        let path = "\(directory)/held.ledger"
        try Fixture.format(path)

        let held = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        defer { held.close() }
        // The lock is really held: a second read-write open (what a second replica or
        // ledger-format would do) is refused.
        #expect(throws: DataFileError.locked) {
            _ = try DataFile.open(path: path, layout: Fixture.layout, mode: .readWrite)
        }

        for section in [["superblock"], ["wal"], ["superblock", "--json"], ["wal", "--json"]] {
            let result = try Tools.inspect([path] + section)
            #expect(result.exited(0), "\(result.summary)")
            #expect(!result.stderr.contains("locked"), "\(result.summary)")
        }
        let document = try InspectDocument(Tools.inspect([path, "superblock", "--json"]))
        #expect(try SuperblockReport(document).validSlots == [0, 1, 2, 3])
        #expect(held.fd >= 0, "the file stayed open in this process throughout")
    }
}
