/* cert/: license certificates (compact JWS, EdDSA) and activation
 * certificates. Round trips, every field tampered, foreign keys, header
 * games (alg none, HS256, forged kid), truncation, padding, oversize, NUL,
 * non-UTF-8, duplicate keys and wrong types signed by hand with the real
 * key (so that the payload parser, not the signature, refuses them), the
 * validity period, the machine match, the size arithmetic, and the strict
 * time and base64url readers. Keys are made in the test; no files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cert/cert.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"
#include "common/timefmt.h"

#define NOW         1800000000 /* 2027-01-15T08:00:00Z */
#define EXPIRY      1830000000 /* 2027-12-28T... */
#define EXPIRY_TEXT "2027-12-28T13:20:00Z"

static EVP_PKEY *vendor, *other, *ek_key;
static uint8_t *ek_der;
static size_t ek_der_len;

DEFINE_PTR_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_PTR_CLEANUP(BIO, BIO_free)

static int setup(void **state) {
    unsigned char *der = NULL;
    int len;

    vendor = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ek_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!vendor || !other || !ek_key)
        return -1;
    len = i2d_PUBKEY(ek_key, &der);
    if (len <= 0)
        return -1;
    ek_der = der;
    ek_der_len = (size_t)len;
    return 0;
}

static int teardown(void **state) {
    EVP_PKEY_free(vendor);
    EVP_PKEY_free(other);
    EVP_PKEY_free(ek_key);
    OPENSSL_free(ek_der);
    return 0;
}

/* --- helpers ----------------------------------------------------------------- */

static struct hwid_digests sample_hwid(void) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC", NULL};
    struct hwid_digests d = {0};
    assert_int_equal(hwid_digest_ek(ek_der, ek_der_len, d.digest[HWID_EK]), 0);
    assert_int_equal(hwid_digest_dmi(dmi, d.digest[HWID_DMI]), 0);
    assert_int_equal(hwid_digest_nic(macs, 1, d.digest[HWID_NIC]), 0);
    d.present[HWID_EK] = d.present[HWID_DMI] = d.present[HWID_NIC] = true;
    return d;
}

static struct cert_counter sample_counter(void) {
    struct cert_counter k = {.index = 0x01a0c001, .name_len = 34, .value = 4242};
    k.name[1] = 0x0b;
    for (int i = 2; i < 34; i++)
        k.name[i] = (uint8_t)(0x40 + i);
    return k;
}

/* A realistic license: 19-character code, 20-character product, 3 features. */
static struct cert_license sample(enum cert_license_type type) {
    struct cert_license l;
    memset(&l, 0, sizeof(l));
    strcpy(l.license, "ABCD-EFGH-IJKL-MNOP");
    strcpy(l.product, "Speech Engine Pro 24");
    l.customer_id = 123456;
    l.hwid = sample_hwid();
    assert_int_equal(hwid_computer_id(&l.hwid, l.computer_id), 0);
    l.hwid_policy = HWID_POLICY_DEFAULT;
    l.type = type;
    l.expiry = type == CERT_PERPETUAL ? 0 : EXPIRY;
    strcpy(l.features[0], "standard");
    strcpy(l.features[1], "enhanced");
    strcpy(l.features[2], "diarization");
    l.nfeatures = 3;
    l.secs_allocated = 3600000;
    l.secs_granted = 360000;
    l.offline_allowed = true;
    l.activated_offline = type == CERT_CONSUMPTION;
    l.tick_secs = 60;
    l.counter = sample_counter();
    l.iat = NOW - 86400;
    strcpy(l.jti, "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    return l;
}

static char *sign_ok(const struct cert_license *l, EVP_PKEY *key) {
    char *jws = NULL, err[256] = "";
    int r = cert_license_sign(l, key, &jws, err, sizeof(err));
    if (r < 0)
        fail_msg("cert_license_sign: %d %s", r, err);
    return jws;
}

static enum cert_status verify(const char *jws, time_t now, struct cert_license *l, char *msg,
                               size_t msglen) {
    return cert_license_verify(jws, strlen(jws), vendor, now, l, msg, msglen);
}

static enum cert_status verify_quiet(const char *jws, time_t now) {
    struct cert_license l;
    char msg[256];
    return verify(jws, now, &l, msg, sizeof(msg));
}

static char *b64(const char *text, size_t len) {
    char *out = NULL;
    assert_int_equal(cert_b64url_encode((const uint8_t *)text, len, &out), 0);
    return out;
}

/* "header.payload.signature" with header and payload given as raw bytes and
 * an Ed25519 signature by key: what an attacker with the key could make, so
 * that the tests reach the payload parser. */
static char *jws_by_hand(const char *header, size_t hlen, const char *payload, size_t plen,
                         EVP_PKEY *key) {
    _cleanup_free_ char *h = b64(header, hlen), *p = b64(payload, plen), *input = NULL, *s = NULL;
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    char *jws;

    assert_true(asprintf(&input, "%s.%s", h, p) > 0);
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (uint8_t *)input, strlen(input)), 1);
    assert_int_equal(cert_b64url_encode(sig, siglen, &s), 0);
    assert_true(asprintf(&jws, "%s.%s", input, s) > 0);
    return jws;
}

static char *std_header(EVP_PKEY *kid_of) {
    char kid[CERT_KID_LEN + 1], *h;
    assert_int_equal(cert_jws_kid(kid_of, kid), 0);
    assert_true(
        asprintf(&h, "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}", kid) > 0);
    return h;
}

/* Signs payload text by hand with the vendor key and the standard header. */
static char *sign_text(const char *payload, size_t len) {
    _cleanup_free_ char *h = std_header(vendor);
    return jws_by_hand(h, strlen(h), payload, len, vendor);
}

static char *sign_json(json_t *payload) {
    _cleanup_free_ char *text = json_dumps(payload, JSON_COMPACT);
    assert_non_null(text);
    return sign_text(text, strlen(text));
}

/* The decoded payload of a JWS as a JSON object. */
static json_t *payload_of(const char *jws) {
    const char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
    _cleanup_free_ uint8_t *raw = NULL;
    size_t n;
    json_t *o;
    assert_int_equal(cert_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &n), 0);
    o = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o);
    return o;
}

/* The original header and signature around another payload. */
static char *replace_payload(const char *jws, json_t *payload) {
    const char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
    _cleanup_free_ char *text = json_dumps(payload, JSON_COMPACT), *p = NULL;
    char *out;
    assert_non_null(text);
    p = b64(text, strlen(text));
    assert_true(asprintf(&out, "%.*s.%s%s", (int)(d1 - jws), jws, p, d2) > 0);
    return out;
}

/* The original payload and signature under another header. */
static char *replace_header(const char *jws, const char *header) {
    _cleanup_free_ char *h = b64(header, strlen(header));
    char *out;
    assert_true(asprintf(&out, "%s%s", h, strchr(jws, '.')) > 0);
    return out;
}

static void assert_license_equal(const struct cert_license *a, const struct cert_license *b) {
    assert_string_equal(a->license, b->license);
    assert_string_equal(a->product, b->product);
    assert_int_equal(a->customer_id, b->customer_id);
    assert_string_equal(a->computer_id, b->computer_id);
    assert_memory_equal(&a->hwid.digest, &b->hwid.digest, sizeof(a->hwid.digest));
    for (int c = 0; c < HWID_COMPONENT_MAX; c++)
        assert_int_equal(a->hwid.present[c], b->hwid.present[c]);
    assert_int_equal(a->hwid_policy, b->hwid_policy);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->expiry, b->expiry);
    assert_int_equal(a->not_before, b->not_before);
    assert_int_equal(a->nfeatures, b->nfeatures);
    for (size_t i = 0; i < a->nfeatures; i++)
        assert_string_equal(a->features[i], b->features[i]);
    assert_int_equal(a->secs_allocated, b->secs_allocated);
    assert_int_equal(a->secs_granted, b->secs_granted);
    assert_int_equal(a->offline_allowed, b->offline_allowed);
    assert_int_equal(a->activated_offline, b->activated_offline);
    assert_int_equal(a->tick_secs, b->tick_secs);
    assert_int_equal(a->counter.index, b->counter.index);
    assert_int_equal(a->counter.name_len, b->counter.name_len);
    assert_memory_equal(a->counter.name, b->counter.name, a->counter.name_len);
    assert_int_equal(a->counter.value, b->counter.value);
    assert_int_equal(a->iat, b->iat);
    assert_string_equal(a->jti, b->jti);
}

