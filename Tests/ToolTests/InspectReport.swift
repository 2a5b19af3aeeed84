// Typed views of `ledger-inspect --json` output, so that tests compare values instead of
// digging through `[String: Any]`. Every accessor throws on a missing or mistyped field: the
// JSON shape is part of the tool's contract with scripts.

import Foundation

struct InspectDocument {
    let root: [String: Any]

    init(_ result: ToolResult) throws {
        root = try result.jsonObject()
    }

    var isBlockDevice: Bool { get throws { try field(root, "block_device", as: Bool.self) } }
    var isHealthy: Bool { get throws { try field(root, "healthy", as: Bool.self) } }
    var warnings: [String] { get throws { try field(root, "warnings", as: [String].self) } }

    func section(_ name: String) throws -> [String: Any] {
        try field(root, name, as: [String: Any].self)
    }
}

/// `superblock` section.
struct SuperblockReport {
    struct Copy {
        let slot: Int
        let status: String
        let sequence: Int?
        var isValid: Bool { status == "valid" }
    }

    let copies: [Copy]
    /// nil when there is no quorum.
    let repairSlots: [Int]?
    let working: [String: Any]?

    init(_ document: InspectDocument) throws {
        let section = try document.section("superblock")
        copies = try field(section, "copies", as: [[String: Any]].self).map { copy in
            Copy(
                slot: try field(copy, "slot", as: Int.self),
                status: try field(copy, "status", as: String.self),
                sequence: copy["sequence"] as? Int)
        }
        if let quorum = section["quorum"] as? [String: Any] {
            repairSlots = try field(quorum, "repair_slots", as: [Int].self)
            working = try field(section, "working", as: [String: Any].self)
        } else {
            repairSlots = nil
            working = nil
        }
    }

    var validSlots: [Int] { copies.filter(\.isValid).map(\.slot) }
}

/// `wal` section.
struct WALReport {
    struct Slot {
        let slot: Int
        let headerStatus: String
        let prepareStatus: String
        let recoveryCase: String
        let decision: String
        let isTornAppend: Bool
    }

    let badSlots: [Int]
    let slots: [Slot]
    let context: String
    let truncatedCount: Int
    let fixedCount: Int
    let faultyCount: Int

    init(_ document: InspectDocument) throws {
        let section = try document.section("wal")
        badSlots = try field(section, "bad_slots", as: [Int].self)
        context = try field(section, "context", as: String.self)
        truncatedCount = try field(section, "truncated_count", as: Int.self)
        fixedCount = try field(section, "fixed_count", as: Int.self)
        faultyCount = try field(section, "faulty_count", as: Int.self)
        slots = try field(section, "slots", as: [[String: Any]].self).map { slot in
            Slot(
                slot: try field(slot, "slot", as: Int.self),
                headerStatus: try field(try field(slot, "header", as: [String: Any].self), "status", as: String.self),
                prepareStatus: try field(try field(slot, "prepare", as: [String: Any].self), "status", as: String.self),
                recoveryCase: try field(slot, "case", as: String.self),
                decision: try field(slot, "decision", as: String.self),
                isTornAppend: try field(slot, "torn_append", as: Bool.self))
        }
    }

    func slot(_ index: Int) throws -> Slot {
        guard let found = slots.first(where: { $0.slot == index }) else {
            throw ToolTestError("wal JSON has no slot \(index)")
        }
        return found
    }
}

func field<T>(_ object: [String: Any], _ key: String, as type: T.Type) throws -> T {
    guard let value = object[key] else { throw ToolTestError("JSON field '\(key)' is missing") }
    guard let typed = value as? T else {
        throw ToolTestError("JSON field '\(key)' is \(Swift.type(of: value)), expected \(T.self)")
    }
    return typed
}
