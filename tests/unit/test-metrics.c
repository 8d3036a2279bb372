/* SPDX-License-Identifier: MIT */
/*
 * metrics: the Prometheus text (families, labels, counts, cumulative
 * histogram buckets) and the /api/stats object (nearest-rank percentiles of
 * the recent runs).
 */
#include "test-helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "pyexec.h"
#include "util.h"

static const struct metrics_gauges gauges = {
        .queue_depth = 3,
        .queue_capacity = 100,
        .active = 2,
        .slots = 5,
        .ready = true,
        .breaker_open = false,
};

static struct metrics *new_metrics(void) {
        struct metrics *m = metrics_new();
        assert_non_null(m);
        return m;
}

/* Render into a fresh buffer; the caller frees b.data. */
static char *render(struct metrics *m, const struct metrics_gauges *g) {
        struct buf b;
        buf_init(&b, 1 << 20);
        assert_int_equal(metrics_render(m, g, &b), 0);
        assert_non_null(b.data);
        assert_int_equal(strlen(b.data), b.len);
        return buf_steal(&b);
}

/* line must be a whole line of text. */
static void assert_line(const char *text, const char *line) {
        size_t n = strlen(line);
        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        fail_msg("line '%s' not in:\n%s", line, text);
}

/* The value of the sample line starting with "name " (or "name{...} "). */
static double sample(const char *text, const char *series) {
        size_t n = strlen(series);
        for (const char *p = text; (p = strstr(p, series)); p++)
                if ((p == text || p[-1] == '\n') && p[n] == ' ')
                        return strtod(p + n + 1, NULL);
        fail_msg("no sample '%s' in:\n%s", series, text);
        return NAN;
}

static const char *const statuses[] = { "ok",           "runtime_error",    "syntax_error",  "timeout",
                                        "memory_limit", "output_limit",     "policy_violation", "internal_error" };
static const char *const bucket_labels[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                             "1",     "2.5",  "5",     "10",   "30",  "60",   "300" };

static void test_render_empty(void **state) {
        struct metrics *m = new_metrics();
        char *t = render(m, &gauges), line[128];

        assert_line(t, "# TYPE pyexec_build_info gauge");
        assert_line(t, "pyexec_build_info{version=\"" PYEXEC_VERSION "\"} 1");
        assert_line(t, "# TYPE pyexec_uptime_seconds gauge");
        assert_true(sample(t, "pyexec_uptime_seconds") >= 0);
        assert_line(t, "# TYPE pyexec_executions_total counter");
        assert_int_equal(ELEMENTSOF(statuses), _PYEXEC_STATUS_MAX);
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
                snprintf(line, sizeof line, "pyexec_executions_total{status=\"%s\"} 0", statuses[i]);
                assert_line(t, line);
        }
        assert_line(t, "# TYPE pyexec_http_requests_total counter");
        assert_null(strstr(t, "pyexec_http_requests_total{")); /* no samples before any request */
        assert_line(t, "# TYPE pyexec_rate_limited_total counter");
        assert_line(t, "pyexec_rate_limited_total 0");
        assert_line(t, "# TYPE pyexec_rejected_total counter");
        assert_line(t, "pyexec_rejected_total{reason=\"queue_full\"} 0");
        assert_line(t, "pyexec_rejected_total{reason=\"breaker_open\"} 0");
        assert_line(t, "pyexec_rejected_total{reason=\"client_gone\"} 0");
        assert_line(t, "pyexec_rejected_total{reason=\"shutting_down\"} 0");
        assert_line(t, "# TYPE pyexec_cases_not_run_total counter");
        assert_line(t, "pyexec_cases_not_run_total{reason=\"time_limit\"} 0");
        assert_line(t, "pyexec_cases_not_run_total{reason=\"client_gone\"} 0");
        assert_line(t, "# TYPE pyexec_execution_duration_seconds histogram");
        assert_line(t, "# TYPE pyexec_queue_wait_seconds histogram");
        for (size_t i = 0; i < ELEMENTSOF(bucket_labels); i++) {
                snprintf(line, sizeof line, "pyexec_execution_duration_seconds_bucket{le=\"%s\"} 0", bucket_labels[i]);
                assert_line(t, line);
                snprintf(line, sizeof line, "pyexec_queue_wait_seconds_bucket{le=\"%s\"} 0", bucket_labels[i]);
                assert_line(t, line);
        }
        assert_line(t, "pyexec_execution_duration_seconds_bucket{le=\"+Inf\"} 0");
        assert_line(t, "pyexec_execution_duration_seconds_sum 0.000000");
        assert_line(t, "pyexec_execution_duration_seconds_count 0");
        assert_line(t, "pyexec_queue_wait_seconds_count 0");
        /* gauges, from the caller */
        assert_line(t, "pyexec_queue_depth 3");
        assert_line(t, "pyexec_queue_capacity 100");
        assert_line(t, "pyexec_active_executions 2");
        assert_line(t, "pyexec_execution_slots 5");
        assert_line(t, "pyexec_ready 1");
        assert_line(t, "pyexec_breaker_open 0");
        assert_line(t, "# TYPE pyexec_breaker_open gauge");
        /* every family has HELP and TYPE, and the text ends with a newline */
        assert_true(t[strlen(t) - 1] == '\n');
        for (const char *p = t; (p = strstr(p, "# TYPE ")); p++) {
                char fam[96], help[112];
                sscanf(p, "# TYPE %95s", fam);
                snprintf(help, sizeof help, "# HELP %s ", fam);
                if (!strstr(t, help))
                        fail_msg("family %s has no HELP", fam);
        }
        free(t);

        struct metrics_gauges g = { .ready = false, .breaker_open = true };
        t = render(m, &g);
        assert_line(t, "pyexec_ready 0");
        assert_line(t, "pyexec_breaker_open 1");
        assert_line(t, "pyexec_queue_depth 0");
        free(t);
        metrics_free(m);
}

