/* SPDX-License-Identifier: MIT */
/*
 * The pyexec command: pick the command named by argv[1] and return its exit
 * code. Each command parses its own arguments (cmd.h: cmd-run.c,
 * cmd-check.c, cmd-serve.c (serve and worker), cmd-job.c); nothing else lives here.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

/* The commands, by the name argv[1] gives. */
static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
} commands[] = {
        { "run", cmd_run },       { "check", cmd_check }, { "serve", cmd_serve },
        { "worker", cmd_worker }, { "job", cmd_job },
};

static const char usage_main[] =
        "usage: pyexec run [OPTIONS] FILE|-   run a Python program in a sandbox (pyexec run --help)\n"
        "       pyexec check [--json]         report what this machine can enforce\n"
        "       pyexec serve [OPTIONS]        the HTTP service (pyexec serve --help)\n"
        "       pyexec worker [OPTIONS]       run the submissions of a shared queue (pyexec worker --help)\n"
        "       pyexec job list | NAME k=v... run an operator script job (pyexec job --help)\n"
        "       pyexec --version              print the version and exit\n";

int main(int argc, char **argv) {
        /* A reader of our output that went away must not kill a run's
         * bookkeeping half-way; writes then fail with EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        if (argc < 2) {
                fputs(usage_main, stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].run(argc - 1, argv + 1);
        if (strcmp(argv[1], "--version") == 0) {
                printf("pyexec %s\n", PYEXEC_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
                fputs(usage_main, stdout);
                return 0;
        }
        fprintf(stderr, "pyexec: unknown command '%s'\n", argv[1]);
        fputs(usage_main, stderr);
        return EXIT_USAGE;
}
