/* tpmlic-server's pure parts, without a database or the network: networks
 * and the X-Forwarded-For walk, connections per address (checked against a
 * plain count under many random opens and closes), the activation token
 * bucket and its table when full, the route table's matching, how an
 * operation's error names a field for the CLI and for the API, the admin
 * API's body readers, the webhook signature (a vector computed with
 * Python's hmac), and the metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "server/api.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "server/ops.h"
#include "server/webhook.h"

static struct srv_addr addr(const char *s) {
    struct srv_addr a;
    assert_int_equal(srv_addr_parse(s, &a), 0);
    return a;
}

static bool in(const struct srv_cidrs *l, const char *s) {
    struct srv_addr a = addr(s);
    return srv_cidrs_match(l, &a);
}

static void addresses_and_networks(void **state) {
    struct srv_cidrs list = {0};
    struct srv_addr a;
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    char text[SRV_ADDR_STRLEN], bad[64];

    assert_int_equal(srv_addr_parse("not an address", &a), -EINVAL);
    assert_int_equal(srv_addr_parse("300.1.1.1", &a), -EINVAL);
    a = addr("2001:db8::1");
    srv_addr_format(&a, text);
    assert_string_equal(text, "2001:db8::1");
    inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
    assert_int_equal(srv_addr_from_sockaddr((struct sockaddr *)&s4, &a), 0);
    srv_addr_format(&a, text);
    assert_string_equal(text, "192.0.2.7");

    assert_int_equal(srv_cidrs_parse(&list, "10.0.0.0/8, 192.0.2.1 2001:db8::/32,127.0.0.1/32", bad,
                                     sizeof(bad)),
                     0);
    assert_int_equal(list.n, 4);
    assert_true(in(&list, "10.200.3.4"));
    assert_false(in(&list, "11.0.0.1"));
    assert_true(in(&list, "192.0.2.1"));
    assert_false(in(&list, "192.0.2.2"));
    assert_true(in(&list, "2001:db8:ffff::9"));
    assert_false(in(&list, "2001:db9::1"));
    /* an IPv4 network never matches an IPv6 address with the same bits */
    assert_false(in(&list, "::a00:1"));
    srv_cidrs_free(&list);
    /* host bits do not count; /0 is everything of its family */
    assert_int_equal(srv_cidrs_parse(&list, "192.0.2.77/24,0.0.0.0/0", NULL, 0), 0);
    assert_true(in(&list, "192.0.2.1"));
    assert_true(in(&list, "8.8.8.8"));
    assert_false(in(&list, "::1"));
    srv_cidrs_free(&list);
    for (const char *const *p = (const char *const[]){"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x",
                                                      "::/129", "proxy.example.com", NULL};
         *p; p++) {
        assert_int_equal(srv_cidrs_parse(&list, *p, bad, sizeof(bad)), -EINVAL);
        assert_string_equal(bad, *p);
        srv_cidrs_free(&list);
    }
    assert_int_equal(srv_cidrs_parse(&list, "", bad, sizeof(bad)), 0);
    assert_int_equal(list.n, 0);
}

