import LedgerIO
import LedgerKit
import LedgerStateMachine

// The plans of the three queries (state-machine spec §6.3, §6.5) on `ForestQuery`: which index
// terms each non-zero filter field becomes. A zero field is "any" (and is not indexed), so it
// is no term; the timestamp range bounds every scan.
//
//   query_accounts        ∩ of user_data_128/64/32, ledger, code
//   query_transfers       ∩ of user_data_128/64/32, ledger, code
//   get_account_transfers (debit_account_id ∪ credit_account_id, as the sides ask) ∩ the above
//
// No term at all: the object tree's timestamps (every object, by timestamp).

extension ForestQuery where Object == Account {
    /// The accounts groove's indexes a query uses.
    public static var queryIndexTreeIds: [UInt16] {
        [TreeId.accountsUserData128, .accountsUserData64, .accountsUserData32, .accountsLedger, .accountsCode]
            .map(\.rawValue)
    }

    /// A planner over the accounts groove.
    public convenience init(accounts groove: Groove<Account, S>, chunkCount: Int = 512, objectChunkCount: Int = 64) {
        self.init(
            groove: groove, indexTreeIds: Self.queryIndexTreeIds, chunkCount: chunkCount,
            objectChunkCount: objectChunkCount)
    }

    /// Writes to the front of `output` (at least `query.limit` long, valid until `callback`)
    /// the timestamps of the accounts `query` selects, in its order; `callback` gets their count
    /// or the fault that stopped the scans. `callback` may run before this returns.
    public func run(
        _ query: AccountQuery, output: UnsafeMutableBufferPointer<UInt64>,
        callback: @escaping (Result<Int, ForestQueryFault>) -> Void
    ) {
        planStart(
            timestampMin: query.timestampMin, timestampMax: query.timestampMax,
            direction: query.reversed ? .descending : .ascending, limit: query.limit, output: output,
            callback: callback)
        if query.userData128 != 0 { planTerm(treeId: TreeId.accountsUserData128.rawValue, field: query.userData128) }
        if query.userData64 != 0 {
            planTerm(treeId: TreeId.accountsUserData64.rawValue, field: UInt128(query.userData64))
        }
        if query.userData32 != 0 {
            planTerm(treeId: TreeId.accountsUserData32.rawValue, field: UInt128(query.userData32))
        }
        if query.ledger != 0 { planTerm(treeId: TreeId.accountsLedger.rawValue, field: UInt128(query.ledger)) }
        if query.code != 0 { planTerm(treeId: TreeId.accountsCode.rawValue, field: UInt128(query.code)) }
        planRun()
    }
}

extension ForestQuery where Object == Transfer {
    /// The transfers groove's indexes a query uses.
    public static var queryIndexTreeIds: [UInt16] {
        [
            TreeId.transfersDebitAccountId, .transfersCreditAccountId, .transfersUserData128, .transfersUserData64,
            .transfersUserData32, .transfersLedger, .transfersCode,
        ].map(\.rawValue)
    }

    /// A planner over the transfers groove.
    public convenience init(transfers groove: Groove<Transfer, S>, chunkCount: Int = 512, objectChunkCount: Int = 64) {
        self.init(
            groove: groove, indexTreeIds: Self.queryIndexTreeIds, chunkCount: chunkCount,
            objectChunkCount: objectChunkCount)
    }

    /// Writes to the front of `output` (at least `query.limit` long, valid until `callback`)
    /// the timestamps of the transfers `query` selects (get_account_transfers when
    /// `query.accountId` is non-zero, else query_transfers), in its order; `callback` gets
    /// their count or the fault that stopped the scans. `callback` may run before this returns.
    public func run(
        _ query: TransferQuery, output: UnsafeMutableBufferPointer<UInt64>,
        callback: @escaping (Result<Int, ForestQueryFault>) -> Void
    ) {
        planStart(
            timestampMin: query.timestampMin, timestampMax: query.timestampMax,
            direction: query.reversed ? .descending : .ascending, limit: query.limit, output: output,
            callback: callback)
        if query.accountId != 0 {
            let debit = TreeId.transfersDebitAccountId.rawValue
            let credit = TreeId.transfersCreditAccountId.rawValue
            switch (query.debits, query.credits) {
            case (true, true): planUnion(first: debit, second: credit, field: query.accountId)
            case (true, false): planTerm(treeId: debit, field: query.accountId)
            case (false, true): planTerm(treeId: credit, field: query.accountId)
            case (false, false):
                // Neither side: `matches` selects nothing (a valid filter names a side).
                planEmpty()
            }
        }
        if query.userData128 != 0 { planTerm(treeId: TreeId.transfersUserData128.rawValue, field: query.userData128) }
        if query.userData64 != 0 {
            planTerm(treeId: TreeId.transfersUserData64.rawValue, field: UInt128(query.userData64))
        }
        if query.userData32 != 0 {
            planTerm(treeId: TreeId.transfersUserData32.rawValue, field: UInt128(query.userData32))
        }
        if query.ledger != 0 { planTerm(treeId: TreeId.transfersLedger.rawValue, field: UInt128(query.ledger)) }
        if query.code != 0 { planTerm(treeId: TreeId.transfersCode.rawValue, field: UInt128(query.code)) }
        planRun()
    }
}
