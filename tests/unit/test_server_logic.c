/* tpmlic-server's decisions (server/logic.c) and administrative operations
 * (server/ops.c) on a real SQLite database in a temporary directory, or a
 * real PostgreSQL database (TPMLIC_TEST_PG_HOST), without the network: each request is
 * the parsed JSON body an agent would send, each answer is signed and then
 * verified like the agent does (cert_answer_verify), and license
 * certificates in answers are verified with cert_license_verify.
 *
 * Covered: activate / validate / deactivate and their answer fields; max
 * activations and re-activation by the same appliance; refill never beyond
 * the pool; the pool adds up exactly after several activations are closed;
 * stale epochs and counters going back (refused, flagged, the current
 * holder continues); a retry with the pending next epoch; suspended,
 * expired and unknown licenses; not_active after deactivation; malformed
 * requests (400, nothing changed); offline signing against the same
 * maximum; new certificates when the terms change; concurrent activations
 * from several connections never over-commit the pool; schema migrations
 * from an empty file, step by step, and re-opening (user_version);
 * revoke, transfer, cull, clear-flags, tokens stored hashed, webhook events
 * and deliveries with back-off, the audit log and its filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cert/cert.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"
#include <sqlite3.h>

#include "server/server.h"
#include "common/hex.h"

#define NOW    1800000000 /* 2027-01-15T08:00:00Z */
#define EXPIRY 1830000000 /* 2027-12-28T13:20:00Z */

static EVP_PKEY *vendor, *vendor_pub, *ek_key;
static uint8_t *ek_der;
static size_t ek_der_len;
static char dir[64];
static unsigned db_seq;

/* PostgreSQL instead of SQLite when TPMLIC_TEST_PG_HOST names the socket
 * directory of a running cluster (tests/integration/server_pg.sh starts
 * one): the same tests, a database of their own each. */
static const char *pg_host, *pg_port, *pg_user;

/* ---- fixtures ---------------------------------------------------------------------- */

static int group_setup(void **state) {
    unsigned char *der = NULL;
    const unsigned char *p;
    int len;

    pg_host = getenv("TPMLIC_TEST_PG_HOST");
    pg_port = getenv("TPMLIC_TEST_PG_PORT") ?: "5432";
    pg_user = getenv("TPMLIC_TEST_PG_USER") ?: "postgres";
    if (pg_host && !*pg_host)
        pg_host = NULL;
    vendor = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ek_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!vendor || !ek_key)
        return -1;
    /* the public half alone, as an agent holds it */
    len = i2d_PUBKEY(vendor, &der);
    p = der;
    vendor_pub = len > 0 ? d2i_PUBKEY(NULL, &p, len) : NULL;
    OPENSSL_free(der);
    der = NULL;
    len = i2d_PUBKEY(ek_key, &der);
    if (!vendor_pub || len <= 0)
        return -1;
    ek_der = der;
    ek_der_len = (size_t)len;
    snprintf(dir, sizeof(dir), "/tmp/tpmlic-test-server-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state) {
    char cmd[128];
    EVP_PKEY_free(vendor);
    EVP_PKEY_free(vendor_pub);
    EVP_PKEY_free(ek_key);
    OPENSSL_free(ek_der);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void pg_uri(const char *dbname, char *out, size_t len) {
    snprintf(out, len, "postgresql://%s@/%s?host=%s&port=%s", pg_user, dbname, pg_host, pg_port);
}

/* A fresh database for each test: a new SQLite file, or a new PostgreSQL
 * database (made through the cluster's "postgres" database). */
static void db_path(char *out, size_t len) {
    char name[64], maint[256], sql[96], err[256] = "";
    struct srv_db *m = NULL;

    if (!pg_host) {
        snprintf(out, len, "%s/db%u.sqlite", dir, ++db_seq);
        return;
    }
    snprintf(name, sizeof(name), "logic_%u_%u", (unsigned)getpid(), ++db_seq);
    pg_uri("postgres", maint, sizeof(maint));
    if (srv_pg_connect(maint, &m, err, sizeof(err)) < 0)
        fail_msg("PostgreSQL: %s", err);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    if (srv_db_exec(m, sql) < 0)
        fail_msg("%s: %s", sql, srv_db_errmsg(m));
    srv_db_close(m);
    pg_uri(name, out, len);
}

/* the server's settings for the requests of a test, and fields a request
 * carries beyond the ones check_req takes (tpm_clock, base, time_floor) as
 * JSON text; each test starts without them (fresh_db) */
static uint64_t test_window_secs;
static const char *test_ek_ca_dir;
static const char *req_extra;

static struct srv_db *fresh_db(void) {
    char path[256], err[256] = "";
    struct srv_db *db = NULL;
    test_window_secs = 0;
    test_ek_ca_dir = NULL;
    req_extra = NULL;
    db_path(path, sizeof(path));
    if (srv_db_open(path, true, &db, err, sizeof(err)) < 0)
        fail_msg("srv_db_open: %s", err);
    return db;
}

static struct srv_license make_license(struct srv_db *db, const char *code,
                                       enum cert_license_type type, uint64_t allocated,
                                       uint64_t cache, uint32_t max_act) {
    struct srv_license l = {.customer_id = 4949,
                            .type = type,
                            .expiry = type == CERT_PERPETUAL ? 0 : EXPIRY,
                            .secs_allocated = allocated,
                            .cache_secs = cache,
                            .tick_secs = 60,
                            .max_activations = max_act,
                            .terms = 1,
                            .created = NOW - 86400,
                            .updated = NOW - 86400};
    snprintf(l.code, sizeof(l.code), "%s", code);
    snprintf(l.product, sizeof(l.product), "speech");
    snprintf(l.features[0], sizeof(l.features[0]), "standard");
    l.nfeatures = 1;
    assert_int_equal(srv_license_insert(db, &l), 0);
    assert_true(l.id > 0);
    return l;
}

/* One appliance: serial picks the DMI board serial (so the computer ID),
 * counter_name picks the NV counter's name (a re-created counter). */
struct appliance {
    char computer_id[HWID_ID_STRLEN];
    struct cert_counter counter;
};

static struct appliance appliance(unsigned serial, unsigned counter_name, uint64_t counter) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    char sn[32];
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC", sn};
    struct hwid_digests d = {0};
    struct appliance a = {0};

    snprintf(sn, sizeof(sn), "SERIAL-%04u", serial);
    assert_int_equal(hwid_digest_ek(ek_der, ek_der_len, d.digest[HWID_EK]), 0);
    assert_int_equal(hwid_digest_dmi(dmi, d.digest[HWID_DMI]), 0);
    assert_int_equal(hwid_digest_nic(macs, 1, d.digest[HWID_NIC]), 0);
    d.present[HWID_EK] = d.present[HWID_DMI] = d.present[HWID_NIC] = true;
    assert_int_equal(hwid_computer_id(&d, a.computer_id), 0);
    a.counter.index = 0x01a0c001;
    a.counter.name_len = 34;
    a.counter.name[1] = 0x0b;
    for (int i = 2; i < 34; i++)
        a.counter.name[i] = (uint8_t)(0x40 + i + counter_name);
    a.counter.value = counter;
    return a;
}

/* The activation certificate that appliance sends, with a fresh nonce. */
static char *activation_text(const char *code, unsigned serial, unsigned counter_name,
                             uint64_t counter, char nonce[33]) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    char sn[32], err[256] = "", *text = NULL;
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC", sn};
    struct cert_activation a = {.is_vm = -1};
    struct appliance ap = appliance(serial, counter_name, counter);

    snprintf(sn, sizeof(sn), "SERIAL-%04u", serial);
    snprintf(a.license, sizeof(a.license), "%s", code);
    assert_int_equal(hwid_digest_ek(ek_der, ek_der_len, a.hwid.digest[HWID_EK]), 0);
    assert_int_equal(hwid_digest_dmi(dmi, a.hwid.digest[HWID_DMI]), 0);
    assert_int_equal(hwid_digest_nic(macs, 1, a.hwid.digest[HWID_NIC]), 0);
    a.hwid.present[HWID_EK] = a.hwid.present[HWID_DMI] = a.hwid.present[HWID_NIC] = true;
    snprintf(a.computer_id, sizeof(a.computer_id), "%s", ap.computer_id);
    a.ek_public = ek_der;
    a.ek_public_len = ek_der_len;
    a.counter = ap.counter;
    assert_int_equal(hex_random(nonce, 16), 0);
    snprintf(a.nonce, sizeof(a.nonce), "%s", nonce);
    a.date = NOW;
    snprintf(a.username, sizeof(a.username), "Ada Lovelace");
    if (cert_activation_encode(&a, &text, err, sizeof(err)) < 0)
        fail_msg("cert_activation_encode: %s", err);
    return text;
}

/* ---- requests and answers ------------------------------------------------------------ */

struct answer {
    int status;
    bool signed_answer;
    json_t *payload; /* the verified payload, or the unsigned error object */
};

static void answer_clear(struct answer *a) {
    json_decref(a->payload);
    a->payload = NULL;
}

/* Runs one request (a JSON text) through srv_handle at time now; a signed
 * answer is signed with the vendor key and verified with the public key,
 * as the agent would, and must echo nonce when one is given. */

