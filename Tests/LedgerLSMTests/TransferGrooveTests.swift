import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

/// One batch of the transfers test's WAL: the ids it prefetches, the transfers it creates and
/// the ids of the transfers that failed (orphaned ids).
struct TransferGrooveBatch {
    var enqueue: [UInt128] = []
    var inserts: [Transfer] = []
    var orphans: [(id: UInt128, timestamp: UInt64)] = []
}

/// What one prefetched id answered: its transfer and whether it is orphaned.
struct TransferGrooveGet: Equatable {
    var id: UInt128
    var transfer: Transfer?
    var isOrphaned: Bool
}


/// Drives the transfers groove batch by batch against a model (insert only, plus orphaned ids),
/// with crashes and restarts from the last durable checkpoint (replaying the batches after it).
final class TransferGrooveHarness: ForestRunHarness {
    let configuration: GrooveConfiguration
    var node: TransferGrooveNode
    let wal: [TransferGrooveBatch]
    var model: [UInt128: Transfer] = [:]
    var modelOrphans: [UInt128: UInt64] = [:]
    var modelOp: UInt64 = 0
    /// What each op's gets answered when it first ran (replays must answer the same).
    var expectedGets: [UInt64: [TransferGrooveGet]] = [:]
    var getsChecked = 0
    var orphansChecked = 0

    init(storageSeed: UInt64, wal: [TransferGrooveBatch], configuration: GrooveConfiguration) {
        let storage = ForestRunHarness.makeStorage(seed: storageSeed)
        self.configuration = configuration
        node = TransferGrooveNode(storage: storage, configuration: configuration)
        self.wal = wal
        super.init(storage: storage)
    }

    static let insertsMax = 8
    static let orphansMax = 2
    static let accountCount: UInt64 = 6
    /// The first timestamp: realistic nanoseconds, so expires_at sums are realistic too.
    static let timestampFirst: UInt64 = 1_700_000_000_000_000_000

    static func accountId(_ number: UInt64) -> UInt128 { (UInt128(number) << 64) | 0xacc }

    /// `count` batches of new transfers (single-phase, pending with or without a timeout and
    /// sometimes closing, posts and voids of earlier pending transfers, some imported) with
    /// fields from small domains, and orphaned ids of failed ones; timestamps increase across
    /// both, with gaps of up to 2 s so that expiry times interleave with creation times.
    static func makeWAL(seed: UInt64, count: Int) -> [TransferGrooveBatch] {
        var prng = PRNG(seed: seed)
        var wal: [TransferGrooveBatch] = []
        var existing: [UInt128] = []
        var pendings: [UInt128] = []
        var orphaned: [UInt128] = []
        var nextId: UInt128 = 1
        var timestamp = timestampFirst
        for _ in 0..<count {
            var batch = TransferGrooveBatch()
            for _ in 0..<prng.int(in: 0...insertsMax) {
                timestamp += 1 + prng.below(2_000_000_000)
                let id = nextId &* 7919 &+ (UInt128(prng.below(7)) << 64)
                nextId += 1
                let debit = 1 + prng.below(accountCount)
                let credit = 1 + (debit + prng.below(accountCount - 1)) % accountCount
                var transfer = Transfer(
                    id: id, debitAccountId: accountId(debit), creditAccountId: accountId(credit),
                    amount: UInt128(prng.below(4)), userData128: UInt128(prng.below(4)), userData64: prng.below(4),
                    userData32: UInt32(prng.below(4)), ledger: UInt32(1 + prng.below(3)), code: UInt16(1 + prng.below(3)),
                    timestamp: timestamp)
                switch prng.below(10) {
                case 0...2:
                    transfer.flags = [.pending]
                    if prng.chance(percent: 70) { transfer.timeout = UInt32(1 + prng.below(20)) }
                    if prng.chance(percent: 20) { transfer.flags.insert(prng.chance(percent: 50) ? .closingDebit : .closingCredit) }
                    pendings.append(id)
                case 3...4 where !pendings.isEmpty:
                    transfer.flags = prng.chance(percent: 50) ? [.postPendingTransfer] : [.voidPendingTransfer]
                    transfer.pendingId = pendings[Int(prng.below(UInt64(pendings.count)))]
                default:
                    if prng.chance(percent: 10) { transfer.flags = [.imported] }
                }
                batch.inserts.append(transfer)
            }
            for _ in 0..<prng.int(in: 0...orphansMax) {
                timestamp += 1 + prng.below(2_000_000_000)
                let id = nextId &* 7919 &+ (UInt128(prng.below(7)) << 64)
                nextId += 1
                batch.orphans.append((id, timestamp))
            }
            if !existing.isEmpty {
                for _ in 0..<2 { batch.enqueue.append(existing[Int(prng.below(UInt64(existing.count)))]) }
            }
            if !orphaned.isEmpty { batch.enqueue.append(orphaned[Int(prng.below(UInt64(orphaned.count)))]) }
            batch.enqueue += batch.inserts.map(\.id) + batch.orphans.map(\.id)
            // An id that never exists.
            batch.enqueue.append((UInt128(1) << 100) &+ UInt128(prng.below(1000)))
            existing += batch.inserts.map(\.id)
            orphaned += batch.orphans.map(\.id)
            wal.append(batch)
        }
        return wal
    }

