/* tpm/ek.c: the public key of the TCG default RSA-2048 endorsement key
 * (EK Credential Profile template L-1), obtained the cheap way first: the EK
 * certificate in NV, then the persistent EK after checking its public area
 * against the template, and CreatePrimary only when neither exists (1.5 to
 * 15 s on real chips). Other EKs are listed, never substituted. */
#include "tpm/tpm-internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

/* PolicySecret(TPM_RH_ENDORSEMENT), the authPolicy of template L-1. */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

#define EK_ATTRIBUTES                                                                              \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |            \
     TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

static void ek_template(TPM2B_PUBLIC *t) {
    memset(t, 0, sizeof(*t));
    t->publicArea.type = TPM2_ALG_RSA;
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes = EK_ATTRIBUTES;
    t->publicArea.authPolicy.size = sizeof(ek_policy);
    memcpy(t->publicArea.authPolicy.buffer, ek_policy, sizeof(ek_policy));
    t->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    t->publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    t->publicArea.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    t->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    t->publicArea.parameters.rsaDetail.keyBits = 2048;
    t->publicArea.parameters.rsaDetail.exponent = 0;
    t->publicArea.unique.rsa.size = 256; /* 256 zero bytes */
}

/* Does a persistent object's public area equal template L-1 (but for the
 * unique field, which is the key itself)? */
static bool matches_template(const TPMT_PUBLIC *p) {
    const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;
    return p->type == TPM2_ALG_RSA && p->nameAlg == TPM2_ALG_SHA256 &&
           p->objectAttributes == EK_ATTRIBUTES && p->authPolicy.size == sizeof(ek_policy) &&
           memcmp(p->authPolicy.buffer, ek_policy, sizeof(ek_policy)) == 0 &&
           r->symmetric.algorithm == TPM2_ALG_AES && r->symmetric.keyBits.aes == 128 &&
           r->symmetric.mode.aes == TPM2_ALG_CFB && r->scheme.scheme == TPM2_ALG_NULL &&
           r->keyBits == 2048 && (r->exponent == 0 || r->exponent == 65537) &&
           p->unique.rsa.size == 256;
}

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_PTR_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
DEFINE_PTR_CLEANUP(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free)
DEFINE_PTR_CLEANUP(OSSL_PARAM, OSSL_PARAM_free)
DEFINE_PTR_CLEANUP(BIGNUM, BN_free)
DEFINE_PTR_CLEANUP(X509, X509_free)

/* The canonical DER SubjectPublicKeyInfo for (n, e), whatever the source. */
static int spki_from_rsa(const uint8_t *n, size_t nlen, uint32_t e, uint8_t **ret,
                         size_t *ret_len) {
    _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    _cleanup_(BN_freep) BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL);
    _cleanup_(BN_freep) BIGNUM *bn_e = BN_new();
    _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
    _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = NULL;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    int len;

    if (!bld || !bn_n || !bn_e || !BN_set_word(bn_e, e) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        return -ENOMEM;
    len = i2d_PUBKEY(pkey, &der);
    if (len <= 0)
        return -EINVAL;
    *ret = malloc((size_t)len);
    if (!*ret) {
        OPENSSL_free(der);
        return -ENOMEM;
    }
    memcpy(*ret, der, (size_t)len);
    *ret_len = (size_t)len;
    OPENSSL_free(der);
    return 0;
}

static int finish(struct tpm_ctx *ctx, struct tpm_ek *ek) {
    int r =
        spki_from_rsa(ek->modulus, sizeof(ek->modulus), ek->exponent, &ek->spki_der, &ek->spki_len);
    if (r < 0)
        return tpm_fail(ctx, r, "encoding the EK public key failed");
    return 0;
}

/* The RSA-2048 key in an EK certificate; -EMEDIUMTYPE when it is not one. */
int tpm_ek_key_from_cert(struct tpm_ctx *ctx, const uint8_t *der, size_t len, struct tpm_ek *ek) {
    const unsigned char *p = der;
    _cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)len);
    _cleanup_(BN_freep) BIGNUM *n = NULL;
    _cleanup_(BN_freep) BIGNUM *e = NULL;
    EVP_PKEY *pkey;

    if (!x)
        return tpm_fail(ctx, -EPROTO, "EK certificate at 0x%08x is not DER X.509",
                        TPM_EK_RSA_CERT_INDEX);
    pkey = X509_get0_pubkey(x);
    if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) != 2048)
        return tpm_fail(ctx, -EMEDIUMTYPE, "EK certificate at 0x%08x holds no RSA-2048 key",
                        TPM_EK_RSA_CERT_INDEX);
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) ||
        BN_bn2binpad(n, ek->modulus, sizeof(ek->modulus)) != (int)sizeof(ek->modulus) ||
        BN_num_bits(e) > 32)
        return tpm_fail(ctx, -EMEDIUMTYPE, "EK certificate at 0x%08x: unusable RSA key",
                        TPM_EK_RSA_CERT_INDEX);
    ek->exponent = (uint32_t)BN_get_word(e);
    return 0;
}

