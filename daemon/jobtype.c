/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns job types: the grammar of NAME.type files, the built-in exec type, and how the type folders
 * are merged. A JobType is immutable once returned; a reload builds a new table.
 *
 * Decisions (for the README):
 *  - Comments must be on a line of their own (GKeyFile's rule). "Timeout=5min # why" is refused
 *    with a hint; an unquoted word starting with # in Exec= is refused rather than silently
 *    dropped, so a literal # argument is written '#'. Description= is free text and keeps a #.
 *  - Every problem names PATH:LINE. Unknown sections and keys, a key set twice, a key before any
 *    section, a line that is none of [Section], Key=value or # comment, invalid UTF-8 and control
 *    characters are errors. A file without a [Type] section is an error.
 *  - An empty assignment (Key=) means the default, as in systemd.
 *  - Exec= is split like a shell (quotes and backslashes, no expansion; GKeyFile escapes are not
 *    applied on top) and must start with an absolute path: no $PATH lookup for a root daemon.
 *    Absent or empty Exec=: the type is worked by external workers.
 *  - Description= honours GKeyFile escapes, must be one line of at most 512 bytes, and defaults to
 *    the type's name.
 *  - Timeout=0 and Timeout=infinity both mean no timeout (timeout_usec 0). RetryBackoff=infinity is
 *    refused. WorkspaceRetention=infinity keeps the workspace (UINT64_MAX) until the job is purged.
 *  - MaxAttempts >= 1; MemoryMax, CPUQuota and TasksMax must be more than 0 (infinity: unset);
 *    TasksMax is a plain count; Nice is -20..19.
 *  - User= and the Submit/Worker lists take user and group names ([A-Za-z_][A-Za-z0-9_.-]*, an
 *    optional trailing $, at most 256 bytes) or numeric ids; existence is checked when used, not
 *    here, so a type may name a user that sysusers creates later. The four lists are never NULL:
 *    an empty list is an empty strv.
 *  - [Schedule]: OnCalendar= is given once (systemd's calendar syntax takes lists already:
 *    "Mon,Fri *-*-01,15 06,18:00"); it is checked here only for length, systemd parses it when
 *    recurring.c makes the timer. Parameters= is JSON taken as is (no key-file escapes, so JSON's
 *    own work), at most 4 KiB, default {}. Persistent= is a boolean (default no), AccuracySec= a
 *    time span (default systemd's 1min; 0 is 1us, as in a .timer file). Parameters=, Persistent=
 *    and AccuracySec= without OnCalendar= are errors: they would silently do nothing.
 *  - Folders: the first folder that has NAME.type wins, even when that file is bad: a broken
 *    override must not silently bring back the vendor settings it was meant to replace. Only
 *    regular *.type files up to 64 KiB count (symlinks are followed); hidden files are ignored.
 *    An empty file or a symlink to /dev/null masks the type, as for systemd units. exec.type is
 *    refused: the built-in exec type cannot be replaced or masked.
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jobtype.h"
#include "log.h"
#include "params.h"
#include "parse-util.h"

#define TYPE_FILE_SIZE_MAX (64u * 1024u)
#define TYPE_FILE_SUFFIX ".type"
#define DESCRIPTION_MAX 512u
#define ACCOUNT_NAME_MAX 256u

static const char *const stdin_table[_JOBTYPE_STDIN_MAX] = {
        [JOBTYPE_STDIN_PARAMETERS] = "parameters",
        [JOBTYPE_STDIN_INPUT]      = "input",
        [JOBTYPE_STDIN_NONE]       = "none",
};

const char *jobtype_stdin_to_string(JobTypeStdin s) {
        if (s < 0 || s >= _JOBTYPE_STDIN_MAX)
                return NULL;
        return stdin_table[s];
}

JobTypeStdin jobtype_stdin_from_string(const char *s) {
        if (!s)
                return _JOBTYPE_STDIN_INVALID;
        for (int i = 0; i < _JOBTYPE_STDIN_MAX; i++)
                if (strcmp(stdin_table[i], s) == 0)
                        return (JobTypeStdin) i;
        return _JOBTYPE_STDIN_INVALID;
}

bool jobtype_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > JOBTYPE_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isalnum(name[i]) && !strchr("_.-", name[i]))
                        return false;
        return true;
}

