# Benchmark for tpmlicd: start to ready, /v1/check against the raw round
# trip, resident memory.
BENCHES += bench_agent
bench_agent_SRCS := bench/bench_agent.c
bench_agent_LIBS := benchagent loadgen agenthttp cert hwidid testlib common
bench_agent_PKGS := libcurl jansson openssl
bench_agent_LDLIBS := -lpthread

# What ending a certificate costs (removal, refusal, supersession): a
# script over tpmlicd, tpmlic-vendor and tpmlic-server.
BENCH_SCRIPTS += bench/bench_ceiling
