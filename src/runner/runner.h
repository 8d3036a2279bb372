/* SPDX-License-Identifier: MIT */
/*
 * runner: the embedded CPython that runs a program inside the sandbox with
 * the semantics of `python3 main.py`, under a policy (policy.h) enforced by
 * a PEP 578 audit hook installed from C, after a static check with CPython's
 * own parser. It lives in the pyexec-runner executable, the only part of
 * pyexec linked with libpython:
 *
 *   pyexec-runner --cold     exec'd inside a fresh sandbox (the cold path):
 *                            fd 3 is the status pipe, fd 4 the work memfd,
 *                            fd 5 the images pipe when the run has one
 *   pyexec-runner --zygote   started by the service (zygote.c): initializes
 *                            the interpreter once, then forks pre-built
 *                            sandboxes that wait for work (the warm path)
 */
#pragma once

#include <stdbool.h>

#ifndef Py_PYTHON_H
typedef struct _object PyObject;
#endif

#include "work.h"

/* Largest work payload a runner accepts. */
#define RUNNER_WORK_MAX (512u << 20)

/*
 * With the interpreter initialized (and the hook installed by runner_setup),
 * run the program described by w in the current directory, reporting a
 * static-check refusal on status_fd, and exit the process as `python3
 * main.py` would. Never returns.
 */
_Noreturn void runner_run(struct work *w, int status_fd, int work_fd, int images_fd);

/* After Py_Initialize: compile the static check (the zygote does it once
 * for all its children). */
int runner_prepare(void);

/* Run a typical program (with the static check over path, a file of it)
 * in this process, as runner_run() would, without exiting: the zygote's
 * probe child does, to learn which pages a run writes. */
void runner_probe(const char *policy_line, const char *path);

/* The function name defined by Python source src, compiled in a namespace
 * of its own; a new reference, or NULL with an exception set. */
PyObject *runner_define(const char *src, const char *name);

/* The pictures a program shows (runner-images.c): the helpers defined
 * (the zygote does it once), started for a run with the images pipe's
 * write end images_fd (-1: none, nothing is installed), and the figures
 * still open sent at the program's exit. */
int runner_images_prepare(void);
int runner_images_start(int images_fd);
void runner_images_at_exit(void);
/* From the audit hook, for an event the policy let through. */
void runner_images_on_event(const char *event, PyObject *args);

/* Before Py_Initialize: the audit hook and the _pyexec module. */
int runner_setup(void);

/* Entry points of pyexec-runner. */
int runner_cold_main(void);
int runner_zygote_main(int control_fd);
/* Whether the zygote's sandboxes copy the interpreter's pages while they
 * wait (--no-prefault turns it off). */
extern bool runner_zygote_prefault;
/* --huge-pages SETS: move the zygote's memory to hugetlb pages if the pool
 * has room for SETS copies of it (zygote-heap.c); 0: never. */
extern unsigned runner_zygote_huge_sets;
