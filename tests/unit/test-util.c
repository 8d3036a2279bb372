/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define FFFD "\xef\xbf\xbd"

static char tmpdir[64];

static int group_setup(void **state) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pyexec-test-util-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *tmp_path(const char *name) {
        char *p = strdup_printf("%s/%s", tmpdir, name);
        assert_non_null(p);
        return p;
}

static void write_test_file(const char *path, const void *data, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, data, n), 0);
        assert_int_equal(close(fd), 0);
}

/* ---- struct buf ---- */

static void test_buf_init_is_empty(void **state) {
        struct buf b;
        memset(&b, 0x5a, sizeof b);
        buf_init(&b, 10);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_int_equal(b.max, 10);
}

static void test_buf_cap_exact(void **state) {
        struct buf b;
        buf_init(&b, 10);

        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "0123456789", 11); /* includes the NUL */

        /* max + 1: refused, nothing appended, still terminated */
        assert_int_equal(buf_append(&b, "x", 1), -ENOBUFS);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "0123456789", 11);
        assert_int_equal(buf_append_str(&b, "y"), -ENOBUFS);
        assert_int_equal(buf_printf(&b, "%d", 7), -ENOBUFS);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "0123456789", 11);

        /* appending nothing at the cap is fine */
        assert_int_equal(buf_append(&b, "", 0), 0);
        assert_int_equal(b.len, 10);
        buf_done(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
}

static void test_buf_cap_partial_refused(void **state) {
        struct buf b;
        buf_init(&b, 10);
        assert_int_equal(buf_append(&b, "abcdef", 6), 0);
        /* 6 + 5 = 11 > 10: refused as a whole, not truncated */
        assert_int_equal(buf_append(&b, "ghijk", 5), -ENOBUFS);
        assert_int_equal(b.len, 6);
        assert_string_equal(b.data, "abcdef");
        assert_int_equal(buf_append(&b, "ghij", 4), 0);
        assert_string_equal(b.data, "abcdefghij");
        /* a length that would overflow len + n */
        assert_int_equal(buf_append(&b, "z", SIZE_MAX), -ENOBUFS);
        assert_int_equal(b.len, 10);
        buf_done(&b);

        /* a single over-cap append to an empty buffer allocates nothing */
        buf_init(&b, 3);
        assert_int_equal(buf_append(&b, "abcd", 4), -ENOBUFS);
        assert_int_equal(b.len, 0);
        assert_null(b.data);
        buf_done(&b);
}

static void test_buf_grows_and_keeps_nul_bytes(void **state) {
        struct buf b;
        char chunk[100];

        buf_init(&b, 100000);
        for (int i = 0; i < 1000; i++) {
                memset(chunk, 'a' + i % 26, sizeof chunk);
                chunk[50] = 0; /* embedded NUL */
                assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
        }
        assert_int_equal(b.len, 100000);
        assert_true(b.cap >= b.len);
        assert_int_equal(b.data[b.len], 0);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(b.data[i * 100], 'a' + i % 26);
                assert_int_equal(b.data[i * 100 + 50], 0);
                assert_int_equal(b.data[i * 100 + 99], 'a' + i % 26);
        }
        assert_int_equal(buf_append(&b, "x", 1), -ENOBUFS);
        buf_done(&b);
}

static void test_buf_printf(void **state) {
        struct buf b;
        buf_init(&b, 64);
        assert_int_equal(buf_printf(&b, "%s=%d", "pids", 64), 0);
        assert_int_equal(b.len, 7);
        assert_string_equal(b.data, "pids=64");
        assert_int_equal(buf_printf(&b, ",%05.1f", 2.5), 0);
        assert_string_equal(b.data, "pids=64,002.5");
        assert_int_equal(b.len, strlen("pids=64,002.5"));
        assert_int_equal(buf_append_str(&b, "!"), 0);
        assert_string_equal(b.data, "pids=64,002.5!");
        buf_done(&b);

        /* exactly at the cap works, one more does not */
        buf_init(&b, 5);
        assert_int_equal(buf_printf(&b, "%d", 12345), 0);
        assert_string_equal(b.data, "12345");
        buf_done(&b);
        buf_init(&b, 5);
        assert_int_equal(buf_printf(&b, "%d", 123456), -ENOBUFS);
        assert_int_equal(b.len, 0);
        buf_done(&b);
}

