// CPU operations that Swift cannot express: a software prefetch, and a 16-way tag compare in
// one vector instruction. Header-only `static inline`, so Swift imports and inlines them (no
// call).
#ifndef LEDGER_HINTS_H
#define LEDGER_HINTS_H

#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Starts loading the cache line at `address` for a read soon; never faults.
static inline void ledger_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }

// The ways of a 16-way set whose 16-bit tag equals `tag`: bit `w` set when `tags[w] == tag`.
// Reads exactly `tags[0...15]`. One compare of the whole set instead of a loop of 16
// compare-and-branch steps (the set-associative caches' lookups: CacheMap, BlockCache).
static inline uint32_t ledger_tag_matches16(const uint16_t *tags, uint16_t tag) {
#if defined(__SSE2__)
    __m128i needle = _mm_set1_epi16((short)tag);
    __m128i low = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)tags), needle);
    __m128i high = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)(tags + 8)), needle);
    // Each 16-bit lane is 0 or -1: packing to bytes keeps that, one movemask bit per way.
    return (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(low, high));
#else
    uint32_t matches = 0;
    for (int way = 0; way < 16; way++) {
        if (tags[way] == tag) matches |= (uint32_t)1 << way;
    }
    return matches;
#endif
}

#endif
