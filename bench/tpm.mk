# Benchmarks for tpm/.
BENCHES += bench_tpm_boot
bench_tpm_boot_SRCS := bench/bench_tpm_boot.c
bench_tpm_boot_LIBS := loadgen tpm testlib common
bench_tpm_boot_PKGS :=
