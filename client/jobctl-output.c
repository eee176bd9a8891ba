/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Printing for jobctl. Everything a person sees from the bus passes text_escape() first: job
 * results, errors and even type descriptions are written by others, and must not be able to move
 * the cursor or retitle the terminal. JSON needs no such care: the generator escapes.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "jobctl-output.h"

static void log_va(const char *format, va_list ap) __attribute__((format(printf, 1, 0)));
static void log_va(const char *format, va_list ap) {
        fflush(stdout);         /* keep order when both go to one terminal */
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
}

int log_error_errno(int error, const char *format, ...) {
        va_list ap;

        error = abs(error);
        errno = error;          /* %m means this error, not whatever errno happens to be */
        va_start(ap, format);
        log_va(format, ap);
        va_end(ap);
        return -error;
}

void log_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_va(format, ap);
        va_end(ap);
}

void log_warning(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_va(format, ap);
        va_end(ap);
}

bool colors_enabled(void) {
        static int cached = -1;

        if (cached < 0) {
                const char *term = getenv("TERM");

                cached = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
                         !(term && strcmp(term, "dumb") == 0);
        }
        return cached;
}

const char *ansi(const char *code) {
        return colors_enabled() ? code : "";
}

const char *glyph(Glyph g) {
        static const char *const utf8[_GLYPH_MAX] = {
                [GLYPH_BLACK_CIRCLE]        = "\u25CF",
                [GLYPH_WHITE_CIRCLE]        = "\u25CB",
                [GLYPH_MULTIPLICATION_SIGN] = "\u00D7",
                [GLYPH_ELLIPSIS]            = "\u2026",
                [GLYPH_FULL_BLOCK]          = "\u2588",
                [GLYPH_LIGHT_SHADE]         = "\u2591",
                [GLYPH_TREE_BRANCH]         = "\u251C\u2500",
                [GLYPH_TREE_RIGHT]          = "\u2514\u2500",
        };
        static const char *const ascii[_GLYPH_MAX] = {
                [GLYPH_BLACK_CIRCLE]        = "*",
                [GLYPH_WHITE_CIRCLE]        = "o",
                [GLYPH_MULTIPLICATION_SIGN] = "x",
                [GLYPH_ELLIPSIS]            = "...",
                [GLYPH_FULL_BLOCK]          = "#",
                [GLYPH_LIGHT_SHADE]         = "-",
                [GLYPH_TREE_BRANCH]         = "|-",
                [GLYPH_TREE_RIGHT]          = "`-",
        };

        g_assert(g >= 0 && g < _GLYPH_MAX);
        /* g_get_charset() follows LC_CTYPE, which main() takes from the environment */
        return g_get_charset(NULL) ? utf8[g] : ascii[g];
}

unsigned columns(void) {
        static int cached = -1;

        if (cached < 0) {
                const char *e = getenv("COLUMNS");
                struct winsize ws = {};
                unsigned n = 0;

                if (!isatty(STDOUT_FILENO))
                        cached = 0;
                else if (e && sscanf(e, "%u", &n) == 1 && n > 0)
                        cached = (int) MIN(n, 10000u);
                else if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                        cached = ws.ws_col;
                else
                        cached = 80;
        }
        return cached;
}

char *text_escape(const char *s) {
        GString *out;

        if (!s)
                return NULL;

        out = g_string_sized_new(strlen(s));
        if (!g_utf8_validate(s, -1, NULL)) {
                /* not from the bus (it checks), so be blunt: every odd byte escaped */
                for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                        if (*p < 0x20 || *p >= 0x7f)
                                g_string_append_printf(out, "\\x%02x", *p);
                        else
                                g_string_append_c(out, (char) *p);
                return g_string_free(out, FALSE);
        }

        for (const char *p = s; *p; p = g_utf8_next_char(p)) {
                gunichar ch = g_utf8_get_char(p);

                if (ch < 0x80 && g_unichar_iscntrl(ch))
                        g_string_append_printf(out, "\\x%02x", (unsigned) ch);
                else if (g_unichar_iscntrl(ch))        /* C1 controls: some terminals obey them */
                        g_string_append_printf(out, "\\u%04x", (unsigned) ch);
                else
                        g_string_append_unichar(out, ch);
        }
        return g_string_free(out, FALSE);
}

static size_t unichar_width(gunichar ch) {
        if (g_unichar_iszerowidth(ch))
                return 0;
        return g_unichar_iswide(ch) ? 2 : 1;
}

size_t text_width(const char *s) {
        size_t w = 0;

        if (!g_utf8_validate(s, -1, NULL))
                return strlen(s);
        for (const char *p = s; *p; p = g_utf8_next_char(p))
                w += unichar_width(g_utf8_get_char(p));
        return w;
}

