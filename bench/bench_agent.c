/* Benchmark for tpmlicd on swtpm: start to ready (socket accepting, license
 * verified) and the TPM commands it took; POST /v1/check throughput and
 * p50/p99 over keep-alive with 1, 8 and 64 clients next to the raw AF_UNIX
 * 64-byte round trip measured in the same run; the agent's resident memory
 * under that load; reserve+commit pairs and the TPM writes they cost; and
 * /v1/check's latency while another client makes the agent write the TPM
 * all the time. Targets (issue): >= 50% of the raw rate and p99 < 100 us
 * with one client; ready < 50 ms; RSS < 10 MB. BENCH_SECS: seconds per case. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "agent/http.h"
#include "bench/lib/benchagent.h"
#include "bench/lib/loadgen.h"
#include "cert/cert.h"
#include "common/macro.h"
#include "tests/lib/swtpm.h"

static char dir[128], sock[200], logfile[200], pubf[200];
static struct swtpm tpm;
static pid_t agent = -1;

static void die(const char *what) {
    fprintf(stderr, "bench_agent: %s\n", what);
    if (agent > 0)
        kill(agent, SIGKILL);
    swtpm_destroy(&tpm);
    exit(1);
}

struct buf {
    char data[16384];
    size_t len;
};

static size_t collect(char *p, size_t sz, size_t n, void *u) {
    struct buf *b = u;
    size_t k = sz * n;
    if (b->len + k >= sizeof(b->data))
        return 0;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* One request; returns the HTTP status, the body in *out. */
static long call(const char *method, const char *path, const char *body, struct buf *out) {
    CURL *h = curl_easy_init();
    char url[256];
    long status = 0;

    out->len = 0;
    out->data[0] = '\0';
    snprintf(url, sizeof(url), "http://localhost%s", path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status;
}

static double now_ms(void) {
    return (double)lg_now_ns() / 1e6;
}

/* Starts the agent; returns ms from exec to the first answered status. */
static double start_agent(void) {
    struct buf out;
    double t0 = now_ms();

    agent = bench_spawn_agent(tpm.tcti, sock, dir, pubf, logfile);
    if (agent < 0)
        die("fork failed");
    /* 30 s: a loaded machine (CI) slows swtpm's session commands a lot */
    while (now_ms() - t0 < 30000) {
        if (access(sock, F_OK) == 0 && call("GET", "/v1/status", NULL, &out) == 200)
            return now_ms() - t0;
        usleep(200);
    }
    die("the agent did not start (see its log)");
    return 0;
}

static void stop_agent(void) {
    kill(agent, SIGTERM);
    waitpid(agent, NULL, 0);
    agent = -1;
}

static unsigned long last_startup_commands(void) {
    FILE *f;
    usleep(100000); /* the agent logs the line right after it starts answering */
    f = fopen(logfile, "r");
    char line[512];
    unsigned long n = 0;
    while (f && fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "start-up took ");
        if (p)
            n = strtoul(p + 14, NULL, 10);
    }
    if (f)
        fclose(f);
    return n;
}

