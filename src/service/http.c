/* SPDX-License-Identifier: MIT */
/*
 * http: `pyexec serve`, the HTTP service, on libmicrohttpd. About 1,000
 * lines: the routes, the request lifecycle and the start and shutdown that
 * own them; the request contract is api.c, the queue executor.c, the rest
 * config.c, metrics.c and ratelimit.c.
 *
 * Threads: libmicrohttpd's epoll thread does all the HTTP (parsing, reading
 * bodies, writing responses) and answers the cheap routes itself. An
 * execution request is validated there, charged to the rate limit, and
 * handed to the executor (executor.c); its connection is suspended. A worker
 * runs it (api_execute) and resumes the connection with the response. So
 * slow or hostile clients cost a connection slot, never a worker, and
 * executions never block the event loop.
 *
 * Before a worker runs a queued request it peeks at the client's socket: a
 * client that went away is dropped without running. It peeks again before
 * each test case of a graded request, and does not run the remaining cases
 * of a client that left. The cases of one request together take at most
 * its total time limit (REQUEST_TIME_LIMIT, or less with totalTimeout), and
 * each case counts once against the rate limit, so one request cannot hold
 * a slot much longer, or run more often, than separate requests could.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting connections, refuse new
 * executions with 503, finish every admitted one, wait for their responses
 * to be sent, then exit 0.
 *
 * Under systemd (Type=notify, notify.c) the service reports READY=1 when
 * the self-test passes, which is after the listening socket accepts, so
 * `systemctl start` returns when /health/ready answers 200; STOPPING=1 when
 * the shutdown begins; and a STATUS= line at each step between.
 */
#include "http.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "check.h"
#include "executor.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "openapi-json.h"
#include "playground.h"
#include "procmem.h"
#include "ratelimit.h"
#include "result.h"
#include "submissions.h"

/*
 * libmicrohttpd, and the TLS stack it is linked with (gnutls and eight more
 * libraries), is loaded by `pyexec serve` alone: linked into the binary, it
 * cost every `pyexec run` about 3 ms of dynamic loading. The table holds the
 * few entry points used here, with their real prototypes.
 */
static struct {
        void *handle;
        typeof(MHD_start_daemon) *start_daemon;
        typeof(MHD_stop_daemon) *stop_daemon;
        typeof(MHD_quiesce_daemon) *quiesce_daemon;
        typeof(MHD_create_response_from_buffer) *create_response_from_buffer;
        typeof(MHD_add_response_header) *add_response_header;
        typeof(MHD_queue_response) *queue_response;
        typeof(MHD_destroy_response) *destroy_response;
        typeof(MHD_lookup_connection_value) *lookup_connection_value;
        typeof(MHD_get_connection_info) *get_connection_info;
        typeof(MHD_suspend_connection) *suspend_connection;
        typeof(MHD_resume_connection) *resume_connection;
        typeof(MHD_create_response_from_callback) *create_response_from_callback;
} mhd;

#define MHD_start_daemon mhd.start_daemon
#define MHD_stop_daemon mhd.stop_daemon
#define MHD_quiesce_daemon mhd.quiesce_daemon
#define MHD_create_response_from_buffer mhd.create_response_from_buffer
#define MHD_add_response_header mhd.add_response_header
#define MHD_queue_response mhd.queue_response
#define MHD_destroy_response mhd.destroy_response
#define MHD_lookup_connection_value mhd.lookup_connection_value
#define MHD_get_connection_info mhd.get_connection_info
#define MHD_suspend_connection mhd.suspend_connection
#define MHD_resume_connection mhd.resume_connection
#define MHD_create_response_from_callback mhd.create_response_from_callback

static int mhd_load(char *err, size_t errlen) {
        static const struct dl_sym syms[] = {
                DL_SYM(mhd, MHD_start_daemon, start_daemon),
                DL_SYM(mhd, MHD_stop_daemon, stop_daemon),
                DL_SYM(mhd, MHD_quiesce_daemon, quiesce_daemon),
                DL_SYM(mhd, MHD_create_response_from_buffer, create_response_from_buffer),
                DL_SYM(mhd, MHD_add_response_header, add_response_header),
                DL_SYM(mhd, MHD_queue_response, queue_response),
                DL_SYM(mhd, MHD_destroy_response, destroy_response),
                DL_SYM(mhd, MHD_lookup_connection_value, lookup_connection_value),
                DL_SYM(mhd, MHD_get_connection_info, get_connection_info),
                DL_SYM(mhd, MHD_suspend_connection, suspend_connection),
                DL_SYM(mhd, MHD_resume_connection, resume_connection),
                DL_SYM(mhd, MHD_create_response_from_callback, create_response_from_callback),
        };
        int r = dl_load("libmicrohttpd.so.12", "libmicrohttpd12", syms, ELEMENTSOF(syms), &mhd, &mhd.handle, err,
                        errlen);
        if (r == -ENOENT && !strstr(err, "lacks"))
                r = dl_load("libmicrohttpd.so", "libmicrohttpd12", syms, ELEMENTSOF(syms), &mhd, &mhd.handle, err,
                            errlen);
        return r;
}

#define REQUEST_ID_MAX 64
#define SELFTEST_RETRY_S 5

struct server {
        const struct config *cfg;
        struct MHD_Daemon *daemon;
        struct pyexec_sandbox *sb;
        struct executor *ex;
        struct metrics *metrics;
        struct ratelimit *rl;
        atomic_bool ready;    /* the start-up self-test passed */
        atomic_bool draining; /* shutting down */
        atomic_long in_flight;
        pthread_mutex_t env_lock;
        json_t *environment; /* the self-test's check report */
        pthread_t selftest_thread;
        atomic_bool stop_selftest;
        struct job_set jobs;
        struct submissions *subs;
        bool playground; /* /playground is served (PLAYGROUND, BIND) */
        bool loopback;   /* BIND is a loopback address: web pages' requests are checked (origin_allowed) */
};

enum req_state {
        REQ_NEW,
        REQ_RECEIVING,
        REQ_QUEUED,
        REQ_DONE,      /* response ready (set by the worker) */
        REQ_DROPPED,   /* client gone before its turn */
        REQ_REFUSED,   /* not admitted: the refusal is answered after resume */
        REQ_WAITING,   /* submissions accepted, waiting for their results (?wait=) */
        REQ_WAITED,    /* done waiting: answered after resume */
        REQ_STREAMING, /* running, its output sent as it arrives (Accept: text/event-stream) */
        REQ_ANSWERED,
};

struct request {
        struct server *s;
        struct MHD_Connection *conn;
        enum route route;
        const char *method;
        char path[128];
        char id[REQUEST_ID_MAX + 1];
        char client[96];
        uint64_t t0;
        struct buf body;
        bool too_large;
        uint64_t discarded;
        _Atomic int state;
        /* execution */
        struct executor_task work;
        struct api_request req;
        json_t *response;
        struct api_outcome outcome;
        double queue_wait_s;
        enum submit_result refusal;
        uint64_t retry_ms;
        /* jobs */
        const struct job *job;
        json_t *job_doc;
        struct api_error job_refused; /* .http set: refused on the worker, nothing ran */
        /* asynchronous submissions */
        struct submissions_accepted acc;
        bool replayed;
        int key; /* the API key's index; -1: none */
        uint64_t rl_units;
        struct ratelimit_state rl;     /* the quota the RateLimit-* headers report */
        bool rl_counted;               /* rl is set: the request went through the rate limit */
        struct api_error user_refused; /* .http set: userId refused (admit_submission) */
        /* streamed execution (stream_*): the worker appends events to sse,
         * libmicrohttpd's thread sends them; lock guards the fields below. */
        bool stream;
        pthread_mutex_t lock;
        struct buf sse;   /* events not yet sent */
        int sse_fd;       /* a duplicate of the client's socket: the run's client_fd */
        bool suspended;   /* suspended until the worker has more (or the end) */
        bool sse_done;    /* the result event is in sse */
        bool running;     /* a worker has the request */
        bool gone;        /* the connection ended first: the worker frees the request */
        char carry[3][4]; /* per stream, the worker's alone: a UTF-8 character cut by a chunk's end */
        size_t carry_n[3];
};

/* ---- helpers ------------------------------------------------------------ */

static void add_common_headers(struct request *rq, struct MHD_Response *resp) {
        const struct config *cfg = rq->s->cfg;
        MHD_add_response_header(resp, "X-Request-Id", rq->id);
        /* The API's description changes only with the binary: caches may
         * keep it and revalidate with its ETag. Nothing else is cached. */
        MHD_add_response_header(resp, "Cache-Control", rq->route == ROUTE_OPENAPI ? "no-cache" : "no-store");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (cfg->cors_origin[0]) {
                MHD_add_response_header(resp, "Access-Control-Allow-Origin", cfg->cors_origin);
                MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                        "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                                        "RateLimit-Reset, Location, Idempotent-Replayed, ETag");
                MHD_add_response_header(resp, "Vary", "Origin");
        }
}

static void log_request(struct request *rq, unsigned code, json_t *extra) {
        json_t *f = json_pack("{s:s,s:s,s:s,s:i,s:f,s:s}", "requestId", rq->id, "method", rq->method, "path", rq->path,
                              "code", (int)code, "ms", (double)(now_ns() - rq->t0) / 1e6, "client", rq->client);
        if (f && extra)
                json_object_update(f, extra);
        json_decref(extra);
        log_event(code >= 500 ? LOG_WARN : LOG_INFO, "request", f);
}

/* The methods a route takes: POST for runs, both for the submissions'
 * collection (POST to submit, GET to list), GET (and HEAD) otherwise. */
