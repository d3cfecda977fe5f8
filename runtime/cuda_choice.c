/* cuda_choice.c — chooses, per launch of vmc's own kernel that stands for several launches before it (program.h
 * gemm_one_launch: SwiGLU's gate with its two products and SwiGLU's backward, codegen/program_swiglu.c; a sum of two
 * products, codegen/program_pair.c), between it and those parts (cuBLASLt GEMMs and generated kernels): the one
 * kernel where it computes what they compute, on random operands in the launch's own buffers (before the first step:
 * nothing has been computed into them yet), and takes less time. Launches of one shape share the choice. */
#include "cuda_impl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The launches one launch k stands for, in order: the products' GEMMs, then the gate's kernel (the backward: dh's
 * GEMM, then the gradients' kernel; a pair: its two GEMMs); -1 after them. */
static void parts_of(const Cuda *c, int k, int *parts) {
    const GemmDesc *d = &c->p->launches[k].gemm;
    const int want = d->backward || d->pair ? 2 : 3;
    int n = 0;
    for (int j = 0; j < k && n < want; j++)
        if (c->p->launches[j].choice == c->p->launches[k].choice) parts[n++] = j;
    ASSERT(n == want && c->p->launches[parts[n - 1]].kind == (d->pair ? LK_GEMM : LK_KERNEL),
           "one launch %d: %d parts", k, n);
    parts[n] = -1;
}

static void run_parts(Cuda *c, const int *parts) {
    for (int n = 0; parts[n] >= 0; n++) {
        const Launch *g = &c->p->launches[parts[n]];
        if (g->kind == LK_GEMM) cx_gemm_launch(c, parts[n], 0);
        else cx_launch_kernel(c, c->fn[parts[n]], g->grid, g->block, g->smem, 0, c->params[parts[n]]);
    }
}

/* Random bf16 values in [-1, 1) for n elements at dst (or f32 where f32). */
static void fill_random(Cuda *c, CUdeviceptr dst, size_t n, bool f32, uint64_t seed) {
    void *h = xmalloc(n * (f32 ? 4 : 2));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const float v = (float)((double)(seed >> 11) / 4503599627370496.0 - 1.0);
        if (f32) ((float *)h)[i] = v;
        else ((uint16_t *)h)[i] = f32_to_bf16(v);
    }
    copy_in(c, dst, h, n * (f32 ? 4 : 2));
    free(h);
}

/* The largest difference of n values got from want over want's largest magnitude (infinite where either is NaN);
 * bf16 values where bf16, else f32. */
static double relative_diff(const void *want, const void *got, size_t n, bool bf16) {
    double big = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = bf16 ? bf16_to_f32(((const uint16_t *)want)[i]) : ((const float *)want)[i];
        const double y = bf16 ? bf16_to_f32(((const uint16_t *)got)[i]) : ((const float *)got)[i];
        if (fabs(x) > big) big = fabs(x);
        if (!(fabs(x - y) <= diff)) diff = isnan(y) || isnan(x) ? INFINITY : fabs(x - y);
    }
    return big > 0 ? diff / big : diff;
}

/* h as the parts compute it and as launch k does, on the first and the last SAMPLE_ROWS rows (random operands
 * there; at ARM-B inference's 50,432 rows the whole h would take longer to copy and compare than the step): the
 * largest difference over the largest value. */
enum { SAMPLE_ROWS = 512 };
static double disagreement(Cuda *c, int k, const int *parts) {
    const GemmDesc *d = &c->p->launches[k].gemm;
    const int64_t rows = d->M < SAMPLE_ROWS ? d->M : SAMPLE_ROWS, last = d->M - rows;   /* (the ranges may meet) */
    const size_t arow = (size_t)d->lda, n = (size_t)(rows * d->N);
    fill_random(c, addr(c, d->a), (size_t)((rows - 1) * d->lda + d->K), false, 1);
    fill_random(c, addr(c, d->a) + 2 * (size_t)last * arow, (size_t)((rows - 1) * d->lda + d->K), false, 6);
    fill_random(c, addr(c, d->b), (size_t)((d->N - 1) * d->ldb + d->K), false, 2);
    fill_random(c, addr(c, d->b2), (size_t)((d->N - 1) * d->ldb + d->K), false, 3);
    fill_random(c, addr(c, d->bias1), (size_t)d->N, true, 4);
    fill_random(c, addr(c, d->bias2), (size_t)d->N, true, 5);
    const CUdeviceptr h = addr(c, d->h), h_last = h + 2 * (size_t)(last * d->N);
    uint16_t *want = xmalloc(4 * n), *got = xmalloc(4 * n);
    run_parts(c, parts);
    copy_out(c, want, h, 2 * n);
    copy_out(c, want + n, h_last, 2 * n);
    CU_CHECK(c->cu->cuMemsetD8Async(h, 0xff, 2 * n, c->st));   /* NaN: an element not written fails */
    CU_CHECK(c->cu->cuMemsetD8Async(h_last, 0xff, 2 * n, c->st));
    cx_own_gemm_run(c, k, 0);
    copy_out(c, got, h, 2 * n);
    copy_out(c, got + n, h_last, 2 * n);
    const double e = relative_diff(want, got, 2 * n, true);
    free(want);
    free(got);
    return e;
}

