/* SPDX-License-Identifier: MIT */
/*
 * queue-redis: the submissions' queue on Redis Streams (queue.h).
 *
 * Keys, with P the prefix (queue_options.name, "pyexec"):
 *
 *   P:tasks        the stream: one entry (field id) per task enqueued and
 *                  not finished; consumer group P reads it
 *   P:task:ID      hash: task (the JSON text), state (queued, running),
 *                  progress, created (Unix seconds); expires
 *                  result_ttl_s + a day after its last change, deleted at
 *                  finish
 *   P:result:ID    the result's JSON text, SET NX EX result_ttl_s: the
 *                  first finish stores it
 *   P:idem:KEY     an Idempotency-Key: fingerprint "\n" value, SET NX EX
 *                  result_ttl_s
 *   P:stats        hash of counters: enqueued, claimed, dead_lettered,
 *                  stored, duplicates
 *   P:outbox       hash: ID -> the callback still to deliver for a stored
 *                  result (put there with the result, in one script)
 *   P:outbox:lease sorted set: ID -> when its lease runs out (ms, the
 *                  server's clock); the delivering process renews it
 *
 * A task is XADDed with its hash in one MULTI/EXEC. take() looks first for
 * a pending entry idle for lease_ms or more (XPENDING IDLE) and claims it
 * (XCLAIM with the same min-idle, so of two consumers racing for it one
 * gets it); else it reads a new entry (XREADGROUP ... >). touch() resets the
 * entry's idle time (XCLAIM ... JUSTID). finish() stores the result, then
 * acknowledges and deletes the entry and deletes the hash; an entry whose
 * hash is gone (finished meanwhile, or expired) is acknowledged and
 * dropped by the take() that meets it.
 *
 * Connections: a pool of blocking hiredis connections, one per call at a
 * time, so a take() blocked in XREADGROUP holds its own. A connection that
 * fails is closed; the next call opens a new one. Pooled connections are
 * checked for the server's end of file before use, so a restarted server
 * costs no failed call.
 *
 * libhiredis is loaded with dlopen() on the first queue_redis_new(), as
 * http.c loads libmicrohttpd: `pyexec run` never loads it.
 */
#include "queue.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include "util.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_CONNECT_TIMEOUT_MS 2000
/* A command's answer; take()'s XREADGROUP waits block_ms more. */
#define REDIS_COMMAND_TIMEOUT_MS 2000
/* Idle connections kept for reuse (one per concurrently calling thread). */
#define REDIS_POOL_MAX 64
/* A task's hash outlives the longest time it may wait by this much. */
#define REDIS_TASK_EXTRA_S 86400
#define REDIS_ARGS_MAX 16

static struct {
        pthread_mutex_t lock;
        void *handle;
        typeof(redisConnectWithTimeout) *connect_with_timeout;
        typeof(redisConnectUnixWithTimeout) *connect_unix_with_timeout;
        typeof(redisSetTimeout) *set_timeout;
        typeof(redisFree) *free;
        typeof(redisAppendCommandArgv) *append_command_argv;
        typeof(redisGetReply) *get_reply;
        typeof(freeReplyObject) *free_reply_object;
} hr = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int hiredis_load(char **ret_why) {
        static const struct dl_sym syms[] = {
                DL_SYM(hr, redisConnectWithTimeout, connect_with_timeout),
                DL_SYM(hr, redisConnectUnixWithTimeout, connect_unix_with_timeout),
                DL_SYM(hr, redisSetTimeout, set_timeout),
                DL_SYM(hr, redisFree, free),
                DL_SYM(hr, redisAppendCommandArgv, append_command_argv),
                DL_SYM(hr, redisGetReply, get_reply),
                DL_SYM(hr, freeReplyObject, free_reply_object),
        };
        char err[512];
        int r = 0;

        pthread_mutex_lock(&hr.lock);
        if (!hr.handle) {
                r = dl_load("libhiredis.so.0.14", "libhiredis0.14", syms, ELEMENTSOF(syms), &hr, &hr.handle, err,
                            sizeof err);
                if (r < 0)
                        *ret_why = strdup(err);
        }
        pthread_mutex_unlock(&hr.lock);
        return r;
}

struct rconn {
        redisContext *c;
        struct rconn *next;
        uint64_t timeout_ms; /* the socket's timeout now */
};

struct queue_redis {
        struct queue q;
        char *prefix;
        /* Where: host and port, or path (a Unix socket). */
        char *host;
        unsigned port;
        char *path;
        char *user, *password; /* NULL: none */
        uint64_t db;
        char *addr; /* for messages: host:port or unix:PATH, never the password */

        pthread_mutex_t lock; /* pool, n_pool, why */
        struct rconn *pool;
        size_t n_pool;
        char *why; /* the last failure */

        _Atomic uint64_t tidied_ns; /* when take() last removed idle consumers */
};

static void reply_freep(redisReply **r) {
        if (*r)
                hr.free_reply_object(*r);
}
#define _cleanup_reply_ _cleanup_(reply_freep)

/* Record why the server cannot be used; returns -ENOTCONN. */
static int rd_fail(struct queue_redis *r, const char *fmt, ...) _printf_(2, 3);
static int rd_fail(struct queue_redis *r, const char *fmt, ...) {
        va_list ap;
        char msg[512];

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        char *why = strdup_printf("redis at %s: %s", r->addr, msg);
        pthread_mutex_lock(&r->lock);
        free(r->why);
        r->why = why;
        pthread_mutex_unlock(&r->lock);
        return -ENOTCONN;
}

static void rconn_free(struct rconn *c) {
        if (!c)
                return;
        if (c->c)
                hr.free(c->c);
        free(c);
}

static int rconn_set_timeout(struct rconn *c, uint64_t ms) {
        if (c->timeout_ms == ms)
                return 0;
        struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
        if (hr.set_timeout(c->c, tv) != REDIS_OK)
                return -EIO;
        c->timeout_ms = ms;
        return 0;
}

/*
 * The pipeline of one call: append commands (argv, NUL-terminated strings),
 * then read their replies in order. A failure to write or read closes the
 * connection (it is out of step with the server) and records why.
 */
static int rc_appendv(struct queue_redis *r, struct rconn *c, const char *const *argv, int argc) {
        if (hr.append_command_argv(c->c, argc, (const char **)argv, NULL) != REDIS_OK)
                return rd_fail(r, "%s", c->c->errstr);
        return 0;
}

