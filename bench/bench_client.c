/* Benchmark for libtpmlic: tpmlic_check() against a licensed tpmlicd on
 * swtpm from 1 and 8 threads (one shared handle, and one handle per
 * thread), next to the same POST /v1/check made in the same run with raw
 * HTTP over a kept-alive UNIX socket (bench/lib/loadgen's minimal client),
 * with libcurl, and next to the raw AF_UNIX 64-byte round trip. Calls per
 * second and p50/p99 latency. The library must not be the bottleneck: its
 * rate should be close to the raw HTTP rate with as many threads.
 * BENCH_SECS: seconds per case. The library is the shared one, linked as a
 * service would link it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "bench/lib/benchagent.h"
#include "bench/lib/loadgen.h"
#include "cert/cert.h"
#include "common/macro.h"
#include "tests/lib/swtpm.h"
#include "tpmlic/client.h"

static char dir[128], sock[200], logfile[200], pubf[200];
static struct swtpm tpm;
static pid_t agent = -1;

static void die(const char *what) {
    fprintf(stderr, "bench_client: %s\n", what);
    if (agent > 0)
        kill(agent, SIGKILL);
    swtpm_destroy(&tpm);
    exit(1);
}

static void start_agent(void) {
    agent = bench_spawn_agent(tpm.tcti, sock, dir, pubf, logfile);
    if (agent < 0)
        die("fork failed");
    for (int i = 0; i < 20000; i++) {
        struct tpmlic *h = NULL;
        if (tpmlic_connect(sock, &h, NULL) == 0) {
            tpmlic_close(h);
            return;
        }
        usleep(500);
    }
    die("the agent did not start (see its log)");
}

/* An answer through the library's generic request: its body, or death. */
static char *request(struct tpmlic *h, const char *method, const char *path, const char *body) {
    struct tpmlic_error e = {0};
    char *answer = NULL;
    int status = 0;
    if (tpmlic_request(h, method, path, body, &status, &answer, &e) < 0 || status != 200) {
        fprintf(stderr, "bench_client: %s %s: %d %s %s\n", method, path, status, e.message,
                answer ? answer : "");
        die("request failed");
    }
    return answer;
}

/* The offline round trip with a vendor key made here: features standard
 * and enhanced, perpetual. */
static void license_agent(EVP_PKEY *key) {
    struct tpmlic *h = NULL;
    char *jws = NULL, *req, *answer;
    json_t *j, *body;

    if (tpmlic_connect(sock, &h, NULL) < 0)
        die("connect failed");
    answer =
        request(h, "POST", "/v1/management/license/offlineactivation", "{\"license\":\"BENCH-1\"}");
    j = json_loads(answer, 0, NULL);
    free(answer);
    if (bench_sign_license(json_string_value(json_object_get(j, "activation_certificate")), key, 60,
                           3600, &jws) < 0)
        die("the activation certificate did not decode or the license did not sign");
    json_decref(j);
    body = json_pack("{s:s, s:s}", "license", "BENCH-1", "certificate", jws);
    req = json_dumps(body, JSON_COMPACT);
    free(request(h, "PUT", "/v1/management/license/offlineactivation", req));
    free(req);
    free(jws);
    json_decref(body);
    tpmlic_close(h);
}

/* ---- tpmlic_check() from N threads ---------------------------------------------- */

struct worker {
    struct tpmlic *h; /* shared, or NULL: the worker opens its own */
    pthread_barrier_t *start;
    uint64_t deadline;
    struct hist h_lat;
    bool failed;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct tpmlic *own = NULL, *h = w->h;
    struct tpmlic_error e;

    if (!h) {
        w->failed = tpmlic_connect(sock, &own, &e) < 0;
        h = own;
    }
    /* one call before the clock starts: the connection is open and warm */
    if (!w->failed)
        w->failed = tpmlic_check(h, "enhanced", &e) < 0;
    pthread_barrier_wait(w->start);
    while (!w->failed) {
        uint64_t t0 = lg_now_ns();
        if (t0 >= w->deadline)
            break;
        if (tpmlic_check(h, "enhanced", &e) < 0) {
            fprintf(stderr, "bench_client: check failed: %s\n", e.message);
            w->failed = true;
            break;
        }
        hist_add(&w->h_lat, lg_now_ns() - t0);
    }
    tpmlic_close(own);
    return NULL;
}

