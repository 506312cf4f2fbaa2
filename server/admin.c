/* tpmlic-server's admin commands: licenses (create, list, show, update,
 * suspend, resume, delete), offline signing, activations (list, show,
 * revoke, transfer, clear-flags, cull), API tokens, webhooks, the audit
 * log, and the route table. Each command is one entry of a table: its
 * options (verb_getopt), what it needs, the one call to ops.c it makes
 * (the operations the admin API runs too) and how it prints the result:
 * aligned text, or with --json the JSON document the API answers.
 * docs/server.md describes each command. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/licensecode.h"
#include "common/macro.h"
#include "common/text.h"
#include "common/timefmt.h"
#include "server/api.h"
#include "server/cli.h"
#include "server/server.h"

#define INPUT_MAX (CERT_ACTIVATION_MAX + 4096)
#define P         SRV_PROG " "

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)

enum {
    O_DB = 0x100,
    O_JSON,
    O_HELP,
    O_CODE,
    O_PRODUCT,
    O_CUSTOMER,
    O_TYPE,
    O_EXPIRY,
    O_FEATURES,
    O_ALLOCATED,
    O_CACHE,
    O_TICK,
    O_MAXACT,
    O_OFFLINE,
    O_NO_OFFLINE,
    O_MAXTRANSFERS,
    O_CULLDAYS,
    O_POOLALERT,
    O_TPMTRUST,
    O_EKCADIR,
    O_FORCE,
    O_KEY,
    O_IN,
    O_GRANTED,
    O_LICENSE,
    O_STATE,
    O_KIND,
    O_COMPUTER,
    O_FLAGGED,
    O_NOTSEEN,
    O_LIMIT,
    O_OFFSET,
    O_TO,
    O_DRYRUN,
    O_SCOPE,
    O_NAME,
    O_URL,
    O_EVENTS,
    O_DESCRIPTION,
    O_WEBHOOK,
    O_SINCE,
    O_UNTIL,
    O_ACTOR,
    O_ACTION,
    O_TARGET,
    O_BEFORE,
};

#define OPT(name, has_arg, val)                                                                    \
    { name, has_arg, NULL, val }
#define OPT_DB   OPT("db", required_argument, O_DB)
#define OPT_JSON OPT("json", no_argument, O_JSON)
#define OPT_HELP OPT("help", no_argument, O_HELP)

/* What one command was given. */
struct args {
    const char *path; /* "tpmlic-server license create", for messages */
    const char *db, *key, *in, *granted, *to, *scope, *name, *url, *events, *description;
    const char *license, *state, *kind, *computer, *notseen, *limit, *offset, *webhook;
    const char *since, *until, *actor, *action, *target, *before, *ek_ca_dir;
    bool json, force, flagged, dry_run;
    struct srv_license_input terms;
    const char *positional;
    struct cert_license feature_list; /* --features split; terms.features point into it */
    /* what a command's check() prepared for its operation */
    EVP_PKEY *vendor_key;
    char *text;
    size_t len;
    uint64_t n1, n2, n3;
    enum srv_scope token_scope;
    const char *event_list[16];
    size_t nevents;
    char *event_text;
};

static void args_clear(struct args *a) {
    EVP_PKEY_free(a->vendor_key);
    free(a->text);
    free(a->event_text);
}

/* Options that are text as given: where each goes. */
static const struct {
    int code;
    size_t off;
} text_opts[] = {
    {O_DB, offsetof(struct args, db)},
    {O_KEY, offsetof(struct args, key)},
    {O_IN, offsetof(struct args, in)},
    {O_GRANTED, offsetof(struct args, granted)},
    {O_LICENSE, offsetof(struct args, license)},
    {O_STATE, offsetof(struct args, state)},
    {O_KIND, offsetof(struct args, kind)},
    {O_COMPUTER, offsetof(struct args, computer)},
    {O_NOTSEEN, offsetof(struct args, notseen)},
    {O_LIMIT, offsetof(struct args, limit)},
    {O_OFFSET, offsetof(struct args, offset)},
    {O_TO, offsetof(struct args, to)},
    {O_SCOPE, offsetof(struct args, scope)},
    {O_NAME, offsetof(struct args, name)},
    {O_URL, offsetof(struct args, url)},
    {O_EVENTS, offsetof(struct args, events)},
    {O_DESCRIPTION, offsetof(struct args, description)},
    {O_WEBHOOK, offsetof(struct args, webhook)},
    {O_SINCE, offsetof(struct args, since)},
    {O_UNTIL, offsetof(struct args, until)},
    {O_ACTOR, offsetof(struct args, actor)},
    {O_ACTION, offsetof(struct args, action)},
    {O_TARGET, offsetof(struct args, target)},
    {O_BEFORE, offsetof(struct args, before)},
    {O_EKCADIR, offsetof(struct args, ek_ca_dir)},
    {O_CODE, offsetof(struct args, terms.code)},
    {O_PRODUCT, offsetof(struct args, terms.product)},
};

