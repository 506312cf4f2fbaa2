/* serve's settings (config.h): the option table, the command line, the
 * config file and the help text, all from the one table. */
#include "server/config.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/macro.h"
#include "common/verbs.h"

#define PATH "tpmlic-server serve"

enum opt_type { T_STRING, T_LIST, T_UINT, T_LEVEL };

static const struct serve_opt {
    const char *name; /* the long option; the file's key has '_' for '-' */
    const char *arg;
    enum opt_type type;
    size_t off;
    uint64_t min, max, def;
    const char *rule; /* T_UINT: what the value must be */
    const char *help;
} opts[] = {
#define S(name, arg, field, help)                                                                  \
    { name, arg, T_STRING, offsetof(struct srv_serve_config, field), 0, 0, 0, NULL, help }
#define U(name, arg, field, min, max, def, rule, help)                                             \
    { name, arg, T_UINT, offsetof(struct srv_serve_config, field), min, max, def, rule, help }
    S("db", "FILE|URL", db,
      "the SQLite database file (created when missing),\n"
      "or a PostgreSQL URI\n"
      "postgresql://[USER@]HOST/DBNAME?... (the database\n"
      "must exist)"),
    S("key", "FILE", key, "the vendor's Ed25519 private key (PEM)"),
    S("listen", "HOST:PORT", listen,
      "address for appliances, e.g. 0.0.0.0:8443 or\n"
      "[::]:8443; port 0 picks a free port (see\n"
      "--port-file)"),
    S("tls-cert", "FILE", tls_cert, "the server's certificate (PEM, chain after it)"),
    S("tls-key", "FILE", tls_key, "its private key (PEM, not encrypted)"),
    S("port-file", "FILE", port_file,
      "write the port listened on into FILE once\n"
      "listening"),
    S("admin-listen", "HOST:PORT", admin_listen,
      "serve the admin API, /metrics and /health on this\n"
      "listener of their own (TLS with the same\n"
      "certificate); they are then not on --listen"),
    S("admin-port-file", "FILE", admin_port_file, "write the admin listener's port into FILE"),
    U("threads", "N", threads, 1, 256, 8, "must be 1 to 256",
      "request threads, and as many database connections\n"
      "(default 8)"),
    U("max-connections", "N", max_connections, 1, 100000, 1024, "must be 1 to 100000",
      "open connections at most, from all addresses\n"
      "(default 1024)"),
    U("max-connections-per-ip", "N", max_connections_per_ip, 0, 100000, 64, "must be 0 to 100000",
      "open connections at most from one address (default\n"
      "64; 0: no limit per address). Behind a reverse\n"
      "proxy every connection comes from the proxy"),
    U("timeout", "SECS", timeout, 1, 86400, 30, "must be 1 to 86400 seconds",
      "close a connection idle for SECS, a TLS handshake\n"
      "included (default 30)"),
    U("activation-rate", "N", activation_rate, 0, 1000000, 60, "must be 0 to 1000000",
      "activations a minute from one client address\n"
      "(default 60; 0: no limit); more get 429 with\n"
      "Retry-After"),
    U("activation-burst", "N", activation_burst, 1, 1000000, 30, "must be 1 to 1000000",
      "activations one address may make at once before\n"
      "the rate applies (default 30)"),
    {"trusted-proxy", "CIDR", T_LIST, offsetof(struct srv_serve_config, trusted_proxy), 0, 0, 0,
     NULL,
     "a reverse proxy whose X-Forwarded-For names the\n"
     "client (an address or a network, comma-separated\n"
     "or repeated); other callers' X-Forwarded-For is\n"
     "ignored"},
    U("validity-window", "SECS", validity_window, 3600, 90 * 86400, 8 * 86400,
      "must be 3600 to 7776000 seconds",
      "how long an online certificate holds after the\n"
      "answer that signed it, on the appliance's TPM\n"
      "clock and on its time floor (default 691200: 8\n"
      "days, a day between validations and a 7-day grace\n"
      "period; less shortens the grace period)"),
    S("ek-ca-dir", "DIR", ek_ca_dir,
      "the EK trust store: CA certificates (PEM or DER)\n"
      "that EK certificates of licenses with tpm_trust\n"
      "certified or CA key ids must chain to; without\n"
      "it such licenses are not activated"),
    S("webhook-ca", "FILE", webhook_ca,
      "CA certificates for webhook endpoints (default:\n"
      "the system's store)"),
    U("webhook-timeout", "SECS", webhook_timeout, 1, 300, 10, "must be 1 to 300 seconds",
      "time allowed for one webhook delivery (default 10)"),
    U("webhook-retry-secs", "SECS", webhook_retry_secs, 1, 3600, 30, "must be 1 to 3600 seconds",
      "a failed delivery is retried after SECS, then\n"
      "twice as long each time, at most an hour (default\n"
      "30)"),
    U("webhook-attempts", "N", webhook_attempts, 1, 100, 10, "must be 1 to 100",
      "attempts before a delivery is given up as failed\n"
      "(default 10)"),
    U("cull-interval", "SECS", cull_interval, 0, 604800, 3600, "must be 0 to 604800 seconds",
      "apply the licenses' cull policies every SECS\n"
      "(default 3600; 0: never)"),
    {"log-level", "LEVEL", T_LEVEL, offsetof(struct srv_serve_config, log_level), 0, 0, 0,
     "must be error, warn, info or debug",
     "error, warn, info (default: one line per request),\n"
     "debug"},
#undef S
#undef U
};

