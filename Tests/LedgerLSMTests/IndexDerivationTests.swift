import LedgerKit
@testable import LedgerLSM
import LedgerTesting
import Testing

/// `Object.indexField(_:number:)` (the static `switch` a groove derives through) against the
/// closures of `GrooveIndex.accounts()` / `transfers()`, which stay the declaration.
@Suite struct IndexDerivationTests {
    static let seeds: [UInt64] = [1, 2, 3, 0xDEAD_BEEF, 20_261_128]

    /// A u128 that is often zero, sometimes small, sometimes huge.
    static func u128(_ prng: inout PRNG) -> UInt128 {
        switch prng.below(4) {
        case 0: return 0
        case 1: return UInt128(prng.below(4))
        case 2: return UInt128(prng.next())
        default: return prng.uint128()
        }
    }

    static func u64(_ prng: inout PRNG) -> UInt64 {
        switch prng.below(3) {
        case 0: return 0
        case 1: return prng.below(4)
        default: return prng.next()
        }
    }

    static func transfer(_ prng: inout PRNG, timestamp: UInt64) -> Transfer {
        Transfer(
            id: prng.uint128() | 1, debitAccountId: u128(&prng), creditAccountId: u128(&prng), amount: u128(&prng),
            pendingId: u128(&prng), userData128: u128(&prng), userData64: u64(&prng),
            userData32: UInt32(truncatingIfNeeded: u64(&prng)), timeout: UInt32(truncatingIfNeeded: u64(&prng)),
            ledger: UInt32(truncatingIfNeeded: u64(&prng)), code: UInt16(truncatingIfNeeded: u64(&prng)),
            flags: TransferFlags(rawValue: UInt16(truncatingIfNeeded: prng.next())), timestamp: timestamp)
    }

    static func account(_ prng: inout PRNG, timestamp: UInt64) -> Account {
        var account = Account(id: prng.uint128() | 1, timestamp: timestamp)
        account.userData128 = u128(&prng)
        account.userData64 = u64(&prng)
        account.userData32 = UInt32(truncatingIfNeeded: u64(&prng))
        account.ledger = UInt32(truncatingIfNeeded: u64(&prng))
        account.code = UInt16(truncatingIfNeeded: u64(&prng))
        account.flags = AccountFlags(rawValue: UInt16(truncatingIfNeeded: prng.next()))
        account.debitsPosted = u128(&prng)
        return account
    }

    @Test func declarationsNumberTheirFieldsInOrder() {
        let accounts = GrooveIndex<Account>.accounts()
        let transfers = GrooveIndex<Transfer>.transfers()
        #expect(accounts.map(\.fieldNumber) == Array(0..<Account.indexFieldCount))
        #expect(transfers.map(\.fieldNumber) == Array(0..<Transfer.indexFieldCount))
        #expect(AccountEventRecord.indexFieldCount == 0, "other object types derive through closures")
    }

    @Test(arguments: seeds) func transferFieldsMatchTheClosures(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let indexes = GrooveIndex<Transfer>.transfers()
        let zero = Transfer(timestamp: 1)
        var all = Transfer(timestamp: 1)
        all.flags = TransferFlags(rawValue: 0xFFFF)
        var objects = [zero, all]
        for index in 0..<2_000 { objects.append(Self.transfer(&prng, timestamp: UInt64(index) + 1)) }
        for (position, index) in indexes.enumerated() {
            for object in objects {
                let expected = index.field(of: object)
                let actual = Transfer.indexField(object, number: position)
                #expect(actual == expected, "seed \(seed): transfer index \(position) of \(object)")
                if actual != expected { return }
            }
        }
    }

    @Test(arguments: seeds) func accountFieldsMatchTheClosures(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let indexes = GrooveIndex<Account>.accounts()
        var all = Account(id: 1, timestamp: 1)
        all.flags = AccountFlags(rawValue: 0xFFFF)
        var objects = [Account(id: 1, timestamp: 1), all]
        for index in 0..<2_000 { objects.append(Self.account(&prng, timestamp: UInt64(index) + 1)) }
        for (position, index) in indexes.enumerated() {
            for object in objects {
                let expected = index.field(of: object)
                let actual = Account.indexField(object, number: position)
                #expect(actual == expected, "seed \(seed): account index \(position) of \(object)")
                if actual != expected { return }
            }
        }
    }

    /// The same declarations without field numbers: the groove derives through the closures.
    static func closureOnly<Object>(_ indexes: [GrooveIndex<Object>]) -> [GrooveIndex<Object>] {
        indexes.map { GrooveIndex(treeId: $0.treeId, $0.derivation) }
    }

