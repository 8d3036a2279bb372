/* SPDX-License-Identifier: MIT */
/*
 * config: the service's configuration. Every key has one name, the
 * environment variable of the original service where there was one (PORT,
 * EXECUTION_TIMEOUT, ...). The same key is read from a config file
 * ("KEY=value" lines, `--config FILE`) and from a flag (`--port`,
 * `--execution-timeout`, ...: the key in lower case with dashes). Precedence:
 * flag > environment > file > default. An invalid value anywhere stops
 * start-up with a message naming the key and where it came from. `pyexec
 * worker` reads the same keys (argv[0] "worker").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "pyexec.h"
#include "policy.h"

/* What the zygote imports ahead by default: the modules exercises use most,
 * and none that makes every fork much dearer (measured, docs/benchmarks.md: Pillow
 * and its libraries, threading's at-fork handler, hashlib's libcrypto). */
#define ZYGOTE_PREIMPORT_DEFAULT \
        "math,random,re,json,collections,itertools,functools,string,time,datetime,heapq,bisect,copy,"   \
        "operator,typing,dataclasses,enum,unittest,abc,array,struct,textwrap,keyword,numbers,reprlib," \
        "types,weakref,warnings,io,json.decoder,traceback,contextlib,fractions,statistics"

/* REQUEST_TIME_LIMIT=0 (its default) means this many EXECUTION_TIMEOUTs:
 * room for a few cases that use their whole limit, and for many that do
 * not. */
#define REQUEST_TIME_LIMIT_FACTOR 3

enum config_source {
        SOURCE_DEFAULT,
        SOURCE_FILE,
        SOURCE_ENV,
        SOURCE_FLAG,
        _SOURCE_MAX,
};

/* What a line of API_KEYS_FILE says after the key (`max=N window=MS trusted
 * user-max=N user-window=MS`); a key of API_KEYS has the defaults. */
struct api_key_opts {
        uint64_t max, window_ms;           /* the key's rate limit: RATE_LIMIT_MAX, _WINDOW unless set */
        bool trusted;                      /* requests may name an end user (userId) */
        uint64_t user_max, user_window_ms; /* each end user's: RATE_LIMIT_MAX, _WINDOW unless set */
        char label[9]; /* the first 8 hex digits of the key's SHA-256: names it where a key must be named */
};

struct config {
        char *bind;
        uint64_t port;
        uint64_t execution_timeout; /* ms: default and maximum a request may ask */
        uint64_t memory_limit;      /* MB: default and maximum */
        uint64_t max_output_length; /* bytes: default and maximum */
        uint64_t max_code_length;   /* characters of `code` (and testCode) */
        uint64_t max_images;        /* pictures in a result (pyexec_spec.max_images) */
        uint64_t max_image_bytes;   /* their PNG bytes together */
        uint64_t max_request_size;  /* bytes of a request body */
        uint64_t max_tests;         /* graded cases per request */
        uint64_t request_time_limit; /* ms all of one request's cases may take; never 0 once loaded */
        uint64_t rate_limit_window; /* ms */
        uint64_t rate_limit_max;    /* executions per window per client; 0 = off */
        uint64_t max_concurrent;    /* execution slots */
        uint64_t queue_size;        /* requests waiting for a slot */
        uint64_t connection_timeout; /* s an idle or slow connection may live */
        uint64_t max_connections;
        uint64_t breaker_threshold; /* consecutive sandbox failures that open the breaker */
        uint64_t breaker_cooldown;  /* ms before it tries again */
        bool metrics_enabled;
        enum pyexec_choice playground; /* /playground: on, off, or auto (on when BIND is loopback) */
        enum log_level log_level;
        char *cors_origin;   /* "" = no CORS headers */
        char *api_keys_file; /* "" = none */
        char *python;
        char *jobs_file; /* "" = the default (jobs_default_path) */
        /* API keys from API_KEYS and API_KEYS_FILE; empty = no auth. */
        char **api_keys;
        size_t n_api_keys;
        struct api_key_opts *api_key_opts; /* api_keys[i]'s options, from its line */
        char *execution_mode; /* "warm" (a zygote and pre-built sandboxes) or "cold" */
        bool warm;
        uint64_t warm_pool; /* sandboxes kept ready; 0 = as the load needs, up to MAX_CONCURRENT_EXECUTIONS + 1 */
        uint64_t warm_pool_shrink_after; /* s: how long a peak keeps its sandboxes (WARM_POOL_SIZE=0) */
        uint64_t zygote_max_forks; /* recycle the zygote after this many sandboxes */
        uint64_t zygote_max_age;   /* ... or after this many seconds */
        enum pyexec_choice zygote_prefault;   /* sandboxes copy the interpreter's pages while they wait */
        enum pyexec_choice zygote_huge_pages; /* the zygote's memory on hugetlb pages (zygote-heap.c) */
        bool allow_stale_runner;   /* ready although the runner embeds another libpython than /usr's */
        char *zygote_preimport;    /* modules the zygote imports ahead, comma-separated */
        char *policies;            /* names a request may pick */
        char *default_policy;
        /* Built-in policies plus the operator's POLICY_<NAME> keys, and
         * each one's policy_format() line (parallel to policy_set.v). */
        struct policy_set policy_set;
        char **policy_lines;
        char **policy_sources; /* POLICY_<NAME>=spec as given, with where, for --print-config */
        size_t n_policy_sources;
        bool worker; /* `pyexec worker`: runs submissions; HTTP for probes, metrics and stats only */
        /* Asynchronous submissions (submissions.c, queue.h, webhook.h). */
        char *queue_url;          /* "": the in-process queue */
        char *queue_url_shown;    /* queue_url without its password, for logs and --print-config */
        char *queue_workers;      /* as given: "auto" or a number */
        uint64_t n_queue_workers; /* resolved */
        uint64_t queue_lease;     /* s */
        uint64_t max_deliveries;
        uint64_t max_batch;
        uint64_t queue_max_depth;
        uint64_t result_ttl;          /* s */
        uint64_t submission_wait_max; /* ms */
        char *callback_allowed_hosts;
        char *webhook_secret;
        uint64_t webhook_timeout;      /* ms */
        uint64_t webhook_retry_for;    /* s */
        enum config_source source[64]; /* per key, for --print-config */
        char *config_file;
};

/* Build policy_set and policy_lines from the built-ins, policy_sources,
 * POLICIES and DEFAULT_POLICY (config_load does it). */
int config_build_policies(struct config *c, char *err, size_t errlen);

/* The policy_format() line of a policy a request may pick; NULL when name
 * is not among POLICIES. */
const char *config_policy_line(const struct config *c, const char *name);

/* Fill c from defaults, --config FILE, the environment and the flags in
 * argv (argv[0] is "serve"). Returns 0, 1 for --print-config, 2 for --help,
 * 3 for --print-default-config (each printed to out), or -EINVAL with err
 * naming the key and the problem. */
int config_load(struct config *c, int argc, char **argv, FILE *out, char *err, size_t errlen);
void config_done(struct config *c);

/* KEY=value lines with their sources; API keys are never printed. */
void config_print(const struct config *c, FILE *f);

/* A config file that loads as it is: every key, with its meaning and
 * range, commented out at its default (the installed pyexec.conf). */
void config_print_default(FILE *f);
