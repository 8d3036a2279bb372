/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 4096

struct entry {
        struct entry *next;
        uint64_t window_start;
        uint64_t window; /* this identity's window, for the sweep */
        uint64_t count;
        char client[];
};

struct ratelimit {
        pthread_mutex_t lock;
        uint64_t window, max;
        size_t n, max_clients;
        struct entry *buckets[N_BUCKETS];
};

static uint32_t hash(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

struct ratelimit *ratelimit_new(uint64_t window_ms, uint64_t max, size_t max_clients) {
        struct ratelimit *rl = calloc(1, sizeof *rl);
        if (!rl)
                return NULL;
        pthread_mutex_init(&rl->lock, NULL);
        rl->window = window_ms;
        rl->max = max;
        rl->max_clients = max_clients;
        return rl;
}

struct ratelimit *ratelimit_free(struct ratelimit *rl) {
        if (!rl)
                return NULL;
        for (size_t i = 0; i < N_BUCKETS; i++)
                for (struct entry *e = rl->buckets[i], *n; e; e = n) {
                        n = e->next;
                        free(e);
                }
        pthread_mutex_destroy(&rl->lock);
        free(rl);
        return NULL;
}

static void sweep(struct ratelimit *rl, uint64_t now) {
        for (size_t i = 0; i < N_BUCKETS; i++)
                for (struct entry **p = &rl->buckets[i]; *p;) {
                        if (now - (*p)->window_start >= (*p)->window) {
                                struct entry *dead = *p;
                                *p = dead->next;
                                free(dead);
                                rl->n--;
                        } else
                                p = &(*p)->next;
                }
}

/* The entry of client, or NULL. */
static struct entry *find(struct ratelimit *rl, const char *client) {
        struct entry *e;
        for (e = rl->buckets[hash(client) % N_BUCKETS]; e && strcmp(e->client, client) != 0; e = e->next)
                ;
        return e;
}

/* The entry of client, created (with an empty window) when it has none;
 * NULL when the table is full (even after a sweep, when may_sweep), or out
 * of memory. A sweep frees entries: not while the caller holds some. */
static struct entry *lookup(struct ratelimit *rl, const char *client, uint64_t window, uint64_t now, bool may_sweep) {
        uint32_t b = hash(client) % N_BUCKETS;
        struct entry *e = find(rl, client);
        size_t len;

        if (e)
                return e;
        if (rl->n >= rl->max_clients && may_sweep)
                sweep(rl, now);
        len = strlen(client);
        if (rl->n >= rl->max_clients || !(e = malloc(sizeof *e + len + 1)))
                return NULL;
        memcpy(e->client, client, len + 1);
        e->window_start = now;
        e->window = window;
        e->count = 0;
        e->next = rl->buckets[b];
        rl->buckets[b] = e;
        rl->n++;
        return e;
}

#define QUOTAS_MAX 4

bool ratelimit_take_quotas(struct ratelimit *rl, const struct ratelimit_quota *q, size_t n, uint64_t units,
                           uint64_t now, struct ratelimit_state *ret) {
        struct entry *e[QUOTAS_MAX] = { 0 };
        size_t best = SIZE_MAX, missing = 0;

        *ret = (struct ratelimit_state){ 0 };
        if (n > QUOTAS_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (q[i].max && units > q[i].max) {
                        *ret = (struct ratelimit_state){ .limit = q[i].max,
                                                         .remaining = q[i].max,
                                                         .reset_ms = q[i].window_ms,
                                                         .window_ms = q[i].window_ms,
                                                         .which = i,
                                                         .never = true };
                        return false;
                }
        pthread_mutex_lock(&rl->lock);
        /* Sweep (when new entries would not fit) before the lookups, which
         * then hold their entries. */
        for (size_t i = 0; i < n; i++)
                if (q[i].max && !find(rl, q[i].client))
                        missing++;
        if (missing && rl->n + missing > rl->max_clients)
                sweep(rl, now);
        for (size_t i = 0; i < n; i++) {
                if (!q[i].max)
                        continue;
                if (!(e[i] = lookup(rl, q[i].client, q[i].window_ms, now, false))) {
                        pthread_mutex_unlock(&rl->lock);
                        *ret = (struct ratelimit_state){ .limit = q[i].max,
                                                         .reset_ms = q[i].window_ms,
                                                         .window_ms = q[i].window_ms,
                                                         .which = i,
                                                         .full = true };
                        return false;
                }
                e[i]->window = q[i].window_ms;
                if (now - e[i]->window_start >= e[i]->window) {
                        e[i]->window_start = now;
                        e[i]->count = 0;
                }
        }
        /* All or nothing: a request is admitted with every unit it needs, in
         * every quota. */
        for (size_t i = 0; i < n; i++)
                if (e[i] && units > q[i].max - e[i]->count) {
                        *ret = (struct ratelimit_state){ .limit = q[i].max,
                                                         .remaining = q[i].max - e[i]->count,
                                                         .reset_ms = e[i]->window - (now - e[i]->window_start),
                                                         .window_ms = e[i]->window,
                                                         .which = i };
                        pthread_mutex_unlock(&rl->lock);
                        return false;
                }
        for (size_t i = 0; i < n; i++) {
                if (!e[i])
                        continue;
                e[i]->count += units;
                if (best == SIZE_MAX || q[i].max - e[i]->count < ret->remaining) {
                        best = i;
                        *ret = (struct ratelimit_state){ .limit = q[i].max,
                                                         .remaining = q[i].max - e[i]->count,
                                                         .reset_ms = e[i]->window - (now - e[i]->window_start),
                                                         .window_ms = e[i]->window,
                                                         .which = i };
                }
        }
        pthread_mutex_unlock(&rl->lock);
        return true;
}

bool ratelimit_take(struct ratelimit *rl, const char *client, uint64_t units, uint64_t now,
                    uint64_t *ret_retry_after_ms, uint64_t *ret_remaining) {
        const struct ratelimit_quota q = { .client = client, .max = rl->max, .window_ms = rl->window };
        struct ratelimit_state st;

        /* units > max is the caller's to refuse: here it is a plain refusal. */
        if (rl->max && units > rl->max) {
                pthread_mutex_lock(&rl->lock);
                struct entry *e = lookup(rl, client, rl->window, now, true);
                if (e && now - e->window_start >= e->window) {
                        e->window_start = now;
                        e->count = 0;
                }
                *ret_retry_after_ms = e ? e->window - (now - e->window_start) : rl->window;
                if (ret_remaining)
                        *ret_remaining = e ? rl->max - e->count : 0;
                pthread_mutex_unlock(&rl->lock);
                return false;
        }
        if (ratelimit_take_quotas(rl, &q, 1, units, now, &st))
                return true;
        *ret_retry_after_ms = st.full ? rl->window : st.reset_ms;
        if (ret_remaining)
                *ret_remaining = st.full ? 0 : st.remaining;
        return false;
}
