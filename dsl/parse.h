/* parse.h — internal interface between the flex scanner, the bison parser and the rest of dsl/.
 * The scanner returns raw tokens (newlines included); the parser's token wrapper turns newlines into statement
 * separators, reports invalid characters, and stops feeding tokens once the error cap is reached. */
#pragma once
#include "ast.h"
#include "diag.h"
#include <stdbool.h>

#define DSL_MAX_NESTING 500   /* evaluator expression depth; the parser stack holds 4x this */
#define DSL_MAX_CALLS   64    /* nested layer/fn calls (recursion guard) */
#define DSL_MAX_OPEN    64    /* '{' nesting the parser can close for error recovery */

typedef struct Tok { int64_t i; double f; const char *s; } Tok;

/* State shared by scanner and parser (flex yyextra and bison %parse-param). */
typedef struct ParseState {
    Arena *arena;
    Diag *diag;
    const SourceFile *src;
    void *scanner;
    uint32_t off;          /* scanner byte offset */
    Ast *root;             /* file: S_BLOCK of items; expression mode: the expression */
    int start_token;       /* injected first token (expression mode) or 0 */
    int depth;             /* ( and [ nesting: newlines inside are not separators */
    int last;              /* last token handed to the parser */
    bool eof_sep;          /* the separator before end of input was sent */
    bool resync;           /* an item/statement keyword closed unbalanced brackets */
    uint32_t last_end;     /* end offset of the last token handed to the parser */
    struct Queued { int t; Tok v; Loc l; } queue[2 * DSL_MAX_OPEN + 4];   /* tokens decided, not yet delivered */
    int qhead, qn;
    Loc open[DSL_MAX_OPEN];   /* '{' not yet closed, outermost first (locations of the first DSL_MAX_OPEN) */
    int nopen;
} ParseState;

/* Parse a whole file; the AST lives in `ar`; errors go to d. Returns the root even with errors (check d). */
Ast *dsl_parse_file(const SourceFile *src, Arena *ar, Diag *d);
/* Parse one expression (a --set value); NULL on errors. */
Ast *dsl_parse_expr(const SourceFile *src, Arena *ar, Diag *d);
