/* SPDX-License-Identifier: MIT */
#include "playground.h"

#include <string.h>

const struct playground_asset *playground_find(const char *path) {
        if (strcmp(path, "/playground/") == 0)
                path = "/playground";
        for (size_t i = 0; i < playground_n_assets; i++)
                if (strcmp(playground_assets[i].path, path) == 0)
                        return &playground_assets[i];
        return NULL;
}

bool playground_built(void) {
        return playground_n_assets > 0;
}
