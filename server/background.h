/* serve's background thread: sends the webhook deliveries that are due
 * (libcurl, HMAC-signed bodies, retries with back-off) and applies the
 * licenses' cull policies every cull_secs. It has its own database
 * connection, a stop flag, timed waits, and is joined at shutdown. */
#pragma once

#include <pthread.h>

#include "server/metrics.h"

struct srv_background_config {
    const char *db_spec;
    const char *webhook_ca; /* NULL: the system's store */
    unsigned webhook_timeout, webhook_retry_secs, webhook_attempts;
    unsigned cull_secs; /* 0: never */
    pthread_mutex_t *write_lock;
    struct srv_metrics *metrics;
};
struct srv_background;

int srv_background_start(const struct srv_background_config *cfg, struct srv_background **ret,
                         char *err, size_t errlen);
/* Stops the thread (a delivery under way is finished or times out) and
 * joins it. */
void srv_background_stop(struct srv_background *b);