static void client_behind_trusted_proxies(void **state) {
    struct srv_cidrs trusted = {0};
    struct srv_addr peer = addr("10.0.0.5"), c;
    char text[SRV_ADDR_STRLEN];

    assert_int_equal(srv_cidrs_parse(&trusted, "10.0.0.0/8", NULL, 0), 0);
#define CLIENT(xff, want, forwarded)                                                               \
    do {                                                                                           \
        assert_int_equal(srv_client_address(&peer, xff, &trusted, &c), forwarded);                 \
        srv_addr_format(&c, text);                                                                 \
        assert_string_equal(text, want);                                                           \
    } while (0)
    CLIENT(NULL, "10.0.0.5", false);
    CLIENT("203.0.113.9", "203.0.113.9", true);
    CLIENT("198.51.100.1, 203.0.113.9", "203.0.113.9", true); /* the rightmost untrusted */
    CLIENT("198.51.100.1,10.1.1.1,  10.2.2.2 ", "198.51.100.1", true);
    CLIENT("10.1.1.1, 10.2.2.2", "10.1.1.1", true); /* every hop trusted: the leftmost */
    CLIENT("junk, 203.0.113.9", "203.0.113.9", true);
    CLIENT("203.0.113.9, junk", "10.0.0.5", false); /* junk next to us: nothing believed */
    CLIENT("", "10.0.0.5", false);
    CLIENT(",,,", "10.0.0.5", false);
    CLIENT("2001:db8::7", "2001:db8::7", true);
    /* a peer that is not a trusted proxy is the client, whatever it says */
    peer = addr("192.0.2.1");
    CLIENT("203.0.113.9", "192.0.2.1", false);
#undef CLIENT
    srv_cidrs_free(&trusted);
}

static void connections_per_address_and_in_all(void **state) {
    struct srv_conns c;
    struct srv_addr a = addr("192.0.2.1"), b = addr("192.0.2.2");
    unsigned ref[64] = {0}, total = 0;

    assert_int_equal(srv_conns_init(&c, 3, 5), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(srv_conns_admit(&c, &a), 0);
        srv_conns_open(&c, &a);
    }
    assert_int_equal(srv_conns_admit(&c, &a), -EUSERS);
    assert_int_equal(srv_conns_admit(&c, &b), 0);
    srv_conns_open(&c, &b);
    srv_conns_open(&c, &b);
    assert_int_equal(srv_conns_total(&c), 5);
    assert_int_equal(srv_conns_admit(&c, &b), -EMFILE);
    srv_conns_close(&c, &a);
    assert_int_equal(srv_conns_count(&c, &a), 2);
    assert_int_equal(srv_conns_admit(&c, &a), 0);
    /* closing an address never seen changes nothing */
    {
        struct srv_addr z = addr("198.51.100.1");
        srv_conns_close(&c, &z);
    };
    assert_int_equal(srv_conns_total(&c), 4);
    srv_conns_destroy(&c);

    /* many addresses opening and closing at random: the table agrees with
     * a plain count (deletion keeps every probe chain) */
    assert_int_equal(srv_conns_init(&c, 0, 100000), 0);
    srand(7);
    for (int step = 0; step < 200000; step++) {
        unsigned k = (unsigned)rand() % 64;
        char s[32];
        struct srv_addr x;
        snprintf(s, sizeof(s), "10.%u.%u.1", k % 4, k);
        x = addr(s);
        if (ref[k] && rand() % 2) {
            srv_conns_close(&c, &x);
            ref[k]--;
            total--;
        } else {
            srv_conns_open(&c, &x);
            ref[k]++;
            total++;
        }
    }
    for (unsigned k = 0; k < 64; k++) {
        char s[32];
        snprintf(s, sizeof(s), "10.%u.%u.1", k % 4, k);
        {
            struct srv_addr z = addr(s);
            assert_int_equal(srv_conns_count(&c, &z), ref[k]);
        }
    }
    assert_int_equal(srv_conns_total(&c), total);
    srv_conns_destroy(&c);
}

