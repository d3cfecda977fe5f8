/* backend_pair.h — a backend checked against the cpu oracle on the same values: what test_cuda_exec (on a GPU) and
 * test_emu_exec (the same program, emulated on the CPU) share. Both backends get the same parameters (their
 * initialisers, or random) and inputs (random: Philox, by key); values are compared as max |x - cpu| over max |cpu|
 * (llm.c check_tensor style). */
#pragma once
#include "dsl.h"
#include "exec.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern int bp_failures;   /* comparisons over their tolerance */
extern double bp_worst;   /* the largest normalised error since it was last reset */
extern bool bp_quiet;     /* print only failures and losses, not every tensor */

/* A backend for graph g keeping `keep` readable (exits with a message when it cannot be made). */
typedef Exec *(*BpMake)(const Graph *g, Node *const *keep, int nkeep);
/* Host memory for a batch lent to the backend (exec_write_borrowed), and its release. */
typedef struct BpHost { void *(*alloc)(size_t bytes); void (*release)(void *p); } BpHost;

void bp_fill_node(const Node *n, uint64_t key, void *buf);
void bp_write_both(Exec *cpu, Exec *x, const Node *n, uint64_t key, bool init);
/* Parameters from their initialisers, every input but lr and step random. */
void bp_fill_model(Exec *cpu, Exec *x, const Graph *g);
double bp_compare(const char *what, Exec *cpu, Exec *x, const Node *n, double tol);
/* The loss (to tol / 10) and every parameter gradient (to tol) of one step of model. */
void bp_model_grads(DslModule *m, const char *model, double tol, BpMake make);
/* The loss of a forward step alone (no gradients, no update: an inference program), to tol. */
void bp_forward(DslModule *m, const char *model, double tol, BpMake make);
/* Output `named` of a forward step (an inference program) made with the environment variable knob unset and with it
 * set to value, on the same values, to tol; check (may be NULL) looks at each backend made (on: the knob set). */
void bp_knob_forward(DslModule *m, const char *model, const char *named, const char *knob, const char *value, double tol,
                     BpMake make, void (*check)(Exec *x, bool on));
/* steps fp32 AdamW steps, a new batch each, lent as the training loop lends the loader's (two host buffers an
 * input, in turn) and the loss read as it reads it (started after the step, finished after the next is queued):
 * losses within 1e-4 relative. `after` (may be NULL) looks at the backend before it is freed. */
void bp_training(DslModule *m, const char *model, int steps, BpMake make, BpHost host, void (*after)(Exec *x));
