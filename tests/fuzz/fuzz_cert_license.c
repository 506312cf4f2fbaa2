/* libFuzzer harness for the license certificate decoder
 * (cert_license_verify). Two kinds of input:
 *   - anything not starting with '{' is verified as a compact JWS, as the
 *     agent would (header parsing, kid, signature);
 *   - an input starting with '{' is a payload: the harness signs it with the
 *     fixed fuzzing key, so mutations reach the payload parser instead of
 *     dying at the signature.
 * A license that verifies must sign again and verify again (round trip).
 * The key is derived from a fixed, public seed: it signs nothing but the
 * seed corpus (tests/fuzz/corpus/license, see tests/fuzz.mk). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cert/cert.h"

#define FUZZ_NOW 1800000000 /* 2027-01-15T08:00:00Z: makes some seeds expired */

static EVP_PKEY *key;
static char header64[256];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    uint8_t seed[32];
    char kid[CERT_KID_LEN + 1], header[160], *h = NULL;

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(0x11 * (i % 15) + i);
    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
    if (!key || cert_jws_kid(key, kid) < 0)
        abort();
    snprintf(header, sizeof(header),
             "{\"alg\":\"EdDSA\",\"typ\":\"tpmlic-license+jws\",\"kid\":\"%s\"}", kid);
    if (cert_b64url_encode((const uint8_t *)header, strlen(header), &h) < 0)
        abort();
    snprintf(header64, sizeof(header64), "%s", h);
    free(h);
    return 0;
}

/* header64 "." base64url(payload) "." signature, signed with the key. */
static char *sign_payload(const uint8_t *payload, size_t n) {
    char *p = NULL, *input = NULL, *s = NULL, *jws = NULL;
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md && cert_b64url_encode(payload, n, &p) == 0 &&
        asprintf(&input, "%s.%s", header64, p) > 0 &&
        EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(md, sig, &siglen, (const uint8_t *)input, strlen(input)) == 1 &&
        cert_b64url_encode(sig, siglen, &s) == 0 && asprintf(&jws, "%s.%s", input, s) < 0)
        jws = NULL;
    EVP_MD_CTX_free(md);
    free(p);
    free(input);
    free(s);
    return jws;
}

static void check(const char *jws, size_t len) {
    struct cert_license l, again;
    struct hwid_match m;
    char msg[256], *resigned = NULL;
    enum cert_status s = cert_license_verify(jws, len, key, FUZZ_NOW, &l, msg, sizeof(msg));

    if (s != CERT_OK && s != CERT_EXPIRED && s != CERT_NOT_YET_VALID)
        return;
    cert_license_match(&l, &l.hwid, &m, msg, sizeof(msg));
    /* Whatever verifies can be signed again (the canonical re-encoding is
     * never longer) and reads back the same. */
    if (cert_license_sign(&l, key, &resigned, msg, sizeof(msg)) != 0)
        abort();
    if (cert_license_verify(resigned, strlen(resigned), key, 0, &again, msg, sizeof(msg)) !=
            CERT_OK ||
        strlen(resigned) > len || strcmp(again.license, l.license) ||
        strcmp(again.computer_id, l.computer_id) || strcmp(again.jti, l.jti) ||
        again.secs_granted != l.secs_granted || again.expiry != l.expiry ||
        again.not_before != l.not_before || again.nfeatures != l.nfeatures ||
        again.counter.value != l.counter.value || again.type != l.type)
        abort();
    free(resigned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy;

    if (size > 4096)
        return 0;
    if (size && data[0] == '{') {
        char *jws = sign_payload(data, size);
        if (jws)
            check(jws, strlen(jws));
        free(jws);
        return 0;
    }
    /* an exact-size copy without a NUL: any over-read is caught */
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    check(copy, size);
    free(copy);
    return 0;
}
