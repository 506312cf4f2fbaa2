/* The license server's decisions (docs/online.md): given the database and
 * one parsed request, what to answer. No network here: http.c reads the
 * body, calls srv_handle() and signs what comes back; the unit tests call
 * srv_handle() directly on a real database. Each decision is one
 * transaction: on SQLite under BEGIN IMMEDIATE (the whole database), on
 * PostgreSQL with the rows it changes locked (the license row for an
 * activation, the activation row for a validation or deactivation, then
 * the license row when the pool changes), so the pool and the epochs never
 * see two requests interleaved. The webhook events a decision raises are
 * written in the same transaction (webhook.c). */
#include "server/logic.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/timefmt.h"
#include "server/webhook.h"

#define JSON_INT_MAX 9007199254740992ull /* 2^53: what JSON carries exactly */
#define RETRIES      8                   /* a PostgreSQL transaction that lost a race */

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

static void cert_activation_clearp(struct cert_activation *a) {
    cert_activation_clear(a);
}

/* ---- answers ------------------------------------------------------------------ */

static json_t *answer_base(const struct srv_ctx *ctx, enum srv_request type, const char *nonce,
                           const char *result) {
    char now[RFC3339_BUFLEN];
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
    /* the vendor's systems hear of refused validations and deactivations */
    if (type != SRV_REQ_ACTIVATE) {
        _cleanup_(json_decrefp) json_t *ev = json_pack(
            "{s:s, s:s, s:s, s:s, s:s}", "request", srv_request_name(type), "license", ret->license,
            "activation", ret->activation, "reason", reason, "message", msg);
        int r = ev ? srv_event_emit(ctx->db, ctx->now, SRV_EVENT_VALIDATION_REFUSED, ev) : -ENOMEM;
        if (r < 0) {
            srv_reply_clear(ret);
            return r;
        }
    }
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

/* A flag against an activation (the clone defence), and its event. */
static int flag(const struct srv_ctx *ctx, const struct srv_license *l,
                const struct srv_activation *a, const char *reason, const char *detail) {
    _cleanup_(json_decrefp) json_t *ev = NULL;
    int r = srv_flag_add(ctx->db, a->id, ctx->now, reason, detail);
    if (r < 0)
        return r;
    ev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "license", l->code, "activation", a->id,
                   "computer_id", a->computer_id, "reason", reason, "detail", detail);
    return ev ? srv_event_emit(ctx->db, ctx->now, SRV_EVENT_CLONE_FLAGGED, ev) : -ENOMEM;
}

/* ---- request fields ------------------------------------------------------------ */

/* A field of 32 lower-case hex digits (nonces, epochs). */
static bool hex32(struct cj *c, json_t *o, const char *key, bool required,
                  char out[SRV_ID_HEX + 1]) {
    uint8_t bytes[SRV_ID_HEX / 2];
    if (!cj_string(c, o, key, required ? CJ_REQUIRED : CJ_OPTIONAL, CJ_IDENTIFIER, SRV_ID_HEX, out,
                   SRV_ID_HEX + 1))
        return false;
    if (out[0] && hex_decode_exact(out, bytes, sizeof(bytes)) < 0)
        return cj_fail(c, "field '%s' must be 32 lower-case hex digits", key);
    return true;
}

