// Byte layouts of every wire record, flag masks and status codes, checked against the specs
// (state-machine.md §1, wire-protocol.md §9). Every expected number here is copied from the spec
// tables, never derived from the source.

import Testing

@testable import LedgerKit

// MARK: - Helpers

/// Checks that `keyPath` is a stored field at `offset` whose type is `size` bytes.
private func expectField<Root, Value>(
    _ keyPath: KeyPath<Root, Value>, at offset: Int, size: Int,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        MemoryLayout<Root>.offset(of: keyPath) == offset, "offset of \(keyPath)",
        sourceLocation: sourceLocation)
    #expect(MemoryLayout<Value>.size == size, "size of \(keyPath)", sourceLocation: sourceLocation)
}

/// Checks a reserved area: its first field starts at `offset`, and the field after it starts
/// exactly `size` bytes later (or the record ends there, if `next` is nil).
private func expectReserved<Root>(
    _ first: PartialKeyPath<Root>, at offset: Int, size: Int, next: PartialKeyPath<Root>?,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        MemoryLayout<Root>.offset(of: first) == offset, "reserved area starts at \(offset)",
        sourceLocation: sourceLocation)
    if let next {
        #expect(
            MemoryLayout<Root>.offset(of: next) == offset + size,
            "the field after the reserved area starts at \(offset + size)",
            sourceLocation: sourceLocation)
    } else {
        #expect(
            MemoryLayout<Root>.size == offset + size, "the reserved area ends the record",
            sourceLocation: sourceLocation)
    }
}

private func expectRecord<T>(
    _ type: T.Type, size: Int, alignment: Int? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(MemoryLayout<T>.size == size, "size of \(T.self)", sourceLocation: sourceLocation)
    #expect(MemoryLayout<T>.stride == size, "stride of \(T.self)", sourceLocation: sourceLocation)
    if let alignment {
        #expect(
            MemoryLayout<T>.alignment == alignment, "alignment of \(T.self)",
            sourceLocation: sourceLocation)
    }
}

/// Little-endian integer assembled from `bytes[offset..<offset + size]`, by arithmetic (no
/// memory reinterpretation), so it is independent of the layout under test.
private func littleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as: T.Type) -> T {
    var value: T = 0
    for index in (0..<MemoryLayout<T>.size).reversed() {
        value = value << 8 | T(bytes[offset + index])
    }
    return value
}

/// The `size` little-endian bytes of `value`, by arithmetic.
private func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

private func bytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// A distinct byte at every position: 1, 2, 3, … (wrapping past 255, never 0 in the first 255).
private func distinctPattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &+ 1) }
}

/// Loads a `T` from raw bytes (aligned copy).
private func load<T>(_ type: T.Type, from bytes: [UInt8]) -> T {
    precondition(bytes.count == MemoryLayout<T>.size)
    let buffer = UnsafeMutableRawBufferPointer.allocate(
        byteCount: bytes.count, alignment: MemoryLayout<T>.alignment)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: bytes)
    return buffer.load(as: T.self)
}

// MARK: - Records

@Suite struct LayoutTests {
    @Test func accountLayout() {
        expectRecord(Account.self, size: 128, alignment: 16)
        expectField(\Account.id, at: 0, size: 16)
        expectField(\Account.debitsPending, at: 16, size: 16)
        expectField(\Account.debitsPosted, at: 32, size: 16)
        expectField(\Account.creditsPending, at: 48, size: 16)
        expectField(\Account.creditsPosted, at: 64, size: 16)
        expectField(\Account.userData128, at: 80, size: 16)
        expectField(\Account.userData64, at: 96, size: 8)
        expectField(\Account.userData32, at: 104, size: 4)
        expectField(\Account.reserved, at: 108, size: 4)
        expectReserved(\Account.reserved, at: 108, size: 4, next: \Account.ledger)
        expectField(\Account.ledger, at: 112, size: 4)
        expectField(\Account.code, at: 116, size: 2)
        expectField(\Account.flags, at: 118, size: 2)
        expectField(\Account.timestamp, at: 120, size: 8)
        #expect(Constants.accountSize == 128)
    }

    @Test func transferLayout() {
        expectRecord(Transfer.self, size: 128, alignment: 16)
        expectField(\Transfer.id, at: 0, size: 16)
        expectField(\Transfer.debitAccountId, at: 16, size: 16)
        expectField(\Transfer.creditAccountId, at: 32, size: 16)
        expectField(\Transfer.amount, at: 48, size: 16)
        expectField(\Transfer.pendingId, at: 64, size: 16)
        expectField(\Transfer.userData128, at: 80, size: 16)
        expectField(\Transfer.userData64, at: 96, size: 8)
        expectField(\Transfer.userData32, at: 104, size: 4)
        expectField(\Transfer.timeout, at: 108, size: 4)
        expectField(\Transfer.ledger, at: 112, size: 4)
        expectField(\Transfer.code, at: 116, size: 2)
        expectField(\Transfer.flags, at: 118, size: 2)
        expectField(\Transfer.timestamp, at: 120, size: 8)
        #expect(Constants.transferSize == 128)
    }

    @Test func accountFilterLayout() {
        expectRecord(AccountFilter.self, size: 128, alignment: 16)
        expectField(\AccountFilter.accountId, at: 0, size: 16)
        expectField(\AccountFilter.userData128, at: 16, size: 16)
        expectField(\AccountFilter.userData64, at: 32, size: 8)
        expectField(\AccountFilter.userData32, at: 40, size: 4)
        expectField(\AccountFilter.code, at: 44, size: 2)
        // Reserved: 58 bytes at 46, tiled by a u16 and a 56-byte block.
        expectReserved(\AccountFilter.reservedHead, at: 46, size: 58, next: \AccountFilter.timestampMin)
        expectField(\AccountFilter.reservedHead, at: 46, size: 2)
        expectField(\AccountFilter.reservedTail, at: 48, size: 56)
        expectField(\AccountFilter.timestampMin, at: 104, size: 8)
        expectField(\AccountFilter.timestampMax, at: 112, size: 8)
        expectField(\AccountFilter.limit, at: 120, size: 4)
        expectField(\AccountFilter.flags, at: 124, size: 4)
        #expect(Constants.accountFilterSize == 128)
    }

