// The client-protocol headers (request, ping_client, pong_client, eviction), the register bodies
// and release numbers, checked against wire-protocol.md: field offsets against the tables of
// §4.4–4.8 and §7.5, whole messages against the golden bytes of §13, and every header rule of
// §4.3/§4.4/§4.6 flipped once. Expected numbers are copied from the spec, never derived.

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

/// Fills `value` with 0xFF, lets `zeroFields` store zero into every declared field one by one,
/// and returns the bytes in place: any byte still 0xFF is covered by no field (an implicit gap).
/// The bytes are read through `&value`, not a copy: a copy may not carry gap bytes (probed:
/// a by-value copy of `{UInt8, UInt32}` showed garbage, not 0xFF, in the gap).
private func bytesAfterZeroingFields<T>(_ value: T, _ zeroFields: (inout T) -> Void) -> [UInt8] {
    var value = value
    withUnsafeMutableBytes(of: &value) { raw in
        for index in raw.indices { raw[index] = 0xFF }
    }
    zeroFields(&value)
    return withUnsafeBytes(of: &value) { Array($0) }
}

/// A zeroed header whose frame was reset to `HeaderFrame()`: `size` defaults to 256, so bytes
/// 96..<100 are 00 01 00 00 and every other byte is zero.
private let zeroedHeaderBytes: [UInt8] = {
    var bytes = [UInt8](repeating: 0, count: 256)
    bytes[97] = 0x01
    return bytes
}()

private func bytes<H: HeaderLayout>(of header: H) -> [UInt8] {
    withUnsafeBytes(of: header) { Array($0) }
}

/// A 256-byte header from the spec's hex rows: offset → hex digits; unlisted bytes are zero.
private func goldenHeader(_ rows: [(Int, String)]) -> [UInt8] {
    var result = [UInt8](repeating: 0, count: Constants.messageHeaderSize)
    for (offset, hex) in rows {
        let digits = Array(hex.utf8)
        precondition(digits.count % 2 == 0, "golden rows are whole bytes")
        for index in 0..<(digits.count / 2) {
            result[offset + index] = hexValue(digits[2 * index]) << 4 | hexValue(digits[2 * index + 1])
        }
    }
    return result
}

private func hexValue(_ digit: UInt8) -> UInt8 {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
    default: preconditionFailure("golden rows are lowercase hex")
    }
}

// §13: cluster 0, this client id, release 0.17.9.
private let goldenClient: UInt128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210
private let goldenRelease: UInt32 = 4361

/// The register request of §13.1, sealed, with its body.
private func makeRegister() -> (RequestHeader, [UInt8]) {
    var header = RequestHeader()
    header.frame.size = 512
    header.frame.release = goldenRelease
    header.client = goldenClient
    header.operation = VSROperation.register.rawValue
    var body = [UInt8](repeating: 0xAA, count: RegisterRequest.size)
    body.withUnsafeMutableBytes { RegisterRequest().encode(into: $0) }
    body.withUnsafeBytes { header.seal(body: $0) }
    return (header, body)
}

/// The register reply of §13.2, answering `request`.
private func makeRegisterReply(to request: RequestHeader) -> (ReplyHeader, [UInt8]) {
    var prepare = PrepareHeader()
    prepare.frame.release = request.frame.release
    prepare.requestChecksum = request.frame.checksum
    prepare.client = request.client
    prepare.op = 1
    prepare.timestamp = 1_700_000_000_000_000_000
    prepare.request = request.request
    prepare.operation = request.operation
    var body = [UInt8](repeating: 0xAA, count: RegisterResult.size)
    body.withUnsafeMutableBytes { RegisterResult(batchSizeLimit: 1_048_320).encode(into: $0) }
    let reply = body.withUnsafeBytes { ReplyHeader(prepare: prepare, body: $0) }
    return (reply, body)
}

/// The create_accounts request of §13.3, chained on `reply`.
private func makeCreateAccounts(after reply: ReplyHeader) -> (RequestHeader, [UInt8]) {
    var body = [UInt8](repeating: 0, count: 256)
    body[0] = 0x01  // id = 1
    body[112] = 0xbc  // ledger = 700
    body[113] = 0x02
    body[116] = 0x0a  // code = 10
    for index in 128..<252 { body[index] = 0xff }  // trailer padding
    body[252] = 0x01  // one element in the batch
    body[254] = 0x01  // one batch
    var header = RequestHeader()
    header.frame.size = 512
    header.frame.release = goldenRelease
    header.parent = reply.context
    header.client = goldenClient
    header.session = reply.commit
    header.request = 1
    header.operation = Operation.createAccounts.rawValue
    header.previousRequestLatency = 1234
    body.withUnsafeBytes { header.seal(body: $0) }
    return (header, body)
}

