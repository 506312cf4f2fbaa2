/* tpmlic-server: the command table (SPEC section 9) and `serve`, the HTTPS
 * license server: settings from the command line and the config file
 * (config.c), the TLS certificate and key checked up front, the database
 * migrated, the listening sockets (port 0 allowed: the chosen port goes to
 * the log and to --port-file), then the MHD thread pools and the background
 * thread until SIGTERM/SIGINT, after which requests under way are finished
 * and the program exits 0.
 *
 * Exit status: 0 success, 1 refused or failed (one line on stderr), 2 usage
 * error. Keys, tokens and full license codes are never logged. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/text.h"
#include "server/background.h"
#include "server/cli.h"
#include "server/config.h"
#include "server/http.h"
#include "server/server.h"

#define TLS_FILE_MAX (1024 * 1024)
#define SERVE        SRV_PROG " serve"

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_PTR_CLEANUP(BIO, BIO_free_all)
DEFINE_PTR_CLEANUP(X509, X509_free)

int srv_refuse(const char *fmt, ...) {
    va_list ap;
    fputs(SRV_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return SRV_EXIT_REFUSED;
}

int srv_load_private_key(const char *path, EVP_PKEY **ret) {
    char err[300];
    bool exposed;

    if (cert_load_signing_key(path, ret, &exposed, err, sizeof(err)) < 0)
        return srv_refuse("%s", err);
    if (exposed)
        fprintf(stderr, SRV_PROG ": warning: the vendor key %s can be read by others\n", path);
    return 0;
}

/* ---- serve ------------------------------------------------------------------------ */

static int read_text_file(const char *path, const char *what, char **ret) {
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    _cleanup_free_ char *buf = NULL;
    size_t n;

    if (!f)
        return srv_refuse("cannot read the %s %s: %s", what, path, strerror(errno));
    buf = malloc(TLS_FILE_MAX + 1);
    if (!buf)
        return srv_refuse("out of memory");
    n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f))
        return srv_refuse("cannot read the %s %s: %s", what, path, strerror(errno));
    if (n > TLS_FILE_MAX)
        return srv_refuse("the %s %s is larger than %d bytes", what, path, TLS_FILE_MAX);
    buf[n] = '\0';
    *ret = TAKE_PTR(buf);
    return 0;
}

/* GnuTLS would only say "cannot start": check with OpenSSL first, so the
 * message names the file and the problem. */
static int check_tls(const char *certfile, const char *cert_pem, const char *keyfile,
                     const char *key_pem) {
    _cleanup_(BIO_free_allp) BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    _cleanup_(BIO_free_allp) BIO *kb = BIO_new_mem_buf(key_pem, -1);
    _cleanup_(X509_freep) X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;

    if (!x)
        return srv_refuse("%s is not a PEM certificate", certfile);
    k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, (void *)"") : NULL;
    if (!k)
        return srv_refuse("%s is not an unencrypted PEM private key", keyfile);
    if (X509_check_private_key(x, k) != 1)
        return srv_refuse("the TLS key %s does not belong to the certificate %s", keyfile,
                          certfile);
    return 0;
}

/* HOST:PORT or [HOST]:PORT -> a listening TCP socket; *ret_port the port
 * listened on (port 0: the one the kernel chose). opt names the option
 * for messages. */
static int listen_on(const char *opt, const char *spec, int *ret_fd, unsigned *ret_port, char *host,
                     size_t hostlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    const char *colon = strrchr(spec, ':'), *port;
    uint64_t p;
    int fd, one = 1, rc;

    if (!colon || colon == spec || !colon[1])
        return verb_usage_error(SERVE, "%s must be HOST:PORT, e.g. 127.0.0.1:8443", opt);
    port = colon + 1;
    if (parse_uint_strict(port, 65535, &p) < 0)
        return verb_usage_error(SERVE, "%s: '%s' is not a port (0 to 65535)", opt, port);
    if (spec[0] == '[') {
        if (colon[-1] != ']' || (size_t)(colon - spec - 2) >= hostlen)
            return verb_usage_error(SERVE, "%s must be [IPv6]:PORT for an IPv6 address", opt);
        snprintf(host, hostlen, "%.*s", (int)(colon - spec - 2), spec + 1);
    } else {
        if ((size_t)(colon - spec) >= hostlen)
            return verb_usage_error(SERVE, "%s: the host is too long", opt);
        snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    }
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return srv_refuse("cannot listen on %s: %s", spec, gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return srv_refuse("cannot listen on %s: %s", spec, strerror(e));
    }
    freeaddrinfo(ai);
    *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *ret_fd = fd;
    return 0;
}

