/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Follow encoder over arbitrary bytes: log data comes from a job's stderr (any bytes, NULs
 * included), progress messages and errors from workers. Whatever comes in, the result must be
 * exactly one line of valid JSON with the fields in the documented order, and text that was
 * valid UTF-8 must come back unchanged (up to a NUL, where json-glib's strings end, and up to
 * FOLLOW_LINE_MAX).
 *
 * Input: byte 0 picks the event and where the rest splits into a first and a second text;
 * bytes 1-8 are the seq. Log data is the first text as is; the progress message, the status
 * and the error are the texts as C strings (they come from D-Bus strings).
 */

#include <json-glib/json-glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "follow.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a parser must give back for text: the same bytes when they were valid UTF-8; else
 * anything valid, which json-glib has already checked. */
static void check_text(JsonObject *o, const char *member, const char *text, size_t size) {
        const char *got = json_object_get_string_member(o, member);
        const char *nul = memchr(text, 0, size);

        check(got);
        if (nul)
                size = (size_t) (nul - text);
        if (size > FOLLOW_LINE_MAX)
                return;         /* cut: checked by the unit tests */
        if (!g_utf8_validate(text, (gssize) size, NULL))
                return;
        check(strlen(got) == size);
        check(memcmp(got, text, size) == 0);
}

static void check_members(JsonObject *o, const char *const *names) {
        g_autoptr(GList) members = json_object_get_members(o);
        GList *l = members;

        for (; *names; names++, l = l->next) {
                check(l);
                check(strcmp(l->data, *names) == 0);
        }
        check(!l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const kinds[] = { "status", "log", "progress", "end" };
        static const char *const status_members[] = { "seq", "time", "event", "status", NULL };
        static const char *const log_members[] = { "seq", "time", "event", "data", NULL };
        static const char *const progress_members[] = { "seq", "time", "event", "percent", "message", NULL };
        static const char *const end_members[] = {
                "seq", "time", "event", "status", "exit_status", "error", NULL
        };
        g_autoptr(GString) out = g_string_new("x");
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autoptr(GError) error = NULL;
        g_autofree char *first_str = NULL, *second_str = NULL, *prefix = NULL;
        const char *kind, *first, *second, *nl;
        size_t first_size, second_size, split;
        uint64_t seq = 0;
        uint8_t pick;
        JsonObject *o;

        if (size < 9)
                return 0;
        pick = data[0];
        kind = kinds[pick & 3];
        memcpy(&seq, data + 1, sizeof(seq));
        data += 9;
        size -= 9;
        split = size * (pick >> 2) / 63;
        first = (const char *) data;
        first_size = split;
        second = (const char *) data + split;
        second_size = size - split;
        first_str = g_strndup(first, first_size);
        second_str = g_strndup(second, second_size);

        follow_encode(out, seq, seq ^ UINT64_C(0x5555555555555555), kind,
                      strcmp(kind, "log") == 0 ? first : first_str,
                      strcmp(kind, "log") == 0 ? first_size : strlen(first_str),
                      (unsigned) seq, first_str, (int) seq, second_str);

        /* appended after what was there; one line, and no raw control character in it */
        check(out->str[0] == 'x');
        check(out->len >= 3 && out->str[out->len - 1] == '\n');
        check(strlen(out->str) == out->len);
        nl = memchr(out->str, '\n', out->len);
        check(nl == out->str + out->len - 1);
        for (size_t i = 1; i < out->len - 1; i++)
                check((uint8_t) out->str[i] >= 0x20 && out->str[i] != 0x7f);

        if (!json_parser_load_from_data(parser, out->str + 1, (gssize) (out->len - 2), &error)) {
                fprintf(stderr, "invalid JSON (%s): %s", error->message, out->str + 1);
                abort();
        }
        check(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
        o = json_node_get_object(json_parser_get_root(parser));
        /* json-glib reads integers as gint64: compare the text of the unsigned ones */
        prefix = g_strdup_printf("{\"seq\":%" G_GUINT64_FORMAT ",\"time\":%" G_GUINT64_FORMAT
                                 ",\"event\":\"%s\",", seq, seq ^ UINT64_C(0x5555555555555555), kind);
        check(g_str_has_prefix(out->str + 1, prefix));
        check(strcmp(json_object_get_string_member(o, "event"), kind) == 0);

        switch (pick & 3) {
        case 0:
                check_members(o, status_members);
                check_text(o, "status", first_str, strlen(first_str));
                break;
        case 1:
                check_members(o, log_members);
                check_text(o, "data", first, first_size);
                break;
        case 2:
                check_members(o, progress_members);
                check((unsigned) json_object_get_int_member(o, "percent") == (unsigned) seq);
                check_text(o, "message", first_str, strlen(first_str));
                break;
        case 3:
                check_members(o, end_members);
                check(json_object_get_int_member(o, "exit_status") == (int) seq);
                check_text(o, "status", first_str, strlen(first_str));
                check_text(o, "error", second_str, strlen(second_str));
                break;
        }
        return 0;
}
