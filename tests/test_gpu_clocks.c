/* test_gpu_clocks.c — runtime/gpu_clocks.c without a GPU: the description of clock samples (ranges, mean, power,
 * every named reason and unknown bits), and that a GPU NVML cannot open is refused with a reason, not a crash. */
#include "gpu_clocks.h"
#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

int main(void) {
    char buf[512], why[256] = "";
    ClockSamples none = {0};
    gpu_clocks_describe(&none, buf, sizeof buf);
    CHECK(strstr(buf, "no clock samples"), "no samples: '%s'", buf);

    ClockSamples s = {.n = 4, .min_mhz = 1695, .max_mhz = 1860, .sum_mhz = 1695 + 1740 + 1800 + 1860,
                      .max_mw = 699120, .limit_mw = 700000, .reasons = 0x4 | 0x40 | 0x1000};
    gpu_clocks_describe(&s, buf, sizeof buf);
    printf("%s\n", buf);
    CHECK(strstr(buf, "SM clock 1695-1860 MHz (mean 1774 over 4 samples)"), "range and mean: '%s'", buf);
    CHECK(strstr(buf, "power up to 699 of 700 W"), "power: '%s'", buf);
    CHECK(strstr(buf, "held down by: power cap, thermal (hardware), other (0x1000)"), "reasons: '%s'", buf);
    s.reasons = 0;
    s.limit_mw = 0;   /* the limit query failed */
    gpu_clocks_describe(&s, buf, sizeof buf);
    CHECK(!strstr(buf, "held down"), "no reason, none named: '%s'", buf);
    CHECK(strstr(buf, "power up to 699 W") && !strstr(buf, " of "), "no limit, none given: '%s'", buf);
    char brief[64];
    gpu_clocks_brief(&none, brief, sizeof brief);
    CHECK(brief[0] == 0, "no samples, no brief: '%s'", brief);
    ClockSamples b = {.n = 1, .last_mhz = 1712, .last_reasons = 0x1 | 0x4};
    gpu_clocks_brief(&b, brief, sizeof brief);
    CHECK(!strcmp(brief, "1712 MHz power cap"), "brief: '%s'", brief);
    b.last_reasons = 0x1;
    gpu_clocks_brief(&b, brief, sizeof brief);
    CHECK(!strcmp(brief, "1712 MHz"), "idle is not a limit: '%s'", brief);
    char tiny[16];
    s.reasons = 0x1ff;
    gpu_clocks_describe(&s, tiny, sizeof tiny);   /* truncated, terminated, no overrun (ASan) */
    CHECK(strlen(tiny) == sizeof tiny - 1, "truncated to the buffer: '%s'", tiny);

    /* no such GPU (and on a machine without a driver, no NVML): refused with a reason; samples stay empty */
    CHECK(!gpu_clocks_open("ffff:ff:1f.7", why, sizeof why), "a bus id no GPU has was opened");
    CHECK(why[0], "refusal without a reason");
    printf("gpu_clocks_open refused: %s\n", why);
    ClockSamples t = {0};
    gpu_clocks_sample(&t);
    CHECK(t.n == 0, "a sample without an opened GPU");
    printf(failures ? "test_gpu_clocks: %d FAILED\n" : "test_gpu_clocks: ok\n", failures);
    return failures != 0;
}
