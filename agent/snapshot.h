/* What readers see of the license state (docs/agent.md, "Snapshots"): an
 * immutable view the ledger publishes after every change it commits. The
 * hot path (/v1/check, /v1/status, /licensing, /metrics) takes a reference
 * to the current one and reads it without any lock that a TPM write or the
 * network holds: the box's mutex is held only to swap or take the pointer
 * and bump its count. The last reference frees a replaced view. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/license.h"
#include "hwid/id.h"

struct snapshot {
    atomic_uint refs;
    uint64_t generation; /* counts publications */

    char computer_id[HWID_ID_STRLEN];
    bool tpm_present; /* false: --allow-no-tpm */

    /* the license as verified, and why there is none when there is none */
    struct license_view lic;
    char license_problem[256];
    bool offline_mode;   /* no contact with the license server */
    bool online_applies; /* validated with the license server */
    time_t last_success; /* the last successful validation (wall clock), 0: none */

    /* usage seconds */
    uint64_t secs_remaining; /* granted minus consumed; open leases count as consumed */
    uint64_t counter_value;
    uint64_t pool; /* covered by the counter, held by no lease */
    size_t leases_open;
    uint64_t reserved_total, charged_total, returned_total, counter_writes;
    bool removing; /* a removal is under way: no new leases */
    time_t floor;  /* the time floor: decisions never take a time before it */
};

/* The time licensing decisions use: the wall clock, never before the floor. */
static inline time_t snapshot_decision_time(const struct snapshot *s, time_t wall) {
    return wall > s->floor ? wall : s->floor;
}

struct snapshot_box {
    pthread_mutex_t lock; /* only around cur: never held across I/O */
    struct snapshot *cur;
};

void snapshot_box_init(struct snapshot_box *b);
/* Drops the current view; every reference must be given back first. */
void snapshot_box_clear(struct snapshot_box *b);
/* Makes s (malloc'ed, refs 0) the current view; the box holds one reference. */
void snapshot_publish(struct snapshot_box *b, struct snapshot *s);
/* A reference to the current view (never NULL once published); give it
 * back with snapshot_put. */
const struct snapshot *snapshot_get(struct snapshot_box *b);
void snapshot_put(const struct snapshot *s);
static inline void snapshot_putp(const struct snapshot **s) {
    if (*s)
        snapshot_put(*s);
}