    @Test func queryFilterLayout() {
        expectRecord(QueryFilter.self, size: 64, alignment: 16)
        expectField(\QueryFilter.userData128, at: 0, size: 16)
        expectField(\QueryFilter.userData64, at: 16, size: 8)
        expectField(\QueryFilter.userData32, at: 24, size: 4)
        expectField(\QueryFilter.ledger, at: 28, size: 4)
        expectField(\QueryFilter.code, at: 32, size: 2)
        // Reserved: 6 bytes at 34.
        expectReserved(\QueryFilter.reservedHead, at: 34, size: 6, next: \QueryFilter.timestampMin)
        expectField(\QueryFilter.reservedHead, at: 34, size: 2)
        expectField(\QueryFilter.reservedTail, at: 36, size: 4)
        expectField(\QueryFilter.timestampMin, at: 40, size: 8)
        expectField(\QueryFilter.timestampMax, at: 48, size: 8)
        expectField(\QueryFilter.limit, at: 56, size: 4)
        expectField(\QueryFilter.flags, at: 60, size: 4)
        #expect(Constants.queryFilterSize == 64)
    }

    @Test func accountBalanceLayout() {
        expectRecord(AccountBalance.self, size: 128, alignment: 16)
        expectField(\AccountBalance.debitsPending, at: 0, size: 16)
        expectField(\AccountBalance.debitsPosted, at: 16, size: 16)
        expectField(\AccountBalance.creditsPending, at: 32, size: 16)
        expectField(\AccountBalance.creditsPosted, at: 48, size: 16)
        expectField(\AccountBalance.timestamp, at: 64, size: 8)
        // Reserved: 56 bytes at 72, to the end of the record.
        expectReserved(\AccountBalance.reserved, at: 72, size: 56, next: nil)
        expectField(\AccountBalance.reserved, at: 72, size: 56)
        #expect(Constants.accountBalanceSize == 128)
    }

    @Test func changeEventsFilterLayout() {
        expectRecord(ChangeEventsFilter.self, size: 64)
        expectField(\ChangeEventsFilter.timestampMin, at: 0, size: 8)
        expectField(\ChangeEventsFilter.timestampMax, at: 8, size: 8)
        expectField(\ChangeEventsFilter.limit, at: 16, size: 4)
        // Reserved: 44 bytes at 20, to the end of the record.
        expectReserved(\ChangeEventsFilter.reservedHead, at: 20, size: 44, next: nil)
        expectField(\ChangeEventsFilter.reservedHead, at: 20, size: 4)
        expectField(\ChangeEventsFilter.reservedTail, at: 24, size: 40)
        #expect(Constants.changeEventsFilterSize == 64)
    }

    @Test func changeEventLayout() {
        expectRecord(ChangeEvent.self, size: 384, alignment: 16)
        expectField(\ChangeEvent.transferId, at: 0, size: 16)
        expectField(\ChangeEvent.transferAmount, at: 16, size: 16)
        expectField(\ChangeEvent.transferPendingId, at: 32, size: 16)
        expectField(\ChangeEvent.transferUserData128, at: 48, size: 16)
        expectField(\ChangeEvent.transferUserData64, at: 64, size: 8)
        expectField(\ChangeEvent.transferUserData32, at: 72, size: 4)
        expectField(\ChangeEvent.transferTimeout, at: 76, size: 4)
        expectField(\ChangeEvent.transferCode, at: 80, size: 2)
        expectField(\ChangeEvent.transferFlags, at: 82, size: 2)
        expectField(\ChangeEvent.ledger, at: 84, size: 4)
        expectField(\ChangeEvent.type, at: 88, size: 1)
        // Reserved: 39 bytes at 89, tiled by u8, u16, u32 and a 32-byte block.
        expectReserved(\ChangeEvent.reserved0, at: 89, size: 39, next: \ChangeEvent.debitAccountId)
        expectField(\ChangeEvent.reserved0, at: 89, size: 1)
        expectField(\ChangeEvent.reserved1, at: 90, size: 2)
        expectField(\ChangeEvent.reserved2, at: 92, size: 4)
        expectField(\ChangeEvent.reserved3, at: 96, size: 32)
        expectField(\ChangeEvent.debitAccountId, at: 128, size: 16)
        expectField(\ChangeEvent.debitAccountDebitsPending, at: 144, size: 16)
        expectField(\ChangeEvent.debitAccountDebitsPosted, at: 160, size: 16)
        expectField(\ChangeEvent.debitAccountCreditsPending, at: 176, size: 16)
        expectField(\ChangeEvent.debitAccountCreditsPosted, at: 192, size: 16)
        expectField(\ChangeEvent.debitAccountUserData128, at: 208, size: 16)
        expectField(\ChangeEvent.debitAccountUserData64, at: 224, size: 8)
        expectField(\ChangeEvent.debitAccountUserData32, at: 232, size: 4)
        expectField(\ChangeEvent.debitAccountCode, at: 236, size: 2)
        expectField(\ChangeEvent.debitAccountFlags, at: 238, size: 2)
        expectField(\ChangeEvent.creditAccountId, at: 240, size: 16)
        expectField(\ChangeEvent.creditAccountDebitsPending, at: 256, size: 16)
        expectField(\ChangeEvent.creditAccountDebitsPosted, at: 272, size: 16)
        expectField(\ChangeEvent.creditAccountCreditsPending, at: 288, size: 16)
        expectField(\ChangeEvent.creditAccountCreditsPosted, at: 304, size: 16)
        expectField(\ChangeEvent.creditAccountUserData128, at: 320, size: 16)
        expectField(\ChangeEvent.creditAccountUserData64, at: 336, size: 8)
        expectField(\ChangeEvent.creditAccountUserData32, at: 344, size: 4)
        expectField(\ChangeEvent.creditAccountCode, at: 348, size: 2)
        expectField(\ChangeEvent.creditAccountFlags, at: 350, size: 2)
        expectField(\ChangeEvent.timestamp, at: 352, size: 8)
        expectField(\ChangeEvent.transferTimestamp, at: 360, size: 8)
        expectField(\ChangeEvent.debitAccountTimestamp, at: 368, size: 8)
        expectField(\ChangeEvent.creditAccountTimestamp, at: 376, size: 8)
        #expect(Constants.changeEventSize == 384)
    }

