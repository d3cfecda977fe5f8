/* exec.h — the interface every backend implements: run a compiled graph step by step.
 * A backend owns the storage of every PARAM, INPUT and STATE node and of the nodes listed as kept
 * (loss, outputs, taps, gradients a caller wants to read). ASSIGN nodes take effect at the end of a step. */
#pragma once
#include "graph.h"
#include <stddef.h>
#include <stdint.h>

typedef struct StepInfo {
    uint64_t seed;      /* run seed: randomness = f(seed, step, node key, element) */
    uint64_t step;      /* global step counter (drop path, random order) */
} StepInfo;

typedef struct Exec Exec;
typedef struct ExecVT {
    const char *name;                                                    /* "cpu", "cuda" */
    void (*run)(Exec *e, const StepInfo *s);                             /* one forward(+backward+update) */
    void (*write)(Exec *e, const Node *n, const void *host, size_t bytes); /* PARAM/INPUT/STATE, host layout dense row-major, node dtype */
    void (*read)(Exec *e, const Node *n, void *host, size_t bytes);      /* PARAM/INPUT/STATE or a kept node */
    /* read_start: as read, of the value at the end of the work queued so far, but delivered into host only by
     * read_finish(ticket): the cuda backend queues the copy without waiting, so the caller can queue the next step
     * first (at most EXEC_READS_IN_FLIGHT unfinished; small values: at most EXEC_READ_MAX bytes). */
    int (*read_start)(Exec *e, const Node *n, void *host, size_t bytes);
    void (*read_finish)(Exec *e, int ticket);
    /* write_borrowed: as write, for an INPUT, from host memory the caller leaves unchanged until write_release
     * returns (page-locked memory, for cuda, which then copies straight from it beside the step in flight). */
    void (*write_borrowed)(Exec *e, const Node *n, const void *host, size_t bytes);
    void (*write_release)(Exec *e);
    void (*free)(Exec *e);
} ExecVT;
enum { EXEC_READS_IN_FLIGHT = 8, EXEC_READ_MAX = 256 };
struct Exec { const ExecVT *vt; const Graph *g; };

static inline void exec_run(Exec *e, const StepInfo *s) { e->vt->run(e, s); }
static inline void exec_write(Exec *e, const Node *n, const void *p, size_t b) { e->vt->write(e, n, p, b); }
static inline void exec_read(Exec *e, const Node *n, void *p, size_t b) { e->vt->read(e, n, p, b); }
static inline int exec_read_start(Exec *e, const Node *n, void *p, size_t b) { return e->vt->read_start(e, n, p, b); }
static inline void exec_read_finish(Exec *e, int ticket) { e->vt->read_finish(e, ticket); }
static inline void exec_write_borrowed(Exec *e, const Node *n, const void *p, size_t b) { e->vt->write_borrowed(e, n, p, b); }
static inline void exec_write_release(Exec *e) { e->vt->write_release(e); }
static inline void exec_free(Exec *e) { if (e) e->vt->free(e); }

/* cpu backend (runtime/cpu_exec.c): unfused fp32 interpreter; keep = nodes whose values must stay readable. */
Exec *cpu_exec_new(const Graph *g, Node *const *keep, int nkeep);
/* The same interpreter in fp64, for gradient checks: float nodes are written and read as double on the host
 * (i32 nodes as int32), and CAST to a float type is exact (no bf16 rounding). */
Exec *cpu_exec_new_f64(const Graph *g, Node *const *keep, int nkeep);
/* Peak bytes of tensor storage the cpu backend held so far (sources, kept and live intermediates). */
size_t cpu_exec_peak_bytes(const Exec *e);
