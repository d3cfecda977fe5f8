/* parser.y — the .vmc grammar: a pure bison parser building the AST (ast.h) with a Loc on every node.
 * Error productions resynchronise at statement separators, so one run reports every syntax error (up to the
 * Diag cap). The token wrapper dsl_yylex (end of file) turns newlines into separators. */
%require "3.7"
%define api.pure full
%define api.prefix {dsl_yy}
%define api.location.type {Loc}
%define parse.error detailed
%locations
%expect 0
%parse-param {ParseState *ps}
%lex-param {ParseState *ps}

%code requires {
#include "parse.h"
}

%code provides {
int dsl_yylex(DSL_YYSTYPE *val, Loc *loc, ParseState *ps);
}

%code {
#include "util.h"
#include <string.h>
#define YYMAXDEPTH (DSL_MAX_NESTING * 4)
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                                              \
    do {                                                                                       \
        if (N) { (Cur).file = YYRHSLOC(Rhs, 1).file; (Cur).start = YYRHSLOC(Rhs, 1).start;     \
                 (Cur).end = YYRHSLOC(Rhs, N).end; }                                           \
        else { (Cur).file = YYRHSLOC(Rhs, 0).file; (Cur).start = (Cur).end = YYRHSLOC(Rhs, 0).end; } \
    } while (0)

static void dsl_yyerror(Loc *loc, ParseState *ps, const char *msg);
static Ast *node(ParseState *ps, AstKind k, Loc loc) { return ast_new(ps->arena, k, loc); }
static AstList take(ParseState *ps, AstList *l) { return ast_take_list(ps->arena, l); }
static Ast *binary(ParseState *ps, int op, Ast *a, Ast *b, Loc loc) {
    Ast *x = node(ps, E_BINARY, loc);
    x->op = op; x->a = a; x->b = b;
    return x;
}
static Ast *unary(ParseState *ps, int op, Ast *a, Loc loc) {
    Ast *x = node(ps, E_UNARY, loc);
    x->op = op; x->a = a;
    return x;
}
static Ast *named(ParseState *ps, AstKind k, const char *name, Ast *a, Loc loc) {
    Ast *x = node(ps, k, loc);
    x->name = name; x->a = a;
    return x;
}
}

%union {
    Ast *ast;
    AstList *list;
    const char *str;
    int64_t i;
    double f;
}

%destructor { astlist_free($$); } <list>

%token T_NL "end of line"
%token T_INVALID "invalid character"
%token T_START_EXPR "expression start"
%token <str> T_NAME "name" T_STRING "string"
%token <i> T_INT "integer"
%token <f> T_FLOAT "number"
%token T_IMPORT "import" T_CONST "const" T_FN "fn" T_LAYER "layer" T_MODEL "model" T_RECIPE "recipe"
%token T_EXTENDS "extends" T_PARAM "param" T_SUB "sub" T_LET "let" T_INPUT "input" T_TAP "tap"
%token T_OUTPUT "output" T_LOSS "loss" T_RETURN "return" T_ASSERT "assert" T_FOR "for" T_IN "in" T_IF "if"
%token T_ELSE "else" T_NAMED "named" T_TRUE "true" T_FALSE "false" T_AND "and" T_OR "or" T_NOT "not"
%token T_POW "**" T_IDIV "//" T_DOTDOT ".." T_EQ "==" T_NE "!=" T_LE "<=" T_GE ">="

%type <ast> item expr bexpr postfix primary arg stmt if_stmt block pdef tag opt_named rentry recipe_body
%type <ast> model_alias
%type <list> items stmts exprs opt_exprs args opt_args pdefs opt_pdefs names opt_names tags rentries
%type <str> opt_dtype opt_extends opt_recipe rkey

%left T_OR
%left T_AND
%precedence T_NOT
%nonassoc T_EQ T_NE '<' T_LE '>' T_GE
%nonassoc T_DOTDOT
%left '+' '-'
%left '*' '/' T_IDIV '%' '@'
%precedence UMINUS
%right T_POW

%%

/* file -> item* | (expression mode) expr */
file
    : items                         { ps->root = node(ps, S_BLOCK, @$); ps->root->list = take(ps, $1); }
    | T_START_EXPR expr opt_sep     { ps->root = $2; }
    ;

