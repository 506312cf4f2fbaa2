/* Usage seconds (SPEC section 7, docs/usage.md). The counter in TPM NV
 * counts ticks of tick_secs consumed since the base signed in the license:
 * covered = (counter - base) * tick_secs. Before a lease hands out seconds
 * that the counter does not cover yet, the counter is advanced (write-ahead),
 * so a crash or a power loss can only lose seconds for the customer, never
 * give them back. Seconds a commit returns go to an in-memory pool of
 * covered seconds that later leases use without a TPM write; the pool dies
 * with the process, which is the write-ahead's price. A lease never
 * committed is charged in full when it expires. */
#include "agent/usage.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "agent/agent.h"
#include "agent/clock.h"
#include "agent/licensing.h"
#include "agent/http.h"
#include "common/log.h"
#include "tpm/tpm.h"

void agent_usage_init(struct usage *u) {
    memset(u, 0, sizeof(*u));
    pthread_mutex_init(&u->lock, NULL);
}

/* Seconds the agent may still hand out: the signed ceiling minus what the
 * counter covers, plus what the pool holds. Caller holds usage.lock. */
static uint64_t handable(const struct agent *a, uint64_t granted, uint64_t base, uint32_t tick) {
    uint64_t covered = a->counter_value > base ? (a->counter_value - base) * tick : 0;
    uint64_t used = covered > a->usage.pool ? covered - a->usage.pool : 0;
    return granted > used ? granted - used : 0;
}

uint64_t agent_secs_remaining(struct agent *a) {
    uint64_t r;
    if (!a->lic.present)
        return 0;
    pthread_mutex_lock(&a->usage.lock);
    r = handable(a, a->lic.secs_granted, a->lic_counter.base, a->lic.tick_secs);
    pthread_mutex_unlock(&a->usage.lock);
    return r;
}

/* One tick more in the TPM counter. TPM_RC_NV_RATE is retried with back-off;
 * after any other failure the counter is read back, so an increment whose
 * answer was lost is counted once, not twice or never. Caller holds the TPM
 * lock. */
static int advance_counter(struct agent *a) {
    unsigned delay_ms = 5;
    uint64_t v;
    int r;

    for (int attempt = 0;; attempt++) {
        r = a->tpm ? tpm_counter_increment(a->tpm, a->counter.index) : -ENODEV;
        if (r == 0) {
            a->counter_value++;
            a->usage.counter_writes++;
            return 0;
        }
        if (r == -EBUSY && attempt < 8) {
            usleep(delay_ms * 1000);
            delay_ms *= 2;
            continue;
        }
        break;
    }
    if (a->tpm && tpm_counter_read(a->tpm, a->counter.index, &v) == 0 && v > a->counter_value) {
        a->counter_value = v;
        a->usage.counter_writes++;
        return 0;
    }
    agent_tpm_failed(a, r, "advancing the usage counter");
    return r;
}

/* Leases past their time are charged in full. Caller holds usage.lock. */
static void expire_leases(struct usage *u, time_t now) {
    for (size_t i = 0; i < USAGE_LEASES_MAX; i++)
        if (u->leases[i].id[0] && now >= u->leases[i].expires) {
            u->charged_total += u->leases[i].secs;
            u->leases[i].id[0] = '\0';
        }
}

