// The multi-batch body encoding (wire-protocol §6): trailer sizes, the §6.2 wire examples byte for
// byte in both directions, seeded random round trips against an independent reference encoder,
// and every way a body can be malformed.

import Testing

@testable import LedgerKit

// MARK: - Helpers

private func hex(_ text: String) -> [UInt8] {
    text.split(separator: " ").map { UInt8($0, radix: 16)! }
}

private let ff = UInt8(0xFF)

/// Reference encoder written from wire §6.1, independent of `MultiBatchWriter`.
private func referenceEncode(_ batches: [[UInt8]], elementSize e: Int) -> [UInt8] {
    let n = batches.count
    let trailer = (2 * n + 2 + e - 1) / e * e
    var body: [UInt8] = batches.flatMap { $0 }
    body += [UInt8](repeating: 0xFF, count: trailer - 2 * n - 2)
    for batch in batches.reversed() {
        let count = batch.count / e
        body += [UInt8(count & 0xFF), UInt8(count >> 8)]
    }
    body += [UInt8(n & 0xFF), UInt8(n >> 8)]
    return body
}

/// Decodes with `MultiBatchReader` from a 16-byte aligned copy; nil if the reader rejects it.
/// Returns each batch's bytes.
private func decode(_ body: [UInt8], elementSize: Int) -> [[UInt8]]? {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 16)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: body)
    let view = UnsafeRawBufferPointer(rebasing: buffer[0..<body.count])
    guard let reader = MultiBatchReader(body: view, elementSize: elementSize) else { return nil }
    var batches: [[UInt8]] = []
    var counted = 0
    reader.forEachBatch { index, batch in
        #expect(index == batches.count)
        #expect(batch.count == reader.elementCount(batch: index) * elementSize)
        counted += reader.elementCount(batch: index)
        batches.append(Array(batch))
    }
    #expect(batches.count == reader.batchCount)
    #expect(reader.elementCountTotal == counted)
    #expect(reader.elementSize == elementSize)
    #expect(
        reader.trailerSize
            == MultiBatch.trailerSize(elementSize: elementSize, batchCount: reader.batchCount))
    return batches
}

/// Encodes with `MultiBatchWriter` into a buffer of `body size + slack` bytes.
private func encode(_ batches: [[UInt8]], elementSize: Int, slack: Int = 0) -> [UInt8] {
    let payload = batches.reduce(0) { $0 + $1.count }
    let trailer = MultiBatch.trailerSize(elementSize: elementSize, batchCount: batches.count)
    let capacity = payload + trailer + slack
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    // Garbage everywhere first: the writer must overwrite every byte of the body.
    for index in 0..<capacity { buffer[index] = 0xA5 }
    var writer = MultiBatchWriter(buffer: buffer, elementSize: elementSize, batchCount: batches.count)
    for batch in batches {
        let free = writer.freeSpace
        #expect(free.count >= batch.count)
        for (index, byte) in batch.enumerated() { free[index] = byte }
        writer.finishBatch(elementCount: batch.count / elementSize)
    }
    #expect(writer.batchesWritten == batches.count)
    #expect(writer.payloadSize == payload)
    let size = writer.finish()
    #expect(size == payload + trailer)
    return Array(buffer[0..<size])
}

private func elements(_ count: Int, size: Int, tag: UInt8) -> [UInt8] {
    (0..<count * size).map { UInt8(truncatingIfNeeded: $0) ^ tag }
}

// MARK: - Tests

