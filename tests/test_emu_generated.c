/* test_emu_generated.c CXX EMU_DIR — generated kernels run on the CPU. Each case's fused kernel (codegen_group) is
 * compiled as C++ against tests/emu/cuda_emu.h (a pthread per CUDA thread, warp shuffles through exchange slots)
 * with the host compiler, run on random inputs, and compared with the cpu backend. CI has no GPU: this is where the
 * index math of generated kernels (4-wide lanes, row gathers, pads, warp and block rows, split rows, column sums
 * over outer axes, scatters, Philox masks, bf16-stored inputs, bf16 copies of results) is checked numerically
 * there: within 1e-5 of the largest value. */
#include "codegen.h"
#include "emu/emu_test.h"
#include "exec.h"
#include "pass.h"
#include "scan_ref.h"   /* ref_uniform, ref_round_bf16 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

static const char *cxx, *emu_dir;
static char tmp[256];
static int instances = 1;   /* > 1: run the kernel batched (codegen_group_batched), each instance with its own buffers */
static bool misalign_inputs;   /* the plan's input offsets moved off 16-byte alignment: element-by-element code */

static Node *bin(Graph *g, OpKind op, Node *a, Node *b) { Node *n = g_binary(g, op, a, b, LOC_NONE); ASSERT(n, "%s", g->err); return n; }
static Node *in(Graph *g, const char *name, Shape s) { return g_input(g, name, s, DT_F32, LOC_NONE); }

static bool write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(p, 1, n, f) == n;
    if (f) fclose(f);
    return ok;
}

/* The C++ program that runs kernel ks of group gr once: inputs from in<p>.bin (f32, or bf16 words where bf16[p]),
 * every output p (f32) to out<p>.bin and the root's bf16 copy, where it has one, to outb0.bin. */
static void write_driver(const char *path, const Fusion *f, const Group *gr, const KernelSource *ks, const bool *bf16) {
    FILE *o = fopen(path, "w");
    ASSERT(o, "%s", path);
    fprintf(o, "#include \"cuda_emu.h\"\n#include <cstdio>\n#include <cstring>\n#include <vector>\n%s\n%s\n",
            codegen_preamble(), ks->body);
    fprintf(o, "template <class T> static std::vector<T> load(const char *p, size_t n) {\n"
               "    std::vector<T> v(n); FILE *f = fopen(p, \"rb\"); if (!f || fread(v.data(), sizeof(T), n, f) != n) exit(3);\n"
               "    fclose(f); return v;\n}\n");
    fprintf(o, "int main() {\n");
    for (int p = 0; p < gr->nins; p++)
        fprintf(o, "    auto in%d = load<%s>(\"in%d.bin\", %lld);\n", p, bf16[p] ? "unsigned short" : "float", p,
                (long long)shape_numel(gr->ins[p]->shape));
    for (int p = 0; p < gr->nouts; p++) {
        fprintf(o, "    std::vector<float> out%d(%lld);\n", p, (long long)shape_numel(gr->outs[p]->shape));
        if (f->shadow[gr->outs[p]->id]) fprintf(o, "    std::vector<unsigned short> outb%d(out%d.size());\n", p, p);
    }
    fprintf(o, "    unsigned long long rng[2] = {1, 0};\n    dim3 grid, block;\n    grid.x = %u; block.x = %u;\n",
            ks->grid, ks->block);
    if (instances > 1) {   /* every instance its own copies of the inputs and outputs; all must agree */
        const int I = instances;
        fprintf(o, "    VmcArgs_%s a;\n    grid.y = %d;\n", ks->name, I);
        for (int p = 0; p < gr->nins; p++) fprintf(o, "    std::vector<decltype(in%d)> in%ds(%d, in%d);\n", p, p, I, p);
        for (int p = 0; p < gr->nouts; p++) {
            fprintf(o, "    std::vector<decltype(out%d)> out%ds(%d, out%d);\n", p, p, I, p);
            if (f->shadow[gr->outs[p]->id]) fprintf(o, "    std::vector<decltype(outb%d)> outb%ds(%d, outb%d);\n", p, p, I, p);
        }
        fprintf(o, "    for (int i = 0; i < %d; i++) {\n        int j = 0;\n", I);
        for (int p = 0; p < gr->nins; p++) fprintf(o, "        a.p[i][j++] = (unsigned long long)in%ds[i].data();\n", p);
        for (int p = 0; p < gr->nouts; p++) fprintf(o, "        a.p[i][j++] = (unsigned long long)out%ds[i].data();\n", p);
        for (int p = 0; p < gr->nouts; p++)
            if (f->shadow[gr->outs[p]->id]) fprintf(o, "        a.p[i][j++] = (unsigned long long)outb%ds[i].data();\n", p);
        fprintf(o, "        a.p[i][j++] = (unsigned long long)rng;\n    }\n");
        fprintf(o, "    emu_launch(grid, block, [&] { %s_x(a); });\n", ks->name);
        fprintf(o, "    for (int i = 1; i < %d; i++)\n", I);
        fprintf(o, "        if (memcmp(out0s[i].data(), out0s[0].data(), 4 * out0.size())) return 4;\n");
        fprintf(o, "    out0 = out0s[%d];\n", I - 1);
        if (f->shadow[gr->outs[0]->id]) fprintf(o, "    outb0 = outb0s[%d];\n", I - 1);
    } else {
        fprintf(o, "    emu_launch(grid, block, [&] { %s(", ks->name);
        for (int p = 0; p < gr->nins; p++) fprintf(o, "in%d.data(), ", p);
        for (int p = 0; p < gr->nouts; p++) fprintf(o, "out%d.data(), ", p);
        for (int p = 0; p < gr->nouts; p++) if (f->shadow[gr->outs[p]->id]) fprintf(o, "outb%d.data(), ", p);
        fprintf(o, "rng); });\n");
    }
    fprintf(o, "    FILE *f;\n");
    for (int p = 0; p < gr->nouts; p++)
        fprintf(o, "    f = fopen(\"out%d.bin\", \"wb\"); fwrite(out%d.data(), 4, out%d.size(), f); fclose(f);\n", p, p, p);
    if (f->shadow[gr->outs[0]->id])
        fprintf(o, "    f = fopen(\"outb0.bin\", \"wb\"); fwrite(outb0.data(), 2, outb0.size(), f); fclose(f);\n");
    fprintf(o, "}\n");
    fclose(o);
}

