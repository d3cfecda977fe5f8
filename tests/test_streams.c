/* test_streams.c — the multi-stream schedule of whole training and inference steps (codegen/streams.c), checked
 * by brute force without a GPU: every pair of launches whose memory conflicts (overlap, one writes) must be
 * ordered by the plan (same stream, or a chain of waits: vector clocks); every pointer a kernel is given must lie
 * in memory its launch declares; the optimizer's independent updates must spread over several streams; one
 * stream must be the program order with no waits. A training step batches its tail (program_tail.c pg_batch_tail): each
 * batched launch's instances write memory no other instance touches. */
#include "cuda_exec.h"
#include "streams.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

/* Is every pointer argument of launch l inside one of its declared accesses? */
static int args_total(const Launch *l) { return l->nargs * (l->instances > 1 ? l->instances : 1); }

/* Is r inside memory l declares? */
static bool declared(const Launch *l, BufRef r) {
    for (int k = 0; k < l->nacc; k++)
        if (l->acc[k].at.arena == r.arena && r.offset >= l->acc[k].at.offset && r.offset < l->acc[k].at.offset + l->acc[k].bytes)
            return true;
    return false;
}

static bool args_declared(const Launch *l) {
    for (int a = 0; a < args_total(l); a++)
        if (l->args[a].arena != AR_COUNT_ && !declared(l, l->args[a])) return false;
    if (l->kind == LK_GEMM && l->gemm.pair) {   /* A, B, A2, B2; C (writes_declared) */
        const GemmDesc *d = &l->gemm;
        const BufRef read[4] = {d->a, d->b, d->a2, d->b2};
        for (int k = 0; k < 4; k++) if (!declared(l, read[k])) return false;
        return l->nacc == 5;
    }
    if (l->kind == LK_GEMM && l->gemm.swiglu) {   /* A, B1, B2, the biases; H (and the products: writes_declared) */
        const GemmDesc *d = &l->gemm;
        const BufRef read[5] = {d->a, d->b, d->b2, d->bias1, d->bias2};
        for (int k = 0; k < 5; k++) if (!declared(l, read[k])) return false;
        return l->nacc == 6 + 2 * d->products;
    }
    if (l->kind == LK_GEMM) {   /* A, B, C, and the epilogue's summed buffer */
        const BufRef r = l->gemm.acc;
        bool in = !l->gemm.has_acc;
        for (int k = 0; k < l->nacc && !in; k++)
            in = l->acc[k].at.arena == r.arena && r.offset >= l->acc[k].at.offset && r.offset < l->acc[k].at.offset + l->acc[k].bytes;
        return in && l->nacc == 3 + l->gemm.has_acc;
    }
    return l->nacc > 0;
}

/* Is `at` inside a declared write of l? */
static bool declared_write(const Launch *l, BufRef at) {
    for (int k = 0; k < l->nacc; k++)
        if (l->acc[k].write && l->acc[k].at.arena == at.arena && at.offset >= l->acc[k].at.offset &&
            at.offset < l->acc[k].at.offset + l->acc[k].bytes)
            return true;
    return false;
}

/* Are the pointers launch l writes through declared as writes? Found independently of Launch.acc: a GEMM's C,
 * a memset's or copy's destination, a cast's or expansion's copy, a generated kernel's parameters after its
 * group's inputs, a template's parameters inside its output's buffer. */
static bool writes_declared(const Program *p, const Launch *l) {
    switch (l->kind) {
    case LK_GEMM:
        if (l->gemm.swiglu)
            return declared_write(l, l->gemm.h) &&
                   (!l->gemm.products || (declared_write(l, l->gemm.c) && declared_write(l, l->gemm.c2)));
        return declared_write(l, l->gemm.c);
    case LK_MEMSET: case LK_COPY: return declared_write(l, l->dst);
    case LK_KERNEL: break;
    }
    if (!strcmp(l->kclass, "memset")) {   /* merged memsets (program_zero.c): it writes through every pointer */
        for (int a = 0; a < l->nargs; a++) if (!declared_write(l, l->args[a])) return false;
        return l->nargs == l->nacc;
    }
    if (!strcmp(l->kclass, "gemm")) return declared_write(l, l->args[1]);   /* a GEMM operand's cast or expansion */
    const Fusion *f = p->f;
    const Group *gr = &f->groups[l->group];
    if (gr->kind != GK_OPAQUE) {
        for (int a = 0; a < args_total(l); a++)   /* (a value kept only as its bf16 copy has no f32 pointer) */
            if (a % l->nargs >= gr->nins && l->args[a].arena != AR_COUNT_ && !declared_write(l, l->args[a])) return false;
        return l->nargs > gr->nins;
    }
    const Node *er = gr->root->op == OP_SCAN ? f->scan_epi[gr->root->id] : NULL;
    if (er) {   /* a scan with an epilogue (scan_epi.c) writes that group's outputs, not its own */
        const Group *eg = &f->groups[f->group_of[er->id]];
        for (int k = 0; k < eg->nouts; k++) {
            const Node *o = eg->outs[k];
            if (!f->shadow_only[o->id] && !declared_write(l, (BufRef){f->buf[o->id].arena, f->buf[o->id].offset}))
                return false;
            if (f->shadow[o->id] && !declared_write(l, (BufRef){f->sbuf[o->id].arena, f->sbuf[o->id].offset}))
                return false;
        }
        return eg->nouts > 0;
    }
    const Buf *out = &f->buf[gr->root->id];
    int n = 0;
    for (int a = 0; a < l->nargs; a++) {
        const BufRef r = l->args[a];
        if (r.arena != out->arena || r.offset < out->offset || r.offset >= out->offset + out->bytes) continue;
        if (!declared_write(l, r)) return false;
        n++;
    }
    return n > 0;
}

