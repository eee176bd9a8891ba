/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * jobctl: main(), the command line and the bus connection. The verbs live in one file per group
 * (jobctl-jobs.c, jobctl-manager.c, …), each exporting a Verb table listed in verb_groups[].
 *
 * Options may come before and after the verb, as with systemctl. They are parsed in argument
 * order (getopt "+", restarted after every positional argument) rather than by letting getopt
 * permute argv, because that keeps where "--" stood: `jobctl worker A B -- handler -x` must
 * know which words are types and which are the handler's command.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "jobctl.h"
#include "jobctl-bus.h"
#include "jobctl-jobs.h"
#include "jobctl-manager.h"
#include "jobctl-run.h"
#include "jobctl-stats.h"
#include "jobctl-time.h"
#include "jobctl-worker.h"
#include "jobd-names.h"
#include "parse-util.h"

static const struct {
        const char *title;
        const Verb *verbs;
} verb_groups[] = {
        { "Job Commands",             jobs_verbs    },
        { "Run and Follow Commands",  run_verbs     },
        { "Worker Commands",          worker_verbs  },
        { "Monitoring Commands",      stats_verbs   },
        { "Manager Commands",         manager_verbs },
};

#define DEFAULT_VERB "list"

enum {
        ARG_VERSION = 0x100,
        ARG_USER,
        ARG_SYSTEM,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_NO_PAGER,
        ARG_NO_ASK_PASSWORD,
        /* verb options: ARG_VERB_OPTION + VerbOption */
        ARG_VERB_OPTION = 0x200,
};

#define ARG(x) (ARG_VERB_OPTION + VERB_OPTION_##x)

static const struct option options[] = {
        { "help",            no_argument,       NULL, 'h'                 },
        { "version",         no_argument,       NULL, ARG_VERSION         },
        { "user",            no_argument,       NULL, ARG_USER            },
        { "system",          no_argument,       NULL, ARG_SYSTEM          },
        { "host",            required_argument, NULL, 'H'                 },
        { "json",            optional_argument, NULL, ARG_JSON            },
        { "no-legend",       no_argument,       NULL, ARG_NO_LEGEND       },
        { "no-pager",        no_argument,       NULL, ARG_NO_PAGER        },
        { "no-ask-password", no_argument,       NULL, ARG_NO_ASK_PASSWORD },
        { "priority",        required_argument, NULL, ARG(PRIORITY)       },
        { "delay",           required_argument, NULL, ARG(DELAY)          },
        { "not-before",      required_argument, NULL, ARG(NOT_BEFORE)     },
        { "timeout",         required_argument, NULL, ARG(TIMEOUT)        },
        { "max-attempts",    required_argument, NULL, ARG(MAX_ATTEMPTS)   },
        { "unique-key",      required_argument, NULL, ARG(UNIQUE_KEY)     },
        { "lock",            required_argument, NULL, ARG(LOCK)           },
        { "after",           required_argument, NULL, ARG(AFTER)          },
        { "expire",          required_argument, NULL, ARG(EXPIRE)         },
        { "status",          required_argument, NULL, ARG(STATUS)         },
        { "type",            required_argument, NULL, ARG(TYPE)           },
        { "owner",           required_argument, NULL, ARG(OWNER)          },
        { "limit",           required_argument, NULL, ARG(LIMIT)          },
        { "memory-max",      required_argument, NULL, ARG(MEMORY_MAX)     },
        { "cpu-quota",       required_argument, NULL, ARG(CPU_QUOTA)      },
        { "tasks-max",       required_argument, NULL, ARG(TASKS_MAX)      },
        { "nice",            required_argument, NULL, ARG(NICE)           },
        { "cwd",             required_argument, NULL, ARG(CWD)            },
        { "setenv",          required_argument, NULL, ARG(SETENV)         },
        { "follow",          no_argument,       NULL, ARG(FOLLOW)         },
        /* run: --wait alone; worker: --wait=TIMESPAN (VERB_OPTION_CLAIM_WAIT) */
        { "wait",            optional_argument, NULL, ARG(WAIT)           },
        { "output",          required_argument, NULL, ARG(OUTPUT)         },
        { "input",           required_argument, NULL, ARG(INPUT)          },
        { "concurrency",     required_argument, NULL, ARG(CONCURRENCY)    },
        { "max-jobs",        required_argument, NULL, ARG(MAX_JOBS)       },
        { "names",           no_argument,       NULL, ARG(NAMES)          },
        { "prometheus",      no_argument,       NULL, ARG(PROMETHEUS)     },
        { "once",            no_argument,       NULL, ARG(ONCE)           },
        {}
};

