/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Type files: every key read right, every bad value refused with its line, folders merged in order. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "jobtype.h"
#include "log.h"

#define PATH "/etc/jobd/types.d/t.type"
#define SEC ((uint64_t) G_USEC_PER_SEC)

static JobType *parse_ok(const char *text) {
        g_autoptr(GError) e = NULL;
        JobType *t;

        t = jobtype_parse("t", PATH, text, strlen(text), &e);
        g_assert_no_error(e);
        g_assert_nonnull(t);
        return t;
}

/* The message must start with prefix (PATH:LINE: Key=value) and contain fragment. */
static void assert_parse_fails(const char *text, const char *prefix, const char *fragment) {
        g_autoptr(GError) e = NULL;
        g_autoptr(JobType) t = NULL;

        t = jobtype_parse("t", PATH, text, strlen(text), &e);
        g_assert_null(t);
        g_assert_nonnull(e);
        g_assert_true(e->domain == G_KEY_FILE_ERROR);
        g_test_message("%s", e->message);
        if (!g_str_has_prefix(e->message, prefix))
                g_error("\"%s\" does not start with \"%s\"", e->message, prefix);
        if (fragment && !strstr(e->message, fragment))
                g_error("\"%s\" does not contain \"%s\"", e->message, fragment);
}

static void test_name_valid(void) {
        g_assert_true(jobtype_name_is_valid("resize"));
        g_assert_true(jobtype_name_is_valid("image.resize-v2_x"));
        g_assert_true(jobtype_name_is_valid("0day"));
        g_assert_true(jobtype_name_is_valid("a"));
        g_assert_true(jobtype_name_is_valid("1234567890123456789012345678901234567890123456789012345678901234"));

        g_assert_false(jobtype_name_is_valid(NULL));
        g_assert_false(jobtype_name_is_valid(""));
        g_assert_false(jobtype_name_is_valid(".hidden"));
        g_assert_false(jobtype_name_is_valid("-opt"));
        g_assert_false(jobtype_name_is_valid("a b"));
        g_assert_false(jobtype_name_is_valid("a/b"));
        g_assert_false(jobtype_name_is_valid("ä"));
        g_assert_false(jobtype_name_is_valid("a:b"));
        g_assert_false(jobtype_name_is_valid("12345678901234567890123456789012345678901234567890123456789012345"));
}

static void test_stdin_strings(void) {
        for (int i = 0; i < _JOBTYPE_STDIN_MAX; i++)
                g_assert_cmpint(jobtype_stdin_from_string(jobtype_stdin_to_string(i)), ==, i);

        g_assert_cmpstr(jobtype_stdin_to_string(JOBTYPE_STDIN_PARAMETERS), ==, "parameters");
        g_assert_cmpstr(jobtype_stdin_to_string(JOBTYPE_STDIN_INPUT), ==, "input");
        g_assert_cmpstr(jobtype_stdin_to_string(JOBTYPE_STDIN_NONE), ==, "none");
        g_assert_null(jobtype_stdin_to_string(_JOBTYPE_STDIN_MAX));
        g_assert_null(jobtype_stdin_to_string(_JOBTYPE_STDIN_INVALID));
        g_assert_cmpint(jobtype_stdin_from_string("Input"), ==, _JOBTYPE_STDIN_INVALID);
        g_assert_cmpint(jobtype_stdin_from_string(""), ==, _JOBTYPE_STDIN_INVALID);
        g_assert_cmpint(jobtype_stdin_from_string(NULL), ==, _JOBTYPE_STDIN_INVALID);
}

static void test_builtin_exec(void) {
        g_autoptr(JobType) t = jobtype_new_builtin_exec();

        g_assert_cmpstr(t->name, ==, "exec");
        g_assert_null(t->path);
        g_assert_cmpstr(t->description, ==, "Run a command as the calling user");
        g_assert_null(t->exec);
        g_assert_cmpint(t->stdin_mode, ==, JOBTYPE_STDIN_NONE);
        g_assert_null(t->user);
        g_assert_true(t->builtin);
        g_assert_cmpuint(t->max_attempts, ==, 1);
        g_assert_cmpuint(t->memory_max, ==, UINT64_MAX);
        g_assert_cmpuint(t->tasks_max, ==, UINT64_MAX);
        g_assert_cmpuint(g_strv_length(t->submit_users), ==, 0);
        g_assert_cmpuint(g_strv_length(t->worker_groups), ==, 0);

        g_assert_null(jobtype_free(NULL));
}