static void activation_rate_per_address(void **state) {
    struct srv_rate r;
    struct srv_addr a = addr("192.0.2.1"), b = addr("192.0.2.2");
    unsigned retry = 0;
    uint64_t t = 1000000;

    /* 6 a minute, 2 at once */
    assert_int_equal(srv_rate_init(&r, 6, 2, 100), 0);
    assert_true(srv_rate_take(&r, &a, t, &retry));
    assert_true(srv_rate_take(&r, &a, t, &retry));
    assert_false(srv_rate_take(&r, &a, t, &retry));
    assert_int_equal(retry, 10);                   /* one token every 10 s */
    assert_true(srv_rate_take(&r, &b, t, &retry)); /* its own bucket */
    assert_false(srv_rate_take(&r, &a, t + 9000, &retry));
    assert_int_equal(retry, 1);
    assert_true(srv_rate_take(&r, &a, t + 10100, &retry));
    assert_false(srv_rate_take(&r, &a, t + 10100, &retry));
    /* a long pause fills the bucket to the burst, no more */
    assert_true(srv_rate_take(&r, &a, t + 3600000, &retry));
    assert_true(srv_rate_take(&r, &a, t + 3600000, &retry));
    assert_false(srv_rate_take(&r, &a, t + 3600000, &retry));
    srv_rate_destroy(&r);

    /* a full table: what is forgotten first is the addresses whose bucket
     * has filled again (as if never seen), then the older ones; the table
     * never grows past its size, and the newest addresses stay limited */
    assert_int_equal(srv_rate_init(&r, 60, 1, 8), 0);
    assert_true(srv_rate_take(&r, &a, t, &retry));
    for (int i = 0; i < 50; i++) {
        char s[32];
        struct srv_addr z;
        snprintf(s, sizeof(s), "198.51.100.%d", i);
        z = addr(s);
        assert_true(srv_rate_take(&r, &z, t + 2000 + (uint64_t)i, &retry));
        assert_false(srv_rate_take(&r, &z, t + 2000 + (uint64_t)i, &retry));
        assert_true(r.used <= 8);
    }
    srv_rate_destroy(&r);

    /* rate 0: no limit */
    assert_int_equal(srv_rate_init(&r, 0, 1, 8), 0);
    for (int i = 0; i < 100; i++)
        assert_true(srv_rate_take(&r, &a, t, &retry));
    srv_rate_destroy(&r);
}

static void route_table(void **state) {
    const char *params[SRV_API_PARAMS];
    char allow[64], buf[256];
    const struct srv_route *r;
    bool ok;

#define FIND(m, p) srv_route_find(m, p, &ok, allow, sizeof(allow), buf, sizeof(buf), params)
    r = FIND("GET", "/admin/v1/licenses/ACME-1");
    assert_non_null(r);
    assert_true(ok);
    assert_string_equal(r->path, "/admin/v1/licenses/{code}");
    assert_string_equal(params[0], "ACME-1");
    assert_int_equal(r->scope, SRV_SCOPE_READ);
    r = FIND("POST", "/admin/v1/activations/abc/transfer");
    assert_true(ok);
    assert_string_equal(params[0], "abc");
    assert_int_equal(r->scope, SRV_SCOPE_WRITE);
    r = FIND("PUT", "/admin/v1/licenses/ACME-1");
    assert_non_null(r);
    assert_false(ok);
    assert_string_equal(allow, "GET, PATCH, DELETE");
    assert_null(FIND("GET", "/admin/v1/licenses/ACME-1/"));
    assert_null(FIND("GET", "/admin/v1/licenses//suspend"));
    assert_null(FIND("GET", "/admin/v1"));
    assert_null(FIND("GET", "admin/v1/licenses"));
    r = FIND("GET", "/v1/validate");
    assert_false(ok);
    assert_string_equal(allow, "POST");
    r = FIND("POST", "/v1/validate");
    assert_int_equal(r->kind, SRV_ROUTE_VALIDATE);
    assert_int_equal(r->scope, SRV_SCOPE_NONE);
    /* the audit log has no route that changes it */
    r = FIND("DELETE", "/admin/v1/audit");
    assert_false(ok);
    assert_string_equal(allow, "GET");
    /* every admin route needs a token and has a handler */
    for (size_t i = 0; i < srv_nroutes; i++)
        if (srv_routes[i].kind == SRV_ROUTE_ADMIN) {
            assert_true(srv_routes[i].scope >= SRV_SCOPE_READ);
            assert_non_null(srv_routes[i].handler);
        }
#undef FIND
}

