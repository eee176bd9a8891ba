/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What jobctl prints: error lines, colours and glyphs (only on a terminal), aligned tables, sizes,
 * and JSON made from GVariants. Knows nothing of the bus or of verbs.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

/* Print to stderr; return -abs(error) so a caller can `return log_error_errno(r, "…: %m")`. */
int log_error_errno(int error, const char *format, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *format, ...) __attribute__((format(printf, 1, 2)));

#define ANSI_NORMAL     "\x1B[0m"
#define ANSI_RED        "\x1B[0;1;31m"
#define ANSI_GREEN      "\x1B[0;1;32m"
#define ANSI_YELLOW     "\x1B[0;1;33m"
#define ANSI_HIGHLIGHT  "\x1B[0;1;39m"
#define ANSI_UNDERLINE  "\x1B[0;4m"

/* stdout is a terminal, $NO_COLOR is unset and $TERM is not "dumb" */
bool colors_enabled(void);
/* code when colours are on, else "" */
const char *ansi(const char *code);

typedef enum Glyph {
        GLYPH_BLACK_CIRCLE,             /* ● active */
        GLYPH_WHITE_CIRCLE,             /* ○ waiting */
        GLYPH_MULTIPLICATION_SIGN,      /* × failed */
        GLYPH_ELLIPSIS,                 /* … */
        GLYPH_FULL_BLOCK,               /* █ a progress bar's done part */
        GLYPH_LIGHT_SHADE,              /* ░ and the rest */
        GLYPH_TREE_BRANCH,              /* ├─ a process in a list */
        GLYPH_TREE_RIGHT,               /* └─ the last one */
        _GLYPH_MAX,
} Glyph;

/* UTF-8 glyph, or an ASCII stand-in when the locale is not UTF-8 */
const char *glyph(Glyph g);

/* Terminal width of stdout, or 0 when it is not a terminal (no truncation then). */
unsigned columns(void);

/* Control characters escaped as \xNN, so remote text cannot drive the terminal. */
char *text_escape(const char *s);
/* Columns taken on a terminal by UTF-8 text. */
size_t text_width(const char *s);
/* s cut to at most width columns, the cut marked with an ellipsis */
char *text_ellipsize(const char *s, size_t width);

/* "4.0K", "512B", "1.5G" (base 1024, as systemd prints sizes); "infinity" for UINT64_MAX */
char *format_bytes(uint64_t bytes);

typedef struct Table Table;

/* Column headers, NULL-terminated. */
Table *table_new(const char *header, ...) G_GNUC_NULL_TERMINATED;
Table *table_free(Table *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Table, table_free)

void table_set_align_right(Table *t, unsigned column);
/* Cells fill rows left to right; text is escaped and copied, NULL prints as "-". color is an
 * ANSI_* code used only when colours are on. */
void table_add_cell(Table *t, const char *text, const char *color);
size_t table_get_rows(const Table *t);
/* Header only with legend; on a terminal the last column is cut to the width. */
void table_print(const Table *t, bool legend, FILE *f);

/* Native JSON for a GVariant: dictionaries become objects, arrays and tuples arrays, variants
 * their content. uint64 above INT64_MAX (json-glib has no unsigned) becomes a double. */
JsonNode *json_from_variant(GVariant *v);
/* One document and a newline on stdout; -EIO when stdout failed. */
int json_print(JsonNode *node, JsonMode mode);
