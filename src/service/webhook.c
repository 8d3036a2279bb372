/* SPDX-License-Identifier: MIT */
/*
 * webhook: the callbacks of finished submissions (see webhook.h for the
 * format and the rules).
 *
 * Threads: WEBHOOK_THREADS delivery threads share one schedule, a list of
 * deliveries sorted by the time of their next attempt, under one mutex and
 * one condition variable (CLOCK_MONOTONIC). A thread takes the first
 * delivery that is due off the list, makes the attempt without the lock
 * (one libcurl easy handle per attempt, so no connection outlives the
 * address check below), then puts it back with its next time, or drops it
 * (delivered, or given up). webhooks_free() sets `stopping`, wakes them,
 * and the progress callback aborts an attempt under way within a second.
 *
 * Where addresses are checked: webhook_check_url() refuses address
 * literals that are not public when a submission is made, but names are
 * resolved by libcurl at delivery, and a name may resolve to anything (and
 * to something else the next time: DNS rebinding). So libcurl opens its
 * sockets through open_socket(), which sees the very address it is about
 * to connect to, and refuses it unless it is public or the URL's host is
 * listed in CALLBACK_ALLOWED_HOSTS by name or address ("*" never is).
 */
#include "webhook.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "base64.h"
#include "log.h"
#include "util.h"

#define WEBHOOK_THREADS 4
#define PENDING_MAX 10000
#define URL_MAX 2048
#define MSG_ID_MAX 128
#define SECRET_PREFIX "whsec_"
#define SECRET_MIN 24
#define SECRET_MAX 64
#define RESPONSE_MAX (64 * 1024) /* of a receiver's answer read, the rest discarded */
#define BACKOFF_MAX_MS (5 * 60 * 1000ull)
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_FIRST_BACKOFF_MS 1000

/*
 * libcurl and libcrypto are loaded by `pyexec serve` alone, on first use, as
 * libmicrohttpd is (src/service/http.c): linked, they would cost every
 * `pyexec run` their dynamic loading. The tables hold the few entry points
 * used here, with their real prototypes. They are called through the table
 * (cu.easy_setopt(...)), not through macros named after the functions:
 * curl.h defines curl_easy_setopt as a type-checking macro of its own.
 */
static struct {
        void *handle;
        typeof(HMAC) *hmac;
        typeof(EVP_sha256) *evp_sha256;
} lc;

static struct {
        void *handle;
        typeof(curl_global_init) *global_init;
        typeof(curl_easy_init) *easy_init;
        typeof(curl_easy_setopt) *easy_setopt;
        typeof(curl_easy_perform) *easy_perform;
        typeof(curl_easy_getinfo) *easy_getinfo;
        typeof(curl_easy_cleanup) *easy_cleanup;
        typeof(curl_easy_strerror) *easy_strerror;
        typeof(curl_slist_append) *slist_append;
        typeof(curl_slist_free_all) *slist_free_all;
        typeof(curl_url) *url;
        typeof(curl_url_set) *url_set;
        typeof(curl_url_get) *url_get;
        typeof(curl_url_cleanup) *url_cleanup;
        typeof(curl_url_strerror) *url_strerror;
        typeof(curl_free) *free;
} cu;

static const struct dl_sym crypto_syms[] = {
#define SYM(f, field) DL_SYM(lc, f, field)
        SYM(HMAC, hmac),
        SYM(EVP_sha256, evp_sha256),
#undef SYM
};

static const struct dl_sym curl_syms[] = {
#define SYM(f, field) DL_SYM(cu, f, field)
        SYM(curl_global_init, global_init),
        SYM(curl_easy_init, easy_init),
        SYM(curl_easy_setopt, easy_setopt),
        SYM(curl_easy_perform, easy_perform),
        SYM(curl_easy_getinfo, easy_getinfo),
        SYM(curl_easy_cleanup, easy_cleanup),
        SYM(curl_easy_strerror, easy_strerror),
        SYM(curl_slist_append, slist_append),
        SYM(curl_slist_free_all, slist_free_all),
        SYM(curl_url, url),
        SYM(curl_url_set, url_set),
        SYM(curl_url_get, url_get),
        SYM(curl_url_cleanup, url_cleanup),
        SYM(curl_url_strerror, url_strerror),
        SYM(curl_free, free),
#undef SYM
};

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int crypto_state, curl_state; /* 0: not tried; 1: loaded; -errno: failed */
static char crypto_err[256], curl_err[256];

/* -ENOENT with *ret_why naming the package when libcrypto cannot be loaded. */
static int crypto_load(char **ret_why) {
        pthread_mutex_lock(&load_lock);
        if (crypto_state == 0) {
                int r = dl_load("libcrypto.so.3", "libssl3", crypto_syms, ELEMENTSOF(crypto_syms), &lc, &lc.handle, crypto_err,
                                 sizeof crypto_err);
                crypto_state = r < 0 ? r : 1;
        }
        int r = crypto_state;
        pthread_mutex_unlock(&load_lock);
        if (r < 0) {
                if (ret_why)
                        *ret_why = strdup(crypto_err);
                return r;
        }
        return 0;
}

