/* plot.c — PNG training curves with cairo (see plot.h): the metrics.jsonl parser for the few keys plotted, a line
 * chart with axes, "nice" ticks, axis labels, a title and a legend. libcairo is loaded at run time (dlopen), as
 * the CUDA libraries are, so vmc runs on machines without it (bare GPU servers): the plots are then skipped. */
#include "plot.h"
#include "util.h"
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAIRO_FUNCS(X)                                                                                           \
    X(cairo_arc) X(cairo_clip) X(cairo_create) X(cairo_destroy) X(cairo_fill) \
    X(cairo_image_surface_create) X(cairo_line_to) X(cairo_move_to) X(cairo_paint) X(cairo_rectangle) \
    X(cairo_reset_clip) X(cairo_restore) X(cairo_rotate) X(cairo_save) X(cairo_select_font_face) \
    X(cairo_set_font_size) X(cairo_set_line_width) X(cairo_set_source_rgb) X(cairo_show_text) \
    X(cairo_status_to_string) X(cairo_stroke) X(cairo_surface_destroy) X(cairo_surface_write_to_png) \
    X(cairo_text_extents) X(cairo_translate)
#define CAIRO_MEMBER_(f) __typeof__(f) *f;
static struct { CAIRO_FUNCS(CAIRO_MEMBER_) } C;
#undef CAIRO_MEMBER_

/* Loads libcairo once; false (with the reason in err) when it is missing. */
static bool load_cairo(char *err, int errlen) {
    static int state;             /* 0: not tried, 1: loaded, -1: missing */
    static char why[256];
    if (!state) {
        void *h = dlopen("libcairo.so.2", RTLD_NOW | RTLD_LOCAL);
        state = h ? 1 : -1;
        if (!h) snprintf(why, sizeof why, "cannot load libcairo.so.2 (%s): apt-get install libcairo2", dlerror());
#define CAIRO_LOAD_(f) if (state == 1 && !(*(void **)&C.f = dlsym(h, #f))) { state = -1; snprintf(why, sizeof why, "libcairo.so.2 lacks %s", #f); }
        CAIRO_FUNCS(CAIRO_LOAD_)
#undef CAIRO_LOAD_
    }
    if (state < 0) snprintf(err, (size_t)errlen, "plots skipped: %s", why);
    return state > 0;
}

typedef struct Series { const char *label; double *x, *y; int n, cap; double r, g, b; } Series;

static void push(Series *s, double x, double y) {
    if (!isfinite(y)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->x = xrealloc(s->x, sizeof(double) * (size_t)s->cap);
        s->y = xrealloc(s->y, sizeof(double) * (size_t)s->cap);
    }
    s->x[s->n] = x; s->y[s->n] = y; s->n++;
}

static bool key_num(const char *line, const char *key, double *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    char *end;
    *v = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

/* Ticks at 1, 2 or 5 times a power of ten, about five over [lo, hi]. */
static double tick_step(double lo, double hi) {
    double span = hi - lo > 0 ? hi - lo : 1, raw = span / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

enum { W = 800, H = 500, ML = 90, MR = 30, MT = 50, MB = 70 };

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay, bool vertical) {
    cairo_text_extents_t te;
    C.cairo_text_extents(cr, s, &te);
    C.cairo_save(cr);
    C.cairo_translate(cr, x, y);
    if (vertical) C.cairo_rotate(cr, -M_PI / 2);
    C.cairo_move_to(cr, -te.x_bearing - ax * te.width, -te.y_bearing - ay * te.height);
    C.cairo_show_text(cr, s);
    C.cairo_restore(cr);
}

static void range(const Series *s, int ns, bool ys, double *lo, double *hi) {
    *lo = INFINITY; *hi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) { double v = ys ? s[k].y[i] : s[k].x[i]; *lo = fmin(*lo, v); *hi = fmax(*hi, v); }
    if (*hi <= *lo) { *hi = *lo + (*lo != 0 ? fabs(*lo) * 0.1 : 1); *lo -= *lo != 0 ? fabs(*lo) * 0.1 : 0; }
}

