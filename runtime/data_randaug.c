/* data_randaug.c — timm RandAugment 'rand-m9-mstd0.5-inc1' on 8-bit images with PIL's arithmetic: LUT ops
 * (ImageOps), ImageEnhance blends (truncating, as ImagingBlend), and affine ops through Pillow's bicubic transform
 * (a = -1 convolution, clamped taps, outside samples = fill colour). Fill = ImageNet mean in 0..255, as timm's
 * img_mean hparam; translate is relative (0.45 of the side at level 10), as the *Rel ops of the inc1 list. */
#include "data.h"
#include "util.h"
#include <math.h>
#include <string.h>

static const uint8_t FILL[3] = {124, 116, 104};   /* round(255 * (0.485, 0.456, 0.406)) */

static void apply_lut(Image *im, uint8_t lut[][256]) {
    size_t n = (size_t)im->w * (size_t)im->h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < im->c; c++) im->px[i * (size_t)im->c + c] = lut[c][im->px[i * (size_t)im->c + c]];
}

static void histogram(const Image *im, int ch, int64_t h[256]) {
    memset(h, 0, 256 * sizeof h[0]);
    size_t n = (size_t)im->w * (size_t)im->h;
    for (size_t i = 0; i < n; i++) h[im->px[i * (size_t)im->c + ch]]++;
}

static void autocontrast(Image *im) {   /* ImageOps.autocontrast, cutoff 0 */
    uint8_t lut[3][256];
    for (int c = 0; c < im->c; c++) {
        int64_t h[256];
        histogram(im, c, h);
        int lo = 0, hi = 255;
        while (lo < 256 && !h[lo]) lo++;
        while (hi >= 0 && !h[hi]) hi--;
        for (int i = 0; i < 256; i++) {
            if (hi <= lo) { lut[c][i] = (uint8_t)i; continue; }
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            int v = (int)(i * scale + offset);
            lut[c][i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    apply_lut(im, lut);
}

static void equalize(Image *im) {   /* ImageOps.equalize */
    uint8_t lut[3][256];
    for (int c = 0; c < im->c; c++) {
        int64_t h[256], total = 0, last = 0, nz = 0;
        histogram(im, c, h);
        for (int i = 0; i < 256; i++) if (h[i]) { total += h[i]; last = h[i]; nz++; }
        int64_t step = nz <= 1 ? 0 : (total - last) / 256, n = step / 2;
        for (int i = 0; i < 256; i++) {
            int64_t v = step ? n / step : i;
            lut[c][i] = (uint8_t)(v > 255 ? 255 : v);
            n += h[i];
        }
    }
    apply_lut(im, lut);
}

static void lut_op(Image *im, RaOp op, int arg) {
    uint8_t lut[3][256];
    for (int i = 0; i < 256; i++) {
        int v = i;
        if (op == RA_INVERT) v = 255 - i;
        else if (op == RA_POSTERIZE) v = arg >= 8 ? i : i & ~((1 << (8 - arg)) - 1);
        else if (op == RA_SOLARIZE) v = i < arg ? i : 255 - i;
        else if (op == RA_SOLARIZE_ADD) v = i < 128 ? (i + arg > 255 ? 255 : i + arg) : i;
        lut[0][i] = lut[1][i] = lut[2][i] = (uint8_t)v;
    }
    apply_lut(im, lut);
}

static inline uint8_t luma(const uint8_t *p) { return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16); }

/* ImageEnhance: blend(degenerate, image, factor), ImagingBlend truncates */
static inline uint8_t blend(float deg, float img, float f) {
    float v = deg + f * (img - deg);
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

static void enhance(Image *im, RaOp op, float f, Scratch *s) {
    size_t n = (size_t)im->w * (size_t)im->h, c = (size_t)im->c;
    uint8_t *p = im->px;
    if (op == RA_COLOR && c == 3) {
        for (size_t i = 0; i < n; i++) {
            uint8_t l = luma(p + 3 * i);
            for (int k = 0; k < 3; k++) p[3 * i + k] = blend(l, p[3 * i + k], f);
        }
    } else if (op == RA_CONTRAST) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += c == 3 ? luma(p + 3 * i) : p[i];
        int mean = (int)(sum / (double)n + 0.5);
        for (size_t i = 0; i < n * c; i++) p[i] = blend((float)mean, p[i], f);
    } else if (op == RA_BRIGHTNESS) {
        for (size_t i = 0; i < n * c; i++) p[i] = blend(0, p[i], f);
    } else if (op == RA_SHARPNESS) {   /* degenerate = SMOOTH (1 1 1 / 1 5 1 / 1 1 1) / 13, borders unchanged */
        int w = im->w, h = im->h;
        uint8_t *src = scratch_get(s, 5, n * c);
        memcpy(src, p, n * c);
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++)
                for (size_t k = 0; k < c; k++) {
                    float sum = 0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++)
                            sum += src[(((size_t)(y + dy) * (size_t)w) + (size_t)(x + dx)) * c + k] * (dx || dy ? 1.f : 5.f);
                    float deg = sum / 13.f;
                    deg = deg <= 0 ? 0 : deg >= 255 ? 255 : (float)(int)(deg + 0.5f);
                    size_t at = ((size_t)y * (size_t)w + (size_t)x) * c + k;
                    p[at] = blend(deg, src[at], f);
                }
    }
}