static int curl_load(char **ret_why) {
        pthread_mutex_lock(&load_lock);
        if (curl_state == 0) {
                int r = dl_load("libcurl.so.4", "libcurl4", curl_syms, ELEMENTSOF(curl_syms), &cu, &cu.handle, curl_err,
                                 sizeof curl_err);
                /* Once, before any handle: curl_global_init() is not
                 * thread-safe in every libcurl, hence under the lock. */
                if (r >= 0 && cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                        snprintf(curl_err, sizeof curl_err, "libcurl.so.4: curl_global_init failed");
                        r = -EIO;
                }
                curl_state = r < 0 ? r : 1;
        }
        int r = curl_state;
        pthread_mutex_unlock(&load_lock);
        if (r < 0) {
                if (ret_why)
                        *ret_why = strdup(curl_err);
                return r;
        }
        return 0;
}

static void curl_url_cleanupp(CURLU **u) {
        if (*u)
                cu.url_cleanup(*u);
}

static void curl_freep(char **p) {
        if (*p)
                cu.free(*p);
}

static void curl_easy_cleanupp(CURL **h) {
        if (*h)
                cu.easy_cleanup(*h);
}

static void curl_slist_free_allp(struct curl_slist **l) {
        if (*l)
                cu.slist_free_all(*l);
}

/* Sets *ret_why, returns r (for `return fail(...)`); an allocation failure
 * leaves *ret_why NULL. */
static int _printf_(3, 4) fail(char **ret_why, int r, const char *fmt, ...) {
        if (ret_why) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(ret_why, fmt, ap) < 0)
                        *ret_why = NULL;
                va_end(ap);
        }
        return r;
}

/* ---- the secret ---- */

