/* The validator (SPEC section 8, docs/online.md): every exchange with the
 * license server. Its thread validates at start, every 24 h, when seconds
 * run low (a refill) and on the back-off schedule after a failure; online
 * activation and removal run here too, one exchange at a time. It reads
 * what to send from the ledger, runs the HTTPS exchange without holding any
 * ledger lock, and records the verified outcome through the ledger. It
 * knows no HTTP server types.
 *
 * Locks: exchange serialises exchanges and is held across the network;
 * mu guards the status below and the thread's wake-up, and is never held
 * across I/O, so validator_status never waits on the network. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "agent/activation.h"
#include "agent/outcome.h"

struct ledger;
struct validator;

struct validator_config {
    const char *server;    /* https://HOST:PORT, or NULL: no license server */
    const char *server_ca; /* the only trust anchor */
    int state_fd;          /* the state directory: the proxy settings */
    unsigned timeout_secs;
    EVP_PKEY *vendor_key;
    /* zero-touch provisioning (docs/packaging.md): the license to activate
     * online while the TPM holds none; NULL: none */
    const struct activation_fields *zero_touch;
};

/* The strings are borrowed and must outlive the validator. */
int validator_new(const struct validator_config *cfg, struct ledger *ledger,
                  struct validator **ret);
/* Starts the thread (only when a server is configured); validate at once. */
int validator_start(struct validator *v);
/* Stops and joins the thread, then frees. Accepts NULL. */
void validator_free(struct validator *v);

/* Validate now, without waiting for it (services never wait on the
 * network). */
void validator_poke(struct validator *v);
/* The same for a refill (few seconds left), unless a failed exchange waits
 * for its retry on the back-off schedule. */
void validator_refill(struct validator *v);

struct validator_status {
    bool connected;               /* the last exchange got a valid answer */
    time_t next_due;              /* wall clock of the next validation; 0: none planned */
    uint64_t ok, failed, refused; /* validations, by result */
    char last_error[400];
};
void validator_status(struct validator *v, struct validator_status *ret);

/* POST /v1/management/license: online activation. */
bool validator_activate(struct validator *v, const struct activation_fields *f, struct outcome *o);
/* DELETE /v1/management/license: returns the unused seconds. */
bool validator_deactivate(struct validator *v, uint64_t *ret_returned, struct outcome *o);
