# Tests for agent/.
TESTS += test_agent_config
test_agent_config_SRCS := tests/unit/test_agent_config.c
test_agent_config_LIBS := agent common
test_agent_config_PKGS := cmocka

TESTS += test_agent_store
test_agent_store_SRCS := tests/integration/test_agent_store.c
test_agent_store_LIBS := agent testlib tpm common
test_agent_store_PKGS := cmocka

TESTS += test_agent_paths
test_agent_paths_SRCS := tests/integration/test_agent_paths.c
test_agent_paths_LIBS := agent common
test_agent_paths_PKGS := cmocka jansson

TESTS += test_agent_privs
test_agent_privs_SRCS := tests/unit/test_agent_privs.c
test_agent_privs_LIBS := agent common
test_agent_privs_PKGS := cmocka
TEST_SCRIPTS += tests/integration/install.sh

TESTS += test_agent_license
test_agent_license_SRCS := tests/unit/test_agent_license.c
test_agent_license_LIBS := agent cert common
test_agent_license_PKGS := cmocka
TEST_SCRIPTS += tests/integration/computer_id.sh
TEST_SCRIPTS += tests/integration/agent_offline.sh
TEST_SCRIPTS += tests/integration/agent_api.sh
TEST_SCRIPTS += tests/integration/agent_usage.sh

TESTS += test_agent_leases
test_agent_leases_SRCS := tests/unit/test_agent_leases.c
test_agent_leases_LIBS := agent
test_agent_leases_PKGS := cmocka

TESTS += test_agent_usage_faults
test_agent_usage_faults_SRCS := tests/unit/test_agent_usage_faults.c
test_agent_usage_faults_LIBS := agent agenthttp cert hwid hwidid tpm testlib common
test_agent_usage_faults_PKGS := cmocka jansson
test_agent_usage_faults_LDLIBS := -lpthread
test_agent_usage_faults_WRAPS := tpm_counter_increment

# tpmlicd with a movable clock (tests/lib/testclock.c) for the grace and
# back-off tests, and faults on request (tests/lib/testfaults.c): a separate
# binary, never installed.
TEST_PROGS += tpmlicd-testclock
tpmlicd-testclock_SRCS := agent/main.c tests/lib/testclock.c tests/lib/testfaults.c
tpmlicd-testclock_LIBS := agent agenthttp cert hwid hwidid tpm common
tpmlicd-testclock_LDLIBS := -lpthread
tpmlicd-testclock_WRAPS := agent_now agent_mono agent_clock_wait_cap_ms curl_global_init

TESTS += test_agent_grace
test_agent_grace_SRCS := tests/unit/test_agent_grace.c
test_agent_grace_LIBS := agent common
test_agent_grace_PKGS := cmocka
TEST_SCRIPTS += tests/integration/agent_online.sh
TEST_SCRIPTS += tests/integration/agent_core.sh
TEST_SCRIPTS += tests/integration/agent_store.sh
TEST_SCRIPTS += tests/integration/agent_trust.sh
TEST_SCRIPTS += tests/integration/agent_online_trust.sh
TEST_SCRIPTS += tests/integration/faultproxy.sh

TESTS += test_agent_routes
test_agent_routes_SRCS := tests/unit/test_agent_routes.c
test_agent_routes_LIBS := agent agenthttp cert hwid hwidid tpm common
test_agent_routes_PKGS := cmocka jansson
test_agent_routes_LDLIBS := -lpthread