/* The same for SwiGLU's backward: A, W, P1, P2 zero but on the sample rows (random there), the sums zeroed before
 * each form; G1 and G2 on those rows and both sums compared (the sums then add the sample rows alone). */
static double disagreement_bwd(Cuda *c, int k, const int *parts) {
    const GemmDesc *d = &c->p->launches[k].gemm;
    const int64_t rows = d->M < SAMPLE_ROWS ? d->M : SAMPLE_ROWS, last = d->M - rows;
    const size_t n = (size_t)(rows * d->N), mn = (size_t)(d->M * d->N), N = (size_t)d->N;
    CU_CHECK(c->cu->cuMemsetD8Async(addr(c, d->a), 0, (size_t)((d->M - 1) * d->lda + d->K) * 2, c->st));
    const BufRef in[2] = {d->p1, d->p2};
    for (int i = 0; i < 2; i++) {
        const CUdeviceptr p = addr(c, in[i]);
        CU_CHECK(c->cu->cuMemsetD8Async(p, 0, 2 * mn, c->st));
        fill_random(c, p, n, false, 11 + (uint64_t)i);
        fill_random(c, p + 2 * (size_t)(last * d->N), n, false, 13 + (uint64_t)i);
    }
    fill_random(c, addr(c, d->a), (size_t)((rows - 1) * d->lda + d->K), false, 1);
    fill_random(c, addr(c, d->a) + 2 * (size_t)(last * d->lda), (size_t)((rows - 1) * d->lda + d->K), false, 6);
    fill_random(c, addr(c, d->b), (size_t)(d->K * d->N), false, 2);
    fill_random(c, addr(c, d->bias1), N, true, 4);
    fill_random(c, addr(c, d->bias2), N, true, 5);
    const BufRef out[2] = {d->c, d->c2}, sums[2] = {d->s1, d->s2};
    uint16_t *want = xmalloc(8 * n), *got = xmalloc(8 * n);
    float *want_s = xmalloc(8 * N), *got_s = xmalloc(8 * N);
    for (int form = 0; form < 2; form++) {   /* the parts, then the one launch */
        uint16_t *g = form ? got : want;
        float *gs = form ? got_s : want_s;
        for (int i = 0; i < 2; i++) {
            CU_CHECK(c->cu->cuMemsetD8Async(addr(c, sums[i]), 0, 4 * N, c->st));
            CU_CHECK(c->cu->cuMemsetD8Async(addr(c, out[i]), 0xff, 2 * mn, c->st));   /* NaN: unwritten fails */
        }
        if (form) cx_own_gemm_run(c, k, 0);
        else run_parts(c, parts);
        for (int i = 0; i < 2; i++) {
            copy_out(c, g + 2 * i * n, addr(c, out[i]), 2 * n);
            copy_out(c, g + (2 * i + 1) * n, addr(c, out[i]) + 2 * (size_t)(last * d->N), 2 * n);
            copy_out(c, gs + i * N, addr(c, sums[i]), 4 * N);
        }
    }
    const double e = relative_diff(want, got, 4 * n, true), es = relative_diff(want_s, got_s, 2 * N, false);
    free(want); free(got); free(want_s); free(got_s);
    return e > es ? e : es;
}

/* The same for a pair (GemmDesc.pair): its four operands random on the sample rows of A and A2 (zero elsewhere, so
 * that both forms add the same products) and all of B and B2; C on those rows. The parts round the first product to
 * C's type before adding it, the one launch rounds once. */
