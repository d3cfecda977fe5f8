/* gemm_tune_cache.c — see gemm_tune_cache.h. A line per shape: the GemmDesc shape fields and the own kernel's key,
 * then the algorithm's opaque bytes in hex, then " own" when vmc's own kernel timed faster, " lt" when slower
 * (nothing: not timed). (File version 3; versions 1 and 2, before the own kernels and before their keys, are not
 * read.) */
#include "gemm_tune_cache.h"
#include "nvrtc_compile.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SHAPE_FIELDS = 14 };

typedef struct Entry { long long shape[SHAPE_FIELDS]; cublasLtMatmulAlgo_t algo; TuneOwn own; } Entry;

struct TuneCache {
    char path[1200];
    Entry *e;
    int n, cap;
    bool dirty;
};

static void shape_of_desc(const GemmDesc *d, uint64_t own_key, long long *s) {
    const long long v[SHAPE_FIELDS] = {d->ta,  d->tb, d->M,     d->N,      d->K, d->batch, d->lda, d->ldb, d->sa, d->sb,
                                       d->sc, d->bf16, d->c_bf16, (long long)own_key};
    memcpy(s, v, sizeof v);
}

static void push(TuneCache *t, const long long *shape, const cublasLtMatmulAlgo_t *algo, TuneOwn own) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->e = xrealloc(t->e, sizeof(Entry) * (size_t)t->cap);
    }
    memcpy(t->e[t->n].shape, shape, sizeof t->e[t->n].shape);
    t->e[t->n].own = own;
    t->e[t->n++].algo = *algo;
}

TuneCache *tune_cache_open(const char *device_name) {
    TuneCache *t = xcalloc(1, sizeof *t);
    const char *dir = nvrtc_cache_dir();
    if (!dir) return t;
    char dev[128];
    snprintf(dev, sizeof dev, "%s", device_name);
    for (char *p = dev; *p; p++) if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) *p = '_';
    snprintf(t->path, sizeof t->path, "%s/gemm-tune3-%s.txt", dir, dev);
    FILE *f = fopen(t->path, "r");
    if (!f) return t;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        long long s[SHAPE_FIELDS];
        int used = 0, k = 0;
        char *p = line;
        for (; k < SHAPE_FIELDS && sscanf(p, "%lld%n", &s[k], &used) == 1; k++) p += used;
        unsigned char bytes[sizeof(cublasLtMatmulAlgo_t)];
        size_t b = 0;
        while (*p == ' ') p++;
        for (; b < sizeof bytes; b++) {
            unsigned v;
            if (sscanf(p + 2 * b, "%2x", &v) != 1) break;
            bytes[b] = (unsigned char)v;
        }
        if (k != SHAPE_FIELDS || b != sizeof bytes) continue;   /* a damaged line: that shape is tuned again */
        cublasLtMatmulAlgo_t a;
        memcpy(&a, bytes, sizeof a);
        const char *rest = p + 2 * b;
        push(t, s, &a, strstr(rest, " own") ? TUNE_OWN_FASTER : strstr(rest, " lt") ? TUNE_OWN_SLOWER : TUNE_OWN_UNTIMED);
    }
    fclose(f);
    return t;
}

bool tune_cache_find(const TuneCache *t, const GemmDesc *d, uint64_t own_key, const cublasLtMatmulAlgo_t *cand,
                     int n, cublasLtMatmulAlgo_t *out, TuneOwn *own) {
    long long s[SHAPE_FIELDS];
    shape_of_desc(d, own_key, s);
    for (int i = t->n - 1; i >= 0; i--) {
        if (memcmp(t->e[i].shape, s, sizeof s)) continue;
        for (int j = 0; j < n; j++)
            if (!memcmp(&cand[j], &t->e[i].algo, sizeof cand[j])) { *out = cand[j]; *own = t->e[i].own; return true; }
        return false;
    }
    return false;
}

void tune_cache_put(TuneCache *t, const GemmDesc *d, uint64_t own_key, const cublasLtMatmulAlgo_t *algo, TuneOwn own) {
    long long s[SHAPE_FIELDS];
    shape_of_desc(d, own_key, s);
    push(t, s, algo, own);
    t->dirty = true;
}

void tune_cache_close(TuneCache *t) {
    if (t->dirty && t->path[0]) {
        char tmp[1300];
        snprintf(tmp, sizeof tmp, "%s.%d.tmp", t->path, (int)getpid());
        FILE *f = fopen(tmp, "w");
        if (f) {
            for (int i = 0; i < t->n; i++) {
                for (int k = 0; k < SHAPE_FIELDS; k++) fprintf(f, "%lld ", t->e[i].shape[k]);
                const unsigned char *b = (const unsigned char *)&t->e[i].algo;
                for (size_t j = 0; j < sizeof t->e[i].algo; j++) fprintf(f, "%02x", b[j]);
                fputs(t->e[i].own == TUNE_OWN_FASTER ? " own\n" : t->e[i].own == TUNE_OWN_SLOWER ? " lt\n" : "\n", f);
            }
            if (fclose(f) == 0) rename(tmp, t->path);   /* a failed write leaves the old file: tuning is redone */
            else remove(tmp);
        }
    }
    free(t->e);
    free(t);
}

uint64_t tune_own_key(const char *src, const char *name) {
    const uint64_t h = hash_bytes(HASH_SEED, src, strlen(src));
    return hash_bytes(h, name, strlen(name));
}