/* Numeric license terms: the option and the term whose rule ops.c has. */
static const struct {
    int code;
    const char *term;
    size_t value, given;
} term_opts[] = {
#define T(code, name)                                                                              \
    { code, #name, offsetof(struct args, terms.name), offsetof(struct args, terms.has_##name) }
    T(O_CUSTOMER, customer_id), T(O_ALLOCATED, secs_allocated),  T(O_CACHE, cache_secs),
    T(O_TICK, tick_secs),       T(O_MAXACT, max_activations),    T(O_MAXTRANSFERS, max_transfers),
    T(O_CULLDAYS, cull_days),   T(O_POOLALERT, pool_alert_secs),
#undef T
};

/* One option into a; -1 to go on, or the exit status of a usage error. */
static int take(struct args *a, int c) {
    for (size_t i = 0; i < ARRAY_SIZE(text_opts); i++)
        if (text_opts[i].code == c) {
            *(const char **)((char *)a + text_opts[i].off) = optarg;
            return -1;
        }
    for (size_t i = 0; i < ARRAY_SIZE(term_opts); i++)
        if (term_opts[i].code == c) {
            struct srv_operr e;
            if (srv_term_parse(term_opts[i].term, optarg,
                               (uint64_t *)((char *)a + term_opts[i].value), &e) < 0) {
                char m[400];
                srv_operr_text(&e, SRV_FIELD_OPTION, m, sizeof(m));
                return verb_usage_error(a->path, "%s", m);
            }
            *(bool *)((char *)a + term_opts[i].given) = true;
            return -1;
        }
    switch (c) {
    case O_JSON:
        a->json = true;
        break;
    case O_FORCE:
        a->force = true;
        break;
    case O_FLAGGED:
        a->flagged = true;
        break;
    case O_DRYRUN:
        a->dry_run = true;
        break;
    case O_TYPE:
        if (cert_license_type_from_name(optarg, &a->terms.type) < 0)
            return verb_usage_error(a->path, "--type must be perpetual, time-limited, "
                                             "subscription or consumption");
        a->terms.has_type = true;
        break;
    case O_EXPIRY:
        a->terms.has_expiry = true;
        if (!strcmp(optarg, "none") && strstr(a->path, "update"))
            a->terms.expiry = 0;
        else if (rfc3339_parse(optarg, &a->terms.expiry) < 0 || a->terms.expiry == 0)
            return verb_usage_error(a->path,
                                    "--expiry must be an RFC 3339 UTC time like "
                                    "2027-01-31T00:00:00Z%s",
                                    strstr(a->path, "update") ? ", or none" : "");
        break;
    case O_FEATURES: {
        char err[160];
        int r = cert_features_parse(optarg, &a->feature_list, err, sizeof(err));
        if (r < 0)
            return verb_usage_error(a->path, "--features%s%s", r == -EINVAL ? " " : ": ", err);
        for (size_t i = 0; i < a->feature_list.nfeatures; i++)
            a->terms.features[i] = a->feature_list.features[i];
        a->terms.nfeatures = a->feature_list.nfeatures;
        a->terms.has_features = true;
        break;
    }
    case O_TPMTRUST: {
        char err[200];
        if (cert_tpm_trust_parse(optarg, &a->terms.tpm_trust, err, sizeof(err)) < 0)
            return verb_usage_error(a->path, "--%s", err);
        a->terms.has_tpm_trust = true;
        break;
    }
    case O_OFFLINE:
    case O_NO_OFFLINE:
        if (a->terms.has_offline_allowed && a->terms.offline_allowed != (c == O_OFFLINE))
            return verb_usage_error(a->path, "--offline-allowed and --no-offline-allowed "
                                             "exclude each other");
        a->terms.has_offline_allowed = true;
        a->terms.offline_allowed = c == O_OFFLINE;
        break;
    }
    return -1;
}

/* Reads argv against opts; nargs: positional arguments wanted (0 or 1).
 * Returns -1 to go on, or the exit status (help printed: 0; a usage error:
 * 2). */
static int parse(int argc, char **argv, const char *path, const struct option *opts, int nargs,
                 const char *help, struct args *a) {
    int c, r, state = 0, code = 0;

    memset(a, 0, sizeof(*a));
    a->path = path;
    while ((c = verb_getopt(argc, argv, path, opts, nargs > 0, &state, &code)) != -1) {
        if (c == O_HELP) {
            fputs(help, stdout);
            return 0;
        }
        if ((r = take(a, c)) >= 0)
            return r;
    }
    if (code)
        return code;
    if (nargs) {
        if (argc - optind > nargs)
            return verb_usage_error(path, "unexpected argument '%s'", argv[optind + nargs]);
        if (optind < argc)
            a->positional = argv[optind];
    }
    return -1;
}

/* ---- shared helpers --------------------------------------------------------------------- */

static int open_db(const char *path, bool create, struct srv_db **ret) {
    char err[512];
    int r = srv_db_open(path, create, ret, err, sizeof(err));
    if (r == -ENOENT)
        return srv_refuse("%s (make licenses with 'license create')", err);
    if (r < 0)
        return srv_refuse("%s", err);
    return 0;
}

/* Who runs the command, for the audit log: the user (and who used sudo). */
static void cli_actor(char *out, size_t outlen) {
    struct passwd *pw = getpwuid(getuid());
    const char *sudo = getenv("SUDO_USER");
    if (pw && sudo && *sudo)
        snprintf(out, outlen, "cli:%.32s (sudo from %.32s)", pw->pw_name, sudo);
    else if (pw)
        snprintf(out, outlen, "cli:%.32s", pw->pw_name);
    else
        snprintf(out, outlen, "cli:uid %u", (unsigned)getuid());
}

/* The exit status of a failed operation, its message printed. */
static int op_failed(const struct args *a, int r, const struct srv_operr *e) {
    char msg[512];
    srv_operr_text(e, SRV_FIELD_OPTION, msg, sizeof(msg));
    if (r == -EINVAL)
        return verb_usage_error(a->path, "%s", msg);
    if (e->reason[0])
        return srv_refuse("refused (%s): %s", e->reason, msg);
    if (r == -EBADMSG)
        return srv_refuse("refused: %s", msg);
    return srv_refuse("%s", msg);
}

static int print_json(json_t *o) {
    _cleanup_free_ char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!s)
        return srv_refuse("out of memory");
    printf("%s\n", s);
    return fflush(stdout) == 0 ? 0 : srv_refuse("cannot write the output");
}

/* A whole number option up to max into *out (untouched when not given). */
static int small_uint(const struct args *a, const char *opt, const char *text, uint64_t max,
                      uint64_t *out) {
    if (text && parse_uint_strict(text, max, out) < 0)
        return verb_usage_error(a->path, "--%s must be a whole number up to %llu", opt,
                                (unsigned long long)max);
    return -1;
}

static const char *str(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long num(json_t *o, const char *key) {
    return json_integer_value(json_object_get(o, key));
}

static void row_field(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_field(const char *key, const char *fmt, ...) {
    char k[40];
    va_list ap;
    snprintf(k, sizeof(k), "%s:", key);
    printf("%-21s", k);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- licenses: text output -------------------------------------------------------------- */

/* The terms and pool of a license document. */
static void print_license(json_t *l) {
    json_t *pool = json_object_get(l, "pool"), *f;
    char feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 2) + 1] = "";
    size_t i;

    json_array_foreach(json_object_get(l, "features"), i, f) {
        strcat(feats, i ? ", " : "");
        strncat(feats, json_string_value(f), CERT_FEATURE_MAX);
    }
    row_field("code", "%s", str(l, "code"));
    row_field("product", "%s", str(l, "product"));
    row_field("customer_id", "%lld", num(l, "customer_id"));
    row_field("license_type", "%s", str(l, "license_type"));
    row_field("subscription_expiry", "%s",
              json_is_null(json_object_get(l, "subscription_expiry"))
                  ? "(none: perpetual)"
                  : str(l, "subscription_expiry"));
    row_field("features", "%s", feats[0] ? feats : "(none)");
    row_field("state", "%s", str(l, "state"));
    row_field("offline_allowed", "%s",
              json_is_true(json_object_get(l, "offline_allowed")) ? "yes" : "no");
    row_field("tpm_trust", "%s", str(l, "tpm_trust"));
    row_field("cache_secs", "%lld", num(l, "cache_secs"));
    row_field("tick_secs", "%lld", num(l, "tick_secs"));
    row_field("activations", "%lld active of at most %lld%s", num(l, "active_activations"),
              num(l, "max_activations"),
              num(l, "reserved_seats") ? " (and seats held by transfers)" : "");
    row_field("transfers", "%lld used of %lld", num(l, "transfers_used"), num(l, "max_transfers"));
    if (num(l, "cull_days"))
        row_field("cull_days", "%lld (online activations not seen for longer are closed)",
                  num(l, "cull_days"));
    else
        row_field("cull_days", "never");
    if (num(l, "pool_alert_secs"))
        row_field("pool_alert_secs", "%lld", num(l, "pool_alert_secs"));
    else
        row_field("pool_alert_secs", "off");
    row_field("secs_allocated", "%lld", num(pool, "allocated"));
    row_field("secs_committed", "%lld", num(pool, "committed"));
    row_field("secs_free", "%lld", num(pool, "free"));
}

static void activation_header(void) {
    printf("%-32s  %-7s  %-6s  %-36s  %10s  %10s  %12s  %-20s  %s\n", "ACTIVATION", "KIND", "STATE",
           "COMPUTER ID", "GRANTED", "CONSUMED", "LAST COUNTER", "LAST SEEN", "FLAGS");
}

static void activation_row(json_t *x) {
    bool closed = !strcmp(str(x, "state"), "closed");
    printf("%-32s  %-7s  %-6s  %-36s  %10lld  %10lld  %12lld  %-20s  %lld%s\n", str(x, "id"),
           str(x, "kind"), str(x, "state"), str(x, "computer_id"), num(x, "secs_granted"),
           closed ? num(x, "final_secs") : num(x, "consumed_secs"), num(x, "last_counter"),
           str(x, "last_seen"), num(x, "flag_count"),
           json_is_true(json_object_get(x, "flagged")) ? " (open)" : "");
}

static void activation_flags(json_t *x) {
    json_t *f;
    size_t k;
    json_array_foreach(json_object_get(x, "flags"), k, f)
        printf("    flag %s %s: %s%s%s%s\n", str(f, "time"), str(f, "reason"), str(f, "detail"),
               json_is_null(json_object_get(f, "cleared")) ? "" : " (cleared by ",
               json_is_null(json_object_get(f, "cleared")) ? "" : str(f, "cleared_by"),
               json_is_null(json_object_get(f, "cleared")) ? "" : ")");
}

static void print_show(json_t *l) {
    json_t *acts = json_object_get(l, "activations"), *x;
    size_t i;

    print_license(l);
    if (!json_array_size(acts)) {
        printf("\nno activations\n");
    } else {
        printf("\n");
        activation_header();
        json_array_foreach(acts, i, x) {
            activation_row(x);
            activation_flags(x);
        }
    }
    json_array_foreach(json_object_get(l, "transfers"), i, x)
        printf("%stransfer from %s to computer %s, seat held until %s\n", i ? "" : "\n",
               str(x, "from_activation"), str(x, "to_computer_id"), str(x, "expires"));
}

/* ---- the command runner ------------------------------------------------------------------- */

struct command {
    const char *path, *help;
    const struct option *opts;
    int nargs;         /* 1: the command takes one argument (a code, an ID) */
    const char *needs; /* the usage error when --db or the argument is missing */
    bool create;       /* a SQLite file is created when missing */
    /* checks what the options alone could not; -1 to go on, else the exit status */
    int (*check)(struct args *a);
    int (*op)(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e);
    /* the text output; NULL: the JSON document */
    void (*print)(json_t *doc, const struct args *a);
    const char *secret; /* a field of the result shown once, wiped after */
};

static int run_command(const struct command *cmd, int argc, char **argv) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct srv_db *db = NULL;
    struct srv_operr e;
    struct srv_op op;
    char actor[96];
    struct args a;
    int r = parse(argc, argv, cmd->path, cmd->opts, cmd->nargs, cmd->help, &a);

    if (r >= 0)
        goto out;
    if (!a.db || (cmd->nargs && !a.positional)) {
        r = verb_usage_error(a.path, "%s", cmd->needs);
        goto out;
    }
    if (cmd->check && (r = cmd->check(&a)) >= 0)
        goto out;
    r = open_db(a.db, cmd->create, &db);
    if (r)
        goto out;
    cli_actor(actor, sizeof(actor));
    op = (struct srv_op){.db = db, .now = time(NULL), .actor = actor, .key = a.vendor_key};
    r = cmd->op(&op, &a, &doc, &e);
    srv_db_close(db);
    if (r < 0) {
        r = op_failed(&a, r, &e);
        goto out;
    }
    r = 0;
    if (a.json || !cmd->print)
        r = print_json(doc);
    else
        cmd->print(doc, &a);
    if (cmd->secret) {
        const char *s = json_string_value(json_object_get(doc, cmd->secret));
        if (s)
            secure_wipe((char *)s, strlen(s));
    }
out:
    args_clear(&a);
    return r;
}

