/// The multi-batch body encoding of the 0.17 protocol (wire spec §6):
///
///     body    = batch_0 ‖ … ‖ batch_(n−1) ‖ trailer
///     trailer = 0xFF filler ‖ c_(n−1) ‖ … ‖ c_0 ‖ n        (u16 each, little-endian)
///
/// The trailer is `ceil((2n + 2) / E) · E` bytes for element size `E`, so the body stays a whole
/// number of elements. Readers validate everything before anything is executed; writers build a
/// reply in place in a preallocated buffer.
public enum MultiBatch {
    /// Size of the trailer for `batchCount` batches of `elementSize`-byte elements.
    public static func trailerSize(elementSize: Int, batchCount: Int) -> Int {
        precondition(elementSize > 0, "multi-batch elements have a size")
        precondition(batchCount >= 1, "a multi-batch body has at least one batch")
        let bytes = 2 * batchCount + 2
        return (bytes + elementSize - 1) / elementSize * elementSize
    }
}

/// Reads and validates a multi-batch body without copying it.
public struct MultiBatchReader {
    public let body: UnsafeRawBufferPointer
    public let elementSize: Int
    public let batchCount: Int
    public let trailerSize: Int

    /// Returns nil if `body` is not a valid multi-batch encoding for `elementSize`: no batch
    /// count, a count of 0 or 0xFFFF, a body shorter than its trailer, a filler byte that is not
    /// 0xFF, or a payload whose size is not exactly the sum of the batch sizes.
    public init?(body: UnsafeRawBufferPointer, elementSize: Int) {
        precondition(elementSize > 0, "multi-batch elements have a size")
        guard body.count >= 2 else { return nil }
        let count = Int(body.loadUnaligned(fromByteOffset: body.count - 2, as: UInt16.self).littleEndian)
        guard count >= 1, count <= Constants.multiBatchCountMax else { return nil }
        let trailerSize = MultiBatch.trailerSize(elementSize: elementSize, batchCount: count)
        guard body.count >= trailerSize else { return nil }
        let trailerStart = body.count - trailerSize
        let countsStart = body.count - 2 - 2 * count
        for offset in trailerStart..<countsStart where body[offset] != 0xFF {
            return nil
        }
        var elements = 0
        for index in 0..<count {
            elements += Int(
                body.loadUnaligned(fromByteOffset: body.count - 4 - 2 * index, as: UInt16.self)
                    .littleEndian)
        }
        guard elements * elementSize == trailerStart else { return nil }
        self.body = body
        self.elementSize = elementSize
        self.batchCount = count
        self.trailerSize = trailerSize
    }

    /// Number of elements in batch `index`.
    public func elementCount(batch index: Int) -> Int {
        precondition(index >= 0 && index < batchCount, "batch index in range")
        return Int(
            body.loadUnaligned(fromByteOffset: body.count - 4 - 2 * index, as: UInt16.self)
                .littleEndian)
    }

    /// Total number of elements over all batches.
    public var elementCountTotal: Int { (body.count - trailerSize) / elementSize }

    /// Iterates the batches in order, as slices of the body.
    public func forEachBatch(_ body: (_ index: Int, _ batch: UnsafeRawBufferPointer) -> Void) {
        var offset = 0
        for index in 0..<batchCount {
            let size = elementCount(batch: index) * elementSize
            body(index, UnsafeRawBufferPointer(rebasing: self.body[offset..<offset + size]))
            offset += size
        }
    }
}

/// Builds a multi-batch reply in a caller-owned buffer: batches are appended in order, then
/// `finish()` writes the trailer and returns the body size.
///
/// The batch counts are kept at the very end of the buffer while batches are written, and moved
/// down behind the payload by `finish()`. This needs no other memory, and is safe because a
/// valid request guarantees that the payload plus its trailer fits in the buffer.
public struct MultiBatchWriter {
    public let buffer: UnsafeMutableRawBufferPointer
    public let elementSize: Int
    public let batchCount: Int
    public private(set) var payloadSize = 0
    public private(set) var batchesWritten = 0

    public init(buffer: UnsafeMutableRawBufferPointer, elementSize: Int, batchCount: Int) {
        precondition(batchCount >= 1 && batchCount <= Constants.multiBatchCountMax, "batch count")
        precondition(
            buffer.count >= MultiBatch.trailerSize(elementSize: elementSize, batchCount: batchCount),
            "the reply buffer holds at least the trailer")
        self.buffer = buffer
        self.elementSize = elementSize
        self.batchCount = batchCount
    }

    /// Room for the elements of the next batch.
    public var freeSpace: UnsafeMutableRawBufferPointer {
        let end = buffer.count - MultiBatch.trailerSize(elementSize: elementSize, batchCount: batchCount)
        return UnsafeMutableRawBufferPointer(rebasing: buffer[payloadSize..<end])
    }

    /// Records that the next batch holds `elementCount` elements, written at `freeSpace`.
    public mutating func finishBatch(elementCount: Int) {
        precondition(batchesWritten < batchCount, "no more batches than announced")
        precondition(elementCount <= Int(UInt16.max), "batch count fits in u16")
        precondition(elementCount * elementSize <= freeSpace.count, "batch fits")
        payloadSize += elementCount * elementSize
        buffer.storeBytes(
            of: UInt16(elementCount).littleEndian,
            toByteOffset: buffer.count - 4 - 2 * batchesWritten, as: UInt16.self)
        batchesWritten += 1
    }

    /// Writes the trailer behind the payload and returns the body size.
    public mutating func finish() -> Int {
        precondition(batchesWritten == batchCount, "every announced batch was written")
        let trailerSize = MultiBatch.trailerSize(elementSize: elementSize, batchCount: batchCount)
        let countsSize = 2 * batchCount
        let fillerSize = trailerSize - countsSize - 2
        buffer.storeBytes(
            of: UInt16(batchCount).littleEndian, toByteOffset: buffer.count - 2, as: UInt16.self)
        let source = buffer.count - countsSize - 2
        let target = payloadSize + fillerSize
        if source != target {
            let base = buffer.baseAddress!
            (base + target).copyMemory(from: base + source, byteCount: countsSize + 2)
        }
        for offset in payloadSize..<payloadSize + fillerSize {
            buffer[offset] = 0xFF
        }
        return payloadSize + trailerSize
    }
}