/* The key of "whsec_<base64>", 24 to 64 bytes. */
static int secret_decode(const char *secret, uint8_t ret[static SECRET_MAX], size_t *ret_len, char **ret_why) {
        static const char hint[] = "(e.g. whsec_$(head -c 32 /dev/urandom | base64))";
        _cleanup_free_ uint8_t *key = NULL;
        const char *why;
        size_t n;
        int r;

        if (!secret || strncmp(secret, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
                return fail(ret_why, -EINVAL,
                            "WEBHOOK_SECRET must be \"whsec_\" and the base64 of %d to %d random bytes %s", SECRET_MIN,
                            SECRET_MAX, hint);
        secret += strlen(SECRET_PREFIX);
        n = strlen(secret);
        if (n == 0 || !base64_is_valid(secret, n))
                return fail(ret_why, -EINVAL,
                            "WEBHOOK_SECRET: what follows \"whsec_\" is not base64 (A-Z a-z 0-9 + /, padded with = "
                            "to a multiple of 4 characters) %s",
                            hint);
        if (n > (SECRET_MAX + 2) / 3 * 4)
                return fail(ret_why, -EINVAL, "WEBHOOK_SECRET decodes to more than %d bytes; it must be %d to %d %s",
                            SECRET_MAX, SECRET_MIN, SECRET_MAX, hint);
        r = crypto_load(ret_why); /* the HMAC, sign_with_key() */
        if (r < 0)
                return r;
        r = base64_load(&why);
        if (r < 0)
                return fail(ret_why, r, "%s", why);
        r = base64_decode(secret, n, &key, &n);
        if (r == -ENOMEM)
                return fail(ret_why, r, "out of memory");
        if (r < 0)
                return fail(ret_why, -EINVAL, "WEBHOOK_SECRET: what follows \"whsec_\" is not base64 %s", hint);
        if (n < SECRET_MIN || n > SECRET_MAX)
                return fail(ret_why, -EINVAL, "WEBHOOK_SECRET decodes to %zu bytes; it must be %d to %d %s", n,
                            SECRET_MIN, SECRET_MAX, hint);
        memcpy(ret, key, n);
        explicit_bzero(key, n);
        *ret_len = n;
        return 0;
}

static int sign_with_key(const uint8_t *key, size_t key_len, const char *msg_id, int64_t timestamp, const char *body,
                         char **ret) {
        _cleanup_free_ char *data = NULL;
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        _cleanup_free_ char *b64 = NULL;
        size_t b64_len;
        int n;

        /* The signed content: "{id}.{timestamp}.{body}", the body as sent. */
        n = asprintf(&data, "%s.%lld.%s", msg_id, (long long)timestamp, body);
        if (n < 0) {
                data = NULL;
                return -ENOMEM;
        }
        if (!lc.hmac(lc.evp_sha256(), key, (int)key_len, (const unsigned char *)data, (size_t)n, mac, &mac_len))
                return -EIO;
        n = base64_encode(mac, mac_len, &b64, &b64_len);
        if (n < 0)
                return n;
        *ret = strdup_printf("v1,%s", b64);
        return *ret ? 0 : -ENOMEM;
}

int webhook_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body, char **ret) {
        uint8_t key[SECRET_MAX];
        size_t key_len;
        int r;

        r = secret_decode(secret, key, &key_len, NULL);
        if (r < 0)
                return r;
        return sign_with_key(key, key_len, msg_id, timestamp, body, ret);
}

/* ---- addresses ---- */

/*
 * The addresses a callback may not reach unless CALLBACK_ALLOWED_HOSTS lists
 * its host: everything that is not a public unicast address, because a
 * callback is a request the service makes on behalf of whoever submitted,
 * from inside the operator's network (SSRF). First match wins, so the
 * narrower entries come before the ranges that contain them.
 */
static const struct addr_rule {
        int family;
        const char *prefix;
        unsigned bits;
        const char *rule;
        bool embeds_ipv4; /* the last 4 bytes are an IPv4 address, checked in turn */
} addr_rules[] = {
        /* "this network": 0.0.0.0 connects to the local host */
        { AF_INET, "0.0.0.0", 8, "unspecified (0.0.0.0/8)", false },
        /* RFC 1918 */
        { AF_INET, "10.0.0.0", 8, "private (10.0.0.0/8)", false },
        /* carrier-grade NAT: the provider's side of the network */
        { AF_INET, "100.64.0.0", 10, "shared (100.64.0.0/10)", false },
        { AF_INET, "127.0.0.0", 8, "loopback (127.0.0.0/8)", false },
        /* the cloud instance metadata service (credentials) */
        { AF_INET, "169.254.169.254", 32, "cloud metadata (169.254.169.254)", false },
        { AF_INET, "169.254.0.0", 16, "link-local (169.254.0.0/16)", false },
        { AF_INET, "172.16.0.0", 12, "private (172.16.0.0/12)", false },
        { AF_INET, "192.0.0.0", 24, "IETF protocol assignments (192.0.0.0/24)", false },
        { AF_INET, "192.0.2.0", 24, "documentation (192.0.2.0/24)", false },
        { AF_INET, "192.168.0.0", 16, "private (192.168.0.0/16)", false },
        /* benchmarking: lab networks */
        { AF_INET, "198.18.0.0", 15, "benchmarking (198.18.0.0/15)", false },
        { AF_INET, "198.51.100.0", 24, "documentation (198.51.100.0/24)", false },
        { AF_INET, "203.0.113.0", 24, "documentation (203.0.113.0/24)", false },
        { AF_INET, "224.0.0.0", 4, "multicast (224.0.0.0/4)", false },
        { AF_INET, "255.255.255.255", 32, "broadcast (255.255.255.255)", false },
        { AF_INET, "240.0.0.0", 4, "reserved (240.0.0.0/4)", false },
        { AF_INET6, "::", 128, "unspecified (::)", false },
        { AF_INET6, "::1", 128, "loopback (::1)", false },
        /* IPv4-mapped: a dual-stack socket connects to the IPv4 address */
        { AF_INET6, "::ffff:0:0", 96, "IPv4-mapped", true },
        /* IPv4-compatible (deprecated), never a public destination */
        { AF_INET6, "::", 96, "IPv4-compatible (::/96)", false },
        /* NAT64: the translator connects to the embedded IPv4 address */
        { AF_INET6, "64:ff9b::", 96, "NAT64", true },
        { AF_INET6, "64:ff9b:1::", 48, "local NAT64 (64:ff9b:1::/48)", false },
        { AF_INET6, "100::", 64, "discard (100::/64)", false },
        { AF_INET6, "2001:db8::", 32, "documentation (2001:db8::/32)", false },
        /* AWS's instance metadata service over IPv6 */
        { AF_INET6, "fd00:ec2::254", 128, "cloud metadata (fd00:ec2::254)", false },
        { AF_INET6, "fc00::", 7, "unique-local (fc00::/7)", false },
        { AF_INET6, "fe80::", 10, "link-local (fe80::/10)", false },
        { AF_INET6, "fec0::", 10, "site-local (fec0::/10)", false },
        { AF_INET6, "ff00::", 8, "multicast (ff00::/8)", false },
};

static bool prefix_matches(const uint8_t *a, const uint8_t *prefix, unsigned bits) {
        unsigned whole = bits / 8, rest = bits % 8;

        if (memcmp(a, prefix, whole) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        return (a[whole] & mask) == (prefix[whole] & mask);
}

/* The rule refusing the address (family AF_INET: 4 bytes, AF_INET6: 16),
 * written to why; false when it is public. */
static bool addr_refused(int family, const uint8_t *a, char *why, size_t whylen) {
        for (size_t i = 0; i < ELEMENTSOF(addr_rules); i++) {
                const struct addr_rule *r = &addr_rules[i];
                uint8_t prefix[16];

                if (r->family != family)
                        continue;
                if (inet_pton(family, r->prefix, prefix) != 1)
                        abort(); /* the table is wrong */
                if (!prefix_matches(a, prefix, r->bits))
                        continue;
                if (r->embeds_ipv4) {
                        char inner[128];
                        if (!addr_refused(AF_INET, a + 12, inner, sizeof inner))
                                return false;
                        snprintf(why, whylen, "%s of %s", r->rule, inner);
                } else
                        snprintf(why, whylen, "%s", r->rule);
                return true;
        }
        return false;
}

static bool sockaddr_refused(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen, char *addr,
                             size_t addrlen) {
        if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
                inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)addrlen);
                return addr_refused(AF_INET, (const uint8_t *)&in->sin_addr, why, whylen);
        }
        if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)addrlen);
                return addr_refused(AF_INET6, (const uint8_t *)&in6->sin6_addr, why, whylen);
        }
        snprintf(addr, addrlen, "(family %d)", sa->sa_family);
        snprintf(why, whylen, "not an IP address");
        return true;
}