/* --- license: round trips --------------------------------------------------------- */

static void round_trip_every_type(void **state) {
    for (int t = CERT_PERPETUAL; t <= CERT_CONSUMPTION; t++) {
        struct cert_license l = sample((enum cert_license_type)t), back;
        _cleanup_free_ char *jws = NULL;
        char msg[256];

        if (t == CERT_SUBSCRIPTION) { /* the optional fields too */
            l.not_before = NOW - 60;
            l.hwid_policy = HWID_POLICY_ALL;
        }
        jws = sign_ok(&l, vendor);
        assert_true(strlen(jws) <= CERT_LICENSE_MAX);
        assert_int_equal(verify(jws, NOW, &back, msg, sizeof(msg)), CERT_OK);
        assert_string_equal(msg, "valid");
        assert_license_equal(&l, &back);
        /* now == 0: the signature only */
        assert_int_equal(verify(jws, 0, &back, msg, sizeof(msg)), CERT_OK);
        /* a perpetual license never expires */
        if (t == CERT_PERPETUAL)
            assert_int_equal(verify_quiet(jws, 4000000000), CERT_OK);
    }
}

/* An online certificate with every field the server adds (time floor,
 * validity window, tpm_trust "certified"), all three hardware components
 * and the realistic sample's code, product and features still fits the
 * 1,536 bytes of one NV index, with room for a longer code: the server
 * signs such certificates for machines with DMI, which swtpm-based tests do
 * not have. */
static void online_certificate_fits_one_nv_index(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), back;
    char *jws, msg[256];
    (void)state;

    l.offline_allowed = false;
    l.activated_offline = false;
    l.secs_allocated = 3600000000ull; /* a million hours */
    l.secs_granted = 360000000ull;
    l.counter.value = 4294967295ull;
    l.time_floor.present = true;
    l.time_floor.counter.index = 0x01a0c003;
    l.time_floor.counter.value = 4294967295ull;
    l.time_floor.at = l.iat; /* as the server signs it */
    l.window.present = true;
    l.window.tpm_clock = 999999999999ull; /* 31 years of TPM clock */
    l.window.tpm_clock_until = l.window.tpm_clock + 7776000000ull;
    l.window.until = l.iat + 7776000;
    l.tpm_trust.kind = CERT_TPM_TRUST_CAS;
    l.tpm_trust.nkeys = 1;
    memset(l.tpm_trust.key_ids[0], 'a', 64);
    jws = sign_ok(&l, vendor);
    print_message("online certificate with every field and one trusted CA: %zu bytes of %d\n",
                  strlen(jws), CERT_LICENSE_MAX);
    assert_true(strlen(jws) <= CERT_LICENSE_MAX);
    assert_int_equal(verify(jws, NOW, &back, msg, sizeof(msg)), CERT_OK);
    assert_license_equal(&l, &back);
    free(jws);

    /* a window is signed as its TPM clock and length: one whose wall-clock
     * end is not iat + length cannot be encoded, so it is not signed */
    l.window.until += 1;
    jws = NULL;
    assert_int_equal(cert_license_sign(&l, vendor, &jws, msg, sizeof(msg)), -EINVAL);
    assert_null(jws);
}

static void round_trip_edge_values(void **state) {
    struct cert_license l = sample(CERT_TIME_LIMITED), back;
    _cleanup_free_ char *jws = NULL;
    char msg[256];

    l.nfeatures = 0;                                         /* no features */
    l.secs_allocated = l.secs_granted = 9007199254740992ull; /* 2^53, the JSON maximum */
    l.customer_id = 0;
    l.tick_secs = 86400;
    l.hwid.present[HWID_NIC] = false; /* no physical NIC */
    memset(l.hwid.digest[HWID_NIC], 0, HWID_DIGEST_LEN);
    assert_int_equal(hwid_computer_id(&l.hwid, l.computer_id), 0);
    l.counter.name_len = 2;
    jws = sign_ok(&l, vendor);
    assert_int_equal(verify(jws, NOW, &back, msg, sizeof(msg)), CERT_OK);
    assert_license_equal(&l, &back);
}

/* --- license: tampering --------------------------------------------------------- */

/* A different value of the same type (or another type: the signature fails
 * first either way). */
static json_t *changed(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING: {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
        size_t n = strlen(buf);
        if (n == 0)
            return json_string("x");
        buf[n - 1] = buf[n - 1] == '0' ? '1' : '0';
        return json_string(buf);
    }
    case JSON_INTEGER:
        return json_integer(json_integer_value(v) + 1);
    case JSON_TRUE:
        return json_false();
    case JSON_FALSE:
        return json_true();
    case JSON_ARRAY: {
        json_t *a = json_copy(v);
        json_array_append_new(a, json_string("extra"));
        return a;
    }
    default:
        return json_null();
    }
}

static void tamper_one(const char *jws, json_t *root, json_t *obj, const char *key,
                       const char *what) {
    json_t *orig = json_incref(json_object_get(obj, key));
    _cleanup_free_ char *bad = NULL;
    struct cert_license l;
    char msg[256];

    json_object_set_new(obj, key, changed(orig));
    bad = replace_payload(jws, root);
    if (verify(bad, NOW, &l, msg, sizeof(msg)) != CERT_BAD_SIGNATURE)
        fail_msg("tampered %s%s: %s", what, key, msg);
    assert_non_null(strstr(msg, "bad signature"));
    /* removed */
    free(bad);
    json_object_del(obj, key);
    bad = replace_payload(jws, root);
    assert_int_equal(verify_quiet(bad, NOW), CERT_BAD_SIGNATURE);
    json_object_set_new(obj, key, orig);
}

static void every_field_tampered_is_refused(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION);
    _cleanup_free_ char *jws = NULL, *same = NULL, *added = NULL;
    json_t *root, *v;
    const char *key;
    int n = 0;

    l.not_before = NOW - 60;
    l.hwid_policy = HWID_POLICY_ALL; /* the default is left out */
    jws = sign_ok(&l, vendor);
    root = payload_of(jws);
    /* the untouched payload re-encoded is the same text: still valid */
    same = replace_payload(jws, root);
    assert_string_equal(same, jws);
    assert_int_equal(verify_quiet(same, NOW), CERT_OK);

    /* (the keys first: tamper_one edits the object) */
    static const char *const objs[] = {NULL, "hwid", "counter"};
    for (size_t k = 0; k < ARRAY_SIZE(objs); k++) {
        json_t *obj = objs[k] ? json_object_get(root, objs[k]) : root;
        const char *keys[32];
        size_t nk = 0;
        char where[16];
        json_object_foreach(obj, key, v) {
            assert_true(nk < ARRAY_SIZE(keys));
            keys[nk++] = key;
        }
        snprintf(where, sizeof(where), "%s%s", objs[k] ? objs[k] : "", objs[k] ? "." : "");
        for (size_t i = 0; i < nk; i++) {
            _cleanup_free_ char *name = strdup(keys[i]);
            tamper_one(jws, root, obj, name, where);
            n++;
        }
    }
    assert_int_equal(n, 19 + 3 + 3); /* every field of docs/certificates.md, nbf included */
    /* one feature changed */
    json_array_set_new(json_object_get(root, "features"), 0, json_string("premium"));
    free(same);
    same = replace_payload(jws, root);
    assert_int_equal(verify_quiet(same, NOW), CERT_BAD_SIGNATURE);
    json_decref(root);
    /* a field added */
    root = payload_of(jws);
    json_object_set_new(root, "admin", json_true());
    added = replace_payload(jws, root);
    assert_int_equal(verify_quiet(added, NOW), CERT_BAD_SIGNATURE);
    json_decref(root);
}

