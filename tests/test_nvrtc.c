/* test_nvrtc.c — [cpu] every device template instantiates and NVRTC-compiles for sm_80 and sm_90 at the ARM shapes
 * (L in {128, 197, 577}, D in {768, 1024, 1536}, N 16), f32 and bf16; the disk cache returns the same cubin; a
 * broken source fails with the log and a dumped file instead of exiting; ptxas' verbose lines are kept and parsed.
 * Needs libnvrtc (no GPU). */
#define _GNU_SOURCE   /* memmem */
#include "nvrtc_compile.h"
#include "ptxas_info.h"
#include "template.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                                        fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

/* Compiles src, checks the kernel symbol is in the cubin; returns the cubin size (0 on failure). */
static size_t compile_ok(const char *src, const KernelLaunch *l, int arch, bool *cached) {
    NvrtcBinary bin;
    char err[2048];
    bool ok = nvrtc_compile(src, l->name, arch, NULL, 0, &bin, err, sizeof err);
    EXPECT(ok, "%s sm_%d: %s", l->name, arch, err);
    if (!ok) return 0;
    bool found = memmem(bin.cubin, bin.size, l->name, strlen(l->name)) != NULL;
    EXPECT(found, "%s sm_%d: symbol missing from the cubin", l->name, arch);
    if (cached) *cached = bin.from_cache;
    size_t n = bin.size;
    nvrtc_binary_free(&bin);
    return n;
}

/* Activations (u, delta, Bm/Cm, z, y, dy) in io, parameters in f32, as a bf16 step stores them; gated or not. */
static ScanSpec scan_spec(int B, int L, int D, DType io, bool gated) {
    return (ScanSpec){.B = B, .L = L, .D = D, .N = 16, .gated = gated, .u = io, .delta = io, .a_log = DT_F32, .bc = io,
                      .d = DT_F32, .delta_bias = DT_F32, .z = io, .out = io, .dout = io};
}

/* The scans' special-function operations (the floor of vmc compile --dump-launches): per element N exp2 of delta A
 * and softplus' 2 forward, twice the states and the sigmoid of delta backward, and the gate's sigmoid each. */
static void scan_sfu_counts(void) {
    ScanSpec s = {.B = 2, .L = 3, .D = 4, .N = 16, .gated = true};
    EXPECT(template_scan_sfu_ops(&s, false) == 24 * 20 && template_scan_sfu_ops(&s, true) == 24 * 38,
           "gated scan: %g forward, %g backward special-function ops", template_scan_sfu_ops(&s, false),
           template_scan_sfu_ops(&s, true));
    s.gated = false;
    s.N = 8;
    EXPECT(template_scan_sfu_ops(&s, false) == 24 * 10 && template_scan_sfu_ops(&s, true) == 24 * 20,
           "ungated scan, N 8: %g forward, %g backward special-function ops", template_scan_sfu_ops(&s, false),
           template_scan_sfu_ops(&s, true));
}

