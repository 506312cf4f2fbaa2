/* tpmlic-server's admin commands: licenses (create, list, show, update,
 * suspend, resume, delete), offline signing, activations (list, show,
 * revoke, transfer, clear-flags, cull), API tokens, webhooks, the audit
 * log, and the route table. Each reads its options (verb_getopt), makes
 * one call to ops.c (the operations the admin API runs too) and prints
 * the result: aligned text, or with --json the JSON document the API
 * answers. docs/server.md describes each command. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
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
    const char *since, *until, *actor, *action, *target, *before;
    bool json, force, flagged, dry_run;
    struct srv_license_input terms;
    char *positional;
    /* features split from --features: names point into feature_text */
    struct cert_license feature_list;
};

/* Reads argv against opts; the license terms go to a->terms (their rules
 * are ops.c's). nargs: positional arguments wanted (0 or 1). Returns -1 to
 * go on, or the exit status (help printed: 0; a usage error: 2). */
static int parse(int argc, char **argv, const char *path, const struct option *opts, int nargs,
                 const char *help, struct args *a) {
    struct srv_operr e;
    int c, state = 0, code = 0;
    uint64_t v;

    memset(a, 0, sizeof(*a));
    a->path = path;
#define TERM(field, member)                                                                        \
    do {                                                                                           \
        if (srv_term_parse(field, optarg, &v, &e) < 0) {                                           \
            char m[400];                                                                           \
            srv_operr_text(&e, SRV_FIELD_OPTION, m, sizeof(m));                                    \
            return verb_usage_error(path, "%s", m);                                                \
        }                                                                                          \
        a->terms.member = v;                                                                       \
        a->terms.has_##member = true;                                                              \
    } while (0)
    while ((c = verb_getopt(argc, argv, path, opts, nargs > 0, &state, &code)) != -1) {
        switch (c) {
        case O_HELP:
            fputs(help, stdout);
            return 0;
        case O_DB:
            a->db = optarg;
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_CODE:
            a->terms.code = optarg;
            break;
        case O_PRODUCT:
            a->terms.product = optarg;
            break;
        case O_CUSTOMER:
            TERM("customer_id", customer_id);
            break;
        case O_TYPE:
            if (cert_license_type_from_name(optarg, &a->terms.type) < 0)
                return verb_usage_error(path, "--type must be perpetual, time-limited, "
                                              "subscription or consumption");
            a->terms.has_type = true;
            break;
        case O_EXPIRY:
            a->terms.has_expiry = true;
            if (!strcmp(optarg, "none") && strstr(path, "update"))
                a->terms.expiry = 0;
            else if (rfc3339_parse(optarg, &a->terms.expiry) < 0 || a->terms.expiry == 0)
                return verb_usage_error(path,
                                        "--expiry must be an RFC 3339 UTC time like "
                                        "2027-01-31T00:00:00Z%s",
                                        strstr(path, "update") ? ", or none" : "");
            break;
        case O_FEATURES: {
            char err[160];
            int r = cert_features_parse(optarg, &a->feature_list, err, sizeof(err));
            if (r == -EINVAL)
                return verb_usage_error(path, "--features %s", err);
            if (r < 0)
                return verb_usage_error(path, "--features: %s", err);
            for (size_t i = 0; i < a->feature_list.nfeatures; i++)
                a->terms.features[i] = a->feature_list.features[i];
            a->terms.nfeatures = a->feature_list.nfeatures;
            a->terms.has_features = true;
            break;
        }
        case O_ALLOCATED:
            TERM("secs_allocated", secs_allocated);
            break;
        case O_CACHE:
            TERM("cache_secs", cache_secs);
            break;
        case O_TICK:
            TERM("tick_secs", tick_secs);
            break;
        case O_MAXACT:
            TERM("max_activations", max_activations);
            break;
        case O_MAXTRANSFERS:
            TERM("max_transfers", max_transfers);
            break;
        case O_CULLDAYS:
            TERM("cull_days", cull_days);
            break;
        case O_POOLALERT:
            TERM("pool_alert_secs", pool_alert_secs);
            break;
        case O_OFFLINE:
        case O_NO_OFFLINE:
            if (a->terms.has_offline_allowed && a->terms.offline_allowed != (c == O_OFFLINE))
                return verb_usage_error(path, "--offline-allowed and --no-offline-allowed "
                                              "exclude each other");
            a->terms.has_offline_allowed = true;
            a->terms.offline_allowed = c == O_OFFLINE;
            break;
        case O_FORCE:
            a->force = true;
            break;
        case O_KEY:
            a->key = optarg;
            break;
        case O_IN:
            a->in = optarg;
            break;
        case O_GRANTED:
            a->granted = optarg;
            break;
        case O_LICENSE:
            a->license = optarg;
            break;
        case O_STATE:
            a->state = optarg;
            break;
        case O_KIND:
            a->kind = optarg;
            break;
        case O_COMPUTER:
            a->computer = optarg;
            break;
        case O_FLAGGED:
            a->flagged = true;
            break;
        case O_NOTSEEN:
            a->notseen = optarg;
            break;
        case O_LIMIT:
            a->limit = optarg;
            break;
        case O_OFFSET:
            a->offset = optarg;
            break;
        case O_TO:
            a->to = optarg;
            break;
        case O_DRYRUN:
            a->dry_run = true;
            break;
        case O_SCOPE:
            a->scope = optarg;
            break;
        case O_NAME:
            a->name = optarg;
            break;
        case O_URL:
            a->url = optarg;
            break;
        case O_EVENTS:
            a->events = optarg;
            break;
        case O_DESCRIPTION:
            a->description = optarg;
            break;
        case O_WEBHOOK:
            a->webhook = optarg;
            break;
        case O_SINCE:
            a->since = optarg;
            break;
        case O_UNTIL:
            a->until = optarg;
            break;
        case O_ACTOR:
            a->actor = optarg;
            break;
        case O_ACTION:
            a->action = optarg;
            break;
        case O_TARGET:
            a->target = optarg;
            break;
        case O_BEFORE:
            a->before = optarg;
            break;
        }
    }
#undef TERM
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

/* The db, the operation's context and the actor, for a command. */
struct cli_op {
    struct srv_db *db;
    struct srv_op op;
    char actor[96];
};

static int cli_op_open(struct cli_op *c, const char *db, bool create) {
    int r;
    memset(c, 0, sizeof(*c));
    r = open_db(db, create, &c->db);
    if (r)
        return r;
    cli_actor(c->actor, sizeof(c->actor));
    c->op = (struct srv_op){.db = c->db, .now = time(NULL), .actor = c->actor};
    return 0;
}

static void cli_op_close(struct cli_op *c) {
    srv_db_close(c->db);
    c->db = NULL;
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

static bool require_db(const struct args *a, int *ret) {
    if (!a->db) {
        *ret = verb_usage_error(a->path, "--db is required");
        return false;
    }
    return true;
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
        printf("    flag %s %s: %s%s%s\n", str(f, "time"), str(f, "reason"), str(f, "detail"),
               json_is_null(json_object_get(f, "cleared")) ? "" : " (cleared by ",
               json_is_null(json_object_get(f, "cleared")) ? "" : str(f, "cleared_by"));
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

/* ---- license commands ------------------------------------------------------------------- */

static const char create_help[] =
    "Usage: " P "license create --db FILE|URL --code CODE --product NAME --customer-id N\n"
    "        --type perpetual|time-limited|subscription|consumption [--expiry RFC3339]\n"
    "        [--features a,b] [--secs-allocated N] [--cache-secs N] [--tick-secs N]\n"
    "        [--max-activations N] [--offline-allowed] [--max-transfers N]\n"
    "        [--cull-days N] [--pool-alert-secs N] [--json]\n"
    "\n"
    "Adds a license to the database (a SQLite file is created when missing) and\n"
    "shows it.\n"
    "\n"
    "  --code CODE           the license code customers enter: 1 to 64 letters, digits,\n"
    "                        '.', '-' or '_'; unique\n"
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
    "  --max-activations N   appliances active at once, online and offline (default 1)\n"
    "  --offline-allowed     appliances may go offline, and 'offline sign' may be used\n"
    "  --max-transfers N     activations that may be moved to a new computer in the\n"
    "                        license's life ('activation transfer'; default 0)\n"
    "  --cull-days N         close online activations not seen for N days (their seat\n"
    "                        is free again; default 0: never)\n"
    "  --pool-alert-secs N   a pool_low webhook when the free seconds fall below N\n"
    "                        (default 0: none)\n";

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
    {0},
};

static int license_create(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "license create", create_opts, 0, create_help, &a);

    if (r >= 0)
        return r;
    if (!a.db || !a.terms.code || !a.terms.product || !a.terms.has_customer_id || !a.terms.has_type)
        return verb_usage_error(a.path,
                                "--db, --code, --product, --customer-id and --type are required");
    if (!license_code_valid(a.terms.code))
        return verb_usage_error(a.path, "--code must be " LICENSE_CODE_RULE);
    r = cli_op_open(&c, a.db, true);
    if (r)
        return r;
    r = srv_op_license_create(&c.op, &a.terms, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("license %s created\n\n", str(doc, "code"));
    print_license(doc);
    return 0;
}

static const char update_help[] =
    "Usage: " P "license update CODE --db FILE|URL [--product NAME] [--expiry TIME|none]\n"
    "        [--features a,b] [--secs-allocated N] [--cache-secs N] [--max-activations N]\n"
    "        [--offline-allowed | --no-offline-allowed] [--max-transfers N]\n"
    "        [--cull-days N] [--pool-alert-secs N] [--json]\n"
    "\n"
    "Changes a license's terms. Appliances get a new license certificate at their\n"
    "next validation when a term their certificate carries changed (product,\n"
    "expiry, features, seconds allocated, offline allowed). The allocation cannot go\n"
    "below the seconds committed to activations. The type, customer and tick are\n"
    "fixed once created.\n";

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
    {0},
};

static int license_update(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    bool changed;
    int r = parse(argc, argv, P "license update", update_opts, 1, update_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "CODE and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_license_update(&c.op, a.positional, &a.terms, &doc, &changed, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("license %s updated%s\n\n", str(doc, "code"),
           changed ? ": appliances get new certificates at their next validation" : "");
    print_license(doc);
    return 0;
}

static const char list_help[] =
    "Usage: " P "license list --db FILE|URL [--json]\n"
    "\n"
    "Lists the licenses: code, product, customer, type, expiry, state, activations in\n"
    "use out of the maximum, and the pool of seconds (allocated, free).\n";

static const struct option db_json_opts[] = {OPT_DB, OPT_JSON, OPT_HELP, {0}};

static int license_list(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    int wcode = 4, wprod = 7;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *l;
    size_t i;
    int r = parse(argc, argv, P "license list", db_json_opts, 0, list_help, &a);

    if (r >= 0 || !require_db(&a, &r))
        return r;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_license_list(&c.op, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
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
    return 0;
}

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

static int license_show(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "license show", db_json_opts, 1, show_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "CODE and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_license_show(&c.op, a.positional, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    print_show(doc);
    return 0;
}

static const char suspend_help[] =
    "Usage: " P "license suspend CODE --db FILE|URL [--json]\n"
    "\n"
    "Suspends a license: activations and validations are refused with\n"
    "\"suspended\" (appliances show the license invalid) until 'license\n"
    "resume'. Deactivations still return seconds to the pool.\n";
static const char resume_help[] = "Usage: " P "license resume CODE --db FILE|URL [--json]\n"
                                  "\n"
                                  "Undoes 'license suspend'.\n";

static int suspend_or_resume(int argc, char **argv, bool suspend) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, suspend ? P "license suspend" : P "license resume", db_json_opts, 1,
                  suspend ? suspend_help : resume_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "CODE and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_license_suspend(&c.op, a.positional, suspend, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("license %s %s\n", str(doc, "code"), suspend ? "suspended" : "resumed");
    return 0;
}

static int license_suspend(int argc, char **argv, void *userdata) {
    return suspend_or_resume(argc, argv, true);
}

static int license_resume(int argc, char **argv, void *userdata) {
    return suspend_or_resume(argc, argv, false);
}

static const char delete_help[] =
    "Usage: " P "license delete CODE --db FILE|URL [--force] [--json]\n"
    "\n"
    "Deletes a license with all its activations and their history (the audit log\n"
    "keeps its record). Refused while activations are active, unless --force: their\n"
    "appliances then get \"unknown_license\" at their next validation and remove the\n"
    "license. The seconds they hold are not returned to anyone.\n";

static const struct option delete_opts[] = {
    OPT_DB, OPT_JSON, OPT_HELP, OPT("force", no_argument, O_FORCE), {0}};

static int license_delete(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "license delete", delete_opts, 1, delete_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "CODE and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_license_delete(&c.op, a.positional, a.force, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("license %s deleted%s\n", str(doc, "code"),
           num(doc, "active_activations_deleted") ? " with its active activations (--force)" : "");
    return 0;
}

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

