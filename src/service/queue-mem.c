/* SPDX-License-Identifier: MIT */
/*
 * queue-mem: the embedded backend, in the service's process (queue.h).
 *
 * One mutex guards everything. Every task is in the table by id and in
 * exactly one of three lists:
 *
 *   queued   FIFO of tasks not yet taken (take() pops the head);
 *   running  tasks taken and not finished, each with its lease deadline;
 *   done     tasks whose result is stored, in order of their expiry.
 *
 * result_ttl_s is the same for every result, so the done list (appended
 * at finish) and the idempotency keys' list (appended at remember) are in
 * order of expiry: every call first drops the expired heads, so memory is
 * bounded by what was stored in the last result_ttl_s.
 *
 * take() prefers a running task whose lease ran out (the earliest), then
 * the queued head; otherwise it waits on a condition variable, signalled by
 * enqueue, until block_ms or the earliest lease deadline, whichever comes
 * first, so a lease that runs out while a consumer waits is taken by it.
 */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* An intrusive doubly-linked list. */
struct link {
        struct link *prev, *next;
};

struct list {
        struct link head; /* head.next: first, head.prev: last */
        size_t n;
};

static void list_init(struct list *l) {
        l->head.prev = l->head.next = &l->head;
        l->n = 0;
}

static void list_append(struct list *l, struct link *e) {
        e->prev = l->head.prev;
        e->next = &l->head;
        l->head.prev->next = e;
        l->head.prev = e;
        l->n++;
}

static void list_remove(struct list *l, struct link *e) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
        e->prev = e->next = NULL;
        l->n--;
}

static struct link *list_first(const struct list *l) {
        return l->head.next == &l->head ? NULL : l->head.next;
}

/* A hash table of nodes keyed by strings, chained, grown at load 1. */
struct node {
        struct node *next;
        const char *key;
};

struct table {
        struct node **buckets;
        size_t n_buckets; /* a power of two, or 0 */
        size_t n;
};

static uint64_t hash_str(const char *s) {
        /* FNV-1a: ids are random and idempotency keys are the clients'
         * own, so a client can only slow its own lookups down. */
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
        return h;
}

static struct node **table_slot(struct table *t, const char *key) {
        if (t->n_buckets == 0)
                return NULL;
        struct node **p = &t->buckets[hash_str(key) & (t->n_buckets - 1)];
        while (*p && strcmp((*p)->key, key) != 0)
                p = &(*p)->next;
        return p;
}

static struct node *table_find(struct table *t, const char *key) {
        struct node **p = table_slot(t, key);
        return p ? *p : NULL;
}

