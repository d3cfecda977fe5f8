/* program.c — builds a Program: runs the passes, turns each group into launches (generated kernels batched into
 * NVRTC modules, template instantiations for the opaque ops, GEMM descriptors, memsets and ASSIGN copies), then
 * compiles every module on a thread pool through the NVRTC disk cache. No GPU is touched here. */
#include "program.h"
#include "packed_copy.h"
#include "streams.h"
#include "template.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { KERNELS_PER_MODULE = 8 };   /* small modules spread over the compile threads */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static BufRef bufref(const Program *p, const Node *n) {
    ASSERT(p->f->mat[n->id], "node %%%u (%s) has no buffer", n->id, op_name(n->op));
    return (BufRef){p->f->buf[n->id].arena, p->f->buf[n->id].offset};
}

static Launch *add_launch(Program *p, LaunchKind kind, int group, const char *kclass) {
    if (p->nlaunches == p->caplaunches) {
        p->caplaunches = p->caplaunches ? p->caplaunches * 2 : 256;
        p->launches = xrealloc(p->launches, sizeof(Launch) * (size_t)p->caplaunches);
    }
    Launch *l = &p->launches[p->nlaunches++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->group = group;
    l->kclass = kclass;
    l->module = -1;
    l->same_as = -1;
    return l;
}

static int add_module(Program *p, char *src, const char *label) {
    if (p->nmodules == p->capmodules) {
        p->capmodules = p->capmodules ? p->capmodules * 2 : 64;
        p->modules = xrealloc(p->modules, sizeof(Module) * (size_t)p->capmodules);
    }
    Module *m = &p->modules[p->nmodules];
    memset(m, 0, sizeof *m);
    m->src = src;
    m->label = xstrdup(label);
    return p->nmodules++;
}

/* Generated kernels accumulate into an open module (preamble + bodies) until it is full. */
typedef struct Batch { FILE *f; char *text; size_t len; int count; char label[64]; PtrVec launches; } Batch;

static void batch_flush(Program *p, Batch *b) {
    if (!b->f) return;
    fclose(b->f);
    int m = add_module(p, b->text, b->label);
    for (int k = 0; k < b->launches.n; k++) p->launches[(intptr_t)b->launches.items[k]].module = m;
    ptrvec_free(&b->launches);
    b->f = NULL;
    b->count = 0;
}

static void batch_add(Program *p, Batch *b, const char *body, const char *name, int launch) {
    if (!b->f) {
        b->f = open_memstream(&b->text, &b->len);
        ASSERT(b->f, "open_memstream");
        fputs(codegen_preamble(), b->f);
        snprintf(b->label, sizeof b->label, "m%d_%s", p->nmodules, name);
    }
    fprintf(b->f, "\n%s", body);
    ptrvec_push(&b->launches, (void *)(intptr_t)launch);
    if (++b->count == KERNELS_PER_MODULE) batch_flush(p, b);
}

static void set_args(Launch *l, int n) {
    l->nargs = n;
    l->args = xcalloc((size_t)(n ? n : 1), sizeof(BufRef));
}

static void touch(Launch *l, BufRef at, int64_t bytes, bool write) {
    ASSERT(at.arena != AR_COUNT_ && bytes > 0, "access to a missing buffer");
    if (l->nacc == l->capacc) {
        l->capacc = l->capacc ? 2 * l->capacc : 8;
        l->acc = xrealloc(l->acc, sizeof(Access) * (size_t)l->capacc);
    }
    l->acc[l->nacc++] = (Access){at, bytes, write};
}

static const Node *view_owner(const Fusion *f, const Node *n, int64_t *off);

/* The whole buffer under x (its owner's, for a view), or its bf16 copy's. */
static void touch_node(Launch *l, const Fusion *f, const Node *x, bool shadow, bool write) {
    int64_t off;
    const Node *o = view_owner(f, x, &off);
    const Buf *b = shadow ? &f->sbuf[o->id] : &f->buf[o->id];
    ASSERT(shadow ? f->shadow[o->id] : f->mat[o->id], "node %%%u has no %s buffer", o->id, shadow ? "bf16" : "");
    touch(l, (BufRef){b->arena, b->offset}, b->bytes, write);
}

/* Kernels already generated, by text (codegen.h's key): a repeat reuses the first one's function. */
typedef struct Seen { uint64_t hash; char *key; int launch; } Seen;
typedef struct SeenSet { Seen *items; int n, cap; } SeenSet;

static int seen_find(SeenSet *s, const char *key, int launch) {
    uint64_t h = hash_bytes(HASH_SEED, key, strlen(key));
    for (int k = 0; k < s->n; k++)
        if (s->items[k].hash == h && !strcmp(s->items[k].key, key)) return s->items[k].launch;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->items = xrealloc(s->items, sizeof(Seen) * (size_t)s->cap);
    }
    s->items[s->n++] = (Seen){h, xstrdup(key), launch};
    return -1;
}

/* Adds launch li's kernel text to the current module, or points the launch at an identical earlier kernel. */
static void add_kernel(Program *p, Batch *b, SeenSet *seen, int li, const char *key, const char *body, const char *name) {
    int first = seen_find(seen, key, li);
    if (first >= 0) {
        if (first != li) memmove(p->launches[li].name, p->launches[first].name, sizeof p->launches[li].name);
        p->launches[li].same_as = first;
        return;
    }
    batch_add(p, b, body, name, li);
    p->nkernels++;
}

static BufRef shadow_ref(const Fusion *f, const Node *x);

static const BufRef NO_BUF = {AR_COUNT_, 0};
static int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

static void generated(Program *p, Batch *b, SeenSet *seen, const Group *gr) {
    for (int k = 0; k < gr->nouts; k++) {   /* a new weight also goes to its kept bf16 copy (to_bf16) */
        const Node *o = gr->outs[k];
        const BufRef c = p->value_copy[o->id];
        if (c.arena == AR_COUNT_) continue;
        p->f->shadow[o->id] = true;
        p->f->sbuf[o->id] = (Buf){c.arena, c.offset, align256(shape_numel(o->shape) * 2)};
    }
    KernelSource ks;
    codegen_group(p->f, gr, &ks);
    for (int k = 0; k < gr->nouts; k++) {   /* outputs accumulated with atomics start at zero */
        if (gr->kind != GK_SCATTER && !ks.zero_outs && !group_is_csum(gr, gr->outs[k])) continue;
        Launch *z = add_launch(p, LK_MEMSET, gr->index, ks.kclass);
        z->dst = bufref(p, gr->outs[k]);
        z->bytes = shape_numel(gr->outs[k]->shape) * 4;
        touch(z, z->dst, z->bytes, true);
    }
    Launch *l = add_launch(p, LK_KERNEL, gr->index, ks.kclass);
    snprintf(l->name, sizeof l->name, "%s", ks.name);
    l->grid[0] = ks.grid; l->grid[1] = l->grid[2] = 1;
    l->block[0] = ks.block; l->block[1] = l->block[2] = 1;
    l->rng_args = true;
    int nshadow = 0;
    for (int k = 0; k < gr->nouts; k++) nshadow += p->f->shadow[gr->outs[k]->id];
    set_args(l, gr->nins + gr->nouts + nshadow);
    for (int k = 0; k < gr->nins; k++) {
        const bool copy = codegen_reads_copy(p->f, gr, gr->ins[k]);
        l->args[k] = copy ? shadow_ref(p->f, gr->ins[k]) : bufref(p, gr->ins[k]);
        touch_node(l, p->f, gr->ins[k], copy, false);
    }
    for (int k = 0; k < gr->nouts; k++) l->args[gr->nins + k] = bufref(p, gr->outs[k]);
    for (int k = 0, j = gr->nins + gr->nouts; k < gr->nouts; k++) {
        const Node *o = gr->outs[k];
        if (p->f->shadow[o->id]) l->args[j++] = (BufRef){p->f->sbuf[o->id].arena, p->f->sbuf[o->id].offset};
    }
    for (int k = 0; k < gr->nouts; k++) {
        if (!p->f->shadow_only[gr->outs[k]->id]) touch_node(l, p->f, gr->outs[k], false, true);
        if (p->f->shadow[gr->outs[k]->id]) touch_node(l, p->f, gr->outs[k], true, true);
    }
    add_kernel(p, b, seen, p->nlaunches - 1, ks.key, ks.body, ks.name);
    p->nlaunched++;
    kernel_source_free(&ks);
}

