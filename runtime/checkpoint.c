/* checkpoint.c — saving and loading training state through safetensors (see checkpoint.h): tensors are read
 * from and written into an Exec by node, so any backend works; mismatches are listed by name and shape. */
#include "checkpoint.h"
#include "safetensors.h"
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT "vmc-checkpoint-1"

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
    /* VMC_CKPT_FAULT_SINK=/dev/full: the bytes go there instead (tests of a full disk through the commands) */
    bool ok = safetensors_write_ex(w, path, getenv("VMC_CKPT_FAULT_SINK"), err, errlen);
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

/* torch bicubic (A = -0.75, align_corners=False, border indices clamped) weights of one output coordinate. */
static void cubic_weights(int o, int in, int out, int idx[4], double w[4]) {
    const double A = -0.75;
    double src = ((double)o + 0.5) * (double)in / (double)out - 0.5, f = floor(src), t = src - f;
    double x[4] = {t + 1, t, 1 - t, 2 - t};
    for (int k = 0; k < 4; k++) {
        double a = x[k];
        w[k] = a <= 1 ? ((A + 2) * a - (A + 3)) * a * a + 1 : ((A * a - 5 * A) * a + 8 * A) * a - 4 * A;
        int i = (int)f - 1 + k;
        idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
}

/* ARM_SPEC §3.3 interpolate_pos_embed: a pretraining table [1, g1*g1, C] becomes [1, g2*g2 + 1, C] for fine-tuning:
 * bicubic resize of the grid, then a zero row for the middle cls token at index g2*g2/2. False if the shapes are not
 * of that form. */
static bool interpolate_pos_embed(Exec *e, const Node *n, const StTensor *t) {
    if (t->ndim != 3 || n->shape.ndim != 3 || t->shape[2] != n->shape.d[2] || n->dtype != DT_F32) return false;
    int64_t C = t->shape[2], g1 = (int64_t)llround(sqrt((double)t->shape[1])), g2 = (int64_t)llround(sqrt((double)(n->shape.d[1] - 1)));
    if (g1 * g1 != t->shape[1] || g2 * g2 + 1 != n->shape.d[1]) return false;
    float *src = xmalloc(sizeof(float) * (size_t)(g1 * g1 * C));
    double *tmp = xcalloc((size_t)(g1 * g2 * C), sizeof(double));       /* rows g1, cols resized to g2 */
    float *dst = xcalloc((size_t)((g2 * g2 + 1) * C), sizeof(float));
    safetensors_to_f32(t, src);
    int idx[4]; double w[4];
    for (int64_t x = 0; x < g2; x++) {
        cubic_weights((int)x, (int)g1, (int)g2, idx, w);
        for (int64_t y = 0; y < g1; y++)
            for (int k = 0; k < 4; k++)
                for (int64_t c = 0; c < C; c++) tmp[(y * g2 + x) * C + c] += w[k] * src[(y * g1 + idx[k]) * C + c];
    }
    for (int64_t y = 0; y < g2; y++) {
        cubic_weights((int)y, (int)g1, (int)g2, idx, w);
        int64_t row = y * g2;
        for (int64_t x = 0; x < g2; x++) {
            int64_t o = row + x + (row + x >= g2 * g2 / 2 ? 1 : 0);   /* tokens after the cls slot shift by one */
            for (int64_t c = 0; c < C; c++) {
                double v = 0;
                for (int k = 0; k < 4; k++) v += w[k] * tmp[(idx[k] * g2 + x) * C + c];
                dst[o * C + c] = (float)v;
            }
        }
    }
    exec_write(e, n, dst, sizeof(float) * (size_t)((g2 * g2 + 1) * C));
    free(src); free(tmp); free(dst);
    return true;
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
    int matched, bad, copied;
} LoadCtx;

/* ARM fine-tuning from a pretrained checkpoint (ARM_SPEC §3.3): the extra scan directions start as copies of the
 * single pretrained scan: conv1d_b/_c/_c_b, x_proj_*, dt_proj_* <- conv1d, x_proj, dt_proj; A_b_log.. <- A_log;
 * mixer.D_b.. <- mixer.D. Writes the source name of such a parameter into out; false for any other name. */
static bool direction_source(const char *name, char *out, size_t n) {
    static const char *const SUF[] = {"_c_b", "_b", "_c"};
    static const struct { const char *base, *after; } BASE[] = {
        {"conv1d", "."}, {"x_proj", "."}, {"dt_proj", "."}, {".A", "_log"}, {"mixer.D", ""}};
    for (size_t b = 0; b < COUNTOF(BASE); b++)
        for (size_t k = 0; k < COUNTOF(SUF); k++) {
            char pat[32];
            snprintf(pat, sizeof pat, "%s%s", BASE[b].base, SUF[k]);
            const char *p = strstr(name, pat);
            if (!p) continue;
            const char *rest = p + strlen(pat);
            if (BASE[b].after[0] ? strncmp(rest, BASE[b].after, strlen(BASE[b].after)) : *rest != 0) continue;
            snprintf(out, n, "%.*s%s%s", (int)(p - name), name, BASE[b].base, rest);
            return true;
        }
    return false;
}

/* The tensor for a node name (the EMA copy in CKPT_INIT_EMA when present); marks what it consumes. */
static const StTensor *lookup(LoadCtx *c, const char *name) {
    char key[620];   /* "ema." + a name of up to 600 bytes */
    const StTensor *t = safetensors_find(c->f, name);
    if (t) c->used[t - c->f->t] = true;
    if (c->mode == CKPT_INIT_EMA) {
        snprintf(key, sizeof key, "ema.%s", name);
        const StTensor *e = safetensors_find(c->f, key);
        if (e) t = e;
    }
    return t;
}

static void load_node(LoadCtx *c, const Node *n, bool required) {
    char src[600], a[96], b[96];
    const StTensor *t = lookup(c, n->name);
    if (!t && c->mode != CKPT_RESUME && direction_source(n->name, src, sizeof src) && (t = lookup(c, src))) c->copied++;
    if (!t) {
        if (required) { fprintf(c->report, "  missing in checkpoint: %s %s\n", n->name, shape_str(n->shape, a, 96)); c->bad++; }
        return;
    }
    if (!same_shape(t, n) && c->mode != CKPT_RESUME && strstr(n->name, "pos_embed") && interpolate_pos_embed(c->e, n, t)) {
        st_shape_str(t, b, 96);
        fprintf(c->report, "  interpolated: %s %s -> %s (bicubic, zero cls row in the middle)\n", n->name, b, shape_str(n->shape, a, 96));
        c->matched++;
        return;
    }
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
    LoadCtx c = {e, f, mode, report, xcalloc((size_t)(f->n ? f->n : 1), sizeof(bool)), 0, 0, 0};
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
        ok = errorf(err, errlen, "%s: does not match the model (%d missing or mismatched, %d unexpected tensors; listed above)",
                    path, c.bad, unexpected);
    else if (!c.matched)
        ok = errorf(err, errlen, "%s: no tensor matches the model (%d in the file)", path, f->n);
    else
        fprintf(report, "%s: loaded %d tensors (%d of them scan-direction copies), %d missing or mismatched, %d unexpected\n",
                path, c.matched, c.copied, c.bad, unexpected);
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
