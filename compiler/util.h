/* util.h — the project's one allocation path and one assertion path (bugs, not user errors), and the helper that
 * fills the `char *err, int errlen` out-parameters of functions that fail on their input or environment. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Formats a message into err (errlen bytes, truncated) and returns false: `return errorf(err, errlen, ...)`. */
bool errorf(char *err, int errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void vmc_abort(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Always compiled in: an internal invariant of vmc, never a check of user input. */
#define ASSERT(cond, ...) do { if (!(cond)) vmc_abort(__FILE__, __LINE__, "assertion `" #cond "` failed: " __VA_ARGS__); } while (0)
#define UNREACHABLE() vmc_abort(__FILE__, __LINE__, "unreachable")
#define COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* FNV-1a, used for hash-consing and cache keys. */
uint64_t hash_bytes(uint64_t h, const void *p, size_t n);
#define HASH_SEED 1469598103934665603ULL

/* bf16 <-> f32 as torch does them: widening is exact; narrowing rounds to nearest even, NaN stays a (quiet) NaN. */
static inline float bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* Growable array of pointers. */
typedef struct { void **items; int n, cap; } PtrVec;
void ptrvec_push(PtrVec *v, void *p);
void ptrvec_free(PtrVec *v);