/* ---- CALLBACK_ALLOWED_HOSTS ---- */

struct host {
        char *name; /* lowercase, without brackets or a trailing dot */
        int family; /* AF_INET or AF_INET6 for an address, else 0 */
        uint8_t addr[16];
};

struct host_list {
        struct host *hosts;
        size_t n;
        bool any; /* "*" */
};

static void host_list_done(struct host_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->hosts[i].name);
        free(l->hosts);
        *l = (struct host_list){};
}

static bool host_name_is_valid(const char *s) {
        size_t n = strlen(s), label = 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i <= n; i++) {
                char c = s[i];
                if (c == '.' || c == '\0') {
                        /* labels of 1 to 63, not starting or ending with '-' */
                        if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                                return false;
                        label = 0;
                } else if (isalnum((unsigned char)c) || c == '-' || c == '_')
                        label++;
                else
                        return false;
        }
        return true;
}

/* host (a URL's or a list entry's) normalised into h: brackets and one
 * trailing dot dropped, lowercase, an address literal parsed. -EINVAL when
 * it is neither a host name nor an address. */
static int host_parse(const char *s, struct host *ret) {
        _cleanup_free_ char *name = NULL;
        size_t n = strlen(s);
        struct host h = {};

        if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
                name = strndup(s + 1, n - 2);
                if (!name)
                        return -ENOMEM;
                if (inet_pton(AF_INET6, name, h.addr) != 1)
                        return -EINVAL;
                h.family = AF_INET6;
        } else {
                name = strdup(s);
                if (!name)
                        return -ENOMEM;
                if (n > 1 && name[n - 1] == '.')
                        name[n - 1] = '\0';
                for (char *p = name; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                if (inet_pton(AF_INET, name, h.addr) == 1)
                        h.family = AF_INET;
                else if (inet_pton(AF_INET6, name, h.addr) == 1)
                        h.family = AF_INET6;
                else if (!host_name_is_valid(name))
                        return -EINVAL;
        }
        h.name = TAKE_PTR(name);
        *ret = h;
        return 0;
}

static int host_list_parse(const char *s, struct host_list *ret, char **ret_why) {
        struct host_list l = {};
        const char *p = s ? s : "";
        int r = 0;

        /* Only blanks: callbacks are off. */
        if (strspn(p, " \t") == strlen(p)) {
                *ret = l;
                return 0;
        }
        for (;;) {
                const char *end = p + strcspn(p, ","), *e = end;
                _cleanup_free_ char *entry = NULL;

                while (p < e && (*p == ' ' || *p == '\t'))
                        p++;
                while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                entry = strndup(p, (size_t)(e - p));
                if (!entry) {
                        r = -ENOMEM;
                        goto out_free_list;
                }
                if (entry[0] == '\0') {
                        r = fail(ret_why, -EINVAL,
                                 "CALLBACK_ALLOWED_HOSTS has an empty entry (\"%s\"); "
                                 "it is a comma-separated list of host names and addresses",
                                 s);
                        goto out_free_list;
                }
                if (strcmp(entry, "*") == 0)
                        l.any = true;
                else {
                        struct host h;
                        r = host_parse(entry, &h);
                        if (r == -EINVAL)
                                r = fail(ret_why, -EINVAL,
                                         "CALLBACK_ALLOWED_HOSTS: \"%s\" is not a host name, an IPv4 or IPv6 "
                                         "address or \"*\" (no schemes, ports or paths)",
                                         entry);
                        if (r < 0)
                                goto out_free_list;
                        struct host *hs = reallocarray(l.hosts, l.n + 1, sizeof *hs);
                        if (!hs) {
                                free(h.name);
                                r = -ENOMEM;
                                goto out_free_list;
                        }
                        l.hosts = hs;
                        l.hosts[l.n++] = h;
                }
                if (*end == '\0')
                        break;
                p = end + 1;
        }
        *ret = l;
        return 0;

out_free_list:
        host_list_done(&l);
        return r;
}

/* Whether the list names h, by name or by address. */
static bool host_list_has(const struct host_list *l, const struct host *h) {
        for (size_t i = 0; i < l->n; i++) {
                const struct host *e = &l->hosts[i];
                if (e->family != h->family)
                        continue;
                if (e->family == AF_INET    ? memcmp(e->addr, h->addr, 4) == 0
                    : e->family == AF_INET6 ? memcmp(e->addr, h->addr, 16) == 0
                                            : strcmp(e->name, h->name) == 0)
                        return true;
        }
        return false;
}

int webhook_options_check(const struct webhook_options *o, char **ret_why) {
        struct host_list l = {};
        bool on;
        int r;

        r = host_list_parse(o->allowed_hosts, &l, ret_why);
        if (r < 0)
                return r;
        on = l.any || l.n > 0;
        host_list_done(&l);
        if (o->secret) {
                uint8_t key[SECRET_MAX];
                size_t key_len;
                r = secret_decode(o->secret, key, &key_len, ret_why);
                explicit_bzero(key, sizeof key);
                if (r < 0)
                        return r;
        } else if (on)
                return fail(ret_why, -EINVAL,
                            "CALLBACK_ALLOWED_HOSTS names hosts but WEBHOOK_SECRET is not set: callbacks are "
                            "signed; set WEBHOOK_SECRET=whsec_<base64 of 24 to 64 random bytes>");
        return 0;
}

