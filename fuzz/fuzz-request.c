/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for POST /api/execute bodies: api_parse_execute() with
 * fixed configurations, then the invariants of request-target.c. Built with
 * clang by `make fuzz`; the corpus (fuzz/corpus/request) is also replayed by
 * the unit suite (replay.c).
 */
#include "request-target.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_request_one(data, size);
        return 0;
}
