/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

void buf_init(struct buf *b, size_t max) {
        *b = (struct buf){ .max = max };
}

static int buf_reserve(struct buf *b, size_t extra) {
        size_t want, ncap;
        char *p;

        if (extra > b->max || b->len > b->max - extra)
                return -ENOBUFS;
        want = b->len + extra;
        if (b->data && want <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 256;
        while (ncap < want)
                ncap = ncap > SIZE_MAX / 2 ? want : ncap * 2;
        p = realloc(b->data, ncap + 1);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = ncap;
        return 0;
}

int buf_append(struct buf *b, const void *p, size_t n) {
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

int buf_append_str(struct buf *b, const char *s) {
        return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = buf_reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void buf_done(struct buf *b) {
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

char *buf_steal(struct buf *b) {
        char *p = b->data;
        if (!p)
                p = strdup("");
        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        /* Not a number at all is -EINVAL even when the digits before the
         * junk would overflow. */
        for (const char *p = s; *p; p++)
                if (*p < '0' || *p > '9')
                        return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t n) {
        unsigned char c = p[0];
        size_t len;
        uint32_t cp, min;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
                min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
                min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
                min = 0x10000;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/*
 * Bytes of the longest prefix of a valid sequence at p that is cut short or
 * broken (a "maximal subpart", which Unicode recommends and Python uses to
 * place one U+FFFD each); at least 1.
 */
static size_t utf8_maximal_subpart(const unsigned char *p, size_t n) {
        unsigned char c = p[0], lo = 0x80, hi = 0xbf;
        size_t need, i;

        if (c >= 0xc2 && c <= 0xdf)
                need = 2;
        else if (c >= 0xe0 && c <= 0xef)
                need = 3;
        else if (c >= 0xf0 && c <= 0xf4)
                need = 4;
        else
                return 1;
        /* The second byte's range excludes overlongs and surrogates. */
        if (c == 0xe0)
                lo = 0xa0;
        else if (c == 0xed)
                hi = 0x9f;
        else if (c == 0xf0)
                lo = 0x90;
        else if (c == 0xf4)
                hi = 0x8f;
        for (i = 1; i < need && i < n; i++) {
                if (p[i] < lo || p[i] > hi)
                        break;
                lo = 0x80;
                hi = 0xbf;
        }
        return i;
}

int utf8_repair(const char *in, size_t n, struct buf *out) {
        static const char replacement[] = "\xef\xbf\xbd";
        const unsigned char *p = (const unsigned char *)in;
        size_t i = 0, run = 0;
        int r;

        while (i < n) {
                size_t l = utf8_seq_len(p + i, n - i);
                if (l) {
                        i += l;
                        continue;
                }
                r = buf_append(out, in + run, i - run);
                if (r < 0)
                        return r;
                r = buf_append(out, replacement, 3);
                if (r < 0)
                        return r;
                i += utf8_maximal_subpart(p + i, n - i);
                run = i;
        }
        return buf_append(out, in + run, n - run);
}

bool utf8_is_valid(const char *in, size_t n) {
        const unsigned char *p = (const unsigned char *)in;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_seq_len(p + i, n - i);
                if (!l)
                        return false;
                i += l;
        }
        return true;
}

size_t utf8_length(const char *s, size_t n) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char)s[i] & 0xc0) != 0x80)
                        c++;
        return c;
}

void utf8_make_valid(char *s, size_t size) {
        size_t n = strlen(s);
        struct buf b;

        if (utf8_is_valid(s, n))
                return;
        buf_init(&b, n * 3 + 3);
        if (utf8_repair(s, n, &b) < 0) {
                buf_done(&b);
                snprintf(s, size, "(unprintable)");
                return;
        }
        n = b.len < size - 1 ? b.len : size - 1;
        while (n > 0 && !utf8_is_valid(b.data, n))
                n--; /* never split the replacement characters */
        memcpy(s, b.data, n);
        s[n] = 0;
        buf_done(&b);
}

