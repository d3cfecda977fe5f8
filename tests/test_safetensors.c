/* test_safetensors.c — safetensors round trip (all dtypes, metadata, 0-d and empty tensors), a byte-exact
 * header check, corrupt files (truncated, bad JSON, offsets out of range or overlapping, bad dtype) reported
 * with the path, and the atomic writer: a write that fails (to /dev/full) leaves the previous file intact. */
#include "safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static char dir[256];

static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A file from a literal header and a data size (zeros). */
static void write_with_header(const char *path, const char *hdr, size_t data) {
    size_t h = strlen(hdr);
    unsigned char *b = calloc(1, 8 + h + data);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, hdr, h);
    write_raw(path, b, 8 + h + data);
    free(b);
}

static void expect_error(const char *name, const char *path, const char *needle) {
    char err[512] = "";
    StFile *f = safetensors_read(path, err, sizeof err);
    EXPECT(!f, "%s: corrupt file was accepted", name);
    safetensors_free(f);
    EXPECT(strstr(err, path) != NULL, "%s: error does not name the path: %s", name, err);
    EXPECT(strstr(err, needle) != NULL, "%s: error lacks '%s': %s", name, needle, err);
    printf("%-22s -> %s\n", name, err);
}

static void test_round_trip(void) {
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float w[6] = {1.5f, -2, 3.25f, 0, 1e-8f, -7};
    int32_t ids[3] = {-1, 7, 1 << 30};
    int64_t big[2] = {1LL << 40, -5};
    uint16_t bf[2] = {0x3F80, 0xC000};   /* 1.0, -2.0 */
    float scalar = 42;
    int64_t sw[2] = {2, 3}, si[1] = {3}, sb[1] = {2}, se[2] = {0, 4};
    StWriter *wr = safetensors_writer_new();
    safetensors_add(wr, "layers.0.mixer.in_proj.weight", ST_F32, 2, sw, w);
    safetensors_add(wr, "ids", ST_I32, 1, si, ids);
    safetensors_add(wr, "big", ST_I64, 1, sb, big);
    safetensors_add(wr, "half", ST_BF16, 1, sb, bf);
    safetensors_add(wr, "scalar", ST_F32, 0, NULL, &scalar);
    safetensors_add(wr, "empty", ST_F32, 2, se, NULL);
    safetensors_set_meta(wr, "step", "12");
    safetensors_set_meta(wr, "note", "quote \" backslash \\ newline \n");
    EXPECT(safetensors_write(wr, path, err, sizeof err), "write: %s", err);
    safetensors_writer_free(wr);
    StFile *f = safetensors_read(path, err, sizeof err);
    EXPECT(f, "read: %s", err);
    if (!f) return;
    EXPECT(f->n == 6, "n = %d", f->n);
    const StTensor *t = safetensors_find(f, "layers.0.mixer.in_proj.weight");
    EXPECT(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->dtype == ST_F32 && !memcmp(t->data, w, sizeof w), "f32 tensor");
    t = safetensors_find(f, "ids");
    EXPECT(t && t->dtype == ST_I32 && !memcmp(t->data, ids, sizeof ids), "i32 tensor");
    t = safetensors_find(f, "big");
    EXPECT(t && t->dtype == ST_I64 && !memcmp(t->data, big, sizeof big), "i64 tensor");
    t = safetensors_find(f, "half");
    float hf[2];
    if (t) safetensors_to_f32(t, hf);
    EXPECT(t && t->dtype == ST_BF16 && hf[0] == 1.0f && hf[1] == -2.0f, "bf16 tensor");
    t = safetensors_find(f, "scalar");
    EXPECT(t && t->ndim == 0 && t->numel == 1 && !memcmp(t->data, &scalar, 4), "0-d tensor");
    t = safetensors_find(f, "empty");
    EXPECT(t && t->numel == 0, "empty tensor");
    EXPECT(safetensors_meta(f, "step") && !strcmp(safetensors_meta(f, "step"), "12"), "metadata step");
    EXPECT(safetensors_meta(f, "note") && !strcmp(safetensors_meta(f, "note"), "quote \" backslash \\ newline \n"), "metadata escapes");
    EXPECT((8 + *(uint64_t *)f->buf) % 8 == 0, "data not 8-byte aligned");
    safetensors_free(f);
}

