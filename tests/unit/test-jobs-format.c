/* SPDX-License-Identifier: MIT */
/*
 * jobs-format: the signatures and image headers of job inputs. The bytes
 * are a user's file parsed in the service's process, so besides the
 * well-formed headers every test feeds the hostile ones: cut at every
 * length, lengths that lie, chunk sizes past the end, JPEG marker runs
 * that never reach a frame header. Each input is copied into a heap
 * buffer of exactly its size, so that a read past the end is caught by
 * the ASAN build.
 */
#include "test-helpers.h"

#include <stdlib.h>
#include <string.h>

#include "jobs-def.h"
#include "jobs-format.h"

/* Sniff data[0..n) from a buffer of exactly n bytes. */
static int sniff(const void *data, size_t n, bool complete, struct job_sniff *ret) {
        uint8_t *copy = malloc(n ? n : 1);
        int r;

        assert_non_null(copy);
        if (n)
                memcpy(copy, data, n);
        r = job_format_sniff(copy, n, complete, ret);
        free(copy);
        assert_true(r == 0 || r == -EAGAIN || r == -EBADMSG);
        assert_non_null(memchr(ret->what, 0, sizeof ret->what));
        return r;
}

static size_t png(uint8_t *b, uint32_t len, uint32_t w, uint32_t h) {
        static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
        memcpy(b, sig, 8);
        b[8] = (uint8_t)(len >> 24), b[9] = (uint8_t)(len >> 16), b[10] = (uint8_t)(len >> 8), b[11] = (uint8_t)len;
        memcpy(b + 12, "IHDR", 4);
        for (int i = 0; i < 4; i++) {
                b[16 + i] = (uint8_t)(w >> (24 - 8 * i));
                b[20 + i] = (uint8_t)(h >> (24 - 8 * i));
        }
        memcpy(b + 24,
               "\x08\x06\x00\x00\x00"
               "CRC!",
               9);
        return 33;
}

static void test_png(void **state) {
        uint8_t b[64];
        struct job_sniff s;
        size_t n = png(b, 13, 30000, 20000);

        (void)state;
        assert_int_equal(sniff(b, n, true, &s), 0);
        assert_int_equal(s.format, JOB_FORMAT_PNG);
        assert_true(s.has_size);
        assert_int_equal(s.width, 30000);
        assert_int_equal(s.height, 20000);
        /* cut at every length: not a PNG yet, more to read, or cut short */
        for (size_t k = 0; k < 24; k++) {
                int r = sniff(b, k, false, &s);
                assert_int_equal(r, k < 8 ? 0 : -EAGAIN);
                if (k < 8)
                        assert_int_equal(s.format, -1);
                r = sniff(b, k, true, &s);
                assert_int_equal(r, k < 8 ? 0 : -EBADMSG);
        }
        /* IHDR's length lies, the first chunk is another, sides out of range */
        n = png(b, 0xffffffffu, 10, 10);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        assert_string_equal(s.what, "its first chunk is not a valid IHDR");
        n = png(b, 13, 10, 10);
        memcpy(b + 12, "IDAT", 4);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        n = png(b, 13, 0, 10);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        assert_string_equal(s.what, "its header declares 0x10 pixels");
        n = png(b, 13, 0x80000000u, 10);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        n = png(b, 13, 0xffffffffu, 0xffffffffu);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
}

