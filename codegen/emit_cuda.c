/* emit_cuda.c — one fused group -> readable CUDA C. Values are computed by recursive index math from the group's
 * root: a member node is evaluated at an index vector (C expressions), movement ops only rewrite the index, and
 * each (node, index) is computed once per scope (CSE). Row kernels run one block per row: one phase per reduction
 * (block-wide sum/max into a register every thread holds), then the final phase writes the outputs.
 * This is the only file that prints generated kernel syntax (the opaque templates live in codegen/templates). */
#include "codegen.h"
#include "packed_copy.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { EW_THREADS = 256, MAX_REDS = 16, IXLEN = 64, COLUMN_BLOCKS = 1056 };
/* Blocks of a kernel that also accumulates column sums (Group.csums): 4 per SM on 132 SMs, each thread walking many
 * rows, so that the atomics that end it stay few (blocks x columns). An elementwise one (256 threads) then fills
 * half an SM's thread slots; VMC_CSUM_BLOCKS=N sets the count instead, for tuning. */
enum { CSUM_BLOCKS = 528 };
static long long csum_blocks(void) {
    int v;
    return codegen_knob_ints("VMC_CSUM_BLOCKS", &v, 1) && v >= 1 && v <= 65535 ? v : CSUM_BLOCKS;
}
/* Kernels are emitted with this placeholder for their name, so that identical kernels (every layer has the same
 * shapes) are recognised by their text and compiled once; it is replaced by the real name at the end. */
#define KNAME "KNAME_"

typedef struct Ix { int n; char s[MAX_DIMS][IXLEN]; } Ix;
typedef struct Memo { uint32_t id; char *key; char var[IXLEN]; int depth; } Memo;

enum { MAX_LANE_VARS = 512, MAX_LANE_VECS = 32 };

typedef struct Em {
    const Fusion *f;
    const Group *gr;
    FILE *o, *glob, *head;    /* kernel body; file-scope tables emitted before the kernel; header comment */
    int ind, depth, nvar;
    Memo *memo; int nmemo, capmemo;
    bool final;               /* outputs are stored in this phase */
    const char *jvar;         /* row kernels, final phase: the loop variable along the axis */
    Node *reds[MAX_REDS]; int nreds, red_done;
    bool *csum_early;         /* row kernels, by column sum: its terms read no row reduction (added in phase 0) */
    PtrVec tables;            /* nodes whose index table is already emitted */
    const Ix *root_ix;        /* GK_EW, GK_SCATTER: the coordinates of e (a full-shape access there reads [e]) */
    Shape alias_shape[4];     /* other shapes' coordinates of element e (a reshape of the domain: unflat of "e") */
    Ix alias_ix[4];
    int nalias;
    const char *vbase;        /* vec4 lanes: the variable holding the flat index of element k = 0 (e = vbase + k) */
    char vbase_name[IXLEN];   /* (its storage: the caller's string may not outlive lanes_open) */
    bool vec4;                /* GK_EW: 4 consecutive elements per thread; accesses at e use 16-byte loads/stores */
    bool *vload, *vstore;     /* vec4: by input / output, read or written at e (as L<p>[k] / S<p>[k]) */
    /* vec4 lanes: how each index variable varies over the 4 elements (lane_kind), and the 4-wide loads of inputs at
     * other lane-affine indices (a row gather, a pad or slice by multiples of 4), read at k = 0 into LV<j>[4] */
    int lanes_nvar;           /* variables numbered below this were defined before the lanes opened */
    struct { char name[IXLEN]; signed char kind; } lv[MAX_LANE_VARS];
    int nlv;
    int lvec_in[MAX_LANE_VECS], nlvec;   /* by LV array: the input it reads */
    int nonuniform;           /* inside a PAD/CONCAT branch whose condition differs between the 4 elements */
    int instances;            /* > 1: the kernel is a device function called per instance (codegen_group_batched) */
    unsigned threads;         /* the block size params() declared */
} Em;

/* How an index varies over the vec4 lanes: the same for all 4, lane base + k (base a multiple of 4), or neither. */
enum { LANE_DEP, LANE_INV, LANE_AFF };

/* ---------------------------------------------------------------- small helpers */
static const char *ctype(const Node *n) { return n->dtype == DT_I32 ? "int" : "float"; }

