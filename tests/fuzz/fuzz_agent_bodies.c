/* libFuzzer harness for what tpmlicd reads from a request body before any
 * domain call: every route's body reader (agent_routes_read_body: check,
 * reserve, commit, online and offline activation, the license certificate
 * PUT, offline mode), the proxy settings of POST .../license/network
 * (agent_netconf_set, storing into a temporary state directory) and the
 * network.json that the online part reads back (agent_netconf_proxy). No
 * TPM, no ledger. The first byte picks the reader, the rest is the body.
 * Checked besides the sanitizers: a refusal is a 400 with a JSON message;
 * proxy settings that are accepted read back as a proxy URL that libcurl
 * parses, with the host that was given, and as the user and password that
 * were given; what is shown of them never holds the password. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/http.h"
#include "agent/netconf.h"
#include "agent/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method, *path;
} bodies[] = {
    {"POST", "/v1/check"},
    {"POST", "/v1/usage/reserve"},
    {"POST", "/v1/usage/commit"},
    {"POST", "/v1/management/license"},
    {"POST", "/v1/management/license/offlineactivation"},
    {"PUT", "/v1/management/license/offlineactivation"},
    {"POST", "/v1/management/license/offlinemode"},
    {"POST", "/v1/management/license/network"},
};
#define NBODIES (sizeof(bodies) / sizeof(bodies[0]))

static char state_dir[64], file_dir[64];
static int state_fd = -1, file_fd = -1; /* O_PATH, as agent_state_dir_open gives */

static void cleanup(void) {
    char p[128];
    snprintf(p, sizeof(p), "%s/network.json", state_dir);
    unlink(p);
    rmdir(state_dir);
    snprintf(p, sizeof(p), "%s/network.json", file_dir);
    unlink(p);
    rmdir(file_dir);
}

static void make_dirs(void) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(state_dir, sizeof(state_dir), "%s/fuzz-agent-state.XXXXXX", base);
    snprintf(file_dir, sizeof(file_dir), "%s/fuzz-agent-file.XXXXXX", base);
    if (!mkdtemp(state_dir) || !mkdtemp(file_dir))
        abort();
    state_fd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    file_fd = open(file_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (state_fd < 0 || file_fd < 0)
        abort();
    atexit(cleanup);
}

static void route_body(unsigned i, const char *text, size_t len) {
    struct http_response resp = {0};
    int r = agent_routes_read_body(bodies[i].method, bodies[i].path, text, len, &resp);

    if (r == -EINVAL && (resp.status != 400 || !resp.json))
        abort();
    if (r == 0 && (resp.status || resp.json || resp.text))
        abort();
    if (r != 0 && r != -EINVAL)
        abort();
    json_decref(resp.json);
    free(resp.text);
}

/* host without the brackets around an IPv6 address */
static void unbracket(const char *host, char out[256]) {
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']')
        snprintf(out, 256, "%.*s", (int)(n - 2), host + 1);
    else
        snprintf(out, 256, "%s", host);
}

/* The same host: the same name, or the same address (libcurl normalises
 * them: "20b8::0" is "[20b8::]", "2" is "0.0.0.2", as inet_aton reads it). */
static bool same_host(const char *a, const char *b) {
    char x[256], y[256];
    struct in6_addr p, q;
    struct in_addr v, w;

    unbracket(a, x);
    unbracket(b, y);
    if (!strcasecmp(x, y))
        return true;
    if (inet_aton(x, &v) && inet_aton(y, &w))
        return v.s_addr == w.s_addr;
    return inet_pton(AF_INET6, x, &p) == 1 && inet_pton(AF_INET6, y, &q) == 1 &&
           !memcmp(&p, &q, sizeof(p));
}

/* The proxy URL libcurl gets: one it parses, for host. */
static void check_url(const char *url, const char *host) {
    CURLU *u = curl_url();
    char *h = NULL;

    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        fprintf(stderr, "the proxy URL %s (host %s) does not parse\n", url, host);
        abort();
    }
    if (!same_host(h, host)) {
        fprintf(stderr, "the proxy URL %s names host %s, not %s\n", url, h, host);
        abort();
    }
    curl_free(h);
    curl_url_cleanup(u);
}

/* "USER:PASSWORD" for libcurl, which cuts it at the first ':' */
static void check_userpwd(const char *userpwd, json_t *body) {
    json_t *hc = json_object_get(body, "http_configuration");
    const char *user = json_string_value(json_object_get(hc, "user"));
    const char *pass = json_string_value(json_object_get(hc, "password"));
    const char *colon = userpwd ? strchr(userpwd, ':') : NULL;

    if (!user != !userpwd)
        abort();
    if (!user)
        return;
    if (!colon || (size_t)(colon - userpwd) != strlen(user) ||
        strncmp(userpwd, user, strlen(user)) || strcmp(colon + 1, pass ? pass : "")) {
        fprintf(stderr, "user '%s' and its password reach libcurl as '%s'\n", user, userpwd);
        abort();
    }
}

/* POST .../license/network as the handler does it, then what the online
 * part makes of the stored file. */
static void network_set(const char *text, size_t len) {
    const struct http_request req = {.method = "POST", .body = len ? text : NULL, .body_len = len};
    struct http_response resp = {0};
    json_t *body = NULL, *shown = NULL, *hc;
    char err[256], *url = NULL, *userpwd = NULL;
    const char *ip;

    if (http_parse_json_object(&req, false, &body, &resp) < 0) {
        json_decref(resp.json);
        return;
    }
    if (agent_netconf_set(state_fd, body, &shown, err, sizeof(err)) == 0) {
        hc = json_object_get(shown, "http_configuration");
        ip = json_string_value(json_object_get(hc, "ip"));
        if (!ip || json_object_get(hc, "password") ||
            !json_is_boolean(json_object_get(hc, "password_set")))
            abort();
        if (agent_netconf_proxy(state_fd, &url, &userpwd) < 0 || !url ||
            (*ip ? strncmp(url, "http://", 7) != 0 : (*url || userpwd)))
            abort();
        if (*ip) {
            check_url(url, ip);
            check_userpwd(userpwd, body);
        }
        free(url);
        free(userpwd);
        json_decref(shown);
    } else if (strlen(err) >= sizeof(err)) {
        abort();
    }
    json_decref(body);
}

/* network.json as a file: written by the agent, but a damaged or edited one
 * must be refused, not trusted */
static void network_file(const uint8_t *p, size_t n) {
    char path[128], *url = NULL, *userpwd = NULL;
    int fd;

    snprintf(path, sizeof(path), "%s/network.json", file_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
    if (agent_netconf_proxy(file_fd, &url, &userpwd) == 0) {
        if (!url || (*url && strncmp(url, "http://", 7) != 0))
            abort();
        free(url);
        free(userpwd);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned which;
    char *text;

    if (size < 1 || size > 70000)
        return 0;
    if (!state_dir[0])
        make_dirs();
    which = data[0] % (NBODIES + 2);
    if (which == NBODIES + 1) {
        network_file(data + 1, size - 1);
        return 0;
    }
    /* an exact-size copy with a NUL after it, as http.c hands bodies over */
    text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (which == NBODIES)
        network_set(text, size - 1);
    else
        route_body(which, text, size - 1);
    free(text);
    return 0;
}
