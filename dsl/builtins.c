/* builtins.c — the builtin functions: constant math (ceil, floor, min, max, len, range, ...) and the tensor
 * operations, each lowered onto compiler/graph.h builders. Composites (mean, gelu, linear, flip, drop_path,
 * one_hot) are written here from primitive nodes, so autodiff and the backends only see primitives. */
#include "eval.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>

typedef Value (*BuiltinFn)(Eval *ev, const char *name, Arg *a, int n, Loc loc);
typedef struct Builtin { const char *name; int min, max; BuiltinFn fn; } Builtin;

/* ------------------------------------------------------------------ argument helpers */
static bool arg_int(Eval *ev, const char *fn, const Arg *a, int64_t *out) {
    if (a->v.k == V_INT) { *out = a->v.i; return true; }
    diag_error(ev->d, a->loc, "%s expects an int here, found %s", fn, v_type(&a->v));
    return false;
}

static bool arg_num(Eval *ev, const char *fn, const Arg *a, double *out) {
    if (v_number(&a->v, out)) return true;
    diag_error(ev->d, a->loc, "%s expects a number here, found %s", fn, v_type(&a->v));
    return false;
}

static Node *arg_tensor(Eval *ev, const char *fn, const Arg *a) {
    if (a->v.k == V_TENSOR) return a->v.t;
    diag_error(ev->d, a->loc, "%s expects a tensor here, found %s", fn, v_type(&a->v));
    return NULL;
}

static bool arg_axis(Eval *ev, const char *fn, const Arg *a, int *out) {
    int64_t v;
    if (!arg_int(ev, fn, a, &v)) return false;
    if (v < -MAX_DIMS || v >= MAX_DIMS) { diag_error(ev->d, a->loc, "%s: axis %" PRId64 " is out of range", fn, v); return false; }
    *out = (int)v;
    return true;
}

/* A constant list of ints (shapes, permutations, index tables). */
static bool arg_ints(Eval *ev, const char *fn, const Arg *a, int64_t **out, int *n) {
    if (a->v.k != V_LIST) { diag_error(ev->d, a->loc, "%s expects a list of ints here, found %s", fn, v_type(&a->v)); return false; }
    *n = a->v.l->n;
    *out = arena_alloc(ev->ar, sizeof(int64_t) * (size_t)(*n ? *n : 1));
    for (int k = 0; k < *n; k++) {
        const Value *v = &a->v.l->items[k];
        if (v->k != V_INT) { diag_error(ev->d, a->loc, "%s expects a list of ints, element %d is %s", fn, k, v_type(v)); return false; }
        (*out)[k] = v->i;
    }
    return true;
}

static int norm_axis(Eval *ev, const char *fn, Node *x, int axis, Loc loc) {
    int ax = axis < 0 ? axis + x->shape.ndim : axis;
    char sb[96];
    if (ax < 0 || ax >= x->shape.ndim) {
        diag_error(ev->d, loc, "%s: axis %d is out of range for a tensor of shape %s", fn, axis, shape_str(x->shape, sb, 96));
        return -1;
    }
    return ax;
}

static Node *scalar_like(Eval *ev, double v, Node *x) { return g_const(ev->g, v, (Shape){0}, x->dtype); }
#define CK(expr) checked(ev, (expr), loc)

/* ------------------------------------------------------------------ elementwise */
static double c_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double c_silu(double x) { return x / (1 + exp(-x)); }
static double c_softplus(double x) { return x > 20 ? x : log1p(exp(x)); }
static double c_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double c_relu(double x) { return x > 0 ? x : 0; }
static double c_neg(double x) { return -x; }
static double c_rsqrt(double x) { return 1 / sqrt(x); }

typedef struct UnarySpec { const char *name; OpKind op; double (*f)(double); } UnarySpec;
static const UnarySpec UNARY[] = {
    {"exp", OP_EXP, exp}, {"log", OP_LOG, log}, {"sqrt", OP_SQRT, sqrt}, {"rsqrt", OP_RSQRT, c_rsqrt},
    {"tanh", OP_TANH, tanh}, {"erf", OP_ERF, erf}, {"sigmoid", OP_SIGMOID, c_sigmoid}, {"silu", OP_SILU, c_silu},
    {"softplus", OP_SOFTPLUS, c_softplus}, {"relu", OP_RELU, c_relu}, {"abs", OP_ABS, fabs}, {"neg", OP_NEG, c_neg},
    {"gelu", OP_ERF, c_gelu},   /* tensors: the composite gelu() below */
};