#define NOPTS ARRAY_SIZE(opts)

static void usage(void) {
    printf("Usage: " PATH " --db FILE|URL --key FILE --listen HOST:PORT\n"
           "        --tls-cert FILE --tls-key FILE [--config FILE] [OPTIONS]\n"
           "\n"
           "Runs the license server: HTTPS (TLS 1.2 or 1.3) on HOST:PORT with the appliance\n"
           "endpoints POST /v1/activate, /v1/validate and /v1/deactivate (docs/online.md),\n"
           "every answer signed with the vendor key; the admin REST API under /admin/v1\n"
           "(bearer tokens, docs/openapi.yaml), GET /metrics and GET /health. Runs in the\n"
           "foreground; SIGTERM or SIGINT finishes the requests under way and exits 0.\n"
           "\n"
           "  --config FILE              read settings from FILE: a [server] section with\n"
           "                             the options below as keys, '_' for '-'\n"
           "                             (max_connections_per_ip = 32); the command line\n"
           "                             wins\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char head[64];
        const char *h = opts[i].help;
        snprintf(head, sizeof(head), "--%s %s", opts[i].name, opts[i].arg);
        printf("  %-27s", head);
        if (strlen(head) > 26)
            printf("\n  %-27s", "");
        while (*h) {
            size_t n = strcspn(h, "\n");
            printf("%.*s\n", (int)n, h);
            h += n;
            if (*h == '\n') {
                h++;
                printf("  %-27s", "");
            }
        }
    }
    printf("  --help                     this text\n"
           "  --version                  print the version\n");
}

/* Sets one option from its text. 0, or -EINVAL with rule. */
static int set(struct srv_serve_config *cfg, const struct serve_opt *o, const char *value) {
    char *p = (char *)cfg + o->off;

    switch (o->type) {
    case T_STRING: {
        char **s = (char **)p, *v = strdup(value);
        if (!v)
            return -ENOMEM;
        free(*s);
        *s = v;
        return 0;
    }
    case T_LIST: {
        char **s = (char **)p, *v = NULL;
        if (asprintf(&v, "%s%s%s", *s ? *s : "", *s ? "," : "", value) < 0)
            return -ENOMEM;
        free(*s);
        *s = v;
        return 0;
    }
    case T_UINT: {
        uint64_t v = 0;
        if (!*value || strspn(value, "0123456789") != strlen(value) || strlen(value) > 12)
            return -EINVAL;
        v = strtoull(value, NULL, 10);
        if (v < o->min || v > o->max)
            return -EINVAL;
        *(uint64_t *)p = v;
        return 0;
    }
    case T_LEVEL:
        return log_parse_level(value, (enum log_level *)p);
    }
    return -EINVAL;
}

static const char *rule_of(const struct serve_opt *o) {
    return o->type == T_LEVEL ? o->rule : o->rule ? o->rule : "has a bad value";
}

struct file_state {
    struct srv_serve_config *cfg;
    const bool *from_cli;
    char err[256];
    bool failed;
};

/* inih calls this for every "key = value"; a non-zero return means the
 * line is fine, and ini_parse_file() returns the line of the first refused
 * one (inih as packaged does not pass the line number). */
