import LedgerIO
import LedgerKit

// Checkpoint trailers (storage spec §4 "Trailers", §6; docs/lsm.md "Metadata by block type"): a
// byte stream stored at a checkpoint as a back-linked chain of grid blocks, named from the
// superblock by (whole-stream checksum, last block reference, size). The free set's two bitsets
// (EWAH-encoded, one trailer each) and the client sessions use this format.
//
// Block `i` of a chain holds chunk `i` of the stream as its body, and the reference of block
// `i − 1` in its metadata (null for block 0). The reader starts from the last block (the one the
// superblock names) and follows the links back, so every block is verified against the checksum
// its successor holds; it reassembles the stream from the back (the size is known) and checks
// the whole-stream checksum. An empty stream has no blocks and is named by an all-zero
// reference (what a freshly formatted superblock holds).
//
// Metadata (`BlockHeader.metadata`, little-endian):
//
// | offset | size | field |
// | --- | --- | --- |
// | 0 | 1 | trailer kind (`TrailerKind`) |
// | 1 | 3 | reserved, zero |
// | 4 | 4 | chunk size: bytes of the stream in this block (the body size) |
// | 8 | 8 | previous block address, 0 for the first block |
// | 16 | 16 | previous block checksum, 0 when the address is 0 |
// | 32 | 64 | reserved, zero |
//
// ## The trailer's own blocks (free set)
//
// The free set is encoded before the blocks that store it are acquired (their count is known
// only from the encoding), so the encoding lists them as free. The protocol, driven by
// `writeFreeSet` and `openFreeSet`:
//   checkpoint  encode acquired, encode released → one reservation session acquires the blocks
//               of both chains (deterministic: lowest free addresses, in stream order) → write →
//               superblock → `freeSet.markCheckpointNotDurable()` → `releaseBlocks` (pending:
//               freed once the checkpoint after this one is durable).
//   open        read both chains → `FreeSet.decode` → `markReleasedAtOpen` for every block of
//               both chains: the same state as a replica that never restarted.
// The client-sessions trailer is written before the free set is encoded, so its blocks are
// acquired in the encoding: the caller `releaseBlocks` them after the checkpoint and again after
// opening (both put them in the pending generation).
//
// Memory: one buffer of `blockCountMax` blocks, allocated at init: the writer seals its chain
// there; the reader reassembles the stream there. Sketch: a production free set (4 MiB bitset)
// needs at most 9 blocks of 512 KiB per bitset when the grid is a random pattern, one block in
// practice; one pass of EWAH and one checksum per checkpoint.

/// What a trailer stores; recorded in every block so a block decodes alone.
public enum TrailerKind: UInt8, CaseIterable, Sendable {
    case freeSetAcquired = 1
    case freeSetReleased = 2
    case clientSessions = 3

    public var blockType: BlockType {
        switch self {
        case .freeSetAcquired, .freeSetReleased: .freeSet
        case .clientSessions: .clientSessions
        }
    }
}

/// How the superblock names a trailer: the fields of `CheckpointState.TrailerReference`.
public struct CheckpointTrailerReference: Equatable, Sendable {
    /// Checksum of the whole stream; 0 for an empty trailer.
    public var checksum: UInt128
    /// The chain's last block, read first; null for an empty trailer.
    public var last: BlockReference
    /// Bytes of the stream.
    public var size: UInt64

    public init(checksum: UInt128, last: BlockReference, size: UInt64) {
        self.checksum = checksum
        self.last = last
        self.size = size
    }

    public static let empty = CheckpointTrailerReference(checksum: 0, last: .null, size: 0)
}

/// Why a trailer cannot be read. Every cause is bad bytes or a chain that does not hold
/// together; none is trapped on.
public enum CheckpointTrailerError: Error, Equatable, Sendable {
    /// The grid could not read the block the chain names.
    case block(address: UInt64, BlockFault)
    /// The reference is not a valid empty or non-empty trailer.
    case reference
    /// The stream is longer than this trailer's blocks can hold.
    case sizeTooLarge(UInt64)
    /// A block of another type than the trailer kind's.
    case blockType(UInt8)
    /// A block of another trailer kind.
    case kind(UInt8)
    /// Chunk size zero, larger than a block's body, past the stream's start, or not the body size.
    case chunkSize(UInt32)
    case metadataReserved
    /// The chain links to an address outside the grid.
    case address(UInt64)
    /// The first block (no previous) came before the whole stream was read.
    case chainEnded
    /// The whole stream was read but the chain goes on.
    case chainTooLong
    /// The reassembled stream does not have the superblock's checksum.
    case checksum
    /// The free set's encoding is invalid.
    case freeSet(FreeSetDecodeError)
    /// A trailer block is acquired in the encoding, or belongs to both chains.
    case trailerBlockAcquired(UInt64)
}

