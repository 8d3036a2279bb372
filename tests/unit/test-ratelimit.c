/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: fixed windows per client, the exact Retry-After, requests of
 * several units (all or none), and the bounded table (sweep when full,
 * refuse new clients while it stays full). Time is the caller's, so every
 * test drives it explicitly.
 */
#include "test-helpers.h"

#include <pthread.h>
#include <stdlib.h>

#include "ratelimit.h"

#define NO_RETRY 0xdeadbeefull

static struct ratelimit *new_rl(uint64_t window, uint64_t max, size_t clients) {
        struct ratelimit *rl = ratelimit_new(window, max, clients);
        assert_non_null(rl);
        return rl;
}

/* taking units must succeed and leave retry and remaining alone. */
static void take_n_ok(struct ratelimit *rl, const char *client, uint64_t units, uint64_t now) {
        uint64_t retry = NO_RETRY, remaining = NO_RETRY;
        if (!ratelimit_take(rl, client, units, now, &retry, &remaining))
                fail_msg("'%s' x%llu at %llu: refused (retry %llu, %llu remain), expected admitted", client,
                         (unsigned long long)units, (unsigned long long)now, (unsigned long long)retry,
                         (unsigned long long)remaining);
        assert_int_equal(retry, NO_RETRY);
        assert_int_equal(remaining, NO_RETRY);
}

/* taking units must be refused with exactly this retry time and this many
 * units left. */
static void take_n_refused(struct ratelimit *rl, const char *client, uint64_t units, uint64_t now,
                           uint64_t want_retry, uint64_t want_remaining) {
        uint64_t retry = NO_RETRY, remaining = NO_RETRY;
        if (ratelimit_take(rl, client, units, now, &retry, &remaining))
                fail_msg("'%s' x%llu at %llu: admitted, expected refused", client, (unsigned long long)units,
                         (unsigned long long)now);
        if (retry != want_retry || remaining != want_remaining)
                fail_msg("'%s' x%llu at %llu: retry after %llu ms with %llu remaining, expected %llu ms and %llu",
                         client, (unsigned long long)units, (unsigned long long)now, (unsigned long long)retry,
                         (unsigned long long)remaining, (unsigned long long)want_retry,
                         (unsigned long long)want_remaining);
}

/* take must succeed and leave retry alone. */
static void take_ok(struct ratelimit *rl, const char *client, uint64_t now) {
        take_n_ok(rl, client, 1, now);
}

/* take must be refused with exactly this retry time. */
static void take_refused(struct ratelimit *rl, const char *client, uint64_t now, uint64_t want_retry) {
        uint64_t retry = NO_RETRY;
        if (ratelimit_take(rl, client, 1, now, &retry, NULL))
                fail_msg("'%s' at %llu: admitted, expected refused", client, (unsigned long long)now);
        if (retry != want_retry)
                fail_msg("'%s' at %llu: retry after %llu ms, expected %llu", client, (unsigned long long)now,
                         (unsigned long long)retry, (unsigned long long)want_retry);
}

static void test_max_per_window_exactly(void **state) {
        struct ratelimit *rl = new_rl(1000, 3, 16);

        take_ok(rl, "a", 0);
        take_ok(rl, "a", 1);
        take_ok(rl, "a", 2);
        take_refused(rl, "a", 3, 997);
        /* refusals do not count, and do not move the window */
        take_refused(rl, "a", 500, 500);
        take_refused(rl, "a", 999, 1);
        ratelimit_free(rl);

        rl = new_rl(60000, 1, 16);
        take_ok(rl, "a", 5);
        take_refused(rl, "a", 5, 60000);
        take_refused(rl, "a", 60004, 1);
        ratelimit_free(rl);
}

static void test_new_window_resets(void **state) {
        struct ratelimit *rl = new_rl(1000, 2, 16);

        /* the window starts at the client's first request */
        take_ok(rl, "a", 100);
        take_ok(rl, "a", 200);
        take_refused(rl, "a", 1099, 1);
        /* at start + window: a fresh window, full count again */
        take_ok(rl, "a", 1100);
        take_ok(rl, "a", 1100);
        take_refused(rl, "a", 1100, 1000);
        /* the next window starts at the first request after the old one ended */
        take_ok(rl, "a", 5000);
        take_ok(rl, "a", 5999);
        take_refused(rl, "a", 5999, 1);
        take_ok(rl, "a", 6000);
        ratelimit_free(rl);
}