static void axes(cairo_t *cr, double x0, double x1, double y0, double y1, const char *xl, const char *yl, const char *title) {
    double pw = W - ML - MR, ph = H - MT - MB;
    C.cairo_set_source_rgb(cr, 0, 0, 0);
    C.cairo_set_line_width(cr, 1);
    C.cairo_rectangle(cr, ML + .5, MT + .5, pw, ph);
    C.cairo_stroke(cr);
    C.cairo_set_font_size(cr, 12);
    char buf[64];
    double st = tick_step(x0, x1);
    for (double t = ceil(x0 / st) * st; t <= x1 + st * 1e-9; t += st) {
        double px = ML + (t - x0) / (x1 - x0) * pw;
        C.cairo_move_to(cr, px, MT + ph); C.cairo_line_to(cr, px, MT + ph + 5); C.cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%g", fabs(t) < st * 1e-6 ? 0 : t);
        text_at(cr, buf, px, MT + ph + 9, 0.5, 0, false);
    }
    st = tick_step(y0, y1);
    for (double t = ceil(y0 / st) * st; t <= y1 + st * 1e-9; t += st) {
        double py = MT + ph - (t - y0) / (y1 - y0) * ph;
        C.cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        C.cairo_move_to(cr, ML, py); C.cairo_line_to(cr, ML + pw, py); C.cairo_stroke(cr);
        C.cairo_set_source_rgb(cr, 0, 0, 0);
        C.cairo_move_to(cr, ML - 5, py); C.cairo_line_to(cr, ML, py); C.cairo_stroke(cr);
        int dec = st < 1 && st > 1e-4 ? (int)ceil(-log10(st) - 1e-9) : 0;    /* enough digits to tell ticks apart */
        if (st >= 1e-4 && fabs(t) < 1e6) snprintf(buf, sizeof buf, "%.*f", dec, fabs(t) < st * 1e-6 ? 0 : t);
        else snprintf(buf, sizeof buf, "%.2e", fabs(t) < st * 1e-6 ? 0 : t);
        text_at(cr, buf, ML - 8, py, 1, 0.5, false);
    }
    C.cairo_set_font_size(cr, 14);
    text_at(cr, xl, ML + pw / 2, H - 22, 0.5, 0, false);
    text_at(cr, yl, 22, MT + ph / 2, 0.5, 0, true);
    C.cairo_set_font_size(cr, 16);
    text_at(cr, title, W / 2.0, 16, 0.5, 0, false);
}

