/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sha256.h"
#include "util.h"

static const char *const source_names[_SOURCE_MAX] = {
        [SOURCE_DEFAULT] = "default",
        [SOURCE_FILE] = "file",
        [SOURCE_ENV] = "environment",
        [SOURCE_FLAG] = "flag",
};

enum key_type {
        KEY_U64,
        KEY_BOOL,
        KEY_CHOICE, /* enum pyexec_choice: auto, true or false */
        KEY_STRING,
        KEY_ADDRESS,
        KEY_LOGLEVEL,
};

#define C(field) offsetof(struct config, field)

/* Every configuration key: its name (env and file), type, range, default,
 * and what it means (for --help). */
static const struct key {
        const char *name;
        enum key_type type;
        uint64_t min, max;
        const char *def;
        size_t offset;
        const char *help;
} keys[] = {
        { "BIND", KEY_ADDRESS, 0, 0, "127.0.0.1", C(bind), "address to listen on (IPv4 or IPv6)" },
        { "PORT", KEY_U64, 1, 65535, "3002", C(port), "TCP port" },
        { "EXECUTION_TIMEOUT", KEY_U64, 1, 600000, "10000", C(execution_timeout),
          "wall-clock limit in ms: the default, and the most a request may ask for" },
        { "MEMORY_LIMIT", KEY_U64, 16, 4096, "128", C(memory_limit), "memory limit in MB: default and maximum" },
        { "MAX_OUTPUT_LENGTH", KEY_U64, 1, 67108864, "10000", C(max_output_length),
          "stdout+stderr cap in bytes: default and maximum" },
        { "MAX_IMAGES", KEY_U64, 0, 100, "8", C(max_images),
          "pictures a run's result may carry (plt.show(), figures open at exit, Image.show()); 0: none" },
        { "MAX_IMAGE_BYTES", KEY_U64, 1024, 67108864, "4194304", C(max_image_bytes),
          "PNG bytes of a run's pictures together; beyond this or MAX_IMAGES, imagesTruncated" },
        { "MAX_CODE_LENGTH", KEY_U64, 1, 16777216, "50000", C(max_code_length),
          "longest `code` or `testCode`, in characters (413 beyond)" },
        { "MAX_REQUEST_SIZE", KEY_U64, 1024, 268435456, "2097152", C(max_request_size),
          "largest request body in bytes (413 beyond, without reading the rest)" },
        { "MAX_TESTS", KEY_U64, 1, 1000, "50", C(max_tests), "graded test cases per request (400 beyond)" },
        { "REQUEST_TIME_LIMIT", KEY_U64, 0, 3600000, "0", C(request_time_limit),
          "ms all the test cases of one request may take together (at least EXECUTION_TIMEOUT): a case still "
          "running then is stopped, later ones are reported not run; 0: 3 x EXECUTION_TIMEOUT" },
        { "RATE_LIMIT_WINDOW", KEY_U64, 1, 86400000, "60000", C(rate_limit_window), "rate-limit window in ms" },
        { "RATE_LIMIT_MAX", KEY_U64, 0, 100000000, "100", C(rate_limit_max),
          "executions per window per client (API key, else address); 0 turns it off" },
        { "MAX_CONCURRENT_EXECUTIONS", KEY_U64, 1, 1024, "5", C(max_concurrent), "execution slots" },
        { "EXECUTION_QUEUE_SIZE", KEY_U64, 0, 1000000, "100", C(queue_size),
          "requests that may wait for a slot; beyond that 503" },
        { "CONNECTION_TIMEOUT", KEY_U64, 1, 3600, "30", C(connection_timeout),
          "seconds an idle or slow connection may stay open" },
        { "MAX_CONNECTIONS", KEY_U64, 1, 1000000, "1024", C(max_connections), "open connections at once" },
        { "BREAKER_THRESHOLD", KEY_U64, 1, 1000, "5", C(breaker_threshold),
          "consecutive sandbox failures that open the circuit breaker" },
        { "BREAKER_COOLDOWN", KEY_U64, 1, 3600000, "10000", C(breaker_cooldown),
          "ms the breaker stays open before one request may try again" },
        { "METRICS_ENABLED", KEY_BOOL, 0, 0, "true", C(metrics_enabled), "serve /api/metrics" },
        { "LOG_LEVEL", KEY_LOGLEVEL, 0, 0, "info", C(log_level), "debug, info, warn or error" },
        { "PLAYGROUND", KEY_CHOICE, 0, 0, "auto", C(playground),
          "serve the playground page at /playground; auto: only when BIND is a loopback address" },
        { "CORS_ORIGIN", KEY_STRING, 0, 0, "", C(cors_origin), "Access-Control-Allow-Origin value; empty: no CORS" },
        { "API_KEYS", KEY_STRING, 0, 0, "", C(api_keys), "comma-separated API keys; empty (and no file): no auth" },
        { "API_KEYS_FILE", KEY_STRING, 0, 0, "", C(api_keys_file), "file with one API key per line" },
        { "PYEXEC_PYTHON", KEY_STRING, 0, 0, "/usr/bin/python3", C(python), "the interpreter (under /usr)" },
        { "EXECUTION_MODE", KEY_STRING, 0, 0, "warm", C(execution_mode),
          "warm: fork runs from a zygote with pre-built sandboxes; cold: a fresh interpreter per run (--cold)" },
        { "WARM_POOL_SIZE", KEY_U64, 0, 1024, "0", C(warm_pool),
          "sandboxes kept built and waiting (warm mode); 0: as many as the load needs, from 2 up to "
          "MAX_CONCURRENT_EXECUTIONS + 1" },
        { "WARM_POOL_SHRINK_AFTER", KEY_U64, 1, 86400, "60", C(warm_pool_shrink_after),
          "with WARM_POOL_SIZE=0: seconds the pool keeps the sandboxes a past peak of load needed before it lets "
          "the surplus go" },
        { "ZYGOTE_MAX_FORKS", KEY_U64, 1, 1000000000, "10000", C(zygote_max_forks),
          "replace the zygote after this many sandboxes" },
        { "ZYGOTE_MAX_AGE", KEY_U64, 1, 604800, "3600", C(zygote_max_age),
          "replace the zygote after this many seconds" },
        { "ZYGOTE_PREFAULT", KEY_CHOICE, 0, 0, "auto", C(zygote_prefault),
          "waiting sandboxes copy the interpreter's pages ahead: faster runs, more memory per sandbox, more CPU per "
          "sandbox; auto: only while runs leave a CPU idle" },
        { "ZYGOTE_HUGE_PAGES", KEY_CHOICE, 0, 0, "auto", C(zygote_huge_pages),
          "the zygote's memory on 2 MiB hugetlb pages when the pool has room (as root the service reserves it: "
          "vm.nr_hugepages); each sandbox then holds about 12 MiB of them; auto: only where a copy-on-write fault "
          "is dear (measured at start)" },
        { "ZYGOTE_PREIMPORT", KEY_STRING, 0, 0, ZYGOTE_PREIMPORT_DEFAULT, C(zygote_preimport),
          "modules the zygote imports ahead (comma-separated): warm runs find them imported; each one makes every "
          "sandbox dearer" },
        { "POLICIES", KEY_STRING, 0, 0, "education,permissive", C(policies),
          "comma-separated policies a request may pick (built-in: education, permissive, science; more as "
          "POLICY_<NAME>=spec)" },
        { "DEFAULT_POLICY", KEY_STRING, 0, 0, "education", C(default_policy),
          "the policy of a request that names none (one of POLICIES)" },
        { "ALLOW_STALE_RUNNER", KEY_BOOL, 0, 0, "false", C(allow_stale_runner),
          "become ready although pyexec-runner embeds another libpython3.11 than the installed standard library's "
          "(rebuild with make instead)" },
        { "QUEUE_URL", KEY_STRING, 0, 0, "", C(queue_url),
          "where asynchronous submissions wait: empty: in this process (lost when it stops); "
          "redis://[:password@]host[:port][/db] or unix:///path: Redis Streams, shared by every instance and "
          "`pyexec worker`" },
        { "QUEUE_WORKERS", KEY_STRING, 0, 0, "auto", C(queue_workers),
          "submissions this instance runs at once (through its execution slots): a number, 0 to only accept "
          "them (with QUEUE_URL), auto: MAX_CONCURRENT_EXECUTIONS" },
        { "QUEUE_LEASE", KEY_U64, 1, 3600, "30", C(queue_lease),
          "seconds a worker holds a submission without a sign of life before another takes it over" },
        { "MAX_DELIVERIES", KEY_U64, 1, 100, "5", C(max_deliveries),
          "times a submission is taken before it is stored as internal_error (dead letter)" },
        { "MAX_BATCH", KEY_U64, 1, 10000, "100", C(max_batch), "submissions in one batch (413 beyond)" },
        { "QUEUE_MAX_DEPTH", KEY_U64, 1, 100000000, "100000", C(queue_max_depth),
          "submissions that may wait in the queue; beyond that 503 queue_full" },
        { "RESULT_TTL", KEY_U64, 60, 31536000, "86400", C(result_ttl),
          "seconds a submission's result (and an Idempotency-Key) is kept" },
        { "SUBMISSION_WAIT_MAX", KEY_U64, 0, 300000, "30000", C(submission_wait_max),
          "the most ms a POST /api/submissions may wait for its results (?wait=)" },
        { "CALLBACK_ALLOWED_HOSTS", KEY_STRING, 0, 0, "", C(callback_allowed_hosts),
          "hosts a callbackUrl may name, comma-separated (*: any host whose addresses are public); empty: "
          "callbacks are off" },
        { "WEBHOOK_SECRET", KEY_STRING, 0, 0, "", C(webhook_secret),
          "the callbacks' signing secret, whsec_<base64> (Standard Webhooks); needed with CALLBACK_ALLOWED_HOSTS" },
        { "WEBHOOK_TIMEOUT", KEY_U64, 100, 300000, "10000", C(webhook_timeout),
          "ms one callback attempt may take, connection included" },
        { "WEBHOOK_RETRY_FOR", KEY_U64, 0, 604800, "86400", C(webhook_retry_for),
          "seconds a failing callback is retried (exponential backoff) before it is given up" },
        { "JOBS_FILE", KEY_STRING, 0, 0, "", C(jobs_file),
          "operator jobs (YAML); empty: PYEXEC_JOBS, else jobs/jobs.yaml beside the binary's directory, "
          "else " PYEXEC_DATADIR "/jobs/jobs.yaml" },
};

