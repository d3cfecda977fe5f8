/* env_int.c — see env_int.h. */
#include "env_int.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool int_in_range(const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    const long long n = strtoll(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno || n < lo || n > hi) return false;   /* strtoll skips spaces */
    *v = n;
    return true;
}

/* Has "name=value" been reported before? */
static bool reported_before(const char *name, const char *value) {
    enum { SEEN = 16 };
    static char seen[SEEN][160];
    static int nseen;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    char key[160];
    snprintf(key, sizeof key, "%s=%s", name, value);
    pthread_mutex_lock(&mu);
    bool seen_before = false;
    for (int k = 0; k < nseen && !seen_before; k++) seen_before = !strcmp(seen[k], key);
    if (!seen_before && nseen < SEEN) memcpy(seen[nseen++], key, sizeof key);
    pthread_mutex_unlock(&mu);
    return seen_before;
}

long long env_int(const char *name, long long lo, long long hi, long long def) {
    const char *s = getenv(name);
    long long v;
    if (!s || int_in_range(s, lo, hi, &v)) return s ? v : def;
    if (!reported_before(name, s))
        fprintf(stderr, "vmc: %s=%s ignored: expects an integer from %lld to %lld (using %lld)\n", name, s, lo, hi, def);
    return def;
}
