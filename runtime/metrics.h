/* metrics.h — the metrics log: DIR/metrics.jsonl, one JSON object per logged step or evaluation, flushed at
 * once so a crashed or interrupted run keeps everything it logged. Non-finite numbers are written as null. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

typedef struct Metrics Metrics;

Metrics *metrics_open(const char *path, bool append, char *err, int errlen);   /* NULL + message naming the path */
void     metrics_begin(Metrics *m);                       /* starts an object */
void     metrics_int(Metrics *m, const char *key, int64_t v);
void     metrics_num(Metrics *m, const char *key, double v);
void     metrics_str(Metrics *m, const char *key, const char *v);
void     metrics_end(Metrics *m);                         /* ends the object, writes the line, flushes */
void     metrics_close(Metrics *m);
