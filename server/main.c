/* tpmlic-server: the command line (SPEC section 9) and `serve`, the HTTPS
 * license server: TLS certificate and key checked up front, the database
 * migrated, a listening socket (port 0 allowed: the chosen port goes to the
 * log and to --port-file), then the MHD thread pool until SIGTERM/SIGINT,
 * after which requests under way are finished and the program exits 0.
 *
 * Exit status: 0 success, 1 refused or failed (one line on stderr), 2 usage
 * error. Keys and full license codes are never logged. */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/text.h"

#define TLS_FILE_MAX (1024 * 1024)

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

int srv_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fputs(SRV_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '" SRV_PROG "%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
    return SRV_EXIT_USAGE;
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

static void print_version(void) {
    printf(SRV_PROG " " TPMLIC_VERSION "\n");
}

/* ---- serve ------------------------------------------------------------------------ */

static const char serve_help[] =
    "Usage: " SRV_PROG " serve --db FILE --key FILE --listen HOST:PORT --tls-cert FILE\n"
    "        --tls-key FILE [--port-file FILE] [--threads N] [--max-connections N]\n"
    "        [--timeout SECS] [--log-level error|warn|info|debug]\n"
    "\n"
    "Runs the license server: HTTPS (TLS 1.2 or 1.3) on HOST:PORT with the endpoints\n"
    "POST /v1/activate, /v1/validate and /v1/deactivate (docs/online.md), every\n"
    "answer signed with the vendor key. Runs in the foreground; SIGTERM or SIGINT\n"
    "finishes the requests under way and exits 0.\n"
    "\n"
    "  --db FILE             the SQLite database (created when missing)\n"
    "  --key FILE            the vendor's Ed25519 private key (PEM)\n"
    "  --listen HOST:PORT    address to listen on, e.g. 0.0.0.0:8443 or [::]:8443;\n"
    "                        port 0 picks a free port (see --port-file)\n"
    "  --tls-cert FILE       the server's certificate (PEM, chain after it)\n"
    "  --tls-key FILE        its private key (PEM, not encrypted)\n"
    "  --port-file FILE      write the port listened on into FILE once listening\n"
    "  --threads N           request threads and database connections (default 8)\n"
    "  --max-connections N   open connections at most (default 1024)\n"
    "  --timeout SECS        close a connection idle for SECS (default 30)\n"
    "  --log-level LEVEL     error, warn, info (default: one line per request), debug\n";

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
 * listened on (port 0: the one the kernel chose). */
static int listen_on(const char *spec, int *ret_fd, unsigned *ret_port, char *host,
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
        return srv_usage_error("serve", "--listen must be HOST:PORT, e.g. 127.0.0.1:8443");
    port = colon + 1;
    if (parse_uint_strict(port, 65535, &p) < 0)
        return srv_usage_error("serve", "--listen: '%s' is not a port (0 to 65535)", port);
    if (spec[0] == '[') {
        if (colon[-1] != ']' || (size_t)(colon - spec - 2) >= hostlen)
            return srv_usage_error("serve", "--listen must be [IPv6]:PORT for an IPv6 address");
        snprintf(host, hostlen, "%.*s", (int)(colon - spec - 2), spec + 1);
    } else {
        if ((size_t)(colon - spec) >= hostlen)
            return srv_usage_error("serve", "--listen: the host is too long");
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

static int cmd_serve(int argc, char **argv) {
    enum { O_PORT_FILE = 0x100, O_THREADS, O_MAXCONN, O_TIMEOUT, O_LOGLEVEL, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'},
        {"listen", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'K'},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-connections", required_argument, NULL, O_MAXCONN},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {0},
    };
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_free_ char *cert_pem = NULL;
    _cleanup_secret_ char *tls_key_pem = NULL;
    _cleanup_close_ int fd = -1;
    const char *db = NULL, *keyfile = NULL, *listen_spec = NULL, *certfile = NULL,
               *tlskeyfile = NULL, *port_file = NULL;
    uint64_t threads = 8, maxconn = 1024, timeout = 30;
    struct srv_http *http = NULL;
    sqlite3 *dbh = NULL;
    char err[512], host[256];
    unsigned port = 0;
    sigset_t mask;
    int c, r, sig;
    enum log_level level;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 'k':
            keyfile = optarg;
            break;
        case 'l':
            listen_spec = optarg;
            break;
        case 'c':
            certfile = optarg;
            break;
        case 'K':
            tlskeyfile = optarg;
            break;
        case O_PORT_FILE:
            port_file = optarg;
            break;
        case O_THREADS:
            if (parse_uint_strict(optarg, 256, &threads) < 0 || threads == 0)
                return srv_usage_error("serve", "--threads must be 1 to 256");
            break;
        case O_MAXCONN:
            if (parse_uint_strict(optarg, 100000, &maxconn) < 0 || maxconn == 0)
                return srv_usage_error("serve", "--max-connections must be 1 to 100000");
            break;
        case O_TIMEOUT:
            if (parse_uint_strict(optarg, 86400, &timeout) < 0 || timeout == 0)
                return srv_usage_error("serve", "--timeout must be 1 to 86400 seconds");
            break;
        case O_LOGLEVEL:
            if (log_parse_level(optarg, &level) < 0)
                return srv_usage_error("serve", "--log-level must be error, warn, info or debug");
            log_set_level(level);
            break;
        case O_HELP:
            fputs(serve_help, stdout);
            return 0;
        case O_VERSION:
            print_version();
            return 0;
        case ':':
            return srv_usage_error("serve", "option '%s' needs a value", argv[optind - 1]);
        default:
            return srv_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return srv_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (!db || !keyfile || !listen_spec || !certfile || !tlskeyfile)
        return srv_usage_error("serve", "--db, --key, --listen, --tls-cert and --tls-key are "
                                        "required");
    if (maxconn < threads)
        return srv_usage_error("serve", "--max-connections must be at least --threads");

    r = srv_load_private_key(keyfile, &key);
    if (r)
        return r;
    r = read_text_file(certfile, "TLS certificate", &cert_pem);
    if (r)
        return r;
    r = read_text_file(tlskeyfile, "TLS key", &tls_key_pem);
    if (r)
        return r;
    r = check_tls(certfile, cert_pem, tlskeyfile, tls_key_pem);
    if (r)
        return r;
    /* the schema is brought up to date once, before the pool opens */
    r = srv_db_open(db, true, &dbh, err, sizeof(err));
    if (r < 0)
        return srv_refuse("%s", err);
    srv_db_close(dbh);

    r = listen_on(listen_spec, &fd, &port, host, sizeof(host));
    if (r)
        return r;

    /* Signals are taken by sigwait() below; the MHD threads inherit the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);

    r = srv_http_start(&(struct srv_http_config){.listen_fd = fd,
                                                 .tls_cert_pem = cert_pem,
                                                 .tls_key_pem = tls_key_pem,
                                                 .db_path = db,
                                                 .key = key,
                                                 .threads = (unsigned)threads,
                                                 .max_connections = (unsigned)maxconn,
                                                 .timeout_secs = (unsigned)timeout},
                       &http, err, sizeof(err));
    if (r < 0)
        return srv_refuse("cannot serve: %s", err);
    log_info("listening on %s%s%s:%u", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", port);
    if (port_file && write_port_file(port_file, port) < 0) {
        log_error("cannot write the port file %s", port_file);
        srv_http_stop(http, 0);
        return SRV_EXIT_REFUSED;
    }
    do {
        r = sigwait(&mask, &sig);
    } while (r != 0);
    log_info("stopping on %s: finishing the requests under way", strsignal(sig));
    srv_http_stop(http, 10);
    log_info("stopped");
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static const char main_help[] =
    "Usage: " SRV_PROG " COMMAND [OPTIONS]\n"
    "\n"
    "The reference tpmlic license server and its administration.\n"
    "\n"
    "  serve --db FILE --key FILE --listen HOST:PORT --tls-cert FILE --tls-key FILE\n"
    "      run the HTTPS license server\n"
    "  license create --db FILE --code CODE --product NAME --customer-id N --type TYPE ...\n"
    "  license list|show CODE|suspend CODE|resume CODE|delete CODE --db FILE [--json]\n"
    "  license update CODE --db FILE [--expiry T] [--features a,b] [--secs-allocated N] ...\n"
    "      manage licenses in the database\n"
    "  offline sign --db FILE --key FILE [--in FILE]\n"
    "      sign an appliance's activation certificate as an offline activation\n"
    "\n"
    "'" SRV_PROG " COMMAND --help' (and 'license create --help' ...) describes each\n"
    "command. Exit status: 0 success, 1 refused or failed, 2 usage error.\n";

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"serve", cmd_serve},
        {"license", srv_cmd_license},
        {"offline", srv_cmd_offline},
    };

    log_set_program(SRV_PROG);
    if (argc < 2)
        return srv_usage_error(NULL, "a command is needed");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(main_help, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        print_version();
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return srv_usage_error(NULL, "unknown command '%s'", argv[1]);
}
