/* tpmlicctl: the operator's command line for tpmlicd (SPEC section 9,
 * docs/tpmlicctl.md). One table of commands; each command is one function
 * that sends one or two requests through libtpmlic and prints the answer as
 * aligned text, or the agent's JSON with --json.
 *
 * Exit status: 0 success, 1 the agent refused (its message on stderr), 2 a
 * usage error, 3 the agent cannot be reached (not running, no answer in
 * time, or the caller lacks the permission to talk to it). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "client/ctl_format.h"
#include "common/macro.h"
#include "tpmlic/client.h"

#define PROG "tpmlicctl"

enum {
    EXIT_OK = 0,
    EXIT_REFUSED = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

#define DEFAULT_TIMEOUT_SECS 60
#define FILE_MAX             (64 * 1024) /* a certificate or a password file */
#define MAX_OPTS             4
#define KEY_WIDTH            20

struct ctx;

struct command {
    const char *name; /* one or two words: "status", "offline request" */
    const char *synopsis;
    const char *summary;
    const char *help;
    int min_args, max_args;
    const char *opts[MAX_OPTS]; /* options that take a value, without "--" */
    int (*run)(struct ctx *c);
};

struct ctx {
    const struct command *cmd;
    const char *socket; /* NULL: $TPMLIC_SOCKET, else the default */
    bool json;
    int timeout_secs;
    const char *opt[MAX_OPTS]; /* values of cmd->opts, NULL when not given */
    char *args[4];
    int nargs;
    struct tpmlic *h;
};

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...) {
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return EXIT_USAGE;
}

static const char *opt_value(const struct ctx *c, const char *name) {
    for (int i = 0; i < MAX_OPTS && c->cmd->opts[i]; i++)
        if (!strcmp(c->cmd->opts[i], name))
            return c->opt[i];
    return NULL;
}

/* ---- talking to the agent ------------------------------------------------------- */

static const char *socket_shown(const struct ctx *c) {
    if (c->h)
        return tpmlic_socket_path(c->h);
    if (c->socket)
        return c->socket;
    return getenv(TPMLIC_SOCKET_ENV) && *getenv(TPMLIC_SOCKET_ENV) ? getenv(TPMLIC_SOCKET_ENV)
                                                                   : TPMLIC_DEFAULT_SOCKET;
}

/* No answer from the agent: a message that says what to do; exit 3. */
static int unreachable(const struct ctx *c, int r, const struct tpmlic_error *e) {
    const char *path = socket_shown(c);
    switch (-r) {
    case ENOENT:
        fprintf(stderr,
                PROG ": tpmlicd is not running: there is no socket %s\n"
                     "  (start it: systemctl start tpmlicd; or name its socket with --socket PATH "
                     "or TPMLIC_SOCKET)\n",
                path);
        break;
    case ECONNREFUSED:
        fprintf(stderr,
                PROG ": tpmlicd is not running: nothing listens on %s\n"
                     "  (start it: systemctl start tpmlicd)\n",
                path);
        break;
    case EACCES:
    case EPERM:
        fprintf(stderr,
                PROG ": permission denied on the socket %s: run as root, or as a member of "
                     "group tpmlic (status, check, usage) and group tpmlic-admin (management)\n",
                path);
        break;
    case ETIMEDOUT:
        fprintf(stderr, PROG ": tpmlicd at %s did not answer within %d s: %s\n", path,
                c->timeout_secs, e->message);
        break;
    default:
        fprintf(stderr, PROG ": cannot reach tpmlicd at %s: %s\n", path, e->message);
    }
    return EXIT_UNREACHABLE;
}

static int ensure_connected(struct ctx *c) {
    struct tpmlic_error e = {0};
    int r;
    if (c->h)
        return 0;
    r = tpmlic_connect(c->socket, &c->h, &e);
    if (r < 0)
        return unreachable(c, r, &e);
    tpmlic_set_timeout(c->h, c->timeout_secs * 1000);
    return 0;
}

/* One request. 2xx: 0 and the decoded answer in *ret_json (may be NULL),
 * the text in *ret_text (may be NULL). Otherwise the agent's message on
 * stderr (and its JSON on stdout with --json) and the exit status. With
 * quiet, a refusal is only returned (no output). */
