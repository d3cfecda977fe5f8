/* cmd_frontend.c — the front-end commands: `vmc check` (diagnostics), `vmc info` (parameter tensors and
 * totals, text or JSON) and `vmc graph` (the lowered forward graph as text or Graphviz). */
#include "commands.h"
#include "dsl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct FrontArgs {
    const char **files; int nfiles;
    const char *model;
    bool json, dot, dump_ast, help;
    DslSet *sets; int nsets;
    const char **includes; int ninclude;
} FrontArgs;

static void args_free(FrontArgs *a) { free(a->files); free(a->sets); free(a->includes); }

/* The options every front-end command takes for reading a .vmc file. */
#define SOURCE_OPTIONS_HELP                                                        \
    "  --set NAME=VALUE  override a model constant or recipe key (repeatable)\n"   \
    "  -I DIR            add an import directory (models/lib is always searched)\n"

/* Parses the options shared by the three commands; false (with a message) on a bad option. */
static bool parse_args(int argc, char **argv, FrontArgs *a, bool allow_model, bool allow_json, bool allow_dot) {
    memset(a, 0, sizeof *a);
    a->files = calloc((size_t)argc, sizeof(char *));
    a->sets = calloc((size_t)argc, sizeof(DslSet));
    a->includes = calloc((size_t)argc, sizeof(char *));
    for (int k = 1; k < argc; k++) {
        const char *s = argv[k];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { a->help = true; return true; }
        if ((!strcmp(s, "--set") || !strcmp(s, "-I") || !strcmp(s, "--model")) && k + 1 >= argc) {
            fprintf(stderr, "vmc %s: option %s needs a value\n", argv[0], s);
            return false;
        }
        if (!strcmp(s, "--set")) {
            char *eq = strchr(argv[++k], '=');
            if (!eq || eq == argv[k]) { fprintf(stderr, "vmc %s: --set expects NAME=VALUE, found '%s'\n", argv[0], argv[k]); return false; }
            *eq = 0;
            a->sets[a->nsets++] = (DslSet){argv[k], eq + 1};
        } else if (!strcmp(s, "-I")) {
            a->includes[a->ninclude++] = argv[++k];
        } else if (!strncmp(s, "-I", 2)) {
            a->includes[a->ninclude++] = s + 2;
        } else if (allow_model && !strcmp(s, "--model")) {
            a->model = argv[++k];
        } else if (allow_json && !strcmp(s, "--json")) {
            a->json = true;
        } else if (allow_dot && !strcmp(s, "--dot")) {
            a->dot = true;
        } else if (!allow_model && !strcmp(s, "--dump-ast")) {
            a->dump_ast = true;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "vmc %s: unknown option '%s' (see vmc %s --help)\n", argv[0], s, argv[0]);
            return false;
        } else {
            a->files[a->nfiles++] = s;
        }
    }
    return true;
}

static DslOptions options_of(const FrontArgs *a) {
    return (DslOptions){a->includes, a->ninclude, a->sets, a->nsets};
}

/* ------------------------------------------------------------------ check */
int cmd_check(int argc, char **argv) {
    FrontArgs a;
    if (!parse_args(argc, argv, &a, false, false, false)) { args_free(&a); return 1; }
    if (a.help || a.nfiles == 0) {
        fprintf(a.help ? stdout : stderr,
                "usage: vmc check FILE... [--set NAME=VALUE]... [-I DIR]... [--dump-ast]\n"
                "  parses each file and its imports, evaluates every model and recipe, and reports all errors.\n"
                "  exit status 1 on any error; otherwise prints a summary to stdout.\n"
                "  --dump-ast        also print the syntax tree of each file (S-expressions)\n"
                SOURCE_OPTIONS_HELP);
        args_free(&a);
        return a.help ? 0 : 1;
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = options_of(&a);
    int models = 0, recipes = 0;
    for (int f = 0; f < a.nfiles && !diag_full(&d); f++) {
        DslModule *m = dsl_load(a.files[f], &opt, &d);
        if (!m) continue;
        if (a.dump_ast) dsl_dump_ast(m, stdout);
        for (int k = 0; k < dsl_model_count(m) && !diag_full(&d); k++) {
            graph_free(dsl_build_model(m, dsl_model_name(m, k), &d));
            models++;
        }
        for (int k = 0; k < dsl_recipe_count(m) && !diag_full(&d); k++) {
            dsl_build_recipe(m, dsl_recipe_name(m, k), &d);
            recipes++;
        }
        dsl_free(m);
    }
    args_free(&a);
    if (d.errors) return 1;
    printf("ok: %d model%s, %d recipe%s\n", models, models == 1 ? "" : "s", recipes, recipes == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------ info */
static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c < 32) fprintf(out, "\\u%04x", c);
        else fputc(c, out);
    }
    fputc('"', out);
}

static void tags_text(const Node *p, char *buf, size_t n) {
    const ParamInfo *in = p->param;
    snprintf(buf, n, "%s%s%s", in->tags & TAG_FROZEN ? " frozen" : "", in->tags & TAG_BUFFER ? " buffer" : "",
             in->tags & TAG_NODECAY ? " nodecay" : "");
    if (in->lr_layer >= 0) snprintf(buf + strlen(buf), n - strlen(buf), " lr_layer(%d)", in->lr_layer);
}

