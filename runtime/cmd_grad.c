/* cmd_grad.c — `vmc grad`: one forward + backward of a model on given weights and inputs, on either backend,
 * writing the loss and every trainable parameter's gradient under the reference state-dict names. It is how vmc is
 * checked against the independent PyTorch implementation (tests/ref/arm_ref.py, scripts/parity.sh). */
#include "autodiff.h"
#include "init.h"
#include "commands.h"
#include "cuda_api.h"
#include "cuda_exec.h"
#include "dsl.h"
#include "exec.h"
#include "safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct GradArgs {
    const char *file, *model, *weights, *inputs, *out, *backend, *precision;
    DslSet sets[64]; int nsets;
    bool allow_missing, help;
} GradArgs;

static void usage(FILE *f) {
    fprintf(f,
        "usage: vmc grad FILE --model NAME --weights W.safetensors --inputs X.safetensors --out G.safetensors\n"
        "                [--precision fp32|bf16] [--backend cpu|cuda] [--set NAME=VALUE]... [--allow-missing]\n"
        "  Runs one forward and backward pass (no optimizer step) with the parameters and buffers of W (reference\n"
        "  state-dict names) and the inputs of X (\"images\"; for classifiers \"labels\" — turned into one-hot\n"
        "  targets — or \"targets\"), and writes \"loss\" and one f32 gradient per trainable parameter to G.\n"
        "  Drop path and other randomness use seed 0, step 0; pass --set drop_path_rate=0 for parity checks.\n"
        "  --model NAME        the model in FILE\n"
        "  --weights W         parameters and buffers (safetensors, reference state-dict names)\n"
        "  --inputs X          the model's inputs (safetensors)\n"
        "  --out G             where \"loss\" and the gradients go (safetensors)\n"
        "  --backend B         cpu (default) or cuda\n"
        "  --precision P       fp32 (default) or bf16 (cuda: bf16 GEMM operands; the cpu computes in fp32)\n"
        "  --set NAME=VALUE    override a model constant (repeatable)\n"
        "  --allow-missing     keep the model's own initialisation for parameters W lacks\n");
}

static bool parse(int argc, char **argv, GradArgs *a) {
    memset(a, 0, sizeof *a);
    a->backend = "cpu";
    a->precision = "fp32";
    for (int k = 1; k < argc; k++) {
        const char *s = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        const char **slot = !strcmp(s, "--model") ? &a->model : !strcmp(s, "--weights") ? &a->weights
                          : !strcmp(s, "--inputs") ? &a->inputs : !strcmp(s, "--out") ? &a->out
                          : !strcmp(s, "--backend") ? &a->backend : !strcmp(s, "--precision") ? &a->precision : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { a->help = true; return true; }
        if (!strcmp(s, "--allow-missing")) { a->allow_missing = true; continue; }
        if (slot || !strcmp(s, "--set")) {
            if (!v) { fprintf(stderr, "vmc grad: %s needs a value\n", s); return false; }
            k++;
            if (slot) { *slot = v; continue; }
            char *eq = strchr(argv[k], '=');
            if (!eq || eq == argv[k]) { fprintf(stderr, "vmc grad: --set expects NAME=VALUE, found '%s'\n", v); return false; }
            if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0])) { fprintf(stderr, "vmc grad: too many --set\n"); return false; }
            *eq = 0;
            a->sets[a->nsets++] = (DslSet){argv[k], eq + 1};
            continue;
        }
        if (s[0] == '-') { fprintf(stderr, "vmc grad: unknown option '%s' (see vmc grad --help)\n", s); return false; }
        if (a->file) { fprintf(stderr, "vmc grad: one FILE only (found '%s' and '%s')\n", a->file, s); return false; }
        a->file = s;
    }
    if (!a->file || !a->model || !a->weights || !a->inputs || !a->out) {
        fprintf(stderr, "vmc grad: FILE, --model, --weights, --inputs and --out are required\n");
        usage(stderr);
        return false;
    }
    if (strcmp(a->backend, "cpu") && strcmp(a->backend, "cuda")) {
        fprintf(stderr, "vmc grad: --backend must be cpu or cuda, found '%s'\n", a->backend);
        return false;
    }
    if (strcmp(a->precision, "fp32") && strcmp(a->precision, "bf16")) {
        fprintf(stderr, "vmc grad: --precision must be fp32 or bf16, found '%s'\n", a->precision);
        return false;
    }
    return true;
}

