/* Benchmark for agent/http.c: a trivial JSON POST route (parsed with
 * http_parse_json_object, as /v1/check will be) through the server over
 * keep-alive, with 1, 8 and 64 concurrent clients, against the raw AF_UNIX
 * round trip of a 64-byte message with an echo thread per connection (the
 * floor any server on this socket has). Clients: a minimal HTTP/1.1 client
 * written for measuring, and libcurl (what tpmlicctl-like tools pay).
 * Then the server's knobs (worker threads, MHD_USE_TURBO) with one client.
 * Target for the check endpoint: one client at >= 50% of the raw rate and
 * p99 under 100 us. BENCH_SECS sets the seconds per case (default 1.5). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/http.h"
#include "bench/lib/loadgen.h"
#include "common/macro.h"

static char dir[64];

/* ---- the server ------------------------------------------------------------- */

static void h_check(void *u, const struct http_request *req, struct http_response *resp) {
    json_t *b;
    if (http_parse_json_object(req, true, &b, resp) < 0)
        return;
    json_decref(b);
    http_respond_json(resp, 200, json_pack("{s:b}", "allowed", 1));
}

static const struct http_route routes[] = {
    {"POST", "/v1/check", HTTP_PERM_SERVICE, h_check, 0},
};

static struct http_server *start(int fd, unsigned threads, bool no_turbo) {
    struct http_server *s = NULL;
    struct http_server_config c = {
        .listen_fd = fd,
        .routes = routes,
        .nroutes = ARRAY_SIZE(routes),
        .service_gid = getegid(), /* whoever runs the bench may call */
        .have_service_gid = true,
        .threads = threads,
        .no_turbo = no_turbo,
    };
    int r = http_server_start(&c, &s);
    if (r < 0) {
        fprintf(stderr, "http_server_start: %s\n", strerror(-r));
        exit(1);
    }
    return s;
}

int main(void) {
    const int conc[] = {1, 8, 64};
    char raw_path[128], http_path[128], cmd[128];
    double base[ARRAY_SIZE(conc)];
    struct http_server *s;
    pthread_t echo;
    int raw_fd, http_fd;
    const char *e = getenv("BENCH_SECS");

    if (e && atof(e) > 0)
        lg_bench_secs = atof(e);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lg_set_request("POST", "/v1/check", "{\"feature\":\"enhanced\"}");
    snprintf(dir, sizeof(dir), "/tmp/tpmlic-bench-http-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(raw_path, sizeof(raw_path), "%s/raw.sock", dir);
    snprintf(http_path, sizeof(http_path), "%s/http.sock", dir);
    if (http_listen_unix(raw_path, 0600, (gid_t)-1, &raw_fd) < 0 ||
        http_listen_unix(http_path, 0600, (gid_t)-1, &http_fd) < 0) {
        fprintf(stderr, "cannot listen in %s\n", dir);
        return 1;
    }
    pthread_create(&echo, NULL, lg_echo_accept, (void *)(intptr_t)raw_fd);
    pthread_detach(echo);

    printf("POST /v1/check {\"feature\":\"enhanced\"} over keep-alive, %.1f s per case; "
           "latency in us;\nratio: requests/s against the raw round trip with as many "
           "clients.\n\n",
           lg_bench_secs);
    lg_header();
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++) {
        struct lg_result r = lg_run_clients(RAW, raw_path, conc[i]);
        base[i] = r.rate;
        lg_row("raw AF_UNIX 64 B echo", conc[i], r, 0);
    }
    s = start(http_fd, 0, false);
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++)
        lg_row("http, minimal client (default)", conc[i], lg_run_clients(TINY, http_path, conc[i]),
               base[i]);
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++)
        lg_row("http, libcurl client (default)", conc[i],
               lg_run_clients(LIBCURL, http_path, conc[i]), base[i]);
    http_server_stop(s);

    printf("\nserver knobs, minimal client (default: %u threads, turbo):\n", HTTP_DEFAULT_THREADS);
    for (unsigned threads = 1; threads <= 4; threads *= 2)
        for (int turbo = 1; turbo >= 0; turbo--) {
            char what[64];
            s = start(http_fd, threads, !turbo);
            for (size_t i = 0; i < ARRAY_SIZE(conc); i += 2) {
                snprintf(what, sizeof(what), "http, %u thread%s, turbo %s", threads,
                         threads > 1 ? "s" : "", turbo ? "on" : "off");
                lg_row(what, conc[i], lg_run_clients(TINY, http_path, conc[i]), base[i]);
            }
            http_server_stop(s);
        }

    close(http_fd);
    shutdown(raw_fd, SHUT_RDWR);
    close(raw_fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    curl_global_cleanup();
    return 0;
}
