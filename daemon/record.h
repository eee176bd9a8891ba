/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The journal's on-disk format, as pure functions over bytes: no I/O, no sd-event.
 *
 * File:    header (16 bytes: magic "JOBDJNL\n", u32le version, u32le salt), then frames.
 * Frame:   u32le payload size, u32le crc32c seeded with the file's salt over (size field ||
 *          payload), payload. The salt is random per file: payloads carry bytes that clients
 *          chose, and without the secret salt no client can lay out a frame that replay would
 *          accept when it resynchronises after damage.
 * Payload: u8 kind, varint job id, then fields until the end.
 * Field:   varint key = (tag << 3) | wire type, then the value:
 *            RECORD_WIRE_VARINT   varint (signed values zigzag-encoded by the writer)
 *            RECORD_WIRE_BYTES    varint length, bytes
 *            RECORD_WIRE_VARINTS  varint count, count varints
 *            RECORD_WIRE_STRINGS  varint count, count × (varint length, bytes)
 * Unknown tags are skipped by wire type, so newer writers stay readable.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define RECORD_FILE_MAGIC "JOBDJNL\n"
#define RECORD_FILE_VERSION 1u
#define RECORD_HEADER_SIZE 16u
#define RECORD_FRAME_OVERHEAD 8u
#define RECORD_PAYLOAD_MAX (64u * 1024u * 1024u)

typedef enum RecordKind {
        RECORD_JOB_NEW    = 1,  /* a job as a whole: Submit, and every job of a snapshot */
        RECORD_JOB_UPDATE = 2,  /* the fields of a job that changed */
        RECORD_JOB_PURGE  = 3,  /* the job is gone */
        RECORD_META       = 4,  /* manager-wide state (id 0), e.g. the next job id */
        _RECORD_KIND_MAX,
        _RECORD_KIND_INVALID = -EINVAL,
} RecordKind;

typedef enum RecordWire {
        RECORD_WIRE_VARINT  = 0,
        RECORD_WIRE_BYTES   = 1,
        RECORD_WIRE_VARINTS = 2,
        RECORD_WIRE_STRINGS = 3,
        _RECORD_WIRE_MAX,
} RecordWire;

/* Header */
void record_header_write(uint8_t ret[RECORD_HEADER_SIZE], uint32_t salt);
/* 0 and the file's salt; -EBADMSG: not a journal (bad magic, short); -EPROTONOSUPPORT: another
 * version */
int record_header_check(const void *buf, size_t size, uint32_t *ret_salt);

/* Framing. Appends size + crc + payload to out. */
void record_frame_append(GByteArray *out, uint32_t salt, const void *payload, size_t size);
/* Parses the frame at the start of buf.
 * 0: ok, *ret_payload and *ret_size set, *ret_frame_size = bytes the frame takes;
 * -EAGAIN: buf ends before the frame does (a torn tail when buf is the rest of the file);
 * -EBADMSG: checksum mismatch or size over RECORD_PAYLOAD_MAX. */
int record_frame_parse(const void *buf, size_t size, uint32_t salt,
                       const void **ret_payload, size_t *ret_size, size_t *ret_frame_size);

/* Payload writer */
void record_begin(GByteArray *b, RecordKind kind, uint64_t id);
void record_put_u64(GByteArray *b, unsigned tag, uint64_t v);
void record_put_i64(GByteArray *b, unsigned tag, int64_t v);
void record_put_bytes(GByteArray *b, unsigned tag, const void *p, size_t n);
void record_put_str(GByteArray *b, unsigned tag, const char *s);     /* NULL is written as "" */
void record_put_strv(GByteArray *b, unsigned tag, char *const *strv); /* NULL = empty */
void record_put_u64v(GByteArray *b, unsigned tag, const uint64_t *v, size_t n);

/* Payload reader: borrows the payload, never allocates. */
typedef struct RecordReader {
        const uint8_t *p, *end;
        RecordKind kind;
        uint64_t id;
} RecordReader;

typedef struct RecordField {
        unsigned tag;
        RecordWire wire;
        uint64_t u64;           /* VARINT: the value; VARINTS/STRINGS: the count */
        const uint8_t *data;    /* BYTES: the bytes; VARINTS/STRINGS: the encoded elements */
        size_t size;            /* BYTES: length; VARINTS/STRINGS: bytes of the encoded elements */
} RecordField;

/* 0 or -EBADMSG (empty, unknown kind, bad id varint) */
int record_reader_init(RecordReader *r, const void *payload, size_t size);
/* 1: *ret filled; 0: no more fields; -EBADMSG: malformed (value runs past the end, bad varint,
 * unknown wire type, element count that does not fit) */
int record_reader_next(RecordReader *r, RecordField *ret);

int64_t record_field_i64(const RecordField *f);  /* zigzag decode of u64 */
/* Copies: a NUL-terminated string; -EBADMSG if the bytes hold a NUL or are not UTF-8 */
int record_field_str(const RecordField *f, char **ret);
int record_field_strv(const RecordField *f, char ***ret);
int record_field_u64v(const RecordField *f, uint64_t **ret, size_t *ret_n);