static bool route_takes_post(enum route r) {
        return r == ROUTE_EXECUTE || r == ROUTE_JOB_RUN || r == ROUTE_SUBMISSIONS;
}

static bool route_takes_get(enum route r) {
        return !(r == ROUTE_EXECUTE || r == ROUTE_JOB_RUN);
}

static const char *route_allow(enum route r) {
        return route_takes_post(r) ? (route_takes_get(r) ? "GET, HEAD, POST, OPTIONS" : "POST, OPTIONS")
                                   : "GET, HEAD, OPTIONS";
}

/* The quota a counted request went through, as the IETF draft "RateLimit
 * header fields for HTTP" has them: its limit, the units left in its window,
 * and the seconds (rounded up) until the window ends. */
static void add_rate_limit_headers(struct request *rq, struct MHD_Response *resp) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)rq->rl.limit);
        MHD_add_response_header(resp, "RateLimit-Limit", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)rq->rl.remaining);
        MHD_add_response_header(resp, "RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)((rq->rl.reset_ms + 999) / 1000));
        MHD_add_response_header(resp, "RateLimit-Reset", v);
}

/* Queue a response; body is copied. retry_after_s > 0 adds Retry-After. */
static enum MHD_Result respond(struct request *rq, unsigned code, const char *type, const char *body, size_t len,
                               unsigned retry_after_s, json_t *log_extra) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result r;
        char ra[24];

        if (!resp) {
                json_decref(log_extra);
                return MHD_NO;
        }
        if (type)
                MHD_add_response_header(resp, "Content-Type", type);
        if (retry_after_s) {
                snprintf(ra, sizeof ra, "%u", retry_after_s);
                MHD_add_response_header(resp, "Retry-After", ra);
        }
        if (code == 405)
                MHD_add_response_header(resp, "Allow", route_allow(rq->route));
        if (rq->replayed)
                MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        if (code == 202 && rq->acc.n == 1 && !rq->acc.batch) {
                char loc[64 + QUEUE_ID_LEN];
                snprintf(loc, sizeof loc, "/api/submissions/%s", rq->acc.ids[0]);
                MHD_add_response_header(resp, "Location", loc);
        }
        if (code == 401)
                MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"pyexec\"");
        if (rq->route == ROUTE_OPENAPI && (code == 200 || code == 304))
                MHD_add_response_header(resp, "ETag", openapi_json_etag);
        if (rq->rl_counted && rq->rl.limit)
                add_rate_limit_headers(rq, resp);
        add_common_headers(rq, resp);
        r = MHD_queue_response(rq->conn, code, resp);
        MHD_destroy_response(resp);
        metrics_http(rq->s->metrics, rq->route, code);
        log_request(rq, code, log_extra);
        atomic_store(&rq->state, REQ_ANSWERED);
        return r;
}

static enum MHD_Result respond_json(struct request *rq, unsigned code, json_t *o, unsigned retry_after_s,
                                    json_t *log_extra) {
        char *s = o ? json_dumps(o, RESULT_JSON_FLAGS) : NULL;
        enum MHD_Result r;
        json_decref(o);
        if (!s) {
                json_decref(log_extra);
                return MHD_NO;
        }
        r = respond(rq, code, "application/json", s, strlen(s), retry_after_s, log_extra);
        free(s);
        return r;
}

static enum MHD_Result respond_error(struct request *rq, unsigned code, const char *ecode, const char *field,
                                     unsigned retry_after_s, const char *fmt, ...) _printf_(6, 7);

static enum MHD_Result respond_error(struct request *rq, unsigned code, const char *ecode, const char *field,
                                     unsigned retry_after_s, const char *fmt, ...) {
        struct api_error e;
        va_list ap;
        e.http = code;
        e.code = ecode;
        snprintf(e.field, sizeof e.field, "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof e.message, fmt, ap);
        va_end(ap);
        return respond_json(rq, code, api_error_json(&e), retry_after_s,
                            json_pack("{s:s}", "error", e.message));
}

static unsigned ms_to_s(uint64_t ms) {
        return (unsigned)((ms + 999) / 1000);
}

/* X-Request-Id from the client: letters, digits and ._:- only, at most 64;
 * otherwise (or when absent) a fresh one. */
static void request_id(struct MHD_Connection *conn, char out[REQUEST_ID_MAX + 1]) {
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        size_t n = 0;
        if (h)
                for (const char *p = h; *p && n < REQUEST_ID_MAX; p++)
                        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                            *p == '.' || *p == '_' || *p == ':' || *p == '-')
                                out[n++] = *p;
        out[n] = 0;
        if (n == 0) {
                char id[RESULT_ID_LEN + 1];
                result_new_id(id);
                snprintf(out, REQUEST_ID_MAX + 1, "%s", id);
        }
}

static void client_address(struct MHD_Connection *conn, char *out, size_t n) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        snprintf(out, n, "unknown");
        if (sa && sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)n);
        else if (sa && sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)n);
}

/* Compare without a data-dependent early exit, so the time taken does not
 * tell how much of a guessed key was right. */
static bool equal_ct(const char *a, size_t an, const char *b, size_t bn) {
        unsigned char d = an != bn;
        for (size_t i = 0; i < bn; i++)
                d |= (unsigned char)(a[i % (an ? an : 1)] ^ b[i]);
        return d == 0 && an == bn;
}

/* -1: no or wrong key; else the index of the matching key. */
static int authenticate(struct server *s, struct MHD_Connection *conn) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
        int found = -1;
        size_t kn;

        if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
                key = auth + 7;
        if (!key)
                return -1;
        kn = strlen(key);
        for (size_t i = 0; i < s->cfg->n_api_keys; i++) {
                const char *k = s->cfg->api_keys[i];
                if (equal_ct(key, kn, k, strlen(k)))
                        found = (int)i;
        }
        return found;
}

static enum route route_of(const char *url) {
        static const struct {
                const char *path;
                enum route route;
        } table[] = {
                { "/api/execute", ROUTE_EXECUTE },   { "/health", ROUTE_HEALTH },
                { "/health/live", ROUTE_HEALTH_LIVE }, { "/health/ready", ROUTE_HEALTH_READY },
                { "/api/metrics", ROUTE_METRICS },   { "/api/stats", ROUTE_STATS },
                { "/api/environment", ROUTE_ENVIRONMENT },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(url, table[i].path) == 0)
                        return table[i].route;
        if (strcmp(url, "/api/openapi.json") == 0)
                return ROUTE_OPENAPI;
        if (strcmp(url, "/api/jobs") == 0)
                return ROUTE_JOBS;
        if (strncmp(url, "/api/jobs/", 10) == 0 && url[10] && !strchr(url + 10, '/'))
                return ROUTE_JOB_RUN;
        if (strcmp(url, "/api/submissions") == 0)
                return ROUTE_SUBMISSIONS;
        if (strcmp(url, "/playground") == 0 || strncmp(url, "/playground/", 12) == 0)
                return ROUTE_PLAYGROUND;
        if (strncmp(url, "/api/submissions/", 17) == 0 && url[17] && !strchr(url + 17, '/'))
                return ROUTE_SUBMISSION;
        return ROUTE_OTHER;
}

static bool content_type_is_json(struct MHD_Connection *conn) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        size_t n;
        if (!ct)
                return false;
        n = strcspn(ct, ";");
        while (n > 0 && ct[n - 1] == ' ')
                n--;
        return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* ---- cheap routes -------------------------------------------------------- */

static void gauges(struct server *s, struct metrics_gauges *g) {
        struct executor_state st;
        executor_get_state(s->ex, &st);
        *g = (struct metrics_gauges){
                .queue_depth = st.queued,
                .queue_capacity = st.queue_size,
                .active = st.active,
                .slots = st.slots,
                .ready = atomic_load(&s->ready) && !st.breaker_open && !atomic_load(&s->draining),
                .breaker_open = st.breaker_open,
        };
        {
                struct pyexec_warm_stats ws;
                if (pyexec_sandbox_warm_stats(s->sb, &ws) == 0) {
                        g->warm = true;
                        g->warm_ready = ws.ready;
                        g->warm_sandboxes = ws.sandboxes;
                        g->warm_taken_ready = ws.taken_ready;
                        g->warm_on_demand = ws.built_on_demand;
                        g->warm_failures = ws.failures;
                        g->zygotes = ws.zygotes;
                        g->zygote_deaths = ws.zygote_deaths;
                        g->netns_made = ws.netns_made;
                        g->netns_reused = ws.netns_reused;
                        g->zygote_pid = ws.zygote_pid;
                        g->zygote_huge_pages = ws.zygote_huge_pages;
                        g->pool_target = ws.pool_target;
                        g->let_go = ws.let_go;
                        g->huge_pages = ws.huge_pages;
                        g->prefault = ws.prefault;
                        g->huge_pages_why = ws.huge_pages_why;
                        g->cow_fault_ns = ws.cow_fault_ns;
                        g->mem_huge_reserved = ws.huge_reserved_bytes;
                }
                struct proc_memory pm;
                if (proc_memory_tree(getpid(), &pm) == 0) {
                        g->have_memory = true;
                        g->mem_processes = pm.processes;
                        g->mem_unreadable = pm.unreadable;
                        g->mem_pss = pm.pss;
                        g->mem_hugetlb = pm.hugetlb;
                }
        }
}

static enum MHD_Result respond_reply(struct request *rq, struct submissions_reply *r);

/* ---- the playground ------------------------------------------------------ */

/*
 * The playground's page runs in the browser of whoever opens it, with the
 * service's origin: its files say exactly what they may load. No inline
 * script or style, no eval, nothing from another origin; images only from
 * the page's own data: URLs (the plots of a result); fetch() only to the
 * service itself; never inside another site's frame (clickjacking).
 */
