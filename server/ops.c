/* The administrative operations (ops.h), shared by the admin commands and
 * the admin REST API: check the input, one transaction (run again when
 * PostgreSQL says it lost a race), the audit entry and the webhook events
 * inside it, the result as JSON. */
#include "server/ops.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "common/licensecode.h"
#include "common/macro.h"
#include "common/timefmt.h"
#include "server/audit.h"
#include "server/limits.h"
#include "server/logic.h"
#include "server/webhook.h"

#define JSON_INT_MAX 9007199254740992ull
#define RETRIES      8

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)

static void cert_activation_clearp(struct cert_activation *a) {
    cert_activation_clear(a);
}

/* ---- errors ----------------------------------------------------------------------- */

_printf_(4, 5) static int fail(struct srv_operr *err, int r, const char *field, const char *fmt,
                               ...) {
    va_list ap;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return r;
}

static int db_fail(struct srv_op *op, struct srv_operr *err, int r, const char *what) {
    if (r == -ENOMEM)
        return fail(err, r, NULL, "out of memory");
    return fail(err, r < 0 ? r : -EIO, NULL, "cannot %s: %s", what, srv_db_errmsg(op->db));
}

void srv_operr_text(const struct srv_operr *e, enum srv_field_style style, char *out,
                    size_t outlen) {
    size_t o = 0;

    if (!outlen)
        return;
    for (const char *p = e->msg; *p && o + 1 < outlen; p++) {
        if (p[0] == '%' && p[1] == 'F') {
            char name[40];
            if (style == SRV_FIELD_OPTION) {
                snprintf(name, sizeof(name), "--%s", e->field);
                for (char *c = name + 2; *c; c++)
                    if (*c == '_')
                        *c = '-';
            } else {
                snprintf(name, sizeof(name), "'%s'", e->field);
            }
            o += (size_t)snprintf(out + o, outlen - o, "%s", name);
            if (o >= outlen)
                o = outlen - 1;
            p++;
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
}

/* ---- the rules of numeric terms ------------------------------------------------------- */

static const struct term_rule {
    const char *field;
    uint64_t min, max;
    const char *rule; /* after the field's name */
} term_rules[] = {
    {"customer_id", 0, JSON_INT_MAX, "must be a whole number"},
    {"secs_allocated", 0, JSON_INT_MAX, "must be a whole number"},
    {"cache_secs", 1, JSON_INT_MAX, "must be a whole number above 0"},
    {"tick_secs", 1, 86400, "must be 1 to 86400"},
    {"max_activations", 0, 1000000, "must be 0 to 1000000"},
    {"max_transfers", 0, 1000000, "must be 0 to 1000000"},
    {"cull_days", 0, 36500, "must be 0 (never) to 36500 days"},
    {"pool_alert_secs", 0, JSON_INT_MAX, "must be a whole number"},
    {"secs_granted", 0, JSON_INT_MAX, "must be a whole number"},
};

static const struct term_rule *term_rule(const char *field) {
    for (size_t i = 0; i < ARRAY_SIZE(term_rules); i++)
        if (!strcmp(term_rules[i].field, field))
            return &term_rules[i];
    return NULL;
}

int srv_term_check(const char *field, uint64_t v, struct srv_operr *err) {
    const struct term_rule *t = term_rule(field);
    if (!t)
        return fail(err, -EINVAL, field, "%%F is not a term");
    if (v < t->min || v > t->max)
        return fail(err, -EINVAL, field, "%%F %s", t->rule);
    return 0;
}

int srv_term_parse(const char *field, const char *text, uint64_t *ret, struct srv_operr *err) {
    const struct term_rule *t = term_rule(field);
    uint64_t v = 0;

    if (!t)
        return fail(err, -EINVAL, field, "%%F is not a term");
    if (!text || !*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 19)
        return fail(err, -EINVAL, field, "%%F %s", t->rule);
    for (const char *p = text; *p; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (srv_term_check(field, v, err) < 0)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------- */

static const char *license_state(const struct srv_license *l, time_t now) {
    if (l->suspended)
        return "suspended";
    if (l->expiry && now >= l->expiry)
        return "expired";
    return "active";
}

json_t *srv_license_json(const struct srv_license *l, const struct srv_pool *p, time_t now) {
    json_t *feats = json_array();
    char trust[CERT_TPM_TRUST_KEYS_MAX * 65 + 16];

    for (size_t i = 0; feats && i < l->nfeatures; i++)
        json_array_append_new(feats, json_string(l->features[i]));
    cert_tpm_trust_format(&l->tpm_trust, trust, sizeof(trust));
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:I, s:I, s:i, s:i, s:b, s:b, s:s, s:o, s:o, "
                     "s:{s:I, s:I, s:I}, s:i, s:i, s:i, s:i, s:i, s:I, s:s}",
                     "code", l->code, "product", l->product, "customer_id",
                     (json_int_t)l->customer_id, "license_type", cert_license_type_name(l->type),
                     "subscription_expiry", srv_time_json(l->expiry), "features", feats,
                     "secs_allocated", (json_int_t)l->secs_allocated, "cache_secs",
                     (json_int_t)l->cache_secs, "tick_secs", (int)l->tick_secs, "max_activations",
                     (int)l->max_activations, "offline_allowed", l->offline_allowed, "suspended",
                     l->suspended, "state", license_state(l, now), "created",
                     srv_time_json(l->created), "updated", srv_time_json(l->updated), "pool",
                     "allocated", (json_int_t)p->allocated, "committed", (json_int_t)p->committed,
                     "free", (json_int_t)p->free, "active_activations", (int)p->active,
                     "reserved_seats", (int)p->reserved, "max_transfers", (int)l->max_transfers,
                     "transfers_used", (int)l->transfers_used, "cull_days", (int)l->cull_days,
                     "pool_alert_secs", (json_int_t)l->pool_alert_secs, "tpm_trust", trust);
}

json_t *srv_activation_json(const struct srv_activation *a, const char *license_code,
                            json_t *flags) {
    char name[2 * CERT_COUNTER_NAME_MAX + 1], index[11];
    json_t *o;

    hex_encode(a->counter.name, a->counter.name_len, name);
    snprintf(index, sizeof(index), "0x%08x", a->counter.index);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:{s:s, s:s, s:I}, s:I, s:i, "
                  "s:o, s:o, s:o, s:o, s:s, s:i, s:b}",
                  "id", a->id, "license", license_code ? license_code : "", "computer_id",
                  a->computer_id, "kind", a->kind == SRV_OFFLINE ? "offline" : "online", "state",
                  a->state == SRV_CLOSED ? "closed" : "active", "secs_granted",
                  (json_int_t)a->secs_granted, "consumed_secs", (json_int_t)a->consumed_secs,
                  "returned_secs", (json_int_t)a->returned_secs, "last_counter",
                  (json_int_t)a->last_counter, "counter", "index", index, "name", name, "base",
                  (json_int_t)a->counter.value, "final_secs", (json_int_t)a->final_secs,
                  "tick_secs", (int)a->tick_secs, "created", srv_time_json(a->created), "last_seen",
                  srv_time_json(a->last_seen), "closed", srv_time_json(a->closed), "closed_reason",
                  a->closed_reason[0] ? json_string(a->closed_reason) : json_null(), "hostname",
                  a->hostname, "flag_count", (int)a->nflags, "flagged", a->nflags_open > 0);
    /* consumption under earlier counter bases, and the TPM clock last seen */
    if (o &&
        (json_object_set_new(o, "prior_secs", json_integer((json_int_t)a->prior_secs)) < 0 ||
         json_object_set_new(o, "last_tpm_clock", json_integer((json_int_t)a->last_tpm_clock)) <
             0 ||
         json_object_set_new(o, "last_tpm_clock_at", srv_time_json(a->last_tpm_clock_at)) < 0)) {
        json_decref(o);
        o = NULL;
    }
    if (o && flags)
        json_object_set_new(o, "flags", flags);
    else
        json_decref(flags);
    return o;
}

/* ---- transactions ---------------------------------------------------------------------- */

typedef int (*op_body)(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err);

/* Runs body in a transaction (again when it lost a race), committing when
 * it returns 0. */
static int in_tx(struct srv_op *op, op_body body, void *arg, json_t **ret, struct srv_operr *err) {
    int r = -EAGAIN;

    memset(err, 0, sizeof(*err));
    for (int attempt = 0; attempt < RETRIES && r == -EAGAIN; attempt++) {
        json_t *out = NULL;
        if (op->write_lock)
            pthread_mutex_lock(op->write_lock);
        r = srv_db_begin(op->db);
        if (r < 0) {
            r = db_fail(op, err, r, "lock the database");
        } else {
            r = body(op, arg, &out, err);
            if (r == 0) {
                r = srv_db_commit(op->db);
                if (r < 0)
                    r = db_fail(op, err, r, "commit the change");
            } else {
                srv_db_rollback(op->db);
            }
        }
        if (op->write_lock)
            pthread_mutex_unlock(op->write_lock);
        if (r == 0)
            *ret = out;
        else
            json_decref(out);
    }
    return r;
}

/* ---- licenses ------------------------------------------------------------------------------- */

/* Signs a made-up certificate under these terms with a throwaway key: the
 * license must be issuable (certificates within 1,536 bytes) before it is
 * stored. */
static int check_issuable(const struct srv_license *l, struct srv_operr *err) {
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    _cleanup_free_ char *jws = NULL;
    struct cert_license c = {0};
    char msg[300];

    if (!k)
        return fail(err, -ENOMEM, NULL, "out of memory");
    snprintf(c.license, sizeof(c.license), "%s", l->code);
    snprintf(c.product, sizeof(c.product), "%s", l->product);
    c.customer_id = l->customer_id;
    snprintf(c.computer_id, sizeof(c.computer_id), "00000000-0000-8000-8000-000000000000");
    for (int i = 0; i < HWID_COMPONENT_MAX; i++) {
        memset(c.hwid.digest[i], 0xab, HWID_DIGEST_LEN);
        c.hwid.present[i] = true;
    }
    c.type = l->type;
    c.expiry = l->expiry;
    memcpy(c.features, l->features, sizeof(c.features));
    c.nfeatures = l->nfeatures;
    c.secs_allocated = c.secs_granted = l->secs_allocated;
    c.offline_allowed = c.activated_offline = true;
    c.tick_secs = l->tick_secs;
    c.counter.index = 0x01ffffff;
    c.counter.name_len = CERT_COUNTER_NAME_MAX;
    memset(c.counter.name, 0xcd, CERT_COUNTER_NAME_MAX);
    c.counter.value = JSON_INT_MAX;
    c.iat = (time_t)JSON_INT_MAX / 2;
    memset(c.jti, 'f', SRV_ID_HEX);
    if (cert_license_sign(&c, k, &jws, msg, sizeof(msg)) < 0)
        return fail(err, -EPERM, NULL,
                    "refused: no certificate could be issued for this license: %s", msg);
    return 0;
}

static bool is_feature_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= CERT_FEATURE_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int uint_term(const char *field, bool has, uint64_t v, struct srv_operr *err) {
    return has ? srv_term_check(field, v, err) : 0;
}

/* The terms given in in, checked, into l (create: all of them). */
static int apply_terms(const struct srv_license_input *in, struct srv_license *l, bool create,
                       time_t now, struct srv_operr *err) {
    int r;

    if (!create && (in->has_type || in->has_customer_id || in->has_tick_secs))
        return fail(err, -EINVAL,
                    in->has_type          ? "license_type"
                    : in->has_customer_id ? "customer_id"
                                          : "tick_secs",
                    "%%F is fixed once the license is created");
    if (in->product) {
        size_t n = strlen(in->product);
        if (n == 0 || n > CERT_TEXT_MAX)
            return fail(err, -EINVAL, "product", "%%F must be 1 to %d characters", CERT_TEXT_MAX);
        for (const unsigned char *p = (const unsigned char *)in->product; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return fail(err, -EINVAL, "product", "%%F has a control character");
        snprintf(l->product, sizeof(l->product), "%s", in->product);
    }
    if ((r = uint_term("customer_id", in->has_customer_id, in->customer_id, err)) < 0 ||
        (r = uint_term("secs_allocated", in->has_secs_allocated, in->secs_allocated, err)) < 0 ||
        (r = uint_term("cache_secs", in->has_cache_secs, in->cache_secs, err)) < 0 ||
        (r = uint_term("tick_secs", in->has_tick_secs, in->tick_secs, err)) < 0 ||
        (r = uint_term("max_activations", in->has_max_activations, in->max_activations, err)) < 0 ||
        (r = uint_term("max_transfers", in->has_max_transfers, in->max_transfers, err)) < 0 ||
        (r = uint_term("cull_days", in->has_cull_days, in->cull_days, err)) < 0 ||
        (r = uint_term("pool_alert_secs", in->has_pool_alert_secs, in->pool_alert_secs, err)) < 0)
        return r;
    if (in->has_customer_id)
        l->customer_id = (long long)in->customer_id;
    if (in->has_type)
        l->type = in->type;
    if (in->has_expiry) {
        char when[RFC3339_BUFLEN];
        rfc3339_format(in->expiry, when);
        if (in->expiry && in->expiry <= now)
            return fail(err, -EPERM, "expiry", "%%F %s is in the past", when);
        l->expiry = in->expiry;
    }
    if (in->has_features) {
        if (in->nfeatures > CERT_FEATURES_MAX)
            return fail(err, -EINVAL, "features", "%%F: at most %d features", CERT_FEATURES_MAX);
        for (size_t i = 0; i < in->nfeatures; i++) {
            if (!is_feature_name(in->features[i]))
                return fail(err, -EINVAL, "features",
                            "%%F: '%.40s' must be letters, digits, '.', '-' or '_' (at most %d)",
                            in->features[i], CERT_FEATURE_MAX);
            for (size_t j = 0; j < i; j++)
                if (!strcmp(in->features[i], in->features[j]))
                    return fail(err, -EINVAL, "features", "%%F: '%s' is listed twice",
                                in->features[i]);
        }
        memset(l->features, 0, sizeof(l->features));
        for (size_t i = 0; i < in->nfeatures; i++)
            snprintf(l->features[i], sizeof(l->features[i]), "%s", in->features[i]);
        l->nfeatures = in->nfeatures;
    }
    if (in->has_secs_allocated)
        l->secs_allocated = in->secs_allocated;
    if (in->has_cache_secs)
        l->cache_secs = in->cache_secs;
    if (in->has_tick_secs)
        l->tick_secs = (uint32_t)in->tick_secs;
    if (in->has_max_activations)
        l->max_activations = (uint32_t)in->max_activations;
    if (in->has_offline_allowed)
        l->offline_allowed = in->offline_allowed;
    if (in->has_max_transfers)
        l->max_transfers = (uint32_t)in->max_transfers;
    if (in->has_cull_days)
        l->cull_days = (uint32_t)in->cull_days;
    if (in->has_pool_alert_secs)
        l->pool_alert_secs = in->pool_alert_secs;
    if (in->has_tpm_trust)
        l->tpm_trust = in->tpm_trust;

    if (l->type == CERT_PERPETUAL && l->expiry)
        return fail(err, -EPERM, "expiry",
                    "a perpetual license has no expiry: drop %%F or choose another license type");
    if (l->type != CERT_PERPETUAL && !l->expiry)
        return fail(err, -EPERM, "expiry", "a %s license needs %%F",
                    cert_license_type_name(l->type));
    if (l->type == CERT_CONSUMPTION && l->secs_allocated == 0)
        return fail(err, -EPERM, "secs_allocated", "a consumption license needs %%F above 0");
    return check_issuable(l, err);
}

static int license_doc(struct srv_op *op, const struct srv_license *l, json_t **ret,
                       struct srv_operr *err) {
    struct srv_pool p;
    int r = srv_pool_get(op->db, l, op->now, false, &p);
    if (r < 0)
        return db_fail(op, err, r, "read the license");
    *ret = srv_license_json(l, &p, op->now);
    return *ret ? 0 : fail(err, -ENOMEM, NULL, "out of memory");
}

/* The license, locked for the change to come. */
static int lock_license(struct srv_op *op, const char *code, struct srv_license *l,
                        struct srv_operr *err) {
    int r = srv_license_get(op->db, code, true, l);
    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no license has the code %.64s", code);
    if (r < 0)
        return db_fail(op, err, r, "read the license");
    return 0;
}

static int audit(struct srv_op *op, const char *action, const char *target, json_t *before,
                 json_t *after, const char *detail, struct srv_operr *err) {
    int r = srv_audit_add(op->db, op->now, op->actor, action, target, before, after, detail);
    return r < 0 ? db_fail(op, err, r, "write the audit log") : 0;
}

static int create_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    const struct srv_license_input *in = arg;
    struct srv_license l = {.cache_secs = 3600, .tick_secs = 60, .max_activations = 1, .terms = 1};
    int r;

    if (!in->code || !license_code_valid(in->code))
        return fail(err, -EINVAL, "code", "%%F must be " LICENSE_CODE_RULE);
    if (!in->product || !in->has_customer_id || !in->has_type)
        return fail(err, -EINVAL,
                    !in->product           ? "product"
                    : !in->has_customer_id ? "customer_id"
                                           : "license_type",
                    "%%F is required");
    snprintf(l.code, sizeof(l.code), "%s", in->code);
    r = apply_terms(in, &l, true, op->now, err);
    if (r < 0)
        return r;
    l.created = l.updated = op->now;
    r = srv_license_insert(op->db, &l);
    if (r == -EEXIST)
        return fail(err, -EEXIST, "code", "a license with the code %s exists already", l.code);
    if (r < 0)
        return db_fail(op, err, r, "store the license");
    r = license_doc(op, &l, ret, err);
    if (r == 0)
        r = audit(op, "license.create", l.code, NULL, *ret, NULL, err);
    return r;
}

int srv_op_license_create(struct srv_op *op, const struct srv_license_input *in, json_t **ret,
                          struct srv_operr *err) {
    return in_tx(op, create_body, (void *)in, ret, err);
}

struct update_arg {
    const char *code;
    const struct srv_license_input *in;
    bool *terms_changed;
};

static int update_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct update_arg *u = arg;
    _cleanup_(json_decrefp) json_t *before_doc = NULL;
    struct srv_license l, before;
    struct srv_pool pool;
    int r = lock_license(op, u->code, &l, err);

    if (r < 0)
        return r;
    r = srv_pool_get(op->db, &l, op->now, false, &pool);
    if (r < 0)
        return db_fail(op, err, r, "read the license");
    before = l;
    before_doc = srv_license_json(&before, &pool, op->now);
    r = apply_terms(u->in, &l, false, op->now, err);
    if (r < 0)
        return r;
    if (l.secs_allocated < pool.committed)
        return fail(err, -EPERM, "secs_allocated",
                    "%%F %" PRIu64 " is below the %" PRIu64 " seconds committed to activations",
                    l.secs_allocated, pool.committed);
    *u->terms_changed = strcmp(l.product, before.product) || l.expiry != before.expiry ||
                        l.nfeatures != before.nfeatures ||
                        memcmp(l.features, before.features, sizeof(l.features)) ||
                        l.secs_allocated != before.secs_allocated ||
                        l.offline_allowed != before.offline_allowed ||
                        memcmp(&l.tpm_trust, &before.tpm_trust, sizeof(l.tpm_trust));
    if (*u->terms_changed)
        l.terms++;
    l.updated = op->now;
    r = srv_license_update(op->db, &l);
    if (r == 0)
        r = srv_event_pool_check(op->db, op->now, &l, pool.free);
    if (r < 0)
        return db_fail(op, err, r, "update the license");
    r = license_doc(op, &l, ret, err);
    if (r == 0)
        r = audit(op, "license.update", l.code, before_doc, *ret,
                  *u->terms_changed ? "terms changed: new certificates at the next validations"
                                    : NULL,
                  err);
    return r;
}

int srv_op_license_update(struct srv_op *op, const char *code, const struct srv_license_input *in,
                          json_t **ret, bool *terms_changed, struct srv_operr *err) {
    struct update_arg u = {code, in, terms_changed};
    *terms_changed = false;
    return in_tx(op, update_body, &u, ret, err);
}

struct suspend_arg {
    const char *code;
    bool suspend;
};

static int suspend_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct suspend_arg *s = arg;
    _cleanup_(json_decrefp) json_t *before = NULL;
    struct srv_license l;
    int r = lock_license(op, s->code, &l, err);

    if (r < 0 || (r = license_doc(op, &l, &before, err)) < 0)
        return r;
    l.suspended = s->suspend;
    l.updated = op->now;
    r = srv_license_update(op->db, &l);
    if (r < 0)
        return db_fail(op, err, r, "change the license");
    r = license_doc(op, &l, ret, err);
    if (r == 0)
        r = audit(op, s->suspend ? "license.suspend" : "license.resume", l.code, before, *ret, NULL,
                  err);
    return r;
}