static const char *const known_statuses[] = {
        JOBD_STATUS_PENDING, JOBD_STATUS_SCHEDULED, JOBD_STATUS_BLOCKED, JOBD_STATUS_RUNNING,
        JOBD_STATUS_SUCCEEDED, JOBD_STATUS_FAILED, JOBD_STATUS_CANCELLED,
};

static const char *option_name(VerbOption o) {
        /* the one option whose meaning depends on whether it has a value */
        if (o == VERB_OPTION_CLAIM_WAIT)
                return "wait=TIMESPAN";
        for (const struct option *p = options; p->name; p++)
                if (p->val == ARG_VERB_OPTION + (int) o)
                        return p->name;
        g_assert_not_reached();
}

static const Verb *find_verb(const char *name) {
        for (size_t i = 0; i < G_N_ELEMENTS(verb_groups); i++)
                for (const Verb *v = verb_groups[i].verbs; v->name; v++)
                        if (strcmp(v->name, name) == 0)
                                return v;
        return NULL;
}

static void usage_va(const char *format, va_list ap) __attribute__((format(printf, 1, 0)));
static void usage_va(const char *format, va_list ap) {
        fflush(stdout);
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
}

/* While parsing: the caller returns -EINVAL up to main(). */
static int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        usage_va(format, ap);
        va_end(ap);
        return -EINVAL;
}

int log_usage(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        usage_va(format, ap);
        va_end(ap);
        return EXIT_USAGE;
}

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Submit, inspect and control the jobs of jobd.\n",
               program_invocation_short_name);

        for (size_t i = 0; i < G_N_ELEMENTS(verb_groups); i++) {
                printf("\n%s%s:%s\n", ansi(ANSI_HIGHLIGHT), verb_groups[i].title, ansi(ANSI_NORMAL));
                for (const Verb *v = verb_groups[i].verbs; v->name; v++)
                        if (strlen(v->synopsis) > 26)   /* the summary goes below, aligned */
                                printf("  %s\n  %-26s %s\n", v->synopsis, "", v->summary);
                        else
                                printf("  %-26s %s\n", v->synopsis, v->summary);
        }

        printf("\n%sOptions:%s\n"
               "  -h --help                  Show this help, or a command's with COMMAND --help\n"
               "     --version               Show package version\n"
               "     --system                Connect to the system service (default)\n"
               "     --user                  Connect to the user's service on the session bus\n"
               "  -H --host=[USER@]HOST[:PORT]\n"
               "                             Operate on a remote host, over SSH\n"
               "     --json[=pretty|short|off]\n"
               "                             Print JSON (pretty on a terminal, else short)\n"
               "     --no-legend             Print no column headers and footers\n"
               "     --no-pager              Accepted as systemctl does; jobctl never pages\n"
               "     --no-ask-password       Do not ask for authentication (polkit)\n"
               "\nWithout COMMAND, '%s' runs.\n"
               "See '%s COMMAND --help' for the options of a command, and jobctl(1).\n",
               ansi(ANSI_HIGHLIGHT), ansi(ANSI_NORMAL), DEFAULT_VERB, program_invocation_short_name);
}

static void help_verb(const Verb *v) {
        printf("%s [OPTIONS...] %s\n\n%s.\n", program_invocation_short_name, v->synopsis, v->summary);
        if (v->description)
                printf("\n%s", v->description);
        if (v->help)
                printf("\n%sOptions:%s\n%s", ansi(ANSI_HIGHLIGHT), ansi(ANSI_NORMAL), v->help);
        printf("\nSee '%s --help' for the global options, and jobctl(1).\n", program_invocation_short_name);
}

/* "a,b" appended to strv, each piece non-empty */
static int strv_add_list(GPtrArray **strv, const char *option, const char *value) {
        g_auto(GStrv) parts = g_strsplit(value, ",", -1);

        if (!value[0])
                return usage_error("--%s= needs a value.", option);
        if (!*strv)
                *strv = g_ptr_array_new_with_free_func(g_free);
        for (char **p = parts; *p; p++) {
                if (!**p)
                        return usage_error("Empty item in --%s=%s.", option, value);
                g_ptr_array_add(*strv, g_strdup(*p));
        }
        return 0;
}

