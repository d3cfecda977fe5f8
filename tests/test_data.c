/* test_data.c — datasets, decoding, augmentations, mixing and the loader (runtime/data_*.c) on hand-made cases and
 * fixtures written here into a temporary directory (PNG via libpng, JPEG via turbojpeg, IDX, CIFAR): bicubic
 * weights worked out by hand, crop geometry, RandAugment ops, mixup/cutmix/smoothing targets, erasing, bad input
 * messages, and loader determinism across thread counts, exact resume, shuffling, subsets and sharding. */
#include "data.h"
#include "data_impl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static char tmp[256];

static const char *tpath(const char *rel) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, rel);
    return buf[k];
}

static void mkdirs(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    for (char *s = p + strlen(tmp) + 1; *s; s++)
        if (*s == '/') { *s = 0; mkdir(p, 0755); *s = '/'; }
    mkdir(p, 0755);
}

static void write_bytes(const char *rel, const void *b, size_t n) {
    FILE *f = fopen(tpath(rel), "wb");
    if (!f) { printf("FAIL: cannot write %s\n", tpath(rel)); exit(1); }
    fwrite(b, 1, n, f);
    fclose(f);
}

static Image make_image(int w, int h, int c, int seed) {
    Image im = {0};
    image_reserve(&im, w, h, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                im.px[((size_t)y * w + x) * c + k] = (uint8_t)(128 + 100 * sin(0.07 * (x + seed) + 0.05 * y * (k + 1)));
    return im;
}

static void write_png(const char *rel, int w, int h, int c, int seed) {
    Image im = make_image(w, h, c, seed);
    char err[256];
    if (!image_encode_png(tpath(rel), &im, err, sizeof err)) { printf("FAIL: %s\n", err); exit(1); }
    image_release(&im);
}

static void write_jpeg(const char *rel, int w, int h, int c, int seed) {
    Image im = make_image(w, h, c, seed);
    char err[256];
    if (!image_encode_jpeg(tpath(rel), &im, 92, err, sizeof err)) { printf("FAIL: %s\n", err); exit(1); }
    image_release(&im);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* ------------------------------------------------------------------------------------------ geometry and resize */
static void test_flip(void) {
    uint8_t px[6] = {1, 2, 3, 4, 5, 6};   /* 2 rows x 3 columns, one channel */
    Image im = {px, 3, 2, 1, 0};
    image_hflip(&im);
    uint8_t want[6] = {3, 2, 1, 6, 5, 4};
    CHECK(!memcmp(px, want, 6), "flip 2x3: %d %d %d / %d %d %d", px[0], px[1], px[2], px[3], px[4], px[5]);
    uint8_t rgb[6] = {1, 2, 3, 4, 5, 6};   /* 1 row x 2 RGB pixels: pixels swap, channels stay */
    Image im3 = {rgb, 2, 1, 3, 0};
    image_hflip(&im3);
    uint8_t want3[6] = {4, 5, 6, 1, 2, 3};
    CHECK(!memcmp(rgb, want3, 6), "flip RGB keeps channel order");
}

static void test_resize_constant(void) {
    Scratch s = {0};
    int sizes[][4] = {{500, 375, 192, 192}, {17, 9, 40, 33}, {64, 64, 7, 7}, {3, 5, 11, 2}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        Image src = {0}, dst = {0};
        image_reserve(&src, sizes[k][0], sizes[k][1], 3);
        memset(src.px, 77, (size_t)src.w * src.h * 3);
        image_resize(&src, 0, 0, src.w, src.h, &dst, sizes[k][2], sizes[k][3], &s);
        int bad = 0;
        for (size_t i = 0; i < (size_t)dst.w * dst.h * 3; i++) bad += dst.px[i] != 77;
        CHECK(bad == 0 && dst.w == sizes[k][2] && dst.h == sizes[k][3], "constant image %dx%d -> %dx%d: %d pixels changed",
              sizes[k][0], sizes[k][1], sizes[k][2], sizes[k][3], bad);
        image_release(&src);
        image_release(&dst);
    }
    scratch_free(&s);
}

/* Pillow bicubic (a = -0.5), worked by hand: 4 -> 2 has scale 2, support 4, taps at distances (x - c + .5) / 2;
 * f(.25) = .8671875, f(.75) = .2265625, f(1.25) = -.0703125; weights normalised by their sum 1.890625.
 * 2 -> 4 (upsampling, support 2): output 0 has taps f(.25), f(1.25) over .796875. */
static void test_resize_weights(void) {
    Scratch s = {0};
    uint8_t row[4] = {10, 50, 200, 250};
    Image src = {row, 4, 1, 1, 0}, dst = {0};
    image_resize(&src, 0, 0, 4, 1, &dst, 2, 1, &s);
    double o0 = (0.8671875 * 10 + 0.8671875 * 50 + 0.2265625 * 200 - 0.0703125 * 250) / 1.890625;   /* 42.19 */
    double o1 = (-0.0703125 * 10 + 0.2265625 * 50 + 0.8671875 * 200 + 0.8671875 * 250) / 1.890625;  /* 212.02 */
    CHECK(dst.px[0] == (int)lround(o0) && dst.px[1] == (int)lround(o1), "4->2: got %d %d, want %.2f %.2f",
          dst.px[0], dst.px[1], o0, o1);
    uint8_t two[2] = {100, 200};
    Image s2 = {two, 2, 1, 1, 0};
    image_resize(&s2, 0, 0, 2, 1, &dst, 4, 1, &s);
    double u0 = (0.8671875 * 100 - 0.0703125 * 200) / 0.796875;   /* 91.18 */
    double u3 = (0.8671875 * 200 - 0.0703125 * 100) / 0.796875;   /* 208.82 */
    CHECK(dst.px[0] == (int)lround(u0) && dst.px[3] == (int)lround(u3), "2->4: got %d .. %d, want %.2f .. %.2f",
          dst.px[0], dst.px[3], u0, u3);
    /* the same along columns (vertical pass) */
    Image col = {row, 1, 4, 1, 0};
    image_resize(&col, 0, 0, 1, 4, &dst, 1, 2, &s);
    CHECK(dst.px[0] == (int)lround(o0) && dst.px[1] == (int)lround(o1), "4->2 vertical: got %d %d", dst.px[0], dst.px[1]);
    /* identity size: a copy */
    image_resize(&src, 0, 0, 4, 1, &dst, 4, 1, &s);
    CHECK(!memcmp(dst.px, row, 4), "same-size resize is a copy");
    image_release(&dst);
    scratch_free(&s);
}

static void test_crop_geometry(void) {
    CropBox b = aug_center_box(256, 256, 224, 224);
    CHECK(b.x == 16 && b.y == 16 && b.w == 224, "centre crop 256->224 at %d,%d", b.x, b.y);
    b = aug_center_box(255, 257, 224, 224);   /* (31/2, 33/2) round half to even: 16, 16 */
    CHECK(b.x == 16 && b.y == 16, "centre crop of 255x257 at %d,%d (want 16,16)", b.x, b.y);
    b = aug_center_box(229, 227, 224, 224);   /* 2.5 -> 2, 1.5 -> 2 */
    CHECK(b.x == 2 && b.y == 2, "centre crop of 229x227 at %d,%d (want 2,2)", b.x, b.y);
    CHECK(aug_eval_resize(224, 0.875f) == 256, "eval resize 224/0.875 = %d", aug_eval_resize(224, 0.875f));
    CHECK(aug_eval_resize(192, 0.875f) == 219, "eval resize 192/0.875 = %d", aug_eval_resize(192, 0.875f));
    CHECK(aug_eval_resize(384, 1.0f) == 384 && aug_eval_resize(28, 0) == 28, "eval resize crop_pct 1");

    DataRng r = drng_key(7, 0, 0, 0);
    int n = 4000, bad = 0;
    double mean_scale = 0;
    for (int i = 0; i < n; i++) {
        b = aug_rrc_box(&r, 500, 375, 0.08, 1.0, 3.0 / 4, 4.0 / 3);
        double sc = (double)b.w * b.h / (500.0 * 375), ar = (double)b.w / b.h;
        /* w, h are rounded: allow half a pixel on each side */
        double sc_lo = 0.08 * (1 - 2.0 / b.w) * (1 - 2.0 / b.h), ar_slack = 1.0 / b.h + 1.0 / b.w;
        if (b.x < 0 || b.y < 0 || b.x + b.w > 500 || b.y + b.h > 375 || sc < sc_lo || sc > 1 ||
            ar < 0.75 * (1 - ar_slack) || ar > 4.0 / 3 * (1 + ar_slack)) bad++;
        mean_scale += sc / n;
    }
    CHECK(bad == 0, "%d of %d RandomResizedCrop boxes outside bounds", bad, n);
    /* accepted draws are uniform in scale except where the box does not fit: the mean lies well inside */
    CHECK(mean_scale > 0.35 && mean_scale < 0.55, "RandomResizedCrop mean scale %.3f", mean_scale);
    b = aug_rrc_box(&r, 1000, 10, 0.08, 1.0, 3.0 / 4, 4.0 / 3);   /* no attempt fits: ratio-clamped centre crop */
    CHECK(b.w == 13 && b.h == 10 && b.x == 493 && b.y == 0, "fallback box %d,%d %dx%d (want 493,0 13x10)", b.x, b.y, b.w, b.h);
    b = aug_rrc_box(&r, 10, 10, 2.0, 3.0, 3.0 / 4, 4.0 / 3);      /* area never fits, ratio ok: whole image */
    CHECK(b.w == 10 && b.h == 10 && b.x == 0 && b.y == 0, "fallback whole image %d,%d %dx%d", b.x, b.y, b.w, b.h);

    AugmentConfig c = {.size = 192};
    CHECK(aug_decode_denom(&c, (CropBox){0, 0, 500, 375}) == 1, "500x375 -> 192: no DCT scaling");
    CHECK(aug_decode_denom(&c, (CropBox){0, 0, 800, 400}) == 2, "800x400 -> 192: 1/2");
    CHECK(aug_decode_denom(&c, (CropBox){0, 0, 1600, 1600}) == 8, "1600 -> 192: 1/8");
    c.exact_decode = true;
    CHECK(aug_decode_denom(&c, (CropBox){0, 0, 1600, 1600}) == 1, "exact decode: never scaled");
}

/* ------------------------------------------------------------------------------------------------ RandAugment */
static void test_randaugment_ops(void) {
    Scratch s = {0};
    uint8_t px[4] = {0, 100, 200, 255};
    Image im = {px, 4, 1, 1, 0};
    aug_ra_apply(RA_INVERT, 9, 1, &im, &s);
    CHECK(px[0] == 255 && px[1] == 155 && px[2] == 55 && px[3] == 0, "invert");
    uint8_t p2[4] = {0, 100, 200, 255};
    im.px = p2;
    aug_ra_apply(RA_SOLARIZE, 5, 1, &im, &s);   /* threshold 256 - 128 = 128: >= 128 inverted */
    CHECK(p2[0] == 0 && p2[1] == 100 && p2[2] == 55 && p2[3] == 0, "solarize level 5: %d %d %d %d", p2[0], p2[1], p2[2], p2[3]);
    uint8_t p3[4] = {0, 100, 200, 255};
    im.px = p3;
    aug_ra_apply(RA_POSTERIZE, 5, 1, &im, &s);  /* 4 - int(2.0) = 2 bits kept: mask 0xC0 */
    CHECK(p3[1] == 64 && p3[2] == 192 && p3[3] == 192, "posterize 2 bits: %d %d %d", p3[1], p3[2], p3[3]);
    uint8_t p4[4] = {0, 100, 200, 255};
    im.px = p4;
    aug_ra_apply(RA_SOLARIZE_ADD, 10, 1, &im, &s);   /* +110 below 128 */
    CHECK(p4[0] == 110 && p4[1] == 210 && p4[2] == 200, "solarize add: %d %d %d", p4[0], p4[1], p4[2]);
    uint8_t p5[4] = {50, 60, 80, 100};
    im.px = p5;
    aug_ra_apply(RA_AUTOCONTRAST, 9, 1, &im, &s);   /* scale 255/50 = 5.1: int(100*5.1 - 255) = 254 in doubles, as PIL */
    CHECK(p5[0] == 0 && p5[1] == 51 && p5[2] == 153 && p5[3] == 254, "autocontrast: %d %d %d %d", p5[0], p5[1], p5[2], p5[3]);
    uint8_t p6[4] = {10, 20, 40, 80};
    im.px = p6;
    aug_ra_apply(RA_BRIGHTNESS, 5, 1, &im, &s);     /* factor 1.45, truncated */
    CHECK(p6[0] == 14 && p6[1] == 29 && p6[2] == 58 && p6[3] == 116, "brightness x1.45: %d %d %d %d", p6[0], p6[1], p6[2], p6[3]);
    uint8_t p7[4] = {10, 10, 200, 200};
    im.px = p7;
    aug_ra_apply(RA_EQUALIZE, 9, 1, &im, &s);       /* two levels, step (4-2)/256 = 0: unchanged */
    CHECK(p7[0] == 10 && p7[3] == 200, "equalize degenerate histogram is identity");
    /* translate by 0.45 * 10 = 4.5 px: the left part samples outside -> fill; identity affine is exact */
    Image g = make_image(10, 6, 3, 1), orig = make_image(10, 6, 3, 1);
    aug_ra_apply(RA_TRANSLATE_X, 10, 1, &g, &s);
    CHECK(g.px[(2 * 10 + 9) * 3] == 124 && g.px[(2 * 10 + 9) * 3 + 2] == 104, "translate x: right column = fill (%d)", g.px[(2 * 10 + 9) * 3]);
    CHECK(abs(g.px[(2 * 10 + 0) * 3] - orig.px[(2 * 10 + 4) * 3 + 0]) <= 40, "translate x moves content left");
    Image id = {0};
    uint8_t fill[3] = {1, 2, 3};
    aug_affine(&orig, &id, (double[6]){1, 0, 0, 0, 1, 0}, fill);
    CHECK(!memcmp(id.px, orig.px, 10 * 6 * 3), "identity affine is exact");
    aug_affine(&orig, &id, (double[6]){1, 0, 3, 0, 1, 0}, fill);   /* integer shift: exact copy of shifted pixels */
    CHECK(id.px[(1 * 10 + 2) * 3 + 1] == orig.px[(1 * 10 + 5) * 3 + 1] && id.px[(1 * 10 + 8) * 3] == 1, "integer translate");
    /* Rotation by 0 (level 0) is the identity */
    memcpy(g.px, orig.px, 10 * 6 * 3);
    aug_ra_apply(RA_ROTATE, 0, 1, &g, &s);
    CHECK(!memcmp(g.px, orig.px, 10 * 6 * 3), "rotate 0 is the identity");
    /* contrast factor 1 - 0.9 = 0.1 moves pixels toward the mean */
    memcpy(g.px, orig.px, 10 * 6 * 3);
    aug_ra_apply(RA_CONTRAST, 10, -1, &g, &s);
    int lo0 = 255, hi0 = 0, lo1 = 255, hi1 = 0;
    for (int i = 0; i < 60; i++) {
        lo0 = orig.px[3 * i] < lo0 ? orig.px[3 * i] : lo0; hi0 = orig.px[3 * i] > hi0 ? orig.px[3 * i] : hi0;
        lo1 = g.px[3 * i] < lo1 ? g.px[3 * i] : lo1; hi1 = g.px[3 * i] > hi1 ? g.px[3 * i] : hi1;
    }
    CHECK((hi1 - lo1) * 5 < (hi0 - lo0), "contrast 0.1 flattens (range %d vs %d)", hi1 - lo1, hi0 - lo0);
    /* full RandAugment keeps size and runs every op without trouble */
    DataRng r = drng_key(3, 0, 0, 0);
    for (int k = 0; k < 200; k++) { memcpy(g.px, orig.px, 10 * 6 * 3); aug_randaugment(&r, &g, &s); }
    CHECK(g.w == 10 && g.h == 6 && g.c == 3, "randaugment keeps the shape");
    image_release(&g); image_release(&orig); image_release(&id);
    scratch_free(&s);
}

/* ------------------------------------------------------------------------------------------ erasing and mixing */
static void test_erasing(void) {
    DataRng r = drng_key(11, 0, 0, 0);
    float *x = calloc(3 * 32 * 40, sizeof(float));
    int erased = 0;
    for (int t = 0; t < 50; t++) {
        memset(x, 0, 3 * 32 * 40 * sizeof(float));
        CropBox b;
        if (!aug_random_erase(&r, x, 3, 32, 40, 1.0f, &b)) continue;
        erased++;
        int outside = 0, zero_inside = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int xx = 0; xx < 40; xx++) {
                    bool in = xx >= b.x && xx < b.x + b.w && y >= b.y && y < b.y + b.h;
                    float v = x[(c * 32 + y) * 40 + xx];
                    outside += !in && v != 0;
                    zero_inside += in && v == 0;
                }
        double area = (double)b.w * b.h / (32 * 40);
        CHECK(outside == 0 && zero_inside == 0, "erasing touched %d outside / left %d inside", outside, zero_inside);
        CHECK(b.w < 40 && b.h < 32 && area > 0.012 && area < 0.40, "erase box %dx%d area %.3f", b.w, b.h, area);
    }
    CHECK(erased >= 45, "p = 1 erases (almost) always: %d/50", erased);
    int hits = 0;
    for (int t = 0; t < 2000; t++) hits += aug_random_erase(&r, x, 3, 32, 40, 0.25f, NULL);
    CHECK(hits > 400 && hits < 600, "p = 0.25: %d/2000", hits);
    free(x);
}

static void test_mixing(void) {
    int32_t labels[4] = {0, 1, 2, 3};
    float t[4 * 5];
    mix_targets(labels, 4, 5, 0.7, 0.1, t);   /* off .02, on .92: label .02+.9*.7, flipped label .02+.9*.3 */
    CHECK(fabsf(t[0] - 0.65f) < 1e-6 && fabsf(t[3] - 0.29f) < 1e-6 && fabsf(t[1] - 0.02f) < 1e-6, "mixup targets row 0: %g %g %g",
          t[0], t[3], t[1]);
    float sum = 0;
    for (int k = 0; k < 5; k++) sum += t[5 + k];
    CHECK(fabsf(sum - 1) < 1e-6 && fabsf(t[5 + 1] - 0.65f) < 1e-6 && fabsf(t[5 + 2] - 0.29f) < 1e-6, "row 1 (label 1, partner 2)");
    float s10[2 * 10];
    int32_t l2[2] = {3, 3};
    mix_targets(l2, 2, 10, 1.0, 0.1, s10);   /* plain smoothing: on 0.91, off 0.01 */
    CHECK(fabsf(s10[3] - 0.91f) < 1e-6 && fabsf(s10[0] - 0.01f) < 1e-6, "smoothing 0.1 of 10: %g %g", s10[3], s10[0]);

    enum { N = 4, C = 2, H = 8, W = 10 };
    float x[N * C * H * W], x0[N * C * H * W], tg[N * 5];
    for (int i = 0; i < N * C * H * W; i++) x0[i] = (float)(i / (C * H * W)) + 0.001f * (i % 7);
    DataRng r = drng_key(5, 0, 0, 0);
    MixConfig mu = {.mixup = 0.8f, .prob = 1, .switch_prob = 0.5f, .smoothing = 0.1f, .num_classes = 5};
    memcpy(x, x0, sizeof x);
    double lam = mix_batch(&mu, &r, x, N, C, H, W, labels, tg, NULL);
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C * H * W; k++) {
            float want = (float)lam * x0[i * C * H * W + k] + (float)(1 - lam) * x0[(N - 1 - i) * C * H * W + k];
            bad += fabsf(x[i * C * H * W + k] - want) > 1e-5f;
        }
    CHECK(lam > 0 && lam < 1 && bad == 0, "mixup: lambda %g, %d mismatches", lam, bad);
    CHECK(fabsf(tg[0] - (float)(0.02 + 0.9 * lam)) < 1e-6 && fabsf(tg[3] - (float)(0.02 + 0.9 * (1 - lam))) < 1e-6,
          "mixup targets follow lambda");
    MixConfig cm = {.cutmix = 1.0f, .prob = 1, .switch_prob = 0.5f, .num_classes = 5};
    for (int rep = 0; rep < 20; rep++) {
        memcpy(x, x0, sizeof x);
        CropBox b;
        lam = mix_batch(&cm, &r, x, N, C, H, W, labels, tg, &b);
        double want_lam = 1.0 - (double)b.w * b.h / (H * W);
        CHECK(fabs(lam - want_lam) < 1e-12, "cutmix lambda %g vs box area %g", lam, want_lam);
        bad = 0;
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    for (int xx = 0; xx < W; xx++) {
                        bool in = xx >= b.x && xx < b.x + b.w && y >= b.y && y < b.y + b.h;
                        int src = in ? N - 1 - i : i, k = (c * H + y) * W + xx;
                        bad += x[i * C * H * W + k] != x0[src * C * H * W + k];
                    }
        CHECK(bad == 0, "cutmix pixels: %d mismatches", bad);
        CHECK(fabsf(tg[0] - (float)lam) < 1e-6, "cutmix targets use the corrected lambda");
    }
    /* Beta(0.8, 0.8) mean 0.5, variance a^2/((2a)^2(2a+1)) = 1/(4*2.6) */
    double m = 0, v = 0;
    for (int i = 0; i < 20000; i++) { double b = drng_beta(&r, 0.8, 0.8); m += b; v += b * b; }
    m /= 20000; v = v / 20000 - m * m;
    CHECK(fabs(m - 0.5) < 0.01 && fabs(v - 1.0 / 10.4) < 0.01, "Beta(0.8,0.8) mean %g var %g", m, v);
}