static void test_parse_full(void) {
        g_autoptr(JobType) t = parse_ok(
                "# Resize pictures\n"
                "[Type]\n"
                "Description=Resize an image\n"
                "Exec=/usr/bin/convert - -resize 400x400 png:-\n"
                "Stdin=input\n"
                "User=jobd-worker\n"
                "Concurrency=4\n"
                "Timeout=5min\n"
                "MaxAttempts=3\n"
                "RetryBackoff=10s\n"
                "WorkspaceRetention=1h 30min\n"
                "SubmitUsers=alice bob\n"
                "SubmitGroups=users\n"
                "WorkerUsers=1000\n"
                "WorkerGroups=jobd-workers  render\n"
                "\n"
                "[Resources]\n"
                "MemoryMax=512M\n"
                "CPUQuota=50%\n"
                "TasksMax=64\n"
                "Nice=10\n");
        const char *exec[] = { "/usr/bin/convert", "-", "-resize", "400x400", "png:-", NULL };
        const char *submit_users[] = { "alice", "bob", NULL };
        const char *worker_groups[] = { "jobd-workers", "render", NULL };

        g_assert_cmpstr(t->name, ==, "t");
        g_assert_cmpstr(t->path, ==, PATH);
        g_assert_cmpstr(t->description, ==, "Resize an image");
        g_assert_true(g_strv_equal((const char *const *) t->exec, exec));
        g_assert_cmpint(t->stdin_mode, ==, JOBTYPE_STDIN_INPUT);
        g_assert_cmpstr(t->user, ==, "jobd-worker");
        g_assert_cmpuint(t->concurrency, ==, 4);
        g_assert_cmpuint(t->timeout_usec, ==, 300 * SEC);
        g_assert_cmpuint(t->max_attempts, ==, 3);
        g_assert_cmpuint(t->retry_backoff_usec, ==, 10 * SEC);
        g_assert_cmpuint(t->workspace_retention_usec, ==, 5400 * SEC);
        g_assert_true(g_strv_equal((const char *const *) t->submit_users, submit_users));
        g_assert_cmpstr(t->submit_groups[0], ==, "users");
        g_assert_null(t->submit_groups[1]);
        g_assert_cmpstr(t->worker_users[0], ==, "1000");
        g_assert_true(g_strv_equal((const char *const *) t->worker_groups, worker_groups));
        g_assert_cmpuint(t->memory_max, ==, UINT64_C(512) << 20);
        g_assert_cmpuint(t->cpu_quota_percent, ==, 50);
        g_assert_cmpuint(t->tasks_max, ==, 64);
        g_assert_cmpint(t->nice, ==, 10);
        g_assert_false(t->builtin);
}

static void test_parse_defaults(void) {
        g_autoptr(JobType) t = parse_ok("[Type]\n");

        g_assert_cmpstr(t->description, ==, "t");       /* the name, as systemd shows a unit */
        g_assert_null(t->exec);
        g_assert_cmpint(t->stdin_mode, ==, JOBTYPE_STDIN_PARAMETERS);
        g_assert_null(t->user);
        g_assert_cmpuint(t->concurrency, ==, 0);
        g_assert_cmpuint(t->timeout_usec, ==, 0);
        g_assert_cmpuint(t->max_attempts, ==, 1);
        g_assert_cmpuint(t->retry_backoff_usec, ==, 0);
        g_assert_cmpuint(t->workspace_retention_usec, ==, 0);
        g_assert_nonnull(t->submit_users);
        g_assert_null(t->submit_users[0]);
        g_assert_nonnull(t->submit_groups);
        g_assert_null(t->submit_groups[0]);
        g_assert_nonnull(t->worker_users);
        g_assert_null(t->worker_users[0]);
        g_assert_nonnull(t->worker_groups);
        g_assert_null(t->worker_groups[0]);
        g_assert_cmpuint(t->memory_max, ==, UINT64_MAX);
        g_assert_cmpuint(t->cpu_quota_percent, ==, 0);
        g_assert_cmpuint(t->tasks_max, ==, UINT64_MAX);
        g_assert_cmpint(t->nice, ==, 0);
        g_assert_false(t->builtin);
}

static void test_parse_empty_assignments(void) {
        g_autoptr(JobType) t = parse_ok(
                "[Type]\nDescription=\nExec=\nStdin=\nUser=\nConcurrency=\nTimeout=\nMaxAttempts=\n"
                "RetryBackoff=\nWorkspaceRetention=\nSubmitUsers=\nSubmitGroups=  \nWorkerUsers=\n"
                "WorkerGroups=\n[Resources]\nMemoryMax=\nCPUQuota=\nTasksMax=\nNice=\n"
                "[Schedule]\nOnCalendar=\nParameters=\nPersistent=\n");

        g_assert_cmpstr(t->description, ==, "t");
        g_assert_null(t->exec);
        g_assert_cmpint(t->stdin_mode, ==, JOBTYPE_STDIN_PARAMETERS);
        g_assert_cmpuint(t->max_attempts, ==, 1);
        g_assert_null(t->submit_groups[0]);
        g_assert_cmpuint(t->memory_max, ==, UINT64_MAX);
        g_assert_cmpuint(t->tasks_max, ==, UINT64_MAX);
}

static void test_parse_exec_quoting(void) {
        g_autoptr(JobType) a = parse_ok("[Type]\nExec=/bin/sh -c 'echo \"$1\" | tr a-z A-Z' sh\n");
        const char *ea[] = { "/bin/sh", "-c", "echo \"$1\" | tr a-z A-Z", "sh", NULL };
        g_assert_true(g_strv_equal((const char *const *) a->exec, ea));

        /* a # inside quotes or inside a word is an argument, not a comment */
        g_autoptr(JobType) b = parse_ok("[Type]\nExec=/usr/bin/printf '#%s' a#b \"# x\" \\#y\n");
        const char *eb[] = { "/usr/bin/printf", "#%s", "a#b", "# x", "#y", NULL };
        g_assert_true(g_strv_equal((const char *const *) b->exec, eb));

        /* GKeyFile escapes are not applied under the shell split: \\t stays for the shell */
        g_autoptr(JobType) c = parse_ok("[Type]\nExec=/bin/echo a\\ b \"c\\\"d\"\n");
        const char *ec[] = { "/bin/echo", "a b", "c\"d", NULL };
        g_assert_true(g_strv_equal((const char *const *) c->exec, ec));

        g_autoptr(JobType) d = parse_ok("[Type]\nExec=   /bin/true   \n");
        const char *ed[] = { "/bin/true", NULL };
        g_assert_true(g_strv_equal((const char *const *) d->exec, ed));
}