int srv_parse_check(json_t *o, enum srv_request type, struct srv_check_req *q, char *err,
                    size_t errlen) {
    struct cj c = {.msg = err, .msglen = errlen};
    uint64_t v = 0;

    memset(q, 0, sizeof(*q));
    if (!json_is_object(o)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -EINVAL;
    }
    if (!cj_uint(&c, o, "v", true, 1, 1, &v)) {
        snprintf(err, errlen, "field 'v' must be 1");
        return -EINVAL;
    }
    /* the license code: "missing" named as such, then the one grammar */
    if (!json_object_get(o, "license"))
        cj_fail(&c, "field 'license' is missing");
    cj_license_code(&c, o, "license", true, q->license, sizeof(q->license));
    cj_string(&c, o, "activation", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX, q->activation,
              sizeof(q->activation));
    if (cj_string(&c, o, "computer_id", CJ_REQUIRED, CJ_IDENTIFIER, HWID_ID_STRLEN - 1,
                  q->computer_id, sizeof(q->computer_id)) &&
        strlen(q->computer_id) != HWID_ID_STRLEN - 1)
        cj_fail(&c, "field 'computer_id' is not a UUID");
    hex32(&c, o, "nonce", true, q->nonce);
    hex32(&c, o, "epoch", true, q->epoch);
    hex32(&c, o, "next_epoch", type == SRV_REQ_VALIDATE, q->next_epoch);
    cj_uint(&c, o, "counter", true, 0, JSON_INT_MAX, &q->counter);
    cj_uint(&c, o, "consumed_secs", true, 0, JSON_INT_MAX, &q->consumed_secs);
    if (type == SRV_REQ_VALIDATE)
        cj_bool(&c, o, "refill", false, &q->refill);
    q->has_base = json_object_get(o, "base") != NULL;
    if (q->has_base)
        cj_uint(&c, o, "base", true, 0, JSON_INT_MAX, &q->base);
    q->has_tpm_clock = json_object_get(o, "tpm_clock") != NULL;
    if (q->has_tpm_clock)
        cj_uint(&c, o, "tpm_clock", true, 0, JSON_INT_MAX, &q->tpm_clock);
    q->has_floor = json_object_get(o, "time_floor") != NULL;
    if (q->has_floor)
        cert_counter_from_json(&c, o, "time_floor", "value", &q->floor);
    return c.failed ? -EINVAL : 0;
}

int srv_parse_activate(json_t *o, struct cert_activation *ret, bool *ret_has_tpm_clock,
                       uint64_t *ret_tpm_clock, char *err, size_t errlen) {
    _cleanup_free_ char *text = malloc(CERT_ACTIVATION_MAX + 1);
    struct cj c = {.msg = err, .msglen = errlen};
    char msg[512], recomputed[HWID_ID_STRLEN];

    *ret_has_tpm_clock = false;
    *ret_tpm_clock = 0;
    if (!text)
        return -ENOMEM;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -EINVAL;
    }
    if (!cj_string(&c, o, "activation_certificate", CJ_REQUIRED, CJ_IDENTIFIER, CERT_ACTIVATION_MAX,
                   text, CERT_ACTIVATION_MAX + 1))
        return -EINVAL;
    /* the TPM clock that the certificate's validity window is anchored at */
    if (json_object_get(o, "tpm_clock")) {
        if (!cj_uint(&c, o, "tpm_clock", true, 0, JSON_INT_MAX, ret_tpm_clock))
            return -EINVAL;
        *ret_has_tpm_clock = true;
    }
    if (cert_activation_decode(text, strlen(text), ret, msg, sizeof(msg)) != CERT_OK) {
        snprintf(err, errlen, "the activation certificate is %s", msg);
        return -EINVAL;
    }
    if (!cert_activation_consistent(ret, recomputed, msg, sizeof(msg))) {
        cert_activation_clear(ret);
        snprintf(err, errlen, "the activation certificate is refused: %s", msg);
        return -EINVAL;
    }
    return 0;
}

/* ---- certificates ------------------------------------------------------------------ */

/* What a certificate carries beyond the license's terms and the
 * activation: the validity window of an online answer (anchored at the TPM
 * clock the request sent) and the time floor (the hour counter the request
 * named, at the given time). */
struct sign_extra {
    bool window;
    uint64_t tpm_clock;
    const struct cert_counter *floor; /* NULL: none */
    time_t floor_at;
};

/* The seconds an activation's certificate grants now, and its counter
 * ceiling (cert_license_ceiling): past it, the certificate is dead on the
 * appliance. */
static uint64_t cert_grant(const struct srv_activation *a) {
    return a->secs_granted > a->prior_secs ? a->secs_granted - a->prior_secs : 0;
}

static uint64_t ceiling_of(const struct srv_activation *a) {
    uint32_t tick = a->tick_secs ? a->tick_secs : 1;
    return a->counter.value + (cert_grant(a) + tick - 1) / tick;
}

/* Moves an activation's certificate to a new counter base (docs/online.md,
 * "a new base"). used: the seconds consumed under the old base, or
 * UINT64_MAX to take what the counter covers up to the new base; at most
 * the old certificate's grant, all of it when the new base is past its
 * ceiling. The rest of the grant carries over to the new certificate. */
