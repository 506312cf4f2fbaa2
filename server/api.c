/* The route table and the admin REST API (api.h). Each handler: read the
 * query and the body strictly (unknown fields and parameters refused),
 * one call to ops.c, its JSON as the answer. Errors are
 * {"error", "code"[, "field"][, "reason"]}. */
#include "server/api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "common/licensecode.h"
#include "common/macro.h"
#include "common/timefmt.h"
#include "server/ops.h"
#include "server/webhook.h"

#define JSON_INT_MAX 9007199254740992ull

void srv_api_response_clear(struct srv_api_response *r) {
    /* a token or a webhook secret is in an answer once: wiped after it */
    static const char *const secrets[] = {"token", "secret"};
    for (size_t i = 0; r->body && i < ARRAY_SIZE(secrets); i++) {
        const char *s = json_string_value(json_object_get(r->body, secrets[i]));
        if (s)
            secure_wipe((char *)s, strlen(s));
    }
    json_decref(r->body);
    r->body = NULL;
}

static void set_error(struct srv_api_response *ret, int status, const char *field,
                      const char *reason, const char *msg) {
    srv_api_response_clear(ret);
    ret->status = status;
    ret->body = json_pack("{s:s, s:i}", "error", msg, "code", status);
    if (ret->body && field && *field)
        json_object_set_new(ret->body, "field", json_string(field));
    if (ret->body && reason && *reason)
        json_object_set_new(ret->body, "reason", json_string(reason));
}

_printf_(3, 4) static int bad_request(struct srv_api_response *ret, const char *field,
                                      const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_error(ret, 400, field, NULL, msg);
    return 0;
}

static int status_of(int r) {
    switch (r) {
    case -EINVAL:
    case -EBADMSG:
        return 400;
    case -ENOENT:
        return 404;
    case -EEXIST:
    case -EPERM:
        return 409;
    case -EBUSY:
        return 503;
    default:
        return 500;
    }
}

/* The answer of an operation: its document with status ok, or its error. */
static int op_answer(struct srv_api_response *ret, int r, json_t *doc, int ok,
                     const struct srv_operr *err) {
    if (r == 0) {
        ret->status = ok;
        ret->body = doc;
        return 0;
    }
    json_decref(doc);
    {
        char msg[512];
        srv_operr_text(err, SRV_FIELD_JSON, msg, sizeof(msg));
        set_error(ret, status_of(r), err->field, err->reason, msg);
    }
    return 0;
}

/* {"NAME": doc} */
static json_t *wrap(const char *name, json_t *doc) {
    return doc ? json_pack("{s:o}", name, doc) : NULL;
}

/* ---- query parameters ------------------------------------------------------------- */

/* Refuses parameters other than those listed. */
static bool query_only(const struct srv_api_request *req, const char *const *keys,
                       struct srv_api_response *ret) {
    const char *key;
    json_t *v;
    json_object_foreach(req->query, key, v) {
        size_t i;
        for (i = 0; keys[i]; i++)
            if (!strcmp(keys[i], key))
                break;
        if (!keys[i]) {
            bad_request(ret, key, "unknown query parameter '%.40s'", key);
            return false;
        }
    }
    return true;
}

static const char *q_str(const struct srv_api_request *req, const char *key) {
    const char *s = json_string_value(json_object_get(req->query, key));
    return s && *s ? s : NULL;
}

