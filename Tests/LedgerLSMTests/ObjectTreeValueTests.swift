import LedgerIO
import LedgerKit
import LedgerLSM
import Testing

/// Accounts and transfers are object-tree values keyed by timestamp: a table of them round trips
/// through the builder and is found by timestamp.
@Suite struct ObjectTreeValueTests {
    @Test func accountsAndTransfersAreKeyedByTimestamp() {
        #expect(Account.valueSize == 128)
        #expect(Transfer.valueSize == 128)
        #expect(Account(id: 1, timestamp: 42).key == 42)
        #expect(!Transfer(id: 1, timestamp: 43).isTombstone)
    }

    @Test func accountTableRoundTrips() throws {
        let accounts = (1...700).map { Account(id: UInt128($0) * 3, ledger: 1, code: 1, timestamp: UInt64($0) * 10) }
        let storage = TestBlocks()
        let builder = TableBuilder<Account>(treeId: 7, blockSize: 4096, valueBlocksMax: 64)
        let tables = buildTables(accounts, builder: builder, storage: storage)
        #expect(tables.count == 1)
        try checkTables(
            tables, values: accounts, absent: [5, 15, 7001], storage: storage, treeId: 7,
            valueBlocksMax: 64, blockSize: 4096, seed: 1)
    }
}
