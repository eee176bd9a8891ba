/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Value grammar: what systemd accepts reads the same here; overflow and junk are refused. */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <glib.h>

#include "log.h"
#include "parse-util.h"

#define USEC   UINT64_C(1)
#define MSEC   (1000 * USEC)
#define SEC    (1000 * MSEC)
#define MINUTE (60 * SEC)
#define HOUR   (60 * MINUTE)
#define DAY    (24 * HOUR)
#define WEEK   (7 * DAY)

static void assert_timespan(const char *s, uint64_t expected) {
        uint64_t v = 42;

        g_test_message("timespan \"%s\"", s);
        g_assert_cmpint(parse_timespan_usec(s, &v), ==, 0);
        g_assert_cmpuint(v, ==, expected);
}

static void assert_timespan_fails(const char *s, int expected) {
        uint64_t v = 42;

        g_test_message("timespan \"%s\"", s);
        g_assert_cmpint(parse_timespan_usec(s, &v), ==, expected);
        g_assert_cmpuint(v, ==, 42);           /* untouched on failure */
}

static void test_timespan(void) {
        assert_timespan("0", 0);
        assert_timespan("10", 10 * SEC);
        assert_timespan("500ms", 500 * MSEC);
        assert_timespan("2us", 2);
        assert_timespan("2µs", 2);
        assert_timespan("5min", 5 * MINUTE);
        assert_timespan("5m", 5 * MINUTE);
        assert_timespan("5 min", 5 * MINUTE);
        assert_timespan("  5min  ", 5 * MINUTE);
        assert_timespan("1h 30min", HOUR + 30 * MINUTE);
        assert_timespan("1h30min", HOUR + 30 * MINUTE);
        assert_timespan("1w 2d 3h 4m 5s 6ms 7us",
                        WEEK + 2 * DAY + 3 * HOUR + 4 * MINUTE + 5 * SEC + 6 * MSEC + 7);
        assert_timespan("2 weeks", 2 * WEEK);
        assert_timespan("1sec", SEC);
        assert_timespan("3 seconds", 3 * SEC);
        assert_timespan("1hour", HOUR);
        assert_timespan("1.5s", 1500 * MSEC);
        assert_timespan("0.5h", 30 * MINUTE);
        assert_timespan("1.5us", 1);                      /* below the resolution: rounded down */
        assert_timespan("1.123456789123456789s", 1123456);
        assert_timespan("10 20", 30 * SEC);               /* each bare number is seconds */
        assert_timespan("infinity", UINT64_MAX);
        assert_timespan(" infinity ", UINT64_MAX);
        assert_timespan("18446744073709551615us", UINT64_MAX);
        assert_timespan("30500568w", 30500568 * WEEK);

        assert_timespan_fails("", -EINVAL);
        assert_timespan_fails("   ", -EINVAL);
        assert_timespan_fails("fast", -EINVAL);
        assert_timespan_fails("5x", -EINVAL);
        assert_timespan_fails("5 minutes ago", -EINVAL);
        assert_timespan_fails("5MIN", -EINVAL);             /* units are case-sensitive, as in systemd */
        assert_timespan_fails("1min infinity", -EINVAL);
        assert_timespan_fails("infinityx", -EINVAL);
        assert_timespan_fails(".5s", -EINVAL);
        assert_timespan_fails("1.s", -EINVAL);
        assert_timespan_fails("1..5s", -EINVAL);
        assert_timespan_fails("1h.5min", -EINVAL);
        assert_timespan_fails("+5s", -EINVAL);
        assert_timespan_fails("5s # comment", -EINVAL);
        assert_timespan_fails("-5s", -ERANGE);
        assert_timespan_fails(" -1", -ERANGE);
        assert_timespan_fails("18446744073709551616us", -ERANGE);
        assert_timespan_fails("99999999999999999999999", -ERANGE);
        assert_timespan_fails("30500569w", -ERANGE);
        assert_timespan_fails("30500568w 30500568w", -ERANGE);
        assert_timespan_fails("18446744073709551615us 1us", -ERANGE);
        assert_timespan_fails(NULL, -EINVAL);
}

static void assert_size(const char *s, uint64_t expected) {
        uint64_t v = 42;

        g_test_message("size \"%s\"", s);
        g_assert_cmpint(parse_size_bytes(s, &v), ==, 0);
        g_assert_cmpuint(v, ==, expected);
}

