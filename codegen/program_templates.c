/* program_templates.c — the opaque ops' launches: conv1d, selective-scan and attention template instantiations with
 * their arguments (row maps, bf16 copies, copies into place, saved chunk states) and the memsets of what they
 * accumulate. */
#include "program_impl.h"
#include "env_int.h"
#include <stdlib.h>
#include <string.h>

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

static void attn_spec(const Node *n, AttnSpec *s) {
    const Node *q = n->src[0], *k = n->src[1];
    memset(s, 0, sizeof *s);
    s->B = (int)q->shape.d[0]; s->L = (int)q->shape.d[1]; s->S = (int)k->shape.d[1];
    s->H = (int)n->i[0]; s->E = (int)(q->shape.d[2] / n->i[0]);
    s->scale = (float)n->f[0];
    s->q = s->k = s->v = s->mask = s->dout = s->out = DT_F32;
}

/* Is some template argument not 16-byte aligned (a view at an odd offset)? */
static bool unaligned(const BufRef *args, int n) {
    for (int k = 0; k < n; k++) if (args[k].arena != AR_COUNT_ && args[k].offset % 16) return true;
    return false;
}

/* The storage type a template reads input x in: that of the buffer under x's row map (if any). */
static DType stored(const Fusion *f, const Node *x) {
    x = fus_unmapped(f, x);
    return fus_bf16(f, x) || pg_has_bf16_copy(f, x) ? DT_BF16 : DT_F32;
}

/* The memory a template reads for unmapped input x. */
static BufRef template_in(const Program *p, const Node *x) {
    return pg_has_bf16_copy(p->f, x) ? pg_shadow_ref(p->f, x) : pg_bufref(p, x);
}

/* The buffer a template reads for input x and, when x is a row-mapped gather/slice chain (pass_fuse), the row map
 * down to that buffer. The row table is malloc'd into *table (NULL when unmapped); free it after instantiation. */
static BufRef row_mapped(const Program *p, const Node *x, RowMap *m, int32_t **table) {
    const Fusion *f = p->f;
    memset(m, 0, sizeof *m);
    *table = NULL;
    if (!f->rowmap[x->id]) return template_in(p, x);
    int64_t off;
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)x->shape.d[1]);
    const Node *cur = fus_row_chain(f, x, &off, rows);
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
    BufRef r = pg_shadow_ref(f, c);
    r.offset += f->into_col[n->id] * 2;
    return r;
}

/* The chunk-start states a scan forward saves and its backward reads (pg_mark_scan_states), NULL for any other node. */
static const Buf *scan_states(const Fusion *f, const Node *n) {
    if ((n->op != OP_SCAN && n->op != OP_SCAN_BWD) || !f->scan_pair[n->id]) return NULL;
    return &f->states[n->op == OP_SCAN ? n->id : f->scan_pair[n->id]->id];
}

/* Template input v: the buffer under its row map (if any) in the type read, of which it moves v's rows only (a
 * direction's permutation of all of them, or a column block, say x of in_proj's [x | z]). */
static void touch_template_input(Launch *l, const Program *p, const Node *v) {
    const Node *x = fus_unmapped(p->f, v);
    pg_touch_read_part(l, p, x, pg_has_bf16_copy(p->f, x), shape_numel(v->shape));
}

/* The convs whose launch is gr's besides its own (conv_multi.c), in schedule order; returns how many. */
static int conv_multi_members(const Fusion *f, const Group *gr, const Node **more) {
    int n = 0;
    for (int k = 0; k < f->ngroups; k++) {
        const Group *o = &f->groups[k];
        if (o->elided && o->kind == GK_OPAQUE && f->conv_lead[o->root->id] == gr->root) more[n++] = o->root;
    }
    return n;
}

/* The launch of a set of CONV1D_SILU_BWD (conv_multi.c): all[0 .. n) its members and lead; args as
 * template_conv1d_bwd_multi's. Returns the source (NULL: no template). */