int srv_op_license_suspend(struct srv_op *op, const char *code, bool suspend, json_t **ret,
                           struct srv_operr *err) {
    struct suspend_arg s = {code, suspend};
    return in_tx(op, suspend_body, &s, ret, err);
}

struct delete_arg {
    const char *code;
    bool force;
};

static int delete_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct delete_arg *d = arg;
    _cleanup_(json_decrefp) json_t *before = NULL;
    struct srv_license l;
    struct srv_pool pool;
    int r = lock_license(op, d->code, &l, err);

    if (r < 0)
        return r;
    r = srv_pool_get(op->db, &l, op->now, false, &pool);
    if (r < 0)
        return db_fail(op, err, r, "read the license");
    if (pool.active && !d->force)
        return fail(err, -EPERM, "force",
                    "license %s has %u active activation(s): deactivate them, or delete with %%F",
                    l.code, pool.active);
    before = srv_license_json(&l, &pool, op->now);
    r = srv_license_delete(op->db, l.id);
    if (r < 0)
        return db_fail(op, err, r, "delete the license");
    *ret = json_pack("{s:s, s:b, s:i}", "code", l.code, "deleted", 1, "active_activations_deleted",
                     (int)pool.active);
    if (!*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    return audit(op, "license.delete", l.code, before, NULL,
                 pool.active ? "with its active activations (force)" : NULL, err);
}