sep : T_NL | ';' ;
opt_sep : %empty | sep ;

items
    : %empty                        { $$ = astlist_new(); }
    | items sep                     { $$ = $1; }
    | items item sep                { $$ = astlist_push($1, $2); }
    | items error sep               { $$ = $1; }
    ;

/* item -> import STRING | const NAME = expr | fn NAME(params) = expr | layer NAME(params)(names) block
 *       | model NAME[(params)] [recipe NAME] block | model NAME = NAME(args) | recipe NAME [extends NAME] {...} */
item
    : T_IMPORT T_STRING             { $$ = node(ps, I_IMPORT, @2); $$->name = $2; }
    | T_CONST T_NAME '=' expr       { $$ = named(ps, I_CONST, $2, $4, @2); }
    | T_FN T_NAME '(' opt_pdefs ')' '=' expr {
                                      $$ = named(ps, I_FN, $2, $7, @2); $$->list = take(ps, $4); }
    | T_LAYER T_NAME '(' opt_pdefs ')' '(' opt_names ')' block {
                                      $$ = node(ps, I_LAYER, @2); $$->name = $2; $$->list = take(ps, $4);
                                      $$->list2 = take(ps, $7); $$->b = $9; }
    | T_MODEL T_NAME opt_recipe block {
                                      $$ = node(ps, I_MODEL, @2); $$->name = $2; $$->name2 = $3; $$->b = $4; }
    | T_MODEL T_NAME '(' opt_pdefs ')' opt_recipe block {
                                      $$ = node(ps, I_MODEL, @2); $$->name = $2; $$->list = take(ps, $4);
                                      $$->name2 = $6; $$->b = $7; }
    | T_MODEL T_NAME '=' model_alias { $$ = named(ps, I_MODEL_ALIAS, $2, $4, @2); }
    | T_RECIPE T_NAME opt_extends recipe_body {
                                      $$ = $4; $$->kind = I_RECIPE; $$->loc = @2; $$->name = $2; $$->name2 = $3; }
    ;

model_alias
    : T_NAME '(' opt_args ')'       { Ast *f = node(ps, E_NAME, @1); f->name = $1;
                                      $$ = node(ps, E_CALL, @$); $$->a = f; $$->list = take(ps, $3); }
    ;

opt_recipe : %empty { $$ = NULL; } | T_RECIPE T_NAME { $$ = $2; } ;
opt_extends : %empty { $$ = NULL; } | T_EXTENDS T_NAME { $$ = $2; } ;

opt_pdefs : %empty { $$ = astlist_new(); } | pdefs opt_comma { $$ = $1; } ;
pdefs
    : pdef                          { $$ = astlist_push(NULL, $1); }
    | pdefs ',' pdef                { $$ = astlist_push($1, $3); }
    ;
pdef
    : T_NAME                        { $$ = named(ps, I_PARAMDEF, $1, NULL, @1); }
    | T_NAME '=' expr               { $$ = named(ps, I_PARAMDEF, $1, $3, @1); }
    ;
opt_names : %empty { $$ = astlist_new(); } | names opt_comma { $$ = $1; } ;
names
    : T_NAME                        { Ast *n = node(ps, E_NAME, @1); n->name = $1; $$ = astlist_push(NULL, n); }
    | names ',' T_NAME              { Ast *n = node(ps, E_NAME, @3); n->name = $3; $$ = astlist_push($1, n); }
    ;
opt_comma : %empty | ',' ;

/* recipe body -> { (key = expr | key { ... })* } */
recipe_body
    : '{' rentries '}'              { $$ = node(ps, I_GROUP, @$); $$->list = take(ps, $2); }
    | '{' rentries rentry '}'       { $$ = node(ps, I_GROUP, @$); $$->list = take(ps, astlist_push($2, $3)); }
    ;
rentries
    : %empty                        { $$ = astlist_new(); }
    | rentries sep                  { $$ = $1; }
    | rentries rentry sep           { $$ = astlist_push($1, $2); }
    | rentries error sep            { $$ = $1; }
    ;
rentry
    : rkey '=' expr                 { $$ = named(ps, I_ENTRY, $1, $3, @1); }
    | rkey recipe_body              { $$ = $2; $$->name = $1; $$->loc = @1; }
    ;
