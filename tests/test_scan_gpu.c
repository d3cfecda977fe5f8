/* test_scan_gpu.c — [gpu] the opaque-op kernels and the GEMM wrapper on a real GPU against double-precision CPU
 * references, on fresh random inputs: selective scan forward/backward and conv1d forward/backward (ARM shapes,
 * f32 and bf16 storage), fused attention (both paths), cuBLASLt products (bf16 and f32, transposes, batches, bias).
 * Outputs are poisoned with NaN before each launch, so an unwritten element fails. Exits 77 (ctest skip) without a
 * usable GPU.
 * `--small`: small shapes only (for compute-sanitizer); `--profile [infer|ungated]`: one ARM-B fwd+bwd (for ncu);
 * `--bench`: scan fwd+bwd and conv1d times and achieved GB/s at ARM-B shapes, beside a device-to-device copy, and
 * the decoder attention's times; `--bench-conv`: its conv1d rows alone; `--bench-scan`: its scan rows alone. */
#include "cuda_api.h"
#include "cuda_tma.h"
#include "gemm.h"
#include "nvrtc_compile.h"
#include "scan_ref.h"
#include "template.h"
#include "packed_copy.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const CudaApi *cu;
static int arch;
static CUstream stream;
static int failures;

/* ---------------------------------------------------------------- device helpers */
typedef struct Kernel { CUmodule mod; CUfunction fn; KernelLaunch l; } Kernel;

static Kernel load_kernel_for(char *src, const KernelLaunch *l, int target) {
    Kernel k = {.l = *l};
    NvrtcBinary bin;
    char err[2048];
    if (!nvrtc_compile(src, l->name, target, NULL, 0, &bin, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    CU_CHECK(cu->cuModuleLoadData(&k.mod, bin.cubin));
    CU_CHECK(cu->cuModuleGetFunction(&k.fn, k.mod, l->name));
    if (l->smem > 48 * 1024)   /* (the attention kernels') */
        CU_CHECK(cu->cuFuncSetAttribute(k.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)l->smem));
    nvrtc_binary_free(&bin);
    free(src);
    return k;
}

static Kernel load_kernel(char *src, const KernelLaunch *l) { return load_kernel_for(src, l, arch); }

static void kernel_report(const Kernel *k) {
    int regs = 0, local = 0, smem = 0;
    CU_CHECK(cu->cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, k->fn));
    CU_CHECK(cu->cuFuncGetAttribute(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, k->fn));
    CU_CHECK(cu->cuFuncGetAttribute(&smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, k->fn));
    printf("  %-16s %3d registers, %4d B local (spills), %6d B shared\n", k->l.name, regs, local, smem);
}

/* The tensor map of parameter i of k (KernelLaunch.tma_rows): a bf16 matrix [rows][cols], rows contiguous. */
static CUtensorMap tma_arg(const Kernel *k, int i, CUdeviceptr p, int rows, int cols) {
    CUtensorMap m;
    cuda_tma_bf16(cu, &m, p, rows, cols, cols, k->l.tma_rows[i]);
    return m;
}

/* Zeroes the ranges the kernel accumulates into, then launches; bufs[i] is the pointer passed as parameter i. */
static void launch(const Kernel *k, void **args, const CUdeviceptr *bufs) {
    for (int z = 0; z < k->l.nzero; z++)
        CU_CHECK(cu->cuMemsetD8Async(bufs[k->l.zero[z].param] + k->l.zero[z].offset, 0, k->l.zero[z].bytes, stream));
    CU_CHECK(cu->cuLaunchKernel(k->fn, k->l.grid[0], k->l.grid[1], k->l.grid[2], k->l.block[0], k->l.block[1],
                                k->l.block[2], k->l.smem, stream, args, NULL));
}

static void sync_check(void) { CU_CHECK(cu->cuStreamSynchronize(stream)); }

static CUdeviceptr dalloc(size_t bytes) {
    CUdeviceptr p;
    CU_CHECK(cu->cuMemAlloc(&p, bytes ? bytes : 16));
    return p;
}

/* Rounds h in place to what dtype t stores, and uploads it. */
static CUdeviceptr upload(float *h, size_t n, DType t) {
    CUdeviceptr p = dalloc(n * (size_t)dtype_size(t));
    if (t == DT_F32) {
        CU_CHECK(cu->cuMemcpyHtoD(p, h, n * 4));
        return p;
    }
    uint16_t *b = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        h[i] = ref_round_bf16(h[i]);
        uint32_t u;
        memcpy(&u, &h[i], 4);
        b[i] = (uint16_t)(u >> 16);
    }
    CU_CHECK(cu->cuMemcpyHtoD(p, b, n * 2));
    free(b);
    return p;
}

static float *download(CUdeviceptr p, size_t n, DType t) {
    float *h = malloc(n * 4);
    if (t == DT_F32) {
        CU_CHECK(cu->cuMemcpyDtoH(h, p, n * 4));
        return h;
    }
    uint16_t *b = malloc(n * 2);
    CU_CHECK(cu->cuMemcpyDtoH(b, p, n * 2));
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)b[i] << 16;
        memcpy(&h[i], &u, 4);
    }
    free(b);
    return h;
}

static void expect_close(const char *what, const char *part, const float *got, const double *ref, size_t n,
                         double tol) {
    double e = rel_l2(got, ref, n);
    bool ok = e < tol;
    printf("  %-34s %-12s rel L2 %.2e  (tol %.0e) %s\n", what, part, e, tol, ok ? "ok" : "FAIL");
    failures += !ok;
}

/* ---------------------------------------------------------------- selective scan */
typedef struct ScanData {
    ScanSpec s;
    size_t bld, bln;
    float *h[9];              /* u, delta, A_log, Bm, Cm, D, delta_bias, z, dout (rounded to their dtypes) */
    CUdeviceptr d[9], y, packed, copy;   /* copy: the packed output's bf16 mirror (s.copy_parts) */
    CUdeviceptr states;       /* the forward's chunk-start states (s.states), 0 otherwise */
} ScanData;

static ScanData scan_data(ScanSpec s, uint64_t seed) {
    ScanData x = {.s = s, .bld = (size_t)s.B * s.L * s.D, .bln = (size_t)s.B * s.L * s.N};
    size_t sizes[9] = {x.bld, x.bld, (size_t)s.D * s.N, x.bln, x.bln, (size_t)s.D, (size_t)s.D, x.bld, x.bld};
    DType types[9] = {s.u, s.delta, s.a_log, s.bc, s.bc, s.d, s.delta_bias, s.z, s.dout};
    for (int i = 0; i < 9; i++) x.h[i] = malloc(sizes[i] * 4);
    ref_scan_inputs(s.B, s.L, s.D, s.N, seed, x.h[0], x.h[1], x.h[2], x.h[3], x.h[4], x.h[5], x.h[6], x.h[7], x.h[8]);
    for (int i = 0; i < 9; i++) x.d[i] = upload(x.h[i], sizes[i], types[i]);
    x.y = dalloc(x.bld * (size_t)dtype_size(s.out));
    x.packed = dalloc(scan_bwd_numel(&s) * 4);
    x.copy = dalloc(scan_bwd_numel(&s) * 2);
    if (s.states && scan_states_numel(&s)) {   /* NaN until the forward writes them */
        x.states = dalloc(scan_states_numel(&s) * 4);
        CU_CHECK(cu->cuMemsetD8(x.states, 0xff, scan_states_numel(&s) * 4));
    }
    return x;
}

static void scan_data_free(ScanData *x) {
    for (int i = 0; i < 9; i++) { free(x->h[i]); CU_CHECK(cu->cuMemFree(x->d[i])); }
    CU_CHECK(cu->cuMemFree(x->y));
    CU_CHECK(cu->cuMemFree(x->packed));
    CU_CHECK(cu->cuMemFree(x->copy));
    if (x->states) CU_CHECK(cu->cuMemFree(x->states));
}

static const CUdeviceptr NO_Z = 0;   /* the z argument of an ungated scan */

static void scan_run_fwd(const Kernel *k, ScanData *x) {
    void *args[10];
    for (int i = 0; i < 8; i++) args[i] = i == 7 && !x->s.gated ? (void *)&NO_Z : &x->d[i];
    args[8] = &x->y;
    args[9] = &x->states;
    launch(k, args, NULL);
}

static void scan_run_bwd(const Kernel *k, ScanData *x) {
    static const CUdeviceptr NO_DZ_COPY = 0;   /* dz's copy stays in `copy` (ScanSpec.dz_copy_ld 0) */
    void *args[13];
    CUdeviceptr bufs[13];
    for (int i = 0; i < 9; i++) {
        const bool no_z = i == 7 && !x->s.gated;
        args[i] = no_z ? (void *)&NO_Z : &x->d[i];
        bufs[i] = no_z ? 0 : x->d[i];
    }
    args[9] = &x->packed;
    bufs[9] = x->packed;
    args[10] = &x->copy;
    bufs[10] = x->copy;
    args[11] = &x->states;
    bufs[11] = x->states;
    args[12] = (void *)&NO_DZ_COPY;
    bufs[12] = 0;
    launch(k, args, bufs);
}

