/* program_bf16.c — precision bf16: which values get a bf16 copy where they are written (GEMM operands and template
 * inputs written by generated kernels; the parts of the templates' packed outputs bf16 readers take), which are kept
 * in bf16 alone, and where a reader finds the copy. */
#include "program_impl.h"
#include <stdlib.h>
#include <string.h>

/* Has the memory under x a bf16 copy? A generated kernel writes its outputs' whole copies; the scan backward
 * writes the copies of the parts of its packed output that bf16 readers take (Fusion.part_copy). Templates read an
 * input's copy where it has one: the reference kernels take bf16. */
bool pg_has_bf16_copy(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = pg_view_owner(f, x, &off);
    if (!f->shadow[o->id] || !packed_has_parts(o)) return f->shadow[o->id];
    return !(packed_part(o, off, shape_numel(x->shape)) & ~f->part_copy[o->id]);
}

const Node *pg_view_owner(const Fusion *f, const Node *n, int64_t *off) {
    *off = 0;
    while (f->view[n->id]) { *off += f->view_off[n->id]; n = f->view[n->id]; }
    return n;
}

/* Can the generated kernel that writes x's memory also write its bf16 copy for a GEMM? */
static bool shadowable(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = pg_view_owner(f, x, &off);
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
const Node *pg_gemm_base(const Fusion *f, const Node *x, int64_t *col, int64_t *ld) {
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
        if ((x == o || x == pg_gemm_base(f, o, &col, &ld)) && plain_batch(m, o)) return true;
    }
    return false;
}

/* Does group gr read input x from the bf16 copy of the memory under it (where x has one)? */
static bool reads_copy(const Fusion *f, const Group *gr, const Node *x) {
    switch (gr->kind) {
    case GK_OPAQUE: return pg_has_bf16_copy(f, x);
    case GK_GEMM: return gemm_operand(f, gr, x) && pg_has_bf16_copy(f, x);
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
            const Node *x = fus_unmapped(f, gr->ins[j]), *o = fus_owner(f, x);
            if (!packed_has_parts(o) || reads_copy(f, gr, x)) continue;
            f->part_f32[o->id] |= (unsigned char)(packed_parts_read(f, gr, x, o) & SCAN_PARTS);
        }
    }
}

/* bf16 precision: GEMM operands written by generated kernels get a bf16 shadow there (no cast kernel), and so do
 * template inputs (the conv1d and scan kernels take bf16 activations and gradients, as in the reference). */
void pg_mark_shadows(Fusion *f) {
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
                if (shadowable(f, gr->ins[j])) f->shadow[pg_view_owner(f, gr->ins[j], &off)->id] = true;
            }
            continue;
        }
        if (gr->kind != GK_GEMM) continue;
        const Node *m = group_gemm(f, gr).matmul;
        for (int s = 0; s < 2; s++) {
            int64_t off, col, ld;
            const Node *x = fus_src(f, m, s), *base = pg_gemm_base(f, x, &col, &ld);
            if (plain_batch(m, x) && shadowable(f, base)) f->shadow[pg_view_owner(f, base, &off)->id] = true;
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
void pg_mark_bf16_outputs(Fusion *f) {
    const Graph *g = f->g;
    bool *ok = xcalloc((size_t)g->nnodes, sizeof(bool));
    for (int k = 0; k < f->ngroups; k++) {
        const Group *gr = &f->groups[k];
        for (int j = 0; j < gr->nouts; j++) {   /* (a conv1d group may also write silu(conv)) */
            const Node *n = gr->outs[j];
            bool gemm = gr->kind == GK_GEMM && !group_gemm(f, gr).matmul->i[0];
            bool conv = n->op == OP_CONV1D, tmpl = n->op == OP_SCAN || n->op == OP_ATTN;   /* scan, attention */
            bool act = gr->kind == GK_OPAQUE && n->op == OP_SILU;
            ok[n->id] = (gemm || conv || tmpl || act) && n->dtype == DT_F32;
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

BufRef pg_shadow_ref(const Fusion *f, const Node *x) {
    int64_t off;
    const Node *o = pg_view_owner(f, x, &off);
    return (BufRef){f->sbuf[o->id].arena, f->sbuf[o->id].offset + off * 2};
}
