/* Unit tests for the request-body readers of tpmlicd's routes
 * (agent_routes_read_body): what each route accepts before its domain
 * call, and the 400 it gives otherwise, without a TPM or a ledger. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/http.h"
#include "agent/routes.h"

#define LICENSE_BODY "\"license\": \"ABCD-EFGH-JKLM-NPQR\""

/* 0 or -EINVAL; on -EINVAL the message must contain want (when given). */
static int read_body(const char *method, const char *path, const char *body, const char *want) {
    struct http_response resp = {0};
    int r = agent_routes_read_body(method, path, body, body ? strlen(body) : 0, &resp);

    if (r == 0) {
        assert_int_equal(resp.status, 0);
        assert_null(resp.json);
    } else if (r == -EINVAL) {
        const char *msg = json_string_value(json_object_get(resp.json, "error"));
        assert_int_equal(resp.status, 400);
        assert_non_null(msg);
        if (want && !strstr(msg, want))
            fail_msg("'%s' does not say '%s'", msg, want);
    }
    json_decref(resp.json);
    free(resp.text);
    return r;
}

static void check_and_usage(void **state) {
    assert_int_equal(read_body("POST", "/v1/check", NULL, NULL), 0);
    assert_int_equal(read_body("POST", "/v1/check", " \n", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/check", "{\"feature\": null}", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/check", "{\"feature\": \"a b\"}", "feature"), -EINVAL);
    assert_int_equal(read_body("POST", "/v1/check", "{\"x\": 1}", "x"), -EINVAL);
    assert_int_equal(read_body("POST", "/v1/check", "[]", "JSON object"), -EINVAL);

    assert_int_equal(read_body("POST", "/v1/usage/reserve", "{\"seconds\": 60}", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/usage/reserve", NULL, "empty"), -EINVAL);
    assert_int_equal(read_body("POST", "/v1/usage/reserve", "{\"seconds\": 0}", "'seconds'"),
                     -EINVAL);
    assert_int_equal(read_body("POST", "/v1/usage/reserve", "{\"seconds\": 86401}", "'seconds'"),
                     -EINVAL);
    assert_int_equal(
        read_body("POST", "/v1/usage/reserve", "{\"seconds\": 1, \"seconds\": 2}", "duplicate"),
        -EINVAL);

    assert_int_equal(read_body("POST", "/v1/usage/commit",
                               "{\"lease\": \"0123456789abcdef0123456789abcdef\", \"used\": 0}",
                               NULL),
                     0);
    assert_int_equal(read_body("POST", "/v1/usage/commit", "{\"lease\": \"ab\"}", "\"used\""),
                     -EINVAL);
}

static void management(void **state) {
    const char *path = "/v1/management/license/offlineactivation";

    assert_int_equal(read_body("POST", "/v1/management/license", "{" LICENSE_BODY "}", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/management/license", "{\"license\": \"x y\"}",
                               "Invalid license code"),
                     -EINVAL);
    assert_int_equal(read_body("POST", path, "{" LICENSE_BODY ", \"username\": \"ann\"}", NULL), 0);
    assert_int_equal(read_body("POST", path, "{" LICENSE_BODY ", \"certificate\": \"x\"}", "PUT"),
                     -EINVAL);
    assert_int_equal(
        read_body("PUT", path, "{" LICENSE_BODY ", \"certificate\": \" \\n x \\t\"}", NULL), 0);
    assert_int_equal(
        read_body("PUT", path, "{" LICENSE_BODY ", \"certificate\": 1}", "LICENSE_CERTIFICATE"),
        -EINVAL);
    assert_int_equal(
        read_body("POST", "/v1/management/license/offlinemode", "{\"offline\": false}", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/management/license/offlinemode",
                               "{\"offline\": true, \"x\": 1}", "offline"),
                     -EINVAL);
    assert_int_equal(read_body("POST", "/v1/management/license/network", "{}", NULL), 0);
    assert_int_equal(read_body("POST", "/v1/management/license/network", "{", "malformed JSON"),
                     -EINVAL);
    /* routes that read no body */
    assert_int_equal(read_body("GET", "/v1/status", NULL, NULL), -ENOENT);
    assert_int_equal(read_body("DELETE", "/v1/management/license", NULL, NULL), -ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_and_usage),
        cmocka_unit_test(management),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
