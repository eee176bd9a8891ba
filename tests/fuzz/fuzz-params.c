/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parameters are JSON from any caller: validate arbitrary bytes as both a plain and an exec type. */

#include <stdint.h>
#include <string.h>

#include "log.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = NULL;

        /* D-Bus strings are NUL-free UTF-8: the bus refuses anything else before jobd sees it */
        if (memchr(data, 0, size) || !g_utf8_validate((const char *) data, size, NULL))
                return 0;
        log_set_max_level(-1);
        text = g_strndup((const char *) data, size);
        (void) params_validate("echo", text, 1024 * 1024, NULL);
        (void) params_validate("exec", text, 1024 * 1024, NULL);
        return 0;
}