char *text_ellipsize(const char *s, size_t width) {
        const char *e = glyph(GLYPH_ELLIPSIS);
        size_t ew = text_width(e), w = 0;
        g_autofree char *head = NULL;
        const char *p;

        if (text_width(s) <= width)
                return g_strdup(s);
        if (width <= ew)
                return g_strdup(e);

        for (p = s; *p; p = g_utf8_next_char(p)) {
                size_t cw = unichar_width(g_utf8_get_char(p));

                if (w + cw > width - ew)
                        break;
                w += cw;
        }
        head = g_strndup(s, p - s);
        return g_strconcat(head, e, NULL);
}

char *format_bytes(uint64_t bytes) {
        static const struct {
                const char *suffix;
                uint64_t factor;
        } table[] = {
                { "E", UINT64_C(1) << 60 },
                { "P", UINT64_C(1) << 50 },
                { "T", UINT64_C(1) << 40 },
                { "G", UINT64_C(1) << 30 },
                { "M", UINT64_C(1) << 20 },
                { "K", UINT64_C(1) << 10 },
        };

        if (bytes == UINT64_MAX)
                return g_strdup("infinity");

        for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
                if (bytes >= table[i].factor)
                        /* integer tenths: no locale decimal comma, no rounding up to "1024.0K" */
                        return g_strdup_printf("%" PRIu64 ".%" PRIu64 "%s",
                                               bytes / table[i].factor,
                                               (bytes % table[i].factor) * 10 / table[i].factor,
                                               table[i].suffix);

        return g_strdup_printf("%" PRIu64 "B", bytes);
}

struct Table {
        unsigned n_columns;
        GPtrArray *cells;               /* char *, row-major, the header row first */
        GPtrArray *colors;              /* const char *, parallel to cells */
        uint64_t align_right;           /* bit per column */
};

Table *table_new(const char *header, ...) {
        Table *t = g_new0(Table, 1);
        va_list ap;

        t->cells = g_ptr_array_new_with_free_func(g_free);
        t->colors = g_ptr_array_new();

        va_start(ap, header);
        for (const char *h = header; h; h = va_arg(ap, const char *)) {
                table_add_cell(t, h, NULL);
                t->n_columns++;
        }
        va_end(ap);

        g_assert(t->n_columns > 0 && t->n_columns <= 64);
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        g_ptr_array_unref(t->cells);
        g_ptr_array_unref(t->colors);
        g_free(t);
        return NULL;
}

void table_set_align_right(Table *t, unsigned column) {
        g_assert(column < t->n_columns);
        t->align_right |= UINT64_C(1) << column;
}

void table_add_cell(Table *t, const char *text, const char *color) {
        g_ptr_array_add(t->cells, text ? text_escape(text) : g_strdup("-"));
        g_ptr_array_add(t->colors, (gpointer) color);
}

size_t table_get_rows(const Table *t) {
        return t->cells->len / t->n_columns - 1;
}

static void table_print_cell(const Table *t, FILE *f, const char *text, const char *color,
                             unsigned column, size_t width) {
        bool last = column == t->n_columns - 1;
        size_t pad = width - MIN(text_width(text), width);

        if (t->align_right & (UINT64_C(1) << column))
                fprintf(f, "%*s", (int) pad, "");
        fprintf(f, "%s%s%s", color ? ansi(color) : "", text, color ? ansi(ANSI_NORMAL) : "");
        if (!(t->align_right & (UINT64_C(1) << column)) && !last)
                fprintf(f, "%*s", (int) pad, "");
        if (!last)
                fputc(' ', f);
}

void table_print(const Table *t, bool legend, FILE *f) {
        g_autofree size_t *widths = g_new0(size_t, t->n_columns);
        unsigned n = t->n_columns, cols = columns();
        size_t start = 0, last_width;

        for (unsigned i = legend ? 0 : n; i < t->cells->len; i++)
                widths[i % n] = MAX(widths[i % n], text_width(t->cells->pdata[i]));

        /* Only the last column is cut, as systemctl cuts descriptions: the others are what a
         * person scans by. Below 10 columns it is unreadable anyway; let the terminal wrap. */
        for (unsigned i = 0; i + 1 < n; i++)
                start += widths[i] + 1;
        last_width = widths[n - 1];
        if (cols > 0 && start + last_width > cols)
                last_width = MAX(cols > start ? cols - start : 0, (size_t) 10);

        for (unsigned i = legend ? 0 : n; i < t->cells->len; i++) {
                unsigned column = i % n;
                bool header = i < n;
                g_autofree char *cut = NULL;
                const char *text = t->cells->pdata[i];

                if (column == n - 1 && text_width(text) > last_width)
                        text = cut = text_ellipsize(text, last_width);
                if (header && column == 0)
                        fputs(ansi(ANSI_UNDERLINE), f);
                table_print_cell(t, f, text, header ? NULL : t->colors->pdata[i], column,
                                 column == n - 1 ? last_width : widths[column]);
                if (column == n - 1)
                        fprintf(f, "%s\n", header ? ansi(ANSI_NORMAL) : "");
        }
}