int srv_op_license_delete(struct srv_op *op, const char *code, bool force, json_t **ret,
                          struct srv_operr *err) {
    struct delete_arg d = {code, force};
    return in_tx(op, delete_body, &d, ret, err);
}

int srv_op_license_list(struct srv_op *op, json_t **ret, struct srv_operr *err) {
    _cleanup_free_ struct srv_license *v = NULL;
    _cleanup_(json_decrefp) json_t *arr = json_array();
    size_t n = 0;
    int r;

    memset(err, 0, sizeof(*err));
    if (!arr)
        return fail(err, -ENOMEM, NULL, "out of memory");
    r = srv_license_list(op->db, &v, &n);
    if (r < 0)
        return db_fail(op, err, r, "read the licenses");
    for (size_t i = 0; i < n; i++) {
        json_t *o = NULL;
        r = license_doc(op, &v[i], &o, err);
        if (r < 0)
            return r;
        json_array_append_new(arr, o);
    }
    *ret = TAKE_PTR(arr);
    return 0;
}

/* An activation with its flags. */
static int activation_doc(struct srv_op *op, const struct srv_activation *a, const char *code,
                          json_t **ret, struct srv_operr *err) {
    json_t *flags = NULL;
    int r = srv_flag_list(op->db, a->id, &flags);
    if (r < 0)
        return db_fail(op, err, r, "read the flags");
    *ret = srv_activation_json(a, code, flags);
    return *ret ? 0 : fail(err, -ENOMEM, NULL, "out of memory");
}

