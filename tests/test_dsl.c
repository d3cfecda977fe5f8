/* test_dsl.c — the public front-end API (dsl/dsl.h) on tests/dsl/ok/api.vmc: models, aliases, parameter
 * names, initialiser args and tags, sub-layer reuse, random keys, recipes with extends and --set. */
#include "dsl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: check `%s` failed: ", __FILE__, __LINE__, #cond); \
                              fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static Node *param(const Graph *g, const char *name) {
    Node *p = graph_find_param(g, name);
    CHECK(p != NULL, "no parameter %s", name);
    return p;
}

static void test_model(DslModule *m, Diag *d) {
    CHECK(dsl_model_count(m) == 2, "models %d", dsl_model_count(m));
    CHECK(!strcmp(dsl_model_name(m, 1), "tiny_deep"), "%s", dsl_model_name(m, 1));
    CHECK(dsl_model_recipe(m, 1) && !strcmp(dsl_model_recipe(m, 1), "base"), "alias inherits the default recipe");
    Graph *g = dsl_build_model(m, "tiny", d);
    CHECK(g != NULL, "tiny builds");
    if (!g) return;
    /* 2 blocks x (fc.weight, fc.bias, gate.weight) + mask + A_b_log + pos + cls */
    CHECK(g->params.n == 10, "params %d", g->params.n);
    Node *w = param(g, "layers.1.fc.weight"), *gate = param(g, "layers.0.gate.weight");
    if (w) CHECK(w->param->lr_layer == 2 && w->param->init == INIT_TORCH_LINEAR, "lr_layer %d", w->param->lr_layer);
    if (gate) CHECK((gate->param->tags & TAG_FROZEN) && gate->param->lr_layer == 1, "sub tags apply inside");
    CHECK(graph_find_param(g, "layers.0.gate.bias") == NULL, "bias = false");
    Node *b = param(g, "layers.0.fc.bias");
    if (b) CHECK(b->param->init == INIT_UNIFORM && fabs(b->param->args[1] - 1 / sqrt(8.0)) < 1e-12, "uniform args");
    Node *mask = param(g, "mask");
    if (mask) CHECK(mask->param->init == INIT_BLOCK_CAUSAL && mask->param->args[0] == 2 && (mask->param->tags & TAG_BUFFER), "mask");
    Node *a = param(g, "A_b_log");
    if (a) CHECK(a->param->init == INIT_S4D_REAL, "named param");
    Node *pos = param(g, "pos");
    if (pos) CHECK(pos->param->args[0] == 2 && pos->param->args[1] == 2, "sincos args");
    Node *cls = param(g, "cls");
    if (cls) CHECK(cls->param->init == INIT_TRUNC_NORMAL && cls->param->args[0] == 0.02 && cls->param->args[1] == -2 &&
                   cls->param->args[2] == 2 && (cls->param->tags & TAG_NODECAY), "trunc_normal args");
    int masks = 0;
    uint64_t keys[4] = {0};
    for (int k = 0; k < g->nnodes; k++)
        if (g->nodes[k]->op == OP_DROP_MASK && masks < 4) keys[masks++] = (uint64_t)g->nodes[k]->i[1];
    CHECK(masks == 2 && keys[0] != keys[1], "one drop mask per block with distinct keys (%d)", masks);
    CHECK(g->loss && g->loss->shape.ndim == 0, "scalar loss");
    CHECK(graph_find_named(g, "enc") && graph_find_named(g, "out"), "tap and output");
    CHECK(graph_param_count(g, false) == 2 * (64 + 8 + 64) + 8 * 16 + 32 + 8, "params %lld", (long long)graph_param_count(g, false));
    CHECK(graph_param_count(g, true) == 2 * (64 + 8) + 8 * 16 + 8, "trainable %lld", (long long)graph_param_count(g, true));
    char err[256];
    CHECK(graph_verify(g, err, sizeof err), "verify: %s", err);
    graph_free(g);
    g = dsl_build_model(m, "tiny_deep", d);
    CHECK(g && graph_find_param(g, "layers.2.fc.weight"), "alias depth = 3");
    graph_free(g);
}