static char *conv_bwd_multi(Program *p, const Node *const *all, int n, BufRef *args, int *nargs, KernelLaunch *kl) {
    const Fusion *f = p->f;
    const Node *lead = all[n - 1], *sum_to = f->conv_sum_to[lead->id];
    ASSERT(sum_to, "conv1d backward multi: no direction takes the sum");
    Conv1dSpec cs;
    conv_spec(lead, &cs);
    cs.dy = stored(f, fus_src(f, lead, 0));
    cs.x = stored(f, fus_src(f, lead, 1));
    if (cs.has_dy2) cs.dy2 = stored(f, fus_src(f, lead, 4));
    const bool copy = f->shadow[sum_to->id] && (f->part_copy[sum_to->id] & CONV_PART_DX);
    cs.out = copy ? DT_BF16 : DT_F32;
    RowMap xm[CONV_MULTI_MAX_DIRS], dym[CONV_MULTI_MAX_DIRS], dy2m[CONV_MULTI_MAX_DIRS];
    int32_t *tabs[3 * CONV_MULTI_MAX_DIRS] = {0};
    memset(dy2m, 0, sizeof dy2m);
    *nargs = 0;
    args[(*nargs)++] = row_mapped(p, fus_src(f, all[0], 1), &xm[0], &tabs[0]);
    args[(*nargs)++] = copy ? pg_shadow_ref(f, sum_to) : pg_bufref(p, sum_to);   /* its dx part starts the buffer */
    const int64_t nx = (int64_t)cs.B * cs.L * cs.D;
    for (int j = 0; j < CONV_MULTI_MAX_DIRS; j++) {   /* dy, dy2, w, bias, dw, db; NULL past the last */
        if (j >= n) {
            for (int k = 0; k < 6; k++) args[(*nargs)++] = NO_BUF;
            continue;
        }
        if (j > 0) {
            const BufRef x = row_mapped(p, fus_src(f, all[j], 1), &xm[j], &tabs[3 * j]);
            ASSERT(x.arena == args[0].arena && x.offset == args[0].offset, "conv1d backward multi: inputs differ");
        }
        args[(*nargs)++] = row_mapped(p, fus_src(f, all[j], 0), &dym[j], &tabs[3 * j + 1]);
        args[(*nargs)++] = cs.has_dy2 ? row_mapped(p, fus_src(f, all[j], 4), &dy2m[j], &tabs[3 * j + 2]) : NO_BUF;
        for (int k = 2; k < 4; k++) args[(*nargs)++] = pg_bufref(p, fus_src(f, all[j], k));
        const BufRef out = pg_bufref(p, all[j]);
        args[(*nargs)++] = (BufRef){out.arena, out.offset + 4 * nx};
        args[(*nargs)++] = (BufRef){out.arena, out.offset + 4 * (nx + (int64_t)cs.D * cs.K)};
    }
    char *src = template_conv1d_bwd_multi(&cs, n, xm, dym, dy2m, kl);
    for (int k = 0; k < 3 * CONV_MULTI_MAX_DIRS; k++) free(tabs[k]);
    return src;
}

/* The bytes written where l's access to buffer `at` (a write) is listed: the whole buffer orders the launch, but a
 * packed backward output is written only in some parts. */
static void written_part(Launch *l, BufRef at, int64_t moved) {
    for (int a = 0; a < l->nacc; a++)
        if (l->acc[a].write && l->acc[a].at.arena == at.arena && l->acc[a].at.offset == at.offset) l->acc[a].moved = moved;
}

/* What a scan backward writes of its packed f32 output: the parts not left to the bf16 copy (du, ddelta, dz) and
 * the small sums (dA_log, dB, dC, dD, ddelta_bias), plus, without saved states, the chunk-start states parked in the
 * du/ddelta rows; of the copy the parts bf16 readers take, dz's perhaps in place in another buffer (Fusion.into). */
static void scan_bwd_written(Launch *l, const Program *p, const Node *n, const ScanSpec *s) {
    const Fusion *f = p->f;
    const int64_t bld = (int64_t)s->B * s->L * s->D;
    const int parts = s->gated ? SCAN_PARTS : SCAN_PART_DU | SCAN_PART_DDL;   /* the [B, L, D] parts of the layout */
    const int64_t f32 = (int64_t)scan_bwd_numel(s) - bld * __builtin_popcount(s->skip_f32_parts & parts) +
                        (s->states ? 0 : (int64_t)scan_states_numel(s));
    written_part(l, pg_bufref(p, n), 4 * f32);
    if (!f->shadow[n->id]) return;
    int copied = __builtin_popcount(s->copy_parts & parts);
    if (f->into[n->id]) {   /* (only dz's copy goes into place) */
        ASSERT(s->copy_parts & SCAN_PART_DZ, "scan backward: a copy into place without dz's copy");
        copied--;
        written_part(l, pg_shadow_ref(f, f->into[n->id]), 2 * bld);
    }
    written_part(l, pg_shadow_ref(f, n), 2 * bld * copied);
}