    @Test func createResultLayouts() {
        expectRecord(CreateAccountResult.self, size: 16, alignment: 8)
        expectField(\CreateAccountResult.timestamp, at: 0, size: 8)
        expectField(\CreateAccountResult.status, at: 8, size: 4)
        expectField(\CreateAccountResult.reserved, at: 12, size: 4)
        expectReserved(\CreateAccountResult.reserved, at: 12, size: 4, next: nil)

        expectRecord(CreateTransferResult.self, size: 16, alignment: 8)
        expectField(\CreateTransferResult.timestamp, at: 0, size: 8)
        expectField(\CreateTransferResult.status, at: 8, size: 4)
        expectField(\CreateTransferResult.reserved, at: 12, size: 4)
        expectReserved(\CreateTransferResult.reserved, at: 12, size: 4, next: nil)

        #expect(Constants.createResultSize == 16)
        #expect(CreateAccountResult(timestamp: 1, status: .created).reserved == 0)
        #expect(CreateTransferResult(timestamp: 1, status: .created).reserved == 0)
    }

    @Test func scalarWireTypes() {
        expectRecord(AccountFlags.self, size: 2, alignment: 2)
        expectRecord(TransferFlags.self, size: 2, alignment: 2)
        expectRecord(AccountFilterFlags.self, size: 4, alignment: 4)
        expectRecord(QueryFilterFlags.self, size: 4, alignment: 4)
        expectRecord(CreateAccountStatus.self, size: 4, alignment: 4)
        expectRecord(CreateTransferStatus.self, size: 4, alignment: 4)
        expectRecord(ChangeEventType.self, size: 1, alignment: 1)
        expectRecord(Padding32.self, size: 32)
        expectRecord(Padding40.self, size: 40)
        expectRecord(Padding56.self, size: 56)
        expectRecord(UInt128.self, size: 16, alignment: 16)
    }

    @Test func defaultRecordsAreAllZeroBytes() {
        #expect(bytes(of: Account()) == [UInt8](repeating: 0, count: 128))
        #expect(bytes(of: Transfer()) == [UInt8](repeating: 0, count: 128))
        #expect(bytes(of: AccountFilter()) == [UInt8](repeating: 0, count: 128))
        #expect(bytes(of: QueryFilter()) == [UInt8](repeating: 0, count: 64))
        #expect(bytes(of: AccountBalance()) == [UInt8](repeating: 0, count: 128))
        #expect(bytes(of: ChangeEventsFilter()) == [UInt8](repeating: 0, count: 64))
        #expect(bytes(of: ChangeEvent()) == [UInt8](repeating: 0, count: 384))
        #expect(AccountFilter().reservedIsZero)
        #expect(QueryFilter().reservedIsZero)
        #expect(ChangeEventsFilter().reservedIsZero)
    }

    @Test func reservedIsZeroSeesEveryReservedByte() {
        // Set each reserved byte in turn through the raw bytes: `reservedIsZero` must notice.
        func check<T>(_ value: T, reserved: Range<Int>, isZero: (T) -> Bool) {
            for offset in reserved {
                var raw = bytes(of: value)
                raw[offset] = 0x80
                #expect(!isZero(load(T.self, from: raw)), "\(T.self) reserved byte \(offset)")
            }
        }
        check(AccountFilter(), reserved: 46..<104) { $0.reservedIsZero }
        check(QueryFilter(), reserved: 34..<40) { $0.reservedIsZero }
        check(ChangeEventsFilter(), reserved: 20..<64) { $0.reservedIsZero }
        check(AccountBalance(), reserved: 72..<128) { $0.reserved.isZero }
    }

    // MARK: Byte-level round trips

    @Test func accountBytesAtSpecOffsets() {
        let account = Account(
            id: 0x0F0E_0D0C_0B0A_0908_0706_0504_0302_0100,
            debitsPending: 0x1F1E_1D1C_1B1A_1918_1716_1514_1312_1110,
            debitsPosted: 0x2F2E_2D2C_2B2A_2928_2726_2524_2322_2120,
            creditsPending: 0x3F3E_3D3C_3B3A_3938_3736_3534_3332_3130,
            creditsPosted: 0x4F4E_4D4C_4B4A_4948_4746_4544_4342_4140,
            userData128: 0x5F5E_5D5C_5B5A_5958_5756_5554_5352_5150,
            userData64: 0x6766_6564_6362_6160,
            userData32: 0x6B6A_6968,
            reserved: 0x6F6E_6D6C,
            ledger: 0x7372_7170,
            code: 0x7574,
            flags: AccountFlags(rawValue: 0x7776),
            timestamp: 0x7F7E_7D7C_7B7A_7978)
        let raw = bytes(of: account)
        // Every byte i holds 0x00 + i: each field sits exactly at its spec offset, little-endian.
        #expect(raw == (0..<128).map { UInt8($0) })
        // Spot checks, spelled out.
        #expect(Array(raw[0..<4]) == [0x00, 0x01, 0x02, 0x03])
        #expect(Array(raw[15..<16]) == [0x0F])
        #expect(Array(raw[96..<104]) == [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67])
        #expect(Array(raw[108..<112]) == [0x6C, 0x6D, 0x6E, 0x6F])
        #expect(Array(raw[112..<116]) == [0x70, 0x71, 0x72, 0x73])  // ledger
        #expect(Array(raw[116..<118]) == [0x74, 0x75])  // code
        #expect(Array(raw[118..<120]) == [0x76, 0x77])  // flags
        #expect(Array(raw[120..<128]) == [0x78, 0x79, 0x7A, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F])
        // And back.
        #expect(load(Account.self, from: raw) == account)
    }

