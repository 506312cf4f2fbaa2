/* Benchmark for tpmlic-server: `tpmlic-server serve` on loopback with TLS
 * and its SQLite file on disk, driven by client threads that each hold one
 * libcurl easy handle (keep-alive: one TLS connection per client).
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
 *
 * with 1 and 64 clients, BENCH_SECS seconds per case (default 1.5). The
 * activation certificates are made in-process with cert/ (one throwaway
 * RSA-2048 stand-in EK, a different DMI serial per appliance) before the
 * clock starts. Benchmarks report; they do not assert. The database goes
 * to a fresh directory under BENCH_DIR (default /tmp), removed afterwards
 * unless BENCH_KEEP is set (the server's log is there). */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench/lib/loadgen.h"
#include "cert/cert.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"
#include "server/server.h"
#include "common/hex.h"

#define CODE           "BENCH-0001"
#define MAX_CLIENTS    64
#define BODIES_PER_SEC 6000 /* activation certificates made ahead per second of a case */
#define ANSWER_LIMIT   16384

static char dir[256], dbfile[300], keyfile[300], crtfile[300], tlskey[300], portfile[300],
    logfile[300], base_url[64];
static pid_t server = -1;
static EVP_PKEY *vendor, *ek;
/* the activate request bodies, made ahead, shared by the clients */
static char **bodies;
static size_t nbodies;
static atomic_size_t next_body;
static uint8_t *ek_der;
static size_t ek_der_len;

static void die(const char *what) {
    fprintf(stderr, "bench_server: %s\n", what);
    if (server > 0)
        kill(server, SIGKILL);
    exit(1);
}

/* ---- set-up: keys, TLS, database, server ---------------------------------------- */

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

static void make_db(void) {
    struct srv_license l = {.customer_id = 1,
                            .type = CERT_PERPETUAL,
                            .secs_allocated = 1ull << 40,
                            .cache_secs = 3600,
                            .tick_secs = 60,
                            .max_activations = 1000000,
                            .terms = 1};
    char err[256];
    struct srv_db *db = NULL;

    if (srv_db_open(dbfile, true, &db, err, sizeof(err)) < 0)
        die(err);
    snprintf(l.code, sizeof(l.code), CODE);
    snprintf(l.product, sizeof(l.product), "bench");
    snprintf(l.features[0], sizeof(l.features[0]), "standard");
    l.nfeatures = 1;
    l.created = l.updated = time(NULL);
    if (srv_license_insert(db, &l) < 0)
        die("cannot create the license");
    srv_db_close(db);
}

static void start_server(void) {
    char prog[300], port[16] = "";
    const char *b = getenv("B");

    snprintf(prog, sizeof(prog), "%s/tpmlic-server", b && *b ? b : "build/rel");
    server = fork();
    if (server == 0) {
        FILE *f = freopen(logfile, "a", stderr);
        (void)f;
        execl(prog, "tpmlic-server", "serve", "--db", dbfile, "--key", keyfile, "--listen",
              "127.0.0.1:0", "--tls-cert", crtfile, "--tls-key", tlskey, "--port-file", portfile,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            bool ok = fgets(port, sizeof(port), f) != NULL;
            fclose(f);
            if (ok)
                break;
        }
        if (waitpid(server, NULL, WNOHANG) == server) {
            server = -1;
            die("tpmlic-server did not start (see its log)");
        }
        usleep(10000);
    }
    if (!*port)
        die("tpmlic-server did not write its port");
    port[strcspn(port, "\n")] = '\0';
    snprintf(base_url, sizeof(base_url), "https://127.0.0.1:%s", port);
}

/* ---- appliances --------------------------------------------------------------------- */

/* The activate request body of appliance number n (its computer ID into
 * computer_id when not NULL). */
