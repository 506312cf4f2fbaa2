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
#include "common/macro.h"

#define MSG 64
/* Latency histogram: 100 ns buckets to 1 ms, 10 us buckets to 100 ms. */
#define FINE   10000
#define COARSE 10000

struct hist {
    uint64_t fine[FINE];
    uint64_t coarse[COARSE];
    uint64_t over;
    uint64_t n;
};

static void hist_add(struct hist *h, uint64_t ns) {
    h->n++;
    if (ns < FINE * 100ull)
        h->fine[ns / 100]++;
    else if (ns < COARSE * 10000ull)
        h->coarse[ns / 10000]++;
    else
        h->over++;
}

static void hist_merge(struct hist *into, const struct hist *h) {
    for (int i = 0; i < FINE; i++)
        into->fine[i] += h->fine[i];
    for (int i = 0; i < COARSE; i++)
        into->coarse[i] += h->coarse[i];
    into->over += h->over;
    into->n += h->n;
}

/* The q-quantile in microseconds. */
static double hist_q(const struct hist *h, double q) {
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    for (int i = 0; i < FINE; i++)
        if ((seen += h->fine[i]) > want)
            return (i + 0.5) * 0.1;
    for (int i = 0; i < COARSE; i++)
        if ((seen += h->coarse[i]) > want)
            return (i + 0.5) * 10.0;
    return 100000.0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double bench_secs = 1.5;
static char dir[64];

static int unix_connect(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_n(int fd, char *p, size_t n) {
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* ---- raw echo ------------------------------------------------------------- */

static void *echo_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[MSG];
    while (read_n(fd, buf, MSG) && write_all(fd, buf, MSG))
        ;
    close(fd);
    return NULL;
}

static void *echo_accept(void *arg) {
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        pthread_t t;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return NULL;
        if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}

/* ---- clients ---------------------------------------------------------------- */

enum client_kind { RAW, TINY, LIBCURL };

struct client {
    enum client_kind kind;
    const char *path;
    pthread_barrier_t *start;
    uint64_t deadline;
    struct hist h;
    bool failed;
};

static const char body[] = "{\"feature\":\"enhanced\"}";
static char request[256];

static bool raw_once(int fd) {
    char buf[MSG];
    memset(buf, 'm', sizeof(buf));
    return write_all(fd, buf, MSG) && read_n(fd, buf, MSG);
}

/* One request and its whole answer on a keep-alive connection. */
static bool tiny_once(int fd, size_t reqlen) {
    char buf[1024];
    size_t len = 0, want = SIZE_MAX;

    if (!write_all(fd, request, reqlen))
        return false;
    while (len < want) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return false;
        len += (size_t)r;
        buf[len] = '\0';
        if (want == SIZE_MAX) {
            char *end = strstr(buf, "\r\n\r\n"), *cl;
            if (!end)
                continue;
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
                return false;
            cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl)
                return false;
            want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
        }
    }
    return true;
}

static size_t discard(char *p, size_t sz, size_t n, void *u) {
    return sz * n;
}

static void *client_main(void *arg) {
    struct client *c = arg;
    size_t reqlen = strlen(request);
    CURL *h = NULL;
    int fd = -1;

    if (c->kind == LIBCURL) {
        h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, "http://localhost/v1/check");
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->path);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    } else {
        fd = unix_connect(c->path);
        c->failed = fd < 0;
    }
    pthread_barrier_wait(c->start);
    while (!c->failed) {
        uint64_t t0 = now_ns(), t1;
        bool ok;
        long status = 0;
        if (t0 >= c->deadline)
            break;
        if (c->kind == RAW) {
            ok = raw_once(fd);
        } else if (c->kind == TINY) {
            ok = tiny_once(fd, reqlen);
        } else {
            ok = curl_easy_perform(h) == CURLE_OK &&
                 curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
        }
        t1 = now_ns();
        if (!ok)
            c->failed = true;
        else
            hist_add(&c->h, t1 - t0);
    }
    if (h)
        curl_easy_cleanup(h);
    if (fd >= 0)
        close(fd);
    return NULL;
}

struct result {
    double rate, p50, p99;
    bool failed;
};

static struct result run_clients(enum client_kind kind, const char *path, int n) {
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t *ts = calloc((size_t)n, sizeof(*ts));
    struct hist *all = calloc(1, sizeof(*all));
    pthread_barrier_t start;
    struct result res = {0};
    uint64_t t0;

    if (!cs || !ts || !all) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        cs[i] =
            (struct client){.kind = kind, .path = path, .start = &start, .deadline = UINT64_MAX};
        if (pthread_create(&ts[i], NULL, client_main, &cs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    t0 = now_ns();
    for (int i = 0; i < n; i++)
        cs[i].deadline = t0 + (uint64_t)(bench_secs * 1e9);
    pthread_barrier_wait(&start);
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        pthread_join(ts[i], NULL);
        hist_merge(all, &cs[i].h);
        res.failed |= cs[i].failed;
    }
    res.rate = (double)all->n / ((double)(now_ns() - t0) / 1e9);
    res.p50 = hist_q(all, 0.50);
    res.p99 = hist_q(all, 0.99);
    pthread_barrier_destroy(&start);
    free(cs);
    free(ts);
    free(all);
    return res;
}

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

static void row(const char *what, int n, struct result r, double base) {
    printf("%-34s %4d %12.0f %9.1f %9.1f %8.0f%%%s\n", what, n, r.rate, r.p50, r.p99,
           base > 0 ? 100.0 * r.rate / base : 100.0, r.failed ? "  (a client failed)" : "");
    fflush(stdout);
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
        bench_secs = atof(e);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(request, sizeof(request),
             "POST /v1/check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
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
    pthread_create(&echo, NULL, echo_accept, (void *)(intptr_t)raw_fd);
    pthread_detach(echo);

    printf("POST /v1/check {\"feature\":\"enhanced\"} over keep-alive, %.1f s per case; "
           "latency in us;\nratio: requests/s against the raw round trip with as many "
           "clients.\n\n",
           bench_secs);
    printf("%-34s %4s %12s %9s %9s %9s\n", "case", "cli", "req/s", "p50", "p99", "vs raw");
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++) {
        struct result r = run_clients(RAW, raw_path, conc[i]);
        base[i] = r.rate;
        row("raw AF_UNIX 64 B echo", conc[i], r, 0);
    }
    s = start(http_fd, 0, false);
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++)
        row("http, minimal client (default)", conc[i], run_clients(TINY, http_path, conc[i]),
            base[i]);
    for (size_t i = 0; i < ARRAY_SIZE(conc); i++)
        row("http, libcurl client (default)", conc[i], run_clients(LIBCURL, http_path, conc[i]),
            base[i]);
    http_server_stop(s);

    printf("\nserver knobs, minimal client (default: %u threads, turbo):\n", HTTP_DEFAULT_THREADS);
    for (unsigned threads = 1; threads <= 4; threads *= 2)
        for (int turbo = 1; turbo >= 0; turbo--) {
            char what[64];
            s = start(http_fd, threads, !turbo);
            for (size_t i = 0; i < ARRAY_SIZE(conc); i += 2) {
                snprintf(what, sizeof(what), "http, %u thread%s, turbo %s", threads,
                         threads > 1 ? "s" : "", turbo ? "on" : "off");
                row(what, conc[i], run_clients(TINY, http_path, conc[i]), base[i]);
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
