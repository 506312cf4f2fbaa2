# Tests for hwid/: pure logic of libhwidid (encodings, known answers, match
# table), and the collector on recorded machines built with umockdev (real
# libudev redirected by the umockdev preload; the test re-executes itself
# under it).
TESTS += test_hwid_id
test_hwid_id_SRCS := tests/unit/test_hwid_id.c
test_hwid_id_LIBS := hwidid
test_hwid_id_PKGS := cmocka openssl

TESTS += test_hwid
test_hwid_SRCS := tests/unit/test_hwid.c tests/unit/test_hwid_machines.c
test_hwid_LIBS := hwid hwidid common
test_hwid_PKGS := cmocka umockdev-1.0 libudev jansson openssl
