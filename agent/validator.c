/* The validator (validator.h). */
#include "agent/validator.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "agent/clock.h"
#include "agent/ledger.h"
#include "agent/online.h"
#include "agent/tpmio.h"
#include "common/hex.h"
#include "common/json.h"
#include "common/licensecode.h"
#include "common/log.h"
#include "common/macro.h"

struct validator {
    struct validator_config cfg;
    struct ledger *ledger;
    pthread_mutex_t exchange; /* one exchange with the server at a time */

    pthread_mutex_t mu; /* the fields below */
    pthread_cond_t wake;
    pthread_t thread;
    bool started;
    bool stop;
    bool poke;
    bool validated_this_boot; /* a validation succeeded since the license was applied */
    bool connected;
    unsigned failures; /* failed exchanges in a row */
    time_t next_due;   /* agent_mono() when the next validation is due; 0: none */
    char last_error[400];
    uint64_t ok, failed, refused;
    /* zero-touch: activate cfg.zero_touch while the TPM holds no license */
    struct activation_fields zero_touch;
    bool zero_touch_pending;
    unsigned zero_touch_failures;
    time_t zero_touch_due; /* agent_mono() of the next attempt */
};

int validator_new(const struct validator_config *cfg, struct ledger *ledger,
                  struct validator **ret) {
    struct validator *v = calloc(1, sizeof(*v));
    pthread_condattr_t ca;

    if (!v)
        return -ENOMEM;
    v->cfg = *cfg;
    v->ledger = ledger;
    if (cfg->zero_touch) {
        v->zero_touch = *cfg->zero_touch;
        v->zero_touch_pending = true;
    }
    v->cfg.zero_touch = NULL;
    pthread_mutex_init(&v->exchange, NULL);
    pthread_mutex_init(&v->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&v->wake, &ca);
    pthread_condattr_destroy(&ca);
    *ret = v;
    return 0;
}

static bool server_configured(const struct validator *v) {
    return v->cfg.server && *v->cfg.server;
}

static void online_conf(const struct validator *v, struct online_conf *c) {
    unsigned t = v->cfg.timeout_secs ? v->cfg.timeout_secs : 30;
    c->server = v->cfg.server;
    c->ca_file = v->cfg.server_ca;
    c->state_fd = v->cfg.state_fd;
    c->timeout_secs = t;
    c->connect_timeout_secs = t < 10 ? t : 10;
    c->vendor_key = v->cfg.vendor_key;
}

void validator_status(struct validator *v, struct validator_status *ret) {
    time_t mono = agent_mono(), now = agent_now();

    pthread_mutex_lock(&v->mu);
    ret->connected = v->connected;
    ret->next_due = v->next_due ? now + (v->next_due > mono ? v->next_due - mono : 0) : 0;
    ret->ok = v->ok;
    ret->failed = v->failed;
    ret->refused = v->refused;
    snprintf(ret->last_error, sizeof(ret->last_error), "%s", v->last_error);
    pthread_mutex_unlock(&v->mu);
}

void validator_poke(struct validator *v) {
    pthread_mutex_lock(&v->mu);
    if (v->started) {
        v->poke = true;
        pthread_cond_signal(&v->wake);
    }
    pthread_mutex_unlock(&v->mu);
}

/* After a failure the retry waits for its back-off: a refill asked for by
 * every reservation would otherwise send one request, and write the grace
 * record to the TPM, per reservation while the server is away. */
void validator_refill(struct validator *v) {
    pthread_mutex_lock(&v->mu);
    if (v->started && !v->failures) {
        v->poke = true;
        pthread_cond_signal(&v->wake);
    }
    pthread_mutex_unlock(&v->mu);
}

/* ---- reading answers --------------------------------------------------------- */

/* The fields of a verified answer that the ledger records. Answers may
 * carry fields this agent does not know (a newer server): those are not
 * refused, but every field read is checked strictly. */
