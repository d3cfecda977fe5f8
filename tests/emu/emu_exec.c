/* emu_exec.c — the cuda backend's Program run on the CPU (emu_exec.h). */
#include "emu_exec.h"
#include "program_knobs.h"
#include "program.h"
#include <math.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A block's threads as fibers (cuda_emu.cpp), but not under AddressSanitizer: it intercepts swapcontext and clears
 * the shadow of a fiber's whole stack at every switch, which made the emulation crawl. */
#if defined(__SANITIZE_ADDRESS__)
#define EMU_THREADS ""
#else
#define EMU_THREADS "-DEMU_FIBERS"
#endif

typedef void (*EmuLaunch)(const unsigned *grid, const unsigned *block, void **args);

typedef struct Emu {
    Exec base;
    Program *p;
    char dir[64];
    void *lib, **mods;
    EmuLaunch *fn;                      /* by launch */
    unsigned char *arena[AR_COUNT_];
    unsigned long long rng[2];          /* the step's {seed, step}, as the device copy kernels read */
    bool params_dirty;                  /* `once` launches (parameters' bf16 copies) due before the next step */
} Emu;

static void *at(const Emu *e, BufRef b) { return b.arena == AR_COUNT_ ? NULL : e->arena[b.arena] + b.offset; }

/* ---------------------------------------------------------------- building */
static bool sh(const char *cmd, char *err, int errlen) {
    if (system(cmd) == 0) return true;
    snprintf(err, (size_t)errlen, "emu_exec: failed: %.900s", cmd);
    return false;
}

/* Module k's source with a launcher emu_launch_NAME for each of its kernels that a launch names. */
static bool write_module(const Emu *e, int k, char *err, int errlen) {
    char path[128];
    snprintf(path, sizeof path, "%s/m%d.cpp", e->dir, k);
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, (size_t)errlen, "emu_exec: cannot write %s", path); return false; }
    fprintf(f, "#include \"cuda_emu.h\"\n#include \"emu_call.h\"\n%s\n", e->p->modules[k].src);
    const Program *p = e->p;
    for (int i = 0; i < p->nlaunches; i++) {
        const Launch *l = &p->launches[i];
        if (l->kind != LK_KERNEL || l->module != k) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = p->launches[j].kind == LK_KERNEL && p->launches[j].module == k && !strcmp(p->launches[j].name, l->name);
        if (seen) continue;
        fprintf(f, "extern \"C\" __attribute__((visibility(\"default\"))) void emu_launch_%s(const unsigned *g, "
                   "const unsigned *b, void **args) {\n"
                   "    dim3 grid, block;\n    grid.x = g[0]; grid.y = g[1]; grid.z = g[2];\n"
                   "    block.x = b[0]; block.y = b[1]; block.z = b[2];\n"
                   "    emu_launch(grid, block, [&] { emu_call(%s, args); });\n}\n", l->name, l->name);
    }
    return fclose(f) == 0;
}

