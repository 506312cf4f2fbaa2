/* Load generator shared by the benchmarks (see loadgen.h). */
#include "bench/lib/loadgen.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

void hist_add(struct hist *h, uint64_t ns) {
    h->n++;
    if (ns < FINE * 100ull)
        h->fine[ns / 100]++;
    else if (ns < COARSE * 10000ull)
        h->coarse[ns / 10000]++;
    else
        h->over++;
}

void hist_merge(struct hist *into, const struct hist *h) {
    for (int i = 0; i < FINE; i++)
        into->fine[i] += h->fine[i];
    for (int i = 0; i < COARSE; i++)
        into->coarse[i] += h->coarse[i];
    into->over += h->over;
    into->n += h->n;
}

/* The q-quantile in microseconds. */
double hist_q(const struct hist *h, double q) {
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    for (int i = 0; i < FINE; i++)
        if ((seen += h->fine[i]) > want)
            return (i + 0.5) * 0.1;
    for (int i = 0; i < COARSE; i++)
        if ((seen += h->coarse[i]) > want)
            return (i + 0.5) * 10.0;
    return 100000.0;
}

uint64_t lg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double lg_bench_secs = 1.5;

int lg_unix_connect(const char *path) {
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

void *lg_echo_accept(void *arg) {
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

struct client {
    enum client_kind kind;
    const char *path;
    pthread_barrier_t *start;
    uint64_t deadline;
    struct hist h;
    bool failed;
};

static char request[1024];
static char url[256];
static const char *body;

static bool raw_once(int fd) {
    char buf[MSG];
    memset(buf, 'm', sizeof(buf));
    return write_all(fd, buf, MSG) && read_n(fd, buf, MSG);
}

int lg_read_answer(int fd, int timeout_ms) {
    char buf[2048];
    size_t len = 0, want = SIZE_MAX;

    while (len < want) {
        ssize_t r;
        if (timeout_ms >= 0) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            if (poll(&pf, 1, timeout_ms) <= 0)
                return -1;
        }
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (want == SIZE_MAX) {
            char *end = strstr(buf, "\r\n\r\n"), *cl;
            if (!end)
                continue;
            cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl || strncmp(buf, "HTTP/1.1 ", 9) != 0)
                return -1;
            want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
            if (want > sizeof(buf) - 1)
                return -1;
        }
    }
    return atoi(buf + 9);
}

/* One request and its whole answer on a keep-alive connection. */
static bool tiny_once(int fd, size_t reqlen) {
    return write_all(fd, request, reqlen) && lg_read_answer(fd, -1) == 200;
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
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->path);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    } else {
        fd = lg_unix_connect(c->path);
        c->failed = fd < 0;
    }
    pthread_barrier_wait(c->start);
    while (!c->failed) {
        uint64_t t0 = lg_now_ns(), t1;
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
        t1 = lg_now_ns();
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

struct lg_result lg_run_clients(enum client_kind kind, const char *path, int n) {
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t *ts = calloc((size_t)n, sizeof(*ts));
    struct hist *all = calloc(1, sizeof(*all));
    pthread_barrier_t start;
    struct lg_result res = {0};
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
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++)
        cs[i].deadline = t0 + (uint64_t)(lg_bench_secs * 1e9);
    pthread_barrier_wait(&start);
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++) {
        pthread_join(ts[i], NULL);
        hist_merge(all, &cs[i].h);
        res.failed |= cs[i].failed;
    }
    res.rate = (double)all->n / ((double)(lg_now_ns() - t0) / 1e9);
    res.p50 = hist_q(all, 0.50);
    res.p99 = hist_q(all, 0.99);
    pthread_barrier_destroy(&start);
    free(cs);
    free(ts);
    free(all);
    return res;
}

void lg_set_request(const char *method, const char *path, const char *json_body) {
    body = json_body;
    snprintf(url, sizeof(url), "http://localhost%s", path);
    snprintf(request, sizeof(request),
             "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, path, strlen(json_body), json_body);
}

void lg_row(const char *what, int n, struct lg_result r, double base) {
    printf("%-34s %4d %12.0f %9.1f %9.1f %8.0f%%%s\n", what, n, r.rate, r.p50, r.p99,
           base > 0 ? 100.0 * r.rate / base : 100.0, r.failed ? "  (a client failed)" : "");
    fflush(stdout);
}

void lg_header(void) {
    printf("%-34s %4s %12s %9s %9s %9s\n", "case", "cli", "req/s", "p50", "p99", "vs raw");
}

double lg_now_us(void) {
    return (double)lg_now_ns() / 1e3;
}

int lg_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
