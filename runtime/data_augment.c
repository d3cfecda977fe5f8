/* data_augment.c — crop geometry (torchvision RandomResizedCrop.get_params, center_crop, the eval Resize of
 * ARM_SPEC §5.2), the uint8 -> normalised float tensor step, timm RandomErasing (pixel mode) and the choice of
 * JPEG DCT scaling for a crop. */
#include "data.h"
#include "util.h"
#include <math.h>

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f}, IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

CropBox aug_rrc_box(DataRng *r, int width, int height, double smin, double smax, double rmin, double rmax) {
    double area = (double)width * height, lr0 = log(rmin), lr1 = log(rmax);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * drng_range(r, smin, smax), ar = exp(drng_range(r, lr0, lr1));
        int w = (int)nearbyint(sqrt(target * ar)), h = (int)nearbyint(sqrt(target / ar));
        if (0 < w && w <= width && 0 < h && h <= height) {
            int y = (int)drng_int(r, 0, height - h), x = (int)drng_int(r, 0, width - w);
            return (CropBox){x, y, w, h};
        }
    }
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < rmin) h = (int)nearbyint(w / rmin);
    else if (in_ratio > rmax) w = (int)nearbyint(h * rmax);
    return (CropBox){(width - w) / 2, (height - h) / 2, w, h};
}

CropBox aug_center_box(int w, int h, int cw, int ch) {
    /* torchvision pads when the crop is larger; our eval crop is never larger than the resized image */
    ASSERT(cw <= w && ch <= h, "centre crop %dx%d larger than %dx%d", cw, ch, w, h);
    return (CropBox){(int)nearbyint((w - cw) / 2.0), (int)nearbyint((h - ch) / 2.0), cw, ch};
}

int aug_eval_resize(int size, float crop_pct) {
    if (crop_pct <= 0) crop_pct = 1;
    return (int)((double)size / (double)crop_pct + 1e-9);   /* python int(): truncation */
}

int aug_decode_denom(const AugmentConfig *cfg, CropBox box) {
    if (cfg->exact_decode) return 1;
    int d = 8;   /* the largest power-of-two reduction that still leaves the crop at least output-sized */
    while (d > 1 && (box.w / d < cfg->size || box.h / d < cfg->size)) d /= 2;
    return d;
}

void aug_to_tensor(const Image *im, const AugmentConfig *cfg, float *out) {
    int C = cfg->channels, c = im->c;
    size_t hw = (size_t)im->w * (size_t)im->h;
    ASSERT(c == C || c == 1 || C == 1, "channels %d -> %d", c, C);
    for (int ch = 0; ch < C; ch++) {
        float mean = 0, std = 1;
        if (cfg->normalize && C == 3) { mean = IMAGENET_MEAN[ch]; std = IMAGENET_STD[ch]; }
        if (cfg->normalize && C == 1) {
            mean = (IMAGENET_MEAN[0] + IMAGENET_MEAN[1] + IMAGENET_MEAN[2]) / 3;
            std = (IMAGENET_STD[0] + IMAGENET_STD[1] + IMAGENET_STD[2]) / 3;
        }
        float a = 1.0f / (255.0f * std), b = -mean / std;
        const uint8_t *p = im->px + (c == 1 ? 0 : ch);
        float *o = out + (size_t)ch * hw;
        if (c == C || c == 1) {
            for (size_t i = 0; i < hw; i++) o[i] = p[i * (size_t)c] * a + b;
        } else {   /* RGB into one channel: PIL's L */
            for (size_t i = 0; i < hw; i++) {
                const uint8_t *q = im->px + 3 * i;
                o[i] = (float)((q[0] * 19595 + q[1] * 38470 + q[2] * 7471 + 0x8000) >> 16) * a + b;
            }
        }
    }
}

bool aug_random_erase(DataRng *r, float *chw, int c, int h, int w, float p, CropBox *box) {
    if (p <= 0 || drng_uniform(r) > p) return false;
    double area = (double)h * w, la0 = log(0.3), la1 = log(1 / 0.3);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = drng_range(r, 0.02, 1.0 / 3.0) * area, ar = exp(drng_range(r, la0, la1));
        int eh = (int)nearbyint(sqrt(target * ar)), ew = (int)nearbyint(sqrt(target / ar));
        if (ew < w && eh < h) {
            int top = (int)drng_int(r, 0, h - eh), left = (int)drng_int(r, 0, w - ew);
            for (int ch = 0; ch < c; ch++)
                for (int y = top; y < top + eh; y++)
                    for (int x = left; x < left + ew; x++) chw[((size_t)ch * h + y) * w + x] = (float)drng_normal(r);
            if (box) *box = (CropBox){left, top, ew, eh};
            return true;
        }
    }
    return false;
}
