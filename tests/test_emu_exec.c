/* test_emu_exec.c CXX EMU_DIR [PART] — [cpu] whole steps of the cuda backend's compiled program, run on the CPU by the
 * emulator (tests/emu/emu_exec.h), against the cpu backend: the tiny models at batch 2, the loss and every
 * parameter gradient of one step (fp32 and bf16 GEMM operands, with the off-by-default program variants, and with
 * Vim blocks, a random cluster order and the raw target), then fp32 training steps whose losses must agree to 1e-4;
 * then ARM-B's fine-tuning and pretraining at their own shapes, depth 1 and batch 1.
 * What test_cuda_exec checks on a GPU (tests/backend_pair.c, shared), short of cuBLASLt, streams and the captured
 * graph: every generated and template kernel in place, with the memory plan, arguments, memsets and launch order of
 * the real step. */
#include "backend_pair.h"
#include "emu_test.h"
#include "emu_exec.h"
#include "program.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cxx, *emu_dir;
static bool bf16;             /* for the executors made next: bf16 GEMM operands, */
static bool scan_recompute;   /* the scan backward's pass 1 instead of the forward's saved chunk states, */
static bool attn_fast;        /* and the decoder's attention on attention.cuh's tensor-core path (bf16 pretraining) */
static int swiglu_launches;   /* SwiGLU gates computed with their products by one launch (program_swiglu.c) */
static int pair_launches;     /* sums of two products as one launch (program_pair.c) */
static bool forward_only;     /* a forward step alone (no scan backward to save states for) */
static int epi_scans;         /* scan forwards computing an elementwise group as their epilogue (scan_epi.c; -1: any) */

static int epilogue_scans(const Program *p) {
    int n = 0;
    for (int k = 0; k < p->nlaunches; k++)
        n += p->launches[k].kind == LK_KERNEL && strstr(p->modules[p->launches[k].module].src, "#define SCAN_EPI 1\n");
    return n;
}

/* The emulated backend, checked to run the program variant asked for. */
static Exec *emu(const Graph *g, Node *const *keep, int nkeep) {
    char err[1200];
    const EmuExecOptions o = {cxx, emu_dir, bf16, scan_recompute};
    Exec *e = emu_exec_new(g, keep, nkeep, &o, err, sizeof err);
    if (!e) { fprintf(stderr, "%s\n", err); exit(1); }
    const Fusion *f = emu_exec_program(e)->f;
    int paired = 0;   /* (paired: scans whose backward reads the forward's saved chunk states) */
    for (int k = 0; k < g->nnodes; k++) paired += g->nodes[k]->op == OP_SCAN && f->scan_pair[k];
    const Program *p = emu_exec_program(e);
    int fast = 0;   /* attention launches (forward and backward) on the tensor-core path */
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        fast += l->kind == LK_KERNEL && !strncmp(l->name, "vmc_attn", 8) &&
                strstr(p->modules[l->module].src, "#define ATTN_FAST 1\n");
    }
    if (attn_fast && fast < 2) { printf("  FAIL: %d attention launches on the tensor-core path\n", fast); bp_failures++; }
    if (!forward_only && scan_recompute == (paired > 0)) { printf("  FAIL: %d scans with saved states\n", paired); bp_failures++; }
    int swiglu = 0, pairs = 0;   /* SwiGLU's products and gate as one launch (program_swiglu.c), pairs */
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        swiglu += l->kind == LK_GEMM && l->gemm.swiglu;
        pairs += l->kind == LK_GEMM && l->gemm.pair;
    }
    if (swiglu != swiglu_launches) { printf("  FAIL: %d SwiGLU launches, not %d\n", swiglu, swiglu_launches); bp_failures++; }
    if (pairs != pair_launches) { printf("  FAIL: %d pairs of products, not %d\n", pairs, pair_launches); bp_failures++; }
    const int epi = epilogue_scans(p);
    if (epi_scans >= 0 && epi != epi_scans) { printf("  FAIL: %d scans with an epilogue, not %d\n", epi, epi_scans); bp_failures++; }
    return e;
}

/* Loss and every parameter gradient of one step, with the largest error. */
static void grads(DslModule *m, const char *model, double tol) {
    const int before = bp_failures;
    bp_worst = 0;
    bp_model_grads(m, model, tol, emu);
    printf("  the largest error %.3g of the largest value (tolerance %.0e)%s\n", bp_worst, tol,
           bp_failures == before ? "" : ": FAILED");
}

static void *host_alloc(size_t bytes) { return xmalloc(bytes); }

/* test_emu_exec CXX EMU_DIR FILE MODEL [NAME=VALUE...]: one model's gradients, fp32 then bf16 (a check by hand:
 * ARM-B's shapes take minutes even at batch 1 and depth 1). */
