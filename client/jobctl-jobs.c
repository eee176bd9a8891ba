/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * submit, status, list, cancel, retry. Arguments are checked before the bus is opened, so a typo costs
 * no round trip and exits with EXIT_USAGE. Verbs taking several ids go on past a failed one and
 * fail at the end, as systemctl does.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "jobctl-bus.h"
#include "jobctl-jobs.h"
#include "jobctl-time.h"
#include "cleanup.h"
#include "fs-util.h"
#include "jobd-names.h"
#include "parse-util.h"

/* Far above any sane MaxParameterBytes=; only keeps a runaway pipe from eating memory. */
#define PARAMETERS_STDIN_MAX (64u * 1024u * 1024u)
/* --input=- is copied into memory first; a file is passed as it is, without a copy */
#define INPUT_STDIN_MAX (UINT64_C(1) << 30)

/* List's own cap (org.jobd.Jobd1.xml); reaching it means there may be more. */

/* Width of the labels in `jobctl status`, right-aligned as in systemctl status. */
#define STATUS_LABEL_WIDTH 11

/* Processes listed under a running job's CGroup: before the rest is summed up. */
#define SCOPE_PROCESSES_MAX 20

#define SYSTEMD_BUS_NAME          "org.freedesktop.systemd1"
#define SYSTEMD_PATH              "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER_INTERFACE "org.freedesktop.systemd1.Manager"
#define SYSTEMD_SCOPE_INTERFACE   "org.freedesktop.systemd1.Scope"

const char *job_status_color(const char *status) {
        if (streq_ptr(status, JOBD_STATUS_RUNNING))
                return ANSI_GREEN;
        if (streq_ptr(status, JOBD_STATUS_FAILED))
                return ANSI_RED;
        if (streq_ptr(status, JOBD_STATUS_CANCELLED))
                return ANSI_YELLOW;
        return NULL;
}

Glyph job_status_glyph(const char *status) {
        if (streq_ptr(status, JOBD_STATUS_RUNNING) || streq_ptr(status, JOBD_STATUS_SUCCEEDED))
                return GLYPH_BLACK_CIRCLE;
        if (streq_ptr(status, JOBD_STATUS_FAILED) || streq_ptr(status, JOBD_STATUS_CANCELLED))
                return GLYPH_MULTIPLICATION_SIGN;
        return GLYPH_WHITE_CIRCLE;
}

static int parse_job_ids(int argc, char *argv[], GArray **ret) {
        g_autoptr(GArray) ids = g_array_sized_new(FALSE, FALSE, sizeof(uint64_t), argc);

        for (int i = 1; i < argc; i++) {
                uint64_t id;

                if (parse_job_id(argv[i], &id) < 0)
                        return log_usage("Invalid job id '%s': a positive integer, as printed by submit.",
                                         argv[i]);
                g_array_append_val(ids, id);
        }

        *ret = g_steal_pointer(&ids);
        return 0;
}

/* submit */

static int read_parameters_stdin(char **ret) {
        g_autoptr(GString) s = g_string_new(NULL);
        char buf[64 * 1024];

        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "Failed to read parameters from standard input: %m");
                }
                if (n == 0)
                        break;
                if (s->len + (size_t) n > PARAMETERS_STDIN_MAX)
                        return log_error_errno(E2BIG, "Parameters on standard input exceed %u MiB.",
                                               PARAMETERS_STDIN_MAX / 1024 / 1024);
                g_string_append_len(s, buf, n);
        }

        /* a D-Bus string ends at the first NUL: the rest would be dropped without a word */
        if (memchr(s->str, '\0', s->len))
                return log_usage("Parameters on standard input contain a NUL byte; JSON text has none.");

        *ret = g_string_free(g_steal_pointer(&s), FALSE);
        return 0;
}

/* Catches a typo here rather than as InvalidParameters from the daemon. */
static int check_parameters(const char *text) {
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autoptr(GError) error = NULL;

        if (!g_utf8_validate(text, -1, NULL))
                return log_usage("Parameters are not valid UTF-8.");
        if (!json_parser_load_from_data(parser, text, -1, &error))
                return log_usage("Parameters are not valid JSON: %s", error->message);
        return 0;
}

static const char *file_type_name(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFDIR:  return "a directory";
        case S_IFIFO:  return "a pipe";
        case S_IFSOCK: return "a socket";
        case S_IFCHR:  return "a character device";
        case S_IFBLK:  return "a block device";
        default:       return "not a regular file";
        }
}

