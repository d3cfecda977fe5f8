/* test_train.c — checkpoints on the cpu backend with a hand-built training graph (linear regression +
 * autodiff + AdamW + clipping + EMA): 6 steps straight give bit-identical losses, params, moments and EMA to
 * 3 steps + save + load into a fresh graph and executor + 3 steps; loading into a different model fails and
 * lists the mismatched names and shapes; --init style loading skips mismatches. Also checkpoint_prune, the
 * out-of-memory message with its batch estimate and the --classes list parser. */
#include "autodiff.h"
#include "checkpoint.h"
#include "exec.h"
#include "optim.h"
#include "safetensors.h"
#include "train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

typedef struct Model { Graph *g; Node *x, *y, *w, *b, *loss; OptimNodes on; Exec *e; } Model;

/* loss = mean((x @ w + b - y)^2); w [3, out], b [out]; AdamW with clipping and EMA. */
static void build(Model *m, int64_t out) {
    m->g = graph_new();
    Graph *g = m->g;
    ParamInfo pi = {0};
    pi.lr_layer = -1;
    m->w = g_param(g, "head.weight", shape_of(2, (int64_t)3, out), DT_F32, pi, LOC_NONE);
    m->b = g_param(g, "head.bias", shape_of(1, out), DT_F32, pi, LOC_NONE);
    m->x = g_input(g, "images", shape_of(2, (int64_t)4, (int64_t)3), DT_F32, LOC_NONE);
    m->y = g_input(g, "targets", shape_of(2, (int64_t)4, out), DT_F32, LOC_NONE);
    Node *d = g_binary(g, OP_SUB, g_binary(g, OP_ADD, g_matmul(g, m->x, m->w, false, false, LOC_NONE), m->b, LOC_NONE), m->y, LOC_NONE);
    Node *s = g_reduce(g, OP_SUM, g_reduce(g, OP_SUM, g_binary(g, OP_MUL, d, d, LOC_NONE), 1, LOC_NONE), 0, LOC_NONE);
    m->loss = g_reshape(g, g_binary(g, OP_MUL, s, g_scalar(g, 1.0 / (double)(4 * out)), LOC_NONE), (Shape){0}, LOC_NONE);
    graph_set_loss(g, m->loss);
    Node *grads[2] = {0};
    char err[256];
    OptimConfig cfg = {0.9, 0.95, 1e-8, 0.05, 0.5, 1.0, 0.9};
    if (!autodiff_backward(g, m->loss, grads, err, sizeof err) || !optim_append(g, grads, &cfg, &m->on, err, sizeof err)) {
        printf("FAIL building: %s\n", err);
        exit(1);
    }
    Node *keep[] = {m->loss, m->on.grad_norm};
    m->e = cpu_exec_new(g, keep, 2);
}

static void init(Model *m) {
    float w[6] = {0.1f, -0.2f, 0.3f, 0.05f, -0.4f, 0.25f}, b[2] = {0.01f, -0.02f};
    exec_write(m->e, m->w, w, sizeof w);
    exec_write(m->e, m->b, b, sizeof b);
    for (int k = 0; k < m->g->states.n; k++) {      /* EMA starts as the model */
        Node *s = m->g->states.items[k];
        if (!strcmp(s->name, "ema.head.weight")) exec_write(m->e, s, w, sizeof w);
        if (!strcmp(s->name, "ema.head.bias")) exec_write(m->e, s, b, sizeof b);
    }
}