int srv_op_license_show(struct srv_op *op, const char *code, json_t **ret, struct srv_operr *err) {
    _cleanup_free_ struct srv_activation *acts = NULL;
    _cleanup_(json_decrefp) json_t *o = NULL;
    struct srv_activation_filter f = {0};
    struct srv_license l;
    json_t *arr, *transfers = NULL;
    size_t n = 0;
    int r;

    memset(err, 0, sizeof(*err));
    r = srv_license_get(op->db, code, false, &l);
    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no license has the code %.64s", code);
    if (r < 0)
        return db_fail(op, err, r, "read the license");
    r = license_doc(op, &l, &o, err);
    if (r < 0)
        return r;
    f.license_id = l.id;
    r = srv_activation_list(op->db, &f, &acts, &n);
    if (r == 0)
        r = srv_transfer_list(op->db, l.id, op->now, &transfers);
    if (r < 0)
        return db_fail(op, err, r, "read the activations");
    arr = json_array();
    json_object_set_new(o, "activations", arr);
    json_object_set_new(o, "transfers", transfers);
    for (size_t i = 0; arr && i < n; i++) {
        json_t *a = NULL;
        r = activation_doc(op, &acts[i], l.code, &a, err);
        if (r < 0)
            return r;
        json_array_append_new(arr, a);
    }
    *ret = TAKE_PTR(o);
    return 0;
}

/* ---- offline signing ---------------------------------------------------------------------- */

struct sign_arg {
    struct cert_activation *act;
    uint64_t granted;
};

