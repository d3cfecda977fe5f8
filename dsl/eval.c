/* eval.c — statements, calls and models: binds constant arguments, runs layer bodies in their state-dict
 * scope (params, subs, families), and builds a model's forward graph (dsl_build_model). */
#include "eval.h"
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void exec_stmt(Eval *ev, const Ast *s);

/* ------------------------------------------------------------------ evaluator setup */
void eval_init(Eval *ev, DslModule *m, Diag *d, Graph *g) {
    memset(ev, 0, sizeof *ev);
    ev->m = m; ev->d = d; ev->g = g;
    ev->ar = arena_new(1 << 16);
}

void eval_done(Eval *ev) {
    arena_free(ev->ar);
    free(ev->subs);
}

uint64_t scope_key(Eval *ev) {
    const char *prefix = ev->fr ? ev->fr->prefix : "";
    Counter *c = ev->counters;
    while (c && strcmp(c->prefix, prefix)) c = c->next;
    if (!c) {
        c = arena_alloc(ev->ar, sizeof *c);
        c->prefix = prefix; c->next = ev->counters; ev->counters = c;
    }
    int64_t n = c->n++;
    uint64_t h = hash_bytes(HASH_SEED, prefix, strlen(prefix));
    return hash_bytes(h, &n, sizeof n);
}

static const char *join(Eval *ev, const char *prefix, const char *name) {
    return prefix && prefix[0] ? arena_printf(ev->ar, "%s.%s", prefix, name) : arena_strdup(ev->ar, name);
}

/* ------------------------------------------------------------------ globals */
Global *global_find(DslModule *m, const char *name) {
    for (int k = 0; k < m->nglobals; k++) if (!strcmp(m->globals[k].name, name)) return &m->globals[k];
    return NULL;
}

static SetOverride *set_find(DslModule *m, const char *name) {
    for (int k = 0; k < m->nsets; k++) if (!strcmp(m->sets[k].name, name)) return &m->sets[k];
    return NULL;
}

/* Evaluates an expression in the module scope only (constants, --set values, alias arguments). */
static Value eval_const_expr(Eval *ev, const Ast *x) {
    Frame *fr = ev->fr;
    Scope *sc = ev->scope;
    Graph *g = ev->g;
    struct RecipeCtx *rc = ev->recipe;
    ev->fr = NULL; ev->scope = NULL; ev->g = NULL; ev->recipe = NULL;
    Value v = eval_expr(ev, x);
    ev->fr = fr; ev->scope = sc; ev->g = g; ev->recipe = rc;
    return v;
}

Value global_value(Eval *ev, Global *gl, Loc loc) {
    switch (gl->kind) {
    case G_FN: return (Value){.k = V_FN, .def = gl->def};
    case G_LAYER: return (Value){.k = V_LAYERDEF, .def = gl->def};
    case G_CONST: break;
    }
    if (gl->state == 2) return gl->val;
    if (gl->state == 1) {
        diag_error(ev->d, loc, "constant '%s' depends on itself", gl->name);
        return v_err();
    }
    gl->state = 1;
    SetOverride *so = set_find(ev->m, gl->name);
    if (so) so->used = true;
    gl->val = eval_const_expr(ev, so ? so->expr : gl->def->a);
    gl->state = 2;
    return gl->val;
}

/* ------------------------------------------------------------------ argument binding */
static int def_index(const AstList *defs, const char *name) {
    for (int k = 0; k < defs->n; k++) if (!strcmp(defs->items[k]->name, name)) return k;
    return -1;
}

bool bind_params(Eval *ev, const char *what, const AstList *defs, Arg *args, int nargs, Scope *into, Loc loc,
                 const char *set_scope) {
    int n = defs->n, next = 0;
    Value *vals = arena_alloc(ev->ar, sizeof(Value) * (size_t)(n ? n : 1));
    bool *given = arena_alloc(ev->ar, sizeof(bool) * (size_t)(n ? n : 1)), ok = true, seen_kw = false;
    for (int k = 0; k < nargs; k++) {
        int j;
        if (args[k].kw) {
            seen_kw = true;
            j = def_index(defs, args[k].kw);
            if (j < 0) {
                Suggest sg = {args[k].kw, NULL, 99};
                for (int i = 0; i < n; i++) suggest_try(&sg, defs->items[i]->name);
                diag_error(ev->d, args[k].loc, "%s has no parameter named '%s'%s", what, args[k].kw, suggest_hint(ev, &sg));
                ok = false;
                continue;
            }
            if (given[j]) { diag_error(ev->d, args[k].loc, "argument '%s' of %s is given twice", args[k].kw, what); ok = false; continue; }
        } else {
            if (seen_kw) { diag_error(ev->d, args[k].loc, "a positional argument follows keyword arguments"); ok = false; continue; }
            if (next >= n) {
                diag_error(ev->d, args[k].loc, "too many arguments: %s takes %d constant argument%s, found %d", what, n,
                           n == 1 ? "" : "s", nargs);
                return false;
            }
            j = next++;
        }
        vals[j] = args[k].v;
        given[j] = true;
    }
    if (!ok) return false;
    Scope *saved = ev->scope;
    for (int j = 0; j < n; j++) {
        const Ast *p = defs->items[j];
        SetOverride *so = set_scope ? set_find(ev->m, p->name) : NULL;
        if (so) {
            so->used = true;
            vals[j] = eval_const_expr(ev, so->expr);
        } else if (!given[j]) {
            if (!p->a) {
                diag_error(ev->d, loc, "missing argument '%s': %s takes %d constant argument%s", p->name, what, n,
                           n == 1 ? "" : "s");
                ok = false;
                continue;
            }
            ev->scope = into;      /* defaults see the parameters before them */
            vals[j] = eval_expr(ev, p->a);
            ev->scope = saved;
        }
        scope_set(ev, into, p->name, vals[j]);
    }
    return ok;
}