    /// Prefetches, checks and applies op `op`'s batch, then runs its beat; crashes after
    /// `crashTicks` ticks of the beat if given (false: crashed or failed).
    func commit(_ op: UInt64, crashTicks: Int? = nil) -> Bool {
        beginOp(op, forest: node.forest)
        let batch = wal[Int(op - 1)]
        let groove = node.groove
        guard prefetch(groove, ids: batch.enqueue, op: op) else { return false }
        let gets = batch.enqueue.map {
            TransferGrooveGet(id: $0, transfer: groove.get(id: $0), isOrphaned: groove.isOrphaned(id: $0))
        }
        if op > modelOp {
            for get in gets where get.transfer != model[get.id] || get.isOrphaned != (modelOrphans[get.id] != nil) {
                failure = "op \(op): id \(get.id) answers \(String(describing: get.transfer)), orphaned \(get.isOrphaned); "
                    + "the model has \(String(describing: model[get.id])), orphaned \(modelOrphans[get.id] != nil)"
                return false
            }
            expectedGets[op] = gets
        } else {
            guard expectedGets[op] == gets else {
                failure = "op \(op): the replay's gets differ from the original run's"
                return false
            }
        }
        getsChecked += gets.filter { $0.transfer != nil }.count
        orphansChecked += gets.filter(\.isOrphaned).count
        for transfer in batch.inserts { groove.insert(transfer) }
        for orphan in batch.orphans { groove.insertOrphanedId(orphan.id, timestamp: orphan.timestamp) }
        guard runBeat(op, forest: node.forest, crashTicks: crashTicks) else { return false }
        if op > modelOp {
            for transfer in batch.inserts { model[transfer.id] = transfer }
            for orphan in batch.orphans { modelOrphans[orphan.id] = orphan.timestamp }
            modelOp = op
        }
        return true
    }

    /// A new process: a fresh forest and groove open the superblock's checkpoint and replay the
    /// batches up to the highest committed op.
    func restart() -> String? {
        node = TransferGrooveNode(storage: storage, configuration: configuration)
        return openAndReplay(forest: node.forest) { commit($0) }
    }

