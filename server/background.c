/* serve's background thread (background.h): webhook deliveries and the
 * cull policies. A delivery is a POST of the event's JSON with
 *   Content-Type: application/json
 *   X-Tpmlic-Event: EVENT
 *   X-Tpmlic-Delivery: ID            (the same ID on every retry)
 *   X-Tpmlic-Signature: t=TIME,v1=HMAC-SHA256(secret, "TIME.BODY")
 * any 2xx is delivered; anything else (no answer, a timeout, 3xx, 4xx,
 * 5xx) is retried with back-off (webhook.c). No proxy, no redirects. */
#include "server/background.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/log.h"
#include "common/macro.h"
#include "server/server.h"

#define BATCH     8
#define IDLE_SECS 1 /* how often the queue is looked at when there is nothing to do */

struct srv_background {
    struct srv_background_config cfg;
    struct srv_db *db;
    CURL *curl;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool stop;
    time_t next_cull;
    time_t db_warned;
};

static size_t discard(char *p, size_t sz, size_t n, void *u) {
    (void)p;
    (void)u;
    return sz * n;
}

/* One attempt: the HTTP status (0 when none came) and why it failed. */
static int post(struct srv_background *b, const struct srv_delivery *d, char *err, size_t errlen) {
    char sig[SRV_SIGNATURE_BUFLEN], h_sig[SRV_SIGNATURE_BUFLEN + 32], h_event[64], h_id[64];
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURLcode cc;
    int r = srv_webhook_signature(d->secret, time(NULL), d->payload, sig, sizeof(sig));

    err[0] = '\0';
    if (r < 0) {
        snprintf(err, errlen, "cannot sign the body");
        return 0;
    }
    snprintf(h_sig, sizeof(h_sig), "X-Tpmlic-Signature: %s", sig);
    snprintf(h_event, sizeof(h_event), "X-Tpmlic-Event: %s", d->event);
    snprintf(h_id, sizeof(h_id), "X-Tpmlic-Delivery: %lld", (long long)d->id);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, h_event);
    hdrs = curl_slist_append(hdrs, h_id);
    hdrs = curl_slist_append(hdrs, h_sig);
    curl_easy_setopt(b->curl, CURLOPT_URL, d->url);
    curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(b->curl, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(b->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(d->payload));
    cc = curl_easy_perform(b->curl);
    if (cc == CURLE_OK)
        curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
    if (cc == CURLE_OK && (status < 200 || status > 299))
        snprintf(err, errlen, "HTTP %ld", status);
    curl_slist_free_all(hdrs);
    secure_wipe(sig, sizeof(sig));
    secure_wipe(h_sig, sizeof(h_sig));
    return (int)status;
}

static void lock_writer(struct srv_background *b) {
    if (b->cfg.write_lock)
        pthread_mutex_lock(b->cfg.write_lock);
}

static void unlock_writer(struct srv_background *b) {
    if (b->cfg.write_lock)
        pthread_mutex_unlock(b->cfg.write_lock);
}

/* The database failed: said once a minute at most. */
static void db_trouble(struct srv_background *b, const char *what, int r) {
    time_t now = time(NULL);
    if (now - b->db_warned < 60)
        return;
    b->db_warned = now;
    log_warn("background: cannot %s: %s (%s)", what, srv_db_errmsg(b->db), strerror(-r));
}