/* ------------------------------------------------------------------ calls */
static Value call_fn(Eval *ev, const Ast *def, Arg *args, int nargs, Loc loc) {
    const char *what = arena_printf(ev->ar, "fn '%s'", def->name);
    Scope *top = arena_alloc(ev->ar, sizeof *top);
    if (!bind_params(ev, what, &def->list, args, nargs, top, loc, NULL)) return v_err();
    if (ev->calls >= DSL_MAX_CALLS) {
        if (!ev->depth_error) diag_error(ev->d, loc, "calls are nested too deeply (more than %d levels): is %s recursive?", DSL_MAX_CALLS, what);
        ev->depth_error = true;
        return v_err();
    }
    Scope *saved = ev->scope;
    ev->scope = top;
    ev->calls++;
    Value v = eval_expr(ev, def->a);
    ev->calls--;
    ev->scope = saved;
    return v;
}

static Value instantiate(Eval *ev, const Ast *def, Arg *args, int nargs, Loc loc) {
    const char *what = arena_printf(ev->ar, "layer '%s'", def->name);
    LayerInst *inst = arena_alloc(ev->ar, sizeof *inst);
    inst->def = def;
    if (!bind_params(ev, what, &def->list, args, nargs, &inst->consts, loc, NULL)) return v_err();
    return (Value){.k = V_LAYER, .layer = inst};
}

static Value call_layer(Eval *ev, LayerInst *inst, const char *prefix, uint32_t tags, int lr, bool reuse, Arg *args,
                        int nargs, Loc loc) {
    const Ast *def = inst->def;
    const char *what = arena_printf(ev->ar, "layer '%s'", def->name);
    for (int k = 0; k < nargs; k++)
        if (args[k].kw) { diag_error(ev->d, args[k].loc, "tensor inputs of %s are positional (found '%s = ...')", what, args[k].kw); return v_err(); }
    if (nargs != def->list2.n) {
        diag_error(ev->d, loc, "%s takes %d tensor input%s, found %d", what, def->list2.n, def->list2.n == 1 ? "" : "s", nargs);
        return v_err();
    }
    if (!ev->g) { diag_error(ev->d, loc, "a layer cannot be called in a constant expression"); return v_err(); }
    if (ev->calls >= DSL_MAX_CALLS) {
        if (!ev->depth_error) diag_error(ev->d, loc, "layer calls are nested too deeply (more than %d levels): is %s recursive?", DSL_MAX_CALLS, what);
        ev->depth_error = true;
        return v_err();
    }
    Frame fr = {.prefix = prefix, .what = what, .tags = tags, .lr_layer = lr, .is_layer = true, .reuse = reuse};
    Scope *top = arena_alloc(ev->ar, sizeof *top);
    for (Var *v = inst->consts.vars; v; v = v->next) scope_set(ev, top, v->name, *v->v);
    for (int k = 0; k < nargs; k++) scope_set(ev, top, def->list2.items[k]->name, args[k].v);
    fr.top = top;
    Frame *saved_fr = ev->fr;
    Scope *saved_sc = ev->scope;
    ev->fr = &fr; ev->scope = top;
    ev->calls++;
    int errors_before = ev->d->errors;
    for (int k = 0; k < def->b->list.n && !fr.returned && !diag_full(ev->d); k++) exec_stmt(ev, def->b->list.items[k]);
    ev->calls--;
    /* An error inside a library layer also points at the call that led there (a traceback, innermost first). */
    if (ev->d->errors > errors_before && loc.file && loc.file != def->loc.file)
        diag_note(ev->d, loc, "in %s called from here", what);
    ev->fr = saved_fr; ev->scope = saved_sc;
    if (!fr.returned) {
        diag_error(ev->d, def->loc, "%s ends without 'return'", what);
        return v_err();
    }
    return fr.ret;
}

