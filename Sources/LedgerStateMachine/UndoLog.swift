import LedgerKit

/// One undoable change to the in-memory store. `index` is the record's position; the other
/// fields hold the previous value where the change overwrote one.
struct UndoEntry {
    enum Kind: UInt8 {
        case accountInserted
        case accountUpdated
        case transferInserted
        case pendingStatusSet
        case expiryInserted
        case expiryRemoved
        case eventAppended
    }

    var kind: Kind
    var index: Int
    var status: PendingStatus = .none
    var expiry = Expiry(expiresAt: 0, transferTimestamp: 0)
    var account = Account()
}

/// The savepoint of a linked chain in the in-memory store: while a scope is open, every change
/// is recorded so that a failed chain can be undone in reverse. Fixed capacity; scopes do not
/// nest (a chain never contains another chain).
struct UndoLog: ~Copyable {
    /// The most changes one event makes: insert transfer, update two accounts, set a pending
    /// status, change the expiry schedule, append an event.
    static let changesPerEventMax = 6

    private let entries: UnsafeMutableBufferPointer<UndoEntry>
    private var count = 0
    private(set) var isOpen = false

    init(capacity: Int) {
        entries = .allocate(capacity: capacity)
    }

    deinit { entries.deallocate() }

    mutating func open() {
        precondition(!isOpen, "scopes do not nest")
        precondition(count == 0, "a closed scope left nothing behind")
        isOpen = true
    }

    mutating func close() {
        precondition(isOpen, "close an open scope")
        isOpen = false
        count = 0
    }

    @inline(__always)
    mutating func record(_ entry: @autoclosure () -> UndoEntry) {
        guard isOpen else { return }
        precondition(count < entries.count, "undo log capacity: a chain is at most one batch")
        entries[count] = entry()
        count += 1
    }

    mutating func popLast() -> UndoEntry? {
        precondition(isOpen, "undo inside an open scope")
        if count == 0 { return nil }
        count -= 1
        return entries[count]
    }
}