static void test_render_counts(void **state) {
        struct metrics *m = new_metrics();
        char *t;

        for (int i = 0; i < 3; i++)
                metrics_execution(m, PYEXEC_OK, 10, 12);
        metrics_execution(m, PYEXEC_TIMEOUT, 1000, 1001);
        metrics_execution(m, PYEXEC_INTERNAL_ERROR, 1, 2);
        metrics_http(m, ROUTE_EXECUTE, 200);
        metrics_http(m, ROUTE_EXECUTE, 200);
        metrics_http(m, ROUTE_EXECUTE, 400);
        metrics_http(m, ROUTE_EXECUTE, 429);
        metrics_http(m, ROUTE_HEALTH, 200);
        metrics_http(m, ROUTE_OTHER, 404);
        metrics_http(m, ROUTE_HEALTH_READY, 503);
        metrics_rate_limited(m);
        metrics_rate_limited(m);
        metrics_rejected(m, REJECT_QUEUE_FULL);
        metrics_rejected(m, REJECT_CLIENT_GONE);
        metrics_rejected(m, REJECT_CLIENT_GONE);
        metrics_rejected(m, _REJECT_MAX); /* out of range: ignored */
        metrics_cases_not_run(m, NOT_RUN_TIME_LIMIT, 7);
        metrics_cases_not_run(m, NOT_RUN_TIME_LIMIT, 1);
        metrics_cases_not_run(m, NOT_RUN_CLIENT_GONE, 40);
        metrics_cases_not_run(m, _NOT_RUN_MAX, 5); /* out of range: ignored */

        t = render(m, &gauges);
        assert_line(t, "pyexec_executions_total{status=\"ok\"} 3");
        assert_line(t, "pyexec_executions_total{status=\"timeout\"} 1");
        assert_line(t, "pyexec_executions_total{status=\"internal_error\"} 1");
        assert_line(t, "pyexec_executions_total{status=\"runtime_error\"} 0");
        assert_line(t, "pyexec_http_requests_total{route=\"/api/execute\",code=\"200\"} 2");
        assert_line(t, "pyexec_http_requests_total{route=\"/api/execute\",code=\"400\"} 1");
        assert_line(t, "pyexec_http_requests_total{route=\"/api/execute\",code=\"429\"} 1");
        assert_line(t, "pyexec_http_requests_total{route=\"/health\",code=\"200\"} 1");
        assert_line(t, "pyexec_http_requests_total{route=\"other\",code=\"404\"} 1");
        assert_line(t, "pyexec_http_requests_total{route=\"/health/ready\",code=\"503\"} 1");
        assert_null(strstr(t, "route=\"/api/metrics\""));
        assert_line(t, "pyexec_rate_limited_total 2");
        assert_line(t, "pyexec_rejected_total{reason=\"queue_full\"} 1");
        assert_line(t, "pyexec_rejected_total{reason=\"client_gone\"} 2");
        assert_line(t, "pyexec_rejected_total{reason=\"breaker_open\"} 0");
        assert_line(t, "pyexec_cases_not_run_total{reason=\"time_limit\"} 8");
        assert_line(t, "pyexec_cases_not_run_total{reason=\"client_gone\"} 40");
        assert_line(t, "pyexec_execution_duration_seconds_count 5");
        free(t);
        metrics_free(m);
}