/* ---------------------------------------------------------------- opaque templates */
static void scan_spec(const Node *n, ScanSpec *s) {
    const Node *u = n->src[0];
    memset(s, 0, sizeof *s);
    s->B = (int)u->shape.d[0]; s->L = (int)u->shape.d[1]; s->D = (int)u->shape.d[2];
    s->N = (int)n->src[2]->shape.d[1];
    s->gated = scan_gated(n);
    /* device storage of every float tensor is f32 (codegen.h) */
    s->u = s->delta = s->a_log = s->bc = s->d = s->delta_bias = s->z = s->out = s->dout = DT_F32;
}

/* The input at the scan templates' argument position k (template.h: u .. delta_bias, z at 7, dout at 8), which
 * for the node is its last input; NULL for an ungated scan's z. */
static const Node *scan_arg(const Fusion *f, const Node *n, int k) {
    if (k == 8) return fus_src(f, n, n->nsrc - 1);
    return k == 7 && !scan_gated(n) ? NULL : fus_src(f, n, k);
}

static void conv_spec(const Node *n, Conv1dSpec *s) {
    memset(s, 0, sizeof *s);
    const Node *x = n->src[0];       /* x (forward) or dy (backward): [B, L, D] */
    s->B = (int)x->shape.d[0]; s->L = (int)x->shape.d[1]; s->D = (int)x->shape.d[2];
    const bool packed = n->op == OP_CONV1D_BWD || n->op == OP_CONV1D_SILU_BWD;   /* [dx | dw | db] */
    s->K = (int)(n->op == OP_CONV1D_BWD_W ? n->shape.d[2] : n->src[packed ? 2 : 1]->shape.d[2]);
    s->x = s->w = s->bias = s->out = s->dy = s->dy2 = DT_F32;
    s->want_dx = n->op == OP_CONV1D_BWD_X || packed;
    s->want_dw = n->op == OP_CONV1D_BWD_W || packed;
    s->want_db = packed;
    s->silu_dy = n->op == OP_CONV1D_SILU_BWD;
    s->has_dy2 = s->silu_dy && n->nsrc > 4;
}


/* Is some template argument not 16-byte aligned (a view at an odd offset)? */
static bool unaligned(const BufRef *args, int n) {
    for (int k = 0; k < n; k++) if (args[k].arena != AR_COUNT_ && args[k].offset % 16) return true;
    return false;
}

/* Has the memory under x a bf16 copy? A generated kernel writes its outputs' whole copies; the scan backward
 * writes the copies of the parts of its packed output that bf16 readers take (Fusion.part_copy). Templates read an
 * input's copy where it has one: the reference kernels take bf16. */
static bool has_bf16_copy(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = view_owner(f, x, &off);
    if (!f->shadow[o->id] || !packed_has_parts(o)) return f->shadow[o->id];
    return !(packed_part(o, off, shape_numel(x->shape)) & ~f->part_copy[o->id]);
}

/* The storage type a template reads input x in: that of the buffer under x's row map (if any). */
static DType stored(const Fusion *f, const Node *x) {
    while (f->rowmap[x->id]) x = fus_src(f, x, 0);
    return fus_bf16(f, x) || has_bf16_copy(f, x) ? DT_BF16 : DT_F32;
}

/* The memory a template reads for unmapped input x. */
static BufRef template_in(const Program *p, const Node *x) {
    return has_bf16_copy(p->f, x) ? shadow_ref(p->f, x) : bufref(p, x);
}

/* The buffer a template reads for input x and, when x is a row-mapped gather/slice chain (pass_fuse), the row map
 * down to that buffer. The row table is malloc'd into *table (NULL when unmapped); free it after instantiation. */
static BufRef row_mapped(const Program *p, const Node *x, RowMap *m, int32_t **table) {
    const Fusion *f = p->f;
    memset(m, 0, sizeof *m);
    *table = NULL;
    if (!f->rowmap[x->id]) return template_in(p, x);
    int64_t L = x->shape.d[1], off = 0;
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)L);
    for (int64_t t = 0; t < L; t++) rows[t] = (int32_t)t;
    const Node *cur = x;
    for (; f->rowmap[cur->id]; cur = fus_src(f, cur, 0)) {
        if (cur->op == OP_GATHER) for (int64_t t = 0; t < L; t++) rows[t] = cur->idata[rows[t]];
        else off += cur->i[1];   /* a SLICE of the channel axis */
    }
    m->lrows = cur->shape.d[1];
    m->stride = cur->shape.d[2];
    m->off = off;
    m->rows = *table = rows;
    return template_in(p, cur);
}

/* Where template n writes the copy of its part that goes into place (Fusion.into): that column block of the
 * assembled value's bf16 copy, whose row length is *ld. NO_BUF and 0 when it has none. */
static BufRef into_ref(const Fusion *f, const Node *n, int64_t *ld) {
    const Node *c = f->into[n->id];
    *ld = 0;
    if (!c) return NO_BUF;
    *ld = c->shape.d[c->shape.ndim - 1];
    BufRef r = shadow_ref(f, c);
    r.offset += f->into_col[n->id] * 2;
    return r;
}

/* The chunk-start states a scan forward saves and its backward reads (mark_scan_states), NULL for any other node. */
static const Buf *scan_states(const Fusion *f, const Node *n) {
    if ((n->op != OP_SCAN && n->op != OP_SCAN_BWD) || !f->scan_pair[n->id]) return NULL;
    return &f->states[n->op == OP_SCAN ? n->id : f->scan_pair[n->id]->id];
}

