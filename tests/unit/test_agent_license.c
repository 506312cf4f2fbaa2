/* The hot-path decisions of the agent: valid, expired, not yet valid,
 * feature included or not (seed 000's overbilling warning). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/license.h"

static struct license_view sample(void) {
    struct license_view l = {.present = true, .type = CERT_SUBSCRIPTION};
    strcpy(l.features[0], "standard");
    l.nfeatures = 1;
    l.expiry = 1800000000; /* 2027-01-15T08:00:00Z */
    return l;
}

static void decisions(void **state) {
    struct license_view none = {0}, l = sample();
    char r[128];

    assert_int_equal(license_decide(&none, NULL, 1700000000, r, sizeof(r)), VERDICT_NO_LICENSE);
    assert_string_equal(r, "License is invalid");
    assert_int_equal(license_decide(&l, NULL, 1700000000, r, sizeof(r)), VERDICT_ALLOWED);
    assert_int_equal(license_decide(&l, "standard", 1700000000, r, sizeof(r)), VERDICT_ALLOWED);
    assert_int_equal(license_decide(&l, "enhanced", 1700000000, r, sizeof(r)),
                     VERDICT_FEATURE_MISSING);
    assert_string_equal(r, "License does not include feature 'enhanced'");
    assert_int_equal(license_decide(&l, "standard", 1800000000, r, sizeof(r)), VERDICT_EXPIRED);
    assert_string_equal(r, "License expired on 2027-01-15T08:00:00Z");
    l.not_before = 1750000000;
    assert_int_equal(license_decide(&l, NULL, 1700000000, r, sizeof(r)), VERDICT_NOT_YET_VALID);
    l.expiry = 0; /* perpetual */
    assert_int_equal(license_decide(&l, NULL, 4000000000, r, sizeof(r)), VERDICT_ALLOWED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