static bool q_uint(const struct srv_api_request *req, const char *key, uint64_t min, uint64_t max,
                   uint64_t *out, struct srv_api_response *ret) {
    const char *s = q_str(req, key);
    uint64_t v = 0;
    if (!s)
        return true;
    if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 15 ||
        (v = strtoull(s, NULL, 10)) < min || v > max) {
        bad_request(ret, key, "query parameter '%s' must be a whole number from %llu to %llu", key,
                    (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

static bool q_bool(const struct srv_api_request *req, const char *key, bool *out,
                   struct srv_api_response *ret) {
    const char *s = q_str(req, key);
    if (!s)
        return true;
    if (strcmp(s, "true") && strcmp(s, "false")) {
        bad_request(ret, key, "query parameter '%s' must be true or false", key);
        return false;
    }
    *out = !strcmp(s, "true");
    return true;
}

static bool q_time(const struct srv_api_request *req, const char *key, time_t *out,
                   struct srv_api_response *ret) {
    const char *s = q_str(req, key);
    if (s && rfc3339_parse(s, out) < 0) {
        bad_request(ret, key, "query parameter '%s' must be an RFC 3339 UTC time", key);
        return false;
    }
    return true;
}

/* ---- bodies ------------------------------------------------------------------------------ */

static int load_body(const struct srv_api_request *req, json_t **ret, char *msg, size_t msglen) {
    return cj_load_object(req->body ? req->body : "", req->body ? req->len : 0, true, ret, msg,
                          msglen);
}

static const char *const license_keys[] = {
    "code",      "product",         "customer_id",     "license_type",
    "expiry",    "features",        "secs_allocated",  "cache_secs",
    "tick_secs", "max_activations", "offline_allowed", "max_transfers",
    "cull_days", "pool_alert_secs", "tpm_trust",       NULL,
};

/* A license body, read into in; the strings live in the struct (features
 * point into o). */
struct license_body {
    struct srv_license_input in;
    char code[LICENSE_CODE_MAX + 1], product[CERT_TEXT_MAX + 1], type[20], expiry[RFC3339_BUFLEN];
};

static bool has(json_t *o, const char *key) {
    return json_object_get(o, key) != NULL;
}

static int parse_license(json_t *o, bool create, struct license_body *b, char *msg, size_t msglen) {
    struct srv_license_input *in = &b->in;
    struct cj c = {.msg = msg, .msglen = msglen};
    json_t *v, *f;
    size_t i;

    memset(b, 0, sizeof(*b));
    if (!cj_only_keys(&c, o, "", license_keys))
        return -EINVAL;
    if (has(o, "code")) {
        if (!create)
            return cj_fail(&c, "field 'code' cannot be changed"), -EINVAL;
        if (!cj_license_code(&c, o, "code", true, b->code, sizeof(b->code)))
            return -EINVAL;
        in->code = b->code;
    }
    if (!cj_string(&c, o, "product", CJ_OPTIONAL, CJ_TEXT, CERT_TEXT_MAX, b->product,
                   sizeof(b->product)) ||
        !cj_string(&c, o, "license_type", CJ_OPTIONAL, CJ_IDENTIFIER, sizeof(b->type) - 1, b->type,
                   sizeof(b->type)) ||
        !cj_string(&c, o, "expiry", CJ_NULLABLE, CJ_TEXT, RFC3339_BUFLEN - 1, b->expiry,
                   sizeof(b->expiry)))
        return -EINVAL;
    if (has(o, "product"))
        in->product = b->product;
    if ((in->has_type = has(o, "license_type")) &&
        cert_license_type_from_name(b->type, &in->type) < 0)
        return cj_fail(&c, "field 'license_type' must be perpetual, time-limited, subscription "
                           "or consumption"),
               -EINVAL;
    if ((in->has_expiry = has(o, "expiry")) && b->expiry[0] &&
        (rfc3339_parse(b->expiry, &in->expiry) < 0 || in->expiry == 0))
        return cj_fail(&c, "field 'expiry' must be an RFC 3339 UTC time like "
                           "2027-01-31T00:00:00Z, or null"),
               -EINVAL;
#define UINT_FIELD(name)                                                                           \
    do {                                                                                           \
        in->has_##name = has(o, #name);                                                            \
        if (!cj_uint(&c, o, #name, false, 0, UINT64_MAX, &in->name))                               \
            return -EINVAL;                                                                        \
    } while (0)
    UINT_FIELD(customer_id);
    UINT_FIELD(secs_allocated);
    UINT_FIELD(cache_secs);
    UINT_FIELD(tick_secs);
    UINT_FIELD(max_activations);
    UINT_FIELD(max_transfers);
    UINT_FIELD(cull_days);
    UINT_FIELD(pool_alert_secs);
#undef UINT_FIELD
    in->has_offline_allowed = has(o, "offline_allowed");
    if (!cj_bool(&c, o, "offline_allowed", false, &in->offline_allowed))
        return -EINVAL;
    if ((in->has_tpm_trust = has(o, "tpm_trust"))) {
        char trust[CERT_TPM_TRUST_KEYS_MAX * 65 + 16], why[200];
        if (!cj_string(&c, o, "tpm_trust", CJ_REQUIRED, CJ_TEXT, sizeof(trust) - 1, trust,
                       sizeof(trust)))
            return -EINVAL;
        /* "any", "certified" or CA key ids separated by commas */
        if (strspn(trust, "0123456789abcdefghijklmnopqrstuvwxyz,") != strlen(trust) ||
            cert_tpm_trust_parse(trust, &in->tpm_trust, why, sizeof(why)) < 0)
            return cj_fail(&c, "field 'tpm_trust' must be \"any\", \"certified\" or CA key ids "
                               "(64 lower-case hex digits each) separated by commas"),
                   -EINVAL;
    }
    /* an array of names (their rule is ops.c's) */
    if (!(in->has_features = has(o, "features")))
        return 0;
    v = json_object_get(o, "features");
    if (!json_is_array(v) || json_array_size(v) > CERT_FEATURES_MAX)
        return cj_fail(&c, "field 'features' must be an array of at most %d names",
                       CERT_FEATURES_MAX),
               -EINVAL;
    json_array_foreach(v, i, f) {
        if (!json_is_string(f))
            return cj_fail(&c, "field 'features' must hold strings"), -EINVAL;
        in->features[i] = json_string_value(f);
    }
    in->nfeatures = json_array_size(v);
    return 0;
}

static const char *const sign_keys[] = {"activation_certificate", "secs_granted", NULL};
static const char *const transfer_keys[] = {"to_computer_id", NULL};
static const char *const dry_run_keys[] = {"dry_run", NULL};
static const char *const token_keys[] = {"scope", "name", NULL};
static const char *const webhook_keys[] = {"url", "events", "description", NULL};

struct sign_body {
    const char *certificate;
    uint64_t secs_granted;
};

static int parse_sign(json_t *o, struct sign_body *b, char *msg, size_t msglen) {
    struct cj c = {.msg = msg, .msglen = msglen};
    json_t *v;

    b->secs_granted = UINT64_MAX;
    if (!cj_only_keys(&c, o, "", sign_keys))
        return -EINVAL;
    v = json_object_get(o, "activation_certificate");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > CERT_ACTIVATION_MAX)
        return cj_fail(&c,
                       "field 'activation_certificate' must be the appliance's activation "
                       "certificate (a string of at most %d characters)",
                       CERT_ACTIVATION_MAX),
               -EINVAL;
    b->certificate = json_string_value(v);
    if (!cj_uint(&c, o, "secs_granted", false, 0, JSON_INT_MAX, &b->secs_granted))
        return -EINVAL;
    return 0;
}

static int parse_transfer(json_t *o, char out[HWID_ID_STRLEN], char *msg, size_t msglen) {
    struct cj c = {.msg = msg, .msglen = msglen};
    if (!cj_only_keys(&c, o, "", transfer_keys) ||
        !cj_string(&c, o, "to_computer_id", CJ_REQUIRED, CJ_IDENTIFIER, HWID_ID_STRLEN - 1, out,
                   HWID_ID_STRLEN))
        return -EINVAL;
    return 0;
}

static int parse_dry_run(json_t *o, bool *dry_run, char *msg, size_t msglen) {
    struct cj c = {.msg = msg, .msglen = msglen};
    *dry_run = false;
    if (!cj_only_keys(&c, o, "", dry_run_keys) || !cj_bool(&c, o, "dry_run", false, dry_run))
        return -EINVAL;
    return 0;
}

static int parse_token(json_t *o, enum srv_scope *scope, char name[SRV_TOKEN_NAME_MAX + 1],
                       char *msg, size_t msglen) {
    struct cj c = {.msg = msg, .msglen = msglen};
    char s[16];
    if (!cj_only_keys(&c, o, "", token_keys) ||
        !cj_string(&c, o, "scope", CJ_REQUIRED, CJ_IDENTIFIER, 8, s, sizeof(s)) ||
        !cj_string(&c, o, "name", CJ_REQUIRED, CJ_TEXT, SRV_TOKEN_NAME_MAX, name,
                   SRV_TOKEN_NAME_MAX + 1))
        return -EINVAL;
    if (srv_scope_from_name(s, scope) < 0)
        return cj_fail(&c, "field 'scope' must be read, write or admin"), -EINVAL;
    return 0;
}

struct webhook_body {
    char url[SRV_WEBHOOK_URL_MAX + 1];
    char description[129];
    const char *events[16];
    size_t nevents;
};

static int parse_webhook(json_t *o, struct webhook_body *b, char *msg, size_t msglen) {
    struct cj c = {.msg = msg, .msglen = msglen};
    json_t *ev, *e;
    size_t i;

    memset(b, 0, sizeof(*b));
    if (!cj_only_keys(&c, o, "", webhook_keys) ||
        !cj_string(&c, o, "url", CJ_REQUIRED, CJ_TEXT, SRV_WEBHOOK_URL_MAX, b->url,
                   sizeof(b->url)) ||
        !cj_string(&c, o, "description", CJ_OPTIONAL, CJ_TEXT, 128, b->description,
                   sizeof(b->description)))
        return -EINVAL;
    ev = json_object_get(o, "events");
    if (!json_is_array(ev) || json_array_size(ev) == 0 ||
        json_array_size(ev) >= ARRAY_SIZE(b->events))
        return cj_fail(&c, "field 'events' must be an array of 1 to %zu event names",
                       ARRAY_SIZE(b->events) - 1),
               -EINVAL;
    json_array_foreach(ev, i, e) {
        if (!json_is_string(e))
            return cj_fail(&c, "field 'events' must hold strings"), -EINVAL;
        b->events[i] = json_string_value(e);
    }
    b->nevents = json_array_size(ev);
    return 0;
}

/* ---- handlers ------------------------------------------------------------------------------- */

#define HANDLER(name)                                                                              \
    static int name(const struct srv_api_env *env, const struct srv_api_request *req,              \
                    const char *const *params, struct srv_api_response *ret)

static const char *const no_keys[] = {NULL};

/* The operation's context: who (the token) and when. */
struct api_op {
    struct srv_op op;
    char actor[96];
};

static void api_op_init(struct api_op *a, const struct srv_api_env *env,
                        const struct srv_api_response *ret) {
    snprintf(a->actor, sizeof(a->actor), "%s", ret->actor);
    a->op = (struct srv_op){.db = env->db,
                            .now = env->now,
                            .actor = a->actor,
                            .key = env->key,
                            .write_lock = env->write_lock,
                            .ek_ca_dir = env->ek_ca_dir};
}

#define OP_BEGIN                                                                                   \
    struct api_op ao;                                                                              \
    struct srv_operr err;                                                                          \
    json_t *doc = NULL;                                                                            \
    int r;                                                                                         \
    api_op_init(&ao, env, ret)

/* A request that must have no body and no query parameters. */
static bool no_input(const struct srv_api_request *req, struct srv_api_response *ret) {
    if (!query_only(req, no_keys, ret))
        return false;
    if (req->body && req->len) {
        json_t *o = NULL;
        char msg[200];
        if (load_body(req, &o, msg, sizeof(msg)) < 0) {
            bad_request(ret, NULL, "%s", msg);
            return false;
        }
        if (json_object_size(o)) {
            json_decref(o);
            bad_request(ret, NULL, "this request takes no body");
            return false;
        }
        json_decref(o);
    }
    return true;
}

/* The body as a JSON object (an empty body is {}), or a 400 sent. */
static json_t *body_object(const struct srv_api_request *req, struct srv_api_response *ret) {
    json_t *o = NULL;
    char msg[200];
    if (!query_only(req, no_keys, ret))
        return NULL;
    if (load_body(req, &o, msg, sizeof(msg)) < 0) {
        bad_request(ret, NULL, "%s", msg);
        return NULL;
    }
    return o;
}

HANDLER(licenses_list) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_license_list(&ao.op, &doc, &err);
    return op_answer(ret, r, wrap("licenses", doc), 200, &err);
}

HANDLER(licenses_create) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    struct license_body b;
    char msg[400];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_license(o, true, &b, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_license_create(&ao.op, &b.in, &doc, &err);
    return op_answer(ret, r, doc, 201, &err);
}

HANDLER(license_show) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_license_show(&ao.op, params[0], &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(license_update) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    struct license_body b;
    bool changed = false;
    char msg[400];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_license(o, false, &b, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_license_update(&ao.op, params[0], &b.in, &doc, &changed, &err);
    if (r == 0)
        json_object_set_new(doc, "terms_changed", json_boolean(changed));
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(license_delete) {
    static const char *const keys[] = {"force", NULL};
    bool force = false;
    OP_BEGIN;
    if (!query_only(req, keys, ret) || !q_bool(req, "force", &force, ret))
        return 0;
    r = srv_op_license_delete(&ao.op, params[0], force, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(license_suspend) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_license_suspend(&ao.op, params[0], true, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(license_resume) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_license_suspend(&ao.op, params[0], false, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

static int cull(const struct srv_api_env *env, const struct srv_api_request *req, const char *code,
                struct srv_api_response *ret) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    bool dry_run;
    char msg[200];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_dry_run(o, &dry_run, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_cull(&ao.op, code, dry_run, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(license_cull) {
    return cull(env, req, params[0], ret);
}

HANDLER(cull_all) {
    return cull(env, req, NULL, ret);
}

HANDLER(offline_sign) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    struct sign_body b;
    char msg[400];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_sign(o, &b, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_offline_sign(&ao.op, b.certificate, strlen(b.certificate), b.secs_granted, &doc,
                            &err);
    return op_answer(ret, r, doc, 201, &err);
}

HANDLER(activations_list) {
    static const char *const keys[] = {"license",       "state", "kind",   "computer_id", "flagged",
                                       "not_seen_days", "limit", "offset", NULL};
    struct srv_activation_query q = {0};
    uint64_t days = 0, limit = 100, offset = 0;
    OP_BEGIN;
    if (!query_only(req, keys, ret) || !q_bool(req, "flagged", &q.flagged, ret) ||
        !q_uint(req, "not_seen_days", 1, 36500, &days, ret) ||
        !q_uint(req, "limit", 1, 1000, &limit, ret) ||
        !q_uint(req, "offset", 0, 1000000000, &offset, ret))
        return 0;
    q.license = q_str(req, "license");
    q.state = q_str(req, "state");
    q.kind = q_str(req, "kind");
    q.computer_id = q_str(req, "computer_id");
    q.not_seen_days = (unsigned)days;
    q.limit = (unsigned)limit;
    q.offset = (unsigned)offset;
    r = srv_op_activation_list(&ao.op, &q, &doc, &err);
    return op_answer(ret, r, wrap("activations", doc), 200, &err);
}

HANDLER(activation_show) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_activation_show(&ao.op, params[0], &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(activation_revoke) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_activation_revoke(&ao.op, params[0], &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(activation_transfer) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    char to[HWID_ID_STRLEN], msg[200];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_transfer(o, to, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_activation_transfer(&ao.op, params[0], to, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(activation_clear_flags) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_activation_clear_flags(&ao.op, params[0], &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(audit_list) {
    static const char *const keys[] = {"since",  "until",     "actor", "action",
                                       "target", "before_id", "limit", NULL};
    struct srv_audit_query q = {0};
    uint64_t before = 0, limit = 100;
    OP_BEGIN;
    if (!query_only(req, keys, ret) || !q_time(req, "since", &q.since, ret) ||
        !q_time(req, "until", &q.until, ret) ||
        !q_uint(req, "before_id", 1, JSON_INT_MAX, &before, ret) ||
        !q_uint(req, "limit", 1, 1000, &limit, ret))
        return 0;
    q.actor = q_str(req, "actor");
    q.action = q_str(req, "action");
    q.target = q_str(req, "target");
    q.before_id = (int64_t)before;
    q.limit = (unsigned)limit;
    r = srv_op_audit_list(&ao.op, &q, &doc, &err);
    return op_answer(ret, r, wrap("audit", doc), 200, &err);
}

HANDLER(tokens_list) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_token_list(&ao.op, &doc, &err);
    return op_answer(ret, r, wrap("tokens", doc), 200, &err);
}

HANDLER(tokens_create) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    char name[SRV_TOKEN_NAME_MAX + 1], msg[200];
    enum srv_scope scope;
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_token(o, &scope, name, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_token_create(&ao.op, scope, name, &doc, &err);
    return op_answer(ret, r, doc, 201, &err);
}

HANDLER(token_revoke) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_token_revoke(&ao.op, params[0], &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(webhooks_list) {
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    r = srv_op_webhook_list(&ao.op, &doc, &err);
    return op_answer(ret, r, wrap("webhooks", doc), 200, &err);
}

HANDLER(webhooks_create) {
    _cleanup_(json_decrefp) json_t *o = body_object(req, ret);
    struct webhook_body b;
    char msg[300];
    OP_BEGIN;
    if (!o)
        return 0;
    if (parse_webhook(o, &b, msg, sizeof(msg)) < 0)
        return bad_request(ret, NULL, "%s", msg);
    r = srv_op_webhook_create(&ao.op, b.url, b.events, b.nevents, b.description, &doc, &err);
    return op_answer(ret, r, doc, 201, &err);
}

HANDLER(webhook_delete) {
    uint64_t id = 0;
    OP_BEGIN;
    if (!no_input(req, ret))
        return 0;
    if (strspn(params[0], "0123456789") != strlen(params[0]) || strlen(params[0]) > 15 ||
        (id = strtoull(params[0], NULL, 10)) == 0)
        return bad_request(ret, NULL, "a webhook ID is a whole number");
    r = srv_op_webhook_delete(&ao.op, (int64_t)id, &doc, &err);
    return op_answer(ret, r, doc, 200, &err);
}

HANDLER(deliveries_list) {
    static const char *const keys[] = {"webhook_id", "state", "limit", NULL};
    uint64_t hook = 0, limit = 100;
    OP_BEGIN;
    if (!query_only(req, keys, ret) || !q_uint(req, "webhook_id", 1, JSON_INT_MAX, &hook, ret) ||
        !q_uint(req, "limit", 1, 1000, &limit, ret))
        return 0;
    r = srv_op_delivery_list(&ao.op, (int64_t)hook, q_str(req, "state"), (unsigned)limit, &doc,
                             &err);
    return op_answer(ret, r, wrap("deliveries", doc), 200, &err);
}

/* ---- the route table ----------------------------------------------------------------------- */

#define A(method, path, scope, handler, summary)                                                   \
    { method, SRV_API_PREFIX path, SRV_ROUTE_ADMIN, scope, handler, summary }

const struct srv_route srv_routes[] = {
    {"POST", "/v1/activate", SRV_ROUTE_ACTIVATE, SRV_SCOPE_NONE, NULL,
     "an appliance activates (docs/online.md)"},
    {"POST", "/v1/validate", SRV_ROUTE_VALIDATE, SRV_SCOPE_NONE, NULL,
     "an appliance validates, refills (docs/online.md)"},
    {"POST", "/v1/deactivate", SRV_ROUTE_DEACTIVATE, SRV_SCOPE_NONE, NULL,
     "an appliance deactivates, returns seconds (docs/online.md)"},
    {"GET", "/health", SRV_ROUTE_HEALTH, SRV_SCOPE_NONE, NULL,
     "200 when the server and its database answer, else 503"},
    {"GET", "/metrics", SRV_ROUTE_METRICS, SRV_SCOPE_NONE, NULL, "Prometheus metrics"},
    A("GET", "/licenses", SRV_SCOPE_READ, licenses_list, "list the licenses"),
    A("POST", "/licenses", SRV_SCOPE_WRITE, licenses_create, "create a license"),
    A("GET", "/licenses/{code}", SRV_SCOPE_READ, license_show,
      "a license, its pool, activations and open transfers"),
    A("PATCH", "/licenses/{code}", SRV_SCOPE_WRITE, license_update, "change a license's terms"),
    A("DELETE", "/licenses/{code}", SRV_SCOPE_WRITE, license_delete,
      "delete a license (?force=true with active activations)"),
    A("POST", "/licenses/{code}/suspend", SRV_SCOPE_WRITE, license_suspend, "suspend a license"),
    A("POST", "/licenses/{code}/resume", SRV_SCOPE_WRITE, license_resume, "resume a license"),
    A("POST", "/licenses/{code}/cull", SRV_SCOPE_WRITE, license_cull,
      "close a license's activations not seen for its cull_days"),
    A("POST", "/cull", SRV_SCOPE_WRITE, cull_all, "cull every license that has a cull policy"),
    A("POST", "/offline-activations", SRV_SCOPE_WRITE, offline_sign,
      "sign an activation certificate as an offline activation"),
    A("GET", "/activations", SRV_SCOPE_READ, activations_list, "list activations, filtered"),
    A("GET", "/activations/{id}", SRV_SCOPE_READ, activation_show, "an activation and its flags"),
    A("POST", "/activations/{id}/revoke", SRV_SCOPE_WRITE, activation_revoke,
      "revoke an activation: its seat is free"),
    A("POST", "/activations/{id}/transfer", SRV_SCOPE_WRITE, activation_transfer,
      "move an activation's seat to another computer"),
    A("POST", "/activations/{id}/clear-flags", SRV_SCOPE_WRITE, activation_clear_flags,
      "clear an activation's clone flags"),
    A("GET", "/audit", SRV_SCOPE_ADMIN, audit_list, "the audit log, newest first"),
    A("GET", "/tokens", SRV_SCOPE_ADMIN, tokens_list, "list API tokens"),
    A("POST", "/tokens", SRV_SCOPE_ADMIN, tokens_create, "create an API token"),
    A("DELETE", "/tokens/{id}", SRV_SCOPE_ADMIN, token_revoke, "revoke an API token"),
    A("GET", "/webhooks", SRV_SCOPE_ADMIN, webhooks_list, "list webhook endpoints"),
    A("POST", "/webhooks", SRV_SCOPE_ADMIN, webhooks_create, "add a webhook endpoint"),
    A("DELETE", "/webhooks/{id}", SRV_SCOPE_ADMIN, webhook_delete, "remove a webhook endpoint"),
    A("GET", "/deliveries", SRV_SCOPE_ADMIN, deliveries_list, "the webhook delivery log"),
};
const size_t srv_nroutes = ARRAY_SIZE(srv_routes);

/* Whether pattern matches path, segment by segment; params point into buf
 * (a copy of path with its slashes cut). */
static bool match(const char *pattern, const char *path, char *buf, size_t buflen,
                  const char **params) {
    size_t n = strlen(path), np = 0;
    const char *pp = pattern + 1;
    char *s = buf + 1;

    if (n >= buflen || path[0] != '/')
        return false;
    memcpy(buf, path, n + 1);
    for (;;) {
        char *slash = strchr(s, '/');
        size_t plen = strcspn(pp, "/");

        if (slash)
            *slash = '\0';
        if (pp[0] == '{') {
            if (!*s || np >= SRV_API_PARAMS)
                return false;
            params[np++] = s;
        } else if (strlen(s) != plen || strncmp(s, pp, plen) != 0) {
            return false;
        }
        pp += plen;
        if (!slash)
            return *pp == '\0';
        if (*pp != '/')
            return false;
        pp++;
        s = slash + 1;
    }
}

const struct srv_route *srv_route_find(const char *method, const char *path, bool *method_ok,
                                       char *allow, size_t allowlen, char *buf, size_t buflen,
                                       const char **params) {
    const struct srv_route *any = NULL;
    size_t o = 0;

    *method_ok = false;
    if (allowlen)
        allow[0] = '\0';
    for (size_t i = 0; i < srv_nroutes; i++) {
        const char *p[SRV_API_PARAMS] = {0};
        if (!match(srv_routes[i].path, path, buf, buflen, p))
            continue;
        if (!strcmp(srv_routes[i].method, method)) {
            /* match() again: buf must hold this route's parameters */
            match(srv_routes[i].path, path, buf, buflen, params);
            *method_ok = true;
            return &srv_routes[i];
        }
        if (!any)
            any = &srv_routes[i];
        if (o < allowlen)
            o += (size_t)snprintf(allow + o, allowlen - o, "%s%s", o ? ", " : "",
                                  srv_routes[i].method);
    }
    return any;
}

void srv_api_handle(const struct srv_api_env *env, const struct srv_route *route,
                    const char *const *params, const struct srv_api_request *req,
                    struct srv_api_response *ret) {
    struct srv_token_info tok;
    const char *auth = req->authorization;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        ret->auth_failed = true;
        set_error(ret, 401, NULL, NULL,
                  "an API token is needed: send 'Authorization: Bearer TOKEN' (tpmlic-server "
                  "token create)");
        return;
    }
    r = srv_token_check(env->db, auth + 7 + strspn(auth + 7, " "), &tok);
    if (r == -EACCES) {
        ret->auth_failed = true;
        set_error(ret, 401, NULL, NULL, "the API token is not valid (unknown or revoked)");
        return;
    }
    if (r < 0) {
        set_error(ret, r == -EBUSY ? 503 : 500, NULL, NULL, "the database failed");
        return;
    }
    snprintf(ret->token, sizeof(ret->token), "%s", tok.id);
    if (tok.scope < route->scope) {
        char msg[160];
        snprintf(msg, sizeof(msg), "this token's scope is %s; %s %s needs %s",
                 srv_scope_name(tok.scope), route->method, route->path,
                 srv_scope_name(route->scope));
        set_error(ret, 403, NULL, NULL, msg);
        return;
    }
    snprintf(ret->actor, sizeof(ret->actor), "token:%s (%.60s)", tok.id, tok.name);
    route->handler(env, req, params, ret);
    if (!ret->body)
        set_error(ret, 500, NULL, NULL, "out of memory");
}

int srv_api_parse_body(const char *route_path, const char *method, const char *body, size_t len,
                       char *msg, size_t msglen) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = cj_load_object(body, len, true, &o, msg, msglen);

    if (r < 0)
        return r;
    if (!strcmp(route_path, SRV_API_PREFIX "/licenses") ||
        !strcmp(route_path, SRV_API_PREFIX "/licenses/{code}")) {
        struct license_body b;
        return parse_license(o, !strcmp(method, "POST"), &b, msg, msglen);
    }
    if (!strcmp(route_path, SRV_API_PREFIX "/offline-activations")) {
        struct sign_body b;
        return parse_sign(o, &b, msg, msglen);
    }
    if (!strcmp(route_path, SRV_API_PREFIX "/activations/{id}/transfer")) {
        char to[HWID_ID_STRLEN];
        return parse_transfer(o, to, msg, msglen);
    }
    if (!strcmp(route_path, SRV_API_PREFIX "/cull") ||
        !strcmp(route_path, SRV_API_PREFIX "/licenses/{code}/cull")) {
        bool d;
        return parse_dry_run(o, &d, msg, msglen);
    }
    if (!strcmp(route_path, SRV_API_PREFIX "/tokens")) {
        enum srv_scope s;
        char name[SRV_TOKEN_NAME_MAX + 1];
        return parse_token(o, &s, name, msg, msglen);
    }
    if (!strcmp(route_path, SRV_API_PREFIX "/webhooks")) {
        struct webhook_body b;
        return parse_webhook(o, &b, msg, msglen);
    }
    return 0;
}