static void read_answer(const struct online_result *res, struct online_answer *a) {
    char msg[300], epoch[HEX_BUFLEN(STORE_EPOCH_LEN)];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    uint64_t cache = 0;
    json_t *cert;

    memset(a, 0, sizeof(*a));
    snprintf(a->message, sizeof(a->message), "%s", res->message);
    if (res->outcome == ONLINE_FAILED) {
        a->kind = ANSWER_FAILED;
        a->failure = res->failure;
        return;
    }
    if (res->outcome == ONLINE_REFUSED) {
        a->kind = ANSWER_REFUSED;
        snprintf(a->reason, sizeof(a->reason), "%s", res->reason);
        return;
    }
    a->kind = ANSWER_OK;
    cert = json_object_get(res->payload, "license_certificate");
    cj_string(&c, res->payload, "epoch", CJ_REQUIRED, CJ_IDENTIFIER, 32, epoch, sizeof(epoch));
    cj_uint(&c, res->payload, "cache_secs", false, 0, UINT32_MAX, &cache);
    if (!c.failed && hex_decode_exact(epoch, a->epoch, STORE_EPOCH_LEN) < 0)
        cj_fail(&c, "field 'epoch' must be 16 bytes of lower-case hex");
    if (cert && !json_is_string(cert))
        cj_fail(&c, "field 'license_certificate' must be a string");
    if (c.failed) {
        a->kind = ANSWER_FAILED;
        a->failure = FAILURE_SERVER;
        snprintf(a->message, sizeof(a->message), "the license server's answer is malformed: %s",
                 msg);
        return;
    }
    if (cert) {
        a->certificate = json_string_value(cert);
        a->certificate_len = json_string_length(cert);
    }
    a->cache_secs = cache;
}

/* ---- validation ------------------------------------------------------------------ */

static void schedule(struct validator *v, time_t in_secs) {
    v->next_due = in_secs ? agent_mono() + in_secs : 0;
}

static json_t *request_json(const struct online_request *q, const char *computer_id,
                            const char *nonce) {
    char ep[HEX_BUFLEN(STORE_EPOCH_LEN)], nep[HEX_BUFLEN(STORE_EPOCH_LEN)];
    static const uint8_t zero[STORE_EPOCH_LEN];
    json_t *o;

    hex_encode(q->epoch, STORE_EPOCH_LEN, ep);
    hex_encode(q->next_epoch, STORE_EPOCH_LEN, nep);
    o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "v", 1, "license", q->code,
                  "activation", q->jti, "computer_id", computer_id, "nonce", nonce, "epoch", ep,
                  "counter", (json_int_t)q->counter, "base", (json_int_t)q->base, "consumed_secs",
                  (json_int_t)q->consumed_secs);
    if (o && q->tpm_clock &&
        json_object_set_new(o, "tpm_clock", json_integer((json_int_t)q->tpm_clock)) < 0) {
        json_decref(o);
        return NULL;
    }
    /* the hour counter, which the new certificate's time floor is bound to */
    if (o && q->floor.index &&
        json_object_set_new(o, "time_floor", cert_counter_to_json(&q->floor, "value")) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o && memcmp(q->next_epoch, zero, sizeof(zero)) != 0)
        json_object_set_new(o, "next_epoch", json_string(nep));
    return o;
}

static const char *computer_id_of(struct validator *v, char buf[HWID_ID_STRLEN]) {
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(v->ledger);
    snprintf(buf, HWID_ID_STRLEN, "%s", s->computer_id);
    return buf;
}

