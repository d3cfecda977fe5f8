/* test_init.c — Philox known-answer vectors, RNG determinism, drop-mask and randperm behaviour, and the
 * parameter initialisers: statistics (mean / std / bounds) and exact tables (sincos, s4d, block-causal mask). */
#include "cpu_check.h"
#include "init.h"

#define I64(x) ((int64_t)(x))

static void philox_kat(void) {   /* Random123 kat_vectors, philox4x32_10 */
    struct { uint64_t seed, key, a, b; uint32_t want[4]; } kat[] = {
        {0, 0, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {~0ull, ~0ull, 0xffffffffu, 0xffffffffu, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x243f6a88u, 0x85a308d3u, {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (size_t k = 0; k < COUNTOF(kat); k++) {
        RngBlock r = rng_philox(kat[k].seed, kat[k].key, kat[k].a, kat[k].b);
        CHECK(!memcmp(r.x, kat[k].want, sizeof r.x), "philox KAT %zu: %08x %08x %08x %08x", k, r.x[0], r.x[1], r.x[2], r.x[3]);
    }
    printf("ok   philox4x32-10 known-answer vectors (%zu)\n", COUNTOF(kat));
    CHECK(rng_uniform(0) == 0.0f && rng_uniform(0xffffffffu) == 1.0f - 1.0f / 16777216.0f, "uniform range");
}

static void stats(const float *v, int64_t n, double *mean, double *std, double *lo, double *hi) {
    double s = 0, s2 = 0;
    *lo = INFINITY; *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) { s += v[i]; *lo = fmin(*lo, v[i]); *hi = fmax(*hi, v[i]); }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(s2 / (double)(n - 1));
}

typedef struct Want { double mean, std, lo, hi; } Want;   /* lo/hi: bounds every value must respect */

static void check_init(const char *what, Shape s, InitKind k, double a0, double a1, double a2, Want w) {
    Graph *g = graph_new();
    ParamInfo pi = {k, {a0, a1, a2, 0}, 0, -1, 0};
    Node *p = g_param(g, "blocks.0.mixer.in_proj.weight", s, DT_F32, pi, LOC_NONE);
    int64_t n = shape_numel(s);
    float *v = malloc(sizeof(float) * (size_t)n), *v2 = malloc(sizeof(float) * (size_t)n);
    init_param(p, 42, v);
    init_param(p, 42, v2);
    bool same = !memcmp(v, v2, sizeof(float) * (size_t)n);
    init_param(p, 43, v2);
    bool differs = memcmp(v, v2, sizeof(float) * (size_t)n) != 0;
    double mean, std, lo, hi;
    stats(v, n, &mean, &std, &lo, &hi);
    double se = w.std / sqrt((double)n);          /* tolerances: 5 standard errors */
    bool pass = same && differs && fabs(mean - w.mean) <= 5 * se + 1e-12 && fabs(std - w.std) <= 0.02 * w.std &&
                lo >= w.lo && hi <= w.hi;
    printf("%s init %s %s: mean %.5f (want %.5f) std %.5f (want %.5f) range [%.4f, %.4f] within [%.4f, %.4f]%s\n",
           pass ? "ok  " : "FAIL", init_name(k), what, mean, w.mean, std, w.std, lo, hi, w.lo, w.hi,
           same && differs ? "" : " (not deterministic per seed)");
    if (!pass) check_failures++;
    free(v); free(v2);
    graph_free(g);
}

static void init_statistics(void) {
    Shape big = shape_of(2, I64(400), I64(250));
    check_init("[-1,2)", big, INIT_UNIFORM, -1, 2, 0, (Want){0.5, 3 / sqrt(12.0), -1, 2});
    check_init("(0.5, 2)", big, INIT_NORMAL, 0.5, 2, 0, (Want){0.5, 2, -INFINITY, INFINITY});
    check_init("std .02", big, INIT_TRUNC_NORMAL, 0.02, -2, 2, (Want){0, 0.02, -2, 2});
    /* truncated at +-1 sigma: std = sqrt(1 - 2 phi(1) / (Phi(1) - Phi(-1))) */
    double phi1 = exp(-0.5) / sqrt(2 * M_PI), mass = erf(1 / sqrt(2.0));
    check_init("std 1 cut +-1", big, INIT_TRUNC_NORMAL, 1, -1, 1, (Want){0, sqrt(1 - 2 * phi1 / mass), -1, 1});
    double lstd = sqrt(1.0 / 768) / .87962566103423978;   /* patch_embed: fan_in 3*16*16 */
    check_init("[256,3,16,16]", shape_of(4, I64(256), I64(3), I64(16), I64(16)), INIT_LECUN_NORMAL, 0, 0, 0,
               (Want){0, sqrt(1.0 / 768), -2 * lstd, 2 * lstd});
    double xb = sqrt(6.0 / (512 + 1024));
    check_init("[512,1024]", shape_of(2, I64(512), I64(1024)), INIT_XAVIER_UNIFORM, 0, 0, 0, (Want){0, xb / sqrt(3.0), -xb, xb});
    double kb = sqrt(2.0 / 6) * sqrt(3.0 / 256) * 0.5;
    check_init("a=sqrt5 scale .5 [256,256]", shape_of(2, I64(256), I64(256)), INIT_KAIMING_UNIFORM, sqrt(5), 0.5, 0,
               (Want){0, kb / sqrt(3.0), -kb, kb});
    check_init("[400,100]", shape_of(2, I64(400), I64(100)), INIT_TORCH_LINEAR, 0, 0, 0, (Want){0, 0.1 / sqrt(3.0), -0.1, 0.1});
    check_init("[4000,1,4]", shape_of(3, I64(4000), I64(1), I64(4)), INIT_TORCH_CONV, 0, 0, 0, (Want){0, 0.5 / sqrt(3.0), -0.5, 0.5});
}

static void dt_bias(void) {
    Graph *g = graph_new();
    ParamInfo pi = {INIT_DT_BIAS, {0.001, 0.1, 1e-4, 0}, 0, -1, 0};
    int64_t n = 20000;
    Node *p = g_param(g, "dt_proj.bias", shape_of(1, n), DT_F32, pi, LOC_NONE);
    float *v = malloc(sizeof(float) * (size_t)n);
    init_param(p, 1, v);
    double lo = INFINITY, hi = -INFINITY, ml = 0;
    for (int64_t i = 0; i < n; i++) {
        double dt = log1p(exp((double)v[i]));     /* softplus inverts the init */
        lo = fmin(lo, dt); hi = fmax(hi, dt); ml += log(dt) / (double)n;
    }
    double want = 0.5 * (log(0.001) + log(0.1)), se = (log(0.1) - log(0.001)) / sqrt(12.0 * (double)n);
    bool pass = lo >= 0.001 * (1 - 1e-5) && hi <= 0.1 * (1 + 1e-5) && fabs(ml - want) < 5 * se;
    printf("%s init dt_bias: softplus(bias) in [%.5f, %.5f], mean ln dt %.4f (want %.4f)\n", pass ? "ok  " : "FAIL", lo, hi, ml, want);
    if (!pass) check_failures++;
    free(v);
    graph_free(g);
}

static void exact_tables(void) {
    Graph *g = graph_new();
    ParamInfo s4 = {INIT_S4D_REAL, {0}, 0, -1, 0}, sc = {INIT_SINCOS_2D, {2, 2, 0, 0}, 0, -1, 0};
    ParamInfo bc = {INIT_BLOCK_CAUSAL, {2, 0, 0, 0}, 0, -1, 0};
    Node *a = g_param(g, "A_log", shape_of(2, I64(3), I64(16)), DT_F32, s4, LOC_NONE);
    Node *pe = g_param(g, "pos_embed", shape_of(3, I64(1), I64(4), I64(8)), DT_F32, sc, LOC_NONE);
    Node *m = g_param(g, "mask", shape_of(2, I64(4), I64(4)), DT_F32, bc, LOC_NONE);
    float va[48], vp[32], vm[16];
    init_param(a, 0, va);
    init_param(pe, 0, vp);
    init_param(m, 0, vm);
    for (int d = 0; d < 3; d++)
        for (int k = 0; k < 16; k++) CHECK(va[d * 16 + k] == (float)log(k + 1.0), "s4d A_log[%d,%d] = %g", d, k, va[d * 16 + k]);
    /* gh = gw = 2, D = 8: Q = 2, omega = [1, 1/100]; row n: column c = n % 2 first, then row r = n / 2 */
    for (int n = 0; n < 4; n++) {
        double c = n % 2, r = n / 2;
        double want[8] = {sin(c), sin(c / 100), cos(c), cos(c / 100), sin(r), sin(r / 100), cos(r), cos(r / 100)};
        for (int k = 0; k < 8; k++) CHECK(fabs(vp[n * 8 + k] - want[k]) < 1e-6, "sincos[%d,%d] = %g, want %g", n, k, vp[n * 8 + k], want[k]);
    }
    float wm[16] = {0, 0, -INFINITY, -INFINITY, 0, 0, -INFINITY, -INFINITY, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!memcmp(vm, wm, sizeof vm), "block_causal(4, 2) table");
    printf("ok   init s4d_real, sincos_2d (column first), block_causal: exact tables\n");
    graph_free(g);
    double fi, fo;
    init_fans(shape_of(4, I64(192), I64(3), I64(16), I64(16)), &fi, &fo);
    CHECK(fi == 768 && fo == 192 * 256, "fans %g %g", fi, fo);
    for (double x = -3; x <= 3; x += 0.25) CHECK(fabs(init_erfinv(erf(x)) - x) < 1e-9 * fmax(1, fabs(x)), "erfinv(erf(%g))", x);
}

static void random_ops(void) {
    Graph *g = graph_new();
    Node *mask = g_drop_mask(g, shape_of(3, I64(4000), I64(1), I64(1)), 0.25, 9, LOC_NONE);
    Node *perm = g_randperm(g, 50, 10, LOC_NONE);
    Node *keep[2] = {mask, perm};
    Exec *e = cpu_exec_new(g, keep, 2);
    static float m1[4000], m2[4000];
    int32_t p1[50], p2[50], p3[50];
    exec_run(e, &(StepInfo){5, 1});
    exec_read(e, mask, m1, sizeof m1);
    exec_read(e, perm, p1, sizeof p1);
    exec_run(e, &(StepInfo){5, 2});
    exec_read(e, mask, m2, sizeof m2);
    exec_read(e, perm, p2, sizeof p2);
    exec_run(e, &(StepInfo){5, 1});
    exec_read(e, perm, p3, sizeof p3);
    int kept = 0, diff = 0;
    bool values = true;
    for (int i = 0; i < 4000; i++) {
        kept += m1[i] != 0;
        diff += (m1[i] != 0) != (m2[i] != 0);
        values &= m1[i] == 0 || fabsf(m1[i] - 1 / 0.75f) < 1e-6f;
        bool want = rng_uniform(rng_philox(5, 9, 1, (uint64_t)i).x[0]) >= 0.25f;
        values &= (m1[i] != 0) == want;
    }
    CHECK(values, "drop mask values are 0 or 1/(1-p) and follow philox(seed, key, (step, b))");
    CHECK(fabs(kept / 4000.0 - 0.75) < 0.03 && diff > 1000, "drop mask keep %d / 4000, %d differ between steps", kept, diff);
    bool seen[50] = {0}, isperm = true;
    for (int i = 0; i < 50; i++) { isperm &= p1[i] >= 0 && p1[i] < 50 && !seen[p1[i]]; if (p1[i] >= 0 && p1[i] < 50) seen[p1[i]] = true; }
    CHECK(isperm && memcmp(p1, p2, sizeof p1) && !memcmp(p1, p3, sizeof p1), "randperm: a permutation, new each step, same for the same step");
    printf("ok   drop_mask: kept %.3f (p 0.25), values 1/(1-p); randperm: permutation, fresh per step, reproducible\n", kept / 4000.0);
    exec_free(e);
    graph_free(g);
}

int main(void) {
    philox_kat();
    init_statistics();
    dt_bias();
    exact_tables();
    random_ops();
    printf("%s: %d failure(s)\n", check_failures ? "FAILED" : "PASSED", check_failures);
    return check_failures ? 1 : 0;
}
