/* SPDX-License-Identifier: MIT */
/*
 * queue: the asynchronous submissions (POST /api/submissions) wait here for
 * a worker, and their results are kept here until RESULT_TTL. One small
 * interface, two backends:
 *
 *   memory (queue-mem.c)   in the service's process: nothing to install,
 *                          lost when the process ends (said in /api/stats
 *                          and at start-up);
 *   redis (queue-redis.c)  Redis Streams (QUEUE_URL=redis://...): any
 *                          number of `pyexec serve` instances enqueue, any
 *                          number of `pyexec worker` processes on any
 *                          machines take work through one consumer group.
 *
 * A task is delivered at least once. It is acknowledged only after its
 * result is stored, and the first result stored wins (a task run twice,
 * because its worker's lease ran out, is stored once; the second finish
 * reports *ret_stored = false). A task whose worker died is taken by
 * another once its lease (lease_ms since the last take or touch) has run
 * out; one delivered more than max_deliveries times is finished by the
 * worker that sees it as dead (an internal_error result saying so).
 *
 * Every function is safe to call from several threads at once, and
 * returns 0 or -errno; -ENOTCONN (with the reason in *ret_why where there
 * is one) means the backend is unreachable.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A submission's id: 32 lowercase hex digits (128 random bits). */
#define QUEUE_ID_LEN 32

struct queue_options {
        uint64_t lease_ms;       /* a taken task's lease (QUEUE_LEASE) */
        uint64_t max_deliveries; /* MAX_DELIVERIES */
        uint64_t result_ttl_s;   /* RESULT_TTL: results (and idempotency keys) expire */
        const char *name;        /* the stream's and keys' prefix (redis): "pyexec" */
};

/* A consumer's name (take()): 1 to QUEUE_CONSUMER_MAX characters of
 * [A-Za-z0-9._:-]. */
#define QUEUE_CONSUMER_MAX 63

/* What a worker took. */
struct queue_item {
        char id[QUEUE_ID_LEN + 1];
        char *task;                            /* the task's JSON text, as enqueued (malloc'd) */
        uint64_t deliveries;                   /* 1 the first time it is taken */
        char lease[64];                        /* the backend's handle of this delivery (redis: the entry id) */
        char consumer[QUEUE_CONSUMER_MAX + 1]; /* who took it: touch() keeps the lease in its name */
};
void queue_item_done(struct queue_item *it);

enum queue_state {
        QUEUE_QUEUED,  /* waiting for a worker */
        QUEUE_RUNNING, /* taken, not finished */
        QUEUE_DONE,    /* its result is stored */
};
const char *queue_state_to_string(enum queue_state s);

struct queue_status {
        enum queue_state state;
        double progress; /* 0..1 as the task last reported it; < 0: none */
        char *result;    /* QUEUE_DONE: the result's JSON text (malloc'd) */
};
void queue_status_done(struct queue_status *s);
void queue_outbox_free(char **ids, char **texts, size_t n);

/* Counts since the queue was created (redis: since its keys were), and
 * the gauges of now. */
struct queue_stats {
        uint64_t depth;         /* gauge: enqueued, not yet taken */
        uint64_t pending;       /* gauge: taken, not yet finished */
        uint64_t enqueued;      /* tasks added */
        uint64_t claimed;       /* deliveries after a lease ran out */
        uint64_t dead_lettered; /* finished as dead (max_deliveries) */
        uint64_t stored;        /* results stored */
        uint64_t duplicates;    /* finishes whose result was already stored */
        uint64_t outbox;        /* gauge: callbacks in the outbox, not yet delivered or given up */
};

struct queue;

/* A finished task's callback for the outbox. held: leased to the caller
 * for lease_ms (it delivers); else any process may claim it at once. */
struct queue_callback {
        const char *text;
        bool held;
};