static void test_buf_steal(void **state) {
        struct buf b;
        char *s;

        buf_init(&b, 16);
        s = buf_steal(&b);
        assert_non_null(s);
        assert_string_equal(s, "");
        free(s);
        assert_null(b.data);
        assert_int_equal(b.len, 0);

        assert_int_equal(buf_append_str(&b, "hello"), 0);
        s = buf_steal(&b);
        assert_string_equal(s, "hello");
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        free(s);

        /* reusable after steal, cap still enforced */
        assert_int_equal(buf_append_str(&b, "0123456789abcdef"), 0);
        assert_int_equal(buf_append_str(&b, "!"), -ENOBUFS);
        buf_done(&b);
}

/* ---- parse_u64 ---- */

static void test_parse_u64_rejects_non_numbers(void **state) {
        static const char *const bad[] = {
                "", "+1", "-1", " 1", "1 ", "1x", "0x10", "1.0", "1e3", "\t1", "1\n", "١", "x",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 4242;
                int r = parse_u64(bad[i], 0, UINT64_MAX, &v);
                if (r != -EINVAL)
                        fail_msg("parse_u64(\"%s\") = %d, expected -EINVAL", bad[i], r);
                assert_int_equal(v, 4242); /* untouched */
        }
        uint64_t v = 4242;
        assert_int_equal(parse_u64(NULL, 0, 10, &v), -EINVAL);
        assert_int_equal(v, 4242);
}

