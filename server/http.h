/* HTTPS for tpmlic-server (http.c, the only file that talks to
 * libmicrohttpd): the listeners, the limits on connections and request
 * sizes, the request log, and the dispatch of each request to logic.c (the
 * appliance protocol), api.c (the admin API), /health and /metrics. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <openssl/evp.h>

#include "server/limits.h"
#include "server/metrics.h"

struct srv_http_config {
    int listen_fd;            /* appliances (and the admin API when admin_fd < 0) */
    int admin_fd;             /* the admin API, /metrics and /health, or -1 */
    const char *tls_cert_pem; /* certificate (chain) and key, PEM text */
    const char *tls_key_pem;
    const char *db_spec;
    EVP_PKEY *key;
    unsigned threads;
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: none */
    unsigned timeout_secs;
    unsigned activation_rate, activation_burst; /* per client address; rate 0: none */
    const struct srv_cidrs *trusted_proxies;
    pthread_mutex_t *write_lock; /* SQLite: the process's one writer; NULL for PostgreSQL */
    struct srv_metrics *metrics;
    uint64_t window_secs;  /* logic.h: an online certificate's validity */
    const char *ek_ca_dir; /* logic.h: the EK trust store, or NULL */
};
struct srv_http;
/* Starts serving (the fds are not taken over). -ENOTSUP when
 * libmicrohttpd has no TLS. */
int srv_http_start(const struct srv_http_config *cfg, struct srv_http **ret, char *err,
                   size_t errlen);
/* Stops accepting, waits up to grace_secs for the requests under way to be
 * answered, then stops. */
void srv_http_stop(struct srv_http *s, unsigned grace_secs);
