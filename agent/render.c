/* Views of the license state (render.h). */
#include "agent/render.h"

#include <stdio.h>
#include <string.h>

#include "agent/license.h"
#include "common/macro.h"
#include "common/timefmt.h"

static json_t *time_or_null(time_t t) {
    char buf[RFC3339_BUFLEN];
    if (!t)
        return json_null();
    rfc3339_format(t, buf);
    return json_string(buf);
}

static json_t *features_json(const struct license_view *l) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->nfeatures; i++)
        json_array_append_new(arr, json_string(l->features[i]));
    return arr;
}

/* The verdict now, and the reason: a stored license that was not accepted
 * says why. */
static bool verdict(const struct snapshot *s, time_t now, char *reason, size_t len) {
    enum license_verdict v =
        license_decide(&s->lic, NULL, snapshot_decision_time(s, now), reason, len);
    if (!s->lic.present && s->license_problem[0])
        snprintf(reason, len, "%s", s->license_problem);
    return v == VERDICT_ALLOWED;
}

json_t *render_status(const struct snapshot *s, const struct tpmio_health *tpm, time_t now) {
    char reason[256];
    bool valid = verdict(s, now, reason, sizeof(reason));

    if (valid && tpm->untrusted) {
        valid = false;
        snprintf(reason, sizeof(reason), "the TPM's answers could not be authenticated: %.180s",
                 tpm->error);
    }
    return json_pack("{s:b, s:b, s:s, s:s, s:o, s:o, s:I, s:o, s:b, s:s, s:{s:b, s:b, s:s?}}",
                     "licensed", s->lic.present, "valid", valid, "reason", reason, "license_type",
                     cert_license_type_name(s->lic.type), "features", features_json(&s->lic),
                     "subscription_expiry", time_or_null(s->lic.expiry), "secs_remaining",
                     (json_int_t)s->secs_remaining, "grace_period_end",
                     time_or_null(s->lic.online.grace_end), "offline_mode", s->offline_mode,
                     "computer_id", s->computer_id, "tpm", "present", tpm->present, "ok",
                     tpm->present && tpm->ok && !tpm->error[0], "error",
                     tpm->error[0] ? tpm->error : NULL);
}

/* The last successful and the next validation, 0 when none: offline and
 * offline-activated licenses are never checked against a server. */
static void validation_times(const struct snapshot *s, const struct validator_status *v,
                             time_t *ret_last, time_t *ret_next) {
    *ret_last = s->online_applies ? s->last_success : 0;
    *ret_next = s->online_applies ? v->next_due : 0;
}

json_t *render_licensing(const struct snapshot *s, const struct validator_status *v, time_t now) {
    char reason[256];
    bool valid = verdict(s, now, reason, sizeof(reason));
    time_t last, next;

    validation_times(s, v, &last, &next);
    return json_pack("{s:o, s:o, s:b, s:o, s:o, s:s, s:b}", "last_check", time_or_null(last),
                     "next_check", time_or_null(next), "valid", valid, "expiry",
                     time_or_null(s->lic.expiry), "grace_period_end",
                     time_or_null(s->lic.online.grace_end), "reason", reason, "offline_mode",
                     s->offline_mode);
}

json_t *render_license(const struct snapshot *s, const struct validator_status *v, time_t now) {
    const struct license_view *l = &s->lic;
    char reason[256], mins[32];
    bool valid = verdict(s, now, reason, sizeof(reason));

    snprintf(mins, sizeof(mins), "%llu", (unsigned long long)(s->secs_remaining / 60));
    return json_pack(
        "{s:b, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:s, s:s, "
        "s:s, s:b, s:o, s:o}",
        "licensed", l->present && valid, "product", l->product, "subscription_expiry",
        time_or_null(l->expiry), "status", reason, "message", "", "transcription_minutes_allowed",
        mins, "license_type", cert_license_type_name(l->type), "activation_type",
        !l->present            ? ""
        : l->activated_offline ? "offline"
                               : "online",
        "transcription_secs_allowed", (json_int_t)s->secs_remaining, "transcription_secs_allocated",
        (json_int_t)l->secs_allocated, "connected", v->connected, "customer_id",
        (json_int_t)l->customer_id, "license_code", l->present ? l->code : "", "computer_id",
        s->computer_id, "error_message", valid ? "" : reason, "offline_mode", s->offline_mode,
        "grace_period_end", time_or_null(l->online.grace_end), "features", features_json(l));
}

/* ---- /metrics ------------------------------------------------------------------ */

/* One sample: a metric family's name, type and help are given with its first
 * sample; further samples of the family (other labels) leave them NULL. */
