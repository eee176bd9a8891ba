/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stateless validation of job parameters. */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "jobtype.h"
#include "params.h"

G_DEFINE_QUARK(jobd-params-error-quark, params_error)

static gboolean env_name_is_valid(const char *name) {
        if (!name || !*name || strchr(name, '=') || g_ascii_isdigit(*name))
                return FALSE;
        for (const char *p = name; *p; p++)
                if (!g_ascii_isalnum(*p) && *p != '_')
                        return FALSE;
        return TRUE;
}

static gboolean validate_argv(JsonNode *node, GError **error) {
        JsonArray *a;
        guint n;

        if (!JSON_NODE_HOLDS_ARRAY(node))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"argv\" must be an array of strings, e.g. [\"make\", \"-j8\"]."), FALSE;
        a = json_node_get_array(node);
        n = json_array_get_length(a);
        if (n == 0)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"argv\" is empty; it needs at least the command to run."), FALSE;
        if (n > PARAMS_EXEC_ARGV_MAX)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"argv\" has %u elements; the limit is %u.", n, PARAMS_EXEC_ARGV_MAX), FALSE;
        for (guint i = 0; i < n; i++) {
                JsonNode *e = json_array_get_element(a, i);
                if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING)
                        return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                           "\"argv\"[%u] is not a string.", i), FALSE;
                if (i == 0 && !*json_node_get_string(e))
                        return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                           "\"argv\"[0], the command, is empty."), FALSE;
        }
        return TRUE;
}

static gboolean validate_env(JsonNode *node, GError **error) {
        g_autoptr(GList) members = NULL;
        JsonObject *o;

        if (!JSON_NODE_HOLDS_OBJECT(node))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"env\" must be an object of strings, e.g. {\"LANG\": \"C\"}."), FALSE;
        o = json_node_get_object(node);
        if (json_object_get_size(o) > PARAMS_EXEC_ENV_MAX)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"env\" has %u variables; the limit is %u.",
                                   json_object_get_size(o), PARAMS_EXEC_ENV_MAX), FALSE;
        members = json_object_get_members(o);
        for (GList *l = members; l; l = l->next) {
                JsonNode *v = json_object_get_member(o, l->data);
                if (!env_name_is_valid(l->data))
                        return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                           "\"env\" name \"%s\" is not a valid variable name "
                                           "(letters, digits and _, not starting with a digit).",
                                           (const char *) l->data), FALSE;
                if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING)
                        return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                           "\"env\" value of \"%s\" is not a string.",
                                           (const char *) l->data), FALSE;
        }
        return TRUE;
}

static gboolean validate_exec(JsonNode *root, GError **error) {
        g_autoptr(GList) members = NULL;
        JsonObject *o;
        JsonNode *n;

        if (!JSON_NODE_HOLDS_OBJECT(root))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "Parameters of an exec job must be an object: "
                                   "{\"argv\": [...], \"cwd\": \"...\", \"env\": {...}}."), FALSE;
        o = json_node_get_object(root);

        members = json_object_get_members(o);
        for (GList *l = members; l; l = l->next)
                if (!g_str_equal(l->data, "argv") && !g_str_equal(l->data, "cwd") &&
                    !g_str_equal(l->data, "env"))
                        return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                           "Unknown key \"%s\" in exec parameters; "
                                           "use argv, cwd and env.", (const char *) l->data), FALSE;

        n = json_object_get_member(o, "argv");
        if (!n)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "Exec parameters need \"argv\", e.g. {\"argv\": [\"make\", \"-j8\"]}."), FALSE;
        if (!validate_argv(n, error))
                return FALSE;

        n = json_object_get_member(o, "cwd");
        if (n && (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING ||
                  !g_path_is_absolute(json_node_get_string(n))))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "\"cwd\" must be an absolute path."), FALSE;

        n = json_object_get_member(o, "env");
        if (n && !validate_env(n, error))
                return FALSE;
        return TRUE;
}

/* json-glib's parser recurses per nesting level: bound the depth before handing it the text,
 * or a megabyte of '[' would overflow the daemon's stack. */
