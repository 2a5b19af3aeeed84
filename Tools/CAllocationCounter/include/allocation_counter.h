// Counts heap allocations of the whole process, for benchmarks that must show zero allocations
// on a hot path. Linked into benchmark executables only: it interposes malloc and friends, and
// forwards to glibc's own implementations.
#ifndef LEDGER_ALLOCATION_COUNTER_H
#define LEDGER_ALLOCATION_COUNTER_H
#include <stdint.h>

// Number of successful allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc,
// memalign, valloc) since the process started.
uint64_t ledger_allocation_count(void);
// Whether the interposer is active (false on platforms without glibc's __libc_* entry points).
int ledger_allocation_counter_active(void);

#endif
