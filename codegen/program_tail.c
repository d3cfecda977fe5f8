/* program_tail.c — the training step's launch list finished: the kernels after its last GEMM batched into one
 * launch per kernel text, and memsets moved up to just after what they must follow. */
#include "program_impl.h"
#include <stdlib.h>
#include <string.h>
#include "streams.h"

/* ---------------------------------------------------------------- batched tail */
enum { BATCH_PARAM_BYTES = 32000 };   /* kernel parameters by value: at most 32764 bytes (sm_70+, CUDA 12.1+) */

typedef struct TailBatch { int root, n, cap; int *members; } TailBatch;

/* A generated elementwise or row kernel of one block row (grid y and z 1), part of the step: may be batched. */
static bool batchable(const Program *p, const Launch *l) {
    if (l->kind != LK_KERNEL || l->once || l->bf16_cast || !l->rng_args || l->grid[1] != 1 || l->grid[2] != 1) return false;
    const GroupKind k = p->f->groups[l->group].kind;
    return k == GK_EW || k == GK_ROW;
}

/* Does module-in-making mod already define the batched kernel of this root (named root_x)? */
static bool module_has_batch(const Program *p, const Batch *mod, const char *root) {
    const size_t len = strlen(root);
    for (int k = 0; k < mod->launches.n; k++) {
        const char *nm = p->launches[(intptr_t)mod->launches.items[k]].name;
        if (!strncmp(nm, root, len) && !strcmp(nm + len, "_x")) return true;
    }
    return false;
}

/* One launch of the batch's kernel for all its members, in place of the last; the others are dropped (keep[]). */
static void batch_close(Program *p, Batch *mod, TailBatch *b, bool *keep) {
    Launch *last = &p->launches[b->members[b->n - 1]];
    if (b->n >= 2) {
        const Launch *root = &p->launches[b->root];
        KernelSource ks;
        codegen_group_batched(p->f, &p->f->groups[root->group], b->n, &ks);
        ASSERT(!strcmp(ks.name, root->name), "batched kernel %s named %s", root->name, ks.name);
        /* a second batch of one kernel (the first closed by a conflict) defines the same names: its own module.
         * (No model's step has one today; keeping the small gradient-norm sums in the tail, an experiment that
         * measured no faster, produced two and NVRTC refused the module.) */
        if (module_has_batch(p, mod, root->name)) pg_batch_flush(p, mod);
        pg_batch_add(p, mod, ks.body, root->name, b->members[b->n - 1]);   /* (the module is set when it is flushed) */
        kernel_source_free(&ks);
        BufRef *args = xmalloc(sizeof(BufRef) * (size_t)(b->n * last->nargs));
        for (int i = 0; i < b->n; i++) {
            Launch *m = &p->launches[b->members[i]];
            memcpy(args + (size_t)i * last->nargs, m->args, sizeof(BufRef) * (size_t)last->nargs);
            if (m == last) continue;
            for (int a = 0; a < m->nacc; a++) pg_touch_as(last, m->acc[a]);
            keep[b->members[i]] = false;
        }
        free(last->args);
        last->args = args;
        last->instances = b->n;
        last->grid[1] = (unsigned)b->n;
        last->same_as = -1;
        char name[sizeof last->name];
        memcpy(name, root->name, sizeof name);
        snprintf(last->name, sizeof last->name, "%.*s_x", (int)sizeof name - 3, name);
        p->nkernels++;
    }
    b->n = 0;
}

/* The launches after the step's last GEMM or template are mostly the optimizer's updates: a small kernel per
 * parameter, one kernel text for the parameters of one shape. Launches of one kernel that nothing between them
 * conflicts with (streams.c launches_conflict) become one launch at the place of the last (codegen_group_batched): the
 * hundreds of launches of the step's latency-bound tail, each a few microseconds and a hop in the step's graph,
 * become a few. */
void pg_batch_tail(Program *p) {
    const int n = p->nlaunches, last_heavy = fusion_last_heavy_group(p->f);
    int first = 0;   /* the first launch after those of the last GEMM or template group */
    while (first < n && p->launches[first].group <= last_heavy) first++;   /* (launches follow group order) */
    bool *keep = xmalloc(sizeof(bool) * (size_t)(n ? n : 1));
    for (int k = 0; k < n; k++) keep[k] = true;
    TailBatch *open = NULL;
    Batch mod = {0};
    int nopen = 0, capopen = 0;
    for (int q = first; q < n; q++) {
        const Launch *l = &p->launches[q];
        const int root = batchable(p, l) ? (l->same_as >= 0 ? l->same_as : q) : -1;
        bool joined = false;
        for (int i = 0; i < nopen; i++) {
            TailBatch *b = &open[i];
            bool conflict = false;
            for (int j = 0; j < b->n && !conflict; j++) conflict = launches_conflict(&p->launches[b->members[j]], l);
            const bool fits = (size_t)(b->n + 1) * (size_t)(l->nargs + 1) * 8 <= BATCH_PARAM_BYTES;
            if (b->root == root && !conflict && fits) {
                if (b->n == b->cap) b->members = xrealloc(b->members, sizeof(int) * (size_t)(b->cap = 2 * b->cap + 8));
                b->members[b->n++] = q;
                joined = true;
            } else if (conflict || b->root == root) {
                batch_close(p, &mod, b, keep);
                free(b->members);
                open[i--] = open[--nopen];
            }
        }
        if (root < 0 || joined) continue;
        if (nopen == capopen) open = xrealloc(open, sizeof(TailBatch) * (size_t)(capopen = 2 * capopen + 8));
        open[nopen] = (TailBatch){root, 1, 8, xmalloc(sizeof(int) * 8)};
        open[nopen++].members[0] = q;
    }
    for (int i = 0; i < nopen; i++) { batch_close(p, &mod, &open[i], keep); free(open[i].members); }
    free(open);
    pg_batch_flush(p, &mod);
    pg_drop_launches(p, keep);
    free(keep);
}

void pg_drop_launches(Program *p, const bool *keep) {
    int m = 0;
    for (int k = 0; k < p->nlaunches; k++) {
        if (keep[k]) { p->launches[m++] = p->launches[k]; continue; }
        free(p->launches[k].args);
        free(p->launches[k].acc);
    }
    p->nlaunches = m;
    for (int k = 0; k < m; k++) p->launches[k].same_as = -1;   /* (indices moved; modules are resolved) */
}

/* A memset zeroes an output that its kernel then accumulates into; it was added just before that kernel, so in the
 * step's graph it sat between the kernel and the producers the kernel waits for: one more hop (a few microseconds)
 * on the path. Each memset moves up to just after the last launch that touches its memory (launches_conflict),
 * where the stream plan finds it a place beside earlier work; the kernel then waits for a memset long done. */
void pg_hoist_memsets(Program *p) {
    for (int k = 0; k < p->nlaunches; k++) {
        if (p->launches[k].kind != LK_MEMSET) continue;
        int to = k;   /* the memset's new place: after the last earlier launch it conflicts with */
        while (to > 0 && !launches_conflict(&p->launches[to - 1], &p->launches[k])) to--;
        if (to == k) continue;
        const Launch m = p->launches[k];
        memmove(&p->launches[to + 1], &p->launches[to], sizeof(Launch) * (size_t)(k - to));
        p->launches[to] = m;
    }
}
