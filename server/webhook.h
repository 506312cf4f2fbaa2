/* Webhooks: the events the server raises for the vendor's systems, the
 * endpoints that subscribe to them, and the delivery log. An event is
 * written as one pending delivery per subscribed endpoint in the same
 * transaction as the decision that raised it (an outbox: no event for a
 * decision rolled back, no decision without its event); serve's delivery
 * thread (deliver.c) sends them. The rows here are shared by every server
 * instance on one database: a delivery is claimed for a while before it is
 * sent, so two instances do not send it at once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "server/db.h"

#define SRV_EVENT_ACTIVATION         "activation"
#define SRV_EVENT_DEACTIVATION       "deactivation"
#define SRV_EVENT_VALIDATION_REFUSED "validation_refused"
#define SRV_EVENT_CLONE_FLAGGED      "clone_flagged"
#define SRV_EVENT_POOL_LOW           "pool_low"

/* Every event name, NULL-terminated. */
extern const char *const srv_events[];
bool srv_event_known(const char *name);

#define SRV_WEBHOOK_URL_MAX    512
#define SRV_WEBHOOK_SECRET_HEX 64 /* 32 random bytes */

/* Raises event with data (borrowed): one delivery per endpoint subscribed.
 * The body sent is {"id", "event", "time", "data"}. */
int srv_event_emit(struct srv_db *db, time_t now, const char *event, json_t *data);
/* pool_low when the license's free seconds, free_before before a change
 * in this transaction, are now below its pool_alert_secs (once per
 * crossing). */
int srv_event_pool_check(struct srv_db *db, time_t now, const struct srv_license *l,
                         uint64_t free_before);

/* Endpoints. events: NULL-terminated names (checked by the caller). The
 * secret is made here and returned once in secret (never stored
 * elsewhere, never logged). */
int srv_webhook_insert(struct srv_db *db, const char *url, const char *const *events,
                       const char *description, time_t now, const char *by,
                       char secret[SRV_WEBHOOK_SECRET_HEX + 1], int64_t *ret_id);
/* {id, url, events, description, created, created_by} for one or all
 * (never the secret). -ENOENT for an unknown id. */
int srv_webhook_get(struct srv_db *db, int64_t id, json_t **ret);
int srv_webhook_list(struct srv_db *db, json_t **ret);
int srv_webhook_delete(struct srv_db *db, int64_t id);

/* The delivery log: deliveries (newest first) with their attempts. */
struct srv_delivery_filter {
    int64_t webhook_id; /* 0: every endpoint */
    const char *state;  /* "pending", "delivered", "failed" or NULL */
    unsigned limit;     /* 0: 100 */
};
int srv_delivery_list(struct srv_db *db, const struct srv_delivery_filter *f, json_t **ret);

/* The sender's side. */
struct srv_delivery {
    int64_t id, webhook_id;
    char url[SRV_WEBHOOK_URL_MAX + 1];
    char secret[SRV_WEBHOOK_SECRET_HEX + 1];
    char event[32];
    char *payload;
    unsigned attempts; /* made before this one */
};
/* Claims up to max deliveries due at now for hold_secs (committed at
 * once; a claim that runs out, e.g. the instance died, is due again).
 * *ret malloc'ed, free with srv_deliveries_free (which wipes the secrets). */
int srv_delivery_claim(struct srv_db *db, time_t now, unsigned hold_secs, unsigned max,
                       struct srv_delivery **ret, size_t *ret_n);
void srv_deliveries_free(struct srv_delivery *d, size_t n);
/* Records one attempt: status the HTTP status (0 when none came), error
 * why it failed ("" for a 2xx). A 2xx ends it delivered; otherwise it is
 * due again after retry_secs * 2^(attempt - 1) (at most an hour), or
 * failed once max_attempts were made. */
int srv_delivery_record(struct srv_db *db, const struct srv_delivery *d, time_t now, int status,
                        const char *error, unsigned duration_ms, unsigned retry_secs,
                        unsigned max_attempts);
/* Pending deliveries (a gauge for /metrics). */
int srv_delivery_pending(struct srv_db *db, int64_t *ret);

/* The signature header of a webhook body: "t=TIME,v1=HEX", HEX the
 * HMAC-SHA256 with the endpoint's secret (its hex text as the key) over
 * "TIME.BODY". out: at least SRV_SIGNATURE_BUFLEN. */
#define SRV_SIGNATURE_BUFLEN 96
int srv_webhook_signature(const char *secret, time_t t, const char *body, char *out, size_t outlen);
