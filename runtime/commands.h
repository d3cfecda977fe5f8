/* commands.h — one entry point per `vmc` sub-command; each lives in its own cmd_*.c file.
 * Each returns the process exit status (0 ok, 1 user error, 2 environment error). */
#pragma once

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);     /* argv[0] is the command name */
    const char *summary;
} Command;

int cmd_check(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);   /* runtime/cmd_train.c */
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int bench_data(int argc, char **argv);   /* runtime/cmd_bench_data.c: `vmc bench --data ...` */
int cmd_compile(int argc, char **argv);  /* runtime/cmd_compile.c */
int cmd_bench(int argc, char **argv);    /* runtime/cmd_bench.c */
int cmd_grad(int argc, char **argv);
