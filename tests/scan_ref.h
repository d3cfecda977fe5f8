/* scan_ref.h — double-precision CPU references for the selective scan (forward, backward) and the causal depthwise
 * conv1d (forward, backward), written straight from ARM_SPEC §2.3 with the full state history kept (no chunking),
 * so they share no structure with the kernels they check. Header-only; compiles as C11 and C++17. */
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64* + Box-Muller: the same inputs on every platform for a given seed. */
typedef struct RefRng { uint64_t s; } RefRng;
static double ref_uniform(RefRng *r) {
    r->s ^= r->s >> 12; r->s ^= r->s << 25; r->s ^= r->s >> 27;
    return (double)((r->s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}
static double ref_normal(RefRng *r) {
    double a = ref_uniform(r), b = ref_uniform(r);
    return sqrt(-2.0 * log(a + 1e-300)) * cos(6.283185307179586 * b);
}
/* Round-to-nearest-even to bf16 and back, as the kernels' bf16 storage sees the value. */
static float ref_round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* Inputs in Mamba's ranges: u, Bm, Cm, z, dout ~ N(0,1); delta ~ N(0,1) with 1% at 25 (past softplus's
 * threshold); delta_bias = softplus^-1(dt), dt log-uniform in [1e-3, 1e-1] (ARM_SPEC §2.4); A_log = ln(n+1) plus
 * noise; D ~ 1 + N(0, 0.1). */
static void ref_scan_inputs(int B, int L, int D, int N, uint64_t seed, float *u, float *delta, float *A_log,
                            float *Bm, float *Cm, float *Dv, float *bias, float *z, float *dout) {
    RefRng r = {seed * 0x9e3779b97f4a7c15ULL + 1};
    size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N;
    for (size_t i = 0; i < BLD; i++) {
        u[i] = (float)ref_normal(&r);
        delta[i] = ref_uniform(&r) < 0.01 ? 25.f : (float)ref_normal(&r);
        z[i] = (float)ref_normal(&r);
        dout[i] = (float)ref_normal(&r);
    }
    for (size_t i = 0; i < BLN; i++) { Bm[i] = (float)ref_normal(&r); Cm[i] = (float)ref_normal(&r); }
    for (int d = 0; d < D; d++) {
        double dt = exp(ref_uniform(&r) * (log(0.1) - log(0.001)) + log(0.001));
        bias[d] = (float)(dt + log(-expm1(-dt)));
        Dv[d] = (float)(1.0 + 0.1 * ref_normal(&r));
        for (int n = 0; n < N; n++) A_log[d * N + n] = (float)(log(n + 1.0) + 0.1 * ref_normal(&r));
    }
}

static double ref_softplus(double x) { return x <= 20.0 ? log1p(exp(x)) : x; }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* u, delta, z [B,L,D]; A_log [D,N]; Bm, Cm [B,L,N]; Dv, bias [D] -> y [B,L,D] (gated; z NULL: ungated). */
static void ref_scan_fwd(int B, int L, int D, int N, const float *u, const float *delta, const float *A_log,
                         const float *Bm, const float *Cm, const float *Dv, const float *bias, const float *z,
                         double *y) {
    double *h = (double *)calloc((size_t)N, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            memset(h, 0, sizeof(double) * (size_t)N);
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * D + d, r = ((size_t)b * L + t) * N;
                double dl = ref_softplus((double)delta[i] + bias[d]), acc = (double)Dv[d] * u[i];
                for (int n = 0; n < N; n++) {
                    double A = -exp((double)A_log[d * N + n]);
                    h[n] = exp(dl * A) * h[n] + dl * Bm[r + n] * u[i];
                    acc += Cm[r + n] * h[n];
                }
                y[i] = z ? acc * z[i] * ref_sigmoid(z[i]) : acc;
            }
        }
    free(h);
}

/* Same inputs + dout [B,L,D] -> packed [du | ddelta | dA_log | dBm | dCm | dD | ddelta_bias | dz] (g_scan_bwd;
 * z NULL: ungated, no dz). */