/* Step t (0-based) sees a batch that depends only on t, as the loader's cursor guarantees. */
static float step(Model *m, int t) {
    int64_t out = m->w->shape.d[1];
    float x[12], y[12], lr = 0.02f, tt = (float)(t + 1), loss;
    for (int i = 0; i < 12; i++) x[i] = (float)sin(0.7 * i + 1.3 * t);
    for (int r = 0; r < 4; r++)          /* a fixed linear map to learn */
        for (int o = 0; o < out; o++) y[r * out + o] = x[r * 3] * 0.5f - x[r * 3 + 1] * (float)o + x[r * 3 + 2] * 0.3f;
    exec_write(m->e, m->x, x, sizeof x);
    exec_write(m->e, m->y, y, sizeof(float) * 4 * (size_t)out);
    exec_write(m->e, m->on.lr, &lr, sizeof lr);
    exec_write(m->e, m->on.step, &tt, sizeof tt);
    StepInfo si = {7, (uint64_t)t};
    exec_run(m->e, &si);
    exec_read(m->e, m->loss, &loss, sizeof loss);
    return loss;
}

static void destroy(Model *m) { exec_free(m->e); graph_free(m->g); }

static bool same_state(Model *a, Model *b) {
    for (int k = 0; k < a->g->states.n; k++) {
        float x[8], y[8];
        Node *sa = a->g->states.items[k], *sb = b->g->states.items[k];
        size_t n = sizeof(float) * (size_t)shape_numel(sa->shape);
        exec_read(a->e, sa, x, n);
        exec_read(b->e, sb, y, n);
        if (memcmp(x, y, n)) { printf("state %s differs\n", sa->name); return false; }
    }
    return true;
}

static void test_resume(const char *dir) {
    Model full, part, res;
    float lf[6], lp[6];
    build(&full, 2); init(&full);
    for (int t = 0; t < 6; t++) lf[t] = step(&full, t);
    build(&part, 2); init(&part);
    for (int t = 0; t < 3; t++) lp[t] = step(&part, t);
    char path[512], err[512];
    checkpoint_path(dir, 3, path, sizeof path);
    CkptMeta meta = {3, 0, 3, 7, "linreg"};
    EXPECT(checkpoint_save(part.e, part.g, path, &meta, err, sizeof err), "save: %s", err);
    destroy(&part);
    build(&res, 2);
    CkptMeta got;
    EXPECT(checkpoint_load(res.e, res.g, path, CKPT_RESUME, &got, stdout, err, sizeof err), "resume: %s", err);
    EXPECT(got.step == 3 && got.index == 3 && got.seed == 7 && !strcmp(got.model, "linreg"), "metadata");
    for (int t = 3; t < 6; t++) lp[t] = step(&res, t);
    for (int t = 0; t < 6; t++) {
        printf("step %d: straight %.9g  resumed %.9g\n", t + 1, lf[t], lp[t]);
        EXPECT(lf[t] == lp[t], "loss at step %d differs", t + 1);
    }
    EXPECT(lf[5] < lf[0], "loss did not fall");
    EXPECT(same_state(&full, &res), "optimizer/EMA state differs after resume");
    destroy(&full); destroy(&res);
}

/* A checkpoint of another model: every mismatch listed; resume refuses, init skips them. */
static void test_mismatch(const char *dir) {
    char path[512], err[512];
    checkpoint_path(dir, 3, path, sizeof path);
    Model other;
    build(&other, 3);
    char *buf = NULL; size_t n = 0;
    FILE *rep = open_memstream(&buf, &n);
    bool ok = checkpoint_load(other.e, other.g, path, CKPT_RESUME, NULL, rep, err, sizeof err);
    fclose(rep);
    printf("%s%s\n", buf, err);
    EXPECT(!ok, "a checkpoint of another model was accepted for resume");
    EXPECT(strstr(buf, "shape mismatch: head.weight is [3, 3] in the model, [3, 2] in the checkpoint"), "weight listed");
    EXPECT(strstr(buf, "shape mismatch: opt.m.head.bias is [3] in the model, [2] in the checkpoint"), "moment listed");
    EXPECT(strstr(err, path), "error names the path");
    free(buf);
    float w0[9], w1[9];
    exec_read(other.e, other.w, w0, sizeof w0);
    ok = checkpoint_load(other.e, other.g, path, CKPT_INIT, NULL, stdout, err, sizeof err);
    exec_read(other.e, other.w, w1, sizeof w1);
    EXPECT(!ok && strstr(err, "no tensor matches"), "init with nothing matching: %s", err);
    EXPECT(!memcmp(w0, w1, sizeof w0), "a mismatched tensor was written");
    destroy(&other);
}

