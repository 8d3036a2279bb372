/* SPDX-License-Identifier: MIT */
/*
 * executor: execution slots and the bounded queue in front of them, with the
 * circuit breaker that stops admitting work while sandboxes cannot start.
 *
 * A job is admitted while running + waiting < slots + queue size; beyond
 * that the caller answers 503 at once. Each of `slots` worker threads takes
 * the oldest job, asks whether its client is still there (a job whose client
 * left is dropped without running), and runs it.
 *
 * Breaker: `threshold` consecutive sandbox failures open it; while open every
 * submission is refused with the time left; after `cooldown` one job is let
 * through as a probe: success closes the breaker, failure opens it again.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One job for a slot (http.c: a request's runs), embedded in the caller's
 * own struct: the callbacks get it back and find their struct around it. */
struct executor_task {
        /* Runs on a worker thread. */
        void (*run)(struct executor_task *j);
        /* Whether the client went away (checked just before running). */
        bool (*abandoned)(struct executor_task *j);
        /* Instead of run, for an abandoned job. */
        void (*drop)(struct executor_task *j);
        /* After run or drop, once the job's slot is free again: publish the
         * outcome here (a client told before the slot is freed could come
         * back and find it still taken). */
        void (*complete)(struct executor_task *j);
        uint64_t enqueued_ns;
        struct executor_task *next;
};

enum submit_result {
        SUBMIT_OK,
        SUBMIT_QUEUE_FULL,
        SUBMIT_BREAKER_OPEN,
        SUBMIT_CLOSED, /* shutting down */
};

struct executor_config {
        unsigned slots;
        size_t queue_size;
        unsigned breaker_threshold;
        uint64_t breaker_cooldown_ms;
};

struct executor;

int executor_new(const struct executor_config *c, struct executor **ret);
/* Stop admitting, let every admitted job finish, join the workers, free. */
struct executor *executor_free(struct executor *e);

/* On refusal, *ret_retry_after_ms says when trying again makes sense. */
enum submit_result executor_submit(struct executor *e, struct executor_task *j, uint64_t *ret_retry_after_ms);

/* Feed the breaker: whether a run's sandbox failed to start (internal_error). */
void executor_report(struct executor *e, bool sandbox_failed);
/* An admitted job that tried no sandbox (dropped, or refused before its
 * run): if it was the half-open probe, the next submission probes. */
void executor_report_nothing_ran(struct executor *e);

/* Stop admitting new jobs (graceful shutdown begins); admitted jobs still run. */
void executor_close(struct executor *e);
/* Block until nothing is queued or running. */
void executor_wait_idle(struct executor *e);

struct executor_state {
        size_t queued, active, slots, queue_size;
        bool breaker_open;
        uint64_t breaker_retry_ms; /* when open */
};
void executor_get_state(struct executor *e, struct executor_state *ret);
