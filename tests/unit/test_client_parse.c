/* Unit tests of libtpmlic's reading of answers: the HTTP exchange of
 * client/conn.c fed over a socketpair (tests/lib/client_feed.c) and the
 * JSON decoders of client/answer.c. No agent: every answer is written
 * here, including what a real agent never sends. Inputs that the fuzz
 * harness tests/fuzz/fuzz_client_answer.c found troublesome are kept here
 * as regressions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/answer.h"
#include "client/conn.h"
#include "tests/lib/client_feed.h"

static struct client_answer ans;
static enum client_stage stage;
static char err[512];

/* The exchange's result for answer s (closed after it). */
static int feed(const char *s) {
    free(ans.body);
    ans = (struct client_answer){0};
    err[0] = '\0';
    return client_feed(s, strlen(s), false, false, 2000, &ans, &stage, err, sizeof(err));
}

static void ok_answer_keeps_the_connection(void **state) {
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: 2\r\n\r\n{}"),
                     0);
    assert_int_equal(ans.status, 200);
    assert_int_equal(ans.body_len, 2);
    assert_string_equal(ans.body, "{}");
    assert_false(ans.close);
    /* header names in any case, values with white space around them */
    assert_int_equal(feed("HTTP/1.1 403 Forbidden\r\ncontent-length:   5 \r\n\r\nabcde"), 0);
    assert_int_equal(ans.status, 403);
    assert_string_equal(ans.body, "abcde");
    /* no reason phrase */
    assert_int_equal(feed("HTTP/1.1 204\r\n\r\n"), 0);
    assert_int_equal(ans.status, 204);
    assert_int_equal(ans.body_len, 0);
}

static void connection_close_rules(void **state) {
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_true(ans.close);
    assert_int_equal(feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_true(ans.close);
    assert_int_equal(feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
                     0);
    assert_false(ans.close);
    /* bytes nobody asked for behind the body: the connection is done */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n"), 0);
    assert_string_equal(ans.body, "x");
    assert_true(ans.close);
    /* no length: the body is what comes until the end */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\n\r\n{\"a\":1}"), 0);
    assert_string_equal(ans.body, "{\"a\":1}");
    assert_true(ans.close);
}

static void interim_answers_are_skipped(void **state) {
    assert_int_equal(feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                          "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"),
                     0);
    assert_int_equal(ans.status, 201);
    assert_string_equal(ans.body, "abc");
    /* an interim answer and then nothing: broken, not silent */
    assert_int_equal(feed("HTTP/1.1 100 Continue\r\n\r\n"), -ECONNRESET);
    assert_int_equal(stage, CLIENT_FAILED);
    assert_non_null(strstr(err, "mid-answer"));
}

static void head_and_no_body_statuses(void **state) {
    static const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    struct client_answer h = {0};
    assert_int_equal(client_feed(a, strlen(a), true, true, 500, &h, &stage, err, sizeof(err)), 0);
    assert_int_equal(h.body_len, 0);
    assert_string_equal(h.body, "");
    free(h.body);
    assert_int_equal(feed("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), 0);
    assert_int_equal(ans.body_len, 0);
}

static void silent_and_broken_answers(void **state) {
    static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    struct client_answer h = {0};
    /* closed before any byte: the request may be repeated if it is harmless */
    assert_int_equal(feed(""), -ECONNRESET);
    assert_int_equal(stage, CLIENT_SENT_LOST);
    assert_non_null(strstr(err, "without answering"));
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Le"), -ECONNRESET);
    assert_int_equal(stage, CLIENT_FAILED);
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), -ECONNRESET);
    assert_int_equal(stage, CLIENT_FAILED);
    assert_non_null(strstr(err, "mid-answer"));
    /* a body that never comes: the deadline */
    assert_int_equal(
        client_feed(partial, strlen(partial), false, true, 200, &h, &stage, err, sizeof(err)),
        -ETIMEDOUT);
    assert_int_equal(stage, CLIENT_FAILED);
    assert_non_null(strstr(err, "did not answer in time"));
    assert_int_equal(client_feed("", 0, false, true, 200, &h, &stage, err, sizeof(err)),
                     -ETIMEDOUT);
    assert_int_equal(stage, CLIENT_FAILED);
}

