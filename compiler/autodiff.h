/* autodiff.h — reverse-mode differentiation as a graph transformation: gradient nodes are added to the
 * same Graph with the g_* builders (so hash-consing shares them with forward nodes) and flagged NF_GRAD. */
#pragma once
#include "graph.h"

/* grads: g->params.n entries, indexed by param->index; NULL for frozen/buffer/i32 parameters and for
 * parameters the loss does not depend on. Only nodes on a path trainable param -> loss get gradients.
 * Returns false (message in err) only for an op whose gradient is not defined (second order through a scan).
 * Ties: AMAX shares the gradient equally among all maxima (torch.amax); MAX/MIN give half to each side
 * on equality (torch.maximum/minimum). */
bool autodiff_backward(Graph *g, Node *loss, Node **grads, char *err, int errlen);

/* Sums `grad` over broadcast axes so that it has `shape` (the gradient of a numpy broadcast). */
Node *autodiff_unbroadcast(Graph *g, Node *grad, Shape shape);