Value call_value(Eval *ev, Value f, Arg *args, int nargs, Loc loc, Loc callee_loc) {
    Frame *fr = ev->fr;
    uint32_t tags = fr ? fr->tags : 0;
    int lr = fr ? fr->lr_layer : -1;
    const char *prefix = fr ? fr->prefix : "";
    switch (f.k) {
    case V_BUILTIN: return builtin_call(ev, f.builtin, args, nargs, loc);
    case V_FN: return call_fn(ev, f.def, args, nargs, loc);
    case V_LAYERDEF: return instantiate(ev, f.def, args, nargs, loc);
    case V_LAYER: return call_layer(ev, f.layer, prefix, tags, lr, fr && fr->reuse, args, nargs, loc);
    case V_SUB: {
        SubVal *s = f.sub;
        bool reuse = s->calls > 0 || (fr && fr->reuse);
        s->calls++;
        return call_layer(ev, s->inst, s->path, tags | s->tags, s->lr_layer >= 0 ? s->lr_layer : lr, reuse, args, nargs, loc);
    }
    case V_FAMILY:
        diag_error(ev->d, callee_loc, "'%s' is a family of sub-layers: call one element, %s[i](x)", f.fam->name, f.fam->name);
        return v_err();
    case V_ERR: return f;
    case V_NONE: case V_INT: case V_FLOAT: case V_BOOL: case V_STR: case V_LIST: case V_TENSOR: case V_DTYPE: break;
    }
    diag_error(ev->d, callee_loc, "%s is not callable", v_type(&f));
    return v_err();
}

/* ------------------------------------------------------------------ parameters */
typedef struct InitSpec { const char *name; InitKind kind; int n; const char *params[3]; double defaults[3]; } InitSpec;
static const InitSpec INITS[] = {
    {"zeros", INIT_ZEROS, 0, {0}, {0}},
    {"ones", INIT_ONES, 0, {0}, {0}},
    {"fill", INIT_FILL, 1, {"value"}, {NAN}},
    {"uniform", INIT_UNIFORM, 2, {"lo", "hi"}, {NAN, NAN}},
    {"normal", INIT_NORMAL, 2, {"mean", "std"}, {0, 1}},
    {"trunc_normal", INIT_TRUNC_NORMAL, 3, {"std", "lo", "hi"}, {NAN, -2, 2}},
    {"lecun_normal", INIT_LECUN_NORMAL, 0, {0}, {0}},
    {"xavier_uniform", INIT_XAVIER_UNIFORM, 0, {0}, {0}},
    {"kaiming_uniform", INIT_KAIMING_UNIFORM, 2, {"a", "scale"}, {2.23606797749979, 1}},
    {"torch_linear", INIT_TORCH_LINEAR, 0, {0}, {0}},
    {"torch_conv", INIT_TORCH_CONV, 0, {0}, {0}},
    {"dt_bias", INIT_DT_BIAS, 3, {"dt_min", "dt_max", "floor"}, {0.001, 0.1, 1e-4}},
    {"s4d_real", INIT_S4D_REAL, 0, {0}, {0}},
    {"sincos_2d", INIT_SINCOS_2D, 2, {"h", "w"}, {NAN, NAN}},
    {"block_causal", INIT_BLOCK_CAUSAL, 2, {"n", "block"}, {NAN, NAN}},
};
_Static_assert(COUNTOF(INITS) == INIT_COUNT_, "one spec per initialiser");

static int spec_param(const InitSpec *sp, const char *name) {
    for (int j = 0; j < sp->n; j++) if (!strcmp(sp->params[j], name)) return j;
    return -1;
}

/* Binds the numeric arguments of an initialiser call into vals (defaults filled in). */
static bool init_args(Eval *ev, const InitSpec *sp, const Ast *call, double vals[3]) {
    bool given[3] = {false, false, false};
    int next = 0;
    for (int k = 0; call && k < call->list.n; k++) {
        const Ast *a = call->list.items[k];
        int j = a->kind == E_KWARG ? spec_param(sp, a->name) : next++;
        if (a->kind == E_KWARG && j < 0) { diag_error(ev->d, a->loc, "initialiser '%s' has no parameter named '%s'", sp->name, a->name); return false; }
        if (j >= sp->n) { diag_error(ev->d, a->loc, "too many arguments: initialiser '%s' takes %d", sp->name, sp->n); return false; }
        if (given[j]) { diag_error(ev->d, a->loc, "argument '%s' of initialiser '%s' is given twice", sp->params[j], sp->name); return false; }
        Value v = eval_expr(ev, a->kind == E_KWARG ? a->a : a);
        if (v.k == V_ERR) return false;
        if (!v_number(&v, &vals[j])) { diag_error(ev->d, a->loc, "initialiser arguments are numbers, found %s", v_type(&v)); return false; }
        given[j] = true;
    }
    for (int j = 0; j < sp->n; j++) {
        if (given[j]) continue;
        if (isnan(sp->defaults[j])) {
            diag_error(ev->d, call ? call->loc : LOC_NONE, "missing argument '%s' of initialiser '%s'", sp->params[j], sp->name);
            return false;
        }
        vals[j] = sp->defaults[j];
    }
    return true;
}

