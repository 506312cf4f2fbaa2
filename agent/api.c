/* The socket API (SPEC section 6, docs/api.md): the route table and the
 * handlers. Service endpoints answer from memory under a read lock: no TPM
 * command and no disk I/O on the hot path. Management endpoints that write
 * the TPM are marked blocking so they run off the polling threads. */
#include "agent/api.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/activation.h"
#include "agent/agent.h"
#include "agent/clock.h"
#include "agent/http.h"
#include "agent/licensing.h"
#include "agent/netconf.h"
#include "agent/usage.h"
#include "common/macro.h"
#include "tpm/tpm.h"

#define NOT_AUTHORISED "You are not authorised to perform this action: "

static json_t *time_or_null(time_t t) {
    char buf[32];
    if (!t)
        return json_null();
    license_format_time(t, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *features_json(const struct license_view *l) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->nfeatures; i++)
        json_array_append_new(arr, json_string(l->features[i]));
    return arr;
}

bool agent_offline_mode(const struct agent *a) {
    return a->lic.present && (a->lic.activated_offline || (a->state.flags & STORE_OFFLINE_MODE));
}

/* ---- service endpoints ---------------------------------------------------- */

static void get_status(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    char reason[256];
    enum license_verdict v;
    json_t *o;

    pthread_rwlock_rdlock(&a->lock);
    v = license_decide(&a->lic, NULL, agent_now(), reason, sizeof(reason));
    if (!a->lic.present && a->license_problem[0])
        snprintf(reason, sizeof(reason), "%s", a->license_problem);
    o = json_pack("{s:b, s:b, s:s, s:s, s:o, s:o, s:I, s:o, s:b, s:s}", "licensed", a->lic.present,
                  "valid", v == VERDICT_ALLOWED, "reason", reason, "license_type",
                  cert_license_type_name(a->lic.type), "features", features_json(&a->lic),
                  "subscription_expiry", time_or_null(a->lic.expiry), "secs_remaining",
                  (json_int_t)agent_secs_remaining(a), "grace_period_end",
                  time_or_null(a->lic.online.grace_end), "offline_mode", agent_offline_mode(a),
                  "computer_id", a->computer_id);
    pthread_rwlock_unlock(&a->lock);
    if (o) {
        /* TPM health: read without the TPM lock; a string copy under it */
        pthread_mutex_lock(&a->tpm_lock);
        json_object_set_new(o, "tpm",
                            json_pack("{s:b, s:b, s:s?}", "present", a->tpm_present, "ok",
                                      a->tpm && !a->tpm_error[0], "error",
                                      a->tpm_error[0] ? a->tpm_error : NULL));
        pthread_mutex_unlock(&a->tpm_lock);
    }
    http_respond_json(resp, 200, o);
}

static void post_check(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    json_t *body = NULL, *f;
    const char *feature = NULL;
    char reason[256];
    enum license_verdict v;

    if (http_parse_json_object(req, true, &body, resp) < 0)
        return;
    f = json_object_get(body, "feature");
    if (f && !json_is_string(f) && !json_is_null(f)) {
        json_decref(body);
        http_respond_error(resp, 400, "field 'feature' must be a string");
        return;
    }
    if (json_object_size(body) > (f ? 1u : 0u)) {
        json_decref(body);
        http_respond_error(resp, 400, "unknown field in the body: only 'feature' is accepted");
        return;
    }
    feature = f ? json_string_value(f) : NULL;
    pthread_rwlock_rdlock(&a->lock);
    v = license_decide(&a->lic, feature, agent_now(), reason, sizeof(reason));
    pthread_rwlock_unlock(&a->lock);
    if (v == VERDICT_ALLOWED) {
        atomic_fetch_add(&a->checks_allowed, 1);
        http_respond_json(resp, 200, json_pack("{s:b, s:s?}", "allowed", true, "feature", feature));
    } else {
        atomic_fetch_add(&a->checks_denied, 1);
        http_respond_json(resp, 403,
                          json_pack("{s:b, s:s+, s:i}", "allowed", false, "error", NOT_AUTHORISED,
                                    reason, "code", 403));
    }
    json_decref(body);
}

/* The last successful and the next validation on the wall clock, 0 when
 * none: offline and offline-activated licenses are never checked against a
 * server. Caller holds a->lock (online.mu is taken inside it). */
static void validation_times(struct agent *a, time_t now, time_t *ret_last, time_t *ret_next) {
    time_t due, mono = agent_mono();

    pthread_mutex_lock(&a->online.mu);
    due = a->online.next_due;
    pthread_mutex_unlock(&a->online.mu);
    if (!agent_online_applies(a)) {
        *ret_last = *ret_next = 0;
        return;
    }
    *ret_last = (time_t)a->state.last_success;
    *ret_next = due ? now + (due > mono ? due - mono : 0) : 0;
}

