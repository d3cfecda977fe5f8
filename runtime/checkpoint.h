/* checkpoint.h — training checkpoints as safetensors files: every PARAM under its state-dict name (the
 * reference PyTorch names, ARM_SPEC §6), every STATE (AdamW moments "opt.m.*"/"opt.v.*", EMA "ema.*") under its
 * own name, and the step, data cursor, seed and model in __metadata__. Files are DIR/checkpoint-<step>.safetensors,
 * written atomically; the last k are kept. Loading checks names and shapes and lists every mismatch. */
#pragma once
#include "exec.h"
#include <stdio.h>

typedef struct CkptMeta {
    int64_t step;              /* optimizer steps done */
    int64_t epoch, index;      /* data cursor: the next batch to load */
    uint64_t seed;
    char model[128];
} CkptMeta;

bool checkpoint_save(Exec *e, const Graph *g, const char *path, const CkptMeta *m, char *err, int errlen);

typedef enum CkptMode {
    CKPT_RESUME,     /* every param and state must be present with its shape: exact continuation */
    CKPT_INIT,       /* params only; names or shapes that do not match are skipped and listed */
    CKPT_INIT_EMA,   /* params from the EMA copies ("ema.<name>"), else as CKPT_INIT */
} CkptMode;

/* Writes the checkpoint's tensors into e. Mismatches (missing, unexpected, shape or dtype) are listed on report;
 * false + err when CKPT_RESUME finds any, or when nothing matched. m may be NULL. */
bool checkpoint_load(Exec *e, const Graph *g, const char *path, CkptMode mode, CkptMeta *m, FILE *report,
                     char *err, int errlen);

/* DIR/checkpoint-<step>.safetensors */
void checkpoint_path(const char *dir, int64_t step, char *out, int n);
/* Deletes all but the newest keep checkpoints in dir. */
void checkpoint_prune(const char *dir, int keep);
/* The newest checkpoint in dir; false when none. */
bool checkpoint_latest(const char *dir, char *out, int n);
