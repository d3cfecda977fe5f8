/* safetensors.c — the safetensors reader (strict validation: header length, JSON syntax, dtypes, shapes,
 * offsets inside the data and not overlapping) and the atomic writer (temp file + fsync + rename).
 * Owns the small JSON parser the header needs; nothing else in vmc parses JSON. */
#include "safetensors.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20)    /* the reference implementation's limit */

static const char *const DT_NAMES[] = {"F32", "BF16", "I32", "I64"};
static const int DT_SIZES[] = {4, 2, 4, 8};
const char *safetensors_dtype_name(StDType t) { return DT_NAMES[t]; }
int safetensors_dtype_size(StDType t) { return DT_SIZES[t]; }

/* ---------------------------------------------------------------- JSON header parser */
typedef struct Json {
    const char *s, *end, *start, *path;
    char *err; int errlen;
} Json;

static bool jerr(Json *j, const char *what) {
    return errorf(j->err, j->errlen, "%s: bad safetensors header: %s at header byte %ld", j->path, what, (long)(j->s - j->start));
}

static void ws(Json *j) { while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++; }
static bool lit(Json *j, char c) {
    ws(j);
    if (j->s < j->end && *j->s == c) { j->s++; return true; }
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A JSON string into a fresh heap buffer (\u escapes to UTF-8; surrogate pairs joined). */
static char *jstring(Json *j) {
    ws(j);
    if (j->s >= j->end || *j->s != '"') { jerr(j, "expected a string"); return NULL; }
    j->s++;
    size_t cap = 16, n = 0;
    char *out = xmalloc(cap);
    while (j->s < j->end && *j->s != '"') {
        if (n + 8 > cap) out = xrealloc(out, cap *= 2);
        unsigned char c = (unsigned char)*j->s++;
        if (c < 0x20) { free(out); jerr(j, "control character in a string"); return NULL; }
        if (c != '\\') { out[n++] = (char)c; continue; }
        if (j->s >= j->end) break;
        char e = *j->s++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) { out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]; continue; }
        if (e != 'u' || j->end - j->s < 4) { free(out); jerr(j, "bad escape in a string"); return NULL; }
        unsigned cp = 0;
        for (int k = 0; k < 4; k++) {
            int h = hexval(*j->s++);
            if (h < 0) { free(out); jerr(j, "bad \\u escape"); return NULL; }
            cp = cp * 16 + (unsigned)h;
        }
        if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->s >= 6 && j->s[0] == '\\' && j->s[1] == 'u') {
            unsigned lo = 0; bool ok = true;
            for (int k = 2; k < 6; k++) { int h = hexval(j->s[k]); ok &= h >= 0; lo = lo * 16 + (unsigned)(h < 0 ? 0 : h); }
            if (ok && lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); j->s += 6; }
        }
        if (cp < 0x80) out[n++] = (char)cp;
        else if (cp < 0x800) { out[n++] = (char)(0xC0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 63)); }
        else if (cp < 0x10000) { out[n++] = (char)(0xE0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63)); }
        else { out[n++] = (char)(0xF0 | cp >> 18); out[n++] = (char)(0x80 | ((cp >> 12) & 63));
               out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63)); }
    }
    if (j->s >= j->end) { free(out); jerr(j, "unterminated string"); return NULL; }
    j->s++;
    out[n] = 0;
    return out;
}

/* A non-negative integer (safetensors shapes and offsets). */
static bool juint(Json *j, int64_t *v) {
    ws(j);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9') return jerr(j, "expected a non-negative integer");
    int64_t x = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        if (x > (INT64_MAX - 9) / 10) return jerr(j, "integer too large");
        x = x * 10 + (*j->s++ - '0');
    }
    *v = x;
    return true;
}

/* [u, u, ...] into v (at most max entries). */
static bool juint_list(Json *j, int64_t *v, int max, int *n) {
    if (!lit(j, '[')) return jerr(j, "expected '['");
    *n = 0;
    if (lit(j, ']')) return true;
    do {
        if (*n >= max) return jerr(j, "too many entries in a list");
        if (!juint(j, &v[(*n)++])) return false;
    } while (lit(j, ','));
    return lit(j, ']') ? true : jerr(j, "expected ',' or ']'");
}

static bool parse_dtype(Json *j, StDType *t) {
    char *s = jstring(j);
    if (!s) return false;
    for (int k = 0; k < (int)COUNTOF(DT_NAMES); k++)
        if (!strcmp(s, DT_NAMES[k])) { *t = (StDType)k; free(s); return true; }
    errorf(j->err, j->errlen, "%s: bad safetensors header: unsupported dtype \"%s\" (expected F32, BF16, I32 or I64)", j->path, s);
    free(s);
    return false;
}