static int from_cert(struct tpm_ctx *ctx, struct tpm_ek *ek) {
    _cleanup_free_ uint8_t *der = NULL;
    size_t len = 0;
    int r;

    r = tpm_nv_read(ctx, TPM_EK_RSA_CERT_INDEX, &der, &len);
    if (r < 0)
        return r;
    r = tpm_ek_key_from_cert(ctx, der, len, ek);
    if (r < 0)
        return r;
    ek->cert_der = TAKE_PTR(der);
    ek->cert_len = len;
    ek->source = TPM_EK_FROM_CERT;
    snprintf(ek->origin, sizeof(ek->origin), "EK certificate at NV 0x%08x", TPM_EK_RSA_CERT_INDEX);
    return 0;
}

static int from_public(struct tpm_ctx *ctx, const TPMT_PUBLIC *p, struct tpm_ek *ek) {
    if (!matches_template(p))
        return tpm_fail(ctx, -EMEDIUMTYPE, "public area differs from EK template L-1");
    memcpy(ek->modulus, p->unique.rsa.buffer, sizeof(ek->modulus));
    ek->exponent = p->parameters.rsaDetail.exponent ? p->parameters.rsaDetail.exponent : 65537;
    return 0;
}

static int from_persistent(struct tpm_ctx *ctx, struct tpm_ek *ek) {
    _cleanup_esys_ TPM2B_PUBLIC *reread = NULL;
    TPM2B_PUBLIC pub;
    TPM2B_NAME name;
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc;
    int r;

    rc = Esys_TR_FromTPMPublic(ctx->esys, TPM_EK_RSA_PERSISTENT, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "persistent EK 0x%08x", TPM_EK_RSA_PERSISTENT);
    r = tpm_tr_public(ctx, tr, &name, NULL, &pub);
    if (r == -EPROTO) {
        rc = Esys_ReadPublic(ctx->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &reread, NULL,
                             NULL);
        if (rc == TSS2_RC_SUCCESS)
            pub = *reread;
        r = rc == TSS2_RC_SUCCESS
                ? 0
                : tpm_fail_rc(ctx, rc, "TPM2_ReadPublic(0x%08x)", TPM_EK_RSA_PERSISTENT);
    }
    Esys_TR_Close(ctx->esys, &tr);
    if (r < 0)
        return r;
    r = from_public(ctx, &pub.publicArea, ek);
    if (r < 0) {
        char why[sizeof(ctx->error)];
        /* tpm_fail formats into ctx->error: the reason is copied out first */
        snprintf(why, sizeof(why), "%s", ctx->error);
        return tpm_fail(ctx, r, "persistent key 0x%08x is not the default RSA EK: %s",
                        TPM_EK_RSA_PERSISTENT, why);
    }
    ek->source = TPM_EK_FROM_PERSISTENT;
    snprintf(ek->origin, sizeof(ek->origin), "persistent EK 0x%08x (template L-1 checked)",
             TPM_EK_RSA_PERSISTENT);
    return 0;
}

static int create_primary(struct tpm_ctx *ctx, bool persist, struct tpm_ek *ek) {
    _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
    TPM2B_SENSITIVE_CREATE sens = {.size = 0};
    TPM2B_DATA outside = {.size = 0};
    TPML_PCR_SELECTION pcrs = {.count = 0};
    TPM2B_PUBLIC tmpl;
    ESYS_TR key = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
    TSS2_RC rc;
    int r;

    ek_template(&tmpl);
    rc = Esys_CreatePrimary(ctx->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                            ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &key, &pub, NULL, NULL,
                            NULL);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_CreatePrimary(EK template L-1)");
    r = from_public(ctx, &pub->publicArea, ek);
    if (r == 0 && persist) {
        rc = Esys_EvictControl(ctx->esys, ESYS_TR_RH_OWNER, key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, TPM_EK_RSA_PERSISTENT, &persistent);
        if (rc != TSS2_RC_SUCCESS)
            r = tpm_fail_rc(ctx, rc, "TPM2_EvictControl(EK to 0x%08x)", TPM_EK_RSA_PERSISTENT);
        else
            Esys_TR_Close(ctx->esys, &persistent);
    }
    rc = Esys_FlushContext(ctx->esys, key);
    if (rc != TSS2_RC_SUCCESS && r == 0)
        r = tpm_fail_rc(ctx, rc, "TPM2_FlushContext(EK)");
    if (r < 0)
        return r;
    ek->source = TPM_EK_CREATED;
    snprintf(ek->origin, sizeof(ek->origin), "CreatePrimary with EK template L-1%s",
             persist ? ", made persistent at 0x81010001" : "");
    return 0;
}

