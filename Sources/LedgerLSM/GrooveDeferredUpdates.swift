import LedgerKit

/// The object updates a groove defers to its op's beat (Groove.swift, "Deferred updates"): the
/// timestamp of every update of the op, with the cache slot it was written to, kept so that
/// each updated object is put into the object tree once, at the op's end, in timestamp order.
///
/// A batch of 8189 transfers updates 16 378 accounts, ~8 k distinct over 10 k accounts (and a
/// handful when a few accounts take every transfer): putting each update made the accounts
/// object tree sort, merge and compact every intermediate balance. Put once, ascending, a
/// beat's account puts are a run as they are (the memtable's fast path) and hold each account
/// once.
///
/// Memory: two arrays of `capacity` entries (16 B each) and a radix sort's count tables,
/// allocated at init.
final class GrooveDeferredUpdates {
    /// One recorded update: the object's timestamp and where the cache held it then.
    struct Entry: TreeValue {
        var timestamp: UInt64
        var hint: Int

        var key: UInt64 { timestamp }
        var isTombstone: Bool { false }
        static func tombstone(key: UInt64) -> Entry {
            preconditionFailure("a deferred update is never a tombstone")
        }
    }

    /// Updates one op may record: the groove's `changesPerBeatMax`.
    let capacity: Int
    private let entries: UnsafeMutablePointer<Entry>
    private let scratch: UnsafeMutablePointer<Entry>
    private let sort = KeyRadixSort<Entry>()
    private(set) var count = 0
    /// `count` at `scopeOpen()`, while a scope is open.
    private var countAtScopeOpen: Int?

    init(capacity: Int) {
        precondition(capacity >= 1, "a groove that defers updates may update an object")
        self.capacity = capacity
        entries = .allocate(capacity: capacity)
        scratch = .allocate(capacity: capacity)
    }

    deinit {
        entries.deallocate()
        scratch.deallocate()
    }

    /// Records an update of the object at `timestamp`, now in the cache at `hint` (a guess that
    /// the drain checks).
    func record(timestamp: UInt64, hint: Int) {
        precondition(count < capacity, "a batch updates at most changesPerBeatMax objects")
        entries[count] = Entry(timestamp: timestamp, hint: hint)
        count += 1
    }

    func scopeOpen() {
        precondition(countAtScopeOpen == nil, "scopes do not nest")
        countAtScopeOpen = count
    }

    /// A discarded scope forgets its updates: the cache restored those objects, and an update
    /// recorded before the scope still names its object.
    func scopeClose(persist: Bool) {
        guard let mark = countAtScopeOpen else { preconditionFailure("scopeClose follows scopeOpen") }
        countAtScopeOpen = nil
        if !persist { count = mark }
    }

    /// How many entries ahead of the one `drain` passes to `body` it passes to `ahead`: the
    /// hinted slots are random lines of a cache of tens of MiB, so reading each when its turn
    /// comes waits for memory (~6 % of a forest batch); loading them this far ahead overlaps
    /// those misses (a few entries are ~1 µs of work, enough for a miss to complete).
    static var aheadDistance: Int { 8 }

    /// Calls `body` with each recorded timestamp once, ascending, and the hint of its latest
    /// update; then forgets them all. `ahead` gets the hint of the entry `aheadDistance`
    /// positions later (a hint to load its lines; it may be superseded by a later update).
    func drain(ahead: (_ hint: Int) -> Void, _ body: (_ timestamp: UInt64, _ hint: Int) -> Void) {
        precondition(countAtScopeOpen == nil, "updates are put once their scopes closed")
        guard count > 0 else { return }
        // Stable: equal timestamps keep record order, so the last of each run is the latest.
        let sorted = sort.sort(entries, count, scratch: scratch)
        for index in 0..<min(Self.aheadDistance, count) { ahead(sorted[index].hint) }
        // Bounded by count.
        for index in 0..<count {
            if index + Self.aheadDistance < count { ahead(sorted[index + Self.aheadDistance].hint) }
            let isLastOfItsTimestamp = index + 1 == count || sorted[index + 1].timestamp != sorted[index].timestamp
            if isLastOfItsTimestamp { body(sorted[index].timestamp, sorted[index].hint) }
        }
        count = 0
    }
}
