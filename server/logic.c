/* The license server's decisions (docs/online.md): given the database and
 * one parsed request, what to answer. No network here: http.c parses the
 * body, calls srv_handle() and signs what comes back; the unit tests call
 * srv_handle() directly on a real database. Each decision runs in one
 * write transaction (BEGIN IMMEDIATE), so the pool and the epochs never see
 * two requests interleaved. */
#include "server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "common/timefmt.h"
#include "common/hex.h"

#define JSON_INT_MAX 9007199254740992ull /* 2^53: what JSON carries exactly */

const char *srv_request_name(enum srv_request r) {
    switch (r) {
    case SRV_REQ_ACTIVATE:
        return "activate";
    case SRV_REQ_VALIDATE:
        return "validate";
    case SRV_REQ_DEACTIVATE:
        return "deactivate";
    }
    return "unknown";
}

void srv_reply_clear(struct srv_reply *r) {
    json_decref(r->body);
    r->body = NULL;
}

void srv_code_hint(const char *code, char out[16]) {
    if (strlen(code) <= 4)
        snprintf(out, 16, "%s", code);
    else
        snprintf(out, 16, "%.4s...", code);
}

static void cert_activation_clearp(struct cert_activation *a) {
    cert_activation_clear(a);
}

/* ---- answers ------------------------------------------------------------------ */

static json_t *answer_base(const struct srv_ctx *ctx, enum srv_request type, const char *nonce,
                           const char *result) {
    char now[21];
    rfc3339_format(ctx->now, now);
    return json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", 1, "type", srv_request_name(type), "nonce",
                     nonce, "result", result, "time", now);
}

_printf_(6, 7) static int refuse(const struct srv_ctx *ctx, enum srv_request type,
                                 const char *nonce, const char *reason, struct srv_reply *ret,
                                 const char *fmt, ...) {
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ret->body = answer_base(ctx, type, nonce, "refused");
    if (!ret->body || json_object_set_new(ret->body, "reason", json_string(reason)) < 0 ||
        json_object_set_new(ret->body, "message", json_string(msg)) < 0) {
        srv_reply_clear(ret);
        return -ENOMEM;
    }
    ret->status = 403;
    ret->signed_answer = true;
    snprintf(ret->reason, sizeof(ret->reason), "%s", reason);
    return 0;
}

_printf_(2, 3) static int malformed(struct srv_reply *ret, const char *fmt, ...) {
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ret->body = json_pack("{s:s, s:i}", "error", msg, "code", 400);
    if (!ret->body)
        return -ENOMEM;
    ret->status = 400;
    ret->signed_answer = false;
    snprintf(ret->reason, sizeof(ret->reason), "malformed");
    return 0;
}

/* ---- request fields ------------------------------------------------------------ */

