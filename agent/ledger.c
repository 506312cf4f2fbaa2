/* The ledger (ledger.h): the one owner of the licensing state.
 *
 * One lock, `lock`, guards everything below it in struct ledger and is held
 * for a whole change, TPM writes included. The hot path never takes it: it
 * reads the snapshot that every change publishes before unlocking. Nothing
 * here waits on the network. */
#include "agent/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "agent/clock.h"
#include "agent/license.h"
#include "agent/nvlayout.h"
#include "agent/tpmio.h"
#include "cert/cert.h"
#include "common/hex.h"
#include "common/licensecode.h"
#include "common/log.h"
#include "common/macro.h"

#define TICK_DEFAULT 60
/* how far the TPM clock may be behind a window's anchor: it steps back by
 * up to the TPM's clock save interval after a power loss */
#define WINDOW_CLOCK_SLACK_MS (2 * 3600 * 1000ull)

/* A usage counter: index, TPM name and, for a certificate's, its base. */
struct counter_ref {
    uint32_t index;
    uint8_t name[34];
    size_t name_len;
    uint64_t base;
};

struct ledger {
    pthread_mutex_t lock;
    struct snapshot_box box;
    struct ledger_config cfg;
    struct tpmio *tpm;
    bool tpm_present;

    /* everything below: under lock */
    struct counter_ref counter; /* ours: index and name */
    uint64_t counter_value;     /* last value read or written */
    uint64_t counter_writes;
    unsigned long tpm_reopened_seen;
    /* the time floor: the hour counter, and what the certificate anchors */
    struct counter_ref floor_counter;
    uint64_t floor_value;
    time_t floor_time;        /* decisions never take a time before this */
    uint64_t floor_inc_clock; /* TPM clock (ms) of this run's last increment; 0: none yet */
    time_t clock_checked;     /* agent_mono() of the last look at the TPM clock in tick */

    struct license_view lic;
    struct counter_ref lic_counter; /* the counter the certificate names, and its base */
    struct cert_time_floor lic_floor;
    struct cert_online_window lic_window;
    time_t lic_iat;
    char license_problem[256];
    struct store_state state;
    uint64_t cache_secs; /* the license server's refill step */

    struct leases leases;
    uint64_t pool;     /* covered by the counter, held by no lease */
    uint64_t reported; /* the highest consumption told the server under this base */
    bool removing;     /* no new leases */
};

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

static const char *refusal_text(uint8_t code) {
    return refusals[code < ARRAY_SIZE(refusals) ? code : ARRAY_SIZE(refusals) - 1].text;
}

static uint32_t tick_of(const struct ledger *l) {
    return l->lic.tick_secs ? l->lic.tick_secs : TICK_DEFAULT;
}

/* ---- derived facts (under lock) ----------------------------------------- */

/* The offline-mode flag in the state record counts only when the signed
 * license allows offline mode: NV alone never makes a license offline. */
static bool offline_mode(const struct ledger *l) {
    return l->lic.present && (l->lic.activated_offline ||
                              (l->lic.offline_allowed && (l->state.flags & STORE_OFFLINE_MODE)));
}

static bool online_applies(const struct ledger *l) {
    return l->lic.present && !offline_mode(l) && l->cfg.server_configured;
}

/* Seconds the counter covers since the base, minus the pool: consumed
 * (open leases included). */
static uint64_t consumed(const struct ledger *l) {
    const uint64_t base = l->lic_counter.base;
    uint64_t covered = l->counter_value > base ? (l->counter_value - base) * tick_of(l) : 0;
    return covered > l->pool ? covered - l->pool : 0;
}

static uint64_t handable(const struct ledger *l) {
    uint64_t used = consumed(l);
    return l->lic.secs_granted > used ? l->lic.secs_granted - used : 0;
}

/* The time floor: the certificate's signing time, and the hours the hour
 * counter counted since the time its anchor names. It only grows. */
static void update_floor(struct ledger *l) {
    time_t t = l->lic.present ? l->lic_iat : 0;
    if (l->lic.present && l->lic_floor.present && l->floor_value >= l->lic_floor.counter.value) {
        time_t f = l->lic_floor.at + (time_t)((l->floor_value - l->lic_floor.counter.value) * 3600);
        if (f > t)
            t = f;
    }
    if (t > l->floor_time)
        l->floor_time = t;
}

/* The time decisions use: the wall clock, never earlier than the floor. */
static time_t decision_now(const struct ledger *l) {
    time_t now = agent_now();
    return now > l->floor_time ? now : l->floor_time;
}

/* The grace period and a refusal as the hot path sees them. */
static void sync_online_view(struct ledger *l, time_t now) {
    struct license_online *o = &l->lic.online;
    bool applies = online_applies(l);

    o->grace_end = applies ? grace_end(&l->state, now) : 0;
    o->grace_over = applies && grace_over(&l->state);
    o->refused = l->lic.present && (l->state.flags & STORE_REFUSED);
    if (o->refused && !o->refused_reason[0])
        snprintf(o->refused_reason, sizeof(o->refused_reason), "%s",
                 refusal_text(l->state.refusal));
    if (!o->refused)
        o->refused_reason[0] = '\0';
}

/* Publishes what is now true. Caller holds lock. */
static void publish(struct ledger *l) {
    struct snapshot *s = calloc(1, sizeof(*s));

    if (!s) {
        log_error("out of memory: the published license view is not up to date");
        return;
    }
    /* the grace period's end is judged on the time decisions use */
    sync_online_view(l, decision_now(l));
    l->lic.dead = l->lic.present && l->counter_value > l->lic.ceiling;
    /* an online license holds while its last signed answer does; one whose
     * certificate carries no validity window (from an older server) holds
     * only until a validation brings one. Offline mode has no window. */
    if (l->lic.present && !offline_mode(l)) {
        l->lic.window_until = l->lic_window.present ? l->lic_window.until : l->lic_iat;
        if (!l->lic_window.present)
            l->lic.window_over = true;
    } else
        l->lic.window_until = 0;
    snprintf(s->computer_id, sizeof(s->computer_id), "%s", l->cfg.computer_id);
    s->tpm_present = l->tpm_present;
    s->lic = l->lic;
    snprintf(s->license_problem, sizeof(s->license_problem), "%s", l->license_problem);
    s->offline_mode = offline_mode(l);
    s->online_applies = online_applies(l);
    s->last_success = (time_t)l->state.last_success;
    s->secs_remaining = l->lic.present ? handable(l) : 0;
    s->counter_value = l->counter_value;
    s->pool = l->pool;
    s->leases_open = l->leases.open;
    s->reserved_total = l->leases.reserved_total;
    s->charged_total = l->leases.charged_total;
    s->returned_total = l->leases.returned_total;
    s->counter_writes = l->counter_writes;
    s->removing = l->removing;
    s->floor = l->floor_time;
    snapshot_publish(&l->box, s);
}