int srv_cmd_license(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "license", "license", license_verbs, license_help);
}

/* ---- offline sign ---------------------------------------------------------------- */

static const char offline_help[] =
    "Usage: " P "offline sign --db FILE|URL --key FILE [--in FILE] [--secs-granted N]\n"
    "\n"
    "Signs an appliance's activation certificate (from FILE or standard input; line\n"
    "breaks are ignored) into a license certificate with activation_type offline,\n"
    "under the terms of the license it names, and records the activation: offline\n"
    "activations count against the license's maximum like online ones. Refused when\n"
    "the license is unknown, does not allow offline, is suspended or expired, or all\n"
    "its activations are in use. The same appliance (computer ID and counter) asking\n"
    "again gets its activation again. Prints the license certificate.\n"
    "\n"
    "  --key FILE          the vendor's Ed25519 private key (PEM)\n"
    "  --in FILE           the activation certificate (default: standard input)\n"
    "  --secs-granted N    seconds the appliance may consume (default: all the free\n"
    "                      seconds of the license's pool; an offline appliance never\n"
    "                      refills)\n";

static const struct option sign_opts[] = {OPT_DB,
                                          OPT_HELP,
                                          OPT("key", required_argument, O_KEY),
                                          OPT("in", required_argument, O_IN),
                                          OPT("secs-granted", required_argument, O_GRANTED),
                                          {0}};

