/* test_optim.c — the optimizer graph (compiler/optim.c) on the cpu backend against hand-computed steps:
 * AdamW with decoupled weight decay and bias correction, parameter groups (decay / no decay, layer-wise lr),
 * clipping, the grad-norm output, EMA; and the warmup + cosine schedule (runtime/schedule.c).
 * Gradients are INPUT nodes fed by the test, so the optimizer is checked independently of autodiff. */
#include "exec.h"
#include "graph.h"
#include "optim.h"
#include "schedule.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK_NEAR(what, got, want, tol) check_near(what, (double)(got), (double)(want), tol, __LINE__)
static void check_near(const char *what, double got, double want, double tol, int line) {
    double err = fabs(got - want) / fmax(1.0, fabs(want));
    if (!(err <= tol)) { printf("FAIL line %d: %s = %.9g, want %.9g (rel err %.2g > %.2g)\n", line, what, got, want, err, tol); failures++; }
}

static ParamInfo info(uint32_t tags, int lr_layer) {
    ParamInfo p = {0};
    p.init = INIT_ZEROS; p.tags = tags; p.lr_layer = lr_layer;
    return p;
}

/* A graph with three parameters and their gradients as inputs; the optimizer appended. */
typedef struct Fixture { Graph *g; Node *p[3], *gr[3]; OptimNodes on; Exec *e; } Fixture;

static void fixture(Fixture *f, const OptimConfig *cfg) {
    f->g = graph_new();
    f->p[0] = g_param(f->g, "a.weight", shape_of(2, (int64_t)2, (int64_t)2), DT_F32, info(0, 0), LOC_NONE);
    f->p[1] = g_param(f->g, "a.bias", shape_of(1, (int64_t)2), DT_F32, info(0, 1), LOC_NONE);
    f->p[2] = g_param(f->g, "tok", shape_of(2, (int64_t)1, (int64_t)3), DT_F32, info(TAG_NODECAY, 2), LOC_NONE);
    Node *grads[3];
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "grad%d", k);
        grads[k] = f->gr[k] = g_input(f->g, name, f->p[k]->shape, DT_F32, LOC_NONE);
    }
    char err[256];
    if (!optim_append(f->g, grads, cfg, &f->on, err, sizeof err)) { printf("FAIL optim_append: %s\n", err); exit(1); }
    char verr[256];
    if (!graph_verify(f->g, verr, sizeof verr)) { printf("FAIL verify: %s\n", verr); exit(1); }
    Node *keep[] = {f->on.grad_norm};
    f->e = cpu_exec_new(f->g, keep, 1);
}

static void put(Fixture *f, Node *n, const float *v) { exec_write(f->e, n, v, sizeof(float) * (size_t)shape_numel(n->shape)); }
static void get(Fixture *f, Node *n, float *v) { exec_read(f->e, n, v, sizeof(float) * (size_t)shape_numel(n->shape)); }
static Node *state(Fixture *f, const char *prefix, int k) {
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, f->p[k]->name);
    for (int s = 0; s < f->g->states.n; s++) {
        Node *n = f->g->states.items[s];
        if (!strcmp(n->name, name)) return n;
    }
    return NULL;
}

static void run_step(Fixture *f, float lr, int t) {
    float ft = (float)t;
    put(f, f->on.lr, &lr);
    put(f, f->on.step, &ft);
    StepInfo si = {1, (uint64_t)t};
    exec_run(f->e, &si);
}

