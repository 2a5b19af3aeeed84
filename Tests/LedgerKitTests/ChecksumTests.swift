// Tests for the AEGIS-128L checksum (specs/wire-protocol.md §3): the §3.3 vectors on every path,
// streaming against one-shot, and the AES-NI path against the portable one.

import CLedgerChecksum
import Testing

@testable import LedgerKit

/// A tiny seeded generator (SplitMix64), local so the tests do not depend on other code.
private struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

private func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count % 2 == 0)
    func value(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: preconditionFailure("not a hex digit")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}

/// The raw tag bytes from the C one-shot function.
private func tagBytes(_ input: [UInt8]) -> [UInt8] {
    var tag = [UInt8](repeating: 0, count: 16)
    input.withUnsafeBytes { bytes in
        tag.withUnsafeMutableBufferPointer { out in
            ledger_checksum(bytes.baseAddress, bytes.count, out.baseAddress!)
        }
    }
    return tag
}

private func littleEndianBytes(_ value: UInt128) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

private func oneShot(_ input: [UInt8]) -> UInt128 {
    input.withUnsafeBytes { checksum($0) }
}

private func portable(_ input: [UInt8]) -> UInt128 {
    input.withUnsafeBytes { checksumPortable($0) }
}

/// Streams `input` in random piece sizes (0 to maxPiece bytes each).
private func streamed(_ input: [UInt8], random: inout SplitMix64, maxPiece: Int) -> UInt128 {
    var stream = ChecksumStream()
    input.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
            let piece = min(random.below(maxPiece + 1), bytes.count - offset)
            stream.update(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + piece)]))
            offset += piece
        }
    }
    return stream.finalize()
}

struct ChecksumVector: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let tagHex: String
    let value: UInt128

    var testDescription: String { name }
}

/// specs/wire-protocol.md §3.3.
private let vectors: [ChecksumVector] = [
    ChecksumVector(
        name: "empty", input: [],
        tagHex: "83cc600dc4e3e7e62d4055826174f149", value: 0x49f1_7461_8255_402d_e6e7_e3c4_0d60_cc83),
    ChecksumVector(
        name: "16 zero bytes", input: [UInt8](repeating: 0, count: 16),
        tagHex: "f72ad48dd05dd1656133101cd4be3a26", value: 0x263a_bed4_1c10_3361_65d1_5dd0_8dd4_2af7),
    ChecksumVector(
        name: "TigerBeetle", input: Array("TigerBeetle".utf8),
        tagHex: "dcab7433824ec28d90d401f97b039685", value: 0x8596_037b_f901_d490_8dc2_4e82_3374_abdc),
    ChecksumVector(
        name: "bytes 0..63", input: (0..<64).map { UInt8($0) },
        tagHex: "b4e8e46cee04a401ec67bad73df4aa60", value: 0x60aa_f43d_d7ba_67ec_01a4_04ee_6ce4_e8b4),
    ChecksumVector(
        name: "256 zero bytes", input: [UInt8](repeating: 0, count: 256),
        tagHex: "651b82f3ddd4fcbf2deb8496e8ff613c", value: 0x3c61_ffe8_9684_eb2d_bffc_d4dd_f382_1b65),
    ChecksumVector(
        name: "1000 bytes i mod 251", input: (0..<1000).map { UInt8($0 % 251) },
        tagHex: "4b69e2e9e9d25d8bcd679bdbc38a494d", value: 0x4d49_8ac3_db9b_67cd_8b5d_d2e9_e9e2_694b),
]

@Suite struct ChecksumTests {
    @Test(arguments: vectors)
    func vector(_ v: ChecksumVector) {
        let expectedTag = hexBytes(v.tagHex)
        #expect(tagBytes(v.input) == expectedTag)
        #expect(oneShot(v.input) == v.value)
        #expect(littleEndianBytes(oneShot(v.input)) == expectedTag)
        #expect(portable(v.input) == v.value)

        var whole = ChecksumStream()
        v.input.withUnsafeBytes { whole.update($0) }
        #expect(whole.finalize() == v.value)
        var random = SplitMix64(state: 7)
        #expect(streamed(v.input, random: &random, maxPiece: 40) == v.value)
    }

