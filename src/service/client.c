/* SPDX-License-Identifier: MIT */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define RESPONSE_MAX (512u << 20)

static int parse_url(const char *url, struct sockaddr_storage *ss, socklen_t *len, char *host, size_t hostlen) {
        const char *p, *colon;
        char h[64];
        uint64_t port;

        if (strncmp(url, "http://", 7) != 0)
                return -EINVAL;
        p = url + 7;
        if (*p == '[') {
                const char *end = strchr(p, ']');
                if (!end || end[1] != ':' || (size_t)(end - p - 1) >= sizeof h)
                        return -EINVAL;
                memcpy(h, p + 1, (size_t)(end - p - 1));
                h[end - p - 1] = 0;
                colon = end + 1;
        } else {
                colon = strrchr(p, ':');
                if (!colon || (size_t)(colon - p) >= sizeof h)
                        return -EINVAL;
                memcpy(h, p, (size_t)(colon - p));
                h[colon - p] = 0;
        }
        {
                char ps[8];
                size_t pl = strcspn(colon + 1, "/");
                if (pl == 0 || pl >= sizeof ps || (colon[1 + pl] && strcmp(colon + 1 + pl, "/") != 0))
                        return -EINVAL;
                memcpy(ps, colon + 1, pl);
                ps[pl] = 0;
                if (parse_u64(ps, 1, 65535, &port) < 0)
                        return -EINVAL;
        }
        memset(ss, 0, sizeof *ss);
        if (strcmp(h, "localhost") == 0)
                snprintf(h, sizeof h, "127.0.0.1");
        if (inet_pton(AF_INET, h, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
                ((struct sockaddr_in *)ss)->sin_family = AF_INET;
                ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
                *len = sizeof(struct sockaddr_in);
        } else if (inet_pton(AF_INET6, h, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
                ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
                ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
                *len = sizeof(struct sockaddr_in6);
        } else
                return -EINVAL;
        snprintf(host, hostlen, "%s", p);
        host[strcspn(host, "/")] = 0;
        return 0;
}

int client_execute(const char *url, const char *api_key, json_t *request, unsigned *ret_http, json_t **ret_body,
                   char *err, size_t errlen) {
        struct sockaddr_storage ss;
        socklen_t sl;
        char host[128], *body = NULL, *head = NULL;
        struct buf resp;
        _cleanup_close_ int fd = -1;
        const char *sep;
        unsigned code;
        json_error_t je;
        int r, sent;

        if (parse_url(url, &ss, &sl, host, sizeof host) < 0) {
                snprintf(err, errlen, "--service must be http://HOST:PORT (an IP address or localhost), got '%s'",
                         url);
                return -EINVAL;
        }
        body = json_dumps(request, JSON_COMPACT);
        if (!body)
                return -ENOMEM;
        head = strdup_printf("POST /api/execute HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n",
                             host, strlen(body), api_key ? "Authorization: Bearer " : "", api_key ? api_key : "",
                             api_key ? "\r\n" : "");
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (!head || fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot reach the service at %s: %s", url, strerror(errno));
                free(body);
                free(head);
                return r ? r : -ENOMEM;
        }
        sent = write_all(fd, head, strlen(head));
        if (sent == 0)
                sent = write_all(fd, body, strlen(body));
        free(head);
        free(body);
        /* The service may refuse a request from its headers (413 from the
         * Content-Length, 401, 503) and close before the body is all sent:
         * its answer is read and reported all the same. */
        if (sent < 0 && sent != -EPIPE && sent != -ECONNRESET) {
                snprintf(err, errlen, "sending the program to %s: %s", url, strerror(-sent));
                return sent;
        }
        buf_init(&resp, RESPONSE_MAX);
        for (;;) {
                char chunk[65536];
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ECONNRESET && resp.len > 0)
                        break; /* the answer came before the service closed */
                if (n < 0) {
                        r = -errno;
                        if (sent < 0)
                                snprintf(err, errlen, "sending the program to %s: %s", url, strerror(-sent));
                        else
                                snprintf(err, errlen, "reading the answer from %s: %s", url, strerror(errno));
                        buf_done(&resp);
                        return sent < 0 ? sent : r;
                }
                if (n == 0)
                        break;
                if (buf_append(&resp, chunk, (size_t)n) < 0) {
                        snprintf(err, errlen, "the answer from %s is larger than %u bytes", url, RESPONSE_MAX);
                        buf_done(&resp);
                        return -EMSGSIZE;
                }
        }
        sep = resp.data ? memmem(resp.data, resp.len, "\r\n\r\n", 4) : NULL;
        if (!sep || sscanf(resp.data, "HTTP/1.%*[01] %3u", &code) != 1) {
                if (sent < 0)
                        snprintf(err, errlen, "sending the program to %s: %s", url, strerror(-sent));
                else
                        snprintf(err, errlen, "the answer from %s is not HTTP", url);
                buf_done(&resp);
                return sent < 0 ? sent : -EPROTO;
        }
        {
                const char *te = strcasestr(resp.data, "\r\ntransfer-encoding:");
                if (te && te < sep) {
                        snprintf(err, errlen, "the answer from %s is chunked: is it pyexec serve?", url);
                        buf_done(&resp);
                        return -EPROTO;
                }
        }
        /* A program's output may hold NUL bytes, written \u0000. */
        *ret_body = json_loadb(sep + 4, resp.len - (size_t)(sep + 4 - resp.data), JSON_ALLOW_NUL, &je);
        buf_done(&resp);
        if (!*ret_body) {
                snprintf(err, errlen, "the answer from %s (HTTP %u) is not JSON: %s", url, code, je.text);
                return -EPROTO;
        }
        *ret_http = code;
        return 0;
}
