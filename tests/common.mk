# Unit tests for common/.
TESTS += test_common
test_common_SRCS := tests/unit/test_common.c
test_common_LIBS := common
test_common_PKGS := cmocka jansson openssl