void tpm_ek_clear(struct tpm_ek *ek) {
    if (!ek)
        return;
    free(ek->spki_der);
    free(ek->cert_der);
    memset(ek, 0, sizeof(*ek));
}

int tpm_ek_rsa(struct tpm_ctx *ctx, unsigned flags, struct tpm_ek *ret) {
    struct tpm_ek ek = {0};
    int r = -ENOENT;

    /* A missing or unusable certificate or persistent key is not an error
     * as long as a later source gives the key; a TPM that stops answering
     * is. */
    if (!(flags & TPM_EK_SKIP_CERT)) {
        r = from_cert(ctx, &ek);
        if (r == -ENODEV || r == -ENOMEM || r == -ENOTCONN || r == -EIO)
            goto fail;
    }
    if (r < 0 && !(flags & TPM_EK_SKIP_PERSISTENT)) {
        tpm_ek_clear(&ek);
        r = from_persistent(ctx, &ek);
        if (r == -ENODEV || r == -ENOMEM || r == -ENOTCONN || r == -EIO)
            goto fail;
    }
    if (r < 0) {
        tpm_ek_clear(&ek);
        r = create_primary(ctx, flags & TPM_EK_PERSIST, &ek);
        if (r < 0)
            goto fail;
    }
    r = finish(ctx, &ek);
    if (r < 0)
        goto fail;
    ctx->error[0] = '\0';
    *ret = ek;
    return 0;
fail:
    tpm_ek_clear(&ek);
    return r;
}