static int parse_timespan_option(const char *option, const char *value, uint64_t *ret) {
        if (parse_timespan_usec(value, ret) < 0)
                return usage_error("Invalid time span --%s=%s: use e.g. 30s, 5min, 1h 30min.",
                                   option, value);
        return 0;
}

/* NAME=VALUE, or NAME to pass on jobctl's own value, as systemd-run --setenv= takes it. The
 * name rule is jobd's (params.c), checked here so a typo costs no round trip. */
static int setenv_add(Args *a, const char *value) {
        const char *eq = strchr(value, '=');
        g_autofree char *name = eq ? g_strndup(value, eq - value) : g_strdup(value);
        const char *v = eq ? eq + 1 : g_getenv(name);

        if (!name[0] || g_ascii_isdigit(name[0]))
                return usage_error("Invalid --setenv=%s: NAME=VALUE, NAME of letters, digits and _, "
                                   "not starting with a digit.", value);
        for (const char *p = name; *p; p++)
                if (!g_ascii_isalnum(*p) && *p != '_')
                        return usage_error("Invalid --setenv=%s: NAME=VALUE, NAME of letters, digits "
                                           "and _, not starting with a digit.", value);
        if (!v)
                return usage_error("--setenv=%s: %s is not set here; give NAME=VALUE.", value, name);
        /* the parameters are JSON text on the bus */
        if (!g_utf8_validate(v, -1, NULL))
                return usage_error("--setenv=%s: the value is not valid UTF-8.", name);

        if (!a->setenv)
                a->setenv = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(a->setenv, g_strconcat(name, "=", v, NULL));
        return 0;
}

static void print_statuses(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(known_statuses); i++)
                puts(known_statuses[i]);
}

