import LedgerKit
import LedgerLSM
import Testing

@Suite struct EWAHTests {
    /// Encodes into one buffer and decodes back; returns the encoded size.
    @discardableResult
    func roundTrip(_ words: [UInt64], _ comment: Comment = "") -> Int {
        let target = UnsafeMutableRawBufferPointer.allocate(
            byteCount: EWAH.encodedSizeMax(wordCount: words.count), alignment: 8)
        defer { target.deallocate() }
        let size = words.withUnsafeBufferPointer { EWAH.encode($0, into: target) }
        #expect(size <= EWAH.encodedSizeMax(wordCount: words.count), comment)
        var decoded = [UInt64](repeating: 0xdead_beef, count: words.count)
        do {
            try decoded.withUnsafeMutableBufferPointer {
                try EWAH.decode(UnsafeRawBufferPointer(rebasing: target[0..<size]), into: $0)
            }
        } catch {
            Issue.record("decode failed: \(error) \(comment)")
        }
        #expect(decoded == words, comment)
        return size
    }

    /// Encodes chunk by chunk (`chunkSize` bytes each) and decodes the chunks in order.
    func chunkedRoundTrip(_ words: [UInt64], chunkSize: Int, _ comment: Comment = "") {
        let chunkMax = EWAH.chunkCountMax(wordCount: words.count, chunkSize: chunkSize)
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkMax * chunkSize, alignment: 8)
        defer { storage.deallocate() }
        var sizes: [Int] = []
        words.withUnsafeBufferPointer { source in
            var encoder = EWAH.Encoder(words: source)
            while !encoder.isDone && sizes.count < chunkMax {
                let chunk = UnsafeMutableRawBufferPointer(
                    rebasing: storage[(sizes.count * chunkSize)..<((sizes.count + 1) * chunkSize)])
                sizes.append(encoder.encode(source, into: chunk))
            }
            #expect(encoder.isDone, "chunkCountMax chunks hold the encoding \(comment)")
        }
        var decoded = [UInt64](repeating: 1, count: words.count)
        do {
            try decoded.withUnsafeMutableBufferPointer { target in
                var decoder = EWAH.Decoder(wordCount: target.count)
                for (index, size) in sizes.enumerated() {
                    try decoder.decode(chunk: UnsafeRawBufferPointer(
                        rebasing: storage[(index * chunkSize)..<(index * chunkSize + size)]), into: target)
                }
                decoder.finish(target)
            }
        } catch {
            Issue.record("decode failed: \(error) \(comment)")
        }
        #expect(decoded == words, comment)
    }

    func patterns(seed: UInt64) -> [(String, [UInt64])] {
        var prng = PRNG(seed: seed)
        let count = prng.int(in: 0...300)
        var runs: [UInt64] = []
        while runs.count < count {
            let length = prng.int(in: 1...20)
            let kind = prng.below(3)
            for _ in 0..<length {
                runs.append(kind == 0 ? 0 : kind == 1 ? ~0 : prng.next())
            }
        }
        return [
            ("random", (0..<count).map { _ in prng.next() }),
            ("runs", runs),
            ("sparse", (0..<count).map { _ in prng.chance(percent: 5) ? 1 << prng.below(64) : 0 }),
            ("alternating uniform", (0..<count).map { $0 % 2 == 0 ? 0 : ~UInt64(0) }),
            ("alternating literal", (0..<count).map { $0 % 2 == 0 ? 0 : 0x5555_5555_5555_5555 }),
            ("literal one zero", (0..<count).map { $0 % 3 == 0 ? 0 : 0xAAAA_0000_FFFF_0001 }),
        ]
    }

    @Test func fixedShapes() {
        #expect(roundTrip([]) == 0)
        #expect(roundTrip([0]) == 0, "a zero word is implied")
        #expect(roundTrip([~0]) == 8, "one marker")
        #expect(roundTrip([0x1234]) == 16, "a marker and a literal")
        #expect(roundTrip([UInt64](repeating: 0, count: 100_000)) == 0, "all zeros")
        #expect(roundTrip([UInt64](repeating: ~0, count: 100_000)) == 8, "all ones")
        // A 4 MiB bitset with a few blocks set: a handful of words.
        var sparse = [UInt64](repeating: 0, count: 524_288)
        sparse[0] = ~0
        sparse[1] = 0b1011
        sparse[300_000] = 1 << 40
        #expect(roundTrip(sparse) == 4 * 8, "two markers, two literals")
        // Mostly full: ones, a hole, ones again.
        var full = [UInt64](repeating: ~0, count: 524_288)
        full[1000] = ~0 << 3
        #expect(roundTrip(full) == 3 * 8)
        // Uniform words of alternating value: one marker per word, the bound.
        let alternating = (0..<1000).map { $0 % 2 == 0 ? ~UInt64(0) : 0 }
        #expect(roundTrip(alternating) <= EWAH.encodedSizeMax(wordCount: 1000))
    }

    @Test(arguments: 0..<40)
    func randomRoundTrips(seed: Int) {
        for (name, words) in patterns(seed: UInt64(seed)) {
            roundTrip(words, "seed \(seed) \(name)")
            for chunkSize in [24, 32, 64, 200 * 8] {
                chunkedRoundTrip(words, chunkSize: chunkSize, "seed \(seed) \(name) chunk \(chunkSize)")
            }
        }
    }

    @Test func chunkCountMaxCoversTheWorstCase() {
        // Literals interleaved with single uniform words force a marker every two words.
        for wordCount in [0, 1, 2, 3, 10, 97, 1000] {
            for chunkSize in [24, 32, 40, 4096] {
                let worst = (0..<wordCount).map { $0 % 2 == 0 ? UInt64(0x77) : ~UInt64(0) }
                chunkedRoundTrip(worst, chunkSize: chunkSize, "words \(wordCount) chunk \(chunkSize)")
                let literals = (0..<wordCount).map { UInt64($0) | 0x100 }
                chunkedRoundTrip(literals, chunkSize: chunkSize, "words \(wordCount) chunk \(chunkSize)")
            }
        }
    }

    func decode(_ chunk: [UInt64], wordCount: Int, byteCount: Int? = nil) -> EWAHError? {
        decodeWords(chunk, wordCount: wordCount, byteCount: byteCount).error
    }

    func decodeWords(_ chunk: [UInt64], wordCount: Int, byteCount: Int? = nil) -> (error: EWAHError?, words: [UInt64]) {
        var target = [UInt64](repeating: 0, count: wordCount)
        do {
            try chunk.withUnsafeBytes { bytes in
                try target.withUnsafeMutableBufferPointer { words in
                    try EWAH.decode(UnsafeRawBufferPointer(rebasing: bytes[0..<(byteCount ?? bytes.count)]), into: words)
                }
            }
            return (nil, target)
        } catch let error as EWAHError {
            return (error, target)
        } catch {
            Issue.record("EWAH.decode throws only EWAHError, got \(error)")
            return (nil, target)
        }
    }

    func marker(uniformBit: UInt64 = 0, uniform: UInt64, literals: UInt64) -> UInt64 {
        uniformBit | uniform << 1 | literals << 32
    }

    @Test func malformedInputsAreTypedErrors() {
        #expect(decode([marker(uniformBit: 1, uniform: 2, literals: 0)], wordCount: 4) == nil)
        #expect(decode([marker(uniform: 1, literals: 0)], wordCount: 4, byteCount: 7) == .chunkNotWordAligned(byteCount: 7))
        #expect(decode([marker(uniform: 0, literals: 3), 5, 6], wordCount: 4) == .literalsPastChunkEnd)
        #expect(decode([marker(uniform: 0, literals: 2), 5, 6], wordCount: 4, byteCount: 16) == .literalsPastChunkEnd)
        #expect(decode([marker(uniformBit: 1, uniform: 5, literals: 0)], wordCount: 4) == .wordsPastEnd)
        #expect(decode([marker(uniform: 3, literals: 2), 5, 6], wordCount: 4) == .wordsPastEnd)
        #expect(decode([marker(uniform: 0, literals: 1), 0], wordCount: 4) == .uniformLiteral)
        #expect(decode([marker(uniform: 0, literals: 1), ~0], wordCount: 4) == .uniformLiteral)
        #expect(decode([0], wordCount: 4) == .malformedMarker)
        #expect(decode([marker(uniformBit: 1, uniform: 0, literals: 1), 5], wordCount: 4) == .malformedMarker)
        #expect(decode([UInt64.max], wordCount: 4) == .literalsPastChunkEnd)
    }

    /// Garbage and damaged encodings never trap: they decode or fail with an error.
    @Test(arguments: 0..<200)
    func fuzzDecode(seed: Int) {
        var prng = PRNG(seed: UInt64(seed) &+ 0xF00D)
        let wordCount = prng.int(in: 0...64)
        // Garbage words, with markers of plausible sizes now and then.
        var garbage: [UInt64] = (0..<prng.int(in: 1...32)).map { _ in
            prng.chance(percent: 50) ? prng.next() : prng.below(8) << 1 | prng.below(2) | prng.below(8) << 32
        }
        _ = decode(garbage, wordCount: wordCount, byteCount: prng.int(in: 0...(garbage.count * 8)))
        // A valid encoding, damaged: a flipped bit or a truncation.
        let words = patterns(seed: UInt64(seed))[Int(prng.below(6))].1
        let target = UnsafeMutableRawBufferPointer.allocate(
            byteCount: EWAH.encodedSizeMax(wordCount: words.count), alignment: 8)
        defer { target.deallocate() }
        let size = words.withUnsafeBufferPointer { EWAH.encode($0, into: target) }
        garbage = (0..<(size / 8)).map { target.load(fromByteOffset: $0 * 8, as: UInt64.self) }
        if !garbage.isEmpty {
            let bit = Int(prng.below(UInt64(garbage.count * 64)))
            garbage[bit / 64] ^= 1 << UInt64(bit % 64)
            let result = decodeWords(garbage, wordCount: words.count)
            // Decoding may succeed (a flipped literal bit is still a bitset), but never into the
            // original words: a damaged encoding is never mistaken for the intact one.
            #expect(result.error != nil || result.words != words, "seed \(seed)")
            _ = decode(garbage, wordCount: words.count, byteCount: prng.int(in: 0...(garbage.count * 8)))
            _ = decode(garbage, wordCount: max(0, words.count - prng.int(in: 1...8)))
        }
        #expect(decode([], wordCount: wordCount) == nil, "an empty encoding is all zeros (seed \(seed))")
    }
}