    @Test func accountFromWireBytes() {
        // Decode a byte image built field by field with arithmetic, independent of the layout.
        var raw = [UInt8](repeating: 0, count: 128)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            raw.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: littleEndianBytes(value))
        }
        put(UInt128(1) << 127 | 0xABCD, at: 0)
        put(UInt128(2), at: 16)
        put(UInt128(3), at: 32)
        put(UInt128(4), at: 48)
        put(UInt128(5), at: 64)
        put(UInt128.max - 6, at: 80)
        put(UInt64(0xDEAD_BEEF_0000_0007), at: 96)
        put(UInt32(8), at: 104)
        put(UInt32(9), at: 108)
        put(UInt32(700), at: 112)
        put(UInt16(10), at: 116)
        put(UInt16(0x0028), at: 118)
        put(UInt64(1_700_000_000_000_000_101), at: 120)
        let account = load(Account.self, from: raw)
        #expect(account.id == UInt128(1) << 127 | 0xABCD)
        #expect(account.debitsPending == 2)
        #expect(account.debitsPosted == 3)
        #expect(account.creditsPending == 4)
        #expect(account.creditsPosted == 5)
        #expect(account.userData128 == UInt128.max - 6)
        #expect(account.userData64 == 0xDEAD_BEEF_0000_0007)
        #expect(account.userData32 == 8)
        #expect(account.reserved == 9)
        #expect(account.ledger == 700)
        #expect(account.code == 10)
        #expect(account.flags == [.history, .closed])
        #expect(account.timestamp == 1_700_000_000_000_000_101)
        // The golden create_accounts event of wire §13.3: {id 1, ledger 700, code 10}.
        let golden = bytes(of: Account(id: 1, ledger: 700, code: 10))
        var expected = [UInt8](repeating: 0, count: 128)
        expected[0] = 1
        expected[112] = 0xBC
        expected[113] = 0x02
        expected[116] = 10
        #expect(golden == expected)
    }

    @Test func transferBytesAtSpecOffsets() {
        let pattern = distinctPattern(128)
        let transfer = Transfer(
            id: littleEndian(pattern, 0, as: UInt128.self),
            debitAccountId: littleEndian(pattern, 16, as: UInt128.self),
            creditAccountId: littleEndian(pattern, 32, as: UInt128.self),
            amount: littleEndian(pattern, 48, as: UInt128.self),
            pendingId: littleEndian(pattern, 64, as: UInt128.self),
            userData128: littleEndian(pattern, 80, as: UInt128.self),
            userData64: littleEndian(pattern, 96, as: UInt64.self),
            userData32: littleEndian(pattern, 104, as: UInt32.self),
            timeout: littleEndian(pattern, 108, as: UInt32.self),
            ledger: littleEndian(pattern, 112, as: UInt32.self),
            code: littleEndian(pattern, 116, as: UInt16.self),
            flags: TransferFlags(rawValue: littleEndian(pattern, 118, as: UInt16.self)),
            timestamp: littleEndian(pattern, 120, as: UInt64.self))
        let raw = bytes(of: transfer)
        #expect(raw == pattern)
        #expect(Array(raw[108..<112]) == [109, 110, 111, 112])  // timeout
        #expect(Array(raw[112..<116]) == [113, 114, 115, 116])  // ledger
        #expect(load(Transfer.self, from: raw) == transfer)

        // Hand-picked values at a few offsets.
        let simple = Transfer(
            id: 0x0102, amount: UInt128(0xAA) << 120, timeout: 0x0403_0201, ledger: 0x1122_3344,
            code: 0xBEEF, flags: [.pending, .imported], timestamp: 0x0807_0605_0403_0201)
        let simpleRaw = bytes(of: simple)
        #expect(Array(simpleRaw[0..<2]) == [0x02, 0x01])
        #expect(simpleRaw[63] == 0xAA)  // most significant byte of amount (48 + 15)
        #expect(Array(simpleRaw[108..<112]) == [0x01, 0x02, 0x03, 0x04])
        #expect(Array(simpleRaw[112..<116]) == [0x44, 0x33, 0x22, 0x11])
        #expect(Array(simpleRaw[116..<118]) == [0xEF, 0xBE])
        #expect(Array(simpleRaw[118..<120]) == [0x02, 0x01])
        #expect(Array(simpleRaw[120..<128]) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func filterAndResultBytesAtSpecOffsets() {
        let filter = AccountFilter(
            accountId: 0x11, userData128: 0x22, userData64: 0x33, userData32: 0x44, code: 0x55,
            timestampMin: 0x66, timestampMax: 0x77, limit: 0x0102_0304, flags: [.debits, .reversed])
        let filterRaw = bytes(of: filter)
        #expect(filterRaw[0] == 0x11 && filterRaw[16] == 0x22 && filterRaw[32] == 0x33)
        #expect(filterRaw[40] == 0x44 && filterRaw[44] == 0x55)
        #expect(filterRaw[104] == 0x66 && filterRaw[112] == 0x77)
        #expect(Array(filterRaw[120..<124]) == [0x04, 0x03, 0x02, 0x01])
        #expect(Array(filterRaw[124..<128]) == [0x05, 0, 0, 0])
        #expect(filterRaw[46..<104].allSatisfy { $0 == 0 })

        let query = QueryFilter(
            userData128: 0x11, userData64: 0x22, userData32: 0x33, ledger: 0x44, code: 0x55,
            timestampMin: 0x66, timestampMax: 0x77, limit: 0x0A0B_0C0D, flags: .reversed)
        let queryRaw = bytes(of: query)
        #expect(queryRaw[0] == 0x11 && queryRaw[16] == 0x22 && queryRaw[24] == 0x33)
        #expect(queryRaw[28] == 0x44 && queryRaw[32] == 0x55)
        #expect(queryRaw[40] == 0x66 && queryRaw[48] == 0x77)
        #expect(Array(queryRaw[56..<60]) == [0x0D, 0x0C, 0x0B, 0x0A])
        #expect(Array(queryRaw[60..<64]) == [0x01, 0, 0, 0])

        let changes = ChangeEventsFilter(timestampMin: 0x0102, timestampMax: 0x0304, limit: 0x0506)
        let changesRaw = bytes(of: changes)
        #expect(Array(changesRaw[0..<2]) == [0x02, 0x01])
        #expect(Array(changesRaw[8..<10]) == [0x04, 0x03])
        #expect(Array(changesRaw[16..<20]) == [0x06, 0x05, 0, 0])

        let result = CreateTransferResult(
            timestamp: 1_700_000_000_000_000_101, status: .exceedsCredits)
        let resultRaw = bytes(of: result)
        #expect(resultRaw == littleEndianBytes(UInt64(1_700_000_000_000_000_101)) + [54, 0, 0, 0, 0, 0, 0, 0])
        let created = bytes(of: CreateAccountResult(timestamp: 7, status: .created))
        #expect(created == [7, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])

        var event = ChangeEvent()
        event.type = .twoPhaseExpired
        event.ledger = 0x0102_0304
        event.debitAccountFlags = .closed
        event.creditAccountTimestamp = 0x99
        let eventRaw = bytes(of: event)
        #expect(eventRaw[88] == 4)
        #expect(Array(eventRaw[84..<88]) == [4, 3, 2, 1])
        #expect(Array(eventRaw[238..<240]) == [0x20, 0])
        #expect(eventRaw[376] == 0x99)
    }

    // MARK: Flags

    @Test func accountFlagBits() {
        #expect(AccountFlags.linked.rawValue == 0x0001)
        #expect(AccountFlags.debitsMustNotExceedCredits.rawValue == 0x0002)
        #expect(AccountFlags.creditsMustNotExceedDebits.rawValue == 0x0004)
        #expect(AccountFlags.history.rawValue == 0x0008)
        #expect(AccountFlags.imported.rawValue == 0x0010)
        #expect(AccountFlags.closed.rawValue == 0x0020)
        #expect(AccountFlags.padding.rawValue == 0xFFC0)
        let named: AccountFlags = [
            .linked, .debitsMustNotExceedCredits, .creditsMustNotExceedDebits, .history, .imported,
            .closed,
        ]
        #expect(named.rawValue == 0x003F)
        #expect(named.intersection(.padding).isEmpty)
        #expect(named.union(.padding).rawValue == UInt16.max)
    }

    @Test func transferFlagBits() {
        #expect(TransferFlags.linked.rawValue == 0x0001)
        #expect(TransferFlags.pending.rawValue == 0x0002)
        #expect(TransferFlags.postPendingTransfer.rawValue == 0x0004)
        #expect(TransferFlags.voidPendingTransfer.rawValue == 0x0008)
        #expect(TransferFlags.balancingDebit.rawValue == 0x0010)
        #expect(TransferFlags.balancingCredit.rawValue == 0x0020)
        #expect(TransferFlags.closingDebit.rawValue == 0x0040)
        #expect(TransferFlags.closingCredit.rawValue == 0x0080)
        #expect(TransferFlags.imported.rawValue == 0x0100)
        #expect(TransferFlags.padding.rawValue == 0xFE00)
        let named: TransferFlags = [
            .linked, .pending, .postPendingTransfer, .voidPendingTransfer, .balancingDebit,
            .balancingCredit, .closingDebit, .closingCredit, .imported,
        ]
        #expect(named.rawValue == 0x01FF)
        #expect(named.intersection(.padding).isEmpty)
        #expect(named.union(.padding).rawValue == UInt16.max)
    }

    @Test func filterFlagBits() {
        #expect(AccountFilterFlags.debits.rawValue == 0x1)
        #expect(AccountFilterFlags.credits.rawValue == 0x2)
        #expect(AccountFilterFlags.reversed.rawValue == 0x4)
        #expect(AccountFilterFlags.padding.rawValue == 0xFFFF_FFF8)
        let accountNamed: AccountFilterFlags = [.debits, .credits, .reversed]
        #expect(accountNamed.intersection(.padding).isEmpty)
        #expect(accountNamed.union(.padding).rawValue == UInt32.max)

        #expect(QueryFilterFlags.reversed.rawValue == 0x1)
        #expect(QueryFilterFlags.padding.rawValue == 0xFFFF_FFFE)
        #expect(QueryFilterFlags.reversed.intersection(.padding).isEmpty)
        #expect(QueryFilterFlags.reversed.union(.padding).rawValue == UInt32.max)
    }

    // MARK: Change event type

    @Test func changeEventTypeValues() {
        let table: [(ChangeEventType, String, UInt8)] = [
            (.singlePhase, "single_phase", 0),
            (.twoPhasePending, "two_phase_pending", 1),
            (.twoPhasePosted, "two_phase_posted", 2),
            (.twoPhaseVoided, "two_phase_voided", 3),
            (.twoPhaseExpired, "two_phase_expired", 4),
        ]
        for (type, name, value) in table {
            #expect(type.rawValue == value, "\(name)")
            #expect(ChangeEventType(rawValue: value).description == name)
            #expect(ChangeEventType(rawValue: value) == type)
        }
        // An unknown value stays representable and is not mistaken for a known one.
        let unknown = ChangeEventType(rawValue: 5)
        #expect(!table.map(\.0).contains(unknown))
        #expect(!table.map(\.1).contains(unknown.description))
    }
}

