/* The socket API's routes (routes.h). Service endpoints that only read
 * answer from a snapshot: no lock that a TPM write or the network holds,
 * no TPM command, no disk I/O. Every route that changes something may wait
 * on the ledger's lock (held across TPM writes) and so is marked blocking:
 * it runs off the polling threads and stalls no other connection. */
#include "agent/routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/clock.h"
#include "agent/http.h"
#include "agent/ledger.h"
#include "agent/netconf.h"
#include "agent/render.h"
#include "agent/tpmio.h"
#include "agent/validator.h"
#include "common/json.h"
#include "common/macro.h"

#define NOT_AUTHORISED "You are not authorised to perform this action: "

static int status_of(enum outcome_kind k) {
    static const int codes[] = {
        [OUTCOME_OK] = 200,        [OUTCOME_INVALID] = 400,  [OUTCOME_REFUSED] = 403,
        [OUTCOME_NOT_FOUND] = 404, [OUTCOME_CONFLICT] = 409, [OUTCOME_LIMIT] = 429,
        [OUTCOME_INTERNAL] = 500,  [OUTCOME_UPSTREAM] = 502, [OUTCOME_UNAVAILABLE] = 503,
    };
    return (unsigned)k < ARRAY_SIZE(codes) && codes[k] ? codes[k] : 500;
}

static void respond_outcome(struct http_response *resp, const struct outcome *o) {
    http_respond_error(resp, status_of(o->kind), "%s", o->msg);
}

/* The body as one JSON object whose keys are all in keys; a 400 saying
 * what is wrong otherwise. */
static json_t *read_body(const struct http_request *req, bool allow_empty, const char *const *keys,
                         struct http_response *resp) {
    json_t *body = NULL;
    char msg[300];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};

    if (http_parse_json_object(req, allow_empty, &body, resp) < 0)
        return NULL;
    if (!cj_only_keys(&c, body, "", keys)) {
        http_respond_error(resp, 400, "%s", msg);
        json_decref(body);
        return NULL;
    }
    return body;
}

static void respond_cj(struct http_response *resp, const struct cj *c) {
    http_respond_error(resp, 400, "%s", c->msg);
}

/* ---- service endpoints: snapshots only -------------------------------------- */

static void get_status(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(x->ledger);
    struct tpmio_health h;

    tpmio_health(x->tpm, &h);
    http_respond_json(resp, 200, render_status(s, &h, agent_now()));
}

/* {"feature"?: NAME | null}, or no body */
static bool read_check(const struct http_request *req, char feature[LICENSE_FEATURE_LEN],
                       struct http_response *resp) {
    static const char *const keys[] = {"feature", NULL};
    _cleanup_(json_decrefp) json_t *body = read_body(req, true, keys, resp);
    char msg[200];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};

    feature[0] = '\0';
    if (!body)
        return false;
    if (!cj_string(&c, body, "feature", CJ_NULLABLE, CJ_IDENTIFIER, LICENSE_FEATURE_LEN - 1,
                   feature, LICENSE_FEATURE_LEN)) {
        respond_cj(resp, &c);
        return false;
    }
    return true;
}

static void post_check(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(snapshot_putp) const struct snapshot *s = NULL;
    char reason[256], feature[LICENSE_FEATURE_LEN] = "";

    if (!read_check(req, feature, resp))
        return;
    s = ledger_snapshot(x->ledger);
    if (!tpmio_trusted(x->tpm)) {
        /* an answer of the TPM failed its authentication: fail closed */
        atomic_fetch_add(&x->checks_denied, 1);
        return http_respond_json(resp, 403,
                                 json_pack("{s:b, s:s, s:i}", "allowed", false, "error",
                                           NOT_AUTHORISED "the TPM's answers could not be "
                                                          "authenticated",
                                           "code", 403));
    }
    if (license_decide(&s->lic, feature[0] ? feature : NULL, snapshot_decision_time(s, agent_now()),
                       reason, sizeof(reason)) == VERDICT_ALLOWED) {
        atomic_fetch_add(&x->checks_allowed, 1);
        http_respond_json(
            resp, 200,
            json_pack("{s:b, s:s?}", "allowed", true, "feature", feature[0] ? feature : NULL));
    } else {
        atomic_fetch_add(&x->checks_denied, 1);
        http_respond_json(resp, 403,
                          json_pack("{s:b, s:s+, s:i}", "allowed", false, "error", NOT_AUTHORISED,
                                    reason, "code", 403));
    }
}