static void operation_errors_name_the_field(void **state) {
    struct srv_operr e = {0};
    char out[200];
    uint64_t v;

    assert_int_equal(srv_term_parse("tick_secs", "0", &v, &e), -EINVAL);
    srv_operr_text(&e, SRV_FIELD_OPTION, out, sizeof(out));
    assert_string_equal(out, "--tick-secs must be 1 to 86400");
    srv_operr_text(&e, SRV_FIELD_JSON, out, sizeof(out));
    assert_string_equal(out, "'tick_secs' must be 1 to 86400");
    assert_int_equal(srv_term_parse("max_activations", "lots", &v, &e), -EINVAL);
    srv_operr_text(&e, SRV_FIELD_OPTION, out, sizeof(out));
    assert_string_equal(out, "--max-activations must be 0 to 1000000");
    assert_int_equal(srv_term_parse("cache_secs", "99999999999999999999", &v, &e), -EINVAL);
    assert_int_equal(srv_term_parse("cache_secs", "-1", &v, &e), -EINVAL);
    assert_int_equal(srv_term_parse("cache_secs", "", &v, &e), -EINVAL);
    assert_int_equal(srv_term_parse("cache_secs", "7200", &v, &e), 0);
    assert_int_equal(v, 7200);
    assert_int_equal(srv_term_check("no_such_term", 1, &e), -EINVAL);
    /* a message too long for its buffer is cut, never overrun */
    snprintf(e.field, sizeof(e.field), "secs_allocated");
    snprintf(e.msg, sizeof(e.msg), "%%F %%F %%F %%F %%F");
    srv_operr_text(&e, SRV_FIELD_OPTION, out, 20);
    assert_int_equal(strlen(out), 19);
}

static void admin_body_readers(void **state) {
    char msg[300];
#define BODY(path, method, text, want)                                                             \
    assert_int_equal(                                                                              \
        srv_api_parse_body(SRV_API_PREFIX path, method, text, strlen(text), msg, sizeof(msg)),     \
        want)
    BODY("/licenses", "POST",
         "{\"code\": \"A\", \"product\": \"p\", \"customer_id\": 1, "
         "\"license_type\": \"perpetual\", \"features\": [\"x\"]}",
         0);
    BODY("/licenses", "POST", "{\"code\": 7}", -EINVAL);
    BODY("/licenses", "POST", "{\"license_type\": \"forever\"}", -EINVAL);
    assert_non_null(strstr(msg, "perpetual, time-limited"));
    BODY("/licenses", "POST", "{\"expiry\": \"tomorrow\"}", -EINVAL);
    BODY("/licenses", "POST", "{\"features\": \"a,b\"}", -EINVAL);
    BODY("/licenses", "POST",
         "{\"features\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\","
         "\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}",
         -EINVAL);
    BODY("/licenses", "POST", "{\"max_activations\": -1}", -EINVAL);
    BODY("/licenses", "POST", "{\"max_activations\": 1.5}", -EINVAL);
    BODY("/licenses", "POST", "{\"offline_allowed\": \"yes\"}", -EINVAL);
    BODY("/licenses", "POST", "{\"colour\": \"blue\"}", -EINVAL);
    assert_non_null(strstr(msg, "unknown field 'colour'"));
    BODY("/licenses/{code}", "PATCH", "{\"expiry\": null}", 0);
    BODY("/licenses/{code}", "PATCH", "{\"code\": \"B\"}", -EINVAL);
    BODY("/licenses/{code}", "PATCH", "{\"a\": 1, \"a\": 2}", -EINVAL);
    BODY("/licenses/{code}", "PATCH", "[1]", -EINVAL);
    BODY("/licenses/{code}", "PATCH", "", 0);
    BODY("/offline-activations", "POST", "{}", -EINVAL);
    BODY("/offline-activations", "POST", "{\"activation_certificate\": \"x\", \"secs_granted\": 5}",
         0);
    BODY("/activations/{id}/transfer", "POST", "{\"to_computer_id\": \"a b\"}", -EINVAL);
    BODY("/cull", "POST", "{\"dry_run\": 1}", -EINVAL);
    BODY("/cull", "POST", "{\"dry_run\": true}", 0);
    BODY("/tokens", "POST", "{\"scope\": \"root\", \"name\": \"x\"}", -EINVAL);
    BODY("/tokens", "POST", "{\"scope\": \"read\"}", -EINVAL);
    BODY("/tokens", "POST", "{\"scope\": \"read\", \"name\": \"billing\"}", 0);
    BODY("/webhooks", "POST", "{\"url\": \"https://x/\", \"events\": [1]}", -EINVAL);
    BODY("/webhooks", "POST", "{\"url\": \"https://x/\", \"events\": [\"activation\"]}", 0);
#undef BODY
}