/// A valid non-register request (session 1, request 1, create_accounts, 256-byte body).
private func validSessionRequest() -> RequestHeader {
    var header = RequestHeader()
    header.frame.size = 512
    header.frame.release = goldenRelease
    header.client = goldenClient
    header.session = 1
    header.request = 1
    header.operation = Operation.createAccounts.rawValue
    return header
}

private func validPing() -> PingClientHeader {
    var header = PingClientHeader()
    header.frame.release = goldenRelease
    header.client = goldenClient
    header.pingTimestampMonotonic = 123_456_789
    header.session = 1
    header.sealWithoutBody()
    return header
}

@Suite struct ClientMessageTests {
    // MARK: Layouts (§4.4–4.8, §7.5)

    @Test func requestLayout() {
        #expect(MemoryLayout<RequestHeader>.size == 256)
        #expect(MemoryLayout<RequestHeader>.stride == 256)
        expectField(\RequestHeader.frame, at: 0, size: 128)
        expectField(\RequestHeader.frame.view, at: 104, size: 4)
        expectField(\RequestHeader.frame.release, at: 108, size: 4)
        expectField(\RequestHeader.frame.replica, at: 115, size: 1)
        expectField(\RequestHeader.parent, at: 128, size: 16)
        expectField(\RequestHeader.parentPadding, at: 144, size: 16)
        expectField(\RequestHeader.client, at: 160, size: 16)
        expectField(\RequestHeader.session, at: 176, size: 8)
        expectField(\RequestHeader.timestamp, at: 184, size: 8)
        expectField(\RequestHeader.request, at: 192, size: 4)
        expectField(\RequestHeader.operation, at: 196, size: 1)
        expectField(\RequestHeader.previousRequestLatencyPadding0, at: 197, size: 1)
        expectField(\RequestHeader.previousRequestLatencyPadding1, at: 198, size: 2)
        expectField(\RequestHeader.previousRequestLatency, at: 200, size: 4)
        // Reserved: 52 bytes from 204 to the end.
        expectField(\RequestHeader.reserved0, at: 204, size: 4)
        expectField(\RequestHeader.reserved1, at: 208, size: 40)
        expectField(\RequestHeader.reserved2, at: 248, size: 8)
        let covered = bytesAfterZeroingFields(RequestHeader()) { header in
            header.frame = HeaderFrame()
            header.parent = 0
            header.parentPadding = 0
            header.client = 0
            header.session = 0
            header.timestamp = 0
            header.request = 0
            header.operation = 0
            header.previousRequestLatencyPadding0 = 0
            header.previousRequestLatencyPadding1 = 0
            header.previousRequestLatency = 0
            header.reserved0 = 0
            header.reserved1 = Padding40()
            header.reserved2 = 0
        }
        #expect(covered == zeroedHeaderBytes, "every byte of a request is a named field")
    }

    @Test func pingPongLayout() {
        #expect(MemoryLayout<PingClientHeader>.size == 256)
        #expect(MemoryLayout<PingClientHeader>.stride == 256)
        expectField(\PingClientHeader.client, at: 128, size: 16)
        expectField(\PingClientHeader.pingTimestampMonotonic, at: 144, size: 8)
        expectField(\PingClientHeader.session, at: 152, size: 8)
        expectField(\PingClientHeader.reserved0, at: 160, size: 32)
        expectField(\PingClientHeader.reserved1, at: 192, size: 32)
        expectField(\PingClientHeader.reserved2, at: 224, size: 32)
        let ping = bytesAfterZeroingFields(PingClientHeader()) { header in
            header.frame = HeaderFrame()
            header.client = 0
            header.pingTimestampMonotonic = 0
            header.session = 0
            header.reserved0 = Padding32()
            header.reserved1 = Padding32()
            header.reserved2 = Padding32()
        }
        #expect(ping == zeroedHeaderBytes, "every byte of a ping is a named field")

        #expect(MemoryLayout<PongClientHeader>.size == 256)
        #expect(MemoryLayout<PongClientHeader>.stride == 256)
        expectField(\PongClientHeader.pingTimestampMonotonic, at: 128, size: 8)
        expectField(\PongClientHeader.reserved0, at: 136, size: 8)
        expectField(\PongClientHeader.reserved1, at: 144, size: 56)
        expectField(\PongClientHeader.reserved2, at: 200, size: 56)
        let pong = bytesAfterZeroingFields(PongClientHeader()) { header in
            header.frame = HeaderFrame()
            header.pingTimestampMonotonic = 0
            header.reserved0 = 0
            header.reserved1 = Padding56()
            header.reserved2 = Padding56()
        }
        #expect(pong == zeroedHeaderBytes, "every byte of a pong is a named field")
    }

