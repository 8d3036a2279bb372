/* SPDX-License-Identifier: MIT */
/*
 * work: what crosses the sandbox boundary for one run. Encode, then decode,
 * gives back every field byte for byte; the encoded memfd is sealed; and the
 * decoder, which trusts nothing, refuses every truncation, trailing bytes,
 * a wrong magic, counts it cannot hold and file names that leave the work
 * directory, without writing its output. Inputs are copied into buffers of
 * exactly their length, so the ASAN build catches any read past the end.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "util.h"
#include "work.h"

#define WORK_MAGIC 0x31575850u /* "PXW1", as src/sandbox/work.c writes it */
#define MAX_DECODE (64u << 20)

static const char policy_line[] = "name=education;imports=listed;writes=workdir;allow=math;deny=socket;deny-events=socket.*";
static const char *const sample_argv[] = {
        "main.py",
        "h\xc3\xa9llo",                       /* é */
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", /* 日本語 */
        "\xf0\x9f\x98\x80",                   /* U+1F600 */
        "--flag=a b",
        "",
};
static const char bin_data[] = "\0a\0b\xff\xfe\0"; /* NUL bytes at both ends */
static const struct pyexec_file sample_files[] = {
        { "main.py", "import sys\nprint(sys.argv)\n", 27 },
        { "data.bin", bin_data, sizeof bin_data }, /* includes the literal's NUL */
        { "empty.txt", "", 0 },
        { "h\xc3\xa9.py", "x = 1\n", 6 },
};

static void sample_work(struct work *w) {
        *w = (struct work){
                .policy = (char *)policy_line,
                .argv = (char **)sample_argv,
                .n_argv = ELEMENTSOF(sample_argv),
                .files = (struct pyexec_file *)sample_files,
                .n_files = ELEMENTSOF(sample_files),
                .n_rlimits = 3,
        };
        w->rlimits[0] = (struct rlimit_value){ RLIMIT_CPU, { 1, 2 } };
        w->rlimits[1] = (struct rlimit_value){ RLIMIT_NOFILE, { 64, 128 } };
        w->rlimits[2] = (struct rlimit_value){ RLIMIT_FSIZE, { RLIM_INFINITY, RLIM_INFINITY } };
}

static void assert_same_work(const struct work *a, const struct work *b) {
        assert_string_equal(a->policy ? a->policy : "", b->policy);
        assert_int_equal(a->n_argv, b->n_argv);
        for (size_t i = 0; i < a->n_argv; i++)
                assert_string_equal(a->argv[i], b->argv[i]);
        assert_int_equal(a->n_files, b->n_files);
        for (size_t i = 0; i < a->n_files; i++) {
                assert_string_equal(a->files[i].name, b->files[i].name);
                assert_int_equal(a->files[i].len, b->files[i].len);
                assert_non_null(b->files[i].data);
                assert_memory_equal(a->files[i].data, b->files[i].data, a->files[i].len);
                assert_int_equal(b->files[i].data[b->files[i].len], 0); /* terminated too */
        }
        assert_int_equal(a->n_rlimits, b->n_rlimits);
        for (int i = 0; i < a->n_rlimits; i++) {
                assert_int_equal(a->rlimits[i].resource, b->rlimits[i].resource);
                assert_true(a->rlimits[i].lim.rlim_cur == b->rlimits[i].lim.rlim_cur);
                assert_true(a->rlimits[i].lim.rlim_max == b->rlimits[i].lim.rlim_max);
        }
}

/* The encoded bytes of an fd (from offset 0, without moving it). */
static void read_fd(int fd, struct buf *ret) {
        struct stat st;
        char chunk[4096];
        off_t off = 0;

        assert_int_equal(fstat(fd, &st), 0);
        buf_init(ret, (size_t)st.st_size);
        while (off < st.st_size) {
                ssize_t n = pread(fd, chunk, sizeof chunk, off);
                assert_true(n > 0);
                assert_int_equal(buf_append(ret, chunk, (size_t)n), 0);
                off += n;
        }
        assert_int_equal(ret->len, (size_t)st.st_size);
}

static void encode_bytes(const struct work *w, struct buf *ret) {
        int fd = -1;
        assert_int_equal(work_encode(w, &fd), 0);
        assert_true(fd >= 0);
        read_fd(fd, ret);
        assert_int_equal(close(fd), 0);
}

