/* init.h — parameter initialisers (ARM_SPEC §1.3, §1.8, §2.4): fill a PARAM's host buffer from its InitKind.
 * Random draws are philox(seed, key = rng_name_key(name), counter = element index) (rng.h), so a parameter's
 * values depend only on the run seed and its name, never on declaration order or the backend.
 *
 * ParamInfo.args per InitKind, as dsl/eval.c fills them (unused args are ignored):
 *   ZEROS, ONES, LECUN_NORMAL, XAVIER_UNIFORM, TORCH_LINEAR, TORCH_CONV, S4D_REAL: none
 *   FILL value            UNIFORM lo, hi          NORMAL mean, std
 *   TRUNC_NORMAL std, lo, hi (absolute cut, mean 0; timm inverse-CDF sampling)
 *   KAIMING_UNIFORM a, scale: bound = sqrt(2/(1+a^2)) * sqrt(3/fan_in) * scale
 *   DT_BIAS dt_min, dt_max, floor          SINCOS_2D gh, gw          BLOCK_CAUSAL block
 * fan_in = shape[1]*prod(shape[2:]), fan_out = shape[0]*prod(shape[2:]) (PyTorch; 1-D: both = shape[0]). */
#pragma once
#include "graph.h"

/* out: shape_numel(p->shape) floats (also for i32 parameters: the caller converts). */
void init_param(const Node *p, uint64_t seed, float *out);
void init_fans(Shape s, double *fan_in, double *fan_out);
double init_erfinv(double x);    /* inverse error function on (-1, 1), double precision */