/* The stream's bytes in a memfd that nobody can change any more, read from the start. */
static int input_from_stdin(int *ret_fd) {
        _cleanup_(closep) int fd = -1;
        int r;

        fd = memfd_create("jobctl-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create a memfd for the input: %m");
        r = copy_bytes(STDIN_FILENO, fd, INPUT_STDIN_MAX, NULL);
        if (r == -EFBIG)
                return log_error_errno(r, "Standard input is over %" PRIu64 " MiB; give the input as a file "
                                       "(--input=FILE), which is passed without a copy.",
                                       INPUT_STDIN_MAX >> 20);
        if (r < 0)
                return log_error_errno(r, "Failed to copy standard input: %m");
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
            lseek(fd, 0, SEEK_SET) < 0)
                return log_error_errno(errno, "Failed to seal the input: %m");

        *ret_fd = fd;
        fd = -1;
        return 0;
}

static int input_from_file(const char *path, int *ret_fd) {
        _cleanup_(closep) int fd = -1;
        struct stat st;
        int flags;

        /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer before we can refuse it */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open input %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat input %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return log_usage("--input=%s is %s; jobd takes regular files only. Send a stream "
                                 "with --input=- (it is copied first): --input=- < %s",
                                 path, file_type_name(st.st_mode), path);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to set up input %s: %m", path);

        *ret_fd = fd;
        fd = -1;
        return 0;
}

int submit_open_input(const Args *a, int *ret_fd) {
        *ret_fd = -1;
        if (!a->input)
                return 0;
        if (strcmp(a->input, "-") == 0)
                return input_from_stdin(ret_fd);
        return input_from_file(a->input, ret_fd);
}

int submit_check_input_bus(const Context *c, sd_bus *bus, int input_fd) {
        if (input_fd < 0 || sd_bus_can_send(bus, SD_BUS_TYPE_UNIX_FD) > 0)
                return 0;
        return log_usage("--input= passes a file descriptor, which the connection to %s cannot carry%s.",
                         c->args.host ?: "jobd",
                         c->args.host ? " (SSH); run the command on that host" : "");
}

int submit_check_options(const Args *a) {
        if ((a->set & OPTION(DELAY)) && (a->set & OPTION(NOT_BEFORE)))
                return log_usage("--delay= and --not-before= both say when to start; give one.");
        for (unsigned i = 0; a->after && i < a->after->len; i++)
                if (g_array_index(a->after, uint64_t, i) == 0)
                        return log_usage("Invalid --after=0: job ids start at 1.");
        return 0;
}

/* Their Submit options as {sv} entries, into an a{sv} the caller opened; input_fd (or -1) as
 * input, duplicated into the message. */
static int submit_append_options(sd_bus_message *m, const Args *a, int input_fd) {
        int r;

        if (input_fd >= 0) {
                r = sd_bus_message_append(m, "{sv}", "input", "h", input_fd);
                if (r < 0)
                        return r;
        }

        if (a->set & OPTION(PRIORITY)) {
                r = sd_bus_message_append(m, "{sv}", "priority", "i", (int32_t) a->priority);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(DELAY)) {
                r = sd_bus_message_append(m, "{sv}", "delay_usec", "t", a->delay_usec);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(NOT_BEFORE)) {
                r = sd_bus_message_append(m, "{sv}", "not_before_usec", "t", a->not_before_usec);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(TIMEOUT)) {
                r = sd_bus_message_append(m, "{sv}", "timeout_usec", "t", a->timeout_usec);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(MAX_ATTEMPTS)) {
                r = sd_bus_message_append(m, "{sv}", "max_attempts", "u", (uint32_t) a->max_attempts);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(EXPIRE)) {
                r = sd_bus_message_append(m, "{sv}", "expire_usec", "t", a->expire_usec);
                if (r < 0)
                        return r;
        }
        if (a->unique_key) {
                r = sd_bus_message_append(m, "{sv}", "unique_key", "s", a->unique_key);
                if (r < 0)
                        return r;
        }
        if (a->lock) {
                r = sd_bus_message_append(m, "{sv}", "lock", "s", a->lock);
                if (r < 0)
                        return r;
        }
        if (a->after && a->after->len > 0) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "s", "after");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'v', "at");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_array(m, 't', a->after->data, a->after->len * sizeof(uint64_t));
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }

        return 0;
}

