/* emit_expr.c — a group member's value at an index vector, as C expressions: movement ops only rewrite the index,
 * loads read an input's buffer (or its bf16 copy), and each (node, index) is computed once per scope (CSE). */
#include "emit.h"
#include "packed_copy.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- small helpers */
const char *em_ctype(const Node *n) { return n->dtype == DT_I32 ? "int" : "float"; }

void em_line(Em *e, const char *fmt, ...) {
    va_list ap;
    fprintf(e->o, "%*s", 4 * e->ind, "");
    va_start(ap, fmt);
    vfprintf(e->o, fmt, ap);
    va_end(ap);
    fputc('\n', e->o);
}

/* lane_kind of an index (a variable or a literal) while the vec4 lanes are open; LANE_DEP when they are not. */
static int lane_kind(const Em *e, const char *s) {
    if (!e->vec4) return LANE_DEP;
    if (!strcmp(s, "e")) return LANE_AFF;
    if (e->vbase && !strcmp(s, e->vbase)) return LANE_INV;
    if (isdigit((unsigned char)s[0])) return LANE_INV;   /* a literal */
    for (int k = e->nlv - 1; k >= 0; k--) if (!strcmp(e->lv[k].name, s)) return e->lv[k].kind;
    const char *d = s;   /* c12, f3, ...: numbered below lanes_nvar means defined before the lanes */
    while (isalpha((unsigned char)*d)) d++;
    if (d != s && isdigit((unsigned char)*d) && d[strspn(d, "0123456789")] == 0 && atoi(d) < e->lanes_nvar) return LANE_INV;
    return LANE_DEP;
}

void em_lane_set(Em *e, const char *name, int kind) {
    if (!e->vec4 || e->nlv == MAX_LANE_VARS) return;   /* (a name not recorded is LANE_DEP: scalar loads) */
    snprintf(e->lv[e->nlv].name, IXLEN, "%s", name);
    e->lv[e->nlv++].kind = (signed char)kind;
}

/* The lane kind of x + c for a constant c. */
static int lane_shift(const Em *e, const char *x, long long c) {
    int k = lane_kind(e, x);
    return k == LANE_AFF && c % 4 ? LANE_DEP : k;
}

/* One line that unpacks 4 adjacent elements into dst[0..3]: `at` is the 4-wide value (bf16 words: a uint2 of them,
 * else a float4/int4), `prefix` a condition in front ("" for none). */
void em_load4(Em *e, const char *prefix, const char *dst, bool bf16, const char *t, const char *at) {
    if (bf16)
        em_line(e, "%s{ const uint2 t = %s; %s[0] = __uint_as_float(t.x << 16); %s[1] = __uint_as_float(t.x & 0xffff0000u); "
                "%s[2] = __uint_as_float(t.y << 16); %s[3] = __uint_as_float(t.y & 0xffff0000u); }",
             prefix, at, dst, dst, dst, dst);
    else em_line(e, "%s{ const %s4 t = %s; %s[0] = t.x; %s[1] = t.y; %s[2] = t.z; %s[3] = t.w; }", prefix, t, at, dst, dst, dst, dst);
}

/* A float literal of the f32 value the cpu backend holds for v ((float)v), printed so that it reads back exactly. */
static void flit(double v, char *buf, int n) {
    v = (double)(float)v;
    if (isnan(v)) snprintf(buf, (size_t)n, "__int_as_float(0x7fc00000)");
    else if (isinf(v)) snprintf(buf, (size_t)n, v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)");
    else {
        char t[40];
        snprintf(t, sizeof t, "%.9g", v);
        bool dot = strpbrk(t, ".e") != NULL;
        snprintf(buf, (size_t)n, "%s%sf", t, dot ? "" : ".0");
    }
}

int em_param_of(const Em *e, const Node *n, bool out) {
    const Group *g = e->gr;
    if (!out) { for (int k = 0; k < g->nins; k++) if (g->ins[k] == n) return k; }
    else { for (int k = 0; k < g->nouts; k++) if (g->outs[k] == n) return k; }
    return -1;
}

