/* program.c — builds a Program: runs the passes, turns each group into launches (generated kernels batched into
 * NVRTC modules, template instantiations for the opaque ops, GEMM descriptors, memsets and ASSIGN copies), then
 * compiles every module on a thread pool through the NVRTC disk cache. No GPU is touched here. */
#include "program_impl.h"
#include "ptxas_info.h"
#include "streams.h"
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

BufRef pg_bufref(const Program *p, const Node *n) {
    ASSERT(p->f->mat[n->id], "node %%%u (%s) has no buffer", n->id, op_name(n->op));
    return (BufRef){p->f->buf[n->id].arena, p->f->buf[n->id].offset};
}

Launch *pg_add_launch(Program *p, LaunchKind kind, int group, const char *kclass) {
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
    l->own_module = -1;
    return l;
}

int pg_add_module(Program *p, char *src, const char *label) {
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

void pg_batch_flush(Program *p, Batch *b) {
    if (!b->f) return;
    fclose(b->f);
    int m = pg_add_module(p, b->text, b->label);
    for (int k = 0; k < b->launches.n; k++) p->launches[(intptr_t)b->launches.items[k]].module = m;
    ptrvec_free(&b->launches);
    b->f = NULL;
    b->count = 0;
}

void pg_batch_add(Program *p, Batch *b, const char *body, const char *name, int launch) {
    if (!b->f) {
        b->f = open_memstream(&b->text, &b->len);
        ASSERT(b->f, "open_memstream");
        fputs(codegen_preamble(), b->f);
        snprintf(b->label, sizeof b->label, "m%d_%s", p->nmodules, name);
    }
    fprintf(b->f, "\n%s", body);
    ptrvec_push(&b->launches, (void *)(intptr_t)launch);
    if (++b->count == KERNELS_PER_MODULE) pg_batch_flush(p, b);
}

void pg_set_args(Launch *l, int n) {
    l->nargs = n;
    l->args = xcalloc((size_t)(n ? n : 1), sizeof(BufRef));
}

void pg_touch(Launch *l, BufRef at, int64_t bytes, bool write) {
    ASSERT(at.arena != AR_COUNT_ && bytes > 0, "access to a missing buffer");
    if (l->nacc == l->capacc) {
        l->capacc = l->capacc ? 2 * l->capacc : 8;
        l->acc = xrealloc(l->acc, sizeof(Access) * (size_t)l->capacc);
    }
    l->acc[l->nacc++] = (Access){at, bytes, write, bytes};
}

void pg_touch_as(Launch *l, Access a) {
    pg_touch(l, a.at, a.bytes, a.write);
    l->acc[l->nacc - 1].moved = a.moved;
}

/* The buffer under x, or under its bf16 copy. A view moves only its own range of its owner's buffer, but orders
 * launches by the owner's whole buffer unless ProgramOptions.exact_view_deps. */
void pg_touch_node(Launch *l, const Program *p, const Node *x, bool shadow, bool write) {
    const Fusion *f = p->f;
    int64_t off;
    const Node *o = pg_view_owner(f, x, &off);
    const Buf *b = shadow ? &f->sbuf[o->id] : &f->buf[o->id];
    ASSERT(shadow ? f->shadow[o->id] : f->mat[o->id], "node %%%u has no %s buffer", o->id, shadow ? "bf16" : "");
    Access a = {{b->arena, b->offset}, b->bytes, write, b->bytes};
    if (o != x) {   /* (the range pass_plan gives the view) */
        const int64_t es = shadow ? 2 : (fus_bf16(f, o) ? 2 : 4);
        a.moved = shape_numel(x->shape) * es;
        if (p->opt.exact_view_deps) { a.at.offset += off * es; a.bytes = a.moved; }
    }
    pg_touch_as(l, a);
}

void pg_touch_read_part(Launch *l, const Program *p, const Node *x, bool shadow, int64_t elements) {
    pg_touch_node(l, p, x, shadow, false);
    const int64_t n = shape_numel(x->shape);
    Access *a = &l->acc[l->nacc - 1];
    if (elements < n) a->moved = a->moved / n * elements;   /* (moved is n elements, or the owner's aligned bytes) */
}

int pg_seen_find(SeenSet *s, const char *key, int launch) {
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
    int first = pg_seen_find(seen, key, li);
    if (first >= 0) {
        if (first != li) memmove(p->launches[li].name, p->launches[first].name, sizeof p->launches[li].name);
        p->launches[li].same_as = first;
        return;
    }
    pg_batch_add(p, b, body, name, li);
    p->nkernels++;
}

void pg_resolve_same_as(Program *p) {
    for (int k = 0; k < p->nlaunches; k++)
        if (p->launches[k].same_as >= 0) p->launches[k].module = p->launches[p->launches[k].same_as].module;
}

static int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

/* The elements of input x that group gr reads, when all its members that read x take parts of it (slices,
 * extracts of a packed result; each distinct part once); else x's own count. */
static int64_t elements_read(const Fusion *f, const Group *gr, const Node *x) {
    int64_t n = 0;
    for (int i = 0; i < gr->nmembers; i++) {
        const Node *m = gr->members[i];
        bool reads = false, again = false;
        for (int s = 0; s < m->nsrc; s++) reads |= fus_src(f, m, s) == x;
        if (!reads) continue;
        if ((m->op != OP_SLICE && m->op != OP_EXTRACT) || m->nsrc != 1) return shape_numel(x->shape);
        for (int j = 0; j < i && !again; j++) {   /* the same part taken twice */
            const Node *o = gr->members[j];
            again = o->op == m->op && o->nsrc == 1 && fus_src(f, o, 0) == x && !memcmp(o->i, m->i, sizeof m->i) &&
                    shape_numel(o->shape) == shape_numel(m->shape);
        }
        if (!again) n += shape_numel(m->shape);
    }
    return n > 0 && n < shape_numel(x->shape) ? n : shape_numel(x->shape);
}

int pg_group_nargs(const Fusion *f, const Group *gr) {
    int n = gr->nins + gr->nouts;
    for (int k = 0; k < gr->nouts; k++) n += f->shadow[gr->outs[k]->id];
    return n;
}

void pg_group_args(Program *p, Launch *l, const Group *gr, int at, const Node *skip) {
    const Fusion *f = p->f;
    for (int k = 0; k < gr->nins; k++) {
        const Node *x = gr->ins[k];
        const bool copy = codegen_reads_copy(f, gr, x);
        l->args[at + k] = x == skip ? NO_BUF : copy ? pg_shadow_ref(f, x) : pg_bufref(p, x);
        if (x != skip) pg_touch_read_part(l, p, x, copy, elements_read(f, gr, x));
    }
    for (int k = 0; k < gr->nouts; k++) l->args[at + gr->nins + k] = pg_bufref(p, gr->outs[k]);
    for (int k = 0, j = at + gr->nins + gr->nouts; k < gr->nouts; k++) {
        const Node *o = gr->outs[k];
        if (f->shadow[o->id]) l->args[j++] = (BufRef){f->sbuf[o->id].arena, f->sbuf[o->id].offset};
    }
    for (int k = 0; k < gr->nouts; k++) {
        if (!f->shadow_only[gr->outs[k]->id]) pg_touch_node(l, p, gr->outs[k], false, true);
        if (f->shadow[gr->outs[k]->id]) pg_touch_node(l, p, gr->outs[k], true, true);
    }
}

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
        Launch *z = pg_add_launch(p, LK_MEMSET, gr->index, ks.kclass);
        z->dst = pg_bufref(p, gr->outs[k]);
        z->bytes = shape_numel(gr->outs[k]->shape) * 4;
        pg_touch(z, z->dst, z->bytes, true);
    }
    Launch *l = pg_add_launch(p, LK_KERNEL, gr->index, ks.kclass);
    snprintf(l->name, sizeof l->name, "%s", ks.name);
    l->grid[0] = ks.grid; l->grid[1] = l->grid[2] = 1;
    l->block[0] = ks.block; l->block[1] = l->block[2] = 1;
    l->rng_args = true;
    pg_set_args(l, pg_group_nargs(p->f, gr));
    pg_group_args(p, l, gr, 0, NULL);
    add_kernel(p, b, seen, p->nlaunches - 1, ks.key, ks.body, ks.name);
    p->nlaunched++;
    kernel_source_free(&ks);
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
    const Node *o = pg_view_owner(p->f, x, &voff), *v = o->op == OP_PARAM ? p->param_value[o->id] : NULL;
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
    Launch *l = pg_add_launch(p, LK_KERNEL, gr->index, "gemm");
    snprintf(l->name, sizeof l->name, "%s", name);
    int64_t blocks = (numel / vec + 255) / 256;
    l->grid[0] = (unsigned)(blocks > (1 << 20) ? (1 << 20) : blocks); l->grid[1] = l->grid[2] = 1;
    l->block[0] = 256; l->block[1] = l->block[2] = 1;
    pg_set_args(l, 2);
    l->args[0] = src;
    l->args[1] = dst;
    l->bf16_cast = true;
    l->once = once;
    pg_touch(l, src, numel * 4, false);
    pg_touch(l, dst, numel * 2, true);
    add_kernel(p, b, seen, p->nlaunches - 1, key, body, name);
    free(body);
    free(key);
    return dst;
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
    Launch *l = pg_add_launch(p, LK_KERNEL, gr->index, "gemm");
    snprintf(l->name, sizeof l->name, "%s", name);
    int64_t blocks = (numel + 255) / 256;
    l->grid[0] = (unsigned)(blocks > (1 << 20) ? (1 << 20) : blocks); l->grid[1] = l->grid[2] = 1;
    l->block[0] = 256; l->block[1] = l->block[2] = 1;
    pg_set_args(l, 2);
    l->args[0] = pg_bufref(p, x);
    l->args[1] = (BufRef){AR_WORK, PROGRAM_GEMM_WORKSPACE + ws_off};
    BufRef out = l->args[1];
    pg_touch_node(l, p, x, false, false);
    pg_touch(l, out, numel * 4, true);
    add_kernel(p, b, seen, p->nlaunches - 1, key, body, name);
    free(key);
    free(body);
    return out;
}

