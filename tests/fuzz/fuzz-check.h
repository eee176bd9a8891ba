/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* check(): a fuzz target's assertion about a promise of the code under test. Not assert(): a
 * release build must not turn the checks off. */

#include <stdio.h>
#include <stdlib.h>

#define check(expr)                                                                     \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                        \
                }                                                                       \
        } while (0)