struct sample {
    const char *name;
    const char *type; /* "gauge", "counter"; NULL: same family as before */
    const char *help;
    const char *labels; /* e.g. "result=\"ok\"", or NULL */
    long long value;
};

char *render_metrics(const struct snapshot *s, const struct tpmio_health *tpm,
                     const struct validator_status *v, const struct render_counters *c,
                     time_t now) {
    char reason[256], *text = NULL;
    bool valid = verdict(s, now, reason, sizeof(reason));
    time_t grace_end = s->lic.online.grace_end, last, next;
    size_t len = 0;
    FILE *f;

    validation_times(s, v, &last, &next);
    const struct sample samples[] = {
        {"tpmlic_build_info", "gauge", "The agent's version.", "version=\"" TPMLIC_VERSION "\"", 1},
        {"tpmlic_license_valid", "gauge", "1 when a valid license is applied.", NULL, valid},
        {"tpmlic_usage_remaining_seconds", "gauge", "Usage seconds this appliance may still use.",
         NULL, (long long)s->secs_remaining},
        {"tpmlic_checks_total", "counter", "License checks answered, by result.",
         "result=\"allowed\"", (long long)c->checks_allowed},
        {"tpmlic_checks_total", NULL, NULL, "result=\"denied\"", (long long)c->checks_denied},
        {"tpmlic_tpm_up", "gauge", "1 while the TPM answers.", NULL,
         tpm->present && tpm->ok && !tpm->error[0]},
        {"tpmlic_tpm_errors_total", "counter", "TPM commands that failed.", NULL,
         (long long)tpm->errors},
        {"tpmlic_validations_total", "counter", "License server validations, by result.",
         "result=\"ok\"", (long long)v->ok},
        {"tpmlic_validations_total", NULL, NULL, "result=\"failed\"", (long long)v->failed},
        {"tpmlic_validations_total", NULL, NULL, "result=\"refused\"", (long long)v->refused},
        {"tpmlic_grace_period_remaining_seconds", "gauge",
         "Seconds left in the running grace period, 0 when none runs.", NULL,
         grace_end > now && !s->lic.online.grace_over ? (long long)(grace_end - now) : 0},
        {"tpmlic_grace_period_end_timestamp_seconds", "gauge",
         "When the running grace period ends, 0 when none runs.", NULL, (long long)grace_end},
        {"tpmlic_license_expiry_timestamp_seconds", "gauge",
         "When the license expires, 0 when never.", NULL, (long long)s->lic.expiry},
        {"tpmlic_validation_last_success_timestamp_seconds", "gauge",
         "The last successful validation with the license server, 0 when none.", NULL,
         (long long)last},
        {"tpmlic_validation_next_timestamp_seconds", "gauge",
         "When the next validation is due, 0 when none is planned.", NULL, (long long)next},
        {"tpmlic_usage_seconds_total", "counter",
         "Usage seconds since start, by what became of "
         "them.",
         "kind=\"reserved\"", (long long)s->reserved_total},
        {"tpmlic_usage_seconds_total", NULL, NULL, "kind=\"charged\"", (long long)s->charged_total},
        {"tpmlic_usage_seconds_total", NULL, NULL, "kind=\"returned\"",
         (long long)s->returned_total},
        {"tpmlic_usage_pool_seconds", "gauge",
         "Seconds the TPM counter covers that no lease holds.", NULL, (long long)s->pool},
        {"tpmlic_usage_leases_open", "gauge", "Usage leases not committed yet.", NULL,
         (long long)s->leases_open},
        {"tpmlic_usage_tpm_increments_total", "counter",
         "Increments of the TPM's usage counter (NV writes) since start.", NULL,
         (long long)s->counter_writes},
        {"tpmlic_http_requests_total", "counter", "API requests answered.", NULL,
         (long long)c->http_requests},
        {"tpmlic_http_connections_open", "gauge", "API connections open now.", NULL,
         (long long)c->http_connections_open},
        {"tpmlic_http_connections_refused_total", "counter",
         "API connections refused (503) by the per-uid or the ordinary callers' limit.", NULL,
         (long long)c->http_connections_refused},
        {"tpmlic_http_connections_too_slow_total", "counter",
         "API connections closed because a request did not arrive within the header timeout.", NULL,
         (long long)c->http_connections_too_slow},
    };

    f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(samples); i++) {
        const struct sample *m = &samples[i];
        if (m->type)
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
        fprintf(f, "%s%s%s%s %lld\n", m->name, m->labels ? "{" : "", m->labels ? m->labels : "",
                m->labels ? "}" : "", m->value);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
