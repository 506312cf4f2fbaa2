# Tests for hwid/: pure logic of libhwidid (encodings, known answers, match
# table), and the collector on recorded machines built with umockdev (real
# libudev redirected by the umockdev preload; the test re-executes itself
# under it).
TESTS += test_hwid_id
test_hwid_id_SRCS := tests/unit/test_hwid_id.c
test_hwid_id_LIBS := hwidid
test_hwid_id_PKGS := cmocka openssl
