/* emit_row.c — row kernels (a reduction over one axis with its neighbours): a block, a warp or several blocks per
 * row, or 32 rows of columns per block; one phase per dependent reduction (a sum or max every thread of the row then
 * holds), then the final phase writes the outputs, with column sums taken alongside. */
#include "emit.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
    if (!lone_sum || inner == gr->axis || gr->dom.d[inner] % 4 || rows < 768 || !em_ins_aligned(f, gr)) return false;
    for (int k = 0; k < gr->nins; k++)
        if (!fus_bf16(f, gr->ins[k]) && !codegen_reads_copy(f, gr, gr->ins[k])) return false;
    return true;
}

/* A warp per row whose length is a multiple of 128 and whose buffers keep 16-byte alignment: each lane takes 4
 * adjacent elements per step, read and written 4-wide as in the elementwise kernels (a LayerNorm row of 768 f32
 * values is 6 loads of 16 bytes per lane, not 24 of 4). Row kernels' time per ARM-B step (H200, eager, one run
 * against the build before): pretraining 9.04 -> 8.81 ms, fine-tuning 9.32 -> 9.07, inference 3.37 -> 3.05. */
static bool row_vec4(const Fusion *f, const Group *gr, const RowPlan *rp) {
    return rp->mode == RM_WARP && gr->axis == gr->dom.ndim - 1 && rp->len % 128 == 0 && em_bufs_aligned(f, gr);
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

/* Rows each warp of a warp-per-row kernel with column sums walks: enough that the grid stays within em_csum_blocks() x 8
 * warps (its atomics are blocks x columns). */
static long long csum_rows_per_warp(const RowPlan *rp) {
    const long long warps = em_csum_blocks() * 8, rpw = (rp->rows + warps - 1) / warps;
    return rpw > 1 ? rpw : 1;
}

/* The kernel's first lines: which row this thread works on; fills the axis loop and the store guard. */
static void row_prologue(Em *e, RowPlan *rp) {
    long long len = (long long)rp->len, rows = (long long)rp->rows;
    switch (rp->mode) {
    case RM_COLUMN: {
        const int per = rp->vec4 ? 4 : 1;   /* columns per lane */
        em_line(e, "__shared__ float vmc_col[8][%d];", 32 * per + 1);
        em_line(e, "const int lane = threadIdx.x & 31, part = threadIdx.x >> 5;");
        em_line(e, "const long long row0 = (long long)(blockIdx.x / %lld) * %d + lane%s;", (long long)rp->csplit, 32 * per,
             per > 1 ? " * 4" : "");
        em_line(e, "const long long row = row0 < %lldLL ? row0 : %lldLL;   // clamped: index math stays in range", rows,
             rows - per);
        if (rp->csplit > 1)
            snprintf(rp->jloop, sizeof rp->jloop, "for (int j = (blockIdx.x %% %lld) * 8 + part; j < %lld; j += %lld) {",
                     (long long)rp->csplit, len, (long long)rp->csplit * 8);
        else snprintf(rp->jloop, sizeof rp->jloop, "for (int j = part; j < %lld; j += 8) {", len);
        rp->guard = "part == 0 && row0 == row";
        return;
    }
    case RM_WARP:
        em_line(e, "const int lane = threadIdx.x & 31;");
        if (e->gr->ncsums) {   /* each warp walks rows, its columns' sums in its rows of vmc_cs (row_csums_end) */
            const unsigned W = rp->threads / 32;
            em_line(e, "const int warp = threadIdx.x >> 5;");
            em_line(e, "__shared__ __align__(16) float vmc_cs[%d][%u][%lld];", e->gr->ncsums, W, len);
            /* each lane zeroes the columns it adds to (no other lane touches them before the block's barrier) */
            if (rp->wvec4) {
                em_line(e, "for (int c = lane * 4; c < %lld; c += 128) {", len);
                for (int c = 0; c < e->gr->ncsums; c++)
                    em_line(e, "    *reinterpret_cast<float4*>(&vmc_cs[%d][warp][c]) = float4{0.f, 0.f, 0.f, 0.f};", c);
            } else {
                em_line(e, "for (int c = lane; c < %lld; c += 32) {", len);
                for (int c = 0; c < e->gr->ncsums; c++) em_line(e, "    vmc_cs[%d][warp][c] = 0.f;", c);
            }
            em_line(e, "}");
            /* a block takes RPW x W consecutive rows, a trip W of them: written as a fixed trip count with a break,
             * LayerNorm's backward (no sums) took 75 registers, as a loop striding by the grid 106 (ptxas, sm_90) */
            const long long rpw = csum_rows_per_warp(rp);
            em_line(e, "#pragma unroll 1");
            em_line(e, "for (int rr = 0; rr < %lld; rr++) {", rpw);
            e->ind++; e->depth++;
            em_line(e, "const long long row = ((long long)blockIdx.x * %lld + rr) * %u + warp;", rpw, W);
            em_line(e, "if (row >= %lldLL) break;", rows);
        } else {
            em_line(e, "const long long row = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);");
            em_line(e, "if (row >= %lldLL) return;   // no block barriers below", rows);
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
        em_line(e, "__shared__ float vmc_sh[32];");
        em_line(e, "const long long row = blockIdx.x / %lld;", (long long)rp->nsplit);
        em_line(e, "const long long part = blockIdx.x %% %lld;", (long long)rp->nsplit);
        snprintf(rp->jloop, sizeof rp->jloop, "for (long long j = part * %u + threadIdx.x; j < %lld; j += %lld) {",
                 rp->threads, len, (long long)rp->nsplit * rp->threads);
        rp->guard = "threadIdx.x == 0";
        return;
    case RM_BLOCK:
        em_line(e, "__shared__ float vmc_sh[32];");
        em_line(e, "const long long row = blockIdx.x;");
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
    em_line(e, "float acc0[4] = {0.f, 0.f, 0.f, 0.f};");
    em_line(e, "%s", rp->jloop);
    e->ind++; e->depth++;
    e->final = false;
    Ix ix = *rix;
    snprintf(ix.s[gr->axis], IXLEN, "j");
    char eb[IXLEN];
    em_flat(e, gr->dom, &ix, eb);
    em_line(e, "const long long e4 = %s / 4;", eb);
    Lanes lanes;
    em_lanes_open(e, &lanes, eb, &ix);
    em_line(e, "acc0[k] += %s;", em_val(e, fus_src(e->f, r, 0), &ix));
    em_lanes_close(e, &lanes);
    em_scope_pop(e);
    em_line(e, "}");
    em_line(e, "#pragma unroll");
    em_line(e, "for (int k = 0; k < 4; k++) vmc_col[part][lane * 4 + k] = acc0[k];");
    em_line(e, "__syncthreads();");
    char fo[IXLEN];
    em_flat(e, r->shape, rix, fo);
    em_line(e, "if (%s) {", rp->guard);
    e->ind++;
    em_line(e, "#pragma unroll");
    em_line(e, "for (int k = 0; k < 4; k++) {");
    e->ind++;
    em_line(e, "float red0 = vmc_col[0][lane * 4 + k];   // %s", op_name(r->op));
    em_line(e, "for (int q = 1; q < 8; q++) red0 += vmc_col[q][lane * 4 + k];");
    if (rp->csplit > 1) em_line(e, "atomicAdd(&out0[%s + k], red0);", fo);
    else em_line(e, "out0[%s + k] = red0;", fo);
    e->ind--;
    em_line(e, "}");
    e->ind--;
    em_line(e, "}");
    e->red_done = 1;
}

/* RM_WARP with wvec4: the lanes over the 4 elements from j (ix's axis coordinate) on, e4 their 4-wide index. */
static void row_lanes_open(Em *e, Lanes *l, Ix *ix) {
    char eb[IXLEN];
    em_flat(e, e->gr->dom, ix, eb);
    em_line(e, "const long long e4 = %s / 4;", eb);
    em_lanes_open(e, l, eb, ix);
}

/* Inside a loop over the row (lanes not yet open): declares the 4-element term arrays of the column sums added in
 * this phase (early ones in phase 0, the others in the final phase). */
static void row_csums_open(Em *e, const RowPlan *rp, bool early) {
    if (!rp->wvec4) return;   /* the 4 elements' terms in csl<s>[4], added to the warp's row with 16-byte accesses */
    for (int c = 0; c < e->gr->ncsums; c++)
        if (e->csum_early[c] == early) em_line(e, "float csl%d[4];", c);
}
static void row_csums_terms(Em *e, const RowPlan *rp, const Ix *ix, bool early) {
    for (int c = 0; c < e->gr->ncsums; c++) {
        if (e->csum_early[c] != early) continue;
        char acc[48];
        if (rp->wvec4) snprintf(acc, sizeof acc, "csl%d[k]", c);
        else snprintf(acc, sizeof acc, "vmc_cs[%d][warp][j]", c);
        em_csum_add(e, c, ix, acc, rp->wvec4);
    }
}
static void row_csums_close(Em *e, const RowPlan *rp, bool early) {
    if (!rp->wvec4) return;
    for (int c = 0; c < e->gr->ncsums; c++) {
        if (e->csum_early[c] != early) continue;
        em_line(e, "{ float4 *p = reinterpret_cast<float4*>(&vmc_cs[%d][warp][j]); float4 t = *p;", c);
        em_line(e, "  t.x += csl%d[0]; t.y += csl%d[1]; t.z += csl%d[2]; t.w += csl%d[3]; *p = t; }", c, c, c, c);
    }
}

/* Does computing x read one of the kernel's row reductions? (*budget: nodes left to visit; when it runs out, the
 * answer is yes, which is always safe) */
static bool reads_row_reduction(const Em *e, const Node *x, int *budget) {
    for (int p = 0; p < e->nreds; p++) if (e->reds[p] == x) return true;
    if (!em_is_member(e, x)) return false;
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
        em_line(e, "%s acc%d = %s;", em_ctype(r), p, r->op == OP_SUM ? "0" : "__int_as_float(0xff800000)");
    }
    em_line(e, "%s", rp->jloop);
    e->ind++; e->depth++;
    e->final = false;
    Ix ix = *rix;
    snprintf(ix.s[e->gr->axis], IXLEN, "j");
    Lanes lanes;
    if (p0 == 0) row_csums_open(e, rp, true);
    if (rp->wvec4) row_lanes_open(e, &lanes, &ix);
    for (int p = p0; p < p1; p++) {
        const Node *r = e->reds[p];
        const char *v = em_val(e, fus_src(e->f, r, 0), &ix);
        if (r->op == OP_SUM) em_line(e, "acc%d += %s;", p, v);
        else em_line(e, "acc%d = vmc_max(acc%d, %s);", p, p, v);
    }
    if (p0 == 0) row_csums_terms(e, rp, &ix, true);   /* column sums that need no row reduction: with the first */
    if (rp->wvec4) em_lanes_close(e, &lanes);
    if (p0 == 0) row_csums_close(e, rp, true);
    em_scope_pop(e);
    em_line(e, "}");
    for (int p = p0; p < p1; p++) {
        const Node *r = e->reds[p];
        const bool sum = r->op == OP_SUM;
        if (rp->mode == RM_COLUMN) {
            em_line(e, "vmc_col[part][lane] = acc%d;", p);
            em_line(e, "__syncthreads();");
            em_line(e, "%s red%d = vmc_col[0][lane];   // %s", em_ctype(r), p, op_name(r->op));
            if (sum) em_line(e, "for (int q = 1; q < 8; q++) red%d += vmc_col[q][lane];", p);
            else em_line(e, "for (int q = 1; q < 8; q++) red%d = vmc_max(red%d, vmc_col[q][lane]);", p, p);
            em_line(e, "__syncthreads();");
        } else {
            bool warp = rp->mode == RM_WARP;
            em_line(e, "const %s red%d = vmc_%s_%s(acc%d%s);   // %s", em_ctype(r), p, warp ? "warp" : "block",
                 sum ? "sum" : "max", p, warp ? "" : ", vmc_sh", op_name(r->op));
        }
        int o = em_param_of(e, r, true);
        if (o >= 0) {
            char fo[IXLEN];
            em_flat(e, r->shape, rix, fo);
            if (rp->nsplit > 1 || rp->csplit > 1) em_line(e, "if (%s) atomicAdd(&out%d[%s], red%d);", rp->guard, o, fo, p);
            else em_line(e, "if (%s) out%d[%s] = red%d;", rp->guard, o, fo, p);
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
        em_line(e, "%s", rp->jloop);
        e->ind++; e->depth++;
        e->jvar = "j";
        Ix ix = *rix;
        snprintf(ix.s[e->gr->axis], IXLEN, "j");
        Lanes lanes;
        row_csums_open(e, rp, false);
        if (rp->wvec4) row_lanes_open(e, &lanes, &ix);
        em_val(e, root, &ix);
        row_csums_terms(e, rp, &ix, false);
        if (rp->wvec4) em_lanes_close(e, &lanes);
        row_csums_close(e, rp, false);
        e->ind--;
        em_line(e, "}");
    } else if (root->op != OP_SUM && root->op != OP_AMAX) {
        em_line(e, "if (%s) {", rp->guard);
        e->ind++; e->depth++;
        em_val(e, root, rix);
        e->ind--;
        em_line(e, "}");
    }
}

/* A warp-per-row kernel's column sums (pass_merge_column_sums), after its loop over rows: the block's warps'
 * partial sums of each column added, then one atomicAdd per column and block. */
static void row_csums_end(Em *e, const RowPlan *rp) {
    const Group *gr = e->gr;
    const long long C = rp->len;
    em_scope_pop(e);
    em_line(e, "}");
    em_line(e, "__syncthreads();");
    em_line(e, "for (int c = threadIdx.x; c < %lld; c += %u) {", C, rp->threads);
    for (int c = 0; c < gr->ncsums; c++) {
        em_line(e, "    float t%d = vmc_cs[%d][0][c];", c, c);
        em_line(e, "    for (int w = 1; w < %u; w++) t%d += vmc_cs[%d][w][c];", rp->threads / 32, c, c);
        em_line(e, "    atomicAdd(&out%d[c], t%d);", em_param_of(e, gr->csums[c], true), c);
    }
    em_line(e, "}");
}

void emit_row(Em *e, const char *name, KernelSource *ks) {
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
    em_header(e, name, what);
    em_params(e, KNAME, rp.threads);
    row_prologue(e, &rp);
    Shape rs = gr->dom;
    rs.d[gr->axis] = 1;
    Ix rix = em_unflat(e, rs, "row");
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