static bool is_hex32(const char *s) {
    if (strlen(s) != SRV_ID_HEX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool is_identifier(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* The validate and deactivate request (docs/online.md). */
struct check_req {
    const char *license, *activation, *computer_id, *nonce, *epoch, *next_epoch;
    uint64_t counter, consumed_secs;
    bool refill;
};

/* Field readers: each returns false after filling *err. Unknown fields are
 * ignored (a newer agent may send more); known ones must have their type. */
static bool get_string(json_t *o, const char *key, bool required, const char **out, char *err,
                       size_t errlen) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v) {
        if (required)
            snprintf(err, errlen, "field '%s' is missing", key);
        return !required;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool get_uint(json_t *o, const char *key, uint64_t *out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        snprintf(err, errlen, "field '%s' is missing", key);
        return false;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > JSON_INT_MAX) {
        snprintf(err, errlen, "field '%s' must be a whole number from 0 to 2^53", key);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool parse_check(json_t *o, enum srv_request type, struct check_req *q, char *err,
                        size_t errlen) {
    json_t *v;

    memset(q, 0, sizeof(*q));
    v = json_object_get(o, "v");
    if (!v || !json_is_integer(v) || json_integer_value(v) != 1) {
        snprintf(err, errlen, "field 'v' must be 1");
        return false;
    }
    if (!get_string(o, "license", true, &q->license, err, errlen) ||
        !get_string(o, "activation", true, &q->activation, err, errlen) ||
        !get_string(o, "computer_id", true, &q->computer_id, err, errlen) ||
        !get_string(o, "nonce", true, &q->nonce, err, errlen) ||
        !get_string(o, "epoch", true, &q->epoch, err, errlen) ||
        !get_string(o, "next_epoch", type == SRV_REQ_VALIDATE, &q->next_epoch, err, errlen) ||
        !get_uint(o, "counter", &q->counter, err, errlen) ||
        !get_uint(o, "consumed_secs", &q->consumed_secs, err, errlen))
        return false;
    if (!is_identifier(q->license, CERT_TEXT_MAX)) {
        snprintf(err, errlen, "field 'license' must be 1 to %d letters, digits, '.', '-' or '_'",
                 CERT_TEXT_MAX);
        return false;
    }
    if (!is_identifier(q->activation, CERT_TEXT_MAX)) {
        snprintf(err, errlen, "field 'activation' is not an activation ID");
        return false;
    }
    if (strlen(q->computer_id) != 36 || !is_identifier(q->computer_id, 36)) {
        snprintf(err, errlen, "field 'computer_id' is not a UUID");
        return false;
    }
    if (!is_hex32(q->nonce)) {
        snprintf(err, errlen, "field 'nonce' must be 32 lower-case hex digits");
        return false;
    }
    if (!is_hex32(q->epoch)) {
        snprintf(err, errlen, "field 'epoch' must be 32 lower-case hex digits");
        return false;
    }
    if (q->next_epoch && !is_hex32(q->next_epoch)) {
        snprintf(err, errlen, "field 'next_epoch' must be 32 lower-case hex digits");
        return false;
    }
    v = json_object_get(o, "refill");
    if (type == SRV_REQ_VALIDATE && v) {
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "field 'refill' must be true or false");
            return false;
        }
        q->refill = json_is_true(v);
    }
    return true;
}

/* ---- certificates ------------------------------------------------------------------ */

/* The license certificate of an activation under the license's current
 * terms: activation ID as jti, the activation's counter, base and tick. */
static int sign_certificate(const struct srv_ctx *ctx, const struct srv_license *l,
                            const struct srv_activation *a, char **ret_jws) {
    struct cert_license c = {0};
    char err[256];

    snprintf(c.license, sizeof(c.license), "%s", l->code);
    snprintf(c.product, sizeof(c.product), "%s", l->product);
    c.customer_id = l->customer_id;
    snprintf(c.computer_id, sizeof(c.computer_id), "%s", a->computer_id);
    c.hwid = a->hwid;
    c.hwid_policy = HWID_POLICY_DEFAULT;
    c.type = l->type;
    c.expiry = l->expiry;
    memcpy(c.features, l->features, sizeof(c.features));
    c.nfeatures = l->nfeatures;
    c.secs_allocated = l->secs_allocated;
    /* a certificate never grants more than the license allocates, even when
     * the allocation was lowered after this grant */
    c.secs_granted = a->secs_granted;
    if (c.secs_allocated < c.secs_granted)
        c.secs_allocated = c.secs_granted;
    c.offline_allowed = l->offline_allowed || a->kind == SRV_OFFLINE;
    c.activated_offline = a->kind == SRV_OFFLINE;
    c.tick_secs = a->tick_secs;
    c.counter = a->counter;
    c.iat = ctx->now;
    snprintf(c.jti, sizeof(c.jti), "%s", a->id);
    return cert_license_sign(&c, ctx->key, ret_jws, err, sizeof(err));
}

/* ---- the three requests ----------------------------------------------------------- */

static bool expired(const struct srv_ctx *ctx, const struct srv_license *l) {
    return l->expiry && ctx->now >= l->expiry;
}

static int refuse_terms(const struct srv_ctx *ctx, enum srv_request type, const char *nonce,
                        const struct srv_license *l, struct srv_reply *ret) {
    char when[21];
    if (l->suspended)
        return refuse(ctx, type, nonce, "suspended", ret, "the license is suspended by the vendor");
    rfc3339_format(l->expiry, when);
    return refuse(ctx, type, nonce, "expired", ret, "the license expired on %s", when);
}

static int do_activate(const struct srv_ctx *ctx, json_t *req, struct srv_reply *ret) {
    _cleanup_(cert_activation_clearp) struct cert_activation act = {0};
    _cleanup_free_ char *jws = NULL;
    char msg[512], recomputed[HWID_ID_STRLEN];
    struct srv_license l;
    struct srv_activation a;
    struct srv_pool pool;
    const char *text = NULL;
    enum cert_status s;
    bool existing;
    int r;

    if (!get_string(req, "activation_certificate", true, &text, msg, sizeof(msg)))
        return malformed(ret, "%s", msg);
    s = cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg));
    if (s != CERT_OK)
        return malformed(ret, "the activation certificate is %s", msg);
    if (!cert_activation_consistent(&act, recomputed, msg, sizeof(msg)))
        return malformed(ret, "the activation certificate is refused: %s", msg);
    snprintf(ret->license, sizeof(ret->license), "%s", act.license);

    r = srv_license_get(ctx->db, act.license, &l);
    if (r == -ENOENT)
        return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "unknown_license", ret,
                      "Invalid license code");
    if (r < 0)
        return r;
    if (l.suspended || expired(ctx, &l))
        return refuse_terms(ctx, SRV_REQ_ACTIVATE, act.nonce, &l, ret);

    r = srv_activation_find(ctx->db, l.id, act.computer_id, &act.counter, &a);
    if (r < 0 && r != -ENOENT)
        return r;
    existing = r == 0;
    if (existing) {
        /* This appliance (computer ID and counter) is active already: its
         * activation again, under a fresh epoch; same grant and base. */
        snprintf(ret->activation, sizeof(ret->activation), "%s", a.id);
        if (a.kind == SRV_OFFLINE)
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "offline_only", ret,
                          "this appliance holds an offline activation of this license");
        if (act.counter.value < a.last_counter) {
            char detail[160];
            snprintf(detail, sizeof(detail),
                     "re-activation with counter %" PRIu64 ", below the %" PRIu64
                     " reported before",
                     act.counter.value, a.last_counter);
            r = srv_flag_add(ctx->db, a.id, ctx->now, "counter_went_back", detail);
            if (r < 0)
                return r;
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "counter_went_back", ret, "%s", detail);
        }
        a.last_counter = act.counter.value;
    } else {
        r = srv_pool_get(ctx->db, &l, &pool);
        if (r < 0)
            return r;
        if (pool.active >= l.max_activations)
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "max_activations", ret,
                          "all %u activations of this license are in use", l.max_activations);
        memset(&a, 0, sizeof(a));
        r = hex_random(a.id, 16);
        if (r < 0)
            return r;
        snprintf(ret->activation, sizeof(ret->activation), "%s", a.id);
        a.license_id = l.id;
        a.kind = SRV_ONLINE;
        a.state = SRV_ACTIVE;
        snprintf(a.computer_id, sizeof(a.computer_id), "%s", act.computer_id);
        a.hwid = act.hwid;
        a.counter = act.counter;
        a.tick_secs = l.tick_secs;
        a.secs_granted = l.cache_secs < pool.free ? l.cache_secs : pool.free;
        a.last_counter = act.counter.value;
        a.created = ctx->now;
    }
    r = hex_random(a.epoch, 16);
    if (r < 0)
        return r;
    a.terms = l.terms;
    a.last_seen = ctx->now;
    r = sign_certificate(ctx, &l, &a, &jws);
    if (r < 0)
        return r;
    r = existing ? srv_activation_update(ctx->db, &a) : srv_activation_insert(ctx->db, &a, &act);
    if (r < 0)
        return r;

    ret->body = answer_base(ctx, SRV_REQ_ACTIVATE, act.nonce, "ok");
    if (!ret->body ||
        json_object_update_new(ret->body, json_pack("{s:s, s:s, s:s, s:I, s:i}", "activation", a.id,
                                                    "epoch", a.epoch, "license_certificate", jws,
                                                    "cache_secs", (json_int_t)l.cache_secs,
                                                    "validate_after", SRV_VALIDATE_AFTER)) < 0) {
        srv_reply_clear(ret);
        return -ENOMEM;
    }
    ret->status = 200;
    ret->signed_answer = true;
    return 0;
}