rkey
    : T_NAME | T_INPUT { $$ = "input"; } | T_OUTPUT { $$ = "output"; } | T_LOSS { $$ = "loss"; }
    | T_TAP { $$ = "tap"; } | T_MODEL { $$ = "model"; } | T_PARAM { $$ = "param"; } | T_NAMED { $$ = "named"; }
    ;

/* block -> { stmt* } ; statements are separated by newlines or ';' */
block
    : '{' stmts '}'                 { $$ = node(ps, S_BLOCK, @$); $$->list = take(ps, $2); }
    | '{' stmts stmt '}'            { $$ = node(ps, S_BLOCK, @$); $$->list = take(ps, astlist_push($2, $3)); }
    ;
stmts
    : %empty                        { $$ = astlist_new(); }
    | stmts sep                     { $$ = $1; }
    | stmts stmt sep                { $$ = astlist_push($1, $2); }
    | stmts error sep               { $$ = $1; }
    ;

stmt
    : T_LET T_NAME '=' expr         { $$ = named(ps, S_LET, $2, $4, @2); }
    | T_NAME '=' expr               { $$ = named(ps, S_ASSIGN, $1, $3, @1); }
    | T_PARAM T_NAME '[' opt_exprs ']' opt_dtype '=' expr tags opt_named {
                                      $$ = named(ps, S_PARAM, $2, $8, @2); $$->list = take(ps, $4);
                                      $$->name2 = $6; $$->list2 = take(ps, $9); $$->b = $10; }
    | T_SUB T_NAME '=' expr tags    { $$ = named(ps, S_SUB, $2, $4, @2); $$->list2 = take(ps, $5); }
    | T_SUB T_NAME '[' expr ']' '=' expr tags {
                                      $$ = named(ps, S_SUB, $2, $7, @2); $$->b = $4; $$->list2 = take(ps, $8);
                                      $$->loc = loc_span(@2, @5); }
    | T_INPUT T_NAME '[' opt_exprs ']' opt_dtype {
                                      $$ = node(ps, S_INPUT, @2); $$->name = $2; $$->list = take(ps, $4); $$->name2 = $6; }
    | T_TAP T_NAME '=' expr         { $$ = named(ps, S_TAP, $2, $4, @2); }
    | T_OUTPUT T_NAME '=' expr      { $$ = named(ps, S_OUTPUT, $2, $4, @2); }
    | T_LOSS expr                   { $$ = node(ps, S_LOSS, @1); $$->a = $2; }
    | T_RETURN expr                 { $$ = node(ps, S_RETURN, @1); $$->a = $2; }
    | T_ASSERT expr                 { $$ = node(ps, S_ASSERT, @2); $$->a = $2; }
    | T_ASSERT expr ',' expr        { $$ = node(ps, S_ASSERT, @2); $$->a = $2; $$->b = $4; }
    | T_FOR T_NAME T_IN expr block  { $$ = named(ps, S_FOR, $2, $4, @2); $$->b = $5; }
    | if_stmt
    ;

if_stmt
    : T_IF expr block               { $$ = node(ps, S_IF, @2); $$->a = $2; $$->b = $3; }
    | T_IF expr block T_ELSE block  { $$ = node(ps, S_IF, @2); $$->a = $2; $$->b = $3; $$->c = $5; }
    | T_IF expr block T_ELSE if_stmt { $$ = node(ps, S_IF, @2); $$->a = $2; $$->b = $3; $$->c = $5; }
    ;

opt_dtype : %empty { $$ = NULL; } | ':' T_NAME { $$ = $2; } ;
opt_named : %empty { $$ = NULL; } | T_NAMED expr { $$ = $2; } ;
tags
    : %empty                        { $$ = astlist_new(); }
    | tags tag                      { $$ = astlist_push($1, $2); }
    ;
tag
    : T_NAME                        { $$ = node(ps, S_TAG, @1); $$->name = $1; }
    | T_NAME '(' opt_args ')'       { $$ = node(ps, S_TAG, @$); $$->name = $1; $$->list = take(ps, $3); }
    ;

/* expr -> bexpr | bexpr if bexpr else expr   (conditional expression, lowest precedence) */
expr
    : bexpr
    | bexpr T_IF bexpr T_ELSE expr  { $$ = node(ps, E_COND, @$); $$->a = $1; $$->b = $3; $$->c = $5; }
    ;