static const char playground_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static bool addr_is_loopback(const struct sockaddr_storage *addr) {
        if (addr->ss_family == AF_INET) {
                const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)addr;
                return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
        }
        if (addr->ss_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
                return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
        }
        return false;
}

/* On when PLAYGROUND=true, or auto and the service listens on a loopback
 * address: a page that runs code is for the machine's own user unless the
 * operator says otherwise. */
static bool playground_wanted(const struct config *cfg, const struct sockaddr_storage *addr) {
        if (cfg->playground != PYEXEC_CHOICE_AUTO)
                return cfg->playground == PYEXEC_CHOICE_ON;
        return addr_is_loopback(addr);
}

/*
 * A service on a loopback address serves the machine's own users, yet any
 * web page one of them opens can aim requests at it: across origins (the
 * browser sends them, only their answers are hidden without CORS) or, by
 * DNS rebinding, as if from the same origin. Browsers name the page in
 * Origin; programs, proxies and load balancers send none. So on loopback a
 * request whose Origin is not itself on loopback, nor CORS_ORIGIN, is
 * refused before anything runs.
 */
static bool origin_is_loopback(const char *origin) {
        char host[64];
        const char *p = origin, *end;
        struct in_addr a4;

        if (strncmp(p, "http://", 7) == 0)
                p += 7;
        else if (strncmp(p, "https://", 8) == 0)
                p += 8;
        else
                return false; /* "null" (a file, a sandboxed frame) included */
        end = *p == '[' ? strchr(p, ']') : p + strcspn(p, ":/");
        if (!end)
                return false;
        if (*p == '[')
                return (size_t)(end - p) == 4 && strncmp(p, "[::1", 4) == 0;
        if ((size_t)(end - p) >= sizeof host)
                return false;
        memcpy(host, p, (size_t)(end - p));
        host[end - p] = 0;
        if (strcasecmp(host, "localhost") == 0)
                return true;
        return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static bool origin_allowed(const struct server *s, struct MHD_Connection *conn, const char **ret_origin) {
        const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");

        *ret_origin = origin;
        if (!s->loopback || !origin)
                return true;
        if (s->cfg->cors_origin[0] && strcmp(origin, s->cfg->cors_origin) == 0)
                return true;
        return origin_is_loopback(origin);
}

/* What the page needs to know to build its form: the policies a request
 * may pick, the default one, and whether it must ask for an API key. */
static json_t *playground_config(const struct config *cfg) {
        json_t *o = json_pack("{s:[],s:s?,s:b}", "policies", "defaultPolicy", cfg->default_policy, "apiKeyRequired",
                              cfg->n_api_keys > 0);
        json_t *list = o ? json_object_get(o, "policies") : NULL;
        const char *p = cfg->policies ? cfg->policies : "";

        while (list && *p) {
                size_t n = strcspn(p, ",");
                size_t b = 0, e = n;
                while (b < e && p[b] == ' ')
                        b++;
                while (e > b && p[e - 1] == ' ')
                        e--;
                if (e > b)
                        json_array_append_new(list, json_stringn(p + b, e - b));
                p += n + (p[n] == ',');
        }
        return o;
}

static enum MHD_Result respond_playground(struct request *rq) {
        const struct playground_asset *a;
        struct MHD_Response *resp;
        enum MHD_Result r;

        if (!playground_built())
                return respond_error(rq, 404, "not_found", NULL, 0,
                                     "this build of pyexec has no playground: it was built with -Dplayground=disabled, "
                                     "or without npm and esbuild");
        if (!rq->s->playground && rq->s->cfg->playground == PYEXEC_CHOICE_OFF)
                return respond_error(rq, 404, "not_found", NULL, 0, "the playground is off (PLAYGROUND=false)");
        if (!rq->s->playground)
                return respond_error(rq, 404, "not_found", NULL, 0,
                                     "the playground is off because the service listens on %s, not a loopback "
                                     "address; set PLAYGROUND=true to serve it",
                                     rq->s->cfg->bind);
        if (strcmp(rq->path, "/playground/config.json") == 0)
                return respond_json(rq, 200, playground_config(rq->s->cfg), 0, NULL);
        a = playground_find(rq->path);
        if (!a)
                return respond_error(rq, 404, "not_found", NULL, 0, "no such file of the playground: %s", rq->path);
        resp = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", a->content_type);
        MHD_add_response_header(resp, "Content-Security-Policy", playground_csp);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
        add_common_headers(rq, resp);
        r = MHD_queue_response(rq->conn, 200, resp);
        MHD_destroy_response(resp);
        metrics_http(rq->s->metrics, rq->route, 200);
        log_request(rq, 200, NULL);
        atomic_store(&rq->state, REQ_ANSWERED);
        return r;
}

static enum MHD_Result handle_get(struct request *rq) {
        struct server *s = rq->s;
        struct metrics_gauges g;
        struct executor_state st;

        switch (rq->route) {
        case ROUTE_PLAYGROUND:
                return respond_playground(rq);
        case ROUTE_HEALTH_LIVE:
                return respond_json(rq, 200, json_pack("{s:s}", "status", "alive"), 0, NULL);
        case ROUTE_HEALTH:
        case ROUTE_HEALTH_READY: {
                const char *reason = NULL, *queue_why;
                _cleanup_free_ char *why = NULL;
                executor_get_state(s->ex, &st);
                if (atomic_load(&s->draining))
                        reason = "the service is shutting down";
                else if (!atomic_load(&s->ready)) {
                        /* With what the last check found, so that a probe's
                         * log says what to do. */
                        json_t *p;
                        reason = "the sandbox self-test has not passed yet";
                        pthread_mutex_lock(&s->env_lock);
                        p = json_array_get(json_object_get(s->environment, "problems"), 0);
                        if (json_is_string(p))
                                why = strdup_printf("%s: %s", reason, json_string_value(p));
                        pthread_mutex_unlock(&s->env_lock);
                        if (why)
                                reason = why;
                } else if (st.breaker_open)
                        reason = "sandboxes are failing to start (circuit breaker open)";
                /* The queue of asynchronous submissions is a service of
                 * its own: while it cannot be reached, submissions are
                 * refused (503) but /api/execute still runs, so the
                 * instance stays ready and says so. */
                queue_why = s->subs ? submissions_unready(s->subs) : NULL;
                if (rq->route == ROUTE_HEALTH) {
                        json_t *o = json_pack("{s:s,s:s,s:f,s:b}", "status", reason || queue_why ? "degraded" : "ok",
                                              "version", PYEXEC_VERSION, "uptimeSeconds",
                                              metrics_uptime_seconds(s->metrics), "ready", reason == NULL);
                        if (o && (reason || queue_why))
                                json_object_set_new(o, "reason", json_string(reason ? reason : queue_why));
                        if (o && queue_why)
                                json_object_set_new(o, "submissions", json_string(queue_why));
                        return respond_json(rq, 200, o, 0, NULL);
                }
                if (reason)
                        return respond_json(rq, 503, json_pack("{s:s,s:s}", "status", "not_ready", "reason", reason),
                                            st.breaker_retry_ms ? ms_to_s(st.breaker_retry_ms) : 1, NULL);
                return respond_json(rq, 200, json_pack("{s:s,s:s*}", "status", "ready", "submissions", queue_why), 0,
                                    NULL);
        }
        case ROUTE_METRICS: {
                struct buf b;
                enum MHD_Result r;
                if (!s->cfg->metrics_enabled)
                        return respond_error(rq, 404, "not_found", NULL, 0, "metrics are disabled (METRICS_ENABLED=false)");
                gauges(s, &g);
                buf_init(&b, 1 << 20);
                metrics_render(s->metrics, &g, &b);
                if (s->subs)
                        submissions_render_metrics(s->subs, &b);
                r = respond(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len, 0, NULL);
                buf_done(&b);
                return r;
        }
        case ROUTE_STATS: {
                json_t *o;
                gauges(s, &g);
                o = metrics_stats(s->metrics, &g);
                if (o && s->subs)
                        json_object_set_new(o, "submissions", submissions_stats_json(s->subs));
                return respond_json(rq, 200, o, 0, NULL);
        }
        case ROUTE_ENVIRONMENT: {
                json_t *env;
                pthread_mutex_lock(&s->env_lock);
                env = s->environment ? json_deep_copy(s->environment) : NULL;
                pthread_mutex_unlock(&s->env_lock);
                if (!env)
                        return respond_error(rq, 503, "not_ready", NULL, SELFTEST_RETRY_S,
                                             "the environment check has not finished yet");
                return respond_json(rq, 200, env, 0, NULL);
        }
        case ROUTE_JOBS:
                return respond_json(rq, 200, jobs_describe(&s->jobs), 0, NULL);
        case ROUTE_OPENAPI: {
                const char *inm = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "If-None-Match");
                if (inm && (strstr(inm, openapi_json_etag) || strcmp(inm, "*") == 0))
                        return respond(rq, 304, NULL, "", 0, 0, NULL);
                return respond(rq, 200, "application/json", (const char *)openapi_json, openapi_json_len, 0, NULL);
        }
        case ROUTE_SUBMISSION: {
                struct submissions_reply r = { 0 };
                submissions_get(s->subs, rq->path + strlen("/api/submissions/"), &r);
                return respond_reply(rq, &r);
        }
        case ROUTE_SUBMISSIONS: {
                struct submissions_reply r = { 0 };
                const char *ids = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "ids");
                submissions_get_many(s->subs, ids ? ids : "", &r);
                return respond_reply(rq, &r);
        }
        default:
                return respond_error(rq, 404, "not_found", NULL, 0, "no such endpoint: %s", rq->path);
        }
}