static int request_full(struct ctx *c, const char *method, const char *path, json_t *body,
                        bool quiet, json_t **ret_json, char **ret_text) {
    _cleanup_free_ char *text = NULL, *answer = NULL;
    struct tpmlic_error e = {0};
    json_t *j;
    int status = 0, r;

    r = ensure_connected(c);
    if (r)
        return r;
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_REFUSED;
    }
    r = tpmlic_request(c->h, method, path, text, &status, &answer, &e);
    if (text)
        secure_wipe(text, strlen(text)); /* may hold a proxy password */
    if (r < 0)
        return unreachable(c, r, &e);
    j = json_loads(answer, JSON_REJECT_DUPLICATES, NULL);
    r = tpmlic_errno_from_status(status, answer);
    if (r < 0) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        if (quiet) {
            json_decref(j);
            return r == -EACCES ? EXIT_UNREACHABLE : EXIT_REFUSED;
        }
        if (c->json)
            printf("%s\n", answer);
        if (msg)
            fprintf(stderr, PROG ": %s\n", msg);
        else
            fprintf(stderr, PROG ": tpmlicd answered HTTP %d: %.200s\n", status, answer);
        json_decref(j);
        if (r == -EACCES) {
            fprintf(stderr, "  (run as root, or as a member of group tpmlic-admin for management "
                            "commands or group tpmlic for status, check and usage)\n");
            return EXIT_UNREACHABLE;
        }
        return EXIT_REFUSED;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        fprintf(stderr, PROG ": tpmlicd's answer is not a JSON object: %.200s\n", answer);
        return EXIT_REFUSED;
    }
    if (ret_json)
        *ret_json = j;
    else
        json_decref(j);
    if (ret_text)
        *ret_text = TAKE_PTR(answer);
    return 0;
}

static int request(struct ctx *c, const char *method, const char *path, json_t *body,
                   json_t **ret_json) {
    _cleanup_free_ char *text = NULL;
    int r = request_full(c, method, path, body, false, ret_json, &text);
    if (r == 0 && c->json)
        printf("%s\n", text);
    return r;
}

/* ---- output ---------------------------------------------------------------------- */

