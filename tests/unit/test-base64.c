/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static void encode_is(const char *in, const char *want) {
        char *out = NULL;
        size_t n = 0;
        assert_int_equal(base64_encode(in, strlen(in), &out, &n), 0);
        assert_string_equal(out, want);
        assert_int_equal(n, strlen(want));
        free(out);
}

static void decode_is(const char *in, const char *want) {
        uint8_t *out = NULL;
        size_t n = 99;
        assert_int_equal(base64_decode(in, strlen(in), &out, &n), 0);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(out, want, n);
        assert_int_equal(out[n], 0);
        assert_int_equal(base64_decoded_len(in, strlen(in)), n);
        free(out);
}

/* RFC 4648, section 10. */
static void test_rfc4648_vectors(void **state) {
        static const char *const v[][2] = {
                { "", "" },
                { "f", "Zg==" },
                { "fo", "Zm8=" },
                { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" },
                { "fooba", "Zm9vYmE=" },
                { "foobar", "Zm9vYmFy" },
        };
        (void)state;
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
                encode_is(v[i][0], v[i][1]);
                decode_is(v[i][1], v[i][0]);
        }
}

/* libcrypto's decoder also takes whitespace and counts padding as bytes:
 * only strict base64 is taken. */
static void test_decode_refuses_what_is_not_strict_base64(void **state) {
        static const char *const bad[] = {
                "Zg=",  "Zg",   "Z",        "Zm9v Yg==", " Zm9v", "Zm9v\n", "Zm9v\r\n",
                "Z===", "====", "Zg==Zg==", "Zm=v",      "Zm9-",  "Zm9_",   "Zm9vYg=\n",
        };
        (void)state;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                uint8_t *out = (uint8_t *)"untouched";
                size_t n = 7;
                assert_int_equal(base64_decode(bad[i], strlen(bad[i]), &out, &n), -EINVAL);
                assert_string_equal((const char *)out, "untouched");
                assert_false(base64_is_valid(bad[i], strlen(bad[i])));
                assert_int_equal(base64_decoded_len(bad[i], strlen(bad[i])), 0);
        }
        /* A NUL inside the given length is not base64 either. */
        assert_false(base64_is_valid("Zm\0v", 4));
}

/* Longer than the pieces libcrypto is given at once, every byte value,
 * lengths on each side of a piece's end. */
static void test_round_trip_across_pieces(void **state) {
        static const size_t lens[] = { 1, 2, 3, 196607, 196608, 196609, 196610, 600001 };
        (void)state;
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
                size_t n = lens[k], elen = 0, dlen = 0;
                uint8_t *in = malloc(n), *back = NULL;
                char *enc = NULL;
                assert_non_null(in);
                for (size_t i = 0; i < n; i++)
                        in[i] = (uint8_t)(i * 131 + i / 256);
                assert_int_equal(base64_encode(in, n, &enc, &elen), 0);
                assert_int_equal(elen, (n + 2) / 3 * 4);
                assert_int_equal(strlen(enc), elen);
                assert_true(base64_is_valid(enc, elen));
                assert_int_equal(base64_decode(enc, elen, &back, &dlen), 0);
                assert_int_equal(dlen, n);
                assert_memory_equal(back, in, n);
                free(in);
                free(enc);
                free(back);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc4648_vectors),
                cmocka_unit_test(test_decode_refuses_what_is_not_strict_base64),
                cmocka_unit_test(test_round_trip_across_pieces),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