struct queue_ops {
        const char *name; /* "memory", "redis" */
        bool persistent;  /* whether accepted tasks survive the process */
        /* Add n tasks, all or none; ids[i] names tasks[i] (JSON text).
         * -EINVAL for an id that is not QUEUE_ID_LEN lowercase hex digits;
         * memory: -EEXIST for an id it already holds. */
        int (*enqueue)(struct queue *q, const char *const *ids, const char *const *tasks, size_t n);
        /* Idempotency-Key: a new key remembers (fingerprint, value) for
         * result_ttl_s and returns 0; a known key with the same
         * fingerprint returns 1 and its value in *ret_value (malloc'd);
         * with another fingerprint, -EEXIST. forget() drops a key whose
         * enqueue failed. */
        int (*remember)(struct queue *q, const char *key, const char *fingerprint, const char *value, char **ret_value);
        int (*forget)(struct queue *q, const char *key);
        /* Take the next task for consumer (a name unique to one worker
         * thread, and stable across restarts, such as host and thread
         * index: Redis keeps every consumer name a group has seen): one
         * whose lease ran out first (deliveries > 1, counted in claimed),
         * else a new one. Waits up to block_ms (0: does not wait);
         * -EAGAIN when none came, -EINVAL for a bad consumer name.
         * A task delivered more than max_deliveries times is returned like
         * any other: the caller sees it.deliveries > max_deliveries and
         * finishes it as dead. */
        int (*take)(struct queue *q, const char *consumer, uint64_t block_ms, struct queue_item *ret);
        /* Still working on it: the lease starts again, the state is
         * running, progress (0..1, < 0: unchanged) is recorded. -ENOENT
         * when the task is no longer taken (its result is stored). */
        int (*touch)(struct queue *q, const struct queue_item *it, double progress);
        /* Store the result unless one is (first wins), then acknowledge
         * and remove the task. dead: the task was finished as dead
         * (counted in dead_lettered when its result is the one stored).
         * A finish after the result expired stores it again. cb (NULL:
         * none; only where the backend has an outbox): its text goes into
         * the outbox with the result, in one step and only when this
         * result is the one stored. */
        int (*finish)(struct queue *q, const struct queue_item *it, const char *result, const struct queue_callback *cb,
                      bool dead, bool *ret_stored);
        /* -ENOENT: never enqueued, or its result expired. */
        int (*status)(struct queue *q, const char *id, struct queue_status *ret);
        int (*stats)(struct queue *q, struct queue_stats *ret);
        /* The callbacks' outbox, where the backend outlives a process
         * (NULL otherwise): what finish() put there stays until
         * outbox_remove(), leased to one process at a time. The process
         * delivering an entry renews its lease every third of lease_ms;
         * an entry whose lease ran out (its process died) is taken by the
         * next outbox_claim(), which leases up to max entries to the
         * caller: their ids and texts, *ret_n of them (arrays and strings
         * malloc'd, freed with queue_outbox_free()). */
        int (*outbox_claim)(struct queue *q, size_t max, char ***ret_ids, char ***ret_texts, size_t *ret_n);
        int (*outbox_renew)(struct queue *q, const char *const *ids, size_t n);
        int (*outbox_remove)(struct queue *q, const char *id);
        /* Whether it can be used now; -ENOTCONN with *ret_why (malloc'd). */
        int (*check)(struct queue *q, char **ret_why);
        void (*free)(struct queue *q);
};

/* Every backend's struct starts with this. */
struct queue {
        const struct queue_ops *ops;
        struct queue_options o;
};

/* Whether id is QUEUE_ID_LEN lowercase hex digits; whether consumer is a
 * valid consumer name (see QUEUE_CONSUMER_MAX). */
bool queue_id_is_valid(const char *id);
bool queue_consumer_is_valid(const char *consumer);

int queue_mem_new(const struct queue_options *o, struct queue **ret);
/* url: redis://[:password@]host[:port][/db] or unix:///path/to/redis.sock;
 * *ret_why (malloc'd) says what was wrong with it. Does not connect: the
 * first use does, and every use reconnects after a failure. libhiredis
 * writes with write(2): the process ignores SIGPIPE (pyexec's main does),
 * or a server that goes away while a command is sent kills it. */
int queue_redis_new(const char *url, const struct queue_options *o, struct queue **ret, char **ret_why);

static inline void queue_free(struct queue *q) {
        if (q)
                q->ops->free(q);
}