static void check_scan(ScanSpec s, uint64_t seed, bool report) {
    char what[96];
    snprintf(what, sizeof what, "scan B%d L%d D%d N%d %s->%s%s%s", s.B, s.L, s.D, s.N, dtype_name(s.u),
             dtype_name(s.out), s.states ? "" : " recompute", s.gated ? "" : " ungated");
    KernelLaunch lf, lb;
    char *sf = template_scan_fwd(&s, &lf), *sb = template_scan_bwd(&s, &lb);
    Kernel kf = load_kernel(sf, &lf), kb = load_kernel(sb, &lb);
    if (report) { kernel_report(&kf); kernel_report(&kb); }
    ScanData x = scan_data(s, seed);
    CU_CHECK(cu->cuMemsetD8(x.y, 0xff, x.bld * (size_t)dtype_size(s.out)));   /* NaN in f32 and bf16 */
    CU_CHECK(cu->cuMemsetD8(x.packed, 0xff, scan_bwd_numel(&s) * 4));
    CU_CHECK(cu->cuMemsetD8(x.copy, 0xff, scan_bwd_numel(&s) * 2));
    scan_run_fwd(&kf, &x);
    scan_run_bwd(&kb, &x);
    sync_check();

    float **h = x.h;
    double *yref = malloc(x.bld * sizeof(double)), *pref = malloc(scan_bwd_numel(&s) * sizeof(double));
    const float *z = s.gated ? h[7] : NULL;
    ref_scan_fwd(s.B, s.L, s.D, s.N, h[0], h[1], h[2], h[3], h[4], h[5], h[6], z, yref);
    ref_scan_bwd(s.B, s.L, s.D, s.N, h[0], h[1], h[2], h[3], h[4], h[5], h[6], z, h[8], pref);
    float *y = download(x.y, x.bld, s.out), *p = download(x.packed, scan_bwd_numel(&s), DT_F32);
    expect_close(what, "fwd y", y, yref, x.bld, s.out == DT_BF16 ? 1e-2 : 1e-4);
    static const char *names[8] = {"du", "ddelta", "dA_log", "dBm", "dCm", "dD", "ddelta_bias", "dz"};
    size_t sizes[8] = {x.bld, x.bld, (size_t)s.D * s.N, x.bln, x.bln, (size_t)s.D, (size_t)s.D, x.bld}, off = 0;
    const int part_bit[8] = {SCAN_PART_DU, SCAN_PART_DDL, 0, 0, 0, 0, 0, SCAN_PART_DZ};
    float *c = s.copy_parts ? download(x.copy, scan_bwd_numel(&s), DT_BF16) : NULL;
    for (int k = 0; k < (s.gated ? 8 : 7); k++) {   /* the parts stored in f32, then those with a bf16 copy (only) */
        char part[32];
        if (!(s.skip_f32_parts & part_bit[k])) expect_close(what, names[k], p + off, pref + off, sizes[k], 1e-4);
        snprintf(part, sizeof part, "%s bf16", names[k]);
        if (s.copy_parts & part_bit[k]) expect_close(what, part, c + off, pref + off, sizes[k], 1e-2);
        off += sizes[k];
    }
    free(c);
    free(y); free(p); free(yref); free(pref);
    scan_data_free(&x);
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
}

static ScanSpec scan_spec(int B, int L, int D, DType io, DType out) {
    ScanSpec s = {B, L, D, 16, true, io, io, DT_F32, io, DT_F32, DT_F32, io, out, io};
    if (io == DT_BF16) {   /* as in bf16 training: du, ddelta and dz only as bf16 copies (GEMMs and generated */
        s.copy_parts = SCAN_PARTS;   /* kernels read them there) */
        s.skip_f32_parts = SCAN_PARTS;
    }
    s.states = true;       /* as in training: the forward saves the chunk-start states */
    return s;
}

/* The same without saved states: the backward recomputes them (ProgramOptions.scan_recompute). */
static ScanSpec recompute(ScanSpec s) {
    s.states = false;
    return s;
}

/* The same without the gate (the 4-direction mixer's scans): no z, no dz. */
static ScanSpec ungated(ScanSpec s) {
    s.gated = false;
    return s;
}

/* ---------------------------------------------------------------- conv1d */
/* silu: the SiLU fused into y (inference); else y2 = silu(y) is written beside y (training). */
static void check_conv(int B, int L, int D, int K, DType io, bool silu, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "conv1d B%d L%d D%d K%d %s%s", B, L, D, K, dtype_name(io), silu ? " silu" : "");
    Conv1dSpec s = {B, L, D, K, io, DT_F32, DT_F32, io, io, silu, true, true, true};
    s.silu_out = !silu;
    s.out2 = io;
    KernelLaunch lf, lb;
    char *sf = template_conv1d_fwd(&s, &lf), *sb = template_conv1d_bwd(&s, &lb);
    Kernel kf = load_kernel(sf, &lf), kb = load_kernel(sb, &lb);
    size_t n = (size_t)B * L * D;
    RefRng r = {seed};
    float *x = malloc(n * 4), *dy = malloc(n * 4), *w = malloc((size_t)D * K * 4), *bias = malloc((size_t)D * 4);
    for (size_t i = 0; i < n; i++) { x[i] = (float)ref_normal(&r); dy[i] = (float)ref_normal(&r); }
    for (int i = 0; i < D * K; i++) w[i] = (float)(0.5 * ref_normal(&r));
    for (int i = 0; i < D; i++) bias[i] = (float)(0.1 * ref_normal(&r));
    CUdeviceptr dx_ = upload(x, n, io), ddy = upload(dy, n, io), dw_ = upload(w, (size_t)D * K, DT_F32);
    CUdeviceptr db_ = upload(bias, (size_t)D, DT_F32), dyo = dalloc(n * (size_t)dtype_size(io));
    CUdeviceptr gx = dalloc(n * (size_t)dtype_size(io)), gw = dalloc((size_t)D * K * 4), gb = dalloc((size_t)D * 4);
    CUdeviceptr dyo2 = dalloc(n * (size_t)dtype_size(io));
    CU_CHECK(cu->cuMemsetD8(dyo, 0xff, n * (size_t)dtype_size(io)));
    CU_CHECK(cu->cuMemsetD8(dyo2, 0xff, n * (size_t)dtype_size(io)));
    CU_CHECK(cu->cuMemsetD8(gx, 0xff, n * (size_t)dtype_size(io)));
    void *af[5] = {&dx_, &dw_, &db_, &dyo, &dyo2};
    launch(&kf, af, NULL);
    CUdeviceptr none = 0;
    void *ab[9] = {&ddy, &dx_, &dw_, &gx, &gw, &gb, &none, &none, &none};
    CUdeviceptr bb[9] = {ddy, dx_, dw_, gx, gw, gb, 0, 0, 0};
    launch(&kb, ab, bb);
    sync_check();
    double *yr = malloc(n * 8), *dxr = malloc(n * 8), *dwr = malloc((size_t)D * K * 8), *dbr = malloc((size_t)D * 8);
    ref_conv_fwd(B, L, D, K, x, w, bias, silu, yr);
    ref_conv_bwd(B, L, D, K, dy, x, w, dxr, dwr, dbr);
    float *y = download(dyo, n, io), *gxh = download(gx, n, io), *gwh = download(gw, (size_t)D * K, DT_F32);
    float *gbh = download(gb, (size_t)D, DT_F32);
    double tol = io == DT_BF16 ? 1e-2 : 1e-5;
    expect_close(what, "fwd y", y, yr, n, tol);
    if (s.silu_out) {
        double *yr2 = malloc(n * 8);
        ref_conv_fwd(B, L, D, K, x, w, bias, true, yr2);
        float *y2 = download(dyo2, n, io);
        expect_close(what, "fwd silu(y)", y2, yr2, n, tol);
        free(yr2); free(y2);
    }
    expect_close(what, "bwd dx", gxh, dxr, n, tol);
    expect_close(what, "bwd dw", gwh, dwr, (size_t)D * K, 1e-5);
    expect_close(what, "bwd db", gbh, dbr, (size_t)D, 1e-5);
    free(x); free(dy); free(w); free(bias); free(yr); free(dxr); free(dwr); free(dbr);
    free(y); free(gxh); free(gwh); free(gbh);
    CUdeviceptr all[9] = {dx_, ddy, dw_, db_, dyo, dyo2, gx, gw, gb};
    for (int i = 0; i < 9; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
}

/* The backward through the SiLU after the conv (OP_CONV1D_SILU_BWD): gradient dy + dy2 at silu(conv(x)), x, dy and
 * dy2 in io, the conv output recomputed; in bf16, dx as a bf16 copy only (as bf16 training stores it). Against
 * g = (dy + dy2) silu'(p) and the plain backward of g in fp64. */
static void check_conv_silu_bwd(int B, int L, int D, int K, DType io, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "conv1d silu_bwd B%d L%d D%d K%d %s", B, L, D, K, dtype_name(io));
    Conv1dSpec s = {B, L, D, K, io, DT_F32, DT_F32, DT_F32, io, false, true, true, true};
    s.silu_dy = s.has_dy2 = true;
    s.dy2 = io;
    s.copy_dx = s.skip_f32_dx = io == DT_BF16;
    KernelLaunch lb;
    Kernel kb = load_kernel(template_conv1d_bwd(&s, &lb), &lb);
    size_t n = (size_t)B * L * D;
    RefRng r = {seed};
    float *x = malloc(n * 4), *dy = malloc(n * 4), *dy2 = malloc(n * 4), *g = malloc(n * 4);
    float *w = malloc((size_t)D * K * 4), *bias = malloc((size_t)D * 4);
    for (size_t i = 0; i < n; i++) { x[i] = (float)ref_normal(&r); dy[i] = (float)ref_normal(&r); dy2[i] = (float)ref_normal(&r); }
    for (int i = 0; i < D * K; i++) w[i] = (float)(0.5 * ref_normal(&r));
    for (int i = 0; i < D; i++) bias[i] = (float)(0.1 * ref_normal(&r));
    CUdeviceptr dx_ = upload(x, n, io), ddy = upload(dy, n, io), ddy2 = upload(dy2, n, io);   /* (rounds them) */
    CUdeviceptr dw_ = upload(w, (size_t)D * K, DT_F32), db_ = upload(bias, (size_t)D, DT_F32);
    CUdeviceptr gx = dalloc(n * 4), gw = dalloc((size_t)D * K * 4), gb = dalloc((size_t)D * 4), gxc = dalloc(n * 2);
    CU_CHECK(cu->cuMemsetD8(gx, 0xff, n * 4));
    CU_CHECK(cu->cuMemsetD8(gxc, 0xff, n * 2));
    void *ab[9] = {&ddy, &dx_, &dw_, &gx, &gw, &gb, &db_, &ddy2, &gxc};
    CUdeviceptr bb[9] = {ddy, dx_, dw_, gx, gw, gb, db_, ddy2, gxc};
    launch(&kb, ab, bb);
    sync_check();
    double *p = malloc(n * 8), *dxr = malloc(n * 8), *dwr = malloc((size_t)D * K * 8), *dbr = malloc((size_t)D * 8);
    ref_conv_fwd(B, L, D, K, x, w, bias, false, p);
    for (size_t i = 0; i < n; i++) {
        const double sg = ref_sigmoid(p[i]);
        g[i] = (float)(((double)dy[i] + dy2[i]) * sg * (1 + p[i] * (1 - sg)));
    }
    ref_conv_bwd(B, L, D, K, g, x, w, dxr, dwr, dbr);
    float *gxh = s.copy_dx ? download(gxc, n, DT_BF16) : download(gx, n, DT_F32);
    float *gwh = download(gw, (size_t)D * K, DT_F32), *gbh = download(gb, (size_t)D, DT_F32);
    expect_close(what, s.copy_dx ? "bwd dx (bf16 copy only)" : "bwd dx", gxh, dxr, n, s.copy_dx ? 1e-2 : 1e-5);
    expect_close(what, "bwd dw", gwh, dwr, (size_t)D * K, 1e-5);
    expect_close(what, "bwd db", gbh, dbr, (size_t)D, 1e-5);
    free(x); free(dy); free(dy2); free(g); free(w); free(bias); free(p); free(dxr); free(dwr); free(dbr);
    free(gxh); free(gwh); free(gbh);
    CUdeviceptr all[9] = {dx_, ddy, ddy2, dw_, db_, gx, gw, gb, gxc};
    for (int i = 0; i < 9; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
}

