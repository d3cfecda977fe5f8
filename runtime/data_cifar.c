/* data_cifar.c — CIFAR-10 binary batches (data_batch_1..5.bin for training, test_batch.bin for test; records of
 * 1 label byte + 3072 bytes of R, G, B planes), also found inside cifar-10-batches-bin/. */
#include "data_impl.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CIFAR_SIDE = 32, CIFAR_REC = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE };

const char *cifar_dir(const char *dir, char *buf, int buflen) {
    struct stat st;
    char p[4200];
    snprintf(p, sizeof p, "%s/data_batch_1.bin", dir);
    if (stat(p, &st) == 0) { snprintf(buf, buflen, "%s", dir); return buf; }
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/data_batch_1.bin", dir);
    if (stat(p, &st) == 0) { snprintf(buf, buflen, "%s/cifar-10-batches-bin", dir); return buf; }
    return NULL;
}

static bool load_file(Dataset *d, const char *path, char *err, int errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: cannot open", path); return false; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size <= 0 || size % CIFAR_REC != 0) {
        snprintf(err, errlen, "%s: wrong size %ld bytes (expected a multiple of %d: 1 label byte + 32x32x3 pixels per image)",
                 path, size, CIFAR_REC);
        fclose(f);
        return false;
    }
    int64_t m = size / CIFAR_REC, base = d->n;
    d->n += m;
    d->labels = xrealloc(d->labels, sizeof(int32_t) * (size_t)d->n);
    d->pixels = xrealloc(d->pixels, (size_t)d->n * 3 * CIFAR_SIDE * CIFAR_SIDE);
    uint8_t rec[CIFAR_REC];
    for (int64_t i = 0; i < m; i++) {
        if (fread(rec, 1, CIFAR_REC, f) != CIFAR_REC) { snprintf(err, errlen, "%s: read error", path); fclose(f); return false; }
        if (rec[0] >= 10) { snprintf(err, errlen, "%s: record %lld has label %d (CIFAR-10 has 10 classes)", path, (long long)i, rec[0]); fclose(f); return false; }
        d->labels[base + i] = rec[0];
        uint8_t *o = d->pixels + (size_t)(base + i) * 3 * CIFAR_SIDE * CIFAR_SIDE;
        for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
            for (int c = 0; c < 3; c++) o[3 * p + c] = rec[1 + c * CIFAR_SIDE * CIFAR_SIDE + p];
    }
    fclose(f);
    return true;
}

bool cifar_load(Dataset *d, const char *dir, DataSplit split, char *err, int errlen) {
    d->kind = DS_CIFAR;
    d->w = d->h = CIFAR_SIDE; d->c = 3; d->nclasses = 10;
    char p[4200];
    struct stat st;
    if (split == SPLIT_TEST) {
        snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        if (stat(p, &st) != 0) { snprintf(err, errlen, "%s: missing (CIFAR-10 test split)", p); return false; }
        if (!load_file(d, p, err, errlen)) return false;
    } else {
        for (int k = 1; k <= 5; k++) {
            snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, k);
            if (k > 1 && stat(p, &st) != 0) break;
            if (!load_file(d, p, err, errlen)) return false;
        }
    }
    dataset_set_digit_names(d);
    return true;
}