static int sign_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct sign_arg *s = arg;
    struct srv_ctx ctx = {.db = op->db, .key = op->key, .now = op->now, .ek_ca_dir = op->ek_ca_dir};
    _cleanup_free_ char *jws = NULL;
    _cleanup_(json_decrefp) json_t *after = NULL;
    char id[CERT_TEXT_MAX + 1];
    bool existing;
    int r = srv_offline_decide(&ctx, s->act, s->granted, &jws, id, &existing, err->reason,
                               sizeof(err->reason), err->msg, sizeof(err->msg));
    if (r == 1)
        return -EPERM;
    if (r < 0)
        return db_fail(op, err, r, "record the offline activation");
    after = json_pack("{s:s, s:s, s:s, s:b}", "activation", id, "computer_id", s->act->computer_id,
                      "license", s->act->license, "existing", existing);
    *ret = json_pack("{s:s, s:b, s:s}", "activation", id, "existing", existing,
                     "license_certificate", jws);
    if (!after || !*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    return audit(op, "offline.sign", id, NULL, after,
                 existing ? "signed again for the same appliance" : NULL, err);
}

int srv_op_offline_sign(struct srv_op *op, const char *text, size_t len, uint64_t secs_granted,
                        json_t **ret, struct srv_operr *err) {
    _cleanup_(cert_activation_clearp) struct cert_activation act = {0};
    struct sign_arg s = {&act, secs_granted};
    char msg[512], recomputed[HWID_ID_STRLEN];

    memset(err, 0, sizeof(*err));
    if (!op->key)
        return fail(err, -EINVAL, "key", "the vendor key is needed to sign");
    if (secs_granted != UINT64_MAX && srv_term_check("secs_granted", secs_granted, err) < 0)
        return -EINVAL;
    if (cert_activation_decode(text, len, &act, msg, sizeof(msg)) != CERT_OK)
        return fail(err, -EBADMSG, "activation_certificate", "the activation certificate is %s",
                    msg);
    if (!cert_activation_consistent(&act, recomputed, msg, sizeof(msg)))
        return fail(err, -EBADMSG, "activation_certificate", "%s", msg);
    return in_tx(op, sign_body, &s, ret, err);
}

/* ---- activations ------------------------------------------------------------------------------
 */

int srv_op_activation_list(struct srv_op *op, const struct srv_activation_query *q, json_t **ret,
                           struct srv_operr *err) {
    _cleanup_free_ struct srv_activation *acts = NULL;
    _cleanup_free_ struct srv_license *lics = NULL;
    _cleanup_(json_decrefp) json_t *arr = json_array();
    struct srv_activation_filter f = {.state = q->state,
                                      .kind = q->kind,
                                      .computer_id = q->computer_id,
                                      .flagged = q->flagged,
                                      .limit = q->limit,
                                      .offset = q->offset};
    struct srv_license one;
    size_t n = 0, nl = 0;
    int r;

    memset(err, 0, sizeof(*err));
    if (!arr)
        return fail(err, -ENOMEM, NULL, "out of memory");
    if (q->state && *q->state && strcmp(q->state, "active") && strcmp(q->state, "closed"))
        return fail(err, -EINVAL, "state", "%%F must be active or closed");
    if (q->kind && *q->kind && strcmp(q->kind, "online") && strcmp(q->kind, "offline"))
        return fail(err, -EINVAL, "kind", "%%F must be online or offline");
    if (q->not_seen_days)
        f.seen_before = op->now - (time_t)q->not_seen_days * 86400;
    if (q->license && *q->license) {
        r = srv_license_get(op->db, q->license, false, &one);
        if (r == -ENOENT)
            return fail(err, -ENOENT, NULL, "no license has the code %.64s", q->license);
        if (r < 0)
            return db_fail(op, err, r, "read the license");
        f.license_id = one.id;
    } else {
        r = srv_license_list(op->db, &lics, &nl);
        if (r < 0)
            return db_fail(op, err, r, "read the licenses");
    }
    r = srv_activation_list(op->db, &f, &acts, &n);
    if (r < 0)
        return db_fail(op, err, r, "read the activations");
    for (size_t i = 0; i < n; i++) {
        const char *code = f.license_id ? one.code : "";
        for (size_t k = 0; !f.license_id && k < nl; k++)
            if (lics[k].id == acts[i].license_id)
                code = lics[k].code;
        json_array_append_new(arr, srv_activation_json(&acts[i], code, NULL));
    }
    *ret = TAKE_PTR(arr);
    return 0;
}

/* The activation and its license (for its code), or ENOENT. lock: the
 * license row first, then the activation row (the order of every admin
 * change). */
static int get_activation(struct srv_op *op, const char *id, bool lock, struct srv_activation *a,
                          struct srv_license *l, struct srv_operr *err) {
    int r = srv_activation_get(op->db, id, false, a);
    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no activation has the ID %.64s", id);
    if (r < 0)
        return db_fail(op, err, r, "read the activation");
    r = srv_license_get_by_id(op->db, a->license_id, lock, l);
    if (r == 0 && lock)
        r = srv_activation_get(op->db, id, true, a);
    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no activation has the ID %.64s", id);
    if (r < 0)
        return db_fail(op, err, r, "read the activation");
    return 0;
}

int srv_op_activation_show(struct srv_op *op, const char *id, json_t **ret, struct srv_operr *err) {
    struct srv_activation a;
    struct srv_license l;
    int r;

    memset(err, 0, sizeof(*err));
    r = get_activation(op, id, false, &a, &l, err);
    return r < 0 ? r : activation_doc(op, &a, l.code, ret, err);
}

/* Closes an active activation for an administrative reason: its whole
 * grant stays committed (the appliance may have used it since it last
 * reported), its seat is free; the deactivation event goes out. */
static int close_activation(struct srv_op *op, const struct srv_license *l,
                            struct srv_activation *a, const char *reason, struct srv_operr *err) {
    _cleanup_(json_decrefp) json_t *ev = NULL;
    int r;

    a->state = SRV_CLOSED;
    a->closed = op->now;
    snprintf(a->closed_reason, sizeof(a->closed_reason), "%s", reason);
    a->final_secs = a->secs_granted;
    a->returned_secs = 0;
    r = srv_activation_update(op->db, a);
    if (r < 0)
        return db_fail(op, err, r, "close the activation");
    ev = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "license", l->code, "activation", a->id,
                   "computer_id", a->computer_id, "reason", reason, "final_secs",
                   (json_int_t)a->final_secs, "returned_secs", (json_int_t)0);
    r = ev ? srv_event_emit(op->db, op->now, SRV_EVENT_DEACTIVATION, ev) : -ENOMEM;
    return r < 0 ? db_fail(op, err, r, "record the event") : 0;
}