@Suite struct MultiBatchTests {
    @Test func trailerSizes() {
        // ceil((2n + 2) / E) · E, wire §6.1.
        let cases: [(e: Int, n: Int, size: Int)] = [
            (16, 1, 16), (16, 7, 16), (16, 8, 32), (16, 15, 32), (16, 16, 48),
            (64, 1, 64), (64, 31, 64), (64, 32, 128),
            (128, 1, 128), (128, 5, 128), (128, 63, 128), (128, 64, 256), (128, 127, 256),
            (128, 128, 384),
            (384, 1, 384), (384, 191, 384), (384, 192, 768),
            (2, 1, 4), (4, 1, 4), (8, 3, 8), (8, 4, 16),
            (16, 65_534, 131_072), (128, 65_534, 131_072),
        ]
        for (e, n, size) in cases {
            #expect(MultiBatch.trailerSize(elementSize: e, batchCount: n) == size, "E=\(e) n=\(n)")
        }
        // The spec's shortcut: one batch of an element of at least 4 bytes costs one element.
        for e in [4, 8, 16, 32, 64, 128, 256, 384] {
            #expect(MultiBatch.trailerSize(elementSize: e, batchCount: 1) == e)
        }
        // Always a multiple of E and at least 2n + 2.
        for e in [16, 64, 128] {
            for n in 1...300 {
                let size = MultiBatch.trailerSize(elementSize: e, batchCount: n)
                #expect(size % e == 0 && size >= 2 * n + 2 && size < 2 * n + 2 + e)
            }
        }
    }

    // MARK: Wire examples (§6.2)

    @Test func lookupOfThreeIds() {
        let ids = elements(3, size: 16, tag: 0x10)
        let trailer = hex("ff ff ff ff ff ff ff ff ff ff ff ff 03 00 01 00")
        let body = ids + trailer
        #expect(body.count == 64)
        #expect(decode(body, elementSize: 16) == [ids])
        #expect(encode([ids], elementSize: 16) == body)
        #expect(encode([ids], elementSize: 16, slack: 100) == body)
        #expect(referenceEncode([ids], elementSize: 16) == body)
    }

    @Test func createOfOneAccount() {
        let account = elements(1, size: 128, tag: 0x20)
        let trailer = [UInt8](repeating: ff, count: 124) + hex("01 00 01 00")
        let body = account + trailer
        #expect(body.count == 256)
        #expect(decode(body, elementSize: 128) == [account])
        #expect(encode([account], elementSize: 128) == body)
        #expect(encode([account], elementSize: 128, slack: 3) == body)
        #expect(referenceEncode([account], elementSize: 128) == body)
    }

    @Test func createWithAnEmptyList() {
        let body = [UInt8](repeating: ff, count: 124) + hex("00 00 01 00")
        #expect(body.count == 128)
        #expect(decode(body, elementSize: 128) == [[]])
        #expect(encode([[]], elementSize: 128) == body)
        #expect(encode([[]], elementSize: 128, slack: 128) == body)
        #expect(referenceEncode([[]], elementSize: 128) == body)
    }

    @Test func fiveCreateCallsPacked() {
        let batches = [1, 2, 0, 1, 2].enumerated().map { index, count in
            elements(count, size: 128, tag: UInt8(0x30 + index))
        }
        let trailerTail = hex("ff ff 02 00 01 00 00 00 02 00 01 00 05 00")
        let body = batches.flatMap { $0 } + [UInt8](repeating: ff, count: 128 - 12) + hex("02 00 01 00 00 00 02 00 01 00 05 00")
        #expect(body.count == 768 + 128)
        #expect(Array(body.suffix(trailerTail.count)) == trailerTail)
        #expect(decode(body, elementSize: 128) == batches)
        #expect(encode(batches, elementSize: 128) == body)
        #expect(encode(batches, elementSize: 128, slack: 1) == body)
        #expect(encode(batches, elementSize: 128, slack: 11) == body)
        #expect(referenceEncode(batches, elementSize: 128) == body)
    }

    @Test func replyOfThreeBatches() {
        let batches = [
            elements(1, size: 16, tag: 0x41), elements(0, size: 16, tag: 0), elements(2, size: 16, tag: 0x43),
        ]
        let trailer = hex("ff ff ff ff ff ff ff ff 02 00 00 00 01 00 03 00")
        let body = batches.flatMap { $0 } + trailer
        #expect(body.count == 48 + 16)
        #expect(decode(body, elementSize: 16) == batches)
        #expect(encode(batches, elementSize: 16) == body)
        #expect(encode(batches, elementSize: 16, slack: 5) == body)
        #expect(referenceEncode(batches, elementSize: 16) == body)
    }