/* Compiles the emulator runtime and every module (make, as many at once as there are cores), then loads them. */
static bool build(Emu *e, const char *cxx, const char *emu_dir, char *err, int errlen) {
    const Program *p = e->p;
    for (int k = 0; k < p->nmodules; k++) if (!write_module(e, k, err, errlen)) return false;
    char path[128], cmd[1024];
    snprintf(path, sizeof path, "%s/Makefile", e->dir);
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, (size_t)errlen, "emu_exec: cannot write %s", path); return false; }
    fprintf(f, "CXXFLAGS = -std=c++17 -O1 -w -fPIC -I%s\nall: libemu.so", emu_dir);
    for (int k = 0; k < p->nmodules; k++) fprintf(f, " m%d.so", k);
    fprintf(f, "\nlibemu.so: %s/cuda_emu.cpp\n\t%s $(CXXFLAGS) %s -shared $< -o $@ -lpthread\n", emu_dir, cxx, EMU_THREADS);
    fprintf(f, "m%%.so: m%%.cpp\n\t%s $(CXXFLAGS) -fvisibility=hidden -shared $< -o $@\n", cxx);
    fclose(f);
    snprintf(cmd, sizeof cmd, "make -s -C %s -j$(nproc) >&2", e->dir);
    if (!sh(cmd, err, errlen)) return false;
    snprintf(path, sizeof path, "%s/libemu.so", e->dir);
    if (!(e->lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) { snprintf(err, (size_t)errlen, "emu_exec: %s", dlerror()); return false; }
    e->mods = xcalloc((size_t)p->nmodules + 1, sizeof(void *));
    for (int k = 0; k < p->nmodules; k++) {
        snprintf(path, sizeof path, "%s/m%d.so", e->dir, k);
        if (!(e->mods[k] = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
            snprintf(err, (size_t)errlen, "emu_exec: %s", dlerror());
            return false;
        }
    }
    e->fn = xcalloc((size_t)p->nlaunches + 1, sizeof(EmuLaunch));
    for (int i = 0; i < p->nlaunches; i++) {
        const Launch *l = &p->launches[i];
        if (l->kind != LK_KERNEL) continue;
        char sym[96];
        snprintf(sym, sizeof sym, "emu_launch_%s", l->name);
        if (!(e->fn[i] = (EmuLaunch)dlsym(e->mods[l->module], sym))) {
            snprintf(err, (size_t)errlen, "emu_exec: %s not in module %d", sym, l->module);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- running */
static float load(const void *base, int64_t i, bool bf16) {
    return bf16 ? bf16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* Row-major C[b] = alpha op(A[b]) op(B[b]) (+ acc[b]), C's rows N apart (GemmDesc; cuda_gemm.c's layouts). */
static void gemm_into(const Emu *e, const GemmDesc *d, void *C) {
    const void *A = at(e, d->a), *B = at(e, d->b), *acc = d->has_acc ? at(e, d->acc) : NULL;
    for (int64_t b = 0; b < d->batch; b++)
        for (int64_t i = 0; i < d->M; i++)
            for (int64_t j = 0; j < d->N; j++) {
                double s = 0;
                for (int64_t k = 0; k < d->K; k++) {
                    const int64_t ia = b * d->sa + (d->ta ? k * d->lda + i : i * d->lda + k);
                    const int64_t ib = b * d->sb + (d->tb ? j * d->ldb + k : k * d->ldb + j);
                    s += (double)load(A, ia, d->bf16) * load(B, ib, d->bf16);
                }
                const int64_t ic = b * d->sc + i * d->N + j;
                float v = (float)(d->alpha * s);
                if (acc) v += load(acc, ic, d->c_bf16);
                if (d->c_bf16) ((uint16_t *)C)[ic] = f32_to_bf16(v);
                else ((float *)C)[ic] = v;
            }
}
static void gemm(const Emu *e, const GemmDesc *d) { gemm_into(e, d, at(e, d->c)); }

/* SwiGLU's products and gate in one launch (GemmDesc.swiglu): each product as its bf16 GEMM stores it (into its
 * buffer where `products`, else into memory of its own, as the GPU's kernel does not write them), then
 * h = silu(p1 + bias1) * (p2 + bias2) as bf16, as the gate's generated kernel computes it. */
static void swiglu(const Emu *e, const GemmDesc *d) {
    GemmDesc d2 = *d;
    d2.b = d->b2;
    uint16_t *scratch = d->products ? NULL : xmalloc((size_t)(4 * d->M * d->N));
    uint16_t *p1 = d->products ? at(e, d->c) : scratch, *p2 = d->products ? at(e, d->c2) : scratch + d->M * d->N;
    gemm_into(e, d, p1);
    gemm_into(e, &d2, p2);
    const float *b1 = at(e, d->bias1), *b2 = at(e, d->bias2);
    uint16_t *h = at(e, d->h);
    for (int64_t i = 0; i < d->M; i++)
        for (int64_t j = 0; j < d->N; j++) {
            const float x = bf16_to_f32(p1[i * d->N + j]) + b1[j], y = bf16_to_f32(p2[i * d->N + j]) + b2[j];
            h[i * d->N + j] = f32_to_bf16(x / (1.f + expf(-x)) * y);
        }
    free(scratch);
}

/* A sum of two products in one launch (GemmDesc.pair): C = A B + A2 B2 summed in one, rounded once. */
static void pair(const Emu *e, const GemmDesc *d) {
    GemmDesc d1 = *d, d2 = *d;   /* each product in f32, then their sum rounded */
    d1.c_bf16 = d2.c_bf16 = false;
    d2.a = d->a2;
    d2.b = d->b2;
    float *p1 = xmalloc(sizeof(float) * (size_t)(d->M * d->N)), *p2 = xmalloc(sizeof(float) * (size_t)(d->M * d->N));
    gemm_into(e, &d1, p1);
    gemm_into(e, &d2, p2);
    void *C = at(e, d->c);
    for (int64_t i = 0; i < d->M * d->N; i++) {
        if (d->c_bf16) ((uint16_t *)C)[i] = f32_to_bf16(p1[i] + p2[i]);
        else ((float *)C)[i] = p1[i] + p2[i];
    }
    free(p1);
    free(p2);
}

static void kernel(const Emu *e, int i) {
    const Launch *l = &e->p->launches[i];
    const int n = l->nargs + (l->rng_args ? 1 : 0), inst = l->instances > 1 ? l->instances : 1;
    void **vals = xcalloc((size_t)(n * inst) + 1, sizeof(void *)), **args = xcalloc((size_t)n + 1, sizeof(void *));
    for (int q = 0; q < inst; q++) {
        for (int j = 0; j < l->nargs; j++) vals[q * n + j] = at(e, l->args[(size_t)q * l->nargs + j]);
        if (l->rng_args) vals[q * n + l->nargs] = (void *)e->rng;
    }
    if (inst > 1) args[0] = vals;   /* a batched launch takes them all as one struct (codegen_group_batched) */
    else for (int j = 0; j < n; j++) args[j] = &vals[j];
    e->fn[i](l->grid, l->block, args);
    free(vals);
    free(args);
}

static void launch(Emu *e, int i) {
    const Launch *l = &e->p->launches[i];
    if (launch_choice_part(l)) return;   /* (the one launch runs instead, as the GPU's tuning mostly chooses) */
    switch (l->kind) {
    case LK_KERNEL: kernel(e, i); return;
    case LK_GEMM:
        if (l->gemm.pair) pair(e, &l->gemm);
        else if (l->gemm.swiglu) swiglu(e, &l->gemm);
        else gemm(e, &l->gemm);
        return;
    case LK_MEMSET: memset(at(e, l->dst), 0, (size_t)l->bytes); return;
    case LK_COPY: memmove(at(e, l->dst), at(e, l->src), (size_t)l->bytes); return;
    }
}

static void emu_run(Exec *x, const StepInfo *s) {
    Emu *e = (Emu *)x;
    e->rng[0] = s->seed;
    e->rng[1] = s->step;
    for (int i = 0; i < e->p->nlaunches; i++)
        if (e->p->launches[i].once ? e->params_dirty : true) launch(e, i);
    e->params_dirty = false;
}

/* ---------------------------------------------------------------- host values (as cuda_exec.c: f32 storage) */
static void *storage(const Emu *e, const Node *n) {
    const Fusion *f = e->p->f;
    const Node *r = f->repl[n->id];
    ASSERT(f->mat[r->id] && f->live[r->id], "node %%%u (%s) has no buffer: pass it in keep", n->id, op_name(n->op));
    return e->arena[f->buf[r->id].arena] + f->buf[r->id].offset;
}

static void emu_write(Exec *x, const Node *n, const void *host, size_t bytes) {
    Emu *e = (Emu *)x;
    ASSERT(n->op == OP_PARAM || n->op == OP_INPUT || n->op == OP_STATE, "write to a computed node");
    const size_t numel = (size_t)shape_numel(n->shape);
    ASSERT(bytes == numel * (size_t)dtype_size(n->dtype), "write of %zu bytes to %s", bytes, n->name);
    float *dst = storage(e, n);
    if (n->op == OP_PARAM) e->params_dirty = true;
    if (n->dtype != DT_BF16) memcpy(dst, host, bytes);
    else for (size_t i = 0; i < numel; i++) dst[i] = bf16_to_f32(((const uint16_t *)host)[i]);
}

static void emu_read(Exec *x, const Node *n, void *host, size_t bytes) {
    const Emu *e = (const Emu *)x;
    const size_t numel = (size_t)shape_numel(n->shape);
    ASSERT(bytes == numel * (size_t)dtype_size(n->dtype), "read of %zu bytes from node %u", bytes, n->id);
    const float *src = storage(e, n);
    if (n->dtype != DT_BF16) memcpy(host, src, bytes);
    else for (size_t i = 0; i < numel; i++) ((uint16_t *)host)[i] = f32_to_bf16(src[i]);
}

/* Reads here are immediate: a ticket is only a formality. */
static int emu_read_start(Exec *x, const Node *n, void *host, size_t bytes) { emu_read(x, n, host, bytes); return 0; }
static void emu_read_finish(Exec *x, int ticket) { (void)x; (void)ticket; }
static void emu_write_release(Exec *x) { (void)x; }

static void emu_free(Exec *x) {
    Emu *e = (Emu *)x;
    for (int k = 0; e->mods && k < e->p->nmodules; k++) if (e->mods[k]) dlclose(e->mods[k]);
    if (e->lib) dlclose(e->lib);
    for (int k = 0; k < AR_COUNT_; k++) free(e->arena[k]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    if (system(cmd) != 0) fprintf(stderr, "emu_exec: could not remove %s\n", e->dir);
    free(e->mods);
    free(e->fn);
    program_free(e->p);
    free(e);
}

const Program *emu_exec_program(const Exec *x) { return ((const Emu *)x)->p; }

static const ExecVT EMU_VT = {"emu", emu_run, emu_write, emu_read, emu_read_start, emu_read_finish, emu_write,
                              emu_write_release, emu_free};

Exec *emu_exec_new(const Graph *g, Node *const *keep, int nkeep, const EmuExecOptions *o, char *err, int errlen) {
    ProgramOptions po = {.arch = 90, .bf16 = o->bf16, .scan_recompute = o->scan_recompute, .no_compile = true,
                         .no_own_gemm = true,
                         .reuse_delay = PROGRAM_REUSE_AT_ONCE};   /* (one launch after another: no side streams) */
    program_knobs_from_env(&po);
    Emu *e = xcalloc(1, sizeof *e);
    e->p = program_build(g, keep, nkeep, &po, err, errlen);
    if (!e->p) { free(e); return NULL; }
    e->base.vt = &EMU_VT;
    e->base.g = g;
    snprintf(e->dir, sizeof e->dir, "/tmp/vmc-emu-exec-XXXXXX");
    if (!mkdtemp(e->dir)) { snprintf(err, (size_t)errlen, "emu_exec: mkdtemp failed"); program_free(e->p); free(e); return NULL; }
    for (int k = 0; k < AR_COUNT_; k++)   /* zeroed: STATE starts at zero, as on the GPU */
        e->arena[k] = xcalloc((size_t)(e->p->arena_bytes[k] > 0 ? e->p->arena_bytes[k] : 256), 1);
    e->params_dirty = true;
    const Fusion *f = e->p->f;
    for (int k = 0; k < f->g->nnodes; k++) {   /* constant tables, as cuda_exec.c upload_tables */
        const Node *n = f->g->nodes[k];
        if (n->op != OP_TABLE || !f->live[k] || !f->mat[k]) continue;
        memcpy(e->arena[f->buf[k].arena] + f->buf[k].offset, n->fdata ? (const void *)n->fdata : (const void *)n->idata,
               (size_t)shape_numel(n->shape) * 4);
    }
    if (!build(e, o->cxx, o->emu_dir, err, errlen)) { emu_free(&e->base); return NULL; }
    return &e->base;
}
