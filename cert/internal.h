/* Shared by the files of cert/ only. */
#pragma once

#include <errno.h>
#include <stdlib.h>

#include <jansson.h>

#include "cert/cert.h"
#include "common/json.h"

/* Largest whole number JSON carries exactly (2^53). */
#define CERT_JSON_UINT_MAX 9007199254740992ull

json_t *cert_hwid_to_json(const struct hwid_digests *d);
bool cert_hwid_from_json(struct cj *c, json_t *parent, struct hwid_digests *d);

/* SHA-256 of a certificate's SubjectPublicKeyInfo, hex (ekchain.c). */
#include <openssl/x509.h>
int cert_x509_key_id(X509 *x, char ret[65]);

/* The compact JWS envelope (jws.c). */
struct cert_jws_kind {
    const char *typ;        /* header "typ" */
    const char *name;       /* "license certificate", for messages */
    const char *short_name; /* "certificate" */
    size_t maxlen;
};
/* -EINVAL when key is not Ed25519; the JWS is malloc'ed. */
int cert_jws_sign(const char *typ, json_t *payload, EVP_PKEY *key, char **ret_jws);
/* Checks size, form, header (alg, typ, kid) and signature, then parses the
 * payload into a JSON object (*ret_payload, only on CERT_OK). */
enum cert_status cert_jws_verify(const char *jws, size_t len, const struct cert_jws_kind *kind,
                                 EVP_PKEY *vendor_pub, json_t **ret_payload, char *msg,
                                 size_t msglen);