// MARK: - Status codes

/// CreateAccountStatus, wire-protocol §9.9 (plus `deprecated_ok` = 0 from state-machine §1.6).
private let accountStatusTable: [(CreateAccountStatus, String, UInt32)] = [
    (.deprecatedOk, "deprecated_ok", 0),
    (.linkedEventFailed, "linked_event_failed", 1),
    (.linkedEventChainOpen, "linked_event_chain_open", 2),
    (.timestampMustBeZero, "timestamp_must_be_zero", 3),
    (.reservedField, "reserved_field", 4),
    (.reservedFlag, "reserved_flag", 5),
    (.idMustNotBeZero, "id_must_not_be_zero", 6),
    (.idMustNotBeIntMax, "id_must_not_be_int_max", 7),
    (.flagsAreMutuallyExclusive, "flags_are_mutually_exclusive", 8),
    (.debitsPendingMustBeZero, "debits_pending_must_be_zero", 9),
    (.debitsPostedMustBeZero, "debits_posted_must_be_zero", 10),
    (.creditsPendingMustBeZero, "credits_pending_must_be_zero", 11),
    (.creditsPostedMustBeZero, "credits_posted_must_be_zero", 12),
    (.ledgerMustNotBeZero, "ledger_must_not_be_zero", 13),
    (.codeMustNotBeZero, "code_must_not_be_zero", 14),
    (.existsWithDifferentFlags, "exists_with_different_flags", 15),
    (.existsWithDifferentUserData128, "exists_with_different_user_data_128", 16),
    (.existsWithDifferentUserData64, "exists_with_different_user_data_64", 17),
    (.existsWithDifferentUserData32, "exists_with_different_user_data_32", 18),
    (.existsWithDifferentLedger, "exists_with_different_ledger", 19),
    (.existsWithDifferentCode, "exists_with_different_code", 20),
    (.exists, "exists", 21),
    (.importedEventExpected, "imported_event_expected", 22),
    (.importedEventNotExpected, "imported_event_not_expected", 23),
    (.importedEventTimestampOutOfRange, "imported_event_timestamp_out_of_range", 24),
    (.importedEventTimestampMustNotAdvance, "imported_event_timestamp_must_not_advance", 25),
    (.importedEventTimestampMustNotRegress, "imported_event_timestamp_must_not_regress", 26),
    (.created, "created", 0xFFFF_FFFF),
]

