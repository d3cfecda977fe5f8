/* emit_ew.c — elementwise and scatter kernels: a grid-stride loop over the group's domain, 4 consecutive elements
 * per thread with 16-byte accesses where alignment allows, and column sums accumulated alongside (Group.csums). */
#include "emit.h"
#include "env_int.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Blocks of a kernel that also accumulates column sums (Group.csums): 4 per SM on 132 SMs, each thread walking many
 * rows, so that the atomics that end it stay few (blocks x columns). An elementwise one (256 threads) then fills
 * half an SM's thread slots; VMC_CSUM_BLOCKS=N sets the count instead, for tuning. */
enum { CSUM_BLOCKS = 528 };
long long em_csum_blocks(void) {
    return env_int("VMC_CSUM_BLOCKS", 1, 65535, CSUM_BLOCKS);
}

static unsigned grid_for(int64_t numel, unsigned threads) {
    int64_t b = (numel + threads - 1) / threads;
    return (unsigned)(b > (1 << 20) ? (1 << 20) : b < 1 ? 1 : b);
}

/* Inputs all 16-byte aligned (arena offsets are 256-aligned; views may not be), as 4-wide loads need. */
bool em_ins_aligned(const Fusion *f, const Group *gr) {
    for (int k = 0; k < gr->nins; k++) if (f->buf[gr->ins[k]->id].offset % 16) return false;
    return true;
}

/* Inputs and outputs aligned for 4-wide loads and stores (bf16 copies: 8 bytes). */
bool em_bufs_aligned(const Fusion *f, const Group *gr) {
    for (int k = 0; k < gr->nouts; k++) {
        const Node *o = gr->outs[k];
        if (f->buf[o->id].offset % 16 || (f->shadow[o->id] && f->sbuf[o->id].offset % 8)) return false;
    }
    return em_ins_aligned(f, gr);
}

/* 4 elements per thread pay when the innermost extent keeps them in one row (every coordinate but the last is
 * shared) and every buffer is 16-byte aligned. */
static bool vec4_ok(const Fusion *f, const Group *gr) {
    if (gr->kind != GK_EW || gr->root->op == OP_CONST || gr->dom.ndim == 0 || gr->dom.d[gr->dom.ndim - 1] % 4)
        return false;
    return em_bufs_aligned(f, gr);
}

/* The vec4 loop body: 16-byte loads of the inputs read at e into L<p>[4], the elements k = 0..3 computed by an
 * unrolled loop (register arrays: constant indices after unrolling), 16-byte (8 for bf16) stores of S<p>/SB<p>. */
static void emit_vec4_body(Em *e, const char *lanes) {
    const Group *gr = e->gr;
    for (int p = 0; p < gr->nins; p++) {
        if (!e->vload[p]) continue;
        const char *t = em_ctype(gr->ins[p]);
        const bool bf = em_in_bf16(e, gr->ins[p]);
        char dst[16], at[64];
        em_line(e, "%s L%d[4];", t, p);
        snprintf(dst, sizeof dst, "L%d", p);
        snprintf(at, sizeof at, "reinterpret_cast<const %s%s*>(in%d)[e4]", bf ? "uint2" : t, bf ? "" : "4", p);
        em_load4(e, "", dst, bf, t, at);
    }
    for (int j = 0; j < e->nlvec; j++) em_line(e, "%s LV%d[4];", em_ctype(gr->ins[e->lvec_in[j]]), j);
    for (int p = 0; p < gr->nouts; p++) {
        if (!e->vstore[p]) continue;
        if (!e->f->shadow_only[gr->outs[p]->id]) em_line(e, "%s S%d[4];", em_ctype(gr->outs[p]), p);
        if (e->f->shadow[gr->outs[p]->id]) em_line(e, "unsigned short SB%d[4];", p);
    }
    em_line(e, "#pragma unroll");
    em_line(e, "for (int k = 0; k < 4; k++) {");
    fputs(lanes, e->o);
    em_line(e, "}");
    for (int p = 0; p < gr->nouts; p++) {
        if (!e->vstore[p]) continue;
        const char *t = em_ctype(gr->outs[p]);
        if (!e->f->shadow_only[gr->outs[p]->id])
            em_line(e, "reinterpret_cast<%s4*>(out%d)[e4] = %s4{S%d[0], S%d[1], S%d[2], S%d[3]};", t, p, t, p, p, p, p);
        if (e->f->shadow[gr->outs[p]->id])
            em_line(e, "reinterpret_cast<uint2*>(outb%d)[e4] = uint2{SB%d[0] | (unsigned)SB%d[1] << 16, "
                    "SB%d[2] | (unsigned)SB%d[3] << 16};", p, p, p, p, p);
    }
}

