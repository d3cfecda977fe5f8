/* cli.c — see cli.h. */
#include "cli.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

bool cli_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    const long long n = strtoll(s, &end, 10);
    if (*s && !*end && !errno && n >= lo && n <= hi) {
        *v = n;
        return true;
    }
    fprintf(stderr, "%s: %s expects an integer from %lld to %lld, found '%s'\n", cmd, flag, lo, hi, s);
    return false;
}