/* rc_append(r, c, "CMD", arg, ..., NULL) */
static int rc_append(struct queue_redis *r, struct rconn *c, ...) __attribute__((sentinel));
static int rc_append(struct queue_redis *r, struct rconn *c, ...) {
        const char *argv[REDIS_ARGS_MAX];
        int argc = 0;
        bool too_many = false;
        va_list ap;

        va_start(ap, c);
        for (const char *a; (a = va_arg(ap, const char *));)
                if (argc < REDIS_ARGS_MAX)
                        argv[argc++] = a;
                else
                        too_many = true;
        va_end(ap);
        /* Never a command cut short: a bug here, not the server's. */
        if (too_many)
                return -E2BIG;
        return rc_appendv(r, c, argv, argc);
}

static int rc_reply(struct queue_redis *r, struct rconn *c, redisReply **ret) {
        void *reply = NULL;
        if (hr.get_reply(c->c, &reply) != REDIS_OK || !reply)
                return rd_fail(r, "%s", c->c->err ? c->c->errstr : "no reply");
        *ret = reply;
        return 0;
}

/* One command, its reply. */
#define rc_command(r, c, ret, ...)                               \
        ({                                                       \
                int _r = rc_append((r), (c), __VA_ARGS__, NULL); \
                _r < 0 ? _r : rc_reply((r), (c), (ret));         \
        })

static bool reply_is_error(const redisReply *x, const char *prefix) {
        return x->type == REDIS_REPLY_ERROR && x->str && (!prefix || strncmp(x->str, prefix, strlen(prefix)) == 0);
}

static bool reply_is_string(const redisReply *x) {
        return (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS) && x->str;
}

/* An error reply to a command: the server works but refused it. */
static int rd_refused(struct queue_redis *r, const char *what, const redisReply *x) {
        rd_fail(r, "%s: %s", what, x->type == REDIS_REPLY_ERROR && x->str ? x->str : "unexpected reply");
        return -EIO;
}

static char *rd_key(struct queue_redis *r, const char *kind, const char *id) {
        return id ? strdup_printf("%s:%s:%s", r->prefix, kind, id) : strdup_printf("%s:%s", r->prefix, kind);
}

/* The consumer group, on the stream made if missing. From 0, not $: the
 * stream holds only unfinished tasks (finish deletes entries), so a group
 * made again (after FLUSHALL, or on a stream enqueued to first) delivers
 * every one of them. */
static int rd_ensure_group(struct queue_redis *r, struct rconn *c) {
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL);
        _cleanup_reply_ redisReply *x = NULL;
        if (!stream)
                return -ENOMEM;
        int k = rc_command(r, c, &x, "XGROUP", "CREATE", stream, r->prefix, "0", "MKSTREAM");
        if (k < 0)
                return k;
        if (reply_is_error(x, "NOAUTH")) {
                rd_fail(r, "the server wants a password: redis://:PASSWORD@HOST or requirepass off");
                return -EIO;
        }
        if (x->type == REDIS_REPLY_ERROR && !reply_is_error(x, "BUSYGROUP"))
                return rd_refused(r, "XGROUP CREATE", x);
        return 0;
}

static int rconn_open(struct queue_redis *r, struct rconn **ret) {
        struct timeval tv = { .tv_sec = REDIS_CONNECT_TIMEOUT_MS / 1000,
                              .tv_usec = (REDIS_CONNECT_TIMEOUT_MS % 1000) * 1000 };
        struct rconn *c = calloc(1, sizeof *c);
        int k;

        if (!c)
                return -ENOMEM;
        c->c = r->path ? hr.connect_unix_with_timeout(r->path, tv) : hr.connect_with_timeout(r->host, (int)r->port, tv);
        if (!c->c) {
                free(c);
                return -ENOMEM;
        }
        if (c->c->err) {
                k = rd_fail(r, "cannot connect: %s", c->c->errstr);
                goto out_free;
        }
        /* hiredis 0.14 opens its socket without SOCK_CLOEXEC: close it on
         * exec now. (A fork+exec of another thread in the instant between
         * is covered by the sandbox's child closing every descriptor it
         * was not given.) */
        if (fcntl(c->c->fd, F_SETFD, FD_CLOEXEC) < 0) {
                k = -errno;
                goto out_free;
        }
        if (rconn_set_timeout(c, REDIS_COMMAND_TIMEOUT_MS) < 0) {
                k = rd_fail(r, "cannot set the socket's timeout: %s", c->c->errstr);
                goto out_free;
        }
        if (r->password) {
                _cleanup_reply_ redisReply *x = NULL;
                k = r->user ? rc_command(r, c, &x, "AUTH", r->user, r->password)
                            : rc_command(r, c, &x, "AUTH", r->password);
                if (k < 0)
                        goto out_free;
                if (x->type == REDIS_REPLY_ERROR) {
                        /* The server's message names neither password nor user. */
                        k = rd_fail(r, "authentication failed: %s", x->str ? x->str : "error");
                        goto out_free;
                }
        }
        if (r->db != 0) {
                char db[24];
                _cleanup_reply_ redisReply *x = NULL;
                snprintf(db, sizeof db, "%llu", (unsigned long long)r->db);
                k = rc_command(r, c, &x, "SELECT", db);
                if (k < 0)
                        goto out_free;
                if (x->type == REDIS_REPLY_ERROR) {
                        k = rd_fail(r, "SELECT %s: %s", db, x->str ? x->str : "error");
                        goto out_free;
                }
        }
        k = rd_ensure_group(r, c);
        if (k < 0) {
                k = -ENOTCONN;
                goto out_free;
        }
        *ret = c;
        return 0;

out_free:
        rconn_free(c);
        return k;
}

/* Whether an idle pooled connection is still open: the server's end of
 * file (it restarted, or closed idle clients) is waiting in the socket. */
