/* arena.h — bump allocator for compiler objects (AST, graph nodes, tables).
 * Everything allocated from an arena is freed together by arena_free(). */
#pragma once
#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_new(size_t block_size);
void   arena_free(Arena *a);
void  *arena_alloc(Arena *a, size_t n);           /* zeroed, 16-byte aligned */
char  *arena_strdup(Arena *a, const char *s);
char  *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  *arena_memdup(Arena *a, const void *p, size_t n);
