/* metrics.c — writes metrics.jsonl lines (see metrics.h). */
#include "metrics.h"
#include "util.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Metrics { FILE *f; int nfields; };

Metrics *metrics_open(const char *path, bool append, char *err, int errlen) {
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) { snprintf(err, (size_t)errlen, "%s: cannot open for writing: %s", path, strerror(errno)); return NULL; }
    Metrics *m = xcalloc(1, sizeof *m);
    m->f = f;
    return m;
}

void metrics_begin(Metrics *m) { fputc('{', m->f); m->nfields = 0; }

static void key(Metrics *m, const char *k) { fprintf(m->f, "%s\"%s\": ", m->nfields++ ? ", " : "", k); }

void metrics_int(Metrics *m, const char *k, int64_t v) { key(m, k); fprintf(m->f, "%lld", (long long)v); }

void metrics_num(Metrics *m, const char *k, double v) {
    key(m, k);
    if (isfinite(v)) fprintf(m->f, "%.9g", v); else fputs("null", m->f);
}

void metrics_str(Metrics *m, const char *k, const char *v) {
    key(m, k);
    fputc('"', m->f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(m->f, "\\%c", *p);
        else if (*p < 0x20) fprintf(m->f, "\\u%04x", *p);
        else fputc(*p, m->f);
    }
    fputc('"', m->f);
}

void metrics_end(Metrics *m) { fputs("}\n", m->f); fflush(m->f); }

void metrics_close(Metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m);
}