static bool rconn_alive(const struct rconn *c) {
        char b;
        ssize_t n = recv(c->c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int rconn_get(struct queue_redis *r, uint64_t timeout_ms, struct rconn **ret) {
        struct rconn *c = NULL;
        int k;

        pthread_mutex_lock(&r->lock);
        while (r->pool) {
                c = r->pool;
                r->pool = c->next;
                r->n_pool--;
                c->next = NULL;
                if (rconn_alive(c))
                        break;
                rconn_free(c);
                c = NULL;
        }
        pthread_mutex_unlock(&r->lock);

        if (!c) {
                k = rconn_open(r, &c);
                if (k < 0)
                        return k;
        }
        if (rconn_set_timeout(c, timeout_ms) < 0) {
                k = rd_fail(r, "cannot set the socket's timeout: %s", c->c->errstr);
                rconn_free(c);
                return k;
        }
        *ret = c;
        return 0;
}

/* Give the connection back: kept when it is in step with the server. */
static void rconn_put(struct queue_redis *r, struct rconn *c, bool ok) {
        if (!c)
                return;
        if (!ok || c->c->err) {
                rconn_free(c);
                return;
        }
        pthread_mutex_lock(&r->lock);
        if (r->n_pool < REDIS_POOL_MAX) {
                c->next = r->pool;
                r->pool = c;
                r->n_pool++;
                c = NULL;
        }
        pthread_mutex_unlock(&r->lock);
        rconn_free(c);
}

/* A connection for one call, given back when it goes out of scope; a call
 * sets .ok once the connection is in step with the server again. */
struct rlease {
        struct queue_redis *r;
        struct rconn *c;
        bool ok;
};

static void rlease_done(struct rlease *l) {
        rconn_put(l->r, l->c, l->ok);
}
#define _cleanup_rlease_ _cleanup_(rlease_done)

static int rlease_get(struct queue_redis *r, uint64_t timeout_ms, struct rlease *l) {
        l->r = r;
        l->ok = false;
        return rconn_get(r, timeout_ms, &l->c);
}

static void u64_str(char b[static 24], uint64_t v) {
        snprintf(b, 24, "%llu", (unsigned long long)v);
}

static int rd_enqueue(struct queue *q, const char *const *ids, const char *const *tasks, size_t n) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL), *stats = rd_key(r, "stats", NULL);
        char ttl[24], created[24], count[24];
        int k;

        if (!stream || !stats)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!queue_id_is_valid(ids[i]) || !tasks[i])
                        return -EINVAL;
        if (n == 0)
                return 0;
        u64_str(ttl, q->o.result_ttl_s + REDIS_TASK_EXTRA_S);
        u64_str(created, (uint64_t)time(NULL));
        u64_str(count, n);

        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;

        /* All or none: a MULTI whose EXEC runs every command or, when one
         * was refused while queued, none (EXECABORT). */
        size_t sent = 0;
        k = rc_append(r, l.c, "MULTI", NULL);
        sent++;
        for (size_t i = 0; k >= 0 && i < n; i++) {
                _cleanup_free_ char *hash = rd_key(r, "task", ids[i]);
                if (!hash)
                        return -ENOMEM; /* nothing read: the connection is dropped */
                k = rc_append(r, l.c, "HSET", hash, "task", tasks[i], "state", "queued", "progress", "-1", "created",
                              created, NULL);
                if (k >= 0)
                        k = rc_append(r, l.c, "EXPIRE", hash, ttl, NULL);
                if (k >= 0)
                        k = rc_append(r, l.c, "XADD", stream, "*", "id", ids[i], NULL);
                sent += 3;
        }
        if (k >= 0) {
                k = rc_append(r, l.c, "HINCRBY", stats, "enqueued", count, NULL);
                sent++;
        }
        if (k >= 0) {
                k = rc_append(r, l.c, "EXEC", NULL);
                sent++;
        }
        if (k < 0)
                return k;

        int result = 0;
        for (size_t i = 0; i < sent; i++) {
                _cleanup_reply_ redisReply *x = NULL;
                k = rc_reply(r, l.c, &x);
                if (k < 0)
                        return k;
                if (i + 1 < sent)
                        continue;
                /* EXEC: the array of the commands' replies, or an error. */
                if (x->type != REDIS_REPLY_ARRAY)
                        result = rd_refused(r, "enqueue (EXEC)", x);
                else
                        for (size_t j = 0; j < x->elements; j++)
                                if (x->element[j]->type == REDIS_REPLY_ERROR)
                                        result = rd_refused(r, "enqueue", x->element[j]);
        }
        l.ok = true;
        return result;
}

static int rd_remember(struct queue *q, const char *key, const char *fingerprint, const char *value, char **ret_value) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        char ttl[24];
        int k;

        if (!key || !fingerprint || !value || strchr(fingerprint, '\n'))
                return -EINVAL;
        _cleanup_free_ char *ikey = rd_key(r, "idem", key), *stored = strdup_printf("%s\n%s", fingerprint, value);
        if (!ikey || !stored)
                return -ENOMEM;
        u64_str(ttl, q->o.result_ttl_s);
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;

        /* A key that expires between SET NX and GET is set again. */
        for (int attempt = 0; attempt < 3; attempt++) {
                _cleanup_reply_ redisReply *set = NULL, *get = NULL;
                k = rc_command(r, l.c, &set, "SET", ikey, stored, "NX", "EX", ttl);
                if (k < 0)
                        return k;
                if (set->type == REDIS_REPLY_STATUS) {
                        l.ok = true;
                        return 0;
                }
                if (set->type != REDIS_REPLY_NIL) {
                        l.ok = true;
                        return rd_refused(r, "SET NX (idempotency key)", set);
                }
                k = rc_command(r, l.c, &get, "GET", ikey);
                if (k < 0)
                        return k;
                l.ok = true;
                if (get->type == REDIS_REPLY_NIL)
                        continue;
                if (get->type != REDIS_REPLY_STRING)
                        return rd_refused(r, "GET (idempotency key)", get);
                const char *nl = memchr(get->str, '\n', get->len);
                if (!nl || (size_t)(nl - get->str) != strlen(fingerprint) ||
                    memcmp(get->str, fingerprint, strlen(fingerprint)) != 0)
                        return -EEXIST;
                if (ret_value) {
                        char *v = strndup(nl + 1, get->len - (size_t)(nl + 1 - get->str));
                        if (!v)
                                return -ENOMEM;
                        *ret_value = v;
                }
                return 1;
        }
        return -EAGAIN;
}

static int rd_forget(struct queue *q, const char *key) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *x = NULL;

        if (!key)
                return -EINVAL;
        _cleanup_free_ char *ikey = rd_key(r, "idem", key);
        if (!ikey)
                return -ENOMEM;
        int k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k >= 0)
                k = rc_command(r, l.c, &x, "DEL", ikey);
        if (k < 0)
                return k;
        l.ok = true;
        return x->type == REDIS_REPLY_ERROR ? rd_refused(r, "DEL (idempotency key)", x) : 0;
}

/* A stream entry [entry-id, [field, value, ...]]: its id and the value of
 * its field "id" (NULL when the entry was deleted). */