static void test_jpeg(void **state) {
        /* SOI, APP0 (16 bytes), DQT-ish filler, fill bytes, SOF2 (progressive) 4500 wide, 5400 high */
        static const uint8_t good[] = {
                0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',  'F',  'I',  'F',  0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
                0x01, 0x00, 0x00, 0xff, 0xd0, 0xff, 0xff, 0xff, 0xdb, 0x00, 0x04, 0x00, 0x00, 0xff, 0xc2, 0x00, 0x11,
                0x08, 0x15, 0x18, 0x11, 0x94, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
        };
        struct job_sniff s;
        uint8_t *b;

        (void)state;
        assert_int_equal(sniff(good, sizeof good, true, &s), 0);
        assert_int_equal(s.format, JOB_FORMAT_JPEG);
        assert_int_equal(s.width, 4500);
        assert_int_equal(s.height, 5400);
        /* cut at every length past the signature: more to read, or damaged */
        for (size_t k = 3; k < 37; k++) {
                assert_int_equal(sniff(good, k, false, &s), -EAGAIN);
                assert_int_equal(sniff(good, k, true, &s), -EBADMSG);
        }
        b = malloc(sizeof good);
        assert_non_null(b);
        /* a segment's length lies: past the end, 0, 1 */
        memcpy(b, good, sizeof good);
        b[4] = 0xff, b[5] = 0xff;
        assert_int_equal(sniff(b, sizeof good, false, &s), -EAGAIN);
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        for (uint8_t l = 0; l < 2; l++) {
                b[4] = 0, b[5] = l;
                assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
                assert_int_equal(sniff(b, sizeof good, false, &s), -EBADMSG);
        }
        /* a frame header too short to hold the size, or declaring height 0 (DNL) */
        memcpy(b, good, sizeof good);
        b[33] = 0x05;
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        memcpy(b, good, sizeof good);
        b[35] = 0, b[36] = 0;
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        /* image data (SOS) or the end (EOI) before any frame header */
        memcpy(b, good, sizeof good);
        b[31] = 0xda;
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        b[31] = 0xd9;
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        /* no 0xFF where a marker must be */
        memcpy(b, good, sizeof good);
        b[20] = 0x12;
        assert_int_equal(sniff(b, sizeof good, true, &s), -EBADMSG);
        /* DHT (C4) is not a frame header: it is skipped, and the walk goes on */
        memcpy(b, good, sizeof good);
        b[25] = 0xc4;
        assert_int_equal(sniff(b, sizeof good, true, &s), 0);
        free(b);
}

static void test_jpeg_marker_loops(void **state) {
        size_t n = 1 << 16;
        uint8_t *b = malloc(n);
        struct job_sniff s;

        (void)state;
        assert_non_null(b);
        /* SOI then fill bytes to the end */
        memset(b, 0xff, n);
        b[1] = 0xd8;
        assert_int_equal(sniff(b, n, false, &s), -EAGAIN);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        /* SOI then standalone markers (RSTn) to the end */
        for (size_t i = 2; i + 1 < n; i += 2)
                b[i] = 0xff, b[i + 1] = (uint8_t)(0xd0 + (i / 2) % 8);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        /* SOI then minimal segments (length 2) to the end */
        for (size_t i = 2; i + 3 < n; i += 4)
                b[i] = 0xff, b[i + 1] = 0xe1, b[i + 2] = 0, b[i + 3] = 2;
        assert_int_equal(sniff(b, n, false, &s), -EAGAIN);
        free(b);
}

static size_t webp(uint8_t *b, const char *chunk, uint32_t csize, const uint8_t *payload, size_t plen) {
        memcpy(b, "RIFF\xff\xff\xff\xffWEBP", 12);
        memcpy(b + 12, chunk, 4);
        b[16] = (uint8_t)csize, b[17] = (uint8_t)(csize >> 8), b[18] = (uint8_t)(csize >> 16),
        b[19] = (uint8_t)(csize >> 24);
        memcpy(b + 20, payload, plen);
        return 20 + plen;
}

