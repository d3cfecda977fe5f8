/* test_cli_values.c — runtime/cli.c and compiler/env_int.c: integers from flags and tuning variables, and what
 * malformed ones give. */
#include "cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

int main(void) {
    long long v = -7;
    CHECK(cli_int("t", "--n", "42", 1, 100, &v) && v == 42, "42 -> %lld", v);
    CHECK(cli_int("t", "--n", "0", 0, 0, &v) && v == 0, "0 in [0, 0]");
    static const char *const bad[] = {"", "abc", "12x", "1e3", " 5", "101", "0", "-1", "99999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        v = -7;
        CHECK(!cli_int("t", "--n", bad[k], 1, 100, &v) && v == -7, "'%s' accepted or changed the value", bad[k]);
    }
    unsetenv("VMC_TEST_INT");
    CHECK(env_int("VMC_TEST_INT", 1, 16, 8) == 8, "unset: the default");
    setenv("VMC_TEST_INT", "4", 1);
    CHECK(env_int("VMC_TEST_INT", 1, 16, 8) == 4, "4");
    setenv("VMC_TEST_INT", "abc", 1);
    CHECK(env_int("VMC_TEST_INT", 1, 16, 8) == 8, "abc: the default");
    setenv("VMC_TEST_INT", "17", 1);
    CHECK(env_int("VMC_TEST_INT", 1, 16, 8) == 8, "17 (out of range): the default");
    /* each malformed value is reported once per process (bench builds two executors), a new one again */
    fflush(stderr);
    FILE *log = tmpfile();
    const int saved = dup(2);
    CHECK(log && saved >= 0 && dup2(fileno(log), 2) >= 0, "stderr redirected");
    setenv("VMC_TEST_INT", "x1", 1);
    for (int k = 0; k < 3; k++) env_int("VMC_TEST_INT", 1, 16, 8);
    setenv("VMC_TEST_INT", "x2", 1);
    env_int("VMC_TEST_INT", 1, 16, 8);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    int lines = 0;
    char buf[256];
    rewind(log);
    while (fgets(buf, sizeof buf, log)) lines += strstr(buf, "VMC_TEST_INT=x") != NULL;
    fclose(log);
    CHECK(lines == 2, "x1 three times and x2 once: %d reports, expected 2", lines);
    if (failures) { fprintf(stderr, "test_cli_values: %d failure(s)\n", failures); return 1; }
    printf("test_cli_values: ok\n");
    return 0;
}