/// CreateAccountStatus failures in precedence (rank) order, state-machine §1.6.
private let accountStatusPrecedence: [String] = [
    "linked_event_failed",
    "linked_event_chain_open",
    "imported_event_expected",
    "imported_event_not_expected",
    "timestamp_must_be_zero",
    "imported_event_timestamp_out_of_range",
    "imported_event_timestamp_must_not_advance",
    "reserved_field",
    "reserved_flag",
    "id_must_not_be_zero",
    "id_must_not_be_int_max",
    "exists_with_different_flags",
    "exists_with_different_user_data_128",
    "exists_with_different_user_data_64",
    "exists_with_different_user_data_32",
    "exists_with_different_ledger",
    "exists_with_different_code",
    "exists",
    "flags_are_mutually_exclusive",
    "debits_pending_must_be_zero",
    "debits_posted_must_be_zero",
    "credits_pending_must_be_zero",
    "credits_posted_must_be_zero",
    "ledger_must_not_be_zero",
    "code_must_not_be_zero",
    "imported_event_timestamp_must_not_regress",
]

/// CreateTransferStatus, wire-protocol §9.9 (18 is retired: `deprecated_18` in state-machine
/// §1.7; 0 is `deprecated_ok`).
private let transferStatusTable: [(CreateTransferStatus, String, UInt32)] = [
    (.deprecatedOk, "deprecated_ok", 0),
    (.linkedEventFailed, "linked_event_failed", 1),
    (.linkedEventChainOpen, "linked_event_chain_open", 2),
    (.timestampMustBeZero, "timestamp_must_be_zero", 3),
    (.reservedFlag, "reserved_flag", 4),
    (.idMustNotBeZero, "id_must_not_be_zero", 5),
    (.idMustNotBeIntMax, "id_must_not_be_int_max", 6),
    (.flagsAreMutuallyExclusive, "flags_are_mutually_exclusive", 7),
    (.debitAccountIdMustNotBeZero, "debit_account_id_must_not_be_zero", 8),
    (.debitAccountIdMustNotBeIntMax, "debit_account_id_must_not_be_int_max", 9),
    (.creditAccountIdMustNotBeZero, "credit_account_id_must_not_be_zero", 10),
    (.creditAccountIdMustNotBeIntMax, "credit_account_id_must_not_be_int_max", 11),
    (.accountsMustBeDifferent, "accounts_must_be_different", 12),
    (.pendingIdMustBeZero, "pending_id_must_be_zero", 13),
    (.pendingIdMustNotBeZero, "pending_id_must_not_be_zero", 14),
    (.pendingIdMustNotBeIntMax, "pending_id_must_not_be_int_max", 15),
    (.pendingIdMustBeDifferent, "pending_id_must_be_different", 16),
    (.timeoutReservedForPendingTransfer, "timeout_reserved_for_pending_transfer", 17),
    (.deprecated18, "deprecated_18", 18),
    (.ledgerMustNotBeZero, "ledger_must_not_be_zero", 19),
    (.codeMustNotBeZero, "code_must_not_be_zero", 20),
    (.debitAccountNotFound, "debit_account_not_found", 21),
    (.creditAccountNotFound, "credit_account_not_found", 22),
    (.accountsMustHaveTheSameLedger, "accounts_must_have_the_same_ledger", 23),
    (.transferMustHaveTheSameLedgerAsAccounts, "transfer_must_have_the_same_ledger_as_accounts", 24),
    (.pendingTransferNotFound, "pending_transfer_not_found", 25),
    (.pendingTransferNotPending, "pending_transfer_not_pending", 26),
    (.pendingTransferHasDifferentDebitAccountId, "pending_transfer_has_different_debit_account_id", 27),
    (.pendingTransferHasDifferentCreditAccountId, "pending_transfer_has_different_credit_account_id", 28),
    (.pendingTransferHasDifferentLedger, "pending_transfer_has_different_ledger", 29),
    (.pendingTransferHasDifferentCode, "pending_transfer_has_different_code", 30),
    (.exceedsPendingTransferAmount, "exceeds_pending_transfer_amount", 31),
    (.pendingTransferHasDifferentAmount, "pending_transfer_has_different_amount", 32),
    (.pendingTransferAlreadyPosted, "pending_transfer_already_posted", 33),
    (.pendingTransferAlreadyVoided, "pending_transfer_already_voided", 34),
    (.pendingTransferExpired, "pending_transfer_expired", 35),
    (.existsWithDifferentFlags, "exists_with_different_flags", 36),
    (.existsWithDifferentDebitAccountId, "exists_with_different_debit_account_id", 37),
    (.existsWithDifferentCreditAccountId, "exists_with_different_credit_account_id", 38),
    (.existsWithDifferentAmount, "exists_with_different_amount", 39),
    (.existsWithDifferentPendingId, "exists_with_different_pending_id", 40),
    (.existsWithDifferentUserData128, "exists_with_different_user_data_128", 41),
    (.existsWithDifferentUserData64, "exists_with_different_user_data_64", 42),
    (.existsWithDifferentUserData32, "exists_with_different_user_data_32", 43),
    (.existsWithDifferentTimeout, "exists_with_different_timeout", 44),
    (.existsWithDifferentCode, "exists_with_different_code", 45),
    (.exists, "exists", 46),
    (.overflowsDebitsPending, "overflows_debits_pending", 47),
    (.overflowsCreditsPending, "overflows_credits_pending", 48),
    (.overflowsDebitsPosted, "overflows_debits_posted", 49),
    (.overflowsCreditsPosted, "overflows_credits_posted", 50),
    (.overflowsDebits, "overflows_debits", 51),
    (.overflowsCredits, "overflows_credits", 52),
    (.overflowsTimeout, "overflows_timeout", 53),
    (.exceedsCredits, "exceeds_credits", 54),
    (.exceedsDebits, "exceeds_debits", 55),
    (.importedEventExpected, "imported_event_expected", 56),
    (.importedEventNotExpected, "imported_event_not_expected", 57),
    (.importedEventTimestampOutOfRange, "imported_event_timestamp_out_of_range", 58),
    (.importedEventTimestampMustNotAdvance, "imported_event_timestamp_must_not_advance", 59),
    (.importedEventTimestampMustNotRegress, "imported_event_timestamp_must_not_regress", 60),
    (.importedEventTimestampMustPostdateDebitAccount, "imported_event_timestamp_must_postdate_debit_account", 61),
    (.importedEventTimestampMustPostdateCreditAccount, "imported_event_timestamp_must_postdate_credit_account", 62),
    (.importedEventTimeoutMustBeZero, "imported_event_timeout_must_be_zero", 63),
    (.closingTransferMustBePending, "closing_transfer_must_be_pending", 64),
    (.debitAccountAlreadyClosed, "debit_account_already_closed", 65),
    (.creditAccountAlreadyClosed, "credit_account_already_closed", 66),
    (.existsWithDifferentLedger, "exists_with_different_ledger", 67),
    (.idAlreadyFailed, "id_already_failed", 68),
    (.created, "created", 0xFFFF_FFFF),
]

