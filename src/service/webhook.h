/* SPDX-License-Identifier: MIT */
/*
 * webhook: the callbacks of finished submissions, in the Standard Webhooks
 * format (headers webhook-id, webhook-timestamp, webhook-signature: "v1,"
 * and the base64 HMAC-SHA256 of "id.timestamp.body" with the secret of
 * WEBHOOK_SECRET, written "whsec_<base64>"), sent with libcurl.
 *
 * Safe by default: callbacks are off until CALLBACK_ALLOWED_HOSTS names
 * hosts ("*": any host whose addresses are public). Loopback, private,
 * link-local, unique-local, multicast, unspecified and cloud metadata
 * addresses are refused unless the host is listed by name or address,
 * and the check is made on the address curl is about to connect to (no
 * DNS rebinding between the check and the connection). No redirect is
 * followed, no proxy used, only http and https; connect and total
 * timeouts bound each attempt.
 *
 * A delivery is retried with exponential backoff until it gets a 2xx
 * answer or WEBHOOK_RETRY_FOR has passed: at least once, with the same
 * webhook-id every time, so receivers deduplicate.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum webhook_outcome {
        WEBHOOK_DELIVERED, /* a 2xx answer */
        WEBHOOK_GIVEN_UP,  /* no 2xx within WEBHOOK_RETRY_FOR */
        WEBHOOK_ABANDONED, /* the process is stopping: not delivered, not given up */
};

struct webhook_options {
        const char *secret;          /* WEBHOOK_SECRET ("whsec_<base64>"); NULL: not set */
        const char *allowed_hosts;   /* CALLBACK_ALLOWED_HOSTS, comma-separated; NULL or "": off */
        uint64_t connect_timeout_ms; /* 0: 5000 */
        uint64_t timeout_ms;         /* one attempt, all of it; 0: 10000 */
        uint64_t retry_for_s;        /* WEBHOOK_RETRY_FOR: no attempt starts later than this after the first */
        uint64_t first_backoff_ms;   /* the wait after the first failed attempt, doubled after each
                                      * (capped at 5 minutes, +-20% jitter); 0: 1000 */
        /* When set, called once per delivery queued by webhooks_send*(),
         * with its outcome, on a delivery thread or in webhooks_free(). */
        void (*done)(void *userdata, const char *msg_id, enum webhook_outcome outcome);
        void *done_userdata;
        /* Deliveries still pending when the process stops are kept
         * elsewhere (the queue's outbox) for another process: abandoned,
         * not given up. */
        bool kept;
};

/* Whether the options make sense together (a secret that decodes, hosts
 * that parse, a secret where hosts are allowed): -EINVAL with *ret_why
 * (malloc'd) naming the key and what is wrong. */
int webhook_options_check(const struct webhook_options *o, char **ret_why);

/* Whether url may be a submission's callbackUrl now, before anything is
 * enqueued: -EINVAL (not an http or https URL, credentials in it, ...) or
 * -EPERM (callbacks off, host not allowed, an address literal that is not
 * public), with *ret_why (malloc'd) naming the rule. Names are resolved at
 * delivery, where the addresses are checked again. */
int webhook_check_url(const struct webhook_options *o, const char *url, char **ret_why);

/* The signature header's value for (msg_id, timestamp, body). Exposed for
 * the tests (the Standard Webhooks test vectors). */
int webhook_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body, char **ret);

struct webhook_stats {
        uint64_t delivered;       /* deliveries that got a 2xx */
        uint64_t attempts;        /* requests made */
        uint64_t failed_attempts; /* attempts without a 2xx (status, connection, timeout, refused address) */
        uint64_t given_up;        /* deliveries still failing after WEBHOOK_RETRY_FOR */
        uint64_t pending;         /* gauge: deliveries not yet done */
};

struct webhooks;

/* Checks the options (webhook_options_check), loads libcurl and libcrypto
 * (-ENOENT, logged, naming the Debian package when one is missing) and starts
 * the delivery threads. */
int webhooks_new(const struct webhook_options *o, struct webhooks **ret);
/* Queue a delivery of body (JSON) to url, as msg_id; copies all three.
 * Logs one line per outcome (delivered, attempt failed, given up). The url
 * is checked again (webhook_check_url: the options may have changed since
 * the submission): -EINVAL or -EPERM, logged, nothing queued. msg_id is 1
 * to 128 of [A-Za-z0-9_.:-] (-EINVAL); -ENOBUFS when 10000 deliveries are
 * pending already. */
int webhooks_send(struct webhooks *w, const char *url, const char *msg_id, const char *body);
/* The same for a delivery whose first attempt was made first_unix_ms
 * (milliseconds since the epoch) by this or another process: its
 * WEBHOOK_RETRY_FOR counts from then, and one attempt is made even when
 * that time has passed already. */
int webhooks_send_since(struct webhooks *w, const char *url, const char *msg_id, const char *body,
                        uint64_t first_unix_ms);
void webhooks_stats(struct webhooks *w, struct webhook_stats *ret);
/* Stops the threads (an attempt under way is aborted within about a
 * second); deliveries still pending are given up (logged). Accepts NULL. */
void webhooks_free(struct webhooks *w);