static JobType *jobtype_new(const char *name, const char *path) {
        JobType *t = g_new0(JobType, 1);

        t->name = g_strdup(name);
        t->path = g_strdup(path);
        t->stdin_mode = JOBTYPE_STDIN_PARAMETERS;
        t->max_attempts = 1;
        t->memory_max = UINT64_MAX;
        t->tasks_max = UINT64_MAX;
        /* never NULL, so callers can hand them to g_strv_* directly */
        t->submit_users = g_new0(char *, 1);
        t->submit_groups = g_new0(char *, 1);
        t->worker_users = g_new0(char *, 1);
        t->worker_groups = g_new0(char *, 1);
        return t;
}

JobType *jobtype_new_builtin_exec(void) {
        JobType *t = jobtype_new(JOBTYPE_BUILTIN_EXEC, NULL);

        t->description = g_strdup("Run a command as the calling user");
        t->stdin_mode = JOBTYPE_STDIN_NONE;
        t->builtin = true;
        return t;
}

JobType *jobtype_free(JobType *t) {
        if (!t)
                return NULL;

        g_free(t->name);
        g_free(t->path);
        g_free(t->description);
        g_strfreev(t->exec);
        g_free(t->user);
        g_strfreev(t->submit_users);
        g_strfreev(t->submit_groups);
        g_strfreev(t->worker_users);
        g_strfreev(t->worker_groups);
        g_free(t->on_calendar);
        g_free(t->schedule_parameters);
        return (g_free(t), NULL);
}

/* ---- values ---- */

/* Parsers write their field only on success; their message is the predicate of
 * "PATH:LINE: Key=value <message>". */
typedef gboolean (*ValueParser)(const char *value, void *field, GError **error);

static gboolean value_error(GError **error, const char *format, ...) G_GNUC_PRINTF(2, 3);
static gboolean value_error(GError **error, const char *format, ...) {
        g_autofree char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_set_error_literal(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, msg);
        return FALSE;
}

static gboolean parse_description(const char *value, void *field, GError **error) {
        if (strlen(value) > DESCRIPTION_MAX)
                return value_error(error, "is longer than %u bytes; keep it to one short line",
                                   DESCRIPTION_MAX);
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return value_error(error, "contains a control character; keep it to one line");

        *(char **) field = g_strdup(value);
        return TRUE;
}

/* g_shell_parse_argv() drops an unquoted word starting with # and the rest of the line. Mirror its
 * quoting to find one, so that a trailing "# comment" is refused instead of vanishing. */
static bool has_unquoted_comment(const char *s) {
        bool word_start = true;
        char quote = 0;

        for (const char *p = s; *p; p++) {
                if (quote == '\'') {
                        if (*p == '\'')
                                quote = 0;
                } else if (quote == '"') {
                        if (*p == '\\' && p[1])
                                p++;
                        else if (*p == '"')
                                quote = 0;
                } else if (*p == ' ' || *p == '\t') {
                        word_start = true;
                        continue;
                } else if (*p == '#' && word_start)
                        return true;
                else if (*p == '\\' && p[1])
                        p++;
                else if (*p == '\'' || *p == '"')
                        quote = *p;
                word_start = false;
        }
        return false;
}

static gboolean parse_exec(const char *value, void *field, GError **error) {
        g_autoptr(GError) e = NULL;
        g_auto(GStrv) argv = NULL;

        if (has_unquoted_comment(value))
                return value_error(error, "has a # outside quotes: comments go on a line of their own, "
                                   "and an argument starting with # must be quoted ('#')");
        if (!g_shell_parse_argv(value, NULL, &argv, &e))
                return value_error(error, "cannot be split into words: %s", e->message);
        if (!g_path_is_absolute(argv[0]))
                return value_error(error, "does not start with an absolute path; write e.g. /usr/bin/%s",
                                   argv[0]);

        *(char ***) field = g_steal_pointer(&argv);
        return TRUE;
}

