/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: at most `max` units per `window` per client (an API key's
 * index, else the address), in fixed windows. A unit is one sandbox run: a
 * request with graded test cases takes one per case, so a request of many
 * cases costs what as many requests would. The table is bounded: expired
 * entries are swept when it fills, and while it is still full new clients are
 * refused (the service protects itself rather than forgetting limits).
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