/* Written to a temporary file and renamed: a reader sees all or nothing. */
/* The EK trust store must be a directory we can read: a typo would
 * otherwise refuse every activation of a license with tpm_trust. */
static int check_ek_ca_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return srv_refuse("--ek-ca-dir %s: %s", dir, strerror(errno));
    closedir(d);
    return 0;
}

static int write_port_file(const char *path, unsigned port) {
    _cleanup_free_ char *tmp = NULL;
    FILE *f;

    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return -ENOMEM;
    f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return -EIO;
    }
    return 0;
}

static void log_listening(const char *what, const char *host, unsigned port) {
    bool v6 = strchr(host, ':') != NULL;
    log_info("listening on %s%s%s:%u (%s)", v6 ? "[" : "", host, v6 ? "]" : "", port, what);
}

static int cmd_serve(int argc, char **argv, void *userdata) {
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_free_ char *cert_pem = NULL;
    _cleanup_secret_ char *tls_key_pem = NULL;
    _cleanup_close_ int fd = -1, admin_fd = -1;
    struct srv_serve_config cfg;
    struct srv_cidrs trusted = {0};
    struct srv_metrics metrics;
    struct srv_http *http = NULL;
    struct srv_background *bg = NULL;
    struct srv_db *dbh = NULL;
    pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
    char err[512], host[256], ahost[256], bad[64];
    unsigned port = 0, aport = 0;
    bool sqlite;
    sigset_t mask;
    int r, sig, code = 0;

    if (!srv_serve_config_parse(argc, argv, &cfg, &code)) {
        srv_serve_config_free(&cfg);
        return code;
    }
    log_set_level(cfg.log_level);
    sqlite = !srv_db_spec_is_postgresql(cfg.db);
    r = srv_cidrs_parse(&trusted, cfg.trusted_proxy, bad, sizeof(bad));
    if (r < 0) {
        r = r == -EINVAL ? verb_usage_error(SERVE,
                                            "--trusted-proxy: '%s' is not an address or "
                                            "a network (ADDRESS/BITS)",
                                            bad)
                         : srv_refuse("out of memory");
        goto out;
    }
    if ((r = srv_load_private_key(cfg.key, &key)) != 0 ||
        (r = read_text_file(cfg.tls_cert, "TLS certificate", &cert_pem)) != 0 ||
        (r = read_text_file(cfg.tls_key, "TLS key", &tls_key_pem)) != 0 ||
        (r = check_tls(cfg.tls_cert, cert_pem, cfg.tls_key, tls_key_pem)) != 0 ||
        (cfg.ek_ca_dir && (r = check_ek_ca_dir(cfg.ek_ca_dir)) != 0))
        goto out;
    /* the schema is brought up to date once, before the pool opens */
    r = srv_db_open(cfg.db, true, &dbh, err, sizeof(err));
    if (r < 0) {
        r = srv_refuse("%s", err);
        goto out;
    }
    srv_db_close(dbh);
    if ((r = listen_on("--listen", cfg.listen, &fd, &port, host, sizeof(host))) != 0 ||
        (cfg.admin_listen && (r = listen_on("--admin-listen", cfg.admin_listen, &admin_fd, &aport,
                                            ahost, sizeof(ahost))) != 0))
        goto out;

    /* Signals are taken by sigwait() below; the threads inherit the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);

    srv_metrics_init(&metrics);
    r = srv_http_start(
        &(struct srv_http_config){.listen_fd = fd,
                                  .admin_fd = admin_fd,
                                  .tls_cert_pem = cert_pem,
                                  .tls_key_pem = tls_key_pem,
                                  .db_spec = cfg.db,
                                  .key = key,
                                  .threads = (unsigned)cfg.threads,
                                  .max_connections = (unsigned)cfg.max_connections,
                                  .max_connections_per_ip = (unsigned)cfg.max_connections_per_ip,
                                  .timeout_secs = (unsigned)cfg.timeout,
                                  .activation_rate = (unsigned)cfg.activation_rate,
                                  .activation_burst = (unsigned)cfg.activation_burst,
                                  .trusted_proxies = &trusted,
                                  .write_lock = sqlite ? &write_lock : NULL,
                                  .metrics = &metrics,
                                  .window_secs = cfg.validity_window,
                                  .ek_ca_dir = cfg.ek_ca_dir},
        &http, err, sizeof(err));
    if (r < 0) {
        r = srv_refuse("cannot serve: %s", err);
        goto out;
    }
    r = srv_background_start(
        &(struct srv_background_config){.db_spec = cfg.db,
                                        .webhook_ca = cfg.webhook_ca,
                                        .webhook_timeout = (unsigned)cfg.webhook_timeout,
                                        .webhook_retry_secs = (unsigned)cfg.webhook_retry_secs,
                                        .webhook_attempts = (unsigned)cfg.webhook_attempts,
                                        .cull_secs = (unsigned)cfg.cull_interval,
                                        .write_lock = sqlite ? &write_lock : NULL,
                                        .metrics = &metrics},
        &bg, err, sizeof(err));
    if (r < 0) {
        srv_http_stop(http, 0);
        r = srv_refuse("cannot serve: %s", err);
        goto out;
    }
    log_listening(cfg.admin_listen ? "appliances" : "appliances and the admin API", host, port);
    if (cfg.admin_listen)
        log_listening("the admin API, /metrics and /health", ahost, aport);
    log_info("database: %s", sqlite ? "SQLite" : "PostgreSQL");
    if ((cfg.port_file && write_port_file(cfg.port_file, port) < 0) ||
        (cfg.admin_port_file && write_port_file(cfg.admin_port_file, aport) < 0)) {
        log_error("cannot write the port file %s",
                  cfg.admin_port_file ? cfg.admin_port_file : cfg.port_file);
        srv_background_stop(bg);
        srv_http_stop(http, 0);
        r = SRV_EXIT_REFUSED;
        goto out;
    }
    do {
        r = sigwait(&mask, &sig);
    } while (r != 0);
    log_info("stopping on %s: finishing the requests under way", strsignal(sig));
    srv_background_stop(bg);
    srv_http_stop(http, 10);
    log_info("stopped");
    r = 0;
out:
    srv_cidrs_free(&trusted);
    srv_serve_config_free(&cfg);
    return r;
}

/* ---- main ------------------------------------------------------------------------------ */

static const char main_help[] =
    "Usage: " SRV_PROG " COMMAND [OPTIONS]\n"
    "\n"
    "The reference tpmlic license server and its administration. --db takes a SQLite\n"
    "file or a PostgreSQL URI (postgresql://...).\n"
    "\n"
    "  serve --db FILE|URL --key FILE --listen HOST:PORT --tls-cert FILE\n"
    "        --tls-key FILE\n"
    "      run the HTTPS license server and its admin REST API\n"
    "  license create --db FILE|URL --code CODE --product NAME --customer-id N\n"
    "        --type TYPE ...\n"
    "  license list|show CODE|suspend CODE|resume CODE|delete CODE --db FILE|URL\n"
    "  license update CODE --db FILE|URL [--expiry T] [--features a,b] ...\n"
    "      manage licenses\n"
    "  offline sign --db FILE|URL --key FILE [--in FILE]\n"
    "      sign an appliance's activation certificate as an offline activation\n"
    "  activation list|show ID|revoke ID|transfer ID --to CID|clear-flags ID|cull\n"
    "      the activations of appliances\n"
    "  token create --scope read|write|admin | token list | token revoke ID\n"
    "      bearer tokens for the admin REST API\n"
    "  webhook create --url URL --events a,b | list | delete ID | deliveries\n"
    "      webhook endpoints and their delivery log\n"
    "  audit list [--since T] [--action A] ...\n"
    "      the audit log of administrative actions\n"
    "  routes [--json]\n"
    "      the HTTP routes serve answers, with the token scope each needs\n"
    "\n"
    "'" SRV_PROG " COMMAND --help' (and 'license create --help' ...) describes each\n"
    "command. Exit status: 0 success, 1 refused or failed, 2 usage error.\n";

static const struct verb commands[] = {
    {.name = "serve", .run = cmd_serve},
    {.name = "license", .run = srv_cmd_group},
    {.name = "offline", .run = srv_cmd_group},
    {.name = "activation", .run = srv_cmd_group},
    {.name = "token", .run = srv_cmd_group},
    {.name = "webhook", .run = srv_cmd_group},
    {.name = "audit", .run = srv_cmd_group},
    {.name = "routes", .run = srv_cmd_routes},
    {0},
};

int main(int argc, char **argv) {
    int r;

    log_set_program(SRV_PROG);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = verb_dispatch(SRV_PROG, commands, main_help, SRV_PROG " " TPMLIC_VERSION, argc - 1,
                      argv + 1, NULL);
    curl_global_cleanup();
    return r;
}
