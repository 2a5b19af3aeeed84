/*
 * AEGIS-128L as a MAC (key = nonce = 0, input = associated data, empty plaintext, 128-bit tag),
 * written from the algorithm in specs/wire-protocol.md §3.1. Blocks are 16 bytes; the state is
 * S0..S7.
 *
 *   AESRound(x, k)  = MixColumns(ShiftRows(SubBytes(x))) ^ k      (x86 AESENC)
 *   Update(S, M0, M1): S'0 = AESRound(S7, S0) ^ M0, S'i = AESRound(S(i-1), Si) for i = 1..7,
 *                      S'4 ^= M1
 *   Init:     S = {0, C1, C0, C1, 0, C0, C1, C0}, then 10 x Update(S, 0, 0)
 *   Absorb:   Update(S, B[0..16], B[16..32]) per 32-byte block, the last one zero-padded
 *   Finalize: t = S2 ^ (LE64(8 * length) || LE64(0)); 7 x Update(S, t, t); tag = S0 ^ ... ^ S6
 *
 * Because key and nonce are zero, the post-init state is a constant: it is computed once, at load
 * time, by a constructor, together with the choice of path (so no call races with either).
 */
#include "ledger_checksum.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const uint8_t aegis_c0[16] = {
    0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d, 0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62,
};
static const uint8_t aegis_c1[16] = {
    0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1, 0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd,
};

/* S0..S7 after Init with key = nonce = 0. Written once by the constructor below. */
static uint8_t initial_state[8][16];
/* 1 if this CPU has AES-NI (x86_64 only). Written once by the constructor below. */
static int use_aesni;