int read_file(const char *path, size_t max, struct buf *ret) {
        _cleanup_close_ int fd = -1;
        struct buf b;
        char chunk[16384];
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        buf_init(&b, max);
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        buf_done(&b);
                        return r;
                }
                if (n == 0)
                        break;
                r = buf_append(&b, chunk, (size_t)n);
                if (r < 0) {
                        buf_done(&b);
                        return r == -ENOBUFS ? -EFBIG : r;
                }
        }
        if (!b.data && buf_append(&b, "", 0) < 0)
                return -ENOMEM;
        *ret = b;
        return 0;
}

int read_small_file(const char *path, char **ret) {
        struct buf b;
        int r = read_file(path, 4096, &b);
        if (r < 0)
                return r;
        while (b.len > 0 && b.data[b.len - 1] == '\n')
                b.data[--b.len] = 0;
        *ret = buf_steal(&b);
        return 0;
}

int write_control_file(const char *path, const char *s) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        size_t n = strlen(s);
        ssize_t w;

        if (fd < 0)
                return -errno;
        w = write(fd, s, n);
        if (w < 0)
                return -errno;
        return (size_t)w == n ? 0 : -EIO;
}

int write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t w = write(fd, c, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c += w;
                n -= (size_t)w;
        }
        return 0;
}

char *strdup_printf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

bool filename_is_plain(const char *name, size_t len) {
        if (len == 0 || len > 255)
                return false;
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)name[i];
                if (c == '/' || c < 0x20 || c == 0x7f)
                        return false;
        }
        return utf8_is_valid(name, len);
}

bool module_name_is_valid(const char *s) {
        if (!s[0] || strlen(s) > 64 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

int send_fds(int sock, const void *data, size_t len, const int *fds, size_t n_fds) {
        struct iovec iov = { (void *)data, len };
        union {
                char buf[CMSG_SPACE(8 * sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (n_fds > 8)
                return -EINVAL;
        if (n_fds > 0) {
                struct cmsghdr *cm;
                memset(u.buf, 0, sizeof u.buf);
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
        }
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

int unix_gc_schedule(void) {
        int sv[2];

        /* The release of any AF_UNIX socket schedules the kernel's
         * collector while descriptors are in flight
         * (net/unix/af_unix.c, unix_release_sock()); a pair of our own is
         * the cheapest such socket. */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        close(sv[0]);
        close(sv[1]);
        return 0;
}

void proc_each_child(pid_t pid, bool (*fn)(pid_t child, void *userdata), void *userdata) {
        char path[64];
        struct dirent *de;
        bool more = true;
        DIR *tasks;

        snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
        tasks = opendir(path);
        if (!tasks)
                return;
        while (more && (de = readdir(tasks))) {
                char cpath[96];
                struct buf b;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(cpath, sizeof cpath, "/proc/%d/task/%.16s/children", (int)pid, de->d_name);
                if (read_file(cpath, 1 << 16, &b) < 0)
                        continue;
                for (char *q = b.data; more && q && *q;) {
                        char *end;
                        long child = strtol(q, &end, 10);
                        if (end == q)
                                break;
                        if (child > 0)
                                more = fn((pid_t)child, userdata);
                        q = end;
                }
                buf_done(&b);
        }
        closedir(tasks);
}

int dl_load(const char *soname, const char *package, const struct dl_sym *syms, size_t n, void *table,
            void **ret_handle, char *err, size_t errlen) {
        void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

        if (!h) {
                snprintf(err, errlen, "cannot load %s (install Debian's %s): %s", soname, package, dlerror());
                return -ENOENT;
        }
        for (size_t i = 0; i < n; i++) {
                void *f = dlsym(h, syms[i].name);
                if (!f) {
                        snprintf(err, errlen, "%s lacks %s (install Debian's %s)", soname, syms[i].name, package);
                        dlclose(h);
                        return -ENOENT;
                }
                memcpy((char *)table + syms[i].offset, &f, sizeof f);
        }
        *ret_handle = h;
        return 0;
}