static size_t json_max_depth(const char *json) {
        size_t depth = 0, max = 0;
        bool in_string = false;

        for (const char *p = json; *p; p++) {
                if (in_string) {
                        if (*p == '\\' && p[1])
                                p++;
                        else if (*p == '"')
                                in_string = false;
                } else if (*p == '"')
                        in_string = true;
                else if (*p == '[' || *p == '{') {
                        if (++depth > max)
                                max = depth;
                } else if ((*p == ']' || *p == '}') && depth > 0)
                        depth--;
        }
        return max;
}

/* JSON text to a parser holding a root, depth-bounded first. */
static JsonParser *parse_json(const char *json, GError **error) {
        g_autoptr(JsonParser) parser = NULL;
        g_autoptr(GError) e = NULL;

        if (json_max_depth(json) > PARAMS_DEPTH_MAX)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "Parameters nest deeper than %u levels.", PARAMS_DEPTH_MAX), NULL;
        parser = json_parser_new_immutable();
        if (!json_parser_load_from_data(parser, json, -1, &e))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "Parameters are not valid JSON: %s", e->message), NULL;
        if (!json_parser_get_root(parser))
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_INVALID,
                                   "Parameters are empty JSON; pass a value such as {}."), NULL;
        return g_steal_pointer(&parser);
}

gboolean params_validate(const char *type, const char *json, size_t max_bytes, GError **error) {
        g_autoptr(JsonParser) parser = NULL;
        size_t size = strlen(json);

        if (size > max_bytes)
                return g_set_error(error, PARAMS_ERROR, PARAMS_ERROR_TOO_LARGE,
                                   "Parameters are %zu bytes; the limit is %zu (MaxParameterBytes= in "
                                   "jobd.conf). Pass large data as input instead.", size, max_bytes), FALSE;
        parser = parse_json(size == 0 ? "{}" : json, error);
        if (!parser)
                return FALSE;
        if (g_str_equal(type, JOBTYPE_BUILTIN_EXEC))
                return validate_exec(json_parser_get_root(parser), error);
        return TRUE;
}

gboolean params_is_json(const char *text) {
        g_autoptr(JsonParser) parser = NULL;

        if (!g_utf8_validate(text, -1, NULL))
                return FALSE;
        parser = parse_json(text, NULL);
        return parser != NULL;
}

gboolean params_exec_decode(const char *json, char ***ret_argv, char **ret_cwd, char ***ret_env, GError **error) {
        g_autoptr(JsonParser) parser = NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func(g_free);
        JsonObject *o;
        JsonArray *a;
        JsonNode *n;

        /* the journal is root's, but a record is still input: check what the code below assumes */
        parser = parse_json(*json ? json : "{}", error);
        if (!parser || !validate_exec(json_parser_get_root(parser), error))
                return FALSE;
        o = json_node_get_object(json_parser_get_root(parser));
        a = json_object_get_array_member(o, "argv");
        for (guint i = 0; i < json_array_get_length(a); i++)
                g_ptr_array_add(argv, g_strdup(json_array_get_string_element(a, i)));
        g_ptr_array_add(argv, NULL);

        n = json_object_get_member(o, "env");
        if (n) {
                JsonObject *e = json_node_get_object(n);
                g_autoptr(GList) names = json_object_get_members(e);
                for (GList *i = names; i; i = i->next)
                        g_ptr_array_add(env, g_strdup_printf("%s=%s", (const char *) i->data,
                                                             json_object_get_string_member(e, i->data)));
        }
        g_ptr_array_add(env, NULL);

        n = json_object_get_member(o, "cwd");
        *ret_cwd = n ? g_strdup(json_node_get_string(n)) : NULL;
        *ret_argv = (char **) g_ptr_array_free(g_steal_pointer(&argv), FALSE);
        *ret_env = (char **) g_ptr_array_free(g_steal_pointer(&env), FALSE);
        return TRUE;
}

char *params_result_from_output(const char *data, size_t size, gboolean truncated) {
        g_autoptr(JsonNode) node = NULL;
        g_autofree char *valid = NULL;

        if (size == 0)
                return g_strdup("null");
        if (!truncated && strlen(data) == size && params_is_json(data))
                return g_strdup(data);

        /* not JSON: the text as a JSON string */
        valid = g_utf8_make_valid(data, (gssize) size);
        node = json_node_init_string(json_node_alloc(), valid);
        return json_to_string(node, FALSE);
}