/* A field of /proc/PID/status, or of smaps_rollup when it starts with "Pss". */
static long rss_kb(const char *field) {
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)agent,
             strncmp(field, "Pss", 3) ? "status" : "smaps_rollup");
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, strlen(field)))
            kb = strtol(line + strlen(field), NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* The offline round trip with a vendor key made here. */
static void license_agent(EVP_PKEY *key, uint32_t tick, uint64_t granted) {
    struct buf out;
    json_t *j, *body;
    char *jws = NULL, *req;

    if (call("POST", "/v1/management/license/offlineactivation", "{\"license\":\"BENCH-1\"}",
             &out) != 200)
        die("offline activation request failed");
    j = json_loads(out.data, 0, NULL);
    if (bench_sign_license(json_string_value(json_object_get(j, "activation_certificate")), key,
                           tick, granted, &jws) < 0)
        die("the activation certificate did not decode or the license did not sign");
    json_decref(j);
    body = json_pack("{s:s, s:s}", "license", "BENCH-1", "certificate", jws);
    req = json_dumps(body, JSON_COMPACT);
    if (call("PUT", "/v1/management/license/offlineactivation", req, &out) != 200)
        die("applying the license failed");
    free(req);
    free(jws);
    json_decref(body);
}

/* A new TPM under the agent: a certificate with a large grant cannot be
 * superseded cheaply (the counter would have to pass its ceiling one
 * increment per tick, docs/usage.md), so each license case starts afresh. */
static void fresh_tpm(void) {
    stop_agent();
    swtpm_destroy(&tpm);
    if (swtpm_new(&tpm, NULL) < 0)
        die("swtpm failed");
    start_agent();
}

/* ---- usage: reserve + commit pairs ------------------------------------- */

struct pair_client {
    uint64_t deadline;
    pthread_barrier_t *start;
    uint64_t pairs;
    bool failed;
};

static void *pair_main(void *arg) {
    struct pair_client *c = arg;
    CURL *h = curl_easy_init();
    struct buf out;
    long status = 0;

    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    pthread_barrier_wait(c->start);
    while (lg_now_ns() < c->deadline) {
        char body[128];
        json_t *j;
        out.len = 0;
        curl_easy_setopt(h, CURLOPT_URL, "http://localhost/v1/usage/reserve");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"seconds\": 30}");
        if (curl_easy_perform(h) != CURLE_OK ||
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
            c->failed = true;
            break;
        }
        out.data[out.len] = '\0';
        j = json_loads(out.data, 0, NULL);
        snprintf(body, sizeof(body), "{\"lease\": \"%s\", \"used\": 15}",
                 j ? json_string_value(json_object_get(j, "lease")) : "");
        json_decref(j);
        out.len = 0;
        curl_easy_setopt(h, CURLOPT_URL, "http://localhost/v1/usage/commit");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        if (curl_easy_perform(h) != CURLE_OK ||
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
            c->failed = true;
            break;
        }
        c->pairs++;
    }
    curl_easy_cleanup(h);
    return NULL;
}

static unsigned long long metric(const char *name) {
    struct buf out;
    const char *p;
    if (call("GET", "/metrics", NULL, &out) != 200 ||
        !(p = strstr(out.data, name))) /* name starts with \n */
        return 0;
    return strtoull(p + strlen(name), NULL, 10);
}

static void usage_bench(EVP_PKEY *key) {
    const uint32_t ticks[] = {1, 10, 60};
    const int conc[] = {1, 64};

    printf("\nreserve 30 s + commit 15 s pairs, %.1f s per case (libcurl clients)\n",
           lg_bench_secs);
    printf("%-10s %4s %12s %16s %26s\n", "tick_secs", "cli", "pairs/s", "TPM writes",
           "writes per 1,000 s charged");
    for (size_t t = 0; t < ARRAY_SIZE(ticks); t++) {
        fresh_tpm();
        license_agent(key, ticks[t], 1000000000ull);
        for (size_t k = 0; k < ARRAY_SIZE(conc); k++) {
            int n = conc[k];
            struct pair_client *cs = calloc((size_t)n, sizeof(*cs));
            pthread_t *th = calloc((size_t)n, sizeof(*th));
            pthread_barrier_t start;
            unsigned long long w0 = metric("\ntpmlic_usage_tpm_increments_total "),
                               c0 = metric("\ntpmlic_usage_seconds_total{kind=\"charged\"} "), w,
                               ch;
            uint64_t pairs = 0, t0;
            bool failed = false;

            pthread_barrier_init(&start, NULL, (unsigned)n + 1);
            for (int i = 0; i < n; i++) {
                cs[i].start = &start;
                cs[i].deadline = UINT64_MAX;
                pthread_create(&th[i], NULL, pair_main, &cs[i]);
            }
            t0 = lg_now_ns();
            for (int i = 0; i < n; i++)
                cs[i].deadline = t0 + (uint64_t)(lg_bench_secs * 1e9);
            pthread_barrier_wait(&start);
            t0 = lg_now_ns();
            for (int i = 0; i < n; i++) {
                pthread_join(th[i], NULL);
                pairs += cs[i].pairs;
                failed |= cs[i].failed;
            }
            w = metric("\ntpmlic_usage_tpm_increments_total ") - w0;
            ch = metric("\ntpmlic_usage_seconds_total{kind=\"charged\"} ") - c0;
            printf("%-10u %4d %12.0f %16llu %26.1f%s\n", ticks[t], n,
                   (double)pairs / ((double)(lg_now_ns() - t0) / 1e9), w,
                   ch ? 1000.0 * (double)w / (double)ch : 0.0, failed ? "  (a client failed)" : "");
            pthread_barrier_destroy(&start);
            free(cs);
            free(th);
        }
    }
}

/* /v1/check from 8 clients while one more client reserves and commits in a
 * loop at tick 1, so that the TPM is written all the time: the hot path must
 * not feel it. */