/* One verb option; 0 to go on, 1 to exit successfully, -EINVAL after a usage error. */
static int parse_verb_option(Args *a, VerbOption o, const char *value) {
        const char *name = option_name(o);
        uint64_t id;

        a->set |= UINT64_C(1) << o;

        switch (o) {

        case VERB_OPTION_PRIORITY:
                if (parse_int(value, &a->priority) < 0 || a->priority < -1000 || a->priority > 1000)
                        return usage_error("Invalid --priority=%s: an integer from -1000 to 1000.", value);
                return 0;

        case VERB_OPTION_DELAY:
                return parse_timespan_option(name, value, &a->delay_usec);

        case VERB_OPTION_NOT_BEFORE:
                if (parse_timestamp(value, now_realtime_usec(), &a->not_before_usec) < 0)
                        return usage_error("Invalid --not-before=%s: use e.g. \"2024-05-07 14:00\", "
                                           "\"14:00\", \"tomorrow\", \"+2h\" or \"@1715090400\".", value);
                return 0;

        case VERB_OPTION_TIMEOUT:
                return parse_timespan_option(name, value, &a->timeout_usec);

        case VERB_OPTION_EXPIRE:
                if (parse_timespan_option(name, value, &a->expire_usec) < 0)
                        return -EINVAL;
                if (a->expire_usec == 0 || a->expire_usec == UINT64_MAX)
                        return usage_error("Invalid --expire=%s: a time span such as 30s or 2h; leave it "
                                           "out for a job that never expires.", value);
                return 0;

        case VERB_OPTION_MAX_ATTEMPTS:
                if (parse_unsigned(value, &a->max_attempts) < 0 || a->max_attempts == 0)
                        return usage_error("Invalid --max-attempts=%s: a positive integer.", value);
                return 0;

        case VERB_OPTION_UNIQUE_KEY:
        case VERB_OPTION_LOCK:
                if (!value[0])
                        return usage_error("--%s= needs a non-empty key.", name);
                *(o == VERB_OPTION_LOCK ? &a->lock : &a->unique_key) = value;
                return 0;

        case VERB_OPTION_AFTER: {
                g_auto(GStrv) parts = g_strsplit(value, ",", -1);

                if (!a->after)
                        a->after = g_array_new(FALSE, FALSE, sizeof(uint64_t));
                for (char **p = parts; *p; p++) {
                        /* 0 is no job id, but a fine place to page or follow from; submit refuses it */
                        if (strcmp(*p, "0") == 0)
                                id = 0;
                        else if (parse_job_id(*p, &id) < 0)
                                return usage_error("Invalid --after=%s: \"%s\" is not a job id (or, for "
                                                   "follow, a sequence number).", value, *p);
                        g_array_append_val(a->after, id);
                }
                return 0;
        }

        case VERB_OPTION_STATUS:
                if (strcmp(value, "help") == 0) {
                        print_statuses();
                        return 1;
                }
                return strv_add_list(&a->status, name, value);

        case VERB_OPTION_TYPE:
                return strv_add_list(&a->type, name, value);

        case VERB_OPTION_OWNER:
                if (!value[0])
                        return usage_error("--owner= needs a user name or uid.");
                a->owner = value;
                return 0;

        case VERB_OPTION_LIMIT:
                if (parse_unsigned(value, &a->limit) < 0 || a->limit == 0)
                        return usage_error("Invalid --limit=%s: a positive integer.", value);
                return 0;

        case VERB_OPTION_MEMORY_MAX:
                if (parse_size_bytes(value, &a->memory_max) < 0 || a->memory_max == 0)
                        return usage_error("Invalid --memory-max=%s: a size such as 512M or 2G, "
                                           "or infinity.", value);
                return 0;

        case VERB_OPTION_CPU_QUOTA:
                if (parse_percent(value, &a->cpu_quota_percent) < 0 || a->cpu_quota_percent == 0)
                        return usage_error("Invalid --cpu-quota=%s: a positive percentage of one CPU, "
                                           "such as 50%% or 200%%.", value);
                return 0;

        case VERB_OPTION_TASKS_MAX: {
                guint64 n;

                if (strcmp(value, "infinity") == 0)
                        a->tasks_max = UINT64_MAX;
                else if (g_ascii_isdigit(value[0]) &&
                         g_ascii_string_to_unsigned(value, 10, 1, UINT64_MAX - 1, &n, NULL))
                        a->tasks_max = n;
                else
                        return usage_error("Invalid --tasks-max=%s: a positive integer or infinity.", value);
                return 0;
        }

        case VERB_OPTION_NICE:
                if (parse_int(value, &a->nice) < 0 || a->nice < -20 || a->nice > 19)
                        return usage_error("Invalid --nice=%s: an integer from -20 to 19.", value);
                return 0;

        case VERB_OPTION_CWD:
                if (!value[0])
                        return usage_error("--cwd= needs a directory.");
                a->cwd = value;
                return 0;

        case VERB_OPTION_SETENV:
                return setenv_add(a, value);

        case VERB_OPTION_FOLLOW:
                a->follow = true;
                return 0;

        case VERB_OPTION_WAIT:
                a->wait = true;
                return 0;

        case VERB_OPTION_OUTPUT:
                if (!value[0])
                        return usage_error("--output= needs a file name.");
                a->output = value;
                return 0;

        case VERB_OPTION_INPUT:
                if (!value[0])
                        return usage_error("--input= needs a file name, or - for standard input.");
                a->input = value;
                return 0;

        case VERB_OPTION_CONCURRENCY:
                if (parse_unsigned(value, &a->concurrency) < 0 || a->concurrency == 0 ||
                    a->concurrency > WORKER_CONCURRENCY_MAX)
                        return usage_error("Invalid --concurrency=%s: an integer from 1 to %u.", value,
                                           WORKER_CONCURRENCY_MAX);
                return 0;

        case VERB_OPTION_CLAIM_WAIT:
                if (parse_timespan_usec(value, &a->claim_wait_usec) < 0 ||
                    a->claim_wait_usec < WORKER_CLAIM_WAIT_MIN_USEC ||
                    a->claim_wait_usec > WORKER_CLAIM_WAIT_MAX_USEC)
                        return usage_error("Invalid --wait=%s: a time span from 1s to 1h, such as 30s or 5min.",
                                           value);
                return 0;

        case VERB_OPTION_MAX_JOBS:
                if (parse_unsigned(value, &a->max_jobs) < 0 || a->max_jobs == 0)
                        return usage_error("Invalid --max-jobs=%s: a positive integer.", value);
                return 0;

        case VERB_OPTION_NAMES:
                a->names = true;
                return 0;

        case VERB_OPTION_PROMETHEUS:
                a->prometheus = true;
                return 0;

        case VERB_OPTION_ONCE:
                a->once = true;
                return 0;

        case _VERB_OPTION_MAX:
                break;
        }

        g_assert_not_reached();
}