static void test_parse_infinity(void) {
        g_autoptr(JobType) t = parse_ok("[Type]\nTimeout=infinity\nWorkspaceRetention=infinity\n"
                                        "[Resources]\nMemoryMax=infinity\nTasksMax=infinity\n");

        g_assert_cmpuint(t->timeout_usec, ==, 0);
        g_assert_cmpuint(t->workspace_retention_usec, ==, UINT64_MAX);
        g_assert_cmpuint(t->memory_max, ==, UINT64_MAX);
        g_assert_cmpuint(t->tasks_max, ==, UINT64_MAX);

        g_autoptr(JobType) z = parse_ok("[Type]\nTimeout=0\nConcurrency=0\n"
                                        "[Resources]\nNice=-20\nCPUQuota=400%\n");
        g_assert_cmpuint(z->timeout_usec, ==, 0);
        g_assert_cmpint(z->nice, ==, -20);
        g_assert_cmpuint(z->cpu_quota_percent, ==, 400);
}

static void test_parse_description(void) {
        g_autoptr(JobType) a = parse_ok("[Type]\nDescription=\\sSpaced\\\\out  \n");
        g_assert_cmpstr(a->description, ==, "Spaced\\out");

        /* free text keeps a # */
        g_autoptr(JobType) b = parse_ok("[Type]\nDescription=Build #3 of the ünïcode thing\n");
        g_assert_cmpstr(b->description, ==, "Build #3 of the ünïcode thing");

        g_autofree char *long_desc = g_strnfill(513, 'x');
        g_autofree char *text = g_strdup_printf("[Type]\nDescription=%s\n", long_desc);
        assert_parse_fails(text, PATH ":2: Description=xxxx", "longer than 512 bytes");
        /* and the echo of a long value is cut */
        g_autoptr(GError) e = NULL;
        g_assert_null(jobtype_parse("t", PATH, text, strlen(text), &e));
        g_assert_cmpuint(strlen(e->message), <, 200);
}

static void test_parse_schedule(void) {
        g_autoptr(JobType) t = parse_ok("[Type]\nExec=/bin/true\n[Schedule]\nOnCalendar=Mon..Fri *-*-* 03:00 UTC\n"
                                        "Parameters={\"full\": true, \"s\": \"a\\\\nb # c\"}\n"
                                        "Persistent=yes\nAccuracySec=1s\n");
        g_assert_cmpstr(t->on_calendar, ==, "Mon..Fri *-*-* 03:00 UTC");
        /* JSON's escapes, not GKeyFile's; a # inside is data */
        g_assert_cmpstr(t->schedule_parameters, ==, "{\"full\": true, \"s\": \"a\\\\nb # c\"}");
        g_assert_true(t->schedule_persistent);
        g_assert_cmpuint(t->schedule_accuracy_usec, ==, SEC);

        /* defaults: no schedule at all, or {} and not persistent */
        g_autoptr(JobType) none = parse_ok("[Type]\n");
        g_assert_null(none->on_calendar);
        g_assert_null(none->schedule_parameters);
        g_assert_false(none->schedule_persistent);
        g_assert_cmpuint(none->schedule_accuracy_usec, ==, 0);
        g_autoptr(JobType) d = parse_ok("[Schedule]\nOnCalendar=*:*:0/2\n[Type]\n");
        g_assert_cmpstr(d->on_calendar, ==, "*:*:0/2");
        g_assert_cmpstr(d->schedule_parameters, ==, "{}");
        g_assert_false(d->schedule_persistent);
        g_assert_cmpuint(d->schedule_accuracy_usec, ==, 0);
        g_autoptr(JobType) z = parse_ok("[Type]\n[Schedule]\nOnCalendar=hourly\nAccuracySec=0\nPersistent=no\n"
                                        "Parameters=\n");
        g_assert_cmpuint(z->schedule_accuracy_usec, ==, 1);     /* 0 is 1us, as in a .timer file */
        g_assert_cmpstr(z->schedule_parameters, ==, "{}");
        /* OnCalendar= empty is no schedule, and then the rest may be empty too */
        g_autoptr(JobType) e = parse_ok("[Type]\n[Schedule]\nOnCalendar=\nPersistent=\n");
        g_assert_null(e->on_calendar);

        assert_parse_fails("[Type]\n[Schedule]\nPersistent=sometimes\n", PATH ":3: Persistent=sometimes ",
                           "not a boolean");
        assert_parse_fails("[Type]\n[Schedule]\nOnBootSec=5min\n", PATH ":3: unknown key OnBootSec=", NULL);
        assert_parse_fails("[Type]\n[Schedule]\nOnCalendar=daily\nOnCalendar=weekly\n",
                           PATH ":4: OnCalendar= is already set on line 3", NULL);
        assert_parse_fails("[Type]\n[Schedule]\nPersistent=yes\nParameters={}\n",
                           PATH ":3: Persistent= does nothing without OnCalendar=", "add OnCalendar=");
        assert_parse_fails("[Type]\n[Schedule]\nOnCalendar=\nAccuracySec=1s\n",
                           PATH ":4: AccuracySec= does nothing without OnCalendar=", NULL);
        assert_parse_fails("[Type]\n[Schedule]\nOnCalendar=daily\nParameters={\"a\": 1} # note\n",
                           PATH ":4: Parameters={\"a\": 1} # note cannot be a job's parameters",
                           "a # starts a comment only at the beginning of a line");

        g_autofree char *long_cal = g_strnfill(JOBTYPE_ON_CALENDAR_MAX + 1, '*');
        g_autofree char *text = g_strdup_printf("[Type]\n[Schedule]\nOnCalendar=%s\n", long_cal);
        assert_parse_fails(text, PATH ":3: OnCalendar=****", "longer than 512 bytes");
        g_autofree char *big = g_strnfill(JOBTYPE_SCHEDULE_PARAMETERS_MAX, ' ');
        g_autofree char *text2 = g_strdup_printf("[Type]\n[Schedule]\nOnCalendar=daily\nParameters=[%s1]\n", big);
        assert_parse_fails(text2, PATH ":4: Parameters=[", "longer than 4096 bytes");
        /* the limit is on the value as given, spaces around it are not part of it */
        g_autofree char *fits = g_strnfill(JOBTYPE_SCHEDULE_PARAMETERS_MAX - 3, ' ');
        g_autofree char *text3 = g_strdup_printf("[Type]\n[Schedule]\nOnCalendar=daily\nParameters= [%s1] \n", fits);
        g_autoptr(JobType) f = parse_ok(text3);
        g_assert_cmpuint(strlen(f->schedule_parameters), ==, JOBTYPE_SCHEDULE_PARAMETERS_MAX);
}