/* Runs the kernel computing ys[0] (the root of its group; every input of the group a graph input; ys[1..] further
 * outputs of the same kernel, as siblings merged by pass_merge) in the emulator and compares each with the cpu
 * backend; `bf16` lists inputs stored as bf16 (as GEMM outputs under autocast). With `copy`, y also gets a bf16
 * copy (as a GEMM operand written by its kernel), compared with y rounded to bf16. */
static void check_outputs(const char *what, Graph *g, Node **ys, int nys, Node *const *bf16_ins, int nbf16, bool copy) {
    for (int k = 0; k < nys; k++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", k);
        graph_add_named(g, name, ys[k], NF_OUTPUT);
    }
    Node *y = ys[0];
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    for (int k = 0; k < nbf16; k++) f->store_bf16[bf16_ins[k]->id] = true;
    if (copy) f->shadow[f->repl[y->id]->id] = true;
    pass_plan(f);
    if (misalign_inputs)   /* as a view at an odd offset would be: the kernel cannot read its inputs 4-wide */
        for (int k = 0; k < f->ngroups; k++)
            for (int i = 0; i < f->groups[k].nins; i++) f->buf[f->groups[k].ins[i]->id].offset += 4;
    const Node *Y = f->repl[y->id];
    const Group *gr = &f->groups[f->group_of[Y->id]];
    CHECK(gr->root == Y && (gr->kind == GK_EW || gr->kind == GK_ROW || gr->kind == GK_SCATTER),
          "%s: y is not a generated kernel's root", what);
    int slot[8];   /* output index of each y in the kernel */
    for (int k = 0; k < nys && k < 8; k++) {
        slot[k] = -1;
        for (int o = 0; o < gr->nouts; o++) if (gr->outs[o] == f->repl[ys[k]->id]) slot[k] = o;
        CHECK(slot[k] >= 0, "%s: output %d is not written by the kernel of y0", what, k);
        if (slot[k] < 0) nys = k;
    }
    KernelSource ks;
    codegen_group_batched(f, gr, instances, &ks);
    Exec *cpu = cpu_exec_new(g, ys, nys);
    bool bf16[16] = {0};
    RefRng rng = {12345};
    for (int p = 0; p < gr->nins && p < 16; p++) {
        const Node *x = gr->ins[p];
        CHECK(x->op == OP_INPUT, "%s: input %d of the kernel is not a graph input", what, p);
        const int64_t n = shape_numel(x->shape);
        float *v = malloc(sizeof(float) * (size_t)n);
        unsigned short *h = malloc(sizeof(unsigned short) * (size_t)n);
        bf16[p] = fus_bf16(f, x);
        for (int64_t i = 0; i < n; i++) {   /* values in [-2, 2) */
            v[i] = (float)ref_uniform(&rng) * 4.f - 2.f;
            if (bf16[p]) {
                v[i] = ref_round_bf16(v[i]);
                unsigned u;
                memcpy(&u, &v[i], 4);
                h[i] = (unsigned short)(u >> 16);
            }
        }
        exec_write(cpu, x, v, sizeof(float) * (size_t)n);
        char path[320];
        snprintf(path, sizeof path, "%s/in%d.bin", tmp, p);
        CHECK(write_file(path, bf16[p] ? (void *)h : (void *)v, (size_t)n * (bf16[p] ? 2 : 4)), "%s", path);
        free(v);
        free(h);
    }
    StepInfo si = {1, 0};
    exec_run(cpu, &si);
    char drv[320], cmd[1600], out[320];
    snprintf(drv, sizeof drv, "%s/kernel.cpp", tmp);
    write_driver(drv, f, gr, &ks, bf16);
    snprintf(cmd, sizeof cmd, "cd %s && %s -std=c++17 -O1 -w -fsanitize=address -I%s kernel.cpp %s/cuda_emu.cpp -o kernel -lpthread && ./kernel",
             tmp, cxx, emu_dir, emu_dir);
    const int rc = system(cmd);
    for (int k = 0; k < nys; k++) {
        const int64_t ny = shape_numel(ys[k]->shape);
        float *want = malloc(sizeof(float) * (size_t)ny), *got = calloc((size_t)ny, sizeof(float));
        exec_read(cpu, ys[k], want, sizeof(float) * (size_t)ny);
        snprintf(out, sizeof out, "%s/out%d.bin", tmp, slot[k]);
        FILE *fo = fopen(out, "rb");
        const bool ran = rc == 0 && fo && fread(got, 4, (size_t)ny, fo) == (size_t)ny;
        if (fo) fclose(fo);
        remove(out);
        double err = 0, scale = 0, err_copy = 0;
        for (int64_t i = 0; i < ny; i++) {
            err = fmax(err, fabs((double)got[i] - want[i]));
            scale = fmax(scale, fabs((double)want[i]));
        }
        if (copy && k == 0) {   /* within one bf16 rounding step of y (y itself may differ from the cpu's in its last bits) */
            unsigned short *b = calloc((size_t)ny, 2);
            snprintf(out, sizeof out, "%s/outb0.bin", tmp);
            fo = fopen(out, "rb");
            const bool read = fo && fread(b, 2, (size_t)ny, fo) == (size_t)ny;
            if (fo) fclose(fo);
            remove(out);
            for (int64_t i = 0; read && i < ny; i++) {
                const unsigned u = (unsigned)b[i] << 16;
                float v;
                memcpy(&v, &u, 4);
                err_copy = fmax(err_copy, fabs((double)v - ref_round_bf16(want[i])) / (fabs((double)want[i]) + 1e-6 * scale));
            }
            CHECK(read && err_copy <= 1.0 / 128, "%s: the bf16 copy differs from y rounded to bf16 (%g)", what, err_copy);
            free(b);
        }
        printf("%-48s %s%s: max |emulated - cpu| %.3g (max |cpu| %.3g)\n", what, ks.name, nys > 1 ? (k ? " out1+" : " out0") : "",
               err, scale);
        CHECK(ran && err <= 1e-5 * scale, "%s: output %d of the emulated kernel %s (rc %d):\n%s", what, k,
              ran ? "differs from the cpu backend" : "did not run", rc, ks.body);
        free(want);
        free(got);
    }
    exec_free(cpu);
    kernel_source_free(&ks);
    fusion_free(f);
    graph_free(g);
}

