import LedgerIO
import LedgerKit

// One leaf of a query plan (ForestQuery.swift): a window of timestamps from one tree, in the
// query's direction, over `[timestampMin, timestampMax]` — the keys `(field, timestamp)` of an
// index tree for one field value, or the object tree's keys (timestamps) themselves.
//
// The window is a chunk of a `Tree.scan`; when the engine has used it up, or asks for a
// timestamp beyond it (`seek`), the next scan starts at the timestamp wanted — a seek in the
// tree, not a walk through the keys in between: that is what makes the zig-zag skip. The scan's
// keys are turned into plain timestamps once, so the engine compares u64s only.

/// What a cursor holds next.
enum ForestQueryHead: Equatable {
    /// The next timestamp, in the query's direction.
    case key(UInt64)
    /// The cursor needs a scan before it can answer (its window is used up, more may follow).
    case refill
    /// No further timestamp in range.
    case end
}

final class ForestQueryCursor<Object: GrooveObject, S: Storage> {
    /// The tree and the scan's output buffer (allocated at init, `capacity` values).
    enum Source {
        case index64(Tree<CompositeKey64, S>, UnsafeMutableBufferPointer<CompositeKey64>)
        case index128(Tree<CompositeKey128, S>, UnsafeMutableBufferPointer<CompositeKey128>)
        case objects(Tree<Object, S>, UnsafeMutableBufferPointer<Object>)
    }

    let source: Source
    let treeId: UInt16
    /// Values one scan returns at most.
    let capacity: Int
    /// The window's timestamps, in the query's direction.
    let timestamps: UnsafeMutableBufferPointer<UInt64>

    // The run's request.
    private(set) var field: UInt128 = 0
    private(set) var timestampMin: UInt64 = 0
    private(set) var timestampMax: UInt64 = 0
    private(set) var direction = ScanDirection.ascending

    // The window.
    private(set) var position = 0
    private(set) var count = 0
    /// No timestamp in range lies beyond the window.
    private(set) var isExhausted = true
    /// Where the next scan starts (ascending: its lowest timestamp; descending: its highest).
    private(set) var resume: UInt64 = 0
    /// The limit of the scan in flight.
    private(set) var scanLimit = 0
    private(set) var isScanning = false

    init(source: Source, capacity: Int) {
        precondition(capacity >= 1, "a cursor's scan returns a value")
        self.source = source
        self.capacity = capacity
        switch source {
        case .index64(let tree, let buffer):
            precondition(buffer.count == capacity, "the scan buffer holds capacity values")
            treeId = tree.treeId
        case .index128(let tree, let buffer):
            precondition(buffer.count == capacity, "the scan buffer holds capacity values")
            treeId = tree.treeId
        case .objects(let tree, let buffer):
            precondition(buffer.count == capacity, "the scan buffer holds capacity values")
            treeId = tree.treeId
        }
        timestamps = .allocate(capacity: capacity)
        timestamps.initialize(repeating: 0)
    }

    deinit {
        switch source {
        case .index64(_, let buffer): buffer.deallocate()
        case .index128(_, let buffer): buffer.deallocate()
        case .objects(_, let buffer): buffer.deallocate()
        }
        timestamps.deallocate()
    }

    /// Starts a run: an empty window whose first scan starts at the range's near end.
    func reset(field: UInt128, timestampMin: UInt64, timestampMax: UInt64, direction: ScanDirection) {
        precondition(!isScanning, "a cursor is reset between scans")
        precondition(timestampMin <= timestampMax, "a cursor's range is not empty (the engine answers empty ranges)")
        if case .index64 = source {
            precondition(field <= UInt128(UInt64.max), "a u64 index is queried with a u64 field")
        }
        self.field = field
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.direction = direction
        position = 0
        count = 0
        isExhausted = false
        resume = direction == .ascending ? timestampMin : timestampMax
    }

    var head: ForestQueryHead {
        if position < count { return .key(timestamps[position]) }
        return isExhausted ? .end : .refill
    }

    /// Whether `a` comes strictly before `b` in the run's direction.
    @inline(__always)
    func precedes(_ a: UInt64, _ b: UInt64) -> Bool {
        direction == .ascending ? a < b : b < a
    }