static void get_licensing(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    time_t now = agent_now(), next, last;
    char reason[256];
    enum license_verdict v;
    json_t *o;

    pthread_rwlock_rdlock(&a->lock);
    v = license_decide(&a->lic, NULL, now, reason, sizeof(reason));
    if (!a->lic.present && a->license_problem[0])
        snprintf(reason, sizeof(reason), "%s", a->license_problem);
    validation_times(a, now, &last, &next);
    o = json_pack("{s:o, s:o, s:b, s:o, s:o, s:s, s:b}", "last_check", time_or_null(last),
                  "next_check", time_or_null(next), "valid", v == VERDICT_ALLOWED, "expiry",
                  time_or_null(a->lic.expiry), "grace_period_end",
                  time_or_null(a->lic.online.grace_end), "reason", reason, "offline_mode",
                  agent_offline_mode(a));
    pthread_rwlock_unlock(&a->lock);
    http_respond_json(resp, 200, o);
}

static void get_metrics(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    struct http_stats hs = {0};
    struct usage u_snap;
    size_t open_leases = 0;
    char reason[256], *text = NULL;
    bool valid, tpm_ok;
    long long grace_left;
    time_t now = agent_now(), last, next, expiry, grace_end;
    uint64_t remaining;
    size_t len = 0;
    FILE *f;

    pthread_rwlock_rdlock(&a->lock);
    valid = license_decide(&a->lic, NULL, now, reason, sizeof(reason)) == VERDICT_ALLOWED;
    remaining = agent_secs_remaining(a);
    grace_end = a->lic.online.grace_end;
    grace_left = grace_end > now ? (long long)(grace_end - now) : 0;
    expiry = a->lic.expiry;
    validation_times(a, now, &last, &next);
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_lock(&a->tpm_lock);
    tpm_ok = a->tpm && !a->tpm_error[0];
    pthread_mutex_unlock(&a->tpm_lock);
    if (a->http)
        http_server_stats(a->http, &hs);
    pthread_mutex_lock(&a->usage.lock);
    u_snap.reserved_total = a->usage.reserved_total;
    u_snap.charged_total = a->usage.charged_total;
    u_snap.returned_total = a->usage.returned_total;
    u_snap.counter_writes = a->usage.counter_writes;
    u_snap.pool = a->usage.pool;
    for (size_t i = 0; i < USAGE_LEASES_MAX; i++)
        open_leases += a->usage.leases[i].id[0] != '\0';
    pthread_mutex_unlock(&a->usage.lock);

    f = open_memstream(&text, &len);
    if (!f) {
        http_respond_error(resp, 500, "out of memory");
        return;
    }
    fprintf(
        f,
        "# HELP tpmlic_license_valid 1 when a valid license is applied.\n"
        "# TYPE tpmlic_license_valid gauge\n"
        "tpmlic_license_valid %d\n"
        "# HELP tpmlic_secs_remaining Usage seconds this appliance may still use.\n"
        "# TYPE tpmlic_secs_remaining gauge\n"
        "tpmlic_secs_remaining %llu\n"
        "# HELP tpmlic_checks_total License checks answered, by result.\n"
        "# TYPE tpmlic_checks_total counter\n"
        "tpmlic_checks_total{result=\"allowed\"} %llu\n"
        "tpmlic_checks_total{result=\"denied\"} %llu\n"
        "# HELP tpmlic_tpm_up 1 while the TPM answers.\n"
        "# TYPE tpmlic_tpm_up gauge\n"
        "tpmlic_tpm_up %d\n"
        "# HELP tpmlic_tpm_errors_total TPM commands that failed.\n"
        "# TYPE tpmlic_tpm_errors_total counter\n"
        "tpmlic_tpm_errors_total %llu\n"
        "# HELP tpmlic_validations_total License server validations, by result.\n"
        "# TYPE tpmlic_validations_total counter\n"
        "tpmlic_validations_total{result=\"ok\"} %llu\n"
        "tpmlic_validations_total{result=\"failed\"} %llu\n"
        "tpmlic_validations_total{result=\"refused\"} %llu\n"
        "# HELP tpmlic_grace_period_seconds_left Seconds left in the running grace period, 0 when "
        "none runs.\n"
        "# TYPE tpmlic_grace_period_seconds_left gauge\n"
        "tpmlic_grace_period_seconds_left %lld\n"
        "# HELP tpmlic_grace_period_end_timestamp_seconds When the running grace period ends, 0 "
        "when none runs.\n"
        "# TYPE tpmlic_grace_period_end_timestamp_seconds gauge\n"
        "tpmlic_grace_period_end_timestamp_seconds %lld\n"
        "# HELP tpmlic_license_expiry_timestamp_seconds When the license expires, 0 when never.\n"
        "# TYPE tpmlic_license_expiry_timestamp_seconds gauge\n"
        "tpmlic_license_expiry_timestamp_seconds %lld\n"
        "# HELP tpmlic_validation_last_success_timestamp_seconds The last successful validation "
        "with the license server, 0 when none.\n"
        "# TYPE tpmlic_validation_last_success_timestamp_seconds gauge\n"
        "tpmlic_validation_last_success_timestamp_seconds %lld\n"
        "# HELP tpmlic_validation_next_timestamp_seconds When the next validation is due, 0 when "
        "none is planned.\n"
        "# TYPE tpmlic_validation_next_timestamp_seconds gauge\n"
        "tpmlic_validation_next_timestamp_seconds %lld\n"
        "# HELP tpmlic_usage_seconds_total Usage seconds since start, by what became of them.\n"
        "# TYPE tpmlic_usage_seconds_total counter\n"
        "tpmlic_usage_seconds_total{kind=\"reserved\"} %llu\n"
        "tpmlic_usage_seconds_total{kind=\"charged\"} %llu\n"
        "tpmlic_usage_seconds_total{kind=\"returned\"} %llu\n"
        "# HELP tpmlic_usage_pool_seconds Seconds the TPM counter covers that no lease holds.\n"
        "# TYPE tpmlic_usage_pool_seconds gauge\n"
        "tpmlic_usage_pool_seconds %llu\n"
        "# HELP tpmlic_usage_leases_open Usage leases not committed yet.\n"
        "# TYPE tpmlic_usage_leases_open gauge\n"
        "tpmlic_usage_leases_open %zu\n"
        "# HELP tpmlic_usage_counter_writes_total TPM counter increments (NV writes) since start.\n"
        "# TYPE tpmlic_usage_counter_writes_total counter\n"
        "tpmlic_usage_counter_writes_total %llu\n"
        "# HELP tpmlic_http_requests_total API requests answered.\n"
        "# TYPE tpmlic_http_requests_total counter\n"
        "tpmlic_http_requests_total %llu\n"
        "# HELP tpmlic_http_connections_open API connections open now.\n"
        "# TYPE tpmlic_http_connections_open gauge\n"
        "tpmlic_http_connections_open %u\n",
        valid, (unsigned long long)remaining, (unsigned long long)atomic_load(&a->checks_allowed),
        (unsigned long long)atomic_load(&a->checks_denied), tpm_ok,
        (unsigned long long)atomic_load(&a->tpm_errors),
        (unsigned long long)atomic_load(&a->online.ok),
        (unsigned long long)atomic_load(&a->online.failed),
        (unsigned long long)atomic_load(&a->online.refused), grace_left, (long long)grace_end,
        (long long)expiry, (long long)last, (long long)next,
        (unsigned long long)u_snap.reserved_total, (unsigned long long)u_snap.charged_total,
        (unsigned long long)u_snap.returned_total, (unsigned long long)u_snap.pool, open_leases,
        (unsigned long long)u_snap.counter_writes, (unsigned long long)hs.requests,
        hs.connections_open);
    if (fclose(f) != 0) {
        free(text);
        http_respond_error(resp, 500, "out of memory");
        return;
    }
    http_respond_text(resp, 200, HTTP_CONTENT_TYPE_PROMETHEUS, text);
}