int submit_call(sd_bus *bus, const char *type, const char *parameters, const Args *a, int input_fd,
                SubmitExtraFn extra, const char *what, uint64_t *ret_id, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, JOBD_BUS_NAME, JOBD_MANAGER_PATH,
                                           JOBD_MANAGER_INTERFACE, "Submit");
        if (r < 0)
                return log_error_errno(r, "Failed to create Submit call: %m");
        r = sd_bus_message_append(m, "ss", type, parameters);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = submit_append_options(m, a, input_fd);
        if (r >= 0 && extra)
                r = extra(m, a);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_error_errno(r, "Failed to append options: %m");

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to %s: %s", what, bus_error_message(&error, r));
                return r;
        }
        r = sd_bus_message_read(reply, "to", ret_id, &path);
        if (r < 0)
                return log_error_errno(r, "Failed to parse Submit reply: %m");
        *ret_path = g_strdup(path);
        return 0;
}

int submit_print(const Context *c, uint64_t id, const char *path) {
        g_autoptr(JsonBuilder) b = NULL;
        g_autoptr(JsonNode) root = NULL;

        if (c->args.json == JSON_OFF) {
                /* just the number, so that ID=$(jobctl submit ...) works */
                printf("%" PRIu64 "\n", id);
                return 0;
        }

        b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "id");
        json_builder_add_int_value(b, (gint64) id);
        json_builder_set_member_name(b, "job");
        json_builder_add_string_value(b, path);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        return json_print(root, c->args.json);
}

static int verb_submit(Context *c, int argc, char *argv[]) {
        g_autofree char *parameters = NULL, *path = NULL;
        _cleanup_(closep) int input_fd = -1;
        const char *type = argv[1];
        sd_bus *bus;
        uint64_t id;
        int r;

        if (!type[0])
                return log_usage("The job type must not be empty. See '%s types'.",
                                 program_invocation_short_name);
        r = submit_check_options(&c->args);
        if (r != 0)
                return r;
        if (argc > 2 && strcmp(argv[2], "-") == 0 && c->args.input && strcmp(c->args.input, "-") == 0)
                return log_usage("Standard input can hold the parameters or the input, not both; give "
                                 "one of them as a file.");

        if (argc < 3)
                parameters = g_strdup("{}");
        else if (strcmp(argv[2], "-") == 0) {
                r = read_parameters_stdin(&parameters);
                if (r != 0)
                        return r;
        } else
                parameters = g_strdup(argv[2]);

        r = check_parameters(parameters);
        if (r != 0)
                return r;
        r = submit_open_input(&c->args, &input_fd);
        if (r != 0)
                return r;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;
        r = submit_check_input_bus(c, bus, input_fd);
        if (r != 0)
                return r;

        r = submit_call(bus, type, parameters, &c->args, input_fd, NULL, "submit job", &id, &path);
        if (r < 0)
                return r;
        return submit_print(c, id, path);
}

/* status */

static char *format_owner(const Context *c, uint32_t uid) {
        struct passwd *pw;

        if (context_is_remote(c))
                return g_strdup_printf("%" PRIu32, uid);
        pw = getpwuid(uid);
        if (!pw)
                return g_strdup_printf("%" PRIu32, uid);
        return g_strdup_printf("%s (%" PRIu32 ")", pw->pw_name, uid);
}

/* "  Label: value", escaped; further lines of value indented under the first */
static void print_field(const char *label, const char *color, const char *value) {
        g_auto(GStrv) lines = g_strsplit(value, "\n", -1);

        for (char **l = lines; *l; l++) {
                g_autofree char *text = text_escape(*l);

                if (l == lines)
                        printf("%*s: ", STATUS_LABEL_WIDTH, label);
                else if (!**l && !l[1])
                        break;          /* the final newline of the text */
                else
                        printf("%*s  ", STATUS_LABEL_WIDTH, "");
                printf("%s%s%s\n", color ? ansi(color) : "", text, color ? ansi(ANSI_NORMAL) : "");
        }
}

static void print_field_str(GVariant *props, const char *label, const char *key) {
        const char *s;

        if (vardict_get_str(props, key, &s) && s[0])
                print_field(label, NULL, s);
}

static void print_field_time(GVariant *props, const char *label, const char *key, uint64_t now) {
        g_autofree char *absolute = NULL, *relative = NULL, *text = NULL;
        uint64_t usec;

        if (!vardict_get_u64(props, key, &usec))
                return;
        absolute = format_timestamp(usec);
        if (!absolute)
                return;
        relative = format_timestamp_relative(usec, now);
        text = g_strdup_printf("%s; %s", absolute, relative);
        print_field(label, NULL, text);
}

/* The scope of a running local job, as its systemd manager sees it now: the same bus carries
 * org.freedesktop.systemd1 (system bus; the user's bus in user mode; the remote system bus
 * with -H). Best effort: without it, status shows what jobd recorded. */
