/* gpu_clocks.c — SM clock, power and clock-limit reasons through NVML, loaded with dlopen (no NVML header or
 * library at build time: the few entry points are declared here as NVML documents them). */
#include "gpu_clocks.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int NvmlReturn;                 /* nvmlReturn_t: 0 is success */
typedef struct NvmlDeviceOpaque *NvmlDevice;
enum { NVML_CLOCK_SM = 1 };

static struct {
    NvmlReturn (*init)(void);
    NvmlReturn (*shutdown)(void);
    NvmlReturn (*by_pci)(const char *, NvmlDevice *);
    NvmlReturn (*clock)(NvmlDevice, int, unsigned *);
    NvmlReturn (*reasons)(NvmlDevice, unsigned long long *);
    NvmlReturn (*power)(NvmlDevice, unsigned *);
    NvmlReturn (*limit)(NvmlDevice, unsigned *);
    NvmlDevice dev;
    bool open;
} nv;

static void *sym(void *lib, const char *a, const char *b) {   /* b: an older name of the same call */
    void *p = dlsym(lib, a);
    return p || !b ? p : dlsym(lib, b);
}

bool gpu_clocks_open(const char *pci_bus_id, char *why, size_t whylen) {
    if (nv.open) return true;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) { snprintf(why, whylen, "NVML not loaded (%s)", dlerror()); return false; }
    *(void **)&nv.init = sym(lib, "nvmlInit_v2", "nvmlInit");
    *(void **)&nv.shutdown = sym(lib, "nvmlShutdown", NULL);
    *(void **)&nv.by_pci = sym(lib, "nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetHandleByPciBusId");
    *(void **)&nv.clock = sym(lib, "nvmlDeviceGetClockInfo", NULL);
    *(void **)&nv.reasons = sym(lib, "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons");
    *(void **)&nv.power = sym(lib, "nvmlDeviceGetPowerUsage", NULL);
    *(void **)&nv.limit = sym(lib, "nvmlDeviceGetEnforcedPowerLimit", NULL);
    if (!nv.init || !nv.shutdown || !nv.by_pci || !nv.clock || !nv.reasons || !nv.power || !nv.limit) {
        snprintf(why, whylen, "NVML lacks a clock, power or reason query (driver too old?)");
        dlclose(lib);
        return false;
    }
    NvmlReturn r = nv.init();
    if (r != 0) {
        snprintf(why, whylen, "NVML did not start (error %d)", r);
        dlclose(lib);
        return false;
    }
    if ((r = nv.by_pci(pci_bus_id, &nv.dev)) != 0) {
        snprintf(why, whylen, "NVML could not open the GPU at %s (error %d)", pci_bus_id, r);
        nv.shutdown();
        dlclose(lib);
        return false;
    }
    nv.open = true;
    return true;
}

void gpu_clocks_sample(ClockSamples *s) {
    if (!nv.open) return;
    unsigned mhz = 0, mw = 0, limit = 0;
    unsigned long long why = 0;
    if (nv.clock(nv.dev, NVML_CLOCK_SM, &mhz) != 0) return;
    if (nv.power(nv.dev, &mw) != 0) mw = 0;
    if (nv.limit(nv.dev, &limit) != 0) limit = 0;
    if (nv.reasons(nv.dev, &why) != 0) why = 0;
    if (s->n == 0 || mhz < s->min_mhz) s->min_mhz = mhz;
    if (mhz > s->max_mhz) s->max_mhz = mhz;
    if (mw > s->max_mw) s->max_mw = mw;
    s->limit_mw = limit;
    s->sum_mhz += mhz;
    s->reasons |= why;
    s->last_mhz = mhz;
    s->last_reasons = why;
    s->n++;
}

/* NVML's clock-limit reason bits */
static const struct { unsigned long long bit; const char *name; } names[] = {
    {0x1, "idle"}, {0x2, "application clocks"}, {0x4, "power cap"}, {0x8, "hardware slowdown"},
    {0x10, "sync boost"}, {0x20, "thermal (software)"}, {0x40, "thermal (hardware)"},
    {0x80, "power brake"}, {0x100, "display clocks"}};

void gpu_clocks_brief(const ClockSamples *s, char *buf, size_t n) {
    if (s->n == 0) { snprintf(buf, n, "%s", ""); return; }
    const char *why = "";
    for (size_t k = 1; k < sizeof names / sizeof names[0] && !why[0]; k++)   /* (k = 0: idle, not a limit) */
        if (s->last_reasons & names[k].bit) why = names[k].name;
    snprintf(buf, n, "%u MHz%s%s", s->last_mhz, why[0] ? " " : "", why);
}

void gpu_clocks_describe(const ClockSamples *s, char *buf, size_t n) {
    if (s->n == 0) { snprintf(buf, n, "no clock samples (NVML not available)"); return; }
    char limit[32] = "";   /* (the limit query may fail alone) */
    if (s->limit_mw) snprintf(limit, sizeof limit, " of %.0f", s->limit_mw / 1000.0);
    int len = snprintf(buf, n, "SM clock %u-%u MHz (mean %.0f over %d samples), power up to %.0f%s W", s->min_mhz,
                       s->max_mhz, s->sum_mhz / s->n, s->n, s->max_mw / 1000.0, limit);
    const char *sep = ", held down by: ";
    unsigned long long known = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        known |= names[k].bit;
        if (!(s->reasons & names[k].bit) || len < 0 || (size_t)len >= n) continue;
        len += snprintf(buf + len, n - (size_t)len, "%s%s", sep, names[k].name);
        sep = ", ";
    }
    if (s->reasons & ~known && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, "%sother (0x%llx)", sep, s->reasons & ~known);
}
