/* SPDX-License-Identifier: MIT */
/*
 * libpyexec: run one Python program in a fresh kernel sandbox and report
 * exactly what happened. This is the public interface that the CLI (and the
 * HTTP service) use; the modules behind it are private.
 *
 *     struct pyexec_sandbox *sb;
 *     pyexec_sandbox_new(&sb);             // once per process: detect the host
 *     struct pyexec_spec spec = {...};      // program, files, limits
 *     struct pyexec_result res;
 *     pyexec_run(sb, &spec, &res);          // blocks until the run is over
 *     ... res.status, res.out, ...
 *     pyexec_result_done(&res);
 *     pyexec_sandbox_free(sb);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* PYEXEC_VERSION ("0.1.0") comes from meson.build's project() version. */

/* Verdicts, exactly as the contract (docs/api.md) names them. */
enum pyexec_status {
        PYEXEC_OK,
        PYEXEC_RUNTIME_ERROR,
        PYEXEC_SYNTAX_ERROR,
        PYEXEC_TIMEOUT,
        PYEXEC_MEMORY_LIMIT,
        PYEXEC_OUTPUT_LIMIT,
        PYEXEC_POLICY_VIOLATION,
        PYEXEC_INTERNAL_ERROR,
        _PYEXEC_STATUS_MAX,
};

const char *pyexec_status_to_string(enum pyexec_status s);

struct pyexec_limits {
        uint64_t timeout_ms;   /* wall clock, from the program's start */
        uint64_t cpu_time_ms;  /* CPU time of the whole process tree */
        uint64_t memory_mb;    /* memory of the whole tree (cgroup), else address space */
        uint64_t max_output;   /* stdout + stderr bytes */
        uint64_t pids;         /* processes + threads of the program */
        uint64_t disk_mb;      /* size of each writable tmpfs: the work directory and /tmp */
        uint64_t file_size_mb; /* largest file the program may write */
        uint64_t open_files;   /* file descriptors per process */
};

/* One limit's name, range and default; the table drives CLI parsing, HTTP
 * validation, messages and the documents. */
struct pyexec_limit_info {
        const char *option; /* CLI option without dashes: "memory" */
        const char *json;   /* result "limits" key: "memoryMb" */
        const char *unit;   /* "ms", "MB", "bytes", "" */
        uint64_t min, max, def;
        size_t offset; /* into struct pyexec_limits */
        const char *enforced_by; /* what enforces it, for `pyexec check` */
};

extern const struct pyexec_limit_info pyexec_limit_table[];
extern const size_t pyexec_limit_count;

/* The documented defaults. */
void pyexec_limits_default(struct pyexec_limits *l);
/* Lookup by CLI option name; NULL when unknown. */
const struct pyexec_limit_info *pyexec_limit_find(const char *option);
uint64_t *pyexec_limit_ptr(struct pyexec_limits *l, const struct pyexec_limit_info *i);
/*
 * Parse value for a limit strictly. On failure returns -EINVAL/-ERANGE and
 * writes a message for the user ("--memory must be between 16 and 4096 (MB),
 * got 100000") into err (size errlen). prefix is "--" for the CLI.
 */
int pyexec_limit_parse(const struct pyexec_limit_info *i, const char *value, const char *prefix, uint64_t *ret,
                       char *err, size_t errlen);
/* Check every limit is within range; message as above on failure. */
int pyexec_limits_validate(const struct pyexec_limits *l, const char *prefix, char *err, size_t errlen);

/* A file placed in the work directory. name must pass filename_is_plain(). */
struct pyexec_file {
        const char *name;
        const char *data;
        size_t len;
};

#define PYEXEC_MAIN_FILE "main.py"

/* A host file or directory shown inside the sandbox (operator jobs). */
struct pyexec_bind {
        int fd;           /* O_PATH descriptor of what was validated: nothing
                           * can be swapped in between validation and mount */
        const char *dest; /* absolute path inside the sandbox, e.g. /job/in/x.png */
        bool dir;
        bool writable;    /* else read-only; writable ones are also noexec and
                           * are handed to the run's uid as root */
};