    /// Every model transfer and orphaned id through prefetch (in chunks the groove accepts),
    /// by id and by timestamp, plus a missing id.
    func checkAllTransfers() -> String? {
        let ids = model.keys.sorted() + modelOrphans.keys.sorted()
        let chunk = (configuration.prefetchEntriesMax - 1) / 2
        var start = 0
        // Each turn prefetches one chunk: bounded by the model's size.
        while start <= ids.count {
            let slice = ids[start..<min(start + chunk, ids.count)]
            let groove = node.groove
            let missing = UInt128(1) << 120
            if let error = prefetchAndWait(
                groove, ids: Array(slice) + [missing], timestamps: slice.compactMap { model[$0]?.timestamp })
            { return error }
            for id in slice {
                guard groove.get(id: id) == model[id] else { return "transfer \(id) differs from the model" }
                guard groove.isOrphaned(id: id) == (modelOrphans[id] != nil) else { return "id \(id): orphaned differs" }
                if let transfer = model[id], groove.get(timestamp: transfer.timestamp) != transfer {
                    return "transfer at timestamp \(transfer.timestamp) differs from the model"
                }
            }
            if groove.get(id: missing) != nil || groove.isOrphaned(id: missing) { return "a missing id was found" }
            start += chunk
        }
        return nil
    }

    /// The `(field, timestamp)` keys an index tree holds for fields in `fieldMin...fieldMax`, by
    /// an ascending range scan; nil if the scan failed.
    func scanIndex(_ position: Int, fieldMin: UInt128, fieldMax: UInt128) -> [IndexEntry]? {
        let groove = node.groove
        let limit = 4096
        let timestampMax = CompositeKey64.tombstoneBit - 1
        var result: TreeScanResult?
        if let tree = groove.indexTrees64[position] {
            precondition(fieldMax <= UInt128(UInt64.max), "a u64 index scans u64 fields")
            let output = UnsafeMutableBufferPointer<CompositeKey64>.allocate(capacity: limit)
            defer { output.deallocate() }
            tree.scan(
                keyMin: CompositeKey64(field: UInt64(fieldMin), timestamp: 0),
                keyMax: CompositeKey64(field: UInt64(fieldMax), timestamp: timestampMax), direction: .ascending,
                limit: limit, into: output
            ) { result = $0 }
            guard storage.run(until: { result != nil }), case .done(let count) = result!, count < limit else { return nil }
            return output[0..<count].map { IndexEntry(field: UInt128($0.field), timestamp: $0.timestamp) }
        }
        guard let tree = groove.indexTrees128[position] else { return nil }
        let output = UnsafeMutableBufferPointer<CompositeKey128>.allocate(capacity: limit)
        defer { output.deallocate() }
        tree.scan(
            keyMin: CompositeKey128(field: fieldMin, timestamp: 0),
            keyMax: CompositeKey128(field: fieldMax, timestamp: timestampMax),
            direction: .ascending, limit: limit, into: output
        ) { result = $0 }
        guard storage.run(until: { result != nil }), case .done(let count) = result!, count < limit else { return nil }
        return output[0..<count].map { IndexEntry(field: $0.field, timestamp: $0.timestamp) }
    }

    struct IndexEntry: Equatable, Comparable {
        var field: UInt128
        var timestamp: UInt64
        static func < (a: IndexEntry, b: IndexEntry) -> Bool { (a.field, a.timestamp) < (b.field, b.timestamp) }
    }

    /// The field the spec indexes `transfer` under in tree `treeId`, written out here rather
    /// than taken from `GrooveIndex.transfers()`, so the model checks the derivations too.
    static func modelField(_ treeId: UInt16, _ transfer: Transfer) -> UInt128? {
        let field: UInt128?
        switch TreeId(rawValue: treeId) {
        case .transfersDebitAccountId: field = transfer.debitAccountId
        case .transfersCreditAccountId: field = transfer.creditAccountId
        case .transfersAmount: field = transfer.amount
        case .transfersPendingId: field = transfer.pendingId
        case .transfersUserData128: field = transfer.userData128
        case .transfersUserData64: field = UInt128(transfer.userData64)
        case .transfersUserData32: field = UInt128(transfer.userData32)
        case .transfersLedger: field = UInt128(transfer.ledger)
        case .transfersCode: field = UInt128(transfer.code)
        case .transfersImported: return transfer.flags.contains(.imported) ? 0 : nil
        case .transfersClosing:
            return transfer.flags.contains(.closingDebit) || transfer.flags.contains(.closingCredit) ? 0 : nil
        default: preconditionFailure("tree \(treeId) is a transfers index")
        }
        return field == 0 ? nil : field
    }