static struct answer call_at(struct srv_db *db, time_t now, enum srv_request type, const char *json,
                             const char *nonce) {
    struct srv_ctx ctx = {.db = db,
                          .key = vendor,
                          .now = now,
                          .window_secs = test_window_secs,
                          .ek_ca_dir = test_ek_ca_dir};
    _cleanup_(json_decrefp) json_t *req = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    _cleanup_free_ char *jws = NULL;
    struct srv_reply reply;
    struct answer ans = {0};
    char msg[256] = "";

    assert_non_null(req);
    assert_int_equal(srv_handle(&ctx, type, req, &reply), 0);
    ans.status = reply.status;
    ans.signed_answer = reply.signed_answer;
    if (!reply.signed_answer) {
        ans.payload = json_incref(reply.body);
        srv_reply_clear(&reply);
        assert_int_equal(ans.status, 400);
        assert_non_null(json_string_value(json_object_get(ans.payload, "error")));
        return ans;
    }
    assert_int_equal(cert_answer_sign(reply.body, vendor, &jws), 0);
    srv_reply_clear(&reply);
    if (cert_answer_verify(jws, strlen(jws), vendor_pub, &ans.payload, msg, sizeof(msg)) != CERT_OK)
        fail_msg("the answer does not verify: %s", msg);
    assert_int_equal(json_integer_value(json_object_get(ans.payload, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(ans.payload, "type")),
                        srv_request_name(type));
    if (nonce)
        assert_string_equal(json_string_value(json_object_get(ans.payload, "nonce")), nonce);
    assert_non_null(json_string_value(json_object_get(ans.payload, "time")));
    return ans;
}

static struct answer call(struct srv_db *db, enum srv_request type, const char *json,
                          const char *nonce) {
    return call_at(db, NOW, type, json, nonce);
}

static const char *field(const struct answer *a, const char *key) {
    const char *s = json_string_value(json_object_get(a->payload, key));
    return s ? s : "";
}

static long long ifield(const struct answer *a, const char *key) {
    json_t *v = json_object_get(a->payload, key);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", key);
    return json_integer_value(v);
}

static void assert_refused(const struct answer *a, const char *reason) {
    assert_true(a->signed_answer);
    assert_int_equal(a->status, 403);
    assert_string_equal(field(a, "result"), "refused");
    assert_string_equal(field(a, "reason"), reason);
    assert_true(strlen(field(a, "message")) > 0);
}

static void assert_ok(const struct answer *a) {
    if (!a->signed_answer || strcmp(field(a, "result"), "ok") != 0)
        fail_msg("expected ok, got %d %s: %s", a->status, field(a, "reason"),
                 a->signed_answer ? field(a, "message") : field(a, "error"));
    assert_int_equal(a->status, 200);
}

/* An online activation as the agent knows it after the answer. */
struct act {
    char id[65];
    char epoch[33];
    char computer_id[HWID_ID_STRLEN];
    char code[65];
    uint64_t base, granted;
    struct cert_license lic;
};

/* Verifies a license certificate from an answer like the agent does. */
static struct cert_license check_certificate(const char *jws, const struct appliance *ap,
                                             const char *code) {
    struct cert_license l;
    char msg[256] = "";

    if (cert_license_verify(jws, strlen(jws), vendor_pub, NOW, &l, msg, sizeof(msg)) != CERT_OK)
        fail_msg("the license certificate does not verify: %s", msg);
    assert_string_equal(l.license, code);
    assert_string_equal(l.computer_id, ap->computer_id);
    assert_false(l.activated_offline);
    assert_int_equal(l.counter.index, ap->counter.index);
    assert_int_equal(l.counter.name_len, ap->counter.name_len);
    assert_memory_equal(l.counter.name, ap->counter.name, ap->counter.name_len);
    assert_true(l.secs_granted <= l.secs_allocated);
    return l;
}

static struct answer activate_raw(struct srv_db *db, const char *code, unsigned serial,
                                  unsigned counter_name, uint64_t counter) {
    char nonce[33], *body;
    _cleanup_free_ char *text = activation_text(code, serial, counter_name, counter, nonce);
    struct answer a;

    assert_true(asprintf(&body, "{\"activation_certificate\": \"%s\"}", text) > 0);
    a = call(db, SRV_REQ_ACTIVATE, body, nonce);
    free(body);
    return a;
}

/* An activation that must succeed; base: the counter base expected in the
 * certificate (the request's counter for a new activation). */
static struct act activate_base(struct srv_db *db, const char *code, unsigned serial,
                                uint64_t counter, uint64_t base) {
    struct appliance ap = appliance(serial, 0, counter);
    struct answer a = activate_raw(db, code, serial, 0, counter);
    struct act x = {0};

    assert_ok(&a);
    snprintf(x.id, sizeof(x.id), "%s", field(&a, "activation"));
    snprintf(x.epoch, sizeof(x.epoch), "%s", field(&a, "epoch"));
    snprintf(x.computer_id, sizeof(x.computer_id), "%s", ap.computer_id);
    snprintf(x.code, sizeof(x.code), "%s", code);
    assert_int_equal(strlen(x.id), 32);
    assert_int_equal(strlen(x.epoch), 32);
    assert_int_equal(ifield(&a, "validate_after"), SRV_VALIDATE_AFTER);
    x.lic = check_certificate(field(&a, "license_certificate"), &ap, code);
    assert_string_equal(x.lic.jti, x.id);
    assert_int_equal(x.lic.counter.value, base);
    x.base = base;
    x.granted = x.lic.secs_granted;
    answer_clear(&a);
    return x;
}

/* validate or deactivate; next_epoch NULL: leave it out (a generated one
 * is written to next_out when given). */
static struct act activate(struct srv_db *db, const char *code, unsigned serial, uint64_t counter) {
    return activate_base(db, code, serial, counter, counter); /* base: the request's value */
}

static struct answer check_req(struct srv_db *db, time_t now, enum srv_request type,
                               const struct act *x, const char *epoch, const char *next_epoch,
                               uint64_t counter, uint64_t consumed, bool refill) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    _cleanup_free_ char *text = NULL;
    char nonce[33];

    assert_int_equal(hex_random(nonce, 16), 0);
    o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "v", 1, "license", x->code,
                  "activation", x->id, "computer_id", x->computer_id, "nonce", nonce, "epoch",
                  epoch, "counter", (json_int_t)counter, "consumed_secs", (json_int_t)consumed);
    assert_non_null(o);
    if (next_epoch)
        json_object_set_new(o, "next_epoch", json_string(next_epoch));
    if (type == SRV_REQ_VALIDATE)
        json_object_set_new(o, "refill", json_boolean(refill));
    if (req_extra) {
        json_t *extra = json_loads(req_extra, 0, NULL);
        assert_non_null(extra);
        json_object_update(o, extra);
        json_decref(extra);
    }
    text = json_dumps(o, JSON_COMPACT);
    return call_at(db, now, type, text, nonce);
}

/* A successful validation: the epoch moves to a new one. */
static struct answer validate_ok(struct srv_db *db, struct act *x, uint64_t counter,
                                 uint64_t consumed, bool refill) {
    char next[33];
    struct answer a;

    assert_int_equal(hex_random(next, 16), 0);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, x, x->epoch, next, counter, consumed, refill);
    assert_ok(&a);
    assert_string_equal(field(&a, "epoch"), next);
    assert_string_equal(field(&a, "status"), "active");
    snprintf(x->epoch, sizeof(x->epoch), "%s", next);
    x->granted = (uint64_t)ifield(&a, "secs_granted");
    return a;
}

static uint64_t deactivate_ok(struct srv_db *db, struct act *x, uint64_t counter,
                              uint64_t consumed) {
    struct answer a =
        check_req(db, NOW, SRV_REQ_DEACTIVATE, x, x->epoch, NULL, counter, consumed, false);
    uint64_t returned;

    assert_ok(&a);
    returned = (uint64_t)ifield(&a, "returned_secs");
    answer_clear(&a);
    return returned;
}

static int scalar(struct srv_db *db, const char *sql);
static long long scalar_id(struct srv_db *db, const char *sql, int64_t id);

/* The pool as the server reads it (kept on the license row by triggers),
 * checked against the sum over the activations (docs/online.md). */
static struct srv_pool pool_of(struct srv_db *db, const char *code) {
    struct srv_license l;
    struct srv_pool p;
    assert_int_equal(srv_license_get(db, code, false, &l), 0);
    assert_int_equal(srv_pool_get(db, &l, NOW, false, &p), 0);
    assert_true(p.committed <= p.allocated || p.free == 0);
    assert_int_equal(p.committed,
                     scalar_id(db,
                               "SELECT COALESCE(SUM(CASE state WHEN 'active' THEN secs_granted "
                               "ELSE final_secs END), 0) FROM activations WHERE license_id = ?",
                               l.id));
    assert_int_equal(p.active, scalar_id(db,
                                         "SELECT COUNT(*) FROM activations WHERE license_id = ? "
                                         "AND state = 'active'",
                                         l.id));
    return p;
}

static struct srv_activation row_of(struct srv_db *db, const char *id) {
    struct srv_activation a;
    assert_int_equal(srv_activation_get(db, id, false, &a), 0);
    return a;
}

static size_t count_flags(struct srv_db *db, const char *id, const char *reason) {
    _cleanup_(json_decrefp) json_t *flags = NULL;
    size_t i, n = 0;
    json_t *f;

    assert_int_equal(srv_flag_list(db, id, &flags), 0);
    json_array_foreach(flags, i,
                       f) if (!reason ||
                              !strcmp(json_string_value(json_object_get(f, "reason")), reason)) n++;
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void activate_validate_deactivate(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_activation row;
    struct answer a;
    struct act x;

    make_license(db, "L-1", CERT_SUBSCRIPTION, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 1000);
    assert_int_equal(x.granted, 3600); /* min(cache_secs, free) */
    assert_int_equal(x.lic.type, CERT_SUBSCRIPTION);
    assert_int_equal(x.lic.expiry, EXPIRY);
    assert_int_equal(x.lic.secs_allocated, 100000);
    assert_int_equal(x.lic.tick_secs, 60);
    assert_string_equal(x.lic.product, "speech");
    assert_int_equal(x.lic.customer_id, 4949);

    row = row_of(db, x.id);
    assert_int_equal(row.state, SRV_ACTIVE);
    assert_int_equal(row.kind, SRV_ONLINE);
    assert_string_equal(row.epoch, x.epoch);
    assert_int_equal(row.counter.value, 1000);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 3600);

    /* validation: no refill needed; a new certificate with the same base
     * and grant (every answer renews the signed validity), subscription
     * expiry echoed */
    a = validate_ok(db, &x, 1010, 600, false);
    {
        struct appliance ap = appliance(1, 0, 1000);
        struct cert_license l = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
        assert_int_equal(l.counter.value, 1000);
        assert_int_equal(l.secs_granted, 3600);
        assert_string_equal(l.jti, x.id);
        assert_false(l.window.present); /* the request sent no TPM clock */
    }
    assert_int_equal(ifield(&a, "secs_granted"), 3600);
    assert_int_equal(ifield(&a, "cache_secs"), 3600);
    assert_int_equal(ifield(&a, "validate_after"), SRV_VALIDATE_AFTER);
    assert_string_equal(field(&a, "subscription_expiry"), "2027-12-28T13:20:00Z");
    answer_clear(&a);
    row = row_of(db, x.id);
    assert_string_equal(row.epoch, x.epoch);
    assert_int_equal(row.last_counter, 1010);
    assert_int_equal(row.consumed_secs, 600);

    /* deactivation returns granted - consumed */
    assert_int_equal(deactivate_ok(db, &x, 1020, 1200), 3600 - 1200);
    row = row_of(db, x.id);
    assert_int_equal(row.state, SRV_CLOSED);
    assert_int_equal(row.final_secs, 1200);
    assert_int_equal(row.returned_secs, 2400);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 1200);
    assert_int_equal(pool_of(db, "L-1").active, 0);

    /* the same deactivation retried (its answer was lost): the same answer */
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &x, x.epoch, NULL, 1020, 1200, false);
    assert_ok(&a);
    assert_int_equal(ifield(&a, "returned_secs"), 2400);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 1200); /* credited once */
}

static void not_active_after_deactivation(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct act x, other;
    struct answer a;

    make_license(db, "L-1", CERT_PERPETUAL, 50000, 3600, 2);
    x = activate(db, "L-1", 1, 0);
    deactivate_ok(db, &x, 5, 300);

    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, x.epoch, 5, 300, false);
    assert_refused(&a, "not_active");
    answer_clear(&a);
    /* a different deactivation (another counter) is not the lost answer's retry */
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &x, x.epoch, NULL, 9, 540, false);
    assert_refused(&a, "not_active");
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").free, 50000 - 300);

    /* an activation ID nobody issued, or one of another license */
    other = x;
    snprintf(other.id, sizeof(other.id), "0123456789abcdef0123456789abcdef");
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &other, x.epoch, x.epoch, 5, 0, false);
    assert_refused(&a, "not_active");
    answer_clear(&a);
    make_license(db, "L-2", CERT_PERPETUAL, 0, 3600, 1);
    other = x;
    snprintf(other.code, sizeof(other.code), "L-2");
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &other, x.epoch, x.epoch, 5, 0, false);
    assert_refused(&a, "not_active");
    answer_clear(&a);

    /* the appliance can be activated again: a new activation */
    other = activate(db, "L-1", 1, 10);
    assert_string_not_equal(other.id, x.id);
    assert_int_equal(pool_of(db, "L-1").active, 1);
}

static void max_activations_and_reactivation(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct act a1, a2, again, a3;
    struct answer a;

    make_license(db, "L-1", CERT_PERPETUAL, 100000, 1000, 2);
    a1 = activate(db, "L-1", 1, 100);
    a2 = activate(db, "L-1", 2, 200);
    assert_string_not_equal(a1.id, a2.id);

    a = activate_raw(db, "L-1", 3, 0, 300);
    assert_refused(&a, "max_activations");
    answer_clear(&a);
    /* the same computer with another counter (re-created) is another appliance */
    a = activate_raw(db, "L-1", 1, 7, 300);
    assert_refused(&a, "max_activations");
    answer_clear(&a);

    /* the same appliance again (computer ID and counter name): its activation
     * back, a fresh epoch, nothing more committed; its counter moved on, so
     * the certificate starts at the counter now with what is left of the
     * grant: the same ceiling (100 + ceil(1000 / 60) = 117) */
    a = validate_ok(db, &a1, 110, 400, false);
    answer_clear(&a);
    again = activate_base(db, "L-1", 1, 112, 112);
    assert_string_equal(again.id, a1.id);
    assert_int_equal(again.granted, 1000 - 12 * 60);
    assert_int_equal(cert_license_ceiling(&again.lic), cert_license_ceiling(&a1.lic));
    assert_string_not_equal(again.epoch, a1.epoch);
    assert_int_equal(pool_of(db, "L-1").active, 2);
    assert_int_equal(pool_of(db, "L-1").committed, 2000);
    assert_int_equal(row_of(db, a1.id).prior_secs, 12 * 60);
    /* its new epoch is the current one: the old one is stale now */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &a1, a1.epoch, "00000000000000000000000000000001", 113,
                  400, false);
    assert_refused(&a, "stale_epoch");
    answer_clear(&a);
    a = validate_ok(db, &again, 113, 60, false);
    answer_clear(&a);
    assert_int_equal(row_of(db, a1.id).consumed_secs, 12 * 60 + 60);
    /* re-activating with a counter below what was reported is refused and flagged */
    a = activate_raw(db, "L-1", 1, 0, 111);
    assert_refused(&a, "counter_went_back");
    answer_clear(&a);
    assert_int_equal(count_flags(db, a1.id, "counter_went_back"), 1);

    /* a deactivation frees a place */
    deactivate_ok(db, &a2, 210, 100);
    a3 = activate(db, "L-1", 3, 300);
    assert_int_equal(pool_of(db, "L-1").active, 2);
    assert_string_not_equal(a3.id, a2.id);

    /* max_activations 0: nobody */
    make_license(db, "L-0", CERT_PERPETUAL, 100000, 1000, 0);
    a = activate_raw(db, "L-0", 1, 0, 1);
    assert_refused(&a, "max_activations");
    answer_clear(&a);
}

