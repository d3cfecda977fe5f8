/* data_decode.c — JPEG (libturbojpeg) and PNG (libpng) decoding from memory into 8-bit RGB/L images, format
 * sniffing by content, and the encoders the tests and the benchmark use to make fixtures. */
#include "data.h"
#include "util.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

struct Decoder { tjhandle tj; };

/* The largest image decoded: PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS) and 16-bit sides, so a
 * header claiming an absurd size is a corrupt file, not an allocation that fails (xmalloc exits). */
#define MAX_SIDE 65535
#define MAX_PIXELS 178956970LL

static bool dims_ok(int w, int h, char *why, int whylen) {
    if (w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE && (long long)w * h <= MAX_PIXELS) return true;
    snprintf(why, whylen, "header claims %dx%d pixels (at most %d per side and %lld in all)", w, h, MAX_SIDE, MAX_PIXELS);
    return false;
}

void image_reserve(Image *im, int w, int h, int c) {
    size_t need = (size_t)w * (size_t)h * (size_t)c;
    if (need > im->cap) {
        free(im->cap ? im->px : NULL);
        im->px = xmalloc(need);
        im->cap = need;
    }
    im->w = w; im->h = h; im->c = c;
}

void image_release(Image *im) {
    if (im->cap) free(im->px);
    *im = (Image){0};
}

ImageFormat image_sniff(const uint8_t *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return IMG_JPEG;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return IMG_PNG;
    return IMG_UNKNOWN;
}

Decoder *decoder_new(void) {
    Decoder *d = xcalloc(1, sizeof *d);
    d->tj = tjInitDecompress();
    ASSERT(d->tj, "tjInitDecompress: %s", tjGetErrorStr2(NULL));
    return d;
}

void decoder_free(Decoder *d) {
    if (!d) return;
    tjDestroy(d->tj);
    free(d);
}

/* ---- PNG through libpng, reading from memory; errors longjmp back with the library's message */
typedef struct PngSrc { const uint8_t *p; size_t n, off; char msg[160]; } PngSrc;

static void png_read_mem(png_structp png, png_bytep out, png_size_t len) {
    PngSrc *s = png_get_io_ptr(png);
    if (len > s->n - s->off) png_error(png, "truncated PNG data");
    memcpy(out, s->p + s->off, len);
    s->off += len;
}
static void png_on_error(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static bool png_dims(const uint8_t *b, size_t n, int *w, int *h) {
    if (n < 24 || memcmp(b + 12, "IHDR", 4)) return false;
    *w = (int)((uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19]);
    *h = (int)((uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23]);
    return *w > 0 && *h > 0;
}

static bool png_decode(const uint8_t *buf, size_t n, Image *out, char *err, int errlen) {
    PngSrc src = {buf, n, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(err, errlen, "libpng: out of memory"); return false; }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, errlen, "corrupt PNG: %s", src.msg);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_set_expand(png);             /* palette -> RGB, low-bit gray -> 8 bits, tRNS -> alpha */
    png_set_strip_16(png);
    png_set_strip_alpha(png);        /* PIL convert('RGB') drops alpha without compositing */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int c = png_get_channels(png, info);
    char why[128];
    if (!dims_ok(w, h, why, sizeof why)) png_error(png, why);
    if (c != 1 && c != 3) png_error(png, "unsupported channel layout");
    image_reserve(out, w, h, c);
    rows = xmalloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = out->px + (size_t)y * (size_t)w * (size_t)c;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return true;
}

/* ---- JPEG through turbojpeg; any warning (e.g. premature end of data) counts as corrupt, as PIL refuses
 * truncated files by default. turbojpeg 2.x leaves a handle mid-header after an error, and every later image then
 * fails with the same message ("Bogus marker length"): a failed handle is replaced. */
static bool jpeg_fail(Decoder *d, char *err, int errlen) {
    snprintf(err, errlen, "corrupt JPEG: %s", tjGetErrorStr2(d->tj));
    tjDestroy(d->tj);
    d->tj = tjInitDecompress();
    ASSERT(d->tj, "tjInitDecompress: %s", tjGetErrorStr2(NULL));
    return false;
}