static bool opaque(Program *p, SeenSet *seen, const Group *gr, char *err, int errlen) {
    const Fusion *f = p->f;
    const Node *n = gr->root;
    KernelLaunch kl;
    char *src = NULL;
    BufRef args[16];
    int nargs = 0;
    ScanSpec ss;
    Conv1dSpec cs;
    int32_t *tables[9] = {0};   /* row tables of mapped inputs, by source position */
    switch ((int)n->op) {     /* K_OPAQUE ops only */
    case OP_SCAN: case OP_SCAN_BWD: {
        scan_spec(n, &ss);
        RowMap *maps[9] = {&ss.u_map, &ss.delta_map, NULL, &ss.bm_map, &ss.cm_map, NULL, NULL, &ss.z_map, &ss.dout_map};
        for (int k = 0; k < (n->op == OP_SCAN ? 8 : 9); k++) {
            const Node *x = scan_arg(f, n, k);
            args[nargs++] = !x ? NO_BUF : maps[k] ? row_mapped(p, x, maps[k], &tables[k]) : template_in(p, x);
        }
        args[nargs++] = bufref(p, n);
        if (n->op == OP_SCAN_BWD) {   /* the bf16 copies of the parts bf16 readers take (mark_part_copies) */
            const bool copy = f->shadow[n->id];
            ss.copy_parts = copy ? f->part_copy[n->id] : 0;
            ss.skip_f32_parts = copy ? SCAN_PARTS & ~f->part_f32[n->id] : 0;
            args[nargs++] = copy ? shadow_ref(f, n) : NO_BUF;
        }
        const Buf *st = scan_states(f, n);   /* chunk-start states (mark_scan_states) */
        ss.states = st != NULL;
        args[nargs++] = st ? (BufRef){st->arena, st->offset} : NO_BUF;
        if (n->op == OP_SCAN_BWD) args[nargs++] = into_ref(f, n, &ss.dz_copy_ld);   /* dz's copy, into place */
        ss.u = stored(f, fus_src(f, n, 0));
        ss.delta = stored(f, fus_src(f, n, 1));
        ss.bc = stored(f, fus_src(f, n, 3));
        ASSERT(ss.bc == stored(f, fus_src(f, n, 4)), "scan: Bm and Cm stored differently");
        if (ss.gated) ss.z = stored(f, scan_arg(f, n, 7));
        if (n->op == OP_SCAN_BWD) ss.dout = stored(f, scan_arg(f, n, 8));
        else ss.out = f->store_bf16[n->id] ? DT_BF16 : DT_F32;
        src = n->op == OP_SCAN ? template_scan_fwd(&ss, &kl) : template_scan_bwd(&ss, &kl);
        break;
    }
    case OP_CONV1D: {
        conv_spec(n, &cs);
        cs.silu = f->conv_silu[n->id];
        cs.x = stored(f, fus_src(f, n, 0));
        cs.out = f->store_bf16[n->id] ? DT_BF16 : DT_F32;
        args[nargs++] = row_mapped(p, fus_src(f, n, 0), &cs.x_map, &tables[0]);
        for (int k = 1; k < 3; k++) args[nargs++] = bufref(p, fus_src(f, n, k));
        args[nargs++] = bufref(p, n);
        const Node *act = gr->nouts > 1 ? gr->outs[1] : NULL;   /* silu(conv), pass_fuse's conv_silu_out */
        ASSERT(!act || (act->op == OP_SILU && gr->nouts == 2), "conv1d group outputs");
        cs.silu_out = act != NULL;
        cs.out2 = act && f->store_bf16[act->id] ? DT_BF16 : DT_F32;
        args[nargs++] = act ? bufref(p, act) : NO_BUF;
        cs.unaligned = unaligned(args, nargs);
        src = template_conv1d_fwd(&cs, &kl);
        break;
    }
    case OP_CONV1D_BWD_X: case OP_CONV1D_BWD_W: {
        conv_spec(n, &cs);
        bool bx = n->op == OP_CONV1D_BWD_X;
        BufRef dy = row_mapped(p, fus_src(f, n, 0), &cs.dy_map, &tables[0]);
        BufRef other = bx ? bufref(p, fus_src(f, n, 1)) : row_mapped(p, fus_src(f, n, 1), &cs.x_map, &tables[1]);
        cs.dy = stored(f, fus_src(f, n, 0));
        cs.x = bx ? cs.dy : stored(f, fus_src(f, n, 1));
        if (bx) cs.x_map = cs.dy_map;   /* x is not needed: dy stands in, read the same way */
        /* (dy, x, w, dx, dw, db): inputs a gradient does not need get a valid stand-in, outputs not wanted NULL */
        args[0] = dy; args[1] = bx ? dy : other; args[2] = bx ? other : dy;
        args[3] = bx ? bufref(p, n) : NO_BUF; args[4] = bx ? NO_BUF : bufref(p, n);
        args[5] = args[6] = args[7] = args[8] = NO_BUF;
        nargs = 9;
        cs.unaligned = unaligned(args, nargs);
        src = template_conv1d_bwd(&cs, &kl);
        break;
    }
    case OP_CONV1D_BWD: case OP_CONV1D_SILU_BWD: {   /* packed [dx | dw | db]; the SiLU's: + bias [, dy2] */
        conv_spec(n, &cs);
        cs.dy = stored(f, fus_src(f, n, 0));
        cs.x = stored(f, fus_src(f, n, 1));
        args[0] = row_mapped(p, fus_src(f, n, 0), &cs.dy_map, &tables[0]);
        args[1] = row_mapped(p, fus_src(f, n, 1), &cs.x_map, &tables[1]);
        args[2] = bufref(p, fus_src(f, n, 2));
        BufRef out = bufref(p, n);
        int64_t nx = (int64_t)cs.B * cs.L * cs.D;
        args[3] = out;
        args[4] = (BufRef){out.arena, out.offset + 4 * nx};
        args[5] = (BufRef){out.arena, out.offset + 4 * (nx + (int64_t)cs.D * cs.K)};
        args[6] = cs.silu_dy ? bufref(p, fus_src(f, n, 3)) : NO_BUF;
        args[7] = NO_BUF;
        if (cs.has_dy2) {
            cs.dy2 = stored(f, fus_src(f, n, 4));
            args[7] = row_mapped(p, fus_src(f, n, 4), &cs.dy2_map, &tables[4]);
        }
        cs.copy_dx = f->shadow[n->id] && (f->part_copy[n->id] & CONV_PART_DX);   /* mark_part_copies */
        cs.skip_f32_dx = cs.copy_dx && !(f->part_f32[n->id] & CONV_PART_DX);
        args[8] = !cs.copy_dx ? NO_BUF : f->into[n->id] ? into_ref(f, n, &cs.dx_copy_ld) : shadow_ref(f, n);
        nargs = 9;
        cs.unaligned = unaligned(args, nargs);
        src = template_conv1d_bwd(&cs, &kl);
        break;
    }
    default: UNREACHABLE();
    }
    for (int k = 0; k < 9; k++) free(tables[k]);
    if (!src) { snprintf(err, (size_t)errlen, "no template for %s (codegen/templates missing?)", op_name(n->op)); return false; }
    char label[96];
    snprintf(label, sizeof label, "k%d_%s", gr->index, kl.name);
    int first = seen_find(seen, src, p->nlaunches + kl.nzero);   /* the kernel launch added below */
    int m = first >= 0 ? p->launches[first].module : add_module(p, src, label);
    if (first >= 0) free(src);
    const char *kclass = codegen_group_class(f, gr);
    for (int k = 0; k < kl.nzero; k++) {
        Launch *z = add_launch(p, LK_MEMSET, gr->index, kclass);
        z->dst = args[kl.zero[k].param];
        ASSERT(z->dst.arena != AR_COUNT_, "zeroing a missing buffer");
        z->dst.offset += (int64_t)kl.zero[k].offset;
        z->bytes = (int64_t)kl.zero[k].bytes;
        touch(z, z->dst, z->bytes, true);
    }
    Launch *l = add_launch(p, LK_KERNEL, gr->index, kclass);
    l->module = m;
    snprintf(l->name, sizeof l->name, "%s", kl.name);
    memcpy(l->grid, kl.grid, sizeof l->grid);
    memcpy(l->block, kl.block, sizeof l->block);
    l->smem = kl.smem;
    set_args(l, nargs);
    memcpy(l->args, args, sizeof(BufRef) * (size_t)nargs);
    for (int k = 0; k < n->nsrc; k++) {   /* through row maps to the buffer read, in the type read */
        const Node *x = fus_src(f, n, k);
        while (f->rowmap[x->id]) x = fus_src(f, x, 0);
        touch_node(l, f, x, has_bf16_copy(f, x), false);
    }
    for (int k = 0; k < gr->nouts; k++) touch_node(l, f, gr->outs[k], false, true);
    if (f->shadow[n->id]) touch_node(l, f, n, true, true);
    if (f->into[n->id]) touch_node(l, f, f->into[n->id], true, true);
    const Buf *st = scan_states(f, n);   /* written by the forward, read by the backward */
    if (st) touch(l, (BufRef){st->arena, st->offset}, st->bytes, n->op == OP_SCAN);
    if (first >= 0) l->same_as = first;
    else p->nkernels++;
    return true;
}

/* ---------------------------------------------------------------- GEMM */