static struct lg_result run_library(int n, bool shared) {
    struct worker *ws = calloc((size_t)n, sizeof(*ws));
    pthread_t *ts = calloc((size_t)n, sizeof(*ts));
    struct hist *all = calloc(1, sizeof(*all));
    struct tpmlic *h = NULL;
    pthread_barrier_t start;
    struct lg_result res = {0};
    uint64_t t0;

    if (!ws || !ts || !all)
        die("out of memory");
    if (shared && tpmlic_connect(sock, &h, NULL) < 0)
        die("connect failed");
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        ws[i].h = h;
        ws[i].start = &start;
        ws[i].deadline = UINT64_MAX;
        if (pthread_create(&ts[i], NULL, worker_main, &ws[i]) != 0)
            die("pthread_create failed");
    }
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++)
        ws[i].deadline = t0 + (uint64_t)(lg_bench_secs * 1e9);
    pthread_barrier_wait(&start);
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++) {
        pthread_join(ts[i], NULL);
        hist_merge(all, &ws[i].h_lat);
        res.failed |= ws[i].failed;
    }
    res.rate = (double)all->n / ((double)(lg_now_ns() - t0) / 1e9);
    res.p50 = hist_q(all, 0.50);
    res.p99 = hist_q(all, 0.99);
    pthread_barrier_destroy(&start);
    tpmlic_close(h);
    free(ws);
    free(ts);
    free(all);
    return res;
}

static int listen_unix(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (strlen(path) >= sizeof(a.sun_path))
        die("socket path too long");
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0)
        die("raw socket failed");
    return fd;
}

int main(void) {
    const int conc[] = {1, 8};
    char raw_path[200];
    double raw[2], http[2];
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    pthread_t echo;
    FILE *f;
    int raw_fd;
    const char *e = getenv("BENCH_SECS");

    if (e && atof(e) > 0)
        lg_bench_secs = atof(e);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof(dir), "/tmp/tpmlic-bench-client-XXXXXX");
    if (!key || !mkdtemp(dir))
        die("set-up failed");
    snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
    snprintf(logfile, sizeof(logfile), "%s/agent.log", dir);
    snprintf(pubf, sizeof(pubf), "%s/vendor.pub", dir);
    f = fopen(pubf, "w");
    if (!f || !PEM_write_PUBKEY(f, key))
        die("writing the vendor key failed");
    fclose(f);
    if (swtpm_new(&tpm, NULL) < 0)
        die("swtpm failed");
    start_agent();
    license_agent(key);

    snprintf(raw_path, sizeof(raw_path), "%s/raw.sock", dir);
    raw_fd = listen_unix(raw_path);
    pthread_create(&echo, NULL, lg_echo_accept, (void *)(intptr_t)raw_fd);
    pthread_detach(echo);

    lg_set_request("POST", "/v1/check", "{\"feature\":\"enhanced\"}");
    printf("libtpmlic %s: tpmlic_check(h, \"enhanced\") = POST /v1/check "
           "{\"feature\":\"enhanced\"} on tpmlicd (swtpm), %.1f s per case, latency in us;\n"
           "'vs raw' is against the raw AF_UNIX echo for the first rows, against raw HTTP "
           "over keep-alive with as many threads for the others\n",
           tpmlic_version(), lg_bench_secs);
    lg_header();
    for (int i = 0; i < 2; i++) {
        struct lg_result r = lg_run_clients(RAW, raw_path, conc[i]);
        raw[i] = r.rate;
        lg_row("raw AF_UNIX 64 B echo", conc[i], r, 0);
    }
    for (int i = 0; i < 2; i++) {
        struct lg_result r = lg_run_clients(TINY, sock, conc[i]);
        http[i] = r.rate;
        lg_row("raw HTTP keep-alive", conc[i], r, raw[i]);
    }
    for (int i = 0; i < 2; i++)
        lg_row("libtpmlic, one handle", conc[i], run_library(conc[i], true), http[i]);
    lg_row("libtpmlic, a handle per thread", 8, run_library(8, false), http[1]);
    for (int i = 0; i < 2; i++)
        lg_row("libcurl (easy handle per thread)", conc[i], lg_run_clients(LIBCURL, sock, conc[i]),
               http[i]);

    kill(agent, SIGTERM);
    waitpid(agent, NULL, 0);
    close(raw_fd);
    swtpm_destroy(&tpm);
    {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    EVP_PKEY_free(key);
    curl_global_cleanup();
    return 0;
}
