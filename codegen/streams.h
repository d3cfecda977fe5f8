/* streams.h — spreads a Program's launches over several streams for the captured CUDA graph, so that
 * independent work overlaps: the per-parameter AdamW updates and gradient-norm sums (hundreds of small kernels
 * that otherwise each pay a launch's latency in turn), weight-gradient GEMMs beside the data-gradient path.
 * Two launches are ordered when their memory (Launch.acc) overlaps and one of them writes it; a launch joins the
 * stream of a producer it waits for (no false order), or else the stream used least recently; the critical path
 * (below) keeps to one stream where it can (streams.c pick_stream). Needs no GPU. */
#pragma once
#include "program.h"

enum { STREAMS_MAX = 16 };

typedef struct StreamPlan {
    int nstreams, nlaunches;
    int *stream;          /* by launch: 0 .. nstreams-1 (0 is the stream the step is launched on); `once`
                           * launches are not part of the step and stay 0 without waits */
    int **wait;           /* by launch: launches on other streams to wait for first (at most one per stream) */
    int *nwait;
    bool *record;         /* by launch: some later launch waits for it (record an event after it) */
    int *last;            /* by stream: its last launch, -1 if none (the step joins these back into stream 0) */
    bool *critical;       /* by launch: on or near the longest dependency path (below); all false on 1 stream */
    int *heir;            /* by critical launch: the critical launch that continues its stream (-1: none): of those
                           * that wait for it longest (it finishes last among their dependencies), the one with
                           * the longest path after it. Its other successors go elsewhere, so the longest path
                           * keeps to one stream, whose consecutive launches start early by programmatic dependent
                           * launch (a wait on another stream's event costs a few microseconds more). */
} StreamPlan;

/* nstreams 1 to STREAMS_MAX (clamped); 1 gives every launch stream 0 and no waits (the order of the Program). */
StreamPlan *stream_plan(const Program *p, int nstreams);
void stream_plan_free(StreamPlan *s);
/* Critical launches (StreamPlan.critical): those whose longest path through the true dependencies (each launch
 * costed by the memory it declares at 3 TB/s, a GEMM's work at 600 TFLOP/s, plus 2 us) is within CRITICAL_SLACK of
 * the longest. The rest (weight gradients, norm sums beside the backward) can wait for free SMs: the captured graph
 * gives the critical ones the higher priority (cuda_exec.c; VMC_PRIORITY=0 turns that off). */
#define CRITICAL_SLACK 0.05
/* The longest path through the step's true dependencies (those the multi-stream graph keeps), each launch at its
 * floor at rates r (launch_floor_ms): no overlap of launches gets a step below it. on_path (by launch, or NULL):
 * whether the launch is on that path. */
double stream_longest_path_ms(const Program *p, const FloorRates *r, bool *on_path);
/* Do launches j and k touch overlapping memory with at least one write? */
bool launches_conflict(const Launch *j, const Launch *k);
