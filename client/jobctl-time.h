/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Times as jobctl shows and reads them, the way systemd does: CLOCK_REALTIME microseconds,
 * local time, "1min 30s". Pure functions; the caller passes "now" so they are testable.
 */

#include <stdint.h>

#define USEC_PER_MSEC   UINT64_C(1000)
#define USEC_PER_SEC    UINT64_C(1000000)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR   (UINT64_C(60) * USEC_PER_MINUTE)
#define USEC_PER_DAY    (UINT64_C(24) * USEC_PER_HOUR)
#define USEC_PER_WEEK   (UINT64_C(7) * USEC_PER_DAY)
#define USEC_PER_MONTH  (UINT64_C(2629800) * USEC_PER_SEC)
#define USEC_PER_YEAR   (UINT64_C(31557600) * USEC_PER_SEC)
#define NSEC_PER_USEC   UINT64_C(1000)

uint64_t now_realtime_usec(void);

/* "Tue 2024-05-07 14:03:11 CEST"; NULL for 0 (unset) and UINT64_MAX */
char *format_timestamp(uint64_t usec);
/* "3min 2s ago", "5min left", "now" */
char *format_timestamp_relative(uint64_t usec, uint64_t now);
/* "1h 30min", "1.5s" down to accuracy (µs); "infinity" for UINT64_MAX, "0" for 0 */
char *format_timespan(uint64_t usec, uint64_t accuracy);

/*
 * A point in time as a person writes it: "now", "today", "tomorrow", "+TIMESPAN" (from now),
 * "@SECONDS" (since the epoch), "YYYY-MM-DD[ HH:MM[:SS]]", "HH:MM[:SS]" (today), local time;
 * or ISO 8601 with an offset ("2024-05-07T14:00:00Z"). 0 or -EINVAL/-ERANGE; *ret on success.
 */
int parse_timestamp(const char *s, uint64_t now, uint64_t *ret);
