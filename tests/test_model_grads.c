/* test_model_grads.c — whole-model gradient checks: the tiny ARM pretraining and fine-tuning models of
 * models/tiny.vmc, shrunk with --set, lowered by the DSL, differentiated, and every parameter's gradient
 * compared with central finite differences in fp64 (sampled elements per parameter).
 * Usage: test_model_grads REPO_ROOT */
#include "cpu_check.h"
#include "diag.h"
#include "dsl.h"

static void check_model(const char *root, const char *model, const DslSet *sets, int nsets, const char *what) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny.vmc", root);
    Diag d;
    diag_init(&d, stdout);
    DslOptions opt = {NULL, 0, sets, nsets};
    DslModule *m = dsl_load(path, &opt, &d);
    Graph *g = m ? dsl_build_model(m, model, &d) : NULL;
    if (!g || !g->loss) {
        printf("FAIL %s: could not build %s from %s\n", what, model, path);
        check_failures++;
        if (m) dsl_free(m);
        return;
    }
    int trainable = 0;
    for (int k = 0; k < g->params.n; k++) trainable += param_trainable(g->params.items[k]);
    printf("     %s: %d nodes, %d parameters (%d trainable, %lld values)\n", what, g->nnodes, g->params.n, trainable,
           (long long)graph_param_count(g, true));
    /* Gradients here go down to 1e-7 while FD noise is ~1e-10 absolute at h = 1e-6: Richardson-extrapolated
     * differences with h = 1e-3 (truncation O(h^4)), errors relative to max(|grad|, 1e-5). A wrong rule shows up
     * as O(1) errors; only discrepancies below 1e-10 absolute could hide under the floor. */
    CheckOpts o = {1e-5, {0}, 3, false, true, true, 1e-3, true, 1e-5};
    check_grads(what, g, g->loss, &o);
    graph_free(g);
    dsl_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s REPO_ROOT\n", argv[0]); return 2; }
    static const DslSet pre[] = {{"batch", "2"}, {"img", "8"}, {"patch", "2"}, {"C", "8"}, {"depth", "2"}, {"cs", "2"}};
    check_model(argv[1], "tiny_pretrain", pre, (int)COUNTOF(pre), "tiny_pretrain (8 px, 2x2 patches, C 8, depth 2)");
    static const DslSet abl[] = {{"batch", "2"}, {"img", "8"}, {"patch", "2"}, {"C", "8"}, {"depth", "2"}, {"cs", "2"},
                                 {"order", "\"random\""}, {"block", "\"vim\""}, {"target", "\"raw\""},
                                 {"attn", "\"explicit\""}};
    check_model(argv[1], "tiny_pretrain", abl, (int)COUNTOF(abl),
                "tiny_pretrain ablations (random cluster order, vim block, raw target, attention spelt out)");
    static const DslSet ft[] = {{"batch", "2"}, {"img", "8"}, {"patch", "2"}, {"C", "8"}, {"depth", "2"},
                                {"head_std", "0.02"}, {"drop_path_rate", "0.3"}};
    check_model(argv[1], "tiny_ft", ft, (int)COUNTOF(ft), "tiny_ft (4 scan directions, drop path 0.3)");
    printf("%s: %d failure(s)\n", check_failures ? "FAILED" : "PASSED", check_failures);
    return check_failures ? 1 : 0;
}
