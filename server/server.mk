# server/: tpmlic-server, the reference license server (HTTPS with
# libmicrohttpd + GnuTLS; SQLite or PostgreSQL). libsrv holds the database,
# the decisions, the administrative operations, the admin API's routes and
# body readers, the metrics and the limits, so the unit tests and the
# fuzzers run them without the network.
LIBS_ALL += srv
srv_SRCS := server/sql.c server/sql_sqlite.c server/sql_pg.c server/db.c server/logic.c \
            server/ops.c server/audit.c server/tokens.c server/webhook.c server/api.c \
            server/metrics.c server/limits.c
srv_PKGS := sqlite3 libpq openssl jansson
srv_DEPS := cert common

PROGS += tpmlic-server
INSTALL_BIN += tpmlic-server
tpmlic-server_SRCS := server/main.c server/config.c server/http.c server/background.c \
                      server/admin.c
tpmlic-server_LIBS := srv cert hwidid common
tpmlic-server_PKGS := libmicrohttpd sqlite3 libpq openssl jansson libcurl inih
tpmlic-server_LDLIBS := -lpthread