/* ------------------------------------------------------------------------------------------- decode + datasets */
/* Offset of the SOF0 segment of a baseline JPEG (segments walked from SOI); height at +5, width at +7. */
static size_t jpeg_sof(const uint8_t *b, size_t n) {
    for (size_t i = 2; i + 4 <= n && b[i] == 0xFF; i += 2 + (size_t)(b[i + 2] << 8 | b[i + 3]))
        if (b[i + 1] == 0xC0) return i;
    return 0;
}

/* A copy of the JPEG b whose SOF claims w x h (the rest stays valid, so the header parses). */
static uint8_t *jpeg_with_size(const uint8_t *b, size_t n, int w, int h) {
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    size_t i = jpeg_sof(c, n);
    if (!i) { printf("FAIL: no SOF0 in the JPEG fixture\n"); exit(1); }
    c[i + 5] = (uint8_t)(h >> 8); c[i + 6] = (uint8_t)h; c[i + 7] = (uint8_t)(w >> 8); c[i + 8] = (uint8_t)w;
    return c;
}

/* The first `keep` bytes of b (a valid signature) followed by pseudo-random bytes, n in all. */
static uint8_t *head_then_garbage(const uint8_t *b, size_t keep, size_t n) {
    uint8_t *c = malloc(n);
    memcpy(c, b, keep);
    for (size_t i = keep; i < n; i++) c[i] = (uint8_t)((i * 2654435761u) >> 13);
    return c;
}

