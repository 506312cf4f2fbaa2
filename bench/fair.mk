# Benchmark for the fair limits of the agent's socket (agent/http.c): a
# legitimate caller's /v1/check, root and another uid, while one uid holds
# or hammers hundreds of connections, against the same with no such caller.
BENCHES += bench_fair
bench_fair_SRCS := bench/bench_fair.c
bench_fair_LIBS := loadgen agenthttp common
bench_fair_PKGS := libcurl jansson libmicrohttpd libsystemd
bench_fair_LDLIBS := -lpthread
