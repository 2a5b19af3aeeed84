import LedgerLSM
import Testing

@Suite struct TreeIdTests {
    /// The ids of storage spec §5: 1 through 33, each used once.
    @Test func idsAreTheSpecsAndUnique() {
        let ids = TreeId.allCases.map(\.rawValue).sorted()
        #expect(ids == Array(1...33))
        #expect(TreeId.transfersObject.rawValue == 18)
        #expect(TreeId.accountsClosed.rawValue == 25)
        #expect(TreeId.accountEventsPrunable.rawValue == 33)
        #expect(TreeId.transfersExpiresAt.name == "transfersExpiresAt")
    }
}
