/* Benchmark for tpmlic-server: `tpmlic-server serve` on loopback with TLS,
 * driven by client threads that each hold one libcurl easy handle
 * (keep-alive: one TLS connection per client), in one run on
 *
 *   SQLite        one instance, its file on disk (WAL, synchronous=FULL)
 *   PostgreSQL    one instance, a throwaway cluster with fsync on
 *                 (tests/lib/pgtest start --durable)
 *   PostgreSQL x2 two instances sharing that database, clients split
 *                 between them
 *
 * and for each:
 *
 *   baseline     POST to an unknown path, answered 404 by the server: TLS +
 *                HTTP + the server's request handling, no database, no
 *                signature (measured in the same run)
 *   activate     POST /v1/activate with a new appliance each time: decode
 *                and check the activation certificate, pool and maximum,
 *                insert, sign a license certificate and the answer, commit
 *   validate     POST /v1/validate on activations made first (one per
 *                client): epoch check and rotation, counter, update, sign
 *                the answer, commit
 *   activate, 16 licenses   the same activations spread over 16 licenses
 *                (one license's activations queue on its row; a fleet
 *                has a license per customer)
 *
 * with 1 and 64 clients, BENCH_SECS seconds per case (default 1.5); the
 * last columns compare each row with the baseline of its setup and with
 * SQLite. Then, issue 15's figure: validations from 127.0.0.2 while a
 * caller on 127.0.0.1 holds 1,000 idle TCP connections to a server with
 * --max-connections-per-ip 64, against the same without that caller, and
 * how many of the caller's connections the server kept.
 *
 * The activation certificates are made in-process with cert/ (one
 * throwaway RSA-2048 stand-in EK, a different DMI serial per appliance)
 * before the clock starts. Benchmarks report; they do not assert. Files go
 * to a fresh directory under BENCH_DIR (default /tmp), removed afterwards
 * unless BENCH_KEEP is set (the servers' logs are there). BENCH_NO_PG=1
 * leaves PostgreSQL out. */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench/lib/loadgen.h"
#include "cert/cert.h"
#include "common/hex.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"
#include "server/server.h"

#define CODE           "BENCH-0001"
#define SPREAD         16 /* licenses the spread activation case uses */
#define MAX_CLIENTS    64
#define MAX_INSTANCES  2
#define BODIES_PER_SEC 6000 /* activation certificates made ahead per second of a case */
#define ANSWER_LIMIT   16384
#define HOSTILE_CONNS  1000

static char dir[256], keyfile[300], crtfile[300], tlskey[300], pgdir[300];
static pid_t servers[MAX_INSTANCES * 2];
static int nservers;
static EVP_PKEY *vendor, *ek;
/* the activate request bodies, made ahead, shared by the clients */
static char **bodies;
static size_t nbodies;
static atomic_size_t next_body;
static uint8_t *ek_der;
static size_t ek_der_len;
static unsigned serial;

static void stop_all(void) {
    for (int i = 0; i < nservers; i++)
        if (servers[i] > 0) {
            int status;
            kill(servers[i], SIGTERM);
            waitpid(servers[i], &status, 0);
            servers[i] = -1;
        }
    nservers = 0;
}

static void die(const char *what) {
    fprintf(stderr, "bench_server: %s\n", what);
    for (int i = 0; i < nservers; i++)
        if (servers[i] > 0)
            kill(servers[i], SIGKILL);
    exit(1);
}

/* ---- set-up: keys, TLS, databases, servers ---------------------------------------- */

static void write_key(const char *path, EVP_PKEY *k) {
    FILE *f = fopen(path, "w");
    if (!f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        die("cannot write a key");
    fclose(f);
    chmod(path, 0600);
}

/* A self-signed P-256 certificate for 127.0.0.1, its own trust anchor. */
static void make_tls(void) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    FILE *f;

    if (!k || !x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, k) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"127.0.0.1", -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)))
        die("cannot make the TLS certificate");
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    if (!ext || !X509_add_ext(x, ext, -1))
        die("cannot add the subjectAltName");
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    if (!ext || !X509_add_ext(x, ext, -1) || !X509_sign(x, k, EVP_sha256()))
        die("cannot sign the TLS certificate");
    X509_EXTENSION_free(ext);
    f = fopen(crtfile, "w");
    if (!f || !PEM_write_X509(f, x))
        die("cannot write the TLS certificate");
    fclose(f);
    write_key(tlskey, k);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* The license the activations go to, room for all of them; and SPREAD
 * more for activations spread over several licenses. */
