import LedgerKit
import LedgerStateMachine

/// One request of a workload: an operation and its body (multi-batch encoded where the operation
/// is; empty for a pulse).
struct LedgerRequest {
    var operation: LedgerKit.Operation
    var body: [UInt8]
}

/// Seeded random requests that reach every path of the store: accounts with and without
/// history, plain, pending (with and without timeouts), posted, voided, balancing and closing
/// transfers, linked chains that succeed and fail, duplicate and failed ids, imported events,
/// lookups, account transfers and balances, queries on every field, and change events. Fields
/// come from small domains so that queries match several objects and chains fail often.
///
/// The generator only knows what it asked for, not what succeeded: the state machine decides,
/// and the store under test must answer as the model store does.
struct LedgerWorkload {
    var prng: PRNG
    /// Account ids created so far (or attempted), and the next fresh one.
    var accountIds: [UInt128] = []
    var transferIds: [UInt128] = []
    var pendingIds: [UInt128] = []
    /// Timestamps seen in replies' objects: query bounds drawn from them hit real ranges.
    var nextId: UInt128 = 1000
    /// Pending transfers with a timeout asked for so far: bounded, so no pulse can expire more
    /// than the test store is sized for.
    var timeoutsAsked = 0
    let timeoutsMax: Int
    let batchEventsMax: Int

    init(seed: UInt64, batchEventsMax: Int, timeoutsMax: Int) {
        prng = PRNG(seed: seed)
        self.batchEventsMax = batchEventsMax
        self.timeoutsMax = timeoutsMax
    }

    /// The next request; `importBase` is a timestamp newer than every object and event (the
    /// last executed operation's), for imported events.
    mutating func next(importBase: UInt64) -> LedgerRequest {
        if accountIds.count < 8 { return createAccounts(importBase: importBase, imported: false) }
        let roll = prng.int(in: 0...99)
        switch roll {
        case 0..<10: return createAccounts(importBase: importBase, imported: prng.chance(percent: 15))
        case 10..<62: return createTransfers(importBase: importBase, imported: prng.chance(percent: 5))
        case 62..<67: return lookupAccounts()
        case 67..<72: return lookupTransfers()
        case 72..<78: return accountFilter(.getAccountTransfers)
        case 78..<84: return accountFilter(.getAccountBalances)
        case 84..<89: return queryFilter(.queryAccounts)
        case 89..<95: return queryFilter(.queryTransfers)
        default: return changeEvents()
        }
    }

    // MARK: Creates

    mutating func createAccounts(importBase: UInt64, imported: Bool) -> LedgerRequest {
        let count = prng.int(in: 1...min(batchEventsMax, 8))
        var events: [Account] = []
        for index in 0..<count {
            var flags: AccountFlags = []
            if prng.chance(percent: 60) { flags.insert(.history) }
            if prng.chance(percent: 10) { flags.insert(.debitsMustNotExceedCredits) }
            if prng.chance(percent: 5) { flags.insert(.creditsMustNotExceedDebits) }
            if prng.chance(percent: 10) { flags.insert(.linked) }
            if imported { flags.insert(.imported) }
            let id: UInt128
            if !accountIds.isEmpty && prng.chance(percent: 5) {
                id = accountIds[prng.int(in: 0...accountIds.count - 1)]  // exists (or differs)
            } else {
                id = nextId
                nextId += 1
                accountIds.append(id)
            }
            events.append(
                Account(
                    id: id, userData128: UInt128(prng.below(3)), userData64: prng.below(3),
                    userData32: UInt32(prng.below(3)), ledger: prng.chance(percent: 90) ? 1 : 2,
                    code: UInt16(1 + prng.below(3)), flags: flags,
                    timestamp: imported ? importBase + UInt64(index) + 1 : 0))
        }
        return LedgerRequest(operation: .createAccounts, body: Self.encode([events], elementSize: 128))
    }

    mutating func createTransfers(importBase: UInt64, imported: Bool) -> LedgerRequest {
        let count = prng.int(in: 1...batchEventsMax)
        var events: [Transfer] = []
        for index in 0..<count {
            var t = Transfer(
                id: freshOrKnownTransferId(), debitAccountId: anyAccount(), creditAccountId: anyAccount(),
                amount: UInt128(prng.below(40)), userData128: UInt128(prng.below(3)), userData64: prng.below(3),
                userData32: UInt32(prng.below(3)), ledger: prng.chance(percent: 95) ? 1 : 2,
                code: UInt16(1 + prng.below(3)))
            let kind = prng.int(in: 0...99)
            switch kind {
            case 0..<22:
                t.flags.insert(.pending)
                if !imported && timeoutsAsked < timeoutsMax && prng.chance(percent: 60) {
                    t.timeout = UInt32(1 + prng.below(3))
                    timeoutsAsked += 1
                }
                if prng.chance(percent: 4) { t.flags.insert(prng.chance(percent: 50) ? .closingDebit : .closingCredit) }
                pendingIds.append(t.id)
            case 22..<40 where !pendingIds.isEmpty:
                t.flags.insert(prng.chance(percent: 60) ? .postPendingTransfer : .voidPendingTransfer)
                t.pendingId = pendingIds[prng.int(in: 0...pendingIds.count - 1)]
                if prng.chance(percent: 60) {
                    t.debitAccountId = 0
                    t.creditAccountId = 0
                    t.ledger = 0
                    t.code = 0
                }
                if prng.chance(percent: 50) { t.amount = prng.chance(percent: 50) ? UInt128.max : 0 }
            case 40..<46:
                t.flags.insert(prng.chance(percent: 50) ? .balancingDebit : .balancingCredit)
            default:
                break
            }
            if prng.chance(percent: 15) { t.flags.insert(.linked) }
            if imported {
                t.flags.insert(.imported)
                t.timestamp = importBase + UInt64(index) + 1
            }
            events.append(t)
        }
        return LedgerRequest(operation: .createTransfers, body: Self.encode([events], elementSize: 128))
    }