/* ---- streamed executions ------------------------------------------------- */

/*
 * With `Accept: text/event-stream`, POST /api/execute is answered with
 * Server-Sent Events: the program's output as it arrives, then the result
 * document. The request is validated and admitted like any other, so
 * refusals are plain JSON. When a worker starts the run it resumes the
 * connection, which is answered with a response whose content
 * libmicrohttpd pulls from rq->sse (stream_read); with nothing pending, that
 * callback suspends the connection, and the worker resumes it with the next
 * event. So the worker never waits for the client: it appends and goes on.
 * A client more than stream_backlog() bytes behind is disconnected.
 *
 * The worker polls a duplicate of the client's socket for a hang-up
 * (pyexec_spec.client_fd): a client that leaves, or is disconnected, ends
 * its run at once. If libmicrohttpd closes the connection while the run
 * goes on, on_completed() leaves the request to the worker, which frees it
 * when the run is over.
 */

/* Events not yet sent, at most: twice the output cap (JSON escaping and the
 * events' framing add to the program's bytes) and 64 KiB. */
static size_t stream_backlog(const struct request *rq) {
        return (size_t)(2 * rq->req.limits.max_output) + 64 * 1024;
}

static bool wants_stream(struct MHD_Connection *conn) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
        return a && strcasestr(a, "text/event-stream");
}

static void request_free(struct request *rq);

/* Append one event: "event: NAME", then data, one line of JSON. */
static int sse_event(struct buf *b, const char *name, json_t *data) {
        _cleanup_free_ char *j = data ? json_dumps(data, JSON_ENCODE_ANY | RESULT_JSON_FLAGS) : NULL;
        if (!j)
                return -ENOMEM;
        return buf_printf(b, "event: %s\ndata: %s\n\n", name, j);
}

/* How many bytes at the end of p[0..n) start a UTF-8 character that is
 * not complete: they wait for the next chunk of the same stream. */
static size_t utf8_cut(const char *p, size_t n) {
        for (size_t k = 1; k <= 3 && k <= n; k++) {
                unsigned char c = (unsigned char)p[n - k];
                size_t need;
                if ((c & 0xc0) == 0x80)
                        continue;
                need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
                return need > k ? k : 0;
        }
        return 0;
}

/* Called with the lock held. */
static void stream_wake(struct request *rq) {
        if (rq->suspended && !rq->gone) {
                rq->suspended = false;
                MHD_resume_connection(rq->conn);
        }
}

/* The chunk as an event: carry[stream] before it, the cut character after
 * it kept for the next one. */
static int stream_chunk(struct request *rq, int stream, const char *p, size_t n, bool last, struct buf *out) {
        size_t cut = last ? 0 : utf8_cut(p, n);
        struct buf b;
        json_t *str;
        int r;

        buf_init(&b, SIZE_MAX);
        if (buf_append(&b, rq->carry[stream], rq->carry_n[stream]) < 0 || buf_append(&b, p, n - cut) < 0) {
                buf_done(&b);
                return -ENOMEM;
        }
        memcpy(rq->carry[stream], p + n - cut, cut);
        rq->carry_n[stream] = cut;
        if (b.len == 0) {
                buf_done(&b);
                return 0;
        }
        str = result_json_string(b.data, b.len);
        buf_done(&b);
        r = sse_event(out, stream == 1 ? "stdout" : "stderr", str);
        json_decref(str);
        return r;
}

/* pyexec_spec.on_output, on the worker. */
static void stream_output(void *userdata, int stream, const char *p, size_t n) {
        struct request *rq = userdata;
        struct buf ev;
        bool overflow = false;

        buf_init(&ev, SIZE_MAX);
        if (stream_chunk(rq, stream, p, n, false, &ev) < 0 || ev.len == 0) {
                buf_done(&ev);
                return;
        }
        pthread_mutex_lock(&rq->lock);
        if (!rq->gone && rq->sse_fd >= 0) {
                if (buf_append(&rq->sse, ev.data, ev.len) < 0) {
                        /* Too slow (or no memory): disconnect it; the run
                         * sees the hang-up and ends. */
                        overflow = true;
                        (void)shutdown(rq->sse_fd, SHUT_RDWR);
                }
                stream_wake(rq);
        }
        pthread_mutex_unlock(&rq->lock);
        buf_done(&ev);
        if (overflow)
                log_event(LOG_INFO, "streaming client too slow: disconnected, its run stopped",
                          json_pack("{s:s,s:s,s:I}", "requestId", rq->id, "client", rq->client, "backlogBytes",
                                    (json_int_t)stream_backlog(rq)));
}

/* On the worker, as the run starts: the connection is answered with the
 * stream (on_request, REQ_STREAMING). */
static void stream_begin(struct request *rq) {
        pthread_mutex_lock(&rq->lock);
        atomic_store(&rq->state, REQ_STREAMING);
        stream_wake(rq);
        pthread_mutex_unlock(&rq->lock);
}

/* On the worker, when it is done with the request (work_complete). */
static void stream_finish(struct request *rq) {
        struct buf tail;
        bool streaming = atomic_load(&rq->state) == REQ_STREAMING;

        buf_init(&tail, SIZE_MAX);
        if (streaming) {
                json_t *err = NULL;
                (void)stream_chunk(rq, 1, "", 0, true, &tail);
                (void)stream_chunk(rq, 2, "", 0, true, &tail);
                if (!rq->response)
                        err = json_pack("{s:{s:s,s:s}}", "error", "code", "internal_error", "message",
                                        "could not build the response");
                (void)sse_event(&tail, "result", rq->response ? rq->response : err);
                json_decref(err);
        }
        /* Under the lock: on_completed() cannot free the request meanwhile. */
        pthread_mutex_lock(&rq->lock);
        rq->running = false;
        if (streaming) {
                struct api_outcome *o = &rq->outcome;
                struct pollfd p = { .fd = rq->sse_fd, .events = POLLRDHUP };
                bool hung_up = rq->gone || (poll(&p, 1, 0) == 1 && p.revents);
                metrics_http(rq->s->metrics, rq->route, 200);
                log_request(rq, 200,
                            json_pack("{s:s,s:f,s:f,s:f,s:b,s:b}", "status", pyexec_status_to_string(o->status),
                                      "wallMs", o->wall_ms, "cpuMs", o->cpu_ms, "queueMs", rq->queue_wait_s * 1e3,
                                      "stream", true, "clientGone", hung_up));
        }
        if (rq->gone) {
                pthread_mutex_unlock(&rq->lock);
                buf_done(&tail);
                request_free(rq);
                return;
        }
        if (streaming) {
                rq->sse.max = SIZE_MAX; /* the end is always sent */
                if (buf_append(&rq->sse, tail.data, tail.len) < 0)
                        (void)shutdown(rq->sse_fd, SHUT_RDWR);
                rq->sse_done = true;
        }
        stream_wake(rq);
        pthread_mutex_unlock(&rq->lock);
        buf_done(&tail);
}

/* libmicrohttpd's content reader, on its thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
        struct request *rq = cls;
        size_t n;

        (void)pos;
        pthread_mutex_lock(&rq->lock);
        n = rq->sse.len;
        if (n == 0) {
                bool done = rq->sse_done;
                if (!done) {
                        /* Until the worker has more (stream_wake). */
                        rq->suspended = true;
                        MHD_suspend_connection(rq->conn);
                }
                pthread_mutex_unlock(&rq->lock);
                return done ? MHD_CONTENT_READER_END_OF_STREAM : 0;
        }
        if (n > max)
                n = max;
        memcpy(out, rq->sse.data, n);
        memmove(rq->sse.data, rq->sse.data + n, rq->sse.len - n);
        rq->sse.len -= n;
        pthread_mutex_unlock(&rq->lock);
        return (ssize_t)n;
}

