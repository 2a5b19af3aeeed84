import LedgerKit
import LedgerVSR
import Testing

@Suite struct MembersTests {
    @Test func membersAreDistinctStableAndPadded() {
        let members = Members.root(cluster: 7, replicaCount: 3)
        #expect(members.count == Constants.membersMax)
        #expect(Set(members[0..<3]).count == 3)
        #expect(!members[0..<3].contains(0))
        #expect(members[3...].allSatisfy { $0 == 0 })
        #expect(members == Members.root(cluster: 7, replicaCount: 3))
        #expect(members[0] != Members.root(cluster: 8, replicaCount: 3)[0], "depends on the cluster")
        #expect(members[0..<3] == Members.root(cluster: 7, replicaCount: 5)[0..<3], "index keeps its id")
    }
}
