/* test_grad.c — `vmc grad` end to end on the tiny fine-tuning model (cpu backend): gradients written under the
 * state-dict names agree with central finite differences of the loss that `vmc grad` itself reports, and bad
 * weights or inputs are refused with a message. Run from the repository root (models/tiny.vmc). */
#include "commands.h"
#include "dsl.h"
#include "init.h"
#include "safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL "tiny_ft"
static char dir[] = "/tmp/vmc-grad-XXXXXX";
static const char *SETS[] = {"--set", "batch=2", "--set", "drop_path_rate=0.0", "--set", "depth=1"};

static char *path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* vmc grad with the test's weights/inputs files; returns the exit status. */
static int grad(const char *w, const char *x, const char *out) {
    char *argv[32] = {"grad", "models/tiny.vmc", "--model", MODEL, "--weights", (char *)w, "--inputs", (char *)x,
                      "--out", (char *)out};
    int argc = 10;
    for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) argv[argc++] = xstrdup(SETS[k]);
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

/* Writes every parameter of the model (initialised, seed 7) to W, optionally dropping or reshaping one. */
static Graph *write_weights(const char *w, const char *drop, const char *reshape) {
    DslSet sets[] = {{"batch", "2"}, {"drop_path_rate", "0.0"}, {"depth", "1"}};
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {NULL, 0, sets, 3};
    DslModule *m = dsl_load("models/tiny.vmc", &opt, &d);
    Graph *g = m ? dsl_build_model(m, MODEL, &d) : NULL;
    if (!g) exit(1);
    StWriter *st = safetensors_writer_new();
    PtrVec bufs = {0};
    for (int k = 0; k < g->params.n; k++) {
        Node *p = g->params.items[k];
        if (drop && !strcmp(p->name, drop)) continue;
        float *v = xmalloc(sizeof(float) * (size_t)shape_numel(p->shape));
        init_param(p, 7, v);
        if (!strcmp(p->name, "head.weight"))          /* the fine-tuning head starts at std 2e-5: widen it so */
            for (int64_t i = 0; i < shape_numel(p->shape); i++) v[i] *= 5000;   /* gradients reach the trunk */
        ptrvec_push(&bufs, v);
        int64_t flat = shape_numel(p->shape);
        if (reshape && !strcmp(p->name, reshape)) safetensors_add(st, p->name, ST_F32, 1, &flat, v);
        else safetensors_add(st, p->name, ST_F32, p->shape.ndim, p->shape.d, v);
    }
    char err[256];
    if (!safetensors_write(st, w, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    safetensors_writer_free(st);
    for (int k = 0; k < bufs.n; k++) free(bufs.items[k]);
    ptrvec_free(&bufs);
    dsl_free(m);
    return g;
}

static void write_inputs(const char *x, int size, bool labels) {
    int64_t n = 2 * 1 * size * size, shape[4] = {2, 1, size, size}, two = 2;
    float *img = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++) img[k] = (float)sin(0.37 * (double)k) + 0.1f * (float)(k % 7);
    int32_t lab[2] = {3, 8};
    StWriter *st = safetensors_writer_new();
    safetensors_add(st, "images", ST_F32, 4, shape, img);
    if (labels) safetensors_add(st, "labels", ST_I32, 1, &two, lab);
    char err[256];
    if (!safetensors_write(st, x, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
    safetensors_writer_free(st);
    free(img);
}

/* Perturbs element j of tensor `name` in W by h and returns the loss vmc grad reports. */
static float loss_at(const char *name, int64_t j, float h) {
    char err[256];
    StFile *f = safetensors_read(path("W.safetensors"), err, sizeof err);
    StWriter *st = safetensors_writer_new();
    PtrVec bufs = {0};
    for (int k = 0; k < f->n; k++) {
        const StTensor *t = &f->t[k];
        float *v = xmalloc(sizeof(float) * (size_t)t->numel);
        safetensors_to_f32(t, v);
        if (!strcmp(t->name, name)) v[j] += h;
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

int main(void) {
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    Graph *g = write_weights(path("W.safetensors"), NULL, NULL);
    const Node *img = g->inputs.items[0];
    write_inputs(path("X.safetensors"), (int)img->shape.d[2], true);
    int fails = 0;
    if (grad(path("W.safetensors"), path("X.safetensors"), path("G.safetensors"))) { fprintf(stderr, "vmc grad failed\n"); return 1; }
    char err[256];
    StFile *G = safetensors_read(path("G.safetensors"), err, sizeof err);
    /* For a few tensors, the largest-gradient element against a central difference of the reported loss. */
    const char *names[] = {"head.weight", "patch_embed.proj.weight", "layers.0.mixer.A_log", "layers.0.mixer.dt_proj_c_b.bias",
                           "layers.0.mlp.w1.weight", "pos_embed"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const StTensor *t = safetensors_find(G, names[k]);
        if (!t) { printf("FAIL %s: no gradient written\n", names[k]); fails++; continue; }
        float *gv = xmalloc(sizeof(float) * (size_t)t->numel);
        safetensors_to_f32(t, gv);
        int64_t j = 0;
        for (int64_t i = 1; i < t->numel; i++) if (fabsf(gv[i]) > fabsf(gv[j])) j = i;
        const float h = 1e-2f;
        double fd = ((double)loss_at(names[k], j, h) - (double)loss_at(names[k], j, -h)) / (2.0 * h);
        double rel = fabs(fd - gv[j]) / fmax(fabs(gv[j]), 1e-3);
        bool ok = rel < 3e-2;
        printf("%s %-36s [%lld] grad %+.6e  finite diff %+.6e  rel err %.2e (tol 3e-2)\n", ok ? "ok  " : "FAIL", names[k],
               (long long)j, gv[j], fd, rel);
        fails += !ok;
        free(gv);
    }
    int ngrads = G->n - 1;
    int trainable = 0;
    for (int k = 0; k < g->params.n; k++) trainable += param_trainable(g->params.items[k]);
    printf("%s %d gradients written for %d trainable parameters\n", ngrads == trainable ? "ok  " : "FAIL", ngrads, trainable);
    fails += ngrads != trainable;
    safetensors_free(G);

    /* Refusals: a missing weight, a wrong shape, a missing input. */
    graph_free(write_weights(path("Wmiss.safetensors"), "head.bias", NULL));
    graph_free(write_weights(path("Wshape.safetensors"), NULL, "head.weight"));
    write_inputs(path("Xnolabel.safetensors"), (int)img->shape.d[2], false);
    struct { const char *what, *w, *x; } bad[] = {
        {"missing weight", "Wmiss.safetensors", "X.safetensors"},
        {"wrong shape", "Wshape.safetensors", "X.safetensors"},
        {"missing input", "W.safetensors", "Xnolabel.safetensors"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        printf("-- expecting a refusal (%s):\n", bad[k].what);
        fflush(stdout);
        int rc = grad(path(bad[k].w), path(bad[k].x), path("Gbad.safetensors"));
        printf("%s %s refused with status %d\n", rc == 1 ? "ok  " : "FAIL", bad[k].what, rc);
        fails += rc != 1;
    }
    graph_free(g);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    printf(fails ? "grad: %d check(s) failed\n" : "grad: all checks passed\n", fails);
    return fails ? 1 : 0;
}