/* ---- life cycle ------------------------------------------------------------- */

int ledger_new(const struct ledger_config *cfg, struct tpmio *tpm, struct ledger **ret) {
    struct ledger *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    pthread_mutex_init(&l->lock, NULL);
    snapshot_box_init(&l->box);
    l->cfg = *cfg;
    l->tpm = tpm;
    *ret = l;
    return 0;
}

void ledger_free(struct ledger *l) {
    if (!l)
        return;
    snapshot_box_clear(&l->box);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

const struct snapshot *ledger_snapshot(struct ledger *l) {
    return snapshot_get(&l->box);
}

static void view_from_cert(const struct cert_license *c, struct license_view *v) {
    struct license_online online = v->online;

    memset(v, 0, sizeof(*v));
    v->online = online;
    v->present = true;
    snprintf(v->jti, sizeof(v->jti), "%s", c->jti);
    snprintf(v->code, sizeof(v->code), "%s", c->license);
    snprintf(v->product, sizeof(v->product), "%s", c->product);
    v->customer_id = c->customer_id;
    v->type = c->type;
    v->expiry = c->expiry;
    v->not_before = c->not_before;
    for (size_t i = 0; i < c->nfeatures && i < LICENSE_FEATURES_MAX; i++)
        snprintf(v->features[i], sizeof(v->features[i]), "%s", c->features[i]);
    v->nfeatures = c->nfeatures < LICENSE_FEATURES_MAX ? c->nfeatures : LICENSE_FEATURES_MAX;
    v->secs_allocated = c->secs_allocated;
    v->secs_granted = c->secs_granted;
    v->offline_allowed = c->offline_allowed;
    v->activated_offline = c->activated_offline;
    v->tick_secs = c->tick_secs;
    v->ceiling = cert_license_ceiling(c);
}

static bool same_counter(const struct cert_counter *c, const struct counter_ref *ours) {
    return c->index == ours->index && c->name_len == ours->name_len &&
           memcmp(c->name, ours->name, ours->name_len) == 0;
}

/* Checks a certificate against everything this agent can check: the vendor's
 * signature and validity period (on the agent's time), this machine, the
 * TPM it requires, the code, this TPM's counters, and that the usage
 * counter is not past its ceiling. *ret_start (may be NULL) gets the
 * counter value the certificate needs before it is stored: above the
 * counter now only for a certificate that supersedes the one in force
 * (its base is that one's ceiling plus one). A certificate the counter is
 * past is refused unless allow_dead (the one kept in the TPM, loaded at
 * start, which then serves nothing but can still be validated). Fills
 * *ret. Caller holds lock. */
static bool verify(struct ledger *l, const char *cert, size_t len, const char *expect_code,
                   bool allow_dead, struct cert_license *ret, uint64_t *ret_start,
                   struct outcome *o) {
    struct hwid_match m;
    char msg[300];
    uint64_t start = l->counter_value;
    bool supersedes;

    if (cert_license_verify(cert, len, l->cfg.vendor_key, decision_now(l), ret, msg, sizeof(msg)) !=
        CERT_OK)
        return outcome_set(o, OUTCOME_INVALID, "%s", msg);
    if (!l->cfg.digests || cert_license_match(ret, l->cfg.digests, &m, msg, sizeof(msg)) != CERT_OK)
        return outcome_set(o, OUTCOME_INVALID, "%s", msg);
    if (expect_code && strcmp(expect_code, ret->license) != 0)
        return outcome_set(o, OUTCOME_INVALID, "the certificate is for license %s, not %s",
                           ret->license, expect_code);
    if (l->cfg.ek_trust && !cert_tpm_trust_met(ret, l->cfg.ek_trust, msg, sizeof(msg)))
        return outcome_set(o, OUTCOME_INVALID, "%s", msg);
    if (!same_counter(&ret->counter, &l->counter))
        return outcome_set(o, OUTCOME_INVALID,
                           "the certificate is bound to usage counter 0x%08x of another TPM (or "
                           "one defined anew since the activation request); request a new "
                           "activation",
                           ret->counter.index);
    supersedes = l->lic.present && strcmp(ret->jti, l->lic.jti) != 0;
    if (ret->counter.value > l->counter_value) {
        if (!supersedes || ret->counter.value != l->lic.ceiling + 1)
            return outcome_set(o, OUTCOME_INVALID,
                               "the certificate's usage counter base %llu is ahead of this TPM's "
                               "counter (%llu): it was not made from this appliance's request",
                               (unsigned long long)ret->counter.value,
                               (unsigned long long)l->counter_value);
        start = ret->counter.value;
    }
    /* a certificate that replaces the one in force ends it first */
    if (supersedes && !l->lic.dead && start <= l->lic.ceiling)
        start = l->lic.ceiling + 1;
    if (start > cert_license_ceiling(ret) && !allow_dead)
        return outcome_set(o, OUTCOME_INVALID,
                           "the certificate is no longer in force: this TPM's usage counter (%llu) "
                           "is past its ceiling (%llu): it was removed, refused by the license "
                           "server or replaced by a later certificate",
                           (unsigned long long)start,
                           (unsigned long long)cert_license_ceiling(ret));
    if (ret->time_floor.present) {
        /* by index: the hour counter's type and attributes were checked
         * when the ledger started (agent_store_ensure) */
        if (ret->time_floor.counter.index != l->floor_counter.index)
            return outcome_set(o, OUTCOME_INVALID,
                               "the certificate's time floor is bound to NV index 0x%08x, and "
                               "this agent's hour counter is 0x%08x; request a new activation",
                               ret->time_floor.counter.index, l->floor_counter.index);
        if (ret->time_floor.counter.value > l->floor_value)
            return outcome_set(o, OUTCOME_INVALID,
                               "the certificate's time floor base %llu is ahead of this TPM's "
                               "hour counter (%llu): it was not made from this appliance's "
                               "request",
                               (unsigned long long)ret->time_floor.counter.value,
                               (unsigned long long)l->floor_value);
    }
    if (ret_start)
        *ret_start = start;
    return true;
}

/* Moves the usage counter to target (it never goes back): how a
 * certificate is ended. Caller holds lock. */
static bool advance(struct ledger *l, uint64_t target, const char *why, struct outcome *o) {
    char reason[TPMIO_WHY_LEN] = "";
    uint64_t from = l->counter_value, v = from;
    int r;

    if (target <= from)
        return true;
    r = tpmio_counter_advance_to(l->tpm, l->counter.index, from, target, &v, reason);
    l->counter_writes += v - from;
    l->counter_value = v;
    if (r < 0)
        return outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM is not available: %s", reason);
    log_info("usage counter moved from %llu to %llu (%llu ticks): %s", (unsigned long long)from,
             (unsigned long long)v, (unsigned long long)(v - from), why);
    return true;
}

/* Ends the certificate in force: the counter goes past its ceiling, so no
 * copy of it (a restored state, the certificate applied again) is valid
 * again. Caller holds lock. */
static bool end_certificate(struct ledger *l, const char *why, struct outcome *o) {
    uint64_t from = l->counter_value;
    bool ok;

    if (!l->lic.present || l->counter_value > l->lic.ceiling)
        return true;
    ok = advance(l, l->lic.ceiling + 1, why, o);
    /* the ticks spent to end it were not used: what the agent reports as
     * consumed (to a server that may issue a new certificate) leaves them
     * out, until a restart forgets the pool */
    l->pool += (l->counter_value - from) * tick_of(l);
    return ok;
}

/* Takes a verified certificate into memory. Caller holds lock. */
static void take(struct ledger *l, const struct cert_license *c) {
    /* another base: the covered seconds start from it (a refill keeps the
     * base, and so the pool) */
    if (!l->lic.present || l->lic_counter.base != c->counter.value) {
        l->pool = 0;
        l->reported = 0;
        leases_clear(&l->leases);
    }
    view_from_cert(c, &l->lic);
    l->lic_counter.index = c->counter.index;
    l->lic_counter.base = c->counter.value;
    l->lic_floor = c->time_floor;
    l->lic_window = c->window;
    l->lic_iat = c->iat;
    l->lic.window_over = false;
    l->license_problem[0] = '\0';
    update_floor(l);
}

/* Writes the certificate (when cert is not NULL) and then the state; on
 * success st is the ledger's. Caller holds lock. */
static bool store(struct ledger *l, const char *cert, size_t len, const struct store_state *st,
                  struct outcome *o) {
    char why[TPMIO_WHY_LEN] = "";
    int r = 0;

    if (cert)
        r = agent_store_write_license(l->tpm, l->cfg.nv_base, cert, len, why);
    if (r == 0)
        r = agent_store_write_state(l->tpm, l->cfg.nv_base, st, why);
    if (r < 0)
        return outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM is not available: %s", why);
    l->state = *st;
    return true;
}

static int read_one_counter(struct ledger *l, enum agent_nv_slot slot, struct counter_ref *ref,
                            uint64_t *value, char *why) {
    uint32_t index = agent_nv_index(l->cfg.nv_base, slot);
    struct tpm_nv_public pub;
    uint64_t v;
    int r;

    r = tpmio_nv_public(l->tpm, index, &pub, why);
    if (r == 0)
        r = tpmio_counter_read(l->tpm, index, &v, why);
    if (r < 0)
        return r;
    ref->index = index;
    ref->name_len = pub.name_len;
    memcpy(ref->name, pub.name, pub.name_len);
    *value = v;
    return 0;
}

/* The usage counter and the hour counter, as the TPM says now. */
static int read_counter(struct ledger *l, char *why) {
    int r = read_one_counter(l, AGENT_NV_COUNTER, &l->counter, &l->counter_value, why);
    if (r == 0)
        r = read_one_counter(l, AGENT_NV_FLOOR, &l->floor_counter, &l->floor_value, why);
    if (r == 0)
        update_floor(l);
    return r;
}

/* Reads and verifies the license. A stored license that is not accepted
 * leaves the ledger unlicensed, with the reason; only an answer of the TPM
 * that failed its authentication is an error (-EBADE, *why says it): the
 * agent then does not start on a TPM it cannot trust. */
static int load_license(struct ledger *l, char *fatal) {
    _cleanup_free_ char *cert = NULL;
    char why[TPMIO_WHY_LEN] = "";
    struct cert_license c;
    struct outcome o;
    char tail[LICENSE_CODE_LOG_BUFLEN];
    size_t len = 0;
    int r;

    r = agent_store_read_state(l->tpm, l->cfg.nv_base, &l->state, why);
    if (r == -EBADE) {
        snprintf(fatal, TPMIO_WHY_LEN, "%s", why);
        return r;
    }
    if (r < 0) {
        /* never the most favourable state: an online license is not valid
         * until a validation succeeds */
        log_warn("the agent state in NV is unreadable (%s): an online license needs a "
                 "successful validation before it is valid again",
                 r == -EBADMSG || r == -EPROTONOSUPPORT ? "damaged record" : why);
        grace_least_favourable(&l->state);
    }
    grace_from_record(&l->state);
    r = agent_store_read_license(l->tpm, l->cfg.nv_base, &cert, &len, why);
    if (r == -EBADE) {
        snprintf(fatal, TPMIO_WHY_LEN, "%s", why);
        return r;
    }
    if (r == -EBADMSG) {
        snprintf(l->license_problem, sizeof(l->license_problem),
                 "the license record in the TPM is damaged (neither of its two slots holds an "
                 "intact record): apply the license certificate again");
        log_error("%s", l->license_problem);
        return 0;
    }
    if (r < 0) {
        snprintf(l->license_problem, sizeof(l->license_problem),
                 "the license record in the TPM is unreadable: %.200s", why);
        log_error("%s", l->license_problem);
        return 0;
    }
    if (!cert) {
        log_info("no license applied");
        return 0;
    }
    if (!verify(l, cert, len, NULL, true, &c, NULL, &o)) {
        snprintf(l->license_problem, sizeof(l->license_problem), "%.255s", o.msg);
        log_error("the stored license is not accepted: %s", o.msg);
        return 0;
    }
    if (c.window.present) {
        struct tpm_clock clk;
        if (tpmio_read_clock(l->tpm, &clk) < 0) {
            snprintf(l->license_problem, sizeof(l->license_problem),
                     "the TPM clock cannot be read to check the license's validity window");
            log_error("%s", l->license_problem);
            return 0;
        }
        /* anchored at a clock this TPM has not reached: not from one of
         * this appliance's own validations (allowing for a clock that
         * stepped back a little after a power loss) */
        if (c.window.tpm_clock > clk.clock_ms + WINDOW_CLOCK_SLACK_MS) {
            snprintf(l->license_problem, sizeof(l->license_problem),
                     "the license certificate's validity starts at TPM clock %llu ms, ahead of "
                     "this TPM's clock (%llu ms): it did not come from this appliance's own "
                     "validation",
                     (unsigned long long)c.window.tpm_clock, (unsigned long long)clk.clock_ms);
            log_error("%s", l->license_problem);
            return 0;
        }
        take(l, &c);
        l->lic.window_over = clk.clock_ms >= c.window.tpm_clock_until;
    } else
        take(l, &c);
    log_info("license %s for product %s loaded from the TPM",
             license_code_for_log(l->lic.code, tail), l->lic.product);
    return 0;
}

int ledger_load(struct ledger *l, bool tpm_present, char *err, size_t errlen) {
    char why[TPMIO_WHY_LEN] = "";
    unsigned created = 0;
    int r = 0;

    pthread_mutex_lock(&l->lock);
    l->tpm_present = tpm_present;
    if (!tpm_present) {
        snprintf(l->license_problem, sizeof(l->license_problem),
                 "no TPM: a license cannot be kept without one");
        goto out;
    }
    r = agent_store_ensure(l->tpm, l->cfg.nv_base, &created, why);
    if (r < 0) {
        snprintf(err, errlen, "the agent's NV indices at 0x%08x: %s", l->cfg.nv_base, why);
        goto out;
    }
    if (created)
        log_info("defined the agent's NV indices at 0x%08x", l->cfg.nv_base);
    r = read_counter(l, why);
    if (r < 0) {
        snprintf(err, errlen, "reading the usage counter: %s", why);
        goto out;
    }
    r = load_license(l, why);
    if (r < 0)
        snprintf(err, errlen, "%s", why);
out:
    if (r == 0)
        publish(l);
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* ---- grace and housekeeping ------------------------------------------------- */

static bool tpm_clock_ms(struct ledger *l, uint64_t *ret) {
    struct tpm_clock clk;
    if (tpmio_read_clock(l->tpm, &clk) < 0)
        return false;
    *ret = clk.clock_ms;
    return true;
}

static void note_grace_over(bool was_over, const struct store_state *st, const char *why) {
    if (was_over || !grace_over(st))
        return;
    log_error("the grace period is over: the license is invalid until a validation with the "
              "license server succeeds (%s)",
              why && *why ? why : "no answer");
}

/* The TPM clock, for the time floor and the validity window: looked at
 * when either may have something to do, and at most every 30 s otherwise.
 * Caller holds lock. */
static void tick_clocks(struct ledger *l, bool *changed) {
    time_t mono = agent_mono(), now = agent_now();
    bool floor_due = l->lic_floor.present && now >= l->floor_time + 3600;
    char why[TPMIO_WHY_LEN];
    struct tpm_clock clk;
    uint64_t v;

    if (!l->lic.present || (!floor_due && l->clock_checked && mono - l->clock_checked < 30))
        return;
    if (tpmio_read_clock(l->tpm, &clk) < 0)
        return;
    l->clock_checked = mono;
    if (l->lic_window.present && !l->lic.window_over &&
        clk.clock_ms >= l->lic_window.tpm_clock_until) {
        l->lic.window_over = true;
        log_error("the license's signed validity is over on the TPM's clock: it is invalid until "
                  "a validation with the license server succeeds");
        *changed = true;
    }
    /* The hour counter moves when an hour passed on the wall clock beyond
     * the floor, at most once an hour of the TPM's own clock (which root
     * cannot set) and once at start: the floor never runs ahead of the wall
     * clock, and a wall clock set back does not move it back. */
    if (floor_due && (!l->floor_inc_clock || clk.clock_ms >= l->floor_inc_clock + 3600000ull)) {
        if (tpmio_counter_increment(l->tpm, l->floor_counter.index, l->floor_value, &v, why) < 0)
            return;
        l->floor_value = v;
        l->floor_inc_clock = clk.clock_ms ? clk.clock_ms : 1;
        update_floor(l);
        log_debug("the time floor moved to %lld (hour counter %llu)", (long long)l->floor_time,
                  (unsigned long long)v);
        *changed = true;
    }
}

void ledger_tick(struct ledger *l) {
    struct tpmio_health h;
    uint64_t tpm_ms = 0;
    char why[TPMIO_WHY_LEN];
    bool changed = false;
    time_t now = agent_now();

    pthread_mutex_lock(&l->lock);
    if (leases_expire(&l->leases, now))
        changed = true;
    if (l->tpm_present) {
        tpmio_health(l->tpm, &h);
        if (h.reopened != l->tpm_reopened_seen && h.ok) {
            /* a new TPM connection: what the counters say now */
            if (read_counter(l, why) == 0) {
                l->tpm_reopened_seen = h.reopened;
                changed = true;
            }
        }
        if (h.ok)
            tick_clocks(l, &changed);
    }
    if (l->state.grace_start && online_applies(l)) {
        struct store_state st = l->state;
        bool was_over = grace_over(&st), tpm_ok = tpm_clock_ms(l, &tpm_ms);
        struct outcome o;

        if (grace_observe(&st, decision_now(l), tpm_ms, tpm_ok)) {
            /* persisted when it has just run out: a restart must find it over */
            if (!was_over && grace_over(&st) && !store(l, NULL, 0, &st, &o))
                log_warn("the end of the grace period could not be kept in the TPM: %s", o.msg);
            l->state = st;
            note_grace_over(was_over, &st, NULL);
            changed = true;
        }
    }
    if (changed || (l->state.grace_start && online_applies(l)))
        publish(l);
    pthread_mutex_unlock(&l->lock);
}

/* ---- operators' changes ------------------------------------------------------ */

static bool machine_now(struct ledger *l, struct activation_machine *m, struct outcome *o) {
    char why[TPMIO_WHY_LEN] = "";
    uint64_t v;

    if (!l->tpm_present || !l->cfg.ek_spki)
        return outcome_set(o, OUTCOME_UNAVAILABLE, "no TPM (the agent runs with --allow-no-tpm)");
    /* the counters' values now: the vendor signs them back as the bases */
    if (read_counter(l, why) < 0)
        return outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM is not available: %s", why);
    v = l->counter_value;
    *m = (struct activation_machine){
        .computer_id = l->cfg.computer_id,
        .digests = l->cfg.digests,
        .ek_spki = l->cfg.ek_spki,
        .ek_spki_len = l->cfg.ek_spki_len,
        .ek_cert = l->cfg.ek_cert,
        .ek_cert_len = l->cfg.ek_cert_len,
        .tpm_software = l->cfg.tpm_software,
        .counter_index = l->counter.index,
        .counter_name = l->counter.name,
        .counter_name_len = l->counter.name_len,
        .counter_value = v,
        .floor_index = l->floor_counter.index,
        .floor_name = l->floor_counter.name,
        .floor_name_len = l->floor_counter.name_len,
        .floor_value = l->floor_value,
        .supersedes_jti = l->lic.present && !l->lic.dead ? l->lic.jti : NULL,
        .supersedes_ceiling = l->lic.ceiling,
        .ek_issuer = l->cfg.ek_trust && l->cfg.ek_trust->has_cert ? l->cfg.ek_trust->issuer : NULL,
    };
    return true;
}

bool ledger_tpm_clock(struct ledger *l, uint64_t *ret_ms, struct outcome *o) {
    struct tpm_clock clk;
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    if (tpmio_read_clock(l->tpm, &clk) < 0)
        ok = outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM clock cannot be read");
    else
        *ret_ms = clk.clock_ms;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_activation_request(struct ledger *l, const struct activation_fields *f, char **ret_text,
                               char ret_nonce[33], struct outcome *o) {
    struct activation_machine m;
    char tail[LICENSE_CODE_LOG_BUFLEN];
    bool ok;

    pthread_mutex_lock(&l->lock);
    ok = machine_now(l, &m, o) && activation_build(&m, f, ret_text, ret_nonce, o);
    if (ok)
        log_info("activation certificate made for license %s (counter value %llu)",
                 license_code_for_log(f->license, tail), (unsigned long long)m.counter_value);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_apply_offline(struct ledger *l, const char *code, const char *cert, size_t len,
                          struct outcome *o) {
    char tail[LICENSE_CODE_LOG_BUFLEN], why[120];
    struct cert_license c;
    struct store_state st;
    uint64_t start;
    bool ok = false;

    pthread_mutex_lock(&l->lock);
    if (!l->tpm_present) {
        outcome_set(o, OUTCOME_UNAVAILABLE, "no TPM: a license cannot be kept without one");
        goto out;
    }
    if (!tpmio_trusted(l->tpm)) {
        outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM's answers could not be authenticated");
        goto out;
    }
    if (!verify(l, cert, len, code, false, &c, &start, o))
        goto out;
    if (l->lic.present && !l->lic.activated_offline && !l->lic.dead &&
        strcmp(c.jti, l->lic.jti) != 0) {
        outcome_set(o, OUTCOME_CONFLICT,
                    "license %s is applied and validated online: remove it first (DELETE "
                    "/v1/management/license) so that its unused seconds return to the license "
                    "server",
                    license_code_for_log(l->lic.code, tail));
        goto out;
    }
    if (!c.activated_offline) {
        outcome_set(o, OUTCOME_INVALID,
                    "this certificate comes from online activation: the agent takes it from "
                    "the license server's answer, it is never applied by hand");
        goto out;
    }
    /* the certificate in force ends before its successor is stored */
    snprintf(why, sizeof(why), "certificate %.16s replaced by %.16s", l->lic.jti, c.jti);
    if (!advance(l, start, why, o))
        goto out;
    st = l->state;
    if (c.activated_offline)
        st.flags |= STORE_OFFLINE_MODE;
    if (c.secs_granted > st.granted_secs)
        st.granted_secs = c.secs_granted;
    if (!store(l, cert, len, &st, o))
        goto out;
    take(l, &c);
    log_info("license %s applied by offline activation", license_code_for_log(c.license, tail));
    ok = outcome_set(o, OUTCOME_OK, "License is valid");
    publish(l);
out:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_set_offline_mode(struct ledger *l, bool offline, bool *ret_back_online,
                             struct outcome *o) {
    struct store_state st;
    bool was, ok = false;

    *ret_back_online = false;
    pthread_mutex_lock(&l->lock);
    if (!l->lic.present) {
        outcome_set(o, OUTCOME_CONFLICT, "No license is applied");
        goto out;
    }
    if (!l->lic.offline_allowed) {
        outcome_set(o, OUTCOME_REFUSED, "Offline mode not enabled for this license");
        goto out;
    }
    if (l->lic.activated_offline && !offline) {
        outcome_set(o, OUTCOME_CONFLICT,
                    "This license was activated offline and stays in offline mode");
        goto out;
    }
    was = offline_mode(l);
    st = l->state;
    st.flags = offline ? (st.flags | STORE_OFFLINE_MODE) : (st.flags & ~STORE_OFFLINE_MODE);
    if (!store(l, NULL, 0, &st, o)) {
        snprintf(o->msg, sizeof(o->msg), "Cannot change offline mode: the TPM is not available");
        goto out;
    }
    *ret_back_online = was && !offline;
    log_info("offline mode %s", offline ? "on: no contact with the license server" : "off");
    ok = outcome_set(o, OUTCOME_OK, "ok");
    publish(l);
out:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/* ---- services' seconds --------------------------------------------------------- */

#define NOT_AUTHORISED "You are not authorised to perform this action: "

bool ledger_reserve(struct ledger *l, uid_t uid, uint64_t want, const char *feature,
                    struct lease_grant *ret, struct outcome *o) {
    char reason[256], why[TPMIO_WHY_LEN] = "";
    time_t now = agent_now();
    uint64_t left, grant, after;
    size_t mine = 0;
    uint32_t tick;
    bool ok = false;
    int r;

    pthread_mutex_lock(&l->lock);
    leases_expire(&l->leases, now);
    if (!tpmio_trusted(l->tpm)) {
        outcome_set(o, OUTCOME_REFUSED,
                    NOT_AUTHORISED "the TPM's answers could not be authenticated (a proxy "
                                   "between the agent and the TPM, or another TPM?)");
        goto out;
    }
    if (license_decide(&l->lic, feature, decision_now(l), reason, sizeof(reason)) !=
        VERDICT_ALLOWED) {
        outcome_set(o, OUTCOME_REFUSED, NOT_AUTHORISED "%s", reason);
        goto out;
    }
    if (l->removing) {
        outcome_set(o, OUTCOME_REFUSED, NOT_AUTHORISED "the license is being removed");
        goto out;
    }
    r = leases_room(&l->leases, uid, &mine);
    if (r < 0) {
        outcome_set(o, OUTCOME_LIMIT,
                    "too many open leases (%zu of %d for this caller, %zu of %d in all): commit "
                    "some first",
                    mine, LEASES_PER_CALLER, l->leases.open, LEASES_MAX);
        goto out;
    }
    left = handable(l);
    grant = want < left ? want : left;
    if (grant == 0) {
        outcome_set(o, OUTCOME_REFUSED,
                    NOT_AUTHORISED "no usage seconds left (all seconds granted to this "
                                   "appliance are used)");
        goto out;
    }
    /* write-ahead: the counter covers the seconds before they are handed out */
    tick = tick_of(l);
    while (grant > l->pool) {
        uint64_t v;
        if (tpmio_counter_increment(l->tpm, l->counter.index, l->counter_value, &v, why) < 0)
            break;
        l->counter_writes += v - l->counter_value;
        l->pool += (v - l->counter_value) * tick;
        l->counter_value = v;
    }
    if (grant > l->pool)
        grant = l->pool; /* the TPM failed: only what is covered */
    if (grant == 0) {
        outcome_set(o, OUTCOME_UNAVAILABLE,
                    "Cannot reserve usage seconds: the TPM is not available and no covered "
                    "seconds are left");
        publish(l);
        goto out;
    }
    if (hex_random(ret->id, LEASE_ID_LEN / 2) < 0) {
        outcome_set(o, OUTCOME_INTERNAL, "no random numbers for the lease id");
        publish(l);
        goto out;
    }
    leases_add(&l->leases, ret->id, uid, grant, now);
    l->pool -= grant;
    ret->secs = grant;
    ret->expires_in = grant + LEASE_SLACK;
    after = handable(l);
    /* refill in the background when a quarter of the server's step is left */
    ret->refill =
        online_applies(l) && after < (l->cache_secs ? l->cache_secs : l->lic.secs_granted) / 4;
    ok = outcome_set(o, OUTCOME_OK, "ok");
    publish(l);
out:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_commit(struct ledger *l, uid_t uid, bool any_uid, const char *id, uint64_t used,
                   uint64_t *ret_charged, uint64_t *ret_returned, struct outcome *o) {
    uint64_t held = 0;
    bool ok = false;
    int r;

    pthread_mutex_lock(&l->lock);
    leases_expire(&l->leases, agent_now());
    r = leases_commit(&l->leases, id, uid, any_uid, used, ret_returned, &held);
    if (r == -ENOENT)
        outcome_set(o, OUTCOME_NOT_FOUND,
                    "no open lease '%.40s' (unknown, already committed, or expired and charged "
                    "in full)",
                    id);
    else if (r == -EPERM)
        outcome_set(o, OUTCOME_REFUSED, "lease '%.40s' belongs to another caller", id);
    else if (r == -ERANGE)
        outcome_set(o, OUTCOME_INVALID, "'used' (%llu) is more than the lease holds (%llu)",
                    (unsigned long long)used, (unsigned long long)held);
    else {
        l->pool += *ret_returned;
        *ret_charged = used;
        ok = outcome_set(o, OUTCOME_OK, "ok");
        publish(l);
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/* ---- the validator's side ---------------------------------------------------------- */

static bool is_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* What the server is told only grows: it refuses less as
 * consumption_went_back and flags the activation as a copy's. consumed()
 * itself goes down when a commit returns seconds that an earlier report
 * counted in an open lease. A restart forgets this and the pool alike:
 * consumed() is then all the counter covers, never below a report. */
static uint64_t report_consumed(struct ledger *l) {
    uint64_t c = consumed(l);

    if (c < l->reported)
        c = l->reported;
    l->reported = c;
    return c;
}

static void fill_request(struct ledger *l, struct online_request *q) {
    memset(q, 0, sizeof(*q));
    snprintf(q->code, sizeof(q->code), "%s", l->lic.code);
    snprintf(q->jti, sizeof(q->jti), "%s", l->lic.jti);
    memcpy(q->epoch, l->state.epoch, STORE_EPOCH_LEN);
    memcpy(q->next_epoch, l->state.next_epoch, STORE_EPOCH_LEN);
    q->counter = l->counter_value;
    q->base = l->lic_counter.base;
    q->consumed_secs = report_consumed(l);
    q->floor.index = l->floor_counter.index;
    memcpy(q->floor.name, l->floor_counter.name, l->floor_counter.name_len);
    q->floor.name_len = l->floor_counter.name_len;
    q->floor.value = l->floor_value;
}

int ledger_validation_prepare(struct ledger *l, struct online_request *ret, char *why) {
    struct store_state st;
    struct outcome o;
    char hex[HEX_BUFLEN(STORE_EPOCH_LEN)];
    int r = 0;

    pthread_mutex_lock(&l->lock);
    if (!online_applies(l)) {
        r = -ENOENT;
        goto out;
    }
    /* the epoch this request asks for goes to the TPM before the request
     * leaves: if the answer gets lost, a retry asks for the same one */
    if (is_zero(l->state.next_epoch, STORE_EPOCH_LEN)) {
        st = l->state;
        if (hex_random(hex, STORE_EPOCH_LEN) < 0 ||
            hex_decode_exact(hex, st.next_epoch, STORE_EPOCH_LEN) < 0) {
            snprintf(why, TPMIO_WHY_LEN, "no random numbers for the epoch");
            r = -EIO;
            goto out;
        }
        if (!store(l, NULL, 0, &st, &o)) {
            snprintf(why, TPMIO_WHY_LEN, "%.300s", o.msg);
            r = -ENODEV;
            goto out;
        }
    }
    fill_request(l, ret);
    ret->refill = handable(l) < (l->cache_secs ? l->cache_secs : l->lic.secs_granted) / 4;
    /* the clock the license server anchors the validity window on */
    if (!tpm_clock_ms(l, &ret->tpm_clock)) {
        snprintf(why, TPMIO_WHY_LEN, "the TPM clock cannot be read");
        r = -ENODEV;
    }
out:
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* The license is gone on the server, or removed here: erase it. Caller
 * holds lock. */
static void erase(struct ledger *l, const char *problem) {
    struct store_state st = {0};
    char why[TPMIO_WHY_LEN] = "";

    if (agent_store_write_license(l->tpm, l->cfg.nv_base, NULL, 0, why) < 0 ||
        agent_store_write_state(l->tpm, l->cfg.nv_base, &st, why) < 0)
        log_error("erasing the license from the TPM failed: %s", why);
    l->state = st;
    leases_clear(&l->leases);
    l->pool = 0;
    l->reported = 0;
    l->removing = false;
    memset(&l->lic, 0, sizeof(l->lic));
    memset(&l->lic_counter, 0, sizeof(l->lic_counter));
    memset(&l->lic_floor, 0, sizeof(l->lic_floor));
    memset(&l->lic_window, 0, sizeof(l->lic_window));
    l->cache_secs = 0;
    snprintf(l->license_problem, sizeof(l->license_problem), "%s", problem);
}

static const char *duration(uint32_t secs, char *buf, size_t len) {
    if (secs % 86400 == 0)
        snprintf(buf, len, "%u days", secs / 86400);
    else
        snprintf(buf, len, "%u h", secs / 3600);
    return buf;
}

static void record_failure(struct ledger *l, enum online_failure f, const char *message,
                           bool validated_this_boot) {
    struct store_state st = l->state;
    uint64_t tpm_ms = 0;
    bool tpm_ok = tpm_clock_ms(l, &tpm_ms), began, was_over = grace_over(&st);
    time_t now = decision_now(l);
    char when[RFC3339_BUFLEN], len[32];
    struct outcome o;

    began = grace_begin(&st, f, validated_this_boot, now, tpm_ms);
    grace_observe(&st, now, tpm_ms, tpm_ok);
    /* every attempt persists how far into the grace period it is */
    if (!store(l, NULL, 0, &st, &o))
        l->state = st; /* in memory at least */
    sync_online_view(l, now);
    rfc3339_format(l->lic.online.grace_end, when);
    if (began)
        log_warn("a grace period of %s starts (%s), it ends at %s: %s",
                 duration(st.grace_secs, len, sizeof(len)),
                 f == FAILURE_SERVER ? "server-side error" : "server unreachable", when, message);
    note_grace_over(was_over, &st, message);
}

static void record_refusal(struct ledger *l, const char *reason, const char *message) {
    struct store_state st = l->state;
    uint8_t code = refusal_code(reason);
    struct outcome o;
    char why[120];

    if (!(st.flags & STORE_REFUSED) || st.refusal != code)
        log_warn("the license server refused the license (%s): %s", reason, message);
    /* a refused certificate ends: neither a restored state record nor the
     * certificate applied again brings it back; the server may sign a new
     * one when it accepts the appliance again */
    snprintf(why, sizeof(why), "certificate %.16s refused by the license server (%.40s)",
             l->lic.jti, reason);
    if (!end_certificate(l, why, &o))
        log_error("the refused certificate could not be ended in the TPM: %s", o.msg);
    st.flags |= STORE_REFUSED;
    st.refusal = code;
    if (!store(l, NULL, 0, &st, &o))
        l->state = st;
    snprintf(l->lic.online.refused_reason, sizeof(l->lic.online.refused_reason), "%.150s (%.40s)",
             message, reason);
}

/* A certificate in a validation answer: the same activation, its validity
 * window anchored at the TPM clock this request sent, and either the same
 * base with a ceiling that only grows, or (when the one in force has ended:
 * refused, then accepted again) a base at the counter now. Caller holds
 * lock. */
static bool check_new_certificate(struct ledger *l, const struct online_request *q,
                                  const char *cert, size_t len, struct cert_license *c,
                                  struct outcome *o) {
    bool same_base;

    if (!verify(l, cert, len, l->lic.code, false, c, NULL, o))
        return false;
    same_base = c->counter.value == l->lic_counter.base;
    if (strcmp(c->jti, l->lic.jti) != 0 || c->activated_offline ||
        !(same_base || (l->lic.dead && c->counter.value <= l->counter_value)))
        return outcome_set(o, OUTCOME_UPSTREAM,
                           "the new certificate is for another activation or counter base");
    if (same_base && c->secs_granted < l->lic.secs_granted)
        return outcome_set(
            o, OUTCOME_UPSTREAM, "the new certificate lowers the granted seconds (%llu < %llu)",
            (unsigned long long)c->secs_granted, (unsigned long long)l->lic.secs_granted);
    if (!c->window.present)
        return outcome_set(o, OUTCOME_UPSTREAM, "the new certificate carries no validity window");
    if (c->window.tpm_clock != q->tpm_clock)
        return outcome_set(o, OUTCOME_UPSTREAM,
                           "the new certificate's validity is not anchored at this request's TPM "
                           "clock (%llu, not %llu)",
                           (unsigned long long)c->window.tpm_clock,
                           (unsigned long long)q->tpm_clock);
    return true;
}

int ledger_validation_record(struct ledger *l, const struct online_request *q,
                             const struct online_answer *a, bool validated_this_boot,
                             char *ret_message) {
    int kind = a->kind;
    struct cert_license c;
    struct store_state st;
    struct outcome o;
    char why[120];
    bool was_bad, new_cert = false;

    snprintf(ret_message, 400, "%s", a->message);
    pthread_mutex_lock(&l->lock);
    if (!l->lic.present || strcmp(l->lic.jti, q->jti) != 0) {
        log_debug("an answer for activation %.8s came after that license was replaced", q->jti);
        goto out;
    }
    if (kind == ANSWER_OK && !a->certificate) {
        /* every success renews the signed validity, which only a new
         * certificate carries */
        kind = ANSWER_FAILED;
        snprintf(ret_message, 400,
                 "the license server's answer carries no license certificate: the signed "
                 "validity cannot be renewed (a server older than this agent?)");
    } else if (kind == ANSWER_OK) {
        if (!check_new_certificate(l, q, a->certificate, a->certificate_len, &c, &o)) {
            kind = ANSWER_FAILED;
            snprintf(ret_message, 400, "the license certificate in the answer is refused: %.300s",
                     o.msg);
        } else
            new_cert = true;
    }
    if (kind == ANSWER_FAILED) {
        record_failure(l, kind == (int)a->kind ? a->failure : FAILURE_SERVER, ret_message,
                       validated_this_boot);
    } else if (kind == ANSWER_REFUSED) {
        if (!strcmp(a->reason, "not_active") || !strcmp(a->reason, "unknown_license")) {
            char problem[256];
            snprintf(problem, sizeof(problem),
                     "the license was removed: the license server no longer knows this activation "
                     "(%.150s)",
                     a->message);
            log_warn("%s", problem);
            snprintf(why, sizeof(why), "certificate %.16s no longer known to the license server",
                     l->lic.jti);
            if (!end_certificate(l, why, &o))
                log_error("the certificate could not be ended in the TPM: %s", o.msg);
            erase(l, problem);
        } else
            record_refusal(l, a->reason, a->message);
    } else {
        was_bad = l->state.grace_start || (l->state.flags & STORE_REFUSED);
        st = l->state;
        memcpy(st.epoch, a->epoch, STORE_EPOCH_LEN);
        memset(st.next_epoch, 0, STORE_EPOCH_LEN);
        grace_succeeded(&st, agent_now());
        if (new_cert && c.secs_granted > st.granted_secs)
            st.granted_secs = c.secs_granted;
        if (!store(l, new_cert ? a->certificate : NULL, a->certificate_len, &st, &o)) {
            /* the server moved on; the pending epoch stays valid for a retry */
            log_warn("the validation's result could not be kept in the TPM: %s", o.msg);
            l->state = st;
            new_cert = false;
        }
        if (new_cert) {
            take(l, &c);
            log_info("new license certificate from the license server: %llu seconds granted",
                     (unsigned long long)c.secs_granted);
        }
        if (a->cache_secs)
            l->cache_secs = a->cache_secs;
        if (was_bad)
            log_info("validation succeeded: the license is valid again, no grace period runs");
    }
    publish(l);
out:
    pthread_mutex_unlock(&l->lock);
    return kind;
}

bool ledger_can_activate(struct ledger *l, struct outcome *o) {
    char tail[LICENSE_CODE_LOG_BUFLEN];
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    if (offline_mode(l))
        ok = outcome_set(o, OUTCOME_CONFLICT, "Cannot activate when offline: offline mode is on");
    else if (l->lic.present && !l->lic.dead)
        ok = outcome_set(o, OUTCOME_CONFLICT,
                         "A license is already applied (%s): remove it first with DELETE "
                         "/v1/management/license",
                         license_code_for_log(l->lic.code, tail));
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_apply_activation(struct ledger *l, const char *code, const char *activation,
                             const uint8_t epoch[STORE_EPOCH_LEN], uint64_t tpm_clock,
                             const char *cert, size_t len, struct outcome *o) {
    char tail[LICENSE_CODE_LOG_BUFLEN], why[TPMIO_WHY_LEN] = "";
    struct cert_license c;
    struct store_state st;
    uint64_t start;
    bool ok = false;

    pthread_mutex_lock(&l->lock);
    /* everything is checked before anything is written */
    if (l->lic.present && !l->lic.dead) {
        outcome_set(o, OUTCOME_CONFLICT, "a license was applied meanwhile (%s)",
                    license_code_for_log(l->lic.code, tail));
        goto out;
    }
    if (!verify(l, cert, len, code, false, &c, &start, o)) {
        o->kind = OUTCOME_UPSTREAM;
        goto out;
    }
    if (start != l->counter_value) {
        outcome_set(o, OUTCOME_UPSTREAM, "its usage counter base is not this TPM's counter now");
        goto out;
    }
    if (!c.window.present || c.window.tpm_clock != tpm_clock) {
        outcome_set(o, OUTCOME_UPSTREAM,
                    c.window.present ? "its validity is not anchored at this request's TPM clock"
                                     : "it carries no validity window");
        goto out;
    }
    if (strcmp(c.jti, activation) != 0) {
        outcome_set(o, OUTCOME_UPSTREAM, "its serial is not the activation ID");
        goto out;
    }
    if (c.activated_offline) {
        outcome_set(o, OUTCOME_UPSTREAM, "it is an offline activation's certificate");
        goto out;
    }
    memset(&st, 0, sizeof(st));
    memcpy(st.epoch, epoch, STORE_EPOCH_LEN);
    grace_succeeded(&st, agent_now());
    st.granted_secs = c.secs_granted;
    /* the state with this activation's epoch first, then the certificate:
     * a TPM lost between the two writes must not leave the certificate
     * beside a state without its epoch, which the server would refuse at
     * the next start as a copy's (stale_epoch) and flag */
    if (!store(l, NULL, 0, &st, o))
        goto out;
    if (agent_store_write_license(l->tpm, l->cfg.nv_base, cert, len, why) < 0) {
        outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM is not available: %s", why);
        goto out;
    }
    take(l, &c);
    log_info("license %s activated online (activation %.8s)", license_code_for_log(c.license, tail),
             c.jti);
    ok = outcome_set(o, OUTCOME_OK, "ok");
    publish(l);
out:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool ledger_removal_begin(struct ledger *l, struct online_request *ret, struct outcome *o) {
    bool ok = false;

    pthread_mutex_lock(&l->lock);
    if (!l->lic.present)
        outcome_set(o, OUTCOME_CONFLICT, "No license is applied");
    else if (offline_mode(l))
        outcome_set(o, OUTCOME_CONFLICT, "Cannot remove license in offline mode");
    else if (!l->cfg.server_configured)
        outcome_set(o, OUTCOME_UNAVAILABLE,
                    "Cannot remove license: no license server is configured on this appliance "
                    "to return the unused seconds to");
    else if (l->removing)
        outcome_set(o, OUTCOME_CONFLICT, "the license is being removed already");
    else {
        /* no new seconds from here: what is consumed is final */
        l->removing = true;
        fill_request(l, ret);
        /* the server checks that the TPM clock never goes back (0: not sent) */
        if (!tpm_clock_ms(l, &ret->tpm_clock))
            ret->tpm_clock = 0;
        ok = outcome_set(o, OUTCOME_OK, "ok");
        publish(l);
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void ledger_removal_abort(struct ledger *l) {
    pthread_mutex_lock(&l->lock);
    l->removing = false;
    publish(l);
    pthread_mutex_unlock(&l->lock);
}

bool ledger_removal_finish(struct ledger *l, const char *problem, struct outcome *o) {
    char why[120], tpm_why[TPMIO_WHY_LEN] = "";
    struct outcome eo;
    bool erased;

    pthread_mutex_lock(&l->lock);
    /* the license server took the unused seconds back: this certificate
     * must never serve again, from a copy or applied anew. Its record goes
     * first, in one NV write: moving the counter past the ceiling may take
     * a grant's worth of writes, and a TPM lost during them must not leave
     * the certificate to be loaded again at the next start. */
    erased = agent_store_write_license(l->tpm, l->cfg.nv_base, NULL, 0, tpm_why) == 0;
    if (!erased)
        outcome_set(o, OUTCOME_UNAVAILABLE, "the TPM is not available: %s", tpm_why);
    snprintf(why, sizeof(why), "certificate %.16s removed", l->lic.jti);
    if (!end_certificate(l, why, &eo))
        log_error("the removed certificate could not be ended in the TPM: %s", eo.msg);
    erase(l, problem);
    publish(l);
    pthread_mutex_unlock(&l->lock);
    return erased;
}
