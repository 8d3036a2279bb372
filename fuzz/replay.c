/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz corpus through the fuzz target's own body
 * (request-target.c, or job-params-target.c) without libFuzzer, so the
 * corpus is a regression test of the gcc build and, in `make test-asan`,
 * of the ASAN+UBSAN build.
 *
 *     fuzz-replay DIR|FILE...
 *
 * Every regular file of each DIR (in name order) and every FILE is one
 * input. Each is copied into a buffer of exactly its size, so a read past
 * the end is caught by ASAN. Exits 0 when every invariant held; a broken
 * one abort()s naming the input (printed before it runs).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The target whose body is replayed: the request parser's unless the
 * build names another (FUZZ_TARGET, with FUZZ_ONE its per-input function). */
#ifndef FUZZ_TARGET
#define FUZZ_TARGET "request-target.c"
#define FUZZ_ONE fuzz_request_one
#endif
#include FUZZ_TARGET

/* Larger than any useful corpus entry (libFuzzer's -max_len is 4096 here);
 * the default MAX_REQUEST_SIZE is 2 MiB. */
#define REPLAY_MAX_INPUT (4u << 20)

static int replay_file(const char *path) {
        struct buf b;
        uint8_t *exact;
        int r = read_file(path, REPLAY_MAX_INPUT, &b);

        if (r < 0) {
                fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        /* malloc(0) may return NULL; a 1-byte buffer with size 0 is fine. */
        exact = malloc(b.len ? b.len : 1);
        if (!exact) {
                buf_done(&b);
                return -ENOMEM;
        }
        if (b.len)
                memcpy(exact, b.data, b.len);
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, b.len);
        FUZZ_ONE(exact, b.len);
        free(exact);
        buf_done(&b);
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every regular file in dir; returns how many, or -errno. */
static long replay_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;
        long done = 0;

        if (!d) {
                fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
                return -errno;
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        char **nn = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
                        if (!nn) {
                                done = -ENOMEM;
                                goto out;
                        }
                        names = nn;
                }
                if (!(names[n] = strdup_printf("%s/%s", dir, de->d_name))) {
                        done = -ENOMEM;
                        goto out;
                }
                n++;
        }
        qsort(names, n, sizeof *names, name_cmp);
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (replay_file(names[i]) < 0) {
                        done = -EIO;
                        goto out;
                }
                done++;
        }
out:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        closedir(d);
        return done;
}

int main(int argc, char **argv) {
        long total = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                long n;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]) < 0 ? -EIO : 1;
                if (n < 0)
                        return 1;
                total += n;
        }
        /* An empty corpus is a wrong path, not a pass. */
        if (total == 0) {
                fprintf(stderr, "replay: no inputs found\n");
                return 1;
        }
        printf("replay: %ld inputs, every invariant held\n", total);
        return 0;
}
