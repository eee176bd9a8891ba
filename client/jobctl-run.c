/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * run, follow, output: a job as it happens, and what it left behind.
 *
 * run submits the built-in type exec. With --follow or --wait it follows the job to its end the
 * way `systemd-run --wait --pipe` does, so that `jobctl run -f -- cmd` stands in for cmd: the
 * log (cmd's stderr) on stderr, the Result (cmd's stdout) on stdout, cmd's exit status as ours.
 * The first SIGINT or SIGTERM cancels the job and keeps following until its end, so what the
 * job did last still shows; a second one leaves at once.
 *
 * Both run and follow read Job.Follow streams. jobd cuts off a reader that falls more than
 * FOLLOW_BUFFER_MAX behind (a paused terminal, a slow pipe) with EOF and no end event. run
 * then follows again from the last event it read (history is kept, nothing is lost) as long as
 * each stream brought something; follow says so and exits 1, so a person or script can choose
 * (--after=LASTSEQ).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "cleanup.h"
#include "jobctl-bus.h"
#include "jobctl-jobs.h"
#include "jobctl-run.h"
#include "jobctl-stream.h"
#include "jobd-names.h"

#define EXEC_TYPE "exec"
#define COPY_CHUNK (64u * 1024u)

/* jobd's per-follower buffer (daemon/follow.h FOLLOW_BUFFER_MAX), for the message that names it */
#define FOLLOW_BEHIND_TEXT "1 MiB"

/* The command prefix a person retypes: the same bus as this call. */
static char *command_prefix(const Context *c) {
        if (c->args.host)
                return g_strdup_printf("%s -H %s", program_invocation_short_name, c->args.host);
        return g_strdup_printf("%s%s", program_invocation_short_name, c->args.user ? " --user" : "");
}

static int loop_write(int fd, const char *buf, size_t size) {
        while (size > 0) {
                ssize_t n = write(fd, buf, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                size -= (size_t) n;
        }
        return 0;
}

/* run: the command */

static int exec_cwd(const Context *c, char **ret) {
        g_autofree char *here = NULL, *cwd = NULL;

        if (context_is_remote(c)) {
                /* our directory means nothing there: without --cwd= jobd picks (the workspace) */
                if (c->args.cwd && !g_path_is_absolute(c->args.cwd))
                        return log_usage("--cwd=%s: give an absolute path with --host=; a relative one "
                                         "would be resolved here, not on %s.", c->args.cwd, c->args.host);
                *ret = g_strdup(c->args.cwd);
                return 0;
        }

        here = get_current_dir_name();
        if (!here && (!c->args.cwd || !g_path_is_absolute(c->args.cwd)))
                return log_error_errno(errno, "Failed to get the current directory (%m); give --cwd=DIR.");

        cwd = c->args.cwd ? g_canonicalize_filename(c->args.cwd, here) : g_steal_pointer(&here);
        if (!g_utf8_validate(cwd, -1, NULL))
                return log_usage("The working directory is not valid UTF-8, which jobd cannot take; "
                                 "give another with --cwd=.");

        *ret = g_steal_pointer(&cwd);
        return 0;
}

/* {"argv": [...], "cwd": "...", "env": {...}}; a later --setenv= of a name wins */
static int exec_parameters(const Context *c, char **command, char **ret) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        g_autoptr(JsonGenerator) g = json_generator_new();
        g_autoptr(JsonNode) root = NULL;
        g_autofree char *cwd = NULL;
        int r;

        for (char **p = command; *p; p++)
                if (!g_utf8_validate(*p, -1, NULL))
                        return log_usage("Word %td of the command is not valid UTF-8; jobd takes commands "
                                         "as JSON text.", p - command + 1);

        r = exec_cwd(c, &cwd);
        if (r != 0)
                return r;

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "argv");
        json_builder_begin_array(b);
        for (char **p = command; *p; p++)
                json_builder_add_string_value(b, *p);
        json_builder_end_array(b);
        if (cwd) {
                json_builder_set_member_name(b, "cwd");
                json_builder_add_string_value(b, cwd);
        }
        json_builder_set_member_name(b, "env");
        json_builder_begin_object(b);
        for (unsigned i = 0; c->args.setenv && i < c->args.setenv->len; i++) {
                const char *assignment = c->args.setenv->pdata[i], *eq = strchr(assignment, '=');
                g_autofree char *name = g_strndup(assignment, eq - assignment);

                json_builder_set_member_name(b, name);
                json_builder_add_string_value(b, eq + 1);
        }
        json_builder_end_object(b);
        json_builder_end_object(b);

        root = json_builder_get_root(b);
        json_generator_set_root(g, root);
        *ret = json_generator_to_data(g, NULL);
        return 0;
}