static void test_parse_crlf_and_layout(void) {
        g_autoptr(JobType) t = parse_ok("# x\r\n[Type]\r\n  Timeout = 30s \r\n\t# indented\r\n\r\n"
                                        "[Resources]   \r\nNice=5");
        g_assert_cmpuint(t->timeout_usec, ==, 30 * SEC);
        g_assert_cmpint(t->nice, ==, 5);

        /* sections may repeat; keys still may not */
        g_autoptr(JobType) u = parse_ok("[Type]\nTimeout=1s\n[Resources]\nNice=1\n[Type]\nConcurrency=2\n");
        g_assert_cmpuint(u->timeout_usec, ==, SEC);
        g_assert_cmpuint(u->concurrency, ==, 2);
        assert_parse_fails("[Type]\nTimeout=1s\n[Resources]\n[Type]\nTimeout=2s\n",
                           PATH ":5: Timeout= is already set on line 2", NULL);
}

typedef struct BadValue {
        const char *section, *key, *value, *fragment;
} BadValue;

static const BadValue bad_values[] = {
        { "Type",      "Description",        "bad\\qescape",            "invalid escape" },
        { "Type",      "Description",        "two\\nlines",             "control character" },
        { "Type",      "Description",        "\\q and \\",               "invalid escape" },  /* GLib warns */
        { "Type",      "Exec",               "convert -resize 10x10",   "absolute path" },
        { "Type",      "Exec",               "/bin/sh -c 'unfinished",  "cannot be split" },
        { "Type",      "Exec",               "/usr/bin/x - # absent",   "# outside quotes" },
        { "Type",      "Stdin",              "stdin",                   "parameters, input, none" },
        { "Type",      "Stdin",              "Parameters",              "parameters, input, none" },
        { "Type",      "User",               "bad user",                "not a valid user" },
        { "Type",      "User",               "-root",                   "not a valid user" },
        { "Type",      "User",               "4294967295",              "not a valid user" },
        { "Type",      "Concurrency",        "many",                    "not a number" },
        { "Type",      "Concurrency",        "-1",                      "out of range" },
        { "Type",      "Concurrency",        "4294967296",              "out of range" },
        { "Type",      "Timeout",            "fast",                    "not a time span; use e.g. 30s or 5min" },
        { "Type",      "Timeout",            "-5s",                     "out of range" },
        { "Type",      "Timeout",            "99999999999999w",         "out of range" },
        { "Type",      "MaxAttempts",        "0",                       "at least 1" },
        { "Type",      "MaxAttempts",        "three",                   "not a number" },
        { "Type",      "RetryBackoff",       "soon",                    "not a time span" },
        { "Type",      "RetryBackoff",       "infinity",                "never retry" },
        { "Type",      "WorkspaceRetention", "forever",                 "not a time span" },
        { "Type",      "SubmitUsers",        "alice bob:x",             "\"bob:x\"" },
        { "Type",      "SubmitGroups",       "wheel,adm",               "valid group name" },
        { "Type",      "WorkerUsers",        "-x",                      "valid user name" },
        { "Type",      "WorkerGroups",       "g@h",                     "valid group name" },
        { "Resources", "MemoryMax",          "512MB",                   "not a size" },
        { "Resources", "MemoryMax",          "lots",                    "not a size" },
        { "Resources", "MemoryMax",          "0",                       "no memory" },
        { "Resources", "MemoryMax",          "16E",                     "out of range" },
        { "Resources", "CPUQuota",           "50",                      "not a percentage" },
        { "Resources", "CPUQuota",           "50.5%",                   "not a percentage" },
        { "Resources", "CPUQuota",           "0%",                      "no CPU time" },
        { "Resources", "CPUQuota",           "4294967296%",             "out of range" },
        { "Resources", "TasksMax",           "0",                       "at least 1" },
        { "Resources", "TasksMax",           "-1",                      "out of range" },
        { "Resources", "TasksMax",           "many",                    "not a number" },
        { "Resources", "Nice",               "20",                      "out of range" },
        { "Resources", "Nice",               "-21",                     "out of range" },
        { "Resources", "Nice",               "99999999999",             "out of range" },
        { "Resources", "Nice",               "nice",                    "not a number" },
        { "Schedule",  "Persistent",         "maybe",                   "not a boolean" },
        { "Schedule",  "Parameters",         "{\"a\": }",               "not valid JSON" },
        { "Schedule",  "Parameters",         "nope",                    "cannot be a job's parameters" },
        { "Schedule",  "AccuracySec",        "soon",                    "not a time span" },
        { "Schedule",  "AccuracySec",        "infinity",                "not a finite time span" },
};