/* A command group: its own words for a missing or unknown command, then
 * the verb table. */
static int group(int argc, char **argv, const char *path, const char *noun,
                 const struct verb *table, const char *help) {
    if (argc < 2)
        return verb_usage_error(path, "a%s %s command is needed",
                                strchr("aeiou", noun[0]) ? "n" : "", noun);
    if (argv[1][0] != '-' && strcmp(argv[1], "help") != 0) {
        const struct verb *v;
        for (v = table; v->name && strcmp(v->name, argv[1]) != 0; v++)
            ;
        if (!v->name)
            return verb_usage_error(path, "unknown %s command '%s'", noun, argv[1]);
    }
    return verb_dispatch(path, table, help, NULL, argc - 1, argv + 1, NULL);
}

/* The verb entry of a table command. */
#define COMMAND(fn, ...)                                                                           \
    static int fn(int argc, char **argv, void *userdata) {                                         \
        static const struct command cmd = {__VA_ARGS__};                                           \
        return run_command(&cmd, argc, argv);                                                      \
    }

/* ---- licenses ---------------------------------------------------------------------- */

#define TPM_TRUST_HELP                                                                             \
    "  --tpm-trust T         which TPMs may activate: any (default: every TPM that\n"              \
    "                        proves it holds its endorsement key), certified (its EK\n"            \
    "                        certificate chains to a CA of the server's EK trust\n"                \
    "                        store, serve's ek-ca-dir), or CA key ids (SHA-256 of a\n"             \
    "                        CA's public key, as tpmlic-vendor inspect shows them)\n"              \
    "                        separated by commas\n"

static const char create_help[] =
    "Usage: " P "license create --db FILE|URL --code CODE --product NAME\n"
    "        --customer-id N --type perpetual|time-limited|subscription|consumption\n"
    "        [--expiry RFC3339] [--features a,b] [--secs-allocated N]\n"
    "        [--cache-secs N] [--tick-secs N] [--max-activations N]\n"
    "        [--offline-allowed] [--max-transfers N] [--cull-days N]\n"
    "        [--pool-alert-secs N] [--tpm-trust any|certified|KEYID,...] [--json]\n"
    "\n"
    "Adds a license to the database (a SQLite file is created when missing) and\n"
    "shows it.\n"
    "\n"
    "  --code CODE           the license code customers enter: 1 to 64 letters,\n"
    "                        digits, '.', '-' or '_'; unique\n"
    "  --product NAME        product name, at most 64 characters\n"
    "  --customer-id N       the customer's number\n"
    "  --type TYPE           perpetual, time-limited, subscription or consumption\n"
    "  --expiry TIME         end of validity, e.g. 2027-01-31T00:00:00Z; required for\n"
    "                        every type except perpetual, refused for perpetual\n"
    "  --features a,b        feature names, at most 16\n"
    "  --secs-allocated N    the pool of usage seconds shared by all activations\n"
    "                        (default 0; a consumption license needs some)\n"
    "  --cache-secs N        seconds granted to an appliance at a time (default 3600)\n"
    "  --tick-secs N         seconds per tick of the appliance's counter (default 60)\n"
    "  --max-activations N   appliances active at once, online and offline\n"
    "                        (default 1)\n"
    "  --offline-allowed     appliances may go offline, and 'offline sign' may be\n"
    "                        used\n"
    "  --max-transfers N     activations that may be moved to a new computer in the\n"
    "                        license's life ('activation transfer'; default 0)\n"
    "  --cull-days N         close online activations not seen for N days (their seat\n"
    "                        is free again; default 0: never)\n"
    "  --pool-alert-secs N   a pool_low webhook when the free seconds fall below N\n"
    "                        (default 0: none)\n" TPM_TRUST_HELP;

static const struct option create_opts[] = {
    OPT_DB,
    OPT_JSON,
    OPT_HELP,
    OPT("code", required_argument, O_CODE),
    OPT("product", required_argument, O_PRODUCT),
    OPT("customer-id", required_argument, O_CUSTOMER),
    OPT("type", required_argument, O_TYPE),
    OPT("expiry", required_argument, O_EXPIRY),
    OPT("features", required_argument, O_FEATURES),
    OPT("secs-allocated", required_argument, O_ALLOCATED),
    OPT("cache-secs", required_argument, O_CACHE),
    OPT("tick-secs", required_argument, O_TICK),
    OPT("max-activations", required_argument, O_MAXACT),
    OPT("offline-allowed", no_argument, O_OFFLINE),
    OPT("max-transfers", required_argument, O_MAXTRANSFERS),
    OPT("cull-days", required_argument, O_CULLDAYS),
    OPT("pool-alert-secs", required_argument, O_POOLALERT),
    OPT("tpm-trust", required_argument, O_TPMTRUST),
    {0},
};

