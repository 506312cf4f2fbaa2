/* Unit tests for tpmlicd's settings: config file, command line, precedence,
 * and the errors for bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/config.h"

static char conf_path[64];

static void write_conf(const char *text) {
    FILE *f;
    snprintf(conf_path, sizeof(conf_path), "/tmp/tpmlic-conf-test.%d", getpid());
    f = fopen(conf_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int parse(struct agent_config *cfg, struct agent_modes *m, char *err, size_t errlen,
                 int argc, char **argv) {
    return agent_config_parse(argc, argv, cfg, m, err, errlen);
}

static void file_then_command_line(void **state) {
    struct agent_config cfg;
    struct agent_modes m;
    char err[256] = "";
    write_conf("[agent]\n"
               "tcti = swtpm:path=/from/file\n"
               "socket = /run/file.sock\n"
               "allow_no_tpm = yes\n"
               "nv_base = 0x01800100\n"
               "threads = 2\n"
               "log_level = debug\n");
    char *argv[] = {"tpmlicd",   "--config", conf_path, "--tcti", "swtpm:path=/from/cli",
                    "--threads", "7",        NULL};
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 7, argv), 0);
    assert_string_equal(cfg.tcti, "swtpm:path=/from/cli"); /* command line wins */
    assert_string_equal(cfg.socket_path, "/run/file.sock");
    assert_true(cfg.allow_no_tpm);
    assert_int_equal(cfg.nv_base, 0x01800100);
    assert_int_equal(cfg.threads, 7);
    assert_int_equal(cfg.log_level, LOG_LVL_DEBUG);
    assert_string_equal(cfg.service_group, "tpmlic"); /* default kept */
    assert_false(m.print_computer_id);
    agent_config_free(&cfg);
    unlink(conf_path);
}

static void every_setting_has_an_option(void **state) {
    struct agent_config cfg;
    struct agent_modes m;
    char err[256] = "";
    char *argv[] = {"tpmlicd",
                    "--config",
                    "/dev/null",
                    "--tcti",
                    "a",
                    "--socket",
                    "b",
                    "--state-dir",
                    "c",
                    "--vendor-key",
                    "d",
                    "--server",
                    "https://e:1",
                    "--server-ca",
                    "f",
                    "--user",
                    "g",
                    "--service-group",
                    "h",
                    "--admin-group",
                    "i",
                    "--allow-no-tpm",
                    "--log-level",
                    "warn",
                    "--nv-base",
                    "0x01bffff0",
                    "--max-connections",
                    "9",
                    "--timeout",
                    "5",
                    "--threads",
                    "1",
                    "--print-computer-id",
                    "--explain",
                    "--json",
                    NULL};
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 35, argv), 0);
    assert_string_equal(cfg.state_dir, "c");
    assert_string_equal(cfg.vendor_key, "d");
    assert_string_equal(cfg.server, "https://e:1");
    assert_string_equal(cfg.server_ca, "f");
    assert_string_equal(cfg.user, "g");
    assert_string_equal(cfg.admin_group, "i");
    assert_int_equal(cfg.max_connections, 9);
    assert_int_equal(cfg.timeout_secs, 5);
    assert_true(m.print_computer_id && m.explain && m.json);
    agent_config_free(&cfg);
}

static void bad_input_is_named(void **state) {
    static const struct {
        const char *conf;
        const char *expect;
    } cases[] = {
        {"[agent]\nbogus = 1\n", ":2: unknown setting 'bogus'"},
        {"[server]\ntcti = x\n", ":2: unknown section [server]"},
        {"[agent]\nthreads = many\n", ":2: threads: invalid value 'many'"},
        {"[agent]\nallow_no_tpm = maybe\n", "expected true or false"},
        {"[agent]\nnv_base = 0x01c00002\n", "not an NV index in the owner range"},
        {"[agent]\nnv_base = 0x01bfffff\n", "not an NV index in the owner range"},
        {"[agent]\nlog_level = loud\n", "expected error, warn, info or debug"},
        {"[agent]\nthis line has no equals sign\n", ":2: "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct agent_config cfg;
        struct agent_modes m;
        char err[256] = "";
        char *argv[] = {"tpmlicd", "--config", conf_path, NULL};
        write_conf(cases[i].conf);
        assert_int_equal(parse(&cfg, &m, err, sizeof(err), 3, argv), -EINVAL);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].expect);
        agent_config_free(&cfg);
    }
    unlink(conf_path);
}

static void command_line_errors(void **state) {
    struct agent_config cfg;
    struct agent_modes m;
    char err[256];
    char *a1[] = {"tpmlicd", "--config", "/nonexistent/tpmlicd.conf", NULL};
    char *a2[] = {"tpmlicd", "--config", "/dev/null", "--no-such-option", NULL};
    char *a3[] = {"tpmlicd", "--config", "/dev/null", "--explain", NULL};
    char *a4[] = {"tpmlicd", "--config", "/dev/null", "--timeout", "0", NULL};
    char *a5[] = {"tpmlicd", "--config", "/dev/null", "--tcti", "", NULL};

    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 3, a1), -ENOENT);
    assert_non_null(strstr(err, "cannot read config file /nonexistent/tpmlicd.conf"));
    agent_config_free(&cfg);
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 4, a2), -EINVAL);
    assert_non_null(strstr(err, "--no-such-option"));
    agent_config_free(&cfg);
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 4, a3), -EINVAL);
    assert_non_null(strstr(err, "go with --print-computer-id"));
    agent_config_free(&cfg);
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 5, a4), -EINVAL);
    assert_non_null(strstr(err, "--timeout: invalid value '0'"));
    agent_config_free(&cfg);
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 5, a5), -EINVAL);
    assert_non_null(strstr(err, "explicit TCTI"));
    agent_config_free(&cfg);
}

/* The fair limits of the API socket: defaults, the file, the command line,
 * and a reserve that would leave ordinary callers nothing. */
static void fair_limits(void **state) {
    struct agent_config cfg;
    struct agent_modes m;
    char err[256] = "";
    char *a0[] = {"tpmlicd", "--config", "/dev/null", NULL};
    char *a1[] = {"tpmlicd", "--config", conf_path, "--header-timeout", "3", NULL};
    char *a2[] = {
        "tpmlicd", "--config", "/dev/null", "--max-connections", "16", "--reserved-connections",
        "16",      NULL};

    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 3, a0), 0);
    assert_int_equal(cfg.max_connections_per_uid, 32);
    assert_int_equal(cfg.reserved_connections, 0); /* the server's: 8, at most a quarter */
    assert_int_equal(cfg.header_timeout_secs, 10);
    agent_config_free(&cfg);

    write_conf("[agent]\n"
               "max_connections_per_uid = 4\n"
               "reserved_connections = 2\n"
               "header_timeout = 20\n");
    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 5, a1), 0);
    assert_int_equal(cfg.max_connections_per_uid, 4);
    assert_int_equal(cfg.reserved_connections, 2);
    assert_int_equal(cfg.header_timeout_secs, 3); /* command line wins */
    agent_config_free(&cfg);
    unlink(conf_path);

    assert_int_equal(parse(&cfg, &m, err, sizeof(err), 7, a2), -EINVAL);
    assert_string_equal(err, "reserved_connections (16) must be below max_connections (16): the "
                             "rest is for callers other than root and the admin group");
    agent_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_then_command_line),
        cmocka_unit_test(every_setting_has_an_option),
        cmocka_unit_test(bad_input_is_named),
        cmocka_unit_test(command_line_errors),
        cmocka_unit_test(fair_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