static void gemm(Program *p, Batch *b, SeenSet *seen, const Group *gr, int64_t *ws_need) {
    const GemmEpilogue epi = group_gemm(p->f, gr);
    const Node *n = epi.matmul, *a = fus_src(p->f, n, 0), *bb = fus_src(p->f, n, 1);
    int64_t acol, ald, bcol, bld;   /* column views: read in place from the value under the slice */
    const Node *abase = pg_gemm_base(p->f, a, &acol, &ald), *bbase = pg_gemm_base(p->f, bb, &bcol, &bld);
    GemmDesc d = {0};
    d.ta = n->i[0]; d.tb = n->i[1];
    int nd = n->shape.ndim, na = a->shape.ndim, nb = bb->shape.ndim;
    d.M = n->shape.d[nd - 2]; d.N = n->shape.d[nd - 1];
    d.K = d.ta ? a->shape.d[na - 2] : a->shape.d[na - 1];
    d.lda = ald ? ald : a->shape.d[na - 1]; d.ldb = bld ? bld : bb->shape.d[nb - 1];
    Shape bs = n->shape, as = a->shape, bbs = bb->shape;
    bs.ndim -= 2; as.ndim -= 2; bbs.ndim -= 2;
    int64_t nbatch = shape_numel(bs), nas = shape_numel(as), nbs = shape_numel(bbs);
    d.a = pg_bufref(p, abase); d.b = pg_bufref(p, bbase); d.c = pg_bufref(p, gr->root);
    d.alpha = (float)epi.alpha;
    if (epi.acc) { d.acc = pg_bufref(p, epi.acc); d.has_acc = true; }
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
        bool sa_ = d.a.arena == pg_bufref(p, abase).arena && d.a.offset == pg_bufref(p, abase).offset && pg_has_bf16_copy(p->f, abase);
        bool sb_ = d.b.arena == pg_bufref(p, bbase).arena && d.b.offset == pg_bufref(p, bbase).offset && pg_has_bf16_copy(p->f, bbase);
        /* a bf16-stored operand is read where it is; a shadowed one from its copy; anything else is cast */
        if (!fus_bf16(p->f, abase)) d.a = sa_ ? pg_shadow_ref(p->f, abase) : to_bf16(p, b, seen, gr, abase, d.a, ea, off, 'a');
        if (!fus_bf16(p->f, bbase))
            d.b = sb_ ? pg_shadow_ref(p->f, bbase) : to_bf16(p, b, seen, gr, bbase, d.b, eb, off + align256(ea * 2), 'b');
        d.bf16 = true;
        off += align256(ea * 2) + align256(eb * 2);
    }
    const int64_t es = d.bf16 ? 2 : 4;
    d.a.offset += acol * es;
    d.b.offset += bcol * es;
    if (off > *ws_need) *ws_need = off;
    Launch *l = pg_add_launch(p, LK_GEMM, gr->index, "gemm");
    l->gemm = d;
    pg_touch(l, d.a, (ea - acol) * es, false);
    pg_touch(l, d.b, (eb - bcol) * es, false);
    pg_touch(l, d.c, d.batch * d.M * d.N * (d.c_bf16 ? 2 : 4), true);
    if (d.has_acc) pg_touch(l, d.acc, d.batch * d.M * d.N * (d.c_bf16 ? 2 : 4), false);
    snprintf(l->name, sizeof l->name, "gemm_%lldx%lldx%lld%s%s%s%s%s", (long long)d.M, (long long)d.N, (long long)d.K,
             d.ta ? "_ta" : "", d.tb ? "_tb" : "", d.batch > 1 ? "_batched" : "", d.alpha != 1.f ? "_scaled" : "",
             d.has_acc ? "_acc" : "");
    p->gemm_flops += 2 * d.M * d.N * d.K * d.batch;
    p->ngemms++;
    if (d.bf16 && d.batch == 1 && p->opt.arch >= 80 && !p->opt.no_own_gemm) pg_own_gemm(p, seen, p->nlaunches - 1);
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
        const char *opts[] = {PTXAS_VERBOSE};
        const int nopts = pool->p->opt.ptxas_info ? 1 : 0;
        const int arch = pool->p->opt.arch | (m->arch_specific ? NVRTC_ARCH_SPECIFIC : 0);
        if (!nvrtc_compile(m->src, m->label, arch, opts, nopts, &m->bin, err, sizeof err)) {
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
        pg_mark_shadows(p->f);
        pg_mark_bf16_outputs(p->f);
        if (!opt->no_into_place) packed_copies_into_place(p->f);
    }
    if (!opt->scan_recompute) pg_mark_scan_states(p->f);
    if (opt->bf16 && opt->swiglu_gemm >= 0 && pg_hopper_gemm(p)) pass_mark_swiglu(p->f, opt->swiglu_gemm == 2);
    if (opt->bf16 && opt->gemm_pairs && pg_hopper_gemm(p)) pass_mark_product_pairs(p->f);
    p->params_constant = true;   /* (no ASSIGN: an inference step) */
    for (int k = 0; k < p->f->ngroups; k++) p->params_constant &= p->f->groups[k].kind != GK_ASSIGN;
    p->f->reuse_delay = opt->reuse_delay == PROGRAM_REUSE_AT_ONCE ? 0
                       : opt->reuse_delay > 0                     ? opt->reuse_delay
                                                                  : PROGRAM_REUSE_DELAY;
    p->f->conv_multi = !opt->no_conv_multi;
    p->f->conv_multi_bwd = !opt->no_conv_multi_bwd && !opt->no_conv_multi;
    p->f->no_hoist_tail = opt->no_hoist_tail;
    p->f->scan_epi_on = opt->scan_epi > 0;
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
            if (gr->elided) break;   /* (its inputs' templates write it) */
            generated(p, &b, &seen, gr);
            pg_swiglu(p, &seen, gr);   /* SwiGLU's gate: also its products and it as one launch */
            if (opt->bf16 && opt->swiglu_bwd && pg_hopper_gemm(p)) pg_swiglu_bwd(p, &seen, gr);   /* its backward */
            break;
        case GK_GEMM:
            gemm(p, &b, &seen, gr, &ws_need);
            pg_product_pair(p, &seen, gr);   /* (where pass_mark_product_pairs marked it) */
            break;
        case GK_OPAQUE:   /* (elided: a conv1d computed by an earlier one's launch, conv_multi.c) */
            if (!gr->elided) ok = pg_opaque(p, &seen, gr, err, errlen);
            break;
        case GK_ASSIGN: {
            if (gr->inplace) break;   /* the value's kernel already wrote the target */
            Launch *l = pg_add_launch(p, LK_COPY, gr->index, "optimizer");
            l->dst = pg_bufref(p, fus_src(p->f, gr->root, 0));
            l->src = pg_bufref(p, fus_src(p->f, gr->root, 1));
            l->bytes = shape_numel(gr->root->shape) * 4;
            pg_touch(l, l->src, l->bytes, false);
            pg_touch(l, l->dst, l->bytes, true);
            break;
        }
        }
    }
    pg_batch_flush(p, &b);
    pg_resolve_same_as(p);
    if (!p->params_constant) {   /* (a training step's graph spans several streams: streams.h) */
        pg_batch_tail(p);
        pg_hoist_memsets(p);
    }
    if (!opt->no_merge_memsets) pg_merge_memsets(p);
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

