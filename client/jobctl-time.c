/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Time formatting and parsing for jobctl. Output follows systemd's format_timestamp() and
 * format_timespan() so jobctl status reads like systemctl status; weekday names are English
 * whatever the locale, as in systemd, so a timestamp printed here can be pasted back.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <glib.h>

#include "jobctl-time.h"
#include "parse-util.h"

uint64_t now_realtime_usec(void) {
        return (uint64_t) g_get_real_time();    /* CLOCK_REALTIME in µs */
}

char *format_timestamp(uint64_t usec) {
        static const char *const weekdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        time_t sec = (time_t) (usec / USEC_PER_SEC);
        char buf[64];
        struct tm tm;

        if (usec == 0 || usec == UINT64_MAX)
                return NULL;
        if (!localtime_r(&sec, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6)
                return NULL;
        if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                return NULL;

        return g_strdup_printf("%s %s", weekdays[tm.tm_wday], buf);
}

/* The two largest units that matter, as systemd's format_timestamp_relative() picks them. */
static char *format_delta(uint64_t d) {
        if (d >= USEC_PER_YEAR)
                return g_strdup_printf("%" PRIu64 " years %" PRIu64 " months", d / USEC_PER_YEAR,
                                       (d % USEC_PER_YEAR) / USEC_PER_MONTH);
        if (d >= USEC_PER_MONTH)
                return g_strdup_printf("%" PRIu64 " months %" PRIu64 " days", d / USEC_PER_MONTH,
                                       (d % USEC_PER_MONTH) / USEC_PER_DAY);
        if (d >= USEC_PER_WEEK)
                return g_strdup_printf("%" PRIu64 " weeks %" PRIu64 " days", d / USEC_PER_WEEK,
                                       (d % USEC_PER_WEEK) / USEC_PER_DAY);
        if (d >= 2 * USEC_PER_DAY)
                return g_strdup_printf("%" PRIu64 " days", d / USEC_PER_DAY);
        if (d >= 25 * USEC_PER_HOUR)
                return g_strdup_printf("1 day %" PRIu64 "h", (d - USEC_PER_DAY) / USEC_PER_HOUR);
        if (d >= 6 * USEC_PER_HOUR)
                return g_strdup_printf("%" PRIu64 "h", d / USEC_PER_HOUR);
        if (d >= USEC_PER_HOUR)
                return g_strdup_printf("%" PRIu64 "h %" PRIu64 "min", d / USEC_PER_HOUR,
                                       (d % USEC_PER_HOUR) / USEC_PER_MINUTE);
        if (d >= 5 * USEC_PER_MINUTE)
                return g_strdup_printf("%" PRIu64 "min", d / USEC_PER_MINUTE);
        if (d >= USEC_PER_MINUTE)
                return g_strdup_printf("%" PRIu64 "min %" PRIu64 "s", d / USEC_PER_MINUTE,
                                       (d % USEC_PER_MINUTE) / USEC_PER_SEC);
        if (d >= USEC_PER_SEC)
                return g_strdup_printf("%" PRIu64 "s", d / USEC_PER_SEC);
        if (d >= USEC_PER_MSEC)
                return g_strdup_printf("%" PRIu64 "ms", d / USEC_PER_MSEC);
        return g_strdup_printf("%" PRIu64 "us", d);
}

char *format_timestamp_relative(uint64_t usec, uint64_t now) {
        g_autofree char *delta = NULL;

        if (usec == 0 || usec == UINT64_MAX)
                return NULL;
        if (usec == now)
                return g_strdup("now");
        if (usec < now) {
                delta = format_delta(now - usec);
                return g_strconcat(delta, " ago", NULL);
        }
        delta = format_delta(usec - now);
        return g_strconcat(delta, " left", NULL);
}

char *format_timespan(uint64_t usec, uint64_t accuracy) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } table[] = {
                { "y",     USEC_PER_YEAR   },
                { "month", USEC_PER_MONTH  },
                { "w",     USEC_PER_WEEK   },
                { "d",     USEC_PER_DAY    },
                { "h",     USEC_PER_HOUR   },
                { "min",   USEC_PER_MINUTE },
                { "s",     USEC_PER_SEC    },
                { "ms",    USEC_PER_MSEC   },
                { "us",    1               },
        };
        GString *s;

        if (usec == UINT64_MAX)
                return g_strdup("infinity");
        if (usec == 0)
                return g_strdup("0");
        if (accuracy == 0)
                accuracy = 1;

        s = g_string_new(NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(table) && usec > 0; i++) {
                uint64_t a, b;
                bool done = false;

                if (usec < accuracy && s->len > 0)
                        break;
                if (usec < table[i].usec)
                        continue;

                a = usec / table[i].usec;
                b = usec % table[i].usec;

                /* Under a minute the rest goes after a decimal point ("1.5s"), cut to accuracy. */
                if (usec < USEC_PER_MINUTE && b > 0) {
                        uint64_t frac = b;
                        int digits = 0;

                        for (uint64_t cc = table[i].usec; cc > 1; cc /= 10)
                                digits++;
                        for (uint64_t cc = accuracy; cc > 1; cc /= 10) {
                                frac /= 10;
                                digits--;
                        }
                        if (digits > 0) {
                                while (frac > 0 && frac % 10 == 0) {
                                        frac /= 10;
                                        digits--;
                                }
                                if (frac > 0)
                                        g_string_append_printf(s, "%s%" PRIu64 ".%0*" PRIu64 "%s",
                                                               s->len > 0 ? " " : "", a, digits, frac,
                                                               table[i].suffix);
                                else
                                        g_string_append_printf(s, "%s%" PRIu64 "%s",
                                                               s->len > 0 ? " " : "", a, table[i].suffix);
                                usec = 0;
                                done = true;
                        }
                }

                if (!done) {
                        g_string_append_printf(s, "%s%" PRIu64 "%s", s->len > 0 ? " " : "", a,
                                               table[i].suffix);
                        usec = b;
                }
        }

        return g_string_free(s, FALSE);
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