    /// The model's keys of index `position` with fields in `fieldMin...fieldMax`, in key order.
    func modelIndex(_ position: Int, fieldMin: UInt128, fieldMax: UInt128) -> [IndexEntry] {
        let treeId = node.groove.indexes[position].treeId
        return model.values.compactMap { transfer -> IndexEntry? in
            guard let field = Self.modelField(treeId, transfer), field >= fieldMin, field <= fieldMax else { return nil }
            return IndexEntry(field: field, timestamp: transfer.timestamp)
        }.sorted()
    }

    /// One scan of index `treeId` over `fieldMin...fieldMax` compared with the model; returns
    /// the number of keys compared.
    func checkIndex(_ treeId: TreeId, fieldMin: UInt128, fieldMax: UInt128) -> (failure: String?, compared: Int) {
        guard let position = node.groove.indexes.firstIndex(where: { $0.treeId == treeId.rawValue }) else {
            return ("no index \(treeId.name)", 0)
        }
        let expected = modelIndex(position, fieldMin: fieldMin, fieldMax: fieldMax)
        guard let found = scanIndex(position, fieldMin: fieldMin, fieldMax: fieldMax) else {
            return ("\(treeId.name): the scan of \(fieldMin)...\(fieldMax) failed", 0)
        }
        guard found == expected else {
            let first = zip(found, expected).first { $0 != $1 }.map { "first difference: \($0) vs the model's \($1)" } ?? ""
            return ("\(treeId.name) \(fieldMin)...\(fieldMax): \(found.count) keys, the model has \(expected.count); \(first)", 0)
        }
        return (nil, found.count)
    }

    /// Every index tree scanned whole, then a few field values and ranges (a debit account, a
    /// credit account, a ledger), each compared with the model.
    func checkIndexes() -> (failure: String?, compared: Int) {
        var compared = 0
        var checks: [(TreeId, UInt128, UInt128)] = []
        for index in node.groove.indexes {
            guard let treeId = TreeId(rawValue: index.treeId) else { return ("unknown tree \(index.treeId)", compared) }
            checks.append((treeId, 0, index.isWide ? UInt128.max : UInt128(UInt64.max)))
        }
        checks.append((.transfersDebitAccountId, Self.accountId(2), Self.accountId(2)))
        checks.append((.transfersCreditAccountId, Self.accountId(5), Self.accountId(5)))
        checks.append((.transfersLedger, 2, 2))
        checks.append((.transfersAmount, 0, 0))
        for (treeId, fieldMin, fieldMax) in checks {
            let check = checkIndex(treeId, fieldMin: fieldMin, fieldMax: fieldMax)
            if let failure = check.failure { return (failure, compared) }
            compared += check.compared
        }
        return (nil, compared)
    }
}

@Suite struct TransferGrooveTests {
    static let opCount: UInt64 = 120

    static func standardConfiguration() -> GrooveConfiguration {
        TransferGrooveNode.configuration(
            cacheCapacity: 64, changesPerBeatMax: TransferGrooveHarness.insertsMax + TransferGrooveHarness.orphansMax,
            prefetchEntriesMax: 32)
    }

    static func transfer(
        amount: UInt128 = 1, pendingId: UInt128 = 0, timeout: UInt32 = 0, flags: TransferFlags = [],
        timestamp: UInt64 = 1_000
    ) -> Transfer {
        Transfer(
            id: 1, debitAccountId: 2, creditAccountId: 3, amount: amount, pendingId: pendingId, timeout: timeout,
            ledger: 1, code: 1, flags: flags, timestamp: timestamp)
    }