static void compile_all_shapes(void) {
    static const int Ls[] = {128, 197, 577}, Ds[] = {768, 1024, 1536}, archs[] = {80, 90};
    int n = 0;
    for (int a = 0; a < 2; a++)
        for (int li = 0; li < 3; li++)
            for (int di = 0; di < 3; di++) {
                /* bf16 activations for one D per L, f32 elsewhere: both dtype paths at every L; the gate (one
                 * direction's mixer) but for the last D (a multi-direction mixer's scans) */
                DType io = di == 0 ? DT_BF16 : DT_F32;
                ScanSpec s = scan_spec(128, Ls[li], Ds[di], io, di != 2);
                KernelLaunch l;
                char *src = template_scan_fwd(&s, &l);
                EXPECT(l.grid[0] * l.block[0] >= (unsigned)Ds[di] && l.grid[1] == 128, "scan_fwd grid");
                n += compile_ok(src, &l, archs[a], NULL) > 0;
                free(src);
                src = template_scan_bwd(&s, &l);
                EXPECT(l.nzero == 1 && l.zero[0].param == 9, "scan_bwd zero range");
                EXPECT(l.grid[0] * l.block[0] >= (unsigned)Ds[di], "scan_bwd grid");
                n += compile_ok(src, &l, archs[a], NULL) > 0;
                free(src);
                Conv1dSpec c = {128, Ls[li], Ds[di], 4, io, DT_F32, DT_F32, io, io, di == 1, true, true, true};
                c.silu_out = di != 1;   /* training's forward: y and silu(y) */
                c.out2 = io;
                src = template_conv1d_fwd(&c, &l);
                n += compile_ok(src, &l, archs[a], NULL) > 0;
                free(src);
                src = template_conv1d_bwd(&c, &l);
                EXPECT(l.nzero == 2, "conv1d_bwd zero ranges");
                n += compile_ok(src, &l, archs[a], NULL) > 0;
                free(src);
            }
    printf("compiled %d kernels (scan fwd/bwd, conv1d fwd/bwd x 9 shapes x sm_80, sm_90)\n", n);
    EXPECT(n == 72, "expected 72 compiled kernels, got %d", n);
}

/* The attention template at ARM-B pretraining's decoder shape (batch 128, 8 heads, L = S = 128, E = 64, bf16) for
 * each architecture's shared memory: the tensor-core path everywhere, its backward's key chunk 64 where 227 or 163 KB
 * allow it and 32 in Ada's 99 KB, launches within the limit; and the scalar path (f32) everywhere. All compile. */
static void attention_per_arch(void) {
    static const int archs[] = {80, 89, 90}, chunks[] = {64, 32, 64};
    int n = 0;
    for (int a = 0; a < 3; a++)
        for (int f32 = 0; f32 < 2; f32++) {
            const DType io = f32 ? DT_F32 : DT_BF16;
            AttnSpec s = {.B = 128, .L = 128, .S = 128, .H = 8, .E = 64, .scale = 0.125f, .q = io, .k = io, .v = io,
                          .mask = DT_F32, .dout = io, .out = io, .copy_parts = f32 ? 0 : 7};
            s.smem_limit = template_smem_limit(archs[a]);
            EXPECT(template_attn_fast(&s, true) == !f32, "attention sm_%d %s: fast path %d", archs[a],
                   dtype_name(io), template_attn_fast(&s, true));
            for (int bwd = 0; bwd < 2; bwd++) {
                KernelLaunch l;
                char *src = bwd ? template_attn_bwd(&s, &l) : template_attn_fwd(&s, &l);
                char want[32];
                snprintf(want, sizeof want, "#define ATTN_CHUNK %d\n", chunks[a]);
                EXPECT(f32 || strstr(src, want), "attention sm_%d: backward chunk %d expected", archs[a], chunks[a]);
                EXPECT(l.smem <= (unsigned)s.smem_limit && l.grid[0] == 8 && l.grid[1] == 128,
                       "attention sm_%d: %u B shared (limit %d), grid %u x %u", archs[a], l.smem, s.smem_limit,
                       l.grid[0], l.grid[1]);
                n += compile_ok(src, &l, archs[a], NULL) > 0;
                free(src);
            }
        }
    printf("compiled %d attention kernels (forward, backward; bf16 and f32; sm_80, sm_89, sm_90)\n", n);
    EXPECT(n == 12, "expected 12 compiled attention kernels, got %d", n);
}

static void cache_roundtrip(void) {
    ScanSpec s = scan_spec(2, 37, 96, DT_F32, true);
    KernelLaunch l;
    char *src = template_scan_fwd(&s, &l);
    bool c1 = true, c2 = false;
    size_t n1 = compile_ok(src, &l, 90, &c1), n2 = compile_ok(src, &l, 90, &c2);
    EXPECT(!c1 && c2 && n1 == n2 && n1 > 0, "cache: first %d (%zu B), second %d (%zu B)", c1, n1, c2, n2);
    free(src);
}

