/* packed_copy.c — parts of a packed backward output (see packed_copy.h). */
#include "packed_copy.h"
#include <stdlib.h>

bool packed_has_parts(const Node *o) {
    return o->op == OP_SCAN_BWD || o->op == OP_CONV1D_BWD || o->op == OP_CONV1D_SILU_BWD || o->op == OP_ATTN_BWD;
}

/* The scan backward's packed layout (template.h): du, ddelta [B,L,D] each, dA_log [D,N], dBm, dCm [B,L,N] each,
 * dD, ddelta_bias [D] each, dz [B,L,D]; *dz0 is where dz starts. Returns B*L*D. */
static int64_t scan_layout(const Node *o, int64_t *dz0) {
    const int64_t bld = shape_numel(o->src[0]->shape), dn = shape_numel(o->src[2]->shape);
    const int64_t bln = shape_numel(o->src[3]->shape), d = shape_numel(o->src[5]->shape);
    *dz0 = 2 * bld + dn + 2 * bln + 2 * d;
    return bld;
}

int packed_part(const Node *o, int64_t off, int64_t len) {
    if (o->op == OP_ATTN_BWD) {   /* dq [B,L,C], dk and dv [B,S,C] */
        const int64_t nq = shape_numel(o->src[0]->shape), nk = shape_numel(o->src[1]->shape), end = off + len;
        return (off < nq ? ATTN_PART_DQ : 0) | (off < nq + nk && end > nq ? ATTN_PART_DK : 0) |
               (end > nq + nk ? ATTN_PART_DV : 0);
    }
    if (o->op != OP_SCAN_BWD) {   /* conv1d: dx [B,L,D], then dw and db */
        const int64_t bld = shape_numel(o->src[1]->shape);
        return (off < bld ? CONV_PART_DX : 0) | (off + len > bld ? PACKED_PART_OTHER : 0);
    }
    int64_t dz0;
    const int64_t bld = scan_layout(o, &dz0), end = off + len;
    return (off < bld ? SCAN_PART_DU : 0) | (off < 2 * bld && end > bld ? SCAN_PART_DDL : 0) |
           (off < dz0 && end > 2 * bld ? PACKED_PART_OTHER : 0) | (end > dz0 ? SCAN_PART_DZ : 0);
}

int packed_parts_read(const Fusion *f, const Group *gr, const Node *x, const Node *o) {
    int64_t base = 0;
    for (const Node *v = x; v != o; v = f->view[v->id]) base += f->view_off[v->id];
    int parts = 0;
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *m = gr->members[k];
        for (int j = 0; j < m->nsrc; j++) {
            if (fus_src(f, m, j) != x) continue;
            parts |= m->op == OP_EXTRACT ? packed_part(o, base + m->i[0], shape_numel(m->shape))
                                         : packed_part(o, base, shape_numel(x->shape));
        }
    }
    return parts ? parts : packed_part(o, base, shape_numel(x->shape));
}

/* ---------------------------------------------------------------- copies into place */

/* The part of o's packed output whose copy its template can write as a column block of a wider buffer (the scan's
 * dz, the conv's dx; 0: none), and where that part starts in the packed output (*start) and how long it is. */
static int into_part(const Node *o, int64_t *start, int64_t *len) {
    if (o->op == OP_SCAN_BWD) {
        *len = scan_layout(o, start);
        return o->nsrc > 8 ? SCAN_PART_DZ : 0;   /* (gated: z and dout after the 7 forward inputs) */
    }
    *start = 0;
    *len = packed_has_parts(o) && o->op != OP_ATTN_BWD ? shape_numel(o->src[1]->shape) : 0;   /* (no attention part) */
    return *len ? CONV_PART_DX : 0;
}

/* Reads group gr the parts `part` of o's packed output (through a row map, the buffer under it)? */
static bool group_reads_part(const Fusion *f, const Group *gr, const Node *o, int part) {
    for (int j = 0; j < gr->nins; j++) {
        const Node *x = fus_unmapped(f, gr->ins[j]);
        if (fus_owner(f, x) == o && (packed_parts_read(f, gr, x, o) & part)) return true;
    }
    return false;
}

