/* cpu_check.h — shared by the cpu-area tests: random inputs, a weighted-sum loss, and a gradient check of a
 * graph against central finite differences on the fp64 cpu backend (plus fp32-vs-fp64 agreement). */
#pragma once
#include "autodiff.h"
#include "exec.h"
#include "graph.h"
#include "init.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond, ...) do { if (!(cond)) { check_failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static uint64_t check_counter;
static inline double check_normal(void) {
    RngBlock r = rng_philox(1234, 99, check_counter, check_counter >> 32);
    check_counter++;
    return rng_normal(r.x[0], r.x[1]);
}

static inline Node *check_param(Graph *g, const char *name, Shape s) {
    ParamInfo pi = {INIT_ZEROS, {0}, 0, -1, 0};
    Node *p = g_param(g, name, s, DT_F32, pi, LOC_NONE);
    if (!p) { printf("FAIL: g_param %s: %s\n", name, g->err); exit(1); }
    return p;
}

static inline Node *check_ok(Graph *g, Node *n) {
    if (!n) { printf("FAIL: builder: %s\n", g->err); exit(1); }
    return n;
}

/* loss = sum(out * R) with a fixed random R, so every output element has its own weight. */
static inline Node *check_weighted_loss(Graph *g, Node *out) {
    int64_t n = shape_numel(out->shape);
    float *w = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) w[i] = (float)check_normal();
    Node *R = g_table_f32(g, out->shape, w);
    free(w);
    Node *prod = check_ok(g, g_binary(g, OP_MUL, out, R, LOC_NONE));
    Node *flat = check_ok(g, g_reshape(g, prod, shape_of(1, n), LOC_NONE));
    return check_ok(g, g_reduce(g, OP_SUM, flat, 0, LOC_NONE));
}

/* Per-parameter value generator: 0 normal, 1 positive in [0.5, 2], 2 small normal (x0.3). */
typedef struct CheckOpts {
    double tol; int kind[64]; int max_elems;
    bool no32;           /* fp32 rounds (bf16 casts): skip the fp32 agreement check */
    bool use_init;       /* parameters from their initialisers (seed 1) instead of kind[] */
    bool fill_inputs;    /* f32 inputs get normal values (else they stay zero) */
    double h;            /* finite-difference step; 0: 1e-6 */
    bool richardson;     /* (4 D(h/2) - D(h)) / 3: O(h^4) truncation, allows a larger h */
    double floor;        /* relative errors are taken against max(|grad|, floor); 0: 1e-6 (FD noise ~1e-11) */
} CheckOpts;

static inline double check_value(int kind) {
    double v = check_normal();
    if (kind == 1) return 0.5 + 1.5 * (0.5 + 0.5 * erf(v / sqrt(2.0)));
    if (kind == 2) return 0.3 * v;
    return v;
}

static inline double check_loss(Exec *e, Node *loss) {
    double l;
    exec_read(e, loss, &l, sizeof l);
    return l;
}

/* Central difference of the loss in element i of parameter p (values v, restored afterwards). */
static inline double check_fd(Exec *e, Node *p, Node *loss, double *v, int64_t n, int64_t i, double h, const StepInfo *si) {
    double keepv = v[i];
    v[i] = keepv + h; exec_write(e, p, v, sizeof(double) * (size_t)n); exec_run(e, si);
    double lp = check_loss(e, loss);
    v[i] = keepv - h; exec_write(e, p, v, sizeof(double) * (size_t)n); exec_run(e, si);
    double lm = check_loss(e, loss);
    v[i] = keepv;
    return (lp - lm) / (2 * h);
}