static void header_tampered_is_malformed(void **state) {
    struct cert_license l = sample(CERT_PERPETUAL);
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    char kid[CERT_KID_LEN + 1], h[512], msg[256];
    static const char *const algs[] = {"none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"};
    struct cert_license out;

    assert_int_equal(cert_jws_kid(vendor, kid), 0);
    for (size_t i = 0; i < ARRAY_SIZE(algs); i++) {
        _cleanup_free_ char *bad = NULL;
        snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
                 algs[i], kid);
        bad = replace_header(jws, h);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "is not accepted (only EdDSA)"));
    }
    const char *const headers[] = {
        "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\"}", /* no kid */
        "{\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",    /* no alg */
        "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}",                 /* no typ */
        "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", /* other typ */
        "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\",\"crit\":[\"b64\"]}",
        "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\",\"jwk\":{}}",
        "{\"alg\":null,\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
        "{\"alg\":[\"EdDSA\"],\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
        "{\"alg\":\"EdDSA\",\"alg\":\"none\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
        "[\"EdDSA\"]",
        "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"", /* truncated */
    };
    for (size_t i = 0; i < ARRAY_SIZE(headers); i++) {
        _cleanup_free_ char *bad = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
        snprintf(h, sizeof(h), headers[i], kid);
#pragma GCC diagnostic pop
        bad = replace_header(jws, h);
        if (verify(bad, NOW, &out, msg, sizeof(msg)) != CERT_MALFORMED)
            fail_msg("header %s: %s", h, msg);
    }
}

/* "header.payload.signature" with an HMAC signature keyed by secret: the
 * algorithm-confusion attack on verifiers that let the header pick the
 * algorithm and use the vendor's public key as an HMAC secret. */
static char *hmac_jws(const char *header, const char *payload, const EVP_MD *md, const void *secret,
                      size_t secret_len) {
    _cleanup_free_ char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    _cleanup_free_ char *input = NULL, *s = NULL;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *jws;

    assert_true(asprintf(&input, "%s.%s", h, p) > 0);
    assert_non_null(
        HMAC(md, secret, (int)secret_len, (const uint8_t *)input, strlen(input), mac, &maclen));
    assert_int_equal(cert_b64url_encode(mac, maclen, &s), 0);
    assert_true(asprintf(&jws, "%s.%s", input, s) > 0);
    return jws;
}

static void algorithm_confusion_is_refused(void **state) {
    struct cert_license l = sample(CERT_PERPETUAL), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor), *text = NULL, *pem = NULL, *hdr = NULL;
    _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    uint8_t raw[32];
    size_t rawlen = sizeof(raw);
    char kid[CERT_KID_LEN + 1], h[256], msg[256];
    json_t *payload = payload_of(jws);
    char *mem;
    long memlen;
    int derlen;

    text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    assert_non_null(text);
    assert_int_equal(cert_jws_kid(vendor, kid), 0);
    /* the secrets an attacker would try: the public key as PEM, DER and raw */
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, vendor), 1);
    memlen = BIO_get_mem_data(bio, &mem);
    assert_true(memlen > 0);
    pem = strndup(mem, (size_t)memlen);
    derlen = i2d_PUBKEY(vendor, &der);
    assert_true(derlen > 0);
    assert_int_equal(EVP_PKEY_get_raw_public_key(vendor, raw, &rawlen), 1);
    const struct {
        const void *p;
        size_t n;
    } secrets[] = {{pem, strlen(pem)}, {der, (size_t)derlen}, {raw, rawlen}};

    for (size_t i = 0; i < ARRAY_SIZE(secrets); i++) {
        _cleanup_free_ char *hs256 = NULL, *hs256_min = NULL, *claimed = NULL, *hs512 = NULL;
        /* HS256 with the full header, and with the minimal one of the attack */
        snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
                 kid);
        hs256 = hmac_jws(h, text, EVP_sha256(), secrets[i].p, secrets[i].n);
        assert_int_equal(verify(hs256, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "algorithm 'HS256' is not accepted (only EdDSA)"));
        hs256_min = hmac_jws("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", text, EVP_sha256(),
                             secrets[i].p, secrets[i].n);
        assert_int_equal(verify(hs256_min, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "algorithm 'HS256' is not accepted"));
        /* an HMAC under the EdDSA header: 32 bytes, not a signature */
        snprintf(h, sizeof(h), "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
                 kid);
        claimed = hmac_jws(h, text, EVP_sha256(), secrets[i].p, secrets[i].n);
        assert_int_equal(verify(claimed, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "signature is not 64 bytes"));
        /* HMAC-SHA512 is 64 bytes, the size of a signature: it fails as one */
        hs512 = hmac_jws(h, text, EVP_sha512(), secrets[i].p, secrets[i].n);
        assert_int_equal(verify(hs512, NOW, &out, msg, sizeof(msg)), CERT_BAD_SIGNATURE);
    }
    OPENSSL_free(der);

    /* unsecured JWS (RFC 7515 appendix A.5): "alg":"none", empty signature */
    static const char *const none_headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"none\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
        "{\"alg\":\"None\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(none_headers); i++) {
        _cleanup_free_ char *h64 = NULL, *p64 = b64(text, strlen(text)), *bad = NULL;
        _cleanup_free_ char *with_sig = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
        snprintf(h, sizeof(h), none_headers[i], kid);
#pragma GCC diagnostic pop
        h64 = b64(h, strlen(h));
        assert_true(asprintf(&bad, "%s.%s.", h64, p64) > 0);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        if (!strstr(msg, "is not accepted (only EdDSA)"))
            fail_msg("%s: %s", h, msg);
        /* and with the vendor's real signature kept */
        assert_true(asprintf(&with_sig, "%s%s", h64, strchr(jws, '.')) > 0);
        assert_int_equal(verify(with_sig, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "is not accepted (only EdDSA)"));
    }
    /* the right header with the signature removed */
    hdr = strndup(jws, (size_t)(strrchr(jws, '.') + 1 - jws));
    assert_int_equal(verify(hdr, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
    assert_non_null(strstr(msg, "signature is not 64 bytes"));
}

static void another_key_is_refused(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    _cleanup_free_ char *jws = sign_ok(&l, other), *forged = NULL, *hdr = NULL;
    json_t *payload;
    char msg[256];

    assert_int_equal(verify(jws, NOW, &out, msg, sizeof(msg)), CERT_WRONG_KEY);
    assert_non_null(strstr(msg, "signed by another key"));
    /* the vendor's kid forged into the header, signed by the other key */
    payload = payload_of(jws);
    {
        _cleanup_free_ char *text = json_dumps(payload, JSON_COMPACT);
        hdr = std_header(vendor);
        forged = jws_by_hand(hdr, strlen(hdr), text, strlen(text), other);
    }
    json_decref(payload);
    assert_int_equal(verify(forged, NOW, &out, msg, sizeof(msg)), CERT_BAD_SIGNATURE);
    /* the vendor's own signature with another key's header */
    {
        _cleanup_free_ char *mine = sign_ok(&l, vendor), *h2 = std_header(other);
        _cleanup_free_ char *swapped = replace_header(mine, h2);
        assert_int_equal(verify_quiet(swapped, NOW), CERT_WRONG_KEY);
    }
    /* a vendor "key" that is not Ed25519 is never a match */
    assert_int_equal(cert_license_verify(jws, strlen(jws), ek_key, NOW, &out, msg, sizeof(msg)),
                     CERT_WRONG_KEY);
}

/* --- license: broken encodings ----------------------------------------------------- */

static void truncated_never_verifies(void **state) {
    struct cert_license l = sample(CERT_CONSUMPTION), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    size_t n = strlen(jws);
    char msg[256];

    for (size_t i = 0; i < n; i++) {
        char *cut = strndup(jws, i); /* exact allocation: ASan sees any over-read */
        enum cert_status s = cert_license_verify(cut, i, vendor, NOW, &out, msg, sizeof(msg));
        if (s == CERT_OK)
            fail_msg("a %zu-byte prefix verified", i);
        free(cut);
    }
    /* len shorter than the string: the same */
    for (size_t i = 0; i < n; i += 7)
        assert_int_not_equal(cert_license_verify(jws, i, vendor, NOW, &out, msg, sizeof(msg)),
                             CERT_OK);
}

static void padding_and_alphabet_are_malformed(void **state) {
    struct cert_license l = sample(CERT_TIME_LIMITED), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    char msg[256], *bad;
    size_t n = strlen(jws);
    const char *d1 = strchr(jws, '.');

    /* '=' after the signature, after the header */
    assert_true(asprintf(&bad, "%s=", jws) > 0);
    assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
    free(bad);
    assert_true(asprintf(&bad, "%s==", jws) > 0);
    assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    free(bad);
    assert_true(asprintf(&bad, "%.*s=%s", (int)(d1 - jws), jws, d1) > 0);
    assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    free(bad);
    /* standard base64 characters in place of - and _, and whitespace */
    static const char repl[] = {'+', '/', ' ', '\n', '%', '*'};
    for (size_t k = 0; k < sizeof(repl); k++) {
        bad = strdup(jws);
        bad[5] = repl[k];
        assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
        bad[5] = jws[5];
        bad[n - 3] = repl[k];
        assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
        free(bad);
    }
    /* a trailing newline is not part of the format */
    assert_true(asprintf(&bad, "%s\n", jws) > 0);
    assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    free(bad);
    /* four parts, two parts, empty parts */
    assert_true(asprintf(&bad, "%s.", jws) > 0);
    assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    free(bad);
    assert_int_equal(verify_quiet("..", NOW), CERT_MALFORMED);
    assert_int_equal(verify_quiet("", NOW), CERT_MALFORMED);
    assert_int_equal(verify_quiet("a.b.c", NOW), CERT_MALFORMED);
    /* a non-canonical last character of the signature (unused bits set) */
    /* (86 characters carry 516 bits for 512: a lenient decoder would take
     * four spellings of one signature) */
    {
        static const char alpha[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        bad = strdup(jws);
        bad[n - 1] = alpha[(strchr(alpha, bad[n - 1]) - alpha) ^ 1];
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "signature"));
        free(bad);
    }
}

