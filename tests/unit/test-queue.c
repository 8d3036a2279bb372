/* SPDX-License-Identifier: MIT */
/*
 * queue: one contract, run against both backends (queue.h): order, batches
 * all or none, states, progress, first result wins, leases that run out,
 * idempotency keys, results that expire, take() that times out, and many
 * producers and consumers at once. The Redis half starts its own
 * redis-server on a free loopback port with a temporary directory, and adds
 * what only it has: URLs, an unreachable server, and a server restarted
 * with its append-only file.
 *
 * Waits are generous and only order is asserted: the machine may be loaded.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "queue.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define REDIS_CLI "/usr/bin/redis-cli"

static bool use_redis;
static unsigned redis_port;
static pid_t redis_pid = -1;
static char redis_dir[] = "/tmp/pyexec-test-queue-XXXXXX";
static unsigned queue_counter;
/* The server of a test that starts its own (restart, password): stopped
 * and removed by teardown_own_server() even when the test fails. */
static pid_t own_pid = -1;
static char own_dir[64];

static unsigned free_port(void) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

/* redis-server on 127.0.0.1:port with its files in dir; extra: more
 * arguments (NULL-terminated), or NULL. */
static pid_t redis_start(unsigned port, const char *dir, bool appendonly, const char *const *extra) {
        char port_s[16];
        snprintf(port_s, sizeof port_s, "%u", port);
        const char *argv[32] = { REDIS_SERVER, "--port", port_s, "--bind", "127.0.0.1", "--dir", dir };
        size_t n = 7;
        static const char *const common[] = { "--save", "", "--daemonize", "no", "--appendonly" };
        for (size_t i = 0; i < ELEMENTSOF(common); i++)
                argv[n++] = common[i];
        argv[n++] = appendonly ? "yes" : "no";
        if (appendonly) {
                argv[n++] = "--appendfsync";
                argv[n++] = "always";
        }
        for (size_t i = 0; extra && extra[i] && n + 1 < ELEMENTSOF(argv); i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* A test that dies takes its server with it. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                _cleanup_free_ char *log = strdup_printf("%s/redis.log", dir);
                int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execv(REDIS_SERVER, (char *const *)argv);
                _exit(127);
        }
        return pid;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        remove(path);
        return 0;
}

static void redis_stop(pid_t pid) {
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* check() until it answers, for at most 20 s. */
static void wait_ready(struct queue *q) {
        for (int i = 0; i < 400; i++) {
                _cleanup_free_ char *why = NULL;
                if (q->ops->check(q, &why) == 0)
                        return;
                usleep(50 * 1000);
        }
        fail_msg("redis-server on port %u did not answer PING within 20 s", redis_port);
}

static struct queue *new_queue_at(unsigned port, uint64_t lease_ms, uint64_t ttl_s, uint64_t max_deliveries) {
        char name[32];
        /* Every queue its own keys: tests do not see each other's tasks. */
        snprintf(name, sizeof name, "t%u", ++queue_counter);
        struct queue_options o = {
                .lease_ms = lease_ms, .max_deliveries = max_deliveries, .result_ttl_s = ttl_s, .name = name
        };
        struct queue *q = NULL;
        if (use_redis) {
                _cleanup_free_ char *url = strdup_printf("redis://127.0.0.1:%u", port), *why = NULL;
                int r = queue_redis_new(url, &o, &q, &why);
                if (r < 0)
                        fail_msg("queue_redis_new(%s): %s (%s)", url, strerror(-r), why ? why : "");
                assert_string_equal(q->ops->name, "redis");
                assert_true(q->ops->persistent);
        } else {
                assert_int_equal(queue_mem_new(&o, &q), 0);
                assert_string_equal(q->ops->name, "memory");
                assert_false(q->ops->persistent);
        }
        return q;
}

static struct queue *new_queue(uint64_t lease_ms, uint64_t ttl_s) {
        return new_queue_at(redis_port, lease_ms, ttl_s, 5);
}

static void make_id(char id[static QUEUE_ID_LEN + 1], unsigned n) {
        snprintf(id, QUEUE_ID_LEN + 1, "%032x", n);
}

static void enqueue_one(struct queue *q, unsigned n, const char *task) {
        char id[QUEUE_ID_LEN + 1];
        make_id(id, n);
        const char *ids[] = { id }, *tasks[] = { task };
        assert_int_equal(q->ops->enqueue(q, ids, tasks, 1), 0);
}

static void take_ok(struct queue *q, const char *consumer, uint64_t block_ms, struct queue_item *it) {
        int r = q->ops->take(q, consumer, block_ms, it);
        if (r < 0)
                fail_msg("take(%s, %llu ms): %s", consumer, (unsigned long long)block_ms, strerror(-r));
}

static void assert_stats(struct queue *q, uint64_t depth, uint64_t pending, uint64_t enqueued, uint64_t claimed,
                         uint64_t dead, uint64_t stored, uint64_t duplicates) {
        struct queue_stats s;
        assert_int_equal(q->ops->stats(q, &s), 0);
        if (s.depth != depth || s.pending != pending || s.enqueued != enqueued || s.claimed != claimed ||
            s.dead_lettered != dead || s.stored != stored || s.duplicates != duplicates)
                fail_msg("stats depth %llu pending %llu enqueued %llu claimed %llu dead %llu stored %llu dup %llu, "
                         "expected %llu %llu %llu %llu %llu %llu %llu",
                         (unsigned long long)s.depth, (unsigned long long)s.pending, (unsigned long long)s.enqueued,
                         (unsigned long long)s.claimed, (unsigned long long)s.dead_lettered,
                         (unsigned long long)s.stored, (unsigned long long)s.duplicates, (unsigned long long)depth,
                         (unsigned long long)pending, (unsigned long long)enqueued, (unsigned long long)claimed,
                         (unsigned long long)dead, (unsigned long long)stored, (unsigned long long)duplicates);
}

/* Tasks come out in the order they went in, one batch or several. */
static void test_fifo_order(void **state) {
        struct queue *q = new_queue(60000, 60);
        char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1], c[QUEUE_ID_LEN + 1];
        make_id(a, 1), make_id(b, 2), make_id(c, 3);
        const char *ids[] = { a, b }, *tasks[] = { "{\"n\":1}", "{\"n\":2}" };
        assert_int_equal(q->ops->enqueue(q, ids, tasks, 2), 0);
        enqueue_one(q, 3, "{\"n\":3}");
        assert_stats(q, 3, 0, 3, 0, 0, 0, 0);

        const char *want_ids[] = { a, b, c }, *want_tasks[] = { "{\"n\":1}", "{\"n\":2}", "{\"n\":3}" };
        for (size_t i = 0; i < 3; i++) {
                struct queue_item it = {};
                bool stored = false;
                take_ok(q, "w1", 1000, &it);
                assert_string_equal(it.id, want_ids[i]);
                assert_string_equal(it.task, want_tasks[i]);
                assert_int_equal(it.deliveries, 1);
                assert_string_equal(it.consumer, "w1");
                assert_int_equal(q->ops->finish(q, &it, "{\"ok\":true}", NULL, false, &stored), 0);
                assert_true(stored);
                queue_item_done(&it);
                assert_null(it.task);
        }
        assert_stats(q, 0, 0, 3, 0, 0, 3, 0);
        queue_free(q);
}