struct pyexec_spec {
        struct pyexec_limits limits;
        const char *python; /* absolute path of the interpreter, under /usr */
        /* Files for the work directory; one of them is the program, named
         * PYEXEC_MAIN_FILE. */
        const struct pyexec_file *files;
        size_t n_files;
        const char *const *args; /* extra sys.argv entries */
        size_t n_args;
        const char *stdin_data; /* may be NULL: empty stdin */
        size_t stdin_len;
        /* When >= 0, the program's output is also written here as it
         * arrives (the CLI without --json). */
        int echo_stdout;
        int echo_stderr;
        /* When set, called with the program's output as it arrives (what
         * is kept within the output cap), stdout and stderr in the order
         * they were read, on the caller's thread; stream is 1 for stdout,
         * 2 for stderr. */
        void (*on_output)(void *userdata, int stream, const char *p, size_t n);
        void *on_output_userdata;
        /* When above 2: a connected socket of whoever waits for this run.
         * Once it hangs up (the peer closed it, or it was shut down on this
         * side), the run is ended: its processes are killed and the result
         * says it was stopped. Data arriving on it does not count. 0: none. */
        int client_fd;
        /* Jobs: run argv (argv[0], the interpreter, under /usr) instead of
         * `python3 main.py`; then no main.py is needed. */
        const char *const *argv;
        size_t n_argv;
        const struct pyexec_bind *binds;
        size_t n_binds;
        const char *const *env; /* extra NAME=value entries */
        size_t n_env;
        /* On the wall-clock limit: SIGTERM to every process first, SIGKILL
         * this many ms later (0: SIGKILL at once). */
        uint64_t term_grace_ms;
        /* Run main.py through pyexec-runner (embedded CPython: the static
         * check and the policy) rather than exec'ing python. */
        bool runner;
        const char *policy; /* the policy's policy_format() line; NULL: none */
        /* Pictures the program shows (runner only; images.h): at most this
         * many, of at most this many PNG bytes together. 0 images: no
         * channel, nothing is collected. */
        unsigned max_images;
        uint64_t max_image_bytes;
};

/* The caps the CLI and the service use unless configured otherwise. */
#define PYEXEC_DEFAULT_MAX_IMAGES 8u
#define PYEXEC_DEFAULT_MAX_IMAGE_BYTES (4ull * 1024 * 1024)

/* A picture the program showed: a PNG the supervisor checked, its size
 * read from the PNG itself. */
struct pyexec_image {
        uint32_t width, height;
        char *data;
        size_t len;
};

struct pyexec_result {
        enum pyexec_status status;
        int exit_code; /* -1 when signalled or never started */
        int signal;    /* 0 when not signalled */
        struct buf out, err, merged;
        bool truncated;
        char *message; /* NULL for ok */
        double wall_ms;
        double cpu_ms;
        uint64_t peak_kb;
        struct pyexec_image *images;
        size_t n_images;
        bool images_truncated; /* some were left out: beyond the caps */
};

void pyexec_result_done(struct pyexec_result *r);

/* What this host can enforce, detected once; shared by every run. */
struct pyexec_sandbox;

int pyexec_sandbox_new(struct pyexec_sandbox **ret);
struct pyexec_sandbox *pyexec_sandbox_free(struct pyexec_sandbox *s);

/*
 * Run one program. Always fills ret (pyexec's own failures are status
 * internal_error with a message) and returns 0, except -EINVAL for a spec
 * that breaks the rules above (message in ret->message).
 */
int pyexec_run(struct pyexec_sandbox *s, const struct pyexec_spec *spec, struct pyexec_result *ret);

/*
 * The warm path (zygote.h): a zygote process with an initialized
 * interpreter, and pool sandboxes built ahead of time from it. Once
 * started, pyexec_run() uses it for every spec it fits (programs through
 * the runner, with disk_mb as given here) and the cold path for the rest.
 */
