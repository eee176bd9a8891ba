/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parameters are JSON from any caller: validate arbitrary bytes as both a plain and an exec type, and
 * whatever exec accepts must decode into what the launcher relies on: a non-empty command, an
 * absolute cwd or none, and NAME=value environment entries. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-check.h"
#include "log.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_exec_decodes(const char *text) {
        g_auto(GStrv) argv = NULL, env = NULL;
        g_autofree char *cwd = NULL;

        check(params_exec_decode(text, &argv, &cwd, &env, NULL));
        check(argv && argv[0] && *argv[0]);
        check(!cwd || g_path_is_absolute(cwd));
        for (char **e = env; *e; e++) {
                const char *eq = strchr(*e, '=');
                check(eq && eq != *e && !g_ascii_isdigit(**e));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = NULL;

        /* D-Bus strings are NUL-free UTF-8: the bus refuses anything else before jobd sees it */
        if (memchr(data, 0, size) || !g_utf8_validate((const char *) data, size, NULL))
                return 0;
        log_set_max_level(-1);
        text = g_strndup((const char *) data, size);
        (void) params_validate("echo", text, 1024 * 1024, NULL);
        if (params_validate("exec", text, 1024 * 1024, NULL))
                check_exec_decodes(text);
        return 0;
}