static void rebase(struct srv_activation *a, uint64_t base, uint64_t used) {
    uint64_t tick = a->tick_secs ? a->tick_secs : 1, cap = cert_grant(a);

    if (base <= a->counter.value)
        return;
    /* within the old range, the counter says what the old base covered up
     * to the new one */
    if (base <= ceiling_of(a) && (base - a->counter.value) * tick < cap)
        cap = (base - a->counter.value) * tick;
    if (used == UINT64_MAX || used > cap)
        used = cap;
    a->prior_secs += used;
    a->counter.value = base;
    if (a->consumed_secs < a->prior_secs)
        a->consumed_secs = a->prior_secs;
}

/* Does the appliance's TPM meet the license's tpm_trust? Checked on the EK
 * certificate the request carries against this server's EK trust store:
 * the agent's own check runs against a store on the appliance, which its
 * root controls. */
static bool tpm_trusted(const struct srv_ctx *ctx, const struct srv_license *l,
                        const struct cert_activation *act, char *msg, size_t msglen) {
    struct cert_license want = {.tpm_trust = l->tpm_trust};
    struct cert_ek_trust t;

    if (l->tpm_trust.kind == CERT_TPM_TRUST_ANY)
        return true;
    if (!ctx->ek_ca_dir) {
        snprintf(msg, msglen,
                 "the license accepts only certified TPMs and this license server has no EK "
                 "trust store (serve --ek-ca-dir)");
        return false;
    }
    if (cert_ek_trust(act->ek_certificate, act->ek_certificate_len, ctx->ek_ca_dir, &t) < 0) {
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    return cert_tpm_trust_met(&want, &t, msg, msglen);
}

/* The license certificate of an activation under the license's current
 * terms: activation ID as jti, the activation's counter, base and tick. */
static int sign_certificate(const struct srv_ctx *ctx, const struct srv_license *l,
                            const struct srv_activation *a, const struct sign_extra *x,
                            char **ret_jws) {
    struct cert_license c = {0};
    uint64_t window = ctx->window_secs ? ctx->window_secs : SRV_WINDOW_DEFAULT;
    char err[256];
    int r;

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
    c.secs_granted = cert_grant(a);
    if (c.secs_allocated < c.secs_granted)
        c.secs_allocated = c.secs_granted;
    c.offline_allowed = l->offline_allowed || a->kind == SRV_OFFLINE;
    c.activated_offline = a->kind == SRV_OFFLINE;
    c.tick_secs = a->tick_secs;
    c.counter = a->counter;
    c.iat = ctx->now;
    snprintf(c.jti, sizeof(c.jti), "%s", a->id);
    c.tpm_trust = l->tpm_trust;
    if (x->floor && x->floor->index) {
        c.time_floor.present = true;
        c.time_floor.counter = *x->floor;
        c.time_floor.at = x->floor_at;
    }
    if (x->window) {
        c.window.present = true;
        c.window.tpm_clock = x->tpm_clock;
        c.window.tpm_clock_until = x->tpm_clock + window * 1000u;
        c.window.until = ctx->now + (time_t)window;
    }
    r = cert_license_sign(&c, ctx->key, ret_jws, err, sizeof(err));
    if (r < 0)
        log_error("activation %s: %s", a->id, err);
    return r;
}

/* A TPM clock lower than the last one reported (beyond what a power loss
 * explains): this appliance's TPM state was restored from a copy, or the
 * request comes from another TPM. */
static bool tpm_clock_went_back(const struct srv_activation *a, uint64_t tpm_clock) {
    return a->last_tpm_clock && tpm_clock + SRV_TPM_CLOCK_SLACK_MS < a->last_tpm_clock;
}

/* ---- the three requests ----------------------------------------------------------- */

static bool expired(const struct srv_ctx *ctx, const struct srv_license *l) {
    return l->expiry && ctx->now >= l->expiry;
}

static int refuse_terms(const struct srv_ctx *ctx, enum srv_request type, const char *nonce,
                        const struct srv_license *l, struct srv_reply *ret) {
    char when[RFC3339_BUFLEN];
    if (l->suspended)
        return refuse(ctx, type, nonce, "suspended", ret, "the license is suspended by the vendor");
    rfc3339_format(l->expiry, when);
    return refuse(ctx, type, nonce, "expired", ret, "the license expired on %s", when);
}

/* Whether a new appliance may take a seat: the active activations and the
 * seats open transfers hold stay within the maximum; a computer an open
 * transfer names takes that seat (marked used by a->id). */
static int admit(const struct srv_ctx *ctx, const struct srv_license *l,
                 const struct srv_pool *pool, const struct srv_activation *a, bool *ret) {
    *ret = false;
    if (pool->reserved) {
        int r = srv_transfer_use(ctx->db, l->id, a->computer_id, a->id, ctx->now);
        if (r == 0) {
            *ret = true;
            return 0;
        }
        if (r != -ENOENT)
            return r;
    }
    *ret = (uint64_t)pool->active + pool->reserved < l->max_activations;
    return 0;
}

static int activation_event(const struct srv_ctx *ctx, const struct srv_license *l,
                            const struct srv_activation *a, bool existing) {
    _cleanup_(json_decrefp) json_t *ev =
        json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:s}", "license", l->code, "activation", a->id,
                  "computer_id", a->computer_id, "kind",
                  a->kind == SRV_OFFLINE ? "offline" : "online", "reactivation", existing,
                  "secs_granted", (json_int_t)a->secs_granted, "hostname", a->hostname);
    return ev ? srv_event_emit(ctx->db, ctx->now, SRV_EVENT_ACTIVATION, ev) : -ENOMEM;
}

