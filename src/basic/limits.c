/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "pyexec.h"

#define L(field) offsetof(struct pyexec_limits, field)

/* Ranges: wide enough for real exercises, narrow enough that one run cannot
 * take the host (a 4 GiB, 10-minute ceiling). */
const struct pyexec_limit_info pyexec_limit_table[] = {
        { "timeout", "timeoutMs", "ms", 1, 600000, 10000, L(timeout_ms),
          "supervisor timer; SIGKILL to the run's PID namespace" },
        { "cpu-time", "cpuTimeMs", "ms", 1, 600000, 10000, L(cpu_time_ms),
          "cgroup CPU accounting polled by the supervisor, RLIMIT_CPU per process" },
        { "memory", "memoryMb", "MB", 16, 4096, 128, L(memory_mb), "cgroup memory limit, else RLIMIT_AS" },
        { "max-output", "maxOutput", "bytes", 1, 67108864, 10000, L(max_output),
          "supervisor: stdout+stderr counted as read, run killed at the cap" },
        { "pids", "pids", "", 1, 4096, 64, L(pids), "cgroup pids.max, else RLIMIT_NPROC" },
        { "disk", "diskMb", "MB", 1, 1024, 32, L(disk_mb), "tmpfs size= of the work directory, /tmp and /dev/shm" },
        { "file-size", "fileSizeMb", "MB", 1, 1024, 16, L(file_size_mb), "RLIMIT_FSIZE" },
        { "open-files", "openFiles", "", 16, 4096, 256, L(open_files), "RLIMIT_NOFILE" },
};

const size_t pyexec_limit_count = sizeof pyexec_limit_table / sizeof pyexec_limit_table[0];

uint64_t *pyexec_limit_ptr(struct pyexec_limits *l, const struct pyexec_limit_info *i) {
        return (uint64_t *)(void *)((char *)l + i->offset);
}

void pyexec_limits_default(struct pyexec_limits *l) {
        for (size_t i = 0; i < pyexec_limit_count; i++)
                *pyexec_limit_ptr(l, &pyexec_limit_table[i]) = pyexec_limit_table[i].def;
}

const struct pyexec_limit_info *pyexec_limit_find(const char *option) {
        for (size_t i = 0; i < pyexec_limit_count; i++)
                if (strcmp(pyexec_limit_table[i].option, option) == 0)
                        return &pyexec_limit_table[i];
        return NULL;
}

static void range_message(const struct pyexec_limit_info *i, const char *prefix, const char *got, char *err,
                          size_t errlen) {
        snprintf(err, errlen, "%s%s must be a whole number between %llu and %llu%s%s%s, got '%s'", prefix, i->option,
                 (unsigned long long)i->min, (unsigned long long)i->max, i->unit[0] ? " (" : "", i->unit,
                 i->unit[0] ? ")" : "", got);
}

int pyexec_limit_parse(const struct pyexec_limit_info *i, const char *value, const char *prefix, uint64_t *ret,
                       char *err, size_t errlen) {
        int r = parse_u64(value, i->min, i->max, ret);
        if (r < 0)
                range_message(i, prefix, value, err, errlen);
        return r;
}

int pyexec_limits_validate(const struct pyexec_limits *l, const char *prefix, char *err, size_t errlen) {
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                uint64_t v = *pyexec_limit_ptr((struct pyexec_limits *)l, in);
                if (v < in->min || v > in->max) {
                        char got[32];
                        snprintf(got, sizeof got, "%llu", (unsigned long long)v);
                        range_message(in, prefix, got, err, errlen);
                        return -ERANGE;
                }
        }
        return 0;
}