static void make_db(const char *spec) {
    struct srv_license l = {.customer_id = 1,
                            .type = CERT_PERPETUAL,
                            .secs_allocated = 1ull << 40,
                            .cache_secs = 3600,
                            .tick_secs = 60,
                            .max_activations = 1000000,
                            .terms = 1};
    char err[256];
    struct srv_db *db = NULL;

    if (srv_db_open(spec, true, &db, err, sizeof(err)) < 0)
        die(err);
    snprintf(l.product, sizeof(l.product), "bench");
    snprintf(l.features[0], sizeof(l.features[0]), "standard");
    l.nfeatures = 1;
    l.created = l.updated = time(NULL);
    for (int i = 0; i <= SPREAD; i++) {
        if (i)
            snprintf(l.code, sizeof(l.code), "BENCH-S%02d", i);
        else
            snprintf(l.code, sizeof(l.code), CODE);
        if (srv_license_insert(db, &l) < 0)
            die("cannot create the licenses");
    }
    srv_db_close(db);
}

/* tpmlic-server serve on db; its URL into url. extra: more options. */
static void start_server(const char *db, const char *name, char url[64], const char *const *extra) {
    char prog[300], port[16] = "", portfile[320], logfile[320];
    const char *b = getenv("B");
    const char *args[40];
    int n = 0;
    pid_t pid;

    snprintf(prog, sizeof(prog), "%s/tpmlic-server", b && *b ? b : "build/rel");
    snprintf(portfile, sizeof(portfile), "%s/%s.port", dir, name);
    snprintf(logfile, sizeof(logfile), "%s/%s.log", dir, name);
    unlink(portfile);
    args[n++] = "tpmlic-server";
    args[n++] = "serve";
    args[n++] = "--db";
    args[n++] = db;
    args[n++] = "--key";
    args[n++] = keyfile;
    args[n++] = "--listen";
    args[n++] = "127.0.0.1:0";
    args[n++] = "--tls-cert";
    args[n++] = crtfile;
    args[n++] = "--tls-key";
    args[n++] = tlskey;
    args[n++] = "--port-file";
    args[n++] = portfile;
    args[n++] = "--activation-rate";
    args[n++] = "0"; /* the clients are all on 127.0.0.1 */
    args[n++] = "--log-level";
    args[n++] = "warn";
    for (size_t i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    pid = fork();
    if (pid == 0) {
        FILE *f = freopen(logfile, "a", stderr);
        (void)f;
        execv(prog, (char *const *)args);
        _exit(127);
    }
    servers[nservers++] = pid;
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            bool ok = fgets(port, sizeof(port), f) != NULL;
            fclose(f);
            if (ok)
                break;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("tpmlic-server did not start (see its log)");
        usleep(10000);
    }
    if (!*port)
        die("tpmlic-server did not write its port");
    port[strcspn(port, "\n")] = '\0';
    snprintf(url, 64, "https://127.0.0.1:%s", port);
}

/* tests/lib/pgtest, with what it prints in out */
static bool pgtest(const char *args, char *out, size_t outlen) {
    const char *src = getenv("TPMLIC_SRCDIR");
    char cmd[1024];
    FILE *p;
    size_t n = 0;

    snprintf(cmd, sizeof(cmd), "'%s/tests/lib/pgtest' %s", src && *src ? src : ".", args);
    p = popen(cmd, "r");
    if (!p)
        return false;
    if (out) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
        out[strcspn(out, "\n")] = '\0';
    }
    return pclose(p) == 0;
}

/* ---- appliances --------------------------------------------------------------------- */

/* The activate request body of appliance number n for license number lic
 * (0: CODE, 1..SPREAD: BENCH-Snn), its computer ID into computer_id when not
 * NULL. */
