/* Compact JWS (RFC 7515) with alg EdDSA (RFC 8037, Ed25519), the envelope
 * shared by the license certificate and the license server's signed answers
 * (docs/certificates.md, docs/online.md). The header is exactly
 * {"alg":"EdDSA","typ":TYP,"kid":KEY-ID}; typ keeps the kinds of objects
 * the vendor key signs apart, so one can never be passed off as another. */
#include "cert/internal.h"

#include <stdio.h>
#include <string.h>

#include "common/macro.h"

DEFINE_PTR_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)

static int b64_json(json_t *o, char **ret) {
    _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    return cert_b64url_encode((const uint8_t *)text, strlen(text), ret);
}

int cert_jws_sign(const char *typ, json_t *payload, EVP_PKEY *key, char **ret_jws) {
    _cleanup_(json_decrefp) json_t *header = NULL;
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
    _cleanup_free_ char *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    char kid[CERT_KID_LEN + 1], *jws;
    int r;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519)
        return -EINVAL;
    r = cert_jws_kid(key, kid);
    if (r < 0)
        return r;
    header = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", typ, "kid", kid);
    if (!header || b64_json(header, &h64) < 0 || b64_json(payload, &p64) < 0 ||
        asprintf(&input, "%s.%s", h64, p64) < 0)
        return -ENOMEM;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, key) <= 0 ||
        EVP_DigestSign(md, sig, &siglen, (const uint8_t *)input, strlen(input)) <= 0 ||
        siglen != sizeof(sig))
        return -EINVAL;
    r = cert_b64url_encode(sig, siglen, &s64);
    if (r < 0)
        return r;
    if (asprintf(&jws, "%s.%s", input, s64) < 0)
        return -ENOMEM;
    *ret_jws = jws;
    return 0;
}

/* Decodes one base64url part and parses it as a JSON object. */
static enum cert_status part_json(const char *p, size_t n, const char *what, json_t **ret,
                                  char *msg, size_t msglen) {
    _cleanup_free_ uint8_t *raw = NULL;
    json_error_t jerr;
    size_t len;

    if (cert_b64url_decode(p, n, &raw, &len) < 0) {
        snprintf(msg, msglen, "malformed: the %s is not base64url without padding", what);
        return CERT_MALFORMED;
    }
    *ret = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*ret) {
        snprintf(msg, msglen, "malformed: the %s is not valid JSON: %s", what, jerr.text);
        return CERT_MALFORMED;
    }
    if (!json_is_object(*ret)) {
        snprintf(msg, msglen, "malformed: the %s is not a JSON object", what);
        return CERT_MALFORMED;
    }
    return CERT_OK;
}

enum cert_status cert_jws_verify(const char *jws, size_t len, const struct cert_jws_kind *kind,
                                 EVP_PKEY *vendor_pub, json_t **ret_payload, char *msg,
                                 size_t msglen) {
    static const char *const header_keys[] = {"alg", "typ", "kid", NULL};
    _cleanup_(json_decrefp) json_t *header = NULL;
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
    _cleanup_free_ uint8_t *sig = NULL;
    char e[200], alg[16], typ[32], kid[80], vendor_kid[CERT_KID_LEN + 1];
    struct cj c = {.msg = e, .msglen = sizeof(e)};
    const char *dot1, *dot2;
    size_t siglen;
    enum cert_status s;

    if (len > kind->maxlen) {
        snprintf(msg, msglen, "malformed: %zu bytes, a %s has at most %zu", len, kind->name,
                 kind->maxlen);
        return CERT_MALFORMED;
    }
    if (memchr(jws, '\0', len)) {
        snprintf(msg, msglen, "malformed: contains a NUL byte");
        return CERT_MALFORMED;
    }
    dot1 = memchr(jws, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
    /* An empty signature is left to the header checks, so that an unsecured
     * JWS ("alg":"none", RFC 7515 appendix A.5) is refused for its algorithm. */
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws)) || dot1 == jws ||
        dot2 == dot1 + 1) {
        snprintf(msg, msglen, "malformed: not a compact JWS (three base64url parts joined by '.')");
        return CERT_MALFORMED;
    }
    s = part_json(jws, (size_t)(dot1 - jws), "header", &header, msg, msglen);
    if (s != CERT_OK)
        return s;
    /* alg first: whatever else a header says, only EdDSA is ever verified */
    if (!cj_only_keys(&c, header, "header: ", header_keys) ||
        !cj_string(&c, header, "alg", CJ_REQUIRED, CJ_IDENTIFIER, 15, alg, sizeof(alg))) {
        snprintf(msg, msglen, "malformed: %s", e);
        return CERT_MALFORMED;
    }
    if (strcmp(alg, "EdDSA") != 0) {
        snprintf(msg, msglen, "malformed: algorithm '%s' is not accepted (only EdDSA)", alg);
        return CERT_MALFORMED;
    }
    if (!cj_string(&c, header, "typ", CJ_REQUIRED, CJ_TEXT, 31, typ, sizeof(typ)) ||
        !cj_string(&c, header, "kid", CJ_REQUIRED, CJ_IDENTIFIER, CERT_KID_LEN, kid, sizeof(kid))) {
        snprintf(msg, msglen, "malformed: %s", e);
        return CERT_MALFORMED;
    }
    if (strcmp(typ, kind->typ) != 0) {
        snprintf(msg, msglen, "malformed: type '%s' is not a tpmlic %s", typ, kind->name);
        return CERT_MALFORMED;
    }
    if (cert_jws_kid(vendor_pub, vendor_kid) < 0) {
        snprintf(msg, msglen, "the vendor public key is unusable");
        return CERT_WRONG_KEY;
    }
    if (strcmp(kid, vendor_kid) != 0) {
        snprintf(msg, msglen, "signed by another key (key id %s..., the vendor key is %s...)", kid,
                 vendor_kid);
        return CERT_WRONG_KEY;
    }
    if (cert_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - jws), &sig, &siglen) < 0 ||
        siglen != 64) {
        snprintf(msg, msglen, "malformed: the signature is not 64 bytes of base64url");
        return CERT_MALFORMED;
    }
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, NULL, NULL, vendor_pub) <= 0 ||
        EVP_DigestVerify(md, sig, siglen, (const uint8_t *)jws, (size_t)(dot2 - jws)) != 1) {
        snprintf(msg, msglen, "bad signature: the %s was altered or not signed by the vendor key",
                 kind->short_name);
        return CERT_BAD_SIGNATURE;
    }
    return part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", ret_payload, msg, msglen);
}

static const struct cert_jws_kind answer_kind = {
    .typ = "tpmlic-answer+jws",
    .name = "license server answer",
    .short_name = "answer",
    .maxlen = CERT_ANSWER_MAX,
};

int cert_answer_sign(json_t *payload, EVP_PKEY *key, char **ret_jws) {
    char *jws;
    int r = cert_jws_sign(answer_kind.typ, payload, key, &jws);
    if (r < 0)
        return r;
    if (strlen(jws) > CERT_ANSWER_MAX) {
        free(jws);
        return -EFBIG;
    }
    *ret_jws = jws;
    return 0;
}

enum cert_status cert_answer_verify(const char *jws, size_t len, EVP_PKEY *vendor_pub,
                                    json_t **ret_payload, char *msg, size_t msglen) {
    return cert_jws_verify(jws, len, &answer_kind, vendor_pub, ret_payload, msg, msglen);
}
