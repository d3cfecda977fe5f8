/* program_zero.c — the memsets that zero atomically accumulated outputs, once pg_hoist_memsets has moved each up to
 * just after the last launch touching its memory, stand in runs (ARM-B fine-tuning: 295 memsets in 80 runs, 247
 * of them under 64 KB: the dA, dD, Δ-bias, conv-weight and column-sum accumulators). The small ones of a run become
 * one launch of a generated kernel (emit_zero.c) that zeroes them all: fewer nodes in the step's graph, each a
 * few microseconds of launch latency and a hop in its dependency chains. Nothing else moves: no launch stands
 * between a run's memsets, so the merged launch follows exactly what they followed (its accesses are theirs). */
#include "program_impl.h"
#include <stdlib.h>

/* Memsets larger than this stay memsets (the driver's fill runs at full bandwidth); a kernel takes at most
 * ZERO_MAX_RANGES buffers (its pointers are its parameters). */
enum { ZERO_MERGE_MAX_BYTES = 1 << 20, ZERO_MAX_RANGES = 32 };

static bool mergeable(const Launch *l) { return l->kind == LK_MEMSET && !l->once && l->bytes <= ZERO_MERGE_MAX_BYTES; }

/* Launches m[0..n) (small memsets of one run) become one kernel launch in m[0]'s place; the others are dropped. */
static void merge(Program *p, const int *m, int n, Batch *mod, SeenSet *seen, bool *keep) {
    ZeroRange r[ZERO_MAX_RANGES];
    for (int k = 0; k < n; k++) {
        const Launch *z = &p->launches[m[k]];
        /* arenas are allocated 256-byte aligned: the offset decides the address's alignment */
        r[k] = (ZeroRange){z->bytes, z->dst.offset % 16 == 0 && z->bytes % 16 == 0};
    }
    KernelSource ks;
    codegen_zero_kernel(r, n, &ks);
    Launch *l = &p->launches[m[0]];
    const BufRef first = l->dst;
    l->kind = LK_KERNEL;
    l->kclass = ks.kclass;
    snprintf(l->name, sizeof l->name, "%s", ks.name);
    l->grid[0] = ks.grid; l->grid[1] = l->grid[2] = 1;
    l->block[0] = ks.block; l->block[1] = l->block[2] = 1;
    l->dst = (BufRef){AR_COUNT_, 0};
    l->bytes = 0;
    pg_set_args(l, n);
    l->args[0] = first;
    for (int k = 1; k < n; k++) {
        Launch *z = &p->launches[m[k]];
        l->args[k] = z->dst;
        for (int a = 0; a < z->nacc; a++) pg_touch_as(l, z->acc[a]);
        keep[m[k]] = false;
    }
    const int same = pg_seen_find(seen, ks.key, m[0]);
    if (same >= 0) l->same_as = same;
    else {
        pg_batch_add(p, mod, ks.body, ks.name, m[0]);
        p->nkernels++;
    }
    kernel_source_free(&ks);
}

void pg_merge_memsets(Program *p) {
    const int n = p->nlaunches;
    bool *keep = xmalloc(sizeof(bool) * (size_t)(n ? n : 1));
    for (int k = 0; k < n; k++) keep[k] = true;
    Batch mod = {0};
    SeenSet seen = {0};
    int run[ZERO_MAX_RANGES];
    for (int k = 0; k < n; k++) {
        int nrun = 0;
        for (; k < n && p->launches[k].kind == LK_MEMSET; k++) {   /* a run of memsets: its small ones, by 32 */
            if (mergeable(&p->launches[k])) run[nrun++] = k;
            if (nrun == ZERO_MAX_RANGES) { merge(p, run, nrun, &mod, &seen, keep); nrun = 0; }
        }
        if (nrun >= 2) merge(p, run, nrun, &mod, &seen, keep);
    }
    pg_batch_flush(p, &mod);
    pg_resolve_same_as(p);
    pg_drop_launches(p, keep);
    for (int k = 0; k < seen.n; k++) free(seen.items[k].key);
    free(seen.items);
    free(keep);
}
