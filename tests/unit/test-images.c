/* SPDX-License-Identifier: MIT */
/*
 * images.c: the PNG check (what a PNG must be to be kept, its size from its
 * own IHDR) and the frame reader (frames split anywhere, the caps, a header
 * that is no frame's), from bytes made here.
 */
#include "test-helpers.h"

#include <stdlib.h>
#include <string.h>

#include "images.h"
#include "pyexec.h"

/* A 2 x 3 greyscale PNG (Pillow's output). */
static const unsigned char tiny_png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x81, 0x81, 0x5d, 0x00,
        0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x80, 0x02, 0x00, 0x00, 0x09, 0x00,
        0x01, 0xfb, 0x52, 0xb8, 0xa9, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

static void test_png_check(void **state) {
        unsigned char p[sizeof tiny_png + 1];
        uint32_t w = 0, h = 0;

        (void)state;
        assert_true(image_png_check(tiny_png, sizeof tiny_png, &w, &h));
        assert_int_equal(w, 2);
        assert_int_equal(h, 3);
        /* Cut anywhere, or with a byte more: refused. */
        for (size_t n = 0; n < sizeof tiny_png; n++)
                assert_false(image_png_check(tiny_png, n, &w, &h));
        memcpy(p, tiny_png, sizeof tiny_png);
        p[sizeof tiny_png] = 0;
        assert_false(image_png_check(p, sizeof tiny_png + 1, &w, &h));
        /* Any byte changed breaks the signature, a CRC, a length or a
         * type: refused. */
        for (size_t i = 0; i < sizeof tiny_png; i++) {
                memcpy(p, tiny_png, sizeof tiny_png);
                p[i] ^= 0x01;
                assert_false(image_png_check(p, sizeof tiny_png, &w, &h));
        }
}

static void feed_split(struct image_reader *r, const unsigned char *p, size_t n, size_t step,
                       struct pyexec_result *res) {
        for (size_t off = 0; off < n; off += step)
                image_reader_feed(r, (const char *)p + off, n - off < step ? n - off : step, res);
}

static size_t make_frame(unsigned char *out, const unsigned char *png, size_t n) {
        memcpy(out, IMAGE_FRAME_MAGIC, 4);
        for (int i = 0; i < 4; i++)
                out[4 + i] = (unsigned char)(n >> (8 * i));
        memcpy(out + 8, png, n);
        return 8 + n;
}

static void test_reader_frames_split_anywhere(void **state) {
        unsigned char buf[3 * (8 + sizeof tiny_png)];
        size_t n = 0;

        (void)state;
        for (int i = 0; i < 3; i++)
                n += make_frame(buf + n, tiny_png, sizeof tiny_png);
        for (size_t step = 1; step <= n; step++) {
                struct pyexec_result res = { 0 };
                struct image_reader r;
                image_reader_init(&r, 8, 1 << 20);
                feed_split(&r, buf, n, step, &res);
                assert_int_equal(res.n_images, 3);
                assert_false(res.images_truncated);
                for (size_t i = 0; i < 3; i++) {
                        assert_int_equal(res.images[i].width, 2);
                        assert_int_equal(res.images[i].height, 3);
                        assert_memory_equal(res.images[i].data, tiny_png, sizeof tiny_png);
                }
                image_reader_done(&r);
                pyexec_result_done(&res);
        }
}

static void test_reader_caps(void **state) {
        unsigned char buf[3 * (8 + sizeof tiny_png)];
        struct pyexec_result res = { 0 };
        struct image_reader r;
        size_t n = 0;

        (void)state;
        for (int i = 0; i < 3; i++)
                n += make_frame(buf + n, tiny_png, sizeof tiny_png);
        /* Two by count. */
        image_reader_init(&r, 2, 1 << 20);
        image_reader_feed(&r, (const char *)buf, n, &res);
        assert_int_equal(res.n_images, 2);
        assert_true(res.images_truncated);
        image_reader_done(&r);
        pyexec_result_done(&res);
        /* One by bytes. */
        image_reader_init(&r, 8, sizeof tiny_png * 2 - 1);
        image_reader_feed(&r, (const char *)buf, n, &res);
        assert_int_equal(res.n_images, 1);
        assert_true(res.images_truncated);
        image_reader_done(&r);
        pyexec_result_done(&res);
}

static void test_reader_huge_frame_is_skipped_unbuffered(void **state) {
        static const unsigned char hdr[8] = { 'P', 'X', 'I', '1', 0xff, 0xff, 0xff, 0xff };
        struct pyexec_result res = { 0 };
        struct image_reader r;
        char junk[65536];

        (void)state;
        memset(junk, 0x5a, sizeof junk);
        image_reader_init(&r, 8, 1 << 20);
        image_reader_feed(&r, (const char *)hdr, sizeof hdr, &res);
        for (int i = 0; i < 64; i++)
                image_reader_feed(&r, junk, sizeof junk, &res);
        assert_true(res.images_truncated);
        assert_int_equal(res.n_images, 0);
        assert_int_equal(r.frame.cap, 0); /* nothing held */
        image_reader_done(&r);
        pyexec_result_done(&res);
}

static void test_reader_garbage_ends_the_channel(void **state) {
        unsigned char buf[16 + 8 + sizeof tiny_png];
        struct pyexec_result res = { 0 };
        struct image_reader r;

        (void)state;
        memset(buf, 0xff, 16);
        make_frame(buf + 16, tiny_png, sizeof tiny_png);
        image_reader_init(&r, 8, 1 << 20);
        image_reader_feed(&r, (const char *)buf, sizeof buf, &res);
        assert_int_equal(res.n_images, 0);
        assert_true(r.broken);
        image_reader_done(&r);
        pyexec_result_done(&res);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_png_check),
                cmocka_unit_test(test_reader_frames_split_anywhere),
                cmocka_unit_test(test_reader_caps),
                cmocka_unit_test(test_reader_huge_frame_is_skipped_unbuffered),
                cmocka_unit_test(test_reader_garbage_ends_the_channel),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
