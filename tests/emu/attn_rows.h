// attn_rows.h — the row maps (template.c def_rows' macros) of an emu_attn*.cpp instantiation with plain layouts: q
// and dout contiguous [B, L, H E]; k and v the two channel halves of one [B, S, 2 H E] buffer when EMU_KV_FUSED is
// 1 (as the kv projection's output), else each its own contiguous [B, S, H E]. Include after the ATTN_* shapes and
// EMU_KV_FUSED.
#define Q_LROWS ATTN_L
#define Q_STRIDE (ATTN_H * ATTN_E)
#define Q_OFF 0
#define Q_ROW(t) (t)
#define DO_LROWS ATTN_L
#define DO_STRIDE (ATTN_H * ATTN_E)
#define DO_OFF 0
#define DO_ROW(t) (t)
#define K_LROWS ATTN_S
#define K_STRIDE ((1 + EMU_KV_FUSED) * ATTN_H * ATTN_E)
#define K_OFF 0
#define K_ROW(t) (t)
#define V_LROWS ATTN_S
#define V_STRIDE K_STRIDE
#define V_OFF (EMU_KV_FUSED * ATTN_H * ATTN_E)
#define V_ROW(t) (t)