    @Test func evictionLayout() {
        #expect(MemoryLayout<EvictionHeader>.size == 256)
        #expect(MemoryLayout<EvictionHeader>.stride == 256)
        expectField(\EvictionHeader.client, at: 128, size: 16)
        // Reserved: 111 bytes from 144 to 255.
        expectField(\EvictionHeader.reserved0, at: 144, size: 56)
        expectField(\EvictionHeader.reserved1, at: 200, size: 40)
        expectField(\EvictionHeader.reserved2, at: 240, size: 8)
        expectField(\EvictionHeader.reserved3, at: 248, size: 4)
        expectField(\EvictionHeader.reserved4, at: 252, size: 2)
        expectField(\EvictionHeader.reserved5, at: 254, size: 1)
        expectField(\EvictionHeader.reasonCode, at: 255, size: 1)
        let covered = bytesAfterZeroingFields(EvictionHeader()) { header in
            header.frame = HeaderFrame()
            header.client = 0
            header.reserved0 = Padding56()
            header.reserved1 = Padding40()
            header.reserved2 = 0
            header.reserved3 = 0
            header.reserved4 = 0
            header.reserved5 = 0
            header.reasonCode = 0
        }
        #expect(covered == zeroedHeaderBytes, "every byte of an eviction is a named field")
    }

    @Test func registerBodyLayouts() {
        #expect(MemoryLayout<RegisterRequest>.size == 256)
        #expect(MemoryLayout<RegisterRequest>.stride == 256)
        expectField(\RegisterRequest.batchSizeLimit, at: 0, size: 4)
        expectField(\RegisterRequest.reserved0, at: 4, size: 4)
        expectField(\RegisterRequest.reserved5, at: 216, size: 40)
        let request = bytesAfterZeroingFields(RegisterRequest()) { body in
            body.batchSizeLimit = 0
            body.reserved0 = 0
            body.reserved1 = Padding56()
            body.reserved2 = Padding56()
            body.reserved3 = Padding56()
            body.reserved4 = Padding40()
            body.reserved5 = Padding40()
        }
        #expect(request == [UInt8](repeating: 0, count: 256), "every byte is a named field")

        #expect(MemoryLayout<RegisterResult>.size == 64)
        #expect(MemoryLayout<RegisterResult>.stride == 64)
        expectField(\RegisterResult.batchSizeLimit, at: 0, size: 4)
        expectField(\RegisterResult.reserved0, at: 4, size: 4)
        expectField(\RegisterResult.reserved1, at: 8, size: 56)
        let result = bytesAfterZeroingFields(RegisterResult()) { body in
            body.batchSizeLimit = 0
            body.reserved0 = 0
            body.reserved1 = Padding56()
        }
        #expect(result == [UInt8](repeating: 0, count: 64), "every byte is a named field")
    }

    // MARK: Golden messages (§13)

    @Test func goldenRegisterRequest() {
        let (header, body) = makeRegister()
        #expect(header.frame.checksum == 0x8cca_487e_567b_4b8e_6efb_7cb7_4bf1_1cd8)
        #expect(header.frame.checksumBody == 0x3c61_ffe8_9684_eb2d_bffc_d4dd_f382_1b65)
        #expect(body == [UInt8](repeating: 0, count: 256))
        let expected = goldenHeader([
            (0, "d81cf14bb77cfb6e8e4b7b567e48ca8c"),
            (32, "651b82f3ddd4fcbf2deb8496e8ff613c"),
            (96, "0002000000000000000000000911000000000500"),
            (160, "1032547698badcfeefcdab8967452301"),
            (192, "0000000002"),
        ])
        #expect(bytes(of: header) == expected)
        #expect(header.invalidity() == nil)
        #expect(header.isChecksumValid)
        #expect(body.withUnsafeBytes { header.isBodyValid($0) })
        let decoded = body.withUnsafeBytes { RegisterRequest(decoding: $0) }
        #expect(decoded?.isValidFromClient == true)
    }

