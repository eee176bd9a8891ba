/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the grammar of configuration values (time spans, sizes, percentages, numbers, booleans),
 * kept close to systemd's so that a line copied from a unit file means the same here, and the
 * line-level walk of key files that GKeyFile does not offer.
 *
 * Invariants: no allocation except in keyfile_scan() and format_timespan_usec(); *ret is
 * written only on success; a value that does not fit is -ERANGE (never wrapped, never clamped); a
 * leading '-' before a digit is -ERANGE like systemd's parse_time()/parse_size(), every other
 * malformed text is -EINVAL.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "parse-util.h"

#define USEC_PER_SEC  UINT64_C(1000000)

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static const char *skip_blank(const char *p) {
        while (is_blank(*p))
                p++;
        return p;
}

static bool is_negative_number(const char *p) {
        p = skip_blank(p);
        return p[0] == '-' && (is_digit(p[1]) || p[1] == '.');
}

/* "infinity" alone, blanks around allowed */
static bool is_infinity(const char *s) {
        s = skip_blank(s);
        if (strncmp(s, "infinity", 8) != 0)
                return false;
        return *skip_blank(s + 8) == '\0';
}

/* Reads "123" or "123.456" at *p; the fraction is returned as digits scaled to 10^*ret_n_frac. Only
 * the first 9 fraction digits count: finer than a nanosecond or a byte it cannot matter. */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac, unsigned *ret_n_frac) {
        const char *q = *p;
        uint64_t i = 0, f = 0;
        unsigned n_frac = 0;

        if (!is_digit(*q))
                return -EINVAL;
        for (; is_digit(*q); q++) {
                if (i > (UINT64_MAX - (uint64_t) (*q - '0')) / 10)
                        return -ERANGE;
                i = i * 10 + (uint64_t) (*q - '0');
        }

        if (*q == '.') {
                q++;
                if (!is_digit(*q))
                        return -EINVAL;
                for (; is_digit(*q); q++)
                        if (n_frac < 9) {
                                f = f * 10 + (uint64_t) (*q - '0');
                                n_frac++;
                        }
        }

        *p = q;
        *ret_int = i;
        *ret_frac = f;
        *ret_n_frac = n_frac;
        return 0;
}

static uint64_t pow10_u64(unsigned n) {
        uint64_t r = 1;

        while (n-- > 0)
                r *= 10;
        return r;
}

/* i.f × mul, rounded down; -ERANGE if it does not fit */
static int scale(uint64_t i, uint64_t f, unsigned n_frac, uint64_t mul, uint64_t *ret) {
        uint64_t d = pow10_u64(n_frac), r;

        if (mul != 0 && i > UINT64_MAX / mul)
                return -ERANGE;
        r = i * mul;

        /* f < d <= 10^9, so neither product overflows as long as mul / d does not */
        uint64_t add = (mul / d) * f + (mul % d) * f / d;
        if (r > UINT64_MAX - add)
                return -ERANGE;

        *ret = r + add;
        return 0;
}

typedef struct Unit {
        const char *suffix;
        uint64_t mul;
} Unit;

/* Same spellings as systemd's parse_time(), minus months and years: a job queue has no use for them
 * and their length is ambiguous. */
static const Unit time_units[] = {
        { "us",      1 },
        { "usec",    1 },
        { "µs",      1 },
        { "μs",      1 },       /* U+03BC, which some keyboards produce instead of U+00B5 */
        { "ms",      1000 },
        { "msec",    1000 },
        { "s",       USEC_PER_SEC },
        { "sec",     USEC_PER_SEC },
        { "second",  USEC_PER_SEC },
        { "seconds", USEC_PER_SEC },
        { "m",       60 * USEC_PER_SEC },
        { "min",     60 * USEC_PER_SEC },
        { "minute",  60 * USEC_PER_SEC },
        { "minutes", 60 * USEC_PER_SEC },
        { "h",       3600 * USEC_PER_SEC },
        { "hr",      3600 * USEC_PER_SEC },
        { "hour",    3600 * USEC_PER_SEC },
        { "hours",   3600 * USEC_PER_SEC },
        { "d",       86400 * USEC_PER_SEC },
        { "day",     86400 * USEC_PER_SEC },
        { "days",    86400 * USEC_PER_SEC },
        { "w",       604800 * USEC_PER_SEC },
        { "week",    604800 * USEC_PER_SEC },
        { "weeks",   604800 * USEC_PER_SEC },
};