static int scope_get_properties(sd_bus *bus, const char *unit, GVariant **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SYSTEMD_BUS_NAME, SYSTEMD_PATH, SYSTEMD_MANAGER_INTERFACE,
                                           "GetUnit");
        if (r < 0)
                return r;
        /* a bus without a systemd (a bare session bus) is not worth starting one for */
        r = sd_bus_message_set_auto_start(m, false);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", unit);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, NULL, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        return bus_get_all_properties_of(bus, SYSTEMD_BUS_NAME, path, SYSTEMD_SCOPE_INTERFACE, NULL, ret);
}

static bool u64_is_set(GVariant *props, const char *key, uint64_t *ret) {
        return vardict_get_u64(props, key, ret) && *ret != UINT64_MAX;
}

/* "ID COMMAND LINE" of a process in the scope, or NULL when it is gone */
static char *process_describe(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int) pid), *data = NULL;
        gsize size = 0;

        if (!g_file_get_contents(path, &data, &size, NULL))
                return NULL;
        while (size > 0 && data[size - 1] == '\0')
                size--;
        if (size == 0) {
                /* a zombie or a kernel thread: its name then */
                g_free(path);
                g_free(data);
                path = g_strdup_printf("/proc/%d/comm", (int) pid);
                if (!g_file_get_contents(path, &data, &size, NULL))
                        return NULL;
                g_strchomp(data);
                return g_strdup_printf("%d [%s]", (int) pid, data);
        }
        for (gsize i = 0; i < size; i++)
                if (data[i] == '\0')
                        data[i] = ' ';
        data[size] = '\0';
        return g_strdup_printf("%d %s", (int) pid, data);
}

/* The scope's processes under "CGroup:", as systemctl status lists them; only for this machine,
 * whose /sys and /proc these are. */