/* A batch with one bad id adds nothing; a bad consumer name is refused. */
static void test_batch_all_or_none(void **state) {
        struct queue *q = new_queue(60000, 60);
        char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];
        make_id(a, 1), make_id(b, 2);
        const char *bad[] = { a, "not-an-id", b }, *tasks[] = { "{}", "{}", "{}" };
        assert_int_equal(q->ops->enqueue(q, bad, tasks, 3), -EINVAL);
        const char *upper[] = { a, "0000000000000000000000000000000A" };
        assert_int_equal(q->ops->enqueue(q, upper, tasks, 2), -EINVAL);
        const char *twice[] = { a, a };
        /* The memory backend refuses a repeated id; Redis would hold both
         * entries (ids are random, so only a caller's bug repeats one). */
        if (!use_redis)
                assert_int_equal(q->ops->enqueue(q, twice, tasks, 2), -EEXIST);

        struct queue_item it = {};
        assert_int_equal(q->ops->take(q, "w1", 0, &it), -EAGAIN);
        assert_int_equal(q->ops->take(q, "bad name", 0, &it), -EINVAL);
        assert_int_equal(q->ops->take(q, "", 0, &it), -EINVAL);
        assert_stats(q, 0, 0, 0, 0, 0, 0, 0);

        if (!use_redis) {
                /* An id already held makes the whole batch fail. */
                const char *first[] = { a };
                assert_int_equal(q->ops->enqueue(q, first, tasks, 1), 0);
                const char *second[] = { b, a };
                assert_int_equal(q->ops->enqueue(q, second, tasks, 2), -EEXIST);
                assert_stats(q, 1, 0, 1, 0, 0, 0, 0);
        }
        queue_free(q);
}

