# Tests for server/: the decisions on a real SQLite database (unit, cmocka,
# no network) and tpmlic-server's command line and HTTPS endpoints (shell,
# curl over TLS on loopback).
TESTS += test_server_logic
test_server_logic_SRCS := tests/unit/test_server_logic.c
test_server_logic_LIBS := srv cert hwidid common
test_server_logic_PKGS := cmocka sqlite3 libpq jansson openssl
test_server_logic_LDLIBS := -lpthread

TESTS += test_server_limits
test_server_limits_SRCS := tests/unit/test_server_limits.c
test_server_limits_LIBS := srv cert hwidid common
test_server_limits_PKGS := cmocka sqlite3 libpq jansson openssl
test_server_limits_LDLIBS := -lpthread

TEST_SCRIPTS += tests/integration/server_cli.sh tests/integration/server_api.sh \
                tests/integration/server_pg.sh
