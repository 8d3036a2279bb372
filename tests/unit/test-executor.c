/* SPDX-License-Identifier: MIT */
/*
 * executor: slots and the bounded queue, FIFO order, abandoned jobs, the
 * circuit breaker and shutdown. Test jobs block in run() until the test
 * releases them, so what is running and what is queued is known exactly;
 * every wait is bounded, so a bug fails a test instead of hanging it.
 */
#include "test-helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "executor.h"
#include "util.h"

#define WAIT_MS 5000
#define MAX_JOBS 64

/* What the jobs did, in order: +id for run, -id for drop. */
static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int log[MAX_JOBS * 2];
        size_t n_log;
        int running;  /* inside run() now */
        int started;  /* entered run() */
        int finished; /* left run() or drop() */
} ctl = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

enum report { REPORT_NONE, REPORT_OK, REPORT_FAILED };


struct tjob {
        struct executor_task job; /* first: run() gets &job */
        int id;
        bool released;          /* run() may return; under ctl.lock */
        atomic_bool abandon;    /* what abandoned() answers */
        atomic_int asked;       /* times abandoned() was asked */
        enum report report;     /* what run() reports to the breaker */
        struct executor *ex;
};

/* Jobs come from a pool and are never reused, so when a test fails with
 * jobs still queued or blocked (cmocka longjmps out of it), the workers
 * that still hold them touch valid memory; the next test's setup releases
 * them. */
static struct tjob pool[256];
static size_t pool_used;

static void ctl_reset(void) {
        pthread_mutex_lock(&ctl.lock);
        ctl.n_log = 0;
        ctl.running = ctl.started = ctl.finished = 0;
        pthread_mutex_unlock(&ctl.lock);
}

static int setup(void **state) {
        /* release whatever a failed test left blocked */
        pthread_mutex_lock(&ctl.lock);
        for (size_t i = 0; i < ELEMENTSOF(pool); i++)
                pool[i].released = true;
        pthread_cond_broadcast(&ctl.cond);
        pthread_mutex_unlock(&ctl.lock);
        ctl_reset();
        return 0;
}

