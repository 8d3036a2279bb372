/* SPDX-License-Identifier: MIT */
#include "result.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base64.h"
#include "util.h"

void result_new_id(char ret[RESULT_ID_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[RESULT_ID_LEN / 2];

        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
                /* Only a correlation id: uniqueness, not secrecy. */
                uint64_t t = now_ns() ^ ((uint64_t)getpid() << 32);
                for (size_t i = 0; i < sizeof raw; i++)
                        raw[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
        }
        for (size_t i = 0; i < sizeof raw; i++) {
                ret[2 * i] = hex[raw[i] >> 4];
                ret[2 * i + 1] = hex[raw[i] & 15];
        }
        ret[RESULT_ID_LEN] = 0;
}

json_t *result_json_string(const char *p, size_t n) {
        struct buf b;
        json_t *j;

        if (utf8_is_valid(p, n))
                return json_stringn(p ? p : "", n);
        buf_init(&b, n * 3 + 1);
        if (utf8_repair(p, n, &b) < 0) {
                buf_done(&b);
                return NULL;
        }
        j = json_stringn(b.data ? b.data : "", b.len);
        buf_done(&b);
        return j;
}

/* The PNG in base64, as a JSON string (base64 text needs no UTF-8 check). */
static json_t *base64_string(const char *p, size_t n) {
        _cleanup_free_ char *s = NULL;
        size_t len;

        if (base64_encode(p, n, &s, &len) < 0)
                return NULL;
        return json_stringn_nocheck(s, len);
}

/* The pictures the program showed: PNGs the supervisor checked (images.h). */
static json_t *images_json(const struct pyexec_result *r) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < r->n_images; i++) {
                const struct pyexec_image *im = &r->images[i];
                json_t *data = base64_string(im->data, im->len);
                if (!data || json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:o}", "format", "png", "width",
                                                                (json_int_t)im->width, "height", (json_int_t)im->height,
                                                                "data", data)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static json_t *ms(double v) {
        return json_real(round(v * 10.0) / 10.0);
}

json_t *result_to_json(const struct pyexec_result *r, const struct pyexec_limits *l, const char *id) {
        json_t *o = json_object(), *lim = json_object();
        const char *abbrev;
        char sig[32];

        if (!o || !lim) {
                json_decref(lim);
                goto fail;
        }
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "status", json_string(pyexec_status_to_string(r->status)));
        json_object_set_new(o, "exitCode", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
        if (r->signal > 0 && (abbrev = sigabbrev_np(r->signal))) {
                snprintf(sig, sizeof sig, "SIG%s", abbrev);
                json_object_set_new(o, "signal", json_string(sig));
        } else
                json_object_set_new(o, "signal", json_null());
        json_object_set_new(o, "stdout", result_json_string(r->out.data, r->out.len));
        json_object_set_new(o, "stderr", result_json_string(r->err.data, r->err.len));
        json_object_set_new(o, "output", result_json_string(r->merged.data, r->merged.len));
        json_object_set_new(o, "truncated", json_boolean(r->truncated));
        json_object_set_new(o, "message", r->message ? result_json_string(r->message, strlen(r->message)) : json_null());
        json_object_set_new(o, "time", json_pack("{s:o,s:o}", "wallMs", ms(r->wall_ms), "cpuMs", ms(r->cpu_ms)));
        json_object_set_new(o, "memory", json_pack("{s:I}", "peakKb", (json_int_t)r->peak_kb));
        json_object_set_new(o, "images", images_json(r));
        json_object_set_new(o, "imagesTruncated", json_boolean(r->images_truncated));
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                json_object_set_new(lim, in->json,
                                    json_integer((json_int_t)*pyexec_limit_ptr((struct pyexec_limits *)l, in)));
        }
        json_object_set_new(o, "limits", lim);
        /* Any failed allocation above left a key out. */
        if (json_object_size(o) != 14)
                goto fail;
        return o;
fail:
        json_decref(o);
        return NULL;
}