static void line(Em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Em *e, const char *fmt, ...) {
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

static void lane_set(Em *e, const char *name, int kind) {
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
static void load4(Em *e, const char *prefix, const char *dst, bool bf16, const char *t, const char *at) {
    if (bf16)
        line(e, "%s{ const uint2 t = %s; %s[0] = __uint_as_float(t.x << 16); %s[1] = __uint_as_float(t.x & 0xffff0000u); "
                "%s[2] = __uint_as_float(t.y << 16); %s[3] = __uint_as_float(t.y & 0xffff0000u); }",
             prefix, at, dst, dst, dst, dst);
    else line(e, "%s{ const %s4 t = %s; %s[0] = t.x; %s[1] = t.y; %s[2] = t.z; %s[3] = t.w; }", prefix, t, at, dst, dst, dst, dst);
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

static int param_of(const Em *e, const Node *n, bool out) {
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
static bool in_bf16(const Em *e, const Node *x) { return fus_bf16(e->f, x) || codegen_reads_copy(e->f, e->gr, x); }

/* Computed here (not loaded): the group's own members, and recomputed values (never stored anywhere). */
static bool is_member(const Em *e, const Node *n) { return e->f->dup[n->id] || e->f->group_of[n->id] == e->gr->index; }

static const char *index_get(Em *e, const char *expr);
static void index_put(Em *e, const char *expr, const char *var);

static bool same_ix(const Ix *a, const Ix *b, int ndim) {
    for (int k = 0; k < ndim; k++) if (strcmp(a->s[k], b->s[k])) return false;
    return true;
}

/* Flat row-major offset of ix in shape s, as a new local variable (or a literal when trivial; "e" for element e,
 * also through a reshape of the domain). */
static void flat(Em *e, Shape s, const Ix *ix, char *out) {
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
    line(e, "const long long %s = %s;", out, expr);
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
        lane_set(e, out, kind);
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
static Ix unflat(Em *e, Shape s, const char *fvar) {
    Ix r = {.n = s.ndim};
    if (e->vbase && !strcmp(fvar, "e") && s.ndim > 0 && s.d[s.ndim - 1] % 4 == 0) {
        r = unflat(e, s, e->vbase);
        char ck[IXLEN];
        snprintf(ck, sizeof ck, "c%d", e->nvar++);
        line(e, "const long long %s = %s + k;", ck, r.s[s.ndim - 1]);
        lane_set(e, ck, LANE_AFF);
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
                line(e, "const long long %s = %s;", r.s[k], expr);
                lane_set(e, r.s[k], fk == LANE_INV ? LANE_INV
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

static void scope_pop(Em *e) {
    while (e->nmemo && e->memo[e->nmemo - 1].depth >= e->depth) free(e->memo[--e->nmemo].key);
    e->depth--; e->ind--;
}

/* ---------------------------------------------------------------- expressions */
static const char *val(Em *e, const Node *n, const Ix *ix);

static void unary_expr(const Node *n, const Node *x, const char *a, char *out, size_t len) {
    switch ((int)n->op) {      /* one op class; the full per-op switch is val() over classes */
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
    int p = param_of(e, n, true);
    if (p < 0 || !e->final) return;
    char fo[IXLEN];
    flat(e, n->shape, ix, fo);
    bool f32 = !e->f->shadow_only[n->id], bf = e->f->shadow[n->id];   /* bf: the bf16 copy a GEMM reads */
    if (e->vec4 && !strcmp(fo, "e")) {
        e->vstore[p] = true;
        if (f32) line(e, "S%d[k] = %s;", p, v);
        if (bf) line(e, "SB%d[k] = (unsigned short)(__float_as_uint(vmc_bf16(%s)) >> 16);", p, v);
        return;
    }
    /* a per-row value inside the loop over the row: stored once, by the row's first element (its first lane's
     * first of 4 when the lanes are open) */
    char guard[64] = "";
    if (e->jvar && e->gr->kind == GK_ROW && n->shape.d[e->gr->axis] == 1 && e->gr->dom.d[e->gr->axis] != 1)
        snprintf(guard, sizeof guard, e->vec4 ? "if (%s == 0 && k == 0) " : "if (%s == 0) ", e->jvar);
    if (f32) line(e, "%sout%d[%s] = %s;", guard, p, fo, v);
    if (bf) line(e, "%soutb%d[%s] = (unsigned short)(__float_as_uint(vmc_bf16(%s)) >> 16);", guard, p, fo, v);
}

static const char *newvar(Em *e, const Node *n, const Ix *ix, const char *expr) {
    char v[24];
    snprintf(v, sizeof v, "v%d", e->nvar++);
    line(e, "const %s %s = %s;   // %s", ctype(n), v, expr, op_name(n->op));
    maybe_store(e, n, ix, v);
    return memo_put(e, n, ix, v);
}

/* PAD and CONCAT: only the branch whose index is in range may read its input. */
static const char *cond_move(Em *e, const Node *n, const Ix *ix) {
    int ax = (int)n->i[0];
    char v[24];
    snprintf(v, sizeof v, "v%d", e->nvar++);
    line(e, "%s %s = 0;   // %s", ctype(n), v, op_name(n->op));
    int64_t at = n->op == OP_PAD ? n->i[1] : 0;
    const int axk = lane_kind(e, ix->s[ax]);
    for (int k = 0; k < n->nsrc; k++) {
        const Node *s = fus_src(e->f, n, k);
        int64_t len = s->shape.d[ax];
        Ix six = *ix;
        snprintf(six.s[ax], IXLEN, "q%d", e->nvar++);
        line(e, "%sif (%s >= %lld && %s < %lld) {", k ? "else " : "", ix->s[ax], (long long)at, ix->s[ax], (long long)(at + len));
        e->ind++; e->depth++;
        line(e, "const long long %s = %s - %lldLL;", six.s[ax], ix->s[ax], (long long)at);
        /* the 4 elements take the same branch when the coordinate is invariant or the bounds are multiples of 4 */
        const bool uniform = axk == LANE_INV || (axk == LANE_AFF && at % 4 == 0 && len % 4 == 0);
        lane_set(e, six.s[ax], uniform ? axk : LANE_DEP);
        e->nonuniform += !uniform;
        const char *a = val(e, s, &six);
        e->nonuniform -= !uniform;
        line(e, "%s = %s;", v, a);
        scope_pop(e);
        line(e, "}");
        at += len;
    }
    maybe_store(e, n, ix, v);
    return memo_put(e, n, ix, v);
}

static const char *gather_table(Em *e, const Node *n) {
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
    case OP_RESHAPE: flat(e, n->shape, ix, fv); six = unflat(e, s->shape, fv); break;
    case OP_EXTRACT: {
        flat(e, n->shape, ix, fv);
        char expr[IXLEN * 2];
        snprintf(expr, sizeof expr, "%s + %lldLL", fv, (long long)n->i[0]);
        snprintf(six.s[0], IXLEN, "x%d", e->nvar++);
        line(e, "const long long %s = %s;", six.s[0], expr);
        lane_set(e, six.s[0], lane_shift(e, fv, (long long)n->i[0]));
        break;
    }
    case OP_PERMUTE: for (int k = 0; k < n->shape.ndim; k++) memcpy(six.s[n->i[k]], ix->s[k], IXLEN); break;
    case OP_EXPAND: six = bcast_ix(ix, n->shape, s->shape); break;
    case OP_SLICE:
        six = *ix;
        snprintf(six.s[ax], IXLEN, "s%d", e->nvar++);
        line(e, "const long long %s = %s + %lldLL;", six.s[ax], ix->s[ax], (long long)n->i[1]);
        lane_set(e, six.s[ax], lane_shift(e, ix->s[ax], (long long)n->i[1]));
        break;
    case OP_GATHER: {
        const char *t = gather_table(e, n);
        six = *ix;
        snprintf(six.s[ax], IXLEN, "g%d", e->nvar++);
        line(e, "const long long %s = %s[%s];", six.s[ax], t, ix->s[ax]);
        lane_set(e, six.s[ax], lane_kind(e, ix->s[ax]) == LANE_INV ? LANE_INV : LANE_DEP);
        break;
    }
    case OP_GATHER_DYN: {
        Ix iix = {.n = 1};
        memcpy(iix.s[0], ix->s[ax], IXLEN);
        const char *q = val(e, fus_src(e->f, n, 1), &iix);
        six = *ix;
        snprintf(six.s[ax], IXLEN, "%s", q);
        break;
    }
    default: UNREACHABLE();
    }
    const char *r = val(e, s, &six);
    if (param_of(e, n, true) >= 0) maybe_store(e, n, ix, r);
    return r;
}

static const char *load(Em *e, const Node *n, const Ix *ix) {
    int p = param_of(e, n, false);
    ASSERT(p >= 0, "node %%%u (%s) is read by group %d but is not one of its inputs", n->id, op_name(n->op), e->gr->index);
    char fo[IXLEN], expr[IXLEN + 16];
    flat(e, n->shape, ix, fo);
    if (e->vec4 && !strcmp(fo, "e")) {
        e->vload[p] = true;
        snprintf(expr, sizeof expr, "L%d[k]", p);
    } else if (e->vec4 && !e->nonuniform && e->nlvec < MAX_LANE_VECS && n->shape.ndim > 0 &&
               n->shape.d[n->shape.ndim - 1] % 4 == 0 && lane_kind(e, fo) == LANE_AFF) {
        /* elements k = 0..3 at fo(0) + k: one 4-wide load at k = 0 (fo(0) % 4 == 0: aligned as the buffer) */
        const int j = e->nlvec++;
        const bool bf = in_bf16(e, n);
        char dst[16], at[IXLEN + 64];
        e->lvec_in[j] = p;
        snprintf(dst, sizeof dst, "LV%d", j);
        snprintf(at, sizeof at, "*reinterpret_cast<const %s*>(in%d + %s)", bf ? "uint2" : ctype(n)[0] == 'i' ? "int4" : "float4", p, fo);
        load4(e, "if (k == 0) ", dst, bf, ctype(n), at);
        snprintf(expr, sizeof expr, "LV%d[k]", j);
    } else snprintf(expr, sizeof expr, in_bf16(e, n) ? "vmc_from_bf16(in%d[%s])" : "in%d[%s]", p, fo);
    return newvar(e, n, ix, expr);
}

static const char *val(Em *e, const Node *n, const Ix *ix) {
    if (n->op == OP_CONST) {
        char lit[48];
        if (n->dtype == DT_I32) snprintf(lit, sizeof lit, "%lld", (long long)n->f[0]);
        else flit(n->f[0], lit, sizeof lit);
        if (param_of(e, n, true) >= 0) return newvar(e, n, ix, lit);
        const char *m = memo_get(e, n, ix);
        return m ? m : memo_put(e, n, ix, lit);
    }
    const char *m = memo_get(e, n, ix);
    if (m) return m;
    if (!is_member(e, n)) return load(e, n, ix);
    char expr[600];
    switch (op_class(n->op)) {
    case K_UNARY: {
        const Node *x = fus_src(e->f, n, 0);
        Ix xi = bcast_ix(ix, n->shape, x->shape);
        unary_expr(n, x, val(e, x, &xi), expr, sizeof expr);
        return newvar(e, n, ix, expr);
    }
    case K_BINARY: {
        const Node *a = fus_src(e->f, n, 0), *b = fus_src(e->f, n, 1);
        Ix ai = bcast_ix(ix, n->shape, a->shape), bi = bcast_ix(ix, n->shape, b->shape);
        char va[48], vb[48];
        snprintf(va, sizeof va, "%s", val(e, a, &ai));
        snprintf(vb, sizeof vb, "%s", val(e, b, &bi));
        binary_expr(n, va, vb, expr, sizeof expr);
        return newvar(e, n, ix, expr);
    }
    case K_TERNARY: {
        char v[3][48];
        for (int k = 0; k < 3; k++) {
            const Node *s = fus_src(e->f, n, k);
            Ix si = bcast_ix(ix, n->shape, s->shape);
            snprintf(v[k], sizeof v[k], "%s", val(e, s, &si));
        }
        snprintf(expr, sizeof expr, "%s != 0 ? (%s)%s : (%s)%s", v[0], ctype(n), v[1], ctype(n), v[2]);
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
        flat(e, n->shape, ix, fo);
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
static void kernel_name(const Group *gr, char *out, size_t len) {
    int w = snprintf(out, len, "k%d", gr->index), nops = 0;
    const char *seen[4];
    for (int k = 0; k < gr->nmembers && nops < 4; k++) {
        const char *op = op_name(gr->members[k]->op);
        bool dup = false;
        for (int j = 0; j < nops; j++) dup |= !strcmp(seen[j], op);
        if (dup) continue;
        seen[nops++] = op;
        w += snprintf(out + w, len - (size_t)w, "_%s", op);
    }
}

static void header(Em *e, const char *name, const char *what) {
    const Group *gr = e->gr;
    char s[96];
    fprintf(e->head, "/* %s: %s\n", name, what);
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *n = gr->members[k];
        fprintf(e->head, " *   %%%u %s %s%s", n->id, op_name(n->op), shape_str(n->shape, s, sizeof s),
                param_of(e, n, true) >= 0 ? " (written)" : "");
        if (n->loc.file) {
            int l, c;
            source_linecol(n->loc.file, n->loc.start, &l, &c);
            fprintf(e->head, "  %s:%d:%d", n->loc.file->path, l, c);
        }
        fprintf(e->head, "\n");
    }
    fprintf(e->head, " */\n");
}

/* One pointer parameter: declared ("TYPE* __restrict__ NAME") or, for a batched instance, cast from q[*n]. */
static void param(FILE *o, bool cast, int *n, const char *type, const char *name) {
    const char *sep = *n ? ", " : "";
    if (cast) fprintf(o, "%s(%s*)q[%d]", sep, type, *n);
    else fprintf(o, "%s%s* __restrict__ %s", sep, type, name);
    (*n)++;
}

/* The kernel's pointer parameters in order: as declarations ("const float* __restrict__ in0, ...") or, for a
 * batched instance, as casts of the instance's values q[i]. Returns how many. */
static int param_list(Em *e, FILE *o, bool casts) {
    const Group *gr = e->gr;
    int n = 0;
    char name[16], type[32];
    for (int k = 0; k < gr->nins; k++) {   /* bf16-stored inputs (GEMM outputs) are read as raw 16-bit words */
        snprintf(name, sizeof name, "in%d", k);
        snprintf(type, sizeof type, "const %s", in_bf16(e, gr->ins[k]) ? "unsigned short" : ctype(gr->ins[k]));
        param(o, casts, &n, type, name);
    }
    for (int k = 0; k < gr->nouts; k++) {
        snprintf(name, sizeof name, "out%d", k);
        param(o, casts, &n, ctype(gr->outs[k]), name);
    }
    for (int k = 0; k < gr->nouts; k++) {
        if (!e->f->shadow[gr->outs[k]->id]) continue;
        snprintf(name, sizeof name, "outb%d", k);
        param(o, casts, &n, "unsigned short", name);
    }
    param(o, casts, &n, "const unsigned long long", "vmc_rng");
    return n;
}

static void params(Em *e, const char *name, unsigned threads) {
    e->threads = threads;
    if (e->instances > 1) fprintf(e->o, "static __device__ __forceinline__ void %s_one(", name);
    else fprintf(e->o, "extern \"C\" __global__ void __launch_bounds__(%u) %s(", threads, name);
    param_list(e, e->o, false);
    fprintf(e->o, ") {\n");
    e->ind = 1;
    line(e, "vmc_grid_entry();");
    /* (seed, step) live in device memory so that a captured CUDA graph sees each step's values */
    line(e, "const unsigned long long seed = vmc_rng[0], step = vmc_rng[1];");
    line(e, "(void)seed; (void)step;");
}

/* A batched kernel's entry point: instance blockIdx.y's pointers, by value in one struct, passed to NAME_one. */
static void batched_entry(Em *e, const char *name) {
    char *casts = NULL;
    size_t n = 0;
    FILE *c = open_memstream(&casts, &n);
    ASSERT(c, "open_memstream");
    const int np = param_list(e, c, true);
    fclose(c);
    fprintf(e->o, "struct VmcArgs_%s { unsigned long long p[%d][%d]; };\n", name, e->instances, np);
    fprintf(e->o, "extern \"C\" __global__ void __launch_bounds__(%u) %s_x(const __grid_constant__ VmcArgs_%s a) {\n",
            e->threads, name, name);
    fprintf(e->o, "    const unsigned long long *q = a.p[blockIdx.y];\n    %s_one(%s);\n}\n", name, casts);
    free(casts);
}

static unsigned grid_for(int64_t numel, unsigned threads) {
    int64_t b = (numel + threads - 1) / threads;
    return (unsigned)(b > (1 << 20) ? (1 << 20) : b < 1 ? 1 : b);
}


/* Inputs all 16-byte aligned (arena offsets are 256-aligned; views may not be), as 4-wide loads need. */
static bool ins_aligned(const Fusion *f, const Group *gr) {
    for (int k = 0; k < gr->nins; k++) if (f->buf[gr->ins[k]->id].offset % 16) return false;
    return true;
}

/* Inputs and outputs aligned for 4-wide loads and stores (bf16 copies: 8 bytes). */
static bool bufs_aligned(const Fusion *f, const Group *gr) {
    for (int k = 0; k < gr->nouts; k++) {
        const Node *o = gr->outs[k];
        if (f->buf[o->id].offset % 16 || (f->shadow[o->id] && f->sbuf[o->id].offset % 8)) return false;
    }
    return ins_aligned(f, gr);
}

/* 4 elements per thread pay when the innermost extent keeps them in one row (every coordinate but the last is
 * shared) and every buffer is 16-byte aligned. */
static bool vec4_ok(const Fusion *f, const Group *gr) {
    if (gr->kind != GK_EW || gr->root->op == OP_CONST || gr->dom.ndim == 0 || gr->dom.d[gr->dom.ndim - 1] % 4)
        return false;
    return bufs_aligned(f, gr);
}

/* The vec4 loop body: 16-byte loads of the inputs read at e into L<p>[4], the elements k = 0..3 computed by an
 * unrolled loop (register arrays: constant indices after unrolling), 16-byte (8 for bf16) stores of S<p>/SB<p>. */
static void emit_vec4_body(Em *e, const char *lanes) {
    const Group *gr = e->gr;
    for (int p = 0; p < gr->nins; p++) {
        if (!e->vload[p]) continue;
        const char *t = ctype(gr->ins[p]);
        const bool bf = in_bf16(e, gr->ins[p]);
        char dst[16], at[64];
        line(e, "%s L%d[4];", t, p);
        snprintf(dst, sizeof dst, "L%d", p);
        snprintf(at, sizeof at, "reinterpret_cast<const %s%s*>(in%d)[e4]", bf ? "uint2" : t, bf ? "" : "4", p);
        load4(e, "", dst, bf, t, at);
    }
    for (int j = 0; j < e->nlvec; j++) line(e, "%s LV%d[4];", ctype(gr->ins[e->lvec_in[j]]), j);
    for (int p = 0; p < gr->nouts; p++) {
        if (!e->vstore[p]) continue;
        if (!e->f->shadow_only[gr->outs[p]->id]) line(e, "%s S%d[4];", ctype(gr->outs[p]), p);
        if (e->f->shadow[gr->outs[p]->id]) line(e, "unsigned short SB%d[4];", p);
    }
    line(e, "#pragma unroll");
    line(e, "for (int k = 0; k < 4; k++) {");
    fputs(lanes, e->o);
    line(e, "}");
    for (int p = 0; p < gr->nouts; p++) {
        if (!e->vstore[p]) continue;
        const char *t = ctype(gr->outs[p]);
        if (!e->f->shadow_only[gr->outs[p]->id])
            line(e, "reinterpret_cast<%s4*>(out%d)[e4] = %s4{S%d[0], S%d[1], S%d[2], S%d[3]};", t, p, t, p, p, p, p);
        if (e->f->shadow[gr->outs[p]->id])
            line(e, "reinterpret_cast<uint2*>(outb%d)[e4] = uint2{SB%d[0] | (unsigned)SB%d[1] << 16, "
                    "SB%d[2] | (unsigned)SB%d[3] << 16};", p, p, p, p, p);
    }
}

/* The vec4 lanes: the code for element e = eb + k (k = 0..3) goes to a side buffer, since which inputs it loads
 * and which outputs it stores at e are known only afterwards; ix (the coordinates of eb) gets its innermost
 * coordinate plus k and is the index of element e while the lanes are open. lanes_close prints the 4-wide loads,
 * the unrolled loop over k with the buffered code, and the 4-wide stores (emit_vec4_body). */
typedef struct Lanes { FILE *outer; char *text; size_t len; } Lanes;

static void lanes_open(Em *e, Lanes *l, const char *eb, Ix *ix) {
    const Group *gr = e->gr;
    e->vec4 = true;
    e->vload = xcalloc((size_t)gr->nins + 1, sizeof(bool));
    e->vstore = xcalloc((size_t)gr->nouts + 1, sizeof(bool));
    *l = (Lanes){e->o, NULL, 0};
    e->o = open_memstream(&l->text, &l->len);
    ASSERT(e->o, "open_memstream");
    e->ind++; e->depth++;
    e->lanes_nvar = e->nvar;
    e->nlv = e->nlvec = e->nonuniform = 0;
    line(e, "const long long e = %s + k;", eb);
    snprintf(e->vbase_name, IXLEN, "%s", eb);
    e->vbase = e->vbase_name;
    const int in = gr->dom.ndim - 1;
    char ck[IXLEN];
    snprintf(ck, sizeof ck, "c%d", e->nvar++);
    line(e, "const long long %s = %s + k;", ck, ix->s[in]);
    lane_set(e, ck, LANE_AFF);
    memcpy(ix->s[in], ck, IXLEN);
    e->root_ix = ix;
}

static void lanes_close(Em *e, Lanes *l) {
    e->vec4 = false;   /* the lanes are closed: accesses at e are scalar again */
    e->root_ix = NULL;
    e->vbase = NULL;
    scope_pop(e);
    fclose(e->o);
    e->o = l->outer;
    emit_vec4_body(e, l->text);
    free(l->text); free(e->vload); free(e->vstore);
    e->vload = e->vstore = NULL;
}

/* A 4-wide kernel reading few bytes an element (every full-size input together at most 8: one or two bf16 streams,
 * as GELU and SwiGLU read) has too few loads in flight for the memory's latency with 4 elements a thread; such a
 * thread takes two groups of 4, half the grid apart (the loop unrolled). */
static int ew_groups_per_thread(const Fusion *f, const Group *gr, bool vec4) {
    if (!vec4 || shape_numel(gr->dom) < (1 << 20)) return 1;
    int bytes = 0;
    for (int k = 0; k < gr->nins; k++)
        if (shape_numel(gr->ins[k]->shape) == shape_numel(gr->dom)) bytes += fus_bf16(f, gr->ins[k]) ? 2 : 4;
    return bytes <= 8 ? 2 : 1;
}

/* Column sum s's term at element ix of the domain, added to its accumulator acc (an lvalue), or assigned to it. */
static void csum_add(Em *e, int s, const Ix *ix, const char *acc, bool assign) {
    const Node *x = group_csum_source(e->f, e->gr, e->gr->csums[s]);
    ASSERT(x, "column sum %d of group %d has no source over the domain", s, e->gr->index);
    line(e, "%s %s= %s;", acc, assign ? "" : "+", val(e, x, ix));
}

/* An elementwise kernel with column sums (pass_merge_column_sums): a block is 64 column groups of 4 columns by 4
 * rows at a time; each thread keeps its 4 columns, walks rows (the element loop's rows, 4 x the blocks sharing its
 * columns apart) and adds its elements into cs<s>[4]; the block's 4 row lanes are summed in shared memory and
 * added to the zeroed outputs, one atomicAdd per column and block. */
static void emit_ew_csums(Em *e, const char *name, KernelSource *ks) {
    const Group *gr = e->gr;
    const long long C = group_csum_cols(gr), R = shape_numel(gr->dom) / C, Q = C / 4, QB = Q / 64;
    long long rsplit = csum_blocks() / QB < 1 ? 1 : csum_blocks() / QB;
    if (rsplit > (R + 3) / 4) rsplit = (R + 3) / 4;
    e->vec4 = bufs_aligned(e->f, gr);
    char what[200], s[96];
    snprintf(what, sizeof what, "elementwise over %s (%lld elements) with %d column sums over %lld rows, "
             "%lld blocks of 64 x 4 columns and 4 rows", shape_str(gr->dom, s, sizeof s), R * Q * 4, gr->ncsums, R,
             QB * rsplit);
    header(e, name, what);
    params(e, KNAME, EW_THREADS);
    line(e, "const int tq = threadIdx.x & 63, tr = threadIdx.x >> 6;");
    line(e, "const long long q = (long long)(blockIdx.x %% %lld) * 64 + tq;   // columns 4q .. 4q+3", QB);
    for (int c = 0; c < gr->ncsums; c++) line(e, "float cs%d[4] = {0.f, 0.f, 0.f, 0.f};", c);
    line(e, "#pragma unroll 2   // two rows' loads in flight");
    line(e, "for (long long r = (long long)(blockIdx.x / %lld) * 4 + tr; r < %lldLL; r += %lldLL) {", QB, R, rsplit * 4);
    e->ind++; e->depth++;
    e->final = true;
    Lanes lanes;
    Ix ix;
    if (e->vec4) {
        line(e, "const long long e4 = r * %lldLL + q;", Q);
        line(e, "const long long eb = e4 * 4;");
        ix = unflat(e, gr->dom, "eb");
        lanes_open(e, &lanes, "eb", &ix);
    } else {
        line(e, "#pragma unroll");
        line(e, "for (int k = 0; k < 4; k++) {");
        e->ind++; e->depth++;
        line(e, "const long long e = (r * %lldLL + q) * 4 + k;", Q);
        ix = unflat(e, gr->dom, "e");
        e->root_ix = &ix;
    }
    val(e, gr->root, &ix);
    for (int k = 0; k < gr->nouts; k++) if (!group_is_csum(gr, gr->outs[k])) val(e, gr->outs[k], &ix);
    for (int c = 0; c < gr->ncsums; c++) {
        char acc[16];
        snprintf(acc, sizeof acc, "cs%d[k]", c);
        csum_add(e, c, &ix, acc, false);
    }
    if (e->vec4) lanes_close(e, &lanes);
    else {
        scope_pop(e);
        line(e, "}");
    }
    e->root_ix = NULL;
    scope_pop(e);
    line(e, "}");
    line(e, "__shared__ float vmc_cs[4][257];");
    for (int c = 0; c < gr->ncsums; c++) {
        line(e, "for (int k = 0; k < 4; k++) vmc_cs[tr][tq * 4 + k] = cs%d[k];", c);
        line(e, "__syncthreads();");
        line(e, "if (tr == 0)");
        line(e, "    for (int k = 0; k < 4; k++)");
        line(e, "        atomicAdd(&out%d[q * 4 + k], vmc_cs[0][tq * 4 + k] + vmc_cs[1][tq * 4 + k] + vmc_cs[2][tq * 4 + k] + "
                "vmc_cs[3][tq * 4 + k]);", param_of(e, gr->csums[c], true));
        line(e, "__syncthreads();");
    }
    fprintf(e->o, "}\n");
    ks->block = EW_THREADS;
    ks->grid = (unsigned)(QB * rsplit);
}

static void emit_ew(Em *e, const char *name, KernelSource *ks) {
    const Group *gr = e->gr;
    if (gr->ncsums) {
        emit_ew_csums(e, name, ks);
        return;
    }
    int64_t numel = shape_numel(gr->dom);
    e->vec4 = vec4_ok(e->f, gr);
    const int per = ew_groups_per_thread(e->f, gr, e->vec4);
    char what[160], s[96];
    snprintf(what, sizeof what, "%s over %s (%lld elements%s)", gr->kind == GK_SCATTER ? "scatter-add" : "elementwise",
             shape_str(gr->dom, s, sizeof s), (long long)numel, e->vec4 ? per > 1 ? ", 8 per thread" : ", 4 per thread" : "");
    header(e, name, what);
    params(e, KNAME, EW_THREADS);
    int64_t iters = e->vec4 ? numel / 4 : numel;
    if (per > 1) line(e, "#pragma unroll %d", per);
    line(e, "for (long long %s = (long long)blockIdx.x * %d + threadIdx.x; %s < %lldLL; %s += (long long)gridDim.x * %d) {",
         e->vec4 ? "e4" : "e", EW_THREADS, e->vec4 ? "e4" : "e", (long long)iters, e->vec4 ? "e4" : "e", EW_THREADS);
    e->ind++; e->depth++;
    e->final = true;
    Lanes lanes;
    Ix ix;
    if (e->vec4) {
        /* the coordinates of e4 * 4, once per thread: the 4 elements share all but the innermost (extent % 4 == 0) */
        line(e, "const long long eb = e4 * 4;");
        ix = unflat(e, gr->dom, "eb");
        lanes_open(e, &lanes, "eb", &ix);
    } else {
        ix = unflat(e, gr->dom, "e");
        e->root_ix = &ix;
    }
    const Node *root = gr->root;
    if (gr->kind == GK_SCATTER) {
        const char *v = val(e, fus_src(e->f, root, 0), &ix);
        int ax = (int)root->i[0];
        Ix oix = ix;
        if (root->op == OP_SCATTER_ADD) {
            snprintf(oix.s[ax], IXLEN, "g%d", e->nvar++);
            line(e, "const long long %s = %s[%s];", oix.s[ax], gather_table(e, root), ix.s[ax]);
        } else {
            Ix iix = {.n = 1};
            memcpy(iix.s[0], ix.s[ax], IXLEN);
            snprintf(oix.s[ax], IXLEN, "%s", val(e, fus_src(e->f, root, 1), &iix));
        }
        char fo[IXLEN];
        flat(e, root->shape, &oix, fo);
        line(e, "atomicAdd(&out0[%s], %s);", fo, v);
    } else {
        const char *v = val(e, root, &ix);
        if (root->op == OP_CONST) line(e, "out0[e] = %s;", v);
        /* a merged sibling's outputs (pass_merge.c) are not reached from the root (val is memoised: the others
         * cost nothing more) */
        for (int k = 0; k < gr->nouts; k++) val(e, gr->outs[k], &ix);
    }
    if (e->vec4) lanes_close(e, &lanes);
    e->root_ix = NULL;
    e->ind--;
    line(e, "}");
    fprintf(e->o, "}\n");
    ks->block = EW_THREADS;
    ks->grid = grid_for((iters + per - 1) / per, EW_THREADS);
}

/* How a row group maps onto threads. */
typedef enum RowMode {
    RM_BLOCK,      /* a block per row, block-wide reductions */
    RM_WARP,       /* a warp per row (rows of at most 2048) */
    RM_SPLIT,      /* few long rows: several blocks per row, atomicAdd into the zeroed output */
    RM_COLUMN,     /* outer-axis reductions: 32 rows per block, 8 threads per row (optionally split, csplit) */
} RowMode;

typedef struct RowPlan {
    RowMode mode;
    bool vec4;               /* RM_COLUMN: each lane sums 4 adjacent columns (column_vec4) */
    bool wvec4;              /* RM_WARP: each lane takes 4 adjacent elements of the row at a time (row_vec4) */
    bool sums_only;          /* every reduction a sum that is an output and read by no member (group_sums_only) */
    int64_t len, rows, nsplit, csplit, cblocks;
    unsigned threads;
    char jloop[160];         /* the loop over the reduced axis, with its opening brace */
    const char *guard;       /* the condition of per-row stores */
} RowPlan;

/* A column sum (the group's one reduction and only output) of bf16 values over at least 768 columns whose
 * innermost extent is a multiple of 4: each lane sums 4 adjacent columns, reading them with one 8-byte load instead
 * of four 2-byte ones (a warp's load is then 256 bytes, not 64). Measured per kernel on an H200 (ARM-B steps): the
 * bias gradients' sums 10-22% faster (2,048 columns: 0.882 -> 0.733 ms per step); not with 512 columns (4 blocks of
 * 128 columns: too few blocks) nor with f32 inputs (a scalar warp load is a whole 128-byte line already), which
 * measured 5-40% slower and stay scalar. */
static bool column_vec4(const Fusion *f, const Group *gr, bool lone_sum, int64_t rows) {
    const int inner = gr->dom.ndim - 1;
    if (!lone_sum || inner == gr->axis || gr->dom.d[inner] % 4 || rows < 768 || !ins_aligned(f, gr)) return false;
    for (int k = 0; k < gr->nins; k++)
        if (!fus_bf16(f, gr->ins[k]) && !codegen_reads_copy(f, gr, gr->ins[k])) return false;
    return true;
}

/* A warp per row whose length is a multiple of 128 and whose buffers keep 16-byte alignment: each lane takes 4
 * adjacent elements per step, read and written 4-wide as in the elementwise kernels (a LayerNorm row of 768 f32
 * values is 6 loads of 16 bytes per lane, not 24 of 4). Row kernels' time per ARM-B step (H200, eager, one run
 * against the build before): pretraining 9.04 -> 8.81 ms, fine-tuning 9.32 -> 9.07, inference 3.37 -> 3.05. */
static bool row_vec4(const Fusion *f, const Group *gr, const RowPlan *rp) {
    return rp->mode == RM_WARP && gr->axis == gr->dom.ndim - 1 && rp->len % 128 == 0 && bufs_aligned(f, gr);
}

static RowPlan plan_row(const Fusion *f, const Group *gr) {
    RowPlan rp = {.mode = RM_BLOCK, .nsplit = 1, .csplit = 1};
    rp.len = gr->dom.d[gr->axis];
    rp.rows = shape_numel(gr->dom) / rp.len;
    rp.cblocks = (rp.rows + 31) / 32;
    rp.threads = 32;
    while ((int64_t)rp.threads < rp.len && rp.threads < (rp.len > 4096 ? 1024u : 256u)) rp.threads *= 2;
    rp.sums_only = group_sums_only(f, gr);
    const bool lone_sum = rp.sums_only && gr->nouts == 1;
    if (group_columns(gr)) {   /* a block covers 32 adjacent rows, 8 threads per row split the reduced axis */
        rp.mode = RM_COLUMN;
        rp.threads = 256;
        rp.vec4 = column_vec4(f, gr, lone_sum, rp.rows);
        if (rp.vec4) rp.cblocks = (rp.rows + 127) / 128;
        /* column sums over a long axis (bias and norm-weight gradients): the axis is split over blocks too, up to
         * COLUMN_BLOCKS in all (8 blocks of 256 per SM on 132 SMs: a memory-bound sum needs loads in flight; 2
         * blocks per SM measured 1.2-2.3 TB/s on an H200) */
        if (rp.sums_only && rp.len >= 512 && rp.cblocks < COLUMN_BLOCKS) {
            rp.csplit = COLUMN_BLOCKS / rp.cblocks;
            if (rp.csplit > rp.len / 256) rp.csplit = rp.len / 256;   /* at least 32 rows per thread */
            if (rp.csplit < 2) rp.csplit = 1;
        }
        return rp;
    }
    /* few long rows summed (losses, the gradient norm) */
    if (rp.rows < 128 && rp.len >= 65536 && lone_sum) {
        rp.nsplit = 512 / rp.rows;
        if (rp.nsplit > rp.len / (rp.threads * 8)) rp.nsplit = rp.len / (rp.threads * 8);
        if (rp.nsplit < 2) rp.nsplit = 1;
        if (rp.nsplit > 1) rp.mode = RM_SPLIT;
    }
    /* short rows (layernorm over C, softmax over L): shuffles only, no block barriers */
    if (rp.mode == RM_BLOCK && rp.len <= 2048) {
        rp.mode = RM_WARP;
        rp.threads = 256;
        /* with column sums, each warp's partial sums of its columns live in shared memory (registers, 24 a sum
         * for rows of 768, took a LayerNorm backward from 68 to 193 registers: one block per SM); 8 warps a block
         * where they fit GROUP_CSUM_SHARED, else 4 (pass_merge_column_sums keeps 4 within it) */
        if (gr->ncsums && gr->ncsums * 8 * rp.len * (int64_t)sizeof(float) > GROUP_CSUM_SHARED) rp.threads = 128;
        rp.wvec4 = row_vec4(f, gr, &rp);
    }
    return rp;
}

/* Rows each warp of a warp-per-row kernel with column sums walks: enough that the grid stays within csum_blocks() x 8
 * warps (its atomics are blocks x columns). */
static long long csum_rows_per_warp(const RowPlan *rp) {
    const long long warps = csum_blocks() * 8, rpw = (rp->rows + warps - 1) / warps;
    return rpw > 1 ? rpw : 1;
}

/* The kernel's first lines: which row this thread works on; fills the axis loop and the store guard. */
static void row_prologue(Em *e, RowPlan *rp) {
    long long len = (long long)rp->len, rows = (long long)rp->rows;
    switch (rp->mode) {
    case RM_COLUMN: {
        const int per = rp->vec4 ? 4 : 1;   /* columns per lane */
        line(e, "__shared__ float vmc_col[8][%d];", 32 * per + 1);
        line(e, "const int lane = threadIdx.x & 31, part = threadIdx.x >> 5;");
        line(e, "const long long row0 = (long long)(blockIdx.x / %lld) * %d + lane%s;", (long long)rp->csplit, 32 * per,
             per > 1 ? " * 4" : "");
        line(e, "const long long row = row0 < %lldLL ? row0 : %lldLL;   // clamped: index math stays in range", rows,
             rows - per);
        if (rp->csplit > 1)
            snprintf(rp->jloop, sizeof rp->jloop, "for (int j = (blockIdx.x %% %lld) * 8 + part; j < %lld; j += %lld) {",
                     (long long)rp->csplit, len, (long long)rp->csplit * 8);
        else snprintf(rp->jloop, sizeof rp->jloop, "for (int j = part; j < %lld; j += 8) {", len);
        rp->guard = "part == 0 && row0 == row";
        return;
    }
    case RM_WARP:
        line(e, "const int lane = threadIdx.x & 31;");
        if (e->gr->ncsums) {   /* each warp walks rows, its columns' sums in its rows of vmc_cs (row_csums_end) */
            const unsigned W = rp->threads / 32;
            line(e, "const int warp = threadIdx.x >> 5;");
            line(e, "__shared__ __align__(16) float vmc_cs[%d][%u][%lld];", e->gr->ncsums, W, len);
            /* each lane zeroes the columns it adds to (no other lane touches them before the block's barrier) */
            if (rp->wvec4) {
                line(e, "for (int c = lane * 4; c < %lld; c += 128) {", len);
                for (int c = 0; c < e->gr->ncsums; c++)
                    line(e, "    *reinterpret_cast<float4*>(&vmc_cs[%d][warp][c]) = float4{0.f, 0.f, 0.f, 0.f};", c);
            } else {
                line(e, "for (int c = lane; c < %lld; c += 32) {", len);
                for (int c = 0; c < e->gr->ncsums; c++) line(e, "    vmc_cs[%d][warp][c] = 0.f;", c);
            }
            line(e, "}");
            /* a block takes RPW x W consecutive rows, a trip W of them: written as a fixed trip count with a break,
             * LayerNorm's backward (no sums) took 75 registers, as a loop striding by the grid 106 (ptxas, sm_90) */
            const long long rpw = csum_rows_per_warp(rp);
            line(e, "#pragma unroll 1");
            line(e, "for (int rr = 0; rr < %lld; rr++) {", rpw);
            e->ind++; e->depth++;
            line(e, "const long long row = ((long long)blockIdx.x * %lld + rr) * %u + warp;", rpw, W);
            line(e, "if (row >= %lldLL) break;", rows);
        } else {
            line(e, "const long long row = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);");
            line(e, "if (row >= %lldLL) return;   // no block barriers below", rows);
        }
        /* Whole warps of a row: a constant trip count, unrolled, keeps the row's loads in flight together, and
         * the same loads in later phases (restrict inputs, no stores between) can stay in registers. */
        if (rp->wvec4)   /* j: the first of the lane's 4 elements */
            snprintf(rp->jloop, sizeof rp->jloop,
                     "#pragma unroll\n    for (int jj = 0; jj < %lld; jj++) { const int j = (lane + 32 * jj) * 4;", len / 128);
        else if (len % 32 == 0 && len <= 1024)
            snprintf(rp->jloop, sizeof rp->jloop,
                     "#pragma unroll\n    for (int jj = 0; jj < %lld; jj++) { const int j = lane + 32 * jj;", len / 32);
        else snprintf(rp->jloop, sizeof rp->jloop, "for (int j = lane; j < %lld; j += 32) {", len);
        rp->guard = "lane == 0";
        return;
    case RM_SPLIT:
        line(e, "__shared__ float vmc_sh[32];");
        line(e, "const long long row = blockIdx.x / %lld;", (long long)rp->nsplit);
        line(e, "const long long part = blockIdx.x %% %lld;", (long long)rp->nsplit);
        snprintf(rp->jloop, sizeof rp->jloop, "for (long long j = part * %u + threadIdx.x; j < %lld; j += %lld) {",
                 rp->threads, len, (long long)rp->nsplit * rp->threads);
        rp->guard = "threadIdx.x == 0";
        return;
    case RM_BLOCK:
        line(e, "__shared__ float vmc_sh[32];");
        line(e, "const long long row = blockIdx.x;");
        snprintf(rp->jloop, sizeof rp->jloop, "for (int j = threadIdx.x; j < %lld; j += %u) {", len, rp->threads);
        rp->guard = "threadIdx.x == 0";
        return;
    }
}

/* The column sum of column_vec4: per lane 4 adjacent columns (rows of the reduction) summed in acc0[4], the
 * loop body computed for each by an unrolled loop over k, full-shape inputs read as 4-wide vectors at e4 (the
 * element-wise kernels' vec4 body); then the 8 parts' sums per column, stored (or added) by part 0. */
static void column_vec4_sum(Em *e, const RowPlan *rp, const Ix *rix) {
    const Group *gr = e->gr;
    const Node *r = e->reds[0];
    line(e, "float acc0[4] = {0.f, 0.f, 0.f, 0.f};");
    line(e, "%s", rp->jloop);
    e->ind++; e->depth++;
    e->final = false;
    Ix ix = *rix;
    snprintf(ix.s[gr->axis], IXLEN, "j");
    char eb[IXLEN];
    flat(e, gr->dom, &ix, eb);
    line(e, "const long long e4 = %s / 4;", eb);
    Lanes lanes;
    lanes_open(e, &lanes, eb, &ix);
    line(e, "acc0[k] += %s;", val(e, fus_src(e->f, r, 0), &ix));
    lanes_close(e, &lanes);
    scope_pop(e);
    line(e, "}");
    line(e, "#pragma unroll");
    line(e, "for (int k = 0; k < 4; k++) vmc_col[part][lane * 4 + k] = acc0[k];");
    line(e, "__syncthreads();");
    char fo[IXLEN];
    flat(e, r->shape, rix, fo);
    line(e, "if (%s) {", rp->guard);
    e->ind++;
    line(e, "#pragma unroll");
    line(e, "for (int k = 0; k < 4; k++) {");
    e->ind++;
    line(e, "float red0 = vmc_col[0][lane * 4 + k];   // %s", op_name(r->op));
    line(e, "for (int q = 1; q < 8; q++) red0 += vmc_col[q][lane * 4 + k];");
    if (rp->csplit > 1) line(e, "atomicAdd(&out0[%s + k], red0);", fo);
    else line(e, "out0[%s + k] = red0;", fo);
    e->ind--;
    line(e, "}");
    e->ind--;
    line(e, "}");
    e->red_done = 1;
}

/* RM_WARP with wvec4: the lanes over the 4 elements from j (ix's axis coordinate) on, e4 their 4-wide index. */
static void row_lanes_open(Em *e, Lanes *l, Ix *ix) {
    char eb[IXLEN];
    flat(e, e->gr->dom, ix, eb);
    line(e, "const long long e4 = %s / 4;", eb);
    lanes_open(e, l, eb, ix);
}

/* Inside a loop over the row (lanes not yet open): declares the 4-element term arrays of the column sums added in
 * this phase (early ones in phase 0, the others in the final phase). */
static void row_csums_open(Em *e, const RowPlan *rp, bool early) {
    if (!rp->wvec4) return;   /* the 4 elements' terms in csl<s>[4], added to the warp's row with 16-byte accesses */
    for (int c = 0; c < e->gr->ncsums; c++)
        if (e->csum_early[c] == early) line(e, "float csl%d[4];", c);
}
static void row_csums_terms(Em *e, const RowPlan *rp, const Ix *ix, bool early) {
    for (int c = 0; c < e->gr->ncsums; c++) {
        if (e->csum_early[c] != early) continue;
        char acc[48];
        if (rp->wvec4) snprintf(acc, sizeof acc, "csl%d[k]", c);
        else snprintf(acc, sizeof acc, "vmc_cs[%d][warp][j]", c);
        csum_add(e, c, ix, acc, rp->wvec4);
    }
}
static void row_csums_close(Em *e, const RowPlan *rp, bool early) {
    if (!rp->wvec4) return;
    for (int c = 0; c < e->gr->ncsums; c++) {
        if (e->csum_early[c] != early) continue;
        line(e, "{ float4 *p = reinterpret_cast<float4*>(&vmc_cs[%d][warp][j]); float4 t = *p;", c);
        line(e, "  t.x += csl%d[0]; t.y += csl%d[1]; t.z += csl%d[2]; t.w += csl%d[3]; *p = t; }", c, c, c, c);
    }
}

/* Does computing x read one of the kernel's row reductions? (*budget: nodes left to visit; when it runs out, the
 * answer is yes, which is always safe) */
static bool reads_row_reduction(const Em *e, const Node *x, int *budget) {
    for (int p = 0; p < e->nreds; p++) if (e->reds[p] == x) return true;
    if (!is_member(e, x)) return false;
    if (--*budget < 0) return true;
    for (int k = 0; k < x->nsrc; k++)
        if (reads_row_reduction(e, fus_src(e->f, x, k), budget)) return true;
    return false;
}

/* Phase [p0, p1): reductions p0 .. p1-1 over the row in one loop (several only when none reads another:
 * RowPlan.sums_only) into red<p>, every thread of the row holding them; each stored if it is an output. */
static void row_phase(Em *e, const RowPlan *rp, int p0, int p1, const Ix *rix) {
    for (int p = p0; p < p1; p++) {
        const Node *r = e->reds[p];
        line(e, "%s acc%d = %s;", ctype(r), p, r->op == OP_SUM ? "0" : "__int_as_float(0xff800000)");
    }
    line(e, "%s", rp->jloop);
    e->ind++; e->depth++;
    e->final = false;
    Ix ix = *rix;
    snprintf(ix.s[e->gr->axis], IXLEN, "j");
    Lanes lanes;
    if (p0 == 0) row_csums_open(e, rp, true);
    if (rp->wvec4) row_lanes_open(e, &lanes, &ix);
    for (int p = p0; p < p1; p++) {
        const Node *r = e->reds[p];
        const char *v = val(e, fus_src(e->f, r, 0), &ix);
        if (r->op == OP_SUM) line(e, "acc%d += %s;", p, v);
        else line(e, "acc%d = vmc_max(acc%d, %s);", p, p, v);
    }
    if (p0 == 0) row_csums_terms(e, rp, &ix, true);   /* column sums that need no row reduction: with the first */
    if (rp->wvec4) lanes_close(e, &lanes);
    if (p0 == 0) row_csums_close(e, rp, true);
    scope_pop(e);
    line(e, "}");
    for (int p = p0; p < p1; p++) {
        const Node *r = e->reds[p];
        const bool sum = r->op == OP_SUM;
        if (rp->mode == RM_COLUMN) {
            line(e, "vmc_col[part][lane] = acc%d;", p);
            line(e, "__syncthreads();");
            line(e, "%s red%d = vmc_col[0][lane];   // %s", ctype(r), p, op_name(r->op));
            if (sum) line(e, "for (int q = 1; q < 8; q++) red%d += vmc_col[q][lane];", p);
            else line(e, "for (int q = 1; q < 8; q++) red%d = vmc_max(red%d, vmc_col[q][lane]);", p, p);
            line(e, "__syncthreads();");
        } else {
            bool warp = rp->mode == RM_WARP;
            line(e, "const %s red%d = vmc_%s_%s(acc%d%s);   // %s", ctype(r), p, warp ? "warp" : "block",
                 sum ? "sum" : "max", p, warp ? "" : ", vmc_sh", op_name(r->op));
        }
        int o = param_of(e, r, true);
        if (o >= 0) {
            char fo[IXLEN];
            flat(e, r->shape, rix, fo);
            if (rp->nsplit > 1 || rp->csplit > 1) line(e, "if (%s) atomicAdd(&out%d[%s], red%d);", rp->guard, o, fo, p);
            else line(e, "if (%s) out%d[%s] = red%d;", rp->guard, o, fo, p);
        }
    }
    e->red_done = p1;
}

/* The final phase: the root (and extra outputs) over the row, or once per row for a per-row root. */
static void row_final(Em *e, const RowPlan *rp, const Ix *rix) {
    const Node *root = e->gr->root;
    e->final = true;
    if (shape_eq(root->shape, e->gr->dom) && rp->len > 1) {
        ASSERT(rp->mode != RM_COLUMN, "column mode with a full-row output");
        line(e, "%s", rp->jloop);
        e->ind++; e->depth++;
        e->jvar = "j";
        Ix ix = *rix;
        snprintf(ix.s[e->gr->axis], IXLEN, "j");
        Lanes lanes;
        row_csums_open(e, rp, false);
        if (rp->wvec4) row_lanes_open(e, &lanes, &ix);
        val(e, root, &ix);
        row_csums_terms(e, rp, &ix, false);
        if (rp->wvec4) lanes_close(e, &lanes);
        row_csums_close(e, rp, false);
        e->ind--;
        line(e, "}");
    } else if (root->op != OP_SUM && root->op != OP_AMAX) {
        line(e, "if (%s) {", rp->guard);
        e->ind++; e->depth++;
        val(e, root, rix);
        e->ind--;
        line(e, "}");
    }
}

/* A warp-per-row kernel's column sums (pass_merge_column_sums), after its loop over rows: the block's warps'
 * partial sums of each column added, then one atomicAdd per column and block. */
static void row_csums_end(Em *e, const RowPlan *rp) {
    const Group *gr = e->gr;
    const long long C = rp->len;
    scope_pop(e);
    line(e, "}");
    line(e, "__syncthreads();");
    line(e, "for (int c = threadIdx.x; c < %lld; c += %u) {", C, rp->threads);
    for (int c = 0; c < gr->ncsums; c++) {
        line(e, "    float t%d = vmc_cs[%d][0][c];", c, c);
        line(e, "    for (int w = 1; w < %u; w++) t%d += vmc_cs[%d][w][c];", rp->threads / 32, c, c);
        line(e, "    atomicAdd(&out%d[c], t%d);", param_of(e, gr->csums[c], true), c);
    }
    line(e, "}");
}

static void emit_row(Em *e, const char *name, KernelSource *ks) {
    const Group *gr = e->gr;
    RowPlan rp = plan_row(e->f, gr);
    const bool csums_ok = rp.mode == RM_WARP && rp.len % 32 == 0 && rp.len <= 1024;
    ASSERT(!gr->ncsums || csums_ok,
           "group %d: column sums in a row kernel that is not a warp per row of at most 1024", gr->index);
    ks->zero_outs = rp.nsplit > 1 || rp.csplit > 1;
    char what[200], s[96];
    snprintf(what, sizeof what, "%s kernel, %lld rows of %lld (axis %d of %s), %u threads%s%s%s",
             rp.mode == RM_COLUMN ? "column" : rp.mode == RM_WARP ? "row (warp per row)" : "row",
             (long long)rp.rows, (long long)rp.len, gr->axis, shape_str(gr->dom, s, sizeof s), rp.threads,
             ks->zero_outs ? ", rows split over blocks (atomicAdd)" : "", rp.vec4 ? ", 4 columns per lane" : "",
             gr->ncsums ? ", with column sums (atomicAdd per block)" : "");
    header(e, name, what);
    params(e, KNAME, rp.threads);
    row_prologue(e, &rp);
    Shape rs = gr->dom;
    rs.d[gr->axis] = 1;
    Ix rix = unflat(e, rs, "row");
    for (int k = 0; k < gr->nmembers; k++)
        if ((gr->members[k]->op == OP_SUM || gr->members[k]->op == OP_AMAX) && !group_is_csum(gr, gr->members[k])) {
            ASSERT(e->nreds < MAX_REDS, "too many reductions in group %d", gr->index);
            e->reds[e->nreds++] = gr->members[k];
        }
    bool early[GROUP_MAX_CSUMS] = {false};
    e->csum_early = early;
    for (int c = 0; c < gr->ncsums && e->nreds; c++) {
        int budget = 4096;
        early[c] = !reads_row_reduction(e, group_csum_source(e->f, gr, gr->csums[c]), &budget);
    }
    if (rp.vec4) column_vec4_sum(e, &rp, &rix);
    else {
        if (rp.sums_only) row_phase(e, &rp, 0, e->nreds, &rix);   /* independent sums: one loop */
        else for (int p = 0; p < e->nreds; p++) row_phase(e, &rp, p, p + 1, &rix);
        row_final(e, &rp, &rix);
    }
    if (gr->ncsums) row_csums_end(e, &rp);
    fprintf(e->o, "}\n");
    ks->block = rp.threads;
    switch (rp.mode) {
    case RM_COLUMN: ks->grid = (unsigned)(rp.cblocks * rp.csplit); break;
    case RM_WARP: {
        const long long W = rp.threads / 32, per_block = W * (gr->ncsums ? csum_rows_per_warp(&rp) : 1);
        ks->grid = (unsigned)((rp.rows + per_block - 1) / per_block);
        break;
    }
    case RM_SPLIT: case RM_BLOCK: ks->grid = (unsigned)(rp.rows * rp.nsplit); break;
    }
}

static void emit_randperm(Em *e, const char *name, KernelSource *ks) {
    const Node *n = e->gr->root;
    header(e, name, "random permutation (Fisher-Yates on the Philox stream of compiler/rng.h)");
    params(e, KNAME, 32);
    line(e, "if (blockIdx.x != 0 || threadIdx.x != 0) return;");
    line(e, "for (int i = 0; i < %lld; i++) out0[i] = i;", (long long)n->i[0]);
    line(e, "for (long long i = %lld; i > 0; i--) {", (long long)n->i[0] - 1);
    line(e, "    unsigned j = vmc_below(vmc_philox(seed, %lluULL, step, (unsigned long long)i).x[0], (unsigned)(i + 1));",
         (unsigned long long)n->i[1]);
    line(e, "    int t = out0[i]; out0[i] = out0[j]; out0[j] = t;");
    line(e, "}");
    fprintf(e->o, "}\n");
    ks->block = 32;
    ks->grid = 1;
}

static char *replace_all(const char *s, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + nf, from)) n++;
    char *out = xmalloc(strlen(s) + n * (nt > nf ? nt - nf : 0) + 1), *w = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        if (!q) { strcpy(w, p); break; }
        memcpy(w, p, (size_t)(q - p)); w += q - p;
        memcpy(w, to, nt); w += nt;
        p = q + nf;
    }
    return out;
}

/* Index math in 32 bits when every tensor the kernel touches has fewer than 2^31 elements: 64-bit division by
 * constants costs several times more instructions, enough to make memory-bound kernels compute-bound. */
static bool small_indices(const Group *gr) {
    const int64_t lim = (int64_t)1 << 30;   /* headroom: grid-stride increments stay below 2^31 */
    bool ok = shape_numel(gr->dom) < lim;
    for (int k = 0; k < gr->nmembers; k++) ok &= shape_numel(gr->members[k]->shape) < lim;
    for (int k = 0; k < gr->nins; k++) ok &= shape_numel(gr->ins[k]->shape) < lim;
    return ok;
}

static char *narrow_indices(const char *text) {
    char *a = replace_all(text, "(long long)", "(int)");
    char *b = replace_all(a, "const long long ", "const int ");
    char *c = replace_all(b, "for (long long ", "for (int ");
    free(a); free(b);
    /* integer literals lose their LL suffix (digits followed by "LL") */
    char *w = c;
    for (const char *r = c; *r;) {
        if (r[0] == 'L' && r[1] == 'L' && r > c && r[-1] >= '0' && r[-1] <= '9') { r += 2; continue; }
        *w++ = *r++;
    }
    *w = 0;
    return c;
}

/* ---------------------------------------------------------------- dead index declarations */
/* Index math is emitted eagerly (every coordinate of the kernel's domain, a 4-wide kernel's per-element index), and
 * much of it is never read: NVRTC drops it, but warns, and a reader wades through it. Removes every line
 * "const long long NAME = ...;" whose NAME no other token uses, until none is left (one removal can free another). */
static bool ident_char(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

static int count_token(const char *text, const char *name, size_t n) {
    int count = 0;
    for (const char *p = strstr(text, name); p; p = strstr(p + n, name))
        count += (p == text || !ident_char(p[-1])) && !ident_char(p[n]);
    return count;
}

/* Is the rest of this line (from after a declared name) one initialiser, no ", other = ..." at the top level? */
static bool single_declarator(const char *p) {
    int depth = 0;
    for (; *p && *p != '\n'; p++) {
        depth += *p == '(' || *p == '[';
        depth -= *p == ')' || *p == ']';
        if (*p == ',' && depth == 0) return false;
    }
    return true;
}

static void drop_dead_decls(char *text) {
    static const char decl[] = "const long long ";
    for (bool changed = true; changed;) {
        changed = false;
        for (char *d = strstr(text, decl); d; d = strstr(d + 1, decl)) {
            char *name = d + sizeof decl - 1, *end = name;
            while (ident_char(*end)) end++;
            if (strncmp(end, " = ", 3) || !single_declarator(end)) continue;
            char saved = *end;
            *end = 0;
            char nm[IXLEN];
            snprintf(nm, sizeof nm, "%s", name);
            *end = saved;
            if (count_token(text, nm, strlen(nm)) != 1) continue;
            char *line = d, *next = strchr(d, '\n');
            while (line > text && line[-1] != '\n') line--;
            if (!next) continue;
            memmove(line, next + 1, strlen(next + 1) + 1);
            changed = true;
            d = line > text ? line - 1 : text;
        }
    }
}

/* Drops the gather tables (file scope, before the kernel) that no line of the kernel reads any more. */
static void drop_dead_tables(char *glob, const char *body, int ntables) {
    for (int k = 0; k < ntables; k++) {
        char nm[48], def[96];
        snprintf(nm, sizeof nm, KNAME "_t%d", k);
        if (count_token(body, nm, strlen(nm))) continue;
        snprintf(def, sizeof def, "__device__ const int %s[", nm);
        char *start = strstr(glob, def), *end = start ? strstr(start, "};\n") : NULL;
        if (end) memmove(start, end + 3, strlen(end + 3) + 1);
    }
}

void codegen_group_batched(const Fusion *f, const Group *gr, int instances, KernelSource *out) {
    char name[64];
    kernel_name(gr, name, sizeof name);
    char *body = NULL, *glob = NULL, *head = NULL;
    size_t nb = 0, ng = 0, nh = 0;
    Em e = {.f = f, .gr = gr, .instances = instances};
    e.o = open_memstream(&body, &nb);
    e.glob = open_memstream(&glob, &ng);
    e.head = open_memstream(&head, &nh);
    ASSERT(e.o && e.glob && e.head, "open_memstream");
    memset(out, 0, sizeof *out);
    out->kclass = codegen_group_class(f, gr);
    switch (gr->kind) {
    case GK_EW: case GK_SCATTER: emit_ew(&e, name, out); break;
    case GK_ROW: emit_row(&e, name, out); break;
    case GK_RANDPERM: emit_randperm(&e, name, out); break;
    case GK_GEMM: case GK_OPAQUE: case GK_ASSIGN: ASSERT(0, "group %d (%s) is not a generated kernel", gr->index, group_kind_name(gr->kind));
    }
    if (instances > 1) batched_entry(&e, KNAME);
    fclose(e.o);
    fclose(e.glob);
    fclose(e.head);
    drop_dead_decls(body);
    drop_dead_tables(glob, body, e.tables.n);
    nb = strlen(body);
    ng = strlen(glob);
    for (int k = 0; k < e.nmemo; k++) free(e.memo[k].key);
    free(e.memo);
    ptrvec_free(&e.tables);
    out->key = xmalloc(ng + nb + 1);
    memcpy(out->key, glob, ng);
    memcpy(out->key + ng, body, nb + 1);
    if (small_indices(gr)) {
        char *k = narrow_indices(out->key);
        free(out->key);
        out->key = k;
    }
    char *named = replace_all(out->key, KNAME, name);
    out->body = xmalloc(nh + strlen(named) + 1);
    memcpy(out->body, head, nh);
    strcpy(out->body + nh, named);
    free(named); free(body); free(glob); free(head);
    out->name = xstrdup(name);
}

void codegen_group(const Fusion *f, const Group *gr, KernelSource *out) { codegen_group_batched(f, gr, 1, out); }

void kernel_source_free(KernelSource *k) {
    free(k->name);
    free(k->body);
    free(k->key);
    k->name = k->body = k->key = NULL;
}

const char *codegen_group_class(const Fusion *f, const Group *gr) {
    switch (gr->kind) {
    case GK_GEMM: return "gemm";
    case GK_OPAQUE: return gr->root->op == OP_SCAN || gr->root->op == OP_SCAN_BWD ? "scan" : "conv";
    case GK_ROW: return "norm";
    case GK_ASSIGN: return "optimizer";
    case GK_RANDPERM: case GK_SCATTER: return "elementwise";
    case GK_EW:
        for (int k = 0; k < gr->nins; k++) if (gr->ins[k]->op == OP_STATE) return "optimizer";
        return "elementwise";
    }
    return "elementwise";
}

const char *codegen_preamble(void) {
    return
        "// vmc generated code: shared device helpers\n"
        CODEGEN_GRID_ENTRY
        "__device__ __forceinline__ float vmc_softplus(float v) { return v <= 20.0f ? log1pf(expf(v)) : v; }\n"
        "// e^x by the EX2 unit (2 ulp, plus |x| 6e-8 relative from rounding x log2 e; 0 below -87), and the\n"
        "// sigmoid with it and an approximate reciprocal: libm's expf and an IEEE division cost ~25 instructions\n"
        "__device__ __forceinline__ float vmc_exp(float x) {\n"
        "    float r;\n"
        "#ifdef __CUDA_ARCH__\n"
        "    asm(\"ex2.approx.ftz.f32 %0, %1;\" : \"=f\"(r) : \"f\"(x * 1.44269504088896341f));\n"
        "#else   // (tests/emu: the same kernels on the CPU)\n"
        "    r = exp2f(x * 1.44269504088896341f);\n"
        "#endif\n"
        "    return r;\n"
        "}\n"
        "__device__ __forceinline__ float vmc_sigmoid(float x) { return __fdividef(1.0f, 1.0f + vmc_exp(-x)); }\n"
        "// erf in about 25 instructions, both pieces computed and one selected (libm's erff: about 50 with branches,\n"
        "// which made the GELU kernels compute-bound): |x| < 1.25, x P(x^2); above, 1 - e^Q(|x|) with Q ~ log erfc,\n"
        "// |x| clamped to 4 where erf rounds to 1 (NaN passes). P (degree 7) and Q (degree 8) are least-squares fits\n"
        "// at Chebyshev nodes (scripts/fit_erf.c); every float in [0, 4.5): at most 1.7 ulp from the exact erf with\n"
        "// a correctly rounded exp (test_emu_generated checks a sample), about 2 with the EX2 unit's (libm's erff: 1).\n"
        "__device__ __forceinline__ float vmc_erf(float x) {\n"
        "    const float a = fabsf(x), t = a > 4.0f ? 4.0f : a, s = x * x;\n"
        "    const float u = fmaf(s, 1.28f, -1.0f), v = fmaf(t, 1.0f / 1.375f, -2.625f / 1.375f);   // into [-1, 1]\n"
        "    float p = -1.343022745e-06f, q = 2.021492219e-05f;\n"
        "    p = fmaf(p, u, 1.421610978e-05f); p = fmaf(p, u, -1.291694352e-04f); p = fmaf(p, u, 1.034354093e-03f);\n"
        "    p = fmaf(p, u, -7.047481369e-03f); p = fmaf(p, u, 3.998836130e-02f); p = fmaf(p, u, -1.878515333e-01f);\n"
        "    p = fmaf(p, u, 8.923127055e-01f);\n"
        "    q = fmaf(q, v, -1.145962669e-04f); q = fmaf(q, v, 4.355151905e-04f); q = fmaf(q, v, -1.809460111e-03f);\n"
        "    q = fmaf(q, v, 6.863666233e-03f); q = fmaf(q, v, -2.557368204e-02f); q = fmaf(q, v, -1.791878223e+00f);\n"
        "    q = fmaf(q, v, -7.685076714e+00f); q = fmaf(q, v, -8.490669250e+00f);\n"
        "    return a < 1.25f ? x * p : copysignf(1.0f - vmc_exp(q), x);\n"
        "}\n"
        "__device__ __forceinline__ float vmc_max(float a, float b) { return (a > b || isnan(a)) ? a : b; }\n"
        "__device__ __forceinline__ float vmc_min(float a, float b) { return (a < b || isnan(a)) ? a : b; }\n"
        "// round to bf16 (nearest even), kept in a float; NaN stays NaN (as the cpu backend's bf16_round)\n"
        "__device__ __forceinline__ float vmc_bf16(float f) {\n"
        "    unsigned u = __float_as_uint(f);\n"
        "    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;\n"
        "    else if (u & 0xffffu) u |= 0x00400000u;\n"
        "    return __uint_as_float(u);\n"
        "}\n"
        "// a bf16-stored value (its 16 bits) as a float\n"
        "__device__ __forceinline__ float vmc_from_bf16(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n"
        "// Philox4x32-10, word for word compiler/rng.h (the cpu backend's randomness)\n"
        "struct vmc_rng4 { unsigned x[4]; };\n"
        "__device__ __forceinline__ vmc_rng4 vmc_philox(unsigned long long seed, unsigned long long key,\n"
        "                                               unsigned long long a, unsigned long long b) {\n"
        "    unsigned c0 = (unsigned)a, c1 = (unsigned)b, c2 = (unsigned)key, c3 = (unsigned)(key >> 32);\n"
        "    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);\n"
        "    for (int r = 0; r < 10; r++) {\n"
        "        unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;\n"
        "        unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;\n"
        "        unsigned n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;\n"
        "        c0 = n0; c1 = n1; c2 = n2; c3 = n3;\n"
        "        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;\n"
        "    }\n"
        "    vmc_rng4 o; o.x[0] = c0; o.x[1] = c1; o.x[2] = c2; o.x[3] = c3;\n"
        "    return o;\n"
        "}\n"
        "__device__ __forceinline__ float vmc_uniform(unsigned x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }\n"
        "__device__ __forceinline__ unsigned vmc_below(unsigned x, unsigned n) {\n"
        "    return (unsigned)(((unsigned long long)x * n) >> 32);\n"
        "}\n"
        "__device__ __forceinline__ bool vmc_keep(unsigned long long seed, unsigned long long key, unsigned long long step,\n"
        "                                         unsigned long long elem, float p) {\n"
        "    return vmc_uniform(vmc_philox(seed, key, step, elem).x[0]) >= p;\n"
        "}\n"
        "// warp-wide reductions: every lane gets the result\n"
        "__device__ __forceinline__ float vmc_warp_sum(float v) {\n"
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
        "    return v;\n"
        "}\n"
        "__device__ __forceinline__ float vmc_warp_max(float v) {\n"
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
        "    return v;\n"
        "}\n"
        "// block-wide reductions: every thread gets the result (blockDim.x a multiple of 32, at most 1024)\n"
        "__device__ __forceinline__ float vmc_block_sum(float v, float *sh) {\n"
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
        "    __syncthreads();\n"
        "    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;\n"
        "    __syncthreads();\n"
        "    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0f;\n"
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
        "    return v;\n"
        "}\n"
        "__device__ __forceinline__ float vmc_block_max(float v, float *sh) {\n"
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
        "    __syncthreads();\n"
        "    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;\n"
        "    __syncthreads();\n"
        "    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : __int_as_float(0xff800000);\n"
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
        "    return v;\n"
        "}\n";
}