static void test_webp(void **state) {
        /* frame tag, start code, 14-bit sides (scale bits set: ignored) */
        static const uint8_t vp8[] = { 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x94, 0xd1, 0x18, 0x55 };
        /* 0x2f, then width-1 and height-1 in 14 bits each */
        static const uint8_t vp8l[] = { 0x2f, 0x17, 0xc0, 0x02, 0x00, 0x00 };
        /* flags, reserved, canvas width-1 and height-1 in 24 bits */
        static const uint8_t vp8x[] = { 0x10, 0, 0, 0, 0x1f, 0x4e, 0x00, 0x1f, 0x4e, 0x00 };
        uint8_t b[64];
        struct job_sniff s;
        size_t n;

        (void)state;
        n = webp(b, "VP8 ", 10, vp8, sizeof vp8);
        assert_int_equal(sniff(b, n, true, &s), 0);
        assert_int_equal(s.format, JOB_FORMAT_WEBP);
        assert_int_equal(s.width, 0x1194);
        assert_int_equal(s.height, 0x1518);
        for (size_t k = 12; k < n; k++) {
                assert_int_equal(sniff(b, k, false, &s), -EAGAIN);
                assert_int_equal(sniff(b, k, true, &s), -EBADMSG);
        }
        b[23] = 0;
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG); /* bad start code */
        n = webp(b, "VP8 ", 3, vp8, sizeof vp8);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG); /* chunk too small for its header */

        n = webp(b, "VP8L", 5, vp8l, sizeof vp8l);
        assert_int_equal(sniff(b, n, true, &s), 0);
        assert_int_equal(s.width, 24);
        assert_int_equal(s.height, 12);
        b[20] = 0x2e;
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);

        n = webp(b, "VP8X", 10, vp8x, sizeof vp8x);
        assert_int_equal(sniff(b, n, true, &s), 0);
        assert_int_equal(s.width, 20000);
        assert_int_equal(s.height, 20000);
        /* the largest canvas: 2^24 x 2^24, which the pixel count must not overflow */
        memset(b + 24, 0xff, 6);
        assert_int_equal(sniff(b, n, true, &s), 0);
        assert_int_equal(s.width, 1u << 24);
        assert_true((uint64_t)s.width * s.height == 1ull << 48);
        /* a chunk size past the end of the file changes nothing: it is not followed */
        n = webp(b, "VP8X", 0xffffffffu, vp8x, sizeof vp8x);
        assert_int_equal(sniff(b, n, true, &s), 0);

        n = webp(b, "ALPH", 10, vp8x, sizeof vp8x);
        assert_int_equal(sniff(b, n, true, &s), -EBADMSG);
        assert_string_equal(s.what, "its first chunk is not VP8, VP8L or VP8X");
}

static void test_blend_and_others(void **state) {
        struct job_sniff s;

        (void)state;
        assert_int_equal(sniff("BLENDER-v304REND", 16, true, &s), 0);
        assert_int_equal(s.format, JOB_FORMAT_BLEND);
        assert_false(s.has_size);
        assert_int_equal(sniff("\x28\xb5\x2f\xfd\xa0\xf4", 6, true, &s), 0); /* zstd (Blender 3.x "Compress") */
        assert_int_equal(s.format, JOB_FORMAT_BLEND);
        assert_int_equal(sniff("\x1f\x8b\x08\x00", 4, true, &s), 0); /* gzip (earlier Blenders) */
        assert_int_equal(s.format, JOB_FORMAT_BLEND);
        assert_int_equal(sniff("BLENDE", 6, true, &s), 0);
        assert_int_equal(s.format, -1);
        assert_string_equal(s.what, "it starts like text");

        assert_int_equal(sniff("", 0, true, &s), 0);
        assert_int_equal(s.format, -1);
        assert_string_equal(s.what, "it is empty");
        assert_int_equal(sniff("GIF89a\x01\x00", 8, true, &s), 0);
        assert_string_equal(s.what, "it is a GIF image");
        assert_int_equal(sniff("\x00\x01\x02\xff", 4, true, &s), 0);
        assert_string_equal(s.what, "it starts with the bytes 00 01 02 ff");
        assert_int_equal(sniff("RIFF\x10\x00\x00\x00WAVE", 12, true, &s), 0);
        assert_int_equal(s.format, -1);
}

/* Random bytes behind each signature, of every small length: whatever
 * they say, the parse ends with one of its three answers, within bounds. */
