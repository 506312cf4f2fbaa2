/* TPM access for the daemon (docs/agent.md, "Who owns what"): the only
 * holder of the TPM context inside tpmlicd. Every TPM command goes through
 * here, one at a time (the ESAPI context is not thread-safe); a failure is
 * recorded as the TPM's health (for /v1/status and /metrics) with its
 * reason; a TPM that stops answering is closed, and a watch thread (joined
 * at stop) checks its health and reopens it when it answers again.
 *
 * Locks: io_lock is held for the duration of one command (or one retried
 * sequence, like an increment throttled by TPM_RC_NV_RATE); health_lock
 * only around the health fields, never across a command, so readers of the
 * health never wait on the TPM. Callers may hold their own lock while
 * calling in (the ledger does); nothing here calls out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm/tpm.h"

struct tpmio;

struct tpmio_health {
    bool present;           /* a TPM was found at start */
    bool ok;                /* it answers now */
    bool untrusted;         /* an answer failed its authentication: fail closed */
    char error[256];        /* why not ("" while ok) */
    uint64_t errors;        /* failed commands since start */
    unsigned long reopened; /* times the TPM was reopened after a loss */
};

/* Opens the TPM at tcti, reads its RSA EK and makes the TPM prove that it
 * holds that EK's private key (tpm_prove_ek): every later command runs in
 * the session salted to it, so the TPM's answers are authenticated. *ret_ek
 * gets the EK (free with tpm_ek_clear). -errno with a one-line reason in
 * err on failure; -EKEYREJECTED when the TPM cannot prove its EK. */
int tpmio_open(const char *tcti, struct tpmio **ret, struct tpm_ek *ret_ek, char *err,
               size_t errlen);
/* A tpmio without a TPM (--allow-no-tpm): every command fails -ENODEV. */
int tpmio_new_absent(const char *why, struct tpmio **ret);
/* Stops the watch (if started) and closes the TPM. Accepts NULL. */
void tpmio_free(struct tpmio *t);

/* Starts the health watch: every interval_secs, ReadClock; a TPM that was
 * lost is reopened. tpmio_free stops and joins it. */
int tpmio_start_watch(struct tpmio *t, unsigned interval_secs);

void tpmio_health(struct tpmio *t, struct tpmio_health *ret);
/* false once an answer of the TPM failed its authentication, until the TPM
 * proved its EK again (the watch tries): no lock, for the hot path. */
bool tpmio_trusted(struct tpmio *t);

/* The auth values the TPM is used with (kept for reopening): the agent's
 * NV indices', and the owner hierarchy's when an image set one. */
int tpmio_set_nv_auth(struct tpmio *t, const uint8_t *auth, size_t len);
int tpmio_set_owner_auth(struct tpmio *t, const uint8_t *auth, size_t len);
/* Commands sent since open (counted at the TCTI; 0 without a TPM). */
unsigned long tpmio_command_count(struct tpmio *t);

/* The TPM's fixed properties (no command). -ENODEV without a TPM. */
int tpmio_info(struct tpmio *t, struct tpm_info *ret);

/* The agent's NV indices: thin, serialised versions of the tpm/ calls.
 * what names the operation for the health record ("storing the license").
 * A failure's reason is in *why (may be NULL), sized TPMIO_WHY_LEN. */
#define TPMIO_WHY_LEN 320
int tpmio_nv_public(struct tpmio *t, uint32_t index, struct tpm_nv_public *ret, char *why);
int tpmio_nv_define(struct tpmio *t, uint32_t index, size_t size, char *why);
int tpmio_nv_undefine(struct tpmio *t, uint32_t index, char *why);
int tpmio_nv_check(struct tpmio *t, const struct tpm_nv_public *pub, enum tpm_nv_type type,
                   size_t size, char *why);
int tpmio_nv_read(struct tpmio *t, uint32_t index, uint8_t **ret_data, size_t *ret_len, char *why);
int tpmio_nv_write(struct tpmio *t, uint32_t index, const void *data, size_t len, const char *what,
                   char *why);
int tpmio_counter_define(struct tpmio *t, uint32_t index, char *why);
int tpmio_counter_read(struct tpmio *t, uint32_t index, uint64_t *ret, char *why);
/* Advances the counter until it reaches target (no further), retrying
 * NV_RATE like one increment; *ret_value: where it stands after. */
int tpmio_counter_advance_to(struct tpmio *t, uint32_t index, uint64_t from, uint64_t target,
                             uint64_t *ret_value, char *why);
/* One increment. TPM_RC_NV_RATE is retried with back-off (up to about
 * 1.3 s); after any other failure the counter is read back, and an increment
 * whose answer was lost but that happened counts as done. *ret_value: the
 * counter after it. */
int tpmio_counter_increment(struct tpmio *t, uint32_t index, uint64_t expect_before,
                            uint64_t *ret_value, char *why);
int tpmio_read_clock(struct tpmio *t, struct tpm_clock *ret);