static void oversized_and_nul_are_malformed(void **state) {
    struct cert_license l = sample(CERT_PERPETUAL), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    char big[CERT_LICENSE_MAX + 2], msg[256];
    size_t n = strlen(jws);

    /* 1,537 bytes: refused by size before anything is decoded */
    memset(big, 'A', sizeof(big));
    memcpy(big, jws, n);
    big[CERT_LICENSE_MAX + 1] = '\0';
    assert_int_equal(
        cert_license_verify(big, CERT_LICENSE_MAX + 1, vendor, NOW, &out, msg, sizeof(msg)),
        CERT_MALFORMED);
    assert_non_null(strstr(msg, "1537 bytes"));
    assert_non_null(strstr(msg, "1536"));
    /* a NUL byte inside (len counts past it) */
    {
        _cleanup_free_ char *copy = strdup(jws);
        copy[10] = '\0';
        assert_int_equal(cert_license_verify(copy, n, vendor, NOW, &out, msg, sizeof(msg)),
                         CERT_MALFORMED);
        assert_non_null(strstr(msg, "NUL"));
    }
}

static void signed_garbage_is_malformed(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    json_t *root = payload_of(jws);
    char msg[256];

    /* non-UTF-8 inside a string: a valid signature over invalid text */
    {
        _cleanup_free_ char *text = json_dumps(root, JSON_COMPACT), *bad = NULL;
        char *p = strstr(text, "Speech");
        assert_non_null(p);
        p[0] = (char)0xc3; /* a lead byte followed by ASCII */
        bad = sign_text(text, strlen(text));
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "not valid JSON"));
        p[0] = (char)0xff;
        free(bad);
        bad = sign_text(text, strlen(text));
        assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    }
    /* a duplicate key, the second one "upgrading" the license */
    {
        _cleanup_free_ char *text = json_dumps(root, JSON_COMPACT), *dup = NULL, *bad = NULL;
        text[strlen(text) - 1] = '\0';
        assert_true(asprintf(&dup, "%s,\"secs_granted\":3600000}", text) > 0);
        bad = sign_text(dup, strlen(dup));
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "duplicate"));
    }
    /* not an object; empty; trailing garbage; a NUL escape */
    static const char *const texts[] = {
        "[]", "", "null", "{}", "{\"v\":1}x", "{\"v\":1,\"license\":\"A\\u0000B\"}", "1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
        _cleanup_free_ char *bad = sign_text(texts[i], strlen(texts[i]));
        assert_int_equal(verify_quiet(bad, NOW), CERT_MALFORMED);
    }
    json_decref(root);
}

/* Each field given a value of the wrong type, signed by hand: refused, and
 * the message names the field. */
static void wrong_types_name_the_field(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    _cleanup_free_ char *jws = NULL;
    json_t *root, *v;
    const char *key;
    char msg[256];

    l.not_before = NOW - 60;
    jws = sign_ok(&l, vendor);
    root = payload_of(jws);
    json_object_foreach(root, key, v) {
        json_t *wrongs[] = {json_is_string(v) ? json_integer(7) : json_string("7"), json_null(),
                            json_is_array(v) ? json_object() : json_array(), json_real(1.5),
                            json_is_boolean(v) ? json_integer(1) : json_true()};
        json_t *orig = json_incref(v);
        for (size_t i = 0; i < ARRAY_SIZE(wrongs); i++) {
            _cleanup_free_ char *bad = NULL;
            enum cert_status s;
            json_object_set_new(root, key, wrongs[i]);
            bad = sign_json(root);
            s = verify(bad, NOW, &out, msg, sizeof(msg));
            /* "v" of the wrong type is malformed, not an unknown version */
            if (s != CERT_MALFORMED)
                fail_msg("field %s, wrong value %zu: status %d (%s)", key, i, s, msg);
            if (!strstr(msg, key))
                fail_msg("field %s: message does not name it: %s", key, msg);
        }
        json_object_set_new(root, key, orig);
    }
    /* nested fields */
    static const struct {
        const char *obj, *key;
        int type; /* 0 integer, 1 string */
    } nested[] = {
        {"hwid", "ek", 0},       {"hwid", "dmi", 0},     {"hwid", "nic", 0},
        {"counter", "index", 0}, {"counter", "name", 0}, {"counter", "base", 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(nested); i++) {
        json_t *o = json_object_get(root, nested[i].obj);
        json_t *orig = json_incref(json_object_get(o, nested[i].key));
        _cleanup_free_ char *bad = NULL;
        json_object_set_new(o, nested[i].key,
                            nested[i].type ? json_string("12") : json_integer(12));
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        if (!strstr(msg, nested[i].key))
            fail_msg("%s.%s: %s", nested[i].obj, nested[i].key, msg);
        json_object_set_new(o, nested[i].key, orig);
    }
    /* one feature of the wrong type */
    {
        _cleanup_free_ char *bad = NULL;
        json_array_append_new(json_object_get(root, "features"), json_integer(3));
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "features[3]"));
    }
    json_decref(root);
}