    private mutating func freshOrKnownTransferId() -> UInt128 {
        if !transferIds.isEmpty && prng.chance(percent: 6) {
            return transferIds[prng.int(in: 0...transferIds.count - 1)]
        }
        let id = nextId
        nextId += 1
        transferIds.append(id)
        return id
    }

    private mutating func anyAccount() -> UInt128 {
        if prng.chance(percent: 3) { return prng.chance(percent: 50) ? 0 : 999_999 }
        return accountIds[prng.int(in: 0...accountIds.count - 1)]
    }

    // MARK: Reads

    mutating func lookupAccounts() -> LedgerRequest {
        var ids: [UInt128] = []
        for _ in 0..<prng.int(in: 1...8) { ids.append(prng.chance(percent: 10) ? 424_242 : anyAccount()) }
        return LedgerRequest(operation: .lookupAccounts, body: Self.encode([ids], elementSize: 16))
    }

    mutating func lookupTransfers() -> LedgerRequest {
        var ids: [UInt128] = []
        for _ in 0..<prng.int(in: 1...8) {
            ids.append(transferIds.isEmpty || prng.chance(percent: 10) ? 525_252 : transferIds[prng.int(in: 0...transferIds.count - 1)])
        }
        return LedgerRequest(operation: .lookupTransfers, body: Self.encode([ids], elementSize: 16))
    }

    mutating func accountFilter(_ operation: LedgerKit.Operation) -> LedgerRequest {
        var flags: AccountFilterFlags = []
        switch prng.int(in: 0...2) {
        case 0: flags = [.debits]
        case 1: flags = [.credits]
        default: flags = [.debits, .credits]
        }
        if prng.chance(percent: 40) { flags.insert(.reversed) }
        let filter = AccountFilter(
            accountId: anyAccount(), userData128: prng.chance(percent: 20) ? UInt128(prng.below(3)) : 0,
            userData64: prng.chance(percent: 20) ? prng.below(3) : 0,
            userData32: prng.chance(percent: 10) ? UInt32(prng.below(3)) : 0,
            code: prng.chance(percent: 20) ? UInt16(prng.below(4)) : 0,
            timestampMin: 0, timestampMax: 0, limit: UInt32(prng.int(in: 1...40)), flags: flags)
        let batches = prng.chance(percent: 15) ? [[filter], [filter]] : [[filter]]
        return LedgerRequest(operation: operation, body: Self.encode(batches, elementSize: 128))
    }

    mutating func queryFilter(_ operation: LedgerKit.Operation) -> LedgerRequest {
        let filter = QueryFilter(
            userData128: prng.chance(percent: 35) ? UInt128(prng.below(3)) : 0,
            userData64: prng.chance(percent: 35) ? prng.below(3) : 0,
            userData32: prng.chance(percent: 25) ? UInt32(prng.below(3)) : 0,
            ledger: prng.chance(percent: 30) ? UInt32(1 + prng.below(2)) : 0,
            code: prng.chance(percent: 30) ? UInt16(1 + prng.below(3)) : 0,
            limit: UInt32(prng.int(in: 1...50)), flags: prng.chance(percent: 40) ? [.reversed] : [])
        return LedgerRequest(operation: operation, body: Self.encode([[filter]], elementSize: 64))
    }

    mutating func changeEvents() -> LedgerRequest {
        let filter = ChangeEventsFilter(timestampMin: 0, timestampMax: 0, limit: UInt32(prng.int(in: 1...60)))
        let bytes = withUnsafeBytes(of: filter) { Array($0) }
        return LedgerRequest(operation: .getChangeEvents, body: bytes)
    }

    // MARK: Encoding

    static func encode<Event>(_ batches: [[Event]], elementSize: Int) -> [UInt8] {
        precondition(MemoryLayout<Event>.stride == elementSize, "the event type has the wire size")
        let count = batches.reduce(0) { $0 + $1.count } * elementSize
            + MultiBatch.trailerSize(elementSize: elementSize, batchCount: batches.count)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        defer { buffer.deallocate() }
        var writer = MultiBatchWriter(buffer: buffer, elementSize: elementSize, batchCount: batches.count)
        for batch in batches {
            batch.withUnsafeBytes { writer.freeSpace.copyMemory(from: $0) }
            writer.finishBatch(elementCount: batch.count)
        }
        let size = writer.finish()
        return Array(UnsafeRawBufferPointer(rebasing: buffer[0..<size]))
    }
}
