/* cuda_exec.c — the cuda backend: runs a compiled Program. One cuMemAlloc per arena at creation, nothing
 * allocated inside a step; the step (kernels, cuBLASLt GEMMs, memsets, ASSIGN copies) is captured once as a CUDA
 * graph and replayed. The step's (seed, step) pair lives in device memory, copied from a pinned ring before each
 * replay. Device storage of float tensors is f32 (codegen.h); the host sees node dtypes (bf16 converted here). */
#include "cuda_impl.h"
#include "bench_gaps.h"
#include "cuda_tma.h"
#include "cli.h"
#include "gpu_clocks.h"
#include "program_knobs.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- setup */
static void load_modules(Cuda *c) {
    Program *p = c->p;
    c->mods = xcalloc((size_t)p->nmodules + 1, sizeof(CUmodule));
    for (int k = 0; k < p->nmodules; k++) CU_CHECK(c->cu->cuModuleLoadData(&c->mods[k], p->modules[k].bin.cubin));
    int nl = p->nlaunches;
    c->fn = xcalloc((size_t)nl + 1, sizeof(CUfunction));
    c->reduce_fn = xcalloc((size_t)nl + 1, sizeof(CUfunction));
    c->own_grid = xcalloc((size_t)nl + 1, sizeof(unsigned));
    c->vals = xcalloc((size_t)nl + 1, sizeof(CUdeviceptr *));
    c->params = xcalloc((size_t)nl + 1, sizeof(void **));
    c->gemm = xcalloc((size_t)nl + 1, sizeof(GemmPlan));
    for (int k = 0; k < nl; k++) {
        Launch *l = &p->launches[k];
        if (l->kind == LK_GEMM && l->own_module >= 0) {   /* its own kernel, launched with per-stream arguments */
            CU_CHECK(c->cu->cuModuleGetFunction(&c->fn[k], c->mods[l->own_module], l->own.k.name));
            if (l->own.split > 1 || l->gemm.backward)   /* (SwiGLU's backward: W's transpose) */
                CU_CHECK(c->cu->cuModuleGetFunction(&c->reduce_fn[k], c->mods[l->own_module], l->own.reduce.name));
            if (l->own.k.smem > 48 * 1024)
                CU_CHECK(c->cu->cuFuncSetAttribute(c->fn[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                   (int)l->own.k.smem));
            c->own_grid[k] = l->own.k.tiles_in_turn ? cuda_hopper_grid(c->cu, c->fn[k], &l->own.k) : l->own.k.grid[0];
        }
        if (l->kind != LK_KERNEL) continue;   /* (GEMMs: plan_gemms) */
        CU_CHECK(c->cu->cuModuleGetFunction(&c->fn[k], c->mods[l->module], l->name));
        if (l->smem > 48 * 1024)
            CU_CHECK(c->cu->cuFuncSetAttribute(c->fn[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)l->smem));
        int n = l->nargs + (l->rng_args ? 1 : 0), inst = l->instances > 1 ? l->instances : 1;
        c->vals[k] = xcalloc((size_t)(n * inst) + 1, sizeof(CUdeviceptr));
        c->params[k] = xcalloc((size_t)n + 1, sizeof(void *));
        for (int i = 0; i < inst; i++) {
            CUdeviceptr *v = c->vals[k] + (size_t)i * n;
            for (int j = 0; j < l->nargs; j++) v[j] = addr(c, l->args[(size_t)i * l->nargs + j]);
            if (l->rng_args) v[l->nargs] = c->rng;
        }
        /* a batched launch takes them all as one struct (codegen_group_batched), others one pointer each */
        if (inst > 1) c->params[k][0] = c->vals[k];
        else for (int j = 0; j < n; j++) c->params[k][j] = &c->vals[k][j];
    }
}


static void upload_tables(Cuda *c) {
    const Fusion *f = c->p->f;
    for (int k = 0; k < f->g->nnodes; k++) {
        const Node *n = f->g->nodes[k];
        if (n->op != OP_TABLE || !f->live[k] || !f->mat[k]) continue;
        size_t bytes = (size_t)shape_numel(n->shape) * 4;
        const void *src = n->fdata ? (const void *)n->fdata : (const void *)n->idata;
        copy_in(c, addr(c, (BufRef){f->buf[k].arena, f->buf[k].offset}), src, bytes);
    }
}

/* ---------------------------------------------------------------- running */
/* The priority launch k runs at: the higher one on the plan's critical path (streams.h). */
static int launch_priority(const Cuda *c, int k) { return c->plan->critical[k] ? c->prio_high : c->prio_low; }

/* Launch k on capture stream s (0: the exec's stream). */
static void launch_on(Cuda *c, int k, int s) {
    if (cx_skipped(c, k)) return;   /* (a one launch or its parts: cuda_choice.c) */
    const Launch *l = &c->p->launches[k];
    CUstream st = c->side[s];
    switch (l->kind) {
    case LK_KERNEL: cx_launch_kernel(c, c->fn[k], l->grid, l->block, l->smem, s, c->params[k]); return;
    case LK_GEMM: cx_gemm_launch(c, k, s); return;
    case LK_MEMSET: CU_CHECK(c->cu->cuMemsetD32Async(addr(c, l->dst), 0, (size_t)l->bytes / 4, st)); return;
    case LK_COPY: CU_CHECK(c->cu->cuMemcpyDtoDAsync(addr(c, l->dst), addr(c, l->src), (size_t)l->bytes, st)); return;
    }
}
static void launch(Cuda *c, int k) { launch_on(c, k, 0); }

static void push_rng(Cuda *c, const StepInfo *s) {
    int k = c->rng_slot;
    unsigned long long *slot = c->host_rng + 2 * k;
    c->rng_slot = (k + 1) % RNG_RING;
    if (c->rng_ev[k]) CU_CHECK(c->cu->cuEventSynchronize(c->rng_ev[k]));   /* its copy of RNG_RING steps ago ran */
    else CU_CHECK(c->cu->cuEventCreate(&c->rng_ev[k], CU_EVENT_DISABLE_TIMING));
    slot[0] = s->seed;
    slot[1] = s->step;
    CU_CHECK(c->cu->cuMemcpyHtoDAsync(c->rng, slot, 16, c->st));
    CU_CHECK(c->cu->cuEventRecord(c->rng_ev[k], c->st));
}

/* Sets capture stream s's priority where it is not that already: the kernel nodes captured next copy it, which is
 * how cuBLASLt's GEMM kernels (launched by the library, not by launch_on) get theirs. */
static void set_priority(Cuda *c, int s, int *now, int want) {
    if (*now == want) return;
    CUstreamAttrValue v = {.priority = want};
    CU_CHECK(c->cu->cuStreamSetAttribute(c->side[s], CU_STREAM_ATTRIBUTE_PRIORITY, &v));
    *now = want;
}

/* The captured kernel nodes and how many run at the higher priority: each took its capture stream's priority
 * (set_priority), which `vmc bench` shows, so that this inheritance is seen to hold. */
static void count_priorities(Cuda *c, CUgraph graph) {
    size_t n = 0;
    CU_CHECK(c->cu->cuGraphGetNodes(graph, NULL, &n));
    CUgraphNode *nodes = xcalloc(n ? n : 1, sizeof *nodes);
    CU_CHECK(c->cu->cuGraphGetNodes(graph, nodes, &n));
    c->graph_kernels = c->graph_high = 0;
    for (size_t k = 0; k < n; k++) {
        CUgraphNodeType t;
        CU_CHECK(c->cu->cuGraphNodeGetType(nodes[k], &t));
        if (t != CU_GRAPH_NODE_TYPE_KERNEL) continue;
        CUkernelNodeAttrValue v;
        CU_CHECK(c->cu->cuGraphKernelNodeGetAttribute(nodes[k], CU_LAUNCH_ATTRIBUTE_PRIORITY, &v));
        c->graph_kernels++;
        c->graph_high += c->priority && v.priority == c->prio_high && c->prio_high != c->prio_low;
    }
    free(nodes);
}

/* The step as one graph over the plan's streams: the side streams fork from the exec's stream, each launch first
 * waits for the events of the launches it follows on other streams, and everything joins back at the end. */
static void capture(Cuda *c) {
    const StreamPlan *sp = c->plan;
    const int nl = c->p->nlaunches;
    CUevent *ev = xcalloc((size_t)nl + 1, sizeof(CUevent)), fork, join[STREAMS_MAX];
    CUgraph graph;
    CU_CHECK(c->cu->cuStreamBeginCapture(c->st, CU_STREAM_CAPTURE_MODE_RELAXED));
    CU_CHECK(c->cu->cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
    CU_CHECK(c->cu->cuEventRecord(fork, c->st));
    for (int s = 1; s < sp->nstreams; s++) CU_CHECK(c->cu->cuStreamWaitEvent(c->side[s], fork, 0));
    int prio[STREAMS_MAX];   /* each capture stream's priority now (set_priority) */
    for (int s = 0; s < sp->nstreams; s++) prio[s] = c->prio_low;
    for (int k = 0; k < nl; k++) {
        if (c->p->launches[k].once) continue;
        const int s = sp->stream[k];
        for (int w = 0; w < sp->nwait[k]; w++) CU_CHECK(c->cu->cuStreamWaitEvent(c->side[s], ev[sp->wait[k][w]], 0));
        if (c->priority) set_priority(c, s, &prio[s], launch_priority(c, k));
        launch_on(c, k, s);
        if (sp->record[k]) {
            CU_CHECK(c->cu->cuEventCreate(&ev[k], CU_EVENT_DISABLE_TIMING));
            CU_CHECK(c->cu->cuEventRecord(ev[k], c->side[s]));
        }
    }
    for (int s = 1; s < sp->nstreams; s++) {
        CU_CHECK(c->cu->cuEventCreate(&join[s], CU_EVENT_DISABLE_TIMING));
        CU_CHECK(c->cu->cuEventRecord(join[s], c->side[s]));
        CU_CHECK(c->cu->cuStreamWaitEvent(c->st, join[s], 0));
    }
    CU_CHECK(c->cu->cuStreamEndCapture(c->st, &graph));
    for (int s = 0; c->priority && s < sp->nstreams; s++) set_priority(c, s, &prio[s], c->prio_low);
    for (int k = 0; k < nl; k++) if (ev[k]) CU_CHECK(c->cu->cuEventDestroy(ev[k]));
    for (int s = 1; s < sp->nstreams; s++) CU_CHECK(c->cu->cuEventDestroy(join[s]));
    CU_CHECK(c->cu->cuEventDestroy(fork));
    free(ev);
    count_priorities(c, graph);
    CU_CHECK(c->cu->cuGraphInstantiate(&c->gexec, graph, c->priority ? CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY : 0));
    CU_CHECK(c->cu->cuGraphDestroy(graph));
    c->captured = true;
}

/* The `once` launches (bf16 copies of parameters no launch writes), before a step when the host wrote one. */
static void refresh_once(Cuda *c) {
    if (!c->params_dirty) return;
    for (int k = 0; k < c->p->nlaunches; k++) if (c->p->launches[k].once) launch(c, k);
    c->params_dirty = false;
}

static void cuda_run(Exec *e, const StepInfo *s) {
    Cuda *c = (Cuda *)e;
    push_rng(c, s);
    refresh_once(c);
    if (c->opt.no_graph || c->runs++ == 0) {   /* the first step runs eagerly: lazy module loads happen outside capture */
        for (int k = 0; k < c->p->nlaunches; k++) if (!c->p->launches[k].once) launch(c, k);
        return;
    }
    if (!c->captured) capture(c);
    CU_CHECK(c->cu->cuGraphLaunch(c->gexec, c->st));
}

static const Buf *storage(const Cuda *c, const Node *n) {
    const Fusion *f = c->p->f;
    const Node *r = f->repl[n->id];
    ASSERT(f->mat[r->id] && f->live[r->id], "node %%%u (%s) has no device buffer: pass it in keep", n->id, op_name(n->op));
    return &f->buf[r->id];
}

/* An INPUT (the next batch) goes through its own pinned buffer and a device staging buffer: the host-to-device
 * copy runs on a copy stream beside the step in flight, and the step's stream only copies the staged data into the
 * input (device to device, a few microseconds for a batch) before the next step. The host returns at once; it
 * waits only for this input's previous copy out of the pinned buffer, long done. ARM-B pretraining with data
 * (batch 128, 57 MB of images a step; H200, same run, two rounds): 3,894 / 3,861 -> 4,003 / 3,975 img/s against
 * the copy on the step's stream. */
static bool staged_write(Cuda *c, const Node *n, const void *host, size_t bytes, CUdeviceptr dst, bool borrowed) {
    if (n->op != OP_INPUT || n->dtype == DT_BF16) return false;
    int id = (int)n->id;
    if (!c->copy_st) CU_CHECK(c->cu->cuStreamCreate(&c->copy_st, CU_STREAM_NON_BLOCKING));
    struct Stage *sg = &c->stage[id];
    if (!sg->dev) {
        CU_CHECK(c->cu->cuMemAlloc(&sg->dev, bytes));
        CU_CHECK(c->cu->cuEventCreate(&sg->copied, CU_EVENT_DISABLE_TIMING));
        CU_CHECK(c->cu->cuEventCreate(&sg->used, CU_EVENT_DISABLE_TIMING));
        c->device_bytes += (int64_t)bytes;
    } else {
        CU_CHECK(c->cu->cuEventSynchronize(sg->copied));                 /* the pinned buffer is free */
        CU_CHECK(c->cu->cuStreamWaitEvent(c->copy_st, sg->used, 0));     /* and, on the GPU, the device one */
    }
    if (!borrowed) {   /* the caller's memory may change once this returns: a copy in our own pinned buffer */
        if (!sg->host) CU_CHECK(c->cu->cuMemAllocHost(&sg->host, bytes));
        memcpy(sg->host, host, bytes);
        host = sg->host;
    }
    CU_CHECK(c->cu->cuMemcpyHtoDAsync(sg->dev, host, bytes, c->copy_st));
    CU_CHECK(c->cu->cuEventRecord(sg->copied, c->copy_st));
    CU_CHECK(c->cu->cuStreamWaitEvent(c->st, sg->copied, 0));
    CU_CHECK(c->cu->cuMemcpyDtoDAsync(dst, sg->dev, bytes, c->st));
    CU_CHECK(c->cu->cuEventRecord(sg->used, c->st));
    return true;
}

static void write_to(Cuda *c, const Node *n, const void *host, size_t bytes, bool borrowed) {
    ASSERT(n->op == OP_PARAM || n->op == OP_INPUT || n->op == OP_STATE, "write to a computed node");
    size_t numel = (size_t)shape_numel(n->shape);
    ASSERT(bytes == numel * (size_t)dtype_size(n->dtype), "write of %zu bytes to %s", bytes, n->name);
    const Buf *b = storage(c, n);
    if (staged_write(c, n, host, bytes, c->arena[b->arena] + (CUdeviceptr)b->offset, borrowed)) return;
    CU_CHECK(c->cu->cuStreamSynchronize(c->st));
    if (n->op == OP_PARAM) c->params_dirty = true;   /* its bf16 copy (a `once` launch) is remade before the next step */
    if (n->dtype != DT_BF16) {
        copy_in(c, c->arena[b->arena] + (CUdeviceptr)b->offset, host, bytes);
        return;
    }
    float *tmp = xmalloc(numel * 4);
    for (size_t i = 0; i < numel; i++) tmp[i] = bf16_to_f32(((const uint16_t *)host)[i]);
    copy_in(c, c->arena[b->arena] + (CUdeviceptr)b->offset, tmp, numel * 4);
    free(tmp);
}

static void cuda_write(Exec *e, const Node *n, const void *host, size_t bytes) { write_to((Cuda *)e, n, host, bytes, false); }

/* A batch's images straight from the loader's pinned buffer: no 57 MB memcpy on the training loop's thread per
 * ARM-B step. (Other nodes than INPUTs are copied at once, as by cuda_write.) */
static void cuda_write_borrowed(Exec *e, const Node *n, const void *host, size_t bytes) {
    write_to((Cuda *)e, n, host, bytes, true);
}

/* The borrowed memory is free once its copy to the device staging buffer has run: every staged input's last copy
 * (those from our own pinned buffers are long done). */
static void cuda_write_release(Exec *e) {
    Cuda *c = (Cuda *)e;
    const Graph *g = c->base.g;
    for (int k = 0; k < g->inputs.n; k++) {
        const struct Stage *sg = &c->stage[((const Node *)g->inputs.items[k])->id];
        if (sg->dev) CU_CHECK(c->cu->cuEventSynchronize(sg->copied));
    }
}

static void cuda_read(Exec *e, const Node *n, void *host, size_t bytes) {
    Cuda *c = (Cuda *)e;
    size_t numel = (size_t)shape_numel(n->shape);
    ASSERT(bytes == numel * (size_t)dtype_size(n->dtype), "read of %zu bytes from node %u", bytes, n->id);
    const Buf *b = storage(c, n);
    CU_CHECK(c->cu->cuStreamSynchronize(c->st));
    if (n->dtype != DT_BF16) {
        copy_out(c, host, c->arena[b->arena] + (CUdeviceptr)b->offset, bytes);
        return;
    }
    float *tmp = xmalloc(numel * 4);
    copy_out(c, tmp, c->arena[b->arena] + (CUdeviceptr)b->offset, numel * 4);
    for (size_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &tmp[i], 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = u + 0x7fffu + ((u >> 16) & 1u);
        ((uint16_t *)host)[i] = (uint16_t)(u >> 16);
    }
    free(tmp);
}

/* The value n holds once the work queued so far is done, copied into pinned memory without waiting. */
static int cuda_read_start(Exec *e, const Node *n, void *host, size_t bytes) {
    Cuda *c = (Cuda *)e;
    ASSERT(bytes == (size_t)shape_numel(n->shape) * (size_t)dtype_size(n->dtype) && bytes <= EXEC_READ_MAX &&
           n->dtype != DT_BF16, "read_start of %zu bytes from node %u", bytes, n->id);
    int t = 0;
    while (t < EXEC_READS_IN_FLIGHT && c->late[t].busy) t++;
    ASSERT(t < EXEC_READS_IN_FLIGHT, "more than %d reads started and not finished", EXEC_READS_IN_FLIGHT);
    struct LateRead *r = &c->late[t];
    if (!r->pinned) {
        CU_CHECK(c->cu->cuMemAllocHost(&r->pinned, EXEC_READ_MAX));
        CU_CHECK(c->cu->cuEventCreate(&r->ev, CU_EVENT_DISABLE_TIMING));
    }
    const Buf *b = storage(c, n);
    CU_CHECK(c->cu->cuMemcpyDtoHAsync(r->pinned, c->arena[b->arena] + (CUdeviceptr)b->offset, bytes, c->st));
    CU_CHECK(c->cu->cuEventRecord(r->ev, c->st));
    r->host = host;
    r->bytes = bytes;
    r->busy = true;
    return t;
}

static void cuda_read_finish(Exec *e, int t) {
    Cuda *c = (Cuda *)e;
    ASSERT(t >= 0 && t < EXEC_READS_IN_FLIGHT && c->late[t].busy, "read_finish of ticket %d, not in flight", t);
    CU_CHECK(c->cu->cuEventSynchronize(c->late[t].ev));
    memcpy(c->late[t].host, c->late[t].pinned, c->late[t].bytes);
    c->late[t].busy = false;
}

static void cuda_free(Exec *e) {
    Cuda *c = (Cuda *)e;
    if (c->st) CU_CHECK(c->cu->cuStreamSynchronize(c->st));
    if (c->captured) CU_CHECK(c->cu->cuGraphExecDestroy(c->gexec));
    for (int k = 0; c->p && k < c->p->nlaunches; k++) {
        free(c->vals[k]);
        free(c->params[k]);
        if (c->p->launches[k].kind == LK_GEMM && c->gemm[k].desc) {   /* (none: SwiGLU's own kernel alone) */
            GemmPlan *g = &c->gemm[k];
            c->lt->cublasLtMatrixLayoutDestroy(g->la);
            c->lt->cublasLtMatrixLayoutDestroy(g->lb);
            c->lt->cublasLtMatrixLayoutDestroy(g->lc);
            c->lt->cublasLtMatmulDescDestroy(g->desc);
        }
    }
    for (int k = 0; c->p && k < c->p->nmodules; k++) if (c->mods[k]) c->cu->cuModuleUnload(c->mods[k]);
    for (int k = 0; k < AR_COUNT_; k++) if (c->arena[k]) c->cu->cuMemFree(c->arena[k]);
    if (c->rng) c->cu->cuMemFree(c->rng);
    if (c->host_rng) c->cu->cuMemFreeHost(c->host_rng);
    for (int k = 0; k < RNG_RING; k++) if (c->rng_ev[k]) c->cu->cuEventDestroy(c->rng_ev[k]);
    for (int k = 0; c->stage && k < e->g->nnodes; k++) {
        const struct Stage *sg = &c->stage[k];
        if (!sg->dev) continue;
        if (sg->host) c->cu->cuMemFreeHost(sg->host);
        c->cu->cuMemFree(sg->dev);
        c->cu->cuEventDestroy(sg->copied);
        c->cu->cuEventDestroy(sg->used);
    }
    free(c->stage);
    if (c->copy_st) c->cu->cuStreamDestroy(c->copy_st);
    for (int t = 0; t < EXEC_READS_IN_FLIGHT; t++)
        if (c->late[t].pinned) { c->cu->cuMemFreeHost(c->late[t].pinned); c->cu->cuEventDestroy(c->late[t].ev); }
    if (c->lth) c->lt->cublasLtDestroy(c->lth);
    for (int s = 1; c->plan && s < c->plan->nstreams; s++) {
        if (c->side[s]) c->cu->cuStreamDestroy(c->side[s]);
        if (c->ws[s]) c->cu->cuMemFree(c->ws[s]);
    }
    stream_plan_free(c->plan);
    if (c->st) c->cu->cuStreamDestroy(c->st);
    free(c->vals); free(c->params); free(c->gemm); free(c->choice_one); free(c->fn); free(c->reduce_fn); free(c->own_grid); free(c->mods);
    program_free(c->p);
    free(c);
}

static const ExecVT CUDA_VT = {"cuda", cuda_run, cuda_write, cuda_read, cuda_read_start, cuda_read_finish,
                               cuda_write_borrowed, cuda_write_release, cuda_free};

/* Streams the step graph spreads over: VMC_STREAMS (1 to STREAMS_MAX; 1 = the program order on one stream). Default: 8 for
 * a training step (H200, ARM-B, 1 / 4 / 8 streams: fine-tuning 1311 / 1334 / 1341 img/s, pretraining 3158 / 3195 /
 * 3233), 4 for inference (H100, ARM-B b256 with memory reused 20 groups late, ms a step in two rounds: 4 streams
 * 34.191 / 34.239, 8 streams 34.199 / 34.131, against 34.965 / 34.867 on one stream reusing memory at once). */
static int capture_streams(const Program *p) {
    return (int)env_int("VMC_STREAMS", 1, STREAMS_MAX, p->params_constant ? 4 : 8);
}

/* Out of memory is a user-fixable error, not a crash: the message (CUDA_OOM_FORMAT, parsed by train_setup.c) names the
 * bytes the arenas need and the bytes free. */
static bool arenas_fit(Cuda *c, int nstreams, char *err, int errlen) {
    int64_t need = 256 + (int64_t)(nstreams - 1) * PROGRAM_GEMM_WORKSPACE;
    for (int k = 0; k < AR_COUNT_; k++) need += c->p->arena_bytes[k] > 0 ? c->p->arena_bytes[k] : 256;
    size_t fr = 0, tot = 0;
    CU_CHECK(c->cu->cuMemGetInfo(&fr, &tot));
    if (need <= (int64_t)fr) return true;
    snprintf(err, (size_t)errlen, CUDA_OOM_FORMAT, (long long)need, (long long)fr);
    return false;
}

Exec *cuda_exec_create(const Graph *g, Node *const *keep, int nkeep, const CudaExecOptions *opt, char *err, int errlen) {
    if (!cuda_available()) {
        snprintf(err, (size_t)errlen, "no usable GPU: %s", cuda_unavailable_reason());
        return NULL;
    }
    Cuda *c = xcalloc(1, sizeof *c);
    c->opt = *opt;
    c->cu = cuda_api();
    CUdevice dev = cuda_init_device(opt->device);
    ProgramOptions po = {.arch = cuda_device_arch(dev), .sms = cuda_device_sms(dev), .bf16 = opt->bf16,
                         .scan_recompute = opt->scan_recompute,
                         .no_own_gemm = env_int("VMC_OWN_GEMM", 0, 3, 1) == 0};
    program_knobs_from_env(&po);   /* (timing knobs) */
    c->p = program_build(g, keep, nkeep, &po, err, errlen);
    if (!c->p) { free(c); return NULL; }
    c->base.vt = &CUDA_VT;
    c->base.g = g;
    c->pdl = po.arch >= 90 && env_int("VMC_PDL", 0, 1, 1) == 1;   /* VMC_PDL=0: plain launches (timing) */
    /* VMC_OWN_GEMM: 0 cuBLASLt alone, 1 vmc's skinny-GEMM kernel where it timed faster (and agrees with cuBLASLt),
     * 2 it wherever it applies (unchecked: tests that compare with the cpu backend), 3 wherever it agrees */
    c->own_gemm = (int)env_int("VMC_OWN_GEMM", 0, 3, 1);
    c->priority = env_int("VMC_PRIORITY", 0, 1, 1) == 1;   /* (VMC_PRIORITY=0: one priority for all) */
    CU_CHECK(c->cu->cuCtxGetStreamPriorityRange(&c->prio_low, &c->prio_high));
    c->lt = cublaslt_api();
    CUBLAS_CHECK(c->lt->cublasLtCreate(&c->lth));
    CU_CHECK(c->cu->cuStreamCreate(&c->st, CU_STREAM_NON_BLOCKING));
    const int nstreams = opt->no_graph ? 1 : capture_streams(c->p);
    if (!arenas_fit(c, nstreams, err, errlen)) { c->cu->cuStreamDestroy(c->st); c->lt->cublasLtDestroy(c->lth); program_free(c->p); free(c); return NULL; }
    for (int k = 0; k < AR_COUNT_; k++) {
        size_t bytes = (size_t)(c->p->arena_bytes[k] > 0 ? c->p->arena_bytes[k] : 256);
        CU_CHECK(c->cu->cuMemAlloc(&c->arena[k], bytes));
        CU_CHECK(c->cu->cuMemsetD8(c->arena[k], 0, bytes));   /* STATE starts at zero; no stale NaNs anywhere */
        c->device_bytes += (int64_t)bytes;
    }
    c->plan = stream_plan(c->p, nstreams);
    c->params_dirty = true;
    c->side[0] = c->st;
    c->ws[0] = c->arena[AR_WORK];
    for (int s = 1; s < nstreams; s++) {
        CU_CHECK(c->cu->cuStreamCreate(&c->side[s], CU_STREAM_NON_BLOCKING));
        CU_CHECK(c->cu->cuMemAlloc(&c->ws[s], PROGRAM_GEMM_WORKSPACE));
        c->device_bytes += PROGRAM_GEMM_WORKSPACE;
    }
    CU_CHECK(c->cu->cuMemAlloc(&c->rng, 256));
    CU_CHECK(c->cu->cuMemAllocHost((void **)&c->host_rng, sizeof(unsigned long long) * 2 * RNG_RING));
    c->stage = xcalloc((size_t)g->nnodes + 1, sizeof *c->stage);
    load_modules(c);
    c->choice_one = xcalloc((size_t)c->p->nchoices + 1, sizeof(bool));
    cx_plan_gemms(c);
    upload_tables(c);
    return &c->base;
}

const Program *cuda_exec_program(const Exec *e) { return ((const Cuda *)e)->p; }
int cuda_exec_streams(const Exec *e) { return ((const Cuda *)e)->plan->nstreams; }
void cuda_exec_graph_priorities(const Exec *e, int *kernels, int *high) {
    *kernels = ((const Cuda *)e)->graph_kernels;
    *high = ((const Cuda *)e)->graph_high;
}
int64_t cuda_exec_device_bytes(const Exec *e) { return ((const Cuda *)e)->device_bytes; }

static int class_index(CudaProfile *prof, const char *name) {
    for (int k = 0; k < prof->n; k++) if (!strcmp(prof->names[k], name)) return k;
    ASSERT(prof->n < CLASS_MAX, "too many kernel classes");
    prof->names[prof->n] = name;
    prof->ms[prof->n] = 0;
    return prof->n++;
}

/* Blocks of launch k's kernel an SM can hold at its block size and dynamic shared memory; 0 for other launches. */
static int blocks_per_sm(Cuda *c, int k) {
    const Launch *l = &c->p->launches[k];
    if (l->kind != LK_KERNEL) return 0;
    int n = 0;
    const int threads = (int)(l->block[0] * l->block[1] * l->block[2]);
    CU_CHECK(c->cu->cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, c->fn[k], threads, l->smem));
    return n;
}

void cuda_exec_profile(Exec *e, const StepInfo *s, int steps, CudaProfile *prof) {
    Cuda *c = (Cuda *)e;
    int nl = c->p->nlaunches;
    CUevent *ev = xcalloc((size_t)nl + 1, sizeof(CUevent));
    for (int k = 0; k <= nl; k++) CU_CHECK(c->cu->cuEventCreate(&ev[k], CU_EVENT_DEFAULT));
    refresh_once(c);
    for (int t = 0; t < steps; t++) {
        push_rng(c, s);
        CU_CHECK(c->cu->cuEventRecord(ev[0], c->st));
        for (int k = 0; k < nl; k++) {
            if (!c->p->launches[k].once) launch(c, k);
            CU_CHECK(c->cu->cuEventRecord(ev[k + 1], c->st));
        }
        CU_CHECK(c->cu->cuEventSynchronize(ev[nl]));
        for (int k = 0; k < nl; k++) {
            if (c->p->launches[k].once || cx_skipped(c, k)) continue;
            float ms = 0;
            CU_CHECK(c->cu->cuEventElapsedTime(&ms, ev[k], ev[k + 1]));
            prof->ms[class_index(prof, c->p->launches[k].kclass)] += ms;
            const char *name = launch_profile_name(&c->p->launches[k]);
            int j = 0;
            while (j < prof->nk && strcmp(prof->knames[j], name)) j++;
            if (j == prof->nk && prof->nk < TOP_MAX) {
                prof->knames[j] = name; prof->kms[j] = 0; prof->kcalls[j] = 0; prof->kbytes[j] = 0; prof->nk++;
                prof->kblocks[j] = blocks_per_sm(c, k);
            }
            if (j < prof->nk) {
                prof->kms[j] += ms;
                prof->kcalls[j]++;
                prof->kbytes[j] += launch_moved_bytes(&c->p->launches[k], false) + launch_moved_bytes(&c->p->launches[k], true);
            }
        }
    }
    for (int k = 0; k <= nl; k++) CU_CHECK(c->cu->cuEventDestroy(ev[k]));
    free(ev);
}

double cuda_exec_time_steps(Exec *e, const StepInfo *s, int steps) {
    return cuda_exec_time_steps_sampled(e, s, steps, NULL, NULL);
}

double cuda_exec_time_steps_sampled(Exec *e, const StepInfo *s, int steps, void (*sample)(void *), void *ctx) {
    Cuda *c = (Cuda *)e;
    CUevent a, b;
    CU_CHECK(c->cu->cuEventCreate(&a, CU_EVENT_DEFAULT));
    CU_CHECK(c->cu->cuEventCreate(&b, CU_EVENT_DEFAULT));
    CU_CHECK(c->cu->cuEventRecord(a, c->st));
    StepInfo si = *s;
    for (int t = 0; t < steps; t++, si.step++) cuda_run(e, &si);
    CU_CHECK(c->cu->cuEventRecord(b, c->st));
    while (sample && c->cu->cuEventQuery(b) == CUDA_ERROR_NOT_READY) {
        sample(ctx);
        nanosleep(&(struct timespec){0, 5000000}, NULL);   /* 5 ms */
    }
    CU_CHECK(c->cu->cuEventSynchronize(b));
    float ms = 0;
    CU_CHECK(c->cu->cuEventElapsedTime(&ms, a, b));
    CU_CHECK(c->cu->cuEventDestroy(a));
    CU_CHECK(c->cu->cuEventDestroy(b));
    return (double)ms / (steps > 0 ? steps : 1);
}

bool cuda_exec_clocks_open(const Exec *e, char *why, size_t whylen) {
    const Cuda *c = (const Cuda *)e;
    CUdevice dev;
    char bus[32];
    CU_CHECK(c->cu->cuCtxGetDevice(&dev));
    CU_CHECK(c->cu->cuDeviceGetPCIBusId(bus, sizeof bus, dev));
    return gpu_clocks_open(bus, why, whylen);
}

void cuda_exec_memory(const Exec *e, int64_t *used, int64_t *total) {
    const Cuda *c = (const Cuda *)e;
    size_t fr = 0, tot = 0;
    CU_CHECK(c->cu->cuMemGetInfo(&fr, &tot));
    *used = (int64_t)(tot - fr);
    *total = (int64_t)tot;
}

float cx_time_ms(Cuda *c, void (*run)(Cuda *c, void *ctx), void *ctx) {
    CUevent t0, t1;
    CU_CHECK(c->cu->cuEventCreate(&t0, CU_EVENT_DEFAULT));
    CU_CHECK(c->cu->cuEventCreate(&t1, CU_EVENT_DEFAULT));
    CU_CHECK(c->cu->cuEventRecord(t0, c->st));
    run(c, ctx);
    CU_CHECK(c->cu->cuEventRecord(t1, c->st));
    CU_CHECK(c->cu->cuEventSynchronize(t1));
    float ms = 0;
    CU_CHECK(c->cu->cuEventElapsedTime(&ms, t0, t1));
    CU_CHECK(c->cu->cuEventDestroy(t0));
    CU_CHECK(c->cu->cuEventDestroy(t1));
    return ms;
}

typedef struct CopyRun { CUdeviceptr a, b; size_t bytes; int reps; } CopyRun;
static void copy_runs(Cuda *c, void *ctx) {   /* back and forth between a and b */
    const CopyRun *r = ctx;
    for (int k = 0; k < r->reps; k++)
        CU_CHECK(c->cu->cuMemcpyDtoDAsync(k & 1 ? r->a : r->b, k & 1 ? r->b : r->a, r->bytes, c->st));
}

/* Device-to-device copies of a buffer of `bytes` (read once, written once), timed over reps: the bytes-per-second a
 * plain streaming kernel reaches, which `vmc bench` sets the step's floor at. 0 when the buffers do not fit. */
double cuda_copy_bandwidth_tbps(Exec *e, size_t bytes, int reps) {
    Cuda *c = (Cuda *)e;
    CopyRun run = {0, 0, bytes, 1};
    if (c->cu->cuMemAlloc(&run.a, bytes) != CUDA_SUCCESS) return 0;   /* no room beside the model: no figure */
    if (c->cu->cuMemAlloc(&run.b, bytes) != CUDA_SUCCESS) { c->cu->cuMemFree(run.a); return 0; }
    CU_CHECK(c->cu->cuMemsetD8(run.a, 0, bytes));
    copy_runs(c, &run);   /* warm-up */
    run.reps = reps;
    const float ms = cx_time_ms(c, copy_runs, &run);
    c->cu->cuMemFree(run.a); c->cu->cuMemFree(run.b);
    return 2.0 * (double)bytes * reps / ((double)ms * 1e-3) * 1e-12;
}

int cuda_exec_sm_count(const Exec *e) {
    const Cuda *c = (const Cuda *)e;
    CUdevice dev;
    int n = 0;
    CU_CHECK(c->cu->cuCtxGetDevice(&dev));
    CU_CHECK(c->cu->cuDeviceGetAttribute(&n, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    return n;
}