static void kv(const char *key, const char *fmt, ...) _printf_(2, 3);
static void kv(const char *key, const char *fmt, ...) {
    va_list ap;
    printf("%-*s", KEY_WIDTH, key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static const char *str(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static const char *yes_no(json_t *o, const char *key) {
    return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

static void kv_secs(const char *key, json_t *v) {
    char d[64];
    if (!json_is_integer(v))
        return;
    ctl_format_secs((uint64_t)json_integer_value(v), d, sizeof(d));
    if (json_integer_value(v) < 60)
        kv(key, "%s", d);
    else
        kv(key, "%s (%lld s)", d, (long long)json_integer_value(v));
}

/* A time field: local time and how far from now, or `none`. */
static void kv_time(const char *key, json_t *v, const char *none, const char *past) {
    char when[64], rel[64];
    time_t t;
    if (!v || json_is_null(v)) {
        kv(key, "%s", none);
        return;
    }
    if (ctl_parse_time(json_string_value(v), &t) < 0) {
        kv(key, "%s", json_string_value(v) ? json_string_value(v) : "?");
        return;
    }
    ctl_format_local(t, when, sizeof(when));
    ctl_format_relative(t, time(NULL), rel, sizeof(rel));
    kv(key, "%s (%s%s)", when, rel, t <= time(NULL) ? past : "");
}

static void kv_features(json_t *arr) {
    char buf[1024] = "";
    size_t i, used = 0;
    json_t *f;
    json_array_foreach(arr, i, f) {
        int n = snprintf(buf + used, sizeof(buf) - used, "%s%s", used ? ", " : "",
                         json_string_value(f) ? json_string_value(f) : "?");
        if (n < 0 || (size_t)n >= sizeof(buf) - used)
            break;
        used += (size_t)n;
    }
    kv("features", "%s", used ? buf : "none");
}

/* The license as GET /v1/management/license (and the answers of activate,
 * offline apply, offline-mode) give it. */
static void print_license(json_t *m) {
    bool present = str(m, "license_code")[0] != '\0';
    kv("licensed", "%s", yes_no(m, "licensed"));
    kv("status", "%s", str(m, "status"));
    if (present) {
        kv("product", "%s", str(m, "product"));
        kv("license code", "%s", str(m, "license_code"));
        if (json_is_integer(json_object_get(m, "customer_id")))
            kv("customer ID", "%lld",
               (long long)json_integer_value(json_object_get(m, "customer_id")));
        kv("license type", "%s", str(m, "license_type"));
        kv("activation", "%s", str(m, "activation_type"));
        kv_features(json_object_get(m, "features"));
        kv_time("expires", json_object_get(m, "subscription_expiry"), "never", ": expired");
        kv_secs("seconds left", json_object_get(m, "transcription_secs_allowed"));
        kv_secs("seconds allocated", json_object_get(m, "transcription_secs_allocated"));
        kv_time("grace period ends", json_object_get(m, "grace_period_end"), "none (not in grace)",
                ": ended");
    }
    kv("offline mode", "%s", json_is_true(json_object_get(m, "offline_mode")) ? "on" : "off");
    kv("computer ID", "%s", str(m, "computer_id"));
}

/* ---- commands -------------------------------------------------------------------- */

static int cmd_status(struct ctx *c) {
    json_auto_t *s = NULL, *m = NULL;
    json_t *tpm;
    int r = request(c, "GET", "/v1/status", NULL, &s);
    if (r || c->json)
        return r;
    /* what only management may read (product, license code, ...): shown
     * when this caller may, left out otherwise */
    if (request_full(c, "GET", "/v1/management/license", NULL, true, &m, NULL) != 0)
        m = NULL;
    kv("licensed", "%s", yes_no(s, "licensed"));
    kv("valid", "%s", yes_no(s, "valid"));
    kv("reason", "%s", str(s, "reason"));
    if (json_is_true(json_object_get(s, "licensed"))) {
        if (m) {
            kv("product", "%s", str(m, "product"));
            kv("license code", "%s", str(m, "license_code"));
            if (json_is_integer(json_object_get(m, "customer_id")))
                kv("customer ID", "%lld",
                   (long long)json_integer_value(json_object_get(m, "customer_id")));
        }
        kv("license type", "%s", str(s, "license_type"));
        if (m)
            kv("activation", "%s", str(m, "activation_type"));
        kv_features(json_object_get(s, "features"));
        kv_time("expires", json_object_get(s, "subscription_expiry"), "never", ": expired");
        kv_secs("seconds left", json_object_get(s, "secs_remaining"));
        if (m)
            kv_secs("seconds allocated", json_object_get(m, "transcription_secs_allocated"));
        kv_time("grace period ends", json_object_get(s, "grace_period_end"), "none (not in grace)",
                ": ended");
    }
    kv("offline mode", "%s", json_is_true(json_object_get(s, "offline_mode")) ? "on" : "off");
    kv("computer ID", "%s", str(s, "computer_id"));
    tpm = json_object_get(s, "tpm");
    if (json_is_object(tpm)) {
        if (!json_is_true(json_object_get(tpm, "present")))
            kv("TPM", "absent");
        else if (json_is_true(json_object_get(tpm, "ok")))
            kv("TPM", "ok");
        else
            kv("TPM", "not answering: %s", str(tpm, "error"));
    }
    return 0;
}

static int cmd_computer_id(struct ctx *c) {
    json_auto_t *s = NULL;
    int r = request_full(c, "GET", "/v1/status", NULL, false, &s, NULL);
    if (r)
        return r;
    if (c->json) {
        json_auto_t *o = json_pack("{s:O}", "computer_id", json_object_get(s, "computer_id"));
        _cleanup_free_ char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s\n", t ? t : "{}");
    } else
        printf("%s\n", str(s, "computer_id"));
    return 0;
}

static int cmd_check(struct ctx *c) {
    const char *feature = opt_value(c, "feature");
    json_auto_t *body = json_pack("{s:s*}", "feature", feature);
    int r = request(c, "POST", "/v1/check", body, NULL);
    if (r || c->json)
        return r;
    if (feature)
        printf("allowed: the license includes feature '%s'\n", feature);
    else
        printf("allowed: the license is valid\n");
    return 0;
}

static int cmd_activate(struct ctx *c) {
    json_auto_t *body = json_pack("{s:s, s:s*, s:s*, s:s*}", "license", c->args[0], "username",
                                  opt_value(c, "username"), "email_address", opt_value(c, "email"),
                                  "company_name", opt_value(c, "company"));
    json_auto_t *m = NULL;
    int r = request(c, "POST", "/v1/management/license", body, &m);
    if (r || c->json)
        return r;
    printf("license %s activated\n\n", c->args[0]);
    print_license(m);
    return 0;
}

static int cmd_deactivate(struct ctx *c) {
    json_auto_t *a = NULL;
    int r = request(c, "DELETE", "/v1/management/license", NULL, &a);
    if (r || c->json)
        return r;
    printf("license removed\n");
    kv_secs("seconds returned", json_object_get(a, "transcription_secs_returned"));
    return 0;
}

/* Writes the activation certificate wrapped at 76 columns (tpmlic-vendor
 * drops line ends), ready to attach to or paste into an e-mail. */
static int write_wrapped(FILE *f, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += 76)
        if (fprintf(f, "%.*s\n", (int)(n - i < 76 ? n - i : 76), s + i) < 0)
            return -EIO;
    return 0;
}

static int cmd_offline_request(struct ctx *c) {
    json_auto_t *body = json_pack("{s:s, s:s*, s:s*, s:s*}", "license", c->args[0], "username",
                                  opt_value(c, "username"), "email_address", opt_value(c, "email"),
                                  "company_name", opt_value(c, "company"));
    json_auto_t *a = NULL;
    const char *out = opt_value(c, "out"), *cert;
    _cleanup_fclose_ FILE *f = NULL;
    int r;

    r = request_full(c, "POST", "/v1/management/license/offlineactivation", body, false, &a, NULL);
    if (r)
        return r;
    cert = json_string_value(json_object_get(a, "activation_certificate"));
    if (!cert || !*cert) {
        fprintf(stderr, PROG ": tpmlicd's answer holds no activation_certificate\n");
        return EXIT_REFUSED;
    }
    if (out && strcmp(out, "-") != 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || !(f = fdopen(fd, "w"))) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", out, strerror(errno));
            if (fd >= 0)
                close(fd);
            return EXIT_REFUSED;
        }
        if (write_wrapped(f, cert) < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", out, strerror(errno));
            return EXIT_REFUSED;
        }
    }
    if (c->json) {
        _cleanup_free_ char *t = json_dumps(a, JSON_COMPACT);
        printf("%s\n", t ? t : "{}");
    } else if (f) {
        printf("activation certificate for license %s written to %s (%zu bytes)\n"
               "Send it to your vendor; apply the license certificate they send back with:\n"
               "  " PROG " offline apply %s FILE\n",
               c->args[0], out, strlen(cert), c->args[0]);
    } else
        write_wrapped(stdout, cert);
    return 0;
}

/* Reads a file ("-": standard input) of at most FILE_MAX bytes. */
static int read_file(const char *path, char **ret, size_t *ret_len) {
    _cleanup_fclose_ FILE *owned = NULL;
    _cleanup_free_ char *buf = malloc(FILE_MAX + 1);
    FILE *f = stdin;
    size_t n;

    if (!buf)
        return -ENOMEM;
    if (strcmp(path, "-") != 0) {
        owned = fopen(path, "re");
        if (!owned)
            return -errno;
        f = owned;
    }
    n = fread(buf, 1, FILE_MAX + 1, f);
    if (ferror(f))
        return -EIO;
    if (n > FILE_MAX)
        return -EFBIG;
    buf[n] = '\0';
    *ret = TAKE_PTR(buf);
    *ret_len = n;
    return 0;
}

static int cmd_offline_apply(struct ctx *c) {
    _cleanup_free_ char *cert = NULL;
    json_auto_t *body = NULL, *m = NULL;
    size_t n, o = 0;
    int r;

    r = read_file(c->args[1], &cert, &n);
    if (r < 0) {
        fprintf(stderr, PROG ": cannot read the license certificate %s: %s\n", c->args[1],
                r == -EFBIG ? "larger than 64 KiB: not a certificate" : strerror(-r));
        return EXIT_USAGE;
    }
    /* the vendor's file may be wrapped by mail: neither alphabet of a
     * certificate holds white space */
    for (size_t i = 0; i < n; i++)
        if (cert[i] != ' ' && cert[i] != '\t' && cert[i] != '\r' && cert[i] != '\n')
            cert[o++] = cert[i];
    cert[o] = '\0';
    if (o == 0) {
        fprintf(stderr, PROG ": the license certificate file %s is empty\n", c->args[1]);
        return EXIT_USAGE;
    }
    body = json_pack("{s:s, s:s}", "license", c->args[0], "certificate", cert);
    r = request(c, "PUT", "/v1/management/license/offlineactivation", body, &m);
    if (r || c->json)
        return r;
    printf("license %s applied\n\n", c->args[0]);
    print_license(m);
    return 0;
}

static int cmd_offline_mode(struct ctx *c) {
    json_auto_t *body = NULL, *m = NULL;
    bool on;
    int r;
    if (!strcmp(c->args[0], "on"))
        on = true;
    else if (!strcmp(c->args[0], "off"))
        on = false;
    else
        return usage_error("offline-mode takes 'on' or 'off', not '%s'", c->args[0]);
    body = json_pack("{s:b}", "offline", on);
    r = request(c, "POST", "/v1/management/license/offlinemode", body, &m);
    if (r || c->json)
        return r;
    printf("offline mode is %s\n", json_is_true(json_object_get(m, "offline_mode")) ? "on" : "off");
    return 0;
}

/* The proxy password: the first line of --password-file, or typed at the
 * terminal without echo. Never from the command line. NULL: none. */
static int read_password(const char *file, const char *user, char **ret) {
    _cleanup_secret_ char *pw = NULL;
    size_t n = 0;

    if (file) {
        int r = read_file(file, &pw, &n);
        if (r < 0) {
            fprintf(stderr, PROG ": cannot read the password file %s: %s\n", file,
                    r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
            return EXIT_USAGE;
        }
        pw[strcspn(pw, "\r\n")] = '\0';
        if (!*pw) {
            fprintf(stderr, PROG ": the password file %s is empty\n", file);
            return EXIT_USAGE;
        }
    } else if (user && isatty(STDIN_FILENO)) {
        struct termios old, noecho;
        ssize_t len;
        bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
        /* echo off before the prompt: what is typed after it is never shown */
        if (restore) {
            noecho = old;
            noecho.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
        }
        fprintf(stderr, "Password for proxy user %s (empty for none): ", user);
        fflush(stderr);
        len = getline(&pw, &n, stdin);
        if (restore)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputs("\n", stderr);
        if (len < 0) {
            free(TAKE_PTR(pw));
            *ret = NULL;
            return 0;
        }
        pw[strcspn(pw, "\r\n")] = '\0';
        if (!*pw)
            free(TAKE_PTR(pw));
    }
    *ret = TAKE_PTR(pw);
    return 0;
}

static int cmd_proxy_set(struct ctx *c) {
    const char *user = opt_value(c, "user"), *pwfile = opt_value(c, "password-file");
    _cleanup_secret_ char *pw = NULL;
    json_auto_t *body = NULL, *a = NULL;
    json_t *hc;
    uint64_t port;
    int r;

    if (ctl_parse_uint(c->args[1], 1, 65535, &port) < 0)
        return usage_error("the port must be a number from 1 to 65535, not '%s'", c->args[1]);
    if (pwfile && !user)
        return usage_error("--password-file needs --user");
    r = read_password(pwfile, user, &pw);
    if (r)
        return r;
    body = json_pack("{s:{s:s, s:I, s:s*, s:s*}}", "http_configuration", "ip", c->args[0], "port",
                     (json_int_t)port, "user", user, "password", pw);
    r = request(c, "POST", "/v1/management/license/network", body, &a);
    if (r || c->json)
        return r;
    hc = json_object_get(a, "http_configuration");
    printf("the license server is reached through the proxy %s:%lld", str(hc, "ip"),
           (long long)json_integer_value(json_object_get(hc, "port")));
    if (str(hc, "user")[0])
        printf(" as user %s (%s)", str(hc, "user"),
               json_is_true(json_object_get(hc, "password_set")) ? "password set" : "no password");
    printf("\n");
    return 0;
}

static int cmd_proxy_clear(struct ctx *c) {
    json_auto_t *body = json_pack("{s:{s:s}}", "http_configuration", "ip", "");
    int r = request(c, "POST", "/v1/management/license/network", body, NULL);
    if (r || c->json)
        return r;
    printf("proxy cleared: the license server is reached directly\n");
    return 0;
}

static int cmd_usage_reserve(struct ctx *c) {
    json_auto_t *body = NULL, *a = NULL;
    char rel[64];
    uint64_t secs;
    int r;

    if (ctl_parse_uint(c->args[0], 1, UINT32_MAX, &secs) < 0)
        return usage_error("SECONDS must be a whole number of seconds above 0, not '%s'",
                           c->args[0]);
    body =
        json_pack("{s:I, s:s*}", "seconds", (json_int_t)secs, "feature", opt_value(c, "feature"));
    r = request(c, "POST", "/v1/usage/reserve", body, &a);
    if (r || c->json)
        return r;
    kv("lease", "%s", str(a, "lease"));
    kv_secs("granted", json_object_get(a, "seconds"));
    ctl_format_relative(time(NULL) + (time_t)json_integer_value(json_object_get(a, "expires_in")),
                        time(NULL), rel, sizeof(rel));
    kv("expires", "%s (charged in full unless committed before)", rel);
    return 0;
}

static int cmd_usage_commit(struct ctx *c) {
    json_auto_t *body = NULL, *a = NULL;
    uint64_t used;
    int r;

    if (ctl_parse_uint(c->args[1], 0, INT64_MAX, &used) < 0)
        return usage_error("USED must be a whole number of seconds, not '%s'", c->args[1]);
    body = json_pack("{s:s, s:I}", "lease", c->args[0], "used", (json_int_t)used);
    r = request(c, "POST", "/v1/usage/commit", body, &a);
    if (r || c->json)
        return r;
    kv_secs("charged", json_object_get(a, "charged"));
    kv_secs("returned", json_object_get(a, "returned"));
    return 0;
}

/* ---- the table ------------------------------------------------------------------- */

static const struct command commands[] = {
    {"status",
     "",
     "the license, its validity, seconds left, the TPM",
     "Prints the license state as aligned lines: validity and its reason, type,\n"
     "features, expiry (local time and how far away), usage seconds left (hours and\n"
     "minutes), grace period, offline mode, computer ID and TPM health. Product,\n"
     "license code and customer are shown too when the caller may read the\n"
     "management API. --json prints the agent's GET /v1/status answer.\n",
     0,
     0,
     {NULL},
     cmd_status},
    {"computer-id",
     "",
     "this appliance's computer ID",
     "Prints the computer ID (from GET /v1/status), for the vendor when they ask\n"
     "which machine a license is for. --json prints {\"computer_id\": \"...\"}.\n",
     0,
     0,
     {NULL},
     cmd_computer_id},
    {"check",
     "[--feature F]",
     "is the license valid (for feature F)?",
     "Asks what a service asks before it works (POST /v1/check). Exit status 0 when\n"
     "allowed, 1 when not (the reason on stderr).\n",
     0,
     0,
     {"feature"},
     cmd_check},
    {"activate",
     "LICENSE [--username U] [--email E] [--company C]",
     "activate a license online at the license server",
     "Activates LICENSE (the license code from the vendor) online\n"
     "(POST /v1/management/license) and prints the license. The name, e-mail and\n"
     "company are passed on to the vendor. Needs a license server; without one use\n"
     "'offline request' and 'offline apply'.\n",
     1,
     1,
     {"username", "email", "company"},
     cmd_activate},
    {"deactivate",
     "",
     "remove the license, returning unused seconds",
     "Removes the license online (DELETE /v1/management/license); the unused usage\n"
     "seconds go back to the license server. Refused in offline mode.\n",
     0,
     0,
     {NULL},
     cmd_deactivate},
    {"offline request",
     "LICENSE [--out FILE] [--username U] [--email E] [--company C]",
     "make an activation certificate to send to the vendor",
     "Asks the agent for an activation certificate for LICENSE\n"
     "(POST /v1/management/license/offlineactivation) and writes it to FILE, or to\n"
     "standard output, wrapped at 76 columns: ready to attach to an e-mail. The\n"
     "vendor signs it with tpmlic-vendor sign-activation; apply their answer with\n"
     "'offline apply'. The appliance may reboot in between.\n",
     1,
     1,
     {"out", "username", "email", "company"},
     cmd_offline_request},
    {"offline apply",
     "LICENSE CERT_FILE",
     "apply the license certificate the vendor sent",
     "Reads the license certificate from CERT_FILE ('-': standard input; line ends\n"
     "and spaces are dropped) and applies it to LICENSE\n"
     "(PUT /v1/management/license/offlineactivation). The agent checks the vendor's\n"
     "signature, this machine and its TPM counter; the license is in offline mode\n"
     "from then on.\n",
     2,
     2,
     {NULL},
     cmd_offline_apply},
    {"offline-mode",
     "on|off",
     "stop or resume contact with the license server",
     "Turns offline mode on or off (POST /v1/management/license/offlinemode).\n"
     "Refused when the license does not allow offline mode, and 'off' for a license\n"
     "that was activated offline.\n",
     1,
     1,
     {NULL},
     cmd_offline_mode},
    {"proxy set",
     "HOST PORT [--user U] [--password-file F]",
     "reach the license server through an HTTP proxy",
     "Sets the proxy the agent uses for the license server\n"
     "(POST /v1/management/license/network). The password is never taken from the\n"
     "command line: it is the first line of --password-file F, or, with --user and\n"
     "standard input a terminal, typed at a prompt without echo. The agent never\n"
     "shows it again.\n",
     2,
     2,
     {"user", "password-file"},
     cmd_proxy_set},
    {"proxy clear",
     "",
     "reach the license server directly",
     "Removes the proxy (POST /v1/management/license/network with an empty ip).\n",
     0,
     0,
     {NULL},
     cmd_proxy_clear},
    {"usage reserve",
     "SECONDS [--feature F]",
     "take a lease of usage seconds",
     "Reserves up to SECONDS usage seconds (POST /v1/usage/reserve), as a service\n"
     "billed by time does; the agent may grant fewer when fewer are left. Commit the\n"
     "lease with 'usage commit'; a lease never committed is charged in full when it\n"
     "expires.\n",
     1,
     1,
     {"feature"},
     cmd_usage_reserve},
    {"usage commit",
     "LEASE USED",
     "charge USED seconds of a lease, return the rest",
     "Commits LEASE (POST /v1/usage/commit): USED seconds are charged, the rest of\n"
     "the lease goes back to the pool. Only the caller that took the lease (or root)\n"
     "may commit it.\n",
     2,
     2,
     {NULL},
     cmd_usage_commit},
};

static const char *const groups[] = {"offline", "proxy", "usage"};

static void print_synopsis(FILE *f, const struct command *cmd) {
    fprintf(f, "Usage: " PROG " [--socket PATH] [--json] %s%s%s\n", cmd->name,
            cmd->synopsis[0] ? " " : "", cmd->synopsis);
}

static void print_command_help(const struct command *cmd) {
    print_synopsis(stdout, cmd);
    printf("\n%c%s.\n\n%s", toupper((unsigned char)cmd->summary[0]), cmd->summary + 1, cmd->help);
    printf("\nExit status: 0 success, 1 the agent refused (its message on stderr), 2 usage "
           "error,\n3 the agent cannot be reached (not running, no answer, permission denied).\n");
}

static void print_group_help(FILE *f, const char *group) {
    fprintf(f, "Usage: " PROG " [--socket PATH] [--json] %s COMMAND\n\nCommands:\n", group);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        size_t gl = strlen(group);
        if (!strncmp(commands[i].name, group, gl) && commands[i].name[gl] == ' ')
            fprintf(f, "  %s%s%s\n      %s\n", commands[i].name, commands[i].synopsis[0] ? " " : "",
                    commands[i].synopsis, commands[i].summary);
    }
}

static void print_help(void) {
    printf("Usage: " PROG " [--socket PATH] [--json] [--timeout SECS] COMMAND [ARGS...]\n"
           "\n"
           "The operator's command line for tpmlicd, the licensing agent of this appliance.\n"
           "\n"
           "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        char line[128];
        snprintf(line, sizeof(line), "%s%s%s", commands[i].name, commands[i].synopsis[0] ? " " : "",
                 commands[i].synopsis);
        printf("  %s\n      %s\n", line, commands[i].summary);
    }
    printf("  help [COMMAND]\n      this help, or the help of COMMAND (also: COMMAND --help)\n"
           "\n"
           "Options (before or after the command):\n"
           "  --socket PATH   the agent's socket (default: $" TPMLIC_SOCKET_ENV
           ", else " TPMLIC_DEFAULT_SOCKET ")\n"
           "  --json          print the agent's JSON answer (also for refusals) instead of text\n"
           "  --timeout SECS  give up when the agent has not answered within SECS seconds "
           "(default %d)\n"
           "  -h, --help      help\n"
           "  --version       the version\n"
           "\n"
           "Exit status: 0 success, 1 the agent refused (its message on stderr), 2 usage error,\n"
           "3 the agent cannot be reached (not running, no answer, permission denied).\n",
           DEFAULT_TIMEOUT_SECS);
}

static bool is_group(const char *w) {
    for (size_t i = 0; i < ARRAY_SIZE(groups); i++)
        if (!strcmp(groups[i], w))
            return true;
    return false;
}

/* The command named by words[0] (and words[1] for a group); *ret_words: how
 * many words it took. NULL when there is none. */
static const struct command *find_command(int n, char **words, int *ret_words) {
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        const char *name = commands[i].name, *sp = strchr(name, ' ');
        if (!sp && n >= 1 && !strcmp(name, words[0])) {
            *ret_words = 1;
            return &commands[i];
        }
        if (sp && n >= 2 && (size_t)(sp - name) == strlen(words[0]) &&
            !strncmp(name, words[0], (size_t)(sp - name)) && !strcmp(sp + 1, words[1])) {
            *ret_words = 2;
            return &commands[i];
        }
    }
    return NULL;
}