static void test_random_headers(void **state) {
        static const struct {
                const char *sig;
                size_t len;
        } sigs[] = {
                { "\x89PNG\r\n\x1a\n", 8 },     { "\xff\xd8\xff", 3 },          { "RIFF\0\0\0\0WEBPVP8 ", 16 },
                { "RIFF\0\0\0\0WEBPVP8L", 16 }, { "RIFF\0\0\0\0WEBPVP8X", 16 },
        };
        uint8_t b[96];
        struct job_sniff s;
        unsigned seed = 12345;

        (void)state;
        for (int round = 0; round < 20000; round++) {
                size_t k = (size_t)round % ELEMENTSOF(sigs), n;
                for (size_t i = 0; i < sizeof b; i++) {
                        seed = seed * 1103515245u + 12345u;
                        /* JPEG: many 0xFF and small lengths, to walk far */
                        b[i] = k == 1 && (seed >> 16) % 3 == 0 ? 0xff : (uint8_t)(seed >> 16);
                }
                memcpy(b, sigs[k].sig, sigs[k].len);
                n = sigs[k].len + (size_t)round % (sizeof b - sigs[k].len);
                sniff(b, n, round & 1, &s);
                if (s.has_size)
                        assert_true(s.width > 0 && s.height > 0);
        }
}

static void test_format_names(void **state) {
        (void)state;
        assert_int_equal(job_format_from_string("png"), JOB_FORMAT_PNG);
        assert_int_equal(job_format_from_string("jpg"), JOB_FORMAT_JPEG);
        assert_int_equal(job_format_from_string("jpeg"), JOB_FORMAT_JPEG);
        assert_int_equal(job_format_from_string("webp"), JOB_FORMAT_WEBP);
        assert_int_equal(job_format_from_string("blend"), JOB_FORMAT_BLEND);
        assert_int_equal(job_format_from_string("PNG"), -EINVAL);
        assert_int_equal(job_format_from_string("gif"), -EINVAL);
        assert_null(job_format_to_string(_JOB_FORMAT_MAX));
}

/* The jobs file's format and max_pixels keys. */
static int load(const char *params, char *err, size_t errlen) {
        char path[] = "/tmp/test-jobs-format-XXXXXX";
        struct job_set set;
        int fd = mkstemp(path), r;
        _cleanup_free_ char *yaml = strdup_printf("jobs:\n  t:\n    interpreter: /usr/bin/python3\n"
                                                  "    script: /x.py\n    args: [\"{f}\"]\n    params:\n"
                                                  "      f: {type: input_file, roots: [/srv], extensions: [png], %s}\n",
                                                  params);
        assert_true(fd >= 0 && yaml);
        assert_int_equal(write_all(fd, yaml, strlen(yaml)), 0);
        close(fd);
        r = jobs_load(path, &set, err, errlen);
        unlink(path);
        if (r == 0) {
                const struct job_param *p = &set.jobs[0].params[0];
                snprintf(err, errlen, "formats=%u max_pixels=%llu", p->formats, (unsigned long long)p->max_pixels);
                jobs_done(&set);
        }
        return r;
}

static void test_jobs_file_keys(void **state) {
        char err[1024];

        (void)state;
        assert_int_equal(load("format: png", err, sizeof err), 0);
        assert_string_equal(err, "formats=1 max_pixels=50000000");
        assert_int_equal(load("format: [png, jpg, webp], max_pixels: 24300000", err, sizeof err), 0);
        assert_string_equal(err, "formats=7 max_pixels=24300000");
        assert_int_equal(load("format: gif", err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "params.f.format must be png, jpeg, webp or blend (or a list of them), got 'gif'"));
        assert_int_equal(load("format: [png, 3, {}]", err, sizeof err), -EINVAL);
        assert_int_equal(load("format: []", err, sizeof err), -EINVAL);
        assert_int_equal(load("format: blend, max_pixels: 100", err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "max_pixels needs an image format"));
        assert_int_equal(load("max_pixels: 100", err, sizeof err), -EINVAL);
        assert_int_equal(load("format: png, max_pixels: 0", err, sizeof err), -EINVAL);
        assert_int_equal(load("format: png, max_pixels: 281474976710657", err, sizeof err), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_png),
                cmocka_unit_test(test_jpeg),
                cmocka_unit_test(test_jpeg_marker_loops),
                cmocka_unit_test(test_webp),
                cmocka_unit_test(test_blend_and_others),
                cmocka_unit_test(test_random_headers),
                cmocka_unit_test(test_format_names),
                cmocka_unit_test(test_jobs_file_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