/* queued -> running (with progress) -> done (with the result). */
static void test_status_transitions(void **state) {
        struct queue *q = new_queue(60000, 60);
        char id[QUEUE_ID_LEN + 1];
        struct queue_status s = {};
        make_id(id, 7);

        assert_int_equal(q->ops->status(q, id, &s), -ENOENT);
        enqueue_one(q, 7, "{\"code\":\"print(1)\"}");
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_int_equal(s.state, QUEUE_QUEUED);
        assert_true(s.progress < 0);
        assert_null(s.result);

        struct queue_item it = {};
        take_ok(q, "w1", 1000, &it);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_int_equal(s.state, QUEUE_RUNNING);
        assert_true(s.progress < 0);
        assert_stats(q, 0, 1, 1, 0, 0, 0, 0);

        assert_int_equal(q->ops->touch(q, &it, 0.5), 0);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_int_equal(s.state, QUEUE_RUNNING);
        assert_true(s.progress > 0.49 && s.progress < 0.51);
        /* < 0: progress unchanged. */
        assert_int_equal(q->ops->touch(q, &it, -1), 0);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_true(s.progress > 0.49 && s.progress < 0.51);

        bool stored = false;
        assert_int_equal(q->ops->finish(q, &it, "{\"exitCode\":0}", NULL, false, &stored), 0);
        assert_true(stored);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_int_equal(s.state, QUEUE_DONE);
        assert_string_equal(s.result, "{\"exitCode\":0}");
        queue_status_done(&s);
        assert_null(s.result);
        queue_item_done(&it);

        assert_string_equal(queue_state_to_string(QUEUE_QUEUED), "queued");
        assert_string_equal(queue_state_to_string(QUEUE_RUNNING), "running");
        assert_string_equal(queue_state_to_string(QUEUE_DONE), "done");
        queue_free(q);
}

/* Two finishes of one task: the first result is kept, the second is
 * counted as a duplicate, and the task is no longer taken. */
static void test_first_result_wins(void **state) {
        struct queue *q = new_queue(60000, 60);
        struct queue_item it = {};
        struct queue_status s = {};
        bool stored = false;
        char id[QUEUE_ID_LEN + 1];
        make_id(id, 9);

        enqueue_one(q, 9, "{}");
        take_ok(q, "w1", 1000, &it);
        assert_int_equal(q->ops->finish(q, &it, "\"first\"", NULL, false, &stored), 0);
        assert_true(stored);
        stored = true;
        assert_int_equal(q->ops->finish(q, &it, "\"second\"", NULL, false, &stored), 0);
        assert_false(stored);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_string_equal(s.result, "\"first\"");
        queue_status_done(&s);
        assert_int_equal(q->ops->touch(q, &it, 0.9), -ENOENT);
        assert_stats(q, 0, 0, 1, 0, 0, 1, 1);

        struct queue_item none = {};
        assert_int_equal(q->ops->take(q, "w2", 0, &none), -EAGAIN);
        queue_item_done(&it);
        queue_free(q);
}

/* A worker that stops touching its task loses it: another consumer takes
 * it with deliveries 2, counted in claimed; the late first worker's result
 * still wins if it comes first. Past max_deliveries the task is handed
 * out as any other and finished as dead by its taker. */
static void test_lease_expiry(void **state) {
        struct queue *q = new_queue_at(redis_port, 200, 60, 1);
        struct queue_item a = {}, b = {};
        bool stored = false;

        enqueue_one(q, 11, "{\"n\":11}");
        take_ok(q, "worker-a", 1000, &a);
        assert_int_equal(a.deliveries, 1);
        /* Worker b waits; the lease runs out meanwhile and b gets it. */
        take_ok(q, "worker-b", 10000, &b);
        assert_string_equal(b.id, a.id);
        assert_string_equal(b.task, "{\"n\":11}");
        assert_int_equal(b.deliveries, 2);
        assert_true(b.deliveries > q->o.max_deliveries);
        assert_stats(q, 0, 1, 1, 1, 0, 0, 0);

        assert_int_equal(q->ops->touch(q, &b, 0.1), 0);
        assert_int_equal(q->ops->finish(q, &b, "{\"error\":\"dead\"}", NULL, true, &stored), 0);
        assert_true(stored);
        assert_int_equal(q->ops->finish(q, &a, "{\"late\":true}", NULL, false, &stored), 0);
        assert_false(stored);
        assert_stats(q, 0, 0, 1, 1, 1, 1, 1);

        struct queue_item none = {};
        assert_int_equal(q->ops->take(q, "worker-c", 500, &none), -EAGAIN);
        queue_item_done(&a);
        queue_item_done(&b);
        queue_free(q);
}

/* A touched lease does not run out: nobody else takes the task. */
static void test_touch_keeps_lease(void **state) {
        struct queue *q = new_queue(1000, 60);
        struct queue_item a = {}, none = {};
        bool stored = false;

        enqueue_one(q, 12, "{}");
        take_ok(q, "worker-a", 1000, &a);
        /* Twice the lease in all, touched every fifth of it. */
        for (int i = 0; i < 10; i++) {
                usleep(200 * 1000);
                assert_int_equal(q->ops->touch(q, &a, 0.1 * i), 0);
                assert_int_equal(q->ops->take(q, "worker-b", 0, &none), -EAGAIN);
        }
        assert_int_equal(q->ops->finish(q, &a, "{}", NULL, false, &stored), 0);
        assert_true(stored);
        assert_stats(q, 0, 0, 1, 0, 0, 1, 0);
        queue_item_done(&a);
        queue_free(q);
}

