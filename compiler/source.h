/* source.h — a loaded source file with a line map, and Loc, a byte range inside one.
 * Every AST node and graph node carries a Loc; line/column are computed only when printing. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct SourceFile {
    char *path;        /* as given or resolved (used to open it and to resolve relative imports) */
    char *shown;       /* the name messages use when it differs from path (NULL: path) */
    char *text;        /* NUL-terminated contents */
    uint32_t len;
    uint32_t *line_starts; /* byte offset of each line start */
    int nlines;
} SourceFile;

typedef struct Loc { const SourceFile *file; uint32_t start, end; } Loc;

#define LOC_NONE ((Loc){0, 0, 0})

SourceFile *source_load(const char *path, char *err, int errlen);     /* NULL + message on failure */
SourceFile *source_from_string(const char *path, const char *text);
void source_free(SourceFile *s);
/* 1-based line and column of a byte offset. */
void source_linecol(const SourceFile *s, uint32_t off, int *line, int *col);
Loc loc_span(Loc a, Loc b);
/* "file:line:col" of loc's start into buf ("?" without a file); returns buf. */
char *loc_str(Loc loc, char *buf, size_t n);
static inline const char *source_name(const SourceFile *s) { return s->shown ? s->shown : s->path; }
