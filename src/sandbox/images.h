/* SPDX-License-Identifier: MIT */
/*
 * images: the pictures a program shows (matplotlib's plt.show(), the
 * figures open at its exit, Pillow's Image.show()), carried from the
 * program to the supervisor on a pipe of their own and checked there.
 *
 * The runner writes each picture as one frame: IMAGE_FRAME_MAGIC, the
 * PNG's length (4 bytes, little-endian), the PNG. The program can write
 * anything to that pipe, so the supervisor trusts none of it: a frame is
 * kept only if it is a well-formed PNG (signature, IHDR first, every
 * chunk's length and CRC, IEND last), its width and height are read from
 * its IHDR, and the run's caps on count and total bytes hold. A frame
 * beyond the caps is skipped as it arrives, never buffered; a header that
 * is not a frame's ends the channel (what follows is read and dropped).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyexec.h"

/* The cold path's runner finds the write end here (sandbox-child.c). */
#define RUNNER_IMAGE_FD 5

#define IMAGE_FRAME_MAGIC "PXI1"
#define IMAGE_FRAME_HEADER 8

/* Width and height a picture may have (PNG allows 2^31 - 1). */
#define IMAGE_MAX_SIDE 32768u

struct image_reader {
        unsigned max_images;
        uint64_t max_bytes; /* total PNG bytes of the images kept */
        uint64_t kept_bytes;
        unsigned char hdr[IMAGE_FRAME_HEADER];
        size_t hdr_len;
        bool in_frame;
        bool broken;         /* a header that is not a frame's: drop the rest */
        bool keep;           /* the current frame fits the caps */
        uint64_t frame_left; /* bytes of the current frame still to come */
        struct buf frame;
};

void image_reader_init(struct image_reader *r, unsigned max_images, uint64_t max_bytes);
void image_reader_done(struct image_reader *r);
/* Take n bytes of the channel; complete, valid frames within the caps go
 * into res->images, frames beyond them set res->images_truncated. Never
 * holds more than the current frame's bytes within the caps. */
void image_reader_feed(struct image_reader *r, const char *p, size_t n, struct pyexec_result *res);

/* Whether p is one well-formed PNG, exactly; its size from IHDR. */
bool image_png_check(const unsigned char *p, size_t n, uint32_t *ret_width, uint32_t *ret_height);