static enum MHD_Result answer_stream(struct request *rq) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, rq,
                                                                      NULL);
        enum MHD_Result r;

        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        if (rq->rl_counted && rq->rl.limit)
                add_rate_limit_headers(rq, resp);
        add_common_headers(rq, resp);
        r = MHD_queue_response(rq->conn, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

/* ---- executions ---------------------------------------------------------- */

static void observe_run(void *userdata, const struct pyexec_result *res, double run_ms) {
        struct request *rq = userdata;
        metrics_execution(rq->s->metrics, res->status, res->wall_ms, run_ms);
}

static bool client_gone(struct request *rq);

static bool case_client_gone(void *userdata) {
        return client_gone(userdata);
}

static void work_run(struct executor_task *j) {
        struct request *rq = (struct request *)((char *)j - offsetof(struct request, work));
        struct server *s = rq->s;

        rq->queue_wait_s = (double)(now_ns() - j->enqueued_ns) / 1e9;
        metrics_queue_wait(s->metrics, rq->queue_wait_s);
        if (rq->job) {
                struct api_error err = { 0 };
                uint64_t t0 = now_ns();
                if (job_run(s->sb, rq->job, json_object_get(rq->job_doc, "params"), rq->id, NULL, &rq->response,
                            &rq->outcome, &err) < 0) {
                        /* A parameter failed validation (paths are opened
                         * here, on the worker): answer like any 4xx. */
                        json_decref(rq->response);
                        rq->response = api_error_json(&err);
                        rq->outcome = (struct api_outcome){ .status = PYEXEC_OK, .http = err.http };
                        rq->job_refused = err;
                        /* No sandbox was tried: nothing to tell the breaker. */
                        executor_report_nothing_ran(s->ex);
                        atomic_store(&rq->state, REQ_DONE);
                        return;
                }
                metrics_execution(s->metrics, rq->outcome.status, rq->outcome.wall_ms, (double)(now_ns() - t0) / 1e6);
        } else {
                const struct api_hooks hooks = { .observe = observe_run,
                                                 .client_gone = case_client_gone,
                                                 .on_output = rq->stream ? stream_output : NULL,
                                                 .client_fd = rq->stream ? rq->sse_fd : 0,
                                                 .userdata = rq };
                struct api_outcome *o = &rq->outcome;
                if (rq->stream)
                        stream_begin(rq);
                rq->response = api_execute(s->sb, s->cfg, &rq->req, rq->id, &hooks, o);
                if (o->not_run > 0) {
                        metrics_cases_not_run(s->metrics, o->client_gone ? NOT_RUN_CLIENT_GONE : NOT_RUN_TIME_LIMIT,
                                              o->not_run);
                        log_event(LOG_INFO,
                                  o->client_gone ? "client went away: the remaining test cases were not run"
                                                 : "request time limit reached: the remaining test cases were not run",
                                  json_pack("{s:s,s:s,s:I,s:I,s:I}", "requestId", rq->id, "client", rq->client, "run",
                                            (json_int_t)o->runs, "notRun", (json_int_t)o->not_run, "totalTimeoutMs",
                                            (json_int_t)rq->req.total_ms));
                }
        }
        executor_report(s->ex, rq->outcome.sandbox_failed);
        if (!rq->stream)
                atomic_store(&rq->state, REQ_DONE);
}

static void work_complete(struct executor_task *j) {
        struct request *rq = (struct request *)((char *)j - offsetof(struct request, work));
        if (rq->stream)
                stream_finish(rq);
        else
                MHD_resume_connection(rq->conn);
}

/* A client that closed its end shows EOF to a peek (a reset, an error).
 * The connection is suspended while its request is queued or running, so
 * libmicrohttpd neither reads from nor closes the socket meanwhile: the
 * worker may peek at it, before the request runs and between its test
 * cases. */
static bool client_gone(struct request *rq) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        char c;
        ssize_t n;

        if (!ci)
                return false;
        n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static bool work_abandoned(struct executor_task *j) {
        return client_gone((struct request *)((char *)j - offsetof(struct request, work)));
}

static void work_drop(struct executor_task *j) {
        struct request *rq = (struct request *)((char *)j - offsetof(struct request, work));
        metrics_rejected(rq->s->metrics, REJECT_CLIENT_GONE);
        log_event(LOG_INFO, "client went away before its turn: not run",
                  json_pack("{s:s,s:s}", "requestId", rq->id, "client", rq->client));
        atomic_store(&rq->state, REQ_DROPPED);
}

/* {"params": {name: value, ...}}, nothing else; the job must exist. */
static int parse_job_request(struct request *rq, struct api_error *err) {
        const char *name = rq->path + strlen("/api/jobs/");
        json_error_t jerr;
        json_t *params;

        rq->job = jobs_find(&rq->s->jobs, name);
        if (!rq->job) {
                api_error_set(err, 404, "not_found", NULL, "no job named '%.64s'", name);
                return -EINVAL;
        }
        if (!utf8_is_valid(rq->body.data ? rq->body.data : "", rq->body.len)) {
                api_error_set(err, 400, "invalid_request", NULL, "the request body is not valid UTF-8");
                return -EINVAL;
        }
        rq->job_doc = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                                 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!rq->job_doc) {
                api_error_set(err, 400, "invalid_request", NULL, "malformed JSON: %s (line %d, column %d)", jerr.text,
                              jerr.line, jerr.column);
                return -EINVAL;
        }
        params = json_object_get(rq->job_doc, "params");
        if (!json_is_object(rq->job_doc) || json_object_size(rq->job_doc) != 1 || !json_is_object(params)) {
                api_error_set(err, 400, "invalid_request", "params",
                              "the request must be {\"params\": {...}} with the job's parameters");
                return -EINVAL;
        }
        {
                const char *k;
                json_t *v;
                json_object_foreach(params, k, v) {
                        if (json_is_object(v) || json_is_array(v) || json_is_null(v)) {
                                char f[96];
                                snprintf(f, sizeof f, "params.%.80s", k);
                                api_error_set(err, 400, "invalid_parameter", f,
                                              "parameter '%.80s' must be a string, number or boolean", k);
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

/* userId names an end user with a quota of their own, within the key's:
 * only a trusted key may send one. 0, or -EPERM with err filled. */
static int check_user_id(struct request *rq, const char *user_id, struct api_error *err) {
        const struct config *cfg = rq->s->cfg;
        if (!user_id || (rq->key >= 0 && cfg->api_key_opts[rq->key].trusted))
                return 0;
        if (rq->key < 0)
                api_error_set(err, 400, "invalid_request", "userId",
                              "userId needs a trusted API key, and this service has no API keys: leave userId out");
        else
                api_error_set(err, 400, "invalid_request", "userId",
                              "userId is for a trusted API key, and this key is not one: leave userId out, or mark "
                              "the key 'trusted' in API_KEYS_FILE");
        return -EPERM;
}

/* Whether the client may have units executions now (the rate limit):
 * the key's quota when there is a key (and its end user's, with userId),
 * else the address's. answer_rate_limited() says why not. */
static bool rate_take(struct request *rq, uint64_t units, const char *user_id) {
        const struct config *cfg = rq->s->cfg;
        struct ratelimit_quota q[2];
        char key_id[32], user[32 + API_USER_ID_MAX];
        size_t n = 0;

        rq->rl_units = units;
        rq->rl_counted = true;
        if (rq->key >= 0) {
                const struct api_key_opts *o = &cfg->api_key_opts[rq->key];
                /* The key's index, not its label: labels may collide. */
                snprintf(key_id, sizeof key_id, "key#%d", rq->key);
                q[n++] = (struct ratelimit_quota){ key_id, o->max, o->window_ms };
                if (user_id) {
                        snprintf(user, sizeof user, "key#%d/%s", rq->key, user_id);
                        q[n++] = (struct ratelimit_quota){ user, o->user_max, o->user_window_ms };
                }
        } else
                q[n++] = (struct ratelimit_quota){ rq->client, cfg->rate_limit_max, cfg->rate_limit_window };
        return ratelimit_take_quotas(rq->s->rl, q, n, units, now_ns() / 1000000ull, &rq->rl);
}

static enum MHD_Result answer_rate_limited(struct request *rq) {
        struct server *s = rq->s;
        unsigned long long units = rq->rl_units, max = rq->rl.limit, window = rq->rl.window_ms;
        const char *what = rq->route == ROUTE_EXECUTE ? "test cases" : "executions";
        const char *whose = rq->rl.which == 1 ? " for this userId" : "";

        metrics_rate_limited(s->metrics);
        if (rq->rl.full)
                return respond_error(rq, 429, "rate_limited", NULL, ms_to_s(window),
                                     "too many clients are counted by the rate limit at once; retry in %llu ms",
                                     window);
        if (rq->rl.never)
                return respond_error(rq, 429, "rate_limited", rq->route == ROUTE_EXECUTE ? "tests" : NULL,
                                     ms_to_s(window),
                                     "this request has %llu %s and each counts as one execution, but the rate limit%s "
                                     "is %llu executions per %llu ms: it can never be admitted; send at most %llu "
                                     "%s",
                                     units, what, whose, max, window, max, what);
        if (units > 1)
                return respond_error(rq, 429, "rate_limited", rq->route == ROUTE_EXECUTE ? "tests" : NULL,
                                     ms_to_s(rq->rl.reset_ms),
                                     "rate limit%s of %llu executions per %llu ms exceeded: this request's %llu %s "
                                     "count as %llu executions and %llu remain; retry in %llu ms",
                                     whose, max, window, units, what, units, (unsigned long long)rq->rl.remaining,
                                     (unsigned long long)rq->rl.reset_ms);
        return respond_error(rq, 429, "rate_limited", NULL, ms_to_s(rq->rl.reset_ms),
                             "rate limit%s of %llu executions per %llu ms exceeded; retry in %llu ms", whose, max,
                             window, (unsigned long long)rq->rl.reset_ms);
}

/* ---- asynchronous submissions ------------------------------------------------ */

/* {"async": true} in a job's body (parsed again, in full, when accepted). */
static bool body_asks_async(struct request *rq) {
        json_t *doc = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, 0, NULL);
        bool a = json_is_true(json_object_get(doc, "async"));
        json_decref(doc);
        return a;
}

/* A submission's body is valid when admitted: a single one's userId (a
 * batch's items take none) is its end user. */
static int admit_submission(void *ctx, const json_t *doc, uint64_t units) {
        struct request *rq = ctx;
        const json_t *list = json_object_get(doc, "submissions");
        const char *user_id = json_string_value(json_object_get(doc, "userId"));

        for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++)
                if (json_object_get(json_array_get(list, i), "userId")) {
                        char f[64];
                        snprintf(f, sizeof f, "submissions[%zu].userId", i);
                        api_error_set(&rq->user_refused, 400, "invalid_request", f,
                                      "userId is not taken in a batch: send an end user's submission on its own");
                        return -EPERM;
                }
        if (check_user_id(rq, user_id, &rq->user_refused) < 0)
                return -EPERM;
        return rate_take(rq, units, user_id) ? 0 : -EAGAIN;
}

static enum MHD_Result respond_reply(struct request *rq, struct submissions_reply *r) {
        enum MHD_Result res;
        rq->replayed = r->replayed;
        res = respond_json(rq, r->http, json_incref(r->body), r->retry_after_s, json_incref(r->log));
        submissions_reply_done(r);
        return res;
}

static enum MHD_Result answer_submissions(struct request *rq) {
        struct submissions_reply r = { .replayed = rq->replayed };
        submissions_describe(rq->s->subs, &rq->acc, &r);
        r.replayed = rq->replayed;
        return respond_reply(rq, &r);
}

static void submissions_waited(void *ctx) {
        struct request *rq = ctx;
        atomic_store(&rq->state, REQ_WAITED);
        MHD_resume_connection(rq->conn);
}

/* POST /api/submissions, or POST /api/jobs/{job} with "async": true. */
static enum MHD_Result start_submission(struct request *rq, const char *job) {
        struct server *s = rq->s;
        struct submissions_reply r = { 0 };
        const char *key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
        const char *w = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "wait");
        uint64_t wait_ms = 0;
        int k;

        if (rq->too_large)
                return respond_error(rq, 413, "payload_too_large", NULL, 0,
                                     "the request body is larger than %llu bytes",
                                     (unsigned long long)s->cfg->max_request_size);
        if (atomic_load(&s->draining)) {
                metrics_rejected(s->metrics, REJECT_SHUTTING_DOWN);
                return respond_error(rq, 503, "shutting_down", NULL, 5, "the service is shutting down");
        }
        if (w && parse_u64(w, 0, UINT64_MAX, &wait_ms) < 0)
                return respond_error(rq, 400, "invalid_request", "wait", 0,
                                     "wait must be a number of milliseconds, got '%.32s'", w);
        if (wait_ms > s->cfg->submission_wait_max)
                wait_ms = s->cfg->submission_wait_max;
        k = submissions_accept(s->subs, rq->body.data, rq->body.len, job, key, admit_submission, rq, &rq->acc, &r);
        if (k == -EAGAIN)
                return answer_rate_limited(rq);
        if (k == -EPERM && rq->user_refused.http)
                return respond_json(rq, 400, api_error_json(&rq->user_refused), 0,
                                    json_pack("{s:s,s:s}", "error", rq->user_refused.message, "field",
                                              rq->user_refused.field));
        if (k < 0)
                return respond_reply(rq, &r);
        rq->replayed = r.replayed;
        submissions_reply_done(&r);
        if (wait_ms == 0)
                return answer_submissions(rq);
        atomic_store(&rq->state, REQ_WAITING);
        MHD_suspend_connection(rq->conn);
        if (submissions_wait(s->subs, &rq->acc, now_ns() + wait_ms * 1000000ull, submissions_waited, rq) < 0) {
                atomic_store(&rq->state, REQ_WAITED);
                MHD_resume_connection(rq->conn);
        }
        return MHD_YES;
}

static enum MHD_Result start_execution(struct request *rq) {
        struct server *s = rq->s;
        struct api_error err;
        uint64_t retry = 0, units;
        enum submit_result sr;

        if (rq->too_large)
                return respond_error(rq, 413, "payload_too_large", NULL, 0,
                                     "the request body is larger than %llu bytes",
                                     (unsigned long long)s->cfg->max_request_size);
        if (rq->route == ROUTE_JOB_RUN && body_asks_async(rq))
                return start_submission(rq, rq->path + strlen("/api/jobs/"));
        if (rq->route == ROUTE_JOB_RUN) {
                if (parse_job_request(rq, &err) < 0)
                        return respond_json(rq, err.http, api_error_json(&err), 0,
                                            json_pack("{s:s,s:s}", "error", err.message, "field", err.field));
        } else if (api_parse_execute(rq->body.data ? rq->body.data : "", rq->body.len, s->cfg, &rq->req, &err) < 0)
                return respond_json(rq, err.http, api_error_json(&err), 0,
                                    json_pack("{s:s,s:s}", "error", err.message, "field", err.field));
        if (check_user_id(rq, rq->req.user_id, &err) < 0)
                return respond_json(rq, err.http, api_error_json(&err), 0,
                                    json_pack("{s:s,s:s}", "error", err.message, "field", err.field));
        if (rq->route != ROUTE_JOB_RUN && wants_stream(rq->conn)) {
                const union MHD_ConnectionInfo *ci;
                if (rq->req.n_cases) {
                        api_error_set(&err, 400, "invalid_request", "tests",
                                      "a request with tests is not streamed: send it without 'Accept: "
                                      "text/event-stream' to get its graded result");
                        return respond_json(rq, err.http, api_error_json(&err), 0,
                                            json_pack("{s:s,s:s}", "error", err.message, "field", err.field));
                }
                ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                rq->sse_fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3) : -1;
                if (rq->sse_fd < 0)
                        return respond_error(rq, 500, "internal_error", NULL, 0, "could not set up the stream: %s",
                                             strerror(ci ? errno : EBADF));
                pthread_mutex_init(&rq->lock, NULL);
                buf_init(&rq->sse, stream_backlog(rq));
                rq->method = "POST"; /* libmicrohttpd's string may go first (on_completed) */
                rq->stream = true;
        }
        /* Each test case is a sandbox run: a request of N cases costs N. */
        units = rq->req.n_cases ? rq->req.n_cases : 1;
        if (!rate_take(rq, units, rq->req.user_id))
                return answer_rate_limited(rq);
        rq->work = (struct executor_task){
                .run = work_run, .abandoned = work_abandoned, .drop = work_drop, .complete = work_complete
        };
        atomic_store(&rq->state, REQ_QUEUED);
        /* Suspend before submitting: a fast worker may resume at once. A
         * refusal is answered on the call that follows the resume, so a
         * response is never queued on a connection mid-suspension. */
        rq->suspended = rq->running = true;
        MHD_suspend_connection(rq->conn);
        sr = executor_submit(s->ex, &rq->work, &retry);
        if (sr != SUBMIT_OK) {
                rq->suspended = rq->running = false;
                rq->refusal = sr;
                rq->retry_ms = retry;
                atomic_store(&rq->state, REQ_REFUSED);
                MHD_resume_connection(rq->conn);
        }
        return MHD_YES;
}

