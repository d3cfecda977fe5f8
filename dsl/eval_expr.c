/* eval_expr.c — expressions: compile-time constant arithmetic (checked: overflow, division by zero, types),
 * lists and comprehensions, names and indexing, and tensor operators lowered onto graph builders. */
#include "eval.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>

Value v_err(void) { return (Value){.k = V_ERR}; }
Value v_int(int64_t i) { return (Value){.k = V_INT, .i = i}; }
Value v_float(double f) { return (Value){.k = V_FLOAT, .f = f}; }
Value v_bool(bool b) { return (Value){.k = V_BOOL, .b = b}; }
Value v_str(const char *s) { return (Value){.k = V_STR, .s = s}; }
Value v_tensor(Node *t) { return t ? (Value){.k = V_TENSOR, .t = t} : v_err(); }

Value v_list(Eval *ev, int n) {
    Value v = {.k = V_LIST};
    v.l = arena_alloc(ev->ar, sizeof *v.l);
    v.l->n = n;
    v.l->items = n ? arena_alloc(ev->ar, sizeof(Value) * (size_t)n) : NULL;
    return v;
}

const char *v_type(const Value *v) {
    switch (v->k) {
    case V_ERR: return "error";
    case V_NONE: return "nothing";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_BOOL: return "a bool";
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_TENSOR: return "a tensor";
    case V_LAYERDEF: return "a layer";
    case V_LAYER: return "a layer instance";
    case V_FN: return "a function";
    case V_BUILTIN: return "a builtin";
    case V_DTYPE: return "a dtype";
    case V_SUB: return "a sub-layer";
    case V_FAMILY: return "a sub-layer family";
    }
    return "?";
}

bool v_number(const Value *v, double *out) {
    if (v->k == V_INT) { *out = (double)v->i; return true; }
    if (v->k == V_FLOAT) { *out = v->f; return true; }
    return false;
}

char *v_show(Eval *ev, const Value *v) {
    char sb[96];
    switch (v->k) {
    case V_INT: return arena_printf(ev->ar, "%" PRId64, v->i);
    case V_FLOAT: return arena_printf(ev->ar, "%g", v->f);
    case V_BOOL: return arena_printf(ev->ar, "%s", v->b ? "true" : "false");
    case V_STR: return arena_printf(ev->ar, "\"%.40s%s\"", v->s, strlen(v->s) > 40 ? "..." : "");
    case V_TENSOR: return arena_printf(ev->ar, "tensor %s%s", dtype_name(v->t->dtype), shape_str(v->t->shape, sb, 96));
    case V_LIST: {
        char *s = arena_printf(ev->ar, "[");
        for (int k = 0; k < v->l->n && k < 8; k++) s = arena_printf(ev->ar, "%s%s%s", s, k ? ", " : "", v_show(ev, &v->l->items[k]));
        return arena_printf(ev->ar, "%s%s]", s, v->l->n > 8 ? ", ..." : "");
    }
    case V_ERR: case V_NONE: case V_LAYERDEF: case V_LAYER: case V_FN: case V_BUILTIN: case V_DTYPE: case V_SUB:
    case V_FAMILY: break;
    }
    return arena_printf(ev->ar, "%s", v_type(v));
}

bool eval_budget(Eval *ev, Loc loc) {
    if (++ev->steps <= ev->m->step_limit) return true;
    if (!ev->step_error) {
        ev->step_error = true;
        diag_error(ev->d, loc, "evaluation takes too long (more than %lld steps): is a loop too large?",
                   (long long)ev->m->step_limit);
    }
    return false;
}

bool eval_memory(Eval *ev, int64_t cells, Loc loc) {
    ev->cells += cells;
    if (ev->cells <= DSL_MAX_CELLS) return true;
    if (!ev->step_error) {
        ev->step_error = true;
        diag_error(ev->d, loc, "constant lists and strings are too large in total (more than %lld elements)",
                   (long long)DSL_MAX_CELLS);
    }
    return false;
}

Node *checked(Eval *ev, Node *n, Loc loc) {
    if (!n) diag_error(ev->d, loc, "%s", ev->g->err);
    return n;
}