static void check_kernel(const char *what, Graph *g, Node *y, Node *const *bf16_ins, int nbf16, bool copy) {
    check_outputs(what, g, &y, 1, bf16_ins, nbf16, copy);
}

static void check_case(const char *what, Graph *g, Node *y, Node *const *bf16_ins, int nbf16) {
    check_kernel(what, g, y, bf16_ins, nbf16, false);
}

static Shape s3(int64_t a, int64_t b, int64_t c) { return shape_of(3, a, b, c); }

/* LayerNorm over the last axis with a weight, optionally of a bf16-stored input plus an f32 one (a GEMM output and
 * the residual): warp rows, 4 elements per lane (the weight read 4-wide) when the row length is a multiple of 128. */
static void layernorm(int64_t C, bool bf16) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(3, 7, C)), *r = in(g, "r", s3(3, 7, C)), *h = bin(g, OP_ADD, x, r);
    Node *w = in(g, "w", shape_of(1, C));
    Node *xc = bin(g, OP_SUB, h, bin(g, OP_MUL, g_reduce(g, OP_SUM, h, 2, LOC_NONE), g_scalar(g, 1.0 / C)));
    Node *var = bin(g, OP_MUL, g_reduce(g, OP_SUM, bin(g, OP_MUL, xc, xc), 2, LOC_NONE), g_scalar(g, 1.0 / C));
    Node *y = bin(g, OP_MUL, bin(g, OP_MUL, xc, g_unary(g, OP_RSQRT, bin(g, OP_ADD, var, g_scalar(g, 1e-5)), LOC_NONE)), w);
    char what[96];
    snprintf(what, sizeof what, "%slayernorm over %lld%s", instances > 1 ? "batched: " : "", (long long)C, bf16 ? ", bf16 x" : "");
    check_case(what, g, y, &x, bf16);
}

/* A row gather (reversed rows, as the scan directions' inverse permutations) plus a channel pad by `shift`: by 4
 * the padded input is read 4-wide, by 2 its pad splits the 4 elements and it is read element by element. */
static void gather_pad(int shift, bool bf16) {
    Graph *g = graph_new();
    Node *a = in(g, "a", s3(4, 10, 64)), *b = in(g, "b", s3(4, 10, 64 - 2 * shift));
    int32_t rev[10];
    for (int t = 0; t < 10; t++) rev[t] = 9 - t;
    Node *y = bin(g, OP_ADD, g_gather(g, a, 1, rev, 10, LOC_NONE), g_pad(g, b, 2, shift, 64, LOC_NONE));
    char what[96];
    snprintf(what, sizeof what, "row gather + pad by %d%s", shift, bf16 ? ", bf16 inputs" : "");
    Node *both[2] = {a, b};
    check_case(what, g, y, both, bf16 ? 2 : 0);
}