static Value gelu(Eval *ev, Node *x, Loc loc) {    /* 0.5 x (1 + erf(x / sqrt 2)), exact as torch's default */
    Graph *g = ev->g;
    Node *t = CK(g_binary(g, OP_MUL, x, scalar_like(ev, 1 / sqrt(2.0), x), loc));
    if (t) t = CK(g_unary(g, OP_ERF, t, loc));
    if (t) t = CK(g_binary(g, OP_ADD, t, scalar_like(ev, 1, x), loc));
    if (t) t = CK(g_binary(g, OP_MUL, t, x, loc));
    if (t) t = CK(g_binary(g, OP_MUL, t, scalar_like(ev, 0.5, x), loc));
    return v_tensor(t);
}

static Value b_unary(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    const UnarySpec *sp = NULL;
    for (size_t k = 0; k < COUNTOF(UNARY); k++) if (!strcmp(UNARY[k].name, name)) sp = &UNARY[k];
    ASSERT(sp, "%s", name);
    if (a[0].v.k == V_TENSOR) {
        if (!strcmp(name, "gelu")) return gelu(ev, a[0].v.t, loc);
        return v_tensor(CK(g_unary(ev->g, sp->op, a[0].v.t, loc)));
    }
    if (a[0].v.k == V_INT && !strcmp(name, "abs")) {
        if (a[0].v.i == INT64_MIN) { diag_error(ev->d, loc, "integer overflow in abs"); return v_err(); }
        return v_int(a[0].v.i < 0 ? -a[0].v.i : a[0].v.i);
    }
    double x;
    if (!v_number(&a[0].v, &x)) { diag_error(ev->d, a[0].loc, "%s expects a number or a tensor, found %s", name, v_type(&a[0].v)); return v_err(); }
    double r = sp->f(x);
    if (!isfinite(r)) { diag_error(ev->d, loc, "%s(%g) is not a finite number", name, x); return v_err(); }
    return v_float(r);
}

static Value b_round(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    double x;
    if (a[0].v.k == V_INT) return a[0].v;
    if (!arg_num(ev, name, &a[0], &x)) return v_err();
    double r = !strcmp(name, "ceil") ? ceil(x) : floor(x);
    if (!(r > -9.2e18 && r < 9.2e18)) { diag_error(ev->d, loc, "%s(%g) does not fit in an int", name, x); return v_err(); }
    return v_int((int64_t)r);
}

static Value b_minmax(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    bool is_max = !strcmp(name, "max");
    if (n == 2 && (a[0].v.k == V_TENSOR || a[1].v.k == V_TENSOR)) {
        DType like = a[0].v.k == V_TENSOR ? a[0].v.t->dtype : a[1].v.t->dtype;
        Node *x = tensor_of(ev, a[0].v, like, a[0].loc), *y = tensor_of(ev, a[1].v, like, a[1].loc);
        return x && y ? v_tensor(CK(g_binary(ev->g, is_max ? OP_MAX : OP_MIN, x, y, loc))) : v_err();
    }
    const Value *items = NULL;
    int m = n;
    Value *tmp = arena_alloc(ev->ar, sizeof(Value) * (size_t)n);
    for (int k = 0; k < n; k++) tmp[k] = a[k].v;
    items = tmp;
    if (n == 1 && a[0].v.k == V_LIST) { items = a[0].v.l->items; m = a[0].v.l->n; }
    if (m == 0) { diag_error(ev->d, loc, "%s of an empty list", name); return v_err(); }
    Value best = items[0];
    double bx, x;
    for (int k = 0; k < m; k++) {
        if (!v_number(&items[k], &x)) { diag_error(ev->d, loc, "%s expects numbers, found %s", name, v_type(&items[k])); return v_err(); }
        v_number(&best, &bx);
        bool better = best.k == V_INT && items[k].k == V_INT ? (is_max ? items[k].i > best.i : items[k].i < best.i)
                                                             : (is_max ? x > bx : x < bx);
        if (better) best = items[k];
    }
    return best;
}