static void test_idempotency(void **state) {
        struct queue *q = new_queue(60000, 60);
        _cleanup_free_ char *v1 = NULL, *v2 = NULL;

        assert_int_equal(q->ops->remember(q, "key-1", "fp-a", "{\"id\":\"x\"}", &v1), 0);
        assert_null(v1);
        assert_int_equal(q->ops->remember(q, "key-1", "fp-a", "{\"id\":\"y\"}", &v1), 1);
        assert_string_equal(v1, "{\"id\":\"x\"}");
        assert_int_equal(q->ops->remember(q, "key-1", "fp-b", "{\"id\":\"z\"}", &v2), -EEXIST);
        assert_null(v2);
        /* Another key is independent. */
        assert_int_equal(q->ops->remember(q, "key-2", "fp-b", "{\"id\":\"z\"}", &v2), 0);

        assert_int_equal(q->ops->forget(q, "key-1"), 0);
        assert_int_equal(q->ops->forget(q, "key-unknown"), 0);
        assert_int_equal(q->ops->remember(q, "key-1", "fp-b", "{\"id\":\"w\"}", &v2), 0);
        assert_int_equal(q->ops->remember(q, "key-1", "fp-b", "{}", &v2), 1);
        assert_string_equal(v2, "{\"id\":\"w\"}");
        queue_free(q);
}

/* Results and idempotency keys expire after result_ttl_s. */
static void test_result_expiry(void **state) {
        struct queue *q = new_queue(60000, 1);
        struct queue_item it = {};
        struct queue_status s = {};
        bool stored = false;
        char id[QUEUE_ID_LEN + 1];
        make_id(id, 13);

        enqueue_one(q, 13, "{}");
        take_ok(q, "w1", 1000, &it);
        assert_int_equal(q->ops->finish(q, &it, "{}", NULL, false, &stored), 0);
        assert_true(stored);
        assert_int_equal(q->ops->remember(q, "k", "fp-a", "v", NULL), 0);
        assert_int_equal(q->ops->status(q, id, &s), 0);
        assert_int_equal(s.state, QUEUE_DONE);
        queue_status_done(&s);

        usleep(2200 * 1000);
        assert_int_equal(q->ops->status(q, id, &s), -ENOENT);
        assert_int_equal(q->ops->remember(q, "k", "fp-b", "v", NULL), 0);
        queue_item_done(&it);
        queue_free(q);
}

/* take() on an empty queue waits block_ms, then -EAGAIN. */
static void test_take_times_out(void **state) {
        struct queue *q = new_queue(60000, 60);
        struct queue_item it = {};

        uint64_t t0 = now_ns();
        assert_int_equal(q->ops->take(q, "w1", 300, &it), -EAGAIN);
        assert_true(now_ns() - t0 >= 250 * 1000000ull);
        assert_null(it.task);
        queue_free(q);
}

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 250
#define TOTAL (PRODUCERS * PER_PRODUCER)

struct load {
        struct queue *q;
        unsigned index;
        atomic_uint finished;
        atomic_uint seen[TOTAL];
        atomic_uint errors;
};

struct worker_arg {
        struct load *load;
        unsigned index;
};

static void *producer(void *p) {
        struct worker_arg *a = p;
        for (unsigned i = 0; i < PER_PRODUCER; i++) {
                char id[QUEUE_ID_LEN + 1];
                make_id(id, a->index * PER_PRODUCER + i);
                const char *ids[] = { id }, *tasks[] = { id };
                if (a->load->q->ops->enqueue(a->load->q, ids, tasks, 1) < 0)
                        atomic_fetch_add(&a->load->errors, 1);
        }
        return NULL;
}

static void *consumer(void *p) {
        struct worker_arg *a = p;
        struct queue *q = a->load->q;
        char name[32];
        snprintf(name, sizeof name, "consumer-%u", a->index);
        uint64_t until = now_ns() + 120 * 1000000000ull;
        while (atomic_load(&a->load->finished) < TOTAL && now_ns() < until) {
                struct queue_item it = {};
                bool stored = false;
                int r = q->ops->take(q, name, 200, &it);
                if (r == -EAGAIN)
                        continue;
                if (r < 0 || strcmp(it.id, it.task) != 0) {
                        atomic_fetch_add(&a->load->errors, 1);
                        queue_item_done(&it);
                        continue;
                }
                unsigned n = (unsigned)strtoul(it.id, NULL, 16);
                if (q->ops->finish(q, &it, it.task, NULL, false, &stored) < 0 || !stored || n >= TOTAL)
                        atomic_fetch_add(&a->load->errors, 1);
                else {
                        atomic_fetch_add(&a->load->seen[n], 1);
                        atomic_fetch_add(&a->load->finished, 1);
                }
                queue_item_done(&it);
        }
        return NULL;
}

