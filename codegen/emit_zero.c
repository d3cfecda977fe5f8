/* emit_zero.c — one kernel that zeroes several buffers: the memsets of a training step's atomically accumulated
 * outputs, where they stand together, become one launch of it (program_zero.c). */
#include "codegen.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

enum { ZERO_THREADS = 256, ZERO_UNITS_PER_BLOCK = 4 * ZERO_THREADS };

/* Units (float4 where the range allows, else float) and blocks of range k. */
static int64_t units_of(const ZeroRange *r) { return r->vec4 ? r->bytes / 16 : r->bytes / 4; }
static int64_t blocks_of(const ZeroRange *r) { return (units_of(r) + ZERO_UNITS_PER_BLOCK - 1) / ZERO_UNITS_PER_BLOCK; }

void codegen_zero_kernel(const ZeroRange *r, int n, KernelSource *out) {
    memset(out, 0, sizeof *out);
    ASSERT(n > 0, "no range to zero");
    uint64_t h = HASH_SEED;
    for (int k = 0; k < n; k++) {
        const bool whole = r[k].bytes > 0 && !(r[k].bytes & (r[k].vec4 ? 15 : 3));   /* whole units */
        ASSERT(whole, "zero range of %lld bytes%s", (long long)r[k].bytes, r[k].vec4 ? " in float4s" : "");
        h = hash_bytes(h, &r[k].bytes, sizeof r[k].bytes);
        h = hash_bytes(h, &r[k].vec4, sizeof r[k].vec4);
    }
    char name[64];
    snprintf(name, sizeof name, "vmc_zero%d_%08x", n, (unsigned)(h ^ (h >> 32)));
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f, "open_memstream");
    fprintf(f, "// %s: zeroes %d buffers that kernels then add into (program_zero.c), %d %s a block\n"
               "extern \"C\" __global__ void __launch_bounds__(%d) %s(", name, n, ZERO_UNITS_PER_BLOCK,
            "float4s or floats", ZERO_THREADS, name);
    for (int k = 0; k < n; k++) fprintf(f, "%sfloat *__restrict__ p%d", k ? ", " : "", k);
    fprintf(f, ") {\n    vmc_grid_entry();\n    const unsigned b = blockIdx.x;\n");
    int64_t first = 0;
    for (int k = 0; k < n; k++) {   /* blocks [first, first + blocks) zero range k */
        const int64_t nb = blocks_of(&r[k]);
        fprintf(f, "    if (b < %lldu) { vmc_zero_block((%s *)p%d, %lldu, b - %lldu); return; }   // %lld bytes\n",
                (long long)(first + nb), r[k].vec4 ? "float4" : "float", k, (long long)units_of(&r[k]),
                (long long)first, (long long)r[k].bytes);
        first += nb;
    }
    fprintf(f, "}\n");
    fclose(f);
    out->name = xstrdup(name);
    out->body = text;
    out->key = xstrdup(text);   /* (the name is derived from the sizes: equal texts, equal kernels) */
    out->grid = (unsigned)first;
    out->block = ZERO_THREADS;
    out->kclass = "memset";
}
