/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: at most `max` units per `window` per client (an API key's
 * index, else the address), in fixed windows. A unit is one sandbox run: a
 * request with graded test cases takes one per case, so a request of many
 * cases costs what as many requests would. The table is bounded: expired
 * entries are swept when it fills, and while it is still full new clients are
 * refused (the service protects itself rather than forgetting limits).
 *
 * A request may count against more than one quota at once (an API key's and
 * one of its end users'), each with its own max and window: it is admitted
 * only when every one has room, and then counts in all of them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit *ratelimit_new(uint64_t window_ms, uint64_t max, size_t max_clients);
struct ratelimit *ratelimit_free(struct ratelimit *rl);

/* Count `units` runs for client at now_ms, all or none. false when fewer
 * than units remain in the window, with *ret_retry_after_ms until it ends
 * and *ret_remaining (when not NULL) the units left in it. units > max never
 * fits: the caller says so rather than sending the client to wait. */
bool ratelimit_take(struct ratelimit *rl, const char *client, uint64_t units, uint64_t now_ms,
                    uint64_t *ret_retry_after_ms, uint64_t *ret_remaining);

struct ratelimit_quota {
        const char *client; /* the identity: an address, a key's label, ... */
        uint64_t max;       /* units per window; 0: no limit */
        uint64_t window_ms;
};

/* The quota a response reports (RateLimit-* headers): on success the one
 * with the fewest units left, on refusal the one that refused. */
struct ratelimit_state {
        uint64_t limit;     /* its max; 0 when no quota limits the request */
        uint64_t remaining; /* units left in its window after this request */
        uint64_t reset_ms;  /* until its window ends */
        uint64_t window_ms; /* its window */
        size_t which;       /* its index in q[] */
        bool never;         /* refused: units is above its max, it never fits */
        bool full;          /* refused: the table of identities is full */
};

/* Count units against each of q[0..n) at now_ms, all or none. */
bool ratelimit_take_quotas(struct ratelimit *rl, const struct ratelimit_quota *q, size_t n, uint64_t units,
                           uint64_t now_ms, struct ratelimit_state *ret);