/* Four producers and four consumers: every task finished exactly once. */
static void test_concurrency(void **state) {
        _cleanup_free_ struct load *load = calloc(1, sizeof *load);
        pthread_t prod[PRODUCERS], cons[CONSUMERS];
        struct worker_arg pa[PRODUCERS], ca[CONSUMERS];

        assert_non_null(load);
        load->q = new_queue(60000, 60);
        for (unsigned i = 0; i < CONSUMERS; i++) {
                ca[i] = (struct worker_arg){ load, i };
                assert_int_equal(pthread_create(&cons[i], NULL, consumer, &ca[i]), 0);
        }
        for (unsigned i = 0; i < PRODUCERS; i++) {
                pa[i] = (struct worker_arg){ load, i };
                assert_int_equal(pthread_create(&prod[i], NULL, producer, &pa[i]), 0);
        }
        for (unsigned i = 0; i < PRODUCERS; i++)
                pthread_join(prod[i], NULL);
        for (unsigned i = 0; i < CONSUMERS; i++)
                pthread_join(cons[i], NULL);

        assert_int_equal(atomic_load(&load->errors), 0);
        for (unsigned i = 0; i < TOTAL; i++)
                if (atomic_load(&load->seen[i]) != 1)
                        fail_msg("task %u finished %u times, expected once", i, atomic_load(&load->seen[i]));
        assert_stats(load->q, 0, 0, TOTAL, 0, 0, TOTAL, 0);
        queue_free(load->q);
}

/* Bad URLs are refused with a message naming what is wrong, and never the
 * password. */
static void test_redis_url(void **state) {
        static const struct {
                const char *url;
                const char *says;
        } bad[] = {
                { "http://127.0.0.1:6379", "redis://" },
                { "rediss://127.0.0.1", "TLS" },
                { "redis://", "bad host" },
                { "redis://127.0.0.1:0", "port" },
                { "redis://127.0.0.1:70000", "port" },
                { "redis://127.0.0.1:63x9", "port" },
                { "redis://127.0.0.1/db1", "database" },
                { "redis://ho st", "bad host" },
                { "redis://s3cretpw@127.0.0.1", "colon" },
                { "redis://:s3cret%zzpw@127.0.0.1", "escape" },
                { "redis://[::1", "brackets" },
                { "unix://relative/path", "absolute" },
        };
        struct queue_options o = { .lease_ms = 1000, .result_ttl_s = 60, .name = "pyexec" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct queue *q = NULL;
                _cleanup_free_ char *why = NULL;
                assert_int_equal(queue_redis_new(bad[i].url, &o, &q, &why), -EINVAL);
                assert_null(q);
                assert_non_null(why);
                if (!strstr(why, bad[i].says))
                        fail_msg("%s: '%s' does not say '%s'", bad[i].url, why, bad[i].says);
                if (strstr(why, "s3cret"))
                        fail_msg("%s: '%s' shows the password", bad[i].url, why);
        }

        static const char *const good[] = {
                "redis://127.0.0.1",          "redis://localhost:6380/2",     "redis://:pw%40x@redis.example:6379/0",
                "redis://user:pw@[::1]:6379", "unix:///run/redis/redis.sock",
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                struct queue *q = NULL;
                _cleanup_free_ char *why = NULL;
                if (queue_redis_new(good[i], &o, &q, &why) < 0)
                        fail_msg("%s: refused: %s", good[i], why ? why : "");
                queue_free(q);
        }

        struct queue *q = NULL;
        _cleanup_free_ char *why = NULL;
        struct queue_options bad_name = o;
        bad_name.name = "has space";
        assert_int_equal(queue_redis_new("redis://127.0.0.1", &bad_name, &q, &why), -EINVAL);
        assert_non_null(strstr(why, "queue name"));
}

/* A server nobody listens for: -ENOTCONN, and the reason names the
 * address (and not the password). */
static void test_redis_unreachable(void **state) {
        unsigned port = free_port();
        _cleanup_free_ char *url = strdup_printf("redis://:s3cret@127.0.0.1:%u", port), *why = NULL,
                            *addr = strdup_printf("127.0.0.1:%u", port);
        struct queue_options o = { .lease_ms = 1000, .result_ttl_s = 60, .name = "pyexec" };
        struct queue *q = NULL;

        assert_int_equal(queue_redis_new(url, &o, &q, &why), 0);
        assert_int_equal(q->ops->check(q, &why), -ENOTCONN);
        assert_non_null(why);
        if (!strstr(why, addr) || strstr(why, "s3cret"))
                fail_msg("'%s': expected the address %s and no password", why, addr);

        char id[QUEUE_ID_LEN + 1];
        make_id(id, 1);
        const char *ids[] = { id }, *tasks[] = { "{}" };
        struct queue_item it = {};
        struct queue_status s = {};
        struct queue_stats st;
        assert_int_equal(q->ops->enqueue(q, ids, tasks, 1), -ENOTCONN);
        assert_int_equal(q->ops->take(q, "w1", 100, &it), -ENOTCONN);
        assert_int_equal(q->ops->status(q, id, &s), -ENOTCONN);
        assert_int_equal(q->ops->stats(q, &st), -ENOTCONN);
        queue_free(q);
}