static bool need_graph(Eval *ev, Loc loc) {
    if (ev->g) return true;
    diag_error(ev->d, loc, "tensor operations are not allowed in a constant expression");
    return false;
}

Node *tensor_of(Eval *ev, Value v, DType like, Loc loc) {
    if (v.k == V_TENSOR) return v.t;
    double x;
    if (v_number(&v, &x)) {
        if (!need_graph(ev, loc)) return NULL;
        DType t = like == DT_I32 && v.k == V_FLOAT ? DT_F32 : like;
        return g_const(ev->g, x, (Shape){0}, t);
    }
    if (v.k != V_ERR) diag_error(ev->d, loc, "expected a tensor or a number, found %s", v_type(&v));
    return NULL;
}

/* ------------------------------------------------------------------ scopes */
Value *scope_lookup(Scope *s, const char *name, Scope **where) {
    for (; s; s = s->parent)
        for (Var *v = s->vars; v; v = v->next)
            if (!strcmp(v->name, name)) { if (where) *where = s; return v->v; }
    return NULL;
}

void scope_set(Eval *ev, Scope *s, const char *name, Value v) {
    for (Var *x = s->vars; x; x = x->next)
        if (!strcmp(x->name, name)) { *x->v = v; return; }
    Var *x = arena_alloc(ev->ar, sizeof *x);
    x->name = name;
    x->v = arena_alloc(ev->ar, sizeof(Value));
    *x->v = v;
    x->next = s->vars;
    s->vars = x;
}

/* Levenshtein distance, capped: names are short. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

void suggest_try(Suggest *s, const char *candidate) {
    if (!s->best) s->dist = 99;
    int d = edit_distance(s->name, candidate);
    size_t len = strlen(s->name);
    int limit = len <= 3 ? 0 : len <= 5 ? 1 : 2;      /* short names have too many near neighbours */
    if (d > 0 && d <= limit && d < s->dist) { s->best = candidate; s->dist = d; }
}

const char *suggest_hint(Eval *ev, const Suggest *s) {
    return s->best ? arena_printf(ev->ar, " (did you mean '%s'?)", s->best) : "";
}

static const char *name_hint(Eval *ev, const char *name) {
    Suggest sg = {name, NULL, 99};
    for (Scope *sc = ev->scope; sc; sc = sc->parent)
        for (Var *v = sc->vars; v; v = v->next) suggest_try(&sg, v->name);
    for (int k = 0; k < ev->m->nglobals; k++) suggest_try(&sg, ev->m->globals[k].name);
    for (int k = 0; builtin_name(k); k++) suggest_try(&sg, builtin_name(k));
    return suggest_hint(ev, &sg);
}

static Value lookup_name(Eval *ev, const Ast *x, bool as_callee) {
    Value *v = scope_lookup(ev->scope, x->name, NULL);
    if (v) return *v;
    if (ev->recipe) {
        v = recipe_lookup(ev, x->name, x->loc);
        if (v) return *v;
    }
    Global *gl = global_find(ev->m, x->name);
    if (gl) return global_value(ev, gl, x->loc);
    int b = builtin_find(x->name);
    if (b >= 0) return (Value){.k = V_BUILTIN, .builtin = b};
    if (!strcmp(x->name, "f32")) return (Value){.k = V_DTYPE, .dt = DT_F32};
    if (!strcmp(x->name, "bf16")) return (Value){.k = V_DTYPE, .dt = DT_BF16};
    if (!strcmp(x->name, "i32")) return (Value){.k = V_DTYPE, .dt = DT_I32};
    const char *hint = name_hint(ev, x->name);
    if (as_callee && x->name[0] >= 'A' && x->name[0] <= 'Z') diag_error(ev->d, x->loc, "unknown layer '%s'%s", x->name, hint);
    else if (as_callee) diag_error(ev->d, x->loc, "unknown function or layer '%s'%s", x->name, hint);
    else diag_error(ev->d, x->loc, "unknown name '%s'%s", x->name, hint);
    return v_err();
}