/* The epoch is accepted when it is the current one, or when the server has
 * already moved to the request's next_epoch (the answer to that exchange
 * was lost and the agent retries with the same pair). */
static bool epoch_ok(const struct srv_activation *a, const struct check_req *q) {
    return strcmp(q->epoch, a->epoch) == 0 ||
           (q->next_epoch && strcmp(q->next_epoch, a->epoch) == 0);
}

static int do_check(const struct srv_ctx *ctx, enum srv_request type, json_t *req,
                    struct srv_reply *ret) {
    _cleanup_free_ char *jws = NULL;
    struct srv_license l;
    struct srv_activation a;
    struct check_req q;
    char err[256], detail[200];
    bool new_cert = false;
    int r;

    if (!parse_check(req, type, &q, err, sizeof(err)))
        return malformed(ret, "%s", err);
    snprintf(ret->license, sizeof(ret->license), "%s", q.license);
    snprintf(ret->activation, sizeof(ret->activation), "%s", q.activation);

    r = srv_license_get(ctx->db, q.license, &l);
    if (r == -ENOENT)
        return refuse(ctx, type, q.nonce, "unknown_license", ret, "Invalid license code");
    if (r < 0)
        return r;
    r = srv_activation_get(ctx->db, q.activation, &a);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == -ENOENT || a.license_id != l.id)
        return refuse(ctx, type, q.nonce, "not_active", ret,
                      "this license has no activation %.40s: it was deleted", q.activation);
    if (a.kind == SRV_OFFLINE)
        return refuse(ctx, type, q.nonce, "not_active", ret,
                      "activation %s is an offline activation: it is not validated online", a.id);
    if (strcmp(q.computer_id, a.computer_id) != 0)
        return refuse(ctx, type, q.nonce, "wrong_computer", ret,
                      "activation %s belongs to another computer", a.id);
    if (a.state == SRV_CLOSED) {
        /* A deactivation whose answer was lost, retried: the same answer. */
        if (type == SRV_REQ_DEACTIVATE && epoch_ok(&a, &q) && q.counter == a.last_counter)
            goto answer;
        return refuse(ctx, type, q.nonce, "not_active", ret, "activation %s was deactivated", a.id);
    }
    if (!epoch_ok(&a, &q)) {
        snprintf(detail, sizeof(detail),
                 "%s with epoch %.8s..., not the current one: another copy of this appliance "
                 "has validated since",
                 srv_request_name(type), q.epoch);
        r = srv_flag_add(ctx->db, a.id, ctx->now, "stale_epoch", detail);
        if (r < 0)
            return r;
        return refuse(ctx, type, q.nonce, "stale_epoch", ret,
                      "the epoch is not the current one: another copy of this appliance has "
                      "validated since");
    }
    if (q.counter < a.last_counter) {
        snprintf(detail, sizeof(detail),
                 "%s with counter %" PRIu64 ", below the %" PRIu64 " reported before",
                 srv_request_name(type), q.counter, a.last_counter);
        r = srv_flag_add(ctx->db, a.id, ctx->now, "counter_went_back", detail);
        if (r < 0)
            return r;
        return refuse(ctx, type, q.nonce, "counter_went_back", ret,
                      "the usage counter (%" PRIu64 ") is lower than one reported before (%" PRIu64
                      ")",
                      q.counter, a.last_counter);
    }
    /* Seconds go back to the pool whatever the license's state. */
    if (type == SRV_REQ_VALIDATE && (l.suspended || expired(ctx, &l)))
        return refuse_terms(ctx, type, q.nonce, &l, ret);

    a.last_counter = q.counter;
    a.consumed_secs = q.consumed_secs;
    a.last_seen = ctx->now;
    if (q.next_epoch)
        snprintf(a.epoch, sizeof(a.epoch), "%s", q.next_epoch);

    if (type == SRV_REQ_VALIDATE) {
        uint64_t left = a.secs_granted > q.consumed_secs ? a.secs_granted - q.consumed_secs : 0;
        if (q.refill || left < l.cache_secs / 4) {
            uint64_t target = q.consumed_secs + l.cache_secs;
            if (target > a.secs_granted) {
                struct srv_pool pool;
                uint64_t raise = target - a.secs_granted;
                r = srv_pool_get(ctx->db, &l, &pool);
                if (r < 0)
                    return r;
                if (raise > pool.free)
                    raise = pool.free;
                if (raise) {
                    a.secs_granted += raise;
                    new_cert = true;
                }
            }
        }
        if (a.terms != l.terms) {
            a.terms = l.terms;
            new_cert = true;
        }
        if (new_cert) {
            r = sign_certificate(ctx, &l, &a, &jws);
            if (r < 0)
                return r;
        }
    } else {
        a.state = SRV_CLOSED;
        a.closed = ctx->now;
        a.final_secs = q.consumed_secs < a.secs_granted ? q.consumed_secs : a.secs_granted;
        a.returned_secs = a.secs_granted - a.final_secs;
    }
    r = srv_activation_update(ctx->db, &a);
    if (r < 0)
        return r;