/* Run redis-cli against the test's server; its exit status. */
static int redis_cli(const char *command) {
        char port_s[16];
        snprintf(port_s, sizeof port_s, "%u", redis_port);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (fd >= 0)
                        dup2(fd, STDOUT_FILENO);
                execl(REDIS_CLI, REDIS_CLI, "-h", "127.0.0.1", "-p", port_s, command, (char *)NULL);
                _exit(127);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* After FLUSHALL the first enqueue makes the stream without the group:
 * the queue makes the group again, from the stream's start, and the task
 * is delivered. */
static void test_redis_flushall(void **state) {
        if (access(REDIS_CLI, X_OK) < 0)
                skip();
        struct queue *q = new_queue(60000, 60);
        struct queue_item it = {};
        bool stored = false;
        char id[QUEUE_ID_LEN + 1];
        make_id(id, 21);

        enqueue_one(q, 20, "{}");
        assert_int_equal(redis_cli("FLUSHALL"), 0);
        enqueue_one(q, 21, "{\"n\":21}");
        take_ok(q, "w1", 1000, &it);
        assert_string_equal(it.id, id);
        assert_string_equal(it.task, "{\"n\":21}");
        assert_int_equal(q->ops->finish(q, &it, "{}", NULL, false, &stored), 0);
        assert_true(stored);
        queue_item_done(&it);
        queue_free(q);
}

static size_t claim(struct queue *q, const char *want_id, const char *want_text) {
        char **ids = NULL, **texts = NULL;
        size_t n = 0;
        assert_int_equal(q->ops->outbox_claim(q, 10, &ids, &texts, &n), 0);
        if (want_id) {
                assert_int_equal(n, 1);
                assert_string_equal(ids[0], want_id);
                assert_string_equal(texts[0], want_text);
        }
        queue_outbox_free(ids, texts, n);
        return n;
}

/* The callbacks' outbox: a callback goes in with the result that is
 * stored (not with a duplicate's); a held one is claimed by nobody while
 * its lease is renewed, and by the next claim once it runs out; one not
 * held is claimable at once; removed, it is gone. */
static void test_redis_outbox(void **state) {
        struct queue *q = new_queue(300, 60);
        struct queue_item a = {}, b = {};
        struct queue_stats st = {};
        bool stored = false;
        char ida[QUEUE_ID_LEN + 1], idb[QUEUE_ID_LEN + 1];
        make_id(ida, 30);
        make_id(idb, 31);

        enqueue_one(q, 30, "{}");
        enqueue_one(q, 31, "{}");
        take_ok(q, "w1", 1000, &a);
        take_ok(q, "w1", 1000, &b);
        assert_int_equal(q->ops->finish(q, &a, "{}", &(struct queue_callback){ "cb-a", true }, false, &stored), 0);
        assert_true(stored);
        assert_int_equal(q->ops->finish(q, &a, "{}", &(struct queue_callback){ "cb-dup", false }, false, &stored), 0);
        assert_false(stored);
        assert_int_equal(q->ops->finish(q, &b, "{}", &(struct queue_callback){ "cb-b", false }, false, &stored), 0);
        assert_true(stored);
        assert_int_equal(q->ops->stats(q, &st), 0);
        assert_int_equal(st.outbox, 2);

        /* b at once; a is held, and b is now leased to the claimer. */
        assert_int_equal(claim(q, idb, "cb-b"), 1);
        assert_int_equal(claim(q, NULL, NULL), 0);
        /* Renewed every 150 ms of a 300 ms lease, a stays held; b's
         * claimer renewed nothing, so b is claimed again. */
        for (int i = 0; i < 3; i++) {
                usleep(150000);
                const char *held[] = { ida };
                assert_int_equal(q->ops->outbox_renew(q, held, 1), 0);
        }
        assert_int_equal(claim(q, idb, "cb-b"), 1);
        /* Not renewed: both leases run out, both are claimed again. */
        usleep(400000);
        assert_int_equal(claim(q, NULL, NULL), 2);
        assert_int_equal(q->ops->outbox_remove(q, ida), 0);
        assert_int_equal(q->ops->outbox_remove(q, idb), 0);
        assert_int_equal(q->ops->outbox_remove(q, idb), 0);
        assert_int_equal(q->ops->outbox_remove(q, "nope"), -EINVAL);
        usleep(400000);
        assert_int_equal(claim(q, NULL, NULL), 0);
        assert_int_equal(q->ops->stats(q, &st), 0);
        assert_int_equal(st.outbox, 0);
        /* The memory queue has no outbox: callbacks die with the process. */
        queue_item_done(&a);
        queue_item_done(&b);
        queue_free(q);
        struct queue *m = NULL;
        assert_int_equal(queue_mem_new(&(struct queue_options){ .lease_ms = 1000,
                                                                .max_deliveries = 5,
                                                                .result_ttl_s = 60 },
                                       &m),
                         0);
        assert_null(m->ops->outbox_claim);
        queue_free(m);
}

/* The consumer names of a queue's group, from redis-cli, one per line. */
static void consumers_of(unsigned n, char *out, size_t size) {
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "%s -h 127.0.0.1 -p %u XINFO CONSUMERS t%u:tasks t%u | awk 'p{print; p=0} /^name$/{p=1}'", REDIS_CLI,
                 redis_port, n, n);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        size_t got = fread(out, 1, size - 1, f);
        out[got] = 0;
        pclose(f);
}