static void print_scope_processes(const char *cgroup) {
        /* cgroup v2, then the v2 and name=systemd hierarchies of a hybrid setup */
        static const char *const roots[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd" };
        g_autofree char *data = NULL;
        g_auto(GStrv) pids = NULL;
        unsigned cols = columns(), n = 0, shown = 0;

        for (size_t i = 0; i < G_N_ELEMENTS(roots) && !data; i++) {
                g_autofree char *path = g_strconcat(roots[i], cgroup, "/cgroup.procs", NULL);

                (void) g_file_get_contents(path, &data, NULL, NULL);
        }
        if (!data)
                return;
        pids = g_strsplit(g_strstrip(data), "\n", -1);
        for (char **p = pids; *p && **p; p++)
                n++;

        for (unsigned i = 0; i < n && shown < SCOPE_PROCESSES_MAX; i++) {
                g_autofree char *line = NULL, *text = NULL, *cut = NULL;
                const char *branch;
                int pid;

                if (parse_int(pids[i], &pid) < 0 || pid <= 0)
                        continue;
                line = process_describe(pid);
                if (!line)
                        continue;
                text = text_escape(line);
                branch = glyph(i + 1 == n ? GLYPH_TREE_RIGHT : GLYPH_TREE_BRANCH);
                /* indent, branch and a space before the text */
                if (cols > STATUS_LABEL_WIDTH + 5)
                        cut = text_ellipsize(text, cols - STATUS_LABEL_WIDTH - 5);
                printf("%*s  %s%s\n", STATUS_LABEL_WIDTH, "", branch, cut ?: text);
                shown++;
        }
        if (n > shown && shown == SCOPE_PROCESSES_MAX)
                printf("%*s  %s (%u more)\n", STATUS_LABEL_WIDTH, "", glyph(GLYPH_ELLIPSIS), n - shown);
}

/* "5.1M (max: 512.0M, peak: 6.0M)"; with accounting off (cgroup v1) the use is unknown, the
 * limit still holds */
static void print_scope_memory(GVariant *scope) {
        g_autoptr(GString) s = g_string_new(NULL);
        g_autofree char *cur_text = NULL, *max_text = NULL, *peak_text = NULL;
        uint64_t cur, max, peak;
        bool has_cur = u64_is_set(scope, "MemoryCurrent", &cur);
        bool has_max = u64_is_set(scope, "MemoryMax", &max);
        bool has_peak = u64_is_set(scope, "MemoryPeak", &peak) && peak > 0;

        if (!has_cur && !has_max)
                return;
        cur_text = has_cur ? format_bytes(cur) : g_strdup("unknown");
        max_text = has_max ? format_bytes(max) : NULL;
        peak_text = has_peak ? format_bytes(peak) : NULL;

        g_string_append(s, cur_text);
        if (has_max || has_peak)
                g_string_append_printf(s, " (%s%s%s%s%s)", has_max ? "max: " : "", max_text ?: "",
                                       has_max && has_peak ? ", " : "", has_peak ? "peak: " : "",
                                       peak_text ?: "");
        print_field("Memory", NULL, s->str);
}

/* "1.234s (quota: 50%)"; CPUQuotaPerSecUSec is the CPU time allowed per second */
static void print_scope_cpu(GVariant *scope) {
        g_autofree char *time = NULL, *text = NULL;
        uint64_t cur, quota;
        bool has_cur = u64_is_set(scope, "CPUUsageNSec", &cur);
        bool has_quota = u64_is_set(scope, "CPUQuotaPerSecUSec", &quota);

        if (!has_cur && !has_quota)
                return;
        time = has_cur ? format_timespan(cur / NSEC_PER_USEC, USEC_PER_MSEC) : g_strdup("unknown");
        text = has_quota ? g_strdup_printf("%s (quota: %" PRIu64 "%%)", time, quota / (USEC_PER_SEC / 100))
                         : g_strdup(time);
        print_field("CPU", NULL, text);
}

/* Tasks, Memory, CPU and CGroup of a running job's scope, now, with its limits */
static void print_scope(const Context *c, GVariant *scope) {
        uint64_t cur, max;
        const char *cgroup;

        if (u64_is_set(scope, "TasksCurrent", &cur)) {
                g_autofree char *text = u64_is_set(scope, "TasksMax", &max)
                        ? g_strdup_printf("%" PRIu64 " (limit: %" PRIu64 ")", cur, max)
                        : g_strdup_printf("%" PRIu64, cur);
                print_field("Tasks", NULL, text);
        }
        print_scope_memory(scope);
        print_scope_cpu(scope);

        if (vardict_get_str(scope, "ControlGroup", &cgroup) && cgroup[0]) {
                print_field("CGroup", NULL, cgroup);
                if (!context_is_remote(c))
                        print_scope_processes(cgroup);
        }
}

static bool status_is_waiting(const char *status) {
        return streq_ptr(status, JOBD_STATUS_PENDING) || streq_ptr(status, JOBD_STATUS_SCHEDULED) ||
               streq_ptr(status, JOBD_STATUS_BLOCKED);
}

static void print_job_status(const Context *c, uint64_t id, GVariant *props) {
        const char *status = NULL, *type = "", *message = NULL, *color;
        uint64_t now = now_realtime_usec(), u64;
        uint32_t u32, attempt, max_attempts;
        int32_t i32;

        (void) vardict_get_str(props, "Status", &status);
        (void) vardict_get_str(props, "Type", &type);
        color = job_status_color(status);

        g_autofree char *type_text = text_escape(type);
        printf("%s%s%s Job %" PRIu64 " - %s\n", color ? ansi(color) : "", glyph(job_status_glyph(status)),
               color ? ansi(ANSI_NORMAL) : "", id, type_text);

        print_field_str(props, "Type", "Type");
        if (status)
                print_field("Status", color, status);

        if (vardict_get_u32(props, "Owner", &u32)) {
                g_autofree char *owner = format_owner(c, u32);
                print_field("Owner", NULL, owner);
        }
        if (vardict_get_i32(props, "Priority", &i32)) {
                g_autofree char *text = g_strdup_printf("%" PRIi32, i32);
                print_field("Priority", NULL, text);
        }

        print_field_time(props, "Submitted", "SubmittedUSec", now);
        if (status_is_waiting(status))
                print_field_time(props, "NotBefore", "NotBeforeUSec", now);
        print_field_time(props, "Started", "StartedUSec", now);
        if (streq_ptr(status, JOBD_STATUS_RUNNING))
                print_field_time(props, "Deadline", "DeadlineUSec", now);
        print_field_time(props, "Finished", "FinishedUSec", now);

        if (vardict_get_u32(props, "Attempt", &attempt)) {
                bool has_max = vardict_get_u32(props, "MaxAttempts", &max_attempts) && max_attempts > 0;
                g_autofree char *text = has_max
                        ? g_strdup_printf("%" PRIu32 "/%" PRIu32, attempt, max_attempts)
                        : g_strdup_printf("%" PRIu32, attempt);
                print_field("Attempt", NULL, text);
        }

        (void) vardict_get_str(props, "ProgressMessage", &message);
        if (!vardict_get_u32(props, "Progress", &u32))
                u32 = 0;
        if (u32 > 0 || (message && message[0])) {
                g_autofree char *text = message && message[0]
                        ? g_strdup_printf("%" PRIu32 "%% %s", u32, message)
                        : g_strdup_printf("%" PRIu32 "%%", u32);
                print_field("Progress", NULL, text);
        }

        g_autofree char *after = vardict_join(props, "After", " ");
        if (after)
                print_field("After", NULL, after);

        g_autoptr(GVariant) scope = NULL;
        const char *unit;

        if (vardict_get_str(props, "Unit", &unit) && unit[0]) {
                print_field("Unit", NULL, unit);
                if (streq_ptr(status, JOBD_STATUS_RUNNING) && c->bus)
                        (void) scope_get_properties(c->bus, unit, &scope);
        }
        print_field_str(props, "Worker", "Worker");

        if (scope)
                print_scope(c, scope);
        else if (vardict_get_u64(props, "CPUUsageNSec", &u64) && u64 > 0 && u64 != UINT64_MAX) {
                g_autofree char *text = format_timespan(u64 / NSEC_PER_USEC, USEC_PER_MSEC);
                print_field("CPU", NULL, text);
        }
        if (!scope && vardict_get_u64(props, "MemoryPeakBytes", &u64) && u64 > 0 && u64 != UINT64_MAX) {
                g_autofree char *size = format_bytes(u64), *text = g_strconcat(size, " (peak)", NULL);
                print_field("Memory", NULL, text);
        }

        if (vardict_get_i32(props, "ExitStatus", &i32) && i32 >= 0) {
                g_autofree char *text = g_strdup_printf("%" PRIi32, i32);
                print_field("ExitStatus", i32 == 0 ? NULL : ANSI_RED, text);
        }
        if (vardict_get_str(props, "Error", &message) && message[0])
                print_field("Error", ANSI_RED, message);

        g_autofree char *outputs = vardict_join(props, "Outputs", ", ");
        if (outputs)
                print_field("Outputs", NULL, outputs);

        print_field_str(props, "Parameters", "Parameters");
        print_field_str(props, "Result", "Result");
}

static int verb_status(Context *c, int argc, char *argv[]) {
        g_autoptr(GArray) ids = NULL;
        sd_bus *bus;
        int r, ret = 0;
        bool first = true;

        r = parse_job_ids(argc, argv, &ids);
        if (r != 0)
                return r;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < ids->len; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t id = g_array_index(ids, uint64_t, i);
                g_autofree char *path = job_object_path(id);
                g_autoptr(GVariant) props = NULL;

                r = bus_get_all_properties(bus, path, JOBD_JOB_INTERFACE, &error, &props);
                if (r < 0) {
                        log_error("Failed to get status of job %" PRIu64 ": %s",
                                  id, bus_error_message(&error, r));
                        ret = r;
                        continue;
                }

                if (c->args.json != JSON_OFF) {
                        /* one document per job: a single id prints just the object */
                        g_autoptr(JsonNode) node = json_from_variant(props);

                        r = json_print(node, c->args.json);
                        if (r < 0)
                                return log_error_errno(r, "Failed to write JSON: %m");
                        continue;
                }

                if (!first)
                        putchar('\n');
                first = false;
                print_job_status(c, id, props);
        }

        return ret;
}

