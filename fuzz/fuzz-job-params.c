/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the parameters of a job request: job_params_validate()
 * against every job of fuzz/job-params.yaml, then the invariants of
 * job-params-target.c. Built with clang by `make fuzz-jobs`; the corpus
 * (fuzz/corpus/job-params) is also replayed by the unit suite (replay.c).
 */
#include "job-params-target.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_job_params_one(data, size);
        return 0;
}