/* A consumer that holds nothing and has not read for ten leases is
 * removed from the group by the next take(); one that holds a task, or
 * reads, stays. */
static void test_redis_idle_consumers_removed(void **state) {
        if (access(REDIS_CLI, X_OK) < 0)
                skip();
        struct queue *q = new_queue(100, 60); /* idle after 1 s */
        unsigned n = queue_counter;
        struct queue_item a = {}, b = {}, none = {};
        char names[512];
        bool stored;

        /* A consumer exists once it took something. */
        enqueue_one(q, 40, "{}");
        enqueue_one(q, 41, "{}");
        take_ok(q, "gone", 1000, &a);
        assert_int_equal(q->ops->finish(q, &a, "{}", NULL, false, &stored), 0);
        take_ok(q, "holder", 1000, &b);
        consumers_of(n, names, sizeof names);
        assert_non_null(strstr(names, "gone\n"));
        assert_non_null(strstr(names, "holder\n"));
        /* Both idle past ten leases; holder still holds b (a live worker
         * renews its lease, as here). */
        usleep(1200000);
        assert_int_equal(q->ops->touch(q, &b, -1), 0);
        assert_int_equal(q->ops->take(q, "next", 0, &none), -EAGAIN);
        consumers_of(n, names, sizeof names);
        assert_null(strstr(names, "gone\n"));
        assert_non_null(strstr(names, "holder\n"));
        assert_int_equal(q->ops->finish(q, &b, "{}", NULL, false, &stored), 0);
        queue_item_done(&a);
        queue_item_done(&b);
        queue_free(q);
}

/* A server with a password and a Unix socket: the right password over
 * TCP and over the socket works; a wrong one is -ENOTCONN, and the reason
 * says so without showing either password. */
static void test_redis_password_and_unix_socket(void **state) {
        snprintf(own_dir, sizeof own_dir, "/tmp/pyexec-test-queue-auth-XXXXXX");
        assert_non_null(mkdtemp(own_dir));
        unsigned port = free_port();
        _cleanup_free_ char *sock = strdup_printf("%s/redis.sock", own_dir);
        const char *extra[] = { "--requirepass", "s3cret", "--unixsocket", sock, "--unixsocketperm", "700", NULL };
        own_pid = redis_start(port, own_dir, false, extra);
        struct queue_options o = { .lease_ms = 60000, .result_ttl_s = 60, .name = "auth" };

        _cleanup_free_ char *tcp = strdup_printf("redis://:s3cret@127.0.0.1:%u/1", port),
                            *unix_url = strdup_printf("unix://%s", sock),
                            *wrong = strdup_printf("redis://:wr0ng@127.0.0.1:%u", port);
        struct queue *q = NULL, *u = NULL, *w = NULL;
        _cleanup_free_ char *why = NULL, *why_unix = NULL, *why_wrong = NULL;
        assert_int_equal(queue_redis_new(tcp, &o, &q, &why), 0);
        wait_ready(q);
        enqueue_one(q, 30, "{\"n\":30}");

        /* The socket is there once the server answers on TCP. */
        assert_int_equal(queue_redis_new(unix_url, &o, &u, &why_unix), 0);
        assert_int_equal(u->ops->check(u, &why_unix), -ENOTCONN);
        if (!strstr(why_unix, "wants a password"))
                fail_msg("unix socket without the password: '%s'", why_unix);

        assert_int_equal(queue_redis_new(wrong, &o, &w, &why_wrong), 0);
        assert_int_equal(w->ops->check(w, &why_wrong), -ENOTCONN);
        if (!strstr(why_wrong, "authentication failed") || strstr(why_wrong, "wr0ng") || strstr(why_wrong, "s3cret"))
                fail_msg("wrong password: '%s'", why_wrong);

        /* Database 1 (the URL's /1) holds the task; database 0 does not. */
        struct queue_item it = {};
        struct queue_options o0 = o;
        struct queue *q0 = NULL;
        _cleanup_free_ char *db0 = strdup_printf("redis://:s3cret@127.0.0.1:%u", port), *why0 = NULL;
        assert_int_equal(queue_redis_new(db0, &o0, &q0, &why0), 0);
        assert_int_equal(q0->ops->take(q0, "w0", 0, &it), -EAGAIN);
        take_ok(q, "w1", 1000, &it);
        assert_string_equal(it.task, "{\"n\":30}");
        queue_item_done(&it);

        queue_free(q0);
        queue_free(w);
        queue_free(u);
        queue_free(q);
}