static int do_activate(const struct srv_ctx *ctx, json_t *req, struct srv_reply *ret) {
    _cleanup_(cert_activation_clearp) struct cert_activation act = {0};
    _cleanup_free_ char *jws = NULL;
    char msg[512];
    struct srv_license l;
    struct srv_activation a;
    struct srv_pool pool = {0};
    bool existing, admitted = false, has_clock, raised = false;
    uint64_t tpm_clock;
    int r;

    r = srv_parse_activate(req, &act, &has_clock, &tpm_clock, msg, sizeof(msg));
    if (r == -EINVAL)
        return malformed(ret, "%s", msg);
    if (r < 0)
        return r;
    snprintf(ret->license, sizeof(ret->license), "%s", act.license);

    /* the license row is the lock for its pool and its maximum */
    r = srv_license_get(ctx->db, act.license, true, &l);
    if (r == -ENOENT)
        return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "unknown_license", ret,
                      "Invalid license code");
    if (r < 0)
        return r;
    if (l.suspended || expired(ctx, &l))
        return refuse_terms(ctx, SRV_REQ_ACTIVATE, act.nonce, &l, ret);
    if (!tpm_trusted(ctx, &l, &act, msg, sizeof(msg)))
        return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "tpm_not_trusted", ret, "%s", msg);

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
            r = flag(ctx, &l, &a, "counter_went_back", detail);
            if (r < 0)
                return r;
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "counter_went_back", ret, "%s", detail);
        }
        if (has_clock && tpm_clock_went_back(&a, tpm_clock)) {
            char detail[160];
            snprintf(detail, sizeof(detail),
                     "re-activation with TPM clock %" PRIu64 " ms, below the %" PRIu64
                     " ms reported before",
                     tpm_clock, a.last_tpm_clock);
            r = flag(ctx, &l, &a, "tpm_clock_went_back", detail);
            if (r < 0)
                return r;
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "tpm_clock_went_back", ret, "%s",
                          detail);
        }
        a.last_counter = act.counter.value;
        /* The appliance's counter moved on (it lost its certificate, or the
         * certificate ended): the new one starts at the counter now, which
         * the agent requires. Past the old ceiling, all of the old grant
         * counts as used and a fresh refill step is granted. */
        if (act.counter.value > a.counter.value) {
            bool dead = act.counter.value > ceiling_of(&a);
            rebase(&a, act.counter.value, UINT64_MAX);
            if (dead) {
                r = srv_pool_get(ctx->db, &l, ctx->now, false, &pool);
                if (r < 0)
                    return r;
                a.secs_granted += l.cache_secs < pool.free ? l.cache_secs : pool.free;
                raised = true;
            }
        }
    } else {
        r = srv_pool_get(ctx->db, &l, ctx->now, false, &pool);
        if (r < 0)
            return r;
        memset(&a, 0, sizeof(a));
        r = hex_random(a.id, 16);
        if (r < 0)
            return r;
        snprintf(a.computer_id, sizeof(a.computer_id), "%s", act.computer_id);
        r = admit(ctx, &l, &pool, &a, &admitted);
        if (r < 0)
            return r;
        if (!admitted)
            return refuse(ctx, SRV_REQ_ACTIVATE, act.nonce, "max_activations", ret,
                          "all %u activations of this license are in use", l.max_activations);
        snprintf(ret->activation, sizeof(ret->activation), "%s", a.id);
        a.license_id = l.id;
        a.kind = SRV_ONLINE;
        a.state = SRV_ACTIVE;
        a.hwid = act.hwid;
        a.counter = act.counter;
        a.tick_secs = l.tick_secs;
        a.secs_granted = l.cache_secs < pool.free ? l.cache_secs : pool.free;
        a.last_counter = act.counter.value;
        a.created = ctx->now;
        snprintf(a.hostname, sizeof(a.hostname), "%s", act.hostname);
    }
    r = hex_random(a.epoch, 16);
    if (r < 0)
        return r;
    a.terms = l.terms;
    a.last_seen = ctx->now;
    if (has_clock) {
        a.last_tpm_clock = tpm_clock;
        a.last_tpm_clock_at = ctx->now;
    }
    r = sign_certificate(ctx, &l, &a,
                         &(struct sign_extra){.window = has_clock,
                                              .tpm_clock = tpm_clock,
                                              .floor = &act.time_floor,
                                              .floor_at = ctx->now},
                         &jws);
    if (r < 0)
        return r;
    r = existing ? srv_activation_update(ctx->db, &a) : srv_activation_insert(ctx->db, &a, &act);
    if (r == 0)
        r = activation_event(ctx, &l, &a, existing);
    if (r == 0 && (!existing || raised))
        r = srv_event_pool_check(ctx->db, ctx->now, &l, pool.free);
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
static bool epoch_ok(const struct srv_activation *a, const struct srv_check_req *q) {
    return strcmp(q->epoch, a->epoch) == 0 ||
           (q->next_epoch[0] && strcmp(q->next_epoch, a->epoch) == 0);
}

