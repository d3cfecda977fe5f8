/* cli.c — see cli.h. */
#include "cli.h"
#include <stdio.h>

bool cli_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *v) {
    if (int_in_range(s, lo, hi, v)) return true;
    fprintf(stderr, "%s: %s expects an integer from %lld to %lld, found '%s'\n", cmd, flag, lo, hi, s);
    return false;
}