static gboolean parse_stdin(const char *value, void *field, GError **error) {
        JobTypeStdin s = jobtype_stdin_from_string(value);

        if (s < 0)
                return value_error(error, "is not one of parameters, input, none");
        *(JobTypeStdin *) field = s;
        return TRUE;
}

/* A name as useradd/sysusers make them, or a numeric id; (uid_t) -1 is never an id. */
static bool account_name_is_valid(const char *s) {
        size_t n = strlen(s);
        unsigned id;

        if (n == 0 || n > ACCOUNT_NAME_MAX)
                return false;
        if (parse_unsigned(s, &id) == 0)
                return id != UINT32_MAX;
        if (!g_ascii_isalpha(s[0]) && s[0] != '_')
                return false;
        if (s[n - 1] == '$')     /* Samba machine accounts */
                n--;
        for (size_t i = 1; i < n; i++)
                if (!g_ascii_isalnum(s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

static gboolean parse_user(const char *value, void *field, GError **error) {
        if (!account_name_is_valid(value))
                return value_error(error, "is not a valid user name or id");
        *(char **) field = g_strdup(value);
        return TRUE;
}

static gboolean parse_account_list(const char *value, void *field, const char *what, GError **error) {
        g_auto(GStrv) words = g_strsplit_set(value, " \t", -1);
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

        for (char **w = words; *w; w++) {
                if (**w == '\0')
                        continue;
                if (!account_name_is_valid(*w))
                        return value_error(error, "lists \"%s\", which is not a valid %s name or id; "
                                           "separate names with spaces", *w, what);
                g_ptr_array_add(names, g_strdup(*w));
        }
        g_ptr_array_add(names, NULL);

        g_strfreev(*(char ***) field);
        *(char ***) field = (char **) g_ptr_array_free(g_steal_pointer(&names), FALSE);
        return TRUE;
}

static gboolean parse_user_list(const char *value, void *field, GError **error) {
        return parse_account_list(value, field, "user", error);
}

static gboolean parse_group_list(const char *value, void *field, GError **error) {
        return parse_account_list(value, field, "group", error);
}

static gboolean parse_count(const char *value, unsigned min, unsigned *ret, const char *example,
                            GError **error) {
        unsigned u;
        int r;

        r = parse_unsigned(value, &u);
        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. %s", example);
        if (r < 0)
                return value_error(error, "is not a number; use e.g. %s", example);
        if (u < min)
                return value_error(error, "must be at least %u", min);
        *ret = u;
        return TRUE;
}

static gboolean parse_concurrency(const char *value, void *field, GError **error) {
        return parse_count(value, 0, field, "4 (0: no limit but MaxRunning=)", error);
}

static gboolean parse_max_attempts(const char *value, void *field, GError **error) {
        return parse_count(value, 1, field, "3 (1: no retries)", error);
}

static gboolean parse_timespan(const char *value, uint64_t *ret, GError **error) {
        int r = parse_timespan_usec(value, ret);

        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 30s or 5min");
        if (r < 0)
                return value_error(error, "is not a time span; use e.g. 30s or 5min");
        return TRUE;
}

static gboolean parse_timeout(const char *value, void *field, GError **error) {
        uint64_t u;

        if (!parse_timespan(value, &u, error))
                return FALSE;
        *(uint64_t *) field = u == UINT64_MAX ? 0 : u;      /* both mean: no timeout */
        return TRUE;
}

static gboolean parse_backoff(const char *value, void *field, GError **error) {
        uint64_t u;

        if (!parse_timespan(value, &u, error))
                return FALSE;
        if (u == UINT64_MAX)
                return value_error(error, "would never retry; use a finite time span such as 10s, "
                                   "or MaxAttempts=1");
        *(uint64_t *) field = u;
        return TRUE;
}

static gboolean parse_retention(const char *value, void *field, GError **error) {
        return parse_timespan(value, field, error);
}

static gboolean parse_memory_max(const char *value, void *field, GError **error) {
        uint64_t u;
        int r;

        r = parse_size_bytes(value, &u);
        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 512M or 2G, or infinity");
        if (r < 0)
                return value_error(error, "is not a size; use e.g. 512M or 2G (K, M, G, T: powers of 1024)");
        if (u == 0)
                return value_error(error, "leaves no memory; use e.g. 512M, or infinity for no limit");
        *(uint64_t *) field = u;
        return TRUE;
}

static gboolean parse_cpu_quota(const char *value, void *field, GError **error) {
        unsigned u;
        int r;

        r = parse_percent(value, &u);
        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 50%% (200%% is two CPUs)");
        if (r < 0)
                return value_error(error, "is not a percentage; use e.g. 50%% (200%% is two CPUs)");
        if (u == 0)
                return value_error(error, "leaves no CPU time; use e.g. 50%%, or leave CPUQuota= unset");
        *(unsigned *) field = u;
        return TRUE;
}

static gboolean parse_tasks_max(const char *value, void *field, GError **error) {
        unsigned u = 0;

        if (strcmp(value, "infinity") == 0) {
                *(uint64_t *) field = UINT64_MAX;
                return TRUE;
        }
        if (!parse_count(value, 1, &u, "64, or infinity", error))
                return FALSE;
        *(uint64_t *) field = u;
        return TRUE;
}

static gboolean parse_nice(const char *value, void *field, GError **error) {
        int n, r;

        r = parse_int(value, &n);
        if (r == -EINVAL)
                return value_error(error, "is not a number; use -20 (first served) to 19 (last)");
        if (r < 0 || n < -20 || n > 19)
                return value_error(error, "is out of range; use -20 (first served) to 19 (last)");
        *(int *) field = n;
        return TRUE;
}

static gboolean parse_bool(const char *value, void *field, GError **error) {
        int r = parse_boolean(value);

        if (r < 0)
                return value_error(error, "is not a boolean; use yes or no");
        *(bool *) field = r;
        return TRUE;
}

static gboolean parse_on_calendar(const char *value, void *field, GError **error) {
        if (strlen(value) > JOBTYPE_ON_CALENDAR_MAX)
                return value_error(error, "is longer than %u bytes; a calendar expression is one line "
                                   "such as daily or Mon..Fri 08:00", JOBTYPE_ON_CALENDAR_MAX);
        *(char **) field = g_strdup(value);
        return TRUE;
}

static gboolean parse_schedule_parameters(const char *value, void *field, GError **error) {
        g_autoptr(GError) e = NULL;

        /* the timer passes them to jobctl on its command line */
        if (strlen(value) > JOBTYPE_SCHEDULE_PARAMETERS_MAX)
                return value_error(error, "is longer than %u bytes; a schedule's parameters are a "
                                   "small JSON value", JOBTYPE_SCHEDULE_PARAMETERS_MAX);
        if (!params_validate("", value, JOBTYPE_SCHEDULE_PARAMETERS_MAX, &e))
                return value_error(error, "cannot be a job's parameters: %s", e->message);
        *(char **) field = g_strdup(value);
        return TRUE;
}

static gboolean parse_accuracy(const char *value, void *field, GError **error) {
        uint64_t u;

        if (!parse_timespan(value, &u, error))
                return FALSE;
        if (u == UINT64_MAX)
                return value_error(error, "is not a finite time span; use e.g. 1s or 1min");
        /* sd-event takes 0 as "its default", so systemd's .timer files turn 0 into 1us */
        *(uint64_t *) field = u == 0 ? 1 : u;
        return TRUE;
}

typedef struct TypeKey {
        const char *section;
        const char *key;
        ValueParser parse;
        size_t offset;          /* into JobType; unused by parsers that store nothing */
        bool escapes;           /* GKeyFile's escapes (\s \n \t \r \\) apply */
} TypeKey;

static const TypeKey type_keys[] = {
        { "Type",      "Description",        parse_description,  offsetof(JobType, description), true },
        { "Type",      "Exec",               parse_exec,         offsetof(JobType, exec) },
        { "Type",      "Stdin",              parse_stdin,        offsetof(JobType, stdin_mode) },
        { "Type",      "User",               parse_user,         offsetof(JobType, user) },
        { "Type",      "Concurrency",        parse_concurrency,  offsetof(JobType, concurrency) },
        { "Type",      "Timeout",            parse_timeout,      offsetof(JobType, timeout_usec) },
        { "Type",      "MaxAttempts",        parse_max_attempts, offsetof(JobType, max_attempts) },
        { "Type",      "RetryBackoff",       parse_backoff,      offsetof(JobType, retry_backoff_usec) },
        { "Type",      "WorkspaceRetention", parse_retention,
          offsetof(JobType, workspace_retention_usec) },
        { "Type",      "SubmitUsers",        parse_user_list,    offsetof(JobType, submit_users) },
        { "Type",      "SubmitGroups",       parse_group_list,   offsetof(JobType, submit_groups) },
        { "Type",      "WorkerUsers",        parse_user_list,    offsetof(JobType, worker_users) },
        { "Type",      "WorkerGroups",       parse_group_list,   offsetof(JobType, worker_groups) },
        { "Resources", "MemoryMax",          parse_memory_max,   offsetof(JobType, memory_max) },
        { "Resources", "CPUQuota",           parse_cpu_quota,    offsetof(JobType, cpu_quota_percent) },
        { "Resources", "TasksMax",           parse_tasks_max,    offsetof(JobType, tasks_max) },
        { "Resources", "Nice",               parse_nice,         offsetof(JobType, nice) },
        { "Schedule",  "OnCalendar",         parse_on_calendar,  offsetof(JobType, on_calendar) },
        { "Schedule",  "Parameters",         parse_schedule_parameters,
          offsetof(JobType, schedule_parameters) },
        { "Schedule",  "Persistent",         parse_bool,         offsetof(JobType, schedule_persistent) },
        { "Schedule",  "AccuracySec",        parse_accuracy,     offsetof(JobType, schedule_accuracy_usec) },
};

/* ---- structure ---- */

typedef struct Scan {
        const char *path;
        unsigned lines[G_N_ELEMENTS(type_keys)];        /* where each key is set; 0: not set */
        bool has_type_section;
        GError *error;
} Scan;

static int scan_fail(Scan *s, unsigned line, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int scan_fail(Scan *s, unsigned line, const char *format, ...) {
        g_autofree char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_set_error(&s->error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:%u: %s", s->path, line, msg);
        return -EINVAL;
}

static int scan_unknown_key(Scan *s, const char *section, const char *key, unsigned line) {
        for (size_t i = 0; i < G_N_ELEMENTS(type_keys); i++)
                if (strcmp(type_keys[i].key, key) == 0)
                        return scan_fail(s, line, "unknown key %s= in [%s] (it belongs in [%s])",
                                         key, section, type_keys[i].section);

        for (size_t i = 0; i < G_N_ELEMENTS(type_keys); i++)
                if (strcmp(type_keys[i].section, section) == 0 &&
                    g_ascii_strcasecmp(type_keys[i].key, key) == 0)
                        return scan_fail(s, line, "unknown key %s= in [%s] (did you mean %s=?)",
                                         key, section, type_keys[i].key);

        return scan_fail(s, line, "unknown key %s= in [%s]", key, section);
}

static int on_type_line(const char *section, const char *key, unsigned line, void *userdata) {
        Scan *s = userdata;

        if (!key) {
                if (!g_str_equal(section, "Type") && !g_str_equal(section, "Resources") &&
                    !g_str_equal(section, "Schedule"))
                        return scan_fail(s, line, "unknown section [%s]; a type file has [Type], "
                                         "[Resources] and [Schedule]", section);
                s->has_type_section = s->has_type_section || g_str_equal(section, "Type");
                return 0;
        }

        if (!section)
                return scan_fail(s, line, "%s= comes before any section; put it under [Type]", key);

        for (size_t i = 0; i < G_N_ELEMENTS(type_keys); i++) {
                if (strcmp(type_keys[i].section, section) != 0 || strcmp(type_keys[i].key, key) != 0)
                        continue;
                /* GKeyFile would keep the last silently; one of them is a mistake */
                if (s->lines[i] > 0)
                        return scan_fail(s, line, "%s= is already set on line %u; set it once",
                                         key, s->lines[i]);
                s->lines[i] = line;
                return 0;
        }

        return scan_unknown_key(s, section, key, line);
}

static gboolean scan_type_file(Scan *s, const char *data, size_t size, GError **error) {
        unsigned line = 0;
        int r;

        r = keyfile_scan(data, size, on_type_line, s, &line);
        if (r == -EBADMSG)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s:%u: expected [Section], Key=value or a # comment on a line of its own",
                            s->path, line);
        else if (r == -EILSEQ)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s:%u: this line is not valid UTF-8 or holds a control character",
                            s->path, line);
        else if (r < 0 && s->error)
                g_propagate_error(error, g_steal_pointer(&s->error));
        else if (r < 0)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:1: %s",
                            s->path, g_strerror(-r));
        else if (!s->has_type_section)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s:1: the file has no [Type] section; a type file starts with [Type]", s->path);
        else
                return TRUE;

        g_clear_error(&s->error);
        return FALSE;
}

/* ---- parsing ---- */

/* Values are echoed in messages, but not at any length. */
static char *shorten(const char *s) {
        if (g_utf8_strlen(s, -1) <= 64)
                return g_strdup(s);
        g_autofree char *head = g_utf8_substring(s, 0, 60);
        return g_strconcat(head, "...", NULL);
}

/* GKeyFile's string escapes. Not g_key_file_get_string(): up to at least GLib 2.74 it sets its
 * GError twice, with a g_warning(), on a value holding two bad escapes. */
static char *unescape(const char *raw) {
        g_autoptr(GString) out = g_string_sized_new(strlen(raw));

        for (const char *p = raw; *p; p++) {
                if (*p != '\\') {
                        g_string_append_c(out, *p);
                        continue;
                }
                switch (*++p) {
                case 's':  g_string_append_c(out, ' ');  break;
                case 'n':  g_string_append_c(out, '\n'); break;
                case 't':  g_string_append_c(out, '\t'); break;
                case 'r':  g_string_append_c(out, '\r'); break;
                case '\\': g_string_append_c(out, '\\'); break;
                default:   return NULL;         /* includes a trailing lone backslash */
                }
        }
        return g_string_free(g_steal_pointer(&out), FALSE);
}

static bool looks_like_inline_comment(const char *raw) {
        return strstr(raw, " #") || strstr(raw, "\t#");
}

/* *ret_set: whether the key had a value (an empty assignment leaves the default) */
static gboolean apply_key(JobType *t, GKeyFile *kf, const TypeKey *k, const char *path, unsigned line,
                          bool *ret_set, GError **error) {
        g_autoptr(GError) e = NULL;
        g_autofree char *raw = NULL, *value = NULL, *shown = NULL;

        raw = g_key_file_get_value(kf, k->section, k->key, &e);
        if (!raw) {     /* cannot happen: the scan saw the key, so GKeyFile has it */
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:%u: %s",
                            path, line, e->message);
                return FALSE;
        }
        g_strstrip(raw);
        shown = shorten(raw);

        if (k->escapes) {
                value = unescape(raw);
                if (!value) {
                        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                                    "%s:%u: %s=%s has an invalid escape; the escapes are \\s, \\n, \\t, "
                                    "\\r and \\\\", path, line, k->key, shown);
                        return FALSE;
                }
                g_strstrip(value);
        } else
                value = g_strdup(raw);

        *ret_set = *value != '\0';
        if (!*ret_set)          /* an empty assignment means the default */
                return TRUE;

        if (!k->parse(value, (uint8_t *) t + k->offset, &e)) {
                bool hint = k->parse != parse_exec && looks_like_inline_comment(raw);

                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s:%u: %s=%s %s%s",
                            path, line, k->key, shown, e->message,
                            hint ? " (a # starts a comment only at the beginning of a line)" : "");
                return FALSE;
        }
        return TRUE;
}

