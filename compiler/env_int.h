/* env_int.h — integers read strictly (strtoll alone would take "12x" as 12 and " 5" as 5): command-line values
 * (runtime/cli.c) and tuning variables from the environment, read the same way by the runtime and the code
 * generator. */
#pragma once
#include <stdbool.h>

/* s as an integer in [lo, hi] into *v; false (v untouched) when empty, malformed or out of range. */
bool int_in_range(const char *s, long long lo, long long hi, long long *v);
/* Environment variable `name` as an integer in [lo, hi]; def when unset, and when malformed or out of range after
 * saying so ("vmc: NAME=VALUE ignored: ... (using DEF)", once per process for each NAME=VALUE, though every kernel
 * instance or executor reads it). Thread-safe (the code generator runs on several threads). */
long long env_int(const char *name, long long lo, long long hi, long long def);