/* done[k][s]: the highest launch index on stream s known finished when launch k starts (-1: none). */
static bool keep_tail;         /* ProgramOptions.no_hoist_tail: the gradient-norm sums batched at the step's end */
static bool scan_epi;          /* ProgramOptions.scan_epi: a direction merge computed by its last scan (inference) */

static void check_plan(const Program *p, const StreamPlan *sp, const char *what) {
    const int n = p->nlaunches, ns = sp->nstreams;
    int *done = malloc(sizeof(int) * (size_t)n * (size_t)ns), *prev = malloc(sizeof(int) * (size_t)ns);
    for (int s = 0; s < ns; s++) prev[s] = -1;
    int waits = 0, used = 0, opt_streams = 0;
    bool opt_on[16] = {0};
    for (int k = 0; k < n; k++) {
        int *d = &done[(size_t)k * (size_t)ns];
        if (p->launches[k].once) { for (int t = 0; t < ns; t++) d[t] = -1; continue; }   /* not in the step */
        const int s = sp->stream[k], q = prev[s];
        for (int t = 0; t < ns; t++) d[t] = q >= 0 ? done[(size_t)q * (size_t)ns + (size_t)t] : -1;
        if (q >= 0 && d[s] < q) d[s] = q;
        for (int w = 0; w < sp->nwait[k]; w++) {
            const int j = sp->wait[k][w];
            CHECK(j < k && sp->stream[j] != s && sp->record[j], "%s: launch %d waits for %d", what, k, j);
            const int *dj = &done[(size_t)j * (size_t)ns];
            for (int t = 0; t < ns; t++) if (dj[t] > d[t]) d[t] = dj[t];
            if (j > d[sp->stream[j]]) d[sp->stream[j]] = j;
        }
        waits += sp->nwait[k];
        prev[s] = k;
        if (!strcmp(p->launches[k].kclass, "optimizer") && !opt_on[s]) { opt_on[s] = true; opt_streams++; }
    }
    for (int s = 0; s < ns; s++) {
        used += prev[s] >= 0;
        CHECK(prev[s] == sp->last[s], "%s: last launch of stream %d", what, s);
    }
    long conflicts = 0, unordered = 0;
    for (int k = 0; k < n; k++) {
        CHECK(args_declared(&p->launches[k]), "%s: launch %d (%s) has a pointer outside its declared memory", what, k,
              p->launches[k].name);
        CHECK(writes_declared(p, &p->launches[k]), "%s: launch %d (%s) writes memory it does not declare", what, k,
              p->launches[k].name);
        for (int j = 0; j < k; j++) {
            /* a `once` launch runs before the step: only checked below, that the step never writes its memory */
            if (p->launches[j].once || p->launches[k].once) continue;
            if (!launches_conflict(&p->launches[j], &p->launches[k])) continue;
            conflicts++;
            if (done[(size_t)k * (size_t)ns + (size_t)sp->stream[j]] < j) {
                if (unordered++ < 5)
                    fprintf(stderr, "%s: launches %d (%s) and %d (%s) conflict but are not ordered\n", what, j,
                            p->launches[j].name, k, p->launches[k].name);
            }
        }
    }
    /* A launch that runs once before the step casts a parameter to its kept bf16 copy. The step may rewrite the
     * parameter only in a launch that rewrites the copy too (AdamW writing both), and never one without the other. */
    int once = 0, stale = 0;
    for (int o = 0; o < n; o++) {
        const Launch *c = &p->launches[o];
        if (!c->once) continue;
        once++;
        CHECK(c->bf16_cast && c->nacc == 2 && !c->acc[0].write && c->acc[1].write, "%s: launch %d runs once but is not a cast", what, o);
        for (int k = 0; k < n; k++) {
            const Launch *l = &p->launches[k];
            if (l->once) continue;
            bool src = false, dst = false;
            for (int a = 0; a < l->nacc; a++) {
                const Access *x = &l->acc[a];
                if (!x->write) continue;
                src |= x->at.arena == c->acc[0].at.arena && x->at.offset < c->acc[0].at.offset + c->acc[0].bytes &&
                       c->acc[0].at.offset < x->at.offset + x->bytes;
                dst |= x->at.arena == c->acc[1].at.arena && x->at.offset <= c->acc[1].at.offset &&
                       x->at.offset + x->bytes >= c->acc[1].at.offset + c->acc[1].bytes;
            }
            stale += src != dst;
        }
    }
    CHECK(stale == 0, "%s: %d launches write a parameter without its kept copy, or the copy alone", what, stale);
    int batched = 0, shared = 0;   /* batched launches; instances writing what another instance touches */
    for (int k = 0; k < n; k++) {
        const Launch *l = &p->launches[k];
        if (l->instances < 2) continue;
        batched++;
        const int nin = p->f->groups[l->group].nins;
        for (int i = 0; i < l->instances; i++)
            for (int w = nin; w < l->nargs; w++) {
                const BufRef o = l->args[i * l->nargs + w];
                for (int j = 0; j < l->instances; j++)
                    for (int a = 0; j != i && a < l->nargs; a++) {
                        const BufRef r = l->args[j * l->nargs + a];
                        shared += o.arena != AR_COUNT_ && r.arena == o.arena && r.offset == o.offset;
                    }
            }
    }
    CHECK(shared == 0, "%s: %d outputs of batched instances touched by another instance", what, shared);
    /* The critical launches (streams.h): not all of them, and each one that depends on anything depends on a critical
     * one (the longest path runs through conflicting launches). */
    int ncrit = 0, orphans = 0;
    for (int k = 0; k < n; k++) {
        if (!sp->critical[k]) continue;
        ncrit++;
        bool deps = false, critical_dep = false;
        for (int j = 0; j < k && !critical_dep; j++) {
            if (p->launches[j].once || !launches_conflict(&p->launches[j], &p->launches[k])) continue;
            deps = true;
            critical_dep = sp->critical[j];
        }
        orphans += deps && !critical_dep;
    }
    if (ns > 1)
        CHECK(ncrit > 0 && ncrit < n && orphans == 0, "%s: %d critical launches of %d, %d without a critical dependency",
              what, ncrit, n, orphans);
    else CHECK(ncrit == 0, "%s: one stream has no critical launches", what);
    /* The critical path keeps to its streams (StreamPlan.heir): every heir is the next launch of its predecessor's
     * stream, and the heirs cover most of the critical launches. */
    int heirs = 0, kept = 0;
    for (int j = 0; j < n; j++) {
        const int k = sp->heir[j];
        if (k < 0) continue;
        heirs++;
        int next = k;
        for (int i = j + 1; i < k && next == k; i++) if (sp->stream[i] == sp->stream[j] && !p->launches[i].once) next = i;
        kept += sp->stream[k] == sp->stream[j] && next == k && sp->critical[j] && sp->critical[k];
    }
    if (ns > 1) {
        printf("%s: %d of %d heirs continue their predecessor's stream (%d critical launches)\n", what, kept, heirs, ncrit);
        /* (on 2 streams a launch sometimes has no stream to take but one a heir is due on; so on more with the
         * tail kept, whose many parallel critical launches outnumber the streams) */
        CHECK(kept >= (ns > 2 && !keep_tail ? 1.0 : 0.9) * heirs && heirs >= ncrit / 2, "%s: %d of %d heirs continue their "
              "predecessor's stream", what, kept, heirs);
    } else CHECK(heirs == 0, "%s: one stream has no heirs", what);
    /* A training step's memsets sit right after the last launch touching their memory (program_tail.c pg_hoist_memsets) */
    int memsets = 0, late = 0, at_start = 0;
    for (int k = 0; k < n; k++) {
        if (p->launches[k].kind != LK_MEMSET) continue;
        memsets++;
        at_start += k == 0 || p->launches[k - 1].once;
        if (p->params_constant) continue;
        int j = k - 1;   /* the launch before it, past other memsets moved to the same place */
        while (j >= 0 && p->launches[j].kind == LK_MEMSET && !launches_conflict(&p->launches[j], &p->launches[k])) j--;
        if (j >= 0 && !launches_conflict(&p->launches[j], &p->launches[k])) {
            bool any = false;   /* (no conflicting launch before it at all: it may lead the step) */
            for (int i = 0; i < j && !any; i++) any = launches_conflict(&p->launches[i], &p->launches[k]);
            late += any;
        }
    }
    CHECK(late == 0, "%s: %d of %d memsets not right after the last launch touching their memory", what, late, memsets);
    printf("%s: %d launches (%d once, %d batched, %d critical, %d memsets, %d of them first) on %d of %d streams, %d "
           "waits, %ld conflicting pairs, %ld unordered; optimizer on %d streams\n", what, n, once, batched, ncrit,
           memsets, at_start, used, ns, waits, conflicts, unordered, opt_streams);
    if (!p->params_constant) CHECK(batched > 0, "%s: a training step's tail is not batched", what);
    CHECK(unordered == 0, "%s: %ld conflicting launches unordered", what, unordered);
    if (ns == 1) CHECK(waits == 0 && used <= 1, "%s: one stream is the program order", what);
    else if (opt_streams) CHECK(opt_streams == ns, "%s: the optimizer's updates spread over all %d streams (%d)", what, ns, opt_streams);
    free(done);
    free(prev);
}

