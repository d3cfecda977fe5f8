/* schedule.h — the learning-rate schedule of MAE/ARM (utils/lr_sched.py, ARM_SPEC §5.1): set every iteration
 * from the fractional epoch, linear warmup then half-cosine down to min_lr; and the lr scaling rule. */
#pragma once
#include <stdint.h>

typedef struct Schedule {
    double lr;              /* peak lr (after the batch scaling rule) */
    double min_lr;
    double warmup_epochs;
    double epochs;          /* total; the cosine reaches min_lr at epochs */
    int64_t iters_per_epoch;
} Schedule;

/* lr for iteration it (0-based), epoch_f = it / iters_per_epoch. */
double schedule_lr(const Schedule *s, int64_t it);
/* MAE: lr = blr * eff_batch / 256, eff_batch = batch * accum_iter * world_size. */
double schedule_scaled_lr(double blr, int64_t eff_batch);
