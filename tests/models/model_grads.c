/* model_grads.c — one fp32 forward + backward of a .vmc model on the cpu backend with given weights and inputs,
 * writing the loss and every trainable gradient under the state-dict names (the format of tests/ref/arm_ref.py
 * `grad`), so parity.sh can compare the model files against the independent PyTorch reference.
 *   model_grads FILE MODEL WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors [NAME=VALUE]...
 * INPUTS holds `images` and, for classifiers with a `targets` input, `labels` (turned into one-hot targets). */
#include "autodiff.h"
#include "dsl.h"
#include "exec.h"
#include "safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg, const char *what) {
    fprintf(stderr, "model_grads: %s%s\n", msg, what ? what : "");
    return 1;
}

/* Copies a safetensors tensor into an f32 PARAM/INPUT after checking its shape. */
static bool feed(Exec *e, const Node *n, const StFile *f, const char *name) {
    const StTensor *t = safetensors_find(f, name);
    if (!t) { fprintf(stderr, "model_grads: %s has no tensor '%s'\n", f->path, name); return false; }
    if (t->numel != shape_numel(n->shape)) {
        fprintf(stderr, "model_grads: '%s' has %lld values in %s, the model wants %lld\n", name, (long long)t->numel,
                f->path, (long long)shape_numel(n->shape));
        return false;
    }
    float *v = malloc(sizeof(float) * (size_t)t->numel);
    safetensors_to_f32(t, v);
    exec_write(e, n, v, sizeof(float) * (size_t)t->numel);
    free(v);
    return true;
}

/* One-hot targets [batch, classes] from integer labels. */
static bool feed_targets(Exec *e, const Node *targets, const StFile *f) {
    const StTensor *t = safetensors_find(f, "labels");
    int64_t batch = targets->shape.d[0], classes = targets->shape.d[1];
    if (!t || t->numel != batch) return fail("the inputs need `labels` with one value per image", NULL) == 0;
    float *lab = malloc(sizeof(float) * (size_t)batch), *oh = calloc((size_t)(batch * classes), sizeof(float));
    safetensors_to_f32(t, lab);
    for (int64_t b = 0; b < batch; b++) oh[b * classes + (int64_t)lab[b]] = 1.0f;
    exec_write(e, targets, oh, sizeof(float) * (size_t)(batch * classes));
    free(lab);
    free(oh);
    return true;
}

static int run(Graph *g, const StFile *W, const StFile *X, const char *out) {
    int np = g->params.n;
    Node **grads = calloc((size_t)np + 1, sizeof(Node *)), **keep = calloc((size_t)np + 1, sizeof(Node *));
    char err[512];
    if (!autodiff_backward(g, g->loss, grads, err, sizeof err)) return fail("autodiff: ", err);
    int nk = 0;
    keep[nk++] = g->loss;
    for (int k = 0; k < np; k++) if (grads[k]) keep[nk++] = grads[k];
    Exec *e = cpu_exec_new(g, keep, nk);
    bool ok = true;
    for (int k = 0; k < np && ok; k++) ok = feed(e, g->params.items[k], W, ((Node *)g->params.items[k])->name);
    for (int k = 0; k < g->inputs.n && ok; k++) {
        Node *in = g->inputs.items[k];
        ok = !strcmp(in->name, "targets") ? feed_targets(e, in, X) : feed(e, in, X, in->name);
    }
    if (!ok) return 1;
    StepInfo si = {0, 0};
    exec_run(e, &si);
    StWriter *w = safetensors_writer_new();
    float loss;
    exec_read(e, g->loss, &loss, sizeof loss);
    int64_t one = 1;
    safetensors_add(w, "loss", ST_F32, 1, &one, &loss);
    float **bufs = calloc((size_t)np, sizeof(float *));
    for (int k = 0; k < np; k++) {
        if (!grads[k]) continue;
        Node *p = g->params.items[k];
        bufs[k] = malloc(sizeof(float) * (size_t)shape_numel(p->shape));
        exec_read(e, grads[k], bufs[k], sizeof(float) * (size_t)shape_numel(p->shape));
        safetensors_add(w, p->name, ST_F32, p->shape.ndim, p->shape.d, bufs[k]);
    }
    ok = safetensors_write(w, out, err, sizeof err);
    printf("loss %.8f\n", loss);
    safetensors_writer_free(w);
    for (int k = 0; k < np; k++) free(bufs[k]);
    free(bufs); free(grads); free(keep);
    exec_free(e);
    return ok ? 0 : fail(err, NULL);
}

int main(int argc, char **argv) {
    if (argc < 6) return fail("usage: model_grads FILE MODEL WEIGHTS INPUTS OUT [NAME=VALUE]...", NULL);
    int nsets = argc - 6;
    DslSet *sets = calloc((size_t)nsets + 1, sizeof(DslSet));
    for (int k = 0; k < nsets; k++) {
        char *s = argv[6 + k], *eq = strchr(s, '=');
        if (!eq) return fail("expected NAME=VALUE, got ", s);
        *eq = 0;
        sets[k] = (DslSet){s, eq + 1};
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {NULL, 0, sets, nsets};
    DslModule *m = dsl_load(argv[1], &opt, &d);
    Graph *g = m ? dsl_build_model(m, argv[2], &d) : NULL;
    if (!g || !g->loss) return fail("cannot build a model with a loss: ", argv[2]);
    char err[512];
    StFile *W = safetensors_read(argv[3], err, sizeof err), *X = W ? safetensors_read(argv[4], err, sizeof err) : NULL;
    if (!W || !X) return fail(err, NULL);
    int rc = run(g, W, X, argv[5]);
    safetensors_free(W);
    safetensors_free(X);
    graph_free(g);
    dsl_free(m);
    free(sets);
    return rc;
}