static bool multi_bwd;   /* programs built with the directions' conv1d backwards as one (conv_multi.c) */
static bool merge_zero;  /* ... and the memsets merged (program_zero.c) */
static bool exact_deps;  /* ... and exact_view_deps */
static bool swiglu_products;   /* ... and SwiGLU's one launch in training too (ProgramOptions.swiglu_gemm = 2) */
static bool gemm_pairs;        /* ... and its input gradient's two products as one (ProgramOptions.gemm_pairs) */
static int reuse_delay;        /* ProgramOptions.reuse_delay (0: the default) */

/* The step graph of a model in file (VMC_ROOT-relative) built into a program (no NVRTC); NULL after a CHECK. */
static Program *build(const char *file, const char *model, bool train, bool bf16, const DslSet *sets, int nsets,
                      bool merge, DslModule **m, StepGraph *sg) {
    Diag d;
    diag_init(&d, stderr);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", getenv("VMC_ROOT") ? getenv("VMC_ROOT") : VMC_ROOT, file);
    DslOptions o = {.sets = sets, .nsets = nsets};
    *m = dsl_load(path, &o, &d);
    CHECK(*m, "cannot load %s", path);
    sg->g = NULL;
    if (!*m) return NULL;
    if (!step_graph_build(*m, model, train, sg, &d)) { CHECK(0, "step graph of %s", model); return NULL; }
    ProgramOptions po = {.arch = 90, .bf16 = bf16, .no_compile = true, .no_conv_multi_bwd = !multi_bwd, .no_merge_memsets = !merge,
                         .exact_view_deps = exact_deps, .swiglu_gemm = swiglu_products ? 2 : 0,
                         .gemm_pairs = gemm_pairs, .reuse_delay = reuse_delay, .no_hoist_tail = keep_tail,
                         .scan_epi = scan_epi};
    char err[1024];
    Program *p = program_build(sg->g, NULL, 0, &po, err, sizeof err);
    CHECK(p, "program_build: %s", err);
    return p;
}