/* One chart: series as polylines (a single point: a dot), legend top right when there are several. */
static bool chart(const char *path, const char *title, const char *xl, const char *yl, Series *s, int ns, char *err, int errlen) {
    cairo_surface_t *sf = C.cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = C.cairo_create(sf);
    C.cairo_set_source_rgb(cr, 1, 1, 1);
    C.cairo_paint(cr);
    C.cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double x0, x1, y0, y1;
    range(s, ns, false, &x0, &x1);
    range(s, ns, true, &y0, &y1);
    double pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    axes(cr, x0, x1, y0, y1, xl, yl, title);
    double pw = W - ML - MR, ph = H - MT - MB;
    C.cairo_rectangle(cr, ML, MT, pw, ph);
    C.cairo_clip(cr);
    C.cairo_set_line_width(cr, 1.5);
    for (int k = 0; k < ns; k++) {
        C.cairo_set_source_rgb(cr, s[k].r, s[k].g, s[k].b);
        for (int i = 0; i < s[k].n; i++) {
            double px = ML + (s[k].x[i] - x0) / (x1 - x0) * pw, py = MT + ph - (s[k].y[i] - y0) / (y1 - y0) * ph;
            if (i) C.cairo_line_to(cr, px, py); else C.cairo_move_to(cr, px, py);
        }
        C.cairo_stroke(cr);
        for (int i = 0; s[k].n < 50 && i < s[k].n; i++) {     /* few points (evaluations): mark each */
            C.cairo_arc(cr, ML + (s[k].x[i] - x0) / (x1 - x0) * pw, MT + ph - (s[k].y[i] - y0) / (y1 - y0) * ph, 3, 0, 2 * M_PI);
            C.cairo_fill(cr);
        }
    }
    C.cairo_reset_clip(cr);
    C.cairo_set_font_size(cr, 12);
    int rows = 0;
    for (int k = 0; k < ns; k++) rows += s[k].n > 0;
    if (ns > 1) {             /* an opaque box: the legend stays readable over the curves */
        C.cairo_rectangle(cr, W - MR - 158, MT + 4, 150, 18 * rows + 4);
        C.cairo_set_source_rgb(cr, 1, 1, 1);
        C.cairo_fill(cr);
    }
    for (int k = 0, row = 0; ns > 1 && k < ns; k++) {
        if (!s[k].n) continue;
        double y = MT + 14 + 18 * row++;
        C.cairo_set_source_rgb(cr, s[k].r, s[k].g, s[k].b);
        C.cairo_rectangle(cr, W - MR - 150, y - 5, 20, 3);
        C.cairo_fill(cr);
        C.cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, s[k].label, W - MR - 124, y - 3, 0, 0.5, false);
    }
    C.cairo_destroy(cr);
    cairo_status_t st = C.cairo_surface_write_to_png(sf, path);
    C.cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS) { snprintf(err, (size_t)errlen, "%s: cannot write: %s", path, C.cairo_status_to_string(st)); return false; }
    return true;
}

enum { S_LOSS, S_LR, S_T1, S_T5, S_E1, S_E5, S_N };

bool plot_run(const char *dir, const char *title, char *err, int errlen) {
    if (!load_cairo(err, errlen)) return false;
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, (size_t)errlen, "%s: cannot read", path); return false; }
    Series s[S_N] = {{"loss", .b = 0.7}, {"lr", .r = 0.8}, {"top-1", .b = 0.8}, {"top-5", .g = 0.6},
                     {"top-1 (EMA)", .r = 0.9, .g = 0.5}, {"top-5 (EMA)", .r = 0.6, .b = 0.6}};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        double step, v;
        if (!key_num(line, "step", &step)) continue;
        if (strstr(line, "\"split\": ")) {
            bool ema = strstr(line, "\"weights\": \"ema\"") != NULL;
            if (key_num(line, "top1", &v)) push(&s[ema ? S_E1 : S_T1], step, v);
            if (key_num(line, "top5", &v)) push(&s[ema ? S_E5 : S_T5], step, v);
        } else {
            if (key_num(line, "loss", &v)) push(&s[S_LOSS], step, v);
            if (key_num(line, "lr", &v)) push(&s[S_LR], step, v);
        }
    }
    free(line);
    fclose(f);
    char t[512];
    bool ok = true;
    snprintf(path, sizeof path, "%s/loss.png", dir);
    snprintf(t, sizeof t, "%s: training loss", title);
    if (s[S_LOSS].n) ok = chart(path, t, "step", "loss", &s[S_LOSS], 1, err, errlen);
    snprintf(path, sizeof path, "%s/lr.png", dir);
    snprintf(t, sizeof t, "%s: learning rate", title);
    if (ok && s[S_LR].n) ok = chart(path, t, "step", "learning rate", &s[S_LR], 1, err, errlen);
    snprintf(path, sizeof path, "%s/accuracy.png", dir);
    snprintf(t, sizeof t, "%s: test accuracy", title);
    if (ok && s[S_T1].n + s[S_E1].n) ok = chart(path, t, "step", "accuracy (%)", &s[S_T1], 4, err, errlen);
    for (int k = 0; k < S_N; k++) { free(s[k].x); free(s[k].y); }
    return ok;
}