static void test_separate_clients(void **state) {
        struct ratelimit *rl = new_rl(1000, 1, 16);

        take_ok(rl, "10.0.0.1", 0);
        take_refused(rl, "10.0.0.1", 10, 990);
        take_ok(rl, "10.0.0.2", 10);
        take_ok(rl, "key:0", 20);
        take_ok(rl, "", 20);
        take_refused(rl, "", 30, 990);
        /* prefixes are different clients */
        take_ok(rl, "10.0.0.", 30);
        take_ok(rl, "10.0.0.10", 30);
        take_refused(rl, "10.0.0.2", 40, 970);
        ratelimit_free(rl);
}

static void test_zero_max_disables(void **state) {
        struct ratelimit *rl = new_rl(1000, 0, 1);

        /* no limit, and no table: any number of clients */
        for (int i = 0; i < 1000; i++) {
                char c[32];
                snprintf(c, sizeof c, "client-%d", i % 7 == 0 ? 0 : i);
                take_ok(rl, c, (uint64_t)i);
        }
        ratelimit_free(rl);
}

static void test_table_full(void **state) {
        struct ratelimit *rl = new_rl(1000, 2, 2);

        take_ok(rl, "a", 0);
        take_ok(rl, "b", 10);
        /* full, and nothing has expired: a new client is refused, with the
         * whole window as retry time */
        take_refused(rl, "c", 500, 1000);
        take_refused(rl, "c", 999, 1000);
        /* clients already in the table go on as before */
        take_ok(rl, "a", 999);
        take_refused(rl, "a", 999, 1);
        take_ok(rl, "b", 999);
        /* "a" expires at 1000, "b" not yet: the sweep frees one entry */
        take_ok(rl, "c", 1000);
        take_refused(rl, "d", 1000, 1000);
        /* "b"'s earlier count still stands */
        take_refused(rl, "b", 1000, 10);
        ratelimit_free(rl);
}

static void test_expired_entries_swept(void **state) {
        struct ratelimit *rl = new_rl(100, 1, 3);

        take_ok(rl, "a", 0);
        take_ok(rl, "b", 0);
        take_ok(rl, "c", 0);
        take_refused(rl, "d", 50, 100);
        /* every entry expired: the sweep frees them all, so three new
         * clients fit, and the old ones start from zero */
        take_ok(rl, "d", 100);
        take_ok(rl, "e", 100);
        take_ok(rl, "a", 100);
        take_refused(rl, "a", 100, 100);
        take_refused(rl, "f", 150, 100);
        ratelimit_free(rl);
}

/* Many clients share hash buckets: each still has its own count. */
static void test_many_clients(void **state) {
        enum { N = 20000 };
        struct ratelimit *rl = new_rl(1000, 2, N);
        char c[32];

        for (int round = 0; round < 2; round++)
                for (int i = 0; i < N; i++) {
                        snprintf(c, sizeof c, "198.51.%d.%d", i / 256, i % 256);
                        take_ok(rl, c, 1);
                }
        for (int i = 0; i < N; i++) {
                snprintf(c, sizeof c, "198.51.%d.%d", i / 256, i % 256);
                take_refused(rl, c, 2, 999);
        }
        take_refused(rl, "one more", 2, 1000);
        ratelimit_free(rl);
}

struct hammer {
        struct ratelimit *rl;
        unsigned units; /* per take */
        int admitted;   /* units admitted */
};

static void *hammer_thread(void *arg) {
        struct hammer *h = arg;
        uint64_t retry;
        for (int i = 0; i < 2000; i++)
                if (ratelimit_take(h->rl, "shared", h->units, 7, &retry, NULL))
                        h->admitted += (int)h->units;
        return NULL;
}

/* Four threads taking `units` at a time from one client's window of max;
 * returns the units admitted in all. */
static int hammer_total(unsigned max, unsigned units) {
        struct hammer h[4];
        pthread_t t[4];
        struct ratelimit *rl = new_rl(1000, max, 16);
        int total = 0;

        for (int i = 0; i < 4; i++) {
                h[i] = (struct hammer){ rl, units, 0 };
                assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                total += h[i].admitted;
        }
        ratelimit_free(rl);
        return total;
}

/* Concurrent callers: exactly max admitted in the window, no more. */
static void test_concurrent_exact(void **state) {
        assert_int_equal(hammer_total(150, 1), 150);
}

/* A request of N graded cases takes N units, all or none: one that does
 * not fit takes nothing, so smaller ones still fit after it. */
