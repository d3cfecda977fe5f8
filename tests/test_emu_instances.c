/* test_emu_instances.c CXX EMU_DIR — [cpu] template instantiations exactly as codegen/template*.c write them, compiled
 * as C++ against the CPU emulator (tests/emu/cuda_emu.h) and run on random data:
 * - vmc's skinny GEMM kernel (skinny_gemm.cuh, template_gemm_skinny; the emulator runs mma.sync and ldmatrix from
 *   every lane's registers and addresses) on the products of the mixer's x_proj and dt_proj and their gradients at
 *   reduced sizes (transposed operands, a column view, accumulation, alpha, bf16 and f32 results stored in pairs or
 *   one by one, partial tiles, K split across CTAs and their partials added by the reduce kernel), each element
 *   against a double-precision product;
 * - vmc's Hopper GEMM (hopper_gemm.cuh, template_gemm_hopper; the emulator runs wgmma from its shared-memory
 *   descriptors) on partial tiles, offset views, alpha, + acc, bf16 and f32 results;
 * - the conv1d forward of one input under four row orders in one launch (template_conv1d_fwd_multi: in order,
 *   reversed, two permutation tables; x a channel slice of a wider bf16 buffer), each direction against a double
 *   conv of its materialised input. */
#include "emu/emu_test.h"
#include "template.h"
#include "util.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

static const char *cxx, *emu_dir;
static char tmp[256];

static uint64_t rng = 12345;
static float uniform(void) {   /* in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static bool write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(p, 1, n, f) == n;
    if (f) fclose(f);
    return ok;
}

/* Writes n input files into tmp. */
static void write_inputs(const char *const *files, const void *const *data, const size_t *bytes, int n) {
    char path[512];
    for (int f = 0; f < n; f++) {
        snprintf(path, sizeof path, "%s/%s", tmp, files[f]);
        ASSERT(write_file(path, data[f], bytes[f]), "%s", path);
    }
}

/* Opens tmp/kernel.cpp with the emulator's header, the kernel source and a file loader; main() is the caller's. */
static FILE *driver_open(const char *src) {
    char path[512];
    snprintf(path, sizeof path, "%s/kernel.cpp", tmp);
    FILE *o = fopen(path, "w");
    ASSERT(o, "%s", path);
    fprintf(o, "#include \"cuda_emu.h\"\n#include <cmath>\n#include <cstdio>\n#include <cstdlib>\n#include <vector>\n%s\n", src);
    fprintf(o, "template <class T> static std::vector<T> load(const char *p, size_t n) {\n"
               "    std::vector<T> v(n); FILE *f = fopen(p, \"rb\"); if (!f || fread(v.data(), sizeof(T), n, f) != n) exit(3);\n"
               "    fclose(f); return v;\n}\n");
    return o;
}

/* Compiles tmp/kernel.cpp with the emulator and runs it in tmp. */
static bool compile_and_run(const char *what) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cd %s && %s -std=c++17 -O1 -w -I%s kernel.cpp %s/cuda_emu.cpp -o kernel -lpthread && ./kernel",
             tmp, cxx, emu_dir, emu_dir);
    const int rc = system(cmd);
    CHECK(rc == 0, "%s: the emulated kernel failed (status %d)", what, rc);
    return rc == 0;
}

/* Runs the kernel for spec s on A (a_elems bf16), B, acc; returns C as floats (M*N), NULL on a driver failure. */
static float *run_kernel(const char *what, const SkinnyGemmSpec *s, const char *src, const SkinnyGemmLaunch *l,
                         int64_t a_elems, int64_t b_elems) {
    char path[512];
    FILE *o = driver_open(src);
    const char *ct = s->c_bf16 ? "unsigned short" : "float";
    const long long mn = (long long)(s->M * s->N);
    /* C = A B + A2 B2 (s->k1): A's and B's first k1 of K as A and B, the rest as A2 and B2, each map only its own
     * part (past it the TMA reads zeros, so a slice taken from the wrong map is missed) */
    const long long k1 = (long long)s->k1, k2 = (long long)(s->K - s->k1);
    char *maps2 = NULL;
    size_t maps2_len = 0;
    FILE *m2 = open_memstream(&maps2, &maps2_len);
    if (k1) {
        fprintf(m2, "    const EmuTmap ta2 = {a.data() + %lld, %lld, %lld, %lld, %u}, tb2 = {b.data() + %lld, %lld, %lld, %lld, %u};\n",
                s->ta ? k1 * s->lda : k1, s->ta ? k2 : (long long)s->M, s->ta ? (long long)s->M : k2, (long long)s->lda,
                l->k.tma_rows[4], s->tb ? k1 : k1 * s->ldb, s->tb ? (long long)s->N : k2, s->tb ? k2 : (long long)s->N,
                (long long)s->ldb, l->k.tma_rows[5]);
    }
    fprintf(m2, "#define KCAT_ARGS%s\n", k1 ? " , ta2, tb2" : "");
    fclose(m2);
    const long long ka = k1 ? k1 : (long long)s->K;   /* (A's and B's own part of K) */
    fprintf(o, "int main() {\n"
               "    auto a = load<unsigned short>(\"a.bin\", %lld);\n"
               "    auto b = load<unsigned short>(\"b.bin\", %lld);\n"
               "    auto acc = load<%s>(\"acc.bin\", %lld);\n"
               "    std::vector<%s> c(%lld);\n"
               "    std::vector<float> ws(%lld + 1, NAN);\n"
               "    dim3 grid, block;\n"
               "    grid.x = %u; grid.y = %u; grid.z = %u; block.x = %u;\n"
               "#ifdef HG_M\n"
               "    const EmuTmap ta = {a.data(), %lld, %lld, %lld, %u}, tb = {b.data(), %lld, %lld, %lld, %u};\n"
               "%s"
               "#if HG_STORE_TMA\n"
               "    const EmuTmap tc = {c.data(), %lld, %lld, %lld, 64};\n"
               "    emu_launch_cluster(grid, block, HG_CLUSTER, [&] { vmc_gemm_hopper(ta, tb, tc, (const bf16 *)acc.data() KCAT_ARGS); });\n"
               "#else\n"
               "    emu_launch_cluster(grid, block, HG_CLUSTER, [&] { vmc_gemm_hopper(ta, tb, (%s *)c.data(), "
               "(const %s *)acc.data() KCAT_ARGS); });\n"
               "#endif\n"
               "#else\n"
               "    emu_launch(grid, block, [&] { vmc_gemm_skinny((const bf16 *)a.data(), (const bf16 *)b.data(), "
               "(%s *)c.data(), (const %s *)acc.data(), ws.data()); });\n"
               "#endif\n"
               "#if defined(SG_SPLIT) && SG_SPLIT > 1\n"
               "    grid = dim3(); block = dim3(); grid.x = %u; block.x = %u;\n"
               "    emu_launch(grid, block, [&] { vmc_gemm_skinny_reduce(ws.data(), (%s *)c.data(), (const %s *)acc.data()); });\n"
               "#endif\n"
               "    FILE *f = fopen(\"c.bin\", \"wb\"); fwrite(c.data(), sizeof c[0], c.size(), f); fclose(f);\n"
               "    return 0;\n}\n",
            (long long)a_elems, (long long)b_elems, ct, mn, ct, mn, (long long)(l->ws_bytes / 4), l->k.grid[0],
            l->k.grid[1], l->k.grid[2], l->k.block[0], s->ta ? ka : (long long)s->M, s->ta ? (long long)s->M : ka,
            (long long)s->lda, l->k.tma_rows[0], s->tb ? (long long)s->N : ka, s->tb ? ka : (long long)s->N,
            (long long)s->ldb, l->k.tma_rows[1], maps2, (long long)s->M, (long long)s->N,
            (long long)s->N, s->c_bf16 ? "bf16" : "float", s->c_bf16 ? "bf16" : "float",
            s->c_bf16 ? "bf16" : "float", s->c_bf16 ? "bf16" : "float", l->reduce.grid[0], l->reduce.block[0], s->c_bf16 ? "bf16" : "float", s->c_bf16 ? "bf16" : "float");
    fclose(o);
    free(maps2);
    if (!compile_and_run(what)) return NULL;
    snprintf(path, sizeof path, "%s/c.bin", tmp);
    FILE *f = fopen(path, "rb");
    ASSERT(f, "%s", path);
    float *c = xcalloc((size_t)mn, sizeof(float));
    for (long long i = 0; i < mn; i++) {
        if (s->c_bf16) {
            uint16_t h;
            ASSERT(fread(&h, 2, 1, f) == 1, "short c.bin");
            c[i] = bf16_to_f32(h);
        } else ASSERT(fread(&c[i], 4, 1, f) == 1, "short c.bin");
    }
    fclose(f);
    return c;
}