/* The options every command takes. 1: consumed (and *i advanced), 0: not
 * one of them, or an exit status (>= 2 via usage_error) as a negative. */
static int global_option(struct ctx *c, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v = NULL;
    size_t nl;

    if (!strcmp(a, "--json")) {
        c->json = true;
        return 1;
    }
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "--socket" : "--timeout";
        nl = strlen(name);
        if (strncmp(a, name, nl) || (a[nl] != '\0' && a[nl] != '='))
            continue;
        if (a[nl] == '=')
            v = a + nl + 1;
        else if (*i + 1 < argc)
            v = argv[++*i];
        else
            return -usage_error("%s needs a value", name);
        if (k == 0) {
            if (!*v)
                return -usage_error("--socket needs a path");
            c->socket = v;
        } else {
            uint64_t t;
            if (ctl_parse_uint(v, 1, 86400, &t) < 0)
                return -usage_error("--timeout takes whole seconds from 1 to 86400, not '%s'", v);
            c->timeout_secs = (int)t;
        }
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct ctx c = {.timeout_secs = DEFAULT_TIMEOUT_SECS};
    const struct command *cmd;
    int i, r, used = 0;
    bool help = false;

    /* options before the command */
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help();
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--version")) {
            printf(PROG " %s (libtpmlic %s)\n", TPMLIC_VERSION, tpmlic_version());
            return EXIT_OK;
        }
        r = global_option(&c, argc, argv, &i);
        if (r < 0)
            return -r;
        if (r == 0)
            return usage_error("unknown option '%s'; see " PROG " --help", argv[i]);
    }
    if (i >= argc) {
        fprintf(stderr, "Usage: " PROG " [--socket PATH] [--json] COMMAND [ARGS...]\n"
                        "See " PROG " --help for the commands.\n");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[i], "help")) {
        i++;
        if (i >= argc) {
            print_help();
            return EXIT_OK;
        }
        cmd = find_command(argc - i, argv + i, &used);
        if (cmd) {
            print_command_help(cmd);
            return EXIT_OK;
        }
        if (is_group(argv[i])) {
            print_group_help(stdout, argv[i]);
            return EXIT_OK;
        }
        return usage_error("no command '%s'; see " PROG " --help", argv[i]);
    }
    cmd = find_command(argc - i, argv + i, &used);
    if (!cmd) {
        if (is_group(argv[i])) {
            bool asked =
                i + 1 < argc && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h"));
            if (asked) {
                print_group_help(stdout, argv[i]);
                return EXIT_OK;
            }
            if (i + 1 < argc)
                fprintf(stderr, PROG ": no command '%s %s'\n", argv[i], argv[i + 1]);
            else
                fprintf(stderr, PROG ": '%s' needs a command\n", argv[i]);
            print_group_help(stderr, argv[i]);
            return EXIT_USAGE;
        }
        return usage_error("unknown command '%s'; see " PROG " --help", argv[i]);
    }
    c.cmd = cmd;
    /* the command's arguments and options, in any order; "--" ends options */
    for (i += used; i < argc; i++) {
        const char *a = argv[i];
        bool matched = false;
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) {
                if (c.nargs >= cmd->max_args)
                    return usage_error("%s: too many arguments", cmd->name);
                c.args[c.nargs++] = argv[i];
            }
            break;
        }
        if (a[0] != '-' || !a[1]) {
            if (c.nargs >= cmd->max_args) {
                fprintf(stderr, PROG ": %s: too many arguments ('%s')\n", cmd->name, a);
                print_synopsis(stderr, cmd);
                return EXIT_USAGE;
            }
            c.args[c.nargs++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help = true;
            continue;
        }
        r = global_option(&c, argc, argv, &i);
        if (r < 0)
            return -r;
        if (r > 0)
            continue;
        for (int k = 0; k < MAX_OPTS && cmd->opts[k]; k++) {
            size_t nl = strlen(cmd->opts[k]);
            if (strncmp(a, "--", 2) || strncmp(a + 2, cmd->opts[k], nl) ||
                (a[2 + nl] != '\0' && a[2 + nl] != '='))
                continue;
            if (a[2 + nl] == '=')
                c.opt[k] = a + 3 + nl;
            else if (i + 1 < argc)
                c.opt[k] = argv[++i];
            else
                return usage_error("%s: --%s needs a value", cmd->name, cmd->opts[k]);
            matched = true;
            break;
        }
        if (!matched) {
            fprintf(stderr, PROG ": %s: unknown option '%s'\n", cmd->name, a);
            print_synopsis(stderr, cmd);
            return EXIT_USAGE;
        }
    }
    if (help) {
        print_command_help(cmd);
        return EXIT_OK;
    }
    if (c.nargs < cmd->min_args) {
        fprintf(stderr, PROG ": %s: missing arguments\n", cmd->name);
        print_synopsis(stderr, cmd);
        return EXIT_USAGE;
    }
    r = cmd->run(&c);
    tpmlic_close(c.h);
    if (fflush(stdout) != 0 && r == EXIT_OK) {
        fprintf(stderr, PROG ": writing the output failed: %s\n", strerror(errno));
        r = EXIT_REFUSED;
    }
    return r;
}
