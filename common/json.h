/* Strict JSON field readers for everything tpmlic reads as JSON: request
 * bodies of the agent and the server, answers in the client, certificates.
 * The rules: types checked field by field, ranges and character sets
 * checked, unknown fields refused (cj_only_keys), duplicate keys refused at
 * load. A struct cj collects the first problem as a message for a person;
 * later calls do nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct cj {
    char *msg;
    size_t msglen;
    bool failed;
};

enum cj_need {
    CJ_REQUIRED, /* present and non-empty */
    CJ_OPTIONAL, /* may be absent; null refused */
    CJ_NULLABLE, /* may be absent or null */
};

enum cj_charset {
    CJ_IDENTIFIER, /* [A-Za-z0-9._-] */
    CJ_TEXT,       /* any UTF-8 without control characters */
};

bool cj_fail(struct cj *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* keys: NULL-terminated list of the fields allowed in obj. */
bool cj_only_keys(struct cj *c, json_t *obj, const char *where, const char *const *keys);
bool cj_string(struct cj *c, json_t *obj, const char *key, enum cj_need need, enum cj_charset cs,
               size_t maxlen, char *out, size_t outlen);
bool cj_uint(struct cj *c, json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
             uint64_t *out);
bool cj_bool(struct cj *c, json_t *obj, const char *key, bool required, bool *out);
bool cj_object(struct cj *c, json_t *obj, const char *key, json_t **out);
/* lower-case hex of minbytes..maxbytes bytes (maxbytes <= CJ_HEX_MAX) */
#define CJ_HEX_MAX 256
bool cj_hex(struct cj *c, json_t *obj, const char *key, size_t minbytes, size_t maxbytes,
            uint8_t *out, size_t *out_len);
/* A license code (common/licensecode.h); out holds at least
 * LICENSE_CODE_MAX + 1. The message starts "Invalid license code". */
bool cj_license_code(struct cj *c, json_t *obj, const char *key, bool required, char *out,
                     size_t outlen);

/* Loads text as one JSON object: duplicate keys, trailing data and any other
 * top level refused. Empty text (or white space) gives {} when allow_empty.
 * 0 and a new reference in *ret, or -EINVAL with msg saying what and where
 * ("malformed JSON at line 1 column 7: ..."). */
int cj_load_object(const char *text, size_t len, bool allow_empty, json_t **ret, char *msg,
                   size_t msglen);
