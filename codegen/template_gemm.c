/* template_gemm.c — instantiates skinny_gemm.cuh for one product: picks the CTA tile, the warps' tiles, the
 * pipeline depth, the copy widths and the K split (template.h); and hopper_gemm.cuh. */
#include "codegen.h"
#include "env_int.h"
#include "template.h"
#include "util.h"
#include <stdio.h>

enum {
    GEMM_TILE = 128,        /* the largest CTA tile side */
    GEMM_MAX_ACC = 64,      /* accumulator registers a thread may hold (the rest of 255 for fragments, addresses) */
    GEMM_STAGES = 4,        /* cp.async pipeline depth */
    GEMM_CTA_TARGET = 264,  /* CTAs worth launching: two per SM of an H100/H200 (132 SMs) */
    GEMM_FEW_TILES = 66,    /* below this many output tiles the K dimension is split across CTAs */
    GEMM_SPLIT_TILES = 16,  /* ... after shrinking the tile until there are this many */
    GEMM_SMEM_MAX = 99 << 10,   /* shared memory of the stages at most (every sm_80+ allows a block that) */
};

static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
static int64_t cdiv64(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Elements per cp.async (8, 4 or 2) along an operand's contiguous dimension of length `len`, rows `ld` apart,
 * starting `off` elements past an aligned address: every copy must be whole and aligned. 0: not even 2. */
static int copy_width(int64_t len, int64_t ld, int64_t off) {
    for (int v = 8; v >= 2; v /= 2)
        if (len % v == 0 && ld % v == 0 && off % v == 0) return v;
    return 0;
}

/* Warps along M and N for a BM x BN tile: each warp's tile whole m16 x n8 fragments with at most GEMM_MAX_ACC
 * accumulators per thread. 4 warps where some arrangement fits (enough to keep the copies and the mma issuing),
 * else 8, 2, 1; among those the fewest fragment loads per mma ((4 FM + 2 FN) / (FM FN)). */
static bool pick_warps(int bm, int bn, int *wm_out, int *wn_out) {
    static const int order[] = {4, 8, 2, 1};
    for (int o = 0; o < 4; o++) {
        const int warps = order[o];
        double best = 0;
        bool found = false;
        for (int wm = 1; wm <= warps; wm *= 2) {
            const int wn = warps / wm;
            if (bm % (16 * wm) || bn % (8 * wn)) continue;
            const int fm = bm / wm / 16, fn = bn / wn / 8;
            if (fm * fn * 4 > GEMM_MAX_ACC) continue;
            const double cost = (4.0 * fm + 2.0 * fn) / (fm * fn);
            if (!found || cost < best) { best = cost; *wm_out = wm; *wn_out = wn; found = true; }
        }
        if (found) return true;
    }
    return false;
}

/* VMC_SKINNY_GEMM=TILE,BK,STAGES,CTAS,STAGED overrides GEMM_TILE, the K slice (32), GEMM_STAGES, GEMM_CTA_TARGET
 * and the staged epilogue (SG_EV; 0 off, 1 on) for tuning experiments (0 or missing: the default; TILE a power of
 * two 16..256, BK 16, 32 or 64, STAGES 2..8). */
static void skinny_knobs(int *tile, int *bk, int *stages, int *ctas, bool *staged) {
    int v[5];
    *tile = GEMM_TILE, *bk = 32, *stages = GEMM_STAGES, *ctas = GEMM_CTA_TARGET, *staged = false;
    if (!codegen_knob_ints("VMC_SKINNY_GEMM", v, 5)) return;
    if (v[0] >= 16 && v[0] <= 256 && !(v[0] & (v[0] - 1))) *tile = v[0];
    if (v[1] == 16 || v[1] == 32 || v[1] == 64) *bk = v[1];
    if (v[2] >= 2 && v[2] <= 8) *stages = v[2];
    if (v[3] >= 1 && v[3] <= 4096) *ctas = v[3];
    *staged = v[4] == 1;
}

/* The template's defines: names[k] = iv[k] as an integer, but the alpha one (alpha_k, a float) and C_T (ct_k: bf16 or
 * float); val holds the texts. */
static void gemm_defs(TemplateDef *defs, char (*val)[40], const char *const *names, const long long *iv, int n,
                      int alpha_k, float alpha, int ct_k, bool c_bf16) {
    for (int k = 0; k < n; k++) {
        if (k == alpha_k) snprintf(val[k], sizeof val[k], "%.9ef", (double)alpha);
        else if (k == ct_k) snprintf(val[k], sizeof val[k], "%s", c_bf16 ? "bf16" : "float");
        else snprintf(val[k], sizeof val[k], "%lld", iv[k]);
        defs[k] = (TemplateDef){names[k], val[k]};
    }
}

char *template_gemm_skinny(const SkinnyGemmSpec *s, SkinnyGemmLaunch *out) {
    const int64_t lim = (int64_t)1 << 31;
    int tile, bkmax, max_stages, cta_target;
    bool staged;
    skinny_knobs(&tile, &bkmax, &max_stages, &cta_target, &staged);
    if (s->M <= 0 || s->N <= 0 || s->K <= 0 || s->M >= lim || s->N >= lim || s->K >= lim) return NULL;
    int64_t small = s->M < s->N ? s->M : s->N;
    if (s->K < small) small = s->K;
    if (small > SKINNY_GEMM_MAX_DIM) return NULL;
    /* contiguous dimension: op(A) is M x K, A stored [M][lda] (K contiguous) or [K][lda] (M contiguous) */
    const int va = copy_width(s->ta ? s->M : s->K, s->lda, s->a_off), vb = copy_width(s->tb ? s->K : s->N, s->ldb, s->b_off);
    if (!va || !vb) return NULL;

    int bm = (int)(s->M < tile ? round_up(s->M, 16) : tile);
    int bn = (int)(s->N < tile ? round_up(s->N, 8) : tile);
    int wm = 0, wn = 0;
    while (!pick_warps(bm, bn, &wm, &wn)) {   /* shrink the longer side until some arrangement fits */
        if (bm >= bn && bm > 16) bm /= 2;
        else if (bn > 8) bn = (int)round_up(bn / 2, 8);
        else return NULL;
    }
    const int bk = s->K >= bkmax ? bkmax : (int)round_up(s->K, 16);
    /* Few output tiles and a long K (the weight gradients): K ranges across CTAs, whose f32 partials the reduce
     * kernel adds. Smaller tiles first, along the longer of M and N (which splits the larger operand; the smaller is
     * re-read from L2), so that fewer ranges fill the GPU and the partials stay few: ARM-B's 80 x 768 and 768 x 48
     * weight gradients get 24 tiles of 80 x 32 and 32 x 48. */
    const bool splits = cdiv64(s->M, bm) * cdiv64(s->N, bn) < GEMM_FEW_TILES && s->K >= 8 * bk;
    while (splits && cdiv64(s->M, bm) * cdiv64(s->N, bn) < GEMM_SPLIT_TILES) {
        int m2 = bm, n2 = bn;
        if (s->N >= s->M && bn > 32) n2 = (int)round_up(bn / 2, 8);   /* along the larger operand: */
        else if (s->N < s->M && bm > 32) m2 = (int)round_up(bm / 2, 16);   /* the other is re-read */
        else break;
        if (!pick_warps(m2, n2, &wm, &wn)) break;
        bm = m2;
        bn = n2;
    }
    pick_warps(bm, bn, &wm, &wn);
    const int64_t tiles_m = cdiv64(s->M, bm), tiles_n = cdiv64(s->N, bn), tiles = tiles_m * tiles_n;
    if (tiles_m > 65535) return NULL;
    int64_t split = 1, kstep = round_up(s->K, bk);
    if (splits) {
        split = cdiv64(cta_target, tiles);
        if (split > s->K / (4 * bk)) split = s->K / (4 * bk);
        kstep = round_up(cdiv64(s->K, split), bk);
        split = cdiv64(s->K, kstep);
    }
    const int64_t slices = kstep / bk;
    int stages = slices + 1 < max_stages ? (int)(slices + 1 < 2 ? 2 : slices + 1) : max_stages;
    const int a_elems = (s->ta ? bk : bm) * (s->ta ? bm + 8 : bk + 8), b_elems = (s->tb ? bn : bk) * (s->tb ? bk + 8 : bn + 8);
    while (stages > 2 && stages * (a_elems + b_elems) * 2 > GEMM_SMEM_MAX) stages--;

    const int elem = s->c_bf16 ? 2 : 4;
    const bool pairs = s->N % 2 == 0 && s->c_align >= 2 * elem, quads = (s->M * s->N) % 4 == 0 && s->c_align >= 4 * elem;
    /* staged epilogue: elements a lane stores (every row segment whole and aligned), 0 for none */
    int ev = 0;
    for (int e = 4; staged && split == 1 && !ev && e >= 1; e /= 2)
        if (s->N % e == 0 && s->c_align >= e * elem) ev = e;
    char v[23][40];
    const char *names[23] = {"SG_M", "SG_N", "SG_K", "SG_LDA", "SG_LDB", "SG_TA", "SG_TB", "SG_ALPHA", "SG_ACC", "C_T",
                             "SG_BM", "SG_BN", "SG_BK", "SG_WM", "SG_WN", "SG_STAGES", "SG_VA", "SG_VB", "SG_SPLIT",
                             "SG_KSTEP", "SG_PAIRS", "SG_RV", "SG_EV"};
    const long long iv[23] = {s->M, s->N, s->K, s->lda, s->ldb, s->ta, s->tb, 0, s->acc, 0,
                              bm, bn, bk, wm, wn, stages, va, vb, split, kstep, pairs, quads ? 4 : 1, ev};
    TemplateDef defs[23];
    gemm_defs(defs, v, names, iv, 23, 7, s->alpha, 9, s->c_bf16);
    KernelLaunch *l = &out->k;
    *l = (KernelLaunch){0};
    snprintf(l->name, sizeof l->name, "vmc_gemm_skinny");
    l->grid[0] = (unsigned)tiles_n; l->grid[1] = (unsigned)tiles_m; l->grid[2] = (unsigned)split;
    l->block[0] = (unsigned)(wm * wn * 32); l->block[1] = l->block[2] = 1;
    l->smem = (unsigned)(stages * (a_elems + b_elems) * 2);
    if (ev && (unsigned)(bm * (bn + 4) * 4) > l->smem) l->smem = (unsigned)(bm * (bn + 4) * 4);
    out->split = (int)split;
    out->ws_bytes = split > 1 ? split * s->M * s->N * 4 : 0;
    out->reduce = (KernelLaunch){0};
    if (split > 1) {
        KernelLaunch *r = &out->reduce;
        snprintf(r->name, sizeof r->name, "vmc_gemm_skinny_reduce");
        r->grid[0] = (unsigned)cdiv64(s->M * s->N, 256 * (quads ? 4 : 1)); r->grid[1] = r->grid[2] = 1;
        r->block[0] = 256; r->block[1] = r->block[2] = 1;
    }
    return template_instantiate("skinny_gemm.cuh", defs, 23);
}

/* Parts of K for the Hopper GEMM's split (HG_SPLITK) of `units` (clusters' pairs of tiles) with kt slices of 64 on
 * `clusters` clusters at once (SkinnyGemmSpec.sms / 2): the number minimising rounds x (slices a part + 13, a part's
 * epilogue of f32 reductions in slices' time), rounds = ceil(units x parts / clusters), each part at least 8 slices. ARM-B's 2048 x
 * 768 x 16384 (24 units of 128 x 256 pairs, 256 slices, 66 clusters): 5 parts of 51 or 52 slices, 2 rounds. The 13: the
 * parts forced on an H200 (session 24, ms a call, 2048x768x16384 / 1536x768x16384) ranked as this cost ranks them,
 * 1: 0.162 / 0.162, 2: 0.089 / 0.089, 4: 0.095 / 0.095, 6: 0.102 / 0.072, 7: - / 0.066, 8: 0.086 / -, 11: 0.092 /
 * 0.071, 16: 0.105 / 0.089 (cuBLASLt 0.070 / 0.058): each part's C goes through L2's reductions (S M N 4 bytes). */
static int hopper_split(int64_t units, int64_t kt, int64_t clusters, int64_t *cost) {
    int best = 1;
    int64_t best_cost = -1;
    for (int s = 1; s <= 64 && s * 8 <= kt; s++) {
        const int64_t c = cdiv64(units * s, clusters) * (cdiv64(kt, s) + 13);
        if (best_cost < 0 || c < best_cost) { best_cost = c; best = s; }
    }
    *cost = best_cost;
    return best;
}

/* A cluster's units of work (hopper_gemm.cuh HG_UNITS): tiles of 128 rows by bn columns, `cluster` of them a unit */
static int64_t hopper_units(const SkinnyGemmSpec *s, int bn, int cluster) {
    return cdiv64(s->N, bn) * cdiv64(cdiv64(s->M, 128), cluster);
}

/* hopper_gemm.cuh: 128 x 256 tiles of C (128 x 128 of both products with dual; 128 x 128 or 128 x 192 where
 * s->tile_n says so),
 * as many 64-deep slices staged as fit in shared memory beside the epilogue's buffer (3, 209 KB, with a bf16 C
 * stored by TMA; dual: 4, or 3 with the products; 4 stored from registers), one CTA an SM, in clusters of two; A and
 * B (and bf16 outputs stored by TMA) passed as tensor maps (KernelLaunch.tma_rows). For tuning runs
 * VMC_HOPPER_GEMM=1,TILE_N (128, 192 or 256 columns a CTA; 128: two CTAs an SM), VMC_HOPPER_GEMM_STAGES=N (2 up to what
 * fits), VMC_HOPPER_GEMM_STORE, VMC_HOPPER_GEMM_VEC, VMC_HOPPER_GEMM_PERSIST and VMC_HOPPER_GEMM_CLUSTER (below). */
static char *hopper_instance(const SkinnyGemmSpec *s, bool dual, bool products, bool bwd, KernelLaunch *l) {
    const int64_t lim = (int64_t)1 << 31;
    if (s->M <= 0 || s->N <= 0 || s->K <= 0 || s->M >= lim || s->N >= lim || s->K >= lim) return NULL;
    /* A stored [K][M] (ta) or B [K][N] (!tb): MN-major slices (hopper_gemm.cuh HG_A_MN, HG_B_MN), one product only */
    const bool a_mn = s->ta, b_mn = !s->tb;
    const int sms = s->sms > 0 ? s->sms : 132;   /* (SkinnyGemmSpec.sms) */
    if ((a_mn || b_mn) && (dual || bwd)) return NULL;
    /* a sum of two products over one K (hopper_gemm.cuh HG_KCAT): whole 64-deep slices of the first, one B each */
    if (s->k1 && (dual || bwd || s->k1 < 0 || s->k1 % 64 || s->k1 >= s->K)) return NULL;
    /* each operand's contiguous dimension in whole 16-byte groups (the TMA's rows) */
    if ((a_mn ? s->M : s->K) % 8 || (b_mn ? s->N : s->K) % 8 || s->lda % 8 || s->ldb % 8 || s->a_off % 8 ||
        s->b_off % 8)
        return NULL;
    if (dual && (s->acc || !s->c_bf16 || s->alpha != 1.f)) return NULL;
    /* a bf16 C without acc in whole 16-byte groups: what the TMA stores and the register stores (below) need */
    const bool bf16_c16 = s->c_bf16 && !s->acc && s->N % 8 == 0 && s->c_align >= 16;
    if (bwd && (dual || !bf16_c16 || s->alpha != 1.f)) return NULL;   /* (SwiGLU's backward: register stores) */
    int tile_n = s->tile_n == 128 || s->tile_n == 192 ? s->tile_n : 256, v[2];
    if (codegen_knob_ints("VMC_HOPPER_GEMM", v, 2) && (v[1] == 128 || v[1] == 192 || v[1] == 256)) tile_n = v[1];
    /* SwiGLU's backward alone in 128 x 128 tiles, two CTAs an SM (VMC_SWIGLU_BWD_TILE=128) */
    if (bwd && codegen_knob_ints("VMC_SWIGLU_BWD_TILE", v, 1) && (v[0] == 128 || v[0] == 256)) tile_n = v[0];
    /* 192 columns a CTA: stages of 40 KB, 5 with the register stores, 4 beside the TMA stores' 48 KB buffer, and
     * N = 768 takes 4 column tiles (fewer rounds short of full); for one product with such a C (else 256). H100, ms a
     * call against the default 256: 16384x768x768 0.035 / 0.033, 16384x768x2048 0.074 / 0.068, 8192^3 1.333 / 1.210
     * (session 23), so a knob only */
    /* (or for K split in parts, below) */
    const bool tile_forced = tile_n != 256 || codegen_knob_ints("VMC_HOPPER_GEMM", v, 2);
    const bool splittable = !dual && !bwd && !s->c_bf16 && !s->acc;   /* an f32 C without acc (below) */
    if (tile_n == 192 && (dual || bwd || (!bf16_c16 && !splittable))) tile_n = 256;
    /* Ping-pong (hopper_gemm.cuh HG_PINGPONG): each consumer warpgroup a 128 x 128 tile (with dual 128 x 64 of each
     * product), the two in turn, for outputs stored from registers (below): the default for SwiGLU with its products
     * (H100, session 23: 0.253 against 0.262 ms a call at 25216x2048x768); VMC_HOPPER_GEMM_PINGPONG=1 for every such
     * kernel, =2 for SwiGLU's backward alone, =0 for none. Not for the rest: on the H100 slower than the cooperative
     * default on every plain product (8192^3 1.654 against 1.210 ms, 16384x768x2048 0.088 against 0.068) and
     * SwiGLU's backward (0.222 against 0.237 default, 0.214 with loads 6 ahead, the parts 0.203) */
    const int store = (int)env_int("VMC_HOPPER_GEMM_STORE", 0, 2, dual && !products ? 1 : 2);
    const int pp = (int)env_int("VMC_HOPPER_GEMM_PINGPONG", 0, 2, -1);
    const bool pingpong = bf16_c16 && (store == 2 || bwd) && !a_mn && !b_mn &&
                          (pp == 1 || (pp == 2 && bwd) || (pp < 0 && dual && products));
    if (pingpong) tile_n = 128;
    /* Clusters of two CTAs whose tiles share B's columns, each loading half of B's slices for both by TMA multicast
     * (hopper_gemm.cuh HG_CLUSTER), where C has two row tiles or more; VMC_HOPPER_GEMM_CLUSTER=1: single CTAs.
     * H100, ms a call (test_scan_gpu --bench-gemm): 8192^3 1.356 against 1.694, 25216x2048x768 0.115 against 0.118,
     * SwiGLU there 0.242 against 0.250 (0.285 against 0.300 with the products), 18432x768x768 0.044 against 0.043. */
    const bool single = env_int("VMC_HOPPER_GEMM_CLUSTER", 1, 2, 2) == 1;
    const int cluster = !single && s->M > 128 ? 2 : 1;
    /* K split in parts (hopper_gemm.cuh HG_SPLITK) whose products are added into C, which the runtime zeroes first
     * (KernelLaunch.zero), for an f32 C without acc: hopper_split; VMC_HOPPER_GEMM_SPLITK=N: N parts (1: none).
     * Split, 128 x 192 tiles where the split's modelled time (its cost x the columns of a tile) is lower than 128 x
     * 256's: 2048 x 768 is 64 such tiles in 2 parts (128 CTAs at once) against 48 of 128 x 256 in 5 (2 rounds); not
     * yet timed on a GPU (session 25: none could be started), and these kernels run only with VMC_HOPPER_GEMM_WGRAD=1 */
    int split = 1;
    if (splittable && !pingpong) {
        const int64_t kt = cdiv64(s->K, 64);
        const int parts = (int)env_int("VMC_HOPPER_GEMM_SPLITK", 1, 1 << 20, 0);
        if (parts) split = (int)(parts < kt ? parts : kt);
        else {
            const int64_t clusters = sms * (tile_n == 128 ? 2 : 1) / cluster;
            int64_t cost, cost192;
            split = hopper_split(hopper_units(s, tile_n, cluster), kt, clusters, &cost);
            const int split192 = hopper_split(hopper_units(s, 192, cluster), kt, sms / cluster, &cost192);
            if (!tile_forced && split192 > 1 && cost192 * 192 < cost * 256) { tile_n = 192; split = split192; }
        }
    }
    if (tile_n == 192 && !bf16_c16 && split == 1) tile_n = 256;   /* (the staged f32 stores: whole 4-column rows) */
    const int bn = dual ? tile_n / 2 : tile_n, stage = 128 * 64 * 2 + (dual ? 2 : 1) * bn * 64 * 2;
    const int elem = s->c_bf16 ? 2 : 4;
    const bool pairs = s->N % 2 == 0 && s->c_align >= 2 * elem;
    /* A bf16 C without acc is stored from registers, 16 bytes a lane after a transpose within each quad
     * (hopper_gemm.cuh hg_store_regs; VMC_HOPPER_GEMM_STORE=2): no shared memory, so a fourth stage (H100, ms a call
     * against the TMA stores: 25216x2048x768 0.109 against 0.115, 18432x768x768 0.041 against 0.044, 8192^3 1.218
     * against 1.362; SwiGLU with its products 0.263 against 0.287). SwiGLU's H alone (inference) is stored by TMA from
     * bf16 tiles (hg_store_tma; VMC_HOPPER_GEMM_STORE=1; 0.243 against 0.251 from registers; C then a tensor map:
     * KernelLaunch.tma_rows[2]): the consumers go on to their next tile while the TMA writes. VMC_HOPPER_GEMM_STORE=0,
     * or C f32 or with acc: C and acc in whole rows through a buffer of two warpgroups' 32 f32 rows of bn + 8
     * (hg_store_staged) where 4-element vectors fit, unless VMC_HOPPER_GEMM_VEC=0. */
    const bool regs = (store == 2 || bwd) && bf16_c16 && bn % 32 == 0;
    const bool store_tma = store != 0 && !regs && bf16_c16 && bn % 64 == 0;
    const int64_t units = hopper_units(s, bn, cluster);
    const bool vec = !dual && !store_tma && !regs && split == 1 &&
                     env_int("VMC_HOPPER_GEMM_VEC", 0, 1, 1) && s->N % 4 == 0 &&
                     s->c_align >= 4 * elem;
    /* SwiGLU's backward: P1 and P2 copied VMC_SWIGLU_BWD_RING=N visits ahead by cp.async (1 to 8) into a ring of N x
     * 8 KB (hopper_gemm.cuh HG_BWD_RING), in place of VMC_SWIGLU_BWD_AHEAD's registers */
    const int ring = bwd && codegen_knob_ints("VMC_SWIGLU_BWD_RING", v, 1) && v[0] > 0 && v[0] <= 8 &&
                     v[0] <= (pingpong ? 2 : 1) * bn / 16 ? v[0] : 0;
    const int epi = ring ? ring * 2 * 256 * 16 : regs ? 0
                    : store_tma ? 2 * (dual && products ? 2 : 1) * 64 * bn * 2 : vec ? 2 * 32 * (bn + 8) * 4 : 0;
    const int fit = (template_smem_limit(90) - 1024 - 256 - epi) / stage;
    int stages = tile_n == 128 && !pingpong ? (epi ? 2 : 3) : fit < 6 ? fit : 6;   /* 128 x 128: two CTAs an SM */
    if (codegen_knob_ints("VMC_HOPPER_GEMM_STAGES", v, 1) && v[0] >= 2 && v[0] <= fit) stages = v[0];
    const int smem = stages * stage + epi + 1024 + 256;
    /* two CTAs an SM where their shared memory fits beside each other (228 KB an SM, 1 KB of it each CTA's) */
    const int ctas = tile_n == 128 && !pingpong && 2 * (smem + 1024) <= 233472 ? 2 : 1;
    /* Persistent: as many CTAs as the GPU runs at once (s->sms, 132 unless the runtime knows its GPU's; it launches
     * fewer where fewer run at once: cuda_hopper_grid), each taking tiles in turn (VMC_HOPPER_GEMM_PERSIST=N: N CTAs;
     * =0: a CTA a tile). */
    const int64_t tiles = units * cluster * split;   /* (whole clusters; a tile's parts of K each) */
    if (tiles >= lim) return NULL;
    int64_t resident = (int64_t)sms * ctas;
    resident = env_int("VMC_HOPPER_GEMM_PERSIST", 0, 1 << 20, resident);
    resident -= resident % cluster;
    const bool persist = resident > 0 && tiles > resident;
    /* SwiGLU's backward: its epilogue's loads of P1 and P2 issued VMC_SWIGLU_BWD_AHEAD visits ahead (0 to 6; 0: each
     * where it is used; 8 spills) */
    const int ahead = bwd && !ring ? (int)env_int("VMC_SWIGLU_BWD_AHEAD", 0, 6, 0) : 0;
    enum { NDEF = 25 };
    char val[NDEF][40];
    const char *names[NDEF] = {"HG_M", "HG_N", "HG_K", "HG_ALPHA", "HG_ACC", "C_T", "HG_PAIRS", "HG_STAGES",
                               "HG_SMEM_BYTES", "HG_DUAL", "HG_TILE_N", "HG_VEC", "HG_CTAS", "HG_STORE_TMA",
                               "HG_PRODUCTS", "HG_CLUSTER", "HG_STORE_REGS", "HG_SWIGLU_BWD", "HG_BWD_AHEAD",
                               "HG_PINGPONG", "HG_A_MN", "HG_B_MN", "HG_SPLITK", "HG_BWD_RING", "HG_KCAT"};
    const long long iv[NDEF] = {s->M, s->N, s->K, 0, s->acc, 0, pairs, stages, smem, dual, tile_n, vec, ctas,
                                store_tma, dual && products, cluster, regs, bwd, ahead, pingpong, a_mn, b_mn, split, ring,
                                s->k1};
    TemplateDef defs[NDEF];
    gemm_defs(defs, val, names, iv, NDEF, 3, s->alpha, 5, s->c_bf16);
    *l = (KernelLaunch){0};
    snprintf(l->name, sizeof l->name, dual ? "vmc_gemm_swiglu" : bwd ? "vmc_gemm_swiglu_bwd" : "vmc_gemm_hopper");
    l->grid[0] = (unsigned)(persist ? resident : tiles); l->grid[1] = l->grid[2] = 1;
    l->block[0] = ctas == 2 ? 288 : 384; l->block[1] = l->block[2] = 1;   /* (hopper_gemm.cuh HG_THREADS) */
    l->smem = (unsigned)smem;
    l->cluster = (unsigned)cluster;
    l->tiles_in_turn = true;   /* (HG_FOR_EACH_UNIT) */
    l->tma_rows[0] = a_mn ? 64 : 128;   /* (MN-major: boxes of 64 rows of K) */
    l->tma_rows[1] = b_mn ? 64 : (unsigned)(bn / cluster);   /* (in a cluster each CTA loads half of B's rows) */
    if (s->k1) {   /* A2, B2 (parameters 4, 5) as A and B */
        l->tma_rows[4] = l->tma_rows[0];
        l->tma_rows[5] = l->tma_rows[1];
    }
    if (split > 1) {   /* C (parameter 2) zeroed before each launch: the parts are added into it */
        l->zero[0].param = 2;
        l->zero[0].bytes = (size_t)(s->M * s->N * 4);
        l->nzero = 1;
    }
    if (dual) l->tma_rows[2] = (unsigned)(bn / cluster);
    if (store_tma && !dual) l->tma_rows[2] = 64;   /* C [M][N] in boxes of 64 rows */
    if (store_tma && dual) l->tma_rows[5] = l->tma_rows[6] = l->tma_rows[7] = 64;   /* H, P1, P2 */
    return template_instantiate("hopper_gemm.cuh", defs, NDEF);
}

char *template_gemm_hopper(const SkinnyGemmSpec *s, KernelLaunch *l) {
    return hopper_instance(s, false, false, false, l);
}
char *template_gemm_swiglu(const SkinnyGemmSpec *s, bool products, KernelLaunch *l) {
    return hopper_instance(s, true, products, false, l);
}
char *template_gemm_swiglu_bwd(const SkinnyGemmSpec *s, KernelLaunch *l, KernelLaunch *t) {
    char *src = hopper_instance(s, false, false, true, l);
    *t = (KernelLaunch){0};
    snprintf(t->name, sizeof t->name, "vmc_transpose_bf16");
    t->grid[0] = (unsigned)cdiv64(s->N, 32);
    t->grid[1] = (unsigned)cdiv64(s->K, 32);
    t->grid[2] = 1;
    t->block[0] = 256;
    t->block[1] = t->block[2] = 1;
    return src;
}
