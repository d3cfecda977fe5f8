/* test_grad.c — `vmc grad` end to end on the tiny fine-tuning and pretraining models (cpu backend): gradients
 * written under the state-dict names agree with central finite differences of the loss that `vmc grad` itself
 * reports, labels and one-hot targets give one loss, and bad weights or inputs are refused with a message. Run from the repository root (models/tiny.vmc). */
#include "commands.h"
#include "dsl.h"
#include "init.h"
#include "safetensors.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One model under test: its name, --set values (NAME=VALUE) and the tensors whose gradients are checked. */
typedef struct Case {
    const char *model;
    const char *sets[4];
    const char *names[10];
} Case;
static const Case *cur;
static bool allow_missing;          /* pass --allow-missing */
static char dir[] = "/tmp/vmc-grad-XXXXXX";

static char *path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* vmc grad with the test's weights/inputs files; returns the exit status. */
static int grad(const char *w, const char *x, const char *out) {
    char *argv[32] = {"grad", "models/tiny.vmc", "--model", (char *)cur->model, "--weights", (char *)w,
                      "--inputs", (char *)x, "--out", (char *)out};
    int argc = 10;
    if (allow_missing) argv[argc++] = xstrdup("--allow-missing");
    for (int k = 0; k < 4 && cur->sets[k]; k++) {
        argv[argc++] = xstrdup("--set");
        argv[argc++] = xstrdup(cur->sets[k]);
    }
    int rc = cmd_grad(argc, argv);
    for (int k = 10; k < argc; k++) free(argv[k]);
    return rc;
}

static float read_loss(const char *g) {
    char err[256];
    StFile *f = safetensors_read(g, err, sizeof err);
    if (!f) { fprintf(stderr, "%s\n", err); exit(1); }
    float loss;
    safetensors_to_f32(safetensors_find(f, "loss"), &loss);
    safetensors_free(f);
    return loss;
}