/* Every PARAM of the model from W, by name and shape; all mismatches are listed before giving up. */
static bool feed_params(Exec *e, const Graph *g, const StFile *W, bool allow_missing) {
    int bad = 0;
    for (int k = 0; k < g->params.n; k++) {
        const Node *p = g->params.items[k];
        const StTensor *t = safetensors_find(W, p->name);
        char want[96];
        if (!t && allow_missing) {                    /* the model's own initialiser, seed 0 */
            float *v = xmalloc(sizeof(float) * (size_t)shape_numel(p->shape));
            init_param(p, 0, v);
            exec_write(e, p, v, sizeof(float) * (size_t)shape_numel(p->shape));
            free(v);
            continue;
        }
        if (!t) {
            fprintf(stderr, "vmc grad: %s: missing tensor '%s' %s\n", W->path, p->name, shape_str(p->shape, want, 96));
            bad++;
            continue;
        }
        Shape have = shape_make(t->ndim <= MAX_DIMS ? t->ndim : MAX_DIMS, t->shape);
        if (t->ndim > MAX_DIMS || !shape_eq(have, p->shape)) {
            char got[96];
            fprintf(stderr, "vmc grad: %s: '%s' has shape %s, the model wants %s\n", W->path, p->name,
                    shape_str(have, got, 96), shape_str(p->shape, want, 96));
            bad++;
            continue;
        }
        float *v = xmalloc(sizeof(float) * (size_t)t->numel);
        safetensors_to_f32(t, v);
        exec_write(e, p, v, sizeof(float) * (size_t)t->numel);
        free(v);
    }
    for (int k = 0; k < W->n; k++)
        if (!graph_find_param(g, W->t[k].name))
            fprintf(stderr, "vmc grad: note: %s: tensor '%s' is not a parameter of the model (ignored)\n", W->path, W->t[k].name);
    return bad == 0;
}

/* The model's inputs from X; a "targets" input may come from integer "labels" as one-hot rows. */
static bool feed_inputs(Exec *e, const Graph *g, const StFile *X) {
    for (int k = 0; k < g->inputs.n; k++) {
        const Node *in = g->inputs.items[k];
        int64_t n = shape_numel(in->shape);
        const StTensor *t = safetensors_find(X, in->name);
        bool one_hot = !t && !strcmp(in->name, "targets") && in->shape.ndim == 2;
        if (one_hot) t = safetensors_find(X, "labels");
        if (!t) {
            fprintf(stderr, "vmc grad: %s: missing input '%s'%s\n", X->path, in->name,
                    one_hot ? " (or integer class 'labels')" : "");
            return false;
        }
        Shape want = one_hot ? shape_make(1, in->shape.d) : in->shape;
        Shape have = shape_make(t->ndim <= MAX_DIMS ? t->ndim : MAX_DIMS, t->shape);
        if (t->ndim > MAX_DIMS || !shape_eq(have, want)) {
            char hs[96], ws[96];
            fprintf(stderr, "vmc grad: %s: '%s' has shape %s, the model wants %s%s\n", X->path, t->name,
                    shape_str(have, hs, 96), shape_str(want, ws, 96),
                    t->ndim >= 1 && t->shape[0] != want.d[0] ? " (the batch is set with --set batch=N)" : "");
            return false;
        }
        float *v = xmalloc(sizeof(float) * (size_t)t->numel);
        safetensors_to_f32(t, v);
        if (one_hot) {
            int64_t classes = in->shape.d[1];
            float *oh = xcalloc((size_t)n, sizeof(float));
            for (int64_t b = 0; b < want.d[0]; b++) {
                int64_t c = (int64_t)v[b];
                if (c < 0 || c >= classes) {
                    fprintf(stderr, "vmc grad: %s: label %lld of image %lld is outside 0..%lld\n", X->path, (long long)c,
                            (long long)b, (long long)classes - 1);
                    free(v); free(oh);
                    return false;
                }
                oh[b * classes + c] = 1.0f;
            }
            free(v);
            v = oh;
        }
        if (in->dtype == DT_I32) {
            int32_t *iv = xmalloc(sizeof(int32_t) * (size_t)n);
            for (int64_t j = 0; j < n; j++) iv[j] = (int32_t)v[j];
            exec_write(e, in, iv, sizeof(int32_t) * (size_t)n);
            free(iv);
        } else {
            exec_write(e, in, v, sizeof(float) * (size_t)n);
        }
        free(v);
    }
    return true;
}