static void test_parse_u64_values(void **state) {
        uint64_t v = 0;
        assert_int_equal(parse_u64("0", 0, 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("1", 0, 10, &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(parse_u64("4096", 16, 4096, &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(parse_u64("18446744073709551610", 0, UINT64_MAX, &v), 0);
        assert_true(v == UINT64_MAX - 5);
}

static void test_parse_u64_range(void **state) {
        uint64_t v = 4242;

        assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(v, 4242);
        assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(v, 4242);
        /* min and max are inclusive */
        assert_int_equal(parse_u64("15", 16, 4096, &v), -ERANGE);
        assert_int_equal(v, 4242);
        assert_int_equal(parse_u64("4097", 16, 4096, &v), -ERANGE);
        assert_int_equal(v, 4242);
        assert_int_equal(parse_u64("16", 16, 4096, &v), 0);
        assert_int_equal(v, 16);
        v = 4242;
        assert_int_equal(parse_u64("0", 1, 10, &v), -ERANGE);
        assert_int_equal(v, 4242);
}

/* Garbage is garbage however many digits precede it: "not a number" must win
 * over "out of range", or a caller's message would blame the range. */
static void test_parse_u64_overflow_then_garbage_is_einval(void **state) {
        uint64_t v = 4242;
        assert_int_equal(parse_u64("99999999999999999999x", 0, UINT64_MAX, &v), -EINVAL);
        assert_int_equal(v, 4242);
        assert_int_equal(parse_u64("18446744073709551616 ", 0, UINT64_MAX, &v), -EINVAL);
        assert_int_equal(v, 4242);
}

/* ---- UTF-8 ---- */

static void repair_check(const char *in, size_t n, const char *want, size_t want_len) {
        struct buf b;
        buf_init(&b, 1024);
        assert_int_equal(utf8_repair(in, n, &b), 0);
        if (b.len != want_len || memcmp(b.data ? b.data : "", want, want_len) != 0)
                fail_msg("utf8_repair gave %zu bytes, expected %zu", b.len, want_len);
        assert_true(utf8_is_valid(b.data ? b.data : "", b.len));
        buf_done(&b);
}
#define REPAIR(in, want) repair_check(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_utf8_valid(void **state) {
        static const struct {
                const char *s;
                size_t n;
        } valid[] = {
#define V(x) { x, sizeof(x) - 1 }
                V(""),
                V("plain ascii"),
                V("h\xc3\xa9llo"),           /* U+00E9 */
                V("\xc2\x80"),               /* U+0080, smallest 2-byte */
                V("\xdf\xbf"),               /* U+07FF */
                V("\xe0\xa0\x80"),           /* U+0800, smallest 3-byte */
                V("\xe2\x82\xac"),           /* U+20AC */
                V("\xed\x9f\xbf"),           /* U+D7FF, just below the surrogates */
                V("\xee\x80\x80"),           /* U+E000, just above */
                V("\xef\xbf\xbd"),           /* U+FFFD */
                V("\xf0\x90\x80\x80"),       /* U+10000 */
                V("\xf0\x9f\x98\x80"),       /* U+1F600 */
                V("\xf4\x8f\xbf\xbf"),       /* U+10FFFF */
                V("a\0b"),                   /* NUL is valid */
#undef V
        };
        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                if (!utf8_is_valid(valid[i].s, valid[i].n))
                        fail_msg("valid[%zu] reported invalid", i);
                repair_check(valid[i].s, valid[i].n, valid[i].s, valid[i].n);
        }
}

static void test_utf8_invalid(void **state) {
        static const struct {
                const char *s;
                size_t n;
        } invalid[] = {
#define V(x) { x, sizeof(x) - 1 }
                V("\xc0\xaf"),          /* overlong '/' */
                V("\xe0\x80\xaf"),      /* overlong 3-byte */
                V("\xf0\x80\x80\xaf"),  /* overlong 4-byte */
                V("\xed\xa0\x80"),      /* U+D800 */
                V("\xed\xbf\xbf"),      /* U+DFFF */
                V("\xf4\x90\x80\x80"),  /* U+110000 */
                V("\xf5\x80\x80\x80"),  /* lead byte beyond U+10FFFF */
                V("\xff"),
                V("\xfe"),
                V("\x80"),              /* lone continuation */
                V("a\xbf" "b"),
                V("\xc3"),              /* truncated at end */
                V("\xe2\x82"),
                V("\xf0\x9f\x98"),
                V("\xc3" "a"),          /* lead followed by a non-continuation */
#undef V
        };
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                if (utf8_is_valid(invalid[i].s, invalid[i].n))
                        fail_msg("invalid[%zu] reported valid", i);
}

/* One U+FFFD per maximal subpart (Unicode's recommended practice, and what
 * Python's decode("utf-8", "replace") does): the longest prefix of a
 * well-formed sequence that is cut short counts once; a byte that cannot
 * start or continue one counts alone. */
static void test_utf8_repair(void **state) {
        /* bytes that are never valid, or no prefix of a valid sequence: one each */
        REPAIR("\xc0\xaf", FFFD FFFD);
        REPAIR("\xe0\x80\xaf", FFFD FFFD FFFD);
        REPAIR("a\xed\xa0\x80z", "a" FFFD FFFD FFFD "z");
        REPAIR("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
        REPAIR("\xf5\x80", FFFD FFFD);
        REPAIR("\x80\x80", FFFD FFFD);
        REPAIR("x\xffy\xfe", "x" FFFD "y" FFFD);
        REPAIR("ok\0\xff\0", "ok\0" FFFD "\0");
        /* a truncated sequence is one subpart, and must not swallow the
         * ASCII after it */
        REPAIR("\xe2\x82" "A", FFFD "A");
        REPAIR("\xf0\x9f\x98" "x", FFFD "x");
        REPAIR("\xc3" "a", FFFD "a");
        REPAIR("\xe2\x82\xe2\x82\xac", FFFD "\xe2\x82\xac");
        /* valid multibyte next to invalid bytes survives intact */
        REPAIR("\xc3\xa9\xff\xe2\x82\xac", "\xc3\xa9" FFFD "\xe2\x82\xac");
}

static void test_utf8_repair_truncated_at_end(void **state) {
        REPAIR("a\xc3", "a" FFFD);
        REPAIR("a\xe2\x82", "a" FFFD);
        REPAIR("a\xf0\x9f\x98", "a" FFFD);
        REPAIR("a\xf0\x9f", "a" FFFD);
        REPAIR("\xf4\x8f\xbf", FFFD);
}

static void test_utf8_repair_respects_cap(void **state) {
        struct buf b;
        buf_init(&b, 5);
        /* "ab" + U+FFFD = 5 bytes fits, one more does not */
        assert_int_equal(utf8_repair("ab\xff", 3, &b), 0);
        assert_int_equal(b.len, 5);
        assert_int_equal(utf8_repair("c", 1, &b), -ENOBUFS);
        assert_int_equal(b.len, 5);
        buf_done(&b);
}

static void test_utf8_length(void **state) {
        assert_int_equal(utf8_length("", 0), 0);
        assert_int_equal(utf8_length("plain", 5), 5);
        assert_int_equal(utf8_length("h\xc3\xa9llo", 6), 5);      /* U+00E9: 2 bytes, 1 character */
        assert_int_equal(utf8_length("\xe2\x82\xac", 3), 1);      /* U+20AC */
        assert_int_equal(utf8_length("\xf0\x9f\x98\x80!", 5), 2); /* U+1F600 */
        assert_int_equal(utf8_length("a\0b", 3), 3);              /* NUL counts */
        /* n, not the NUL, ends the string */
        assert_int_equal(utf8_length("\xc3\xa9\xc3\xa9", 2), 1);
}

/* Messages that quote a client's bytes are repaired in place and cut to
 * their buffer without splitting a character. */
static void test_utf8_make_valid(void **state) {
        char s[16];

        snprintf(s, sizeof s, "%s", "ok \xc3\xa9");
        utf8_make_valid(s, sizeof s);
        assert_string_equal(s, "ok \xc3\xa9"); /* valid: untouched */

        snprintf(s, sizeof s, "%s", "a\xff!");
        utf8_make_valid(s, sizeof s);
        assert_string_equal(s, "a" FFFD "!");

        /* a character cut by an earlier snprintf: repaired, not dropped */
        snprintf(s, sizeof s, "%s", "x\xe2\x82");
        utf8_make_valid(s, sizeof s);
        assert_string_equal(s, "x" FFFD);

        /* "ab" + U+FFFD is 5 bytes: in 6 it fits, in 5 (4 + NUL) the
         * replacement goes whole */
        snprintf(s, 6, "%s", "ab\xff");
        utf8_make_valid(s, 6);
        assert_string_equal(s, "ab" FFFD);
        snprintf(s, 5, "%s", "ab\xff");
        utf8_make_valid(s, 5);
        assert_string_equal(s, "ab");

        /* more replacements than fit: cut between them */
        snprintf(s, sizeof s, "%s", "\xff\xff\xff\xff\xff\xff");
        utf8_make_valid(s, sizeof s);
        assert_string_equal(s, FFFD FFFD FFFD FFFD FFFD);
        assert_true(utf8_is_valid(s, strlen(s)));
}

/* ---- filename_is_plain ---- */

static void test_filename_is_plain(void **state) {
        char longname[257];

        assert_true(filename_is_plain("a.py", 4));
        assert_true(filename_is_plain("main.py", 7));
        assert_true(filename_is_plain("...", 3));
        assert_true(filename_is_plain(".hidden", 7));
        assert_true(filename_is_plain("h\xc3\xa9llo.py", 9));
        assert_true(filename_is_plain("\xe6\x97\xa5\xe6\x9c\xac.py", 9));
        assert_true(filename_is_plain("with space.txt", 14));

        assert_false(filename_is_plain("", 0));
        assert_false(filename_is_plain(".", 1));
        assert_false(filename_is_plain("..", 2));
        assert_false(filename_is_plain("a/b", 3));
        assert_false(filename_is_plain("/a", 2));
        assert_false(filename_is_plain("a/", 2));
        assert_false(filename_is_plain("a\n", 2));
        assert_false(filename_is_plain("a\tb", 3));
        assert_false(filename_is_plain("\x7f", 1));
        assert_false(filename_is_plain("a\x1b[0m", 6));
        assert_false(filename_is_plain("a\0b", 3));
        assert_false(filename_is_plain("\xff.py", 4));
        assert_false(filename_is_plain("\xc0\xaf", 2));

        memset(longname, 'n', sizeof longname);
        assert_true(filename_is_plain(longname, 255));
        assert_false(filename_is_plain(longname, 256));
}

/* ---- files ---- */

static void test_read_file(void **state) {
        _cleanup_free_ char *p = tmp_path("read"), *missing = tmp_path("missing");
        char data[40000];
        struct buf b, sentinel;

        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (char)(i * 7 + i / 256);
        data[100] = 0;
        write_test_file(p, data, sizeof data);

        assert_int_equal(read_file(p, sizeof data, &b), 0);
        assert_int_equal(b.len, sizeof data);
        assert_memory_equal(b.data, data, sizeof data);
        assert_int_equal(b.data[b.len], 0);
        buf_done(&b);

        buf_init(&sentinel, 77);
        b = sentinel;
        assert_int_equal(read_file(p, sizeof data - 1, &b), -EFBIG);
        assert_int_equal(b.max, 77); /* untouched */
        assert_null(b.data);

        assert_int_equal(read_file(missing, 100, &b), -ENOENT);
        assert_int_equal(b.max, 77);

        write_test_file(p, "", 0);
        assert_int_equal(read_file(p, 10, &b), 0);
        assert_int_equal(b.len, 0);
        assert_non_null(b.data);
        assert_string_equal(b.data, "");
        buf_done(&b);
}

static void test_read_small_file(void **state) {
        _cleanup_free_ char *p = tmp_path("small");
        char big[4097];
        char *s = NULL;

        write_test_file(p, "hello\n", 6);
        assert_int_equal(read_small_file(p, &s), 0);
        assert_string_equal(s, "hello");
        free(s);

        write_test_file(p, "max 12\nnext\n", 12);
        assert_int_equal(read_small_file(p, &s), 0);
        assert_string_equal(s, "max 12\nnext");
        free(s);

        write_test_file(p, "no newline", 10);
        assert_int_equal(read_small_file(p, &s), 0);
        assert_string_equal(s, "no newline");
        free(s);

        memset(big, '1', sizeof big);
        write_test_file(p, big, 4096);
        assert_int_equal(read_small_file(p, &s), 0);
        assert_int_equal(strlen(s), 4096);
        free(s);

        s = (char *)0x1;
        write_test_file(p, big, sizeof big);
        assert_int_equal(read_small_file(p, &s), -EFBIG);
        assert_ptr_equal(s, (char *)0x1);
}

static void test_write_control_file(void **state) {
        _cleanup_free_ char *p = tmp_path("ctl"), *missing = tmp_path("ctl-missing");
        struct buf b;

        write_test_file(p, "a much longer old content\n", 26);
        assert_int_equal(write_control_file(p, "12345"), 0);
        assert_int_equal(read_file(p, 100, &b), 0);
        assert_int_equal(b.len, 5); /* truncated, not overwritten in place */
        assert_string_equal(b.data, "12345");
        buf_done(&b);

        /* no O_CREAT: control files exist or the write is wrong */
        assert_int_equal(write_control_file(missing, "1"), -ENOENT);
        assert_int_equal(access(missing, F_OK), -1);
        assert_int_equal(errno, ENOENT);

        assert_int_equal(write_control_file(tmpdir, "1"), -EISDIR);
}

static void test_write_all_and_strdup_printf(void **state) {
        int fds[2];
        char big[50000], back[50000];
        size_t got = 0;
        pid_t pid;
        _cleanup_free_ char *s = strdup_printf("%s-%03d", "run", 7);

        assert_string_equal(s, "run-007");

        /* more than a pipe holds: write_all must loop over partial writes */
        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (char)(i % 251);
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        pid = test_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                _exit(write_all(fds[1], big, sizeof big) == 0 ? 0 : 1);
        }
        close(fds[1]);
        for (;;) {
                ssize_t n = read(fds[0], back + got, sizeof back - got);
                assert_true(n >= 0);
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        close(fds[0]);
        assert_status_exited(wait_child(pid, 5000), 0);
        assert_int_equal(got, sizeof big);
        assert_memory_equal(back, big, sizeof big);

        assert_int_equal(write_all(-1, "x", 1), -EBADF);
}

static void test_now_ns_monotonic(void **state) {
        uint64_t a = now_ns();
        sleep_ms(20);
        uint64_t b = now_ns();
        assert_true(b > a);
        assert_true(b - a >= 20000000ull);
        assert_true(b - a < 2000000000ull);
}

/* The data arrives whole, with the descriptors in order and working; more
 * than 8 is refused, and a peer that is gone is -EPIPE. */
static void test_send_fds(void **state) {
        int sv[2], p[2], q[2], got[4];
        char data[8] = { 0 };
        struct iovec iov = { data, sizeof data };
        union {
                char buf[CMSG_SPACE(4 * sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        struct cmsghdr *cm;
        char c = 0;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(pipe2(q, O_CLOEXEC), 0);
        assert_int_equal(send_fds(sv[0], "hello", 5, (int[]){ p[1], q[1] }, 2), 0);
        assert_int_equal(recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC), 5);
        assert_memory_equal(data, "hello", 5);
        cm = CMSG_FIRSTHDR(&mh);
        assert_non_null(cm);
        assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
        assert_int_equal(cm->cmsg_len, CMSG_LEN(2 * sizeof(int)));
        memcpy(got, CMSG_DATA(cm), 2 * sizeof(int));
        assert_int_equal(write(got[0], "a", 1), 1);
        assert_int_equal(read(p[0], &c, 1), 1);
        assert_int_equal(c, 'a');
        assert_int_equal(write(got[1], "b", 1), 1);
        assert_int_equal(read(q[0], &c, 1), 1);
        assert_int_equal(c, 'b');
        /* None attached: the plain message. */
        assert_int_equal(send_fds(sv[0], "x", 1, NULL, 0), 0);
        mh.msg_controllen = sizeof u.buf;
        assert_int_equal(recvmsg(sv[1], &mh, 0), 1);
        assert_int_equal(mh.msg_controllen, 0);
        assert_int_equal(send_fds(sv[0], "x", 1, (int[9]){ 0 }, 9), -EINVAL);
        close(sv[1]);
        assert_int_equal(send_fds(sv[0], "x", 1, NULL, 0), -EPIPE);
        for (int i = 0; i < 2; i++) {
                close(got[i]);
                close(p[i]);
                close(q[i]);
        }
        close(sv[0]);
}

/* ---- unix_gc_schedule ---- */

/* A child sends a pipe's write end into a cycle of Unix sockets (a socket
 * in its own queue) and exits: only the kernel's collector closes that
 * end. After unix_gc_schedule() the pipe's reader sees its end. (Other
 * processes' socket releases run the collector too: this checks that the
 * call does, not that nothing else would.) */
static void test_unix_gc_schedule_collects_a_cycle(void **state) {
        int p[2], status;
        struct pollfd pfd;
        pid_t pid;
        char c;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        _exit(1);
                if (send_fds(sv[0], "x", 1, (int[]){ sv[0], sv[1], p[1] }, 3) < 0)
                        _exit(2);
                _exit(0);
        }
        close(p[1]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(unix_gc_schedule(), 0);
        pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        assert_int_equal(read(p[0], &c, 1), 0);
        close(p[0]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buf_init_is_empty),
                cmocka_unit_test(test_buf_cap_exact),
                cmocka_unit_test(test_buf_cap_partial_refused),
                cmocka_unit_test(test_buf_grows_and_keeps_nul_bytes),
                cmocka_unit_test(test_buf_printf),
                cmocka_unit_test(test_buf_steal),
                cmocka_unit_test(test_parse_u64_rejects_non_numbers),
                cmocka_unit_test(test_parse_u64_values),
                cmocka_unit_test(test_parse_u64_range),
                cmocka_unit_test(test_parse_u64_overflow_then_garbage_is_einval),
                cmocka_unit_test(test_utf8_valid),
                cmocka_unit_test(test_utf8_invalid),
                cmocka_unit_test(test_utf8_repair),
                cmocka_unit_test(test_utf8_repair_truncated_at_end),
                cmocka_unit_test(test_utf8_repair_respects_cap),
                cmocka_unit_test(test_utf8_length),
                cmocka_unit_test(test_utf8_make_valid),
                cmocka_unit_test(test_filename_is_plain),
                cmocka_unit_test(test_read_file),
                cmocka_unit_test(test_read_small_file),
                cmocka_unit_test(test_write_control_file),
                cmocka_unit_test(test_write_all_and_strdup_printf),
                cmocka_unit_test(test_now_ns_monotonic),
                cmocka_unit_test(test_send_fds),
                cmocka_unit_test(test_unix_gc_schedule_collects_a_cycle),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