static bool entry_parse(const redisReply *e, const char **ret_entry, const char **ret_id) {
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || !reply_is_string(e->element[0]))
                return false;
        *ret_entry = e->element[0]->str;
        *ret_id = NULL;
        if (e->elements >= 2 && e->element[1]->type == REDIS_REPLY_ARRAY) {
                const redisReply *f = e->element[1];
                for (size_t i = 0; i + 1 < f->elements; i += 2)
                        if (reply_is_string(f->element[i]) && strcmp(f->element[i]->str, "id") == 0 &&
                            reply_is_string(f->element[i + 1]) && queue_id_is_valid(f->element[i + 1]->str))
                                *ret_id = f->element[i + 1]->str;
        }
        return true;
}

/* Acknowledge and delete an entry whose task is gone. */
static int rd_drop_entry(struct queue_redis *r, struct rconn *c, const char *stream, const char *entry) {
        _cleanup_reply_ redisReply *a = NULL, *d = NULL;
        int k = rc_append(r, c, "XACK", stream, r->prefix, entry, NULL);
        if (k >= 0)
                k = rc_append(r, c, "XDEL", stream, entry, NULL);
        if (k >= 0)
                k = rc_reply(r, c, &a);
        if (k >= 0)
                k = rc_reply(r, c, &d);
        return k;
}

/*
 * The first pending entry idle for lease_ms or more, claimed for consumer:
 * 1 with *ret_entry, *ret_id (the task's id, or "" when the entry is gone)
 * and *ret_deliveries; 0 when there is none, or another consumer claimed
 * it first.
 */
static int rd_claim_expired(struct queue_redis *r, struct rconn *c, const char *stream, const char *consumer,
                            char ret_entry[static 64], char ret_id[static QUEUE_ID_LEN + 1], uint64_t *ret_deliveries) {
        _cleanup_reply_ redisReply *p = NULL, *x = NULL;
        char idle[24];
        int k;

        u64_str(idle, r->q.o.lease_ms);
        k = rc_command(r, c, &p, "XPENDING", stream, r->prefix, "IDLE", idle, "-", "+", "1");
        if (k < 0)
                return k;
        if (reply_is_error(p, "NOGROUP"))
                /* The keys were deleted (FLUSHALL, or the stream): make
                 * the group again; nothing is pending in it. */
                return rd_ensure_group(r, c);
        if (p->type == REDIS_REPLY_ERROR)
                return rd_refused(r, "XPENDING", p);
        if (p->type != REDIS_REPLY_ARRAY || p->elements == 0)
                return 0;
        const redisReply *e = p->element[0];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || !reply_is_string(e->element[0]) ||
            e->element[3]->type != REDIS_REPLY_INTEGER || strlen(e->element[0]->str) >= 64)
                return rd_refused(r, "XPENDING", p);
        const char *entry = e->element[0]->str;
        uint64_t count = (uint64_t)e->element[3]->integer;

        /* The same min-idle: of consumers racing for it, the first resets
         * its idle time and the others claim nothing. */
        k = rc_command(r, c, &x, "XCLAIM", stream, r->prefix, consumer, idle, entry);
        if (k < 0)
                return k;
        if (x->type == REDIS_REPLY_ERROR)
                return rd_refused(r, "XCLAIM", x);
        if (x->type != REDIS_REPLY_ARRAY || x->elements == 0)
                return 0;
        const char *got_entry, *id;
        if (x->element[0]->type != REDIS_REPLY_ARRAY) {
                /* A deleted entry (nil): dropped from the pending list. */
                snprintf(ret_entry, 64, "%s", entry);
                ret_id[0] = 0;
                return 1;
        }
        if (!entry_parse(x->element[0], &got_entry, &id))
                return rd_refused(r, "XCLAIM", x);
        snprintf(ret_entry, 64, "%s", got_entry);
        snprintf(ret_id, QUEUE_ID_LEN + 1, "%s", id ? id : "");
        *ret_deliveries = count + 1; /* XCLAIM counted this delivery */
        return 1;
}

/* A new entry for consumer, waiting up to block_ms: 1 with *ret_entry and
 * *ret_id ("" when the entry has no valid id), 0 when none came. */