static int table_reserve(struct table *t, size_t n) {
        if (n <= t->n_buckets)
                return 0;
        size_t nb = t->n_buckets ? t->n_buckets : 64;
        while (nb < n)
                nb *= 2;
        struct node **b = calloc(nb, sizeof *b);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (struct node *e = t->buckets[i], *next; e; e = next) {
                        next = e->next;
                        struct node **p = &b[hash_str(e->key) & (nb - 1)];
                        e->next = *p;
                        *p = e;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = nb;
        return 0;
}

/* The caller has reserved room (table_reserve(t, t->n + 1)) and checked
 * that the key is not there. */
static void table_add(struct table *t, struct node *e) {
        struct node **p = &t->buckets[hash_str(e->key) & (t->n_buckets - 1)];
        e->next = *p;
        *p = e;
        t->n++;
}

static void table_remove(struct table *t, struct node *e) {
        struct node **p = table_slot(t, e->key);
        if (p && *p == e) {
                *p = e->next;
                t->n--;
        }
}

struct mtask {
        struct node node; /* key: id */
        struct link link; /* in queued, running or done */
        char id[QUEUE_ID_LEN + 1];
        char *task; /* NULL once done */
        enum queue_state state;
        double progress;
        uint64_t deliveries;
        uint64_t deadline_ns; /* running: when the lease runs out; done: when the result expires */
        char *result;
};

struct midem {
        struct node node; /* key: key */
        struct link link; /* in idem */
        char *key;
        char *fingerprint;
        char *value;
        uint64_t expiry_ns;
};

struct queue_mem {
        struct queue q;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* CLOCK_MONOTONIC: enqueue broadcasts */
        struct table tasks, idems;
        struct list queued, running, done, idem;
        struct queue_stats stats; /* the counters (the gauges are the lists' lengths) */
};

static void mtask_free(struct mtask *t) {
        if (!t)
                return;
        free(t->task);
        free(t->result);
        free(t);
}

static void midem_free(struct midem *e) {
        if (!e)
                return;
        free(e->key);
        free(e->fingerprint);
        free(e->value);
        free(e);
}

static uint64_t ttl_ns(const struct queue_mem *m) {
        return m->q.o.result_ttl_s * 1000000000ull;
}

/* Drop the results and idempotency keys that expired. Under the lock. */
static void mem_sweep(struct queue_mem *m, uint64_t now) {
        struct link *l;
        while ((l = list_first(&m->done))) {
                struct mtask *t = container_of(l, struct mtask, link);
                if (t->deadline_ns > now)
                        break;
                list_remove(&m->done, l);
                table_remove(&m->tasks, &t->node);
                mtask_free(t);
        }
        while ((l = list_first(&m->idem))) {
                struct midem *e = container_of(l, struct midem, link);
                if (e->expiry_ns > now)
                        break;
                list_remove(&m->idem, l);
                table_remove(&m->idems, &e->node);
                midem_free(e);
        }
}

static int mem_enqueue(struct queue *q, const char *const *ids, const char *const *tasks, size_t n) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                if (!queue_id_is_valid(ids[i]) || !tasks[i])
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(ids[i], ids[j]) == 0)
                                return -EEXIST;
        }

        /* Everything is allocated before anything is added: all or none. */
        struct mtask **new = calloc(n ? n : 1, sizeof *new);
        if (!new)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                new[i] = calloc(1, sizeof *new[i]);
                if (!new[i] || !(new[i]->task = strdup(tasks[i]))) {
                        r = -ENOMEM;
                        goto out_free;
                }
                memcpy(new[i]->id, ids[i], QUEUE_ID_LEN + 1);
                new[i]->node.key = new[i]->id;
                new[i]->state = QUEUE_QUEUED;
                new[i]->progress = -1;
        }

        pthread_mutex_lock(&m->lock);
        mem_sweep(m, now_ns());
        r = table_reserve(&m->tasks, m->tasks.n + n);
        for (size_t i = 0; r == 0 && i < n; i++)
                if (table_find(&m->tasks, ids[i]))
                        r = -EEXIST;
        if (r == 0) {
                for (size_t i = 0; i < n; i++) {
                        table_add(&m->tasks, &new[i]->node);
                        list_append(&m->queued, &new[i]->link);
                        new[i] = NULL;
                }
                m->stats.enqueued += n;
                pthread_cond_broadcast(&m->cond);
        }
        pthread_mutex_unlock(&m->lock);

out_free:
        for (size_t i = 0; i < n; i++)
                mtask_free(new[i]);
        free(new);
        return r;
}

static int mem_remember(struct queue *q, const char *key, const char *fingerprint, const char *value,
                        char **ret_value) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r;

        /* As the Redis backend, which stores fingerprint "\n" value. */
        if (!key || !fingerprint || !value || strchr(fingerprint, '\n'))
                return -EINVAL;

        pthread_mutex_lock(&m->lock);
        uint64_t now = now_ns();
        mem_sweep(m, now);
        struct node *found = table_find(&m->idems, key);
        if (found) {
                struct midem *e = container_of(found, struct midem, node);
                if (strcmp(e->fingerprint, fingerprint) != 0)
                        r = -EEXIST;
                else {
                        char *v = strdup(e->value);
                        r = v ? 1 : -ENOMEM;
                        if (v && ret_value)
                                *ret_value = v;
                        else
                                free(v);
                }
                goto out_unlock;
        }

        struct midem *e = calloc(1, sizeof *e);
        if (!e || !(e->key = strdup(key)) || !(e->fingerprint = strdup(fingerprint)) || !(e->value = strdup(value)) ||
            table_reserve(&m->idems, m->idems.n + 1) < 0) {
                midem_free(e);
                r = -ENOMEM;
                goto out_unlock;
        }
        e->node.key = e->key;
        e->expiry_ns = now + ttl_ns(m);
        table_add(&m->idems, &e->node);
        list_append(&m->idem, &e->link);
        r = 0;

