/* SPDX-License-Identifier: MIT */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>

void api_error_set(struct api_error *e, unsigned http, const char *code, const char *field, const char *fmt, ...) {
        va_list ap;
        e->http = http;
        e->code = code;
        snprintf(e->field, sizeof e->field, "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
        /* Messages quote what the client sent (keys, jansson's "near
         * '...'") and are cut to fit: repair invalid or cut UTF-8 so the
         * error JSON can always be built. */
        utf8_make_valid(e->field, sizeof e->field);
        utf8_make_valid(e->message, sizeof e->message);
}

json_t *api_error_json(const struct api_error *e) {
        json_t *inner = json_pack("{s:s,s:s}", "code", e->code, "message", e->message);
        if (inner && e->field[0])
                json_object_set_new(inner, "field", json_string(e->field));
        return json_pack("{s:o}", "error", inner);
}