/// The metadata layout of a trailer block (see the file header).
public enum CheckpointTrailerBlock {
    public static let metadataKindOffset = 0
    public static let metadataChunkSizeOffset = 4
    public static let metadataPreviousAddressOffset = 8
    public static let metadataPreviousChecksumOffset = 16
    /// Bytes of metadata in use; the rest is zero.
    public static let metadataUsedSize = 32

    /// The default chunk size for blocks of `blockSize` bytes: the whole body, in 8-byte words
    /// (EWAH chunks are whole words).
    public static func chunkSizeDefault(blockSize: Int) -> Int {
        (blockSize - Constants.messageHeaderSize) / EWAH.wordSize * EWAH.wordSize
    }
}

public final class CheckpointTrailer<S: Storage> {
    public typealias ReadCallback = (Result<Void, CheckpointTrailerError>) -> Void

    public let grid: Grid<S>
    public let kind: TrailerKind
    public let blockCountMax: Int
    /// Bytes of the stream per block (the last block may hold fewer).
    public let chunkSize: Int
    /// Grid writes this trailer keeps in flight at most (the caller budgets the grid's pool).
    public let writesMax: Int

    private let blockSize: Int
    /// Writer: `blockCountMax` blocks. Reader: the stream, contiguous.
    private let buffer: AlignedBuffer

    /// Blocks of the chain, in stream order (written, or read).
    public private(set) var blockCount = 0
    /// Bytes of the stream staged or read.
    public private(set) var size = 0
    /// The chain's addresses in stream order: valid once written or read.
    public private(set) var blockAddresses: [UInt64]
    /// Writer: the size of chunk `i`. Reader: the start of the `i`-th chunk read (back to front).
    private var chunkOffsets: [Int]

    private enum State { case idle, staging, writing, reading }
    private enum ReadStep: Equatable {
        case next
        case done(CheckpointTrailerError?)
    }
    private var state = State.idle

    // Writing.
    public private(set) var reference = CheckpointTrailerReference.empty
    private var writesIssued = 0
    private var writesDone = 0
    private var writeCallback: (() -> Void)?
    private var writeDoneCallback: Grid<S>.WriteCallback = {}

    // Reading.
    private var readNext = BlockReference.null
    private var readRemaining = 0
    private var readStep = ReadStep.next
    private var readIsSynchronous = false
    private var readCompletedSynchronously = false
    private var readCallback: ReadCallback?
    private var readDoneCallback: Grid<S>.ReadCallback = { _ in }

    /// `chunkSize` defaults to a block's whole body (rounded down to 8-byte words for EWAH).
    public init(grid: Grid<S>, kind: TrailerKind, blockCountMax: Int, chunkSize: Int? = nil, writesMax: Int = 1) {
        let bodySizeMax = grid.blockSize - Constants.messageHeaderSize
        let chunkSize = chunkSize ?? CheckpointTrailerBlock.chunkSizeDefault(blockSize: grid.blockSize)
        precondition(blockCountMax >= 1, "a trailer may have a block")
        precondition(chunkSize >= 1, "a chunk holds a byte")
        precondition(chunkSize <= bodySizeMax, "a chunk fits in a block's body")
        precondition(writesMax >= 1, "a trailer writes")
        self.grid = grid
        self.kind = kind
        self.blockCountMax = blockCountMax
        self.chunkSize = chunkSize
        self.writesMax = writesMax
        blockSize = grid.blockSize
        buffer = AlignedBuffer(count: blockCountMax * grid.blockSize)
        blockAddresses = []
        blockAddresses.reserveCapacity(blockCountMax)
        chunkOffsets = []
        chunkOffsets.reserveCapacity(blockCountMax)
        writeDoneCallback = { [unowned self] in self.writeDone() }
        readDoneCallback = { [unowned self] result in self.readDone(result) }
    }

