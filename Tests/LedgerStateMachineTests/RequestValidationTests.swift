// `StateMachine.isValidRequest` against wire-protocol §7.4 and state-machine §3.3–3.4: batch size
// limits, one filter per query batch, the reply-must-fit rule for query limits, the
// non-multi-batch operations, and malformed multi-batch trailers.

import Testing

import LedgerKit
@testable import LedgerStateMachine

private let maxU32 = UInt32.max

// MARK: - Body builders (independent of MultiBatchWriter)

/// Multi-batch body per wire §6.1 from raw batches.
private func multiBatch(_ batches: [[UInt8]], elementSize e: Int) -> [UInt8] {
    let n = batches.count
    let trailer = (2 * n + 2 + e - 1) / e * e
    var body: [UInt8] = []
    body.reserveCapacity(batches.reduce(0) { $0 + $1.count } + trailer)
    for batch in batches { body += batch }
    body += [UInt8](repeating: 0xFF, count: trailer - 2 * n - 2)
    for batch in batches.reversed() {
        let count = batch.count / e
        body += [UInt8(count & 0xFF), UInt8(count >> 8)]
    }
    body += [UInt8(n & 0xFF), UInt8(n >> 8)]
    return body
}

/// Multi-batch body of batches with `counts[i]` zeroed elements each.
private func multiBatch(counts: [Int], elementSize e: Int) -> [UInt8] {
    multiBatch(counts.map { [UInt8](repeating: 0, count: $0 * e) }, elementSize: e)
}

/// One filter of `operation` (AccountFilter or QueryFilter) with `limit`, as raw bytes.
private func filter(_ operation: LedgerKit.Operation, limit: UInt32) -> [UInt8] {
    let size = operation.eventSize
    var bytes = [UInt8](repeating: 0, count: size)
    // `limit` is at 120 in AccountFilter (state-machine §1.8), at 56 in QueryFilter (§1.9).
    let offset = size == 128 ? 120 : 56
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: limit >> (8 * index)) }
    // Nonzero noise elsewhere: field-level validity is not checked at this stage (wire §7.4).
    bytes[0] = 0x01
    return bytes
}

/// A multi-batch query body with one filter per limit.
private func queryBody(_ operation: LedgerKit.Operation, limits: [UInt32]) -> [UInt8] {
    multiBatch(limits.map { filter(operation, limit: $0) }, elementSize: operation.eventSize)
}

private let queryOperations: [LedgerKit.Operation] = [
    .getAccountTransfers, .getAccountBalances, .queryAccounts, .queryTransfers,
]

// MARK: - Harness

/// A small state machine; bodies are copied to a 16-byte aligned buffer of exactly their size
/// (some test bodies are larger than a message).
private final class Validator {
    let machine = StateMachine(store: MemoryStore(.sized(accounts: 16, transfers: 16)))

    func isValid(_ operation: LedgerKit.Operation, _ body: [UInt8]) -> Bool {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 16)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: body)
        return machine.isValidRequest(
            operation: operation, body: UnsafeRawBufferPointer(rebasing: buffer[0..<body.count]))
    }
}

// MARK: - Tests

@Suite struct RequestValidationTests {
    private let validator = Validator()

    // MARK: Create and lookup batch limits (wire §7.4, state-machine §3.3)

    @Test(arguments: [LedgerKit.Operation.createAccounts, .createTransfers])
    func createBatchLimit(operation: LedgerKit.Operation) {
        #expect(operation.eventSize == 128)
        let full = multiBatch(counts: [8189], elementSize: 128)
        #expect(full.count == 1_048_320, "8189 events and the trailer fill the body exactly")
        #expect(validator.isValid(operation, full))
        #expect(!validator.isValid(operation, multiBatch(counts: [8190], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [1], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [8188], elementSize: 128)))
    }

    @Test(arguments: [LedgerKit.Operation.createAccounts, .createTransfers])
    func emptyCreateBatchIsValid(operation: LedgerKit.Operation) {
        #expect(validator.isValid(operation, multiBatch(counts: [0], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [0, 0, 0], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [1, 2, 0, 1, 2], elementSize: 128)))
    }

    @Test(arguments: [LedgerKit.Operation.createAccounts, .createTransfers])
    func createBatchesSplittingTheLimit(operation: LedgerKit.Operation) {
        // Several batches together within one body: the reply (16-byte results) fits easily.
        #expect(validator.isValid(operation, multiBatch(counts: [4094, 4095], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [1000, 0, 3000, 4189], elementSize: 128)))
    }

    @Test(arguments: [LedgerKit.Operation.createAccounts, .createTransfers])
    func createRequestMustFitInOneBody(operation: LedgerKit.Operation) {
        // Each batch is within its limit and the 16-byte results fit in a reply, but the request
        // itself (8190 · 128 + 128 bytes) is larger than a message body (state-machine §3.3).
        let body = multiBatch(counts: [8189, 1], elementSize: 128)
        #expect(body.count == 1_048_448)
        #expect(!validator.isValid(operation, body))
        #expect(!validator.isValid(operation, multiBatch(counts: [4095, 4095], elementSize: 128)))
        #expect(validator.isValid(operation, multiBatch(counts: [4094, 4095], elementSize: 128)))
    }

