/* tpmlic-server's metrics (metrics.h) in the Prometheus text exposition
 * format 0.0.4: every family with its HELP and TYPE, counters ending in
 * _total, durations in seconds. */
#include "server/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

static const char *const kind_names[SRV_ROUTE_KINDS] = {
    "activate", "validate", "deactivate", "admin", "health", "metrics", "other",
};

/* upper bounds of the duration histogram, in seconds */
static const double bounds[SRV_METRIC_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static const char *const reasons[SRV_METRIC_REASONS] = {
    "",
    "unknown_license",
    "suspended",
    "expired",
    "max_activations",
    "offline_only",
    "not_active",
    "wrong_computer",
    "stale_epoch",
    "counter_went_back",
    "consumption_went_back",
    "malformed",
    "other",
};

const char *srv_route_kind_name(enum srv_route_kind k) {
    return k < SRV_ROUTE_KINDS ? kind_names[k] : "other";
}

void srv_metrics_init(struct srv_metrics *m) {
    memset(m, 0, sizeof(*m));
    m->started = time(NULL);
}

void srv_metrics_request(struct srv_metrics *m, enum srv_route_kind k, int status, double seconds) {
    if (k >= SRV_ROUTE_KINDS)
        k = SRV_ROUTE_OTHER;
    /* the status's slot: the one holding it, or the first free one taken */
    for (int i = 0; i < SRV_METRIC_CODES; i++) {
        int have = atomic_load(&m->route[k].code[i]), zero = 0;
        if (have == status ||
            (have == 0 && atomic_compare_exchange_strong(&m->route[k].code[i], &zero, status)) ||
            atomic_load(&m->route[k].code[i]) == status) {
            atomic_fetch_add(&m->route[k].count[i], 1);
            break;
        }
    }
    for (int b = 0; b < SRV_METRIC_BUCKETS; b++)
        if (seconds <= bounds[b]) {
            atomic_fetch_add(&m->route[k].bucket[b], 1);
            break;
        }
    atomic_fetch_add(&m->route[k].n, 1);
    atomic_fetch_add(&m->route[k].micros, (unsigned long long)(seconds * 1e6));
}

void srv_metrics_decision(struct srv_metrics *m, enum srv_request type, const char *reason) {
    size_t i;
    if ((unsigned)type > SRV_REQ_DEACTIVATE)
        return;
    for (i = 0; reasons[i] && i < SRV_METRIC_REASONS; i++)
        if (!strcmp(reasons[i], reason ? reason : ""))
            break;
    if (i >= SRV_METRIC_REASONS || !reasons[i])
        i = 12; /* other */
    atomic_fetch_add(&m->decision[type][i], 1);
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_db *d) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    family(f, "tpmlic_server_build_info", "gauge", "The running tpmlic-server: its version.");
    fprintf(f, "tpmlic_server_build_info{version=\"%s\"} 1\n", TPMLIC_VERSION);
    family(f, "tpmlic_server_start_time_seconds", "gauge",
           "When this tpmlic-server started, in seconds since the Unix epoch.");
    fprintf(f, "tpmlic_server_start_time_seconds %lld\n", (long long)m->started);

    family(f, "tpmlic_server_requests_total", "counter",
           "HTTP requests answered, by route and status code.");
    for (int k = 0; k < SRV_ROUTE_KINDS; k++)
        for (int i = 0; i < SRV_METRIC_CODES; i++) {
            int code = atomic_load(&m->route[k].code[i]);
            if (code)
                fprintf(f, "tpmlic_server_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                        kind_names[k], code, atomic_load(&m->route[k].count[i]));
        }
    family(f, "tpmlic_server_request_duration_seconds", "histogram",
           "Time from the request's headers to its answer, by route.");
    for (int k = 0; k < SRV_ROUTE_KINDS; k++) {
        unsigned long long cum = 0, n = atomic_load(&m->route[k].n);
        for (int b = 0; b < SRV_METRIC_BUCKETS; b++) {
            cum += atomic_load(&m->route[k].bucket[b]);
            fprintf(f,
                    "tpmlic_server_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    kind_names[k], bounds[b], cum);
        }
        fprintf(f, "tpmlic_server_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                kind_names[k], n);
        fprintf(f, "tpmlic_server_request_duration_seconds_sum{route=\"%s\"} %.6f\n", kind_names[k],
                (double)atomic_load(&m->route[k].micros) / 1e6);
        fprintf(f, "tpmlic_server_request_duration_seconds_count{route=\"%s\"} %llu\n",
                kind_names[k], n);
    }
    family(f, "tpmlic_server_decisions_total", "counter",
           "Appliance requests decided, by request, result and refusal reason.");
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < SRV_METRIC_REASONS && reasons[i]; i++) {
            unsigned long long v = atomic_load(&m->decision[t][i]);
            if (!v && i)
                continue;
            fprintf(
                f,
                "tpmlic_server_decisions_total{request=\"%s\",result=\"%s\",reason=\"%s\"} %llu\n",
                srv_request_name((enum srv_request)t),
                i == 0                             ? "ok"
                : !strcmp(reasons[i], "malformed") ? "malformed"
                                                   : "refused",
                i == 0 ? "" : reasons[i], v);
        }
    family(f, "tpmlic_server_connections_open", "gauge", "TCP connections open now.");
    fprintf(f, "tpmlic_server_connections_open %u\n", atomic_load(&m->connections_open));
    family(f, "tpmlic_server_connections_refused_total", "counter",
           "Connections closed at once: the address had its limit open, or the total was reached.");
    fprintf(f, "tpmlic_server_connections_refused_total{reason=\"per_address\"} %llu\n",
            atomic_load(&m->refused_per_address));
    fprintf(f, "tpmlic_server_connections_refused_total{reason=\"total\"} %llu\n",
            atomic_load(&m->refused_total));
    family(f, "tpmlic_server_rate_limited_total", "counter",
           "Activations refused with 429: the address exceeded its rate.");
    fprintf(f, "tpmlic_server_rate_limited_total %llu\n", atomic_load(&m->rate_limited));
    family(f, "tpmlic_server_admin_auth_failures_total", "counter",
           "Admin API requests without a valid token (401).");
    fprintf(f, "tpmlic_server_admin_auth_failures_total %llu\n", atomic_load(&m->auth_failures));
    family(f, "tpmlic_server_database_errors_total", "counter",
           "Requests that failed because the database did (500 or 503).");
    fprintf(f, "tpmlic_server_database_errors_total %llu\n", atomic_load(&m->db_errors));
    family(f, "tpmlic_server_webhook_attempts_total", "counter",
           "Webhook delivery attempts made by this instance, by outcome.");
    fprintf(f, "tpmlic_server_webhook_attempts_total{result=\"delivered\"} %llu\n",
            atomic_load(&m->deliveries_ok));
    fprintf(f, "tpmlic_server_webhook_attempts_total{result=\"retry\"} %llu\n",
            atomic_load(&m->deliveries_retry));
    fprintf(f, "tpmlic_server_webhook_attempts_total{result=\"failed\"} %llu\n",
            atomic_load(&m->deliveries_failed));
    family(f, "tpmlic_server_culled_activations_total", "counter",
           "Activations this instance closed under their license's cull policy.");
    fprintf(f, "tpmlic_server_culled_activations_total %llu\n", atomic_load(&m->culled));

    family(f, "tpmlic_server_database_up", "gauge",
           "1 when the database answered this scrape, 0 when it did not.");
    fprintf(f, "tpmlic_server_database_up %d\n", d->db_up ? 1 : 0);
    if (d->db_up) {
        family(f, "tpmlic_server_licenses", "gauge", "Licenses in the database.");
        fprintf(f, "tpmlic_server_licenses %lld\n", (long long)d->licenses);
        family(f, "tpmlic_server_activations_active", "gauge",
               "Active activations, online and offline, of every license.");
        fprintf(f, "tpmlic_server_activations_active %lld\n", (long long)d->activations_active);
        family(f, "tpmlic_server_activations_flagged", "gauge",
               "Active activations with a flag not cleared (a possible clone).");
        fprintf(f, "tpmlic_server_activations_flagged %lld\n", (long long)d->activations_flagged);
        family(f, "tpmlic_server_webhook_deliveries_pending", "gauge",
               "Webhook deliveries waiting to be sent or retried (every instance).");
        fprintf(f, "tpmlic_server_webhook_deliveries_pending %lld\n",
                (long long)d->deliveries_pending);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
