/* Unit tests for common/: log level parsing and the cleanup helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"

static void parse_levels(void **state) {
    enum log_level l;
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, LOG_LVL_ERROR);
    assert_int_equal(log_parse_level("debug", &l), 0);
    assert_int_equal(l, LOG_LVL_DEBUG);
    assert_int_equal(log_parse_level("verbose", &l), -EINVAL);
    assert_int_equal(log_parse_level(NULL, &l), -EINVAL);
}

static char *dup_and_take(void) {
    _cleanup_free_ char *s = strdup("kept");
    return TAKE_PTR(s);
}

static void take_ptr_keeps_value(void **state) {
    char *s = dup_and_take();
    assert_string_equal(s, "kept");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_levels),
        cmocka_unit_test(take_ptr_keeps_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
