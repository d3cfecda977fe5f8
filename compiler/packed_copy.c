/* packed_copy.c — parts of a packed backward output (see packed_copy.h). */
#include "packed_copy.h"

bool packed_has_parts(const Node *o) {
    return o->op == OP_SCAN_BWD || o->op == OP_CONV1D_BWD || o->op == OP_CONV1D_SILU_BWD;
}

int packed_part(const Node *o, int64_t off, int64_t len) {
    if (o->op != OP_SCAN_BWD) {   /* conv1d: dx [B,L,D], then dw and db */
        const int64_t bld = shape_numel(o->src[1]->shape);
        return (off < bld ? CONV_PART_DX : 0) | (off + len > bld ? PACKED_PART_OTHER : 0);
    }
    /* layout of vmc_scan_bwd's packed output (template.h): du, ddelta [B,L,D] each, dA_log [D,N], dBm, dCm
     * [B,L,N] each, dD, ddelta_bias [D] each, dz [B,L,D] */
    const int64_t bld = shape_numel(o->src[0]->shape), dn = shape_numel(o->src[2]->shape);
    const int64_t bln = shape_numel(o->src[3]->shape), d = shape_numel(o->src[5]->shape);
    const int64_t dz0 = 2 * bld + dn + 2 * bln + 2 * d;
    const int64_t end = off + len;
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