/* {"dtype": .., "shape": [..], "data_offsets": [b, e]} */
static bool parse_tensor(Json *j, StTensor *t, int64_t off[2]) {
    bool has_dt = false, has_shape = false, has_off = false;
    if (!lit(j, '{')) return jerr(j, "expected '{' for a tensor entry");
    do {
        char *key = jstring(j);
        if (!key) return false;
        bool ok = lit(j, ':') || jerr(j, "expected ':'");
        int n = 0;
        if (ok && !strcmp(key, "dtype")) ok = parse_dtype(j, &t->dtype), has_dt = true;
        else if (ok && !strcmp(key, "shape")) ok = juint_list(j, t->shape, ST_MAX_DIMS, &t->ndim), has_shape = true;
        else if (ok && !strcmp(key, "data_offsets")) {
            ok = juint_list(j, off, 2, &n) && (n == 2 || jerr(j, "data_offsets must have 2 entries"));
            has_off = true;
        } else if (ok) ok = errorf(j->err, j->errlen, "%s: bad safetensors header: unknown field \"%s\" in tensor \"%s\"", j->path, key, t->name);
        free(key);
        if (!ok) return false;
    } while (lit(j, ','));
    if (!lit(j, '}')) return jerr(j, "expected ',' or '}' in a tensor entry");
    if (!has_dt || !has_shape || !has_off)
        return errorf(j->err, j->errlen, "%s: bad safetensors header: tensor \"%s\" lacks %s", j->path, t->name,
                      !has_dt ? "\"dtype\"" : !has_shape ? "\"shape\"" : "\"data_offsets\"");
    return true;
}

static bool parse_meta(Json *j, StFile *f) {
    if (!lit(j, '{')) return jerr(j, "expected '{' after \"__metadata__\"");
    if (lit(j, '}')) return true;
    do {
        char *k = jstring(j);
        if (!k) return false;
        if (!lit(j, ':')) { free(k); return jerr(j, "expected ':'"); }
        char *v = jstring(j);
        if (!v) { free(k); return false; }
        f->meta_key = xrealloc(f->meta_key, sizeof(char *) * (size_t)(f->nmeta + 1));
        f->meta_val = xrealloc(f->meta_val, sizeof(char *) * (size_t)(f->nmeta + 1));
        f->meta_key[f->nmeta] = k; f->meta_val[f->nmeta++] = v;
    } while (lit(j, ','));
    return lit(j, '}') || jerr(j, "expected ',' or '}' in __metadata__");
}

/* ---------------------------------------------------------------- validation of the parsed entries */
static int cmp_off(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
}

static bool check_tensor(StFile *f, StTensor *t, const int64_t off[2], int64_t datalen, char *err, int errlen) {
    int64_t numel = 1;
    for (int k = 0; k < t->ndim; k++) {
        if (t->shape[k] > 0 && numel > INT64_MAX / 8 / t->shape[k])
            return errorf(err, errlen, "%s: tensor \"%s\": shape too large", f->path, t->name);
        numel *= t->shape[k];
    }
    t->numel = numel;
    t->nbytes = numel * DT_SIZES[t->dtype];
    if (off[0] > off[1] || off[1] > datalen)
        return errorf(err, errlen, "%s: tensor \"%s\": data_offsets [%lld, %lld] out of range (the data is %lld bytes%s)",
                      f->path, t->name, (long long)off[0], (long long)off[1], (long long)datalen,
                      off[1] > datalen ? "; truncated file?" : "");
    if (off[1] - off[0] != t->nbytes)
        return errorf(err, errlen, "%s: tensor \"%s\": data_offsets span %lld bytes but %s %lld elements need %lld",
                      f->path, t->name, (long long)(off[1] - off[0]), DT_NAMES[t->dtype], (long long)numel, (long long)t->nbytes);
    return true;
}

static bool check_overlap(StFile *f, int64_t (*offs)[2], char *err, int errlen) {
    int64_t (*s)[2] = xmalloc(sizeof(int64_t[2]) * (size_t)(f->n ? f->n : 1));
    memcpy(s, offs, sizeof(int64_t[2]) * (size_t)f->n);
    qsort(s, (size_t)f->n, sizeof(int64_t[2]), cmp_off);
    bool ok = true;
    for (int k = 1; k < f->n && ok; k++)
        if (s[k][0] < s[k - 1][1])
            ok = errorf(err, errlen, "%s: tensors overlap in the data (offsets %lld..%lld and %lld..%lld)", f->path,
                        (long long)s[k - 1][0], (long long)s[k - 1][1], (long long)s[k][0], (long long)s[k][1]);
    free(s);
    return ok;
}