/* ------------------------------------------------------------------ constants and lists */
static Value b_len(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    if (a[0].v.k == V_LIST) return v_int(a[0].v.l->n);
    if (a[0].v.k == V_STR) return v_int((int64_t)strlen(a[0].v.s));
    diag_error(ev->d, a[0].loc, "len expects a list or a string, found %s", v_type(&a[0].v));
    return v_err();
}

static Value b_range(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    int64_t lo = 0, hi = 0, step = 1;
    if (!arg_int(ev, name, &a[0], n == 1 ? &hi : &lo)) return v_err();
    if (n >= 2 && !arg_int(ev, name, &a[1], &hi)) return v_err();
    if (n == 3 && !arg_int(ev, name, &a[2], &step)) return v_err();
    if (step == 0) { diag_error(ev->d, a[2].loc, "range step must not be zero"); return v_err(); }
    double count = step > 0 ? ceil(((double)hi - (double)lo) / (double)step) : ceil(((double)lo - (double)hi) / (double)-step);
    if (count < 0) count = 0;
    if (count > DSL_MAX_LIST) { diag_error(ev->d, loc, "range is too long (more than %d elements)", DSL_MAX_LIST); return v_err(); }
    if (!eval_memory(ev, (int64_t)count, loc)) return v_err();
    Value r = v_list(ev, (int)count);
    for (int k = 0; k < (int)count; k++) r.l->items[k] = v_int(lo + step * k);
    return r;
}

static Value b_int(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    const Value *v = &a[0].v;
    if (v->k == V_INT) return *v;
    if (v->k == V_BOOL) return v_int(v->b);
    if (v->k == V_FLOAT) {
        if (!(v->f > -9.2e18 && v->f < 9.2e18)) { diag_error(ev->d, loc, "int(%g) does not fit in an int", v->f); return v_err(); }
        return v_int((int64_t)v->f);
    }
    diag_error(ev->d, a[0].loc, "int expects a number or a bool, found %s", v_type(v));
    return v_err();
}

static Value b_float(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    double x;
    if (a[0].v.k == V_BOOL) return v_float(a[0].v.b);
    if (!arg_num(ev, name, &a[0], &x)) return v_err();
    return v_float(x);
}

static Value b_str(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    const Value *v = &a[0].v;
    if (v->k == V_STR) return *v;
    if (v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL) return v_str(v_show(ev, v));
    diag_error(ev->d, a[0].loc, "str expects a number, a bool or a string, found %s", v_type(v));
    return v_err();
}

static Value b_shape(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    if (!x) return v_err();
    Value r = v_list(ev, x->shape.ndim);
    for (int k = 0; k < x->shape.ndim; k++) r.l->items[k] = v_int(x->shape.d[k]);
    return r;
}

/* ------------------------------------------------------------------ tensor builtins */
static Value b_where(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *c = arg_tensor(ev, name, &a[0]);
    if (!c) return v_err();
    DType like = a[1].v.k == V_TENSOR ? a[1].v.t->dtype : a[2].v.k == V_TENSOR ? a[2].v.t->dtype : DT_F32;
    Node *x = tensor_of(ev, a[1].v, like, a[1].loc), *y = tensor_of(ev, a[2].v, like, a[2].loc);
    return x && y ? v_tensor(CK(g_where(ev->g, c, x, y, loc))) : v_err();
}

