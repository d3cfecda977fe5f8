/* nvrtc_compile.c — loads NVRTC at run time, compiles CUDA C++ to cubin and keeps a disk cache of the results.
 * A cache entry is <dir>/<key>.cubin, key = two 64-bit FNV-1a hashes of (NVRTC version, arch, options, source);
 * entries are written to a temporary file and renamed, so concurrent vmc processes never see half a file.
 * Returns errors instead of exiting (this is codegen/). */
#include "nvrtc_compile.h"
#include "util.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static NvrtcApi api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static bool api_ok;
static char api_why[512];

static void load_api(void) {
    static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so"};
    char path[512];
    const char *dir = getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "/usr/local/cuda";
    void *lib = NULL;
    for (int k = 0; k < 4 && !lib; k++) {
        if (k < 2) snprintf(path, sizeof path, "%s", names[k]);
        else snprintf(path, sizeof path, "%s/lib64/%s", dir, names[k - 2]);
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib && k == 0) snprintf(api_why, sizeof api_why, "%s", dlerror());
    }
    if (!lib) return;
#define LOAD_(f)                                                                               \
    if (!(*(void **)&api.f = dlsym(lib, #f))) {                                                \
        snprintf(api_why, sizeof api_why, "symbol %s missing from libnvrtc (too old?)", #f);  \
        return;                                                                                \
    }
    NVRTC_FUNCS(LOAD_)
#undef LOAD_
    if (api.nvrtcVersion(&api.major, &api.minor) != NVRTC_SUCCESS) {
        snprintf(api_why, sizeof api_why, "nvrtcVersion failed");
        return;
    }
    api_ok = true;
    api_why[0] = 0;
}

const NvrtcApi *nvrtc_api(char *err, int errlen) {
    pthread_once(&api_once, load_api);
    if (!api_ok && err) snprintf(err, (size_t)errlen, "%s", api_why);
    return api_ok ? &api : NULL;
}

/* ---------------------------------------------------------------- cache */
static pthread_once_t dir_once = PTHREAD_ONCE_INIT;
static char cache_dir[1024];

static void mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(path, 0755); *p = '/'; }
    mkdir(path, 0755);
}

static void find_cache_dir(void) {
    const char *env = getenv("VMC_CACHE"), *home = getenv("HOME");
    if (env && !strcmp(env, "off")) return;
    if (env && *env) snprintf(cache_dir, sizeof cache_dir, "%s", env);
    else if (home && *home) snprintf(cache_dir, sizeof cache_dir, "%s/.cache/vmc", home);
    else return;
    mkdir_p(cache_dir);
    struct stat st;
    if (stat(cache_dir, &st) != 0 || !S_ISDIR(st.st_mode)) cache_dir[0] = 0;   /* unusable: compile every time */
}

const char *nvrtc_cache_dir(void) {
    pthread_once(&dir_once, find_cache_dir);
    return cache_dir[0] ? cache_dir : NULL;
}

static void cache_key(const char *src, int arch, const char *const *opts, int nopts, char key[40]) {
    uint64_t h[2] = {HASH_SEED, 0x9e3779b97f4a7c15ULL};   /* two seeds: 128 bits against collisions */
    for (int s = 0; s < 2; s++) {
        h[s] = hash_bytes(h[s], &api.major, sizeof api.major);
        h[s] = hash_bytes(h[s], &api.minor, sizeof api.minor);
        h[s] = hash_bytes(h[s], &arch, sizeof arch);
        for (int k = 0; k < nopts; k++) h[s] = hash_bytes(h[s], opts[k], strlen(opts[k]) + 1);
        h[s] = hash_bytes(h[s], src, strlen(src));
    }
    snprintf(key, 40, "%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
}

static bool read_file(const char *path, void **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = fseek(f, 0, SEEK_END) == 0;
    long n = ok ? ftell(f) : -1;
    ok = ok && n > 4 && fseek(f, 0, SEEK_SET) == 0;
    char *buf = ok ? xmalloc((size_t)n) : NULL;
    ok = ok && fread(buf, 1, (size_t)n, f) == (size_t)n && !memcmp(buf, "\177ELF", 4);  /* a cubin is ELF */
    fclose(f);
    if (!ok) { free(buf); return false; }
    *data = buf;
    *size = (size_t)n;
    return true;
}

/* A cached log, NUL-terminated; NULL if there is none. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 > cap) buf = xrealloc(buf, cap = 2 * cap + 4096);
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = 0;
    return buf;
}

/* Best effort: a cache that cannot be written only costs the next run a compile. */
static void write_atomic(const char *path, const void *data, size_t size) {
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    bool ok = fwrite(data, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) remove(tmp);
}

/* ---------------------------------------------------------------- compile */
static void errf(char *err, int errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
}

/* Writes the failing source where a person can open it; returns the path (or "" if it could not). */
static void dump_source(const char *src, const char *name, const char *key, char *path, int pathlen) {
    const char *dir = nvrtc_cache_dir();
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, (size_t)pathlen, "%s/failed-%s-%.12s.cu", dir ? dir : tmpdir, name, key);
    FILE *f = fopen(path, "w");
    if (!f || fputs(src, f) < 0) path[0] = 0;
    if (f) fclose(f);
}

