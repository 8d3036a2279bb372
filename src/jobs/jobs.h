/* SPDX-License-Identifier: MIT */
/*
 * jobs: operator-written scripts run with parameters that come from users.
 *
 * The operator declares jobs in a YAML file (jobs/jobs.yaml is the shipped
 * one): interpreter, script, an argument template, typed parameters, limits
 * and an environment allowlist. A request names a job and gives values;
 * every value is validated against its declaration, and paths are resolved
 * beneath the allowed roots with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
 * so "..", a symlink in any component, devices, FIFOs and anything outside
 * the roots are refused. No shell is ever involved: each template token
 * becomes exactly one argument.
 *
 * Inside the sandbox the job sees its script at /job/<script>, each input
 * file read-only at /job/in/<param>/<name>, and each output location as a
 * writable staging directory at /job/out/<param>. Outputs are published
 * (renamed into place, with their size and SHA-256) only when the run ends
 * ok; a declared output that was not produced makes it a runtime_error.
 *
 * Three modules, from pure to side-effecting:
 *   jobs-def.h   the definitions: loading and validating the YAML file;
 *   jobs-path.h  a request's values validated, paths resolved beneath
 *                their roots (opens, creates nothing);
 *   jobs-run.h   staging, running in the sandbox, publishing outputs.
 * This header is what the service and the CLI use: the definitions and
 * job_run().
 */
#pragma once

#include "jobs-def.h"
#include "jobs-run.h"