/* Tasks enqueued survive a server killed and started again with its
 * append-only file (appendfsync always), and the queue reconnects. */
static void test_redis_restart(void **state) {
        snprintf(own_dir, sizeof own_dir, "/tmp/pyexec-test-queue-aof-XXXXXX");
        assert_non_null(mkdtemp(own_dir));
        const char *dir = own_dir;
        unsigned port = free_port();
        own_pid = redis_start(port, dir, true, NULL);
        struct queue *q = new_queue_at(port, 60000, 60, 5);
        wait_ready(q);

        const char *tasks[] = { "{\"n\":1}", "{\"n\":2}", "{\"n\":3}" };
        for (unsigned i = 0; i < 3; i++)
                enqueue_one(q, 100 + i, tasks[i]);

        redis_stop(own_pid);
        own_pid = -1;
        _cleanup_free_ char *why = NULL;
        assert_int_equal(q->ops->check(q, &why), -ENOTCONN);
        own_pid = redis_start(port, dir, true, NULL);
        wait_ready(q);

        for (unsigned i = 0; i < 3; i++) {
                struct queue_item it = {};
                bool stored = false;
                char id[QUEUE_ID_LEN + 1];
                make_id(id, 100 + i);
                take_ok(q, "after-restart", 5000, &it);
                assert_string_equal(it.id, id);
                assert_string_equal(it.task, tasks[i]);
                assert_int_equal(q->ops->finish(q, &it, "{}", NULL, false, &stored), 0);
                assert_true(stored);
                queue_item_done(&it);
        }
        assert_stats(q, 0, 0, 3, 0, 0, 3, 0);
        queue_free(q);
}

static int teardown_own_server(void **state) {
        redis_stop(own_pid);
        own_pid = -1;
        if (own_dir[0])
                nftw(own_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        own_dir[0] = 0;
        return 0;
}

static int setup_memory(void **state) {
        use_redis = false;
        return 0;
}

static int setup_redis(void **state) {
        use_redis = true;
        if (!mkdtemp(redis_dir))
                return -1;
        redis_port = free_port();
        redis_pid = redis_start(redis_port, redis_dir, false, NULL);
        struct queue *q = new_queue(1000, 60);
        wait_ready(q);
        queue_free(q);
        return 0;
}

static int teardown_redis(void **state) {
        redis_stop(redis_pid);
        redis_pid = -1;
        nftw(redis_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}

#define CONTRACT_TESTS                                                                               \
        cmocka_unit_test(test_fifo_order), cmocka_unit_test(test_batch_all_or_none),                 \
                cmocka_unit_test(test_status_transitions), cmocka_unit_test(test_first_result_wins), \
                cmocka_unit_test(test_lease_expiry), cmocka_unit_test(test_touch_keeps_lease),       \
                cmocka_unit_test(test_idempotency), cmocka_unit_test(test_result_expiry),            \
                cmocka_unit_test(test_take_times_out), cmocka_unit_test(test_concurrency)

int main(void) {
        /* As pyexec's main: a server killed under a command must not
         * kill the test (queue.h). */
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest memory[] = { CONTRACT_TESTS };
        const struct CMUnitTest redis[] = {
                CONTRACT_TESTS,
                cmocka_unit_test(test_redis_url),
                cmocka_unit_test(test_redis_unreachable),
                cmocka_unit_test_teardown(test_redis_restart, teardown_own_server),
                cmocka_unit_test(test_redis_flushall),
                cmocka_unit_test(test_redis_outbox),
                cmocka_unit_test(test_redis_idle_consumers_removed),
                cmocka_unit_test_teardown(test_redis_password_and_unix_socket, teardown_own_server),
        };
        int failed = cmocka_run_group_tests_name("queue-memory", memory, setup_memory, NULL);
        if (access(REDIS_SERVER, X_OK) < 0) {
                printf("# the Redis half is skipped: %s is missing (Debian's redis-server)\n", REDIS_SERVER);
                return failed;
        }
        failed += cmocka_run_group_tests_name("queue-redis", redis, setup_redis, teardown_redis);
        return failed;
}
