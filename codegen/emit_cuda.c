/* emit_cuda.c — one fused group -> readable CUDA C (codegen_group): the kernel's header comment and parameters, the
 * batched entry, and the text's clean-up (narrowed indices, dead declarations and tables); the bodies come from
 * emit_ew.c and emit_row.c, values from emit_expr.c (emit.h). These files are the only ones that print generated
 * kernel syntax (the opaque templates live in codegen/templates). */
#include "emit.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void kernel_name(const Group *gr, char *out, size_t len) {
    int w = snprintf(out, len, "k%d", gr->index), nops = 0;
    const char *seen[4];
    for (int k = 0; k < gr->nmembers && nops < 4; k++) {
        const char *op = op_name(gr->members[k]->op);
        bool dup = false;
        for (int j = 0; j < nops; j++) dup |= !strcmp(seen[j], op);
        if (dup) continue;
        seen[nops++] = op;
        w += snprintf(out + w, len - (size_t)w, "_%s", op);
    }
}

void em_header(Em *e, const char *name, const char *what) {
    const Group *gr = e->gr;
    char s[96];
    fprintf(e->head, "/* %s: %s\n", name, what);
    for (int k = 0; k < gr->nmembers; k++) {
        const Node *n = gr->members[k];
        fprintf(e->head, " *   %%%u %s %s%s", n->id, op_name(n->op), shape_str(n->shape, s, sizeof s),
                em_param_of(e, n, true) >= 0 ? " (written)" : "");
        if (n->loc.file) {
            int l, c;
            source_linecol(n->loc.file, n->loc.start, &l, &c);
            fprintf(e->head, "  %s:%d:%d", n->loc.file->path, l, c);
        }
        fprintf(e->head, "\n");
    }
    fprintf(e->head, " */\n");
}

/* One pointer parameter: declared ("TYPE* __restrict__ NAME") or, for a batched instance, cast from q[*n]. */
static void param(FILE *o, bool cast, int *n, const char *type, const char *name) {
    const char *sep = *n ? ", " : "";
    if (cast) fprintf(o, "%s(%s*)q[%d]", sep, type, *n);
    else fprintf(o, "%s%s* __restrict__ %s", sep, type, name);
    (*n)++;
}

/* The kernel's pointer parameters in order: as declarations ("const float* __restrict__ in0, ...") or, for a
 * batched instance, as casts of the instance's values q[i]. Returns how many. */
static int param_list(Em *e, FILE *o, bool casts, bool rng) {
    const Group *gr = e->gr;
    int n = 0;
    char name[16], type[32];
    for (int k = 0; k < gr->nins; k++) {   /* bf16-stored inputs (GEMM outputs) are read as raw 16-bit words */
        snprintf(name, sizeof name, "in%d", k);
        snprintf(type, sizeof type, "const %s", em_in_bf16(e, gr->ins[k]) ? "unsigned short" : em_ctype(gr->ins[k]));
        param(o, casts, &n, type, name);
    }
    for (int k = 0; k < gr->nouts; k++) {
        snprintf(name, sizeof name, "out%d", k);
        param(o, casts, &n, em_ctype(gr->outs[k]), name);
    }
    for (int k = 0; k < gr->nouts; k++) {
        if (!e->f->shadow[gr->outs[k]->id]) continue;
        snprintf(name, sizeof name, "outb%d", k);
        param(o, casts, &n, "unsigned short", name);
    }
    if (rng) param(o, casts, &n, "const unsigned long long", "vmc_rng");
    return n;
}

void em_params(Em *e, const char *name, unsigned threads) {
    e->threads = threads;
    if (e->instances > 1) fprintf(e->o, "static __device__ __forceinline__ void %s_one(", name);
    else fprintf(e->o, "extern \"C\" __global__ void __launch_bounds__(%u) %s(", threads, name);
    param_list(e, e->o, false, true);
    fprintf(e->o, ") {\n");
    e->ind = 1;
    em_line(e, "vmc_grid_entry();");
    /* (seed, step) live in device memory so that a captured CUDA graph sees each step's values */
    em_line(e, "const unsigned long long seed = vmc_rng[0], step = vmc_rng[1];");
    em_line(e, "(void)seed; (void)step;");
}

