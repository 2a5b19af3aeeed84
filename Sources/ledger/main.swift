// ledger: the Ledger server (storage spec §11 "CLI").
//
//   ledger start --addresses=<host:port,…> [--cache-grid=<size>] [--development] <path>
//   ledger version [--verbose]
//
// `start` serves the replica whose data file is <path> (made by ledger-format) until SIGINT or
// SIGTERM. Everything it says goes to stderr, one line per event; a reason it cannot start is
// one line and a non-zero exit.

import ArgumentParser
import LedgerCommandLine
import LedgerKit

struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The Ledger server: a financial ledger database speaking TigerBeetle's 0.17 client protocol.",
        subcommands: [StartCommand.self, VersionCommand.self])
}

runCommandLine(LedgerCommand.self, name: "ledger")
