/* gpu_clocks.h — what the GPU's clocks did while timed work ran: SM clock, board power and the reasons the driver
 * gives for holding the clock down (an H200 under ARM-B training reaches its 700 W limit within a second and runs
 * at 1,700-1,850 MHz instead of 1,980). Read through NVML (libnvidia-ml.so.1, loaded at run time); where it is
 * missing nothing is sampled and the description says so. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct ClockSamples {
    int n;                         /* samples taken */
    unsigned min_mhz, max_mhz;     /* SM clock */
    double sum_mhz;
    unsigned max_mw, limit_mw;     /* board power (largest sample) and the enforced limit, milliwatts */
    unsigned long long reasons;    /* clock-limit reasons seen in any sample (NVML's bit mask) */
    unsigned last_mhz;             /* the latest sample's clock and reasons */
    unsigned long long last_reasons;
} ClockSamples;

/* Opens NVML for the GPU at this PCI bus id (cuDeviceGetPCIBusId's form); false (why in why) when NVML or the
 * device is not there. */
bool gpu_clocks_open(const char *pci_bus_id, char *why, size_t whylen);
/* Adds one sample of the opened GPU to s (nothing when not opened). */
void gpu_clocks_sample(ClockSamples *s);
/* A few words for a progress line: "1712 MHz power cap" (the clock of the latest sample and the first reason other
 * than idleness), "" without samples. */
void gpu_clocks_brief(const ClockSamples *s, char *buf, size_t n);
/* One line: "SM clock 1695-1860 MHz (mean 1760), power up to 699 of 700 W, held down by: power cap", or why there
 * is none. */
void gpu_clocks_describe(const ClockSamples *s, char *buf, size_t n);
