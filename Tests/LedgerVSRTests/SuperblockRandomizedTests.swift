// Random checkpoints and view changes with crashes at random ticks (torn writes included), bit
// flips in one copy at a time, and crashes during the repair of an open: open always succeeds,
// never goes back past the last completed update, and never invents a state nobody requested.
// Rerun one seed with `--filter "randomUpdatesAndCrashes"` and the printed seed.

import LedgerIO
import LedgerKit
import LedgerTesting
import LedgerVSR
import Testing

private typealias F = SuperblockFixture

private enum Update {
    case checkpoint(CheckpointUpdate)
    case viewChange(ViewChangeUpdate)

    /// What the staged header of this update on top of `working` must be (an independent model
    /// of the staging rule: next sequence, parent = working checksum, the update's fields).
    func staged(on working: SuperblockHeader) -> SuperblockHeader {
        var next = working
        next.copy = 0
        next.sequence += 1
        next.parent = working.checksum
        switch self {
        case .checkpoint(let update):
            next.vsrState.checkpoint = update.checkpoint
            next.vsrState.commitMax = update.commitMax
            next.vsrState.syncOpMin = update.syncOpMin
            next.vsrState.syncOpMax = update.syncOpMax
            next.viewHeaders = update.viewHeaders
        case .viewChange(let update):
            next.vsrState.view = update.view
            next.vsrState.logView = update.logView
            next.vsrState.commitMax = update.commitMax
            next.viewHeaders = update.viewHeaders
        }
        next.seal()
        return next
    }

    static func random(after working: SuperblockHeader, prng: inout PRNG) -> Update {
        let state = working.vsrState
        if prng.chance(percent: 50) {
            let view = state.view + UInt32(prng.below(3))
            let logView = state.logView + UInt32(prng.below(UInt64(view - state.logView) + 1))
            let commitMax = state.commitMax + prng.below(50)
            return .viewChange(F.viewChangeUpdate(view: view, logView: logView, commitMax: commitMax))
        }
        let op = state.checkpoint.header.op + 1 + prng.below(40)
        let commitMax = max(state.commitMax, op) + prng.below(10)
        return .checkpoint(F.checkpointUpdate(after: working, op: op, commitMax: commitMax, salt: prng.next()))
    }
}

@Suite struct SuperblockRandomizedTests {
    @Test(arguments: 0..<128) func randomUpdatesAndCrashes(seed: UInt64) throws {
        var prng = PRNG(seed: seed)
        var options = SimulatedStorage.Options()
        options.faultyZones = [.superblock]
        options.crashTornWriteProbability = [0, 0.5, 1][Int(prng.below(3))]
        let storage = F.storage(seed: seed, options: options)
        var superblock = F.format(storage)
        // The last update whose callback ran (or the last header open returned).
        var completed = superblock.working
        var crashes = 0

        for round in 0..<24 {
            let context = "seed \(seed) round \(round)"
            let before = completed
            let update = Update.random(after: before, prng: &prng)
            var done = false
            switch update {
            case .checkpoint(let value): superblock.checkpoint(update: value) { done = true }
            case .viewChange(let value): superblock.viewChange(update: value) { done = true }
            }
            // An update takes 8 IOs of 1...5 ticks; some crash ticks fall after it completed.
            let crashTick = prng.int(in: 0...48)
            storage.run(until: { done }, tickLimit: crashTick)
            if done {
                #expect(superblock.working == update.staged(on: before), "\(context)")
                completed = superblock.working
                // Not every completed update is followed by a crash.
                if prng.chance(percent: 50) { continue }
            }
            let tornBefore = storage.faults.writesTorn
            storage.crash()
            crashes += 1
            // One fault at a time: a latent bit flip only when the crash tore nothing.
            if storage.faults.writesTorn == tornBefore && prng.chance(percent: 50) {
                let slot = Int(prng.below(UInt64(Constants.superblockCopies)))
                let sector = UInt64(prng.below(2)) * UInt64(Constants.sectorSize)
                storage.corruptSector(zone: .superblock, offset: F.layout.superblockCopyOffset(copy: slot) + sector)
            }
            if prng.chance(percent: 30) {
                // Crash again while open reads and repairs.
                let interrupted = Superblock(storage: storage)
                var result: Result<SuperblockHeader, SuperblockError>?
                interrupted.open { result = $0 }
                storage.run(until: { result != nil }, tickLimit: prng.int(in: 1...40))
                if case .failure(let error)? = result { Issue.record("\(context): open failed: \(error)") }
                storage.crash()
            }

            let (reopened, result) = F.open(storage)
            guard case .success(let header)? = result else {
                Issue.record("\(context): open failed: \(String(describing: result))")
                return
            }
            // The last completed update, or (if the crash came first) the one in flight.
            if header != completed {
                #expect(!done, "\(context): a completed update is never lost")
                #expect(header == update.staged(on: before), "\(context): open invents no state")
            }
            F.expectAllCopies(storage, equal: header)
            completed = header
            superblock = reopened
        }
        #expect(crashes > 0, "seed \(seed): the run crashed at least once")
    }
}
