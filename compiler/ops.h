/* ops.h — the op enumeration generated from ops.def, with names, arities and kinds. */
#pragma once

typedef enum OpKind {
#define OP(name, arity, kind) OP_##name,
#include "ops.def"
#undef OP
} OpKind;

enum { OP_COUNT_ = 0
#define OP(name, arity, kind) + 1
#include "ops.def"
#undef OP
};

typedef enum OpClass { K_SOURCE, K_UNARY, K_BINARY, K_TERNARY, K_REDUCE, K_MOVE, K_GEMM, K_OPAQUE, K_RANDOM, K_SINK } OpClass;

const char *op_name(OpKind op);     /* lower-case, e.g. "matmul" */
int         op_arity(OpKind op);    /* -1 for variadic */
OpClass     op_class(OpKind op);
