/* Decoding of tpmlicd's answers (answer.h). */
#include "client/answer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/timefmt.h"

/* The "error" text of a JSON error body, or NULL. */
static const char *error_text(json_t *j) {
    return json_string_value(json_object_get(j, "error"));
}

static json_t *load_quietly(const char *body, size_t len) {
    char msg[8];
    json_t *j = NULL;
    if (!body || cj_load_object(body, len, false, &j, msg, sizeof(msg)) < 0)
        return NULL;
    return j;
}

int client_status_errno(int status, const char *body, size_t len) {
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 400:
        return -EINVAL;
    case 403: {
        /* the transport's own refusal (docs/socket-api-transport.md) is about
         * the caller; any other 403 is the license saying no */
        json_auto_t *j = load_quietly(body, len);
        const char *e = error_text(j);
        return e && strncmp(e, "permission denied", 17) == 0 ? -EACCES : -EPERM;
    }
    case 404:
        return -ENOENT;
    case 405:
        return -EOPNOTSUPP;
    case 409:
        return -EBUSY;
    case 413:
        return -E2BIG;
    case 429:
        return -EAGAIN;
    case 503:
        return -EHOSTDOWN;
    default:
        return status >= 500 && status < 600 ? -EIO : -EPROTO;
    }
}

int client_answer_error(int status, const char *body, size_t len, char *msg, size_t msglen) {
    int r = client_status_errno(status, body, len);
    json_auto_t *j = NULL;

    if (r == 0)
        return 0;
    j = load_quietly(body, len);
    if (error_text(j))
        snprintf(msg, msglen, "%s", error_text(j));
    else
        snprintf(msg, msglen, "tpmlicd answered HTTP %d: %.200s", status, body ? body : "");
    return r;
}

int client_decode_object(const char *body, size_t len, json_t **ret, char *msg, size_t msglen) {
    char why[200];
    if (cj_load_object(body, len, false, ret, why, sizeof(why)) < 0) {
        snprintf(msg, msglen, "tpmlicd's answer is not a JSON object: %s", why);
        return -EPROTO;
    }
    return 0;
}

/* The first problem the field readers found, naming the answer. */
static int decoded(struct cj *c, const char *what, char *msg, size_t msglen) {
    if (!c->failed)
        return 0;
    snprintf(msg, msglen, "tpmlicd's %s answer: %s", what, c->msg);
    return -EPROTO;
}

int client_decode_lease(json_t *o, struct tpmlic_lease *ret, char *msg, size_t msglen) {
    char why[200];
    struct cj c = {.msg = why, .msglen = sizeof(why)};
    struct tpmlic_lease l = {0};
    uint64_t secs = 0, exp = 0;

    cj_string(&c, o, "lease", CJ_REQUIRED, CJ_IDENTIFIER, sizeof(l.id) - 1, l.id, sizeof(l.id));
    cj_uint(&c, o, "seconds", true, 0, UINT32_MAX, &secs);
    cj_uint(&c, o, "expires_in", true, 0, UINT32_MAX, &exp);
    if (decoded(&c, "reservation", msg, msglen) < 0)
        return -EPROTO;
    l.seconds = (uint32_t)secs;
    l.expires_in = (uint32_t)exp;
    *ret = l;
    return 0;
}

int client_decode_commit(json_t *o, uint64_t *ret_charged, uint64_t *ret_returned, char *msg,
                         size_t msglen) {
    char why[200];
    struct cj c = {.msg = why, .msglen = sizeof(why)};
    uint64_t charged = 0, returned = 0;

    cj_uint(&c, o, "charged", true, 0, UINT64_MAX, &charged);
    cj_uint(&c, o, "returned", true, 0, UINT64_MAX, &returned);
    if (decoded(&c, "commit", msg, msglen) < 0)
        return -EPROTO;
    *ret_charged = charged;
    *ret_returned = returned;
    return 0;
}

/* An RFC 3339 time or null (absent: null); 0 for null. */
static void time_field(struct cj *c, json_t *o, const char *key, int64_t *ret) {
    json_t *v = json_object_get(o, key);
    time_t t;
    if (c->failed)
        return;
    if (!v || json_is_null(v)) {
        *ret = 0;
        return;
    }
    if (!json_is_string(v) || rfc3339_parse(json_string_value(v), &t) < 0) {
        cj_fail(c, "field '%s' must be null or an RFC 3339 UTC time (2027-01-31T00:00:00Z)", key);
        return;
    }
    *ret = (int64_t)t;
}

/* The features array as one comma-separated string that fits out. */
static void features_field(struct cj *c, json_t *o, char *out, size_t outlen) {
    json_t *arr = json_object_get(o, "features"), *f;
    size_t i, used = 0;

    out[0] = '\0';
    if (c->failed || !arr)
        return;
    if (!json_is_array(arr)) {
        cj_fail(c, "field 'features' must be an array of names");
        return;
    }
    json_array_foreach(arr, i, f) {
        const char *s = json_string_value(f);
        size_t n = json_string_length(f);
        if (!s || n == 0 || strlen(s) != n || strcspn(s, ",\t\r\n") != n) {
            cj_fail(c, "field 'features' must hold names without commas or line ends");
            return;
        }
        if (used + n + 2 > outlen) {
            cj_fail(c, "field 'features' holds more than %zu characters", outlen - 1);
            return;
        }
        if (used)
            out[used++] = ',';
        memcpy(out + used, s, n + 1);
        used += n;
    }
}

int client_decode_status(json_t *o, struct tpmlic_status *ret, char *msg, size_t msglen) {
    char why[200];
    struct cj c = {.msg = why, .msglen = sizeof(why)};
    struct tpmlic_status st = {0};

    cj_bool(&c, o, "licensed", true, &st.licensed);
    cj_bool(&c, o, "valid", true, &st.valid);
    cj_bool(&c, o, "offline_mode", false, &st.offline_mode);
    cj_string(&c, o, "reason", CJ_NULLABLE, CJ_TEXT, sizeof(st.reason) - 1, st.reason,
              sizeof(st.reason));
    cj_string(&c, o, "license_type", CJ_NULLABLE, CJ_IDENTIFIER, sizeof(st.license_type) - 1,
              st.license_type, sizeof(st.license_type));
    cj_string(&c, o, "computer_id", CJ_NULLABLE, CJ_IDENTIFIER, sizeof(st.computer_id) - 1,
              st.computer_id, sizeof(st.computer_id));
    features_field(&c, o, st.features, sizeof(st.features));
    time_field(&c, o, "subscription_expiry", &st.subscription_expiry);
    time_field(&c, o, "grace_period_end", &st.grace_period_end);
    cj_uint(&c, o, "secs_remaining", true, 0, UINT64_MAX, &st.secs_remaining);
    if (decoded(&c, "status", msg, msglen) < 0)
        return -EPROTO;
    *ret = st;
    return 0;
}