    @Test func goldenRegisterReply() {
        let (request, _) = makeRegister()
        let (reply, body) = makeRegisterReply(to: request)
        #expect(reply.frame.checksum == 0xd359_79c3_85b2_3b1c_a76a_e5bd_7fe9_fbca)
        #expect(reply.frame.checksumBody == 0x191c_da32_2bd6_8ef8_082c_67fd_040e_d2b5)
        #expect(reply.context == 0x3b10_c97b_fe00_b4e0_c617_d519_232b_0c2a)
        let expected = goldenHeader([
            (0, "cafbe97fbde56aa71c3bb285c37959d3"),
            (32, "b5d20e04fd672c08f88ed62b32da1c19"),
            (96, "4001000000000000000000000911000000000800"),
            (128, "d81cf14bb77cfb6e8e4b7b567e48ca8c"),
            (160, "2a0c2b2319d517c6e0b400fe7bc9103b"),
            (192, "1032547698badcfeefcdab896745230101000000000000000100000000000000"),
            (224, "00002a36fe9c97170000000002"),
        ])
        #expect(bytes(of: reply) == expected)
        var expectedBody = [UInt8](repeating: 0, count: 64)
        expectedBody[1] = 0xff
        expectedBody[2] = 0x0f
        #expect(body == expectedBody)
        let decoded = body.withUnsafeBytes { RegisterResult(decoding: $0) }
        #expect(decoded?.batchSizeLimit == 1_048_320)
        #expect(decoded?.isValid == true)
        // The reply reads back through the untyped view.
        #expect(reply.untyped.asReply == reply)
    }

    @Test func goldenCreateAccountsRequestAndReply() {
        let (register, _) = makeRegister()
        let (registerReply, _) = makeRegisterReply(to: register)
        let (header, body) = makeCreateAccounts(after: registerReply)
        #expect(header.frame.checksum == 0x0b8f_0b38_0ac3_e4be_de11_ad32_dbf9_e21d)
        #expect(header.frame.checksumBody == 0x8d7a_c7cc_175c_bb7b_a6f7_5586_bb37_4807)
        let expected = goldenHeader([
            (0, "1de2f9db32ad11debee4c30a380b8f0b"),
            (32, "074837bb8655f7a67bbb5c17ccc77a8d"),
            (96, "0002000000000000000000000911000000000500"),
            (128, "2a0c2b2319d517c6e0b400fe7bc9103b"),
            (160, "1032547698badcfeefcdab896745230101"),
            (192, "0100000092000000d2040000"),
        ])
        #expect(bytes(of: header) == expected)
        #expect(header.invalidity() == nil)

        // §13.4: its reply, op = commit = 2, one `created` result.
        var prepare = PrepareHeader()
        prepare.frame.release = header.frame.release
        prepare.requestChecksum = header.frame.checksum
        prepare.client = header.client
        prepare.op = 2
        prepare.timestamp = 1_700_000_000_000_000_101
        prepare.request = header.request
        prepare.operation = header.operation
        let replyBody = goldenHeader([
            (0, "65002a36fe9c9717ffffffff00000000ffffffffffffffffffffffff01000100")
        ])[0..<32]
        let reply = Array(replyBody).withUnsafeBytes { ReplyHeader(prepare: prepare, body: $0) }
        #expect(reply.frame.checksum == 0x97e5_92f8_99a3_9633_e4da_dfa1_5f6b_6b96)
        #expect(reply.frame.checksumBody == 0xd72a_b2c2_e3d8_4dab_1373_cdf2_7d75_06df)
        #expect(reply.context == 0x1c28_4ac1_d3be_802e_151c_f372_00b5_c0c7)
        #expect(reply.requestChecksum == header.frame.checksum, "the hash chain: §5.4")
        #expect(body.count == 256)
    }

    @Test func goldenPingPongEviction() {
        let ping = validPing()
        #expect(ping.frame.checksum == 0x3d51_b73f_9a48_62ab_bd6f_d4d7_d56a_c264)
        #expect(
            bytes(of: ping)
                == goldenHeader([
                    (0, "64c26ad5d7d46fbdab62489a3fb7513d"),
                    (32, "83cc600dc4e3e7e62d4055826174f149"),
                    (96, "0001000000000000000000000911000000000300"),
                    (128, "1032547698badcfeefcdab896745230115cd5b07000000000100000000000000"),
                ]))
        #expect(ping.invalidity() == nil)