static bool parse_header(StFile *f, const char *hdr, size_t hlen, int64_t datalen, char *err, int errlen) {
    Json j = {hdr, hdr + hlen, hdr, f->path, err, errlen};
    int64_t (*offs)[2] = NULL;
    bool ok = lit(&j, '{') || jerr(&j, "expected '{'");
    if (ok && !lit(&j, '}')) {
        do {
            char *name = jstring(&j);
            if (!(ok = name && (lit(&j, ':') || jerr(&j, "expected ':'")))) { free(name); break; }
            if (!strcmp(name, "__metadata__")) { free(name); ok = parse_meta(&j, f); continue; }
            if (safetensors_find(f, name)) { ok = errorf(err, errlen, "%s: tensor \"%s\" appears twice", f->path, name); free(name); break; }
            f->t = xrealloc(f->t, sizeof(StTensor) * (size_t)(f->n + 1));
            offs = xrealloc(offs, sizeof(int64_t[2]) * (size_t)(f->n + 1));
            StTensor *t = &f->t[f->n++];
            memset(t, 0, sizeof *t);
            t->name = name;
            ok = parse_tensor(&j, t, offs[f->n - 1]) && check_tensor(f, t, offs[f->n - 1], datalen, err, errlen);
            if (ok) t->data = f->buf + 8 + hlen + offs[f->n - 1][0];
        } while (ok && lit(&j, ','));
        ok = ok && (lit(&j, '}') || jerr(&j, "expected ',' or '}'"));
    }
    ws(&j);
    if (ok && j.s != j.end) ok = jerr(&j, "trailing characters after the header object");
    ok = ok && check_overlap(f, offs, err, errlen);
    free(offs);
    return ok;
}

/* ---------------------------------------------------------------- reader */
static bool read_all(const char *path, uint8_t **buf, size_t *size, char *err, int errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) { fclose(fp); return errorf(err, errlen, "%s: not a regular file", path); }
    *size = (size_t)st.st_size;
    *buf = xmalloc(*size ? *size : 1);
    size_t got = fread(*buf, 1, *size, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (got != *size || rerr) { free(*buf); *buf = NULL; return errorf(err, errlen, "%s: read failed: %s", path, strerror(errno)); }
    return true;
}

StFile *safetensors_read(const char *path, char *err, int errlen) {
    StFile *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    if (!read_all(path, &f->buf, &f->size, err, errlen)) { safetensors_free(f); return NULL; }
    if (f->size < 8) {
        errorf(err, errlen, "%s: truncated safetensors file (%zu bytes, the header length alone needs 8)", path, f->size);
        safetensors_free(f);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | f->buf[k];
    if (hlen > MAX_HEADER || hlen > f->size - 8) {
        errorf(err, errlen, "%s: %s: header length %llu but the file has %zu bytes after it", path,
               hlen > MAX_HEADER ? "not a safetensors file" : "truncated safetensors file", (unsigned long long)hlen, f->size - 8);
        safetensors_free(f);
        return NULL;
    }
    if (!parse_header(f, (const char *)f->buf + 8, (size_t)hlen, (int64_t)(f->size - 8 - hlen), err, errlen)) {
        safetensors_free(f);
        return NULL;
    }
    return f;
}

void safetensors_free(StFile *f) {
    if (!f) return;
    for (int k = 0; k < f->n; k++) free(f->t[k].name);
    for (int k = 0; k < f->nmeta; k++) { free(f->meta_key[k]); free(f->meta_val[k]); }
    free(f->t); free(f->meta_key); free(f->meta_val); free(f->buf); free(f->path);
    free(f);
}

const StTensor *safetensors_find(const StFile *f, const char *name) {
    for (int k = 0; k < f->n; k++) if (!strcmp(f->t[k].name, name)) return &f->t[k];
    return NULL;
}

const char *safetensors_meta(const StFile *f, const char *key) {
    for (int k = 0; k < f->nmeta; k++) if (!strcmp(f->meta_key[k], key)) return f->meta_val[k];
    return NULL;
}

void safetensors_to_f32(const StTensor *t, float *out) {
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case ST_F32: { uint32_t u; memcpy(&u, p + 4 * i, 4); memcpy(&out[i], &u, 4); break; }
        case ST_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = bf16_to_f32(h); break; }
        case ST_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = (float)v; break; }
        case ST_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); out[i] = (float)v; break; }
        }
    }
}

/* ---------------------------------------------------------------- writer */
typedef struct WTensor { char *name; StDType t; int ndim; int64_t shape[ST_MAX_DIMS]; const void *data; int64_t nbytes; } WTensor;
struct StWriter { WTensor *t; int n; char **mk, **mv; int nmeta; };

StWriter *safetensors_writer_new(void) { return xcalloc(1, sizeof(StWriter)); }