    /// Blocks a free-set bitset trailer needs at most, whatever the bits.
    public static func freeSetBlockCountMax(_ freeSet: FreeSet, chunkSize: Int) -> Int {
        EWAH.chunkCountMax(wordCount: freeSet.wordCount, chunkSize: chunkSize)
    }

    public var isIdle: Bool { state == .idle }

    // MARK: Writing

    /// Starts a new stream (any previous chain is forgotten: release its blocks first).
    public func beginStaging() {
        precondition(state == .idle, "a trailer stages while idle")
        state = .staging
        blockCount = 0
        size = 0
        blockAddresses.removeAll(keepingCapacity: true)
        chunkOffsets.removeAll(keepingCapacity: true)
        reference = .empty
    }

    /// Stages a bitset's whole EWAH encoding, one chunk per block (chunks hold whole groups).
    public func stage(_ freeSet: FreeSet, bitset: FreeSet.Bitset) {
        precondition(state == .staging, "staging after beginStaging")
        precondition(kind != .clientSessions, "a bitset goes into a free-set trailer")
        precondition(chunkSize % EWAH.wordSize == 0, "EWAH chunks are whole words")
        precondition(chunkSize >= 3 * EWAH.wordSize, "an EWAH chunk holds a marker and two literals")
        var encoding = freeSet.beginEncoding(bitset)
        // Each turn fills one block; chunkCountMax bounds the turns (precondition below).
        while !encoding.isDone {
            precondition(blockCount < blockCountMax, "the trailer holds the worst-case encoding")
            let written = freeSet.encode(&encoding, into: chunk(blockCount, count: chunkSize))
            precondition(written > 0, "an EWAH chunk of three words makes progress")
            stageChunk(size: written)
        }
    }

    /// Stages `bytes` as the next part of the stream, cut into `chunkSize` chunks (each call
    /// starts a new block: stage the stream in one call to fill every block).
    public func stage(bytes: UnsafeRawBufferPointer) {
        precondition(state == .staging, "staging after beginStaging")
        var offset = 0
        // Each turn fills one block: bounded by blockCountMax (precondition below).
        while offset < bytes.count {
            precondition(blockCount < blockCountMax, "the stream fits the trailer's blocks")
            let count = min(chunkSize, bytes.count - offset)
            chunk(blockCount, count: count).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
            stageChunk(size: count)
            offset += count
        }
    }

    /// Drops the staged stream (the checkpoint is abandoned, e.g. the grid is full).
    public func discardStaging() {
        precondition(state == .staging, "discarding a staged stream")
        state = .idle
        blockCount = 0
        size = 0
        chunkOffsets.removeAll(keepingCapacity: true)
    }

    /// Blocks the staged stream needs: what the caller reserves.
    public var stagedBlockCount: Int {
        precondition(state == .staging, "counting blocks while staging")
        return blockCount
    }

    /// Acquires the chain's addresses from `reservation` (nil when nothing is staged), seals the
    /// chain and writes it; `callback` runs once every block is durable, with `reference` set
    /// (before `write` returns for an empty stream). Addresses are taken now, in stream order,
    /// so they do not depend on IO order.
    public func write(freeSet: FreeSet, reservation: Reservation?, snapshot: UInt64, callback: @escaping () -> Void) {
        precondition(state == .staging, "writing a staged stream")
        precondition((reservation == nil) == (blockCount == 0), "a non-empty stream writes from a reservation")
        var stream = ChecksumStream()
        var previous = BlockReference.null
        for index in 0..<blockCount {
            guard let address = freeSet.acquire(reservation!) else {
                preconditionFailure("the reservation holds the staged block count")
            }
            let chunkBytes = chunkOffsets[index]
            stream.update(UnsafeRawBufferPointer(rebasing: block(index)[Constants.messageHeaderSize..<(Constants.messageHeaderSize + chunkBytes)]))
            previous = seal(index, chunkSize: chunkBytes, previous: previous, address: address, snapshot: snapshot)
            blockAddresses.append(address)
        }
        reference = blockCount == 0
            ? .empty : CheckpointTrailerReference(checksum: stream.finalize(), last: previous, size: UInt64(size))
        state = .writing
        writesIssued = 0
        writesDone = 0
        writeCallback = callback
        pumpWrites()
        if blockCount == 0 { finishWrite() }
    }

