/* cmd_bench_data.c — `vmc bench --data PATH|synthetic:N [--size 192] [--threads N] [--batches N] [--batch B]
 * [--eval] [--exact] [--randaugment] [--keep]`: loader throughput in images/s (decode + RandomResizedCrop + flip by default).
 * synthetic:N writes N 500x375 JPEGs (ImageNet-like size and quality) into a temporary ImageFolder first.
 * `vmc bench` (the cuda side) calls bench_data with its own argv when --data is present. */
#include "cli.h"
#include "commands.h"
#include "data.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Smooth colour fields plus texture: compresses like a photo (~40-80 KB at quality 90). */
static void synth_image(Image *im, DataRng *r) {
    double f1 = drng_range(r, 0.005, 0.03), f2 = drng_range(r, 0.01, 0.05), ph = drng_range(r, 0, 6.28);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 60 * sin(f1 * x * (c + 1) + ph) * cos(f2 * y + c) + 40 * sin(0.3 * x + 0.2 * y * c);
                v += 12 * drng_normal(r);
                im->px[((size_t)y * (size_t)im->w + (size_t)x) * 3 + (size_t)c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static bool make_synthetic(int n, char *dir, size_t dirlen) {
    snprintf(dir, dirlen, "%s/vmc-bench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) { perror(dir); return false; }
    enum { DISTINCT = 16 };   /* 16 distinct pictures, cycled: synthesis is slow, decoding cost is the same */
    Image im[DISTINCT] = {{0}};
    DataRng r = drng_key(1, 2, 3, 4);
    char p[4200], err[512];
    bool ok = true;
    for (int c = 0; c < 10 && ok; c++) {
        snprintf(p, sizeof p, "%s/class%d", dir, c);
        if (mkdir(p, 0755) != 0) { perror(p); ok = false; }
    }
    for (int i = 0; i < n && ok; i++) {
        Image *m = &im[i % DISTINCT];
        if (i < DISTINCT) { image_reserve(m, 500, 375, 3); synth_image(m, &r); }
        snprintf(p, sizeof p, "%s/class%d/img%06d.jpg", dir, i % 10, i);
        if (!image_encode_jpeg(p, m, 90, err, sizeof err)) { fprintf(stderr, "vmc: %s\n", err); ok = false; }
    }
    for (int k = 0; k < DISTINCT; k++) image_release(&im[k]);
    return ok;
}

static void remove_synthetic(const char *dir, int n) {
    char p[4200];
    for (int i = 0; i < n; i++) { snprintf(p, sizeof p, "%s/class%d/img%06d.jpg", dir, i % 10, i); unlink(p); }
    for (int c = 0; c < 10; c++) { snprintf(p, sizeof p, "%s/class%d", dir, c); rmdir(p); }
    rmdir(dir);
}

static int usage(FILE *f) {
    fprintf(f, "usage: vmc bench --data PATH|synthetic:N [--size 192] [--threads N] [--batches N] [--batch B]\n"
               "                 [--eval] [--exact] [--randaugment] [--keep (the synthetic folder)]\n");
    return f == stdout ? 0 : 1;
}

int bench_data(int argc, char **argv) {
    const char *data = NULL;
    int size = 192, threads = (int)sysconf(_SC_NPROCESSORS_ONLN), batches = 20, batch = 128;
    bool eval = false, exact = false, ra = false, keep = false;
    const struct { const char *flag; int *v; } ints[] = {
        {"--size", &size}, {"--threads", &threads}, {"--batches", &batches}, {"--batch", &batch}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = NULL;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) if (!strcmp(a, ints[k].flag)) dst = ints[k].v;
        if (dst && v) {
            long long n;
            if (!cli_int("vmc bench", a, v, 1, 1 << 16, &n)) return 1;
            *dst = (int)n;
            i++;
        } else if (!strcmp(a, "--data") && v) { data = v; i++; }
        else if (!strcmp(a, "--eval")) eval = true;
        else if (!strcmp(a, "--exact")) exact = true;
        else if (!strcmp(a, "--randaugment")) ra = true;
        else if (!strcmp(a, "--keep")) keep = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        else { fprintf(stderr, "vmc bench: unknown or incomplete option '%s' (see vmc bench --help)\n", a); return 1; }
    }
    if (!data || size <= 0 || threads <= 0 || batches <= 0 || batch <= 0) return usage(stderr);
    char dir[4096];
    int nsynth = 0;
    if (!strncmp(data, "synthetic:", 10)) {
        long long n;
        if (!cli_int("vmc bench", "--data synthetic:N", data + 10, 1, 1 << 24, &n)) return 1;
        nsynth = (int)n;
        double t0 = now_s();
        if (!make_synthetic(nsynth, dir, sizeof dir)) return 2;
        printf("wrote %d synthetic 500x375 JPEGs to %s in %.1f s\n", nsynth, dir, now_s() - t0);
        data = dir;
    }
    char err[1024];
    Dataset *d = dataset_open(data, SPLIT_TRAIN, err, sizeof err);
    if (!d) { fprintf(stderr, "vmc: error: %s\n", err); if (nsynth) remove_synthetic(dir, nsynth); return 1; }
    LoaderConfig c = {0};
    c.batch = batch; c.threads = threads; c.shuffle = true; c.drop_last = false; c.seed = 0;
    c.aug = (AugmentConfig){.size = size, .train = !eval, .scale_min = 0.08f, .scale_max = 1.0f, .hflip = 0.5f,
                            .randaugment = ra, .crop_pct = 0.875f, .normalize = true, .channels = 3, .exact_decode = exact};
    Loader *l = loader_new(d, &c);
    int rc = 1;
    if (l) {
        Batch b;
        int64_t images = 0;
        int done = 0;
        double t0 = 0;
        for (int k = 0; k < batches + 2; k++) {   /* two warm-up batches: thread start, first file reads */
            if (k == 2) { t0 = now_s(); images = 0; }
            if (!loader_next(l, &b) && !loader_next(l, &b)) break;
            images += b.n;
            done += k >= 2;
        }
        double dt = now_s() - t0;
        if (loader_error(l)) fprintf(stderr, "vmc: error: %s\n", loader_error(l));
        else if (done == 0) fprintf(stderr, "vmc: error: the dataset is too small for warm-up plus one batch\n");
        else {
            printf("data: %lld images in %.3f s: %.0f images/s (%d threads, %.0f images/s/thread), size %d, %s%s%s\n",
                   (long long)images, dt, images / dt, threads, images / dt / threads, size,
                   eval ? "eval resize+centre crop" : "RandomResizedCrop+flip", ra ? "+RandAugment" : "",
                   exact ? ", exact decode" : ", DCT-scaled decode");
            rc = 0;
        }
        loader_free(l);
    }
    dataset_free(d);
    if (nsynth && !keep) remove_synthetic(dir, nsynth);
    return rc;
}
