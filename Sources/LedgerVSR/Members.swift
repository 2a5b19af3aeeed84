import LedgerKit

/// The member ids of a cluster: one u128 per replica index, derived from the cluster id so that
/// every replica formatted with the same `--cluster` and `--replica-count` agrees on them
/// without talking (they are stored in each superblock's `VSRState.members`). Ids are never 0.
public enum Members {
    /// Ids of replicas `0..<replicaCount`, padded with zeros to `Constants.membersMax`.
    public static func root(cluster: UInt128, replicaCount: Int) -> [UInt128] {
        precondition(replicaCount >= 1 && replicaCount <= Constants.replicasMax, "replica count in range")
        var members = [UInt128](repeating: 0, count: Constants.membersMax)
        for index in 0..<replicaCount {
            // checksum(cluster ‖ index ‖ "members"): distinct per index, stable forever.
            var input: (UInt128, UInt64, UInt64) = (cluster, UInt64(index), 0x7372_6562_6d65_6d)
            let id = withUnsafeBytes(of: &input) { checksum($0) }
            precondition(id != 0, "a member id is never 0")
            members[index] = id
        }
        return members
    }
}
