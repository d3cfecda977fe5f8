/* cli.c — see cli.h. */
#include "cli.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Has "name=value" been reported before? (A command may build several executors, each reading the variable.) */
static bool reported_before(const char *name, const char *value) {
    enum { SEEN = 16 };
    static char seen[SEEN][160];
    static int nseen;
    char key[160];
    snprintf(key, sizeof key, "%s=%s", name, value);
    for (int k = 0; k < nseen; k++) if (!strcmp(seen[k], key)) return true;
    if (nseen < SEEN) memcpy(seen[nseen++], key, sizeof key);
    return false;
}

long long cli_env_int(const char *name, long long lo, long long hi, long long def) {
    const char *s = getenv(name);
    long long v;
    if (!s || parse(s, lo, hi, &v)) return s ? v : def;
    if (!reported_before(name, s))
        fprintf(stderr, "vmc: %s=%s ignored: expects an integer from %lld to %lld (using %lld)\n", name, s, lo, hi, def);
    return def;
}
