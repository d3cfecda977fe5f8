/* program_knobs.h — the environment variables that change the program program_build makes (timing comparisons),
 * read alike wherever a program is built: `vmc compile` then shows the program the cuda backend runs, and the
 * emulator runs it. */
#pragma once
#include "program.h"

/* Sets po's fields from VMC_INTO_PLACE=0, VMC_CONV_MULTI=0, VMC_CONV_MULTI_BWD=0, VMC_ZERO_MERGE=0,
 * VMC_SWIGLU_GEMM=0 or 1 (each undoes a default; SwiGLU's one launch never, or only where nothing else reads the
 * products), VMC_SWIGLU_BWD=1, VMC_GEMM_PAIRS=0, VMC_EXACT_DEPS=1 and VMC_REUSE_DELAY=N; unset variables leave the
 * defaults (SwiGLU's one launch in training too). */
void program_knobs_from_env(ProgramOptions *po);
