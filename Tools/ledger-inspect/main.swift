print("ledger-inspect: not yet implemented")
