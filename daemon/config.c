/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns jobd.conf: its defaults and the grammar of [Manager]. Same rules as type files (see
 * jobtype.c): comments on their own line, unknown sections and keys, a key set twice and bad values
 * are errors naming PATH:LINE, and an empty assignment restores the default. A file is applied as a
 * whole or not at all, so a reload with a typo keeps the running settings.
 *
 * IdleExitSec=0 and IdleExitSec=infinity both mean "never" and are stored as 0; other values are at
 * least 1s (see jobd.service's start limit). Retention=infinity
 * keeps finished jobs forever (UINT64_MAX). MaxParameterBytes is capped at half a journal record:
 * parameters travel inside one. MaxInputBytes and OutputQuotaBytes accept infinity (UINT64_MAX) and
 * 0 (no input, no outputs); MaxRunning and MaxPendingPerUser must be at least 1.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#include "parse-util.h"
#include "record.h"

#define CONFIG_FILE_SIZE_MAX (64u * 1024u)
#define PARAMETER_BYTES_MAX ((uint64_t) RECORD_PAYLOAD_MAX / 2)
#define IDLE_EXIT_MIN_USEC (UINT64_C(1) * 1000000)

void config_init(Config *c) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        *c = (Config) {
                .max_running = n > 0 ? (unsigned) n : 1,
                .idle_exit_usec = UINT64_C(60) * 1000000,
                .max_parameter_bytes = UINT64_C(1) << 20,
                .max_input_bytes = UINT64_C(64) << 20,
                .max_pending_per_user = 10000,
                .output_quota_bytes = UINT64_C(256) << 20,
                .retention_usec = UINT64_C(7) * 24 * 3600 * 1000000,
        };
}

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

static gboolean parse_at_least_one(const char *value, void *field, GError **error) {
        unsigned u;
        int r;

        r = parse_unsigned(value, &u);
        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 8");
        if (r < 0)
                return value_error(error, "is not a number; use e.g. 8");
        if (u == 0)
                return value_error(error, "must be at least 1");
        *(unsigned *) field = u;
        return TRUE;
}

static gboolean parse_timespan(const char *value, uint64_t *ret, GError **error) {
        int r = parse_timespan_usec(value, ret);

        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 30s, 5min or 7d");
        if (r < 0)
                return value_error(error, "is not a time span; use e.g. 30s, 5min or 7d");
        return TRUE;
}

static gboolean parse_idle_exit(const char *value, void *field, GError **error) {
        uint64_t u;

        if (!parse_timespan(value, &u, error))
                return FALSE;
        /* every idle exit is followed by a start; jobd.service allows 20 starts in 10 s, which a
         * period of 1 s (at most 10 starts) stays below, while a crash loop still hits it */
        if (u > 0 && u < IDLE_EXIT_MIN_USEC)
                return value_error(error, "is below 1s; use 1s or more, or 0 for never");
        *(uint64_t *) field = u == UINT64_MAX ? 0 : u;      /* both mean: never */
        return TRUE;
}

static gboolean parse_retention(const char *value, void *field, GError **error) {
        return parse_timespan(value, field, error);
}

static gboolean parse_size(const char *value, uint64_t *ret, GError **error) {
        int r = parse_size_bytes(value, ret);

        if (r == -ERANGE)
                return value_error(error, "is out of range; use e.g. 1M or 64M");
        if (r < 0)
                return value_error(error, "is not a size; use e.g. 1M or 64M (K, M, G, T: powers of 1024)");
        return TRUE;
}

static gboolean parse_parameter_bytes(const char *value, void *field, GError **error) {
        uint64_t u;

        if (!parse_size(value, &u, error))
                return FALSE;
        if (u == 0)
                return value_error(error, "would refuse every job; use e.g. 1M");
        if (u > PARAMETER_BYTES_MAX)
                return value_error(error, "is above %" G_GUINT64_FORMAT "M, the most a journal record "
                                   "can carry; pass bulk data as input instead", PARAMETER_BYTES_MAX >> 20);
        *(uint64_t *) field = u;
        return TRUE;
}

static gboolean parse_bytes(const char *value, void *field, GError **error) {
        return parse_size(value, field, error);
}

typedef struct ConfigKey {
        const char *key;
        ValueParser parse;
        size_t offset, size;
} ConfigKey;

#define FIELD(f) offsetof(Config, f), sizeof(((Config *) NULL)->f)

static const ConfigKey config_keys[] = {
        { "MaxRunning",        parse_at_least_one,    FIELD(max_running) },
        { "IdleExitSec",       parse_idle_exit,       FIELD(idle_exit_usec) },
        { "MaxParameterBytes", parse_parameter_bytes, FIELD(max_parameter_bytes) },
        { "MaxInputBytes",     parse_bytes,           FIELD(max_input_bytes) },
        { "MaxPendingPerUser", parse_at_least_one,    FIELD(max_pending_per_user) },
        { "OutputQuotaBytes",  parse_bytes,           FIELD(output_quota_bytes) },
        { "Retention",         parse_retention,       FIELD(retention_usec) },
};

