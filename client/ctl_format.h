/* tpmlicctl's human-readable output: durations as hours and minutes, times
 * in local time and relative to now ("in 23 days"). Pure functions,
 * exercised by tests/integration/ctl.sh. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* 45 -> "45 s", 312 -> "5 min 12 s", 3600 -> "1 h 0 min". */
void ctl_format_secs(uint64_t secs, char *buf, size_t size);
/* t relative to now: "in 23 days", "in 5 hours", "3 minutes ago", "now". */
void ctl_format_relative(time_t t, time_t now, char *buf, size_t size);
/* t in the local time zone: "2027-01-31 01:00:00 CET". */
void ctl_format_local(time_t t, char *buf, size_t size);