/* ------------------------------------------------------------------ constant arithmetic */
static Value type_error(Eval *ev, int op, const Value *a, const Value *b, Loc loc) {
    diag_error(ev->d, loc, "cannot apply '%s' to %s and %s", ast_op_text((AstOp)op), v_type(a), v_type(b));
    return v_err();
}

static Value overflow(Eval *ev, int op, int64_t a, int64_t b, Loc loc) {
    diag_error(ev->d, loc, "integer overflow: %" PRId64 " %s %" PRId64 " does not fit in 64 bits", a,
               ast_op_text((AstOp)op), b);
    return v_err();
}

static Value int_pow(Eval *ev, int64_t a, int64_t b, Loc loc) {
    int64_t r = 1, base = a, e = b;
    while (e > 0) {
        if ((e & 1) && __builtin_mul_overflow(r, base, &r)) return overflow(ev, OPR_POW, a, b, loc);
        e >>= 1;
        if (e && __builtin_mul_overflow(base, base, &base)) return overflow(ev, OPR_POW, a, b, loc);
    }
    return v_int(r);
}

static Value int_arith(Eval *ev, int op, int64_t a, int64_t b, Loc loc) {
    int64_t r = 0;
    switch (op) {
    case OPR_ADD: if (__builtin_add_overflow(a, b, &r)) return overflow(ev, op, a, b, loc); return v_int(r);
    case OPR_SUB: if (__builtin_sub_overflow(a, b, &r)) return overflow(ev, op, a, b, loc); return v_int(r);
    case OPR_MUL: if (__builtin_mul_overflow(a, b, &r)) return overflow(ev, op, a, b, loc); return v_int(r);
    case OPR_IDIV:
        if (b == 0) { diag_error(ev->d, loc, "integer division by zero"); return v_err(); }
        if (a == INT64_MIN && b == -1) return overflow(ev, op, a, b, loc);
        r = a / b;
        if (a % b != 0 && ((a < 0) != (b < 0))) r--;     /* floor, as Python */
        return v_int(r);
    case OPR_MOD:
        if (b == 0) { diag_error(ev->d, loc, "modulo by zero"); return v_err(); }
        if (b == -1) return v_int(0);
        r = a % b;
        if (r != 0 && ((r < 0) != (b < 0))) r += b;
        return v_int(r);
    case OPR_DIV:
        if (b == 0) { diag_error(ev->d, loc, "division by zero"); return v_err(); }
        return v_float((double)a / (double)b);
    case OPR_POW:
        if (b < 0) return a == 0 ? (diag_error(ev->d, loc, "division by zero (0 to a negative power)"), v_err())
                                 : v_float(pow((double)a, (double)b));
        return int_pow(ev, a, b, loc);
    default: UNREACHABLE();
    }
}

static Value float_arith(Eval *ev, int op, double a, double b, Loc loc) {
    double r = 0;
    if ((op == OPR_DIV || op == OPR_IDIV || op == OPR_MOD) && b == 0) {
        diag_error(ev->d, loc, op == OPR_MOD ? "modulo by zero" : "division by zero");
        return v_err();
    }
    switch (op) {
    case OPR_ADD: r = a + b; break;
    case OPR_SUB: r = a - b; break;
    case OPR_MUL: r = a * b; break;
    case OPR_DIV: r = a / b; break;
    case OPR_IDIV: r = floor(a / b); break;
    case OPR_MOD: r = a - b * floor(a / b); break;
    case OPR_POW: r = pow(a, b); break;
    default: UNREACHABLE();
    }
    if (!isfinite(r)) {
        diag_error(ev->d, loc, "the result of %g %s %g is not a finite number", a, ast_op_text((AstOp)op), b);
        return v_err();
    }
    return v_float(r);
}

