/* packed_copy.h — which parts of a packed backward output have a bf16 copy, and which are still stored in f32: the
 * selective-scan backward's [du | ddelta | parameter gradients | dz], the conv1d backward's [dx | dw | db] and the
 * attention backward's [dq | dk | dv]. In
 * bf16 precision the reference holds du, ddelta, dz and the conv's dx in bf16; vmc's templates write bf16 copies of
 * the parts that GEMMs, generated kernels and the conv's SiLU backward read, and skip the f32 store of a part
 * nobody reads in f32 (half the bytes written and read). Parameter gradients stay f32. */
#pragma once
#include "pass.h"

enum { SCAN_PART_DU = 1, SCAN_PART_DDL = 2, SCAN_PART_DZ = 4, SCAN_PARTS = 7, CONV_PART_DX = 1,
       ATTN_PART_DQ = 1, ATTN_PART_DK = 2, ATTN_PART_DV = 4, ATTN_PARTS = 7, PACKED_PART_OTHER = 8 };

/* Is o's output packed in parts that may have copies (OP_SCAN_BWD, OP_CONV1D_BWD, OP_CONV1D_SILU_BWD, OP_ATTN_BWD)? */
bool packed_has_parts(const Node *o);

/* The parts (SCAN_PART_* or CONV_PART_DX bits) of o's packed output that elements [off, off + len) overlap
 * (PACKED_PART_OTHER: the parameter gradients). */
int packed_part(const Node *o, int64_t off, int64_t len);

/* The parts group gr (any kind) reads of its input x, o's packed output or a view of it: the ranges of gr's
 * EXTRACT members reading x; any other reader, or none among the members (a template reading through a row map),
 * reads all of x. */
int packed_parts_read(const Fusion *f, const Group *gr, const Node *x, const Node *o);

/* In bf16 precision, an elementwise group that only lays whole copied parts of packed outputs side by side along
 * its last axis (EXTRACT, PAD, ADD: the in_proj gradient [dx | dz] from the conv's dx and the scan's dz), where only
 * GEMMs read the result's bf16 copy and nothing else reads those parts, needs no kernel: each template writes its
 * part's copy straight into its column block of that copy (Fusion.into, into_col; Group.elided). Run after the
 * copies are marked (shadow, part_copy, shadow_only), before pass_plan. */
void packed_copies_into_place(Fusion *f);
