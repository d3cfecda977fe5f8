/* dsl.h — the public entry points of the .vmc front end: load a file with its imports, list its models and
 * recipes, lower a model to a forward Graph, evaluate a recipe. Errors are reported through Diag.
 * A Graph built from a module points at the module's SourceFiles (node Locs): free the graph first. */
#pragma once
#include "diag.h"
#include "graph.h"

typedef struct DslSet { const char *name; const char *value; } DslSet;   /* --set name=value */
typedef struct DslOptions {
    const char **include_dirs; int ninclude;
    const DslSet *sets; int nsets;
} DslOptions;

typedef struct DslModule DslModule;

DslModule *dsl_load(const char *path, const DslOptions *opt, Diag *d);   /* parse file + imports; NULL on errors */
int         dsl_model_count(const DslModule *m);
const char *dsl_model_name(const DslModule *m, int k);
const char *dsl_model_recipe(const DslModule *m, int k);   /* `model X(...) recipe R`: "R", else NULL */
int         dsl_recipe_count(const DslModule *m);
const char *dsl_recipe_name(const DslModule *m, int k);
Graph      *dsl_build_model(DslModule *m, const char *model, Diag *d);   /* evaluate -> forward graph; NULL on errors */

typedef enum { RV_NUM, RV_STR, RV_LIST, RV_BOOL } RecipeValueKind;
typedef struct RecipeEntry {
    const char *key; RecipeValueKind kind; double num; const char *str;
    const double *list; int nlist; Loc loc;
} RecipeEntry;   /* nested keys are dotted: "augment.scale"; RV_BOOL has num 0 or 1 */
typedef struct Recipe { const char *name; RecipeEntry *entries; int n; } Recipe;

/* The Recipe is owned by the module (freed by dsl_free). */
Recipe            *dsl_build_recipe(DslModule *m, const char *name, Diag *d);   /* extends resolved, --set applied */
const RecipeEntry *recipe_get(const Recipe *r, const char *key);                /* NULL when absent */
void               dsl_free(DslModule *m);

/* The AST of every loaded file as S-expressions (golden parse tests, `vmc check --dump-ast`). */
void dsl_dump_ast(const DslModule *m, FILE *out);
