/* cert/: the license certificate (compact JWS, EdDSA/Ed25519, RFC 7515 and
 * RFC 8037) and the activation certificate (base64url JSON), strictly
 * decoded and verified. Pure OpenSSL + jansson (+ hwid/id for digests); no
 * TPM. The formats are specified in docs/certificates.md.
 *
 * Machinery failures return a negative errno; licensing outcomes are
 * enum cert_status, each with a one-line message for a person. Nothing
 * here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/hex.h"
#include "common/timefmt.h"

#include "hwid/id.h"

#define CERT_LICENSE_MAX      1536 /* the whole compact JWS: fits one NV index of any TPM */
#define CERT_ACTIVATION_MAX   8192 /* the base64url text an operator e-mails */
#define CERT_ANSWER_MAX       8192 /* a signed license server answer (docs/online.md) */
#define CERT_FEATURES_MAX     16
#define CERT_FEATURE_MAX      32
#define CERT_TEXT_MAX         64 /* license code, product, jti, nonce */
#define CERT_COUNTER_NAME_MAX 34 /* TPM2B_NAME contents for SHA-256: 2 + 32 */

enum cert_status {
    CERT_OK = 0,
    CERT_MALFORMED,
    CERT_UNSUPPORTED_VERSION,
    CERT_WRONG_KEY,     /* signed (kid) by a key other than the vendor's */
    CERT_BAD_SIGNATURE, /* the signature does not verify: tampered */
    CERT_EXPIRED,
    CERT_NOT_YET_VALID,
    CERT_WRONG_MACHINE,
};

/* "malformed", "bad signature", ... */
const char *cert_status_name(enum cert_status s);

enum cert_license_type {
    CERT_PERPETUAL = 1,
    CERT_TIME_LIMITED,
    CERT_SUBSCRIPTION,
    CERT_CONSUMPTION,
};
const char *cert_license_type_name(enum cert_license_type t);
int cert_license_type_from_name(const char *s, enum cert_license_type *ret);

/* The agent's usage counter (SPEC sections 5 and 7): in an activation
 * certificate value is the counter's value when the request was made; in a
 * license certificate the same number comes back signed as the base. */
struct cert_counter {
    uint32_t index;
    uint8_t name[CERT_COUNTER_NAME_MAX];
    size_t name_len;
    uint64_t value;
};

/* A counter as JSON: {"index": "0x01xxxxxx", "name": hex, value_key: N};
 * value_key is "base" in a license, "value" in requests (an activation
 * certificate, a validation). from_json reads parent[key] into *k. */
struct cj;
json_t *cert_counter_to_json(const struct cert_counter *k, const char *value_key);
bool cert_counter_from_json(struct cj *c, json_t *parent, const char *key, const char *value_key,
                            struct cert_counter *k);
/* o's "index": an NV index as "0x01xxxxxx"; key names o in the error. */
bool cert_nv_index_from_json(struct cj *c, json_t *o, const char *key, uint32_t *ret);

/* Which TPMs a license accepts (tpm_trust, docs/certificates.md): any TPM
 * that proves it holds its EK (the default), one whose EK certificate
 * chains to a CA in the agent's EK trust store, or one whose chain holds
 * one of the listed CA keys (SHA-256 of the CA's SubjectPublicKeyInfo). */
enum cert_tpm_trust_kind {
    CERT_TPM_TRUST_ANY = 0,
    CERT_TPM_TRUST_CERTIFIED,
    CERT_TPM_TRUST_CAS,
};
#define CERT_TPM_TRUST_KEYS_MAX 4
struct cert_tpm_trust {
    enum cert_tpm_trust_kind kind;
    size_t nkeys;
    char key_ids[CERT_TPM_TRUST_KEYS_MAX][65];
};

/* The time floor (docs/certificates.md, SPEC section 11): at time `at`, as
 * the signer knew it, the agent's hour counter stood at value. A license
 * certificate carries only the counter's index (the name stays zero). Since then every increment of
 * that counter is an hour that passed. */
struct cert_time_floor {
    bool present;
    struct cert_counter counter;
    time_t at;
};

/* An online certificate's validity window (docs/online.md): the license
 * server signs the TPM clock the agent sent with its request (tpm_clock, in
 * ms) and the clock value until which the certificate holds; until bounds
 * it on the agent's time floor too. Absent in offline certificates. */
struct cert_online_window {
    bool present;
    uint64_t tpm_clock;
    uint64_t tpm_clock_until;
    time_t until;
};