/* bf16 copies of the operands, made by a generated cast kernel into the workspace arena. */
static BufRef to_bf16(Program *p, Batch *b, SeenSet *seen, const Group *gr, const Node *x, BufRef src, int64_t numel,
                      int64_t ws_off, char which) {
    /* The same operand cast to the same place a moment ago, with only GEMMs (which write neither the workspace's
     * copies nor a live source) and casts elsewhere in the workspace since: reuse it (an operand two GEMMs read).
     * A cast's element count is its declared read (acc[0], 4 bytes an element). */
    BufRef dst = {AR_WORK, PROGRAM_GEMM_WORKSPACE + ws_off};
    /* A parameter's copy is kept (the cast runs before the first step and after host writes, not every step) when
     * nothing writes the parameter, or when its AdamW kernel, later in the step, rewrites the whole copy. */
    int64_t voff;
    const Node *o = view_owner(p->f, x, &voff), *v = o->op == OP_PARAM ? p->param_value[o->id] : NULL;
    const bool updated = v && voff == 0 && numel == shape_numel(o->shape) && p->f->group_of[v->id] > gr->index;
    const bool once = src.arena == AR_PARAM && (p->params_constant || updated);
    if (once) {
        for (int k = 0; k < p->nlaunches; k++) {
            const Launch *c = &p->launches[k];
            if (c->once && c->args[0].offset == src.offset && c->acc[0].bytes == numel * 4) return c->args[1];
        }
        dst = (BufRef){AR_PARAM, p->f->arena_bytes[AR_PARAM] + p->param_copy_bytes};
        p->param_copy_bytes += align256(numel * 2);
        if (updated) p->value_copy[v->id] = dst;
    }
    for (int k = p->nlaunches - 1; k >= 0 && !once; k--) {
        const Launch *c = &p->launches[k];
        if (c->kind == LK_GEMM) continue;
        if (c->kind != LK_KERNEL || !c->bf16_cast) break;
        const int64_t cn = c->acc[0].bytes / 4;
        if (c->args[0].arena == src.arena && c->args[0].offset == src.offset && c->args[1].offset == dst.offset && cn == numel)
            return dst;
        if (c->args[1].offset < dst.offset + 2 * numel && dst.offset < c->args[1].offset + 2 * cn) break;
    }
    char name[64], *key = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "k%d_bf16_%c", gr->index, which);
    /* 16-byte loads where the source allows (arena bases are cudaMalloc'd, so 256-byte aligned; workspace
     * offsets are multiples of 256): a scalar cast ran at half the bandwidth. */
    const int vec = numel % 4 == 0 && src.offset % 16 == 0 ? 4 : 1;
    FILE *f = open_memstream(&key, &len);
    if (vec == 4) {
        fprintf(f, "extern \"C\" __global__ void __launch_bounds__(256) %%s(const float4* __restrict__ x, "
                   "uint2* __restrict__ y) {\n    vmc_grid_entry();\n");
        fprintf(f, "    for (long long e = (long long)blockIdx.x * 256 + threadIdx.x; e < %lldLL; e += (long long)gridDim.x * 256) {\n",
                (long long)numel / 4);
        fprintf(f, "        const float4 v = x[e];\n        uint2 o;\n"
                   "        o.x = (__float_as_uint(vmc_bf16(v.x)) >> 16) | (__float_as_uint(vmc_bf16(v.y)) & 0xffff0000u);\n"
                   "        o.y = (__float_as_uint(vmc_bf16(v.z)) >> 16) | (__float_as_uint(vmc_bf16(v.w)) & 0xffff0000u);\n"
                   "        y[e] = o;\n    }\n}\n");
    } else {
        fprintf(f, "extern \"C\" __global__ void __launch_bounds__(256) %%s(const float* __restrict__ x, "
                   "unsigned short* __restrict__ y) {\n    vmc_grid_entry();\n");
        fprintf(f, "    for (long long e = (long long)blockIdx.x * 256 + threadIdx.x; e < %lldLL; e += (long long)gridDim.x * 256)\n",
                (long long)numel);
        fprintf(f, "        y[e] = (unsigned short)(__float_as_uint(vmc_bf16(x[e])) >> 16);\n}\n");
    }
    fclose(f);
    char *body = NULL;
    f = open_memstream(&body, &len);
    fprintf(f, "/* %s: GEMM operand %c of group %d to bf16 (round to nearest even), %lld elements */\n", name, which,
            gr->index, (long long)numel);
    fprintf(f, key, name);
    fclose(f);
    Launch *l = add_launch(p, LK_KERNEL, gr->index, "gemm");
    snprintf(l->name, sizeof l->name, "%s", name);
    int64_t blocks = (numel / vec + 255) / 256;
    l->grid[0] = (unsigned)(blocks > (1 << 20) ? (1 << 20) : blocks); l->grid[1] = l->grid[2] = 1;
    l->block[0] = 256; l->block[1] = l->block[2] = 1;
    set_args(l, 2);
    l->args[0] = src;
    l->args[1] = dst;
    l->bf16_cast = true;
    l->once = once;
    touch(l, src, numel * 4, false);
    touch(l, dst, numel * 2, true);
    add_kernel(p, b, seen, p->nlaunches - 1, key, body, name);
    free(body);
    free(key);
    return dst;
}


static const Node *view_owner(const Fusion *f, const Node *n, int64_t *off) {
    *off = 0;
    while (f->view[n->id]) { *off += f->view_off[n->id]; n = f->view[n->id]; }
    return n;
}

/* Can the generated kernel that writes x's memory also write its bf16 copy for a GEMM? */
static bool shadowable(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = view_owner(f, x, &off);
    int gi = f->group_of[o->id];
    if (gi < 0 || f->kept[o->id] || o->op == OP_SUM || o->op == OP_AMAX) return false;
    GroupKind k = f->groups[gi].kind;
    return k == GK_EW || k == GK_ROW;
}

static bool plain_batch(const Node *n, const Node *x) {
    Shape bs = n->shape, xs = x->shape;
    bs.ndim -= 2; xs.ndim -= 2;
    int64_t nx = shape_numel(xs);
    return nx == 1 || nx == shape_numel(bs);
}

/* The buffer a GEMM operand x is read from: x, or for a column view (Fusion.colview) the value under the slice,
 * with the slice's first column (*col) and that value's row length (*ld); 0 and 0 otherwise. */
static const Node *gemm_base(const Fusion *f, const Node *x, int64_t *col, int64_t *ld) {
    *col = *ld = 0;
    if (!f->colview[x->id]) return x;
    while (x->op == OP_RESHAPE) x = fus_src(f, x, 0);
    ASSERT(x->op == OP_SLICE, "column view %%%u is not a slice", x->id);
    *col = x->i[1];
    x = fus_src(f, x, 0);
    *ld = x->shape.d[x->shape.ndim - 1];
    return x;
}

/* Does GEMM group gr read x as one of its two operands in place (no expanded copy; also the value under a column
 * view), so that a bf16 copy of x can be what it reads? */
static bool gemm_operand(const Fusion *f, const Group *gr, const Node *x) {
    if (gr->kind != GK_GEMM) return false;
    const Node *m = group_gemm(f, gr).matmul;
    for (int s = 0; s < 2; s++) {
        int64_t col, ld;
        const Node *o = fus_src(f, m, s);
        if ((x == o || x == gemm_base(f, o, &col, &ld)) && plain_batch(m, o)) return true;
    }
    return false;
}

/* Does group gr read input x from the bf16 copy of the memory under it (where x has one)? */
static bool reads_copy(const Fusion *f, const Group *gr, const Node *x) {
    switch (gr->kind) {
    case GK_OPAQUE: return has_bf16_copy(f, x);
    case GK_GEMM: return gemm_operand(f, gr, x) && has_bf16_copy(f, x);
    case GK_EW: case GK_ROW: return codegen_reads_copy(f, gr, x);
    case GK_SCATTER: case GK_RANDPERM: case GK_ASSIGN: return false;
    }
    return false;
}