static int create_check(struct args *a) {
    if (!a->terms.code || !a->terms.product || !a->terms.has_customer_id || !a->terms.has_type)
        return verb_usage_error(a->path,
                                "--db, --code, --product, --customer-id and --type are required");
    if (!license_code_valid(a->terms.code))
        return verb_usage_error(a->path, "--code must be " LICENSE_CODE_RULE);
    return -1;
}

static int create_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_create(op, &a->terms, doc, e);
}

static void create_print(json_t *doc, const struct args *a) {
    printf("license %s created\n\n", str(doc, "code"));
    print_license(doc);
}

COMMAND(license_create, .path = P "license create", .help = create_help, .opts = create_opts,
        .needs = "--db, --code, --product, --customer-id and --type are required", .create = true,
        .check = create_check, .op = create_op, .print = create_print)

static const char update_help[] =
    "Usage: " P "license update CODE --db FILE|URL [--product NAME]\n"
    "        [--expiry TIME|none] [--features a,b] [--secs-allocated N]\n"
    "        [--cache-secs N] [--max-activations N]\n"
    "        [--offline-allowed | --no-offline-allowed] [--max-transfers N]\n"
    "        [--cull-days N] [--pool-alert-secs N]\n"
    "        [--tpm-trust any|certified|KEYID,...] [--json]\n"
    "\n"
    "Changes a license's terms. Appliances get a new license certificate at every\n"
    "validation, with the terms as they are then (product, expiry, features,\n"
    "seconds allocated, offline allowed, TPM trust). The allocation cannot go below\n"
    "the seconds committed to activations. The type, customer and tick are fixed\n"
    "once created. A new --tpm-trust applies to activations from then on.\n"
    "\n" TPM_TRUST_HELP;

static const struct option update_opts[] = {
    OPT_DB,
    OPT_JSON,
    OPT_HELP,
    OPT("product", required_argument, O_PRODUCT),
    OPT("expiry", required_argument, O_EXPIRY),
    OPT("features", required_argument, O_FEATURES),
    OPT("secs-allocated", required_argument, O_ALLOCATED),
    OPT("cache-secs", required_argument, O_CACHE),
    OPT("max-activations", required_argument, O_MAXACT),
    OPT("offline-allowed", no_argument, O_OFFLINE),
    OPT("no-offline-allowed", no_argument, O_NO_OFFLINE),
    OPT("max-transfers", required_argument, O_MAXTRANSFERS),
    OPT("cull-days", required_argument, O_CULLDAYS),
    OPT("pool-alert-secs", required_argument, O_POOLALERT),
    OPT("tpm-trust", required_argument, O_TPMTRUST),
    {0},
};

static int update_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    bool changed;
    int r = srv_op_license_update(op, a->positional, &a->terms, doc, &changed, e);
    if (r == 0)
        json_object_set_new(*doc, "terms_changed", json_boolean(changed));
    return r;
}

static void update_print(json_t *doc, const struct args *a) {
    printf("license %s updated%s\n\n", str(doc, "code"),
           json_is_true(json_object_get(doc, "terms_changed"))
               ? ": appliances get new certificates at their next validation"
               : "");
    print_license(doc);
}

COMMAND(license_update, .path = P "license update", .help = update_help, .opts = update_opts,
        .nargs = 1, .needs = "CODE and --db are required", .op = update_op, .print = update_print)

static const char list_help[] =
    "Usage: " P "license list --db FILE|URL [--json]\n"
    "\n"
    "Lists the licenses: code, product, customer, type, expiry, state, activations in\n"
    "use out of the maximum, and the pool of seconds (allocated, free).\n";

static const struct option db_json_opts[] = {OPT_DB, OPT_JSON, OPT_HELP, {0}};

static int list_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_list(op, doc, e);
}

static void list_print(json_t *doc, const struct args *a) {
    int wcode = 4, wprod = 7;
    json_t *l;
    size_t i;

    json_array_foreach(doc, i, l) {
        if ((int)strlen(str(l, "code")) > wcode)
            wcode = (int)strlen(str(l, "code"));
        if ((int)strlen(str(l, "product")) > wprod)
            wprod = (int)strlen(str(l, "product"));
    }
    printf("%-*s  %-*s  %10s  %-12s  %-20s  %-9s  %11s  %14s  %14s\n", wcode, "CODE", wprod,
           "PRODUCT", "CUSTOMER", "TYPE", "EXPIRY", "STATE", "ACTIVATIONS", "ALLOCATED", "FREE");
    json_array_foreach(doc, i, l) {
        char act[24];
        snprintf(act, sizeof(act), "%lld/%lld", num(l, "active_activations"),
                 num(l, "max_activations"));
        printf("%-*s  %-*s  %10lld  %-12s  %-20s  %-9s  %11s  %14lld  %14lld\n", wcode,
               str(l, "code"), wprod, str(l, "product"), num(l, "customer_id"),
               str(l, "license_type"), str(l, "subscription_expiry"), str(l, "state"), act,
               num(json_object_get(l, "pool"), "allocated"),
               num(json_object_get(l, "pool"), "free"));
    }
    if (!json_array_size(doc))
        printf("(no licenses)\n");
}

COMMAND(license_list, .path = P "license list", .help = list_help, .opts = db_json_opts,
        .needs = "--db is required", .op = list_op, .print = list_print)

static const char show_help[] =
    "Usage: " P "license show CODE --db FILE|URL [--json]\n"
    "\n"
    "Shows a license's terms, its pool of seconds (allocated, committed to\n"
    "activations, free), its activations (ID, computer ID, kind (online or\n"
    "offline), state, seconds granted and consumed, the last counter reported, when\n"
    "it was last seen, and flags raised against it: stale_epoch, another copy of\n"
    "the appliance validated; counter_went_back, its counter was lower than before;\n"
    "consumption_went_back, it reported less consumption than before) and the\n"
    "seats open transfers hold.\n";

static int show_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_show(op, a->positional, doc, e);
}

static void show_print(json_t *doc, const struct args *a) {
    print_show(doc);
}

COMMAND(license_show, .path = P "license show", .help = show_help, .opts = db_json_opts, .nargs = 1,
        .needs = "CODE and --db are required", .op = show_op, .print = show_print)

static const char suspend_help[] =
    "Usage: " P "license suspend CODE --db FILE|URL [--json]\n"
    "\n"
    "Suspends a license: activations and validations are refused with\n"
    "\"suspended\" (appliances show the license invalid) until 'license\n"
    "resume'. Deactivations still return seconds to the pool.\n";
static const char resume_help[] = "Usage: " P "license resume CODE --db FILE|URL [--json]\n"
                                  "\n"
                                  "Undoes 'license suspend'.\n";

static int suspend_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_suspend(op, a->positional, true, doc, e);
}

static int resume_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_suspend(op, a->positional, false, doc, e);
}

static void suspended_print(json_t *doc, const struct args *a) {
    printf("license %s %s\n", str(doc, "code"),
           json_is_true(json_object_get(doc, "suspended")) ? "suspended" : "resumed");
}

COMMAND(license_suspend, .path = P "license suspend", .help = suspend_help, .opts = db_json_opts,
        .nargs = 1, .needs = "CODE and --db are required", .op = suspend_op,
        .print = suspended_print)
