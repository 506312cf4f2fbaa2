/* tpmlic-server's metrics: counters the request threads bump (atomics, no
 * lock), rendered in the Prometheus text format for GET /metrics together
 * with a few gauges read from the database at scrape time. The names and
 * what they count are in docs/server.md. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "server/logic.h"

enum srv_route_kind {
    SRV_ROUTE_ACTIVATE,
    SRV_ROUTE_VALIDATE,
    SRV_ROUTE_DEACTIVATE,
    SRV_ROUTE_ADMIN,
    SRV_ROUTE_HEALTH,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_OTHER,
    SRV_ROUTE_KINDS,
};
const char *srv_route_kind_name(enum srv_route_kind k);

#define SRV_METRIC_CODES   16 /* distinct HTTP statuses kept per route */
#define SRV_METRIC_BUCKETS 14
#define SRV_METRIC_REASONS 16

struct srv_metrics {
    time_t started;
    struct {
        _Atomic int code[SRV_METRIC_CODES];
        atomic_ullong count[SRV_METRIC_CODES];
        atomic_ullong bucket[SRV_METRIC_BUCKETS]; /* cumulative counts go out at render */
        atomic_ullong n;
        atomic_ullong micros; /* the sum of durations */
    } route[SRV_ROUTE_KINDS];
    /* decisions: per request type, ok and each refusal reason */
    atomic_ullong decision[3][SRV_METRIC_REASONS];
    atomic_ullong refused_per_address, refused_total, rate_limited, db_errors, auth_failures;
    atomic_ullong deliveries_ok, deliveries_retry, deliveries_failed, culled;
    atomic_uint connections_open;
};

void srv_metrics_init(struct srv_metrics *m);
void srv_metrics_request(struct srv_metrics *m, enum srv_route_kind k, int status, double seconds);
/* reason: "" for ok, a refusal reason, or "malformed" */
void srv_metrics_decision(struct srv_metrics *m, enum srv_request type, const char *reason);

/* Gauges from the database; negative when they could not be read. */
struct srv_metrics_db {
    int64_t licenses, activations_active, activations_flagged, deliveries_pending;
    bool db_up;
};

/* The exposition text (malloc'ed), or NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_db *d);
