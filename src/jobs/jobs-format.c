/* SPDX-License-Identifier: MIT */
#include "jobs-format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
        const char *name;     /* the jobs.yaml spelling */
        const char *describe; /* for messages */
} formats[_JOB_FORMAT_MAX] = {
        [JOB_FORMAT_PNG] = { "png", "a PNG image" },
        [JOB_FORMAT_JPEG] = { "jpeg", "a JPEG image" },
        [JOB_FORMAT_WEBP] = { "webp", "a WebP image" },
        [JOB_FORMAT_BLEND] = { "blend", "a Blender file (.blend)" },
};

const char *job_format_to_string(enum job_format f) {
        return (unsigned)f < _JOB_FORMAT_MAX ? formats[f].name : NULL;
}

int job_format_from_string(const char *s) {
        if (strcmp(s, "jpg") == 0)
                return JOB_FORMAT_JPEG;
        for (int f = 0; f < _JOB_FORMAT_MAX; f++)
                if (strcmp(s, formats[f].name) == 0)
                        return f;
        return -EINVAL;
}

const char *job_format_describe(enum job_format f) {
        return (unsigned)f < _JOB_FORMAT_MAX ? formats[f].describe : "?";
}

static uint32_t be16(const uint8_t *p) {
        return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le16(const uint8_t *p) {
        return (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le24(const uint8_t *p) {
        return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t)p[3] << 24 | le24(p);
}

static int damaged(struct job_sniff *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int damaged(struct job_sniff *s, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->what, sizeof s->what, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static int sized(struct job_sniff *s, uint32_t w, uint32_t h) {
        if (w == 0 || h == 0)
                return damaged(s, "its header declares %ux%u pixels", w, h);
        s->has_size = true;
        s->width = w;
        s->height = h;
        return 0;
}

/* Not there yet: more to read, or, when this is all, cut short. */
static int short_header(struct job_sniff *s, bool complete) {
        if (!complete)
                return -EAGAIN;
        return damaged(s, "its header is cut short");
}

/* PNG: the signature, then the first chunk, which must be IHDR (13 bytes:
 * width and height first, each 1..2^31-1). */
static int sniff_png(const uint8_t *d, size_t n, bool complete, struct job_sniff *s) {
        uint32_t w, h;

        if (n < 24)
                return short_header(s, complete);
        if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0)
                return damaged(s, "its first chunk is not a valid IHDR");
        w = be32(d + 16);
        h = be32(d + 20);
        if (w > INT32_MAX || h > INT32_MAX)
                return damaged(s, "its IHDR declares sides beyond the PNG maximum");
        return sized(s, w, h);
}

/* SOFn markers carry the frame's size; C4 (DHT), C8 (JPG) and CC (DAC)
 * share their range but are not frame headers. */
static bool jpeg_is_sof(uint8_t m) {
        return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/*
 * JPEG: walk the marker segments from SOI to the first SOFn. Each segment
 * is 0xFF, fill bytes (0xFF), the marker, then (except for the standalone
 * markers) a big-endian length counting itself, so at least 2: every step
 * moves forward by at least 2 bytes and the walk ends at n.
 */
static int sniff_jpeg(const uint8_t *d, size_t n, bool complete, struct job_sniff *s) {
        size_t pos = 2;

        for (;;) {
                uint8_t m;
                uint32_t len;

                if (pos >= n)
                        return short_header(s, complete);
                if (d[pos] != 0xff)
                        return damaged(s, "a marker is missing at byte %zu", pos);
                while (pos < n && d[pos] == 0xff)
                        pos++;
                if (pos >= n)
                        return short_header(s, complete);
                m = d[pos++];
                if (m == 0x01 || (m >= 0xd0 && m <= 0xd7))
                        continue; /* TEM, RSTn: no length */
                if (m == 0xd8 || m == 0xd9 || m == 0xda || m == 0x00)
                        return damaged(s, "it has no frame header (SOF) before its image data");
                if (n - pos < 2)
                        return short_header(s, complete);
                len = be16(d + pos);
                if (len < 2)
                        return damaged(s, "a segment's length is %u", len);
                if (jpeg_is_sof(m)) {
                        if (len < 8)
                                return damaged(s, "its frame header is %u bytes long", len);
                        if (n - pos < 7)
                                return short_header(s, complete);
                        /* length, precision, height, width */
                        return sized(s, be16(d + pos + 5), be16(d + pos + 3));
                }
                if (len > n - pos)
                        return short_header(s, complete);
                pos += len;
        }
}

/* WebP: RIFF, its size, WEBP, then the first chunk: VP8 (lossy: a frame
 * tag, the start code 9d 01 2a, 14-bit sides), VP8L (lossless: 0x2f, then
 * 14-bit sides minus one) or VP8X (extended: 24-bit canvas sides minus one). */
static int sniff_webp(const uint8_t *d, size_t n, bool complete, struct job_sniff *s) {
        const uint8_t *c = d + 20; /* the first chunk's payload */
        uint32_t csize;

        if (n < 20)
                return short_header(s, complete);
        csize = le32(d + 16);
        if (memcmp(d + 12, "VP8 ", 4) == 0) {
                if (n < 30)
                        return short_header(s, complete);
                if (csize < 10 || c[3] != 0x9d || c[4] != 0x01 || c[5] != 0x2a)
                        return damaged(s, "its VP8 frame header is not valid");
                return sized(s, le16(c + 6) & 0x3fff, le16(c + 8) & 0x3fff);
        }
        if (memcmp(d + 12, "VP8L", 4) == 0) {
                uint32_t bits;
                if (n < 25)
                        return short_header(s, complete);
                if (csize < 5 || c[0] != 0x2f)
                        return damaged(s, "its VP8L header is not valid");
                bits = le32(c + 1);
                return sized(s, (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
        }
        if (memcmp(d + 12, "VP8X", 4) == 0) {
                if (n < 30)
                        return short_header(s, complete);
                if (csize < 10)
                        return damaged(s, "its VP8X header is not valid");
                return sized(s, le24(c + 4) + 1, le24(c + 7) + 1);
        }
        return damaged(s, "its first chunk is not VP8, VP8L or VP8X");
}

/* Signatures of what is not one of the formats, to say what was found. */
static const struct {
        const char *magic;
        size_t len;
        const char *what;
} others[] = {
        { "GIF8", 4, "it is a GIF image" },          { "BM", 2, "it is a BMP image" },
        { "II*\0", 4, "it is a TIFF image" },        { "MM\0*", 4, "it is a TIFF image" },
        { "%PDF", 4, "it is a PDF document" },       { "PK\3\4", 4, "it is a ZIP archive" },
        { "\177ELF", 4, "it is an ELF executable" }, { "#!", 2, "it is a script" },
        { "<svg", 4, "it is an SVG drawing" },
};

static bool looks_like_text(const uint8_t *d, size_t n) {
        if (n > 64)
                n = 64;
        for (size_t i = 0; i < n; i++)
                if (d[i] < 0x20 && d[i] != '\t' && d[i] != '\n' && d[i] != '\r')
                        return false;
        return true;
}

static void describe_other(const uint8_t *d, size_t n, struct job_sniff *s) {
        if (n == 0) {
                snprintf(s->what, sizeof s->what, "it is empty");
                return;
        }
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
                if (n >= others[i].len && memcmp(d, others[i].magic, others[i].len) == 0) {
                        snprintf(s->what, sizeof s->what, "%s", others[i].what);
                        return;
                }
        if (looks_like_text(d, n)) {
                snprintf(s->what, sizeof s->what, "it starts like text");
                return;
        }
        snprintf(s->what, sizeof s->what, "it starts with the bytes");
        for (size_t i = 0; i < n && i < 8; i++) {
                size_t l = strlen(s->what);
                snprintf(s->what + l, sizeof s->what - l, " %02x", d[i]);
        }
}

int job_format_sniff(const uint8_t *data, size_t n, bool complete, struct job_sniff *ret) {
        *ret = (struct job_sniff){ .format = -1 };

        if (n >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
                ret->format = JOB_FORMAT_PNG;
                snprintf(ret->what, sizeof ret->what, "it is a PNG image");
                return sniff_png(data, n, complete, ret);
        }
        if (n >= 3 && memcmp(data, "\xff\xd8\xff", 3) == 0) {
                ret->format = JOB_FORMAT_JPEG;
                snprintf(ret->what, sizeof ret->what, "it is a JPEG image");
                return sniff_jpeg(data, n, complete, ret);
        }
        if (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0) {
                ret->format = JOB_FORMAT_WEBP;
                snprintf(ret->what, sizeof ret->what, "it is a WebP image");
                return sniff_webp(data, n, complete, ret);
        }
        /* Blender writes "BLENDER" then the pointer size, the endianness and
         * the version; with "Compress" on, Blender 3.0 and later write the
         * whole file zstd-compressed and earlier ones gzip-compressed, which
         * Blender still reads. A compressed file's content is not looked
         * into: that would mean decompressing it here. */
        if ((n >= 7 && memcmp(data, "BLENDER", 7) == 0) || (n >= 4 && memcmp(data, "\x28\xb5\x2f\xfd", 4) == 0) ||
            (n >= 3 && memcmp(data, "\x1f\x8b\x08", 3) == 0)) {
                ret->format = JOB_FORMAT_BLEND;
                snprintf(ret->what, sizeof ret->what, "%s",
                         data[0] == 'B' ? "it is a Blender file" : "it is a compressed file");
                return 0;
        }
        describe_other(data, n, ret);
        return 0;
}
