/// The seeded pseudo-random number generator of the whole project: xoshiro256** seeded through
/// SplitMix64. Every random choice in the core, the simulator and the tests comes from one of
/// these, so a seed replays a run bit for bit. The algorithms are fixed here (not the standard
/// library's `random(in:)`, whose algorithm may change between Swift releases).
public struct PRNG: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15  // Wrapping is the algorithm.
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&x)
        s1 = splitMix(&x)
        s2 = splitMix(&x)
        s3 = splitMix(&x)
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// A uniform integer in `0..<bound` (Lemire's multiply-shift with rejection).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "PRNG.below needs a positive bound")
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold {
                m = next().multipliedFullWidth(by: bound)
            }
        }
        return m.high
    }

    /// A uniform `Int` in `range`.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        // The span may exceed Int.max: compute it in wrapping two's complement (the meaning).
        let span = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound)) &+ 1
        if span == 0 { return Int(truncatingIfNeeded: next()) }  // The full 64-bit range.
        return range.lowerBound &+ Int(truncatingIfNeeded: below(span))
    }

    /// True with probability `percent`/100.
    public mutating func chance(percent: Int) -> Bool {
        precondition(percent >= 0 && percent <= 100, "percent is in 0...100")
        return below(100) < UInt64(percent)
    }

    public mutating func uint128() -> UInt128 {
        UInt128(next()) << 64 | UInt128(next())
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}
