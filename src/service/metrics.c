/* SPDX-License-Identifier: MIT */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char *route_to_string(enum route r) {
        static const char *const names[_ROUTE_MAX] = {
                [ROUTE_EXECUTE] = "/api/execute",
                [ROUTE_HEALTH] = "/health",
                [ROUTE_HEALTH_LIVE] = "/health/live",
                [ROUTE_HEALTH_READY] = "/health/ready",
                [ROUTE_METRICS] = "/api/metrics",
                [ROUTE_STATS] = "/api/stats",
                [ROUTE_ENVIRONMENT] = "/api/environment",
                [ROUTE_JOBS] = "/api/jobs",
                [ROUTE_JOB_RUN] = "/api/jobs/{name}",
                [ROUTE_SUBMISSIONS] = "/api/submissions",
                [ROUTE_SUBMISSION] = "/api/submissions/{id}",
                [ROUTE_OPENAPI] = "/api/openapi.json",
                [ROUTE_PLAYGROUND] = "/playground",
                [ROUTE_OTHER] = "other",
        };
        return r < _ROUTE_MAX ? names[r] : "other";
}

static const char *const reject_names[_REJECT_MAX] = {
        [REJECT_QUEUE_FULL] = "queue_full",
        [REJECT_BREAKER_OPEN] = "breaker_open",
        [REJECT_CLIENT_GONE] = "client_gone",
        [REJECT_SHUTTING_DOWN] = "shutting_down",
};

static const char *const not_run_names[_NOT_RUN_MAX] = {
        [NOT_RUN_TIME_LIMIT] = "time_limit",
        [NOT_RUN_CLIENT_GONE] = "client_gone",
};

/* Histogram bucket upper bounds, seconds. */
static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

struct histogram {
        uint64_t counts[N_BUCKETS + 1]; /* last: +Inf */
        uint64_t n;
        double sum;
};

/* HTTP status codes seen, per route: a small open list. */
#define MAX_CODES 16

#define RECENT 1024 /* executions kept for percentiles */

struct metrics {
        pthread_mutex_t lock;
        uint64_t start_ns;
        uint64_t executions[_PYEXEC_STATUS_MAX];
        struct {
                unsigned code;
                uint64_t n;
        } http[_ROUTE_MAX][MAX_CODES];
        uint64_t rate_limited;
        uint64_t rejected[_REJECT_MAX];
        uint64_t not_run[_NOT_RUN_MAX];
        struct histogram exec_wall, queue_wait;
        double recent_wall[RECENT], recent_run[RECENT];
        size_t recent_n, recent_next;
};

struct metrics *metrics_new(void) {
        struct metrics *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        pthread_mutex_init(&m->lock, NULL);
        m->start_ns = now_ns();
        return m;
}

struct metrics *metrics_free(struct metrics *m) {
        if (m) {
                pthread_mutex_destroy(&m->lock);
                free(m);
        }
        return NULL;
}

static void observe(struct histogram *h, double v) {
        size_t i = 0;
        while (i < N_BUCKETS && v > buckets[i])
                i++;
        h->counts[i]++;
        h->n++;
        h->sum += v;
}

void metrics_http(struct metrics *m, enum route r, unsigned code) {
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < MAX_CODES; i++) {
                if (m->http[r][i].code == code || m->http[r][i].code == 0) {
                        m->http[r][i].code = code;
                        m->http[r][i].n++;
                        break;
                }
        }
        pthread_mutex_unlock(&m->lock);
}

void metrics_execution(struct metrics *m, enum pyexec_status s, double wall_ms, double run_ms) {
        pthread_mutex_lock(&m->lock);
        if (s < _PYEXEC_STATUS_MAX)
                m->executions[s]++;
        observe(&m->exec_wall, wall_ms / 1e3);
        m->recent_wall[m->recent_next] = wall_ms;
        m->recent_run[m->recent_next] = run_ms;
        m->recent_next = (m->recent_next + 1) % RECENT;
        if (m->recent_n < RECENT)
                m->recent_n++;
        pthread_mutex_unlock(&m->lock);
}

