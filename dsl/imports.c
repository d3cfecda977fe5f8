/* imports.c — the module: loading a file and its imports (relative to the importer, then -I dirs, then the
 * models/ directory), cycle detection, the module-wide definition tables, --set parsing and checking,
 * evaluation of module constants, and the small accessors of dsl.h. */
#include "eval.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VMC_SOURCE_DIR
#define VMC_SOURCE_DIR "."
#endif

typedef struct Loading { const char *path; const char *real; struct Loading *up; } Loading;

static void push_file(DslModule *m, SourceFile *src, Ast *root, const char *real) {
    if (m->nfiles == m->fcap) {
        m->fcap = m->fcap ? m->fcap * 2 : 8;
        m->files = xrealloc(m->files, sizeof(SourceFile *) * (size_t)m->fcap);
        m->roots = xrealloc(m->roots, sizeof(Ast *) * (size_t)m->fcap);
        m->realpaths = xrealloc(m->realpaths, sizeof(char *) * (size_t)m->fcap);
    }
    m->files[m->nfiles] = src;
    m->roots[m->nfiles] = root;
    m->realpaths[m->nfiles] = real ? xstrdup(real) : NULL;
    m->nfiles++;
}

static bool readable(const char *p) { return access(p, R_OK) == 0; }

/* The models/ directories searched last: $VMC_MODELS, next to the executable, and the source tree. */
static int models_dirs(DslModule *m, const char **out) {
    int n = 0;
    const char *env = getenv("VMC_MODELS");
    if (env && *env) out[n++] = env;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            out[n++] = arena_printf(m->arena, "%s/../models", exe);
            out[n++] = arena_printf(m->arena, "%s/models", exe);
        }
    }
    out[n++] = VMC_SOURCE_DIR "/models";
    return n;
}

static char *resolve(DslModule *m, const char *importer, const char *rel) {
    if (m->imports == DSL_IMPORTS_MODELS_ONLY) {       /* only plain paths below models/ */
        if (rel[0] == '/' || strstr(rel, "..")) return NULL;
        const char *dirs[4];
        int nd = models_dirs(m, dirs);
        for (int k = 0; k < nd; k++) {
            char *p = arena_printf(m->arena, "%s/%s", dirs[k], rel);
            if (readable(p)) return p;
        }
        return NULL;
    }
    if (rel[0] == '/') return readable(rel) ? arena_strdup(m->arena, rel) : NULL;
    const char *slash = strrchr(importer, '/');
    char *p = slash ? arena_printf(m->arena, "%.*s/%s", (int)(slash - importer), importer, rel) : arena_strdup(m->arena, rel);
    if (readable(p)) return p;
    for (int k = 0; k < m->ninclude; k++) {
        p = arena_printf(m->arena, "%s/%s", m->include_dirs[k], rel);
        if (readable(p)) return p;
    }
    const char *dirs[4];
    int nd = models_dirs(m, dirs);
    for (int k = 0; k < nd; k++) {
        p = arena_printf(m->arena, "%s/%s", dirs[k], rel);
        if (readable(p)) return p;
    }
    return NULL;
}

/* Messages name an imported file by its path relative to the working directory when it lies below it, or as
 * models/<import> when it came from a models/ search directory (build/../models/lib/nn.vmc reads badly and
 * changes from one checkout to another). */
static void shorten_path(DslModule *m, SourceFile *s, const char *real, const char *rel) {
    char cwd[PATH_MAX];
    size_t n;
    if (getcwd(cwd, sizeof cwd) && (n = strlen(cwd)) > 1 && !strncmp(real, cwd, n) && real[n] == '/') {
        s->shown = xstrdup(real + n + 1);
        return;
    }
    const char *dirs[4];
    int nd = models_dirs(m, dirs);
    for (int k = 0; k < nd; k++) {
        size_t len = strlen(dirs[k]);
        if (strncmp(s->path, dirs[k], len) || s->path[len] != '/') continue;
        s->shown = xstrdup(arena_printf(m->arena, "models/%s", rel));
        return;
    }
}

static bool loaded(const DslModule *m, const char *real) {
    for (int k = 0; k < m->nfiles; k++) if (m->realpaths[k] && !strcmp(m->realpaths[k], real)) return true;
    return false;
}

static void load_tree(DslModule *m, SourceFile *src, const char *real, Loading *up, Diag *d);