static void test_prune(const char *dir) {
    char path[512], err[512], latest[512];
    Model m;
    build(&m, 2); init(&m);
    for (int s = 10; s <= 50; s += 10) {
        checkpoint_path(dir, s, path, sizeof path);
        CkptMeta meta = {s, 0, 0, 7, "linreg"};
        EXPECT(checkpoint_save(m.e, m.g, path, &meta, err, sizeof err), "save: %s", err);
        checkpoint_prune(dir, 2);
    }
    for (int s = 3; s <= 50; s += s == 3 ? 7 : 10) {
        checkpoint_path(dir, s, path, sizeof path);
        EXPECT((access(path, F_OK) == 0) == (s >= 40), "prune kept/removed step %d wrongly", s);
    }
    EXPECT(checkpoint_latest(dir, latest, sizeof latest) && strstr(latest, "checkpoint-00000050"), "latest: %s", latest);
    destroy(&m);
}

/* --init from a pretraining checkpoint: scan-direction copies (x_proj_c_b <- x_proj, A_b_log <- A_log, D_c <- D) and
 * pos_embed [1, g1*g1, C] -> [1, g2*g2 + 1, C] (bicubic, zero middle cls row): identity and constant grids. */
static void test_init_remap(const char *dir) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/pre.safetensors", dir);
    float pe_id[8] = {1, 2, 3, 4, 5, 6, 7, 8}, pe_c[8] = {5, 5, 5, 5, 5, 5, 5, 5}, xp[2] = {0.5f, -1}, al[2] = {3, 4}, d[1] = {9};
    int64_t s_pe[3] = {1, 4, 2}, s2[2] = {1, 2}, s1[1] = {1};
    StWriter *w = safetensors_writer_new();
    safetensors_add(w, "pos_embed", ST_F32, 3, s_pe, pe_id);
    safetensors_add(w, "big.pos_embed", ST_F32, 3, s_pe, pe_c);
    safetensors_add(w, "layers.0.mixer.x_proj.weight", ST_F32, 2, s2, xp);
    safetensors_add(w, "layers.0.mixer.A_log", ST_F32, 2, s2, al);
    safetensors_add(w, "layers.0.mixer.D", ST_F32, 1, s1, d);
    EXPECT(safetensors_write(w, path, err, sizeof err), "write: %s", err);
    safetensors_writer_free(w);
    Graph *g = graph_new();
    ParamInfo pi = {0};
    pi.lr_layer = -1;
    Node *pe = g_param(g, "pos_embed", shape_of(3, (int64_t)1, (int64_t)5, (int64_t)2), DT_F32, pi, LOC_NONE);
    Node *big = g_param(g, "big.pos_embed", shape_of(3, (int64_t)1, (int64_t)10, (int64_t)2), DT_F32, pi, LOC_NONE);
    Node *xcb = g_param(g, "layers.0.mixer.x_proj_c_b.weight", shape_of(2, (int64_t)1, (int64_t)2), DT_F32, pi, LOC_NONE);
    Node *ab = g_param(g, "layers.0.mixer.A_b_log", shape_of(2, (int64_t)1, (int64_t)2), DT_F32, pi, LOC_NONE);
    Node *dc = g_param(g, "layers.0.mixer.D_c", shape_of(1, (int64_t)1), DT_F32, pi, LOC_NONE);
    Node *keep[] = {pe};
    Exec *e = cpu_exec_new(g, keep, 1);
    EXPECT(checkpoint_load(e, g, path, CKPT_INIT, NULL, stdout, err, sizeof err), "init: %s", err);
    float v[20], want_id[10] = {1, 2, 3, 4, 0, 0, 5, 6, 7, 8};
    exec_read(e, pe, v, sizeof(float) * 10);
    EXPECT(!memcmp(v, want_id, sizeof want_id), "identity pos_embed: %g %g %g %g %g %g", v[0], v[1], v[4], v[5], v[6], v[9]);
    exec_read(e, big, v, sizeof(float) * 20);
    for (int i = 0; i < 20; i++) EXPECT(fabsf(v[i] - (i / 2 == 4 ? 0.0f : 5.0f)) < 1e-5f, "constant grid row %d: %g", i / 2, v[i]);
    exec_read(e, xcb, v, 8);
    EXPECT(v[0] == 0.5f && v[1] == -1, "x_proj_c_b copy");
    exec_read(e, ab, v, 8);
    EXPECT(v[0] == 3 && v[1] == 4, "A_b_log copy");
    exec_read(e, dc, v, 4);
    EXPECT(v[0] == 9, "D_c copy");
    exec_free(e);
    graph_free(g);
}

