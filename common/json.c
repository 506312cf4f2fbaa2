/* Strict JSON field readers (json.h): every field type- and range-checked,
 * unknown fields refused, a precise message for the first problem. */
#include "common/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "common/licensecode.h"

bool cj_fail(struct cj *c, const char *fmt, ...) {
    va_list ap;
    if (c->failed)
        return false;
    c->failed = true;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return false;
}

bool cj_only_keys(struct cj *c, json_t *obj, const char *where, const char *const *keys) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i;
        for (i = 0; keys[i]; i++)
            if (!strcmp(keys[i], key))
                break;
        if (!keys[i])
            return cj_fail(c, "%sunknown field '%.40s'", where, key);
    }
    return !c->failed;
}

static bool printable(const char *s, bool identifier) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (identifier) {
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
                return false;
        } else if (ch < 0x20 || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

bool cj_string(struct cj *c, json_t *obj, const char *key, enum cj_need need, enum cj_charset cs,
               size_t maxlen, char *out, size_t outlen) {
    json_t *v = json_object_get(obj, key);
    const char *s;
    size_t n;

    out[0] = '\0';
    if (c->failed)
        return false;
    if (!v || json_is_null(v)) {
        if (need == CJ_REQUIRED)
            return cj_fail(c, "field '%s' is missing", key);
        if (v && need == CJ_OPTIONAL)
            return cj_fail(c, "field '%s' must be a string, not null", key);
        return true;
    }
    if (!json_is_string(v))
        return cj_fail(c, "field '%s' must be a string", key);
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 && need == CJ_REQUIRED)
        return cj_fail(c, "field '%s' is empty", key);
    if (n > maxlen || n >= outlen)
        return cj_fail(c, "field '%s' is longer than %zu characters", key, maxlen);
    if (strlen(s) != n || !printable(s, cs == CJ_IDENTIFIER))
        return cj_fail(c, "field '%s' contains characters that are not allowed", key);
    memcpy(out, s, n + 1);
    return true;
}

bool cj_uint(struct cj *c, json_t *obj, const char *key, bool required, uint64_t min, uint64_t max,
             uint64_t *out) {
    json_t *v = json_object_get(obj, key);
    json_int_t i;

    if (c->failed)
        return false;
    if (!v) {
        if (required)
            return cj_fail(c, "field '%s' is missing", key);
        return true;
    }
    if (!json_is_integer(v))
        return cj_fail(c, "field '%s' must be a whole number", key);
    i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return cj_fail(c, "field '%s' is out of range (%llu to %llu)", key, (unsigned long long)min,
                       (unsigned long long)max);
    *out = (uint64_t)i;
    return true;
}

bool cj_bool(struct cj *c, json_t *obj, const char *key, bool required, bool *out) {
    json_t *v = json_object_get(obj, key);
    if (c->failed)
        return false;
    if (!v) {
        if (required)
            return cj_fail(c, "field '%s' is missing", key);
        return true;
    }
    if (!json_is_boolean(v))
        return cj_fail(c, "field '%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

bool cj_object(struct cj *c, json_t *obj, const char *key, json_t **out) {
    json_t *v = json_object_get(obj, key);
    if (c->failed)
        return false;
    if (!v)
        return cj_fail(c, "field '%s' is missing", key);
    if (!json_is_object(v))
        return cj_fail(c, "field '%s' must be an object", key);
    *out = v;
    return true;
}

bool cj_hex(struct cj *c, json_t *obj, const char *key, size_t minbytes, size_t maxbytes,
            uint8_t *out, size_t *out_len) {
    char buf[2 * CJ_HEX_MAX + 1];
    size_t n;

    if (maxbytes > CJ_HEX_MAX)
        return cj_fail(c, "field '%s': at most %d bytes of hex can be read", key, CJ_HEX_MAX);
    if (!cj_string(c, obj, key, CJ_REQUIRED, CJ_IDENTIFIER, 2 * maxbytes, buf, sizeof(buf)))
        return false;
    if (hex_decode(buf, strlen(buf), out, maxbytes, &n) < 0 || n < minbytes)
        return cj_fail(c, "field '%s' must be %zu to %zu bytes of lower-case hex", key, minbytes,
                       maxbytes);
    *out_len = n;
    return true;
}

bool cj_license_code(struct cj *c, json_t *obj, const char *key, bool required, char *out,
                     size_t outlen) {
    json_t *v = json_object_get(obj, key);

    out[0] = '\0';
    if (c->failed)
        return false;
    if (!v && !required)
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        !license_code_valid(json_string_value(v)) || json_string_length(v) >= outlen)
        return cj_fail(c, "Invalid license code: '%s' must be " LICENSE_CODE_RULE, key);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

int cj_load_object(const char *text, size_t len, bool allow_empty, json_t **ret, char *msg,
                   size_t msglen) {
    json_error_t err;
    json_t *v;
    size_t i;

    for (i = 0;
         i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'); i++)
        ;
    if (i == len) {
        if (!allow_empty) {
            snprintf(msg, msglen, "the body must be a JSON object");
            return -EINVAL;
        }
        *ret = json_object();
        return *ret ? 0 : -ENOMEM;
    }
    v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!v) {
        snprintf(msg, msglen, "malformed JSON at line %d column %d: %s", err.line, err.column,
                 err.text);
        return -EINVAL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(msg, msglen, "the body must be a JSON object");
        return -EINVAL;
    }
    *ret = v;
    return 0;
}