/* Pillow Geometry.c BICUBIC: cubic convolution with a = -1 */
static inline double cubic4(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void aug_affine(const Image *src, Image *dst, const double m[6], const uint8_t fill[3]) {
    int w = src->w, h = src->h, c = src->c;
    image_reserve(dst, w, h, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double xin = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2], yin = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
            uint8_t *o = dst->px + ((size_t)y * (size_t)w + (size_t)x) * (size_t)c;
            if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) {
                for (int k = 0; k < c; k++) o[k] = fill[k];
                continue;
            }
            xin -= 0.5; yin -= 0.5;
            int xi = (int)floor(xin), yi = (int)floor(yin);
            double dx = xin - xi, dy = yin - yi;
            int xs[4], ys[4];
            for (int t = 0; t < 4; t++) { xs[t] = clampi(xi - 1 + t, 0, w - 1); ys[t] = clampi(yi - 1 + t, 0, h - 1); }
            for (int k = 0; k < c; k++) {
                double v[4];
                for (int t = 0; t < 4; t++) {
                    const uint8_t *row = src->px + (size_t)ys[t] * (size_t)w * (size_t)c + k;
                    v[t] = cubic4(row[xs[0] * c], row[xs[1] * c], row[xs[2] * c], row[xs[3] * c], dx);
                }
                double r = cubic4(v[0], v[1], v[2], v[3], dy);
                o[k] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
            }
        }
}

static void affine_op(Image *im, const double m[6], Scratch *s) {
    size_t bytes = (size_t)im->w * (size_t)im->h * (size_t)im->c;
    Image tmp = {scratch_get(s, 5, bytes), im->w, im->h, im->c, bytes};
    uint8_t fill[3] = {FILL[0], FILL[1], FILL[2]};
    if (im->c == 1) fill[0] = luma(FILL);
    aug_affine(im, &tmp, m, fill);
    memcpy(im->px, tmp.px, bytes);
}

static void rotate(Image *im, double deg, Scratch *s) {   /* PIL Image.rotate(deg), centre (w/2, h/2) */
    double a = -deg * M_PI / 180.0, cx = im->w / 2.0, cy = im->h / 2.0;
    double m[6] = {cos(a), sin(a), 0, -sin(a), cos(a), 0};
    m[2] = m[0] * -cx + m[1] * -cy + cx;
    m[5] = m[3] * -cx + m[4] * -cy + cy;
    affine_op(im, m, s);
}

void aug_ra_apply(RaOp op, double level, int sign, Image *im, Scratch *s) {
    double f = level / 10.0;
    switch (op) {
    case RA_AUTOCONTRAST: autocontrast(im); return;
    case RA_EQUALIZE: equalize(im); return;
    case RA_INVERT: lut_op(im, op, 0); return;
    case RA_POSTERIZE: lut_op(im, op, 4 - (int)(f * 4)); return;
    case RA_SOLARIZE: lut_op(im, op, 256 - (int)(f * 256)); return;
    case RA_SOLARIZE_ADD: lut_op(im, op, (int)(f * 110)); return;
    case RA_COLOR: case RA_CONTRAST: case RA_BRIGHTNESS: case RA_SHARPNESS:
        enhance(im, op, (float)(1.0 + sign * f * 0.9), s);
        return;
    case RA_ROTATE: rotate(im, sign * f * 30.0, s); return;
    case RA_SHEAR_X: affine_op(im, (double[6]){1, sign * f * 0.3, 0, 0, 1, 0}, s); return;
    case RA_SHEAR_Y: affine_op(im, (double[6]){1, 0, 0, sign * f * 0.3, 1, 0}, s); return;
    case RA_TRANSLATE_X: affine_op(im, (double[6]){1, 0, sign * f * 0.45 * im->w, 0, 1, 0}, s); return;
    case RA_TRANSLATE_Y: affine_op(im, (double[6]){1, 0, 0, 0, 1, sign * f * 0.45 * im->h}, s); return;
    case RA_COUNT: break;
    }
    UNREACHABLE();
}

static bool signed_op(RaOp op) {
    switch (op) {
    case RA_ROTATE: case RA_COLOR: case RA_CONTRAST: case RA_BRIGHTNESS: case RA_SHARPNESS: case RA_SHEAR_X:
    case RA_SHEAR_Y: case RA_TRANSLATE_X: case RA_TRANSLATE_Y:
        return true;
    case RA_AUTOCONTRAST: case RA_EQUALIZE: case RA_INVERT: case RA_POSTERIZE: case RA_SOLARIZE:
    case RA_SOLARIZE_ADD: case RA_COUNT:
        return false;
    }
    return false;
}

void aug_randaugment(DataRng *r, Image *im, Scratch *s) {
    for (int k = 0; k < 2; k++) {   /* num_layers 2, ops drawn with replacement */
        RaOp op = (RaOp)drng_int(r, 0, RA_COUNT - 1);
        if (drng_uniform(r) > 0.5) continue;   /* AugmentOp prob 0.5 */
        double mag = 9.0 + 0.5 * drng_normal(r);
        mag = mag < 0 ? 0 : mag > 10 ? 10 : mag;
        int sign = signed_op(op) && drng_uniform(r) > 0.5 ? -1 : 1;
        aug_ra_apply(op, mag, sign, im, s);
    }
}