/* ---------------------------------------------------------------- GEMM */
static void check_gemm(Gemm *g, GemmDesc d, uint64_t seed, double tol) {
    char what[96];
    snprintf(what, sizeof what, "gemm %dx%dx%d%s%s b%d %s->%s%s%s", d.m, d.n, d.k, d.ta ? " tA" : "", d.tb ? " tB" : "",
             d.batch, dtype_name(d.a), dtype_name(d.c), d.bias ? " bias" : "", d.allow_tf32 ? " tf32" : "");
    size_t na = (size_t)d.m * d.k, nb = (size_t)d.k * d.n, nc = (size_t)d.m * d.n;
    size_t ta = d.stride_a ? (size_t)d.batch : 1, tb = d.stride_b ? (size_t)d.batch : 1;
    RefRng r = {seed};
    float *A = malloc(na * ta * 4), *Bm = malloc(nb * tb * 4), *bias = malloc((size_t)d.n * 4);
    for (size_t i = 0; i < na * ta; i++) A[i] = (float)ref_normal(&r);
    for (size_t i = 0; i < nb * tb; i++) Bm[i] = (float)ref_normal(&r);
    for (int i = 0; i < d.n; i++) bias[i] = (float)ref_normal(&r);
    CUdeviceptr dA = upload(A, na * ta, d.a), dB = upload(Bm, nb * tb, d.b), dbias = upload(bias, (size_t)d.n, d.c);
    CUdeviceptr dC = dalloc(nc * d.batch * (size_t)dtype_size(d.c));
    CU_CHECK(cu->cuMemsetD8(dC, 0xff, nc * d.batch * (size_t)dtype_size(d.c)));
    gemm_run(g, &d, dA, dB, dC, d.bias ? dbias : 0, 1.f, 0.f, stream);
    sync_check();
    double *ref = malloc(nc * d.batch * 8);
    for (int q = 0; q < d.batch; q++) {
        const float *a = A + (d.stride_a ? (size_t)q * d.stride_a : 0), *b = Bm + (d.stride_b ? (size_t)q * d.stride_b : 0);
        for (int i = 0; i < d.m; i++)
            for (int j = 0; j < d.n; j++) {
                double s = d.bias ? bias[j] : 0;
                for (int k = 0; k < d.k; k++)
                    s += (double)(d.ta ? a[(size_t)k * d.m + i] : a[(size_t)i * d.k + k]) *
                         (d.tb ? b[(size_t)j * d.k + k] : b[(size_t)k * d.n + j]);
                ref[(size_t)q * nc + (size_t)i * d.n + j] = s;
            }
    }
    float *C = download(dC, nc * d.batch, d.c);
    expect_close(what, "C", C, ref, nc * d.batch, tol);
    free(A); free(Bm); free(bias); free(ref); free(C);
    CUdeviceptr all[4] = {dA, dB, dbias, dC};
    for (int i = 0; i < 4; i++) CU_CHECK(cu->cuMemFree(all[i]));
}

static void check_gemms(void) {
    Gemm *g = gemm_new(0);
    /* linear layer x @ W^T + b, bf16 operands, f32 out */
    check_gemm(g, (GemmDesc){300, 384, 192, false, true, 1, 0, 0, 0, DT_BF16, DT_BF16, DT_F32, true, false}, 11, 1e-5);
    /* weight gradient dY^T @ X, exact f32, strided batch */
    check_gemm(g, (GemmDesc){256, 160, 197, true, false, 3, 197 * 256, 197 * 160, 256 * 160, DT_F32, DT_F32, DT_F32,
                             false, false}, 12, 1e-5);
    /* broadcast weight over the batch (stride 0), bf16 out */
    check_gemm(g, (GemmDesc){128, 96, 64, false, false, 2, 128 * 64, 0, 128 * 96, DT_BF16, DT_BF16, DT_BF16, false,
                             false}, 13, 1e-2);
    /* f32 with TF32 allowed */
    check_gemm(g, (GemmDesc){256, 256, 512, false, true, 1, 0, 0, 0, DT_F32, DT_F32, DT_F32, true, true}, 14, 5e-3);
    /* the same descriptor again reuses its plan */
    check_gemm(g, (GemmDesc){300, 384, 192, false, true, 1, 0, 0, 0, DT_BF16, DT_BF16, DT_F32, true, false}, 15, 1e-5);
    bool ok = gemm_plans(g) == 4;
    printf("  %-34s %-12s %d plans for 5 products %s\n", "gemm plan cache", "", gemm_plans(g), ok ? "ok" : "FAIL");
    failures += !ok;
    gemm_free(g);
}

/* vmc's Hopper GEMM (hopper_gemm.cuh, sm_90 only): C = alpha op(A) op(B) (+ acc) against a double product, A [M][K]
 * (or [K][M]: ta) and B [N][K] (or [K][N]: !tb) bf16 from normal samples, C in c (f32 or bf16); C is poisoned with
 * NaN, then zeroed where the launch says (K split in parts added into it), as the runtime does. */
static void check_hopper_gemm_t(int M, int N, int K, bool ta, bool tb, bool acc, DType c, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "hopper gemm %dx%dx%d A%s B%s%s %s", M, N, K, ta ? "^T" : "", tb ? "^T" : "",
             acc ? " + acc" : "", dtype_name(c));
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = ta ? M : K, .ldb = tb ? K : N, .ta = ta, .tb = tb,
                           .acc = acc, .c_bf16 = c == DT_BF16, .alpha = 0.5f, .c_align = 16,
                           .tile_n = N <= 128 ? 128 : 256};
    KernelLaunch l;
    Kernel k = load_kernel_for(template_gemm_hopper(&spec, &l), &l, NVRTC_ARCH_SM90A);
    kernel_report(&k);
    const size_t na = (size_t)M * K, nb = (size_t)N * K, nc = (size_t)M * N;
    RefRng r = {seed};
    float *A = malloc(na * 4), *Bm = malloc(nb * 4), *C0 = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r)));
    for (size_t i = 0; i < nb; i++) Bm[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r)));
    for (size_t i = 0; i < nc; i++) C0[i] = c == DT_BF16 ? bf16_to_f32(f32_to_bf16((float)ref_normal(&r))) : (float)ref_normal(&r);
    CUdeviceptr dA = upload(A, na, DT_BF16), dB = upload(Bm, nb, DT_BF16), dacc = upload(C0, nc, c);
    CUdeviceptr dC = dalloc(nc * (size_t)dtype_size(c));
    CU_CHECK(cu->cuMemsetD8(dC, 0xff, nc * (size_t)dtype_size(c)));   /* NaN: an element never written fails */
    CUdeviceptr ptrs[4] = {dA, dB, dC, dacc};
    CUtensorMap maps[3];
    void *args[4] = {NULL, NULL, NULL, &ptrs[3]};
    cuda_tma_gemm_params(cu, &l, M, N, K, spec.lda, spec.ldb, ta, tb, ptrs, maps, args);
    k.l.grid[0] = cuda_hopper_grid(cu, k.fn, &l);   /* as the runtime launches it */
    if (k.l.grid[0] != l.grid[0]) {   /* more CTAs than run at once: fewer, each taking more tiles */
        const bool ok = k.l.grid[0] < l.grid[0] && k.l.grid[0] % (l.cluster > 1 ? l.cluster : 1) == 0;
        printf("  %-34s grid %u -> %u CTAs (as many as run at once) %s\n", what, l.grid[0], k.l.grid[0],
               ok ? "ok" : "FAIL");
        failures += !ok;
    }
    launch(&k, args, ptrs);
    sync_check();
    double *ref = malloc(nc * 8);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0;
            for (int q = 0; q < K; q++)
                sum += (double)A[ta ? (size_t)q * M + i : (size_t)i * K + q] *
                       Bm[tb ? (size_t)j * K + q : (size_t)q * N + j];
            ref[(size_t)i * N + j] = 0.5 * sum + (acc ? C0[(size_t)i * N + j] : 0);
        }
    float *C = download(dC, nc, c);
    expect_close(what, "C", C, ref, nc, c == DT_BF16 ? 1e-2 : 1e-5);
    free(A); free(Bm); free(C0); free(ref); free(C);
    CUdeviceptr all[4] = {dA, dB, dacc, dC};
    for (int i = 0; i < 4; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(k.mod));
}
static void check_hopper_gemm(int M, int N, int K, bool acc, DType c, uint64_t seed) {
    check_hopper_gemm_t(M, N, K, false, true, acc, c, seed);
}

/* SwiGLU's input products in one kernel (template_gemm_swiglu) against double products: H = silu(bf16(A B1^T) + b1)
 * * (bf16(A B2^T) + b2) and the two products. */