    /// What an index tree's memtable says about `key`, as a comparable word.
    static func memtableState<Value: TreeValue>(_ tree: Tree<Value, SimulatedStorage>, _ key: Value.Key) -> String {
        switch tree.getCached(key) {
        case .found: return "found"
        case .deleted: return "deleted"
        case .notInMemory: return "absent"
        }
    }

    /// Every index tree of `a` and `b` holds as many puts, and the same state for every key
    /// either version of any object derives (by the closures).
    static func sameIndexTrees<Object>(
        _ a: Groove<Object, SimulatedStorage>, _ b: Groove<Object, SimulatedStorage>, objects: [Object]
    ) -> String? {
        for (position, index) in a.indexes.enumerated() {
            if let treeA = a.indexTrees64[position], let treeB = b.indexTrees64[position] {
                guard treeA.mutable.count == treeB.mutable.count else { return "index \(position): put counts differ" }
                for object in objects {
                    guard let field = index.field(of: object) else { continue }
                    let key = CompositeKey64(field: UInt64(field), timestamp: object.timestamp)
                    guard memtableState(treeA, key) == memtableState(treeB, key) else { return "index \(position) key" }
                }
            } else if let treeA = a.indexTrees128[position], let treeB = b.indexTrees128[position] {
                guard treeA.mutable.count == treeB.mutable.count else { return "index \(position): put counts differ" }
                for object in objects {
                    guard let field = index.field(of: object) else { continue }
                    let key = CompositeKey128(field: field, timestamp: object.timestamp)
                    guard memtableState(treeA, key) == memtableState(treeB, key) else { return "index \(position) key" }
                }
            } else {
                return "index \(position): the grooves' trees differ in width"
            }
        }
        return nil
    }

    @Test(arguments: seeds) func transferGroovePutsWhatTheClosuresDerive(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let indexes = GrooveIndex<Transfer>.transfers()
        let configuration = TransferGrooveNode.configuration(cacheCapacity: 64, changesPerBeatMax: 64, prefetchEntriesMax: 64)
        let fast = TransferGrooveNode(storage: ForestRunHarness.makeStorage(seed: seed), configuration: configuration)
        let slow = TransferGrooveNode(
            storage: ForestRunHarness.makeStorage(seed: seed), configuration: configuration,
            indexes: Self.closureOnly(indexes))
        #expect(fast.groove.derivesStatically)
        #expect(!slow.groove.derivesStatically, "declarations without field numbers use the closures")
        var objects: [Transfer] = []
        for index in 0..<64 {
            let transfer = Self.transfer(&prng, timestamp: UInt64(index) + 1)
            objects.append(transfer)
            fast.groove.insert(transfer)
            slow.groove.insert(transfer)
        }
        let difference = Self.sameIndexTrees(fast.groove, slow.groove, objects: objects)
        #expect(difference == nil, "seed \(seed)")
    }

    @Test(arguments: seeds) func accountGroovePutsWhatTheClosuresDerive(seed: UInt64) {
        var prng = PRNG(seed: seed)
        let indexes = GrooveIndex<Account>.accounts()
        let configuration = GrooveNode.configuration(cacheCapacity: 64, changesPerBeatMax: 64, prefetchEntriesMax: 64)
        let fast = GrooveNode(storage: ForestRunHarness.makeStorage(seed: seed), configuration: configuration)
        let slow = GrooveNode(
            storage: ForestRunHarness.makeStorage(seed: seed), configuration: configuration,
            indexes: Self.closureOnly(indexes))
        #expect(fast.groove.derivesStatically)
        #expect(!slow.groove.derivesStatically)
        var objects: [Account] = []
        for index in 0..<32 {
            let account = Self.account(&prng, timestamp: UInt64(index) + 1)
            objects.append(account)
            fast.groove.insert(account)
            slow.groove.insert(account)
        }
        // Updates: half change only balances, half change indexed fields and flags too.
        for position in 0..<32 {
            let old = objects[position]
            var new = prng.chance(percent: 50) ? Self.account(&prng, timestamp: old.timestamp) : old
            new.id = old.id
            new.debitsPosted = Self.u128(&prng)
            fast.groove.update(old: old, new: new)
            slow.groove.update(old: old, new: new)
            objects.append(new)
        }
        let difference = Self.sameIndexTrees(fast.groove, slow.groove, objects: objects)
        #expect(difference == nil, "seed \(seed)")
    }
}
