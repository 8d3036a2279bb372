/* SPDX-License-Identifier: MIT */
/*
 * submissions: asynchronous executions. POST /api/submissions takes one
 * request of /api/execute, or a batch of them, with an optional callbackUrl,
 * and answers 202 with their ids once they are queued (queue.h); workers
 * (threads of `pyexec serve`, or of `pyexec worker` on any machine when
 * the queue is Redis) take them, run them through the execution slots
 * (executor.h), store the result and send the callback (webhook.h).
 * GET /api/submissions/{id} tells the state and, once done, the result.
 *
 * The HTTP side (http.c) parses nothing of a submission itself: it hands
 * the body here and gets back a status code and an answer, or is told to
 * suspend the connection until the results are in (?wait=).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "executor.h"
#include "jobs.h"
#include "metrics.h"
#include "pyexec.h"
#include "queue.h"

struct submissions_env {
        const struct config *cfg;
        struct pyexec_sandbox *sb;
        struct executor *ex;
        struct metrics *metrics; /* may be NULL (pyexec worker) */
        const struct job_set *jobs;
};

struct submissions;

/* What submissions_new() would refuse in the configuration alone (the
 * callbacks' keys, QUEUE_URL's form, the libraries they need), checked
 * before anything costly starts: -errno with *ret_why (malloc'd). */
int submissions_check_config(const struct config *cfg, char **ret_why);

/* The queue (QUEUE_URL), the callbacks (CALLBACK_ALLOWED_HOSTS) and
 * cfg->n_queue_workers worker threads. -errno with *ret_why (malloc'd). */
int submissions_new(const struct submissions_env *env, struct submissions **ret, char **ret_why);
/* Workers take nothing more, finish what they run, and are joined; those
 * waiting for results are told (submissions_wait) now. The rest still
 * answers (accept, describe) until submissions_free(). */
void submissions_stop(struct submissions *s);
/* Stops if need be; callbacks still pending are given up. */
void submissions_free(struct submissions *s);

/* An answer to give: status code, body, Retry-After (s, 0: none), and
 * fields for the request's log line. */
struct submissions_reply {
        unsigned http;
        json_t *body;
        unsigned retry_after_s;
        bool replayed; /* Idempotent-Replayed: true */
        json_t *log;
};
void submissions_reply_done(struct submissions_reply *r);

/* What a POST accepted, for the wait and the answer. */
struct submissions_accepted {
        char (*ids)[QUEUE_ID_LEN + 1];
        size_t n;
        bool batch;
};
void submissions_accepted_done(struct submissions_accepted *a);

/* POST /api/submissions (job: NULL) or POST /api/jobs/{job} with "async":
 * validate, enqueue, remember the Idempotency-Key (may be NULL). On
 * success returns 0 with *ret_acc; else -errno with *ret_reply the
 * refusal. admit(ctx, doc, units) decides, after the validation and
 * before anything is queued, whether the client may have units executions
 * now (each test case counts; the rate limit), doc being the parsed body:
 * its -errno is returned as it is, with no reply. A repeated
 * Idempotency-Key is not admitted again. */
int submissions_accept(struct submissions *s, const char *body, size_t len, const char *job, const char *idem_key,
                       int (*admit)(void *ctx, const json_t *doc, uint64_t units), void *ctx,
                       struct submissions_accepted *ret_acc, struct submissions_reply *ret_reply);
/* The answer about the accepted: each one's state, the results of those
 * done; 200 when all are done, else 202. */
void submissions_describe(struct submissions *s, const struct submissions_accepted *a, struct submissions_reply *ret);
/* GET /api/submissions/{id} and GET /api/submissions?ids=a,b,c. */
void submissions_get(struct submissions *s, const char *id, struct submissions_reply *ret);
void submissions_get_many(struct submissions *s, const char *ids, struct submissions_reply *ret);

/* Call done(ctx), from another thread, once every accepted submission is
 * done or at deadline_ns, whichever is first (at once if they are). a must
 * stay valid until then. -ENOMEM: not registered (answer now). */
int submissions_wait(struct submissions *s, const struct submissions_accepted *a, uint64_t deadline_ns,
                     void (*done)(void *ctx), void *ctx);

/* For /health/ready: NULL when the queue is usable, else why not. */
const char *submissions_unready(struct submissions *s);

/* /api/stats's "submissions" and the pyexec_submissions_* metrics. */
json_t *submissions_stats_json(struct submissions *s);
void submissions_render_metrics(struct submissions *s, struct buf *out);
