import LedgerKit

// The outcome of WAL recovery and its pure planning step, shared by `Journal.recover` and
// `ledger-inspect wal`, so that the tool reaches exactly the verdict the replica reaches.

/// The outcome of WAL recovery: the case and decision of every slot (what `ledger-inspect wal`
/// prints), and the totals. Built by `plan`, which is pure, so the inspector reaches exactly
/// the verdict the replica reaches.
public struct JournalRecovery: Sendable {
    public struct Slot: Equatable, Sendable {
        /// The redundant header, as read from the header ring.
        public var header: JournalEntry
        /// The prepare, as read from the prepare ring.
        public var prepare: JournalEntry
        public var recoveryCase: JournalRecoveryCase
        public var decision: JournalRecoveryDecision
        /// A torn append past the head (a @B/@C refined from repair to truncate).
        public var isTornAppend: Bool
    }

    public let opCheckpoint: UInt64
    public let opPrepareMax: UInt64
    /// The highest op of any valid header of either ring (trusted or not): "prepare.op is max".
    public let opMaxSeen: UInt64
    /// The highest op the journal loaded: the head of the log (nil if nothing was loaded).
    public let opHead: UInt64?
    public let slots: [Slot]
    /// Slots marked for repair (dirty and faulty).
    public let faultyCount: Int
    /// Slots whose header is rewritten from their prepare.
    public let fixedCount: Int
    /// Slots truncated to reserved (beyond `op_prepare_max`, or torn appends).
    public let truncatedCount: Int

    /// The slots to repair from peers, in slot order.
    public var repairSlots: [Int] {
        slots.indices.filter { slots[$0].decision == .repair }
    }

    /// Classifies every slot from its two entries (indexed by slot), then refines torn appends.
    ///
    /// Torn appends (spec §3): a crash while appending past the head leaves a corrupt prepare
    /// under an older header. Repairing it would be safe but a solo replica cannot, and a
    /// cluster would have to recover its head from peers. When the head is certain, it is
    /// truncated instead: every repair in the ops `(opMaxSeen, opPrepareMax]` must be a corrupt
    /// prepare under a valid header of an older wrap, and there must be at most
    /// `journalWritesMax` of them (no more appends can be in flight). Anything else there (a
    /// corrupt header, a valid prepare that went missing) may hide the true head: then nothing
    /// is truncated.
    ///
    /// Unlike TigerBeetle, a *reserved* header counts as the oldest wrap (the one format
    /// wrote): otherwise an append torn by a crash during the first wrap would leave a solo
    /// replica unable to start. This is as safe as the old-wrap rule: our write path only ever
    /// writes a valid header for a durable prepare, so a reserved header over a corrupt
    /// prepare past the head needs a second fault (a lost header write) to hide an
    /// acknowledged op, exactly as an old-wrap header does.
    public static func plan(
        configuration: StorageConfiguration, opCheckpoint: UInt64, replicaCount: Int,
        headers: [JournalEntry], prepares: [JournalEntry]
    ) -> JournalRecovery {
        let slotCount = configuration.journalSlotCount
        precondition(headers.count == slotCount, "one redundant header per slot")
        precondition(prepares.count == slotCount, "one prepare per slot")
        precondition(replicaCount >= 1, "at least one replica")
        precondition(replicaCount <= Constants.replicasMax, "at most replicasMax replicas")
        let solo = replicaCount == 1
        let opPrepareMax = configuration.opPrepareMax(checkpoint: opCheckpoint)

        var opMaxSeen: UInt64 = 0
        for slot in 0..<slotCount {
            if let header = headers[slot].prepareHeader { opMaxSeen = max(opMaxSeen, header.op) }
            if let prepare = prepares[slot].prepareHeader { opMaxSeen = max(opMaxSeen, prepare.op) }
        }

        var slots: [Slot] = []
        slots.reserveCapacity(slotCount)
        for slot in 0..<slotCount {
            let facts = JournalSlotFacts(
                header: headers[slot], prepare: prepares[slot], opMax: opMaxSeen,
                opPrepareMax: opPrepareMax)
            let recoveryCase = journalRecoveryCase(facts)
            slots.append(
                Slot(header: headers[slot], prepare: prepares[slot], recoveryCase: recoveryCase,
                     decision: recoveryCase.decision(solo: solo), isTornAppend: false))
        }

        let torn = tornAppends(
            slots: slots, opCheckpoint: opCheckpoint, opMaxSeen: opMaxSeen,
            opPrepareMax: opPrepareMax, tornMax: configuration.journalWritesMax)
        for slot in torn {
            precondition(slots[slot].decision == .repair, "only a repair is refined to a truncation")
            slots[slot].decision = .truncate
            slots[slot].isTornAppend = true
        }

        var opHead: UInt64?
        var faultyCount = 0
        var fixedCount = 0
        var truncatedCount = 0
        for slot in slots {
            switch slot.decision {
            case .nothing, .fixHeaderFromPrepare:
                if let header = slot.prepare.prepareHeader { opHead = max(opHead ?? 0, header.op) }
                if slot.decision == .fixHeaderFromPrepare { fixedCount += 1 }
            case .repair: faultyCount += 1
            case .truncate: truncatedCount += 1
            }
        }
        return JournalRecovery(
            opCheckpoint: opCheckpoint, opPrepareMax: opPrepareMax, opMaxSeen: opMaxSeen,
            opHead: opHead, slots: slots, faultyCount: faultyCount, fixedCount: fixedCount,
            truncatedCount: truncatedCount)
    }