double launch_moved_bytes(const Launch *l, bool write) {
    double sum = 0;
    for (int a = 0; a < l->nacc; a++) {
        const Access *x = &l->acc[a];
        bool seen = false;   /* (one input read for several directions, as the multi-direction conv1d does) */
        for (int b = 0; b < a && !seen; b++)
            seen = l->acc[b].write == x->write && l->acc[b].at.arena == x->at.arena &&
                   l->acc[b].at.offset == x->at.offset && l->acc[b].moved == x->moved;
        if (x->write == write && !seen) sum += (double)x->moved;
    }
    return sum;
}

static double launch_flops(const Launch *l) {
    if (l->kind != LK_GEMM) return 0;
    return gemm_flops(&l->gemm);
}

double launch_floor_ms(const Launch *l, const FloorRates *r, int *bound) {
    if (launch_choice_part(l)) {   /* (the one launch counts instead) */
        if (bound) *bound = 1;
        return 0;
    }
    const double t[3] = {launch_flops(l) / (r->gemm_tflops * 1e9),
                         (launch_moved_bytes(l, false) + launch_moved_bytes(l, true)) / (r->mem_tbps * 1e9),
                         l->sfu_ops / (r->sfu_tops * 1e9)};
    const int b = t[0] >= t[1] && t[0] >= t[2] ? 0 : t[1] >= t[2] ? 1 : 2;
    if (bound) *bound = b;
    return t[b];
}

