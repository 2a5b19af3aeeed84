/// A JSON value with ordered object keys, rendered by hand: the inspector's `--json` output is
/// for scripts, so its key order is stable and u128 values are strings (JSON numbers cannot
/// carry 128 bits exactly).
enum JSON {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case bool(Bool)
    case null

    static func u128(_ value: UInt128) -> JSON { .string(String(value)) }
    static func hex(_ value: UInt128) -> JSON { .string(hex128(value)) }

    func rendered(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch self {
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            let body = fields.map { "\(inner)\(JSON.quote($0.0)): \($0.1.rendered(indent: indent + 1))" }
            return "{\n" + body.joined(separator: ",\n") + "\n\(pad)}"
        case .array(let items):
            if items.isEmpty { return "[]" }
            let body = items.map { inner + $0.rendered(indent: indent + 1) }
            return "[\n" + body.joined(separator: ",\n") + "\n\(pad)]"
        case .string(let text): return JSON.quote(text)
        case .integer(let value): return String(value)
        case .unsigned(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let digits = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A u128 as 32 hex digits (checksums, ids).
func hex128(_ value: UInt128) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 32 - digits.count) + digits
}

/// A checksum shortened for tables: its first 8 hex digits.
func shortHex(_ value: UInt128) -> String { String(hex128(value).prefix(8)) }