void metrics_queue_wait(struct metrics *m, double seconds) {
        pthread_mutex_lock(&m->lock);
        observe(&m->queue_wait, seconds);
        pthread_mutex_unlock(&m->lock);
}

void metrics_rate_limited(struct metrics *m) {
        pthread_mutex_lock(&m->lock);
        m->rate_limited++;
        pthread_mutex_unlock(&m->lock);
}

void metrics_rejected(struct metrics *m, enum reject_reason why) {
        pthread_mutex_lock(&m->lock);
        if (why < _REJECT_MAX)
                m->rejected[why]++;
        pthread_mutex_unlock(&m->lock);
}

void metrics_cases_not_run(struct metrics *m, enum not_run_reason why, uint64_t n) {
        pthread_mutex_lock(&m->lock);
        if (why < _NOT_RUN_MAX)
                m->not_run[why] += n;
        pthread_mutex_unlock(&m->lock);
}

double metrics_uptime_seconds(struct metrics *m) {
        return (double)(now_ns() - m->start_ns) / 1e9;
}

static void render_histogram(struct buf *o, const char *name, const char *help, const struct histogram *h) {
        uint64_t cum = 0;
        buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        for (size_t i = 0; i < N_BUCKETS; i++) {
                cum += h->counts[i];
                buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], (unsigned long long)cum);
        }
        cum += h->counts[N_BUCKETS];
        buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
}