static char *activation_body(unsigned n, unsigned lic, char *computer_id) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    struct cert_activation a = {.is_vm = -1};
    char sn[32], err[256], *text = NULL, *body = NULL;
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC (Q35 + ICH9, 2009)", sn};

    snprintf(sn, sizeof(sn), "BENCH-%08u", n);
    if (lic)
        snprintf(a.license, sizeof(a.license), "BENCH-S%02u", lic);
    else
        snprintf(a.license, sizeof(a.license), CODE);
    if (hwid_digest_ek(ek_der, ek_der_len, a.hwid.digest[HWID_EK]) < 0 ||
        hwid_digest_dmi(dmi, a.hwid.digest[HWID_DMI]) < 0 ||
        hwid_digest_nic(macs, 1, a.hwid.digest[HWID_NIC]) < 0)
        die("digests failed");
    a.hwid.present[HWID_EK] = a.hwid.present[HWID_DMI] = a.hwid.present[HWID_NIC] = true;
    if (hwid_computer_id(&a.hwid, a.computer_id) < 0)
        die("computer ID failed");
    if (computer_id)
        snprintf(computer_id, HWID_ID_STRLEN, "%s", a.computer_id);
    a.ek_public = ek_der;
    a.ek_public_len = ek_der_len;
    a.counter.index = 0x01a0c001;
    a.counter.name_len = 34;
    a.counter.name[1] = 0x0b;
    for (int i = 2; i < 34; i++)
        a.counter.name[i] = (uint8_t)(0x60 + i);
    a.counter.value = 1000;
    if (hex_random(a.nonce, 16) < 0)
        die("no random numbers");
    a.date = time(NULL);
    snprintf(a.hostname, sizeof(a.hostname), "appliance-%u", n);
    if (cert_activation_encode(&a, &text, err, sizeof(err)) < 0)
        die(err);
    if (asprintf(&body, "{\"activation_certificate\":\"%s\"}", text) < 0)
        die("out of memory");
    free(text);
    return body;
}

/* spread: each body to one of the SPREAD licenses in turn */
static void fresh_bodies(bool spread) {
    for (size_t k = 0; k < nbodies; k++) {
        free(bodies[k]);
        bodies[k] = activation_body(serial++, spread ? 1 + (unsigned)(k % SPREAD) : 0, NULL);
    }
    atomic_store(&next_body, 0);
}

/* ---- clients ---------------------------------------------------------------------------- */

enum kind { BASELINE, ACTIVATE, VALIDATE };

struct buf {
    char data[ANSWER_LIMIT];
    size_t len;
};

struct client {
    enum kind kind;
    unsigned id;
    pthread_barrier_t *start;
    uint64_t deadline;
    CURL *h;
    char url[64];
    struct buf out;
    /* VALIDATE: this client's appliance */
    char activation[65], computer_id[HWID_ID_STRLEN], epoch[33];
    uint64_t counter;
    struct hist h_;
    uint64_t done;
    bool failed, ran_out;
    char error[200];
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

/* A client of url, from the address iface ("127.0.0.2"; NULL: any). */
static void connect_client(struct client *c, const char *url, const char *iface) {
    if (c->h)
        curl_easy_cleanup(c->h);
    c->h = curl_easy_init();
    if (!c->h)
        die("curl_easy_init failed");
    snprintf(c->url, sizeof(c->url), "%s", url);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, crtfile);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->out);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    if (iface) {
        char host[64];
        snprintf(host, sizeof(host), "host!%s", iface);
        curl_easy_setopt(c->h, CURLOPT_INTERFACE, host);
    }
}