static void check_swiglu_gpu(int M, int N, int K, bool products, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "swiglu gemm %dx%dx%d%s", M, N, K, products ? " + products" : "");
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = K, .ldb = K, .tb = true, .c_bf16 = true, .alpha = 1,
                           .c_align = 16};
    KernelLaunch l;
    Kernel k = load_kernel_for(template_gemm_swiglu(&spec, products, &l), &l, NVRTC_ARCH_SM90A);
    kernel_report(&k);
    const size_t na = (size_t)M * K, nb = (size_t)N * K, nc = (size_t)M * N;
    RefRng r = {seed};
    float *A = malloc(na * 4), *B1 = malloc(nb * 4), *B2 = malloc(nb * 4), *bias = malloc((size_t)N * 8);
    for (size_t i = 0; i < na; i++) A[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 0.25f));
    for (size_t i = 0; i < nb; i++) B1[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 0.25f));
    for (size_t i = 0; i < nb; i++) B2[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 0.25f));
    for (int i = 0; i < 2 * N; i++) bias[i] = (float)ref_normal(&r);
    CUdeviceptr dA = upload(A, na, DT_BF16), dB1 = upload(B1, nb, DT_BF16), dB2 = upload(B2, nb, DT_BF16);
    CUdeviceptr db1 = upload(bias, (size_t)N, DT_F32), db2 = upload(bias + N, (size_t)N, DT_F32);
    CUdeviceptr out[3];
    for (int q = 0; q < 3; q++) {
        out[q] = dalloc(nc * 2);
        CU_CHECK(cu->cuMemsetD8(out[q], 0xff, nc * 2));
    }
    CUdeviceptr ptrs[8] = {dA, dB1, dB2, db1, db2, out[0], products ? out[1] : 0, products ? out[2] : 0};
    CUtensorMap maps[8];
    void *args[8];
    cuda_tma_swiglu_params(cu, &k.l, M, N, K, K, K, ptrs, maps, args);
    launch(&k, args, NULL);
    sync_check();
    double *ref = malloc(3 * nc * 8);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double q1 = 0, q2 = 0;
            for (int q = 0; q < K; q++) {
                q1 += (double)A[(size_t)i * K + q] * B1[(size_t)j * K + q];
                q2 += (double)A[(size_t)i * K + q] * B2[(size_t)j * K + q];
            }
            const double r1 = bf16_to_f32(f32_to_bf16((float)q1)), r2 = bf16_to_f32(f32_to_bf16((float)q2));
            const double x = r1 + bias[j], y = r2 + bias[N + j];
            ref[(size_t)i * N + j] = x / (1 + exp(-x)) * y;
            ref[nc + (size_t)i * N + j] = r1;
            ref[2 * nc + (size_t)i * N + j] = r2;
        }
    static const char *parts[3] = {"H", "P1", "P2"};
    for (int q = 0; q < (products ? 3 : 1); q++) {
        float *got = download(out[q], nc, DT_BF16);
        expect_close(what, parts[q], got, ref + q * nc, nc, 2e-2);
        free(got);
    }
    free(A); free(B1); free(B2); free(bias); free(ref);
    CUdeviceptr all[8] = {dA, dB1, dB2, db1, db2, out[0], out[1], out[2]};
    for (int i = 0; i < 8; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(k.mod));
}

/* SwiGLU's backward kernel's tuning variants (template_gemm.c's knobs): 0 the default; 128 x 128 tiles, two CTAs
 * an SM (one's epilogue beside the other's products); P1 and P2 loaded 2, 4 or 6 visits ahead in the epilogue;
 * ping-pong (each consumer warpgroup a 128 x 128 tile, the two in turn); P1 and P2 copied by cp.async into a ring 4
 * or 8 visits ahead, the first ones while the tile is computed, and ping-pong with a ring of 4. */
enum { SWIGLU_BWD_VARIANTS = 9, BWD_KNOBS = 4 };
static const char *swiglu_bwd_name = "default";
static const char *const bwd_knobs[BWD_KNOBS] = {"VMC_SWIGLU_BWD_TILE", "VMC_SWIGLU_BWD_AHEAD",
                                                 "VMC_HOPPER_GEMM_PINGPONG", "VMC_SWIGLU_BWD_RING"};
static void swiglu_bwd_variant(int v) {
    static const struct { const char *name, *value[BWD_KNOBS]; } variants[SWIGLU_BWD_VARIANTS] = {
        {"default", {NULL}},                         {"128x128 tiles", {"128", NULL, NULL, NULL}},
        {"loads 2 ahead", {NULL, "2", NULL, NULL}},  {"loads 4 ahead", {NULL, "4", NULL, NULL}},
        {"loads 6 ahead", {NULL, "6", NULL, NULL}},  {"ping-pong", {NULL, NULL, "2", NULL}},
        {"a ring of 4", {NULL, NULL, NULL, "4"}},    {"a ring of 8", {NULL, NULL, NULL, "8"}},
        {"ping-pong, a ring of 4", {NULL, NULL, "2", "4"}}};
    static char *saved[BWD_KNOBS];   /* the caller's settings, back for variant 0 */
    static bool got;
    for (int k = 0; k < BWD_KNOBS; k++) {
        if (!got && getenv(bwd_knobs[k])) saved[k] = strdup(getenv(bwd_knobs[k]));
        const char *value = variants[v].value[k] ? variants[v].value[k] : saved[k];
        if (value) setenv(bwd_knobs[k], value, 1);
        else unsetenv(bwd_knobs[k]);
    }
    got = true;
    swiglu_bwd_name = variants[v].name;
}

/* SwiGLU's backward in the Hopper GEMM's epilogue (template_gemm_swiglu_bwd; B = W^T by its transpose kernel from W
 * [K][N]) against doubles: dh = bf16(A W),
 * x = P1 + b1, y = P2 + b2, G1 = dh y silu'(x), G2 = dh silu(x) and their column sums S1, S2. */
static void check_swiglu_bwd_gpu(int M, int N, int K, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "swiglu backward gemm %dx%dx%d (%s)", M, N, K, swiglu_bwd_name);
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = K, .ldb = K, .tb = true, .c_bf16 = true, .alpha = 1,
                           .c_align = 16};
    KernelLaunch l, lt;
    Kernel k = load_kernel_for(template_gemm_swiglu_bwd(&spec, &l, &lt), &l, NVRTC_ARCH_SM90A);
    Kernel kt = {k.mod, NULL, lt};   /* B = W^T from W [K][N] */
    CU_CHECK(cu->cuModuleGetFunction(&kt.fn, k.mod, lt.name));
    kernel_report(&k);
    const size_t na = (size_t)M * K, nb = (size_t)N * K, nc = (size_t)M * N;
    RefRng r = {seed};
    float *A = malloc(na * 4), *B = malloc(nb * 4), *P = malloc(2 * nc * 4), *bias = malloc((size_t)N * 8);
    for (size_t i = 0; i < na; i++) A[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 0.25f));
    for (size_t i = 0; i < nb; i++) B[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 0.25f));
    for (size_t i = 0; i < 2 * nc; i++) P[i] = bf16_to_f32(f32_to_bf16((float)ref_normal(&r) * 2));
    for (int i = 0; i < 2 * N; i++) bias[i] = (float)ref_normal(&r);
    CUdeviceptr w = upload(B, nb, DT_BF16);   /* W [K][N] */
    CUdeviceptr ptrs[10] = {upload(A, na, DT_BF16), dalloc(nb * 2), upload(P, nc, DT_BF16),
                            upload(P + nc, nc, DT_BF16), upload(bias, (size_t)N, DT_F32),
                            upload(bias + N, (size_t)N, DT_F32), dalloc(nc * 2), dalloc(nc * 2), dalloc((size_t)N * 4),
                            dalloc((size_t)N * 4)};
    for (int q = 6; q < 8; q++) CU_CHECK(cu->cuMemsetD8(ptrs[q], 0xff, nc * 2));   /* NaN: unwritten fails */
    for (int q = 8; q < 10; q++) CU_CHECK(cu->cuMemsetD8(ptrs[q], 0, (size_t)N * 4));
    CUtensorMap maps[3];
    void *args[10];
    cuda_tma_gemm_params(cu, &l, M, N, K, K, K, false, true, ptrs, maps, args);   /* A and B; the rest pointers */
    for (int q = 3; q < 10; q++) args[q] = &ptrs[q];
    k.l.grid[0] = cuda_hopper_grid(cu, k.fn, &l);
    void *targs[2] = {&w, &ptrs[1]};
    launch(&kt, targs, NULL);
    launch(&k, args, NULL);
    sync_check();
    double *ref = calloc(2 * nc + 2 * (size_t)N, 8), *sums = ref + 2 * nc;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double q = 0;
            for (int e = 0; e < K; e++) q += (double)A[(size_t)i * K + e] * B[(size_t)e * N + j];
            const double dh = bf16_to_f32(f32_to_bf16((float)q));
            const double x = P[(size_t)i * N + j] + bias[j], y = P[nc + (size_t)i * N + j] + bias[N + j];
            const double sg = 1 / (1 + exp(-x)), g1 = dh * y * sg * (1 + x * (1 - sg)), g2 = dh * x * sg;
            ref[(size_t)i * N + j] = g1;
            ref[nc + (size_t)i * N + j] = g2;
            sums[j] += g1;
            sums[N + j] += g2;
        }
    static const char *parts[4] = {"G1", "G2", "S1", "S2"};
    for (int q = 0; q < 4; q++) {
        const size_t n = q < 2 ? nc : (size_t)N;
        float *got = download(ptrs[6 + q], n, q < 2 ? DT_BF16 : DT_F32);
        expect_close(what, parts[q], got, q < 2 ? ref + q * nc : sums + (q - 2) * N, n, q < 2 ? 2e-2 : 1e-3);
        free(got);
    }
    free(A); free(B); free(P); free(bias); free(ref);
    for (int i = 0; i < 10; i++) CU_CHECK(cu->cuMemFree(ptrs[i]));
    CU_CHECK(cu->cuMemFree(w));
    CU_CHECK(cu->cuModuleUnload(k.mod));
}

/* ---------------------------------------------------------------- attention */
/* Inputs of an attention check: q [B, L, H E], k and v as the two channel halves of one [B, S, 2 H E] buffer (the
 * kv projection's output, read through row maps), an additive mask, dout; outputs o and the packed gradients. */
typedef struct AttnData {
    AttnSpec s;
    size_t nq, nk;
    float *q, *kv, *mask, *dout;   /* rounded to their dtypes */
    CUdeviceptr dq_, dkv, dmask, ddout, o, packed, copy;
    void *fargs[5], *bargs[7];
} AttnData;

static AttnData attn_data(int B, int H, int L, int S, int E, DType io, uint64_t seed) {
    AttnData x = {.nq = (size_t)B * L * H * E, .nk = (size_t)B * S * H * E};
    AttnSpec *s = &x.s;
    *s = (AttnSpec){B, L, S, H, E, (float)(1.0 / sqrt((double)E)), io, io, io, DT_F32, io, io, 7, 0};
    s->k_map = (RowMap){S, 2 * H * E, 0, NULL};
    s->v_map = (RowMap){S, 2 * H * E, H * E, NULL};
    s->smem_limit = template_smem_limit(arch);
    RefRng r = {seed};
    x.q = malloc(x.nq * 4); x.dout = malloc(x.nq * 4); x.kv = malloc(2 * x.nk * 4);
    x.mask = malloc((size_t)L * S * 4);
    for (size_t i = 0; i < x.nq; i++) { x.q[i] = (float)ref_normal(&r); x.dout[i] = (float)ref_normal(&r); }
    for (size_t i = 0; i < 2 * x.nk; i++) x.kv[i] = (float)ref_normal(&r);
    for (int i = 0; i < L; i++)   /* block-causal in clusters of 16 where L == S (ARM's), else random finite */
        for (int j = 0; j < S; j++)
            x.mask[i * S + j] = L == S ? (j / 16 <= i / 16 ? 0.f : -INFINITY) : (float)ref_normal(&r);
    x.dq_ = upload(x.q, x.nq, io); x.dkv = upload(x.kv, 2 * x.nk, io);
    x.dmask = upload(x.mask, (size_t)L * S, DT_F32); x.ddout = upload(x.dout, x.nq, io);
    x.o = dalloc(x.nq * (size_t)dtype_size(io));
    x.packed = dalloc((x.nq + 2 * x.nk) * 4);
    x.copy = dalloc((x.nq + 2 * x.nk) * 2);
    CU_CHECK(cu->cuMemsetD8(x.o, 0xff, x.nq * (size_t)dtype_size(io)));   /* NaN: an unwritten element fails */
    CU_CHECK(cu->cuMemsetD8(x.packed, 0xff, (x.nq + 2 * x.nk) * 4));
    CU_CHECK(cu->cuMemsetD8(x.copy, 0xff, (x.nq + 2 * x.nk) * 2));
    return x;
}