/* The vec4 lanes: the code for element e = eb + k (k = 0..3) goes to a side buffer, since which inputs it loads
 * and which outputs it stores at e are known only afterwards; ix (the coordinates of eb) gets its innermost
 * coordinate plus k and is the index of element e while the lanes are open. em_lanes_close prints the 4-wide loads,
 * the unrolled loop over k with the buffered code, and the 4-wide stores (emit_vec4_body). */
void em_lanes_open(Em *e, Lanes *l, const char *eb, Ix *ix) {
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
    em_line(e, "const long long e = %s + k;", eb);
    snprintf(e->vbase_name, IXLEN, "%s", eb);
    e->vbase = e->vbase_name;
    const int in = gr->dom.ndim - 1;
    char ck[IXLEN];
    snprintf(ck, sizeof ck, "c%d", e->nvar++);
    em_line(e, "const long long %s = %s + k;", ck, ix->s[in]);
    em_lane_set(e, ck, LANE_AFF);
    memcpy(ix->s[in], ck, IXLEN);
    e->root_ix = ix;
}

void em_lanes_close(Em *e, Lanes *l) {
    e->vec4 = false;   /* the lanes are closed: accesses at e are scalar again */
    e->root_ix = NULL;
    e->vbase = NULL;
    em_scope_pop(e);
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
void em_csum_add(Em *e, int s, const Ix *ix, const char *acc, bool assign) {
    const Node *x = group_csum_source(e->f, e->gr, e->gr->csums[s]);
    ASSERT(x, "column sum %d of group %d has no source over the domain", s, e->gr->index);
    em_line(e, "%s %s= %s;", acc, assign ? "" : "+", em_val(e, x, ix));
}

/* An elementwise kernel with column sums (pass_merge_column_sums): a block is 64 column groups of 4 columns by 4
 * rows at a time; each thread keeps its 4 columns, walks rows (the element loop's rows, 4 x the blocks sharing its
 * columns apart) and adds its elements into cs<s>[4]; the block's 4 row lanes are summed in shared memory and
 * added to the zeroed outputs, one atomicAdd per column and block. */
static void emit_ew_csums(Em *e, const char *name, KernelSource *ks) {
    const Group *gr = e->gr;
    const long long C = group_csum_cols(gr), R = shape_numel(gr->dom) / C, Q = C / 4, QB = Q / 64;
    long long rsplit = em_csum_blocks() / QB < 1 ? 1 : em_csum_blocks() / QB;
    if (rsplit > (R + 3) / 4) rsplit = (R + 3) / 4;
    e->vec4 = em_bufs_aligned(e->f, gr);
    char what[200], s[96];
    snprintf(what, sizeof what, "elementwise over %s (%lld elements) with %d column sums over %lld rows, "
             "%lld blocks of 64 x 4 columns and 4 rows", shape_str(gr->dom, s, sizeof s), R * Q * 4, gr->ncsums, R,
             QB * rsplit);
    em_header(e, name, what);
    em_params(e, KNAME, EW_THREADS);
    em_line(e, "const int tq = threadIdx.x & 63, tr = threadIdx.x >> 6;");
    em_line(e, "const long long q = (long long)(blockIdx.x %% %lld) * 64 + tq;   // columns 4q .. 4q+3", QB);
    for (int c = 0; c < gr->ncsums; c++) em_line(e, "float cs%d[4] = {0.f, 0.f, 0.f, 0.f};", c);
    em_line(e, "#pragma unroll 2   // two rows' loads in flight");
    em_line(e, "for (long long r = (long long)(blockIdx.x / %lld) * 4 + tr; r < %lldLL; r += %lldLL) {", QB, R, rsplit * 4);
    e->ind++; e->depth++;
    e->final = true;
    Lanes lanes;
    Ix ix;
    if (e->vec4) {
        em_line(e, "const long long e4 = r * %lldLL + q;", Q);
        em_line(e, "const long long eb = e4 * 4;");
        ix = em_unflat(e, gr->dom, "eb");
        em_lanes_open(e, &lanes, "eb", &ix);
    } else {
        em_line(e, "#pragma unroll");
        em_line(e, "for (int k = 0; k < 4; k++) {");
        e->ind++; e->depth++;
        em_line(e, "const long long e = (r * %lldLL + q) * 4 + k;", Q);
        ix = em_unflat(e, gr->dom, "e");
        e->root_ix = &ix;
    }
    em_val(e, gr->root, &ix);
    for (int k = 0; k < gr->nouts; k++) if (!group_is_csum(gr, gr->outs[k])) em_val(e, gr->outs[k], &ix);
    for (int c = 0; c < gr->ncsums; c++) {
        char acc[16];
        snprintf(acc, sizeof acc, "cs%d[k]", c);
        em_csum_add(e, c, &ix, acc, false);
    }
    if (e->vec4) em_lanes_close(e, &lanes);
    else {
        em_scope_pop(e);
        em_line(e, "}");
    }
    e->root_ix = NULL;
    em_scope_pop(e);
    em_line(e, "}");
    em_line(e, "__shared__ float vmc_cs[4][257];");
    for (int c = 0; c < gr->ncsums; c++) {
        em_line(e, "for (int k = 0; k < 4; k++) vmc_cs[tr][tq * 4 + k] = cs%d[k];", c);
        em_line(e, "__syncthreads();");
        em_line(e, "if (tr == 0)");
        em_line(e, "    for (int k = 0; k < 4; k++)");
        em_line(e, "        atomicAdd(&out%d[q * 4 + k], vmc_cs[0][tq * 4 + k] + vmc_cs[1][tq * 4 + k] + vmc_cs[2][tq * 4 + k] + "
                "vmc_cs[3][tq * 4 + k]);", em_param_of(e, gr->csums[c], true));
        em_line(e, "__syncthreads();");
    }
    fprintf(e->o, "}\n");
    ks->block = EW_THREADS;
    ks->grid = (unsigned)(QB * rsplit);
}

void emit_ew(Em *e, const char *name, KernelSource *ks) {
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
    em_header(e, name, what);
    em_params(e, KNAME, EW_THREADS);
    int64_t iters = e->vec4 ? numel / 4 : numel;
    if (per > 1) em_line(e, "#pragma unroll %d", per);
    em_line(e, "for (long long %s = (long long)blockIdx.x * %d + threadIdx.x; %s < %lldLL; %s += (long long)gridDim.x * %d) {",
         e->vec4 ? "e4" : "e", EW_THREADS, e->vec4 ? "e4" : "e", (long long)iters, e->vec4 ? "e4" : "e", EW_THREADS);
    e->ind++; e->depth++;
    e->final = true;
    Lanes lanes;
    Ix ix;
    if (e->vec4) {
        /* the coordinates of e4 * 4, once per thread: the 4 elements share all but the innermost (extent % 4 == 0) */
        em_line(e, "const long long eb = e4 * 4;");
        ix = em_unflat(e, gr->dom, "eb");
        em_lanes_open(e, &lanes, "eb", &ix);
    } else {
        ix = em_unflat(e, gr->dom, "e");
        e->root_ix = &ix;
    }
    const Node *root = gr->root;
    if (gr->kind == GK_SCATTER) {
        const char *v = em_val(e, fus_src(e->f, root, 0), &ix);
        int ax = (int)root->i[0];
        Ix oix = ix;
        if (root->op == OP_SCATTER_ADD) {
            snprintf(oix.s[ax], IXLEN, "g%d", e->nvar++);
            em_line(e, "const long long %s = %s[%s];", oix.s[ax], em_gather_table(e, root), ix.s[ax]);
        } else {
            Ix iix = {.n = 1};
            memcpy(iix.s[0], ix.s[ax], IXLEN);
            snprintf(oix.s[ax], IXLEN, "%s", em_val(e, fus_src(e->f, root, 1), &iix));
        }
        char fo[IXLEN];
        em_flat(e, root->shape, &oix, fo);
        em_line(e, "atomicAdd(&out0[%s], %s);", fo, v);
    } else {
        const char *v = em_val(e, root, &ix);
        if (root->op == OP_CONST) em_line(e, "out0[e] = %s;", v);
        /* a merged sibling's outputs (pass_merge.c) are not reached from the root (val is memoised: the others
         * cost nothing more) */
        for (int k = 0; k < gr->nouts; k++) em_val(e, gr->outs[k], &ix);
    }
    if (e->vec4) em_lanes_close(e, &lanes);
    e->root_ix = NULL;
    e->ind--;
    em_line(e, "}");
    fprintf(e->o, "}\n");
    ks->block = EW_THREADS;
    ks->grid = grid_for((iters + per - 1) / per, EW_THREADS);
}
