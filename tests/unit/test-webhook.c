/* SPDX-License-Identifier: MIT */
/*
 * webhook: the signature against the Standard Webhooks test vector, the
 * options' and callback URLs' rules, and deliveries to a real receiver on
 * 127.0.0.1 (tests/helpers/webhook-receiver.py), which verifies each
 * signature itself and writes down every request it gets, so the refusals
 * are checked from the receiver's side: it saw nothing.
 */
#include "test-helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>

#include "webhook.h"

/* From the Standard Webhooks reference libraries' tests
 * (github.com/standard-webhooks/standard-webhooks,
 * libraries/python/tests/test_webhooks.py, test_sign_function; the same
 * vector is in the other libraries' tests). */
#define VECTOR_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VECTOR_MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VECTOR_TIMESTAMP 1614265330
#define VECTOR_PAYLOAD "{\"test\": 2432232314}"
#define VECTOR_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define SECRET VECTOR_SECRET
#define RECEIVER TEST_HELPERS_DIR "/webhook-receiver.py"

static void test_sign_vector(void **state) {
        _cleanup_free_ char *sig = NULL, *other = NULL;

        assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD, &sig), 0);
        assert_string_equal(sig, VECTOR_SIGNATURE);
        /* Each part is signed: another timestamp, another signature. */
        assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP + 1, VECTOR_PAYLOAD, &other), 0);
        assert_string_not_equal(other, VECTOR_SIGNATURE);
}

static void test_sign_bad_secret(void **state) {
        char *sig = NULL;

        assert_int_equal(webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "{}", &sig), -EINVAL);
        assert_int_equal(webhook_sign("whsec_AAAA", "m", 1, "{}", &sig), -EINVAL);
        assert_null(sig);
}

