/* Validation grace periods and retry back-off (SPEC section 8,
 * docs/online.md). Pure logic on the state record that lives in the TPM:
 * the caller reads the clocks, calls these, and writes the record back when
 * they say it changed. Unit-tested in tests/unit/test_agent_grace.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/store.h"

#define GRACE_SHORT_SECS    (2 * 3600)  /* no success on this boot, or a server-side error */
#define GRACE_LONG_SECS     (7 * 86400) /* unreachable after a success on this boot */
#define VALIDATE_EVERY_SECS 86400
#define BACKOFF_MAX_MINUTES 1024

enum online_failure {
    FAILURE_UNREACHABLE, /* no connection, timeout, TLS or proxy failure */
    FAILURE_SERVER,      /* HTTP 5xx, or an answer that is unsigned, altered or not ours */
};

/* A failed exchange: starts a grace period unless one is running (a running
 * one keeps its start and its length, whatever fails later). The length:
 * 2 h for a server-side error; for an unreachable server 7 days when a
 * validation succeeded since the license was applied on this boot
 * (validated_this_boot), else 2 h. tpm_ms: the TPM clock now. Returns true
 * when *s changed. */
bool grace_begin(struct store_state *s, enum online_failure f, bool validated_this_boot, time_t now,
                 uint64_t tpm_ms);

/* Milliseconds into the running grace period: the largest of what was seen
 * before plus what the TPM clock ran since then (clock_anchor_ms is the TPM
 * clock at the last observation), and the wall clock's time since the
 * start. Records that in grace_seen_ms, so a restart or a clock set back
 * never gives time back; the TPM clock does not run while the machine is
 * off (the wall clock covers that) and may step back after a power loss
 * (it then counts on from there). tpm_ok false: the TPM clock could not be
 * read. Returns true when *s changed. */
bool grace_observe(struct store_state *s, time_t now, uint64_t tpm_ms, bool tpm_ok);

/* After grace_observe: is the grace period over, and when does it end on
 * the wall clock as it stands (for display)? Once over, the moment it ran
 * out (grace_ended), which no later retry moves. 0 when none runs. */
bool grace_over(const struct store_state *s);
time_t grace_end(const struct store_state *s, time_t now);
/* Milliseconds left, 0 when over or none runs. */
uint64_t grace_left_ms(const struct store_state *s);

/* A record as read from NV: a running grace period gets the length of its
 * class (2 h or 7 days), whatever number the record holds. */
void grace_from_record(struct store_state *s);
/* What a damaged state record counts as: a grace period that is over, so
 * that an online license is not valid until a validation succeeds. */
void grace_least_favourable(struct store_state *s);

/* A successful exchange: no grace period, refusal cleared. */
void grace_succeeded(struct store_state *s, time_t now);

/* Minutes to wait after the n-th failure in a row (n >= 1): 1, 2, 4 ...
 * 1024, then 1024. */
unsigned backoff_minutes(unsigned n);
