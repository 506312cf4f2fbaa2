/* The license certificate: a compact JWS (RFC 7515) with alg EdDSA
 * (RFC 8037, Ed25519), payload per docs/certificates.md. */
#include "cert/internal.h"

#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "common/macro.h"
#include "common/timefmt.h"

static const struct cert_jws_kind license_kind = {
    .typ = "tpmlic-license+jws",
    .name = "license certificate",
    .short_name = "certificate",
    .maxlen = CERT_LICENSE_MAX,
};

static const char *const payload_keys[] = {
    "v",
    "license",
    "product",
    "customer_id",
    "computer_id",
    "hwid",
    "hwid_policy",
    "license_type",
    "subscription_expiry",
    "nbf",
    "features",
    "secs_allocated",
    "secs_granted",
    "offline_allowed",
    "activation_type",
    "tick_secs",
    "counter",
    "iat",
    "jti",
    "tpm_trust",
    "time_floor",
    "online_window",
    NULL,
};

uint64_t cert_license_ceiling(const struct cert_license *l) {
    uint32_t tick = l->tick_secs ? l->tick_secs : 60;
    return l->counter.value + (l->secs_granted + tick - 1) / tick;
}

static json_t *tpm_trust_to_json(const struct cert_tpm_trust *t) {
    json_t *a;
    if (t->kind == CERT_TPM_TRUST_CERTIFIED)
        return json_string("certified");
    if (t->kind != CERT_TPM_TRUST_CAS)
        return json_string("any");
    a = json_array();
    for (size_t i = 0; a && i < t->nkeys; i++)
        if (json_array_append_new(a, json_string(t->key_ids[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static bool tpm_trust_from_json(struct cj *c, json_t *o, struct cert_tpm_trust *t) {
    json_t *v = json_object_get(o, "tpm_trust");
    uint8_t raw[32];

    memset(t, 0, sizeof(*t));
    if (!v)
        return true;
    if (json_is_string(v)) {
        if (!strcmp(json_string_value(v), "any"))
            return true;
        if (!strcmp(json_string_value(v), "certified")) {
            t->kind = CERT_TPM_TRUST_CERTIFIED;
            return true;
        }
    } else if (json_is_array(v) && json_array_size(v) >= 1 &&
               json_array_size(v) <= CERT_TPM_TRUST_KEYS_MAX) {
        t->kind = CERT_TPM_TRUST_CAS;
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *k = json_array_get(v, i);
            if (!json_is_string(k) || hex_decode_exact(json_string_value(k), raw, 32) < 0)
                return cj_fail(c,
                               "tpm_trust[%zu] must be 64 lower-case hex digits (the SHA-256 "
                               "of a CA's public key)",
                               i);
            snprintf(t->key_ids[i], sizeof(t->key_ids[i]), "%s", json_string_value(k));
            t->nkeys++;
        }
        return true;
    }
    return cj_fail(c,
                   "field 'tpm_trust' must be \"any\", \"certified\" or a list of 1 to %d CA key "
                   "ids",
                   CERT_TPM_TRUST_KEYS_MAX);
}

/* A license's time floor names the hour counter by its index alone: the
 * agent checks that index's type and attributes itself at every start (so
 * the TPM name, the same on every TPM for the same index, would add
 * nothing), and a certificate has to fit CERT_LICENSE_MAX. */
static json_t *floor_to_json(const struct cert_time_floor *f, time_t iat) {
    char when[RFC3339_BUFLEN], index[11];
    json_t *o;

    snprintf(index, sizeof(index), "0x%08x", f->counter.index);
    o = json_pack("{s:s, s:I}", "index", index, "base", (json_int_t)f->counter.value);
    /* "at" is left out when it is the certificate's iat (online answers) */
    if (o && f->at != iat) {
        rfc3339_format(f->at, when);
        if (json_object_set_new(o, "at", json_string(when)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static bool floor_from_json(struct cj *c, json_t *o, time_t iat, struct cert_time_floor *f) {
    static const char *const keys[] = {"index", "base", "at", NULL};
    json_t *v = json_object_get(o, "time_floor");
    char when[RFC3339_BUFLEN];

    memset(f, 0, sizeof(*f));
    if (!v)
        return true;
    if (!json_is_object(v))
        return cj_fail(c, "field 'time_floor' must be an object");
    if (!cj_only_keys(c, v, "time_floor: ", keys) ||
        !cj_string(c, v, "at", CJ_OPTIONAL, CJ_TEXT, 20, when, sizeof(when)))
        return false;
    f->at = iat;
    if (when[0] && (rfc3339_parse(when, &f->at) < 0 || f->at == 0))
        return cj_fail(c, "time_floor: field 'at' is not an RFC 3339 UTC time");
    if (!cert_nv_index_from_json(c, v, "time_floor", &f->counter.index) ||
        !cj_uint(c, v, "base", true, 0, CERT_JSON_UINT_MAX, &f->counter.value))
        return false;
    f->present = true;
    return true;
}

/* The window as signed: the TPM clock of the request and the window's
 * length in seconds. It ends at tpm_clock + secs x 1000 on the TPM clock
 * and at iat + secs on the wall clock. */
#define WINDOW_SECS_MAX (366ull * 86400)

static bool window_secs(const struct cert_online_window *w, time_t iat, uint64_t *ret) {
    uint64_t s;
    if (w->until <= iat)
        return false;
    s = (uint64_t)(w->until - iat);
    if (s > WINDOW_SECS_MAX || w->tpm_clock > CERT_JSON_UINT_MAX - WINDOW_SECS_MAX * 1000 ||
        w->tpm_clock_until != w->tpm_clock + s * 1000)
        return false;
    *ret = s;
    return true;
}

static bool window_from_json(struct cj *c, json_t *o, time_t iat, struct cert_online_window *w) {
    static const char *const keys[] = {"tpm_clock", "secs", NULL};
    json_t *v = json_object_get(o, "online_window");
    uint64_t secs;

    memset(w, 0, sizeof(*w));
    if (!v)
        return true;
    if (!json_is_object(v))
        return cj_fail(c, "field 'online_window' must be an object");
    if (!cj_only_keys(c, v, "online_window: ", keys) ||
        !cj_uint(c, v, "tpm_clock", true, 0, CERT_JSON_UINT_MAX - WINDOW_SECS_MAX * 1000,
                 &w->tpm_clock) ||
        !cj_uint(c, v, "secs", true, 1, WINDOW_SECS_MAX, &secs))
        return false;
    w->tpm_clock_until = w->tpm_clock + secs * 1000;
    w->until = iat + (time_t)secs;
    w->present = true;
    return true;
}

/* NULL when out of memory or when a field cannot be represented (text that
 * is not UTF-8, too many features): nothing is silently dropped. */
static json_t *payload_to_json(const struct cert_license *l) {
    json_t *o, *features = json_array();
    char when[21];
    int fail = 0;

    if (l->nfeatures > CERT_FEATURES_MAX)
        fail = -1;
    for (size_t i = 0; features && !fail && i < l->nfeatures; i++)
        fail |= json_array_append_new(features, json_string(l->features[i]));
    if (!features || fail) {
        json_decref(features);
        return NULL;
    }
    o = json_pack("{s:i, s:s, s:s, s:I, s:s, s:o, s:s}", "v", 1, "license", l->license, "product",
                  l->product, "customer_id", (json_int_t)l->customer_id, "computer_id",
                  l->computer_id, "hwid", cert_hwid_to_json(&l->hwid), "license_type",
                  cert_license_type_name(l->type));
    if (!o) {
        json_decref(features);
        return NULL;
    }
    /* left out when it is the default: a certificate must fit CERT_LICENSE_MAX */
    if (l->hwid_policy != HWID_POLICY_DEFAULT)
        fail |=
            json_object_set_new(o, "hwid_policy", json_string(hwid_policy_name(l->hwid_policy)));
    if (l->type != CERT_PERPETUAL) {
        rfc3339_format(l->expiry, when);
        fail |= json_object_set_new(o, "subscription_expiry", json_string(when));
    }
    if (l->not_before)
        fail |= json_object_set_new(o, "nbf", json_integer((json_int_t)l->not_before));
    fail |= json_object_set_new(o, "features", features);
    fail |= json_object_set_new(o, "secs_allocated", json_integer((json_int_t)l->secs_allocated));
    fail |= json_object_set_new(o, "secs_granted", json_integer((json_int_t)l->secs_granted));
    fail |= json_object_set_new(o, "offline_allowed", json_boolean(l->offline_allowed));
    fail |= json_object_set_new(o, "activation_type",
                                json_string(l->activated_offline ? "offline" : "online"));
    fail |= json_object_set_new(o, "tick_secs", json_integer(l->tick_secs));
    fail |= json_object_set_new(o, "counter", cert_counter_to_json(&l->counter, "base"));
    fail |= json_object_set_new(o, "iat", json_integer((json_int_t)l->iat));
    fail |= json_object_set_new(o, "jti", json_string(l->jti));
    if (l->tpm_trust.kind != CERT_TPM_TRUST_ANY)
        fail |= json_object_set_new(o, "tpm_trust", tpm_trust_to_json(&l->tpm_trust));
    if (l->time_floor.present)
        fail |= json_object_set_new(o, "time_floor", floor_to_json(&l->time_floor, l->iat));
    if (l->window.present) {
        uint64_t secs;
        if (!window_secs(&l->window, l->iat, &secs))
            fail = -1;
        else
            fail |= json_object_set_new(o, "online_window",
                                        json_pack("{s:I, s:I}", "tpm_clock",
                                                  (json_int_t)l->window.tpm_clock, "secs",
                                                  (json_int_t)secs));
    }
    if (fail) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Parses and checks a payload. *ver_bad is set for an unknown "v". */
static bool payload_from_json(struct cj *c, json_t *o, struct cert_license *l, bool *ver_bad) {
    char type[20], policy[10], when[32], act[10];
    uint64_t v = 0, u = 0;
    json_t *feat;
    size_t i;

    memset(l, 0, sizeof(*l));
    if (!json_is_object(o))
        return cj_fail(c, "the payload is not a JSON object");
    if (!cj_uint(c, o, "v", true, 0, CERT_JSON_UINT_MAX, &v))
        return false;
    if (v != 1) {
        *ver_bad = true;
        return cj_fail(c, "certificate version %llu is not supported (this agent reads version 1)",
                       (unsigned long long)v);
    }
    if (!cj_only_keys(c, o, "", payload_keys) ||
        !cj_string(c, o, "license", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX, l->license,
                   sizeof(l->license)) ||
        !cj_string(c, o, "product", CJ_REQUIRED, CJ_TEXT, CERT_TEXT_MAX, l->product,
                   sizeof(l->product)) ||
        !cj_uint(c, o, "customer_id", true, 0, CERT_JSON_UINT_MAX, &u))
        return false;
    l->customer_id = (long long)u;
    if (!cj_string(c, o, "computer_id", CJ_REQUIRED, CJ_IDENTIFIER, 36, l->computer_id,
                   sizeof(l->computer_id)))
        return false;
    if (strlen(l->computer_id) != 36)
        return cj_fail(c, "field 'computer_id' is not a UUID");
    if (!cert_hwid_from_json(c, o, &l->hwid) ||
        !cj_string(c, o, "hwid_policy", CJ_OPTIONAL, CJ_IDENTIFIER, 8, policy, sizeof(policy)))
        return false;
    l->hwid_policy = HWID_POLICY_DEFAULT;
    if (policy[0] && hwid_policy_from_name(policy, &l->hwid_policy) < 0)
        return cj_fail(c, "field 'hwid_policy' must be \"default\" or \"all\"");
    if (!cj_string(c, o, "license_type", CJ_REQUIRED, CJ_IDENTIFIER, 16, type, sizeof(type)))
        return false;
    if (cert_license_type_from_name(type, &l->type) < 0)
        return cj_fail(c, "field 'license_type' must be perpetual, time-limited, subscription or "
                          "consumption");
    if (!cj_string(c, o, "subscription_expiry", CJ_OPTIONAL, CJ_TEXT, 20, when, sizeof(when)))
        return false;
    if (l->type == CERT_PERPETUAL && when[0])
        return cj_fail(c, "a perpetual license has no 'subscription_expiry'");
    if (l->type != CERT_PERPETUAL && !when[0])
        return cj_fail(c, "field 'subscription_expiry' is missing");
    if (when[0] && rfc3339_parse(when, &l->expiry) < 0)
        return cj_fail(c, "field 'subscription_expiry' is not an RFC 3339 UTC time like "
                          "\"2027-01-31T00:00:00Z\"");
    /* expiry 0 means "none" to the verifier: the epoch itself is refused */
    if (when[0] && l->expiry == 0)
        return cj_fail(c, "field 'subscription_expiry' is 1970-01-01T00:00:00Z");
    if (!cj_uint(c, o, "nbf", false, 1, CERT_JSON_UINT_MAX, &u))
        return false;
    l->not_before = json_object_get(o, "nbf") ? (time_t)u : 0;
    feat = json_object_get(o, "features");
    if (!json_is_array(feat))
        return cj_fail(c, "field 'features' must be an array of strings");
    if (json_array_size(feat) > CERT_FEATURES_MAX)
        return cj_fail(c, "field 'features' has more than %d entries", CERT_FEATURES_MAX);
    for (i = 0; i < json_array_size(feat); i++) {
        /* a scratch reader, so that the message names the entry */
        char scratch[120];
        struct cj one = {.msg = scratch, .msglen = sizeof(scratch)};
        json_t *wrap = json_pack("{s:O}", "feature", json_array_get(feat, i));
        bool ok = wrap && cj_string(&one, wrap, "feature", CJ_REQUIRED, CJ_IDENTIFIER,
                                    CERT_FEATURE_MAX, l->features[i], sizeof(l->features[i]));
        json_decref(wrap);
        if (!ok)
            return cj_fail(c,
                           "features[%zu] must be a name of 1 to %d letters, digits, '.', '-' "
                           "or '_'",
                           i, CERT_FEATURE_MAX);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l->features[i], l->features[j]))
                return cj_fail(c, "feature '%s' is listed twice", l->features[i]);
    }
    l->nfeatures = i;
    if (!cj_uint(c, o, "secs_allocated", true, 0, CERT_JSON_UINT_MAX, &l->secs_allocated) ||
        !cj_uint(c, o, "secs_granted", true, 0, CERT_JSON_UINT_MAX, &l->secs_granted))
        return false;
    if (l->secs_granted > l->secs_allocated)
        return cj_fail(c, "secs_granted (%llu) exceeds secs_allocated (%llu)",
                       (unsigned long long)l->secs_granted, (unsigned long long)l->secs_allocated);
    if (!cj_bool(c, o, "offline_allowed", true, &l->offline_allowed) ||
        !cj_string(c, o, "activation_type", CJ_REQUIRED, CJ_IDENTIFIER, 8, act, sizeof(act)))
        return false;
    if (strcmp(act, "online") && strcmp(act, "offline"))
        return cj_fail(c, "field 'activation_type' must be \"online\" or \"offline\"");
    l->activated_offline = !strcmp(act, "offline");
    if (l->activated_offline && !l->offline_allowed)
        return cj_fail(c, "an offline activation needs offline_allowed");
    if (!cj_uint(c, o, "tick_secs", true, 1, 86400, &u))
        return false;
    l->tick_secs = (uint32_t)u;
    if (!cert_counter_from_json(c, o, "counter", "base", &l->counter) ||
        !cj_uint(c, o, "iat", true, 1, CERT_JSON_UINT_MAX, &u))
        return false;
    l->iat = (time_t)u;
    if (!cj_string(c, o, "jti", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX, l->jti,
                   sizeof(l->jti)) ||
        !tpm_trust_from_json(c, o, &l->tpm_trust) ||
        !floor_from_json(c, o, l->iat, &l->time_floor) ||
        !window_from_json(c, o, l->iat, &l->window))
        return false;
    if (l->window.present && l->activated_offline)
        return cj_fail(c, "an offline activation's certificate has no online_window");
    return true;
}

int cert_license_sign(const struct cert_license *lic, EVP_PKEY *key, char **ret_jws, char *err,
                      size_t errlen) {
    _cleanup_(json_decrefp) json_t *payload = NULL;
    struct cert_license check;
    struct cj c = {.msg = err, .msglen = errlen};
    bool ver_bad = false;
    char *jws;
    int r;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "the signing key is not an Ed25519 key");
        return -EINVAL;
    }
    payload = payload_to_json(lic);
    if (!payload) {
        snprintf(err, errlen,
                 "the license cannot be encoded (text that is not UTF-8, more "
                 "than %d features, a counter name over %d bytes?)",
                 CERT_FEATURES_MAX, CERT_COUNTER_NAME_MAX);
        return -EINVAL;
    }
    /* Sign only what the verifier will accept. */
    if (!payload_from_json(&c, payload, &check, &ver_bad))
        return -EINVAL;
    r = cert_jws_sign(license_kind.typ, payload, key, &jws);
    if (r == -EINVAL)
        snprintf(err, errlen, "signing failed (is this an Ed25519 private key?)");
    if (r < 0)
        return r;
    if (strlen(jws) > CERT_LICENSE_MAX) {
        snprintf(err, errlen,
                 "the license certificate would be %zu bytes, more than the %d that "
                 "fit one TPM NV index (fewer or shorter features, a shorter product name)",
                 strlen(jws), CERT_LICENSE_MAX);
        free(jws);
        return -EFBIG;
    }
    *ret_jws = jws;
    return 0;
}

enum cert_status cert_license_verify(const char *jws, size_t len, EVP_PKEY *vendor_pub, time_t now,
                                     struct cert_license *ret, char *msg, size_t msglen) {
    _cleanup_(json_decrefp) json_t *payload = NULL;
    char e[200], when[21];
    struct cj c = {.msg = e, .msglen = sizeof(e)};
    struct cert_license l;
    bool ver_bad = false;
    enum cert_status s;

    s = cert_jws_verify(jws, len, &license_kind, vendor_pub, &payload, msg, msglen);
    if (s != CERT_OK)
        return s;
    if (!payload_from_json(&c, payload, &l, &ver_bad)) {
        snprintf(msg, msglen, "%s: %s", ver_bad ? "unsupported version" : "malformed", e);
        return ver_bad ? CERT_UNSUPPORTED_VERSION : CERT_MALFORMED;
    }
    *ret = l;
    if (now && l.not_before && now < l.not_before) {
        rfc3339_format(l.not_before, when);
        snprintf(msg, msglen, "not yet valid: valid from %s", when);
        return CERT_NOT_YET_VALID;
    }
    if (now && l.expiry && now >= l.expiry) {
        rfc3339_format(l.expiry, when);
        snprintf(msg, msglen, "expired on %s", when);
        return CERT_EXPIRED;
    }
    snprintf(msg, msglen, "valid");
    return CERT_OK;
}

enum cert_status cert_license_match(const struct cert_license *lic,
                                    const struct hwid_digests *current, struct hwid_match *ret,
                                    char *msg, size_t msglen) {
    if (hwid_match(&lic->hwid, current, lic->hwid_policy, ret) < 0 || !ret->matched) {
        snprintf(msg, msglen, "certificate for another computer (%s): %s", lic->computer_id,
                 ret->reason);
        return CERT_WRONG_MACHINE;
    }
    snprintf(msg, msglen, "for this computer: %s", ret->reason);
    return CERT_OK;
}