    /// Releases the chain's blocks: right after the checkpoint that references it is written
    /// (`markCheckpointNotDurable` first, so they are freed with the checkpoint after it), or
    /// after `read` at open for a client-sessions trailer.
    public func releaseBlocks(_ freeSet: FreeSet) {
        precondition(state == .idle, "releasing a trailer's blocks while idle")
        precondition(!freeSet.isCheckpointDurable, "trailer blocks are released while their checkpoint is not durable")
        for address in blockAddresses { freeSet.release(address) }
    }

    private func stageChunk(size chunkBytes: Int) {
        chunkOffsets.append(chunkBytes)
        blockCount += 1
        size += chunkBytes
    }

    private func seal(_ index: Int, chunkSize chunkBytes: Int, previous: BlockReference, address: UInt64, snapshot: UInt64) -> BlockReference {
        var metadata = BlockMetadata()
        metadata.store(kind.rawValue, at: CheckpointTrailerBlock.metadataKindOffset)
        metadata.store(UInt32(chunkBytes), at: CheckpointTrailerBlock.metadataChunkSizeOffset)
        metadata.store(previous.address, at: CheckpointTrailerBlock.metadataPreviousAddressOffset)
        metadata.store(previous.checksum, at: CheckpointTrailerBlock.metadataPreviousChecksumOffset)
        return BlockSealing.seal(
            block: block(index), address: address, snapshot: snapshot, type: kind.blockType, metadata: metadata,
            bodySize: chunkBytes)
    }

    private func pumpWrites() {
        // Each turn issues one block: bounded by the block count.
        while writesIssued < blockCount && writesIssued - writesDone < writesMax && grid.writesAvailable > 0 {
            grid.write(block: UnsafeRawBufferPointer(block(writesIssued)), callback: writeDoneCallback)
            writesIssued += 1
        }
        precondition(writesIssued == blockCount || writesIssued > writesDone,
                     "the caller leaves a grid write for the trailer, so it always makes progress")
    }

    private func writeDone() {
        precondition(state == .writing, "a trailer write completes while writing")
        writesDone += 1
        pumpWrites()
        if writesDone == blockCount { finishWrite() }
    }

    private func finishWrite() {
        guard let callback = writeCallback else { preconditionFailure("a write has a callback") }
        writeCallback = nil
        state = .idle
        callback()
    }

    // MARK: Reading

    /// Reads the chain `reference` names back to front, verifies every block and the whole
    /// stream; `callback` gets success (then `chunks`, `stream` and `blockAddresses` are valid)
    /// or the error. Runs before `read` returns when every block is in memory.
    public func read(_ reference: CheckpointTrailerReference, callback: @escaping ReadCallback) {
        precondition(state == .idle, "a trailer reads while idle")
        blockCount = 0
        size = 0
        blockAddresses.removeAll(keepingCapacity: true)
        chunkOffsets.removeAll(keepingCapacity: true)
        self.reference = reference
        if reference.last.isNull {
            let valid = reference.size == 0 && reference.checksum == 0 && reference.last.checksum == 0
            callback(valid ? .success(()) : .failure(.reference))
            return
        }
        guard reference.size >= 1 else { return callback(.failure(.reference)) }
        guard reference.size <= UInt64(blockCountMax * chunkSize) else {
            return callback(.failure(.sizeTooLarge(reference.size)))
        }
        size = Int(reference.size)
        readRemaining = size
        readNext = reference.last
        readCallback = callback
        state = .reading
        readLoop()
    }

