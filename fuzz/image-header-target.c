/* SPDX-License-Identifier: MIT */
/*
 * The body of the image header fuzz target, shared by the libFuzzer entry
 * point (fuzz-image-header.c, built with clang by `make fuzz-images`) and
 * the corpus replay (replay.c built with FUZZ_TARGET naming this file, a
 * unit test). An input is the first bytes of a job's input file, as
 * job_format_sniff() sees them (src/jobs/jobs-format.h), parsed both as the
 * whole file and as a prefix of a longer one.
 *
 * What must hold for any input:
 * - the answer is 0, -EAGAIN (only for a prefix) or -EBADMSG;
 * - -EAGAIN and -EBADMSG only for a recognised format; the format is -1 or
 *   one of enum job_format;
 * - a size only for an image format, both sides at least 1;
 * - the description is a NUL-terminated string.
 * Reads stay within the input: the replay and libFuzzer give it a buffer
 * of exactly its size, so ASAN sees a read past the end.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-check.h"
#include "jobs-format.h"

static void fuzz_image_header_check(const uint8_t *data, size_t size, bool complete) {
        struct job_sniff s;
        int r = job_format_sniff(data, size, complete, &s);

        FUZZ_CHECK(r == 0 || r == -EBADMSG || (r == -EAGAIN && !complete));
        FUZZ_CHECK(s.format >= -1 && s.format < _JOB_FORMAT_MAX);
        FUZZ_CHECK(r == 0 || s.format >= 0);
        FUZZ_CHECK(memchr(s.what, 0, sizeof s.what) != NULL);
        if (s.has_size) {
                FUZZ_CHECK(r == 0);
                FUZZ_CHECK(s.format >= 0 && (JOB_FORMAT_BIT(s.format) & JOB_FORMAT_IMAGES));
                FUZZ_CHECK(s.width >= 1 && s.height >= 1);
        }
}

static void fuzz_image_header_one(const uint8_t *data, size_t size) {
        fuzz_image_header_check(data, size, true);
        fuzz_image_header_check(data, size, false);
}