static void test_options_check(void **state) {
        static const struct {
                const char *secret, *hosts;
                int want;
                const char *why; /* substrings of the message, '|'-separated */
        } cases[] = {
                { NULL, NULL, 0, NULL },
                { NULL, "  ", 0, NULL },
                { SECRET, NULL, 0, NULL },
                { SECRET, "example.com, 10.0.0.1,[::1],::2,*", 0, NULL },
                { SECRET, "hooks.example.com.,HOOKS-2.example.com", 0, NULL },
                /* 64 bytes */
                { "whsec_"
                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
                  NULL, 0, NULL },
                { NULL, "example.com", -EINVAL, "CALLBACK_ALLOWED_HOSTS|WEBHOOK_SECRET is not set" },
                { "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL, -EINVAL, "WEBHOOK_SECRET must be \"whsec_\"" },
                { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", NULL, -EINVAL, "WEBHOOK_SECRET|not base64" },
                { "whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL, -EINVAL, "WEBHOOK_SECRET|not base64" },
                /* unpadded, and padding inside */
                { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", NULL, -EINVAL, "WEBHOOK_SECRET|not base64" },
                { "whsec_MfKQ9r8G=YqrTwjUPD8ILPZIo2LaLaSw", NULL, -EINVAL, "WEBHOOK_SECRET|not base64" },
                /* 16 and 65 bytes */
                { "whsec_AAAAAAAAAAAAAAAAAAAAAA==", NULL, -EINVAL, "WEBHOOK_SECRET decodes to 16 bytes" },
                { "whsec_"
                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                  NULL, -EINVAL, "WEBHOOK_SECRET decodes to 65 bytes" },
                { "whsec_", NULL, -EINVAL, "WEBHOOK_SECRET|not base64" },
                { SECRET, "example.com,,b.example", -EINVAL, "CALLBACK_ALLOWED_HOSTS has an empty entry" },
                { SECRET, "example.com,", -EINVAL, "CALLBACK_ALLOWED_HOSTS has an empty entry" },
                { SECRET, "a.example,https://b.example", -EINVAL, "CALLBACK_ALLOWED_HOSTS: \"https://b.example\"" },
                { SECRET, "b.example:8080", -EINVAL, "CALLBACK_ALLOWED_HOSTS: \"b.example:8080\"" },
                { SECRET, "exa mple.com", -EINVAL, "CALLBACK_ALLOWED_HOSTS: \"exa mple.com\"" },
                { SECRET, "-bad.example", -EINVAL, "CALLBACK_ALLOWED_HOSTS: \"-bad.example\"" },
                { SECRET, "[not-an-address]", -EINVAL, "CALLBACK_ALLOWED_HOSTS: \"[not-an-address]\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct webhook_options o = { .secret = cases[i].secret, .allowed_hosts = cases[i].hosts };
                _cleanup_free_ char *why = NULL;
                int r = webhook_options_check(&o, &why);

                if (r != cases[i].want)
                        fail_msg("secret %s, hosts %s: %d (%s), expected %d", cases[i].secret ?: "(unset)",
                                 cases[i].hosts ?: "(unset)", r, why ?: "", cases[i].want);
                if (!cases[i].why)
                        continue;
                assert_non_null(why);
                _cleanup_free_ char *wants = strdup(cases[i].why);
                for (char *s = wants, *t; s; s = t) {
                        t = strchr(s, '|');
                        if (t)
                                *t++ = '\0';
                        if (!strstr(why, s))
                                fail_msg("secret %s, hosts %s: \"%s\" does not say \"%s\"", cases[i].secret ?: "",
                                         cases[i].hosts ?: "", why, s);
                }
                /* The secret itself never appears in a message. */
                if (cases[i].secret && strlen(cases[i].secret) > 8)
                        assert_null(strstr(why, cases[i].secret + 6));
        }
}

static void test_check_url(void **state) {
        static const struct {
                const char *hosts, *url;
                int want;
                const char *why;
        } cases[] = {
                /* off */
                { NULL, "https://example.com/", -EPERM, "callbacks are off: CALLBACK_ALLOWED_HOSTS names no host" },
                { "", "https://example.com/", -EPERM, "callbacks are off" },
                /* a listed name */
                { "example.com", "https://example.com/hook?x=1", 0, NULL },
                { "example.com", "http://EXAMPLE.com.:8443/hook", 0, NULL },
                { "example.com", "https://other.example/", -EPERM, "other.example is not in CALLBACK_ALLOWED_HOSTS" },
                { "example.com", "https://sub.example.com/", -EPERM,
                  "sub.example.com is not in CALLBACK_ALLOWED_HOSTS" },
                { "example.com", "https://10.0.0.1/", -EPERM, "10.0.0.1 is not in CALLBACK_ALLOWED_HOSTS" },
                /* not a callback URL */
                { "example.com", "ftp://example.com/", -EINVAL, "http or https" },
                { "example.com", "file:///etc/passwd", -EINVAL, "http or https" },
                { "example.com", "gopher://example.com/", -EINVAL, NULL },
                { "example.com", "https://user:pw@example.com/", -EINVAL, "user name or password" },
                { "example.com", "https://user@example.com/", -EINVAL, "user name or password" },
                { "example.com", "example.com/hook", -EINVAL, "not a URL" },
                { "example.com", "", -EINVAL, "empty" },
                { "example.com", "http://", -EINVAL, NULL },
                { "*", "http://[fe80::1%25eth0]/", -EINVAL, NULL },
                /* "*": public addresses and any name (resolved at delivery) */
                { "*", "https://example.com/", 0, NULL },
                { "*", "http://localhost:8080/", 0, NULL },
                { "*", "http://93.184.216.34/", 0, NULL },
                { "*", "http://[2606:2800:220:1:248:1893:25c8:1946]/", 0, NULL },
                { "*", "http://[::ffff:93.184.216.34]/", 0, NULL },
                /* "*": address literals that are not public */
                { "*", "http://127.0.0.1:8080/", -EPERM, "127.0.0.1 is loopback|CALLBACK_ALLOWED_HOSTS" },
                { "*", "http://127.1/", -EPERM, "loopback" },
                { "*", "http://2130706433/", -EPERM, "loopback" },
                { "*", "http://0x7f000001/", -EPERM, "loopback" },
                { "*", "http://[::1]/", -EPERM, "::1 is loopback" },
                { "*", "http://10.1.2.3/", -EPERM, "private (10.0.0.0/8)" },
                { "*", "http://172.16.5.4/", -EPERM, "private (172.16.0.0/12)" },
                { "*", "http://192.168.1.1/", -EPERM, "private (192.168.0.0/16)" },
                { "*", "http://169.254.169.254/latest/meta-data/", -EPERM, "cloud metadata" },
                { "*", "http://[fd00:ec2::254]/", -EPERM, "cloud metadata" },
                { "*", "http://169.254.10.1/", -EPERM, "link-local" },
                { "*", "http://[fe80::1]/", -EPERM, "link-local" },
                { "*", "http://[fc00::1]/", -EPERM, "unique-local" },
                { "*", "http://[fd12:3456::1]/", -EPERM, "unique-local" },
                { "*", "http://[::ffff:127.0.0.1]/", -EPERM, "IPv4-mapped of loopback" },
                { "*", "http://[::ffff:169.254.169.254]/", -EPERM, "IPv4-mapped of cloud metadata" },
                { "*", "http://[64:ff9b::10.0.0.1]/", -EPERM, "NAT64 of private" },
                { "*", "http://0.0.0.0/", -EPERM, "unspecified" },
                { "*", "http://[::]/", -EPERM, "unspecified" },
                { "*", "http://224.0.0.1/", -EPERM, "multicast" },
                { "*", "http://[ff02::1]/", -EPERM, "multicast" },
                { "*", "http://255.255.255.255/", -EPERM, "broadcast" },
                { "*", "http://100.64.0.1/", -EPERM, "shared" },
                { "*", "http://192.0.2.1/", -EPERM, "documentation" },
                /* listed by address: allowed whatever the address */
                { "127.0.0.1,[::1],10.0.0.1", "http://127.0.0.1:1234/", 0, NULL },
                { "127.0.0.1,[::1],10.0.0.1", "http://[::1]:1234/", 0, NULL },
                { "127.0.0.1,::1,10.0.0.1", "http://[0::1]/", 0, NULL },
                { "127.0.0.1,[::1],10.0.0.1", "http://10.0.0.1/", 0, NULL },
                { "127.0.0.1,[::1],10.0.0.1", "http://10.0.0.2/", -EPERM, "10.0.0.2 is not in" },
                { "*,127.0.0.1", "http://127.0.0.1/", 0, NULL },
                { "*,127.0.0.1", "http://127.0.0.2/", -EPERM, "loopback" },
                { "localhost", "http://localhost:1/", 0, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct webhook_options o = { .secret = SECRET, .allowed_hosts = cases[i].hosts };
                _cleanup_free_ char *why = NULL;
                int r = webhook_check_url(&o, cases[i].url, &why);

                if (r != cases[i].want)
                        fail_msg("%s with CALLBACK_ALLOWED_HOSTS=%s: %d (%s), expected %d", cases[i].url,
                                 cases[i].hosts ?: "", r, why ?: "", cases[i].want);
                if (r < 0)
                        assert_non_null(why);
                if (!cases[i].why)
                        continue;
                _cleanup_free_ char *wants = strdup(cases[i].why);
                for (char *s = wants, *t; s; s = t) {
                        t = strchr(s, '|');
                        if (t)
                                *t++ = '\0';
                        if (!strstr(why, s))
                                fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].url, why, s);
                }
        }
}

/* ---- deliveries to a real receiver ---- */

struct receiver {
        pid_t pid;
        char dir[64];
        int port;
};

/* The receivers running (copies: a test's frame is gone once an assertion
 * left it), stopped by the teardown when one did. */
static struct receiver running[4];

static void receiver_start(struct receiver *r, const char *mode) {
        char path[128];

        snprintf(r->dir, sizeof r->dir, "/tmp/pyexec-test-webhook-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        r->pid = fork();
        assert_true(r->pid >= 0);
        if (r->pid == 0) {
                /* Not the test's stdout: whoever reads it would wait for
                 * the receiver too. */
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
                        _exit(127);
                execl("/usr/bin/python3", "python3", RECEIVER, mode, SECRET, r->dir, (char *)NULL);
                _exit(127);
        }
        for (size_t i = 0; i < ELEMENTSOF(running); i++)
                if (running[i].pid == 0) {
                        running[i] = *r;
                        break;
                }
        snprintf(path, sizeof path, "%s/port", r->dir);
        for (int i = 0; i < 1000; i++) {
                _cleanup_free_ char *s = NULL;
                uint64_t port;
                if (read_small_file(path, &s) >= 0) {
                        assert_int_equal(parse_u64(s, 1, 65535, &port), 0);
                        r->port = (int)port;
                        return;
                }
                int status;
                if (waitpid(r->pid, &status, WNOHANG) == r->pid)
                        fail_msg("the receiver (%s) exited with status %d", RECEIVER, status);
                usleep(20 * 1000);
        }
        fail_msg("the receiver did not write its port within 20 s");
}

/* The requests the receiver got, one line each: "POST PATH ID SIG". */
static size_t receiver_lines(struct receiver *r, char lines[][160], size_t max) {
        char path[128], line[160];
        size_t n = 0;

        snprintf(path, sizeof path, "%s/log", r->dir);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = '\0';
                if (n < max)
                        snprintf(lines[n], sizeof lines[n], "%s", line);
                n++;
        }
        fclose(f);
        return n;
}

static void receiver_stop(struct receiver *r) {
        char path[128];

        for (size_t i = 0; i < ELEMENTSOF(running); i++)
                if (running[i].pid == r->pid)
                        running[i].pid = 0;
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        snprintf(path, sizeof path, "%s/log", r->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/port", r->dir);
        unlink(path);
        rmdir(r->dir);
}

/* Waits (at most 60 s: the machine may be loaded) until nothing is
 * pending, and returns the counters. */
static struct webhook_stats wait_done(struct webhooks *w) {
        struct webhook_stats s;

        for (int i = 0; i < 3000; i++) {
                webhooks_stats(w, &s);
                if (s.pending == 0)
                        return s;
                usleep(20 * 1000);
        }
        fail_msg("deliveries still pending after 60 s");
        return s;
}

static struct webhooks *new_webhooks(const char *hosts, uint64_t retry_for_s, uint64_t timeout_ms) {
        struct webhook_options o = {
                .secret = SECRET,
                .allowed_hosts = hosts,
                .connect_timeout_ms = 2000,
                .timeout_ms = timeout_ms,
                .retry_for_s = retry_for_s,
                .first_backoff_ms = 100,
        };
        struct webhooks *w = NULL;

        assert_int_equal(webhooks_new(&o, &w), 0);
        assert_non_null(w);
        return w;
}

static void url_to(char *url, size_t n, const char *host, struct receiver *r, const char *path) {
        snprintf(url, n, "http://%s:%d%s", host, r->port, path);
}

/* 500 to the first attempt, 200 to the second: delivered, the same
 * webhook-id both times, each signature verified by the receiver. */
static void test_deliver_retried(void **state) {
        struct receiver r;
        char url[128], lines[8][160];

        receiver_start(&r, "flaky");
        struct webhooks *w = new_webhooks("127.0.0.1", 30, 5000);
        url_to(url, sizeof url, "127.0.0.1", &r, "/hook");
        assert_int_equal(webhooks_send(w, url, "msg_retried", "{\"status\":\"ok\"}"), 0);
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);

        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        assert_int_equal(s.delivered, 1);
        assert_int_equal(s.attempts, 2);
        assert_int_equal(s.failed_attempts, 1);
        assert_int_equal(s.given_up, 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(lines[i], "POST /hook msg_retried sig-ok");
}

/* A 302 is not followed: one failed attempt, nothing at /elsewhere. */
static void test_redirect_not_followed(void **state) {
        struct receiver r;
        char url[128], lines[8][160];

        receiver_start(&r, "redirect");
        struct webhooks *w = new_webhooks("127.0.0.1", 0, 5000);
        url_to(url, sizeof url, "127.0.0.1", &r, "/hook");
        assert_int_equal(webhooks_send(w, url, "msg_redirected", "{}"), 0);
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);

        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        assert_int_equal(n, 1);
        assert_string_equal(lines[0], "POST /hook msg_redirected sig-ok");
        assert_int_equal(s.delivered, 0);
        assert_int_equal(s.failed_attempts, 1);
        assert_int_equal(s.given_up, 1);
}

/* "*" does not reach a loopback address literal; listed by address, it
 * does. */
static void test_star_refuses_loopback_literal(void **state) {
        struct receiver r;
        char url[128], lines[8][160];

        receiver_start(&r, "ok");
        url_to(url, sizeof url, "127.0.0.1", &r, "/");

        struct webhooks *w = new_webhooks("*", 0, 5000);
        int sent = webhooks_send(w, url, "msg_star", "{}");
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);
        /* From the receiver's side first: nothing got through. */
        assert_int_equal(receiver_lines(&r, lines, ELEMENTSOF(lines)), 0);
        assert_int_equal(s.delivered, 0);
        /* refused before it was queued, at connect otherwise */
        assert_int_equal(sent, -EPERM);

        w = new_webhooks("127.0.0.1", 0, 5000);
        assert_int_equal(webhooks_send(w, url, "msg_listed", "{}"), 0);
        s = wait_done(w);
        webhooks_free(w);
        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        assert_int_equal(s.delivered, 1);
        assert_int_equal(n, 1);
        assert_string_equal(lines[0], "POST / msg_listed sig-ok");
}

/* A name that resolves to loopback (DNS rebinding's case): accepted at
 * submission under "*", refused at connect, the receiver sees nothing;
 * listed by name, delivered. */
static void test_star_refuses_name_resolving_to_loopback(void **state) {
        struct receiver r;
        char url[128], lines[8][160];

        receiver_start(&r, "ok");
        url_to(url, sizeof url, "localhost", &r, "/");

        struct webhooks *w = new_webhooks("*", 0, 5000);
        assert_int_equal(webhooks_send(w, url, "msg_rebound", "{}"), 0);
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);
        assert_int_equal(receiver_lines(&r, lines, ELEMENTSOF(lines)), 0);
        assert_int_equal(s.delivered, 0);
        assert_int_equal(s.attempts, 1);
        assert_int_equal(s.failed_attempts, 1);
        assert_int_equal(s.given_up, 1);

        w = new_webhooks("localhost", 0, 5000);
        assert_int_equal(webhooks_send(w, url, "msg_named", "{}"), 0);
        s = wait_done(w);
        webhooks_free(w);
        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        assert_int_equal(s.delivered, 1);
        assert_int_equal(n, 1);
        assert_string_equal(lines[0], "POST / msg_named sig-ok");
}

/* A proxy in the environment is not used: it would connect to the
 * callback's host past the check of its address. */
static void test_environment_proxy_ignored(void **state) {
        struct receiver r, proxy;
        char url[128], proxy_url[128], lines[8][160];

        receiver_start(&r, "ok");
        receiver_start(&proxy, "ok");
        url_to(url, sizeof url, "127.0.0.1", &r, "/");
        url_to(proxy_url, sizeof proxy_url, "127.0.0.1", &proxy, "/");
        assert_int_equal(setenv("http_proxy", proxy_url, 1), 0);
        assert_int_equal(setenv("ALL_PROXY", proxy_url, 1), 0);

        struct webhooks *w = new_webhooks("127.0.0.1", 0, 5000);
        assert_int_equal(webhooks_send(w, url, "msg_direct", "{}"), 0);
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);
        unsetenv("http_proxy");
        unsetenv("ALL_PROXY");

        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        size_t n_proxy = receiver_lines(&proxy, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        receiver_stop(&proxy);
        assert_int_equal(n_proxy, 0);
        assert_int_equal(n, 1);
        assert_int_equal(s.delivered, 1);
}

/* A receiver that never answers: each attempt times out, is retried with
 * the same webhook-id, and the delivery is given up after retry_for_s. */
static void test_timeout_retried_then_given_up(void **state) {
        struct receiver r;
        char url[128], lines[16][160];

        receiver_start(&r, "hang");
        struct webhooks *w = new_webhooks("127.0.0.1", 3, 500);
        url_to(url, sizeof url, "127.0.0.1", &r, "/slow");
        assert_int_equal(webhooks_send(w, url, "msg_slow", "{}"), 0);
        struct webhook_stats s = wait_done(w);
        webhooks_free(w);

        size_t n = receiver_lines(&r, lines, ELEMENTSOF(lines));
        receiver_stop(&r);
        assert_int_equal(s.delivered, 0);
        assert_int_equal(s.given_up, 1);
        assert_true(s.attempts >= 2);
        assert_int_equal(s.failed_attempts, s.attempts);
        assert_int_equal(n, s.attempts);
        for (size_t i = 0; i < n && i < ELEMENTSOF(lines); i++)
                assert_string_equal(lines[i], "POST /slow msg_slow sig-ok");
}

/* webhooks_free() does not wait out an attempt's timeout. */
static void test_free_aborts_attempt(void **state) {
        struct receiver r;
        char url[128], lines[4][160];

        receiver_start(&r, "hang");
        struct webhooks *w = new_webhooks("127.0.0.1", 600, 60000);
        url_to(url, sizeof url, "127.0.0.1", &r, "/");
        assert_int_equal(webhooks_send(w, url, "msg_stopped", "{}"), 0);
        for (int i = 0; i < 1000 && receiver_lines(&r, lines, ELEMENTSOF(lines)) == 0; i++)
                usleep(20 * 1000);
        assert_int_equal(receiver_lines(&r, lines, ELEMENTSOF(lines)), 1);

        uint64_t t0 = now_ns();
        webhooks_free(w);
        uint64_t ms = (now_ns() - t0) / 1000000;
        receiver_stop(&r);
        /* about a second (libcurl's progress callback); the attempt's own
         * timeout is a minute */
        if (ms > 30000)
                fail_msg("webhooks_free took %llu ms", (unsigned long long)ms);
}

static void test_send_bad_input(void **state) {
        struct webhooks *w = new_webhooks("example.com", 0, 500);
        struct webhook_stats s;

        assert_int_equal(webhooks_send(w, "https://example.com/", "bad\r\nX-Injected: 1", "{}"), -EINVAL);
        assert_int_equal(webhooks_send(w, "https://example.com/", "", "{}"), -EINVAL);
        assert_int_equal(webhooks_send(w, "ftp://example.com/", "msg_1", "{}"), -EINVAL);
        assert_int_equal(webhooks_send(w, "https://other.example/", "msg_1", "{}"), -EPERM);
        webhooks_stats(w, &s);
        assert_int_equal(s.pending, 0);
        assert_int_equal(s.attempts, 0);
        webhooks_free(w);
        webhooks_free(NULL);
}

static int stop_receivers(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(running); i++)
                if (running[i].pid > 0) {
                        struct receiver r = running[i];
                        receiver_stop(&r);
                }
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sign_vector),
                cmocka_unit_test(test_sign_bad_secret),
                cmocka_unit_test(test_options_check),
                cmocka_unit_test(test_check_url),
                cmocka_unit_test(test_send_bad_input),
                cmocka_unit_test_teardown(test_deliver_retried, stop_receivers),
                cmocka_unit_test_teardown(test_redirect_not_followed, stop_receivers),
                cmocka_unit_test_teardown(test_star_refuses_loopback_literal, stop_receivers),
                cmocka_unit_test_teardown(test_star_refuses_name_resolving_to_loopback, stop_receivers),
                cmocka_unit_test_teardown(test_environment_proxy_ignored, stop_receivers),
                cmocka_unit_test_teardown(test_timeout_retried_then_given_up, stop_receivers),
                cmocka_unit_test_teardown(test_free_aborts_attempt, stop_receivers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
