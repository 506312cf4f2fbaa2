/* Webhook events, endpoints and the delivery log in the database
 * (webhook.h). Sending is deliver.c's. */
#include "server/webhook.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/hex.h"
#include "common/macro.h"
#include "common/timefmt.h"

#define RETRY_MAX_SECS 3600

const char *const srv_events[] = {
    SRV_EVENT_ACTIVATION,    SRV_EVENT_DEACTIVATION, SRV_EVENT_VALIDATION_REFUSED,
    SRV_EVENT_CLONE_FLAGGED, SRV_EVENT_POOL_LOW,     NULL,
};

bool srv_event_known(const char *name) {
    for (size_t i = 0; srv_events[i]; i++)
        if (!strcmp(srv_events[i], name))
            return true;
    return false;
}

int srv_event_emit(struct srv_db *db, time_t now, const char *event, json_t *data) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    _cleanup_(json_decrefp) json_t *body = NULL;
    _cleanup_free_ char *text = NULL;
    char id[SRV_ID_HEX + 1];
    int r = hex_random(id, SRV_ID_HEX / 2);

    if (r < 0)
        return r;
    body = json_pack("{s:s, s:s, s:o, s:O}", "id", id, "event", event, "time", srv_time_json(now),
                     "data", data);
    text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!text)
        return -ENOMEM;
    /* one pending delivery per endpoint that subscribed to the event */
    r = srv_sql_prepare(db,
                        "INSERT INTO deliveries (webhook_id, event, payload, created, state, "
                        "next_attempt) SELECT webhook_id, CAST(? AS TEXT), CAST(? AS TEXT), "
                        "CAST(? AS BIGINT), 'pending', CAST(? AS BIGINT) FROM webhook_events "
                        "WHERE event = ?",
                        &st);
    if (r == 0)
        r = srv_sql_bind_text(st, 1, event);
    if (r == 0)
        r = srv_sql_bind_text(st, 2, text);
    if (r == 0)
        r = srv_sql_bind_int(st, 3, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_int(st, 4, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_text(st, 5, event);
    return r < 0 ? r : srv_sql_run(st);
}

int srv_event_pool_check(struct srv_db *db, time_t now, const struct srv_license *l,
                         uint64_t free_before) {
    _cleanup_(json_decrefp) json_t *data = NULL;
    struct srv_pool p;
    int r;

    if (!l->pool_alert_secs || free_before < l->pool_alert_secs)
        return 0; /* no alert, or below it already */
    r = srv_pool_get(db, l, now, false, &p);
    if (r < 0 || p.free >= l->pool_alert_secs)
        return r;
    data =
        json_pack("{s:s, s:I, s:I, s:I, s:I}", "license", l->code, "secs_allocated",
                  (json_int_t)p.allocated, "secs_committed", (json_int_t)p.committed, "secs_free",
                  (json_int_t)p.free, "pool_alert_secs", (json_int_t)l->pool_alert_secs);
    return data ? srv_event_emit(db, now, SRV_EVENT_POOL_LOW, data) : -ENOMEM;
}

/* ---- endpoints ---------------------------------------------------------------------- */

int srv_webhook_insert(struct srv_db *db, const char *url, const char *const *events,
                       const char *description, time_t now, const char *by,
                       char secret[SRV_WEBHOOK_SECRET_HEX + 1], int64_t *ret_id) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int64_t id;
    int r = hex_random(secret, SRV_WEBHOOK_SECRET_HEX / 2);

    if (r < 0)
        return r;
    r = srv_sql_prepare(db,
                        "INSERT INTO webhooks (url, secret, description, created, created_by) "
                        "VALUES (?, ?, ?, ?, ?) RETURNING id",
                        &st);
    if (r == 0)
        r = srv_sql_bind_text(st, 1, url);
    if (r == 0)
        r = srv_sql_bind_text(st, 2, secret);
    if (r == 0)
        r = srv_sql_bind_text(st, 3, description ? description : "");
    if (r == 0)
        r = srv_sql_bind_int(st, 4, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_text(st, 5, by);
    if (r == 0)
        r = srv_sql_step(st);
    if (r < 0)
        goto fail;
    if (r == 0) {
        r = -EIO;
        goto fail;
    }
    id = srv_sql_int(st, 0);
    srv_sql_run(st);
    srv_sql_finalize(st);
    st = NULL;
    for (size_t i = 0; events[i]; i++) {
        r = srv_sql_prepare(db, "INSERT INTO webhook_events (webhook_id, event) VALUES (?, ?)",
                            &st);
        if (r == 0)
            r = srv_sql_bind_int(st, 1, id);
        if (r == 0)
            r = srv_sql_bind_text(st, 2, events[i]);
        if (r == 0)
            r = srv_sql_run(st);
        srv_sql_finalize(st);
        st = NULL;
        if (r < 0)
            goto fail;
    }
    *ret_id = id;
    return 0;
fail:
    secure_wipe(secret, SRV_WEBHOOK_SECRET_HEX + 1);
    return r;
}

static json_t *event_row(struct srv_stmt *st, void *arg, int *err) {
    return json_string(srv_sql_text(st, 0) ?: "");
}

static int events_of(struct srv_db *db, int64_t id, json_t **ret) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int r = srv_sql_prepare(
        db, "SELECT event FROM webhook_events WHERE webhook_id = ? ORDER BY event", &st);
    if (r < 0 || (r = srv_sql_bind_int(st, 1, id)) < 0)
        return r;
    return srv_sql_json_rows(st, event_row, NULL, ret);
}