static int rd_read_new(struct queue_redis *r, struct rconn *c, const char *stream, const char *consumer,
                       uint64_t block_ms, char ret_entry[static 64], char ret_id[static QUEUE_ID_LEN + 1]) {
        char block[24];
        int k;

        u64_str(block, block_ms);
        for (int attempt = 0;; attempt++) {
                _cleanup_reply_ redisReply *x = NULL;
                /* BLOCK 0 would wait for ever: block_ms 0 does not block. */
                if (block_ms > 0)
                        k = rc_command(r, c, &x, "XREADGROUP", "GROUP", r->prefix, consumer, "COUNT", "1", "BLOCK",
                                       block, "STREAMS", stream, ">");
                else
                        k = rc_command(r, c, &x, "XREADGROUP", "GROUP", r->prefix, consumer, "COUNT", "1", "STREAMS",
                                       stream, ">");
                if (k < 0)
                        return k;
                if (reply_is_error(x, "NOGROUP") && attempt == 0) {
                        /* The keys were deleted (FLUSHALL, or the stream):
                         * make the group again. */
                        k = rd_ensure_group(r, c);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (x->type == REDIS_REPLY_NIL)
                        return 0;
                /* [[stream, [[entry-id, [fields]]]]] */
                if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 || x->element[0]->type != REDIS_REPLY_ARRAY ||
                    x->element[0]->elements < 2 || x->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
                        return rd_refused(r, "XREADGROUP", x);
                const redisReply *entries = x->element[0]->element[1];
                if (entries->elements == 0)
                        return 0;
                const char *entry, *id;
                if (!entry_parse(entries->element[0], &entry, &id) || strlen(entry) >= 64)
                        return rd_refused(r, "XREADGROUP", x);
                snprintf(ret_entry, 64, "%s", entry);
                snprintf(ret_id, QUEUE_ID_LEN + 1, "%s", id ? id : "");
                return 1;
        }
}

/* Consumers of the group that hold nothing and have not read for
 * CONSUMER_IDLE_LEASES leases: workers that stopped or died, under
 * names (HOST-PID-N) nobody uses again. Redis keeps every consumer name a
 * group has seen until it is deleted. KEYS: the stream; ARGV: group,
 * idle ms. The number removed. */
#define CONSUMER_IDLE_LEASES 10
static const char lua_tidy_consumers[] =
        "local n = 0 "
        "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do "
        "local f = {} for i = 1, #c, 2 do f[c[i]] = c[i + 1] end "
        "if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) then "
        "redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name']) n = n + 1 end end "
        "return n";

/* At most once per CONSUMER_IDLE_LEASES leases, by whichever take() comes
 * first; best effort (a failure is the next call's to see). A live
 * worker's consumer reads at least every lease, so it is never idle that
 * long, and one deleted with nothing pending loses nothing: its next read
 * makes it again. */
static void rd_tidy_consumers(struct queue_redis *r, struct rconn *c, const char *stream) {
        uint64_t idle_ms = r->q.o.lease_ms * CONSUMER_IDLE_LEASES, now = now_ns(), last = atomic_load(&r->tidied_ns);
        char idle[24];

        if (now < last + idle_ms * 1000000ull || !atomic_compare_exchange_strong(&r->tidied_ns, &last, now))
                return;
        u64_str(idle, idle_ms);
        _cleanup_reply_ redisReply *x = NULL;
        (void)rc_command(r, c, &x, "EVAL", lua_tidy_consumers, "1", stream, r->prefix, idle);
}

static int rd_take(struct queue *q, const char *consumer, uint64_t block_ms, struct queue_item *ret) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL), *stats = rd_key(r, "stats", NULL);
        char ttl[24];
        int k;

        if (!queue_consumer_is_valid(consumer) || !ret)
                return -EINVAL;
        if (!stream || !stats)
                return -ENOMEM;
        u64_str(ttl, q->o.result_ttl_s + REDIS_TASK_EXTRA_S);

        /* A blocked XREADGROUP does not see a lease run out: it waits at
         * most lease_ms at a time, then looks for expired leases again. */
        uint64_t step_ms = q->o.lease_ms > 0 ? q->o.lease_ms : 1;
        if (block_ms > UINT64_MAX / 2000000ull)
                block_ms = UINT64_MAX / 2000000ull;
        uint64_t until = now_ns() + block_ms * 1000000ull;
        k = rlease_get(r, (block_ms < step_ms ? block_ms : step_ms) + REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        rd_tidy_consumers(r, l.c, stream);

        for (;;) {
                char entry[64] = "", id[QUEUE_ID_LEN + 1] = "";
                uint64_t deliveries = 1;
                bool claimed = false;

                k = rd_claim_expired(r, l.c, stream, consumer, entry, id, &deliveries);
                if (k < 0)
                        return k;
                if (k > 0)
                        claimed = true;
                else {
                        uint64_t now = now_ns();
                        uint64_t left = until > now ? (until - now) / 1000000ull : 0;
                        k = rd_read_new(r, l.c, stream, consumer, left < step_ms ? left : step_ms, entry, id);
                        if (k < 0)
                                return k;
                        if (k == 0) {
                                if (now_ns() >= until) {
                                        l.ok = true;
                                        return -EAGAIN;
                                }
                                continue;
                        }
                }

                _cleanup_reply_ redisReply *t = NULL;
                _cleanup_free_ char *hash = id[0] ? rd_key(r, "task", id) : NULL;
                if (id[0] && !hash)
                        return -ENOMEM;
                if (hash) {
                        k = rc_command(r, l.c, &t, "HGET", hash, "task");
                        if (k < 0)
                                return k;
                }
                if (!t || t->type != REDIS_REPLY_STRING) {
                        /* Its result is stored (a finish after this entry
                         * was claimed again), or it expired: drop it. */
                        k = rd_drop_entry(r, l.c, stream, entry);
                        if (k < 0)
                                return k;
                        continue;
                }

                _cleanup_reply_ redisReply *s = NULL, *e = NULL, *c = NULL;
                k = rc_append(r, l.c, "HSET", hash, "state", "running", NULL);
                if (k >= 0)
                        k = rc_append(r, l.c, "EXPIRE", hash, ttl, NULL);
                if (k >= 0 && claimed)
                        k = rc_append(r, l.c, "HINCRBY", stats, "claimed", "1", NULL);
                if (k >= 0)
                        k = rc_reply(r, l.c, &s);
                if (k >= 0)
                        k = rc_reply(r, l.c, &e);
                if (k >= 0 && claimed)
                        k = rc_reply(r, l.c, &c);
                if (k < 0)
                        return k;
                l.ok = true;

                char *text = strndup(t->str, t->len);
                if (!text)
                        return -ENOMEM;
                *ret = (struct queue_item){ .task = text, .deliveries = deliveries };
                memcpy(ret->id, id, sizeof ret->id);
                snprintf(ret->lease, sizeof ret->lease, "%s", entry);
                snprintf(ret->consumer, sizeof ret->consumer, "%s", consumer);
                return 0;
        }
}

static int rd_touch(struct queue *q, const struct queue_item *it, double progress) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *x = NULL, *h = NULL, *e = NULL;
        char ttl[24], prog[32];
        int k;

        if (!it || !queue_id_is_valid(it->id) || !it->lease[0] || !queue_consumer_is_valid(it->consumer))
                return -EINVAL;
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL), *hash = rd_key(r, "task", it->id);
        if (!stream || !hash)
                return -ENOMEM;
        u64_str(ttl, q->o.result_ttl_s + REDIS_TASK_EXTRA_S);
        snprintf(prog, sizeof prog, "%.4f", progress > 1 ? 1.0 : progress);

        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        /* Min-idle 0 and JUSTID: the entry's idle time starts again, its
         * delivery count stays. */
        k = rc_command(r, l.c, &x, "XCLAIM", stream, r->prefix, it->consumer, "0", it->lease, "JUSTID");
        if (k < 0)
                return k;
        if (x->type == REDIS_REPLY_ERROR) {
                l.ok = true;
                return rd_refused(r, "XCLAIM", x);
        }
        if (x->type != REDIS_REPLY_ARRAY || x->elements == 0) {
                l.ok = true;
                return -ENOENT; /* acknowledged: its result is stored */
        }
        k = progress >= 0 ? rc_append(r, l.c, "HSET", hash, "state", "running", "progress", prog, NULL)
                          : rc_append(r, l.c, "HSET", hash, "state", "running", NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "EXPIRE", hash, ttl, NULL);
        if (k >= 0)
                k = rc_reply(r, l.c, &h);
        if (k >= 0)
                k = rc_reply(r, l.c, &e);
        if (k < 0)
                return k;
        l.ok = true;
        return 0;
}