static char *program_log(nvrtcProgram prog) {
    size_t n = 0;
    if (api.nvrtcGetProgramLogSize(prog, &n) != NVRTC_SUCCESS || n == 0) return xstrdup("");
    char *log = xmalloc(n + 1);
    if (api.nvrtcGetProgramLog(prog, log) != NVRTC_SUCCESS) log[0] = 0;
    log[n] = 0;
    return log;
}

/* "sm_90", or "sm_90a" for NVRTC_ARCH_SM90A */
static const char *arch_name(int arch, char *buf, size_t n) {
    snprintf(buf, n, "sm_%d%s", arch & (NVRTC_ARCH_SPECIFIC - 1), arch & NVRTC_ARCH_SPECIFIC ? "a" : "");
    return buf;
}

static bool run_nvrtc(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                      const char *key, NvrtcBinary *out, char *err, int errlen) {
    char archopt[64], an[16];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch_name(arch, an, sizeof an));
    const char *all[64] = {"-default-device", "-std=c++17", archopt};
    int nall = 3;
    for (int k = 0; k < nopts && nall < 64; k++) all[nall++] = opts[k];
    nvrtcProgram prog;
    nvrtcResult r = api.nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL);
    if (r != NVRTC_SUCCESS) {
        errf(err, errlen, "nvrtcCreateProgram(%s): %s", name, api.nvrtcGetErrorString(r));
        return false;
    }
    r = api.nvrtcCompileProgram(prog, nall, all);
    if (r != NVRTC_SUCCESS) {
        char *log = program_log(prog), path[1400];
        dump_source(src, name, key, path, sizeof path);
        fprintf(stderr, "vmc: NVRTC failed to compile %s for %s: %s\n%s\n", name, an,
                api.nvrtcGetErrorString(r), log);
        errf(err, errlen, "NVRTC could not compile kernel source %s for %s (log above); source written to %s",
             name, an, path[0] ? path : "(nowhere: no writable folder)");
        free(log);
        api.nvrtcDestroyProgram(&prog);
        return false;
    }
    out->log = program_log(prog);
    if (!out->log[0]) { free(out->log); out->log = NULL; }
    size_t n = 0;
    r = api.nvrtcGetCUBINSize(prog, &n);
    if (r == NVRTC_SUCCESS && n > 0) {
        out->cubin = xmalloc(n);
        out->size = n;
        r = api.nvrtcGetCUBIN(prog, out->cubin);
    }
    api.nvrtcDestroyProgram(&prog);
    if (r != NVRTC_SUCCESS || n == 0) {
        nvrtc_binary_free(out);
        errf(err, errlen, "NVRTC produced no cubin for %s (%s is not a real architecture?)", name, an);
        return false;
    }
    return true;
}

bool nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                   NvrtcBinary *out, char *err, int errlen) {
    memset(out, 0, sizeof *out);
    if (!nvrtc_api(err, errlen)) return false;
    char key[40], path[1200], an[16];
    cache_key(src, arch, opts, nopts, key);
    arch_name(arch, an, sizeof an);
    const char *dir = nvrtc_cache_dir();
    char logpath[1200];
    if (dir) {
        snprintf(path, sizeof path, "%s/%s-%s.cubin", dir, key, an);
        snprintf(logpath, sizeof logpath, "%s/%s-%s.log", dir, key, an);
        if (read_file(path, &out->cubin, &out->size)) {
            out->from_cache = true;
            out->log = read_text(logpath);
            return true;
        }
    }
    if (!run_nvrtc(src, name, arch, opts, nopts, key, out, err, errlen)) return false;
    if (dir && out->log) write_atomic(logpath, out->log, strlen(out->log));   /* (before the cubin that finds it) */
    if (dir) write_atomic(path, out->cubin, out->size);
    return true;
}

void nvrtc_binary_free(NvrtcBinary *b) {
    free(b->cubin);
    free(b->log);
    b->cubin = NULL;
    b->log = NULL;
    b->size = 0;
}