static enum MHD_Result answer_refusal(struct request *rq) {
        struct server *s = rq->s;
        switch (rq->refusal) {
        case SUBMIT_QUEUE_FULL:
                metrics_rejected(s->metrics, REJECT_QUEUE_FULL);
                return respond_error(rq, 503, "queue_full", NULL, 1,
                                     "all %llu execution slots are busy and %llu requests are waiting; try again",
                                     (unsigned long long)s->cfg->max_concurrent, (unsigned long long)s->cfg->queue_size);
        case SUBMIT_BREAKER_OPEN:
                metrics_rejected(s->metrics, REJECT_BREAKER_OPEN);
                return respond_error(rq, 503, "sandbox_unavailable", NULL, ms_to_s(rq->retry_ms),
                                     "sandboxes are failing to start (circuit breaker open); retrying in %llu ms",
                                     (unsigned long long)rq->retry_ms);
        default:
                metrics_rejected(s->metrics, REJECT_SHUTTING_DOWN);
                return respond_error(rq, 503, "shutting_down", NULL, 5, "the service is shutting down");
        }
}

static enum MHD_Result finish_execution(struct request *rq) {
        struct api_outcome *o = &rq->outcome;
        json_t *extra;

        if (!rq->response)
                return respond_error(rq, 500, "internal_error", NULL, 0, "could not build the response");
        /* A job that is not ready (a root or its script missing) may be
         * once the operator has fixed it: worth retrying later. */
        if (rq->job_refused.http)
                return respond_json(rq, o->http, json_incref(rq->response), o->http == 503 ? 30 : 0,
                                    json_pack("{s:s,s:s,s:s}", "job", rq->job->name, "error", rq->job_refused.message,
                                              "field", rq->job_refused.field));
        extra = json_pack("{s:s,s:f,s:f,s:f}", "status", pyexec_status_to_string(o->status), "wallMs", o->wall_ms,
                          "cpuMs", o->cpu_ms, "queueMs", rq->queue_wait_s * 1e3);
        if (extra && rq->req.exercise_id)
                json_object_set(extra, "exerciseId", rq->req.exercise_id);
        if (extra && rq->job)
                json_object_set_new(extra, "job", json_string(rq->job->name));
        if (extra && o->not_run)
                json_object_set_new(extra, "notRun", json_integer((json_int_t)o->not_run));
        return respond_json(rq, o->http, json_incref(rq->response), 0, extra);
}