/* Values of the right type that break a rule, signed by hand. */
static void bad_values_are_malformed(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    char msg[256];
    static const struct {
        const char *key, *json, *needle;
    } cases[] = {
        {"unknown", "1", "unknown field 'unknown'"},
        {"license_type", "\"forever\"", "license_type"},
        {"hwid_policy", "\"some\"", "hwid_policy"},
        {"subscription_expiry", "\"2027-02-30T00:00:00Z\"", "subscription_expiry"},
        {"subscription_expiry", "\"1970-01-01T00:00:00Z\"", "subscription_expiry"},
        {"subscription_expiry", "\"2027-12-28T14:40:00+00:00\"", "subscription_expiry"},
        {"activation_type", "\"email\"", "activation_type"},
        {"secs_granted", "3600001", "secs_granted"},
        {"secs_allocated", "-1", "secs_allocated"},
        {"secs_allocated", "9007199254740993", "secs_allocated"},
        {"tick_secs", "0", "tick_secs"},
        {"tick_secs", "86401", "tick_secs"},
        {"computer_id", "\"not-a-uuid\"", "computer_id"},
        {"license", "\"\"", "license"},
        {"license", "\"has space\"", "license"},
        {"product", "\"tab\\there\"", "product"},
        {"customer_id", "-5", "customer_id"},
        {"iat", "0", "iat"},
        {"nbf", "0", "nbf"},
        {"jti", "\"a/b\"", "jti"},
        {"features", "[\"a\",\"a\"]", "listed twice"},
        {"features", "[\"a b\"]", "features[0]"},
        {"features",
         "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\","
         "\"14\",\"15\",\"16\",\"17\"]",
         "more than 16"},
        {"hwid", "{\"ek\":null,\"dmi\":null,\"nic\":null}", "no component"},
        {"hwid", "{\"ek\":null,\"dmi\":null}", "'nic' is missing"},
        {"hwid", "{\"ek\":null,\"dmi\":null,\"nic\":null,\"tpm\":null}", "unknown field 'tpm'"},
        {"counter", "{\"index\":\"0x01a0c001\",\"name\":\"000b\"}", "'base' is missing"},
        {"counter", "{\"index\":\"0x81000001\",\"name\":\"000b\",\"base\":1}", "index"},
        {"counter", "{\"index\":\"0x01a0c001\",\"name\":\"000B\",\"base\":1}", "name"},
        {"counter", "{\"index\":\"0x01a0c001\",\"name\":\"00\",\"base\":1}", "name"},
        {"counter", "{\"index\":\"0x01a0c001\",\"name\":\"000b\",\"value\":1}", "'value'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *root = payload_of(jws);
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        _cleanup_free_ char *bad = NULL;
        enum cert_status s;
        assert_non_null(v);
        json_object_set_new(root, cases[i].key, v);
        bad = sign_json(root);
        json_decref(root);
        s = verify(bad, NOW, &out, msg, sizeof(msg));
        if (s != CERT_MALFORMED || !strstr(msg, cases[i].needle))
            fail_msg("%s=%s: status %d, %s", cases[i].key, cases[i].json, s, msg);
    }
    /* a perpetual license with an expiry, a subscription without one, an
     * offline activation that does not allow offline mode */
    {
        json_t *root = payload_of(jws);
        _cleanup_free_ char *bad = NULL;
        json_object_set_new(root, "license_type", json_string("perpetual"));
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "perpetual"));
        json_decref(root);
    }
    {
        json_t *root = payload_of(jws);
        _cleanup_free_ char *bad = NULL;
        json_object_del(root, "subscription_expiry");
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "subscription_expiry"));
        json_decref(root);
    }
    {
        json_t *root = payload_of(jws);
        _cleanup_free_ char *bad = NULL;
        json_object_set_new(root, "activation_type", json_string("offline"));
        json_object_set_new(root, "offline_allowed", json_false());
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "offline_allowed"));
        json_decref(root);
    }
    /* every required field missing in turn */
    {
        json_t *root = payload_of(jws), *v;
        const char *key;
        json_object_foreach(root, key, v) {
            json_t *copy = json_deep_copy(root);
            _cleanup_free_ char *bad = NULL;
            enum cert_status s;
            json_object_del(copy, key);
            bad = sign_json(copy);
            json_decref(copy);
            s = verify(bad, NOW, &out, msg, sizeof(msg));
            if (!strcmp(key, "nbf")) /* the one optional field */
                assert_int_equal(s, CERT_OK);
            else if (!strcmp(key, "v"))
                assert_int_equal(s, CERT_MALFORMED);
            else if (s != CERT_MALFORMED || !strstr(msg, key))
                fail_msg("without %s: status %d, %s", key, s, msg);
        }
        json_decref(root);
    }
}

static void unknown_version_is_unsupported(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    json_t *root = payload_of(jws);
    char msg[256];

    for (int v = 0; v <= 3; v += 2) { /* 0 and 2 */
        _cleanup_free_ char *bad = NULL;
        json_object_set_new(root, "v", json_integer(v));
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_UNSUPPORTED_VERSION);
        assert_non_null(strstr(msg, "version"));
    }
    /* a version 2 with fields this reader does not know is still "unsupported
     * version", not "unknown field" */
    {
        _cleanup_free_ char *bad = NULL;
        json_object_set_new(root, "v", json_integer(2));
        json_object_set_new(root, "quota", json_integer(1));
        bad = sign_json(root);
        assert_int_equal(verify(bad, NOW, &out, msg, sizeof(msg)), CERT_UNSUPPORTED_VERSION);
    }
    json_decref(root);
}

/* --- license: validity period and machine -------------------------------------------- */

static void expired_and_not_yet_valid(void **state) {
    struct cert_license l = sample(CERT_TIME_LIMITED), out;
    _cleanup_free_ char *jws = NULL, *later = NULL;
    char msg[256];

    jws = sign_ok(&l, vendor);
    assert_int_equal(verify(jws, EXPIRY - 1, &out, msg, sizeof(msg)), CERT_OK);
    memset(&out, 0, sizeof(out));
    assert_int_equal(verify(jws, EXPIRY, &out, msg, sizeof(msg)), CERT_EXPIRED);
    assert_string_equal(msg, "expired on " EXPIRY_TEXT);
    assert_string_equal(out.license, l.license); /* the fields are there to show */
    assert_int_equal(verify(jws, EXPIRY + 86400 * 365, &out, msg, sizeof(msg)), CERT_EXPIRED);

    l.not_before = NOW + 3600;
    later = sign_ok(&l, vendor);
    assert_int_equal(verify(later, NOW, &out, msg, sizeof(msg)), CERT_NOT_YET_VALID);
    assert_non_null(strstr(msg, "not yet valid"));
    assert_non_null(strstr(msg, "2027-01-15T09:00:00Z"));
    assert_int_equal(out.not_before, NOW + 3600);
    assert_int_equal(verify(later, NOW + 3600, &out, msg, sizeof(msg)), CERT_OK);
    assert_string_equal(cert_status_name(CERT_EXPIRED), "expired");
}

static void match_names_the_component(void **state) {
    struct cert_license l = sample(CERT_PERPETUAL);
    struct hwid_digests now = l.hwid;
    struct hwid_match m;
    char msg[512];

    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_OK);
    /* another TPM */
    now.digest[HWID_EK][0] ^= 1;
    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_WRONG_MACHINE);
    assert_non_null(strstr(msg, "EK changed"));
    assert_non_null(strstr(msg, l.computer_id));
    assert_true(m.changed & (1u << HWID_EK));
    /* DMI changed alone: the default policy lets the NIC carry it */
    now = l.hwid;
    now.digest[HWID_DMI][5] ^= 1;
    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_OK);
    assert_true(m.changed & (1u << HWID_DMI));
    /* DMI and NIC changed */
    now.digest[HWID_NIC][5] ^= 1;
    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_WRONG_MACHINE);
    assert_non_null(strstr(msg, "dmi"));
    assert_non_null(strstr(msg, "nic"));
    /* policy all: the NIC alone is enough to refuse */
    l.hwid_policy = HWID_POLICY_ALL;
    now = l.hwid;
    now.digest[HWID_NIC][0] ^= 1;
    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_WRONG_MACHINE);
    assert_non_null(strstr(msg, "nic"));
    assert_non_null(strstr(msg, "policy all"));
    /* the NIC gone */
    now = l.hwid;
    now.present[HWID_NIC] = false;
    assert_int_equal(cert_license_match(&l, &now, &m, msg, sizeof(msg)), CERT_WRONG_MACHINE);
}

/* --- license: signing refusals --------------------------------------------------------- */