/* The kernels' arguments, pointing into *x (so set once x is where it stays): k and v are both the kv buffer's
 * start, their row maps add v's offset. */
static void attn_args(AttnData *x) {
    void *f[5] = {&x->dq_, &x->dkv, &x->dkv, &x->dmask, &x->o};
    void *b[7] = {&x->dq_, &x->dkv, &x->dkv, &x->dmask, &x->ddout, &x->packed, &x->copy};
    memcpy(x->fargs, f, sizeof f);
    memcpy(x->bargs, b, sizeof b);
}

static void attn_data_free(AttnData *x) {
    free(x->q); free(x->kv); free(x->mask); free(x->dout);
    CUdeviceptr all[7] = {x->dq_, x->dkv, x->dmask, x->ddout, x->o, x->packed, x->copy};
    for (int i = 0; i < 7; i++) CU_CHECK(cu->cuMemFree(all[i]));
}

/* softmax(q k^T scale + mask) v per head and its gradients in double (rows whose mask is all -inf: P = 0). */
static void attn_ref(const AttnData *x, double *o, double *dq, double *dk, double *dv) {
    const AttnSpec *s = &x->s;
    const int C = s->H * s->E;
    double *p = malloc(sizeof(double) * (size_t)s->S * 2), *ds = p + s->S;
    memset(dk, 0, x->nk * 8);
    memset(dv, 0, x->nk * 8);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->L; i++) {
                const float *qi = x->q + ((size_t)b * s->L + i) * C + h * s->E;
                const float *gi = x->dout + ((size_t)b * s->L + i) * C + h * s->E;
                double mx = -INFINITY, sum = 0, dsum = 0;
                for (int j = 0; j < s->S; j++) {
                    const float *kj = x->kv + ((size_t)b * s->S + j) * 2 * C + h * s->E;
                    double d = 0;
                    for (int e = 0; e < s->E; e++) d += (double)qi[e] * kj[e];
                    p[j] = s->scale * d + x->mask[i * s->S + j];
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < s->S; j++) sum += p[j] = mx == -INFINITY ? 0 : exp(p[j] - mx);
                for (int j = 0; j < s->S; j++) {
                    const float *vj = x->kv + ((size_t)b * s->S + j) * 2 * C + C + h * s->E;
                    double d = 0;
                    p[j] = sum > 0 ? p[j] / sum : 0;
                    for (int e = 0; e < s->E; e++) d += (double)gi[e] * vj[e];
                    ds[j] = d;
                    dsum += p[j] * d;
                }
                for (int e = 0; e < s->E; e++) {
                    double acc = 0, gq = 0;
                    for (int j = 0; j < s->S; j++) {
                        const float *kj = x->kv + ((size_t)b * s->S + j) * 2 * C + h * s->E;
                        acc += p[j] * x->kv[((size_t)b * s->S + j) * 2 * C + C + h * s->E + e];
                        gq += p[j] * (ds[j] - dsum) * kj[e];
                    }
                    o[((size_t)b * s->L + i) * C + h * s->E + e] = acc;
                    dq[((size_t)b * s->L + i) * C + h * s->E + e] = s->scale * gq;
                }
                for (int j = 0; j < s->S; j++)
                    for (int e = 0; e < s->E; e++) {
                        const size_t at = ((size_t)b * s->S + j) * C + h * s->E + e;
                        dv[at] += p[j] * gi[e];
                        dk[at] += s->scale * p[j] * (ds[j] - dsum) * qi[e];
                    }
            }
    free(p);
}

/* The attention template (attention.cuh) against attn_ref: o, and dq, dk, dv in f32 and as bf16 copies. */
static void check_attn(int B, int H, int L, int S, int E, DType io, uint64_t seed) {
    AttnData x = attn_data(B, H, L, S, E, io, seed);
    attn_args(&x);
    char what[96];
    snprintf(what, sizeof what, "attention B%d H%d L%d S%d E%d %s%s", B, H, L, S, E, dtype_name(io),
             template_attn_fast(&x.s, true) ? "" : " scalar");
    KernelLaunch lf, lb;
    Kernel kf = load_kernel(template_attn_fwd(&x.s, &lf), &lf), kb = load_kernel(template_attn_bwd(&x.s, &lb), &lb);
    launch(&kf, x.fargs, NULL);
    launch(&kb, x.bargs, NULL);
    sync_check();
    double *o = malloc(x.nq * 8), *dq = malloc(x.nq * 8), *dk = malloc(x.nk * 8), *dv = malloc(x.nk * 8);
    attn_ref(&x, o, dq, dk, dv);
    const double tol = io == DT_BF16 ? 1e-2 : 1e-5;
    float *go = download(x.o, x.nq, io), *gp = download(x.packed, x.nq + 2 * x.nk, DT_F32);
    float *gc = download(x.copy, x.nq + 2 * x.nk, DT_BF16);
    expect_close(what, "fwd o", go, o, x.nq, tol);
    const double *ref[3] = {dq, dk, dv};
    const size_t off[3] = {0, x.nq, x.nq + x.nk}, len[3] = {x.nq, x.nk, x.nk};
    const char *part[3] = {"bwd dq", "bwd dk", "bwd dv"}, *cpart[3] = {"bwd dq bf16", "bwd dk bf16", "bwd dv bf16"};
    for (int k = 0; k < 3; k++) {
        expect_close(what, part[k], gp + off[k], ref[k], len[k], tol);
        expect_close(what, cpart[k], gc + off[k], ref[k], len[k], 1e-2);
    }
    free(o); free(dq); free(dk); free(dv); free(go); free(gp); free(gc);
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
    attn_data_free(&x);
}