/* What a conv1d backward (alone, or one launch for several directions summing their dx into `sum_to`'s) writes of
 * each direction's packed f32 output [dx | dw | db]: dw and db, and dx in f32 or as its bf16 copy where it is
 * written at all. */
static void conv_bwd_written(Launch *l, const Program *p, const Node *x, const Node *sum_to) {
    const Fusion *f = p->f;
    Conv1dSpec cs;
    conv_spec(x, &cs);
    const int64_t nx = (int64_t)cs.B * cs.L * cs.D;
    const bool dx = !sum_to || x == sum_to;
    const bool copy = dx && f->shadow[x->id] && (f->part_copy[x->id] & CONV_PART_DX);
    const bool f32 = dx && (!copy || (f->part_f32[x->id] & CONV_PART_DX));
    written_part(l, pg_bufref(p, x), 4 * ((f32 ? nx : 0) + (int64_t)cs.D * cs.K + cs.D));
    if (!f->shadow[x->id]) return;
    if (f->into[x->id]) written_part(l, pg_shadow_ref(f, f->into[x->id]), copy ? 2 * nx : 0);
    else written_part(l, pg_shadow_ref(f, x), copy ? 2 * nx : 0);
}

/* What an attention backward writes: the parts of its packed f32 [dq | dk | dv] not left to the bf16 copy, and of
 * the copy the parts bf16 readers take. */
static void attn_bwd_written(Launch *l, const Program *p, const Node *n, const AttnSpec *s) {
    const int64_t nq = (int64_t)s->B * s->L * s->H * s->E, nk = (int64_t)s->B * s->S * s->H * s->E;
    const int64_t len[3] = {nq, nk, nk};
    const int part[3] = {ATTN_PART_DQ, ATTN_PART_DK, ATTN_PART_DV};
    int64_t f32 = 0, copy = 0;
    for (int j = 0; j < 3; j++) {
        if (!(s->skip_f32_parts & part[j])) f32 += len[j];
        if (s->copy_parts & part[j]) copy += len[j];
    }
    written_part(l, pg_bufref(p, n), 4 * f32);
    if (p->f->shadow[n->id]) written_part(l, pg_shadow_ref(p->f, n), 2 * copy);
}

