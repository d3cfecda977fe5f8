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

/* Dependency edges from -> to (to must follow from), each once. */
typedef struct Deps { int *from, *to, n, cap; int *seen; /* by launch: the last `to` it was added for */ } Deps;

static void deps_add(Deps *d, int from, int to) {
    if (d->seen[from] == to) return;
    d->seen[from] = to;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 1024;
        d->from = xrealloc(d->from, sizeof(int) * (size_t)d->cap);
        d->to = xrealloc(d->to, sizeof(int) * (size_t)d->cap);
    }
    d->from[d->n] = from;
    d->to[d->n++] = to;
}

static void mark_critical(const Program *p, StreamPlan *s, const Deps *d);

/* Every launch each one must follow (edges added in increasing `to`). */
static Deps collect_deps(const Program *p) {
    const int n = p->nlaunches;
    Rec *recs = NULL;
    int nrec = 0, caprec = 0;
    Deps deps = {.seen = xmalloc(sizeof(int) * ((size_t)n + 1))};
    for (int k = 0; k < n; k++) deps.seen[k] = -1;
    for (int k = 0; k < n; k++) {
        const Launch *l = &p->launches[k];
        if (l->once) continue;   /* runs before the step (its results are ready when the step starts) */
        for (int a = 0; a < l->nacc; a++)
            for (int r = 0; r < nrec; r++)
                if ((l->acc[a].write || recs[r].a.write) && overlap(&l->acc[a], &recs[r].a)) deps_add(&deps, recs[r].launch, k);
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
    return deps;
}

/* May launch k queue on stream t? Not behind a launch whose heir (StreamPlan.heir) is still to come and is not k. */
static bool may_queue(const StreamPlan *s, int k, int t) {
    const int tail = s->last[t], h = tail < 0 ? -1 : s->heir[tail];
    return h < 0 || h <= k;
}

/* The stream launch k goes to, given dep[t], the latest launch on stream t it must follow: the stream whose tail
 * it is the heir of; else one whose tail it waits for anyway (no false order), else the least recently used,
 * never queueing behind a tail whose heir is still to come. */
static int pick_stream(const StreamPlan *s, int k, const int *dep) {
    const int ns = s->nstreams;
    for (int t = 0; t < ns; t++)   /* the heir of a stream's tail continues it */
        if (s->last[t] >= 0 && s->heir[s->last[t]] == k) return t;
    int st = -1;
    for (int t = 0; t < ns; t++) {
        if (dep[t] < 0 || s->last[t] != dep[t] || !may_queue(s, k, t)) continue;
        if (st < 0 || dep[t] > dep[st]) st = t;
    }
    if (st >= 0) return st;
    for (int t = 0; t < ns; t++) {   /* the least recently used stream, one without a critical tail first */
        if (st < 0 || (may_queue(s, k, t) && !may_queue(s, k, st)) ||
            (may_queue(s, k, t) == may_queue(s, k, st) && s->last[t] < s->last[st]))
            st = t;
    }
    return st;
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
    s->critical = xcalloc((size_t)n + 1, sizeof(bool));
    s->heir = xmalloc(sizeof(int) * ((size_t)n + 1));
    for (int k = 0; k <= n; k++) s->heir[k] = -1;
    if (nstreams == 1) {   /* (nothing runs beside anything: no launch is more critical than another) */
        if (n) s->last[0] = n - 1;
        return s;
    }
    Deps deps = collect_deps(p);
    mark_critical(p, s, &deps);
    for (int k = 0, e = 0; k < n; k++) {
        if (p->launches[k].once) continue;
        int dep[STREAMS_MAX];   /* by stream: the latest earlier launch there that k must follow, -1 */
        for (int t = 0; t < nstreams; t++) dep[t] = -1;
        for (; e < deps.n && deps.to[e] == k; e++) {
            const int j = deps.from[e];
            if (j > dep[s->stream[j]]) dep[s->stream[j]] = j;
        }
        const int st = pick_stream(s, k, dep);
        s->stream[k] = st;
        s->last[st] = k;
        for (int t = 0; t < nstreams; t++) {
            if (t == st || dep[t] < 0) continue;
            if (!s->wait[k]) s->wait[k] = xmalloc(sizeof(int) * (size_t)nstreams);
            s->wait[k][s->nwait[k]++] = dep[t];
            s->record[dep[t]] = true;
        }
    }
    free(deps.from); free(deps.to); free(deps.seen);
    return s;
}

/* Estimated microseconds of launch l alone on the GPU. */
static double launch_cost_us(const Launch *l) {
    if (launch_choice_part(l)) return 0;   /* (the one launch runs instead, as the runtime mostly chooses) */
    double bytes = 0;
    for (int a = 0; a < l->nacc; a++) bytes += (double)l->acc[a].bytes;
    double us = 2.0 + bytes / 3e6;
    if (l->kind == LK_GEMM) us += gemm_flops(&l->gemm) / 6e8;
    return us;
}

/* Longest paths over the true dependencies (edges in program order: from < to), ignoring a plan's stream order,
 * which adds false ones, with launch k taking cost[k]: start[k], when its last dependency ends; rest[k], its cost
 * and the longest path after it; cpred[k], the dependency it waits for longest (-1: none). Returns the longest. */
static double longest_paths(const Deps *d, int n, const double *cost, double *start, double *rest, int *cpred) {
    double *after = xcalloc((size_t)n + 1, sizeof(double));
    for (int k = 0; k <= n; k++) { start[k] = 0; cpred[k] = -1; }
    for (int e = 0; e < d->n; e++) {   /* edges are added in increasing `to`: each `from` is final when used */
        const double t = start[d->from[e]] + cost[d->from[e]];
        if (t > start[d->to[e]]) { start[d->to[e]] = t; cpred[d->to[e]] = d->from[e]; }
    }
    for (int e = d->n - 1, k = n - 1; k >= 0; k--) {   /* the longest path from k's start to the end */
        rest[k] = cost[k] + after[k];
        for (; e >= 0 && d->to[e] == k; e--)
            if (rest[k] > after[d->from[e]]) after[d->from[e]] = rest[k];
    }
    double longest = 0;
    for (int k = 0; k < n; k++) if (start[k] + rest[k] > longest) longest = start[k] + rest[k];
    free(after);
    return longest;
}

/* The critical launches (by the rough costs above) and each one's heir. */
static void mark_critical(const Program *p, StreamPlan *s, const Deps *d) {
    const int n = s->nlaunches;
    int *cpred = xmalloc(sizeof(int) * ((size_t)n + 1));   /* the dependency k waits for longest, -1 */
    double *cost = xcalloc((size_t)n + 1, sizeof(double)), *start = xcalloc((size_t)n + 1, sizeof(double));
    double *rest = xcalloc((size_t)n + 1, sizeof(double));
    for (int k = 0; k < n; k++) if (!p->launches[k].once) cost[k] = launch_cost_us(&p->launches[k]);
    const double longest = longest_paths(d, n, cost, start, rest, cpred);
    for (int k = 0; k < n; k++)
        s->critical[k] = !p->launches[k].once && start[k] + rest[k] >= (1.0 - CRITICAL_SLACK) * longest;
    for (int k = 0; k < n; k++) {
        const int j = cpred[k];
        if (s->critical[k] && j >= 0 && s->critical[j] && (s->heir[j] < 0 || rest[k] > rest[s->heir[j]])) s->heir[j] = k;
    }
    free(cpred); free(cost); free(start); free(rest);
}

double stream_longest_path_ms(const Program *p, const FloorRates *r, bool *on_path) {
    const int n = p->nlaunches;
    Deps deps = collect_deps(p);
    int *cpred = xmalloc(sizeof(int) * ((size_t)n + 1));
    double *cost = xcalloc((size_t)n + 1, sizeof(double)), *start = xcalloc((size_t)n + 1, sizeof(double));
    double *rest = xcalloc((size_t)n + 1, sizeof(double));
    for (int k = 0; k < n; k++) if (!p->launches[k].once) cost[k] = launch_floor_ms(&p->launches[k], r, NULL);
    const double longest = longest_paths(&deps, n, cost, start, rest, cpred);
    if (on_path) {   /* back from the launch that ends last, through the dependency each waits for longest */
        int last = -1;
        for (int k = 0; k < n; k++) {
            on_path[k] = false;
            if (!p->launches[k].once && (last < 0 || start[k] + cost[k] > start[last] + cost[last])) last = k;
        }
        for (int k = last; k >= 0; k = cpred[k]) on_path[k] = true;
    }
    free(cpred); free(cost); free(start); free(rest);
    free(deps.from); free(deps.to); free(deps.seen);
    return longest;
}

void stream_plan_free(StreamPlan *s) {
    if (!s) return;
    for (int k = 0; k < s->nlaunches; k++) free(s->wait[k]);
    free(s->stream); free(s->wait); free(s->nwait); free(s->record); free(s->last); free(s->critical); free(s->heir);
    free(s);
}
