/// Reserved areas of the wire records, as whole 64-bit words so that the records keep their
/// exact layout, stay `Hashable`, and need no `InlineArray` (the client must build on older
/// macOS releases too). Every reserved byte must be zero; `isZero` is the check.
public struct Padding32: Hashable, Sendable {
    public var word0: UInt64 = 0, word1: UInt64 = 0, word2: UInt64 = 0, word3: UInt64 = 0
    public init() {}
    public var isZero: Bool { (word0 | word1 | word2 | word3) == 0 }
}

public struct Padding40: Hashable, Sendable {
    public var word0: UInt64 = 0, word1: UInt64 = 0, word2: UInt64 = 0, word3: UInt64 = 0
    public var word4: UInt64 = 0
    public init() {}
    public var isZero: Bool { (word0 | word1 | word2 | word3 | word4) == 0 }
}

public struct Padding56: Hashable, Sendable {
    public var word0: UInt64 = 0, word1: UInt64 = 0, word2: UInt64 = 0, word3: UInt64 = 0
    public var word4: UInt64 = 0, word5: UInt64 = 0, word6: UInt64 = 0
    public init() {}
    public var isZero: Bool { (word0 | word1 | word2 | word3 | word4 | word5 | word6) == 0 }
}
