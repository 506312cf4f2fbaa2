/* Grace periods and back-off (agent/grace.c): SPEC section 8's rules on the
 * state record, with the wall clock and the TPM clock moved independently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "agent/grace.h"

#define T0    1800000000 /* a wall-clock time */
#define C0    5000000    /* a TPM clock value, ms */
#define HOURS 3600

static void lengths_by_failure_class(void **state) {
    struct store_state s = {0};

    assert_true(grace_begin(&s, FAILURE_UNREACHABLE, false, T0, C0));
    assert_int_equal(s.grace_secs, GRACE_SHORT_SECS); /* nothing validated on this boot */
    s = (struct store_state){0};
    assert_true(grace_begin(&s, FAILURE_UNREACHABLE, true, T0, C0));
    assert_int_equal(s.grace_secs, GRACE_LONG_SECS); /* 7 days after a success */
    s = (struct store_state){0};
    assert_true(grace_begin(&s, FAILURE_SERVER, true, T0, C0));
    assert_int_equal(s.grace_secs, GRACE_SHORT_SECS); /* server-side errors: always 2 h */
    assert_int_equal(GRACE_SHORT_SECS, 2 * 3600);
    assert_int_equal(GRACE_LONG_SECS, 7 * 86400);
}

static void a_running_grace_period_is_never_restarted(void **state) {
    struct store_state s = {0};

    assert_true(grace_begin(&s, FAILURE_SERVER, false, T0, C0));
    assert_false(grace_begin(&s, FAILURE_UNREACHABLE, true, T0 + HOURS, C0 + 3600000));
    assert_int_equal(s.grace_start, T0);
    assert_int_equal(s.grace_secs, GRACE_SHORT_SECS);
}

static void ends_after_its_length(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_observe(&s, T0 + HOURS, C0 + 3600000, true);
    assert_false(grace_over(&s));
    assert_int_equal(grace_end(&s, T0 + HOURS), T0 + 2 * HOURS);
    assert_int_equal(grace_left_ms(&s), 3600000);
    grace_observe(&s, T0 + 2 * HOURS - 1, C0 + 7199000, true);
    assert_false(grace_over(&s));
    grace_observe(&s, T0 + 2 * HOURS, C0 + 7200000, true);
    assert_true(grace_over(&s));
    assert_int_equal(grace_left_ms(&s), 0);
}

static void a_clock_set_back_gives_nothing(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    /* an hour passes, then the wall clock is set back a day */
    grace_observe(&s, T0 + HOURS, C0 + 3600000, true);
    assert_false(grace_observe(&s, T0 - 86400, C0 + 3600000, true));
    assert_int_equal(s.grace_seen_ms, 3600000);
    /* the TPM clock keeps counting: the period ends on time */
    grace_observe(&s, T0 - 86400 + HOURS, C0 + 7200000, true);
    assert_true(grace_over(&s));
}

static void the_wall_clock_counts_while_the_tpm_clock_stood_still(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    /* the machine was off for 3 h: the TPM clock did not run */
    grace_observe(&s, T0 + 3 * HOURS, C0 + 1000, true);
    assert_true(grace_over(&s));
}

static void a_restart_with_the_clock_set_back_keeps_what_was_seen(void **state) {
    struct store_state s = {0}, restored;

    grace_begin(&s, FAILURE_UNREACHABLE, true, T0, C0);
    /* 5 days in by the wall clock while the TPM clock stood still (off) */
    grace_observe(&s, T0 + 5 * 86400, C0 + 1000, true);
    assert_int_equal(s.grace_seen_ms, 5ull * 86400 * 1000);
    /* the TPM clock continues from 5 days at its present value */
    assert_int_equal(s.clock_anchor_ms, C0 + 1000);
    restored = s; /* what the TPM holds across a restart */
    /* the wall clock is set back to the start; the TPM clock ran 2 more days */
    grace_observe(&restored, T0, C0 + 1000 + 2ull * 86400 * 1000, true);
    assert_true(grace_over(&restored));
}