/* Validation: the refill towards consumed + cache_secs, by at most what the
 * pool has free; *new_cert when the grant or the terms changed. */
static int refill(const struct srv_ctx *ctx, const struct srv_license *l, struct srv_activation *a,
                  const struct srv_check_req *q, uint64_t consumed, bool *new_cert,
                  uint64_t *ret_free_before) {
    uint64_t left = a->secs_granted > consumed ? a->secs_granted - consumed : 0;
    uint64_t target = consumed + l->cache_secs;
    struct srv_pool pool;
    uint64_t raise;
    int r;

    *ret_free_before = UINT64_MAX;
    if (!(q->refill || left < l->cache_secs / 4) || target <= a->secs_granted)
        return 0;
    /* the activation row is locked; now the license row */
    r = srv_pool_get(ctx->db, l, ctx->now, true, &pool);
    if (r < 0)
        return r;
    raise = target - a->secs_granted;
    if (raise > pool.free)
        raise = pool.free;
    if (raise) {
        a->secs_granted += raise;
        *new_cert = true;
        *ret_free_before = pool.free;
    }
    return 0;
}

static const char *closed_text(const struct srv_activation *a) {
    if (!strcmp(a->closed_reason, "revoked"))
        return "was revoked by the vendor";
    if (!strcmp(a->closed_reason, "transferred"))
        return "was transferred to another computer";
    if (!strcmp(a->closed_reason, "culled"))
        return "was closed after it was not seen for too long";
    return "was deactivated";
}

/* A report lower than one before: flagged and refused. */
static int went_back(const struct srv_ctx *ctx, enum srv_request type,
                     const struct srv_check_req *q, const struct srv_license *l,
                     const struct srv_activation *a, const char *reason, const char *field,
                     const char *what, uint64_t got, uint64_t had, struct srv_reply *ret) {
    char detail[200];
    int r;

    snprintf(detail, sizeof(detail),
             "%s with %s %" PRIu64 ", below the %" PRIu64 " reported before",
             srv_request_name(type), field, got, had);
    r = flag(ctx, l, a, reason, detail);
    if (r < 0)
        return r;
    return refuse(ctx, type, q->nonce, reason, ret,
                  "%s (%" PRIu64 ") is lower than one reported before (%" PRIu64 ")", what, got,
                  had);
}

