/// One entry of an `--addresses` list (wire spec §2.1, storage spec §11): `host:port`, a bare
/// `port` (host 127.0.0.1), a bare `host` (port 3001), IPv6 in brackets (`[::1]:3000`). The
/// position in the list is the replica's index. Parsed here, without sockets, so that the
/// server, the tools and the client agree on the syntax.
public struct ReplicaAddress: Equatable, Sendable, CustomStringConvertible {
    public static let hostDefault = "127.0.0.1"
    public static let portDefault: UInt16 = 3001

    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// A comma-separated list of 1…`Constants.replicasMax` addresses, or why it is not one.
    public static func parseList(_ text: String) -> Result<[ReplicaAddress], ReplicaAddressError> {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= Constants.replicasMax else { return .failure(.tooMany(parts.count)) }
        var addresses: [ReplicaAddress] = []
        for part in parts {
            let trimmed = String(part.filter { $0 != " " })
            guard let address = parse(trimmed) else { return .failure(.invalid(String(part))) }
            guard !addresses.contains(address) else { return .failure(.duplicate(address.description)) }
            addresses.append(address)
        }
        return .success(addresses)
    }

    /// One address, or nil.
    public static func parse(_ text: String) -> ReplicaAddress? {
        guard !text.isEmpty else { return nil }
        if text.hasPrefix("[") {
            // [v6] or [v6]:port
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return ReplicaAddress(host: host, port: portDefault) }
            guard rest.hasPrefix(":"), let port = parsePort(rest.dropFirst()) else { return nil }
            return ReplicaAddress(host: host, port: port)
        }
        let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
        switch pieces.count {
        case 1:
            if text.allSatisfy({ $0.isASCII && $0.isNumber }) {
                guard let port = parsePort(Substring(text)) else { return nil }
                return ReplicaAddress(host: hostDefault, port: port)
            }
            guard isHostName(text) else { return nil }
            return ReplicaAddress(host: text, port: portDefault)
        case 2:
            let host = String(pieces[0])
            guard isHostName(host), let port = parsePort(pieces[1]) else { return nil }
            return ReplicaAddress(host: host, port: port)
        default:
            // A bare IPv6 address without brackets is ambiguous with a port.
            return nil
        }
    }

    private static func parsePort(_ text: Substring) -> UInt16? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt32(text),
            value >= 1, value <= UInt32(UInt16.max)
        else { return nil }
        return UInt16(value)
    }

    private static func isHostName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 253
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }
    }
}

public enum ReplicaAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooMany(Int)
    case invalid(String)
    case duplicate(String)

    public var description: String {
        switch self {
        case .tooMany(let count): "at most \(Constants.replicasMax) addresses, got \(count)"
        case .invalid(let text): "'\(text)' is not an address (host:port, port, host, or [ipv6]:port)"
        case .duplicate(let text): "\(text) is listed twice"
        }
    }
}