static void assert_size_fails(const char *s, int expected) {
        uint64_t v = 42;

        g_test_message("size \"%s\"", s);
        g_assert_cmpint(parse_size_bytes(s, &v), ==, expected);
        g_assert_cmpuint(v, ==, 42);
}

static void test_size(void) {
        assert_size("0", 0);
        assert_size("4096", 4096);
        assert_size("1B", 1);
        assert_size("1K", 1024);
        assert_size("512M", UINT64_C(512) << 20);
        assert_size("1G", UINT64_C(1) << 30);
        assert_size("2T", UINT64_C(2) << 40);
        assert_size("1P", UINT64_C(1) << 50);
        assert_size("15E", UINT64_C(15) << 60);
        assert_size("1.5K", 1536);
        assert_size("0.5K", 512);
        assert_size("1.5G", UINT64_C(3) << 29);
        assert_size("0.1K", 102);                         /* rounded down */
        assert_size("1 K", 1024);
        assert_size(" 64M ", UINT64_C(64) << 20);
        assert_size("infinity", UINT64_MAX);
        assert_size("18446744073709551615", UINT64_MAX);
        assert_size("15.999999999E", UINT64_C(18446744072556630111));
        assert_size("15.9999999999999999999999E", UINT64_C(18446744072556630111));  /* 9 digits count */

        assert_size_fails("", -EINVAL);
        assert_size_fails("K", -EINVAL);
        assert_size_fails("lots", -EINVAL);
        assert_size_fails("1k", -EINVAL);                  /* upper case only, as in systemd */
        assert_size_fails("1KB", -EINVAL);
        assert_size_fails("1KiB", -EINVAL);
        assert_size_fails("1.5", -EINVAL);                 /* a fraction of a byte */
        assert_size_fails("1.5B", -EINVAL);
        assert_size_fails("1.K", -EINVAL);
        assert_size_fails("1M 1K", -EINVAL);
        assert_size_fails("50%", -EINVAL);
        assert_size_fails("-1", -ERANGE);
        assert_size_fails("-1.5G", -ERANGE);
        assert_size_fails("16E", -ERANGE);
        assert_size_fails("17179869184G", -ERANGE);
        assert_size_fails("18446744073709551616", -ERANGE);
}

static void test_size_fraction_edge(void) {
        uint64_t v;

        /* the fraction can push a value that fits over the edge */
        g_assert_cmpint(parse_size_bytes("16383.9999999P", &v), ==, 0);
        g_assert_cmpint(parse_size_bytes("16383.99999999999P", &v), ==, 0);
        g_assert_cmpuint(v, <, UINT64_MAX);
        g_assert_cmpint(parse_size_bytes("16777215.9999999999T", &v), ==, 0);
        g_assert_cmpint(parse_size_bytes("16777216T", &v), ==, -ERANGE);
        g_assert_cmpint(parse_size_bytes("16384P", &v), ==, -ERANGE);
}