/* 1 GiB fixed + 100 MiB per image with 8 GiB free: (8 GiB - 5% - 1 GiB) / 100 MiB = 67.6 -> 66 (even). */
static void test_oom(void) {
    const int64_t G = 1 << 30, M = 1 << 20;
    EXPECT(train_fitting_batch(G, 100 * M, 8 * G) == 66, "fitting batch %lld", (long long)train_fitting_batch(G, 100 * M, 8 * G));
    EXPECT(train_fitting_batch(G, 100 * M, G) == 0, "nothing fits when the fixed part fills the memory");
    EXPECT(train_fitting_batch(0, 100 * M, 150 * M) == 1, "one image fits");
    char msg[1024];
    train_oom_message(G + 256 * 100 * M, 8 * G, G, 100 * M, 256, msg, sizeof msg);
    printf("%s\n", msg);
    EXPECT(strstr(msg, "out of GPU memory: batch 256 needs 26.00 GiB (27917287424 bytes), 8.00 GiB (8589934592 bytes) are free") != NULL, "%s", msg);
    EXPECT(strstr(msg, "pass --batch_size 66") != NULL && strstr(msg, "100.0 MiB per image") != NULL, "%s", msg);
    train_oom_message(G + 256 * 100 * M, G / 2, G, 100 * M, 256, msg, sizeof msg);
    EXPECT(strstr(msg, "even a batch of 1 would not fit") != NULL, "%s", msg);
}

static void test_classes(const char *dir) {
    int32_t v[8];
    char err[512], path[512];
    EXPECT(train_parse_classes("3,5, 7", 10, v, 8, err, sizeof err) == 3 && v[0] == 3 && v[1] == 5 && v[2] == 7, "comma list");
    EXPECT(train_parse_classes("3,10", 10, v, 8, err, sizeof err) == -1 && strstr(err, "'10' is not a class index in [0, 10)"), "%s", err);
    EXPECT(train_parse_classes("2,x", 10, v, 8, err, sizeof err) == -1 && strstr(err, "'x'"), "%s", err);
    EXPECT(train_parse_classes("", 10, v, 8, err, sizeof err) == -1 && strstr(err, "no class indices"), "%s", err);
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("1\n4\n9\n", f);
    fclose(f);
    char spec[520];
    snprintf(spec, sizeof spec, "@%s", path);
    EXPECT(train_parse_classes(spec, 10, v, 8, err, sizeof err) == 3 && v[2] == 9, "@file");
    EXPECT(train_parse_classes("@/nonexistent/classes", 10, v, 8, err, sizeof err) == -1 && strstr(err, "/nonexistent/classes"), "%s", err);
}

int main(void) {
    char dir[] = "/tmp/vmc_ckpt_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_resume(dir);
    test_mismatch(dir);
    test_prune(dir);
    test_init_remap(dir);
    test_oom();
    test_classes(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
    if (failures) { printf("%d failure(s)\n", failures); return 1; }
    printf("test_train: all passed\n");
    return 0;
}