static void get_licensing(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(x->ledger);
    struct validator_status v;

    validator_status(x->validator, &v);
    http_respond_json(resp, 200, render_licensing(s, &v, agent_now()));
}

static void get_metrics(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(x->ledger);
    struct render_counters c = {
        .checks_allowed = atomic_load(&x->checks_allowed),
        .checks_denied = atomic_load(&x->checks_denied),
    };
    struct validator_status v;
    struct tpmio_health h;
    struct http_stats hs = {0};
    char *text;

    tpmio_health(x->tpm, &h);
    validator_status(x->validator, &v);
    if (x->http)
        http_server_stats(x->http, &hs);
    c.http_requests = hs.requests;
    c.http_connections_open = hs.connections_open;
    c.http_connections_refused = hs.connections_refused;
    c.http_connections_too_slow = hs.connections_too_slow;
    text = render_metrics(s, &h, &v, &c, agent_now());
    if (!text)
        return http_respond_error(resp, 500, "out of memory");
    http_respond_text(resp, 200, HTTP_CONTENT_TYPE_PROMETHEUS, text);
}

/* ---- service endpoints: usage seconds -------------------------------------- */

struct reserve_body {
    uint64_t secs;
    char feature[LICENSE_FEATURE_LEN]; /* "" when none */
};

/* {"seconds": N, "feature"?: NAME} */
static bool read_reserve(const struct http_request *req, struct reserve_body *b,
                         struct http_response *resp) {
    static const char *const keys[] = {"seconds", "feature", NULL};
    _cleanup_(json_decrefp) json_t *body = read_body(req, false, keys, resp);
    char msg[200];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};

    memset(b, 0, sizeof(*b));
    if (!body)
        return false;
    if (!cj_uint(&c, body, "seconds", true, 1, LEASE_RESERVE_MAX, &b->secs)) {
        http_respond_error(resp, 400, "'seconds' must be a whole number from 1 to %d",
                           LEASE_RESERVE_MAX);
        return false;
    }
    if (!cj_string(&c, body, "feature", CJ_OPTIONAL, CJ_IDENTIFIER, LICENSE_FEATURE_LEN - 1,
                   b->feature, sizeof(b->feature))) {
        respond_cj(resp, &c);
        return false;
    }
    return true;
}

static void post_reserve(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    struct reserve_body b;
    struct lease_grant g;
    struct outcome o;

    if (!read_reserve(req, &b, resp))
        return;
    if (!ledger_reserve(x->ledger, req->peer->uid, b.secs, b.feature[0] ? b.feature : NULL, &g, &o))
        return respond_outcome(resp, &o);
    http_respond_json(resp, 200,
                      json_pack("{s:s, s:I, s:I}", "lease", g.id, "seconds", (json_int_t)g.secs,
                                "expires_in", (json_int_t)g.expires_in));
    if (g.refill)
        validator_refill(x->validator);
}

struct commit_body {
    char lease[LEASE_ID_LEN + 1];
    uint64_t used;
};

