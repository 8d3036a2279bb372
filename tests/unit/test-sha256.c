/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"

static void hex_of(const void *data, size_t n, char out[65]) {
        struct sha256 s;
        unsigned char d[32];
        sha256_init(&s);
        sha256_update(&s, data, n);
        sha256_final(&s, d);
        sha256_hex(d, out);
}

/* FIPS 180-4 examples (NIST CSRC) and the empty string. */
static void test_vectors(void **state) {
        char h[65];
        hex_of("", 0, h);
        assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        hex_of("abc", 3, h);
        assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
        assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* One million 'a': many blocks, fed in odd-sized pieces. */
static void test_million_a_in_pieces(void **state) {
        struct sha256 s;
        unsigned char d[32], chunk[997];
        size_t left = 1000000;
        char h[65];

        memset(chunk, 'a', sizeof chunk);
        sha256_init(&s);
        while (left) {
                size_t n = left < sizeof chunk ? left : sizeof chunk;
                sha256_update(&s, chunk, n);
                left -= n;
        }
        sha256_final(&s, d);
        sha256_hex(d, h);
        assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_fd(void **state) {
        char path[] = "/tmp/pyexec-test-sha256-XXXXXX", h[65];
        unsigned char d[32];
        uint64_t bytes = 0;
        int fd = mkstemp(path);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, "abc", 3), 3);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(sha256_fd(fd, d, &bytes), 0);
        sha256_hex(d, h);
        assert_int_equal(bytes, 3);
        assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        close(fd);
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors),
                cmocka_unit_test(test_million_a_in_pieces),
                cmocka_unit_test(test_fd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
