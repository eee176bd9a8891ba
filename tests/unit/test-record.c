/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal's byte format: CRC, header, frames, varints and fields, and how damage is refused. */

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "crc32c.h"
#include "log.h"
#include "record.h"

/* Bit by bit, straight from the definition: the reference the table-driven code must match. */
static uint32_t crc32c_reference(uint32_t crc, const uint8_t *p, size_t n) {
        crc = ~crc;
        while (n--) {
                crc ^= *p++;
                for (unsigned k = 0; k < 8; k++)
                        crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
        return ~crc;
}

static void test_crc32c(void) {
        uint8_t buf[1024 + 16];

        g_assert_cmphex(crc32c(0, "123456789", 9), ==, 0xe3069283u);
        g_assert_cmphex(crc32c(0, NULL, 0), ==, 0);
        /* RFC 3720 B.4: 32 bytes of zeros, and of 0xff */
        memset(buf, 0, 32);
        g_assert_cmphex(crc32c(0, buf, 32), ==, 0x8a9136aau);
        memset(buf, 0xff, 32);
        g_assert_cmphex(crc32c(0, buf, 32), ==, 0x62a8ab43u);

        /* chaining equals one pass */
        g_assert_cmphex(crc32c(crc32c(0, "1234", 4), "56789", 5), ==, 0xe3069283u);

        /* every length and alignment around the 8-byte steps */
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (i * 131 + 7);
        for (size_t align = 0; align < 8; align++)
                for (size_t n = 0; n < 80; n++)
                        g_assert_cmphex(crc32c(0, buf + align, n), ==, crc32c_reference(0, buf + align, n));
        g_assert_cmphex(crc32c(0, buf + 3, 1024), ==, crc32c_reference(0, buf + 3, 1024));
}

static void test_header(void) {
        uint8_t h[RECORD_HEADER_SIZE];

        record_header_write(h, 0x5a17u);
        g_assert_cmpmem(h, 8, RECORD_FILE_MAGIC, 8);
        g_assert_cmpint(record_header_check(h, sizeof(h), NULL), ==, 0);
        g_assert_cmpint(record_header_check(h, sizeof(h) - 1, NULL), ==, -EBADMSG);
        g_assert_cmpint(record_header_check(NULL, 0, NULL), ==, -EBADMSG);

        h[0] = 'X';
        g_assert_cmpint(record_header_check(h, sizeof(h), NULL), ==, -EBADMSG);

        record_header_write(h, 0x5a17u);
        h[8] = 2;       /* version 2 */
        g_assert_cmpint(record_header_check(h, sizeof(h), NULL), ==, -EPROTONOSUPPORT);

        uint32_t salt = 0;
        record_header_write(h, 0xdeadbeefu);
        g_assert_cmpint(record_header_check(h, sizeof(h), &salt), ==, 0);
        g_assert_cmphex(salt, ==, 0xdeadbeefu);
}

/* A frame written with one file's salt is damage in another file: the checksum is seeded. */
static void test_frame_salt(void) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        const void *payload;
        size_t size, frame;

        record_frame_append(b, 1, "forged", 6);
        g_assert_cmpint(record_frame_parse(b->data, b->len, 1, &payload, &size, &frame), ==, 0);
        g_assert_cmpint(record_frame_parse(b->data, b->len, 2, &payload, &size, &frame), ==, -EBADMSG);
}

