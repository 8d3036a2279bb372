/* SPDX-License-Identifier: MIT */
#include "base64.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* EVP_*Block take an int length: long inputs go by pieces of this many
 * bytes (a multiple of 3, so each piece's encoding is whole) and of the
 * matching characters. */
#define PIECE_BYTES (3u << 16)
#define PIECE_CHARS (PIECE_BYTES / 3 * 4)

static struct {
        void *handle;
        typeof(EVP_EncodeBlock) *encode_block;
        typeof(EVP_DecodeBlock) *decode_block;
} lc;

static const struct dl_sym crypto_syms[] = {
#define SYM(f, field) DL_SYM(lc, f, field)
        SYM(EVP_EncodeBlock, encode_block),
        SYM(EVP_DecodeBlock, decode_block),
#undef SYM
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_state;
static char load_err[256];

static void load(void) {
        load_state = dl_load("libcrypto.so.3", "libssl3", crypto_syms, ELEMENTSOF(crypto_syms), &lc, &lc.handle,
                             load_err, sizeof load_err);
}

int base64_load(const char **ret_why) {
        pthread_once(&load_once, load);
        if (load_state < 0 && ret_why)
                *ret_why = load_err;
        return load_state < 0 ? load_state : 0;
}

bool base64_is_valid(const char *s, size_t n) {
        size_t pad = 0;

        if (n % 4 != 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '=') {
                        /* only as the last one or two characters */
                        if (i + 2 < n)
                                return false;
                        pad++;
                } else if (pad > 0 || !(isalnum((unsigned char)c) || c == '+' || c == '/'))
                        return false;
        }
        return true;
}

size_t base64_decoded_len(const char *s, size_t n) {
        if (!base64_is_valid(s, n) || n == 0)
                return 0;
        return n / 4 * 3 - (s[n - 1] == '=') - (s[n - 2] == '=');
}

int base64_encode(const void *p, size_t n, char **ret, size_t *ret_len) {
        const unsigned char *in = p;
        size_t len = (n + 2) / 3 * 4, done = 0;
        char *out;
        int r = base64_load(NULL);

        if (r < 0)
                return r;
        out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i += PIECE_BYTES) {
                size_t k = n - i < PIECE_BYTES ? n - i : PIECE_BYTES;
                done += (size_t)lc.encode_block((unsigned char *)out + done, in + i, (int)k);
        }
        out[done] = 0;
        *ret = out;
        *ret_len = done;
        return 0;
}

/* EVP_DecodeBlock() also takes whitespace around the text and counts
 * padding as bytes (3 per 4 characters, '=' decoding to zeros): the text
 * is checked strictly first, and the length computed from it. */
int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len) {
        size_t len = base64_decoded_len(s, n), done = 0;
        uint8_t *out;
        int r;

        if (!base64_is_valid(s, n))
                return -EINVAL;
        r = base64_load(NULL);
        if (r < 0)
                return r;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i += PIECE_CHARS) {
                size_t k = n - i < PIECE_CHARS ? n - i : PIECE_CHARS;
                int got = lc.decode_block(out + done, (const unsigned char *)s + i, (int)k);
                if (got != (int)(k / 4 * 3)) {
                        free(out);
                        return -EINVAL;
                }
                done += (size_t)got;
        }
        out[len] = 0;
        *ret = out;
        *ret_len = len;
        return 0;
}