static Value b_reduce(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    if (!x) return v_err();
    OpKind op = !strcmp(name, "amax") ? OP_AMAX : OP_SUM;
    bool mean = !strcmp(name, "mean");
    Graph *g = ev->g;
    if (n == 1) {                                  /* over all elements: a scalar [] */
        int64_t total = shape_numel(x->shape);
        Node *flat = CK(g_reshape(g, x, shape_of(1, total), loc));
        Node *r = flat ? CK(g_reduce(g, op, flat, 0, loc)) : NULL;
        if (r) r = CK(g_reshape(g, r, (Shape){0}, loc));
        if (r && mean) r = CK(g_binary(g, OP_MUL, r, scalar_like(ev, 1.0 / (double)total, x), loc));
        return v_tensor(r);
    }
    int axis;
    if (!arg_axis(ev, name, &a[1], &axis)) return v_err();
    Node *r = CK(g_reduce(g, op, x, axis, loc));
    if (r && mean) {
        int ax = axis < 0 ? axis + x->shape.ndim : axis;
        r = CK(g_binary(g, OP_MUL, r, scalar_like(ev, 1.0 / (double)x->shape.d[ax], x), loc));
    }
    return v_tensor(r);
}

static Value b_reshape(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int64_t *dims;
    int nd;
    if (!x || !arg_ints(ev, name, &a[1], &dims, &nd)) return v_err();
    if (nd > MAX_DIMS) { diag_error(ev->d, a[1].loc, "reshape: at most %d dimensions, found %d", MAX_DIMS, nd); return v_err(); }
    int64_t numel = 1;
    for (int k = 0; k < nd; k++) {
        if (dims[k] == -1) continue;
        if (dims[k] <= 0) { diag_error(ev->d, a[1].loc, "reshape: dimension %d is %" PRId64 ", expected a positive size or -1", k, dims[k]); return v_err(); }
        if (__builtin_mul_overflow(numel, dims[k], &numel) || numel > DSL_MAX_NUMEL) {
            diag_error(ev->d, a[1].loc, "reshape: the shape has too many elements (more than %" PRId64 ")", DSL_MAX_NUMEL);
            return v_err();
        }
    }
    return v_tensor(CK(g_reshape(ev->g, x, shape_make(nd, dims), loc)));
}

static Value b_expand(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int64_t *dims;
    int nd;
    if (!x || !arg_ints(ev, name, &a[1], &dims, &nd)) return v_err();
    if (nd > MAX_DIMS) { diag_error(ev->d, a[1].loc, "expand: at most %d dimensions, found %d", MAX_DIMS, nd); return v_err(); }
    int64_t numel = 1;
    for (int k = 0; k < nd; k++)
        if (dims[k] <= 0 || __builtin_mul_overflow(numel, dims[k], &numel) || numel > DSL_MAX_NUMEL) {
            diag_error(ev->d, a[1].loc, "expand: bad or too large shape");
            return v_err();
        }
    return v_tensor(CK(g_expand(ev->g, x, shape_make(nd, dims), loc)));
}

static Value permute_to(Eval *ev, Node *x, const int64_t *p, int np, Loc at, Loc loc) {
    if (np != x->shape.ndim) {
        diag_error(ev->d, at, "permute: %d axes given for a tensor of rank %d", np, x->shape.ndim);
        return v_err();
    }
    int perm[MAX_DIMS];
    for (int k = 0; k < np; k++) perm[k] = p[k] < -MAX_DIMS || p[k] > MAX_DIMS ? -1 : (int)p[k];
    return v_tensor(CK(g_permute(ev->g, x, perm, loc)));
}

static Value b_permute(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int64_t *p;
    int np;
    if (!x || !arg_ints(ev, name, &a[1], &p, &np)) return v_err();
    return permute_to(ev, x, p, np, a[1].loc, loc);
}

static Value b_transpose(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int i, j;
    if (!x || !arg_axis(ev, name, &a[1], &i) || !arg_axis(ev, name, &a[2], &j)) return v_err();
    if ((i = norm_axis(ev, name, x, i, a[1].loc)) < 0 || (j = norm_axis(ev, name, x, j, a[2].loc)) < 0) return v_err();
    int64_t p[MAX_DIMS];
    for (int k = 0; k < x->shape.ndim; k++) p[k] = k;
    p[i] = j; p[j] = i;
    return permute_to(ev, x, p, x->shape.ndim, loc, loc);
}

static Value b_slice(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int axis;
    int64_t s, e;
    if (!x || !arg_axis(ev, name, &a[1], &axis) || !arg_int(ev, name, &a[2], &s) || !arg_int(ev, name, &a[3], &e)) return v_err();
    return v_tensor(CK(g_slice(ev->g, x, axis, s, e, loc)));
}