static void test_decode(void) {
    char err[256];
    mkdirs("dec");
    write_png("dec/rgb.png", 37, 21, 3, 0);
    write_png("dec/gray.png", 16, 9, 1, 0);
    write_jpeg("dec/rgb.jpg", 64, 48, 3, 0);
    Decoder *d = decoder_new();
    Image out = {0}, ref = make_image(37, 21, 3, 0);
    size_t n;
    uint8_t *b = read_all(tpath("dec/rgb.png"), &n);
    CHECK(image_sniff(b, n) == IMG_PNG && image_decode(d, b, n, 1, &out, err, sizeof err), "PNG decode: %s", err);
    CHECK(out.w == 37 && out.h == 21 && out.c == 3 && !memcmp(out.px, ref.px, 37 * 21 * 3), "PNG round trip is exact");
    free(b);
    b = read_all(tpath("dec/gray.png"), &n);
    CHECK(image_decode(d, b, n, 1, &out, err, sizeof err) && out.c == 1 && out.w == 16, "gray PNG stays one channel");
    free(b);
    b = read_all(tpath("dec/rgb.jpg"), &n);
    int w, h;
    CHECK(image_sniff(b, n) == IMG_JPEG && image_probe(d, b, n, &w, &h, err, sizeof err) && w == 64 && h == 48, "JPEG probe");
    image_release(&ref);
    ref = make_image(64, 48, 3, 0);
    CHECK(image_decode(d, b, n, 1, &out, err, sizeof err), "JPEG decode: %s", err);
    double mad = 0;
    for (int i = 0; i < 64 * 48 * 3; i++) mad += abs(out.px[i] - ref.px[i]);
    mad /= 64 * 48 * 3;
    CHECK(mad < 3, "JPEG decode close to the source: mean abs diff %.2f", mad);
    CHECK(image_decode(d, b, n, 2, &out, err, sizeof err) && out.w == 32 && out.h == 24, "JPEG DCT scaling 1/2: %dx%d", out.w, out.h);
    CHECK(!image_decode(d, b, n / 2, 1, &out, err, sizeof err) && strstr(err, "JPEG"), "truncated JPEG fails: %s", err);
    uint8_t junk[16] = "not an image";
    CHECK(!image_decode(d, junk, sizeof junk, 1, &out, err, sizeof err) && strstr(err, "not a JPEG or PNG"), "junk: %s", err);
    /* a bad header must not poison the decoder: the next good JPEG decodes */
    uint8_t *g = head_then_garbage(b, 20, 3000);
    CHECK(!image_probe(d, g, 3000, &w, &h, err, sizeof err) && strstr(err, "corrupt JPEG"), "JPEG header + garbage: %s", err);
    CHECK(image_decode(d, b, n, 1, &out, err, sizeof err) && out.w == 64, "good JPEG after a bad header: %s", err);
    free(g);
    /* a header claiming an absurd size fails before any allocation (xmalloc would exit) */
    g = jpeg_with_size(b, n, 65500, 65500);
    CHECK(!image_decode(d, g, n, 1, &out, err, sizeof err) && strstr(err, "65500x65500"), "huge JPEG: %s", err);
    free(g);
    g = jpeg_with_size(b, n, 0, 48);
    CHECK(!image_decode(d, g, n, 1, &out, err, sizeof err) && strstr(err, "corrupt JPEG"), "zero-width JPEG: %s", err);
    free(g);
    CHECK(!image_decode(d, b, 0, 1, &out, err, sizeof err) && strstr(err, "not a JPEG or PNG"), "empty file: %s", err);
    free(b);
    image_release(&ref);
    image_release(&out);
    decoder_free(d);
}