static void refill_never_beyond_the_pool(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct act a1, a2, a3;
    struct answer a;
    struct appliance ap1 = appliance(1, 0, 0);
    struct cert_license l;

    make_license(db, "L-1", CERT_CONSUMPTION, 5000, 3600, 3);
    a1 = activate(db, "L-1", 1, 0);
    assert_int_equal(a1.granted, 3600);
    a2 = activate(db, "L-1", 2, 0);
    assert_int_equal(a2.granted, 1400); /* only what is left */
    assert_int_equal(pool_of(db, "L-1").free, 0);
    a3 = activate(db, "L-1", 3, 0);
    assert_int_equal(a3.granted, 0); /* an empty pool grants nothing, but activates */
    assert_int_equal(pool_of(db, "L-1").active, 3);

    /* plenty left and no refill asked: the grant stays */
    a = validate_ok(db, &a1, 10, 600, false);
    assert_int_equal(ifield(&a, "secs_granted"), 3600);
    assert_int_equal(check_certificate(field(&a, "license_certificate"), &ap1, "L-1").secs_granted,
                     3600);
    answer_clear(&a);
    /* refill asked, the pool is empty: the grant stays */
    a = validate_ok(db, &a1, 50, 3000, true);
    assert_int_equal(ifield(&a, "secs_granted"), 3600);
    assert_int_equal(check_certificate(field(&a, "license_certificate"), &ap1, "L-1").secs_granted,
                     3600);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").committed, 5000);

    /* a2 goes away having used 400: 1000 come back */
    assert_int_equal(deactivate_ok(db, &a2, 7, 400), 1000);
    assert_int_equal(pool_of(db, "L-1").free, 1000);

    /* under a quarter of cache_secs left, no refill flag: raised by what is
     * free (1000), not to consumed + cache_secs (6600) */
    a = validate_ok(db, &a1, 55, 3300, false);
    assert_int_equal(ifield(&a, "secs_granted"), 4600);
    assert_non_null(json_string_value(json_object_get(a.payload, "license_certificate")));
    l = check_certificate(field(&a, "license_certificate"), &ap1, "L-1");
    assert_int_equal(l.secs_granted, 4600);
    assert_string_equal(l.jti, a1.id);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").free, 0);
    assert_int_equal(pool_of(db, "L-1").committed, 5000);

    /* a3 asks too: nothing is free */
    a = validate_ok(db, &a3, 1, 0, true);
    assert_int_equal(ifield(&a, "secs_granted"), 0);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").committed, 5000);
}

static void refill_certificate_keeps_activation_counter_and_base(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct appliance ap = appliance(1, 0, 777);
    struct cert_license l;
    struct answer a;
    struct act x;

    make_license(db, "L-1", CERT_PERPETUAL, 1000000, 3600, 1);
    x = activate(db, "L-1", 1, 777);
    /* refill asked: raised to consumed + cache_secs */
    a = validate_ok(db, &x, 800, 3000, true);
    assert_int_equal(ifield(&a, "secs_granted"), 3000 + 3600);
    l = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_string_equal(l.jti, x.id);
    assert_int_equal(l.counter.value, 777);
    assert_int_equal(l.secs_granted, 6600);
    assert_int_equal(l.secs_allocated, 1000000);
    answer_clear(&a);
    /* no flag, but under a quarter of cache_secs left: raised as well */
    a = validate_ok(db, &x, 880, 6000, false);
    assert_int_equal(ifield(&a, "secs_granted"), 6000 + 3600);
    answer_clear(&a);
    /* a lower consumption is refused (consumption_went_back below) and
     * never lowers the grant */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "dddddddddddddddddddddddddddddddd", 881,
                  10, true);
    assert_refused(&a, "consumption_went_back");
    answer_clear(&a);
    assert_int_equal(row_of(db, x.id).secs_granted, 9600);
}

/* The server never credits what it cannot check: a validation or a
 * deactivation reporting less consumption than the activation already
 * reported is refused and flagged; nothing is credited and the epoch does
 * not move. The report that once returned the whole grant: a deactivation
 * claiming 0 s after a validation had reported 600 s. */
static void consumption_never_goes_back(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_activation row;
    struct answer a;
    struct act x;

    make_license(db, "L-1", CERT_CONSUMPTION, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 100);
    a = validate_ok(db, &x, 110, 600, false);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 3600);

    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &x, x.epoch, NULL, 120, 0, false);
    assert_refused(&a, "consumption_went_back");
    assert_non_null(strstr(field(&a, "message"), "600"));
    answer_clear(&a);
    row = row_of(db, x.id);
    assert_int_equal(row.state, SRV_ACTIVE);
    assert_int_equal(row.consumed_secs, 600);
    assert_string_equal(row.epoch, x.epoch);
    assert_int_equal(count_flags(db, x.id, "consumption_went_back"), 1);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 3600); /* nothing credited */

    /* the same through a validation (one second less) */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", 120,
                  599, true);
    assert_refused(&a, "consumption_went_back");
    answer_clear(&a);
    assert_int_equal(count_flags(db, x.id, "consumption_went_back"), 2);
    assert_int_equal(row_of(db, x.id).secs_granted, 3600);

    /* the same consumption again is not "back"; more is fine */
    a = validate_ok(db, &x, 120, 600, false);
    answer_clear(&a);
    assert_int_equal(deactivate_ok(db, &x, 130, 900), 3600 - 900);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 900);
}

static void the_pool_adds_up(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    const uint64_t allocated = 20000, used[3] = {1234, 3600, 5555};
    struct act x[3];
    struct answer a;
    uint64_t granted = 0;
    struct srv_license lic;
    struct srv_activation *rows = NULL;
    size_t n = 0;

    make_license(db, "L-1", CERT_CONSUMPTION, allocated, 3600, 3);
    for (int i = 0; i < 3; i++)
        x[i] = activate(db, "L-1", (unsigned)i + 1, 10 * (uint64_t)i);
    /* the third uses more than its first block: a refill on the way */
    a = validate_ok(db, &x[2], 70, 3000, true);
    assert_int_equal(ifield(&a, "secs_granted"), 6600);
    answer_clear(&a);
    a = validate_ok(db, &x[1], 60, 3500, false); /* under cache/4 left: raised too */
    answer_clear(&a);
    for (int i = 0; i < 3; i++) {
        struct srv_pool p = pool_of(db, "L-1");
        assert_true(p.committed <= allocated);
        granted = x[i].granted;
        assert_int_equal(deactivate_ok(db, &x[i], 1000, used[i]), granted - used[i]);
        assert_int_equal(row_of(db, x[i].id).returned_secs, granted - used[i]);
    }
    assert_int_equal(pool_of(db, "L-1").active, 0);
    assert_int_equal(pool_of(db, "L-1").free, allocated - (used[0] + used[1] + used[2]));
    assert_int_equal(pool_of(db, "L-1").committed, used[0] + used[1] + used[2]);
    /* the rows agree */
    assert_int_equal(srv_license_get(db, "L-1", false, &lic), 0);
    assert_int_equal(
        srv_activation_list(db, &(struct srv_activation_filter){.license_id = lic.id}, &rows, &n),
        0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rows[i].final_secs + rows[i].returned_secs, rows[i].secs_granted);
    free(rows);

    /* reporting more than granted: the pool keeps the grant, returns nothing */
    {
        struct act y = activate(db, "L-1", 9, 0);
        uint64_t before = pool_of(db, "L-1").free;
        assert_int_equal(deactivate_ok(db, &y, 1000, y.granted + 500), 0);
        assert_int_equal(pool_of(db, "L-1").free, before);
    }
}

static void stale_epoch_and_counter_going_back(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct act holder, clone;
    struct answer a;
    char e0[33];

    make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 1);
    holder = activate(db, "L-1", 1, 100);
    clone = holder; /* a copy of the appliance: same TPM state, same epoch */
    snprintf(e0, sizeof(e0), "%s", holder.epoch);

    a = validate_ok(db, &holder, 110, 60, false);
    answer_clear(&a);
    /* the copy still holds e0, with its own pending epoch */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &clone, e0, "11111111111111111111111111111111", 110,
                  60, false);
    assert_refused(&a, "stale_epoch");
    answer_clear(&a);
    assert_int_equal(count_flags(db, holder.id, "stale_epoch"), 1);
    assert_string_equal(row_of(db, holder.id).epoch, holder.epoch); /* unchanged */
    /* the holder of the current epoch continues */
    a = validate_ok(db, &holder, 120, 120, false);
    answer_clear(&a);

    /* a counter lower than one reported: refused and flagged, epoch kept */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &holder, holder.epoch,
                  "22222222222222222222222222222222", 119, 60, false);
    assert_refused(&a, "counter_went_back");
    assert_true(strstr(field(&a, "message"), "119") != NULL);
    answer_clear(&a);
    assert_int_equal(count_flags(db, holder.id, "counter_went_back"), 1);
    assert_string_equal(row_of(db, holder.id).epoch, holder.epoch);
    assert_int_equal(row_of(db, holder.id).last_counter, 120);
    /* ... and the real one goes on (the same counter is not "back") */
    a = validate_ok(db, &holder, 120, 120, false);
    answer_clear(&a);

    /* the copy cannot deactivate either (nor return seconds) */
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &clone, e0, NULL, 500, 0, false);
    assert_refused(&a, "stale_epoch");
    answer_clear(&a);
    assert_int_equal(row_of(db, holder.id).state, SRV_ACTIVE);
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &holder, holder.epoch, NULL, 100, 0, false);
    assert_refused(&a, "counter_went_back");
    answer_clear(&a);
    assert_int_equal(count_flags(db, holder.id, NULL), 4);

    /* wrong computer */
    clone = holder;
    snprintf(clone.computer_id, sizeof(clone.computer_id), "%s", appliance(2, 0, 0).computer_id);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &clone, holder.epoch, e0, 130, 0, false);
    assert_refused(&a, "wrong_computer");
    answer_clear(&a);

    assert_int_equal(deactivate_ok(db, &holder, 130, 600), 3000);
}

static void retry_with_the_pending_next_epoch(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    const char *n1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *n2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
               *n3 = "cccccccccccccccccccccccccccccccc";
    struct answer a;
    struct act x;
    char e0[33];

    make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 0);
    snprintf(e0, sizeof(e0), "%s", x.epoch);

    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, e0, n1, 1, 60, false);
    assert_ok(&a);
    answer_clear(&a); /* lost on the way back */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, e0, n1, 2, 120, false);
    assert_ok(&a); /* the retry with the same pair */
    assert_string_equal(field(&a, "epoch"), n1);
    answer_clear(&a);
    assert_string_equal(row_of(db, x.id).epoch, n1);
    assert_int_equal(count_flags(db, x.id, NULL), 0);

    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, n1, n2, 3, 180, false);
    assert_ok(&a);
    answer_clear(&a);
    /* the old pair is stale now */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, e0, n1, 3, 180, false);
    assert_refused(&a, "stale_epoch");
    answer_clear(&a);

    /* a deactivation after a validation whose answer was lost: the agent
     * still holds n2 with n3 pending, the server is at n3 */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, n2, n3, 4, 240, false);
    assert_ok(&a);
    answer_clear(&a);
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &x, n2, n3, 4, 240, false);
    assert_ok(&a);
    assert_int_equal(ifield(&a, "returned_secs"), 3600 - 240);
    answer_clear(&a);
}