/* Each bad value is refused naming the file, the line of its key, the key and the value. The key
 * moves down a line per case, so a message naming a fixed line would fail. */
static void test_bad_values_name_their_line(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad_values); i++) {
                const BadValue *b = &bad_values[i];
                g_autofree char *padding = g_strnfill(i, '\n');
                g_autofree char *text = g_strdup_printf("# comment\n[Type]\n%s\n[%s]\n# why\n%s=%s\n",
                                                        padding, b->section, b->key, b->value);
                unsigned line = 6 + (unsigned) i;
                g_autofree char *prefix = g_strdup_printf(PATH ":%u: %s=%s ", line, b->key, b->value);

                assert_parse_fails(text, prefix, b->fragment);
        }
}

static void test_structure_errors(void) {
        assert_parse_fails("[Type]\n[Service]\nExecStart=/bin/true\n", PATH ":2: unknown section [Service]",
                           "[Type], [Resources] and [Schedule]");
        assert_parse_fails("[Type]\nExecStart=/bin/true\n", PATH ":2: unknown key ExecStart= in [Type]", NULL);
        assert_parse_fails("[Type]\n\nMemoryMax=1G\n", PATH ":3: unknown key MemoryMax= in [Type]",
                           "belongs in [Resources]");
        assert_parse_fails("[Resources]\nTimeout=1s\n[Type]\n", PATH ":2: unknown key Timeout= in [Resources]",
                           "belongs in [Type]");
        assert_parse_fails("[Type]\ntimeout=1s\n", PATH ":2: unknown key timeout=", "did you mean Timeout=?");
        assert_parse_fails("[Type]\nDescription[de]=Bild\n", PATH ":2: unknown key Description[de]=", NULL);
        assert_parse_fails("Timeout=1s\n[Type]\n", PATH ":1: Timeout= comes before any section", NULL);
        assert_parse_fails("[Type]\nTimeout=1s\nTimeout=2s\n", PATH ":3: Timeout= is already set on line 2", NULL);
        assert_parse_fails("[Type]\nTimeout 5min\n", PATH ":2: expected [Section], Key=value", NULL);
        assert_parse_fails("[Type]\n; systemd comment\n", PATH ":2: expected", NULL);
        assert_parse_fails("[Type\n", PATH ":1: expected", NULL);
        assert_parse_fails("[Type] # main\n", PATH ":1: expected", NULL);
        assert_parse_fails("[Type]\nDescription=caf\xe9\n", PATH ":2: this line is not valid UTF-8", NULL);
        assert_parse_fails("[Type]\nDescription=a\x1b[31mred\n",
                           PATH ":2: this line is not valid UTF-8 or holds a control", NULL);
        assert_parse_fails("# nothing\n", PATH ":1: the file has no [Type] section", NULL);
        assert_parse_fails("[Resources]\nNice=1\n", PATH ":1: the file has no [Type] section", NULL);
        assert_parse_fails("", PATH ":1: the file has no [Type] section", NULL);

        /* a NUL byte ends nothing early: it is refused where it is */
        g_autoptr(GError) e = NULL;
        const char nul[] = "[Type]\nTimeout=1s\nNice=\0\n";
        g_assert_null(jobtype_parse("t", PATH, nul, sizeof(nul) - 1, &e));
        g_assert_true(g_str_has_prefix(e->message, PATH ":3: this line is not valid UTF-8"));
}

