/* Issuing a license certificate from an activation certificate: the steps
 * shared by tpmlic-vendor sign-activation (offline) and tpmlic-server
 * (online activation and offline signing through its database). The checks
 * an issuer makes beyond cert_activation_decode(), the parsing of a feature
 * list, and binding a license to the appliance that asked for it. */
#include "cert/internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/hex.h"
#include "common/macro.h"
#include "hwid/encode.h"

DEFINE_PTR_CLEANUP(X509, X509_free)

bool cert_activation_consistent(const struct cert_activation *a, char recomputed[HWID_ID_STRLEN],
                                char *msg, size_t msglen) {
    uint8_t d[HWID_DIGEST_LEN];

    if (hwid_computer_id(&a->hwid, recomputed) < 0) {
        recomputed[0] = '\0';
        snprintf(msg, msglen, "no hardware digest to derive a computer ID from");
        return false;
    }
    if (strcmp(recomputed, a->computer_id) != 0) {
        snprintf(msg, msglen,
                 "computer_id %s does not match the hardware digests (they give %s): the "
                 "activation certificate was altered",
                 a->computer_id, recomputed);
        return false;
    }
    if (a->ek_certificate) {
        const uint8_t *p = a->ek_certificate;
        _cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)a->ek_certificate_len);
        EVP_PKEY *k = x ? X509_get0_pubkey(x) : NULL;
        unsigned char *der = NULL;
        int len = k ? i2d_PUBKEY(k, &der) : -1;
        int r = len > 0 ? hwid_digest_ek(der, (size_t)len, d) : -EINVAL;

        OPENSSL_free(der);
        if (!x || p != a->ek_certificate + a->ek_certificate_len) {
            snprintf(msg, msglen, "ek_certificate is not a DER X.509 certificate");
            return false;
        }
        if (r < 0 || memcmp(d, a->hwid.digest[HWID_EK], sizeof(d)) != 0) {
            snprintf(msg, msglen, "ek_certificate certifies another key than ek_public");
            return false;
        }
    }
    snprintf(msg, msglen, "consistent: the computer ID and the EK match the hardware digests");
    return true;
}

int cert_features_parse(const char *list, struct cert_license *l, char *err, size_t errlen) {
    const char *p = list;

    l->nfeatures = 0;
    if (!list || !*list)
        return 0;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            snprintf(err, errlen, "has an empty name");
            return -EINVAL;
        }
        if (n > CERT_FEATURE_MAX) {
            snprintf(err, errlen, "feature '%.*s' is longer than %d characters", (int)n, p,
                     CERT_FEATURE_MAX);
            return -E2BIG;
        }
        if (l->nfeatures == CERT_FEATURES_MAX) {
            snprintf(err, errlen, "more than %d features", CERT_FEATURES_MAX);
            return -E2BIG;
        }
        memset(l->features[l->nfeatures], 0, sizeof(l->features[0]));
        memcpy(l->features[l->nfeatures++], p, n);
        if (!p[n])
            break;
        p += n + 1;
    }
    return 0;
}

int cert_license_bind(struct cert_license *l, const struct cert_activation *a, time_t now) {
    /* the request's date anchors the time floor: it must be recent */
    if (a->time_floor.index &&
        (a->date > now + CERT_REQUEST_FUTURE_SLACK || a->date < now - CERT_REQUEST_MAX_AGE))
        return -ESTALE;
    snprintf(l->license, sizeof(l->license), "%s", a->license);
    snprintf(l->computer_id, sizeof(l->computer_id), "%s", a->computer_id);
    l->hwid = a->hwid;
    l->counter = a->counter; /* the value at request time comes back as the base */
    /* a certificate that supersedes another starts past that one's
     * ceiling: applying it moves the counter there, which ends the old one */
    if (a->supersedes_jti[0] && a->supersedes_ceiling + 1 > l->counter.value)
        l->counter.value = a->supersedes_ceiling + 1;
    if (a->time_floor.index) {
        l->time_floor.present = true;
        l->time_floor.counter = a->time_floor;
        l->time_floor.at = a->date < now ? a->date : now;
    }
    l->iat = now;
    return hex_random(l->jti, 16);
}
