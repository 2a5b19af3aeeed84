// EWAH: word-aligned hybrid run-length encoding of a bitset held as 64-bit words (storage spec
// §4 "Trailers"). The free set stores its acquired and released bitsets this way at every
// checkpoint: a 4 MiB bitset that is mostly zeros or mostly ones becomes a few words.
//
// Format (all words little-endian u64), a sequence of groups:
//
//   marker │ literal word × literalCount
//
//   marker bit 0       the value of every bit of the uniform run (0 or 1)
//   marker bits 1…31   uniformCount: words of the uniform run (all zeros or all ones)
//   marker bits 32…63  literalCount: words copied as they are, right after the marker
//
// The run comes first, then the literals. Words after the last group decode as zeros, so the
// encoder drops a trailing run of zero words: an empty bitset encodes to zero bytes.
//
// Chunks: the encoding may be split over several buffers (one per trailer block). Each chunk
// holds whole groups (a group's literals never straddle two chunks), so a chunk decodes alone
// given where the previous one stopped.
//
// The encoding is canonical: one bitset has exactly one encoding for a given chunk size, which
// keeps replicas' trailers byte-identical. The decoder rejects what the encoder never writes (a
// literal that is a uniform word, an empty marker) as well as anything that would read or write
// out of bounds, with a typed error: the input comes from disk or a peer.
//
// Sketch: a 33.5 M-block grid has 524 288 words per bitset; encoding and decoding are one pass
// at memory speed (~1 ms), once per checkpoint or start-up.

/// Why an EWAH chunk cannot be decoded.
public enum EWAHError: Error, Equatable, Sendable {
    /// The chunk is not a whole number of 8-byte words.
    case chunkNotWordAligned(byteCount: Int)
    /// A marker announces more literal words than the chunk holds.
    case literalsPastChunkEnd
    /// The decoded words would go past the end of the target bitset.
    case wordsPastEnd
    /// A marker with nothing in it, or a run of length zero with its bit set.
    case malformedMarker
    /// A literal word that is all zeros or all ones (the encoder writes those as runs).
    case uniformLiteral
}

/// Encoding and decoding of 64-bit-word bitsets (see the file header for the format).
public enum EWAH {
    public static let wordSize = 8
    /// Longest uniform run one marker holds (31 bits).
    public static let uniformCountMax = (1 << 31) - 1
    /// Longest literal sequence one marker holds (32 bits).
    public static let literalCountMax = Int(UInt32.max)
    /// Bitsets longer than this are not supported (one marker could not hold their run).
    public static let wordCountMax = uniformCountMax

    /// Bytes needed to encode `wordCount` words into one chunk, whatever their bits. Every group
    /// after the first starts with a run of at least one word, so the markers are at most one
    /// more than the words.
    public static func encodedSizeMax(wordCount: Int) -> Int {
        precondition(wordCount >= 0, "a word count is not negative")
        precondition(wordCount <= wordCountMax, "the bitset fits the marker's run field")
        return (wordCount + 1) * wordSize
    }

    /// Chunks of `chunkSize` bytes that are always enough to encode `wordCount` words.
    ///
    /// Every chunk but the last is filled to at least one word short of its size, and each
    /// chunk boundary adds at most one marker: with `w` words per chunk, `k` chunks hold the
    /// encoding when `(k - 1) × (w - 2) ≥ wordCount`.
    public static func chunkCountMax(wordCount: Int, chunkSize: Int) -> Int {
        precondition(chunkSize % wordSize == 0, "chunks are whole words")
        precondition(chunkSize >= 3 * wordSize, "a chunk holds a marker and two literals")
        precondition(wordCount >= 0, "a word count is not negative")
        let wordsPerChunk = chunkSize / wordSize
        return 1 + (wordCount + wordsPerChunk - 3) / (wordsPerChunk - 2)
    }

    /// Encodes `words` into one buffer of at least `encodedSizeMax(wordCount:)` bytes; returns the
    /// bytes written.
    public static func encode(_ words: UnsafeBufferPointer<UInt64>, into target: UnsafeMutableRawBufferPointer) -> Int {
        precondition(target.count >= encodedSizeMax(wordCount: words.count), "the target holds any encoding")
        var encoder = Encoder(words: words)
        let size = encoder.encode(words, into: UnsafeMutableRawBufferPointer(
            rebasing: target[0..<(target.count / wordSize * wordSize)]))
        precondition(encoder.isDone, "encodedSizeMax bounds every encoding")
        return size
    }

    /// Decodes one buffer into `words` (every word is written: those past the encoding become
    /// zero). On error, `words` holds garbage and must not be used.
    public static func decode(_ source: UnsafeRawBufferPointer, into words: UnsafeMutableBufferPointer<UInt64>) throws(EWAHError) {
        var decoder = Decoder(wordCount: words.count)
        try decoder.decode(chunk: source, into: words)
        decoder.finish(words)
    }

    @inline(__always)
    static func isUniform(_ word: UInt64) -> Bool { word == 0 || word == ~0 }

    /// Encodes a bitset chunk by chunk. The encoder holds no pointer: each call is given the
    /// same words, which must not change until the encoder is done.
    public struct Encoder: Sendable {
        /// Words of the bitset being encoded.
        public let wordCount: Int
        /// Words up to the last non-zero one: the trailing zero run is implied.
        private let end: Int
        /// The first word not yet encoded.
        private var position = 0