static void sign_refuses_big_and_inconsistent(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION), bad;
    char *jws = NULL, err[256];
    int fit = 0;

    /* 16 features of 32 characters: over 1,536 bytes */
    for (size_t i = 0; i < CERT_FEATURES_MAX; i++)
        snprintf(l.features[i], sizeof(l.features[i]), "feature-%024zu", i);
    l.nfeatures = CERT_FEATURES_MAX;
    assert_int_equal(cert_license_sign(&l, vendor, &jws, err, sizeof(err)), -EFBIG);
    assert_null(jws);
    assert_non_null(strstr(err, "1536"));
    /* how many such features fit (printed for docs/certificates.md) */
    for (l.nfeatures = 0; l.nfeatures <= CERT_FEATURES_MAX; l.nfeatures++) {
        if (cert_license_sign(&l, vendor, &jws, err, sizeof(err)) < 0)
            break;
        fit = (int)l.nfeatures;
        free(jws);
        jws = NULL;
    }
    print_message("with 32-character features, %d fit under %d bytes\n", fit, CERT_LICENSE_MAX);
    assert_true(fit >= 4);
    /* and with 10-character names */
    for (size_t i = 0; i < CERT_FEATURES_MAX; i++)
        snprintf(l.features[i], sizeof(l.features[i]), "feature-%02zu", i);
    for (l.nfeatures = 0; l.nfeatures <= CERT_FEATURES_MAX; l.nfeatures++) {
        if (cert_license_sign(&l, vendor, &jws, err, sizeof(err)) < 0)
            break;
        fit = (int)l.nfeatures;
        free(jws);
        jws = NULL;
    }
    print_message("with 10-character features, %d fit under %d bytes\n", fit, CERT_LICENSE_MAX);

    static const char *const why[] = {
        "granted>allocated",
        "no license code",
        "offline without offline_allowed",
        "expiry 0",
        "bad type",
        "tick 0",
        "counter name too long",
        "no hwid",
        "bad utf-8",
        "17 features",
        "duplicate feature",
    };
    for (size_t i = 0; i < ARRAY_SIZE(why); i++) {
        bad = sample(CERT_SUBSCRIPTION);
        switch (i) {
        case 0:
            bad.secs_granted = bad.secs_allocated + 1;
            break;
        case 1:
            bad.license[0] = '\0';
            break;
        case 2:
            bad.activated_offline = true;
            bad.offline_allowed = false;
            break;
        case 3:
            bad.expiry = 0;
            break;
        case 4:
            bad.type = (enum cert_license_type)9;
            break;
        case 5:
            bad.tick_secs = 0;
            break;
        case 6:
            bad.counter.name_len = CERT_COUNTER_NAME_MAX + 1;
            break;
        case 7:
            memset(&bad.hwid.present, 0, sizeof(bad.hwid.present));
            break;
        case 8:
            bad.product[3] = (char)0xff;
            break;
        case 9:
            bad.nfeatures = CERT_FEATURES_MAX + 1;
            break;
        case 10:
            strcpy(bad.features[1], bad.features[0]);
            break;
        }
        jws = NULL;
        err[0] = '\0';
        if (cert_license_sign(&bad, vendor, &jws, err, sizeof(err)) != -EINVAL)
            fail_msg("%s: not -EINVAL", why[i]);
        assert_null(jws);
        if (!err[0])
            fail_msg("%s: no message", why[i]);
    }
    /* not an Ed25519 key */
    l = sample(CERT_PERPETUAL);
    assert_int_equal(cert_license_sign(&l, ek_key, &jws, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "Ed25519"));
}

/* The size arithmetic of docs/certificates.md, measured. */
static void realistic_license_size(void **state) {
    struct cert_license l = sample(CERT_SUBSCRIPTION);
    _cleanup_free_ char *jws = sign_ok(&l, vendor);
    const char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
    size_t h = (size_t)(d1 - jws), p = (size_t)(d2 - d1 - 1), s = strlen(d2 + 1);
    json_t *root = payload_of(jws);
    _cleanup_free_ char *ptext = json_dumps(root, JSON_COMPACT);

    print_message("realistic license (19-char code, 20-char product, 3 features, 3 digests):\n");
    print_message("  header    %3zu bytes base64url (%zu JSON)\n", h, h * 3 / 4);
    print_message("  payload   %3zu bytes base64url (%zu JSON)\n", p, strlen(ptext));
    print_message("  signature %3zu bytes base64url (64 raw)\n", s);
    print_message("  total     %4zu bytes with the two dots; limit %d, margin %zu\n", strlen(jws),
                  CERT_LICENSE_MAX, (size_t)CERT_LICENSE_MAX - strlen(jws));
    assert_int_equal(s, 86);
    assert_true(strlen(jws) <= CERT_LICENSE_MAX);
    json_decref(root);
}

/* --- activation certificate ------------------------------------------------------------ */

static struct cert_activation sample_activation(bool full) {
    struct cert_activation a = {.is_vm = -1};
    strcpy(a.license, "ABCD-EFGH-IJKL-MNOP");
    a.hwid = sample_hwid();
    assert_int_equal(hwid_computer_id(&a.hwid, a.computer_id), 0);
    a.ek_public = ek_der;
    a.ek_public_len = ek_der_len;
    a.counter = sample_counter();
    strcpy(a.nonce, "00112233445566778899aabbccddeeff");
    a.date = NOW;
    if (full) {
        static uint8_t fake_cert[300];
        memset(fake_cert, 0x30, sizeof(fake_cert));
        a.ek_certificate = fake_cert; /* the library does not parse it; the vendor does */
        a.ek_certificate_len = sizeof(fake_cert);
        strcpy(a.username, "Ada Lovelace");
        strcpy(a.email_address, "ada@example.com");
        strcpy(a.company_name, "Example Ltd — Zürich"); /* UTF-8 */
        strcpy(a.hostname, "appliance-01");
        a.is_vm = 0;
        strcpy(a.vm_info, "KVM");
        strcpy(a.app_ver, "tpmlicd 0.1.0");
    }
    return a;
}

static char *encode_ok(const struct cert_activation *a) {
    char *text = NULL, err[256] = "";
    if (cert_activation_encode(a, &text, err, sizeof(err)) < 0)
        fail_msg("cert_activation_encode: %s", err);
    return text;
}

static void activation_round_trip(void **state) {
    for (int full = 0; full <= 1; full++) {
        struct cert_activation a = sample_activation(full), back = {0};
        _cleanup_free_ char *text = encode_ok(&a), *nl = NULL;
        char msg[256];

        assert_int_equal(cert_activation_decode(text, strlen(text), &back, msg, sizeof(msg)),
                         CERT_OK);
        assert_string_equal(back.license, a.license);
        assert_string_equal(back.computer_id, a.computer_id);
        assert_memory_equal(&back.hwid, &a.hwid, sizeof(a.hwid));
        assert_int_equal(back.ek_public_len, a.ek_public_len);
        assert_memory_equal(back.ek_public, a.ek_public, a.ek_public_len);
        assert_int_equal(back.ek_certificate_len, a.ek_certificate_len);
        if (full)
            assert_memory_equal(back.ek_certificate, a.ek_certificate, a.ek_certificate_len);
        else
            assert_null(back.ek_certificate);
        assert_int_equal(back.counter.index, a.counter.index);
        assert_memory_equal(back.counter.name, a.counter.name, a.counter.name_len);
        assert_int_equal(back.counter.value, 4242);
        assert_string_equal(back.nonce, a.nonce);
        assert_int_equal(back.date, NOW);
        assert_string_equal(back.username, a.username);
        assert_string_equal(back.email_address, a.email_address);
        assert_string_equal(back.company_name, a.company_name);
        assert_string_equal(back.hostname, a.hostname);
        assert_string_equal(back.vm_info, a.vm_info);
        assert_string_equal(back.app_ver, a.app_ver);
        assert_int_equal(back.is_vm, a.is_vm);
        cert_activation_clear(&back);
        /* a line end after it (a mail client) is forgiven */
        assert_true(asprintf(&nl, "%s\r\n", text) > 0);
        assert_int_equal(cert_activation_decode(nl, strlen(nl), &back, msg, sizeof(msg)), CERT_OK);
        cert_activation_clear(&back);
        print_message("activation certificate %s: %zu characters\n",
                      full ? "with EK certificate and details" : "minimal", strlen(text));
    }
    cert_activation_clear(NULL);
}

/* Decodes base64url JSON text; the JSON edited by fn; re-encodes. */
static char *edited_activation(const char *json) {
    return b64(json, strlen(json));
}

static json_t *activation_json(void) {
    struct cert_activation a = sample_activation(false);
    _cleanup_free_ char *text = encode_ok(&a);
    _cleanup_free_ uint8_t *raw = NULL;
    size_t n;
    assert_int_equal(cert_b64url_decode(text, strlen(text), &raw, &n), 0);
    return json_loadb((const char *)raw, n, 0, NULL);
}

static enum cert_status decode_json(json_t *o, char *msg, size_t msglen) {
    _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT), *enc = NULL;
    struct cert_activation back = {0};
    enum cert_status s;
    enc = edited_activation(text);
    s = cert_activation_decode(enc, strlen(enc), &back, msg, msglen);
    cert_activation_clear(&back);
    return s;
}

