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
        .executable(name: "ledger", targets: ["ledger"]),
        .executable(name: "ledger-format", targets: ["ledger-format"]),
        .executable(name: "ledger-inspect", targets: ["ledger-inspect"]),
        .executable(name: "ledger-benchmark", targets: ["ledger-benchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
        // Linux calls Swift's Glibc does not import: O_DIRECT, fallocate, block-device ioctls.
        .target(name: "CPlatform", path: "Sources/CPlatform"),
        // The IO boundary: storage and TCP over one io_uring event loop.
        .target(
            name: "LedgerIO", dependencies: ["LedgerKit", "CURing", "CPlatform"],
            swiftSettings: coreSwiftSettings),
        // The LSM forest: grid, free set, block cache, tables, trees, grooves, and the state
        // machine's store on the forest (`ForestStore: LedgerStore`, hence LedgerStateMachine).
        .target(
            name: "LedgerLSM", dependencies: ["LedgerKit", "LedgerIO", "LedgerStateMachine"],
            swiftSettings: coreSwiftSettings),
        // Consensus and its storage: superblock, journal (WAL), format; later the replica.
        .target(
            name: "LedgerVSR", dependencies: ["LedgerKit", "LedgerIO", "LedgerStateMachine", "LedgerLSM"],
            swiftSettings: coreSwiftSettings),
        // Simulated IO with faults, for tests and the simulator.
        .target(
            name: "LedgerTesting", dependencies: ["LedgerKit", "LedgerIO"],
            swiftSettings: coreSwiftSettings),

        // Counts heap allocations by interposing malloc; linked into benchmarks only.
        .target(name: "CAllocationCounter", path: "Tools/CAllocationCounter"),
        .executableTarget(
            name: "ledger-benchmark",
            dependencies: [
                "LedgerKit", "LedgerStateMachine", "LedgerIO", "LedgerVSR", "LedgerLSM", "CPlatform",
                "CAllocationCounter",
            ],
            path: "Tools/ledger-benchmark",
            swiftSettings: coreSwiftSettings),
        // The server: `ledger start`, `ledger version`.
        .executableTarget(
            name: "ledger",
            dependencies: [
                "LedgerKit", "LedgerIO", "LedgerLSM", "LedgerVSR", "LedgerCommandLine", "CPlatform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/ledger",
            swiftSettings: coreSwiftSettings),
        // Command-line plumbing shared by every binary: one-line errors, exit codes.
        .target(
            name: "LedgerCommandLine",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/LedgerCommandLine"),
        .executableTarget(
            name: "ledger-format",
            dependencies: [
                "LedgerKit", "LedgerIO", "LedgerVSR", "LedgerCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/ledger-format"),
        .executableTarget(
            name: "ledger-inspect",
            dependencies: [
                "LedgerKit", "LedgerIO", "LedgerVSR", "LedgerLSM", "LedgerCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/ledger-inspect"),

        .testTarget(name: "CURingTests", dependencies: ["CURing"]),
        .testTarget(name: "LedgerKitTests", dependencies: ["LedgerKit"]),
        .testTarget(
            name: "LedgerStateMachineTests", dependencies: ["LedgerStateMachine", "LedgerKit"]),
        .testTarget(name: "LedgerTestingTests", dependencies: ["LedgerTesting", "LedgerIO", "LedgerKit"]),
        .testTarget(
            name: "LedgerLSMTests",
            dependencies: ["LedgerLSM", "LedgerStateMachine", "LedgerIO", "LedgerKit", "LedgerTesting"]),
        .testTarget(name: "LedgerIOTests", dependencies: ["LedgerIO", "LedgerKit", "CPlatform"]),
        .testTarget(
            name: "LedgerVSRTests",
            dependencies: ["LedgerVSR", "LedgerLSM", "LedgerStateMachine", "LedgerIO", "LedgerKit", "LedgerTesting"]),
        // Runs the built ledger-format and ledger-inspect binaries on files and loop devices.
        .testTarget(
            name: "ToolTests", dependencies: ["LedgerVSR", "LedgerLSM", "LedgerIO", "LedgerKit"]),
    ]
)
