/* scan_copy.h — which parts of a selective-scan backward's packed f32 output (du, ddelta, the parameter
 * gradients, dz) have a bf16 copy, and which are still stored in f32. In bf16 precision the reference keeps du,
 * ddelta and dz in bf16; vmc's scan backward writes bf16 copies of the parts that GEMMs and generated kernels
 * read, and skips the f32 store of a part nobody reads in f32 (half the bytes written and read). */
#pragma once
#include "pass.h"

enum { SCAN_PART_DU = 1, SCAN_PART_DDL = 2, SCAN_PART_DZ = 4, SCAN_PARTS = 7, SCAN_PART_OTHER = 8 };

/* The parts (SCAN_PART_* bits) of scan backward o's packed output that elements [off, off + len) overlap
 * (SCAN_PART_OTHER: the parameter gradients). */
int scan_bwd_part(const Node *o, int64_t off, int64_t len);

/* The parts group gr (any kind) reads of its input x, a scan backward output o or a view of it: the ranges of gr's
 * EXTRACT members reading x; any other reader, or none among the members (a template reading through a row map),
 * reads all of x. */
int scan_bwd_parts_read(const Fusion *f, const Group *gr, const Node *x, const Node *o);