answer:
    ret->body = answer_base(ctx, type, q.nonce, "ok");
    if (!ret->body)
        return -ENOMEM;
    if (type == SRV_REQ_DEACTIVATE) {
        r = json_object_set_new(ret->body, "returned_secs",
                                json_integer((json_int_t)a.returned_secs));
    } else {
        char when[21];
        rfc3339_format(l.expiry, when);
        r = json_object_update_new(
            ret->body,
            json_pack("{s:s, s:s, s:o, s:I, s:I, s:i}", "epoch", a.epoch, "status", "active",
                      "subscription_expiry", l.expiry ? json_string(when) : json_null(),
                      "secs_granted", (json_int_t)a.secs_granted, "cache_secs",
                      (json_int_t)l.cache_secs, "validate_after", SRV_VALIDATE_AFTER));
        if (r == 0 && jws)
            r = json_object_set_new(ret->body, "license_certificate", json_string(jws));
    }
    if (r < 0) {
        srv_reply_clear(ret);
        return -ENOMEM;
    }
    ret->status = 200;
    ret->signed_answer = true;
    return 0;
}

int srv_handle(const struct srv_ctx *ctx, enum srv_request type, json_t *request,
               struct srv_reply *ret) {
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(request))
        return malformed(ret, "the body must be a JSON object");
    if (ctx->write_lock)
        pthread_mutex_lock(ctx->write_lock);
    r = srv_db_begin(ctx->db);
    if (r == 0) {
        r = type == SRV_REQ_ACTIVATE ? do_activate(ctx, request, ret)
                                     : do_check(ctx, type, request, ret);
        /* A refusal that flagged an activation is kept too. */
        if (r == 0 && ret->status != 400)
            r = srv_db_commit(ctx->db);
        else
            srv_db_rollback(ctx->db);
    }
    if (ctx->write_lock)
        pthread_mutex_unlock(ctx->write_lock);
    if (r < 0)
        srv_reply_clear(ret);
    return r;
}