static int offline_sign(int argc, char **argv, void *userdata) {
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(json_decrefp) json_t *doc = NULL;
    _cleanup_free_ char *text = NULL;
    uint64_t granted = UINT64_MAX;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    char err[300];
    size_t len = 0;
    int r = parse(argc, argv, P "offline sign", sign_opts, 0, offline_help, &a);

    if (r >= 0)
        return r;
    if (!a.db || !a.key)
        return verb_usage_error(a.path, "--db and --key are required");
    if (a.granted && srv_term_parse("secs_granted", a.granted, &granted, &e) < 0)
        return op_failed(&a, -EINVAL, &e);
    r = srv_load_private_key(a.key, &key);
    if (r)
        return r;
    if (read_certificate_text(a.in, INPUT_MAX, "an activation certificate", &text, &len, err,
                              sizeof(err)) < 0)
        return srv_refuse("%s", err);
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    c.op.key = key;
    r = srv_op_offline_sign(&c.op, text, len, granted, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    printf("%s\n", str(doc, "license_certificate"));
    fprintf(stderr, SRV_PROG ": offline activation %s %s\n", str(doc, "activation"),
            json_is_true(json_object_get(doc, "existing"))
                ? "signed again (this appliance had it already)"
                : "recorded");
    return fflush(stdout) == 0 ? 0 : srv_refuse("cannot write the license certificate");
}

static const struct verb offline_verbs[] = {{.name = "sign", .run = offline_sign}, {0}};

int srv_cmd_offline(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "offline", "offline", offline_verbs, offline_help);
}