/* Route names and codes per route: at most 16 distinct codes are kept. */
static void test_http_codes_bounded(void **state) {
        struct metrics *m = new_metrics();
        char *t, line[128];

        for (unsigned code = 200; code < 220; code++)
                metrics_http(m, ROUTE_STATS, code);
        metrics_http(m, ROUTE_STATS, 200);
        t = render(m, &gauges);
        assert_line(t, "pyexec_http_requests_total{route=\"/api/stats\",code=\"200\"} 2");
        for (unsigned code = 201; code < 216; code++) {
                snprintf(line, sizeof line, "pyexec_http_requests_total{route=\"/api/stats\",code=\"%u\"} 1", code);
                assert_line(t, line);
        }
        assert_null(strstr(t, "code=\"216\""));
        free(t);
        metrics_free(m);

        assert_string_equal(route_to_string(ROUTE_EXECUTE), "/api/execute");
        assert_string_equal(route_to_string(ROUTE_HEALTH_LIVE), "/health/live");
        assert_string_equal(route_to_string(ROUTE_ENVIRONMENT), "/api/environment");
        assert_string_equal(route_to_string(_ROUTE_MAX), "other");
}

static void test_histogram_cumulative(void **state) {
        struct metrics *m = new_metrics();
        /* wall ms: a bound itself counts in its bucket (le) */
        static const double wall_ms[] = { 3, 5, 7, 200, 1000, 400000 };
        static const unsigned want[] = {
                2, /* 0.005 */
                3, /* 0.01 */
                3, 3, 3,
                4, /* 0.25 */
                4,
                5, /* 1 */
                5, 5, 5, 5, 5, 5,
        };
        char *t, series[128];
        double prev = 0;

        for (size_t i = 0; i < ELEMENTSOF(wall_ms); i++)
                metrics_execution(m, PYEXEC_OK, wall_ms[i], wall_ms[i]);
        metrics_queue_wait(m, 0.0);
        metrics_queue_wait(m, 0.02);
        metrics_queue_wait(m, 61);
        t = render(m, &gauges);
        for (size_t i = 0; i < ELEMENTSOF(bucket_labels); i++) {
                snprintf(series, sizeof series, "pyexec_execution_duration_seconds_bucket{le=\"%s\"}", bucket_labels[i]);
                double v = sample(t, series);
                if (v != want[i])
                        fail_msg("%s = %g, expected %u", series, v, want[i]);
                assert_true(v >= prev);
                prev = v;
        }
        assert_true(sample(t, "pyexec_execution_duration_seconds_bucket{le=\"+Inf\"}") == 6);
        assert_line(t, "pyexec_execution_duration_seconds_count 6");
        assert_line(t, "pyexec_execution_duration_seconds_sum 401.215000");

        assert_true(sample(t, "pyexec_queue_wait_seconds_bucket{le=\"0.005\"}") == 1);
        assert_true(sample(t, "pyexec_queue_wait_seconds_bucket{le=\"0.025\"}") == 2);
        assert_true(sample(t, "pyexec_queue_wait_seconds_bucket{le=\"60\"}") == 2);
        assert_true(sample(t, "pyexec_queue_wait_seconds_bucket{le=\"300\"}") == 3);
        assert_true(sample(t, "pyexec_queue_wait_seconds_bucket{le=\"+Inf\"}") == 3);
        assert_line(t, "pyexec_queue_wait_seconds_count 3");
        assert_line(t, "pyexec_queue_wait_seconds_sum 61.020000");
        free(t);
        metrics_free(m);
}

