/* libFuzzer harness for what tpmlic-server reads from the network before a
 * database is involved: the appliance protocol's request bodies
 * (srv_parse_activate, srv_parse_check), every admin API body reader
 * (srv_api_parse_body), X-Forwarded-For (srv_client_address) and the
 * trusted-proxy list (srv_cidrs_parse), and, with the first byte's top bit
 * set, the route lookup of a request's path (srv_route_find, which cuts
 * the path's parameters out) and the RFC 3339 times of query parameters
 * (rfc3339_parse). The first byte picks the reader, the rest is the input.
 * What a reader accepts must hold up: the fields it returns are within
 * their limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/timefmt.h"
#include "server/api.h"
#include "server/limits.h"
#include "server/logic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *path, *method;
} bodies[] = {
    {SRV_API_PREFIX "/licenses", "POST"},
    {SRV_API_PREFIX "/licenses/{code}", "PATCH"},
    {SRV_API_PREFIX "/offline-activations", "POST"},
    {SRV_API_PREFIX "/activations/{id}/transfer", "POST"},
    {SRV_API_PREFIX "/cull", "POST"},
    {SRV_API_PREFIX "/tokens", "POST"},
    {SRV_API_PREFIX "/webhooks", "POST"},
};

static void check_request(const char *text, size_t len, enum srv_request type) {
    struct srv_check_req q;
    json_t *o = NULL;
    char msg[300];
    uint8_t b[16];

    if (cj_load_object(text, len, false, &o, msg, sizeof(msg)) < 0)
        return;
    if (srv_parse_check(o, type, &q, msg, sizeof(msg)) == 0) {
        /* accepted: every field within its rule */
        if (!license_code_valid(q.license) || strlen(q.computer_id) != HWID_ID_STRLEN - 1 ||
            hex_decode_exact(q.nonce, b, 16) < 0 || hex_decode_exact(q.epoch, b, 16) < 0 ||
            (type == SRV_REQ_VALIDATE && hex_decode_exact(q.next_epoch, b, 16) < 0) ||
            q.counter > (1ull << 53) || q.consumed_secs > (1ull << 53))
            abort();
    }
    json_decref(o);
}

static void activate_request(const char *text, size_t len) {
    struct cert_activation a = {0};
    json_t *o = NULL;
    char msg[600];
    uint64_t clock;
    bool has_clock;

    if (cj_load_object(text, len, false, &o, msg, sizeof(msg)) < 0)
        return;
    if (srv_parse_activate(o, &a, &has_clock, &clock, msg, sizeof(msg)) == 0) {
        if (!license_code_valid(a.license))
            abort();
        cert_activation_clear(&a);
    }
    json_decref(o);
}

static void forwarded(const char *text) {
    static const char *const trusted_text = "10.0.0.0/8, 127.0.0.1, 2001:db8::/32";
    struct srv_cidrs trusted = {0};
    struct srv_addr peer, client;

    if (srv_cidrs_parse(&trusted, trusted_text, NULL, 0) < 0 || srv_addr_parse("10.1.2.3", &peer))
        abort();
    /* the client is the peer, or an address the header names */
    if (srv_client_address(&peer, text, &trusted, &client) && !memcmp(client.b, peer.b, 16))
        abort();
    srv_cidrs_free(&trusted);
}

static void networks(const char *text) {
    struct srv_cidrs list = {0};
    char bad[64];
    struct srv_addr a;

    if (srv_cidrs_parse(&list, text, bad, sizeof(bad)) == 0 && srv_addr_parse("192.0.2.1", &a) == 0)
        (void)srv_cidrs_match(&list, &a);
    srv_cidrs_free(&list);
}

/* A path as the HTTP layer hands it over: the parameters it names lie in
 * buf, are not empty and hold no '/'. */
static void route(const char *path, unsigned which) {
    static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE", "PUT"};
    const char *params[SRV_API_PARAMS] = {0};
    size_t n = strlen(path) + 1;
    char allow[64], *buf = malloc(n);
    const struct srv_route *r;
    bool ok;

    if (!buf)
        return;
    r = srv_route_find(methods[which % 5], path, &ok, allow, sizeof(allow), buf, n, params);
    if (r && ok) {
        for (size_t i = 0; i < SRV_API_PARAMS; i++)
            if (params[i] &&
                (params[i] < buf || params[i] >= buf + n || !*params[i] || strchr(params[i], '/')))
                abort();
    } else if (r && strlen(allow) >= sizeof(allow)) {
        abort();
    }
    free(buf);
}

static void rfc3339(const char *text) {
    char again[RFC3339_BUFLEN];
    time_t t;

    /* the one format: what parses prints back the same */
    if (rfc3339_parse(text, &t) == 0) {
        rfc3339_format(t, again);
        if (strcmp(again, text) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text, msg[300];
    unsigned which;

    if (size < 1 || size > 20000)
        return 0;
    which = data[0] % (4 + 2 + sizeof(bodies) / sizeof(bodies[0]));
    /* an exact-size copy with a NUL after it: readers that take a length
     * must not read past it, readers that take a string stop there */
    text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] & 0x80) {
        if (data[0] & 0x40)
            rfc3339(text);
        else
            route(text, data[0]);
        free(text);
        return 0;
    }
    switch (which) {
    case 0:
        activate_request(text, size - 1);
        break;
    case 1:
        check_request(text, size - 1, SRV_REQ_VALIDATE);
        break;
    case 2:
        check_request(text, size - 1, SRV_REQ_DEACTIVATE);
        break;
    case 3:
        forwarded(text);
        break;
    case 4:
    case 5:
        networks(text);
        break;
    default:
        (void)srv_api_parse_body(bodies[which - 6].path, bodies[which - 6].method, text, size - 1,
                                 msg, sizeof(msg));
    }
    free(text);
    return 0;
}