/* ---- offline signing ------------------------------------------------------------------ */

int srv_offline_sign(const struct srv_ctx *ctx, const struct cert_activation *act, uint64_t granted,
                     char **ret_jws, char *reason, size_t reasonlen, char *msg, size_t msglen) {
    struct srv_license l;
    struct srv_activation a;
    struct srv_pool pool;
    char when[21];
    bool existing = false;
    int r;

#define REFUSE(tok, ...)                                                                           \
    do {                                                                                           \
        snprintf(reason, reasonlen, "%s", tok);                                                    \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        srv_db_rollback(ctx->db);                                                                  \
        return 1;                                                                                  \
    } while (0)

    r = srv_db_begin(ctx->db);
    if (r < 0)
        return r;
    r = srv_license_get(ctx->db, act->license, &l);
    if (r == -ENOENT)
        REFUSE("unknown_license", "no license has the code in the activation certificate");
    if (r < 0)
        goto fail;
    if (!l.offline_allowed)
        REFUSE("offline_not_allowed", "the license does not allow offline activation");
    if (l.suspended)
        REFUSE("suspended", "the license is suspended");
    if (expired(ctx, &l)) {
        rfc3339_format(l.expiry, when);
        REFUSE("expired", "the license expired on %s", when);
    }
    r = srv_activation_find(ctx->db, l.id, act->computer_id, &act->counter, &a);
    if (r < 0 && r != -ENOENT)
        goto fail;
    if (r == 0) {
        if (a.kind == SRV_ONLINE)
            REFUSE("online_active",
                   "this appliance has the online activation %s of this license: deactivate it "
                   "first",
                   a.id);
        existing = true; /* the same activation again: same grant and base */
    } else {
        r = srv_pool_get(ctx->db, &l, &pool);
        if (r < 0)
            goto fail;
        if (pool.active >= l.max_activations)
            REFUSE("max_activations", "all %u activations of this license are in use",
                   l.max_activations);
        memset(&a, 0, sizeof(a));
        r = hex_random(a.id, 16);
        if (r < 0)
            goto fail;
        a.license_id = l.id;
        a.kind = SRV_OFFLINE;
        a.state = SRV_ACTIVE;
        snprintf(a.computer_id, sizeof(a.computer_id), "%s", act->computer_id);
        a.hwid = act->hwid;
        a.counter = act->counter;
        a.tick_secs = l.tick_secs;
        if (granted == UINT64_MAX)
            granted = pool.free;
        if (granted > pool.free)
            REFUSE("pool", "%" PRIu64 " seconds asked, the pool has %" PRIu64 " free", granted,
                   pool.free);
        a.secs_granted = granted;
        a.last_counter = act->counter.value;
        a.created = ctx->now;
    }
    a.terms = l.terms;
    a.last_seen = ctx->now;
    r = sign_certificate(ctx, &l, &a, ret_jws);
    if (r < 0) {
        snprintf(msg, msglen, "cannot sign the license certificate");
        goto fail;
    }
    r = existing ? srv_activation_update(ctx->db, &a) : srv_activation_insert(ctx->db, &a, act);
    if (r == 0)
        r = srv_db_commit(ctx->db);
    if (r < 0) {
        free(*ret_jws);
        *ret_jws = NULL;
        goto fail;
    }
    snprintf(reason, reasonlen, "%s", existing ? "existing" : "new");
    snprintf(msg, msglen, "%s", a.id);
    return 0;
fail:
    srv_db_rollback(ctx->db);
    return r;
#undef REFUSE
}
