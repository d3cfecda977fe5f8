/* bench_gaps.c — see bench_gaps.h. */
#include "bench_gaps.h"
#include <stdlib.h>
#include <string.h>

const char *launch_profile_name(const Launch *l) { return l->kind == LK_MEMSET ? "memset" : l->name; }

static int by_gap(const void *a, const void *b) {
    const KernelGap *x = a, *y = b;
    const double gx = x->ms - x->floor_ms, gy = y->ms - y->floor_ms;
    return gx < gy ? 1 : gx > gy ? -1 : strcmp(x->name, y->name);
}

int kernel_gaps(const Program *p, const FloorRates *r, const CudaProfile *prof, int steps, KernelGap *gaps) {
    const double per = steps > 0 ? 1.0 / steps : 1.0;
    for (int j = 0; j < prof->nk; j++)
        gaps[j] = (KernelGap){prof->knames[j], (int)(prof->kcalls[j] * per + 0.5), prof->kms[j] * per, 0,
                              prof->kblocks[j]};
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->once) continue;
        const char *name = launch_profile_name(l);
        for (int j = 0; j < prof->nk; j++)
            if (!strcmp(gaps[j].name, name)) { gaps[j].floor_ms += launch_floor_ms(l, r, NULL); break; }
    }
    qsort(gaps, (size_t)prof->nk, sizeof *gaps, by_gap);
    return prof->nk;
}