static void test_frame(void) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        const void *payload;
        size_t size, frame;

        record_frame_append(b, 0x5a17u, "hello", 5);
        record_frame_append(b, 0x5a17u, NULL, 0);
        g_assert_cmpuint(b->len, ==, 2 * RECORD_FRAME_OVERHEAD + 5);

        g_assert_cmpint(record_frame_parse(b->data, b->len, 0x5a17u, &payload, &size, &frame), ==, 0);
        g_assert_cmpmem(payload, size, "hello", 5);
        g_assert_cmpuint(frame, ==, RECORD_FRAME_OVERHEAD + 5);
        g_assert_cmpint(record_frame_parse(b->data + frame, b->len - frame, 0x5a17u, &payload, &size, &frame), ==, 0);
        g_assert_cmpuint(size, ==, 0);

        /* every cut of the first frame is "not all here yet" */
        for (size_t n = 0; n < RECORD_FRAME_OVERHEAD + 5; n++)
                g_assert_cmpint(record_frame_parse(b->data, n, 0x5a17u, &payload, &size, &frame), ==, -EAGAIN);

        /* any flipped bit in size, crc or payload is caught */
        for (size_t i = 0; i < RECORD_FRAME_OVERHEAD + 5; i++)
                for (unsigned bit = 0; bit < 8; bit++) {
                        int r;

                        b->data[i] ^= 1u << bit;
                        r = record_frame_parse(b->data, RECORD_FRAME_OVERHEAD + 5, 0x5a17u, &payload, &size, &frame);
                        /* a bigger size runs past the end: a torn frame, as far as framing can tell */
                        g_assert_true(r == -EBADMSG || (i < 4 && r == -EAGAIN));
                        b->data[i] ^= 1u << bit;
                }

        /* sizes beyond the limit are damage, even when the buffer ends first */
        b->data[3] = 0x10;
        g_assert_cmpint(record_frame_parse(b->data, b->len, 0x5a17u, &payload, &size, &frame), ==, -EBADMSG);
}

static void test_varint_boundaries(void) {
        static const uint64_t values[] = {
                0, 1, 127, 128, 255, 16383, 16384, UINT32_MAX, (uint64_t) INT64_MAX,
                UINT64_C(1) << 63, UINT64_MAX - 1, UINT64_MAX,
        };
        static const size_t lengths[] = { 1, 1, 1, 2, 2, 2, 3, 5, 9, 10, 10, 10 };

        for (size_t i = 0; i < G_N_ELEMENTS(values); i++) {
                g_autoptr(GByteArray) b = g_byte_array_new();
                RecordReader r;
                RecordField f;

                record_begin(b, RECORD_JOB_UPDATE, values[i]);
                g_assert_cmpuint(b->len, ==, 1 + lengths[i]);
                record_put_u64(b, 1, values[i]);
                g_assert_cmpuint(b->len, ==, 1 + lengths[i] + 1 + lengths[i]);

                g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
                g_assert_cmpint(r.kind, ==, RECORD_JOB_UPDATE);
                g_assert_cmpuint(r.id, ==, values[i]);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
                g_assert_cmpuint(f.tag, ==, 1);
                g_assert_cmpint(f.wire, ==, RECORD_WIRE_VARINT);
                g_assert_cmpuint(f.u64, ==, values[i]);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 0);
        }
}

