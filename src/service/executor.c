/* SPDX-License-Identifier: MIT */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "util.h"

/* Workers run pyexec_run(): a few KiB of stack suffice, and every thread's
 * stack is copied into each clone()d init. Under ThreadSanitizer the block
 * also holds its per-thread state (static TLS, about 770 KiB), and its
 * pthread_create then leaves only 128 KiB of stack, less than a warm run's
 * deepest frames need unoptimized (watch_run's 64 KiB read buffer, then
 * the cgroup reads). */
#ifdef __SANITIZE_THREAD__
#define WORKER_STACK_SIZE (1024 * 1024 + 256 * 1024)
#else
#define WORKER_STACK_SIZE (256 * 1024)
#endif

enum breaker {
        BREAKER_CLOSED,
        BREAKER_OPEN,
        BREAKER_HALF_OPEN, /* one probe job admitted */
};

struct executor {
        pthread_mutex_t lock;
        pthread_cond_t work, idle;
        struct executor_task *head, *tail;
        size_t queued, active;
        struct executor_config cfg;
        bool closed;
        enum breaker breaker;
        unsigned failures;
        uint64_t opened_ns;
        pthread_t *threads;
        unsigned n_threads;
};

static void *worker(void *arg) {
        struct executor *e = arg;

        for (;;) {
                struct executor_task *j;
                pthread_mutex_lock(&e->lock);
                while (!e->head && !(e->closed && e->queued == 0))
                        pthread_cond_wait(&e->work, &e->lock);
                if (!e->head) {
                        pthread_mutex_unlock(&e->lock);
                        return NULL;
                }
                j = e->head;
                e->head = j->next;
                if (!e->head)
                        e->tail = NULL;
                e->queued--;
                e->active++;
                pthread_mutex_unlock(&e->lock);

                if (j->abandoned && j->abandoned(j)) {
                        j->drop(j);
                        executor_report_nothing_ran(e);
                } else
                        j->run(j);

                pthread_mutex_lock(&e->lock);
                e->active--;
                pthread_mutex_unlock(&e->lock);
                if (j->complete)
                        j->complete(j);
                /* Idle only once the outcome is published. */
                pthread_mutex_lock(&e->lock);
                if (e->active == 0 && e->queued == 0)
                        pthread_cond_broadcast(&e->idle);
                pthread_mutex_unlock(&e->lock);
        }
}

int executor_new(const struct executor_config *c, struct executor **ret) {
        struct executor *e = calloc(1, sizeof *e);
        int r;

        if (!e)
                return -ENOMEM;
        e->cfg = *c;
        pthread_mutex_init(&e->lock, NULL);
        pthread_cond_init(&e->work, NULL);
        pthread_cond_init(&e->idle, NULL);
        e->threads = calloc(c->slots, sizeof *e->threads);
        if (!e->threads) {
                free(e);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < c->slots; i++) {
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
                r = -pthread_create(&e->threads[i], &attr, worker, e);
                pthread_attr_destroy(&attr);
                if (r < 0) {
                        e->n_threads = i;
                        executor_free(e);
                        return r;
                }
        }
        e->n_threads = c->slots;
        *ret = e;
        return 0;
}

void executor_close(struct executor *e) {
        pthread_mutex_lock(&e->lock);
        e->closed = true;
        pthread_cond_broadcast(&e->work);
        pthread_mutex_unlock(&e->lock);
}

void executor_wait_idle(struct executor *e) {
        pthread_mutex_lock(&e->lock);
        while (e->active > 0 || e->queued > 0)
                pthread_cond_wait(&e->idle, &e->lock);
        pthread_mutex_unlock(&e->lock);
}

struct executor *executor_free(struct executor *e) {
        if (!e)
                return NULL;
        executor_close(e);
        for (unsigned i = 0; i < e->n_threads; i++)
                pthread_join(e->threads[i], NULL);
        free(e->threads);
        pthread_cond_destroy(&e->work);
        pthread_cond_destroy(&e->idle);
        pthread_mutex_destroy(&e->lock);
        free(e);
        return NULL;
}

/* Called with the lock held. */
static bool breaker_admits(struct executor *e, uint64_t now, uint64_t *ret_retry_ms) {
        uint64_t cooldown = e->cfg.breaker_cooldown_ms * 1000000ull;
        switch (e->breaker) {
        case BREAKER_CLOSED:
                return true;
        case BREAKER_OPEN:
                if (now - e->opened_ns >= cooldown) {
                        e->breaker = BREAKER_HALF_OPEN;
                        return true; /* this job is the probe */
                }
                *ret_retry_ms = (cooldown - (now - e->opened_ns)) / 1000000ull + 1;
                return false;
        case BREAKER_HALF_OPEN:
                *ret_retry_ms = 1000;
                return false;
        }
        return true;
}

enum submit_result executor_submit(struct executor *e, struct executor_task *j, uint64_t *ret_retry_after_ms) {
        uint64_t now = now_ns(), retry = 1000;
        enum submit_result r = SUBMIT_OK;

        pthread_mutex_lock(&e->lock);
        if (e->closed)
                r = SUBMIT_CLOSED;
        else if (e->queued + e->active >= e->cfg.slots + e->cfg.queue_size)
                r = SUBMIT_QUEUE_FULL;
        else if (!breaker_admits(e, now, &retry))
                r = SUBMIT_BREAKER_OPEN;
        if (r == SUBMIT_OK) {
                j->enqueued_ns = now;
                j->next = NULL;
                if (e->tail)
                        e->tail->next = j;
                else
                        e->head = j;
                e->tail = j;
                e->queued++;
                pthread_cond_signal(&e->work);
        }
        pthread_mutex_unlock(&e->lock);
        if (r != SUBMIT_OK && ret_retry_after_ms)
                *ret_retry_after_ms = retry;
        return r;
}

void executor_report_nothing_ran(struct executor *e) {
        pthread_mutex_lock(&e->lock);
        if (e->breaker == BREAKER_HALF_OPEN) {
                e->breaker = BREAKER_OPEN;
                e->opened_ns = 0; /* cooldown already over */
        }
        pthread_mutex_unlock(&e->lock);
}

void executor_report(struct executor *e, bool sandbox_failed) {
        pthread_mutex_lock(&e->lock);
        if (!sandbox_failed) {
                e->failures = 0;
                e->breaker = BREAKER_CLOSED;
        } else if (e->breaker == BREAKER_HALF_OPEN || ++e->failures >= e->cfg.breaker_threshold) {
                e->breaker = BREAKER_OPEN;
                e->opened_ns = now_ns();
        }
        pthread_mutex_unlock(&e->lock);
}

void executor_get_state(struct executor *e, struct executor_state *ret) {
        uint64_t now = now_ns(), cooldown = e->cfg.breaker_cooldown_ms * 1000000ull;
        pthread_mutex_lock(&e->lock);
        *ret = (struct executor_state){
                .queued = e->queued,
                .active = e->active,
                .slots = e->cfg.slots,
                .queue_size = e->cfg.queue_size,
                .breaker_open = e->breaker != BREAKER_CLOSED,
                .breaker_retry_ms = e->breaker == BREAKER_OPEN && now - e->opened_ns < cooldown
                                            ? (cooldown - (now - e->opened_ns)) / 1000000ull + 1
                                            : 0,
        };
        pthread_mutex_unlock(&e->lock);
}