static void test_inline_comment(void) {
        /* the DESIGN example's style: "# …" after a value is not a comment */
        assert_parse_fails("[Type]\nTimeout=5min   # generous\n",
                           PATH ":2: Timeout=5min   # generous is not a time span",
                           "a # starts a comment only at the beginning of a line");
        assert_parse_fails("[Type]\nUser=jobd-worker  # whom a local job runs as\n", PATH ":2: User=",
                           "beginning of a line");
        assert_parse_fails("[Type]\n"
                           "Exec=/usr/bin/convert - -resize 400x400 png:-   # absent: external workers run it\n",
                           PATH ":2: Exec=", "comments go on a line of their own");
        /* the value echo is cut, not the message */
        assert_parse_fails("[Type]\nSubmitUsers= SubmitGroups=                      # empty: everyone\n",
                           PATH ":2: SubmitUsers=SubmitGroups=", "\"SubmitGroups=\"");
}

static void test_parse_invalid_name(void) {
        g_autoptr(GError) e = NULL;

        g_assert_null(jobtype_parse("bad name", "/x/bad name.type", "[Type]\n", 7, &e));
        g_assert_true(g_str_has_prefix(e->message, "/x/bad name.type: \"bad name\" is not a valid type name"));
        g_clear_error(&e);
        g_assert_null(jobtype_parse(NULL, "/x/.type", "[Type]\n", 7, &e));
        g_assert_nonnull(e);
}

static char *example_path(const char *name) {
        g_autofree char *dir = g_path_get_dirname(__FILE__);
        return g_build_filename(dir, "..", "..", "units", "types", name, NULL);
}

static void test_example_files(void) {
        g_autofree char *echo_path = example_path("echo.type");
        g_autofree char *transcode_path = example_path("transcode.type");
        g_autofree char *echo_text = NULL, *transcode_text = NULL;
        g_autoptr(GError) e = NULL;
        size_t n;

        if (!g_file_get_contents(echo_path, &echo_text, &n, NULL) ||
            !g_file_get_contents(transcode_path, &transcode_text, NULL, NULL)) {
                g_test_skip("units/types not found from the build directory");
                return;
        }

        g_autoptr(JobType) echo = jobtype_parse("echo", echo_path, echo_text, n, &e);
        g_assert_no_error(e);
        g_assert_cmpstr(echo->description, ==, "Echo the parameters back");
        g_assert_cmpstr(echo->exec[0], ==, "/bin/cat");
        g_assert_null(echo->exec[1]);
        g_assert_cmpint(echo->stdin_mode, ==, JOBTYPE_STDIN_PARAMETERS);
        g_assert_cmpuint(echo->timeout_usec, ==, 60 * SEC);
        g_assert_cmpuint(echo->memory_max, ==, UINT64_C(64) << 20);
        g_assert_cmpuint(echo->tasks_max, ==, 16);

        g_autoptr(JobType) tc = jobtype_parse("transcode", transcode_path, transcode_text,
                                              strlen(transcode_text), &e);
        g_assert_no_error(e);
        g_assert_null(tc->exec);
        g_assert_cmpuint(tc->timeout_usec, ==, 600 * SEC);
        g_assert_cmpuint(tc->max_attempts, ==, 3);
        g_assert_cmpuint(tc->retry_backoff_usec, ==, 10 * SEC);
        g_assert_cmpstr(tc->worker_groups[0], ==, "jobd-workers");
        g_assert_null(tc->worker_groups[1]);
}

/* ---- folders ---- */

typedef struct Dirs {
        char *path[3];
} Dirs;

static void rm_rf(const char *path) {
        g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
        const char *de;

        while (d && (de = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(path, de, NULL);
                struct stat st;

                if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        rm_rf(p);
                else
                        g_assert_cmpint(unlink(p), ==, 0);
        }
        g_assert_cmpint(rmdir(path), ==, 0);
}

static void dirs_setup(Dirs *d, gconstpointer data) {
        for (size_t i = 0; i < G_N_ELEMENTS(d->path); i++) {
                d->path[i] = g_dir_make_tmp("test-jobtype-XXXXXX", NULL);
                g_assert_nonnull(d->path[i]);
        }
}

static void dirs_teardown(Dirs *d, gconstpointer data) {
        for (size_t i = 0; i < G_N_ELEMENTS(d->path); i++) {
                rm_rf(d->path[i]);
                g_free(d->path[i]);
        }
}

static void put(const char *dir, const char *file, const char *text) {
        g_autofree char *p = g_build_filename(dir, file, NULL);
        g_autoptr(GError) e = NULL;

        g_assert_true(g_file_set_contents(p, text, -1, &e));
}

static GHashTable *load(Dirs *d, GPtrArray *problems) {
        const char *dirs[] = { d->path[0], d->path[1], d->path[2], NULL };
        return jobtype_load_dirs(dirs, problems);
}

static bool problems_contain(GPtrArray *problems, const char *a, const char *b) {
        for (guint i = 0; i < problems->len; i++)
                if (strstr(problems->pdata[i], a) && (!b || strstr(problems->pdata[i], b)))
                        return true;
        return false;
}

static void test_load_precedence(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);

        /* etc, run, vendor */
        put(d->path[2], "a.type", "[Type]\nDescription=vendor a\n");
        put(d->path[2], "b.type", "[Type]\nDescription=vendor b\n");
        put(d->path[2], "c.type", "[Type]\nDescription=vendor c\n");
        put(d->path[1], "b.type", "[Type]\nDescription=run b\n");
        put(d->path[1], "c.type", "[Type]\nDescription=run c\n");
        put(d->path[0], "c.type", "[Type]\nDescription=etc c\n");
        put(d->path[0], "d.type", "[Type]\nDescription=etc d\n");

        g_autoptr(GHashTable) types = load(d, problems);

        g_assert_cmpuint(problems->len, ==, 0);
        g_assert_cmpuint(g_hash_table_size(types), ==, 5);
        g_assert_cmpstr(((JobType *) g_hash_table_lookup(types, "a"))->description, ==, "vendor a");
        g_assert_cmpstr(((JobType *) g_hash_table_lookup(types, "b"))->description, ==, "run b");
        g_assert_cmpstr(((JobType *) g_hash_table_lookup(types, "c"))->description, ==, "etc c");
        g_assert_cmpstr(((JobType *) g_hash_table_lookup(types, "d"))->description, ==, "etc d");

        JobType *c = g_hash_table_lookup(types, "c");
        g_autofree char *c_path = g_build_filename(d->path[0], "c.type", NULL);
        g_assert_cmpstr(c->name, ==, "c");
        g_assert_cmpstr(c->path, ==, c_path);

        JobType *exec = g_hash_table_lookup(types, "exec");
        g_assert_nonnull(exec);
        g_assert_true(exec->builtin);
}