static void check_model(const char *file, const char *model, bool train, bool bf16, const DslSet *sets, int nsets) {
    DslModule *m;
    StepGraph sg;
    Program *p = build(file, model, train, bf16, sets, nsets, merge_zero, &m, &sg);
    if (p) {   /* SwiGLU's one launch a block (with bf16, where the products are not needed or may be written) */
        const int blocks = strstr(file, "arm_b") ? 12 : 4, want = bf16 && (!train || swiglu_products) ? blocks : 0;
        const int want_pairs = bf16 && train && gemm_pairs ? blocks : 0;   /* (and each SwiGLU's input gradient) */
        int n = 0, parts = 0, pairs = 0;
        for (int k = 0; k < p->nlaunches; k++) {
            n += p->launches[k].kind == LK_GEMM && p->launches[k].gemm.swiglu;
            pairs += p->launches[k].kind == LK_GEMM && p->launches[k].gemm.pair;
            parts += launch_choice_part(&p->launches[k]);
        }
        CHECK(n == want && pairs == want_pairs && parts == 3 * want + 2 * want_pairs,
              "%s %s: %d SwiGLU launches and %d pairs (%d parts), not %d and %d", model, train ? "train" : "infer", n,
              pairs, parts, want, want_pairs);
    }
    for (int ns = 1; p && ns <= 8; ns *= 2) {
        char what[160];
        snprintf(what, sizeof what, "%s %s%s%s%s%s%s, %d stream%s", model, train ? "train" : "infer", bf16 ? " bf16" : "",
                 multi_bwd ? " (one conv1d backward a layer)" : "", merge_zero ? " (memsets merged)" : "",
                 exact_deps ? " (views ordered by their own range)" : "", keep_tail ? " (tail kept)" : "", ns,
                 ns > 1 ? "s" : "");
        StreamPlan *sp = stream_plan(p, ns);
        check_plan(p, sp, what);
        stream_plan_free(sp);
    }
    program_free(p);
    graph_free(sg.g);
    dsl_free(m);
}