/* ---- activations ------------------------------------------------------------------ */

static const char activation_list_help[] =
    "Usage: " P "activation list --db FILE|URL [--license CODE] [--state active|closed]\n"
    "        [--kind online|offline] [--computer-id ID] [--flagged] [--not-seen-days N]\n"
    "        [--limit N] [--offset N] [--json]\n"
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

static bool small_uint(const struct args *a, const char *opt, const char *text, uint64_t max,
                       uint64_t *out, int *ret) {
    if (text && parse_uint_strict(text, max, out) < 0) {
        *ret = verb_usage_error(a->path, "--%s must be a whole number up to %llu", opt,
                                (unsigned long long)max);
        return false;
    }
    return true;
}

static int activation_list(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct srv_activation_query q = {0};
    uint64_t days = 0, limit = 0, offset = 0;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *x;
    size_t i;
    int r =
        parse(argc, argv, P "activation list", activation_list_opts, 0, activation_list_help, &a);

    if (r >= 0 || !require_db(&a, &r) ||
        !small_uint(&a, "not-seen-days", a.notseen, 36500, &days, &r) ||
        !small_uint(&a, "limit", a.limit, 1000000, &limit, &r) ||
        !small_uint(&a, "offset", a.offset, 1000000000, &offset, &r))
        return r;
    q = (struct srv_activation_query){.license = a.license,
                                      .state = a.state,
                                      .kind = a.kind,
                                      .computer_id = a.computer,
                                      .flagged = a.flagged,
                                      .not_seen_days = (unsigned)days,
                                      .limit = (unsigned)limit,
                                      .offset = (unsigned)offset};
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_activation_list(&c.op, &q, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    if (!json_array_size(doc)) {
        printf("(no activations)\n");
        return 0;
    }
    printf("%-16s  ", "LICENSE");
    activation_header();
    json_array_foreach(doc, i, x) {
        printf("%-16s  ", str(x, "license"));
        activation_row(x);
    }
    return 0;
}

/* show, revoke, clear-flags: ID --db */
static int activation_one(int argc, char **argv, const char *path, const char *help,
                          int (*op)(struct srv_op *, const char *, json_t **, struct srv_operr *),
                          const char *done) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, path, db_json_opts, 1, help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "ID and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = op(&c.op, a.positional, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    if (done)
        printf("activation %s %s\n\n", str(doc, "id"), done);
    activation_header();
    activation_row(doc);
    activation_flags(doc);
    return 0;
}

