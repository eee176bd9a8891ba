/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jobd.conf: defaults, every key, every bad value with its line, and all-or-nothing application. */

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "daemon/config.h"  /* plain "config.h" is meson's generated one from here */
#include "log.h"

#define PATH "/etc/jobd/jobd.conf"
#define SEC ((uint64_t) G_USEC_PER_SEC)

static void assert_config_equal(const Config *a, const Config *b) {
        g_assert_cmpuint(a->max_running, ==, b->max_running);
        g_assert_cmpuint(a->idle_exit_usec, ==, b->idle_exit_usec);
        g_assert_cmpuint(a->max_parameter_bytes, ==, b->max_parameter_bytes);
        g_assert_cmpuint(a->max_input_bytes, ==, b->max_input_bytes);
        g_assert_cmpuint(a->max_pending_per_user, ==, b->max_pending_per_user);
        g_assert_cmpuint(a->output_quota_bytes, ==, b->output_quota_bytes);
        g_assert_cmpuint(a->retention_usec, ==, b->retention_usec);
}

static void parse_ok(Config *c, const char *text) {
        g_autoptr(GError) e = NULL;

        g_assert_true(config_parse(c, PATH, text, strlen(text), &e));
        g_assert_no_error(e);
}

/* Fails, starts with prefix, contains fragment, and leaves the config as it was. */
static void assert_parse_fails(const char *text, const char *prefix, const char *fragment) {
        g_autoptr(GError) e = NULL;
        Config c, before;

        config_init(&c);
        c.max_running = 3;
        before = c;

        g_assert_false(config_parse(&c, PATH, text, strlen(text), &e));
        g_assert_nonnull(e);
        g_test_message("%s", e->message);
        if (!g_str_has_prefix(e->message, prefix))
                g_error("\"%s\" does not start with \"%s\"", e->message, prefix);
        if (fragment && !strstr(e->message, fragment))
                g_error("\"%s\" does not contain \"%s\"", e->message, fragment);
        assert_config_equal(&c, &before);
}

static void test_defaults(void) {
        Config c;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        config_init(&c);
        g_assert_cmpuint(c.max_running, ==, cpus > 0 ? (unsigned) cpus : 1);
        g_assert_cmpuint(c.max_running, >=, 1);
        g_assert_cmpuint(c.idle_exit_usec, ==, 60 * SEC);
        g_assert_cmpuint(c.max_parameter_bytes, ==, 1024 * 1024);
        g_assert_cmpuint(c.max_input_bytes, ==, 64 * 1024 * 1024);
        g_assert_cmpuint(c.max_pending_per_user, ==, 10000);
        g_assert_cmpuint(c.output_quota_bytes, ==, 256 * 1024 * 1024);
        g_assert_cmpuint(c.retention_usec, ==, 7 * 24 * 3600 * SEC);
}

static void test_parse_full(void) {
        Config c;

        config_init(&c);
        parse_ok(&c,
                 "# jobd settings\n"
                 "[Manager]\n"
                 "MaxRunning=16\n"
                 "IdleExitSec=5min\n"
                 "MaxParameterBytes=4M\n"
                 "MaxInputBytes=1G\n"
                 "MaxPendingPerUser=50\n"
                 "OutputQuotaBytes=1.5G\n"
                 "Retention=30d\n");

        g_assert_cmpuint(c.max_running, ==, 16);
        g_assert_cmpuint(c.idle_exit_usec, ==, 300 * SEC);
        g_assert_cmpuint(c.max_parameter_bytes, ==, 4 * 1024 * 1024);
        g_assert_cmpuint(c.max_input_bytes, ==, UINT64_C(1) << 30);
        g_assert_cmpuint(c.max_pending_per_user, ==, 50);
        g_assert_cmpuint(c.output_quota_bytes, ==, UINT64_C(3) << 29);
        g_assert_cmpuint(c.retention_usec, ==, 30 * 24 * 3600 * SEC);
}