static void suspended_expired_unknown(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_license l;
    struct answer a;
    struct act x, bad;

    a = activate_raw(db, "NO-SUCH", 1, 0, 0);
    assert_refused(&a, "unknown_license");
    answer_clear(&a);

    l = make_license(db, "L-1", CERT_TIME_LIMITED, 100000, 3600, 2);
    x = activate(db, "L-1", 1, 0);
    bad = x;
    snprintf(bad.code, sizeof(bad.code), "NO-SUCH");
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &bad, x.epoch, x.epoch, 0, 0, false);
    assert_refused(&a, "unknown_license");
    answer_clear(&a);

    /* suspended: activation and validation refused, the epoch does not move */
    l.suspended = true;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = activate_raw(db, "L-1", 2, 0, 0);
    assert_refused(&a, "suspended");
    answer_clear(&a);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "cccccccccccccccccccccccccccccccc", 1, 60,
                  false);
    assert_refused(&a, "suspended");
    answer_clear(&a);
    assert_string_equal(row_of(db, x.id).epoch, x.epoch);
    assert_int_equal(pool_of(db, "L-1").active, 1);
    /* resumed: the same appliance goes on (with the pending epoch again) */
    l.suspended = false;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "cccccccccccccccccccccccccccccccc", 1, 60,
                  false);
    assert_ok(&a);
    answer_clear(&a);
    snprintf(x.epoch, sizeof(x.epoch), "cccccccccccccccccccccccccccccccc");

    /* expired: refused from the expiry on */
    a = check_req(db, EXPIRY, SRV_REQ_VALIDATE, &x, x.epoch, "dddddddddddddddddddddddddddddddd", 2,
                  120, false);
    assert_refused(&a, "expired");
    assert_true(strstr(field(&a, "message"), "2027-12-28T13:20:00Z") != NULL);
    answer_clear(&a);
    a = call_at(db, EXPIRY + 1, SRV_REQ_ACTIVATE, "{\"activation_certificate\": \"x\"}", NULL);
    assert_int_equal(a.status, 400); /* malformed before anything else */
    answer_clear(&a);
    {
        char nonce[33], *body;
        _cleanup_free_ char *text = activation_text("L-1", 3, 0, 0, nonce);
        assert_true(asprintf(&body, "{\"activation_certificate\": \"%s\"}", text) > 0);
        a = call_at(db, EXPIRY + 1, SRV_REQ_ACTIVATE, body, nonce);
        free(body);
        assert_refused(&a, "expired");
        answer_clear(&a);
    }

    /* seconds still go back while suspended or expired */
    l.suspended = true;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = check_req(db, EXPIRY + 10, SRV_REQ_DEACTIVATE, &x, x.epoch, NULL, 3, 180, false);
    assert_ok(&a);
    assert_int_equal(ifield(&a, "returned_secs"), 3600 - 180);
    answer_clear(&a);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 180);
}

static void malformed_requests_change_nothing(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    static const char *const bad_activate[] = {
        "{}", "{\"activation_certificate\": 5}", "{\"activation_certificate\": \"not base64url!\"}",
        "{\"activation_certificate\": \"e30\"}", /* {} */
    };
    struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};
    struct srv_reply reply;
    struct answer a;
    struct act x;
    char *body;

    make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 0);

    for (size_t i = 0; i < ARRAY_SIZE(bad_activate); i++) {
        a = call(db, SRV_REQ_ACTIVATE, bad_activate[i], NULL);
        assert_false(a.signed_answer);
        assert_int_equal(ifield(&a, "code"), 400);
        answer_clear(&a);
    }
    /* not an object at all */
    assert_int_equal(srv_handle(&ctx, SRV_REQ_VALIDATE, NULL, &reply), 0);
    assert_int_equal(reply.status, 400);
    srv_reply_clear(&reply);

    /* each field of a validation wrong in turn */
    {
        static const char *const edits[][2] = {
            {"v", "2"},
            {"license", "\"bad code!\""},
            {"activation", "7"},
            {"computer_id", "\"not-a-uuid\""},
            {"nonce", "\"ABC\""},
            {"epoch", "\"0123\""},
            {"next_epoch", "null"},
            {"counter", "-1"},
            {"counter", "1.5"},
            {"consumed_secs", "\"5\""},
            {"refill", "1"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(edits); i++) {
            _cleanup_(json_decrefp) json_t *o = json_pack(
                "{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:b}", "v", 1, "license", "L-1",
                "activation", x.id, "computer_id", x.computer_id, "nonce",
                "00112233445566778899aabbccddeeff", "epoch", x.epoch, "next_epoch",
                "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "counter", 5, "consumed_secs", 60, "refill", 0);
            _cleanup_free_ char *text = NULL;
            json_object_set_new(o, edits[i][0], json_loads(edits[i][1], JSON_DECODE_ANY, NULL));
            text = json_dumps(o, JSON_COMPACT);
            a = call(db, SRV_REQ_VALIDATE, text, NULL);
            if (a.signed_answer)
                fail_msg("%s = %s was accepted", edits[i][0], edits[i][1]);
            assert_true(strstr(field(&a, "error"), edits[i][0]) != NULL);
            answer_clear(&a);
        }
        /* a missing field is named */
        assert_true(asprintf(&body,
                             "{\"v\": 1, \"license\": \"L-1\", \"activation\": \"%s\", "
                             "\"computer_id\": \"%s\", \"nonce\": "
                             "\"00112233445566778899aabbccddeeff\", \"epoch\": \"%s\", "
                             "\"counter\": 1, \"consumed_secs\": 0}",
                             x.id, x.computer_id, x.epoch) > 0);
        a = call(db, SRV_REQ_VALIDATE, body, NULL); /* validate needs next_epoch */
        free(body);
        assert_false(a.signed_answer);
        assert_true(strstr(field(&a, "error"), "next_epoch") != NULL);
        answer_clear(&a);
    }
    /* nothing changed: same epoch, no flags, counter as activated */
    assert_string_equal(row_of(db, x.id).epoch, x.epoch);
    assert_int_equal(row_of(db, x.id).last_counter, 0);
    assert_int_equal(count_flags(db, x.id, NULL), 0);
    /* unknown fields are ignored (a newer agent may send more) */
    assert_true(asprintf(&body,
                         "{\"v\": 1, \"license\": \"L-1\", \"activation\": \"%s\", "
                         "\"computer_id\": \"%s\", \"nonce\": "
                         "\"00112233445566778899aabbccddeeff\", \"epoch\": \"%s\", \"next_epoch\": "
                         "\"ffffffffffffffffffffffffffffffff\", \"counter\": 1, "
                         "\"consumed_secs\": 0, \"quote\": {\"x\": 1}}",
                         x.id, x.computer_id, x.epoch) > 0);
    a = call(db, SRV_REQ_VALIDATE, body, "00112233445566778899aabbccddeeff");
    free(body);
    assert_ok(&a);
    answer_clear(&a);
}

/* srv_offline_decide in a transaction of its own, as the admin commands run
 * it: 0 with *jws and reason "new" or "existing", 1 refused (reason the
 * token). */
static int offline_sign(const struct srv_ctx *ctx, const struct cert_activation *act,
                        uint64_t granted, char **jws, char reason[32]) {
    char id[CERT_TEXT_MAX + 1], msg[256];
    bool existing = false;
    int r;

    assert_int_equal(srv_db_begin(ctx->db), 0);
    r = srv_offline_decide(ctx, act, granted, jws, id, &existing, reason, 32, msg, sizeof(msg));
    assert_true(r >= 0);
    if (r == 0) {
        assert_int_equal(srv_db_commit(ctx->db), 0);
        snprintf(reason, 32, "%s", existing ? "existing" : "new");
    } else {
        srv_db_rollback(ctx->db);
    }
    return r;
}

static void offline_sign_counts_against_the_maximum(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};
    struct cert_activation act;
    struct srv_license l;
    struct cert_license lic;
    struct answer a;
    char nonce[33], reason[32], msg[256];
    char *jws = NULL, *text;
    struct act x;
    int r;

    l = make_license(db, "L-1", CERT_PERPETUAL, 10000, 3600, 2);
    text = activation_text("L-1", 1, 0, 50, nonce);
    assert_int_equal(cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg)), CERT_OK);
    free(text);
    /* the license does not allow offline */
    r = offline_sign(&ctx, &act, UINT64_MAX, &jws, reason);
    assert_int_equal(r, 1);
    assert_string_equal(reason, "offline_not_allowed");
    l.offline_allowed = true;
    assert_int_equal(srv_license_update(db, &l), 0);

    r = offline_sign(&ctx, &act, 4000, &jws, reason);
    assert_int_equal(r, 0);
    assert_string_equal(reason, "new");
    assert_int_equal(cert_license_verify(jws, strlen(jws), vendor_pub, NOW, &lic, msg, sizeof(msg)),
                     CERT_OK);
    assert_true(lic.activated_offline);
    assert_int_equal(lic.secs_granted, 4000);
    assert_int_equal(lic.counter.value, 50);
    free(jws);
    jws = NULL;
    /* asked again: the same activation, nothing more committed */
    r = offline_sign(&ctx, &act, 100, &jws, reason);
    assert_int_equal(r, 0);
    assert_string_equal(reason, "existing");
    free(jws);
    jws = NULL;
    assert_int_equal(pool_of(db, "L-1").active, 1);
    assert_int_equal(pool_of(db, "L-1").committed, 4000);

    /* that appliance cannot also activate online */
    a = activate_raw(db, "L-1", 1, 0, 60);
    assert_refused(&a, "offline_only");
    answer_clear(&a);
    /* one online activation takes the last place */
    x = activate(db, "L-1", 2, 0);
    assert_int_equal(x.granted, 3600);
    cert_activation_clear(&act);
    text = activation_text("L-1", 3, 0, 0, nonce);
    assert_int_equal(cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg)), CERT_OK);
    free(text);
    r = offline_sign(&ctx, &act, UINT64_MAX, &jws, reason);
    assert_int_equal(r, 1);
    assert_string_equal(reason, "max_activations");
    /* a place freed, more seconds asked than free: refused */
    deactivate_ok(db, &x, 0, 0);
    r = offline_sign(&ctx, &act, 7000, &jws, reason);
    assert_int_equal(r, 1);
    assert_string_equal(reason, "pool");
    /* default: all free seconds */
    r = offline_sign(&ctx, &act, UINT64_MAX, &jws, reason);
    assert_int_equal(r, 0);
    assert_int_equal(cert_license_verify(jws, strlen(jws), vendor_pub, NOW, &lic, msg, sizeof(msg)),
                     CERT_OK);
    assert_int_equal(lic.secs_granted, 6000);
    free(jws);
    assert_int_equal(pool_of(db, "L-1").free, 0);
    cert_activation_clear(&act);

    /* an offline activation is never validated online */
    {
        struct srv_activation *rows = NULL;
        size_t n = 0;
        struct act off = {0};
        assert_int_equal(
            srv_activation_list(db, &(struct srv_activation_filter){.license_id = l.id}, &rows, &n),
            0);
        for (size_t i = 0; i < n; i++)
            if (rows[i].kind == SRV_OFFLINE && rows[i].state == SRV_ACTIVE) {
                snprintf(off.id, sizeof(off.id), "%s", rows[i].id);
                snprintf(off.computer_id, sizeof(off.computer_id), "%s", rows[i].computer_id);
            }
        free(rows);
        snprintf(off.code, sizeof(off.code), "L-1");
        a = check_req(db, NOW, SRV_REQ_VALIDATE, &off, "00000000000000000000000000000000",
                      "00000000000000000000000000000001", 60, 0, false);
        assert_refused(&a, "not_active");
        answer_clear(&a);
    }
}

/* ---- trust (docs/security.md) --------------------------------------------------------- */

/* Every answer signs a validity window anchored at the TPM clock the
 * request sent: activation and validation, the default 8 days or the
 * server's setting; a request without a TPM clock (an older agent) gets a
 * certificate without one. */
