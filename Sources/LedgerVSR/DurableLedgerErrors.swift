import LedgerKit
import LedgerLSM

// What `DurableLedger` reports: why it cannot open, why it stopped, why a submit was refused,
// and a committed op's reply.

/// Why `DurableLedger.open` could not make the ledger ready. Every cause is a disk state, never
/// a crash.
public enum DurableLedgerOpenError: Error, Equatable, Sendable {
    /// No superblock quorum (or a forked or regressed one).
    case superblock(SuperblockError)
    /// The superblock's checkpoint state does not describe a forest checkpoint.
    case checkpointState(ForestCheckpointStateError)
    case forest(ForestOpenError)
    /// The client-sessions trailer cannot be read.
    case clientSessionsTrailer(CheckpointTrailerError)
    /// The client-sessions trailer was read but is not a sessions table.
    case clientSessions(ClientSessionsDecodeError)
    /// A checkpoint past format without a client-sessions trailer, or a trailer block the free
    /// set does not hold as acquired.
    case clientSessionsReference
    /// WAL recovery refused (a solo replica cannot repair) or found no WAL.
    case journal(JournalError)
    /// The WAL's head is below the checkpoint or below commit_max: committed ops are missing.
    case walHead(UInt64)
    /// No prepare for `op` between the checkpoint and the head.
    case walGap(op: UInt64)
    /// The prepare of `op` does not chain to the previous op's.
    case walChain(op: UInt64)
    /// The prepare of `op` could not be read back intact.
    case walPrepare(op: UInt64)
    /// The prepare of `op` is intact but holds no operation this ledger executes.
    case walOperation(op: UInt64)
    /// Replaying `op` stopped the ledger.
    case replay(op: UInt64, DurableLedgerFault)
}

/// Why the ledger stopped committing (sticky). A solo replica cannot repair from peers.
public enum DurableLedgerFault: Error, Equatable, Sendable {
    case prefetch(ForestStoreFault)
    case forest(ForestFault)
}

/// Why `submit` refused a request (nothing was prepared; the callback will not run).
public enum DurableSubmitError: Error, Equatable, Sendable {
    /// Not opened yet (or the open failed).
    case notReady
    case faulted(DurableLedgerFault)
    /// The body is not valid for the operation, or the operation is internal.
    case invalidRequest
    /// More events than the store is sized for.
    case tooManyEvents
    /// The client has no session (register first).
    case noSession
    /// `pipelinePrepareQueueMax` prepares are in flight: retry after a reply.
    case pipelineFull
}

/// A committed op's reply: `message` (the header, then the body) is valid only during the
/// callback.
public struct DurableReply {
    public let header: ReplyHeader
    public let message: UnsafeRawBufferPointer

    public var body: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: message[Constants.messageHeaderSize...])
    }
}