/* ---------------------------------------------------------------- bench */
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of `reps` timed calls of fn(ctx) after `warm` untimed ones. */
static float time_ms(void (*fn)(void *), void *ctx, int warm, int reps) {
    CUevent ev[2 * 64];
    float ms[64];
    reps = reps > 64 ? 64 : reps;
    for (int i = 0; i < warm; i++) fn(ctx);
    for (int i = 0; i < 2 * reps; i++) CU_CHECK(cu->cuEventCreate(&ev[i], CU_EVENT_DEFAULT));
    for (int i = 0; i < reps; i++) {
        CU_CHECK(cu->cuEventRecord(ev[2 * i], stream));
        fn(ctx);
        CU_CHECK(cu->cuEventRecord(ev[2 * i + 1], stream));
    }
    sync_check();
    for (int i = 0; i < reps; i++) CU_CHECK(cu->cuEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    for (int i = 0; i < 2 * reps; i++) CU_CHECK(cu->cuEventDestroy(ev[i]));
    qsort(ms, (size_t)reps, sizeof(float), cmp_float);
    return ms[reps / 2];
}

typedef struct { CUdeviceptr a, b; size_t bytes; } CopyCtx;
static void run_copy(void *p) { CopyCtx *c = p; CU_CHECK(cu->cuMemcpyDtoDAsync(c->b, c->a, c->bytes, stream)); }
typedef struct { const Kernel *k; ScanData *x; } ScanCtx;
static void run_scan_fwd(void *p) { ScanCtx *c = p; scan_run_fwd(c->k, c->x); }
static void run_scan_bwd(void *p) { ScanCtx *c = p; scan_run_bwd(c->k, c->x); }

static void bench_scan(ScanSpec s, double copy_gbs) {
    const int B = s.B, L = s.L, D = s.D;
    const DType io = s.u, out = s.out;
    KernelLaunch lf, lb;
    Kernel kf = load_kernel(template_scan_fwd(&s, &lf), &lf), kb = load_kernel(template_scan_bwd(&s, &lb), &lb);
    ScanData x = scan_data(s, 99);
    ScanCtx cf = {&kf, &x}, cb = {&kb, &x};
    float tf = time_ms(run_scan_fwd, &cf, 3, 20), tb = time_ms(run_scan_bwd, &cb, 3, 20);
    double e = dtype_size(io), bld = (double)x.bld, bln = (double)x.bln, zs = s.gated ? 1 : 0;   /* z, dz */
    double fwd_bytes = (2 + zs) * bld * e + 2 * bln * e + bld * dtype_size(out);
    double bwd_bytes = (3 + zs) * bld * e + 2 * bln * e + ((2 + zs) * bld + 2 * bln) * 4;   /* f32 packed gradients */
    double gf = fwd_bytes / tf / 1e6, gb = bwd_bytes / tb / 1e6;
    printf("| scan B%d L%d D%d %s->%s%s%s | fwd %.3f ms | %.0f GB/s (%.0f%%) | bwd %.3f ms | %.0f GB/s (%.0f%%) |\n", B,
           L, D, dtype_name(io), dtype_name(out), s.states ? "" : " recompute", s.gated ? "" : " ungated", tf, gf,
           100 * gf / copy_gbs, tb, gb, 100 * gb / copy_gbs);
    scan_data_free(&x);
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
}

typedef struct { const Kernel *k; void **args; const CUdeviceptr *bufs; } LaunchCtx;   /* one kernel's launch */
static void run_launch(void *p) { LaunchCtx *c = p; launch(c->k, c->args, c->bufs); }

/* ARM-B pretraining's decoder attention (batch 128, 8 heads, L = S = 128, E = 64, bf16): time a call each way,
 * with the tensor-core work (4 L S E a head forward, 12 L S E backward: its six products) per second. */
static void bench_attn(int B, int H, int L, int S, int E) {
    AttnData x = attn_data(B, H, L, S, E, DT_BF16, 97);
    attn_args(&x);
    KernelLaunch lf, lb;
    Kernel kf = load_kernel(template_attn_fwd(&x.s, &lf), &lf), kb = load_kernel(template_attn_bwd(&x.s, &lb), &lb);
    kernel_report(&kf);
    kernel_report(&kb);
    LaunchCtx cf = {&kf, x.fargs, NULL}, cb = {&kb, x.bargs, NULL};
    float tf = time_ms(run_launch, &cf, 3, 20), tb = time_ms(run_launch, &cb, 3, 20);
    const double lse = (double)B * H * L * S * E;
    printf("| attention B%d H%d L%d S%d E%d bf16 | fwd %.3f ms | %.0f TFLOP/s | bwd %.3f ms | %.0f TFLOP/s |\n", B, H, L,
           S, E, tf, 4 * lse / tf / 1e9, tb, 12 * lse / tb / 1e9);
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
    attn_data_free(&x);
}

static void bench_conv(int B, int L, int D, DType io, double copy_gbs) {
    Conv1dSpec s = {B, L, D, 4, io, DT_F32, DT_F32, io, io, true, true, true, true};
    KernelLaunch lf, lb;
    Kernel kf = load_kernel(template_conv1d_fwd(&s, &lf), &lf), kb = load_kernel(template_conv1d_bwd(&s, &lb), &lb);
    size_t n = (size_t)B * L * D, e = (size_t)dtype_size(io);
    CUdeviceptr x = dalloc(n * e), y = dalloc(n * e), dy = dalloc(n * e), dx = dalloc(n * e);
    CUdeviceptr w = dalloc((size_t)D * 16), bias = dalloc((size_t)D * 4), dw = dalloc((size_t)D * 16), db = dalloc((size_t)D * 4);
    CU_CHECK(cu->cuMemsetD8(x, 0x3c, n * e));   /* small finite values, not zeros */
    CU_CHECK(cu->cuMemsetD8(dy, 0x3c, n * e));
    CU_CHECK(cu->cuMemsetD8(w, 0x3c, (size_t)D * 16));
    CU_CHECK(cu->cuMemsetD8(bias, 0x3c, (size_t)D * 4));
    CUdeviceptr dy2 = dalloc(n * e), none = 0;
    CU_CHECK(cu->cuMemsetD8(dy2, 0x3c, n * e));
    void *af[5] = {&x, &w, &bias, &y, &none}, *ab[9] = {&dy, &x, &w, &dx, &dw, &db, &none, &none, &none};
    CUdeviceptr bb[9] = {dy, x, w, dx, dw, db, 0, 0, 0};
    LaunchCtx cf = {&kf, af, NULL}, cb = {&kb, ab, bb};
    float tf = time_ms(run_launch, &cf, 3, 20), tb = time_ms(run_launch, &cb, 3, 20);
    double gf = 2.0 * n * e / tf / 1e6, gb = 3.0 * n * e / tb / 1e6;
    printf("| conv1d B%d L%d D%d %s silu | fwd %.3f ms | %.0f GB/s (%.0f%%) | bwd %.3f ms | %.0f GB/s (%.0f%%) |\n", B,
           L, D, dtype_name(io), tf, gf, 100 * gf / copy_gbs, tb, gb, 100 * gb / copy_gbs);
    /* training's backward through the SiLU: dy, dy2, x in io, dx as a bf16 copy only (ARM-B fine-tuning's bytes) */
    s.silu_dy = s.has_dy2 = true;
    s.dy2 = io;
    s.out = DT_F32;
    s.copy_dx = s.skip_f32_dx = true;
    KernelLaunch ls;
    Kernel ks = load_kernel(template_conv1d_bwd(&s, &ls), &ls);
    CUdeviceptr dxf = dalloc(n * 4), dxc = dalloc(n * 2);
    void *as[9] = {&dy, &x, &w, &dxf, &dw, &db, &bias, &dy2, &dxc};
    CUdeviceptr bs[9] = {dy, x, w, dxf, dw, db, bias, dy2, dxc};
    LaunchCtx cs = {&ks, as, bs};
    float ts = time_ms(run_launch, &cs, 3, 20);
    double gs = (3.0 * n * e + 2.0 * n) / ts / 1e6;
    printf("| conv1d B%d L%d D%d %s silu_bwd (dy + dy2, dx bf16) | | | bwd %.3f ms | %.0f GB/s (%.0f%%) |\n", B, L, D,
           dtype_name(io), ts, gs, 100 * gs / copy_gbs);
    CUdeviceptr all[11] = {x, y, dy, dx, w, bias, dw, db, dy2, dxf, dxc};
    for (int i = 0; i < 11; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(kf.mod));
    CU_CHECK(cu->cuModuleUnload(kb.mod));
    CU_CHECK(cu->cuModuleUnload(ks.mod));
}

typedef struct { Gemm *g; GemmDesc d; CUdeviceptr a, b, c; } LtCtx;
static void run_lt(void *p) { LtCtx *c = p; gemm_run(c->g, &c->d, c->a, c->b, c->c, 0, 1.f, 0.f, stream); }

/* vmc's Hopper GEMM against cuBLASLt (its heuristic's first algorithm, as VMC_GEMM_TUNE=0) on ARM-B's Linear
 * shapes (op(A) op(B) as check_hopper_gemm_t, C in c): ms a call and TFLOP/s of each, side by side (vmc's with the
 * zeroing of C where K's parts are added into it). VMC_HOPPER_GEMM_STAGES changes the pipeline. */
static const char *gemm_variant = "";   /* (the knobs' setting the GEMM benches run under, for their rows) */
static void bench_hopper_gemm_t(int M, int N, int K, bool ta, bool tb, DType ct) {
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = ta ? M : K, .ldb = tb ? K : N, .ta = ta, .tb = tb,
                           .c_bf16 = ct == DT_BF16, .alpha = 1, .c_align = 16,
                           .tile_n = N <= 128 ? 128 : 256};   /* (as program_templates.c picks) */
    KernelLaunch l;
    char *src = template_gemm_hopper(&spec, &l);
    const char *sk = src ? strstr(src, "#define HG_SPLITK ") : NULL;
    const int parts = sk ? atoi(sk + strlen("#define HG_SPLITK ")) : 1;
    Kernel k = load_kernel_for(src, &l, NVRTC_ARCH_SM90A);
    k.l.grid[0] = cuda_hopper_grid(cu, k.fn, &l);   /* as the runtime launches it */
    const size_t cs = (size_t)dtype_size(ct);
    CUdeviceptr a = dalloc((size_t)M * K * 2), b = dalloc((size_t)N * K * 2), c = dalloc((size_t)M * N * cs);
    CU_CHECK(cu->cuMemsetD8(a, 0x3c, (size_t)M * K * 2));
    CU_CHECK(cu->cuMemsetD8(b, 0x3c, (size_t)N * K * 2));
    CUdeviceptr ptrs[4] = {a, b, c, c};
    CUtensorMap maps[3];
    void *args[4] = {NULL, NULL, NULL, &ptrs[3]};
    cuda_tma_gemm_params(cu, &l, M, N, K, spec.lda, spec.ldb, ta, tb, ptrs, maps, args);
    LaunchCtx ck = {&k, args, ptrs};
    Gemm *g = gemm_new(0);
    LtCtx cl = {g, (GemmDesc){M, N, K, ta, tb, 1, 0, 0, 0, DT_BF16, DT_BF16, ct, false, false}, a, b, c};
    const float th = time_ms(run_launch, &ck, 3, 20), tl = time_ms(run_lt, &cl, 3, 20);
    const double flop = 2.0 * M * N * K;
    char split[32] = "";
    if (parts > 1) snprintf(split, sizeof split, ", K in %d parts", parts);
    printf("| gemm %dx%dx%d A%s B%s %s%s%s | hopper %.3f ms | %.0f TFLOP/s | cuBLASLt %.3f ms | %.0f TFLOP/s |\n", M,
           N, K, ta ? "^T" : "", tb ? "^T" : "", dtype_name(ct), split, gemm_variant, th, flop / th / 1e9, tl,
           flop / tl / 1e9);
    char what[160];
    gemm_describe(g, &cl.d, what, sizeof what);
    printf("  cuBLASLt's %s\n", what);
    if (l.cluster > 1) {   /* a persistent grid of more clusters than run at once waits for a second round */
        CUlaunchConfig cfg = {.gridDimX = l.grid[0], .gridDimY = 1, .gridDimZ = 1, .blockDimX = l.block[0],
                              .blockDimY = 1, .blockDimZ = 1, .sharedMemBytes = l.smem, .hStream = stream};
        int resident = 0;
        CU_CHECK(cu->cuOccupancyMaxActiveClusters(&resident, k.fn, &cfg));
        printf("  clusters of %u: %d resident at once, the grid %u CTAs\n", l.cluster, resident, l.grid[0]);
    }
    gemm_free(g);
    CUdeviceptr all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(k.mod));
}
static void bench_hopper_gemm(int M, int N, int K) { bench_hopper_gemm_t(M, N, K, false, true, DT_BF16); }

/* ARM-B's gradient products: the weight gradients dy^T x (A^T B, f32 C, K split in parts; K the tokens: pretraining's
 * 16384, fine-tuning's 25216) and the input gradients dy W (A B, bf16 C) */
static void bench_gradient_gemms(void) {
    static const int wgrad[][3] = {{2048, 768, 16384}, {768, 2048, 16384}, {1536, 768, 16384}, {768, 768, 16384},
                                   {512, 512, 16384},  {2048, 768, 25216}, {768, 2048, 25216}, {1536, 768, 25216}};
    static const int igrad[][3] = {{16384, 768, 2048}, {16384, 768, 1536}, {16384, 2048, 768}, {25216, 768, 2048},
                                   {25216, 1536, 768}};
    for (size_t i = 0; i < sizeof wgrad / sizeof wgrad[0]; i++)
        bench_hopper_gemm_t(wgrad[i][0], wgrad[i][1], wgrad[i][2], true, false, DT_F32);
    for (size_t i = 0; i < sizeof igrad / sizeof igrad[0]; i++)
        bench_hopper_gemm_t(igrad[i][0], igrad[i][1], igrad[i][2], false, false, DT_BF16);
    /* the weight gradients in 128 x 256 tiles (the template's choice above is 128 x 192 where its model says so) */
    setenv("VMC_HOPPER_GEMM", "1,256", 1);
    gemm_variant = ", 128x256 tiles";
    for (size_t i = 0; i < sizeof wgrad / sizeof wgrad[0]; i++)
        bench_hopper_gemm_t(wgrad[i][0], wgrad[i][1], wgrad[i][2], true, false, DT_F32);
    static const char *parts[] = {"2", "3", "5"};   /* K's parts forced, either tile */
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        setenv("VMC_HOPPER_GEMM_SPLITK", parts[i], 1);
        for (int t = 0; t < 2; t++) {
            setenv("VMC_HOPPER_GEMM", t ? "1,192" : "1,256", 1);
            gemm_variant = t ? ", forced, 128x192 tiles" : ", forced, 128x256 tiles";
            bench_hopper_gemm_t(2048, 768, 16384, true, false, DT_F32);
            bench_hopper_gemm_t(1536, 768, 16384, true, false, DT_F32);
        }
    }
    unsetenv("VMC_HOPPER_GEMM_SPLITK");
    unsetenv("VMC_HOPPER_GEMM");
    gemm_variant = "";
}