    /// The slots of torn appends (see `plan`), or none if the head is not certain.
    static func tornAppends(
        slots: [Slot], opCheckpoint: UInt64, opMaxSeen: UInt64, opPrepareMax: UInt64, tornMax: Int
    ) -> [Int] {
        // The head is at least the checkpoint: below it, it is certainly not known.
        guard opMaxSeen >= opCheckpoint else { return [] }
        // Ops beyond op_prepare_max are truncated by their own cases (@H–@J).
        guard opMaxSeen < opPrepareMax else { return [] }
        let slotCount = slots.count
        // At most one lap: never look at the head's own slot again.
        let opLast = min(opPrepareMax, opMaxSeen + UInt64(slotCount - 1))
        var torn: [Int] = []
        var op = opMaxSeen + 1
        while op <= opLast {  // At most slotCount - 1 iterations.
            let slot = Int(op % UInt64(slotCount))
            op += 1
            guard slots[slot].decision == .repair else { continue }
            guard case .corrupt = slots[slot].prepare else { return [] }
            switch slots[slot].header {
            case .corrupt: return []
            case .reserved: break
            case .prepare(let header):
                // An older wrap of this slot (by the definition of opMaxSeen), and so, by the
                // checkpoint geometry (op_prepare_max − slotCount ≤ checkpoint), an op the
                // durable checkpoint already covers: truncating it loses nothing replay needs.
                precondition(header.op <= opMaxSeen, "a valid header past the head is the head")
                precondition(
                    header.op <= opCheckpoint, "a torn append only overwrites checkpointed ops")
            }
            guard torn.count < tornMax else { return [] }
            torn.append(slot)
        }
        return torn
    }

    /// `plan` over raw bytes, without a `Storage`: for `ledger-inspect wal`, which reads a data
    /// file itself. `headerRing`: the whole header ring. `prepareSlot(slot)`: the bytes of a
    /// prepare slot from its start, at least one sector and at least the prepare's size
    /// rounded up to sectors (the whole slot is always enough).
    public static func classify(
        cluster: UInt128, configuration: StorageConfiguration, opCheckpoint: UInt64,
        replicaCount: Int, headerRing: UnsafeRawBufferPointer,
        prepareSlot: (_ slot: Int) -> UnsafeRawBufferPointer
    ) -> JournalRecovery {
        let slotCount = configuration.journalSlotCount
        precondition(
            headerRing.count == slotCount * Constants.messageHeaderSize, "the whole header ring")
        var headers: [JournalEntry] = []
        var prepares: [JournalEntry] = []
        headers.reserveCapacity(slotCount)
        prepares.reserveCapacity(slotCount)
        for slot in 0..<slotCount {
            let start = slot * Constants.messageHeaderSize
            let header = UnsafeRawBufferPointer(
                rebasing: headerRing[start..<start + Constants.messageHeaderSize])
            headers.append(.header(header, cluster: cluster, slot: slot, slotCount: slotCount))
            prepares.append(
                .prepare(prepareSlot(slot), cluster: cluster, slot: slot, slotCount: slotCount))
        }
        return plan(
            configuration: configuration, opCheckpoint: opCheckpoint, replicaCount: replicaCount,
            headers: headers, prepares: prepares)
    }
}