static void load_import(DslModule *m, const SourceFile *from, const Ast *imp, Loading *stack, Diag *d) {
    if (m->imports == DSL_IMPORTS_NONE) { diag_error(d, imp->loc, "imports are disabled here"); return; }
    char *path = resolve(m, from->path, imp->name);
    if (!path) {
        diag_error(d, imp->loc, "cannot find '%s' (searched next to this file, in the -I directories and in models/)", imp->name);
        return;
    }
    char real[PATH_MAX];
    if (!realpath(path, real)) { diag_error(d, imp->loc, "cannot resolve '%s'", path); return; }
    for (Loading *l = stack; l; l = l->up) {
        if (strcmp(l->real, real)) continue;
        char *chain = arena_printf(m->arena, "%s", path);
        for (Loading *k = stack; k; k = k->up) {
            chain = arena_printf(m->arena, "%s -> %s", k->path, chain);
            if (k == l) break;
        }
        diag_error(d, imp->loc, "import cycle: %s", chain);
        return;
    }
    if (loaded(m, real)) return;
    char err[600];
    SourceFile *s = source_load(path, err, sizeof err);
    if (!s) { diag_error(d, imp->loc, "%s", err); return; }
    shorten_path(m, s, real, imp->name);
    load_tree(m, s, real, stack, d);
}

static void load_tree(DslModule *m, SourceFile *src, const char *real, Loading *up, Diag *d) {
    Ast *root = dsl_parse_file(src, m->arena, d);
    push_file(m, src, root, real);
    Loading me = {src->path, real ? real : "", up};
    for (int k = 0; k < root->list.n && !diag_full(d); k++)
        if (root->list.items[k]->kind == I_IMPORT) load_import(m, src, root->list.items[k], &me, d);
    module_register(m, root, d);
}

/* ------------------------------------------------------------------ definitions */
static const Ast *find_def(const Ast **list, int n, const char *name) {
    for (int k = 0; k < n; k++) if (!strcmp(list[k]->name, name)) return list[k];
    return NULL;
}

static void add_def(const Ast ***list, int *n, int *cap, const Ast *x) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *list = xrealloc(*list, sizeof(Ast *) * (size_t)*cap);
    }
    (*list)[(*n)++] = x;
}

static int def_index_of(const AstList *defs, const char *name) {
    for (int k = 0; k < defs->n; k++) if (!strcmp(defs->items[k]->name, name)) return k;
    return -1;
}

static void check_param_names(const AstList *defs, Diag *d) {
    for (int k = 0; k < defs->n; k++)
        for (int j = 0; j < k; j++)
            if (!strcmp(defs->items[j]->name, defs->items[k]->name))
                diag_error(d, defs->items[k]->loc, "parameter '%s' is listed twice", defs->items[k]->name);
}

void module_register(DslModule *m, Ast *root, Diag *d) {
    for (int k = 0; k < root->list.n; k++) {
        const Ast *x = root->list.items[k];
        GlobalKind gk = G_CONST;
        if (x->kind == I_FN) { gk = G_FN; check_param_names(&x->list, d); }
        if (x->kind == I_LAYER) {
            gk = G_LAYER;
            check_param_names(&x->list, d);
            check_param_names(&x->list2, d);
            for (int j = 0; j < x->list2.n; j++)
                if (def_index_of(&x->list, x->list2.items[j]->name) >= 0)
                    diag_error(d, x->list2.items[j]->loc, "'%s' is both a constant parameter and a tensor input of layer '%s'",
                               x->list2.items[j]->name, x->name);
        }
        if (x->kind == I_MODEL || x->kind == I_MODEL_ALIAS) {
            const Ast *old = find_def(m->models, m->nmodels, x->name);
            check_param_names(&x->list, d);
            if (old) { diag_error(d, x->loc, "duplicate model '%s'", x->name); diag_note(d, old->loc, "'%s' was first defined here", x->name); }
            else add_def(&m->models, &m->nmodels, &m->mcap, x);
            continue;
        }
        if (x->kind == I_RECIPE) {
            const Ast *old = find_def(m->recipes, m->nrecipes, x->name);
            if (old) { diag_error(d, x->loc, "duplicate recipe '%s'", x->name); diag_note(d, old->loc, "'%s' was first defined here", x->name); }
            else add_def(&m->recipes, &m->nrecipes, &m->rcap, x);
            continue;
        }
        if (x->kind != I_CONST && x->kind != I_FN && x->kind != I_LAYER) continue;    /* imports */
        Global *old = global_find(m, x->name);
        if (old) {
            diag_error(d, x->loc, "duplicate definition of '%s'", x->name);
            diag_note(d, old->def->loc, "'%s' was first defined here", x->name);
            continue;
        }
        if (m->nglobals == m->gcap) {
            m->gcap = m->gcap ? m->gcap * 2 : 32;
            m->globals = xrealloc(m->globals, sizeof(Global) * (size_t)m->gcap);
        }
        m->globals[m->nglobals++] = (Global){.name = x->name, .kind = gk, .def = x};
    }
}

