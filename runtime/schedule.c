/* schedule.c — warmup + cosine per iteration (MAE utils/lr_sched.adjust_learning_rate), lr scaling rule. */
#include "schedule.h"
#include <math.h>

double schedule_lr(const Schedule *s, int64_t it) {
    double ep = (double)it / (double)(s->iters_per_epoch > 0 ? s->iters_per_epoch : 1);
    if (ep < s->warmup_epochs) return s->lr * ep / s->warmup_epochs;
    double span = s->epochs - s->warmup_epochs;
    if (span <= 0) return s->lr;
    double prog = (ep - s->warmup_epochs) / span;
    if (prog > 1) prog = 1;     /* past the end (e.g. --steps beyond epochs): stay at min_lr */
    return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * prog));
}

double schedule_scaled_lr(double blr, int64_t eff_batch) { return blr * (double)eff_batch / 256.0; }
