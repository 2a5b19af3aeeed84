import LedgerKit
@testable import LedgerLSM
import LedgerStateMachine
import Testing

@Suite struct StoreRecordsTests {
    @Test func transferPendingRecordLayout() {
        typealias R = TransferPendingRecord
        #expect(MemoryLayout<R>.size == 16)
        #expect(MemoryLayout<R>.stride == 16)
        #expect(MemoryLayout<R>.offset(of: \.timestamp) == 0)
        #expect(MemoryLayout<R>.offset(of: \.statusRaw) == 8)
        #expect(MemoryLayout<R>.offset(of: \.reserved8) == 9)
        #expect(MemoryLayout<R>.offset(of: \.reserved16) == 10)
        #expect(MemoryLayout<R>.offset(of: \.reserved32) == 12)
        let record = R(timestamp: 0x0102_0304_0506_0708, status: .posted)
        let bytes = withUnsafeBytes(of: record) { Array($0) }
        #expect(bytes == [8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0], "little-endian timestamp, status, zeros")
        #expect(record.key == 0x0102_0304_0506_0708, "keyed by the transfer's timestamp")
        #expect(!record.isTombstone)
        #expect(!R.hasGrooveId && record.grooveId == nil, "an id-less groove object")
    }

    @Test func transferPendingRecordStatusDecodes() throws {
        for status in [PendingStatus.none, .pending, .posted, .voided, .expired] {
            #expect(TransferPendingRecord(timestamp: 9, status: status).status == status)
            #expect(try TransferPendingRecord(timestamp: 9, status: status).decodeStatus() == status)
        }
        var record = TransferPendingRecord(timestamp: 9, status: .pending)
        record.statusRaw = 5
        #expect(record.status == nil, "an unknown status byte decodes to nil")
        #expect(throws: StoreRecordError.unknownPendingStatus(5, timestamp: 9)) { try record.decodeStatus() }
        record.statusRaw = 0xff
        #expect(throws: StoreRecordError.unknownPendingStatus(0xff, timestamp: 9)) { try record.decodeStatus() }
    }

    @Test func accountEventRecordLayout() {
        typealias R = AccountEventRecord
        typealias S = AccountSnapshotRecord
        #expect(MemoryLayout<S>.size == 96)
        #expect(MemoryLayout<S>.stride == 96)
        let snapshotOffsets: [(PartialKeyPath<S>, Int)] = [
            (\S.id, 0), (\S.debitsPending, 16), (\S.debitsPosted, 32), (\S.creditsPending, 48),
            (\S.creditsPosted, 64), (\S.timestamp, 80), (\S.flagsRaw, 88), (\S.reserved16, 90), (\S.reserved32, 92),
        ]
        for (path, offset) in snapshotOffsets {
            #expect(MemoryLayout<S>.offset(of: path) == offset, "snapshot field at \(offset)")
        }
        #expect(MemoryLayout<R>.size == 256)
        #expect(MemoryLayout<R>.stride == 256)
        let offsets: [(PartialKeyPath<R>, Int)] = [
            (\R.timestamp, 0), (\R.transferTimestamp, 8), (\R.amount, 16), (\R.pendingId, 32), (\R.ledger, 48),
            (\R.pendingStatusRaw, 52), (\R.reserved8, 53), (\R.reserved16, 54), (\R.reserved64, 56),
            (\R.debitAccount, 64), (\R.creditAccount, 160), (\R.debitAccount.timestamp, 144),
            (\R.creditAccount.flagsRaw, 248),
        ]
        for (path, offset) in offsets {
            #expect(MemoryLayout<R>.offset(of: path) == offset, "event field at \(offset)")
        }
        #expect(!R.hasGrooveId, "an id-less groove object")
    }

    static func randomSnapshot(_ prng: inout PRNG) -> AccountSnapshot {
        func u128(_ prng: inout PRNG) -> UInt128 { (UInt128(prng.next()) << 64) | UInt128(prng.next()) }
        return AccountSnapshot(Account(
            id: u128(&prng), debitsPending: u128(&prng), debitsPosted: u128(&prng), creditsPending: u128(&prng),
            creditsPosted: u128(&prng), userData128: u128(&prng), ledger: UInt32(truncatingIfNeeded: prng.next()),
            flags: AccountFlags(rawValue: UInt16(truncatingIfNeeded: prng.next())), timestamp: prng.next()))
    }

    static func randomEvent(_ prng: inout PRNG) -> AccountEvent {
        let statuses: [PendingStatus] = [.none, .pending, .posted, .voided, .expired]
        return AccountEvent(
            timestamp: prng.next(), transferTimestamp: prng.next(),
            amount: (UInt128(prng.next()) << 64) | UInt128(prng.next()),
            pendingId: (UInt128(prng.next()) << 64) | UInt128(prng.next()),
            debitAccount: randomSnapshot(&prng), creditAccount: randomSnapshot(&prng),
            ledger: UInt32(truncatingIfNeeded: prng.next()), pendingStatus: statuses[Int(prng.below(5))])
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func accountEventRoundTripsExactly(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        for _ in 0..<500 {
            let event = Self.randomEvent(&prng)
            let record = AccountEventRecord(event)
            #expect(record.event == event, "seed \(seed): the record gives back the event")
            #expect(try record.decodeEvent() == event, "seed \(seed): the throwing decode agrees")
            #expect(record.key == event.timestamp, "seed \(seed): keyed by the event's timestamp")
            // The reserved bytes are zero: the bytes are a function of the event alone.
            let bytes = withUnsafeBytes(of: record) { Array($0) }
            #expect(bytes[53..<64].allSatisfy { $0 == 0 }, "seed \(seed): reserved bytes are zero")
            #expect(bytes[154..<160].allSatisfy { $0 == 0 }, "seed \(seed): debit snapshot padding is zero")
            #expect(bytes[250..<256].allSatisfy { $0 == 0 }, "seed \(seed): credit snapshot padding is zero")
            #expect(bytes[52] == event.pendingStatus.rawValue, "seed \(seed): the status byte at 52")
        }
    }

    @Test func accountEventWithAnUnknownStatusIsATypedError() {
        var prng = PRNG(seed: 77)
        var record = AccountEventRecord(Self.randomEvent(&prng))
        record.pendingStatusRaw = 9
        #expect(record.event == nil, "an unknown status byte decodes to nil")
        #expect(throws: StoreRecordError.unknownPendingStatus(9, timestamp: record.timestamp)) { try record.decodeEvent() }
    }
}
