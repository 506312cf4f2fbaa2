# bench/lib: the load generator the benchmarks share.
LIBS_ALL += loadgen
loadgen_SRCS := bench/lib/loadgen.c
loadgen_PKGS := libcurl
loadgen_DEPS :=

# bench/lib: starting and licensing a real tpmlicd.
LIBS_ALL += benchagent
benchagent_SRCS := bench/lib/benchagent.c
benchagent_PKGS := openssl
benchagent_DEPS := cert