static int require_active(const struct srv_activation *a, struct srv_operr *err) {
    if (a->state == SRV_CLOSED)
        return fail(err, -EPERM, NULL, "activation %s is closed already (%s)", a->id,
                    a->closed_reason[0] ? a->closed_reason : "deactivated");
    return 0;
}

static int revoke_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    _cleanup_(json_decrefp) json_t *before = NULL;
    struct srv_activation a;
    struct srv_license l;
    int r = get_activation(op, arg, true, &a, &l, err);

    if (r < 0 || (r = require_active(&a, err)) < 0)
        return r;
    before = srv_activation_json(&a, l.code, NULL);
    r = close_activation(op, &l, &a, "revoked", err);
    if (r < 0)
        return r;
    *ret = srv_activation_json(&a, l.code, NULL);
    if (!*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    return audit(op, "activation.revoke", a.id, before, *ret, NULL, err);
}

int srv_op_activation_revoke(struct srv_op *op, const char *id, json_t **ret,
                             struct srv_operr *err) {
    return in_tx(op, revoke_body, (void *)id, ret, err);
}

static bool is_computer_id(const char *s) {
    if (!s || strlen(s) != HWID_ID_STRLEN - 1)
        return false;
    for (int i = 0; i < HWID_ID_STRLEN - 1; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
            return false;
    }
    return true;
}

struct transfer_arg {
    const char *id, *to;
};

static int transfer_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct transfer_arg *t = arg;
    _cleanup_(json_decrefp) json_t *before = NULL, *after = NULL;
    struct srv_activation a;
    struct srv_license l;
    int r = get_activation(op, t->id, true, &a, &l, err);

    if (r < 0 || (r = require_active(&a, err)) < 0)
        return r;
    if (!strcmp(a.computer_id, t->to))
        return fail(err, -EPERM, "to_computer_id", "activation %s is on computer %s already", a.id,
                    t->to);
    if (l.transfers_used >= l.max_transfers) {
        snprintf(err->reason, sizeof(err->reason), "max_transfers");
        return fail(err, -EPERM, NULL,
                    "license %s has used %u of its %u transfer(s) (max_transfers)", l.code,
                    l.transfers_used, l.max_transfers);
    }
    before = srv_activation_json(&a, l.code, NULL);
    r = close_activation(op, &l, &a, "transferred", err);
    if (r < 0)
        return r;
    l.transfers_used++;
    l.updated = op->now;
    r = srv_license_update(op->db, &l);
    if (r == 0)
        r = srv_transfer_add(op->db, l.id, a.id, t->to, op->now);
    if (r < 0)
        return db_fail(op, err, r, "record the transfer");
    after = srv_activation_json(&a, l.code, NULL);
    *ret = json_pack("{s:O, s:{s:s, s:s, s:o}, s:i, s:i}", "activation", after, "transfer",
                     "from_activation", a.id, "to_computer_id", t->to, "expires",
                     srv_time_json(op->now + SRV_TRANSFER_DAYS * 86400), "transfers_used",
                     (int)l.transfers_used, "max_transfers", (int)l.max_transfers);
    if (!*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    {
        char detail[128];
        snprintf(detail, sizeof(detail), "to computer %s (transfer %u of %u)", t->to,
                 l.transfers_used, l.max_transfers);
        return audit(op, "activation.transfer", a.id, before, after, detail, err);
    }
}

int srv_op_activation_transfer(struct srv_op *op, const char *id, const char *to_computer_id,
                               json_t **ret, struct srv_operr *err) {
    struct transfer_arg t = {id, to_computer_id};
    memset(err, 0, sizeof(*err));
    if (!is_computer_id(to_computer_id))
        return fail(err, -EINVAL, "to_computer_id",
                    "%%F must be a computer ID (a lower-case UUID, as tpmlicctl computer-id "
                    "prints it)");
    return in_tx(op, transfer_body, &t, ret, err);
}

static int clear_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    _cleanup_(json_decrefp) json_t *before = NULL;
    struct srv_activation a;
    struct srv_license l;
    int r = get_activation(op, arg, true, &a, &l, err), n;

    if (r < 0 || (r = activation_doc(op, &a, l.code, &before, err)) < 0)
        return r;
    n = srv_flags_clear(op->db, a.id, op->now, op->actor);
    if (n < 0)
        return db_fail(op, err, n, "clear the flags");
    r = srv_activation_get(op->db, a.id, false, &a);
    if (r < 0)
        return db_fail(op, err, r, "read the activation");
    r = activation_doc(op, &a, l.code, ret, err);
    if (r == 0)
        json_object_set_new(*ret, "flags_cleared", json_integer(n));
    if (r == 0 && n > 0) {
        char detail[64];
        snprintf(detail, sizeof(detail), "%d flag(s) cleared", n);
        r = audit(op, "activation.clear_flags", a.id, before, *ret, detail, err);
    }
    return r;
}

int srv_op_activation_clear_flags(struct srv_op *op, const char *id, json_t **ret,
                                  struct srv_operr *err) {
    return in_tx(op, clear_body, (void *)id, ret, err);
}

struct cull_arg {
    const char *code;
    bool dry_run;
};

/* The online activations of l not seen for its cull_days, closed unless
 * dry_run; each appended to out. */
static int cull_license(struct srv_op *op, const struct srv_license *l, bool dry_run, json_t *out,
                        struct srv_operr *err) {
    _cleanup_free_ struct srv_activation *acts = NULL;
    struct srv_activation_filter f = {.license_id = l->id,
                                      .state = "active",
                                      .kind = "online",
                                      .seen_before = op->now - (time_t)l->cull_days * 86400};
    size_t n = 0;
    int r = srv_activation_list(op->db, &f, &acts, &n);

    if (r < 0)
        return db_fail(op, err, r, "read the activations");
    for (size_t i = 0; i < n; i++) {
        json_t *before = srv_activation_json(&acts[i], l->code, NULL), *after;
        char detail[96];

        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:s, s:o}", "license", l->code, "activation",
                                        acts[i].id, "computer_id", acts[i].computer_id, "last_seen",
                                        srv_time_json(acts[i].last_seen)));
        if (dry_run) {
            json_decref(before);
            continue;
        }
        r = close_activation(op, l, &acts[i], "culled", err);
        after = r == 0 ? srv_activation_json(&acts[i], l->code, NULL) : NULL;
        snprintf(detail, sizeof(detail), "not seen for %u days (the license's cull_days)",
                 l->cull_days);
        if (r == 0)
            r = audit(op, "activation.cull", acts[i].id, before, after, detail, err);
        json_decref(before);
        json_decref(after);
        if (r < 0)
            return r;
    }
    return 0;
}

