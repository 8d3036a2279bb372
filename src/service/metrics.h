/* SPDX-License-Identifier: MIT */
/*
 * metrics: what the service counts, for GET /api/metrics (Prometheus text
 * exposition format) and GET /api/stats (JSON). Thread-safe.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "pyexec.h"
#include "util.h"

enum route {
        ROUTE_EXECUTE,
        ROUTE_HEALTH,
        ROUTE_HEALTH_LIVE,
        ROUTE_HEALTH_READY,
        ROUTE_METRICS,
        ROUTE_STATS,
        ROUTE_ENVIRONMENT,
        ROUTE_JOBS,
        ROUTE_JOB_RUN,
        ROUTE_SUBMISSIONS,
        ROUTE_SUBMISSION,
        ROUTE_OPENAPI,
        ROUTE_PLAYGROUND,
        ROUTE_OTHER,
        _ROUTE_MAX,
};

const char *route_to_string(enum route r);

enum reject_reason {
        REJECT_QUEUE_FULL,
        REJECT_BREAKER_OPEN,
        REJECT_CLIENT_GONE,
        REJECT_SHUTTING_DOWN,
        _REJECT_MAX,
};

/* Why a request's test case was never started. */
enum not_run_reason {
        NOT_RUN_TIME_LIMIT,  /* the request's total time limit was reached */
        NOT_RUN_CLIENT_GONE, /* the client went away */
        _NOT_RUN_MAX,
};

struct metrics;

struct metrics *metrics_new(void);
struct metrics *metrics_free(struct metrics *m);

void metrics_http(struct metrics *m, enum route r, unsigned code);
/* One execution (or test case) finished: its status, wall time (ms) and the
 * time the whole run took in the library, sandbox included (ms). */
void metrics_execution(struct metrics *m, enum pyexec_status s, double wall_ms, double run_ms);
void metrics_queue_wait(struct metrics *m, double seconds);
void metrics_rate_limited(struct metrics *m);
void metrics_rejected(struct metrics *m, enum reject_reason why);
/* n test cases of one request were never started. */
void metrics_cases_not_run(struct metrics *m, enum not_run_reason why, uint64_t n);

/* Gauges are read from the executor at render time. */
struct metrics_gauges {
        uint64_t queue_depth, queue_capacity, active, slots;
        bool ready, breaker_open;
        /* The warm path (zeros when the service runs cold). */
        bool warm;
        uint64_t warm_ready, warm_sandboxes, warm_taken_ready, warm_on_demand, warm_failures, zygotes, zygote_deaths,
                netns_made, netns_reused, zygote_huge_pages, pool_target, let_go, cow_fault_ns;
        int64_t zygote_pid;
        bool huge_pages;
        const char *prefault, *huge_pages_why;
        /* The service and every process it started (procmem.h), and the
         * hugetlb pages it added to the host's pool: what it costs the
         * host. */
        bool have_memory;
        uint64_t mem_processes, mem_unreadable, mem_pss, mem_hugetlb, mem_huge_reserved;
};

double metrics_uptime_seconds(struct metrics *m);

/* Prometheus text format into out. */
int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *out);
/* The /api/stats object. */
json_t *metrics_stats(struct metrics *m, const struct metrics_gauges *g);
