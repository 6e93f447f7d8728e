#ifndef APIKEYD_SHA256_H
#define APIKEYD_SHA256_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has the SHA extensions (and the SSSE3 and SSE4.1 they are used with), so
/// that the functions below may be called. Always 0 on other architectures.
int apikeyd_sha256_accelerated(void);

/// Runs the SHA-256 compression of `blocks` 64-byte blocks at `data` on `state` (eight words,
/// a to h). Only when apikeyd_sha256_accelerated() says so.
void apikeyd_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

/// Hashes the last `length` bytes of a message into `state` and writes its digest to `digest`:
/// full blocks first, then SHA-256's padding, for a message of `prefix_bytes` (a multiple of 64,
/// already compressed into `state`) plus `length` bytes. Only when apikeyd_sha256_accelerated()
/// says so.
void apikeyd_sha256_finish(uint32_t state[8], const uint8_t *data, size_t length, uint64_t prefix_bytes,
                           uint8_t digest[32]);

/// HMAC-SHA-256 of the `length` bytes at `message`, given the SHA-256 states after the key's
/// inner and outer padded blocks (eight words each, a to h; not changed): the 32-byte code goes to
/// `code`. Only when apikeyd_sha256_accelerated() says so.
void apikeyd_hmac_sha256(const uint32_t inner[8], const uint32_t outer[8], const uint8_t *message, size_t length,
                         uint8_t code[32]);

#endif