bexpr
    : postfix
    | bexpr T_OR bexpr              { $$ = binary(ps, OPR_OR, $1, $3, @$); }
    | bexpr T_AND bexpr             { $$ = binary(ps, OPR_AND, $1, $3, @$); }
    | T_NOT bexpr                   { $$ = unary(ps, OPR_NOT, $2, @$); }
    | bexpr T_EQ bexpr              { $$ = binary(ps, OPR_EQ, $1, $3, @$); }
    | bexpr T_NE bexpr              { $$ = binary(ps, OPR_NE, $1, $3, @$); }
    | bexpr '<' bexpr               { $$ = binary(ps, OPR_LT, $1, $3, @$); }
    | bexpr T_LE bexpr              { $$ = binary(ps, OPR_LE, $1, $3, @$); }
    | bexpr '>' bexpr               { $$ = binary(ps, OPR_GT, $1, $3, @$); }
    | bexpr T_GE bexpr              { $$ = binary(ps, OPR_GE, $1, $3, @$); }
    | bexpr T_DOTDOT bexpr          { $$ = binary(ps, OPR_RANGE, $1, $3, @$); }
    | bexpr '+' bexpr               { $$ = binary(ps, OPR_ADD, $1, $3, @$); }
    | bexpr '-' bexpr               { $$ = binary(ps, OPR_SUB, $1, $3, @$); }
    | bexpr '*' bexpr               { $$ = binary(ps, OPR_MUL, $1, $3, @$); }
    | bexpr '/' bexpr               { $$ = binary(ps, OPR_DIV, $1, $3, @$); }
    | bexpr T_IDIV bexpr            { $$ = binary(ps, OPR_IDIV, $1, $3, @$); }
    | bexpr '%' bexpr               { $$ = binary(ps, OPR_MOD, $1, $3, @$); }
    | bexpr '@' bexpr               { $$ = binary(ps, OPR_MATMUL, $1, $3, @$); }
    | bexpr T_POW bexpr             { $$ = binary(ps, OPR_POW, $1, $3, @$); }
    | '-' bexpr %prec UMINUS        { $$ = unary(ps, OPR_NEG, $2, @$); }
    | '+' bexpr %prec UMINUS        { $$ = unary(ps, OPR_PLUS, $2, @$); }
    ;

postfix
    : primary
    | postfix '(' opt_args ')'      { $$ = node(ps, E_CALL, @$); $$->a = $1; $$->list = take(ps, $3); }
    | postfix '[' expr ']'          { $$ = node(ps, E_INDEX, @$); $$->a = $1; $$->b = $3; }
    ;

primary
    : T_NAME                        { $$ = node(ps, E_NAME, @$); $$->name = $1; }
    | T_INT                         { $$ = node(ps, E_INT, @$); $$->ival = $1; }
    | T_FLOAT                       { $$ = node(ps, E_FLOAT, @$); $$->fval = $1; }
    | T_STRING                      { $$ = node(ps, E_STR, @$); $$->name = $1; }
    | T_TRUE                        { $$ = node(ps, E_BOOL, @$); $$->ival = 1; }
    | T_FALSE                       { $$ = node(ps, E_BOOL, @$); $$->ival = 0; }
    | '(' expr ')'                  { $$ = $2; }
    | '[' opt_exprs ']'             { $$ = node(ps, E_LIST, @$); $$->list = take(ps, $2); }
    | '[' expr T_FOR T_NAME T_IN bexpr ']' {
                                      $$ = node(ps, E_COMP, @$); $$->a = $2; $$->name = $4; $$->b = $6; }
    | '[' expr T_FOR T_NAME T_IN bexpr T_IF bexpr ']' {
                                      $$ = node(ps, E_COMP, @$); $$->a = $2; $$->name = $4; $$->b = $6; $$->c = $8; }
    ;

opt_exprs : %empty { $$ = astlist_new(); } | exprs opt_comma { $$ = $1; } ;
exprs
    : expr                          { $$ = astlist_push(NULL, $1); }
    | exprs ',' expr                { $$ = astlist_push($1, $3); }
    ;