static void a_tpm_clock_that_stepped_back_is_reanchored(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_observe(&s, T0 + HOURS, C0 + 3600000, true);
    /* power loss: the TPM clock stepped back below the anchor; wall clock set back */
    assert_true(grace_observe(&s, T0, C0 - 60000, true));
    assert_int_equal(s.grace_seen_ms, 3600000);
    assert_int_equal(s.clock_anchor_ms, C0 - 60000);
    /* another hour on the TPM clock ends it */
    grace_observe(&s, T0, C0 - 60000 + 3600000, true);
    assert_true(grace_over(&s));
}

static void without_a_tpm_clock_the_wall_clock_and_what_was_seen_count(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_observe(&s, T0 + HOURS, 0, false);
    assert_int_equal(s.grace_seen_ms, 3600000);
    grace_observe(&s, T0, 0, false);
    assert_int_equal(s.grace_seen_ms, 3600000);
}

static void success_clears_grace_and_refusal(void **state) {
    struct store_state s = {.flags = STORE_REFUSED | STORE_OFFLINE_MODE, .refusal = 4};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_succeeded(&s, T0 + 10);
    assert_int_equal(s.grace_start, 0);
    assert_false(grace_over(&s));
    assert_int_equal(grace_end(&s, T0), 0);
    assert_int_equal(s.flags, STORE_OFFLINE_MODE);
    assert_int_equal(s.refusal, 0);
    assert_int_equal(s.last_success, T0 + 10);
    assert_false(grace_observe(&s, T0 + 100, C0, true));
}

/* Once over, the end shown is the moment it ran out: later retries (and the
 * wall clock going on) do not move it. */
static void the_end_stays_where_it_was_once_over(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_observe(&s, T0 + 3 * HOURS, C0 + 3 * 3600000ull, true);
    assert_true(grace_over(&s));
    assert_int_equal(grace_end(&s, T0 + 3 * HOURS), T0 + 2 * HOURS);
    grace_observe(&s, T0 + 30 * HOURS, C0 + 30 * 3600000ull, true);
    assert_int_equal(grace_end(&s, T0 + 30 * HOURS), T0 + 2 * HOURS);
    /* the TPM clock ran out first: the end is when it did, on the wall clock */
    memset(&s, 0, sizeof(s));
    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    grace_observe(&s, T0 + HOURS, C0 + 3 * 3600000ull, true);
    assert_true(grace_over(&s));
    assert_int_equal(grace_end(&s, T0 + HOURS), T0);
}

/* A record read from NV: the length comes from the class, whatever number
 * the record holds; a damaged record counts as a grace period that is over. */
static void lengths_never_come_from_the_record(void **state) {
    struct store_state s = {0};

    grace_begin(&s, FAILURE_SERVER, false, T0, C0);
    s.grace_secs = 0xffffffffu;
    grace_from_record(&s);
    assert_int_equal(s.grace_secs, GRACE_SHORT_SECS);
    s.grace_secs = GRACE_LONG_SECS;
    grace_from_record(&s);
    assert_int_equal(s.grace_secs, GRACE_LONG_SECS);
    s.grace_start = 0;
    s.grace_secs = 99;
    grace_from_record(&s);
    assert_int_equal(s.grace_secs, 0);
    grace_least_favourable(&s);
    assert_true(grace_over(&s));
}

static void backoff_doubles_to_1024_minutes(void **state) {
    static const unsigned want[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024};
    for (unsigned n = 1; n <= 13; n++)
        assert_int_equal(backoff_minutes(n), want[n - 1]);
    assert_int_equal(backoff_minutes(1000), 1024);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lengths_by_failure_class),
        cmocka_unit_test(a_running_grace_period_is_never_restarted),
        cmocka_unit_test(ends_after_its_length),
        cmocka_unit_test(a_clock_set_back_gives_nothing),
        cmocka_unit_test(the_wall_clock_counts_while_the_tpm_clock_stood_still),
        cmocka_unit_test(a_restart_with_the_clock_set_back_keeps_what_was_seen),
        cmocka_unit_test(a_tpm_clock_that_stepped_back_is_reanchored),
        cmocka_unit_test(without_a_tpm_clock_the_wall_clock_and_what_was_seen_count),
        cmocka_unit_test(success_clears_grace_and_refusal),
        cmocka_unit_test(the_end_stays_where_it_was_once_over),
        cmocka_unit_test(lengths_never_come_from_the_record),
        cmocka_unit_test(backoff_doubles_to_1024_minutes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