/* A shadowed value that nothing but GEMMs, templates and column sums reading its bf16 copy uses (SwiGLU's gated
 * hidden, the mixer's merged output, a Linear's output gradient) needs no f32 store: that halves what its kernel
 * writes. Any other reader (a generated kernel, an expanded GEMM operand, an ASSIGN copy, the host) keeps the f32
 * value. */
static void mark_shadow_only(Fusion *f) {
    const Graph *g = f->g;
    bool *f32_read = xcalloc((size_t)g->nnodes, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nins; j++) {
            const Node *x = gr->ins[j];
            if (!reads_copy(f, gr, x)) f32_read[fus_owner(f, x)->id] = true;
        }
    }
    for (int id = 0; id < g->nnodes; id++)   /* (a packed output's copy is partial: its f32 output stays) */
        f->shadow_only[id] = f->shadow[id] && !f32_read[id] && !f->kept[id] && !packed_has_parts(g->nodes[id]);
    free(f32_read);
}

/* Packed backward outputs (packed_copy.h): bf16 copies of the parts that GEMMs (the scan's ddelta, for dt_proj's
 * gradients), generated kernels (the scan's dz and the conv's dx into the 4-direction merge) and templates (the
 * scan's du into the conv's SiLU backward) read, as the reference holds them in bf16; then the parts some other
 * reader (an expanded GEMM operand, a generated kernel that also reads a parameter-gradient part) still takes in f32. A part nobody reads
 * in f32 is not stored in f32. An output the host reads (kept, in AR_KEEP) has no copy. */
static void mark_part_copies(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nins; j++) {
            const Node *x = gr->ins[j], *o = fus_owner(f, x);
            if (!packed_has_parts(o) || f->kept[o->id]) continue;   /* (a kept value has no copy: AR_KEEP) */
            if (!gemm_operand(f, gr, x) && gr->kind != GK_EW && gr->kind != GK_ROW && gr->kind != GK_OPAQUE) continue;
            const int parts = packed_parts_read(f, gr, x, o);
            if (!(parts & PACKED_PART_OTHER)) {
                f->part_copy[o->id] |= (unsigned char)parts;
                f->shadow[o->id] = true;
            }
        }
    }
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nins; j++) {
            const Node *x = gr->ins[j];
            while (f->rowmap[x->id]) x = fus_src(f, x, 0);   /* a template reads the buffer under its row map */
            const Node *o = fus_owner(f, x);
            if (!packed_has_parts(o) || reads_copy(f, gr, x)) continue;
            f->part_f32[o->id] |= (unsigned char)(packed_parts_read(f, gr, x, o) & SCAN_PARTS);
        }
    }
}

/* bf16 precision: GEMM operands written by generated kernels get a bf16 shadow there (no cast kernel), and so do
 * template inputs (the conv1d and scan kernels take bf16 activations and gradients, as in the reference). */
static void mark_shadows(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        if (gr->kind == GK_OPAQUE) {
            /* not the conv backward: it measured slower with a bf16 dy (H200, ARM-B fine-tuning: 4.5 against
             * 3.5 ms per step), more than the bf16 store saves its producer */
            const OpKind op = gr->root->op;
            if (op == OP_CONV1D_BWD || op == OP_CONV1D_SILU_BWD || op == OP_CONV1D_BWD_X || op == OP_CONV1D_BWD_W)
                continue;
            for (int j = 0; j < gr->nins; j++) {
                int64_t off;
                if (shadowable(f, gr->ins[j])) f->shadow[view_owner(f, gr->ins[j], &off)->id] = true;
            }
            continue;
        }
        if (gr->kind != GK_GEMM) continue;
        const Node *m = group_gemm(f, gr).matmul;
        for (int s = 0; s < 2; s++) {
            int64_t off, col, ld;
            const Node *x = fus_src(f, m, s), *base = gemm_base(f, x, &col, &ld);
            if (plain_batch(m, x) && shadowable(f, base)) f->shadow[view_owner(f, base, &off)->id] = true;
        }
    }
    mark_part_copies(f);
    mark_shadow_only(f);
}

/* Can group gr read x (or the buffer under it) as bf16? Generated kernels and templates take each input's storage
 * type; a GEMM reads a bf16 operand directly unless it must first copy it out expanded. */
static bool reads_bf16(const Fusion *f, const Group *gr, const Node *x) {
    switch (gr->kind) {
    case GK_EW: case GK_ROW: case GK_SCATTER: case GK_OPAQUE: return true;
    case GK_GEMM: return gemm_operand(f, gr, x) || x == group_gemm(f, gr).acc;   /* C: D's storage (below) */
    case GK_RANDPERM: case GK_ASSIGN: return false;
    }
    return false;
}

/* Precision bf16 stores GEMM, conv1d (and its SiLU) and scan outputs in bf16, as autocast does (half the bytes
 * written and read), except weight gradients (A transposed: the contraction runs over tokens; the optimizer keeps
 * them f32), values the host reads and values some reader needs in f32. (Only generated kernels and the scan
 * backward write bf16 copies, so these never have one.) */
static void mark_bf16_outputs(Fusion *f) {
    const Graph *g = f->g;
    bool *ok = xcalloc((size_t)g->nnodes, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nouts; j++) {   /* (a conv1d group may also write silu(conv)) */
            const Node *n = gr->outs[j];
            bool gemm = gr->kind == GK_GEMM && !group_gemm(f, gr).matmul->i[0];
            bool conv = n->op == OP_CONV1D, scan = n->op == OP_SCAN;
            bool act = gr->kind == GK_OPAQUE && n->op == OP_SILU;
            ok[n->id] = (gemm || conv || scan || act) && n->dtype == DT_F32;
        }
    }
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nins; j++) {
            const Node *o = fus_owner(f, gr->ins[j]);
            if (!reads_bf16(f, gr, gr->ins[j])) ok[o->id] = false;
        }
    }
    for (int id = 0; id < g->nnodes; id++) if (f->kept[id]) ok[fus_owner(f, g->nodes[id])->id] = false;
    /* a GEMM epilogue's C has its D's storage type (cuBLASLt): both bf16 only when both may be */
    for (bool changed = true; changed;) {
        changed = false;
        for (int k = 0; k < f->ngroups; k++) {
            const Group *gr = &f->groups[k];
            const Node *acc = gr->kind == GK_GEMM ? group_gemm(f, gr).acc : NULL;
            if (!acc) continue;
            const int c = fus_owner(f, acc)->id, d = gr->root->id;
            if (ok[c] != ok[d]) { ok[c] = ok[d] = false; changed = true; }
        }
    }
    for (int id = 0; id < g->nnodes; id++) f->store_bf16[id] = ok[id];
    free(ok);
}

/* Training: a scan forward saves its chunk-start states for the backward of the same inputs (template.h), which
 * then skips its recompute pass (an eighth of its work), at the cost of the states' memory from the forward to the
 * backward (ARM-B fine-tuning: 151 MB per scan). ProgramOptions.scan_recompute keeps the recompute instead. */
static void mark_scan_states(Fusion *f) {
    for (int k = 0; k < f->ngroups; k++) {
        Node *bw = f->groups[k].root;
        if (bw->op != OP_SCAN_BWD) continue;
        for (int j = 0; j < k; j++) {
            Node *fw = f->groups[j].root;
            bool same = fw->op == OP_SCAN && !f->scan_pair[fw->id] && fw->nsrc + 1 == bw->nsrc;
            for (int s = 0; same && s < fw->nsrc; s++) same = fus_src(f, fw, s) == fus_src(f, bw, s);
            if (!same) continue;
            ScanSpec ss;
            scan_spec(fw, &ss);
            const size_t numel = scan_states_numel(&ss);
            if (numel) {
                f->scan_pair[fw->id] = bw;
                f->scan_pair[bw->id] = fw;
                f->states[fw->id] = (Buf){AR_ACT, 0, (int64_t)numel * 4};
            }
            break;
        }
    }
}

