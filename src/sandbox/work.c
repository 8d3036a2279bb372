/* SPDX-License-Identifier: MIT */
#include "work.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define WORK_MAGIC 0x31575850u /* "PXW1" */
#define WORK_MAX_ITEMS 100000

static int put(struct buf *b, const void *p, size_t n) {
        return buf_append(b, p, n);
}

static int put_u32(struct buf *b, uint32_t v) {
        return put(b, &v, sizeof v);
}

static int put_str(struct buf *b, const char *s, size_t n) {
        int r = put_u32(b, (uint32_t)n);
        return r < 0 ? r : put(b, s, n);
}

int work_encode(const struct work *w, int *ret_fd) {
        struct buf b;
        int r = 0, fd;

        buf_init(&b, SIZE_MAX / 2);
        r |= put_u32(&b, WORK_MAGIC);
        r |= put_str(&b, w->policy ? w->policy : "", w->policy ? strlen(w->policy) : 0);
        r |= put_u32(&b, (uint32_t)w->n_argv);
        for (size_t i = 0; i < w->n_argv; i++)
                r |= put_str(&b, w->argv[i], strlen(w->argv[i]));
        r |= put_u32(&b, (uint32_t)w->n_files);
        for (size_t i = 0; i < w->n_files; i++) {
                r |= put_str(&b, w->files[i].name, strlen(w->files[i].name));
                r |= put_str(&b, w->files[i].data, w->files[i].len);
        }
        r |= put_u32(&b, (uint32_t)w->n_rlimits);
        for (int i = 0; i < w->n_rlimits; i++) {
                uint64_t cur = w->rlimits[i].lim.rlim_cur, max = w->rlimits[i].lim.rlim_max;
                r |= put_u32(&b, (uint32_t)w->rlimits[i].resource);
                r |= put(&b, &cur, sizeof cur);
                r |= put(&b, &max, sizeof max);
        }
        if (r < 0) {
                buf_done(&b);
                return -ENOMEM;
        }
        fd = memfd_create("work", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                r = -errno;
                buf_done(&b);
                return r;
        }
        r = write_all(fd, b.data, b.len);
        buf_done(&b);
        if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                r = -errno;
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r < 0) {
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

struct reader {
        const unsigned char *p, *end;
};

static int get(struct reader *r, void *out, size_t n) {
        if ((size_t)(r->end - r->p) < n)
                return -EBADMSG;
        memcpy(out, r->p, n);
        r->p += n;
        return 0;
}

static int get_u32(struct reader *r, uint32_t *v) {
        return get(r, v, sizeof *v);
}

static int get_str(struct reader *r, char **ret, size_t *ret_len) {
        uint32_t n;
        char *s;
        if (get_u32(r, &n) < 0 || (size_t)(r->end - r->p) < n)
                return -EBADMSG;
        if (memchr(r->p, 0, n) && !ret_len)
                return -EBADMSG; /* a string (not file data) with a NUL in it */
        s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, r->p, n);
        s[n] = 0;
        r->p += n;
        *ret = s;
        if (ret_len)
                *ret_len = n;
        return 0;
}

void work_done(struct work *w) {
        free(w->policy);
        for (size_t i = 0; i < w->n_argv; i++)
                free(w->argv[i]);
        free(w->argv);
        for (size_t i = 0; i < w->n_files; i++) {
                free((char *)w->files[i].name);
                free((char *)w->files[i].data);
        }
        free(w->files);
        *w = (struct work){ 0 };
}

int work_decode(const void *p, size_t n, struct work *ret) {
        struct reader rd = { p, (const unsigned char *)p + n };
        struct work w = { 0 };
        uint32_t magic, count;
        int r;

        if ((r = get_u32(&rd, &magic)) < 0 || magic != WORK_MAGIC)
                return -EBADMSG;
        if ((r = get_str(&rd, &w.policy, NULL)) < 0)
                goto fail;
        if ((r = get_u32(&rd, &count)) < 0 || count == 0 || count > WORK_MAX_ITEMS) {
                r = -EBADMSG;
                goto fail;
        }
        w.argv = calloc(count + 1, sizeof *w.argv);
        if (!w.argv) {
                r = -ENOMEM;
                goto fail;
        }
        for (; w.n_argv < count; w.n_argv++)
                if ((r = get_str(&rd, &w.argv[w.n_argv], NULL)) < 0)
                        goto fail;
        if ((r = get_u32(&rd, &count)) < 0 || count > WORK_MAX_ITEMS) {
                r = -EBADMSG;
                goto fail;
        }
        w.files = calloc(count ? count : 1, sizeof *w.files);
        if (!w.files) {
                r = -ENOMEM;
                goto fail;
        }
        for (; w.n_files < count; w.n_files++) {
                char *name = NULL, *data = NULL;
                size_t len = 0;
                if ((r = get_str(&rd, &name, NULL)) < 0 || (r = get_str(&rd, &data, &len)) < 0) {
                        free(name);
                        goto fail;
                }
                w.files[w.n_files] = (struct pyexec_file){ name, data, len };
                if (!filename_is_plain(name, strlen(name))) {
                        w.n_files++;
                        r = -EBADMSG;
                        goto fail;
                }
        }
        if ((r = get_u32(&rd, &count)) < 0 || count > RLIMIT_PLAN_MAX) {
                r = -EBADMSG;
                goto fail;
        }
        for (; w.n_rlimits < (int)count; w.n_rlimits++) {
                uint32_t res;
                uint64_t cur, max;
                if ((r = get_u32(&rd, &res)) < 0 || (r = get(&rd, &cur, sizeof cur)) < 0 ||
                    (r = get(&rd, &max, sizeof max)) < 0)
                        goto fail;
                if (res >= RLIM_NLIMITS) {
                        r = -EBADMSG;
                        goto fail;
                }
                w.rlimits[w.n_rlimits] = (struct rlimit_value){ (int)res, { cur, max } };
        }
        if (rd.p != rd.end) {
                r = -EBADMSG;
                goto fail;
        }
        *ret = w;
        return 0;
fail:
        work_done(&w);
        return r;
}

int work_decode_fd(int fd, size_t max, struct work *ret) {
        struct stat st;
        void *p;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || (uint64_t)st.st_size > max)
                return -EMSGSIZE;
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        r = work_decode(p, (size_t)st.st_size, ret);
        munmap(p, (size_t)st.st_size);
        return r;
}
