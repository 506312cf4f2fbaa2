/* tpmlicd settings from the config file and the command line (config.h). */
#include "agent/config.h"

#include <getopt.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nvlayout.h"
#include "common/macro.h"
#include "tpm/tpm.h"

enum opt_type { T_STR, T_BOOL, T_UINT, T_NV_BASE, T_LEVEL, T_MODE };

struct option_def {
    const char *name; /* config key; the command-line option is --name with '_' as '-' */
    enum opt_type type;
    size_t offset;
    const char *arg;
    const char *help;
};

#define O(field) offsetof(struct agent_config, field)

static const struct option_def defs[] = {
    {"tcti", T_STR, O(tcti), "STRING", "TPM to use (default " AGENT_DEFAULT_TCTI ")"},
    {"socket", T_STR, O(socket_path), "PATH", "API socket (default " AGENT_DEFAULT_SOCKET ")"},
    {"socket_mode", T_MODE, O(socket_mode), "MODE",
     "API socket permissions, octal (default 0660: root and the service group)"},
    {"state_dir", T_STR, O(state_dir), "DIR",
     "state directory (default " AGENT_DEFAULT_STATE_DIR ")"},
    {"vendor_key", T_STR, O(vendor_key), "FILE",
     "vendor public key, PEM (default " AGENT_DEFAULT_VENDOR_KEY ")"},
    {"server", T_STR, O(server), "URL", "license server, https://HOST:PORT (default none)"},
    {"server_ca", T_STR, O(server_ca), "FILE", "CA certificate the license server must chain to"},
    {"ek_ca_dir", T_STR, O(ek_ca_dir), "DIR",
     "CA certificates the TPM's EK certificate may chain to (default " AGENT_DEFAULT_EK_CA_DIR ")"},
    {"owner_auth_file", T_STR, O(owner_auth_file), "FILE",
     "the TPM owner's authorization, when the image set one (root-only file)"},
    {"license_file", T_STR, O(license_file), "FILE",
     "the license to activate online while the TPM holds none (zero-touch; "
     "default " AGENT_DEFAULT_LICENSE_FILE ", if present)"},
    {"server_timeout", T_UINT, O(server_timeout_secs), "SECONDS",
     "longest exchange with the license server, connecting included (default 30)"},
    {"user", T_STR, O(user), "USER", "drop privileges to this user after start-up"},
    {"service_group", T_STR, O(service_group), "GROUP",
     "group allowed the service endpoints (default tpmlic)"},
    {"admin_group", T_STR, O(admin_group), "GROUP",
     "group allowed the management endpoints (default tpmlic-admin)"},
    {"allow_no_tpm", T_BOOL, O(allow_no_tpm), NULL,
     "start without a TPM (development only; the computer ID says tpm: false)"},
    {"log_level", T_LEVEL, O(log_level), "LEVEL", "error, warn, info or debug (default info)"},
    {"nv_base", T_NV_BASE, O(nv_base), "INDEX",
     "first of the agent's 4 NV indices, TCG owner range (default 0x01a0c000)"},
    {"max_connections", T_UINT, O(max_connections), "N", "API connections at once (default 256)"},
    {"timeout", T_UINT, O(timeout_secs), "SECONDS", "idle API connection timeout (default 30)"},
    {"max_connections_per_uid", T_UINT, O(max_connections_per_uid), "N",
     "API connections one uid may hold at once; root: no limit (default 32)"},
    {"reserved_connections", T_UINT, O(reserved_connections), "N",
     "of max-connections, those kept for root and the admin group (default 8, at most a "
     "quarter)"},
    {"header_timeout", T_UINT, O(header_timeout_secs), "SECONDS",
     "an API request's headers, then its body, must arrive within this (default 10)"},
    {"threads", T_UINT, O(threads), "N", "API worker threads (default 4)"},
    {"tpm_watch", T_UINT, O(tpm_watch_secs), "SECONDS",
     "how often the TPM's health is checked (default 10)"},
};

static void set_defaults(struct agent_config *c) {
    memset(c, 0, sizeof(*c));
    c->tcti = strdup(AGENT_DEFAULT_TCTI);
    c->socket_path = strdup(AGENT_DEFAULT_SOCKET);
    c->state_dir = strdup(AGENT_DEFAULT_STATE_DIR);
    c->vendor_key = strdup(AGENT_DEFAULT_VENDOR_KEY);
    c->ek_ca_dir = strdup(AGENT_DEFAULT_EK_CA_DIR);
    c->license_file = strdup(AGENT_DEFAULT_LICENSE_FILE);
    c->service_group = strdup("tpmlic");
    c->admin_group = strdup("tpmlic-admin");
    c->log_level = LOG_LVL_INFO;
    c->nv_base = AGENT_NV_BASE_DEFAULT;
    c->max_connections = 256;
    c->timeout_secs = 30;
    c->max_connections_per_uid = 32;
    c->reserved_connections = 0; /* a quarter of max_connections, at most 8 (http.c) */
    c->header_timeout_secs = 10;
    c->threads = 4;
    c->tpm_watch_secs = 10;
    c->server_timeout_secs = 30;
    c->socket_mode = 0660;
}

