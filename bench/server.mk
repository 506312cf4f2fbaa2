# Benchmark for tpmlic-server: activations and validations per second with
# 1 and 64 keep-alive TLS clients against `serve` on loopback, on SQLite, on
# PostgreSQL with one instance and with two (a throwaway cluster from
# tests/lib/pgtest), next to a 404 baseline measured in the same run; and
# validations while one address holds 1,000 idle connections.
BENCHES += bench_server
bench_server_SRCS := bench/bench_server.c
bench_server_LIBS := loadgen srv cert hwidid common
bench_server_PKGS := libcurl jansson openssl sqlite3 libpq
bench_server_LDLIBS := -lpthread