/// CreateTransferStatus failures in precedence (rank) order, state-machine §1.7.
private let transferStatusPrecedence: [String] = [
    "linked_event_failed",
    "linked_event_chain_open",
    "imported_event_expected",
    "imported_event_not_expected",
    "timestamp_must_be_zero",
    "imported_event_timestamp_out_of_range",
    "imported_event_timestamp_must_not_advance",
    "reserved_flag",
    "id_must_not_be_zero",
    "id_must_not_be_int_max",
    "exists_with_different_flags",
    "exists_with_different_pending_id",
    "exists_with_different_timeout",
    "exists_with_different_debit_account_id",
    "exists_with_different_credit_account_id",
    "exists_with_different_amount",
    "exists_with_different_user_data_128",
    "exists_with_different_user_data_64",
    "exists_with_different_user_data_32",
    "exists_with_different_ledger",
    "exists_with_different_code",
    "exists",
    "id_already_failed",
    "flags_are_mutually_exclusive",
    "debit_account_id_must_not_be_zero",
    "debit_account_id_must_not_be_int_max",
    "credit_account_id_must_not_be_zero",
    "credit_account_id_must_not_be_int_max",
    "accounts_must_be_different",
    "pending_id_must_be_zero",
    "pending_id_must_not_be_zero",
    "pending_id_must_not_be_int_max",
    "pending_id_must_be_different",
    "timeout_reserved_for_pending_transfer",
    "closing_transfer_must_be_pending",
    "ledger_must_not_be_zero",
    "code_must_not_be_zero",
    "debit_account_not_found",
    "credit_account_not_found",
    "accounts_must_have_the_same_ledger",
    "transfer_must_have_the_same_ledger_as_accounts",
    "pending_transfer_not_found",
    "pending_transfer_not_pending",
    "pending_transfer_has_different_debit_account_id",
    "pending_transfer_has_different_credit_account_id",
    "pending_transfer_has_different_ledger",
    "pending_transfer_has_different_code",
    "exceeds_pending_transfer_amount",
    "pending_transfer_has_different_amount",
    "pending_transfer_already_posted",
    "pending_transfer_already_voided",
    "pending_transfer_expired",
    "imported_event_timestamp_must_not_regress",
    "imported_event_timestamp_must_postdate_debit_account",
    "imported_event_timestamp_must_postdate_credit_account",
    "imported_event_timeout_must_be_zero",
    "debit_account_already_closed",
    "credit_account_already_closed",
    "overflows_debits_pending",
    "overflows_credits_pending",
    "overflows_debits_posted",
    "overflows_credits_posted",
    "overflows_debits",
    "overflows_credits",
    "overflows_timeout",
    "exceeds_credits",
    "exceeds_debits",
]