static double disagreement_pair(Cuda *c, int k, const int *parts) {
    const GemmDesc *d = &c->p->launches[k].gemm;
    ASSERT(!d->ta, "a pair with A stored [K][M]");   /* (program_pair.c builds none: as SwiGLU's dy, [M][K]) */
    const int64_t rows = d->M < SAMPLE_ROWS ? d->M : SAMPLE_ROWS, last = d->M - rows;
    const size_t n = (size_t)(rows * d->N), es = d->c_bf16 ? 2 : 4;
    const size_t a_elems = (size_t)((d->M - 1) * d->lda + d->K), arows = (size_t)((rows - 1) * d->lda + d->K);
    const size_t b_elems = (size_t)((d->tb ? d->N : d->K) - 1) * (size_t)d->ldb + (size_t)(d->tb ? d->K : d->N);
    const BufRef as[2] = {d->a, d->a2}, bs[2] = {d->b, d->b2};
    for (int i = 0; i < 2; i++) {
        const CUdeviceptr a = addr(c, as[i]);
        CU_CHECK(c->cu->cuMemsetD8Async(a, 0, 2 * a_elems, c->st));
        fill_random(c, a, arows, false, 21 + (uint64_t)i);
        fill_random(c, a + 2 * (size_t)(last * d->lda), arows, false, 23 + (uint64_t)i);
        fill_random(c, addr(c, bs[i]), b_elems, false, 25 + (uint64_t)i);
    }
    const CUdeviceptr out = addr(c, d->c), out_last = out + es * (size_t)(last * d->N);
    char *want = xmalloc(2 * n * es), *got = xmalloc(2 * n * es);
    for (int form = 0; form < 2; form++) {   /* the parts, then the one launch */
        char *g = form ? got : want;
        CU_CHECK(c->cu->cuMemsetD8Async(out, 0xff, es * (size_t)(d->M * d->N), c->st));   /* NaN: unwritten fails */
        if (form) cx_own_gemm_run(c, k, 0);
        else run_parts(c, parts);
        copy_out(c, g, out, es * n);
        copy_out(c, g + es * n, out_last, es * n);
    }
    const double e = relative_diff(want, got, 2 * n, d->c_bf16);
    free(want);
    free(got);
    return e;
}

/* GEMM_TUNE_REPS runs of launch k by its one kernel (own) or by its parts, timed by cx_time_ms. */
typedef struct FormRun { int k; const int *parts; bool own; } FormRun;
static void form_runs(Cuda *c, void *ctx) {
    const FormRun *r = ctx;
    for (int q = 0; q < GEMM_TUNE_REPS; q++) {
        if (r->own) cx_own_gemm_run(c, r->k, 0);
        else run_parts(c, r->parts);
    }
}

/* Milliseconds for GEMM_TUNE_REPS runs of either form, after a warm-up run. */
static float time_form(Cuda *c, int k, const int *parts, bool own) {
    if (own) cx_own_gemm_run(c, k, 0);
    else run_parts(c, parts);
    FormRun r = {k, parts, own};
    return cx_time_ms(c, form_runs, &r);
}

void cx_plan_choice(Cuda *c, int k, bool tune, bool log) {
    const Launch *l = &c->p->launches[k];
    const GemmDesc *d = &l->gemm;
    bool own = c->own_gemm > 0, decided = c->own_gemm == 0 || c->own_gemm == 2;
    for (int j = 0; j < k && !decided; j++) {   /* a launch of the same shape chose already */
        const GemmDesc *e = &c->p->launches[j].gemm;
        if (c->p->launches[j].kind != LK_GEMM || !gemm_one_launch(e) || e->M != d->M || e->N != d->N || e->K != d->K ||
            e->products != d->products || e->backward != d->backward || e->pair != d->pair)
            continue;
        own = c->choice_one[c->p->launches[j].choice];
        decided = true;
    }
    if (!decided) {
        int parts[4];
        parts_of(c, k, parts);
        const double err = d->pair       ? disagreement_pair(c, k, parts)
                           : d->backward ? disagreement_bwd(c, k, parts)
                                         : disagreement(c, k, parts);
        own = err <= 1.0 / 64;   /* bf16 results of the same bf16 products: rounding apart */
        const char *them = d->pair ? "its two GEMMs" : d->backward ? "its GEMM and kernel" : "its GEMMs and gate";
        if (!own)
            fprintf(stderr, "vmc: warning: the one kernel %s disagrees with %s on random operands (largest "
                            "difference %.3g of the largest value); they run instead\n", l->name, them, err);
        if (own && tune && c->own_gemm == 1) {
            const float ms_parts = time_form(c, k, parts, false), ms_own = time_form(c, k, parts, true);
            own = ms_own < ms_parts;
            if (log)
                fprintf(stderr, "gemm tune: %s: %s %.1f us, one kernel %.1f us: %s\n", l->name, them + 4,
                        1e3 * ms_parts / GEMM_TUNE_REPS, 1e3 * ms_own / GEMM_TUNE_REPS, own ? "one kernel" : "parts");
        }
    }
    c->gemm[k].own = true;   /* (it runs only where chosen, and then as its own kernel) */
    c->choice_one[l->choice] = own;
}