static int compare_lines(gconstpointer a, gconstpointer b, gpointer userdata) {
        const unsigned *lines = userdata;
        unsigned la = lines[*(const size_t *) a], lb = lines[*(const size_t *) b];

        return la < lb ? -1 : la > lb;
}

JobType *jobtype_parse(const char *name, const char *path, const char *data, size_t size, GError **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(JobType) t = NULL;
        g_autoptr(GError) e = NULL;
        Scan s = { .path = path };
        size_t order[G_N_ELEMENTS(type_keys)], n = 0;
        const TypeKey *schedule_option = NULL;  /* the first of [Schedule] that needs OnCalendar= */

        if (!jobtype_name_is_valid(name)) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s: \"%s\" is not a valid type name; use up to %u letters, digits, '_', '.' "
                            "or '-', not starting with '.' or '-'", path, name ?: "", JOBTYPE_NAME_MAX);
                return NULL;
        }

        if (!scan_type_file(&s, data, size, error))
                return NULL;
        if (!g_key_file_load_from_data(kf, data ?: "", size, G_KEY_FILE_NONE, &e)) {
                /* keyfile_scan() refuses everything GKeyFile does; the fuzzer checks that */
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:1: %s", path, e->message);
                return NULL;
        }

        t = jobtype_new(name, path);

        /* in file order, so the first message is about the first bad line */
        for (size_t i = 0; i < G_N_ELEMENTS(type_keys); i++)
                if (s.lines[i] > 0)
                        order[n++] = i;
        g_qsort_with_data(order, (gint) n, sizeof(order[0]), compare_lines, s.lines);

        for (size_t i = 0; i < n; i++) {
                const TypeKey *k = &type_keys[order[i]];
                bool set = false;

                if (!apply_key(t, kf, k, path, s.lines[order[i]], &set, error))
                        return NULL;
                if (set && !schedule_option && g_str_equal(k->section, "Schedule") &&
                    !g_str_equal(k->key, "OnCalendar"))
                        schedule_option = k;
        }

        if (schedule_option && !t->on_calendar) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s:%u: %s= does nothing without OnCalendar=; add OnCalendar= (e.g. daily) "
                            "to [Schedule] or remove it", path, s.lines[schedule_option - type_keys],
                            schedule_option->key);
                return NULL;
        }
        if (t->on_calendar && !t->schedule_parameters)
                t->schedule_parameters = g_strdup("{}");
        if (!t->description)
                t->description = g_strdup(name);

        return g_steal_pointer(&t);
}