bool pg_opaque(Program *p, SeenSet *seen, const Group *gr, char *err, int errlen) {
    const Fusion *f = p->f;
    const Node *n = gr->root;
    const Node *more[CONV_MULTI_MAX_DIRS];   /* conv1d: the convs of other row orders its launch computes too */
    int nmore = 0;
    KernelLaunch kl;
    char *src = NULL;
    BufRef args[32];
    int nargs = 0;
    ScanSpec ss;
    const Node *er = n->op == OP_SCAN ? f->scan_epi[n->id] : NULL;   /* an elementwise group as its epilogue */
    const Group *epi = er ? &f->groups[f->group_of[er->id]] : NULL;
    Conv1dSpec cs;
    AttnSpec as;
    int32_t *tables[9] = {0};   /* row tables of mapped inputs, by source position */
    switch ((int)n->op) {     /* K_OPAQUE ops only */
    case OP_SCAN: case OP_SCAN_BWD: {
        scan_spec(n, &ss);
        RowMap *maps[9] = {&ss.u_map, &ss.delta_map, NULL, &ss.bm_map, &ss.cm_map, NULL, NULL, &ss.z_map, &ss.dout_map};
        for (int k = 0; k < (n->op == OP_SCAN ? 8 : 9); k++) {
            const Node *x = scan_arg(f, n, k);
            args[nargs++] = !x ? NO_BUF : maps[k] ? row_mapped(p, x, maps[k], &tables[k]) : template_in(p, x);
        }
        args[nargs++] = epi ? NO_BUF : pg_bufref(p, n);   /* (with an epilogue, y is not stored) */
        if (n->op == OP_SCAN_BWD) {   /* the bf16 copies of the parts bf16 readers take (program_bf16.c) */
            const bool copy = f->shadow[n->id];
            ss.copy_parts = copy ? f->part_copy[n->id] : 0;
            ss.skip_f32_parts = copy ? SCAN_PARTS & ~f->part_f32[n->id] : 0;
            args[nargs++] = copy ? pg_shadow_ref(f, n) : NO_BUF;
        }
        const Buf *st = scan_states(f, n);   /* chunk-start states (pg_mark_scan_states) */
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
        char *epi_src = epi ? codegen_scan_epilogue(f, epi, n, f->scan_epi_tok[n->id], p->opt.scan_epi == 2) : NULL;
        ss.epi = epi_src;
        src = n->op == OP_SCAN ? template_scan_fwd(&ss, &kl) : template_scan_bwd(&ss, &kl);
        free(epi_src);
        break;
    }
    case OP_ATTN: case OP_ATTN_BWD: {
        const bool bwd = n->op == OP_ATTN_BWD;
        attn_spec(n, &as);
        as.smem_limit = template_smem_limit(p->opt.arch);
        RowMap *maps[5] = {&as.q_map, &as.k_map, &as.v_map, NULL, &as.dout_map};
        for (int k = 0; k < n->nsrc; k++) {
            const Node *x = fus_src(f, n, k);
            args[nargs++] = maps[k] ? row_mapped(p, x, maps[k], &tables[k]) : template_in(p, x);
        }
        args[nargs++] = pg_bufref(p, n);
        as.q = stored(f, fus_src(f, n, 0));
        as.k = stored(f, fus_src(f, n, 1));
        as.v = stored(f, fus_src(f, n, 2));
        as.mask = stored(f, fus_src(f, n, 3));
        if (bwd) {   /* the bf16 copies of the parts bf16 readers take (program_bf16.c) */
            const bool copy = f->shadow[n->id];
            as.copy_parts = copy ? f->part_copy[n->id] : 0;
            as.skip_f32_parts = copy ? ATTN_PARTS & ~f->part_f32[n->id] : 0;
            args[nargs++] = copy ? pg_shadow_ref(f, n) : NO_BUF;
            as.dout = stored(f, fus_src(f, n, 4));
        } else {
            as.out = f->store_bf16[n->id] ? DT_BF16 : DT_F32;
        }
        src = bwd ? template_attn_bwd(&as, &kl) : template_attn_fwd(&as, &kl);
        break;
    }
    case OP_CONV1D: {
        conv_spec(n, &cs);
        cs.silu = f->conv_silu[n->id];
        cs.x = stored(f, fus_src(f, n, 0));
        cs.out = f->store_bf16[n->id] ? DT_BF16 : DT_F32;
        nmore = conv_multi_members(f, gr, more);
        if (nmore) {
            RowMap maps[CONV_MULTI_MAX_DIRS];
            int32_t *mtables[CONV_MULTI_MAX_DIRS] = {0};
            const Node *all[CONV_MULTI_MAX_DIRS] = {n};
            memcpy(all + 1, more, sizeof(Node *) * (size_t)nmore);
            args[nargs++] = row_mapped(p, fus_src(f, n, 0), &maps[0], &mtables[0]);
            for (int j = 0; j < CONV_MULTI_MAX_DIRS; j++) {   /* w, bias, y of each direction; NULL past the last */
                if (j > 0 && j <= nmore) {
                    const BufRef x = row_mapped(p, fus_src(f, all[j], 0), &maps[j], &mtables[j]);
                    ASSERT(x.arena == args[0].arena && x.offset == args[0].offset, "conv1d multi: inputs differ");
                }
                for (int k = 1; k < 3; k++) args[nargs++] = j <= nmore ? pg_bufref(p, fus_src(f, all[j], k)) : NO_BUF;
                args[nargs++] = j <= nmore ? pg_bufref(p, all[j]) : NO_BUF;
            }
            cs.unaligned = unaligned(args, nargs);
            src = template_conv1d_fwd_multi(&cs, nmore + 1, maps, &kl);
            ASSERT(src, "conv1d multi: %lld input rows do not fit shared memory", (long long)maps[0].lrows);
            for (int j = 0; j <= nmore; j++) free(mtables[j]);
            break;
        }
        args[nargs++] = row_mapped(p, fus_src(f, n, 0), &cs.x_map, &tables[0]);
        for (int k = 1; k < 3; k++) args[nargs++] = pg_bufref(p, fus_src(f, n, k));
        args[nargs++] = pg_bufref(p, n);
        const Node *act = gr->nouts > 1 ? gr->outs[1] : NULL;   /* silu(conv), pass_fuse's conv_silu_out */
        ASSERT(!act || (act->op == OP_SILU && gr->nouts == 2), "conv1d group outputs");
        cs.silu_out = act != NULL;
        cs.out2 = act && f->store_bf16[act->id] ? DT_BF16 : DT_F32;
        args[nargs++] = act ? pg_bufref(p, act) : NO_BUF;
        cs.unaligned = unaligned(args, nargs);
        src = template_conv1d_fwd(&cs, &kl);
        break;
    }
    case OP_CONV1D_BWD_X: case OP_CONV1D_BWD_W: {
        conv_spec(n, &cs);
        bool bx = n->op == OP_CONV1D_BWD_X;
        BufRef dy = row_mapped(p, fus_src(f, n, 0), &cs.dy_map, &tables[0]);
        BufRef other = bx ? pg_bufref(p, fus_src(f, n, 1)) : row_mapped(p, fus_src(f, n, 1), &cs.x_map, &tables[1]);
        cs.dy = stored(f, fus_src(f, n, 0));
        cs.x = bx ? cs.dy : stored(f, fus_src(f, n, 1));
        if (bx) cs.x_map = cs.dy_map;   /* x is not needed: dy stands in, read the same way */
        /* (dy, x, w, dx, dw, db): inputs a gradient does not need get a valid stand-in, outputs not wanted NULL */
        args[0] = dy; args[1] = bx ? dy : other; args[2] = bx ? other : dy;
        args[3] = bx ? pg_bufref(p, n) : NO_BUF; args[4] = bx ? NO_BUF : pg_bufref(p, n);
        args[5] = args[6] = args[7] = args[8] = NO_BUF;
        nargs = 9;
        cs.unaligned = unaligned(args, nargs);
        src = template_conv1d_bwd(&cs, &kl);
        break;
    }
    case OP_CONV1D_BWD: case OP_CONV1D_SILU_BWD: {   /* packed [dx | dw | db]; the SiLU's: + bias [, dy2] */
        conv_spec(n, &cs);
        nmore = conv_multi_members(f, gr, more);
        if (nmore) {   /* the set's launch, at its last member (conv_multi.c) */
            const Node *all[CONV_MULTI_MAX_DIRS];
            memcpy(all, more, sizeof(Node *) * (size_t)nmore);
            all[nmore] = n;
            src = conv_bwd_multi(p, all, nmore + 1, args, &nargs, &kl);
            break;
        }
        cs.dy = stored(f, fus_src(f, n, 0));
        cs.x = stored(f, fus_src(f, n, 1));
        args[0] = row_mapped(p, fus_src(f, n, 0), &cs.dy_map, &tables[0]);
        args[1] = row_mapped(p, fus_src(f, n, 1), &cs.x_map, &tables[1]);
        args[2] = pg_bufref(p, fus_src(f, n, 2));
        BufRef out = pg_bufref(p, n);
        int64_t nx = (int64_t)cs.B * cs.L * cs.D;
        args[3] = out;
        args[4] = (BufRef){out.arena, out.offset + 4 * nx};
        args[5] = (BufRef){out.arena, out.offset + 4 * (nx + (int64_t)cs.D * cs.K)};
        args[6] = cs.silu_dy ? pg_bufref(p, fus_src(f, n, 3)) : NO_BUF;
        args[7] = NO_BUF;
        if (cs.has_dy2) {
            cs.dy2 = stored(f, fus_src(f, n, 4));
            args[7] = row_mapped(p, fus_src(f, n, 4), &cs.dy2_map, &tables[4]);
        }
        cs.copy_dx = f->shadow[n->id] && (f->part_copy[n->id] & CONV_PART_DX);   /* program_bf16.c */
        cs.skip_f32_dx = cs.copy_dx && !(f->part_f32[n->id] & CONV_PART_DX);
        args[8] = !cs.copy_dx ? NO_BUF : f->into[n->id] ? into_ref(f, n, &cs.dx_copy_ld) : pg_shadow_ref(f, n);
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
    int first = pg_seen_find(seen, src, p->nlaunches + kl.nzero);   /* the kernel launch added below */
    int m = first >= 0 ? p->launches[first].module : pg_add_module(p, src, label);
    if (first >= 0) free(src);
    const char *kclass = codegen_group_class(f, gr);
    for (int k = 0; k < kl.nzero; k++) {
        Launch *z = pg_add_launch(p, LK_MEMSET, gr->index, kclass);
        z->dst = args[kl.zero[k].param];
        ASSERT(z->dst.arena != AR_COUNT_, "zeroing a missing buffer");
        z->dst.offset += (int64_t)kl.zero[k].offset;
        z->bytes = (int64_t)kl.zero[k].bytes;
        pg_touch(z, z->dst, z->bytes, true);
    }
    Launch *l = pg_add_launch(p, LK_KERNEL, gr->index, kclass);
    l->module = m;
    if (n->op == OP_SCAN || n->op == OP_SCAN_BWD) l->sfu_ops = template_scan_sfu_ops(&ss, n->op == OP_SCAN_BWD);
    for (int k = 0; epi && k < epi->nmembers; k++)   /* the epilogue's sigmoids: exp2 and a reciprocal an element */
        if (epi->members[k]->op == OP_SILU || epi->members[k]->op == OP_SIGMOID) l->sfu_ops += 2.0 * shape_numel(epi->dom);
    if (n->op == OP_ATTN || n->op == OP_ATTN_BWD) l->sfu_ops = (double)as.B * as.H * as.L * as.S;   /* an exp a score */
    snprintf(l->name, sizeof l->name, "%s", kl.name);
    memcpy(l->grid, kl.grid, sizeof l->grid);
    memcpy(l->block, kl.block, sizeof l->block);
    l->smem = kl.smem;
    pg_set_args(l, nargs + (epi ? pg_group_nargs(f, epi) : 0));
    memcpy(l->args, args, sizeof(BufRef) * (size_t)nargs);
    for (int k = 0; k < n->nsrc; k++) touch_template_input(l, p, fus_src(f, n, k));
    if (epi) pg_group_args(p, l, epi, nargs, n);   /* the epilogue's inputs and outputs, y itself not stored */
    for (int k = 0; k < gr->nouts && !epi; k++) pg_touch_node(l, p, gr->outs[k], false, true);
    for (int j = 0; j < nmore; j++) {   /* the other directions' inputs and outputs (conv_multi.c) */
        for (int k = 0; k < more[j]->nsrc; k++) touch_template_input(l, p, fus_src(f, more[j], k));
        pg_touch_node(l, p, more[j], false, true);
        if (f->shadow[more[j]->id]) pg_touch_node(l, p, more[j], true, true);
    }
    if (f->shadow[n->id] && !epi) pg_touch_node(l, p, n, true, true);
    if (f->into[n->id]) pg_touch_node(l, p, f->into[n->id], true, true);
    const Buf *st = scan_states(f, n);   /* written by the forward, read by the backward */
    if (st) pg_touch(l, (BufRef){st->arena, st->offset}, st->bytes, n->op == OP_SCAN);
    if (n->op == OP_SCAN_BWD) scan_bwd_written(l, p, n, &ss);
    if (n->op == OP_ATTN_BWD) attn_bwd_written(l, p, n, &as);
    if (n->op == OP_CONV1D_BWD || n->op == OP_CONV1D_SILU_BWD) {
        const Node *sum_to = nmore ? f->conv_sum_to[n->id] : NULL;
        conv_bwd_written(l, p, n, sum_to);
        for (int j = 0; j < nmore; j++) conv_bwd_written(l, p, more[j], sum_to);
    }
    if (first >= 0) l->same_as = first;
    else p->nkernels++;
    return true;
}

/* Training: a scan forward saves its chunk-start states for the backward of the same inputs (template.h), which
 * then skips its recompute pass (an eighth of its work), at the cost of the states' memory from the forward to the
 * backward (ARM-B fine-tuning: 151 MB per scan). ProgramOptions.scan_recompute keeps the recompute instead. */
void pg_mark_scan_states(Fusion *f) {
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

int pg_align_of(int64_t offset) {   /* the power of two (at most 16) dividing an arena offset */
    int a = 16;
    while (offset % a) a /= 2;
    return a;
}
bool pg_hopper_gemm(const Program *p) {
    int knob[1];
    return p->opt.arch == 90 && !(codegen_knob_ints("VMC_HOPPER_GEMM", knob, 1) && knob[0] == 0);
}

/* A skinny bf16 product (template.h) also gets vmc's own kernel, and on Hopper (sm_90) a Linear's forward product
 * A B^T that is not skinny gets the Hopper GEMM (hopper_gemm.cuh; VMC_HOPPER_GEMM=0: not); the runtime times it
 * against cuBLASLt's algorithms and runs the faster where it agrees with cuBLASLt. Identical instantiations share a
 * module. Split-K partials go to the GEMM workspace of the stream it runs on, as cuBLASLt's would. (The Hopper
 * kernel takes the first four of the launch's five arguments: A, B, C, acc.) */
void pg_own_gemm(Program *p, SeenSet *seen, int launch) {
    Launch *l = &p->launches[launch];
    const GemmDesc *d = &l->gemm;
    int c_align = pg_align_of(d->c.offset), acc_align = d->has_acc ? pg_align_of(d->acc.offset) : 16;
    SkinnyGemmSpec s = {.M = d->M, .N = d->N, .K = d->K, .lda = d->lda, .ldb = d->ldb, .ta = d->ta, .tb = d->tb,
                        .acc = d->has_acc, .c_bf16 = d->c_bf16, .alpha = d->alpha,
                        .a_off = d->a.offset / 2 % 8, .b_off = d->b.offset / 2 % 8,   /* (arenas: 256-aligned) */
                        .c_align = c_align < acc_align ? c_align : acc_align, .sms = p->opt.sms};
    SkinnyGemmLaunch sl = {0};
    const bool sm90 = pg_hopper_gemm(p);
    /* Tall products that are skinny in N or K only (the mixer's x_proj and dt_proj forwards: N = 80, K = 48) stream
     * A or C through the Hopper GEMM (128 columns a CTA where N is small) rather than the skinny kernel */
    const bool tall = sm90 && s.M >= 4096 && ((s.N <= 128 && s.K >= 256) || (s.K <= 128 && s.N >= 256));
    s.tile_n = s.N <= 128 ? 128 : 256;
    char *src = tall ? template_gemm_hopper(&s, &sl.k) : NULL;
    bool hopper = src != NULL;
    if (!src) src = template_gemm_skinny(&s, &sl);
    /* (not the weight gradients A^T B by default: with K split in parts they ran 5-33% behind cuBLASLt on every
     * ARM-B shape on the H200, session 24 (README: MN-major operands), so their modules would only lengthen the cold
     * compile and the tuning; VMC_HOPPER_GEMM_WGRAD=1 offers them) */
    const bool wgrad_on = env_int("VMC_HOPPER_GEMM_WGRAD", 0, 1, 0) == 1;
    if (!src && sm90 && (!s.ta || wgrad_on)) {
        src = template_gemm_hopper(&s, &sl.k);
        hopper = src != NULL;
    }
    if (hopper) sl.split = 1;
    if (!src) return;
    if (sl.ws_bytes > PROGRAM_GEMM_WORKSPACE) { free(src); return; }   /* partials beyond the workspace */
    int first = pg_seen_find(seen, src, launch);
    if (first >= 0) {
        l->own_module = p->launches[first].own_module;
        free(src);
    } else {
        char label[96];
        snprintf(label, sizeof label, "g%d_gemm_%s_%lldx%lldx%lld", l->group, hopper ? "hopper" : "skinny",
                 (long long)d->M, (long long)d->N, (long long)d->K);
        l->own_module = pg_add_module(p, src, label);
        p->modules[l->own_module].arch_specific = hopper;
        p->nkernels += sl.split > 1 ? 2 : 1;
    }
    l->own = sl;
}
