/* tpmlicctl: the operator's command line for tpmlicd (SPEC section 9,
 * docs/tpmlicctl.md). One table of commands, dispatched through the verb
 * table of common/verbs.h (two-word commands as groups) and each reading
 * its options with getopt_long; each command is one function that sends
 * one or two requests through libtpmlic and prints the answer as aligned
 * text, or the agent's JSON with --json. The agent's refusals are read as
 * the library reads them (client/answer.c).
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
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/answer.h"
#include "client/ctl_format.h"
#include "common/json.h"
#include "common/macro.h"
#include "common/text.h"
#include "common/timefmt.h"
#include "common/verbs.h"
#include "tpmlic/client.h"

#define PROG "tpmlicctl"

enum {
    EXIT_OK = VERB_EXIT_OK,
    EXIT_REFUSED = VERB_EXIT_FAILED,
    EXIT_USAGE = VERB_EXIT_USAGE,
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
    /* the command's own options (getopt_long; .val indexes ctx.opt), or NULL */
    const struct option *opts;
    int (*run)(struct ctx *c);
};

struct ctx {
    const struct command *cmd;
    char path[64];      /* "tpmlicctl offline request", for usage errors */
    const char *socket; /* NULL: $TPMLIC_SOCKET, else the default */
    bool json;
    int timeout_secs;
    bool timeout_given;
    const char *opt[MAX_OPTS]; /* values of cmd->opts ("" for a flag), NULL when not given */
    char **args;
    int nargs;
    struct tpmlic *h;
};

/* "tpmlicctl COMMAND: message (see 'tpmlicctl COMMAND --help')", exit 2 */
#define usage_error(c, ...) verb_usage_error((c)->path, __VA_ARGS__)

static const char *opt_value(const struct ctx *c, const char *name) {
    for (const struct option *o = c->cmd->opts; o && o->name; o++)
        if (!strcmp(o->name, name))
            return c->opt[o->val];
    return NULL;
}

/* A whole number in [min, max] (common/text.h's strict digits). */
static int parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
    uint64_t v;
    if (parse_uint_strict(s, max, &v) < 0 || v < min)
        return -EINVAL;
    *ret = v;
    return 0;
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

/* Why the agent gave no answer, in one line; *ret_hint: what to do about
 * it (may be ""). */
static void describe_unreachable(const struct ctx *c, int r, const struct tpmlic_error *e,
                                 int timeout_secs, char *buf, size_t len, const char **ret_hint) {
    const char *path = socket_shown(c);
    *ret_hint = "";
    switch (-r) {
    case ENOENT:
        snprintf(buf, len, "tpmlicd is not running: there is no socket %s", path);
        *ret_hint = "start it: systemctl start tpmlicd; or name its socket with --socket PATH "
                    "or TPMLIC_SOCKET";
        break;
    case ECONNREFUSED:
        snprintf(buf, len, "tpmlicd is not running: nothing listens on %s", path);
        *ret_hint = "start it: systemctl start tpmlicd";
        break;
    case EACCES:
    case EPERM:
        snprintf(buf, len,
                 "permission denied on the socket %s: run as root, or as a member of group tpmlic "
                 "(status, check, usage) and group tpmlic-admin (management)",
                 path);
        break;
    case ETIMEDOUT:
        snprintf(buf, len, "tpmlicd at %s did not answer within %d s: %s", path, timeout_secs,
                 e->message);
        break;
    default:
        snprintf(buf, len, "cannot reach tpmlicd at %s: %s", path, e->message);
    }
}