/* PTXAS_VERBOSE: ptxas' lines reach NvrtcBinary.log (also from the cache) and ptxas_parse reads each entry's
 * registers, stack and spills: a kernel holding 96 live values under a 32-register cap spills, one without a cap
 * does not. */
static void ptxas_lines(void) {
    static const char *const SRC =
        "extern \"C\" __global__ void __launch_bounds__(%d, %d) k_%s(const float *x, float *y) {\n"
        "    float v[96];\n"
        "#pragma unroll\n"
        "    for (int i = 0; i < 96; i++) v[i] = x[threadIdx.x * 96 + i];\n"
        "    float s = 0.f;\n"
        "#pragma unroll\n"
        "    for (int r = 0; r < 8; r++)\n"
        "#pragma unroll\n"
        "        for (int i = 0; i < 96; i++) s += v[i] * v[(i * 7 + r) %% 96];\n"
        "    y[threadIdx.x] = s;\n"
        "}\n";
    const char *opts[] = {PTXAS_VERBOSE};
    for (int capped = 0; capped < 2; capped++) {
        char src[1024], name[16];
        snprintf(name, sizeof name, capped ? "capped" : "free");
        snprintf(src, sizeof src, SRC, capped ? 1024 : 128, capped ? 2 : 1, name);
        for (int pass = 0; pass < 2; pass++) {   /* compiled, then from the cache */
            NvrtcBinary bin;
            char err[2048];
            const bool ok = nvrtc_compile(src, name, 90, opts, 1, &bin, err, sizeof err);
            EXPECT(ok && bin.log && bin.from_cache == (pass == 1), "%s pass %d: %s", name, pass, ok ? "no log" : err);
            PtxasKernel k[4];
            const int n = ok && bin.log ? ptxas_parse(bin.log, k, 4) : 0;
            EXPECT(n == 1 && strstr(k[0].name, name) && k[0].registers > 0, "%s: %d kernels in the log", name, n);
            if (n == 1 && capped)
                EXPECT(k[0].registers <= 32 && k[0].spill_stores > 0 && k[0].spill_loads > 0,
                       "capped: %d registers, %d B spill stores", k[0].registers, k[0].spill_stores);
            if (n == 1 && !capped)
                EXPECT(k[0].registers > 96 && !k[0].stack && !k[0].spill_stores, "free: %d registers, %d B stack",
                       k[0].registers, k[0].stack);
            if (n == 1 && pass == 0) printf("ptxas, %s: %d registers, %d B stack, %d B spill stores, %d B spill loads\n",
                                            k[0].name, k[0].registers, k[0].stack, k[0].spill_stores, k[0].spill_loads);
            nvrtc_binary_free(&bin);
        }
    }
}

static void compile_error_reported(void) {
    NvrtcBinary bin;
    char err[2048];
    fprintf(stderr, "(an NVRTC error log is expected next)\n");
    bool ok = nvrtc_compile("extern \"C\" __global__ void k() { undefined_thing(); }\n", "broken", 90, NULL, 0, &bin,
                            err, sizeof err);
    EXPECT(!ok, "a broken source compiled");
    const char *p = strstr(err, "source written to ");
    EXPECT(p && access(p + strlen("source written to "), R_OK) == 0, "no dumped source: %s", err);
}

/* The Hopper GEMM for spec s with the knob `knob` set to `value`, compiled for sm_90a: its launch in *l and ptxas'
 * figures in *pk; false (with the error printed) when it is refused or does not compile. */
