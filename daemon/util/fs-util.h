/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File system helpers for trees that users control: nothing here follows a symlink. */

#include <stddef.h>
#include <stdint.h>

/* Removes dir_fd/name and everything below it; never follows symlinks, never crosses into
 * another file system. A missing name is fine. */
int rm_rf_at(int dir_fd, const char *name);

/* Copies at most max bytes from in_fd to out_fd; -EFBIG if in_fd holds more. */
int copy_bytes(int in_fd, int out_fd, uint64_t max, uint64_t *ret_copied);

/* A sealed, read-only memfd holding data (for a job's stdin). */
int memfd_new_with_data(const char *name, const void *data, size_t size);

/* A plain file name: not empty, not . or .., no '/', at most 255 bytes, no control chars. */
int filename_is_plain(const char *name);
