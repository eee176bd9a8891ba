/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parameter validation: JSON for every type, the exec shape, the size and depth bounds. */

#include <string.h>

#include "log.h"
#include "params.h"

static void expect(const char *type, const char *json, size_t max, int code, const char *needle) {
        g_autoptr(GError) e = NULL;
        gboolean r = params_validate(type, json, max, &e);

        if (code < 0) {
                g_assert_no_error(e);
                g_assert_true(r);
                return;
        }
        g_assert_false(r);
        g_assert_error(e, PARAMS_ERROR, code);
        if (needle && !strstr(e->message, needle))
                g_error("message \"%s\" lacks \"%s\"", e->message, needle);
}

static void test_any_type(void) {
        expect("echo", "{}", 100, -1, NULL);
        expect("echo", "", 100, -1, NULL);
        expect("echo", "[1, \"two\", null]", 100, -1, NULL);
        expect("echo", "42", 100, -1, NULL);
        expect("echo", "{", 100, PARAMS_ERROR_INVALID, "not valid JSON");
        expect("echo", "   ", 100, PARAMS_ERROR_INVALID, NULL);
        expect("echo", "{\"a\": 1} trailing", 100, PARAMS_ERROR_INVALID, NULL);
        expect("echo", "\"12345\"", 6, PARAMS_ERROR_TOO_LARGE, "MaxParameterBytes");
        expect("echo", "\"1234\"", 6, -1, NULL);
}

static void test_depth(void) {
        g_autoptr(GString) deep = g_string_new(NULL);
        g_autoptr(GString) ok = g_string_new(NULL);

        for (int i = 0; i < 100000; i++)
                g_string_append_c(deep, '[');
        for (int i = 0; i < 100000; i++)
                g_string_append_c(deep, ']');
        expect("echo", deep->str, SIZE_MAX, PARAMS_ERROR_INVALID, "nest");

        for (unsigned i = 0; i < PARAMS_DEPTH_MAX; i++)
                g_string_append(ok, "{\"a\":");
        g_string_append(ok, "1");
        for (unsigned i = 0; i < PARAMS_DEPTH_MAX; i++)
                g_string_append_c(ok, '}');
        expect("echo", ok->str, SIZE_MAX, -1, NULL);

        /* brackets inside strings do not count */
        expect("echo", "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"]",
               SIZE_MAX, -1, NULL);
}

static void test_exec(void) {
        expect("exec", "{\"argv\": [\"make\", \"-j8\"]}", 1000, -1, NULL);
        expect("exec", "{\"argv\": [\"ls\"], \"cwd\": \"/tmp\", \"env\": {\"LANG\": \"C\", \"_X1\": \"\"}}", 1000, -1, NULL);
        expect("exec", "[]", 1000, PARAMS_ERROR_INVALID, "object");
        expect("exec", "{}", 1000, PARAMS_ERROR_INVALID, "argv");
        expect("exec", "{\"argv\": []}", 1000, PARAMS_ERROR_INVALID, "empty");
        expect("exec", "{\"argv\": \"ls\"}", 1000, PARAMS_ERROR_INVALID, "array");
        expect("exec", "{\"argv\": [\"\"]}", 1000, PARAMS_ERROR_INVALID, "command");
        expect("exec", "{\"argv\": [\"ls\", 3]}", 1000, PARAMS_ERROR_INVALID, "[1]");
        expect("exec", "{\"argv\": [\"ls\"], \"cwd\": \"rel\"}", 1000, PARAMS_ERROR_INVALID, "absolute");
        expect("exec", "{\"argv\": [\"ls\"], \"cwd\": 1}", 1000, PARAMS_ERROR_INVALID, "absolute");
        expect("exec", "{\"argv\": [\"ls\"], \"env\": []}", 1000, PARAMS_ERROR_INVALID, "object");
        expect("exec", "{\"argv\": [\"ls\"], \"env\": {\"1A\": \"x\"}}", 1000, PARAMS_ERROR_INVALID, "1A");
        expect("exec", "{\"argv\": [\"ls\"], \"env\": {\"A=B\": \"x\"}}", 1000, PARAMS_ERROR_INVALID, NULL);
        expect("exec", "{\"argv\": [\"ls\"], \"env\": {\"A\": 1}}", 1000, PARAMS_ERROR_INVALID, "not a string");
        expect("exec", "{\"argv\": [\"ls\"], \"user\": \"root\"}", 1000, PARAMS_ERROR_INVALID, "user");
}

static void test_exec_decode(void) {
        g_auto(GStrv) argv = NULL, env = NULL;
        g_autofree char *cwd = NULL;
        g_autoptr(GError) e = NULL;

        g_assert_true(params_exec_decode("{\"argv\": [\"ls\", \"-l\"], \"cwd\": \"/srv\", \"env\": {\"A\": \"1=2\"}}",
                                         &argv, &cwd, &env, &e));
        g_assert_no_error(e);
        g_assert_cmpstrv(argv, ((const char *[]) { "ls", "-l", NULL }));
        g_assert_cmpstr(cwd, ==, "/srv");
        g_assert_cmpstrv(env, ((const char *[]) { "A=1=2", NULL }));
        g_clear_pointer(&argv, g_strfreev);
        g_clear_pointer(&env, g_strfreev);
        g_clear_pointer(&cwd, g_free);

        g_assert_true(params_exec_decode("{\"argv\": [\"true\"]}", &argv, &cwd, &env, &e));
        g_assert_null(cwd);
        g_assert_cmpuint(g_strv_length(env), ==, 0);
        g_clear_pointer(&argv, g_strfreev);
        g_clear_pointer(&env, g_strfreev);

        /* what replay hands it is checked again, not assumed */
        g_assert_false(params_exec_decode("{\"argv\": 1}", &argv, &cwd, &env, &e));
        g_assert_error(e, PARAMS_ERROR, PARAMS_ERROR_INVALID);
}

static void test_result(void) {
        static const struct {
                const char *data;
                size_t size;
                gboolean truncated;
                const char *want;
        } cases[] = {
                { "", 0, FALSE, "null" },
                { "{\"a\": 1}", 8, FALSE, "{\"a\": 1}" },
                { "{\"a\": 1}", 8, TRUE, "\"{\\\"a\\\": 1}\"" },      /* a cut JSON text is text */
                { "hello\n", 6, FALSE, "\"hello\\n\"" },
                { "a\0b", 3, FALSE, "\"a\xef\xbf\xbd" "b\"" },           /* a NUL becomes U+FFFD */
                { "\xff", 1, FALSE, "\"\xef\xbf\xbd\"" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *got = params_result_from_output(cases[i].data, cases[i].size, cases[i].truncated);

                g_assert_true(params_is_json(got));
                if (!g_str_equal(got, cases[i].want))
                        g_error("case %zu: got %s, want %s", i, got, cases[i].want);
        }
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/params/any-type", test_any_type);
        g_test_add_func("/params/depth", test_depth);
        g_test_add_func("/params/exec", test_exec);
        g_test_add_func("/params/exec-decode", test_exec_decode);
        g_test_add_func("/params/result", test_result);
        return g_test_run();
}