static bool jpeg_header(Decoder *d, const uint8_t *buf, size_t n, int *w, int *h, int *cs, char *err, int errlen) {
    int sub;
    char why[128];
    if (tjDecompressHeader3(d->tj, buf, (unsigned long)n, w, h, &sub, cs) < 0) return jpeg_fail(d, err, errlen);
    if (dims_ok(*w, *h, why, sizeof why)) return true;
    snprintf(err, errlen, "corrupt JPEG: %s", why);
    return false;
}

static bool jpeg_decode(Decoder *d, const uint8_t *buf, size_t n, int denom, Image *out, char *err, int errlen) {
    int w, h, cs;
    if (!jpeg_header(d, buf, n, &w, &h, &cs, err, errlen)) return false;
    int sw = (w + denom - 1) / denom, sh = (h + denom - 1) / denom;
    bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int pf = cs == TJCS_GRAY ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_RGB;
    image_reserve(out, sw, sh, cmyk ? 4 : cs == TJCS_GRAY ? 1 : 3);
    if (tjDecompress2(d->tj, buf, (unsigned long)n, out->px, sw, 0, sh, pf, 0) < 0) return jpeg_fail(d, err, errlen);
    if (cmyk) {   /* PIL reads CMYK JPEGs as Adobe-inverted ("CMYK;I"), then cmyk2rgb: nk - nk * c / 255 */
        uint8_t *p = out->px;
        for (size_t i = 0, np = (size_t)sw * (size_t)sh; i < np; i++) {
            int nk = p[4 * i + 3];   /* 255 - K, with K = 255 - stored */
            for (int ch = 0; ch < 3; ch++) {
                int c = 255 - p[4 * i + ch], t = c * nk + 128, v = nk - (((t >> 8) + t) >> 8);
                p[3 * i + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        out->c = 3;
    }
    return true;
}

bool image_probe(Decoder *d, const uint8_t *buf, size_t n, int *w, int *h, char *err, int errlen) {
    int cs;
    switch (image_sniff(buf, n)) {
    case IMG_JPEG: return jpeg_header(d, buf, n, w, h, &cs, err, errlen);
    case IMG_PNG: {
        char why[128] = "bad IHDR";
        if (png_dims(buf, n, w, h) && dims_ok(*w, *h, why, sizeof why)) return true;
        snprintf(err, errlen, "corrupt PNG: %s", why);
        return false;
    }
    case IMG_UNKNOWN: break;
    }
    snprintf(err, errlen, "not a JPEG or PNG image");
    return false;
}

bool image_decode(Decoder *d, const uint8_t *buf, size_t n, int denom, Image *out, char *err, int errlen) {
    switch (image_sniff(buf, n)) {
    case IMG_JPEG: return jpeg_decode(d, buf, n, denom, out, err, errlen);
    case IMG_PNG: ASSERT(denom == 1, "PNG has no scaled decoding"); return png_decode(buf, n, out, err, errlen);
    case IMG_UNKNOWN: break;
    }
    snprintf(err, errlen, "not a JPEG or PNG image");
    return false;
}

bool image_encode_png(const char *path, const Image *im, char *err, int errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) { snprintf(err, errlen, "%s: cannot create", path); return false; }
    PngSrc s = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, png_on_error, png_on_warning);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, errlen, "%s: %s", path, s.msg);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return false;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, im->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)y * (size_t)im->w * (size_t)im->c);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0;
}

bool image_encode_jpeg(const char *path, const Image *im, int quality, char *err, int errlen) {
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long len = 0;
    int ok = tjCompress2(tj, im->px, im->w, 0, im->h, im->c == 1 ? TJPF_GRAY : TJPF_RGB, &jpg, &len,
                         im->c == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, 0) == 0;
    if (!ok) snprintf(err, errlen, "%s: %s", path, tjGetErrorStr2(tj));
    FILE *f = ok ? fopen(path, "wb") : NULL;
    if (ok && !f) { snprintf(err, errlen, "%s: cannot create", path); ok = 0; }
    if (f) { ok = fwrite(jpg, 1, len, f) == len; ok &= fclose(f) == 0; if (!ok) snprintf(err, errlen, "%s: write failed", path); }
    tjFree(jpg);
    tjDestroy(tj);
    return ok;
}
