/* The license server exchange (online.h). */
#include "agent/online.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "agent/netconf.h"
#include "cert/cert.h"
#include "common/macro.h"

DEFINE_PTR_CLEANUP(CURL, curl_easy_cleanup)

struct body {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    struct body *b = ud;
    size_t add = size * n;
    char *d;

    if (b->len + add > ONLINE_BODY_MAX) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

void online_result_clear(struct online_result *r) {
    json_decref(r->payload);
    r->payload = NULL;
}

int online_nonce(char ret[ONLINE_NONCE_LEN + 1]) {
    uint8_t b[ONLINE_NONCE_LEN / 2];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -EIO;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(ret + 2 * i, 3, "%02x", b[i]);
    return 0;
}

int online_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void online_global_cleanup(void) {
    curl_global_cleanup();
}

static void failed(struct online_result *r, enum online_failure f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(struct online_result *r, enum online_failure f, const char *fmt, ...) {
    va_list ap;
    r->outcome = ONLINE_FAILED;
    r->failure = f;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

/* Which failures are "the server could not be reached" (the long grace
 * period may apply) and which are the server's own (always the short one).
 * A certificate that does not chain to the pinned CA is not the vendor's
 * server answering: it counts with the server's errors. */
static enum online_failure classify(CURLcode cc) {
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
        return FAILURE_UNREACHABLE;
    default:
        return FAILURE_SERVER;
    }
}

/* The answer's payload: signed by the vendor, of this type, echoing nonce. */
static void check_answer(const struct online_conf *c, const char *type, const char *nonce,
                         long http, const struct body *b, struct online_result *r) {
    _cleanup_(json_decrefp) json_t *o = NULL, *payload = NULL;
    json_t *ans, *v;
    char msg[300];
    const char *result;
    enum cert_status s;

    o = json_loadb(b->data ? b->data : "", b->len, JSON_REJECT_DUPLICATES, NULL);
    ans = json_object_get(o, "answer");
    if (!json_is_string(ans)) {
        v = json_object_get(o, "error");
        if (http >= 500)
            failed(r, FAILURE_SERVER, "the license server failed (HTTP %ld%s%.200s)", http,
                   json_is_string(v) ? ": " : "", json_is_string(v) ? json_string_value(v) : "");
        else
            failed(r, FAILURE_SERVER,
                   "the license server's answer is not signed (HTTP %ld%s%.200s)", http,
                   json_is_string(v) ? ": " : "", json_is_string(v) ? json_string_value(v) : "");
        return;
    }
    s = cert_answer_verify(json_string_value(ans), json_string_length(ans), c->vendor_key, &payload,
                           msg, sizeof(msg));
    if (s != CERT_OK) {
        failed(r, FAILURE_SERVER, "the license server's answer is refused: %s", msg);
        return;
    }
    v = json_object_get(payload, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 1 ||
        !json_is_string(json_object_get(payload, "type")) ||
        strcmp(json_string_value(json_object_get(payload, "type")), type) != 0) {
        failed(r, FAILURE_SERVER, "the license server's answer is not a version 1 %s answer", type);
        return;
    }
    v = json_object_get(payload, "nonce");
    if (!json_is_string(v) || strcmp(json_string_value(v), nonce) != 0) {
        failed(r, FAILURE_SERVER,
               "the license server's answer does not echo this request's nonce (a replayed "
               "answer?)");
        return;
    }
    result = json_string_value(json_object_get(payload, "result"));
    if (result && strcmp(result, "ok") == 0) {
        r->outcome = ONLINE_OK;
        snprintf(r->message, sizeof(r->message), "ok");
    } else if (result && strcmp(result, "refused") == 0) {
        const char *reason = json_string_value(json_object_get(payload, "reason"));
        const char *m = json_string_value(json_object_get(payload, "message"));
        r->outcome = ONLINE_REFUSED;
        snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "unknown");
        snprintf(r->message, sizeof(r->message), "%s", m ? m : "refused by the license server");
    } else {
        failed(r, FAILURE_SERVER, "the license server's answer has no valid result");
        return;
    }
    r->payload = TAKE_PTR(payload);
}

int online_exchange(const struct online_conf *c, const char *type, json_t *request,
                    const char *nonce, struct online_result *ret) {
    _cleanup_(curl_easy_cleanupp) CURL *h = NULL;
    _cleanup_free_ char *text = NULL, *url = NULL, *proxy = NULL;
    _cleanup_secret_ char *userpwd = NULL;
    struct curl_slist *hdrs = NULL;
    struct body b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    long http = 0;
    CURLcode cc;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!c->server || !*c->server) {
        failed(ret, FAILURE_UNREACHABLE, "no license server is configured");
        return 0;
    }
    r = agent_netconf_proxy(c->state_fd, &proxy, &userpwd);
    if (r < 0) {
        failed(ret, FAILURE_UNREACHABLE,
               "the proxy settings (network.json in the state directory) are unreadable");
        return 0;
    }
    text = json_dumps(request, JSON_COMPACT);
    if (!text || asprintf(&url, "%s/v1/%s", c->server, type) < 0)
        return -ENOMEM;
    h = curl_easy_init();
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h || !hdrs) {
        curl_slist_free_all(hdrs);
        return -ENOMEM;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file) {
        /* the pinned CA is the only trust anchor */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    }
    /* "" = no proxy at all, whatever the environment says */
    curl_easy_setopt(h, CURLOPT_PROXY, proxy);
    if (*proxy) {
        curl_easy_setopt(h, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
        if (userpwd) {
            curl_easy_setopt(h, CURLOPT_PROXYUSERPWD, userpwd);
            curl_easy_setopt(h, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
        }
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_secs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_secs);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tpmlicd/" TPMLIC_VERSION);

    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_WRITE_ERROR && b.too_big)
        failed(ret, FAILURE_SERVER, "the license server's answer is over %d bytes",
               ONLINE_BODY_MAX);
    else if (cc != CURLE_OK) {
        long proxy_code = 0;
        curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &proxy_code);
        if (*proxy && proxy_code >= 300)
            failed(ret, FAILURE_UNREACHABLE, "the proxy %s refused the connection (HTTP %ld)",
                   proxy, proxy_code);
        else
            failed(ret, classify(cc), "cannot reach the license server %s%s%s: %s", c->server,
                   *proxy ? " through the proxy " : "", proxy,
                   errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else
        check_answer(c, type, nonce, http, &b, ret);
    free(b.data);
    return 0;
}
