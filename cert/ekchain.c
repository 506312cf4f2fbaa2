/* EK certificates against a trust store (cert.h, docs/security.md): does
 * the TPM's endorsement key certificate chain to a manufacturer or cloud CA
 * the vendor trusts? The store is a directory of CA certificates (PEM, any
 * number per file, or DER); roots and intermediates may both be there.
 * Validity dates are not checked: an EK certificate names a device for its
 * whole life, the key is proven by the TPM itself (tpm_prove_ek), and an
 * appliance's clock at first boot is not to be relied on. */
#include "cert/internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common/hex.h"
#include "common/macro.h"

DEFINE_PTR_CLEANUP(X509, X509_free)
DEFINE_PTR_CLEANUP(X509_STORE, X509_STORE_free)
DEFINE_PTR_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)
DEFINE_PTR_CLEANUP(BIO, BIO_free_all)

static void chain_freep(STACK_OF(X509) * *s) {
    if (*s)
        sk_X509_pop_free(*s, X509_free);
}

int cert_x509_key_id(X509 *x, char ret[65]) {
    unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

    if (len <= 0)
        return -EINVAL;
    SHA256(der, (size_t)len, md);
    OPENSSL_free(der);
    hex_encode(md, sizeof(md), ret);
    return 0;
}

/* Adds every certificate in path (PEM, one or more; or one DER) to store;
 * returns how many. */
static int add_file(X509_STORE *store, const char *path) {
    _cleanup_(BIO_free_allp) BIO *b = BIO_new_file(path, "rb");
    X509 *x;
    int n = 0;

    if (!b)
        return -errno;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        if (X509_STORE_add_cert(store, x) == 1)
            n++;
        X509_free(x);
    }
    if (n == 0 && BIO_reset(b) == 0 && (x = d2i_X509_bio(b, NULL))) {
        n += X509_STORE_add_cert(store, x) == 1;
        X509_free(x);
    }
    return n;
}

static int load_store(const char *dir, X509_STORE *store, char *why, size_t whylen) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d) {
        snprintf(why, whylen, "no EK trust store at %s: %s", dir, strerror(errno));
        return -ENOENT;
    }
    while ((e = readdir(d))) {
        char path[4096];
        int k;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        k = add_file(store, path);
        if (k > 0)
            n += k;
    }
    closedir(d);
    if (n == 0) {
        snprintf(why, whylen, "the EK trust store %s holds no CA certificate", dir);
        return -ENOENT;
    }
    return n;
}

int cert_ek_trust(const uint8_t *der, size_t len, const char *ca_dir, struct cert_ek_trust *ret) {
    _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
    _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *vctx = NULL;
    _cleanup_(chain_freep) STACK_OF(X509) *chain = NULL;
    _cleanup_(X509_freep) X509 *leaf = NULL;
    const unsigned char *p = der;
    int err;

    memset(ret, 0, sizeof(*ret));
    if (!der || !len) {
        snprintf(ret->why, sizeof(ret->why), "the TPM has no EK certificate");
        return 0;
    }
    leaf = d2i_X509(NULL, &p, (long)len);
    if (!leaf) {
        snprintf(ret->why, sizeof(ret->why), "the EK certificate is not DER X.509");
        return 0;
    }
    ret->has_cert = true;
    X509_NAME_oneline(X509_get_issuer_name(leaf), ret->issuer, sizeof(ret->issuer));
    if (!ca_dir || !*ca_dir) {
        snprintf(ret->why, sizeof(ret->why), "no EK trust store is configured");
        return 0;
    }
    store = X509_STORE_new();
    vctx = X509_STORE_CTX_new();
    if (!store || !vctx)
        return -ENOMEM;
    if (load_store(ca_dir, store, ret->why, sizeof(ret->why)) < 0)
        return 0;
    X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_STORE_CTX_init(vctx, store, leaf, NULL) != 1)
        return -ENOMEM;
    X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_ANY);
    if (X509_verify_cert(vctx) != 1) {
        err = X509_STORE_CTX_get_error(vctx);
        snprintf(ret->why, sizeof(ret->why),
                 "the EK certificate (issuer %.120s) does not chain to a CA in %s: %s", ret->issuer,
                 ca_dir, X509_verify_cert_error_string(err));
        return 0;
    }
    chain = X509_STORE_CTX_get1_chain(vctx);
    for (int i = 1; chain && i < sk_X509_num(chain) && ret->nkeys < CERT_EK_CHAIN_MAX; i++)
        if (cert_x509_key_id(sk_X509_value(chain, i), ret->ca_key_ids[ret->nkeys]) == 0)
            ret->nkeys++;
    ret->certified = true;
    return 0;
}

bool cert_tpm_trust_met(const struct cert_license *l, const struct cert_ek_trust *t, char *msg,
                        size_t msglen) {
    if (l->tpm_trust.kind == CERT_TPM_TRUST_ANY)
        return true;
    if (!t->certified) {
        snprintf(msg, msglen,
                 "the license requires an EK certificate from a trusted CA and this TPM's does "
                 "not qualify: %s",
                 t->why);
        return false;
    }
    if (l->tpm_trust.kind == CERT_TPM_TRUST_CERTIFIED)
        return true;
    for (size_t i = 0; i < l->tpm_trust.nkeys; i++)
        for (size_t j = 0; j < t->nkeys; j++)
            if (strcmp(l->tpm_trust.key_ids[i], t->ca_key_ids[j]) == 0)
                return true;
    snprintf(msg, msglen,
             "the license allows TPMs of certain CAs only, and this TPM's EK certificate (issuer "
             "%.120s) chains to none of them",
             t->issuer);
    return false;
}

int cert_tpm_trust_parse(const char *s, struct cert_tpm_trust *ret, char *err, size_t errlen) {
    _cleanup_free_ char *copy = NULL;
    char *save = NULL, *tok;
    uint8_t raw[32];

    memset(ret, 0, sizeof(*ret));
    if (!s || !strcmp(s, "any"))
        return 0;
    if (!strcmp(s, "certified")) {
        ret->kind = CERT_TPM_TRUST_CERTIFIED;
        return 0;
    }
    copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    ret->kind = CERT_TPM_TRUST_CAS;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (ret->nkeys == CERT_TPM_TRUST_KEYS_MAX || hex_decode_exact(tok, raw, 32) < 0) {
            snprintf(err, errlen,
                     "tpm trust must be any, certified, or 1 to %d CA key ids (64 lower-case "
                     "hex digits each, the SHA-256 of the CA's public key) separated by commas",
                     CERT_TPM_TRUST_KEYS_MAX);
            return -EINVAL;
        }
        snprintf(ret->key_ids[ret->nkeys++], sizeof(ret->key_ids[0]), "%s", tok);
    }
    if (!ret->nkeys) {
        snprintf(err, errlen, "tpm trust names no CA key id");
        return -EINVAL;
    }
    return 0;
}

void cert_tpm_trust_format(const struct cert_tpm_trust *t, char *buf, size_t len) {
    size_t n = 0;
    if (t->kind == CERT_TPM_TRUST_ANY) {
        snprintf(buf, len, "any");
        return;
    }
    if (t->kind == CERT_TPM_TRUST_CERTIFIED) {
        snprintf(buf, len, "certified");
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < t->nkeys && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", t->key_ids[i]);
}
