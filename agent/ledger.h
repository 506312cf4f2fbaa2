/* The ledger: the one owner of tpmlicd's licensing state (docs/agent.md,
 * "Who owns what"). It holds the license as verified from TPM NV, the state
 * record, the usage counter and its references, the lease table and the
 * pool, and the grace bookkeeping. Every change is one function here that
 * checks everything first and then does one read-modify-write under the
 * ledger's one lock, TPM write included, and publishes a new snapshot
 * before it unlocks. Readers on the hot path never take that lock: they
 * read the snapshot (ledger_snapshot).
 *
 * Calls go one way: routes and the validator call in; the ledger calls
 * leases, grace, license, store and activation, which call tpmio. The
 * ledger never sees an HTTP type, never talks to the network, and logs each
 * state transition once with its reason. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "agent/activation.h"
#include "agent/grace.h"
#include "agent/leases.h"
#include "agent/outcome.h"
#include "agent/snapshot.h"
#include "agent/store.h"

struct tpmio;
struct hwid_digests;

struct ledger_config {
    uint32_t nv_base;
    EVP_PKEY *vendor_key;    /* borrowed */
    bool server_configured;  /* a license server is set: online licensing possible */
    const char *computer_id; /* this machine, fixed after start (borrowed) */
    const struct hwid_digests *digests;
    const uint8_t *ek_spki; /* NULL without a TPM */
    size_t ek_spki_len;
    const uint8_t *ek_cert;
    size_t ek_cert_len;
    bool tpm_software;
    const struct cert_ek_trust *ek_trust; /* the EK certificate against the trust store */
};

struct ledger;

int ledger_new(const struct ledger_config *cfg, struct tpmio *tpm, struct ledger **ret);
void ledger_free(struct ledger *l);

/* Start-up: makes sure the agent's NV indices exist, reads the counter, the
 * state and the license, verifies the license, publishes the first
 * snapshot. A stored license that is not accepted leaves the ledger
 * unlicensed with the reason in the snapshot. -errno and err only when the
 * TPM cannot be used. Without a TPM (tpm_present false) it publishes an
 * unlicensed view. */
int ledger_load(struct ledger *l, bool tpm_present, char *err, size_t errlen);

/* The current view (never NULL after ledger_load); snapshot_put it. */
const struct snapshot *ledger_snapshot(struct ledger *l);

/* Housekeeping (run periodically): expires leases, looks at a running grace
 * period with both clocks and persists the moment it runs out, re-reads the
 * counter after the TPM was reopened. */
void ledger_tick(struct ledger *l);

/* ---- operators' changes ------------------------------------------------- */

/* An activation certificate for this machine now (offline request, or the
 * body of an online activation). */
bool ledger_activation_request(struct ledger *l, const struct activation_fields *f, char **ret_text,
                               char ret_nonce[33], struct outcome *o);

/* The TPM clock (ms, authenticated) for an online activation's request:
 * the license server anchors the certificate's validity window on it. */
bool ledger_tpm_clock(struct ledger *l, uint64_t *ret_ms, struct outcome *o);

/* PUT .../offlineactivation: verifies cert (signature, this machine, this
 * TPM's counter, the code) and stores it. */
bool ledger_apply_offline(struct ledger *l, const char *code, const char *cert, size_t len,
                          struct outcome *o);

/* POST .../offlinemode. *ret_back_online: it was on and is now off. */
bool ledger_set_offline_mode(struct ledger *l, bool offline, bool *ret_back_online,
                             struct outcome *o);

/* ---- services' seconds ---------------------------------------------------- */

struct lease_grant {
    char id[LEASE_ID_LEN + 1];
    uint64_t secs;
    uint64_t expires_in;
    bool refill; /* few seconds are left: validate now to refill */
};

bool ledger_reserve(struct ledger *l, uid_t uid, uint64_t secs, const char *feature,
                    struct lease_grant *ret, struct outcome *o);
bool ledger_commit(struct ledger *l, uid_t uid, bool any_uid, const char *id, uint64_t used,
                   uint64_t *ret_charged, uint64_t *ret_returned, struct outcome *o);

/* ---- the validator's side (validator.c runs the exchanges) ------------- */

/* What a request to the license server carries about the license. */
struct online_request {
    char code[LICENSE_CODE_MAX + 1];
    char jti[65];
    uint8_t epoch[STORE_EPOCH_LEN];
    uint8_t next_epoch[STORE_EPOCH_LEN]; /* all zero: none */
    uint64_t counter;
    uint64_t base; /* the certificate's counter base, which consumed_secs counts from */
    uint64_t consumed_secs;
    uint64_t tpm_clock;        /* ms, read (authenticated) for this request: the window's anchor */
    struct cert_counter floor; /* the hour counter now (index, name, value): the floor's anchor */
    bool refill;
};

/* A verified answer of the license server, as the validator read it. */
struct online_answer {
    enum { ANSWER_OK, ANSWER_REFUSED, ANSWER_FAILED } kind;
    enum online_failure failure; /* FAILED */
    char reason[48];             /* REFUSED: "suspended", "not_active", ... */
    char message[400];
    uint8_t epoch[STORE_EPOCH_LEN]; /* OK */
    const char *certificate;        /* OK: a new license certificate, or NULL */
    size_t certificate_len;
    uint64_t cache_secs; /* OK: the server's refill step, 0: unknown */
};

/* Validation: 0 and *ret when an online license is to be validated (the
 * next epoch is written to the TPM before the request leaves, so an answer
 * that gets lost can be retried); -ENOENT when there is none; another -errno
 * when the TPM cannot keep the next epoch. */
int ledger_validation_prepare(struct ledger *l, struct online_request *ret, char *why);
/* Records the outcome of the exchange prepared in q (discarded when the
 * license changed meanwhile). validated_this_boot chooses the length of a
 * grace period that starts. Returns the kind finally recorded (an OK whose
 * certificate is refused counts as FAILED, with the reason in *ret_message
 * of size 400). */
int ledger_validation_record(struct ledger *l, const struct online_request *q,
                             const struct online_answer *a, bool validated_this_boot,
                             char *ret_message);

/* Online activation: the certificate and epoch from the license server's
 * answer; everything is checked before anything is written. */
bool ledger_apply_activation(struct ledger *l, const char *code, const char *activation,
                             const uint8_t epoch[STORE_EPOCH_LEN], uint64_t tpm_clock,
                             const char *cert, size_t len, struct outcome *o);
/* Is a license applied, in offline mode, validated online? For the
 * validator's refusals before an exchange starts. */
bool ledger_can_activate(struct ledger *l, struct outcome *o);

/* Removal: begin stops new leases and fills *ret (what is consumed is
 * final); then either abort (the license stays) or finish (erased). finish
 * returns false, with *o saying why, when the TPM did not take the erasure:
 * the license is gone from memory all the same, and the next validation
 * (answered not_active) erases it from the TPM. */
bool ledger_removal_begin(struct ledger *l, struct online_request *ret, struct outcome *o);
void ledger_removal_abort(struct ledger *l);
bool ledger_removal_finish(struct ledger *l, const char *problem, struct outcome *o);