static Value b_concat(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    int axis;
    if (a[0].v.k != V_LIST) { diag_error(ev->d, a[0].loc, "concat expects a list of tensors, found %s", v_type(&a[0].v)); return v_err(); }
    if (!arg_axis(ev, name, &a[1], &axis)) return v_err();
    int m = a[0].v.l->n;
    Node **xs = arena_alloc(ev->ar, sizeof(Node *) * (size_t)(m ? m : 1));
    for (int k = 0; k < m; k++) {
        const Value *v = &a[0].v.l->items[k];
        if (v->k != V_TENSOR) { diag_error(ev->d, a[0].loc, "concat expects a list of tensors, element %d is %s", k, v_type(v)); return v_err(); }
        xs[k] = v->t;
    }
    return v_tensor(CK(g_concat(ev->g, xs, m, axis, loc)));
}

static Value gather_table(Eval *ev, Node *x, int axis, const int64_t *idx, int m, Loc at, Loc loc) {
    int32_t *t = arena_alloc(ev->ar, sizeof(int32_t) * (size_t)(m ? m : 1));
    for (int k = 0; k < m; k++) {
        if (idx[k] < INT32_MIN || idx[k] > INT32_MAX) { diag_error(ev->d, at, "gather: index %" PRId64 " does not fit in 32 bits", idx[k]); return v_err(); }
        t[k] = (int32_t)idx[k];
    }
    if (m == 0) { diag_error(ev->d, at, "gather: the index list is empty"); return v_err(); }
    return v_tensor(CK(g_gather(ev->g, x, axis, t, m, loc)));
}

static Value b_flip(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int axis;
    if (!x || !arg_axis(ev, name, &a[1], &axis)) return v_err();
    int ax = norm_axis(ev, name, x, axis, a[1].loc);
    if (ax < 0) return v_err();
    int64_t len = x->shape.d[ax];
    if (len > DSL_MAX_LIST) { diag_error(ev->d, loc, "flip: axis of size %" PRId64 " is too long", len); return v_err(); }
    if (!eval_memory(ev, len, loc)) return v_err();
    int64_t *idx = arena_alloc(ev->ar, sizeof(int64_t) * (size_t)len);
    for (int64_t k = 0; k < len; k++) idx[k] = len - 1 - k;
    return gather_table(ev, x, ax, idx, (int)len, loc, loc);
}

static Value b_gather(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    int axis;
    if (!x || !arg_axis(ev, name, &a[1], &axis)) return v_err();
    if (a[2].v.k == V_TENSOR) return v_tensor(CK(g_gather_dyn(ev->g, x, axis, a[2].v.t, loc)));
    int64_t *idx;
    int m;
    if (!arg_ints(ev, name, &a[2], &idx, &m)) return v_err();
    return gather_table(ev, x, axis, idx, m, a[2].loc, loc);
}

static Value b_cast(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    if (!x) return v_err();
    if (a[1].v.k != V_DTYPE) { diag_error(ev->d, a[1].loc, "cast expects a dtype (f32, bf16 or i32), found %s", v_type(&a[1].v)); return v_err(); }
    return v_tensor(CK(g_cast(ev->g, x, a[1].v.dt, loc)));
}

static Value b_linear(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]), *w = x ? arg_tensor(ev, name, &a[1]) : NULL;
    if (!w) return v_err();
    Node *y = CK(g_matmul(ev->g, x, w, false, true, loc));          /* x @ w^T, w stored [out, in] */
    if (y && n == 3) {
        Node *b = arg_tensor(ev, name, &a[2]);
        y = b ? CK(g_binary(ev->g, OP_ADD, y, b, loc)) : NULL;
    }
    return v_tensor(y);
}

static Value b_conv1d(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *t[3];
    for (int k = 0; k < 3; k++) if (!(t[k] = arg_tensor(ev, name, &a[k]))) return v_err();
    return v_tensor(CK(g_conv1d(ev->g, t[0], t[1], t[2], loc)));
}

