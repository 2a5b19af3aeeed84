import LedgerKit
import Testing

@Suite struct CommandLineValuesTests {
    @Test func uint128() {
        #expect(CommandLineValues.parseUInt128("0") == 0)
        #expect(CommandLineValues.parseUInt128("1_000") == 1000)
        #expect(CommandLineValues.parseUInt128("0xff") == 255)
        #expect(CommandLineValues.parseUInt128("340282366920938463463374607431768211455") == UInt128.max)
        #expect(CommandLineValues.parseUInt128("340282366920938463463374607431768211456") == nil, "overflow")
        #expect(CommandLineValues.parseUInt128("") == nil)
        #expect(CommandLineValues.parseUInt128("0x") == nil)
        #expect(CommandLineValues.parseUInt128("-1") == nil)
        #expect(CommandLineValues.parseUInt128("12a") == nil)
        #expect(CommandLineValues.parseUInt128(" 1") == nil)
    }

    @Test func byteSizes() {
        #expect(CommandLineValues.parseByteSize("4096") == 4096)
        #expect(CommandLineValues.parseByteSize("2GiB") == 2 << 30)
        #expect(CommandLineValues.parseByteSize("1g") == 1 << 30)
        #expect(CommandLineValues.parseByteSize("512KiB") == 512 << 10)
        #expect(CommandLineValues.parseByteSize("16TiB") == 16 << 40)
        #expect(CommandLineValues.parseByteSize("GiB") == nil)
        #expect(CommandLineValues.parseByteSize("1.5GiB") == nil, "whole numbers only")
        #expect(CommandLineValues.parseByteSize("99999999999TiB") == nil, "overflow")
        #expect(CommandLineValues.parseByteSize("-1") == nil)
        #expect(CommandLineValues.parseByteSize("0x10") == nil, "decimal only")
    }

    @Test func formatting() {
        #expect(CommandLineValues.formatByteSize(1_141_374_976) == "1088.5 MiB")
        #expect(CommandLineValues.formatByteSize(96 * 1024) == "96 KiB")
        #expect(CommandLineValues.formatByteSize(100) == "100 B")
    }
}