/* SwiGLU's input products: the fused kernel (both products, the gate, H and the two products stored) against the
 * two products by cuBLASLt (heuristic algorithms), which the step then finishes with an elementwise kernel. */
static void bench_swiglu(int M, int N, int K) {
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = K, .ldb = K, .tb = true, .c_bf16 = true, .alpha = 1,
                           .c_align = 16};
    KernelLaunch li, lt;   /* H alone, and H with the products */
    Kernel ki = load_kernel_for(template_gemm_swiglu(&spec, false, &li), &li, NVRTC_ARCH_SM90A);
    Kernel kt = load_kernel_for(template_gemm_swiglu(&spec, true, &lt), &lt, NVRTC_ARCH_SM90A);
    CUdeviceptr a = dalloc((size_t)M * K * 2), b = dalloc((size_t)N * K * 2), bias = dalloc((size_t)N * 4);
    CUdeviceptr h = dalloc((size_t)M * N * 2), p1 = dalloc((size_t)M * N * 2), p2 = dalloc((size_t)M * N * 2);
    CU_CHECK(cu->cuMemsetD8(a, 0x3c, (size_t)M * K * 2));
    CU_CHECK(cu->cuMemsetD8(b, 0x3c, (size_t)N * K * 2));
    CU_CHECK(cu->cuMemsetD8(bias, 0, (size_t)N * 4));
    CUdeviceptr pi[8] = {a, b, b, bias, bias, h, 0, 0}, pt[8] = {a, b, b, bias, bias, h, p1, p2};
    CUtensorMap mi[8], mt[8];
    void *args_inf[8], *args_train[8];
    cuda_tma_swiglu_params(cu, &ki.l, M, N, K, K, K, pi, mi, args_inf);
    cuda_tma_swiglu_params(cu, &kt.l, M, N, K, K, K, pt, mt, args_train);
    LaunchCtx ci = {&ki, args_inf, NULL}, ct = {&kt, args_train, NULL};
    Gemm *g = gemm_new(0);
    LtCtx cl = {g, (GemmDesc){M, N, K, false, true, 1, 0, 0, 0, DT_BF16, DT_BF16, DT_BF16, false, false}, a, b, p1};
    const float ti = time_ms(run_launch, &ci, 3, 20), tt = time_ms(run_launch, &ct, 3, 20), tl = time_ms(run_lt, &cl, 3, 20);
    printf("| swiglu %dx%dx%d%s | fused %.3f ms (with the products %.3f) | %.0f TFLOP/s | cuBLASLt 2 x %.3f ms |\n", M, N,
           K, gemm_variant, ti, tt, 4.0 * M * N * K / ti / 1e9, tl);
    gemm_free(g);
    CUdeviceptr all[6] = {a, b, bias, h, p1, p2};
    for (int i = 0; i < 6; i++) CU_CHECK(cu->cuMemFree(all[i]));
    CU_CHECK(cu->cuModuleUnload(ki.mod));
    CU_CHECK(cu->cuModuleUnload(kt.mod));
}

/* SwiGLU's backward in one kernel against cuBLASLt's product dh = dY W (W stored [K][N], as the step's graph has
 * it), which the step then finishes with an elementwise pass that reads dh, P1, P2 and writes G1, G2 (5 M N bf16). */
static void bench_swiglu_bwd(int M, int N, int K) {
    SkinnyGemmSpec spec = {.M = M, .N = N, .K = K, .lda = K, .ldb = K, .tb = true, .c_bf16 = true, .alpha = 1,
                           .c_align = 16};
    KernelLaunch l, lt;
    Kernel k = load_kernel_for(template_gemm_swiglu_bwd(&spec, &l, &lt), &l, NVRTC_ARCH_SM90A);
    Kernel kt = {k.mod, NULL, lt};
    CU_CHECK(cu->cuModuleGetFunction(&kt.fn, k.mod, lt.name));
    const size_t mn = (size_t)M * N, bytes[10] = {(size_t)M * K * 2, (size_t)N * K * 2, mn * 2, mn * 2, (size_t)N * 4,
                                                  (size_t)N * 4, mn * 2, mn * 2, (size_t)N * 4, (size_t)N * 4};
    CUdeviceptr ptrs[10];   /* A, B, P1, P2, bias1, bias2, G1, G2, S1, S2 */
    for (int q = 0; q < 10; q++) {
        ptrs[q] = dalloc(bytes[q]);
        CU_CHECK(cu->cuMemsetD8(ptrs[q], q < 4 ? 0x3c : 0, bytes[q]));
    }
    CUtensorMap maps[3];
    void *args[10];
    cuda_tma_gemm_params(cu, &l, M, N, K, K, K, false, true, ptrs, maps, args);
    for (int q = 3; q < 10; q++) args[q] = &ptrs[q];
    k.l.grid[0] = cuda_hopper_grid(cu, k.fn, &l);
    LaunchCtx ck = {&k, args, NULL};
    void *targs[2] = {&ptrs[2], &ptrs[1]};   /* (any [K][N] values) */
    LaunchCtx ct = {&kt, targs, NULL};
    Gemm *g = gemm_new(0);
    LtCtx cl = {g, (GemmDesc){M, N, K, false, false, 1, 0, 0, 0, DT_BF16, DT_BF16, DT_BF16, false, false}, ptrs[0],
                ptrs[1], ptrs[6]};
    const float tf = time_ms(run_launch, &ck, 3, 20), tt = time_ms(run_launch, &ct, 3, 20), tl = time_ms(run_lt, &cl, 3, 20);
    printf("| swiglu backward %dx%dx%d, %s | fused %.3f ms + W's transpose %.3f | cuBLASLt's dh %.3f ms + a pass of %.0f MB |\n",
           M, N, K, swiglu_bwd_name, tf, tt, tl, 5.0 * (double)mn * 2 / 1e6);
    gemm_free(g);
    for (int i = 0; i < 10; i++) CU_CHECK(cu->cuMemFree(ptrs[i]));
    CU_CHECK(cu->cuModuleUnload(k.mod));
}

/* ARM-B's large products A B^T (fine-tuning's 25216 rows: in_proj, SwiGLU's input and output; pretraining's 16384; an older
 * pretraining's 18432) and
 * 8192^3, under the variant the caller set */
