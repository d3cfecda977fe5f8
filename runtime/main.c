/* main.c — the `vmc` command line: dispatches to one sub-command (runtime/cmd_*.c). */
#include "commands.h"
#include <stdio.h>
#include <string.h>

static const Command COMMANDS[] = {
    {"check", cmd_check, "report diagnostics for .vmc files (exit 1 on any error)"},
    {"info", cmd_info, "list every model's parameter tensors and totals"},
    {"graph", cmd_graph, "print a model's lowered graph (text or --dot)"},
    {"pretrain", cmd_pretrain, "pretrain a model (forward + backward + AdamW), metrics.jsonl + checkpoints"},
    {"finetune", cmd_finetune, "fine-tune a classifier with soft targets"},
    {"eval", cmd_eval, "top-1/top-5 of a checkpoint on the test split"},
    {"grad", cmd_grad, "loss and every parameter gradient for given weights and inputs (parity checks)"},
    {"compile", cmd_compile, "fuse a model's step and NVRTC-compile every kernel for a GPU arch (no GPU needed)"},
    {"bench", cmd_bench, "GPU step throughput, TFLOP/s vs GEMM peak, memory, time per kernel class"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: vmc COMMAND [ARGS]   (vmc COMMAND --help for details)\n\ncommands:\n");
    for (size_t k = 0; k < sizeof COMMANDS / sizeof COMMANDS[0]; k++)
        fprintf(out, "  %-10s %s\n", COMMANDS[k].name, COMMANDS[k].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t k = 0; k < sizeof COMMANDS / sizeof COMMANDS[0]; k++)
        if (!strcmp(argv[1], COMMANDS[k].name)) return COMMANDS[k].run(argc - 1, argv + 1);
    if (argv[1][0] == '-') { fprintf(stderr, "vmc: unknown option '%s' (see vmc --help)\n", argv[1]); return 1; }
    fprintf(stderr, "vmc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
