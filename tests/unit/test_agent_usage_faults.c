/* Fault paths of the usage ledger that swtpm cannot produce on demand,
 * injected with a link-time wrap around tpm_counter_increment while the
 * rest runs against a real swtpm and a real ledger holding a license signed
 * here: the TPM's NV write throttle is retried and counted once; an
 * increment whose answer was lost is counted once; a TPM that is gone makes
 * reserve fail closed once the covered seconds are used. Also the lease
 * table's limits and expiry through the ledger. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "agent/ledger.h"
#include "agent/nvlayout.h"
#include "agent/tpmio.h"
#include "cert/cert.h"
#include "common/hex.h"
#include "hwid/id.h"
#include "tests/lib/swtpm.h"
#include "tpm/tpm.h"

static int fail_next; /* how many increments answer -EBUSY (NV_RATE) */
static int lose_next; /* how many increments happen but answer -ENODEV */
int __real_tpm_counter_increment(struct tpm_ctx *ctx, uint32_t index);
int __wrap_tpm_counter_increment(struct tpm_ctx *ctx, uint32_t index);
int __wrap_tpm_counter_increment(struct tpm_ctx *ctx, uint32_t index) {
    if (fail_next > 0) {
        fail_next--;
        return -EBUSY;
    }
    if (lose_next > 0) {
        int r = __real_tpm_counter_increment(ctx, index);
        lose_next--;
        return r < 0 ? r : -ENODEV; /* it happened, the answer did not arrive */
    }
    return __real_tpm_counter_increment(ctx, index);
}

struct fixture {
    struct swtpm tpm;
    struct tpmio *io;
    struct tpm_ctx *ctx; /* to look at the counter as another TPM user */
    struct ledger *ledger;
    EVP_PKEY *key;
    struct tpm_ek ek;
    struct hwid_digests digests;
    char computer_id[HWID_ID_STRLEN];
    uint32_t counter;
};

/* A license for this fixture's machine and counter, signed by f->key. */
static char *sign(struct fixture *f, uint64_t granted, uint32_t tick) {
    struct cert_license lic = {0};
    struct tpm_nv_public pub;
    char msg[256], *jws = NULL;
    uint64_t v;

    assert_int_equal(tpm_nv_public(f->ctx, f->counter, &pub), 0);
    assert_int_equal(tpm_counter_read(f->ctx, f->counter, &v), 0);
    snprintf(lic.license, sizeof(lic.license), "L-1");
    snprintf(lic.product, sizeof(lic.product), "p");
    snprintf(lic.computer_id, sizeof(lic.computer_id), "%s", f->computer_id);
    lic.customer_id = 1;
    lic.hwid = f->digests;
    lic.type = CERT_PERPETUAL;
    lic.secs_allocated = lic.secs_granted = granted;
    lic.offline_allowed = lic.activated_offline = true;
    lic.tick_secs = tick;
    lic.counter.index = f->counter;
    memcpy(lic.counter.name, pub.name, pub.name_len);
    lic.counter.name_len = pub.name_len;
    lic.counter.value = v;
    lic.iat = time(NULL);
    assert_int_equal(hex_random(lic.jti, 16), 0);
    if (cert_license_sign(&lic, f->key, &jws, msg, sizeof(msg)) < 0)
        fail_msg("signing: %s", msg);
    return jws;
}

static void license(struct fixture *f, uint64_t granted, uint32_t tick) {
    char *cert = sign(f, granted, tick);
    struct outcome o;
    bool ok = ledger_apply_offline(f->ledger, "L-1", cert, strlen(cert), &o);
    if (!ok)
        fail_msg("license refused: %s", o.msg);
    free(cert);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    uint8_t raw[32];
    size_t n = sizeof(raw);

    if (!f || swtpm_new(&f->tpm, NULL) < 0 ||
        tpmio_open(f->tpm.tcti, &f->io, &f->ek, err, sizeof(err)) < 0 ||
        tpm_open(f->tpm.tcti, 0, &f->ctx, err, sizeof(err)) < 0)
        return -1;
    f->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    memset(f->digests.digest, 0x5a, sizeof(f->digests.digest));
    for (int c = 0; c < HWID_COMPONENT_MAX; c++)
        f->digests.present[c] = true;
    if (!f->key || hwid_computer_id(&f->digests, f->computer_id) < 0 ||
        EVP_PKEY_get_raw_public_key(f->key, raw, &n) != 1)
        return -1;
    f->counter = agent_nv_index(AGENT_NV_BASE_DEFAULT, AGENT_NV_COUNTER);
    struct ledger_config lc = {
        .nv_base = AGENT_NV_BASE_DEFAULT,
        .vendor_key = f->key,
        .computer_id = f->computer_id,
        .digests = &f->digests,
        .ek_spki = raw,
        .ek_spki_len = n,
    };
    if (ledger_new(&lc, f->io, &f->ledger) < 0 ||
        ledger_load(f->ledger, true, err, sizeof(err)) < 0)
        return -1;
    license(f, 1000, 10);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    ledger_free(f->ledger);
    tpmio_free(f->io);
    tpm_close(f->ctx);
    tpm_ek_clear(&f->ek);
    EVP_PKEY_free(f->key);
    swtpm_destroy(&f->tpm);
    free(f);
    return 0;
}