    // MARK: Round trips

    @Test func randomRoundTrips() {
        var prng = PRNG(seed: 0x6D75_6C74_6962_6174)
        for round in 0..<400 {
            let e = [16, 64, 128][prng.int(in: 0...2)]
            let n: Int
            switch prng.int(in: 0...9) {
            case 0: n = prng.int(in: 60...300)  // Multi-element trailers for every E.
            default: n = prng.int(in: 1...12)
            }
            var batches: [[UInt8]] = []
            for _ in 0..<n {
                let count = prng.chance(percent: 20) ? 0 : prng.int(in: 1...6)
                batches.append((0..<count * e).map { _ in UInt8(truncatingIfNeeded: prng.next()) })
            }
            let slack = [0, 1, 2, 15, 16, e, 1000][prng.int(in: 0...6)]
            let expected = referenceEncode(batches, elementSize: e)
            let body = encode(batches, elementSize: e, slack: slack)
            #expect(body == expected, "round \(round): E=\(e) n=\(n) slack=\(slack)")
            #expect(body.count % e == 0)
            #expect(decode(expected, elementSize: e) == batches, "round \(round)")
        }
    }

    @Test func largeBatches() {
        // Counts above 255 exercise both bytes of the u16 counts.
        let batches = [elements(300, size: 16, tag: 1), elements(0, size: 16, tag: 0), elements(1000, size: 16, tag: 2)]
        let body = encode(batches, elementSize: 16)
        #expect(body == referenceEncode(batches, elementSize: 16))
        #expect(Array(body.suffix(8)) == hex("e8 03 00 00 2c 01 03 00"))
        #expect(decode(body, elementSize: 16) == batches)
    }

    @Test func emptyBatches() {
        for e in [16, 64, 128] {
            for n in [1, 2, 7, 8, 63, 64, 200] {
                let batches = [[UInt8]](repeating: [], count: n)
                let body = encode(batches, elementSize: e)
                #expect(body.count == MultiBatch.trailerSize(elementSize: e, batchCount: n))
                #expect(body == referenceEncode(batches, elementSize: e))
                #expect(decode(body, elementSize: e) == batches)
            }
        }
    }

    @Test func largestBatchCountIsAccepted() {
        let n = 65_534
        let batches = [[UInt8]](repeating: [], count: n)
        let body = referenceEncode(batches, elementSize: 16)
        #expect(body.count == 131_072)
        #expect(Array(body.suffix(2)) == [0xFE, 0xFF])
        #expect(decode(body, elementSize: 16)?.count == n)
        #expect(encode(batches, elementSize: 16) == body)
    }

    // MARK: Malformed bodies

    @Test func bodyShorterThanThePostamble() {
        #expect(decode([], elementSize: 16) == nil)
        #expect(decode([0x01], elementSize: 16) == nil)
        #expect(decode([0x01], elementSize: 1) == nil)
    }

    @Test func batchCountZero() {
        #expect(decode([UInt8](repeating: ff, count: 14) + hex("00 00"), elementSize: 16) == nil)
        #expect(decode(hex("00 00"), elementSize: 2) == nil)
        #expect(decode([UInt8](repeating: ff, count: 126) + hex("00 00"), elementSize: 128) == nil)
        // A payload in front does not help.
        #expect(decode(elements(2, size: 16, tag: 0) + [UInt8](repeating: ff, count: 14) + hex("00 00"), elementSize: 16) == nil)
    }

    @Test func batchCountAllOnes() {
        // 0xFFFF is reserved (and is what a body of only filler would read as).
        #expect(decode([UInt8](repeating: ff, count: 16), elementSize: 16) == nil)
        #expect(decode([UInt8](repeating: ff, count: 128), elementSize: 128) == nil)
        // 65,535 zero counts and the postamble: exactly the trailer size n = 65,535 would need.
        let big = [UInt8](repeating: 0, count: 2 * 65_535) + hex("ff ff")
        #expect(decode(big, elementSize: 16) == nil)
    }

