/* SPDX-License-Identifier: MIT */
/* pyexec-runner: see runner.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpython-record.h"
#include "runner.h"
#include "util.h"

int main(int argc, char **argv) {
        uint64_t fd, sets;

        if (argc == 2 && strcmp(argv[1], "--cold") == 0)
                return runner_cold_main();
        /* The libpython this binary embeds, as the build recorded it
         * (tools/libpython-record.sh); pyexec check compares it with the
         * standard library installed under /usr. */
        if (argc == 2 && strcmp(argv[1], "--libpython") == 0) {
                printf("libpython3.11 %s sha256:%s\n", PYEXEC_LIBPYTHON_VERSION, PYEXEC_LIBPYTHON_SHA256);
                return fflush(stdout) == 0 ? 0 : 1;
        }
        if (argc >= 3 && strcmp(argv[1], "--zygote") == 0 && parse_u64(argv[2], 3, 1 << 20, &fd) == 0) {
                int i = 3;
                if (i < argc && strcmp(argv[i], "--no-prefault") == 0) {
                        runner_zygote_prefault = false;
                        i++;
                }
                if (i + 1 < argc && strcmp(argv[i], "--huge-pages") == 0 &&
                    parse_u64(argv[i + 1], 0, 1 << 16, &sets) == 0) {
                        runner_zygote_huge_sets = (unsigned)sets;
                        i += 2;
                }
                if (i == argc)
                        return runner_zygote_main((int)fd);
        }
        fprintf(stderr, "usage: pyexec-runner --cold | --zygote FD [--no-prefault] [--huge-pages SETS] | --libpython\n"
                        "pyexec-runner is started by pyexec inside its sandbox; it is not meant to be run by hand.\n");
        return 2;
}