static const char activation_show_help[] =
    "Usage: " P "activation show ID --db FILE|URL [--json]\n"
    "\n"
    "Shows one activation and every flag raised against it.\n";

static int activation_show(int argc, char **argv, void *userdata) {
    return activation_one(argc, argv, P "activation show", activation_show_help,
                          srv_op_activation_show, NULL);
}

static const char activation_revoke_help[] =
    "Usage: " P "activation revoke ID --db FILE|URL [--json]\n"
    "\n"
    "Revokes an active activation: its seat is free at once and its appliance is\n"
    "refused (not_active) at its next validation and removes its license. The\n"
    "seconds granted to it stay used: the server cannot check what the appliance\n"
    "consumed since it last reported. An offline appliance is not told (it never\n"
    "asks): its certificate stays valid on it.\n";

static int activation_revoke(int argc, char **argv, void *userdata) {
    return activation_one(argc, argv, P "activation revoke", activation_revoke_help,
                          srv_op_activation_revoke, "revoked");
}

static const char activation_clear_help[] =
    "Usage: " P "activation clear-flags ID --db FILE|URL [--json]\n"
    "\n"
    "Clears the flags raised against an activation (after the vendor looked into\n"
    "them): they stay in its history, marked cleared, with who cleared them.\n";

static int activation_clear_flags(int argc, char **argv, void *userdata) {
    return activation_one(argc, argv, P "activation clear-flags", activation_clear_help,
                          srv_op_activation_clear_flags, "has no open flags now");
}

static const char activation_transfer_help[] =
    "Usage: " P "activation transfer ID --to COMPUTER_ID --db FILE|URL [--json]\n"
    "\n"
    "Moves an activation's seat to another computer (an appliance replaced): the\n"
    "activation is closed like 'revoke', and its seat is kept for the computer\n"
    "COMPUTER_ID ('tpmlicctl computer-id' on the new appliance) for 30 days, even\n"
    "when every other seat is taken. Counts against the license's --max-transfers.\n";

static const struct option transfer_opts[] = {
    OPT_DB, OPT_JSON, OPT_HELP, OPT("to", required_argument, O_TO), {0}};