struct cert_license {
    char license[CERT_TEXT_MAX + 1];
    char product[CERT_TEXT_MAX + 1];
    long long customer_id;
    char computer_id[HWID_ID_STRLEN];
    struct hwid_digests hwid;
    enum hwid_policy hwid_policy;
    enum cert_license_type type;
    time_t expiry;     /* subscription_expiry; 0 for perpetual */
    time_t not_before; /* nbf; 0 when absent */
    char features[CERT_FEATURES_MAX][CERT_FEATURE_MAX + 1];
    size_t nfeatures;
    uint64_t secs_allocated;
    uint64_t secs_granted;
    bool offline_allowed;
    bool activated_offline; /* activation_type "offline" */
    uint32_t tick_secs;
    struct cert_counter counter; /* counter.value is the base */
    time_t iat;
    char jti[CERT_TEXT_MAX + 1];
    struct cert_tpm_trust tpm_trust;
    struct cert_time_floor time_floor;
    struct cert_online_window window;
};

/* The counter value past which the certificate is dead (SPEC section 11):
 * base + granted ticks. Deactivation, a refusal and a certificate that
 * supersedes this one move the counter beyond it. */
uint64_t cert_license_ceiling(const struct cert_license *l);

struct cert_activation {
    char license[CERT_TEXT_MAX + 1];
    char computer_id[HWID_ID_STRLEN];
    struct hwid_digests hwid;
    uint8_t *ek_public; /* DER SubjectPublicKeyInfo; owned */
    size_t ek_public_len;
    uint8_t *ek_certificate; /* DER X.509, or NULL; owned */
    size_t ek_certificate_len;
    struct cert_counter counter;
    struct cert_counter time_floor; /* the hour counter; index 0 when absent */
    /* the certificate in force when the request was made (superseded by
     * the one signed from it); jti "" when none */
    char supersedes_jti[CERT_TEXT_MAX + 1];
    uint64_t supersedes_ceiling;
    char ek_issuer[257]; /* "" when the TPM has no EK certificate */
    char nonce[CERT_TEXT_MAX + 1];
    time_t date;
    /* optional, "" when absent */
    char username[129];
    char email_address[129];
    char company_name[129];
    char hostname[129];
    char vm_info[129];
    char app_ver[33];
    int is_vm; /* -1 unknown, 0, 1 */
};
void cert_activation_clear(struct cert_activation *a);

/* Signs lic with the vendor's Ed25519 private key into a compact JWS
 * (malloc'ed, NUL-terminated). -EFBIG when it would exceed CERT_LICENSE_MAX,
 * -EINVAL for a license that is not complete and consistent (message in
 * err). */
int cert_license_sign(const struct cert_license *lic, EVP_PKEY *key, char **ret_jws, char *err,
                      size_t errlen);

/* Decodes and verifies a license certificate against the vendor public key;
 * with now != 0 also its validity period. Fills *ret only on CERT_OK (and on
 * EXPIRED / NOT_YET_VALID, so callers can show what it was). */
enum cert_status cert_license_verify(const char *jws, size_t len, EVP_PKEY *vendor_pub, time_t now,
                                     struct cert_license *ret, char *msg, size_t msglen);

/* Compares the certificate's hardware digests with this machine's under the
 * certificate's policy: CERT_OK or CERT_WRONG_MACHINE, naming the
 * component that differs. */
enum cert_status cert_license_match(const struct cert_license *lic,
                                    const struct hwid_digests *current, struct hwid_match *ret,
                                    char *msg, size_t msglen);

/* Activation certificate: encode (malloc'ed base64url text) and strict
 * decode. Decoding fills *ret only on CERT_OK; free with
 * cert_activation_clear(). */
int cert_activation_encode(const struct cert_activation *a, char **ret, char *err, size_t errlen);
enum cert_status cert_activation_decode(const char *text, size_t len, struct cert_activation *ret,
                                        char *msg, size_t msglen);

/* ---- EK certificates and the trust store (ekchain.c) ---------------------- */

#define CERT_EK_CHAIN_MAX 4
struct cert_ek_trust {
    bool has_cert;    /* the TPM has an EK certificate */
    bool certified;   /* it chains to a CA of the trust store */
    char issuer[257]; /* its issuer, one line */
    char why[320];    /* why it is not certified */
    size_t nkeys;
    char ca_key_ids[CERT_EK_CHAIN_MAX][65]; /* the CAs of the verified chain, issuer first */
};
/* Verifies the EK certificate (DER) against the CA certificates in ca_dir
 * (PEM or DER files; no time check). Fills *ret; -ENOMEM only. */