/* Zeroed memory of a program: every memset's range and every write of a merged zeroing kernel, sorted. */
typedef struct Zr { int arena; int64_t offset, bytes; } Zr;
static int zr_cmp(const void *a, const void *b) {
    const Zr *x = a, *y = b;
    if (x->arena != y->arena) return x->arena - y->arena;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->bytes > y->bytes) - (x->bytes < y->bytes);
}
static int zeroed(const Program *p, Zr *z, int *nodes) {
    int n = 0;
    *nodes = 0;
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->kind == LK_MEMSET) z[n++] = (Zr){l->dst.arena, l->dst.offset, l->bytes};
        else if (l->kind == LK_KERNEL && !strcmp(l->kclass, "memset"))
            for (int a = 0; a < l->nacc; a++) z[n++] = (Zr){l->acc[a].at.arena, l->acc[a].at.offset, l->acc[a].bytes};
        else continue;
        ++*nodes;
    }
    qsort(z, (size_t)n, sizeof *z, zr_cmp);
    return n;
}

/* Merging memsets (program_zero.c) zeroes exactly the memory the memsets did, in fewer launches, and leaves every
 * other launch as it was, in the same order. */
static void check_zero_merge(const char *file, const char *model, bool bf16, const DslSet *sets, int nsets) {
    DslModule *m[2];
    StepGraph sg[2];
    Program *p[2];
    for (int k = 0; k < 2; k++) p[k] = build(file, model, true, bf16, sets, nsets, k == 1, &m[k], &sg[k]);
    if (p[0] && p[1]) {
        Zr *z0 = malloc(sizeof(Zr) * (size_t)p[0]->nlaunches), *z1 = malloc(sizeof(Zr) * 64 * (size_t)p[1]->nlaunches);
        int nodes0, nodes1;
        const int n0 = zeroed(p[0], z0, &nodes0), n1 = zeroed(p[1], z1, &nodes1);
        bool same = n0 == n1;
        for (int k = 0; same && k < n0; k++) same = !zr_cmp(&z0[k], &z1[k]);
        CHECK(same, "%s: merged memsets zero other memory (%d against %d ranges)",
              model, n1, n0);
        CHECK(nodes1 < nodes0 && nodes0 - nodes1 == p[0]->nlaunches - p[1]->nlaunches, "%s: %d zeroing launches from %d",
              model, nodes1, nodes0);
        printf("%s: %d memsets -> %d zeroing launches\n", model, nodes0, nodes1);
        int j = 0;
        for (int k = 0; k < p[0]->nlaunches; k++) {   /* the rest, launch for launch */
            const Launch *a = &p[0]->launches[k];
            if (a->kind == LK_MEMSET) continue;
            while (j < p[1]->nlaunches && (p[1]->launches[j].kind == LK_MEMSET || !strcmp(p[1]->launches[j].kclass, "memset"))) j++;
            const Launch *b = j < p[1]->nlaunches ? &p[1]->launches[j++] : NULL;
            CHECK(b && b->kind == a->kind && !strcmp(b->name, a->name) && b->nacc == a->nacc, "%s: launch %d (%s) changed", model, k, a->name);
        }
        free(z0);
        free(z1);
    }
    for (int k = 0; k < 2; k++) { program_free(p[k]); graph_free(sg[k].g); dsl_free(m[k]); }
}

/* The step's row kernels after its last GEMM, instances counted one by one (a batched launch holds several). */
static int tail_rows(const Program *p, int *launches) {
    int last = -1, n = 0;
    for (int k = 0; k < p->nlaunches; k++) if (p->launches[k].kind == LK_GEMM) last = k;
    *launches = 0;
    for (int k = last + 1; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->kind != LK_KERNEL || strcmp(l->kclass, "norm")) continue;
        n += l->instances > 1 ? l->instances : 1;
        ++*launches;
    }
    return n;
}

/* Kept at the step's end (VMC_HOIST_TAIL=0), the gradient-norm sums are there, batched into fewer launches; hoisted
 * (the default), next to nothing of them stays. */
static void check_tail_launches(const char *file, const char *model, const DslSet *sets, int nsets) {
    DslModule *m[2];
    StepGraph sg[2];
    Program *p[2];
    int rows[2] = {0, 0}, launches[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        keep_tail = k == 1;
        p[k] = build(file, model, true, true, sets, nsets, true, &m[k], &sg[k]);
        if (p[k]) rows[k] = tail_rows(p[k], &launches[k]);
    }
    keep_tail = false;
    if (p[0] && p[1]) {
        const int params = sg[1].g->params.n;
        CHECK(rows[1] >= params / 2 && launches[1] < rows[1] / 4 && rows[0] < rows[1] / 10,
              "%s: after the last GEMM %d row kernels in %d launches kept, %d hoisted (%d parameters)", model,
              rows[1], launches[1], rows[0], params);
        CHECK(p[1]->nlaunches < p[0]->nlaunches, "%s: %d launches with the tail kept, %d hoisted", model,
              p[1]->nlaunches, p[0]->nlaunches);
        printf("%s: tail kept: %d row kernels in %d launches after the last GEMM (hoisted: %d); %d launches a step "
               "(hoisted: %d)\n", model, rows[1], launches[1], rows[0], p[1]->nlaunches, p[0]->nlaunches);
    }
    for (int k = 0; k < 2; k++) { program_free(p[k]); if (sg[k].g) graph_free(sg[k].g); dsl_free(m[k]); }
}