/* The writer's header is the reference layout: {"__metadata__":{..},"name":{"dtype","shape","data_offsets"}} + spaces. */
static void test_exact_header(void) {
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/h.safetensors", dir);
    float v[2] = {1, 2};
    int64_t s[1] = {2};
    StWriter *wr = safetensors_writer_new();
    safetensors_add(wr, "x", ST_F32, 1, s, v);
    safetensors_set_meta(wr, "format", "pt");
    EXPECT(safetensors_write(wr, path, err, sizeof err), "write: %s", err);
    safetensors_writer_free(wr);
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    FILE *fp = fopen(path, "rb");
    unsigned char b[256] = {0};
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = hl << 8 | b[k];
    EXPECT(hl % 8 == 0 && hl >= strlen(want) && !memcmp(b + 8, want, strlen(want)), "header text: %.*s", (int)hl, b + 8);
    EXPECT(n == 8 + hl + 8, "file size %zu", n);
}

static void test_corrupt(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    write_raw(path, "\x10\0\0", 3);
    expect_error("short file", path, "truncated");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    expect_error("truncated data", path, "out of range");
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_raw(path, big, 10);
    expect_error("huge header length", path, "header length");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8);
    expect_error("bad json", path, "bad safetensors header");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2] \"data_offsets\":[0,8]}}", 8);
    expect_error("missing comma", path, "expected ',' or '}'");
    write_with_header(path, "{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    expect_error("bad dtype", path, "unsupported dtype");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_error("size mismatch", path, "need 12");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                            "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_error("overlap", path, "overlap");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_error("missing offsets", path, "data_offsets");
    write_with_header(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4);
    expect_error("trailing garbage", path, "trailing");
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope.safetensors", dir);
    expect_error("missing file", missing, "cannot open");
}

/* A failed write (bytes to /dev/full) keeps the previous file and names the path; no temp file is left. */
static void test_atomic(void) {
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    float v1[2] = {1, 2}, v2[2] = {3, 4};
    int64_t s[1] = {2};
    StWriter *wr = safetensors_writer_new();
    safetensors_add(wr, "x", ST_F32, 1, s, v1);
    EXPECT(safetensors_write(wr, path, err, sizeof err), "first write: %s", err);
    safetensors_writer_free(wr);
    wr = safetensors_writer_new();
    safetensors_add(wr, "x", ST_F32, 1, s, v2);
    bool ok = safetensors_write_ex(wr, path, "/dev/full", err, sizeof err);
    safetensors_writer_free(wr);
    EXPECT(!ok, "write to /dev/full succeeded");
    EXPECT(strstr(err, path) && strstr(err, "No space"), "error: %s", err);
    printf("%-22s -> %s\n", "disk full", err);
    StFile *f = safetensors_read(path, err, sizeof err);
    const StTensor *t = f ? safetensors_find(f, "x") : NULL;
    EXPECT(t && !memcmp(t->data, v1, sizeof v1), "previous file was damaged");
    safetensors_free(f);
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    EXPECT(access(tmp, F_OK) != 0, "temp file left behind: %s", tmp);
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/c.safetensors", dir);
    wr = safetensors_writer_new();
    ok = safetensors_write(wr, nodir, err, sizeof err);
    safetensors_writer_free(wr);
    EXPECT(!ok && strstr(err, nodir), "write into a missing dir: %s", err);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/vmc_st_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_exact_header();
    test_corrupt();
    test_atomic();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
    if (failures) { printf("%d failure(s)\n", failures); return 1; }
    printf("test_safetensors: all passed\n");
    return 0;
}