static int cull_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct cull_arg *c = arg;
    _cleanup_free_ struct srv_license *lics = NULL;
    _cleanup_(json_decrefp) json_t *culled = json_array();
    struct srv_license one;
    size_t n = 0;
    int r;

    if (!culled)
        return fail(err, -ENOMEM, NULL, "out of memory");
    if (c->code) {
        r = lock_license(op, c->code, &one, err);
        if (r < 0)
            return r;
        if (!one.cull_days)
            return fail(err, -EPERM, NULL,
                        "license %s has no cull policy (cull_days is 0): set one with "
                        "license update",
                        one.code);
        r = cull_license(op, &one, c->dry_run, culled, err);
        if (r < 0)
            return r;
    } else {
        r = srv_license_list(op->db, &lics, &n);
        if (r < 0)
            return db_fail(op, err, r, "read the licenses");
        for (size_t i = 0; i < n; i++) {
            if (!lics[i].cull_days)
                continue;
            r = lock_license(op, lics[i].code, &one, err);
            if (r == 0 && one.cull_days)
                r = cull_license(op, &one, c->dry_run, culled, err);
            if (r < 0 && r != -ENOENT)
                return r;
        }
    }
    *ret = json_pack("{s:b, s:O}", "dry_run", c->dry_run, "culled", culled);
    return *ret ? 0 : fail(err, -ENOMEM, NULL, "out of memory");
}

int srv_op_cull(struct srv_op *op, const char *code, bool dry_run, json_t **ret,
                struct srv_operr *err) {
    struct cull_arg c = {code, dry_run};
    return in_tx(op, cull_body, &c, ret, err);
}

/* ---- tokens -------------------------------------------------------------------------------- */

struct token_arg {
    enum srv_scope scope;
    const char *name;
};

static int token_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct token_arg *t = arg;
    _cleanup_(json_decrefp) json_t *info = NULL;
    char token[SRV_TOKEN_LEN + 1], id[SRV_TOKEN_ID_HEX + 1];
    int r = srv_token_insert(op->db, t->scope, t->name, op->now, op->actor, token, id);

    if (r < 0)
        return db_fail(op, err, r, "store the token");
    r = srv_token_get(op->db, id, &info);
    if (r < 0) {
        secure_wipe(token, sizeof(token));
        return db_fail(op, err, r, "read the token");
    }
    *ret = json_deep_copy(info);
    if (*ret)
        json_object_set_new(*ret, "token", json_string(token));
    secure_wipe(token, sizeof(token));
    if (!*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    return audit(op, "token.create", id, NULL, info, NULL, err);
}

static int check_name(const char *field, const char *s, size_t max, bool required,
                      struct srv_operr *err) {
    size_t n = s ? strlen(s) : 0;
    if ((required && n == 0) || n > max)
        return fail(err, -EINVAL, field, "%%F must be %s to %zu characters", required ? "1" : "0",
                    max);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return fail(err, -EINVAL, field, "%%F has a control character");
    return 0;
}

int srv_op_token_create(struct srv_op *op, enum srv_scope scope, const char *name, json_t **ret,
                        struct srv_operr *err) {
    struct token_arg t = {scope, name};
    memset(err, 0, sizeof(*err));
    if (scope < SRV_SCOPE_READ || scope > SRV_SCOPE_ADMIN)
        return fail(err, -EINVAL, "scope", "%%F must be read, write or admin");
    if (check_name("name", name, SRV_TOKEN_NAME_MAX, true, err) < 0)
        return -EINVAL;
    return in_tx(op, token_body, &t, ret, err);
}

int srv_op_token_list(struct srv_op *op, json_t **ret, struct srv_operr *err) {
    int r;
    memset(err, 0, sizeof(*err));
    r = srv_token_list(op->db, ret);
    return r < 0 ? db_fail(op, err, r, "read the tokens") : 0;
}

static int revoke_token_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    _cleanup_(json_decrefp) json_t *before = NULL;
    int r = srv_token_get(op->db, arg, &before);

    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no token has the ID %.32s", (const char *)arg);
    if (r == 0)
        r = srv_token_revoke(op->db, arg, op->now);
    if (r == -ENOENT)
        return fail(err, -EPERM, NULL, "token %.32s is revoked already", (const char *)arg);
    if (r == 0)
        r = srv_token_get(op->db, arg, ret);
    if (r < 0)
        return db_fail(op, err, r, "revoke the token");
    return audit(op, "token.revoke", arg, before, *ret, NULL, err);
}

int srv_op_token_revoke(struct srv_op *op, const char *id, json_t **ret, struct srv_operr *err) {
    return in_tx(op, revoke_token_body, (void *)id, ret, err);
}

/* ---- webhooks ------------------------------------------------------------------------------ */

/* scheme://HOST[:PORT][/PATH]: https, or http to a loopback address (a
 * receiver on the same machine: a test, or a local relay). */
