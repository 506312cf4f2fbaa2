/* tpmlicd settings: one table serves the INI config file (libinih) and the
 * command line, so every setting exists in both (SPEC section 2); the
 * command line wins. docs/agent.md lists them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

#define AGENT_DEFAULT_CONFIG       "/etc/tpmlic/tpmlicd.conf"
#define AGENT_DEFAULT_TCTI         "device:/dev/tpmrm0"
#define AGENT_DEFAULT_SOCKET       "/run/tpmlic/tpmlicd.sock"
#define AGENT_DEFAULT_STATE_DIR    "/var/lib/tpmlic"
#define AGENT_DEFAULT_VENDOR_KEY   "/etc/tpmlic/vendor.pub"
#define AGENT_DEFAULT_EK_CA_DIR    "/etc/tpmlic/ek-ca.d"
#define AGENT_DEFAULT_LICENSE_FILE "/etc/tpmlic/license.json"

struct agent_config {
    char *config_file;
    char *tcti;
    char *socket_path;
    char *state_dir;
    char *vendor_key;
    char *server;
    char *server_ca;
    char *ek_ca_dir;
    char *owner_auth_file;
    char *license_file;
    char *user;
    char *service_group;
    char *admin_group;
    bool allow_no_tpm;
    enum log_level log_level;
    uint32_t nv_base;
    unsigned max_connections;
    unsigned timeout_secs;
    unsigned threads;
    unsigned tpm_watch_secs;
    unsigned server_timeout_secs;
    unsigned socket_mode;
};

/* Modes that exist on the command line only. */
struct agent_modes {
    bool print_computer_id;
    bool explain;
    bool json;
    bool tpm_info;
};

/* Parses argv (and the config file it names, or the default one if it
 * exists). Returns 0 to go on, 1 when --help/--version was answered, or a
 * negative errno with a one-line reason in errbuf (usage errors: -EINVAL). */
int agent_config_parse(int argc, char **argv, struct agent_config *ret_cfg,
                       struct agent_modes *ret_modes, char *errbuf, size_t errlen);
void agent_config_free(struct agent_config *cfg);
void agent_config_usage(FILE *f);
