/* SPDX-License-Identifier: MIT */
/*
 * `pyexec worker`: runs the asynchronous submissions of a shared queue
 * (QUEUE_URL, Redis) on this machine, through the same sandbox, zygote and
 * execution slots as `pyexec serve`, with the same configuration keys.
 * Its HTTP port answers the health probes, /api/metrics and /api/stats.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "http.h"

int cmd_worker(int argc, char **argv) {
        struct config cfg;
        char err[1024];
        int r = config_load(&cfg, argc, argv, stdout, err, sizeof err);

        if (r < 0) {
                fprintf(stderr, "pyexec worker: %s\n", r == -EINVAL ? err : strerror(-r));
                config_done(&cfg);
                return EXIT_USAGE;
        }
        if (r > 0) { /* --print-config, --help or --print-default-config */
                config_done(&cfg);
                return 0;
        }
        r = http_serve(&cfg);
        config_done(&cfg);
        return r;
}