static int check_url(const char *url, struct srv_operr *err) {
    static const uint8_t loopback_v6[16] = {[15] = 1};
    static const uint8_t v4_prefix[12] = {[10] = 0xff, [11] = 0xff};
    const char *host, *end, *port;
    size_t n = url ? strlen(url) : 0;
    bool https = n > 8 && !strncmp(url, "https://", 8), loop = false;

    if (n > SRV_WEBHOOK_URL_MAX)
        return fail(err, -EINVAL, "url", "%%F is longer than %d characters", SRV_WEBHOOK_URL_MAX);
    for (const unsigned char *p = (const unsigned char *)url; p && *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return fail(err, -EINVAL, "url", "%%F has a space or a character that is not ASCII");
    if (!https && !(n > 7 && !strncmp(url, "http://", 7)))
        return fail(err, -EINVAL, "url",
                    "%%F must be https://HOST[:PORT]/PATH (or http:// to a loopback address)");
    host = url + (https ? 8 : 7);
    end = host + strcspn(host, "/?#");
    if (host[0] == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        port = close && close + 1 < end ? close + 1 : NULL;
        if (!close || close == host + 1 || (close + 1 < end && close[1] != ':'))
            return fail(err, -EINVAL, "url", "%%F has no host");
    } else {
        port = memchr(host, ':', (size_t)(end - host));
        if ((port ? port : end) == host)
            return fail(err, -EINVAL, "url", "%%F has no host");
        for (const char *p = host; p < (port ? port : end); p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", *p))
                return fail(err, -EINVAL, "url", "%%F: the host must be a name or an address");
    }
    if (port) {
        unsigned long v = 0;
        size_t digits = (size_t)(end - port - 1);
        if (digits == 0 || digits > 5 || strspn(port + 1, "0123456789") < digits ||
            (v = strtoul(port + 1, NULL, 10)) == 0 || v > 65535)
            return fail(err, -EINVAL, "url", "%%F: the port must be 1 to 65535");
    }
    {
        /* the host alone: a loopback address, or the name localhost */
        char name[256];
        const char *stop = port ? port : end;
        struct srv_addr a;
        bool v6 = host[0] == '[';
        snprintf(name, sizeof(name), "%.*s", (int)(stop - host - (v6 ? 2 : 0)),
                 host + (v6 ? 1 : 0));
        loop = !strcmp(name, "localhost") ||
               (srv_addr_parse(name, &a) == 0 &&
                (!memcmp(a.b, loopback_v6, 16) || (!memcmp(a.b, v4_prefix, 12) && a.b[12] == 127)));
    }
    if (!https && !loop)
        return fail(err, -EINVAL, "url",
                    "%%F: plain http:// only to a loopback address (127.x, [::1], localhost); "
                    "use https://");
    return 0;
}

struct webhook_arg {
    const char *url, *description;
    const char *const *events;
};

static int webhook_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    struct webhook_arg *w = arg;
    _cleanup_(json_decrefp) json_t *info = NULL;
    char secret[SRV_WEBHOOK_SECRET_HEX + 1];
    int64_t id;
    int r = srv_webhook_insert(op->db, w->url, w->events, w->description, op->now, op->actor,
                               secret, &id);
    if (r < 0)
        return db_fail(op, err, r, "store the webhook");
    r = srv_webhook_get(op->db, id, &info);
    if (r < 0) {
        secure_wipe(secret, sizeof(secret));
        return db_fail(op, err, r, "read the webhook");
    }
    *ret = json_deep_copy(info);
    if (*ret)
        json_object_set_new(*ret, "secret", json_string(secret));
    secure_wipe(secret, sizeof(secret));
    if (!*ret)
        return fail(err, -ENOMEM, NULL, "out of memory");
    {
        char target[24];
        snprintf(target, sizeof(target), "%lld", (long long)id);
        return audit(op, "webhook.create", target, NULL, info, NULL, err);
    }
}

int srv_op_webhook_create(struct srv_op *op, const char *url, const char *const *events,
                          size_t nevents, const char *description, json_t **ret,
                          struct srv_operr *err) {
    const char *list[16] = {0};
    struct webhook_arg w = {url, description, list};

    memset(err, 0, sizeof(*err));
    if (check_url(url, err) < 0 || check_name("description", description, 128, false, err) < 0)
        return -EINVAL;
    if (nevents == 0 || nevents >= ARRAY_SIZE(list))
        return fail(err, -EINVAL, "events", "%%F must name 1 to %zu events", ARRAY_SIZE(list) - 1);
    for (size_t i = 0; i < nevents; i++) {
        if (!srv_event_known(events[i]))
            return fail(err, -EINVAL, "events",
                        "%%F: '%.40s' is not an event (activation, deactivation, "
                        "validation_refused, clone_flagged, pool_low)",
                        events[i]);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(events[i], events[j]))
                return fail(err, -EINVAL, "events", "%%F: '%s' is listed twice", events[i]);
        list[i] = events[i];
    }
    return in_tx(op, webhook_body, &w, ret, err);
}

int srv_op_webhook_list(struct srv_op *op, json_t **ret, struct srv_operr *err) {
    int r;
    memset(err, 0, sizeof(*err));
    r = srv_webhook_list(op->db, ret);
    return r < 0 ? db_fail(op, err, r, "read the webhooks") : 0;
}

static int webhook_delete_body(struct srv_op *op, void *arg, json_t **ret, struct srv_operr *err) {
    int64_t id = *(int64_t *)arg;
    json_t *before = NULL;
    char target[24];
    int r = srv_webhook_get(op->db, id, &before);

    if (r == -ENOENT)
        return fail(err, -ENOENT, NULL, "no webhook has the ID %lld", (long long)id);
    if (r == 0)
        r = srv_webhook_delete(op->db, id);
    if (r < 0) {
        json_decref(before);
        return db_fail(op, err, r, "delete the webhook");
    }
    *ret = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
    snprintf(target, sizeof(target), "%lld", (long long)id);
    r = audit(op, "webhook.delete", target, before, NULL, NULL, err);
    json_decref(before);
    return r;
}

int srv_op_webhook_delete(struct srv_op *op, int64_t id, json_t **ret, struct srv_operr *err) {
    return in_tx(op, webhook_delete_body, &id, ret, err);
}

int srv_op_delivery_list(struct srv_op *op, int64_t webhook_id, const char *state, unsigned limit,
                         json_t **ret, struct srv_operr *err) {
    struct srv_delivery_filter f = {webhook_id, state, limit};
    int r;

    memset(err, 0, sizeof(*err));
    if (state && *state && strcmp(state, "pending") && strcmp(state, "delivered") &&
        strcmp(state, "failed"))
        return fail(err, -EINVAL, "state", "%%F must be pending, delivered or failed");
    r = srv_delivery_list(op->db, &f, ret);
    return r < 0 ? db_fail(op, err, r, "read the deliveries") : 0;
}

/* ---- the audit log ----------------------------------------------------------------------------
 */

int srv_op_audit_list(struct srv_op *op, const struct srv_audit_query *q, json_t **ret,
                      struct srv_operr *err) {
    struct srv_audit_filter f = {.since = q->since,
                                 .until = q->until,
                                 .actor = q->actor,
                                 .action = q->action,
                                 .target = q->target,
                                 .before_id = q->before_id,
                                 .limit = q->limit};
    int r;

    memset(err, 0, sizeof(*err));
    if (q->limit > 1000)
        return fail(err, -EINVAL, "limit", "%%F must be 1 to 1000");
    r = srv_audit_list(op->db, &f, ret);
    return r < 0 ? db_fail(op, err, r, "read the audit log") : 0;
}