static bool eval_init_expr(Eval *ev, const Ast *x, Shape shape, ParamInfo *info) {
    const Ast *call = x->kind == E_CALL ? x : NULL, *name = call ? x->a : x;
    if (name->kind != E_NAME) {
        diag_error(ev->d, x->loc, "expected an initialiser such as zeros, normal(0, 0.02) or torch_linear");
        return false;
    }
    const InitSpec *sp = NULL;
    for (size_t k = 0; k < COUNTOF(INITS); k++) if (!strcmp(INITS[k].name, name->name)) sp = &INITS[k];
    if (!sp) {
        Suggest sg = {name->name, NULL, 99};
        for (size_t k = 0; k < COUNTOF(INITS); k++) suggest_try(&sg, INITS[k].name);
        if (sg.best) { diag_error(ev->d, name->loc, "unknown initialiser '%s'%s", name->name, suggest_hint(ev, &sg)); return false; }
        diag_error(ev->d, name->loc, "unknown initialiser '%s' (expected one of zeros, ones, fill, uniform, normal, "
                   "trunc_normal, lecun_normal, xavier_uniform, kaiming_uniform, torch_linear, torch_conv, dt_bias, "
                   "s4d_real, sincos_2d, block_causal)", name->name);
        return false;
    }
    double v[3] = {0, 0, 0};
    if (!init_args(ev, sp, call ? call : NULL, v)) return false;
    info->init = sp->kind;
    for (int j = 0; j < 3; j++) info->args[j] = v[j];
    if (sp->kind == INIT_BLOCK_CAUSAL) {
        char sb[96];
        if (shape.ndim != 2 || shape.d[0] != (int64_t)v[0] || shape.d[1] != (int64_t)v[0] || v[1] < 1) {
            diag_error(ev->d, x->loc, "block_causal(%g, %g) needs a parameter of shape [%g, %g] and a block >= 1, found %s",
                       v[0], v[1], v[0], v[0], shape_str(shape, sb, 96));
            return false;
        }
        info->args[0] = v[1]; info->args[1] = 0;
    }
    return true;
}

/* Tags: frozen, buffer, nodecay, lr_layer(k). */
static bool eval_tags(Eval *ev, const AstList *tags, uint32_t *bits, int *lr) {
    bool ok = true;
    for (int k = 0; k < tags->n; k++) {
        const Ast *t = tags->items[k];
        uint32_t b = !strcmp(t->name, "frozen") ? TAG_FROZEN : !strcmp(t->name, "buffer") ? TAG_BUFFER
                   : !strcmp(t->name, "nodecay") ? TAG_NODECAY : 0;
        if (b) {
            if (t->list.n) { diag_error(ev->d, t->loc, "tag '%s' takes no arguments", t->name); ok = false; }
            *bits |= b;
            continue;
        }
        if (strcmp(t->name, "lr_layer")) {
            diag_error(ev->d, t->loc, "unknown tag '%s' (expected frozen, buffer, nodecay or lr_layer(k))", t->name);
            ok = false;
            continue;
        }
        Value v = t->list.n == 1 && t->list.items[0]->kind != E_KWARG ? eval_expr(ev, t->list.items[0]) : v_err();
        if (t->list.n != 1 || t->list.items[0]->kind == E_KWARG) diag_error(ev->d, t->loc, "lr_layer takes one int argument");
        else if (v.k != V_INT && v.k != V_ERR) diag_error(ev->d, t->list.items[0]->loc, "lr_layer takes an int, found %s", v_type(&v));
        else if (v.k == V_INT && (v.i < 0 || v.i > 100000)) diag_error(ev->d, t->list.items[0]->loc, "lr_layer id %" PRId64 " is out of range (0..100000)", v.i);
        if (v.k != V_INT || v.i < 0 || v.i > 100000) { ok = false; continue; }
        *lr = (int)v.i;
    }
    return ok;
}