static void webhook_signature(void **state) {
    char sig[SRV_SIGNATURE_BUFLEN];
    /* python3: hmac.new(b"3f2a", b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    assert_int_equal(srv_webhook_signature("3f2a", 1700000000, "{\"a\":1}", sig, sizeof(sig)), 0);
    assert_string_equal(sig, "t=1700000000,v1="
                             "b66d76c5e360eff7841d29a591ac163196c5f9e8e77cbd503a3f8c5194d5dea8");
    assert_int_equal(srv_webhook_signature("3f2b", 1700000000, "{\"a\":1}", sig, sizeof(sig)), 0);
    assert_null(strstr(sig, "b66d76c5"));
}

static void metrics_text(void **state) {
    struct srv_metrics m;
    struct srv_metrics_db d = {.licenses = 3, .activations_active = 2, .db_up = true};
    char *text;

    srv_metrics_init(&m);
    srv_metrics_request(&m, SRV_ROUTE_VALIDATE, 200, 0.002);
    srv_metrics_request(&m, SRV_ROUTE_VALIDATE, 403, 0.0001);
    srv_metrics_request(&m, SRV_ROUTE_VALIDATE, 200, 20);
    srv_metrics_decision(&m, SRV_REQ_VALIDATE, "stale_epoch");
    srv_metrics_decision(&m, SRV_REQ_VALIDATE, "");
    srv_metrics_decision(&m, SRV_REQ_VALIDATE, "something_new");
    text = srv_metrics_render(&m, &d);
    assert_non_null(text);
    assert_non_null(
        strstr(text, "tpmlic_server_requests_total{route=\"validate\",code=\"200\"} 2\n"));
    assert_non_null(
        strstr(text, "tpmlic_server_requests_total{route=\"validate\",code=\"403\"} 1\n"));
    assert_non_null(strstr(
        text,
        "tpmlic_server_request_duration_seconds_bucket{route=\"validate\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(
        text, "tpmlic_server_request_duration_seconds_bucket{route=\"validate\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "tpmlic_server_decisions_total{request=\"validate\",result="
                                 "\"refused\",reason=\"stale_epoch\"} 1\n"));
    assert_non_null(strstr(text, "reason=\"other\"} 1\n"));
    assert_non_null(strstr(text, "tpmlic_server_licenses 3\n"));
    assert_non_null(strstr(text, "# TYPE tpmlic_server_build_info gauge\n"));
    free(text);
    d.db_up = false;
    text = srv_metrics_render(&m, &d);
    assert_non_null(strstr(text, "tpmlic_server_database_up 0\n"));
    assert_null(strstr(text, "tpmlic_server_licenses "));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_and_networks),
        cmocka_unit_test(client_behind_trusted_proxies),
        cmocka_unit_test(connections_per_address_and_in_all),
        cmocka_unit_test(activation_rate_per_address),
        cmocka_unit_test(route_table),
        cmocka_unit_test(operation_errors_name_the_field),
        cmocka_unit_test(admin_body_readers),
        cmocka_unit_test(webhook_signature),
        cmocka_unit_test(metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
