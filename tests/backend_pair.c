/* backend_pair.c — see backend_pair.h. */
#include "backend_pair.h"
#include "autodiff.h"
#include "cuda_exec.h"   /* step_graph_build */
#include "init.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_failures;
double bp_worst;
bool bp_quiet;

static bool batch_input(const Node *n) { return strcmp(n->name, "lr") && strcmp(n->name, "step"); }

void bp_fill_node(const Node *n, uint64_t key, void *buf) {
    const size_t len = (size_t)shape_numel(n->shape);
    for (size_t i = 0; i < len; i++) {
        RngBlock r = rng_philox(11, key, i, 0);
        if (n->dtype == DT_I32) ((int32_t *)buf)[i] = (int32_t)rng_below(r.x[0], 10);
        else ((float *)buf)[i] = (float)rng_normal(r.x[0], r.x[1]);
    }
}

void bp_write_both(Exec *cpu, Exec *x, const Node *n, uint64_t key, bool init) {
    const size_t len = (size_t)shape_numel(n->shape);
    void *buf = xmalloc(len * 4 + 4);
    if (init && n->op == OP_PARAM) init_param(n, 1, buf);
    else bp_fill_node(n, key, buf);
    if (init && n->op == OP_PARAM && n->dtype == DT_I32) for (size_t i = 0; i < len; i++) ((int32_t *)buf)[i] = (int32_t)((float *)buf)[i];
    exec_write(cpu, n, buf, len * 4);
    exec_write(x, n, buf, len * 4);
    free(buf);
}

void bp_fill_model(Exec *cpu, Exec *x, const Graph *g) {
    for (int k = 0; k < g->params.n; k++) bp_write_both(cpu, x, g->params.items[k], 300 + (uint64_t)k, true);
    for (int k = 0; k < g->inputs.n; k++)
        if (batch_input(g->inputs.items[k])) bp_write_both(cpu, x, g->inputs.items[k], 400 + (uint64_t)k, false);
}

double bp_compare(const char *what, Exec *cpu, Exec *x, const Node *n, double tol) {
    const size_t len = (size_t)shape_numel(n->shape), esz = (size_t)dtype_size(n->dtype);
    float *a = xmalloc(len * 4 + 4), *b = xmalloc(len * 4 + 4);
    exec_read(cpu, n, a, len * esz);
    exec_read(x, n, b, len * esz);
    if (n->dtype == DT_BF16)   /* widen in place, back to front */
        for (size_t i = len; i-- > 0;) {
            const uint32_t ua = (uint32_t)((uint16_t *)a)[i] << 16, ub = (uint32_t)((uint16_t *)b)[i] << 16;
            memcpy(&a[i], &ua, 4);
            memcpy(&b[i], &ub, 4);
        }
    double maxd = 0, maxr = 0;
    bool nan = false;
    for (size_t i = 0; i < len; i++) {
        const double u = n->dtype == DT_I32 ? ((int32_t *)a)[i] : a[i], v = n->dtype == DT_I32 ? ((int32_t *)b)[i] : b[i];
        if (isnan(u) != isnan(v)) nan = true;
        if (isnan(u) || isnan(v)) continue;
        if (fabs(u - v) > maxd) maxd = fabs(u - v);
        if (fabs(u) > maxr) maxr = fabs(u);
    }
    const double rel = maxd / (maxr > 0 ? maxr : 1);
    const bool ok = rel <= tol && !nan;
    if (!bp_quiet || !ok || !strcmp(what, "loss"))
        printf("  %-44s n=%-8zu max|d|=%.3g rel=%.3g (%.0f%% of tol)%s\n", what, len, maxd, rel, 100 * rel / tol,
               ok ? "" : nan ? "  NaN MISMATCH" : "  FAIL");
    if (!ok) bp_failures++;
    if (rel > bp_worst) bp_worst = rel;
    free(a);
    free(b);
    return rel;
}

void bp_model_grads(DslModule *m, const char *model, double tol, BpMake make) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    ASSERT(g, "model %s", model);
    Node **grads = xcalloc((size_t)g->params.n + 1, sizeof(Node *)), **keep = xcalloc((size_t)g->params.n + 2, sizeof(Node *));
    char err[512];
    ASSERT(autodiff_backward(g, g->loss, grads, err, sizeof err), "%s", err);
    int nk = 0;
    keep[nk++] = g->loss;
    for (int k = 0; k < g->params.n; k++) if (grads[k]) keep[nk++] = grads[k];
    Exec *cpu = cpu_exec_new(g, keep, nk), *x = make(g, keep, nk);
    bp_fill_model(cpu, x, g);
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(x, &s);
    bp_compare("loss", cpu, x, g->loss, tol / 10);
    for (int k = 0; k < g->params.n; k++) {
        if (!grads[k]) continue;
        char name[160];
        snprintf(name, sizeof name, "d %s", ((Node *)g->params.items[k])->name);
        bp_compare(name, cpu, x, grads[k], tol);
    }
    exec_free(cpu);
    exec_free(x);
    free(grads);
    free(keep);
    graph_free(g);
}

void bp_forward(DslModule *m, const char *model, double tol, BpMake make) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    ASSERT(g, "model %s", model);
    Node *keep[1] = {g->loss};
    Exec *cpu = cpu_exec_new(g, keep, 1), *x = make(g, keep, 1);
    bp_fill_model(cpu, x, g);
    StepInfo s = {.seed = 3, .step = 1};
    exec_run(cpu, &s);
    exec_run(x, &s);
    bp_compare("loss (forward alone)", cpu, x, g->loss, tol);
    exec_free(cpu);
    exec_free(x);
    graph_free(g);
}

