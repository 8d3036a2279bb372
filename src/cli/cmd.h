/* SPDX-License-Identifier: MIT */
/*
 * cmd: the commands of the pyexec binary, one file each (cmd-run.c,
 * cmd-check.c, cmd-serve.c, cmd-job.c). main.c picks one by argv[1] and
 * returns what it returns. Each takes its own argv (argv[0] is the command's
 * name), parses it, calls the library and maps the outcome to an exit code;
 * the exit codes are part of the interface (pyexec(1), `pyexec run --help`).
 */
#pragma once

/* Exit codes of `pyexec run` when the sandbox, not the program, decided;
 * `pyexec job` and `pyexec check` share the usage and internal ones. */
enum {
        EXIT_USAGE = 2,
        EXIT_UNAVAILABLE = 69, /* sysexits' EX_UNAVAILABLE: a job that is not ready */
        EXIT_POLICY = 121,
        EXIT_MEMORY = 122,
        EXIT_OUTPUT = 123,
        EXIT_TIMEOUT = 124,
        EXIT_INTERNAL = 125,
};

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_job(int argc, char **argv);

/* The interpreter a run or a check uses: opt (--python) if given, else
 * $PYEXEC_PYTHON, else /usr/bin/python3. */
const char *cmd_python_path(const char *opt);