static void check_under_tpm_writes(EVP_PKEY *key, double base8) {
    struct pair_client writer = {.deadline = UINT64_MAX};
    pthread_barrier_t start;
    struct lg_result quiet, busy;
    unsigned long long w0;
    pthread_t th;

    fresh_tpm();
    license_agent(key, 1, 1000000000ull);
    lg_set_request("POST", "/v1/check", "{\"feature\":\"enhanced\"}");
    quiet = lg_run_clients(TINY, sock, 8);
    pthread_barrier_init(&start, NULL, 2);
    writer.start = &start;
    pthread_create(&th, NULL, pair_main, &writer);
    pthread_barrier_wait(&start);
    w0 = metric("\ntpmlic_usage_tpm_increments_total ");
    busy = lg_run_clients(TINY, sock, 8);
    writer.deadline = 0;
    pthread_join(th, NULL);
    printf("\nPOST /v1/check while the TPM is written (a reserve 30 s + commit 15 s loop at tick "
           "1 beside it)\n");
    lg_header();
    lg_row("/v1/check, 8 clients, no TPM writes", 8, quiet, base8);
    lg_row("/v1/check, 8 clients, TPM writes beside", 8, busy, base8);
    printf("TPM counter increments during the second case: %llu (%llu reserve+commit pairs)%s\n",
           metric("\ntpmlic_usage_tpm_increments_total ") - w0, (unsigned long long)writer.pairs,
           writer.failed ? "  (the writer failed)" : "");
    pthread_barrier_destroy(&start);
}

int main(void) {
    const int conc[] = {1, 8, 64};
    char raw_path[200];
    double base[3], ready[5];
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    pthread_t echo;
    FILE *f;
    int raw_fd;
    const char *e = getenv("BENCH_SECS");

    if (e && atof(e) > 0)
        lg_bench_secs = atof(e);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof(dir), "/tmp/tpmlic-bench-agent-XXXXXX");
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

    printf("tpmlicd on swtpm\n\n");
    {
        double first = start_agent();
        printf("first start (defines the NV indices): %.1f ms, %lu TPM commands\n", first,
               last_startup_commands());
    }
    license_agent(key, 60, 3600);
    stop_agent();
    for (int i = 0; i < 5; i++) {
        ready[i] = start_agent();
        if (i < 4)
            stop_agent();
    }
    qsort(ready, 5, sizeof(double), lg_cmp_double);
    printf("start to ready with a license verified: median %.1f ms (min %.1f, max %.1f) over 5 "
           "starts, %lu TPM commands\n\n",
           ready[2], ready[0], ready[4], last_startup_commands());

    snprintf(raw_path, sizeof(raw_path), "%s/raw.sock", dir);
    if (http_listen_unix(raw_path, 0600, (gid_t)-1, &raw_fd) < 0)
        die("raw socket failed");
    pthread_create(&echo, NULL, lg_echo_accept, (void *)(intptr_t)raw_fd);
    pthread_detach(echo);
    lg_set_request("POST", "/v1/check", "{\"feature\":\"enhanced\"}");
    printf("POST /v1/check {\"feature\":\"enhanced\"} over keep-alive, %.1f s per case, latency "
           "in us\n",
           lg_bench_secs);
    lg_header();
    for (int i = 0; i < 3; i++) {
        struct lg_result r = lg_run_clients(RAW, raw_path, conc[i]);
        base[i] = r.rate;
        lg_row("raw AF_UNIX 64 B echo", conc[i], r, 0);
    }
    for (int i = 0; i < 3; i++)
        lg_row("tpmlicd /v1/check, minimal client", conc[i], lg_run_clients(TINY, sock, conc[i]),
               base[i]);
    for (int i = 0; i < 3; i++)
        lg_row("tpmlicd /v1/check, libcurl", conc[i], lg_run_clients(LIBCURL, sock, conc[i]),
               base[i]);
    printf("\nagent memory after the load: VmRSS %ld kB = RssAnon %ld kB (its own) + RssFile "
           "%ld kB (pages of shared libraries: libcrypto, libc, gnutls...); peak VmHWM %ld kB; "
           "proportional share (Pss) %ld kB\n",
           rss_kb("VmRSS:"), rss_kb("RssAnon:"), rss_kb("RssFile:"), rss_kb("VmHWM:"),
           rss_kb("Pss:"));

    usage_bench(key);
    check_under_tpm_writes(key, base[1]);

    stop_agent();
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
