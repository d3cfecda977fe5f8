/* checkpoint.c — saving and loading training state through safetensors (see checkpoint.h): tensors are read
 * from and written into an Exec by node, so any backend works; mismatches are listed by name and shape. */
#include "checkpoint.h"
#include "safetensors.h"
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT "vmc-checkpoint-1"

static bool fail(char *err, int errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, int errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
    return false;
}

static StDType st_dtype(DType t) {
    switch (t) { case DT_F32: return ST_F32; case DT_BF16: return ST_BF16; case DT_I32: return ST_I32; }
    UNREACHABLE();
}

static size_t node_bytes(const Node *n) { return (size_t)shape_numel(n->shape) * (size_t)dtype_size(n->dtype); }

static void add_node(StWriter *w, Exec *e, const Node *n, void **bufs, int *nb) {
    void *b = xmalloc(node_bytes(n) ? node_bytes(n) : 1);
    exec_read(e, n, b, node_bytes(n));
    bufs[(*nb)++] = b;
    safetensors_add(w, n->name, st_dtype(n->dtype), n->shape.ndim, n->shape.d, b);
}

bool checkpoint_save(Exec *e, const Graph *g, const char *path, const CkptMeta *m, char *err, int errlen) {
    StWriter *w = safetensors_writer_new();
    int total = g->params.n + g->states.n, nb = 0;
    void **bufs = xcalloc((size_t)(total ? total : 1), sizeof(void *));
    for (int k = 0; k < g->params.n; k++) add_node(w, e, g->params.items[k], bufs, &nb);
    for (int k = 0; k < g->states.n; k++) add_node(w, e, g->states.items[k], bufs, &nb);
    char v[64];
    safetensors_set_meta(w, "format", FORMAT);
    safetensors_set_meta(w, "model", m->model);
    snprintf(v, sizeof v, "%" PRId64, m->step); safetensors_set_meta(w, "step", v);
    snprintf(v, sizeof v, "%" PRId64, m->epoch); safetensors_set_meta(w, "epoch", v);
    snprintf(v, sizeof v, "%" PRId64, m->index); safetensors_set_meta(w, "index", v);
    snprintf(v, sizeof v, "%" PRIu64, m->seed); safetensors_set_meta(w, "seed", v);
    bool ok = safetensors_write(w, path, err, errlen);
    safetensors_writer_free(w);
    for (int k = 0; k < nb; k++) free(bufs[k]);
    free(bufs);
    return ok;
}

/* ---------------------------------------------------------------- loading */
static bool same_shape(const StTensor *t, const Node *n) {
    if (t->ndim != n->shape.ndim) return false;
    for (int k = 0; k < t->ndim; k++) if (t->shape[k] != n->shape.d[k]) return false;
    return true;
}

static void st_shape_str(const StTensor *t, char *buf, int n) {
    Shape s = {0};
    s.ndim = t->ndim > MAX_DIMS ? MAX_DIMS : t->ndim;
    for (int k = 0; k < s.ndim; k++) s.d[k] = t->shape[k];
    shape_str(s, buf, n);
}

/* Copies t into node n (converting to f32 for f32 nodes); false when the dtypes cannot be converted. */
static bool load_tensor(Exec *e, const Node *n, const StTensor *t) {
    size_t numel = (size_t)shape_numel(n->shape);
    if (n->dtype == DT_F32) {
        float *b = xmalloc(sizeof(float) * (numel ? numel : 1));
        safetensors_to_f32(t, b);
        exec_write(e, n, b, sizeof(float) * numel);
        free(b);
        return true;
    }
    if (st_dtype(n->dtype) != t->dtype) return false;
    void *b = xmalloc(node_bytes(n) ? node_bytes(n) : 1);
    memcpy(b, t->data, node_bytes(n));
    exec_write(e, n, b, node_bytes(n));
    free(b);
    return true;
}

typedef struct LoadCtx {
    Exec *e; const StFile *f; CkptMode mode; FILE *report;
    bool *used;        /* by tensor index in f: consumed */
    int matched, bad;
} LoadCtx;

static void load_node(LoadCtx *c, const Node *n, bool required) {
    char key[600], a[96], b[96];
    const StTensor *t = safetensors_find(c->f, n->name);
    if (t) c->used[t - c->f->t] = true;
    if (c->mode == CKPT_INIT_EMA) {      /* the EMA copy replaces the model's own weights when present */
        snprintf(key, sizeof key, "ema.%s", n->name);
        const StTensor *e = safetensors_find(c->f, key);
        if (e) t = e;
    }
    if (!t) {
        if (required) { fprintf(c->report, "  missing in checkpoint: %s %s\n", n->name, shape_str(n->shape, a, 96)); c->bad++; }
        return;
    }
    c->used[t - c->f->t] = true;
    if (!same_shape(t, n)) {
        st_shape_str(t, b, 96);
        fprintf(c->report, "  shape mismatch: %s is %s in the model, %s in the checkpoint\n", n->name, shape_str(n->shape, a, 96), b);
        c->bad++;
        return;
    }
    if (!load_tensor(c->e, n, t)) {
        fprintf(c->report, "  dtype mismatch: %s is %s in the model, %s in the checkpoint\n", n->name, dtype_name(n->dtype),
                safetensors_dtype_name(t->dtype));
        c->bad++;
        return;
    }
    c->matched++;
}

