/* source.c — loading files into SourceFile and mapping offsets to lines. */
#include "source.h"
#include "util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void build_lines(SourceFile *s) {
    int cap = 64;
    s->line_starts = xmalloc(sizeof(uint32_t) * (size_t)cap);
    s->nlines = 0;
    s->line_starts[s->nlines++] = 0;
    for (uint32_t i = 0; i < s->len; i++) {
        if (s->text[i] != '\n') continue;
        if (s->nlines == cap) { cap *= 2; s->line_starts = xrealloc(s->line_starts, sizeof(uint32_t) * (size_t)cap); }
        s->line_starts[s->nlines++] = i + 1;
    }
}

SourceFile *source_from_string(const char *path, const char *text) {
    SourceFile *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->text = xstrdup(text);
    s->len = (uint32_t)strlen(text);
    build_lines(s);
    return s;
}

SourceFile *source_load(const char *path, char *err, int errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, (size_t)errlen, "cannot open '%s': %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); snprintf(err, (size_t)errlen, "cannot read '%s': %s", path, strerror(errno)); return NULL; }
    if (n > 0x7fffffff) { free(buf); snprintf(err, (size_t)errlen, "'%s' is too large", path); return NULL; }
    buf[n] = 0;
    if (memchr(buf, 0, n)) { free(buf); snprintf(err, (size_t)errlen, "'%s' contains a NUL byte (not a text file)", path); return NULL; }
    SourceFile *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->text = buf;
    s->len = (uint32_t)n;
    build_lines(s);
    return s;
}

void source_free(SourceFile *s) {
    if (!s) return;
    free(s->path); free(s->shown); free(s->text); free(s->line_starts); free(s);
}

void source_linecol(const SourceFile *s, uint32_t off, int *line, int *col) {
    int lo = 0, hi = s->nlines - 1;
    while (lo < hi) {                       /* last line start <= off */
        int mid = (lo + hi + 1) / 2;
        if (s->line_starts[mid] <= off) lo = mid; else hi = mid - 1;
    }
    *line = lo + 1;
    *col = (int)(off - s->line_starts[lo]) + 1;
}

char *loc_str(Loc loc, char *buf, size_t n) {
    if (!loc.file) { snprintf(buf, n, "?"); return buf; }
    int line, col;
    source_linecol(loc.file, loc.start, &line, &col);
    snprintf(buf, n, "%s:%d:%d", source_name(loc.file), line, col);
    return buf;
}

Loc loc_span(Loc a, Loc b) {
    if (!a.file) return b;
    if (!b.file || a.file != b.file) return a;
    return (Loc){a.file, a.start < b.start ? a.start : b.start, a.end > b.end ? a.end : b.end};
}