    @Test func emptyConstant() {
        #expect(ChecksumConstants.empty == 0x49f1_7461_8255_402d_e6e7_e3c4_0d60_cc83)
        #expect(checksum(UnsafeRawBufferPointer(start: nil, count: 0)) == ChecksumConstants.empty)
        #expect(ChecksumStream().finalize() == ChecksumConstants.empty)
    }

    @Test func streamingMatchesOneShotForShortLengths() {
        for seed: UInt64 in [1, 2, 3, 0xdead_beef] {
            var random = SplitMix64(state: seed)
            for length in 0...300 {
                let input = random.bytes(length)
                let expected = oneShot(input)
                for maxPiece in [1, 7, 33, 100] {
                    #expect(
                        streamed(input, random: &random, maxPiece: maxPiece) == expected,
                        "seed \(seed) length \(length) maxPiece \(maxPiece)")
                }
            }
        }
    }

    @Test func streamingMatchesOneShotFor100KiB() {
        for seed: UInt64 in [11, 12, 13] {
            var random = SplitMix64(state: seed)
            let input = random.bytes(100 * 1024)
            let expected = oneShot(input)
            #expect(portable(input) == expected)
            for maxPiece in [31, 1000, 40_000] {
                #expect(streamed(input, random: &random, maxPiece: maxPiece) == expected)
            }
        }
    }

    @Test func finalizeDoesNotConsumeTheStream() {
        var random = SplitMix64(state: 5)
        let input = random.bytes(77)
        var stream = ChecksumStream()
        input.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        #expect(stream.finalize() == oneShot(Array(input[0..<20])))
        let fork = stream
        input.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[20...])) }
        #expect(stream.finalize() == oneShot(input))
        #expect(fork.finalize() == oneShot(Array(input[0..<20])))
    }

    /// On this x86_64 machine `checksum` runs on AES-NI, so this compares the two implementations.
    @Test func aesniAndPortablePathsAgree() {
        #if arch(x86_64)
        // Every x86_64 CPU this project targets has AES-NI; without it the test below would only
        // compare the portable path with itself.
        #expect(checksumUsesAESNI)
        #endif
        var random = SplitMix64(state: 42)
        for length in Array(0...200) + [255, 256, 257, 1023, 1024, 1025, 4096 + 17, 65_536] {
            for offset in [0, 1, 15] {  // also unaligned inputs
                let buffer = random.bytes(offset + length)
                buffer.withUnsafeBytes { all in
                    let bytes = UnsafeRawBufferPointer(rebasing: all[offset...])
                    #expect(checksum(bytes) == checksumPortable(bytes), "length \(length) offset \(offset)")
                }
            }
        }
    }

    @Test func everySingleBitFlipChangesTheChecksum() {
        var random = SplitMix64(state: 99)
        for length in [1, 16, 31, 32, 33, 240, 1000] {
            var input = random.bytes(length)
            let original = oneShot(input)
            var seen: Set<UInt128> = [original]
            for bit in 0..<(length * 8) {
                input[bit / 8] ^= 1 << UInt8(bit % 8)
                let flipped = oneShot(input)
                #expect(flipped != original, "length \(length) bit \(bit)")
                seen.insert(flipped)
                input[bit / 8] ^= 1 << UInt8(bit % 8)
            }
            #expect(seen.count == length * 8 + 1, "length \(length): all flips give distinct checksums")
        }
    }

    @Test func lengthIsPartOfTheChecksum() {
        // Zero padding of the last block must not make these collide: the length is finalized in.
        let checksums = (0...64).map { oneShot([UInt8](repeating: 0, count: $0)) }
        #expect(Set(checksums).count == checksums.count)
    }
}
