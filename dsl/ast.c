/* ast.c — AST node construction, list ownership transfer, and the S-expression dump used by golden tests. */
#include "ast.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

AstList *astlist_new(void) { return xcalloc(1, sizeof(AstList)); }

AstList *astlist_push(AstList *l, Ast *x) {
    if (!l) l = astlist_new();
    if (!x) return l;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->items = xrealloc(l->items, sizeof(Ast *) * (size_t)l->cap);
    }
    l->items[l->n++] = x;
    return l;
}

void astlist_free(AstList *l) {
    if (!l) return;
    free(l->items);
    free(l);
}

Ast *ast_new(Arena *ar, AstKind k, Loc loc) {
    Ast *x = arena_alloc(ar, sizeof *x);
    x->kind = k;
    x->loc = loc;
    return x;
}

AstList ast_take_list(Arena *ar, AstList *l) {
    AstList out = {0};
    if (!l) return out;
    out.n = out.cap = l->n;
    if (l->n) out.items = arena_memdup(ar, l->items, sizeof(Ast *) * (size_t)l->n);
    astlist_free(l);
    return out;
}

const char *ast_kind_name(AstKind k) {
    static const char *const names[] = {
        "int", "float", "str", "bool", "name", "list", "comp", "binary", "unary", "cond", "call", "index", "kwarg",
        "let", "assign", "param", "sub", "input", "tap", "output", "loss", "return", "assert", "for", "if", "block",
        "tag", "import", "const", "fn", "layer", "model", "model_alias", "recipe", "entry", "group", "paramdef"};
    _Static_assert(COUNTOF(names) == AST_KIND_COUNT_, "ast kind names");
    return names[k];
}

const char *ast_op_text(AstOp op) {
    static const char *const t[] = {"+", "-", "*", "/", "//", "%", "**", "@", "..", "==", "!=", "<", "<=", ">",
                                    ">=", "and", "or", "-", "+", "not"};
    return t[op];
}

/* ------------------------------------------------------------------ dump */
static void dump(const Ast *x, FILE *out, int depth);

static void dump_list(const AstList *l, FILE *out, int depth) {
    fputc('[', out);
    for (int k = 0; k < l->n; k++) {
        if (k) fputc(' ', out);
        dump(l->items[k], out, depth);
    }
    fputc(']', out);
}

static void dump_str(const char *s, FILE *out) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(out, "\\%c", *s);
        else if (*s == '\n') fputs("\\n", out);
        else if ((unsigned char)*s < 32) fprintf(out, "\\x%02x", (unsigned char)*s);
        else fputc(*s, out);
    }
    fputc('"', out);
}

/* Shortest text that reads back as the same double. */
static void dump_float(double v, FILE *out) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn")) fputs(".0", out);    /* keep floats distinguishable from ints */
}

static void dump_opt(const char *label, const Ast *x, FILE *out, int depth) {
    if (!x) return;
    fprintf(out, " %s=", label);
    dump(x, out, depth);
}

static void dump(const Ast *x, FILE *out, int depth) {
    if (!x) { fputs("nil", out); return; }
    if (depth > 200) { fputs("...", out); return; }   /* the parser caps nesting; this is a second guard */
    /* leaves print bare */
    if (x->kind == E_INT) { fprintf(out, "%lld", (long long)x->ival); return; }
    if (x->kind == E_FLOAT) { dump_float(x->fval, out); return; }
    if (x->kind == E_STR) { dump_str(x->name, out); return; }
    if (x->kind == E_BOOL) { fputs(x->ival ? "true" : "false", out); return; }
    if (x->kind == E_NAME) { fputs(x->name, out); return; }
    fprintf(out, "(%s", ast_kind_name(x->kind));
    if (x->kind == E_BINARY || x->kind == E_UNARY) fprintf(out, " %s", ast_op_text((AstOp)x->op));
    if (x->name) { fputc(' ', out); if (x->kind == I_IMPORT) dump_str(x->name, out); else fputs(x->name, out); }
    if (x->name2) fprintf(out, " :%s", x->name2);
    if (x->kind == S_PARAM || x->kind == S_INPUT || x->kind == I_FN || x->kind == I_LAYER || x->kind == I_MODEL ||
        x->kind == E_LIST || x->kind == E_CALL || x->kind == S_TAG || x->kind == S_BLOCK || x->kind == I_RECIPE ||
        x->kind == I_GROUP || x->list.n) {
        fputc(' ', out);
        dump_list(&x->list, out, depth + 1);
    }
    if (x->kind == I_LAYER || x->list2.n) { fputc(' ', out); dump_list(&x->list2, out, depth + 1); }
    dump_opt("a", x->a, out, depth + 1);
    dump_opt("b", x->b, out, depth + 1);
    dump_opt("c", x->c, out, depth + 1);
    fputc(')', out);
}

void ast_dump(const Ast *root, FILE *out) {
    if (!root) return;
    for (int k = 0; k < root->list.n; k++) {
        dump(root->list.items[k], out, 0);
        fputc('\n', out);
    }
}