    /// Moves past every timestamp before `target` (in direction); if the window runs out, the
    /// next scan starts at `target` itself.
    func seek(_ target: UInt64) {
        precondition(!isScanning, "a cursor moves between scans")
        // Each turn consumes a window entry: bounded by `count`.
        while position < count && precedes(timestamps[position], target) { position += 1 }
        if position == count && !isExhausted && precedes(resume, target) {
            guard target >= timestampMin, target <= timestampMax else {
                isExhausted = true
                return
            }
            resume = target
        }
    }

    /// Consumes the head (the engine emitted it or every term moved past it).
    func advance() {
        precondition(position < count, "a cursor advances past a timestamp it holds")
        position += 1
    }

    /// Starts the scan of the next window: at most `limit` values from `resume` to the range's
    /// far end. `callback` may run before this returns; it must call `refilled(_:)`.
    func startScan(limit: Int, callback: @escaping (TreeScanResult) -> Void) {
        precondition(!isScanning, "one scan per cursor at a time")
        precondition(position == count, "a cursor scans once its window is used up")
        precondition(!isExhausted, "an exhausted cursor does not scan")
        precondition(limit >= 1 && limit <= capacity, "a scan's limit fits the cursor's buffer")
        let low = direction == .ascending ? resume : timestampMin
        let high = direction == .ascending ? timestampMax : resume
        precondition(low <= high, "a cursor scans a non-empty range")
        isScanning = true
        scanLimit = limit
        switch source {
        case .index64(let tree, let buffer):
            let field = UInt64(field)
            tree.scan(
                keyMin: CompositeKey64(field: field, timestamp: low), keyMax: CompositeKey64(field: field, timestamp: high),
                direction: direction, limit: limit, into: buffer, callback: callback)
        case .index128(let tree, let buffer):
            tree.scan(
                keyMin: CompositeKey128(field: field, timestamp: low), keyMax: CompositeKey128(field: field, timestamp: high),
                direction: direction, limit: limit, into: buffer, callback: callback)
        case .objects(let tree, let buffer):
            tree.scan(keyMin: low, keyMax: high, direction: direction, limit: limit, into: buffer, callback: callback)
        }
    }

    /// The scan ended: `result` is its outcome. Returns the fault to report, if any (the window
    /// is then left empty and exhausted).
    func refilled(_ result: TreeScanResult) -> ForestQueryFault? {
        precondition(isScanning, "a scan completes once")
        isScanning = false
        position = 0
        count = 0
        switch result {
        case .fault(let fault):
            isExhausted = true
            return .block(treeId: treeId, fault)
        case .corrupt(let error):
            isExhausted = true
            return .corrupt(treeId: treeId, error)
        case .done(let found):
            precondition(found >= 0 && found <= scanLimit, "a scan returns at most its limit")
            copyTimestamps(found)
            count = found
            // Fewer than asked: the range holds nothing more.
            isExhausted = found < scanLimit
            if found > 0 && !isExhausted {
                let last = timestamps[found - 1]
                if direction == .ascending {
                    if last >= timestampMax { isExhausted = true } else { resume = last + 1 }
                } else {
                    if last <= timestampMin { isExhausted = true } else { resume = last - 1 }
                }
            }
            return nil
        }
    }

    /// Takes the timestamps out of the scan's values (index keys carry the field too; the scan
    /// range pins it, checked here at no extra pass).
    private func copyTimestamps(_ found: Int) {
        switch source {
        case .index64(_, let buffer):
            for index in 0..<found {
                precondition(UInt128(buffer[index].field) == field, "an index scan returns the field's keys only")
                timestamps[index] = buffer[index].timestamp
            }
        case .index128(_, let buffer):
            for index in 0..<found {
                precondition(buffer[index].field == field, "an index scan returns the field's keys only")
                timestamps[index] = buffer[index].timestamp
            }
        case .objects(_, let buffer):
            for index in 0..<found { timestamps[index] = buffer[index].timestamp }
        }
        for index in 0..<found {
            precondition(timestamps[index] >= timestampMin && timestamps[index] <= timestampMax,
                         "a scan returns timestamps in its range")
            if index > 0 {
                precondition(precedes(timestamps[index - 1], timestamps[index]), "a scan returns keys in its direction")
            }
        }
    }
}