    /// The stream read (valid until the next `beginStaging` or `read`).
    public var stream: UnsafeRawBufferPointer {
        precondition(state == .idle, "the stream is read")
        return UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<size])
    }

    /// The stream's chunks in order, as the writer cut them (EWAH chunks decode alone).
    public var chunks: [UnsafeRawBufferPointer] {
        precondition(state == .idle, "the stream is read")
        var result: [UnsafeRawBufferPointer] = []
        result.reserveCapacity(blockCount)
        // chunkOffsets holds the starts in read order (back to front): chunk `k` of the stream
        // is the one read at `blockCount − 1 − k`, and ends where the one read before it starts.
        for chunk in 0..<blockCount {
            let read = blockCount - 1 - chunk
            let end = read == 0 ? size : chunkOffsets[read - 1]
            result.append(UnsafeRawBufferPointer(rebasing: buffer.bytes[chunkOffsets[read]..<end]))
        }
        return result
    }

    /// Issues reads one block at a time; a read served from memory calls back inside
    /// `grid.read`, so the loop (not the callback) moves on: no recursion.
    private func readLoop() {
        // Each turn reads one block: bounded by blockCountMax + 1 (checked in `readDone`).
        while true {
            guard readNext.address <= UInt64(grid.storage.layout.configuration.gridBlockCountMax) else {
                return finishRead(.address(readNext.address))
            }
            readIsSynchronous = true
            readCompletedSynchronously = false
            grid.read(readNext, callback: readDoneCallback)
            readIsSynchronous = false
            guard readCompletedSynchronously else { return }
            if case .done(let error) = readStep { return finishRead(error) }
        }
    }

    private func readDone(_ result: GridReadResult) {
        precondition(state == .reading, "a trailer read completes while reading")
        let step = process(result)
        if readIsSynchronous {
            readCompletedSynchronously = true
            readStep = step
            return
        }
        if case .done(let error) = step { finishRead(error) } else { readLoop() }
    }

    /// Takes in one verified block: the next block is due, or the read is over.
    private func process(_ result: GridReadResult) -> ReadStep {
        let address = readNext.address
        switch result {
        case .fault(let fault):
            return .done(.block(address: address, fault))
        case .block(let block):
            let header = Header(from: block).asBlock
            guard header.blockType == kind.blockType.rawValue else { return .done(.blockType(header.blockType)) }
            let metadata = BlockMetadata(header.metadata)
            let kindByte = metadata.load(UInt8.self, at: CheckpointTrailerBlock.metadataKindOffset)
            guard kindByte == kind.rawValue else { return .done(.kind(kindByte)) }
            guard metadata.load(UInt32.self, at: 0) >> 8 == 0 else { return .done(.metadataReserved) }
            for offset in stride(from: CheckpointTrailerBlock.metadataUsedSize, to: 96, by: 16)
            where metadata.load(UInt128.self, at: offset) != 0 {
                return .done(.metadataReserved)
            }
            let chunkBytes = metadata.load(UInt32.self, at: CheckpointTrailerBlock.metadataChunkSizeOffset)
            guard chunkBytes >= 1, Int(chunkBytes) <= chunkSize, Int(chunkBytes) <= readRemaining,
                  Int(header.frame.size) == Constants.messageHeaderSize + Int(chunkBytes)
            else { return .done(.chunkSize(chunkBytes)) }
            let previous = BlockReference(
                address: metadata.load(UInt64.self, at: CheckpointTrailerBlock.metadataPreviousAddressOffset),
                checksum: metadata.load(UInt128.self, at: CheckpointTrailerBlock.metadataPreviousChecksumOffset))
            guard !previous.isNull || previous.checksum == 0 else { return .done(.metadataReserved) }
            guard blockCount < blockCountMax else { return .done(.chainTooLong) }
            readRemaining -= Int(chunkBytes)
            UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[readRemaining..<(readRemaining + Int(chunkBytes))])
                .copyMemory(from: UnsafeRawBufferPointer(
                    rebasing: block[Constants.messageHeaderSize..<(Constants.messageHeaderSize + Int(chunkBytes))]))
            chunkOffsets.append(readRemaining)
            blockAddresses.append(address)
            blockCount += 1
            if previous.isNull {
                guard readRemaining == 0 else { return .done(.chainEnded) }
                let whole = UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<size])
                return .done(checksum(whole) == reference.checksum ? nil : CheckpointTrailerError.checksum)
            }
            guard readRemaining > 0 else { return .done(.chainTooLong) }
            readNext = previous
            return .next
        }
    }

    private func finishRead(_ error: CheckpointTrailerError?) {
        guard let callback = readCallback else { preconditionFailure("a read has a callback") }
        readCallback = nil
        state = .idle
        if error == nil {
            // Stream order, like the writer's.
            blockAddresses.reverse()
            callback(.success(()))
        } else {
            blockCount = 0
            size = 0
            blockAddresses.removeAll(keepingCapacity: true)
            chunkOffsets.removeAll(keepingCapacity: true)
            callback(.failure(error!))
        }
    }

    // MARK: Buffers

    private func block(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[(index * blockSize)..<((index + 1) * blockSize)])
    }

    private func chunk(_ index: Int, count: Int) -> UnsafeMutableRawBufferPointer {
        let start = index * blockSize + Constants.messageHeaderSize
        return UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[start..<(start + count)])
    }
}

