/* Unit tests for common/: log levels, cleanup helpers, numbers, certificates
 * read from files, hex, RFC 3339 times, license codes, JSON fields, verbs. */
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

#include "common/hex.h"
#include "common/json.h"
#include "common/licensecode.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/verbs.h"
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

static void hex_round_trip_and_strictness(void **state) {
    const uint8_t in[] = {0x00, 0x7f, 0x80, 0xff, 0x0a};
    uint8_t out[8];
    char text[HEX_BUFLEN(5)], rnd[HEX_BUFLEN(16)];
    size_t n = 0;

    hex_encode(in, sizeof(in), text);
    assert_string_equal(text, "007f80ff0a");
    assert_int_equal(hex_decode(text, strlen(text), out, sizeof(out), &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, in, 5);
    assert_int_equal(hex_decode("0A", 2, out, sizeof(out), &n), -EINVAL);  /* upper case */
    assert_int_equal(hex_decode("abc", 3, out, sizeof(out), &n), -EINVAL); /* odd */
    assert_int_equal(hex_decode("zz", 2, out, sizeof(out), &n), -EINVAL);
    assert_int_equal(hex_decode("0011223344556677889900", 22, out, sizeof(out), &n), -EFBIG);
    assert_int_equal(hex_decode_exact("007f", out, 2), 0);
    assert_int_equal(hex_decode_exact("007f", out, 3), -EINVAL);
    assert_int_equal(hex_decode_exact(NULL, out, 1), -EINVAL);
    assert_int_equal(hex_random(rnd, 16), 0);
    assert_int_equal(strlen(rnd), 32);
    assert_int_equal(hex_decode_exact(rnd, out, 8) == 0, false); /* 16 bytes, not 8 */
}

static void rfc3339_is_strict(void **state) {
    char buf[RFC3339_BUFLEN];
    time_t t = 0;

    assert_int_equal(rfc3339_parse("2026-11-23T06:59:32Z", &t), 0);
    assert_int_equal(t, 1795417172);
    rfc3339_format(t, buf);
    assert_string_equal(buf, "2026-11-23T06:59:32Z");
    assert_int_equal(rfc3339_parse("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(rfc3339_parse("2028-02-29T00:00:00Z", &t), 0); /* a leap year */
    static const char *const bad[] = {
        "2026-02-30T00:00:00Z",
        "2027-02-29T00:00:00Z",
        "2026-11-23T06:59:32",
        "2026-11-23T06:59:32.5Z",
        "2026-11-23t06:59:32Z",
        "2026-11-23T06:59:32+00:00",
        "2026-11-23 06:59:32Z",
        "2026-13-01T00:00:00Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T06:60:00Z",
        "1969-12-31T23:59:59Z",
        "+026-11-23T06:59:32Z",
        "2026-1-023T06:59:32Z",
        "",
        NULL,
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(rfc3339_parse(bad[i], &t), -EINVAL);
    rfc3339_format(-1, buf);
    assert_string_equal(buf, "");
}

static void license_codes(void **state) {
    char buf[LICENSE_CODE_LOG_BUFLEN], long_code[LICENSE_CODE_MAX + 2];

    assert_true(license_code_valid("L-1001"));
    assert_true(license_code_valid("a.b_c-D9"));
    assert_false(license_code_valid(""));
    assert_false(license_code_valid(NULL));
    assert_false(license_code_valid("L 1001"));
    assert_false(license_code_valid("L/1001"));
    assert_false(license_code_valid("L-1001\n"));
    memset(long_code, 'A', LICENSE_CODE_MAX);
    long_code[LICENSE_CODE_MAX] = '\0';
    assert_true(license_code_valid(long_code));
    long_code[LICENSE_CODE_MAX] = 'A';
    long_code[LICENSE_CODE_MAX + 1] = '\0';
    assert_false(license_code_valid(long_code));
    /* a log never shows a whole code */
    assert_string_equal(license_code_for_log("ACME-2026-XK9Q-7781", buf), "...7781");
    assert_string_equal(license_code_for_log("L-1001", buf), "...001");
    assert_string_equal(license_code_for_log("AB", buf), "...B");
    assert_string_equal(license_code_for_log("A", buf), "...");
}

static void json_fields(void **state) {
    char msg[200], code[LICENSE_CODE_MAX + 1], name[16];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    static const char *const keys[] = {"license", "n", NULL};
    json_t *o = NULL;
    uint64_t n = 0;

    assert_int_equal(cj_load_object("", 0, true, &o, msg, sizeof(msg)), 0);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
    assert_int_equal(cj_load_object(" ", 1, false, &o, msg, sizeof(msg)), -EINVAL);
    assert_int_equal(cj_load_object("[1]", 3, true, &o, msg, sizeof(msg)), -EINVAL);
    assert_string_equal(msg, "the body must be a JSON object");
    assert_int_equal(cj_load_object("{\"a\":1,\"a\":2}", 15, true, &o, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "duplicate"));
    assert_int_equal(cj_load_object("{\"a\":1} x", 10, true, &o, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "line 1 column"));

    o = json_pack("{s:s, s:i}", "license", "L-1001", "n", 7);
    assert_true(cj_only_keys(&c, o, "", keys));
    assert_true(cj_license_code(&c, o, "license", true, code, sizeof(code)));
    assert_string_equal(code, "L-1001");
    assert_true(cj_uint(&c, o, "n", true, 1, 10, &n));
    assert_int_equal(n, 7);
    assert_false(cj_uint(&c, o, "n", true, 8, 10, &n));
    assert_non_null(strstr(msg, "out of range"));
    /* the first problem wins */
    assert_false(cj_string(&c, o, "missing", CJ_REQUIRED, CJ_TEXT, 10, name, sizeof(name)));
    assert_non_null(strstr(msg, "out of range"));
    json_decref(o);

    c.failed = false;
    o = json_pack("{s:s, s:s}", "license", "L 1001", "x", "y");
    assert_false(cj_only_keys(&c, o, "", keys));
    assert_non_null(strstr(msg, "unknown field 'x'"));
    c.failed = false;
    assert_false(cj_license_code(&c, o, "license", true, code, sizeof(code)));
    assert_non_null(strstr(msg, "Invalid license code"));
    json_decref(o);
}

static int verb_calls;
static int run_a(int argc, char **argv, void *ud) {
    static const struct option opts[] = {
        {"flag", no_argument, NULL, 'f'}, {"value", required_argument, NULL, 'v'}, {}};
    int st = 0, rc = 0, c, *seen = ud;

    verb_calls++;
    while ((c = verb_getopt(argc, argv, "prog a", opts, true, &st, &rc)) != -1)
        seen[c == 'f' ? 0 : 1]++;
    if (rc)
        return rc;
    return argc - optind == 1 && !strcmp(argv[optind], "pos") ? 0 : 9;
}

static void verbs_dispatch(void **state) {
    static const struct verb group[] = {{"a", run_a, NULL, NULL}, {}};
    static const struct verb top[] = {
        {"a", run_a, NULL, NULL}, {"g", NULL, group, "group help\n"}, {}};
    int seen[2] = {0, 0};
    char *ok[] = {"a", "--flag", "pos", "--value", "x", NULL};
    char *sub[] = {"g", "a", "pos", NULL};
    char *unknown_opt[] = {"a", "--nope", "pos", NULL};
    char *missing_val[] = {"a", "pos", "--value", NULL};
    char *unknown[] = {"zz", NULL};
    char *abbreviated[] = {"a", "--fl", "pos", NULL};
    char *abbreviated_value[] = {"a", "pos", "--val", "x", NULL};
    char *abbreviated_eq[] = {"a", "pos", "--val=x", NULL};
    char *full_eq[] = {"a", "pos", "--value=x", NULL};
    char *help[] = {"--help", NULL};
    FILE *saved = stderr;

    stderr = fopen("/dev/null", "w");
    assert_int_equal(verb_dispatch("prog", top, "help\n", "prog 1", 5, ok, seen), 0);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, sub, seen), 0);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, unknown_opt, seen),
                     VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, missing_val, seen),
                     VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 1, unknown, seen), VERB_EXIT_USAGE);
    /* getopt_long's abbreviations are refused: "--val" is not "--value" */
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, abbreviated, seen),
                     VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 4, abbreviated_value, seen),
                     VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, abbreviated_eq, seen),
                     VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 3, full_eq, seen), 0);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 0, unknown, seen), VERB_EXIT_USAGE);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 1, &sub[0], seen),
                     VERB_EXIT_USAGE); /* a group without its command */
    fclose(stderr);
    stderr = saved;
    assert_int_equal(verb_calls, 8);
    assert_int_equal(verb_dispatch("prog", top, "help\n", NULL, 1, help, seen), 0);
    assert_int_equal(verb_calls, 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_levels),
        cmocka_unit_test(take_ptr_keeps_value),
        cmocka_unit_test(whole_numbers_are_strict),
        cmocka_unit_test(certificates_read_without_white_space),
        cmocka_unit_test(hex_round_trip_and_strictness),
        cmocka_unit_test(rfc3339_is_strict),
        cmocka_unit_test(license_codes),
        cmocka_unit_test(json_fields),
        cmocka_unit_test(verbs_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
