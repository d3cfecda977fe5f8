/* cupti_trace.c — a CUDA_INJECTION64_PATH library (scripts/trace/build.sh): the start and end of every kernel and
 * memset, from CUPTI's activity records, as csv lines "start_ns,end_ns,stream,name" into $VMC_TRACE (default
 * /tmp/trace.csv). The timeline of a captured step on machines without Nsight Systems (scripts/trace/run.sh). */
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static FILE *out;
static void CUPTIAPI request_buffer(uint8_t **buf, size_t *size, size_t *maxn) {
    *size = 8 << 20; *buf = aligned_alloc(8, *size); *maxn = 0;
}
static void CUPTIAPI buffer_done(CUcontext c, uint32_t s, uint8_t *buf, size_t size, size_t valid) {
    CUpti_Activity *r = NULL;
    (void)c; (void)s; (void)size;
    while (cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)r;
            fprintf(out, "%llu,%llu,%u,%s\n", (unsigned long long)k->start, (unsigned long long)k->end, k->streamId, k->name);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            CUpti_ActivityMemset4 *m = (CUpti_ActivityMemset4 *)r;
            fprintf(out, "%llu,%llu,%u,memset\n", (unsigned long long)m->start, (unsigned long long)m->end, m->streamId);
        }
    }
    free(buf);
}
static void finish(void) {
    cuptiActivityFlushAll(1);
    if (out) fclose(out);
}
int InitializeInjection(void) {
    const char *p = getenv("VMC_TRACE");
    out = fopen(p ? p : "/tmp/trace.csv", "w");
    if (!out) return 0;
    cuptiActivityRegisterCallbacks(request_buffer, buffer_done);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    atexit(finish);
    return 1;
}