bool codegen_reads_copy(const Fusion *f, const Group *gr, const Node *x) {
    const Node *o = fus_owner(f, x);
    if (packed_has_parts(o)) {   /* the parts with a copy (packed_copy.h), whoever reads them */
        const int parts = gr->kind == GK_EW || gr->kind == GK_ROW ? packed_parts_read(f, gr, x, o) : 0;
        return f->shadow[o->id] && parts && !(parts & ~f->part_copy[o->id]);
    }
    if (gr->kind != GK_ROW) return false;
    if (!f->shadow[o->id] || f->store_bf16[o->id]) return false;
    for (int k = 0; k < gr->nmembers; k++)
        if (gr->members[k]->op != OP_SUM && gr->members[k]->op != OP_RESHAPE) return false;
    return true;
}

/* Is input x read as raw bf16 words: stored in bf16, or read from its bf16 copy? */
bool em_in_bf16(const Em *e, const Node *x) { return fus_bf16(e->f, x) || codegen_reads_copy(e->f, e->gr, x); }

/* Computed here (not loaded): the group's own members, recomputed values (never stored anywhere), and stored roots
 * of other kernels that this one recomputes (Fusion.recompute). */
bool em_is_member(const Em *e, const Node *n) { return fus_computed_in(e->f, e->gr, n); }

static const char *index_get(Em *e, const char *expr);
static void index_put(Em *e, const char *expr, const char *var);

static bool same_ix(const Ix *a, const Ix *b, int ndim) {
    for (int k = 0; k < ndim; k++) if (strcmp(a->s[k], b->s[k])) return false;
    return true;
}

/* Flat row-major offset of ix in shape s, as a new local variable (or a literal when trivial; "e" for element e,
 * also through a reshape of the domain). */
void em_flat(Em *e, Shape s, const Ix *ix, char *out) {
    bool is_e = e->root_ix && shape_eq(s, e->gr->dom) && same_ix(ix, e->root_ix, s.ndim);
    for (int a = 0; e->root_ix && !is_e && a < e->nalias; a++)
        is_e = shape_eq(s, e->alias_shape[a]) && same_ix(ix, &e->alias_ix[a], s.ndim);
    if (is_e) { snprintf(out, IXLEN, "e"); return; }
    char expr[512] = "";
    int64_t stride = 1;
    int w = 0, terms = 0;
    for (int k = s.ndim - 1; k >= 0; k--) {
        if (s.d[k] != 1 && strcmp(ix->s[k], "0")) {
            if (stride == 1) w += snprintf(expr + w, sizeof expr - (size_t)w, "%s(long long)%s", terms ? " + " : "", ix->s[k]);
            else w += snprintf(expr + w, sizeof expr - (size_t)w, "%s(long long)%s * %lldLL", terms ? " + " : "", ix->s[k], (long long)stride);
            terms++;
        }
        stride *= s.d[k];
    }
    if (!terms) { snprintf(out, IXLEN, "0"); return; }
    if (terms == 1 && !strchr(expr, '*')) {   /* a single coordinate: no variable needed */
        snprintf(out, IXLEN, "%.*s", IXLEN - 1, expr + strlen("(long long)"));
        return;
    }
    const char *known = index_get(e, expr);
    if (known) { snprintf(out, IXLEN, "%s", known); return; }
    snprintf(out, IXLEN, "f%d", e->nvar++);
    em_line(e, "const long long %s = %s;", out, expr);
    index_put(e, expr, out);
    if (e->vec4) {   /* lane base + k when the stride-1 coordinate is, every other one is invariant, strides % 4 == 0 */
        int kind = LANE_INV;
        stride = 1;
        for (int k = s.ndim - 1; k >= 0; k--) {
            if (s.d[k] != 1 && strcmp(ix->s[k], "0")) {
                const int c = lane_kind(e, ix->s[k]);
                if (c == LANE_DEP || (c == LANE_AFF && (stride != 1 || kind == LANE_AFF || s.d[k] % 4))) kind = LANE_DEP;
                else if (c == LANE_AFF) kind = LANE_AFF;
                if (kind == LANE_DEP) break;
            }
            stride *= s.d[k];
        }
        em_lane_set(e, out, kind);
    }
}

