/* The settings of `tpmlic-server serve`: one table of options that gives
 * the command line (getopt_long), the config file (--config FILE, INI read
 * with libinih: a [server] section, keys = the long options with '_' for
 * '-') and the --help text. The command line wins over the file; an
 * unknown key or a bad value stops with the file and line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

struct srv_serve_config {
    char *config; /* the file read, NULL when none */
    char *db, *key, *listen, *tls_cert, *tls_key, *port_file, *admin_listen, *admin_port_file,
        *webhook_ca, *trusted_proxy, *ek_ca_dir;
    uint64_t threads, max_connections, max_connections_per_ip, timeout, activation_rate,
        activation_burst, webhook_timeout, webhook_retry_secs, webhook_attempts, cull_interval,
        validity_window;
    enum log_level log_level;
};

/* Parses serve's argv (argv[0] = "serve") and the config file it names.
 * true: serve. false: done, with *exit_code (--help, --version: 0; a bad
 * option or setting: 2; a file that cannot be read: 1) and the message
 * printed. */
bool srv_serve_config_parse(int argc, char **argv, struct srv_serve_config *cfg, int *exit_code);
void srv_serve_config_free(struct srv_serve_config *cfg);
