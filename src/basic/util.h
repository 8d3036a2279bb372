/* SPDX-License-Identifier: MIT */
/*
 * util: the small dependency-free layer every module stands on: cleanup
 * helpers, a growable buffer with a hard cap, strict number parsing, UTF-8
 * repair, monotonic time and whole-file helpers.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **)p);
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _taken = (p); \
                (p) = NULL;                 \
                _taken;                     \
        })
#define TAKE_FD(fd)                 \
        ({                          \
                int _taken = (fd);  \
                (fd) = -1;          \
                _taken;             \
        })

/*
 * struct buf: one growable byte buffer with a hard cap (git's strbuf, curl's
 * dynbuf). The data is always NUL-terminated so it can be printed, but may
 * contain NUL bytes; len is authoritative.
 */
struct buf {
        char *data;
        size_t len;
        size_t cap; /* allocated bytes, excluding the terminating NUL */
        size_t max; /* hard cap on len */
};

/* Initialise an empty buffer that may hold at most max bytes. No allocation. */
void buf_init(struct buf *b, size_t max);
/* Append n bytes. Returns -ENOBUFS (appending nothing) when len + n > max,
 * -ENOMEM when allocation fails. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
/* Free the contents; the buffer is empty (and reusable) afterwards. */
void buf_done(struct buf *b);
/* Hand the data out (never NULL: an empty string when nothing was appended). */
char *buf_steal(struct buf *b);

/*
 * Strict whole-string unsigned parsing: decimal digits only, no sign, no
 * whitespace, no trailing garbage. -EINVAL when s is not a number, -ERANGE
 * when it is outside [min, max]. ret is written only on success.
 */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/*
 * Append in[0..n) to out with every invalid UTF-8 sequence (bad lead byte,
 * truncated sequence, overlong form, surrogate, > U+10FFFF) replaced by
 * U+FFFD, so JSON encoders accept it. NUL bytes are kept.
 */
int utf8_repair(const char *in, size_t n, struct buf *out);
/* Whether in[0..n) is valid UTF-8 by the same rules. */
bool utf8_is_valid(const char *in, size_t n);
/* Characters in s[0..n), valid UTF-8: the bytes that are not continuation
 * bytes (10xxxxxx). */
size_t utf8_length(const char *s, size_t n);
/* Make the NUL-terminated string in s (a buffer of size bytes, size > 0)
 * valid UTF-8 in place: invalid sequences repaired as utf8_repair() does,
 * the result cut to fit without splitting a character; "(unprintable)" if
 * the repair cannot allocate. For messages that quote what a client sent
 * and must still become JSON. */
void utf8_make_valid(char *s, size_t size);

/* A library loaded at run time, for the few entry points a table holds
 * (pointers with their real prototypes): each name in syms goes to the
 * table's field at offset. On failure, err names the library, the missing
 * symbol and the Debian package to install; nothing stays loaded. */
struct dl_sym {
        const char *name;
        size_t offset;
};
#define DL_SYM(table, f, field) { #f, offsetof(typeof(table), field) }
int dl_load(const char *soname, const char *package, const struct dl_sym *syms, size_t n, void *table,
            void **ret_handle, char *err, size_t errlen);

/* One message of len bytes on a socket, with n_fds descriptors attached
 * (SCM_RIGHTS; at most 8), retried on EINTR. Returns 0 when all of it went,
 * else -errno (-EIO for a short send). */
int send_fds(int sock, const void *data, size_t len, const int *fds, size_t n_fds);

/* Have the kernel's collector of AF_UNIX descriptors in flight run soon
 * (asynchronously). Descriptors sent over a Unix socket that is itself in
 * flight in a cycle (a socket sent into its own queue) have no owner once
 * their processes are gone: they stay open, with whatever they hold (a
 * pipe's write end, a memfd's pages), until that collector runs, which only
 * the release of some AF_UNIX socket triggers. */
int unix_gc_schedule(void);

/* CLOCK_MONOTONIC in nanoseconds. (Inline: pyexec-init has no libc but
 * the system call.) */
static inline uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Read a whole file of at most max bytes (-EFBIG beyond) into ret. */
int read_file(const char *path, size_t max, struct buf *ret);
/* Read a small file (at most 4 KiB) into a NUL-terminated string with the
 * trailing newline removed. */
int read_small_file(const char *path, char **ret);

/* fn(child, userdata) for each child of every thread of pid
 * (/proc/PID/task/TID/children), until fn returns false. Threads that end
 * meanwhile are skipped; a pid that cannot be read has no children. */
void proc_each_child(pid_t pid, bool (*fn)(pid_t child, void *userdata), void *userdata);
/* Open path with O_WRONLY|O_TRUNC (no O_CREAT) and write s in one write(2),
 * as cgroup and /proc control files want it. */
int write_control_file(const char *path, const char *s);
/* write(2) until everything is written, retrying on EINTR. */
int write_all(int fd, const void *p, size_t n);

/* snprintf into an allocated string; NULL on failure. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* Whether name is a plain file name for the work directory: not empty, not
 * "." or "..", no '/', no NUL, no control characters, at most 255 bytes. */
bool filename_is_plain(const char *name, size_t len);

/* Whether s can name a Python module for --module / moduleName: an ASCII
 * identifier of at most 64 characters. */
bool module_name_is_valid(const char *s);
