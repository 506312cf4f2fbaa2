/* What the socket API shows (docs/api.md): the status, licensing and
 * management views as JSON, and /metrics as Prometheus text, all rendered
 * from one snapshot plus the validator's and the TPM's status. Pure: no
 * locks, no I/O, no HTTP types. */
#pragma once

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "agent/snapshot.h"
#include "agent/tpmio.h"
#include "agent/validator.h"

/* GET /v1/status */
json_t *render_status(const struct snapshot *s, const struct tpmio_health *tpm, time_t now);
/* GET /licensing */
json_t *render_licensing(const struct snapshot *s, const struct validator_status *v, time_t now);
/* GET /v1/management/license: seed 000's license status plus ours */
json_t *render_license(const struct snapshot *s, const struct validator_status *v, time_t now);

/* Everything /metrics shows besides the snapshot. */
struct render_counters {
    uint64_t checks_allowed, checks_denied;
    uint64_t http_requests;
    uint64_t http_connections_refused, http_connections_too_slow;
    unsigned http_connections_open;
};

/* GET /metrics: malloc'ed text, NULL when out of memory. */
char *render_metrics(const struct snapshot *s, const struct tpmio_health *tpm,
                     const struct validator_status *v, const struct render_counters *c, time_t now);