static bool eval_shape(Eval *ev, const AstList *dims, Loc loc, Shape *out) {
    if (dims->n > MAX_DIMS) { diag_error(ev->d, loc, "a tensor has at most %d dimensions, found %d", MAX_DIMS, dims->n); return false; }
    Shape s = {.ndim = dims->n};
    int64_t numel = 1;
    for (int k = 0; k < dims->n; k++) {
        Value v = eval_expr(ev, dims->items[k]);
        if (v.k == V_ERR) return false;
        if (v.k != V_INT || v.i <= 0) {
            diag_error(ev->d, dims->items[k]->loc, "a dimension must be a positive int, found %s", v_show(ev, &v));
            return false;
        }
        s.d[k] = v.i;
        if (__builtin_mul_overflow(numel, v.i, &numel) || numel > DSL_MAX_NUMEL) {
            diag_error(ev->d, loc, "tensor is too large: more than %" PRId64 " elements", DSL_MAX_NUMEL);
            return false;
        }
    }
    *out = s;
    return true;
}

static bool eval_dtype(Eval *ev, const char *name, Loc loc, DType *out) {
    *out = DT_F32;
    if (!name || !strcmp(name, "f32")) return true;
    if (!strcmp(name, "bf16")) { *out = DT_BF16; return true; }
    if (!strcmp(name, "i32")) { *out = DT_I32; return true; }
    diag_error(ev->d, loc, "unknown dtype '%s' (expected f32, bf16 or i32)", name);
    return false;
}

/* Records a param/sub name declared in this frame; false (with an error) if it was declared before. */
static bool declare(Eval *ev, const char *kind, const char *name, Loc loc) {
    Frame *fr = ev->fr;
    for (Decl *x = fr->declared; x; x = x->next) {
        if (strcmp(x->name, name)) continue;
        diag_error(ev->d, loc, "duplicate %s name '%s' in %s", kind, name, fr->what);
        diag_note(ev->d, x->loc, "'%s' was first declared here", name);
        return false;
    }
    Decl *x = arena_alloc(ev->ar, sizeof *x);
    x->name = name; x->loc = loc; x->next = fr->declared;
    fr->declared = x;
    return true;
}

static void exec_param(Eval *ev, const Ast *s) {
    Frame *fr = ev->fr;
    Shape shape;
    DType dt;
    ParamInfo info = {.lr_layer = -1};
    uint32_t tags = 0;
    int lr = -1;
    bool ok = eval_shape(ev, &s->list, s->loc, &shape);   /* all three run, so each reports its own mistake */
    ok &= eval_dtype(ev, s->name2, s->loc, &dt);
    ok &= eval_tags(ev, &s->list2, &tags, &lr);
    if (!ok) {
        scope_set(ev, fr->top, s->name, v_err());
        return;
    }
    if (!eval_init_expr(ev, s->a, shape, &info)) { scope_set(ev, fr->top, s->name, v_err()); return; }
    const char *local = s->name;
    if (s->b) {
        Value nv = eval_expr(ev, s->b);
        if (nv.k != V_STR) {
            if (nv.k != V_ERR) diag_error(ev->d, s->b->loc, "'named' expects a string, found %s", v_type(&nv));
            scope_set(ev, fr->top, s->name, v_err());
            return;
        }
        local = nv.s;
    }
    info.tags = tags | fr->tags;
    info.lr_layer = lr >= 0 ? lr : fr->lr_layer;
    /* with `named`, the state-dict name is what must be unique (g_param checks it); the local name may be reused,
     * e.g. in a loop over scan directions */
    if (!s->b && !declare(ev, "parameter", s->name, s->loc)) return;
    const char *full = join(ev, fr->prefix, local);
    Node *p = fr->reuse ? graph_find_param(ev->g, full) : NULL;
    char sa[96], sb[96];
    if (p && (!shape_eq(p->shape, shape) || p->dtype != dt)) {
        diag_error(ev->d, s->loc, "parameter '%s' is %s%s here but %s%s in an earlier call of this sub-layer", full,
                   dtype_name(dt), shape_str(shape, sa, 96), dtype_name(p->dtype), shape_str(p->shape, sb, 96));
        p = NULL;
    } else if (!p) {
        p = checked(ev, g_param(ev->g, full, shape, dt, info, s->loc), s->loc);
    }
    scope_set(ev, fr->top, s->name, v_tensor(p));
}

static SubVal *sub_by_path(Eval *ev, const char *path) {
    for (int k = 0; k < ev->nsubs; k++) if (!strcmp(ev->subs[k]->path, path)) return ev->subs[k];
    return NULL;
}