/* work_decode() on a copy of p[0..n) in a buffer of exactly n bytes; ret
 * must be untouched on failure. */
static int decode_exact(const void *p, size_t n, struct work *ret) {
        struct work sentinel;
        char *copy = malloc(n ? n : 1);
        int r;

        assert_non_null(copy);
        if (n)
                memcpy(copy, p, n);
        /* memset, not assignment: padding must match too */
        memset(&sentinel, 0x5a, sizeof sentinel);
        memset(ret, 0x5a, sizeof *ret);
        r = work_decode(copy, n, ret);
        free(copy);
        if (r < 0 && memcmp(ret, &sentinel, sizeof sentinel) != 0)
                fail_msg("work_decode wrote its output on failure (%d)", r);
        return r;
}

static void expect_rejected(const struct buf *b, const char *what) {
        struct work w;
        int r = decode_exact(b->data, b->len, &w);
        if (r >= 0) {
                work_done(&w);
                fail_msg("%s: decoded, expected -EBADMSG", what);
        }
        if (r != -EBADMSG)
                fail_msg("%s: %d, expected -EBADMSG", what, r);
}

/* ---- hand-made messages ---- */

static void put_u32(struct buf *b, uint32_t v) {
        assert_int_equal(buf_append(b, &v, sizeof v), 0);
}

static void put_u64(struct buf *b, uint64_t v) {
        assert_int_equal(buf_append(b, &v, sizeof v), 0);
}

static void put_str(struct buf *b, const char *s, size_t n) {
        put_u32(b, (uint32_t)n);
        assert_int_equal(buf_append(b, s, n), 0);
}
#define PUT_STR(b, s) put_str((b), (s), sizeof(s) - 1)

/* magic, policy, argv ["main.py"]: the start of a message. */
static void start(struct buf *b) {
        buf_init(b, 1 << 20);
        put_u32(b, WORK_MAGIC);
        PUT_STR(b, "name=permissive");
        put_u32(b, 1);
        PUT_STR(b, "main.py");
}

/* ---- round trip ---- */

static void test_round_trip_fd(void **state) {
        struct work in, out;
        int fd = -1;

        sample_work(&in);
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_true(fd >= 0);
        /* close-on-exec, and positioned at the start for a reader */
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);

        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), 0);
        assert_same_work(&in, &out);
        /* the NUL bytes and the empty file, spelled out */
        assert_int_equal(out.files[1].len, 8);
        assert_memory_equal(out.files[1].data, "\0a\0b\xff\xfe\0\0", 8);
        assert_string_equal(out.files[2].name, "empty.txt");
        assert_int_equal(out.files[2].len, 0);
        assert_string_equal(out.argv[1], "h\xc3\xa9llo");
        assert_string_equal(out.argv[5], "");
        assert_null(out.argv[out.n_argv]); /* NULL-terminated, as for execv */
        assert_true(out.rlimits[2].lim.rlim_cur == RLIM_INFINITY);
        work_done(&out);
        assert_null(out.argv);
        assert_int_equal(out.n_argv, 0);

        /* decoding again reads the same fd from the start */
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), 0);
        assert_same_work(&in, &out);
        work_done(&out);
        assert_int_equal(close(fd), 0);
}

static void test_round_trip_minimal_and_large(void **state) {
        struct work in, out;
        char *big;
        const size_t big_len = 3u << 20;
        int fd = -1;
        char *argv1[] = { (char *)"main.py" };

        /* no policy, no files, no limits */
        in = (struct work){ .argv = argv1, .n_argv = 1 };
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), 0);
        assert_non_null(out.policy);
        assert_string_equal(out.policy, "");
        assert_int_equal(out.n_argv, 1);
        assert_string_equal(out.argv[0], "main.py");
        assert_int_equal(out.n_files, 0);
        assert_int_equal(out.n_rlimits, 0);
        work_done(&out);
        close(fd);

        /* a large file, with every byte value; the most limits there are */
        big = malloc(big_len);
        assert_non_null(big);
        for (size_t i = 0; i < big_len; i++)
                big[i] = (char)(i * 31 + i / 4096);
        struct pyexec_file f = { "big.bin", big, big_len };
        in = (struct work){ .policy = (char *)policy_line, .argv = argv1, .n_argv = 1, .files = &f, .n_files = 1 };
        for (int i = 0; i < RLIMIT_PLAN_MAX; i++)
                in.rlimits[in.n_rlimits++] = (struct rlimit_value){ i, { (rlim_t)i, (rlim_t)i * 1000 + 7 } };
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), 0);
        assert_same_work(&in, &out);
        work_done(&out);
        close(fd);
        free(big);
}