/* url parsed and checked as a callbackUrl (scheme, credentials, host): its
 * host into *ret. */
static int url_parse(const char *url, struct host *ret, char **ret_why) {
        _cleanup_(curl_url_cleanupp) CURLU *u = NULL;
        _cleanup_(curl_freep) char *scheme = NULL, *user = NULL, *password = NULL, *host = NULL, *zone = NULL;
        CURLUcode uc;
        int r;

        if (!url || !*url)
                return fail(ret_why, -EINVAL, "callbackUrl is empty");
        if (strlen(url) > URL_MAX)
                return fail(ret_why, -EINVAL, "callbackUrl is longer than %d characters", URL_MAX);
        r = curl_load(ret_why);
        if (r < 0)
                return r;
        u = cu.url();
        if (!u)
                return -ENOMEM;
        uc = cu.url_set(u, CURLUPART_URL, url, 0);
        if (uc != CURLUE_OK)
                return fail(ret_why, -EINVAL, "callbackUrl is not a URL: %s", cu.url_strerror(uc));
        if (cu.url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
                return fail(ret_why, -EINVAL, "callbackUrl must be an http or https URL, got scheme \"%s\"",
                            scheme ? scheme : "");
        /* Credentials in a URL end up in logs and in the receiver's: the
         * signature authenticates the callback instead. */
        if (cu.url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
            cu.url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
                return fail(ret_why, -EINVAL, "callbackUrl must not carry a user name or password");
        if (cu.url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
                return fail(ret_why, -EINVAL, "callbackUrl has no host");
        if (cu.url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK || strchr(host, '%'))
                return fail(ret_why, -EINVAL, "callbackUrl must not carry an IPv6 zone id");
        r = host_parse(host, ret);
        if (r == -EINVAL)
                return fail(ret_why, -EINVAL, "callbackUrl's host \"%s\" is not a host name or address", host);
        return r;
}

/* As webhook_check_url, with the list parsed and *ret_host, *ret_listed set
 * on success. */
static int check_url(const struct host_list *l, const char *url, struct host *ret_host, bool *ret_listed,
                     char **ret_why) {
        struct host h;
        char why[160];
        bool listed;
        int r;

        if (!l->any && l->n == 0)
                return fail(ret_why, -EPERM, "callbacks are off: CALLBACK_ALLOWED_HOSTS names no host");
        r = url_parse(url, &h, ret_why);
        if (r < 0)
                return r;
        listed = host_list_has(l, &h);
        if (!listed && !l->any)
                r = fail(ret_why, -EPERM, "callbackUrl's host %s is not in CALLBACK_ALLOWED_HOSTS", h.name);
        else if (!listed && h.family != 0 && addr_refused(h.family, h.addr, why, sizeof why))
                r = fail(ret_why, -EPERM,
                         "callbackUrl's address %s is %s: refused unless CALLBACK_ALLOWED_HOSTS lists it", h.name, why);
        if (r < 0) {
                free(h.name);
                return r;
        }
        if (ret_host)
                *ret_host = h;
        else
                free(h.name);
        if (ret_listed)
                *ret_listed = listed;
        return 0;
}

int webhook_check_url(const struct webhook_options *o, const char *url, char **ret_why) {
        struct host_list l = {};
        int r;

        r = host_list_parse(o->allowed_hosts, &l, ret_why);
        if (r < 0)
                return r;
        r = check_url(&l, url, NULL, NULL, ret_why);
        host_list_done(&l);
        return r;
}

/* ---- delivery ---- */

struct delivery {
        struct delivery *next;
        char *url;
        char *host; /* for the logs */
        char *msg_id;
        char *body;
        bool host_listed; /* by name or address: any address it resolves to may be reached */
        unsigned attempts;
        uint64_t first_ns; /* the first attempt's start */
        uint64_t next_ns;  /* the next attempt's */
};

struct webhooks {
        struct host_list hosts;
        uint8_t key[SECRET_MAX];
        size_t key_len;
        uint64_t connect_timeout_ms, timeout_ms, retry_for_ns, first_backoff_ms;
        void (*done)(void *userdata, const char *msg_id, enum webhook_outcome outcome);
        void *done_userdata;
        bool kept;

        pthread_mutex_t lock;
        pthread_cond_t cond;       /* CLOCK_MONOTONIC: the schedule changed, or stopping */
        struct delivery *schedule; /* by next_ns */
        atomic_bool stopping;
        struct webhook_stats stats;
        uint64_t rng;
        pthread_t threads[WEBHOOK_THREADS];
        size_t n_threads;
};

/* One attempt's outcome. */
struct attempt {
        bool host_listed;
        char refused[320]; /* why open_socket refused an address, if it did */
        size_t body_bytes;
        atomic_bool *stopping;
};

static void delivery_free(struct delivery *d) {
        if (!d)
                return;
        free(d->url);
        free(d->host);
        free(d->msg_id);
        free(d->body);
        free(d);
}

static bool msg_id_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > MSG_ID_MAX)
                return false;
        /* It goes into a header: nothing that could end or split it. */
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
                        return false;
        return true;
}

/* libcurl's socket for each address it connects to: the check that holds
 * whatever the name resolved to. */
static curl_socket_t open_socket(void *userdata, curlsocktype purpose, struct curl_sockaddr *a) {
        struct attempt *at = userdata;
        char why[160], addr[INET6_ADDRSTRLEN + 16];
        int fd;

        if (purpose != CURLSOCKTYPE_IPCXN) {
                snprintf(at->refused, sizeof at->refused, "not an IP connection");
                return CURL_SOCKET_BAD;
        }
        if (sockaddr_refused(&a->addr, a->addrlen, why, sizeof why, addr, sizeof addr) && !at->host_listed) {
                snprintf(at->refused, sizeof at->refused,
                         "address %s is %s: refused unless CALLBACK_ALLOWED_HOSTS lists the host", addr, why);
                return CURL_SOCKET_BAD;
        }
        fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* The receiver's answer is not used: read up to RESPONSE_MAX, then stop. */
static size_t discard_body(char *p, size_t size, size_t n, void *userdata) {
        struct attempt *at = userdata;

        at->body_bytes += size * n;
        if (at->body_bytes > RESPONSE_MAX)
                return 0;
        return size * n;
}

static int check_stopping(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        struct attempt *at = userdata;
        return atomic_load(at->stopping) ? 1 : 0;
}

/* One attempt of d: 0 when delivered (a 2xx), else -errno with *ret_status
 * (0 without an answer) and *ret_error (malloc'd) saying what failed. */
static int attempt_make(struct webhooks *w, const struct delivery *d, long *ret_status, char **ret_error) {
        _cleanup_(curl_easy_cleanupp) CURL *h = NULL;
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_free_ char *signature = NULL, *hdr_id = NULL, *hdr_ts = NULL, *hdr_sig = NULL;
        struct attempt at = { .host_listed = d->host_listed, .stopping = &w->stopping };
        char errbuf[CURL_ERROR_SIZE] = "";
        long status = 0;
        CURLcode res;
        int r;

        *ret_status = 0;
        *ret_error = NULL;

        /* The same webhook-id every attempt; a fresh timestamp, so a
         * receiver's replay window holds for retries as well. */
        int64_t ts = (int64_t)time(NULL);
        r = sign_with_key(w->key, w->key_len, d->msg_id, ts, d->body, &signature);
        if (r < 0)
                return r;
        hdr_id = strdup_printf("webhook-id: %s", d->msg_id);
        hdr_ts = strdup_printf("webhook-timestamp: %lld", (long long)ts);
        hdr_sig = strdup_printf("webhook-signature: %s", signature);
        if (!hdr_id || !hdr_ts || !hdr_sig)
                return -ENOMEM;
        static const char *const fixed[] = {
                "Content-Type: application/json",
                /* no 100-continue round trip for a large result */
                "Expect:",
        };
        const char *all[] = { fixed[0], fixed[1], hdr_id, hdr_ts, hdr_sig };
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                struct curl_slist *l = cu.slist_append(headers, all[i]);
                if (!l)
                        return -ENOMEM;
                headers = l;
        }

        h = cu.easy_init();
        if (!h)
                return -ENOMEM;
        bool ok = true;
#define SET(opt, val) ok = ok && cu.easy_setopt(h, opt, val) == CURLE_OK
        SET(CURLOPT_URL, d->url);
        SET(CURLOPT_ERRORBUFFER, errbuf);
        /* Not through signals: this is one thread of several. */
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        /* A redirect would lead to a host that was never checked: a 3xx is
         * a failed attempt. */
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        /* No proxy, whatever the environment says (http_proxy...): the
         * proxy would connect, past open_socket. */
        SET(CURLOPT_PROXY, "");
        SET(CURLOPT_NOPROXY, "*");
        SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SET(CURLOPT_OPENSOCKETDATA, &at);
        SET(CURLOPT_CONNECTTIMEOUT_MS, (long)w->connect_timeout_ms);
        SET(CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
        SET(CURLOPT_WRITEFUNCTION, discard_body);
        SET(CURLOPT_WRITEDATA, &at);
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)RESPONSE_MAX);
        SET(CURLOPT_NOPROGRESS, 0L);
        SET(CURLOPT_XFERINFOFUNCTION, check_stopping);
        SET(CURLOPT_XFERINFODATA, &at);
        SET(CURLOPT_USERAGENT, "pyexec/" PYEXEC_VERSION);
        SET(CURLOPT_HTTPHEADER, headers);
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, d->body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->body));
#undef SET
        if (!ok)
                return -EINVAL;

        res = cu.easy_perform(h);
        cu.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        /* A 2xx counts even when the answer was cut off for its size. */
        if (status >= 200 && status <= 299 &&
            (res == CURLE_OK || res == CURLE_WRITE_ERROR || res == CURLE_FILESIZE_EXCEEDED))
                return 0;
        if (at.refused[0])
                *ret_error = strdup(at.refused);
        else if (res != CURLE_OK)
                *ret_error = strdup_printf("%s%s%s", cu.easy_strerror(res), errbuf[0] ? ": " : "", errbuf);
        else
                *ret_error = strdup_printf("HTTP status %ld", status);
        return res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EPROTO;
}