/* The server's clock in ms, for the outbox's leases: one clock for every
 * process, whatever their hosts' clocks say. */
#define LUA_NOW_MS "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* KEYS: result, outbox, outbox lease; ARGV: result, ttl, id, callback
 * ("": none), lease_ms. 1 when this result is the one stored. */
static const char lua_finish[] = "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end "
                                 "if ARGV[4] ~= '' then " LUA_NOW_MS "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) "
                                 "redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[3]) end "
                                 "return 1";

static int rd_finish(struct queue *q, const struct queue_item *it, const char *result, const struct queue_callback *cb,
                     bool dead, bool *ret_stored) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *set = NULL;
        char ttl[24], lease[24];
        int k;

        if (!it || !result || !queue_id_is_valid(it->id))
                return -EINVAL;
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL), *hash = rd_key(r, "task", it->id),
                            *rkey = rd_key(r, "result", it->id), *stats = rd_key(r, "stats", NULL),
                            *outbox = rd_key(r, "outbox", NULL), *leases = rd_key(r, "outbox", "lease");
        if (!stream || !hash || !rkey || !stats || !outbox || !leases)
                return -ENOMEM;
        u64_str(ttl, q->o.result_ttl_s);
        u64_str(lease, cb && cb->held ? q->o.lease_ms : 0);

        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        k = rc_command(r, l.c, &set, "EVAL", lua_finish, "3", rkey, outbox, leases, result, ttl, it->id,
                       cb && cb->text ? cb->text : "", lease);
        if (k < 0)
                return k;
        if (set->type != REDIS_REPLY_INTEGER) {
                l.ok = true;
                return rd_refused(r, "EVAL (store the result)", set);
        }
        bool stored = set->integer == 1;

        /* Stored before it is acknowledged: a worker that dies in between
         * leaves a pending entry, taken again and found finished. */
        size_t sent = 0;
        if (it->lease[0]) {
                k = rc_append(r, l.c, "XACK", stream, r->prefix, it->lease, NULL);
                if (k >= 0)
                        k = rc_append(r, l.c, "XDEL", stream, it->lease, NULL);
                sent += 2;
        }
        if (k >= 0)
                k = rc_append(r, l.c, "DEL", hash, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "HINCRBY", stats, stored ? "stored" : "duplicates", "1", NULL);
        sent += 2;
        if (k >= 0 && stored && dead) {
                k = rc_append(r, l.c, "HINCRBY", stats, "dead_lettered", "1", NULL);
                sent++;
        }
        for (size_t i = 0; k >= 0 && i < sent; i++) {
                _cleanup_reply_ redisReply *x = NULL;
                k = rc_reply(r, l.c, &x);
        }
        if (k < 0)
                return k;
        l.ok = true;
        if (ret_stored)
                *ret_stored = stored;
        return 0;
}

/* KEYS: outbox, outbox lease; ARGV: lease_ms, max. Id, text, id, text... */
static const char lua_outbox_claim[] = LUA_NOW_MS
        "local out = {} "
        "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do "
        "local text = redis.call('HGET', KEYS[1], id) "
        "if text then redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id) out[#out + 1] = id out[#out + 1] = text "
        "else redis.call('ZREM', KEYS[2], id) end end "
        "return out";

static int rd_outbox_claim(struct queue *q, size_t max, char ***ret_ids, char ***ret_texts, size_t *ret_n) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *x = NULL;
        char lease[24], maxs[24];
        char **ids = NULL, **texts = NULL;
        size_t n = 0;
        int k;

        if (!ret_ids || !ret_texts || !ret_n || max == 0)
                return -EINVAL;
        _cleanup_free_ char *outbox = rd_key(r, "outbox", NULL), *leases = rd_key(r, "outbox", "lease");
        if (!outbox || !leases)
                return -ENOMEM;
        u64_str(lease, q->o.lease_ms);
        u64_str(maxs, max);
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        k = rc_command(r, l.c, &x, "EVAL", lua_outbox_claim, "2", outbox, leases, lease, maxs);
        if (k < 0)
                return k;
        l.ok = true;
        if (x->type != REDIS_REPLY_ARRAY || x->elements % 2)
                return rd_refused(r, "EVAL (claim from the outbox)", x);
        if (x->elements > 0) {
                ids = calloc(x->elements / 2, sizeof *ids);
                texts = calloc(x->elements / 2, sizeof *texts);
                if (!ids || !texts) {
                        free(ids);
                        free(texts);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i + 1 < x->elements; i += 2) {
                if (!reply_is_string(x->element[i]) || !reply_is_string(x->element[i + 1]))
                        continue;
                ids[n] = strdup(x->element[i]->str);
                texts[n] = strdup(x->element[i + 1]->str);
                n++;
                if (!ids[n - 1] || !texts[n - 1]) {
                        queue_outbox_free(ids, texts, n);
                        return -ENOMEM;
                }
        }
        *ret_ids = ids;
        *ret_texts = texts;
        *ret_n = n;
        return 0;
}

/* KEYS: outbox lease; ARGV: lease_ms, id... Only entries still there. */
static const char lua_outbox_renew[] = LUA_NOW_MS "for i = 2, #ARGV do "
                                                  "redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) "
                                                  "end return 0";

static int rd_outbox_renew(struct queue *q, const char *const *ids, size_t n) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *x = NULL;
        char lease[24];
        int k;

        if (n == 0)
                return 0;
        _cleanup_free_ char *leases = rd_key(r, "outbox", "lease");
        _cleanup_free_ const char **argv = calloc(n + 5, sizeof *argv);
        if (!leases || !argv)
                return -ENOMEM;
        u64_str(lease, q->o.lease_ms);
        argv[0] = "EVAL";
        argv[1] = lua_outbox_renew;
        argv[2] = "1";
        argv[3] = leases;
        argv[4] = lease;
        memcpy(argv + 5, ids, n * sizeof *ids);
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        k = rc_appendv(r, l.c, argv, (int)(n + 5));
        if (k >= 0)
                k = rc_reply(r, l.c, &x);
        if (k < 0)
                return k;
        l.ok = true;
        return x->type == REDIS_REPLY_ERROR ? rd_refused(r, "EVAL (renew the outbox's leases)", x) : 0;
}