static BufRef shadow_ref(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = view_owner(f, x, &off);
    return (BufRef){f->sbuf[o->id].arena, f->sbuf[o->id].offset + off * 2};
}

/* A GEMM operand whose batch dims broadcast partially ([8] against [256, 8]) is copied out expanded to the
 * output's batch shape, so that one strided-batch GEMM covers it. */
static BufRef expand_operand(Program *p, Batch *b, SeenSet *seen, const Group *gr, const Node *x, Shape bs, int64_t ws_off,
                             char which) {
    Shape os = bs;
    os.ndim += 2;
    os.d[bs.ndim] = x->shape.d[x->shape.ndim - 2];
    os.d[bs.ndim + 1] = x->shape.d[x->shape.ndim - 1];
    int64_t numel = shape_numel(os);
    char name[64], *key = NULL, *body = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "k%d_expand_%c", gr->index, which);
    FILE *f = open_memstream(&key, &len);
    fprintf(f, "extern \"C\" __global__ void __launch_bounds__(256) %%s(const float* __restrict__ x, float* __restrict__ y) {\n    vmc_grid_entry();\n");
    fprintf(f, "    for (long long e = (long long)blockIdx.x * 256 + threadIdx.x; e < %lldLL; e += (long long)gridDim.x * 256) {\n",
            (long long)numel);
    fprintf(f, "        long long r = e, src = 0;\n");
    int64_t istride = 1;
    for (int k = os.ndim - 1; k >= 0; k--) {
        int kx = k - (os.ndim - x->shape.ndim);
        fprintf(f, "        { const long long c = r %% %lldLL; r /= %lldLL;", (long long)os.d[k], (long long)os.d[k]);
        if (kx >= 0 && x->shape.d[kx] != 1) fprintf(f, " src += c * %lldLL;", (long long)istride);
        fprintf(f, " }\n");
        if (kx >= 0) istride *= x->shape.d[kx];
    }
    fprintf(f, "        y[e] = x[src];\n    }\n}\n");
    fclose(f);
    f = open_memstream(&body, &len);
    fprintf(f, "/* %s: GEMM operand %c of group %d broadcast to its batch, %lld elements */\n", name, which, gr->index,
            (long long)numel);
    fprintf(f, key, name);
    fclose(f);
    Launch *l = add_launch(p, LK_KERNEL, gr->index, "gemm");
    snprintf(l->name, sizeof l->name, "%s", name);
    int64_t blocks = (numel + 255) / 256;
    l->grid[0] = (unsigned)(blocks > (1 << 20) ? (1 << 20) : blocks); l->grid[1] = l->grid[2] = 1;
    l->block[0] = 256; l->block[1] = l->block[2] = 1;
    set_args(l, 2);
    l->args[0] = bufref(p, x);
    l->args[1] = (BufRef){AR_WORK, PROGRAM_GEMM_WORKSPACE + ws_off};
    BufRef out = l->args[1];
    touch_node(l, p->f, x, false, false);
    touch(l, out, numel * 4, true);
    add_kernel(p, b, seen, p->nlaunches - 1, key, body, name);
    free(key);
    free(body);
    return out;
}

static void gemm(Program *p, Batch *b, SeenSet *seen, const Group *gr, int64_t *ws_need) {
    const GemmEpilogue epi = group_gemm(p->f, gr);
    const Node *n = epi.matmul, *a = fus_src(p->f, n, 0), *bb = fus_src(p->f, n, 1);
    int64_t acol, ald, bcol, bld;   /* column views: read in place from the value under the slice */
    const Node *abase = gemm_base(p->f, a, &acol, &ald), *bbase = gemm_base(p->f, bb, &bcol, &bld);
    GemmDesc d = {0};
    d.ta = n->i[0]; d.tb = n->i[1];
    int nd = n->shape.ndim, na = a->shape.ndim, nb = bb->shape.ndim;
    d.M = n->shape.d[nd - 2]; d.N = n->shape.d[nd - 1];
    d.K = d.ta ? a->shape.d[na - 2] : a->shape.d[na - 1];
    d.lda = ald ? ald : a->shape.d[na - 1]; d.ldb = bld ? bld : bb->shape.d[nb - 1];
    Shape bs = n->shape, as = a->shape, bbs = bb->shape;
    bs.ndim -= 2; as.ndim -= 2; bbs.ndim -= 2;
    int64_t nbatch = shape_numel(bs), nas = shape_numel(as), nbs = shape_numel(bbs);
    d.a = bufref(p, abase); d.b = bufref(p, bbase); d.c = bufref(p, gr->root);
    d.alpha = (float)epi.alpha;
    if (epi.acc) { d.acc = bufref(p, epi.acc); d.has_acc = true; }
    int64_t off = 0;
    d.c_bf16 = p->f->store_bf16[gr->root->id];
    ASSERT(!epi.acc || fus_bf16(p->f, epi.acc) == d.c_bf16, "GEMM epilogue: C and D of different types");
    if (nbs == 1 && !d.ta) { d.M *= nbatch; nbatch = 1; nas = 1; }   /* weight without batch: one tall GEMM */
    if (nas != 1 && nas != nbatch) {
        d.a = expand_operand(p, b, seen, gr, a, bs, off, 'a');
        off += align256(nbatch * d.M * d.K * 4);
        nas = nbatch;
    }
    if (nbs != 1 && nbs != nbatch) {
        d.b = expand_operand(p, b, seen, gr, bb, bs, off, 'b');
        off += align256(nbatch * d.K * d.N * 4);
        nbs = nbatch;
    }
    d.batch = nbatch;
    ASSERT((!ald && !bld) || nbatch == 1, "a column view read by a batched GEMM");
    d.sa = nas == 1 ? 0 : d.M * d.K;
    d.sb = nbs == 1 ? 0 : d.K * d.N;
    d.sc = d.M * d.N;
    /* elements each operand's pointer spans (a column view: the whole value under it) */
    int64_t ea = ald ? shape_numel(abase->shape) : (d.sa ? nbatch : 1) * d.M * d.K;
    int64_t eb = bld ? shape_numel(bbase->shape) : (d.sb ? nbatch : 1) * d.K * d.N;
    if (p->opt.bf16) {
        bool sa_ = d.a.arena == bufref(p, abase).arena && d.a.offset == bufref(p, abase).offset && has_bf16_copy(p->f, abase);
        bool sb_ = d.b.arena == bufref(p, bbase).arena && d.b.offset == bufref(p, bbase).offset && has_bf16_copy(p->f, bbase);
        /* a bf16-stored operand is read where it is; a shadowed one from its copy; anything else is cast */
        if (!fus_bf16(p->f, abase)) d.a = sa_ ? shadow_ref(p->f, abase) : to_bf16(p, b, seen, gr, abase, d.a, ea, off, 'a');
        if (!fus_bf16(p->f, bbase))
            d.b = sb_ ? shadow_ref(p->f, bbase) : to_bf16(p, b, seen, gr, bbase, d.b, eb, off + align256(ea * 2), 'b');
        d.bf16 = true;
        off += align256(ea * 2) + align256(eb * 2);
    }
    const int64_t es = d.bf16 ? 2 : 4;
    d.a.offset += acol * es;
    d.b.offset += bcol * es;
    if (off > *ws_need) *ws_need = off;
    Launch *l = add_launch(p, LK_GEMM, gr->index, "gemm");
    l->gemm = d;
    touch(l, d.a, (ea - acol) * es, false);
    touch(l, d.b, (eb - bcol) * es, false);
    touch(l, d.c, d.batch * d.M * d.N * (d.c_bf16 ? 2 : 4), true);
    if (d.has_acc) touch(l, d.acc, d.batch * d.M * d.N * (d.c_bf16 ? 2 : 4), false);
    snprintf(l->name, sizeof l->name, "gemm_%lldx%lldx%lld%s%s%s%s%s", (long long)d.M, (long long)d.N, (long long)d.K,
             d.ta ? "_ta" : "", d.tb ? "_tb" : "", d.batch > 1 ? "_batched" : "", d.alpha != 1.f ? "_scaled" : "",
             d.has_acc ? "_acc" : "");
    p->gemm_flops += 2 * d.M * d.N * d.K * d.batch;
    p->ngemms++;
}

