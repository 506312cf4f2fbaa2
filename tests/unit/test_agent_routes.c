/* Unit tests for the request-body readers of tpmlicd's routes
 * (agent_routes_read_body): what each route accepts before its domain
 * call, and the 400 it gives otherwise, without a TPM or a ledger; and the
 * proxy settings of POST /v1/management/license/network (agent_netconf_set
 * into a temporary state directory, agent_netconf_proxy reading them back). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/http.h"
#include "agent/netconf.h"
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

/* agent_netconf_set on body in a fresh state directory: its result, and
 * what agent_netconf_proxy reads back (*ret_url, *ret_userpwd; freed by the
 * caller) when it was stored. */
static int set_proxy(const char *body, char **ret_url, char **ret_userpwd) {
    char dir[] = "/tmp/tpmlic-netconf-test.XXXXXX", path[64], err[256] = "";
    json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, NULL), *shown = NULL;
    int fd, r;

    assert_non_null(o);
    assert_non_null(mkdtemp(dir));
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    r = agent_netconf_set(fd, o, &shown, err, sizeof(err));
    if (r == 0)
        assert_int_equal(agent_netconf_proxy(fd, ret_url, ret_userpwd), 0);
    else
        assert_true(err[0]);
    json_decref(shown);
    json_decref(o);
    close(fd);
    snprintf(path, sizeof(path), "%s/network.json", dir);
    unlink(path);
    rmdir(dir);
    return r;
}

#define PROXY(ip) "{\"http_configuration\": {\"ip\": \"" ip "\", \"port\": 3128}}"

/* Found by fuzz_agent_bodies: a host with a stray bracket or colon was
 * stored, and gave a proxy URL that libcurl cannot parse. */
static void network_host_makes_a_url(void **state) {
    static const char *const bad[] = {PROXY("["),    PROXY("]com"),      PROXY("a]b"),
                                      PROXY("[::1"), PROXY("host:3128"), PROXY("[1.2.3.4]"),
                                      PROXY("[]")};
    char *url = NULL, *userpwd = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (set_proxy(bad[i], &url, &userpwd) != -EINVAL)
            fail_msg("%s was accepted", bad[i]);
    assert_int_equal(set_proxy(PROXY("proxy.example.com"), &url, &userpwd), 0);
    assert_string_equal(url, "http://proxy.example.com:3128");
    free(url);
    assert_int_equal(set_proxy(PROXY("2001:db8::1"), &url, &userpwd), 0);
    assert_string_equal(url, "http://[2001:db8::1]:3128");
    free(url);
    assert_int_equal(set_proxy(PROXY("[2001:db8::1]"), &url, &userpwd), 0);
    assert_string_equal(url, "http://[2001:db8::1]:3128");
    free(url);
    assert_null(userpwd);
}

/* Found by fuzz_agent_bodies: a user with a ':' reached libcurl as
 * "a:b:PASSWORD", which it reads as user "a", password "b:PASSWORD". */
static void network_user_without_colon(void **state) {
    char *url = NULL, *userpwd = NULL;

    assert_int_equal(set_proxy("{\"http_configuration\": {\"ip\": \"p\", \"port\": 1, "
                               "\"user\": \"a:b\", \"password\": \"c\"}}",
                               &url, &userpwd),
                     -EINVAL);
    assert_int_equal(set_proxy("{\"http_configuration\": {\"ip\": \"p\", \"port\": 1, "
                               "\"user\": \"ab\", \"password\": \"c:d\"}}",
                               &url, &userpwd),
                     0);
    assert_string_equal(userpwd, "ab:c:d");
    free(url);
    free(userpwd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_and_usage),
        cmocka_unit_test(management),
        cmocka_unit_test(network_host_makes_a_url),
        cmocka_unit_test(network_user_without_colon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
