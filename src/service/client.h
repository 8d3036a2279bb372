/* SPDX-License-Identifier: MIT */
/*
 * client: `pyexec run --service URL`, which runs a program on a running
 * service (its warm path) instead of building a cold sandbox here. One
 * HTTP/1.1 request to POST /api/execute with Connection: close; the answer
 * is read to EOF. This talks to pyexec serve only: the response must carry
 * a Content-Length body (no chunked encoding), as the service sends it.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* url: http://HOST:PORT with HOST an IPv4 or [IPv6] literal or localhost.
 * api_key may be NULL. On success *ret_http is the status code and
 * *ret_body the parsed JSON body (any status); -errno with err filled
 * otherwise. */
int client_execute(const char *url, const char *api_key, json_t *request, unsigned *ret_http, json_t **ret_body,
                   char *err, size_t errlen);