/* Index of input x (numpy-broadcast against the output shape os) from the output index. */
static Ix bcast_ix(const Ix *ix, Shape os, Shape xs) {
    Ix r = {.n = xs.ndim};
    for (int k = 0; k < xs.ndim; k++) {
        int ko = k + os.ndim - xs.ndim;
        snprintf(r.s[k], IXLEN, "%s", xs.d[k] == 1 ? "0" : ix->s[ko]);
    }
    return r;
}

/* Decomposes a flat offset variable into coordinates of shape s. Element e of the vec4 lanes, in a shape whose
 * innermost extent is a multiple of 4: every coordinate but the innermost is that of vbase (the same for the 4
 * elements, so the compiler computes it once), the innermost that of vbase plus k. */
Ix em_unflat(Em *e, Shape s, const char *fvar) {
    Ix r = {.n = s.ndim};
    if (e->vbase && !strcmp(fvar, "e") && s.ndim > 0 && s.d[s.ndim - 1] % 4 == 0) {
        r = em_unflat(e, s, e->vbase);
        char ck[IXLEN];
        snprintf(ck, sizeof ck, "c%d", e->nvar++);
        em_line(e, "const long long %s = %s + k;", ck, r.s[s.ndim - 1]);
        em_lane_set(e, ck, LANE_AFF);
        memcpy(r.s[s.ndim - 1], ck, IXLEN);
    } else {
        /* of a lane-affine flat index with an innermost extent % 4 == 0: the innermost coordinate is lane-affine,
         * the others the same for the 4 elements */
        const int fk = lane_kind(e, fvar), inner = s.ndim - 1;
        int64_t stride = 1;
        for (int k = s.ndim - 1; k >= 0; k--) {
            if (s.d[k] == 1) snprintf(r.s[k], IXLEN, "0");
            else {
                char expr[160];
                if (k == 0) snprintf(expr, sizeof expr, stride == 1 ? "%s" : "%s / %lldLL", fvar, (long long)stride);
                else if (stride == 1) snprintf(expr, sizeof expr, "%s %% %lldLL", fvar, (long long)s.d[k]);
                else snprintf(expr, sizeof expr, "%s / %lldLL %% %lldLL", fvar, (long long)stride, (long long)s.d[k]);
                snprintf(r.s[k], IXLEN, "c%d", e->nvar++);
                em_line(e, "const long long %s = %s;", r.s[k], expr);
                em_lane_set(e, r.s[k], fk == LANE_INV ? LANE_INV
                                    : fk == LANE_AFF && s.d[inner] % 4 == 0 ? (k == inner ? LANE_AFF : LANE_INV) : LANE_DEP);
            }
            stride *= s.d[k];
        }
    }
    if (e->root_ix && !strcmp(fvar, "e") && e->nalias < 4) {   /* a reshape of the domain: still element e */
        e->alias_shape[e->nalias] = s;
        e->alias_ix[e->nalias++] = r;
    }
    return r;
}

/* ---------------------------------------------------------------- memo (CSE per scope) */
static char *memo_key(const Node *n, const Ix *ix) {
    char buf[MAX_DIMS * (IXLEN + 1) + 16];
    int w = snprintf(buf, sizeof buf, "%u", n->id);
    for (int k = 0; k < ix->n; k++) w += snprintf(buf + w, sizeof buf - (size_t)w, "|%s", ix->s[k]);
    return xstrdup(buf);
}
static const char *memo_get(Em *e, const Node *n, const Ix *ix) {
    char *key = memo_key(n, ix);
    const char *r = NULL;
    for (int k = e->nmemo - 1; k >= 0 && !r; k--)
        if (e->memo[k].id == n->id && !strcmp(e->memo[k].key, key)) r = e->memo[k].var;
    free(key);
    return r;
}
static const char *memo_put(Em *e, const Node *n, const Ix *ix, const char *var) {
    if (e->nmemo == e->capmemo) {
        e->capmemo = e->capmemo ? e->capmemo * 2 : 64;
        e->memo = xrealloc(e->memo, sizeof(Memo) * (size_t)e->capmemo);
    }
    Memo *m = &e->memo[e->nmemo++];
    m->id = n->id;
    m->key = memo_key(n, ix);
    m->depth = e->depth;
    snprintf(m->var, sizeof m->var, "%s", var);
    return m->var;
}
/* Leaves a C block: values computed inside are out of scope. */
/* Index expressions share the memo under a reserved id. */
enum { INDEX_ID = 0xffffffffu };
static const char *index_get(Em *e, const char *expr) {
    for (int k = e->nmemo - 1; k >= 0; k--)
        if (e->memo[k].id == INDEX_ID && !strcmp(e->memo[k].key, expr)) return e->memo[k].var;
    return NULL;
}
static void index_put(Em *e, const char *expr, const char *var) {
    if (e->nmemo == e->capmemo) {
        e->capmemo = e->capmemo ? e->capmemo * 2 : 64;
        e->memo = xrealloc(e->memo, sizeof(Memo) * (size_t)e->capmemo);
    }
    Memo *m = &e->memo[e->nmemo++];
    m->id = INDEX_ID;
    m->key = xstrdup(expr);
    m->depth = e->depth;
    snprintf(m->var, sizeof m->var, "%s", var);
}

