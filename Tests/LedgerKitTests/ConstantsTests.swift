// The limits of the system (state-machine §3.3, wire-protocol §7.2): the pinned wire values, and
// the spec's general formulas recomputed here from first principles.

import Testing

@testable import LedgerKit

/// Trailer size for `n` batches of `e`-byte elements, written out from wire §6.1.
private func trailer(_ e: Int, _ n: Int = 1) -> Int {
    let bytes = 2 * n + 2
    return bytes % e == 0 ? bytes : (bytes / e + 1) * e
}

/// The limits of state-machine §3.3 for a body of at most `b` bytes.
private struct Limits {
    let b: Int
    /// Multi-batch create/lookup: `min((B − trailer(E)) / E, (B − trailer(R)) / R)`.
    func multiBatchEvents(event e: Int, result r: Int) -> Int {
        min((b - trailer(e)) / e, (b - trailer(r)) / r)
    }
    /// Multi-batch query results: `(B − trailer(R)) / R`.
    func multiBatchQueryResults(result r: Int) -> Int { (b - trailer(r)) / r }
    /// Not multi-batch: `min(B / E, B / R)`.
    func legacyEvents(event e: Int, result r: Int) -> Int { min(b / e, b / r) }
    /// `get_change_events`: `min(B / 384, lookup_transfers legacy max, lookup_accounts legacy max / 2)`.
    var changeEvents: Int {
        min(b / 384, legacyEvents(event: 16, result: 128), legacyEvents(event: 16, result: 128) / 2)
    }
}

@Suite struct ConstantsTests {
    @Test func verifyRuns() {
        Constants.verify()
    }

    @Test func pinnedWireValues() {
        #expect(Constants.messageSizeMax == 1_048_576)
        #expect(Constants.messageHeaderSize == 256)
        #expect(Constants.messageBodySizeMax == 1_048_320)
        #expect(Constants.batchEventsMax == 8189)
        #expect(Constants.queryResultsMax == 8189)
        #expect(Constants.batchEventsMaxLegacy == 8190)
        #expect(Constants.changeEventsMax == 2730)
        #expect(Constants.pulseTimestampDelta == 8190)
        #expect(Constants.pulseExpiriesMax == 8190)
        #expect(Constants.multiBatchCountMax == 65_534)
        #expect(Constants.timestampMax == 9_223_372_036_854_775_807)  // 2^63 − 1
        #expect(Constants.nanosecondsPerSecond == 1_000_000_000)
        #expect(Constants.idSize == 16)
    }

    @Test func formulasAtTheDefaultBodySize() {
        let limits = Limits(b: (1 << 20) - 256)
        #expect(limits.b == 1_048_320)
        // create_accounts / create_transfers: 128-byte events, 16-byte results.
        #expect(limits.multiBatchEvents(event: 128, result: 16) == 8189)
        #expect(limits.multiBatchEvents(event: 128, result: 16) == Constants.batchEventsMax)
        // lookup_accounts / lookup_transfers: 16-byte ids, 128-byte results (bounded by the reply).
        #expect(limits.multiBatchEvents(event: 16, result: 128) == 8189)
        // Queries: 128-byte results.
        #expect(limits.multiBatchQueryResults(result: 128) == 8189)
        #expect(limits.multiBatchQueryResults(result: 128) == Constants.queryResultsMax)
        // Legacy, non-multi-batch.
        #expect(limits.legacyEvents(event: 128, result: 8) == 8190)
        #expect(limits.legacyEvents(event: 128, result: 8) == Constants.batchEventsMaxLegacy)
        #expect(limits.legacyEvents(event: 16, result: 128) == 8190)
        // get_change_events: min(2730, 8190, 4095).
        #expect(limits.b / 384 == 2730)
        #expect(limits.changeEvents == 2730)
        #expect(limits.changeEvents == Constants.changeEventsMax)
        // "8190 × 128 = body size; one slot lost to the trailer".
        #expect(8190 * 128 == limits.b)
        #expect(8189 * 128 + trailer(128) == limits.b)
        #expect(8189 * 16 + trailer(16) <= limits.b)
        #expect(2730 * 384 <= limits.b && 2731 * 384 > limits.b)
    }

