/* License codes: the one grammar every program checks them against, and the
 * one rule for how much of a code a log line may show. */
#pragma once

#include <stdbool.h>

#define LICENSE_CODE_MAX  64 /* characters */
#define LICENSE_CODE_RULE "1 to 64 letters, digits, '.', '-' or '_'"

/* 1 to LICENSE_CODE_MAX characters of [A-Za-z0-9._-]. */
bool license_code_valid(const char *s);

/* What a log line shows of a code: "..." and its last 4 characters, or of a
 * code of 8 characters or fewer, only its last half ("L-1001" gives
 * "...001"), so that a log never holds a whole code. */
#define LICENSE_CODE_LOG_BUFLEN 8
const char *license_code_for_log(const char *code, char buf[LICENSE_CODE_LOG_BUFLEN]);