void em_scope_pop(Em *e) {
    while (e->nmemo && e->memo[e->nmemo - 1].depth >= e->depth) free(e->memo[--e->nmemo].key);
    e->depth--; e->ind--;
}

/* ---------------------------------------------------------------- expressions */

static void unary_expr(const Node *n, const Node *x, const char *a, char *out, size_t len) {
    switch ((int)n->op) {      /* one op class; the full per-op switch is em_val() over classes */
    case OP_NEG: snprintf(out, len, "-%s", a); return;
    case OP_EXP: snprintf(out, len, "vmc_exp(%s)", a); return;
    case OP_LOG: snprintf(out, len, "logf(%s)", a); return;
    case OP_SQRT: snprintf(out, len, "sqrtf(%s)", a); return;
    case OP_RSQRT: snprintf(out, len, "1.0f / sqrtf(%s)", a); return;
    case OP_RECIP: snprintf(out, len, "1.0f / %s", a); return;
    case OP_TANH: snprintf(out, len, "tanhf(%s)", a); return;
    case OP_ERF: snprintf(out, len, "vmc_erf(%s)", a); return;
    case OP_SIGMOID: snprintf(out, len, "vmc_sigmoid(%s)", a); return;
    case OP_SILU: snprintf(out, len, "%s * vmc_sigmoid(%s)", a, a); return;
    case OP_SOFTPLUS: snprintf(out, len, "vmc_softplus(%s)", a); return;
    case OP_RELU: snprintf(out, len, "%s > 0.0f ? %s : 0.0f", a, a); return;
    case OP_ABS: snprintf(out, len, "fabsf(%s)", a); return;
    case OP_CAST:
        if (n->dtype == DT_I32) snprintf(out, len, x->dtype == DT_I32 ? "%s" : "(int)truncf(%s)", a);
        else if (n->dtype == DT_BF16) snprintf(out, len, "vmc_bf16((float)%s)", a);
        else snprintf(out, len, "(float)%s", a);
        return;
    default: break;   /* other classes are handled by the caller */
    }
    UNREACHABLE();
}

static void binary_expr(const Node *n, const char *a, const char *b, char *out, size_t len) {
    bool i = n->src[0]->dtype == DT_I32;
    switch ((int)n->op) {
    case OP_ADD: snprintf(out, len, "%s + %s", a, b); return;
    case OP_SUB: snprintf(out, len, "%s - %s", a, b); return;
    case OP_MUL: snprintf(out, len, "%s * %s", a, b); return;
    case OP_DIV: snprintf(out, len, "%s / %s", a, b); return;
    case OP_MAX: snprintf(out, len, i ? "max(%s, %s)" : "vmc_max(%s, %s)", a, b); return;
    case OP_MIN: snprintf(out, len, i ? "min(%s, %s)" : "vmc_min(%s, %s)", a, b); return;
    case OP_CMP_GT: snprintf(out, len, "%s > %s ? 1 : 0", a, b); return;
    default: break;
    }
    UNREACHABLE();
}

