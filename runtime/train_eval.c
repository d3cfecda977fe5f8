/* train_eval.c — top-1/top-5 evaluation of a run's classifier (train_run.h): batches through the inference step,
 * scored (optionally on a class subset), logged to metrics.jsonl. */
#include "train_run.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- evaluation */
double tr_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank of the true class (classes with a strictly larger logit) and its cross-entropy, over the classes in mask. */
static void score(EvalAcc *a, const float *z, int classes, int32_t label, const bool *mask) {
    int above = 0;
    double mx = z[label], se = 0;
    for (int c = 0; c < classes; c++) {
        if (mask && !mask[c]) continue;
        above += z[c] > z[label];
        if (z[c] > mx) mx = z[c];
    }
    for (int c = 0; c < classes; c++) if (!mask || mask[c]) se += exp((double)z[c] - mx);
    a->nll += log(se) + mx - z[label];
    a->n++; a->top1 += above < 1; a->top5 += above < 5;
}

/* A possibly partial batch padded to the graph's batch: the padding rows are computed and ignored. */
static void eval_batch(Run *r, const Batch *b, EvalAcc *a, float *img, int32_t *lab, float *z) {
    size_t per = (size_t)shape_numel(r->images->shape) / (size_t)r->batch;
    memset(img, 0, sizeof(float) * per * (size_t)r->batch);
    memcpy(img, b->images, sizeof(float) * per * (size_t)b->n);
    memset(lab, 0, sizeof(int32_t) * (size_t)r->batch);
    memcpy(lab, b->labels, sizeof(int32_t) * (size_t)b->n);
    Batch pb = *b;
    pb.images = img; pb.labels = lab; pb.targets = NULL;
    tr_feed_batch(r, &pb, false);
    StepInfo si = {r->seed, 0};
    exec_run(r->e, &si);
    exec_read(r->e, r->logits, z, sizeof(float) * (size_t)r->batch * (size_t)r->classes);
    for (int i = 0; i < b->n; i++) score(a, z + (size_t)i * (size_t)r->classes, r->classes, lab[i], r->class_mask);
}

/* Scores the test split (the first max_batches batches when > 0) with r's exec; 0, 1 (bad data) or 2 (read error). */
int tr_eval_split(Run *r, int64_t max_batches, const int32_t *subset, int nsubset, EvalAcc *a) {
    Dataset *ds;
    Loader *l = tr_open_loader(r, SPLIT_TEST, &ds, subset, nsubset);
    if (!l) return 1;
    float *img = xmalloc(sizeof(float) * (size_t)shape_numel(r->images->shape));
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)r->batch);
    float *z = xmalloc(sizeof(float) * (size_t)r->batch * (size_t)r->classes);
    memset(a, 0, sizeof *a);
    Batch b;
    double t0 = tr_now_s();
    for (int64_t k = 0; (max_batches <= 0 || k < max_batches) && loader_next(l, &b); k++) eval_batch(r, &b, a, img, lab, z);
    a->secs = tr_now_s() - t0;
    int rc = 0;
    if (loader_error(l)) { fprintf(stderr, "data: %s\n", loader_error(l)); rc = 2; }
    free(img); free(lab); free(z);
    loader_free(l);
    dataset_free(ds);
    return rc;
}

void tr_log_eval(Metrics *mx, const Run *r, int64_t step, const char *weights, const EvalAcc *a) {
    if (!a->n) return;
    double t1 = 100.0 * (double)a->top1 / (double)a->n, t5 = 100.0 * (double)a->top5 / (double)a->n;
    metrics_begin(mx);
    metrics_str(mx, "split", "test");
    metrics_int(mx, "step", step);
    metrics_int(mx, "n", a->n);
    metrics_num(mx, "top1", t1);
    metrics_num(mx, "top5", t5);
    metrics_num(mx, "loss", a->nll / (double)a->n);
    metrics_num(mx, "img_per_s", (double)a->n / a->secs);
    metrics_str(mx, "weights", weights);
    metrics_end(mx);
    printf("eval %s (%s weights, step %lld): %" PRId64 " images, top-1 %.2f%%, top-5 %.2f%%, loss %.4f\n", r->model_name,
           weights, (long long)step, a->n, t1, t5, a->nll / (double)a->n);
    fflush(stdout);
}

int train_parse_classes(const char *spec, int classes, int32_t *out, int max, char *err, int errlen) {
    char *text = NULL;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) { snprintf(err, (size_t)errlen, "%s: cannot read the class list: %s", spec + 1, strerror(errno)); return -1; }
        size_t n = 0;
        FILE *m = open_memstream(&text, &n);
        int ch;
        while ((ch = fgetc(f)) != EOF) fputc(ch, m);
        fclose(m);
        fclose(f);
    } else {
        text = xstrdup(spec);
    }
    int n = 0;
    const char *where = spec[0] == '@' ? spec + 1 : "--classes";
    for (char *p = text; *p;) {
        if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') { p++; continue; }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= classes) {
            snprintf(err, (size_t)errlen, "%s: '%.*s' is not a class index in [0, %d)", where, (int)strcspn(p, ", \n\t"), p, classes);
            n = -1; break;
        }
        if (n == max) { snprintf(err, (size_t)errlen, "%s: more than %d classes", where, max); n = -1; break; }
        out[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) snprintf(err, (size_t)errlen, "%s: no class indices", where), n = -1;
    free(text);
    return n;
}

int tr_run_eval(Run *r, int64_t ckpt_step) {
    int32_t *subset = NULL;
    int nsub = 0, rc = 0;
    if (r->o->classes) {
        char err[1024];
        subset = xmalloc(sizeof(int32_t) * (size_t)r->classes);
        nsub = train_parse_classes(r->o->classes, r->classes, subset, r->classes, err, sizeof err);
        if (nsub < 0) { fprintf(stderr, "vmc eval: %s\n", err); free(subset); return 1; }
        r->class_mask = xcalloc((size_t)r->classes, sizeof(bool));
        for (int k = 0; k < nsub; k++) r->class_mask[subset[k]] = true;
    }
    EvalAcc a;
    rc = tr_eval_split(r, r->o->steps, subset, nsub, &a);
    char path[1024], err[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->o->out);
    Metrics *mx = rc ? NULL : metrics_open(path, true, err, sizeof err);
    if (!rc && !mx) { fprintf(stderr, "%s\n", err); rc = 2; }
    if (mx) tr_log_eval(mx, r, ckpt_step, r->o->ema ? "ema" : "model", &a);
    if (mx && !a.n) fprintf(stderr, "vmc eval: no test images%s\n", subset ? " in the selected classes" : "");
    metrics_close(mx);
    if (mx && !plot_run(r->o->out, r->model_name, err, sizeof err)) fprintf(stderr, "warning: %s\n", err);
    free(subset);
    free(r->class_mask);
    return rc;
}
