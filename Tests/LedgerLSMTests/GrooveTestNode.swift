import LedgerIO
import LedgerKit
import LedgerLSM
import LedgerTesting

/// One groove's trees in a forest on one process's storage (a restart builds a new node on the
/// same storage).
final class GrooveTestNode<Object: GrooveObject> {
    /// A test-sized groove configuration (`.testing` blocks and bars, growth factor 4).
    static func configuration(
        objectTreeId: TreeId, idTreeId: TreeId?, indexes: [GrooveIndex<Object>], cacheCapacity: Int,
        changesPerBeatMax: Int, prefetchEntriesMax: Int
    ) -> GrooveConfiguration {
        GrooveConfiguration(
            objectTreeId: objectTreeId.rawValue, idTreeId: idTreeId?.rawValue,
            indexTreeIds: indexes.map(\.treeId), changesPerBeatMax: changesPerBeatMax,
            prefetchEntriesMax: prefetchEntriesMax, cacheCapacity: cacheCapacity,
            compactionOps: DataFileLayout(.testing).configuration.lsmCompactionOps,
            manifest: ManifestConfiguration(levelCount: 7, growthFactor: 4, tablesMax: 64),
            blockSize: DataFileLayout(.testing).configuration.blockSize, lookupsMax: 4)
    }

    let forest: Forest<SimulatedStorage>
    let groove: Groove<Object, SimulatedStorage>

    /// `holdsSmallImmutableTables` off (the default here): the groove tests' light loads reach
    /// the grid every bar, as their fault, crash and level checks need (held tables are tested
    /// in TreeHeldImmutableTests and the forest-vs-model tests).
    init(
        storage: SimulatedStorage, configuration: GrooveConfiguration, indexes: [GrooveIndex<Object>],
        holdsSmallImmutableTables: Bool = false
    ) {
        forest = Forest(
            storage: storage,
            configuration: ForestConfiguration(trees: configuration.treeConfigurations, gridReadQueueMax: 128))
        forest.holdsSmallImmutableTables = holdsSmallImmutableTables
        groove = Groove(grid: forest.grid, freeSet: forest.freeSet, configuration: configuration, indexes: indexes)
        groove.registerTrees(in: forest)
    }

    /// Every tree's manifest, level by level, in registration order.
    func manifests() -> [[TableInfo]] {
        var result = groove.idTree?.manifest.levelsTables() ?? []
        for position in groove.indexes.indices {
            if let tree = groove.indexTrees64[position] { result += tree.manifest.levelsTables() }
            if let tree = groove.indexTrees128[position] { result += tree.manifest.levelsTables() }
        }
        return result + groove.objectTree.manifest.levelsTables()
    }
}

/// The accounts groove's node.
typealias GrooveNode = GrooveTestNode<Account>

extension GrooveTestNode where Object == Account {
    static func configuration(cacheCapacity: Int, changesPerBeatMax: Int, prefetchEntriesMax: Int) -> GrooveConfiguration {
        configuration(
            objectTreeId: .accountsObject, idTreeId: .accountsId, indexes: GrooveIndex<Account>.accounts(),
            cacheCapacity: cacheCapacity, changesPerBeatMax: changesPerBeatMax, prefetchEntriesMax: prefetchEntriesMax)
    }

    convenience init(storage: SimulatedStorage, configuration: GrooveConfiguration) {
        self.init(storage: storage, configuration: configuration, indexes: GrooveIndex<Account>.accounts())
    }
}

/// The transfers groove's node.
typealias TransferGrooveNode = GrooveTestNode<Transfer>

extension GrooveTestNode where Object == Transfer {
    static func configuration(cacheCapacity: Int, changesPerBeatMax: Int, prefetchEntriesMax: Int) -> GrooveConfiguration {
        configuration(
            objectTreeId: .transfersObject, idTreeId: .transfersId, indexes: GrooveIndex<Transfer>.transfers(),
            cacheCapacity: cacheCapacity, changesPerBeatMax: changesPerBeatMax, prefetchEntriesMax: prefetchEntriesMax)
    }

    convenience init(storage: SimulatedStorage, configuration: GrooveConfiguration) {
        self.init(storage: storage, configuration: configuration, indexes: GrooveIndex<Transfer>.transfers())
    }
}