    @Test func theIndexesAreTheSpecsTransferTrees() {
        let indexes = GrooveIndex<Transfer>.transfers()
        let expected: [TreeId] = [
            .transfersDebitAccountId, .transfersCreditAccountId, .transfersAmount, .transfersPendingId,
            .transfersUserData128, .transfersUserData64, .transfersUserData32, .transfersLedger, .transfersCode,
            .transfersImported, .transfersClosing,
        ]
        #expect(indexes.map(\.treeId) == expected.map(\.rawValue), "the spec's transfer index trees, in tree-id order")
        #expect(indexes.map(\.isWide) == expected.indices.map { $0 < 5 }, "the u128 fields have 128-bit keys")

        let full = Transfer(
            id: 1, debitAccountId: 2, creditAccountId: 3, amount: 4, pendingId: 5, userData128: 6, userData64: 7,
            userData32: 8, timeout: 9, ledger: 10, code: 11, flags: [.pending, .imported, .closingDebit], timestamp: 12)
        let fields = indexes.map { $0.field(of: full) }
        #expect(fields == [2, 3, 4, 5, 6, 7, 8, 10, 11, 0, 0], "each index derives its field")
        #expect(!indexes.contains { $0.treeId == TreeId.transfersExpiresAt.rawValue },
                "expires_at is the forest store's own tree, not a derived index")
        let zero = Transfer(timestamp: 12)
        #expect(indexes.allSatisfy { $0.field(of: zero) == nil }, "zero fields and clear flags are not indexed")
    }

    @Test func expiresAtFollowsTheSpecsRule() {
        let expiresAt = GrooveIndex<Transfer>.expiresAt(of:)
        #expect(expiresAt(Self.transfer(timeout: 5, flags: [.pending])) == 1_000 + 5_000_000_000, "timestamp + timeout s")
        #expect(expiresAt(Self.transfer(timeout: 0, flags: [.pending])) == nil, "timeout 0 never expires")
        #expect(expiresAt(Self.transfer(timeout: 5)) == nil, "a single-phase transfer does not expire")
        #expect(expiresAt(Self.transfer(pendingId: 9, timeout: 5, flags: [.postPendingTransfer])) == nil,
                "a post does not expire (it is stored with timeout 0 anyway)")
        let largest = Self.transfer(timeout: .max, flags: [.pending])
        #expect(expiresAt(largest) == 1_000 + UInt64(UInt32.max) * 1_000_000_000, "the largest timeout fits")
        let edge = UInt64(Int64.max) - 1_000_000_000
        #expect(expiresAt(Self.transfer(timeout: 1, flags: [.pending], timestamp: edge)) == UInt64(Int64.max),
                "expiry at 2^63 - 1 is indexed")
        #expect(expiresAt(Self.transfer(timeout: 1, flags: [.pending], timestamp: edge + 1)) == nil,
                "expiry past 2^63 - 1 (hostile) is not indexed")
        #expect(expiresAt(Self.transfer(timeout: .max, flags: [.pending], timestamp: .max)) == nil,
                "an overflowing sum (hostile) is not indexed")

        let indexes = GrooveIndex<Transfer>.transfers()
        let closing = indexes.first { $0.treeId == TreeId.transfersClosing.rawValue }!
        #expect(closing.field(of: Self.transfer(flags: [.pending, .closingDebit])) == 0, "closing_debit is closing")
        #expect(closing.field(of: Self.transfer(flags: [.pending, .closingCredit])) == 0, "closing_credit is closing")
        #expect(closing.field(of: Self.transfer(flags: [.pending])) == nil, "no closing flag: not indexed")
        let amount = indexes.first { $0.treeId == TreeId.transfersAmount.rawValue }!
        #expect(amount.field(of: Self.transfer(amount: 0)) == nil, "amount 0 is not indexed")
        #expect(amount.field(of: Self.transfer(amount: UInt128.max)) == UInt128.max, "the full u128 amount is the key")
    }

    @Test(arguments: [UInt64(1), 2])
    func batchesMatchTheModelAndACrashReplaysToTheSameState(seed: UInt64) {
        let wal = TransferGrooveHarness.makeWAL(seed: seed, count: Int(Self.opCount))
        let straight = TransferGrooveHarness(storageSeed: seed &* 31, wal: wal, configuration: Self.standardConfiguration())
        // Each turn commits one op: bounded by opCount.
        while straight.committedOp < Self.opCount {
            guard straight.commit(straight.committedOp + 1) else { break }
        }
        #expect(straight.failure == nil, "seed \(seed): \(straight.failure ?? "")")
        guard straight.failure == nil else { return }
        straight.storage.runUntilIdle()
        #expect(straight.checkpoints.count >= 3, "seed \(seed): several checkpoints (\(straight.checkpoints.count))")
        #expect(straight.getsChecked > 150, "seed \(seed): gets found transfers (\(straight.getsChecked))")
        #expect(straight.orphansChecked > 50, "seed \(seed): gets found orphaned ids (\(straight.orphansChecked))")
        let levels = straight.node.groove.objectTree.manifest.levelsTables().map(\.count)
        #expect(levels.dropFirst().contains { $0 > 0 }, "seed \(seed): transfers reached levels below 0 (\(levels))")
        // Every index has keys in this WAL, so each whole-tree scan compares something.
        for position in straight.node.groove.indexes.indices {
            let count = straight.modelIndex(position, fieldMin: 0, fieldMax: .max).count
            #expect(count > 0, "seed \(seed): index \(straight.node.groove.indexes[position].treeId) has keys")
        }
        let straightTransfers = straight.checkAllTransfers()
        #expect(straightTransfers == nil, "seed \(seed): \(straightTransfers ?? "")")
        let straightIndexes = straight.checkIndexes()
        #expect(straightIndexes.failure == nil, "seed \(seed): \(straightIndexes.failure ?? "")")
        #expect(straightIndexes.compared > 4 * straight.model.count, "seed \(seed): index scans compared keys")

        // The same WAL with a crash in the middle of a beat (retried until a beat is caught in
        // flight), a restart from the last durable checkpoint and a replay.
        var prng = PRNG(seed: seed ^ 0x5eed)
        let crashOp = UInt64(prng.int(in: 60...90))
        let crashing = TransferGrooveHarness(storageSeed: seed &* 57 &+ 3, wal: wal, configuration: Self.standardConfiguration())
        // Each turn commits an op or crashes once and restarts, so ops advance.
        while crashing.committedOp < Self.opCount && crashing.failure == nil {
            let crash = crashing.crashes == 0 && crashing.committedOp + 1 >= crashOp
            if crashing.commit(crashing.committedOp + 1, crashTicks: crash ? prng.int(in: 1...8) : nil) { continue }
            guard crashing.failure == nil else { break }
            if let failure = crashing.restart() { crashing.failure = "after the crash: \(failure)" }
        }
        #expect(crashing.failure == nil, "seed \(seed): \(crashing.failure ?? "")")
        guard crashing.failure == nil else { return }
        crashing.storage.runUntilIdle()
        #expect(crashing.crashes == 1, "seed \(seed): the run crashed once (\(crashing.crashes))")
        let crashingTransfers = crashing.checkAllTransfers()
        #expect(crashingTransfers == nil, "seed \(seed): \(crashingTransfers ?? "")")
        let crashingIndexes = crashing.checkIndexes()
        #expect(crashingIndexes.failure == nil, "seed \(seed): \(crashingIndexes.failure ?? "")")
        #expect(crashing.model == straight.model, "seed \(seed): the same transfers")
        #expect(crashing.modelOrphans == straight.modelOrphans, "seed \(seed): the same orphaned ids")
        let sameCheckpoints = crashing.checkpoints == straight.checkpoints
        #expect(sameCheckpoints, "seed \(seed): the same checkpoints")
        let sameManifests = crashing.node.manifests() == straight.node.manifests()
        #expect(sameManifests, "seed \(seed): the same manifests")
        let sameGrid = crashing.gridBytes() == straight.gridBytes()
        #expect(sameGrid, "seed \(seed): byte-identical grids")
    }
}