/* A column sum over tokens of a bf16 value's channel slice (a bias gradient read from a wider buffer, through a
 * reshape): 4 columns per lane, the slice read 4-wide. */
static void column_sum_of_slice(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(8, 128, 1024));
    Node *cols = g_reshape(g, g_slice(g, x, 2, 256, 1024, LOC_NONE), shape_of(2, (int64_t)1024, (int64_t)768), LOC_NONE);
    check_case("column sum of a channel slice, bf16", g, g_reduce(g, OP_SUM, cols, 0, LOC_NONE), &x, 1);
}

/* Softmax over rows longer than a warp takes (a block per row: block-wide max and sum through shared memory). */
static void softmax_long_rows(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", shape_of(2, (int64_t)5, (int64_t)3000));
    Node *ex = g_unary(g, OP_EXP, bin(g, OP_SUB, x, g_reduce(g, OP_AMAX, x, 1, LOC_NONE)), LOC_NONE);
    check_case("softmax over rows of 3000 (a block per row)", g, bin(g, OP_DIV, ex, g_reduce(g, OP_SUM, ex, 1, LOC_NONE)),
               NULL, 0);
}

/* A sum of two long rows split over blocks (atomicAdd into the zeroed output), as the losses. */
static void split_row_sum(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", shape_of(2, (int64_t)2, (int64_t)70000));
    check_case("sum of 2 rows of 70000 (split over blocks)", g, g_reduce(g, OP_SUM, bin(g, OP_MUL, x, x), 1, LOC_NONE),
               NULL, 0);
}

/* Drop path's mask (Philox, keyed by seed, step and element): the emulated kernel draws the cpu backend's numbers. */
static void drop_mask(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(6, 10, 32));
    check_case("dropout mask (Philox) times x", g, bin(g, OP_MUL, x, g_drop_mask(g, x->shape, 0.3, 77, LOC_NONE)), NULL, 0);
}

/* erf (codegen's vmc_erf) in a kernel: inputs over [-5, 5), so both pieces and the clamp at 4 are taken. Then the
 * GELU of a bf16 input over 2^20 + 4 elements: a kernel reading so few bytes takes two groups of 4 elements a thread
 * (ew_groups_per_thread), here with an odd number of groups (the unrolled loop's tail). */
static void erf_kernel(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(4, 33, 64));
    check_case("erf over [-5, 5)", g, g_unary(g, OP_ERF, bin(g, OP_MUL, x, g_scalar(g, 2.5)), LOC_NONE), NULL, 0);
    g = graph_new();
    x = in(g, "x", shape_of(2, (int64_t)1, (int64_t)((1 << 20) + 4)));
    Node *erf = g_unary(g, OP_ERF, bin(g, OP_MUL, x, g_scalar(g, 0.7071067811865476)), LOC_NONE);
    Node *gelu = bin(g, OP_MUL, bin(g, OP_MUL, x, g_scalar(g, 0.5)), bin(g, OP_ADD, erf, g_scalar(g, 1.0)));
    check_case("GELU of bf16, 2^20 + 4 elements, 8 a thread", g, gelu, &x, 1);
}

/* vmc_erf against the exact erf (long double) on every 61st float of [0, 4.5), in ulps of the result: at most 2
 * (1.7 on all of them, with the host's correctly rounded exp2f standing in for the EX2 unit), odd, NaN kept. */
static void erf_accuracy(void) {
    char src[320], cmd[1600];
    snprintf(src, sizeof src, "%s/erf.cpp", tmp);
    FILE *o = fopen(src, "w");
    ASSERT(o, "%s", src);
    fprintf(o, "#include \"cuda_emu.h\"\n#include <cstdio>\n#include <cstring>\n%s\n", codegen_preamble());
    fprintf(o, "int main() {\n"
               "    double worst = 0; float at = 0;\n"
               "    for (unsigned u = 0; u < 0x40900000u; u += 61) {\n"
               "        float x; memcpy(&x, &u, 4);\n"
               "        long double r = erfl((long double)x);\n"
               "        int e; frexpl(r, &e);\n"
               "        double ulp = ldexp(1.0, e - 24); if (ulp < 0x1p-149) ulp = 0x1p-149;\n"
               "        double d = (double)fabsl((long double)vmc_erf(x) - r) / ulp;\n"
               "        if (vmc_erf(-x) != -vmc_erf(x)) d = 1e9;\n"
               "        if (d > worst) { worst = d; at = x; }\n"
               "    }\n"
               "    bool nan_ok = vmc_erf(NAN) != vmc_erf(NAN), inf_ok = vmc_erf(INFINITY) == 1.0f;\n"
               "    printf(\"  max %%.3f ulp at %%.9g; erf(nan) nan %%d, erf(inf) 1 %%d\\n\", worst, at, nan_ok, inf_ok);\n"
               "    return worst <= 2.0 && nan_ok && inf_ok ? 0 : 1;\n"
               "}\n");
    fclose(o);
    printf("vmc_erf against the exact erf\n");
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "cd %s && %s -std=c++17 -O2 -w -I%s erf.cpp %s/cuda_emu.cpp -o erf -lpthread && ./erf", tmp,
             cxx, emu_dir, emu_dir);
    CHECK(system(cmd) == 0, "vmc_erf: more than 2 ulp from erf, not odd, or NaN/inf wrong");
}