/* ---- management endpoints ------------------------------------------------- */

/* The license status of seed 000's GET /v1/management/license, plus ours.
 * Caller holds a->lock. */
json_t *agent_license_status_json(struct agent *a) {
    const struct license_view *l = &a->lic;
    char reason[256], mins[32], status[300];
    enum license_verdict v = license_decide(l, NULL, agent_now(), reason, sizeof(reason));
    uint64_t remaining = agent_secs_remaining(a);
    char code[80] = "";
    bool connected;

    if (!l->present && a->license_problem[0])
        snprintf(reason, sizeof(reason), "%s", a->license_problem);
    snprintf(mins, sizeof(mins), "%llu", (unsigned long long)(remaining / 60));
    snprintf(status, sizeof(status), "%s", reason);
    if (l->present)
        snprintf(code, sizeof(code), "%s", l->code);
    pthread_mutex_lock(&a->online.mu);
    connected = a->online.connected;
    pthread_mutex_unlock(&a->online.mu);
    return json_pack(
        "{s:b, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:s, s:s, "
        "s:s, s:b, s:o, s:o}",
        "licensed", l->present && v == VERDICT_ALLOWED, "product", l->product,
        "subscription_expiry", time_or_null(l->expiry), "status", status, "message", "",
        "transcription_minutes_allowed", mins, "license_type", cert_license_type_name(l->type),
        "activation_type",
        !l->present            ? ""
        : l->activated_offline ? "offline"
                               : "online",
        "transcription_secs_allowed", (json_int_t)remaining, "transcription_secs_allocated",
        (json_int_t)l->secs_allocated, "connected", connected, "customer_id",
        (json_int_t)l->customer_id, "license_code", code, "computer_id", a->computer_id,
        "error_message", v == VERDICT_ALLOWED ? "" : reason, "offline_mode", agent_offline_mode(a),
        "grace_period_end", time_or_null(l->online.grace_end), "features", features_json(l));
}