static void test_load_bad_file_skipped(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);

        put(d->path[0], "good.type", "[Type]\nExec=/bin/true\n");
        put(d->path[0], "bad.type", "[Type]\nDescription=Broken\n\nTimeout=fast\n");
        put(d->path[1], "unknown.type", "[Type]\nFrobnicate=yes\n");
        put(d->path[2], "other.type", "[Type]\n");

        g_autoptr(GHashTable) types = load(d, problems);

        g_assert_nonnull(g_hash_table_lookup(types, "good"));
        g_assert_nonnull(g_hash_table_lookup(types, "other"));
        g_assert_nonnull(g_hash_table_lookup(types, "exec"));
        g_assert_null(g_hash_table_lookup(types, "bad"));
        g_assert_null(g_hash_table_lookup(types, "unknown"));
        g_assert_cmpuint(g_hash_table_size(types), ==, 3);

        g_assert_cmpuint(problems->len, ==, 2);
        g_autofree char *bad = g_strdup_printf("%s/bad.type:4: Timeout=fast is not a time span; "
                                               "use e.g. 30s or 5min", d->path[0]);
        g_assert_cmpstr(problems->pdata[0], ==, bad);
        g_assert_true(problems_contain(problems, "unknown.type:2: unknown key Frobnicate= in [Type]", NULL));
}

static void test_load_broken_override_does_not_fall_back(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);

        put(d->path[0], "x.type", "[Type]\nNice=0\n");          /* Nice belongs in [Resources] */
        put(d->path[2], "x.type", "[Type]\nDescription=vendor x\n");

        g_autoptr(GHashTable) types = load(d, problems);

        g_assert_null(g_hash_table_lookup(types, "x"));
        g_assert_cmpuint(problems->len, ==, 1);
        g_assert_true(problems_contain(problems, "x.type:2: unknown key Nice=", "belongs in [Resources]"));
}

static void test_load_exec_refused(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *null_link = g_build_filename(d->path[1], "exec.type", NULL);

        put(d->path[0], "exec.type", "[Type]\nDescription=Evil\nExec=/bin/sh\n");
        g_assert_cmpint(symlink("/dev/null", null_link), ==, 0);

        g_autoptr(GHashTable) types = load(d, problems);
        JobType *exec = g_hash_table_lookup(types, "exec");

        g_assert_nonnull(exec);
        g_assert_true(exec->builtin);
        g_assert_null(exec->exec);
        g_assert_cmpstr(exec->description, ==, "Run a command as the calling user");
        g_assert_cmpuint(problems->len, ==, 1);          /* the /run one is shadowed by the /etc one */
        g_assert_true(problems_contain(problems, "exec.type: exec is a built-in type", NULL));
}

static void test_load_masking(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *link = g_build_filename(d->path[0], "a.type", NULL);

        put(d->path[2], "a.type", "[Type]\n");
        put(d->path[2], "b.type", "[Type]\n");
        put(d->path[2], "c.type", "[Type]\n");
        g_assert_cmpint(symlink("/dev/null", link), ==, 0);
        put(d->path[1], "b.type", "");

        g_autoptr(GHashTable) types = load(d, problems);

        g_assert_null(g_hash_table_lookup(types, "a"));
        g_assert_null(g_hash_table_lookup(types, "b"));
        g_assert_nonnull(g_hash_table_lookup(types, "c"));
        g_assert_cmpuint(problems->len, ==, 0);
}