int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *o) {
        pthread_mutex_lock(&m->lock);
        buf_printf(o, "# HELP pyexec_build_info Build information.\n# TYPE pyexec_build_info gauge\n"
                      "pyexec_build_info{version=\"%s\"} 1\n",
                   PYEXEC_VERSION);
        buf_printf(o, "# HELP pyexec_uptime_seconds Seconds since the service started.\n"
                      "# TYPE pyexec_uptime_seconds gauge\npyexec_uptime_seconds %.3f\n",
                   (double)(now_ns() - m->start_ns) / 1e9);
        buf_printf(o, "# HELP pyexec_executions_total Executions (and test cases) by status.\n"
                      "# TYPE pyexec_executions_total counter\n");
        for (int s = 0; s < _PYEXEC_STATUS_MAX; s++)
                buf_printf(o, "pyexec_executions_total{status=\"%s\"} %llu\n",
                           pyexec_status_to_string((enum pyexec_status)s), (unsigned long long)m->executions[s]);
        buf_printf(o, "# HELP pyexec_http_requests_total HTTP requests by route and status code.\n"
                      "# TYPE pyexec_http_requests_total counter\n");
        for (int r = 0; r < _ROUTE_MAX; r++)
                for (size_t i = 0; i < MAX_CODES && m->http[r][i].code; i++)
                        buf_printf(o, "pyexec_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                                   route_to_string((enum route)r), m->http[r][i].code,
                                   (unsigned long long)m->http[r][i].n);
        buf_printf(o, "# HELP pyexec_rate_limited_total Executions refused by the rate limit (429).\n"
                      "# TYPE pyexec_rate_limited_total counter\npyexec_rate_limited_total %llu\n",
                   (unsigned long long)m->rate_limited);
        buf_printf(o, "# HELP pyexec_rejected_total Executions refused or dropped without running.\n"
                      "# TYPE pyexec_rejected_total counter\n");
        for (int i = 0; i < _REJECT_MAX; i++)
                buf_printf(o, "pyexec_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
                           (unsigned long long)m->rejected[i]);
        buf_printf(o, "# HELP pyexec_cases_not_run_total Test cases of admitted requests never started.\n"
                      "# TYPE pyexec_cases_not_run_total counter\n");
        for (int i = 0; i < _NOT_RUN_MAX; i++)
                buf_printf(o, "pyexec_cases_not_run_total{reason=\"%s\"} %llu\n", not_run_names[i],
                           (unsigned long long)m->not_run[i]);
        render_histogram(o, "pyexec_execution_duration_seconds", "Wall time of executions.", &m->exec_wall);
        render_histogram(o, "pyexec_queue_wait_seconds", "Time executions waited for a slot.", &m->queue_wait);
        pthread_mutex_unlock(&m->lock);
        {
                const struct {
                        const char *name, *help;
                        uint64_t value;
                } gauges[] = {
                        { "pyexec_queue_depth", "Executions waiting for a slot.", g->queue_depth },
                        { "pyexec_queue_capacity", "Executions that may wait.", g->queue_capacity },
                        { "pyexec_active_executions", "Executions running now.", g->active },
                        { "pyexec_execution_slots", "Execution slots.", g->slots },
                        { "pyexec_ready", "Whether the service can run code (1) or not (0).", g->ready },
                        { "pyexec_breaker_open", "Whether the circuit breaker is open.", g->breaker_open },
                        { "pyexec_warm", "Whether programs run on the warm path (1) or cold (0).", g->warm },
                        { "pyexec_warm_sandboxes_ready", "Sandboxes built ahead and waiting for work.", g->warm_ready },
                        { "pyexec_warm_sandboxes_built", "Sandboxes built from the zygote so far.", g->warm_sandboxes },
                        { "pyexec_warm_sandboxes_taken_ready", "Runs that found a sandbox ready.",
                          g->warm_taken_ready },
                        { "pyexec_warm_sandboxes_built_on_demand", "Runs that had to build their sandbox.",
                          g->warm_on_demand },
                        { "pyexec_warm_sandbox_failures", "Sandboxes (or zygotes) that could not be built.",
                          g->warm_failures },
                        { "pyexec_zygotes_started", "Zygotes started (the first, replacements, recycles).",
                          g->zygotes },
                        { "pyexec_zygote_deaths", "Zygotes that died and were replaced.", g->zygote_deaths },
                        { "pyexec_zygote_huge_pages",
                          "The zygote's 2 MiB hugetlb pages, each copied into every sandbox (0: none).",
                          g->zygote_huge_pages },
                        { "pyexec_warm_netns_made", "Network namespaces made for the pool (root only).",
                          g->netns_made },
                        { "pyexec_warm_netns_reused", "Sandboxes that joined a network namespace used before.",
                          g->netns_reused },
                        { "pyexec_warm_pool_target", "Sandboxes the pool keeps ready now (it follows the load).",
                          g->pool_target },
                        { "pyexec_warm_sandboxes_let_go", "Ready sandboxes ended because the load needed fewer.",
                          g->let_go },
                        { "pyexec_memory_pss_bytes",
                          "Proportional set size of the service and every process it started (hugetlb pages apart).",
                          g->mem_pss },
                        { "pyexec_memory_hugetlb_bytes", "Hugetlb pages mapped by the service's processes.",
                          g->mem_hugetlb },
                        { "pyexec_memory_hugetlb_reserved_bytes",
                          "Hugetlb pages the service added to the host's pool (vm.nr_hugepages).",
                          g->mem_huge_reserved },
                        { "pyexec_processes", "The service's processes, one per address space.", g->mem_processes },
                        { "pyexec_processes_unreadable",
                          "The service's processes whose memory it may not read, not counted (unprivileged: the "
                          "sandboxes' programs and holders).",
                          g->mem_unreadable },
                };
                int r = 0;
                for (size_t i = 0; i < ELEMENTSOF(gauges) && r == 0; i++)
                        r = buf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", gauges[i].name, gauges[i].help,
                                       gauges[i].name, gauges[i].name, (unsigned long long)gauges[i].value);
                return r;
        }
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values. */
static double percentile(const double *v, size_t n, double p) {
        size_t rank;
        if (n == 0)
                return 0;
        rank = (size_t)ceil(p / 100.0 * (double)n);
        return v[rank ? rank - 1 : 0];
}

static json_t *percentiles(const double *src, size_t n) {
        double *v = malloc((n ? n : 1) * sizeof *v);
        json_t *o;
        if (!v)
                return NULL;
        memcpy(v, src, n * sizeof *v);
        qsort(v, n, sizeof *v, cmp_double);
        o = json_pack("{s:f,s:f,s:f}", "p50", percentile(v, n, 50), "p95", percentile(v, n, 95), "p99",
                      percentile(v, n, 99));
        free(v);
        return o;
}

