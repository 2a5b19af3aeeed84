import LedgerKit

/// The expiry schedule of the in-memory store: a binary min-heap of `Expiry` ordered by
/// `(expiresAt, transferTimestamp)`, with a position map (indexed by the pending transfer's
/// index in the store) so that a post or void removes its entry in O(log n).
struct ExpiryHeap: ~Copyable {
    private struct Entry {
        var expiry: Expiry
        var transferIndex: Int32
    }

    private let entries: UnsafeMutableBufferPointer<Entry>
    /// Heap position of each transfer's entry, or -1.
    private let positions: UnsafeMutableBufferPointer<Int32>
    private(set) var count = 0

    init(capacity: Int) {
        entries = .allocate(capacity: capacity)
        positions = .allocate(capacity: capacity)
        positions.initialize(repeating: -1)
    }

    deinit {
        entries.deallocate()
        positions.deallocate()
    }

    var first: Expiry? { count > 0 ? entries[0].expiry : nil }

    mutating func insert(_ expiry: Expiry, transferIndex: Int) {
        precondition(count < entries.count, "expiry schedule capacity exceeded")
        precondition(positions[transferIndex] == -1, "a transfer is scheduled once")
        entries[count] = Entry(expiry: expiry, transferIndex: Int32(transferIndex))
        positions[transferIndex] = Int32(count)
        count += 1
        siftUp(count - 1)
    }

    mutating func remove(transferIndex: Int) {
        let position = Int(positions[transferIndex])
        precondition(position >= 0, "the removed transfer is scheduled")
        positions[transferIndex] = -1
        count -= 1
        if position == count { return }
        entries[position] = entries[count]
        positions[Int(entries[position].transferIndex)] = Int32(position)
        siftDown(position)
        siftUp(position)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {  // Bounded by the heap's depth.
            let parent = (child - 1) / 2
            if !(entries[child].expiry < entries[parent].expiry) { return }
            swapEntries(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {  // Bounded by the heap's depth.
            var smallest = parent
            let left = 2 * parent + 1
            let right = left + 1
            if left < count && entries[left].expiry < entries[smallest].expiry { smallest = left }
            if right < count && entries[right].expiry < entries[smallest].expiry { smallest = right }
            if smallest == parent { return }
            swapEntries(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapEntries(_ a: Int, _ b: Int) {
        let entryA = entries[a]
        entries[a] = entries[b]
        entries[b] = entryA
        positions[Int(entries[a].transferIndex)] = Int32(a)
        positions[Int(entries[b].transferIndex)] = Int32(b)
    }
}
