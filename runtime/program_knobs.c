/* program_knobs.c — see program_knobs.h. */
#include "program_knobs.h"
#include "cli.h"

void program_knobs_from_env(ProgramOptions *po) {
    po->no_into_place = env_int("VMC_INTO_PLACE", 0, 1, 1) == 0;
    po->no_conv_multi = env_int("VMC_CONV_MULTI", 0, 1, 1) == 0;
    po->no_conv_multi_bwd = env_int("VMC_CONV_MULTI_BWD", 0, 1, 1) == 0;
    po->no_merge_memsets = env_int("VMC_ZERO_MERGE", 0, 1, 1) == 0;
    po->no_hoist_tail = env_int("VMC_HOIST_TAIL", 0, 1, 1) == 0;
    po->exact_view_deps = env_int("VMC_EXACT_DEPS", 0, 1, 0) == 1;
    po->scan_epi = (int)env_int("VMC_SCAN_EPI", 0, 2, 0);
    const long swiglu = env_int("VMC_SWIGLU_GEMM", 0, 2, 2);
    po->swiglu_gemm = swiglu == 0 ? -1 : swiglu == 2 ? 2 : 0;
    po->swiglu_bwd = env_int("VMC_SWIGLU_BWD", 0, 1, 0) == 1;
    po->gemm_pairs = env_int("VMC_GEMM_PAIRS", 0, 1, 1) == 1;
    /* VMC_REUSE_DELAY=N: an activation's memory reused N groups after its last reader, in training and inference
     * alike (0: at once); unset: PROGRAM_REUSE_DELAY */
    const long delay = env_int("VMC_REUSE_DELAY", -1, 1000000, -1);
    po->reuse_delay = delay < 0 ? 0 : delay == 0 ? PROGRAM_REUSE_AT_ONCE : (int)delay;
}