/* A product through the kernel: A stored with `arows` rows of lda (the view starts a_off elements in), B likewise. */
static void check_gemm_kernel(const char *what, SkinnyGemmSpec s, int want_split, bool hopper) {
    SkinnyGemmLaunch l = {0};
    char *src = hopper ? template_gemm_hopper(&s, &l.k) : template_gemm_skinny(&s, &l);
    if (hopper) l.split = 1;
    CHECK(src, "%s: the template refused the product", what);
    if (!src) return;
    CHECK(want_split == 0 || (want_split > 0) == (l.split > 1), "%s: split %d", what, l.split);
    const int64_t arows = s.ta ? s.K : s.M, brows = s.tb ? s.N : s.K;
    const int64_t a_elems = arows * s.lda, b_elems = brows * s.ldb, mn = s.M * s.N;
    uint16_t *a = xcalloc((size_t)a_elems, 2), *b = xcalloc((size_t)b_elems, 2);
    for (int64_t i = 0; i < a_elems; i++) a[i] = f32_to_bf16(uniform());
    for (int64_t i = 0; i < b_elems; i++) b[i] = f32_to_bf16(uniform());
    float *accf = xcalloc((size_t)mn, 4);
    uint16_t *acch = xcalloc((size_t)mn, 2);
    for (int64_t i = 0; i < mn; i++) {
        acch[i] = f32_to_bf16(uniform());
        accf[i] = s.c_bf16 ? bf16_to_f32(acch[i]) : uniform();
    }
    char path[512];
    snprintf(path, sizeof path, "%s/a.bin", tmp);
    ASSERT(write_file(path, a, (size_t)a_elems * 2), "%s", path);
    snprintf(path, sizeof path, "%s/b.bin", tmp);
    ASSERT(write_file(path, b, (size_t)b_elems * 2), "%s", path);
    snprintf(path, sizeof path, "%s/acc.bin", tmp);
    ASSERT(write_file(path, s.c_bf16 ? (void *)acch : (void *)accf, (size_t)mn * (s.c_bf16 ? 2 : 4)), "%s", path);
    /* the kernel reads A from its view's first element: pass the buffer from a_off on (the driver's pointer) */
    SkinnyGemmSpec sv = s;
    float *c = NULL;
    if (s.a_off || s.b_off) {   /* views: shift the files so the kernel's pointers are the views' starts */
        snprintf(path, sizeof path, "%s/a.bin", tmp);
        ASSERT(write_file(path, a + s.a_off, (size_t)(a_elems - s.a_off) * 2), "%s", path);
        snprintf(path, sizeof path, "%s/b.bin", tmp);
        ASSERT(write_file(path, b + s.b_off, (size_t)(b_elems - s.b_off) * 2), "%s", path);
        c = run_kernel(what, &sv, src, &l, a_elems - s.a_off, b_elems - s.b_off);
    } else c = run_kernel(what, &sv, src, &l, a_elems, b_elems);
    free(src);
    if (c) {
        double maxref = 0, maxerr = 0;
        int64_t bad = 0;
        for (int64_t i = 0; i < s.M; i++)
            for (int64_t j = 0; j < s.N; j++) {
                double sum = 0;
                for (int64_t k = 0; k < s.K; k++) {
                    const double av = bf16_to_f32(a[s.a_off + (s.ta ? k * s.lda + i : i * s.lda + k)]);
                    const double bv = bf16_to_f32(b[s.b_off + (s.tb ? j * s.ldb + k : k * s.ldb + j)]);
                    sum += av * bv;
                }
                double ref = s.alpha * sum + (s.acc ? accf[i * s.N + j] : 0.0);
                if (fabs(ref) > maxref) maxref = fabs(ref);
                const double err = fabs(c[i * s.N + j] - ref);
                /* f32 sums in another order; a bf16 result within its rounding (2^-8 relative) */
                const double tol = 1e-5 * sqrt((double)s.K) + (s.c_bf16 ? fabs(ref) / 128 : 1e-6 * fabs(ref));
                if (err > maxerr) maxerr = err;
                if (!(err <= tol)) bad++;
            }
        CHECK(bad == 0, "%s: %lld of %lld elements off (largest error %.3g, largest value %.3g)", what, (long long)bad,
              (long long)mn, maxerr, maxref);
        printf("%-46s %lldx%lldx%lld grid %ux%ux%u block %u, split %d: largest error %.2g of values up to %.2g\n",
               what, (long long)s.M, (long long)s.N, (long long)s.K, l.k.grid[0], l.k.grid[1], l.k.grid[2],
               l.k.block[0], l.split, maxerr, maxref);
    }
    free(c); free(a); free(b); free(accf); free(acch);
}

static void check_gemm(const char *what, SkinnyGemmSpec s, int want_split) { check_gemm_kernel(what, s, want_split, false); }

static void check_swiglu(const char *what, SkinnyGemmSpec s, bool save);
static void check_swiglu_bwd(const char *what, SkinnyGemmSpec s);
static void check_skinny_and_conv(void);

/* Two products over one K (hopper_gemm.cuh HG_KCAT, SwiGLU's dx = dy1 W1 + dy2 W2): A's and B's first k1 of K
 * through one pair of tensor maps, the rest through another (run_kernel), each map only its own part, so a slice
 * read through the wrong one, or at the whole K's index, reads zeros and fails: B [K][N] into a bf16 C from
 * registers, persistent; B [N][K] with the second K not whole slices; an f32 C with K in parts that straddle k1;
 * then the ks the template must refuse. */
static void check_hopper_kcat(void) {
    check_gemm_kernel("hopper A B + A2 B2, B [K][N]: 300x264x320 (128 + 192)", (SkinnyGemmSpec){.M = 300, .N = 264,
                      .K = 320, .lda = 320, .ldb = 264, .c_bf16 = true, .alpha = 1, .c_align = 16, .k1 = 128}, 0, true);
    setenv("VMC_HOPPER_GEMM_PERSIST", "2", 1);
    check_gemm_kernel("hopper A B^T + A2 B2^T, persistent: 300x264x200 (64 + 136)", (SkinnyGemmSpec){.M = 300,
                      .N = 264, .K = 200, .lda = 200, .ldb = 200, .tb = true, .c_bf16 = true, .alpha = 1,
                      .c_align = 16, .k1 = 64}, 0, true);
    setenv("VMC_HOPPER_GEMM_SPLITK", "3", 1);
    setenv("VMC_HOPPER_GEMM_PERSIST", "4", 1);
    check_gemm_kernel("hopper A^T B + A2^T B2, K in 3 parts: 136x264x600 (256 + 344)", (SkinnyGemmSpec){.M = 136,
                      .N = 264, .K = 600, .lda = 136, .ldb = 264, .ta = true, .alpha = 1, .c_align = 16, .k1 = 256},
                      0, true);
    unsetenv("VMC_HOPPER_GEMM_SPLITK");
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    KernelLaunch l;
    const int64_t bad_k1[3] = {100, 320, -64};
    for (int i = 0; i < 3; i++) {
        char *src = template_gemm_hopper(&(SkinnyGemmSpec){.M = 300, .N = 264, .K = 320, .lda = 320, .ldb = 264,
                                         .c_bf16 = true, .alpha = 1, .c_align = 16, .k1 = bad_k1[i]}, &l);
        CHECK(!src, "hopper A B + A2 B2: k1 = %lld of K = 320 was accepted", (long long)bad_k1[i]);
        free(src);
    }
}

/* The GPU's SMs (SkinnyGemmSpec.sms; 0: 132): a persistent grid of as many CTAs as run at once, and the split of K
 * sized for that many clusters (ARM-B's weight gradient 2048 x 768 x 16384 in 2 parts: 64 tiles of 128 x 192, one
 * round on 66 clusters; on an H100 PCIe's 57 they would take two, so 48 tiles of 128 x 256). */
static void check_hopper_sms(void) {
    const SkinnyGemmSpec fwd = {.M = 16384, .N = 2048, .K = 768, .lda = 768, .ldb = 768, .tb = true, .c_bf16 = true,
                                .alpha = 1, .c_align = 16};
    const SkinnyGemmSpec wgrad = {.M = 2048, .N = 768, .K = 16384, .lda = 2048, .ldb = 768, .ta = true, .alpha = 1,
                                  .c_align = 16};
    int grid[2], split[2], tile[2];
    for (int i = 0; i < 2; i++) {
        KernelLaunch l;
        SkinnyGemmSpec s = fwd;
        s.sms = i ? 114 : 0;
        char *src = template_gemm_hopper(&s, &l);
        grid[i] = src ? (int)l.grid[0] : -1;
        free(src);
        s = wgrad;
        s.sms = i ? 114 : 0;
        src = template_gemm_hopper(&s, &l);
        const char *k = src ? strstr(src, "#define HG_SPLITK ") : NULL;
        split[i] = k ? atoi(k + strlen("#define HG_SPLITK ")) : -1;
        const char *t = src ? strstr(src, "#define HG_TILE_N ") : NULL;
        tile[i] = t ? atoi(t + strlen("#define HG_TILE_N ")) : -1;
        free(src);
    }
    printf("hopper sized for 132 / 114 SMs: 16384x2048x768 grid %d / %d, 2048x768x16384 K in %d / %d parts of 128 x "
           "%d / %d tiles\n", grid[0], grid[1], split[0], split[1], tile[0], tile[1]);
    CHECK(grid[0] == 132 && grid[1] == 114 && split[0] == 2 && split[1] == 2 && tile[0] == 192 && tile[1] == 256,
          "hopper: a grid or split not sized for the SMs asked for");
}