/* {"lease": ID, "used": SECONDS} */
static bool read_commit(const struct http_request *req, struct commit_body *b,
                        struct http_response *resp) {
    static const char *const keys[] = {"lease", "used", NULL};
    _cleanup_(json_decrefp) json_t *body = read_body(req, false, keys, resp);
    char msg[200];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};

    memset(b, 0, sizeof(*b));
    if (!body)
        return false;
    if (!cj_string(&c, body, "lease", CJ_REQUIRED, CJ_IDENTIFIER, LEASE_ID_LEN, b->lease,
                   sizeof(b->lease)) ||
        !cj_uint(&c, body, "used", true, 0, LEASE_RESERVE_MAX, &b->used)) {
        http_respond_error(resp, 400, "the body must be {\"lease\": ID, \"used\": SECONDS}: %s",
                           msg);
        return false;
    }
    return true;
}

static void post_commit(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    struct commit_body b;
    uint64_t charged = 0, returned = 0;
    struct outcome o;

    if (!read_commit(req, &b, resp))
        return;
    if (!ledger_commit(x->ledger, req->peer->uid, req->peer->uid == 0, b.lease, b.used, &charged,
                       &returned, &o))
        return respond_outcome(resp, &o);
    http_respond_json(
        resp, 200,
        json_pack("{s:I, s:I}", "charged", (json_int_t)charged, "returned", (json_int_t)returned));
}

/* ---- management endpoints ------------------------------------------------------------- */

static void respond_license(struct routes_ctx *x, struct http_response *resp) {
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(x->ledger);
    struct validator_status v;

    validator_status(x->validator, &v);
    http_respond_json(resp, 200, render_license(s, &v, agent_now()));
}

static void get_license(void *ud, const struct http_request *req, struct http_response *resp) {
    respond_license(ud, resp);
}

/* {"license": CODE, "username"?, "email_address"?, "company_name"?} */
static bool read_activation_fields(json_t *body, struct activation_fields *f,
                                   struct http_response *resp) {
    char msg[200];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};

    memset(f, 0, sizeof(*f));
    if (!cj_license_code(&c, body, "license", true, f->license, sizeof(f->license)) ||
        !cj_string(&c, body, "username", CJ_OPTIONAL, CJ_TEXT, 128, f->username,
                   sizeof(f->username)) ||
        !cj_string(&c, body, "email_address", CJ_OPTIONAL, CJ_TEXT, 128, f->email_address,
                   sizeof(f->email_address)) ||
        !cj_string(&c, body, "company_name", CJ_OPTIONAL, CJ_TEXT, 128, f->company_name,
                   sizeof(f->company_name))) {
        respond_cj(resp, &c);
        return false;
    }
    return true;
}

static const char *const activation_keys[] = {"license", "username", "email_address",
                                              "company_name", NULL};

/* POST /v1/management/license */
static bool read_activation(const struct http_request *req, struct activation_fields *f,
                            struct http_response *resp) {
    _cleanup_(json_decrefp) json_t *body = read_body(req, false, activation_keys, resp);

    return body && read_activation_fields(body, f, resp);
}

static void post_license(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    struct activation_fields f;
    struct outcome o;

    if (!read_activation(req, &f, resp))
        return;
    if (!validator_activate(x->validator, &f, &o))
        return respond_outcome(resp, &o);
    respond_license(x, resp);
}

static void delete_license(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    uint64_t returned = 0;
    struct outcome o;

    if (!validator_deactivate(x->validator, &returned, &o))
        return respond_outcome(resp, &o);
    http_respond_json(resp, 200,
                      json_pack("{s:I}", "transcription_secs_returned", (json_int_t)returned));
}

/* POST /v1/management/license/offlineactivation: the activation fields; a
 * license certificate is refused with a hint to PUT it instead */
static bool read_offline_request(const struct http_request *req, struct activation_fields *f,
                                 struct http_response *resp) {
    _cleanup_(json_decrefp) json_t *body = NULL;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return false;
    if (json_object_get(body, "certificate")) {
        http_respond_error(resp, 400,
                           "Unable to request activation certificate: this request carries a "
                           "license certificate. To apply it, send the same body with PUT "
                           "/v1/management/license/offlineactivation");
        return false;
    }
    return read_activation(req, f, resp);
}

