/* Benchmark: what cert_license_verify() costs next to the Ed25519
 * verification it wraps. The same realistic license (19-character code,
 * 20-character product, 3 features, three digests, counter) is verified
 * (a) by raw OpenSSL EVP_DigestVerify over its signing input "h.p", with a
 * fresh EVP_MD_CTX each time as the wrapper does, and (b) by
 * cert_license_verify (size and shape checks, base64url, header JSON, key
 * id, signature, payload JSON and every field), in the same run; then the
 * activation certificate decoder. Each row runs about one second; the
 * overhead ratio is (b) / (a). Figures are reported, not judged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cert/cert.h"
#include "hwid/encode.h"

#define ROW_SECS 1.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct ctx {
    EVP_PKEY *pub;
    const char *jws;
    size_t len, input_len;
    uint8_t *sig;
    size_t siglen;
    const char *act;
};

static int raw_verify(struct ctx *c) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, c->pub) == 1 &&
             EVP_DigestVerify(md, c->sig, c->siglen, (const uint8_t *)c->jws, c->input_len) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

static int wrapped_verify(struct ctx *c) {
    struct cert_license l;
    char msg[256];
    return cert_license_verify(c->jws, c->len, c->pub, 1800000000, &l, msg, sizeof(msg)) == CERT_OK
               ? 0
               : -1;
}

static int activation_decode(struct ctx *c) {
    struct cert_activation a;
    char msg[256];
    enum cert_status s = cert_activation_decode(c->act, strlen(c->act), &a, msg, sizeof(msg));
    if (s != CERT_OK)
        return -1;
    cert_activation_clear(&a);
    return 0;
}

/* Runs fn in batches for about ROW_SECS; returns microseconds per call. */
static double measure(const char *label, int (*fn)(struct ctx *), struct ctx *c) {
    long n = 0;
    double t0 = now_s(), t;

    for (int i = 0; i < 50; i++) /* warm-up */
        if (fn(c) < 0) {
            fprintf(stderr, "%s failed\n", label);
            exit(1);
        }
    do {
        for (int i = 0; i < 200; i++)
            if (fn(c) < 0) {
                fprintf(stderr, "%s failed\n", label);
                exit(1);
            }
        n += 200;
        t = now_s() - t0;
    } while (t < ROW_SECS);
    printf("%-44s %10.0f /s %9.2f us\n", label, (double)n / t, t * 1e6 / (double)n);
    return t * 1e6 / (double)n;
}

static struct cert_license sample(void) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC", NULL};
    struct cert_license l;

    memset(&l, 0, sizeof(l));
    strcpy(l.license, "ABCD-EFGH-IJKL-MNOP");
    strcpy(l.product, "Speech Engine Pro 24");
    l.customer_id = 123456;
    memset(l.hwid.digest[HWID_EK], 0x5a, HWID_DIGEST_LEN);
    hwid_digest_dmi(dmi, l.hwid.digest[HWID_DMI]);
    hwid_digest_nic(macs, 1, l.hwid.digest[HWID_NIC]);
    l.hwid.present[HWID_EK] = l.hwid.present[HWID_DMI] = l.hwid.present[HWID_NIC] = true;
    hwid_computer_id(&l.hwid, l.computer_id);
    l.type = CERT_SUBSCRIPTION;
    l.expiry = 1900000000;
    strcpy(l.features[0], "standard");
    strcpy(l.features[1], "enhanced");
    strcpy(l.features[2], "diarization");
    l.nfeatures = 3;
    l.secs_allocated = 3600000;
    l.secs_granted = 360000;
    l.offline_allowed = true;
    l.tick_secs = 60;
    l.counter.index = 0x01a0c001;
    l.counter.name_len = 34;
    l.counter.name[1] = 0x0b;
    l.counter.value = 4242;
    l.iat = 1790000000;
    strcpy(l.jti, "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    return l;
}

int main(void) {
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ek = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    struct cert_license l = sample();
    struct cert_activation a = {.is_vm = -1};
    unsigned char *der = NULL;
    char *jws = NULL, *act = NULL, err[256];
    struct ctx c = {0};
    const char *dot2;
    double raw, wrapped;
    int len;

    if (!key || !ek || cert_license_sign(&l, key, &jws, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_cert: cannot sign: %s\n", err);
        return 1;
    }
    /* the activation certificate, with the RSA EK digest */
    len = i2d_PUBKEY(ek, &der);
    strcpy(a.license, l.license);
    a.hwid = l.hwid;
    if (len <= 0 || hwid_digest_ek(der, (size_t)len, a.hwid.digest[HWID_EK]) < 0)
        return 1;
    hwid_computer_id(&a.hwid, a.computer_id);
    a.ek_public = der;
    a.ek_public_len = (size_t)len;
    a.counter = l.counter;
    strcpy(a.nonce, "00112233445566778899aabbccddeeff");
    a.date = 1790000000;
    if (cert_activation_encode(&a, &act, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_cert: cannot encode: %s\n", err);
        return 1;
    }

    c.pub = key;
    c.jws = jws;
    c.len = strlen(jws);
    dot2 = strrchr(jws, '.');
    c.input_len = (size_t)(dot2 - jws);
    if (cert_b64url_decode(dot2 + 1, strlen(dot2 + 1), &c.sig, &c.siglen) < 0)
        return 1;
    c.act = act;

    printf("license certificate: %zu bytes (signing input %zu, limit %d); activation "
           "certificate: %zu characters\n",
           c.len, c.input_len, CERT_LICENSE_MAX, strlen(act));
    printf("%-44s %13s %12s\n", "", "rate", "per call");
    raw = measure("raw OpenSSL Ed25519 verify (EVP_DigestVerify)", raw_verify, &c);
    wrapped = measure("cert_license_verify (decode + verify)", wrapped_verify, &c);
    measure("cert_activation_decode (incl. EK digest)", activation_decode, &c);
    printf("overhead of decoding and checking: %.2f us per certificate, ratio %.2fx raw verify\n",
           wrapped - raw, wrapped / raw);

    free(c.sig);
    free(jws);
    free(act);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ek);
    return 0;
}
