/* emu_test.h — what the emulator tests share: their EMU_DIR argument as an absolute path (their kernels are compiled
 * in a temporary folder, where a relative path would no longer name tests/emu: the compiler then cannot find
 * cuda_emu.h), the part of a test asked for, and their ending. */
#pragma once
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The absolute path of DIR in a static buffer, or NULL after saying why it is not a folder that can be read. */
static inline const char *emu_dir_absolute(const char *dir) {
    static char path[PATH_MAX];
    if (!realpath(dir, path)) {
        fprintf(stderr, "EMU_DIR %s: %s (give the emulator's folder, tests/emu)\n", dir, strerror(errno));
        return NULL;
    }
    return path;
}

/* A test's parts: ctest runs each as its own test, side by side. */
typedef struct EmuPart { const char *name; void (*run)(void); } EmuPart;

/* Marks in want[] the parts PART names (a part's name, or "all"); false after listing the names when it names none. */
static inline bool emu_parts_wanted(const char *test, const char *part, const EmuPart *parts, int n, bool *want) {
    bool any = false;
    for (int i = 0; i < n; i++) any |= want[i] = !strcmp(part, "all") || !strcmp(part, parts[i].name);
    if (!any) {
        fprintf(stderr, "%s: unknown part '%s' (", test, part);
        for (int i = 0; i < n; i++) fprintf(stderr, "%s, ", parts[i].name);
        fprintf(stderr, "or all)\n");
    }
    return any;
}

/* Removes the test's temporary folder and says how it went: the test's exit status. */
static inline int emu_test_end(const char *tmp, int failures) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
    printf("ok\n");
    return 0;
}