static JsonNode *json_int(gint64 v) {
        return json_node_init_int(json_node_alloc(), v);
}

static JsonNode *json_object_from_dict(GVariant *v) {
        JsonObject *o = json_object_new();
        JsonNode *node = json_node_init_object(json_node_alloc(), o);
        GVariantIter iter;
        GVariant *entry;

        g_variant_iter_init(&iter, v);
        while ((entry = g_variant_iter_next_value(&iter))) {
                g_autoptr(GVariant) key = g_variant_get_child_value(entry, 0);
                g_autoptr(GVariant) value = g_variant_get_child_value(entry, 1);
                g_autofree char *name = NULL;

                if (g_variant_is_of_type(key, G_VARIANT_TYPE_STRING) ||
                    g_variant_is_of_type(key, G_VARIANT_TYPE_OBJECT_PATH) ||
                    g_variant_is_of_type(key, G_VARIANT_TYPE_SIGNATURE))
                        name = g_variant_dup_string(key, NULL);
                else
                        name = g_variant_print(key, FALSE);

                json_object_set_member(o, name, json_from_variant(value));
                g_variant_unref(entry);
        }

        json_object_unref(o);
        return node;
}

static JsonNode *json_array_from_children(GVariant *v) {
        JsonArray *a = json_array_sized_new(g_variant_n_children(v));
        JsonNode *node = json_node_init_array(json_node_alloc(), a);
        GVariantIter iter;
        GVariant *child;

        g_variant_iter_init(&iter, v);
        while ((child = g_variant_iter_next_value(&iter))) {
                json_array_add_element(a, json_from_variant(child));
                g_variant_unref(child);
        }

        json_array_unref(a);
        return node;
}

JsonNode *json_from_variant(GVariant *v) {
        switch (g_variant_classify(v)) {

        case G_VARIANT_CLASS_BOOLEAN:
                return json_node_init_boolean(json_node_alloc(), g_variant_get_boolean(v));
        case G_VARIANT_CLASS_BYTE:
                return json_int(g_variant_get_byte(v));
        case G_VARIANT_CLASS_INT16:
                return json_int(g_variant_get_int16(v));
        case G_VARIANT_CLASS_UINT16:
                return json_int(g_variant_get_uint16(v));
        case G_VARIANT_CLASS_INT32:
                return json_int(g_variant_get_int32(v));
        case G_VARIANT_CLASS_UINT32:
                return json_int(g_variant_get_uint32(v));
        case G_VARIANT_CLASS_INT64:
                return json_int(g_variant_get_int64(v));
        case G_VARIANT_CLASS_HANDLE:
                return json_int(g_variant_get_handle(v));

        case G_VARIANT_CLASS_UINT64: {
                guint64 u = g_variant_get_uint64(v);

                if (u <= INT64_MAX)
                        return json_int((gint64) u);
                return json_node_init_double(json_node_alloc(), (double) u);
        }

        case G_VARIANT_CLASS_DOUBLE: {
                double d = g_variant_get_double(v);

                /* JSON has no NaN or infinity */
                if (!isfinite(d))
                        return json_node_init_null(json_node_alloc());
                return json_node_init_double(json_node_alloc(), d);
        }

        case G_VARIANT_CLASS_STRING:
        case G_VARIANT_CLASS_OBJECT_PATH:
        case G_VARIANT_CLASS_SIGNATURE:
                return json_node_init_string(json_node_alloc(), g_variant_get_string(v, NULL));

        case G_VARIANT_CLASS_VARIANT: {
                g_autoptr(GVariant) inner = g_variant_get_variant(v);

                return json_from_variant(inner);
        }

        case G_VARIANT_CLASS_MAYBE: {
                g_autoptr(GVariant) inner = g_variant_get_maybe(v);

                return inner ? json_from_variant(inner) : json_node_init_null(json_node_alloc());
        }

        case G_VARIANT_CLASS_ARRAY:
                if (g_variant_type_is_dict_entry(g_variant_type_element(g_variant_get_type(v))))
                        return json_object_from_dict(v);
                return json_array_from_children(v);

        case G_VARIANT_CLASS_TUPLE:
        case G_VARIANT_CLASS_DICT_ENTRY:
                return json_array_from_children(v);
        }

        return json_node_init_null(json_node_alloc());
}

int json_print(JsonNode *node, JsonMode mode) {
        g_autoptr(JsonGenerator) g = json_generator_new();
        g_autofree char *text = NULL;

        json_generator_set_pretty(g, mode == JSON_PRETTY);
        json_generator_set_root(g, node);
        text = json_generator_to_data(g, NULL);

        if (fputs(text, stdout) < 0 || fputc('\n', stdout) < 0)
                return -EIO;
        return 0;
}
