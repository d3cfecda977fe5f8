/* arena.c — bump allocator: a linked list of blocks, each at least block_size bytes. */
#include "arena.h"
#include "util.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Block { struct Block *next; size_t used, size; _Alignas(16) unsigned char data[]; } Block;
struct Arena { Block *head; size_t block_size; };

Arena *arena_new(size_t block_size) {
    Arena *a = xcalloc(1, sizeof *a);
    a->block_size = block_size ? block_size : (1 << 16);
    return a;
}

void arena_free(Arena *a) {
    if (!a) return;
    for (Block *b = a->head, *n; b; b = n) { n = b->next; free(b); }
    free(a);
}

void *arena_alloc(Arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    Block *b = a->head;
    if (!b || b->used + n > b->size) {
        size_t size = n > a->block_size ? n : a->block_size;
        b = xcalloc(1, sizeof *b + size);
        b->size = size;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void *arena_memdup(Arena *a, const void *p, size_t n) {
    void *q = arena_alloc(a, n ? n : 1);
    if (n) memcpy(q, p, n);
    return q;
}

char *arena_strdup(Arena *a, const char *s) { return arena_memdup(a, s, strlen(s) + 1); }

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = arena_alloc(a, (size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}