/* ---- folders ---- */

typedef enum ReadResult {
        READ_OK,
        READ_MASKED,
        READ_FAILED,
} ReadResult;

/* Reads a type file without trusting its size or kind: a FIFO must not block the daemon, and a file
 * growing under us must not make us read more than the cap. */
static ReadResult read_type_file(const char *path, char **ret_data, size_t *ret_size, char **ret_problem) {
        g_autofree char *buf = NULL;
        struct stat st;
        size_t n = 0;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                *ret_problem = g_strdup_printf("%s: cannot open: %s", path, g_strerror(errno));
                return READ_FAILED;
        }

        if (fstat(fd, &st) < 0) {
                *ret_problem = g_strdup_printf("%s: cannot stat: %s", path, g_strerror(errno));
                close(fd);
                return READ_FAILED;
        }
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {     /* /dev/null */
                close(fd);
                return READ_MASKED;
        }
        if (!S_ISREG(st.st_mode)) {
                *ret_problem = g_strdup_printf("%s: is not a regular file", path);
                close(fd);
                return READ_FAILED;
        }

        buf = g_malloc(TYPE_FILE_SIZE_MAX + 1);
        while (n <= TYPE_FILE_SIZE_MAX) {
                ssize_t k = read(fd, buf + n, TYPE_FILE_SIZE_MAX + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        *ret_problem = g_strdup_printf("%s: cannot read: %s", path, g_strerror(errno));
                        close(fd);
                        return READ_FAILED;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        close(fd);

        if (n > TYPE_FILE_SIZE_MAX) {
                *ret_problem = g_strdup_printf("%s: is larger than %u KiB; a type file is a few lines",
                                               path, TYPE_FILE_SIZE_MAX / 1024);
                return READ_FAILED;
        }
        if (n == 0)
                return READ_MASKED;

        *ret_data = g_steal_pointer(&buf);
        *ret_size = n;
        return READ_OK;
}

static void add_problem(GPtrArray *problems, char *msg) {
        log_warning("Ignoring job type file: %s", msg);
        if (problems)
                g_ptr_array_add(problems, msg);
        else
                g_free(msg);
}

static int compare_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static GPtrArray *list_type_files(const char *dir, GPtrArray *problems) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GError) e = NULL;
        g_autoptr(GDir) d = NULL;
        const char *de;

        d = g_dir_open(dir, 0, &e);
        if (!d) {
                /* a folder that does not exist is the usual case for /etc and /run */
                if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT) &&
                    !g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOTDIR))
                        add_problem(problems, g_strdup_printf("%s: %s", dir, e->message));
                return g_steal_pointer(&names);
        }

        while ((de = g_dir_read_name(d)))
                if (de[0] != '.' && g_str_has_suffix(de, TYPE_FILE_SUFFIX))
                        g_ptr_array_add(names, g_strdup(de));

        /* readdir order is arbitrary; problems and logs should not be */
        g_ptr_array_sort(names, compare_strings);
        return g_steal_pointer(&names);
}

