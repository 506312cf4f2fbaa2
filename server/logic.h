/* The license server's decisions (docs/online.md): given the database and
 * one parsed request, what to answer. No network and no HTTP types here. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/licensecode.h"
#include "server/db.h"

#define SRV_VALIDATE_AFTER 86400
/* How long an online certificate holds after the answer that signed it
 * (docs/online.md, the validity window): a day between validations and a
 * 7-day grace period fit in it. */
#define SRV_WINDOW_DEFAULT (8 * 86400)
/* How far a reported TPM clock may be behind the last one (a power loss
 * can set it back by what it had not saved yet) */
#define SRV_TPM_CLOCK_SLACK_MS (2 * 3600 * 1000ull)

enum srv_request {
    SRV_REQ_ACTIVATE,
    SRV_REQ_VALIDATE,
    SRV_REQ_DEACTIVATE,
};
const char *srv_request_name(enum srv_request r); /* "activate", ... */

struct srv_ctx {
    struct srv_db *db;
    EVP_PKEY *key; /* the vendor's Ed25519 private key */
    time_t now;
    /* SQLite under serve: one writer at a time within the process, so that
     * the threads queue here and not on SQLite's busy timeout (optional:
     * SQLite's own lock serialises against other processes). NULL for
     * PostgreSQL, whose row locks let decisions run in parallel. */
    pthread_mutex_t *write_lock;
    uint64_t window_secs;  /* an online certificate's validity; 0: SRV_WINDOW_DEFAULT */
    const char *ek_ca_dir; /* the EK trust store for licenses with tpm_trust; NULL: none */
};

/* What to send. signed_answer: body is the payload to sign and send as
 * {"answer": JWS}; otherwise body is the whole (unsigned) error object. */
struct srv_reply {
    int status;
    bool signed_answer;
    json_t *body;
    char reason[32];                    /* refusal reason, "" for ok */
    char license[LICENSE_CODE_MAX + 1]; /* the code asked for (for a shortened log line) */
    char activation[CERT_TEXT_MAX + 1]; /* the activation concerned, "" when none */
};
void srv_reply_clear(struct srv_reply *r);

/* The validate and deactivate request (docs/online.md), read strictly:
 * every known field typed and checked, unknown fields ignored (a newer
 * agent may send more). Returns 0, or -EINVAL with err saying which field
 * and why. */
struct srv_check_req {
    char license[LICENSE_CODE_MAX + 1];
    char activation[CERT_TEXT_MAX + 1];
    char computer_id[HWID_ID_STRLEN];
    char nonce[SRV_ID_HEX + 1];
    char epoch[SRV_ID_HEX + 1];
    char next_epoch[SRV_ID_HEX + 1]; /* "" when absent (deactivate may leave it out) */
    uint64_t counter, consumed_secs;
    bool refill;
    /* sent by agents that keep a validity window and a time floor */
    bool has_base, has_tpm_clock, has_floor;
    uint64_t base;             /* the counter base consumed_secs is counted from */
    uint64_t tpm_clock;        /* ms, the TPM clock the window is anchored at */
    struct cert_counter floor; /* the hour counter now (index, name, value) */
};
int srv_parse_check(json_t *o, enum srv_request type, struct srv_check_req *q, char *err,
                    size_t errlen);
/* The activate request: the activation certificate, decoded and checked
 * for consistency (the EK against its digest, the computer ID against the
 * digests). 0, or -EINVAL with err. *ret to be cleared with
 * cert_activation_clear. */
int srv_parse_activate(json_t *o, struct cert_activation *ret, bool *ret_has_tpm_clock,
                       uint64_t *ret_tpm_clock, char *err, size_t errlen);

/* Decides the answer to one request (request: the parsed JSON body).
 * Returns 0 with *ret filled (an ok, a refusal or a 400), or a negative
 * errno when the database failed (-EBUSY: locked beyond the timeout);
 * nothing is changed then. A transaction that lost a race (PostgreSQL) is
 * run again. */
int srv_handle(const struct srv_ctx *ctx, enum srv_request type, json_t *request,
               struct srv_reply *ret);

/* Offline signing (tpmlic-server offline sign, the admin API), within the
 * caller's transaction: records an offline activation of the license the
 * activation certificate names and signs its license certificate.
 * granted: seconds for the appliance (UINT64_MAX: all free seconds of the
 * pool). Returns 0 with *ret_jws and the activation ID in ret_id (existing
 * tells whether it was there already), 1 when refused (reason the token,
 * msg why), a negative errno on failure. */
int srv_offline_decide(const struct srv_ctx *ctx, const struct cert_activation *act,
                       uint64_t granted, char **ret_jws, char ret_id[CERT_TEXT_MAX + 1],
                       bool *existing, char *reason, size_t reasonlen, char *msg, size_t msglen);