/* ---- the access handler --------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct server *s = cls;
        struct request *rq = *con_cls;

        if (!rq) {
                const char *cl;
                bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
                bool is_post = !strcmp(method, "POST");

                rq = calloc(1, sizeof *rq);
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                atomic_fetch_add(&s->in_flight, 1);
                rq->s = s;
                rq->conn = conn;
                rq->t0 = now_ns();
                rq->method = method;
                snprintf(rq->path, sizeof rq->path, "%s", url);
                rq->route = route_of(url);
                rq->key = -1;
                request_id(conn, rq->id);
                client_address(conn, rq->client, sizeof rq->client);
                buf_init(&rq->body, s->cfg->max_request_size);
                atomic_store(&rq->state, REQ_RECEIVING);

                if (!strcmp(method, "OPTIONS")) {
                        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                        enum MHD_Result r;
                        if (!resp)
                                return MHD_NO;
                        MHD_add_response_header(resp, "Allow", route_allow(rq->route));
                        if (s->cfg->cors_origin[0]) {
                                MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
                                MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                                        "Content-Type, Authorization, X-API-Key, X-Request-Id, "
                                                        "Idempotency-Key");
                                MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
                        }
                        add_common_headers(rq, resp);
                        r = MHD_queue_response(conn, 204, resp);
                        MHD_destroy_response(resp);
                        metrics_http(s->metrics, rq->route, 204);
                        log_request(rq, 204, NULL);
                        atomic_store(&rq->state, REQ_ANSWERED);
                        return r;
                }
                {
                        const char *origin;
                        if (!origin_allowed(s, conn, &origin))
                                return respond_error(rq, 403, "origin_not_allowed", NULL, 0,
                                                     "requests from web pages of %.200s are refused: this service "
                                                     "listens on %s for the machine's own users; CORS_ORIGIN names "
                                                     "a site that may call it",
                                                     origin, s->cfg->bind);
                }
                if (rq->route == ROUTE_OTHER)
                        return respond_error(rq, 404, "not_found", NULL, 0, "no such endpoint: %s", rq->path);
                if (s->cfg->worker &&
                    (route_takes_post(rq->route) || rq->route == ROUTE_SUBMISSION || rq->route == ROUTE_PLAYGROUND))
                        return respond_error(rq, 404, "not_found", NULL, 0,
                                             "%s: a pyexec worker answers the health probes, /api/metrics and "
                                             "/api/stats only; send work to pyexec serve",
                                             rq->path);
                if (!(is_post && route_takes_post(rq->route)) && !(is_get && route_takes_get(rq->route)))
                        return respond_error(rq, 405, "method_not_allowed", NULL, 0, "%s is not allowed on %s", method,
                                             rq->path);
                /* The playground's files hold nothing secret, and a browser
                 * cannot send a key when it opens a page: the page asks for
                 * the key and sends it with each run. */
                if (s->cfg->n_api_keys > 0 && rq->route != ROUTE_HEALTH_LIVE && rq->route != ROUTE_HEALTH_READY &&
                    rq->route != ROUTE_PLAYGROUND) {
                        int k = authenticate(s, conn);
                        if (k < 0)
                                return respond_error(rq, 401, "unauthorized", NULL, 0,
                                                     "an API key is required: send 'Authorization: Bearer KEY' or "
                                                     "'X-API-Key: KEY'");
                        /* Rate limits follow the key, not the address; the
                         * log names it by its label, never by itself. */
                        rq->key = k;
                        snprintf(rq->client, sizeof rq->client, "key:%s", s->cfg->api_key_opts[k].label);
                }
                if (!is_post)
                        return MHD_YES; /* answered on the final call */
                if (!content_type_is_json(conn))
                        return respond_error(rq, 415, "unsupported_media_type", NULL, 0,
                                             "Content-Type must be application/json");
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
                if (cl) {
                        uint64_t n;
                        if (parse_u64(cl, 0, UINT64_MAX, &n) < 0 || n > s->cfg->max_request_size)
                                return respond_error(rq, 413, "payload_too_large", NULL, 0,
                                                     "the request body is larger than %llu bytes",
                                                     (unsigned long long)s->cfg->max_request_size);
                }
                return MHD_YES;
        }

        switch (atomic_load(&rq->state)) {
        case REQ_RECEIVING:
                if (*upload_data_size > 0) {
                        /* A body with Content-Length past the cap was refused
                         * before it was read. A chunked one announces no
                         * size: past the cap it is discarded, not stored,
                         * and answered with 413 when it ends (libmicrohttpd
                         * cannot queue a response mid-upload); one that goes
                         * on past twice the cap gets its connection closed. */
                        if (!rq->too_large && buf_append(&rq->body, upload_data, *upload_data_size) < 0) {
                                rq->too_large = true;
                                rq->discarded = rq->body.len;
                                buf_done(&rq->body);
                        }
                        if (rq->too_large) {
                                rq->discarded += *upload_data_size;
                                if (rq->discarded > 2 * rq->s->cfg->max_request_size) {
                                        metrics_http(rq->s->metrics, rq->route, 413);
                                        log_request(rq, 413, json_pack("{s:s}", "error", "endless request body: closed"));
                                        return MHD_NO;
                                }
                        }
                        *upload_data_size = 0;
                        return MHD_YES;
                }
                if (rq->route == ROUTE_SUBMISSIONS && !strcmp(rq->method, "POST"))
                        return start_submission(rq, NULL);
                if (rq->route == ROUTE_EXECUTE || rq->route == ROUTE_JOB_RUN)
                        return start_execution(rq);
                return handle_get(rq);
        case REQ_WAITED:
                return answer_submissions(rq);
        case REQ_DONE:
                return finish_execution(rq);
        case REQ_STREAMING:
                return answer_stream(rq);
        case REQ_REFUSED:
                return answer_refusal(rq);
        case REQ_DROPPED:
                return MHD_NO; /* close: nobody is listening */
        case REQ_ANSWERED:
                /* A response is queued; MHD discards any remaining upload. */
                *upload_data_size = 0;
                return MHD_YES;
        default:
                return MHD_YES;
        }
}

static void request_free(struct request *rq) {
        struct server *s = rq->s;
        if (rq->stream) {
                buf_done(&rq->sse);
                close(rq->sse_fd);
                pthread_mutex_destroy(&rq->lock);
        }
        api_request_done(&rq->req);
        submissions_accepted_done(&rq->acc);
        json_decref(rq->job_doc);
        json_decref(rq->response);
        buf_done(&rq->body);
        free(rq);
        atomic_fetch_sub(&s->in_flight, 1);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        struct request *rq = *con_cls;
        if (!rq)
                return;
        *con_cls = NULL;
        if (rq->stream) {
                pthread_mutex_lock(&rq->lock);
                if (rq->running) {
                        /* The run goes on: end it (its client_fd hangs
                         * up); the worker frees the request. */
                        rq->gone = true;
                        (void)shutdown(rq->sse_fd, SHUT_RDWR);
                        pthread_mutex_unlock(&rq->lock);
                        return;
                }
                pthread_mutex_unlock(&rq->lock);
        }
        request_free(rq);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char msg[512];
        size_t n;
        vsnprintf(msg, sizeof msg, fmt, ap);
        n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
                msg[--n] = 0;
        log_event(LOG_DEBUG, msg, json_pack("{s:s}", "source", "libmicrohttpd"));
}

/* ---- the self-test ---------------------------------------------------------- */

static void *selftest(void *arg) {
        struct server *s = arg;
        while (!atomic_load(&s->stop_selftest)) {
                json_t *report = NULL;
                bool ok = check_report(s->sb, s->cfg->python, &s->jobs, s->cfg->allow_stale_runner, &report) == 0 &&
                          json_is_true(json_object_get(report, "ok"));
                pthread_mutex_lock(&s->env_lock);
                json_decref(s->environment);
                s->environment = report;
                pthread_mutex_unlock(&s->env_lock);
                if (ok) {
                        atomic_store(&s->ready, true);
                        log_event(LOG_INFO, "sandbox self-test passed: ready",
                                  json_pack("{s:O?}", "selfTest", json_object_get(report, "selfTest")));
                        if (!atomic_load(&s->draining))
                                notify_statusf("READY=1\n", "ready: serving on %s port %llu, %llu execution slots, %s",
                                               s->cfg->bind, (unsigned long long)s->cfg->port,
                                               (unsigned long long)s->cfg->max_concurrent,
                                               pyexec_sandbox_warm_stats(s->sb, &(struct pyexec_warm_stats){ 0 }) == 0
                                                       ? "warm"
                                                       : "cold");
                        return NULL;
                }
                log_event(LOG_ERROR, "sandbox self-test failed; not ready, retrying",
                          json_pack("{s:O?}", "problems", json_object_get(report, "problems")));
                {
                        json_t *p = json_array_get(json_object_get(report, "problems"), 0);
                        notify_statusf("", "not ready: the sandbox self-test failed (%s); retrying every %d s",
                                       json_is_string(p) ? json_string_value(p) : "no report", SELFTEST_RETRY_S);
                }
                for (int i = 0; i < SELFTEST_RETRY_S * 10 && !atomic_load(&s->stop_selftest); i++)
                        nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
        }
        return NULL;
}

/* ---- serve ------------------------------------------------------------------- */

/* The listening socket, made before anything costly (the zygote, its huge
 * pages): a port in use fails at once. SO_REUSEADDR alone: a restart binds
 * past TIME_WAIT, while a second instance on a port in use fails. (With
 * SO_REUSEPORT it would share the port and take half of the first one's
 * connections.) libmicrohttpd takes it over (MHD_OPTION_LISTEN_SOCKET). */
