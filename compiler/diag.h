/* diag.h — the one diagnostics sink for lexer, parser, evaluator and passes.
 * Prints `file:line:col: error: msg`, the source line and a caret underline; stops counting after a cap. */
#pragma once
#include "source.h"
#include <stdio.h>

typedef struct Diag {
    FILE *out;          /* where messages go (stderr by default; tests use a memstream) */
    int errors, warnings;
    int max_errors;     /* 20: further errors are counted but not printed */
    bool color;
} Diag;

void diag_init(Diag *d, FILE *out);
void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool diag_full(const Diag *d);   /* true once max_errors were reported: callers stop */
