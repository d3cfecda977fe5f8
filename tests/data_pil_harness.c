/* data_pil_harness.c — runs one resize or RandAugment op of runtime/data_*.c on a raw HWC image, for
 * data_pil_check.py, which compares the result with Pillow's.
 * usage: data_pil_harness IN W H C OUT resize OW OH X0 Y0 X1 Y1 | ra OP LEVEL SIGN
 *        data_pil_harness FILE - - - OUT decode DENOM      (prints the decoded width, height, channels) */
#include "data.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int decode(const char *in, const char *out, int denom) {
    FILE *f = fopen(in, "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n);
    if (fread(buf, 1, n, f) != n) return 2;
    fclose(f);
    Decoder *d = decoder_new();
    Image im = {0};
    char err[256];
    if (!image_decode(d, buf, n, denom, &im, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    f = fopen(out, "wb");
    if (!f || fwrite(im.px, 1, (size_t)im.w * im.h * im.c, f) != (size_t)im.w * im.h * im.c) return 2;
    fclose(f);
    printf("%d %d %d\n", im.w, im.h, im.c);
    image_release(&im);
    decoder_free(d);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: see data_pil_harness.c\n"); return 2; }
    if (!strcmp(argv[6], "decode")) return decode(argv[1], argv[5], atoi(argv[7]));
    int w = atoi(argv[2]), h = atoi(argv[3]), c = atoi(argv[4]);
    Image src = {0}, dst = {0}, *res = &dst;
    image_reserve(&src, w, h, c);
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(src.px, 1, n, f) != n) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    fclose(f);
    Scratch s = {0};
    if (!strcmp(argv[6], "resize") && argc == 13) {
        image_resize(&src, atof(argv[9]), atof(argv[10]), atof(argv[11]), atof(argv[12]), &dst, atoi(argv[7]), atoi(argv[8]), &s);
    } else if (!strcmp(argv[6], "ra") && argc == 10) {
        aug_ra_apply((RaOp)atoi(argv[7]), atof(argv[8]), atoi(argv[9]), &src, &s);
        res = &src;
    } else {
        fprintf(stderr, "bad operation\n");
        return 2;
    }
    f = fopen(argv[5], "wb");
    if (!f || fwrite(res->px, 1, (size_t)res->w * res->h * res->c, f) != (size_t)res->w * res->h * res->c) return 2;
    fclose(f);
    image_release(&src);
    image_release(&dst);
    scratch_free(&s);
    return 0;
}