opt_args : %empty { $$ = astlist_new(); } | args opt_comma { $$ = $1; } ;
args
    : arg                           { $$ = astlist_push(NULL, $1); }
    | args ',' arg                  { $$ = astlist_push($1, $3); }
    ;
arg
    : expr
    | T_NAME '=' expr               { $$ = named(ps, E_KWARG, $1, $3, @1); }
    ;

%%

int dsl_scan(Tok *tok, Loc *loc, void *scanner);
int dsl_yylex_init_extra(ParseState *extra, void **scanner);
int dsl_yylex_destroy(void *scanner);
void *dsl_yy_scan_bytes(const char *bytes, int len, void *scanner);

static void dsl_yyerror(Loc *loc, ParseState *ps, const char *msg) {
    if (!strcmp(msg, "memory exhausted")) msg = "nesting is too deep";
    diag_error(ps->diag, *loc, "%s", msg);
}

/* Keywords that only begin an item or a statement: met inside brackets, the brackets were left open. */
static bool starts_statement(int t) {
    return t == T_IMPORT || t == T_CONST || t == T_FN || t == T_LAYER || t == T_MODEL || t == T_RECIPE || t == T_LET ||
           t == T_PARAM || t == T_SUB || t == T_INPUT || t == T_TAP || t == T_OUTPUT || t == T_LOSS || t == T_RETURN ||
           t == T_ASSERT;
}

/* Scanner token -> parser token: reports invalid characters (and skips them), tracks bracket depth. */
static int raw_token(ParseState *ps, Tok *v, Loc *l) {
    for (;;) {
        memset(v, 0, sizeof *v);
        int t = dsl_scan(v, l, ps->scanner);
        if (t == 0) *l = (Loc){ps->src, ps->src->len, ps->src->len};   /* end of input sets no location */
        if (t == T_INVALID) {
            unsigned char c = (unsigned char)ps->src->text[l->start];
            if (c >= 0x80) diag_error(ps->diag, *l, "invalid character: non-ASCII byte 0x%02x (only ASCII is allowed outside strings and comments)", c);
            else if (c >= 32 && c < 127) diag_error(ps->diag, *l, "invalid character '%c'", c);
            else diag_error(ps->diag, *l, "invalid character 0x%02x", c);
            if (diag_full(ps->diag)) return 0;
            continue;
        }
        if (ps->depth > 0 && starts_statement(t)) { ps->depth = 0; ps->resync = true; }
        if (t == '(' || t == '[') ps->depth++;
        else if ((t == ')' || t == ']') && ps->depth > 0) ps->depth--;
        else if (t == '{' || t == '}') ps->depth = 0;    /* braces never sit inside brackets: resynchronise */
        return t;
    }
}

/* A newline ends a statement when the line's last token can end one. */
static bool ends_statement(int t) {
    return t == T_NAME || t == T_INT || t == T_FLOAT || t == T_STRING || t == T_TRUE || t == T_FALSE || t == ')' ||
           t == ']' || t == '}';
}

static void enqueue(ParseState *ps, int t, const Tok *v, Loc l) {
    ASSERT(ps->qn < (int)COUNTOF(ps->queue), "token queue");
    struct Queued *q = &ps->queue[(ps->qhead + ps->qn++) % (int)COUNTOF(ps->queue)];
    q->t = t; q->v = *v; q->l = l;
}

/* Keywords that only begin a top-level item: met inside '{', that block was left open. */
static bool starts_item(int t) {
    return t == T_CONST || t == T_FN || t == T_LAYER || t == T_RECIPE || t == T_IMPORT || t == 0;
}

/* Reads the next line-aware token(s) into the queue: a separator for a newline that ends a statement, then the
 * token after it; a newline before `else` is dropped; an unfinished line before a statement keyword is ended. */
static void fill(ParseState *ps) {
    Tok v, v2;
    Loc l, l2;
    for (;;) {
        int t = raw_token(ps, &v, &l);
        if (t == T_NL && (ps->depth > 0 || !ends_statement(ps->last))) continue;
        if (t == 0 && ends_statement(ps->last) && !ps->eof_sep) {
            ps->eof_sep = true;
            enqueue(ps, T_NL, &v, (Loc){ps->src, ps->src->len, ps->src->len});
            enqueue(ps, t, &v, l);
            return;
        }
        if (t != T_NL) {
            if (ps->resync) enqueue(ps, T_NL, &v, (Loc){ps->src, ps->last_end, ps->last_end});
            ps->resync = false;
            enqueue(ps, t, &v, l);
            return;
        }
        int t2;
        do t2 = raw_token(ps, &v2, &l2); while (t2 == T_NL);
        ps->resync = false;                 /* this newline already ends the line */
        if (t2 != T_ELSE) enqueue(ps, T_NL, &v, l);
        enqueue(ps, t2, &v2, l2);
        return;
    }
}

