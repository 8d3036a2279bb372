/* SPDX-License-Identifier: MIT */
/*
 * `pyexec serve`: the HTTP service (http.c) on the configuration config.c
 * loads from the file, the environment and the options.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "http.h"

int cmd_serve(int argc, char **argv) {
        struct config cfg;
        char err[1024];
        int r = config_load(&cfg, argc, argv, stdout, err, sizeof err);

        if (r < 0) {
                fprintf(stderr, "pyexec serve: %s\n", r == -EINVAL ? err : strerror(-r));
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