static void info_json(FILE *out, const char *name, const Graph *g, bool first) {
    fprintf(out, "%s{\"name\":", first ? "" : ",");
    json_str(out, name);
    fprintf(out, ",\"params\":%lld,\"trainable\":%lld,\"tensors\":[", (long long)graph_param_count(g, false),
            (long long)graph_param_count(g, true));
    for (int k = 0; k < g->params.n; k++) {
        const Node *p = g->params.items[k];
        fprintf(out, "%s{\"name\":", k ? "," : "");
        json_str(out, p->name);
        fprintf(out, ",\"shape\":[");
        for (int j = 0; j < p->shape.ndim; j++) fprintf(out, j ? ",%lld" : "%lld", (long long)p->shape.d[j]);
        fprintf(out, "],\"dtype\":\"%s\",\"trainable\":%s,\"init\":\"%s\",\"tags\":[", dtype_name(p->dtype),
                param_trainable(p) ? "true" : "false", init_name(p->param->init));
        const char *names[3] = {"frozen", "buffer", "nodecay"};
        int nt = 0;
        for (int j = 0; j < 3; j++)
            if (p->param->tags & (1u << j)) fprintf(out, "%s\"%s\"", nt++ ? "," : "", names[j]);
        if (p->param->lr_layer >= 0) fprintf(out, "%s\"lr_layer(%d)\"", nt++ ? "," : "", p->param->lr_layer);
        fprintf(out, "]}");
    }
    fprintf(out, "]}");
}

static void info_text(FILE *out, const char *name, const Graph *g) {
    char sb[96], tb[96];
    fprintf(out, "model %s: %d tensors, params %lld, trainable %lld\n", name, g->params.n,
            (long long)graph_param_count(g, false), (long long)graph_param_count(g, true));
    for (int k = 0; k < g->params.n; k++) {
        const Node *p = g->params.items[k];
        tags_text(p, tb, sizeof tb);
        fprintf(out, "  %-44s %-18s %-4s %s%s\n", p->name, shape_str(p->shape, sb, 96), dtype_name(p->dtype),
                init_name(p->param->init), tb);
    }
}

int cmd_info(int argc, char **argv) {
    FrontArgs a;
    if (!parse_args(argc, argv, &a, true, true, false)) { args_free(&a); return 1; }
    if (a.help || a.nfiles != 1) {
        fprintf(a.help ? stdout : stderr,
                "usage: vmc info FILE [--model NAME] [--json] [--set NAME=VALUE]... [-I DIR]...\n"
                "  lists every parameter tensor of each model (or of --model NAME): state-dict name, shape, dtype,\n"
                "  initialiser and tags, with the totals params (without buffers) and trainable (without frozen\n"
                "  tensors and buffers).\n"
                "  --model NAME      only this model\n"
                "  --json            one JSON object instead of text\n"
                SOURCE_OPTIONS_HELP);
        args_free(&a);
        return a.help ? 0 : 1;
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = options_of(&a);
    DslModule *m = dsl_load(a.files[0], &opt, &d);
    int rc = 1;
    if (m) {
        if (a.json) printf("{\"models\":[");
        int shown = 0;
        for (int k = 0; k < dsl_model_count(m); k++) {
            const char *name = dsl_model_name(m, k);
            if (a.model && strcmp(a.model, name)) continue;
            Graph *g = dsl_build_model(m, name, &d);
            if (g && a.json) info_json(stdout, name, g, shown == 0);
            else if (g) info_text(stdout, name, g);
            shown += g != NULL;
            graph_free(g);
        }
        if (a.json) printf("]}\n");
        if (a.model && !shown && !d.errors) diag_error(&d, LOC_NONE, "no model named '%s' in %s", a.model, a.files[0]);
        rc = d.errors ? 1 : 0;
        dsl_free(m);
    }
    args_free(&a);
    return rc;
}

/* ------------------------------------------------------------------ graph */
int cmd_graph(int argc, char **argv) {
    FrontArgs a;
    if (!parse_args(argc, argv, &a, true, false, true)) { args_free(&a); return 1; }
    if (a.help || a.nfiles != 1 || !a.model) {
        fprintf(a.help ? stdout : stderr,
                "usage: vmc graph FILE --model NAME [--dot] [--set NAME=VALUE]... [-I DIR]...\n"
                "  prints the model's forward graph after verification: one node per line, or Graphviz with --dot.\n"
                "  --model NAME      the model to lower (required)\n"
                "  --dot             Graphviz output\n"
                SOURCE_OPTIONS_HELP);
        args_free(&a);
        return a.help ? 0 : 1;
    }
    Diag d;
    diag_init(&d, stderr);
    DslOptions opt = options_of(&a);
    DslModule *m = dsl_load(a.files[0], &opt, &d);
    int rc = 1;
    Graph *g = m ? dsl_build_model(m, a.model, &d) : NULL;
    if (g) {
        char err[512];
        if (!graph_verify(g, err, sizeof err)) {
            fprintf(stderr, "vmc graph: internal error: the graph of '%s' fails verification: %s\n", a.model, err);
            rc = 2;
        } else {
            if (a.dot) graph_dump_dot(g, stdout);
            else graph_dump_text(g, stdout);
            rc = 0;
        }
    }
    graph_free(g);
    dsl_free(m);
    args_free(&a);
    return rc;
}