/* API_KEYS is parsed after loading: its raw string is kept here. */
struct raw {
        char *api_keys;
};

_Static_assert(ELEMENTSOF(keys) <= ELEMENTSOF(((struct config *)0)->source), "source[] too small");

/* POLICY_<NAME>=spec: an operator's policy (policy.h), from the file or the
 * environment. Applied in order after everything else is read. */
static int add_policy_def(struct config *c, const char *key, const char *spec, const char *where, char *err,
                          size_t errlen) {
        char name[POLICY_NAME_MAX + 8], *line, **v;
        size_t n = strlen(key) - 7;

        if (n == 0 || n >= POLICY_NAME_MAX) {
                snprintf(err, errlen, "%s: '%s' needs a policy name of 1-31 characters after POLICY_", where, key);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                name[i] = (char)tolower((unsigned char)key[7 + i]);
        name[n] = 0;
        if (!policy_name_is_valid(name)) {
                snprintf(err, errlen, "%s: '%s': policy names are letters, digits, _ and -, starting with a letter", where,
                         key);
                return -EINVAL;
        }
        if (!utf8_is_valid(spec, strlen(spec)) || strlen(spec) > 65536) {
                snprintf(err, errlen, "%s: %s must be valid UTF-8 of at most 65536 bytes", where, key);
                return -EINVAL;
        }
        v = realloc(c->policy_sources, (c->n_policy_sources + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        c->policy_sources = v;
        line = strdup_printf("%s\t%s\t%s", name, spec, where);
        if (!line)
                return -ENOMEM;
        v[c->n_policy_sources++] = line;
        return 0;
}

/* The next name of the comma-separated list at *p (spaces around it
 * trimmed) into name; false at the end, or for an empty or too long name
 * (*bad set). */
static bool next_list_name(const char **p, char *name, size_t n, bool *bad) {
        const char *q = *p;
        size_t l, ql;

        *bad = false;
        if (!*q)
                return false;
        l = strcspn(q, ",");
        *p = q + l + (q[l] == ',');
        ql = l;
        while (ql > 0 && *q == ' ')
                q++, ql--;
        while (ql > 0 && q[ql - 1] == ' ')
                ql--;
        if (ql == 0 || ql >= n) {
                *bad = true;
                return false;
        }
        memcpy(name, q, ql);
        name[ql] = 0;
        return true;
}

/*
 * Modules the zygote must not import: it runs on the host's file system, as
 * the service's user, and these write there at import (matplotlib builds
 * its font cache in MPLCONFIGDIR, /tmp/matplotlib, which on the host is a
 * path any local user can create first). A run imports them in its own
 * sandbox, whose /tmp is its own.
 */
static const char *const preimport_refused[] = { "matplotlib", "mpl_toolkits" };

static bool preimport_is_refused(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(preimport_refused); i++) {
                size_t l = strlen(preimport_refused[i]);
                if (strncmp(name, preimport_refused[i], l) == 0 && (name[l] == 0 || name[l] == '.'))
                        return true;
        }
        return false;
}

/* ZYGOTE_PREIMPORT: module names (dotted, each part an identifier) separated
 * by commas, spaces around them allowed; empty imports nothing ahead. */
static int check_preimport(const char *list, char *err, size_t errlen) {
        const char *p = list;

        while (*p) {
                char name[256];
                size_t n;
                bool ok;
                p += strspn(p, " \t");
                n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                ok = n > 0 && n < sizeof name;
                if (ok) {
                        char *part, *save = NULL;
                        memcpy(name, p, n);
                        name[n] = 0;
                        if (preimport_is_refused(name)) {
                                snprintf(err, errlen,
                                         "ZYGOTE_PREIMPORT must not list '%s': it writes its cache at import, and the "
                                         "zygote runs on the host's file system",
                                         name);
                                return -EINVAL;
                        }
                        ok = name[0] != '.' && name[n - 1] != '.' && !strstr(name, "..");
                        for (part = strtok_r(name, ".", &save); ok && part; part = strtok_r(NULL, ".", &save))
                                ok = module_name_is_valid(part);
                }
                if (!ok) {
                        snprintf(err, errlen,
                                 "ZYGOTE_PREIMPORT must list module names separated by commas, got '%.*s' in '%s'",
                                 (int)(n ? n : 1), p, list);
                        return -EINVAL;
                }
                p += strcspn(p, ",");
                if (*p == ',') {
                        p++;
                        if (!p[strspn(p, " \t")]) {
                                snprintf(err, errlen, "ZYGOTE_PREIMPORT ends with a comma: '%s'", list);
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

int config_build_policies(struct config *c, char *err, size_t errlen) {
        int r;
        bool found_default = false;

        if (policy_set_init(&c->policy_set) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_policy_sources; i++) {
                char *copy = strdup(c->policy_sources[i]), *name, *spec, *where, e[512];
                if (!copy)
                        return -ENOMEM;
                name = copy;
                spec = strchr(name, '\t');
                *spec++ = 0;
                where = strchr(spec, '\t');
                *where++ = 0;
                r = policy_set_define(&c->policy_set, name, spec, e, sizeof e);
                if (r < 0) {
                        for (char *q = name; *q; q++)
                                *q = (char)toupper((unsigned char)*q);
                        snprintf(err, errlen, "POLICY_%s (%s): %s", name, where, e);
                        free(copy);
                        return -EINVAL;
                }
                free(copy);
        }
        c->policy_lines = calloc(c->policy_set.n, sizeof *c->policy_lines);
        if (!c->policy_lines)
                return -ENOMEM;
        for (size_t i = 0; i < c->policy_set.n; i++)
                if (policy_format(&c->policy_set.v[i], &c->policy_lines[i]) < 0)
                        return -ENOMEM;
        /* Every name in POLICIES must exist; the default must be one. */
        {
        const char *p = c->policies;
        char name[POLICY_NAME_MAX];
        bool bad;
        while (next_list_name(&p, name, sizeof name, &bad)) {
                if (!policy_set_find(&c->policy_set, name)) {
                        snprintf(err, errlen,
                                 "POLICIES names '%s', which is not defined (built-in: education, "
                                 "permissive, science; define more with POLICY_<NAME>=spec)",
                                 name);
                        return -EINVAL;
                }
                if (strcmp(name, c->default_policy) == 0)
                        found_default = true;
        }
        if (bad || !c->policies[0]) {
                snprintf(err, errlen, "POLICIES must list policy names separated by commas, got '%s'", c->policies);
                return -EINVAL;
        }
        }
        if (!found_default) {
                snprintf(err, errlen, "DEFAULT_POLICY '%s' is not among POLICIES (%s)", c->default_policy, c->policies);
                return -EINVAL;
        }
        return 0;
}

const char *config_policy_line(const struct config *c, const char *name) {
        char listed[POLICY_NAME_MAX];
        const char *p;
        bool allowed = false, bad;
        if (!c->policies || !c->policy_lines)
                return NULL; /* none configured */
        p = c->policies;
        while (next_list_name(&p, listed, sizeof listed, &bad))
                if (strcmp(listed, name) == 0)
                        allowed = true;
        if (!allowed)
                return NULL;
        for (size_t i = 0; i < c->policy_set.n; i++)
                if (strcmp(c->policy_set.v[i].name, name) == 0)
                        return c->policy_lines[i];
        return NULL;
}

static const struct key *find_key(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* QUEUE_WORKERS resolved, and QUEUE_URL as it may be shown (its password
 * replaced). The URL itself is parsed when the queue is made
 * (queue_redis_new). */
static int resolve_queue(struct config *c, char *err, size_t errlen) {
        const char *at, *scheme_end;

        if (strcmp(c->queue_workers, "auto") == 0)
                c->n_queue_workers = c->max_concurrent;
        else {
                char *end;
                unsigned long long v;
                errno = 0;
                v = strtoull(c->queue_workers, &end, 10);
                if (errno || end == c->queue_workers || *end || c->queue_workers[0] == '-' || v > 1024) {
                        snprintf(err, errlen, "QUEUE_WORKERS must be auto or a number from 0 to 1024, got '%s'",
                                 c->queue_workers);
                        return -EINVAL;
                }
                c->n_queue_workers = v;
        }
        if (c->worker && !c->queue_url[0]) {
                snprintf(err, errlen,
                         "pyexec worker takes its work from a shared queue: set QUEUE_URL (redis://host:port)");
                return -EINVAL;
        }
        if (c->worker && c->n_queue_workers == 0) {
                snprintf(err, errlen, "QUEUE_WORKERS=0 leaves a pyexec worker nothing to do");
                return -EINVAL;
        }
        if (!c->queue_url[0] && c->n_queue_workers == 0) {
                snprintf(err, errlen,
                         "QUEUE_WORKERS=0 needs QUEUE_URL: with the in-process queue nothing else would run the "
                         "submissions");
                return -EINVAL;
        }
        free(c->queue_url_shown);
        scheme_end = strstr(c->queue_url, "://");
        at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
        if (at)
                c->queue_url_shown = strdup_printf("%.*s***%s", (int)(scheme_end + 3 - c->queue_url), c->queue_url, at);
        else
                c->queue_url_shown = strdup(c->queue_url);
        return c->queue_url_shown ? 0 : -ENOMEM;
}

/* REQUEST_TIME_LIMIT bounds the slot time of a whole request; the first
 * case always runs under the request's own timeout, so the limit can never
 * be below the longest timeout a request may ask for. 0 derives it. */
static int resolve_request_time_limit(struct config *c, char *err, size_t errlen) {
        const struct key *k = find_key("REQUEST_TIME_LIMIT"), *t = find_key("EXECUTION_TIMEOUT");

        if (c->request_time_limit == 0) {
                c->request_time_limit = REQUEST_TIME_LIMIT_FACTOR * c->execution_timeout;
                return 0;
        }
        if (c->request_time_limit < c->execution_timeout) {
                snprintf(err, errlen,
                         "REQUEST_TIME_LIMIT is %llu ms (%s), less than EXECUTION_TIMEOUT, %llu ms (%s), the time one "
                         "run may take: raise REQUEST_TIME_LIMIT or lower EXECUTION_TIMEOUT (REQUEST_TIME_LIMIT=0 is "
                         "%d x EXECUTION_TIMEOUT)",
                         (unsigned long long)c->request_time_limit, source_names[c->source[k - keys]],
                         (unsigned long long)c->execution_timeout, source_names[c->source[t - keys]],
                         REQUEST_TIME_LIMIT_FACTOR);
                return -EINVAL;
        }
        return 0;
}

/* "EXECUTION_TIMEOUT" <-> "execution-timeout" */
static void flag_name(const struct key *k, char *out, size_t n) {
        size_t i = 0;
        for (; k->name[i] && i + 1 < n; i++)
                out[i] = k->name[i] == '_' ? '-' : (char)tolower((unsigned char)k->name[i]);
        out[i] = 0;
}

/* 1 for true, 0 for false, -EINVAL for anything else. */
static int parse_bool(const char *value) {
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
                return 1;
        if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no") || !strcasecmp(value, "off"))
                return 0;
        return -EINVAL;
}

static int set_value(struct config *c, struct raw *raw, const struct key *k, const char *value, const char *where,
                     char *err, size_t errlen) {
        void *field = (char *)c + k->offset;
        uint64_t v;
        int r;

        switch (k->type) {
        case KEY_U64:
                r = parse_u64(value, k->min, k->max, &v);
                if (r < 0) {
                        snprintf(err, errlen, "%s (%s) must be a whole number between %llu and %llu, got '%s'", k->name,
                                 where, (unsigned long long)k->min, (unsigned long long)k->max, value);
                        return -EINVAL;
                }
                *(uint64_t *)field = v;
                return 0;
        case KEY_BOOL:
                r = parse_bool(value);
                if (r < 0) {
                        snprintf(err, errlen, "%s (%s) must be true or false, got '%s'", k->name, where, value);
                        return -EINVAL;
                }
                *(bool *)field = r;
                return 0;
        case KEY_CHOICE:
                r = strcasecmp(value, "auto") ? parse_bool(value) : 2;
                if (r < 0) {
                        snprintf(err, errlen, "%s (%s) must be auto, true or false, got '%s'", k->name, where, value);
                        return -EINVAL;
                }
                *(enum pyexec_choice *)field = r == 2 ? PYEXEC_CHOICE_AUTO : r ? PYEXEC_CHOICE_ON : PYEXEC_CHOICE_OFF;
                return 0;
        case KEY_LOGLEVEL:
                for (int l = 0; l < _LOG_LEVEL_MAX; l++)
                        if (!strcasecmp(value, log_level_to_string((enum log_level)l))) {
                                *(enum log_level *)field = (enum log_level)l;
                                return 0;
                        }
                snprintf(err, errlen, "%s (%s) must be one of debug, info, warn, error, got '%s'", k->name, where, value);
                return -EINVAL;
        case KEY_ADDRESS: {
                unsigned char a[16];
                if (inet_pton(AF_INET, value, a) != 1 && inet_pton(AF_INET6, value, a) != 1) {
                        snprintf(err, errlen, "%s (%s) must be an IPv4 or IPv6 address, got '%s'", k->name, where, value);
                        return -EINVAL;
                }
        }
                /* fall through */
        case KEY_STRING: {
                char *dup;
                if (strlen(value) > 4096 || !utf8_is_valid(value, strlen(value))) {
                        snprintf(err, errlen, "%s (%s) must be valid UTF-8 of at most 4096 bytes", k->name, where);
                        return -EINVAL;
                }
                dup = strdup(value);
                if (!dup)
                        return -ENOMEM;
                if (k->offset == C(api_keys)) {
                        free(raw->api_keys);
                        raw->api_keys = dup;
                } else {
                        free(*(char **)field);
                        *(char **)field = dup;
                }
                return 0;
        }
        }
        return -EINVAL;
}

static int load_file(struct config *c, struct raw *raw, const char *path, char *err, size_t errlen) {
        struct buf b;
        unsigned lineno = 0;
        int r = read_file(path, 1 << 20, &b);

        if (r < 0) {
                snprintf(err, errlen, "cannot read the config file %s: %s", path, strerror(-r));
                return -EINVAL;
        }
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n'), *eq, *key, *val, where[4200];
                const struct key *k;
                if (nl)
                        *nl = 0;
                lineno++;
                key = line + strspn(line, " \t");
                line = nl ? nl + 1 : NULL;
                if (!*key || *key == '#')
                        continue;
                eq = strchr(key, '=');
                snprintf(where, sizeof where, "%s line %u", path, lineno);
                if (!eq) {
                        snprintf(err, errlen, "%s: expected KEY=value", where);
                        r = -EINVAL;
                        break;
                }
                *eq = 0;
                val = eq + 1;
                for (char *e = eq; e > key && (e[-1] == ' ' || e[-1] == '\t');)
                        *--e = 0;
                val += strspn(val, " \t");
                for (size_t l = strlen(val); l > 0 && (val[l - 1] == ' ' || val[l - 1] == '\t' || val[l - 1] == '\r');)
                        val[--l] = 0;
                k = find_key(key);
                if (!k && strncmp(key, "POLICY_", 7) == 0) {
                        if ((r = add_policy_def(c, key, val, where, err, errlen)) < 0)
                                break;
                        continue;
                }
                if (!k) {
                        snprintf(err, errlen, "%s: unknown key '%s'", where, key);
                        r = -EINVAL;
                        break;
                }
                r = set_value(c, raw, k, val, where, err, errlen);
                if (r < 0)
                        break;
                c->source[k - keys] = SOURCE_FILE;
        }
        buf_done(&b);
        return r;
}

/* The options of a keys file's line after its key, each a word:
 * name=value for the numbers, the bare name for the flags. Ranges as
 * RATE_LIMIT_MAX and RATE_LIMIT_WINDOW. */
static const struct key_option {
        const char *name;
        size_t offset;
        uint64_t min, max;
} key_options[] = {
        { "max", offsetof(struct api_key_opts, max), 0, 100000000 },
        { "window", offsetof(struct api_key_opts, window_ms), 1, 86400000 },
        { "user-max", offsetof(struct api_key_opts, user_max), 0, 100000000 },
        { "user-window", offsetof(struct api_key_opts, user_window_ms), 1, 86400000 },
};

#define KEY_OPTIONS_HELP "max=N, window=MS, trusted, user-max=N, user-window=MS"

/* opts from the words of s[0..n) (the line after its key). where names
 * the line; an error quotes the option, never the key. */
static int parse_key_options(const char *s, size_t n, struct api_key_opts *opts, const char *where, char *err,
                             size_t errlen) {
        bool user_set = false;

        while (n > 0) {
                size_t w, nl;
                const char *eq;
                const struct key_option *o = NULL;
                char value[32];

                while (n > 0 && (*s == ' ' || *s == '\t'))
                        s++, n--;
                for (w = 0; w < n && s[w] != ' ' && s[w] != '\t'; w++)
                        ;
                if (w == 0)
                        break;
                if (w == strlen("trusted") && strncmp(s, "trusted", w) == 0) {
                        opts->trusted = true;
                        s += w, n -= w;
                        continue;
                }
                eq = memchr(s, '=', w);
                nl = eq ? (size_t)(eq - s) : w;
                for (size_t i = 0; i < ELEMENTSOF(key_options); i++)
                        if (strlen(key_options[i].name) == nl && strncmp(s, key_options[i].name, nl) == 0)
                                o = &key_options[i];
                if (!o || !eq) {
                        snprintf(err, errlen, "%s: unknown key option '%.*s': allowed are " KEY_OPTIONS_HELP, where,
                                 (int)(w > 40 ? 40 : w), s);
                        return -EINVAL;
                }
                if (w - nl - 1 < sizeof value)
                        snprintf(value, sizeof value, "%.*s", (int)(w - nl - 1), eq + 1);
                if (w - nl - 1 >= sizeof value ||
                    parse_u64(value, o->min, o->max, (uint64_t *)(void *)((char *)opts + o->offset)) < 0) {
                        snprintf(err, errlen, "%s: %s must be a whole number from %llu to %llu, got '%.*s'", where,
                                 o->name, (unsigned long long)o->min, (unsigned long long)o->max,
                                 (int)(w - nl - 1 > 24 ? 24 : w - nl - 1), eq + 1);
                        return -EINVAL;
                }
                if (strncmp(o->name, "user-", 5) == 0)
                        user_set = true;
                s += w, n -= w;
        }
        if (user_set && !opts->trusted) {
                snprintf(err, errlen, "%s: user-max and user-window are for a trusted key: add 'trusted'", where);
                return -EINVAL;
        }
        return 0;
}

/* One key, with options when it comes from a keys file's line. */
static int add_key(struct config *c, const char *s, size_t n, bool options, const char *where, char *err,
                   size_t errlen) {
        struct api_key_opts opts = { .max = c->rate_limit_max,
                                     .window_ms = c->rate_limit_window,
                                     .user_max = c->rate_limit_max,
                                     .user_window_ms = c->rate_limit_window };
        struct api_key_opts *vo;
        struct sha256 h;
        unsigned char digest[32];
        char hex[65];
        size_t kn;
        char **v;
        int r;

        while (n > 0 && (*s == ' ' || *s == '\t'))
                s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                n--;
        if (n == 0)
                return 0;
        kn = n;
        if (options) {
                for (kn = 0; kn < n && s[kn] != ' ' && s[kn] != '\t'; kn++)
                        ;
                if ((r = parse_key_options(s + kn, n - kn, &opts, where, err, errlen)) < 0)
                        return r;
        }
        for (size_t i = 0; i < kn; i++)
                if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
                        snprintf(err, errlen, "%s: API keys must be printable ASCII without spaces", where);
                        return -EINVAL;
                }
        if (kn < 16) {
                snprintf(err, errlen, "%s: API keys must be at least 16 characters", where);
                return -EINVAL;
        }
        sha256_init(&h);
        sha256_update(&h, s, kn);
        sha256_final(&h, digest);
        sha256_hex(digest, hex);
        snprintf(opts.label, sizeof opts.label, "%.8s", hex);
        explicit_bzero(&h, sizeof h);
        v = realloc(c->api_keys, (c->n_api_keys + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        c->api_keys = v;
        vo = realloc(c->api_key_opts, (c->n_api_keys + 1) * sizeof *vo);
        if (!vo)
                return -ENOMEM;
        c->api_key_opts = vo;
        if (!(v[c->n_api_keys] = strndup(s, kn)))
                return -ENOMEM;
        vo[c->n_api_keys] = opts;
        c->n_api_keys++;
        return 0;
}

static int load_api_keys(struct config *c, struct raw *raw, char *err, size_t errlen) {
        int r;
        if (raw->api_keys)
                for (const char *p = raw->api_keys; *p;) {
                        size_t l = strcspn(p, ",");
                        if ((r = add_key(c, p, l, false, "API_KEYS", err, errlen)) < 0)
                                return r;
                        p += l;
                        if (*p == ',')
                                p++;
                }
        if (c->api_keys_file && *c->api_keys_file) {
                struct buf b;
                unsigned line = 0;
                char where[64];
                r = read_file(c->api_keys_file, 1 << 20, &b);
                if (r < 0) {
                        snprintf(err, errlen, "API_KEYS_FILE: cannot read %s: %s", c->api_keys_file, strerror(-r));
                        return -EINVAL;
                }
                for (const char *p = b.data; p && *p;) {
                        size_t l = strcspn(p, "\n");
                        line++;
                        snprintf(where, sizeof where, "API_KEYS_FILE line %u", line);
                        if (*p != '#' && (r = add_key(c, p, l, true, where, err, errlen)) < 0) {
                                buf_done(&b);
                                return r;
                        }
                        p += l;
                        if (*p == '\n')
                                p++;
                }
                buf_done(&b);
        }
        return 0;
}

static void usage(FILE *f, const char *cmd) {
        char flag[64];
        fprintf(f, "usage: pyexec %s [--config FILE] [--print-config] [--KEY VALUE]...\n\n", cmd);
        if (strcmp(cmd, "worker") == 0)
                fprintf(f, "Runs the asynchronous submissions of QUEUE_URL (Redis) on this machine; its HTTP port\n"
                           "answers the health probes, /api/metrics and /api/stats only.\n\n");
        fprintf(f, "Each KEY is also read from the environment and the config file (KEY=value lines);\n"
                   "precedence: flag > environment > file > default.\n\n");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                flag_name(&keys[i], flag, sizeof flag);
                fprintf(f, "  --%-27s %-26s %s (default: %s)\n", flag, keys[i].name, keys[i].help,
                        keys[i].def[0] ? keys[i].def : "empty");
        }
        fprintf(f,
                "\n  --config FILE                 PYEXEC_CONFIG              the config file (KEY=value lines) "
                "(default: none)\n"
                "  --print-config                                           print the resolved configuration and exit\n"
                "  --print-default-config                                   print a config file with every key "
                "commented out at\n"
                "                                                           its default, and exit\n"
                "  --cold                                                   short for --execution-mode cold\n"
                "  --help                                                   print this help and exit\n"
                "\nPolicies beyond the built-in ones are defined as POLICY_<NAME>=spec (environment or file).\n"
                "\nExit status: 0 after a graceful shutdown (SIGTERM, SIGINT), --print-config,\n"
                "--print-default-config or --help;\n"
                "1 when the service cannot start; 2 for a bad option, value or config file.\n");
}

int config_load(struct config *c, int argc, char **argv, FILE *out, char *err, size_t errlen) {
        const char *cmd = argc > 0 && strcmp(argv[0], "worker") == 0 ? "worker" : "serve";
        struct raw raw = { 0 };
        const char *file = getenv("PYEXEC_CONFIG");
        bool print = false;
        int r = 0;

        *c = (struct config){ 0 };
        c->worker = argc > 0 && strcmp(argv[0], "worker") == 0;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                r = set_value(c, &raw, &keys[i], keys[i].def, "default", err, errlen);
                if (r < 0)
                        goto out;
        }
        /* The file first (it is the lowest source after the defaults), so
         * scan the flags for --config before anything else. */
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                        usage(out, cmd);
                        r = 2;
                        goto out;
                }
                /* The defaults alone: nothing of the file or the
                 * environment (the build generates the installed file
                 * with it). */
                if (strcmp(argv[i], "--print-default-config") == 0) {
                        config_print_default(out);
                        r = 3;
                        goto out;
                }
                if (strcmp(argv[i], "--config") == 0) {
                        if (i + 1 >= argc) {
                                snprintf(err, errlen, "--config needs a file");
                                r = -EINVAL;
                                goto out;
                        }
                        file = argv[++i];
                } else if (strncmp(argv[i], "--config=", 9) == 0)
                        file = argv[i] + 9;
        }
        if (file && *file) {
                c->config_file = strdup(file);
                if ((r = load_file(c, &raw, file, err, errlen)) < 0)
                        goto out;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *v = getenv(keys[i].name);
                char where[96];
                if (!v)
                        continue;
                snprintf(where, sizeof where, "environment variable %s", keys[i].name);
                if ((r = set_value(c, &raw, &keys[i], v, where, err, errlen)) < 0)
                        goto out;
                c->source[i] = SOURCE_ENV;
        }
        {
                extern char **environ;
                for (char **e = environ; e && *e; e++) {
                        const char *eq = strchr(*e, '=');
                        char key[64], where[96];
                        if (strncmp(*e, "POLICY_", 7) != 0 || !eq || (size_t)(eq - *e) >= sizeof key)
                                continue;
                        memcpy(key, *e, (size_t)(eq - *e));
                        key[eq - *e] = 0;
                        snprintf(where, sizeof where, "environment variable %s", key);
                        if ((r = add_policy_def(c, key, eq + 1, where, err, errlen)) < 0)
                                goto out;
                }
        }
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *value = NULL;
                char name[64], flag[80];
                const struct key *k = NULL;
                size_t nl;

                if (strcmp(arg, "--print-config") == 0) {
                        print = true;
                        continue;
                }
                if (strcmp(arg, "--config") == 0) {
                        i++;
                        continue;
                }
                if (strncmp(arg, "--config=", 9) == 0)
                        continue;
                if (strcmp(arg, "--cold") == 0) {
                        /* Short for --execution-mode cold. */
                        const struct key *km = find_key("EXECUTION_MODE");
                        if ((r = set_value(c, &raw, km, "cold", "--cold", err, errlen)) < 0)
                                goto out;
                        c->source[km - keys] = SOURCE_FLAG;
                        continue;
                }
                if (strncmp(arg, "--", 2) != 0) {
                        snprintf(err, errlen, "unexpected argument '%s' (see pyexec %s --help)", arg, cmd);
                        r = -EINVAL;
                        goto out;
                }
                nl = strcspn(arg + 2, "=");
                snprintf(name, sizeof name, "%.*s", (int)(nl < 63 ? nl : 63), arg + 2);
                for (size_t j = 0; j < ELEMENTSOF(keys); j++) {
                        flag_name(&keys[j], flag, sizeof flag);
                        if (strcmp(flag, name) == 0)
                                k = &keys[j];
                }
                if (!k) {
                        snprintf(err, errlen, "unknown option '--%s' (see pyexec %s --help)", name, cmd);
                        r = -EINVAL;
                        goto out;
                }
                if (arg[2 + nl] == '=')
                        value = arg + 3 + nl;
                else if (i + 1 < argc)
                        value = argv[++i];
                else {
                        snprintf(err, errlen, "option '--%s' needs a value", name);
                        r = -EINVAL;
                        goto out;
                }
                snprintf(flag, sizeof flag, "--%s", name);
                if ((r = set_value(c, &raw, k, value, flag, err, errlen)) < 0)
                        goto out;
                c->source[k - keys] = SOURCE_FLAG;
        }
        if ((r = load_api_keys(c, &raw, err, errlen)) < 0)
                goto out;
        if (c->python[0] != '/') {
                snprintf(err, errlen, "PYEXEC_PYTHON must be an absolute path under /usr, got '%s'", c->python);
                r = -EINVAL;
                goto out;
        }
        if (strcmp(c->execution_mode, "warm") == 0)
                c->warm = true;
        else if (strcmp(c->execution_mode, "cold") == 0)
                c->warm = false;
        else {
                snprintf(err, errlen, "EXECUTION_MODE must be warm or cold, got '%s'", c->execution_mode);
                r = -EINVAL;
                goto out;
        }
        if ((r = check_preimport(c->zygote_preimport, err, errlen)) < 0)
                goto out;
        if ((r = resolve_request_time_limit(c, err, errlen)) < 0)
                goto out;
        if ((r = resolve_queue(c, err, errlen)) < 0)
                goto out;
        if ((r = config_build_policies(c, err, errlen)) < 0)
                goto out;
        if (print) {
                config_print(c, out);
                r = 1;
        }
out:
        free(raw.api_keys);
        return r;
}

void config_done(struct config *c) {
        for (size_t i = 0; i < c->n_api_keys; i++) {
                explicit_bzero(c->api_keys[i], strlen(c->api_keys[i]));
                free(c->api_keys[i]);
        }
        free(c->api_keys);
        free(c->api_key_opts);
        free(c->bind);
        free(c->cors_origin);
        free(c->api_keys_file);
        free(c->python);
        free(c->jobs_file);
        free(c->config_file);
        free(c->execution_mode);
        free(c->policies);
        free(c->default_policy);
        free(c->zygote_preimport);
        free(c->queue_url);
        free(c->queue_url_shown);
        free(c->queue_workers);
        free(c->callback_allowed_hosts);
        if (c->webhook_secret) {
                explicit_bzero(c->webhook_secret, strlen(c->webhook_secret));
                free(c->webhook_secret);
        }
        for (size_t i = 0; c->policy_lines && i < c->policy_set.n; i++)
                free(c->policy_lines[i]);
        free(c->policy_lines);
        policy_set_done(&c->policy_set);
        for (size_t i = 0; i < c->n_policy_sources; i++)
                free(c->policy_sources[i]);
        free(c->policy_sources);
        *c = (struct config){ 0 };
}

void config_print(const struct config *c, FILE *f) {
        if (c->config_file)
                fprintf(f, "# config file: %s\n", c->config_file);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct key *k = &keys[i];
                const void *field = (const char *)c + k->offset;
                const char *src = source_names[c->source[i]];
                switch (k->type) {
                case KEY_U64:
                        fprintf(f, "%s=%llu", k->name, (unsigned long long)*(const uint64_t *)field);
                        break;
                case KEY_BOOL:
                        fprintf(f, "%s=%s", k->name, *(const bool *)field ? "true" : "false");
                        break;
                case KEY_CHOICE: {
                        enum pyexec_choice v = *(const enum pyexec_choice *)field;
                        fprintf(f, "%s=%s", k->name,
                                v == PYEXEC_CHOICE_AUTO ? "auto"
                                : v == PYEXEC_CHOICE_ON ? "true"
                                                        : "false");
                        break;
                }
                case KEY_LOGLEVEL:
                        fprintf(f, "%s=%s", k->name, log_level_to_string(*(const enum log_level *)field));
                        break;
                case KEY_ADDRESS:
                case KEY_STRING:
                        if (k->offset == C(api_keys))
                                fprintf(f, "%s=<%zu key%s, not shown>", k->name, c->n_api_keys,
                                        c->n_api_keys == 1 ? "" : "s");
                        else if (k->offset == C(webhook_secret))
                                fprintf(f, "%s=%s", k->name, c->webhook_secret[0] ? "<set, not shown>" : "");
                        else if (k->offset == C(queue_url))
                                fprintf(f, "%s=%s", k->name, c->queue_url_shown ? c->queue_url_shown : "");
                        else
                                fprintf(f, "%s=%s", k->name, *(char *const *)field ? *(char *const *)field : "");
                        break;
                }
                fprintf(f, "  # %s\n", src);
        }
        for (size_t i = 0; i < c->n_policy_sources; i++) {
                const char *name = c->policy_sources[i], *spec = strchr(name, '\t') + 1, *where = strchr(spec, '\t') + 1;
                fprintf(f, "POLICY_");
                for (const char *q = name; q < spec - 1; q++)
                        fputc(toupper((unsigned char)*q), f);
                fprintf(f, "=%.*s  # %s\n", (int)(where - spec - 1), spec, where);
        }
}

void config_print_default(FILE *f) {
        fprintf(f, "# The configuration of `pyexec serve` (pyexec " PYEXEC_VERSION "), read with --config FILE\n"
                   "# or $PYEXEC_CONFIG.\n"
                   "#\n"
                   "# One KEY=value per line; blank lines and lines starting with # are ignored. There are\n"
                   "# no comments after a value and no quoting. Every key is below, commented out, at its\n"
                   "# default: remove the '#' before a key and change its value to set it. The environment\n"
                   "# (KEY=value) and flags (--key value) override this file.\n"
                   "# `pyexec serve --config FILE --print-config` checks the file and prints the result.\n"
                   "# Every key in full: docs/configuration.md, pyexec(1). Written by\n"
                   "# `pyexec serve --print-default-config`.\n");
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const struct key *k = &keys[i];
                fprintf(f, "\n# %s", k->help);
                if (k->type == KEY_U64)
                        fprintf(f, " (%llu-%llu)", (unsigned long long)k->min, (unsigned long long)k->max);
                else if (k->type == KEY_BOOL)
                        fprintf(f, " (true or false)");
                else if (k->type == KEY_CHOICE)
                        fprintf(f, " (auto, true or false)");
                fprintf(f, "\n#%s=%s\n", k->name, k->def);
        }
        fprintf(f, "\n# Policies beyond the built-in ones, one POLICY_<NAME>=spec each; list <name> in POLICIES\n"
                   "# for requests to pick it (docs/configuration.md, \"Custom policies\"). For example:\n"
                   "#POLICY_DATA=base=education; allow=xml.etree, sqlite3; deny=pickle\n");
}
