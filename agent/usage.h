/* Usage seconds (SPEC section 7): leases handed to services, covered ahead
 * of time by the TPM counter (write-ahead), and the in-memory pool of
 * seconds the counter already covers but nobody holds (usage.c). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define USAGE_LEASES_MAX      1024  /* open leases in all */
#define USAGE_LEASES_PER_PEER 256   /* open leases per calling uid */
#define USAGE_LEASE_SLACK     60    /* a lease expires this long after its seconds run out */
#define USAGE_RESERVE_MAX     86400 /* seconds in one reservation */

struct usage_lease {
    char id[33]; /* "" when the slot is free */
    uid_t uid;
    uint64_t secs;
    time_t expires;
};

struct usage {
    pthread_mutex_t lock; /* taken before the agent's TPM lock, never after */
    uint64_t pool;        /* covered by the counter, held by no lease */
    bool closed;          /* the license is being removed: no new leases */
    struct usage_lease leases[USAGE_LEASES_MAX];
    uint64_t reserved_total; /* seconds handed out in leases */
    uint64_t charged_total;  /* committed as used, or expired */
    uint64_t returned_total; /* committed as unused */
    uint64_t counter_writes; /* TPM counter increments made */
};

struct agent;
struct http_request;
struct http_response;

void agent_usage_init(struct usage *u);
void agent_post_reserve(void *ud, const struct http_request *req, struct http_response *resp);
void agent_post_commit(void *ud, const struct http_request *req, struct http_response *resp);
