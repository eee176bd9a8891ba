/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cleanup attributes for plain fds; sd-bus and GLib types bring their own. */

#include <errno.h>
#include <unistd.h>

#ifndef _cleanup_
#define _cleanup_(f) __attribute__((cleanup(f)))
#endif

/* Hands an fd over: returns it and leaves -1 behind, so a cleanup attribute does not close it. */
static inline int take_fd(int *fd) {
        int r = *fd;

        *fd = -1;
        return r;
}

/* closes without clobbering errno, so a caller can still report the error that led here */
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}