/* MN-major operands (hopper_gemm.cuh HG_A_MN, HG_B_MN: boxes of 64 k by 64 columns, wgmma's transpose bits): B
 * stored [K][N] (an input gradient dy W) with acc, its boxes multicast in clusters; A stored [K][M] with B [N][K] and a
 * bf16 C from registers; then A^T B (a weight gradient) into an f32 C with K split (HG_SPLITK): 3 parts of 10 slices
 * (3, 3, 4) of 3 units taken by 4 persistent clusters in turn (a tile's parts added into C), single CTAs with an odd
 * N added one by one, and the split the template picks itself (2 parts of 128 x 192 tiles, B's 3 boxes loaded 2
 * and 1 by a cluster's CTAs for both), all of a launch's CTAs at once. */
static void check_hopper_mn_major(void) {
    check_gemm_kernel("hopper A B, B [K][N], + acc: 300x264x200", (SkinnyGemmSpec){.M = 300, .N = 264, .K = 200,
                      .lda = 200, .ldb = 264, .acc = true, .c_bf16 = true, .alpha = 0.5f, .c_align = 16}, 0, true);
    check_gemm_kernel("hopper A^T B^T, A [K][M]: 296x520x136", (SkinnyGemmSpec){.M = 296, .N = 520, .K = 136,
                      .lda = 304, .ldb = 136, .ta = true, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16},
                      0, true);
    setenv("VMC_HOPPER_GEMM_SPLITK", "3", 1);
    setenv("VMC_HOPPER_GEMM_PERSIST", "8", 1);
    check_gemm_kernel("hopper A^T B, K in 3 parts, 4 clusters: 200x520x600", (SkinnyGemmSpec){.M = 200, .N = 520,
                      .K = 600, .lda = 200, .ldb = 520, .ta = true, .alpha = 1, .c_align = 16}, 0, true);
    setenv("VMC_HOPPER_GEMM_CLUSTER", "1", 1);
    setenv("VMC_HOPPER_GEMM_PERSIST", "5", 1);
    check_gemm_kernel("hopper A^T B^T, K in 3 parts, single CTAs, odd N: 136x75x520", (SkinnyGemmSpec){.M = 136,
                      .N = 75, .K = 520, .lda = 136, .ldb = 520, .ta = true, .tb = true, .alpha = -1, .c_align = 4},
                      0, true);
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    unsetenv("VMC_HOPPER_GEMM_CLUSTER");
    unsetenv("VMC_HOPPER_GEMM_SPLITK");
    const SkinnyGemmSpec wgrad = {.M = 200, .N = 264, .K = 1040, .lda = 200, .ldb = 264, .ta = true, .alpha = 1,
                                  .c_align = 16};
    KernelLaunch l;
    char *src = template_gemm_hopper(&wgrad, &l);
    CHECK(src && strstr(src, "#define HG_SPLITK 2") && strstr(src, "#define HG_TILE_N 192") && l.nzero == 1 &&
          l.zero[0].param == 2 && l.zero[0].bytes == 200 * 264 * 4 && l.grid[0] == 8,
          "hopper A^T B into f32: not 2 parts of K in 128 x 192 tiles (8 CTAs) with C zeroed before");
    free(src);
    check_gemm_kernel("hopper A^T B, K in 2 parts, 128 x 192 tiles: 200x264x1040", wgrad, 0, true);
}

/* The Hopper GEMM (hopper_gemm.cuh; the emulator runs wgmma from its shared-memory descriptors): A B^T with partial
 * tiles in M, N and K (K a multiple of 8, not of the 64-deep slices), several CTAs both ways, offset views with
 * padded rows, alpha, + acc, bf16 and f32 results in pairs or one by one; and the products it must refuse. */