static void post_offlineactivation(void *ud, const struct http_request *req,
                                   struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_free_ char *text = NULL;
    struct activation_fields f;
    struct outcome o;
    char nonce[33];

    if (!read_offline_request(req, &f, resp))
        return;
    if (!ledger_activation_request(x->ledger, &f, &text, nonce, &o)) {
        o.kind = o.kind == OUTCOME_OK ? OUTCOME_INTERNAL : o.kind;
        return http_respond_error(resp, status_of(o.kind),
                                  "Unable to request activation certificate: %s", o.msg);
    }
    http_respond_json(resp, 200, json_pack("{s:s}", "activation_certificate", text));
}

/* PUT /v1/management/license/offlineactivation: {"license": CODE,
 * "certificate": TEXT}. Returns the body, which holds the certificate
 * (*ret_cert, *ret_len: without the white space around it), or NULL with
 * resp filled. */
static json_t *read_offline_cert(const struct http_request *req, char code[LICENSE_CODE_MAX + 1],
                                 const char **ret_cert, size_t *ret_len,
                                 struct http_response *resp) {
    static const char *const keys[] = {"license", "certificate", NULL};
    _cleanup_(json_decrefp) json_t *body = read_body(req, false, keys, resp);
    char msg[200];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    json_t *cert;
    const char *p;
    size_t n;

    if (!body)
        return NULL;
    cert = json_object_get(body, "certificate");
    if (!cj_license_code(&c, body, "license", true, code, LICENSE_CODE_MAX + 1) ||
        !json_is_string(cert)) {
        http_respond_error(resp, 400,
                           "the body must be {\"license\": CODE, \"certificate\": "
                           "LICENSE_CERTIFICATE}%s%s",
                           c.failed ? ": " : "", c.failed ? msg : "");
        return NULL;
    }
    /* a certificate pasted from an e-mail may carry white space around it */
    p = json_string_value(cert);
    n = json_string_length(cert);
    while (n && strchr(" \n\r\t", *p))
        p++, n--;
    while (n && strchr(" \n\r\t", p[n - 1]))
        n--;
    *ret_cert = p;
    *ret_len = n;
    return TAKE_PTR(body);
}

static void put_offlineactivation(void *ud, const struct http_request *req,
                                  struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(json_decrefp) json_t *body = NULL;
    char code[LICENSE_CODE_MAX + 1];
    const char *p = NULL;
    struct outcome o;
    size_t n = 0;

    body = read_offline_cert(req, code, &p, &n, resp);
    if (!body)
        return;
    if (!ledger_apply_offline(x->ledger, code, p, n, &o)) {
        if (o.kind == OUTCOME_INVALID)
            return http_respond_error(resp, 400, "License certificate refused: %s", o.msg);
        return http_respond_error(resp, status_of(o.kind), "License certificate not applied: %s",
                                  o.msg);
    }
    respond_license(x, resp);
}

/* {"offline": BOOL} */
static bool read_offline_mode(const struct http_request *req, bool *ret_offline,
                              struct http_response *resp) {
    _cleanup_(json_decrefp) json_t *body = NULL;
    json_t *off;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return false;
    off = json_object_get(body, "offline");
    if (!json_is_boolean(off) || json_object_size(body) != 1) {
        http_respond_error(resp, 400,
                           "the body must be {\"offline\": true} or {\"offline\": false}");
        return false;
    }
    *ret_offline = json_is_true(off);
    return true;
}

static void post_offlinemode(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    struct outcome o;
    bool back_online, offline;

    if (!read_offline_mode(req, &offline, resp))
        return;
    if (!ledger_set_offline_mode(x->ledger, offline, &back_online, &o))
        return respond_outcome(resp, &o);
    respond_license(x, resp);
    if (back_online)
        validator_poke(x->validator);
}