COMMAND(license_resume, .path = P "license resume", .help = resume_help, .opts = db_json_opts,
        .nargs = 1, .needs = "CODE and --db are required", .op = resume_op,
        .print = suspended_print)

static const char delete_help[] =
    "Usage: " P "license delete CODE --db FILE|URL [--force] [--json]\n"
    "\n"
    "Deletes a license with all its activations and their history (the audit log\n"
    "keeps its record). Refused while activations are active, unless --force: their\n"
    "appliances then get \"unknown_license\" at their next validation and remove the\n"
    "license. The seconds they hold are not returned to anyone.\n";

static const struct option delete_opts[] = {
    OPT_DB, OPT_JSON, OPT_HELP, OPT("force", no_argument, O_FORCE), {0}};

static int delete_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_license_delete(op, a->positional, a->force, doc, e);
}

static void delete_print(json_t *doc, const struct args *a) {
    printf("license %s deleted%s\n", str(doc, "code"),
           num(doc, "active_activations_deleted") ? " with its active activations (--force)" : "");
}

COMMAND(license_delete, .path = P "license delete", .help = delete_help, .opts = delete_opts,
        .nargs = 1, .needs = "CODE and --db are required", .op = delete_op, .print = delete_print)

static const char license_help[] =
    "Usage: " P "license COMMAND ... --db FILE|URL [--json]\n"
    "\n"
    "  create --code CODE --product NAME --customer-id N --type TYPE ...\n"
    "  list\n"
    "  show CODE\n"
    "  update CODE [--expiry T] [--features a,b] [--secs-allocated N] ...\n"
    "  suspend CODE | resume CODE\n"
    "  delete CODE [--force]\n"
    "\n"
    "'" P "license COMMAND --help' describes each.\n";

static const struct verb license_verbs[] = {
    {.name = "create", .run = license_create},   {.name = "list", .run = license_list},
    {.name = "show", .run = license_show},       {.name = "update", .run = license_update},
    {.name = "suspend", .run = license_suspend}, {.name = "resume", .run = license_resume},
    {.name = "delete", .run = license_delete},   {0},
};

/* ---- offline sign ---------------------------------------------------------------- */

static const char offline_help[] =
    "Usage: " P "offline sign --db FILE|URL --key FILE [--in FILE]\n"
    "        [--secs-granted N] [--ek-ca-dir DIR]\n"
    "\n"
    "Signs an appliance's activation certificate (from FILE or standard input; line\n"
    "breaks are ignored) into a license certificate with activation_type offline,\n"
    "under the terms of the license it names, and records the activation: offline\n"
    "activations count against the license's maximum like online ones. Refused when\n"
    "the license is unknown, does not allow offline, is suspended or expired, or all\n"
    "its activations are in use, when the appliance's TPM does not meet the\n"
    "license's tpm_trust, or when a request that carries a time floor is more than\n"
    "30 days old. The same appliance (computer ID and counter) asking again gets its\n"
    "activation again; when its request names the certificate in force (a renewal),\n"
    "the new one starts past that one's counter ceiling, that one's grant counts as\n"
    "used, and --secs-granted seconds come on top. Prints the license certificate.\n"
    "\n"
    "  --key FILE          the vendor's Ed25519 private key (PEM)\n"
    "  --in FILE           the activation certificate (default: standard input)\n"
    "  --secs-granted N    seconds the appliance may consume (default: all the free\n"
    "                      seconds of the license's pool; an offline appliance never\n"
    "                      refills)\n"
    "  --ek-ca-dir DIR     the EK trust store (CA certificates, PEM or DER) that a\n"
    "                      license's tpm_trust is checked against\n";

static const struct option sign_opts[] = {OPT_DB,
                                          OPT_HELP,
                                          OPT("key", required_argument, O_KEY),
                                          OPT("in", required_argument, O_IN),
                                          OPT("secs-granted", required_argument, O_GRANTED),
                                          OPT("ek-ca-dir", required_argument, O_EKCADIR),
                                          {0}};

static int sign_check(struct args *a) {
    struct srv_operr e;
    char err[300];
    int r;

    if (!a->key)
        return verb_usage_error(a->path, "--db and --key are required");
    a->n1 = UINT64_MAX;
    if (a->granted && srv_term_parse("secs_granted", a->granted, &a->n1, &e) < 0)
        return op_failed(a, -EINVAL, &e);
    r = srv_load_private_key(a->key, &a->vendor_key);
    if (r)
        return r;
    if (read_certificate_text(a->in, INPUT_MAX, "an activation certificate", &a->text, &a->len, err,
                              sizeof(err)) < 0)
        return srv_refuse("%s", err);
    return -1;
}

static int sign_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    op->ek_ca_dir = a->ek_ca_dir;
    return srv_op_offline_sign(op, a->text, a->len, a->n1, doc, e);
}

static void sign_print(json_t *doc, const struct args *a) {
    printf("%s\n", str(doc, "license_certificate"));
    fflush(stdout);
    fprintf(stderr, SRV_PROG ": offline activation %s %s\n", str(doc, "activation"),
            json_is_true(json_object_get(doc, "existing"))
                ? "signed again (this appliance had it already)"
                : "recorded");
}

COMMAND(offline_sign, .path = P "offline sign", .help = offline_help, .opts = sign_opts,
        .needs = "--db and --key are required", .check = sign_check, .op = sign_op,
        .print = sign_print)

static const struct verb offline_verbs[] = {{.name = "sign", .run = offline_sign}, {0}};

/* ---- activations ------------------------------------------------------------------ */

static const char activation_list_help[] =
    "Usage: " P "activation list --db FILE|URL [--license CODE]\n"
    "        [--state active|closed] [--kind online|offline] [--computer-id ID]\n"
    "        [--flagged] [--not-seen-days N] [--limit N] [--offset N] [--json]\n"
    "\n"
    "Lists activations of every license (or one), filtered: --flagged those with a\n"
    "flag not cleared (a possible clone), --not-seen-days those whose appliance has\n"
    "not validated for N days.\n";

static const struct option activation_list_opts[] = {
    OPT_DB,
    OPT_JSON,
    OPT_HELP,
    OPT("license", required_argument, O_LICENSE),
    OPT("state", required_argument, O_STATE),
    OPT("kind", required_argument, O_KIND),
    OPT("computer-id", required_argument, O_COMPUTER),
    OPT("flagged", no_argument, O_FLAGGED),
    OPT("not-seen-days", required_argument, O_NOTSEEN),
    OPT("limit", required_argument, O_LIMIT),
    OPT("offset", required_argument, O_OFFSET),
    {0},
};

static int activation_list_check(struct args *a) {
    int r;
    if ((r = small_uint(a, "not-seen-days", a->notseen, 36500, &a->n1)) >= 0 ||
        (r = small_uint(a, "limit", a->limit, 1000000, &a->n2)) >= 0 ||
        (r = small_uint(a, "offset", a->offset, 1000000000, &a->n3)) >= 0)
        return r;
    return -1;
}

static int activation_list_op(struct srv_op *op, struct args *a, json_t **doc,
                              struct srv_operr *e) {
    struct srv_activation_query q = {.license = a->license,
                                     .state = a->state,
                                     .kind = a->kind,
                                     .computer_id = a->computer,
                                     .flagged = a->flagged,
                                     .not_seen_days = (unsigned)a->n1,
                                     .limit = (unsigned)a->n2,
                                     .offset = (unsigned)a->n3};
    return srv_op_activation_list(op, &q, doc, e);
}

