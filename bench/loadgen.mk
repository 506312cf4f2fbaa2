# bench/lib: the load generator the benchmarks share.
LIBS_ALL += loadgen
loadgen_SRCS := bench/lib/loadgen.c
loadgen_PKGS := libcurl
loadgen_DEPS :=
