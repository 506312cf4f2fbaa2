/* The activation certificate: base64url of a JSON object that the agent
 * makes and the vendor signs into a license (docs/certificates.md). It is
 * not signed: the vendor checks it for consistency, and everything that
 * matters comes back inside the vendor's signature. */
#include "cert/internal.h"

#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "hwid/encode.h"
#include "common/timefmt.h"

static const char *const activation_keys[] = {
    "v",         "license", "computer_id", "hwid",     "ek_public",     "ek_certificate",
    "counter",   "nonce",   "date",        "username", "email_address", "company_name",
    "hostname",  "is_vm",   "vm_info",     "app_ver",  "time_floor",    "supersedes",
    "ek_issuer", NULL,
};

void cert_activation_clear(struct cert_activation *a) {
    if (!a)
        return;
    free(a->ek_public);
    free(a->ek_certificate);
    memset(a, 0, sizeof(*a));
}

static void set_opt(json_t *o, const char *key, const char *value) {
    if (value && *value)
        json_object_set_new(o, key, json_string(value));
}

int cert_activation_encode(const struct cert_activation *a, char **ret, char *err, size_t errlen) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    _cleanup_free_ char *ekp = NULL, *ekc = NULL, *text = NULL;
    struct cert_activation check = {0};
    char when[21], *out;
    enum cert_status s;
    int r;

    r = cert_b64url_encode(a->ek_public, a->ek_public_len, &ekp);
    if (r < 0)
        return r;
    if (a->ek_certificate &&
        (r = cert_b64url_encode(a->ek_certificate, a->ek_certificate_len, &ekc)) < 0)
        return r;
    rfc3339_format(a->date, when);
    o = json_pack("{s:i, s:s, s:s, s:o, s:s, s:o, s:s, s:s}", "v", 1, "license", a->license,
                  "computer_id", a->computer_id, "hwid", cert_hwid_to_json(&a->hwid), "ek_public",
                  ekp, "counter", cert_counter_to_json(&a->counter, "value"), "nonce", a->nonce,
                  "date", when);
    if (!o)
        return -ENOMEM;
    set_opt(o, "ek_certificate", ekc);
    set_opt(o, "username", a->username);
    set_opt(o, "email_address", a->email_address);
    set_opt(o, "company_name", a->company_name);
    set_opt(o, "hostname", a->hostname);
    if (a->is_vm >= 0)
        json_object_set_new(o, "is_vm", json_boolean(a->is_vm));
    set_opt(o, "vm_info", a->vm_info);
    set_opt(o, "app_ver", a->app_ver);
    set_opt(o, "ek_issuer", a->ek_issuer);
    if (a->time_floor.index)
        json_object_set_new(o, "time_floor", cert_counter_to_json(&a->time_floor, "value"));
    if (a->supersedes_jti[0])
        json_object_set_new(o, "supersedes",
                            json_pack("{s:s, s:I}", "jti", a->supersedes_jti, "ceiling",
                                      (json_int_t)a->supersedes_ceiling));
    text = json_dumps(o, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    r = cert_b64url_encode((const uint8_t *)text, strlen(text), &out);
    if (r < 0)
        return r;
    /* Hand out only what the decoder accepts. */
    s = cert_activation_decode(out, strlen(out), &check, err, errlen);
    cert_activation_clear(&check);
    if (s != CERT_OK) {
        free(out);
        return -EINVAL;
    }
    *ret = out;
    return 0;
}

static bool ek_from_json(struct cj *c, json_t *o, const char *key, bool required, uint8_t **ret,
                         size_t *ret_len) {
    char *buf;
    json_t *v = json_object_get(o, key);
    bool ok;

    if (!v && !required)
        return true;
    if (!json_is_string(v))
        return cj_fail(c, "field '%s' must be base64url text", key);
    buf = malloc(json_string_length(v) + 1);
    if (!buf)
        return cj_fail(c, "out of memory");
    ok = cj_string(c, o, key, CJ_REQUIRED, CJ_IDENTIFIER, 4096, buf, json_string_length(v) + 1) &&
         cert_b64url_decode(buf, strlen(buf), ret, ret_len) == 0;
    free(buf);
    if (!ok)
        return cj_fail(c, "field '%s' is not base64url without padding", key);
    return true;
}