/* A softmax whose output P a GEMM reads (P V) and a generated kernel reads too (the softmax backward's
 * P (dP - sum(P dP))): that kernel recomputes P from the scores and the row max and sum the softmax kernel stores
 * (pass_fuse recompute_roots) instead of reading P. Both kernels run in the emulator, the second on what the first
 * stored; the backward's result is compared with the cpu backend's. With bf16, as in ARM-B pretraining: the scores
 * are stored in bf16 (a GEMM's output) and P only as its bf16 copy for the GEMMs (shadow_only). */
static void recomputed_softmax(bool bf16) {
    Graph *g = graph_new();
    Node *s = in(g, "s", s3(3, 16, 64)), *mask = in(g, "mask", shape_of(2, (int64_t)16, (int64_t)64));
    Node *v = in(g, "v", s3(3, 64, 32)), *dp = in(g, "dp", s3(3, 16, 64));
    Node *x = bin(g, OP_ADD, bin(g, OP_MUL, s, g_scalar(g, 0.125)), mask);
    Node *ex = g_unary(g, OP_EXP, bin(g, OP_SUB, x, g_reduce(g, OP_AMAX, x, 2, LOC_NONE)), LOC_NONE);
    Node *p = bin(g, OP_DIV, ex, g_reduce(g, OP_SUM, ex, 2, LOC_NONE));
    Node *pv = g_matmul(g, p, v, false, false, LOC_NONE);
    Node *z = bin(g, OP_MUL, p, bin(g, OP_SUB, dp, g_reduce(g, OP_SUM, bin(g, OP_MUL, p, dp), 2, LOC_NONE)));
    graph_add_named(g, "pv", pv, NF_OUTPUT);
    graph_add_named(g, "z", z, NF_OUTPUT);
    Fusion *f = pass_simplify(g, NULL, 0);
    pass_fuse(f);
    const Node *P = f->repl[p->id], *Z = f->repl[z->id];
    if (bf16) f->store_bf16[f->repl[s->id]->id] = f->shadow[P->id] = f->shadow_only[P->id] = true;
    pass_plan(f);
    const Group *ga = &f->groups[f->group_of[P->id]], *gb = &f->groups[f->group_of[Z->id]];
    bool reads_p = false;
    for (int k = 0; k < gb->nins; k++) reads_p |= gb->ins[k] == P;
    CHECK(f->recompute[P->id] && !reads_p && ga != gb, "softmax P: not recomputed by the backward's kernel");
    KernelSource ka, kb;
    codegen_group(f, ga, &ka);
    codegen_group(f, gb, &kb);
    Node *ins[4] = {s, mask, v, dp};
    Exec *cpu = cpu_exec_new(g, &z, 1);
    RefRng rng = {777};
    char path[320], cmd[1600];
    snprintf(path, sizeof path, "%s/chain.cpp", tmp);
    FILE *o = fopen(path, "w");
    ASSERT(o, "%s", path);
    fprintf(o, "#include \"cuda_emu.h\"\n#include <cstdio>\n#include <vector>\n%s\n%s\n%s\n", codegen_preamble(), ka.body, kb.body);
    fprintf(o, "int main() {\n    unsigned long long rng[2] = {1, 0};\n    dim3 grid, block;\n");
    /* a buffer per value either kernel reads or writes, graph inputs filled from files */
    const Group *gs[2] = {ga, gb};
    bool *declared = calloc((size_t)g->nnodes, sizeof(bool));
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < gs[q]->nins + gs[q]->nouts; k++) {
            const Node *n = k < gs[q]->nins ? gs[q]->ins[k] : gs[q]->outs[k - gs[q]->nins];
            if (declared[n->id]) continue;
            declared[n->id] = true;
            fprintf(o, "    static std::vector<%s> b%u(%lld);\n", fus_bf16(f, n) ? "unsigned short" : "float", n->id,
                    (long long)shape_numel(n->shape));
            if (f->shadow[n->id]) fprintf(o, "    static std::vector<unsigned short> c%u(%lld);\n", n->id, (long long)shape_numel(n->shape));
        }
    for (int i = 0; i < 4; i++) {
        const Node *n = f->repl[ins[i]->id];
        const int64_t numel = shape_numel(n->shape);
        float *d = malloc(sizeof(float) * (size_t)numel);
        const bool half = fus_bf16(f, n);
        unsigned short *h = malloc(sizeof(unsigned short) * (size_t)numel);
        for (int64_t e = 0; e < numel; e++) {
            d[e] = (float)ref_uniform(&rng) * 4.f - 2.f;
            if (half) d[e] = ref_round_bf16(d[e]);
            unsigned u;
            memcpy(&u, &d[e], 4);
            h[e] = (unsigned short)(u >> 16);
        }
        exec_write(cpu, ins[i], d, sizeof(float) * (size_t)numel);
        snprintf(path, sizeof path, "%s/in%u.bin", tmp, n->id);
        CHECK(write_file(path, half ? (void *)h : (void *)d, (size_t)numel * (half ? 2 : 4)), "%s", path);
        free(d);
        free(h);
        if (declared[n->id])   /* (v only the GEMM reads) */
            fprintf(o, "    { FILE *f = fopen(\"in%u.bin\", \"rb\"); if (!f || fread(b%u.data(), %d, b%u.size(), f) != b%u.size()) return 3; fclose(f); }\n",
                n->id, n->id, half ? 2 : 4, n->id, n->id);
    }
    free(declared);
    const KernelSource *ks[2] = {&ka, &kb};
    for (int q = 0; q < 2; q++) {
        fprintf(o, "    grid.x = %u; block.x = %u;\n    emu_launch(grid, block, [&] { %s(", ks[q]->grid, ks[q]->block, ks[q]->name);
        for (int k = 0; k < gs[q]->nins + gs[q]->nouts; k++)
            fprintf(o, "b%u.data(), ", (k < gs[q]->nins ? gs[q]->ins[k] : gs[q]->outs[k - gs[q]->nins])->id);
        for (int k = 0; k < gs[q]->nouts; k++)   /* (codegen.h: the outputs' bf16 copies follow the outputs) */
            if (f->shadow[gs[q]->outs[k]->id]) fprintf(o, "c%u.data(), ", gs[q]->outs[k]->id);
        fprintf(o, "rng); });\n");
    }
    fprintf(o, "    FILE *f = fopen(\"z.bin\", \"wb\"); fwrite(b%u.data(), 4, b%u.size(), f); fclose(f);\n}\n", Z->id, Z->id);
    fclose(o);
    StepInfo si = {1, 0};
    exec_run(cpu, &si);
    snprintf(cmd, sizeof cmd, "cd %s && %s -std=c++17 -O1 -w -I%s chain.cpp %s/cuda_emu.cpp -o chain -lpthread && ./chain", tmp, cxx,
             emu_dir, emu_dir);
    const int rc = system(cmd);
    const int64_t nz = shape_numel(z->shape);
    float *want = malloc(sizeof(float) * (size_t)nz), *got = calloc((size_t)nz, sizeof(float));
    exec_read(cpu, z, want, sizeof(float) * (size_t)nz);
    snprintf(path, sizeof path, "%s/z.bin", tmp);
    FILE *fz = fopen(path, "rb");
    const bool ran = rc == 0 && fz && fread(got, 4, (size_t)nz, fz) == (size_t)nz;
    if (fz) fclose(fz);
    double err = 0, scale = 0;
    for (int64_t e = 0; e < nz; e++) {
        err = fmax(err, fabs((double)got[e] - want[e]));
        scale = fmax(scale, fabs((double)want[e]));
    }
    printf("%-48s %s then %s: max |emulated - cpu| %.3g (max |cpu| %.3g)\n",
           bf16 ? "softmax backward recomputing P, bf16" : "softmax backward recomputing P", ka.name, kb.name, err, scale);
    CHECK(ran && err <= 1e-5 * scale, "softmax backward recomputing P%s: %s (rc %d)", bf16 ? " (bf16)" : "",
          ran ? "differs from the cpu backend" : "did not run", rc);
    free(want);
    free(got);
    exec_free(cpu);
    kernel_source_free(&ka);
    kernel_source_free(&kb);
    fusion_free(f);
    graph_free(g);
}