OverlapFloor program_overlap_floor(const Program *p, const FloorRates *r) {
    OverlapFloor o = {.path_ms = stream_longest_path_ms(p, r, NULL)};
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->once || launch_choice_part(l)) continue;
        o.gemm_ms += launch_flops(l) / (r->gemm_tflops * 1e9);
        o.bytes_ms += (launch_moved_bytes(l, false) + launch_moved_bytes(l, true)) / (r->mem_tbps * 1e9);
        o.sfu_ms += l->sfu_ops / (r->sfu_tops * 1e9);
    }
    o.ms = o.path_ms;
    if (o.gemm_ms > o.ms) o.ms = o.gemm_ms;
    if (o.bytes_ms > o.ms) o.ms = o.bytes_ms;
    if (o.sfu_ms > o.ms) o.ms = o.sfu_ms;
    return o;
}

/* The step's floor at rates r: each launch takes the largest of its GEMM work, its bytes and its special-function
 * work at those rates, and launches run one after another. Also split by what bounds each launch; then what
 * launches side by side could reach (program_overlap_floor). */
static void dump_floor(const Program *p, const FloorRates *r, FILE *out) {
    double ms[3] = {0};   /* bound by GEMM work, by bytes, by special-function work */
    for (int k = 0; k < p->nlaunches; k++) {
        if (p->launches[k].once) continue;
        int b;
        const double t = launch_floor_ms(&p->launches[k], r, &b);
        ms[b] += t;
    }
    const double sum = ms[0] + ms[1] + ms[2];
    fprintf(out, "floor at %g TFLOP/s, %g TB/s, %g T special-function ops/s, launches one after another: %.2f ms a "
                 "step (GEMM-bound %.2f, memory-bound %.2f, special-function-bound %.2f)", r->gemm_tflops, r->mem_tbps,
            r->sfu_tops, sum, ms[0], ms[1], ms[2]);
    const int64_t batch = graph_image_batch(p->f->g);
    if (batch > 0 && sum > 0) fprintf(out, ": %.0f images/s at batch %lld", (double)batch / sum * 1e3, (long long)batch);
    const OverlapFloor o = program_overlap_floor(p, r);
    fprintf(out, "\nwith launches side by side: at least %.2f ms a step (the longest dependency path %.2f; all GEMM work "
                 "%.2f, all bytes %.2f, all special-function work %.2f)",
            o.ms, o.path_ms, o.gemm_ms, o.bytes_ms, o.sfu_ms);
    if (batch > 0 && o.ms > 0) fprintf(out, ": %.0f images/s at batch %lld", (double)batch / o.ms * 1e3, (long long)batch);
    fprintf(out, "\n");
}