typedef struct Scan {
        const char *path;
        unsigned lines[G_N_ELEMENTS(config_keys)];      /* where each key is set; 0: not set */
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

static int on_config_line(const char *section, const char *key, unsigned line, void *userdata) {
        Scan *s = userdata;

        if (!key) {
                if (!g_str_equal(section, "Manager"))
                        return scan_fail(s, line, "unknown section [%s]; jobd.conf has only [Manager]",
                                         section);
                return 0;
        }
        if (!section)
                return scan_fail(s, line, "%s= comes before any section; put it under [Manager]", key);

        for (size_t i = 0; i < G_N_ELEMENTS(config_keys); i++) {
                if (strcmp(config_keys[i].key, key) != 0)
                        continue;
                if (s->lines[i] > 0)
                        return scan_fail(s, line, "%s= is already set on line %u; set it once",
                                         key, s->lines[i]);
                s->lines[i] = line;
                return 0;
        }

        for (size_t i = 0; i < G_N_ELEMENTS(config_keys); i++)
                if (g_ascii_strcasecmp(config_keys[i].key, key) == 0)
                        return scan_fail(s, line, "unknown key %s= in [Manager] (did you mean %s=?)",
                                         key, config_keys[i].key);
        return scan_fail(s, line, "unknown key %s= in [Manager]", key);
}

static gboolean scan_config_file(Scan *s, const char *data, size_t size, GError **error) {
        unsigned line = 0;
        int r;

        r = keyfile_scan(data, size, on_config_line, s, &line);
        if (r >= 0)
                return TRUE;

        if (r == -EBADMSG)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s:%u: expected [Section], Key=value or a # comment on a line of its own",
                            s->path, line);
        else if (r == -EILSEQ)
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE,
                            "%s:%u: this line is not valid UTF-8 or holds a control character",
                            s->path, line);
        else if (s->error)
                g_propagate_error(error, g_steal_pointer(&s->error));
        else
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:1: %s",
                            s->path, g_strerror(-r));
        g_clear_error(&s->error);
        return FALSE;
}

static char *shorten(const char *s) {
        if (g_utf8_strlen(s, -1) <= 64)
                return g_strdup(s);
        g_autofree char *head = g_utf8_substring(s, 0, 60);
        return g_strconcat(head, "...", NULL);
}

static gboolean apply_key(Config *c, GKeyFile *kf, const ConfigKey *k, const char *path, unsigned line,
                          GError **error) {
        g_autoptr(GError) e = NULL;
        g_autofree char *value = NULL, *shown = NULL;

        value = g_key_file_get_value(kf, "Manager", k->key, &e);
        if (!value) {   /* cannot happen: the scan saw the key, so GKeyFile has it */
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:%u: %s",
                            path, line, e->message);
                return FALSE;
        }
        g_strstrip(value);

        if (*value == '\0') {
                Config d;

                config_init(&d);
                memcpy((uint8_t *) c + k->offset, (const uint8_t *) &d + k->offset, k->size);
                return TRUE;
        }

        if (!k->parse(value, (uint8_t *) c + k->offset, &e)) {
                bool hint = strstr(value, " #") || strstr(value, "\t#");

                shown = shorten(value);
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

gboolean config_parse(Config *c, const char *path, const char *data, size_t size, GError **error) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        size_t order[G_N_ELEMENTS(config_keys)], n_order = 0;
        Scan s = { .path = path };
        Config n = *c;

        if (!scan_config_file(&s, data, size, error))
                return FALSE;
        if (!g_key_file_load_from_data(kf, data ?: "", size, G_KEY_FILE_NONE, &e)) {
                /* keyfile_scan() refuses everything GKeyFile does; the fuzzer checks that */
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s:1: %s", path, e->message);
                return FALSE;
        }

        /* in file order, so the first message is about the first bad line */
        for (size_t i = 0; i < G_N_ELEMENTS(config_keys); i++)
                if (s.lines[i] > 0)
                        order[n_order++] = i;
        g_qsort_with_data(order, (gint) n_order, sizeof(order[0]), compare_lines, s.lines);

        for (size_t i = 0; i < n_order; i++)
                if (!apply_key(&n, kf, &config_keys[order[i]], path, s.lines[order[i]], error))
                        return FALSE;

        *c = n;
        return TRUE;
}

gboolean config_load(Config *c, const char *path, GError **error) {
        g_autofree char *data = NULL;
        struct stat st;
        size_t size = 0;
        int fd;

        /* O_NONBLOCK: a FIFO in place of the file must not hang the daemon */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT)
                return TRUE;
        if (fd < 0) {
                int err = errno;
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: cannot open: %s",
                            path, g_strerror(err));
                return FALSE;
        }

        if (fstat(fd, &st) < 0) {
                int err = errno;
                close(fd);
                g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: cannot stat: %s",
                            path, g_strerror(err));
                return FALSE;
        }
        /* /dev/null reads as empty: the way to say "defaults" that systemd users know */
        if (!S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))) {
                close(fd);
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: is not a regular file", path);
                return FALSE;
        }

        data = g_malloc(CONFIG_FILE_SIZE_MAX + 1);
        while (size <= CONFIG_FILE_SIZE_MAX) {
                ssize_t k = read(fd, data + size, CONFIG_FILE_SIZE_MAX + 1 - size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int err = errno;
                        close(fd);
                        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: cannot read: %s",
                                    path, g_strerror(err));
                        return FALSE;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        close(fd);

        if (size > CONFIG_FILE_SIZE_MAX) {
                g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: is larger than %u KiB",
                            path, CONFIG_FILE_SIZE_MAX / 1024);
                return FALSE;
        }

        return config_parse(c, path, data, size, error);
}