/* resources a{sv}: only what was asked for; jobd caps it by the type's limits */
static int append_resources(sd_bus_message *m, const Args *a) {
        int r;

        if (!(a->set & (OPTION(MEMORY_MAX) | OPTION(CPU_QUOTA) | OPTION(TASKS_MAX) | OPTION(NICE))))
                return 0;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", "resources");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "a{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        if (a->set & OPTION(MEMORY_MAX)) {
                r = sd_bus_message_append(m, "{sv}", "memory_max", "t", a->memory_max);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(CPU_QUOTA)) {
                r = sd_bus_message_append(m, "{sv}", "cpu_quota_percent", "u", (uint32_t) a->cpu_quota_percent);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(TASKS_MAX)) {
                r = sd_bus_message_append(m, "{sv}", "tasks_max", "t", a->tasks_max);
                if (r < 0)
                        return r;
        }
        if (a->set & OPTION(NICE)) {
                r = sd_bus_message_append(m, "{sv}", "nice", "i", (int32_t) a->nice);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* run: following to the end */

typedef struct RunWait {
        Context *context;               /* borrowed */
        sd_bus *bus;                    /* borrowed */
        sd_event *event;
        uint64_t id;
        char *path;
        bool show_log;                  /* --follow, not --wait */

        EventStream *stream;
        uint64_t last_seq;
        unsigned n_events;              /* on the current stream */

        bool ended;
        char *end_status;
        char *end_error;
        int end_exit_status;

        unsigned n_signals;
        sd_bus_slot *cancel_slot;
} RunWait;

static void run_wait_done(RunWait *w) {
        w->stream = event_stream_free(w->stream);
        w->cancel_slot = sd_bus_slot_unref(w->cancel_slot);
        if (w->bus && w->event)
                (void) sd_bus_detach_event(w->bus);
        w->event = sd_event_unref(w->event);
        g_clear_pointer(&w->path, g_free);
        g_clear_pointer(&w->end_status, g_free);
        g_clear_pointer(&w->end_error, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(RunWait, run_wait_done)

static int run_wait_open(RunWait *w);

static int run_wait_eof(RunWait *w) {
        w->stream = event_stream_free(w->stream);

        /* a cut-off reader: go on from what it read, unless this stream brought nothing */
        if (w->n_events == 0)
                return log_error_errno(EPIPE, "Failed to follow job %" PRIu64 ": the event stream ended "
                                       "before the job did. '%s status %" PRIu64 "' shows where it is.",
                                       w->id, program_invocation_short_name, w->id);
        return run_wait_open(w);
}

static int on_run_event(EventStream *s, const FollowEvent *e, const char *line, size_t size, void *userdata) {
        RunWait *w = userdata;

        if (!e)
                return run_wait_eof(w);
        if (e->seq <= w->last_seq)
                return 0;               /* already seen on a stream before this one */
        w->last_seq = e->seq;
        w->n_events++;

        switch (e->kind) {

        case FOLLOW_EVENT_LOG:
                /* the caller's own command, for the caller: as it wrote it, like systemd-run --pipe */
                if (w->show_log)
                        fprintf(stderr, "%s\n", e->data);
                return 0;

        case FOLLOW_EVENT_END:
                w->ended = true;
                w->end_status = g_strdup(e->status);
                w->end_error = g_strdup(e->error);
                w->end_exit_status = e->exit_status;
                return sd_event_exit(w->event, 0);

        default:
                return 0;
        }
}

static int run_wait_open(RunWait *w) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r, fd;

        r = job_follow(w->bus, w->id, w->last_seq, &error, &fd);
        if (r < 0) {
                log_error("Failed to follow job %" PRIu64 ": %s", w->id, bus_error_message(&error, r));
                return r;
        }
        w->n_events = 0;
        r = event_stream_new(&w->stream, w->event, fd, on_run_event, w);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the event stream: %m");
        return 0;
}

static int on_cancel_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        RunWait *w = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        w->cancel_slot = sd_bus_slot_unref(w->cancel_slot);
        /* the job may have ended meanwhile (InvalidState); its end event says how either way */
        if (e)
                log_error("Failed to cancel job %" PRIu64 ": %s", w->id,
                          bus_error_message(e, sd_bus_message_get_errno(m)));
        return 0;
}

static int on_run_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        RunWait *w = userdata;
        int r;

        if (w->n_signals++ > 0) {
                log_error("Not waiting for job %" PRIu64 " any longer; '%s status %" PRIu64 "' shows it.",
                          w->id, program_invocation_short_name, w->id);
                return sd_event_exit(w->event, 128 + (int) si->ssi_signo);
        }

        log_error("Cancelling job %" PRIu64 "%s (%s again to stop waiting).", w->id, glyph(GLYPH_ELLIPSIS),
                  si->ssi_signo == SIGINT ? "Ctrl-C" : "SIGTERM");
        r = sd_bus_call_method_async(w->bus, &w->cancel_slot, JOBD_BUS_NAME, w->path, JOBD_JOB_INTERFACE,
                                     "Cancel", on_cancel_reply, w, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to cancel job %" PRIu64 ": %m", w->id);
        return 0;
}

/* The Result as the command printed it: a JSON string's text, other JSON as it is. jobd makes
 * an empty stdout "null"; that prints nothing. */
static void print_result(const char *text) {
        g_autoptr(JsonParser) parser = json_parser_new_immutable();
        JsonNode *root;

        if (!text || !text[0] || strcmp(text, "null") == 0)
                return;
        if (json_parser_load_from_data(parser, text, -1, NULL)) {
                root = json_parser_get_root(parser);
                if (root && JSON_NODE_HOLDS_VALUE(root) && json_node_get_value_type(root) == G_TYPE_STRING) {
                        fputs(json_node_get_string(root), stdout);
                        return;
                }
        }
        fputs(text, stdout);
        if (!g_str_has_suffix(text, "\n"))
                fputc('\n', stdout);
}

/* The exit status mapping that `run --help` documents. */
static int run_outcome(RunWait *w) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autoptr(GVariant) props = NULL;
        g_autofree char *text = NULL;
        const char *result = NULL, *message = w->end_error;
        int32_t exit_status = w->end_exit_status;
        int r;

        r = bus_get_all_properties(w->bus, w->path, JOBD_JOB_INTERFACE, &error, &props);
        if (streq_ptr(w->end_status, JOBD_STATUS_SUCCEEDED)) {
                if (r < 0) {
                        log_error("Failed to get the result of job %" PRIu64 ": %s", w->id,
                                  bus_error_message(&error, r));
                        return r;
                }
                if (vardict_get_str(props, "Result", &result))
                        print_result(result);
                return EXIT_SUCCESS;
        }

        if (exit_status < 0 && r >= 0)
                (void) vardict_get_i32(props, "ExitStatus", &exit_status);
        if (streq_ptr(w->end_status, JOBD_STATUS_FAILED) && exit_status > 0 && exit_status <= 255)
                return exit_status;

        if ((!message || !message[0]) && r >= 0)
                (void) vardict_get_str(props, "Error", &message);
        text = text_escape(message && message[0] ? message : NULL);
        if (text)
                log_error("Job %" PRIu64 " %s: %s", w->id, w->end_status, text);
        else
                log_error("Job %" PRIu64 " %s.", w->id, w->end_status);
        return EXIT_FAILURE;
}

static int run_wait(Context *c, sd_bus *bus, uint64_t id, const char *path) {
        g_auto(RunWait) w = {
                .context = c,
                .bus = bus,
                .id = id,
                .path = g_strdup(path),
                .show_log = c->args.follow,
                .end_exit_status = -1,
        };
        int r;

        r = sd_event_new(&w.event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        r = sd_bus_attach_event(bus, w.event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach bus to event loop: %m");
        /* the Result is read after the loop, on the same connection */
        r = sd_bus_set_close_on_exit(bus, false);
        if (r < 0)
                return log_error_errno(r, "Failed to keep the bus open: %m");

        /* signals are ours from before the first event: a Ctrl-C now cancels this job */
        r = event_add_exit_signals(w.event, on_run_signal, &w);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");

        r = run_wait_open(&w);
        if (r < 0)
                return r;

        r = sd_event_loop(w.event);
        if (r != 0)
                return r;               /* -errno after a message, or 128+signal */
        return run_outcome(&w);
}

static int verb_run(Context *c, int argc, char *argv[]) {
        g_autofree char *parameters = NULL, *path = NULL;
        _cleanup_(closep) int input_fd = -1;
        char **command = c->command;
        sd_bus *bus;
        uint64_t id;
        int r;

        if (command && argc > 1)
                return log_usage("Give the command once, after --: %s run [OPTIONS...] -- %s ...",
                                 program_invocation_short_name, argv[1]);
        if (!command)
                command = argc > 1 ? argv + 1 : NULL;
        if (!command || !command[0][0])
                return log_usage("run needs a command: %s run [OPTIONS...] -- COMMAND [ARGUMENTS...]",
                                 program_invocation_short_name);

        r = submit_check_options(&c->args);
        if (r != 0)
                return r;
        r = exec_parameters(c, command, &parameters);
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

        r = submit_call(bus, EXEC_TYPE, parameters, &c->args, input_fd, append_resources, "run command",
                        &id, &path);
        if (r < 0)
                return r;

        if (!c->args.follow && !c->args.wait)
                return submit_print(c, id, path);
        return run_wait(c, bus, id, path);
}

/* follow */

typedef struct FollowView {
        const Context *context;         /* borrowed */
        sd_event *event;                /* borrowed */
        uint64_t id;
        bool dynamic;                   /* a terminal: a progress line redrawn in place */
        bool json;

        uint64_t last_seq;
        bool ended;

        char *status;
        bool has_progress;
        unsigned percent;
        char *message;
        bool drawn;
} FollowView;

static void follow_view_done(FollowView *v) {
        g_clear_pointer(&v->status, g_free);
        g_clear_pointer(&v->message, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(FollowView, follow_view_done)

static bool terminal_is_dynamic(void) {
        const char *term = getenv("TERM");

        return isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
}

static void follow_view_clear(FollowView *v) {
        if (!v->drawn)
                return;
        fputs("\r\x1B[K", stdout);
        v->drawn = false;
}

/* "● running ██████░░░░░░░░░░░░░░  30% resizing", cut to the terminal's width */
static void follow_view_draw(FollowView *v) {
        g_autoptr(GString) s = g_string_new(NULL);
        const char *color = job_status_color(v->status);
        unsigned cols = columns(), bar = cols >= 60 ? 20 : cols >= 40 ? 10 : 0;
        g_autofree char *status = NULL;
        size_t used;

        if (!v->dynamic || !v->has_progress || v->ended)
                return;

        status = text_escape(v->status ?: "");
        used = text_width(glyph(job_status_glyph(v->status))) + 1 + text_width(status);
        g_string_append_printf(s, "%s%s%s %s", color ? ansi(color) : "", glyph(job_status_glyph(v->status)),
                               color ? ansi(ANSI_NORMAL) : "", status);

        if (bar > 0) {
                unsigned done = v->percent * bar / 100;

                g_string_append_c(s, ' ');
                for (unsigned i = 0; i < bar; i++)
                        g_string_append(s, glyph(i < done ? GLYPH_FULL_BLOCK : GLYPH_LIGHT_SHADE));
                used += 1 + bar;
        }
        g_string_append_printf(s, " %3u%%", v->percent);
        used += 5;

        /* one column spare: writing the last one makes some terminals wrap */
        if (v->message && v->message[0] && cols > used + 2) {
                g_autofree char *escaped = text_escape(v->message);
                g_autofree char *cut = text_ellipsize(escaped, cols - used - 2);

                g_string_append_printf(s, " %s", cut);
        }

        fputs(s->str, stdout);
        v->drawn = true;
}

static void follow_view_print_status(FollowView *v, const FollowEvent *e) {
        const char *color = job_status_color(e->status);
        g_autofree char *status = text_escape(e->status), *error = NULL;

        printf("%s%s Job %" PRIu64 " %s", color ? ansi(color) : "", glyph(job_status_glyph(e->status)),
               v->id, status);
        if (e->kind == FOLLOW_EVENT_END && e->error[0]) {
                error = text_escape(e->error);
                printf(": %s", error);
        }
        printf("%s\n", color ? ansi(ANSI_NORMAL) : "");
}

/* "[seq] status running", "[seq] log …", "[seq] progress 40% resizing", "[seq] end failed: …" */
static void follow_view_print_plain(FollowView *v, const FollowEvent *e) {
        g_autofree char *a = NULL, *b = NULL;

        printf("[%" PRIu64 "] ", e->seq);
        switch (e->kind) {

        case FOLLOW_EVENT_STATUS:
                a = text_escape(e->status);
                printf("status %s\n", a);
                break;

        case FOLLOW_EVENT_LOG:
                a = text_escape(e->data);
                printf("log %s\n", a);
                break;

        case FOLLOW_EVENT_PROGRESS:
                a = text_escape(e->message);
                printf("progress %u%%%s%s\n", e->percent, a[0] ? " " : "", a);
                break;

        case FOLLOW_EVENT_END:
                a = text_escape(e->status);
                b = text_escape(e->error);
                printf("end %s%s%s\n", a, b[0] ? ": " : "", b);
                break;

        default:
                a = text_escape(e->name);
                printf("%s\n", a);
                break;
        }
}

static void follow_view_print_dynamic(FollowView *v, const FollowEvent *e) {
        g_autofree char *text = NULL;

        switch (e->kind) {

        case FOLLOW_EVENT_STATUS:
                g_free(v->status);
                v->status = g_strdup(e->status);
                follow_view_clear(v);
                follow_view_print_status(v, e);
                break;

        case FOLLOW_EVENT_LOG:
                text = text_escape(e->data);
                follow_view_clear(v);
                printf("%s\n", text);
                break;

        case FOLLOW_EVENT_PROGRESS:
                v->has_progress = true;
                v->percent = e->percent;
                g_free(v->message);
                v->message = g_strdup(e->message);
                follow_view_clear(v);
                break;

        case FOLLOW_EVENT_END:
                follow_view_clear(v);
                follow_view_print_status(v, e);
                return;

        default:
                return;
        }
        follow_view_draw(v);
}

static int follow_view_eof(FollowView *v) {
        g_autofree char *prefix = NULL;

        follow_view_clear(v);
        fflush(stdout);
        if (v->ended)
                return sd_event_exit(v->event, 0);

        prefix = command_prefix(v->context);
        log_error("Failed to follow job %" PRIu64 ": the stream ended before the job did; jobd cuts off a "
                  "reader that falls more than " FOLLOW_BEHIND_TEXT " behind. Go on from the last event "
                  "read with:\n    %s follow %" PRIu64 " --after=%" PRIu64,
                  v->id, prefix, v->id, v->last_seq);
        return sd_event_exit(v->event, EXIT_FAILURE);
}

static int on_follow_event(EventStream *s, const FollowEvent *e, const char *line, size_t size, void *userdata) {
        FollowView *v = userdata;

        if (!e)
                return follow_view_eof(v);

        v->last_seq = MAX(v->last_seq, e->seq);
        if (e->kind == FOLLOW_EVENT_END)
                v->ended = true;

        if (v->json) {
                /* the raw line, as jobd wrote it: a newer jobd's fields pass through */
                fwrite(line, 1, size, stdout);
                fputc('\n', stdout);
        } else if (v->dynamic)
                follow_view_print_dynamic(v, e);
        else
                follow_view_print_plain(v, e);

        /* a reader behind a pipe sees each event as it comes */
        if (fflush(stdout) != 0)
                return log_error_errno(errno > 0 ? errno : EIO, "Failed to write to standard output: %m");
        /* nothing follows the end; EOF would come next */
        return v->ended ? sd_event_exit(v->event, 0) : 0;
}

static int on_follow_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        FollowView *v = userdata;

        /* leave the prompt on a clean line; the job goes on */
        follow_view_clear(v);
        fflush(stdout);
        return sd_event_exit(v->event, 128 + (int) si->ssi_signo);
}

static int verb_follow(Context *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        g_auto(FollowView) v = {
                .context = c,
        };
        g_autoptr(EventStream) stream = NULL;
        uint64_t after = 0;
        sd_bus *bus;
        int r, fd;

        if (parse_job_id(argv[1], &v.id) < 0)
                return log_usage("Invalid job id '%s': a positive integer, as printed by submit.", argv[1]);
        if (c->args.after && c->args.after->len != 1)
                return log_usage("follow --after= takes one sequence number: the last event already seen.");
        if (c->args.after)
                after = g_array_index(c->args.after, uint64_t, 0);

        v.json = c->args.json != JSON_OFF;
        v.dynamic = !v.json && terminal_is_dynamic();
        v.last_seq = after;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        r = job_follow(bus, v.id, after, &error, &fd);
        if (r < 0) {
                log_error("Failed to follow job %" PRIu64 ": %s", v.id, bus_error_message(&error, r));
                return r;
        }

        r = sd_event_new(&event);
        if (r < 0) {
                (void) close(fd);
                return log_error_errno(r, "Failed to allocate event loop: %m");
        }
        v.event = event;
        r = event_stream_new(&stream, event, fd, on_follow_event, &v);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the event stream: %m");

        r = event_add_exit_signals(event, on_follow_signal, &v);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");

        return sd_event_loop(event);
}

/* output */

static bool output_name_is_valid(const char *name) {
        return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Text a terminal shows as text: UTF-8 without control characters other than tab, newline
 * and carriage return (no escape sequences, C1 controls, NULs). */
static bool text_is_plain(const char *s, size_t size) {
        for (const char *p = s; p < s + size; p = g_utf8_next_char(p)) {
                gunichar ch = g_utf8_get_char(p);

                if (g_unichar_iscntrl(ch) && ch != '\t' && ch != '\n' && ch != '\r')
                        return false;
        }
        return true;
}

/*
 * Copies from to to. With check_text, writes only text (text_is_plain()) and stops with
 * -EMEDIUMTYPE at the first byte that is not: a character cut by a read is carried over to the
 * next one. Returns 0, or -errno with *ret_write telling a write failure from a read failure.
 */
static int copy_fd(int from, int to, bool check_text, bool *ret_write) {
        char buf[COPY_CHUNK + 4];
        size_t carry = 0;

        *ret_write = false;
        for (;;) {
                size_t len, ok;
                const char *end;
                ssize_t n;
                int r;

                n = read(from, buf + carry, COPY_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return carry > 0 ? -EMEDIUMTYPE : 0;    /* ends inside a character */

                len = carry + (size_t) n;
                ok = len;
                if (check_text) {
                        if (!g_utf8_validate_len(buf, len, &end)) {
                                ok = end - buf;
                                /* only a character cut at the end of this read may be carried */
                                if (len - ok >= 4 ||
                                    g_utf8_get_char_validated(end, (gssize) (len - ok)) != (gunichar) -2)
                                        return -EMEDIUMTYPE;
                        }
                        if (!text_is_plain(buf, ok))
                                return -EMEDIUMTYPE;
                }

                r = loop_write(to, buf, ok);
                if (r < 0) {
                        *ret_write = true;
                        return r;
                }
                carry = len - ok;
                memmove(buf, buf + ok, carry);
        }
}

static int get_output(sd_bus *bus, uint64_t id, const char *name, int *ret_fd) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autofree char *path = job_object_path(id);
        int r, fd;

        r = sd_bus_call_method(bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "GetOutput", &error, &reply,
                               "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0) {
                log_error("Failed to get output %s of job %" PRIu64 ": %s", name, id,
                          bus_error_message(&error, r));
                return r;
        }

        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return log_error_errno(errno, "Failed to duplicate the output's file descriptor: %m");
        *ret_fd = fd;
        return 0;
}

static int verb_output(Context *c, int argc, char *argv[]) {
        const char *name = argv[2], *target = c->args.output;
        int r, fd = -1, out_fd = STDOUT_FILENO;
        bool write_failed;
        sd_bus *bus;
        uint64_t id;

        if (parse_job_id(argv[1], &id) < 0)
                return log_usage("Invalid job id '%s': a positive integer, as printed by submit.", argv[1]);
        if (!output_name_is_valid(name))
                return log_usage("Invalid output name '%s': a plain file name, as '%s status %s' lists.",
                                 name, program_invocation_short_name, argv[1]);

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;
        r = get_output(bus, id, name, &fd);
        if (r < 0)
                return r;

        if (target) {
                out_fd = open(target, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_NOCTTY, 0666);
                if (out_fd < 0) {
                        r = log_error_errno(errno, "Failed to open %s: %m", target);
                        (void) close(fd);
                        return r;
                }
        } else
                fflush(stdout);         /* nothing is buffered there; keep it that way in order */

        /* as coredumpctl dump: what is not text would drive the terminal, so only on request */
        r = copy_fd(fd, out_fd, !target && isatty(out_fd), &write_failed);
        (void) close(fd);
        if (target && close(out_fd) < 0 && r >= 0) {
                r = -errno;
                write_failed = true;
        }

        if (r == -EMEDIUMTYPE)
                return log_error_errno(r, "Output %s of job %" PRIu64 " is not plain text; refusing to write "
                                       "it to a terminal. Use --output=FILE or redirect standard output.",
                                       name, id);
        if (r < 0 && write_failed)
                return log_error_errno(r, "Failed to write output %s to %s: %m", name,
                                       target ?: "standard output");
        if (r < 0)
                return log_error_errno(r, "Failed to read output %s of job %" PRIu64 ": %m", name, id);
        return 0;
}

const Verb run_verbs[] = {
        {
                .name = "run",
                .max_args = UINT_MAX,
                .options = OPTION(PRIORITY) | OPTION(DELAY) | OPTION(NOT_BEFORE) | OPTION(TIMEOUT) |
                           OPTION(MAX_ATTEMPTS) | OPTION(UNIQUE_KEY) | OPTION(LOCK) | OPTION(AFTER) |
                           OPTION(EXPIRE) | OPTION(MEMORY_MAX) | OPTION(CPU_QUOTA) | OPTION(TASKS_MAX) | OPTION(NICE) |
                           OPTION(CWD) | OPTION(SETENV) | OPTION(FOLLOW) | OPTION(WAIT) | OPTION(INPUT),
                .flags = VERB_COMMAND,
                .run = verb_run,
                .synopsis = "run -- CMD [ARGS...]",
                .summary = "Run a command as a job, in a scope with limits",
                .description =
                "Submits a job of the built-in type exec: CMD runs as you, in a transient scope\n"
                "with the limits given, with its own /tmp (the job's workspace), in the current\n"
                "directory unless --cwd= says otherwise, with only the environment --setenv= sets\n"
                "(and JOBD_* from jobd). Its stderr is the job's log, its stdout the Result.\n"
                "A job sees its workspace on /tmp: a directory under /tmp is not the one you see.\n"
                "\n"
                "Without --follow or --wait, prints the new job's id, as submit does.\n"
                "With --follow, streams the log to standard error as it comes, and at the end\n"
                "prints the Result to standard output (a JSON string's text, other JSON as it is),\n"
                "so that 'jobctl run -f -- CMD' behaves like CMD. --wait does the same without\n"
                "the log. Ctrl-C cancels the job and waits for its end; a second one stops waiting.\n"
                "\n"
                "Exit status with --follow or --wait:\n"
                "  0         the job succeeded\n"
                "  1-255     it failed with that exit status\n"
                "  1         it failed without one (timeout, out of memory, killed, expired) or\n"
                "            was cancelled: the error is printed on standard error\n"
                "  128+SIG   a second SIGINT or SIGTERM stopped waiting (130 for Ctrl-C)\n",
                .help =
                "     --memory-max=SIZE       At most this much memory (512M, 2G)\n"
                "     --cpu-quota=PERCENT%    At most this share of one CPU (50%, 200% for two)\n"
                "     --tasks-max=N           At most N processes and threads\n"
                "     --nice=N                Nice level, from -20 to 19\n"
                "     --timeout=TIMESPAN      Stop the command after this long (30s, 5min, 1h)\n"
                "     --priority=N            From -1000 to 1000; higher runs first\n"
                "     --cwd=DIR               Run in DIR (default: the current directory)\n"
                "     --setenv=NAME=VALUE     Set a variable for the command; NAME alone passes\n"
                "                             this shell's value; may be repeated\n"
                "     --input=FILE            Data for the job (a regular file, or - for standard\n"
                "                             input); the command reads it as standard input when\n"
                "                             the exec type has Stdin=input\n"
                "  -f --follow                Stream the log, print the Result, exit as the job\n"
                "     --wait                  Wait for the end without the log, then as --follow\n"
                "     --delay=, --not-before=, --max-attempts=, --unique-key=, --lock=, --after=,\n"
                "     --expire=               As for submit\n"
                "\n"
                "Limits are capped by the exec type's ('jobctl types').\n",
        },
        {
                .name = "follow",
                .min_args = 1,
                .max_args = 1,
                .options = OPTION(AFTER),
                .run = verb_follow,
                .synopsis = "follow ID",
                .summary = "Show a job's log and progress as they come, to its end",
                .description =
                "History first, then live. On a terminal, log lines scroll above a progress line\n"
                "redrawn in place; otherwise one line per event: \"[SEQ] status running\",\n"
                "\"[SEQ] log TEXT\", \"[SEQ] progress 40% MESSAGE\", \"[SEQ] end failed: ERROR\".\n"
                "With --json, the event lines as jobd sends them (JSON, one a line).\n"
                "\n"
                "Exits 0 after the job's end, 1 when the stream ended before it: jobd cuts off a\n"
                "reader that falls too far behind; --after= goes on from the last event read.\n",
                .help =
                "     --after=SEQ             Only events after sequence number SEQ\n",
        },
        {
                .name = "output",
                .min_args = 2,
                .max_args = 2,
                .options = OPTION(OUTPUT),
                .run = verb_output,
                .synopsis = "output ID NAME",
                .summary = "Write an output file a job left",
                .description =
                "Copies the output byte for byte to standard output or --output=FILE. Refuses to\n"
                "write anything but plain text to a terminal; redirect or use --output=.\n",
                .help =
                "  -o --output=FILE           Write to FILE (created or truncated)\n",
        },
        {}
};