void program_class_totals(const Program *p, const FloorRates *r, ClassTotals *t) {
    memset(t, 0, sizeof *t);
    bool *on_path = xcalloc((size_t)p->nlaunches + 1, sizeof(bool));
    stream_longest_path_ms(p, r, on_path);
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        if (l->once || launch_choice_part(l)) continue;   /* (the one launch counts instead of its parts) */
        const char *c = l->kclass ? l->kclass : "-";
        int j = 0;
        while (j < t->n && strcmp(t->name[j], c)) j++;
        if (j == t->n) {
            ASSERT(t->n < CLASS_TOTALS_MAX, "more than %d kernel classes", CLASS_TOTALS_MAX);
            t->name[t->n++] = c;
        }
        t->launches[j]++;
        t->read[j] += launch_moved_bytes(l, false);
        t->written[j] += launch_moved_bytes(l, true);
        t->flops[j] += launch_flops(l);
        t->floor_ms[j] += launch_floor_ms(l, r, NULL);
        if (on_path[k]) t->path_ms[j] += launch_floor_ms(l, r, NULL);
    }
    free(on_path);
}

static void dump_class_totals(const Program *p, const FloorRates *r, FILE *out) {
    ClassTotals c;
    program_class_totals(p, r, &c);
    fprintf(out, "per step, by class (once-launches left out; floor: below; on path: the floors of its launches on the "
                 "longest dependency path)\n%-12s %9s %10s %10s %12s %9s %9s\n", "class", "launches", "reads GB",
            "writes GB", "GEMM GFLOP", "floor ms", "on path");
    double t[6] = {0};
    for (int j = 0; j < c.n; j++) {
        fprintf(out, "%-12s %9.0f %10.2f %10.2f %12.1f %9.2f %9.2f\n", c.name[j], c.launches[j], c.read[j] / 1e9,
                c.written[j] / 1e9, c.flops[j] / 1e9, c.floor_ms[j], c.path_ms[j]);
        t[0] += c.launches[j]; t[1] += c.read[j]; t[2] += c.written[j]; t[3] += c.flops[j]; t[4] += c.floor_ms[j];
        t[5] += c.path_ms[j];
    }
    fprintf(out, "%-12s %9.0f %10.2f %10.2f %12.1f %9.2f %9.2f\n", "total", t[0], t[1] / 1e9, t[2] / 1e9, t[3] / 1e9,
            t[4], t[5]);
}

