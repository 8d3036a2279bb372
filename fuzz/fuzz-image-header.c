/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the image and .blend header parsers of job inputs
 * (job_format_sniff()), with the invariants of image-header-target.c.
 * Built with clang by `make fuzz-images`; the corpus
 * (fuzz/corpus/image-header) is also replayed by the unit suite (replay.c).
 */
#include "image-header-target.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_image_header_one(data, size);
        return 0;
}
