#if canImport(Glibc)
import Glibc
#endif
import CURing

/// A reusable completion for one `IOUring` operation at a time (TCP, timers, raw file IO).
///
/// Owners allocate their completions at start-up, one per operation they may have in flight, and
/// set `callback` once, so nothing is allocated per operation. While an operation is in flight
/// the ring holds a strong reference to its completion (through the SQE's user_data), so the
/// kernel never writes into a freed object even if its owner lets go early.
public final class IOCompletion {
    public typealias Callback = (IOCompletion) -> Void

    /// Runs from the event loop when the operation completes. Set once by the owner; typically
    /// `{ [unowned self] completion in self.received(completion) }`.
    public var callback: Callback
    /// Free for the owner: which connection, timer or slot this completion serves.
    public var tag: Int = 0

    /// The kernel's result: bytes transferred, a new file descriptor (accept), 0 (connect, close,
    /// a timer that fired) or `-errno`. Valid inside the callback and until the next operation.
    public internal(set) var result: Int32 = 0
    /// Whether an operation is in flight (cleared just before the callback runs, so the callback
    /// may start the next operation on the same completion).
    public internal(set) var isBusy = false

    /// Which operation is in flight: the loop finishes some of them (accepted sockets get their
    /// options; an expired timer reads as success) before the callback sees them.
    enum Operation: UInt8 {
        case none, read, write, accept, connect, recv, send, close, timeout, cancel, nop
    }
    var operation: Operation = .none

    /// The loop's intrusive FIFO of reaped completions whose callbacks have not run yet.
    var nextCompleted: IOCompletion?

    /// Per-operation memory the kernel reads after the SQE is prepared (it must outlive the
    /// prepare call and stay at a fixed address): the socket address of connect/accept and the
    /// timespec of a timeout. Allocated once, here, so operations allocate nothing.
    let scratch: UnsafeMutableRawPointer
    static let scratchAddressOffset = 0
    static let scratchAddressLengthOffset = MemoryLayout<sockaddr_storage>.size
    static let scratchTimespecOffset = MemoryLayout<sockaddr_storage>.size + 16
    static let scratchSize = scratchTimespecOffset + MemoryLayout<__kernel_timespec>.size

    public init(callback: @escaping Callback = { _ in preconditionFailure("completion callback not set") }) {
        self.callback = callback
        scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 16)
        scratch.initializeMemory(as: UInt8.self, repeating: 0, count: Self.scratchSize)
    }

    deinit { scratch.deallocate() }

    var scratchAddress: UnsafeMutablePointer<sockaddr> {
        (scratch + Self.scratchAddressOffset).bindMemory(to: sockaddr.self, capacity: 1)
    }
    var scratchAddressLength: UnsafeMutablePointer<socklen_t> {
        (scratch + Self.scratchAddressLengthOffset).bindMemory(to: socklen_t.self, capacity: 1)
    }
    var scratchTimespec: UnsafeMutablePointer<__kernel_timespec> {
        (scratch + Self.scratchTimespecOffset).bindMemory(to: __kernel_timespec.self, capacity: 1)
    }
}
