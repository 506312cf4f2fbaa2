# Benchmark for cert/: license verification against raw OpenSSL Ed25519
# verification in the same run, and activation certificate decoding.
BENCHES += bench_cert
bench_cert_SRCS := bench/bench_cert.c
bench_cert_LIBS := cert hwidid common
bench_cert_PKGS := openssl jansson