static int activation_transfer(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r =
        parse(argc, argv, P "activation transfer", transfer_opts, 1, activation_transfer_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db || !a.to)
        return verb_usage_error(a.path, "ID, --to and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_activation_transfer(&c.op, a.positional, a.to, &doc, &e);
    cli_op_close(&c);
    if (r < 0) {
        if (!strcmp(e.field, "to_computer_id"))
            snprintf(e.field, sizeof(e.field), "to");
        return op_failed(&a, r, &e);
    }
    if (a.json)
        return print_json(doc);
    printf("activation %s transferred: its seat is kept for computer %s until %s (transfer %lld "
           "of %lld)\n",
           a.positional, a.to, str(json_object_get(doc, "transfer"), "expires"),
           num(doc, "transfers_used"), num(doc, "max_transfers"));
    return 0;
}

static const char activation_cull_help[] =
    "Usage: " P "activation cull --db FILE|URL [--license CODE] [--dry-run] [--json]\n"
    "\n"
    "Closes the online activations whose appliance has not validated for their\n"
    "license's cull_days (license create/update --cull-days), every license with a\n"
    "policy or the one given; their seats are free again and their grants stay used.\n"
    "'serve' does this every --cull-interval too. --dry-run only lists them.\n";

static const struct option cull_opts[] = {OPT_DB,
                                          OPT_JSON,
                                          OPT_HELP,
                                          OPT("license", required_argument, O_LICENSE),
                                          OPT("dry-run", no_argument, O_DRYRUN),
                                          {0}};

static int activation_cull(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *x;
    size_t i;
    int r = parse(argc, argv, P "activation cull", cull_opts, 0, activation_cull_help, &a);

    if (r >= 0 || !require_db(&a, &r))
        return r;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_cull(&c.op, a.license, a.dry_run, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    json_array_foreach(json_object_get(doc, "culled"), i, x) printf(
        "%s %s (license %s, computer %s, last seen %s)\n", a.dry_run ? "would cull" : "culled",
        str(x, "activation"), str(x, "license"), str(x, "computer_id"), str(x, "last_seen"));
    printf("%zu activation(s) %s\n", json_array_size(json_object_get(doc, "culled")),
           a.dry_run ? "would be culled (--dry-run)" : "culled");
    return 0;
}

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

int srv_cmd_activation(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "activation", "activation", activation_verbs, activation_help);
}

/* ---- tokens ----------------------------------------------------------------------- */

static const char token_create_help[] =
    "Usage: " P "token create --db FILE|URL --scope read|write|admin [--name NAME] [--json]\n"
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

static int token_create(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    enum srv_scope scope;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "token create", token_create_opts, 0, token_create_help, &a);

    if (r >= 0)
        return r;
    if (!a.db || !a.scope)
        return verb_usage_error(a.path, "--db and --scope are required");
    if (srv_scope_from_name(a.scope, &scope) < 0)
        return verb_usage_error(a.path, "--scope must be read, write or admin");
    r = cli_op_open(&c, a.db, true);
    if (r)
        return r;
    r = srv_op_token_create(&c.op, scope, a.name ? a.name : "token", &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        r = print_json(doc);
    else {
        printf("%s\n", str(doc, "token"));
        fprintf(stderr, SRV_PROG ": token %s (%s, scope %s) created; it is shown only this once\n",
                str(doc, "id"), str(doc, "name"), str(doc, "scope"));
    }
    /* the token's only copy in this process */
    secure_wipe((char *)json_string_value(json_object_get(doc, "token")),
                strlen(str(doc, "token")));
    return r;
}

static const char token_list_help[] = "Usage: " P "token list --db FILE|URL [--json]\n"
                                      "\n"
                                      "Lists the API tokens: ID, name, scope, created, revoked.\n";

static int token_list(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *t;
    size_t i;
    int r = parse(argc, argv, P "token list", db_json_opts, 0, token_list_help, &a);

    if (r >= 0 || !require_db(&a, &r))
        return r;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_token_list(&c.op, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("%-16s  %-5s  %-20s  %-20s  %s\n", "ID", "SCOPE", "CREATED", "REVOKED", "NAME");
    json_array_foreach(doc, i, t)
        printf("%-16s  %-5s  %-20s  %-20s  %s\n", str(t, "id"), str(t, "scope"), str(t, "created"),
               str(t, "revoked"), str(t, "name"));
    return 0;
}

static const char token_revoke_help[] = "Usage: " P "token revoke ID --db FILE|URL [--json]\n"
                                        "\n"
                                        "Revokes an API token: it is refused from now on.\n";

static int token_revoke(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "token revoke", db_json_opts, 1, token_revoke_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "ID and --db are required");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_token_revoke(&c.op, a.positional, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("token %s revoked\n", str(doc, "id"));
    return 0;
}

static const char token_help[] = "Usage: " P "token COMMAND ... --db FILE|URL [--json]\n"
                                 "\n"
                                 "  create --scope read|write|admin [--name NAME]\n"
                                 "  list\n"
                                 "  revoke ID\n";

static const struct verb token_verbs[] = {{.name = "create", .run = token_create},
                                          {.name = "list", .run = token_list},
                                          {.name = "revoke", .run = token_revoke},
                                          {0}};

int srv_cmd_token(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "token", "token", token_verbs, token_help);
}

/* ---- webhooks ---------------------------------------------------------------------- */

static const char webhook_create_help[] =
    "Usage: " P "webhook create --db FILE|URL --url URL --events a,b [--description TEXT]\n"
    "        [--json]\n"
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

static int webhook_create(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    _cleanup_free_ char *list = NULL;
    const char *events[16];
    size_t n = 0;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    char *save = NULL, *tok;
    int r = parse(argc, argv, P "webhook create", webhook_create_opts, 0, webhook_create_help, &a);

    if (r >= 0)
        return r;
    if (!a.db || !a.url || !a.events)
        return verb_usage_error(a.path, "--db, --url and --events are required");
    list = strdup(a.events);
    if (!list)
        return srv_refuse("out of memory");
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == ARRAY_SIZE(events))
            return verb_usage_error(a.path, "--events: too many");
        events[n++] = tok;
    }
    r = cli_op_open(&c, a.db, true);
    if (r)
        return r;
    r = srv_op_webhook_create(&c.op, a.url, events, n, a.description ? a.description : "", &doc,
                              &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        r = print_json(doc);
    else {
        printf("%s\n", str(doc, "secret"));
        fprintf(stderr,
                SRV_PROG ": webhook %lld created for %s; its signing secret is shown only this "
                         "once\n",
                num(doc, "id"), str(doc, "url"));
    }
    secure_wipe((char *)json_string_value(json_object_get(doc, "secret")),
                strlen(str(doc, "secret")));
    return r;
}

