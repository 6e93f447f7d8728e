// SHA-256 (FIPS 180-4) on the x86 SHA extensions, for the HMAC of hashed key storage: the one
// hot path where swift-crypto's SHA256 (a context object copied, so allocated, per use) cost more
// than the key table lookup itself. Written from the specification and the instructions' definitions.
#include "apikeyd_sha256.h"

#include <string.h>

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

int apikeyd_sha256_accelerated(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}

// The round constants: the first 32 bits of the fractional parts of the cube roots of the first
// 64 primes.
static const uint32_t round_constants[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

__attribute__((target("sha,sse4.1,ssse3")))
void apikeyd_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    // Big-endian words: reverse the bytes of each 32-bit lane.
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    // The rounds instruction takes the state as (A, B, E, F) and (C, D, G, H), A and C in the top lane.
    __m128i abcd = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);

    for (; blocks > 0; blocks--, data += 64) {
        const __m128i abef_before = abef, cdgh_before = cdgh;
        // The message schedule, four words a vector: w[g % 4] holds words 4g to 4g + 3.
        // Unrolled in full, so every w[] index is a constant and the schedule stays in registers
        // (as a loop, w[] lived in memory: each group waited on a store and a load).
        __m128i w[4];
#pragma clang loop unroll(full)
        for (int i = 0; i < 4; i++) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), byte_swap);
        }
#pragma clang loop unroll(full)
        for (int group = 0; group < 16; group++) {
            const __m128i current = w[group & 3];
            __m128i words = _mm_add_epi32(current, _mm_load_si128((const __m128i *)&round_constants[4 * group]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, words);
            words = _mm_shuffle_epi32(words, 0x0E);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, words);
            if (group < 12) {
                // Words 4g + 16 to 4g + 19: w[t-16] + s0(w[t-15]) + w[t-7] + s1(w[t-2]).
                __m128i next = _mm_sha256msg1_epu32(current, w[(group + 1) & 3]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(w[(group + 3) & 3], w[(group + 2) & 3], 4));
                w[group & 3] = _mm_sha256msg2_epu32(next, w[(group + 3) & 3]);
            }
        }
        abef = _mm_add_epi32(abef, abef_before);
        cdgh = _mm_add_epi32(cdgh, cdgh_before);
    }

    __m128i abfe = _mm_shuffle_epi32(abef, 0x1B);
    __m128i ghcd = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(abfe, ghcd, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(ghcd, abfe, 8));
}

void apikeyd_sha256_finish(uint32_t state[8], const uint8_t *data, size_t length, uint64_t prefix_bytes,
                           uint8_t digest[32]) {
    const size_t full = length / 64;
    if (full > 0) apikeyd_sha256_blocks(state, data, full);
    const size_t rest = length - full * 64;
    const size_t tail_blocks = rest + 1 + 8 <= 64 ? 1 : 2;
    uint8_t tail[128];
    if (rest > 0) memcpy(tail, data + full * 64, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, tail_blocks * 64 - rest - 1);
    const uint64_t bits = (prefix_bytes + (uint64_t)length) * 8;
    for (int i = 0; i < 8; i++) tail[tail_blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    apikeyd_sha256_blocks(state, tail, tail_blocks);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)state[i];
    }
}

void apikeyd_hmac_sha256(const uint32_t inner[8], const uint32_t outer[8], const uint8_t *message, size_t length,
                         uint8_t code[32]) {
    uint32_t state[8];
    uint8_t digest[32];
    memcpy(state, inner, sizeof state);
    apikeyd_sha256_finish(state, message, length, 64, digest);
    memcpy(state, outer, sizeof state);
    apikeyd_sha256_finish(state, digest, 32, 64, code);
}

#else

int apikeyd_sha256_accelerated(void) { return 0; }
void apikeyd_hmac_sha256(const uint32_t inner[8], const uint32_t outer[8], const uint8_t *message, size_t length,
                         uint8_t code[32]) {
    (void)inner, (void)outer, (void)message, (void)length, (void)code;
}
void apikeyd_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    (void)state, (void)data, (void)blocks;
}
void apikeyd_sha256_finish(uint32_t state[8], const uint8_t *data, size_t length, uint64_t prefix_bytes,
                           uint8_t digest[32]) {
    (void)state, (void)data, (void)length, (void)prefix_bytes, (void)digest;
}

#endif