/* The unit word runs to the next blank, digit or end, so "1h30min" splits as systemd splits it. */
static int parse_time_unit(const char **p, uint64_t *ret_mul) {
        const char *q = *p;
        size_t n = 0;

        while (q[n] != '\0' && !is_blank(q[n]) && !is_digit(q[n]) && q[n] != '.')
                n++;

        if (n == 0) {
                *ret_mul = USEC_PER_SEC;        /* a bare number is seconds */
                return 0;
        }

        for (size_t i = 0; i < G_N_ELEMENTS(time_units); i++)
                if (strlen(time_units[i].suffix) == n && memcmp(time_units[i].suffix, q, n) == 0) {
                        *p = q + n;
                        *ret_mul = time_units[i].mul;
                        return 0;
                }

        return -EINVAL;
}

int parse_timespan_usec(const char *s, uint64_t *ret) {
        uint64_t sum = 0;
        const char *p;
        int r;

        if (!s)
                return -EINVAL;
        if (is_infinity(s)) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (is_negative_number(s))
                return -ERANGE;

        p = skip_blank(s);
        if (*p == '\0')
                return -EINVAL;

        while (*p != '\0') {
                uint64_t i, f, mul, v;
                unsigned n_frac;

                r = parse_decimal(&p, &i, &f, &n_frac);
                if (r < 0)
                        return r;
                p = skip_blank(p);      /* "5 min" is one term, as in systemd */
                r = parse_time_unit(&p, &mul);
                if (r < 0)
                        return r;
                r = scale(i, f, n_frac, mul, &v);
                if (r < 0)
                        return r;
                if (sum > UINT64_MAX - v)
                        return -ERANGE;
                sum += v;
                p = skip_blank(p);
        }

        *ret = sum;
        return 0;
}

char *format_timespan_usec(uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", 86400 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC }, { "ms", 1000 }, { "us", 1 },
        };
        GString *s = g_string_new(NULL);

        for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
                if (usec < units[i].usec)
                        continue;
                g_string_append_printf(s, "%s%" PRIu64 "%s", s->len > 0 ? " " : "",
                                       usec / units[i].usec, units[i].suffix);
                usec %= units[i].usec;
        }
        if (s->len == 0)
                g_string_append(s, "0");
        return g_string_free(s, FALSE);
}

int parse_size_bytes(const char *s, uint64_t *ret) {
        /* base 1024 only, upper case only, as systemd's MemoryMax= reads them */
        static const Unit size_units[] = {
                { "B", UINT64_C(1) },
                { "K", UINT64_C(1) << 10 },
                { "M", UINT64_C(1) << 20 },
                { "G", UINT64_C(1) << 30 },
                { "T", UINT64_C(1) << 40 },
                { "P", UINT64_C(1) << 50 },
                { "E", UINT64_C(1) << 60 },
        };
        uint64_t i, f, mul = 1;
        unsigned n_frac;
        const char *p;
        int r;

        if (!s)
                return -EINVAL;
        if (is_infinity(s)) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (is_negative_number(s))
                return -ERANGE;

        p = skip_blank(s);
        r = parse_decimal(&p, &i, &f, &n_frac);
        if (r < 0)
                return r;
        p = skip_blank(p);

        if (*p != '\0') {
                size_t k;

                for (k = 0; k < G_N_ELEMENTS(size_units); k++)
                        if (*p == size_units[k].suffix[0])
                                break;
                if (k >= G_N_ELEMENTS(size_units))
                        return -EINVAL;
                mul = size_units[k].mul;
                p = skip_blank(p + 1);
                if (*p != '\0')
                        return -EINVAL;
        }

        /* a fraction of a byte is a typo, not a request to round */
        if (n_frac > 0 && mul == 1)
                return -EINVAL;

        return scale(i, f, n_frac, mul, ret);
}

