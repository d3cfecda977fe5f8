/* data_rng.c — counter-keyed random numbers for the loader: xoshiro256** seeded from splitmix64 of a key, so a
 * sample's randomness depends only on (seed, epoch, index), never on which thread or when it runs. */
#include "data.h"
#include <math.h>

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

DataRng drng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = seed;
    x = splitmix(&x) ^ a;
    x = splitmix(&x) ^ b;
    x = splitmix(&x) ^ c;
    DataRng r;
    for (int k = 0; k < 4; k++) r.s[k] = splitmix(&x);
    return r;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t drng_u64(DataRng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

double drng_uniform(DataRng *r) { return (double)(drng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
double drng_range(DataRng *r, double lo, double hi) { return lo + (hi - lo) * drng_uniform(r); }

int64_t drng_int(DataRng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    if (span == 0) return lo;
    uint64_t lim = UINT64_MAX - UINT64_MAX % span, v;   /* rejection: no modulo bias */
    do v = drng_u64(r); while (v >= lim);
    return lo + (int64_t)(v % span);
}

double drng_normal(DataRng *r) {
    double u = 1.0 - drng_uniform(r), v = drng_uniform(r);   /* u in (0, 1]: log is finite */
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Marsaglia-Tsang; a < 1 uses Gamma(a+1) * U^(1/a). */
static double gamma_draw(DataRng *r, double a) {
    if (a < 1.0) return gamma_draw(r, a + 1.0) * pow(1.0 - drng_uniform(r), 1.0 / a);
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = drng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - drng_uniform(r);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

double drng_beta(DataRng *r, double a, double b) {
    double x = gamma_draw(r, a), y = gamma_draw(r, b);
    return x + y > 0 ? x / (x + y) : 0.5;
}
