/* init.c — parameter initialisers: PyTorch / timm / Mamba / MAE conventions, driven by the counter RNG.
 * The args of each InitKind are documented in init.h. */
#include "init.h"
#include "rng.h"
#include <math.h>

void init_fans(Shape s, double *fan_in, double *fan_out) {
    if (s.ndim == 0) { *fan_in = *fan_out = 1; return; }
    if (s.ndim == 1) { *fan_in = *fan_out = (double)s.d[0]; return; }
    double field = 1;
    for (int k = 2; k < s.ndim; k++) field *= (double)s.d[k];
    *fan_in = (double)s.d[1] * field;
    *fan_out = (double)s.d[0] * field;
}

/* Initial guess (Giles 2010, single precision) refined by Newton steps on erf. */
double init_erfinv(double x) {
    if (x <= -1) return -INFINITY;
    if (x >= 1) return INFINITY;
    double w = -log((1.0 - x) * (1.0 + x)), p;
    if (w < 5.0) {
        w -= 2.5;
        p = 2.81022636e-08;
        p = 3.43273939e-07 + p * w; p = -3.5233877e-06 + p * w; p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w; p = -0.00125372503 + p * w; p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w; p = 1.50140941 + p * w;
    } else {
        w = sqrt(w) - 3.0;
        p = -0.000200214257;
        p = 0.000100950558 + p * w; p = 0.00134934322 + p * w; p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w; p = -0.0076224613 + p * w; p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w; p = 2.83297682 + p * w;
    }
    double y = p * x;
    for (int k = 0; k < 3; k++) {        /* f(y) = erf(y) - x, f' = 2/sqrt(pi) exp(-y^2) */
        double d = 1.1283791670955126 * exp(-y * y);
        if (d == 0) break;
        y -= (erf(y) - x) / d;
    }
    return y;
}

static double norm_cdf(double x) { return 0.5 * (1.0 + erf(x / sqrt(2.0))); }

static void fill_uniform(uint64_t seed, uint64_t key, float *out, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) {
        RngBlock r = rng_philox(seed, key, (uint64_t)i, (uint64_t)i >> 32);
        out[i] = (float)(lo + (hi - lo) * rng_uniform(r.x[0]));
    }
}

static void fill_normal(uint64_t seed, uint64_t key, float *out, int64_t n, double mean, double std) {
    for (int64_t i = 0; i < n; i++) {
        RngBlock r = rng_philox(seed, key, (uint64_t)i, (uint64_t)i >> 32);
        out[i] = (float)(mean + std * rng_normal(r.x[0], r.x[1]));
    }
}

/* timm trunc_normal_: uniform on [cdf(lo), cdf(hi)], inverse CDF, clamp to [lo, hi]. */
static void fill_trunc_normal(uint64_t seed, uint64_t key, float *out, int64_t n, double std, double lo, double hi) {
    double l = norm_cdf(lo / std), u = norm_cdf(hi / std);
    for (int64_t i = 0; i < n; i++) {
        RngBlock r = rng_philox(seed, key, (uint64_t)i, (uint64_t)i >> 32);
        double v = 2.0 * (l + (u - l) * rng_uniform(r.x[0])) - 1.0;
        double t = std * sqrt(2.0) * init_erfinv(v);
        out[i] = (float)(t < lo ? lo : t > hi ? hi : t);
    }
}

static void fill_dt_bias(uint64_t seed, uint64_t key, float *out, int64_t n, const double *a) {
    double lmin = log(a[0]), lmax = log(a[1]);
    for (int64_t i = 0; i < n; i++) {
        RngBlock r = rng_philox(seed, key, (uint64_t)i, (uint64_t)i >> 32);
        double dt = exp(rng_uniform(r.x[0]) * (lmax - lmin) + lmin);
        if (dt < a[2]) dt = a[2];
        out[i] = (float)(dt + log(-expm1(-dt)));        /* softplus^-1(dt) */
    }
}