/* Plain decimal digits, nothing else: no blanks, no sign, no base prefix. */
static int parse_digits(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !is_digit(*s))
                return -EINVAL;
        for (; is_digit(*s); s++) {
                if (v > (max - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        if (*s != '\0')
                return -EINVAL;

        *ret = v;
        return 0;
}

int parse_percent(const char *s, unsigned *ret) {
        g_autofree char *digits = NULL;
        uint64_t v;
        size_t n;
        int r;

        if (!s)
                return -EINVAL;
        n = strlen(s);
        if (n < 2 || s[n - 1] != '%')
                return -EINVAL;
        if (s[0] == '-' && is_digit(s[1]))
                return -ERANGE;

        digits = g_strndup(s, n - 1);
        r = parse_digits(digits, UINT_MAX, &v);
        if (r < 0)
                return r;

        *ret = (unsigned) v;
        return 0;
}

int parse_unsigned(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        if (s && s[0] == '-' && is_digit(s[1]))
                return -ERANGE;
        r = parse_digits(s, UINT_MAX, &v);
        if (r < 0)
                return r;

        *ret = (unsigned) v;
        return 0;
}

int parse_int(const char *s, int *ret) {
        bool negative = false;
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        if (*s == '-' || *s == '+') {
                negative = *s == '-';
                s++;
        }

        /* INT_MIN's magnitude is one more than INT_MAX's */
        r = parse_digits(s, negative ? (uint64_t) INT_MAX + 1 : (uint64_t) INT_MAX, &v);
        if (r < 0)
                return r;

        *ret = negative ? (int) -(int64_t) v : (int) v;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
                if (g_ascii_strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (g_ascii_strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

/* ---- key files ---- */

/* Tab is the one control character a line may hold; '\r' only right before '\n' (CRLF files). */
static bool line_is_clean(const char *line, size_t n) {
        if (!g_utf8_validate_len(line, n, NULL))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) line[i];

                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return false;
        }
        return true;
}

static int scan_line(const char *line, size_t n, char **section, KeyFileLineFn fn, void *userdata,
                     unsigned lineno) {
        size_t b = 0;

        /* leading blanks are ignored, as GKeyFile ignores them */
        while (b < n && is_blank(line[b]))
                b++;
        line += b;
        n -= b;

        if (n == 0 || line[0] == '#')
                return 0;

        if (line[0] == '[') {
                const char *close = memchr(line, ']', n);

                /* "[Name]" then only blanks: the shape GKeyFile accepts for a group */
                if (!close || close == line + 1 || memchr(line + 1, '[', close - line - 1))
                        return -EBADMSG;
                for (const char *q = close + 1; q < line + n; q++)
                        if (!is_blank(*q))
                                return -EBADMSG;

                g_free(*section);
                *section = g_strndup(line + 1, close - line - 1);
                return fn(*section, NULL, lineno, userdata);
        }

        const char *eq = memchr(line, '=', n);
        if (!eq || eq == line)
                return -EBADMSG;

        size_t k = eq - line;
        while (k > 0 && is_blank(line[k - 1]))
                k--;
        g_autofree char *key = g_strndup(line, k);

        return fn(*section, key, lineno, userdata);
}

int keyfile_scan(const char *data, size_t size, KeyFileLineFn fn, void *userdata, unsigned *ret_line) {
        g_autofree char *section = NULL;
        const char *p = data, *end = data + size;
        unsigned lineno = 0;

        if (size > 0 && !data)
                return -EINVAL;

        while (p < end) {
                const char *nl = memchr(p, '\n', end - p);
                size_t n = (nl ? nl : end) - p;
                int r;

                lineno++;
                if (nl && n > 0 && p[n - 1] == '\r')
                        n--;

                if (!line_is_clean(p, n))
                        r = -EILSEQ;
                else
                        r = scan_line(p, n, &section, fn, userdata, lineno);
                if (r < 0) {
                        if (ret_line)
                                *ret_line = lineno;
                        return r;
                }

                p = nl ? nl + 1 : end;
        }

        return 0;
}
