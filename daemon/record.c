/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the journal's byte format (documented in record.h): the file header, the frame around each
 * payload, and the tagged fields inside a payload. Pure functions over memory, no I/O.
 *
 * Invariants: everything read comes from disk and may be anything, so readers bound every access
 * by the end of what they were given, never read past it, never allocate on the strength of a
 * count that the remaining bytes cannot hold, and answer -EBADMSG instead of asserting. Writers
 * assert only on our own bugs (a payload over RECORD_PAYLOAD_MAX). All integers are little endian
 * or LEB128 varints of at most 10 bytes.
 */

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "crc32c.h"
#include "record.h"

#define VARINT_MAX_BYTES 10u

static void store_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

static uint32_t load_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

void record_header_write(uint8_t ret[RECORD_HEADER_SIZE], uint32_t salt) {
        memcpy(ret, RECORD_FILE_MAGIC, 8);
        store_le32(ret + 8, RECORD_FILE_VERSION);
        store_le32(ret + 12, salt);
}

int record_header_check(const void *buf, size_t size, uint32_t *ret_salt) {
        const uint8_t *p = buf;

        if (size < RECORD_HEADER_SIZE || memcmp(p, RECORD_FILE_MAGIC, 8) != 0)
                return -EBADMSG;
        if (load_le32(p + 8) != RECORD_FILE_VERSION)
                return -EPROTONOSUPPORT;

        if (ret_salt)
                *ret_salt = load_le32(p + 12);
        return 0;
}

static uint32_t frame_crc(uint32_t salt, const uint8_t size_field[4], const void *payload, size_t size) {
        uint8_t s[4];

        store_le32(s, salt);
        return crc32c(crc32c(crc32c(0, s, 4), size_field, 4), payload, size);
}

void record_frame_append(GByteArray *out, uint32_t salt, const void *payload, size_t size) {
        uint8_t head[RECORD_FRAME_OVERHEAD];

        assert(out);
        assert(payload || size == 0);
        assert(size <= RECORD_PAYLOAD_MAX);

        store_le32(head, (uint32_t) size);
        store_le32(head + 4, frame_crc(salt, head, payload, size));
        g_byte_array_append(out, head, sizeof(head));
        if (size > 0)
                g_byte_array_append(out, payload, (guint) size);
}

int record_frame_parse(const void *buf, size_t size, uint32_t salt,
                       const void **ret_payload, size_t *ret_size, size_t *ret_frame_size) {
        const uint8_t *p = buf;
        uint32_t n;

        assert(ret_payload);
        assert(ret_size);
        assert(ret_frame_size);

        if (size < RECORD_FRAME_OVERHEAD)
                return -EAGAIN;

        /* Checked before the EOF test: a size we never write is damage, not a write cut short. */
        n = load_le32(p);
        if (n > RECORD_PAYLOAD_MAX)
                return -EBADMSG;
        if (n > size - RECORD_FRAME_OVERHEAD)
                return -EAGAIN;

        if (frame_crc(salt, p, p + RECORD_FRAME_OVERHEAD, n) != load_le32(p + 4))
                return -EBADMSG;

        *ret_payload = p + RECORD_FRAME_OVERHEAD;
        *ret_size = n;
        *ret_frame_size = RECORD_FRAME_OVERHEAD + (size_t) n;
        return 0;
}

static void put_varint(GByteArray *b, uint64_t v) {
        uint8_t buf[VARINT_MAX_BYTES];
        guint n = 0;

        for (; v >= 0x80; v >>= 7)
                buf[n++] = (uint8_t) v | 0x80;
        buf[n++] = (uint8_t) v;
        g_byte_array_append(b, buf, n);
}

static void put_key(GByteArray *b, unsigned tag, RecordWire wire) {
        put_varint(b, (uint64_t) tag << 3 | (uint64_t) wire);
}

static uint64_t zigzag_encode(int64_t v) {
        /* via unsigned: shifting a negative value left is undefined */
        return ((uint64_t) v << 1) ^ (uint64_t) (v < 0 ? -1 : 0);
}

