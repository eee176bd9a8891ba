/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A local job's stdout becomes its Result: any bytes a job writes (NULs, invalid UTF-8, cut off at
 * the size limit). Whatever comes in, the Result must be one JSON value (clients parse it), and
 * stdout that was one JSON value, complete, must come back unchanged.
 *
 * Input: byte 0 says whether the output was truncated; the rest is what the job wrote.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-check.h"
#include "log.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *out = NULL, *result = NULL;
        gboolean truncated;

        if (size < 1)
                return 0;
        log_set_max_level(-1);
        truncated = data[0] & 1;
        /* the runner hands over its buffer NUL-terminated after the bytes */
        out = g_malloc(size);
        memcpy(out, data + 1, size - 1);
        out[size - 1] = '\0';

        result = params_result_from_output(out, size - 1, truncated);
        check(result && params_is_json(result));
        if (!truncated && size > 1 && strlen(out) == size - 1 && params_is_json(out))
                check(g_str_equal(result, out));
        return 0;
}