static json_t *webhook_row(struct srv_stmt *st, void *arg, int *err) {
    json_t *ev = NULL;
    int64_t id = srv_sql_int(st, 0);

    *err = events_of(arg, id, &ev);
    if (*err < 0)
        return NULL;
    return json_pack("{s:I, s:s, s:o, s:s, s:o, s:s}", "id", (json_int_t)id, "url",
                     srv_sql_text(st, 1) ?: "", "events", ev, "description",
                     srv_sql_text(st, 2) ?: "", "created", srv_time_json(srv_sql_int(st, 3)),
                     "created_by", srv_sql_text(st, 4) ?: "");
}

static int webhooks_json(struct srv_db *db, int64_t only, json_t **ret) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int r = srv_sql_prepare(db,
                            only ? "SELECT id, url, description, created, created_by FROM "
                                   "webhooks WHERE id = ?"
                                 : "SELECT id, url, description, created, created_by FROM "
                                   "webhooks ORDER BY id",
                            &st);
    if (r < 0 || (only && (r = srv_sql_bind_int(st, 1, only)) < 0))
        return r;
    return srv_sql_json_rows(st, webhook_row, db, ret);
}

int srv_webhook_get(struct srv_db *db, int64_t id, json_t **ret) {
    json_t *a = NULL;
    int r = webhooks_json(db, id, &a);
    return r < 0 ? r : srv_json_single(a, ret);
}

int srv_webhook_list(struct srv_db *db, json_t **ret) {
    return webhooks_json(db, 0, ret);
}

int srv_webhook_delete(struct srv_db *db, int64_t id) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    int r = srv_sql_prepare(db, "DELETE FROM webhooks WHERE id = ?", &st);
    if (r < 0 || (r = srv_sql_bind_int(st, 1, id)) < 0 || (r = srv_sql_run(st)) < 0)
        return r;
    return srv_sql_changes(st) ? 0 : -ENOENT;
}

/* ---- the delivery log ------------------------------------------------------------------ */

static json_t *attempt_row(struct srv_stmt *st, void *arg, int *err) {
    return json_pack("{s:o, s:I, s:I, s:s, s:I}", "time", srv_time_json(srv_sql_int(st, 0)),
                     "unix_time", (json_int_t)srv_sql_int(st, 0), "status",
                     (json_int_t)srv_sql_int(st, 1), "error", srv_sql_text(st, 2) ?: "",
                     "duration_ms", (json_int_t)srv_sql_int(st, 3));
}