static void validate_once(struct validator *v) {
    _cleanup_(json_decrefp) json_t *req = NULL;
    struct online_request q;
    struct online_conf conf;
    struct online_result res = {0};
    struct online_answer a;
    char nonce[ONLINE_NONCE_LEN + 1], why[TPMIO_WHY_LEN] = "", msg[400], id[HWID_ID_STRLEN];
    time_t in = VALIDATE_EVERY_SECS;
    unsigned n, wait;
    int r, kind;

    r = ledger_validation_prepare(v->ledger, &q, why);
    if (r == -ENOENT) {
        pthread_mutex_lock(&v->mu);
        schedule(v, 0);
        pthread_mutex_unlock(&v->mu);
        return;
    }
    if (r < 0) {
        log_warn("validation postponed: %s", why);
        return; /* tried again in a minute */
    }
    if (online_nonce(nonce) < 0 || !(req = request_json(&q, computer_id_of(v, id), nonce)))
        return;
    json_object_set_new(req, "refill", json_boolean(q.refill));
    online_conf(v, &conf);
    online_exchange(&conf, "validate", req, nonce, &res);
    read_answer(&res, &a);
    if (a.kind == ANSWER_OK && memcmp(a.epoch, q.next_epoch, STORE_EPOCH_LEN) != 0) {
        a.kind = ANSWER_FAILED;
        a.failure = FAILURE_SERVER;
        snprintf(a.message, sizeof(a.message),
                 "the license server's answer does not confirm the epoch sent");
    }
    pthread_mutex_lock(&v->mu);
    bool validated = v->validated_this_boot;
    pthread_mutex_unlock(&v->mu);
    kind = ledger_validation_record(v->ledger, &q, &a, validated, msg);
    if (kind == ANSWER_OK) {
        json_t *after = json_object_get(res.payload, "validate_after");
        _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(v->ledger);
        time_t now = agent_now();
        if (json_is_integer(after) && json_integer_value(after) >= 60 &&
            json_integer_value(after) <= VALIDATE_EVERY_SECS)
            in = (time_t)json_integer_value(after);
        /* validate again by the middle of the signed validity, so that a
         * short one (the server's choice) is renewed in time */
        if (s->lic.window_until > now && (s->lic.window_until - now) / 2 < in)
            in = (s->lic.window_until - now) / 2 < 60 ? 60 : (s->lic.window_until - now) / 2;
    }

    pthread_mutex_lock(&v->mu);
    switch (kind) {
    case ANSWER_OK:
        v->ok++;
        if (v->failures)
            log_info("validation succeeded after %u failed attempt%s", v->failures,
                     v->failures == 1 ? "" : "s");
        v->failures = 0;
        v->connected = true;
        v->validated_this_boot = true;
        v->last_error[0] = '\0';
        schedule(v, in);
        break;
    case ANSWER_REFUSED:
        v->refused++;
        v->failures = 0;
        v->connected = true;
        snprintf(v->last_error, sizeof(v->last_error), "%s", msg);
        schedule(v, VALIDATE_EVERY_SECS);
        break;
    default:
        v->failed++;
        n = ++v->failures;
        v->connected = false;
        snprintf(v->last_error, sizeof(v->last_error), "%s", msg);
        wait = backoff_minutes(n);
        schedule(v, (time_t)wait * 60);
        log_info("validation attempt %u failed: %s; next attempt in %u minute%s", n, msg, wait,
                 wait == 1 ? "" : "s");
    }
    pthread_mutex_unlock(&v->mu);
    online_result_clear(&res);
}

/* How long to sleep: until the next validation, or the end of a running
 * grace period (to say it ended), whichever is first. Caller holds mu. */
static long wait_ms(struct validator *v, time_t mono) {
    _cleanup_(snapshot_putp) const struct snapshot *s = ledger_snapshot(v->ledger);
    time_t wait = v->next_due ? v->next_due - mono : 3600, now = agent_now();

    if (v->zero_touch_pending && v->zero_touch_due - mono < wait)
        wait = v->zero_touch_due - mono;
    long cap = agent_clock_wait_cap_ms(), ms;

    if (s->lic.online.grace_end && !s->lic.online.grace_over && s->lic.online.grace_end > now &&
        s->lic.online.grace_end - now + 1 < wait)
        wait = s->lic.online.grace_end - now + 1;
    if (wait < 0)
        wait = 0;
    ms = (long)wait * 1000;
    return cap > 0 && ms > cap ? cap : ms;
}

/* One zero-touch attempt: activates the license of the license file when
 * the TPM holds none (a license in the TPM wins over the file), and plans
 * the next attempt on the back-off schedule after a failure. Caller holds
 * mu; it is released during the exchange. */
static void zero_touch_once(struct validator *v) {
    char tail[LICENSE_CODE_LOG_BUFLEN];
    struct activation_fields f = v->zero_touch;
    struct outcome o;
    unsigned n, wait;
    bool ok;

    pthread_mutex_unlock(&v->mu);
    if (!ledger_can_activate(v->ledger, &o)) {
        pthread_mutex_lock(&v->mu);
        v->zero_touch_pending = false; /* a license is there already */
        return;
    }
    ok = validator_activate(v, &f, &o);
    secure_wipe(&f, sizeof(f));
    pthread_mutex_lock(&v->mu);
    if (ok) {
        v->zero_touch_pending = false;
        log_info("license %s activated from the license file (zero-touch)",
                 license_code_for_log(v->zero_touch.license, tail));
        return;
    }
    n = ++v->zero_touch_failures;
    wait = backoff_minutes(n);
    v->zero_touch_due = agent_mono() + (time_t)wait * 60;
    log_warn("zero-touch activation of license %s, attempt %u, failed: %s; next attempt in %u "
             "minute%s",
             license_code_for_log(v->zero_touch.license, tail), n, o.msg, wait,
             wait == 1 ? "" : "s");
}

