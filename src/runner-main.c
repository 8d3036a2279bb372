/* SPDX-License-Identifier: MIT */
/* pyexec-runner: see runner.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "util.h"

int main(int argc, char **argv) {
        uint64_t fd;

        if (argc == 2 && strcmp(argv[1], "--cold") == 0)
                return runner_cold_main();
        if ((argc == 3 || (argc == 4 && strcmp(argv[3], "--no-prefault") == 0)) && strcmp(argv[1], "--zygote") == 0 &&
            parse_u64(argv[2], 3, 1 << 20, &fd) == 0) {
                runner_zygote_prefault = argc == 3;
                return runner_zygote_main((int)fd);
        }
        fprintf(stderr,
                "usage: pyexec-runner --cold | --zygote FD [--no-prefault]\n"
                "pyexec-runner is started by pyexec inside its sandbox; it is not meant to be run by hand.\n");
        return 2;
}