/* The zeroing kernel of merged memsets (emit_zero.c): ranges of one float, of several blocks (float and float4
 * stores, ends inside a block) and in between, laid out in one array with guards between them; every element of
 * every range must be zero and every guard untouched. */
static void zero_kernel(void) {
    const ZeroRange r[] = {{4, false}, {3 * 4096 + 1200, false}, {16, true}, {2 * 16384 + 48, true}, {3072, true}};
    const int n = (int)COUNTOF(r);
    KernelSource ks;
    codegen_zero_kernel(r, n, &ks);
    char src[320], cmd[1600];
    snprintf(src, sizeof src, "%s/zero.cpp", tmp);
    FILE *o = fopen(src, "w");
    ASSERT(o, "%s", src);
    fprintf(o, "#include \"cuda_emu.h\"\n#include <cstdio>\n#include <vector>\n%s\n%s\n", codegen_preamble(), ks.body);
    fprintf(o, "int main() {\n    const long long bytes[] = {");
    for (int k = 0; k < n; k++) fprintf(o, "%lld, ", (long long)r[k].bytes);
    fprintf(o, "};\n    const int n = %d, guard = 64;   // floats before, between and after the ranges\n"
               "    long long at[%d], total = guard;\n"
               "    for (int k = 0; k < n; k++) { at[k] = total; total += bytes[k] / 4 + guard; }\n"
               "    std::vector<float> v(total, 7.0f);\n"
               "    dim3 grid, block;\n    grid.x = %u; block.x = %u;\n"
               "    emu_launch(grid, block, [&] { %s(", n, n, ks.grid, ks.block, ks.name);
    for (int k = 0; k < n; k++) fprintf(o, "%sv.data() + at[%d]", k ? ", " : "", k);
    fprintf(o, "); });\n"
               "    long long zeros = 0, guards = 0, want = 0;\n"
               "    for (int k = 0; k < n; k++) want += bytes[k] / 4;\n"
               "    for (long long i = 0; i < total; i++) {\n"
               "        bool inside = false;\n"
               "        for (int k = 0; k < n; k++) inside |= i >= at[k] && i < at[k] + bytes[k] / 4;\n"
               "        if (inside) zeros += v[i] == 0.0f; else guards += v[i] == 7.0f;\n"
               "    }\n"
               "    printf(\"  %%lld of %%lld range elements zeroed, %%lld of %%lld guards kept\\n\", zeros, want, guards,\n"
               "           total - want);\n"
               "    return zeros == want && guards == total - want ? 0 : 1;\n}\n");
    fclose(o);
    printf("zeroing kernel %s (%d ranges, %u blocks)\n", ks.name, n, ks.grid);
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "cd %s && %s -std=c++17 -O1 -w -I%s zero.cpp %s/cuda_emu.cpp -o zero -lpthread && ./zero", tmp,
             cxx, emu_dir, emu_dir);
    CHECK(system(cmd) == 0, "%s: a range element not zeroed or a guard overwritten", ks.name);
    kernel_source_free(&ks);
}

