/* cli.c — see cli.h. */
#include "cli.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static bool parse(const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    const long long n = strtoll(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno || n < lo || n > hi) return false;   /* strtoll skips spaces */
    *v = n;
    return true;
}

bool cli_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *v) {
    if (parse(s, lo, hi, v)) return true;
    fprintf(stderr, "%s: %s expects an integer from %lld to %lld, found '%s'\n", cmd, flag, lo, hi, s);
    return false;
}

long long cli_env_int(const char *name, long long lo, long long hi, long long def) {
    const char *s = getenv(name);
    long long v;
    if (!s || parse(s, lo, hi, &v)) return s ? v : def;
    fprintf(stderr, "vmc: %s=%s ignored: expects an integer from %lld to %lld (using %lld)\n", name, s, lo, hi, def);
    return def;
}
