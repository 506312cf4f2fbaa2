/* Shared by the files of cert/ only. */
#pragma once

#include <errno.h>
#include <stdlib.h>

#include <jansson.h>

#include "cert/cert.h"
#include "cert/json.h"

/* Largest whole number JSON carries exactly (2^53). */
#define CERT_JSON_UINT_MAX 9007199254740992ull

json_t *cert_hwid_to_json(const struct hwid_digests *d);
bool cert_hwid_from_json(struct cj *c, json_t *parent, struct hwid_digests *d);
/* value_key: "base" in a license, "value" in an activation certificate */
json_t *cert_counter_to_json(const struct cert_counter *k, const char *value_key);
bool cert_counter_from_json(struct cj *c, json_t *parent, const char *value_key,
                            struct cert_counter *k);