static void *validation_thread(void *arg) {
    struct validator *v = arg;

    pthread_mutex_lock(&v->mu);
    while (!v->stop) {
        time_t now = agent_mono();
        struct timespec ts;
        long ms;

        if (v->zero_touch_pending && now >= v->zero_touch_due) {
            zero_touch_once(v);
            continue;
        }
        if (v->poke || (v->next_due && now >= v->next_due)) {
            v->poke = false;
            /* validate_once schedules the next one; should it not get that
             * far (no memory, no randomness, the TPM away), it tries again
             * in a minute */
            v->next_due = now + 60;
            pthread_mutex_unlock(&v->mu);
            pthread_mutex_lock(&v->exchange);
            validate_once(v);
            pthread_mutex_unlock(&v->exchange);
            pthread_mutex_lock(&v->mu);
            continue;
        }
        ms = wait_ms(v, now);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&v->wake, &v->mu, &ts);
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

int validator_start(struct validator *v) {
    int r;

    if (!server_configured(v))
        return 0;
    pthread_mutex_lock(&v->mu);
    v->poke = true; /* validate at start */
    r = -pthread_create(&v->thread, NULL, validation_thread, v);
    if (r == 0)
        v->started = true;
    pthread_mutex_unlock(&v->mu);
    return r;
}

void validator_free(struct validator *v) {
    if (!v)
        return;
    secure_wipe(&v->zero_touch, sizeof(v->zero_touch));
    pthread_mutex_lock(&v->mu);
    v->stop = true;
    pthread_cond_signal(&v->wake);
    pthread_mutex_unlock(&v->mu);
    if (v->started)
        pthread_join(v->thread, NULL);
    pthread_cond_destroy(&v->wake);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->exchange);
    free(v);
}

/* ---- activation ------------------------------------------------------------------- */

bool validator_activate(struct validator *v, const struct activation_fields *f, struct outcome *o) {
    _cleanup_(json_decrefp) json_t *areq = NULL;
    _cleanup_free_ char *text = NULL;
    struct online_conf conf;
    struct online_result res = {0};
    char nonce[33], msg[300], activation[65], epoch_hex[HEX_BUFLEN(STORE_EPOCH_LEN)];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    uint8_t epoch[STORE_EPOCH_LEN];
    uint64_t tpm_clock = 0;
    json_t *cert;
    bool ok = false;

    if (!ledger_can_activate(v->ledger, o))
        return false;
    if (!server_configured(v))
        return outcome_set(o, OUTCOME_UNAVAILABLE,
                           "Cannot activate when offline: no license server is configured on "
                           "this appliance (use offline activation: POST and PUT "
                           "/v1/management/license/offlineactivation)");
    pthread_mutex_lock(&v->exchange);
    if (!ledger_activation_request(v->ledger, f, &text, nonce, o)) {
        snprintf(msg, sizeof(msg), "%.290s", o->msg);
        outcome_set(o, o->kind, "Cannot activate: %s", msg);
        goto out;
    }
    if (!ledger_tpm_clock(v->ledger, &tpm_clock, o)) {
        snprintf(msg, sizeof(msg), "%.290s", o->msg);
        outcome_set(o, o->kind, "Cannot activate: %s", msg);
        goto out;
    }
    /* the clock the license server anchors the certificate's validity on */
    areq =
        json_pack("{s:s, s:I}", "activation_certificate", text, "tpm_clock", (json_int_t)tpm_clock);
    if (!areq) {
        outcome_set(o, OUTCOME_INTERNAL, "out of memory");
        goto out;
    }
    online_conf(v, &conf);
    online_exchange(&conf, "activate", areq, nonce, &res);
    if (res.outcome == ONLINE_FAILED) {
        log_warn("activation failed: %s", res.message);
        outcome_set(o, OUTCOME_UNAVAILABLE, "Cannot activate: %s", res.message);
        goto out;
    }
    if (res.outcome == ONLINE_REFUSED) {
        log_warn("activation refused by the license server (%s): %s", res.reason, res.message);
        if (strcmp(res.reason, "unknown_license") == 0)
            outcome_set(o, OUTCOME_INVALID, "Invalid license code: %s", res.message);
        else
            outcome_set(o, OUTCOME_REFUSED, "Cannot activate: %s", res.message);
        goto out;
    }
    cert = json_object_get(res.payload, "license_certificate");
    if (!cj_string(&c, res.payload, "activation", CJ_REQUIRED, CJ_IDENTIFIER, 64, activation,
                   sizeof(activation)) ||
        !cj_string(&c, res.payload, "epoch", CJ_REQUIRED, CJ_IDENTIFIER, 32, epoch_hex,
                   sizeof(epoch_hex)) ||
        hex_decode_exact(epoch_hex, epoch, sizeof(epoch)) < 0 || !json_is_string(cert)) {
        outcome_set(o, OUTCOME_UPSTREAM,
                    "Cannot activate: the license server's answer lacks the activation, its "
                    "epoch or the license certificate");
        goto out;
    }
    if (!ledger_apply_activation(v->ledger, f->license, activation, epoch, tpm_clock,
                                 json_string_value(cert), json_string_length(cert), o)) {
        snprintf(msg, sizeof(msg), "%.290s", o->msg);
        log_error("the license server's certificate is not accepted: %s", msg);
        outcome_set(o, o->kind,
                    "Cannot activate: the license certificate from the license server is not "
                    "accepted: %s",
                    msg);
        goto out;
    }
    pthread_mutex_lock(&v->mu);
    v->validated_this_boot = true;
    v->connected = true;
    v->failures = 0;
    v->last_error[0] = '\0';
    schedule(v, VALIDATE_EVERY_SECS);
    pthread_mutex_unlock(&v->mu);
    ok = true;
out:
    online_result_clear(&res);
    pthread_mutex_unlock(&v->exchange);
    return ok;
}