    @Test func fillerByteNotFF() {
        let ids = elements(3, size: 16, tag: 0x10)
        let good = ids + hex("ff ff ff ff ff ff ff ff ff ff ff ff 03 00 01 00")
        #expect(decode(good, elementSize: 16) != nil)
        for position in 48..<60 {
            for value: UInt8 in [0x00, 0xFE, 0x7F] {
                var bad = good
                bad[position] = value
                #expect(decode(bad, elementSize: 16) == nil, "filler byte \(position) = \(value)")
            }
        }
        // The same for a 128-byte trailer with five batches: every one of its 116 filler bytes.
        let five = [1, 2, 0, 1, 2].map { elements($0, size: 128, tag: 7) }
        let body = referenceEncode(five, elementSize: 128)
        #expect(decode(body, elementSize: 128) == five)
        for position in 768..<(768 + 116) {
            var bad = body
            bad[position] = 0
            #expect(decode(bad, elementSize: 128) == nil, "filler byte \(position)")
        }
    }

    @Test func payloadSizeNotMatchingCounts() {
        let ids = elements(3, size: 16, tag: 0x10)
        let trailer = hex("ff ff ff ff ff ff ff ff ff ff ff ff 03 00 01 00")
        // One element too few or too many.
        #expect(decode(Array(ids.prefix(32)) + trailer, elementSize: 16) == nil)
        #expect(decode(ids + elements(1, size: 16, tag: 0) + trailer, elementSize: 16) == nil)
        // A payload that is not a whole number of elements.
        #expect(decode(Array(ids.prefix(47)) + trailer, elementSize: 16) == nil)
        #expect(decode(ids + [0] + trailer, elementSize: 16) == nil)
        // Counts that claim more than there is, including a huge one.
        #expect(decode(ids + hex("ff ff ff ff ff ff ff ff ff ff ff ff 04 00 01 00"), elementSize: 16) == nil)
        #expect(decode(ids + hex("ff ff ff ff ff ff ff ff ff ff ff ff ff ff 01 00"), elementSize: 16) == nil)
        // Empty batch announced, payload present.
        #expect(decode(ids + hex("ff ff ff ff ff ff ff ff ff ff ff ff 00 00 01 00"), elementSize: 16) == nil)
        // Several batches whose counts sum to one less than the payload.
        let five = [1, 2, 0, 1, 2].map { elements($0, size: 128, tag: 3) }
        var body = referenceEncode(five, elementSize: 128)
        body[body.count - 4] = 0  // First batch: 1 → 0.
        #expect(decode(body, elementSize: 128) == nil)
        // The right counts but read with the wrong element size.
        #expect(decode(ids + hex("ff ff ff ff ff ff ff ff ff ff ff ff 03 00 01 00"), elementSize: 64) == nil)
    }

    @Test func bodyTooShortForTrailer() {
        // n = 1 with E = 128 needs a 128-byte trailer.
        #expect(decode(hex("00 00 01 00"), elementSize: 128) == nil)
        #expect(decode([UInt8](repeating: ff, count: 60) + hex("00 00 01 00"), elementSize: 128) == nil)
        #expect(decode([UInt8](repeating: ff, count: 122) + hex("00 00 01 00"), elementSize: 128) == nil)
        // n = 8 with E = 16 needs 32 bytes, the body has 16.
        #expect(decode([UInt8](repeating: 0, count: 14) + hex("08 00"), elementSize: 16) == nil)
        // n = 7 fits exactly in 16 bytes: the counterpart is accepted.
        #expect(decode([UInt8](repeating: 0, count: 14) + hex("07 00"), elementSize: 16)?.count == 7)
        // The largest n with too short a body.
        #expect(decode([UInt8](repeating: 0, count: 1000) + hex("fe ff"), elementSize: 16) == nil)
    }
}
