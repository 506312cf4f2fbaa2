/* TPM access for the daemon (tpmio.h). */
#include "agent/tpmio.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"

struct tpmio {
    pthread_mutex_t io_lock;       /* one command at a time */
    struct tpm_ctx *ctx;           /* NULL: no TPM, or lost (the watch reopens it) */
    char *tcti;                    /* NULL without a TPM */
    unsigned long commands_before; /* sent through contexts closed since */
    struct tpm_ek ek;              /* the proven EK (public key only), to prove it again */
    uint8_t nv_auth[64], owner_auth[64];
    size_t nv_auth_len, owner_auth_len;
    atomic_bool untrusted; /* mirrors health.untrusted for the hot path */

    pthread_mutex_t health_lock; /* only around health, never across a command */
    struct tpmio_health health;

    /* the watch: stop is guarded by health_lock, which wake uses */
    pthread_t watch;
    pthread_cond_t wake;
    bool watch_started;
    bool stop;
    unsigned interval_secs;
};

static int alloc(struct tpmio **ret) {
    pthread_condattr_t ca;
    struct tpmio *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->io_lock, NULL);
    pthread_mutex_init(&t->health_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    *ret = t;
    return 0;
}

/* Opens the TPM and has it prove the EK (ek: the one to prove, or NULL to
 * read it first into *ret_ek). Caller holds io_lock, or is alone. */
static int open_proven(struct tpmio *t, const struct tpm_ek *ek, struct tpm_ek *ret_ek, char *err,
                       size_t errlen) {
    struct tpm_ek_proof proof;
    struct tpm_ctx *c = NULL;
    int r;

    r = tpm_open(t->tcti, 0, &c, err, errlen);
    if (r < 0)
        return r;
    if (!ek) {
        r = tpm_ek_rsa(c, TPM_EK_PERSIST, ret_ek);
        if (r < 0) {
            snprintf(err, errlen, "reading the TPM endorsement key: %s", tpm_last_error(c));
            tpm_close(c);
            return r;
        }
        ek = ret_ek;
    }
    r = tpm_prove_ek(c, ek, TPM_EK_PERSIST, &proof);
    if (r == 0 && t->nv_auth_len)
        r = tpm_set_nv_auth(c, t->nv_auth, t->nv_auth_len);
    if (r == 0 && t->owner_auth_len)
        r = tpm_set_owner_auth(c, t->owner_auth, t->owner_auth_len);
    if (r < 0) {
        snprintf(err, errlen, "%s", tpm_last_error(c));
        tpm_close(c);
        return r;
    }
    log_info("the TPM proved it holds its endorsement key (%s, %lu TPM commands)%s", proof.how,
             proof.commands, proof.persisted ? "; it is persistent from now on" : "");
    t->ctx = c;
    return 0;
}

int tpmio_open(const char *tcti, struct tpmio **ret, struct tpm_ek *ret_ek, char *err,
               size_t errlen) {
    struct tpmio *t;
    int r = alloc(&t);

    if (r < 0)
        return r;
    memset(ret_ek, 0, sizeof(*ret_ek));
    t->tcti = strdup(tcti);
    r = t->tcti ? open_proven(t, NULL, ret_ek, err, errlen) : -ENOMEM;
    if (r < 0) {
        tpm_ek_clear(ret_ek);
        tpmio_free(t);
        return r;
    }
    /* what proving it again needs: the public key */
    t->ek = *ret_ek;
    t->ek.spki_der = t->ek.cert_der = NULL;
    t->ek.spki_len = t->ek.cert_len = 0;
    t->health.present = t->health.ok = true;
    *ret = t;
    return 0;
}

static int set_auth(struct tpmio *t, uint8_t *buf, size_t *len, const uint8_t *auth, size_t n,
                    int (*apply)(struct tpm_ctx *, const uint8_t *, size_t)) {
    int r = 0;
    if (n > 64)
        return -EINVAL;
    pthread_mutex_lock(&t->io_lock);
    secure_wipe(buf, 64);
    memcpy(buf, auth, n);
    *len = n;
    if (t->ctx)
        r = apply(t->ctx, auth, n);
    pthread_mutex_unlock(&t->io_lock);
    return r;
}

int tpmio_set_nv_auth(struct tpmio *t, const uint8_t *auth, size_t len) {
    return set_auth(t, t->nv_auth, &t->nv_auth_len, auth, len, tpm_set_nv_auth);
}

int tpmio_set_owner_auth(struct tpmio *t, const uint8_t *auth, size_t len) {
    return set_auth(t, t->owner_auth, &t->owner_auth_len, auth, len, tpm_set_owner_auth);
}

bool tpmio_trusted(struct tpmio *t) {
    return !atomic_load(&t->untrusted);
}

int tpmio_new_absent(const char *why, struct tpmio **ret) {
    struct tpmio *t;
    int r = alloc(&t);

    if (r < 0)
        return r;
    snprintf(t->health.error, sizeof(t->health.error), "%s", why);
    *ret = t;
    return 0;
}