static void activation_list_print(json_t *doc, const struct args *a) {
    json_t *x;
    size_t i;

    if (!json_array_size(doc)) {
        printf("(no activations)\n");
        return;
    }
    printf("%-16s  ", "LICENSE");
    activation_header();
    json_array_foreach(doc, i, x) {
        printf("%-16s  ", str(x, "license"));
        activation_row(x);
    }
}

COMMAND(activation_list, .path = P "activation list", .help = activation_list_help,
        .opts = activation_list_opts, .needs = "--db is required", .check = activation_list_check,
        .op = activation_list_op, .print = activation_list_print)

/* show, revoke, clear-flags: ID --db */
static void activation_print(json_t *doc, const struct args *a) {
    if (strstr(a->path, "revoke"))
        printf("activation %s revoked\n\n", str(doc, "id"));
    else if (strstr(a->path, "clear-flags"))
        printf("activation %s has no open flags now\n\n", str(doc, "id"));
    activation_header();
    activation_row(doc);
    activation_flags(doc);
}

static const char activation_show_help[] =
    "Usage: " P "activation show ID --db FILE|URL [--json]\n"
    "\n"
    "Shows one activation and every flag raised against it.\n";

static int activation_show_op(struct srv_op *op, struct args *a, json_t **doc,
                              struct srv_operr *e) {
    return srv_op_activation_show(op, a->positional, doc, e);
}

COMMAND(activation_show, .path = P "activation show", .help = activation_show_help,
        .opts = db_json_opts, .nargs = 1, .needs = "ID and --db are required",
        .op = activation_show_op, .print = activation_print)

static const char activation_revoke_help[] =
    "Usage: " P "activation revoke ID --db FILE|URL [--json]\n"
    "\n"
    "Revokes an active activation: its seat is free at once and its appliance is\n"
    "refused (not_active) at its next validation and removes its license. The\n"
    "seconds granted to it stay used: the server cannot check what the appliance\n"
    "consumed since it last reported. An offline appliance is not told (it never\n"
    "asks): its certificate stays valid on it.\n";

static int activation_revoke_op(struct srv_op *op, struct args *a, json_t **doc,
                                struct srv_operr *e) {
    return srv_op_activation_revoke(op, a->positional, doc, e);
}

COMMAND(activation_revoke, .path = P "activation revoke", .help = activation_revoke_help,
        .opts = db_json_opts, .nargs = 1, .needs = "ID and --db are required",
        .op = activation_revoke_op, .print = activation_print)

static const char activation_clear_help[] =
    "Usage: " P "activation clear-flags ID --db FILE|URL [--json]\n"
    "\n"
    "Clears the flags raised against an activation (after the vendor looked into\n"
    "them): they stay in its history, marked cleared, with who cleared them.\n";

static int activation_clear_op(struct srv_op *op, struct args *a, json_t **doc,
                               struct srv_operr *e) {
    return srv_op_activation_clear_flags(op, a->positional, doc, e);
}

COMMAND(activation_clear_flags, .path = P "activation clear-flags", .help = activation_clear_help,
        .opts = db_json_opts, .nargs = 1, .needs = "ID and --db are required",
        .op = activation_clear_op, .print = activation_print)

static const char activation_transfer_help[] =
    "Usage: " P "activation transfer ID --to COMPUTER_ID --db FILE|URL\n"
    "        [--json]\n"
    "\n"
    "Moves an activation's seat to another computer (an appliance replaced): the\n"
    "activation is closed like 'revoke', and its seat is kept for the computer\n"
    "COMPUTER_ID ('tpmlicctl computer-id' on the new appliance) for 30 days, even\n"
    "when every other seat is taken. Counts against the license's max_transfers\n"
    "(set by license create or update).\n";

static const struct option transfer_opts[] = {
    OPT_DB, OPT_JSON, OPT_HELP, OPT("to", required_argument, O_TO), {0}};

static int transfer_check(struct args *a) {
    return a->to ? -1 : verb_usage_error(a->path, "ID, --to and --db are required");
}

static int transfer_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    int r = srv_op_activation_transfer(op, a->positional, a->to, doc, e);
    if (r < 0 && !strcmp(e->field, "to_computer_id"))
        snprintf(e->field, sizeof(e->field), "to");
    return r;
}

static void transfer_print(json_t *doc, const struct args *a) {
    printf("activation %s transferred: its seat is kept for computer %s until %s (transfer %lld "
           "of %lld)\n",
           a->positional, a->to, str(json_object_get(doc, "transfer"), "expires"),
           num(doc, "transfers_used"), num(doc, "max_transfers"));
}

COMMAND(activation_transfer, .path = P "activation transfer", .help = activation_transfer_help,
        .opts = transfer_opts, .nargs = 1, .needs = "ID, --to and --db are required",
        .check = transfer_check, .op = transfer_op, .print = transfer_print)

static const char activation_cull_help[] =
    "Usage: " P "activation cull --db FILE|URL [--license CODE] [--dry-run]\n"
    "        [--json]\n"
    "\n"
    "Closes the online activations whose appliance has not validated for their\n"
    "license's cull_days (set by license create or update), every license with a\n"
    "policy or the one given; their seats are free again and their grants stay used.\n"
    "'serve' does this on its own too (every hour by default). --dry-run only lists\n"
    "them.\n";

static const struct option cull_opts[] = {OPT_DB,
                                          OPT_JSON,
                                          OPT_HELP,
                                          OPT("license", required_argument, O_LICENSE),
                                          OPT("dry-run", no_argument, O_DRYRUN),
                                          {0}};

static int cull_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_cull(op, a->license, a->dry_run, doc, e);
}

static void cull_print(json_t *doc, const struct args *a) {
    json_t *x;
    size_t i;
    json_array_foreach(json_object_get(doc, "culled"), i, x) printf(
        "%s %s (license %s, computer %s, last seen %s)\n", a->dry_run ? "would cull" : "culled",
        str(x, "activation"), str(x, "license"), str(x, "computer_id"), str(x, "last_seen"));
    printf("%zu activation(s) %s\n", json_array_size(json_object_get(doc, "culled")),
           a->dry_run ? "would be culled (--dry-run)" : "culled");
}

COMMAND(activation_cull, .path = P "activation cull", .help = activation_cull_help,
        .opts = cull_opts, .needs = "--db is required", .op = cull_op, .print = cull_print)

static const char activation_help[] =
    "Usage: " P "activation COMMAND ... --db FILE|URL [--json]\n"
    "\n"
    "  list [--license CODE] [--state S] [--flagged] [--not-seen-days N] ...\n"
    "  show ID\n"
    "  revoke ID\n"
    "  transfer ID --to COMPUTER_ID\n"
    "  clear-flags ID\n"
    "  cull [--license CODE] [--dry-run]\n"
    "\n"
    "'" P "activation COMMAND --help' describes each.\n";

static const struct verb activation_verbs[] = {
    {.name = "list", .run = activation_list},
    {.name = "show", .run = activation_show},
    {.name = "revoke", .run = activation_revoke},
    {.name = "transfer", .run = activation_transfer},
    {.name = "clear-flags", .run = activation_clear_flags},
    {.name = "cull", .run = activation_cull},
    {0},
};

/* ---- tokens ----------------------------------------------------------------------- */

static const char token_create_help[] =
    "Usage: " P "token create --db FILE|URL --scope read|write|admin\n"
    "        [--name NAME] [--json]\n"
    "\n"
    "Makes a bearer token for the admin REST API and prints it on standard output,\n"
    "once: the database keeps only its SHA-256. read: every GET of licenses and\n"
    "activations; write: also every change to them; admin: also tokens, webhooks and\n"
    "the audit log.\n";

