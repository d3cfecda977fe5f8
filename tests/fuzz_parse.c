/* fuzz_parse.c — libFuzzer target: arbitrary bytes through the scanner, parser and evaluator (every model
 * built, every recipe evaluated). Imports reach only files below models/ (so the seed models load their
 * libraries) and the evaluation step budget is small, so an input can neither read other files nor run for
 * long; any crash, sanitizer report, leak or hang is a bug. */
#include "eval.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;                       /* an embedded NUL ends the text, as source_load would refuse it */
    Diag d;
    diag_init(&d, sink);
    DslSet sets[1] = {{"fuzz_const", "1"}};
    DslOptions opt = {NULL, 0, sets, size > 0 && data[0] == 'c' ? 1 : 0};
    DslModule *m = dsl_load_source(source_from_string("fuzz.vmc", text), &opt, DSL_IMPORTS_MODELS_ONLY, 200000, &d);
    free(text);
    if (!m) return 0;
    for (int k = 0; k < dsl_model_count(m) && !diag_full(&d); k++) {
        Graph *g = dsl_build_model(m, dsl_model_name(m, k), &d);
        if (g) {
            char err[256];
            if (!graph_verify(g, err, sizeof err)) { fprintf(stderr, "graph_verify: %s\n", err); abort(); }
            graph_free(g);
        }
    }
    for (int k = 0; k < dsl_recipe_count(m) && !diag_full(&d); k++) dsl_build_recipe(m, dsl_recipe_name(m, k), &d);
    dsl_free(m);
    return 0;
}
