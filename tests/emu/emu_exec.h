/* emu_exec.h — a backend (exec.h) that runs the cuda backend's compiled Program on the CPU: every generated and
 * template kernel through the emulator (cuda_emu.h), compiled by the host C++ compiler
 * into one shared object per NVRTC module; GEMMs by a plain loop with cuBLASLt's semantics (GemmDesc); memsets and
 * copies as memset/memcpy; launches one after another in program order. So a whole training step of the cuda path,
 * its memory plan, arguments and launch order included, is checked against the cpu backend without a GPU. The
 * emulator runs a block's threads as fibers here (cuda_emu.cpp EMU_FIBERS); the kernel tests, with a pthread per
 * CUDA thread, are the ones that can show races. The
 * environment knobs of cuda_exec.c that change the program (VMC_CONV_MULTI_BWD, VMC_ZERO_MERGE, VMC_CONV_MULTI,
 * VMC_INTO_PLACE) apply here too; vmc's own skinny-GEMM kernels are left out (the GEMM loop stands for them). */
#pragma once
#include "exec.h"

typedef struct EmuExecOptions {
    const char *cxx, *emu_dir;   /* the C++ compiler; tests/emu */
    bool bf16;                   /* bf16 GEMM operands (ProgramOptions.bf16) */
    bool scan_recompute;         /* the scan backward recomputes its chunk states (ProgramOptions.scan_recompute) */
} EmuExecOptions;
/* NULL with the reason in err. Compiling takes seconds per module. */
Exec *emu_exec_new(const Graph *g, Node *const *keep, int nkeep, const EmuExecOptions *o, char *err, int errlen);
struct Program;
const struct Program *emu_exec_program(const Exec *e);   /* the program it runs */