/* A reservation as uid; the outcome's kind, the seconds in *granted. */
static enum outcome_kind reserve_as(struct fixture *f, uid_t uid, int n, long long *granted,
                                    char *id) {
    struct lease_grant g = {0};
    struct outcome o = {0};
    if (!ledger_reserve(f->ledger, uid, (uint64_t)n, NULL, &g, &o)) {
        *granted = 0;
        return o.kind;
    }
    *granted = (long long)g.secs;
    if (id)
        memcpy(id, g.id, sizeof(g.id));
    return OUTCOME_OK;
}

static enum outcome_kind reserve(struct fixture *f, int n, long long *granted) {
    return reserve_as(f, 1000, n, granted, NULL);
}

static uint64_t tpm_counter(struct fixture *f) {
    uint64_t v = 0;
    assert_int_equal(tpm_counter_read(f->ctx, f->counter, &v), 0);
    return v;
}

static uint64_t published_counter(struct fixture *f) {
    const struct snapshot *s = ledger_snapshot(f->ledger);
    uint64_t v = s->counter_value;
    snapshot_put(s);
    return v;
}

static void nv_rate_is_retried_and_counted_once(void **state) {
    struct fixture *f = *state;
    uint64_t c0 = tpm_counter(f);
    long long g;

    fail_next = 3;
    assert_int_equal(reserve(f, 25, &g), OUTCOME_OK);
    assert_int_equal(g, 25);
    assert_int_equal(fail_next, 0);
    assert_int_equal(tpm_counter(f), c0 + 3); /* 3 ticks of 10 s, no more */
    assert_int_equal(published_counter(f), c0 + 3);
}

static void lost_answer_is_counted_once(void **state) {
    struct fixture *f = *state;
    uint64_t c0 = tpm_counter(f);
    long long g;

    lose_next = 1;
    assert_int_equal(reserve(f, 10, &g), OUTCOME_OK);
    assert_int_equal(g, 10);
    assert_int_equal(tpm_counter(f), c0 + 1);
    assert_int_equal(published_counter(f), c0 + 1);
}

static void tpm_gone_fails_closed(void **state) {
    struct fixture *f = *state;
    struct tpmio_health h;
    long long g;

    assert_int_equal(reserve(f, 5, &g), OUTCOME_OK); /* covers 10 s: 5 left in the pool */
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(reserve(f, 4, &g), OUTCOME_OK); /* from the pool, no TPM needed */
    assert_int_equal(g, 4);
    assert_int_equal(reserve(f, 4, &g), OUTCOME_OK); /* 1 s covered: only that */
    assert_int_equal(g, 1);
    assert_int_equal(reserve(f, 4, &g), OUTCOME_UNAVAILABLE); /* nothing covered, no TPM */
    tpmio_health(f->io, &h);
    assert_false(h.ok);
    assert_non_null(strstr(h.error, "advancing the usage counter"));
}

static void expired_lease_is_charged_in_full(void **state) {
    struct fixture *f = *state;
    uint64_t charged, returned;
    const struct snapshot *s;
    struct outcome o;
    char id[LEASE_ID_LEN + 1];
    long long g;

    assert_int_equal(reserve_as(f, 1000, 30, &g, id), OUTCOME_OK);
    /* another caller cannot commit it */
    assert_false(ledger_commit(f->ledger, 1001, false, id, 5, &charged, &returned, &o));
    assert_int_equal(o.kind, OUTCOME_REFUSED);
    /* more than it holds */
    assert_false(ledger_commit(f->ledger, 1000, false, id, 31, &charged, &returned, &o));
    assert_int_equal(o.kind, OUTCOME_INVALID);
    assert_true(ledger_commit(f->ledger, 1000, false, id, 5, &charged, &returned, &o));
    assert_int_equal(charged, 5);
    assert_int_equal(returned, 25);
    assert_false(ledger_commit(f->ledger, 1000, false, id, 5, &charged, &returned, &o));
    assert_int_equal(o.kind, OUTCOME_NOT_FOUND);
    s = ledger_snapshot(f->ledger);
    assert_int_equal(s->charged_total, 5);
    assert_int_equal(s->returned_total, 25);
    assert_int_equal(s->pool, 25);
    assert_int_equal(s->leases_open, 0);
    snapshot_put(s);
}

static void total_lease_cap(void **state) {
    struct fixture *f = *state;
    long long g;

    license(f, 1000000, 3600); /* one TPM write covers them all */
    for (int i = 0; i < LEASES_MAX; i++)
        if (reserve_as(f, (uid_t)(1000 + i / LEASES_PER_CALLER), 1, &g, NULL) != OUTCOME_OK)
            fail_msg("lease %d refused", i);
    /* a caller with no lease yet: the table is full */
    assert_int_equal(reserve_as(f, 5000, 1, &g, NULL), OUTCOME_LIMIT);
    /* and one that holds its share */
    assert_int_equal(reserve_as(f, 1000, 1, &g, NULL), OUTCOME_LIMIT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(nv_rate_is_retried_and_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_answer_is_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(tpm_gone_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_lease_is_charged_in_full, setup, teardown),
        cmocka_unit_test_setup_teardown(total_lease_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
