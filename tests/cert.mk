# Tests for cert/: the certificate library (unit, cmocka) and tpmlic-vendor
# (shell, with openssl's command line as an independent JWS verifier).
TESTS += test_cert
test_cert_SRCS := tests/unit/test_cert.c
test_cert_LIBS := cert hwidid common
test_cert_PKGS := cmocka openssl jansson

# Makes activation certificates for the shell test without a TPM; built by
# make, not installed (not in INSTALL_BIN).
TEST_PROGS += test-make-activation
test-make-activation_SRCS := tests/lib/make_activation.c
test-make-activation_LIBS := cert hwidid common
test-make-activation_PKGS := openssl jansson

TEST_SCRIPTS += tests/integration/vendor_cli.sh
