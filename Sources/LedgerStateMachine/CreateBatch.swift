import CLedgerHints
import LedgerKit

/// What the create-batch loop needs to know of an event (Account or Transfer).
protocol CreateEvent {
    var id: UInt128 { get }
    var timestamp: UInt64 { get }
    var isLinked: Bool { get }
    var isImported: Bool { get }
}

/// What the create-batch loop needs to know of a status (account or transfer status).
protocol CreateStatus: Equatable {
    static var created: Self { get }
    static var exists: Self { get }
    static var linkedEventFailed: Self { get }
    static var linkedEventChainOpen: Self { get }
    static var importedEventExpected: Self { get }
    static var importedEventNotExpected: Self { get }
    static var importedEventTimestampOutOfRange: Self { get }
    static var importedEventTimestampMustNotAdvance: Self { get }
    static var timestampMustBeZero: Self { get }
}

/// A result record (timestamp, status): CreateAccountResult or CreateTransferResult.
protocol CreateResultRecord {
    associatedtype Status: CreateStatus
    init(timestamp: UInt64, status: Status)
    var status: Status { get set }
}

extension Account: CreateEvent {
    var isLinked: Bool { flags.contains(.linked) }
    var isImported: Bool { flags.contains(.imported) }
}

extension Transfer: CreateEvent {
    var isLinked: Bool { flags.contains(.linked) }
    var isImported: Bool { flags.contains(.imported) }
}

extension CreateAccountStatus: CreateStatus {}
extension CreateTransferStatus: CreateStatus {}
extension CreateAccountResult: CreateResultRecord {}
extension CreateTransferResult: CreateResultRecord {}

extension StateMachine {
    /// The create batch loop of state-machine spec §4.4, shared by accounts and transfers:
    /// slot timestamps, the checks that precede the per-object checks (§5.1), linked chains
    /// with savepoints and rollback, and the failed-id record for transient failures (which
    /// outlives the rollback).
    ///
    /// `createOne(event, slotTimestamp)` runs the per-object checks and applies a success; it
    /// returns the status and, for `created`/`exists`, the object's timestamp.
    @inline(__always)
    func executeCreateBatch<Event: CreateEvent, Result: CreateResultRecord>(
        events: UnsafeBufferPointer<Event>,
        batchTimestamp: UInt64,
        results: UnsafeMutableBufferPointer<Result>,
        isTransient: (Result.Status) -> Bool,
        hint: (_ event: Event, _ timestamp: UInt64, _ records: Bool) -> Void,
        createOne: (Event, UInt64) -> (Result.Status, UInt64)
    ) {
        typealias Status = Result.Status
        let count = events.count
        precondition(results.count >= count, "one result per event")
        precondition(batchTimestamp >= UInt64(count), "every event has a slot timestamp")
        let batchImported = count > 0 && events[0].isImported
        var chainStart = -1
        var chainBroken = false

        for index in 0..<count {
            let event = events[index]
            let slotTimestamp = batchTimestamp - UInt64(count) + UInt64(index) + 1
            if index + eventPrefetchDistance < count {
                prefetchEvent(events.baseAddress! + index + eventPrefetchDistance)
            }
            if index + 2 * hintDistance < count {
                let ahead = index + 2 * hintDistance
                hint(events[ahead], hintTimestamp(events[ahead], ahead, count, batchTimestamp), false)
            }
            if index + hintDistance < count {
                let ahead = index + hintDistance
                hint(events[ahead], hintTimestamp(events[ahead], ahead, count, batchTimestamp), true)
            }

            if event.isLinked && chainStart == -1 {
                chainStart = index
                store.scopeOpen()
            }

            var status: Status
            var objectTimestamp: UInt64 = 0
            if event.isLinked && index == count - 1 {
                status = .linkedEventChainOpen
            } else if chainBroken {
                status = .linkedEventFailed
            } else if event.isImported != batchImported {
                status = event.isImported ? .importedEventNotExpected : .importedEventExpected
            } else if event.isImported && !Timestamp.isValid(event.timestamp) {
                status = .importedEventTimestampOutOfRange
            } else if event.isImported && event.timestamp >= batchTimestamp {
                status = .importedEventTimestampMustNotAdvance
            } else if !event.isImported && event.timestamp != 0 {
                status = .timestampMustBeZero
            } else {
                (status, objectTimestamp) = createOne(event, slotTimestamp)
            }
            let resultTimestamp =
                (status == .created || status == .exists) ? objectTimestamp : slotTimestamp

            if status != .created {
                if chainStart != -1 && !chainBroken {
                    chainBroken = true
                    store.scopeClose(persist: false)
                    for earlier in chainStart..<index {
                        results[earlier].status = .linkedEventFailed
                    }
                }
                if isTransient(status) {
                    store.insertFailedTransfer(id: event.id, timestamp: slotTimestamp)
                }
            }
            results[index] = Result(timestamp: resultTimestamp, status: status)

            if chainStart != -1 && (!event.isLinked || status == .linkedEventChainOpen) {
                if !chainBroken { store.scopeClose(persist: true) }
                chainStart = -1
                chainBroken = false
            }
        }
        precondition(chainStart == -1, "every chain closes within its batch")
    }
}

extension StateMachine {
    /// How many events ahead execute hints the store: far enough that a cache miss (~100 ns)
    /// completes before the event executes, near enough that the lines are still cached.
    var hintDistance: Int { 16 }

    /// How many events ahead execute starts loading the request's event bytes: the far hint
    /// (`2 × hintDistance` ahead) reads each event first, and the body (1 MiB for a batch of
    /// transfers) is no longer cached after prefetch walked it, so that read missed on every
    /// event (~7 % of a forest create_transfers execute) despite the sequential access.
    var eventPrefetchDistance: Int { 3 * hintDistance }

    /// Starts loading every cache line of the event at `event` (a hint: loads only).
    @inline(__always)
    func prefetchEvent<Event>(_ event: UnsafePointer<Event>) {
        let bytes = UnsafeRawPointer(event)
        // Bounded: an event is a few cache lines (128 B for accounts and transfers).
        for offset in stride(from: 0, to: MemoryLayout<Event>.stride, by: 64) { ledger_prefetch_read(bytes + offset) }
    }

    /// The timestamp event `index` gets if created (its slot timestamp, or its own if
    /// imported), for a store's hint of where it will insert it.
    @inline(__always)
    func hintTimestamp<Event: CreateEvent>(
        _ event: Event, _ index: Int, _ count: Int, _ batchTimestamp: UInt64
    ) -> UInt64 {
        event.isImported ? event.timestamp : batchTimestamp - UInt64(count) + UInt64(index) + 1
    }
}

/// Timestamps: u64 nanoseconds since the UNIX epoch, valid in 1...2^63−1.
enum Timestamp {
    @inline(__always)
    static func isValid(_ timestamp: UInt64) -> Bool {
        timestamp >= 1 && timestamp <= Constants.timestampMax
    }
}
