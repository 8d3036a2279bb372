/* SPDX-License-Identifier: MIT */
/*
 * `pyexec serve`: the HTTP service (http.c) on the configuration config.c
 * loads from the file, the environment and the options; `pyexec worker`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "http.h"

/* `pyexec serve` and `pyexec worker` (argv[0]): the same keys, the same
 * process; config.c and http.c tell them apart. */
static int serve_or_work(int argc, char **argv) {
        struct config cfg;
        char err[1024];
        int r = config_load(&cfg, argc, argv, stdout, err, sizeof err);

        if (r < 0) {
                fprintf(stderr, "pyexec %s: %s\n", argv[0], r == -EINVAL ? err : strerror(-r));
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

int cmd_serve(int argc, char **argv) {
        return serve_or_work(argc, argv);
}

/* `pyexec worker`: runs the asynchronous submissions of a shared queue
 * (QUEUE_URL, Redis) on this machine, through the same sandbox, zygote and
 * execution slots as `pyexec serve`; its HTTP port answers the health
 * probes, /api/metrics and /api/stats. */
int cmd_worker(int argc, char **argv) {
        return serve_or_work(argc, argv);
}