static const char webhook_list_help[] = "Usage: " P "webhook list --db FILE|URL [--json]\n"
                                        "\n"
                                        "Lists the webhook endpoints and their events.\n";

static int webhook_list(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *w;
    size_t i;
    int r = parse(argc, argv, P "webhook list", db_json_opts, 0, webhook_list_help, &a);

    if (r >= 0 || !require_db(&a, &r))
        return r;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_webhook_list(&c.op, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    json_array_foreach(doc, i, w) {
        _cleanup_free_ char *ev = json_dumps(json_object_get(w, "events"), JSON_COMPACT);
        printf("%lld  %s  %s  %s\n", num(w, "id"), str(w, "url"), ev ? ev : "",
               str(w, "description"));
    }
    if (!json_array_size(doc))
        printf("(no webhooks)\n");
    return 0;
}

static const char webhook_delete_help[] = "Usage: " P "webhook delete ID --db FILE|URL [--json]\n"
                                          "\n"
                                          "Removes a webhook endpoint and its delivery log.\n";

static int webhook_delete(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    uint64_t id;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    int r = parse(argc, argv, P "webhook delete", db_json_opts, 1, webhook_delete_help, &a);

    if (r >= 0)
        return r;
    if (!a.positional || !a.db)
        return verb_usage_error(a.path, "ID and --db are required");
    if (parse_uint_strict(a.positional, INT64_MAX, &id) < 0 || id == 0)
        return verb_usage_error(a.path, "a webhook ID is a whole number");
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_webhook_delete(&c.op, (int64_t)id, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("webhook %lld deleted\n", (long long)id);
    return 0;
}

static const char deliveries_help[] =
    "Usage: " P "webhook deliveries --db FILE|URL [--webhook ID] [--state pending|delivered|\n"
    "        failed] [--limit N] [--json]\n"
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

static int webhook_deliveries(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    uint64_t hook = 0, limit = 0;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *d;
    size_t i;
    int r = parse(argc, argv, P "webhook deliveries", deliveries_opts, 0, deliveries_help, &a);

    if (r >= 0 || !require_db(&a, &r) ||
        !small_uint(&a, "webhook", a.webhook, INT64_MAX, &hook, &r) ||
        !small_uint(&a, "limit", a.limit, 1000, &limit, &r))
        return r;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_delivery_list(&c.op, (int64_t)hook, a.state, (unsigned)limit, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("%-8s  %-7s  %-18s  %-9s  %8s  %6s  %s\n", "ID", "WEBHOOK", "EVENT", "STATE", "ATTEMPTS",
           "STATUS", "LAST ERROR");
    json_array_foreach(doc, i, d)
        printf("%-8lld  %-7lld  %-18s  %-9s  %8lld  %6lld  %s\n", num(d, "id"),
               num(d, "webhook_id"), str(d, "event"), str(d, "state"), num(d, "attempts"),
               num(d, "last_status"), str(d, "last_error"));
    return 0;
}

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

int srv_cmd_webhook(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "webhook", "webhook", webhook_verbs, webhook_help);
}

/* ---- the audit log --------------------------------------------------------------------- */

static const char audit_list_help[] =
    "Usage: " P "audit list --db FILE|URL [--since TIME] [--until TIME] [--actor WHO]\n"
    "        [--action ACTION|PREFIX.] [--target ID] [--before-id N] [--limit N] [--json]\n"
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

static int audit_list(int argc, char **argv, void *userdata) {
    _cleanup_(json_decrefp) json_t *doc = NULL;
    struct srv_audit_query q = {0};
    uint64_t before = 0, limit = 0;
    struct cli_op c;
    struct srv_operr e;
    struct args a;
    json_t *x;
    size_t i;
    int r = parse(argc, argv, P "audit list", audit_opts, 0, audit_list_help, &a);

    if (r >= 0 || !require_db(&a, &r) ||
        !small_uint(&a, "before-id", a.before, INT64_MAX, &before, &r) ||
        !small_uint(&a, "limit", a.limit, 1000, &limit, &r))
        return r;
    if ((a.since && rfc3339_parse(a.since, &q.since) < 0) ||
        (a.until && rfc3339_parse(a.until, &q.until) < 0))
        return verb_usage_error(a.path, "--since and --until must be RFC 3339 UTC times like "
                                        "2027-01-31T00:00:00Z");
    q.actor = a.actor;
    q.action = a.action;
    q.target = a.target;
    q.before_id = (int64_t)before;
    q.limit = (unsigned)limit;
    r = cli_op_open(&c, a.db, false);
    if (r)
        return r;
    r = srv_op_audit_list(&c.op, &q, &doc, &e);
    cli_op_close(&c);
    if (r < 0)
        return op_failed(&a, r, &e);
    if (a.json)
        return print_json(doc);
    printf("%-6s  %-20s  %-32s  %-22s  %s\n", "ID", "TIME", "ACTOR", "ACTION", "TARGET");
    json_array_foreach(doc, i, x)
        printf("%-6lld  %-20s  %-32s  %-22s  %s%s%s\n", num(x, "id"), str(x, "time"),
               str(x, "actor"), str(x, "action"), str(x, "target"),
               *str(x, "detail") && strcmp(str(x, "detail"), "-") ? ": " : "",
               strcmp(str(x, "detail"), "-") ? str(x, "detail") : "");
    return 0;
}

static const char audit_help[] = "Usage: " P "audit list --db FILE|URL [FILTERS] [--json]\n";

static const struct verb audit_verbs[] = {{.name = "list", .run = audit_list}, {0}};

int srv_cmd_audit(int argc, char **argv, void *userdata) {
    return group(argc, argv, P "audit", "audit", audit_verbs, audit_help);
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
        if (a.json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "method", x->method,
                                                 "path", x->path, "scope",
                                                 x->scope ? srv_scope_name(x->scope) : "none",
                                                 "summary", x->summary));
        else
            printf("%-7s %-42s %-6s %s\n", x->method, x->path,
                   x->scope ? srv_scope_name(x->scope) : "none", x->summary);
    }
    return a.json ? print_json(arr) : 0;
}
