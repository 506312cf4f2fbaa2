/* RFC 3339 times in UTC, the one textual time format of tpmlic's JSON,
 * certificates and logs: exactly "YYYY-MM-DDTHH:MM:SSZ" (no fraction, no
 * offset, no lower-case letters). Parsing refuses anything else, and dates
 * that do not exist (2026-02-30). */
#pragma once

#include <time.h>

#define RFC3339_BUFLEN 21 /* 20 characters and the NUL */

/* 0 and the time in *ret; -EINVAL for anything not in the format above,
 * an impossible date, or a time before 1970. */
int rfc3339_parse(const char *s, time_t *ret);

/* Writes t as "2026-11-23T06:59:32Z"; "" when t is negative or beyond
 * year 9999. */
void rfc3339_format(time_t t, char buf[RFC3339_BUFLEN]);
