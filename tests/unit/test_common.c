/* Unit tests for common/: log level parsing and the cleanup helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/text.h"

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

static void whole_numbers_are_strict(void **state) {
    uint64_t v = 7;
    assert_int_equal(parse_uint_strict("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_uint_strict("86400", 86400, &v), 0);
    assert_int_equal(v, 86400);
    assert_int_equal(parse_uint_strict("86401", 86400, &v), -ERANGE);
    assert_int_equal(parse_uint_strict("18446744073709551616", UINT64_MAX, &v), -ERANGE);
    assert_int_equal(parse_uint_strict("18446744073709551615", UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "12a", "1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse_uint_strict(bad[i], 100, &v), -EINVAL);
    assert_int_equal(parse_uint_strict(NULL, 100, &v), -EINVAL);
}

static void certificates_read_without_white_space(void **state) {
    char path[] = "/tmp/tpmlic-text-XXXXXX", err[300];
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    FILE *f;
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("  abc.def\r\n\tghi\n", f);
    fclose(f);
    assert_int_equal(
        read_certificate_text(path, 64, "a certificate", &text, &len, err, sizeof(err)), 0);
    assert_string_equal(text, "abc.defghi");
    assert_int_equal(len, 10);
    assert_int_equal(read_certificate_text(path, 5, "a certificate", &text, &len, err, sizeof(err)),
                     -EFBIG);
    assert_non_null(strstr(err, "larger than 5 bytes: not a certificate"));
    f = fopen(path, "w");
    fputs(" \n\n", f);
    fclose(f);
    assert_int_equal(
        read_certificate_text(path, 64, "a certificate", &text, &len, err, sizeof(err)), -ENODATA);
    assert_non_null(strstr(err, "is empty"));
    unlink(path);
    assert_int_equal(
        read_certificate_text(path, 64, "a certificate", &text, &len, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot read"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_levels),
        cmocka_unit_test(take_ptr_keeps_value),
        cmocka_unit_test(whole_numbers_are_strict),
        cmocka_unit_test(certificates_read_without_white_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
