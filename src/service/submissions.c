/* SPDX-License-Identifier: MIT */
#include "submissions.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "jobs-progress.h"
#include "log.h"
#include "reply.h"
#include "result.h"
#include "sha256.h"
#include "util.h"
#include "webhook.h"

/* How often a waiting POST looks at the queue when no worker of this
 * process tells it that something finished (the results may come from
 * another machine's worker): only while someone waits. And how often the
 * queue's health is checked. */
#define WAIT_POLL_NS (1ull * 1000000ull)
#define HEALTH_EVERY_NS (1000ull * 1000000ull)
/* A worker that finds the queue unreachable tries again after this. */
#define UNREACHABLE_PAUSE_NS (500ull * 1000000ull)
#define IDEMPOTENCY_KEY_MAX 255

struct waiter {
        const struct submissions_accepted *acc;
        uint64_t deadline_ns;
        void (*done)(void *ctx);
        void *ctx;
        struct waiter *next;
};

struct submissions {
        struct submissions_env env;
        struct queue *q;
        struct webhook_options wo;
        struct webhooks *hooks; /* NULL: callbacks off */
        pthread_t *workers;
        size_t n_workers;
        atomic_bool stop;
        char consumer_prefix[128];

        pthread_mutex_t lock; /* everything below */
        pthread_cond_t cond;
        struct waiter *waiters;
        bool finished; /* a worker of this process finished one since the waiter thread last looked */
        bool stop_waiter;
        char *unready; /* why the queue cannot be used, NULL: it can */
        pthread_t waiter_thread;
        bool waiter_started;

        /* Counts of this process. */
        atomic_ullong accepted, batches, replayed, ran, unreachable_refusals, callbacks_taken_over;

        /* The callbacks this process delivers from the queue's outbox
         * (where it has one): their leases are renewed until each is
         * delivered, given up or abandoned. */
        pthread_mutex_t held_lock;
        char (*held)[QUEUE_ID_LEN + 1];
        size_t n_held, held_cap;
        pthread_t outbox_thread;
        bool outbox_started;
};

static const char *const kind_execute = "execute", *const kind_job = "job";

/* ---- replies -------------------------------------------------------------- */

void submissions_reply_done(struct submissions_reply *r) {
        json_decref(r->body);
        json_decref(r->log);
        *r = (struct submissions_reply){ 0 };
}

void submissions_accepted_done(struct submissions_accepted *a) {
        free(a->ids);
        *a = (struct submissions_accepted){ 0 };
}

static int refuse(struct submissions_reply *r, unsigned http, const char *code, const char *field, unsigned retry_s,
                  const char *fmt, ...) _printf_(6, 7);