static int listen_on(const struct sockaddr_storage *addr) {
        socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        _cleanup_close_ int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;

        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                return -errno;
        /* An IPv6 address is that address only, as libmicrohttpd's own
         * socket is without MHD_USE_DUAL_STACK. */
        if (addr->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
                return -errno;
        if (bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Everything http_serve() acquired, in reverse order; what was not acquired
 * is NULL (or empty) and skipped. */
static void server_release(struct server *s) {
        if (s->subs)
                submissions_free(s->subs);
        if (s->ex)
                executor_free(s->ex);
        json_decref(s->environment);
        if (s->rl)
                ratelimit_free(s->rl);
        if (s->metrics)
                metrics_free(s->metrics);
        /* Stops the zygote and gives its huge pages back, which logs. */
        if (s->sb)
                pyexec_sandbox_free(s->sb);
        jobs_done(&s->jobs);
}

int http_serve(const struct config *cfg) {
        struct server s = { .cfg = cfg };
        struct executor_config ec = {
                .slots = (unsigned)cfg->max_concurrent,
                .queue_size = cfg->queue_size,
                .breaker_threshold = (unsigned)cfg->breaker_threshold,
                .breaker_cooldown_ms = cfg->breaker_cooldown,
        };
        struct sockaddr_storage addr = { 0 };
        sigset_t sigs;
        int sig = 0, r, listen_fd;
        unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        uint64_t deadline;

        log_set_level(cfg->log_level);
        {
                char err[512];
                if (mhd_load(err, sizeof err) < 0 || notify_init(err, sizeof err) < 0) {
                        log_event(LOG_ERROR, err, NULL);
                        return 1;
                }
        }
        /* Every thread inherits this mask: only sigwait() below sees them. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (strchr(cfg->bind, ':')) {
                struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((uint16_t)cfg->port);
                inet_pton(AF_INET6, cfg->bind, &a6->sin6_addr);
                flags |= MHD_USE_IPv6;
        } else {
                struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
                a4->sin_family = AF_INET;
                a4->sin_port = htons((uint16_t)cfg->port);
                inet_pton(AF_INET, cfg->bind, &a4->sin_addr);
        }
        s.playground = playground_built() && playground_wanted(cfg, &addr);
        s.loopback = addr_is_loopback(&addr);
        {
                _cleanup_free_ char *why = NULL;
                if (submissions_check_config(cfg, &why) < 0) {
                        log_event(LOG_ERROR, "invalid configuration of the asynchronous submissions",
                                  json_pack("{s:s}", "error", why ? why : "?"));
                        return 1;
                }
        }
        listen_fd = listen_on(&addr);
        if (listen_fd < 0) {
                log_event(LOG_ERROR, "cannot listen",
                          json_pack("{s:s,s:I,s:s}", "bind", cfg->bind, "port", (json_int_t)cfg->port, "error",
                                    strerror(-listen_fd)));
                return 1;
        }

        {
                _cleanup_free_ char *jp = cfg->jobs_file[0] ? strdup(cfg->jobs_file) : jobs_default_path();
                char err[1024];
                r = jp ? jobs_load(jp, &s.jobs, err, sizeof err) : -ENOMEM;
                if (r == -ENOENT && !cfg->jobs_file[0])
                        log_event(LOG_INFO, "no jobs file: no operator jobs", json_pack("{s:s?}", "file", jp));
                else if (r < 0) {
                        log_event(LOG_ERROR, "invalid jobs file", json_pack("{s:s}", "error", r == -ENOENT ? jp : err));
                        close(listen_fd);
                        return 1;
                } else
                        log_event(LOG_INFO, "jobs loaded",
                                  json_pack("{s:s,s:I}", "file", jp, "jobs", (json_int_t)s.jobs.n_jobs));
        }
        notify_statusf("", "starting: setting up the sandbox");
        r = pyexec_sandbox_new(&s.sb);
        if (r < 0) {
                log_event(LOG_ERROR, "cannot set up the sandbox", json_pack("{s:s}", "error", strerror(-r)));
                close(listen_fd);
                server_release(&s);
                return 1;
        }
        if (cfg->warm) {
                struct pyexec_limits def;
                struct pyexec_warm_options wo;
                pyexec_limits_default(&def);
                wo = (struct pyexec_warm_options){
                        .pool = cfg->warm_pool ? (unsigned)cfg->warm_pool : (unsigned)cfg->max_concurrent + 1,
                        .pool_follows_load = cfg->warm_pool == 0,
                        .pool_shrink_after_s = cfg->warm_pool_shrink_after,
                        .disk_mb = def.disk_mb,
                        .memory_mb = cfg->memory_limit,
                        .pids = def.pids,
                        .max_forks = cfg->zygote_max_forks,
                        .max_age_s = cfg->zygote_max_age,
                        .prefault = cfg->zygote_prefault,
                        .preimport = cfg->zygote_preimport,
                        .huge_pages = cfg->zygote_huge_pages,
                        .max_running = (unsigned)cfg->max_concurrent,
                };
                uint64_t t0 = now_ns();
                notify_statusf("", "starting: the zygote and %u warm sandboxes", wo.pool);
                r = pyexec_sandbox_start_warm(s.sb, &wo);
                if (r < 0)
                        /* The service still runs every program, cold. */
                        log_event(LOG_WARN, "warm mode unavailable: running cold",
                                  json_pack("{s:s}", "error", strerror(-r)));
                else {
                        /* The choices made for this host (docs/benchmarks.md). */
                        struct pyexec_warm_stats ws = { 0 };
                        (void)pyexec_sandbox_warm_stats(s.sb, &ws);
                        log_event(LOG_INFO, "zygote started",
                                  json_pack("{s:I,s:b,s:f,s:b,s:s,s:s,s:f}", "pool", (json_int_t)wo.pool,
                                            "poolFollowsLoad", wo.pool_follows_load, "startMs",
                                            (double)(now_ns() - t0) / 1e6, "hugePages", ws.huge_pages, "hugePagesWhy",
                                            ws.huge_pages_why ? ws.huge_pages_why : "", "prefault",
                                            ws.prefault ? ws.prefault : "", "cowFaultUs",
                                            (double)ws.cow_fault_ns / 1e3));
                }
        }
        if (cfg->rate_limit_max && cfg->max_tests > cfg->rate_limit_max)
                log_event(LOG_WARN, "MAX_TESTS is above RATE_LIMIT_MAX: requests with more test cases than "
                                    "RATE_LIMIT_MAX are always refused (429), since each case counts once",
                          json_pack("{s:I,s:I}", "maxTests", (json_int_t)cfg->max_tests, "rateLimitMax",
                                    (json_int_t)cfg->rate_limit_max));
        s.metrics = metrics_new();
        s.rl = ratelimit_new(cfg->rate_limit_window, cfg->rate_limit_max, 100000);
        pthread_mutex_init(&s.env_lock, NULL);
        if (!s.metrics || !s.rl || executor_new(&ec, &s.ex) < 0) {
                log_event(LOG_ERROR, "cannot start: out of memory or threads", NULL);
                close(listen_fd);
                pthread_mutex_destroy(&s.env_lock);
                server_release(&s);
                return 1;
        }
        {
                _cleanup_free_ char *why = NULL;
                const struct submissions_env se = {
                        .cfg = cfg, .sb = s.sb, .ex = s.ex, .metrics = s.metrics, .jobs = &s.jobs
                };
                if (submissions_new(&se, &s.subs, &why) < 0) {
                        log_event(LOG_ERROR, "cannot start the asynchronous submissions",
                                  json_pack("{s:s}", "error", why ? why : "?"));
                        close(listen_fd);
                        pthread_mutex_destroy(&s.env_lock);
                        server_release(&s);
                        return 1;
                }
        }

        s.daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, &s, MHD_OPTION_LISTEN_SOCKET,
                                    listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                                    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_EXTERNAL_LOGGER,
                                    on_mhd_log, &s, MHD_OPTION_END);
        if (!s.daemon) {
                /* listen_fd is left alone: whether libmicrohttpd closed it
                 * on its failure depends on its version. */
                log_event(LOG_ERROR, "cannot start the HTTP server (libmicrohttpd)",
                          json_pack("{s:s,s:I}", "bind", cfg->bind, "port", (json_int_t)cfg->port));
                pthread_mutex_destroy(&s.env_lock);
                server_release(&s);
                return 1;
        }
        log_event(LOG_INFO, "listening",
                  json_pack("{s:s,s:I,s:I,s:I,s:b}", "bind", cfg->bind, "port", (json_int_t)cfg->port, "slots",
                            (json_int_t)cfg->max_concurrent, "queue", (json_int_t)cfg->queue_size, "auth",
                            cfg->n_api_keys > 0));
        if (s.playground)
                log_event(LOG_INFO, "playground served at /playground", NULL);
        notify_statusf("", "listening on %s port %llu; running the sandbox self-test", cfg->bind,
                       (unsigned long long)cfg->port);
        pthread_create(&s.selftest_thread, NULL, selftest, &s);

        sigwait(&sigs, &sig);

        /* Graceful shutdown. */
        atomic_store(&s.draining, true);
        log_event(LOG_INFO, "shutting down: no new connections, finishing admitted executions",
                  json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        {
                struct executor_state st;
                executor_get_state(s.ex, &st);
                notify_statusf("STOPPING=1\n",
                               "shutting down (%s): no new connections; finishing %llu running and %llu queued "
                               "executions",
                               sig == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)st.active,
                               (unsigned long long)st.queued);
        }
        /* New connections are refused at once (shutdown() ends the LISTEN
         * state); the descriptor is closed only after MHD_stop_daemon(), as
         * libmicrohttpd's threads may still use it until then (its
         * documentation of MHD_quiesce_daemon). */
        listen_fd = MHD_quiesce_daemon(s.daemon);
        if (listen_fd >= 0)
                shutdown(listen_fd, SHUT_RDWR);
        /* The workers take nothing more and finish what they run; those
         * waiting for results are answered with what there is. */
        submissions_stop(s.subs);
        executor_close(s.ex);
        executor_wait_idle(s.ex);
        /* Let the responses of finished executions go out. */
        deadline = now_ns() + 10ull * 1000000000ull;
        while (atomic_load(&s.in_flight) > 0 && now_ns() < deadline)
                nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
        atomic_store(&s.stop_selftest, true);
        pthread_join(s.selftest_thread, NULL);
        MHD_stop_daemon(s.daemon);
        if (listen_fd >= 0)
                close(listen_fd);
        pthread_mutex_destroy(&s.env_lock);
        notify_statusf("", "shutting down: admitted executions finished; stopping the zygote and sandboxes");
        server_release(&s);
        log_event(LOG_INFO, "stopped", NULL);
        return 0;
}