static void validity_window_on_the_tpm_clock(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct appliance ap = appliance(1, 0, 10);
    _cleanup_free_ char *text = NULL, *body = NULL;
    struct cert_license c;
    struct answer a;
    char nonce[33];
    struct act x;

    make_license(db, "L-1", CERT_PERPETUAL, 0, 3600, 1);
    text = activation_text("L-1", 1, 0, 10, nonce);
    assert_true(
        asprintf(&body, "{\"activation_certificate\": \"%s\", \"tpm_clock\": 5000000}", text) > 0);
    a = call(db, SRV_REQ_ACTIVATE, body, nonce);
    assert_ok(&a);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_true(c.window.present);
    assert_int_equal(c.window.tpm_clock, 5000000);
    assert_int_equal(c.window.tpm_clock_until, 5000000 + SRV_WINDOW_DEFAULT * 1000ull);
    assert_int_equal(c.window.until, NOW + SRV_WINDOW_DEFAULT);
    assert_int_equal(row_of(db, field(&a, "activation")).last_tpm_clock, 5000000);
    snprintf(x.id, sizeof(x.id), "%s", field(&a, "activation"));
    snprintf(x.epoch, sizeof(x.epoch), "%s", field(&a, "epoch"));
    snprintf(x.computer_id, sizeof(x.computer_id), "%s", ap.computer_id);
    snprintf(x.code, sizeof(x.code), "L-1");
    answer_clear(&a);

    /* a validation a day later, with the server's own window */
    test_window_secs = 2 * 86400;
    req_extra = "{\"tpm_clock\": 91400000, \"base\": 10}";
    a = validate_ok(db, &x, 10, 0, false);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_int_equal(c.window.tpm_clock, 91400000);
    assert_int_equal(c.window.tpm_clock_until, 91400000 + 2 * 86400 * 1000ull);
    assert_int_equal(c.window.until, NOW + 2 * 86400);
    assert_int_equal(c.iat, NOW);
    answer_clear(&a);
    test_window_secs = 0;

    /* no TPM clock sent: no window */
    req_extra = NULL;
    a = validate_ok(db, &x, 10, 0, false);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_false(c.window.present);
    answer_clear(&a);
    /* a TPM clock from before the last one, beyond a power loss's slack: a
     * restored copy of the TPM; refused and flagged, nothing moves */
    req_extra = "{\"tpm_clock\": 1000}";
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "abababababababababababababababab", 10, 0,
                  false);
    assert_refused(&a, "tpm_clock_went_back");
    assert_non_null(strstr(field(&a, "message"), "91400000"));
    answer_clear(&a);
    assert_int_equal(count_flags(db, x.id, "tpm_clock_went_back"), 1);
    assert_string_equal(row_of(db, x.id).epoch, x.epoch);
    /* within the slack (a power loss): fine */
    snprintf(nonce, sizeof(nonce), "%s", "");
    req_extra = "{\"tpm_clock\": 91000000}";
    a = validate_ok(db, &x, 10, 0, false);
    answer_clear(&a);
    req_extra = NULL;
}

/* The time floor the request names comes back signed with the server's
 * time: the agent's floor is then never behind the server's clock. */
static void time_floor_at_the_server_time(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct appliance ap = appliance(1, 0, 0);
    struct cert_license c;
    struct answer a;
    struct act x;

    make_license(db, "L-1", CERT_PERPETUAL, 0, 3600, 1);
    x = activate(db, "L-1", 1, 0);
    req_extra = "{\"tpm_clock\": 7000, \"time_floor\": {\"index\": \"0x01a0c003\", \"name\": "
                "\"000b1111111111111111111111111111111111111111111111111111111111111111\", "
                "\"value\": 42}}";
    a = validate_ok(db, &x, 0, 0, false);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_true(c.time_floor.present);
    assert_int_equal(c.time_floor.counter.index, 0x01a0c003);
    assert_int_equal(c.time_floor.counter.value, 42);
    assert_int_equal(c.time_floor.counter.name_len, 34);
    assert_int_equal(c.time_floor.at, NOW);
    answer_clear(&a);
    /* a malformed floor is a malformed request */
    req_extra = "{\"time_floor\": {\"index\": \"0x01a0c003\", \"value\": 42}}";
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "abababababababababababababababab", 0, 0,
                  false);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(field(&a, "error"), "'name'"));
    answer_clear(&a);
    req_extra = NULL;
}

/* A refusal ends the certificate on the appliance (its counter goes past
 * the ceiling). When the vendor lifts it, the next validation gets a
 * certificate from the counter now, with what the old one had left; the
 * pool adds up through it, and a report still counted from the old base
 * (the answer was lost) changes nothing. */
static void new_base_after_a_lifted_refusal(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct appliance ap = appliance(1, 0, 100);
    struct srv_license l;
    struct srv_activation row;
    struct cert_license c;
    struct answer a;
    struct act x;

    l = make_license(db, "L-1", CERT_CONSUMPTION, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 100); /* 3600 s: ceiling 100 + 60 = 160 */
    a = validate_ok(db, &x, 110, 600, false);
    answer_clear(&a);
    l.suspended = true;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "cccccccccccccccccccccccccccccccc", 111,
                  660, false);
    assert_refused(&a, "suspended");
    answer_clear(&a);
    /* the agent ended it: counter 161, 660 s used (the ticks it spent to
     * end the certificate are not counted as used) */
    l.suspended = false;
    assert_int_equal(srv_license_update(db, &l), 0);
    req_extra = "{\"base\": 100}";
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "cccccccccccccccccccccccccccccccc", 161,
                  660, false);
    assert_ok(&a);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_int_equal(c.counter.value, 161);
    assert_int_equal(c.secs_granted, 3600 - 660);
    assert_int_equal(ifield(&a, "secs_granted"), 3600 - 660);
    answer_clear(&a);
    snprintf(x.epoch, sizeof(x.epoch), "cccccccccccccccccccccccccccccccc");
    row = row_of(db, x.id);
    assert_int_equal(row.counter.value, 161);
    assert_int_equal(row.prior_secs, 660);
    assert_int_equal(row.consumed_secs, 660);
    assert_int_equal(row.secs_granted, 3600);
    assert_int_equal(pool_of(db, "L-1").committed, 3600);

    /* the answer was lost: the agent asks again from the old base, with the
     * same epochs; nothing is counted twice and the current certificate
     * comes back */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, "cccccccccccccccccccccccccccccccc",
                  "cccccccccccccccccccccccccccccccc", 161, 660, false);
    assert_ok(&a);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_int_equal(c.counter.value, 161);
    answer_clear(&a);
    assert_int_equal(row_of(db, x.id).consumed_secs, 660);

    /* from the new base on: 300 s more; removal returns the rest */
    req_extra = "{\"base\": 161}";
    a = validate_ok(db, &x, 166, 300, false);
    answer_clear(&a);
    assert_int_equal(row_of(db, x.id).consumed_secs, 960);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "dddddddddddddddddddddddddddddddd", 166,
                  200, false);
    assert_refused(&a, "consumption_went_back");
    answer_clear(&a);
    assert_int_equal(deactivate_ok(db, &x, 167, 360), 3600 - 660 - 360);
    assert_int_equal(pool_of(db, "L-1").free, 100000 - 1020);
    req_extra = NULL;
}

/* A license that accepts certified TPMs only: without an EK trust store on
 * the server, or from a TPM without an EK certificate, activation and
 * offline signing are refused naming why; the license's certificates carry
 * tpm_trust. */
static void tpm_trust_is_checked_by_the_server(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};
    struct cert_activation act;
    struct srv_license l;
    struct answer a;
    char nonce[33], reason[32], msg[256], *jws = NULL, *text;
    char store[] = "/tmp/tpmlic-ekca.XXXXXX";

    l = make_license(db, "L-1", CERT_PERPETUAL, 0, 3600, 2);
    l.tpm_trust.kind = CERT_TPM_TRUST_CERTIFIED;
    l.offline_allowed = true;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = activate_raw(db, "L-1", 1, 0, 0);
    assert_refused(&a, "tpm_not_trusted");
    assert_non_null(strstr(field(&a, "message"), "no EK trust store"));
    answer_clear(&a);
    /* a store, but the request has no EK certificate */
    assert_non_null(mkdtemp(store));
    test_ek_ca_dir = store;
    a = activate_raw(db, "L-1", 1, 0, 0);
    assert_refused(&a, "tpm_not_trusted");
    answer_clear(&a);
    ctx.ek_ca_dir = store;
    text = activation_text("L-1", 2, 0, 0, nonce);
    assert_int_equal(cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg)), CERT_OK);
    free(text);
    assert_int_equal(offline_sign(&ctx, &act, 0, &jws, reason), 1);
    assert_string_equal(reason, "tpm_not_trusted");
    cert_activation_clear(&act);
    assert_int_equal(pool_of(db, "L-1").active, 0);
    test_ek_ca_dir = NULL;
    rmdir(store);

    /* any: its certificates say so */
    l.tpm_trust.kind = CERT_TPM_TRUST_ANY;
    assert_int_equal(srv_license_update(db, &l), 0);
    {
        struct appliance ap = appliance(1, 0, 0);
        struct act x = activate(db, "L-1", 1, 0);
        assert_int_equal(x.lic.tpm_trust.kind, CERT_TPM_TRUST_ANY);
        (void)ap;
    }
}

/* Offline signing binds what cert_license_bind binds: the time floor at
 * the request's date (a stale request refused), and a renewal (the request
 * names the certificate in force) starts past that one's ceiling, whose
 * grant then counts as used. */
static void offline_renewal_starts_past_the_ceiling(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};
    struct cert_activation act;
    struct srv_license l;
    struct cert_license lic, renewed;
    char nonce[33], reason[32], msg[256], *jws = NULL, *text;

    l = make_license(db, "L-1", CERT_CONSUMPTION, 10000, 3600, 1);
    l.offline_allowed = true;
    assert_int_equal(srv_license_update(db, &l), 0);
    text = activation_text("L-1", 1, 0, 50, nonce);
    assert_int_equal(cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg)), CERT_OK);
    free(text);
    act.time_floor.index = 0x01a0c003;
    act.time_floor.name_len = 34;
    act.time_floor.name[1] = 0x0b;
    act.time_floor.value = 7;
    act.date = NOW - 3600;
    assert_int_equal(offline_sign(&ctx, &act, 3000, &jws, reason), 0);
    assert_int_equal(cert_license_verify(jws, strlen(jws), vendor_pub, NOW, &lic, msg, sizeof(msg)),
                     CERT_OK);
    free(jws);
    jws = NULL;
    assert_int_equal(lic.counter.value, 50);
    assert_true(lic.time_floor.present);
    assert_int_equal(lic.time_floor.counter.value, 7);
    assert_int_equal(lic.time_floor.at, NOW - 3600);

    /* the renewal: 20 ticks used, the request names lic (ceiling 100) */
    act.counter.value = 70;
    snprintf(act.supersedes_jti, sizeof(act.supersedes_jti), "%s", lic.jti);
    act.supersedes_ceiling = cert_license_ceiling(&lic);
    act.date = NOW;
    assert_int_equal(offline_sign(&ctx, &act, 2000, &jws, reason), 0);
    assert_string_equal(reason, "existing");
    assert_int_equal(
        cert_license_verify(jws, strlen(jws), vendor_pub, NOW, &renewed, msg, sizeof(msg)),
        CERT_OK);
    free(jws);
    jws = NULL;
    assert_string_equal(renewed.jti, lic.jti);
    assert_int_equal(renewed.counter.value, cert_license_ceiling(&lic) + 1);
    assert_int_equal(renewed.secs_granted, 2000);
    assert_int_equal(pool_of(db, "L-1").committed, 5000);

    /* a request with a time floor dated more than 30 days ago */
    act.date = NOW - 31 * 86400;
    assert_int_equal(offline_sign(&ctx, &act, 0, &jws, reason), 1);
    assert_string_equal(reason, "stale_request");
    cert_activation_clear(&act);
}

