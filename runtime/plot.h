/* plot.h — training curves as PNG files drawn with cairo: DIR/loss.png, DIR/lr.png and (when the run has test
 * evaluations) DIR/accuracy.png, read back from DIR/metrics.jsonl so that a resumed run plots the whole history. */
#pragma once
#include <stdbool.h>

/* Redraws the plots of the run directory dir; false with a message in err (a missing metrics.jsonl is an error). */
bool plot_run(const char *dir, const char *title, char *err, int errlen);