static void test_render_into_capped_buffer(void **state) {
        struct metrics *m = new_metrics();
        struct buf b;

        buf_init(&b, 64);
        assert_true(metrics_render(m, &gauges, &b) < 0);
        assert_true(b.len <= 64);
        buf_done(&b);
        metrics_free(m);
}

/* ---- /api/stats ---- */

static double pct(json_t *stats, const char *which, const char *p) {
        json_t *v = json_object_get(json_object_get(json_object_get(stats, "recent"), which), p);
        assert_true(json_is_number(v));
        return json_number_value(v);
}

static void test_stats_shape(void **state) {
        struct metrics *m = new_metrics();
        json_t *s, *by, *q;

        metrics_execution(m, PYEXEC_OK, 10, 20);
        metrics_execution(m, PYEXEC_SYNTAX_ERROR, 30, 40);
        metrics_rate_limited(m);
        metrics_cases_not_run(m, NOT_RUN_TIME_LIMIT, 3);
        metrics_cases_not_run(m, NOT_RUN_CLIENT_GONE, 4);
        s = metrics_stats(m, &gauges);
        assert_non_null(s);
        assert_int_equal(json_integer_value(json_object_get(s, "executions")), 2);
        /* cases never started are not executions */
        assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "casesNotRun"), "timeLimit")), 3);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "casesNotRun"), "clientGone")), 4);
        by = json_object_get(s, "byStatus");
        assert_int_equal(json_object_size(by), _PYEXEC_STATUS_MAX);
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                assert_true(json_is_integer(json_object_get(by, statuses[i])));
        assert_int_equal(json_integer_value(json_object_get(by, "ok")), 1);
        assert_int_equal(json_integer_value(json_object_get(by, "syntax_error")), 1);
        assert_int_equal(json_integer_value(json_object_get(by, "timeout")), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "recent"), "count")), 2);
        assert_int_equal(json_integer_value(json_object_get(s, "rateLimited")), 1);
        q = json_object_get(s, "queue");
        assert_int_equal(json_integer_value(json_object_get(q, "depth")), 3);
        assert_int_equal(json_integer_value(json_object_get(q, "capacity")), 100);
        assert_int_equal(json_integer_value(json_object_get(q, "active")), 2);
        assert_int_equal(json_integer_value(json_object_get(q, "slots")), 5);
        assert_true(json_is_true(json_object_get(s, "ready")));
        assert_true(json_is_false(json_object_get(s, "breakerOpen")));
        assert_true(json_is_real(json_object_get(s, "uptimeSeconds")));
        assert_true(json_real_value(json_object_get(s, "uptimeSeconds")) >= 0);
        /* 2 values: nearest rank p50 is the first, p95 and p99 the second */
        assert_true(pct(s, "wallMs", "p50") == 10);
        assert_true(pct(s, "wallMs", "p95") == 30);
        assert_true(pct(s, "wallMs", "p99") == 30);
        assert_true(pct(s, "runMs", "p50") == 20);
        assert_true(pct(s, "runMs", "p99") == 40);
        json_decref(s);
        metrics_free(m);
}