/* A technique whose worth depends on the host (docs/benchmarks.md): chosen
 * at start (AUTO) or forced. */
enum pyexec_choice { PYEXEC_CHOICE_AUTO, PYEXEC_CHOICE_OFF, PYEXEC_CHOICE_ON };

struct pyexec_warm_options {
        unsigned pool;                /* sandboxes kept ready, at most */
        bool pool_follows_load;       /* fewer while the load needs fewer (zygote.c, pool_target) */
        uint64_t pool_shrink_after_s; /* how long a peak of load keeps its sandboxes */
        uint64_t disk_mb;    /* their work directory and /tmp */
        uint64_t memory_mb;  /* their limits while idle */
        uint64_t pids;
        uint64_t max_forks;  /* recycle the zygote after this many sandboxes */
        uint64_t max_age_s;  /* ... or after this long */
        /* Copy the interpreter's pages ahead (zygote-child.c); AUTO: only
         * while runs leave a CPU idle. */
        enum pyexec_choice prefault;
        const char *preimport; /* modules the zygote imports ahead, comma-separated */
        /* The zygote's memory on hugetlb pages (zygote-heap.c); AUTO: where
         * a copy-on-write fault is dear (hugetlb_pays). */
        enum pyexec_choice huge_pages;
        unsigned max_running;  /* runs at once (MAX_CONCURRENT_EXECUTIONS): sizes the hugetlb pool */
};
int pyexec_sandbox_start_warm(struct pyexec_sandbox *s, const struct pyexec_warm_options *o);
bool pyexec_sandbox_is_warm(const struct pyexec_sandbox *s);

struct pyexec_warm_stats {
        unsigned ready;
        uint64_t sandboxes, taken_ready, built_on_demand, failures, zygotes, zygote_deaths;
        uint64_t netns_made, netns_reused; /* the pool of network namespaces (root only) */
        int zygote_pid;
        unsigned zygote_huge_pages; /* the zygote's memory on hugetlb pages */
        unsigned pool_target;       /* sandboxes the pool keeps ready now (it follows the load) */
        uint64_t let_go;            /* ready sandboxes ended because the load needed fewer */
        bool huge_pages;            /* the choice made at start */
        const char *prefault;       /* "idle", "always" or "off" */
        const char *huge_pages_why; /* why huge pages are on or off */
        uint64_t cow_fault_ns;      /* a copy-on-write fault, measured at start (0: not measured) */
        uint64_t huge_reserved_bytes; /* added to the host's hugetlb pool for the zygote and its sandboxes */
};
int pyexec_sandbox_warm_stats(const struct pyexec_sandbox *s, struct pyexec_warm_stats *ret);

/* Facts for `pyexec check`. */
struct pyexec_sandbox_info {
        bool privileged;        /* running as root: fresh host uid per run */
        bool userns;            /* runs use a user namespace */
        const char *cgroup;     /* "v2", "v1" or "none" */
        const char *memory_by;  /* what enforces the memory limit */
        const char *pids_by;
        const char *cpu_by;
        const char *cgroup_reason; /* why something is missing, or "" */
        const char *memory_cgroup, *pids_cgroup, *cpu_cgroup; /* parents, or NULL */
        const char *hugetlb_by;     /* what bounds a run's pages of the hugetlb pool */
        const char *hugetlb_cgroup; /* parent, or NULL (hugetlb_reason says why) */
        const char *hugetlb_reason;
        unsigned uid_base, uid_count;
        size_t seccomp_rules;
        size_t seccomp_insns;
};
void pyexec_sandbox_get_info(const struct pyexec_sandbox *s, struct pyexec_sandbox_info *ret);
/* Whether this process may create a user namespace (a probe: a child
 * tries), whether or not runs use one. */
bool pyexec_userns_available(void);
/* Where pyexec-runner is (or was last looked for); false when not found. */
bool pyexec_sandbox_runner_path(const struct pyexec_sandbox *s, char *buf, size_t n);
bool pyexec_sandbox_has_runner(const struct pyexec_sandbox *s);