        public init(words: UnsafeBufferPointer<UInt64>) {
            precondition(words.count <= EWAH.wordCountMax, "the bitset fits the marker's run field")
            wordCount = words.count
            var end = words.count
            // Bounded by the word count.
            while end > 0 && words[end - 1] == 0 { end -= 1 }
            self.end = end
        }

        /// Whether every word is encoded.
        public var isDone: Bool { position == end }

        /// Words encoded so far (not counting the implied trailing zeros).
        public var wordsEncoded: Int { position }

        /// Encodes as many whole groups of `words` as fit into `chunk`; returns the bytes written
        /// (zero once done). A chunk of at least two words always makes progress.
        public mutating func encode(_ words: UnsafeBufferPointer<UInt64>, into chunk: UnsafeMutableRawBufferPointer) -> Int {
            precondition(words.count == wordCount, "an encoder is given the same words every time")
            precondition(chunk.count % EWAH.wordSize == 0, "chunks are whole words")
            if isDone { return 0 }
            precondition(chunk.count >= 2 * EWAH.wordSize, "a chunk holds a marker and a literal")
            let chunkWords = chunk.count / EWAH.wordSize
            var written = 0
            // Each turn encodes at least one word or stops: bounded by the words.
            while position < end && written < chunkWords {
                let uniformCount = uniformRun(words, at: position)
                let uniformBit: UInt64 = uniformCount > 0 && words[position] != 0 ? 1 : 0
                let literalLimit = min(chunkWords - written - 1, EWAH.literalCountMax)
                let literalCount = literalRun(words, at: position + uniformCount, limit: literalLimit)
                // No room left for a literal after the marker: the next chunk continues.
                if uniformCount == 0 && literalCount == 0 { break }
                let marker = uniformBit | UInt64(uniformCount) << 1 | UInt64(literalCount) << 32
                chunk.storeBytes(of: marker.littleEndian, toByteOffset: written * EWAH.wordSize, as: UInt64.self)
                written += 1
                position += uniformCount
                for _ in 0..<literalCount {
                    chunk.storeBytes(of: words[position].littleEndian, toByteOffset: written * EWAH.wordSize, as: UInt64.self)
                    written += 1
                    position += 1
                }
            }
            return written * EWAH.wordSize
        }

        private func uniformRun(_ words: UnsafeBufferPointer<UInt64>, at start: Int) -> Int {
            let first = words[start]
            guard EWAH.isUniform(first) else { return 0 }
            var index = start
            let limit = min(end, start + EWAH.uniformCountMax)
            while index < limit && words[index] == first { index += 1 }
            return index - start
        }

        private func literalRun(_ words: UnsafeBufferPointer<UInt64>, at start: Int, limit: Int) -> Int {
            var index = start
            let stop = min(end, start + limit)
            while index < stop && !EWAH.isUniform(words[index]) { index += 1 }
            return index - start
        }
    }

    /// Decodes a bitset chunk by chunk. Like the encoder it holds no pointer: each call is given
    /// the same target words.
    public struct Decoder: Sendable {
        /// Words of the target bitset.
        public let wordCount: Int
        /// The first word not yet decoded.
        private var position = 0

        public init(wordCount: Int) {
            precondition(wordCount >= 0, "a word count is not negative")
            precondition(wordCount <= EWAH.wordCountMax, "the bitset fits the marker's run field")
            self.wordCount = wordCount
        }

        /// Words decoded so far.
        public var wordsDecoded: Int { position }

        /// Decodes one chunk into `words`. Errors leave the words half-written.
        public mutating func decode(chunk: UnsafeRawBufferPointer, into words: UnsafeMutableBufferPointer<UInt64>) throws(EWAHError) {
            precondition(words.count == wordCount, "a decoder is given the same words every time")
            guard chunk.count % EWAH.wordSize == 0 else {
                throw .chunkNotWordAligned(byteCount: chunk.count)
            }
            let chunkWords = chunk.count / EWAH.wordSize
            var index = 0
            // Each turn consumes at least the marker: bounded by the chunk's words.
            while index < chunkWords {
                let marker = UInt64(littleEndian: chunk.loadUnaligned(fromByteOffset: index * EWAH.wordSize, as: UInt64.self))
                index += 1
                let uniformBit = marker & 1
                let uniformCount = Int((marker >> 1) & UInt64(EWAH.uniformCountMax))
                let literalCount = Int(marker >> 32)
                guard uniformCount > 0 || literalCount > 0 else { throw .malformedMarker }
                guard uniformCount > 0 || uniformBit == 0 else { throw .malformedMarker }
                guard literalCount <= chunkWords - index else { throw .literalsPastChunkEnd }
                guard uniformCount + literalCount <= wordCount - position else { throw .wordsPastEnd }
                let uniformWord: UInt64 = uniformBit == 1 ? ~0 : 0
                for _ in 0..<uniformCount {
                    words[position] = uniformWord
                    position += 1
                }
                for _ in 0..<literalCount {
                    let word = UInt64(littleEndian: chunk.loadUnaligned(fromByteOffset: index * EWAH.wordSize, as: UInt64.self))
                    guard !EWAH.isUniform(word) else { throw .uniformLiteral }
                    words[position] = word
                    position += 1
                    index += 1
                }
            }
        }

        /// Ends decoding: the words after the last chunk are the implied trailing zeros.
        public mutating func finish(_ words: UnsafeMutableBufferPointer<UInt64>) {
            precondition(words.count == wordCount, "a decoder is given the same words every time")
            while position < wordCount {
                words[position] = 0
                position += 1
            }
        }
    }
}