static void new_certificate_when_the_terms_change(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct appliance ap = appliance(1, 0, 5);
    struct srv_license l;
    struct cert_license c;
    struct answer a;
    struct act x;

    l = make_license(db, "L-1", CERT_SUBSCRIPTION, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 5);
    l.expiry = EXPIRY + 86400;
    snprintf(l.features[1], sizeof(l.features[1]), "enhanced");
    l.nfeatures = 2;
    l.terms++;
    assert_int_equal(srv_license_update(db, &l), 0);
    a = validate_ok(db, &x, 6, 60, false);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_int_equal(c.expiry, EXPIRY + 86400);
    assert_int_equal(c.nfeatures, 2);
    assert_string_equal(c.features[1], "enhanced");
    assert_int_equal(c.secs_granted, 3600);
    assert_string_equal(c.jti, x.id);
    assert_string_equal(field(&a, "subscription_expiry"), "2027-12-29T13:20:00Z");
    answer_clear(&a);
    /* the next validation carries the same terms */
    a = validate_ok(db, &x, 7, 120, false);
    c = check_certificate(field(&a, "license_certificate"), &ap, "L-1");
    assert_int_equal(c.expiry, EXPIRY + 86400);
    assert_int_equal(c.nfeatures, 2);
    answer_clear(&a);
}

/* Several connections (as several processes would have) activating at once
 * without the in-process lock: SQLite's write lock alone serialises them,
 * and the pool and the maximum still hold. */
struct racer {
    char path[256];
    unsigned first;
    int ok, refused, failed;
};

static void *race(void *arg) {
    struct racer *r = arg;
    struct srv_db *db = NULL;
    char err[256];

    if (srv_db_open(r->path, false, &db, err, sizeof(err)) < 0) {
        r->failed++;
        return NULL;
    }
    for (unsigned i = 0; i < 8; i++) {
        char nonce[33], *body = NULL, *text = activation_text("L-1", r->first + i, 0, 0, nonce);
        struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};
        struct srv_reply reply;
        json_t *req;

        if (asprintf(&body, "{\"activation_certificate\": \"%s\"}", text) < 0)
            abort();
        req = json_loads(body, 0, NULL);
        if (srv_handle(&ctx, SRV_REQ_ACTIVATE, req, &reply) < 0)
            r->failed++;
        else if (reply.status == 200)
            r->ok++;
        else if (!strcmp(reply.reason, "max_activations"))
            r->refused++;
        else
            r->failed++;
        srv_reply_clear(&reply);
        json_decref(req);
        free(body);
        free(text);
    }
    srv_db_close(db);
    return NULL;
}

static void concurrent_activations_never_over_commit(void **state) {
    char path[256], err[256];
    struct racer rs[6];
    pthread_t t[6];
    struct srv_db *db = NULL;
    int ok = 0, refused = 0;

    db_path(path, sizeof(path));
    assert_int_equal(srv_db_open(path, true, &db, err, sizeof(err)), 0);
    make_license(db, "L-1", CERT_CONSUMPTION, 100000, 3000, 40);
    for (int i = 0; i < 6; i++) {
        rs[i] = (struct racer){.first = (unsigned)i * 100};
        snprintf(rs[i].path, sizeof(rs[i].path), "%s", path);
        assert_int_equal(pthread_create(&t[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(rs[i].failed, 0);
        ok += rs[i].ok;
        refused += rs[i].refused;
    }
    assert_int_equal(ok, 40);
    assert_int_equal(refused, 48 - 40);
    assert_int_equal(pool_of(db, "L-1").active, 40);
    /* 33 x 3000 = 99000, then 1000, then 6 x 0 */
    assert_int_equal(pool_of(db, "L-1").committed, 100000);
    assert_int_equal(pool_of(db, "L-1").free, 0);
    srv_db_close(db);
}

static int scalar(struct srv_db *db, const char *sql) {
    int64_t v = -1;
    return srv_sql_scalar(db, sql, &v, 0) == 0 ? (int)v : -1;
}

/* The schema as release 0.1.0 (schema version 2) left it, with a license
 * and three activations: the upgrade must fill the pool columns. */
static const char schema_v2[] =
    "CREATE TABLE licenses (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, product TEXT NOT "
    "NULL, customer_id INTEGER NOT NULL, license_type TEXT NOT NULL CHECK (license_type IN "
    "('perpetual','time-limited','subscription','consumption')), expiry INTEGER NOT NULL DEFAULT "
    "0, features TEXT NOT NULL DEFAULT '', secs_allocated INTEGER NOT NULL DEFAULT 0 CHECK "
    "(secs_allocated >= 0), cache_secs INTEGER NOT NULL CHECK (cache_secs > 0), tick_secs "
    "INTEGER NOT NULL CHECK (tick_secs BETWEEN 1 AND 86400), max_activations INTEGER NOT NULL "
    "CHECK (max_activations >= 0), offline_allowed INTEGER NOT NULL DEFAULT 0, suspended "
    "INTEGER NOT NULL DEFAULT 0, terms INTEGER NOT NULL DEFAULT 1, created INTEGER NOT NULL, "
    "updated INTEGER NOT NULL);"
    "CREATE TABLE activations (id TEXT PRIMARY KEY, license_id INTEGER NOT NULL REFERENCES "
    "licenses(id) ON DELETE CASCADE, kind TEXT NOT NULL CHECK (kind IN ('online','offline')), "
    "state TEXT NOT NULL CHECK (state IN ('active','closed')), computer_id TEXT NOT NULL, "
    "hwid_ek TEXT, hwid_dmi TEXT, hwid_nic TEXT, ek_public BLOB NOT NULL, ek_certificate BLOB, "
    "counter_index INTEGER NOT NULL, counter_name TEXT NOT NULL, counter_base INTEGER NOT NULL, "
    "tick_secs INTEGER NOT NULL, epoch TEXT NOT NULL DEFAULT '', secs_granted INTEGER NOT NULL "
    "CHECK (secs_granted >= 0), consumed_secs INTEGER NOT NULL DEFAULT 0, final_secs INTEGER "
    "NOT NULL DEFAULT 0, returned_secs INTEGER NOT NULL DEFAULT 0, last_counter INTEGER NOT "
    "NULL, terms INTEGER NOT NULL, username TEXT, email_address TEXT, company_name TEXT, "
    "hostname TEXT, created INTEGER NOT NULL, last_seen INTEGER NOT NULL, closed INTEGER NOT "
    "NULL DEFAULT 0);"
    "CREATE INDEX activations_license ON activations(license_id, state);"
    "CREATE TABLE flags (id INTEGER PRIMARY KEY, activation_id TEXT NOT NULL REFERENCES "
    "activations(id) ON DELETE CASCADE, time INTEGER NOT NULL, reason TEXT NOT NULL, detail "
    "TEXT NOT NULL);"
    "CREATE INDEX flags_activation ON flags(activation_id);"
    "INSERT INTO licenses VALUES (1, 'OLD-1', 'speech', 7, 'perpetual', 0, 'standard', 10000, "
    "3600, 60, 5, 0, 0, 1, 1700000000, 1700000000);"
    "INSERT INTO activations VALUES ('a1', 1, 'online', 'active', "
    "'00000000-0000-8000-8000-000000000001', NULL, NULL, NULL, x'00', NULL, 1, '000b', 0, 60, "
    "'00000000000000000000000000000000', 3600, 100, 0, 0, 0, 1, NULL, NULL, NULL, NULL, "
    "1700000000, 1700000000, 0);"
    "INSERT INTO activations VALUES ('a2', 1, 'offline', 'active', "
    "'00000000-0000-8000-8000-000000000002', NULL, NULL, NULL, x'00', NULL, 1, '000b', 0, 60, "
    "'', 2000, 0, 0, 0, 0, 1, NULL, NULL, NULL, NULL, 1700000000, 1700000000, 0);"
    "INSERT INTO activations VALUES ('a3', 1, 'online', 'closed', "
    "'00000000-0000-8000-8000-000000000003', NULL, NULL, NULL, x'00', NULL, 1, '000b', 0, 60, "
    "'00000000000000000000000000000000', 3600, 700, 700, 2900, 0, 1, NULL, NULL, NULL, NULL, "
    "1700000000, 1700000000, 1700000100);"
    "PRAGMA user_version = 2;";

static long long scalar_id(struct srv_db *db, const char *sql, int64_t id) {
    int64_t v = -1;
    return srv_sql_scalar(db, sql, &v, 1, id) == 0 ? (long long)v : -1;
}

/* A database just migrated: every table (tables_sql: the backend's query
 * counting those named after it), a license that will be kept, and an
 * audit log that is append-only whoever writes to the database. */
static void fresh_schema(struct srv_db *db, const char *tables_sql) {
    char sql[300];
    snprintf(sql, sizeof(sql),
             "%s('licenses', 'activations', 'flags', 'audit', 'tokens', "
             "'webhooks', 'deliveries')",
             tables_sql);
    assert_int_equal(scalar(db, sql), 7);
    make_license(db, "KEEP-ME", CERT_PERPETUAL, 0, 3600, 1);
    assert_int_equal(srv_db_exec(db, "INSERT INTO audit (time, actor, action, target) VALUES "
                                     "(1, 'test', 'test', 'x')"),
                     0);
    assert_int_equal(srv_db_exec(db, "UPDATE audit SET actor = 'someone else'"), -EPERM);
    assert_int_equal(srv_db_exec(db, "DELETE FROM audit"), -EPERM);
}

/* PostgreSQL: a new database gets every step, re-opening runs nothing
 * twice, a newer schema is refused untouched, the append-only audit log is
 * enforced, and a server that does not answer is named. (There is no
 * earlier PostgreSQL release to upgrade from.) */
static void pg_migrations(void) {
    char path[256], err[256] = "";
    struct srv_db *db = NULL;
    struct srv_license l;

    db_path(path, sizeof(path));
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_int_equal(srv_db_version(db), SRV_SCHEMA_VERSION);
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM schema_migrations"), SRV_SCHEMA_VERSION);
    fresh_schema(db, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN ");
    srv_db_close(db);

    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM schema_migrations"), SRV_SCHEMA_VERSION);
    assert_int_equal(srv_license_get(db, "KEEP-ME", false, &l), 0);
    assert_int_equal(srv_db_exec(db, "INSERT INTO schema_migrations VALUES (99, 0)"), 0);
    srv_db_close(db);
    db = NULL;
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "99"));
    assert_null(db);

    snprintf(path, sizeof(path), "postgresql://nobody@/nothing?host=%s/none&port=1", dir);
    assert_int_not_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
}

static void schema_migrations_and_reopening(void **state) {
    char path[256], err[256] = "";
    struct srv_db *db = NULL;
    struct srv_license l;
    sqlite3 *raw = NULL;
    FILE *f;

    if (pg_host) {
        pg_migrations();
        return;
    }
    /* missing file, not created */
    db_path(path, sizeof(path));
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, path));

    /* an empty file (0 bytes) is migrated from version 0 */
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_int_equal(srv_db_version(db), SRV_SCHEMA_VERSION);
    fresh_schema(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ");
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 1);
    srv_db_close(db);

    /* re-opening keeps the data, runs nothing twice */
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_int_equal(srv_db_version(db), SRV_SCHEMA_VERSION);
    assert_int_equal(srv_license_get(db, "KEEP-ME", false, &l), 0);
    {
        /* WAL is kept in the file */
        _cleanup_stmt_ struct srv_stmt *st = NULL;
        assert_int_equal(srv_sql_prepare(db, "PRAGMA journal_mode", &st), 0);
        assert_int_equal(srv_sql_step(st), 1);
        assert_string_equal(srv_sql_text(st, 0), "wal");
    }
    srv_db_close(db);

    /* a database of an earlier release (version 2) gets the later steps
     * only, its rows kept, the pool columns filled from them */
    {
        char old[128];
        struct srv_pool p;
        db_path(old, sizeof(old));
        assert_int_equal(sqlite3_open(old, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_exec(raw, schema_v2, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(raw);
        assert_int_equal(srv_db_open(old, false, &db, err, sizeof(err)), 0);
        assert_int_equal(srv_db_version(db), SRV_SCHEMA_VERSION);
        assert_int_equal(srv_license_get(db, "OLD-1", false, &l), 0);
        assert_int_equal(srv_pool_get(db, &l, NOW, false, &p), 0);
        assert_int_equal(p.committed, 3600 + 2000 + 700);
        assert_int_equal(p.active, 2);
        assert_int_equal(p.free, 10000 - 6300);
        pool_of(db, "OLD-1");
        assert_int_equal(srv_activation_get(db, "a3", false, &(struct srv_activation){0}), 0);
        /* step 4 named why the closed one was closed */
        assert_int_equal(scalar(db, "SELECT COUNT(*) FROM activations WHERE id = 'a3' AND "
                                    "closed_reason = 'deactivated'"),
                         1);
        srv_db_close(db);
    }

    /* a newer schema than this program knows is refused, untouched */
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    db = NULL;
    assert_int_equal(srv_db_open(path, false, &db, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "99"));
    assert_null(db);

    /* not a database at all */
    db_path(path, sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a SQLite database, it is a text file of some length....\n", f);
    fclose(f);
    assert_int_not_equal(srv_db_open(path, false, &db, err, sizeof(err)), 0);
    assert_non_null(strstr(err, path));

    /* created when missing, with create */
    db_path(path, sizeof(path));
    assert_int_equal(srv_db_open(path, true, &db, err, sizeof(err)), 0);
    assert_int_equal(srv_db_version(db), SRV_SCHEMA_VERSION);
    srv_db_close(db);
}

static void license_rows_round_trip(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_license l = make_license(db, "L-1", CERT_SUBSCRIPTION, 123, 45, 6), back, dup;
    struct srv_license *all = NULL;
    size_t n = 0;

    assert_int_equal(srv_license_get(db, "L-1", false, &back), 0);
    assert_int_equal(back.id, l.id);
    assert_string_equal(back.product, "speech");
    assert_int_equal(back.expiry, EXPIRY);
    assert_int_equal(back.nfeatures, 1);
    assert_string_equal(back.features[0], "standard");
    assert_int_equal(back.secs_allocated, 123);
    assert_int_equal(back.cache_secs, 45);
    assert_int_equal(back.max_activations, 6);
    assert_int_equal(srv_license_get_by_id(db, l.id, false, &back), 0);
    assert_int_equal(srv_license_get(db, "l-1", false, &back), -ENOENT); /* codes are exact */
    dup = l;
    assert_int_equal(srv_license_insert(db, &dup), -EEXIST);
    make_license(db, "A-0", CERT_PERPETUAL, 0, 1, 1);
    assert_int_equal(srv_license_list(db, &all, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].code, "A-0"); /* by code */
    free(all);
    /* deleting a license deletes its activations and their flags */
    {
        struct act x = activate(db, "L-1", 1, 0);
        struct answer a =
            check_req(db, NOW, SRV_REQ_VALIDATE, &x, "00000000000000000000000000000000",
                      "00000000000000000000000000000001", 0, 0, false);
        assert_refused(&a, "stale_epoch");
        answer_clear(&a);
        assert_int_equal(srv_license_delete(db, l.id), 0);
        assert_int_equal(srv_activation_get(db, x.id, false, &(struct srv_activation){0}), -ENOENT);
        assert_int_equal(scalar(db, "SELECT COUNT(*) FROM flags"), 0);
        a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, x.epoch, 0, 0, false);
        assert_refused(&a, "unknown_license");
        answer_clear(&a);
    }
}

/* ---- administrative operations (ops.c) --------------------------------------------------- */

static struct srv_op op_at(struct srv_db *db, time_t now) {
    return (struct srv_op){.db = db, .now = now, .actor = "cli:test", .key = vendor};
}

static void op_ok(int r, const struct srv_operr *e) {
    if (r < 0)
        fail_msg("operation failed (%d): %s", r, e->msg);
}

static size_t audit_count(struct srv_db *db, const char *action) {
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM audit WHERE action = '%s'", action);
    return (size_t)scalar(db, sql);
}

static void revoke_frees_the_seat_and_keeps_the_grant(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW);
    struct srv_operr e;
    json_t *doc = NULL;
    struct answer a;
    struct act x, y;

    make_license(db, "L-1", CERT_CONSUMPTION, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 0);
    a = validate_ok(db, &x, 5, 300, false);
    answer_clear(&a);
    op_ok(srv_op_activation_revoke(&op, x.id, &doc, &e), &e);
    assert_string_equal(json_string_value(json_object_get(doc, "closed_reason")), "revoked");
    json_decref(doc);
    /* the seat is free; the grant stays used: 3600 of 100000, not 300 */
    assert_int_equal(pool_of(db, "L-1").active, 0);
    assert_int_equal(pool_of(db, "L-1").committed, 3600);
    assert_int_equal(row_of(db, x.id).final_secs, 3600);
    assert_int_equal(row_of(db, x.id).returned_secs, 0);
    /* its appliance is refused, even its deactivation (nothing to return) */
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, x.epoch, "00000000000000000000000000000001", 6,
                  300, false);
    assert_refused(&a, "not_active");
    assert_non_null(strstr(field(&a, "message"), "revoked"));
    answer_clear(&a);
    a = check_req(db, NOW, SRV_REQ_DEACTIVATE, &x, x.epoch, NULL, 5, 300, false);
    assert_refused(&a, "not_active");
    answer_clear(&a);
    y = activate(db, "L-1", 2, 0);
    assert_int_equal(pool_of(db, "L-1").active, 1);
    /* twice, or an unknown one */
    assert_int_equal(srv_op_activation_revoke(&op, x.id, &doc, &e), -EPERM);
    assert_int_equal(srv_op_activation_revoke(&op, "0123", &doc, &e), -ENOENT);
    assert_int_equal(audit_count(db, "activation.revoke"), 1);
    (void)y;
}

static void transfer_holds_the_seat_then_lets_it_go(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW);
    struct srv_operr e;
    json_t *doc = NULL;
    struct answer a;
    struct act x, y;
    const char *to = appliance(2, 0, 0).computer_id;
    char target[HWID_ID_STRLEN];
    struct srv_license l = make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 1);

    snprintf(target, sizeof(target), "%s", to);
    x = activate(db, "L-1", 1, 0);
    /* no transfer allowed yet */
    assert_int_equal(srv_op_activation_transfer(&op, x.id, target, &doc, &e), -EPERM);
    assert_string_equal(e.reason, "max_transfers");
    l.max_transfers = 1;
    assert_int_equal(srv_license_update(db, &l), 0);
    assert_int_equal(srv_op_activation_transfer(&op, x.id, "not-a-computer", &doc, &e), -EINVAL);
    assert_string_equal(e.field, "to_computer_id");
    assert_int_equal(srv_op_activation_transfer(&op, x.id, x.computer_id, &doc, &e), -EPERM);
    op_ok(srv_op_activation_transfer(&op, x.id, target, &doc, &e), &e);
    assert_int_equal(json_integer_value(json_object_get(doc, "transfers_used")), 1);
    json_decref(doc);
    assert_int_equal(row_of(db, x.id).state, SRV_CLOSED);
    assert_int_equal(pool_of(db, "L-1").reserved, 1);
    /* the seat is the new computer's: another is refused, it is admitted */
    a = activate_raw(db, "L-1", 3, 0, 0);
    assert_refused(&a, "max_activations");
    answer_clear(&a);
    y = activate(db, "L-1", 2, 0);
    assert_int_equal(pool_of(db, "L-1").active, 1);
    assert_int_equal(pool_of(db, "L-1").reserved, 0);
    /* no transfer left */
    assert_int_equal(
        srv_op_activation_transfer(&op, y.id, appliance(3, 0, 0).computer_id, &doc, &e), -EPERM);
    assert_int_equal(audit_count(db, "activation.transfer"), 1);

    /* a transfer nobody takes up keeps the seat for 30 days, then frees it */
    l.max_transfers = 5;
    assert_int_equal(srv_license_get(db, "L-1", false, &l), 0);
    l.max_transfers = 5;
    assert_int_equal(srv_license_update(db, &l), 0);
    op_ok(srv_op_activation_transfer(&op, y.id, appliance(4, 0, 0).computer_id, &doc, &e), &e);
    json_decref(doc);
    a = activate_raw(db, "L-1", 5, 0, 0);
    assert_refused(&a, "max_activations");
    answer_clear(&a);
    {
        char nonce[33], *body;
        _cleanup_free_ char *text = activation_text("L-1", 5, 0, 0, nonce);
        assert_true(asprintf(&body, "{\"activation_certificate\": \"%s\"}", text) > 0);
        a = call_at(db, NOW + (SRV_TRANSFER_DAYS + 1) * 86400, SRV_REQ_ACTIVATE, body, nonce);
        free(body);
        assert_ok(&a);
        answer_clear(&a);
    }
}