/* A scatter-add along rows (the gradient of a gather with repeats): atomics into the zeroed output. */
static void scatter_rows(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(2, 9, 16));
    const int32_t idx[9] = {0, 3, 3, 1, 0, 4, 4, 4, 2};
    check_case("scatter-add of rows with repeats", g, g_scatter_add(g, g_unary(g, OP_TANH, x, LOC_NONE), 1, idx, 5, LOC_NONE),
               NULL, 0);
}

/* Sums over an outer axis (column mode): f32 over 4096 rows of 512 columns (split over blocks, atomics), and over
 * the tokens of [B, L, C] per batch (32 rows per block, 8 threads per row). */
static void column_sums(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", shape_of(2, (int64_t)4096, (int64_t)512));
    check_case("column sum, f32, 4096 rows of 512", g, g_reduce(g, OP_SUM, x, 0, LOC_NONE), NULL, 0);
    g = graph_new();
    x = in(g, "x", s3(3, 50, 96));
    check_case("sum over tokens per batch", g, g_reduce(g, OP_SUM, g_unary(g, OP_TANH, x, LOC_NONE), 1, LOC_NONE), NULL, 0);
}

/* LayerNorm's parameter gradients: sum(dy) and sum(dy * xhat) over the tokens, two column sums that read dy (bf16,
 * as a GEMM's output) and that pass_merge makes one kernel accumulating both in one loop (atomics over the blocks
 * the 4096 rows are split into). */
static void merged_column_sums(void) {
    Graph *g = graph_new();
    Node *dy = in(g, "dy", s3(8, 512, 96)), *x = in(g, "x", s3(8, 512, 96));
    const Shape cols = shape_of(2, (int64_t)4096, (int64_t)96);
    Node *ys[2] = {g_reduce(g, OP_SUM, g_reshape(g, dy, cols, LOC_NONE), 0, LOC_NONE),
                   g_reduce(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, dy, g_unary(g, OP_TANH, x, LOC_NONE)), cols, LOC_NONE), 0,
                            LOC_NONE)};
    check_outputs("two column sums of dy merged into one kernel", g, ys, 2, &dy, 1, false);
}

/* Column sums computed by the kernel that produces what they sum (pass_merge_column_sums): SwiGLU's backward, an
 * elementwise kernel over [B, L, C] that also sums its result over the B L tokens (fc1's bias gradient), and
 * LayerNorm's backward, a warp-per-row kernel that also sums dy and dy * x over the rows (the weight and bias
 * gradients); C of 96 (a lane's columns one by one) and 256 (4 at a time). Every output of one kernel. */