void agent_config_free(struct agent_config *c) {
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++)
        if (defs[i].type == T_STR) {
            char **p = (char **)((char *)c + defs[i].offset);
            free(*p);
            *p = NULL;
        }
    free(c->config_file);
    c->config_file = NULL;
}

static int set_value(struct agent_config *c, const struct option_def *d, const char *value,
                     char *err, size_t errlen) {
    void *field = (char *)c + d->offset;
    char *end;
    unsigned long v;

    switch (d->type) {
    case T_STR: {
        char *s = strdup(value);
        if (!s)
            return -ENOMEM;
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1"))
            *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0"))
            *(bool *)field = false;
        else
            break;
        return 0;
    case T_UINT:
        errno = 0;
        v = strtoul(value, &end, 10);
        if (errno || *end || end == value || value[0] == '-' || v == 0 || v > 100000)
            break;
        *(unsigned *)field = (unsigned)v;
        return 0;
    case T_NV_BASE:
        errno = 0;
        v = strtoul(value, &end, 0);
        if (errno || *end || end == value || v > UINT32_MAX ||
            !tpm_nv_index_is_owner((uint32_t)v) ||
            !tpm_nv_index_is_owner((uint32_t)v + AGENT_NV_SLOTS - 1)) {
            snprintf(err, errlen,
                     "%s: '%s' is not an NV index in the owner range 0x01800000-0x01bfffff",
                     d->name, value);
            return -EINVAL;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    case T_LEVEL:
        if (log_parse_level(value, (enum log_level *)field) == 0)
            return 0;
        break;
    case T_MODE:
        errno = 0;
        v = strtoul(value, &end, 8);
        if (errno || *end || end == value || v > 0777 || (v & 0600) != 0600)
            break;
        *(unsigned *)field = (unsigned)v;
        return 0;
    }
    snprintf(err, errlen, "%s: invalid value '%s'%s", d->name, value,
             d->type == T_BOOL    ? " (expected true or false)"
             : d->type == T_UINT  ? " (expected a whole number from 1 to 100000)"
             : d->type == T_LEVEL ? " (expected error, warn, info or debug)"
             : d->type == T_MODE  ? " (expected octal permissions with owner read and write)"
                                  : "");
    return -EINVAL;
}

static const struct option_def *find_def(const char *name) {
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++)
        if (!strcmp(defs[i].name, name))
            return &defs[i];
    return NULL;
}

struct ini_state {
    struct agent_config *cfg;
    char *err;
    size_t errlen;
    int r;
    bool cli_set[ARRAY_SIZE(defs)];
};

/* inih (as packaged) does not pass the line number; ini_parse_file() returns
 * the line of the first line the handler refused, and the message gets its
 * "FILE:LINE: " prefix there. */
static int ini_line(void *user, const char *section, const char *name, const char *value) {
    struct ini_state *st = user;
    const struct option_def *d;
    char e[256];

    if (st->r < 0)
        return 0;
    if (section[0] && strcmp(section, "agent") != 0) {
        snprintf(st->err, st->errlen, "unknown section [%s] (settings go in [agent])", section);
        st->r = -EINVAL;
        return 0;
    }
    d = find_def(name);
    if (!d) {
        snprintf(st->err, st->errlen, "unknown setting '%s'", name);
        st->r = -EINVAL;
        return 0;
    }
    if (st->cli_set[d - defs])
        return 1; /* the command line wins */
    st->r = set_value(st->cfg, d, value, e, sizeof(e));
    if (st->r < 0)
        snprintf(st->err, st->errlen, "%s", e);
    return st->r < 0 ? 0 : 1;
}

void agent_config_usage(FILE *f) {
    fprintf(f, "Usage: tpmlicd [OPTIONS]\n"
               "       tpmlicd --print-computer-id [--explain] [--json] [--tcti STRING]\n"
               "       tpmlicd --tpm-info [--tcti STRING] [--nv-base INDEX]\n"
               "\n"
               "The tpmlic licensing agent. Runs in the foreground and serves the licensing API\n"
               "on a UNIX socket. Every setting can also be given in the config file, in an\n"
               "[agent] section, with '_' for '-'; the command line wins.\n"
               "\n"
               "  --config FILE            config file (default " AGENT_DEFAULT_CONFIG
               ", if present)\n");
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--%s%s%s", defs[i].name, defs[i].arg ? " " : "",
                 defs[i].arg ? defs[i].arg : "");
        for (char *p = opt + 2; *p && *p != ' '; p++)
            if (*p == '_')
                *p = '-';
        fprintf(f, "  %-24s %s\n", opt, defs[i].help);
    }
    fprintf(f, "\n"
               "  --print-computer-id      print this machine's computer ID and exit\n"
               "  --explain                with --print-computer-id: every component and why\n"
               "  --json                   with --print-computer-id: JSON output\n"
               "  --tpm-info               print the TPM, its endorsement key and the agent's\n"
               "                           NV indices, then exit\n"
               "  -h, --help               this text\n"
               "  --version                print the version\n");
}