static const struct option token_create_opts[] = {OPT_DB,
                                                  OPT_JSON,
                                                  OPT_HELP,
                                                  OPT("scope", required_argument, O_SCOPE),
                                                  OPT("name", required_argument, O_NAME),
                                                  {0}};

static int token_check(struct args *a) {
    if (!a->scope)
        return verb_usage_error(a->path, "--db and --scope are required");
    if (srv_scope_from_name(a->scope, &a->token_scope) < 0)
        return verb_usage_error(a->path, "--scope must be read, write or admin");
    return -1;
}

static int token_create_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_token_create(op, a->token_scope, a->name ? a->name : "token", doc, e);
}

static void token_create_print(json_t *doc, const struct args *a) {
    printf("%s\n", str(doc, "token"));
    fflush(stdout);
    fprintf(stderr, SRV_PROG ": token %s (%s, scope %s) created; it is shown only this once\n",
            str(doc, "id"), str(doc, "name"), str(doc, "scope"));
}

COMMAND(token_create, .path = P "token create", .help = token_create_help,
        .opts = token_create_opts, .needs = "--db and --scope are required", .create = true,
        .check = token_check, .op = token_create_op, .print = token_create_print, .secret = "token")

static const char token_list_help[] = "Usage: " P "token list --db FILE|URL [--json]\n"
                                      "\n"
                                      "Lists the API tokens: ID, name, scope, created, revoked.\n";

static int token_list_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_token_list(op, doc, e);
}

static void token_list_print(json_t *doc, const struct args *a) {
    json_t *t;
    size_t i;
    printf("%-16s  %-5s  %-20s  %-20s  %s\n", "ID", "SCOPE", "CREATED", "REVOKED", "NAME");
    json_array_foreach(doc, i, t)
        printf("%-16s  %-5s  %-20s  %-20s  %s\n", str(t, "id"), str(t, "scope"), str(t, "created"),
               str(t, "revoked"), str(t, "name"));
}

COMMAND(token_list, .path = P "token list", .help = token_list_help, .opts = db_json_opts,
        .needs = "--db is required", .op = token_list_op, .print = token_list_print)

static const char token_revoke_help[] = "Usage: " P "token revoke ID --db FILE|URL [--json]\n"
                                        "\n"
                                        "Revokes an API token: it is refused from now on.\n";

static int token_revoke_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_token_revoke(op, a->positional, doc, e);
}

static void token_revoke_print(json_t *doc, const struct args *a) {
    printf("token %s revoked\n", str(doc, "id"));
}

COMMAND(token_revoke, .path = P "token revoke", .help = token_revoke_help, .opts = db_json_opts,
        .nargs = 1, .needs = "ID and --db are required", .op = token_revoke_op,
        .print = token_revoke_print)

static const char token_help[] = "Usage: " P "token COMMAND ... --db FILE|URL [--json]\n"
                                 "\n"
                                 "  create --scope read|write|admin [--name NAME]\n"
                                 "  list\n"
                                 "  revoke ID\n";

static const struct verb token_verbs[] = {{.name = "create", .run = token_create},
                                          {.name = "list", .run = token_list},
                                          {.name = "revoke", .run = token_revoke},
                                          {0}};

/* ---- webhooks ---------------------------------------------------------------------- */

static const char webhook_create_help[] =
    "Usage: " P "webhook create --db FILE|URL --url URL --events a,b\n"
    "        [--description TEXT] [--json]\n"
    "\n"
    "Adds a webhook endpoint for the events named: activation, deactivation,\n"
    "validation_refused, clone_flagged, pool_low. URL is https://..., or http:// to\n"
    "a loopback address. Prints the secret that signs the bodies (HMAC-SHA256,\n"
    "header X-Tpmlic-Signature), once.\n";

static const struct option webhook_create_opts[] = {
    OPT_DB,
    OPT_JSON,
    OPT_HELP,
    OPT("url", required_argument, O_URL),
    OPT("events", required_argument, O_EVENTS),
    OPT("description", required_argument, O_DESCRIPTION),
    {0},
};

static int webhook_check(struct args *a) {
    char *save = NULL, *tok;

    if (!a->url || !a->events)
        return verb_usage_error(a->path, "--db, --url and --events are required");
    a->event_text = strdup(a->events);
    if (!a->event_text)
        return srv_refuse("out of memory");
    for (tok = strtok_r(a->event_text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->nevents == ARRAY_SIZE(a->event_list))
            return verb_usage_error(a->path, "--events: too many");
        a->event_list[a->nevents++] = tok;
    }
    return -1;
}

static int webhook_create_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_webhook_create(op, a->url, a->event_list, a->nevents,
                                 a->description ? a->description : "", doc, e);
}

static void webhook_create_print(json_t *doc, const struct args *a) {
    printf("%s\n", str(doc, "secret"));
    fflush(stdout);
    fprintf(stderr,
            SRV_PROG ": webhook %lld created for %s; its signing secret is shown only this once\n",
            num(doc, "id"), str(doc, "url"));
}

COMMAND(webhook_create, .path = P "webhook create", .help = webhook_create_help,
        .opts = webhook_create_opts, .needs = "--db, --url and --events are required",
        .create = true, .check = webhook_check, .op = webhook_create_op,
        .print = webhook_create_print, .secret = "secret")

static const char webhook_list_help[] = "Usage: " P "webhook list --db FILE|URL [--json]\n"
                                        "\n"
                                        "Lists the webhook endpoints and their events.\n";

static int webhook_list_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_webhook_list(op, doc, e);
}

static void webhook_list_print(json_t *doc, const struct args *a) {
    json_t *w;
    size_t i;
    json_array_foreach(doc, i, w) {
        _cleanup_free_ char *ev = json_dumps(json_object_get(w, "events"), JSON_COMPACT);
        printf("%lld  %s  %s  %s\n", num(w, "id"), str(w, "url"), ev ? ev : "",
               str(w, "description"));
    }
    if (!json_array_size(doc))
        printf("(no webhooks)\n");
}

COMMAND(webhook_list, .path = P "webhook list", .help = webhook_list_help, .opts = db_json_opts,
        .needs = "--db is required", .op = webhook_list_op, .print = webhook_list_print)

static const char webhook_delete_help[] = "Usage: " P "webhook delete ID --db FILE|URL [--json]\n"
                                          "\n"
                                          "Removes a webhook endpoint and its delivery log.\n";

static int webhook_delete_check(struct args *a) {
    if (parse_uint_strict(a->positional, INT64_MAX, &a->n1) < 0 || a->n1 == 0)
        return verb_usage_error(a->path, "a webhook ID is a whole number");
    return -1;
}

static int webhook_delete_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_webhook_delete(op, (int64_t)a->n1, doc, e);
}

static void webhook_delete_print(json_t *doc, const struct args *a) {
    printf("webhook %lld deleted\n", num(doc, "id"));
}

COMMAND(webhook_delete, .path = P "webhook delete", .help = webhook_delete_help,
        .opts = db_json_opts, .nargs = 1, .needs = "ID and --db are required",
        .check = webhook_delete_check, .op = webhook_delete_op, .print = webhook_delete_print)

static const char deliveries_help[] =
    "Usage: " P "webhook deliveries --db FILE|URL [--webhook ID]\n"
    "        [--state pending|delivered|failed] [--limit N] [--json]\n"
    "\n"
    "The delivery log, newest first: each event sent to each endpoint, its state,\n"
    "and every attempt (time, HTTP status, error).\n";