static Value concat_lists(Eval *ev, const VList *a, const VList *b, Loc loc) {
    if ((int64_t)a->n + b->n > DSL_MAX_LIST) {
        diag_error(ev->d, loc, "list is too long (more than %d elements)", DSL_MAX_LIST);
        return v_err();
    }
    if (!eval_memory(ev, (int64_t)a->n + b->n, loc)) return v_err();
    Value r = v_list(ev, a->n + b->n);
    if (a->n) memcpy(r.l->items, a->items, sizeof(Value) * (size_t)a->n);
    if (b->n) memcpy(r.l->items + a->n, b->items, sizeof(Value) * (size_t)b->n);
    return r;
}

static bool values_equal(const Value *a, const Value *b) {
    double x = 0, y = 0;
    if (v_number(a, &x) && v_number(b, &y)) return a->k == V_INT && b->k == V_INT ? a->i == b->i : x == y;
    if (a->k != b->k) return false;
    if (a->k == V_STR) return !strcmp(a->s, b->s);
    if (a->k == V_BOOL) return a->b == b->b;
    if (a->k == V_DTYPE) return a->dt == b->dt;
    if (a->k == V_LIST) {
        if (a->l->n != b->l->n) return false;
        for (int k = 0; k < a->l->n; k++) if (!values_equal(&a->l->items[k], &b->l->items[k])) return false;
        return true;
    }
    return false;
}

static Value make_range(Eval *ev, int64_t a, int64_t b, Loc loc) {
    int64_t n = b > a ? b - a : 0;
    if (b > a && (b - a < 0 || n > DSL_MAX_LIST)) {
        diag_error(ev->d, loc, "range %" PRId64 "..%" PRId64 " is too long (more than %d elements)", a, b, DSL_MAX_LIST);
        return v_err();
    }
    if (!eval_memory(ev, n, loc)) return v_err();
    Value r = v_list(ev, (int)n);
    for (int64_t k = 0; k < n; k++) r.l->items[k] = v_int(a + k);
    return r;
}

static Value const_binary(Eval *ev, int op, Value a, Value b, Loc loc) {
    double x = 0, y = 0;
    bool nums = v_number(&a, &x) && v_number(&b, &y);
    switch (op) {
    case OPR_EQ: case OPR_NE: {
        bool comparable = nums || a.k == b.k;
        if (!comparable) return type_error(ev, op, &a, &b, loc);
        bool eq = values_equal(&a, &b);
        return v_bool(op == OPR_EQ ? eq : !eq);
    }
    case OPR_LT: case OPR_LE: case OPR_GT: case OPR_GE: {
        int c;
        if (nums) c = a.k == V_INT && b.k == V_INT ? (a.i > b.i) - (a.i < b.i) : (x > y) - (x < y);
        else if (a.k == V_STR && b.k == V_STR) c = strcmp(a.s, b.s);
        else return type_error(ev, op, &a, &b, loc);
        bool r = op == OPR_LT ? c < 0 : op == OPR_LE ? c <= 0 : op == OPR_GT ? c > 0 : c >= 0;
        return v_bool(r);
    }
    case OPR_RANGE:
        if (a.k != V_INT || b.k != V_INT) return type_error(ev, op, &a, &b, loc);
        return make_range(ev, a.i, b.i, loc);
    case OPR_ADD:
        if (a.k == V_STR && b.k == V_STR) {
            size_t n = strlen(a.s) + strlen(b.s);
            if (n > DSL_MAX_STRING) { diag_error(ev->d, loc, "string is too long (more than %d bytes)", DSL_MAX_STRING); return v_err(); }
            if (!eval_memory(ev, (int64_t)n / 16 + 1, loc)) return v_err();
            return v_str(arena_printf(ev->ar, "%s%s", a.s, b.s));
        }
        if (a.k == V_LIST && b.k == V_LIST) return concat_lists(ev, a.l, b.l, loc);
        /* fall through */
    case OPR_SUB: case OPR_MUL: case OPR_DIV: case OPR_IDIV: case OPR_MOD: case OPR_POW:
        if (!nums) return type_error(ev, op, &a, &b, loc);
        if (a.k == V_INT && b.k == V_INT) return int_arith(ev, op, a.i, b.i, loc);
        return float_arith(ev, op, x, y, loc);
    default:
        return type_error(ev, op, &a, &b, loc);
    }
}