static void test_percent(void) {
        unsigned v = 42;

        g_assert_cmpint(parse_percent("50%", &v), ==, 0);
        g_assert_cmpuint(v, ==, 50);
        g_assert_cmpint(parse_percent("0%", &v), ==, 0);
        g_assert_cmpuint(v, ==, 0);
        g_assert_cmpint(parse_percent("200%", &v), ==, 0);
        g_assert_cmpuint(v, ==, 200);
        g_assert_cmpint(parse_percent("4294967295%", &v), ==, 0);
        g_assert_cmpuint(v, ==, UINT_MAX);

        v = 42;
        g_assert_cmpint(parse_percent("50", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("%", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("50.5%", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("50 %", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("50%%", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("+50%", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("half%", &v), ==, -EINVAL);
        g_assert_cmpint(parse_percent("-5%", &v), ==, -ERANGE);
        g_assert_cmpint(parse_percent("4294967296%", &v), ==, -ERANGE);
        g_assert_cmpint(parse_percent(NULL, &v), ==, -EINVAL);
        g_assert_cmpuint(v, ==, 42);
}

static void test_unsigned(void) {
        unsigned v = 42;

        g_assert_cmpint(parse_unsigned("0", &v), ==, 0);
        g_assert_cmpuint(v, ==, 0);
        g_assert_cmpint(parse_unsigned("007", &v), ==, 0);
        g_assert_cmpuint(v, ==, 7);
        g_assert_cmpint(parse_unsigned("4294967295", &v), ==, 0);
        g_assert_cmpuint(v, ==, UINT_MAX);

        v = 42;
        g_assert_cmpint(parse_unsigned("4294967296", &v), ==, -ERANGE);
        g_assert_cmpint(parse_unsigned("99999999999999999999999", &v), ==, -ERANGE);
        g_assert_cmpint(parse_unsigned("-1", &v), ==, -ERANGE);
        g_assert_cmpint(parse_unsigned("", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned("+1", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned(" 1", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned("1 ", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned("0x10", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned("1e3", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned("-", &v), ==, -EINVAL);
        g_assert_cmpint(parse_unsigned(NULL, &v), ==, -EINVAL);
        g_assert_cmpuint(v, ==, 42);
}

static void test_int(void) {
        int v = 42;

        g_assert_cmpint(parse_int("-20", &v), ==, 0);
        g_assert_cmpint(v, ==, -20);
        g_assert_cmpint(parse_int("+19", &v), ==, 0);
        g_assert_cmpint(v, ==, 19);
        g_assert_cmpint(parse_int("-0", &v), ==, 0);
        g_assert_cmpint(v, ==, 0);
        g_assert_cmpint(parse_int("2147483647", &v), ==, 0);
        g_assert_cmpint(v, ==, INT_MAX);
        g_assert_cmpint(parse_int("-2147483648", &v), ==, 0);
        g_assert_cmpint(v, ==, INT_MIN);

        v = 42;
        g_assert_cmpint(parse_int("2147483648", &v), ==, -ERANGE);
        g_assert_cmpint(parse_int("-2147483649", &v), ==, -ERANGE);
        g_assert_cmpint(parse_int("-", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int("--1", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int("+-1", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int("", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int("ten", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int("1.0", &v), ==, -EINVAL);
        g_assert_cmpint(parse_int(NULL, &v), ==, -EINVAL);
        g_assert_cmpint(v, ==, 42);
}

static void test_boolean(void) {
        const char *yes[] = { "1", "yes", "YES", "y", "true", "True", "t", "on", "ON" };
        const char *no[] = { "0", "no", "No", "n", "false", "FALSE", "f", "off", "Off" };

        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
                g_assert_cmpint(parse_boolean(yes[i]), ==, 1);
        for (size_t i = 0; i < G_N_ELEMENTS(no); i++)
                g_assert_cmpint(parse_boolean(no[i]), ==, 0);

        g_assert_cmpint(parse_boolean(""), ==, -EINVAL);
        g_assert_cmpint(parse_boolean("maybe"), ==, -EINVAL);
        g_assert_cmpint(parse_boolean("yes "), ==, -EINVAL);
        g_assert_cmpint(parse_boolean("2"), ==, -EINVAL);
        g_assert_cmpint(parse_boolean(NULL), ==, -EINVAL);
}

/* ---- keyfile_scan ---- */

static int record_line(const char *section, const char *key, unsigned line, void *userdata) {
        GString *out = userdata;

        g_string_append_printf(out, "%u:%s:%s;", line, section ?: "-", key ?: "-");
        return 0;
}

static int refuse_key_b(const char *section, const char *key, unsigned line, void *userdata) {
        return key && strcmp(key, "b") == 0 ? -ENOKEY : 0;
}

static void assert_scan(const char *text, size_t size, const char *expected) {
        g_autoptr(GString) out = g_string_new(NULL);

        g_assert_cmpint(keyfile_scan(text, size, record_line, out, NULL), ==, 0);
        g_assert_cmpstr(out->str, ==, expected);
}

static void assert_scan_fails(const char *text, size_t size, int expected, unsigned expected_line) {
        g_autoptr(GString) out = g_string_new(NULL);
        unsigned line = 0;

        g_assert_cmpint(keyfile_scan(text, size, record_line, out, &line), ==, expected);
        g_assert_cmpuint(line, ==, expected_line);
}

static void test_keyfile_scan(void) {
        const char *t;

        assert_scan("", 0, "");
        assert_scan(NULL, 0, "");
        t = "# hello\n\n[A]\n  a = 1\nb=\n\t# indented comment\n[B]  \nc=x=y\n";
        assert_scan(t, strlen(t), "3:A:-;4:A:a;5:A:b;7:B:-;8:B:c;");
        t = "k=1\n[A]";
        assert_scan(t, strlen(t), "1:-:k;2:A:-;");
        t = "[A]\r\nk=1\r\n\r\nl=2";
        assert_scan(t, strlen(t), "1:A:-;2:A:k;4:A:l;");
        t = "[A]\nk=1\n[A]\nk=2\n";           /* repeats are the caller's business */
        assert_scan(t, strlen(t), "1:A:-;2:A:k;3:A:-;4:A:k;");
        t = "[A]\nk=tab\there\n";
        assert_scan(t, strlen(t), "1:A:-;2:A:k;");
        t = "[A]\nk=ünïcödé\n";
        assert_scan(t, strlen(t), "1:A:-;2:A:k;");

        /* only size bytes count */
        t = "[A]\nk=1\ngarbage";
        assert_scan(t, 8, "1:A:-;2:A:k;");

        t = "[A]\njunk\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 2);
        t = "[A]\n=1\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 2);
        t = "\n\n[A\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 3);
        t = "[]\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 1);
        t = "[A]]\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 1);
        t = "[A[B]\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 1);
        t = "[A] # comment\n";
        assert_scan_fails(t, strlen(t), -EBADMSG, 1);
        t = "[A]\nk=1\r";                     /* a lone CR is not a line end */
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        t = "[A]\nk=1\r\r\n";
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        t = "[A]\n\vk=1\n";
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        t = "[A]\nk=\x7f\n";
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        t = "[A]\nk=\xff\xfe\n";
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        t = "[A]\nk=\xc3\n";                   /* truncated sequence */
        assert_scan_fails(t, strlen(t), -EILSEQ, 2);
        assert_scan_fails("[A]\nk=a\0b\n", 9, -EILSEQ, 2);

        /* the callback's verdict stops the walk and names its line */
        g_autoptr(GString) out = g_string_new(NULL);
        unsigned line = 0;
        t = "[A]\na=1\nb=2\nc=3\n";
        g_assert_cmpint(keyfile_scan(t, strlen(t), refuse_key_b, out, &line), ==, -ENOKEY);
        g_assert_cmpuint(line, ==, 3);
        g_assert_cmpint(keyfile_scan(t, strlen(t), refuse_key_b, out, NULL), ==, -ENOKEY);
}

/* Whatever keyfile_scan() passes must load in GKeyFile with the same sections and keys. */
static void test_keyfile_scan_agrees_with_gkeyfile(void) {
        const char *texts[] = {
                "[A]\na=1\n",
                " \t[A] \t\n \tk \t= \t v \t\n",
                "[A]\r\nk=v\r\n",
                "# c\n\n[A]\n#k=1\n",
                "[A]\nk=a=b\n",
                "[Sec tion]\nk=1\n",
                "[A]\nk=\n",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
                g_autoptr(GKeyFile) kf = g_key_file_new();
                g_autoptr(GString) out = g_string_new(NULL);
                g_autoptr(GError) e = NULL;

                g_assert_cmpint(keyfile_scan(texts[i], strlen(texts[i]), record_line, out, NULL), ==, 0);
                g_assert_true(g_key_file_load_from_data(kf, texts[i], strlen(texts[i]), 0, &e));
                g_assert_no_error(e);
        }
}

static void test_format_timespan(void) {
        static const struct {
                uint64_t usec;
                const char *text;
        } cases[] = {
                { 0, "0" },
                { 1, "1us" },
                { 1000000, "1s" },
                { 90 * UINT64_C(1000000), "1min 30s" },
                { (86400 + 3600) * UINT64_C(1000000) + 1500, "1d 1h 1ms 500us" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *text = format_timespan_usec(cases[i].usec);
                uint64_t back;

                g_assert_cmpstr(text, ==, cases[i].text);
                /* what it writes, parse_timespan_usec() reads back */
                g_assert_cmpint(parse_timespan_usec(text, &back), ==, 0);
                g_assert_cmpuint(back, ==, cases[i].usec);
        }
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/parse-util/timespan", test_timespan);
        g_test_add_func("/parse-util/format-timespan", test_format_timespan);
        g_test_add_func("/parse-util/size", test_size);
        g_test_add_func("/parse-util/size-fraction-edge", test_size_fraction_edge);
        g_test_add_func("/parse-util/percent", test_percent);
        g_test_add_func("/parse-util/unsigned", test_unsigned);
        g_test_add_func("/parse-util/int", test_int);
        g_test_add_func("/parse-util/boolean", test_boolean);
        g_test_add_func("/parse-util/keyfile-scan", test_keyfile_scan);
        g_test_add_func("/parse-util/keyfile-scan-agrees-with-gkeyfile", test_keyfile_scan_agrees_with_gkeyfile);

        return g_test_run();
}