static void test_parse_over_existing(void) {
        Config c, d;

        config_init(&c);
        config_init(&d);
        c.max_running = 7;
        c.retention_usec = 1;

        /* only what the file names changes */
        parse_ok(&c, "[Manager]\nIdleExitSec=10\n");
        g_assert_cmpuint(c.max_running, ==, 7);
        g_assert_cmpuint(c.retention_usec, ==, 1);
        g_assert_cmpuint(c.idle_exit_usec, ==, 10 * SEC);

        /* an empty assignment restores the built-in default */
        parse_ok(&c, "[Manager]\nMaxRunning=\nRetention=\nIdleExitSec=  \n");
        assert_config_equal(&c, &d);

        /* nothing at all changes nothing */
        c.max_running = 5;
        parse_ok(&c, "");
        parse_ok(&c, "# only a comment\n\n");
        parse_ok(&c, "[Manager]\n");
        g_assert_cmpuint(c.max_running, ==, 5);
}

static void test_parse_infinity_and_zero(void) {
        Config c;

        config_init(&c);
        parse_ok(&c, "[Manager]\nIdleExitSec=infinity\nRetention=infinity\nMaxInputBytes=infinity\n"
                     "OutputQuotaBytes=infinity\n");
        g_assert_cmpuint(c.idle_exit_usec, ==, 0);        /* never */
        g_assert_cmpuint(c.retention_usec, ==, UINT64_MAX);
        g_assert_cmpuint(c.max_input_bytes, ==, UINT64_MAX);
        g_assert_cmpuint(c.output_quota_bytes, ==, UINT64_MAX);

        parse_ok(&c, "[Manager]\nIdleExitSec=0\nRetention=0\nMaxInputBytes=0\nOutputQuotaBytes=0\n");
        g_assert_cmpuint(c.idle_exit_usec, ==, 0);
        g_assert_cmpuint(c.retention_usec, ==, 0);
        g_assert_cmpuint(c.max_input_bytes, ==, 0);
        g_assert_cmpuint(c.output_quota_bytes, ==, 0);

        parse_ok(&c, "[Manager]\nMaxParameterBytes=32M\n");
        g_assert_cmpuint(c.max_parameter_bytes, ==, 32 * 1024 * 1024);
}

typedef struct BadValue {
        const char *key, *value, *fragment;
} BadValue;

static const BadValue bad_values[] = {
        { "MaxRunning",        "0",            "at least 1" },
        { "MaxRunning",        "all",          "not a number" },
        { "MaxRunning",        "-1",           "out of range" },
        { "MaxRunning",        "4294967296",   "out of range" },
        { "IdleExitSec",       "soon",         "not a time span" },
        { "IdleExitSec",       "99999999999999w", "out of range" },
        { "IdleExitSec",       "500ms",        "below 1s" },
        { "MaxParameterBytes", "0",            "refuse every job" },
        { "MaxParameterBytes", "1G",           "journal record" },
        { "MaxParameterBytes", "infinity",     "journal record" },
        { "MaxParameterBytes", "1MB",          "not a size" },
        { "MaxInputBytes",     "big",          "not a size" },
        { "MaxInputBytes",     "16E",          "out of range" },
        { "MaxPendingPerUser", "0",            "at least 1" },
        { "MaxPendingPerUser", "lots",         "not a number" },
        { "OutputQuotaBytes",  "-1",           "out of range" },
        { "OutputQuotaBytes",  "1.5",          "not a size" },
        { "Retention",         "a week",       "not a time span" },
        { "Retention",         "7d # a week",  "beginning of a line" },
};

static void test_bad_values_name_their_line(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad_values); i++) {
                const BadValue *b = &bad_values[i];
                g_autofree char *padding = g_strnfill(i, '\n');
                g_autofree char *text = g_strdup_printf("# jobd.conf\n[Manager]\n%s\n# why\n%s=%s\n",
                                                        padding, b->key, b->value);
                g_autofree char *prefix = g_strdup_printf(PATH ":%u: %s=%s ", 5 + (unsigned) i,
                                                          b->key, b->value);

                assert_parse_fails(text, prefix, b->fragment);
        }
}

static void test_first_bad_line_wins(void) {
        /* both are bad; the earlier line is reported, whatever the order of the key table */
        assert_parse_fails("[Manager]\nRetention=x\nMaxRunning=y\n", PATH ":2: Retention=x ", NULL);
        assert_parse_fails("[Manager]\nMaxRunning=y\nRetention=x\n", PATH ":2: MaxRunning=y ", NULL);
        /* a good key before a bad one is not applied either (checked by assert_parse_fails) */
        assert_parse_fails("[Manager]\nMaxRunning=64\nRetention=x\n", PATH ":3: Retention=x ", NULL);
}