static int do_check(const struct srv_ctx *ctx, enum srv_request type, json_t *req,
                    struct srv_reply *ret) {
    _cleanup_free_ char *jws = NULL;
    struct srv_license l;
    struct srv_activation a;
    struct srv_check_req q;
    char err[256], detail[200];
    uint64_t free_before = UINT64_MAX, reported = 0, consumed;
    bool new_cert = false, old_base;
    int r;

    if (srv_parse_check(req, type, &q, err, sizeof(err)) < 0)
        return malformed(ret, "%s", err);
    snprintf(ret->license, sizeof(ret->license), "%s", q.license);
    snprintf(ret->activation, sizeof(ret->activation), "%s", q.activation);

    r = srv_license_get(ctx->db, q.license, false, &l);
    if (r == -ENOENT)
        return refuse(ctx, type, q.nonce, "unknown_license", ret, "Invalid license code");
    if (r < 0)
        return r;
    /* the activation row is the lock for its epoch (compare and set) */
    r = srv_activation_get(ctx->db, q.activation, true, &a);
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
        if (type == SRV_REQ_DEACTIVATE && !strcmp(a.closed_reason, "deactivated") &&
            epoch_ok(&a, &q) && q.counter == a.last_counter)
            goto answer;
        return refuse(ctx, type, q.nonce, "not_active", ret, "activation %s %s", a.id,
                      closed_text(&a));
    }
    if (!epoch_ok(&a, &q)) {
        snprintf(detail, sizeof(detail),
                 "%s with epoch %.8s..., not the current one: another copy of this appliance "
                 "has validated since",
                 srv_request_name(type), q.epoch);
        r = flag(ctx, &l, &a, "stale_epoch", detail);
        if (r < 0)
            return r;
        return refuse(ctx, type, q.nonce, "stale_epoch", ret,
                      "the epoch is not the current one: another copy of this appliance has "
                      "validated since");
    }
    /* A counter, or consumption, reported lower than before: the counter
     * of a restored or cloned TPM; and the server never credits what it
     * cannot check (lower consumption would give back seconds spent). */
    if (q.counter < a.last_counter)
        return went_back(ctx, type, &q, &l, &a, "counter_went_back", "counter", "the usage counter",
                         q.counter, a.last_counter, ret);
    if (q.has_tpm_clock && tpm_clock_went_back(&a, q.tpm_clock))
        return went_back(ctx, type, &q, &l, &a, "tpm_clock_went_back", "tpm_clock", "the TPM clock",
                         q.tpm_clock, a.last_tpm_clock, ret);
    /* The consumption over the activation's life: what earlier bases used
     * and the report, counted from the certificate's base (at most its
     * grant: seconds past it were never handed out). A report from an
     * earlier base (the answer that moved it was lost) says nothing new. */
    old_base = q.has_base && q.base < a.counter.value;
    if (old_base) {
        consumed = a.consumed_secs;
    } else {
        reported = q.consumed_secs < cert_grant(&a) ? q.consumed_secs : cert_grant(&a);
        consumed = a.prior_secs + reported;
        if (consumed < a.consumed_secs)
            return went_back(ctx, type, &q, &l, &a, "consumption_went_back", "consumed_secs",
                             "the consumption reported", consumed - a.prior_secs,
                             a.consumed_secs - a.prior_secs, ret);
    }
    /* Seconds go back to the pool whatever the license's state. */
    if (type == SRV_REQ_VALIDATE && (l.suspended || expired(ctx, &l)))
        return refuse_terms(ctx, type, q.nonce, &l, ret);

    a.last_counter = q.counter;
    a.consumed_secs = consumed;
    a.last_seen = ctx->now;
    if (q.has_tpm_clock) {
        a.last_tpm_clock = q.tpm_clock;
        a.last_tpm_clock_at = ctx->now;
    }
    if (q.next_epoch[0])
        snprintf(a.epoch, sizeof(a.epoch), "%s", q.next_epoch);

    if (type == SRV_REQ_VALIDATE) {
        /* The appliance ended its certificate (a refusal the vendor has
         * since lifted): a new one from the counter now, with what the old
         * one had left. */
        if (!old_base && q.counter > ceiling_of(&a))
            rebase(&a, q.counter, reported);
        r = refill(ctx, &l, &a, &q, consumed, &new_cert, &free_before);
        if (r < 0)
            return r;
        a.terms = l.terms;
        /* every answer renews the signed validity, which the certificate
         * carries */
        r = sign_certificate(ctx, &l, &a,
                             &(struct sign_extra){.window = q.has_tpm_clock,
                                                  .tpm_clock = q.tpm_clock,
                                                  .floor = q.has_floor ? &q.floor : NULL,
                                                  .floor_at = ctx->now},
                             &jws);
        if (r < 0)
            return r;
    } else {
        a.state = SRV_CLOSED;
        a.closed = ctx->now;
        snprintf(a.closed_reason, sizeof(a.closed_reason), "deactivated");
        a.final_secs = consumed < a.secs_granted ? consumed : a.secs_granted;
        a.returned_secs = a.secs_granted - a.final_secs;
    }
    r = srv_activation_update(ctx->db, &a);
    if (r < 0)
        return r;
    if (type == SRV_REQ_DEACTIVATE) {
        _cleanup_(json_decrefp) json_t *ev =
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "license", l.code, "activation", a.id,
                      "computer_id", a.computer_id, "reason", "deactivated", "final_secs",
                      (json_int_t)a.final_secs, "returned_secs", (json_int_t)a.returned_secs);
        r = ev ? srv_event_emit(ctx->db, ctx->now, SRV_EVENT_DEACTIVATION, ev) : -ENOMEM;
    } else if (free_before != UINT64_MAX) {
        r = srv_event_pool_check(ctx->db, ctx->now, &l, free_before);
    }
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
        char when[RFC3339_BUFLEN];
        rfc3339_format(l.expiry, when);
        r = json_object_update_new(
            ret->body,
            json_pack("{s:s, s:s, s:o, s:I, s:I, s:i}", "epoch", a.epoch, "status", "active",
                      "subscription_expiry", l.expiry ? json_string(when) : json_null(),
                      "secs_granted", (json_int_t)cert_grant(&a), "cache_secs",
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
    int r = -EAGAIN;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(request))
        return malformed(ret, "the body must be a JSON object");
    for (int attempt = 0; attempt < RETRIES && r == -EAGAIN; attempt++) {
        srv_reply_clear(ret);
        memset(ret, 0, sizeof(*ret));
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
    }
    if (r < 0)
        srv_reply_clear(ret);
    return r;
}