static int parse_json_mode(const char *value, JsonMode *ret) {
        if (!value)
                *ret = isatty(STDOUT_FILENO) ? JSON_PRETTY : JSON_SHORT;
        else if (strcmp(value, "pretty") == 0)
                *ret = JSON_PRETTY;
        else if (strcmp(value, "short") == 0)
                *ret = JSON_SHORT;
        else if (strcmp(value, "off") == 0)
                *ret = JSON_OFF;
        else
                return usage_error("Unknown --json=%s: use pretty, short or off.", value);
        return 0;
}

/*
 * Fills a, the positional arguments (verb first) and, when "--" was given, the words after it.
 * Returns 1 to go on, 0 to exit successfully (--version, --status=help), -EINVAL after a usage
 * error. *ret_help is set for -h; what it shows depends on the verb, known only at the end.
 */
static int parse_argv(int argc, char *argv[], Args *a, GPtrArray *positional, char ***ret_command,
                      bool *ret_help) {
        int c, r;

        optind = 0;             /* glibc: full re-initialisation, takes the "+" below */
        while (optind < argc) {
                int before = optind == 0 ? 1 : optind;

                c = getopt_long(argc, argv, "+hH:fo:", options, NULL);
                if (c < 0) {
                        if (optind >= argc)
                                break;
                        if (optind == before + 1 && strcmp(argv[before], "--") == 0) {
                                /* before the verb "--" only ends the options: `jobctl -- list` */
                                if (positional->len == 0)
                                        for (int i = optind; i < argc; i++)
                                                g_ptr_array_add(positional, argv[i]);
                                else
                                        *ret_command = argv + optind;
                                break;
                        }
                        /* a positional argument: keep it in order and read on behind it */
                        g_ptr_array_add(positional, argv[optind]);
                        optind++;
                        continue;
                }

                switch (c) {

                case 'h':
                        *ret_help = true;
                        break;

                case ARG_VERSION:
                        printf("jobd %s\n", JOBD_VERSION);
                        return 0;

                case ARG_USER:
                        a->user = true;
                        break;

                case ARG_SYSTEM:
                        a->user = false;
                        break;

                case 'H':
                        if (!optarg[0])
                                return usage_error("--host= needs [USER@]HOST[:PORT].");
                        a->host = optarg;
                        break;

                case ARG_JSON:
                        r = parse_json_mode(optarg, &a->json);
                        if (r < 0)
                                return r;
                        break;

                case ARG_NO_LEGEND:
                        a->legend = false;
                        break;

                case ARG_NO_PAGER:
                        break;          /* jobctl never pages; accepted for systemctl muscle memory */

                case ARG_NO_ASK_PASSWORD:
                        a->ask_password = false;
                        break;

                case 'f':
                        r = parse_verb_option(a, VERB_OPTION_FOLLOW, NULL);
                        if (r != 0)
                                return r < 0 ? r : 0;
                        break;

                case 'o':
                        r = parse_verb_option(a, VERB_OPTION_OUTPUT, optarg);
                        if (r != 0)
                                return r < 0 ? r : 0;
                        break;

                case ARG(WAIT):
                        r = parse_verb_option(a, optarg ? VERB_OPTION_CLAIM_WAIT : VERB_OPTION_WAIT, optarg);
                        if (r != 0)
                                return r < 0 ? r : 0;
                        break;

                case '?':
                        return -EINVAL;         /* getopt said what was wrong */

                default:
                        if (c < ARG_VERB_OPTION || c >= ARG_VERB_OPTION + _VERB_OPTION_MAX)
                                g_assert_not_reached();
                        r = parse_verb_option(a, (VerbOption) (c - ARG_VERB_OPTION), optarg);
                        if (r != 0)
                                return r < 0 ? r : 0;
                }
        }

        if (*ret_command && !**ret_command)
                *ret_command = NULL;
        if (a->user && a->host)
                return usage_error("--user and --host= cannot be combined: the remote transport "
                                   "reaches the system bus only.");
        return 1;
}

