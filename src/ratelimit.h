/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: at most `max` executions per `window` per client (an API key's
 * index, else the address), in fixed windows. The table is bounded: expired
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

/* Count one execution for client at now_ms. false when over the limit, with
 * *ret_retry_after_ms until the window ends. */
bool ratelimit_take(struct ratelimit *rl, const char *client, uint64_t now_ms, uint64_t *ret_retry_after_ms);