/* ---- offline signing ------------------------------------------------------------------ */

/* The seconds an offline certificate takes from the license's pool: all
 * that is free when none were asked for (UINT64_MAX). 1, with reason
 * "pool" and msg, when the pool has fewer free; <0 on a database error. */
static int pool_grant(const struct srv_ctx *ctx, const struct srv_license *l, struct srv_pool *pool,
                      uint64_t *granted, char *reason, size_t reasonlen, char *msg, size_t msglen) {
    int r = srv_pool_get(ctx->db, l, ctx->now, false, pool);
    if (r < 0)
        return r;
    if (*granted == UINT64_MAX)
        *granted = pool->free;
    if (*granted > pool->free) {
        snprintf(reason, reasonlen, "pool");
        snprintf(msg, msglen, "%" PRIu64 " seconds asked, the pool has %" PRIu64 " free", *granted,
                 pool->free);
        return 1;
    }
    return 0;
}

int srv_offline_decide(const struct srv_ctx *ctx, const struct cert_activation *act,
                       uint64_t granted, char **ret_jws, char ret_id[CERT_TEXT_MAX + 1],
                       bool *existing, char *reason, size_t reasonlen, char *msg, size_t msglen) {
    struct srv_license l;
    struct srv_activation a;
    struct srv_pool pool = {0};
    char when[RFC3339_BUFLEN], trust_msg[320];
    bool admitted = false, raised = false;
    uint64_t base;
    int r;

#define REFUSE(tok, ...)                                                                           \
    do {                                                                                           \
        snprintf(reason, reasonlen, "%s", tok);                                                    \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        return 1;                                                                                  \
    } while (0)

    *existing = false;
    r = srv_license_get(ctx->db, act->license, true, &l);
    if (r == -ENOENT)
        REFUSE("unknown_license", "no license has the code in the activation certificate");
    if (r < 0)
        return r;
    if (!l.offline_allowed)
        REFUSE("offline_not_allowed", "the license does not allow offline activation");
    if (l.suspended)
        REFUSE("suspended", "the license is suspended");
    if (expired(ctx, &l)) {
        rfc3339_format(l.expiry, when);
        REFUSE("expired", "the license expired on %s", when);
    }
    if (!tpm_trusted(ctx, &l, act, trust_msg, sizeof(trust_msg)))
        REFUSE("tpm_not_trusted", "%s", trust_msg);
    /* the request's date anchors the time floor: it must be recent */
    if (act->time_floor.index && (act->date > ctx->now + CERT_REQUEST_FUTURE_SLACK ||
                                  act->date < ctx->now - CERT_REQUEST_MAX_AGE)) {
        rfc3339_format(act->date, when);
        REFUSE("stale_request",
               "the activation request is dated %s: it must be at most %d days old (ask the "
               "appliance for a new one)",
               when, CERT_REQUEST_MAX_AGE / 86400);
    }
    /* A request made while a certificate was in force names it: the new
     * certificate starts past its ceiling, so applying it ends the old. */
    base = act->counter.value;
    if (act->supersedes_jti[0] && act->supersedes_ceiling + 1 > base)
        base = act->supersedes_ceiling + 1;
    r = srv_activation_find(ctx->db, l.id, act->computer_id, &act->counter, &a);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0) {
        if (a.kind == SRV_ONLINE)
            REFUSE("online_active",
                   "this appliance has the online activation %s of this license: deactivate it "
                   "first",
                   a.id);
        /* the same activation again: same grant and base, unless the
         * appliance's counter moved past the certificate's ceiling or the
         * request supersedes it; then all of its grant counts as used and
         * the new certificate grants seconds of its own */
        *existing = true;
        if (act->counter.value < a.last_counter)
            REFUSE("counter_went_back",
                   "the request's usage counter (%" PRIu64
                   ") is lower than one seen before (%" PRIu64 ")",
                   act->counter.value, a.last_counter);
        a.last_counter = act->counter.value;
        if (base > a.counter.value) {
            bool dead = base > ceiling_of(&a);
            rebase(&a, base, UINT64_MAX);
            if (dead) {
                r = pool_grant(ctx, &l, &pool, &granted, reason, reasonlen, msg, msglen);
                if (r)
                    return r;
                a.secs_granted += granted;
                raised = true;
            }
        }
    } else {
        r = pool_grant(ctx, &l, &pool, &granted, reason, reasonlen, msg, msglen);
        if (r)
            return r;
        memset(&a, 0, sizeof(a));
        r = hex_random(a.id, 16);
        if (r < 0)
            return r;
        snprintf(a.computer_id, sizeof(a.computer_id), "%s", act->computer_id);
        r = admit(ctx, &l, &pool, &a, &admitted);
        if (r < 0)
            return r;
        if (!admitted)
            REFUSE("max_activations", "all %u activations of this license are in use",
                   l.max_activations);
        a.license_id = l.id;
        a.kind = SRV_OFFLINE;
        a.state = SRV_ACTIVE;
        a.hwid = act->hwid;
        a.counter = act->counter;
        a.counter.value = base;
        a.tick_secs = l.tick_secs;
        a.secs_granted = granted;
        a.last_counter = act->counter.value;
        a.created = ctx->now;
        snprintf(a.hostname, sizeof(a.hostname), "%s", act->hostname);
    }
#undef REFUSE
    a.terms = l.terms;
    a.last_seen = ctx->now;
    r = sign_certificate(
        ctx, &l, &a,
        &(struct sign_extra){.floor = &act->time_floor,
                             .floor_at = act->date < ctx->now ? act->date : ctx->now},
        ret_jws);
    if (r < 0) {
        snprintf(msg, msglen, "cannot sign the license certificate");
        return r;
    }
    r = *existing ? srv_activation_update(ctx->db, &a) : srv_activation_insert(ctx->db, &a, act);
    if (r == 0)
        r = activation_event(ctx, &l, &a, *existing);
    if (r == 0 && (!*existing || raised))
        r = srv_event_pool_check(ctx->db, ctx->now, &l, pool.free);
    if (r < 0) {
        free(*ret_jws);
        *ret_jws = NULL;
        return r;
    }
    snprintf(ret_id, CERT_TEXT_MAX + 1, "%s", a.id);
    return 0;
}