/* µs since the epoch of a broken-down local time; refuses dates mktime() would roll over
 * ("2024-02-30" is not March 1st). */
static int tm_to_usec(struct tm *tm, uint64_t *ret) {
        struct tm t = *tm;
        time_t sec;

        t.tm_isdst = -1;
        sec = mktime(&t);
        if (sec == (time_t) -1)
                return -EINVAL;
        if (t.tm_mday != tm->tm_mday || t.tm_mon != tm->tm_mon || t.tm_year != tm->tm_year)
                return -EINVAL;
        if (sec < 0)
                return -ERANGE;

        *ret = (uint64_t) sec * USEC_PER_SEC;
        return 0;
}

static int parse_epoch(const char *s, uint64_t *ret) {
        uint64_t sec = 0, frac = 0, scale = USEC_PER_SEC;
        const char *p = s;

        if (!g_ascii_isdigit(*p))
                return -EINVAL;
        for (; g_ascii_isdigit(*p); p++) {
                if (sec > (UINT64_MAX / USEC_PER_SEC - 9) / 10)
                        return -ERANGE;
                sec = sec * 10 + (uint64_t) (*p - '0');
        }
        if (*p == '.') {
                for (p++; g_ascii_isdigit(*p); p++)
                        if (scale > 1) {
                                scale /= 10;
                                frac += (uint64_t) (*p - '0') * scale;
                        }
        }
        if (*p != '\0')
                return -EINVAL;

        *ret = sec * USEC_PER_SEC + frac;
        return 0;
}

static int parse_local(const char *s, uint64_t now, uint64_t *ret) {
        static const struct {
                const char *format;
                bool has_date;
        } formats[] = {
                { "%Y-%m-%d %H:%M:%S", true  },
                { "%Y-%m-%d %H:%M",    true  },
                { "%Y-%m-%dT%H:%M:%S", true  },
                { "%Y-%m-%dT%H:%M",    true  },
                { "%Y-%m-%d",          true  },
                { "%H:%M:%S",          false },
                { "%H:%M",             false },
        };
        time_t now_sec = (time_t) (now / USEC_PER_SEC);
        struct tm today;

        if (!localtime_r(&now_sec, &today))
                return -EINVAL;

        for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
                struct tm tm = {};
                const char *end;

                if (!formats[i].has_date) {
                        tm.tm_year = today.tm_year;
                        tm.tm_mon = today.tm_mon;
                        tm.tm_mday = today.tm_mday;
                }

                end = strptime(s, formats[i].format, &tm);
                if (end && *end == '\0')
                        return tm_to_usec(&tm, ret);
        }

        return -EINVAL;
}

static int parse_iso8601(const char *s, uint64_t *ret) {
        g_autoptr(GTimeZone) local = g_time_zone_new_local();
        g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(s, local);
        gint64 usec;

        if (!dt)
                return -EINVAL;
        usec = g_date_time_to_unix(dt);
        if (usec < 0 || usec > (gint64) (UINT64_MAX / USEC_PER_SEC / 2))
                return -ERANGE;

        *ret = (uint64_t) usec * USEC_PER_SEC + (uint64_t) g_date_time_get_microsecond(dt);
        return 0;
}

int parse_timestamp(const char *s, uint64_t now, uint64_t *ret) {
        uint64_t usec;
        int r;

        if (streq(s, "now")) {
                *ret = now;
                return 0;
        }

        if (s[0] == '+') {
                r = parse_timespan_usec(s + 1, &usec);
                if (r < 0)
                        return r;
                if (usec == UINT64_MAX || usec > UINT64_MAX - now)
                        return -ERANGE;
                *ret = now + usec;
                return 0;
        }

        if (s[0] == '@')
                return parse_epoch(s + 1, ret);

        if (streq(s, "today") || streq(s, "tomorrow")) {
                time_t now_sec = (time_t) (now / USEC_PER_SEC);
                struct tm tm;

                if (!localtime_r(&now_sec, &tm))
                        return -EINVAL;
                tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
                if (streq(s, "tomorrow")) {
                        /* through mktime, not + 24h: a DST change makes a day 23 or 25 hours */
                        struct tm t = tm;

                        t.tm_mday++;
                        t.tm_isdst = -1;
                        if (mktime(&t) == (time_t) -1)
                                return -EINVAL;
                        tm = t;
                }
                return tm_to_usec(&tm, ret);
        }

        r = parse_local(s, now, ret);
        if (r != -EINVAL)
                return r;

        return parse_iso8601(s, ret);
}
