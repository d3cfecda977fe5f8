/* recipe.c — training recipes: `extends` chains flattened into one key table (derived keys override base
 * keys), --set overrides applied, then every key evaluated lazily so that `lr = blr * batch / 256` sees the
 * final `batch`. Nested groups give dotted keys ("augment.scale"); a name inside a group looks for a sibling
 * key first, then a top-level key, then module constants. */
#include "eval.h"
#include <string.h>

typedef struct RKey {
    const char *key, *group;     /* group: "" or the dotted group path */
    const Ast *expr, *owner;     /* owner: the recipe that wrote this key last */
    Loc loc;
    int state;                   /* 0 pending, 1 evaluating, 2 done */
    Value val;
} RKey;

typedef struct RecipeCtx { RKey *keys; int n, cap; const char *group; } RecipeCtx;

static const Ast *recipe_find(const DslModule *m, const char *name) {
    for (int k = 0; k < m->nrecipes; k++) if (!strcmp(m->recipes[k]->name, name)) return m->recipes[k];
    return NULL;
}

static RKey *key_find(RecipeCtx *c, const char *key) {
    for (int k = 0; k < c->n; k++) if (!strcmp(c->keys[k].key, key)) return &c->keys[k];
    return NULL;
}

static void add_entries(Eval *ev, RecipeCtx *c, const Ast *owner, const Ast *group, const char *prefix) {
    for (int k = 0; k < group->list.n; k++) {
        const Ast *e = group->list.items[k];
        const char *key = prefix[0] ? arena_printf(ev->ar, "%s.%s", prefix, e->name) : e->name;
        if (e->kind == I_GROUP) { add_entries(ev, c, owner, e, key); continue; }
        RKey *old = key_find(c, key);
        if (old && old->owner == owner) {
            diag_error(ev->d, e->loc, "duplicate recipe key '%s'", key);
            diag_note(ev->d, old->loc, "'%s' was first set here", key);
            continue;
        }
        if (!old) {
            if (c->n == c->cap) {
                int cap = c->cap ? c->cap * 2 : 32;
                RKey *keys = arena_alloc(ev->ar, sizeof(RKey) * (size_t)cap);
                if (c->n) memcpy(keys, c->keys, sizeof(RKey) * (size_t)c->n);
                c->keys = keys; c->cap = cap;
            }
            old = &c->keys[c->n++];
            old->key = key;
            old->group = prefix;
        }
        old->expr = e->a; old->owner = owner; old->loc = e->loc;
    }
}

static bool flatten(Eval *ev, RecipeCtx *c, const Ast *r, int depth) {
    if (r->name2) {
        const Ast *base = recipe_find(ev->m, r->name2);
        if (!base) { diag_error(ev->d, r->loc, "recipe '%s' extends unknown recipe '%s'", r->name, r->name2); return false; }
        if (depth > 32) { diag_error(ev->d, r->loc, "recipe '%s': 'extends' forms a cycle", r->name); return false; }
        if (!flatten(ev, c, base, depth + 1)) return false;
    }
    add_entries(ev, c, r, r, "");
    return true;
}

static Value *key_value(Eval *ev, RKey *k) {
    if (k->state == 2) return &k->val;
    if (k->state == 1) {
        diag_error(ev->d, k->loc, "recipe key '%s' depends on itself", k->key);
        k->val = v_err();
        return &k->val;
    }
    k->state = 1;
    RecipeCtx *c = ev->recipe;
    const char *saved = c->group;
    c->group = k->group;
    k->val = eval_expr(ev, k->expr);
    c->group = saved;
    k->state = 2;
    return &k->val;
}

Value *recipe_lookup(Eval *ev, const char *name, Loc loc) {
    RecipeCtx *c = ev->recipe;
    RKey *k = NULL;
    if (c->group[0]) k = key_find(c, arena_printf(ev->ar, "%s.%s", c->group, name));
    if (!k) k = key_find(c, name);
    return k ? key_value(ev, k) : NULL;
}

static bool group_has(const Ast *group, const char *prefix, const char *key) {
    for (int k = 0; k < group->list.n; k++) {
        const Ast *e = group->list.items[k];
        size_t n = strlen(prefix);
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s%s", prefix, n ? "." : "", e->name);
        if (e->kind == I_GROUP ? group_has(e, buf, key) : !strcmp(buf, key)) return true;
    }
    return false;
}

bool recipe_key_exists(DslModule *m, const char *key) {
    for (int k = 0; k < m->nrecipes; k++) if (group_has(m->recipes[k], "", key)) return true;
    return false;
}

static bool to_entry(Eval *ev, const RKey *k, RecipeEntry *out) {
    Arena *ar = ev->m->arena;
    const Value *v = &k->val;
    *out = (RecipeEntry){.key = arena_strdup(ar, k->key), .loc = k->loc};
    switch (v->k) {
    case V_INT: out->kind = RV_NUM; out->num = (double)v->i; return true;
    case V_FLOAT: out->kind = RV_NUM; out->num = v->f; return true;
    case V_BOOL: out->kind = RV_BOOL; out->num = v->b; return true;
    case V_STR: out->kind = RV_STR; out->str = arena_strdup(ar, v->s); return true;
    case V_LIST: {
        double *xs = arena_alloc(ar, sizeof(double) * (size_t)(v->l->n ? v->l->n : 1));
        for (int j = 0; j < v->l->n; j++)
            if (!v_number(&v->l->items[j], &xs[j])) {
                diag_error(ev->d, k->loc, "recipe key '%s': a list holds numbers only, element %d is %s", k->key, j,
                           v_type(&v->l->items[j]));
                return false;
            }
        out->kind = RV_LIST; out->list = xs; out->nlist = v->l->n;
        return true;
    }
    case V_ERR: return false;
    case V_NONE: case V_TENSOR: case V_LAYERDEF: case V_LAYER: case V_FN: case V_BUILTIN: case V_DTYPE: case V_SUB:
    case V_FAMILY: break;
    }
    diag_error(ev->d, k->loc, "recipe key '%s' must be a number, a bool, a string or a list of numbers, found %s",
               k->key, v_type(v));
    return false;
}

Recipe *dsl_build_recipe(DslModule *m, const char *name, Diag *d) {
    const Ast *r = recipe_find(m, name);
    if (!r) { diag_error(d, LOC_NONE, "no recipe named '%s' in this file or its imports", name); return NULL; }
    int errors = d->errors;
    Eval ev;
    eval_init(&ev, m, d, NULL);
    RecipeCtx c = {.group = ""};
    ev.recipe = &c;
    Recipe *out = NULL;
    if (flatten(&ev, &c, r, 0)) {
        for (int k = 0; k < m->nsets; k++) {
            RKey *key = key_find(&c, m->sets[k].name);
            if (key) { key->expr = m->sets[k].expr; m->sets[k].used = true; }
        }
        out = arena_alloc(m->arena, sizeof *out);
        out->name = r->name;
        out->entries = arena_alloc(m->arena, sizeof(RecipeEntry) * (size_t)(c.n ? c.n : 1));
        for (int k = 0; k < c.n && !diag_full(d); k++) {
            key_value(&ev, &c.keys[k]);
            if (to_entry(&ev, &c.keys[k], &out->entries[out->n])) out->n++;
        }
    }
    eval_done(&ev);
    return d->errors == errors ? out : NULL;
}

const RecipeEntry *recipe_get(const Recipe *r, const char *key) {
    for (int k = 0; k < r->n; k++) if (!strcmp(r->entries[k].key, key)) return &r->entries[k];
    return NULL;
}