/* ------------------------------------------------------------------ tensor operators */
static Value tensor_pow(Eval *ev, Node *x, Value e, Loc loc) {
    double p;
    if (!v_number(&e, &p)) {
        diag_error(ev->d, loc, "the exponent of a tensor power must be a constant number, found %s", v_type(&e));
        return v_err();
    }
    Graph *g = ev->g;
    if (p == 1) return v_tensor(x);
    if (p == 2) return v_tensor(checked(ev, g_binary(g, OP_MUL, x, x, loc), loc));
    if (p == 0.5) return v_tensor(checked(ev, g_unary(g, OP_SQRT, x, loc), loc));
    if (p == -0.5) return v_tensor(checked(ev, g_unary(g, OP_RSQRT, x, loc), loc));
    if (p == -1) return v_tensor(checked(ev, g_unary(g, OP_RECIP, x, loc), loc));
    Node *lx = checked(ev, g_unary(g, OP_LOG, x, loc), loc);   /* x > 0 assumed, as torch.pow with float exponents */
    if (!lx) return v_err();
    Node *m = checked(ev, g_binary(g, OP_MUL, lx, g_const(g, p, (Shape){0}, x->dtype), loc), loc);
    return m ? v_tensor(checked(ev, g_unary(g, OP_EXP, m, loc), loc)) : v_err();
}

Value tensor_binary(Eval *ev, int op, Value a, Value b, Loc loc) {
    if ((a.k != V_TENSOR && a.k != V_INT && a.k != V_FLOAT) || (b.k != V_TENSOR && b.k != V_INT && b.k != V_FLOAT) ||
        (a.k != V_TENSOR && b.k != V_TENSOR))
        return type_error(ev, op, &a, &b, loc);
    if (!need_graph(ev, loc)) return v_err();
    DType like = a.k == V_TENSOR ? a.t->dtype : b.t->dtype;
    if (op == OPR_POW) {
        if (a.k != V_TENSOR) return type_error(ev, op, &a, &b, loc);
        return tensor_pow(ev, a.t, b, loc);
    }
    Node *x = tensor_of(ev, a, like, loc), *y = tensor_of(ev, b, like, loc);
    if (!x || !y) return v_err();
    Graph *g = ev->g;
    switch (op) {
    case OPR_ADD: return v_tensor(checked(ev, g_binary(g, OP_ADD, x, y, loc), loc));
    case OPR_SUB: return v_tensor(checked(ev, g_binary(g, OP_SUB, x, y, loc), loc));
    case OPR_MUL: return v_tensor(checked(ev, g_binary(g, OP_MUL, x, y, loc), loc));
    case OPR_DIV: return v_tensor(checked(ev, g_binary(g, OP_DIV, x, y, loc), loc));
    case OPR_GT: return v_tensor(checked(ev, g_binary(g, OP_CMP_GT, x, y, loc), loc));
    case OPR_LT: return v_tensor(checked(ev, g_binary(g, OP_CMP_GT, y, x, loc), loc));
    case OPR_MATMUL:
        if (a.k != V_TENSOR || b.k != V_TENSOR) return type_error(ev, op, &a, &b, loc);
        return v_tensor(checked(ev, g_matmul(g, x, y, false, false, loc), loc));
    default:
        diag_error(ev->d, loc, "'%s' is not defined for tensors", ast_op_text((AstOp)op));
        return v_err();
    }
}

/* ------------------------------------------------------------------ expression forms */
static Value eval_binary(Eval *ev, const Ast *x) {
    if (x->op == OPR_AND || x->op == OPR_OR) {
        Value a = eval_expr(ev, x->a);
        if (a.k == V_ERR) return a;
        if (a.k != V_BOOL) { diag_error(ev->d, x->a->loc, "'%s' expects bools, found %s", ast_op_text((AstOp)x->op), v_type(&a)); return v_err(); }
        if (x->op == OPR_AND ? !a.b : a.b) return a;
        Value b = eval_expr(ev, x->b);
        if (b.k == V_ERR) return b;
        if (b.k != V_BOOL) { diag_error(ev->d, x->b->loc, "'%s' expects bools, found %s", ast_op_text((AstOp)x->op), v_type(&b)); return v_err(); }
        return b;
    }
    Value a = eval_expr(ev, x->a), b = eval_expr(ev, x->b);
    if (a.k == V_ERR || b.k == V_ERR) return v_err();
    if (a.k == V_TENSOR || b.k == V_TENSOR || x->op == OPR_MATMUL) return tensor_binary(ev, x->op, a, b, x->loc);
    return const_binary(ev, x->op, a, b, x->loc);
}