/// The free set's two trailers at a checkpoint and at open (the protocol in the header of
/// CheckpointTrailer.swift).
public enum FreeSetTrailers {
    /// Encodes both bitsets, acquires the blocks of both chains in one reservation session
    /// (acquired's first, then released's) and writes them; `callback` runs once both are durable,
    /// with each trailer's `reference` set. Call with the previous checkpoint durable, outside a
    /// reservation session, after every other checkpoint write acquired its blocks. Returns false
    /// (and changes nothing) when the grid has no room for the chains.
    public static func write<S: Storage>(
        acquired: CheckpointTrailer<S>, released: CheckpointTrailer<S>, freeSet: FreeSet, snapshot: UInt64,
        callback: @escaping () -> Void
    ) -> Bool {
        precondition(acquired.kind == .freeSetAcquired, "the acquired bitset goes into its own trailer kind")
        precondition(released.kind == .freeSetReleased, "the released bitset goes into its own trailer kind")
        acquired.beginStaging()
        acquired.stage(freeSet, bitset: .acquired)
        released.beginStaging()
        released.stage(freeSet, bitset: .released)
        // Both encodings are done: from here the free set changes, and the chains' own blocks are
        // free in the encodings.
        freeSet.openReservations()
        var reservations: [Reservation?] = [nil, nil]
        for (index, trailer) in [acquired, released].enumerated() where trailer.stagedBlockCount > 0 {
            reservations[index] = freeSet.reserve(count: trailer.stagedBlockCount)
            if reservations[index] == nil {
                for reservation in reservations.compactMap({ $0 }) { freeSet.forfeit(reservation) }
                freeSet.closeReservations()
                acquired.discardStaging()
                released.discardStaging()
                return false
            }
        }
        var pending = 2
        let done = {
            pending -= 1
            if pending == 0 { callback() }
        }
        acquired.write(freeSet: freeSet, reservation: reservations[0], snapshot: snapshot, callback: done)
        released.write(freeSet: freeSet, reservation: reservations[1], snapshot: snapshot, callback: done)
        for reservation in reservations.compactMap({ $0 }) { freeSet.forfeit(reservation) }
        freeSet.closeReservations()
        return true
    }

    /// Reads both chains, then `load`s them; `callback` gets the outcome. On error the free set
    /// is left empty.
    public static func open<S: Storage>(
        acquired: CheckpointTrailer<S>, released: CheckpointTrailer<S>,
        acquiredReference: CheckpointTrailerReference, releasedReference: CheckpointTrailerReference,
        freeSet: FreeSet, callback: @escaping (Result<Void, CheckpointTrailerError>) -> Void
    ) {
        acquired.read(acquiredReference) { result in
            if case .failure(let error) = result { return callback(.failure(error)) }
            released.read(releasedReference) { result in
                if case .failure(let error) = result { return callback(.failure(error)) }
                do throws(CheckpointTrailerError) {
                    try load(acquired: acquired, released: released, freeSet: freeSet)
                    callback(.success(()))
                } catch {
                    callback(.failure(error))
                }
            }
        }
    }

    /// Decodes the free set from two trailers just read, and marks their own blocks acquired and
    /// released (`markReleasedAtOpen`). On error the free set is left empty.
    public static func load<S: Storage>(
        acquired: CheckpointTrailer<S>, released: CheckpointTrailer<S>, freeSet: FreeSet
    ) throws(CheckpointTrailerError) {
        precondition(acquired.kind == .freeSetAcquired, "the acquired bitset comes from its own trailer kind")
        precondition(released.kind == .freeSetReleased, "the released bitset comes from its own trailer kind")
        do {
            try freeSet.decode(acquired: acquired.chunks, released: released.chunks)
        } catch {
            throw .freeSet(error)
        }
        for trailer in [acquired, released] {
            for address in trailer.blockAddresses {
                // Checked, not assumed: the encoding may come from a buggy or foreign release.
                guard address <= UInt64(freeSet.blockCount), freeSet.isFree(address) else {
                    freeSet.reset()
                    throw .trailerBlockAcquired(address)
                }
                freeSet.markReleasedAtOpen(address)
            }
        }
    }
}