/* ---- the sealed memfd ---- */

static void test_encoded_fd_is_sealed(void **state) {
        struct work in;
        struct stat st;
        int fd = -1, seals;
        void *p;

        sample_work(&in);
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_size > 0);

        seals = fcntl(fd, F_GET_SEALS);
        assert_true(seals >= 0);
        assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW),
                         F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
        /* and no one can lift them (F_SEAL_SEAL) */
        assert_true(seals & F_SEAL_SEAL);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
        assert_int_equal(errno, EPERM);

        errno = 0;
        assert_int_equal(write(fd, "x", 1), -1);
        assert_int_equal(errno, EPERM);
        errno = 0;
        assert_int_equal(pwrite(fd, "x", 1, 0), -1);
        assert_int_equal(errno, EPERM);
        errno = 0;
        assert_int_equal(pwrite(fd, "x", 1, st.st_size), -1); /* growing */
        assert_int_equal(errno, EPERM);
        errno = 0;
        assert_int_equal(ftruncate(fd, 0), -1);
        assert_int_equal(errno, EPERM);
        errno = 0;
        assert_int_equal(ftruncate(fd, st.st_size + 4096), -1);
        assert_int_equal(errno, EPERM);
        errno = 0;
        p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(p == MAP_FAILED);
        assert_int_equal(errno, EPERM);

        /* unchanged, and still decodes */
        struct stat st2;
        struct work out;
        assert_int_equal(fstat(fd, &st2), 0);
        assert_int_equal(st2.st_size, st.st_size);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), 0);
        assert_same_work(&in, &out);
        work_done(&out);
        close(fd);
}

/* ---- the decoder ---- */

static void test_decode_every_truncation(void **state) {
        struct work in, out;
        struct buf b;

        sample_work(&in);
        encode_bytes(&in, &b);
        assert_true(b.len > 100);
        {
                uint32_t magic;
                memcpy(&magic, b.data, sizeof magic);
                assert_int_equal(magic, WORK_MAGIC);
        }

        /* the whole message decodes, from an exact-size buffer */
        assert_int_equal(decode_exact(b.data, b.len, &out), 0);
        assert_same_work(&in, &out);
        work_done(&out);

        for (size_t n = 0; n < b.len; n++) {
                int r = decode_exact(b.data, n, &out);
                if (r >= 0) {
                        work_done(&out);
                        fail_msg("truncated to %zu of %zu bytes: decoded", n, b.len);
                }
                if (r != -EBADMSG)
                        fail_msg("truncated to %zu of %zu bytes: %d, expected -EBADMSG", n, b.len, r);
        }
        buf_done(&b);
}

static void test_decode_trailing_bytes(void **state) {
        struct work in;
        struct buf b;

        sample_work(&in);
        encode_bytes(&in, &b);
        b.max = b.len + 16;
        assert_int_equal(buf_append(&b, "", 1), 0);
        expect_rejected(&b, "one trailing NUL");
        assert_int_equal(buf_append(&b, "\0\0\0", 3), 0);
        expect_rejected(&b, "a trailing u32 0");
        buf_done(&b);

        /* the same on a hand-made message */
        start(&b);
        put_u32(&b, 0); /* files */
        put_u32(&b, 0); /* rlimits */
        {
                struct work w;
                assert_int_equal(decode_exact(b.data, b.len, &w), 0);
                work_done(&w);
        }
        put_u32(&b, 0);
        expect_rejected(&b, "an extra count");
        buf_done(&b);
}