static int one_model(int argc, char **argv) {
    DslSet *sets = xcalloc((size_t)argc, sizeof(DslSet));
    int n = 0;
    for (int k = 5; k < argc; k++) {
        char *eq = strchr(argv[k], '=');
        if (!eq) { fprintf(stderr, "test_emu_exec: %s is not NAME=VALUE\n", argv[k]); return 2; }
        *eq = 0;
        sets[n++] = (DslSet){argv[k], eq + 1};
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions o = {.sets = sets, .nsets = n};
    DslModule *m = dsl_load(argv[3], &o, &d);
    if (!m) return 1;
    for (int b = 0; b < 2; b++) {
        bf16 = b == 1;
        printf("%s, %s\n", argv[4], bf16 ? "bf16 GEMM operands" : "fp32");
        grads(m, argv[4], bf16 ? 1e-1 : 1e-5);
    }
    dsl_free(m);
    free(sets);
    printf("test_emu_exec: %s\n", bp_failures ? "FAILED" : "ok");
    return bp_failures ? 1 : 0;
}

/* A model file of models/ with the options given; exits when it does not load */
static DslModule *load(const char *file, const DslSet *sets, int nsets) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT, file);
    Diag d;
    diag_init(&d, stderr);
    DslOptions o = {.sets = sets, .nsets = nsets};
    DslModule *m = dsl_load(path, &o, &d);
    if (!m) { fprintf(stderr, "cannot load %s\n", path); exit(1); }
    return m;
}

/* The tiny models' loss and every gradient, fp32 and bf16 GEMM operands, the default program. */
static void part_tiny(void) {
    DslModule *m = load("tiny.vmc", (const DslSet[]){{"batch", "2"}}, 1);
    printf("tiny_pretrain, fp32: loss and every gradient\n");
    grads(m, "tiny_pretrain", 1e-5);   /* (the same arithmetic but for summation orders) */
    printf("tiny_ft, fp32: loss and every gradient\n");
    grads(m, "tiny_ft", 1e-5);
    bf16 = attn_fast = true;
    swiglu_launches = 4;   /* SwiGLU's gate with its products in one launch, the products written for the backward */
    printf("tiny_pretrain, bf16 GEMM operands (the decoder's attention on the tensor-core path, 60 query rows)\n");
    grads(m, "tiny_pretrain", 1e-1);
    attn_fast = false;
    printf("tiny_ft, bf16 GEMM operands (4 directions: conv1d forward and backward as one launch each, scan copies in "
           "bf16, memsets merged)\n");
    grads(m, "tiny_ft", 1e-1);
    bf16 = false;
    swiglu_launches = 0;
    dsl_free(m);
}

/* bp_knob_forward's check for VMC_SCAN_EPI: tiny_ft's 4 layers each merge their directions in the last scan's launch
 * (VMC_SCAN_EPI=1), or none do */
static void check_epi(Exec *x, bool on) {
    const int n = epilogue_scans(emu_exec_program(x));
    if (n != (on ? 4 : 0)) { printf("  FAIL: %d scans with an epilogue%s\n", n, on ? ", not 4" : ""); bp_failures++; }
}

/* The program's other variants on tiny_ft (bf16), then fp32 training steps against the cpu backend's losses. */
static void part_variants(void) {
    DslModule *m = load("tiny.vmc", (const DslSet[]){{"batch", "2"}}, 1);
    bf16 = true;
    swiglu_launches = 4;
    setenv("VMC_CONV_MULTI_BWD", "0", 1);
    setenv("VMC_ZERO_MERGE", "0", 1);
    printf("tiny_ft, bf16, VMC_CONV_MULTI_BWD=0 VMC_ZERO_MERGE=0\n");
    grads(m, "tiny_ft", 1e-1);
    unsetenv("VMC_CONV_MULTI_BWD");
    unsetenv("VMC_ZERO_MERGE");
    scan_recompute = true;
    printf("tiny_ft, bf16, --scan-recompute\n");
    grads(m, "tiny_ft", 1e-1);
    scan_recompute = false;
    /* SwiGLU's gate with its two products in one launch in a forward step (they are not written); with
     * VMC_SWIGLU_GEMM=1 training computes them by their own GEMMs for the backward, and the gate apart */
    printf("tiny_ft, bf16, forward alone: SwiGLU's products and gate as one launch\n");
    forward_only = true;
    bp_forward(m, "tiny_ft", 1e-2, emu);
    printf("tiny_ft, bf16, forward alone, VMC_SCAN_EPI=1: each layer's direction merge computed by its last scan\n");
    epi_scans = -1;
    bp_knob_forward(m, "tiny_ft", "logits", "VMC_SCAN_EPI", "1", 1e-6, emu, check_epi);
    bp_knob_forward(m, "tiny_ft", "logits", "VMC_SCAN_EPI", "2", 1e-6, emu, check_epi);   /* (+ the L2 prefetches) */
    setenv("VMC_SCAN_EPI", "1", 1);   /* the same against the cpu backend */
    epi_scans = 4;
    bp_forward(m, "tiny_ft", 1e-2, emu);
    forward_only = false;
    epi_scans = 0;   /* training: the backward reads the directions' outputs, so no epilogue */
    printf("tiny_ft, bf16, VMC_SCAN_EPI=1 in training (none)\n");
    grads(m, "tiny_ft", 1e-1);
    unsetenv("VMC_SCAN_EPI");
    forward_only = false;
    setenv("VMC_SWIGLU_GEMM", "1", 1);
    swiglu_launches = 0;
    printf("tiny_ft, bf16, VMC_SWIGLU_GEMM=1 (SwiGLU's products by their GEMMs in training)\n");
    grads(m, "tiny_ft", 1e-1);
    unsetenv("VMC_SWIGLU_GEMM");
    bf16 = false;
    bp_training(m, "tiny_pretrain", 3, emu, (BpHost){host_alloc, free}, NULL);
    setenv("VMC_HOIST_TAIL", "0", 1);   /* the gradient-norm sums batched after the last GEMM */
    bp_training(m, "tiny_pretrain", 3, emu, (BpHost){host_alloc, free}, NULL);
    unsetenv("VMC_HOIST_TAIL");
    dsl_free(m);
}

