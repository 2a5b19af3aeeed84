import LedgerKit

/// What the replica did with the messages it received: every drop and eviction is counted by
/// its reason (nothing a client sends is silently lost without a trace). Logged by the server
/// periodically and when it stops.
public struct ReplicaCounters: Equatable, Sendable, CustomStringConvertible {
    public var messagesReceived: UInt64 = 0
    public var requestsPrepared: UInt64 = 0
    public var requestsQueued: UInt64 = 0
    public var replies: UInt64 = 0
    public var repliesResent: UInt64 = 0
    public var pongs: UInt64 = 0
    public var pulses: UInt64 = 0
    /// Evictions sent, indexed by `EvictionReason.rawValue` (index 0 unused).
    public var evictions = [UInt64](repeating: 0, count: 9)

    /// A command a replica does not take from clients.
    public var droppedCommand: UInt64 = 0
    /// Frame or command-specific header rules (wire spec §4.3–4.6).
    public var droppedInvalidHeader: UInt64 = 0
    /// Not serving yet (opening) or any more (faulted).
    public var droppedNotNormal: UInt64 = 0
    /// The request's view is ahead of ours.
    public var droppedView: UInt64 = 0
    /// Old, out-of-order or wrongly chained requests, and requests of newer sessions.
    public var droppedSession: UInt64 = 0
    /// The client already has a request in the pipeline or the queue.
    public var droppedInFlight: UInt64 = 0
    public var droppedTimestamp: UInt64 = 0
    public var droppedQueueFull: UInt64 = 0
    /// A duplicate whose stored reply could not be read now (another read busy).
    public var droppedReplyRead: UInt64 = 0
    /// A stored reply body that could not be read back (damaged, or overwritten).
    public var replyReadFailures: UInt64 = 0

    public init() {}

    public var evictionsTotal: UInt64 { evictions.reduce(0, +) }

    public var droppedTotal: UInt64 {
        droppedCommand + droppedInvalidHeader + droppedNotNormal + droppedView + droppedSession + droppedInFlight
            + droppedTimestamp + droppedQueueFull + droppedReplyRead
    }

    public var description: String {
        var parts = [
            "received=\(messagesReceived)", "prepared=\(requestsPrepared)", "queued=\(requestsQueued)",
            "replies=\(replies)", "resent=\(repliesResent)", "pongs=\(pongs)", "pulses=\(pulses)",
        ]
        for reason in 1..<evictions.count where evictions[reason] > 0 {
            let name = EvictionReason(rawValue: UInt8(reason)).map { "\($0)" } ?? "\(reason)"
            parts.append("evicted_\(name)=\(evictions[reason])")
        }
        let drops: [(String, UInt64)] = [
            ("command", droppedCommand), ("invalid_header", droppedInvalidHeader), ("not_normal", droppedNotNormal),
            ("view", droppedView), ("session", droppedSession), ("in_flight", droppedInFlight),
            ("timestamp", droppedTimestamp), ("queue_full", droppedQueueFull), ("reply_read", droppedReplyRead),
        ]
        for (name, count) in drops where count > 0 { parts.append("dropped_\(name)=\(count)") }
        if replyReadFailures > 0 { parts.append("reply_read_failures=\(replyReadFailures)") }
        return parts.joined(separator: " ")
    }
}
