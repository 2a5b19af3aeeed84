/// State-machine operation codes (u8 on the wire; values below 128 belong to the consensus
/// protocol). Only the operations this build implements are listed; any other code is rejected
/// by `Operation(rawValue:)` returning nil. The legacy codes 129–136 and 138–139 (clients older
/// than 0.17.0) are not implemented: see docs/decisions.md (Q6).
public enum Operation: UInt8, CaseIterable, Sendable {
    /// Internal: expires pending transfers. Empty body; only the cluster itself issues it.
    case pulse = 128
    case getChangeEvents = 137
    case lookupAccounts = 140
    case lookupTransfers = 141
    case getAccountTransfers = 142
    case getAccountBalances = 143
    case queryAccounts = 144
    case queryTransfers = 145
    case createAccounts = 146
    case createTransfers = 147

    /// Size of one request element.
    public var eventSize: Int {
        switch self {
        case .pulse: 0
        case .getChangeEvents: Constants.changeEventsFilterSize
        case .lookupAccounts, .lookupTransfers: Constants.idSize
        case .getAccountTransfers, .getAccountBalances: Constants.accountFilterSize
        case .queryAccounts, .queryTransfers: Constants.queryFilterSize
        case .createAccounts: Constants.accountSize
        case .createTransfers: Constants.transferSize
        }
    }

    /// Size of one reply element.
    public var resultSize: Int {
        switch self {
        case .pulse: 0
        case .getChangeEvents: Constants.changeEventSize
        case .lookupAccounts, .queryAccounts: Constants.accountSize
        case .lookupTransfers, .getAccountTransfers, .queryTransfers: Constants.transferSize
        case .getAccountBalances: Constants.accountBalanceSize
        case .createAccounts, .createTransfers: Constants.createResultSize
        }
    }

    /// Whether request and reply bodies use the multi-batch encoding.
    public var isMultiBatch: Bool {
        switch self {
        case .pulse, .getChangeEvents: false
        default: true
        }
    }

    /// Whether a batch holds many events (create, lookup) rather than exactly one filter.
    public var isBatchable: Bool {
        switch self {
        case .createAccounts, .createTransfers, .lookupAccounts, .lookupTransfers: true
        default: false
        }
    }

    /// Whether the operation changes state (and so consumes one timestamp per event).
    public var isCreate: Bool { self == .createAccounts || self == .createTransfers }

    /// Largest number of events in one batch (for filters: 1).
    public var batchEventsMax: Int {
        switch self {
        case .pulse: 0
        case .createAccounts, .createTransfers, .lookupAccounts, .lookupTransfers:
            Constants.batchEventsMax
        default: 1
        }
    }

    /// Largest number of results in one batch.
    public var batchResultsMax: Int {
        switch self {
        case .pulse: 0
        case .getChangeEvents: Constants.changeEventsMax
        case .createAccounts, .createTransfers, .lookupAccounts, .lookupTransfers:
            Constants.batchEventsMax
        default: Constants.queryResultsMax
        }
    }
}