/* SwiGLU's input gradient dy1 W1 + dy2 W2 as one launch (program_pair.c; the default where the hidden width is whole
 * 64-deep slices, C = 48: 128; tiny's 170 is not), the first product's operands kept alive until the second's place;
 * VMC_GEMM_PAIRS=0: none */
static void part_pairs(void) {
    DslModule *m = load("tiny.vmc", (const DslSet[]){{"batch", "2"}, {"C", "48"}}, 2);
    bf16 = true;
    pair_launches = swiglu_launches = 4;
    printf("tiny_ft, C = 48, bf16 (SwiGLU's input gradient as one launch)\n");
    grads(m, "tiny_ft", 1e-1);
    setenv("VMC_GEMM_PAIRS", "0", 1);
    pair_launches = 0;
    printf("tiny_ft, C = 48, bf16, VMC_GEMM_PAIRS=0\n");
    grads(m, "tiny_ft", 1e-1);
    unsetenv("VMC_GEMM_PAIRS");
    swiglu_launches = 0;
    bf16 = false;
    dsl_free(m);
}

/* the other encoder block and the ablations' options: Vim's bidirectional mixer (two scans of one conv input,
 * ungated, merged), clusters in a random order each step, the raw-pixel target */
static void part_vim(void) {
    DslModule *m = load("tiny.vmc", (const DslSet[]){{"batch", "2"}, {"block", "vim"}, {"order", "random"},
                                                     {"target", "raw"}}, 4);
    printf("tiny_pretrain with Vim blocks, random cluster order, raw target, fp32\n");
    grads(m, "tiny_pretrain", 1e-5);
    bf16 = attn_fast = true;
    printf("the same, bf16 GEMM operands\n");
    grads(m, "tiny_pretrain", 1e-1);
    bf16 = attn_fast = false;
    dsl_free(m);
}

/* ARM-B's own shapes (768 channels, 197 and 128 tokens, the decoder's 8 heads, 1,000 classes) at depth 1 (not
 * registered under the sanitizers: the cpu oracle there takes many minutes more) */
static void part_armb(void) {
    DslModule *m = load("arm_b.vmc", (const DslSet[]){{"batch", "1"}, {"depth", "1"}}, 2);
    printf("ARM-B fine-tuning at depth 1, batch 1, bf16 GEMM operands\n");
    bf16 = true;
    swiglu_launches = pair_launches = 1;   /* (the one block's SwiGLU with its products, at 768 -> 2048 channels,
                                             * and its input gradient's pair) */
    grads(m, "arm_b_ft224", 1e-1);
    printf("ARM-B pretraining at depth 1, batch 1, bf16 GEMM operands\n");
    attn_fast = true;
    grads(m, "arm_b_pretrain", 1e-1);
    dsl_free(m);
}

static const EmuPart parts[] = {
    {"tiny", part_tiny}, {"variants", part_variants}, {"pairs", part_pairs}, {"vim", part_vim}, {"armb", part_armb},
};
enum { NPARTS = sizeof parts / sizeof parts[0] };

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_emu_exec CXX EMU_DIR [PART | FILE MODEL [NAME=VALUE...]]\n");
        return 2;
    }
    cxx = argv[1];
    if (!(emu_dir = emu_dir_absolute(argv[2]))) return 2;
    bp_quiet = true;
    if (argc >= 5) return one_model(argc, argv);
    bool want[NPARTS];
    if (!emu_parts_wanted("test_emu_exec", argc == 4 ? argv[3] : "all", parts, NPARTS, want)) return 2;
    for (int i = 0; i < NPARTS; i++)
        if (want[i]) parts[i].run();
    printf("test_emu_exec: %s\n", bp_failures ? "FAILED" : "ok");
    return bp_failures ? 1 : 0;
}