enum cert_status cert_activation_decode(const char *text, size_t len, struct cert_activation *ret,
                                        char *msg, size_t msglen) {
    _cleanup_free_ uint8_t *raw = NULL;
    _cleanup_(json_decrefp) json_t *o = NULL;
    struct cert_activation a = {.is_vm = -1};
    char e[200], when[32];
    struct cj c = {.msg = e, .msglen = sizeof(e)};
    uint8_t ekd[HWID_DIGEST_LEN];
    json_error_t jerr;
    uint64_t v = 0;
    bool b = false, ok;
    size_t n;

    /* whitespace around the text (a mail client's line end) is forgiven */
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    if (len > CERT_ACTIVATION_MAX) {
        snprintf(msg, msglen, "malformed: %zu characters, an activation certificate has at most %d",
                 len, CERT_ACTIVATION_MAX);
        return CERT_MALFORMED;
    }
    if (len == 0 || cert_b64url_decode(text, len, &raw, &n) < 0) {
        snprintf(msg, msglen, "malformed: not base64url text without padding");
        return CERT_MALFORMED;
    }
    o = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        snprintf(msg, msglen, "malformed: not valid JSON: %s", jerr.text);
        return CERT_MALFORMED;
    }
    if (!json_is_object(o)) {
        snprintf(msg, msglen, "malformed: not a JSON object");
        return CERT_MALFORMED;
    }
    if (!cj_uint(&c, o, "v", true, 0, CERT_JSON_UINT_MAX, &v))
        goto malformed;
    if (v != 1) {
        snprintf(msg, msglen, "unsupported version: activation certificate version %llu",
                 (unsigned long long)v);
        return CERT_UNSUPPORTED_VERSION;
    }
    ok = cj_only_keys(&c, o, "", activation_keys) &&
         cj_string(&c, o, "license", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX, a.license,
                   sizeof(a.license)) &&
         cj_string(&c, o, "computer_id", CJ_REQUIRED, CJ_IDENTIFIER, 36, a.computer_id,
                   sizeof(a.computer_id)) &&
         cert_hwid_from_json(&c, o, &a.hwid) &&
         ek_from_json(&c, o, "ek_public", true, &a.ek_public, &a.ek_public_len) &&
         ek_from_json(&c, o, "ek_certificate", false, &a.ek_certificate, &a.ek_certificate_len) &&
         cert_counter_from_json(&c, o, "counter", "value", &a.counter) &&
         cj_string(&c, o, "nonce", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX, a.nonce,
                   sizeof(a.nonce)) &&
         cj_string(&c, o, "date", CJ_REQUIRED, CJ_TEXT, 20, when, sizeof(when)) &&
         cj_string(&c, o, "username", CJ_OPTIONAL, CJ_TEXT, 128, a.username, sizeof(a.username)) &&
         cj_string(&c, o, "email_address", CJ_OPTIONAL, CJ_TEXT, 128, a.email_address,
                   sizeof(a.email_address)) &&
         cj_string(&c, o, "company_name", CJ_OPTIONAL, CJ_TEXT, 128, a.company_name,
                   sizeof(a.company_name)) &&
         cj_string(&c, o, "hostname", CJ_OPTIONAL, CJ_TEXT, 128, a.hostname, sizeof(a.hostname)) &&
         cj_string(&c, o, "vm_info", CJ_OPTIONAL, CJ_TEXT, 128, a.vm_info, sizeof(a.vm_info)) &&
         cj_string(&c, o, "app_ver", CJ_OPTIONAL, CJ_TEXT, 32, a.app_ver, sizeof(a.app_ver));
    if (ok && json_object_get(o, "is_vm")) {
        ok = cj_bool(&c, o, "is_vm", true, &b);
        a.is_vm = b;
    }
    ok = ok &&
         cj_string(&c, o, "ek_issuer", CJ_OPTIONAL, CJ_TEXT, 256, a.ek_issuer, sizeof(a.ek_issuer));
    if (ok && json_object_get(o, "time_floor"))
        ok = cert_counter_from_json(&c, o, "time_floor", "value", &a.time_floor);
    if (ok && json_object_get(o, "supersedes")) {
        static const char *const keys[] = {"jti", "ceiling", NULL};
        json_t *sup = json_object_get(o, "supersedes");
        ok = json_is_object(sup)
                 ? cj_only_keys(&c, sup, "supersedes: ", keys) &&
                       cj_string(&c, sup, "jti", CJ_REQUIRED, CJ_IDENTIFIER, CERT_TEXT_MAX,
                                 a.supersedes_jti, sizeof(a.supersedes_jti)) &&
                       cj_uint(&c, sup, "ceiling", true, 0, CERT_JSON_UINT_MAX,
                               &a.supersedes_ceiling)
                 : cj_fail(&c, "field 'supersedes' must be an object");
    }
    if (!ok)
        goto malformed;
    if (strlen(a.computer_id) != 36) {
        cj_fail(&c, "field 'computer_id' is not a UUID");
        goto malformed;
    }
    if (rfc3339_parse(when, &a.date) < 0) {
        cj_fail(&c, "field 'date' is not an RFC 3339 UTC time");
        goto malformed;
    }
    /* The EK public key must be the one the EK digest was made from. */
    if (hwid_digest_ek(a.ek_public, a.ek_public_len, ekd) < 0 || !a.hwid.present[HWID_EK] ||
        memcmp(ekd, a.hwid.digest[HWID_EK], sizeof(ekd)) != 0) {
        cj_fail(&c, "field 'ek_public' does not match the EK digest in 'hwid'");
        goto malformed;
    }
    *ret = a;
    snprintf(msg, msglen, "ok");
    return CERT_OK;

malformed:
    cert_activation_clear(&a);
    snprintf(msg, msglen, "malformed: %s", e);
    return CERT_MALFORMED;
}