/* A batched kernel's entry point: instance blockIdx.y's pointers, by value in one struct, passed to NAME_one. */
static void batched_entry(Em *e, const char *name) {
    char *casts = NULL;
    size_t n = 0;
    FILE *c = open_memstream(&casts, &n);
    ASSERT(c, "open_memstream");
    const int np = param_list(e, c, true, true);
    fclose(c);
    fprintf(e->o, "struct VmcArgs_%s { unsigned long long p[%d][%d]; };\n", name, e->instances, np);
    fprintf(e->o, "extern \"C\" __global__ void __launch_bounds__(%u) %s_x(const __grid_constant__ VmcArgs_%s a) {\n",
            e->threads, name, name);
    fprintf(e->o, "    const unsigned long long *q = a.p[blockIdx.y];\n    %s_one(%s);\n}\n", name, casts);
    free(casts);
}

static void emit_randperm(Em *e, const char *name, KernelSource *ks) {
    const Node *n = e->gr->root;
    em_header(e, name, "random permutation (Fisher-Yates on the Philox stream of compiler/rng.h)");
    em_params(e, KNAME, 32);
    em_line(e, "if (blockIdx.x != 0 || threadIdx.x != 0) return;");
    em_line(e, "for (int i = 0; i < %lld; i++) out0[i] = i;", (long long)n->i[0]);
    em_line(e, "for (long long i = %lld; i > 0; i--) {", (long long)n->i[0] - 1);
    em_line(e, "    unsigned j = vmc_below(vmc_philox(seed, %lluULL, step, (unsigned long long)i).x[0], (unsigned)(i + 1));",
         (unsigned long long)n->i[1]);
    em_line(e, "    int t = out0[i]; out0[i] = out0[j]; out0[j] = t;");
    em_line(e, "}");
    fprintf(e->o, "}\n");
    ks->block = 32;
    ks->grid = 1;
}

static char *replace_all(const char *s, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + nf, from)) n++;
    char *out = xmalloc(strlen(s) + n * (nt > nf ? nt - nf : 0) + 1), *w = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        if (!q) { strcpy(w, p); break; }
        memcpy(w, p, (size_t)(q - p)); w += q - p;
        memcpy(w, to, nt); w += nt;
        p = q + nf;
    }
    return out;
}

/* Index math in 32 bits when every tensor the kernel touches has fewer than 2^31 elements: 64-bit division by
 * constants costs several times more instructions, enough to make memory-bound kernels compute-bound. */
static bool small_indices(const Group *gr) {
    const int64_t lim = (int64_t)1 << 30;   /* headroom: grid-stride increments stay below 2^31 */
    bool ok = shape_numel(gr->dom) < lim;
    for (int k = 0; k < gr->nmembers; k++) ok &= shape_numel(gr->members[k]->shape) < lim;
    for (int k = 0; k < gr->nins; k++) ok &= shape_numel(gr->ins[k]->shape) < lim;
    return ok;
}

static char *narrow_indices(const char *text) {
    char *a = replace_all(text, "(long long)", "(int)");
    char *b = replace_all(a, "const long long ", "const int ");
    char *c = replace_all(b, "for (long long ", "for (int ");
    free(a); free(b);
    /* integer literals lose their LL suffix (digits followed by "LL") */
    char *w = c;
    for (const char *r = c; *r;) {
        if (r[0] == 'L' && r[1] == 'L' && r > c && r[-1] >= '0' && r[-1] <= '9') { r += 2; continue; }
        *w++ = *r++;
    }
    *w = 0;
    return c;
}

/* ---------------------------------------------------------------- dead index declarations */
/* Index math is emitted eagerly (every coordinate of the kernel's domain, a 4-wide kernel's per-element index), and
 * much of it is never read: NVRTC drops it, but warns, and a reader wades through it. Removes every line
 * "const long long NAME = ...;" whose NAME no other token uses, until none is left (one removal can free another). */
