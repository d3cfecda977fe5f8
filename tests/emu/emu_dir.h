/* emu_dir.h — the emulator tests' EMU_DIR argument as an absolute path: their kernels are compiled in a temporary
 * folder, where a relative path would no longer name tests/emu (the compiler then cannot find cuda_emu.h). */
#pragma once
#include <errno.h>
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