/* Stores a member that is an output, when the current phase writes outputs. */
static void maybe_store(Em *e, const Node *n, const Ix *ix, const char *v) {
    int p = em_param_of(e, n, true);
    if (p < 0 || !e->final) return;
    char fo[IXLEN];
    em_flat(e, n->shape, ix, fo);
    bool f32 = !e->f->shadow_only[n->id], bf = e->f->shadow[n->id];   /* bf: the bf16 copy a GEMM reads */
    if (e->vec4 && !strcmp(fo, "e")) {
        e->vstore[p] = true;
        if (f32) em_line(e, "S%d[k] = %s;", p, v);
        if (bf) em_line(e, "SB%d[k] = (unsigned short)(__float_as_uint(vmc_bf16(%s)) >> 16);", p, v);
        return;
    }
    /* a per-row value inside the loop over the row: stored once, by the row's first element (its first lane's
     * first of 4 when the lanes are open) */
    char guard[64] = "";
    if (e->jvar && e->gr->kind == GK_ROW && n->shape.d[e->gr->axis] == 1 && e->gr->dom.d[e->gr->axis] != 1)
        snprintf(guard, sizeof guard, e->vec4 ? "if (%s == 0 && k == 0) " : "if (%s == 0) ", e->jvar);
    if (f32) em_line(e, "%sout%d[%s] = %s;", guard, p, fo, v);
    if (bf) em_line(e, "%soutb%d[%s] = (unsigned short)(__float_as_uint(vmc_bf16(%s)) >> 16);", guard, p, fo, v);
}

static const char *newvar(Em *e, const Node *n, const Ix *ix, const char *expr) {
    char v[24];
    snprintf(v, sizeof v, "v%d", e->nvar++);
    em_line(e, "const %s %s = %s;   // %s", em_ctype(n), v, expr, op_name(n->op));
    maybe_store(e, n, ix, v);
    return memo_put(e, n, ix, v);
}

/* PAD and CONCAT: only the branch whose index is in range may read its input. */
static const char *cond_move(Em *e, const Node *n, const Ix *ix) {
    int ax = (int)n->i[0];
    char v[24];
    snprintf(v, sizeof v, "v%d", e->nvar++);
    em_line(e, "%s %s = 0;   // %s", em_ctype(n), v, op_name(n->op));
    int64_t at = n->op == OP_PAD ? n->i[1] : 0;
    const int axk = lane_kind(e, ix->s[ax]);
    for (int k = 0; k < n->nsrc; k++) {
        const Node *s = fus_src(e->f, n, k);
        int64_t len = s->shape.d[ax];
        Ix six = *ix;
        snprintf(six.s[ax], IXLEN, "q%d", e->nvar++);
        em_line(e, "%sif (%s >= %lld && %s < %lld) {", k ? "else " : "", ix->s[ax], (long long)at, ix->s[ax], (long long)(at + len));
        e->ind++; e->depth++;
        em_line(e, "const long long %s = %s - %lldLL;", six.s[ax], ix->s[ax], (long long)at);
        /* the 4 elements take the same branch when the coordinate is invariant or the bounds are multiples of 4 */
        const bool uniform = axk == LANE_INV || (axk == LANE_AFF && at % 4 == 0 && len % 4 == 0);
        em_lane_set(e, six.s[ax], uniform ? axk : LANE_DEP);
        e->nonuniform += !uniform;
        const char *a = em_val(e, s, &six);
        e->nonuniform -= !uniform;
        em_line(e, "%s = %s;", v, a);
        em_scope_pop(e);
        em_line(e, "}");
        at += len;
    }
    maybe_store(e, n, ix, v);
    return memo_put(e, n, ix, v);
}

const char *em_gather_table(Em *e, const Node *n) {
    static char name[32];
    for (int k = 0; k < e->tables.n; k++)
        if (e->tables.items[k] == n) { snprintf(name, sizeof name, KNAME "_t%d", k); return name; }
    snprintf(name, sizeof name, KNAME "_t%d", e->tables.n);
    ptrvec_push(&e->tables, (void *)n);
    fprintf(e->glob, "__device__ const int %s[%lld] = {", name, (long long)n->ndata);
    for (int64_t k = 0; k < n->ndata; k++) fprintf(e->glob, "%s%d", k % 32 ? ", " : (k ? ",\n    " : ""), n->idata[k]);
    fprintf(e->glob, "};\n");
    return name;
}

