/* Fault paths of the usage ledger that swtpm cannot produce on demand,
 * injected with a link-time wrap around tpm_counter_increment while the
 * rest runs against a real swtpm: the TPM's NV write throttle is retried and
 * counted once; an increment whose answer was lost is counted once; a TPM
 * that is gone makes reserve fail closed once the covered seconds are used. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/http.h"
#include "agent/nvlayout.h"
#include "agent/store.h"
#include "agent/usage.h"
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
    struct agent_config cfg;
    struct agent a;
    struct http_peer peer;
};

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    if (!f || swtpm_new(&f->tpm, NULL) < 0)
        return -1;
    f->cfg.nv_base = AGENT_NV_BASE_DEFAULT;
    f->a.cfg = &f->cfg;
    pthread_mutex_init(&f->a.tpm_lock, NULL);
    pthread_rwlock_init(&f->a.lock, NULL);
    agent_usage_init(&f->a.usage);
    if (tpm_open(f->tpm.tcti, 0, &f->a.tpm, err, sizeof(err)) < 0 ||
        agent_store_ensure(f->a.tpm, AGENT_NV_BASE_DEFAULT, NULL) < 0)
        return -1;
    f->a.counter.index = agent_nv_index(AGENT_NV_BASE_DEFAULT, AGENT_NV_COUNTER);
    if (tpm_counter_read(f->a.tpm, f->a.counter.index, &f->a.counter_value) < 0)
        return -1;
    f->a.lic.present = true;
    f->a.lic.type = CERT_CONSUMPTION;
    f->a.lic.secs_granted = 1000;
    f->a.lic.tick_secs = 10;
    f->a.lic_counter.base = f->a.counter_value;
    f->peer.known = true;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    tpm_close(f->a.tpm);
    swtpm_destroy(&f->tpm);
    free(f);
    return 0;
}

/* POST /v1/usage/reserve {"seconds": n}; returns the status, the granted
 * seconds in *granted. */
static int reserve(struct fixture *f, int n, long long *granted) {
    char body[64];
    struct http_request req = {.method = "POST", .path = "/v1/usage/reserve", .peer = &f->peer};
    struct http_response resp = {0};
    snprintf(body, sizeof(body), "{\"seconds\": %d}", n);
    req.body = body;
    req.body_len = strlen(body);
    agent_post_reserve(&f->a, &req, &resp);
    *granted = resp.json ? json_integer_value(json_object_get(resp.json, "seconds")) : 0;
    json_decref(resp.json);
    return resp.status;
}

static uint64_t tpm_counter(struct fixture *f) {
    uint64_t v = 0;
    assert_int_equal(tpm_counter_read(f->a.tpm, f->a.counter.index, &v), 0);
    return v;
}

static void nv_rate_is_retried_and_counted_once(void **state) {
    struct fixture *f = *state;
    uint64_t c0 = tpm_counter(f);
    long long g;

    fail_next = 3;
    assert_int_equal(reserve(f, 25, &g), 200);
    assert_int_equal(g, 25);
    assert_int_equal(fail_next, 0);
    assert_int_equal(tpm_counter(f), c0 + 3); /* 3 ticks of 10 s, no more */
    assert_int_equal(f->a.counter_value, c0 + 3);
}

static void lost_answer_is_counted_once(void **state) {
    struct fixture *f = *state;
    uint64_t c0 = tpm_counter(f);
    long long g;

    lose_next = 1;
    assert_int_equal(reserve(f, 10, &g), 200);
    assert_int_equal(g, 10);
    assert_int_equal(tpm_counter(f), c0 + 1);
    assert_int_equal(f->a.counter_value, c0 + 1);
}

static void tpm_gone_fails_closed(void **state) {
    struct fixture *f = *state;
    long long g;

    assert_int_equal(reserve(f, 5, &g), 200); /* covers 10 s: 5 left in the pool */
    assert_int_equal(swtpm_ctl(&f->tpm, "poweroff", NULL), 0);
    assert_int_equal(reserve(f, 4, &g), 200); /* from the pool, no TPM needed */
    assert_int_equal(g, 4);
    assert_int_equal(reserve(f, 4, &g), 200); /* 1 s covered: only that */
    assert_int_equal(g, 1);
    assert_int_equal(reserve(f, 4, &g), 503); /* nothing covered, no TPM */
    assert_non_null(strstr(f->a.tpm_error, "advancing the usage counter"));
    assert_null(f->a.tpm); /* dropped, for the watch to reopen */
}

/* POST /v1/usage/commit; returns the status. */
static int commit(struct fixture *f, const char *lease, int used) {
    char body[128];
    struct http_request req = {.method = "POST", .path = "/v1/usage/commit", .peer = &f->peer};
    struct http_response resp = {0};
    snprintf(body, sizeof(body), "{\"lease\": \"%s\", \"used\": %d}", lease, used);
    req.body = body;
    req.body_len = strlen(body);
    agent_post_commit(&f->a, &req, &resp);
    json_decref(resp.json);
    return resp.status;
}

static void expired_lease_is_charged_in_full(void **state) {
    struct fixture *f = *state;
    char id[33];
    long long g;

    assert_int_equal(reserve(f, 30, &g), 200);
    snprintf(id, sizeof(id), "%s", f->a.usage.leases[0].id);
    assert_true(id[0]);
    f->a.usage.leases[0].expires = time(NULL) - 1; /* its time has passed */
    assert_int_equal(commit(f, id, 5), 404);
    assert_int_equal(f->a.usage.charged_total, 30);
    assert_int_equal(f->a.usage.returned_total, 0);
    assert_int_equal(f->a.usage.pool, 0);
}

static void total_lease_cap(void **state) {
    struct fixture *f = *state;
    long long g;

    f->a.lic.secs_granted = 1000000;
    f->a.lic.tick_secs = 3600; /* one TPM write covers them all */
    for (int i = 0; i < USAGE_LEASES_MAX; i++) {
        f->peer.uid = (uid_t)(1000 + i / USAGE_LEASES_PER_PEER);
        if (reserve(f, 1, &g) != 200)
            fail_msg("lease %d refused", i);
    }
    f->peer.uid = 5000; /* a caller with no lease yet: the table is full */
    assert_int_equal(reserve(f, 1, &g), 429);
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
