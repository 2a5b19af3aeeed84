import LedgerKit
import LedgerVSR
import Testing

/// Messages for the framer and bus tests: sealed headers with seeded bodies, and corruptions
/// of them, as plain byte arrays.
enum BusTestMessages {
    /// A sealed message of `cluster` with `bodySize` seeded body bytes.
    static func make(
        cluster: UInt128, bodySize: Int, seed: UInt64, command: Command = .request
    ) -> [UInt8] {
        precondition(bodySize >= 0 && bodySize <= Constants.messageBodySizeMax, "body fits")
        var prng = PRNG(seed: seed)
        var body = [UInt8](repeating: 0, count: bodySize)
        for index in body.indices { body[index] = UInt8(truncatingIfNeeded: prng.next()) }
        var header = Header()
        header.frame.cluster = cluster
        header.frame.command = command.rawValue
        header.frame.size = UInt32(Constants.messageHeaderSize + bodySize)
        header.frame.view = UInt32(truncatingIfNeeded: seed)
        body.withUnsafeBytes { header.seal(body: $0) }
        return bytes(of: header) + body
    }

    static func bytes(of header: Header) -> [UInt8] {
        withUnsafeBytes(of: header) { Array($0) }
    }

    /// `message` with its header changed by `change` and the header checksum recomputed (the body
    /// checksum is kept), so the header is authentic but says something else.
    static func resealed(_ message: [UInt8], _ change: (inout Header) -> Void) -> [UInt8] {
        var header = message.withUnsafeBytes { Header(from: $0) }
        change(&header)
        header.frame.checksum = header.computeChecksum()
        return bytes(of: header) + message[Constants.messageHeaderSize...]
    }

    /// The frame of the bytes in `message`.
    static func frame(_ message: [UInt8], cluster: UInt128) -> MessageFrame {
        message.withUnsafeBytes { MessageFramer.frame($0, cluster: cluster) }
    }
}

@Suite struct MessageFramerTests {
    let cluster: UInt128 = 0xC1_0057_E4