static int file_line(void *user, const char *section, const char *name, const char *value) {
    struct file_state *st = user;
    char opt[64];

    if (st->failed)
        return 0;
    if (strcmp(section, "server") != 0) {
        snprintf(st->err, sizeof(st->err), "%s%s%s (settings go in a [server] section)",
                 section[0] ? "unknown section [" : "a setting outside any section", section,
                 section[0] ? "]" : "");
        st->failed = true;
        return 0;
    }
    snprintf(opt, sizeof(opt), "%s", name);
    for (char *c = opt; *c; c++)
        if (*c == '_')
            *c = '-';
        else if (*c == '-')
            *c = '#'; /* keys have '_', never '-' */
    for (size_t i = 0; i < NOPTS; i++) {
        int r;
        if (strcmp(opts[i].name, opt) != 0)
            continue;
        if (st->from_cli[i])
            return 1; /* the command line wins */
        r = set(st->cfg, &opts[i], value);
        if (r == -ENOMEM) {
            snprintf(st->err, sizeof(st->err), "out of memory");
            st->failed = true;
            return 0;
        }
        if (r < 0) {
            snprintf(st->err, sizeof(st->err), "%s %s (it is '%.60s')", name, rule_of(&opts[i]),
                     value);
            st->failed = true;
            return 0;
        }
        return 1;
    }
    snprintf(st->err, sizeof(st->err), "unknown setting '%.60s'", name);
    st->failed = true;
    return 0;
}

static int read_file(struct srv_serve_config *cfg, const bool *from_cli) {
    struct file_state st = {.cfg = cfg, .from_cli = from_cli};
    FILE *f = fopen(cfg->config, "re");
    int line;

    if (!f) {
        fprintf(stderr, "tpmlic-server: cannot read the config file %s: %s\n", cfg->config,
                strerror(errno));
        return VERB_EXIT_FAILED;
    }
    line = ini_parse_file(f, file_line, &st);
    fclose(f);
    if (st.failed) {
        fprintf(stderr, "tpmlic-server: %s:%d: %s\n", cfg->config, line, st.err);
        return VERB_EXIT_USAGE;
    }
    if (line != 0) {
        fprintf(stderr, "tpmlic-server: %s:%d: not a setting (expected key = value)\n", cfg->config,
                line);
        return VERB_EXIT_USAGE;
    }
    return 0;
}

bool srv_serve_config_parse(int argc, char **argv, struct srv_serve_config *cfg, int *exit_code) {
    enum { O_CONFIG = 0x1000, O_HELP, O_VERSION };
    struct option longopts[NOPTS + 4];
    bool from_cli[NOPTS] = {0};
    int c, state = 0, code = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = LOG_LVL_INFO;
    for (size_t i = 0; i < NOPTS; i++) {
        longopts[i] = (struct option){opts[i].name, required_argument, NULL, (int)i + 1};
        if (opts[i].type == T_UINT)
            *(uint64_t *)((char *)cfg + opts[i].off) = opts[i].def;
    }
    longopts[NOPTS] = (struct option){"config", required_argument, NULL, O_CONFIG};
    longopts[NOPTS + 1] = (struct option){"help", no_argument, NULL, O_HELP};
    longopts[NOPTS + 2] = (struct option){"version", no_argument, NULL, O_VERSION};
    longopts[NOPTS + 3] = (struct option){0};

    while ((c = verb_getopt(argc, argv, PATH, longopts, false, &state, &code)) != -1) {
        if (c == O_CONFIG) {
            free(cfg->config);
            cfg->config = strdup(optarg);
            if (!cfg->config)
                return *exit_code = VERB_EXIT_FAILED, false;
        } else if (c == O_HELP) {
            usage();
            return *exit_code = VERB_EXIT_OK, false;
        } else if (c == O_VERSION) {
            printf("tpmlic-server " TPMLIC_VERSION "\n");
            return *exit_code = VERB_EXIT_OK, false;
        } else if (c >= 1 && c <= (int)NOPTS) {
            const struct serve_opt *o = &opts[c - 1];
            /* a value given twice: the last wins, a list grows */
            if (set(cfg, o, optarg) < 0)
                return *exit_code = verb_usage_error(PATH, "--%s %s", o->name, rule_of(o)), false;
            from_cli[c - 1] = true;
        }
    }
    if (code)
        return *exit_code = code, false;
    if (cfg->config) {
        int r = read_file(cfg, from_cli);
        if (r)
            return *exit_code = r, false;
    }
    if (!cfg->db || !cfg->key || !cfg->listen || !cfg->tls_cert || !cfg->tls_key)
        return *exit_code = verb_usage_error(PATH, "--db, --key, --listen, --tls-cert and "
                                                   "--tls-key are required"),
               false;
    if (cfg->max_connections < cfg->threads)
        return *exit_code = verb_usage_error(PATH, "--max-connections must be at least --threads"),
               false;
    if (cfg->admin_port_file && !cfg->admin_listen)
        return *exit_code = verb_usage_error(PATH, "--admin-port-file goes with --admin-listen"),
               false;
    return true;
}

void srv_serve_config_free(struct srv_serve_config *cfg) {
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == T_STRING || opts[i].type == T_LIST) {
            char **s = (char **)((char *)cfg + opts[i].off);
            free(*s);
            *s = NULL;
        }
    free(cfg->config);
    cfg->config = NULL;
}