static bool hopper_variant(const char *knob, const char *value, const SkinnyGemmSpec *s, KernelLaunch *l,
                           PtxasKernel *pk) {
    setenv(knob, value, 1);
    char *src = template_gemm_hopper(s, l);
    unsetenv(knob);
    *pk = (PtxasKernel){.registers = -1, .spill_stores = -1};
    const char *opts[] = {PTXAS_VERBOSE};
    NvrtcBinary bin;
    char err[2048] = "refused";
    const bool ok = src && nvrtc_compile(src, l->name, NVRTC_ARCH_SM90A, opts, 1, &bin, err, sizeof err);
    if (!ok) fprintf(stderr, "hopper GEMM with %s=%s: %s\n", knob, value, err);
    PtxasKernel k[2];
    const bool serialized = ok && bin.log && strstr(bin.log, "serialized");   /* (ptxas: wgmma waits between) */
    if (serialized) fprintf(stderr, "hopper GEMM with %s=%s: wgmma serialized: %s\n", knob, value, bin.log);
    const bool one = ok && bin.log && !serialized && ptxas_parse(bin.log, k, 2) == 1;
    if (one) *pk = k[0];
    if (ok) nvrtc_binary_free(&bin);
    free(src);
    return one;
}

/* The Hopper GEMM (hopper_gemm.cuh) compiles for sm_90a (its wgmma needs the arch-specific target) at ARM-B's
 * Linear shapes and a partial one, without spills or a stack frame, and is refused for plain sm_90. */
