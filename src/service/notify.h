/* SPDX-License-Identifier: MIT */
/*
 * notify: the service's state for systemd's service manager (sd_notify(3)),
 * for a unit of Type=notify: READY=1 once the start-up self-test passed and
 * the listening socket accepts connections, STATUS= lines saying what it is
 * doing, STOPPING=1 when a graceful shutdown begins. Outside systemd
 * ($NOTIFY_SOCKET unset) every call does nothing.
 */
#pragma once

#include <stddef.h>

#include "util.h"

/* Load sd_notify() when $NOTIFY_SOCKET is set. 0 when there is nothing to
 * notify or it is ready; -ENOENT with err saying why when systemd waits for
 * a notification this build or host cannot send. Call before threads
 * start. */
int notify_init(char *err, size_t errlen);

/* Send newline-separated VAR=value assignments ("READY=1\nSTATUS=..."). */
void notify_send(const char *state);

/* notify_send() of "STATUS=" and the formatted text, after prefix (such as
 * "READY=1\n"; may be empty). */
void notify_statusf(const char *prefix, const char *fmt, ...) _printf_(2, 3);