void bp_knob_forward(DslModule *m, const char *model, const char *named, const char *knob, const char *value, double tol,
                     BpMake make, void (*check)(Exec *x, bool on)) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = dsl_build_model(m, model, &d);
    ASSERT(g, "model %s", model);
    Node *keep[1] = {NULL};
    for (int k = 0; k < g->nnamed; k++) if (!strcmp(g->named[k].name, named)) keep[0] = g->named[k].node;
    ASSERT(keep[0], "%s has no output %s", model, named);
    Exec *x[2];
    for (int j = 0; j < 2; j++) {   /* 0: the knob unset (the reference), 1: set to value */
        if (j) setenv(knob, value, 1);
        else unsetenv(knob);
        x[j] = make(g, keep, 1);
        if (check) check(x[j], j == 1);
    }
    unsetenv(knob);
    bp_fill_model(x[0], x[1], g);
    StepInfo s = {.seed = 3, .step = 1};
    for (int j = 0; j < 2; j++) exec_run(x[j], &s);
    const bool quiet = bp_quiet;   /* (printed: the one figure of the check) */
    bp_quiet = false;
    char what[96];
    snprintf(what, sizeof what, "%s, %s=%s against unset", named, knob, value);
    bp_compare(what, x[0], x[1], keep[0], tol);
    bp_quiet = quiet;
    for (int j = 0; j < 2; j++) exec_free(x[j]);
    graph_free(g);
}

/* Step t's batch: fresh values of every input but lr and step, written into the cpu backend and lent to the other
 * from host memory that stays unchanged until released (two buffers an input, used in turn). */
static void feed_step(Exec *cpu, Exec *x, const Graph *g, int t, void **lent, BpHost host) {
    exec_write_release(x);
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *n = g->inputs.items[k];
        if (!batch_input(n)) continue;
        const size_t bytes = (size_t)shape_numel(n->shape) * 4;
        void **buf = &lent[2 * k + (t & 1)];
        if (!*buf) *buf = host.alloc(bytes);
        bp_fill_node(n, 400 + (uint64_t)k + 1000 * (uint64_t)t, *buf);
        exec_write(cpu, n, *buf, bytes);
        exec_write_borrowed(x, n, *buf, bytes);
    }
}

void bp_training(DslModule *m, const char *model, int steps, BpMake make, BpHost host, void (*after)(Exec *x)) {
    printf("%s: %d fp32 training steps, losses against the cpu backend's\n", model, steps);
    Diag d;
    diag_init(&d, stderr);
    StepGraph sg;
    ASSERT(step_graph_build(m, model, true, &sg, &d), "step graph");
    Graph *g = sg.g;
    Node *gn = graph_find_named(g, "grad_norm");   /* (the gradient-norm sums: the step's tail) */
    Node *keep[2] = {g->loss, gn};
    Exec *cpu = cpu_exec_new(g, keep, gn ? 2 : 1), *x = make(g, keep, gn ? 2 : 1);
    bp_fill_model(cpu, x, g);
    double maxrel = 0, first = 0, last = 0, norm_rel = 0;
    float a[2], b[2];   /* by step parity: the cpu loss, the other's (read started, finished a step later) */
    int ticket[2];
    void **lent = xcalloc(2 * (size_t)g->inputs.n, sizeof(void *));
    for (int t = 1; t <= steps + 1; t++) {
        if (t <= steps) {
            feed_step(cpu, x, g, t, lent, host);
            float lr = 1e-3f, st = (float)t;
            exec_write(cpu, sg.lr, &lr, 4); exec_write(x, sg.lr, &lr, 4);
            exec_write(cpu, sg.step, &st, 4); exec_write(x, sg.step, &st, 4);
            StepInfo s = {.seed = 3, .step = (uint64_t)t};
            exec_run(cpu, &s);
            exec_run(x, &s);
            exec_read(cpu, g->loss, &a[t & 1], 4);
            if (gn) {   /* this step's gradient norm on both */
                float na, nb;
                exec_read(cpu, gn, &na, 4);
                exec_read(x, gn, &nb, 4);
                const double r = fabs((double)na - nb) / fmax(fabs((double)na), 1e-12);
                if (r > norm_rel) norm_rel = r;
            }
            ticket[t & 1] = exec_read_start(x, g->loss, &b[t & 1], 4);
        }
        const int p = t - 1;   /* the step whose loss is finished now */
        if (p < 1) continue;
        exec_read_finish(x, ticket[p & 1]);
        const double u = a[p & 1], v = b[p & 1], rel = fabs(u - v) / fmax(fabs(u), 1e-12);
        if (rel > maxrel) maxrel = rel;
        if (p == 1) first = u;
        last = u;
        if (p % 10 == 0 || p <= 3) printf("  step %3d  cpu %.7f  %s %.7f  rel %.2e\n", p, u, x->vt->name, v, rel);
    }
    const bool ok = maxrel <= 1e-4 && norm_rel <= 1e-4;
    printf("  max relative loss difference over %d steps: %.3g, of the gradient norm %.3g%s; loss %.5f -> %.5f\n", steps,
           maxrel, norm_rel, ok ? "" : "  FAIL", first, last);
    if (!ok) bp_failures++;
    if (after) after(x);
    exec_write_release(x);
    for (int k = 0; k < 2 * g->inputs.n; k++) if (lent[k]) host.release(lent[k]);
    free(lent);
    exec_free(cpu);
    exec_free(x);
    graph_free(g);
}
