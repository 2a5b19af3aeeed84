print("ledger-format: not yet implemented")