static void test_varint_malformed(void) {
        /* kind, then an id varint that is damaged in different ways */
        static const struct {
                uint8_t bytes[16];
                size_t n;
                int result;
        } cases[] = {
                /* UINT64_MAX, 2^63, then 65 bits, and an 11th byte */
                { { 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 11, 0 },
                { { 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 }, 11, 0 },
                { { 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 }, 11, -EBADMSG },
                { { 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00 }, 12, -EBADMSG },
                { { 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, 12, -EBADMSG },
                { { 1, 0x80 }, 2, -EBADMSG },
                { { 1 }, 1, -EBADMSG },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                RecordReader r;

                g_assert_cmpint(record_reader_init(&r, cases[i].bytes, cases[i].n), ==, cases[i].result);
        }
}

static void test_zigzag(void) {
        static const struct {
                int64_t v;
                uint64_t encoded;
        } cases[] = {
                { 0, 0 }, { -1, 1 }, { 1, 2 }, { -2, 3 }, { 63, 126 }, { -64, 127 }, { 64, 128 },
                { INT64_MAX, UINT64_MAX - 1 }, { INT64_MIN, UINT64_MAX },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(GByteArray) b = g_byte_array_new();
                RecordReader r;
                RecordField f;

                record_begin(b, RECORD_META, 0);
                record_put_i64(b, 7, cases[i].v);
                g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
                g_assert_cmpuint(f.u64, ==, cases[i].encoded);
                g_assert_cmpint(record_field_i64(&f), ==, cases[i].v);
        }
}

/* A payload with one field of every kind, with tags that need multi-byte keys too. */
static GByteArray *build_full_payload(void) {
        static const uint64_t u64v[] = { 0, 1, 128, UINT64_MAX };
        char *strv[] = { (char *) "", (char *) "a", (char *) "grüße", NULL };
        GByteArray *b = g_byte_array_new();

        record_begin(b, RECORD_JOB_NEW, 4242);
        record_put_u64(b, 1, 300);
        record_put_i64(b, 2, -5);
        record_put_bytes(b, 3, "\0\1\2", 3);
        record_put_str(b, 4, "jobd ✓");
        record_put_str(b, 5, NULL);
        record_put_strv(b, 6, strv);
        record_put_strv(b, 7, NULL);
        record_put_u64v(b, 8, u64v, G_N_ELEMENTS(u64v));
        record_put_u64v(b, 9, NULL, 0);
        record_put_u64(b, 100000, 1);
        record_put_bytes(b, UINT_MAX, "x", 1);
        return b;
}

static void test_fields_round_trip(void) {
        g_autoptr(GByteArray) b = build_full_payload();
        RecordReader r;
        RecordField f;

        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(r.kind, ==, RECORD_JOB_NEW);
        g_assert_cmpuint(r.id, ==, 4242);

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        g_assert_cmpuint(f.tag, ==, 1);
        g_assert_cmpuint(f.u64, ==, 300);

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        g_assert_cmpuint(f.tag, ==, 2);
        g_assert_cmpint(record_field_i64(&f), ==, -5);

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        g_assert_cmpuint(f.tag, ==, 3);
        g_assert_cmpint(f.wire, ==, RECORD_WIRE_BYTES);
        g_assert_cmpmem(f.data, f.size, "\0\1\2", 3);

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_autofree char *s = NULL;

                g_assert_cmpint(record_field_str(&f, &s), ==, 0);
                g_assert_cmpstr(s, ==, "jobd ✓");
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_autofree char *s = NULL;

                g_assert_cmpint(record_field_str(&f, &s), ==, 0);
                g_assert_cmpstr(s, ==, "");
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_auto(GStrv) v = NULL;

                g_assert_cmpint(f.wire, ==, RECORD_WIRE_STRINGS);
                g_assert_cmpuint(f.u64, ==, 3);
                g_assert_cmpint(record_field_strv(&f, &v), ==, 0);
                g_assert_cmpuint(g_strv_length(v), ==, 3);
                g_assert_cmpstr(v[0], ==, "");
                g_assert_cmpstr(v[1], ==, "a");
                g_assert_cmpstr(v[2], ==, "grüße");
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_auto(GStrv) v = NULL;

                g_assert_cmpint(record_field_strv(&f, &v), ==, 0);
                g_assert_nonnull(v);
                g_assert_null(v[0]);
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_autofree uint64_t *v = NULL;
                size_t n;

                g_assert_cmpint(f.wire, ==, RECORD_WIRE_VARINTS);
                g_assert_cmpint(record_field_u64v(&f, &v, &n), ==, 0);
                g_assert_cmpuint(n, ==, 4);
                g_assert_cmpuint(v[0], ==, 0);
                g_assert_cmpuint(v[1], ==, 1);
                g_assert_cmpuint(v[2], ==, 128);
                g_assert_cmpuint(v[3], ==, UINT64_MAX);
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_autofree uint64_t *v = NULL;
                size_t n = 1;

                g_assert_cmpint(record_field_u64v(&f, &v, &n), ==, 0);
                g_assert_cmpuint(n, ==, 0);
        }

        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        g_assert_cmpuint(f.tag, ==, 100000);
        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        g_assert_cmpuint(f.tag, ==, UINT_MAX);
        g_assert_cmpmem(f.data, f.size, "x", 1);

        g_assert_cmpint(record_reader_next(&r, &f), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, 0);
}

/* A reader of an older jobd that knows tags 1 and 2 only. */
static void test_unknown_tags_skipped(void) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        static const uint64_t v[] = { 1, 2, 3 };
        char *strv[] = { (char *) "x", NULL };
        uint64_t one = 0, two = 0;
        unsigned n_unknown = 0;
        RecordReader r;
        RecordField f;
        int k;

        record_begin(b, RECORD_JOB_UPDATE, 9);
        record_put_u64(b, 50, 1);
        record_put_u64(b, 1, 11);
        record_put_bytes(b, 51, "zzz", 3);
        record_put_u64v(b, 52, v, 3);
        record_put_strv(b, 53, strv);
        record_put_u64(b, 2, 22);
        record_put_str(b, 54, "tail");

        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        while ((k = record_reader_next(&r, &f)) > 0)
                switch (f.tag) {
                case 1:
                        one = f.u64;
                        break;
                case 2:
                        two = f.u64;
                        break;
                default:
                        /* tags 50..53 were written with wire types 0..3, tag 54 as bytes */
                        n_unknown++;
                        g_assert_cmpint(f.wire, ==,
                                        f.tag == 54 ? RECORD_WIRE_BYTES : (RecordWire) (f.tag - 50));
                }
        g_assert_cmpint(k, ==, 0);
        g_assert_cmpuint(one, ==, 11);
        g_assert_cmpuint(two, ==, 22);
        g_assert_cmpuint(n_unknown, ==, 5);

        /* an unknown wire type cannot be skipped: refused */
        b->len = 0;
        record_begin(b, RECORD_JOB_UPDATE, 9);
        g_byte_array_append(b, (const guint8 *) "\x0d\x01", 2);  /* tag 1, wire 5 */
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, -EBADMSG);
}

