/* data_sample.c — one sample through the pipeline of ARM_SPEC §5: fetch (memory or file), decode (JPEG DCT
 * scaling when allowed), RandomResizedCrop or eval Resize+CentreCrop, flip, RandAugment, to tensor, erasing. */
#include "data_impl.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>

void sample_ctx_free(SampleCtx *w) {
    decoder_free(w->dec);
    scratch_free(&w->s);
    image_release(&w->raw); image_release(&w->crop); image_release(&w->out); image_release(&w->tmp);
    free(w->file);
    *w = (SampleCtx){0};
}

/* Crop box (in full-resolution coordinates) of this sample; eval: the whole image. */
static CropBox plan_box(const AugmentConfig *cfg, DataRng *r, int w, int h) {
    if (!cfg->train) return (CropBox){0, 0, w, h};
    double smin = cfg->scale_min, smax = cfg->scale_max;
    if (smin <= 0 && smax <= 0) { smin = 0.08; smax = 1.0; }
    return aug_rrc_box(r, w, h, smin, smax, 3.0 / 4.0, 4.0 / 3.0);
}

/* Decodes the source (or views the in-memory one) into w->raw; JPEGs at 1/denom size. */
static bool fetch(const Dataset *d, int64_t i, const AugmentConfig *cfg, DataRng *r, SampleCtx *w, CropBox *box,
                  int *denom, char *err, int errlen) {
    if (d->kind != DS_FOLDER) {
        size_t bytes = (size_t)d->w * (size_t)d->h * (size_t)d->c;
        image_release(&w->raw);
        w->raw = (Image){d->pixels + (size_t)i * bytes, d->w, d->h, d->c, 0};
        *box = plan_box(cfg, r, d->w, d->h);
        *denom = 1;
        return true;
    }
    size_t n;
    int iw, ih;
    const char *path = d->pool + d->file_off[i];
    char msg[256];
    if (!folder_read(d, i, &w->file, &w->file_cap, &n, err, errlen)) return false;
    if (!w->dec) w->dec = decoder_new();
    if (!image_probe(w->dec, w->file, n, &iw, &ih, msg, sizeof msg)) { snprintf(err, errlen, "%s: %s", path, msg); return false; }
    *box = plan_box(cfg, r, iw, ih);
    *denom = 1;
    if (image_sniff(w->file, n) == IMG_JPEG) {
        AugmentConfig c = *cfg;
        if (!cfg->train) c.size = aug_eval_resize(cfg->size, cfg->crop_pct);
        *denom = aug_decode_denom(&c, *box);
    }
    if (w->raw.cap == 0) w->raw = (Image){0};
    if (!image_decode(w->dec, w->file, n, *denom, &w->raw, msg, sizeof msg)) { snprintf(err, errlen, "%s: %s", path, msg); return false; }
    return true;
}

/* Geometry: w->out becomes the size x size crop. */
static void geometry(const AugmentConfig *cfg, SampleCtx *w, CropBox box, int denom) {
    int S = cfg->size;
    const Image *src = &w->raw;
    if (cfg->channels == 1 && src->c == 3) { image_to_gray(src, &w->tmp); src = &w->tmp; }
    if (!cfg->train) {   /* Resize((R, R)) then CenterCrop(S) */
        int R = aug_eval_resize(S, cfg->crop_pct);
        image_resize(src, 0, 0, src->w, src->h, &w->crop, R, R, &w->s);
        CropBox c = aug_center_box(R, R, S, S);
        image_crop(&w->crop, c.x, c.y, S, S, &w->out);
    } else if (denom == 1) {   /* torchvision resized_crop: crop first, so the filter clamps at the crop edges */
        image_crop(src, box.x, box.y, box.w, box.h, &w->crop);
        image_resize(&w->crop, 0, 0, box.w, box.h, &w->out, S, S, &w->s);
    } else {   /* DCT-scaled: the box in scaled coordinates, clamped at the image edges */
        double x0 = (double)box.x / denom, y0 = (double)box.y / denom;
        double x1 = (double)(box.x + box.w) / denom, y1 = (double)(box.y + box.h) / denom;
        if (x1 > src->w) x1 = src->w;
        if (y1 > src->h) y1 = src->h;
        image_resize(src, x0, y0, x1, y1, &w->out, S, S, &w->s);
    }
}

bool sample_make(const Dataset *d, int64_t i, const AugmentConfig *cfg, DataRng *r, SampleCtx *w, float *out,
                 char *err, int errlen) {
    CropBox box;
    int denom;
    if (!fetch(d, i, cfg, r, w, &box, &denom, err, errlen)) return false;
    geometry(cfg, w, box, denom);
    Image *im = &w->out;
    if (cfg->channels == 3 && im->c == 1) { image_to_rgb(im, &w->tmp); Image t = *im; *im = w->tmp; w->tmp = t; }
    if (cfg->train) {
        if (cfg->hflip > 0 && drng_uniform(r) < cfg->hflip) image_hflip(im);
        if (cfg->randaugment) aug_randaugment(r, im, &w->s);
    }
    aug_to_tensor(im, cfg, out);
    if (cfg->train && cfg->reprob > 0) aug_random_erase(r, out, cfg->channels, cfg->size, cfg->size, cfg->reprob, NULL);
    return true;
}