/* Under the lock: d into the schedule, by next_ns. */
static void schedule_insert(struct webhooks *w, struct delivery *d) {
        struct delivery **p = &w->schedule;

        while (*p && (*p)->next_ns <= d->next_ns)
                p = &(*p)->next;
        d->next = *p;
        *p = d;
        pthread_cond_broadcast(&w->cond);
}

/* Under the lock: the wait before attempt n + 1, with +-20% jitter so that
 * deliveries failing together do not retry together. */
static uint64_t backoff_ns(struct webhooks *w, unsigned attempts) {
        uint64_t ms = w->first_backoff_ms;

        for (unsigned i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
                ms *= 2;
        if (ms > BACKOFF_MAX_MS)
                ms = BACKOFF_MAX_MS;
        /* xorshift64: jitter needs no cryptographic randomness */
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        uint64_t permille = 800 + w->rng % 401;
        return ms * permille * 1000;
}

static void log_given_up(const struct delivery *d, const char *reason) {
        log_event(LOG_ERROR, "webhook given up",
                  json_pack("{s:s,s:s,s:i,s:s}", "msgId", d->msg_id, "host", d->host, "attempts", (int)d->attempts,
                            "reason", reason));
}

/* Called with w->lock held, which it drops while done() runs. */
static void delivery_end(struct webhooks *w, struct delivery *d, enum webhook_outcome outcome) {
        if (w->done) {
                pthread_mutex_unlock(&w->lock);
                w->done(w->done_userdata, d->msg_id, outcome);
                pthread_mutex_lock(&w->lock);
        }
        delivery_free(d);
}

/* The process stops before d is delivered: given up, unless it is kept
 * elsewhere for another process (webhook_options.kept). */
static void delivery_abandon(struct webhooks *w, struct delivery *d) {
        w->stats.pending--;
        if (w->kept)
                log_event(LOG_INFO, "webhook left for another process: the service is stopping",
                          json_pack("{s:s,s:s,s:i}", "msgId", d->msg_id, "host", d->host, "attempts",
                                    (int)d->attempts));
        else {
                w->stats.given_up++;
                log_given_up(d, "the service is stopping");
        }
        delivery_end(w, d, WEBHOOK_ABANDONED);
}

static void *delivery_thread(void *userdata) {
        struct webhooks *w = userdata;

        pthread_mutex_lock(&w->lock);
        while (!atomic_load(&w->stopping)) {
                struct delivery *d = w->schedule;
                uint64_t now = now_ns();

                if (!d) {
                        pthread_cond_wait(&w->cond, &w->lock);
                        continue;
                }
                if (d->next_ns > now) {
                        struct timespec until = { .tv_sec = (time_t)(d->next_ns / 1000000000ull),
                                                  .tv_nsec = (long)(d->next_ns % 1000000000ull) };
                        pthread_cond_timedwait(&w->cond, &w->lock, &until);
                        continue;
                }
                w->schedule = d->next;
                d->next = NULL;
                if (d->attempts++ == 0 && !d->first_ns)
                        d->first_ns = now;
                w->stats.attempts++;
                pthread_mutex_unlock(&w->lock);

                long status = 0;
                _cleanup_free_ char *error = NULL;
                int r = attempt_make(w, d, &status, &error);

                pthread_mutex_lock(&w->lock);
                now = now_ns();
                if (r >= 0) {
                        w->stats.delivered++;
                        w->stats.pending--;
                        log_event(LOG_INFO, "webhook delivered",
                                  json_pack("{s:s,s:s,s:I,s:i}", "msgId", d->msg_id, "host", d->host, "status",
                                            (json_int_t)status, "attempt", (int)d->attempts));
                        delivery_end(w, d, WEBHOOK_DELIVERED);
                        continue;
                }
                w->stats.failed_attempts++;
                json_t *f = json_pack("{s:s,s:s,s:i}", "msgId", d->msg_id, "host", d->host, "attempt",
                                      (int)d->attempts);
                if (status > 0)
                        json_object_set_new(f, "status", json_integer(status));
                json_object_set_new(f, "error", json_string(error ? error : strerror(-r)));

                uint64_t deadline = d->first_ns + w->retry_for_ns;
                if (atomic_load(&w->stopping)) {
                        log_event(LOG_WARN, "webhook attempt failed", f);
                        delivery_abandon(w, d);
                        continue;
                }
                if (now >= deadline) {
                        log_event(LOG_WARN, "webhook attempt failed", f);
                        w->stats.given_up++;
                        w->stats.pending--;
                        log_given_up(d, "no 2xx answer within WEBHOOK_RETRY_FOR");
                        delivery_end(w, d, WEBHOOK_GIVEN_UP);
                        continue;
                }
                /* No attempt starts after the deadline, but one starts at it. */
                d->next_ns = now + backoff_ns(w, d->attempts);
                if (d->next_ns > deadline)
                        d->next_ns = deadline;
                json_object_set_new(f, "retryInMs", json_integer((json_int_t)((d->next_ns - now) / 1000000)));
                log_event(LOG_WARN, "webhook attempt failed", f);
                schedule_insert(w, d);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int webhooks_send(struct webhooks *w, const char *url, const char *msg_id, const char *body) {
        return webhooks_send_since(w, url, msg_id, body, 0);
}

int webhooks_send_since(struct webhooks *w, const char *url, const char *msg_id, const char *body,
                        uint64_t first_unix_ms) {
        _cleanup_free_ char *why = NULL;
        struct delivery *d;
        struct host h;
        bool listed;
        int r;

        if (!msg_id_is_valid(msg_id) || !body)
                return -EINVAL;
        r = check_url(&w->hosts, url, &h, &listed, &why);
        if (r < 0) {
                log_event(LOG_WARN, "webhook refused",
                          json_pack("{s:s,s:s}", "msgId", msg_id, "error", why ? why : strerror(-r)));
                return r;
        }
        d = calloc(1, sizeof *d);
        if (!d) {
                free(h.name);
                return -ENOMEM;
        }
        d->host = h.name;
        d->host_listed = listed;
        d->url = strdup(url);
        d->msg_id = strdup(msg_id);
        d->body = strdup(body);
        if (!d->url || !d->msg_id || !d->body) {
                delivery_free(d);
                return -ENOMEM;
        }

        pthread_mutex_lock(&w->lock);
        if (w->stats.pending >= PENDING_MAX) {
                pthread_mutex_unlock(&w->lock);
                delivery_free(d);
                return -ENOBUFS;
        }
        w->stats.pending++;
        d->next_ns = now_ns();
        if (first_unix_ms) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
                uint64_t age_ns = now_ms > first_unix_ms ? (now_ms - first_unix_ms) * 1000000 : 0;
                d->first_ns = d->next_ns > age_ns ? d->next_ns - age_ns : 1;
        }
        schedule_insert(w, d);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

void webhooks_stats(struct webhooks *w, struct webhook_stats *ret) {
        pthread_mutex_lock(&w->lock);
        *ret = w->stats;
        pthread_mutex_unlock(&w->lock);
}

int webhooks_new(const struct webhook_options *o, struct webhooks **ret) {
        _cleanup_free_ char *why = NULL;
        struct webhooks *w;
        pthread_condattr_t ca;
        int r;

        r = webhook_options_check(o, &why);
        if (r < 0)
                goto out_log;
        r = curl_load(&why);
        if (r < 0)
                goto out_log;
        r = crypto_load(&why);
        if (r < 0)
                goto out_log;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        r = host_list_parse(o->allowed_hosts, &w->hosts, NULL);
        if (r >= 0 && o->secret)
                r = secret_decode(o->secret, w->key, &w->key_len, NULL);
        if (r < 0) {
                host_list_done(&w->hosts);
                free(w);
                return r;
        }
        w->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
        w->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
        /* (saturated: a year of retries is as good as forever) */
        w->retry_for_ns = (o->retry_for_s < 366 * 86400ull ? o->retry_for_s : 366 * 86400ull) * 1000000000ull;
        w->first_backoff_ms = o->first_backoff_ms ? o->first_backoff_ms : DEFAULT_FIRST_BACKOFF_MS;
        w->done = o->done;
        w->done_userdata = o->done_userdata;
        w->kept = o->kept;
        if (getrandom(&w->rng, sizeof w->rng, GRND_NONBLOCK) != sizeof w->rng || w->rng == 0)
                w->rng = now_ns() | 1;

        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &ca);
        pthread_condattr_destroy(&ca);
        for (; w->n_threads < WEBHOOK_THREADS; w->n_threads++) {
                r = -pthread_create(&w->threads[w->n_threads], NULL, delivery_thread, w);
                if (r < 0) {
                        webhooks_free(w);
                        return r;
                }
        }
        *ret = w;
        return 0;

out_log:
        log_event(LOG_ERROR, "cannot start the webhooks' delivery",
                  json_pack("{s:s}", "error", why ? why : strerror(-r)));
        return r;
}

void webhooks_free(struct webhooks *w) {
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        atomic_store(&w->stopping, true);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; i < w->n_threads; i++)
                pthread_join(w->threads[i], NULL);

        /* The threads gave up what they were attempting; the rest here,
         * under the lock as delivery_end() expects (it drops it around
         * done()). */
        pthread_mutex_lock(&w->lock);
        for (struct delivery *d = w->schedule, *next; d; d = next) {
                next = d->next;
                delivery_abandon(w, d);
        }
        w->schedule = NULL;
        pthread_mutex_unlock(&w->lock);
        if (w->stats.given_up > 0 || w->stats.delivered > 0)
                log_event(LOG_INFO, "webhooks stopped",
                          json_pack("{s:I,s:I,s:I}", "delivered", (json_int_t)w->stats.delivered, "givenUp",
                                    (json_int_t)w->stats.given_up, "attempts", (json_int_t)w->stats.attempts));
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        host_list_done(&w->hosts);
        explicit_bzero(w->key, sizeof w->key);
        free(w);
}
