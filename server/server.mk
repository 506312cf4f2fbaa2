# server/: tpmlic-server, the reference license server (HTTPS with
# libmicrohttpd + GnuTLS, SQLite). libsrv holds the database and the
# decisions, so the unit tests run them without the network.
LIBS_ALL += srv
srv_SRCS := server/db.c server/logic.c
srv_PKGS := sqlite3 openssl jansson
srv_DEPS := cert common

PROGS += tpmlic-server
INSTALL_BIN += tpmlic-server
tpmlic-server_SRCS := server/main.c server/http.c server/admin.c
tpmlic-server_LIBS := srv cert hwidid common
tpmlic-server_PKGS := libmicrohttpd sqlite3 openssl jansson
tpmlic-server_LDLIBS := -lpthread