/* list */

static int resolve_owner(const Context *c, uint32_t *ret) {
        const char *owner = c->args.owner;
        struct passwd *pw;
        guint64 uid;

        if (g_ascii_isdigit(owner[0])) {
                /* (uid_t) -1 is "no user" everywhere */
                if (!g_ascii_string_to_unsigned(owner, 10, 0, UINT32_MAX - 1, &uid, NULL))
                        return log_usage("Invalid --owner=%s: a user name or uid.", owner);
                *ret = (uint32_t) uid;
                return 0;
        }

        if (context_is_remote(c))
                return log_usage("--owner=%s: give a uid with --host=; user names would be looked up "
                                 "here, not on %s.", owner, c->args.host);

        pw = getpwnam(owner);
        if (!pw)
                return log_usage("Unknown user '%s' in --owner=.", owner);
        *ret = pw->pw_uid;
        return 0;
}

static int append_entry_strv(sd_bus_message *m, const char *key, GPtrArray *values) {
        g_autofree char **strv = g_new0(char *, values->len + 1);
        int r;

        memcpy(strv, values->pdata, values->len * sizeof(char *));

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, strv);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_list_filter(sd_bus_message *m, const Args *a, const uint32_t *owner) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        if (a->status) {
                r = append_entry_strv(m, "status", a->status);
                if (r < 0)
                        return r;
        }
        if (a->type) {
                r = append_entry_strv(m, "type", a->type);
                if (r < 0)
                        return r;
        }
        if (owner) {
                r = sd_bus_message_append(m, "{sv}", "owner", "u", *owner);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(LIMIT)) {
                r = sd_bus_message_append(m, "{sv}", "limit", "u", (uint32_t) a->limit);
                if (r < 0)
                        return r;
        }
        if (a->after) {
                r = sd_bus_message_append(m, "{sv}", "after_id", "t", g_array_index(a->after, uint64_t, 0));
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(m);
}

