/// A release number (wire spec §8.1): `major.minor.patch` packed in a u32 as
/// `major·65536 + minor·256 + patch`, so releases compare as plain integers.
public struct ReleaseTriple: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt8
    public var patch: UInt8

    public init(major: UInt16, minor: UInt8, patch: UInt8) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Every u32 is some triple: the fields cover all 32 bits.
    public init(value: UInt32) {
        major = UInt16(truncatingIfNeeded: value >> 16)
        minor = UInt8(truncatingIfNeeded: value >> 8)
        patch = UInt8(truncatingIfNeeded: value)
    }

    /// The wire value.
    public var value: UInt32 { UInt32(major) << 16 | UInt32(minor) << 8 | UInt32(patch) }

    /// Parses the canonical form "0.17.9": three decimal numbers without signs, spaces or
    /// leading zeros, each within its field's range. Nil otherwise, so `description` and this
    /// initializer round-trip and one release has one spelling.
    public init?(parsing text: String) {
        var parts: (UInt32, UInt32, UInt32) = (0, 0, 0)
        var partIndex = 0
        var digitCount = 0
        var current: UInt32 = 0
        var leadingZero = false
        // Bounded: the longest valid text is "65535.255.255", 13 bytes.
        let utf8 = text.utf8
        if utf8.count > 13 { return nil }
        for byte in utf8 {
            if byte == UInt8(ascii: ".") {
                if digitCount == 0 { return nil }
                if partIndex == 2 { return nil }
                if partIndex == 0 { parts.0 = current } else { parts.1 = current }
                partIndex += 1
                digitCount = 0
                current = 0
                leadingZero = false
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            if leadingZero { return nil }
            if digitCount == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
            digitCount += 1
            // The widest field (u16) has 5 digits: the cap also keeps `current` far from
            // overflowing its u32.
            if digitCount > 5 { return nil }
            current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
        }
        if digitCount == 0 { return nil }
        if partIndex != 2 { return nil }
        parts.2 = current
        guard let major = UInt16(exactly: parts.0) else { return nil }
        guard let minor = UInt8(exactly: parts.1) else { return nil }
        guard let patch = UInt8(exactly: parts.2) else { return nil }
        self.init(major: major, minor: minor, patch: patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: ReleaseTriple, rhs: ReleaseTriple) -> Bool { lhs.value < rhs.value }
}