static const char *ek_cert_name(uint32_t index) {
    static const struct {
        uint32_t index;
        const char *what;
    } names[] = {
        {0x01c00002, "RSA 2048 EK certificate (L-1)"},
        {0x01c0000a, "ECC NIST P-256 EK certificate (L-2)"},
        {0x01c00012, "RSA 2048 EK certificate (H-1)"},
        {0x01c00014, "ECC NIST P-256 EK certificate (H-2)"},
        {0x01c00016, "ECC NIST P-384 EK certificate (H-3)"},
        {0x01c00018, "ECC NIST P-521 EK certificate (H-4)"},
        {0x01c0001a, "ECC SM2 P-256 EK certificate (H-5)"},
        {0x01c0001c, "RSA 3072 EK certificate (H-6)"},
        {0x01c0001e, "RSA 4096 EK certificate (H-7)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (names[i].index == index)
            return names[i].what;
    return NULL;
}

int tpm_ek_list_others(struct tpm_ctx *ctx, struct tpm_ek_other *ret, size_t max) {
    _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more = TPM2_NO;
    size_t n = 0;
    TSS2_RC rc;

    rc = Esys_GetCapability(ctx->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                            0x01c00000, 64, &more, &cap);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail_rc(ctx, rc, "TPM2_GetCapability(EK certificate indices)");
    for (uint32_t i = 0; i < cap->data.handles.count && n < max; i++) {
        TPM2_HANDLE h = cap->data.handles.handle[i];
        const char *what = ek_cert_name(h);
        struct tpm_nv_public pub;
        if (h > 0x01c07fff)
            break;
        if (!what || h == TPM_EK_RSA_CERT_INDEX)
            continue;
        if (tpm_nv_public(ctx, h, &pub) < 0)
            continue;
        ret[n].index = h;
        ret[n].size = pub.size;
        ret[n].what = what;
        n++;
    }
    return (int)n;
}

/* ---- proof of possession ------------------------------------------------- */

static bool same_key(const TPMT_PUBLIC *p, const struct tpm_ek *ek) {
    return matches_template(p) && memcmp(p->unique.rsa.buffer, ek->modulus, 256) == 0;
}

/* The persistent EK when it is ek's key: its ESYS_TR (close it), or
 * ESYS_TR_NONE; *ret_empty when nothing is persistent there. */
static int persistent_ek(struct tpm_ctx *ctx, const struct tpm_ek *ek, ESYS_TR *ret,
                         bool *ret_empty) {
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_PUBLIC pub;
    TPM2B_NAME name;
    TSS2_RC rc;
    int r;

    *ret = ESYS_TR_NONE;
    *ret_empty = false;
    rc = Esys_TR_FromTPMPublic(ctx->esys, TPM_EK_RSA_PERSISTENT, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_rc_to_errno(rc);
        if (r == -ENOENT) {
            *ret_empty = true;
            return 0;
        }
        return tpm_fail_rc(ctx, rc, "persistent EK 0x%08x", TPM_EK_RSA_PERSISTENT);
    }
    /* the public area ESAPI keeps for tr is the one the salt is encrypted
     * to: that is the one checked */
    r = tpm_tr_public(ctx, tr, &name, NULL, &pub);
    if (r == 0 && same_key(&pub.publicArea, ek)) {
        *ret = tr;
        return 0;
    }
    Esys_TR_Close(ctx->esys, &tr);
    return 0;
}

int tpm_prove_ek(struct tpm_ctx *ctx, const struct tpm_ek *ek, unsigned flags,
                 struct tpm_ek_proof *ret) {
    static const TPMT_SYM_DEF sym = {
        .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
    _cleanup_esys_ TPM2B_PUBLIC *created = NULL;
    TPM2B_SENSITIVE_CREATE sens = {.size = 0};
    TPM2B_DATA outside = {.size = 0};
    TPML_PCR_SELECTION pcrs = {.count = 0};
    ESYS_TR key = ESYS_TR_NONE, session = ESYS_TR_NONE, persistent;
    unsigned long before = ctx->commands;
    struct tpm_clock clk;
    bool transient = false, empty;
    TPM2B_PUBLIC tmpl;
    TSS2_RC rc;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (ctx->session != ESYS_TR_NONE)
        return tpm_fail(ctx, -EALREADY, "the endorsement key is proven already");
    /* 1. the key the computer ID derives from, loaded in this TPM */
    r = persistent_ek(ctx, ek, &key, &empty);
    if (r < 0)
        return r;
    if (key != ESYS_TR_NONE) {
        snprintf(ret->how, sizeof(ret->how), "persistent EK 0x%08x", TPM_EK_RSA_PERSISTENT);
    } else {
        ek_template(&tmpl);
        rc = Esys_CreatePrimary(ctx->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &key, &created, NULL,
                                NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
            return tpm_fail_rc(ctx, rc, "TPM2_CreatePrimary(EK template L-1)");
        transient = true;
        if (!same_key(&created->publicArea, ek)) {
            Esys_FlushContext(ctx->esys, key);
            return tpm_fail(ctx, -EKEYREJECTED,
                            "the TPM does not hold the private key of its endorsement key "
                            "certificate (the EK it derives from its seed is another key)");
        }
        snprintf(ret->how, sizeof(ret->how), "CreatePrimary (EK template L-1)");
        /* once: later starts find it persistent and skip CreatePrimary */
        if ((flags & TPM_EK_PERSIST) && empty &&
            Esys_EvictControl(ctx->esys, ESYS_TR_RH_OWNER, key, tpm_auth_session(ctx), ESYS_TR_NONE,
                              ESYS_TR_NONE, TPM_EK_RSA_PERSISTENT,
                              &persistent) == TSS2_RC_SUCCESS) {
            Esys_TR_Close(ctx->esys, &persistent);
            ret->persisted = true;
            snprintf(ret->how, sizeof(ret->how),
                     "CreatePrimary (EK template L-1), made persistent at 0x%08x",
                     TPM_EK_RSA_PERSISTENT);
        }
    }

    /* 2. a session salted to it: only a TPM that holds the private key
     * derives the session key, and so answers with valid HMACs */
    rc = Esys_StartAuthSession(ctx->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &session);
    if ((rc == TPM2_RC_SESSION_MEMORY || rc == TPM2_RC_SESSION_HANDLES) &&
        !ctx->info.resource_manager && tpm_flush_stale_sessions(ctx) == 0)
        /* a raw TPM full of the sessions of agents that crashed */
        rc = Esys_StartAuthSession(ctx->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                   ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256,
                                   &session);
    if (transient)
        Esys_FlushContext(ctx->esys, key);
    else
        Esys_TR_Close(ctx->esys, &key);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_rc_to_errno(rc);
        if (r == -ENODEV || r == -ENOMEM)
            return tpm_fail_rc(ctx, rc, "TPM2_StartAuthSession");
        tpm_fail_rc(ctx, rc,
                    "the TPM does not hold the private key of its endorsement key certificate "
                    "(no session salted to that key could be started)");
        return -EKEYREJECTED;
    }
    Esys_TRSess_SetAttributes(ctx->esys, session, TPMA_SESSION_CONTINUESESSION, 0xff);
    ctx->session = session;

    /* 3. the first authenticated answer */
    r = tpm_read_clock(ctx, &clk);
    if (r < 0) {
        Esys_FlushContext(ctx->esys, ctx->session);
        ctx->session = ESYS_TR_NONE;
        if (r == -EBADE)
            return tpm_fail(ctx, -EKEYREJECTED,
                            "the TPM does not hold the private key of its endorsement key "
                            "certificate (its first answer in a session salted to that key does "
                            "not verify)");
        return r;
    }
    ret->commands = ctx->commands - before;
    return 0;
}
