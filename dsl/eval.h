/* eval.h — internal to dsl/: the module (loaded files and their definitions), compile-time values and the
 * evaluator state shared by eval.c (statements, layers, models), eval_expr.c (expressions), builtins.c,
 * imports.c and recipe.c. The evaluator is an abstract interpreter: constants are computed, tensors are
 * graph nodes, and every user mistake is a diagnostic at the Loc of the expression that made it. */
#pragma once
#include "ast.h"
#include "dsl.h"
#include "parse.h"

#define DSL_MAX_LIST   (1 << 20)       /* elements in a constant list */
#define DSL_MAX_STRING (1 << 16)       /* bytes in a constant string */
#define DSL_MAX_NUMEL  ((int64_t)1 << 40)
#define DSL_MAX_CELLS  ((int64_t)1 << 24)  /* list elements (and string bytes / 16) made by one evaluation */
#define DSL_STEP_LIMIT 10000000LL      /* evaluation steps per build: stops runaway loops (ARM-H needs < 1%) */

typedef enum DslImports { DSL_IMPORTS_ALL, DSL_IMPORTS_NONE, DSL_IMPORTS_MODELS_ONLY } DslImports;

typedef enum VKind {
    V_ERR,        /* an error was already reported: propagate silently */
    V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_TENSOR,
    V_LAYERDEF,   /* a layer definition, not yet given its constants */
    V_LAYER,      /* a layer instance: definition + bound constants */
    V_FN, V_BUILTIN, V_DTYPE,
    V_SUB,        /* a named sub-layer (sub NAME = ...) */
    V_FAMILY      /* an indexed family of sub-layers (sub NAME[i] = ...) */
} VKind;

typedef struct Value Value;
typedef struct Var { const char *name; Value *v; struct Var *next; } Var;
typedef struct Scope { Var *vars; struct Scope *parent; } Scope;
typedef struct VList { int n; Value *items; } VList;
typedef struct LayerInst { const Ast *def; Scope consts; } LayerInst;
typedef struct SubVal { LayerInst *inst; const char *path; uint32_t tags; int lr_layer; int calls; Loc loc; } SubVal;
typedef struct Family { const char *name; int n, cap; int64_t *index; SubVal **subs; } Family;

struct Value {
    VKind k;
    union { int64_t i; double f; bool b; const char *s; VList *l; Node *t; const Ast *def; LayerInst *layer;
            int builtin; DType dt; SubVal *sub; Family *fam; };
};

/* A definition visible module-wide. */
typedef enum GlobalKind { G_CONST, G_FN, G_LAYER } GlobalKind;
typedef struct Global {
    const char *name; GlobalKind kind; const Ast *def;
    int state;      /* consts: 0 not evaluated, 1 being evaluated (cycle), 2 done */
    Value val;
} Global;

typedef struct SetOverride { const char *name; const Ast *expr; bool used; } SetOverride;

struct DslModule {
    Arena *arena;
    SourceFile **files; int nfiles, fcap;
    Ast **roots;                       /* per file */
    char **realpaths;
    Global *globals; int nglobals, gcap;
    const Ast **models; int nmodels, mcap;
    const Ast **recipes; int nrecipes, rcap;
    SetOverride *sets; int nsets;
    const char **include_dirs; int ninclude;
    DslImports imports;
    int64_t step_limit;
    Arena *values;                     /* module constants, evaluated once at load */
};

typedef struct Decl { const char *name; Loc loc; struct Decl *next; } Decl;

/* Per-execution of a layer, model or fn body. */
typedef struct Frame {
    const char *prefix;      /* state-dict path of this scope ("" at the model root) */
    const char *what;        /* "layer 'Block'", "model 'x'", "fn 'f'" for messages */
    uint32_t tags; int lr_layer;
    bool is_model, is_layer;
    bool reuse;              /* a second call of the same sub-layer: find parameters instead of creating them */
    Loc loss_loc;            /* model: where the loss was declared (loss_loc.file NULL: none yet) */
    Scope *top;
    struct Decl *declared;   /* params and subs declared in this execution (duplicate check) */
    bool returned; Value ret;
} Frame;