static Value eval_unary(Eval *ev, const Ast *x) {
    Value a = eval_expr(ev, x->a);
    if (a.k == V_ERR) return a;
    switch (x->op) {
    case OPR_NOT:
        if (a.k == V_BOOL) return v_bool(!a.b);
        break;
    case OPR_PLUS:
        if (a.k == V_INT || a.k == V_FLOAT || a.k == V_TENSOR) return a;
        break;
    case OPR_NEG:
        if (a.k == V_INT) {
            if (a.i == INT64_MIN) { diag_error(ev->d, x->loc, "integer overflow: -(%" PRId64 ")", a.i); return v_err(); }
            return v_int(-a.i);
        }
        if (a.k == V_FLOAT) return v_float(-a.f);
        if (a.k == V_TENSOR) return v_tensor(checked(ev, g_unary(ev->g, OP_NEG, a.t, x->loc), x->loc));
        break;
    default: UNREACHABLE();
    }
    diag_error(ev->d, x->loc, "cannot apply '%s' to %s", ast_op_text((AstOp)x->op), v_type(&a));
    return v_err();
}

bool eval_want_bool(Eval *ev, Value c, const Ast *at, const char *what) {
    if (c.k == V_BOOL) return true;
    if (c.k == V_TENSOR) diag_error(ev->d, at->loc, "the condition of %s must be a constant, found a tensor", what);
    else if (c.k != V_ERR) diag_error(ev->d, at->loc, "the condition of %s must be a bool, found %s", what, v_type(&c));
    return false;
}

static Value eval_cond(Eval *ev, const Ast *x) {
    Value c = eval_expr(ev, x->b);
    if (!eval_want_bool(ev, c, x->b, "a conditional expression")) return v_err();
    return eval_expr(ev, c.b ? x->a : x->c);
}

static Value eval_list(Eval *ev, const Ast *x) {
    Value r = v_list(ev, x->list.n);
    for (int k = 0; k < x->list.n; k++) {
        r.l->items[k] = eval_expr(ev, x->list.items[k]);
        if (r.l->items[k].k == V_ERR) return v_err();
    }
    return r;
}

static Value eval_comp(Eval *ev, const Ast *x) {
    Value it = eval_expr(ev, x->b);
    if (it.k == V_ERR) return it;
    if (it.k != V_LIST) { diag_error(ev->d, x->b->loc, "a comprehension iterates over a list, found %s", v_type(&it)); return v_err(); }
    if (!eval_memory(ev, it.l->n, x->loc)) return v_err();
    Value r = v_list(ev, it.l->n);
    int n = 0;
    Scope inner = {NULL, ev->scope}, *saved = ev->scope;
    ev->scope = &inner;
    for (int k = 0; k < it.l->n; k++) {
        scope_set(ev, &inner, x->name, it.l->items[k]);
        if (x->c) {
            Value c = eval_expr(ev, x->c);
            if (!eval_want_bool(ev, c, x->c, "a comprehension filter")) { n = -1; break; }
            if (!c.b) continue;
        }
        Value e = eval_expr(ev, x->a);
        if (e.k == V_ERR) { n = -1; break; }
        r.l->items[n++] = e;
    }
    ev->scope = saved;
    if (n < 0) return v_err();
    r.l->n = n;
    return r;
}