static SubVal *new_sub(Eval *ev, const Ast *s, LayerInst *inst, const char *path, uint32_t tags, int lr) {
    SubVal *old = sub_by_path(ev, path);
    if (old && ev->fr->reuse) return old;
    if (old) {
        diag_error(ev->d, s->loc, "sub-layer '%s' is declared twice (a layer that declares subs was called twice in one scope?)", path);
        return NULL;
    }
    SubVal *sv = arena_alloc(ev->ar, sizeof *sv);
    sv->inst = inst; sv->path = path; sv->tags = tags; sv->lr_layer = lr; sv->loc = s->loc;
    if (ev->nsubs == ev->subcap) {
        ev->subcap = ev->subcap ? ev->subcap * 2 : 32;
        ev->subs = xrealloc(ev->subs, sizeof(SubVal *) * (size_t)ev->subcap);
    }
    ev->subs[ev->nsubs++] = sv;
    return sv;
}

static void exec_sub(Eval *ev, const Ast *s) {
    Frame *fr = ev->fr;
    Value v = eval_expr(ev, s->a);
    uint32_t tags = 0;
    int lr = -1;
    bool tags_ok = eval_tags(ev, &s->list2, &tags, &lr);
    if (v.k == V_LAYERDEF) v = instantiate(ev, v.def, NULL, 0, s->a->loc);
    if (v.k != V_LAYER) {
        if (v.k != V_ERR) diag_error(ev->d, s->a->loc, "'sub' expects a layer such as Linear(4, 8), found %s", v_type(&v));
        if (!s->b) scope_set(ev, fr->top, s->name, v_err());
        return;
    }
    if (!tags_ok) return;
    if (!s->b) {
        if (!declare(ev, "sub-layer", s->name, s->loc)) return;
        SubVal *sv = new_sub(ev, s, v.layer, join(ev, fr->prefix, s->name), tags, lr);
        scope_set(ev, fr->top, s->name, sv ? (Value){.k = V_SUB, .sub = sv} : v_err());
        return;
    }
    Value iv = eval_expr(ev, s->b);
    if (iv.k != V_INT) {
        if (iv.k != V_ERR) diag_error(ev->d, s->b->loc, "a sub-layer index must be an int, found %s", v_type(&iv));
        return;
    }
    Value *fv = scope_lookup(fr->top, s->name, NULL);
    Family *fam = fv && fv->k == V_FAMILY ? fv->fam : NULL;
    if (!fam) {
        if (!declare(ev, "sub-layer", s->name, s->loc)) return;
        fam = arena_alloc(ev->ar, sizeof *fam);
        fam->name = s->name;
        scope_set(ev, fr->top, s->name, (Value){.k = V_FAMILY, .fam = fam});
    }
    for (int k = 0; k < fam->n; k++) {
        if (fam->index[k] != iv.i) continue;
        diag_error(ev->d, s->loc, "duplicate sub-layer name '%s[%" PRId64 "]' in %s", s->name, iv.i, fr->what);
        diag_note(ev->d, fam->subs[k]->loc, "'%s[%" PRId64 "]' was first declared here", s->name, iv.i);
        return;
    }
    const char *path = join(ev, fr->prefix, arena_printf(ev->ar, "%s.%" PRId64, s->name, iv.i));
    SubVal *sv = new_sub(ev, s, v.layer, path, tags, lr);
    if (!sv) return;
    if (fam->n == fam->cap) {
        int cap = fam->cap ? fam->cap * 2 : 8;
        int64_t *ix = arena_alloc(ev->ar, sizeof(int64_t) * (size_t)cap);
        SubVal **ss = arena_alloc(ev->ar, sizeof(SubVal *) * (size_t)cap);
        if (fam->n) { memcpy(ix, fam->index, sizeof(int64_t) * (size_t)fam->n); memcpy(ss, fam->subs, sizeof(SubVal *) * (size_t)fam->n); }
        fam->index = ix; fam->subs = ss; fam->cap = cap;
    }
    fam->index[fam->n] = iv.i;
    fam->subs[fam->n++] = sv;
}

/* ------------------------------------------------------------------ other statements */
static void exec_block(Eval *ev, const Ast *b, Scope *inner) {
    Scope local = {NULL, ev->scope};
    if (!inner) inner = &local;
    Scope *saved = ev->scope;
    ev->scope = inner;
    for (int k = 0; k < b->list.n && !ev->fr->returned && !diag_full(ev->d); k++) exec_stmt(ev, b->list.items[k]);
    ev->scope = saved;
}

static Node *want_tensor(Eval *ev, Value v, Loc loc, const char *what) {
    if (v.k == V_TENSOR) return v.t;
    if (v.k != V_ERR) diag_error(ev->d, loc, "%s expects a tensor, found %s", what, v_type(&v));
    return NULL;
}

static bool in_model(Eval *ev, const Ast *s, const char *kw) {
    if (ev->fr->is_model) return true;
    diag_error(ev->d, s->loc, "'%s' is only allowed in a model body, not in %s", kw, ev->fr->what);
    return false;
}