static int print_jobs_json(const Context *c, GVariant *jobs) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        g_autoptr(JsonNode) root = NULL;
        const char *type, *status, *owner, *path;
        GVariantIter iter;
        guint64 id;

        json_builder_begin_array(b);
        g_variant_iter_init(&iter, jobs);
        while (g_variant_iter_next(&iter, "(t&s&s&s&o)", &id, &type, &status, &owner, &path)) {
                json_builder_begin_object(b);
                json_builder_set_member_name(b, "id");
                json_builder_add_int_value(b, (gint64) id);
                json_builder_set_member_name(b, "type");
                json_builder_add_string_value(b, type);
                json_builder_set_member_name(b, "status");
                json_builder_add_string_value(b, status);
                json_builder_set_member_name(b, "owner");
                json_builder_add_string_value(b, owner);
                json_builder_set_member_name(b, "job");
                json_builder_add_string_value(b, path);
                json_builder_end_object(b);
        }
        json_builder_end_array(b);

        root = json_builder_get_root(b);
        return json_print(root, c->args.json);
}

static void print_jobs_table(const Context *c, GVariant *jobs) {
        g_autoptr(Table) t = table_new("ID", "TYPE", "STATUS", "OWNER", NULL);
        const char *type, *status, *owner, *path;
        uint64_t last_id = 0;
        unsigned limit = (c->args.set & OPTION(LIMIT)) ? MIN(c->args.limit, LIST_LIMIT_MAX) : LIST_LIMIT_MAX;
        GVariantIter iter;
        guint64 id;
        size_t n;

        table_set_align_right(t, 0);
        g_variant_iter_init(&iter, jobs);
        while (g_variant_iter_next(&iter, "(t&s&s&s&o)", &id, &type, &status, &owner, &path)) {
                g_autofree char *id_text = g_strdup_printf("%" PRIu64, (uint64_t) id);

                table_add_cell(t, id_text, NULL);
                table_add_cell(t, type, NULL);
                table_add_cell(t, status, job_status_color(status));
                table_add_cell(t, owner, NULL);
                last_id = id;
        }

        n = table_get_rows(t);
        if (n > 0)
                table_print(t, c->args.legend, stdout);
        if (!c->args.legend)
                return;

        if (n > 0)
                putchar('\n');
        printf("%zu job%s listed.", n, n == 1 ? "" : "s");
        if (n > 0 && n >= limit)
                printf(" There may be more: --after=%" PRIu64 " lists the next ones.", last_id);
        putchar('\n');
}

static int verb_list(Context *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        g_autoptr(GVariant) body = NULL, jobs = NULL;
        uint32_t owner;
        sd_bus *bus;
        int r;

        if (c->args.after && c->args.after->len != 1)
                return log_usage("list --after= takes one job id: the last one already seen.");
        if (c->args.owner) {
                r = resolve_owner(c, &owner);
                if (r != 0)
                        return r;
        }

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, JOBD_BUS_NAME, JOBD_MANAGER_PATH,
                                           JOBD_MANAGER_INTERFACE, "List");
        if (r < 0)
                return log_error_errno(r, "Failed to create List call: %m");
        r = append_list_filter(m, &c->args, c->args.owner ? &owner : NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to append filter: %m");

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to list jobs: %s", bus_error_message(&error, r));
                return r;
        }

        r = bus_message_read_body(reply, "(a(tssso))", &body);
        if (r < 0)
                return log_error_errno(r, "Failed to parse List reply: %m");
        jobs = g_variant_get_child_value(body, 0);

        if (c->args.json != JSON_OFF)
                return print_jobs_json(c, jobs);

        print_jobs_table(c, jobs);
        return 0;
}

/* cancel, retry */

/* Calls a method without arguments on each job; every ID is tried. */
static int call_each_job(Context *c, int argc, char *argv[], const char *method, const char *verb) {
        g_autoptr(GArray) ids = NULL;
        sd_bus *bus;
        int r, ret = 0;

        r = parse_job_ids(argc, argv, &ids);
        if (r != 0)
                return r;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < ids->len; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t id = g_array_index(ids, uint64_t, i);
                g_autofree char *path = job_object_path(id);

                r = sd_bus_call_method(bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, method,
                                       &error, NULL, NULL);
                if (r < 0) {
                        log_error("Failed to %s job %" PRIu64 ": %s", verb, id, bus_error_message(&error, r));
                        ret = r;
                }
        }

        return ret;
}