void safetensors_add(StWriter *w, const char *name, StDType t, int ndim, const int64_t *shape, const void *data) {
    ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS, "ndim %d", ndim);
    for (int k = 0; k < w->n; k++) ASSERT(strcmp(w->t[k].name, name), "tensor '%s' added twice", name);
    w->t = xrealloc(w->t, sizeof(WTensor) * (size_t)(w->n + 1));
    WTensor *x = &w->t[w->n++];
    x->name = xstrdup(name); x->t = t; x->ndim = ndim; x->data = data;
    x->nbytes = DT_SIZES[t];
    for (int k = 0; k < ndim; k++) { x->shape[k] = shape[k]; x->nbytes *= shape[k]; }
}

void safetensors_set_meta(StWriter *w, const char *key, const char *value) {
    for (int k = 0; k < w->nmeta; k++)
        if (!strcmp(w->mk[k], key)) { free(w->mv[k]); w->mv[k] = xstrdup(value); return; }
    w->mk = xrealloc(w->mk, sizeof(char *) * (size_t)(w->nmeta + 1));
    w->mv = xrealloc(w->mv, sizeof(char *) * (size_t)(w->nmeta + 1));
    w->mk[w->nmeta] = xstrdup(key); w->mv[w->nmeta++] = xstrdup(value);
}

void safetensors_writer_free(StWriter *w) {
    if (!w) return;
    for (int k = 0; k < w->n; k++) free(w->t[k].name);
    for (int k = 0; k < w->nmeta; k++) { free(w->mk[k]); free(w->mv[k]); }
    free(w->t); free(w->mk); free(w->mv); free(w);
}

static void put_json_string(FILE *m, const char *s) {
    fputc('"', m);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(m, "\\%c", c);
        else if (c < 0x20) fprintf(m, "\\u%04x", c);
        else fputc(c, m);
    }
    fputc('"', m);
}

/* The JSON header padded with spaces to a multiple of 8 (as the reference writer), so the data is aligned. */
static char *build_header(const StWriter *w, size_t *len) {
    char *buf = NULL; size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    ASSERT(m, "open_memstream");
    fputc('{', m);
    if (w->nmeta) {
        fputs("\"__metadata__\":{", m);
        for (int k = 0; k < w->nmeta; k++) {
            if (k) fputc(',', m);
            put_json_string(m, w->mk[k]); fputc(':', m); put_json_string(m, w->mv[k]);
        }
        fputc('}', m);
    }
    int64_t off = 0;
    for (int k = 0; k < w->n; k++) {
        const WTensor *t = &w->t[k];
        if (k || w->nmeta) fputc(',', m);
        put_json_string(m, t->name);
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", DT_NAMES[t->t]);
        for (int d = 0; d < t->ndim; d++) fprintf(m, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        fprintf(m, "],\"data_offsets\":[%lld,%lld]}", (long long)off, (long long)(off + t->nbytes));
        off += t->nbytes;
    }
    fputc('}', m);
    while ((ftell(m) & 7) != 0) fputc(' ', m);
    fclose(m);
    *len = n;
    return buf;
}

static bool write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { if (k == 0) errno = ENOSPC; return false; }
        b += k; n -= (size_t)k;
    }
    return true;
}

static bool write_body(const StWriter *w, int fd) {
    size_t hlen;
    char *hdr = build_header(w, &hlen);
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    bool ok = write_all(fd, len8, 8) && write_all(fd, hdr, hlen);
    free(hdr);
    for (int k = 0; ok && k < w->n; k++) ok = write_all(fd, w->t[k].data, (size_t)w->t[k].nbytes);
    return ok;
}

/* fsync the directory so the rename itself is durable. */
static void sync_dir(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0; else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(dir);
}

bool safetensors_write_ex(StWriter *w, const char *path, const char *fault_sink, char *err, int errlen) {
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        errorf(err, errlen, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return false;
    }
    int sink = fault_sink ? open(fault_sink, O_WRONLY) : fd;
    bool ok = sink >= 0 && write_body(w, sink) && fsync(sink) == 0;
    int saved = errno;
    if (sink >= 0 && sink != fd) close(sink);
    if (close(fd) != 0 && ok) { ok = false; saved = errno; }
    if (ok && rename(tmp, path) != 0) { ok = false; saved = errno; }
    if (!ok) {
        unlink(tmp);
        errorf(err, errlen, "%s: writing the checkpoint failed: %s (the previous file, if any, is unchanged)", path, strerror(saved));
    } else {
        sync_dir(path);
    }
    free(tmp);
    return ok;
}

bool safetensors_write(StWriter *w, const char *path, char *err, int errlen) {
    return safetensors_write_ex(w, path, NULL, err, errlen);
}