static json_t *delivery_row(struct srv_stmt *st, void *arg, int *err) {
    _cleanup_stmt_ struct srv_stmt *at = NULL;
    json_t *attempts = NULL, *payload;
    const char *state = srv_sql_text(st, 5) ?: "";
    int64_t id = srv_sql_int(st, 0);

    *err = srv_sql_prepare(arg,
                           "SELECT time, status, error, duration_ms FROM delivery_attempts "
                           "WHERE delivery_id = ? ORDER BY id",
                           &at);
    if (*err == 0)
        *err = srv_sql_bind_int(at, 1, id);
    if (*err == 0)
        *err = srv_sql_json_rows(at, attempt_row, NULL, &attempts);
    if (*err < 0)
        return NULL;
    payload = json_loads(srv_sql_text(st, 3) ?: "", 0, NULL);
    return json_pack(
        "{s:I, s:I, s:s, s:o, s:o, s:s, s:I, s:o, s:I, s:s, s:o, s:o}", "id", (json_int_t)id,
        "webhook_id", (json_int_t)srv_sql_int(st, 1), "event", srv_sql_text(st, 2) ?: "", "payload",
        payload ? payload : json_null(), "created", srv_time_json(srv_sql_int(st, 4)), "state",
        state, "attempts", (json_int_t)srv_sql_int(st, 6), "next_attempt",
        strcmp(state, "pending") ? json_null() : srv_time_json(srv_sql_int(st, 7)), "last_status",
        (json_int_t)srv_sql_int(st, 8), "last_error", srv_sql_text(st, 9) ?: "", "finished",
        srv_time_json(srv_sql_int(st, 10)), "attempt_log", attempts);
}

int srv_delivery_list(struct srv_db *db, const struct srv_delivery_filter *f, json_t **ret) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    char sql[512];
    int r, n = 0;

    snprintf(sql, sizeof(sql),
             "SELECT id, webhook_id, event, payload, created, state, attempts, next_attempt, "
             "last_status, last_error, finished FROM deliveries WHERE 1 = 1%s%s ORDER BY id DESC "
             "LIMIT ?",
             f->webhook_id ? " AND webhook_id = ?" : "",
             f->state && *f->state ? " AND state = ?" : "");
    r = srv_sql_prepare(db, sql, &st);
    if (r == 0 && f->webhook_id)
        r = srv_sql_bind_int(st, ++n, f->webhook_id);
    if (r == 0 && f->state && *f->state)
        r = srv_sql_bind_text(st, ++n, f->state);
    if (r == 0)
        r = srv_sql_bind_int(st, ++n, f->limit ? f->limit : 100);
    return r < 0 ? r : srv_sql_json_rows(st, delivery_row, db, ret);
}

void srv_deliveries_free(struct srv_delivery *d, size_t n) {
    if (!d)
        return;
    for (size_t i = 0; i < n; i++) {
        secure_wipe(d[i].secret, sizeof(d[i].secret));
        free(d[i].payload);
    }
    free(d);
}