/* Does launch l's group extract a part of an output of op `op` (a packed backward)? */
static bool extracts_from(const Program *p, const Launch *l, OpKind op) {
    const Fusion *f = p->f;
    const Group *gr = &f->groups[l->group];
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *m = gr->members[k];
        if (m->op == OP_EXTRACT && fus_owner(f, fus_src(f, m, 0))->op == op) return true;
    }
    return false;
}

/* Accesses (program.h): a view moves its own bytes, but orders launches by its owner's whole buffer unless
 * exact_view_deps, where the range is the view's own (a kernel may move less there: the parts it slices). Apart from where memsets are hoisted to (by the ranges),
 * both programs have the same launches, accesses and moved bytes; the exact ranges lie inside the whole ones, so a
 * launch never follows more launches than before, and fewer where views kept them apart. */
static void check_exact_deps(const char *file, const char *model, bool bf16, const DslSet *sets, int nsets) {
    DslModule *m[2];
    StepGraph sg[2];
    Program *p[2];
    for (int k = 0; k < 2; k++) {
        exact_deps = k == 1;
        p[k] = build(file, model, true, bf16, sets, nsets, false, &m[k], &sg[k]);
    }
    exact_deps = false;
    if (p[0] && p[1]) {
        CHECK(p[0]->nlaunches == p[1]->nlaunches, "%s: %d launches against %d", model, p[1]->nlaunches, p[0]->nlaunches);
        int j = 0, views = 0, bad = 0;
        double whole = 0, moved = 0;
        for (int k = 0; k < p[0]->nlaunches && !bad; k++) {
            const Launch *a = &p[0]->launches[k];
            if (a->kind == LK_MEMSET) continue;
            while (j < p[1]->nlaunches && p[1]->launches[j].kind == LK_MEMSET) j++;
            const Launch *b = &p[1]->launches[j++];
            bad += b->kind != a->kind || strcmp(b->name, a->name) || b->nacc != a->nacc;
            for (int c = 0; !bad && c < a->nacc; c++) {
                const Access *w = &a->acc[c], *e = &b->acc[c];
                bad += e->write != w->write || e->moved != w->moved || e->moved > e->bytes || w->moved > w->bytes ||
                       e->at.arena != w->at.arena || e->at.offset < w->at.offset ||
                       e->at.offset + e->bytes > w->at.offset + w->bytes;
                views += w->bytes != e->bytes;
                whole += (double)w->bytes;
                moved += (double)w->moved;
            }
        }
        CHECK(!bad && views > 0, "%s: accesses differ otherwise than by views' ranges (%d views)", model, views);
        long edges[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            StreamPlan *sp = stream_plan(p[k], 8);
            for (int i = 0; i < p[k]->nlaunches; i++) edges[k] += sp->nwait[i];
            stream_plan_free(sp);
        }
        printf("%s: %d view accesses; declared %.1f GB whole, %.1f GB moved; 8 streams: %ld waits ordered by views' "
               "own ranges, %ld by whole buffers\n", model, views, whole / 1e9, moved / 1e9, edges[1], edges[0]);
        CHECK(moved < whole, "%s: views move no less than their owners' buffers", model);
        /* x_proj's input gradient is assembled from the scan backward's dB and dC, extracted from its packed
         * output (du, ddelta, dA, dB, dC, ...): the kernel moves those parts, a small share of the packed buffer */
        int parts = 0;
        for (int k = 0; k < p[0]->nlaunches; k++) {
            const Launch *l = &p[0]->launches[k];
            if (l->kind != LK_KERNEL || !strstr(l->name, "extract_pad_add") || !extracts_from(p[0], l, OP_SCAN_BWD))
                continue;
            double range = 0;
            for (int c = 0; c < l->nacc; c++) range += l->acc[c].write ? 0 : (double)l->acc[c].bytes;
            parts++;
            CHECK(launch_moved_bytes(l, false) < 0.1 * range, "%s: %s reads %.0f of %.0f bytes", model, l->name,
                  launch_moved_bytes(l, false), range);
        }
        if (strstr(model, "ft")) CHECK(parts > 0, "%s: no kernel extracting the scan backward's dB, dC", model);
    }
    for (int k = 0; k < 2; k++) { program_free(p[k]); graph_free(sg[k].g); dsl_free(m[k]); }
}