static void test_structure_errors(void) {
        assert_parse_fails("[Manager]\nMaxJobs=4\n", PATH ":2: unknown key MaxJobs= in [Manager]", NULL);
        assert_parse_fails("[Manager]\nmaxrunning=4\n", PATH ":2: unknown key maxrunning=",
                           "did you mean MaxRunning=?");
        assert_parse_fails("[Manager]\n[Types]\n", PATH ":2: unknown section [Types]", "only [Manager]");
        assert_parse_fails("MaxRunning=4\n", PATH ":1: MaxRunning= comes before any section", NULL);
        assert_parse_fails("[Manager]\nMaxRunning=4\n\nMaxRunning=5\n",
                           PATH ":4: MaxRunning= is already set on line 2", NULL);
        assert_parse_fails("[Manager]\nMaxRunning 4\n", PATH ":2: expected [Section], Key=value", NULL);
        assert_parse_fails("[Manager\n", PATH ":1: expected", NULL);
        assert_parse_fails("[Manager]\nRetention=7\xff\n", PATH ":2: this line is not valid UTF-8", NULL);
}

static void test_load_missing_file(void) {
        g_autoptr(GError) e = NULL;
        Config c, d;

        config_init(&c);
        c.max_running = 9;
        d = c;
        g_assert_true(config_load(&c, "/nonexistent/jobd/jobd.conf", &e));
        g_assert_no_error(e);
        assert_config_equal(&c, &d);
}

static void test_load_file(void) {
        g_autofree char *dir = g_dir_make_tmp("test-config-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "jobd.conf", NULL);
        g_autofree char *subdir = g_build_filename(dir, "dir.conf", NULL);
        g_autofree char *big_path = g_build_filename(dir, "big.conf", NULL);
        g_autofree char *big = g_strnfill(64 * 1024 + 1, '#');
        g_autoptr(GError) e = NULL;
        Config c;

        config_init(&c);
        g_assert_true(g_file_set_contents(path, "[Manager]\nMaxRunning=2\n", -1, NULL));
        g_assert_true(config_load(&c, path, &e));
        g_assert_no_error(e);
        g_assert_cmpuint(c.max_running, ==, 2);

        /* the message names the real path and line */
        g_assert_true(g_file_set_contents(path, "[Manager]\n\nMaxRunning=two\n", -1, NULL));
        g_assert_false(config_load(&c, path, &e));
        g_autofree char *prefix = g_strdup_printf("%s:3: MaxRunning=two is not a number", path);
        g_assert_true(g_str_has_prefix(e->message, prefix));
        g_assert_cmpuint(c.max_running, ==, 2);
        g_clear_error(&e);

        g_assert_cmpint(mkdir(subdir, 0755), ==, 0);
        g_assert_false(config_load(&c, subdir, &e));
        g_assert_true(strstr(e->message, "is not a regular file"));
        g_clear_error(&e);

        g_assert_true(g_file_set_contents(big_path, big, -1, NULL));
        g_assert_false(config_load(&c, big_path, &e));
        g_assert_true(strstr(e->message, "is larger than 64 KiB"));
        g_clear_error(&e);

        /* /dev/null in place of the file: the defaults */
        g_assert_true(config_load(&c, "/dev/null", &e));
        g_assert_no_error(e);
        g_assert_cmpuint(c.max_running, ==, 2);

        g_assert_cmpint(unlink(path), ==, 0);
        g_assert_cmpint(unlink(big_path), ==, 0);
        g_assert_cmpint(rmdir(subdir), ==, 0);
        g_assert_cmpint(rmdir(dir), ==, 0);
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/config/defaults", test_defaults);
        g_test_add_func("/config/parse/full", test_parse_full);
        g_test_add_func("/config/parse/over-existing", test_parse_over_existing);
        g_test_add_func("/config/parse/infinity-and-zero", test_parse_infinity_and_zero);
        g_test_add_func("/config/parse/bad-values-name-their-line", test_bad_values_name_their_line);
        g_test_add_func("/config/parse/first-bad-line-wins", test_first_bad_line_wins);
        g_test_add_func("/config/parse/structure-errors", test_structure_errors);
        g_test_add_func("/config/load/missing-file", test_load_missing_file);
        g_test_add_func("/config/load/file", test_load_file);

        return g_test_run();
}