/* ------------------------------------------------------------------ --set */
static void parse_sets(DslModule *m, const DslOptions *opt, Diag *d) {
    if (!opt || !opt->nsets) return;
    m->sets = xcalloc((size_t)opt->nsets, sizeof(SetOverride));
    for (int k = 0; k < opt->nsets; k++) {
        const char *name = opt->sets[k].name, *value = opt->sets[k].value;
        SourceFile *src = source_from_string(arena_printf(m->arena, "--set %s", name), value ? value : "");
        push_file(m, src, NULL, NULL);
        const Ast *e = dsl_parse_expr(src, m->arena, d);
        if (e) m->sets[m->nsets++] = (SetOverride){arena_strdup(m->arena, name), e, false};
    }
}

static bool model_has_param(const DslModule *m, const char *name) {
    for (int k = 0; k < m->nmodels; k++) {
        const Ast *x = m->models[k];
        if (x->kind != I_MODEL) continue;
        for (int j = 0; j < x->list.n; j++) if (!strcmp(x->list.items[j]->name, name)) return true;
    }
    return false;
}

static void check_sets(DslModule *m, Diag *d) {
    for (int k = 0; k < m->nsets; k++) {
        const char *n = m->sets[k].name;
        const Ast *e = m->sets[k].expr;
        /* --set precision=bf16: a bare word that names nothing is a string, so shells need no quotes */
        if (e->kind == E_NAME && !global_find(m, e->name) && !recipe_key_exists(m, e->name) && builtin_find(e->name) < 0) {
            Ast *s = ast_new(m->arena, E_STR, e->loc);
            s->name = e->name;
            m->sets[k].expr = s;
        }
        Global *g = global_find(m, n);
        if ((g && g->kind == G_CONST) || model_has_param(m, n) || recipe_key_exists(m, n)) continue;
        diag_error(d, LOC_NONE, "--set %s: there is no constant, model parameter or recipe key named '%s'", n, n);
    }
}

/* ------------------------------------------------------------------ loading */
DslModule *dsl_load_source(SourceFile *src, const DslOptions *opt, DslImports imports, int64_t step_limit, Diag *d) {
    int errors = d->errors;
    DslModule *m = xcalloc(1, sizeof *m);
    m->arena = arena_new(1 << 16);
    m->imports = imports;
    m->step_limit = step_limit > 0 ? step_limit : DSL_STEP_LIMIT;
    if (opt && opt->ninclude) {
        m->include_dirs = arena_alloc(m->arena, sizeof(char *) * (size_t)opt->ninclude);
        for (int k = 0; k < opt->ninclude; k++) m->include_dirs[k] = arena_strdup(m->arena, opt->include_dirs[k]);
        m->ninclude = opt->ninclude;
    }
    parse_sets(m, opt, d);
    char real[PATH_MAX];
    load_tree(m, src, realpath(src->path, real) ? real : NULL, NULL, d);
    if (d->errors == errors) check_sets(m, d);
    if (d->errors == errors) {           /* constants once, in the module's lifetime */
        Eval ev;
        eval_init(&ev, m, d, NULL);
        for (int k = 0; k < m->nglobals && !diag_full(d); k++)
            if (m->globals[k].kind == G_CONST) global_value(&ev, &m->globals[k], m->globals[k].def->loc);
        m->values = ev.ar;
        ev.ar = arena_new(64);
        eval_done(&ev);
    }
    if (d->errors != errors) { dsl_free(m); return NULL; }
    return m;
}

DslModule *dsl_load(const char *path, const DslOptions *opt, Diag *d) {
    char err[600];
    SourceFile *src = source_load(path, err, sizeof err);
    if (!src) { diag_error(d, LOC_NONE, "%s", err); return NULL; }
    return dsl_load_source(src, opt, DSL_IMPORTS_ALL, 0, d);
}

void dsl_free(DslModule *m) {
    if (!m) return;
    for (int k = 0; k < m->nfiles; k++) { source_free(m->files[k]); free(m->realpaths[k]); }
    free(m->files); free(m->roots); free(m->realpaths);
    free(m->globals); free(m->models); free(m->recipes); free(m->sets);
    if (m->values) arena_free(m->values);
    arena_free(m->arena);
    free(m);
}

int dsl_model_count(const DslModule *m) { return m->nmodels; }
const char *dsl_model_name(const DslModule *m, int k) { return m->models[k]->name; }
int dsl_recipe_count(const DslModule *m) { return m->nrecipes; }
const char *dsl_recipe_name(const DslModule *m, int k) { return m->recipes[k]->name; }

const char *dsl_model_recipe(const DslModule *m, int k) {
    const Ast *x = m->models[k];
    for (int hops = 0; x && x->kind == I_MODEL_ALIAS && hops < 32; hops++) x = find_def(m->models, m->nmodels, x->a->a->name);
    return x && x->kind == I_MODEL ? x->name2 : NULL;
}

void dsl_dump_ast(const DslModule *m, FILE *out) {
    bool first = true;
    for (int k = 0; k < m->nfiles; k++) {
        if (!m->roots[k]) continue;
        if (!first) fprintf(out, "# file %s\n", source_name(m->files[k]));
        first = false;
        ast_dump(m->roots[k], out);
    }
}