static char *activation_body(unsigned n, char *computer_id) {
    static const uint8_t macs[1][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    struct cert_activation a = {.is_vm = -1};
    char sn[32], err[256], *text = NULL, *body = NULL;
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC (Q35 + ICH9, 2009)", sn};

    snprintf(sn, sizeof(sn), "BENCH-%08u", n);
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

static CURL *handle(struct client *c) {
    CURL *h = curl_easy_init();
    if (!h)
        die("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_CAINFO, crtfile);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    return h;
}

/* One POST; the HTTP status, or 0 when the exchange failed. */
static long post(struct client *c, const char *path, const char *body) {
    char url[128];
    long status = 0;
    CURLcode cc;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");

    snprintf(url, sizeof(url), "%s%s", base_url, path);
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
    char *body = activation_body(900000000u + c->id, c->computer_id);
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

static void row(const char *what, int n, struct result r, double base) {
    printf("%-40s %4d %10.0f %10.0f %10.0f %9.0f%%%s%s\n", what, n, r.rate, r.p50, r.p99,
           base > 0 ? 100.0 * r.rate / base : 100.0, r.failed ? "  (a client failed)" : "",
           r.ran_out ? "  (a client ran out of appliances)" : "");
    fflush(stdout);
}

int main(void) {
    static const int conc[] = {1, 64};
    struct client *cs = calloc(MAX_CLIENTS, sizeof(*cs));
    const char *e = getenv("BENCH_SECS"), *bd = getenv("BENCH_DIR");
    double base[2];
    unsigned char *der = NULL;
    unsigned serial = 0;
    int len, status = 0;
    char cmd[300];

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
    ek_der = der;
    ek_der_len = (size_t)len;
    snprintf(dbfile, sizeof(dbfile), "%s/server.db", dir);
    snprintf(keyfile, sizeof(keyfile), "%s/vendor.key", dir);
    snprintf(crtfile, sizeof(crtfile), "%s/tls.crt", dir);
    snprintf(tlskey, sizeof(tlskey), "%s/tls.key", dir);
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    snprintf(logfile, sizeof(logfile), "%s/server.log", dir);
    write_key(keyfile, vendor);
    make_tls();
    make_db();
    start_server();

    printf("tpmlic-server serve (8 threads, default) on %s, TLS 1.3, SQLite (WAL, "
           "synchronous=FULL) in %s\n",
           base_url, dir);
    printf("one libcurl easy handle per client (keep-alive), %.1f s per case, latency in us\n\n",
           lg_bench_secs);

    /* the appliances to activate, made before any clock runs */
    for (int i = 0; i < MAX_CLIENTS; i++) {
        cs[i].id = (unsigned)i;
        cs[i].h = handle(&cs[i]);
    }
    nbodies = (size_t)(BODIES_PER_SEC * lg_bench_secs) + 1000;
    bodies = calloc(nbodies, sizeof(char *));
    if (!bodies)
        die("out of memory");
    for (size_t k = 0; k < nbodies; k++)
        bodies[k] = activation_body(serial++, NULL);

    printf("%-40s %4s %10s %10s %10s %10s\n", "case", "cli", "req/s", "p50", "p99", "vs 404");
    for (int i = 0; i < 2; i++) {
        struct result r = run(cs, conc[i], BASELINE);
        base[i] = r.rate;
        row("baseline: unknown path -> 404", conc[i], r, 0);
    }
    for (int i = 0; i < 2; i++) {
        struct result r;
        atomic_store(&next_body, 0);
        if (i == 1) /* fresh appliances for the second case too */
            for (size_t k = 0; k < nbodies; k++) {
                free(bodies[k]);
                bodies[k] = activation_body(serial++, NULL);
            }
        r = run(cs, conc[i], ACTIVATE);
        row("activate (new appliance each time)", conc[i], r, base[i]);
    }

    /* one appliance per client, activated, then validated over and over */
    for (int i = 0; i < MAX_CLIENTS; i++)
        activate_own(&cs[i]);
    for (int i = 0; i < 2; i++)
        row("validate (epoch rotated each time)", conc[i], run(cs, conc[i], VALIDATE), base[i]);

    {
        struct stat st;
        char wal[320];
        snprintf(wal, sizeof(wal), "%s-wal", dbfile);
        printf("\ndatabase after the run: %lld bytes (+ WAL %lld bytes)\n",
               stat(dbfile, &st) == 0 ? (long long)st.st_size : -1LL,
               stat(wal, &st) == 0 ? (long long)st.st_size : -1LL);
    }
    kill(server, SIGTERM);
    waitpid(server, &status, 0);
    printf("tpmlic-server after SIGTERM: %s %d\n",
           WIFEXITED(status) ? "exit status" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));

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