json_t *metrics_stats(struct metrics *m, const struct metrics_gauges *g) {
        json_t *totals = json_object(), *o;
        uint64_t all = 0;

        pthread_mutex_lock(&m->lock);
        for (int s = 0; s < _PYEXEC_STATUS_MAX; s++) {
                json_object_set_new(totals, pyexec_status_to_string((enum pyexec_status)s),
                                    json_integer((json_int_t)m->executions[s]));
                all += m->executions[s];
        }
        o = json_pack("{s:I,s:o,s:{s:I,s:o,s:o},s:I,s:{s:I,s:I,s:I,s:I},s:b,s:b,s:f}", "executions", (json_int_t)all,
                      "byStatus", totals, "recent", "count", (json_int_t)m->recent_n, "wallMs",
                      percentiles(m->recent_wall, m->recent_n), "runMs", percentiles(m->recent_run, m->recent_n),
                      "rateLimited", (json_int_t)m->rate_limited, "queue", "depth", (json_int_t)g->queue_depth,
                      "capacity", (json_int_t)g->queue_capacity, "active", (json_int_t)g->active, "slots",
                      (json_int_t)g->slots, "ready", g->ready, "breakerOpen", g->breaker_open, "uptimeSeconds",
                      (double)(now_ns() - m->start_ns) / 1e9);
        if (o)
                json_object_set_new(o, "casesNotRun",
                                    json_pack("{s:I,s:I}", "timeLimit", (json_int_t)m->not_run[NOT_RUN_TIME_LIMIT],
                                              "clientGone", (json_int_t)m->not_run[NOT_RUN_CLIENT_GONE]));
        pthread_mutex_unlock(&m->lock);
        if (o)
                json_object_set_new(o, "warm",
                                    g->warm ? json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I},s:I}", "zygotePid",
                                                        (json_int_t)g->zygote_pid, "ready", (json_int_t)g->warm_ready,
                                                        "sandboxes", (json_int_t)g->warm_sandboxes, "takenReady",
                                                        (json_int_t)g->warm_taken_ready, "builtOnDemand",
                                                        (json_int_t)g->warm_on_demand, "failures",
                                                        (json_int_t)g->warm_failures, "zygotes",
                                                        (json_int_t)g->zygotes, "zygoteDeaths",
                                                        (json_int_t)g->zygote_deaths, "networkNamespaces", "made",
                                                        (json_int_t)g->netns_made, "reused",
                                                        (json_int_t)g->netns_reused, "zygoteHugePages",
                                                        (json_int_t)g->zygote_huge_pages)
                                            : json_null());
        if (o && g->warm) {
                json_t *w = json_object_get(o, "warm");
                json_object_set_new(w, "poolTarget", json_integer((json_int_t)g->pool_target));
                json_object_set_new(w, "letGo", json_integer((json_int_t)g->let_go));
                json_object_set_new(w, "hugePages",
                                    json_pack("{s:b,s:s,s:f}", "on", g->huge_pages, "why",
                                              g->huge_pages_why ? g->huge_pages_why : "", "cowFaultUs",
                                              (double)g->cow_fault_ns / 1e3));
                json_object_set_new(w, "prefault", json_string(g->prefault ? g->prefault : ""));
        }
        if (o && g->have_memory) {
                /* The hugetlb pages reserved and not mapped count too: no
                 * one else can use them. */
                uint64_t huge = g->mem_hugetlb > g->mem_huge_reserved ? g->mem_hugetlb : g->mem_huge_reserved;
                json_object_set_new(o, "memory",
                                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "processes", (json_int_t)g->mem_processes,
                                              "unreadable", (json_int_t)g->mem_unreadable, "pssBytes",
                                              (json_int_t)g->mem_pss, "hugetlbBytes", (json_int_t)g->mem_hugetlb,
                                              "hugetlbReservedBytes", (json_int_t)g->mem_huge_reserved, "totalBytes",
                                              (json_int_t)(g->mem_pss + huge)));
        }
        return o;
}