void program_dump_launches(const Program *p, const FloorRates *r, FILE *out) {
    static const char *const KIND[] = {"kernel", "gemm", "memset", "copy"};
    fprintf(out, "%-6s %-6s %-11s %-44s %-22s %9s %9s\n", "launch", "kind", "class", "what", "grid x block",
            "reads MB", "writes MB");
    for (int k = 0; k < p->nlaunches; k++) {
        const Launch *l = &p->launches[k];
        const double rd = launch_moved_bytes(l, false) / 1e6, wr = launch_moved_bytes(l, true) / 1e6;
        char what[96] = "", shape[48] = "";
        switch (l->kind) {
        case LK_KERNEL:
            if (l->instances > 1) snprintf(what, sizeof what, "%s (x%d batched)", l->name, l->instances);
            else snprintf(what, sizeof what, "%s%s", l->name, l->once ? " (once, not per step)" : "");
            snprintf(shape, sizeof shape, "[%u,%u,%u]x[%u,%u]", l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1]);
            break;
        case LK_GEMM: {
            const GemmDesc *g = &l->gemm;
            if (g->pair)
                snprintf(what, sizeof what, "%lld x %lld x %lld: A B%s + A2 B2%s (own)", (long long)g->M,
                         (long long)g->N, (long long)g->K, g->tb ? "^T" : "", g->tb ? "^T" : "");
            else if (g->swiglu)
                snprintf(what, sizeof what, "swiglu%s %lld x %lld x %lld%s (own)", g->backward ? " backward" : "",
                         (long long)g->M, (long long)g->N, (long long)g->K, g->products ? ", + products" : "");
            else
                snprintf(what, sizeof what, "%lld x %lld x %lld: A%s B%s, %s%s%s", (long long)g->M, (long long)g->N,
                         (long long)g->K, g->ta ? "^T" : "", g->tb ? "^T" : "", g->bf16 ? "bf16" : "f32",
                         g->has_acc ? ", + C" : "", l->own_module >= 0 ? " (+own)" : "");
            if (g->batch > 1) snprintf(shape, sizeof shape, "batch %lld", (long long)g->batch);
            break;
        }
        case LK_MEMSET: snprintf(what, sizeof what, "zero %.3f MB", (double)l->bytes / 1e6); break;
        case LK_COPY: snprintf(what, sizeof what, "copy %.3f MB", (double)l->bytes / 1e6); break;
        }
        if (launch_choice_part(l)) {   /* (the runtime runs either these or the one launch after them) */
            const size_t n = strlen(what);
            snprintf(what + n, sizeof what - n, " (or one launch %d)", l->choice);
        }
        fprintf(out, "L%-5d %-6s %-11s %-44s %-22s %9.2f %9.2f\n", k, KIND[l->kind], l->kclass ? l->kclass : "-", what,
                shape, rd, wr);
    }
    dump_class_totals(p, r, out);
    dump_floor(p, r, out);
}

