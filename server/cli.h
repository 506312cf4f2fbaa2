/* tpmlic-server's command line: the commands (admin.c) and the helpers
 * they share with serve (main.c). Exit status: 0 success, 1 refused or
 * failed (one line on stderr), 2 usage error. */
#pragma once

#include <openssl/evp.h>

#include "common/verbs.h"

#define SRV_EXIT_REFUSED VERB_EXIT_FAILED
#define SRV_EXIT_USAGE   VERB_EXIT_USAGE

/* "tpmlic-server: message" on stderr; returns SRV_EXIT_REFUSED. */
int srv_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The vendor key; a warning when others can read the file. 0 or the exit
 * status after the message. */
int srv_load_private_key(const char *path, EVP_PKEY **ret);

/* The command groups, argv[0] naming one: license, offline, activation,
 * token, webhook, audit. */
int srv_cmd_group(int argc, char **argv, void *userdata);
int srv_cmd_routes(int argc, char **argv, void *userdata);