static void hopper_gemm(void) {
    static const SkinnyGemmSpec specs[] = {
        {.M = 25216, .N = 2048, .K = 768, .lda = 768, .ldb = 768, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16},
        {.M = 18432, .N = 768, .K = 2048, .lda = 2048, .ldb = 2048, .tb = true, .acc = true, .alpha = 0.25f,
         .c_align = 16},
        {.M = 1000, .N = 9, .K = 136, .lda = 136, .ldb = 136, .tb = true, .alpha = 1, .c_align = 4},
        /* the gradients: dy W (B stored [K][N], + acc) and dy^T x (A and B MN-major, f32, K split in parts) */
        {.M = 16384, .N = 768, .K = 2048, .lda = 2048, .ldb = 768, .acc = true, .c_bf16 = true, .alpha = 1,
         .c_align = 16},
        {.M = 2048, .N = 768, .K = 16384, .lda = 2048, .ldb = 768, .ta = true, .alpha = 1, .c_align = 16},
        /* SwiGLU's input gradient dy1 W1 + dy2 W2 as one product over both K (program_pair.c) */
        {.M = 16384, .N = 768, .K = 4096, .lda = 2048, .ldb = 768, .c_bf16 = true, .alpha = 1, .c_align = 16,
         .k1 = 2048},
    };
    const char *opts[] = {PTXAS_VERBOSE};
    for (int k = 0; k < 6; k++) {
        KernelLaunch l;
        char *src = template_gemm_hopper(&specs[k], &l);
        EXPECT(src, "hopper GEMM %d refused", k);
        if (!src) continue;
        NvrtcBinary bin;
        char err[2048];
        const bool ok = nvrtc_compile(src, l.name, NVRTC_ARCH_SM90A, opts, 1, &bin, err, sizeof err);
        EXPECT(ok, "hopper GEMM %d sm_90a: %s", k, err);
        PtxasKernel pk[2];
        const int n = ok && bin.log ? ptxas_parse(bin.log, pk, 2) : 0;
        EXPECT(n == 1 && !pk[0].spill_stores && !pk[0].stack, "hopper GEMM %d: %d kernels in ptxas' log, %d B spilled",
               k, n, n ? pk[0].spill_stores : -1);
        /* ptxas serialises wgmmas it cannot prove safe to overlap (with a "Potential Performance Loss" warning) */
        EXPECT(!(ok && bin.log && strstr(bin.log, "serialized")), "hopper GEMM %d: wgmma serialized: %s", k, bin.log);
        if (n == 1 && k == 0) printf("hopper GEMM sm_90a: %d registers\n", pk[0].registers);
        if (n == 1 && k == 4) printf("hopper GEMM A^T B, K split, sm_90a: %d registers\n", pk[0].registers);
        if (n == 1 && k == 5) printf("hopper GEMM A B + A2 B2, sm_90a: %d registers\n", pk[0].registers);
        EXPECT(k != 5 || (strstr(src, "#define HG_KCAT 2048") && l.tma_rows[4] == l.tma_rows[0] &&
                          l.tma_rows[5] == l.tma_rows[1]),
               "hopper GEMM %d: not two products with A2 and B2 as tensor maps", k);
        EXPECT(k != 4 || (strstr(src, "#define HG_SPLITK 2") && strstr(src, "#define HG_TILE_N 192")),
               "hopper GEMM %d: not K in 2 parts of 128 x 192 tiles", k);
        if (ok) nvrtc_binary_free(&bin);
        if (k == 0) {   /* wgmma is not in plain sm_90 */
            fprintf(stderr, "(a failure to compile for sm_90 expected next)\n");
            EXPECT(!nvrtc_compile(src, l.name, 90, NULL, 0, &bin, err, sizeof err), "hopper GEMM compiled for sm_90");
        }
        free(src);
    }
    /* a bf16 C without acc is stored by TMA (a tensor map); VMC_HOPPER_GEMM_STORE=0 stages it in f32 instead */
    KernelLaunch lv;
    PtxasKernel pv;
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_STORE", "1", &specs[0], &lv, &pv) && lv.tma_rows[2] == 64 &&
           !pv.spill_stores, "hopper GEMM stored by TMA: C tensor map %u, %d B spilled", lv.tma_rows[2], pv.spill_stores);
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_STORE", "0", &specs[0], &lv, &pv) && lv.tma_rows[2] == 0 &&
           !pv.spill_stores, "hopper GEMM staged stores: C tensor map %u, %d B spilled", lv.tma_rows[2], pv.spill_stores);
    /* ... or from registers (VMC_HOPPER_GEMM_STORE=2): no shared memory but the stages, 4 of them */
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_STORE", "2", &specs[0], &lv, &pv) && lv.tma_rows[2] == 0 &&
           lv.smem == 4 * 49152 + 1280 && !pv.spill_stores, "hopper GEMM stored from registers: %u B shared, %d B spilled",
           lv.smem, pv.spill_stores);
    /* clusters of two CTAs (the default): B's tensor map in half tiles, the multicast, cluster barrier and remote
     * arrivals accepted by ptxas; VMC_HOPPER_GEMM_CLUSTER=1: single CTAs loading whole B tiles */
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_CLUSTER", "2", &specs[0], &lv, &pv) && lv.tma_rows[1] == 128 &&
           lv.cluster == 2 && lv.grid[0] % 2 == 0 && !pv.spill_stores,
           "hopper GEMM in clusters of 2: B boxes of %u rows, grid %u, %d B spilled", lv.tma_rows[1], lv.grid[0],
           pv.spill_stores);
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_CLUSTER", "1", &specs[0], &lv, &pv) && lv.tma_rows[1] == 256 &&
           lv.cluster == 1 && !pv.spill_stores, "hopper GEMM in single CTAs: B boxes of %u rows, %d B spilled",
           lv.tma_rows[1], pv.spill_stores);
    /* 128 x 192 tiles (VMC_HOPPER_GEMM=1,192): m64n192k16, stages of 40 KB: 5 with the register stores */
    EXPECT(hopper_variant("VMC_HOPPER_GEMM", "1,192", &specs[0], &lv, &pv) && lv.smem == 5 * 40960 + 1280 &&
           lv.tma_rows[1] == 96 && !pv.spill_stores, "hopper GEMM 128 x 192: %u B shared, B boxes of %u rows, %d B spilled",
           lv.smem, lv.tma_rows[1], pv.spill_stores);
    /* ping-pong (VMC_HOPPER_GEMM_PINGPONG=1): each consumer warpgroup a 128 x 128 tile, 6 stages of 32 KB, one CTA */
    EXPECT(hopper_variant("VMC_HOPPER_GEMM_PINGPONG", "1", &specs[0], &lv, &pv) && lv.smem == 6 * 32768 + 1280 &&
           lv.block[0] == 384 && lv.tma_rows[1] == 64 && !pv.spill_stores,
           "hopper GEMM ping-pong: %u B shared, %u threads, B boxes of %u rows, %d B spilled", lv.smem, lv.block[0],
           lv.tma_rows[1], pv.spill_stores);
    /* 128 x 128 tiles: two CTAs of 288 threads an SM, so at most 112 registers a thread */
    EXPECT(hopper_variant("VMC_HOPPER_GEMM", "1,128", &specs[0], &lv, &pv) && lv.block[0] == 288 &&
           !pv.spill_stores && pv.registers <= 112, "hopper GEMM 128 x 128: %u threads, %d registers, %d B spilled",
           lv.block[0], pv.registers, pv.spill_stores);
    printf("hopper GEMM 128 x 128 sm_90a: %d registers\n", pv.registers);
    /* SwiGLU's input products in one kernel, ARM-B fine-tuning's shape, writing the products too: stored by TMA
     * (VMC_HOPPER_GEMM_STORE=1), from registers (the default: 4 stages, no other shared memory), and so in ping-pong
     * (6 stages of 32 KB) */
    for (int variant = 0; variant < 3; variant++) {
        const bool regs = variant > 0, pingpong = variant == 2;
        KernelLaunch l;
        setenv("VMC_HOPPER_GEMM_STORE", regs ? "2" : "1", 1);
        setenv("VMC_HOPPER_GEMM_PINGPONG", pingpong ? "1" : "0", 1);   /* (ping-pong: the default with products) */
        char *src = template_gemm_swiglu(&specs[0], true, &l);
        unsetenv("VMC_HOPPER_GEMM_STORE");
        unsetenv("VMC_HOPPER_GEMM_PINGPONG");
        EXPECT(src, "swiglu refused");
        const unsigned smem = pingpong ? 6 * 32768 + 1280 : 4 * 49152 + 1280;
        EXPECT(!regs || (l.smem == smem && !l.tma_rows[5]), "swiglu from registers: %u B shared", l.smem);
        NvrtcBinary bin;
        char err[2048];
        const bool ok = src && nvrtc_compile(src, l.name, NVRTC_ARCH_SM90A, opts, 1, &bin, err, sizeof err);
        EXPECT(ok, "swiglu sm_90a: %s", err);
        PtxasKernel pk[2];
        const int n = ok && bin.log ? ptxas_parse(bin.log, pk, 2) : 0;
        EXPECT(n == 1 && !pk[0].spill_stores && !pk[0].stack, "swiglu: %d kernels in ptxas' log", n);
        EXPECT(!(ok && bin.log && strstr(bin.log, "serialized")), "swiglu: wgmma serialized: %s", bin.log);
        if (n == 1)
            printf("swiglu sm_90a%s%s: %d registers\n", regs ? ", stored from registers" : "", pingpong ? ", ping-pong" : "",
                   pk[0].registers);
        if (ok) nvrtc_binary_free(&bin);
        free(src);
    }
    /* SwiGLU's backward in the epilogue (from registers, 4 stages), and the tuning variants test_scan_gpu times: P1,
     * P2 loaded 2, 4 or 6 visits ahead, none spilling; 128 x 128 tiles two CTAs an SM (3 stages of 32 KB; 96
     * registers a thread, as 18 warps share an SM's four register files: ptxas spills 72 bytes); ping-pong (6 stages
     * of 32 KB); P1, P2 copied by cp.async 4 visits ahead (a ring of 32 KB beside 4 stages) and 8 (64 KB, 3 stages);
     * ping-pong with a ring of 4 (6 stages of 32 KB beside it) */
    const char *tiles[9] = {NULL, "128"}, *aheads[9] = {NULL, NULL, "2", "4", "6"};
    const char *rings[9] = {[6] = "4", [7] = "8", [8] = "4"};
    for (int v = 0; v < 9; v++) {
        const bool pingpong = v == 5 || v == 8;
        if (tiles[v]) setenv("VMC_SWIGLU_BWD_TILE", tiles[v], 1);
        if (aheads[v]) setenv("VMC_SWIGLU_BWD_AHEAD", aheads[v], 1);
        if (rings[v]) setenv("VMC_SWIGLU_BWD_RING", rings[v], 1);
        if (pingpong) setenv("VMC_HOPPER_GEMM_PINGPONG", "2", 1);
        KernelLaunch lb, lt;
        char *src = template_gemm_swiglu_bwd(&specs[0], &lb, &lt);
        unsetenv("VMC_SWIGLU_BWD_TILE");
        unsetenv("VMC_SWIGLU_BWD_AHEAD");
        unsetenv("VMC_SWIGLU_BWD_RING");
        unsetenv("VMC_HOPPER_GEMM_PINGPONG");
        const int ring = rings[v] ? atoi(rings[v]) : 0;
        const unsigned smem = pingpong ? 6 * 32768 + ring * 8192 + 1280 : tiles[v] ? 3 * 32768 + 1280
                              : ring ? (ring > 4 ? 3 : 4) * 49152 + ring * 8192 + 1280 : 4 * 49152 + 1280;
        EXPECT(src && lb.smem == smem && !lb.tma_rows[2], "swiglu backward %d: %u B shared", v, src ? lb.smem : 0);
        NvrtcBinary bin;
        char err[2048];
        const bool ok = src && nvrtc_compile(src, lb.name, NVRTC_ARCH_SM90A, opts, 1, &bin, err, sizeof err);
        EXPECT(ok, "swiglu backward %d sm_90a: %s", v, err);
        PtxasKernel pk[2];
        const int n = ok && bin.log ? ptxas_parse(bin.log, pk, 2) : 0;   /* (and its transpose kernel) */
        EXPECT(!(ok && bin.log && strstr(bin.log, "serialized")), "swiglu backward %d: wgmma serialized: %s", v, bin.log);
        const int spill_max = tiles[v] ? 128 : 0;
        EXPECT(n == 2 && pk[0].spill_stores <= spill_max && pk[0].stack <= spill_max && !pk[1].spill_stores && !pk[1].stack,
               "swiglu backward %d: %d kernels in ptxas' log, spills %d B, stack %d B", v, n, n ? pk[0].spill_stores : 0,
               n ? pk[0].stack : 0);
        if (n == 2)
            printf("swiglu backward sm_90a%s, loads %s ahead, a ring of %d: %d and %d registers, %d B spilled\n",
                   tiles[v] ? ", 128 x 128 tiles" : pingpong ? ", ping-pong" : "", aheads[v] ? aheads[v] : "0", ring,
                   pk[0].registers, pk[1].registers, pk[0].spill_stores);
        if (ok) nvrtc_binary_free(&bin);
        free(src);
    }
}

int main(void) {
    char err[512], dir[] = "/tmp/vmc-nvrtc-test-XXXXXX";
    if (!nvrtc_api(err, sizeof err)) {
        fprintf(stderr, "test_nvrtc: NVRTC not loadable: %s\n", err);
        return 1;
    }
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    setenv("VMC_CACHE", dir, 1);
    int n;
    template_files(&n);
    EXPECT(n >= 4 && template_text("common.cuh") && template_text("selective_scan_bwd.cuh"), "templates embedded");
    scan_sfu_counts();
    cache_roundtrip();
    ptxas_lines();
    compile_error_reported();
    compile_all_shapes();
    attention_per_arch();
    hopper_gemm();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf(failures ? "test_nvrtc: %d FAILED\n" : "test_nvrtc: ok\n", failures);
    return failures != 0;
}