/* The longest dependency path at the floor rates (program_overlap_floor) against one found independently: every
 * pair of launches whose memory conflicts (launches_conflict, not the plan's pruned records) ordered, each launch at
 * launch_floor_ms. Also: the path is no longer than the launches one after another, no shorter than the longest
 * launch, and the bound is the largest of its parts. Returns the path (ms). */
static double check_overlap_floor(const Program *p, const char *what) {
    const FloorRates r = FLOOR_RATES_H200;
    const int n = p->nlaunches;
    double *end = calloc((size_t)n + 1, sizeof(double)), serial = 0, longest = 0, slowest = 0;
    for (int k = 0; k < n; k++) {
        const Launch *l = &p->launches[k];
        if (l->once) continue;
        double start = 0;
        for (int j = 0; j < k; j++)
            if (!p->launches[j].once && end[j] > start && launches_conflict(&p->launches[j], l)) start = end[j];
        const double t = launch_floor_ms(l, &r, NULL);
        end[k] = start + t;
        serial += t;
        if (end[k] > longest) longest = end[k];
        if (t > slowest) slowest = t;
    }
    free(end);
    const OverlapFloor o = program_overlap_floor(p, &r);
    CHECK(fabs(o.path_ms - longest) <= 1e-9 * serial, "%s: longest path %.6f ms, by every conflicting pair %.6f", what,
          o.path_ms, longest);
    CHECK(o.path_ms <= serial * (1 + 1e-12) && o.path_ms >= slowest, "%s: path %.3f ms outside [%.3f, %.3f]", what,
          o.path_ms, slowest, serial);
    const double parts = fmax(fmax(o.path_ms, o.gemm_ms), fmax(o.bytes_ms, o.sfu_ms));
    CHECK(o.ms == parts && o.gemm_ms > 0 && o.bytes_ms > 0, "%s: bound %.3f, its parts' largest %.3f", what, o.ms, parts);
    ClassTotals c;   /* the path's launches by class: their floors add up to it, none above its class's floor */
    program_class_totals(p, &r, &c);
    double on_path = 0;
    for (int j = 0; j < c.n; j++) {
        on_path += c.path_ms[j];
        CHECK(c.path_ms[j] <= c.floor_ms[j] * (1 + 1e-12), "%s: %s %.3f ms on the path of %.3f", what, c.name[j],
              c.path_ms[j], c.floor_ms[j]);
    }
    CHECK(fabs(on_path - o.path_ms) <= 1e-9 * serial, "%s: the path's launches add up to %.6f ms, not %.6f", what,
          on_path, o.path_ms);
    printf("%s: longest dependency path %.3f ms of %.3f one after another (bound %.3f)\n", what, o.path_ms, serial, o.ms);
    return o.path_ms;
}

/* Memory reused at once chains an inference step's launches (each buffer's next writer waits for its last reader);
 * held for 20 groups (the default) it leaves the four scan directions of a layer independent: a shorter longest path. */
static void check_overlap_floors(void) {
    const DslSet b8[] = {{"batch", "8"}};
    DslModule *m;
    StepGraph sg;
    double path[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        reuse_delay = k ? 0 : PROGRAM_REUSE_AT_ONCE;
        Program *p = build("models/arm_b.vmc", "arm_b_ft224", false, true, b8, 1, true, &m, &sg);
        if (!p) continue;
        path[k] = check_overlap_floor(p, k ? "arm_b_ft224 infer" : "arm_b_ft224 infer, reuse at once");
        program_free(p); graph_free(sg.g); dsl_free(m);
    }
    reuse_delay = 0;
    CHECK(path[1] > 0 && path[1] < 0.8 * path[0], "inference's longest path with reuse delayed %.3f ms, at once %.3f",
          path[1], path[0]);
    Program *p = build("models/arm_b.vmc", "arm_b_pretrain", true, true, b8, 1, true, &m, &sg);
    if (p) { check_overlap_floor(p, "arm_b_pretrain train"); program_free(p); graph_free(sg.g); dsl_free(m); }
    p = build("models/tiny.vmc", "tiny_ft", true, false, NULL, 0, true, &m, &sg);
    if (p) { check_overlap_floor(p, "tiny_ft train"); program_free(p); graph_free(sg.g); dsl_free(m); }
}

/* With ProgramOptions.scan_epi, each layer's direction merge in an inference step is computed by the layer's last
 * scan forward (its elementwise launch gone, that scan's output not written); a training step, whose backward reads
 * the directions' outputs, keeps the merge's own launch. */
