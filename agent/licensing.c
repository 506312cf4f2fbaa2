/* Online licensing (licensing.h, docs/online.md).
 *
 * Locks, outermost first: online.exchange (one exchange with the server at
 * a time), a->lock, usage.lock, tpm_lock; online.mu is innermost and held
 * only around its own fields. No lock but online.exchange is held while the network is used, so
 * services are never kept waiting by the license server. */
#include "agent/licensing.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "agent/activation.h"
#include "agent/agent.h"
#include "agent/api.h"
#include "agent/clock.h"
#include "agent/grace.h"
#include "agent/http.h"
#include "agent/online.h"
#include "common/log.h"
#include "common/macro.h"
#include "tpm/tpm.h"

/* Refusals kept in the TPM (store_state.refusal), with what a restart says. */
static const struct {
    const char *reason;
    const char *text;
} refusals[] = {
    {"", ""},
    {"suspended", "the license is suspended by the vendor"},
    {"expired", "the license has expired on the license server"},
    {"wrong_computer", "the activation belongs to another computer"},
    {"stale_epoch",
     "another copy of this appliance validated this activation (a cloned disk and TPM?)"},
    {"counter_went_back", "the usage counter went back (a restored or cloned TPM?)"},
    {"other", "refused by the license server"},
};

static uint8_t refusal_code(const char *reason) {
    for (size_t i = 1; i < ARRAY_SIZE(refusals) - 1; i++)
        if (strcmp(refusals[i].reason, reason) == 0)
            return (uint8_t)i;
    return (uint8_t)(ARRAY_SIZE(refusals) - 1);
}