static int rd_outbox_remove(struct queue *q, const char *id) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *a = NULL, *b = NULL;
        int k;

        if (!queue_id_is_valid(id))
                return -EINVAL;
        _cleanup_free_ char *outbox = rd_key(r, "outbox", NULL), *leases = rd_key(r, "outbox", "lease");
        if (!outbox || !leases)
                return -ENOMEM;
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        /* The text first: a lease left alone is dropped by the next claim. */
        k = rc_append(r, l.c, "HDEL", outbox, id, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "ZREM", leases, id, NULL);
        if (k >= 0)
                k = rc_reply(r, l.c, &a);
        if (k >= 0)
                k = rc_reply(r, l.c, &b);
        if (k < 0)
                return k;
        l.ok = true;
        return 0;
}

static int rd_status(struct queue *q, const char *id, struct queue_status *ret) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *g = NULL, *h = NULL;
        int k;

        if (!id || !ret)
                return -EINVAL;
        if (!queue_id_is_valid(id))
                return -ENOENT;
        _cleanup_free_ char *hash = rd_key(r, "task", id), *rkey = rd_key(r, "result", id);
        if (!hash || !rkey)
                return -ENOMEM;
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        k = rc_append(r, l.c, "GET", rkey, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "HMGET", hash, "state", "progress", NULL);
        if (k >= 0)
                k = rc_reply(r, l.c, &g);
        if (k >= 0)
                k = rc_reply(r, l.c, &h);
        if (k < 0)
                return k;
        l.ok = true;

        if (g->type == REDIS_REPLY_STRING) {
                char *res = strndup(g->str, g->len);
                if (!res)
                        return -ENOMEM;
                *ret = (struct queue_status){ .state = QUEUE_DONE, .progress = -1, .result = res };
                return 0;
        }
        if (g->type != REDIS_REPLY_NIL)
                return rd_refused(r, "GET (result)", g);
        if (h->type != REDIS_REPLY_ARRAY || h->elements != 2)
                return rd_refused(r, "HMGET (task)", h);
        const redisReply *state = h->element[0], *progress = h->element[1];
        if (!reply_is_string(state))
                return -ENOENT;
        struct queue_status s = { .state = strcmp(state->str, "running") == 0 ? QUEUE_RUNNING : QUEUE_QUEUED,
                                  .progress = -1 };
        if (reply_is_string(progress)) {
                char *end;
                double p = strtod(progress->str, &end);
                if (end != progress->str && *end == 0 && p >= 0 && p <= 1)
                        s.progress = p;
        }
        *ret = s;
        return 0;
}

static uint64_t reply_u64(const redisReply *x) {
        if (x->type == REDIS_REPLY_INTEGER)
                return x->integer > 0 ? (uint64_t)x->integer : 0;
        uint64_t v = 0;
        if (reply_is_string(x) && parse_u64(x->str, 0, UINT64_MAX, &v) < 0)
                v = 0;
        return v;
}

static int rd_stats(struct queue *q, struct queue_stats *ret) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *len = NULL, *pend = NULL, *h = NULL, *ob = NULL;
        int k;

        if (!ret)
                return -EINVAL;
        _cleanup_free_ char *stream = rd_key(r, "tasks", NULL), *stats = rd_key(r, "stats", NULL),
                            *outbox = rd_key(r, "outbox", NULL);
        if (!stream || !stats || !outbox)
                return -ENOMEM;
        k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k < 0)
                return k;
        k = rc_append(r, l.c, "XLEN", stream, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "XPENDING", stream, r->prefix, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "HGETALL", stats, NULL);
        if (k >= 0)
                k = rc_append(r, l.c, "HLEN", outbox, NULL);
        if (k >= 0)
                k = rc_reply(r, l.c, &len);
        if (k >= 0)
                k = rc_reply(r, l.c, &pend);
        if (k >= 0)
                k = rc_reply(r, l.c, &h);
        if (k >= 0)
                k = rc_reply(r, l.c, &ob);
        if (k < 0)
                return k;
        l.ok = true;

        struct queue_stats s = {};
        /* The stream holds the tasks not finished: queued and pending. */
        uint64_t in_stream = reply_u64(len);
        if (pend->type == REDIS_REPLY_ARRAY && pend->elements >= 1)
                s.pending = reply_u64(pend->element[0]);
        s.depth = in_stream > s.pending ? in_stream - s.pending : 0;
        s.outbox = reply_u64(ob);
        static const struct {
                const char *field;
                size_t offset;
        } counters[] = {
                { "enqueued", offsetof(struct queue_stats, enqueued) },
                { "claimed", offsetof(struct queue_stats, claimed) },
                { "dead_lettered", offsetof(struct queue_stats, dead_lettered) },
                { "stored", offsetof(struct queue_stats, stored) },
                { "duplicates", offsetof(struct queue_stats, duplicates) },
        };
        if (h->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i + 1 < h->elements; i += 2)
                        for (size_t j = 0; j < ELEMENTSOF(counters); j++)
                                if (reply_is_string(h->element[i]) &&
                                    strcmp(h->element[i]->str, counters[j].field) == 0) {
                                        uint64_t v = reply_u64(h->element[i + 1]);
                                        memcpy((char *)&s + counters[j].offset, &v, sizeof v);
                                }
        *ret = s;
        return 0;
}

static int rd_check(struct queue *q, char **ret_why) {
        struct queue_redis *r = (struct queue_redis *)q;
        _cleanup_rlease_ struct rlease l = {};
        _cleanup_reply_ redisReply *x = NULL;

        int k = rlease_get(r, REDIS_COMMAND_TIMEOUT_MS, &l);
        if (k >= 0)
                k = rc_command(r, l.c, &x, "PING");
        if (k >= 0) {
                l.ok = true;
                if (reply_is_string(x) && strcmp(x->str, "PONG") == 0)
                        return 0;
                k = rd_refused(r, "PING", x);
        }
        if (ret_why) {
                pthread_mutex_lock(&r->lock);
                *ret_why = r->why ? strdup(r->why) : strdup_printf("redis at %s: %s", r->addr, strerror(-k));
                pthread_mutex_unlock(&r->lock);
        }
        return -ENOTCONN;
}

static void rd_free(struct queue *q) {
        struct queue_redis *r = (struct queue_redis *)q;

        while (r->pool) {
                struct rconn *c = r->pool;
                r->pool = c->next;
                rconn_free(c);
        }
        pthread_mutex_destroy(&r->lock);
        free(r->prefix);
        free(r->host);
        free(r->path);
        free(r->user);
        if (r->password)
                explicit_bzero(r->password, strlen(r->password));
        free(r->password);
        free(r->addr);
        free(r->why);
        free(r);
}

