/* data_mix.c — timm Mixup in 'batch' mode: with probability prob, cutmix (Beta(cutmix, cutmix), box from
 * rand_bbox, lambda corrected to the box area) with probability switch_prob, else mixup (Beta(mixup, mixup)); the
 * batch is mixed with its own flip along the batch, and the targets are smoothed one-hots mixed with lambda. */
#include "data.h"
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool mix_enabled(const MixConfig *m) { return m->mixup > 0 || m->cutmix > 0 || m->smoothing > 0; }

void mix_targets(const int32_t *labels, int n, int num_classes, double lam, double smoothing, float *t) {
    double off = smoothing / num_classes, on = 1.0 - smoothing + off;
    for (int i = 0; i < n; i++) {
        float *row = t + (size_t)i * (size_t)num_classes;
        for (int k = 0; k < num_classes; k++) row[k] = (float)off;   /* y1*lam + y2*(1-lam) with both = off */
        row[labels[i]] += (float)((on - off) * lam);
        row[labels[n - 1 - i]] += (float)((on - off) * (1.0 - lam));
    }
}

static int64_t clip64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* timm rand_bbox (margin 0) + cutmix_bbox_and_lam(correct_lam=True) */
static double cut_box(DataRng *r, int h, int w, double lam, CropBox *box) {
    double ratio = sqrt(1.0 - lam);
    int64_t cut_h = (int64_t)(h * ratio), cut_w = (int64_t)(w * ratio);
    int64_t cy = drng_int(r, 0, h - 1), cx = drng_int(r, 0, w - 1);   /* np.random.randint: [0, h) */
    int64_t yl = clip64(cy - cut_h / 2, 0, h), yh = clip64(cy + cut_h / 2, 0, h);
    int64_t xl = clip64(cx - cut_w / 2, 0, w), xh = clip64(cx + cut_w / 2, 0, w);
    *box = (CropBox){(int)xl, (int)yl, (int)(xh - xl), (int)(yh - yl)};
    return 1.0 - (double)((yh - yl) * (xh - xl)) / ((double)h * w);
}

double mix_batch(const MixConfig *m, DataRng *r, float *x, int n, int c, int h, int w, const int32_t *labels,
                 float *targets, CropBox *cut) {
    double lam = 1.0;
    bool use_cutmix = false;
    if (cut) *cut = (CropBox){0, 0, 0, 0};
    if ((m->mixup > 0 || m->cutmix > 0) && n % 2 == 0 && drng_uniform(r) < m->prob) {
        if (m->mixup > 0 && m->cutmix > 0) use_cutmix = drng_uniform(r) < m->switch_prob;
        else use_cutmix = m->cutmix > 0;
        double a = use_cutmix ? m->cutmix : m->mixup;
        lam = drng_beta(r, a, a);
    }
    size_t plane = (size_t)h * (size_t)w, img = (size_t)c * plane;
    if (lam != 1.0 && use_cutmix) {
        CropBox b;
        lam = cut_box(r, h, w, lam, &b);
        if (cut) *cut = b;
        /* pairs (i, n-1-i) swap the box: each reads the other's original pixels */
        for (int i = 0; i < n / 2; i++) {
            float *p = x + (size_t)i * img, *q = x + (size_t)(n - 1 - i) * img;
            for (int ch = 0; ch < c; ch++)
                for (int y = b.y; y < b.y + b.h; y++) {
                    float *a = p + ch * plane + (size_t)y * (size_t)w + b.x, *bb = q + ch * plane + (size_t)y * (size_t)w + b.x;
                    for (int k = 0; k < b.w; k++) { float t = a[k]; a[k] = bb[k]; bb[k] = t; }
                }
        }
    } else if (lam != 1.0) {
        float l = (float)lam, l1 = (float)(1.0 - lam);
        for (int i = 0; i < n / 2; i++) {
            float *p = x + (size_t)i * img, *q = x + (size_t)(n - 1 - i) * img;
            for (size_t k = 0; k < img; k++) { float a = p[k], b = q[k]; p[k] = a * l + b * l1; q[k] = b * l + a * l1; }
        }
    }
    if (targets) mix_targets(labels, n, m->num_classes, lam, m->smoothing, targets);
    return lam;
}