int srv_delivery_claim(struct srv_db *db, time_t now, unsigned hold_secs, unsigned max,
                       struct srv_delivery **ret, size_t *ret_n) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    struct srv_delivery *v = calloc(max ? max : 1, sizeof(*v));
    size_t n = 0;
    int r;

    if (!v)
        return -ENOMEM;
    r = srv_db_begin(db);
    if (r < 0)
        goto fail;
    /* instances sharing PostgreSQL skip the rows another one has locked */
    r = srv_sql_prepare(db,
                        "SELECT d.id, d.webhook_id, d.event, d.payload, d.attempts, w.url, "
                        "w.secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                        "WHERE d.state = 'pending' AND d.next_attempt <= ? AND "
                        "d.claimed_until <= ? ORDER BY d.next_attempt, d.id LIMIT ? "
                        "FOR UPDATE OF d SKIP LOCKED",
                        &st);
    if (r == 0)
        r = srv_sql_bind_int(st, 1, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_int(st, 2, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_int(st, 3, max);
    while (r == 0 && n < max && (r = srv_sql_step(st)) == 1) {
        struct srv_delivery *d = &v[n++];
        r = 0;
        d->id = srv_sql_int(st, 0);
        d->webhook_id = srv_sql_int(st, 1);
        snprintf(d->event, sizeof(d->event), "%s", srv_sql_text(st, 2) ?: "");
        d->payload = strdup(srv_sql_text(st, 3) ?: "");
        d->attempts = (unsigned)srv_sql_uint(st, 4);
        snprintf(d->url, sizeof(d->url), "%s", srv_sql_text(st, 5) ?: "");
        snprintf(d->secret, sizeof(d->secret), "%s", srv_sql_text(st, 6) ?: "");
        if (!d->payload)
            r = -ENOMEM;
    }
    srv_sql_finalize(st);
    st = NULL;
    for (size_t i = 0; r >= 0 && i < n; i++) {
        r = srv_sql_prepare(db, "UPDATE deliveries SET claimed_until = ? WHERE id = ?", &st);
        if (r == 0)
            r = srv_sql_bind_int(st, 1, (int64_t)now + hold_secs);
        if (r == 0)
            r = srv_sql_bind_int(st, 2, v[i].id);
        if (r == 0)
            r = srv_sql_run(st);
        srv_sql_finalize(st);
        st = NULL;
    }
    if (r >= 0)
        r = srv_db_commit(db);
    else
        srv_db_rollback(db);
    if (r < 0)
        goto fail;
    *ret = v;
    *ret_n = n;
    return 0;
fail:
    srv_deliveries_free(v, n);
    return r;
}

int srv_delivery_record(struct srv_db *db, const struct srv_delivery *d, time_t now, int status,
                        const char *error, unsigned duration_ms, unsigned retry_secs,
                        unsigned max_attempts) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    unsigned attempt = d->attempts + 1;
    bool ok = status >= 200 && status < 300;
    const char *state = ok ? "delivered" : attempt >= max_attempts ? "failed" : "pending";
    uint64_t wait = retry_secs;
    int r;

    for (unsigned i = 1; i < attempt && wait < RETRY_MAX_SECS; i++)
        wait *= 2;
    if (wait > RETRY_MAX_SECS)
        wait = RETRY_MAX_SECS;
    r = srv_db_begin(db);
    if (r < 0)
        return r;
    r = srv_sql_prepare(db,
                        "INSERT INTO delivery_attempts (delivery_id, time, status, error, "
                        "duration_ms) VALUES (?, ?, ?, ?, ?)",
                        &st);
    if (r == 0)
        r = srv_sql_bind_int(st, 1, d->id);
    if (r == 0)
        r = srv_sql_bind_int(st, 2, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_int(st, 3, status);
    if (r == 0)
        r = srv_sql_bind_text(st, 4, error);
    if (r == 0)
        r = srv_sql_bind_int(st, 5, duration_ms);
    if (r == 0)
        r = srv_sql_run(st);
    srv_sql_finalize(st);
    st = NULL;
    if (r == 0)
        r = srv_sql_prepare(db,
                            "UPDATE deliveries SET state = ?, attempts = ?, next_attempt = ?, "
                            "claimed_until = 0, last_status = ?, last_error = ?, finished = ? "
                            "WHERE id = ?",
                            &st);
    if (r == 0)
        r = srv_sql_bind_text(st, 1, state);
    if (r == 0)
        r = srv_sql_bind_int(st, 2, attempt);
    if (r == 0)
        r = srv_sql_bind_int(st, 3, (int64_t)now + (int64_t)wait);
    if (r == 0)
        r = srv_sql_bind_int(st, 4, status);
    if (r == 0)
        r = srv_sql_bind_text(st, 5, error);
    if (r == 0)
        r = srv_sql_bind_int(st, 6, strcmp(state, "pending") ? (int64_t)now : 0);
    if (r == 0)
        r = srv_sql_bind_int(st, 7, d->id);
    if (r == 0)
        r = srv_sql_run(st);
    if (r < 0) {
        srv_db_rollback(db);
        return r;
    }
    return srv_db_commit(db);
}

int srv_delivery_pending(struct srv_db *db, int64_t *ret) {
    return srv_sql_scalar(db, "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'", ret, 0);
}

int srv_webhook_signature(const char *secret, time_t t, const char *body, char *out,
                          size_t outlen) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    _cleanup_free_ char *signed_text = NULL;

    if (asprintf(&signed_text, "%lld.%s", (long long)t, body) < 0)
        return -ENOMEM;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signed_text,
              strlen(signed_text), md, &mdlen))
        return -EIO;
    hex_encode(md, mdlen, hex);
    snprintf(out, outlen, "t=%lld,v1=%s", (long long)t, hex);
    return 0;
}