/// The seven transient transfer codes, state-machine §1.7 / §5.9.
private let transientTransferStatusNames: Set<String> = [
    "debit_account_not_found",
    "credit_account_not_found",
    "pending_transfer_not_found",
    "exceeds_credits",
    "exceeds_debits",
    "debit_account_already_closed",
    "credit_account_already_closed",
]

/// Codes that have no precedence rank: success and the never-emitted legacy codes.
private let unrankedStatuses: Set<String> = ["created", "deprecated_ok", "deprecated_18"]

@Suite struct StatusCodeLayoutTests {
    @Test func accountStatusValuesAndNames() {
        #expect(accountStatusTable.count == 28)
        for (status, name, value) in accountStatusTable {
            #expect(status.rawValue == value, "\(name) = \(value)")
            #expect(status.description == name, "\(value) is \(name)")
            #expect(CreateAccountStatus(rawValue: value).description == name)
        }
    }

    @Test func transferStatusValuesAndNames() {
        #expect(transferStatusTable.count == 70)
        for (status, name, value) in transferStatusTable {
            #expect(status.rawValue == value, "\(name) = \(value)")
            #expect(status.description == name, "\(value) is \(name)")
            #expect(CreateTransferStatus(rawValue: value).description == name)
        }
    }

    @Test func accountStatusAllCases() {
        let all = CreateAccountStatus.allCases
        let raw = all.map(\.rawValue)
        #expect(Set(raw).count == raw.count, "no duplicates")
        #expect(Set(raw) == Set(Array(0...26) + [0xFFFF_FFFF]))
        #expect(raw.count == 28)
        #expect(all.first == .created, "success first")
        // Failures in the spec's rank order.
        let ranked = all.map(\.description).filter { !unrankedStatuses.contains($0) }
        #expect(ranked == accountStatusPrecedence)
        // Every case has a spec name (not the fallback description).
        let names = Set(accountStatusTable.map(\.1))
        for status in all {
            #expect(names.contains(status.description), "\(status.rawValue) has a spec name")
        }
    }

    @Test func transferStatusAllCases() {
        let all = CreateTransferStatus.allCases
        let raw = all.map(\.rawValue)
        #expect(Set(raw).count == raw.count, "no duplicates")
        #expect(Set(raw) == Set(Array(0...68) + [0xFFFF_FFFF]))
        #expect(raw.count == 70)
        #expect(all.first == .created, "success first")
        let ranked = all.map(\.description).filter { !unrankedStatuses.contains($0) }
        #expect(ranked == transferStatusPrecedence)
        let names = Set(transferStatusTable.map(\.1))
        for status in all {
            #expect(names.contains(status.description), "\(status.rawValue) has a spec name")
        }
    }

    @Test func precedenceListsCoverTheTables() {
        // Self-check of the tables above: the ranked names plus the unranked ones are exactly
        // the named codes.
        #expect(
            Set(accountStatusPrecedence).union(["created", "deprecated_ok"])
                == Set(accountStatusTable.map(\.1)))
        #expect(accountStatusPrecedence.count == 26)
        #expect(Set(transferStatusPrecedence).union(unrankedStatuses) == Set(transferStatusTable.map(\.1)))
        #expect(transferStatusPrecedence.count == 67)
    }

    @Test func transientTransferStatuses() {
        var transient: [String] = []
        for status in CreateTransferStatus.allCases where status.isTransient {
            transient.append(status.description)
        }
        #expect(transient.count == 7)
        #expect(Set(transient) == transientTransferStatusNames)
        // Also over every raw value in range, not only the listed cases.
        for value in UInt32(0)...80 {
            let status = CreateTransferStatus(rawValue: value)
            #expect(status.isTransient == transientTransferStatusNames.contains(status.description))
        }
        #expect(!CreateTransferStatus.created.isTransient)
    }

    @Test func unknownStatusesStayRepresentable() {
        let account = CreateAccountStatus(rawValue: 27)
        #expect(!CreateAccountStatus.allCases.contains(account))
        #expect(!accountStatusTable.map(\.1).contains(account.description))
        let transfer = CreateTransferStatus(rawValue: 69)
        #expect(!CreateTransferStatus.allCases.contains(transfer))
        #expect(!transferStatusTable.map(\.1).contains(transfer.description))
        #expect(!transfer.isTransient)
    }
}
