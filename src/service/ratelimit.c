/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 4096

struct entry {
        struct entry *next;
        uint64_t window_start;
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
                        if (now - (*p)->window_start >= rl->window) {
                                struct entry *dead = *p;
                                *p = dead->next;
                                free(dead);
                                rl->n--;
                        } else
                                p = &(*p)->next;
                }
}

bool ratelimit_take(struct ratelimit *rl, const char *client, uint64_t units, uint64_t now, uint64_t *ret_retry_after_ms,
                    uint64_t *ret_remaining) {
        uint32_t b;
        struct entry *e;
        bool ok;

        if (rl->max == 0)
                return true;
        b = hash(client) % N_BUCKETS;
        pthread_mutex_lock(&rl->lock);
        for (e = rl->buckets[b]; e && strcmp(e->client, client) != 0; e = e->next)
                ;
        if (!e) {
                if (rl->n >= rl->max_clients)
                        sweep(rl, now);
                size_t len = strlen(client);
                if (rl->n >= rl->max_clients || !(e = malloc(sizeof *e + len + 1))) {
                        pthread_mutex_unlock(&rl->lock);
                        *ret_retry_after_ms = rl->window;
                        if (ret_remaining)
                                *ret_remaining = 0;
                        return false;
                }
                memcpy(e->client, client, len + 1);
                e->window_start = now;
                e->count = 0;
                e->next = rl->buckets[b];
                rl->buckets[b] = e;
                rl->n++;
        }
        if (now - e->window_start >= rl->window) {
                e->window_start = now;
                e->count = 0;
        }
        /* All or nothing: a request is admitted with every unit it needs. */
        ok = units <= rl->max - e->count;
        if (ok)
                e->count += units;
        else {
                *ret_retry_after_ms = rl->window - (now - e->window_start);
                if (ret_remaining)
                        *ret_remaining = rl->max - e->count;
        }
        pthread_mutex_unlock(&rl->lock);
        return ok;
}