int cert_ek_trust(const uint8_t *der, size_t len, const char *ca_dir, struct cert_ek_trust *ret);
/* "any", "certified" or CA key ids separated by commas (the command-line
 * form); -EINVAL with a message otherwise. */
int cert_tpm_trust_parse(const char *s, struct cert_tpm_trust *ret, char *err, size_t errlen);
void cert_tpm_trust_format(const struct cert_tpm_trust *t, char *buf, size_t len);
/* Does this TPM's EK trust meet the license's tpm_trust? msg says why not. */
bool cert_tpm_trust_met(const struct cert_license *l, const struct cert_ek_trust *t, char *msg,
                        size_t msglen);

/* Lower-case hex SHA-256 of the DER public key: the key id tpmlic-vendor
 * shows. A JWS "kid" is its first CERT_KID_LEN characters (64 bits: it
 * names the key, the signature proves it, and a certificate must fit
 * CERT_LICENSE_MAX). */
#define CERT_KID_LEN 16
int cert_key_id(EVP_PKEY *key, char ret[65]);
int cert_jws_kid(EVP_PKEY *key, char ret[CERT_KID_LEN + 1]);

/* base64url without padding (RFC 4648 section 5). encode: malloc'ed text.
 * decode: strict (no padding, no whitespace, canonical final bits);
 * -EINVAL otherwise; *ret malloc'ed. */
int cert_b64url_encode(const uint8_t *data, size_t len, char **ret);
int cert_b64url_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_len);

/* Signed answers of the license server (docs/online.md): a compact JWS like
 * the license certificate with typ "tpmlic-answer+jws", so that neither can
 * stand in for the other. sign: -EINVAL for a key that is not Ed25519,
 * -EFBIG over CERT_ANSWER_MAX. verify: form, header, key id and signature;
 * the payload's fields are the caller's to check. */
int cert_answer_sign(json_t *payload, EVP_PKEY *key, char **ret_jws);
enum cert_status cert_answer_verify(const char *jws, size_t len, EVP_PKEY *vendor_pub,
                                    json_t **ret_payload, char *msg, size_t msglen);

/* Issuing (issue.c), shared by tpmlic-vendor and tpmlic-server. */

/* What an issuer checks in an activation certificate beyond what
 * cert_activation_decode() already did (format, EK public key against the
 * EK digest): the computer ID is the one the digests give, and an EK
 * certificate, when present, certifies that same EK. recomputed receives the
 * computer ID the digests give ("" when none); msg says why (or
 * "consistent: ..."). */
bool cert_activation_consistent(const struct cert_activation *a, char recomputed[HWID_ID_STRLEN],
                                char *msg, size_t msglen);

/* Parses a comma-separated feature list ("a,b") into l->features and
 * l->nfeatures (NULL or "": none). -EINVAL for an empty name, -E2BIG for a
 * name over CERT_FEATURE_MAX or more than CERT_FEATURES_MAX names; err says
 * which. The characters and duplicates are checked by cert_license_sign(). */
int cert_features_parse(const char *list, struct cert_license *l, char *err, size_t errlen);

/* Binds l to the appliance that sent a: license code, computer ID, hardware
 * digests and counter (its value at request time becomes the base, or the
 * ceiling of the certificate it supersedes plus one when that is higher),
 * the time floor (the hour counter's value at the request's date); iat =
 * now and a random 16-byte jti. The terms are the caller's. -ESTALE when
 * the request is dated more than CERT_REQUEST_MAX_AGE ago (or in the
 * future): its date would anchor the time floor too far back. */
#define CERT_REQUEST_MAX_AGE      (30 * 86400)
#define CERT_REQUEST_FUTURE_SLACK 600
int cert_license_bind(struct cert_license *l, const struct cert_activation *a, time_t now);

/* The vendor's Ed25519 signing key from a PEM file (an encrypted key asks
 * for its passphrase on the terminal). *ret_exposed: the file can be read
 * by others than its owner (the caller warns). -errno, -EINVAL for a file
 * that is not a PEM Ed25519 private key; the message says which. */
int cert_load_signing_key(const char *path, EVP_PKEY **ret, bool *ret_exposed, char *err,
                          size_t errlen);
