/* streams.c — the multi-stream schedule of a Program (streams.h). One pass over the launches in program order
 * keeps, for the memory touched so far, who touched it last; a launch must follow every earlier launch whose
 * access overlaps one of its own where either writes. Records wholly inside a later write are dropped: anything
 * overlapping them overlaps that write too, and its launch already follows theirs. */
#include "streams.h"
#include <stdlib.h>
#include <string.h>

typedef struct Rec { Access a; int launch; } Rec;

static bool overlap(const Access *x, const Access *y) {
    return x->at.arena == y->at.arena && x->at.offset < y->at.offset + y->bytes && y->at.offset < x->at.offset + x->bytes;
}

static bool inside(const Access *x, const Access *w) {
    return x->at.arena == w->at.arena && x->at.offset >= w->at.offset && x->at.offset + x->bytes <= w->at.offset + w->bytes;
}

bool launches_conflict(const Launch *j, const Launch *k) {
    for (int a = 0; a < j->nacc; a++)
        for (int b = 0; b < k->nacc; b++)
            if ((j->acc[a].write || k->acc[b].write) && overlap(&j->acc[a], &k->acc[b])) return true;
    return false;
}

StreamPlan *stream_plan(const Program *p, int nstreams) {
    const int n = p->nlaunches;
    if (nstreams < 1) nstreams = 1;
    if (nstreams > STREAMS_MAX) nstreams = STREAMS_MAX;
    StreamPlan *s = xcalloc(1, sizeof *s);
    s->nstreams = nstreams;
    s->nlaunches = n;
    s->stream = xcalloc((size_t)n + 1, sizeof(int));
    s->wait = xcalloc((size_t)n + 1, sizeof(int *));
    s->nwait = xcalloc((size_t)n + 1, sizeof(int));
    s->record = xcalloc((size_t)n + 1, sizeof(bool));
    s->last = xmalloc(sizeof(int) * (size_t)nstreams);
    for (int t = 0; t < nstreams; t++) s->last[t] = -1;
    if (nstreams == 1) {
        if (n) s->last[0] = n - 1;
        return s;
    }
    Rec *recs = NULL;
    int nrec = 0, caprec = 0;
    for (int k = 0; k < n; k++) {
        const Launch *l = &p->launches[k];
        if (l->once) continue;   /* runs before the step (its results are ready when the step starts) */
        int dep[STREAMS_MAX];   /* by stream: the latest earlier launch there that k must follow, -1 */
        for (int t = 0; t < nstreams; t++) dep[t] = -1;
        for (int a = 0; a < l->nacc; a++)
            for (int r = 0; r < nrec; r++) {
                const Rec *x = &recs[r];
                if ((l->acc[a].write || x->a.write) && overlap(&l->acc[a], &x->a) && x->launch > dep[s->stream[x->launch]])
                    dep[s->stream[x->launch]] = x->launch;
            }
        /* continue the stream whose tail k waits for anyway (the latest such), else take the least recently used */
        int st = -1;
        for (int t = 0; t < nstreams; t++)
            if (dep[t] >= 0 && s->last[t] == dep[t] && (st < 0 || dep[t] > dep[st])) st = t;
        if (st < 0) {
            st = 0;
            for (int t = 1; t < nstreams; t++) if (s->last[t] < s->last[st]) st = t;
        }
        s->stream[k] = st;
        s->last[st] = k;
        for (int t = 0; t < nstreams; t++) {
            if (t == st || dep[t] < 0) continue;
            if (!s->wait[k]) s->wait[k] = xmalloc(sizeof(int) * (size_t)nstreams);
            s->wait[k][s->nwait[k]++] = dep[t];
            s->record[dep[t]] = true;
        }
        for (int a = 0; a < l->nacc; a++) {
            if (!l->acc[a].write) continue;
            for (int r = 0; r < nrec;) {
                if (inside(&recs[r].a, &l->acc[a])) recs[r] = recs[--nrec];
                else r++;
            }
        }
        for (int a = 0; a < l->nacc; a++) {
            if (nrec == caprec) {
                caprec = caprec ? 2 * caprec : 256;
                recs = xrealloc(recs, sizeof(Rec) * (size_t)caprec);
            }
            recs[nrec++] = (Rec){l->acc[a], k};
        }
    }
    free(recs);
    return s;
}

void stream_plan_free(StreamPlan *s) {
    if (!s) return;
    for (int k = 0; k < s->nlaunches; k++) free(s->wait[k]);
    free(s->stream); free(s->wait); free(s->nwait); free(s->record); free(s->last);
    free(s);
}