    @Test(arguments: [LedgerKit.Operation.lookupAccounts, .lookupTransfers])
    func lookupBatchLimit(operation: LedgerKit.Operation) {
        #expect(operation.eventSize == 16)
        #expect(validator.isValid(operation, multiBatch(counts: [8189], elementSize: 16)))
        #expect(!validator.isValid(operation, multiBatch(counts: [8190], elementSize: 16)))
        #expect(validator.isValid(operation, multiBatch(counts: [0], elementSize: 16)))
        // The reply bounds the sum over batches: Σ × 128 + trailer(128, n) ≤ 1,048,320.
        #expect(validator.isValid(operation, multiBatch(counts: [4094, 4095], elementSize: 16)))
        #expect(!validator.isValid(operation, multiBatch(counts: [4095, 4095], elementSize: 16)))
        #expect(!validator.isValid(operation, multiBatch(counts: [8189, 1], elementSize: 16)))
        #expect(validator.isValid(operation, multiBatch(counts: [8189, 0], elementSize: 16)))
    }

    @Test func batchNotAWholeNumberOfEvents() {
        // 100 bytes of payload with a count of 1: neither a whole event nor the right size.
        var body = [UInt8](repeating: 0, count: 100) + multiBatch(counts: [0], elementSize: 128)
        body[body.count - 4] = 1
        #expect(!validator.isValid(.createAccounts, body))
        // A plain array of accounts, no trailer.
        #expect(!validator.isValid(.createAccounts, [UInt8](repeating: 0, count: 256)))
    }

    // MARK: Query limits (state-machine §3.3 examples, R = 128)

