/// Typed views of an untyped header, for the client-protocol commands. The caller dispatches on
/// `command` first (a wrong cast is a programmer error, hence the preconditions); every layout
/// is 256 bytes with no implicit padding, so the cast is a plain reinterpretation.
extension Header {
    /// The header as a request. The caller checked `command == .request`.
    public var asRequest: RequestHeader {
        precondition(frame.command == Command.request.rawValue, "header is a request")
        return unsafeBitCast(self, to: RequestHeader.self)
    }

    /// The header as a reply. The caller checked `command == .reply`.
    public var asReply: ReplyHeader {
        precondition(frame.command == Command.reply.rawValue, "header is a reply")
        return unsafeBitCast(self, to: ReplyHeader.self)
    }

    /// The header as a ping from a client. The caller checked `command == .pingClient`.
    public var asPingClient: PingClientHeader {
        precondition(frame.command == Command.pingClient.rawValue, "header is a ping_client")
        return unsafeBitCast(self, to: PingClientHeader.self)
    }

    /// The header as a pong to a client. The caller checked `command == .pongClient`.
    public var asPongClient: PongClientHeader {
        precondition(frame.command == Command.pongClient.rawValue, "header is a pong_client")
        return unsafeBitCast(self, to: PongClientHeader.self)
    }

    /// The header as an eviction. The caller checked `command == .eviction`.
    public var asEviction: EvictionHeader {
        precondition(frame.command == Command.eviction.rawValue, "header is an eviction")
        return unsafeBitCast(self, to: EvictionHeader.self)
    }
}