int agent_config_parse(int argc, char **argv, struct agent_config *cfg, struct agent_modes *modes,
                       char *err, size_t errlen) {
    enum { OPT_CONFIG = 1000, OPT_PRINT_ID, OPT_EXPLAIN, OPT_JSON, OPT_TPM_INFO, OPT_VERSION };
    struct option longopts[ARRAY_SIZE(defs) + 8];
    char names[ARRAY_SIZE(defs)][32];
    _cleanup_free_ char **cli_values = calloc(ARRAY_SIZE(defs), sizeof(char *));
    struct ini_state st = {.cfg = cfg, .err = err, .errlen = errlen};
    const char *config_file = NULL;
    size_t n = 0;
    int c, r;

    /* first: the caller frees *cfg whatever this returns */
    set_defaults(cfg);
    memset(modes, 0, sizeof(*modes));
    if (!cli_values)
        return -ENOMEM;
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
        snprintf(names[i], sizeof(names[i]), "%s", defs[i].name);
        for (char *p = names[i]; *p; p++)
            if (*p == '_')
                *p = '-';
        longopts[n++] = (struct option){names[i], defs[i].arg ? required_argument : no_argument,
                                        NULL, (int)i + 1};
    }
    longopts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longopts[n++] = (struct option){"print-computer-id", no_argument, NULL, OPT_PRINT_ID};
    longopts[n++] = (struct option){"explain", no_argument, NULL, OPT_EXPLAIN};
    longopts[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
    longopts[n++] = (struct option){"tpm-info", no_argument, NULL, OPT_TPM_INFO};
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    longopts[n] = (struct option){0};

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c >= 1 && c <= (int)ARRAY_SIZE(defs)) {
            cli_values[c - 1] = optarg ? optarg : "true";
            st.cli_set[c - 1] = true;
            continue;
        }
        switch (c) {
        case OPT_CONFIG:
            config_file = optarg;
            break;
        case OPT_PRINT_ID:
            modes->print_computer_id = true;
            break;
        case OPT_EXPLAIN:
            modes->explain = true;
            break;
        case OPT_JSON:
            modes->json = true;
            break;
        case OPT_TPM_INFO:
            modes->tpm_info = true;
            break;
        case 'h':
            agent_config_usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("tpmlicd %s\n", TPMLIC_VERSION);
            return 1;
        default:
            if (optopt)
                snprintf(err, errlen, "option '%s' needs a value or is unknown (see --help)",
                         argv[optind - 1]);
            else
                snprintf(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return -EINVAL;
    }
    if ((modes->explain || modes->json) && !modes->print_computer_id) {
        snprintf(err, errlen, "--explain and --json go with --print-computer-id");
        return -EINVAL;
    }

    /* The config file: an explicit one must exist; the default one may not. */
    cfg->config_file = strdup(config_file ? config_file : AGENT_DEFAULT_CONFIG);
    if (!cfg->config_file)
        return -ENOMEM;
    {
        FILE *f = fopen(cfg->config_file, "re");
        if (!f) {
            if (config_file || errno != ENOENT) {
                r = -errno;
                snprintf(err, errlen, "cannot read config file %s: %s", cfg->config_file,
                         strerror(errno));
                return r;
            }
        } else {
            r = ini_parse_file(f, ini_line, &st);
            fclose(f);
            if (st.r < 0) {
                char e[256];
                snprintf(e, sizeof(e), "%s", err);
                snprintf(err, errlen, "%s:%d: %s", cfg->config_file, r, e);
                return st.r;
            }
            if (r != 0) {
                snprintf(err, errlen, "%s:%d: not a valid setting line (expected name = value)",
                         cfg->config_file, r);
                return -EINVAL;
            }
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
        char e[256];
        if (!cli_values[i])
            continue;
        r = set_value(cfg, &defs[i], cli_values[i], e, sizeof(e));
        if (r < 0) {
            snprintf(err, errlen, "--%s", e);
            for (char *p = err + 2; *p && *p != ':'; p++)
                if (*p == '_')
                    *p = '-';
            return r;
        }
    }
    if (cfg->reserved_connections && cfg->reserved_connections >= cfg->max_connections) {
        snprintf(err, errlen,
                 "reserved_connections (%u) must be below max_connections (%u): the rest is for "
                 "callers other than root and the admin group",
                 cfg->reserved_connections, cfg->max_connections);
        return -EINVAL;
    }
    if (!cfg->tcti[0]) {
        snprintf(err, errlen, "tcti: an explicit TCTI string is required");
        return -EINVAL;
    }
    return 0;
}
