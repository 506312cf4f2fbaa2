# Tests for client/: libtpmlic (a cmocka program linked against the shared
# library as a service would be, driven by a shell test that runs a real
# agent on swtpm), tpmlicctl (shell), the examples of docs/integration.md
# (shell: they run against a real agent).
TEST_PROGS += test-client
test-client_SRCS := tests/integration/test_client.c
test-client_SHLIBS := tpmlic
test-client_PKGS := cmocka
test-client_LDLIBS := -lpthread

TEST_SCRIPTS += tests/integration/client_lib.sh
TEST_SCRIPTS += tests/integration/ctl.sh
TEST_SCRIPTS += tests/integration/docs_examples.sh

# The client's answer parser on its own (HTTP over a socketpair, JSON
# decoders), compiled from the library's sources.
TESTS += test_client_parse
test_client_parse_SRCS := tests/unit/test_client_parse.c tests/lib/client_feed.c client/conn.c \
                          client/answer.c
test_client_parse_LIBS := common
test_client_parse_PKGS := cmocka jansson
test_client_parse_LDLIBS := -lpthread