/* Parses everything, converting every field; 0 if well-formed. */
static int parse_all(const void *p, size_t n, unsigned *ret_n_fields) {
        RecordReader r;
        RecordField f;
        unsigned n_fields = 0;
        int k;

        if (record_reader_init(&r, p, n) < 0)
                return -EBADMSG;
        while ((k = record_reader_next(&r, &f)) > 0) {
                g_autofree char *s = NULL;
                g_auto(GStrv) v = NULL;
                g_autofree uint64_t *u = NULL;
                size_t un;

                n_fields++;
                if (f.wire == RECORD_WIRE_BYTES && (f.tag == 4 || f.tag == 5))
                        k = record_field_str(&f, &s);
                else if (f.wire == RECORD_WIRE_STRINGS)
                        k = record_field_strv(&f, &v);
                else if (f.wire == RECORD_WIRE_VARINTS)
                        k = record_field_u64v(&f, &u, &un);
                if (k < 0)
                        return k;
        }
        if (k < 0)
                return k;

        *ret_n_fields = n_fields;
        return 0;
}

static void test_truncation(void) {
        g_autoptr(GByteArray) b = build_full_payload();
        g_autoptr(GArray) boundaries = g_array_new(FALSE, FALSE, sizeof(size_t));
        unsigned n_fields;
        RecordReader r;
        RecordField f;
        size_t at;

        /* where each field ends: a cut exactly there is a valid, shorter payload */
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        at = r.p - b->data;
        g_array_append_val(boundaries, at);
        while (record_reader_next(&r, &f) > 0) {
                at = r.p - b->data;
                g_array_append_val(boundaries, at);
        }
        g_assert_cmpuint(at, ==, b->len);

        for (size_t n = 0, next = 0; n < b->len; n++) {
                /* copied, so ASan sees any read past the cut */
                g_autofree uint8_t *copy = g_memdup2(b->data, n);

                if (next < boundaries->len && g_array_index(boundaries, size_t, next) == n) {
                        g_assert_cmpint(parse_all(copy, n, &n_fields), ==, 0);
                        g_assert_cmpuint(n_fields, ==, next);
                        next++;
                } else
                        g_assert_cmpint(parse_all(copy, n, &n_fields), ==, -EBADMSG);
        }

        g_assert_cmpint(parse_all(b->data, b->len, &n_fields), ==, 0);
        g_assert_cmpuint(n_fields, ==, boundaries->len - 1);
}

