/* What a domain call (ledger, validator, activation) answers a caller that
 * acts for someone: the kind of result and a message for a person. The
 * routes turn the kind into an HTTP status; nothing below them knows HTTP. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

enum outcome_kind {
    OUTCOME_OK = 0,
    OUTCOME_INVALID,     /* the input is wrong (400) */
    OUTCOME_REFUSED,     /* not allowed for this license or caller (403) */
    OUTCOME_NOT_FOUND,   /* no such thing (404) */
    OUTCOME_CONFLICT,    /* not in this state (409) */
    OUTCOME_LIMIT,       /* a limit is reached (429) */
    OUTCOME_INTERNAL,    /* out of memory, no randomness (500) */
    OUTCOME_UPSTREAM,    /* the license server's answer is not acceptable (502) */
    OUTCOME_UNAVAILABLE, /* the TPM or the license server cannot be used now (503) */
};

#define OUTCOME_MSG_LEN 512

struct outcome {
    enum outcome_kind kind;
    char msg[OUTCOME_MSG_LEN];
};

/* Sets kind and message; returns false when kind is not OUTCOME_OK, so
 * that "return outcome_set(o, ...)" ends a function that reports bool. */
static inline __attribute__((format(printf, 3, 4))) bool
outcome_set(struct outcome *o, enum outcome_kind kind, const char *fmt, ...) {
    va_list ap;
    o->kind = kind;
    va_start(ap, fmt);
    vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
    va_end(ap);
    return kind == OUTCOME_OK;
}