static void test_stats_empty(void **state) {
        struct metrics *m = new_metrics();
        json_t *s = metrics_stats(m, &gauges);

        assert_non_null(s);
        assert_int_equal(json_integer_value(json_object_get(s, "executions")), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "recent"), "count")), 0);
        assert_true(pct(s, "wallMs", "p50") == 0);
        assert_true(pct(s, "wallMs", "p95") == 0);
        assert_true(pct(s, "runMs", "p99") == 0);
        json_decref(s);
        metrics_free(m);
}

/* Nearest rank: the value at position ceil(p/100 * n) of the sorted data. */
static void test_stats_percentiles_nearest_rank(void **state) {
        struct metrics *m = new_metrics();
        json_t *s;

        /* 1..100, fed in a scrambled order */
        for (int i = 0; i < 100; i++)
                metrics_execution(m, PYEXEC_OK, (double)((i * 37) % 100 + 1), (double)(1000 - i));
        s = metrics_stats(m, &gauges);
        assert_true(pct(s, "wallMs", "p50") == 50);
        assert_true(pct(s, "wallMs", "p95") == 95);
        assert_true(pct(s, "wallMs", "p99") == 99);
        /* run: 901..1000 */
        assert_true(pct(s, "runMs", "p50") == 950);
        assert_true(pct(s, "runMs", "p95") == 995);
        assert_true(pct(s, "runMs", "p99") == 999);
        json_decref(s);
        metrics_free(m);

        /* 10 values: ranks 5, 10, 10 */
        m = new_metrics();
        for (int i = 10; i >= 1; i--)
                metrics_execution(m, PYEXEC_OK, i * 10.5, 0);
        s = metrics_stats(m, &gauges);
        assert_true(pct(s, "wallMs", "p50") == 52.5);
        assert_true(pct(s, "wallMs", "p95") == 105);
        assert_true(pct(s, "wallMs", "p99") == 105);
        json_decref(s);
        metrics_free(m);

        /* 1 value: every percentile is it */
        m = new_metrics();
        metrics_execution(m, PYEXEC_OK, 7.25, 8.5);
        s = metrics_stats(m, &gauges);
        assert_true(pct(s, "wallMs", "p50") == 7.25);
        assert_true(pct(s, "wallMs", "p99") == 7.25);
        assert_true(pct(s, "runMs", "p95") == 8.5);
        json_decref(s);
        metrics_free(m);
}

/* Only the last 1024 runs count for percentiles; totals count them all. */
static void test_stats_recent_window(void **state) {
        struct metrics *m = new_metrics();
        json_t *s;

        for (int i = 0; i < 1024; i++)
                metrics_execution(m, PYEXEC_OK, 1000, 1000);
        for (int i = 0; i < 1000; i++)
                metrics_execution(m, PYEXEC_OK, 1, 1);
        s = metrics_stats(m, &gauges);
        assert_int_equal(json_integer_value(json_object_get(s, "executions")), 2024);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "recent"), "count")), 1024);
        /* 1000 ones and 24 thousands: rank 973 (p95) is a one, 1014 (p99) a thousand */
        assert_true(pct(s, "wallMs", "p50") == 1);
        assert_true(pct(s, "wallMs", "p95") == 1);
        assert_true(pct(s, "wallMs", "p99") == 1000);
        json_decref(s);
        metrics_free(m);
}

static void test_free_null(void **state) {
        assert_null(metrics_free(NULL));
        assert_null(metrics_free(new_metrics()));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_render_empty),
                cmocka_unit_test(test_render_counts),
                cmocka_unit_test(test_http_codes_bounded),
                cmocka_unit_test(test_histogram_cumulative),
                cmocka_unit_test(test_render_into_capped_buffer),
                cmocka_unit_test(test_stats_shape),
                cmocka_unit_test(test_stats_empty),
                cmocka_unit_test(test_stats_percentiles_nearest_rank),
                cmocka_unit_test(test_stats_recent_window),
                cmocka_unit_test(test_free_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