/* Step 1 of AdamW has |update| = lr (m_hat / sqrt(v_hat) = sign g): checked with literal numbers. */
static void test_first_step_literal(void) {
    OptimConfig cfg = {0.9, 0.999, 1e-8, 0.1, 0, 1, 0};
    Fixture f;
    fixture(&f, &cfg);
    float w[4] = {1, -2, 0.5f, 0}, b[2] = {1, 1}, tok[3] = {1, 1, 1};
    float gw[4] = {0.5f, 0.5f, -1, 2}, gb[2] = {-3, 0}, gt[3] = {1, 1, 1};
    put(&f, f.p[0], w); put(&f, f.p[1], b); put(&f, f.p[2], tok);
    put(&f, f.gr[0], gw); put(&f, f.gr[1], gb); put(&f, f.gr[2], gt);
    run_step(&f, 0.1f, 1);
    get(&f, f.p[0], w); get(&f, f.p[1], b); get(&f, f.p[2], tok);
    /* weight: decayed by (1 - 0.1*0.1) = 0.99, then minus 0.1 * sign(g) */
    CHECK_NEAR("w[0]", w[0], 0.99 - 0.1, 1e-6);
    CHECK_NEAR("w[1]", w[1], -1.98 - 0.1, 1e-6);
    CHECK_NEAR("w[2]", w[2], 0.495 + 0.1, 1e-6);
    CHECK_NEAR("w[3]", w[3], 0.0 - 0.1, 1e-6);
    /* bias: 1-D, no decay; zero gradient leaves it unchanged */
    CHECK_NEAR("b[0]", b[0], 1.1, 1e-6);
    CHECK_NEAR("b[1]", b[1], 1.0, 1e-6);
    /* tok: nodecay tag */
    CHECK_NEAR("tok[0]", tok[0], 0.9, 1e-6);
    float m[4], v[4], norm;
    get(&f, state(&f, "opt.m.", 0), m);
    get(&f, state(&f, "opt.v.", 0), v);
    CHECK_NEAR("m", m[3], 0.2, 1e-6);
    CHECK_NEAR("v", v[3], 0.004, 1e-6);
    exec_read(f.e, f.on.grad_norm, &norm, sizeof norm);
    CHECK_NEAR("grad_norm", norm, sqrt(0.25 + 0.25 + 1 + 4 + 9 + 3), 1e-6);
    exec_free(f.e); graph_free(f.g);
}

/* Reference AdamW in double, written from the torch.optim.AdamW documentation (one element). */
typedef struct Ref { double p, m, v, e; } Ref;
static void ref_step(Ref *r, double g, double lr, double wd, int t, const OptimConfig *c) {
    r->p *= 1 - lr * wd;
    r->m = c->beta1 * r->m + (1 - c->beta1) * g;
    r->v = c->beta2 * r->v + (1 - c->beta2) * g * g;
    double mh = r->m / (1 - pow(c->beta1, t)), vh = r->v / (1 - pow(c->beta2, t));
    r->p -= lr * mh / (sqrt(vh) + c->eps);
    r->e = c->ema_decay * r->e + (1 - c->ema_decay) * r->p;
}

/* Several steps with clipping, layer-wise lr decay and EMA against the double reference. */
static void test_groups_clip_ema(void) {
    OptimConfig cfg = {0.9, 0.95, 1e-8, 0.05, 1.0, 0.5, 0.9};
    Fixture f;
    fixture(&f, &cfg);
    CHECK_NEAR("num_layers", optim_num_layers(f.g), 2, 0);
    CHECK_NEAR("scale a", optim_lr_scale(f.g, f.p[0], 0.5), 0.25, 0);
    CHECK_NEAR("scale tok", optim_lr_scale(f.g, f.p[2], 0.5), 1.0, 0);
    const double scale[3] = {0.25, 0.5, 1.0}, wd[3] = {0.05, 0, 0};
    float init[3][4] = {{0.3f, -0.7f, 1.2f, 0.1f}, {0.5f, -0.5f}, {0.2f, 0.4f, -0.6f}};
    Ref ref[3][4];
    int n[3] = {4, 2, 3};
    for (int k = 0; k < 3; k++) {
        put(&f, f.p[k], init[k]);
        put(&f, state(&f, "ema.", k), init[k]);     /* the trainer copies the model into the EMA at start */
        for (int i = 0; i < n[k]; i++) ref[k][i] = (Ref){init[k][i], 0, 0, init[k][i]};
    }
    for (int t = 1; t <= 5; t++) {
        float gr[3][4];
        double ss = 0;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < n[k]; i++) { gr[k][i] = (float)(sin(t * 1.3 + k * 0.7 + i) * (t == 2 ? 10 : 0.3)); ss += gr[k][i] * gr[k][i]; }
        for (int k = 0; k < 3; k++) put(&f, f.gr[k], gr[k]);
        double lr = 0.01 * t, clip = fmin(1.0, 1.0 / (sqrt(ss) + 1e-6));
        run_step(&f, (float)lr, t);
        float norm;
        exec_read(f.e, f.on.grad_norm, &norm, sizeof norm);
        CHECK_NEAR("grad_norm", norm, sqrt(ss), 1e-6);
        for (int k = 0; k < 3; k++) {
            float p[4], e[4];
            get(&f, f.p[k], p);
            get(&f, state(&f, "ema.", k), e);
            for (int i = 0; i < n[k]; i++) {
                ref_step(&ref[k][i], gr[k][i] * clip, lr * scale[k], wd[k], t, &cfg);
                CHECK_NEAR(f.p[k]->name, p[i], ref[k][i].p, 2e-6);
                CHECK_NEAR("ema", e[i], ref[k][i].e, 2e-6);
            }
        }
    }
    printf("adamw+clip+layer decay+ema: 5 steps match the double reference\n");
    exec_free(f.e); graph_free(f.g);
}