/* An item keyword (or the end of input) inside '{': report the unclosed brace and close the blocks, so the
 * rest of the file is parsed normally. */
static void close_blocks(ParseState *ps) {
    struct Queued *last = &ps->queue[(ps->qhead + ps->qn - 1) % (int)COUNTOF(ps->queue)];
    if (ps->nopen == 0 || ps->nopen > DSL_MAX_OPEN || !starts_item(last->t)) return;
    struct Queued item = *last;
    ps->qn--;
    int line, col;
    source_linecol(ps->src, item.l.start, &line, &col);
    if (item.t == 0) diag_error(ps->diag, ps->open[ps->nopen - 1], "this '{' is not closed before the end of the file");
    else diag_error(ps->diag, ps->open[ps->nopen - 1], "this '{' is not closed before '%.*s' on line %d",
                    (int)(item.l.end - item.l.start), ps->src->text + item.l.start, line);
    Loc at = {ps->src, item.l.start, item.l.start};
    for (int k = ps->nopen; k > 0; k--) {
        enqueue(ps, T_NL, &item.v, at);
        enqueue(ps, '}', &item.v, at);
    }
    enqueue(ps, T_NL, &item.v, at);
    enqueue(ps, item.t, &item.v, item.l);
}

static int deliver(ParseState *ps, DSL_YYSTYPE *val, Loc *loc) {
    struct Queued q = ps->queue[ps->qhead];
    ps->qhead = (ps->qhead + 1) % (int)COUNTOF(ps->queue);
    ps->qn--;
    *loc = q.l;
    switch (q.t) {
    case T_NAME: case T_STRING: val->str = q.v.s; break;
    case T_INT: val->i = q.v.i; break;
    case T_FLOAT: val->f = q.v.f; break;
    default: break;
    }
    if (q.t == '{') {
        if (ps->nopen < DSL_MAX_OPEN) ps->open[ps->nopen] = q.l;
        ps->nopen++;
    } else if (q.t == '}' && ps->nopen > 0) {
        ps->nopen--;
    }
    ps->last = q.t;
    ps->last_end = q.l.end;
    return q.t;
}

int dsl_yylex(DSL_YYSTYPE *val, Loc *loc, ParseState *ps) {
    if (ps->start_token) {
        int t = ps->start_token;
        ps->start_token = 0;
        *loc = (Loc){ps->src, 0, 0};
        return t;
    }
    if (diag_full(ps->diag)) return 0;
    if (ps->qn == 0) {
        fill(ps);
        close_blocks(ps);
    }
    return deliver(ps, val, loc);
}

static Ast *run(const SourceFile *src, Arena *ar, Diag *d, int start) {
    ParseState ps;
    memset(&ps, 0, sizeof ps);
    ps.arena = ar; ps.diag = d; ps.src = src; ps.start_token = start;
    dsl_yylex_init_extra(&ps, &ps.scanner);
    dsl_yy_scan_bytes(src->text, (int)src->len, ps.scanner);
    int errors = d->errors;
    int rc = dsl_yyparse(&ps);
    dsl_yylex_destroy(ps.scanner);
    if (rc != 0 && d->errors == errors) diag_error(d, (Loc){src, src->len, src->len}, "cannot parse this file");
    if (!ps.root && start == 0) ps.root = ast_new(ar, S_BLOCK, (Loc){src, 0, 0});
    return ps.root;
}

Ast *dsl_parse_file(const SourceFile *src, Arena *ar, Diag *d) { return run(src, ar, d, 0); }

Ast *dsl_parse_expr(const SourceFile *src, Arena *ar, Diag *d) {
    int errors = d->errors;
    Ast *x = run(src, ar, d, T_START_EXPR);
    return d->errors == errors ? x : NULL;
}