static Value b_scan(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *t[8];
    for (int k = 0; k < n; k++) if (!(t[k] = arg_tensor(ev, name, &a[k]))) return v_err();
    return v_tensor(CK(g_scan(ev->g, t, n, loc)));
}

/* attention(q, k, v, mask, heads [, scale]): softmax(q k^T * scale + mask) v per head, one fused op (the default scale
 * is head_dim^-0.5). */
static Value b_attention(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *t[4];
    for (int k = 0; k < 4; k++) if (!(t[k] = arg_tensor(ev, name, &a[k]))) return v_err();
    double heads, scale = 0;
    if (!arg_num(ev, name, &a[4], &heads)) return v_err();
    if (heads != (double)(int64_t)heads || heads < 1) {
        diag_error(ev->d, a[4].loc, "attention: heads must be a positive integer, found %g", heads);
        return v_err();
    }
    if (n > 5 && !arg_num(ev, name, &a[5], &scale)) return v_err();
    if (n <= 5 && t[0]->shape.ndim == 3 && heads > 0) scale = 1.0 / sqrt((double)t[0]->shape.d[2] / heads);
    return v_tensor(CK(g_attention(ev->g, t[0], t[1], t[2], t[3], (int64_t)heads, scale, loc)));
}

static Value b_drop_path(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *x = arg_tensor(ev, name, &a[0]);
    double p;
    if (!x || !arg_num(ev, name, &a[1], &p)) return v_err();
    if (!(p >= 0 && p < 1)) { diag_error(ev->d, a[1].loc, "drop_path probability must be in [0, 1), found %g", p); return v_err(); }
    if (p == 0) return a[0].v;
    if (x->shape.ndim < 1) { diag_error(ev->d, a[0].loc, "drop_path needs a batched tensor [B, ...], found a scalar"); return v_err(); }
    Shape s = x->shape;
    for (int k = 1; k < s.ndim; k++) s.d[k] = 1;                 /* one keep/drop decision per sample */
    Node *mask = CK(g_drop_mask(ev->g, s, p, scope_key(ev), loc));
    if (mask && x->dtype != DT_F32) mask = CK(g_cast(ev->g, mask, x->dtype, loc));
    return v_tensor(mask ? CK(g_binary(ev->g, OP_MUL, x, mask, loc)) : NULL);
}

static Value b_randperm(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    int64_t len;
    if (!arg_int(ev, name, &a[0], &len)) return v_err();
    if (len < 1 || len > INT32_MAX) { diag_error(ev->d, a[0].loc, "randperm(n) needs 1 <= n <= %d, found %" PRId64, INT32_MAX, len); return v_err(); }
    return v_tensor(CK(g_randperm(ev->g, len, scope_key(ev), loc)));
}

/* one_hot(labels i32 [..], n) -> f32 [.., n]: 1 where label == class, built as 1 - (l > c) - (c > l). */
static Value b_one_hot(Eval *ev, const char *name, Arg *a, int n, Loc loc) {
    Node *l = arg_tensor(ev, name, &a[0]);
    int64_t classes;
    if (!l || !arg_int(ev, name, &a[1], &classes)) return v_err();
    if (classes < 1 || classes > DSL_MAX_LIST) { diag_error(ev->d, a[1].loc, "one_hot: the class count must be in 1..%d", DSL_MAX_LIST); return v_err(); }
    if (!eval_memory(ev, classes, loc)) return v_err();
    if (l->shape.ndim >= MAX_DIMS) { diag_error(ev->d, a[0].loc, "one_hot: the labels have too many dimensions"); return v_err(); }
    Graph *g = ev->g;
    Shape s = l->shape;
    s.d[s.ndim++] = 1;
    Node *lf = CK(g_cast(g, l, DT_F32, loc));
    if (lf) lf = CK(g_reshape(g, lf, s, loc));
    float *tab = arena_alloc(ev->ar, sizeof(float) * (size_t)classes);
    for (int64_t k = 0; k < classes; k++) tab[k] = (float)k;
    Node *c = g_table_f32(g, shape_of(1, classes), tab);
    Node *gt1 = lf ? CK(g_binary(g, OP_CMP_GT, lf, c, loc)) : NULL;
    Node *gt2 = gt1 ? CK(g_binary(g, OP_CMP_GT, c, lf, loc)) : NULL;
    Node *r = gt2 ? CK(g_binary(g, OP_SUB, g_scalar(g, 1), gt1, loc)) : NULL;
    return v_tensor(r ? CK(g_binary(g, OP_SUB, r, gt2, loc)) : NULL);
}