/* Groups: ndim <= 1 and nodecay params are not decayed; >= 2-D ones (A_log, conv1d weight, ar_token) are. */
static void test_decay_groups(void) {
    Graph *g = graph_new();
    Node *alog = g_param(g, "layers.0.mixer.A_log", shape_of(2, (int64_t)4, (int64_t)16), DT_F32, info(0, -1), LOC_NONE);
    Node *conv = g_param(g, "layers.0.mixer.conv1d.weight", shape_of(3, (int64_t)4, (int64_t)1, (int64_t)4), DT_F32, info(0, -1), LOC_NONE);
    Node *d = g_param(g, "layers.0.mixer.D", shape_of(1, (int64_t)4), DT_F32, info(0, -1), LOC_NONE);
    Node *pos = g_param(g, "pos_embed", shape_of(3, (int64_t)1, (int64_t)5, (int64_t)4), DT_F32, info(TAG_NODECAY, 0), LOC_NONE);
    if (!optim_decays(alog) || !optim_decays(conv) || optim_decays(d) || optim_decays(pos)) {
        printf("FAIL decay groups\n");
        failures++;
    }
    CHECK_NEAR("untagged lr scale", optim_lr_scale(g, alog, 0.65), 1.0, 0);
    graph_free(g);
}

static void test_schedule(void) {
    Schedule s = {1.0, 0.1, 2, 10, 10};
    CHECK_NEAR("lr it0", schedule_lr(&s, 0), 0.0, 0);
    CHECK_NEAR("lr warm", schedule_lr(&s, 5), 0.25, 1e-12);
    CHECK_NEAR("lr peak", schedule_lr(&s, 20), 1.0, 1e-12);
    CHECK_NEAR("lr mid", schedule_lr(&s, 60), 0.1 + 0.9 * 0.5, 1e-12);
    CHECK_NEAR("lr quarter", schedule_lr(&s, 40), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI / 4)), 1e-12);
    CHECK_NEAR("lr end", schedule_lr(&s, 100), 0.1, 1e-12);
    CHECK_NEAR("lr past end", schedule_lr(&s, 150), 0.1, 1e-12);
    CHECK_NEAR("ARM-B lr", schedule_scaled_lr(1.5e-4, 2048), 1.2e-3, 1e-12);
    CHECK_NEAR("ARM ft lr", schedule_scaled_lr(5e-4, 1024), 2e-3, 1e-12);
}

int main(void) {
    test_first_step_literal();
    test_groups_clip_ema();
    test_decay_groups();
    test_schedule();
    if (failures) { printf("%d failure(s)\n", failures); return 1; }
    printf("test_optim: all passed\n");
    return 0;
}