static void test_units(void **state) {
        struct ratelimit *rl = new_rl(1000, 5, 16);

        take_n_refused(rl, "a", 6, 0, 1000, 5); /* more than the window holds */
        take_n_ok(rl, "a", 3, 0);
        take_n_refused(rl, "a", 3, 10, 990, 2);
        take_n_ok(rl, "a", 2, 20); /* exactly what is left */
        take_n_refused(rl, "a", 1, 30, 970, 0);
        /* a fresh window holds max again */
        take_n_ok(rl, "a", 5, 1000);
        take_n_refused(rl, "a", 1, 1000, 1000, 0);
        /* units and single takes share one count */
        take_n_ok(rl, "b", 4, 0);
        take_ok(rl, "b", 1);
        take_refused(rl, "b", 2, 998);
        /* a refused new client in a full table: nothing remains */
        ratelimit_free(rl);
        rl = new_rl(1000, 5, 1);
        take_n_ok(rl, "a", 1, 0);
        take_n_refused(rl, "b", 1, 0, 1000, 0);
        ratelimit_free(rl);
        /* with the limit off, any number of units */
        rl = new_rl(1000, 0, 1);
        take_n_ok(rl, "a", 1000000, 0);
        ratelimit_free(rl);
}

/* Concurrent callers taking several units each: never more than max. */
static void test_concurrent_units(void **state) {
        assert_int_equal(hammer_total(150, 7), 147); /* 21 requests of 7; the 3 left fit none */
}

static void test_free_null(void **state) {
        assert_null(ratelimit_free(NULL));
        assert_null(ratelimit_free(new_rl(1, 1, 1)));
}

/* take_quotas must admit, reporting the quota with the fewest units left. */
static void quotas_ok(struct ratelimit *rl, const struct ratelimit_quota *q, size_t n, uint64_t units, uint64_t now,
                      uint64_t want_limit, uint64_t want_remaining, uint64_t want_reset) {
        struct ratelimit_state st;
        if (!ratelimit_take_quotas(rl, q, n, units, now, &st))
                fail_msg("x%llu at %llu: refused, expected admitted", (unsigned long long)units,
                         (unsigned long long)now);
        if (st.limit != want_limit || st.remaining != want_remaining || st.reset_ms != want_reset)
                fail_msg("x%llu at %llu: limit %llu remaining %llu reset %llu, expected %llu %llu %llu",
                         (unsigned long long)units, (unsigned long long)now, (unsigned long long)st.limit,
                         (unsigned long long)st.remaining, (unsigned long long)st.reset_ms,
                         (unsigned long long)want_limit, (unsigned long long)want_remaining,
                         (unsigned long long)want_reset);
}

static void quotas_refused(struct ratelimit *rl, const struct ratelimit_quota *q, size_t n, uint64_t units,
                           uint64_t now, uint64_t want_limit, uint64_t want_remaining, uint64_t want_reset) {
        struct ratelimit_state st;
        if (ratelimit_take_quotas(rl, q, n, units, now, &st))
                fail_msg("x%llu at %llu: admitted, expected refused", (unsigned long long)units,
                         (unsigned long long)now);
        if (st.limit != want_limit || st.remaining != want_remaining || st.reset_ms != want_reset)
                fail_msg("x%llu at %llu: limit %llu remaining %llu reset %llu, expected %llu %llu %llu",
                         (unsigned long long)units, (unsigned long long)now, (unsigned long long)st.limit,
                         (unsigned long long)st.remaining, (unsigned long long)st.reset_ms,
                         (unsigned long long)want_limit, (unsigned long long)want_remaining,
                         (unsigned long long)want_reset);
}

/* Each identity has its own max and window, whatever the table's. */
static void test_quota_per_identity(void **state) {
        struct ratelimit *rl = new_rl(60000, 100, 16);
        const struct ratelimit_quota a = { "key:aaaaaaaa", 2, 1000 }, b = { "key:bbbbbbbb", 5, 10000 };

        quotas_ok(rl, &a, 1, 1, 0, 2, 1, 1000);
        quotas_ok(rl, &a, 1, 1, 10, 2, 0, 990);
        quotas_refused(rl, &a, 1, 1, 20, 2, 0, 980);
        /* another identity is counted apart, with its own max */
        for (uint64_t i = 0; i < 5; i++)
                quotas_ok(rl, &b, 1, 1, 30, 5, 4 - i, 10000);
        quotas_refused(rl, &b, 1, 1, 40, 5, 0, 9990);
        /* a's window of 1000 ms ends; b's of 10000 does not */
        quotas_ok(rl, &a, 1, 1, 1000, 2, 1, 1000);
        quotas_refused(rl, &b, 1, 1, 1000, 5, 0, 9030);
        /* units above an identity's max never fit */
        struct ratelimit_state st;
        assert_false(ratelimit_take_quotas(rl, &a, 1, 3, 5000, &st));
        assert_true(st.never);
        /* max 0: no limit */
        const struct ratelimit_quota free_q = { "key:ffffffff", 0, 1000 };
        for (int i = 0; i < 1000; i++)
                assert_true(ratelimit_take_quotas(rl, &free_q, 1, 50, 0, &st));
        assert_int_equal(st.limit, 0);
        ratelimit_free(rl);
}

