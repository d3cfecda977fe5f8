/* cli.h — command-line values and tuning variables checked the same way in every sub-command. */
#pragma once
#include "env_int.h"   /* env_int: tuning variables, checked the same way */
#include <stdbool.h>

/* s as an integer in [lo, hi]; else prints "CMD: FLAG expects an integer from LO to HI, found 'S'" and returns
 * false. (atoi would take "12x" as 12 and "abc" as 0.) */
bool cli_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi, long long *v);