static void column_sums_in_producer(void) {
    Graph *g;
    Node *dy;
    for (int mis = 0; mis < 2; mis++) {   /* then the same with inputs off alignment: element by element */
        g = graph_new();
        dy = in(g, "dy", s3(4, 33, 512));
        Node *y = bin(g, OP_MUL, dy, g_unary(g, OP_SILU, in(g, "a", s3(4, 33, 512)), LOC_NONE));
        Node *ys[2] = {y, g_reduce(g, OP_SUM, g_reshape(g, y, shape_of(2, (int64_t)132, (int64_t)512), LOC_NONE), 0,
                                   LOC_NONE)};
        misalign_inputs = mis;
        check_outputs(mis ? "... inputs not 16-byte aligned" : "elementwise kernel with its column sum", g, ys, 2,
                      mis ? NULL : &dy, mis ? 0 : 1, false);
    }
    misalign_inputs = false;
    for (int64_t C = 96; C <= 256; C += 160) {
        g = graph_new();
        dy = in(g, "dy", s3(4, 40, C));
        Node *x = in(g, "x", s3(4, 40, C));
        const Shape cols = shape_of(2, (int64_t)160, C);
        /* with C = 96 the sums are built first, so their kernel comes first and moves down into the row kernel */
        Node *zs[3];
        if (C == 96) {
            zs[1] = g_reduce(g, OP_SUM, g_reshape(g, dy, cols, LOC_NONE), 0, LOC_NONE);
            zs[2] = g_reduce(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, dy, x), cols, LOC_NONE), 0, LOC_NONE);
        }
        Node *xc = bin(g, OP_SUB, x, bin(g, OP_MUL, g_reduce(g, OP_SUM, x, 2, LOC_NONE), g_scalar(g, 1.0 / (double)C)));
        zs[0] = bin(g, OP_MUL, dy, xc);
        if (C != 96) {   /* the second sum reads the row's mean: added in the last pass, the first in the first */
            zs[1] = g_reduce(g, OP_SUM, g_reshape(g, dy, cols, LOC_NONE), 0, LOC_NONE);
            zs[2] = g_reduce(g, OP_SUM, g_reshape(g, bin(g, OP_MUL, dy, bin(g, OP_MUL, xc, xc)), cols, LOC_NONE), 0, LOC_NONE);
        }
        char what[96];
        snprintf(what, sizeof what, "row kernel (rows of %lld) with two column sums%s", (long long)C,
                 C == 96 ? " (moved down)" : "");
        check_outputs(what, g, zs, 3, &dy, 1, false);
    }
    /* four sums of rows of 512: 4 warps a block (8 warps' partial sums would not fit 48 KiB of shared memory) */
    g = graph_new();
    dy = in(g, "dy", s3(2, 64, 512));
    Node *x = in(g, "x", s3(2, 64, 512));
    const Shape cols = shape_of(2, (int64_t)128, (int64_t)512);
    Node *xc = bin(g, OP_SUB, x, bin(g, OP_MUL, g_reduce(g, OP_SUM, x, 2, LOC_NONE), g_scalar(g, 1.0 / 512)));
    Node *four[5] = {bin(g, OP_MUL, dy, xc)};
    Node *terms[4] = {dy, x, bin(g, OP_MUL, dy, x), bin(g, OP_MUL, dy, dy)};
    for (int k = 0; k < 4; k++) four[k + 1] = g_reduce(g, OP_SUM, g_reshape(g, terms[k], cols, LOC_NONE), 0, LOC_NONE);
    check_outputs("row kernel (rows of 512) with four column sums", g, four, 5, &dy, 1, false);
}

/* Kernels that also write a bf16 copy of their result for a GEMM (4-wide bf16 stores): an elementwise SiLU times a
 * per-channel weight, and a LayerNorm's output. */
static void bf16_copies(void) {
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(4, 10, 256)), *w = in(g, "w", shape_of(1, (int64_t)256));
    check_kernel("silu(x) w with a bf16 copy", g, bin(g, OP_MUL, g_unary(g, OP_SILU, x, LOC_NONE), w), NULL, 0, true);
    g = graph_new();
    x = in(g, "x", s3(3, 7, 768));
    Node *xc = bin(g, OP_SUB, x, bin(g, OP_MUL, g_reduce(g, OP_SUM, x, 2, LOC_NONE), g_scalar(g, 1.0 / 768)));
    Node *var = bin(g, OP_MUL, g_reduce(g, OP_SUM, bin(g, OP_MUL, xc, xc), 2, LOC_NONE), g_scalar(g, 1.0 / 768));
    Node *y = bin(g, OP_MUL, xc, g_unary(g, OP_RSQRT, bin(g, OP_ADD, var, g_scalar(g, 1e-5)), LOC_NONE));
    check_kernel("layernorm over 768 with a bf16 copy", g, y, NULL, 0, true);
}

/* The same kernels batched (codegen_group_batched, the step's optimizer tail): 3 instances in one launch, each on its own
 * buffers, all equal to the cpu backend's result. */
static void batched_kernels(void) {
    instances = 3;
    Graph *g = graph_new();
    Node *x = in(g, "x", s3(4, 10, 256)), *w = in(g, "w", shape_of(1, (int64_t)256));
    check_kernel("batched x3: silu(x) w with a bf16 copy", g, bin(g, OP_MUL, g_unary(g, OP_SILU, x, LOC_NONE), w), NULL, 0,
                 true);
    instances = 4;
    layernorm(768, false);
    instances = 1;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: test_emu_generated CXX EMU_DIR\n"); return 2; }
    cxx = argv[1];
    if (!(emu_dir = emu_dir_absolute(argv[2]))) return 2;
    snprintf(tmp, sizeof tmp, "%s/vmc-emu-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    layernorm(768, false);
    layernorm(768, true);
    layernorm(80, false);
    gather_pad(4, false);
    gather_pad(4, true);
    gather_pad(2, false);
    column_sum_of_slice();
    softmax_long_rows();
    split_row_sum();
    drop_mask();
    erf_kernel();
    erf_accuracy();
    scatter_rows();
    bf16_copies();
    column_sums();
    merged_column_sums();
    column_sums_in_producer();
    batched_kernels();
    zero_kernel();
    recomputed_softmax(false);
    recomputed_softmax(true);
    return emu_test_end(tmp, failures);
}