/* The length block of Finalize before the XOR with S2: LE64(8 * length) || LE64(0). */
static void length_block(uint64_t length, uint8_t out[16]) {
    uint64_t bits = length * 8;
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(bits >> (8 * i));
        out[8 + i] = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Portable path: a software AES round. Speed matters less here (it serves CPUs without AES-NI);
 * it must match AESENC bit for bit.
 * ------------------------------------------------------------------------------------------- */

/* The AES S-box (FIPS-197): multiplicative inverse in GF(2^8) followed by the affine map. */
static const uint8_t aes_sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

/* Multiplication by x (= 2) in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
static inline uint8_t gf_double(uint8_t a) {
    return (uint8_t)((a << 1) ^ ((a >> 7) * 0x1b));
}

/*
 * out = AESRound(x, k). Bytes are in AES order: byte 4*c + r is row r of column c. ShiftRows
 * moves row r left by r columns, so output column c takes row r from input column (c + r) mod 4.
 * `out` must not alias `x` or `k`.
 */
static void portable_aes_round(uint8_t out[16], const uint8_t x[16], const uint8_t k[16]) {
    for (int c = 0; c < 4; c++) {
        uint8_t a0 = aes_sbox[x[4 * c + 0]];
        uint8_t a1 = aes_sbox[x[4 * ((c + 1) & 3) + 1]];
        uint8_t a2 = aes_sbox[x[4 * ((c + 2) & 3) + 2]];
        uint8_t a3 = aes_sbox[x[4 * ((c + 3) & 3) + 3]];
        /* MixColumns: b_r = 2*a_r ^ 3*a_(r+1) ^ a_(r+2) ^ a_(r+3) = a_r ^ all ^ 2*(a_r ^ a_(r+1)) */
        uint8_t all = a0 ^ a1 ^ a2 ^ a3;
        out[4 * c + 0] = (uint8_t)(a0 ^ all ^ gf_double(a0 ^ a1) ^ k[4 * c + 0]);
        out[4 * c + 1] = (uint8_t)(a1 ^ all ^ gf_double(a1 ^ a2) ^ k[4 * c + 1]);
        out[4 * c + 2] = (uint8_t)(a2 ^ all ^ gf_double(a2 ^ a3) ^ k[4 * c + 2]);
        out[4 * c + 3] = (uint8_t)(a3 ^ all ^ gf_double(a3 ^ a0) ^ k[4 * c + 3]);
    }
}

static void portable_update(uint8_t s[8][16], const uint8_t m0[16], const uint8_t m1[16]) {
    uint8_t next[8][16];
    portable_aes_round(next[0], s[7], s[0]);
    for (int i = 1; i < 8; i++) {
        portable_aes_round(next[i], s[i - 1], s[i]);
    }
    for (int j = 0; j < 16; j++) {
        next[0][j] ^= m0[j];
        next[4][j] ^= m1[j];
    }
    memcpy(s, next, sizeof(next));
}

static void portable_absorb_blocks(uint8_t s[8][16], const uint8_t *p, size_t blocks) {
    for (size_t b = 0; b < blocks; b++, p += 32) {
        portable_update(s, p, p + 16);
    }
}

static void portable_absorb_partial(uint8_t s[8][16], const uint8_t *p, size_t remainder) {
    if (remainder == 0) return;
    uint8_t block[32] = {0};
    memcpy(block, p, remainder);
    portable_update(s, block, block + 16);
}

/* Consumes `s`. */
static void portable_finalize(uint8_t s[8][16], uint64_t length, uint8_t out_tag[16]) {
    uint8_t t[16];
    length_block(length, t);
    for (int j = 0; j < 16; j++) t[j] ^= s[2][j];
    for (int i = 0; i < 7; i++) portable_update(s, t, t);
    for (int j = 0; j < 16; j++) {
        out_tag[j] = (uint8_t)(s[0][j] ^ s[1][j] ^ s[2][j] ^ s[3][j] ^ s[4][j] ^ s[5][j] ^ s[6][j]);
    }
}

void ledger_checksum_portable(const void *data, size_t size, uint8_t out_tag[16]) {
    const uint8_t *p = (const uint8_t *)data;
    uint8_t s[8][16];
    memcpy(s, initial_state, sizeof(s));
    portable_absorb_blocks(s, p, size / 32);
    if (size % 32 != 0) portable_absorb_partial(s, p + (size & ~(size_t)31), size % 32);
    portable_finalize(s, (uint64_t)size, out_tag);
}

/* ---------------------------------------------------------------------------------------------
 * x86_64 fast path: AESENC is exactly AESRound, and the state lives in eight XMM registers.
 * target("aes,sse4.2") enables the instructions for these functions only (no compiler flags); they
 * run only after the CPUID check in the constructor.
 * ------------------------------------------------------------------------------------------- */
#if defined(__x86_64__)

#define LC_AESNI __attribute__((target("aes,sse4.2")))
#define LC_AESNI_INLINE __attribute__((target("aes,sse4.2"), always_inline)) static inline

LC_AESNI_INLINE void aesni_update(__m128i s[8], __m128i m0, __m128i m1) {
    const __m128i old7 = s[7];
    s[7] = _mm_aesenc_si128(s[6], s[7]);
    s[6] = _mm_aesenc_si128(s[5], s[6]);
    s[5] = _mm_aesenc_si128(s[4], s[5]);
    s[4] = _mm_xor_si128(_mm_aesenc_si128(s[3], s[4]), m1);
    s[3] = _mm_aesenc_si128(s[2], s[3]);
    s[2] = _mm_aesenc_si128(s[1], s[2]);
    s[1] = _mm_aesenc_si128(s[0], s[1]);
    s[0] = _mm_xor_si128(_mm_aesenc_si128(old7, s[0]), m0);
}

LC_AESNI_INLINE void aesni_load(__m128i s[8], const uint8_t *bytes) {
    for (int i = 0; i < 8; i++) s[i] = _mm_loadu_si128((const __m128i *)(bytes + 16 * i));
}

LC_AESNI_INLINE void aesni_store(uint8_t *bytes, const __m128i s[8]) {
    for (int i = 0; i < 8; i++) _mm_storeu_si128((__m128i *)(bytes + 16 * i), s[i]);
}

LC_AESNI_INLINE void aesni_absorb_blocks(__m128i s[8], const uint8_t *p, size_t blocks) {
    for (size_t b = 0; b < blocks; b++, p += 32) {
        aesni_update(s, _mm_loadu_si128((const __m128i *)p),
                     _mm_loadu_si128((const __m128i *)(p + 16)));
    }
}

/* pshufb masks: the 16 bytes at tail_shift + 16 - r move the last r bytes of a vector to its
 * front and zero the rest (a mask byte with the high bit set yields 0). */
static const uint8_t tail_shift[32] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

/*
 * The zero-padded last block (m0, m1) from the `remainder` (1..31) bytes at `p`, which end an input
 * of `size` bytes. Reads only inside the input: when size >= 16 it loads the 16 bytes that end the
 * input and shifts the wanted ones down, which avoids a memcpy (a 240-byte header has a 16-byte
 * tail).
 */
LC_AESNI_INLINE void aesni_tail_block(const uint8_t *p, size_t remainder, size_t size,
                                      __m128i *m0, __m128i *m1) {
    if (size >= 16) {
        const __m128i last = _mm_loadu_si128((const __m128i *)(p + remainder - 16));
        if (remainder > 16) {
            const size_t r = remainder - 16;
            *m0 = _mm_loadu_si128((const __m128i *)p);
            *m1 = _mm_shuffle_epi8(last, _mm_loadu_si128((const __m128i *)(tail_shift + 16 - r)));
        } else {
            *m0 = _mm_shuffle_epi8(
                last, _mm_loadu_si128((const __m128i *)(tail_shift + 16 - remainder)));
            *m1 = _mm_setzero_si128();
        }
    } else {
        uint8_t block[16] = {0};
        memcpy(block, p, remainder);
        *m0 = _mm_loadu_si128((const __m128i *)block);
        *m1 = _mm_setzero_si128();
    }
}

LC_AESNI_INLINE void aesni_finalize(__m128i s[8], uint64_t length, uint8_t out_tag[16]) {
    const __m128i t = _mm_xor_si128(s[2], _mm_set_epi64x(0, (long long)(length * 8)));
    for (int i = 0; i < 7; i++) aesni_update(s, t, t);
    const __m128i tag = _mm_xor_si128(
        _mm_xor_si128(_mm_xor_si128(s[0], s[1]), _mm_xor_si128(s[2], s[3])),
        _mm_xor_si128(_mm_xor_si128(s[4], s[5]), s[6]));
    _mm_storeu_si128((__m128i *)out_tag, tag);
}

LC_AESNI static void aesni_checksum(const uint8_t *p, size_t size, uint8_t out_tag[16]) {
    const size_t remainder = size % 32;
    __m128i m0 = _mm_setzero_si128(), m1 = _mm_setzero_si128();
    /* Tail first, so that its (rare) memcpy call does not force the state out of registers. */
    if (remainder != 0) aesni_tail_block(p + (size - remainder), remainder, size, &m0, &m1);
    __m128i s[8];
    aesni_load(s, (const uint8_t *)initial_state);
    aesni_absorb_blocks(s, p, size / 32);
    if (remainder != 0) aesni_update(s, m0, m1);
    aesni_finalize(s, (uint64_t)size, out_tag);
}

LC_AESNI static void aesni_stream_absorb(uint8_t state[128], const uint8_t *p, size_t blocks) {
    __m128i s[8];
    aesni_load(s, state);
    aesni_absorb_blocks(s, p, blocks);
    aesni_store(state, s);
}

/* `padded` is the zero-padded last block, absorbed if pending_count > 0. */
LC_AESNI static void aesni_stream_final(const uint8_t state[128], const uint8_t padded[32],
                                        size_t pending_count, uint64_t length,
                                        uint8_t out_tag[16]) {
    __m128i s[8];
    aesni_load(s, state);
    if (pending_count != 0) {
        aesni_update(s, _mm_loadu_si128((const __m128i *)padded),
                     _mm_loadu_si128((const __m128i *)(padded + 16)));
    }
    aesni_finalize(s, length, out_tag);
}

#endif /* __x86_64__ */

/* ---------------------------------------------------------------------------------------------
 * Setup and dispatch.
 * ------------------------------------------------------------------------------------------- */

__attribute__((constructor)) static void ledger_checksum_setup(void) {
    /* Init with K = N = 0: S = {0, C1, C0, C1, 0, C0, C1, C0}, then 10 x Update(S, 0, 0). */
    static const uint8_t zero[16] = {0};
    uint8_t s[8][16];
    memset(s, 0, sizeof(s));
    memcpy(s[1], aegis_c1, 16);
    memcpy(s[2], aegis_c0, 16);
    memcpy(s[3], aegis_c1, 16);
    memcpy(s[5], aegis_c0, 16);
    memcpy(s[6], aegis_c1, 16);
    memcpy(s[7], aegis_c0, 16);
    for (int i = 0; i < 10; i++) portable_update(s, zero, zero);
    memcpy(initial_state, s, sizeof(s));

#if defined(__x86_64__)
    __builtin_cpu_init(); /* required before __builtin_cpu_supports in a constructor */
    use_aesni = __builtin_cpu_supports("aes") ? 1 : 0;
#else
    use_aesni = 0;
#endif
}

int ledger_checksum_has_aesni(void) {
    return use_aesni;
}

void ledger_checksum(const void *data, size_t size, uint8_t out_tag[16]) {
#if defined(__x86_64__)
    if (use_aesni) {
        aesni_checksum((const uint8_t *)data, size, out_tag);
        return;
    }
#endif
    ledger_checksum_portable(data, size, out_tag);
}

void ledger_checksum_stream_init(ledger_checksum_stream *stream) {
    memcpy(stream->state, initial_state, sizeof(stream->state));
    memset(stream->pending, 0, sizeof(stream->pending));
    stream->pending_count = 0;
    stream->total_length = 0;
}

static void stream_absorb(uint8_t state[128], const uint8_t *p, size_t blocks) {
    if (blocks == 0) return;
#if defined(__x86_64__)
    if (use_aesni) {
        aesni_stream_absorb(state, p, blocks);
        return;
    }
#endif
    uint8_t s[8][16];
    memcpy(s, state, sizeof(s));
    portable_absorb_blocks(s, p, blocks);
    memcpy(state, s, sizeof(s));
}

void ledger_checksum_stream_update(ledger_checksum_stream *stream, const void *data, size_t size) {
    if (size == 0) return; /* also keeps a NULL `data` out of memcpy and pointer arithmetic */
    const uint8_t *p = (const uint8_t *)data;
    stream->total_length += size;

    if (stream->pending_count > 0) {
        size_t take = 32 - (size_t)stream->pending_count;
        if (take > size) take = size;
        memcpy(stream->pending + stream->pending_count, p, take);
        stream->pending_count += take;
        p += take;
        size -= take;
        if (stream->pending_count < 32) return;
        stream_absorb(stream->state, stream->pending, 1);
        stream->pending_count = 0;
    }

    const size_t blocks = size / 32;
    stream_absorb(stream->state, p, blocks);
    p += blocks * 32;
    size -= blocks * 32;

    if (size > 0) {
        memcpy(stream->pending, p, size);
        stream->pending_count = size;
    }
}

void ledger_checksum_stream_final(const ledger_checksum_stream *stream, uint8_t out_tag[16]) {
    const size_t count = (size_t)stream->pending_count;
    uint8_t padded[32] = {0};
    memcpy(padded, stream->pending, count);
#if defined(__x86_64__)
    if (use_aesni) {
        aesni_stream_final(stream->state, padded, count, stream->total_length, out_tag);
        return;
    }
#endif
    uint8_t s[8][16];
    memcpy(s, stream->state, sizeof(s));
    if (count != 0) portable_update(s, padded, padded + 16);
    portable_finalize(s, stream->total_length, out_tag);
}