static void bench_big_gemms(void) {
    static const int shapes[][3] = {{25216, 1536, 768}, {25216, 2048, 768}, {25216, 768, 2048}, {18432, 768, 768},
                                    {18432, 768, 2048}, {16384, 768, 768},  {16384, 1536, 768}, {16384, 768, 2048},
                                    {8192, 8192, 8192}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        bench_hopper_gemm(shapes[i][0], shapes[i][1], shapes[i][2]);
}

enum { BENCH_ALL, BENCH_CONV, BENCH_SCAN };
static void bench(int part) {
    CopyCtx c = {dalloc((size_t)1 << 30), dalloc((size_t)1 << 30), (size_t)1 << 30};
    CU_CHECK(cu->cuMemsetD8(c.a, 0x3c, c.bytes));
    float t = time_ms(run_copy, &c, 2, 10);
    double copy_gbs = 2.0 * c.bytes / t / 1e6;
    CU_CHECK(cu->cuMemFree(c.a));
    CU_CHECK(cu->cuMemFree(c.b));
    printf("\nbench (median of 20; bytes = each input read once + each output written once)\n");
    printf("| device-to-device copy 1 GiB | %.3f ms | %.0f GB/s (read+write) |\n", t, copy_gbs);
    if (part == BENCH_CONV) {
        bench_conv(128, 197, 768, DT_BF16, copy_gbs);
        return;
    }
    bench_scan(scan_spec(128, 197, 768, DT_BF16, DT_F32), copy_gbs);
    bench_scan(ungated(scan_spec(128, 197, 768, DT_BF16, DT_BF16)), copy_gbs);   /* a 4-direction fine-tuning scan */
    bench_scan(recompute(scan_spec(128, 197, 768, DT_BF16, DT_F32)), copy_gbs);
    bench_scan(scan_spec(128, 128, 768, DT_BF16, DT_F32), copy_gbs);
    bench_scan(scan_spec(128, 197, 768, DT_F32, DT_F32), copy_gbs);
    bench_scan(recompute(scan_spec(128, 197, 768, DT_BF16, DT_BF16)), copy_gbs);   /* inference: no states */
    bench_scan(recompute(scan_spec(256, 197, 768, DT_BF16, DT_BF16)), copy_gbs);   /* ARM-B's inference batch */
    bench_scan(ungated(recompute(scan_spec(256, 197, 768, DT_BF16, DT_BF16))), copy_gbs);   /* ... its scans */
    if (part == BENCH_SCAN) return;
    bench_conv(128, 197, 768, DT_BF16, copy_gbs);
    bench_attn(128, 8, 128, 128, 64);
    if (arch == 90) {   /* ARM-B's Linears */
        bench_big_gemms();
        bench_swiglu(25216, 2048, 768);
        bench_swiglu(50432, 2048, 768);
    }
}

/* SwiGLU's backward in the epilogue against doubles: the default at two shapes, then every other variant. */
static void check_swiglu_bwd_variants(void) {
    check_swiglu_bwd_gpu(300, 520, 200, 43);
    check_swiglu_bwd_gpu(1000, 2048, 768, 44);
    for (int v = 1; v < SWIGLU_BWD_VARIANTS; v++) {
        swiglu_bwd_variant(v);
        check_swiglu_bwd_gpu(300, 520, 200, 45 + v);
    }
    swiglu_bwd_variant(0);
}

/* Each variant timed at pretraining's and fine-tuning's shapes, beside cuBLASLt's product and the pass it saves. */
static void bench_swiglu_bwd_variants(void) {
    for (int v = 0; v < SWIGLU_BWD_VARIANTS; v++) {
        swiglu_bwd_variant(v);
        bench_swiglu_bwd(16384, 2048, 768);
        bench_swiglu_bwd(25216, 2048, 768);
    }
    swiglu_bwd_variant(0);
}

int main(int argc, char **argv) {
    bool do_bench = argc > 1 && !strcmp(argv[1], "--bench");
    if (!cuda_available()) {
        printf("test_scan_gpu: skipped (%s)\n", cuda_unavailable_reason());
        return 77;
    }
    CUdevice dev = cuda_init_device(0);
    arch = cuda_device_arch(dev);
    cu = cuda_api();
    char name[128];
    CU_CHECK(cu->cuDeviceGetName(name, sizeof name, dev));
    printf("device: %s (sm_%d)\n", name, arch);
    CU_CHECK(cu->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    if (argc > 1 && !strcmp(argv[1], "--bench-gemm")) {   /* the Hopper GEMM's rows alone */
        if (arch == 90) {
            check_hopper_gemm(200, 136, 200, false, DT_F32, 30);
            check_hopper_gemm(300, 520, 1000, true, DT_BF16, 31);   /* + acc, stages reused, partial tiles */
            check_hopper_gemm(130, 75, 72, true, DT_F32, 32);       /* odd N: one by one */
            const char *store = getenv("VMC_HOPPER_GEMM_STORE");   /* (a variant's setting, for the benches) */
            char *kept = store ? strdup(store) : NULL;
            setenv("VMC_HOPPER_GEMM_STORE", "1", 1);                 /* a bf16 C stored by TMA */
            check_hopper_gemm(300, 520, 1000, false, DT_BF16, 34);
            check_swiglu_gpu(200, 136, 200, true, 33);               /* SwiGLU with its products so */
            setenv("VMC_HOPPER_GEMM_STORE", "0", 1);                 /* the same through the f32 staging buffer */
            check_hopper_gemm(300, 520, 1000, false, DT_BF16, 35);
            setenv("VMC_HOPPER_GEMM_STORE", "2", 1);                 /* and from registers, 4 stages (the default) */
            check_hopper_gemm(300, 520, 1000, false, DT_BF16, 38);
            check_swiglu_gpu(200, 136, 200, true, 41);
            if (kept) setenv("VMC_HOPPER_GEMM_STORE", kept, 1);
            else unsetenv("VMC_HOPPER_GEMM_STORE");
            free(kept);
            check_hopper_gemm(1000, 80, 264, false, DT_BF16, 39);   /* N = 80: 128 columns a CTA */
            check_hopper_gemm(1000, 264, 48, false, DT_BF16, 40);   /* K = 48: one slice */
            setenv("VMC_HOPPER_GEMM_PERSIST", "0", 1);   /* a CTA a tile: 256 of them, launched as those that fit */
            check_hopper_gemm(4096, 2048, 64, false, DT_BF16, 42);
            unsetenv("VMC_HOPPER_GEMM_PERSIST");
            check_swiglu_gpu(200, 136, 200, false, 36);
            check_swiglu_gpu(130, 130, 136, true, 37);    /* N % 8 != 0: pairs */
            setenv("VMC_HOPPER_GEMM_PINGPONG", "1", 1);   /* each consumer warpgroup a 128 x 128 tile, in turn */
            check_hopper_gemm(300, 520, 1000, false, DT_BF16, 50);
            check_hopper_gemm(1000, 2048, 768, false, DT_BF16, 51);
            unsetenv("VMC_HOPPER_GEMM_PINGPONG");
            /* MN-major operands: B [K][N] (dy W) + acc; A [K][M] with B [N][K]; A^T B into f32 with K in 2 parts
             * (C zeroed first), in 3 (odd N: one by one) and at ARM-B's weight-gradient shape (2 parts) */
            check_hopper_gemm_t(300, 520, 1000, false, false, true, DT_BF16, 60);
            check_hopper_gemm_t(296, 264, 200, true, true, false, DT_BF16, 61);
            check_hopper_gemm_t(200, 520, 1000, true, false, false, DT_F32, 62);
            setenv("VMC_HOPPER_GEMM_SPLITK", "3", 1);
            check_hopper_gemm_t(136, 75, 520, true, true, false, DT_F32, 63);
            unsetenv("VMC_HOPPER_GEMM_SPLITK");
            check_hopper_gemm_t(2048, 768, 1024, true, false, false, DT_F32, 64);   /* (128 x 192 tiles: B's
                                                                                         3 boxes multicast 2 + 1) */
            setenv("VMC_HOPPER_GEMM", "1,256", 1);   /* the same in 128 x 256 tiles */
            check_hopper_gemm_t(2048, 768, 1024, true, false, false, DT_F32, 65);
            unsetenv("VMC_HOPPER_GEMM");
            check_swiglu_bwd_variants();
            bench_gradient_gemms();
            bench_big_gemms();
            bench_hopper_gemm(25216, 80, 768);   /* the mixer's x_proj and dt_proj forwards */
            bench_hopper_gemm(25216, 768, 48);
            bench_swiglu(25216, 2048, 768);   /* (with the products: ping-pong, the default) */
            setenv("VMC_HOPPER_GEMM_PINGPONG", "0", 1);   /* both warpgroups on each tile */
            gemm_variant = ", cooperative";
            check_swiglu_gpu(200, 136, 200, true, 52);
            bench_swiglu(25216, 2048, 768);   /* (H alone is cooperative, stored by TMA, either way) */
            setenv("VMC_HOPPER_GEMM_PINGPONG", "1", 1);   /* each consumer warpgroup a 128 x 128 tile, in turn */
            gemm_variant = ", ping-pong";
            bench_big_gemms();
            unsetenv("VMC_HOPPER_GEMM_PINGPONG");
            setenv("VMC_HOPPER_GEMM", "1,192", 1);   /* 128 x 192 tiles: 768 columns in 4, not 3 of 256 */
            gemm_variant = ", 128x192 tiles";
            check_hopper_gemm(300, 520, 1000, false, DT_BF16, 53);
            check_hopper_gemm(1000, 768, 768, false, DT_BF16, 54);
            bench_big_gemms();
            unsetenv("VMC_HOPPER_GEMM");
            gemm_variant = "";
            bench_swiglu_bwd_variants();
        }
        return failures != 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-swiglu-bwd")) {   /* SwiGLU's backward rows of --bench-gemm alone */
        if (arch == 90) {
            check_swiglu_bwd_variants();
            bench_swiglu_bwd_variants();
        }
        return failures != 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-conv")) {   /* the conv1d rows of --bench alone (VMC_CONV_BWD sweeps) */
        bench(BENCH_CONV);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-scan")) {   /* the scan rows of --bench alone (template knob sweeps) */
        bench(BENCH_SCAN);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--profile")) {   /* one fwd + bwd at ARM-B fine-tuning shape, for ncu */
        ScanSpec s = scan_spec(128, 197, 768, DT_BF16, DT_F32);
        if (argc > 2 && !strcmp(argv[2], "infer")) s = recompute(scan_spec(256, 197, 768, DT_BF16, DT_BF16));   /* b256 inference */
        if (argc > 2 && !strcmp(argv[2], "ungated")) s = ungated(scan_spec(128, 197, 768, DT_BF16, DT_BF16));   /* 4-direction ft */
        KernelLaunch lf, lb;
        Kernel kf = load_kernel(template_scan_fwd(&s, &lf), &lf), kb = load_kernel(template_scan_bwd(&s, &lb), &lb);
        ScanData x = scan_data(s, 98);
        scan_run_fwd(&kf, &x);
        scan_run_bwd(&kb, &x);
        sync_check();
        scan_data_free(&x);
        return 0;
    }
    /* --small: the small shapes only, for compute-sanitizer runs */
    bool small = argc > 1 && !strcmp(argv[1], "--small");
    check_scan(scan_spec(3, 37, 80, DT_F32, DT_F32), 1, true);          /* partial chunk, lanes past D */
    check_scan(recompute(scan_spec(3, 37, 80, DT_F32, DT_F32)), 1, false);
    check_scan(scan_spec(2, 8, 64, DT_F32, DT_F32), 5, false);           /* one chunk: no checkpoints */
    check_scan(ungated(scan_spec(3, 37, 80, DT_F32, DT_F32)), 10, false);
    check_scan(ungated(recompute(scan_spec(3, 37, 80, DT_BF16, DT_BF16))), 11, false);
    check_conv(5, 37, 40, 4, DT_BF16, false, 7);
    check_conv_silu_bwd(5, 37, 40, 4, DT_BF16, 8);
    check_attn(2, 2, 60, 60, 64, DT_BF16, 16);   /* partial tiles, block-causal */
    check_attn(2, 2, 60, 44, 40, DT_F32, 17);    /* the scalar path */
    if (!small) {
        check_attn(4, 8, 128, 128, 64, DT_BF16, 18);   /* ARM-B pretraining's decoder */
        check_attn(2, 4, 140, 140, 64, DT_BF16, 19);   /* clusters of 2 x 2 (cs = 2): L = 140 */
        check_attn(1, 2, 96, 200, 128, DT_BF16, 20);   /* E = 128, L != S */
        check_conv_silu_bwd(3, 197, 768, 4, DT_BF16, 9);
        check_scan(scan_spec(2, 197, 768, DT_F32, DT_F32), 2, false);    /* ARM-B fine-tuning */
        check_scan(recompute(scan_spec(2, 197, 768, DT_BF16, DT_F32)), 2, false);
        check_scan(scan_spec(2, 128, 1024, DT_BF16, DT_F32), 3, false);  /* ARM-L pretraining, bf16 activations */
        check_scan(scan_spec(1, 577, 1536, DT_BF16, DT_BF16), 4, false); /* ARM-H at 384 px, bf16 in and out */
        check_conv(3, 197, 768, 4, DT_F32, true, 6);
        check_gemms();
    }
    if (arch == 90) {   /* vmc's Hopper GEMM: partial tiles every way, then several CTAs and a long K */
        check_hopper_gemm(200, 136, 200, false, DT_F32, 30);
        check_hopper_gemm(130, 264, 72, true, DT_BF16, 31);
        if (!small) check_hopper_gemm(1000, 520, 768, true, DT_F32, 32);
        check_swiglu_gpu(200, 136, 200, true, 33);
        check_swiglu_gpu(130, 130, 136, false, 38);
        if (!small) check_swiglu_gpu(600, 520, 768, true, 34);
    }
    if (do_bench) bench(BENCH_ALL);
    printf(failures ? "test_scan_gpu: %d checks FAILED\n" : "test_scan_gpu: ok\n", failures);
    return failures != 0;
}