static void test_decode_bad_magic(void **state) {
        struct work in;
        struct buf b;

        sample_work(&in);
        encode_bytes(&in, &b);
        for (size_t i = 0; i < 4; i++) {
                b.data[i] ^= 0x20;
                expect_rejected(&b, "a flipped magic byte");
                b.data[i] ^= 0x20;
        }
        buf_done(&b);

        buf_init(&b, 64);
        put_u32(&b, 0);
        expect_rejected(&b, "magic 0 alone");
        buf_done(&b);

        /* a byte-swapped magic (another endianness) is not ours either */
        start(&b);
        put_u32(&b, 0);
        put_u32(&b, 0);
        uint32_t swapped = __builtin_bswap32(WORK_MAGIC);
        memcpy(b.data, &swapped, sizeof swapped);
        expect_rejected(&b, "a byte-swapped magic");
        buf_done(&b);
}

static void test_decode_argv_counts(void **state) {
        struct buf b;

        /* no argv: a runner needs sys.argv[0] */
        buf_init(&b, 1 << 20);
        put_u32(&b, WORK_MAGIC);
        PUT_STR(&b, "");
        put_u32(&b, 0); /* argv */
        put_u32(&b, 0); /* files */
        put_u32(&b, 0); /* rlimits */
        expect_rejected(&b, "zero argv");
        buf_done(&b);

        /* counts far beyond the message, refused before anything is
         * allocated for them or after the data runs out */
        static const uint32_t huge[] = { 0xffffffffu, 0x80000000u, 100001, 100000, 2 };
        for (size_t i = 0; i < ELEMENTSOF(huge); i++) {
                buf_init(&b, 1 << 20);
                put_u32(&b, WORK_MAGIC);
                PUT_STR(&b, "");
                put_u32(&b, huge[i]);
                PUT_STR(&b, "main.py");
                put_u32(&b, 0);
                put_u32(&b, 0);
                expect_rejected(&b, "an argv count larger than the message");
                buf_done(&b);
        }
}

static void test_decode_huge_counts_and_lengths(void **state) {
        static const uint32_t huge[] = { 0xffffffffu, 0x80000000u, 100001, 100000, 1000 };
        struct buf b;

        for (size_t i = 0; i < ELEMENTSOF(huge); i++) {
                /* files */
                start(&b);
                put_u32(&b, huge[i]);
                PUT_STR(&b, "a.py");
                PUT_STR(&b, "x");
                put_u32(&b, 0);
                expect_rejected(&b, "a huge file count");
                buf_done(&b);

                /* rlimits */
                start(&b);
                put_u32(&b, 0);
                put_u32(&b, huge[i]);
                put_u32(&b, RLIMIT_CPU);
                put_u64(&b, 1);
                put_u64(&b, 1);
                expect_rejected(&b, "a huge rlimit count");
                buf_done(&b);

                /* a string length beyond the message */
                buf_init(&b, 1 << 20);
                put_u32(&b, WORK_MAGIC);
                put_u32(&b, huge[i]);
                assert_int_equal(buf_append(&b, "name=x", 6), 0);
                put_u32(&b, 1);
                PUT_STR(&b, "main.py");
                put_u32(&b, 0);
                put_u32(&b, 0);
                expect_rejected(&b, "a huge policy length");
                buf_done(&b);

                start(&b);
                put_u32(&b, 1);
                PUT_STR(&b, "a.py");
                put_u32(&b, huge[i]); /* data length */
                assert_int_equal(buf_append(&b, "xxxxxxxx", 8), 0);
                put_u32(&b, 0);
                expect_rejected(&b, "a huge file length");
                buf_done(&b);
        }

        /* one more rlimit than a plan has */
        start(&b);
        put_u32(&b, 0);
        put_u32(&b, RLIMIT_PLAN_MAX + 1);
        for (int i = 0; i < RLIMIT_PLAN_MAX + 1; i++) {
                put_u32(&b, RLIMIT_CPU);
                put_u64(&b, 1);
                put_u64(&b, 1);
        }
        expect_rejected(&b, "RLIMIT_PLAN_MAX + 1 rlimits");
        buf_done(&b);

        /* exactly as many is fine */
        start(&b);
        put_u32(&b, 0);
        put_u32(&b, RLIMIT_PLAN_MAX);
        for (int i = 0; i < RLIMIT_PLAN_MAX; i++) {
                put_u32(&b, (uint32_t)i);
                put_u64(&b, (uint64_t)i + 1);
                put_u64(&b, (uint64_t)i + 2);
        }
        put_u32(&b, 0);
        {
                struct work w;
                /* trailing u32 above: refused */
                expect_rejected(&b, "RLIMIT_PLAN_MAX rlimits and a trailing u32");
                b.len -= 4;
                assert_int_equal(decode_exact(b.data, b.len, &w), 0);
                assert_int_equal(w.n_rlimits, RLIMIT_PLAN_MAX);
                assert_int_equal(w.rlimits[RLIMIT_PLAN_MAX - 1].resource, RLIMIT_PLAN_MAX - 1);
                assert_true(w.rlimits[3].lim.rlim_cur == 4 && w.rlimits[3].lim.rlim_max == 5);
                work_done(&w);
        }
        buf_done(&b);
}

