/* rng.h — counter-based randomness: Philox4x32-10 and the derived uniform/normal/permutation draws.
 * Everything is a pure function of (seed, key, counter) in uint32 arithmetic with no globals, so the same
 * source pastes into a CUDA kernel (add __device__) and reproduces the cpu backend's bits exactly.
 * Mapping used everywhere: philox key = (lo32(seed), hi32(seed)); counter = (lo32(a), lo32(b), lo32(key),
 * hi32(key)). Users: DROP_MASK (a = step, b = element), RANDPERM (a = step, b = i), parameter init
 * (key = rng_name_key(name), a = lo32(element), b = hi32(element)). */
#pragma once
#include <math.h>
#include <stdint.h>

typedef struct RngBlock { uint32_t x[4]; } RngBlock;

static inline uint32_t rng_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds (Salmon et al., SC'11), the constants of Random123 and curand. */
static inline RngBlock rng_philox(uint64_t seed, uint64_t key, uint64_t a, uint64_t b) {
    uint32_t c0 = (uint32_t)a, c1 = (uint32_t)b, c2 = (uint32_t)key, c3 = (uint32_t)(key >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = rng_mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = rng_mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    RngBlock out = {{c0, c1, c2, c3}};
    return out;
}

/* Uniform in [0, 1): the top 24 bits, exactly representable in float. */
static inline float rng_uniform(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Standard normal by Box-Muller from two words: sqrt(-2 ln(1 - u0)) * cos(2 pi u1); 1 - u0 is in (0, 1]. */
static inline double rng_normal(uint32_t x0, uint32_t x1) {
    double u0 = rng_uniform(x0), u1 = rng_uniform(x1);
    return sqrt(-2.0 * log(1.0 - u0)) * cos(6.283185307179586 * u1);
}

/* Uniform integer in [0, n) by multiply-shift (Lemire; bias < n / 2^32, irrelevant at our sizes). */
static inline uint32_t rng_below(uint32_t x, uint32_t n) { return (uint32_t)(((uint64_t)x * n) >> 32); }

/* Drop-path keep decision for one element: kept iff u >= p. */
static inline int rng_keep(uint64_t seed, uint64_t key, uint64_t step, uint64_t elem, float p) {
    return rng_uniform(rng_philox(seed, key, step, elem).x[0]) >= p;
}

/* Fisher-Yates: for i = n-1 .. 1, swap perm[i] with perm[j], j = below(philox(seed, key, step, i).x0, i + 1). */
static inline void rng_randperm(uint64_t seed, uint64_t key, uint64_t step, int32_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t j = rng_below(rng_philox(seed, key, step, (uint64_t)i).x[0], (uint32_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* Key of a parameter: FNV-1a of its name (the same as util.h's hash_bytes from HASH_SEED). */
static inline uint64_t rng_name_key(const char *name) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) { h ^= *p; h *= 1099511628211ULL; }
    return h;
}