typedef struct Counter { const char *prefix; int n; struct Counter *next; } Counter;

typedef struct Eval {
    DslModule *m;
    Diag *d;
    Arena *ar;               /* values of this evaluation */
    Graph *g;                /* NULL while evaluating constants and recipes */
    Frame *fr;
    Scope *scope;            /* innermost block scope of the current frame */
    int depth, calls;
    bool depth_error;
    int64_t steps, cells;
    bool step_error;
    Counter *counters;
    SubVal **subs; int nsubs, subcap;   /* every sub by path, so a second call reuses its parameters */
    struct RecipeCtx *recipe;
} Eval;

/* eval_expr.c */
Value  eval_expr(Eval *ev, const Ast *x);
Value  v_err(void);
Value  v_int(int64_t i);
Value  v_float(double f);
Value  v_bool(bool b);
Value  v_str(const char *s);
Value  v_tensor(Node *t);
Value  v_list(Eval *ev, int n);
const char *v_type(const Value *v);
bool   v_number(const Value *v, double *out);
char  *v_show(Eval *ev, const Value *v);       /* short rendering for messages */
Node  *tensor_of(Eval *ev, Value v, DType like, Loc loc);   /* tensor or number -> Node; NULL + error otherwise */
Node  *checked(Eval *ev, Node *n, Loc loc);    /* builder result: NULL -> report g->err at loc */
bool   eval_budget(Eval *ev, Loc loc);         /* counts a step; false (and one error) past the limit */
bool   eval_memory(Eval *ev, int64_t cells, Loc loc);   /* counts list elements; false (one error) past the limit */
Value  tensor_binary(Eval *ev, int op, Value a, Value b, Loc loc);
Value *scope_lookup(Scope *s, const char *name, Scope **where);
void   scope_set(Eval *ev, Scope *s, const char *name, Value v);

/* eval_expr.c: the closest candidate within a small edit distance, for "did you mean" hints */
typedef struct Suggest { const char *name; const char *best; int dist; } Suggest;
void   suggest_try(Suggest *s, const char *candidate);
const char *suggest_hint(Eval *ev, const Suggest *s);     /* "" or " (did you mean 'x'?)" */

/* eval.c */
typedef struct Arg { const char *kw; Value v; Loc loc; } Arg;
Value  call_value(Eval *ev, Value callee, Arg *args, int nargs, Loc loc, Loc callee_loc);
bool   bind_params(Eval *ev, const char *what, const AstList *defs, Arg *args, int nargs, Scope *into, Loc loc,
                   const char *set_scope);
Global *global_find(DslModule *m, const char *name);
Value  global_value(Eval *ev, Global *gl, Loc loc);
void   eval_init(Eval *ev, DslModule *m, Diag *d, Graph *g);
void   eval_done(Eval *ev);
uint64_t scope_key(Eval *ev);                  /* stable key for a random op: scope path + counter */
bool   eval_want_bool(Eval *ev, Value c, const Ast *at, const char *what);

/* builtins.c */
int    builtin_find(const char *name);
const char *builtin_name(int k);
Value  builtin_call(Eval *ev, int k, Arg *args, int nargs, Loc loc);

/* imports.c */
bool   imports_load(DslModule *m, const SourceFile *src, Ast *root, Diag *d);
/* Loads from a SourceFile (taken over); imports may be restricted and the step limit lowered (the fuzzer). */
DslModule *dsl_load_source(SourceFile *src, const DslOptions *opt, DslImports imports, int64_t step_limit, Diag *d);
void   module_register(DslModule *m, Ast *root, Diag *d);

/* recipe.c */
struct RecipeCtx;
Value *recipe_lookup(Eval *ev, const char *name, Loc loc);
bool   recipe_key_exists(DslModule *m, const char *key);