    @Test(arguments: queryOperations)
    func queryLimitExamples(operation: LedgerKit.Operation) {
        #expect(operation.resultSize == 128)
        let examples: [([UInt32], Bool)] = [
            ([8189], true),
            ([0, 8189], true),
            ([1, 8189], false),
            ([4094, 4095], true),
            ([4094, 4095, 1], false),
            ([maxU32], true),
            ([1, maxU32], false),
        ]
        for (limits, valid) in examples {
            #expect(
                validator.isValid(operation, queryBody(operation, limits: limits)) == valid,
                "\(operation) limits \(limits)")
        }
    }

    @Test(arguments: queryOperations)
    func queryLimitEdges(operation: LedgerKit.Operation) {
        // A limit of 0 is valid input.
        #expect(validator.isValid(operation, queryBody(operation, limits: [0])))
        #expect(validator.isValid(operation, queryBody(operation, limits: [0, 0, 0])))
        // Limits above the maximum are clamped, not rejected.
        #expect(validator.isValid(operation, queryBody(operation, limits: [8190])))
        // Clamping applies per batch: two clamped batches ask for 2 × 8189.
        #expect(!validator.isValid(operation, queryBody(operation, limits: [maxU32, maxU32])))
        #expect(!validator.isValid(operation, queryBody(operation, limits: [8189, 8189])))
        // Many small batches: 40 × 1 result plus a 128-byte reply trailer.
        #expect(validator.isValid(operation, queryBody(operation, limits: [UInt32](repeating: 1, count: 40))))
        // The limit is read from the filter of each batch, not the first one.
        #expect(!validator.isValid(operation, queryBody(operation, limits: [0, 0, 8189, 1])))
        #expect(validator.isValid(operation, queryBody(operation, limits: [0, 0, 8189, 0])))
    }

    @Test func manyQueryBatchesAndTheReplyTrailer() {
        // 8063 batches of limit 1: 8063 · 128 + trailer(128, 8063) = 1,032,064 + 16,128 fits;
        // 8064 batches: 1,032,192 + 16,256 (the reply trailer grows by a slot) does not.
        // The request itself (64-byte filters) is only about half a body in both cases.
        let fits = queryBody(.queryAccounts, limits: [UInt32](repeating: 1, count: 8063))
        let overflows = queryBody(.queryAccounts, limits: [UInt32](repeating: 1, count: 8064))
        #expect(overflows.count < 600_000)
        #expect(validator.isValid(.queryAccounts, fits))
        #expect(!validator.isValid(.queryAccounts, overflows))
    }

    @Test(arguments: queryOperations)
    func queryBatchNeedsExactlyOneFilter(operation: LedgerKit.Operation) {
        let e = operation.eventSize
        let one = filter(operation, limit: 10)
        #expect(validator.isValid(operation, multiBatch([one], elementSize: e)))
        // Zero filters.
        #expect(!validator.isValid(operation, multiBatch([[]], elementSize: e)))
        // Two filters in one batch.
        #expect(!validator.isValid(operation, multiBatch([one + one], elementSize: e)))
        // One good batch and one empty or double batch.
        #expect(!validator.isValid(operation, multiBatch([one, []], elementSize: e)))
        #expect(!validator.isValid(operation, multiBatch([one, one + one], elementSize: e)))
        #expect(validator.isValid(operation, multiBatch([one, one], elementSize: e)))
        // A bare filter without a trailer.
        #expect(!validator.isValid(operation, one))
    }

    // MARK: Non-multi-batch operations

    @Test func getChangeEventsBodyIsOneFilter() {
        #expect(validator.isValid(.getChangeEvents, [UInt8](repeating: 0, count: 64)))
        var filter = [UInt8](repeating: 0, count: 64)
        filter[16] = 0xFF  // limit 255; field values are not validated here.
        filter[40] = 0x01  // nonzero reserved byte: a per-event matter, not request validity.
        #expect(validator.isValid(.getChangeEvents, filter))
        for size in [0, 1, 16, 63, 65, 127, 128, 192, 384] {
            #expect(
                !validator.isValid(.getChangeEvents, [UInt8](repeating: 0, count: size)), "size \(size)")
        }
        // A multi-batch-encoded filter is not accepted either.
        #expect(!validator.isValid(.getChangeEvents, multiBatch(counts: [1], elementSize: 64)))
    }

    @Test func pulseOnlyWithAnEmptyBody() {
        #expect(validator.isValid(.pulse, []))
        #expect(
            validator.machine.isValidRequest(
                operation: .pulse, body: UnsafeRawBufferPointer(start: nil, count: 0)))
        for size in [1, 2, 16, 64, 128] {
            #expect(!validator.isValid(.pulse, [UInt8](repeating: 0, count: size)), "size \(size)")
        }
        #expect(!validator.isValid(.pulse, multiBatch(counts: [0], elementSize: 128)))
    }

    // MARK: Malformed multi-batch bodies

    @Test(arguments: [LedgerKit.Operation.createAccounts, .createTransfers, .lookupAccounts, .lookupTransfers, .queryAccounts, .getAccountTransfers])
    func malformedTrailers(operation: LedgerKit.Operation) {
        let e = operation.eventSize
        let good = operation.isBatchable
            ? multiBatch(counts: [2, 0, 1], elementSize: e)
            : multiBatch([filter(operation, limit: 5)], elementSize: e)
        #expect(validator.isValid(operation, good))

        // Shorter than the postamble, and empty.
        #expect(!validator.isValid(operation, []))
        #expect(!validator.isValid(operation, [0x01]))
        // Batch count 0.
        var zero = good
        zero[zero.count - 2] = 0
        zero[zero.count - 1] = 0
        #expect(!validator.isValid(operation, zero))
        // Batch count 0xFFFF.
        var allOnes = good
        allOnes[allOnes.count - 2] = 0xFF
        allOnes[allOnes.count - 1] = 0xFF
        #expect(!validator.isValid(operation, allOnes))
        // Every filler byte, in turn, not 0xFF.
        let batchCount = Int(good[good.count - 2]) | Int(good[good.count - 1]) << 8
        let trailer = (2 * batchCount + 2 + e - 1) / e * e
        let fillerStart = good.count - trailer
        let fillerEnd = good.count - 2 - 2 * batchCount
        #expect(fillerEnd > fillerStart)
        for position in fillerStart..<fillerEnd {
            var bad = good
            bad[position] = 0x00
            #expect(!validator.isValid(operation, bad), "filler byte \(position)")
        }
        // Payload one element short or long.
        #expect(!validator.isValid(operation, Array(good.dropFirst(e))))
        #expect(!validator.isValid(operation, [UInt8](repeating: 0, count: e) + good))
        // Payload not a whole number of elements.
        #expect(!validator.isValid(operation, [0] + good))
        // First batch's count off by one (claims more than there is).
        var more = good
        more[more.count - 4] &+= 1
        #expect(!validator.isValid(operation, more))
        // Body too short for the trailer the batch count implies.
        var short = [UInt8](repeating: 0xFF, count: e)
        short[e - 2] = UInt8(e / 2)  // n = e / 2 batches need more than e bytes of trailer.
        short[e - 1] = 0
        #expect(!validator.isValid(operation, short))
        // Only the trailer's tail, no filler.
        #expect(!validator.isValid(operation, [0x00, 0x00, 0x01, 0x00]))
    }

    @Test func validBodyWithManyBatches() {
        // 200 empty create batches: a 512-byte trailer (2 · 200 + 2 = 402 → 4 × 128).
        let body = multiBatch(counts: [Int](repeating: 0, count: 200), elementSize: 128)
        #expect(body.count == 512)
        #expect(validator.isValid(.createAccounts, body))
        // The same with one filler byte broken.
        var bad = body
        bad[0] = 0
        #expect(!validator.isValid(.createAccounts, bad))
    }
}
