import LedgerIO
import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

/// Inserts that skip the object and id caches (Groove.swift, "Uncached inserts"): the batch
/// that made them reads them as before, a discarded scope drops them, and later batches find
/// them through the trees.
@Suite struct GrooveUncachedInsertTests {
    static func transfer(_ number: UInt64, pending: Bool) -> Transfer {
        var transfer = Transfer(
            id: UInt128(number) << 64 | 0x7, debitAccountId: 1, creditAccountId: 2, amount: UInt128(number),
            ledger: 1, code: 1, timestamp: 1_000 + number)
        if pending { transfer.flags = [.pending] }
        return transfer
    }

    @Test func theBatchReadsWhatItInsertedUncachedAndLaterBatchesFindIt() {
        let configuration = TransferGrooveNode.configuration(cacheCapacity: 16, changesPerBeatMax: 32, prefetchEntriesMax: 128)
        let storage = ForestRunHarness.makeStorage(seed: 11)
        let node = TransferGrooveNode(storage: storage, configuration: configuration)
        let groove = node.groove
        // Numbers 1...12, every third pending (cached); 13 goes into a discarded scope.
        let kept = (UInt64(1)...12).map { Self.transfer($0, pending: $0 % 3 == 0) }
        let discarded = Self.transfer(13, pending: false)

        groove.prefetchStart()
        for transfer in kept + [discarded] { groove.prefetchEnqueue(id: transfer.id) }
        var prefetched: Result<Void, GrooveFault>?
        groove.prefetch { prefetched = $0 }
        #expect(storage.run(until: { prefetched != nil }), "the first prefetch finished")
        for transfer in kept {
            #expect(groove.get(id: transfer.id) == nil, "id \(transfer.id) is new")
            groove.insert(transfer, cached: transfer.flags.contains(.pending))
        }
        groove.scopeOpen()
        groove.insert(discarded, cached: false)
        #expect(groove.get(id: discarded.id) == discarded, "the scope reads its own uncached insert")
        groove.scopeClose(persist: false)
        #expect(groove.get(id: discarded.id) == nil, "a discarded scope's uncached insert is gone")

        for transfer in kept {
            let pending = transfer.flags.contains(.pending)
            #expect(groove.get(id: transfer.id) == transfer, "the batch reads \(transfer.id) by id")
            #expect(groove.get(timestamp: transfer.timestamp) == transfer, "the batch reads \(transfer.id) by timestamp")
            var hint = CacheMap<Transfer>.slotHintNone
            #expect(groove.get(timestamp: transfer.timestamp, hint: &hint) == transfer, "and with a hint")
            #expect((groove.cache.peek(transfer.timestamp) != nil) == pending, "only pending transfers are cached")
            #expect((groove.idCache?.peek(transfer.id) != nil) == pending, "only pending transfers' ids are cached")
        }

        var beat: Result<ForestCheckpoint?, ForestFault>?
        node.forest.compact(op: 1) { beat = $0 }
        #expect(storage.run(until: { beat != nil }), "the beat finished")
        guard case .success = beat else {
            Issue.record("the beat failed: \(String(describing: beat))")
            return
        }

        // The next batch names them all: the uncached ones come from the trees.
        groove.prefetchStart()
        for transfer in kept + [discarded] { groove.prefetchEnqueue(id: transfer.id) }
        prefetched = nil
        groove.prefetch { prefetched = $0 }
        #expect(storage.run(until: { prefetched != nil }), "the second prefetch finished")
        guard case .success = prefetched else {
            Issue.record("the second prefetch failed: \(String(describing: prefetched))")
            return
        }
        for transfer in kept {
            #expect(groove.get(id: transfer.id) == transfer, "a later batch finds \(transfer.id)")
        }
        #expect(groove.get(id: discarded.id) == nil, "the discarded transfer never existed")
        storage.runUntilIdle()
    }

    /// The mutable memtable's current puts answer by binary search while they ascend, by a
    /// newest-first scan once they do not, and a scope's truncation keeps either answer right.
    @Test func currentPutsAnswerWhetherTheyAscendOrNot() {
        let table = Memtable<IdTreeValue>(capacity: 64, runsMax: 4)
        for key in UInt128(1)...10 { table.put(IdTreeValue(id: key * 2, timestamp: UInt64(key))) }
        for key in UInt128(1)...10 {
            #expect(table.getUnsorted(key * 2)?.timestamp == UInt64(key), "ascending: key \(key * 2)")
            #expect(table.getUnsorted(key * 2 + 1) == nil, "ascending: no key \(key * 2 + 1)")
        }
        table.scopeOpen()
        table.put(IdTreeValue(id: 4, timestamp: 99))  // Out of order: the newest put of key 4.
        #expect(table.getUnsorted(4)?.timestamp == 99, "the newest put wins")
        #expect(table.getUnsorted(20)?.timestamp == 10, "older keys still found")
        table.scopeClose(persist: false)
        #expect(table.getUnsorted(4)?.timestamp == 2, "the discarded put is gone")
        table.sortSuffix()
        #expect(table.getUnsorted(4) == nil, "sorted puts are no longer current")
        #expect(table.get(4)?.timestamp == 2, "they are in a run")
        for key in UInt128(30)...35 { table.put(IdTreeValue(id: key, timestamp: UInt64(key))) }
        #expect(table.getUnsorted(33)?.timestamp == 33, "a new beat's ascending puts")
        #expect(table.getUnsorted(4) == nil, "only the current beat's")
    }
}
