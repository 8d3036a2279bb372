/* SPDX-License-Identifier: MIT */
#include "notify.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

/*
 * libsystemd is loaded by `pyexec serve` alone, and only under systemd, as
 * libmicrohttpd is (http.c): linked into the binary, it and the libraries
 * it needs (libgcrypt, liblzma, libzstd, liblz4, libcap) would be loaded by
 * every `pyexec run` too.
 */
static typeof(sd_notify) *notify_fn;
#endif

int notify_init(char *err, size_t errlen) {
        const char *sock = getenv("NOTIFY_SOCKET");

        if (!sock || !*sock)
                return 0;
#ifdef HAVE_LIBSYSTEMD
        {
                void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
                void *f = h ? dlsym(h, "sd_notify") : NULL;
                if (!f) {
                        snprintf(err, errlen,
                                 "systemd waits for the service's readiness ($NOTIFY_SOCKET is set), but "
                                 "libsystemd.so.0 cannot be loaded: %s (install libsystemd0, or run the unit with "
                                 "Type=exec)",
                                 dlerror());
                        return -ENOENT;
                }
                memcpy(&notify_fn, &f, sizeof f);
                return 0;
        }
#else
        snprintf(err, errlen,
                 "systemd waits for the service's readiness ($NOTIFY_SOCKET is set), but this pyexec was built "
                 "without libsystemd (-Dsystemd=disabled): run the unit with Type=exec, or rebuild with "
                 "libsystemd-dev");
        return -ENOENT;
#endif
}

void notify_send(const char *state) {
#ifdef HAVE_LIBSYSTEMD
        /* Failures change nothing for the service: systemd's own timeout
         * says when readiness never came. */
        if (notify_fn)
                (void)notify_fn(0, state);
#else
        (void)state;
#endif
}

void notify_statusf(const char *prefix, const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        int n;

#ifdef HAVE_LIBSYSTEMD
        if (!notify_fn)
                return;
#endif
        n = snprintf(msg, sizeof msg, "%sSTATUS=", prefix);
        if (n < 0 || (size_t)n >= sizeof msg)
                return;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
        va_end(ap);
        /* One line: a newline would start another assignment. */
        for (char *p = msg + n; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        notify_send(msg);
}