static int verb_check_options(const Verb *v, const Args *a) {
        uint64_t extra = a->set & ~v->options;

        /* getopt leaves "--wait 30s" as --wait and a word; say how worker wants it */
        if ((extra & OPTION(WAIT)) && (v->options & OPTION(CLAIM_WAIT)))
                return usage_error("'%s' takes --wait=TIMESPAN, with '=': --wait=30s.", v->name);
        if ((extra & OPTION(CLAIM_WAIT)) && (v->options & OPTION(WAIT)))
                return usage_error("'%s' takes --wait without a value.", v->name);

        for (unsigned o = 0; o < _VERB_OPTION_MAX; o++)
                if (extra & (UINT64_C(1) << o))
                        return usage_error("Option --%s does not apply to '%s'.",
                                           option_name((VerbOption) o), v->name);
        return 0;
}

int context_open_bus(const Context *c, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        if (c->args.host)
                r = sd_bus_open_system_remote(&bus, c->args.host);
        else if (c->args.user)
                r = sd_bus_open_user(&bus);
        else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to %s bus: %m",
                                       c->args.host ? "remote" : c->args.user ? "user" : "system");

        /* as systemctl: polkit may ask the person at the terminal, unless told not to */
        (void) sd_bus_set_allow_interactive_authorization(bus, c->args.ask_password);
        *ret = bus;
        return 0;
}

int context_acquire_bus(Context *c, sd_bus **ret) {
        int r;

        if (!c->bus) {
                r = context_open_bus(c, &c->bus);
                if (r < 0)
                        return r;
        }

        *ret = c->bus;
        return 0;
}

static void context_done(Context *c) {
        if (c->args.after)
                g_array_unref(c->args.after);
        if (c->args.status)
                g_ptr_array_unref(c->args.status);
        if (c->args.type)
                g_ptr_array_unref(c->args.type);
        if (c->args.setenv)
                g_ptr_array_unref(c->args.setenv);
        c->bus = sd_bus_flush_close_unref(c->bus);
}

static int run_verb(Context *c, const Verb *v, GPtrArray *positional, bool show_help) {
        unsigned n_args = positional->len - 1;
        int r;

        if (show_help) {
                help_verb(v);
                return 0;
        }

        r = verb_check_options(v, &c->args);
        if (r < 0)
                return EXIT_USAGE;

        /* Verbs that do not run a command take "--" in its usual sense: the end of options,
         * so that `jobctl submit T -- -1` submits the JSON -1. */
        if (c->command && !(v->flags & VERB_COMMAND)) {
                for (char **p = c->command; *p; p++)
                        g_ptr_array_add(positional, *p);
                n_args = positional->len - 1;
                c->command = NULL;
        }

        if (n_args < v->min_args || n_args > v->max_args)
                return log_usage("%s arguments for '%s'. Usage: %s %s",
                                 n_args < v->min_args ? "Too few" : "Too many", v->name,
                                 program_invocation_short_name, v->synopsis);

        g_ptr_array_add(positional, NULL);
        return v->run(c, (int) n_args + 1, (char **) positional->pdata);
}

int main(int argc, char *argv[]) {
        Context c = {
                .args = {
                        .legend = true,
                        .ask_password = true,
                },
        };
        g_autoptr(GPtrArray) positional = g_ptr_array_new();
        bool show_help = false;
        const Verb *v;
        int r;

        /* Only LC_CTYPE: glyphs follow the charset, but numbers and weekdays stay as in C. */
        setlocale(LC_CTYPE, "");

        r = parse_argv(argc, argv, &c.args, positional, &c.command, &show_help);
        if (r <= 0) {
                context_done(&c);
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;
        }

        if (positional->len == 0) {
                if (show_help) {
                        help();
                        context_done(&c);
                        return EXIT_SUCCESS;
                }
                g_ptr_array_add(positional, (char *) DEFAULT_VERB);
        }

        v = find_verb(positional->pdata[0]);
        if (!v) {
                usage_error("Unknown command '%s'. See '%s --help'.", (char *) positional->pdata[0],
                            program_invocation_short_name);
                context_done(&c);
                return EXIT_USAGE;
        }

        r = run_verb(&c, v, positional, show_help);
        context_done(&c);

        /* a verb that printed into a full disk or a closed pipe did not succeed */
        if (fflush(stdout) != 0 || ferror(stdout)) {
                log_error_errno(errno > 0 ? errno : EIO, "Failed to write to standard output: %m");
                return EXIT_FAILURE;
        }
        return r < 0 ? EXIT_FAILURE : r;
}