/* Advances *p only on success. Rejects a varint whose 10th byte carries bits beyond 64. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
        const uint8_t *q = *p;
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                uint8_t c;

                if (q >= end)
                        return -EBADMSG;
                c = *q++;
                if (shift == 63 && c > 1)
                        return -EBADMSG;

                v |= (uint64_t) (c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *p = q;
                        *ret = v;
                        return 0;
                }
        }

        return -EBADMSG;
}

void record_begin(GByteArray *b, RecordKind kind, uint64_t id) {
        uint8_t k = (uint8_t) kind;

        assert(b);
        assert(kind > 0 && kind < _RECORD_KIND_MAX);

        /* Appends, so a caller may build several payloads in one buffer and slice it itself. */
        g_byte_array_append(b, &k, 1);
        put_varint(b, id);
}

void record_put_u64(GByteArray *b, unsigned tag, uint64_t v) {
        put_key(b, tag, RECORD_WIRE_VARINT);
        put_varint(b, v);
}

void record_put_i64(GByteArray *b, unsigned tag, int64_t v) {
        record_put_u64(b, tag, zigzag_encode(v));
}

void record_put_bytes(GByteArray *b, unsigned tag, const void *p, size_t n) {
        assert(p || n == 0);
        assert(n <= RECORD_PAYLOAD_MAX);

        put_key(b, tag, RECORD_WIRE_BYTES);
        put_varint(b, n);
        if (n > 0)
                g_byte_array_append(b, p, (guint) n);
}

void record_put_str(GByteArray *b, unsigned tag, const char *s) {
        s = s ?: "";
        record_put_bytes(b, tag, s, strlen(s));
}

void record_put_strv(GByteArray *b, unsigned tag, char *const *strv) {
        size_t n = 0;

        for (char *const *i = strv; i && *i; i++)
                n++;

        put_key(b, tag, RECORD_WIRE_STRINGS);
        put_varint(b, n);
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(strv[i]);

                assert(l <= RECORD_PAYLOAD_MAX);
                put_varint(b, l);
                g_byte_array_append(b, (const guint8 *) strv[i], (guint) l);
        }
}

void record_put_u64v(GByteArray *b, unsigned tag, const uint64_t *v, size_t n) {
        assert(v || n == 0);

        put_key(b, tag, RECORD_WIRE_VARINTS);
        put_varint(b, n);
        for (size_t i = 0; i < n; i++)
                put_varint(b, v[i]);
}

int record_reader_init(RecordReader *r, const void *payload, size_t size) {
        const uint8_t *p = payload, *end;
        uint64_t id;

        assert(r);

        if (size == 0)
                return -EBADMSG;
        end = p + size;
        if (p[0] == 0 || p[0] >= _RECORD_KIND_MAX)
                return -EBADMSG;

        *r = (RecordReader) {
                .kind = (RecordKind) p[0],
                .p = p + 1,
                .end = end,
        };
        if (get_varint(&r->p, end, &id) < 0)
                return -EBADMSG;
        r->id = id;
        return 0;
}

/* Steps over count elements; each is a varint, or (strings) a varint length and that many bytes. */
static int skip_elements(const uint8_t **p, const uint8_t *end, uint64_t count, bool strings) {
        const uint8_t *q = *p;

        /* Every element takes at least one byte: a count the rest cannot hold is damage, and it
         * bounds the loop by the payload size rather than by whatever the count claims. */
        if (count > (uint64_t) (end - q))
                return -EBADMSG;

        for (uint64_t i = 0; i < count; i++) {
                uint64_t v;

                if (get_varint(&q, end, &v) < 0)
                        return -EBADMSG;
                if (strings) {
                        if (v > (uint64_t) (end - q))
                                return -EBADMSG;
                        q += v;
                }
        }

        *p = q;
        return 0;
}