static void garbage_is_refused(void **state) {
    static const char *const bad[] = {
        "HELLO THERE\r\n\r\n",      "HTTP/2 200 OK\r\n\r\n",      "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 600 Huh\r\n\r\n", "HTTP/1.1 099 Early\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",   "http/1.1 200 OK\r\n\r\n",    "\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(feed(bad[i]), -EPROTO);
        assert_int_equal(stage, CLIENT_FAILED);
        assert_non_null(strstr(err, "not HTTP/1.x"));
    }
}

static void headers_that_are_refused(void **state) {
    assert_int_equal(
        feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"), -EPROTO);
    assert_non_null(strstr(err, "chunked"));
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 1"
                          "\r\n\r\nx"),
                     0);
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
                     -EPROTO);
    assert_non_null(strstr(err, "repeats the header Content-Length"));
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nConnection: close\r\nconnection: keep-alive\r\n"
                          "Content-Length: 0\r\n\r\n"),
                     -EPROTO);
    static const char *const lengths[] = {"-1", "1x", "0x10", "", "1234567890", "+5", "1 2"};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        char a[128];
        snprintf(a, sizeof(a), "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", lengths[i]);
        assert_int_equal(feed(a), -EPROTO);
        assert_non_null(strstr(err, "not a number"));
    }
    /* a header named like ours but longer is someone else's */
    assert_int_equal(feed("HTTP/1.1 200 OK\r\nContent-Length-X: 7\r\nContent-Length: 1\r\n\r\nx"),
                     0);
    assert_string_equal(ans.body, "x");
}

static void size_caps(void **state) {
    char a[256], *big;
    size_t n;
    /* refused from the header alone: nothing of the body is read or
     * allocated (the answer below has none, and closing is not waited for) */
    struct client_answer h = {0};
    uint64_t t0 = client_now_ns();
    snprintf(a, sizeof(a), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", CLIENT_BODY_MAX + 1);
    assert_int_equal(client_feed(a, strlen(a), false, true, 5000, &h, &stage, err, sizeof(err)),
                     -EFBIG);
    assert_true(client_now_ns() - t0 < 1000000000ull);
    assert_non_null(strstr(err, "over the limit"));
    snprintf(a, sizeof(a), "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n");
    assert_int_equal(feed(a), -EFBIG);
    /* a head longer than CLIENT_HEADER_MAX */
    n = CLIENT_HEADER_MAX + 100;
    big = malloc(n + 1);
    assert_non_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', n - 20);
    big[n] = '\0';
    assert_int_equal(feed(big), -EPROTO);
    assert_non_null(strstr(err, "headers are longer than"));
    free(big);
    /* a body without length beyond CLIENT_BODY_MAX */
    n = CLIENT_BODY_MAX + 1000;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'b', n);
    memcpy(big, "HTTP/1.1 200 OK\r\n\r\n", 19);
    big[n] = '\0';
    assert_int_equal(feed(big), -EFBIG);
    assert_non_null(strstr(err, "over the limit"));
    /* and one of exactly CLIENT_BODY_MAX is read whole */
    big[19 + CLIENT_BODY_MAX] = '\0';
    assert_int_equal(feed(big), 0);
    assert_int_equal(ans.body_len, CLIENT_BODY_MAX);
    free(big);
}

/* ---- the JSON decoders --------------------------------------------------------- */

static json_t *object(const char *s) {
    char msg[256];
    json_t *o = NULL;
    assert_int_equal(client_decode_object(s, strlen(s), &o, msg, sizeof(msg)), 0);
    return o;
}

static void decode_object_is_strict(void **state) {
    static const char *const bad[] = {"", "[]", "1", "{\"a\":1,\"a\":2}", "{} {}", "{", "null"};
    char msg[256];
    json_t *o = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(client_decode_object(bad[i], strlen(bad[i]), &o, msg, sizeof(msg)),
                         -EPROTO);
        assert_non_null(strstr(msg, "not a JSON object"));
    }
}