/* One block of an assembled value: the packed output whose part lands there, and its first column. */
typedef struct Block { const Node *src; int64_t col, width; } Block;

/* If PAD member p of group gr places a whole part that its template can write into place (an EXTRACT of it, read
 * by nothing else in gr), the block. */
static bool pad_block(const Fusion *f, const Node *p, Block *b) {
    const Node *e = fus_src(f, p, 0);
    if (e->op != OP_EXTRACT || f->nuse[e->id] != 1 || p->i[0] != p->shape.ndim - 1) return false;
    const Node *x = fus_src(f, e, 0), *o = fus_owner(f, x);
    int64_t off = e->i[0], start, len;
    for (const Node *v = x; v != o; v = f->view[v->id]) off += f->view_off[v->id];
    const int part = into_part(o, &start, &len);
    if (!part || !(f->part_copy[o->id] & part) || f->kept[o->id] || f->into[o->id] || off != start ||
        shape_numel(e->shape) != len)
        return false;
    Shape es = e->shape, ps = p->shape;   /* the same rows: shapes equal but for the last extent */
    es.d[es.ndim - 1] = ps.d[ps.ndim - 1] = 1;
    if (!shape_eq(es, ps)) return false;
    *b = (Block){o, p->i[1], e->shape.d[e->shape.ndim - 1]};
    return true;
}

static int by_col(const void *a, const void *b) {
    const Block *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

/* The blocks of an elementwise group that only sets whole packed parts side by side along the last axis (their
 * EXTRACTs, PADs to the full width, ADDs of those), covering every column once; 0 if it is anything else. */
static int assembly_blocks(const Fusion *f, const Group *gr, Block *blocks, int max) {
    const Node *c = gr->root;
    if (gr->kind != GK_EW || gr->ncsums || gr->nouts != 1 || c->op != OP_ADD || c->shape.ndim < 2) return 0;
    int n = 0;
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *m = gr->members[k];
        if (m->op == OP_EXTRACT) continue;   /* (checked by its PAD: read by that alone) */
        if (!shape_eq(m->shape, c->shape)) return 0;
        if (m->op == OP_PAD) {
            if (n == max || !pad_block(f, m, &blocks[n])) return 0;
            for (int j = 0; j < n; j++) if (blocks[j].src == blocks[n].src) return 0;
            n++;
        } else if (m->op == OP_ADD) {
            for (int s = 0; s < 2; s++) {
                const Node *x = fus_src(f, m, s);
                if ((x->op != OP_ADD && x->op != OP_PAD) || f->group_of[x->id] != f->group_of[c->id]) return 0;
            }
        } else {
            return 0;
        }
    }
    qsort(blocks, (size_t)n, sizeof(Block), by_col);
    int64_t col = 0;
    for (int k = 0; k < n; k++) {
        if (blocks[k].col != col) return 0;
        col += blocks[k].width;
    }
    return n >= 2 && col == c->shape.d[c->shape.ndim - 1] ? n : 0;
}

void packed_copies_into_place(Fusion *f) {
    enum { MAX_BLOCKS = 8 };
    for (int k = 0; k < f->ngroups; k++) {
        Group *gr = &f->groups[k];
        const Node *c = gr->root;
        Block blocks[MAX_BLOCKS];
        if (!f->shadow_only[c->id]) continue;   /* (only bf16 readers: GEMMs read its copy) */
        const int n = assembly_blocks(f, gr, blocks, MAX_BLOCKS);
        bool alone = n > 0;   /* no other group reads the parts placed */
        for (int j = 0; alone && j < n; j++) {
            int64_t start, len;
            const int part = into_part(blocks[j].src, &start, &len);
            for (int i = 0; alone && i < f->ngroups; i++)
                alone = i == k || !group_reads_part(f, &f->groups[i], blocks[j].src, part);
        }
        if (!alone) continue;
        for (int j = 0; j < n; j++) {
            f->into[blocks[j].src->id] = (Node *)c;
            f->into_col[blocks[j].src->id] = blocks[j].col;
        }
        gr->elided = true;
    }
}