static void post_network(void *ud, const struct http_request *req, struct http_response *resp) {
    struct routes_ctx *x = ud;
    _cleanup_(json_decrefp) json_t *body = NULL;
    json_t *shown = NULL;
    char err[256];

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    if (agent_netconf_set(x->state_fd, body, &shown, err, sizeof(err)) < 0)
        return http_respond_error(resp, 400, "%s", err);
    http_respond_json(resp, 200, shown);
}

#define BLOCKING HTTP_ROUTE_BLOCKING
static const struct http_route routes[] = {
    {"GET", "/v1/status", HTTP_PERM_SERVICE, get_status, 0},
    {"POST", "/v1/check", HTTP_PERM_SERVICE, post_check, 0},
    {"POST", "/v1/usage/reserve", HTTP_PERM_SERVICE, post_reserve, BLOCKING},
    {"POST", "/v1/usage/commit", HTTP_PERM_SERVICE, post_commit, BLOCKING},
    {"GET", "/licensing", HTTP_PERM_SERVICE, get_licensing, 0},
    {"GET", "/metrics", HTTP_PERM_SERVICE, get_metrics, 0},
    {"GET", "/v1/management/license", HTTP_PERM_ADMIN, get_license, 0},
    {"POST", "/v1/management/license", HTTP_PERM_ADMIN, post_license, BLOCKING},
    {"DELETE", "/v1/management/license", HTTP_PERM_ADMIN, delete_license, BLOCKING},
    {"POST", "/v1/management/license/network", HTTP_PERM_ADMIN, post_network, BLOCKING},
    {"POST", "/v1/management/license/offlineactivation", HTTP_PERM_ADMIN, post_offlineactivation,
     BLOCKING},
    {"PUT", "/v1/management/license/offlineactivation", HTTP_PERM_ADMIN, put_offlineactivation,
     BLOCKING},
    {"POST", "/v1/management/license/offlinemode", HTTP_PERM_ADMIN, post_offlinemode, BLOCKING},
};

const struct http_route *agent_routes(size_t *ret_n) {
    *ret_n = ARRAY_SIZE(routes);
    return routes;
}

int agent_routes_read_body(const char *method, const char *path, const char *body, size_t len,
                           struct http_response *resp) {
    const struct http_request req = {
        .method = method, .path = path, .body = len ? body : NULL, .body_len = len};
    union {
        char feature[LICENSE_FEATURE_LEN];
        struct reserve_body reserve;
        struct commit_body commit;
        struct activation_fields activation;
        char code[LICENSE_CODE_MAX + 1];
        bool offline;
    } b;
    _cleanup_(json_decrefp) json_t *o = NULL;
    const char *cert;
    size_t n;
    bool ok;

    if (!strcmp(path, "/v1/check"))
        ok = read_check(&req, b.feature, resp);
    else if (!strcmp(path, "/v1/usage/reserve"))
        ok = read_reserve(&req, &b.reserve, resp);
    else if (!strcmp(path, "/v1/usage/commit"))
        ok = read_commit(&req, &b.commit, resp);
    else if (!strcmp(path, "/v1/management/license") && !strcmp(method, "POST"))
        ok = read_activation(&req, &b.activation, resp);
    else if (!strcmp(path, "/v1/management/license/offlineactivation") && !strcmp(method, "POST"))
        ok = read_offline_request(&req, &b.activation, resp);
    else if (!strcmp(path, "/v1/management/license/offlineactivation") && !strcmp(method, "PUT"))
        ok = (o = read_offline_cert(&req, b.code, &cert, &n, resp)) != NULL;
    else if (!strcmp(path, "/v1/management/license/offlinemode"))
        ok = read_offline_mode(&req, &b.offline, resp);
    else if (!strcmp(path, "/v1/management/license/network"))
        ok = http_parse_json_object(&req, false, &o, resp) == 0;
    else
        return -ENOENT;
    return ok ? 0 : -EINVAL;
}
