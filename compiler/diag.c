/* diag.c — formatting of diagnostics with a source snippet and caret underline. */
#include "diag.h"
#include <stdarg.h>
#include <string.h>

void diag_init(Diag *d, FILE *out) {
    memset(d, 0, sizeof *d);
    d->out = out ? out : stderr;
    d->max_errors = 20;
}

bool diag_full(const Diag *d) { return d->errors >= d->max_errors; }

static void snippet(Diag *d, Loc loc) {
    const SourceFile *s = loc.file;
    int line, col;
    source_linecol(s, loc.start, &line, &col);
    uint32_t ls = s->line_starts[line - 1], le = ls;
    while (le < s->len && s->text[le] != '\n') le++;
    fprintf(d->out, "%5d | %.*s\n      | ", line, (int)(le - ls), s->text + ls);
    for (uint32_t i = ls; i < loc.start; i++) fputc(s->text[i] == '\t' ? '\t' : ' ', d->out);
    uint32_t end = loc.end > loc.start ? loc.end : loc.start + 1;
    if (end > le) end = le > loc.start ? le : loc.start + 1;
    for (uint32_t i = loc.start; i < end; i++) fputc('^', d->out);
    fputc('\n', d->out);
}

static void emit(Diag *d, const char *kind, Loc loc, const char *fmt, va_list ap) {
    if (loc.file) {
        char at[512];
        fprintf(d->out, "%s: %s: ", loc_str(loc, at, sizeof at), kind);
    } else {
        fprintf(d->out, "vmc: %s: ", kind);
    }
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    if (loc.file) snippet(d, loc);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
    d->errors++;
    if (d->errors > d->max_errors) return;
    va_list ap;
    va_start(ap, fmt);
    emit(d, "error", loc, fmt, ap);
    va_end(ap);
    if (d->errors == d->max_errors) fprintf(d->out, "vmc: too many errors (%d), stopping\n", d->max_errors);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...) {
    d->warnings++;
    va_list ap;
    va_start(ap, fmt);
    emit(d, "warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
    if (d->errors > d->max_errors) return;
    va_list ap;
    va_start(ap, fmt);
    emit(d, "note", loc, fmt, ap);
    va_end(ap);
}