static void exec_input(Eval *ev, const Ast *s) {
    Shape shape;
    DType dt;
    Value r = v_err();
    if (in_model(ev, s, "input") && eval_shape(ev, &s->list, s->loc, &shape) && eval_dtype(ev, s->name2, s->loc, &dt))
        r = v_tensor(checked(ev, g_input(ev->g, s->name, shape, dt, s->loc), s->loc));
    scope_set(ev, ev->fr->top, s->name, r);
}

static void exec_loss(Eval *ev, const Ast *s) {
    Value v = eval_expr(ev, s->a);
    if (!in_model(ev, s, "loss")) return;
    Node *t = want_tensor(ev, v, s->a->loc, "'loss'");
    if (!t) return;
    char sb[96];
    if (shape_numel(t->shape) != 1) {
        diag_error(ev->d, s->a->loc, "the loss must be a scalar (one element), found a tensor of shape %s "
                   "(reduce it, e.g. mean(x))", shape_str(t->shape, sb, 96));
        return;
    }
    if (ev->fr->loss_loc.file) {
        diag_error(ev->d, s->loc, "the model already has a loss");
        diag_note(ev->d, ev->fr->loss_loc, "the first loss is declared here");
        return;
    }
    if (t->dtype != DT_F32) t = checked(ev, g_cast(ev->g, t, DT_F32, s->a->loc), s->a->loc);
    ev->fr->loss_loc = s->loc;
    graph_set_loss(ev->g, t);
}

static void exec_named(Eval *ev, const Ast *s) {
    Value v = eval_expr(ev, s->a);
    bool output = s->kind == S_OUTPUT;
    if (output && !in_model(ev, s, "output")) return;
    Node *t = want_tensor(ev, v, s->a->loc, output ? "'output'" : "'tap'");
    if (!t) return;
    const char *name = join(ev, ev->fr->prefix, s->name);
    if (graph_find_named(ev->g, name)) {
        if (ev->fr->reuse) return;        /* a second call of the same sub-layer: the first call's tap stands */
        diag_error(ev->d, s->loc, "'%s' is already a tap or output of this model", name);
        return;
    }
    graph_add_named(ev->g, name, t, output ? NF_OUTPUT : NF_TAP);
}

static void exec_assert(Eval *ev, const Ast *s) {
    Value c = eval_expr(ev, s->a);
    if (c.k == V_TENSOR) { diag_error(ev->d, s->a->loc, "'assert' needs a constant condition, found a tensor"); return; }
    if (!eval_want_bool(ev, c, s->a, "'assert'") || c.b) return;
    if (!s->b) { diag_error(ev->d, s->a->loc, "assertion failed"); return; }
    Value m = eval_expr(ev, s->b);
    if (m.k == V_STR) diag_error(ev->d, s->a->loc, "assertion failed: %s", m.s);
    else diag_error(ev->d, s->a->loc, "assertion failed: %s", v_show(ev, &m));
}

static void exec_for(Eval *ev, const Ast *s) {
    Value it = eval_expr(ev, s->a);
    if (it.k == V_ERR) return;
    if (it.k != V_LIST) { diag_error(ev->d, s->a->loc, "'for' iterates over a list or a range a..b, found %s", v_type(&it)); return; }
    for (int k = 0; k < it.l->n && !ev->fr->returned && !diag_full(ev->d) && !ev->step_error; k++) {
        Scope iter = {NULL, ev->scope};
        scope_set(ev, &iter, s->name, it.l->items[k]);
        Scope *saved = ev->scope;
        ev->scope = &iter;
        exec_block(ev, s->b, NULL);
        ev->scope = saved;
    }
}