void program_summary(const Program *p, FILE *out) {
    int counts[LK_COPY + 1] = {0}, own = 0;
    for (int k = 0; k < p->nlaunches; k++) {
        counts[p->launches[k].kind]++;
        own += p->launches[k].kind == LK_GEMM && p->launches[k].own_module >= 0 && !gemm_one_launch(&p->launches[k].gemm);
    }
    fprintf(out, "%d kernels (%d generated modules + templates, %d from the NVRTC cache) in %d launches, %d GEMMs, "
                 "%d memsets, %d copies; %d groups; %d GEMMs with vmc's own kernel beside cuBLASLt's",
            p->nkernels, p->nmodules, p->ncached, counts[LK_KERNEL], p->ngemms, counts[LK_MEMSET],
            counts[LK_COPY], p->f->ngroups, own);
    int backward = 0, pairs = 0;   /* (program_swiglu.c, program_pair.c) */
    for (int k = 0; k < p->nlaunches; k++) {
        backward += p->launches[k].kind == LK_GEMM && p->launches[k].gemm.backward;
        pairs += p->launches[k].kind == LK_GEMM && p->launches[k].gemm.pair;
    }
    if (p->nchoices > backward + pairs)
        fprintf(out, "; %d SwiGLU launches (a gate and its two products in one kernel) beside their 3 launches each",
                p->nchoices - backward - pairs);
    if (backward)
        fprintf(out, "; %d SwiGLU backward launches (dh's product and the gradients in one kernel) beside their 2 "
                     "launches each", backward);
    if (pairs)
        fprintf(out, "; %d sums of two products in one launch (SwiGLU's input gradient) beside their 2 GEMMs each",
                pairs);
    fprintf(out, "\n");
    fprintf(out, "memory:");
    for (int k = 0; k < AR_COUNT_; k++)
        fprintf(out, " %s %.1f MiB%s", arena_kind_name((ArenaKind)k), (double)p->arena_bytes[k] / (1 << 20),
                k + 1 < AR_COUNT_ ? "," : "\n");
    fprintf(out, "activations without reuse: %.1f MiB; GEMM work per step: %.3f GFLOP\n",
            (double)p->f->act_naive_bytes / (1 << 20), (double)p->gemm_flops * 1e-9);
    fprintf(out, "codegen %.3f s, NVRTC compile %.3f s\n", p->codegen_s, p->compile_s);
}
