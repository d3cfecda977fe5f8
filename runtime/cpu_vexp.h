/* cpu_vexp.h — exp over a short float array, written so that GCC vectorises it (glibc's expf is scalar, and the
 * scan's exp(delta A) was a third of a tiny model's cpu step). Cody-Waite reduction by ln 2 and Cephes' degree-6
 * polynomial; 2^n applied in two halves so that subnormal results round once; NaN stays NaN, overflow gives inf.
 * Relative error at most 1.4 ulp against exp() in double (tests/test_ops.c sweeps the float range). The file
 * including it must be compiled with -fno-trapping-math, or the clamps stay branches and nothing vectorises. */
#pragma once
#include <stdint.h>

static inline void vmc_vexpf(const float *x, float *y, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        const float v = x[i];
        float c = v == v ? v : 0.f;            /* NaN: any finite value (no UB converting it), returned as v below */
        c = c > 88.8f ? 88.8f : c;             /* beyond: inf (2^128 p), or 0 below -104 */
        c = c < -104.f ? -104.f : c;
        const float fn = (c * 1.44269504088896341f + 12582912.f) - 12582912.f;   /* round(c / ln 2) */
        const float r = (c - fn * 0.693359375f) + fn * 2.12194440e-4f;            /* c - fn ln 2, |r| <= ln2/2 */
        const float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                           4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * (r * r) + r + 1.0f;
        const int32_t k = (int32_t)fn, k1 = k / 2, k2 = k - k1;   /* k in [-150, 128]: both halves normal scales */
        const union { uint32_t i; float f; } s1 = {.i = (uint32_t)(k1 + 127) << 23}, s2 = {.i = (uint32_t)(k2 + 127) << 23};
        y[i] = v == v ? p * s1.f * s2.f : v;
    }
}