/* MAE 2-D sin-cos table in float32, column encoding first: [sin(c w), cos(c w), sin(r w), cos(r w)]. */
static void fill_sincos(const Node *p, float *out) {
    int64_t gh = (int64_t)p->param->args[0], gw = (int64_t)p->param->args[1];
    int64_t D = p->shape.d[p->shape.ndim - 1], rows = shape_numel(p->shape) / D, Q = D / 4;
    bool quarter = D % 4 == 0;
    ASSERT(quarter, "sincos_2d: dim %lld is not a multiple of 4", (long long)D);
    ASSERT(rows <= gh * gw, "sincos_2d: %lld rows for a %lldx%lld grid", (long long)rows, (long long)gh, (long long)gw);
    for (int64_t n = 0; n < rows; n++) {
        float pos[2] = {(float)(n % gw), (float)(n / gw)};
        for (int h = 0; h < 2; h++)
            for (int64_t k = 0; k < Q; k++) {
                float omega = 1.0f / powf(10000.0f, (float)k / (float)Q);
                float x = pos[h] * omega;
                out[n * D + h * 2 * Q + k] = sinf(x);
                out[n * D + h * 2 * Q + Q + k] = cosf(x);
            }
    }
}

static void fill_block_causal(const Node *p, float *out) {
    int64_t block = (int64_t)p->param->args[0];     /* the DSL checks n against the shape and passes block only */
    ASSERT(p->shape.ndim >= 2 && block > 0, "block_causal needs [.., Q, S] and block > 0");
    int64_t S = p->shape.d[p->shape.ndim - 1], Q = p->shape.d[p->shape.ndim - 2], n = shape_numel(p->shape);
    for (int64_t i = 0; i < n; i++) {
        int64_t s = i % S, q = (i / S) % Q;
        out[i] = s / block <= q / block ? 0.0f : -INFINITY;
    }
}

void init_param(const Node *p, uint64_t seed, float *out) {
    ASSERT(p->op == OP_PARAM && p->param, "init_param on a non-parameter");
    const double *a = p->param->args;
    int64_t n = shape_numel(p->shape);
    uint64_t key = rng_name_key(p->name);
    double fi, fo;
    init_fans(p->shape, &fi, &fo);
    switch (p->param->init) {
    case INIT_ZEROS: for (int64_t i = 0; i < n; i++) out[i] = 0; return;
    case INIT_ONES: for (int64_t i = 0; i < n; i++) out[i] = 1; return;
    case INIT_FILL: for (int64_t i = 0; i < n; i++) out[i] = (float)a[0]; return;
    case INIT_UNIFORM: fill_uniform(seed, key, out, n, a[0], a[1]); return;
    case INIT_NORMAL: fill_normal(seed, key, out, n, a[0], a[1]); return;
    case INIT_TRUNC_NORMAL: fill_trunc_normal(seed, key, out, n, a[0], a[1], a[2]); return;
    case INIT_LECUN_NORMAL: {
        double std = sqrt(1.0 / fi) / .87962566103423978;
        fill_trunc_normal(seed, key, out, n, std, -2 * std, 2 * std);
        return;
    }
    case INIT_XAVIER_UNIFORM: {
        double b = sqrt(6.0 / (fi + fo));
        fill_uniform(seed, key, out, n, -b, b);
        return;
    }
    case INIT_KAIMING_UNIFORM: case INIT_TORCH_LINEAR: case INIT_TORCH_CONV: {
        bool own = p->param->init == INIT_KAIMING_UNIFORM;
        double ka = own ? a[0] : sqrt(5.0), scale = own ? a[1] : 1.0;
        double b = sqrt(2.0 / (1.0 + ka * ka)) * sqrt(3.0 / fi) * scale;
        fill_uniform(seed, key, out, n, -b, b);
        return;
    }
    case INIT_DT_BIAS: fill_dt_bias(seed, key, out, n, a); return;
    case INIT_S4D_REAL: {
        int64_t N = p->shape.d[p->shape.ndim - 1];
        for (int64_t i = 0; i < n; i++) out[i] = (float)log((double)(i % N + 1));
        return;
    }
    case INIT_SINCOS_2D: fill_sincos(p, out); return;
    case INIT_BLOCK_CAUSAL: fill_block_causal(p, out); return;
    case INIT_COUNT_: break;
    }
    UNREACHABLE();
}