static void timeout_at(struct timespec *ts, long ms) {
        clock_gettime(CLOCK_REALTIME, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void log_locked(int v) {
        if (ctl.n_log < ELEMENTSOF(ctl.log))
                ctl.log[ctl.n_log++] = v;
}

static void tjob_run(struct executor_task *j) {
        struct tjob *t = (struct tjob *)j;
        struct timespec ts;

        pthread_mutex_lock(&ctl.lock);
        log_locked(t->id);
        ctl.started++;
        ctl.running++;
        pthread_cond_broadcast(&ctl.cond);
        timeout_at(&ts, 4 * WAIT_MS);
        while (!t->released)
                if (pthread_cond_timedwait(&ctl.cond, &ctl.lock, &ts) == ETIMEDOUT)
                        break; /* the test failed already; do not hang the suite */
        ctl.running--;
        ctl.finished++;
        pthread_cond_broadcast(&ctl.cond);
        pthread_mutex_unlock(&ctl.lock);
        if (t->report != REPORT_NONE)
                executor_report(t->ex, t->report == REPORT_FAILED);
}

static bool tjob_abandoned(struct executor_task *j) {
        struct tjob *t = (struct tjob *)j;
        atomic_fetch_add(&t->asked, 1);
        return atomic_load(&t->abandon);
}

static void tjob_drop(struct executor_task *j) {
        struct tjob *t = (struct tjob *)j;
        pthread_mutex_lock(&ctl.lock);
        log_locked(-t->id);
        ctl.finished++;
        pthread_cond_broadcast(&ctl.cond);
        pthread_mutex_unlock(&ctl.lock);
}

static struct tjob *new_job(int id, bool blocking, struct executor *ex) {
        struct tjob *t;

        assert_true(pool_used < ELEMENTSOF(pool));
        t = &pool[pool_used++];
        pthread_mutex_lock(&ctl.lock);
        *t = (struct tjob){
                .job = { .run = tjob_run, .abandoned = tjob_abandoned, .drop = tjob_drop },
                .id = id,
                .released = !blocking,
                .ex = ex,
        };
        pthread_mutex_unlock(&ctl.lock);
        return t;
}

static void release(struct tjob *t) {
        pthread_mutex_lock(&ctl.lock);
        t->released = true;
        pthread_cond_broadcast(&ctl.cond);
        pthread_mutex_unlock(&ctl.lock);
}

/* Wait until *counter >= n; fails the test after WAIT_MS. */
static void wait_for(const int *counter, int n, const char *what) {
        struct timespec ts;
        int got;

        timeout_at(&ts, WAIT_MS);
        pthread_mutex_lock(&ctl.lock);
        while (*counter < n)
                if (pthread_cond_timedwait(&ctl.cond, &ctl.lock, &ts) == ETIMEDOUT)
                        break;
        got = *counter;
        pthread_mutex_unlock(&ctl.lock);
        if (got < n)
                fail_msg("waited %d ms for %d jobs %s, got %d", WAIT_MS, n, what, got);
}

static int counter_now(const int *counter) {
        int v;
        pthread_mutex_lock(&ctl.lock);
        v = *counter;
        pthread_mutex_unlock(&ctl.lock);
        return v;
}

static void assert_log(const int *want, size_t n) {
        pthread_mutex_lock(&ctl.lock);
        bool same = ctl.n_log == n && memcmp(ctl.log, want, n * sizeof *want) == 0;
        char got[512] = "";
        for (size_t i = 0, o = 0; i < ctl.n_log && o < sizeof got - 16; i++)
                o += (size_t)snprintf(got + o, sizeof got - o, "%d ", ctl.log[i]);
        pthread_mutex_unlock(&ctl.lock);
        if (!same)
                fail_msg("jobs ran/dropped in the order: %s", got);
}

static struct executor *new_executor(unsigned slots, size_t queue, unsigned threshold, uint64_t cooldown_ms) {
        struct executor_config c = {
                .slots = slots,
                .queue_size = queue,
                .breaker_threshold = threshold,
                .breaker_cooldown_ms = cooldown_ms,
        };
        struct executor *e = NULL;
        assert_int_equal(executor_new(&c, &e), 0);
        assert_non_null(e);
        return e;
}

static enum submit_result submit(struct executor *e, struct tjob *t, uint64_t *retry) {
        uint64_t r = 0xdeadbeef;
        enum submit_result sr = executor_submit(e, &t->job, &r);
        if (retry)
                *retry = r;
        if (sr == SUBMIT_OK)
                assert_int_equal(r, 0xdeadbeef); /* untouched on success */
        return sr;
}

static void assert_state(struct executor *e, size_t queued, size_t active) {
        struct executor_state s;
        executor_get_state(e, &s);
        if (s.queued != queued || s.active != active)
                fail_msg("state: %zu queued, %zu active; expected %zu queued, %zu active", s.queued, s.active, queued,
                         active);
}

/* ---- slots and queue ---- */

static void test_admission_bound(void **state) {
        struct executor *e = new_executor(2, 3, 5, 10000);
        struct tjob *t[8];
        struct executor_state s;
        uint64_t retry;

        for (int i = 0; i < 8; i++)
                t[i] = new_job(i + 1, true, e);

        /* two run, three wait: five admitted */
        assert_int_equal(submit(e, t[0], NULL), SUBMIT_OK);
        assert_int_equal(submit(e, t[1], NULL), SUBMIT_OK);
        wait_for(&ctl.started, 2, "started");
        for (int i = 2; i < 5; i++)
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
        assert_state(e, 3, 2);
        executor_get_state(e, &s);
        assert_int_equal(s.slots, 2);
        assert_int_equal(s.queue_size, 3);
        assert_false(s.breaker_open);

        /* the sixth: refused at once, with a retry time */
        assert_int_equal(submit(e, t[5], &retry), SUBMIT_QUEUE_FULL);
        assert_true(retry > 0);
        assert_int_equal(counter_now(&ctl.started), 2); /* nothing else ran */

        /* one finishes: the oldest waiting job takes its slot, and there
         * is room for exactly one more */
        release(t[0]);
        wait_for(&ctl.started, 3, "started");
        assert_state(e, 2, 2);
        assert_int_equal(submit(e, t[5], NULL), SUBMIT_OK);
        assert_int_equal(submit(e, t[6], NULL), SUBMIT_QUEUE_FULL);

        for (int i = 0; i < 6; i++)
                release(t[i]);
        executor_wait_idle(e);
        assert_state(e, 0, 0);
        assert_int_equal(counter_now(&ctl.finished), 6);
        executor_free(e);
}

/* Admission counts what is queued, whether or not a worker has picked it
 * up yet: submitting faster than workers start gives the same bound. */
static void test_admission_bound_burst(void **state) {
        struct executor *e = new_executor(1, 2, 5, 10000);
        struct tjob *t[4];

        for (int i = 0; i < 4; i++)
                t[i] = new_job(i + 1, true, e);
        assert_int_equal(submit(e, t[0], NULL), SUBMIT_OK);
        assert_int_equal(submit(e, t[1], NULL), SUBMIT_OK);
        assert_int_equal(submit(e, t[2], NULL), SUBMIT_OK);
        assert_int_equal(submit(e, t[3], NULL), SUBMIT_QUEUE_FULL);
        for (int i = 0; i < 3; i++)
                release(t[i]);
        executor_wait_idle(e);
        assert_int_equal(counter_now(&ctl.finished), 3);
        executor_free(e);
}

static void test_zero_queue(void **state) {
        struct executor *e = new_executor(1, 0, 5, 10000);
        struct tjob *a, *b;

        a = new_job(1, true, e);
        b = new_job(2, false, e);
        assert_int_equal(submit(e, a, NULL), SUBMIT_OK);
        assert_int_equal(submit(e, b, NULL), SUBMIT_QUEUE_FULL);
        release(a);
        executor_wait_idle(e);
        assert_int_equal(submit(e, b, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        executor_free(e);
        assert_log((const int[]){ 1, 2 }, 2);
}

static void test_fifo(void **state) {
        struct executor *e = new_executor(1, 16, 5, 10000);
        struct tjob *t[10];
        int want[10];

        for (int i = 0; i < 10; i++) {
                t[i] = new_job(i + 1, i == 0, e);
                want[i] = i + 1;
        }
        assert_int_equal(submit(e, t[0], NULL), SUBMIT_OK);
        wait_for(&ctl.started, 1, "started");
        for (int i = 1; i < 10; i++) {
                uint64_t before = now_ns();
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
                /* the time it was queued, for the queue-wait metric */
                assert_true(t[i]->job.enqueued_ns >= before && t[i]->job.enqueued_ns <= now_ns());
        }
        assert_state(e, 9, 1);
        release(t[0]);
        executor_wait_idle(e);
        assert_log(want, 10);
        executor_free(e);
}

/* ---- abandoned jobs ---- */

static void test_abandoned_dropped(void **state) {
        struct executor *e = new_executor(1, 8, 5, 10000);
        struct tjob *t[5];

        for (int i = 0; i < 5; i++)
                t[i] = new_job(i + 1, i == 0, e);
        assert_int_equal(submit(e, t[0], NULL), SUBMIT_OK);
        wait_for(&ctl.started, 1, "started");
        atomic_store(&t[1]->abandon, true);
        for (int i = 1; i < 5; i++)
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
        /* asked just before its turn, not at submission: a client that
         * leaves while queued is noticed */
        atomic_store(&t[3]->abandon, true);
        assert_int_equal(atomic_load(&t[3]->asked), 0);
        release(t[0]);
        executor_wait_idle(e);
        assert_log((const int[]){ 1, -2, 3, -4, 5 }, 5);
        for (int i = 1; i < 5; i++)
                assert_int_equal(atomic_load(&t[i]->asked), 1);
        executor_free(e);
}

/* A job without abandoned() always runs. */
static void test_no_abandoned_callback(void **state) {
        struct executor *e = new_executor(1, 1, 5, 10000);
        struct tjob *t = new_job(7, false, e);

        t->job.abandoned = NULL;
        t->job.drop = NULL;
        assert_int_equal(submit(e, t, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        assert_log((const int[]){ 7 }, 1);
        executor_free(e);
}

/* ---- circuit breaker ---- */

static void assert_breaker_refuses(struct executor *e, uint64_t min_retry, uint64_t max_retry) {
        struct tjob *t = new_job(99, false, e);
        uint64_t retry;

        assert_int_equal(submit(e, t, &retry), SUBMIT_BREAKER_OPEN);
        if (retry < min_retry || retry > max_retry)
                fail_msg("breaker open: retry after %llu ms, expected %llu..%llu", (unsigned long long)retry,
                         (unsigned long long)min_retry, (unsigned long long)max_retry);
}

static void test_breaker_opens_after_threshold(void **state) {
        struct executor *e = new_executor(2, 8, 3, 10000);
        struct executor_state s;
        struct tjob *t;

        /* failures must be consecutive: a success resets the count */
        executor_report(e, true);
        executor_report(e, true);
        executor_report(e, false);
        executor_report(e, true);
        executor_report(e, true);
        executor_get_state(e, &s);
        assert_false(s.breaker_open);
        t = new_job(1, false, e);
        assert_int_equal(submit(e, t, NULL), SUBMIT_OK);
        executor_wait_idle(e);

        /* the third in a row opens it */
        executor_report(e, true);
        executor_get_state(e, &s);
        assert_true(s.breaker_open);
        assert_true(s.breaker_retry_ms > 9000 && s.breaker_retry_ms <= 10001);
        assert_breaker_refuses(e, 9000, 10001);
        assert_breaker_refuses(e, 9000, 10001);
        assert_int_equal(counter_now(&ctl.started), 1);
        executor_free(e);
}

/* Open the breaker (threshold 1) with the given cooldown and wait it out. */
static void open_and_cool(struct executor *e, long cooldown_ms) {
        struct executor_state s;
        executor_report(e, true);
        executor_get_state(e, &s);
        assert_true(s.breaker_open);
        assert_breaker_refuses(e, 1, (uint64_t)cooldown_ms + 1);
        sleep_ms(cooldown_ms + 20);
}

static void test_breaker_half_open_one_probe(void **state) {
        struct executor *e = new_executor(4, 8, 1, 250);
        struct executor_state s;
        struct tjob *probe, *other;

        open_and_cool(e, 250);
        /* after the cooldown: exactly one job goes through */
        probe = new_job(1, true, e);
        probe->report = REPORT_OK;
        assert_int_equal(submit(e, probe, NULL), SUBMIT_OK);
        assert_breaker_refuses(e, 1, 1000);
        wait_for(&ctl.started, 1, "started");
        assert_breaker_refuses(e, 1, 1000);
        executor_get_state(e, &s);
        assert_true(s.breaker_open); /* half-open still refuses */

        /* the probe succeeds: closed, everything is admitted again */
        release(probe);
        executor_wait_idle(e);
        executor_get_state(e, &s);
        assert_false(s.breaker_open);
        assert_int_equal(s.breaker_retry_ms, 0);
        for (int i = 0; i < 3; i++) {
                other = new_job(2 + i, false, e);
                assert_int_equal(submit(e, other, NULL), SUBMIT_OK);
                executor_wait_idle(e);
        }
        executor_free(e);
}

static void test_breaker_probe_failure_reopens(void **state) {
        struct executor *e = new_executor(2, 8, 3, 300);
        struct executor_state s;
        struct tjob *probe, *next;

        executor_report(e, true);
        executor_report(e, true);
        executor_report(e, true);
        assert_breaker_refuses(e, 1, 301);
        sleep_ms(320);

        /* the probe fails: one failure is enough to open it again, for a
         * whole new cooldown */
        probe = new_job(1, false, e);
        probe->report = REPORT_FAILED;
        assert_int_equal(submit(e, probe, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        executor_get_state(e, &s);
        assert_true(s.breaker_open);
        assert_true(s.breaker_retry_ms > 0 && s.breaker_retry_ms <= 301);
        assert_breaker_refuses(e, 1, 301);

        /* and after that cooldown, a new probe */
        sleep_ms(320);
        next = new_job(2, false, e);
        next->report = REPORT_OK;
        assert_int_equal(submit(e, next, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        executor_get_state(e, &s);
        assert_false(s.breaker_open);
        assert_log((const int[]){ 1, 2 }, 2);
        executor_free(e);
}

/* The probe's client may leave before its turn: the probe is dropped and
 * never reports. The breaker must then let another job probe (after the
 * cooldown at the latest), not refuse every submission forever: nothing
 * else would ever close it. */
static void test_breaker_dropped_probe_does_not_wedge(void **state) {
        struct executor *e = new_executor(1, 8, 1, 250);
        struct tjob *probe, *next;
        enum submit_result sr = SUBMIT_BREAKER_OPEN;

        open_and_cool(e, 250);
        probe = new_job(1, false, e);
        atomic_store(&probe->abandon, true);
        assert_int_equal(submit(e, probe, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        assert_log((const int[]){ -1 }, 1);

        /* give it up to two cooldowns */
        next = new_job(2, false, e);
        next->report = REPORT_OK;
        for (int i = 0; i < 50 && sr == SUBMIT_BREAKER_OPEN; i++) {
                sr = submit(e, next, NULL);
                if (sr == SUBMIT_BREAKER_OPEN)
                        sleep_ms(10);
        }
        assert_int_equal(sr, SUBMIT_OK);
        executor_wait_idle(e);
        assert_log((const int[]){ -1, 2 }, 2);
        executor_free(e);
}

/* ---- complete() ---- */

static struct {
        struct executor *e;
        struct tjob *next; /* submitted from complete() */
        enum submit_result next_result;
        size_t active_seen;
        atomic_int calls;
} done_ctl;

static void tjob_complete(struct executor_task *j) {
        struct executor_state s;

        executor_get_state(done_ctl.e, &s);
        done_ctl.active_seen = s.active;
        if (done_ctl.next) {
                done_ctl.next_result = executor_submit(done_ctl.e, &done_ctl.next->job, NULL);
                done_ctl.next = NULL;
        }
        atomic_fetch_add(&done_ctl.calls, 1);
}

/* complete() runs after run() or drop(), once the slot is free (a client
 * told the outcome may come straight back), and before wait_idle()
 * returns. */
static void test_complete_after_slot_freed(void **state) {
        struct executor *e = new_executor(1, 0, 5, 10000);
        struct tjob *a = new_job(1, false, e), *b = new_job(2, false, e), *c = new_job(3, false, e);

        done_ctl.e = e;
        done_ctl.next = b;
        done_ctl.next_result = SUBMIT_CLOSED;
        done_ctl.active_seen = 99;
        atomic_store(&done_ctl.calls, 0);
        a->job.complete = tjob_complete;
        assert_int_equal(submit(e, a, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        /* a's slot was free in complete(): b, with no queue, got in */
        assert_int_equal(done_ctl.next_result, SUBMIT_OK);
        assert_int_equal(done_ctl.active_seen, 0);
        assert_int_equal(atomic_load(&done_ctl.calls), 1);
        executor_wait_idle(e);
        assert_log((const int[]){ 1, 2 }, 2);

        /* dropped jobs complete too */
        atomic_store(&c->abandon, true);
        c->job.complete = tjob_complete;
        assert_int_equal(submit(e, c, NULL), SUBMIT_OK);
        executor_wait_idle(e);
        assert_int_equal(atomic_load(&done_ctl.calls), 2);
        assert_log((const int[]){ 1, 2, -3 }, 3);
        executor_free(e);
}

/* ---- shutdown ---- */

static void test_close_runs_admitted(void **state) {
        struct executor *e = new_executor(1, 4, 5, 10000);
        struct tjob *t[4];
        uint64_t retry;

        for (int i = 0; i < 4; i++)
                t[i] = new_job(i + 1, i == 0, e);
        for (int i = 0; i < 3; i++)
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
        wait_for(&ctl.started, 1, "started");
        executor_close(e);
        /* nothing new, with a retry time */
        assert_int_equal(submit(e, t[3], &retry), SUBMIT_CLOSED);
        assert_true(retry > 0);
        /* closed wins over an open breaker too */
        executor_report(e, true);
        executor_report(e, true);
        executor_report(e, true);
        executor_report(e, true);
        executor_report(e, true);
        assert_int_equal(submit(e, t[3], NULL), SUBMIT_CLOSED);
        /* what was admitted still runs, in order */
        release(t[0]);
        executor_wait_idle(e);
        assert_log((const int[]){ 1, 2, 3 }, 3);
        executor_free(e);
}

struct idle_waiter {
        struct executor *e;
        atomic_bool returned;
};

static void *idle_thread(void *arg) {
        struct idle_waiter *w = arg;
        executor_wait_idle(w->e);
        atomic_store(&w->returned, true);
        return NULL;
}

static void test_wait_idle(void **state) {
        struct executor *e = new_executor(2, 4, 5, 10000);
        struct idle_waiter w = { .e = e };
        struct tjob *t[3];
        pthread_t th;

        /* idle: returns at once */
        executor_wait_idle(e);

        for (int i = 0; i < 3; i++)
                t[i] = new_job(i + 1, true, e);
        for (int i = 0; i < 3; i++)
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
        wait_for(&ctl.started, 2, "started");
        assert_int_equal(pthread_create(&th, NULL, idle_thread, &w), 0);
        sleep_ms(50);
        assert_false(atomic_load(&w.returned));
        release(t[0]);
        release(t[1]);
        wait_for(&ctl.started, 3, "started");
        sleep_ms(50);
        /* one still running */
        assert_false(atomic_load(&w.returned));
        release(t[2]);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_true(atomic_load(&w.returned));
        assert_int_equal(counter_now(&ctl.finished), 3);
        assert_state(e, 0, 0);
        executor_free(e);
}

/* executor_free() lets every admitted job finish before it returns. */
static void test_free_finishes_admitted(void **state) {
        struct executor *e = new_executor(2, 16, 5, 10000);
        struct tjob *t[12];

        for (int i = 0; i < 12; i++) {
                t[i] = new_job(i + 1, false, e);
                assert_int_equal(submit(e, t[i], NULL), SUBMIT_OK);
        }
        assert_null(executor_free(e));
        assert_int_equal(counter_now(&ctl.finished), 12);
        assert_int_equal(counter_now(&ctl.running), 0);
        assert_null(executor_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_admission_bound, setup),
                cmocka_unit_test_setup(test_admission_bound_burst, setup),
                cmocka_unit_test_setup(test_zero_queue, setup),
                cmocka_unit_test_setup(test_fifo, setup),
                cmocka_unit_test_setup(test_abandoned_dropped, setup),
                cmocka_unit_test_setup(test_no_abandoned_callback, setup),
                cmocka_unit_test_setup(test_breaker_opens_after_threshold, setup),
                cmocka_unit_test_setup(test_breaker_half_open_one_probe, setup),
                cmocka_unit_test_setup(test_breaker_probe_failure_reopens, setup),
                cmocka_unit_test_setup(test_breaker_dropped_probe_does_not_wedge, setup),
                cmocka_unit_test_setup(test_complete_after_slot_freed, setup),
                cmocka_unit_test_setup(test_close_runs_admitted, setup),
                cmocka_unit_test_setup(test_wait_idle, setup),
                cmocka_unit_test_setup(test_free_finishes_admitted, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