/* ---------------------------------------------------------------- compile */
typedef struct Pool { Program *p; int next; pthread_mutex_t mu; char err[1024]; bool failed; } Pool;

static void *compile_worker(void *arg) {
    Pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        int k = pool->failed ? pool->p->nmodules : pool->next++;
        pthread_mutex_unlock(&pool->mu);
        if (k >= pool->p->nmodules) return NULL;
        Module *m = &pool->p->modules[k];
        char err[1024];
        if (!nvrtc_compile(m->src, m->label, pool->p->opt.arch, NULL, 0, &m->bin, err, sizeof err)) {
            pthread_mutex_lock(&pool->mu);
            if (!pool->failed) snprintf(pool->err, sizeof pool->err, "%.200s: %.800s", m->label, err);
            pool->failed = true;
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

static bool compile_all(Program *p, char *err, int errlen) {
    int nth = p->opt.threads > 0 ? p->opt.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nth < 1) nth = 1;
    if (nth > 64) nth = 64;
    Pool pool = {.p = p};
    pthread_mutex_init(&pool.mu, NULL);
    pthread_t th[64];
    for (int k = 0; k < nth; k++) pthread_create(&th[k], NULL, compile_worker, &pool);
    for (int k = 0; k < nth; k++) pthread_join(th[k], NULL);
    pthread_mutex_destroy(&pool.mu);
    if (pool.failed) { snprintf(err, (size_t)errlen, "%s", pool.err); return false; }
    for (int k = 0; k < p->nmodules; k++) p->ncached += p->modules[k].bin.from_cache;
    return true;
}

/* ---------------------------------------------------------------- batched tail */
enum { BATCH_PARAM_BYTES = 32000 };   /* kernel parameters by value: at most 32764 bytes (sm_70+, CUDA 12.1+) */

typedef struct TailBatch { int root, n, cap; int *members; } TailBatch;

/* A generated elementwise or row kernel of one block row (grid y and z 1), part of the step: may be batched. */
static bool batchable(const Program *p, const Launch *l) {
    if (l->kind != LK_KERNEL || l->once || l->bf16_cast || !l->rng_args || l->grid[1] != 1 || l->grid[2] != 1) return false;
    const GroupKind k = p->f->groups[l->group].kind;
    return k == GK_EW || k == GK_ROW;
}

/* Does module-in-making mod already define the batched kernel of this root (named root_x)? */
static bool module_has_batch(const Program *p, const Batch *mod, const char *root) {
    const size_t len = strlen(root);
    for (int k = 0; k < mod->launches.n; k++) {
        const char *nm = p->launches[(intptr_t)mod->launches.items[k]].name;
        if (!strncmp(nm, root, len) && !strcmp(nm + len, "_x")) return true;
    }
    return false;
}

/* One launch of the batch's kernel for all its members, in place of the last; the others are dropped (keep[]). */
static void batch_close(Program *p, Batch *mod, TailBatch *b, bool *keep) {
    Launch *last = &p->launches[b->members[b->n - 1]];
    if (b->n >= 2) {
        const Launch *root = &p->launches[b->root];
        KernelSource ks;
        codegen_group_batched(p->f, &p->f->groups[root->group], b->n, &ks);
        ASSERT(!strcmp(ks.name, root->name), "batched kernel %s named %s", root->name, ks.name);
        /* a second batch of one kernel (the first closed by a conflict) defines the same names: its own module.
         * (No model's step has one today; keeping the small gradient-norm sums in the tail, an experiment that
         * measured no faster, produced two and NVRTC refused the module.) */
        if (module_has_batch(p, mod, root->name)) batch_flush(p, mod);
        batch_add(p, mod, ks.body, root->name, b->members[b->n - 1]);   /* (the module is set when it is flushed) */
        kernel_source_free(&ks);
        BufRef *args = xmalloc(sizeof(BufRef) * (size_t)(b->n * last->nargs));
        for (int i = 0; i < b->n; i++) {
            Launch *m = &p->launches[b->members[i]];
            memcpy(args + (size_t)i * last->nargs, m->args, sizeof(BufRef) * (size_t)last->nargs);
            if (m == last) continue;
            for (int a = 0; a < m->nacc; a++) touch(last, m->acc[a].at, m->acc[a].bytes, m->acc[a].write);
            keep[b->members[i]] = false;
        }
        free(last->args);
        last->args = args;
        last->instances = b->n;
        last->grid[1] = (unsigned)b->n;
        last->same_as = -1;
        char name[sizeof last->name];
        memcpy(name, root->name, sizeof name);
        snprintf(last->name, sizeof last->name, "%.*s_x", (int)sizeof name - 3, name);
        p->nkernels++;
    }
    b->n = 0;
}

/* The launches after the step's last GEMM or template are mostly the optimizer's updates: a small kernel per
 * parameter, one kernel text for the parameters of one shape. Launches of one kernel that nothing between them
 * conflicts with (streams.c launches_conflict) become one launch at the place of the last (codegen_group_batched): the
 * hundreds of launches of the step's latency-bound tail, each a few microseconds and a hop in the step's graph,
 * become a few. */
static void batch_tail(Program *p) {
    const int n = p->nlaunches, last_heavy = fusion_last_heavy_group(p->f);
    int first = 0;   /* the first launch after those of the last GEMM or template group */
    while (first < n && p->launches[first].group <= last_heavy) first++;   /* (launches follow group order) */
    bool *keep = xmalloc(sizeof(bool) * (size_t)(n ? n : 1));
    for (int k = 0; k < n; k++) keep[k] = true;
    TailBatch *open = NULL;
    Batch mod = {0};
    int nopen = 0, capopen = 0;
    for (int q = first; q < n; q++) {
        const Launch *l = &p->launches[q];
        const int root = batchable(p, l) ? (l->same_as >= 0 ? l->same_as : q) : -1;
        bool joined = false;
        for (int i = 0; i < nopen; i++) {
            TailBatch *b = &open[i];
            bool conflict = false;
            for (int j = 0; j < b->n && !conflict; j++) conflict = launches_conflict(&p->launches[b->members[j]], l);
            const bool fits = (size_t)(b->n + 1) * (size_t)(l->nargs + 1) * 8 <= BATCH_PARAM_BYTES;
            if (b->root == root && !conflict && fits) {
                if (b->n == b->cap) b->members = xrealloc(b->members, sizeof(int) * (size_t)(b->cap = 2 * b->cap + 8));
                b->members[b->n++] = q;
                joined = true;
            } else if (conflict || b->root == root) {
                batch_close(p, &mod, b, keep);
                free(b->members);
                open[i--] = open[--nopen];
            }
        }
        if (root < 0 || joined) continue;
        if (nopen == capopen) open = xrealloc(open, sizeof(TailBatch) * (size_t)(capopen = 2 * capopen + 8));
        open[nopen] = (TailBatch){root, 1, 8, xmalloc(sizeof(int) * 8)};
        open[nopen++].members[0] = q;
    }
    for (int i = 0; i < nopen; i++) { batch_close(p, &mod, &open[i], keep); free(open[i].members); }
    free(open);
    batch_flush(p, &mod);
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (keep[k]) { p->launches[m++] = p->launches[k]; continue; }
        free(p->launches[k].args);
        free(p->launches[k].acc);
    }
    p->nlaunches = m;
    for (int k = 0; k < m; k++) p->launches[k].same_as = -1;   /* (indices moved; modules are resolved) */
    free(keep);
}

