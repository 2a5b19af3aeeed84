/// A tournament (loser) tree over the sorted runs of an immutable memtable: which run's head
/// value comes next in the merge (Memtable's header, "The merge").
///
/// Runs play at the leaves of a complete binary tree; each internal node keeps the run that
/// lost the match played there, and the overall winner sits above the root. When the winner's
/// run advances, its new head replays only the matches on its own path to the root: log2(runs)
/// comparisons, each of a kept key against the newcomer. The binary heap this replaces compared
/// two children per level (twice as many, each through the run's cursor into the table), and
/// those comparisons of random keys mispredict half the time: the heap's sift was ~5 % of the
/// server's CPU under the client benchmark, for the index trees' 32 runs per bar.
///
/// Order: the smaller key first; on equal keys the newer run (higher index) first, so the
/// merge meets a key's newest value first and keeps it. A finished run loses to every live one.
/// Memory: a few small arrays sized for `runsMax` at init; nothing after.
struct RunTournament<Key: Comparable> {
    /// Leaves: the smallest power of two ≥ the most runs.
    private let leafCount: Int
    /// `losers[node]` for internal nodes 1..<leafCount (node 0 unused).
    private let losers: UnsafeMutablePointer<Int>
    /// Each run's head key, valid while `live[run]`.
    private let heads: UnsafeMutablePointer<Key>
    private let live: UnsafeMutablePointer<Bool>
    /// The run whose head comes next (meaningful while any run is live).
    private(set) var winner = 0

    init(runsMax: Int) {
        precondition(runsMax >= 1, "a tournament has a run")
        var leaves = 1
        // Doubles each turn: ≤ log2(runsMax) + 1 turns.
        while leaves < runsMax { leaves *= 2 }
        leafCount = leaves
        losers = .allocate(capacity: leaves)
        losers.initialize(repeating: 0, count: leaves)
        heads = .allocate(capacity: leaves)
        live = .allocate(capacity: leaves)
        live.initialize(repeating: false, count: leaves)
    }

    /// Frees the arrays (the owner calls it once, from its deinit).
    func deallocate() {
        losers.deallocate()
        heads.deallocate()
        live.deallocate()
    }

    /// Whether run `a`'s head goes before run `b`'s.
    @inline(__always)
    private func precedes(_ a: Int, _ b: Int) -> Bool {
        guard live[a] else { return false }
        guard live[b] else { return true }
        return heads[a] < heads[b] || (!(heads[b] < heads[a]) && a > b)
    }

    /// Starts a tournament of runs 0..<runCount, each non-empty, with run r's head `head(r)`.
    mutating func start(runCount: Int, head: (Int) -> Key) {
        precondition(runCount >= 1 && runCount <= leafCount, "the tournament holds every run")
        for run in 0..<leafCount {
            live[run] = run < runCount
            if run < runCount { heads[run] = head(run) }
        }
        // Leaves enter one by one, from the left: each climbs, playing the runs waiting at full
        // nodes, until it waits at an empty node (-1) for the winner of the sibling subtree;
        // the last leaf finds every node on its path full and sets the winner. A padding leaf
        // (past `runCount`) is finished and loses every match it plays.
        for node in 1..<leafCount { losers[node] = -1 }
        // Each leaf climbs to the first empty node or past the root: ≤ log2(leaves) steps each.
        for run in 0..<leafCount { climb(run, fillingEmpty: true) }
    }

    /// The winner's run moved on: its new head is `next`, or nil when the run is finished.
    /// Replays the winner's path.
    mutating func advanceWinner(next: Key?) {
        if let next {
            heads[winner] = next
        } else {
            live[winner] = false
        }
        climb(winner, fillingEmpty: false)
    }

    /// Plays `run` up from its leaf: at each node the loser stays, the winner goes on. While
    /// building, an empty node takes the climber and stops it.
    private mutating func climb(_ run: Int, fillingEmpty: Bool) {
        var candidate = run
        var node = (run + leafCount) / 2
        // Halves `node` each turn: ≤ log2(leaves) turns.
        while node >= 1 {
            let kept = losers[node]
            if fillingEmpty && kept < 0 {
                losers[node] = candidate
                return
            }
            if precedes(kept, candidate) {
                losers[node] = candidate
                candidate = kept
            }
            node /= 2
        }
        winner = candidate
    }

    /// Whether any run still has values.
    var isLive: Bool { live[winner] }
}