/* No answer from the agent: a message that says what to do; exit 3. */
static int unreachable(const struct ctx *c, int r, const struct tpmlic_error *e) {
    char why[700];
    const char *hint;
    describe_unreachable(c, r, e, c->timeout_secs, why, sizeof(why), &hint);
    fprintf(stderr, PROG ": %s\n", why);
    if (hint[0])
        fprintf(stderr, "  (%s)\n", hint);
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
    char msg[sizeof(e.message)];
    json_t *j = NULL;
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
    r = client_answer_error(status, answer, strlen(answer), msg, sizeof(msg));
    if (r < 0) {
        if (quiet)
            return r == -EACCES ? EXIT_UNREACHABLE : EXIT_REFUSED;
        if (c->json)
            printf("%s\n", answer);
        fprintf(stderr, PROG ": %s\n", msg);
        if (r == -EACCES) {
            fprintf(stderr, "  (run as root, or as a member of group tpmlic-admin for management "
                            "commands or group tpmlic for status, check and usage)\n");
            return EXIT_UNREACHABLE;
        }
        return EXIT_REFUSED;
    }
    if (client_decode_object(answer, strlen(answer), &j, msg, sizeof(msg)) < 0) {
        fprintf(stderr, PROG ": %s\n", msg);
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
    if (rfc3339_parse(json_string_value(v), &t) < 0) {
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

/* {"license": LICENSE, "username", "email_address", "company_name"}: what
 * activate and offline request pass on to the vendor. */
static json_t *license_body(const struct ctx *c) {
    return json_pack("{s:s, s:s*, s:s*, s:s*}", "license", c->args[0], "username",
                     opt_value(c, "username"), "email_address", opt_value(c, "email"),
                     "company_name", opt_value(c, "company"));
}

static int cmd_activate(struct ctx *c) {
    json_auto_t *body = license_body(c);
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
    json_auto_t *body = license_body(c);
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

static int cmd_offline_apply(struct ctx *c) {
    _cleanup_free_ char *cert = NULL;
    json_auto_t *body = NULL, *m = NULL;
    char why[300];
    size_t n;
    int r;

    /* the vendor's file may be wrapped by mail: neither alphabet of a
     * certificate holds white space, and the reader drops it */
    r = read_certificate_text(c->args[1], FILE_MAX, "a license certificate", &cert, &n, why,
                              sizeof(why));
    if (r == -ENODATA || r == -EFBIG || r == -ENOMEM) {
        fprintf(stderr, PROG ": %s\n", why);
        return EXIT_USAGE;
    }
    if (r < 0) {
        fprintf(stderr, PROG ": cannot read the license certificate %s: %s\n", c->args[1],
                strerror(-r));
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
        return usage_error(c, "offline-mode takes 'on' or 'off', not '%s'", c->args[0]);
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
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        ssize_t len = f ? getline(&pw, &n, f) : -1;
        if (!f || (len < 0 && ferror(f))) {
            fprintf(stderr, PROG ": cannot read the password file %s: %s\n", file, strerror(errno));
            return EXIT_USAGE;
        }
        if (len > FILE_MAX) {
            fprintf(stderr, PROG ": the password file %s has a first line over 64 KiB\n", file);
            return EXIT_USAGE;
        }
        if (pw)
            pw[strcspn(pw, "\r\n")] = '\0';
        if (!pw || !*pw) {
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

    if (parse_number(c->args[1], 1, 65535, &port) < 0)
        return usage_error(c, "the port must be a number from 1 to 65535, not '%s'", c->args[1]);
    if (pwfile && !user)
        return usage_error(c, "--password-file needs --user");
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

    if (parse_number(c->args[0], 1, UINT32_MAX, &secs) < 0)
        return usage_error(c, "SECONDS must be a whole number of seconds above 0, not '%s'",
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

    if (parse_number(c->args[1], 0, INT64_MAX, &used) < 0)
        return usage_error(c, "USED must be a whole number of seconds, not '%s'", c->args[1]);
    body = json_pack("{s:s, s:I}", "lease", c->args[0], "used", (json_int_t)used);
    r = request(c, "POST", "/v1/usage/commit", body, &a);
    if (r || c->json)
        return r;
    kv_secs("charged", json_object_get(a, "charged"));
    kv_secs("returned", json_object_get(a, "returned"));
    return 0;
}

/* ---- wait ------------------------------------------------------------------------ */

#define WAIT_DELAY_FIRST_MS 100  /* the first retry; each next one twice as late ... */
#define WAIT_DELAY_MAX_MS   1000 /* ... up to once a second */
#define WAIT_CALL_MS        5000 /* one check, at most */
#define WAIT_DENIED_MS      5000 /* a socket refused for this long is no start-up race */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* How one attempt of wait ended. */
enum wait_state {
    WAIT_ALLOWED,     /* the license is valid (and has the feature) */
    WAIT_NOT_YET,     /* the agent answered: not (yet) */
    WAIT_UNREACHABLE, /* no answer: not started yet, restarting, busy */
    WAIT_DENIED,      /* the caller may not use the agent */
    WAIT_REFUSED,     /* the agent refused the question itself (400, 404, ...) */
};

/* One POST /v1/check within call_ms. why: the agent's reason or why there
 * was no answer; *ret_answer: the agent's answer (malloc()ed) when one
 * came. */
static enum wait_state wait_attempt(struct ctx *c, const char *body, uint64_t call_ms, char *why,
                                    size_t whylen, char **ret_answer) {
    struct tpmlic_error e = {0};
    int secs = (int)((call_ms + 999) / 1000), status = 0, r;
    const char *hint;

    if (!c->h) {
        r = tpmlic_connect(c->socket, &c->h, &e);
        if (r < 0) {
            describe_unreachable(c, r, &e, secs, why, whylen, &hint);
            return r == -EACCES || r == -EPERM ? WAIT_DENIED : WAIT_UNREACHABLE;
        }
    }
    tpmlic_set_timeout(c->h, (int)call_ms);
    r = tpmlic_request(c->h, "POST", "/v1/check", body, &status, ret_answer, &e);
    if (r < 0) {
        describe_unreachable(c, r, &e, secs, why, whylen, &hint);
        return r == -EACCES || r == -EPERM ? WAIT_DENIED : WAIT_UNREACHABLE;
    }
    r = client_answer_error(status, *ret_answer, strlen(*ret_answer), why, whylen);
    switch (r) {
    case 0:
        snprintf(why, whylen, "the license is valid");
        return WAIT_ALLOWED;
    case -EPERM: /* not valid, or not this feature: a license may come */
        return WAIT_NOT_YET;
    case -EACCES:
        return WAIT_DENIED;
    case -EHOSTDOWN: /* the agent is there but not ready, or in trouble */
    case -EIO:
    case -EAGAIN:
        return WAIT_UNREACHABLE;
    default:
        return WAIT_REFUSED;
    }
}

/* Asks until the license is valid (with the feature): SPEC section 9, for
 * ExecStartPre= of services that start beside the agent. docs/tpmlicctl.md
 * says what ends the wait and with which exit status. */
static int cmd_wait(struct ctx *c) {
    const char *feature = opt_value(c, "feature");
    bool progress = opt_value(c, "progress") || isatty(STDERR_FILENO);
    uint64_t start = now_ms(), deadline = 0, delay = WAIT_DELAY_FIRST_MS, denied_since = 0;
    json_auto_t *req = json_pack("{s:s*}", "feature", feature);
    _cleanup_free_ char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    _cleanup_free_ char *answer = NULL;
    char why[700], shown[700] = "";
    enum wait_state st;

    if (!body) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_REFUSED;
    }
    if (c->timeout_given)
        deadline = start + (uint64_t)c->timeout_secs * 1000u;
    for (;;) {
        uint64_t now = now_ms(), call_ms = WAIT_CALL_MS;

        if (deadline && deadline - now < call_ms)
            call_ms = deadline > now ? deadline - now : 1;
        free(TAKE_PTR(answer));
        st = wait_attempt(c, body, call_ms, why, sizeof(why), &answer);
        now = now_ms();
        /* the agent's own 403 is final; a socket file the caller may not
         * open may still be on its way to its mode and group */
        denied_since = st != WAIT_DENIED ? 0 : denied_since ? denied_since : now;
        if (st == WAIT_ALLOWED || st == WAIT_REFUSED ||
            (st == WAIT_DENIED && (answer || now - denied_since >= WAIT_DENIED_MS)) ||
            (deadline && now >= deadline))
            break;
        if (progress && strcmp(why, shown) != 0) {
            fprintf(stderr, PROG ": waiting: %s\n", why);
            snprintf(shown, sizeof(shown), "%s", why);
        }
        sleep_ms(deadline && deadline - now < delay ? deadline - now : delay);
        delay = delay * 2 > WAIT_DELAY_MAX_MS ? WAIT_DELAY_MAX_MS : delay * 2;
    }
    if (c->json && answer)
        printf("%s\n", answer);
    switch (st) {
    case WAIT_ALLOWED:
        if (progress)
            fprintf(stderr, PROG ": %s%s%s%s (after %.1f s)\n", why,
                    feature ? " and includes feature '" : "", feature ? feature : "",
                    feature ? "'" : "", (double)(now_ms() - start) / 1000);
        return EXIT_OK;
    case WAIT_REFUSED:
        fprintf(stderr, PROG ": %s\n", why);
        return EXIT_REFUSED;
    case WAIT_DENIED:
        fprintf(stderr, PROG ": %s\n", why);
        return EXIT_UNREACHABLE;
    case WAIT_UNREACHABLE:
        fprintf(stderr, PROG ": gave up after %d s: %s\n", c->timeout_secs, why);
        return EXIT_UNREACHABLE;
    default:
        fprintf(stderr, PROG ": gave up after %d s: %s\n", c->timeout_secs, why);
        return EXIT_REFUSED;
    }
}

/* ---- the table ------------------------------------------------------------------- */

/* Each command's own options; .val indexes ctx.opt. */
static const struct option feature_opts[] = {{"feature", required_argument, NULL, 0}, {0}};
static const struct option wait_opts[] = {
    {"feature", required_argument, NULL, 0}, {"progress", no_argument, NULL, 1}, {0}};
static const struct option operator_opts[] = {{"username", required_argument, NULL, 0},
                                              {"email", required_argument, NULL, 1},
                                              {"company", required_argument, NULL, 2},
                                              {0}};
static const struct option request_opts[] = {{"out", required_argument, NULL, 0},
                                             {"username", required_argument, NULL, 1},
                                             {"email", required_argument, NULL, 2},
                                             {"company", required_argument, NULL, 3},
                                             {0}};
static const struct option proxy_opts[] = {
    {"user", required_argument, NULL, 0}, {"password-file", required_argument, NULL, 1}, {0}};

/* The options of the whole program, before or after the command. */
enum { OPT_SOCKET = 0x100, OPT_JSON, OPT_TIMEOUT, OPT_HELP, OPT_VERSION };
static const struct option global_opts[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},   {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},       {0}};

static const struct command commands[] = {
    {"status", "", "the license, its validity, seconds left, the TPM",
     "Prints the license state as aligned lines: validity and its reason, type,\n"
     "features, expiry (local time and how far away), usage seconds left (hours and\n"
     "minutes), grace period, offline mode, computer ID and TPM health. Product,\n"
     "license code and customer are shown too when the caller may read the\n"
     "management API. --json prints the agent's GET /v1/status answer.\n",
     0, 0, NULL, cmd_status},
    {"computer-id", "", "this appliance's computer ID",
     "Prints the computer ID (from GET /v1/status), for the vendor when they ask\n"
     "which machine a license is for. --json prints {\"computer_id\": \"...\"}.\n",
     0, 0, NULL, cmd_computer_id},
    {"check", "[--feature F]", "is the license valid (for feature F)?",
     "Asks what a service asks before it works (POST /v1/check). Exit status 0 when\n"
     "allowed, 1 when not (the reason on stderr).\n",
     0, 0, feature_opts, cmd_check},
    {"wait", "[--timeout S] [--feature F] [--progress]",
     "wait until the license is valid (for feature F)",
     "Asks the agent (POST /v1/check) until the license is valid and, with\n"
     "--feature, includes F; made for ExecStartPre= of a service that starts at boot\n"
     "beside the agent. Waits while the socket does not exist yet, nobody listens on\n"
     "it or the agent does not answer, and while the license is missing, not valid\n"
     "or lacks the feature: every 100 ms at first, then less often, up to once a\n"
     "second. --timeout S gives up after S seconds in all (default: no limit; under\n"
     "systemd the unit's TimeoutStartSec= ends it). Progress goes to stderr when it\n"
     "is a terminal or with --progress (for the journal). Exit status: 0 once\n"
     "allowed; when --timeout passes, 1 with the agent's last reason, or 3 when the\n"
     "agent was not answering; 3 at once when the agent refuses the caller\n"
     "(permission denied); 1 at once when it refuses the question (a bad feature\n"
     "name).\n",
     0, 0, wait_opts, cmd_wait},
    {"activate", "LICENSE [--username U] [--email E] [--company C]",
     "activate a license online at the license server",
     "Activates LICENSE (the license code from the vendor) online\n"
     "(POST /v1/management/license) and prints the license. The name, e-mail and\n"
     "company are passed on to the vendor. Needs a license server; without one use\n"
     "'offline request' and 'offline apply'.\n",
     1, 1, operator_opts, cmd_activate},
    {"deactivate", "", "remove the license, returning unused seconds",
     "Removes the license online (DELETE /v1/management/license); the unused usage\n"
     "seconds go back to the license server. Refused in offline mode.\n",
     0, 0, NULL, cmd_deactivate},
    {"offline request", "LICENSE [--out FILE] [--username U] [--email E] [--company C]",
     "make an activation certificate to send to the vendor",
     "Asks the agent for an activation certificate for LICENSE\n"
     "(POST /v1/management/license/offlineactivation) and writes it to FILE, or to\n"
     "standard output, wrapped at 76 columns: ready to attach to an e-mail. The\n"
     "vendor signs it with tpmlic-vendor sign-activation; apply their answer with\n"
     "'offline apply'. The appliance may reboot in between.\n",
     1, 1, request_opts, cmd_offline_request},
    {"offline apply", "LICENSE CERT_FILE", "apply the license certificate the vendor sent",
     "Reads the license certificate from CERT_FILE ('-': standard input; line ends\n"
     "and spaces are dropped) and applies it to LICENSE\n"
     "(PUT /v1/management/license/offlineactivation). The agent checks the vendor's\n"
     "signature, this machine and its TPM counter; the license is in offline mode\n"
     "from then on.\n",
     2, 2, NULL, cmd_offline_apply},
    {"offline-mode", "on|off", "stop or resume contact with the license server",
     "Turns offline mode on or off (POST /v1/management/license/offlinemode).\n"
     "Refused when the license does not allow offline mode, and 'off' for a license\n"
     "that was activated offline.\n",
     1, 1, NULL, cmd_offline_mode},
    {"proxy set", "HOST PORT [--user U] [--password-file F]",
     "reach the license server through an HTTP proxy",
     "Sets the proxy the agent uses for the license server\n"
     "(POST /v1/management/license/network). The password is never taken from the\n"
     "command line: it is the first line of --password-file F, or, with --user and\n"
     "standard input a terminal, typed at a prompt without echo. The agent never\n"
     "shows it again.\n",
     2, 2, proxy_opts, cmd_proxy_set},
    {"proxy clear", "", "reach the license server directly",
     "Removes the proxy (POST /v1/management/license/network with an empty ip).\n", 0, 0, NULL,
     cmd_proxy_clear},
    {"usage reserve", "SECONDS [--feature F]", "take a lease of usage seconds",
     "Reserves up to SECONDS usage seconds (POST /v1/usage/reserve), as a service\n"
     "billed by time does; the agent may grant fewer when fewer are left. Commit the\n"
     "lease with 'usage commit'; a lease never committed is charged in full when it\n"
     "expires.\n",
     1, 1, feature_opts, cmd_usage_reserve},
    {"usage commit", "LEASE USED", "charge USED seconds of a lease, return the rest",
     "Commits LEASE (POST /v1/usage/commit): USED seconds are charged, the rest of\n"
     "the lease goes back to the pool. Only the caller that took the lease (or root)\n"
     "may commit it.\n",
     2, 2, NULL, cmd_usage_commit},
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

static void print_help(FILE *f) {
    fprintf(f, "Usage: " PROG " [--socket PATH] [--json] [--timeout SECS] COMMAND [ARGS...]\n"
               "\n"
               "The operator's command line for tpmlicd, the licensing agent of this appliance.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        char line[128];
        snprintf(line, sizeof(line), "%s%s%s", commands[i].name, commands[i].synopsis[0] ? " " : "",
                 commands[i].synopsis);
        fprintf(f, "  %s\n      %s\n", line, commands[i].summary);
    }
    fprintf(f,
            "  help [COMMAND]\n      this help, or the help of COMMAND (also: COMMAND --help)\n"
            "\n"
            "Options (before or after the command):\n"
            "  --socket PATH   the agent's socket (default: $" TPMLIC_SOCKET_ENV
            ", else " TPMLIC_DEFAULT_SOCKET ")\n"
            "  --json          print the agent's JSON answer (also for refusals) instead of text\n"
            "  --timeout SECS  give up when the agent has not answered within SECS seconds "
            "(default %d;\n"
            "                  for wait: give up waiting after SECS seconds in all)\n"
            "  -h, --help      help\n"
            "  --version       the version\n"
            "\n"
            "Exit status: 0 success, 1 the agent refused (its message on stderr), 2 usage error,\n"
            "3 the agent cannot be reached (not running, no answer, permission denied).\n",
            DEFAULT_TIMEOUT_SECS);
}

/* A global option, wherever it came: 0, or the exit status of a usage error. */
static int global_option(struct ctx *c, const char *path, int opt, const char *value) {
    uint64_t t;
    switch (opt) {
    case OPT_SOCKET:
        if (!*value)
            return verb_usage_error(path, "--socket needs a path");
        c->socket = value;
        return 0;
    case OPT_JSON:
        c->json = true;
        return 0;
    case OPT_TIMEOUT:
        if (parse_number(value, 1, 86400, &t) < 0)
            return verb_usage_error(path, "--timeout takes whole seconds from 1 to 86400, not '%s'",
                                    value);
        c->timeout_secs = (int)t;
        c->timeout_given = true;
        return 0;
    }
    return 0;
}

static bool is_help(const char *a) {
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* Runs cmd on its words argv[0..argc) (argv[0]: the command's last word):
 * help when asked for anywhere before "--", else its options and its
 * arguments checked against the table, then the command. */
static int run_command(struct ctx *c, const struct command *cmd, int argc, char **argv) {
    struct option opts[MAX_OPTS + ARRAY_SIZE(global_opts)];
    size_t n = 0;
    int o, state = 0, rc = 0;

    c->cmd = cmd;
    snprintf(c->path, sizeof(c->path), PROG " %s", cmd->name);
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (is_help(argv[i])) {
            print_command_help(cmd);
            return EXIT_OK;
        }
    for (const struct option *p = cmd->opts; p && p->name; p++)
        opts[n++] = *p;
    for (const struct option *p = global_opts; p->name; p++)
        if (p->val != OPT_VERSION && p->val != OPT_HELP)
            opts[n++] = *p;
    opts[n] = (struct option){0};
    while ((o = verb_getopt(argc, argv, c->path, opts, true, &state, &rc)) != -1) {
        if (o >= OPT_SOCKET)
            rc = global_option(c, c->path, o, optarg);
        else
            c->opt[o] = optarg ? optarg : "";
        if (rc)
            return rc;
    }
    if (rc)
        return rc;
    c->args = argv + optind;
    c->nargs = argc - optind;
    if (c->nargs > cmd->max_args)
        return usage_error(c, "too many arguments ('%s')", c->args[cmd->max_args]);
    if (c->nargs < cmd->min_args)
        return usage_error(c, "missing arguments");
    return cmd->run(c);
}

/* The verb tables, made from commands[] at start: the one-word commands and
 * the groups at the top, each group's commands below it. */
static struct verb top_verbs[ARRAY_SIZE(commands) + ARRAY_SIZE(groups) + 1];
static struct verb group_verbs[ARRAY_SIZE(groups)][ARRAY_SIZE(commands) + 1];
static char *group_help[ARRAY_SIZE(groups)], *top_help;

static int run_in(const char *group, int argc, char **argv, void *userdata) {
    char name[64];
    snprintf(name, sizeof(name), "%s%s%s", group, group[0] ? " " : "", argv[0]);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name))
            return run_command(userdata, &commands[i], argc, argv);
    return verb_usage_error(PROG, "unknown command '%s'", name); /* not reached */
}

static int run_top(int argc, char **argv, void *userdata) {
    return run_in("", argc, argv, userdata);
}
static int run_offline(int argc, char **argv, void *userdata) {
    return run_in("offline", argc, argv, userdata);
}
static int run_proxy(int argc, char **argv, void *userdata) {
    return run_in("proxy", argc, argv, userdata);
}
static int run_usage(int argc, char **argv, void *userdata) {
    return run_in("usage", argc, argv, userdata);
}

static int build_verbs(void) {
    static int (*const runners[ARRAY_SIZE(groups)])(int, char **, void *) = {run_offline, run_proxy,
                                                                             run_usage};
    size_t ntop = 0, nsub[ARRAY_SIZE(groups)] = {0};
    size_t len;
    FILE *f;

    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        const char *sp = strchr(commands[i].name, ' ');
        if (!sp) {
            top_verbs[ntop++] = (struct verb){.name = commands[i].name, .run = run_top};
            continue;
        }
        for (size_t g = 0; g < ARRAY_SIZE(groups); g++)
            if (strlen(groups[g]) == (size_t)(sp - commands[i].name) &&
                !strncmp(commands[i].name, groups[g], strlen(groups[g])))
                group_verbs[g][nsub[g]++] = (struct verb){.name = sp + 1, .run = runners[g]};
    }
    for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
        f = open_memstream(&group_help[g], &len);
        if (!f)
            return -ENOMEM;
        print_group_help(f, groups[g]);
        if (fclose(f) != 0)
            return -ENOMEM;
        top_verbs[ntop++] =
            (struct verb){.name = groups[g], .group = group_verbs[g], .group_help = group_help[g]};
    }
    f = open_memstream(&top_help, &len);
    if (!f)
        return -ENOMEM;
    print_help(f);
    return fclose(f) == 0 ? 0 : -ENOMEM;
}

static void free_verbs(void) {
    for (size_t g = 0; g < ARRAY_SIZE(groups); g++)
        free(group_help[g]);
    free(top_help);
}

/* How many words of argv (argv[0] included) are the options before the
 * command: words starting with '-', an option's value after it when the
 * option takes one, a "--" ending them. */
static int leading_options(int argc, char **argv) {
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        bool takes_value = false;
        if (!strcmp(argv[i], "--"))
            return i + 1;
        for (const struct option *p = global_opts; p->name; p++)
            /* an abbreviation too: verb_getopt then names it as unknown */
            if (p->has_arg == required_argument && !strncmp(argv[i], "--", 2) && argv[i][2] &&
                !strchr(argv[i], '=') && !strncmp(p->name, argv[i] + 2, strlen(argv[i] + 2)))
                takes_value = true;
        i += takes_value ? 2 : 1;
    }
    return i < argc ? i : argc;
}

int main(int argc, char **argv) {
    struct ctx c = {.timeout_secs = DEFAULT_TIMEOUT_SECS};
    char version[64], *help_argv[8];
    int n, o, state = 0, r = 0;

    if (build_verbs() < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_REFUSED;
    }
    snprintf(version, sizeof(version), PROG " %s (libtpmlic %s)", TPMLIC_VERSION, tpmlic_version());
    /* the options before the command */
    n = leading_options(argc, argv);
    for (int i = 1; i < n; i++)
        if (!strcmp(argv[i], "-h")) {
            fputs(top_help, stdout);
            goto out;
        }
    while ((o = verb_getopt(n, argv, PROG, global_opts, false, &state, &r)) != -1) {
        if (o == OPT_HELP) {
            fputs(top_help, stdout);
            goto out;
        }
        if (o == OPT_VERSION) {
            printf("%s\n", version);
            goto out;
        }
        r = global_option(&c, PROG, o, optarg);
        if (r)
            goto out;
    }
    if (r)
        goto out;
    argc -= n;
    argv += n;
    if (argc == 0) {
        fprintf(stderr, "Usage: " PROG " [--socket PATH] [--json] COMMAND [ARGS...]\n"
                        "See " PROG " --help for the commands.\n");
        r = EXIT_USAGE;
        goto out;
    }
    /* "help A B" is "A B --help": the help of a command or of a group */
    if (!strcmp(argv[0], "help") && argc > 1) {
        if (argc - 1 > (int)ARRAY_SIZE(help_argv) - 2) {
            r = verb_usage_error(PROG, "help takes a command");
            goto out;
        }
        for (int i = 1; i < argc; i++)
            help_argv[i - 1] = argv[i];
        help_argv[argc - 1] = "--help";
        help_argv[argc] = NULL;
        argv = help_argv;
    }
    r = verb_dispatch(PROG, top_verbs, top_help, version, argc, argv, &c);
    tpmlic_close(c.h);
    if (fflush(stdout) != 0 && r == EXIT_OK) {
        fprintf(stderr, PROG ": writing the output failed: %s\n", strerror(errno));
        r = EXIT_REFUSED;
    }
out:
    free_verbs();
    return r;
}
