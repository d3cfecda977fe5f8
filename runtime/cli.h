/* cli.h — command-line values and tuning variables checked the same way in every sub-command. */
#pragma once
#include <stdbool.h>

/* s as an integer in [lo, hi]; else prints "CMD: FLAG expects an integer from LO to HI, found 'S'" and returns
 * false. (atoi would take "12x" as 12 and "abc" as 0.) */
bool cli_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *v);
/* Environment variable `name` as an integer in [lo, hi]; def when unset, and when malformed or out of range after
 * saying so ("vmc: NAME=VALUE ignored: ... (using DEF)", once per process for each NAME=VALUE). */
long long cli_env_int(const char *name, long long lo, long long hi, long long def);
