/* SPDX-License-Identifier: MIT */
/*
 * sha256: FIPS 180-4 SHA-256, for the digests of job outputs. Small enough
 * to carry, so that `pyexec run` need not load a crypto library.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct sha256 {
        uint32_t h[8];
        uint64_t len; /* bytes hashed so far */
        unsigned char block[64];
        size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, unsigned char out[32]);
/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const unsigned char digest[32], char out[65]);
/* Digest of everything readable from fd (from its current offset). */
int sha256_fd(int fd, unsigned char out[32], uint64_t *ret_bytes);