/* Movement: rewrite the index and read the input there. */
static const char *move(Em *e, const Node *n, const Ix *ix) {
    const Node *s = fus_src(e->f, n, 0);
    Ix six = {.n = s->shape.ndim};
    int ax = (int)n->i[0];
    char fv[IXLEN];
    switch ((int)n->op) {
    case OP_RESHAPE: em_flat(e, n->shape, ix, fv); six = em_unflat(e, s->shape, fv); break;
    case OP_EXTRACT: {
        em_flat(e, n->shape, ix, fv);
        char expr[IXLEN * 2];
        snprintf(expr, sizeof expr, "%s + %lldLL", fv, (long long)n->i[0]);
        snprintf(six.s[0], IXLEN, "x%d", e->nvar++);
        em_line(e, "const long long %s = %s;", six.s[0], expr);
        em_lane_set(e, six.s[0], lane_shift(e, fv, (long long)n->i[0]));
        break;
    }
    case OP_PERMUTE: for (int k = 0; k < n->shape.ndim; k++) memcpy(six.s[n->i[k]], ix->s[k], IXLEN); break;
    case OP_EXPAND: six = bcast_ix(ix, n->shape, s->shape); break;
    case OP_SLICE:
        six = *ix;
        snprintf(six.s[ax], IXLEN, "s%d", e->nvar++);
        em_line(e, "const long long %s = %s + %lldLL;", six.s[ax], ix->s[ax], (long long)n->i[1]);
        em_lane_set(e, six.s[ax], lane_shift(e, ix->s[ax], (long long)n->i[1]));
        break;
    case OP_GATHER: {
        const char *t = em_gather_table(e, n);
        six = *ix;
        snprintf(six.s[ax], IXLEN, "g%d", e->nvar++);
        em_line(e, "const long long %s = %s[%s];", six.s[ax], t, ix->s[ax]);
        em_lane_set(e, six.s[ax], lane_kind(e, ix->s[ax]) == LANE_INV ? LANE_INV : LANE_DEP);
        break;
    }
    case OP_GATHER_DYN: {
        Ix iix = {.n = 1};
        memcpy(iix.s[0], ix->s[ax], IXLEN);
        const char *q = em_val(e, fus_src(e->f, n, 1), &iix);
        six = *ix;
        snprintf(six.s[ax], IXLEN, "%s", q);
        break;
    }
    default: UNREACHABLE();
    }
    const char *r = em_val(e, s, &six);
    if (em_param_of(e, n, true) >= 0) maybe_store(e, n, ix, r);
    return r;
}

static const char *load(Em *e, const Node *n, const Ix *ix) {
    int p = em_param_of(e, n, false);
    ASSERT(p >= 0, "node %%%u (%s) is read by group %d but is not one of its inputs", n->id, op_name(n->op), e->gr->index);
    if (n == e->own) return newvar(e, n, ix, e->prefetch ? "0.f" : "own");   /* (the scan's value there: scan_epi.c) */
    char fo[IXLEN], expr[IXLEN + 16];
    em_flat(e, n->shape, ix, fo);
    if (e->prefetch) {   /* (the value itself is not needed: the code that would use it is dead) */
        em_line(e, "vmc_epi_prefetch(in%d + %s);", p, fo);
        return memo_put(e, n, ix, "0.f");
    }
    if (e->vec4 && !strcmp(fo, "e")) {
        e->vload[p] = true;
        snprintf(expr, sizeof expr, "L%d[k]", p);
    } else if (e->vec4 && !e->nonuniform && e->nlvec < MAX_LANE_VECS && n->shape.ndim > 0 &&
               n->shape.d[n->shape.ndim - 1] % 4 == 0 && lane_kind(e, fo) == LANE_AFF) {
        /* elements k = 0..3 at fo(0) + k: one 4-wide load at k = 0 (fo(0) % 4 == 0: aligned as the buffer) */
        const int j = e->nlvec++;
        const bool bf = em_in_bf16(e, n);
        char dst[16], at[IXLEN + 64];
        e->lvec_in[j] = p;
        snprintf(dst, sizeof dst, "LV%d", j);
        snprintf(at, sizeof at, "*reinterpret_cast<const %s*>(in%d + %s)", bf ? "uint2" : em_ctype(n)[0] == 'i' ? "int4" : "float4", p, fo);
        em_load4(e, "if (k == 0) ", dst, bf, em_ctype(n), at);
        snprintf(expr, sizeof expr, "LV%d[k]", j);
    } else snprintf(expr, sizeof expr, em_in_bf16(e, n) ? "vmc_from_bf16(in%d[%s])" : "in%d[%s]", p, fo);
    return newvar(e, n, ix, expr);
}

