/* ast.h — the syntax tree of a .vmc file: one node struct for expressions, statements and items, a Loc on each.
 * Nodes live in an arena. While parsing, child lists are heap AstLists owned by the parser (freed by its
 * %destructor on error); ast_* constructors take a list over (copy into the arena, free the heap buffer). */
#pragma once
#include "arena.h"
#include "source.h"
#include <stdint.h>
#include <stdio.h>

typedef enum AstKind {
    /* expressions */
    E_INT, E_FLOAT, E_STR, E_BOOL, E_NAME, E_LIST, E_COMP, E_BINARY, E_UNARY, E_COND, E_CALL, E_INDEX, E_KWARG,
    /* statements */
    S_LET, S_ASSIGN, S_PARAM, S_SUB, S_INPUT, S_TAP, S_OUTPUT, S_LOSS, S_RETURN, S_ASSERT, S_FOR, S_IF, S_BLOCK,
    S_TAG,
    /* items */
    I_IMPORT, I_CONST, I_FN, I_LAYER, I_MODEL, I_MODEL_ALIAS, I_RECIPE, I_ENTRY, I_GROUP, I_PARAMDEF,
    AST_KIND_COUNT_
} AstKind;

/* Binary/unary operators (E_BINARY / E_UNARY .op). */
typedef enum AstOp {
    OPR_ADD, OPR_SUB, OPR_MUL, OPR_DIV, OPR_IDIV, OPR_MOD, OPR_POW, OPR_MATMUL, OPR_RANGE,
    OPR_EQ, OPR_NE, OPR_LT, OPR_LE, OPR_GT, OPR_GE, OPR_AND, OPR_OR, OPR_NEG, OPR_PLUS, OPR_NOT
} AstOp;

typedef struct Ast Ast;
typedef struct AstList { Ast **items; int n, cap; } AstList;

/* Field use per kind (unused fields are zero):
 *  E_INT ival; E_FLOAT fval; E_STR/E_NAME name; E_BOOL ival; E_LIST list;
 *  E_COMP a=element, name=var, b=iterable, c=filter|NULL; E_BINARY/E_UNARY op, a, b; E_COND a=then, b=cond, c=else;
 *  E_CALL a=callee, list=args (E_KWARG for name = value); E_INDEX a, b; E_KWARG name, a.
 *  S_LET/S_ASSIGN/S_TAP/S_OUTPUT name, a; S_LOSS/S_RETURN a; S_ASSERT a, b=message|NULL;
 *  S_PARAM name, list=dims, name2=dtype|NULL, a=init, list2=tags (S_TAG), b=named|NULL;
 *  S_SUB name, b=index|NULL, a=layer expr, list2=tags; S_INPUT name, list=dims, name2=dtype|NULL;
 *  S_TAG name, list=args; S_FOR name, a=iterable, b=body; S_IF a=cond, b=then, c=else (S_IF or S_BLOCK)|NULL;
 *  S_BLOCK list=statements.
 *  I_IMPORT name=path; I_CONST name, a; I_FN name, list=params (I_PARAMDEF), a=body expr;
 *  I_LAYER name, list=const params, list2=tensor params (E_NAME), b=body; I_MODEL name, list=params, b=body,
 *  name2=default recipe|NULL; I_MODEL_ALIAS name, a=call (E_CALL); I_RECIPE name, name2=base|NULL, list=entries;
 *  I_ENTRY name, a; I_GROUP name, list=entries; I_PARAMDEF name, a=default|NULL.
 *  The file root is an S_BLOCK of items. */
struct Ast {
    AstKind kind;
    int op;
    Loc loc;
    const char *name, *name2;
    int64_t ival;
    double fval;
    Ast *a, *b, *c;
    AstList list, list2;
};

AstList *astlist_new(void);
AstList *astlist_push(AstList *l, Ast *x);       /* NULL x is ignored (an item that failed to parse) */
void     astlist_free(AstList *l);

Ast *ast_new(Arena *ar, AstKind k, Loc loc);
/* Moves the heap list `l` into the arena (l is freed; NULL gives an empty list). */
AstList ast_take_list(Arena *ar, AstList *l);

const char *ast_kind_name(AstKind k);
const char *ast_op_text(AstOp op);
/* S-expression dump, one item per line, for golden parse tests. */
void ast_dump(const Ast *root, FILE *out);