static void load_one(GHashTable *types, const char *dir, const char *file, GPtrArray *problems) {
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *name = g_strndup(file, strlen(file) - strlen(TYPE_FILE_SUFFIX));
        g_autofree char *data = NULL, *problem = NULL;
        g_autoptr(GError) e = NULL;
        JobType *t;
        size_t size = 0;

        if (strcmp(name, JOBTYPE_BUILTIN_EXEC) == 0) {
                add_problem(problems, g_strdup_printf("%s: exec is a built-in type and cannot be replaced "
                                                      "or masked; rename the file", path));
                return;
        }

        /* jobtype_parse() checks the name too; checking first spares reading a file we would refuse */
        if (!jobtype_name_is_valid(name)) {
                add_problem(problems, g_strdup_printf("%s: \"%s\" is not a valid type name; use up to %u "
                                                      "letters, digits, '_', '.' or '-', not starting with "
                                                      "'.' or '-'", path, name, JOBTYPE_NAME_MAX));
                return;
        }

        switch (read_type_file(path, &data, &size, &problem)) {
        case READ_MASKED:
                log_debug("Job type %s is masked by %s.", name, path);
                return;
        case READ_FAILED:
                add_problem(problems, g_steal_pointer(&problem));
                return;
        case READ_OK:
                break;
        }

        t = jobtype_parse(name, path, data, size, &e);
        if (!t) {
                add_problem(problems, g_strdup(e->message));
                return;
        }

        g_hash_table_insert(types, g_strdup(t->name), t);
}

static void jobtype_destroy(gpointer t) {
        jobtype_free(t);
}

GHashTable *jobtype_load_dirs(const char *const *dirs, GPtrArray *ret_problems) {
        g_autoptr(GHashTable) types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, jobtype_destroy);
        /* names decided by an earlier folder, whether loaded, masked or broken */
        g_autoptr(GHashTable) claimed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        g_hash_table_insert(types, g_strdup(JOBTYPE_BUILTIN_EXEC), jobtype_new_builtin_exec());

        for (const char *const *dir = dirs; dir && *dir; dir++) {
                g_autoptr(GPtrArray) files = list_type_files(*dir, ret_problems);

                for (guint i = 0; i < files->len; i++) {
                        const char *file = files->pdata[i];

                        if (g_hash_table_contains(claimed, file)) {
                                log_debug("%s/%s is overridden by an earlier folder.", *dir, file);
                                continue;
                        }
                        g_hash_table_add(claimed, g_strdup(file));
                        load_one(types, *dir, file, ret_problems);
                }
        }

        return g_steal_pointer(&types);
}