static int refuse(struct submissions_reply *r, unsigned http, const char *code, const char *field, unsigned retry_s,
                  const char *fmt, ...) {
        struct api_error e = { .http = http, .code = code };
        va_list ap;
        snprintf(e.field, sizeof e.field, "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof e.message, fmt, ap);
        va_end(ap);
        r->http = http;
        r->body = api_error_json(&e);
        r->retry_after_s = retry_s;
        r->log = json_pack("{s:s,s:s}", "error", e.message, "field", e.field);
        return http == 503 ? -ENOTCONN : -EINVAL;
}

/* The stored form of a result: what /api/execute (or the job) would have
 * answered, and with which status code. */
static char *stored_result(unsigned http, json_t *result) {
        json_t *o = json_pack("{s:i,s:O}", "httpStatus", (int)http, "result", result);
        char *s = o ? json_dumps(o, RESULT_JSON_FLAGS) : NULL;
        json_decref(o);
        return s;
}

static int new_id(char out[QUEUE_ID_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[QUEUE_ID_LEN / 2];
        /* The id is all a caller needs to read the result: unguessable,
         * so no fallback to anything weaker than the kernel's random. */
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
                return -errno;
        for (size_t i = 0; i < sizeof raw; i++) {
                out[2 * i] = hex[raw[i] >> 4];
                out[2 * i + 1] = hex[raw[i] & 15];
        }
        out[QUEUE_ID_LEN] = 0;
        return 0;
}

static bool id_is_valid(const char *id, size_t n) {
        if (n != QUEUE_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

/* ---- describing submissions ------------------------------------------------ */

/* {"id", "state", ["progress"], ["httpStatus", "result"]}; *ret_done. */
static json_t *describe_one(struct submissions *s, const char *id, bool *ret_done) {
        struct queue_status st = { 0 };
        json_t *o;
        int r = s->q->ops->status(s->q, id, &st);

        *ret_done = false;
        if (r == -ENOENT)
                return json_pack("{s:s,s:s}", "id", id, "state", "unknown");
        if (r < 0)
                return json_pack("{s:s,s:s,s:s}", "id", id, "state", "unavailable", "error", strerror(-r));
        o = json_pack("{s:s,s:s}", "id", id, "state", queue_state_to_string(st.state));
        if (o && st.progress >= 0 && st.state != QUEUE_DONE)
                json_object_set_new(o, "progress", json_real(st.progress));
        if (o && st.state == QUEUE_DONE && st.result) {
                json_t *stored = json_loads(st.result, 0, NULL);
                if (stored) {
                        json_object_set(o, "httpStatus", json_object_get(stored, "httpStatus"));
                        json_object_set(o, "result", json_object_get(stored, "result"));
                        json_decref(stored);
                }
                *ret_done = true;
        }
        queue_status_done(&st);
        return o;
}

void submissions_describe(struct submissions *s, const struct submissions_accepted *a, struct submissions_reply *ret) {
        bool all_done = true;
        json_t *list = json_array();

        for (size_t i = 0; i < a->n; i++) {
                bool done;
                json_array_append_new(list, describe_one(s, a->ids[i], &done));
                all_done = all_done && done;
        }
        ret->http = all_done ? 200 : 202;
        if (a->batch)
                ret->body = json_pack("{s:o}", "submissions", list);
        else {
                ret->body = json_incref(json_array_get(list, 0));
                json_decref(list);
        }
        ret->log = json_pack("{s:I,s:b}", "submissions", (json_int_t)a->n, "done", all_done);
}

void submissions_get(struct submissions *s, const char *id, struct submissions_reply *ret) {
        bool done;
        json_t *o;

        if (!id_is_valid(id, strlen(id))) {
                refuse(ret, 404, "not_found", NULL, 0, "no submission '%.64s' (ids are %d lowercase hex digits)", id,
                       QUEUE_ID_LEN);
                return;
        }
        o = describe_one(s, id, &done);
        if (json_is_string(json_object_get(o, "state")) &&
            strcmp(json_string_value(json_object_get(o, "state")), "unknown") == 0) {
                json_decref(o);
                refuse(ret, 404, "not_found", NULL, 0, "no submission '%s' (never queued, or its result expired)", id);
                return;
        }
        if (json_is_string(json_object_get(o, "state")) &&
            strcmp(json_string_value(json_object_get(o, "state")), "unavailable") == 0) {
                json_decref(o);
                refuse(ret, 503, "queue_unavailable", NULL, 1, "the queue cannot be reached: %s",
                       s->unready ? s->unready : "try again");
                return;
        }
        ret->http = 200;
        ret->body = o;
}

void submissions_get_many(struct submissions *s, const char *ids, struct submissions_reply *ret) {
        struct submissions_accepted a = { .batch = true };
        size_t cap = 0;

        for (const char *p = ids; *p;) {
                size_t n = strcspn(p, ",");
                if (!id_is_valid(p, n)) {
                        refuse(ret, 400, "invalid_request", "ids", 0,
                               "ids must be comma-separated submission ids (%d lowercase hex digits each)",
                               QUEUE_ID_LEN);
                        submissions_accepted_done(&a);
                        return;
                }
                if (a.n == s->env.cfg->max_batch) {
                        refuse(ret, 413, "batch_too_large", "ids", 0, "at most %llu ids at once (MAX_BATCH)",
                               (unsigned long long)s->env.cfg->max_batch);
                        submissions_accepted_done(&a);
                        return;
                }
                if (a.n == cap) {
                        void *v = realloc(a.ids, (cap = cap ? cap * 2 : 16) * sizeof *a.ids);
                        if (!v) {
                                refuse(ret, 500, "internal_error", NULL, 0, "out of memory");
                                submissions_accepted_done(&a);
                                return;
                        }
                        a.ids = v;
                }
                memcpy(a.ids[a.n], p, n);
                a.ids[a.n++][n] = 0;
                p += n;
                if (*p == ',')
                        p++;
        }
        if (a.n == 0) {
                refuse(ret, 400, "invalid_request", "ids", 0, "GET /api/submissions needs ?ids=ID,ID,...");
                return;
        }
        submissions_describe(s, &a, ret);
        ret->http = 200;
        submissions_accepted_done(&a);
}

/* ---- accepting -------------------------------------------------------------- */

/* The callbackUrl of one submission (or the batch's), checked now. */
static int take_callback(struct submissions *s, json_t *item, const char *field, json_t *batch_cb, json_t **ret_cb,
                         struct submissions_reply *r) {
        json_t *cb = json_object_get(item, "callbackUrl");
        _cleanup_free_ char *why = NULL;
        int k;

        if (!cb)
                cb = batch_cb;
        *ret_cb = NULL;
        if (!cb || json_is_null(cb))
                return 0;
        if (!json_is_string(cb))
                return refuse(r, 400, "invalid_callback_url", field, 0, "callbackUrl must be a string");
        if (!s->hooks)
                return refuse(r, 400, "invalid_callback_url", field, 0,
                              "callbacks are off: CALLBACK_ALLOWED_HOSTS names no host");
        k = webhook_check_url(&s->wo, json_string_value(cb), &why);
        if (k < 0)
                return refuse(r, 400, "invalid_callback_url", field, 0, "callbackUrl refused: %s",
                              why ? why : strerror(-k));
        *ret_cb = cb;
        return 0;
}

/* One execute request, validated as /api/execute would; its task. */
static int make_execute_task(struct submissions *s, json_t *item, const char *prefix, json_t *batch_cb,
                             json_t **ret_task, uint64_t *units, struct submissions_reply *r) {
        char field[160];
        json_t *cb, *req;
        _cleanup_free_ char *text = NULL;
        struct api_request ar = { 0 };
        struct api_error err = { 0 };
        int k;

        snprintf(field, sizeof field, "%scallbackUrl", prefix);
        if (!json_is_object(item))
                return refuse(r, 400, "invalid_request", prefix[0] ? prefix : NULL, 0,
                              "%s must be an object with the fields of /api/execute", prefix[0] ? prefix : "the body");
        if ((k = take_callback(s, item, field, batch_cb, &cb, r)) < 0)
                return k;
        req = json_deep_copy(item);
        if (!req)
                return refuse(r, 500, "internal_error", NULL, 0, "out of memory");
        json_object_del(req, "callbackUrl");
        text = json_dumps(req, JSON_COMPACT);
        if (!text || api_parse_execute(text, strlen(text), s->env.cfg, &ar, &err) < 0) {
                json_decref(req);
                if (!text)
                        return refuse(r, 500, "internal_error", NULL, 0, "out of memory");
                snprintf(field, sizeof field, "%s%s", prefix, err.field);
                return refuse(r, err.http, err.code, field[0] ? field : NULL, 0, "%s%s%s", prefix,
                              prefix[0] ? ": " : "", err.message);
        }
        *units += ar.n_cases ? ar.n_cases : 1;
        api_request_done(&ar);
        *ret_task = json_pack("{s:s,s:o,s:O?}", "kind", kind_execute, "request", req, "callbackUrl", cb);
        return *ret_task ? 0 : refuse(r, 500, "internal_error", NULL, 0, "out of memory");
}

/* {"params": {...}, "async": true, ["callbackUrl"]} for the job. */
static int make_job_task(struct submissions *s, json_t *doc, const char *name, json_t **ret_task,
                         struct submissions_reply *r) {
        const char *k;
        json_t *v, *params = json_object_get(doc, "params"), *cb;
        int e;

        if (!jobs_find(s->env.jobs, name))
                return refuse(r, 404, "not_found", NULL, 0, "no job named '%.64s'", name);
        json_object_foreach(doc, k, v) {
                if (strcmp(k, "params") && strcmp(k, "async") && strcmp(k, "callbackUrl"))
                        return refuse(r, 400, "invalid_request", k, 0,
                                      "unknown field '%.64s': an asynchronous job takes params, async and callbackUrl",
                                      k);
        }
        if (!json_is_object(params))
                return refuse(r, 400, "invalid_request", "params", 0, "params must be an object");
        json_object_foreach(params, k, v) {
                if (json_is_object(v) || json_is_array(v) || json_is_null(v)) {
                        char f[96];
                        snprintf(f, sizeof f, "params.%.80s", k);
                        return refuse(r, 400, "invalid_parameter", f, 0,
                                      "parameter '%.80s' must be a string, number or boolean", k);
                }
        }
        if ((e = take_callback(s, doc, "callbackUrl", NULL, &cb, r)) < 0)
                return e;
        *ret_task = json_pack("{s:s,s:s,s:O,s:O?}", "kind", kind_job, "job", name, "params", params, "callbackUrl", cb);
        return *ret_task ? 0 : refuse(r, 500, "internal_error", NULL, 0, "out of memory");
}

static bool idempotency_key_is_valid(const char *k) {
        size_t n = strlen(k);
        if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (k[i] < 0x21 || k[i] > 0x7e)
                        return false;
        return true;
}

/* The ids an Idempotency-Key stands for, as remembered. */
static int accepted_from_json(const char *text, struct submissions_accepted *a) {
        json_t *o = json_loads(text, 0, NULL), *ids = json_object_get(o, "ids"), *v;
        size_t i;

        if (!json_is_array(ids) || json_array_size(ids) == 0) {
                json_decref(o);
                return -EBADMSG;
        }
        a->batch = json_is_true(json_object_get(o, "batch"));
        a->n = json_array_size(ids);
        a->ids = calloc(a->n, sizeof *a->ids);
        if (!a->ids) {
                json_decref(o);
                return -ENOMEM;
        }
        json_array_foreach(ids, i, v) {
                if (!json_is_string(v) || !id_is_valid(json_string_value(v), strlen(json_string_value(v)))) {
                        json_decref(o);
                        submissions_accepted_done(a);
                        return -EBADMSG;
                }
                memcpy(a->ids[i], json_string_value(v), QUEUE_ID_LEN + 1);
        }
        json_decref(o);
        return 0;
}

static char *accepted_to_json(const struct submissions_accepted *a) {
        json_t *ids = json_array(), *o;
        char *s;
        for (size_t i = 0; i < a->n; i++)
                json_array_append_new(ids, json_string(a->ids[i]));
        o = json_pack("{s:o,s:b}", "ids", ids, "batch", a->batch);
        s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return s;
}

static void fingerprint(const char *job, const char *body, size_t len, char out[65]) {
        struct sha256 h;
        unsigned char d[32];
        sha256_init(&h);
        sha256_update(&h, job ? job : "", job ? strlen(job) : 0);
        sha256_update(&h, "\n", 1);
        sha256_update(&h, body, len);
        sha256_final(&h, d);
        sha256_hex(d, out);
}

static int unreachable(struct submissions *s, struct submissions_reply *r, int err, const char *what) {
        atomic_fetch_add(&s->unreachable_refusals, 1);
        if (err == -ENOTCONN)
                return refuse(r, 503, "queue_unavailable", NULL, 1, "%s: the queue (%s) cannot be reached; try again",
                              what, s->q->ops->name);
        return refuse(r, 500, "internal_error", NULL, 0, "%s: %s", what, strerror(-err));
}

/* QUEUE_MAX_DEPTH: whether n more would exceed it (the refusal in r). */
static bool queue_would_overflow(struct submissions *s, size_t n, struct submissions_reply *r) {
        struct queue_stats st = { 0 };
        uint64_t max = s->env.cfg->queue_max_depth;
        int k = s->q->ops->stats(s->q, &st);
        if (k < 0) {
                unreachable(s, r, k, "cannot queue the submissions");
                return true;
        }
        if (st.depth + n <= max)
                return false;
        refuse(r, 503, "queue_full", NULL, 1,
               "the submissions queue holds %llu waiting submissions and takes at most %llu (QUEUE_MAX_DEPTH); try "
               "again",
               (unsigned long long)st.depth, (unsigned long long)max);
        return true;
}

/* The tasks of a body (one, a batch, or a job's), in *ret_tasks (n of
 * them, each to json_decref). */
static int make_tasks(struct submissions *s, json_t *doc, const char *job, json_t ***ret_tasks, size_t *ret_n,
                      bool *ret_batch, uint64_t *units, struct submissions_reply *r) {
        const struct config *cfg = s->env.cfg;
        json_t *list = json_object_get(doc, "submissions"), *batch_cb = NULL, **tasks, *item;
        const char *key;
        size_t n, i;
        int k = 0;

        *ret_batch = list != NULL && !job;
        if (!json_is_object(doc))
                return refuse(r, 400, "invalid_request", NULL, 0, "the body must be a JSON object");
        if (*ret_batch) {
                json_t *v;
                json_object_foreach(doc, key, v) {
                        if (strcmp(key, "submissions") && strcmp(key, "callbackUrl"))
                                return refuse(r, 400, "invalid_request", key, 0,
                                              "unknown field '%.64s': a batch is {\"submissions\": [...]} with an "
                                              "optional callbackUrl for all",
                                              key);
                }
                if (!json_is_array(list) || json_array_size(list) == 0)
                        return refuse(r, 400, "invalid_request", "submissions", 0,
                                      "submissions must be a non-empty array of /api/execute requests");
                if (json_array_size(list) > cfg->max_batch)
                        return refuse(r, 413, "batch_too_large", "submissions", 0,
                                      "a batch of %zu submissions: at most %llu (MAX_BATCH)", json_array_size(list),
                                      (unsigned long long)cfg->max_batch);
                batch_cb = json_object_get(doc, "callbackUrl");
        }
        n = *ret_batch ? json_array_size(list) : 1;
        tasks = calloc(n, sizeof *tasks);
        if (!tasks)
                return refuse(r, 500, "internal_error", NULL, 0, "out of memory");
        if (job)
                k = make_job_task(s, doc, job, &tasks[0], r), *units = 1;
        else if (!*ret_batch)
                k = make_execute_task(s, doc, "", NULL, &tasks[0], units, r);
        else
                json_array_foreach(list, i, item) {
                        char prefix[40];
                        snprintf(prefix, sizeof prefix, "submissions[%zu].", i);
                        if ((k = make_execute_task(s, item, prefix, batch_cb, &tasks[i], units, r)) < 0)
                                break;
                }
        if (k < 0) {
                for (i = 0; i < n; i++)
                        json_decref(tasks[i]);
                free(tasks);
                return k;
        }
        *ret_tasks = tasks;
        *ret_n = n;
        return 0;
}

int submissions_accept(struct submissions *s, const char *body, size_t len, const char *job, const char *idem_key,
                       int (*admit)(void *ctx, const json_t *doc, uint64_t units), void *ctx,
                       struct submissions_accepted *ret_acc, struct submissions_reply *r) {
        struct submissions_accepted a = { 0 };
        json_auto_t *doc = NULL;
        json_t **tasks = NULL;
        json_error_t jerr;
        char fp[65], **texts = NULL;
        const char **ids = NULL;
        _cleanup_free_ char *remembered = NULL, *value = NULL;
        bool key_new = false;
        uint64_t units = 0;
        size_t n = 0;
        int k;

        if (idem_key && !idempotency_key_is_valid(idem_key))
                return refuse(r, 400, "invalid_idempotency_key", NULL, 0,
                              "Idempotency-Key must be 1 to %d visible ASCII characters", IDEMPOTENCY_KEY_MAX);
        if (!utf8_is_valid(body ? body : "", len))
                return refuse(r, 400, "invalid_request", NULL, 0, "the request body is not valid UTF-8");
        doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return refuse(r, 400, "invalid_request", NULL, 0, "malformed JSON: %s (line %d, column %d)", jerr.text,
                              jerr.line, jerr.column);
        k = make_tasks(s, doc, job, &tasks, &n, &a.batch, &units, r);
        if (k < 0)
                return k;

        a.n = n;
        a.ids = calloc(n, sizeof *a.ids);
        ids = calloc(n, sizeof *ids);
        texts = calloc(n, sizeof *texts);
        k = a.ids && ids && texts ? 0 : -ENOMEM;
        for (size_t i = 0; i < n && k == 0; i++) {
                if ((k = new_id(a.ids[i])) < 0)
                        break;
                ids[i] = a.ids[i];
                json_object_set_new(tasks[i], "id", json_string(a.ids[i]));
                json_object_set_new(tasks[i], "createdMs", json_integer((json_int_t)time(NULL) * 1000));
                if (!(texts[i] = json_dumps(tasks[i], JSON_COMPACT)))
                        k = -ENOMEM;
        }
        if (k < 0) {
                refuse(r, 500, "internal_error", NULL, 0, "cannot queue the submissions: %s", strerror(-k));
                goto out;
        }

        if (idem_key) {
                fingerprint(job, body ? body : "", len, fp);
                value = accepted_to_json(&a);
                k = value ? s->q->ops->remember(s->q, idem_key, fp, value, &remembered) : -ENOMEM;
                if (k == 1) {
                        /* The same request again: the same submissions. */
                        submissions_accepted_done(&a);
                        k = accepted_from_json(remembered, &a);
                        if (k < 0) {
                                refuse(r, 500, "internal_error", NULL, 0, "the Idempotency-Key's record is damaged");
                                goto out;
                        }
                        atomic_fetch_add(&s->replayed, 1);
                        r->replayed = true;
                        k = 0;
                        goto out;
                }
                if (k == -EEXIST) {
                        k = refuse(r, 409, "idempotency_key_reused", NULL, 0,
                                   "this Idempotency-Key was used with another request body");
                        goto out;
                }
                if (k < 0) {
                        k = unreachable(s, r, k, "cannot record the Idempotency-Key");
                        goto out;
                }
                key_new = true;
        }
        if (queue_would_overflow(s, n, r)) {
                k = -ENOSPC;
                if (key_new)
                        (void)s->q->ops->forget(s->q, idem_key);
                goto out;
        }
        if (admit && (k = admit(ctx, doc, units)) < 0) {
                if (key_new)
                        (void)s->q->ops->forget(s->q, idem_key);
                goto out;
        }
        k = s->q->ops->enqueue(s->q, ids, (const char *const *)texts, n);
        if (k < 0) {
                if (key_new)
                        (void)s->q->ops->forget(s->q, idem_key);
                k = unreachable(s, r, k, "cannot queue the submissions");
                goto out;
        }
        atomic_fetch_add(&s->accepted, n);
        if (a.batch)
                atomic_fetch_add(&s->batches, 1);
        for (size_t i = 0; i < n; i++)
                log_event(LOG_INFO, "submission queued",
                          json_pack("{s:s,s:s,s:s?,s:b}", "submission", a.ids[i], "kind",
                                    json_string_value(json_object_get(tasks[i], "kind")), "job", job, "callback",
                                    json_object_get(tasks[i], "callbackUrl") != NULL));
out:
        for (size_t i = 0; i < n; i++) {
                json_decref(tasks[i]);
                if (texts)
                        free(texts[i]);
        }
        free(tasks);
        free(texts);
        free(ids);
        if (k < 0) {
                submissions_accepted_done(&a);
                return k;
        }
        *ret_acc = a;
        return 0;
}

/* ---- workers ------------------------------------------------------------------- */

/* One task run through the execution slots. */
struct run {
        struct executor_task work;
        struct submissions *s;
        const char *id;
        json_t *task;
        json_t *response;
        unsigned http;
        pthread_mutex_t m;
        pthread_cond_t c;
        bool done;
        /* A job's progress (jobs-progress.h), reported on the slot's
         * thread; run_task() records it in the queue, at most every
         * PROGRESS_EVERY_NS. */
        struct job_progress progress;
        double progress_new; /* < 0: nothing new */
};

#define PROGRESS_EVERY_NS (200 * 1000000ull)

static void progress_report(void *userdata, double fraction) {
        struct run *rn = userdata;
        pthread_mutex_lock(&rn->m);
        rn->progress_new = fraction;
        pthread_cond_signal(&rn->c);
        pthread_mutex_unlock(&rn->m);
}

static void observe(void *userdata, const struct pyexec_result *res, double run_ms) {
        struct run *rn = userdata;
        if (rn->s->env.metrics)
                metrics_execution(rn->s->env.metrics, res->status, res->wall_ms, run_ms);
}

static void run_execute(struct run *rn) {
        struct submissions *s = rn->s;
        _cleanup_free_ char *text = json_dumps(json_object_get(rn->task, "request"), JSON_COMPACT);
        struct api_request req = { 0 };
        struct api_error err = { 0 };
        struct api_outcome o = { 0 };
        const struct api_hooks hooks = { .observe = observe, .userdata = rn };

        /* Validated when accepted; a worker configured with smaller
         * limits than the instance that accepted it may still refuse. */
        if (!text || api_parse_execute(text, strlen(text), s->env.cfg, &req, &err) < 0) {
                if (!text)
                        api_error_set(&err, 500, "internal_error", NULL, "out of memory");
                rn->response = api_error_json(&err);
                rn->http = err.http;
                executor_report_nothing_ran(s->env.ex);
                return;
        }
        rn->response = api_execute(s->env.sb, s->env.cfg, &req, rn->id, &hooks, &o);
        rn->http = o.http;
        executor_report(s->env.ex, o.sandbox_failed);
        api_request_done(&req);
}

static void run_job(struct run *rn) {
        struct submissions *s = rn->s;
        const char *name = json_string_value(json_object_get(rn->task, "job"));
        const struct job *j = name ? jobs_find(s->env.jobs, name) : NULL;
        struct api_error err = { 0 };
        struct api_outcome o = { 0 };

        if (!j) {
                api_error_set(&err, 404, "not_found", NULL, "no job named '%.64s' on the worker that took it",
                              name ? name : "?");
                rn->response = api_error_json(&err);
                rn->http = err.http;
                executor_report_nothing_ran(s->env.ex);
                return;
        }
        rn->progress = (struct job_progress){ .report = progress_report, .userdata = rn };
        if (job_run(s->env.sb, j, json_object_get(rn->task, "params"), rn->id, &rn->progress, &rn->response, &o, &err) <
            0) {
                json_decref(rn->response);
                rn->response = api_error_json(&err);
                rn->http = err.http;
                executor_report_nothing_ran(s->env.ex);
                return;
        }
        rn->http = o.http;
        executor_report(s->env.ex, o.sandbox_failed);
        if (s->env.metrics)
                metrics_execution(s->env.metrics, o.status, o.wall_ms, o.wall_ms);
}

static void run_on_slot(struct executor_task *w) {
        struct run *rn = (struct run *)((char *)w - offsetof(struct run, work));
        const char *kind = json_string_value(json_object_get(rn->task, "kind"));
        if (kind && strcmp(kind, kind_job) == 0)
                run_job(rn);
        else
                run_execute(rn);
}

static bool never_abandoned(struct executor_task *w) {
        (void)w;
        return false;
}

static void run_complete(struct executor_task *w) {
        struct run *rn = (struct run *)((char *)w - offsetof(struct run, work));
        pthread_mutex_lock(&rn->m);
        rn->done = true;
        pthread_cond_signal(&rn->c);
        pthread_mutex_unlock(&rn->m);
}

static uint64_t touch_every_ns(const struct submissions *s) {
        return s->q->o.lease_ms * 1000000ull / 3;
}

static void wait_ns(uint64_t ns) {
        nanosleep(&(struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) },
                  NULL);
}

/* Run it on a slot, keeping the lease meanwhile. -ESHUTDOWN: the service
 * is stopping and it was not run (its lease runs out and another worker
 * takes it, or this one after a restart). */
static int run_task(struct submissions *s, struct queue_item *it, json_t *task, json_t **ret_response,
                    unsigned *ret_http) {
        struct run rn = { .s = s, .id = it->id, .task = task, .progress_new = -1 };
        uint64_t next_touch = now_ns() + touch_every_ns(s), progress_at = 0;

        rn.work = (struct executor_task){ .run = run_on_slot, .abandoned = never_abandoned, .complete = run_complete };
        pthread_mutex_init(&rn.m, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&rn.c, &ca);
        pthread_condattr_destroy(&ca);
        for (;;) {
                uint64_t retry = 0;
                enum submit_result sr = executor_submit(s->env.ex, &rn.work, &retry);
                if (sr == SUBMIT_OK)
                        break;
                if (sr == SUBMIT_CLOSED || atomic_load(&s->stop)) {
                        pthread_cond_destroy(&rn.c);
                        pthread_mutex_destroy(&rn.m);
                        return -ESHUTDOWN;
                }
                /* Slots and their queue full of synchronous requests, or
                 * the breaker open: wait, holding the lease. */
                wait_ns(retry && retry < 100 ? retry * 1000000ull : 100000000ull);
                if (now_ns() >= next_touch) {
                        (void)s->q->ops->touch(s->q, it, -1);
                        next_touch = now_ns() + touch_every_ns(s);
                }
        }
        /* Wait for the end, renewing the lease every third of it and
         * recording new progress no more often than PROGRESS_EVERY_NS. */
        pthread_mutex_lock(&rn.m);
        while (!rn.done) {
                struct timespec ts;
                uint64_t t = next_touch, now;
                double progress = -1;
                if (rn.progress_new >= 0 && progress_at + PROGRESS_EVERY_NS < t)
                        t = progress_at + PROGRESS_EVERY_NS;
                ts.tv_sec = (time_t)(t / 1000000000ull);
                ts.tv_nsec = (long)(t % 1000000000ull);
                pthread_cond_timedwait(&rn.c, &rn.m, &ts);
                if (rn.done)
                        break;
                now = now_ns();
                if (rn.progress_new >= 0 && now >= progress_at + PROGRESS_EVERY_NS) {
                        progress = rn.progress_new;
                        rn.progress_new = -1;
                } else if (now < next_touch)
                        continue;
                pthread_mutex_unlock(&rn.m);
                (void)s->q->ops->touch(s->q, it, progress);
                pthread_mutex_lock(&rn.m);
                now = now_ns();
                next_touch = now + touch_every_ns(s);
                if (progress >= 0)
                        progress_at = now;
        }
        pthread_mutex_unlock(&rn.m);
        pthread_cond_destroy(&rn.c);
        pthread_mutex_destroy(&rn.m);
        *ret_response = rn.response;
        *ret_http = rn.http;
        return 0;
}

static void notify_finished(struct submissions *s) {
        pthread_mutex_lock(&s->lock);
        s->finished = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

/* ---- callbacks ------------------------------------------------------------------- */

/* The callback's body (Standard Webhooks: type, timestamp, data). */
static char *callback_body(const char *id, unsigned http, json_t *response) {
        char ts[40];
        time_t now = time(NULL);
        struct tm tm;
        json_t *o;
        char *text;

        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        o = json_pack("{s:s,s:s,s:{s:s,s:s,s:i,s:O}}", "type", "submission.done", "timestamp", ts, "data", "id", id,
                      "state", "done", "httpStatus", (int)http, "result", response);
        text = o ? json_dumps(o, RESULT_JSON_FLAGS) : NULL;
        json_decref(o);
        return text;
}

static uint64_t unix_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool has_outbox(const struct submissions *s) {
        return s->q->ops->outbox_claim && s->q->ops->outbox_renew && s->q->ops->outbox_remove;
}

static void held_add(struct submissions *s, const char *id) {
        pthread_mutex_lock(&s->held_lock);
        if (s->n_held == s->held_cap) {
                size_t cap = s->held_cap ? 2 * s->held_cap : 64;
                void *n = realloc(s->held, cap * sizeof *s->held);
                if (n)
                        s->held = n, s->held_cap = cap;
        }
        /* Without room its lease is not renewed: another claim takes it
         * over, and the receiver may get it twice (same webhook-id). */
        if (s->n_held < s->held_cap)
                memcpy(s->held[s->n_held++], id, QUEUE_ID_LEN + 1);
        pthread_mutex_unlock(&s->held_lock);
}

static void held_remove(struct submissions *s, const char *id) {
        pthread_mutex_lock(&s->held_lock);
        for (size_t i = 0; i < s->n_held; i++)
                if (strcmp(s->held[i], id) == 0) {
                        memcpy(s->held[i], s->held[--s->n_held], QUEUE_ID_LEN + 1);
                        break;
                }
        pthread_mutex_unlock(&s->held_lock);
}

/* webhook_options.done: a delivery ended. Delivered or given up, it
 * leaves the outbox; abandoned (the process stops), it stays there for
 * another process once its lease runs out. */
static void callback_done(void *userdata, const char *msg_id, enum webhook_outcome outcome) {
        struct submissions *s = userdata;
        const char *id = msg_id + strlen("msg_");

        if (!has_outbox(s) || strncmp(msg_id, "msg_", 4) != 0 || !queue_id_is_valid(id))
                return;
        held_remove(s, id);
        if (outcome != WEBHOOK_ABANDONED) {
                int r = s->q->ops->outbox_remove(s->q, id);
                if (r < 0)
                        log_event(LOG_WARN, "callback not removed from the outbox: it may be delivered again",
                                  json_pack("{s:s,s:s}", "submission", id, "error", strerror(-r)));
        }
}

/* Hand a callback to the delivery threads; with an outbox, it is held
 * there (in the outbox, leased) until callback_done(). */
static void callback_send(struct submissions *s, const char *id, const char *url, const char *body, uint64_t first_ms) {
        char msg_id[QUEUE_ID_LEN + 8];
        int r;

        snprintf(msg_id, sizeof msg_id, "msg_%s", id);
        if (has_outbox(s))
                held_add(s, id);
        r = webhooks_send_since(s->hooks, url, msg_id, body, first_ms);
        if (r < 0 && has_outbox(s)) {
                held_remove(s, id);
                /* Refused by the rules (logged there): never deliverable.
                 * Too many pending: left for a later claim. */
                if (r != -ENOBUFS && r != -ENOMEM)
                        (void)s->q->ops->outbox_remove(s->q, id);
        }
}

/* The outbox entry of a finished task's callback: {"url", "body",
 * "first"}, first the Unix time in ms of the first attempt. */
static char *callback_record(const char *url, const char *body, uint64_t first_ms) {
        json_t *o = json_pack("{s:s,s:s,s:I}", "url", url, "body", body, "first", (json_int_t)first_ms);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return text;
}

/* Every OUTBOX_PERIOD_NS (or third of QUEUE_LEASE, if shorter): renew
 * the leases of the callbacks held here (every third of QUEUE_LEASE), and
 * take over those whose lease ran out:
 * their process died or stopped, or finished them without callbacks on. */
#define OUTBOX_PERIOD_NS 1000000000ull
#define OUTBOX_CLAIM_MAX 100

static void outbox_renew_held(struct submissions *s) {
        char(*ids)[QUEUE_ID_LEN + 1] = NULL;
        size_t n;

        pthread_mutex_lock(&s->held_lock);
        n = s->n_held;
        if (n && (ids = malloc(n * sizeof *ids)))
                memcpy(ids, s->held, n * sizeof *ids);
        pthread_mutex_unlock(&s->held_lock);
        if (!ids)
                return;
        for (size_t i = 0; i < n; i += 500) {
                const char *batch[500];
                size_t k = n - i < 500 ? n - i : 500;
                for (size_t j = 0; j < k; j++)
                        batch[j] = ids[i + j];
                (void)s->q->ops->outbox_renew(s->q, batch, k);
        }
        free(ids);
}

static void outbox_take_over(struct submissions *s) {
        char **ids = NULL, **texts = NULL;
        size_t n = 0;

        if (s->q->ops->outbox_claim(s->q, OUTBOX_CLAIM_MAX, &ids, &texts, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_loads(texts[i], 0, NULL);
                const char *url = json_string_value(json_object_get(o, "url"));
                const char *body = json_string_value(json_object_get(o, "body"));
                json_int_t first = json_integer_value(json_object_get(o, "first"));

                if (!queue_id_is_valid(ids[i]) || !url || !body) {
                        log_event(LOG_WARN, "outbox entry not valid: removed",
                                  json_pack("{s:s}", "submission", ids[i]));
                        (void)s->q->ops->outbox_remove(s->q, ids[i]);
                } else {
                        atomic_fetch_add(&s->callbacks_taken_over, 1);
                        log_event(LOG_INFO, "callback taken over from the outbox",
                                  json_pack("{s:s}", "submission", ids[i]));
                        callback_send(s, ids[i], url, body, first > 0 ? (uint64_t)first : unix_ms());
                }
                json_decref(o);
        }
        queue_outbox_free(ids, texts, n);
}

static void *outbox_main(void *p) {
        struct submissions *s = p;
        uint64_t renew_every = s->q->o.lease_ms * 1000000ull / 3, renewed = now_ns();
        uint64_t period = renew_every < OUTBOX_PERIOD_NS ? renew_every : OUTBOX_PERIOD_NS;
        uint64_t next = now_ns() + period;

        pthread_mutex_lock(&s->lock);
        while (!s->stop_waiter) {
                struct timespec ts = { .tv_sec = (time_t)(next / 1000000000ull),
                                       .tv_nsec = (long)(next % 1000000000ull) };
                /* s->cond also wakes the waiter thread: only the stop and
                 * the period count here. */
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
                if (s->stop_waiter)
                        break;
                if (now_ns() < next)
                        continue;
                next = now_ns() + period;
                pthread_mutex_unlock(&s->lock);
                if (now_ns() >= renewed + renew_every) {
                        renewed = now_ns();
                        outbox_renew_held(s);
                }
                outbox_take_over(s);
                pthread_mutex_lock(&s->lock);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void work_one(struct submissions *s, struct queue_item *it) {
        json_t *task = json_loads(it->task, 0, NULL), *response = NULL;
        const char *status = NULL, *url = NULL;
        _cleanup_free_ char *stored = NULL, *body = NULL, *record = NULL;
        struct queue_callback cb = { 0 };
        uint64_t first_ms = 0;
        unsigned http = 500;
        bool dead = it->deliveries > s->q->o.max_deliveries, was_stored = false;
        uint64_t t0 = now_ns();
        int r;

        if (dead || !task) {
                char msg[256];
                if (dead)
                        snprintf(msg, sizeof msg,
                                 "the submission was taken %llu times without a result (its workers stopped or "
                                 "died while running it: MAX_DELIVERIES is %llu); it is not run again",
                                 (unsigned long long)it->deliveries, (unsigned long long)s->q->o.max_deliveries);
                else
                        snprintf(msg, sizeof msg, "the submission's task in the queue is not valid JSON");
                response = json_pack("{s:s,s:s,s:s}", "id", it->id, "status", "internal_error", "message", msg);
                http = 500;
                dead = true;
                log_event(LOG_WARN, "submission dead-lettered",
                          json_pack("{s:s,s:I,s:s}", "submission", it->id, "deliveries", (json_int_t)it->deliveries,
                                    "why", msg));
        } else {
                log_event(LOG_INFO, "submission running",
                          json_pack("{s:s,s:I}", "submission", it->id, "delivery", (json_int_t)it->deliveries));
                r = run_task(s, it, task, &response, &http);
                if (r < 0) {
                        json_decref(task);
                        return; /* left to its lease */
                }
                atomic_fetch_add(&s->ran, 1);
        }
        status = json_string_value(json_object_get(response, "status"));
        stored = stored_result(http, response);
        url = json_string_value(json_object_get(task, "callbackUrl"));
        if (url && stored) {
                first_ms = unix_ms();
                body = callback_body(it->id, http, response);
                record = body && has_outbox(s) ? callback_record(url, body, first_ms) : NULL;
                if (!body || (has_outbox(s) && !record)) {
                        free(stored); /* out of memory: not finished, run again */
                        stored = NULL;
                }
                cb = (struct queue_callback){ .text = record, .held = s->hooks != NULL };
        }
        r = stored ? s->q->ops->finish(s->q, it, stored, record ? &cb : NULL, dead, &was_stored) : -ENOMEM;
        if (r < 0)
                log_event(LOG_WARN, "submission's result not stored: its lease runs out and it runs again",
                          json_pack("{s:s,s:s}", "submission", it->id, "error", strerror(-r)));
        else {
                log_event(LOG_INFO, was_stored ? "submission done" : "submission done again: the first result stays",
                          json_pack("{s:s,s:s?,s:i,s:f,s:I}", "submission", it->id, "status", status, "httpStatus",
                                    (int)http, "ms", (double)(now_ns() - t0) / 1e6, "delivery",
                                    (json_int_t)it->deliveries));
                if (was_stored && url && s->hooks)
                        callback_send(s, it->id, url, body, first_ms);
                else if (was_stored && url)
                        /* Accepted by an instance with callbacks on, finished here. */
                        log_event(LOG_WARN,
                                  record ? "callback left in the outbox for a process with callbacks on"
                                         : "callback not sent: callbacks are off in this process (set "
                                           "CALLBACK_ALLOWED_HOSTS and WEBHOOK_SECRET here as on the instance that "
                                           "accepted it)",
                                  json_pack("{s:s}", "submission", it->id));
                notify_finished(s);
        }
        json_decref(response);
        json_decref(task);
}

struct worker_arg {
        struct submissions *s;
        unsigned index;
};

static void *worker_main(void *p) {
        struct worker_arg *a = p;
        struct submissions *s = a->s;
        char consumer[160];
        uint64_t logged = 0;

        snprintf(consumer, sizeof consumer, "%s-%u", s->consumer_prefix, a->index);
        free(a);
        while (!atomic_load(&s->stop)) {
                struct queue_item it = { 0 };
                int r = s->q->ops->take(s->q, consumer, 500, &it);
                if (r == -EAGAIN)
                        continue;
                if (r < 0) {
                        if (now_ns() >= logged + 10000000000ull) {
                                logged = now_ns();
                                log_event(LOG_WARN, "the queue cannot be reached; retrying",
                                          json_pack("{s:s,s:s}", "queue", s->q->ops->name, "error", strerror(-r)));
                        }
                        wait_ns(UNREACHABLE_PAUSE_NS);
                        continue;
                }
                work_one(s, &it);
                queue_item_done(&it);
        }
        return NULL;
}

/* ---- waiting, and the queue's health --------------------------------------------- */

static bool all_done(struct submissions *s, const struct submissions_accepted *a) {
        for (size_t i = 0; i < a->n; i++) {
                struct queue_status st = { 0 };
                bool done = s->q->ops->status(s->q, a->ids[i], &st) == 0 && st.state == QUEUE_DONE;
                queue_status_done(&st);
                if (!done)
                        return false;
        }
        return true;
}

static void *waiter_main(void *p) {
        struct submissions *s = p;
        uint64_t next_health = 0;

        pthread_mutex_lock(&s->lock);
        while (!s->stop_waiter) {
                uint64_t now = now_ns(), wake = now + (s->q->ops->persistent ? WAIT_POLL_NS : HEALTH_EVERY_NS);
                struct waiter *ready = NULL, **pp = &s->waiters;
                struct timespec ts;

                if (now >= next_health) {
                        char *why = NULL;
                        int r;
                        pthread_mutex_unlock(&s->lock);
                        r = s->q->ops->check(s->q, &why);
                        pthread_mutex_lock(&s->lock);
                        if (r < 0 && !s->unready)
                                log_event(LOG_WARN, "the queue cannot be reached: not ready",
                                          json_pack("{s:s,s:s}", "queue", s->q->ops->name, "why", why ? why : ""));
                        else if (r == 0 && s->unready)
                                log_event(LOG_INFO, "the queue can be reached again", NULL);
                        free(s->unready);
                        s->unready = r < 0 ? (why ? why : strdup(strerror(-r))) : NULL;
                        if (r == 0)
                                free(why);
                        next_health = now + HEALTH_EVERY_NS;
                }
                s->finished = false;
                /* Each waiter whose submissions are done, or whose time is
                 * up, is taken off the list and told (outside the lock). */
                while (*pp) {
                        struct waiter *w = *pp;
                        bool go = now >= w->deadline_ns;
                        if (!go) {
                                pthread_mutex_unlock(&s->lock);
                                go = all_done(s, w->acc);
                                pthread_mutex_lock(&s->lock);
                        }
                        if (go) {
                                *pp = w->next;
                                w->next = ready;
                                ready = w;
                        } else {
                                if (w->deadline_ns < wake)
                                        wake = w->deadline_ns;
                                pp = &w->next;
                        }
                }
                if (ready) {
                        pthread_mutex_unlock(&s->lock);
                        while (ready) {
                                struct waiter *w = ready;
                                ready = w->next;
                                w->done(w->ctx);
                                free(w);
                        }
                        pthread_mutex_lock(&s->lock);
                        continue;
                }
                /* Nobody waits: only the health check is due. */
                if (!s->waiters || next_health < wake)
                        wake = next_health;
                ts.tv_sec = (time_t)(wake / 1000000000ull);
                ts.tv_nsec = (long)(wake % 1000000000ull);
                if (!s->finished && !s->stop_waiter)
                        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        /* Stopping: everyone still waiting is answered with what there is. */
        while (s->waiters) {
                struct waiter *w = s->waiters;
                s->waiters = w->next;
                pthread_mutex_unlock(&s->lock);
                w->done(w->ctx);
                free(w);
                pthread_mutex_lock(&s->lock);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int submissions_wait(struct submissions *s, const struct submissions_accepted *a, uint64_t deadline_ns,
                     void (*done)(void *ctx), void *ctx) {
        struct waiter *w;
        if (atomic_load(&s->stop))
                return -ESHUTDOWN;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (struct waiter){ .acc = a, .deadline_ns = deadline_ns, .done = done, .ctx = ctx };
        pthread_mutex_lock(&s->lock);
        w->next = s->waiters;
        s->waiters = w;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return 0;
}

const char *submissions_unready(struct submissions *s) {
        const char *r;
        pthread_mutex_lock(&s->lock);
        r = s->unready ? "the queue cannot be reached" : NULL;
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* ---- statistics ------------------------------------------------------------------- */

json_t *submissions_stats_json(struct submissions *s) {
        struct queue_stats q = { 0 };
        struct webhook_stats w = { 0 };
        bool have = s->q->ops->stats(s->q, &q) == 0;
        json_t *o;

        if (s->hooks)
                webhooks_stats(s->hooks, &w);
        o = json_pack("{s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I}", "backend", s->q->ops->name, "persistent",
                      s->q->ops->persistent, "reachable", have, "workers", (json_int_t)s->n_workers, "accepted",
                      (json_int_t)atomic_load(&s->accepted), "batches", (json_int_t)atomic_load(&s->batches),
                      "idempotentReplays", (json_int_t)atomic_load(&s->replayed), "runHere",
                      (json_int_t)atomic_load(&s->ran));
        if (o && have)
                json_object_set_new(o, "queue",
                                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "depth", (json_int_t)q.depth,
                                              "pending", (json_int_t)q.pending, "enqueued", (json_int_t)q.enqueued,
                                              "claimed", (json_int_t)q.claimed, "deadLettered",
                                              (json_int_t)q.dead_lettered, "stored", (json_int_t)q.stored, "duplicates",
                                              (json_int_t)q.duplicates, "outbox", (json_int_t)q.outbox));
        if (o)
                json_object_set_new(o, "webhooks",
                                    s->hooks ? json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "delivered",
                                                         (json_int_t)w.delivered, "attempts", (json_int_t)w.attempts,
                                                         "failedAttempts", (json_int_t)w.failed_attempts, "givenUp",
                                                         (json_int_t)w.given_up, "pending", (json_int_t)w.pending,
                                                         "takenOver", (json_int_t)atomic_load(&s->callbacks_taken_over))
                                             : json_null());
        return o;
}

void submissions_render_metrics(struct submissions *s, struct buf *o) {
        struct queue_stats q = { 0 };
        struct webhook_stats w = { 0 };
        bool have = s->q->ops->stats(s->q, &q) == 0;
        const struct {
                const char *name, *type, *help;
                uint64_t value;
                bool show;
        } m[] = {
                { "pyexec_submissions_accepted_total", "counter", "Submissions this instance queued.",
                  atomic_load(&s->accepted), true },
                { "pyexec_submissions_run_total", "counter", "Submissions this instance's workers ran.",
                  atomic_load(&s->ran), true },
                { "pyexec_submissions_queue_reachable", "gauge", "Whether the queue answered (1) or not (0).", have,
                  true },
                { "pyexec_submissions_queue_depth", "gauge", "Submissions waiting for a worker (whole queue).", q.depth,
                  have },
                { "pyexec_submissions_pending", "gauge",
                  "Submissions taken by a worker and not finished (whole queue).", q.pending, have },
                { "pyexec_submissions_claimed_total", "counter",
                  "Submissions taken over after their worker's lease ran out (whole queue).", q.claimed, have },
                { "pyexec_submissions_dead_lettered_total", "counter",
                  "Submissions stored as internal_error after MAX_DELIVERIES (whole queue).", q.dead_lettered, have },
                { "pyexec_submissions_results_stored_total", "counter", "Results stored (whole queue).", q.stored,
                  have },
                { "pyexec_submissions_duplicate_results_total", "counter",
                  "Results of a second run of a submission, not stored (whole queue).", q.duplicates, have },
                { "pyexec_submissions_outbox", "gauge",
                  "Callbacks kept in the queue until delivered or given up (whole queue; Redis only).", q.outbox,
                  have && has_outbox(s) },
                { "pyexec_webhook_taken_over_total", "counter",
                  "Callbacks this process took over from the outbox after their lease ran out.",
                  atomic_load(&s->callbacks_taken_over), s->hooks != NULL },
        };

        if (s->hooks)
                webhooks_stats(s->hooks, &w);
        for (size_t i = 0; i < ELEMENTSOF(m); i++)
                if (m[i].show)
                        buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", m[i].name, m[i].help, m[i].name,
                                   m[i].type, m[i].name, (unsigned long long)m[i].value);
        if (s->hooks)
                buf_printf(o,
                           "# HELP pyexec_webhook_deliveries_total Callbacks by outcome.\n"
                           "# TYPE pyexec_webhook_deliveries_total counter\n"
                           "pyexec_webhook_deliveries_total{outcome=\"delivered\"} %llu\n"
                           "pyexec_webhook_deliveries_total{outcome=\"given_up\"} %llu\n"
                           "# HELP pyexec_webhook_attempts_total Callback requests made, and those without a 2xx.\n"
                           "# TYPE pyexec_webhook_attempts_total counter\n"
                           "pyexec_webhook_attempts_total{result=\"all\"} %llu\n"
                           "pyexec_webhook_attempts_total{result=\"failed\"} %llu\n"
                           "# HELP pyexec_webhook_pending Callbacks not yet delivered nor given up.\n"
                           "# TYPE pyexec_webhook_pending gauge\npyexec_webhook_pending %llu\n",
                           (unsigned long long)w.delivered, (unsigned long long)w.given_up,
                           (unsigned long long)w.attempts, (unsigned long long)w.failed_attempts,
                           (unsigned long long)w.pending);
}

/* ---- life ------------------------------------------------------------------------- */

static struct webhook_options webhook_options_of(const struct config *cfg) {
        return (struct webhook_options){
                .secret = cfg->webhook_secret[0] ? cfg->webhook_secret : NULL,
                .allowed_hosts = cfg->callback_allowed_hosts,
                .connect_timeout_ms = cfg->webhook_timeout < 5000 ? cfg->webhook_timeout : 5000,
                .timeout_ms = cfg->webhook_timeout,
                .retry_for_s = cfg->webhook_retry_for,
        };
}

static struct queue_options queue_options_of(const struct config *cfg) {
        return (struct queue_options){
                .lease_ms = cfg->queue_lease * 1000,
                .max_deliveries = cfg->max_deliveries,
                .result_ttl_s = cfg->result_ttl,
                .name = "pyexec",
        };
}

int submissions_check_config(const struct config *cfg, char **ret_why) {
        struct webhook_options wo = webhook_options_of(cfg);
        struct queue_options qo = queue_options_of(cfg);
        struct queue *q = NULL;
        int r;

        *ret_why = NULL;
        r = webhook_options_check(&wo, ret_why);
        if (r < 0 || !cfg->queue_url[0])
                return r;
        r = queue_redis_new(cfg->queue_url, &qo, &q, ret_why);
        queue_free(q);
        return r;
}

int submissions_new(const struct submissions_env *env, struct submissions **ret, char **ret_why) {
        const struct config *cfg = env->cfg;
        struct submissions *s = calloc(1, sizeof *s);
        struct queue_options qo = queue_options_of(cfg);
        char host[64] = "host";
        pthread_condattr_t ca;
        int r;

        *ret_why = NULL;
        if (!s)
                return -ENOMEM;
        s->env = *env;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->held_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
        /* The workers' consumer names: the host's name (at most 40 of its
         * characters, those a name may not hold replaced) and the pid. */
        gethostname(host, sizeof host - 1);
        host[40] = 0;
        for (char *c = host; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                      *c == '-' || *c == '_'))
                        *c = '_';
        snprintf(s->consumer_prefix, sizeof s->consumer_prefix, "%s-%d", host, (int)getpid());

        s->wo = webhook_options_of(cfg);
        s->wo.done = callback_done;
        s->wo.done_userdata = s;
        s->wo.kept = cfg->queue_url[0] != '\0'; /* Redis: the outbox */
        r = webhook_options_check(&s->wo, ret_why);
        if (r < 0)
                goto fail;
        if (cfg->callback_allowed_hosts[0] && (r = webhooks_new(&s->wo, &s->hooks)) < 0) {
                *ret_why = strdup_printf("cannot start the callbacks: %s", strerror(-r));
                goto fail;
        }
        if (cfg->queue_url[0])
                r = queue_redis_new(cfg->queue_url, &qo, &s->q, ret_why);
        else
                r = queue_mem_new(&qo, &s->q);
        if (r < 0)
                goto fail;
        if (pthread_create(&s->waiter_thread, NULL, waiter_main, s) != 0) {
                r = -EAGAIN;
                goto fail;
        }
        s->waiter_started = true;
        if (s->hooks && has_outbox(s)) {
                if (pthread_create(&s->outbox_thread, NULL, outbox_main, s) != 0) {
                        r = -EAGAIN;
                        goto fail;
                }
                s->outbox_started = true;
        }
        s->workers = calloc(cfg->n_queue_workers ? cfg->n_queue_workers : 1, sizeof *s->workers);
        if (!s->workers) {
                r = -ENOMEM;
                goto fail;
        }
        for (; s->n_workers < cfg->n_queue_workers; s->n_workers++) {
                struct worker_arg *a = malloc(sizeof *a);
                if (!a || (*a = (struct worker_arg){ s, (unsigned)s->n_workers },
                           pthread_create(&s->workers[s->n_workers], NULL, worker_main, a) != 0)) {
                        free(a);
                        r = -EAGAIN;
                        goto fail;
                }
        }
        log_event(LOG_INFO, "submissions queue ready",
                  json_pack("{s:s,s:s,s:b,s:I,s:b}", "queue", s->q->ops->name, "url",
                            cfg->queue_url_shown ? cfg->queue_url_shown : "", "persistent", s->q->ops->persistent,
                            "workers", (json_int_t)s->n_workers, "callbacks", s->hooks != NULL));
        if (!s->q->ops->persistent)
                log_event(LOG_INFO,
                          "submissions wait in this process: those not finished are lost when it stops "
                          "(QUEUE_URL=redis://... keeps them)",
                          NULL);
        *ret = s;
        return 0;
fail:
        if (!*ret_why)
                *ret_why = strdup(strerror(-r));
        submissions_free(s);
        return r;
}

void submissions_stop(struct submissions *s) {
        if (atomic_exchange(&s->stop, true))
                return;
        for (size_t i = 0; i < s->n_workers; i++)
                pthread_join(s->workers[i], NULL);
        if (s->waiter_started) {
                pthread_mutex_lock(&s->lock);
                s->stop_waiter = true;
                pthread_cond_broadcast(&s->cond);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->waiter_thread, NULL);
        }
        if (s->outbox_started)
                pthread_join(s->outbox_thread, NULL);
}

void submissions_free(struct submissions *s) {
        if (!s)
                return;
        submissions_stop(s);
        free(s->workers);
        if (s->hooks)
                webhooks_free(s->hooks);
        queue_free(s->q);
        free(s->unready);
        free(s->held);
        pthread_mutex_destroy(&s->held_lock);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