static void test_load_odd_entries(Dirs *d, gconstpointer data) {
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *subdir = g_build_filename(d->path[0], "dir.type", NULL);
        g_autofree char *fifo = g_build_filename(d->path[0], "fifo.type", NULL);
        g_autofree char *dangling = g_build_filename(d->path[0], "dangling.type", NULL);
        g_autofree char *big = g_strnfill(64 * 1024 + 1, '#');
        g_autofree char *just_fits = g_strnfill(64 * 1024 - 7, '#');
        g_autofree char *fits = g_strconcat("[Type]\n", just_fits, NULL);

        g_assert_cmpint(mkdir(subdir, 0755), ==, 0);
        g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
        g_assert_cmpint(symlink("/nonexistent/x", dangling), ==, 0);
        big[0] = '[';   /* not that it gets read */
        put(d->path[0], "big.type", big);
        put(d->path[0], "fits.type", fits);
        put(d->path[0], ".hidden.type", "[Type]\n");
        put(d->path[0], "notes.txt", "not a type");
        put(d->path[0], "x.type~", "[Type]\n");
        put(d->path[0], "bad name.type", "[Type]\n");
        put(d->path[0], ".type", "[Type]\n");
        put(d->path[1], "ok.type", "[Type]\n");

        const char *dirs[] = { d->path[0], "/nonexistent/jobd/types.d", d->path[1], NULL };
        g_autoptr(GHashTable) types = jobtype_load_dirs(dirs, problems);

        g_assert_nonnull(g_hash_table_lookup(types, "ok"));
        g_assert_nonnull(g_hash_table_lookup(types, "fits"));
        g_assert_nonnull(g_hash_table_lookup(types, "exec"));
        g_assert_cmpuint(g_hash_table_size(types), ==, 3);

        for (guint i = 0; i < problems->len; i++)
                g_test_message("problem: %s", (char *) problems->pdata[i]);
        g_assert_true(problems_contain(problems, "dir.type: is not a regular file", NULL));
        g_assert_true(problems_contain(problems, "fifo.type: is not a regular file", NULL));
        g_assert_true(problems_contain(problems, "dangling.type: cannot open", NULL));
        g_assert_true(problems_contain(problems, "big.type: is larger than 64 KiB", NULL));
        g_assert_true(problems_contain(problems, "bad name.type: \"bad name\" is not a valid type name", NULL));
        g_assert_cmpuint(problems->len, ==, 5);
}

static void test_load_no_dirs(void) {
        g_autoptr(GHashTable) a = jobtype_load_dirs(NULL, NULL);
        const char *none[] = { NULL };
        g_autoptr(GHashTable) b = jobtype_load_dirs(none, NULL);

        g_assert_cmpuint(g_hash_table_size(a), ==, 1);
        g_assert_nonnull(g_hash_table_lookup(a, "exec"));
        g_assert_cmpuint(g_hash_table_size(b), ==, 1);
}

static void test_load_without_problem_array(Dirs *d, gconstpointer data) {
        put(d->path[0], "bad.type", "[Type]\nTimeout=fast\n");
        put(d->path[0], "good.type", "[Type]\n");

        g_autoptr(GHashTable) types = load(d, NULL);
        g_assert_cmpuint(g_hash_table_size(types), ==, 2);
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/jobtype/name-valid", test_name_valid);
        g_test_add_func("/jobtype/stdin-strings", test_stdin_strings);
        g_test_add_func("/jobtype/builtin-exec", test_builtin_exec);
        g_test_add_func("/jobtype/parse/full", test_parse_full);
        g_test_add_func("/jobtype/parse/defaults", test_parse_defaults);
        g_test_add_func("/jobtype/parse/empty-assignments", test_parse_empty_assignments);
        g_test_add_func("/jobtype/parse/exec-quoting", test_parse_exec_quoting);
        g_test_add_func("/jobtype/parse/infinity-and-zero", test_parse_infinity);
        g_test_add_func("/jobtype/parse/description", test_parse_description);
        g_test_add_func("/jobtype/parse/schedule", test_parse_schedule);
        g_test_add_func("/jobtype/parse/crlf-and-layout", test_parse_crlf_and_layout);
        g_test_add_func("/jobtype/parse/bad-values-name-their-line", test_bad_values_name_their_line);
        g_test_add_func("/jobtype/parse/structure-errors", test_structure_errors);
        g_test_add_func("/jobtype/parse/inline-comment", test_inline_comment);
        g_test_add_func("/jobtype/parse/invalid-name", test_parse_invalid_name);
        g_test_add_func("/jobtype/parse/example-files", test_example_files);
        g_test_add_func("/jobtype/load/no-dirs", test_load_no_dirs);
        g_test_add("/jobtype/load/precedence", Dirs, NULL, dirs_setup, test_load_precedence, dirs_teardown);
        g_test_add("/jobtype/load/bad-file-skipped", Dirs, NULL, dirs_setup, test_load_bad_file_skipped,
                   dirs_teardown);
        g_test_add("/jobtype/load/broken-override-does-not-fall-back", Dirs, NULL, dirs_setup,
                   test_load_broken_override_does_not_fall_back, dirs_teardown);
        g_test_add("/jobtype/load/exec-refused", Dirs, NULL, dirs_setup, test_load_exec_refused, dirs_teardown);
        g_test_add("/jobtype/load/masking", Dirs, NULL, dirs_setup, test_load_masking, dirs_teardown);
        g_test_add("/jobtype/load/odd-entries", Dirs, NULL, dirs_setup, test_load_odd_entries, dirs_teardown);
        g_test_add("/jobtype/load/without-problem-array", Dirs, NULL, dirs_setup,
                   test_load_without_problem_array, dirs_teardown);

        return g_test_run();
}