/* ------------------------------------------------------------------ table */
static const Builtin BUILTINS[] = {
    {"exp", 1, 1, b_unary}, {"log", 1, 1, b_unary}, {"sqrt", 1, 1, b_unary}, {"rsqrt", 1, 1, b_unary},
    {"tanh", 1, 1, b_unary}, {"erf", 1, 1, b_unary}, {"sigmoid", 1, 1, b_unary}, {"silu", 1, 1, b_unary},
    {"softplus", 1, 1, b_unary}, {"relu", 1, 1, b_unary}, {"abs", 1, 1, b_unary}, {"neg", 1, 1, b_unary},
    {"gelu", 1, 1, b_unary},
    {"ceil", 1, 1, b_round}, {"floor", 1, 1, b_round}, {"min", 1, 64, b_minmax}, {"max", 1, 64, b_minmax},
    {"len", 1, 1, b_len}, {"range", 1, 3, b_range}, {"int", 1, 1, b_int}, {"float", 1, 1, b_float},
    {"str", 1, 1, b_str}, {"shape", 1, 1, b_shape},
    {"where", 3, 3, b_where}, {"sum", 1, 2, b_reduce}, {"mean", 1, 2, b_reduce}, {"amax", 1, 2, b_reduce},
    {"reshape", 2, 2, b_reshape}, {"expand", 2, 2, b_expand}, {"permute", 2, 2, b_permute},
    {"transpose", 3, 3, b_transpose}, {"slice", 4, 4, b_slice}, {"concat", 2, 2, b_concat}, {"flip", 2, 2, b_flip},
    {"gather", 3, 3, b_gather}, {"cast", 2, 2, b_cast}, {"linear", 2, 3, b_linear},
    {"conv1d_causal", 3, 3, b_conv1d}, {"selective_scan", 7, 8, b_scan},
    {"attention", 5, 6, b_attention}, {"drop_path", 2, 2, b_drop_path},
    {"randperm", 1, 1, b_randperm}, {"one_hot", 2, 2, b_one_hot},
};

int builtin_find(const char *name) {
    for (size_t k = 0; k < COUNTOF(BUILTINS); k++) if (!strcmp(BUILTINS[k].name, name)) return (int)k;
    return -1;
}

const char *builtin_name(int k) { return k >= 0 && k < (int)COUNTOF(BUILTINS) ? BUILTINS[k].name : NULL; }

Value builtin_call(Eval *ev, int k, Arg *args, int nargs, Loc loc) {
    const Builtin *b = &BUILTINS[k];
    for (int j = 0; j < nargs; j++)
        if (args[j].kw) { diag_error(ev->d, args[j].loc, "builtin '%s' takes no keyword arguments", b->name); return v_err(); }
    if (nargs < b->min || nargs > b->max) {
        if (b->min == b->max) diag_error(ev->d, loc, "%s: builtin '%s' takes %d argument%s, found %d", nargs > b->max ? "too many arguments" : "too few arguments", b->name, b->min, b->min == 1 ? "" : "s", nargs);
        else diag_error(ev->d, loc, "%s: builtin '%s' takes %d to %d arguments, found %d", nargs > b->max ? "too many arguments" : "too few arguments", b->name, b->min, b->max, nargs);
        return v_err();
    }
    bool tensors = false;
    for (int j = 0; j < nargs; j++) tensors |= args[j].v.k == V_TENSOR;
    if (tensors && !ev->g) { diag_error(ev->d, loc, "tensor operations are not allowed in a constant expression"); return v_err(); }
    bool makes_tensor = b->fn == b_randperm;
    if (makes_tensor && !ev->g) { diag_error(ev->d, loc, "'%s' makes a tensor: not allowed in a constant expression", b->name); return v_err(); }
    return b->fn(ev, b->name, args, nargs, loc);
}