    @Test func formulasAtTheDevelopmentBodySize() {
        // Wire §7.2, `--development` column (B = 32,512): creates 253, lookups 2,031.
        let b = 32_512
        #expect(min((b - trailer(128)) / 128, (1_048_320 - trailer(16)) / 16) == 253)
        #expect(min((b - trailer(16)) / 16, (1_048_320 - trailer(128)) / 128) == 2031)
        // get_change_events is not multi-batch: its result max is floor(1,048,320 / 384) in
        // every column.
        #expect(1_048_320 / 384 == 2730)
    }

    @Test func operationLimitsFollowTheFormulas() {
        let b = Constants.messageBodySizeMax
        let limits = Limits(b: b)
        for operation in Operation.allCases {
            switch operation {
            case .pulse:
                #expect(operation.batchEventsMax == 0)
            case .getChangeEvents:
                #expect(operation.batchEventsMax == 1)
                #expect(operation.batchResultsMax == limits.changeEvents)
            case .createAccounts, .createTransfers, .lookupAccounts, .lookupTransfers:
                let max = limits.multiBatchEvents(event: operation.eventSize, result: operation.resultSize)
                #expect(operation.batchEventsMax == max, "\(operation)")
                #expect(operation.batchResultsMax == max, "\(operation)")
            case .getAccountTransfers, .getAccountBalances, .queryAccounts, .queryTransfers:
                #expect(operation.batchEventsMax == 1, "\(operation)")
                #expect(
                    operation.batchResultsMax
                        == limits.multiBatchQueryResults(result: operation.resultSize),
                    "\(operation)")
            }
        }
    }

    @Test func operationCodesAndElementSizes() {
        // Wire §7.1: code, event size, result size, multi-batch, batchable.
        let table: [(Operation, UInt8, Int, Int, Bool, Bool)] = [
            (.pulse, 128, 0, 0, false, false),
            (.getChangeEvents, 137, 64, 384, false, false),
            (.lookupAccounts, 140, 16, 128, true, true),
            (.lookupTransfers, 141, 16, 128, true, true),
            (.getAccountTransfers, 142, 128, 128, true, false),
            (.getAccountBalances, 143, 128, 128, true, false),
            (.queryAccounts, 144, 64, 128, true, false),
            (.queryTransfers, 145, 64, 128, true, false),
            (.createAccounts, 146, 128, 16, true, true),
            (.createTransfers, 147, 128, 16, true, true),
        ]
        #expect(Operation.allCases.count == table.count)
        for (operation, code, event, result, multiBatch, batchable) in table {
            #expect(operation.rawValue == code)
            #expect(Operation(rawValue: code) == operation)
            #expect(operation.eventSize == event, "\(operation) event size")
            #expect(operation.resultSize == result, "\(operation) result size")
            #expect(operation.isMultiBatch == multiBatch, "\(operation)")
            #expect(operation.isBatchable == batchable, "\(operation)")
            #expect(operation.isCreate == (code == 146 || code == 147))
        }
        // Legacy and protocol codes are not implemented.
        for code in [0, 2, 4, 127, 129, 130, 131, 136, 138, 139, 148, 255] as [UInt8] {
            #expect(Operation(rawValue: code) == nil, "\(code)")
        }
    }

    @Test func independentTrailerMatchesLedgerKit() {
        for e in [2, 4, 8, 16, 64, 128, 384] {
            for n in [1, 2, 3, 7, 8, 63, 64, 65, 191, 192, 65_534] {
                #expect(MultiBatch.trailerSize(elementSize: e, batchCount: n) == trailer(e, n))
            }
        }
    }
}
