// swift-tools-version: 6.1
// Ledger: a distributed financial ledger database. See README.md and docs/.
import PackageDescription

// Release builds of the core:
// - drop dynamic exclusivity checks: the core keeps its state in structs and flat buffers, and
//   the checks cost up to 4x on class-held state (specs/swift-engineering.md §3(d));
// - optimize across modules, so that generic core types (StateMachine<Store>) are specialized
//   in the module that instantiates them instead of running through witness tables (2-2.5x).
let coreSwiftSettings: [SwiftSetting] = [
    .unsafeFlags(
        ["-enforce-exclusivity=unchecked", "-cross-module-optimization"],
        .when(configuration: .release)),
]

let package = Package(
    name: "Ledger",
    products: [
        .library(name: "LedgerKit", targets: ["LedgerKit"]),
        .library(name: "LedgerStateMachine", targets: ["LedgerStateMachine"]),
        .executable(name: "ledger-benchmark", targets: ["ledger-benchmark"]),
    ],
    targets: [
        // liburing through a pre-include shim (see Sources/CURing/shim.h for why).
        .systemLibrary(
            name: "CURing", path: "Sources/CURing", pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]),
        // AEGIS-128L MAC, the 128-bit checksum: AES-NI with a portable fallback.
        .target(name: "CLedgerChecksum", path: "Sources/CLedgerChecksum"),
        // CPU hints (software prefetch) for the in-memory store's prefetch phase.
        .target(name: "CLedgerHints", path: "Sources/CLedgerHints"),
        .target(
            name: "LedgerKit", dependencies: ["CLedgerChecksum"],
            swiftSettings: coreSwiftSettings),
        .target(
            name: "LedgerStateMachine", dependencies: ["LedgerKit", "CLedgerHints"],
            swiftSettings: coreSwiftSettings),

        // Counts heap allocations by interposing malloc; linked into benchmarks only.
        .target(name: "CAllocationCounter", path: "Tools/CAllocationCounter"),
        .executableTarget(
            name: "ledger-benchmark",
            dependencies: ["LedgerKit", "LedgerStateMachine", "CAllocationCounter"],
            path: "Tools/ledger-benchmark",
            swiftSettings: coreSwiftSettings),

        .testTarget(name: "CURingTests", dependencies: ["CURing"]),
        .testTarget(name: "LedgerKitTests", dependencies: ["LedgerKit"]),
        .testTarget(
            name: "LedgerStateMachineTests", dependencies: ["LedgerStateMachine", "LedgerKit"]),
    ]
)