/* A key's end user counts in the user's quota and in the key's: admitted
 * only when both have room, then counted in both; the report is the one
 * with the fewest left. */
static void test_quota_key_and_user(void **state) {
        struct ratelimit *rl = new_rl(60000, 100, 16);
        const struct ratelimit_quota u1[] = { { "key:aaaaaaaa", 5, 60000 }, { "key:aaaaaaaa/user:s1", 2, 30000 } };
        const struct ratelimit_quota u2[] = { { "key:aaaaaaaa", 5, 60000 }, { "key:aaaaaaaa/user:s2", 2, 30000 } };
        const struct ratelimit_quota u3[] = { { "key:aaaaaaaa", 5, 60000 }, { "key:aaaaaaaa/user:s3", 2, 30000 } };
        const struct ratelimit_quota key[] = { { "key:aaaaaaaa", 5, 60000 } };

        quotas_ok(rl, u1, 2, 1, 0, 2, 1, 30000);
        quotas_ok(rl, u1, 2, 1, 0, 2, 0, 30000);
        quotas_refused(rl, u1, 2, 1, 100, 2, 0, 29900); /* s1's own quota */
        /* s2 has a quota of its own */
        quotas_ok(rl, u2, 2, 2, 200, 2, 0, 30000);
        /* the key has 1 left: s3's 2 are refused by the key, and nothing counts */
        quotas_refused(rl, u3, 2, 2, 300, 5, 1, 59700);
        quotas_ok(rl, u3, 2, 1, 300, 5, 0, 59700);
        quotas_refused(rl, key, 1, 1, 400, 5, 0, 59600);
        /* s1's window ends before the key's: the key still refuses */
        quotas_refused(rl, u1, 2, 1, 30000, 5, 0, 30000);
        ratelimit_free(rl);
}

/* A trusted key cycling end users fills the table: new identities are then
 * refused (state.full), and the identities already in it keep counting. */
static void test_quota_table_full(void **state) {
        struct ratelimit *rl = new_rl(60000, 100, 4);
        struct ratelimit_state st;
        char name[32];

        for (int i = 0; i < 3; i++) {
                const struct ratelimit_quota q[] = { { "key:aaaaaaaa", 1000, 60000 }, { name, 10, 60000 } };
                snprintf(name, sizeof name, "key:aaaaaaaa/user:%d", i);
                assert_true(ratelimit_take_quotas(rl, q, 2, 1, 0, &st));
        }
        {
                const struct ratelimit_quota q[] = { { "key:aaaaaaaa", 1000, 60000 },
                                                     { "key:aaaaaaaa/user:x", 10, 60000 } };
                assert_false(ratelimit_take_quotas(rl, q, 2, 1, 10, &st));
                assert_true(st.full);
                assert_int_equal(st.remaining, 0);
                assert_int_equal(st.reset_ms, 60000);
        }
        {
                const struct ratelimit_quota q[] = { { "key:aaaaaaaa", 1000, 60000 },
                                                     { "key:aaaaaaaa/user:1", 10, 60000 } };
                quotas_ok(rl, q, 2, 1, 20, 10, 8, 59980);
        }
        /* after the windows end the sweep makes room */
        {
                const struct ratelimit_quota q[] = { { "key:aaaaaaaa", 1000, 60000 },
                                                     { "key:aaaaaaaa/user:x", 10, 60000 } };
                quotas_ok(rl, q, 2, 1, 60000, 10, 9, 60000);
        }
        ratelimit_free(rl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_max_per_window_exactly),
                cmocka_unit_test(test_new_window_resets),
                cmocka_unit_test(test_separate_clients),
                cmocka_unit_test(test_zero_max_disables),
                cmocka_unit_test(test_table_full),
                cmocka_unit_test(test_expired_entries_swept),
                cmocka_unit_test(test_many_clients),
                cmocka_unit_test(test_concurrent_exact),
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_concurrent_units),
                cmocka_unit_test(test_free_null),
                cmocka_unit_test(test_quota_per_identity),
                cmocka_unit_test(test_quota_key_and_user),
                cmocka_unit_test(test_quota_table_full),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