/* One POST; the HTTP status, or 0 when the exchange failed. */
static long post(struct client *c, const char *path, const char *body) {
    char url[128];
    long status = 0;
    CURLcode cc;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");

    snprintf(url, sizeof(url), "%s%s", c->url, path);
    c->out.len = 0;
    c->out.data[0] = '\0';
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
    cc = curl_easy_perform(c->h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(c->error, sizeof(c->error), "%s", curl_easy_strerror(cc));
    curl_slist_free_all(hdrs);
    return status;
}

/* The payload of a signed answer, verified with the vendor key. */
static json_t *answer_payload(const struct buf *b) {
    json_t *o = json_loads(b->data, 0, NULL), *payload = NULL;
    const char *jws = json_string_value(json_object_get(o, "answer"));
    char msg[200];

    if (!jws || cert_answer_verify(jws, strlen(jws), vendor, &payload, msg, sizeof(msg)) != CERT_OK)
        payload = NULL;
    json_decref(o);
    return payload;
}

/* Activates this client's appliance for the validation case. */
static void activate_own(struct client *c) {
    char *body = activation_body(serial++, 0, c->computer_id);
    json_t *p;
    long st = post(c, "/v1/activate", body);

    free(body);
    p = st == 200 ? answer_payload(&c->out) : NULL;
    if (!p || strcmp(json_string_value(json_object_get(p, "result")) ?: "", "ok") != 0) {
        fprintf(stderr, "bench_server: activation failed: HTTP %ld %s %s\n", st, c->error,
                c->out.data);
        die("cannot activate the appliances to validate");
    }
    snprintf(c->activation, sizeof(c->activation), "%s",
             json_string_value(json_object_get(p, "activation")));
    snprintf(c->epoch, sizeof(c->epoch), "%s", json_string_value(json_object_get(p, "epoch")));
    c->counter = 1000;
    json_decref(p);
}

static bool validate_once(struct client *c) {
    char body[512], nonce[33], next[33];
    long st;

    if (hex_random(nonce, 16) < 0 || hex_random(next, 16) < 0)
        return false;
    c->counter++;
    snprintf(body, sizeof(body),
             "{\"v\":1,\"license\":\"" CODE "\",\"activation\":\"%s\",\"computer_id\":\"%s\","
             "\"nonce\":\"%s\",\"epoch\":\"%s\",\"next_epoch\":\"%s\",\"counter\":%llu,"
             "\"consumed_secs\":%llu,\"refill\":false}",
             c->activation, c->computer_id, nonce, c->epoch, next, (unsigned long long)c->counter,
             (unsigned long long)(c->counter - 1000));
    st = post(c, "/v1/validate", body);
    if (st != 200) {
        snprintf(c->error, sizeof(c->error), "validate: HTTP %ld %.150s", st, c->out.data);
        return false;
    }
    /* the answer is signed and says ok (a refusal would be 403): the
     * server's epoch is now ours */
    memcpy(c->epoch, next, sizeof(next));
    return true;
}

static void *client_main(void *arg) {
    struct client *c = arg;

    pthread_barrier_wait(c->start);
    while (!c->failed) {
        uint64_t t0 = lg_now_ns();
        bool ok;
        if (t0 >= c->deadline)
            break;
        switch (c->kind) {
        case BASELINE:
            ok = post(c, "/v1/nothing-here", "{}") == 404;
            break;
        case ACTIVATE: {
            size_t k = atomic_fetch_add(&next_body, 1);
            if (k >= nbodies) {
                c->ran_out = true;
                return NULL;
            }
            ok = post(c, "/v1/activate", bodies[k]) == 200;
            if (!ok)
                snprintf(c->error, sizeof(c->error), "activate: %.150s", c->out.data);
            break;
        }
        default:
            ok = validate_once(c);
        }
        if (!ok) {
            c->failed = true;
            break;
        }
        hist_add(&c->h_, lg_now_ns() - t0);
        c->done++;
    }
    return NULL;
}

struct result {
    double rate, p50, p99;
    bool failed, ran_out;
};

static struct result run(struct client *cs, int n, enum kind kind) {
    pthread_t th[MAX_CLIENTS];
    pthread_barrier_t start;
    struct hist *all = calloc(1, sizeof(*all));
    struct result res = {0};
    uint64_t t0, total = 0;

    if (!all)
        die("out of memory");
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        cs[i].kind = kind;
        cs[i].start = &start;
        cs[i].deadline = UINT64_MAX;
        cs[i].done = 0;
        cs[i].failed = cs[i].ran_out = false;
        memset(&cs[i].h_, 0, sizeof(cs[i].h_));
        if (pthread_create(&th[i], NULL, client_main, &cs[i]) != 0)
            die("pthread_create failed");
    }
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++)
        cs[i].deadline = t0 + (uint64_t)(lg_bench_secs * 1e9);
    pthread_barrier_wait(&start);
    t0 = lg_now_ns();
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        hist_merge(all, &cs[i].h_);
        total += cs[i].done;
        if (cs[i].failed) {
            if (!res.failed)
                fprintf(stderr, "bench_server: client %d: %s\n", i, cs[i].error);
            res.failed = true;
        }
        res.ran_out |= cs[i].ran_out;
    }
    res.rate = (double)total / ((double)(lg_now_ns() - t0) / 1e9);
    res.p50 = hist_q(all, 0.50);
    res.p99 = hist_q(all, 0.99);
    pthread_barrier_destroy(&start);
    free(all);
    return res;
}

static void header(const char *vs1, const char *vs2) {
    printf("%-15s %-22s %4s %10s %10s %10s %8s %8s\n", "setup", "case", "cli", "req/s", "p50",
           "p99", vs1, vs2);
}