static Graph *build(void) {
    DslSet sets[4];
    char buf[4][64];
    int n = 0;
    for (; n < 4 && cur->sets[n]; n++) {
        snprintf(buf[n], sizeof buf[n], "%s", cur->sets[n]);
        char *eq = strchr(buf[n], '=');
        *eq = 0;
        sets[n] = (DslSet){buf[n], eq + 1};
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {NULL, 0, sets, n};
    DslModule *m = dsl_load("models/tiny.vmc", &opt, &d);
    Graph *g = m ? dsl_build_model(m, cur->model, &d) : NULL;
    if (!g) exit(1);
    dsl_free(m);
    return g;
}

/* Writes every parameter and buffer of the model (initialised, seed 7) to W, optionally dropping or flattening
 * one. The initialisation is moved where gradients are too small to check by differences: the fine-tuning head
 * (std 2e-5) is widened so gradients reach the trunk, the mixers' out_proj is scaled up and their dt biases
 * raised so the scan parameters (A_log, dt, x_proj) move the loss measurably. */
static Graph *write_weights(const char *w, const char *drop, const char *reshape) {
    Graph *g = build();
    StWriter *st = safetensors_writer_new();
    PtrVec bufs = {0};
    for (int k = 0; k < g->params.n; k++) {
        Node *p = g->params.items[k];
        if (drop && !strcmp(p->name, drop)) continue;
        int64_t n = shape_numel(p->shape);
        float *v = xmalloc(sizeof(float) * (size_t)n);
        init_param(p, 7, v);
        if (!strcmp(p->name, "head.weight")) for (int64_t i = 0; i < n; i++) v[i] *= 5000;
        if (strstr(p->name, "out_proj.weight")) for (int64_t i = 0; i < n; i++) v[i] *= 10;
        if (strstr(p->name, "dt_proj") && strstr(p->name, ".bias")) for (int64_t i = 0; i < n; i++) v[i] += 1;
        ptrvec_push(&bufs, v);
        if (reshape && !strcmp(p->name, reshape)) safetensors_add(st, p->name, ST_F32, 1, &n, v);
        else safetensors_add(st, p->name, ST_F32, p->shape.ndim, p->shape.d, v);
    }
    char err[256];
    if (!safetensors_write(st, w, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    safetensors_writer_free(st);
    for (int k = 0; k < bufs.n; k++) free(bufs.items[k]);
    ptrvec_free(&bufs);
    return g;
}

/* Images, and class labels as "labels" (i32), as one-hot "targets", or neither; or labels with the images
 * flattened to (batch, values), which must be refused. */
enum { NO_LABELS, LABELS, ONE_HOT, FLAT_IMAGES };
static void write_inputs(const char *x, const Node *img, int labels) {
    int64_t n = shape_numel(img->shape), two = 2, oh_shape[2] = {2, 10};
    float *v = xmalloc(sizeof(float) * (size_t)n), oh[20] = {0};
    for (int64_t k = 0; k < n; k++) v[k] = (float)sin(0.37 * (double)k) + 0.1f * (float)(k % 7);
    int32_t lab[2] = {3, 8};
    oh[3] = oh[10 + 8] = 1;
    StWriter *st = safetensors_writer_new();
    int64_t flat[2] = {img->shape.d[0], n / img->shape.d[0]};
    if (labels == FLAT_IMAGES) safetensors_add(st, "images", ST_F32, 2, flat, v);
    else safetensors_add(st, "images", ST_F32, img->shape.ndim, img->shape.d, v);
    if (labels == LABELS || labels == FLAT_IMAGES) safetensors_add(st, "labels", ST_I32, 1, &two, lab);
    if (labels == ONE_HOT) safetensors_add(st, "targets", ST_F32, 2, oh_shape, oh);
    char err[256];
    if (!safetensors_write(st, x, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    safetensors_writer_free(st);
    free(v);
}

/* The loss vmc grad reports with tensor `name` of W moved by h * dir. */
static float loss_at(const char *name, const float *dir_, float h) {
    char err[256];
    StFile *f = safetensors_read(path("W.safetensors"), err, sizeof err);
    StWriter *st = safetensors_writer_new();
    PtrVec bufs = {0};
    for (int k = 0; k < f->n; k++) {
        const StTensor *t = &f->t[k];
        float *v = xmalloc(sizeof(float) * (size_t)t->numel);
        safetensors_to_f32(t, v);
        if (!strcmp(t->name, name)) for (int64_t j = 0; j < t->numel; j++) v[j] += h * dir_[j];
        ptrvec_push(&bufs, v);
        safetensors_add(st, t->name, ST_F32, t->ndim, t->shape, v);
    }
    safetensors_write(st, path("Wp.safetensors"), err, sizeof err);
    safetensors_writer_free(st);
    for (int k = 0; k < bufs.n; k++) free(bufs.items[k]);
    ptrvec_free(&bufs);
    safetensors_free(f);
    if (grad(path("Wp.safetensors"), path("X.safetensors"), path("Gp.safetensors"))) exit(1);
    return read_loss(path("Gp.safetensors"));
}

/* The whole gradient g of one tensor against a central difference of the loss along u = g/|g|: the slope
 * there must be |g| (a wrong, permuted or mis-scaled g gives a smaller or different slope). The step h moves the
 * loss by about 1e-3 (at most |h u| = 0.3, where curvature starts to show); the check is only meaningful when |g| is well above the f32 rounding
 * resolution of the difference, so that is required too. */
static int check_tensor(const StFile *G, const char *name, float loss) {
    const StTensor *t = safetensors_find(G, name);
    if (!t) { printf("FAIL %s: no gradient written\n", name); return 1; }
    float *u = xmalloc(sizeof(float) * (size_t)t->numel);
    safetensors_to_f32(t, u);
    double norm = 0;
    for (int64_t i = 0; i < t->numel; i++) norm += (double)u[i] * u[i];
    norm = sqrt(norm);
    for (int64_t i = 0; i < t->numel && norm > 0; i++) u[i] = (float)(u[i] / norm);
    const float h = (float)fmin(0.3, 1e-3 / fmax(norm, 1e-30));     /* the loss moves by ~1e-3, or h is 0.3 */
    double fd = ((double)loss_at(name, u, h) - (double)loss_at(name, u, -h)) / (2.0 * h);
    double resolution = 4 * FLT_EPSILON * fabs(loss) / (2.0 * h), rel = fabs(fd - norm) / fmax(norm, 1e-30);
    bool ok = rel < 1e-2 && norm > 20 * resolution;
    printf("%s %-34s |g| %.6e  slope along g %.6e  rel err %.2e (tol 1e-2; |g| must exceed %.1e)\n",
           ok ? "ok  " : "FAIL", name, norm, fd, rel, 20 * resolution);
    free(u);
    return !ok;
}

/* Gradients of the case's tensors, the count of gradients written, and (classifiers) "targets" fed directly. */
static int check_case(const Case *c) {
    cur = c;
    printf("-- %s\n", c->model);
    fflush(stdout);
    Graph *g = write_weights(path("W.safetensors"), NULL, NULL);
    const Node *img = g->inputs.items[0];
    bool classifier = g->inputs.n > 1;
    write_inputs(path("X.safetensors"), img, classifier ? LABELS : NO_LABELS);
    if (grad(path("W.safetensors"), path("X.safetensors"), path("G.safetensors"))) { printf("FAIL vmc grad\n"); return 1; }
    float loss = read_loss(path("G.safetensors"));
    char err[256];
    StFile *G = safetensors_read(path("G.safetensors"), err, sizeof err);
    int fails = 0;
    for (int k = 0; k < 10 && c->names[k]; k++) fails += check_tensor(G, c->names[k], loss);
    int trainable = 0;
    for (int k = 0; k < g->params.n; k++) trainable += param_trainable(g->params.items[k]);
    printf("%s %d gradients written for %d trainable parameters\n", G->n - 1 == trainable ? "ok  " : "FAIL", G->n - 1,
           trainable);
    fails += G->n - 1 != trainable;
    safetensors_free(G);
    if (classifier) {                   /* integer labels and the same classes as one-hot targets: one loss */
        write_inputs(path("Xoh.safetensors"), img, ONE_HOT);
        float l2 = grad(path("W.safetensors"), path("Xoh.safetensors"), path("Goh.safetensors")) ? NAN
                 : read_loss(path("Goh.safetensors"));
        bool ok = l2 == loss;
        printf("%s loss from labels %.8f, from one-hot targets %.8f\n", ok ? "ok  " : "FAIL", loss, l2);
        fails += !ok;
    }
    graph_free(g);
    return fails;
}

static const Case FT = {"tiny_ft", {"batch=2", "drop_path_rate=0.0", "depth=1"},
    {"head.weight", "patch_embed.proj.weight", "cls_token", "pos_embed", "layers.0.mixer.A_log",
     "layers.0.mixer.dt_proj_c_b.bias", "layers.0.mixer.conv1d_c.weight", "layers.0.mixer.x_proj_b.weight",
     "layers.0.mixer.D_c_b", "layers.0.mlp.w1.weight"}};
static const Case PRE = {"tiny_pretrain", {"batch=2"},
    {"ar_token", "patch_embed.proj.weight", "layers.0.mixer.A_log", "layers.3.mixer.in_proj.weight",
     "norm_2.weight", "enc2dec.weight", "dec_block.0.attn2.kv.weight", "dec_block.0.attn2.q.bias",
     "ar_pred.weight", "ar_norm.bias"}};

int main(void) {
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    int fails = check_case(&FT) + check_case(&PRE);

    /* Refusals: a missing weight, a wrong shape, a missing input, a wrong input shape. */
    cur = &FT;
    graph_free(write_weights(path("Wmiss.safetensors"), "head.bias", NULL));
    graph_free(write_weights(path("Wshape.safetensors"), NULL, "head.weight"));
    Graph *g = build();
    write_inputs(path("X.safetensors"), g->inputs.items[0], LABELS);
    write_inputs(path("Xnolabel.safetensors"), g->inputs.items[0], NO_LABELS);
    write_inputs(path("Xflat.safetensors"), g->inputs.items[0], FLAT_IMAGES);
    graph_free(write_weights(path("W.safetensors"), NULL, NULL));
    graph_free(g);
    struct { const char *what, *w, *x; } bad[] = {
        {"missing weight", "Wmiss.safetensors", "X.safetensors"},
        {"wrong shape", "Wshape.safetensors", "X.safetensors"},
        {"missing input", "W.safetensors", "Xnolabel.safetensors"},
        {"wrong input shape", "W.safetensors", "Xflat.safetensors"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        printf("-- expecting a refusal (%s):\n", bad[k].what);
        fflush(stdout);
        int rc = grad(path(bad[k].w), path(bad[k].x), path("Gbad.safetensors"));
        printf("%s %s refused with status %d\n", rc == 1 ? "ok  " : "FAIL", bad[k].what, rc);
        fails += rc != 1;
    }
    allow_missing = true;             /* ...unless the model's own initialiser is asked for */
    int rc = grad(path("Wmiss.safetensors"), path("X.safetensors"), path("Gbad.safetensors"));
    printf("%s missing weight with --allow-missing: status %d\n", rc == 0 ? "ok  " : "FAIL", rc);
    fails += rc != 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    printf(fails ? "grad: %d check(s) failed\n" : "grad: all checks passed\n", fails);
    return fails ? 1 : 0;
}
