/* SPDX-License-Identifier: MIT */
#include "images.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

static uint32_t be32(const unsigned char *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* CRC-32 as PNG (and zlib) computes it, table-driven. */
static uint32_t png_crc(const unsigned char *p, size_t n) {
        static uint32_t table[256];
        static _Atomic bool ready;
        uint32_t c = 0xffffffffu;

        if (!ready) {
                /* Idempotent: threads racing here write the same values. */
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t v = i;
                        for (int k = 0; k < 8; k++)
                                v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
                        table[i] = v;
                }
                ready = true;
        }
        for (size_t i = 0; i < n; i++)
                c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
        return c ^ 0xffffffffu;
}

bool image_png_check(const unsigned char *p, size_t n, uint32_t *ret_width, uint32_t *ret_height) {
        size_t off = sizeof png_signature;
        uint32_t width, height;
        bool first = true;

        if (n < off || memcmp(p, png_signature, sizeof png_signature) != 0)
                return false;
        for (;;) {
                uint32_t len;
                const unsigned char *type;
                /* length, type, data, CRC */
                if (n - off < 12)
                        return false;
                len = be32(p + off);
                if (len > 0x7fffffffu || len > n - off - 12)
                        return false;
                type = p + off + 4;
                if (be32(p + off + 8 + len) != png_crc(type, 4 + (size_t)len))
                        return false;
                if (first) {
                        if (memcmp(type, "IHDR", 4) != 0 || len != 13)
                                return false;
                        width = be32(type + 4);
                        height = be32(type + 8);
                        if (width == 0 || height == 0 || width > IMAGE_MAX_SIDE || height > IMAGE_MAX_SIDE)
                                return false;
                        first = false;
                }
                off += 12 + (size_t)len;
                if (memcmp(type, "IEND", 4) == 0) {
                        if (off != n)
                                return false;
                        *ret_width = width;
                        *ret_height = height;
                        return true;
                }
        }
}

void image_reader_init(struct image_reader *r, unsigned max_images, uint64_t max_bytes) {
        *r = (struct image_reader){ .max_images = max_images, .max_bytes = max_bytes };
        buf_init(&r->frame, max_bytes);
}

void image_reader_done(struct image_reader *r) {
        buf_done(&r->frame);
}

static void frame_end(struct image_reader *r, struct pyexec_result *res) {
        struct pyexec_image *v, *img;
        uint32_t width, height;

        r->in_frame = false;
        if (!r->keep)
                return;
        if (!image_png_check((const unsigned char *)r->frame.data, r->frame.len, &width, &height)) {
                buf_done(&r->frame);
                return;
        }
        v = realloc(res->images, (res->n_images + 1) * sizeof *v);
        if (!v) {
                buf_done(&r->frame);
                res->images_truncated = true;
                return;
        }
        res->images = v;
        img = &v[res->n_images++];
        *img = (struct pyexec_image){ .width = width, .height = height, .len = r->frame.len };
        img->data = buf_steal(&r->frame);
        r->kept_bytes += img->len;
}

void image_reader_feed(struct image_reader *r, const char *p, size_t n, struct pyexec_result *res) {
        while (n > 0 && !r->broken) {
                if (!r->in_frame) {
                        size_t take = IMAGE_FRAME_HEADER - r->hdr_len;
                        uint32_t len;
                        if (take > n)
                                take = n;
                        memcpy(r->hdr + r->hdr_len, p, take);
                        r->hdr_len += take;
                        p += take;
                        n -= take;
                        if (r->hdr_len < IMAGE_FRAME_HEADER)
                                return;
                        r->hdr_len = 0;
                        if (memcmp(r->hdr, IMAGE_FRAME_MAGIC, 4) != 0) {
                                r->broken = true;
                                return;
                        }
                        len = (uint32_t)r->hdr[4] | (uint32_t)r->hdr[5] << 8 | (uint32_t)r->hdr[6] << 16 |
                              (uint32_t)r->hdr[7] << 24;
                        r->in_frame = true;
                        r->frame_left = len;
                        /* Within both caps, or skipped unread. */
                        r->keep = res->n_images < r->max_images && len <= r->max_bytes - r->kept_bytes;
                        if (!r->keep)
                                res->images_truncated = true;
                        buf_done(&r->frame);
                        buf_init(&r->frame, r->keep ? len : 0);
                        if (len == 0)
                                frame_end(r, res);
                        continue;
                }
                size_t take = n < r->frame_left ? n : (size_t)r->frame_left;
                if (r->keep && buf_append(&r->frame, p, take) < 0) {
                        r->keep = false;
                        res->images_truncated = true;
                        buf_done(&r->frame);
                }
                p += take;
                n -= take;
                r->frame_left -= take;
                if (r->frame_left == 0)
                        frame_end(r, res);
        }
}