static void test_malformed(void) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        RecordReader r;
        RecordField f;

        /* empty, unknown kinds */
        g_assert_cmpint(record_reader_init(&r, "", 0), ==, -EBADMSG);
        g_assert_cmpint(record_reader_init(&r, "\x00\x01", 2), ==, -EBADMSG);
        g_assert_cmpint(record_reader_init(&r, "\x05\x01", 2), ==, -EBADMSG);
        g_assert_cmpint(record_reader_init(&r, "\xff\x01", 2), ==, -EBADMSG);

        /* a count larger than the bytes left */
        record_begin(b, RECORD_JOB_NEW, 1);
        /* tag 1 VARINTS, count 2^32-1 */
        g_byte_array_append(b, (const guint8 *) "\x0a\xff\xff\xff\xff\x0f\x01", 7);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, -EBADMSG);

        b->len = 0;
        record_begin(b, RECORD_JOB_NEW, 1);
        /* tag 1 STRINGS: 2 strings, the first 5 bytes long */
        g_byte_array_append(b, (const guint8 *) "\x0b\x02\x05zz", 5);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, -EBADMSG);

        /* a BYTES length beyond the end */
        b->len = 0;
        record_begin(b, RECORD_JOB_NEW, 1);
        g_byte_array_append(b, (const guint8 *) "\x09\x80\x80\x80\x80\x10", 6);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, -EBADMSG);

        /* a tag beyond unsigned */
        b->len = 0;
        record_begin(b, RECORD_JOB_NEW, 1);
        g_byte_array_append(b, (const guint8 *) "\x80\x80\x80\x80\x80\x01\x00", 7);  /* key 2^35: tag 2^32 */
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, -EBADMSG);

        /* getters refuse the wrong wire type */
        b->len = 0;
        record_begin(b, RECORD_JOB_NEW, 1);
        record_put_u64(b, 1, 5);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
        {
                g_autofree char *s = NULL;
                g_auto(GStrv) v = NULL;
                g_autofree uint64_t *u = NULL;
                size_t n;

                g_assert_cmpint(record_field_str(&f, &s), ==, -EBADMSG);
                g_assert_cmpint(record_field_strv(&f, &v), ==, -EBADMSG);
                g_assert_cmpint(record_field_u64v(&f, &u, &n), ==, -EBADMSG);
                g_assert_null(s);
                g_assert_null(v);
                g_assert_null(u);
        }
}

static void test_bad_strings(void) {
        static const struct {
                const char *bytes;
                size_t n;
        } bad[] = {
                { "a\0b", 3 },
                { "\0", 1 },
                { "\xff", 1 },
                { "\xc0\x80", 2 },              /* overlong NUL */
                { "\xed\xa0\x80", 3 },          /* UTF-16 surrogate */
                { "gr\xc3", 3 },                /* cut multi-byte sequence */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(GByteArray) b = g_byte_array_new();
                g_autofree char *s = NULL;
                g_auto(GStrv) v = NULL;
                RecordReader r;
                RecordField f;

                record_begin(b, RECORD_JOB_NEW, 1);
                record_put_bytes(b, 1, bad[i].bytes, bad[i].n);
                /* the same bytes as the second element of a string list */
                g_byte_array_append(b, (const guint8 *) "\x13\x02\x02ok", 5);     /* tag 2 STRINGS, 2 */
                g_byte_array_append(b, (const guint8 *) &(uint8_t) { (uint8_t) bad[i].n }, 1);
                g_byte_array_append(b, (const guint8 *) bad[i].bytes, (guint) bad[i].n);

                g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
                g_assert_cmpint(record_field_str(&f, &s), ==, -EBADMSG);
                g_assert_null(s);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 1);
                g_assert_cmpuint(f.u64, ==, 2);
                g_assert_cmpint(record_field_strv(&f, &v), ==, -EBADMSG);
                g_assert_null(v);
                g_assert_cmpint(record_reader_next(&r, &f), ==, 0);
        }
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        if (getenv("JOBD_LOG_STDERR"))
                log_set_target(LOG_TARGET_STDERR);

        g_test_add_func("/record/crc32c", test_crc32c);
        g_test_add_func("/record/header", test_header);
        g_test_add_func("/record/frame", test_frame);
        g_test_add_func("/record/frame-salt", test_frame_salt);
        g_test_add_func("/record/varint-boundaries", test_varint_boundaries);
        g_test_add_func("/record/varint-malformed", test_varint_malformed);
        g_test_add_func("/record/zigzag", test_zigzag);
        g_test_add_func("/record/fields-round-trip", test_fields_round_trip);
        g_test_add_func("/record/unknown-tags-skipped", test_unknown_tags_skipped);
        g_test_add_func("/record/truncation", test_truncation);
        g_test_add_func("/record/malformed", test_malformed);
        g_test_add_func("/record/bad-strings", test_bad_strings);

        return g_test_run();
}