static void check_scan_epi(const char *file, const char *model, const DslSet *sets, int nsets) {
    for (int train = 0; train < 2; train++) {
        DslModule *m[2];
        StepGraph sg[2];
        Program *p[2];
        int kernels[2] = {0, 0}, epi[2] = {0, 0}, scans = 0;
        for (int k = 0; k < 2; k++) {
            scan_epi = k == 1;
            p[k] = build(file, model, train, true, sets, nsets, true, &m[k], &sg[k]);
            for (int j = 0; p[k] && j < p[k]->nlaunches; j++) {
                const Launch *l = &p[k]->launches[j];
                kernels[k] += l->kind == LK_KERNEL;
                const bool fwd = l->kind == LK_KERNEL && !strcmp(l->name, "vmc_scan_fwd");
                scans += k == 1 && fwd;
                epi[k] += fwd && strstr(p[k]->modules[l->module].src, "#define SCAN_EPI 1\n") &&
                          l->args[8].arena == AR_COUNT_;   /* (y, not stored) */
            }
        }
        scan_epi = false;
        if (p[0] && p[1]) {
            const int want = train ? 0 : scans / 4;   /* a layer's 4 directions, one merge */
            CHECK(scans > 0 && epi[0] == 0 && epi[1] == want && kernels[0] - kernels[1] == want,
                  "%s %s: %d of %d scan forwards with an epilogue, kernels %d -> %d", model, train ? "train" : "infer",
                  epi[1], scans, kernels[0], kernels[1]);
            printf("%s %s, VMC_SCAN_EPI=1: %d of %d scan forwards compute their layer's merge; %d kernel launches (%d "
                   "without)\n", model, train ? "train" : "infer", epi[1], scans, kernels[1], kernels[0]);
        }
        for (int k = 0; k < 2; k++) { program_free(p[k]); if (sg[k].g) graph_free(sg[k].g); dsl_free(m[k]); }
    }
}

int main(void) {
    check_overlap_floors();
    check_model("models/tiny.vmc", "tiny_pretrain", true, false, NULL, 0);
    check_model("models/tiny.vmc", "tiny_ft", true, true, NULL, 0);
    const DslSet small[] = {{"batch", "2"}};
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    check_model("models/arm_b.vmc", "arm_b_pretrain", true, true, small, 1);
    check_model("models/arm_b.vmc", "arm_b_ft224", false, true, small, 1);
    multi_bwd = true;   /* the directions' conv1d backwards as one launch (conv_multi.c) */
    check_model("models/tiny.vmc", "tiny_ft", true, false, NULL, 0);
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    multi_bwd = false;
    merge_zero = true;   /* memsets that stand together as one zeroing kernel (program_zero.c) */
    check_model("models/tiny.vmc", "tiny_ft", true, false, NULL, 0);
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    check_model("models/arm_b.vmc", "arm_b_pretrain", true, true, small, 1);
    check_zero_merge("models/arm_b.vmc", "arm_b_ft224", true, small, 1);
    check_zero_merge("models/arm_b.vmc", "arm_b_pretrain", true, small, 1);
    merge_zero = false;
    exact_deps = true;   /* views ordered by their own ranges (Access) */
    check_model("models/tiny.vmc", "tiny_pretrain", true, false, NULL, 0);
    check_model("models/tiny.vmc", "tiny_ft", true, true, NULL, 0);
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    check_model("models/arm_b.vmc", "arm_b_pretrain", true, true, small, 1);
    exact_deps = false;
    check_exact_deps("models/arm_b.vmc", "arm_b_ft224", true, small, 1);
    check_exact_deps("models/arm_b.vmc", "arm_b_pretrain", true, small, 1);
    swiglu_products = true;   /* SwiGLU's one launch in training too, writing the products (program_swiglu.c) */
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    gemm_pairs = true;   /* and SwiGLU's input gradient as one launch (program_pair.c) */
    check_model("models/arm_b.vmc", "arm_b_pretrain", true, true, small, 1);
    swiglu_products = gemm_pairs = false;
    keep_tail = true;   /* the tail's row kernels not hoisted: batched after the last GEMM (VMC_HOIST_TAIL=0) */
    check_model("models/tiny.vmc", "tiny_pretrain", true, false, NULL, 0);
    check_model("models/arm_b.vmc", "arm_b_ft224", true, true, small, 1);
    check_model("models/arm_b.vmc", "arm_b_pretrain", true, true, small, 1);
    keep_tail = false;
    check_tail_launches("models/arm_b.vmc", "arm_b_ft224", small, 1);
    scan_epi = true;   /* the direction merges computed by the last scan of each layer (inference) */
    check_model("models/arm_b.vmc", "arm_b_ft224", false, true, small, 1);
    scan_epi = false;
    check_scan_epi("models/arm_b.vmc", "arm_b_ft224", small, 1);
    if (failures) { fprintf(stderr, "test_streams: %d failure(s)\n", failures); return 1; }
    printf("test_streams: ok\n");
    return 0;
}