static void check_hopper_gemms(void) {
    check_gemm_kernel("hopper: 200x136x200, f32", (SkinnyGemmSpec){.M = 200, .N = 136, .K = 200, .lda = 200,
                      .ldb = 200, .tb = true, .alpha = 1, .c_align = 16}, 0, true);
    check_gemm_kernel("hopper: 130x256x72 + acc, bf16, offset views", (SkinnyGemmSpec){.M = 130, .N = 256, .K = 72,
                      .lda = 88, .ldb = 80, .tb = true, .acc = true, .c_bf16 = true, .alpha = 0.5f, .a_off = 8,
                      .b_off = 8, .c_align = 16}, 0, true);
    check_gemm_kernel("hopper: 64x9x136, odd N (one by one)", (SkinnyGemmSpec){.M = 64, .N = 9, .K = 136, .lda = 136,
                      .ldb = 136, .tb = true, .acc = true, .alpha = -2, .c_align = 4}, 0, true);
    /* 10 slices through 4 stages: each stage's barriers go through three phases */
    check_gemm_kernel("hopper: 150x300x600, stages reused", (SkinnyGemmSpec){.M = 150, .N = 300, .K = 600, .lda = 600,
                      .ldb = 600, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    /* persistent: 3 CTAs taking 3 tiles each in turn through one ring (2 stages: every pass reuses them) */
    setenv("VMC_HOPPER_GEMM_PERSIST", "3", 1);
    setenv("VMC_HOPPER_GEMM_STAGES", "2", 1);
    check_gemm_kernel("hopper persistent: 300x520x200 + acc", (SkinnyGemmSpec){.M = 300, .N = 520, .K = 200, .lda = 200,
                      .ldb = 200, .tb = true, .acc = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    check_swiglu("swiglu persistent: 300x260x136", (SkinnyGemmSpec){.M = 300, .N = 260, .K = 136, .lda = 136,
                 .ldb = 136, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, true);
    /* H alone stored by TMA (the default; N a multiple of 8), each CTA's buffers reused for its next tiles, then
     * with the products by TMA too (VMC_HOPPER_GEMM_STORE=1: H's buffer reused once P1's stores have read it) */
    const SkinnyGemmSpec sw = {.M = 300, .N = 264, .K = 136, .lda = 136, .ldb = 136, .tb = true, .c_bf16 = true,
                               .alpha = 1, .c_align = 16};
    check_swiglu("swiglu persistent, stores by TMA: 300x264x136", sw, false);
    setenv("VMC_HOPPER_GEMM_STORE", "1", 1);
    check_swiglu("swiglu persistent, stores by TMA + products", sw, true);
    setenv("VMC_HOPPER_GEMM_STORE", "2", 1);   /* from registers: H alone, then with the products (the default) */
    check_swiglu("swiglu persistent, stores from registers: 300x264x136", sw, false);
    unsetenv("VMC_HOPPER_GEMM_STORE");
    check_swiglu("swiglu persistent, stores from registers + products (ping-pong)", sw, true);
    setenv("VMC_HOPPER_GEMM_PINGPONG", "0", 1);   /* the cooperative form */
    check_swiglu("swiglu persistent, stores from registers + products, cooperative", sw, true);
    unsetenv("VMC_HOPPER_GEMM_PINGPONG");
    check_swiglu_bwd("swiglu backward persistent: 300x264x136", sw);
    setenv("VMC_SWIGLU_BWD_AHEAD", "3", 1);   /* P1, P2 loaded 3 visits ahead (rows past M on the way) */
    check_swiglu_bwd("swiglu backward persistent, loads ahead: 300x264x136", sw);
    unsetenv("VMC_SWIGLU_BWD_AHEAD");
    /* P1, P2 copied by cp.async into a ring 3 visits ahead, then 8 (each CTA's ring reused for its next tiles; rows
     * past M and empty commit groups on the way) */
    setenv("VMC_SWIGLU_BWD_RING", "3", 1);
    check_swiglu_bwd("swiglu backward persistent, a ring of 3: 300x264x136", sw);
    setenv("VMC_SWIGLU_BWD_RING", "8", 1);
    check_swiglu_bwd("swiglu backward persistent, a ring of 8: 300x264x136", sw);
    setenv("VMC_HOPPER_GEMM_PINGPONG", "2", 1);   /* ping-pong: a tile's two 64-row blocks one ring sequence */
    setenv("VMC_SWIGLU_BWD_RING", "5", 1);
    check_swiglu_bwd("swiglu backward persistent, ping-pong, a ring of 5: 300x264x136", sw);
    unsetenv("VMC_HOPPER_GEMM_PINGPONG");
    unsetenv("VMC_SWIGLU_BWD_RING");
    /* a bf16 C stored from registers (the default: each quad's 4 x 4 blocks transposed by shuffles); by TMA from bf16
     * boxes (VMC_HOPPER_GEMM_STORE=1), each CTA's buffer reused for its next tiles; then the same through the f32
     * staging buffer (VMC_HOPPER_GEMM_STORE=0) */
    const SkinnyGemmSpec bf16_c = {.M = 300, .N = 520, .K = 200, .lda = 200, .ldb = 200, .tb = true, .c_bf16 = true,
                                   .alpha = 0.5f, .c_align = 16};
    check_gemm_kernel("hopper persistent, stores from registers: 300x520x200", bf16_c, 0, true);
    setenv("VMC_HOPPER_GEMM_STORE", "1", 1);
    check_gemm_kernel("hopper persistent, stores by TMA: 300x520x200", bf16_c, 0, true);
    setenv("VMC_HOPPER_GEMM_STORE", "0", 1);
    check_gemm_kernel("hopper persistent, staged stores: 300x520x200", bf16_c, 0, true);
    unsetenv("VMC_HOPPER_GEMM_STORE");
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    setenv("VMC_HOPPER_GEMM_PERSIST", "0", 1);   /* a CTA a tile */
    check_gemm_kernel("hopper, a CTA a tile: 150x300x600", (SkinnyGemmSpec){.M = 150, .N = 300, .K = 600, .lda = 600,
                      .ldb = 600, .tb = true, .acc = true, .alpha = 0.5f, .c_align = 16}, 0, true);
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    check_swiglu("swiglu: 200x136x200 with the products", (SkinnyGemmSpec){.M = 200, .N = 136, .K = 200, .lda = 200,
                 .ldb = 200, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, true);
    check_swiglu_bwd("swiglu backward: 200x520x200", (SkinnyGemmSpec){.M = 200, .N = 520, .K = 200, .lda = 200,
                     .ldb = 200, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16});
    check_swiglu("swiglu: 70x75x72, odd N, H alone", (SkinnyGemmSpec){.M = 70, .N = 75, .K = 72, .lda = 72, .ldb = 72,
                 .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, false);
    /* the tuning variants: 128 x 128 tiles (m64n128k16), 2 stages (every stage reused while K lasts) */
    setenv("VMC_HOPPER_GEMM", "1,128", 1);
    setenv("VMC_HOPPER_GEMM_STAGES", "2", 1);
    check_gemm_kernel("hopper 128x128 tiles, 2 stages: 200x300x200", (SkinnyGemmSpec){.M = 200, .N = 300, .K = 200,
                      .lda = 200, .ldb = 200, .tb = true, .acc = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    check_swiglu("swiglu 128x128 tiles, 2 stages: 130x200x136", (SkinnyGemmSpec){.M = 130, .N = 200, .K = 136,
                 .lda = 136, .ldb = 136, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, true);
    setenv("VMC_HOPPER_GEMM_STORE", "1", 1);
    check_gemm_kernel("hopper 128x128 tiles, stores by TMA: 200x264x200", (SkinnyGemmSpec){.M = 200, .N = 264,
                      .K = 200, .lda = 200, .ldb = 200, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    unsetenv("VMC_HOPPER_GEMM_STORE");
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    unsetenv("VMC_HOPPER_GEMM");
    setenv("VMC_SWIGLU_BWD_TILE", "128", 1);
    check_swiglu_bwd("swiglu backward 128x128 tiles, two CTAs an SM: 300x264x136", sw);
    unsetenv("VMC_SWIGLU_BWD_TILE");
    /* 128 x 192 tiles (m64n192k16): stored by TMA in pairs, then from registers, persistent through 4 stages; an acc
     * or an f32 C goes back to 256 columns (unless K is split: check_hopper_mn_major); then B stored [K][N] */
    setenv("VMC_HOPPER_GEMM", "1,192", 1);
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    const SkinnyGemmSpec n576 = {.M = 300, .N = 576, .K = 264, .lda = 264, .ldb = 264, .tb = true, .c_bf16 = true,
                                 .alpha = 1, .c_align = 16};
    setenv("VMC_HOPPER_GEMM_STORE", "1", 1);
    check_gemm_kernel("hopper 128x192 tiles, stores by TMA: 300x576x264", n576, 0, true);
    unsetenv("VMC_HOPPER_GEMM_STORE");
    setenv("VMC_HOPPER_GEMM_PERSIST", "2", 1);
    check_gemm_kernel("hopper 128x192 tiles, persistent, stores from registers: 300x576x264", n576, 0, true);
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    /* B stored [K][N] (an input gradient dy W): its 3 boxes of 64 columns loaded 2 + 1 by a cluster's CTAs */
    const SkinnyGemmSpec b_kn = {.M = 300, .N = 576, .K = 264, .lda = 264, .ldb = 576, .c_bf16 = true, .alpha = 1,
                                 .c_align = 16};
    KernelLaunch l192;
    char *src192 = template_gemm_hopper(&b_kn, &l192);
    CHECK(src192 && strstr(src192, "#define HG_TILE_N 192") && strstr(src192, "#define HG_B_MN 1") &&
          l192.cluster == 2, "hopper 128x192 tiles, B [K][N]: not 192 columns in clusters of 2");
    free(src192);
    check_gemm_kernel("hopper 128x192 tiles, B [K][N]: 300x576x264", b_kn, 0, true);
    unsetenv("VMC_HOPPER_GEMM");
    /* ping-pong (VMC_HOPPER_GEMM_PINGPONG): each consumer warpgroup a 128 x 128 tile in turn. 300x520: 3 x 5 tiles in
     * clusters of 2 (4 row tiles, the last past M), 3 CTAs' worth taken in turn by 2 persistent clusters through a
     * 2-stage ring, so that the warpgroups' turns cross the ring's passes and the last has no partner; then a CTA a
     * tile in single CTAs, and SwiGLU's backward (=2) */
    setenv("VMC_HOPPER_GEMM_PINGPONG", "1", 1);
    setenv("VMC_HOPPER_GEMM_PERSIST", "4", 1);
    setenv("VMC_HOPPER_GEMM_STAGES", "2", 1);
    check_gemm_kernel("hopper ping-pong, persistent: 300x520x200", bf16_c, 0, true);
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    check_gemm_kernel("hopper ping-pong, persistent, 6 stages: 300x520x600", (SkinnyGemmSpec){.M = 300, .N = 520,
                      .K = 600, .lda = 600, .ldb = 600, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    setenv("VMC_HOPPER_GEMM_PERSIST", "0", 1);
    setenv("VMC_HOPPER_GEMM_CLUSTER", "1", 1);
    check_gemm_kernel("hopper ping-pong, a CTA a tile: 300x264x200", (SkinnyGemmSpec){.M = 300, .N = 264, .K = 200,
                      .lda = 200, .ldb = 200, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    unsetenv("VMC_HOPPER_GEMM_CLUSTER");
    setenv("VMC_HOPPER_GEMM_PINGPONG", "2", 1);
    setenv("VMC_HOPPER_GEMM_PERSIST", "2", 1);
    check_swiglu_bwd("swiglu backward ping-pong, persistent: 300x264x136", sw);
    setenv("VMC_HOPPER_GEMM_PINGPONG", "1", 1);   /* SwiGLU with its products (stored from registers) */
    check_swiglu("swiglu ping-pong, persistent + products: 300x264x136", sw, true);
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    unsetenv("VMC_HOPPER_GEMM_PINGPONG");
    /* the mixer's tall products that are skinny in N (x_proj: 128 columns a CTA, B's rows past N zero) or in K
     * (dt_proj: one slice, its columns past K zero) */
    check_gemm_kernel("hopper, N = 80 in 128-column tiles: 300x80x264", (SkinnyGemmSpec){.M = 300, .N = 80, .K = 264,
                      .lda = 264, .ldb = 264, .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16, .tile_n = 128},
                      0, true);
    check_gemm_kernel("hopper, K = 48: 300x264x48", (SkinnyGemmSpec){.M = 300, .N = 264, .K = 48, .lda = 48, .ldb = 48,
                      .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    /* The checks above run in clusters of two CTAs sharing B's slices by TMA multicast (the default where C has two
     * row tiles or more; 300 rows: an odd count, the last pair's second tile past M). Single CTAs
     * (VMC_HOPPER_GEMM_CLUSTER=1): a CTA a tile with acc, 3 persistent CTAs through a 2-stage ring, SwiGLU with its
     * products */
    setenv("VMC_HOPPER_GEMM_CLUSTER", "1", 1);
    check_gemm_kernel("hopper, single CTAs: 300x520x200 + acc", (SkinnyGemmSpec){.M = 300, .N = 520, .K = 200,
                      .lda = 200, .ldb = 200, .tb = true, .acc = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, 0, true);
    setenv("VMC_HOPPER_GEMM_PERSIST", "3", 1);
    setenv("VMC_HOPPER_GEMM_STAGES", "2", 1);
    check_gemm_kernel("hopper, single CTAs, persistent: 300x520x200", bf16_c, 0, true);
    check_swiglu("swiglu, single CTAs, persistent + products", sw, true);
    unsetenv("VMC_HOPPER_GEMM_PERSIST");
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    unsetenv("VMC_HOPPER_GEMM_CLUSTER");
    unsetenv("VMC_HOPPER_GEMM_STAGES");
    KernelLaunch l;
    char *src = template_gemm_hopper(&(SkinnyGemmSpec){.M = 64, .N = 64, .K = 12, .lda = 12, .ldb = 12, .tb = true,
                                     .alpha = 1}, &l);
    CHECK(!src, "hopper: K = 12 (rows of K not 16-byte copies) was accepted");
    free(src);
    src = template_gemm_hopper(&(SkinnyGemmSpec){.M = 64, .N = 60, .K = 64, .lda = 64, .ldb = 64, .alpha = 1}, &l);
    CHECK(!src, "hopper: a B stored [K][N] with N = 60 (rows not 16-byte copies) was accepted");
    free(src);
}

/* SwiGLU's input products in one kernel (template_gemm_swiglu): H = silu(bf16(A B1^T) + b1) * (bf16(A B2^T) + b2)
 * and the two bf16 products, against double products (a bf16 result within 2^-7 of its value, plus what one
 * rounding of a product to bf16 moves it). */
static void check_swiglu(const char *what, SkinnyGemmSpec s, bool save) {
    KernelLaunch l;
    char *src = template_gemm_swiglu(&s, save, &l);
    CHECK(src, "%s: template_gemm_swiglu refused the product", what);
    if (!src) return;
    const int64_t na = s.M * s.lda, nb = s.N * s.ldb, mn = s.M * s.N;
    uint16_t *a = xcalloc((size_t)na, 2), *b1 = xcalloc((size_t)nb, 2), *b2 = xcalloc((size_t)nb, 2);
    float *bias = xcalloc((size_t)(2 * s.N), 4);
    for (int64_t i = 0; i < na; i++) a[i] = f32_to_bf16(uniform());
    for (int64_t i = 0; i < nb; i++) { b1[i] = f32_to_bf16(uniform()); b2[i] = f32_to_bf16(uniform()); }
    for (int64_t i = 0; i < 2 * s.N; i++) bias[i] = uniform();
    const char *files[4] = {"a.bin", "b1.bin", "b2.bin", "bias.bin"};
    const void *data[4] = {a, b1, b2, bias};
    const size_t bytes[4] = {(size_t)na * 2, (size_t)nb * 2, (size_t)nb * 2, (size_t)s.N * 8};
    write_inputs(files, data, bytes, 4);
    char path[512];
    FILE *o = driver_open(src);
    free(src);
    fprintf(o, "int main() {\n"
               "    auto a = load<unsigned short>(\"a.bin\", %lld);\n"
               "    auto b1 = load<unsigned short>(\"b1.bin\", %lld), b2 = load<unsigned short>(\"b2.bin\", %lld);\n"
               "    auto bias = load<float>(\"bias.bin\", %lld);\n"
               "    std::vector<unsigned short> h(%lld, 0xffff), p1(%lld, 0xffff), p2(%lld, 0xffff);\n"
               "    dim3 grid, block; grid.x = %u; grid.y = %u; block.x = %u;\n"
               "    const EmuTmap ta = {a.data(), %lld, %lld, %lld, %u}, tb1 = {b1.data(), %lld, %lld, %lld, %u}, "
               "tb2 = {b2.data(), %lld, %lld, %lld, %u};\n"
               "#if HG_STORE_TMA\n"
               "    const EmuTmap th = {h.data(), ta.rows, tb1.rows, tb1.rows, 64}, tp1 = {p1.data(), ta.rows, tb1.rows, "
               "tb1.rows, 64}, tp2 = {p2.data(), ta.rows, tb1.rows, tb1.rows, 64};\n"
               "    emu_launch_cluster(grid, block, HG_CLUSTER, [&] { vmc_gemm_swiglu(ta, tb1, tb2, bias.data(), "
               "bias.data() + %lld, th, tp1, tp2); });\n"
               "#else\n"
               "    emu_launch_cluster(grid, block, HG_CLUSTER, [&] { vmc_gemm_swiglu(ta, tb1, tb2, bias.data(), "
               "bias.data() + %lld, (bf16 *)h.data(), %s, %s); });\n"
               "#endif\n"
               "    FILE *f = fopen(\"c.bin\", \"wb\"); fwrite(h.data(), 2, h.size(), f); fwrite(p1.data(), 2, p1.size(), f);\n"
               "    fwrite(p2.data(), 2, p2.size(), f); fclose(f);\n"
               "    return 0;\n}\n",
            (long long)na, (long long)nb, (long long)nb, (long long)(2 * s.N), (long long)mn, (long long)mn,
            (long long)mn, l.grid[0], l.grid[1], l.block[0], (long long)s.M, (long long)s.K, (long long)s.lda,
            l.tma_rows[0], (long long)s.N, (long long)s.K, (long long)s.ldb, l.tma_rows[1], (long long)s.N,
            (long long)s.K, (long long)s.ldb, l.tma_rows[2], (long long)s.N, (long long)s.N,
            save ? "(bf16 *)p1.data()" : "nullptr",
            save ? "(bf16 *)p2.data()" : "nullptr");
    fclose(o);
    if (compile_and_run(what)) {
        uint16_t *out = xcalloc((size_t)(3 * mn), 2);
        snprintf(path, sizeof path, "%s/c.bin", tmp);
        FILE *f = fopen(path, "rb");
        ASSERT(f && fread(out, 2, (size_t)(3 * mn), f) == (size_t)(3 * mn), "%s", path);
        fclose(f);
        int64_t bad = 0;
        double maxerr = 0;
        for (int64_t i = 0; i < s.M; i++)
            for (int64_t j = 0; j < s.N; j++) {
                double q1 = 0, q2 = 0;
                for (int64_t k = 0; k < s.K; k++) {
                    const double av = bf16_to_f32(a[i * s.lda + k]);
                    q1 += av * bf16_to_f32(b1[j * s.ldb + k]);
                    q2 += av * bf16_to_f32(b2[j * s.ldb + k]);
                }
                const double r1 = bf16_to_f32(f32_to_bf16((float)q1)), r2 = bf16_to_f32(f32_to_bf16((float)q2));
                const double x = r1 + bias[j], y = r2 + bias[s.N + j], hv = x / (1 + exp(-x)) * y;
                const double got[3] = {bf16_to_f32(out[i * s.N + j]), bf16_to_f32(out[mn + i * s.N + j]),
                                       bf16_to_f32(out[2 * mn + i * s.N + j])};
                const double want[3] = {hv, r1, r2};
                /* one bf16 step of a product moves h by up to |dh/dp| 2^-8 |p| */
                const double slack[3] = {(fabs(y) * 1.1 * fabs(r1) + fabs(x) * fabs(r2)) / 128, fabs(r1) / 128,
                                         fabs(r2) / 128};
                for (int q = 0; q < (save ? 3 : 1); q++) {
                    const double err = fabs(got[q] - want[q]);
                    if (err > maxerr) maxerr = err;
                    if (!(err <= fabs(want[q]) / 128 + slack[q] + 1e-5)) bad++;
                }
            }
        CHECK(bad == 0, "%s: %lld elements off (largest error %.3g)", what, (long long)bad, maxerr);
        printf("%-46s %lldx%lldx%lld grid %ux%u: largest error %.2g\n", what, (long long)s.M, (long long)s.N,
               (long long)s.K, l.grid[0], l.grid[1], maxerr);
        free(out);
    }
    free(a); free(b1); free(b2); free(bias);
}

/* SwiGLU's backward in the Hopper GEMM's epilogue (template_gemm_swiglu_bwd; B = W^T by its transpose kernel from W
 * [K][N]): dh = bf16(A W), x = P1 + b1,
 * y = P2 + b2, G1 = dh y silu'(x), G2 = dh silu(x) and their column sums, against double arithmetic (a bf16 result
 * within 2^-7 of its value, plus what one rounding of dh to bf16 moves it; the sums within 1e-4 of the sum of
 * magnitudes). */
static void check_swiglu_bwd(const char *what, SkinnyGemmSpec s) {
    KernelLaunch l, t;
    char *src = template_gemm_swiglu_bwd(&s, &l, &t);
    CHECK(src, "%s: template_gemm_swiglu_bwd refused the product", what);
    if (!src) return;
    const char *ring = getenv("VMC_SWIGLU_BWD_RING");
    char want[64];
    snprintf(want, sizeof want, "#define HG_BWD_RING %s\n", ring ? ring : "0");
    CHECK(strstr(src, want), "%s: not %s", what, want);
    const int64_t na = s.M * s.lda, nb = s.N * s.ldb, mn = s.M * s.N;
    uint16_t *a = xcalloc((size_t)na, 2), *b = xcalloc((size_t)nb, 2), *p = xcalloc((size_t)(2 * mn), 2);
    float *bias = xcalloc((size_t)(2 * s.N), 4);
    for (int64_t i = 0; i < na; i++) a[i] = f32_to_bf16(uniform());
    for (int64_t i = 0; i < nb; i++) b[i] = f32_to_bf16(uniform() * 0.2f);   /* W [K][N]: B = W^T */
    for (int64_t i = 0; i < 2 * mn; i++) p[i] = f32_to_bf16(3 * uniform());
    for (int64_t i = 0; i < 2 * s.N; i++) bias[i] = uniform();
    const char *files[4] = {"a.bin", "b.bin", "p.bin", "bias.bin"};
    const void *data[4] = {a, b, p, bias};
    const size_t bytes[4] = {(size_t)na * 2, (size_t)nb * 2, (size_t)mn * 4, (size_t)s.N * 8};
    write_inputs(files, data, bytes, 4);
    char path[512];
    FILE *o = driver_open(src);
    free(src);
    fprintf(o, "int main() {\n"
               "    auto a = load<unsigned short>(\"a.bin\", %lld), b = load<unsigned short>(\"b.bin\", %lld);\n"
               "    auto p = load<unsigned short>(\"p.bin\", %lld);\n"
               "    auto bias = load<float>(\"bias.bin\", %lld);\n"
               "    std::vector<unsigned short> g(%lld, 0xffff);\n"
               "    std::vector<float> sums(%lld, 0.f);\n"
               "    std::vector<unsigned short> bt(b.size());\n"
               "    dim3 tgrid, tblock; tgrid.x = %u; tgrid.y = %u; tblock.x = %u;\n"
               "    emu_launch(tgrid, tblock, [&] { vmc_transpose_bf16((const bf16 *)b.data(), (bf16 *)bt.data()); });\n"
               "    dim3 grid, block; grid.x = %u; block.x = %u;\n"
               "    const EmuTmap ta = {a.data(), %lld, %lld, %lld, %u}, tb = {bt.data(), %lld, %lld, %lld, %u};\n"
               "    const bf16 *p1 = (const bf16 *)p.data(), *p2 = p1 + %lld;\n"
               "    bf16 *g1 = (bf16 *)g.data(), *g2 = g1 + %lld;\n"
               "    emu_launch_cluster(grid, block, HG_CLUSTER, [&] { vmc_gemm_swiglu_bwd(ta, tb, p1, p2, bias.data(), "
               "bias.data() + %lld, g1, g2, sums.data(), sums.data() + %lld); });\n"
               "    FILE *f = fopen(\"c.bin\", \"wb\"); fwrite(g.data(), 2, g.size(), f);\n"
               "    fwrite(sums.data(), 4, sums.size(), f); fclose(f);\n"
               "    return 0;\n}\n",
            (long long)na, (long long)nb, (long long)(2 * mn), (long long)(2 * s.N), (long long)(2 * mn),
            (long long)(2 * s.N), t.grid[0], t.grid[1], t.block[0], l.grid[0], l.block[0], (long long)s.M, (long long)s.K,
            (long long)s.lda, l.tma_rows[0],
            (long long)s.N, (long long)s.K, (long long)s.ldb, l.tma_rows[1], (long long)mn, (long long)mn,
            (long long)s.N, (long long)s.N);
    fclose(o);
    if (compile_and_run(what)) {
        uint16_t *g = xcalloc((size_t)(2 * mn), 2);
        float *sums = xcalloc((size_t)(2 * s.N), 4);
        snprintf(path, sizeof path, "%s/c.bin", tmp);
        FILE *f = fopen(path, "rb");
        ASSERT(f && fread(g, 2, (size_t)(2 * mn), f) == (size_t)(2 * mn) &&
               fread(sums, 4, (size_t)(2 * s.N), f) == (size_t)(2 * s.N), "%s", path);
        fclose(f);
        /* flip: the column's largest change where the kernel's f32 dh rounds to the other bf16 neighbour of the
         * double's (the sums may hold a couple of those) */
        double *want_sum = xcalloc((size_t)(2 * s.N), 8), *mag = xcalloc((size_t)(2 * s.N), 8),
               *flip = xcalloc((size_t)(2 * s.N), 8);
        int64_t bad = 0;
        double maxerr = 0;
        for (int64_t i = 0; i < s.M; i++)
            for (int64_t j = 0; j < s.N; j++) {
                double q = 0;
                for (int64_t k = 0; k < s.K; k++) q += (double)bf16_to_f32(a[i * s.lda + k]) * bf16_to_f32(b[k * s.N + j]);
                const double dh = bf16_to_f32(f32_to_bf16((float)q));
                const double x = bf16_to_f32(p[i * s.N + j]) + bias[j], y = bf16_to_f32(p[mn + i * s.N + j]) + bias[s.N + j];
                const double sg = 1 / (1 + exp(-x)), d1 = y * sg * (1 + x * (1 - sg)), d2 = x * sg;
                const double want[2] = {dh * d1, dh * d2}, slack[2] = {fabs(d1 * dh) / 128, fabs(d2 * dh) / 128};
                for (int c = 0; c < 2; c++) {
                    const double err = fabs(bf16_to_f32(g[c * mn + i * s.N + j]) - want[c]);
                    if (err > maxerr) maxerr = err;
                    if (!(err <= fabs(want[c]) / 128 + slack[c] + 1e-5)) bad++;
                    want_sum[c * s.N + j] += want[c];
                    mag[c * s.N + j] += fabs(want[c]);
                    if (slack[c] > flip[c * s.N + j]) flip[c * s.N + j] = slack[c];
                }
            }
        int64_t bad_sums = 0;
        for (int64_t j = 0; j < 2 * s.N; j++)
            if (!(fabs(sums[j] - want_sum[j]) <= 1e-4 * mag[j] + 2 * flip[j] + 1e-5)) bad_sums++;
        CHECK(bad == 0, "%s: %lld elements off (largest error %.3g)", what, (long long)bad, maxerr);
        CHECK(bad_sums == 0, "%s: %lld column sums off", what, (long long)bad_sums);
        printf("%-46s %lldx%lldx%lld grid %u: largest error %.2g\n", what, (long long)s.M, (long long)s.N,
               (long long)s.K, l.grid[0], maxerr);
        free(g); free(sums); free(want_sum); free(mag); free(flip);
    }
    free(a); free(b); free(p); free(bias);
}

/* Random skinny products (fixed seed): shapes with one side at most 128 and partial tiles everywhere, either
 * transposition, padded leading dimensions and offset views (even: 4-byte copies at least), alpha, + acc, bf16 or f32
 * results at any alignment, long K (split) now and then: the tiling choices of template_gemm_skinny, not just the
 * mixer's. */
static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)((uniform() + 1) / 2 * (double)(hi - lo + 1)) % (hi - lo + 1); }
static void sweep_gemms(int count) {
    for (int c = 0; c < count; c++) {
        SkinnyGemmSpec s = {.ta = uniform() > 0, .tb = uniform() > 0, .acc = uniform() > 0.3, .c_bf16 = uniform() > 0};
        const int small = (int)pick(0, 2);   /* which of M, N, K is the skinny one */
        const bool longk = small != 2 && uniform() > 0.5;
        s.M = small == 0 ? 2 * pick(1, 64) : 2 * pick(1, 150);
        s.N = small == 1 ? 2 * pick(1, 64) : 2 * pick(1, 100);
        s.K = small == 2 ? 2 * pick(1, 64) : longk ? 2 * pick(300, 900) : 2 * pick(1, 200);
        if (longk) { s.M = 2 * pick(1, 48); s.N = 2 * pick(1, 48); }
        s.a_off = 2 * pick(0, 3);
        s.b_off = 2 * pick(0, 3);
        s.lda = (s.ta ? s.M : s.K) + s.a_off + 2 * pick(0, 4);
        s.ldb = (s.tb ? s.K : s.N) + s.b_off + 2 * pick(0, 4);
        static const float alphas[] = {1.f, 0.5f, -2.f};
        s.alpha = alphas[pick(0, 2)];
        s.c_align = 4 << pick(0, 2);
        char what[96];
        snprintf(what, sizeof what, "random %d: %s%s%s%s", c, s.ta ? "A^T " : "A ", s.tb ? "B^T" : "B",
                 s.acc ? " + acc" : "", s.c_bf16 ? ", bf16" : ", f32");
        check_gemm(what, s, 0);
    }
}

/* ---------------------------------------------------------------- conv1d, several row orders */
static double sigmoid_d(double x) { return 1 / (1 + exp(-x)); }

static void check_conv_multi(void) {
    enum { B = 3, L = 19, D = 80, K = 4, ND = 4, W = 2 * D };   /* x: channels D .. 2D-1 of a [B, L, 2D] buffer */
    int32_t perm[2][L];
    for (int t = 0; t < L; t++) { perm[0][t] = (t * 7) % L; perm[1][t] = (t * 5 + 3) % L; }   /* 7, 5 coprime to 19 */
    int32_t rev[L];
    for (int t = 0; t < L; t++) rev[t] = L - 1 - t;
    RowMap maps[ND] = {{L, W, D, NULL}, {L, W, D, rev}, {L, W, D, perm[0]}, {L, W, D, perm[1]}};
    Conv1dSpec cs = {.B = B, .L = L, .D = D, .K = K, .x = DT_BF16, .w = DT_F32, .bias = DT_F32, .out = DT_F32,
                     .silu = true};
    KernelLaunch kl;
    char *src = template_conv1d_fwd_multi(&cs, ND, maps, &kl);
    CHECK(src, "template_conv1d_fwd_multi refused the product");
    if (!src) return;
    uint16_t *x = xcalloc((size_t)B * L * W, 2);
    float *w = xcalloc((size_t)ND * D * K, 4), *bias = xcalloc((size_t)ND * D, 4);
    for (int i = 0; i < B * L * W; i++) x[i] = f32_to_bf16(uniform());
    for (int i = 0; i < ND * D * K; i++) w[i] = 0.5f * uniform();
    for (int i = 0; i < ND * D; i++) bias[i] = 0.1f * uniform();
    char path[512];
    snprintf(path, sizeof path, "%s/x.bin", tmp);
    ASSERT(write_file(path, x, (size_t)B * L * W * 2), "%s", path);
    snprintf(path, sizeof path, "%s/w.bin", tmp);
    ASSERT(write_file(path, w, (size_t)ND * D * K * 4), "%s", path);
    snprintf(path, sizeof path, "%s/bias.bin", tmp);
    ASSERT(write_file(path, bias, (size_t)ND * D * 4), "%s", path);
    FILE *o = driver_open(src);
    fprintf(o, "int main() {\n"
               "    auto x = load<unsigned short>(\"x.bin\", %d);\n"
               "    auto w = load<float>(\"w.bin\", %d);\n"
               "    auto bias = load<float>(\"bias.bin\", %d);\n"
               "    std::vector<float> y(%d, NAN);\n"
               "    dim3 grid, block;\n"
               "    grid.x = %u; grid.y = %u; block.x = %u; block.y = %u;\n"
               "    emu_launch(grid, block, [&] { vmc_conv1d_fwd_multi((const bf16 *)x.data(), w.data(), bias.data(), y.data(),"
               " w.data() + %d, bias.data() + %d, y.data() + %d, w.data() + %d, bias.data() + %d, y.data() + %d,"
               " w.data() + %d, bias.data() + %d, y.data() + %d); });\n"
               "    FILE *f = fopen(\"y.bin\", \"wb\"); fwrite(y.data(), 4, y.size(), f); fclose(f);\n"
               "    return 0;\n}\n",
            B * L * W, ND * D * K, ND * D, ND * B * L * D, kl.grid[0], kl.grid[1], kl.block[0], kl.block[1],
            D * K, D, B * L * D, 2 * D * K, 2 * D, 2 * B * L * D, 3 * D * K, 3 * D, 3 * B * L * D);
    fclose(o);
    free(src);
    if (compile_and_run("conv1d multi")) {
        snprintf(path, sizeof path, "%s/y.bin", tmp);
        FILE *f = fopen(path, "rb");
        float *y = xcalloc((size_t)ND * B * L * D, 4);
        ASSERT(f && fread(y, 4, (size_t)ND * B * L * D, f) == (size_t)ND * B * L * D, "%s", path);
        fclose(f);
        for (int j = 0; j < ND; j++) {
            double err = 0, big = 0;
            for (int b = 0; b < B; b++)
                for (int t = 0; t < L; t++)
                    for (int d = 0; d < D; d++) {
                        double acc = bias[j * D + d];
                        for (int k = 0; k < K; k++) {
                            const int s = t - K + 1 + k;
                            if (s < 0) continue;
                            const int row = maps[j].rows ? maps[j].rows[s] : s;
                            acc += (double)w[(j * D + d) * K + k] * bf16_to_f32(x[(b * L + row) * W + D + d]);
                        }
                        const double ref = acc * sigmoid_d(acc), got = y[((j * B + b) * L + t) * D + d];
                        if (fabs(ref) > big) big = fabs(ref);
                        if (!(fabs(got - ref) <= err)) err = isnan(got) ? INFINITY : fabs(got - ref);
                    }
            CHECK(err <= 1e-5 * big, "conv1d multi direction %d: largest error %.3g of values up to %.3g", j, err, big);
            printf("conv1d multi, direction %d of %d: grid %ux%u block %ux%u, %u B shared: largest error %.2g of %.2g\n",
                   j, ND, kl.grid[0], kl.grid[1], kl.block[0], kl.block[1], kl.smem, err, big);
        }
        free(y);
    }
    free(x); free(w); free(bias);
}

/* The backward of those four convs (+ SiLU) in one launch (template_conv1d_bwd_multi): each direction's dy (bf16)
 * + dy2 (bf16, a channel slice of a wider buffer), the summed dx in x's row order (bf16, as into a copy), dw and db
 * per direction (f32, accumulated from zero); against the double reference of each direction, scattered back. */
static void check_conv_multi_bwd(const char *what) {
    enum { B = 5, L = 19, D = 40, K = 4, ND = 4, W = 2 * D };
    int32_t perm[2][L], rev[L];
    for (int t = 0; t < L; t++) { perm[0][t] = (t * 7) % L; perm[1][t] = (t * 5 + 3) % L; rev[t] = L - 1 - t; }
    const int32_t *rows[ND] = {NULL, rev, perm[0], perm[1]};
    RowMap xm[ND], dym[ND], dy2m[ND];
    for (int j = 0; j < ND; j++) {
        xm[j] = (RowMap){L, W, D, rows[j]};
        dym[j] = (RowMap){0, 0, 0, NULL};
        dy2m[j] = (RowMap){L, 3 * D, D, NULL};
    }
    Conv1dSpec cs = {.B = B, .L = L, .D = D, .K = K, .x = DT_BF16, .w = DT_F32, .bias = DT_F32, .out = DT_BF16,
                     .dy = DT_BF16, .dy2 = DT_BF16, .silu_dy = true, .has_dy2 = true, .want_dx = true, .want_dw = true,
                     .want_db = true};
    KernelLaunch kl;
    char *src = template_conv1d_bwd_multi(&cs, ND, xm, dym, dy2m, &kl);
    CHECK(src && kl.nzero == ND, "template_conv1d_bwd_multi");
    if (!src) return;
    const int nx = B * L * W, ny = B * L * D, ny2 = B * L * 3 * D;
    uint16_t *x = xcalloc((size_t)nx, 2), *dy = xcalloc((size_t)ND * ny, 2), *dy2 = xcalloc((size_t)ND * ny2, 2);
    float *w = xcalloc((size_t)ND * D * K, 4), *bias = xcalloc((size_t)ND * D, 4);
    for (int i = 0; i < nx; i++) x[i] = f32_to_bf16(uniform());
    for (int i = 0; i < ND * ny; i++) dy[i] = f32_to_bf16(uniform());
    for (int i = 0; i < ND * ny2; i++) dy2[i] = f32_to_bf16(uniform());
    for (int i = 0; i < ND * D * K; i++) w[i] = 0.5f * uniform();
    for (int i = 0; i < ND * D; i++) bias[i] = 0.1f * uniform();
    char path[512];
    const struct { const char *name; const void *p; size_t bytes; } files[] = {
        {"x.bin", x, (size_t)nx * 2}, {"dy.bin", dy, (size_t)ND * ny * 2}, {"dy2.bin", dy2, (size_t)ND * ny2 * 2},
        {"w.bin", w, (size_t)ND * D * K * 4}, {"bias.bin", bias, (size_t)ND * D * 4}};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", tmp, files[k].name);
        ASSERT(write_file(path, files[k].p, files[k].bytes), "%s", path);
    }
    FILE *o = driver_open(src);
    fprintf(o, "int main() {\n"
               "    auto x = load<unsigned short>(\"x.bin\", %d);\n"
               "    auto dy = load<unsigned short>(\"dy.bin\", %d);\n"
               "    auto dy2 = load<unsigned short>(\"dy2.bin\", %d);\n"
               "    auto w = load<float>(\"w.bin\", %d);\n"
               "    auto bias = load<float>(\"bias.bin\", %d);\n"
               "    std::vector<unsigned short> dx(%d, 0xffff);\n"
               "    std::vector<float> dwb(%d, 0.f);\n"
               "    const bf16 *X = (const bf16 *)x.data(), *G = (const bf16 *)dy.data(), *H = (const bf16 *)dy2.data();\n"
               "    float *Q = dwb.data();\n"
               "    dim3 grid, block;\n"
               "    grid.x = %u; grid.y = %u; block.x = %u; block.y = %u;\n"
               "    emu_launch(grid, block, [&] { vmc_conv1d_bwd_multi(X, (bf16 *)dx.data(),\n",
            nx, ND * ny, ND * ny2, ND * D * K, ND * D, ny, ND * D * (K + 1), kl.grid[0], kl.grid[1], kl.block[0],
            kl.block[1]);
    for (int j = 0; j < ND; j++)
        fprintf(o, "        G + %d, H + %d, w.data() + %d, bias.data() + %d, Q + %d, Q + %d%s\n", j * ny, j * ny2,
                j * D * K, j * D, j * D * (K + 1), j * D * (K + 1) + D * K, j + 1 < ND ? "," : "); });");
    fprintf(o, "    FILE *f = fopen(\"dx.bin\", \"wb\"); fwrite(dx.data(), 2, dx.size(), f); fclose(f);\n"
               "    f = fopen(\"dwb.bin\", \"wb\"); fwrite(dwb.data(), 4, dwb.size(), f); fclose(f);\n"
               "    return 0;\n}\n");
    fclose(o);
    free(src);
    if (compile_and_run(what)) {
        uint16_t *dx = xcalloc((size_t)ny, 2);
        float *dwb = xcalloc((size_t)ND * D * (K + 1), 4);
        snprintf(path, sizeof path, "%s/dx.bin", tmp);
        FILE *f = fopen(path, "rb");
        ASSERT(f && fread(dx, 2, (size_t)ny, f) == (size_t)ny, "%s", path);
        fclose(f);
        snprintf(path, sizeof path, "%s/dwb.bin", tmp);
        f = fopen(path, "rb");
        ASSERT(f && fread(dwb, 4, (size_t)ND * D * (K + 1), f) == (size_t)ND * D * (K + 1), "%s", path);
        fclose(f);
        double *sum = xcalloc((size_t)ny, sizeof(double)), *g = xcalloc((size_t)ny, sizeof(double));
        double err_w = 0, big_w = 0;
        for (int j = 0; j < ND; j++) {
            double *dw = xcalloc((size_t)D * (K + 1), sizeof(double));
            for (int b = 0; b < B; b++)
                for (int d = 0; d < D; d++)
                    for (int t = 0; t < L; t++) {   /* g = (dy + dy2) silu'(p), p the conv of direction j's rows */
                        double p = bias[j * D + d];
                        for (int k = 0; k < K; k++) {
                            const int s = t - K + 1 + k;
                            if (s < 0) continue;
                            const int r = rows[j] ? rows[j][s] : s;
                            p += (double)w[(j * D + d) * K + k] * bf16_to_f32(x[(b * L + r) * W + D + d]);
                        }
                        const double sg = sigmoid_d(p);
                        g[(b * L + t) * D + d] = (bf16_to_f32(dy[j * ny + (b * L + t) * D + d]) +
                                                  bf16_to_f32(dy2[j * ny2 + (b * L + t) * 3 * D + D + d])) *
                                                 sg * (1 + p * (1 - sg));
                    }
            for (int b = 0; b < B; b++)
                for (int d = 0; d < D; d++)
                    for (int t = 0; t < L; t++) {
                        const double gv = g[(b * L + t) * D + d];
                        dw[D * K + d] += gv;
                        for (int k = 0; k < K; k++) {
                            const int s = t - K + 1 + k;
                            if (s < 0) continue;
                            const int r = rows[j] ? rows[j][s] : s;
                            sum[(b * L + r) * D + d] += gv * w[(j * D + d) * K + k];   /* dx_j[s], at x's row r */
                            dw[d * K + k] += gv * bf16_to_f32(x[(b * L + r) * W + D + d]);
                        }
                    }
            for (int i = 0; i < D * (K + 1); i++) {
                const double e = fabs(dwb[j * D * (K + 1) + i] - dw[i]);
                if (fabs(dw[i]) > big_w) big_w = fabs(dw[i]);
                if (!(e <= err_w)) err_w = isnan(e) ? INFINITY : e;
            }
            free(dw);
        }
        double err_x = 0, big_x = 0;
        for (int i = 0; i < ny; i++) {
            const double e = fabs(bf16_to_f32(dx[i]) - sum[i]);
            if (fabs(sum[i]) > big_x) big_x = fabs(sum[i]);
            if (!(e <= 1e-6 + fabs(sum[i]) / 128)) err_x = INFINITY;   /* bf16 rounding */
            else if (e > err_x) err_x = e;
        }
        CHECK(err_x < INFINITY, "%s: summed dx off beyond bf16 rounding", what);
        CHECK(err_w <= 1e-5 * big_w, "%s: dw/db largest error %.3g of %.3g", what, err_w, big_w);
        printf("%s, 4 directions: grid %ux%u block %ux%u, %u B shared: summed dx error %.2g of %.2g (bf16), dw/db "
               "%.2g of %.2g\n", what, kl.grid[0], kl.grid[1], kl.block[0], kl.block[1], kl.smem, err_x, big_x, err_w,
               big_w);
        free(dx); free(dwb); free(sum); free(g);
    }
    free(x); free(dy); free(dy2); free(w); free(bias);
}

static void check_hopper_kcat_and_sms(void) {
    check_hopper_kcat();
    check_hopper_sms();
}

static const EmuPart parts[] = {
    {"skinny", check_skinny_and_conv}, {"hopper", check_hopper_gemms}, {"mn", check_hopper_mn_major},
    {"kcat", check_hopper_kcat_and_sms},
};
enum { NPARTS = sizeof parts / sizeof parts[0] };

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: test_emu_instances CXX EMU_DIR [skinny|hopper|mn|kcat|all]\n"); return 2; }
    cxx = argv[1];
    if (!(emu_dir = emu_dir_absolute(argv[2]))) return 2;
    bool want[NPARTS];
    if (!emu_parts_wanted("test_emu_instances", argc > 3 ? argv[3] : "all", parts, NPARTS, want)) return 2;
    snprintf(tmp, sizeof tmp, "%s/vmc-emu-inst-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    for (int i = 0; i < NPARTS; i++)
        if (want[i]) parts[i].run();
    return emu_test_end(tmp, failures);
}

/* vmc's skinny GEMM (skinny_gemm.cuh) on the mixer's shapes and random ones, the multi-direction conv1d kernels, and
 * the products the templates must refuse */
static void check_skinny_and_conv(void) {
    /* x_proj forward: u [M, D] times W [80, D]^T, bf16 out; M past a whole number of tiles */
    check_gemm("x_proj forward (A B^T, bf16)", (SkinnyGemmSpec){.M = 300, .N = 80, .K = 96, .lda = 96, .ldb = 96,
               .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, -1);
    /* dt_proj forward: the first 48 columns of x_proj's [M, 80] output (a column view) times W [D, 48]^T */
    check_gemm("dt_proj forward (column view A)", (SkinnyGemmSpec){.M = 200, .N = 96, .K = 48, .lda = 80, .ldb = 48,
               .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, -1);
    /* dt_proj's input gradient: ddelta [M, D] times W [D, 48] */
    check_gemm("dt_proj input gradient (A B, f32)", (SkinnyGemmSpec){.M = 150, .N = 48, .K = 96, .lda = 96, .ldb = 48,
               .alpha = 1, .c_align = 16}, -1);
    /* x_proj's input gradient added to another: d x_dbl [M, 80] times W [80, D], scaled, + acc */
    check_gemm("x_proj input gradient (+ acc, alpha)", (SkinnyGemmSpec){.M = 130, .N = 96, .K = 80, .lda = 80, .ldb = 96,
               .acc = true, .alpha = 0.5f, .c_align = 16}, -1);
    /* C not 8-byte aligned: results one by one */
    check_gemm("x_proj input gradient (+ acc, bf16)", (SkinnyGemmSpec){.M = 64, .N = 96, .K = 80, .lda = 80, .ldb = 96,
               .acc = true, .c_bf16 = true, .alpha = 1}, -1);
    /* the weight gradients: sums over all tokens, K split across CTAs */
    check_gemm("x_proj weight gradient (A^T B, split K)", (SkinnyGemmSpec){.M = 80, .N = 96, .K = 2000, .lda = 80,
               .ldb = 96, .ta = true, .alpha = 1, .c_align = 16}, 1);
    check_gemm("dt_proj weight gradient (column view B)", (SkinnyGemmSpec){.M = 96, .N = 48, .K = 1500, .lda = 96,
               .ldb = 80, .ta = true, .alpha = 1, .c_align = 16}, 1);
    /* both operands transposed, odd sizes (partial fragments, an odd N: results one by one), 2-element copies
     * from an offset view */
    check_gemm("A^T B^T, partial tiles, offset view", (SkinnyGemmSpec){.M = 20, .N = 9, .K = 6, .lda = 22, .ldb = 6,
               .ta = true, .tb = true, .alpha = 2, .a_off = 2, .c_align = 16}, 0);
    sweep_gemms(12);
    /* the staged epilogue (VMC_SKINNY_GEMM's fifth value), with smaller tiles so that shapes cross several CTAs */
    setenv("VMC_SKINNY_GEMM", "64,32,4,264,1", 1);
    SkinnyGemmLaunch sl;
    char *staged = template_gemm_skinny(&(SkinnyGemmSpec){.M = 200, .N = 192, .K = 48, .lda = 48, .ldb = 48, .tb = true,
                                        .c_bf16 = true, .alpha = 1, .c_align = 16}, &sl);
    CHECK(staged && strstr(staged, "#define SG_EV 4\n") && sl.k.smem >= 64 * (64 + 4) * 4,
          "VMC_SKINNY_GEMM's fifth value did not select the staged epilogue (4 elements a lane)");
    free(staged);
    check_gemm("staged epilogue: dt_proj forward", (SkinnyGemmSpec){.M = 200, .N = 192, .K = 48, .lda = 48, .ldb = 48,
               .tb = true, .c_bf16 = true, .alpha = 1, .c_align = 16}, -1);
    check_gemm("staged epilogue: x_proj input gradient (+ acc, f32)", (SkinnyGemmSpec){.M = 130, .N = 96, .K = 80,
               .lda = 80, .ldb = 96, .acc = true, .alpha = 0.5f, .c_align = 16}, -1);
    sweep_gemms(8);
    unsetenv("VMC_SKINNY_GEMM");
    check_conv_multi();
    check_conv_multi_bwd("conv1d multi backward (loads a direction ahead)");
    setenv("VMC_CONV_MBWD_AHEAD", "0", 1);   /* each direction's loads at its start */
    check_conv_multi_bwd("conv1d multi backward, loads at each direction's start");
    unsetenv("VMC_CONV_MBWD_AHEAD");
    /* products it must refuse */
    SkinnyGemmLaunch l;
    SkinnyGemmSpec odd = {.M = 64, .N = 64, .K = 7, .lda = 7, .ldb = 64, .alpha = 1};
    char *src = template_gemm_skinny(&odd, &l);
    CHECK(!src, "an odd K-contiguous A (no 4-byte copies) was accepted");
    free(src);
    SkinnyGemmSpec big = {.M = 4096, .N = 4096, .K = 4096, .lda = 4096, .ldb = 4096, .alpha = 1};
    src = template_gemm_skinny(&big, &l);
    CHECK(!src, "a product with no dimension under %d was accepted", SKINNY_GEMM_MAX_DIM);
    free(src);
}