static bool ident_char(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

static int count_token(const char *text, const char *name, size_t n) {
    int count = 0;
    for (const char *p = strstr(text, name); p; p = strstr(p + n, name))
        count += (p == text || !ident_char(p[-1])) && !ident_char(p[n]);
    return count;
}

/* Is the rest of this line (from after a declared name) one initialiser, no ", other = ..." at the top level? */
static bool single_declarator(const char *p) {
    int depth = 0;
    for (; *p && *p != '\n'; p++) {
        depth += *p == '(' || *p == '[';
        depth -= *p == ')' || *p == ']';
        if (*p == ',' && depth == 0) return false;
    }
    return true;
}

static void drop_dead_decls(char *text) {
    static const char decl[] = "const long long ";
    for (bool changed = true; changed;) {
        changed = false;
        for (char *d = strstr(text, decl); d; d = strstr(d + 1, decl)) {
            char *name = d + sizeof decl - 1, *end = name;
            while (ident_char(*end)) end++;
            if (strncmp(end, " = ", 3) || !single_declarator(end)) continue;
            char saved = *end;
            *end = 0;
            char nm[IXLEN];
            snprintf(nm, sizeof nm, "%s", name);
            *end = saved;
            if (count_token(text, nm, strlen(nm)) != 1) continue;
            char *line = d, *next = strchr(d, '\n');
            while (line > text && line[-1] != '\n') line--;
            if (!next) continue;
            memmove(line, next + 1, strlen(next + 1) + 1);
            changed = true;
            d = line > text ? line - 1 : text;
        }
    }
}

/* Drops the gather tables (file scope, before the kernel) that no line of the kernel reads any more. */
static void drop_dead_tables(char *glob, const char *body, int ntables) {
    for (int k = 0; k < ntables; k++) {
        char nm[48], def[96];
        snprintf(nm, sizeof nm, KNAME "_t%d", k);
        if (count_token(body, nm, strlen(nm))) continue;
        snprintf(def, sizeof def, "__device__ const int %s[", nm);
        char *start = strstr(glob, def), *end = start ? strstr(start, "};\n") : NULL;
        if (end) memmove(start, end + 3, strlen(end + 3) + 1);
    }
}

void codegen_group_batched(const Fusion *f, const Group *gr, int instances, KernelSource *out) {
    char name[64];
    kernel_name(gr, name, sizeof name);
    char *body = NULL, *glob = NULL, *head = NULL;
    size_t nb = 0, ng = 0, nh = 0;
    Em e = {.f = f, .gr = gr, .instances = instances};
    e.o = open_memstream(&body, &nb);
    e.glob = open_memstream(&glob, &ng);
    e.head = open_memstream(&head, &nh);
    ASSERT(e.o && e.glob && e.head, "open_memstream");
    memset(out, 0, sizeof *out);
    out->kclass = codegen_group_class(f, gr);
    switch (gr->kind) {
    case GK_EW: case GK_SCATTER: emit_ew(&e, name, out); break;
    case GK_ROW: emit_row(&e, name, out); break;
    case GK_RANDPERM: emit_randperm(&e, name, out); break;
    case GK_GEMM: case GK_OPAQUE: case GK_ASSIGN: ASSERT(0, "group %d (%s) is not a generated kernel", gr->index, group_kind_name(gr->kind));
    }
    if (instances > 1) batched_entry(&e, KNAME);
    fclose(e.o);
    fclose(e.glob);
    fclose(e.head);
    drop_dead_decls(body);
    drop_dead_tables(glob, body, e.tables.n);
    nb = strlen(body);
    ng = strlen(glob);
    for (int k = 0; k < e.nmemo; k++) free(e.memo[k].key);
    free(e.memo);
    ptrvec_free(&e.tables);
    out->key = xmalloc(ng + nb + 1);
    memcpy(out->key, glob, ng);
    memcpy(out->key + ng, body, nb + 1);
    if (small_indices(gr)) {
        char *k = narrow_indices(out->key);
        free(out->key);
        out->key = k;
    }
    char *named = replace_all(out->key, KNAME, name);
    out->body = xmalloc(nh + strlen(named) + 1);
    memcpy(out->body, head, nh);
    strcpy(out->body + nh, named);
    free(named); free(body); free(glob); free(head);
    out->name = xstrdup(name);
}

void codegen_group(const Fusion *f, const Group *gr, KernelSource *out) { codegen_group_batched(f, gr, 1, out); }

/* A scan epilogue's device function NAME(b, token, d, EXTRA params): the group's element there, its outputs stored
 * (unless e->prefetch: then only its inputs asked of L2, the code using them dead). */
static void epilogue_function(Em *e, const char *name, const char *extra, const char *params) {
    const int64_t L = e->gr->dom.d[1], D = e->gr->dom.d[2];
    fprintf(e->o, "static __device__ __forceinline__ void %s(int i0, int i1, int i2, %s%s) {\n", name, extra, params);
    e->ind = 1;
    em_line(e, "const long long e = ((long long)i0 * %lldLL + i1) * %lldLL + i2;", (long long)L, (long long)D);
    e->final = !e->prefetch;
    Ix ix = {.n = 3};
    snprintf(ix.s[0], IXLEN, "i0");
    snprintf(ix.s[1], IXLEN, "i1");
    snprintf(ix.s[2], IXLEN, "i2");
    e->root_ix = &ix;
    em_val(e, e->gr->root, &ix);
    for (int k = 0; k < e->gr->nouts; k++) em_val(e, e->gr->outs[k], &ix);
    e->root_ix = NULL;
    fprintf(e->o, "}\n");
}

/* A GK_EW group as the epilogue of the scan forward whose output `own` it reads (compiler/scan_epi.c): defines
 * SCAN_EPI, SCAN_EPI_PARAMS and SCAN_EPI_ARGS (the group's inputs, outputs and bf16 copies, as codegen_group's
 * kernel takes them, without its {seed, step}), the table vmc_epi_tok (the group's token at each of the scan's L
 * rows) and vmc_scan_epi(b, token, d, own, ...), which computes the group's element there, own being the scan's
 * value, and stores its outputs (selective_scan_fwd.cuh). Returns the text (the caller frees it). */
char *codegen_scan_epilogue(const Fusion *f, const Group *gr, const Node *own, const int32_t *tok, bool prefetch) {
    ASSERT(gr->kind == GK_EW && gr->dom.ndim == 3 && !gr->ncsums, "scan epilogue of group %d", gr->index);
    char *body = NULL, *glob = NULL, *head = NULL, *plist = NULL;
    size_t nb = 0, ng = 0, nh = 0, np = 0;
    Em e = {.f = f, .gr = gr, .instances = 1, .own = own};
    e.o = open_memstream(&body, &nb);
    e.glob = open_memstream(&glob, &ng);
    e.head = open_memstream(&head, &nh);
    FILE *pl = open_memstream(&plist, &np);
    ASSERT(e.o && e.glob && e.head && pl, "open_memstream");
    const int64_t L = gr->dom.d[1];
    em_header(&e, "vmc_scan_epi", "a scan forward's epilogue, an element a call");
    param_list(&e, pl, false, false);
    fclose(pl);
    epilogue_function(&e, "vmc_scan_epi", "float own, ", plist);
    if (prefetch) {   /* vmc_scan_epi_pf: the same element's inputs asked of L2, rows before the scan reaches them */
        for (int k = 0; k < e.nmemo; k++) free(e.memo[k].key);
        e.nmemo = 0;
        e.prefetch = true;
        epilogue_function(&e, "vmc_scan_epi_pf", "", plist);
    }
    fclose(e.o);
    fclose(e.glob);
    fclose(e.head);
    drop_dead_decls(body);
    drop_dead_tables(glob, body, e.tables.n);
    for (int k = 0; k < e.nmemo; k++) free(e.memo[k].key);
    free(e.memo);
    ptrvec_free(&e.tables);
    char *out = NULL;
    size_t n = 0;
    FILE *o = open_memstream(&out, &n);
    ASSERT(o, "open_memstream");
    fprintf(o, "%s#define SCAN_EPI 1\n#define SCAN_EPI_PF %d\n#define SCAN_EPI_PARAMS , %s\n#define SCAN_EPI_ARGS", head,
            prefetch, plist);
    /* the names in plist: the last identifier before each ", " and at the end */
    for (const char *q = plist; *q;) {
        const char *c = strstr(q, ", "), *end = c ? c : q + strlen(q), *b = end;
        while (b > q && ident_char(b[-1])) b--;
        fprintf(o, ", %.*s", (int)(end - b), b);
        q = c ? c + 2 : end;
    }
    fprintf(o, "\n__constant__ int vmc_epi_tok[%lld] = {", (long long)L);
    for (int64_t t = 0; t < L; t++) fprintf(o, "%s%d", t % 32 ? ", " : (t ? ",\n    " : ""), tok[t]);
    fprintf(o, "};\n__device__ __forceinline__ void vmc_epi_prefetch(const void *p) {\n#ifdef __CUDA_ARCH__\n"
            "    asm volatile(\"prefetch.global.L2 [%%0];\" ::\"l\"(p));\n#else\n    (void)p;\n#endif\n}\n%s%s", glob, body);
    fclose(o);
    if (small_indices(gr)) {   /* (int index math, as the group's own kernel would have: the parameters stay) */
        char *k = narrow_indices(out);
        free(out);
        out = k;
    }
    /* the tables in constant memory: every thread of a block reads one entry at a time (the block's row) */
    char *named = replace_all(out, KNAME, "vmc_epi"), *cnst = replace_all(named, "__device__ const int vmc_epi", "__constant__ int vmc_epi");
    free(out); free(body); free(glob); free(head); free(plist); free(named);
    return cnst;
}

void kernel_source_free(KernelSource *k) {
    free(k->name);
    free(k->body);
    free(k->key);
    k->name = k->body = k->key = NULL;
}

const char *codegen_group_class(const Fusion *f, const Group *gr) {
    switch (gr->kind) {
    case GK_GEMM: return "gemm";
    case GK_OPAQUE:
        if (gr->root->op == OP_ATTN || gr->root->op == OP_ATTN_BWD) return "attention";
        return gr->root->op == OP_SCAN || gr->root->op == OP_SCAN_BWD ? "scan" : "conv";
    case GK_ROW: return "norm";
    case GK_ASSIGN: return "optimizer";
    case GK_RANDPERM: case GK_SCATTER: return "elementwise";
    case GK_EW:
        for (int k = 0; k < gr->nins; k++) if (gr->ins[k]->op == OP_STATE) return "optimizer";
        return "elementwise";
    }
    return "elementwise";
}

/* The generated kernels' device helpers, without the grid entry (a template's text has its own). */
#define CODEGEN_HELPERS \
        "// units [1024 b, 1024 b + 1024) of p[0, n) zeroed by a block of 256 threads (emit_zero.c)\n" \
        "template <class T> __device__ __forceinline__ void vmc_zero_block(T *p, unsigned n, unsigned b) {\n" \
        "    unsigned e = b * 1024u + 1024u;\n" \
        "    if (e > n) e = n;\n" \
        "    for (unsigned i = b * 1024u + threadIdx.x; i < e; i += 256u) p[i] = T();\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_softplus(float v) { return v <= 20.0f ? log1pf(expf(v)) : v; }\n" \
        "// e^x by the EX2 unit (2 ulp, plus |x| 6e-8 relative from rounding x log2 e; 0 below -87), and the\n" \
        "// sigmoid with it and an approximate reciprocal: libm's expf and an IEEE division cost ~25 instructions\n" \
        "__device__ __forceinline__ float vmc_exp(float x) {\n" \
        "    float r;\n" \
        "#ifdef __CUDA_ARCH__\n" \
        "    asm(\"ex2.approx.ftz.f32 %0, %1;\" : \"=f\"(r) : \"f\"(x * 1.44269504088896341f));\n" \
        "#else   // (tests/emu: the same kernels on the CPU)\n" \
        "    r = exp2f(x * 1.44269504088896341f);\n" \
        "#endif\n" \
        "    return r;\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_sigmoid(float x) { return __fdividef(1.0f, 1.0f + vmc_exp(-x)); }\n" \
        "// erf in about 25 instructions, both pieces computed and one selected (libm's erff: about 50 with branches,\n" \
        "// which made the GELU kernels compute-bound): |x| < 1.25, x P(x^2); above, 1 - e^Q(|x|) with Q ~ log erfc,\n" \
        "// |x| clamped to 4 where erf rounds to 1 (NaN passes). P (degree 7) and Q (degree 8) are least-squares fits\n" \
        "// at Chebyshev nodes (scripts/fit_erf.c); every float in [0, 4.5): at most 1.7 ulp from the exact erf with\n" \
        "// a correctly rounded exp (test_emu_generated checks a sample), about 2 with the EX2 unit's (libm's erff: 1).\n" \
        "__device__ __forceinline__ float vmc_erf(float x) {\n" \
        "    const float a = fabsf(x), t = a > 4.0f ? 4.0f : a, s = x * x;\n" \
        "    const float u = fmaf(s, 1.28f, -1.0f), v = fmaf(t, 1.0f / 1.375f, -2.625f / 1.375f);   // into [-1, 1]\n" \
        "    float p = -1.343022745e-06f, q = 2.021492219e-05f;\n" \
        "    p = fmaf(p, u, 1.421610978e-05f); p = fmaf(p, u, -1.291694352e-04f); p = fmaf(p, u, 1.034354093e-03f);\n" \
        "    p = fmaf(p, u, -7.047481369e-03f); p = fmaf(p, u, 3.998836130e-02f); p = fmaf(p, u, -1.878515333e-01f);\n" \
        "    p = fmaf(p, u, 8.923127055e-01f);\n" \
        "    q = fmaf(q, v, -1.145962669e-04f); q = fmaf(q, v, 4.355151905e-04f); q = fmaf(q, v, -1.809460111e-03f);\n" \
        "    q = fmaf(q, v, 6.863666233e-03f); q = fmaf(q, v, -2.557368204e-02f); q = fmaf(q, v, -1.791878223e+00f);\n" \
        "    q = fmaf(q, v, -7.685076714e+00f); q = fmaf(q, v, -8.490669250e+00f);\n" \
        "    return a < 1.25f ? x * p : copysignf(1.0f - vmc_exp(q), x);\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_max(float a, float b) { return (a > b || isnan(a)) ? a : b; }\n" \
        "__device__ __forceinline__ float vmc_min(float a, float b) { return (a < b || isnan(a)) ? a : b; }\n" \
        "// round to bf16 (nearest even), kept in a float; NaN stays NaN (as the cpu backend's bf16_round)\n" \
        "__device__ __forceinline__ float vmc_bf16(float f) {\n" \
        "    unsigned u = __float_as_uint(f);\n" \
        "    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;\n" \
        "    else if (u & 0xffffu) u |= 0x00400000u;\n" \
        "    return __uint_as_float(u);\n" \
        "}\n" \
        "// a bf16-stored value (its 16 bits) as a float\n" \
        "__device__ __forceinline__ float vmc_from_bf16(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n" \
        "// Philox4x32-10, word for word compiler/rng.h (the cpu backend's randomness)\n" \
        "struct vmc_rng4 { unsigned x[4]; };\n" \
        "__device__ __forceinline__ vmc_rng4 vmc_philox(unsigned long long seed, unsigned long long key,\n" \
        "                                               unsigned long long a, unsigned long long b) {\n" \
        "    unsigned c0 = (unsigned)a, c1 = (unsigned)b, c2 = (unsigned)key, c3 = (unsigned)(key >> 32);\n" \
        "    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);\n" \
        "    for (int r = 0; r < 10; r++) {\n" \
        "        unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;\n" \
        "        unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;\n" \
        "        unsigned n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;\n" \
        "        c0 = n0; c1 = n1; c2 = n2; c3 = n3;\n" \
        "        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;\n" \
        "    }\n" \
        "    vmc_rng4 o; o.x[0] = c0; o.x[1] = c1; o.x[2] = c2; o.x[3] = c3;\n" \
        "    return o;\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_uniform(unsigned x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }\n" \
        "__device__ __forceinline__ unsigned vmc_below(unsigned x, unsigned n) {\n" \
        "    return (unsigned)(((unsigned long long)x * n) >> 32);\n" \
        "}\n" \
        "__device__ __forceinline__ bool vmc_keep(unsigned long long seed, unsigned long long key, unsigned long long step,\n" \
        "                                         unsigned long long elem, float p) {\n" \
        "    return vmc_uniform(vmc_philox(seed, key, step, elem).x[0]) >= p;\n" \
        "}\n" \
        "// warp-wide reductions: every lane gets the result\n" \
        "__device__ __forceinline__ float vmc_warp_sum(float v) {\n" \
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n" \
        "    return v;\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_warp_max(float v) {\n" \
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n" \
        "    return v;\n" \
        "}\n" \
        "// block-wide reductions: every thread gets the result (blockDim.x a multiple of 32, at most 1024)\n" \
        "__device__ __forceinline__ float vmc_block_sum(float v, float *sh) {\n" \
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n" \
        "    __syncthreads();\n" \
        "    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;\n" \
        "    __syncthreads();\n" \
        "    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0f;\n" \
        "    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n" \
        "    return v;\n" \
        "}\n" \
        "__device__ __forceinline__ float vmc_block_max(float v, float *sh) {\n" \
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n" \
        "    __syncthreads();\n" \
        "    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;\n" \
        "    __syncthreads();\n" \
        "    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : __int_as_float(0xff800000);\n" \
        "    for (int o = 16; o; o >>= 1) v = vmc_max(v, __shfl_xor_sync(0xffffffffu, v, o));\n" \
        "    return v;\n" \
        "}\n"

const char *codegen_preamble(void) {
    return "// vmc generated code: shared device helpers\n" CODEGEN_GRID_ENTRY CODEGEN_HELPERS;
}

const char *codegen_helpers(void) { return CODEGEN_HELPERS; }