void tpmio_free(struct tpmio *t) {
    if (!t)
        return;
    if (t->watch_started) {
        pthread_mutex_lock(&t->health_lock);
        t->stop = true;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->health_lock);
        pthread_join(t->watch, NULL);
    }
    tpm_close(t->ctx);
    free(t->tcti);
    secure_wipe(t->nv_auth, sizeof(t->nv_auth));
    secure_wipe(t->owner_auth, sizeof(t->owner_auth));
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->health_lock);
    pthread_mutex_destroy(&t->io_lock);
    free(t);
}

void tpmio_health(struct tpmio *t, struct tpmio_health *ret) {
    pthread_mutex_lock(&t->health_lock);
    *ret = t->health;
    pthread_mutex_unlock(&t->health_lock);
}

unsigned long tpmio_command_count(struct tpmio *t) {
    unsigned long n;
    pthread_mutex_lock(&t->io_lock);
    n = t->commands_before + (t->ctx ? tpm_command_count(t->ctx) : 0);
    pthread_mutex_unlock(&t->io_lock);
    return n;
}

/* Records a failed command; a TPM that no longer answers is closed (the
 * watch reopens it). Caller holds io_lock. */
static int failed(struct tpmio *t, int r, const char *what, char *why) {
    char msg[sizeof(t->health.error)];

    snprintf(msg, sizeof(msg), "%s%s: %s", r == -ENODEV ? "TPM lost: " : "", what,
             t->ctx ? tpm_last_error(t->ctx) : "the TPM is not available");
    if (why)
        snprintf(why, TPMIO_WHY_LEN, "%s", msg);
    pthread_mutex_lock(&t->health_lock);
    t->health.errors++;
    if (r == -ENODEV || r == -EBADE || !t->ctx) {
        t->health.ok = false;
        snprintf(t->health.error, sizeof(t->health.error), "%s", msg);
    }
    if (r == -EBADE) {
        /* fail closed until the TPM proves its EK again */
        t->health.untrusted = true;
        atomic_store(&t->untrusted, true);
    }
    pthread_mutex_unlock(&t->health_lock);
    log_error("%s", msg);
    if ((r == -ENODEV || r == -EBADE) && t->ctx) {
        t->commands_before += tpm_command_count(t->ctx);
        tpm_close(t->ctx);
        t->ctx = NULL;
    }
    return r;
}

/* Runs one tpm/ call under io_lock; records a failure. */
#define IO(t, what, why, call)                                                                     \
    ({                                                                                             \
        int _r;                                                                                    \
        pthread_mutex_lock(&(t)->io_lock);                                                         \
        _r = (t)->ctx ? (call) : -ENODEV;                                                          \
        if (_r < 0)                                                                                \
            failed((t), _r, (what), (why));                                                        \
        pthread_mutex_unlock(&(t)->io_lock);                                                       \
        _r;                                                                                        \
    })

int tpmio_info(struct tpmio *t, struct tpm_info *ret) {
    return IO(t, "reading the TPM's properties", NULL, (tpm_get_info(t->ctx, ret), 0));
}

int tpmio_nv_public(struct tpmio *t, uint32_t index, struct tpm_nv_public *ret, char *why) {
    int r;
    /* an undefined index is an answer, not a failure */
    pthread_mutex_lock(&t->io_lock);
    r = t->ctx ? tpm_nv_public(t->ctx, index, ret) : -ENODEV;
    if (r < 0 && r != -ENOENT)
        failed(t, r, "reading an NV index's public area", why);
    else if (r == -ENOENT && why)
        snprintf(why, TPMIO_WHY_LEN, "%s", tpm_last_error(t->ctx));
    pthread_mutex_unlock(&t->io_lock);
    return r;
}

int tpmio_nv_define(struct tpmio *t, uint32_t index, size_t size, char *why) {
    return IO(t, "defining an NV index", why, tpm_nv_define(t->ctx, index, size));
}

int tpmio_nv_undefine(struct tpmio *t, uint32_t index, char *why) {
    return IO(t, "undefining an NV index", why, tpm_nv_undefine(t->ctx, index));
}

int tpmio_nv_check(struct tpmio *t, const struct tpm_nv_public *pub, enum tpm_nv_type type,
                   size_t size, char *why) {
    return IO(t, "checking an NV index", why, tpm_nv_check(t->ctx, pub, type, size));
}

int tpmio_nv_read(struct tpmio *t, uint32_t index, uint8_t **ret_data, size_t *ret_len, char *why) {
    int r;
    /* an index never written is an answer too */
    pthread_mutex_lock(&t->io_lock);
    r = t->ctx ? tpm_nv_read(t->ctx, index, ret_data, ret_len) : -ENODEV;
    if (r < 0 && r != -ENODATA)
        failed(t, r, "reading NV", why);
    pthread_mutex_unlock(&t->io_lock);
    return r;
}