void agent_post_reserve(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    struct usage *u = &a->usage;
    json_t *body = NULL, *jsecs, *jfeat;
    const char *feature = NULL, *key;
    char reason[256];
    uint64_t want, grant, granted, base, left;
    uint32_t tick;
    size_t free_slot = USAGE_LEASES_MAX, mine = 0, open = 0;
    uint8_t rnd[16];
    time_t now = agent_now();
    bool refill;
    json_t *v;
    int r = 0;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "seconds") && strcmp(key, "feature")) {
            http_respond_error(resp, 400, "unknown field '%.40s'", key);
            goto out;
        }
    }
    jsecs = json_object_get(body, "seconds");
    jfeat = json_object_get(body, "feature");
    if (!json_is_integer(jsecs) || json_integer_value(jsecs) < 1 ||
        json_integer_value(jsecs) > USAGE_RESERVE_MAX) {
        http_respond_error(resp, 400, "'seconds' must be a whole number from 1 to %d",
                           USAGE_RESERVE_MAX);
        goto out;
    }
    if (jfeat && !json_is_string(jfeat)) {
        http_respond_error(resp, 400, "'feature' must be a string");
        goto out;
    }
    want = (uint64_t)json_integer_value(jsecs);
    feature = jfeat ? json_string_value(jfeat) : NULL;

    pthread_rwlock_rdlock(&a->lock);
    r = license_decide(&a->lic, feature, now, reason, sizeof(reason)) == VERDICT_ALLOWED ? 0 : -1;
    granted = a->lic.secs_granted;
    base = a->lic_counter.base;
    tick = a->lic.tick_secs ? a->lic.tick_secs : 60;
    pthread_rwlock_unlock(&a->lock);
    if (r < 0) {
        http_respond_json(resp, 403,
                          json_pack("{s:s+, s:i}", "error",
                                    "You are not authorised to perform this action: ", reason,
                                    "code", 403));
        goto out;
    }

    pthread_mutex_lock(&u->lock);
    if (u->closed) {
        pthread_mutex_unlock(&u->lock);
        http_respond_json(resp, 403,
                          json_pack("{s:s, s:i}", "error",
                                    "You are not authorised to perform this action: the license "
                                    "is being removed",
                                    "code", 403));
        goto out;
    }
    expire_leases(u, now);
    for (size_t i = 0; i < USAGE_LEASES_MAX; i++) {
        if (!u->leases[i].id[0]) {
            if (free_slot == USAGE_LEASES_MAX)
                free_slot = i;
            continue;
        }
        open++;
        if (u->leases[i].uid == req->peer->uid)
            mine++;
    }
    if (free_slot == USAGE_LEASES_MAX || mine >= USAGE_LEASES_PER_PEER) {
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 429,
                           "too many open leases (%zu of %d for this caller, %zu of %d "
                           "in all): commit some first",
                           mine, USAGE_LEASES_PER_PEER, open, USAGE_LEASES_MAX);
        goto out;
    }
    left = handable(a, granted, base, tick);
    grant = want < left ? want : left;
    if (grant == 0) {
        pthread_mutex_unlock(&u->lock);
        http_respond_json(resp, 403,
                          json_pack("{s:s, s:i}", "error",
                                    "You are not authorised to perform this action: no usage "
                                    "seconds left (all seconds granted to this appliance are used)",
                                    "code", 403));
        goto out;
    }
    /* write-ahead: the counter covers the seconds before they are handed out */
    if (grant > u->pool) {
        uint64_t ticks = (grant - u->pool + tick - 1) / tick;
        pthread_mutex_lock(&a->tpm_lock);
        for (uint64_t t = 0; t < ticks; t++) {
            r = advance_counter(a);
            if (r < 0)
                break;
            u->pool += tick;
        }
        pthread_mutex_unlock(&a->tpm_lock);
        if (grant > u->pool)
            grant = u->pool; /* the TPM failed: only what is covered */
    }
    if (grant == 0) {
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 503,
                           "Cannot reserve usage seconds: the TPM is not available "
                           "and no covered seconds are left");
        goto out;
    }
    u->pool -= grant;
    u->reserved_total += grant;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        u->pool += grant;
        u->reserved_total -= grant;
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 500, "no random numbers for the lease id");
        goto out;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(u->leases[free_slot].id + 2 * i, 3, "%02x", rnd[i]);
    u->leases[free_slot].uid = req->peer->uid;
    u->leases[free_slot].secs = grant;
    u->leases[free_slot].expires = now + (time_t)grant + USAGE_LEASE_SLACK;
    http_respond_json(resp, 200,
                      json_pack("{s:s, s:I, s:I}", "lease", u->leases[free_slot].id, "seconds",
                                (json_int_t)grant, "expires_in",
                                (json_int_t)(grant + USAGE_LEASE_SLACK)));
    left = handable(a, granted, base, tick);
    pthread_mutex_unlock(&u->lock);
    /* refill in the background when a quarter of the server's step is left */
    pthread_mutex_lock(&a->online.mu);
    refill = left < (a->online.cache_secs ? a->online.cache_secs : granted) / 4;
    pthread_mutex_unlock(&a->online.mu);
    if (refill)
        agent_online_poke(a);
out:
    json_decref(body);
}

void agent_post_commit(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    struct usage *u = &a->usage;
    json_t *body = NULL, *jlease, *jused;
    const char *key;
    uint64_t used, returned;
    json_t *v;
    size_t i;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "lease") && strcmp(key, "used")) {
            http_respond_error(resp, 400, "unknown field '%.40s'", key);
            goto out;
        }
    }
    jlease = json_object_get(body, "lease");
    jused = json_object_get(body, "used");
    if (!json_is_string(jlease) || !json_is_integer(jused) || json_integer_value(jused) < 0) {
        http_respond_error(resp, 400, "the body must be {\"lease\": ID, \"used\": SECONDS}");
        goto out;
    }
    used = (uint64_t)json_integer_value(jused);
    pthread_mutex_lock(&u->lock);
    expire_leases(u, agent_now());
    for (i = 0; i < USAGE_LEASES_MAX; i++)
        if (u->leases[i].id[0] && !strcmp(u->leases[i].id, json_string_value(jlease)))
            break;
    if (i == USAGE_LEASES_MAX) {
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 404,
                           "no open lease '%.40s' (unknown, already committed, or "
                           "expired and charged in full)",
                           json_string_value(jlease));
        goto out;
    }
    if (u->leases[i].uid != req->peer->uid && req->peer->uid != 0) {
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 403, "lease '%.40s' belongs to another caller",
                           json_string_value(jlease));
        goto out;
    }
    if (used > u->leases[i].secs) {
        uint64_t secs = u->leases[i].secs;
        pthread_mutex_unlock(&u->lock);
        http_respond_error(resp, 400, "'used' (%llu) is more than the lease holds (%llu)",
                           (unsigned long long)used, (unsigned long long)secs);
        goto out;
    }
    returned = u->leases[i].secs - used;
    u->pool += returned;
    u->charged_total += used;
    u->returned_total += returned;
    u->leases[i].id[0] = '\0';
    pthread_mutex_unlock(&u->lock);
    http_respond_json(
        resp, 200,
        json_pack("{s:I, s:I}", "charged", (json_int_t)used, "returned", (json_int_t)returned));
out:
    json_decref(body);
}
