// CPU hints that Swift cannot express: a software prefetch. Header-only `static inline`, so
// Swift imports and inlines it (no call).
#ifndef LEDGER_HINTS_H
#define LEDGER_HINTS_H

// Starts loading the cache line at `address` for a read soon; never faults.
static inline void ledger_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