/* ---- removal ------------------------------------------------------------------------ */

bool validator_deactivate(struct validator *v, uint64_t *ret_returned, struct outcome *o) {
    _cleanup_(json_decrefp) json_t *dreq = NULL;
    struct online_request q;
    struct online_conf conf;
    struct online_result res = {0};
    char nonce[ONLINE_NONCE_LEN + 1], tail[LICENSE_CODE_LOG_BUFLEN], id[HWID_ID_STRLEN];
    json_int_t returned = 0;
    bool ok = false, erased;

    pthread_mutex_lock(&v->exchange);
    if (!ledger_removal_begin(v->ledger, &q, o))
        goto out_unlocked;
    if (online_nonce(nonce) < 0) {
        outcome_set(o, OUTCOME_INTERNAL, "no random numbers for the nonce");
        goto abort;
    }
    dreq = request_json(&q, computer_id_of(v, id), nonce);
    if (!dreq) {
        outcome_set(o, OUTCOME_INTERNAL, "out of memory");
        goto abort;
    }
    online_conf(v, &conf);
    online_exchange(&conf, "deactivate", dreq, nonce, &res);
    if (res.outcome == ONLINE_FAILED) {
        log_warn("license removal failed: %s", res.message);
        outcome_set(o, OUTCOME_UNAVAILABLE, "Cannot remove license: %s. The license is unchanged.",
                    res.message);
        goto abort;
    }
    if (res.outcome == ONLINE_REFUSED && strcmp(res.reason, "not_active") != 0 &&
        strcmp(res.reason, "unknown_license") != 0) {
        log_warn("license removal refused by the license server (%s): %s", res.reason, res.message);
        outcome_set(o, OUTCOME_CONFLICT, "Cannot remove license: %s", res.message);
        goto abort;
    }
    if (res.outcome == ONLINE_OK) {
        json_t *r = json_object_get(res.payload, "returned_secs");
        returned = json_is_integer(r) && json_integer_value(r) > 0 ? json_integer_value(r) : 0;
    }
    erased = ledger_removal_finish(v->ledger, "License is invalid (the license was removed)", o);
    log_info("license %s removed; %lld unused seconds returned to the license server",
             license_code_for_log(q.code, tail), (long long)returned);
    pthread_mutex_lock(&v->mu);
    schedule(v, 0);
    v->failures = 0;
    v->validated_this_boot = false;
    pthread_mutex_unlock(&v->mu);
    *ret_returned = (uint64_t)returned;
    if (!erased) {
        /* the operator must not take the TPM for clean: until the next
         * validation a restart loads the certificate again */
        char tpm_msg[sizeof(o->msg)];

        snprintf(tpm_msg, sizeof(tpm_msg), "%s", o->msg);
        log_error("the removed license could not be erased from the TPM: %s", tpm_msg);
        outcome_set(o, OUTCOME_UNAVAILABLE,
                    "The license was removed on the license server (%lld unused seconds "
                    "returned), but it could not be erased from the TPM (%.200s): the next "
                    "validation erases it",
                    (long long)returned, tpm_msg);
        goto out;
    }
    ok = outcome_set(o, OUTCOME_OK, "ok");
    goto out;
abort:
    ledger_removal_abort(v->ledger);
out:
    online_result_clear(&res);
out_unlocked:
    pthread_mutex_unlock(&v->exchange);
    return ok;
}