        let pong = PongClientHeader(
            cluster: 0, view: 0, release: goldenRelease, replica: 0,
            pingTimestampMonotonic: ping.pingTimestampMonotonic)
        #expect(pong.frame.checksum == 0x05c5_71b6_c726_d2c5_7ff4_e1e7_d0d1_6fdb)
        #expect(
            bytes(of: pong)
                == goldenHeader([
                    (0, "db6fd1d0e7e1f47fc5d226c7b671c505"),
                    (32, "83cc600dc4e3e7e62d4055826174f149"),
                    (96, "0001000000000000000000000911000000000400"),
                    (128, "15cd5b07"),
                ]))
        #expect(pong.isChecksumValid)
        #expect(pong.hasZeroReserved)

        let eviction = EvictionHeader(
            cluster: 0, view: 0, release: goldenRelease, replica: 0, client: goldenClient,
            reason: .noSession)
        #expect(eviction.frame.checksum == 0xace0_8885_b8df_4d9a_9d1d_0d82_80fb_ef27)
        #expect(
            bytes(of: eviction)
                == goldenHeader([
                    (0, "27effb80820d1d9d9a4ddfb88588e0ac"),
                    (32, "83cc600dc4e3e7e62d4055826174f149"),
                    (96, "0001000000000000000000000911000000001200"),
                    (128, "1032547698badcfeefcdab8967452301"),
                    (255, "01"),
                ]))
        #expect(eviction.reason == .noSession)
        #expect(eviction.hasZeroReserved)
        #expect(eviction.isChecksumValid)
    }

    // MARK: Request validation (§4.3, §4.4)

    @Test func requestFrameRules() {
        let cases: [(RequestInvalid, (inout RequestHeader) -> Void)] = [
            (.frame(.checksumPaddingNonZero), { $0.frame.checksumPadding = 1 }),
            (.frame(.checksumBodyPaddingNonZero), { $0.frame.checksumBodyPadding = 1 << 127 }),
            (.frame(.nonceReservedNonZero), { $0.frame.nonceReserved = 1 }),
            (.frame(.sizeOutOfRange), { $0.frame.size = 255 }),
            (.frame(.sizeOutOfRange), { $0.frame.size = 1 << 20 + 1 }),
            (.frame(.epochNonZero), { $0.frame.epoch = 1 }),
            (.frame(.protocolNonZero), { $0.frame.protocol = 1 }),
            (.frame(.reservedFrameNonZero), { $0.frame.reservedFrame0 = 1 }),
            (.frame(.reservedFrameNonZero), { $0.frame.reservedFrame1 = 1 }),
            (.frame(.reservedFrameNonZero), { $0.frame.reservedFrame2 = 1 << 31 }),
            (.commandNotRequest, { $0.frame.command = Command.prepare.rawValue }),
            (.releaseZero, { $0.frame.release = 0 }),
            (.replicaNonZero, { $0.frame.replica = 1 }),
            (.parentPaddingNonZero, { $0.parentPadding = 1 }),
            (.previousRequestLatencyPaddingNonZero, { $0.previousRequestLatencyPadding0 = 1 }),
            (.previousRequestLatencyPaddingNonZero, { $0.previousRequestLatencyPadding1 = 0x100 }),
            (.reservedNonZero, { $0.reserved0 = 1 }),
            (.reservedNonZero, { $0.reserved1.word0 = 1 }),
            (.reservedNonZero, { $0.reserved1.word4 = 1 }),
            (.reservedNonZero, { $0.reserved2 = 1 << 63 }),
        ]
        #expect(validSessionRequest().invalidity() == nil)
        for (index, (expected, mutate)) in cases.enumerated() {
            var header = validSessionRequest()
            mutate(&header)
            #expect(header.invalidity() == expected, "case \(index): \(expected)")
        }
    }

    @Test func requestOperationRules() {
        let register = makeRegister().0
        let session = validSessionRequest()
        // (base, mutation, expected): nil expectations pin what is deliberately allowed.
        let cases: [(RequestHeader, RequestInvalid?, (inout RequestHeader) -> Void)] = [
            (session, .operationReserved, { $0.operation = 0 }),
            (session, .operationRoot, { $0.operation = 1 }),
            (session, .operationReserved, { $0.operation = 7 }),
            (session, .operationReserved, { $0.operation = 127 }),
            // register
            (register, .clientZero, { $0.client = 0 }),
            (register, .registerParentNonZero, { $0.parent = 1 }),
            (register, .registerSessionNonZero, { $0.session = 1 }),
            (register, .registerRequestNonZero, { $0.request = 1 }),
            (register, .registerSizeInvalid, { $0.frame.size = 320 }),
            (register, .registerSizeInvalid, { $0.frame.size = 768 }),
            (register, nil, { $0.frame.size = 256 }),
            // reconfigure: 512 bytes, and a session
            (session, nil, { $0.operation = 3 }),
            (session, .reconfigureSizeInvalid, { $0.operation = 3; $0.frame.size = 256 }),
            (session, .sessionZero, { $0.operation = 3; $0.session = 0 }),
            // pulse, upgrade: client 0, nothing else asked
            (session, .internalOperationClientNonZero, { $0.operation = 4 }),
            (session, .internalOperationClientNonZero, { $0.operation = 5 }),
            (session, nil, { $0.operation = 4; $0.client = 0; $0.session = 0; $0.request = 0 }),
            (session, nil, { $0.operation = 5; $0.client = 0 }),
            // noop: header only, and a session
            (session, nil, { $0.operation = 6; $0.frame.size = 256 }),
            (session, .noopSizeInvalid, { $0.operation = 6 }),
            (session, .requestZero, { $0.operation = 6; $0.frame.size = 256; $0.request = 0 }),
            // state-machine operations, supported or not
            (session, .clientZero, { $0.client = 0 }),
            (session, .sessionZero, { $0.session = 0 }),
            (session, .requestZero, { $0.request = 0 }),
            (session, nil, { $0.operation = 128 }),
            (session, nil, { $0.operation = 255 }),
            (session, .clientZero, { $0.operation = 200; $0.client = 0 }),
            // decided later, not by the header check
            (session, nil, { $0.timestamp = 1 }),
            (session, nil, { $0.frame.view = 1_000 }),
            (session, nil, { $0.frame.size = 256 }),
        ]
        for (index, (base, expected, mutate)) in cases.enumerated() {
            var header = base
            mutate(&header)
            #expect(
                header.invalidity() == expected,
                "case \(index): expected \(expected.map(String.init(describing:)) ?? "valid")")
        }
    }

    @Test func invalidityDescriptionsAreDistinct() {
        let reasons: [RequestInvalid] = [
            .frame(.checksumPaddingNonZero), .frame(.checksumBodyPaddingNonZero),
            .frame(.nonceReservedNonZero), .frame(.sizeOutOfRange), .frame(.epochNonZero),
            .frame(.protocolNonZero), .frame(.reservedFrameNonZero), .commandNotRequest,
            .releaseZero, .replicaNonZero, .parentPaddingNonZero,
            .previousRequestLatencyPaddingNonZero, .reservedNonZero, .operationReserved,
            .operationRoot, .clientZero, .registerParentNonZero, .registerSessionNonZero,
            .registerRequestNonZero, .registerSizeInvalid, .reconfigureSizeInvalid,
            .internalOperationClientNonZero, .noopSizeInvalid, .sessionZero, .requestZero,
        ]
        let descriptions = reasons.map(\.description)
        #expect(Set(descriptions).count == reasons.count)
        #expect(descriptions.allSatisfy { !$0.isEmpty })
        let pingReasons: [PingClientInvalid] = [
            .commandNotPingClient, .sizeNotHeaderOnly, .checksumBodyNotEmpty, .viewNonZero,
            .releaseZero, .replicaNonZero, .clientZero, .reservedNonZero,
        ]
        #expect(Set(pingReasons.map(\.description)).count == pingReasons.count)
    }

    // MARK: Ping validation (§4.6)

    @Test func pingRules() {
        let cases: [(PingClientInvalid, (inout PingClientHeader) -> Void)] = [
            (.frame(.epochNonZero), { $0.frame.epoch = 1 }),
            (.frame(.nonceReservedNonZero), { $0.frame.nonceReserved = 1 }),
            (.commandNotPingClient, { $0.frame.command = Command.pongClient.rawValue }),
            (.sizeNotHeaderOnly, { $0.frame.size = 512 }),
            (.checksumBodyNotEmpty, { $0.frame.checksumBody = 0 }),
            (.viewNonZero, { $0.frame.view = 1 }),
            (.releaseZero, { $0.frame.release = 0 }),
            (.replicaNonZero, { $0.frame.replica = 1 }),
            (.clientZero, { $0.client = 0 }),
            (.reservedNonZero, { $0.reserved0.word0 = 1 }),
            (.reservedNonZero, { $0.reserved1.word2 = 1 }),
            (.reservedNonZero, { $0.reserved2.word3 = 1 << 63 }),
        ]
        for (index, (expected, mutate)) in cases.enumerated() {
            var header = validPing()
            mutate(&header)
            #expect(header.invalidity() == expected, "case \(index): \(expected)")
        }
        // Session 0 (before registration, or a client older than 0.17.6) is a valid ping.
        var unregistered = validPing()
        unregistered.session = 0
        #expect(unregistered.invalidity() == nil)
    }

    // MARK: Eviction reasons (§4.8)

    @Test func evictionReasons() {
        #expect(EvictionReason.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(EvictionReason.noSession.description == "no_session")
        #expect(EvictionReason.sessionReleaseMismatch.description == "session_release_mismatch")
        var header = EvictionHeader(
            cluster: 7, view: 3, release: goldenRelease, replica: 2, client: goldenClient,
            reason: .invalidRequestBodySize)
        #expect(bytes(of: header)[255] == 6)
        #expect(header.reason == .invalidRequestBodySize)
        header.reasonCode = 0
        #expect(header.reason == nil, "reason 0 is reserved")
        header.reasonCode = 9
        #expect(header.reason == nil, "reasons above 8 are unknown")
    }

    // MARK: Release numbers (§8.1)

    @Test func releaseTriples() {
        let cases: [(String, UInt32)] = [
            ("0.16.4", 4100), ("0.17.0", 4352), ("0.17.9", 4361), ("65535.0.0", 0xFFFF_0000),
            ("0.0.1", 1), ("0.0.0", 0), ("65535.255.255", 0xFFFF_FFFF),
        ]
        for (text, value) in cases {
            let parsed = ReleaseTriple(parsing: text)
            #expect(parsed?.value == value, "\(text)")
            #expect(ReleaseTriple(value: value).description == text)
        }
        #expect(ReleaseTriple(value: Constants.release).description == "0.17.9")
        #expect(ReleaseTriple(value: Constants.releaseClientMin).description == "0.17.0")
        #expect(ReleaseTriple(major: 0, minor: 17, patch: 9).value == Constants.release)
        #expect(ReleaseTriple(parsing: "0.16.4")! < ReleaseTriple(parsing: "0.17.0")!)
        #expect(ReleaseTriple(parsing: "0.17.10")! > ReleaseTriple(parsing: "0.17.9")!)
        #expect(ReleaseTriple(parsing: "1.0.0")! > ReleaseTriple(parsing: "0.255.255")!)
        let malformed = [
            "", ".", "..", "0.17", "0.17.", ".17.9", "0..9", "0.17.9.", "0.17.9.1", "a.b.c",
            "0.17.9a", " 0.17.9", "0.17.9 ", "+0.17.9", "-1.0.0", "0.+17.9", "0.017.9", "00.17.9",
            "65536.0.0", "0.256.0", "0.0.256", "99999.0.0", "123456.0.0", "0.17.9\u{0}",
            "0.1٧.9",
        ]
        for text in malformed {
            #expect(ReleaseTriple(parsing: text) == nil, "\(text.debugDescription) is not a release")
        }
    }

    @Test func releaseTripleRoundTrips() {
        let seed: UInt64 = 0x7265_6C65_6173_6521
        var prng = PRNG(seed: seed)
        for round in 0..<1_000 {
            let value = UInt32(truncatingIfNeeded: prng.next())
            let triple = ReleaseTriple(value: value)
            #expect(triple.value == value, "seed \(seed) round \(round)")
            #expect(ReleaseTriple(parsing: triple.description) == triple, "seed \(seed) round \(round)")
            let other = ReleaseTriple(value: UInt32(truncatingIfNeeded: prng.next()))
            #expect((triple < other) == (triple.value < other.value), "seed \(seed) round \(round)")
        }
    }

    // MARK: Register bodies (§7.5)

    @Test func registerBodies() {
        var bytes = [UInt8](repeating: 0, count: RegisterRequest.size)
        #expect(bytes.withUnsafeBytes { RegisterRequest(decoding: $0) }?.isValidFromClient == true)
        bytes[0] = 1
        #expect(bytes.withUnsafeBytes { RegisterRequest(decoding: $0) }?.isValidFromClient == false)
        bytes[0] = 0
        bytes[255] = 1
        let reservedSet = bytes.withUnsafeBytes { RegisterRequest(decoding: $0) }
        #expect(reservedSet?.hasZeroReserved == false)
        #expect(reservedSet?.isValidFromClient == false)
        #expect(bytes.withUnsafeBytes { RegisterRequest(decoding: UnsafeRawBufferPointer(rebasing: $0[0..<255])) } == nil)
        #expect([UInt8](repeating: 0, count: 512).withUnsafeBytes { RegisterRequest(decoding: $0) } == nil)

        // Unaligned decode, and encode → decode round trip.
        var shifted = [UInt8](repeating: 0, count: 1 + RegisterResult.size)
        shifted.withUnsafeMutableBytes { raw in
            RegisterResult(batchSizeLimit: 32_512).encode(
                into: UnsafeMutableRawBufferPointer(rebasing: raw[1...]))
        }
        #expect(Array(shifted[1..<5]) == [0x00, 0x7f, 0x00, 0x00])
        let result = shifted.withUnsafeBytes {
            RegisterResult(decoding: UnsafeRawBufferPointer(rebasing: $0[1...]))
        }
        #expect(result == RegisterResult(batchSizeLimit: 32_512))
        #expect(result?.isValid == true)
        #expect(RegisterResult(batchSizeLimit: 0).isValid == false)
        #expect(RegisterResult(batchSizeLimit: 1).isValid == true)
        #expect(RegisterResult(batchSizeLimit: 1_048_320).isValid == true)
        #expect(RegisterResult(batchSizeLimit: 1_048_321).isValid == false)
        var reserved = RegisterResult(batchSizeLimit: 1_048_320)
        reserved.reserved1.word6 = 1
        #expect(reserved.isValid == false)
        #expect([UInt8](repeating: 0, count: 63).withUnsafeBytes { RegisterResult(decoding: $0) } == nil)
    }

    // MARK: Round trips through the untyped header

    @Test func headersRoundTripThroughBytes() {
        let seed: UInt64 = 0x6865_6164_6572_7321
        var prng = PRNG(seed: seed)
        for round in 0..<200 {
            var request = validSessionRequest()
            request.parent = prng.uint128()
            request.client = prng.uint128() | 1
            request.session = prng.next() | 1
            request.request = UInt32(truncatingIfNeeded: prng.next()) | 1
            request.operation = UInt8(truncatingIfNeeded: prng.int(in: 128...255))
            request.previousRequestLatency = UInt32(truncatingIfNeeded: prng.next())
            request.frame.view = UInt32(truncatingIfNeeded: prng.next())
            request.frame.cluster = prng.uint128()
            var body = (0..<256).map { _ in UInt8(truncatingIfNeeded: prng.next()) }
            body.withUnsafeBytes { request.seal(body: $0) }

            // Through unaligned wire bytes and back.
            var wire = [UInt8](repeating: 0, count: 3)
            wire += bytes(of: request)
            let read = wire.withUnsafeBytes { Header(from: UnsafeRawBufferPointer(rebasing: $0[3...])) }
            #expect(read.command == .request, "seed \(seed) round \(round)")
            let typed = read.asRequest
            #expect(typed == request, "seed \(seed) round \(round)")
            #expect(typed.isChecksumValid, "seed \(seed) round \(round)")
            #expect(typed.invalidity() == nil, "seed \(seed) round \(round)")
            #expect(body.withUnsafeBytes { typed.isBodyValid($0) }, "seed \(seed) round \(round)")
            // A flipped body bit or header bit is caught by the checksums.
            let bodyIndex = prng.int(in: 0...255)
            body[bodyIndex] ^= 1 << UInt8(prng.int(in: 0...7))
            #expect(!body.withUnsafeBytes { typed.isBodyValid($0) }, "seed \(seed) round \(round)")
            var flipped = typed
            flipped.previousRequestLatency ^= 1
            #expect(!flipped.isChecksumValid, "seed \(seed) round \(round)")

            let pong = PongClientHeader(
                cluster: prng.uint128(), view: UInt32(truncatingIfNeeded: prng.next()),
                release: UInt32(truncatingIfNeeded: prng.next()) | 1,
                replica: UInt8(prng.int(in: 0...5)), pingTimestampMonotonic: prng.next())
            #expect(pong.untyped.asPongClient == pong, "seed \(seed) round \(round)")
            #expect(pong.isChecksumValid, "seed \(seed) round \(round)")
            #expect(pong.frame.checksumBody == ChecksumConstants.empty)
            #expect(pong.frame.size == 256)

            let reason = EvictionReason.allCases[prng.int(in: 0...7)]
            let eviction = EvictionHeader(
                cluster: prng.uint128(), view: UInt32(truncatingIfNeeded: prng.next()),
                release: UInt32(truncatingIfNeeded: prng.next()) | 1,
                replica: UInt8(prng.int(in: 0...5)), client: prng.uint128() | 1, reason: reason)
            let evictionRead = eviction.untyped.asEviction
            #expect(evictionRead == eviction, "seed \(seed) round \(round)")
            #expect(evictionRead.reason == reason, "seed \(seed) round \(round)")
            #expect(evictionRead.isChecksumValid, "seed \(seed) round \(round)")
        }
        let ping = validPing()
        #expect(ping.untyped.asPingClient == ping)
        #expect(ping.untyped.command == .pingClient)
    }
}