/* A memset zeroes an output that its kernel then accumulates into; it was added just before that kernel, so in the
 * step's graph it sat between the kernel and the producers the kernel waits for: one more hop (a few microseconds)
 * on the path. Each memset moves up to just after the last launch that touches its memory (launches_conflict),
 * where the stream plan finds it a place beside earlier work; the kernel then waits for a memset long done. */
static void hoist_memsets(Program *p) {
    for (int k = 0; k < p->nlaunches; k++) {
        if (p->launches[k].kind != LK_MEMSET) continue;
        int to = k;   /* the memset's new place: after the last earlier launch it conflicts with */
        while (to > 0 && !launches_conflict(&p->launches[to - 1], &p->launches[k])) to--;
        if (to == k) continue;
        const Launch m = p->launches[k];
        memmove(&p->launches[to + 1], &p->launches[to], sizeof(Launch) * (size_t)(k - to));
        p->launches[to] = m;
    }
}

static bool dump_modules(const Program *p, char *err, int errlen) {
    mkdir(p->opt.dump_dir, 0777);
    for (int k = 0; k < p->nmodules; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cu", p->opt.dump_dir, p->modules[k].label);
        FILE *f = fopen(path, "w");
        if (!f) { snprintf(err, (size_t)errlen, "%s: cannot write", path); return false; }
        fputs(p->modules[k].src, f);
        fclose(f);
    }
    return true;
}

Program *program_build(const Graph *g, Node *const *keep, int nkeep, const ProgramOptions *opt, char *err, int errlen) {
    double t0 = now_s();
    Program *p = xcalloc(1, sizeof *p);
    p->g = g;
    p->opt = *opt;
    p->f = pass_simplify(g, keep, nkeep);
    pass_fuse(p->f);
    if (opt->bf16) {
        mark_shadows(p->f);
        mark_bf16_outputs(p->f);
        if (!opt->no_into_place) packed_copies_into_place(p->f);
    }
    if (!opt->scan_recompute) mark_scan_states(p->f);
    p->params_constant = true;   /* (no ASSIGN: an inference step) */
    for (int k = 0; k < p->f->ngroups; k++) p->params_constant &= p->f->groups[k].kind != GK_ASSIGN;
    p->f->reuse_delay = p->params_constant || opt->reuse_delay == PROGRAM_REUSE_AT_ONCE ? 0
                       : opt->reuse_delay > 0                             ? opt->reuse_delay
                                                                          : PROGRAM_REUSE_DELAY;
    pass_plan(p->f);
    Batch b = {0};
    SeenSet seen = {0};
    int64_t ws_need = 0;
    p->param_value = xcalloc((size_t)g->nnodes + 1, sizeof(Node *));
    p->value_copy = xmalloc(sizeof(BufRef) * ((size_t)g->nnodes + 1));
    for (int k = 0; k <= g->nnodes; k++) p->value_copy[k] = NO_BUF;
    for (int k = 0; k < p->f->ngroups; k++) {
        const Group *a = &p->f->groups[k];
        if (a->kind != GK_ASSIGN) continue;
        const Node *t = fus_src(p->f, a->root, 0), *v = fus_src(p->f, a->root, 1);
        const int gi = p->f->group_of[v->id];
        if (a->inplace && t->op == OP_PARAM && gi >= 0 && p->f->groups[gi].kind == GK_EW) p->param_value[t->id] = v;
    }
    bool ok = true;
    for (int k = 0; k < p->f->ngroups && ok; k++) {
        const Group *gr = &p->f->groups[k];
        switch (gr->kind) {
        case GK_EW: case GK_ROW: case GK_SCATTER: case GK_RANDPERM:
            if (!gr->elided) generated(p, &b, &seen, gr);   /* (elided: its inputs' templates write it) */
            break;
        case GK_GEMM: gemm(p, &b, &seen, gr, &ws_need); break;
        case GK_OPAQUE: ok = opaque(p, &seen, gr, err, errlen); break;
        case GK_ASSIGN: {
            if (gr->inplace) break;   /* the value's kernel already wrote the target */
            Launch *l = add_launch(p, LK_COPY, gr->index, "optimizer");
            l->dst = bufref(p, fus_src(p->f, gr->root, 0));
            l->src = bufref(p, fus_src(p->f, gr->root, 1));
            l->bytes = shape_numel(gr->root->shape) * 4;
            touch(l, l->src, l->bytes, false);
            touch(l, l->dst, l->bytes, true);
            break;
        }
        }
    }
    batch_flush(p, &b);
    for (int k = 0; k < p->nlaunches; k++)
        if (p->launches[k].same_as >= 0) p->launches[k].module = p->launches[p->launches[k].same_as].module;
    if (!p->params_constant) {   /* (a training step's graph spans several streams: streams.h) */
        batch_tail(p);
        hoist_memsets(p);
    }
    for (int k = 0; k < seen.n; k++) free(seen.items[k].key);
    free(seen.items);
    memcpy(p->arena_bytes, p->f->arena_bytes, sizeof p->arena_bytes);
    p->arena_bytes[AR_WORK] = PROGRAM_GEMM_WORKSPACE + ws_need;
    p->arena_bytes[AR_PARAM] += p->param_copy_bytes;
    p->codegen_s = now_s() - t0;
    if (ok && opt->dump_dir) ok = dump_modules(p, err, errlen);
    if (ok && !opt->no_compile) {
        double t1 = now_s();
        ok = compile_all(p, err, errlen);
        p->compile_s = now_s() - t1;
    }
    if (!ok) { program_free(p); return NULL; }
    return p;
}

void program_free(Program *p) {
    if (!p) return;
    for (int k = 0; k < p->nlaunches; k++) { free(p->launches[k].args); free(p->launches[k].acc); }
    free(p->param_value);
    free(p->value_copy);
    for (int k = 0; k < p->nmodules; k++) {
        free(p->modules[k].src);
        free(p->modules[k].label);
        nvrtc_binary_free(&p->modules[k].bin);
    }
    free(p->launches);
    free(p->modules);
    fusion_free(p->f);
    free(p);
}

void program_summary(const Program *p, FILE *out) {
    int counts[LK_COPY + 1] = {0};
    for (int k = 0; k < p->nlaunches; k++) counts[p->launches[k].kind]++;
    fprintf(out, "%d kernels (%d generated modules + templates, %d from the NVRTC cache) in %d launches, %d GEMMs, "
                 "%d memsets, %d copies; %d groups\n", p->nkernels, p->nmodules, p->ncached, counts[LK_KERNEL], p->ngemms,
            counts[LK_MEMSET], counts[LK_COPY], p->f->ngroups);
    fprintf(out, "memory:");
    for (int k = 0; k < AR_COUNT_; k++)
        fprintf(out, " %s %.1f MiB%s", arena_kind_name((ArenaKind)k), (double)p->arena_bytes[k] / (1 << 20),
                k + 1 < AR_COUNT_ ? "," : "\n");
    fprintf(out, "activations without reuse: %.1f MiB; GEMM work per step: %.3f GFLOP\n",
            (double)p->f->act_naive_bytes / (1 << 20), (double)p->gemm_flops * 1e-9);
    fprintf(out, "codegen %.3f s, NVRTC compile %.3f s\n", p->codegen_s, p->compile_s);
}
