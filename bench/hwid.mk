# Benchmark for hwid/: collection + computer ID without the TPM, on this
# machine and on the recorded machines of the tests.
BENCHES += bench_hwid
bench_hwid_SRCS := bench/bench_hwid.c tests/unit/test_hwid_machines.c
bench_hwid_LIBS := loadgen hwid hwidid common
bench_hwid_PKGS := umockdev-1.0 libudev jansson openssl