const char *em_val(Em *e, const Node *n, const Ix *ix) {
    if (n->op == OP_CONST) {
        char lit[48];
        if (n->dtype == DT_I32) snprintf(lit, sizeof lit, "%lld", (long long)n->f[0]);
        else flit(n->f[0], lit, sizeof lit);
        if (em_param_of(e, n, true) >= 0) return newvar(e, n, ix, lit);
        const char *m = memo_get(e, n, ix);
        return m ? m : memo_put(e, n, ix, lit);
    }
    const char *m = memo_get(e, n, ix);
    if (m) return m;
    if (!em_is_member(e, n)) return load(e, n, ix);
    if (n->op == OP_EXTRACT) {   /* a part nothing writes, summed into another's (conv_multi.c): zero */
        const Node *s = fus_src(e->f, n, 0);
        if (e->f->part_zero[s->id] && (e->f->part_zero[s->id] & packed_part(s, n->i[0], shape_numel(n->shape))))
            return memo_put(e, n, ix, "0.f");
    }
    char expr[600];
    switch (op_class(n->op)) {
    case K_UNARY: {
        const Node *x = fus_src(e->f, n, 0);
        Ix xi = bcast_ix(ix, n->shape, x->shape);
        unary_expr(n, x, em_val(e, x, &xi), expr, sizeof expr);
        return newvar(e, n, ix, expr);
    }
    case K_BINARY: {
        const Node *a = fus_src(e->f, n, 0), *b = fus_src(e->f, n, 1);
        Ix ai = bcast_ix(ix, n->shape, a->shape), bi = bcast_ix(ix, n->shape, b->shape);
        char va[48], vb[48];
        snprintf(va, sizeof va, "%s", em_val(e, a, &ai));
        snprintf(vb, sizeof vb, "%s", em_val(e, b, &bi));
        binary_expr(n, va, vb, expr, sizeof expr);
        return newvar(e, n, ix, expr);
    }
    case K_TERNARY: {
        char v[3][48];
        for (int k = 0; k < 3; k++) {
            const Node *s = fus_src(e->f, n, k);
            Ix si = bcast_ix(ix, n->shape, s->shape);
            snprintf(v[k], sizeof v[k], "%s", em_val(e, s, &si));
        }
        snprintf(expr, sizeof expr, "%s != 0 ? (%s)%s : (%s)%s", v[0], em_ctype(n), v[1], em_ctype(n), v[2]);
        return newvar(e, n, ix, expr);
    }
    case K_REDUCE:
        for (int k = 0; k < e->red_done; k++)
            if (e->reds[k] == n) { snprintf(expr, sizeof expr, "red%d", k); return newvar(e, n, ix, expr); }
        ASSERT(0, "reduction %%%u read before its phase in group %d", n->id, e->gr->index);
        break;
    case K_MOVE:
        if (n->op == OP_PAD || n->op == OP_CONCAT) return cond_move(e, n, ix);
        return move(e, n, ix);
    case K_RANDOM: {
        ASSERT(n->op == OP_DROP_MASK, "random op %s inside a fused group", op_name(n->op));
        char fo[IXLEN], p[48], keep[48];
        em_flat(e, n->shape, ix, fo);
        flit(n->f[0], p, sizeof p);
        flit(n->f[0] < 1 ? 1.0 / (1.0 - n->f[0]) : 0.0, keep, sizeof keep);
        snprintf(expr, sizeof expr, "vmc_keep(seed, %lluULL, step, (unsigned long long)%s, %s) ? %s : 0.0f",
                 (unsigned long long)n->i[1], fo, p, keep);
        return newvar(e, n, ix, expr);
    }
    case K_SOURCE: case K_GEMM: case K_OPAQUE: case K_SINK: break;
    }
    ASSERT(0, "%s cannot be computed inside a generated kernel", op_name(n->op));
    return NULL;
}

/* ---------------------------------------------------------------- kernels */