static void row(const char *setup, const char *what, int n, struct result r, double base,
                double lite) {
    printf("%-15s %-22s %4d %10.0f %10.0f %10.0f %7.0f%% ", setup, what, n, r.rate, r.p50, r.p99,
           base > 0 ? 100.0 * r.rate / base : 100.0);
    if (lite > 0)
        printf("%7.0f%%", 100.0 * r.rate / lite);
    else
        printf("%8s", "-");
    printf("%s%s\n", r.failed ? "  (a client failed)" : "",
           r.ran_out ? "  (a client ran out of appliances)" : "");
    fflush(stdout);
}

/* ---- one setup: its servers, the baseline, activate and validate at 1 and 64 ----------- */

static const int conc[] = {1, 64};

/* rates: activate 1, 64, validate 1, 64, activate spread (for the "vs
 * SQLite" column) */
static void run_setup(const char *name, const char *db, int instances, struct client *cs,
                      double rates[5], const double *lite) {
    char urls[MAX_INSTANCES][64];
    double base[2];

    make_db(db);
    for (int i = 0; i < instances; i++) {
        char n[32];
        snprintf(n, sizeof(n), "%s-%d", name, i);
        for (char *p = n; *p; p++)
            if (*p == ' ')
                *p = '-';
        start_server(db, n, urls[i], NULL);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        connect_client(&cs[i], urls[i % instances], NULL);
    for (int i = 0; i < 2; i++) {
        struct result r = run(cs, conc[i], BASELINE);
        base[i] = r.rate;
        row(name, "baseline: 404", conc[i], r, 0, 0);
    }
    for (int i = 0; i < 2; i++) {
        struct result r;
        fresh_bodies(false);
        r = run(cs, conc[i], ACTIVATE);
        rates[i] = r.rate;
        row(name, "activate (new each)", conc[i], r, base[i], lite ? lite[i] : 0);
    }
    {
        struct result r;
        fresh_bodies(true);
        r = run(cs, 64, ACTIVATE);
        rates[4] = r.rate;
        row(name, "activate, 16 licenses", 64, r, base[1], lite ? lite[4] : 0);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        activate_own(&cs[i]);
    for (int i = 0; i < 2; i++) {
        struct result r = run(cs, conc[i], VALIDATE);
        rates[2 + i] = r.rate;
        row(name, "validate (rotating)", conc[i], r, base[i], lite ? lite[2 + i] : 0);
    }
    stop_all();
}

/* ---- a hostile caller ---------------------------------------------------------------------- */

static int count_open(const int *fds, int n) {
    int open = 0;
    for (int i = 0; i < n; i++) {
        char c;
        ssize_t k;
        if (fds[i] < 0)
            continue;
        k = recv(fds[i], &c, 1, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            open++;
    }
    return open;
}

static void hostile(const char *db, struct client *cs) {
    static const char *const extra[] = {"--max-connections-per-ip", "64", "--max-connections",
                                        "2048", NULL};
    char url[64];
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int *fds = calloc(HOSTILE_CONNS, sizeof(int)), opened = 0, held;
    double quiet[2];
    unsigned port;

    if (!fds)
        die("out of memory");
    make_db(db);
    start_server(db, "hostile", url, extra);
    port = (unsigned)atoi(strrchr(url, ':') + 1);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        connect_client(&cs[i], url, "127.0.0.2");
        activate_own(&cs[i]);
    }
    printf("\nvalidations from 127.0.0.2 while 127.0.0.1 holds %d idle TCP connections\n"
           "(SQLite, --max-connections-per-ip 64, --timeout 30):\n",
           HOSTILE_CONNS);
    header("vs quiet", "");
    for (int i = 0; i < 2; i++) {
        struct result r = run(cs, conc[i], VALIDATE);
        quiet[i] = r.rate;
        row("SQLite", "validate, no caller", conc[i], r, 0, 0);
    }
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < HOSTILE_CONNS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == 0)
            opened++;
        else if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    usleep(500000);
    held = count_open(fds, HOSTILE_CONNS);
    for (int i = 0; i < 2; i++) {
        struct result r = run(cs, conc[i], VALIDATE);
        char what[40];
        snprintf(what, sizeof(what), "validate, caller");
        printf("%-15s %-22s %4d %10.0f %10.0f %10.0f %7.0f%% %8s%s\n", "SQLite", what, conc[i],
               r.rate, r.p50, r.p99, quiet[i] > 0 ? 100.0 * r.rate / quiet[i] : 0.0, "-",
               r.failed ? "  (a client failed)" : "");
    }
    printf("the caller opened %d connections; the server kept %d of them open\n", opened, held);
    for (int i = 0; i < HOSTILE_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    stop_all();
}

int main(void) {
    struct client *cs = calloc(MAX_CLIENTS, sizeof(*cs));
    const char *e = getenv("BENCH_SECS"), *bd = getenv("BENCH_DIR"), *nopg = getenv("BENCH_NO_PG");
    double lite[5], pg1[5], pg2[5];
    unsigned char *der = NULL;
    char dbfile[300], hostile_db[300], uri[512], args[1400], cmd[300];
    bool pg = !(nopg && *nopg && strcmp(nopg, "0"));
    int len;

    if (e && atof(e) > 0)
        lg_bench_secs = atof(e);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof(dir), "%s/tpmlic-bench-server-XXXXXX", bd && *bd ? bd : "/tmp");
    vendor = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ek = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    len = ek ? i2d_PUBKEY(ek, &der) : -1;
    if (!cs || !vendor || len <= 0 || !mkdtemp(dir))
        die("set-up failed");
    chmod(dir, 0755); /* the PostgreSQL cluster runs as postgres under root */
    ek_der = der;
    ek_der_len = (size_t)len;
    snprintf(dbfile, sizeof(dbfile), "%s/server.db", dir);
    snprintf(hostile_db, sizeof(hostile_db), "%s/hostile.db", dir);
    snprintf(keyfile, sizeof(keyfile), "%s/vendor.key", dir);
    snprintf(crtfile, sizeof(crtfile), "%s/tls.crt", dir);
    snprintf(tlskey, sizeof(tlskey), "%s/tls.key", dir);
    snprintf(pgdir, sizeof(pgdir), "%s/pg", dir);
    write_key(keyfile, vendor);
    make_tls();
    nbodies = (size_t)(BODIES_PER_SEC * lg_bench_secs) + 1000;
    bodies = calloc(nbodies, sizeof(char *));
    if (!bodies)
        die("out of memory");

    printf("tpmlic-server serve (8 threads, defaults) on 127.0.0.1, TLS 1.3; SQLite (WAL, "
           "synchronous=FULL) and PostgreSQL 15 (fsync on, synchronous_commit on) in %s\n",
           dir);
    printf("one libcurl easy handle per client (keep-alive), %.1f s per case, latency in us\n\n",
           lg_bench_secs);
    header("vs 404", "vs SQLite");
    run_setup("SQLite", dbfile, 1, cs, lite, NULL);
    if (pg) {
        snprintf(args, sizeof(args), "start '%s' --durable", pgdir);
        if (!pgtest(args, NULL, 0))
            die("cannot start PostgreSQL (tests/lib/pgtest; BENCH_NO_PG=1 leaves it out)");
        snprintf(args, sizeof(args),
                 "createdb '%s' bench1 && '%s/tests/lib/pgtest' uri '%s' bench1", pgdir,
                 getenv("TPMLIC_SRCDIR") ?: ".", pgdir);
        if (!pgtest(args, uri, sizeof(uri)))
            die("cannot create the PostgreSQL database");
        run_setup("PostgreSQL", uri, 1, cs, pg1, lite);
        snprintf(args, sizeof(args),
                 "createdb '%s' bench2 && '%s/tests/lib/pgtest' uri '%s' bench2", pgdir,
                 getenv("TPMLIC_SRCDIR") ?: ".", pgdir);
        if (!pgtest(args, uri, sizeof(uri)))
            die("cannot create the PostgreSQL database");
        run_setup("PostgreSQL x2", uri, 2, cs, pg2, lite);
        snprintf(args, sizeof(args), "stop '%s'", pgdir);
        pgtest(args, NULL, 0);
    }
    hostile(hostile_db, cs);

    for (int i = 0; i < MAX_CLIENTS; i++)
        curl_easy_cleanup(cs[i].h);
    for (size_t k = 0; k < nbodies; k++)
        free(bodies[k]);
    free(bodies);
    free(cs);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (getenv("BENCH_KEEP"))
        printf("kept %s (BENCH_KEEP)\n", dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    OPENSSL_free(ek_der);
    EVP_PKEY_free(ek);
    EVP_PKEY_free(vendor);
    curl_global_cleanup();
    return 0;
}
