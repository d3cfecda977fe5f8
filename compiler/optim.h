/* optim.h — the optimizer step as graph nodes appended after autodiff: global grad-norm, clipping,
 * AdamW with the reference parameter groups (ARM_SPEC §5.1/§5.2) and EMA (timm ModelEma v1).
 * The host feeds two scalar INPUTs every step: "lr" (the scheduled base lr) and "step" (t, 1-based).
 * Moments and EMA are STATE nodes ("opt.m.<param>", "opt.v.<param>", "ema.<param>"); every update is an
 * ASSIGN, so a step reads the old values and writes the new ones at its end. */
#pragma once
#include "graph.h"

typedef struct OptimConfig {
    double beta1, beta2, eps;   /* torch.optim.AdamW: 0.9, 0.999 (0.95 for ARM pretraining), 1e-8 */
    double weight_decay;        /* decoupled: p -= lr * wd * p, before the Adam update */
    double clip;                /* > 0: total L2 norm clipped as torch clip_grad_norm_; <= 0: off */
    double layer_decay;         /* < 1: lr scale decay^(num_layers - lr_layer) for params tagged lr_layer */
    double ema_decay;           /* > 0: EMA of every param and buffer after the update */
} OptimConfig;

typedef struct OptimNodes {
    Node *lr, *step;            /* INPUT scalars "lr" and "step" */
    Node *grad_norm;            /* named output "grad_norm": total L2 norm before clipping */
    int nupdated;               /* parameters updated by AdamW */
    int nema;                   /* EMA states */
} OptimNodes;

/* grads: indexed by param->index (autodiff_backward's output), NULL where a param gets no gradient.
 * Returns false with a message in err when a trainable parameter cannot be optimized (not f32). */
bool optim_append(Graph *g, Node **grads, const OptimConfig *cfg, OptimNodes *out, char *err, int errlen);

/* The parameter groups, exposed for reports and tests. */
bool   optim_decays(const Node *param);                     /* weight decay applies (ndim >= 2, not nodecay) */
int    optim_num_layers(const Graph *g);                    /* max lr_layer over params; -1 when none tagged */
double optim_lr_scale(const Graph *g, const Node *param, double layer_decay);