    @Test func fieldOffsetsMatchTheHeaderFrame() {
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.checksum) == MessageFramer.checksumOffset)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.checksumBody) == MessageFramer.checksumBodyOffset)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.cluster) == MessageFramer.clusterOffset)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.size) == MessageFramer.sizeOffset)
        #expect(MemoryLayout<HeaderFrame>.offset(of: \.command) == MessageFramer.commandOffset)
    }

    @Test func aValidMessageFrames() {
        for bodySize in [0, 1, 128, 4096 - 256, 10_007] {
            let message = BusTestMessages.make(cluster: cluster, bodySize: bodySize, seed: UInt64(bodySize))
            #expect(BusTestMessages.frame(message, cluster: cluster) == .message(size: 256 + bodySize))
        }
    }

    @Test func aPartialHeaderNeedsTheHeader() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: 100, seed: 1)
        for count in [0, 1, 16, 255] {
            #expect(BusTestMessages.frame(Array(message[0..<count]), cluster: cluster) == .needBytes(total: 256))
        }
        // Garbage shorter than a header is not judged yet: nothing can be checked.
        #expect(BusTestMessages.frame([UInt8](repeating: 0xFF, count: 200), cluster: cluster) == .needBytes(total: 256))
    }

    @Test func aPartialBodyNeedsTheWholeMessage() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: 1000, seed: 2)
        for count in [256, 257, 700, 1255] {
            #expect(BusTestMessages.frame(Array(message[0..<count]), cluster: cluster) == .needBytes(total: 1256))
        }
        // A partial body of another cluster is not judged before it is whole (step 5 after 4).
        let foreign = BusTestMessages.make(cluster: cluster + 1, bodySize: 1000, seed: 2)
        #expect(BusTestMessages.frame(Array(foreign[0..<600]), cluster: cluster) == .needBytes(total: 1256))
    }

    @Test func aCorruptHeaderCloses() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: 64, seed: 3)
        for index in [0, 15, 16, 96, 114, 200, 255] {
            var corrupt = message
            corrupt[index] ^= 0x01
            #expect(BusTestMessages.frame(corrupt, cluster: cluster) == .close(.headerChecksum), "byte \(index)")
        }
    }

    @Test func theHeaderChecksumIsCheckedBeforeSize() {
        // A size raised without resealing would make a trusting receiver wait for 1 MiB.
        var message = BusTestMessages.make(cluster: cluster, bodySize: 0, seed: 4)
        message[MessageFramer.sizeOffset + 2] = 0x10
        #expect(BusTestMessages.frame(Array(message[0..<256]), cluster: cluster) == .close(.headerChecksum))
    }

    @Test func everyCommandByteIsJudged() {
        let valid: Set<UInt8> = Set((1...11).map(UInt8.init) + (13...20).map(UInt8.init) + [24])
        let message = BusTestMessages.make(cluster: cluster, bodySize: 32, seed: 5)
        for command in UInt8.min...UInt8.max {
            let changed = BusTestMessages.resealed(message) { $0.frame.command = command }
            let expected: MessageFrame = valid.contains(command) ? .message(size: 288) : .close(.command)
            #expect(BusTestMessages.frame(changed, cluster: cluster) == expected, "command \(command)")
            #expect(MessageFramer.isKnownCommand(command) == valid.contains(command))
        }
    }

    @Test func sizesOutOfRangeClose() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: 0, seed: 6)
        let sizes: [UInt32] = [0, 1, 255, UInt32(Constants.messageSizeMax) + 1, UInt32.max]
        for size in sizes {
            let changed = BusTestMessages.resealed(message) { $0.frame.size = size }
            #expect(BusTestMessages.frame(changed, cluster: cluster) == .close(.size), "size \(size)")
        }
        // The largest size is in range: framing waits for it.
        let largest = BusTestMessages.resealed(message) { $0.frame.size = UInt32(Constants.messageSizeMax) }
        #expect(BusTestMessages.frame(largest, cluster: cluster) == .needBytes(total: Constants.messageSizeMax))
    }

    @Test func aCorruptBodyCloses() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: 512, seed: 7)
        for index in [256, 257, 500, 767] {
            var corrupt = message
            corrupt[index] ^= 0x80
            #expect(BusTestMessages.frame(corrupt, cluster: cluster) == .close(.bodyChecksum), "byte \(index)")
        }
        // A header-only message whose body checksum is not the empty checksum.
        let empty = BusTestMessages.make(cluster: cluster, bodySize: 0, seed: 7)
        let wrongEmpty = BusTestMessages.resealed(empty) { $0.frame.checksumBody = 1 }
        #expect(BusTestMessages.frame(wrongEmpty, cluster: cluster) == .close(.bodyChecksum))
    }

    @Test func anotherClusterCloses() {
        let message = BusTestMessages.make(cluster: cluster + 1, bodySize: 10, seed: 8)
        #expect(BusTestMessages.frame(message, cluster: cluster) == .close(.cluster))
        #expect(BusTestMessages.frame(message, cluster: cluster + 1) == .message(size: 266))
        // Cluster 0 is a legal cluster id.
        let zero = BusTestMessages.make(cluster: 0, bodySize: 10, seed: 8)
        #expect(BusTestMessages.frame(zero, cluster: 0) == .message(size: 266))
        #expect(BusTestMessages.frame(zero, cluster: cluster) == .close(.cluster))
        // The body is judged before the cluster (step 4 before 5).
        var both = message
        both[260] ^= 1
        #expect(BusTestMessages.frame(both, cluster: cluster) == .close(.bodyChecksum))
    }

    @Test func twoMessagesInOneBuffer() {
        let first = BusTestMessages.make(cluster: cluster, bodySize: 300, seed: 9)
        let second = BusTestMessages.make(cluster: cluster, bodySize: 0, seed: 10)
        let third = BusTestMessages.make(cluster: cluster, bodySize: 50, seed: 11)
        let stream = first + second + Array(third[0..<100])
        #expect(BusTestMessages.frame(stream, cluster: cluster) == .message(size: 556))
        let rest = Array(stream[556...])
        #expect(BusTestMessages.frame(rest, cluster: cluster) == .message(size: 256))
        #expect(BusTestMessages.frame(Array(rest[256...]), cluster: cluster) == .needBytes(total: 256))
    }

    @Test func aOneMebibyteMessage() {
        let message = BusTestMessages.make(cluster: cluster, bodySize: Constants.messageBodySizeMax, seed: 12)
        #expect(message.count == Constants.messageSizeMax)
        #expect(BusTestMessages.frame(message, cluster: cluster) == .message(size: Constants.messageSizeMax))
        #expect(BusTestMessages.frame(Array(message.dropLast()), cluster: cluster)
            == .needBytes(total: Constants.messageSizeMax))
        let followed = message + BusTestMessages.make(cluster: cluster, bodySize: 0, seed: 13)
        #expect(BusTestMessages.frame(followed, cluster: cluster) == .message(size: Constants.messageSizeMax))
        var corrupt = message
        corrupt[Constants.messageSizeMax - 1] ^= 1
        #expect(BusTestMessages.frame(corrupt, cluster: cluster) == .close(.bodyChecksum))
    }

    /// A receiver fed a stream in seeded random pieces frames every message whole and in order.
    @Test(arguments: [UInt64(1), 2, 3, 0xDEAD_BEEF])
    func randomPiecesFrameEveryMessage(seed: UInt64) {
        var prng = PRNG(seed: seed)
        var messages: [[UInt8]] = []
        for index in 0..<40 {
            let bodySize = Int(prng.next() % 3000)
            messages.append(BusTestMessages.make(cluster: cluster, bodySize: bodySize, seed: seed &+ UInt64(index)))
        }
        let stream = messages.flatMap { $0 }
        var buffered: [UInt8] = []
        var offset = 0
        var framed: [[UInt8]] = []
        while offset < stream.count {
            let piece = min(stream.count - offset, 1 + Int(prng.next() % 700))
            buffered += stream[offset..<(offset + piece)]
            offset += piece
            framing: while true {
                switch BusTestMessages.frame(buffered, cluster: cluster) {
                case .message(let size):
                    framed.append(Array(buffered[0..<size]))
                    buffered.removeFirst(size)
                case .needBytes(let total):
                    #expect(total > buffered.count, "seed \(seed)")
                    break framing
                case .close(let reason):
                    Issue.record("closed (\(reason)) on a valid stream, seed \(seed)")
                    return
                }
            }
        }
        #expect(buffered.isEmpty, "seed \(seed)")
        #expect(framed == messages, "seed \(seed)")
    }

    @Test func closeReasonsDescribeThemselves() {
        let descriptions = Set(MessageCloseReason.allCases.map(\.description))
        #expect(descriptions.count == MessageCloseReason.allCases.count)
    }
}