static void cull_by_policy(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW + 11 * 86400);
    struct srv_operr e;
    json_t *doc = NULL;
    struct act x, y;
    struct answer a;
    struct srv_license l = make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 5), other;
    char *jws = NULL, reason[32], msg[256], nonce[33], *text;
    struct cert_activation act;
    struct srv_ctx ctx = {.db = db, .key = vendor, .now = NOW};

    other = make_license(db, "L-2", CERT_PERPETUAL, 0, 3600, 5);
    x = activate(db, "L-1", 1, 0); /* last seen NOW */
    y = activate(db, "L-1", 2, 0);
    a = check_req(db, NOW + 5 * 86400, SRV_REQ_VALIDATE, &y, y.epoch,
                  "00000000000000000000000000000001", 1, 0, false);
    assert_ok(&a); /* y was seen 5 days later */
    answer_clear(&a);
    l.offline_allowed = true;
    l.cull_days = 10;
    assert_int_equal(srv_license_update(db, &l), 0);
    text = activation_text("L-1", 3, 0, 0, nonce);
    assert_int_equal(cert_activation_decode(text, strlen(text), &act, msg, sizeof(msg)), CERT_OK);
    free(text);
    assert_int_equal(offline_sign(&ctx, &act, 100, &jws, reason), 0); /* never seen again */
    free(jws);
    cert_activation_clear(&act);

    assert_int_equal(srv_op_cull(&op, "L-2", false, &doc, &e), -EPERM); /* no policy */
    (void)other;
    op_ok(srv_op_cull(&op, "L-1", true, &doc, &e), &e);
    assert_int_equal(json_array_size(json_object_get(doc, "culled")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "culled"), 0), "activation")),
                        x.id);
    json_decref(doc);
    assert_int_equal(row_of(db, x.id).state, SRV_ACTIVE); /* a dry run */
    op_ok(srv_op_cull(&op, NULL, false, &doc, &e), &e);
    assert_int_equal(json_array_size(json_object_get(doc, "culled")), 1);
    json_decref(doc);
    assert_int_equal(row_of(db, x.id).state, SRV_CLOSED);
    assert_string_equal(row_of(db, x.id).closed_reason, "culled");
    assert_int_equal(row_of(db, y.id).state, SRV_ACTIVE);
    assert_int_equal(pool_of(db, "L-1").active, 2); /* y and the offline one */
    assert_int_equal(audit_count(db, "activation.cull"), 1);
}

static void clear_flags_keeps_their_history(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW);
    struct srv_operr e;
    json_t *doc = NULL;
    struct answer a;
    struct act x;

    make_license(db, "L-1", CERT_PERPETUAL, 100000, 3600, 1);
    x = activate(db, "L-1", 1, 10);
    a = check_req(db, NOW, SRV_REQ_VALIDATE, &x, "00000000000000000000000000000009",
                  "00000000000000000000000000000001", 10, 0, false);
    assert_refused(&a, "stale_epoch");
    answer_clear(&a);
    assert_int_equal(row_of(db, x.id).nflags_open, 1);
    op_ok(srv_op_activation_clear_flags(&op, x.id, &doc, &e), &e);
    assert_int_equal(json_integer_value(json_object_get(doc, "flags_cleared")), 1);
    assert_false(json_is_true(json_object_get(doc, "flagged")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "flags"), 0), "cleared_by")),
                        "cli:test");
    json_decref(doc);
    assert_int_equal(row_of(db, x.id).nflags, 1);
    assert_int_equal(row_of(db, x.id).nflags_open, 0);
    /* nothing open: nothing done, nothing audited */
    op_ok(srv_op_activation_clear_flags(&op, x.id, &doc, &e), &e);
    assert_int_equal(json_integer_value(json_object_get(doc, "flags_cleared")), 0);
    json_decref(doc);
    assert_int_equal(audit_count(db, "activation.clear_flags"), 1);
}