static void expect_open_error(const char *path, DataSplit split, const char *needle, const char *what) {
    char err[1024] = "";
    Dataset *d = dataset_open(path, split, err, sizeof err);
    CHECK(!d && strstr(err, needle), "%s: want an error containing '%s', got '%s'", what, needle, d ? "(opened)" : err);
    if (d) dataset_free(d);
}

static void test_folder(void) {
    mkdirs("folder/train/dog");
    mkdirs("folder/train/cat/sub");
    mkdirs("folder/val/cat");
    mkdirs("folder/val/dog");
    write_png("folder/train/dog/b.png", 20, 16, 3, 1);
    write_jpeg("folder/train/dog/a.jpg", 24, 18, 3, 2);
    write_png("folder/train/dog/looks_like_jpeg.jpg", 20, 20, 1, 3);   /* PNG content, .jpg name */
    write_jpeg("folder/train/dog/noext", 30, 20, 3, 4);                  /* sniffed */
    write_bytes("folder/train/dog/notes.txt", "hello", 5);               /* ignored */
    write_jpeg("folder/train/cat/z.jpeg", 16, 16, 3, 5);
    write_png("folder/train/cat/sub/y.PNG", 16, 16, 3, 6);
    write_jpeg("folder/val/cat/c.jpg", 16, 16, 3, 7);
    write_jpeg("folder/val/dog/d.jpg", 16, 16, 3, 8);
    char err[1024];
    Dataset *d = dataset_open(tpath("folder"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d, "ImageFolder: %s", err);
    if (d) {
        CHECK(dataset_len(d) == 6 && dataset_num_classes(d) == 2, "6 images, 2 classes (got %lld, %d)", (long long)dataset_len(d),
              dataset_num_classes(d));
        CHECK(!strcmp(dataset_class_name(d, 0), "cat") && !strcmp(dataset_class_name(d, 1), "dog"), "classes sorted");
        CHECK(dataset_label(d, 0) == 0 && strstr(dataset_file(d, 0), "cat/z.jpeg") && strstr(dataset_file(d, 1), "cat/sub/y.PNG"),
              "cat files: folder's own files first, then sub-folders");
        CHECK(dataset_label(d, 2) == 1 && strstr(dataset_file(d, 2), "dog/a.jpg") && strstr(dataset_file(d, 5), "dog/noext"),
              "dog files sorted, content-sniffed");
        LoaderConfig c = {.batch = 3, .threads = 2, .seed = 1, .shuffle = true, .drop_last = true,
                          .aug = {.size = 12, .train = true, .hflip = 0.5f, .randaugment = true, .reprob = 0.25f,
                                  .normalize = true, .channels = 3},
                          .mix = {.mixup = 0.8f, .cutmix = 1.0f, .prob = 1, .switch_prob = 0.5f, .smoothing = 0.1f, .num_classes = 2}};
        Loader *l = loader_new(d, &c);
        Batch b;
        int batches = 0;
        while (l && loader_next(l, &b)) {
            batches++;
            float s = 0;
            for (int k = 0; k < 2; k++) s += b.targets[k];
            CHECK(b.n == 3 && b.targets && fabsf(s - 1) < 1e-5, "mixed folder batch");
        }
        CHECK(l && batches == 2 && !loader_error(l) && loader_skipped(l) == 0, "folder loader: %d batches", batches);
        loader_free(l);
        dataset_free(d);
    }
    d = dataset_open(tpath("folder"), SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_len(d) == 2, "val split");
    dataset_free(d);

    expect_open_error(tpath("nowhere"), SPLIT_TRAIN, "nowhere: No such file", "missing path");
    mkdirs("empty");
    expect_open_error(tpath("empty"), SPLIT_TRAIN, "empty: empty directory", "empty directory");
    mkdirs("noclass");
    write_png("noclass/a.png", 4, 4, 3, 0);
    expect_open_error(tpath("noclass"), SPLIT_TRAIN, "no class folders", "images without class folders");
    mkdirs("hollow/a");
    mkdirs("hollow/b");
    write_png("hollow/a/x.png", 4, 4, 3, 0);
    write_bytes("hollow/b/readme.txt", "x", 1);
    expect_open_error(tpath("hollow"), SPLIT_TRAIN, "hollow/b: class folder has no JPEG or PNG images", "empty class folder");
    mkdirs("onlytrain/train/a");
    write_png("onlytrain/train/a/x.png", 4, 4, 3, 0);
    expect_open_error(tpath("onlytrain"), SPLIT_TEST, "no val/", "missing val split");
}

static void test_corrupt(void) {
    mkdirs("bad/a");
    mkdirs("bad/b");
    for (int i = 0; i < 8; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "bad/a/%d.jpg", i);
        write_jpeg(rel, 40, 30, 3, i);
        snprintf(rel, sizeof rel, "bad/b/%d.png", i);
        write_png(rel, 40, 30, 3, i);
    }
    size_t n;
    uint8_t *b = read_all(tpath("bad/a/0.jpg"), &n);
    write_bytes("bad/a/0.jpg", b, n / 2);   /* truncated */
    uint8_t *g = head_then_garbage(b, 20, n);
    write_bytes("bad/a/2.jpg", g, n);       /* a valid JPEG start, then garbage */
    free(g);
    g = jpeg_with_size(b, n, 65500, 65500);
    write_bytes("bad/a/4.jpg", g, n);       /* a header claiming 12.9 GB of pixels */
    free(g);
    free(b);
    b = read_all(tpath("bad/b/0.png"), &n);
    write_bytes("bad/b/0.png", b, n - 20);  /* truncated PNG */
    g = head_then_garbage(b, 8, n);
    write_bytes("bad/b/2.png", g, n);       /* the PNG signature, then garbage */
    free(g);
    free(b);
    write_bytes("bad/b/4.png", "", 0);      /* empty */
    char err[1024];
    Dataset *d = dataset_open(tpath("bad"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_len(d) == 16, "corrupt fixture opens: %s", d ? "" : err);
    if (!d) return;
    LoaderConfig c = {.batch = 4, .threads = 2, .seed = 3, .shuffle = false, .max_skip_frac = 0.4f,
                      .aug = {.size = 16, .train = false, .crop_pct = 0.875f, .normalize = true, .channels = 3}};
    printf("(warnings about 3 corrupt JPEGs, 2 corrupt PNGs and an empty file are expected here)\n");
    Loader *l = loader_new(d, &c);
    Batch bt;
    int batches = 0;
    while (loader_next(l, &bt)) batches++;
    /* exactly 6: a good image decoded after a bad one (same thread, same decoder) is not skipped */
    CHECK(batches == 4 && !loader_error(l) && loader_skipped(l) == 6, "6 corrupt of 16 tolerated at 40%%: %d batches, %lld skipped, %s",
          batches, (long long)loader_skipped(l), loader_error(l) ? loader_error(l) : "");
    loader_free(l);
    c.max_skip_frac = 0;   /* default 1%: one corrupt image of 16 is already too many */
    l = loader_new(d, &c);
    batches = 0;
    while (loader_next(l, &bt)) batches++;
    const char *e = loader_error(l);
    /* which corrupt file comes first depends on the threads' timing */
    CHECK(e && strstr(e, "corrupt images skipped") && strstr(e, "(last: ") && strstr(e, "/bad/"), "error past 1%%: %s", e ? e : "(none)");
    loader_free(l);
    dataset_free(d);
}

static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

/* IDX fixture: n images of side x side whose pixels are all 10 * i (so a batch tells which samples it holds). */
static void write_idx(const char *dir, const char *pre, int n, int side, bool gz) {
    size_t isz = 16 + (size_t)n * side * side, lsz = 8 + (size_t)n;
    uint8_t *im = malloc(isz), *lb = malloc(lsz);
    be32(im, 0x803); be32(im + 4, (uint32_t)n); be32(im + 8, (uint32_t)side); be32(im + 12, (uint32_t)side);
    for (int i = 0; i < n; i++) memset(im + 16 + (size_t)i * side * side, 10 * i, (size_t)side * side);
    be32(lb, 0x801); be32(lb + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) lb[8 + i] = (uint8_t)(i % 3);
    char rel[256];
    if (gz) {
        snprintf(rel, sizeof rel, "%s/%s-images-idx3-ubyte.gz", dir, pre);
        gzFile f = gzopen(tpath(rel), "wb");
        gzwrite(f, im, (unsigned)isz);
        gzclose(f);
    } else {
        snprintf(rel, sizeof rel, "%s/%s-images-idx3-ubyte", dir, pre);
        write_bytes(rel, im, isz);
    }
    snprintf(rel, sizeof rel, "%s/%s-labels-idx1-ubyte", dir, pre);
    write_bytes(rel, lb, lsz);
    free(im);
    free(lb);
}

static void test_idx_cifar(void) {
    char err[1024];
    mkdirs("idx");
    write_idx("idx", "train", 20, 4, true);
    write_idx("idx", "t10k", 7, 4, false);
    Dataset *d = dataset_open(tpath("idx"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_len(d) == 20 && dataset_num_classes(d) == 3 && dataset_label(d, 4) == 1, "IDX train (gz): %s", d ? "" : err);
    dataset_free(d);
    d = dataset_open(tpath("idx"), SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_len(d) == 7, "IDX test (plain): %s", d ? "" : err);
    dataset_free(d);
    mkdirs("idxbad");
    write_idx("idxbad", "train", 5, 4, false);
    uint8_t magic[4] = {0, 0, 8, 4};
    FILE *f = fopen(tpath("idxbad/train-images-idx3-ubyte"), "r+b");
    fwrite(magic, 1, 4, f);
    fclose(f);
    expect_open_error(tpath("idxbad"), SPLIT_TRAIN, "train-images-idx3-ubyte: bad IDX magic 0x00000804", "IDX bad magic");
    write_idx("idxbad", "train", 5, 4, false);
    f = fopen(tpath("idxbad/train-images-idx3-ubyte"), "r+b");
    CHECK(ftruncate(fileno(f), 16 + 5 * 16 - 3) == 0, "truncate the IDX fixture");
    fclose(f);
    expect_open_error(tpath("idxbad"), SPLIT_TRAIN, "train-images-idx3-ubyte: truncated", "IDX truncated");

    mkdirs("cifar/cifar-10-batches-bin");
    uint8_t rec[2 * 3073];
    for (int i = 0; i < 2; i++) {
        rec[i * 3073] = (uint8_t)(7 + i);
        for (int k = 0; k < 3072; k++) rec[i * 3073 + 1 + k] = (uint8_t)(k / 1024 * 100 + i);   /* planes R=0, G=100, B=200 */
    }
    write_bytes("cifar/cifar-10-batches-bin/data_batch_1.bin", rec, sizeof rec);
    write_bytes("cifar/cifar-10-batches-bin/test_batch.bin", rec, 3073);
    d = dataset_open(tpath("cifar"), SPLIT_TRAIN, err, sizeof err);
    CHECK(d && dataset_len(d) == 2 && dataset_label(d, 1) == 8 && dataset_num_classes(d) == 10, "CIFAR train: %s", d ? "" : err);
    if (d) {   /* planes become interleaved RGB: eval at native size, no normalisation gives the plane values */
        LoaderConfig c = {.batch = 2, .threads = 1, .aug = {.size = 32, .crop_pct = 1, .channels = 3}};
        Loader *l = loader_new(d, &c);
        Batch b;
        CHECK(loader_next(l, &b) && fabsf(b.images[0] - 0) < 1e-6 && fabsf(b.images[1024] - 100 / 255.f) < 1e-6 &&
              fabsf(b.images[3 * 1024 + 2048] - 201 / 255.f) < 1e-6 && b.labels[0] == 7, "CIFAR pixels and labels");
        loader_free(l);
        dataset_free(d);
    }
    write_bytes("cifar/cifar-10-batches-bin/test_batch.bin", rec, 3000);
    expect_open_error(tpath("cifar"), SPLIT_TEST, "test_batch.bin: wrong size 3000 bytes", "CIFAR wrong size");
}

static void test_fashion_mnist(void) {
    const char *p = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(p, &st) != 0) { printf("(fashion-mnist not installed: skipped)\n"); return; }
    char err[1024];
    Dataset *d = dataset_open(p, SPLIT_TEST, err, sizeof err);
    CHECK(d && dataset_len(d) == 10000 && dataset_num_classes(d) == 10 && dataset_label(d, 0) == 9,
          "Fashion-MNIST t10k: %s", d ? "" : err);
    if (d) {
        int counts[10] = {0};
        for (int64_t i = 0; i < dataset_len(d); i++) counts[dataset_label(d, i)]++;
        CHECK(counts[0] == 1000 && counts[9] == 1000, "1000 test images per class");
        LoaderConfig c = {.batch = 100, .threads = 2, .aug = {.size = 28, .crop_pct = 1, .channels = 1, .normalize = false}};
        Loader *l = loader_new(d, &c);
        Batch b;
        float mx = 0;
        CHECK(loader_next(l, &b) && b.n == 100, "Fashion-MNIST batch");
        for (int i = 0; i < 28 * 28; i++) mx = fmaxf(mx, b.images[i]);
        CHECK(mx > 0.9f && mx <= 1.0f, "pixels in [0, 1] (max %g)", mx);
        loader_free(l);
    }
    dataset_free(d);
}

/* The loader's per-sample pipeline against the primitives composed by hand, and DCT-scaled decoding against exact. */
static void test_pipeline(void) {
    char err[1024];
    mkdirs("pipe/a");
    write_jpeg("pipe/a/big.jpg", 640, 480, 3, 9);
    write_png("pipe/a/small.png", 50, 30, 1, 2);
    Dataset *d = dataset_open(tpath("pipe"), SPLIT_TRAIN, err, sizeof err);
    if (!d) { CHECK(0, "pipe fixture: %s", err); return; }
    SampleCtx w = {0};
    Scratch s = {0};
    Decoder *dec = decoder_new();
    AugmentConfig eval = {.size = 32, .train = false, .crop_pct = 0.875f, .normalize = false, .channels = 3, .exact_decode = true};
    float *out = malloc(sizeof(float) * 3 * 64 * 64), *out2 = malloc(sizeof(float) * 3 * 64 * 64);
    DataRng r = drng_key(1, 2, 3, 4);
    /* eval: Resize((36, 36)) then CenterCrop(32) at (2, 2); gray PNG replicated to 3 channels */
    CHECK(sample_make(d, 1, &eval, &r, &w, out, err, sizeof err), "eval sample: %s", err);
    size_t n;
    uint8_t *b = read_all(dataset_file(d, 1), &n);
    Image raw = {0}, big = {0};
    image_decode(dec, b, n, 1, &raw, err, sizeof err);
    image_resize(&raw, 0, 0, raw.w, raw.h, &big, 36, 36, &s);
    int bad = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                bad += fabsf(out[(c * 32 + y) * 32 + x] - big.px[(y + 2) * 36 + x + 2] / 255.f) > 1e-6f;
    CHECK(bad == 0, "eval = square resize + centre crop, gray replicated: %d mismatches", bad);
    free(b);
    /* train on a 640x480 JPEG at size 64 with full-image crops: DCT-scaled decoding (1/2 .. 1/8) stays close to exact */
    AugmentConfig tr = {.size = 64, .train = true, .scale_min = 1, .scale_max = 1, .normalize = false, .channels = 3};
    double mad = 0;
    int denoms = 0;
    for (int t = 0; t < 6; t++) {
        DataRng r1 = drng_key(5, 0, 0, (uint64_t)t), r2 = r1, r3 = r1;
        CropBox box = aug_rrc_box(&r3, 640, 480, 1, 1, 3.0 / 4, 4.0 / 3);
        tr.exact_decode = false;
        denoms += aug_decode_denom(&tr, box) > 1;
        sample_make(d, 0, &tr, &r1, &w, out, err, sizeof err);
        tr.exact_decode = true;
        sample_make(d, 0, &tr, &r2, &w, out2, err, sizeof err);
        for (int i = 0; i < 3 * 64 * 64; i++) mad += fabsf(out[i] - out2[i]) * 255.0 / (6 * 3 * 64 * 64);
    }
    printf("DCT-scaled vs exact decode at 640x480 -> 64: mean abs diff %.2f levels\n", mad);
    CHECK(denoms == 6 && mad < 4.0, "DCT-scaled vs exact decode: mean abs diff %.2f levels (%d scaled)", mad, denoms);
    image_release(&raw); image_release(&big);
    free(out); free(out2);
    decoder_free(dec);
    scratch_free(&s);
    sample_ctx_free(&w);
    dataset_free(d);
}

/* ----------------------------------------------------------------------------------------------------- loader */
typedef struct Run { int nb; float *img; int32_t *lab; float *tg; int64_t *cursor; } Run;

static Run run_loader(Dataset *d, const LoaderConfig *c, int epochs) {
    Loader *l = loader_new(d, c);
    Run r = {0};
    size_t per = (size_t)c->aug.channels * c->aug.size * c->aug.size;
    int cap = 64;
    r.img = malloc(sizeof(float) * per * c->batch * cap);
    r.lab = malloc(sizeof(int32_t) * c->batch * cap);
    r.tg = malloc(sizeof(float) * c->batch * 3 * cap);
    r.cursor = malloc(sizeof(int64_t) * 2 * cap);
    Batch b;
    for (int e = 0; e < epochs; e++)
        while (loader_next(l, &b) && r.nb < cap) {
            memcpy(r.img + per * c->batch * r.nb, b.images, sizeof(float) * per * b.n);
            memcpy(r.lab + c->batch * r.nb, b.labels, sizeof(int32_t) * b.n);
            if (b.targets) memcpy(r.tg + c->batch * 3 * r.nb, b.targets, sizeof(float) * 3 * b.n);
            r.cursor[2 * r.nb] = b.epoch;
            r.cursor[2 * r.nb + 1] = b.index;
            r.nb++;
        }
    loader_free(l);
    return r;
}
static void run_free(Run *r) { free(r->img); free(r->lab); free(r->tg); free(r->cursor); }

static void test_loader(void) {
    char err[1024];
    Dataset *d = dataset_open(tpath("idx"), SPLIT_TRAIN, err, sizeof err);   /* 20 images 4x4, pixel = 10 i */
    if (!d) { CHECK(0, "idx fixture: %s", err); return; }
    /* eval at native size without normalisation: pixel value / 255 * 25.5 recovers the sample index */
    LoaderConfig c = {.batch = 6, .threads = 1, .seed = 42, .shuffle = true, .drop_last = false,
                      .aug = {.size = 4, .train = false, .crop_pct = 1, .channels = 1}};
    Run a = run_loader(d, &c, 2);
    CHECK(a.nb == 8, "20 samples / batch 6 without drop_last: 4 batches per epoch (got %d over 2 epochs)", a.nb);
    int seen[2][20] = {{0}};
    for (int k = 0; k < a.nb; k++) {
        int n = a.cursor[2 * k + 1] == 3 ? 2 : 6;
        for (int j = 0; j < n; j++) {
            int idx = (int)lroundf(a.img[(k * 6 + j) * 16] * 25.5f);
            if (idx >= 0 && idx < 20) seen[a.cursor[2 * k]][idx]++;
            CHECK(a.lab[k * 6 + j] == idx % 3, "label follows the sample");
        }
    }
    int once = 0, same = 1;
    for (int i = 0; i < 20; i++) once += seen[0][i] == 1 && seen[1][i] == 1;
    for (int j = 0; j < 6; j++) same &= a.img[j * 16] == a.img[(4 * 6 + j) * 16];
    CHECK(once == 20, "every sample exactly once per epoch (%d)", once);
    CHECK(!same, "epochs are shuffled differently");

    /* training augmentations + mixing: identical across thread counts; seek resumes exactly */
    c.aug = (AugmentConfig){.size = 8, .train = true, .scale_min = 0.08f, .scale_max = 1, .hflip = 0.5f, .randaugment = true,
                            .reprob = 0.25f, .normalize = true, .channels = 3};
    c.mix = (MixConfig){.mixup = 0.8f, .cutmix = 1.0f, .prob = 1, .switch_prob = 0.5f, .smoothing = 0.1f, .num_classes = 3};
    c.drop_last = true;
    c.threads = 1;
    Run r1 = run_loader(d, &c, 3);
    c.threads = 3;
    c.prefetch = 2;
    Run r3 = run_loader(d, &c, 3);
    size_t per = 3 * 8 * 8;
    CHECK(r1.nb == 9 && r3.nb == 9, "drop_last: 3 batches per epoch (%d, %d)", r1.nb, r3.nb);
    CHECK(!memcmp(r1.img, r3.img, sizeof(float) * per * 6 * 9) && !memcmp(r1.tg, r3.tg, sizeof(float) * 3 * 6 * 9) &&
          !memcmp(r1.lab, r3.lab, sizeof(int32_t) * 6 * 9), "1 thread and 3 threads give the same batches");
    Loader *l = loader_new(d, &c);
    Batch b;
    loader_next(l, &b);
    loader_seek(l, 1, 2);   /* batch 5 of the run above */
    CHECK(loader_next(l, &b) && b.epoch == 1 && b.index == 2 && !memcmp(b.images, r1.img + per * 6 * 5, sizeof(float) * per * 6) &&
          !memcmp(b.targets, r1.tg + 3 * 6 * 5, sizeof(float) * 3 * 6), "seek(1, 2) resumes exactly");
    CHECK(!loader_next(l, &b) && loader_next(l, &b) && b.epoch == 2 && b.index == 0, "end of epoch, then the next one");
    loader_seek(l, 0, 0);
    CHECK(loader_next(l, &b) && !memcmp(b.images, r1.img, sizeof(float) * per * 6), "seek back to the start");
    loader_free(l);
    run_free(&r1); run_free(&r3); run_free(&a);

    /* class subset and sharding */
    int32_t sub[1] = {2};
    c = (LoaderConfig){.batch = 2, .threads = 2, .seed = 1, .shuffle = true, .class_subset = sub, .nsubset = 1,
                       .aug = {.size = 4, .crop_pct = 1, .channels = 1}};
    Run s = run_loader(d, &c, 1);   /* samples 2, 5, 8, 11, 14, 17 */
    int ok = s.nb == 3;
    for (int k = 0; k < 6 && ok; k++) ok = s.lab[k] == 2 && (int)lroundf(s.img[k * 16] * 25.5f) % 3 == 2;
    CHECK(ok, "class subset keeps only class 2 with its label (%d batches)", s.nb);
    run_free(&s);
    c.class_subset = NULL; c.nsubset = 0; c.world = 2; c.batch = 5;
    int hit[20] = {0};
    for (int rank = 0; rank < 2; rank++) {
        c.rank = rank;
        Run q = run_loader(d, &c, 1);
        CHECK(q.nb == 2, "rank %d: 10 samples, 2 batches (got %d)", rank, q.nb);
        for (int k = 0; k < 10; k++) hit[(int)lroundf(q.img[k * 16] * 25.5f)]++;
        run_free(&q);
    }
    int cover = 0;
    for (int i = 0; i < 20; i++) cover += hit[i] == 1;
    CHECK(cover == 20, "two ranks split the epoch without overlap (%d)", cover);
    c.world = 0; c.batch = 50; c.drop_last = true;
    fprintf(stdout, "(an error about fewer than one batch is expected here)\n");
    CHECK(loader_new(d, &c) == NULL, "batch larger than the dataset with drop_last is refused");
    dataset_free(d);
}

static void rm_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("(could not remove %s)\n", dir);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s/vmc-test-data-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror(tmp); return 1; }
    test_flip();
    test_resize_constant();
    test_resize_weights();
    test_crop_geometry();
    test_randaugment_ops();
    test_erasing();
    test_mixing();
    test_decode();
    test_folder();
    test_corrupt();
    test_idx_cifar();
    test_fashion_mnist();
    test_pipeline();
    test_loader();
    rm_tree(tmp);
    if (failures) { printf("%d check(s) failed\n", failures); return 1; }
    printf("all data checks passed\n");
    return 0;
}
