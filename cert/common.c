/* What both certificate formats share: names, times, the key id, and the
 * hwid and counter objects (docs/certificates.md). */
#include "cert/internal.h"

#include <stdio.h>
#include <string.h>

#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/hex.h"
#include "common/macro.h"
#include "common/timefmt.h"

DEFINE_PTR_CLEANUP(BIO, BIO_free_all)

const char *cert_status_name(enum cert_status s) {
    static const char *const names[] = {
        [CERT_OK] = "ok",
        [CERT_MALFORMED] = "malformed",
        [CERT_UNSUPPORTED_VERSION] = "unsupported version",
        [CERT_WRONG_KEY] = "signed by another key",
        [CERT_BAD_SIGNATURE] = "bad signature",
        [CERT_EXPIRED] = "expired",
        [CERT_NOT_YET_VALID] = "not yet valid",
        [CERT_WRONG_MACHINE] = "for another computer",
    };
    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static const char *const type_names[] = {
    [CERT_PERPETUAL] = "perpetual",
    [CERT_TIME_LIMITED] = "time-limited",
    [CERT_SUBSCRIPTION] = "subscription",
    [CERT_CONSUMPTION] = "consumption",
};

const char *cert_license_type_name(enum cert_license_type t) {
    return (unsigned)t < ARRAY_SIZE(type_names) && type_names[t] ? type_names[t] : "";
}

int cert_license_type_from_name(const char *s, enum cert_license_type *ret) {
    for (size_t i = CERT_PERPETUAL; i < ARRAY_SIZE(type_names); i++)
        if (s && !strcmp(s, type_names[i])) {
            *ret = (enum cert_license_type)i;
            return 0;
        }
    return -EINVAL;
}

int cert_jws_kid(EVP_PKEY *key, char ret[CERT_KID_LEN + 1]) {
    char id[65];
    int r = cert_key_id(key, id);
    if (r < 0)
        return r;
    memcpy(ret, id, CERT_KID_LEN);
    ret[CERT_KID_LEN] = '\0';
    return 0;
}

int cert_key_id(EVP_PKEY *key, char ret[65]) {
    /* The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410) is a fixed
     * prefix and the 32-byte key: built here, because i2d_PUBKEY() goes
     * through OpenSSL 3's encoder machinery and costs more than the
     * signature check (bench/bench_cert.c). Same bytes, same key id. */
    static const uint8_t ed25519_spki[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                             0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    uint8_t md[SHA256_DIGEST_LENGTH], spki[sizeof(ed25519_spki) + 32];
    unsigned char *der = NULL;
    size_t n = 32;
    int len;

    if (!key)
        return -EINVAL;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 &&
        EVP_PKEY_get_raw_public_key(key, spki + sizeof(ed25519_spki), &n) == 1 && n == 32) {
        memcpy(spki, ed25519_spki, sizeof(ed25519_spki));
        SHA256(spki, sizeof(spki), md);
    } else {
        len = i2d_PUBKEY(key, &der);
        if (len <= 0)
            return -EINVAL;
        SHA256(der, (size_t)len, md);
        OPENSSL_free(der);
    }
    hex_encode(md, sizeof(md), ret);
    return 0;
}

json_t *cert_hwid_to_json(const struct hwid_digests *d) {
    json_t *o = json_object();
    for (int c = 0; o && c < HWID_COMPONENT_MAX; c++) {
        char hex[HWID_DIGEST_HEXLEN];
        if (d->present[c]) {
            hwid_digest_to_hex(d->digest[c], hex);
            json_object_set_new(o, hwid_component_name((enum hwid_component)c), json_string(hex));
        } else {
            json_object_set_new(o, hwid_component_name((enum hwid_component)c), json_null());
        }
    }
    return o;
}

bool cert_hwid_from_json(struct cj *c, json_t *parent, struct hwid_digests *d) {
    static const char *const keys[] = {"ek", "dmi", "nic", NULL};
    json_t *o;
    int present = 0;

    memset(d, 0, sizeof(*d));
    if (!cj_object(c, parent, "hwid", &o) || !cj_only_keys(c, o, "hwid: ", keys))
        return false;
    for (int i = 0; i < HWID_COMPONENT_MAX; i++) {
        const char *name = hwid_component_name((enum hwid_component)i);
        json_t *v = json_object_get(o, name);
        if (!v)
            return cj_fail(c, "hwid: field '%s' is missing (null when absent)", name);
        if (json_is_null(v))
            continue;
        if (!json_is_string(v) || hwid_digest_from_hex(json_string_value(v), d->digest[i]) < 0)
            return cj_fail(c, "hwid: field '%s' must be 64 lower-case hex digits or null", name);
        d->present[i] = true;
        present++;
    }
    if (!present)
        return cj_fail(c, "hwid: no component is present");
    return true;
}

json_t *cert_counter_to_json(const struct cert_counter *k, const char *value_key) {
    char index[11], name[2 * CERT_COUNTER_NAME_MAX + 1];
    if (k->name_len > CERT_COUNTER_NAME_MAX)
        return NULL; /* would overflow name[] */
    snprintf(index, sizeof(index), "0x%08x", k->index);
    hex_encode(k->name, k->name_len, name);
    return json_pack("{s:s, s:s, s:I}", "index", index, "name", name, value_key,
                     (json_int_t)k->value);
}

bool cert_nv_index_from_json(struct cj *c, json_t *o, const char *key, uint32_t *ret) {
    char index[16];
    unsigned long v;
    char *end;

    if (!cj_string(c, o, "index", CJ_REQUIRED, CJ_IDENTIFIER, 10, index, sizeof(index)))
        return false;
    errno = 0;
    v = strtoul(index, &end, 16);
    if (strlen(index) != 10 || strncmp(index, "0x", 2) || errno || *end || v < 0x01000000ul ||
        v > 0x01fffffful)
        return cj_fail(c, "%s: field 'index' must be an NV index like \"0x01a0c001\"", key);
    *ret = (uint32_t)v;
    return true;
}

bool cert_counter_from_json(struct cj *c, json_t *parent, const char *key, const char *value_key,
                            struct cert_counter *k) {
    const char *keys[] = {"index", "name", value_key, NULL};
    char where[48];
    json_t *o;

    memset(k, 0, sizeof(*k));
    snprintf(where, sizeof(where), "%s: ", key);
    if (!cj_object(c, parent, key, &o) || !cj_only_keys(c, o, where, keys) ||
        !cert_nv_index_from_json(c, o, key, &k->index))
        return false;
    return cj_hex(c, o, "name", 2, CERT_COUNTER_NAME_MAX, k->name, &k->name_len) &&
           cj_uint(c, o, value_key, true, 0, CERT_JSON_UINT_MAX, &k->value);
}

int cert_load_signing_key(const char *path, EVP_PKEY **ret, bool *ret_exposed, char *err,
                          size_t errlen) {
    _cleanup_(BIO_free_allp) BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *key;
    struct stat st;

    if (!bio) {
        int r = errno ? -errno : -EIO;
        snprintf(err, errlen, "cannot read the private key %s: %s", path, strerror(-r));
        return r;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!key) {
        snprintf(err, errlen, "%s is not a PEM private key", path);
        return -EINVAL;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        snprintf(err, errlen, "%s is not an Ed25519 key (make one with 'tpmlic-vendor keygen')",
                 path);
        return -EINVAL;
    }
    *ret_exposed = stat(path, &st) == 0 && (st.st_mode & 077);
    *ret = key;
    return 0;
}
