/* ptxas_info.c — parses ptxas' verbose lines (ptxas_info.h):
 *   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
 *   ptxas info    : Function properties for NAME
 *   ptxas         .     104 bytes stack frame, 152 bytes spill stores, 220 bytes spill loads
 *   ptxas info    : Used 64 registers, used 1 barriers, 104 bytes cumulative stack size
 * The properties line follows the function it names; "Used" follows the entry being compiled. */
#include "ptxas_info.h"
#include "program.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int find(PtxasKernel *k, int n, const char *name) {
    for (int i = 0; i < n; i++) if (!strcmp(k[i].name, name)) return i;
    return -1;
}

int ptxas_parse(const char *log, PtxasKernel *out, int max) {
    int n = 0, entry = -1, props = -1;
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        char buf[512];
        const size_t len = end ? (size_t)(end - line) : strlen(line);
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        line = end ? end + 1 : NULL;
        char name[64];
        const char *p;
        int a, b, c;
        if ((p = strstr(buf, "Compiling entry function '")) && sscanf(p, "Compiling entry function '%63[^']'", name) == 1) {
            entry = find(out, n, name);
            if (entry < 0 && n < max) {
                entry = n++;
                memset(&out[entry], 0, sizeof out[entry]);
                snprintf(out[entry].name, sizeof out[entry].name, "%s", name);
            }
        } else if ((p = strstr(buf, "Function properties for ")) && sscanf(p, "Function properties for %63s", name) == 1) {
            props = find(out, n, name);   /* -1 for a device function that is not an entry */
        } else if ((p = strstr(buf, "bytes stack frame")) &&
                   sscanf(buf, "ptxas . %d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &a, &b, &c) == 3) {
            if (props >= 0) { out[props].stack = a; out[props].spill_stores = b; out[props].spill_loads = c; }
        } else if ((p = strstr(buf, "Used ")) && sscanf(p, "Used %d registers", &a) == 1) {
            if (entry >= 0) out[entry].registers = a;
        }
    }
    return n;
}

int ptxas_report(const Program *p, FILE *out) {
    enum { MAX = 4096 };
    PtxasKernel *k = xcalloc(MAX, sizeof *k);
    int nk = 0, most = -1, bad = 0;
    for (int m = 0; m < p->nmodules; m++)
        if (p->modules[m].bin.log) nk += ptxas_parse(p->modules[m].bin.log, k + nk, MAX - nk);
    if (!nk) {
        fprintf(out, "ptxas: no ptxas lines in the NVRTC logs\n");
        free(k);
        return -1;
    }
    for (int i = 0; i < nk; i++) if (most < 0 || k[i].registers > k[most].registers) most = i;
    fprintf(out, "ptxas: %d kernels, most registers %d (%s); stack frames or spills:", nk, k[most].registers, k[most].name);
    for (int i = 0; i < nk; i++) {
        if (!k[i].stack && !k[i].spill_stores && !k[i].spill_loads) continue;
        fprintf(out, "%s %s (%d registers, %d B stack, %d B spill stores, %d B spill loads)", bad ? "," : "", k[i].name,
                k[i].registers, k[i].stack, k[i].spill_stores, k[i].spill_loads);
        bad++;
    }
    fprintf(out, "%s\n", bad ? "" : " none");
    free(k);
    return bad;
}
