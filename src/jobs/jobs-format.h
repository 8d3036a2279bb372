/* SPDX-License-Identifier: MIT */
/*
 * jobs-format: what an input file is, by its content. An input_file
 * parameter may declare the formats it takes (png, jpeg, webp, blend);
 * the file's first bytes are then checked against each format's signature
 * and, for images, the width and height are read from the header (PNG
 * IHDR, JPEG SOFn, WebP VP8/VP8L/VP8X) so that a decompression bomb is
 * refused before anything decodes it. Nothing here decodes pixels.
 *
 * The bytes come from a file a user chose and are parsed in the service's
 * own process: every length and offset in them is checked against the
 * buffer before it is used, and every loop advances. Pure: no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum job_format {
        JOB_FORMAT_PNG,
        JOB_FORMAT_JPEG,
        JOB_FORMAT_WEBP,
        JOB_FORMAT_BLEND,
        _JOB_FORMAT_MAX,
};

#define JOB_FORMAT_BIT(f) (1u << (f))
#define JOB_FORMAT_IMAGES \
        (JOB_FORMAT_BIT(JOB_FORMAT_PNG) | JOB_FORMAT_BIT(JOB_FORMAT_JPEG) | JOB_FORMAT_BIT(JOB_FORMAT_WEBP))

/* The default of max_pixels: 50 megapixels, several times a print-resolution
 * 4500x5400 template, far below what would exhaust a job's memory. */
#define JOB_DEFAULT_MAX_PIXELS 50000000ull
/* The largest max_pixels: VP8X's 24-bit sides. */
#define JOB_MAX_MAX_PIXELS (1ull << 48)

/* How much of a file is read for its header: the first bytes suffice for
 * everything but a JPEG, whose frame header may follow large metadata
 * segments (EXIF thumbnails, ICC profiles, XMP); one that puts it further
 * than this is refused. */
#define JOB_FORMAT_FIRST_READ 4096
#define JOB_FORMAT_MAX_READ (1u << 20)

/* "png", "jpeg", "webp", "blend"; NULL when out of range. */
const char *job_format_to_string(enum job_format f);
/* The format of a name ("jpg" is "jpeg"), or -EINVAL. */
int job_format_from_string(const char *s);
/* For messages: "a PNG image", "a Blender file (.blend)". */
const char *job_format_describe(enum job_format f);

struct job_sniff {
        int format;    /* enum job_format, or -1: none of them */
        bool has_size; /* images: width and height below */
        uint32_t width, height;
        char what[80]; /* what the data is, for a message: "it starts like text" */
};

/*
 * Identify the first n bytes of a file. complete: they are the whole file
 * (a header cut short is then damaged rather than not yet read).
 * 0: ret filled (format -1 when no format's signature matches; ret->what
 * says what it looks like). -EAGAIN: a known format whose dimensions lie
 * beyond the n bytes (read more, up to JOB_FORMAT_MAX_READ). -EBADMSG: a
 * known format (ret->format) whose header is damaged; ret->what says how.
 */
int job_format_sniff(const uint8_t *data, size_t n, bool complete, struct job_sniff *ret);