static bool write_grads(Exec *e, const Graph *g, Node **grads, const char *out) {
    StWriter *w = safetensors_writer_new();
    float loss;
    exec_read(e, g->loss, &loss, sizeof loss);
    int64_t one = 1;
    safetensors_add(w, "loss", ST_F32, 1, &one, &loss);
    PtrVec bufs = {0};
    for (int k = 0; k < g->params.n; k++) {
        if (!grads[k]) continue;
        const Node *p = g->params.items[k];
        float *b = xmalloc(sizeof(float) * (size_t)shape_numel(p->shape));
        exec_read(e, grads[k], b, sizeof(float) * (size_t)shape_numel(p->shape));
        safetensors_add(w, p->name, ST_F32, p->shape.ndim, p->shape.d, b);
        ptrvec_push(&bufs, b);
    }
    char err[512];
    bool ok = safetensors_write(w, out, err, sizeof err);
    if (ok) printf("loss %.8f  (%d gradients written to %s)\n", loss, bufs.n, out);
    else fprintf(stderr, "vmc grad: %s\n", err);
    safetensors_writer_free(w);
    for (int k = 0; k < bufs.n; k++) free(bufs.items[k]);
    ptrvec_free(&bufs);
    return ok;
}

int cmd_grad(int argc, char **argv) {
    GradArgs a;
    if (!parse(argc, argv, &a)) return 1;
    if (a.help) { usage(stdout); return 0; }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = {NULL, 0, a.sets, a.nsets};
    DslModule *m = dsl_load(a.file, &opt, &d);
    Graph *g = m ? dsl_build_model(m, a.model, &d) : NULL;
    char err[512];
    StFile *W = NULL, *X = NULL;
    Exec *e = NULL;
    Node **grads = NULL, **keep = NULL;
    int rc = 1;
    if (!g) goto done;
    if (!g->loss) { fprintf(stderr, "vmc grad: model '%s' has no loss\n", a.model); goto done; }
    if (!(W = safetensors_read(a.weights, err, sizeof err)) || !(X = safetensors_read(a.inputs, err, sizeof err))) {
        fprintf(stderr, "vmc grad: %s\n", err);
        goto done;
    }
    grads = xcalloc((size_t)g->params.n + 1, sizeof(Node *));
    keep = xcalloc((size_t)g->params.n + 1, sizeof(Node *));
    if (!autodiff_backward(g, g->loss, grads, err, sizeof err)) { fprintf(stderr, "vmc grad: %s\n", err); goto done; }
    int nk = 0;
    keep[nk++] = g->loss;
    for (int k = 0; k < g->params.n; k++) if (grads[k]) keep[nk++] = grads[k];
    bool bf16 = !strcmp(a.precision, "bf16");
    if (!strcmp(a.backend, "cuda")) {
        if (!cuda_available()) { fprintf(stderr, "vmc grad: --backend cuda: no usable GPU on this machine\n"); rc = 2; goto done; }
        e = cuda_exec_create(g, keep, nk, &(CudaExecOptions){.bf16 = bf16}, err, sizeof err);
        if (!e) { fprintf(stderr, "vmc grad: %s\n", err); rc = 2; goto done; }
    } else {
        if (bf16) fprintf(stderr, "vmc grad: note: the cpu backend computes in fp32 (--precision bf16 applies to cuda)\n");
        e = cpu_exec_new(g, keep, nk);
    }
    if (!feed_params(e, g, W, a.allow_missing) || !feed_inputs(e, g, X)) goto done;
    exec_run(e, &(StepInfo){0, 0});
    rc = write_grads(e, g, grads, a.out) ? 0 : 2;
done:
    exec_free(e);
    free(grads); free(keep);
    safetensors_free(W); safetensors_free(X);
    graph_free(g);
    dsl_free(m);
    return rc;
}