static const struct queue_ops redis_ops = {
        .name = "redis",
        .persistent = true,
        .enqueue = rd_enqueue,
        .remember = rd_remember,
        .forget = rd_forget,
        .take = rd_take,
        .touch = rd_touch,
        .finish = rd_finish,
        .outbox_claim = rd_outbox_claim,
        .outbox_renew = rd_outbox_renew,
        .outbox_remove = rd_outbox_remove,
        .status = rd_status,
        .stats = rd_stats,
        .check = rd_check,
        .free = rd_free,
};

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* s[0..n) with %XX decoded; NULL on a bad escape or a NUL. */
static char *percent_decode(const char *s, size_t n) {
        char *d = malloc(n + 1), *o = d;
        if (!d)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        *o++ = s[i];
                        continue;
                }
                int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                        free(d);
                        return NULL;
                }
                *o++ = (char)(hi * 16 + lo);
                i += 2;
        }
        *o = 0;
        return d;
}

/* Parse url into r (host, port, path, user, password, db, addr). */
static int rd_parse_url(struct queue_redis *r, const char *url, char **ret_why) {
        static const char usage[] = "redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH";

        if (strncmp(url, "unix://", 7) == 0) {
                const char *path = url + 7;
                if (path[0] != '/') {
                        *ret_why = strdup_printf("queue URL: the Unix socket's path must be absolute (%s)", usage);
                        return -EINVAL;
                }
                if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
                        *ret_why = strdup_printf("queue URL: the Unix socket's path is longer than %zu bytes",
                                                 sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
                        return -EINVAL;
                }
                r->path = strdup(path);
                r->addr = strdup_printf("unix:%s", path);
                return r->path && r->addr ? 0 : -ENOMEM;
        }
        if (strncmp(url, "rediss://", 9) == 0) {
                *ret_why = strdup_printf("queue URL: TLS (rediss://) is not supported; use %s", usage);
                return -EINVAL;
        }
        if (strncmp(url, "redis://", 8) != 0) {
                *ret_why = strdup_printf("queue URL must be %s", usage);
                return -EINVAL;
        }

        const char *s = url + 8;
        /* The password may hold '/' or '@' percent-encoded only; the last
         * '@' ends it. */
        const char *at = strrchr(s, '@');
        if (at) {
                const char *colon = memchr(s, ':', (size_t)(at - s));
                if (!colon) {
                        *ret_why = strdup_printf("queue URL: the password goes after a colon: redis://:PASSWORD@HOST");
                        return -EINVAL;
                }
                if (colon > s && !(r->user = percent_decode(s, (size_t)(colon - s)))) {
                        *ret_why = strdup_printf("queue URL: bad %%-escape in the user name");
                        return -EINVAL;
                }
                if (!(r->password = percent_decode(colon + 1, (size_t)(at - colon - 1)))) {
                        *ret_why = strdup_printf("queue URL: bad %%-escape in the password");
                        return -EINVAL;
                }
                if (!r->password[0]) {
                        *ret_why = strdup_printf("queue URL: the password is empty");
                        return -EINVAL;
                }
                s = at + 1;
        }

        const char *host_end, *rest;
        bool v6 = s[0] == '[';
        if (v6) {
                const char *close = strchr(s, ']');
                if (!close || close == s + 1) {
                        *ret_why = strdup_printf("queue URL: an IPv6 address goes in brackets: redis://[::1]:6379");
                        return -EINVAL;
                }
                r->host = strndup(s + 1, (size_t)(close - s - 1));
                host_end = close + 1;
        } else {
                host_end = s + strcspn(s, ":/");
                r->host = strndup(s, (size_t)(host_end - s));
        }
        if (!r->host)
                return -ENOMEM;
        const char *allowed = v6 ? "0123456789abcdefABCDEF:."
                                 : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
        if (!r->host[0] || strspn(r->host, allowed) != strlen(r->host)) {
                *ret_why = strdup_printf("queue URL: bad host '%s' (%s)", r->host, usage);
                return -EINVAL;
        }

        r->port = REDIS_DEFAULT_PORT;
        rest = host_end;
        if (*rest == ':') {
                size_t n = strcspn(rest + 1, "/");
                _cleanup_free_ char *port = strndup(rest + 1, n);
                uint64_t p;
                if (!port)
                        return -ENOMEM;
                if (parse_u64(port, 1, 65535, &p) < 0) {
                        *ret_why = strdup_printf("queue URL: the port must be 1 to 65535, got '%s'", port);
                        return -EINVAL;
                }
                r->port = (unsigned)p;
                rest += 1 + n;
        }
        if (*rest == '/' && rest[1]) {
                if (parse_u64(rest + 1, 0, INT32_MAX, &r->db) < 0) {
                        *ret_why = strdup_printf("queue URL: the database must be a number, got '%s'", rest + 1);
                        return -EINVAL;
                }
        } else if (*rest && strcmp(rest, "/") != 0) {
                *ret_why = strdup_printf("queue URL: unexpected '%s' after the host (%s)", rest, usage);
                return -EINVAL;
        }
        r->addr = strdup_printf(v6 ? "[%s]:%u" : "%s:%u", r->host, r->port);
        return r->addr ? 0 : -ENOMEM;
}

int queue_redis_new(const char *url, const struct queue_options *o, struct queue **ret, char **ret_why) {
        _cleanup_free_ char *why = NULL;
        int k;

        if (!url || !o || !ret)
                return -EINVAL;
        const char *prefix = o->name && o->name[0] ? o->name : "pyexec";
        /* The prefix names keys and the consumer group. */
        if (strlen(prefix) > 64 ||
            strspn(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(prefix)) {
                if (ret_why)
                        *ret_why = strdup_printf("queue name must be 1 to 64 of [A-Za-z0-9._-], got '%s'", prefix);
                return -EINVAL;
        }

        struct queue_redis *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->q.ops = &redis_ops;
        r->q.o = *o;
        pthread_mutex_init(&r->lock, NULL);
        r->prefix = strdup(prefix);
        r->q.o.name = r->prefix;
        k = r->prefix ? rd_parse_url(r, url, &why) : -ENOMEM;
        if (k >= 0)
                k = hiredis_load(&why);
        if (k < 0) {
                rd_free(&r->q);
                if (ret_why)
                        *ret_why = TAKE_PTR(why);
                return k;
        }
        *ret = &r->q;
        return 0;
}