/* Sends what is due; the number claimed. */
static size_t deliver_due(struct srv_background *b) {
    struct srv_delivery *v = NULL;
    size_t n = 0;
    int r;

    lock_writer(b);
    r = srv_delivery_claim(b->db, time(NULL), BATCH * (b->cfg.webhook_timeout + 5) + 30, BATCH, &v,
                           &n);
    unlock_writer(b);
    if (r < 0) {
        db_trouble(b, "read the webhook queue", r);
        return 0;
    }
    for (size_t i = 0; i < n && !b->stop; i++) {
        struct timespec t0, t1;
        char err[200];
        int status;
        unsigned ms;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        status = post(b, &v[i], err, sizeof(err));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (unsigned)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        lock_writer(b);
        r = srv_delivery_record(b->db, &v[i], time(NULL), status, err, ms,
                                b->cfg.webhook_retry_secs, b->cfg.webhook_attempts);
        unlock_writer(b);
        if (r < 0) {
            db_trouble(b, "record a webhook delivery", r);
            continue;
        }
        if (status >= 200 && status < 300) {
            atomic_fetch_add(&b->cfg.metrics->deliveries_ok, 1);
            log_debug("webhook %s delivery %lld to endpoint %lld: delivered", v[i].event,
                      (long long)v[i].id, (long long)v[i].webhook_id);
        } else if (v[i].attempts + 1 >= b->cfg.webhook_attempts) {
            atomic_fetch_add(&b->cfg.metrics->deliveries_failed, 1);
            log_warn("webhook %s delivery %lld to endpoint %lld failed for good after %u "
                     "attempts: %s",
                     v[i].event, (long long)v[i].id, (long long)v[i].webhook_id, v[i].attempts + 1,
                     err);
        } else {
            atomic_fetch_add(&b->cfg.metrics->deliveries_retry, 1);
            log_info("webhook %s delivery %lld to endpoint %lld: attempt %u failed (%s), will "
                     "retry",
                     v[i].event, (long long)v[i].id, (long long)v[i].webhook_id, v[i].attempts + 1,
                     err);
        }
    }
    srv_deliveries_free(v, n);
    return n;
}

static void cull(struct srv_background *b) {
    struct srv_op op = {.db = b->db,
                        .now = time(NULL),
                        .actor = "system:cull-policy",
                        .write_lock = b->cfg.write_lock};
    _cleanup_(json_decrefp) json_t *out = NULL;
    struct srv_operr err;
    size_t n;
    int r = srv_op_cull(&op, NULL, false, &out, &err);

    if (r < 0) {
        char msg[512];
        srv_operr_text(&err, SRV_FIELD_JSON, msg, sizeof(msg));
        log_warn("cull policy: %s", msg);
        return;
    }
    n = json_array_size(json_object_get(out, "culled"));
    atomic_fetch_add(&b->cfg.metrics->culled, n);
    if (n)
        log_info("cull policy: %zu activation(s) not seen for their license's cull_days closed", n);
}

static void *run(void *arg) {
    struct srv_background *b = arg;

    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        struct timespec until;
        size_t n;

        pthread_mutex_unlock(&b->lock);
        n = deliver_due(b);
        if (b->cfg.cull_secs && time(NULL) >= b->next_cull) {
            cull(b);
            b->next_cull = time(NULL) + b->cfg.cull_secs;
        }
        pthread_mutex_lock(&b->lock);
        if (n == BATCH || b->stop)
            continue; /* more may be due */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += IDLE_SECS;
        pthread_cond_timedwait(&b->cond, &b->lock, &until);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int srv_background_start(const struct srv_background_config *cfg, struct srv_background **ret,
                         char *err, size_t errlen) {
    struct srv_background *b = calloc(1, sizeof(*b));
    int r;

    if (!b)
        return -ENOMEM;
    b->cfg = *cfg;
    b->next_cull = time(NULL) + (cfg->cull_secs ? cfg->cull_secs : 0);
    r = srv_db_open(cfg->db_spec, false, &b->db, err, errlen);
    if (r < 0) {
        free(b);
        return r;
    }
    b->curl = curl_easy_init();
    if (!b->curl) {
        snprintf(err, errlen, "libcurl cannot start");
        srv_db_close(b->db);
        free(b);
        return -ENOMEM;
    }
    curl_easy_setopt(b->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(b->curl, CURLOPT_TIMEOUT, (long)cfg->webhook_timeout);
    curl_easy_setopt(b->curl, CURLOPT_CONNECTTIMEOUT,
                     (long)(cfg->webhook_timeout < 10 ? cfg->webhook_timeout : 10));
    curl_easy_setopt(b->curl, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(b->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(b->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(b->curl, CURLOPT_USERAGENT, "tpmlic-server/" TPMLIC_VERSION);
    if (cfg->webhook_ca)
        curl_easy_setopt(b->curl, CURLOPT_CAINFO, cfg->webhook_ca);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    r = pthread_create(&b->thread, NULL, run, b);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the background thread: %s", strerror(r));
        curl_easy_cleanup(b->curl);
        srv_db_close(b->db);
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->cond);
        free(b);
        return -r;
    }
    *ret = b;
    return 0;
}

void srv_background_stop(struct srv_background *b) {
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    curl_easy_cleanup(b->curl);
    srv_db_close(b->db);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}
