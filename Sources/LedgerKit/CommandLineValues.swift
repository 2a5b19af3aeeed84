/// Parsers for the values our command lines take (`--cluster`, `--size`, `--cache-grid`, …),
/// shared by every binary so that each accepts exactly the same spellings. They return nil on
/// anything malformed; the caller turns that into one clear line on stderr.
public enum CommandLineValues {
    /// A u128 in decimal, or hexadecimal with a `0x` prefix. Underscores are allowed as digit
    /// separators. No sign, no whitespace, no overflow.
    public static func parseUInt128(_ text: String) -> UInt128? {
        var digits = Substring(text)
        var radix: UInt128 = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            digits = digits.dropFirst(2)
            radix = 16
        }
        var value: UInt128 = 0
        var sawDigit = false
        for character in digits {
            if character == "_" { continue }
            guard let digit = character.hexDigitValue, UInt128(digit) < radix else { return nil }
            let (shifted, overflowMultiply) = value.multipliedReportingOverflow(by: radix)
            let (next, overflowAdd) = shifted.addingReportingOverflow(UInt128(digit))
            guard !overflowMultiply, !overflowAdd else { return nil }
            value = next
            sawDigit = true
        }
        return sawDigit ? value : nil
    }

    /// A byte size: a number with an optional binary unit, `B`, `KiB`, `MiB`, `GiB`, `TiB` (also
    /// written `K`, `M`, `G`, `T`, case-insensitive; `KB` etc. are read as binary units too,
    /// like TigerBeetle). Overflow and empty numbers are rejected.
    public static func parseByteSize(_ text: String) -> UInt64? {
        let lowered = text.lowercased()
        let units: [(String, UInt64)] = [
            ("tib", 1 << 40), ("gib", 1 << 30), ("mib", 1 << 20), ("kib", 1 << 10),
            ("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10),
            ("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10), ("b", 1),
        ]
        var number = Substring(lowered)
        var multiplier: UInt64 = 1
        for (suffix, factor) in units where lowered.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            multiplier = factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber || $0 == "_" }),
            let value = parseUInt128(String(number)), value <= UInt128(UInt64.max)
        else { return nil }
        let (bytes, overflow) = UInt64(value).multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// A byte count for people: `1088.5 MiB`, `96 KiB`, `512 B`.
    public static func formatByteSize(_ bytes: UInt64) -> String {
        let units: [(String, UInt64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        // The largest unit in which the number is exact or has at least three digits.
        for (name, factor) in units
        where bytes >= factor && (bytes % factor == 0 || bytes / factor >= 100 || factor == 1 << 10) {
            let whole = bytes / factor
            let tenths = (bytes % factor) * 10 / factor
            return tenths == 0 ? "\(whole) \(name)" : "\(whole).\(tenths) \(name)"
        }
        return "\(bytes) B"
    }
}
