# Benchmark for agent/http.c: keep-alive JSON POSTs through the server
# against the raw AF_UNIX round trip, with 1, 8 and 64 clients.
BENCHES += bench_http
bench_http_SRCS := bench/bench_http.c
bench_http_LIBS := loadgen agenthttp common
bench_http_PKGS := libcurl jansson libmicrohttpd libsystemd
bench_http_LDLIBS := -lpthread

