print("ledger-benchmark: under construction")