static bool is_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static bool from_hex(const char *s, uint8_t *out, size_t n) {
    if (!s || strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (!strchr("0123456789abcdef", s[2 * i]) || !strchr("0123456789abcdef", s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

bool agent_online_applies(const struct agent *a) {
    return a->lic.present && !a->lic.activated_offline && !(a->state.flags & STORE_OFFLINE_MODE) &&
           a->cfg->server && *a->cfg->server;
}

static void online_conf(const struct agent *a, struct online_conf *c) {
    unsigned t = a->cfg->server_timeout_secs ? a->cfg->server_timeout_secs : 30;
    c->server = a->cfg->server;
    c->ca_file = a->cfg->server_ca;
    c->state_dir = a->cfg->state_dir;
    c->timeout_secs = t;
    c->connect_timeout_secs = t < 10 ? t : 10;
    c->vendor_key = a->vendor_key;
}

/* Writes st to the TPM and, when that worked, makes it the agent's state.
 * Caller holds a->lock for writing. */
static int commit_state(struct agent *a, const struct store_state *st) {
    int r;
    pthread_mutex_lock(&a->tpm_lock);
    r = a->tpm ? agent_store_write_state(a->tpm, a->cfg->nv_base, st) : -ENODEV;
    if (r < 0)
        agent_tpm_failed(a, r, "writing the agent state");
    pthread_mutex_unlock(&a->tpm_lock);
    if (r == 0)
        a->state = *st;
    return r;
}

static bool tpm_clock_ms(struct agent *a, uint64_t *ret) {
    struct tpm_clock clk;
    int r;
    pthread_mutex_lock(&a->tpm_lock);
    r = a->tpm ? tpm_read_clock(a->tpm, &clk) : -ENODEV;
    pthread_mutex_unlock(&a->tpm_lock);
    if (r < 0)
        return false;
    *ret = clk.clock_ms;
    return true;
}

/* The hot path's view of the grace period and of a refusal, from the state.
 * Caller holds a->lock for writing. */
static void sync_view(struct agent *a, time_t now) {
    struct license_online *o = &a->lic.online;
    bool applies = agent_online_applies(a);

    o->grace_end = applies ? grace_end(&a->state, now) : 0;
    o->grace_over = applies && grace_over(&a->state);
    o->refused = (a->state.flags & STORE_REFUSED) != 0;
    if (o->refused && !o->refused_reason[0])
        snprintf(o->refused_reason, sizeof(o->refused_reason), "%s",
                 refusals[a->state.refusal < ARRAY_SIZE(refusals) ? a->state.refusal
                                                                  : ARRAY_SIZE(refusals) - 1]
                     .text);
    if (!o->refused)
        o->refused_reason[0] = '\0';
}

/* Logs the moment a grace period runs out, once. */
static void note_grace_over(struct agent *a, bool was_over) {
    char why[sizeof(a->online.last_error)];

    if (was_over || !grace_over(&a->state))
        return;
    pthread_mutex_lock(&a->online.mu); /* innermost: may be taken under a->lock */
    snprintf(why, sizeof(why), "%s", a->online.last_error[0] ? a->online.last_error : "no answer");
    pthread_mutex_unlock(&a->online.mu);
    log_error("the grace period is over: the license is invalid until a validation with the "
              "license server succeeds (%s)",
              why);
}

/* Looks at the running grace period with both clocks; persists when it has
 * just run out (a restart must find it over). */
static void refresh_grace(struct agent *a) {
    uint64_t tpm_ms = 0;
    bool tpm_ok, was_over, running;
    struct store_state st;
    time_t now = agent_now();

    pthread_rwlock_rdlock(&a->lock);
    running = a->state.grace_start != 0;
    pthread_rwlock_unlock(&a->lock);
    tpm_ok = running && tpm_clock_ms(a, &tpm_ms);
    pthread_rwlock_wrlock(&a->lock);
    if (!a->state.grace_start || !agent_online_applies(a)) {
        sync_view(a, now);
        pthread_rwlock_unlock(&a->lock);
        return;
    }
    was_over = grace_over(&a->state);
    st = a->state;
    grace_observe(&st, now, tpm_ms, tpm_ok);
    if (!was_over && grace_over(&st)) {
        if (commit_state(a, &st) < 0)
            a->state = st; /* in memory at least */
    } else
        a->state = st;
    note_grace_over(a, was_over);
    sync_view(a, now);
    pthread_rwlock_unlock(&a->lock);
}

static void schedule(struct agent *a, time_t in_secs) {
    pthread_mutex_lock(&a->online.mu);
    a->online.next_due = in_secs ? agent_mono() + in_secs : 0;
    pthread_mutex_unlock(&a->online.mu);
}

static const char *duration(uint32_t secs, char *buf, size_t len) {
    if (secs % 86400 == 0)
        snprintf(buf, len, "%u days", secs / 86400);
    else
        snprintf(buf, len, "%u h", secs / 3600);
    return buf;
}

static void exchange_failed(struct agent *a, const struct online_result *res, const char *what) {
    uint64_t tpm_ms = 0;
    bool tpm_ok = tpm_clock_ms(a, &tpm_ms), began, validated, was_over;
    struct store_state st;
    time_t now = agent_now();
    unsigned n, wait;
    char when[32], len[32];

    pthread_mutex_lock(&a->online.mu);
    n = ++a->online.failures;
    a->online.connected = false;
    validated = a->online.validated_this_boot;
    snprintf(a->online.last_error, sizeof(a->online.last_error), "%s", res->message);
    pthread_mutex_unlock(&a->online.mu);
    if (strcmp(what, "validation") == 0)
        atomic_fetch_add(&a->online.failed, 1);
    wait = backoff_minutes(n);
    schedule(a, (time_t)wait * 60);

    pthread_rwlock_wrlock(&a->lock);
    st = a->state;
    was_over = grace_over(&st);
    began = grace_begin(&st, res->failure, validated, now, tpm_ms);
    grace_observe(&st, now, tpm_ms, tpm_ok);
    /* every attempt persists how far into the grace period it is */
    if (commit_state(a, &st) < 0)
        a->state = st;
    sync_view(a, now);
    license_format_time(a->lic.online.grace_end, when, sizeof(when));
    if (began)
        log_warn("%s failed: %s; a grace period of %s starts (%s), it ends at %s; next attempt in "
                 "%u minute%s",
                 what, res->message, duration(st.grace_secs, len, sizeof(len)),
                 res->failure == FAILURE_SERVER ? "server-side error" : "server unreachable", when,
                 wait, wait == 1 ? "" : "s");
    else
        log_info("%s attempt %u failed: %s; grace period ends at %s; next attempt in %u minute%s",
                 what, n, res->message, when, wait, wait == 1 ? "" : "s");
    note_grace_over(a, was_over);
    pthread_rwlock_unlock(&a->lock);
}

/* The license is gone on the server: erase it here too. */
static void remove_license(struct agent *a, const char *problem) {
    struct store_state st = {0};
    int r;

    pthread_rwlock_wrlock(&a->lock);
    pthread_mutex_lock(&a->usage.lock);
    pthread_mutex_lock(&a->tpm_lock);
    r = a->tpm ? agent_store_write_license(a->tpm, a->cfg->nv_base, NULL, 0) : -ENODEV;
    if (r == 0)
        r = agent_store_write_state(a->tpm, a->cfg->nv_base, &st);
    if (r < 0)
        agent_tpm_failed(a, r, "erasing the license");
    pthread_mutex_unlock(&a->tpm_lock);
    for (size_t i = 0; i < USAGE_LEASES_MAX; i++)
        a->usage.leases[i].id[0] = '\0';
    a->usage.pool = 0;
    a->usage.closed = false;
    pthread_mutex_unlock(&a->usage.lock);
    memset(&a->lic, 0, sizeof(a->lic));
    memset(&a->lic_counter, 0, sizeof(a->lic_counter));
    a->state = st;
    snprintf(a->license_problem, sizeof(a->license_problem), "%s", problem);
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_lock(&a->online.mu);
    a->online.next_due = 0;
    a->online.failures = 0;
    pthread_mutex_unlock(&a->online.mu);
}

static void refused(struct agent *a, const struct online_result *res, const char *what) {
    struct store_state st;
    uint8_t code = refusal_code(res->reason);
    char problem[256];

    if (strcmp(what, "validation") == 0)
        atomic_fetch_add(&a->online.refused, 1);
    pthread_mutex_lock(&a->online.mu);
    a->online.connected = true;
    a->online.failures = 0;
    snprintf(a->online.last_error, sizeof(a->online.last_error), "%s", res->message);
    pthread_mutex_unlock(&a->online.mu);
    if (strcmp(res->reason, "not_active") == 0 || strcmp(res->reason, "unknown_license") == 0) {
        snprintf(problem, sizeof(problem),
                 "the license was removed: the license server no longer knows this activation "
                 "(%.150s)",
                 res->message);
        log_warn("%s: %s", what, problem);
        remove_license(a, problem);
        return;
    }
    schedule(a, VALIDATE_EVERY_SECS);
    pthread_rwlock_wrlock(&a->lock);
    if (!(a->state.flags & STORE_REFUSED) || a->state.refusal != code)
        log_warn("%s: the license server refused the license (%s): %s", what, res->reason,
                 res->message);
    st = a->state;
    st.flags |= STORE_REFUSED;
    st.refusal = code;
    if (commit_state(a, &st) < 0)
        a->state = st;
    snprintf(a->lic.online.refused_reason, sizeof(a->lic.online.refused_reason), "%.150s (%.40s)",
             res->message, res->reason);
    sync_view(a, agent_now());
    pthread_rwlock_unlock(&a->lock);
}

/* A success: the epoch moves on, the grace period and any refusal end. */
static void succeeded(struct agent *a, const uint8_t epoch[STORE_EPOCH_LEN], json_t *payload,
                      const char *what) {
    json_t *after = json_object_get(payload, "validate_after");
    json_t *cache = json_object_get(payload, "cache_secs");
    time_t now = agent_now(), in = VALIDATE_EVERY_SECS;
    struct store_state st;
    bool was_bad;

    if (json_is_integer(after) && json_integer_value(after) >= 60 &&
        json_integer_value(after) <= VALIDATE_EVERY_SECS)
        in = (time_t)json_integer_value(after);
    if (strcmp(what, "validation") == 0)
        atomic_fetch_add(&a->online.ok, 1);
    pthread_mutex_lock(&a->online.mu);
    was_bad = a->online.failures > 0;
    a->online.failures = 0;
    a->online.connected = true;
    a->online.validated_this_boot = true;
    a->online.last_error[0] = '\0';
    if (json_is_integer(cache) && json_integer_value(cache) > 0)
        a->online.cache_secs = (uint64_t)json_integer_value(cache);
    a->online.next_due = agent_mono() + in;
    pthread_mutex_unlock(&a->online.mu);

    pthread_rwlock_wrlock(&a->lock);
    was_bad = was_bad || a->state.grace_start || (a->state.flags & STORE_REFUSED);
    st = a->state;
    memcpy(st.epoch, epoch, STORE_EPOCH_LEN);
    memset(st.next_epoch, 0, STORE_EPOCH_LEN);
    grace_succeeded(&st, now);
    if (commit_state(a, &st) < 0)
        a->state = st; /* the server moved on; the pending epoch stays valid for a retry */
    sync_view(a, now);
    pthread_rwlock_unlock(&a->lock);
    if (was_bad)
        log_info("%s succeeded: the license is valid again, no grace period runs", what);
    else
        log_debug("%s succeeded", what);
}

/* A certificate in a validation answer: the same activation, counter and
 * base, a ceiling that only grows. Then stored like any other. */
static int take_new_certificate(struct agent *a, const char *cert, size_t len, char *reason,
                                size_t reasonlen) {
    struct cert_license l;
    char code[65], jti[65];
    uint64_t granted, base;
    char msg[300];

    if (cert_license_verify(cert, len, a->vendor_key, agent_now(), &l, msg, sizeof(msg)) !=
        CERT_OK) {
        snprintf(reason, reasonlen, "%s", msg);
        return -EINVAL;
    }
    pthread_rwlock_rdlock(&a->lock);
    snprintf(code, sizeof(code), "%s", a->lic.code);
    snprintf(jti, sizeof(jti), "%s", a->lic.jti);
    granted = a->lic.secs_granted;
    base = a->lic_counter.base;
    pthread_rwlock_unlock(&a->lock);
    if (strcmp(l.jti, jti) != 0 || l.counter.value != base || l.activated_offline) {
        snprintf(reason, reasonlen,
                 "the new certificate is for another activation or counter base");
        return -EINVAL;
    }
    if (l.secs_granted < granted) {
        snprintf(reason, reasonlen, "the new certificate lowers the granted seconds (%llu < %llu)",
                 (unsigned long long)l.secs_granted, (unsigned long long)granted);
        return -EINVAL;
    }
    return agent_license_apply(a, cert, len, code, true, reason, reasonlen);
}

/* consumed: charged seconds (covered by the counter, not in the pool). */
static void consumption(struct agent *a, uint64_t base, uint32_t tick, uint64_t *ret_counter,
                        uint64_t *ret_consumed) {
    uint64_t covered;
    pthread_mutex_lock(&a->usage.lock);
    *ret_counter = a->counter_value;
    covered = a->counter_value > base ? (a->counter_value - base) * tick : 0;
    *ret_consumed = covered > a->usage.pool ? covered - a->usage.pool : 0;
    pthread_mutex_unlock(&a->usage.lock);
}

static void validate_once(struct agent *a) {
    struct online_conf conf;
    struct online_result res;
    struct store_state st;
    _cleanup_(json_decrefp) json_t *req = NULL;
    char code[65], jti[65], nonce[ONLINE_NONCE_LEN + 1], ep[33], nep[33], reason[400];
    uint64_t base, granted, counter, consumed, cache, left;
    uint8_t epoch[STORE_EPOCH_LEN];
    uint32_t tick;
    json_t *cert;
    int r;

    pthread_rwlock_wrlock(&a->lock);
    if (!agent_online_applies(a)) {
        pthread_rwlock_unlock(&a->lock);
        schedule(a, 0);
        return;
    }
    snprintf(code, sizeof(code), "%s", a->lic.code);
    snprintf(jti, sizeof(jti), "%s", a->lic.jti);
    base = a->lic_counter.base;
    tick = a->lic.tick_secs ? a->lic.tick_secs : 60;
    granted = a->lic.secs_granted;
    /* the next epoch is in the TPM before the server hears of it */
    st = a->state;
    r = 0;
    if (is_zero(st.next_epoch, STORE_EPOCH_LEN)) {
        r = RAND_bytes(st.next_epoch, STORE_EPOCH_LEN) == 1 ? commit_state(a, &st) : -EIO;
    }
    pthread_rwlock_unlock(&a->lock);
    if (r < 0) {
        log_warn("validation postponed: the next epoch cannot be kept in the TPM");
        schedule(a, 60);
        return;
    }
    to_hex(st.epoch, STORE_EPOCH_LEN, ep);
    to_hex(st.next_epoch, STORE_EPOCH_LEN, nep);
    consumption(a, base, tick, &counter, &consumed);
    pthread_mutex_lock(&a->online.mu);
    cache = a->online.cache_secs ? a->online.cache_secs : granted;
    pthread_mutex_unlock(&a->online.mu);
    left = granted > consumed ? granted - consumed : 0;
    if (online_nonce(nonce) < 0)
        return;
    req = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b}", "v", 1, "license", code,
                    "activation", jti, "computer_id", a->computer_id, "nonce", nonce, "epoch", ep,
                    "next_epoch", nep, "counter", (json_int_t)counter, "consumed_secs",
                    (json_int_t)consumed, "refill", left < cache / 4);
    if (!req)
        return;
    online_conf(a, &conf);
    online_exchange(&conf, "validate", req, nonce, &res);
    if (res.outcome == ONLINE_OK) {
        const char *got = json_string_value(json_object_get(res.payload, "epoch"));
        if (!from_hex(got, epoch, STORE_EPOCH_LEN) || memcmp(epoch, st.next_epoch, 16) != 0) {
            res.outcome = ONLINE_FAILED;
            res.failure = FAILURE_SERVER;
            snprintf(res.message, sizeof(res.message),
                     "the license server's answer does not confirm the epoch sent");
        }
        cert = json_object_get(res.payload, "license_certificate");
        if (res.outcome == ONLINE_OK && json_is_string(cert)) {
            r = take_new_certificate(a, json_string_value(cert), json_string_length(cert), reason,
                                     sizeof(reason));
            if (r < 0) {
                res.outcome = ONLINE_FAILED;
                res.failure = FAILURE_SERVER;
                snprintf(res.message, sizeof(res.message),
                         "the license certificate in the answer is refused: %.300s", reason);
            } else
                log_info("new license certificate from the license server: %llu seconds granted",
                         (unsigned long long)a->lic.secs_granted);
        }
    }
    if (res.outcome == ONLINE_OK)
        succeeded(a, epoch, res.payload, "validation");
    else if (res.outcome == ONLINE_REFUSED)
        refused(a, &res, "validation");
    else
        exchange_failed(a, &res, "validation");
    online_result_clear(&res);
}

static void *validation_thread(void *arg) {
    struct agent *a = arg;

    pthread_mutex_lock(&a->online.mu);
    while (!a->online.stop) {
        time_t now = agent_mono(), wait;
        long cap = agent_clock_wait_cap_ms(), wait_ms;
        struct timespec ts;
        uint64_t left_ms = 0;

        if (a->online.poke || (a->online.next_due && now >= a->online.next_due)) {
            a->online.poke = false;
            /* validate_once schedules the next one; should it not get that
             * far (no memory, no randomness), it tries again in a minute */
            a->online.next_due = now + 60;
            pthread_mutex_unlock(&a->online.mu);
            pthread_mutex_lock(&a->online.exchange);
            validate_once(a);
            pthread_mutex_unlock(&a->online.exchange);
            pthread_mutex_lock(&a->online.mu);
            continue;
        }
        pthread_mutex_unlock(&a->online.mu);
        refresh_grace(a);
        pthread_rwlock_rdlock(&a->lock);
        if (a->state.grace_start && !grace_over(&a->state))
            left_ms = grace_left_ms(&a->state);
        pthread_rwlock_unlock(&a->lock);
        pthread_mutex_lock(&a->online.mu);
        if (a->online.stop || a->online.poke)
            continue;
        wait = a->online.next_due ? a->online.next_due - now : 3600;
        if (left_ms && (time_t)(left_ms / 1000) + 1 < wait)
            wait = (time_t)(left_ms / 1000) + 1;
        wait_ms = wait * 1000;
        if (cap > 0 && wait_ms > cap)
            wait_ms = cap;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->online.wake, &a->online.mu, &ts);
    }
    pthread_mutex_unlock(&a->online.mu);
    return NULL;
}

int agent_online_start(struct agent *a) {
    pthread_condattr_t ca;
    bool applies;
    int r;

    pthread_mutex_init(&a->online.exchange, NULL);
    pthread_mutex_init(&a->online.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->online.wake, &ca);
    pthread_condattr_destroy(&ca);
    /* what the TPM says about a grace period counts before the first request */
    refresh_grace(a);
    pthread_rwlock_rdlock(&a->lock);
    applies = agent_online_applies(a);
    pthread_rwlock_unlock(&a->lock);
    a->online.poke = applies; /* validate at start */
    if (!a->cfg->server || !*a->cfg->server)
        return 0;
    r = -pthread_create(&a->online.thread, NULL, validation_thread, a);
    if (r == 0)
        a->online.thread_started = true;
    return r;
}

void agent_online_stop(struct agent *a) {
    if (!a->online.thread_started)
        return;
    pthread_mutex_lock(&a->online.mu);
    a->online.stop = true;
    pthread_cond_signal(&a->online.wake);
    pthread_mutex_unlock(&a->online.mu);
    pthread_join(a->online.thread, NULL);
    a->online.thread_started = false;
}

void agent_online_poke(struct agent *a) {
    if (!a->online.thread_started)
        return;
    pthread_mutex_lock(&a->online.mu);
    a->online.poke = true;
    pthread_cond_signal(&a->online.wake);
    pthread_mutex_unlock(&a->online.mu);
}

/* ---- POST /v1/management/license: online activation ------------------------ */

void agent_post_license(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    _cleanup_(json_decrefp) json_t *body = NULL, *areq = NULL;
    _cleanup_free_ char *text = NULL;
    struct online_conf conf;
    struct online_result res;
    struct store_state old, st;
    char nonce[33], reason[400], present_code[65] = "";
    const char *activation, *cert, *ep;
    uint8_t epoch[STORE_EPOCH_LEN];
    bool offline;
    int r;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    pthread_rwlock_rdlock(&a->lock);
    offline = agent_offline_mode(a);
    if (a->lic.present)
        snprintf(present_code, sizeof(present_code), "%s", a->lic.code);
    pthread_rwlock_unlock(&a->lock);
    if (offline) {
        http_respond_error(resp, 409, "Cannot activate when offline: offline mode is on");
        return;
    }
    if (!a->cfg->server || !*a->cfg->server) {
        http_respond_error(resp, 503,
                           "Cannot activate when offline: no license server is configured on "
                           "this appliance (use offline activation: POST and PUT "
                           "/v1/management/license/offlineactivation)");
        return;
    }
    if (present_code[0]) {
        http_respond_error(resp, 409,
                           "A license is already applied (%s): remove it first with DELETE "
                           "/v1/management/license",
                           present_code);
        return;
    }
    pthread_mutex_lock(&a->online.exchange);
    if (agent_activation_make(a, body, "Cannot activate", &text, nonce, resp) < 0)
        goto out;
    areq = json_pack("{s:s}", "activation_certificate", text);
    if (!areq) {
        http_respond_error(resp, 500, "out of memory");
        goto out;
    }
    online_conf(a, &conf);
    online_exchange(&conf, "activate", areq, nonce, &res);
    if (res.outcome == ONLINE_FAILED) {
        log_warn("activation failed: %s", res.message);
        http_respond_error(resp, 503, "Cannot activate: %s", res.message);
        goto out_res;
    }
    if (res.outcome == ONLINE_REFUSED) {
        log_warn("activation refused by the license server (%s): %s", res.reason, res.message);
        if (strcmp(res.reason, "unknown_license") == 0)
            http_respond_error(resp, 400, "Invalid license code: %s", res.message);
        else
            http_respond_error(resp, 403, "Cannot activate: %s", res.message);
        goto out_res;
    }
    activation = json_string_value(json_object_get(res.payload, "activation"));
    cert = json_string_value(json_object_get(res.payload, "license_certificate"));
    ep = json_string_value(json_object_get(res.payload, "epoch"));
    if (!activation || !cert || !from_hex(ep, epoch, STORE_EPOCH_LEN)) {
        http_respond_error(resp, 502,
                           "Cannot activate: the license server's answer lacks the activation, "
                           "its epoch or the license certificate");
        goto out_res;
    }
    /* the epoch goes to the TPM with the license, in the same state write */
    pthread_rwlock_wrlock(&a->lock);
    old = a->state;
    st = a->state;
    memcpy(st.epoch, epoch, STORE_EPOCH_LEN);
    memset(st.next_epoch, 0, STORE_EPOCH_LEN);
    grace_succeeded(&st, agent_now());
    st.flags &= ~(uint32_t)STORE_OFFLINE_MODE;
    a->state = st;
    pthread_rwlock_unlock(&a->lock);
    r = agent_license_apply(a, cert, strlen(cert),
                            json_string_value(json_object_get(body, "license")), true, reason,
                            sizeof(reason));
    if (r == 0 && strcmp(a->lic.jti, activation) != 0) {
        snprintf(reason, sizeof(reason), "its serial is not the activation ID");
        r = -EINVAL;
    }
    if (r < 0) {
        pthread_rwlock_wrlock(&a->lock);
        a->state = old;
        pthread_rwlock_unlock(&a->lock);
        log_error("the license server's certificate is not accepted: %s", reason);
        http_respond_error(resp, r == -EINVAL ? 502 : 503,
                           "Cannot activate: the license certificate from the license server is "
                           "not accepted: %s",
                           reason);
        goto out_res;
    }
    pthread_mutex_lock(&a->online.mu);
    a->online.validated_this_boot = true;
    a->online.connected = true;
    a->online.failures = 0;
    pthread_mutex_unlock(&a->online.mu);
    succeeded(a, epoch, res.payload, "activation");
    log_info("license ...%s activated online (activation %.8s)",
             license_code_tail(json_string_value(json_object_get(body, "license"))), activation);
    pthread_rwlock_rdlock(&a->lock);
    http_respond_json(resp, 200, agent_license_status_json(a));
    pthread_rwlock_unlock(&a->lock);
out_res:
    online_result_clear(&res);
out:
    pthread_mutex_unlock(&a->online.exchange);
}

/* ---- DELETE /v1/management/license: return the unused seconds --------------- */

static void reopen_usage(struct agent *a) {
    pthread_mutex_lock(&a->usage.lock);
    a->usage.closed = false;
    pthread_mutex_unlock(&a->usage.lock);
}

void agent_delete_license(void *ud, const struct http_request *req, struct http_response *resp) {
    struct agent *a = ud;
    _cleanup_(json_decrefp) json_t *dreq = NULL;
    struct online_conf conf;
    struct online_result res;
    char code[65], jti[65], nonce[ONLINE_NONCE_LEN + 1], ep[33], nep[33], problem[256];
    uint64_t base, counter, consumed;
    json_int_t returned;
    struct store_state st;
    bool present, offline;
    uint32_t tick;

    pthread_mutex_lock(&a->online.exchange);
    pthread_rwlock_rdlock(&a->lock);
    present = a->lic.present;
    offline = agent_offline_mode(a);
    snprintf(code, sizeof(code), "%s", a->lic.code);
    snprintf(jti, sizeof(jti), "%s", a->lic.jti);
    base = a->lic_counter.base;
    tick = a->lic.tick_secs ? a->lic.tick_secs : 60;
    st = a->state;
    pthread_rwlock_unlock(&a->lock);
    if (!present) {
        http_respond_error(resp, 409, "No license is applied");
        goto out;
    }
    if (offline) {
        http_respond_error(resp, 409, "Cannot remove license in offline mode");
        goto out;
    }
    if (!a->cfg->server || !*a->cfg->server) {
        http_respond_error(resp, 503,
                           "Cannot remove license: no license server is configured on "
                           "this appliance to return the unused seconds to");
        goto out;
    }
    /* no new seconds from here: what is charged is final */
    pthread_mutex_lock(&a->usage.lock);
    a->usage.closed = true;
    pthread_mutex_unlock(&a->usage.lock);
    consumption(a, base, tick, &counter, &consumed);
    to_hex(st.epoch, STORE_EPOCH_LEN, ep);
    to_hex(st.next_epoch, STORE_EPOCH_LEN, nep);
    if (online_nonce(nonce) < 0) {
        reopen_usage(a);
        http_respond_error(resp, 500, "no random numbers for the nonce");
        goto out;
    }
    dreq = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "v", 1, "license", code,
                     "activation", jti, "computer_id", a->computer_id, "nonce", nonce, "epoch", ep,
                     "counter", (json_int_t)counter, "consumed_secs", (json_int_t)consumed);
    if (!dreq) {
        reopen_usage(a);
        http_respond_error(resp, 500, "out of memory");
        goto out;
    }
    if (!is_zero(st.next_epoch, STORE_EPOCH_LEN))
        json_object_set_new(dreq, "next_epoch", json_string(nep));
    online_conf(a, &conf);
    online_exchange(&conf, "deactivate", dreq, nonce, &res);
    if (res.outcome == ONLINE_FAILED) {
        reopen_usage(a);
        log_warn("license removal failed: %s", res.message);
        http_respond_error(resp, 503, "Cannot remove license: %s. The license is unchanged.",
                           res.message);
        goto out_res;
    }
    if (res.outcome == ONLINE_REFUSED && strcmp(res.reason, "not_active") != 0 &&
        strcmp(res.reason, "unknown_license") != 0) {
        reopen_usage(a);
        log_warn("license removal refused by the license server (%s): %s", res.reason, res.message);
        http_respond_error(resp, 409, "Cannot remove license: %s", res.message);
        goto out_res;
    }
    returned = res.outcome == ONLINE_OK
                   ? json_integer_value(json_object_get(res.payload, "returned_secs"))
                   : 0;
    snprintf(problem, sizeof(problem), "License is invalid (the license was removed)");
    remove_license(a, problem);
    log_info("license ...%s removed; %lld unused seconds returned to the license server",
             license_code_tail(code), (long long)returned);
    http_respond_json(
        resp, 200, json_pack("{s:I}", "transcription_secs_returned", returned < 0 ? 0 : returned));
out_res:
    online_result_clear(&res);
out:
    pthread_mutex_unlock(&a->online.exchange);
}