static void activation_refusals(void **state) {
    struct cert_activation a = sample_activation(true), back = {0};
    _cleanup_free_ char *text = encode_ok(&a);
    char msg[256], *bad;
    json_t *o;

    /* padding, standard alphabet, whitespace inside */
    assert_true(asprintf(&bad, "%s=", text) > 0);
    assert_int_equal(cert_activation_decode(bad, strlen(bad), &back, msg, sizeof(msg)),
                     CERT_MALFORMED);
    assert_non_null(strstr(msg, "base64url"));
    free(bad);
    bad = strdup(text);
    bad[10] = '+';
    assert_int_equal(cert_activation_decode(bad, strlen(bad), &back, msg, sizeof(msg)),
                     CERT_MALFORMED);
    bad[10] = ' ';
    assert_int_equal(cert_activation_decode(bad, strlen(bad), &back, msg, sizeof(msg)),
                     CERT_MALFORMED);
    free(bad);
    /* oversized: refused by length */
    bad = malloc(CERT_ACTIVATION_MAX + 2);
    memset(bad, 'A', CERT_ACTIVATION_MAX + 1);
    bad[CERT_ACTIVATION_MAX + 1] = '\0';
    assert_int_equal(cert_activation_decode(bad, CERT_ACTIVATION_MAX + 1, &back, msg, sizeof(msg)),
                     CERT_MALFORMED);
    assert_non_null(strstr(msg, "at most 8192"));
    free(bad);
    /* empty, truncated */
    assert_int_equal(cert_activation_decode("", 0, &back, msg, sizeof(msg)), CERT_MALFORMED);
    for (size_t i = 0; i < strlen(text); i += 13)
        assert_int_not_equal(cert_activation_decode(text, i, &back, msg, sizeof(msg)), CERT_OK);

    /* duplicate keys */
    {
        _cleanup_free_ char *json = NULL, *dup = NULL, *enc = NULL;
        o = activation_json();
        json = json_dumps(o, JSON_COMPACT);
        json[strlen(json) - 1] = '\0';
        assert_true(asprintf(&dup, "%s,\"license\":\"OTHER\"}", json) > 0);
        enc = edited_activation(dup);
        assert_int_equal(cert_activation_decode(enc, strlen(enc), &back, msg, sizeof(msg)),
                         CERT_MALFORMED);
        assert_non_null(strstr(msg, "duplicate"));
        json_decref(o);
    }
    /* unknown field; v=2; wrong types */
    o = activation_json();
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_OK);
    json_object_set_new(o, "admin", json_true());
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_MALFORMED);
    assert_non_null(strstr(msg, "unknown field 'admin'"));
    json_object_del(o, "admin");
    json_object_set_new(o, "v", json_integer(2));
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_UNSUPPORTED_VERSION);
    json_object_set_new(o, "v", json_string("1"));
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_MALFORMED);
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "is_vm", json_string("yes"));
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_MALFORMED);
    assert_non_null(strstr(msg, "is_vm"));
    json_object_del(o, "is_vm");
    /* a bad date */
    static const char *const dates[] = {"2026-02-30T00:00:00Z", "2026-01-01T00:00:00z",
                                        "2026-01-01 00:00:00Z", "2026-01-01T00:00:00+01:00",
                                        "yesterday"};
    for (size_t i = 0; i < ARRAY_SIZE(dates); i++) {
        json_t *d = json_deep_copy(o);
        json_object_set_new(d, "date", json_string(dates[i]));
        assert_int_equal(decode_json(d, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "date"));
        json_decref(d);
    }
    /* the EK public key of another EK than the digest's */
    {
        EVP_PKEY *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(k2, &der);
        _cleanup_free_ char *enc = NULL;
        json_t *d = json_deep_copy(o);
        assert_true(len > 0);
        assert_int_equal(cert_b64url_encode(der, (size_t)len, &enc), 0);
        json_object_set_new(d, "ek_public", json_string(enc));
        assert_int_equal(decode_json(d, msg, sizeof(msg)), CERT_MALFORMED);
        assert_non_null(strstr(msg, "'ek_public' does not match the EK digest"));
        /* and the matching digest with it is accepted (the vendor then finds
         * the computer ID inconsistent) */
        json_decref(d);
        OPENSSL_free(der);
        EVP_PKEY_free(k2);
    }
    /* an EK public key that is not RSA */
    {
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(vendor, &der);
        _cleanup_free_ char *enc = NULL;
        json_t *d = json_deep_copy(o);
        assert_int_equal(cert_b64url_encode(der, (size_t)len, &enc), 0);
        json_object_set_new(d, "ek_public", json_string(enc));
        assert_int_equal(decode_json(d, msg, sizeof(msg)), CERT_MALFORMED);
        json_decref(d);
        OPENSSL_free(der);
    }
    /* each required field missing */
    static const char *const required[] = {"license", "computer_id", "hwid", "ek_public",
                                           "counter", "nonce",       "date"};
    for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
        json_t *d = json_deep_copy(o);
        json_object_del(d, required[i]);
        assert_int_equal(decode_json(d, msg, sizeof(msg)), CERT_MALFORMED);
        if (!strstr(msg, required[i]))
            fail_msg("without %s: %s", required[i], msg);
        json_decref(d);
    }
    json_decref(o);
    /* the JSON itself broken or not an object */
    static const char *const broken[] = {"[]", "{", "{\"v\":1}}", "null", "\xff\xfe"};
    for (size_t i = 0; i < ARRAY_SIZE(broken); i++) {
        _cleanup_free_ char *enc = edited_activation(broken[i]);
        assert_int_equal(cert_activation_decode(enc, strlen(enc), &back, msg, sizeof(msg)),
                         CERT_MALFORMED);
    }
}

/* Each field of a full activation certificate given a value of the wrong
 * type, and text that is not UTF-8: refused, the message names the field. */
static void activation_wrong_types_name_the_field(void **state) {
    struct cert_activation a = sample_activation(true), back = {0};
    _cleanup_free_ char *text = encode_ok(&a), *json = NULL;
    _cleanup_free_ uint8_t *raw = NULL;
    json_t *o, *v;
    const char *key;
    char msg[256];
    size_t n;
    int fields = 0;

    assert_int_equal(cert_b64url_decode(text, strlen(text), &raw, &n), 0);
    o = json_loadb((const char *)raw, n, 0, NULL);
    assert_non_null(o);
    json_object_foreach(o, key, v) {
        json_t *wrongs[] = {json_is_string(v) ? json_integer(7) : json_string("7"), json_null(),
                            json_is_array(v) ? json_object() : json_array(), json_real(1.5),
                            json_is_boolean(v) ? json_integer(1) : json_true()};
        json_t *orig = json_incref(v);
        for (size_t i = 0; i < ARRAY_SIZE(wrongs); i++) {
            enum cert_status s;
            json_object_set_new(o, key, wrongs[i]);
            s = decode_json(o, msg, sizeof(msg));
            if (s != CERT_MALFORMED)
                fail_msg("field %s, wrong value %zu: status %d (%s)", key, i, s, msg);
            if (!strstr(msg, key))
                fail_msg("field %s: message does not name it: %s", key, msg);
        }
        json_object_set_new(o, key, orig);
        fields++;
    }
    assert_int_equal(fields, 16); /* every field of docs/certificates.md */
    /* nested fields */
    static const struct {
        const char *obj, *key;
        int type; /* 0 integer, 1 string */
    } nested[] = {
        {"hwid", "ek", 0},       {"hwid", "dmi", 0},     {"hwid", "nic", 0},
        {"counter", "index", 0}, {"counter", "name", 0}, {"counter", "value", 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(nested); i++) {
        json_t *obj = json_object_get(o, nested[i].obj);
        json_t *orig = json_incref(json_object_get(obj, nested[i].key));
        json_object_set_new(obj, nested[i].key,
                            nested[i].type ? json_string("12") : json_integer(12));
        assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_MALFORMED);
        if (!strstr(msg, nested[i].key))
            fail_msg("%s.%s: %s", nested[i].obj, nested[i].key, msg);
        json_object_set_new(obj, nested[i].key, orig);
    }
    assert_int_equal(decode_json(o, msg, sizeof(msg)), CERT_OK);
    /* not UTF-8 inside a string: a lone lead byte, an invalid byte, an
     * overlong '/', a UTF-16 surrogate written as UTF-8 */
    json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    static const char *const bad_utf8[] = {"\xc3"
                                           "d",
                                           "\xff", "\xc0\xaf", "\xed\xa0\x80"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_utf8); i++) {
        _cleanup_free_ char *copy = strdup(json), *enc = NULL;
        char *p = strstr(copy, "Ada Lovelace");
        assert_non_null(p);
        memcpy(p, bad_utf8[i], strlen(bad_utf8[i]));
        enc = edited_activation(copy);
        assert_int_equal(cert_activation_decode(enc, strlen(enc), &back, msg, sizeof(msg)),
                         CERT_MALFORMED);
        if (!strstr(msg, "not valid JSON"))
            fail_msg("bad UTF-8 %zu: %s", i, msg);
    }
    /* control characters (valid JSON escapes) in free text */
    {
        _cleanup_free_ char *copy = strdup(json), *enc = NULL;
        char *p = strstr(copy, "Ada Lovelace");
        memcpy(p, "\\u001b[", 7);
        enc = edited_activation(copy);
        assert_int_equal(cert_activation_decode(enc, strlen(enc), &back, msg, sizeof(msg)),
                         CERT_MALFORMED);
        assert_non_null(strstr(msg, "username"));
    }
}

