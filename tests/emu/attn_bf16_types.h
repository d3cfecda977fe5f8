// attn_bf16_types.h — q, k, v and dout in bf16, as attention.cuh's tensor-core path takes them, for the emulator
// tests that instantiate it so (each sets O_T and MASK_T itself).
#pragma once
#define Q_T bf16
#define K_T bf16
#define V_T bf16
#define DO_T bf16