static void ref_scan_bwd(int B, int L, int D, int N, const float *u, const float *delta, const float *A_log,
                         const float *Bm, const float *Cm, const float *Dv, const float *bias, const float *z,
                         const float *dout, double *packed) {
    size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N;
    double *du = packed, *ddl = du + BLD, *dAl = ddl + BLD, *dB = dAl + (size_t)D * N, *dC = dB + BLN;
    double *dD = dC + BLN, *dbias = dD + D, *dz = dbias + D;
    memset(packed, 0, sizeof(double) * ((z ? 3 : 2) * BLD + 2 * BLN + (size_t)D * N + 2 * (size_t)D));
    double *h = (double *)calloc((size_t)(L + 1) * N, sizeof(double));   /* h[t+1][n] = h_t; h[0] = 0 */
    double *dh = (double *)calloc((size_t)N, sizeof(double)), *A = (double *)calloc((size_t)N, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            for (int n = 0; n < N; n++) A[n] = -exp((double)A_log[d * N + n]);
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * D + d, r = ((size_t)b * L + t) * N;
                double dl = ref_softplus((double)delta[i] + bias[d]);
                for (int n = 0; n < N; n++)
                    h[(t + 1) * N + n] = exp(dl * A[n]) * h[t * N + n] + dl * Bm[r + n] * u[i];
            }
            memset(dh, 0, sizeof(double) * (size_t)N);   /* carries a_{t+1} * dh_{t+1} */
            for (int t = L - 1; t >= 0; t--) {
                size_t i = ((size_t)b * L + t) * D + d, r = ((size_t)b * L + t) * N;
                double x = (double)delta[i] + bias[d], dl = ref_softplus(x), dy = dout[i], ddelta = 0;
                if (z) {
                    double sz = ref_sigmoid(z[i]), y = (double)Dv[d] * u[i];
                    for (int n = 0; n < N; n++) y += Cm[r + n] * h[(t + 1) * N + n];
                    dy = dout[i] * z[i] * sz;
                    dz[i] = dout[i] * y * sz * (1 + z[i] * (1 - sz));
                }
                dD[d] += dy * u[i];
                du[i] = dy * Dv[d];
                for (int n = 0; n < N; n++) {
                    double a = exp(dl * A[n]), g = dy * Cm[r + n] + dh[n], hp = h[t * N + n];
                    dC[r + n] += dy * h[(t + 1) * N + n];
                    dB[r + n] += g * dl * u[i];
                    du[i] += g * dl * Bm[r + n];
                    ddelta += g * (A[n] * a * hp + Bm[r + n] * u[i]);
                    dAl[d * N + n] += g * hp * a * dl * A[n];   /* dA * dA/dA_log, dA/dA_log = A */
                    dh[n] = a * g;
                }
                ddl[i] = x <= 20.0 ? ddelta * ref_sigmoid(x) : ddelta;
                dbias[d] += ddl[i];
            }
        }
    free(h); free(dh); free(A);
}

/* x [B,L,D], w [D,K], bias [D] -> y [B,L,D]; causal (zero left padding), optional SiLU. */
static void ref_conv_fwd(int B, int L, int D, int K, const float *x, const float *w, const float *bias, int silu,
                         double *y) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) {
                double acc = bias[d];
                for (int k = 0; k < K; k++) {
                    int s = t - K + 1 + k;
                    if (s >= 0) acc += (double)w[d * K + k] * x[((size_t)b * L + s) * D + d];
                }
                y[((size_t)b * L + t) * D + d] = silu ? acc * ref_sigmoid(acc) : acc;
            }
}

static void ref_conv_bwd(int B, int L, int D, int K, const float *dy, const float *x, const float *w, double *dx,
                         double *dw, double *db) {
    memset(dx, 0, sizeof(double) * (size_t)B * L * D);
    memset(dw, 0, sizeof(double) * (size_t)D * K);
    memset(db, 0, sizeof(double) * (size_t)D);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) {
                double g = dy[((size_t)b * L + t) * D + d];
                db[d] += g;
                for (int k = 0; k < K; k++) {
                    int s = t - K + 1 + k;
                    if (s < 0) continue;
                    dx[((size_t)b * L + s) * D + d] += g * w[d * K + k];
                    dw[d * K + k] += g * x[((size_t)b * L + s) * D + d];
                }
            }
}

/* ||a - ref|| / ||ref|| over n values (a in float); NaN or Inf in a gives +Inf. */
static double rel_l2(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