static void test_decode_file_names(void **state) {
        static const struct {
                const char *name;
                size_t len;
        } bad[] = {
#define N(x) { x, sizeof(x) - 1 }
                N("a/b"), N("/etc/passwd"), N("../x"), N(".."), N("."), N(""), N("x/"), N("a\nb"), N("\x1b[0m"),
                N("\xff.py"),
#undef N
        };
        struct buf b;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                start(&b);
                put_u32(&b, 2);
                PUT_STR(&b, "ok.py"); /* a good one first: it must be freed */
                PUT_STR(&b, "data");
                put_str(&b, bad[i].name, bad[i].len);
                PUT_STR(&b, "data");
                put_u32(&b, 0);
                char what[64];
                snprintf(what, sizeof what, "file name [%zu]", i);
                expect_rejected(&b, what);
                buf_done(&b);
        }

        /* and through the encoder, which does not check */
        struct pyexec_file f[] = { { "main.py", "", 0 }, { "../escape.py", "x", 1 } };
        char *argv1[] = { (char *)"main.py" };
        struct work in = { .argv = argv1, .n_argv = 1, .files = f, .n_files = 2 }, out;
        int fd = -1;
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), -EBADMSG);
        close(fd);
}

static void test_decode_fd_sizes(void **state) {
        struct work in, out, sentinel;
        struct stat st;
        int fd;

        memset(&sentinel, 0x5a, sizeof sentinel);

        /* empty */
        fd = memfd_create("empty", MFD_CLOEXEC);
        assert_true(fd >= 0);
        memset(&out, 0x5a, sizeof out);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), -EMSGSIZE);
        assert_memory_equal(&out, &sentinel, sizeof out);
        close(fd);

        /* larger than max, by one byte */
        sample_work(&in);
        assert_int_equal(work_encode(&in, &fd), 0);
        assert_int_equal(fstat(fd, &st), 0);
        memset(&out, 0x5a, sizeof out);
        assert_int_equal(work_decode_fd(fd, (size_t)st.st_size - 1, &out), -EMSGSIZE);
        assert_memory_equal(&out, &sentinel, sizeof out);
        assert_int_equal(work_decode_fd(fd, 0, &out), -EMSGSIZE);
        /* exactly max */
        assert_int_equal(work_decode_fd(fd, (size_t)st.st_size, &out), 0);
        assert_same_work(&in, &out);
        work_done(&out);
        close(fd);

        /* not a file */
        memset(&out, 0x5a, sizeof out);
        assert_int_equal(work_decode_fd(-1, MAX_DECODE, &out), -EBADF);
        assert_memory_equal(&out, &sentinel, sizeof out);

        /* garbage of a plausible size */
        fd = memfd_create("garbage", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "PXW1garbage-garbage-garbage", 27), 0);
        assert_int_equal(work_decode_fd(fd, MAX_DECODE, &out), -EBADMSG);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip_fd),
                cmocka_unit_test(test_round_trip_minimal_and_large),
                cmocka_unit_test(test_encoded_fd_is_sealed),
                cmocka_unit_test(test_decode_every_truncation),
                cmocka_unit_test(test_decode_trailing_bytes),
                cmocka_unit_test(test_decode_bad_magic),
                cmocka_unit_test(test_decode_argv_counts),
                cmocka_unit_test(test_decode_huge_counts_and_lengths),
                cmocka_unit_test(test_decode_file_names),
                cmocka_unit_test(test_decode_fd_sizes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
