/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Base64 (RFC 4648, the standard alphabet, padded), through libcrypto's
 * EVP_EncodeBlock/EVP_DecodeBlock, loaded on first use as the service's
 * other libraries are (webhook.c): a `pyexec run` that never needs it
 * never loads it.
 */

/* Whether s[0..n) is strict base64: only the alphabet, a multiple of four
 * characters, '=' only as the last one or two. The empty string is. */
bool base64_is_valid(const char *s, size_t n);

/* The bytes s[0..n) encode, or 0 when they are not base64. */
size_t base64_decoded_len(const char *s, size_t n);

/* -ENOENT with *ret_why (static text naming the package to install) when
 * libcrypto cannot be loaded; 0 once it is. */
int base64_load(const char **ret_why);

/* p[0..n) in base64, NUL-terminated, in a new buffer; its length in
 * *ret_len. -ENOMEM, or base64_load()'s error. */
int base64_encode(const void *p, size_t n, char **ret, size_t *ret_len);

/* The bytes of strict base64 s[0..n), in a new buffer (NUL-terminated,
 * which the length does not count). -EINVAL when s is not base64; -ENOMEM;
 * base64_load()'s error. */
int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len);
