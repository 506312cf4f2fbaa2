# Benchmark for libtpmlic: tpmlic_check() from 1 and 8 threads against raw
# HTTP over a kept-alive UNIX socket and libcurl, on a real tpmlicd.
BENCHES += bench_client
bench_client_SRCS := bench/bench_client.c
bench_client_LIBS := benchagent loadgen cert hwidid testlib common
bench_client_SHLIBS := tpmlic
bench_client_PKGS := libcurl jansson openssl
bench_client_LDLIBS := -lpthread
