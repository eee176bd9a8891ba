/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* systemd-style value parsing; all return 0 or -EINVAL/-ERANGE and write *ret only on success. */

#include <stddef.h>
#include <stdint.h>

/* "5min", "1h 30s", "10" (seconds), "500ms", "2us", "infinity" (UINT64_MAX) */
int parse_timespan_usec(const char *s, uint64_t *ret);
/* the other way, for people: "5min", "1h 30s", "0"; a new string */
char *format_timespan_usec(uint64_t usec);
/* "512M", "1G", "4096", "1.5K" (base 1024), "infinity" (UINT64_MAX) */
int parse_size_bytes(const char *s, uint64_t *ret);
/* "50%" → 50; allows > 100 (CPUQuota=200% is two CPUs); requires the % sign */
int parse_percent(const char *s, unsigned *ret);
int parse_unsigned(const char *s, unsigned *ret);
int parse_int(const char *s, int *ret);
int parse_boolean(const char *s);   /* 1, 0 or -EINVAL: yes/no/true/false/on/off/1/0 */

/* GKeyFile keeps no line numbers and takes any key, so key-file parsers walk the raw text with this
 * first. fn is called for each [Section] header (key NULL) and each Key= line (section NULL before
 * any header) with the 1-based line; a negative return stops the walk and is returned. -EBADMSG:
 * a line that is not blank, a # comment, [Section] or Key=value; -EILSEQ: invalid UTF-8 or a
 * control character other than tab (CRLF line ends are fine). *ret_line (may be NULL) gets the
 * failing line. When fn accepts only plain names ([A-Za-z0-9]) and never the key Encoding (which
 * GKeyFile checks), text that passes loads in GKeyFile with the same sections and keys. */
typedef int (*KeyFileLineFn)(const char *section, const char *key, unsigned line, void *userdata);
int keyfile_scan(const char *data, size_t size, KeyFileLineFn fn, void *userdata, unsigned *ret_line);
