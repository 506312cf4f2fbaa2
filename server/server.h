/* server/: tpmlic-server, the reference license server (docs/server.md).
 * The protocol it speaks is docs/online.md; its admin API is
 * docs/openapi.yaml.
 *
 *   sql.c, sql_sqlite.c, sql_pg.c   one SQL interface, two backends
 *   db.c        open, migrations, the rows of licenses and activations
 *   logic.c     the decisions: what to answer an appliance
 *   ops.c       the administrative operations (CLI and API share them)
 *   audit.c, tokens.c, webhook.c    the audit log, API tokens, webhooks
 *   api.c       the admin REST API: routes, request bodies, answers
 *   metrics.c   /metrics and its counters
 *   limits.c    per-address connection counts, rate limits, X-Forwarded-For
 *   http.c      libmicrohttpd with TLS: the only file that talks to MHD
 *   deliver.c   the webhook sender (libcurl), a thread of serve
 *   config.c    serve's options: command line and config file
 *   admin.c     the admin commands (license, offline, activation, ...)
 *   main.c      the command table, serve
 *
 * Return convention: 0 (or a count) on success, a negative errno on
 * failure. Licensing outcomes travel in the answers, not in errnos. Only
 * main.c, admin.c, http.c and deliver.c log. */
#pragma once

#include "server/audit.h"
#include "server/db.h"
#include "server/logic.h"
#include "server/ops.h"
#include "server/sql.h"
#include "server/tokens.h"
#include "server/webhook.h"

#define SRV_PROG               "tpmlic-server"
#define SRV_BODY_MAX           (16 * 1024) /* docs/online.md: requests of at most 16 KiB */
#define SRV_DEFAULT_CACHE_SECS 3600
#define SRV_DEFAULT_TICK_SECS  60