static void exec_stmt(Eval *ev, const Ast *s) {
    if (!eval_budget(ev, s->loc)) return;
    Frame *fr = ev->fr;
    switch (s->kind) {
    case S_LET:                    /* defines (or redefines) a name in the current block */
        scope_set(ev, ev->scope, s->name, eval_expr(ev, s->a));
        return;
    case S_ASSIGN: {
        Value v = eval_expr(ev, s->a);
        Value *slot = scope_lookup(ev->scope, s->name, NULL);
        if (!slot) { diag_error(ev->d, s->loc, "unknown name '%s' (declare it first with 'let %s = ...')", s->name, s->name); return; }
        *slot = v;
        return;
    }
    case S_PARAM: exec_param(ev, s); return;
    case S_SUB: exec_sub(ev, s); return;
    case S_INPUT: exec_input(ev, s); return;
    case S_TAP: case S_OUTPUT: exec_named(ev, s); return;
    case S_LOSS: exec_loss(ev, s); return;
    case S_RETURN: {
        if (!fr->is_layer) {
            diag_error(ev->d, s->loc, "'return' outside a layer (%s ends with 'loss' or 'output')", fr->what);
            return;
        }
        fr->ret = eval_expr(ev, s->a);
        fr->returned = true;
        return;
    }
    case S_ASSERT: exec_assert(ev, s); return;
    case S_FOR: exec_for(ev, s); return;
    case S_IF: {
        Value c = eval_expr(ev, s->a);
        if (!eval_want_bool(ev, c, s->a, "'if'")) return;
        if (c.b) exec_block(ev, s->b, NULL);
        else if (s->c) exec_stmt(ev, s->c);
        return;
    }
    case S_BLOCK: exec_block(ev, s, NULL); return;
    case E_INT: case E_FLOAT: case E_STR: case E_BOOL: case E_NAME: case E_LIST: case E_COMP: case E_BINARY:
    case E_UNARY: case E_COND: case E_CALL: case E_INDEX: case E_KWARG: case S_TAG: case I_IMPORT: case I_CONST:
    case I_FN: case I_LAYER: case I_MODEL: case I_MODEL_ALIAS: case I_RECIPE: case I_ENTRY: case I_GROUP:
    case I_PARAMDEF: case AST_KIND_COUNT_:
        UNREACHABLE();
    }
}

/* ------------------------------------------------------------------ models */
static const Ast *model_find(const DslModule *m, const char *name) {
    for (int k = 0; k < m->nmodels; k++) if (!strcmp(m->models[k]->name, name)) return m->models[k];
    return NULL;
}

/* Follows `model B = A(args)` to the defining model; args become keyword arguments (outer ones win). */
static const Ast *resolve_alias(Eval *ev, const Ast *model, Arg **args, int *nargs) {
    const Ast *chain[32];
    int n = 0;
    while (model && model->kind == I_MODEL_ALIAS) {
        if (n == (int)COUNTOF(chain)) { diag_error(ev->d, model->loc, "model aliases form a cycle or are nested too deeply"); return NULL; }
        chain[n++] = model;
        const Ast *callee = model->a->a;
        const Ast *next = model_find(ev->m, callee->name);
        if (!next) { diag_error(ev->d, callee->loc, "unknown model '%s'", callee->name); return NULL; }
        model = next;
    }
    int total = 0;
    for (int k = 0; k < n; k++) total += chain[k]->a->list.n;
    Arg *out = arena_alloc(ev->ar, sizeof(Arg) * (size_t)(total ? total : 1));
    int m = 0;
    for (int k = n - 1; k >= 0; k--) {           /* innermost alias first, so outer ones override */
        const Ast *call = chain[k]->a;
        for (int j = 0; j < call->list.n; j++) {
            const Ast *a = call->list.items[j];
            const char *kw = a->kind == E_KWARG ? a->name : NULL;
            if (!kw) {
                if (j >= model->list.n) {
                    diag_error(ev->d, a->loc, "too many arguments: model '%s' takes %d", model->name, model->list.n);
                    return NULL;
                }
                kw = model->list.items[j]->name;
            }
            Value v = eval_const_expr(ev, a->kind == E_KWARG ? a->a : a);
            if (v.k == V_ERR) return NULL;
            int slot = m;
            for (int i = 0; i < m; i++) if (!strcmp(out[i].kw, kw)) slot = i;
            out[slot] = (Arg){kw, v, a->loc};
            if (slot == m) m++;
        }
    }
    *args = out;
    *nargs = m;
    return model;
}

Graph *dsl_build_model(DslModule *m, const char *name, Diag *d) {
    const Ast *model = model_find(m, name);
    if (!model) {
        diag_error(d, LOC_NONE, "no model named '%s' in this file or its imports", name);
        return NULL;
    }
    int errors = d->errors;
    Graph *g = graph_new();
    Eval ev;
    eval_init(&ev, m, d, g);
    Arg *args = NULL;
    int nargs = 0;
    const Ast *base = resolve_alias(&ev, model, &args, &nargs);
    if (base) {
        Frame fr = {.prefix = "", .what = arena_printf(ev.ar, "model '%s'", base->name), .lr_layer = -1, .is_model = true};
        Scope *top = arena_alloc(ev.ar, sizeof *top);
        fr.top = top;
        ev.fr = &fr;
        ev.scope = top;
        if (bind_params(&ev, fr.what, &base->list, args, nargs, top, model->loc, "model"))
            exec_block(&ev, base->b, top);
        if (d->errors == errors && !g->loss && !g->nnamed)
            diag_error(d, base->loc, "model '%s' declares neither a loss nor an output", base->name);
    }
    eval_done(&ev);
    if (d->errors != errors) { graph_free(g); return NULL; }
    return g;
}
