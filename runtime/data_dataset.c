/* data_dataset.c — dataset_open: recognises the layout under a path (IDX, CIFAR-10 binary, ImageFolder) and hands
 * it to the matching reader; the accessors shared by every format. */
#include "data_impl.h"
#include "util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

Dataset *dataset_open(const char *path, DataSplit split, char *err, int errlen) {
    struct stat st;
    if (stat(path, &st) != 0) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return NULL; }
    if (!S_ISDIR(st.st_mode)) { snprintf(err, errlen, "%s: not a directory (expected a dataset folder)", path); return NULL; }
    Dataset *d = xcalloc(1, sizeof *d);
    d->path = xstrdup(path);
    char cdir[4096];
    bool ok;
    if (idx_present(path)) ok = idx_load(d, path, split, err, errlen);
    else if (cifar_dir(path, cdir, sizeof cdir)) ok = cifar_load(d, cdir, split, err, errlen);
    else ok = folder_load(d, path, split, err, errlen);
    if (!ok) { dataset_free(d); return NULL; }
    return d;
}

int64_t dataset_len(const Dataset *d) { return d->n; }
int dataset_num_classes(const Dataset *d) { return d->nclasses; }
int32_t dataset_label(const Dataset *d, int64_t i) { return d->labels[i]; }
const char *dataset_class_name(const Dataset *d, int k) { return k >= 0 && k < d->nclasses ? d->class_names[k] : NULL; }
const char *dataset_file(const Dataset *d, int64_t i) { return d->kind == DS_FOLDER ? d->pool + d->file_off[i] : NULL; }

void dataset_set_digit_names(Dataset *d) {
    d->class_names = xcalloc((size_t)d->nclasses, sizeof(char *));
    for (int k = 0; k < d->nclasses; k++) {
        char b[16];
        snprintf(b, sizeof b, "%d", k);
        d->class_names[k] = xstrdup(b);
    }
}

void dataset_free(Dataset *d) {
    if (!d) return;
    for (int k = 0; d->class_names && k < d->nclasses; k++) free(d->class_names[k]);
    free(d->class_names);
    free(d->labels);
    free(d->pixels);
    free(d->pool);
    free(d->file_off);
    free(d->path);
    free(d);
}
