/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Job parameters: JSON text from callers, checked before anything is created. Pure GLib code
 * (json-glib), so it is unit-tested and fuzzed apart from the bus.
 */

#include <stddef.h>
#include <glib.h>

#define PARAMS_ERROR (params_error_quark())
GQuark params_error_quark(void);

typedef enum ParamsError {
        PARAMS_ERROR_TOO_LARGE,         /* over the byte limit */
        PARAMS_ERROR_INVALID,           /* not JSON, or not the shape the type needs */
} ParamsError;

#define PARAMS_EXEC_ARGV_MAX 4096u
#define PARAMS_EXEC_ENV_MAX 1024u
#define PARAMS_DEPTH_MAX 64u

/* Checks parameters for a type: JSON (any value) for every type; for the built-in exec type
 * {"argv": [non-empty strings…], "cwd": "/absolute", "env": {"NAME": "value"}} with argv
 * required and non-empty, nothing else allowed. "" is taken as {}. */
gboolean params_validate(const char *type, const char *json, size_t max_bytes, GError **error);

/* Whether text (NUL-terminated, valid UTF-8 or not) is one JSON value, within the depth bound. */
gboolean params_is_json(const char *text);

/* An exec job's argv, cwd (NULL: none given) and env ("NAME=value" each) from its parameters, which
 * params_validate() accepted for exec. Fails (-> the attempt fails) only if they are not that. */
gboolean params_exec_decode(const char *json, char ***ret_argv, char **ret_cwd, char ***ret_env, GError **error);

/* A job's Result from the bytes it wrote to stdout (size bytes, NUL-terminated after them): the
 * text itself when it is one JSON value and was not truncated, else a JSON string holding it
 * (invalid UTF-8 replaced), "null" for nothing. Always JSON that params_is_json() accepts. */
char *params_result_from_output(const char *data, size_t size, gboolean truncated);