static void get_license(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    pthread_rwlock_rdlock(&a->lock);
    http_respond_json(resp, 200, agent_license_status_json(a));
    pthread_rwlock_unlock(&a->lock);
}

static void post_offlinemode(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    json_t *body = NULL, *off;
    struct store_state st;
    int r;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    off = json_object_get(body, "offline");
    if (!json_is_boolean(off) || json_object_size(body) != 1) {
        json_decref(body);
        http_respond_error(resp, 400,
                           "the body must be {\"offline\": true} or {\"offline\": false}");
        return;
    }
    pthread_rwlock_wrlock(&a->lock);
    if (!a->lic.present) {
        http_respond_error(resp, 409, "No license is applied");
        goto out;
    }
    if (!a->lic.offline_allowed) {
        http_respond_error(resp, 403, "Offline mode not enabled for this license");
        goto out;
    }
    if (a->lic.activated_offline && !json_is_true(off)) {
        http_respond_error(resp, 409,
                           "This license was activated offline and stays in offline "
                           "mode");
        goto out;
    }
    st = a->state;
    st.flags =
        json_is_true(off) ? (st.flags | STORE_OFFLINE_MODE) : (st.flags & ~STORE_OFFLINE_MODE);
    pthread_mutex_lock(&a->tpm_lock);
    r = a->tpm ? agent_store_write_state(a->tpm, a->cfg->nv_base, &st) : -ENODEV;
    if (r < 0)
        agent_tpm_failed(a, r, "saving offline mode");
    pthread_mutex_unlock(&a->tpm_lock);
    if (r < 0) {
        http_respond_error(resp, 503, "Cannot change offline mode: the TPM is not available");
        goto out;
    }
    a->state = st;
    http_respond_json(resp, 200, agent_license_status_json(a));
    pthread_rwlock_unlock(&a->lock);
    json_decref(body);
    /* back online: validate now */
    if (!json_is_true(off))
        agent_online_poke(a);
    return;
out:
    pthread_rwlock_unlock(&a->lock);
    json_decref(body);
}

static void post_network(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    json_t *body = NULL, *shown = NULL;
    char err[256];

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    if (agent_netconf_set(a->cfg->state_dir, body, &shown, err, sizeof(err)) < 0)
        http_respond_error(resp, 400, "%s", err);
    else
        http_respond_json(resp, 200, shown);
    json_decref(body);
}

static const struct http_route routes[] = {
    {"GET", "/v1/status", HTTP_PERM_SERVICE, get_status, 0},
    {"POST", "/v1/check", HTTP_PERM_SERVICE, post_check, 0},
    {"POST", "/v1/usage/reserve", HTTP_PERM_SERVICE, agent_post_reserve, HTTP_ROUTE_BLOCKING},
    {"POST", "/v1/usage/commit", HTTP_PERM_SERVICE, agent_post_commit, 0},
    {"GET", "/licensing", HTTP_PERM_SERVICE, get_licensing, 0},
    {"GET", "/metrics", HTTP_PERM_SERVICE, get_metrics, 0},
    {"GET", "/v1/management/license", HTTP_PERM_ADMIN, get_license, 0},
    {"POST", "/v1/management/license", HTTP_PERM_ADMIN, agent_post_license, HTTP_ROUTE_BLOCKING},
    {"DELETE", "/v1/management/license", HTTP_PERM_ADMIN, agent_delete_license,
     HTTP_ROUTE_BLOCKING},
    {"POST", "/v1/management/license/network", HTTP_PERM_ADMIN, post_network, HTTP_ROUTE_BLOCKING},
    {"POST", "/v1/management/license/offlineactivation", HTTP_PERM_ADMIN,
     agent_post_offlineactivation, HTTP_ROUTE_BLOCKING},
    {"PUT", "/v1/management/license/offlineactivation", HTTP_PERM_ADMIN,
     agent_put_offlineactivation, HTTP_ROUTE_BLOCKING},
    {"POST", "/v1/management/license/offlinemode", HTTP_PERM_ADMIN, post_offlinemode,
     HTTP_ROUTE_BLOCKING},
};

const struct http_route *agent_routes(size_t *ret_n) {
    *ret_n = ARRAY_SIZE(routes);
    return routes;
}
