/* data_idx.c — IDX datasets (MNIST / Fashion-MNIST layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]),
 * read through zlib so plain and gzip files both work; checks the magic, the sizes and truncation. */
#include "data_impl.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static bool find(const char *dir, const char *name, char *out, int outlen) {
    struct stat st;
    snprintf(out, outlen, "%s/%s", dir, name);
    if (stat(out, &st) == 0) return true;
    snprintf(out, outlen, "%s/%s.gz", dir, name);
    return stat(out, &st) == 0;
}

bool idx_present(const char *dir) {
    char p[4096];
    return find(dir, "train-images-idx3-ubyte", p, sizeof p) || find(dir, "t10k-images-idx3-ubyte", p, sizeof p);
}

static bool read_exact(gzFile f, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return false;
        p += got; n -= (size_t)got;
    }
    return true;
}

/* Reads an IDX file of unsigned bytes with ndims dimensions; dims[0] is the item count. */
static uint8_t *read_idx(const char *path, int ndims, int32_t dims[3], char *err, int errlen) {
    gzFile f = gzopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: cannot open", path); return NULL; }
    uint8_t hdr[16];
    uint32_t want = 0x0800u | (uint32_t)ndims;
    if (!read_exact(f, hdr, 4)) { snprintf(err, errlen, "%s: truncated IDX header", path); gzclose(f); return NULL; }
    uint32_t magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (magic != want) {
        snprintf(err, errlen, "%s: bad IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d dimensions)", path, magic, want, ndims);
        gzclose(f);
        return NULL;
    }
    if (!read_exact(f, hdr + 4, 4 * (size_t)ndims)) { snprintf(err, errlen, "%s: truncated IDX header", path); gzclose(f); return NULL; }
    size_t total = 1;
    for (int k = 0; k < ndims; k++) {
        const uint8_t *b = hdr + 4 + 4 * k;
        dims[k] = (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        if (dims[k] <= 0 || dims[k] > (1 << 28)) { snprintf(err, errlen, "%s: bad IDX dimension %d", path, dims[k]); gzclose(f); return NULL; }
        total *= (size_t)dims[k];
    }
    uint8_t *data = xmalloc(total);
    if (!read_exact(f, data, total)) {
        snprintf(err, errlen, "%s: truncated (expected %zu bytes of data after the header)", path, total);
        free(data);
        gzclose(f);
        return NULL;
    }
    gzclose(f);
    return data;
}

bool idx_load(Dataset *d, const char *dir, DataSplit split, char *err, int errlen) {
    const char *pre = split == SPLIT_TRAIN ? "train" : "t10k";
    char ip[4096], lp[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", pre);
    if (!find(dir, name, ip, sizeof ip)) { snprintf(err, errlen, "%s: no %s[.gz]", dir, name); return false; }
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", pre);
    if (!find(dir, name, lp, sizeof lp)) { snprintf(err, errlen, "%s: no %s[.gz]", dir, name); return false; }
    int32_t idims[3], ldims[3];
    uint8_t *px = read_idx(ip, 3, idims, err, errlen);
    if (!px) return false;
    uint8_t *lb = read_idx(lp, 1, ldims, err, errlen);
    if (!lb) { free(px); return false; }
    if (ldims[0] != idims[0]) {
        snprintf(err, errlen, "%s: %d labels for %d images in %s", lp, ldims[0], idims[0], ip);
        free(px); free(lb);
        return false;
    }
    d->kind = DS_IDX;
    d->n = idims[0]; d->h = idims[1]; d->w = idims[2]; d->c = 1;
    d->pixels = px;
    d->labels = xmalloc(sizeof(int32_t) * (size_t)d->n);
    for (int64_t i = 0; i < d->n; i++) {
        d->labels[i] = lb[i];
        if (lb[i] + 1 > d->nclasses) d->nclasses = lb[i] + 1;
    }
    free(lb);
    dataset_set_digit_names(d);
    return true;
}
