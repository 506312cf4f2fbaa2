# libFuzzer harnesses (make fuzz, clang): the two certificate decoders, and
# tpmlic-server's request readers (fuzz_server_requests: the first byte of a
# seed in tests/fuzz/corpus/server_requests picks the reader, see the
# harness).
# Seeds: tests/fuzz/corpus/{license,activation}. The license seeds are signed
# with the harness's fixed key (a public seed, see fuzz_cert_license.c),
# written as PEM by the PKCS#8 prefix for Ed25519 and signed with
# tpmlic-vendor; files starting with '{' are bare payloads (activation: bare
# JSON) that the harnesses sign (encode) themselves:
#   seed=$(python3 -c 'print(bytes((0x11*(i%15)+i)&255 for i in range(32)).hex())')
#   echo 302e020100300506032b657004220420$seed | xxd -r -p |
#       openssl pkey -inform DER -out fuzz-key.pem
#   test-make-activation >act; tpmlic-vendor sign-activation --key fuzz-key.pem --in act ...
FUZZERS += fuzz_cert_license fuzz_cert_activation
fuzz_cert_license_SRCS := tests/fuzz/fuzz_cert_license.c
fuzz_cert_license_LIBS := cert hwidid common
fuzz_cert_license_PKGS := openssl jansson
fuzz_cert_license_CORPUS := tests/fuzz/corpus/license

fuzz_cert_activation_SRCS := tests/fuzz/fuzz_cert_activation.c
fuzz_cert_activation_LIBS := cert hwidid common
fuzz_cert_activation_PKGS := openssl jansson
fuzz_cert_activation_CORPUS := tests/fuzz/corpus/activation

FUZZERS += fuzz_server_requests
fuzz_server_requests_SRCS := tests/fuzz/fuzz_server_requests.c
fuzz_server_requests_LIBS := srv cert hwidid common
fuzz_server_requests_PKGS := openssl jansson sqlite3 libpq
fuzz_server_requests_LDLIBS := -lpthread
fuzz_server_requests_CORPUS := tests/fuzz/corpus/server_requests