/* --- time and base64url ---------------------------------------------------------------- */

static void time_parse_is_strict(void **state) {
    time_t t;
    char buf[21];
    static const char *const bad[] = {
        "2026-02-30T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-12-31T23:59:60Z",
        "2026-01-01T00:00:00z",
        "2026-01-01t00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00",
        "2026-1-01T00:00:00Z",
        " 026-01-01T00:00:00Z",
        "+026-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2026-01-01T00:00:00ZZ",
        "",
        "2026-01-01",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (rfc3339_parse(bad[i], &t) == 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(rfc3339_parse(NULL, &t), -EINVAL);
    assert_int_equal(rfc3339_parse("2028-02-29T00:00:00Z", &t), 0); /* leap year */
    assert_int_equal(rfc3339_parse("2027-01-15T08:00:00Z", &t), 0);
    assert_int_equal(t, NOW);
    rfc3339_format(t, buf);
    assert_string_equal(buf, "2027-01-15T08:00:00Z");
    assert_int_equal(rfc3339_parse("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
}

static void b64url_is_strict(void **state) {
    uint8_t *out = NULL;
    size_t n;
    char *enc = NULL;

    /* RFC 4648 test vectors, without padding */
    static const struct {
        const char *raw, *enc;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        assert_int_equal(cert_b64url_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), &enc), 0);
        assert_string_equal(enc, v[i].enc);
        free(enc);
        assert_int_equal(cert_b64url_decode(v[i].enc, strlen(v[i].enc), &out, &n), 0);
        assert_int_equal(n, strlen(v[i].raw));
        assert_memory_equal(out, v[i].raw, n);
        free(out);
    }
    /* the URL alphabet: 0xfb 0xff -> "-_8" */
    assert_int_equal(cert_b64url_encode((const uint8_t *)"\xfb\xff", 2, &enc), 0);
    assert_string_equal(enc, "-_8");
    free(enc);
    static const char *const bad[] = {
        "Zg==", "Zm8=", "Zh", "Zm9", "Z", "Zm9vY", "+/8", "Zm 9v", "Zm9v\n", "Zm9v=",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        out = NULL;
        if (cert_b64url_decode(bad[i], strlen(bad[i]), &out, &n) != -EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_null(out);
    }
}

/* kid = lower-case hex SHA-256 of the DER SubjectPublicKeyInfo, for the
 * private key object and for the public key read back alike. */
static void key_id_is_sha256_of_spki(void **state) {
    EVP_PKEY *keys[] = {vendor, other, ek_key};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        unsigned char *der = NULL;
        const unsigned char *p;
        int len = i2d_PUBKEY(keys[i], &der);
        uint8_t md[32];
        char want[65], got[65];
        EVP_PKEY *pub;

        assert_true(len > 0);
        assert_int_equal(hwid_sha256(der, (size_t)len, md), 0);
        for (int j = 0; j < 32; j++)
            snprintf(want + 2 * j, 3, "%02x", md[j]);
        assert_int_equal(cert_key_id(keys[i], got), 0);
        assert_string_equal(got, want);
        p = der;
        pub = d2i_PUBKEY(NULL, &p, len);
        assert_non_null(pub);
        assert_int_equal(cert_key_id(pub, got), 0);
        assert_string_equal(got, want);
        EVP_PKEY_free(pub);
        OPENSSL_free(der);
    }
    assert_int_equal(cert_key_id(NULL, (char[65]){0}), -EINVAL);
}

/* Server answers share the envelope but not the type: neither can stand in
 * for the other, and a changed byte or another key is refused. */
static void answers_are_their_own_kind(void **state) {
    _cleanup_(json_decrefp) json_t *p = json_pack("{s:i, s:s}", "v", 1, "nonce", "abc");
    _cleanup_(json_decrefp) json_t *got = NULL;
    _cleanup_free_ char *jws = NULL, *lic = NULL, *other_jws = NULL;
    struct cert_license l = sample(CERT_SUBSCRIPTION), out;
    char msg[256];

    assert_int_equal(cert_answer_sign(p, vendor, &jws), 0);
    assert_int_equal(cert_answer_verify(jws, strlen(jws), vendor, &got, msg, sizeof(msg)), CERT_OK);
    assert_true(json_equal(got, p));

    assert_int_equal(cert_answer_sign(p, other, &other_jws), 0);
    assert_int_equal(
        cert_answer_verify(other_jws, strlen(other_jws), vendor, &got, msg, sizeof(msg)),
        CERT_WRONG_KEY);
    jws[strlen(jws) / 2] ^= 1;
    assert_int_not_equal(cert_answer_verify(jws, strlen(jws), vendor, &got, msg, sizeof(msg)),
                         CERT_OK);

    lic = sign_ok(&l, vendor);
    assert_int_equal(cert_answer_verify(lic, strlen(lic), vendor, &got, msg, sizeof(msg)),
                     CERT_MALFORMED);
    assert_non_null(strstr(msg, "is not a tpmlic license server answer"));
    free(jws);
    jws = NULL;
    assert_int_equal(cert_answer_sign(p, vendor, &jws), 0);
    assert_int_equal(cert_license_verify(jws, strlen(jws), vendor, 0, &out, msg, sizeof(msg)),
                     CERT_MALFORMED);
    assert_non_null(strstr(msg, "is not a tpmlic license certificate"));
    assert_int_equal(cert_answer_sign(p, ek_key, &other_jws), -EINVAL);
}

static void names(void **state) {
    enum cert_license_type t;
    for (int s = CERT_OK; s <= CERT_WRONG_MACHINE; s++)
        assert_string_not_equal(cert_status_name((enum cert_status)s), "unknown");
    assert_string_equal(cert_status_name((enum cert_status)99), "unknown");
    assert_int_equal(cert_license_type_from_name("consumption", &t), 0);
    assert_int_equal(t, CERT_CONSUMPTION);
    assert_int_equal(cert_license_type_from_name("Perpetual", &t), -EINVAL);
    assert_int_equal(cert_license_type_from_name(NULL, &t), -EINVAL);
    assert_string_equal(cert_license_type_name((enum cert_license_type)0), "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(answers_are_their_own_kind),
        cmocka_unit_test(round_trip_edge_values),
        cmocka_unit_test(every_field_tampered_is_refused),
        cmocka_unit_test(header_tampered_is_malformed),
        cmocka_unit_test(algorithm_confusion_is_refused),
        cmocka_unit_test(another_key_is_refused),
        cmocka_unit_test(truncated_never_verifies),
        cmocka_unit_test(padding_and_alphabet_are_malformed),
        cmocka_unit_test(oversized_and_nul_are_malformed),
        cmocka_unit_test(signed_garbage_is_malformed),
        cmocka_unit_test(wrong_types_name_the_field),
        cmocka_unit_test(bad_values_are_malformed),
        cmocka_unit_test(unknown_version_is_unsupported),
        cmocka_unit_test(expired_and_not_yet_valid),
        cmocka_unit_test(match_names_the_component),
        cmocka_unit_test(sign_refuses_big_and_inconsistent),
        cmocka_unit_test(realistic_license_size),
        cmocka_unit_test(activation_round_trip),
        cmocka_unit_test(activation_refusals),
        cmocka_unit_test(activation_wrong_types_name_the_field),
        cmocka_unit_test(time_parse_is_strict),
        cmocka_unit_test(b64url_is_strict),
        cmocka_unit_test(key_id_is_sha256_of_spki),
        cmocka_unit_test(names),
        cmocka_unit_test(online_certificate_fits_one_nv_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