static void tokens_are_stored_hashed(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    char token[SRV_TOKEN_LEN + 1], id[SRV_TOKEN_ID_HEX + 1], hash[65], sql[160],
        forged[SRV_TOKEN_LEN + 1];
    unsigned char md[32];
    struct srv_token_info info;
    struct srv_operr e;
    struct srv_op op = op_at(db, NOW);
    json_t *doc = NULL;

    assert_int_equal(srv_token_insert(db, SRV_SCOPE_WRITE, "billing", NOW, "cli:test", token, id),
                     0);
    assert_int_equal(strlen(token), SRV_TOKEN_LEN);
    assert_int_equal(EVP_Digest(token, strlen(token), md, NULL, EVP_sha256(), NULL), 1);
    hex_encode(md, 32, hash);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM tokens WHERE id = '%s' AND hash = '%s'", id,
             hash);
    assert_int_equal(scalar(db, sql), 1);
    assert_int_equal(srv_token_check(db, token, &info), 0);
    assert_int_equal(info.scope, SRV_SCOPE_WRITE);
    assert_string_equal(info.name, "billing");
    /* one digit of the secret changed, the ID changed, cut, padded, garbage */
    snprintf(forged, sizeof(forged), "%s", token);
    forged[SRV_TOKEN_LEN - 1] = forged[SRV_TOKEN_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(srv_token_check(db, forged, &info), -EACCES);
    snprintf(forged, sizeof(forged), "%s", token);
    forged[8] = forged[8] == '0' ? '1' : '0';
    assert_int_equal(srv_token_check(db, forged, &info), -EACCES);
    forged[SRV_TOKEN_LEN - 5] = '\0';
    assert_int_equal(srv_token_check(db, forged, &info), -EACCES);
    assert_int_equal(srv_token_check(db, "", &info), -EACCES);
    assert_int_equal(srv_token_check(db, NULL, &info), -EACCES);
    snprintf(forged, sizeof(forged), "%s", token);
    forged[7 + SRV_TOKEN_ID_HEX] = '-';
    assert_int_equal(srv_token_check(db, forged, &info), -EACCES);
    /* revoked: refused; the list never shows a hash */
    op_ok(srv_op_token_revoke(&op, id, &doc, &e), &e);
    json_decref(doc);
    assert_int_equal(srv_token_check(db, token, &info), -EACCES);
    op_ok(srv_op_token_list(&op, &doc, &e), &e);
    assert_null(json_object_get(json_array_get(doc, 0), "hash"));
    json_decref(doc);
    assert_int_equal(srv_op_token_create(&op, SRV_SCOPE_READ, "", &doc, &e), -EINVAL);
    assert_int_equal(srv_op_token_create(&op, (enum srv_scope)7, "x", &doc, &e), -EINVAL);
}

/* Webhooks in the database: events only for subscribers, written with the
 * decision; deliveries claimed, held, retried with back-off, failed,
 * delivered; pool_low once per crossing. */
static void webhook_events_and_their_delivery_log(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW);
    struct srv_operr e;
    json_t *doc = NULL;
    struct srv_delivery *d = NULL;
    size_t n = 0;
    struct act x;
    const char *ev[] = {"activation", "pool_low"};

    make_license(db, "L-1", CERT_CONSUMPTION, 10000, 3600, 5);
    x = activate(db, "L-1", 1, 0); /* no webhook yet: no delivery */
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM deliveries"), 0);
    op_ok(srv_op_webhook_create(&op, "https://hooks.example.com/tpmlic", ev, 2, "crm", &doc, &e),
          &e);
    assert_int_equal(strlen(json_string_value(json_object_get(doc, "secret"))), 64);
    json_decref(doc);
    {
        struct srv_license l;
        assert_int_equal(srv_license_get(db, "L-1", false, &l), 0);
        l.pool_alert_secs = 5000;
        assert_int_equal(srv_license_update(db, &l), 0);
    }
    x = activate(db, "L-1", 2, 0); /* 10000 - 7200 = 2800 free: below 5000 */
    x = activate(db, "L-1", 3, 0); /* still below: no second pool_low */
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM deliveries WHERE event = 'activation'"), 2);
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM deliveries WHERE event = 'pool_low'"), 1);
    (void)x;

    /* claimed: held from others; attempts back off 30, 60, 120 ... */
    assert_int_equal(srv_delivery_claim(db, NOW, 100, 8, &d, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(d[0].url, "https://hooks.example.com/tpmlic");
    assert_int_equal(strlen(d[0].secret), 64);
    srv_deliveries_free(d, n);
    assert_int_equal(srv_delivery_claim(db, NOW + 50, 100, 8, &d, &n), 0);
    assert_int_equal(n, 0); /* held */
    srv_deliveries_free(d, n);
    assert_int_equal(srv_delivery_claim(db, NOW + 101, 100, 1, &d, &n), 0);
    assert_int_equal(n, 1); /* the hold ran out (the instance died) */
    {
        struct srv_delivery one = d[0];
        int64_t id = one.id;
        char sql[160];
        for (unsigned k = 0; k < 3; k++) {
            one.attempts = k;
            assert_int_equal(srv_delivery_record(db, &one, NOW, 500, "HTTP 500", 5, 30, 4), 0);
            snprintf(sql, sizeof(sql), "SELECT next_attempt FROM deliveries WHERE id = %lld",
                     (long long)id);
            assert_int_equal(scalar(db, sql), NOW + (30 << k));
        }
        one.attempts = 3;
        assert_int_equal(srv_delivery_record(db, &one, NOW, 0, "Couldn't connect", 5, 30, 4), 0);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM deliveries WHERE id = %lld AND state = "
                 "'failed' AND attempts = 4",
                 (long long)id);
        assert_int_equal(scalar(db, sql), 1);
        snprintf(sql, sizeof(sql),
                 "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = %lld", (long long)id);
        assert_int_equal(scalar(db, sql), 4);
    }
    srv_deliveries_free(d, n);
    assert_int_equal(srv_delivery_claim(db, NOW + 200, 100, 8, &d, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(srv_delivery_record(db, &d[0], NOW + 200, 204, "", 5, 30, 4), 0);
    srv_deliveries_free(d, n);
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"), 1);
    op_ok(srv_op_delivery_list(&op, 0, "failed", 10, &doc, &e), &e);
    assert_int_equal(json_array_size(doc), 1);
    assert_int_equal(json_array_size(json_object_get(json_array_get(doc, 0), "attempt_log")), 4);
    json_decref(doc);
    /* the backoff stops growing at an hour */
    {
        struct srv_delivery late = {.attempts = 30};
        assert_int_equal(srv_delivery_claim(db, NOW + 10000, 100, 1, &d, &n), 0);
        assert_int_equal(n, 1);
        late.id = d[0].id;
        assert_int_equal(srv_delivery_record(db, &late, NOW, 500, "HTTP 500", 5, 30, 100), 0);
        srv_deliveries_free(d, n);
        assert_int_equal(srv_delivery_claim(db, NOW + 3599, 0, 8, &d, &n), 0);
        assert_int_equal(n, 0);
        srv_deliveries_free(d, n);
    }
    op_ok(srv_op_webhook_list(&op, &doc, &e), &e);
    assert_null(json_object_get(json_array_get(doc, 0), "secret"));
    json_decref(doc);
    assert_int_equal(srv_op_webhook_create(&op, "http://example.com/", ev, 1, "", &doc, &e),
                     -EINVAL);
    assert_int_equal(srv_op_webhook_delete(&op, 99, &doc, &e), -ENOENT);
}

static void audit_entries_and_filters(void **state) {
    _cleanup_(srv_db_closep) struct srv_db *db = fresh_db();
    struct srv_op op = op_at(db, NOW);
    struct srv_license_input in = {.code = "A-1",
                                   .product = "p",
                                   .has_customer_id = true,
                                   .customer_id = 3,
                                   .has_type = true,
                                   .type = CERT_PERPETUAL};
    struct srv_audit_query q = {0};
    struct srv_operr e;
    json_t *doc = NULL;
    bool changed;
    char msg[200];

    op_ok(srv_op_license_create(&op, &in, &doc, &e), &e);
    json_decref(doc);
    memset(&in, 0, sizeof(in));
    in.has_max_activations = true;
    in.max_activations = 9;
    op.now = NOW + 10;
    op.actor = "token:0011 (ops)";
    op_ok(srv_op_license_update(&op, "A-1", &in, &doc, &changed, &e), &e);
    json_decref(doc);
    assert_false(changed);
    op_ok(srv_op_license_suspend(&op, "A-1", true, &doc, &e), &e);
    json_decref(doc);

    op_ok(srv_op_audit_list(&op, &q, &doc, &e), &e);
    assert_int_equal(json_array_size(doc), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "action")),
                        "license.suspend");
    assert_true(json_is_null(json_object_get(json_array_get(doc, 2), "before")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(doc, 1), "after"), "max_activations")),
                     9);
    json_decref(doc);
    q.action = "license.";
    q.actor = "token:0011 (ops)";
    op_ok(srv_op_audit_list(&op, &q, &doc, &e), &e);
    assert_int_equal(json_array_size(doc), 2);
    json_decref(doc);
    q = (struct srv_audit_query){.since = NOW + 5, .limit = 1};
    op_ok(srv_op_audit_list(&op, &q, &doc, &e), &e);
    assert_int_equal(json_array_size(doc), 1);
    q.before_id = json_integer_value(json_object_get(json_array_get(doc, 0), "id"));
    json_decref(doc);
    op_ok(srv_op_audit_list(&op, &q, &doc, &e), &e);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "action")),
                        "license.update");
    json_decref(doc);
    q = (struct srv_audit_query){.limit = 5000};
    assert_int_equal(srv_op_audit_list(&op, &q, &doc, &e), -EINVAL);

    /* a refused operation writes nothing */
    memset(&in, 0, sizeof(in));
    in.has_tick_secs = true;
    in.tick_secs = 5;
    assert_int_equal(srv_op_license_update(&op, "A-1", &in, &doc, &changed, &e), -EINVAL);
    srv_operr_text(&e, SRV_FIELD_JSON, msg, sizeof(msg));
    assert_string_equal(msg, "'tick_secs' is fixed once the license is created");
    assert_int_equal(scalar(db, "SELECT COUNT(*) FROM audit"), 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(activate_validate_deactivate),
        cmocka_unit_test(not_active_after_deactivation),
        cmocka_unit_test(max_activations_and_reactivation),
        cmocka_unit_test(refill_never_beyond_the_pool),
        cmocka_unit_test(refill_certificate_keeps_activation_counter_and_base),
        cmocka_unit_test(the_pool_adds_up),
        cmocka_unit_test(stale_epoch_and_counter_going_back),
        cmocka_unit_test(consumption_never_goes_back),
        cmocka_unit_test(retry_with_the_pending_next_epoch),
        cmocka_unit_test(suspended_expired_unknown),
        cmocka_unit_test(malformed_requests_change_nothing),
        cmocka_unit_test(offline_sign_counts_against_the_maximum),
        cmocka_unit_test(new_certificate_when_the_terms_change),
        cmocka_unit_test(validity_window_on_the_tpm_clock),
        cmocka_unit_test(time_floor_at_the_server_time),
        cmocka_unit_test(new_base_after_a_lifted_refusal),
        cmocka_unit_test(tpm_trust_is_checked_by_the_server),
        cmocka_unit_test(offline_renewal_starts_past_the_ceiling),
        cmocka_unit_test(concurrent_activations_never_over_commit),
        cmocka_unit_test(schema_migrations_and_reopening),
        cmocka_unit_test(license_rows_round_trip),
        cmocka_unit_test(revoke_frees_the_seat_and_keeps_the_grant),
        cmocka_unit_test(transfer_holds_the_seat_then_lets_it_go),
        cmocka_unit_test(cull_by_policy),
        cmocka_unit_test(clear_flags_keeps_their_history),
        cmocka_unit_test(tokens_are_stored_hashed),
        cmocka_unit_test(webhook_events_and_their_delivery_log),
        cmocka_unit_test(audit_entries_and_filters),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