static int verb_cancel(Context *c, int argc, char *argv[]) {
        return call_each_job(c, argc, argv, "Cancel", "cancel");
}

static int verb_retry(Context *c, int argc, char *argv[]) {
        return call_each_job(c, argc, argv, "Retry", "retry");
}

const Verb jobs_verbs[] = {
        {
                .name = "submit",
                .min_args = 1,
                .max_args = 2,
                .options = OPTION(PRIORITY) | OPTION(DELAY) | OPTION(NOT_BEFORE) | OPTION(TIMEOUT) |
                           OPTION(MAX_ATTEMPTS) | OPTION(UNIQUE_KEY) | OPTION(LOCK) | OPTION(AFTER) |
                           OPTION(EXPIRE) | OPTION(INPUT),
                .run = verb_submit,
                .synopsis = "submit TYPE [JSON|-]",
                .summary = "Queue a job and print its id",
                .description =
                "JSON is the job's parameters: {} when omitted, read from standard input for -.\n"
                "The id alone goes to standard output: ID=$(jobctl submit ...) works.\n"
                "\n"
                "--input= gives the job data beside its parameters: jobd copies it into its spool\n"
                "before answering (at most MaxInputBytes=). A job of a type with Stdin=input reads\n"
                "it as standard input; an external worker receives it as a file descriptor\n"
                "('jobctl worker' hands it to its handler on fd 3).\n",
                .help =
                "     --priority=N            From -1000 to 1000; higher runs first\n"
                "     --delay=TIMESPAN        Start no sooner than this from now (30s, 5min, 1h)\n"
                "     --not-before=TIME       Start no sooner than TIME (\"2024-05-07 14:00\", \"14:00\",\n"
                "                             \"tomorrow\", \"+2h\", \"@EPOCH\")\n"
                "     --timeout=TIMESPAN      Stop an attempt after this long (default: the type's)\n"
                "     --max-attempts=N        Try at most N times (default: the type's)\n"
                "     --unique-key=KEY        While a job with KEY is unfinished, get its id instead\n"
                "                             of queueing another\n"
                "     --lock=KEY              Run at most one of your jobs holding KEY at a time;\n"
                "                             the others wait blocked, by priority, then age\n"
                "     --after=ID[,ID...]      Run only once these jobs have succeeded (blocked\n"
                "                             until then); fail if one of them fails; repeatable\n"
                "     --expire=TIMESPAN       Fail unless started within this time (at most 1 year)\n"
                "     --input=FILE            Data for the job: a regular file, or - for standard\n"
                "                             input (copied into memory first)\n",
        },
        {
                .name = "status",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_status,
                .synopsis = "status ID...",
                .summary = "Show the state of jobs",
                .description =
                "Parameters, Result and Error show only to the job's owner, root and admins.\n"
                "A running local job shows its scope as systemd sees it now: tasks, memory and\n"
                "CPU against its limits, and its processes; a finished one what jobd recorded\n"
                "(CPU time, peak memory, exit status, outputs).\n"
                "With --json, one object per job with every property of org.jobd.Jobd1.Job.\n",
        },
        {
                .name = "list",
                .max_args = 0,
                .options = OPTION(STATUS) | OPTION(TYPE) | OPTION(OWNER) | OPTION(LIMIT) | OPTION(AFTER),
                .run = verb_list,
                .synopsis = "list",
                .summary = "List jobs, oldest first",
                .help =
                "     --status=STATUS[,...]   Only jobs in these statuses (--status=help lists them)\n"
                "     --type=TYPE[,...]       Only jobs of these types\n"
                "     --owner=USER|UID        Only jobs this user submitted\n"
                "     --limit=N               At most N jobs (the service caps this at 10000)\n"
                "     --after=ID              Only jobs after this id, to page on\n",
        },
        {
                .name = "cancel",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_cancel,
                .synopsis = "cancel ID...",
                .summary = "Cancel jobs; running ones are stopped",
                .description =
                "A pending, scheduled or blocked job is cancelled at once (durably, before this\n"
                "returns). A running local job's scope is stopped (SIGTERM, then SIGKILL after\n"
                "10s) and the job ends cancelled when it is gone; a job held by an external\n"
                "worker ends at once and the worker's token goes stale. Owner and root only.\n"
                "Every ID is tried; the exit status is 1 if any of them failed.\n",
        },
        {
                .name = "retry",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_retry,
                .synopsis = "retry ID...",
                .summary = "Run failed or cancelled jobs again",
                .description =
                "The job is queued again with a fresh attempt count (its dependencies, if any,\n"
                "must not have failed). Owner and root only. Every ID is tried; the exit status\n"
                "is 1 if any of them failed.\n",
        },
        {}
};