static const struct option deliveries_opts[] = {OPT_DB,
                                                OPT_JSON,
                                                OPT_HELP,
                                                OPT("webhook", required_argument, O_WEBHOOK),
                                                OPT("state", required_argument, O_STATE),
                                                OPT("limit", required_argument, O_LIMIT),
                                                {0}};

static int deliveries_check(struct args *a) {
    int r;
    if ((r = small_uint(a, "webhook", a->webhook, INT64_MAX, &a->n1)) >= 0 ||
        (r = small_uint(a, "limit", a->limit, 1000, &a->n2)) >= 0)
        return r;
    return -1;
}

static int deliveries_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    return srv_op_delivery_list(op, (int64_t)a->n1, a->state, (unsigned)a->n2, doc, e);
}

static void deliveries_print(json_t *doc, const struct args *a) {
    json_t *d;
    size_t i;
    printf("%-8s  %-7s  %-18s  %-9s  %8s  %6s  %s\n", "ID", "WEBHOOK", "EVENT", "STATE", "ATTEMPTS",
           "STATUS", "LAST ERROR");
    json_array_foreach(doc, i, d)
        printf("%-8lld  %-7lld  %-18s  %-9s  %8lld  %6lld  %s\n", num(d, "id"),
               num(d, "webhook_id"), str(d, "event"), str(d, "state"), num(d, "attempts"),
               num(d, "last_status"), str(d, "last_error"));
}

COMMAND(webhook_deliveries, .path = P "webhook deliveries", .help = deliveries_help,
        .opts = deliveries_opts, .needs = "--db is required", .check = deliveries_check,
        .op = deliveries_op, .print = deliveries_print)

static const char webhook_help[] = "Usage: " P "webhook COMMAND ... --db FILE|URL [--json]\n"
                                   "\n"
                                   "  create --url URL --events a,b [--description TEXT]\n"
                                   "  list\n"
                                   "  delete ID\n"
                                   "  deliveries [--webhook ID] [--state S] [--limit N]\n";

static const struct verb webhook_verbs[] = {{.name = "create", .run = webhook_create},
                                            {.name = "list", .run = webhook_list},
                                            {.name = "delete", .run = webhook_delete},
                                            {.name = "deliveries", .run = webhook_deliveries},
                                            {0}};

/* ---- the audit log --------------------------------------------------------------------- */

static const char audit_list_help[] =
    "Usage: " P "audit list --db FILE|URL [--since TIME] [--until TIME]\n"
    "        [--actor WHO] [--action ACTION|PREFIX.] [--target ID] [--before-id N]\n"
    "        [--limit N] [--json]\n"
    "\n"
    "The audit log of administrative actions, newest first (100 unless --limit):\n"
    "when, who (cli:USER, token:ID (NAME), system:cull-policy), what (license.create,\n"
    "activation.revoke ...; 'license.' for every license action), on what, and the\n"
    "state before and after (--json). Nothing in tpmlic-server changes or deletes\n"
    "an entry, and the database refuses to.\n";

static const struct option audit_opts[] = {
    OPT_DB,
    OPT_JSON,
    OPT_HELP,
    OPT("since", required_argument, O_SINCE),
    OPT("until", required_argument, O_UNTIL),
    OPT("actor", required_argument, O_ACTOR),
    OPT("action", required_argument, O_ACTION),
    OPT("target", required_argument, O_TARGET),
    OPT("before-id", required_argument, O_BEFORE),
    OPT("limit", required_argument, O_LIMIT),
    {0},
};

static int audit_check(struct args *a) {
    time_t t = 0;
    int r;
    if ((r = small_uint(a, "before-id", a->before, INT64_MAX, &a->n1)) >= 0 ||
        (r = small_uint(a, "limit", a->limit, 1000, &a->n2)) >= 0)
        return r;
    if ((a->since && rfc3339_parse(a->since, &t) < 0) ||
        (a->until && rfc3339_parse(a->until, &t) < 0))
        return verb_usage_error(a->path, "--since and --until must be RFC 3339 UTC times like "
                                         "2027-01-31T00:00:00Z");
    return -1;
}

static int audit_op(struct srv_op *op, struct args *a, json_t **doc, struct srv_operr *e) {
    struct srv_audit_query q = {.actor = a->actor,
                                .action = a->action,
                                .target = a->target,
                                .before_id = (int64_t)a->n1,
                                .limit = (unsigned)a->n2};
    if (a->since)
        rfc3339_parse(a->since, &q.since);
    if (a->until)
        rfc3339_parse(a->until, &q.until);
    return srv_op_audit_list(op, &q, doc, e);
}

static void audit_print(json_t *doc, const struct args *a) {
    json_t *x;
    size_t i;
    printf("%-6s  %-20s  %-32s  %-22s  %s\n", "ID", "TIME", "ACTOR", "ACTION", "TARGET");
    json_array_foreach(doc, i, x) {
        const char *detail = json_string_value(json_object_get(x, "detail"));
        printf("%-6lld  %-20s  %-32s  %-22s  %s%s%s\n", num(x, "id"), str(x, "time"),
               str(x, "actor"), str(x, "action"), str(x, "target"), detail && *detail ? ": " : "",
               detail ? detail : "");
    }
}

COMMAND(audit_list, .path = P "audit list", .help = audit_list_help, .opts = audit_opts,
        .needs = "--db is required", .check = audit_check, .op = audit_op, .print = audit_print)

static const char audit_help[] = "Usage: " P "audit list --db FILE|URL [FILTERS] [--json]\n";

static const struct verb audit_verbs[] = {{.name = "list", .run = audit_list}, {0}};

/* ---- the groups ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    const struct verb *verbs;
    const char *help;
} groups[] = {
    {"license", license_verbs, license_help},          {"offline", offline_verbs, offline_help},
    {"activation", activation_verbs, activation_help}, {"token", token_verbs, token_help},
    {"webhook", webhook_verbs, webhook_help},          {"audit", audit_verbs, audit_help},
};

int srv_cmd_group(int argc, char **argv, void *userdata) {
    for (size_t i = 0; i < ARRAY_SIZE(groups); i++)
        if (!strcmp(argv[0], groups[i].name)) {
            char path[64];
            snprintf(path, sizeof(path), P "%s", groups[i].name);
            return group(argc, argv, path, groups[i].name, groups[i].verbs, groups[i].help);
        }
    return verb_usage_error(SRV_PROG, "unknown command '%s'", argv[0]);
}

/* ---- routes -----------------------------------------------------------------------------------
 */

static const char routes_help[] =
    "Usage: " P "routes [--json]\n"
    "\n"
    "The HTTP routes 'serve' answers (docs/openapi.yaml describes each): method,\n"
    "path, and the scope an admin API token needs (none for the appliance protocol,\n"
    "/health and /metrics).\n";

static const struct option routes_opts[] = {OPT_JSON, OPT_HELP, {0}};

int srv_cmd_routes(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *arr = json_array();
    struct args a;
    int r = parse(argc, argv, P "routes", routes_opts, 0, routes_help, &a);

    if (r >= 0)
        return r;
    if (!arr)
        return srv_refuse("out of memory");
    for (size_t i = 0; i < srv_nroutes; i++) {
        const struct srv_route *x = &srv_routes[i];
        const char *scope = x->scope ? srv_scope_name(x->scope) : "none";
        if (a.json)
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s, s:s}", "method", x->method, "path",
                                            x->path, "scope", scope, "summary", x->summary));
        else
            printf("%-7s %-42s %-6s %s\n", x->method, x->path, scope, x->summary);
    }
    return a.json ? print_json(arr) : 0;
}
