/*
 * The 128-bit checksum of the wire protocol (specs/wire-protocol.md §3.1): AEGIS-128L used as a
 * MAC with an all-zero key and nonce, the input absorbed as associated data, an empty plaintext,
 * and the 128-bit tag S0^S1^...^S6. The tag bytes, read as a little-endian u128, are the checksum.
 *
 * On x86_64 CPUs with AES-NI the fast path uses AESENC; elsewhere a plain-C AES round gives
 * bit-identical results. The path and the shared post-init state (a constant, since key and nonce
 * are zero) are set up once at load time, so every function is thread-safe.
 */
#ifndef LEDGER_CHECKSUM_H
#define LEDGER_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One-shot checksum of `size` bytes at `data` (`data` may be NULL when `size` is 0). */
void ledger_checksum(const void *data, size_t size, uint8_t out_tag[16]);

/*
 * Streaming state, caller-allocated and plain data (copy it to fork a stream). Feeding the input
 * in any pieces gives the same tag as the one-shot function. Treat the fields as private.
 */
typedef struct ledger_checksum_stream {
    uint8_t state[128];     /* S0..S7, 16 bytes each, after the blocks absorbed so far */
    uint8_t pending[32];    /* bytes of the current incomplete 32-byte block */
    uint64_t pending_count; /* 0..31 */
    uint64_t total_length;  /* bytes fed so far */
} ledger_checksum_stream;

void ledger_checksum_stream_init(ledger_checksum_stream *stream);
/* Absorbs `size` bytes (any size, `data` may be NULL when `size` is 0). */
void ledger_checksum_stream_update(ledger_checksum_stream *stream, const void *data, size_t size);
/* Writes the tag of everything fed so far. Does not modify the stream: it may be updated further. */
void ledger_checksum_stream_final(const ledger_checksum_stream *stream, uint8_t out_tag[16]);

/* 1 if the AES-NI path is in use, 0 if the portable path is. */
int ledger_checksum_has_aesni(void);

/* Test-only: the portable (software AES) path, whatever the CPU supports. */
void ledger_checksum_portable(const void *data, size_t size, uint8_t out_tag[16]);

#ifdef __cplusplus
}
#endif

#endif /* LEDGER_CHECKSUM_H */
