/* data_folder.c — ImageFolder trees as torchvision lays them out: path/{train,val}/<class>/... (or path/<class>/...
 * for both splits); classes sorted by name; each class folder walked recursively in sorted order; a file is an
 * image when its content is JPEG or PNG (a .jpg/.jpeg/.png name skips the sniff; the decoder sniffs again). */
#include "data_impl.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct Names { char **v; int n, cap; } Names;

static void names_push(Names *s, const char *name) {
    if (s->n == s->cap) { s->cap = s->cap ? 2 * s->cap : 64; s->v = xrealloc(s->v, sizeof(char *) * (size_t)s->cap); }
    s->v[s->n++] = xstrdup(name);
}
static void names_free(Names *s) { for (int k = 0; k < s->n; k++) free(s->v[k]); free(s->v); *s = (Names){0}; }
static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* dir/name into out; the caller's buffers are PATH_MAX-sized, longer paths are cut (and then fail to open). */
__attribute__((noinline)) static bool join(char *out, size_t n, const char *dir, const char *name) {
    return (size_t)snprintf(out, n, "%s/%s", dir, name) < n;
}

static bool is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

/* Entries of dir (no hidden ones), split into sorted sub-folders and files. */
static bool list_dir(const char *dir, Names *dirs, Names *files, char *err, int errlen) {
    DIR *dp = opendir(dir);
    if (!dp) { snprintf(err, errlen, "%s: %s", dir, strerror(errno)); return false; }
    struct dirent *e;
    char p[4096];
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        bool sub = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) { join(p, sizeof p, dir, e->d_name); sub = is_dir(p); }
        names_push(sub ? dirs : files, e->d_name);
    }
    closedir(dp);
    if (dirs->n) qsort(dirs->v, (size_t)dirs->n, sizeof(char *), cmp_name);
    if (files->n) qsort(files->v, (size_t)files->n, sizeof(char *), cmp_name);
    return true;
}

static bool image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static bool image_content(const char *path) {
    uint8_t b[8];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return image_sniff(b, n) != IMG_UNKNOWN;
}

typedef struct Collect { Dataset *d; size_t pool_len, pool_cap; int64_t cap; } Collect;

static void add_file(Collect *c, const char *path, int32_t label) {
    Dataset *d = c->d;
    size_t len = strlen(path) + 1;
    if (c->pool_len + len > c->pool_cap) {
        c->pool_cap = (c->pool_len + len) * 2;
        d->pool = xrealloc(d->pool, c->pool_cap);
    }
    if (d->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        d->file_off = xrealloc(d->file_off, sizeof(size_t) * (size_t)c->cap);
        d->labels = xrealloc(d->labels, sizeof(int32_t) * (size_t)c->cap);
    }
    memcpy(d->pool + c->pool_len, path, len);
    d->file_off[d->n] = c->pool_len;
    d->labels[d->n++] = label;
    c->pool_len += len;
}

/* torchvision's sorted(os.walk(class_dir)): a folder's files, then its sub-folders, each sorted. */
static bool walk(Collect *c, const char *dir, int32_t label, int depth, char *err, int errlen) {
    if (depth > 32) { snprintf(err, errlen, "%s: folders nested too deeply (symlink loop?)", dir); return false; }
    Names dirs = {0}, files = {0};
    bool ok = list_dir(dir, &dirs, &files, err, errlen);
    char p[4096];
    for (int k = 0; ok && k < files.n; k++) {
        join(p, sizeof p, dir, files.v[k]);
        if (image_name(files.v[k]) || image_content(p)) add_file(c, p, label);
    }
    for (int k = 0; ok && k < dirs.n; k++) {
        join(p, sizeof p, dir, dirs.v[k]);
        ok = walk(c, p, label, depth + 1, err, errlen);
    }
    names_free(&dirs);
    names_free(&files);
    return ok;
}

/* path/train or path/val (path/test) when present, else path itself for both splits. */
static bool split_root(const char *path, DataSplit split, char *out, int outlen, char *err, int errlen) {
    char tr[4096], va[4096], te[4096];
    snprintf(tr, sizeof tr, "%s/train", path);
    snprintf(va, sizeof va, "%s/val", path);
    snprintf(te, sizeof te, "%s/test", path);
    bool has_tr = is_dir(tr), has_va = is_dir(va), has_te = is_dir(te);
    if (!has_tr && !has_va && !has_te) { snprintf(out, outlen, "%s", path); return true; }
    if (split == SPLIT_TRAIN && has_tr) { snprintf(out, outlen, "%s", tr); return true; }
    if (split == SPLIT_TEST && (has_va || has_te)) { snprintf(out, outlen, "%s", has_va ? va : te); return true; }
    snprintf(err, errlen, "%s: has %s but no %s folder", path, has_tr ? "train/" : "val/",
             split == SPLIT_TRAIN ? "train/" : "val/ (or test/)");
    return false;
}

bool folder_load(Dataset *d, const char *path, DataSplit split, char *err, int errlen) {
    char root[4096], p[4096];
    if (!split_root(path, split, root, sizeof root, err, errlen)) return false;
    Names classes = {0}, loose = {0};
    if (!list_dir(root, &classes, &loose, err, errlen)) return false;
    bool ok = true;
    if (classes.n == 0) {
        snprintf(err, errlen, loose.n ? "%s: no class folders (expected %s/<class>/<images>)" : "%s: empty directory%s",
                 root, loose.n ? root : "");
        ok = false;
    }
    d->kind = DS_FOLDER;
    d->nclasses = classes.n;
    d->class_names = xcalloc((size_t)classes.n + 1, sizeof(char *));
    Collect c = {d, 0, 0, 0};
    for (int k = 0; ok && k < classes.n; k++) {
        d->class_names[k] = xstrdup(classes.v[k]);
        int64_t before = d->n;
        join(p, sizeof p, root, classes.v[k]);
        ok = walk(&c, p, k, 0, err, errlen);
        if (ok && d->n == before) {
            snprintf(err, errlen, "%s: class folder has no JPEG or PNG images", p);
            ok = false;
        }
    }
    if (!ok) d->nclasses = 0;   /* class_names is freed by dataset_free up to nclasses */
    for (int k = 0; !ok && k < classes.n; k++) free(d->class_names[k]);
    names_free(&classes);
    names_free(&loose);
    return ok;
}

bool folder_read(const Dataset *d, int64_t i, uint8_t **buf, size_t *cap, size_t *n, char *err, int errlen) {
    const char *path = d->pool + d->file_off[i];
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return false; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0) { snprintf(err, errlen, "%s: cannot size", path); fclose(f); return false; }
    if ((size_t)size > *cap) { free(*buf); *cap = (size_t)size + 4096; *buf = xmalloc(*cap); }
    *n = fread(*buf, 1, (size_t)size, f);
    fclose(f);
    if (*n != (size_t)size) { snprintf(err, errlen, "%s: short read", path); return false; }
    return true;
}
