/* The canonical encodings of the EK, DMI and NIC components and their
 * SHA-256 digests. The byte layouts are specified in docs/computer-id.md;
 * change them only together with a new domain-separation version. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/macro.h"
#include "hwid/encode.h"

DEFINE_PTR_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_PTR_CLEANUP(BIGNUM, BN_free)

static const char *const dmi_field_names[HWID_DMI_FIELD_MAX] = {
    [HWID_DMI_PRODUCT_UUID] = "product_uuid",
    [HWID_DMI_SYS_VENDOR] = "sys_vendor",
    [HWID_DMI_PRODUCT_NAME] = "product_name",
    [HWID_DMI_BOARD_SERIAL] = "board_serial",
};

const char *hwid_dmi_field_name(enum hwid_dmi_field f) {
    if ((unsigned)f >= HWID_DMI_FIELD_MAX)
        return "?";
    return dmi_field_names[f];
}

int hwid_sha256(const void *buf, size_t len, uint8_t ret[HWID_DIGEST_LEN]) {
    unsigned int n = 0;
    if (!EVP_Digest(buf, len, ret, &n, EVP_sha256(), NULL) || n != HWID_DIGEST_LEN)
        return -EIO;
    return 0;
}

static int md_begin(EVP_MD_CTX **ret_ctx, const char *domain) {
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, domain, strlen(domain) + 1))
        return -EIO;
    *ret_ctx = TAKE_PTR(ctx);
    return 0;
}

static int md_u8(EVP_MD_CTX *ctx, uint8_t v) {
    return EVP_DigestUpdate(ctx, &v, 1) ? 0 : -EIO;
}

static int md_u32(EVP_MD_CTX *ctx, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return EVP_DigestUpdate(ctx, b, sizeof(b)) ? 0 : -EIO;
}

static int md_bytes(EVP_MD_CTX *ctx, const void *p, size_t n) {
    return EVP_DigestUpdate(ctx, p, n) ? 0 : -EIO;
}

static int md_end(EVP_MD_CTX *ctx, uint8_t ret[HWID_DIGEST_LEN]) {
    unsigned int n = 0;
    if (!EVP_DigestFinal_ex(ctx, ret, &n) || n != HWID_DIGEST_LEN)
        return -EIO;
    return 0;
}

int hwid_digest_ek(const uint8_t *spki_der, size_t len, uint8_t ret[HWID_DIGEST_LEN]) {
    return hwid_digest_ek_bits(spki_der, len, ret, NULL);
}

int hwid_digest_ek_bits(const uint8_t *spki_der, size_t len, uint8_t ret[HWID_DIGEST_LEN],
                        int *ret_bits) {
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
    _cleanup_(BN_freep) BIGNUM *n = NULL;
    _cleanup_(BN_freep) BIGNUM *e = NULL;
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
    const unsigned char *p = spki_der;
    uint8_t mod[512], exp[8];
    int bits, elen, r;

    if (!spki_der || len == 0 || len > 4096 || !ret)
        return -EINVAL;
    pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (!pkey || p != spki_der + len)
        return -EINVAL;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
        return -EOPNOTSUPP;
    bits = EVP_PKEY_get_bits(pkey);
    if (bits < 2048 || bits > 4096)
        return -EOPNOTSUPP;
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e))
        return -EINVAL;
    if (BN_num_bytes(e) > (int)sizeof(exp) || BN_is_zero(e))
        return -EINVAL;
    if (BN_bn2binpad(n, mod, (bits + 7) / 8) < 0)
        return -EINVAL;
    elen = BN_bn2bin(e, exp);

    r = md_begin(&ctx, HWID_DOMAIN_EK);
    if (r < 0)
        return r;
    if ((r = md_u8(ctx, 1)) < 0 || /* key type 1: RSA */
        (r = md_u32(ctx, (uint32_t)bits)) < 0 || (r = md_u32(ctx, (uint32_t)(bits + 7) / 8)) < 0 ||
        (r = md_bytes(ctx, mod, (size_t)(bits + 7) / 8)) < 0 ||
        (r = md_u32(ctx, (uint32_t)elen)) < 0 || (r = md_bytes(ctx, exp, (size_t)elen)) < 0 ||
        (r = md_end(ctx, ret)) < 0)
        return r;
    if (ret_bits)
        *ret_bits = bits;
    return 0;
}

int hwid_digest_dmi(const char *const values[HWID_DMI_FIELD_MAX], uint8_t ret[HWID_DIGEST_LEN]) {
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
    int r;

    if (!values || !ret)
        return -EINVAL;
    if (!values[HWID_DMI_PRODUCT_UUID] && !values[HWID_DMI_BOARD_SERIAL])
        return -ENODATA;
    for (int f = 0; f < HWID_DMI_FIELD_MAX; f++)
        if (values[f] && (values[f][0] == '\0' || strlen(values[f]) > HWID_DMI_VALUE_MAX))
            return -EINVAL;

    r = md_begin(&ctx, HWID_DOMAIN_DMI);
    if (r < 0)
        return r;
    for (int f = 0; f < HWID_DMI_FIELD_MAX; f++) {
        size_t n = values[f] ? strlen(values[f]) : 0;
        if ((r = md_u8(ctx, (uint8_t)f)) < 0 || (r = md_u8(ctx, values[f] ? 1 : 0)) < 0)
            return r;
        if (values[f] &&
            ((r = md_u32(ctx, (uint32_t)n)) < 0 || (r = md_bytes(ctx, values[f], n)) < 0))
            return r;
    }
    return md_end(ctx, ret);
}

static int cmp_mac(const void *a, const void *b) {
    return memcmp(a, b, HWID_MAC_LEN);
}

int hwid_digest_nic(const uint8_t (*macs)[HWID_MAC_LEN], size_t n, uint8_t ret[HWID_DIGEST_LEN]) {
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
    uint8_t sorted[HWID_NIC_MAX][HWID_MAC_LEN];
    size_t u = 0;
    int r;

    if ((!macs && n) || !ret)
        return -EINVAL;
    if (n == 0)
        return -ENODATA;
    if (n > HWID_NIC_MAX)
        return -E2BIG;
    memcpy(sorted, macs, n * HWID_MAC_LEN);
    qsort(sorted, n, HWID_MAC_LEN, cmp_mac);
    for (size_t i = 0; i < n; i++)
        if (u == 0 || memcmp(sorted[u - 1], sorted[i], HWID_MAC_LEN) != 0)
            memmove(sorted[u++], sorted[i], HWID_MAC_LEN);

    r = md_begin(&ctx, HWID_DOMAIN_NIC);
    if (r < 0)
        return r;
    if ((r = md_u32(ctx, (uint32_t)u)) < 0 || (r = md_bytes(ctx, sorted, u * HWID_MAC_LEN)) < 0)
        return r;
    return md_end(ctx, ret);
}