static void read_meta(const StFile *f, CkptMeta *m) {
    memset(m, 0, sizeof *m);
    const char *v;
    if ((v = safetensors_meta(f, "step"))) m->step = strtoll(v, NULL, 10);
    if ((v = safetensors_meta(f, "epoch"))) m->epoch = strtoll(v, NULL, 10);
    if ((v = safetensors_meta(f, "index"))) m->index = strtoll(v, NULL, 10);
    if ((v = safetensors_meta(f, "seed"))) m->seed = strtoull(v, NULL, 10);
    if ((v = safetensors_meta(f, "model"))) snprintf(m->model, sizeof m->model, "%s", v);
}

bool checkpoint_load(Exec *e, const Graph *g, const char *path, CkptMode mode, CkptMeta *m, FILE *report,
                     char *err, int errlen) {
    StFile *f = safetensors_read(path, err, errlen);
    if (!f) return false;
    if (mode == CKPT_RESUME && !safetensors_meta(f, "format"))
        fprintf(report, "%s: note: not written by vmc (no format metadata); loading by name\n", path);
    LoadCtx c = {e, f, mode, report, xcalloc((size_t)(f->n ? f->n : 1), sizeof(bool)), 0, 0};
    fprintf(report, "%s: checking %d tensors against the model\n", path, f->n);
    for (int k = 0; k < g->params.n; k++) load_node(&c, g->params.items[k], true);
    for (int k = 0; k < g->states.n && mode == CKPT_RESUME; k++) load_node(&c, g->states.items[k], true);
    int unexpected = 0;
    for (int k = 0; k < f->n; k++) {
        if (c.used[k]) continue;
        bool aux = !strncmp(f->t[k].name, "opt.", 4) || !strncmp(f->t[k].name, "ema.", 4);
        if (mode != CKPT_RESUME && aux) continue;      /* optimizer state of a training checkpoint: not weights */
        char s[96];
        st_shape_str(&f->t[k], s, 96);
        fprintf(report, "  unexpected in checkpoint: %s %s\n", f->t[k].name, s);
        unexpected++;
    }
    if (m) read_meta(f, m);
    bool ok = true;
    if (mode == CKPT_RESUME && (c.bad || unexpected))
        ok = fail(err, errlen, "%s: does not match the model (%d missing or mismatched, %d unexpected tensors; listed above)",
                  path, c.bad, unexpected);
    else if (!c.matched)
        ok = fail(err, errlen, "%s: no tensor matches the model (%d in the file)", path, f->n);
    else
        fprintf(report, "%s: loaded %d tensors (%d mismatched, %d unexpected)\n", path, c.matched, c.bad, unexpected);
    free(c.used);
    safetensors_free(f);
    return ok;
}

/* ---------------------------------------------------------------- files in the run directory */
void checkpoint_path(const char *dir, int64_t step, char *out, int n) {
    snprintf(out, (size_t)n, "%s/checkpoint-%08" PRId64 ".safetensors", dir, step);
}

/* Steps of the checkpoints in dir, ascending. */
static int list_steps(const char *dir, int64_t **steps) {
    DIR *d = opendir(dir);
    int n = 0, cap = 0;
    *steps = NULL;
    if (!d) return 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        long long s;
        char tail[32];
        if (sscanf(ent->d_name, "checkpoint-%lld.safetens%31s", &s, tail) != 2 || strcmp(tail, "ors")) continue;
        if (n == cap) *steps = xrealloc(*steps, sizeof(int64_t) * (size_t)(cap = cap ? cap * 2 : 16));
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) { int64_t t = (*steps)[j]; (*steps)[j] = (*steps)[j - 1]; (*steps)[j - 1] = t; }
    return n;
}

void checkpoint_prune(const char *dir, int keep) {
    int64_t *steps;
    int n = list_steps(dir, &steps);
    for (int k = 0; k < n - keep; k++) {
        char p[1024];
        checkpoint_path(dir, steps[k], p, sizeof p);
        unlink(p);
    }
    free(steps);
}

bool checkpoint_latest(const char *dir, char *out, int n) {
    int64_t *steps;
    int cnt = list_steps(dir, &steps);
    if (cnt) checkpoint_path(dir, steps[cnt - 1], out, n);
    free(steps);
    return cnt > 0;
}
