# Integration tests for agent/http.c: a real server on a real UNIX socket,
# real clients (libcurl, raw sockets), real unprivileged peers (forked
# children that drop to another uid; needs root).
TESTS += test_http
test_http_SRCS := tests/integration/test_http.c
test_http_LIBS := agenthttp common
test_http_PKGS := cmocka libcurl jansson libmicrohttpd libsystemd
test_http_LDLIBS := -lpthread