int record_reader_next(RecordReader *r, RecordField *ret) {
        const uint8_t *p;
        RecordField f = {};
        uint64_t key, n;

        assert(r);
        assert(ret);

        p = r->p;
        if (p >= r->end)
                return 0;

        if (get_varint(&p, r->end, &key) < 0)
                return -EBADMSG;
        if ((key >> 3) > UINT_MAX)
                return -EBADMSG;
        f.tag = (unsigned) (key >> 3);
        f.wire = (RecordWire) (key & 7);

        switch (f.wire) {

        case RECORD_WIRE_VARINT:
                if (get_varint(&p, r->end, &f.u64) < 0)
                        return -EBADMSG;
                break;

        case RECORD_WIRE_BYTES:
                if (get_varint(&p, r->end, &n) < 0 || n > (uint64_t) (r->end - p))
                        return -EBADMSG;
                f.data = p;
                f.size = n;
                p += n;
                break;

        case RECORD_WIRE_VARINTS:
        case RECORD_WIRE_STRINGS:
                if (get_varint(&p, r->end, &f.u64) < 0)
                        return -EBADMSG;
                f.data = p;
                if (skip_elements(&p, r->end, f.u64, f.wire == RECORD_WIRE_STRINGS) < 0)
                        return -EBADMSG;
                f.size = p - f.data;
                break;

        default:
                /* The wire type says how to skip a field we do not know; without it we cannot. */
                return -EBADMSG;
        }

        r->p = p;
        *ret = f;
        return 1;
}

int64_t record_field_i64(const RecordField *f) {
        assert(f);

        return (int64_t) (f->u64 >> 1) ^ -(int64_t) (f->u64 & 1);
}

static int dup_text(const uint8_t *p, size_t n, char **ret) {
        if (n == 0) {
                *ret = g_strdup("");    /* an empty field may come with data == NULL */
                return 0;
        }

        /* g_utf8_validate_len() with an explicit length also refuses embedded NUL bytes, which
         * would silently shorten the C string. */
        if (!g_utf8_validate_len((const char *) p, n, NULL))
                return -EBADMSG;

        *ret = g_strndup((const char *) p, n);
        return 0;
}

int record_field_str(const RecordField *f, char **ret) {
        assert(f);
        assert(ret);

        if (f->wire != RECORD_WIRE_BYTES)
                return -EBADMSG;

        return dup_text(f->data, f->size, ret);
}

int record_field_strv(const RecordField *f, char ***ret) {
        const uint8_t *p, *end;
        g_auto(GStrv) v = NULL;

        assert(f);
        assert(ret);

        if (f->wire != RECORD_WIRE_STRINGS)
                return -EBADMSG;

        /* Revalidated here: a RecordField is plain data and need not come from the reader. */
        p = f->data;
        end = p + f->size;
        if (f->u64 > f->size)
                return -EBADMSG;

        v = g_new0(char *, f->u64 + 1);
        for (uint64_t i = 0; i < f->u64; i++) {
                uint64_t l;

                if (get_varint(&p, end, &l) < 0 || l > (uint64_t) (end - p))
                        return -EBADMSG;
                if (dup_text(p, l, &v[i]) < 0)
                        return -EBADMSG;
                p += l;
        }
        if (p != end)
                return -EBADMSG;

        *ret = g_steal_pointer(&v);
        return 0;
}

int record_field_u64v(const RecordField *f, uint64_t **ret, size_t *ret_n) {
        const uint8_t *p, *end;
        g_autofree uint64_t *v = NULL;

        assert(f);
        assert(ret);
        assert(ret_n);

        if (f->wire != RECORD_WIRE_VARINTS)
                return -EBADMSG;

        p = f->data;
        end = p + f->size;
        if (f->u64 > f->size)
                return -EBADMSG;

        v = g_new(uint64_t, f->u64);
        for (uint64_t i = 0; i < f->u64; i++)
                if (get_varint(&p, end, &v[i]) < 0)
                        return -EBADMSG;
        if (p != end)
                return -EBADMSG;

        *ret = g_steal_pointer(&v);
        *ret_n = f->u64;
        return 0;
}