static Value eval_index(Eval *ev, const Ast *x) {
    Value a = eval_expr(ev, x->a), i = eval_expr(ev, x->b);
    if (a.k == V_ERR || i.k == V_ERR) return v_err();
    if (i.k != V_INT) { diag_error(ev->d, x->b->loc, "an index must be an int, found %s", v_type(&i)); return v_err(); }
    if (a.k == V_LIST) {
        int64_t k = i.i < 0 ? i.i + a.l->n : i.i;
        if (k < 0 || k >= a.l->n) {
            diag_error(ev->d, x->b->loc, "index %" PRId64 " is out of range for a list of %d element%s", i.i, a.l->n,
                       a.l->n == 1 ? "" : "s");
            return v_err();
        }
        return a.l->items[k];
    }
    if (a.k == V_FAMILY) {
        for (int k = 0; k < a.fam->n; k++)
            if (a.fam->index[k] == i.i) return (Value){.k = V_SUB, .sub = a.fam->subs[k]};
        diag_error(ev->d, x->loc, "%s[%" PRId64 "] was not declared (sub %s[%" PRId64 "] = ...)", a.fam->name, i.i,
                   a.fam->name, i.i);
        return v_err();
    }
    if (a.k == V_TENSOR) diag_error(ev->d, x->loc, "tensors cannot be indexed: use slice(x, axis, start, end) or gather");
    else diag_error(ev->d, x->loc, "cannot index %s", v_type(&a));
    return v_err();
}

static Value eval_call(Eval *ev, const Ast *x) {
    Value f = x->a->kind == E_NAME ? lookup_name(ev, x->a, true) : eval_expr(ev, x->a);
    if (f.k == V_ERR) return f;
    int n = x->list.n;
    Arg *args = arena_alloc(ev->ar, sizeof(Arg) * (size_t)(n ? n : 1));
    bool bad = false;
    for (int k = 0; k < n; k++) {
        const Ast *a = x->list.items[k];
        if (a->kind == E_KWARG) { args[k].kw = a->name; args[k].v = eval_expr(ev, a->a); }
        else args[k].v = eval_expr(ev, a);
        args[k].loc = a->loc;
        bad |= args[k].v.k == V_ERR;
    }
    if (bad) return v_err();
    return call_value(ev, f, args, n, x->loc, x->a->loc);
}

Value eval_expr(Eval *ev, const Ast *x) {
    if (!eval_budget(ev, x->loc)) return v_err();
    if (ev->depth >= DSL_MAX_NESTING) {
        if (!ev->depth_error) diag_error(ev->d, x->loc, "expression is nested too deeply (more than %d levels)", DSL_MAX_NESTING);
        ev->depth_error = true;
        return v_err();
    }
    ev->depth++;
    Value r = v_err();
    switch (x->kind) {
    case E_INT: r = v_int(x->ival); break;
    case E_FLOAT: r = v_float(x->fval); break;
    case E_STR: r = v_str(x->name); break;
    case E_BOOL: r = v_bool(x->ival != 0); break;
    case E_NAME: r = lookup_name(ev, x, false); break;
    case E_LIST: r = eval_list(ev, x); break;
    case E_COMP: r = eval_comp(ev, x); break;
    case E_BINARY: r = eval_binary(ev, x); break;
    case E_UNARY: r = eval_unary(ev, x); break;
    case E_COND: r = eval_cond(ev, x); break;
    case E_CALL: r = eval_call(ev, x); break;
    case E_INDEX: r = eval_index(ev, x); break;
    case E_KWARG:
        diag_error(ev->d, x->loc, "a keyword argument is only allowed in a call");
        break;
    case S_LET: case S_ASSIGN: case S_PARAM: case S_SUB: case S_INPUT: case S_TAP: case S_OUTPUT: case S_LOSS:
    case S_RETURN: case S_ASSERT: case S_FOR: case S_IF: case S_BLOCK: case S_TAG: case I_IMPORT: case I_CONST:
    case I_FN: case I_LAYER: case I_MODEL: case I_MODEL_ALIAS: case I_RECIPE: case I_ENTRY: case I_GROUP:
    case I_PARAMDEF: case AST_KIND_COUNT_:
        UNREACHABLE();
    }
    ev->depth--;
    return r;
}