static void decode_lease_and_commit(void **state) {
    struct tpmlic_lease l;
    uint64_t charged = 0, returned = 0;
    char msg[256];
    json_t *o;

    o = object("{\"lease\":\"0123abcd\",\"seconds\":30,\"expires_in\":90,\"new\":true}");
    assert_int_equal(client_decode_lease(o, &l, msg, sizeof(msg)), 0);
    assert_string_equal(l.id, "0123abcd");
    assert_int_equal(l.seconds, 30);
    assert_int_equal(l.expires_in, 90);
    json_decref(o);
    static const char *const bad[] = {
        "{\"seconds\":30,\"expires_in\":90}",
        "{\"lease\":\"\",\"seconds\":30,\"expires_in\":90}",
        "{\"lease\":\"a b\",\"seconds\":30,\"expires_in\":90}",
        "{\"lease\":\"x\",\"seconds\":-1,\"expires_in\":90}",
        "{\"lease\":\"x\",\"seconds\":4294967296,\"expires_in\":90}",
        "{\"lease\":\"x\",\"seconds\":\"30\",\"expires_in\":90}",
        "{\"lease\":\"x\",\"seconds\":30}",
        "{\"lease\":\"0123456789012345678901234567890123456789012345678901234567890123\","
        "\"seconds\":1,\"expires_in\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = object(bad[i]);
        memset(&l, 0x5a, sizeof(l));
        assert_int_equal(client_decode_lease(o, &l, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "tpmlicd's reservation answer: field '"));
        assert_int_equal(l.seconds, 0x5a5a5a5a); /* nothing written */
        json_decref(o);
    }
    o = object("{\"charged\":12,\"returned\":18}");
    assert_int_equal(client_decode_commit(o, &charged, &returned, msg, sizeof(msg)), 0);
    assert_int_equal(charged, 12);
    assert_int_equal(returned, 18);
    json_decref(o);
    o = object("{\"charged\":12,\"returned\":1.5}");
    assert_int_equal(client_decode_commit(o, &charged, &returned, msg, sizeof(msg)), -EPROTO);
    assert_non_null(strstr(msg, "'returned' must be a whole number"));
    json_decref(o);
}

#define STATUS_OK                                                                                  \
    "\"licensed\":true,\"valid\":true,\"reason\":\"License is valid\",\"license_type\":"           \
    "\"consumption\",\"features\":[\"standard\",\"enhanced\"],\"secs_remaining\":3600,"            \
    "\"offline_mode\":true,\"computer_id\":\"fcf0da4e-62e1-8f98-ac7a-41fdba0e7bed\""

static int status_of(const char *json, struct tpmlic_status *st, char *msg, size_t msglen) {
    json_t *o = object(json);
    int r = client_decode_status(o, st, msg, msglen);
    json_decref(o);
    return r;
}

static void decode_status(void **state) {
    struct tpmlic_status st;
    char msg[256];

    assert_int_equal(status_of("{" STATUS_OK ",\"subscription_expiry\":\"2027-01-31T00:00:00Z\","
                               "\"grace_period_end\":null,\"tpm\":{\"ok\":true}}",
                               &st, msg, sizeof(msg)),
                     0);
    assert_true(st.licensed && st.valid && st.offline_mode);
    assert_string_equal(st.reason, "License is valid");
    assert_string_equal(st.license_type, "consumption");
    assert_string_equal(st.features, "standard,enhanced");
    assert_int_equal(st.subscription_expiry, 1801353600);
    assert_int_equal(st.grace_period_end, 0);
    assert_int_equal(st.secs_remaining, 3600);
    assert_string_equal(st.computer_id, "fcf0da4e-62e1-8f98-ac7a-41fdba0e7bed");
    /* unlicensed: most fields null or absent */
    assert_int_equal(status_of("{\"licensed\":false,\"valid\":false,\"reason\":\"License is "
                               "invalid\",\"license_type\":null,\"features\":[],"
                               "\"secs_remaining\":0,\"subscription_expiry\":null}",
                               &st, msg, sizeof(msg)),
                     0);
    assert_false(st.licensed);
    assert_string_equal(st.features, "");
    assert_string_equal(st.license_type, "");

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"valid\":true,\"secs_remaining\":1}", "'licensed' is missing"},
        {"{\"licensed\":1,\"valid\":true,\"secs_remaining\":1}", "'licensed' must be true"},
        {"{\"licensed\":true,\"valid\":true}", "'secs_remaining' is missing"},
        {"{" STATUS_OK ",\"subscription_expiry\":\"2027-01-31T00:00:00\"}", "subscription_expiry"},
        {"{" STATUS_OK ",\"subscription_expiry\":\"2027-01-31T00:00:00.5Z\"}",
         "subscription_expiry"},
        {"{" STATUS_OK ",\"subscription_expiry\":\"2027-02-30T00:00:00Z\"}", "subscription_expiry"},
        {"{" STATUS_OK ",\"grace_period_end\":12345}", "grace_period_end"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"features\":\"standard\"}",
         "'features' must be an array"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"features\":[\"a,b\"]}",
         "without commas"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"features\":[1]}",
         "without commas"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"reason\":\"a\\nb\"}",
         "'reason' contains characters"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"license_type\":\"x y\"}",
         "'license_type' contains characters"},
        {"{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"computer_id\":"
         "\"0123456789012345678901234567890123456789\"}",
         "'computer_id' is longer"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&st, 0x5a, sizeof(st));
        assert_int_equal(status_of(bad[i].json, &st, msg, sizeof(msg)), -EPROTO);
        if (!strstr(msg, bad[i].field))
            fail_msg("%s: '%s' does not name %s", bad[i].json, msg, bad[i].field);
        assert_non_null(strstr(msg, "tpmlicd's status answer: "));
        assert_int_equal(st.secs_remaining, 0x5a5a5a5a5a5a5a5aull); /* nothing written */
    }
}