out_unlock:
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int mem_forget(struct queue *q, const char *key) {
        struct queue_mem *m = (struct queue_mem *)q;

        if (!key)
                return -EINVAL;
        pthread_mutex_lock(&m->lock);
        struct node *found = table_find(&m->idems, key);
        if (found) {
                struct midem *e = container_of(found, struct midem, node);
                table_remove(&m->idems, &e->node);
                list_remove(&m->idem, &e->link);
                midem_free(e);
        }
        pthread_mutex_unlock(&m->lock);
        return 0;
}

/* The running task whose lease ran out first, or NULL; *ret_next: the
 * earliest deadline of all (UINT64_MAX: none running). Under the lock. */
static struct mtask *mem_expired(struct queue_mem *m, uint64_t now, uint64_t *ret_next) {
        struct mtask *best = NULL;
        for (struct link *l = m->running.head.next; l != &m->running.head; l = l->next) {
                struct mtask *t = container_of(l, struct mtask, link);
                if (!best || t->deadline_ns < best->deadline_ns)
                        best = t;
        }
        *ret_next = best ? best->deadline_ns : UINT64_MAX;
        return best && best->deadline_ns <= now ? best : NULL;
}

static int mem_take(struct queue *q, const char *consumer, uint64_t block_ms, struct queue_item *ret) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r;

        if (!queue_consumer_is_valid(consumer) || !ret)
                return -EINVAL;

        uint64_t until = now_ns() + (block_ms > UINT64_MAX / 2000000ull ? UINT64_MAX / 2 : block_ms * 1000000ull);
        pthread_mutex_lock(&m->lock);
        for (;;) {
                uint64_t now = now_ns(), next_lease;
                mem_sweep(m, now);

                struct mtask *t = mem_expired(m, now, &next_lease);
                if (t)
                        m->stats.claimed++;
                else {
                        struct link *l = list_first(&m->queued);
                        if (l) {
                                t = container_of(l, struct mtask, link);
                                list_remove(&m->queued, l);
                                list_append(&m->running, l);
                        }
                }
                if (t) {
                        char *text = strdup(t->task);
                        if (!text) {
                                r = -ENOMEM;
                                break;
                        }
                        t->state = QUEUE_RUNNING;
                        t->deliveries++;
                        t->deadline_ns = now + q->o.lease_ms * 1000000ull;
                        *ret = (struct queue_item){ .task = text, .deliveries = t->deliveries };
                        memcpy(ret->id, t->id, sizeof ret->id);
                        snprintf(ret->lease, sizeof ret->lease, "%llu", (unsigned long long)t->deliveries);
                        snprintf(ret->consumer, sizeof ret->consumer, "%s", consumer);
                        r = 0;
                        break;
                }

                if (now >= until) {
                        r = -EAGAIN;
                        break;
                }
                uint64_t wake = until < next_lease ? until : next_lease;
                struct timespec ts = { .tv_sec = (time_t)(wake / 1000000000ull),
                                       .tv_nsec = (long)(wake % 1000000000ull) };
                /* ETIMEDOUT and spurious wake-ups alike: look again. */
                (void)pthread_cond_timedwait(&m->cond, &m->lock, &ts);
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int mem_touch(struct queue *q, const struct queue_item *it, double progress) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r = -ENOENT;

        if (!it)
                return -EINVAL;
        pthread_mutex_lock(&m->lock);
        struct node *found = table_find(&m->tasks, it->id);
        if (found) {
                struct mtask *t = container_of(found, struct mtask, node);
                if (t->state == QUEUE_RUNNING) {
                        t->deadline_ns = now_ns() + q->o.lease_ms * 1000000ull;
                        if (progress >= 0)
                                t->progress = progress > 1 ? 1 : progress;
                        r = 0;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int mem_finish(struct queue *q, const struct queue_item *it, const char *result, const struct queue_callback *cb,
                      bool dead, bool *ret_stored) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r = 0;
        bool stored = false;

        /* No outbox: callbacks die with the process, like the queue. */
        if (!it || !result || cb || !queue_id_is_valid(it->id))
                return -EINVAL;
        _cleanup_free_ char *copy = strdup(result);
        if (!copy)
                return -ENOMEM;

        pthread_mutex_lock(&m->lock);
        uint64_t now = now_ns();
        mem_sweep(m, now);
        struct node *found = table_find(&m->tasks, it->id);
        struct mtask *t = found ? container_of(found, struct mtask, node) : NULL;
        if (t && t->state == QUEUE_DONE) {
                m->stats.duplicates++;
                goto out_unlock;
        }
        if (!t) {
                /* Its result expired (or it was never here): stored again,
                 * as the Redis backend's SET NX does. */
                if (table_reserve(&m->tasks, m->tasks.n + 1) < 0 || !(t = calloc(1, sizeof *t))) {
                        r = -ENOMEM;
                        goto out_unlock;
                }
                memcpy(t->id, it->id, sizeof t->id);
                t->node.key = t->id;
                t->progress = -1;
                table_add(&m->tasks, &t->node);
        } else
                list_remove(t->state == QUEUE_QUEUED ? &m->queued : &m->running, &t->link);
        free(t->task);
        t->task = NULL;
        t->state = QUEUE_DONE;
        t->result = TAKE_PTR(copy);
        t->deadline_ns = now + ttl_ns(m);
        list_append(&m->done, &t->link);
        stored = true;
        m->stats.stored++;
        if (dead)
                m->stats.dead_lettered++;

out_unlock:
        pthread_mutex_unlock(&m->lock);
        if (r == 0 && ret_stored)
                *ret_stored = stored;
        return r;
}

static int mem_status(struct queue *q, const char *id, struct queue_status *ret) {
        struct queue_mem *m = (struct queue_mem *)q;
        int r = -ENOENT;

        if (!id || !ret)
                return -EINVAL;
        pthread_mutex_lock(&m->lock);
        mem_sweep(m, now_ns());
        struct node *found = table_find(&m->tasks, id);
        if (found) {
                struct mtask *t = container_of(found, struct mtask, node);
                struct queue_status s = { .state = t->state, .progress = t->progress };
                if (t->state == QUEUE_DONE && !(s.result = strdup(t->result)))
                        r = -ENOMEM;
                else {
                        *ret = s;
                        r = 0;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int mem_stats(struct queue *q, struct queue_stats *ret) {
        struct queue_mem *m = (struct queue_mem *)q;

        if (!ret)
                return -EINVAL;
        pthread_mutex_lock(&m->lock);
        mem_sweep(m, now_ns());
        *ret = m->stats;
        ret->depth = m->queued.n;
        ret->pending = m->running.n;
        pthread_mutex_unlock(&m->lock);
        return 0;
}

static int mem_check(struct queue *q, char **ret_why) {
        return 0;
}

static void mem_free(struct queue *q) {
        struct queue_mem *m = (struct queue_mem *)q;
        struct list *lists[] = { &m->queued, &m->running, &m->done };

        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                struct link *l;
                while ((l = list_first(lists[i]))) {
                        list_remove(lists[i], l);
                        mtask_free(container_of(l, struct mtask, link));
                }
        }
        struct link *l;
        while ((l = list_first(&m->idem))) {
                list_remove(&m->idem, l);
                midem_free(container_of(l, struct midem, link));
        }
        free(m->tasks.buckets);
        free(m->idems.buckets);
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static const struct queue_ops mem_ops = {
        .name = "memory",
        .persistent = false,
        .enqueue = mem_enqueue,
        .remember = mem_remember,
        .forget = mem_forget,
        .take = mem_take,
        .touch = mem_touch,
        .finish = mem_finish,
        .status = mem_status,
        .stats = mem_stats,
        .check = mem_check,
        .free = mem_free,
};

int queue_mem_new(const struct queue_options *o, struct queue **ret) {
        if (!o || !ret)
                return -EINVAL;

        struct queue_mem *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->q.ops = &mem_ops;
        m->q.o = *o;
        m->q.o.name = NULL; /* not used here, and not owned */

        pthread_condattr_t ca;
        int r = pthread_condattr_init(&ca);
        if (r == 0) {
                /* Leases and block_ms are durations: a wall clock set back
                 * must not stretch them. */
                r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                if (r == 0)
                        r = pthread_cond_init(&m->cond, &ca);
                pthread_condattr_destroy(&ca);
        }
        if (r != 0) {
                free(m);
                return -r;
        }
        pthread_mutex_init(&m->lock, NULL);
        list_init(&m->queued);
        list_init(&m->running);
        list_init(&m->done);
        list_init(&m->idem);
        *ret = &m->q;
        return 0;
}
