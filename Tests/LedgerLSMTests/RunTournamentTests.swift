import LedgerKit
@testable import LedgerLSM
import Testing

/// The tournament against the order it must give: repeatedly the run whose head key is
/// smallest, the newest run (highest index) first among equal keys, finished runs never.
@Suite struct RunTournamentTests {
    @Test(arguments: [1, 2, 3, 5, 32, 33])
    func yieldsHeadsInKeyThenNewestRunOrder(runs: Int) {
        var prng = PRNG(seed: UInt64(runs) &* 977)
        // Sorted runs over a small key space: many equal keys across runs.
        let data: [[UInt64]] = (0..<runs).map { _ in (0..<prng.int(in: 1...40)).map { _ in prng.below(50) }.sorted() }
        var cursors = [Int](repeating: 0, count: runs)
        var tournament = RunTournament<UInt64>(runsMax: 33)
        defer { tournament.deallocate() }
        tournament.start(runCount: runs) { data[$0][0] }
        var taken = 0
        // Each turn takes one value: bounded by the values.
        while tournament.isLive {
            let run = tournament.winner
            var expected = -1
            for candidate in 0..<runs where cursors[candidate] < data[candidate].count {
                let key = data[candidate][cursors[candidate]]
                // `<=`: a later (newer) run wins a tie.
                if expected < 0 || key <= data[expected][cursors[expected]] { expected = candidate }
            }
            #expect(run == expected, "\(runs) runs, value \(taken)")
            cursors[run] += 1
            taken += 1
            tournament.advanceWinner(next: cursors[run] < data[run].count ? data[run][cursors[run]] : nil)
        }
        #expect(taken == data.map(\.count).reduce(0, +))
        #expect(zip(cursors, data).allSatisfy { $0 == $1.count })
    }
}