/* Gradient-check every parameter of g for `loss`. Returns the max relative error. */
static inline double check_grads(const char *what, Graph *g, Node *loss, const CheckOpts *o) {
    char err[256];
    int np = g->params.n;
    Node **grads = calloc((size_t)np, sizeof(Node *));
    if (!autodiff_backward(g, loss, grads, err, sizeof err)) { printf("FAIL %s: autodiff: %s\n", what, err); check_failures++; free(grads); return 1; }
    Node **keep = malloc(sizeof(Node *) * (size_t)(np + 1));
    int nk = 0;
    keep[nk++] = loss;
    for (int k = 0; k < np; k++) if (grads[k]) keep[nk++] = grads[k];
    if (!graph_verify(g, err, sizeof err)) { printf("FAIL %s: verify: %s\n", what, err); check_failures++; free(grads); free(keep); return 1; }
    Exec *e = cpu_exec_new_f64(g, keep, nk), *e32 = cpu_exec_new(g, keep, nk);
    Exec *efd = cpu_exec_new_f64(g, &loss, 1);    /* forward only: the finite differences */
    free(keep);
    double **vals = calloc((size_t)np, sizeof(double *));
    for (int k = 0; k < np; k++) {
        Node *p = g->params.items[k];
        int64_t n = shape_numel(p->shape);
        vals[k] = malloc(sizeof(double) * (size_t)n);
        float *f = malloc(sizeof(float) * (size_t)n);
        if (o->use_init) init_param(p, 1, f);
        for (int64_t i = 0; i < n; i++) {
            vals[k][i] = o->use_init ? (double)f[i] : check_value(o->kind[k < 64 ? k : 63]);
            f[i] = (float)vals[k][i];
        }
        exec_write(e, p, vals[k], sizeof(double) * (size_t)n);
        exec_write(efd, p, vals[k], sizeof(double) * (size_t)n);
        exec_write(e32, p, f, sizeof(float) * (size_t)n);
        free(f);
    }
    for (int k = 0; o->fill_inputs && k < g->inputs.n; k++) {
        Node *x = g->inputs.items[k];
        int64_t n = shape_numel(x->shape);
        if (x->dtype == DT_I32) continue;
        double *d = malloc(sizeof(double) * (size_t)n);
        float *f = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) f[i] = (float)(d[i] = check_value(0));
        exec_write(e, x, d, sizeof(double) * (size_t)n);
        exec_write(efd, x, d, sizeof(double) * (size_t)n);
        exec_write(e32, x, f, sizeof(float) * (size_t)n);
        free(d); free(f);
    }
    StepInfo si = {7, 3};
    exec_run(e, &si);
    exec_run(e32, &si);
    double worst = 0, worst32 = 0, h = o->h > 0 ? o->h : 1e-6;
    float l32;
    exec_read(e32, loss, &l32, sizeof l32);
    double l64 = check_loss(e, loss);
    worst32 = fabs(l32 - l64) / fmax(fabs(l64), 1e-3);
    double **an = calloc((size_t)np, sizeof(double *));      /* analytic, read before any perturbation */
    for (int k = 0; k < np; k++) {
        Node *p = g->params.items[k];
        int64_t n = shape_numel(p->shape);
        if (!grads[k]) continue;
        an[k] = malloc(sizeof(double) * (size_t)n);
        float *an32 = malloc(sizeof(float) * (size_t)n);
        exec_read(e, grads[k], an[k], sizeof(double) * (size_t)n);
        exec_read(e32, grads[k], an32, sizeof(float) * (size_t)n);
        double maxa = 1e-5, maxd32 = 0;
        for (int64_t i = 0; i < n; i++) { maxd32 = fmax(maxd32, fabs(an32[i] - an[k][i])); maxa = fmax(maxa, fabs(an[k][i])); }
        worst32 = fmax(worst32, maxd32 / maxa);
        free(an32);
    }
    for (int k = 0; k < np; k++) {
        Node *p = g->params.items[k];
        int64_t n = shape_numel(p->shape);
        if (!grads[k]) continue;
        double maxa = o->floor > 0 ? o->floor : 1e-6, maxd = 0;
        int64_t stride = o->max_elems && n > o->max_elems ? n / o->max_elems : 1;
        for (int64_t i = 0; i < n; i += stride) {
            double fd = check_fd(efd, p, loss, vals[k], n, i, h, &si);
            if (o->richardson) fd = (4 * check_fd(efd, p, loss, vals[k], n, i, h / 2, &si) - fd) / 3;
            maxa = fmax(maxa, fmax(fabs(fd), fabs(an[k][i])));
            maxd = fmax(maxd, fabs(fd - an[k][i]));
        }
        exec_write(efd, p, vals[k], sizeof(double) * (size_t)n);
        if (getenv("CHECK_VERBOSE")) printf("       %-40s rel err %.1e (max |grad| %.1e)\n", p->name, maxd / maxa, maxa);
        worst = fmax(worst, maxd / maxa);
        free(an[k]);
    }
    free(an);
    if (o->no32) worst32 = 0;
    bool pass = worst <= o->tol && worst32 <= 1e-3;
    if (o->no32) printf("%s %s: rel err %.1e (tol %.0e); fp32 not compared (bf16 rounding)\n", pass ? "ok  " : "FAIL", what, worst, o->tol);
    else printf("%s %s: rel err %.1e (tol %.0e); fp32 vs fp64 %.1e (tol 1e-3)\n", pass ? "ok  " : "FAIL", what, worst, o->tol, worst32);
    if (!pass) check_failures++;
    for (int k = 0; k < np; k++) free(vals[k]);
    free(vals); free(grads);
    exec_free(e); exec_free(e32); exec_free(efd);
    return worst;
}