int tpmio_nv_write(struct tpmio *t, uint32_t index, const void *data, size_t len, const char *what,
                   char *why) {
    return IO(t, what, why, tpm_nv_write(t->ctx, index, data, len));
}

int tpmio_counter_define(struct tpmio *t, uint32_t index, char *why) {
    return IO(t, "defining the usage counter", why, tpm_counter_define(t->ctx, index));
}

int tpmio_counter_read(struct tpmio *t, uint32_t index, uint64_t *ret, char *why) {
    return IO(t, "reading the usage counter", why, tpm_counter_read(t->ctx, index, ret));
}

int tpmio_counter_increment(struct tpmio *t, uint32_t index, uint64_t expect_before,
                            uint64_t *ret_value, char *why) {
    unsigned delay_ms = 5;
    uint64_t v;
    int r = -ENODEV;

    pthread_mutex_lock(&t->io_lock);
    for (int attempt = 0; t->ctx; attempt++) {
        r = tpm_counter_increment(t->ctx, index);
        if (r == 0) {
            *ret_value = expect_before + 1;
            goto out;
        }
        if (r != -EBUSY || attempt >= 8)
            break;
        /* TPM_RC_NV_RATE: the chip throttles NV writes; try again soon */
        usleep(delay_ms * 1000);
        delay_ms *= 2;
    }
    /* The answer may have been lost after the increment happened: the
     * counter itself says. */
    if (t->ctx && tpm_counter_read(t->ctx, index, &v) == 0 && v > expect_before) {
        *ret_value = v;
        r = 0;
        goto out;
    }
    failed(t, r, "advancing the usage counter", why);
out:
    pthread_mutex_unlock(&t->io_lock);
    return r;
}

int tpmio_counter_advance_to(struct tpmio *t, uint32_t index, uint64_t from, uint64_t target,
                             uint64_t *ret_value, char *why) {
    uint64_t v = from;
    int r = 0;

    while (r == 0 && v < target)
        r = tpmio_counter_increment(t, index, v, &v, why);
    *ret_value = v;
    return r;
}

int tpmio_read_clock(struct tpmio *t, struct tpm_clock *ret) {
    return IO(t, "reading the TPM clock", NULL, tpm_read_clock(t->ctx, ret));
}

/* ---- the watch ------------------------------------------------------------ */

/* One look at the TPM: a failing ReadClock marks it lost; a lost TPM is
 * reopened when it answers again. */
static void watch_once(struct tpmio *t) {
    struct tpm_clock clk;
    char err[256];
    bool back = false;

    pthread_mutex_lock(&t->io_lock);
    if (t->ctx) {
        int r = tpm_read_clock(t->ctx, &clk);
        if (r < 0)
            failed(t, r == -EBADE ? -EBADE : -ENODEV, "watching the TPM", NULL);
    }
    if (!t->ctx && t->tcti) {
        int r = open_proven(t, &t->ek, NULL, err, sizeof(err));
        if (r == 0)
            back = true;
        else if (r == -EKEYREJECTED || r == -EBADE) {
            /* another TPM, or answers changed on the way: fail closed */
            pthread_mutex_lock(&t->health_lock);
            if (strcmp(t->health.error, err) != 0)
                log_error("the TPM at %s answers, but: %s", t->tcti, err);
            snprintf(t->health.error, sizeof(t->health.error), "%s", err);
            t->health.untrusted = true;
            atomic_store(&t->untrusted, true);
            pthread_mutex_unlock(&t->health_lock);
        }
    }
    pthread_mutex_unlock(&t->io_lock);
    if (back) {
        pthread_mutex_lock(&t->health_lock);
        t->health.ok = true;
        t->health.untrusted = false;
        atomic_store(&t->untrusted, false);
        t->health.error[0] = '\0';
        t->health.reopened++;
        pthread_mutex_unlock(&t->health_lock);
        log_info("TPM answers again at %s and proved its endorsement key", t->tcti);
    }
}

static void *watch_main(void *arg) {
    struct tpmio *t = arg;
    struct timespec ts;

    pthread_mutex_lock(&t->health_lock);
    while (!t->stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += t->interval_secs;
        pthread_cond_timedwait(&t->wake, &t->health_lock, &ts);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->health_lock);
        watch_once(t);
        pthread_mutex_lock(&t->health_lock);
    }
    pthread_mutex_unlock(&t->health_lock);
    return NULL;
}

int tpmio_start_watch(struct tpmio *t, unsigned interval_secs) {
    int r;
    if (!t->tcti || t->watch_started)
        return 0;
    t->interval_secs = interval_secs ? interval_secs : 10;
    r = -pthread_create(&t->watch, NULL, watch_main, t);
    if (r == 0)
        t->watch_started = true;
    return r;
}