static void test_recipe(DslModule *m, Diag *d) {
    Recipe *r = dsl_build_recipe(m, "large", d);
    CHECK(r != NULL, "recipe builds");
    if (!r) return;
    const RecipeEntry *e = recipe_get(r, "lr");
    CHECK(e && e->kind == RV_NUM && fabs(e->num - 1.5e-4 * 128 / 256) < 1e-15, "lr follows the derived batch");
    e = recipe_get(r, "betas");
    CHECK(e && e->kind == RV_LIST && e->nlist == 2 && e->list[1] == 0.95, "betas");
    e = recipe_get(r, "augment.both");
    CHECK(e && e->num == 128.5, "group names see siblings, then top-level keys");
    e = recipe_get(r, "ema");
    CHECK(e && e->kind == RV_BOOL && e->num == 0, "bool");
    e = recipe_get(r, "optimizer");
    CHECK(e && e->kind == RV_STR && !strcmp(e->str, "adamw"), "string");
    CHECK(recipe_get(r, "nope") == NULL, "absent key");
}

static void test_sets(Diag *d) {
    DslSet sets[] = {{"C", "16"}, {"batch", "64"}, {"augment.hflip", "0.25"}, {"optimizer", "sgd"}};
    DslOptions opt = {NULL, 0, sets, 4};
    DslModule *m = dsl_load("ok/api.vmc", &opt, d);
    CHECK(m != NULL, "load with --set");
    if (!m) return;
    Graph *g = dsl_build_model(m, "tiny", d);
    Node *w = g ? graph_find_param(g, "layers.0.fc.weight") : NULL;
    CHECK(w && w->shape.d[0] == 16, "--set C=16 changes the model");
    graph_free(g);
    Recipe *r = dsl_build_recipe(m, "large", d);
    const RecipeEntry *e = r ? recipe_get(r, "lr") : NULL;
    CHECK(e && fabs(e->num - 1.5e-4 * 64 / 256) < 1e-15, "--set batch wins over extends");
    e = r ? recipe_get(r, "augment.hflip") : NULL;
    CHECK(e && e->num == 0.25, "--set of a nested key");
    e = r ? recipe_get(r, "optimizer") : NULL;
    CHECK(e && e->kind == RV_STR && !strcmp(e->str, "sgd"), "--set of a bare word gives a string");
    dsl_free(m);
}

static void test_imports(Diag *d) {
    const char *inc[] = {"imports/inc"};
    DslOptions opt = {inc, 1, NULL, 0};
    DslModule *m = dsl_load("imports/main.vmc", &opt, d);
    CHECK(m != NULL, "imports resolve (relative, -I, models/) and a file reached twice loads once");
    dsl_free(m);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    Diag quiet;
    diag_init(&quiet, mem);
    m = dsl_load("imports/main.vmc", NULL, &quiet);      /* without -I, from_inc.vmc is not found */
    fclose(mem);
    CHECK(m == NULL && quiet.errors == 1 && strstr(buf, "imports/main.vmc:3:8: error: cannot find 'from_inc.vmc'"), "%s", buf);
    free(buf);
    dsl_free(m);
}

int main(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    Diag d;
    diag_init(&d, mem);
    DslModule *m = dsl_load("ok/api.vmc", NULL, &d);
    CHECK(m != NULL, "load");
    if (m) { test_model(m, &d); test_recipe(m, &d); dsl_free(m); }
    test_sets(&d);
    test_imports(&d);
    fclose(mem);
    CHECK(d.errors == 0, "diagnostics:\n%s", buf);
    free(buf);
    if (failures) { fprintf(stderr, "%d checks failed\n", failures); return 1; }
    printf("dsl api: all checks passed\n");
    return 0;
}