static void features_that_do_not_fit(void **state) {
    char json[4096] = "{\"licensed\":true,\"valid\":true,\"secs_remaining\":1,\"features\":[";
    struct tpmlic_status st;
    char msg[256];
    /* 16 names of 32 characters (the most a license holds) fit; 20 do not */
    for (int i = 0; i < 20; i++) {
        char name[40];
        snprintf(name, sizeof(name), "%s\"f%031d\"", i ? "," : "", i);
        strcat(json, name);
        if (i == 15) {
            char done[sizeof(json) + 2];
            snprintf(done, sizeof(done), "%s]}", json);
            assert_int_equal(status_of(done, &st, msg, sizeof(msg)), 0);
            assert_int_equal(strlen(st.features), 16 * 32 + 15);
        }
    }
    strcat(json, "]}");
    assert_int_equal(status_of(json, &st, msg, sizeof(msg)), -EPROTO);
    assert_non_null(strstr(msg, "more than 639 characters"));
}

static void errors_and_their_messages(void **state) {
    char msg[512];
    static const char refused[] = "{\"allowed\":false,\"error\":\"You are not authorised\","
                                  "\"code\":403}";
    static const char denied[] = "{\"error\":\"permission denied: GET /x needs ...\"}";

    assert_int_equal(client_answer_error(200, "{}", 2, msg, sizeof(msg)), 0);
    assert_int_equal(client_answer_error(403, refused, strlen(refused), msg, sizeof(msg)), -EPERM);
    assert_string_equal(msg, "You are not authorised");
    assert_int_equal(client_answer_error(403, denied, strlen(denied), msg, sizeof(msg)), -EACCES);
    /* not JSON, or JSON without a text: the status and the start of the body */
    assert_int_equal(client_answer_error(500, "oops", 4, msg, sizeof(msg)), -EIO);
    assert_string_equal(msg, "tpmlicd answered HTTP 500: oops");
    assert_int_equal(client_answer_error(404, "{\"error\":7}", 11, msg, sizeof(msg)), -ENOENT);
    assert_string_equal(msg, "tpmlicd answered HTTP 404: {\"error\":7}");
    assert_int_equal(client_answer_error(403, NULL, 0, msg, sizeof(msg)), -EPERM);
    /* a duplicate key is no error text either (the JSON is refused whole) */
    assert_int_equal(
        client_status_errno(403, "{\"error\":\"permission denied\",\"error\":\"x\"}", 44), -EPERM);
    assert_int_equal(client_status_errno(429, NULL, 0), -EAGAIN);
    assert_int_equal(client_status_errno(302, NULL, 0), -EPROTO);
}

static int teardown(void **state) {
    free(ans.body);
    ans = (struct client_answer){0};
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_answer_keeps_the_connection),
        cmocka_unit_test(connection_close_rules),
        cmocka_unit_test(interim_answers_are_skipped),
        cmocka_unit_test(head_and_no_body_statuses),
        cmocka_unit_test(silent_and_broken_answers),
        cmocka_unit_test(garbage_is_refused),
        cmocka_unit_test(headers_that_are_refused),
        cmocka_unit_test(size_caps),
        cmocka_unit_test(decode_object_is_strict),
        cmocka_unit_test(decode_lease_and_commit),
        cmocka_unit_test(decode_status),
        cmocka_unit_test(features_that_do_not_fit),
        cmocka_unit_test(errors_and_their_messages),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
