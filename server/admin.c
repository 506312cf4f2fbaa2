/* tpmlic-server's admin commands: licenses in the database (create, list,
 * show, update, suspend, resume, delete) and offline signing through the
 * same database, so that offline activations count against a license's
 * activations like online ones. Human output is aligned text; --json gives
 * one JSON document. docs/server.md describes each command. */
#include "server/server.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "common/text.h"
#include "common/timefmt.h"

#define JSON_INT_MAX 9007199254740992ull
#define INPUT_MAX    (CERT_ACTIVATION_MAX + 4096)

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)

enum {
    O_DB = 0x100,
    O_JSON,
    O_HELP,
    O_VERSION,
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
    O_FORCE,
    O_KEY,
    O_IN,
    O_GRANTED,
};

/* The options of every admin command; each command says which it takes. */
static const struct option all_opts[] = {
    {"db", required_argument, NULL, O_DB},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {"code", required_argument, NULL, O_CODE},
    {"product", required_argument, NULL, O_PRODUCT},
    {"customer-id", required_argument, NULL, O_CUSTOMER},
    {"type", required_argument, NULL, O_TYPE},
    {"expiry", required_argument, NULL, O_EXPIRY},
    {"features", required_argument, NULL, O_FEATURES},
    {"secs-allocated", required_argument, NULL, O_ALLOCATED},
    {"cache-secs", required_argument, NULL, O_CACHE},
    {"tick-secs", required_argument, NULL, O_TICK},
    {"max-activations", required_argument, NULL, O_MAXACT},
    {"offline-allowed", no_argument, NULL, O_OFFLINE},
    {"no-offline-allowed", no_argument, NULL, O_NO_OFFLINE},
    {"force", no_argument, NULL, O_FORCE},
    {"key", required_argument, NULL, O_KEY},
    {"in", required_argument, NULL, O_IN},
    {"secs-granted", required_argument, NULL, O_GRANTED},
    {0},
};

struct args {
    const char *cmd; /* "license create", for messages */
    const char *db, *code, *product, *customer, *type, *expiry, *features, *allocated, *cache,
        *tick, *maxact, *key, *in, *granted;
    bool json, offline, no_offline, force, help, version;
    const char *positional[2];
    int npositional;
};

/* Parses argv against the options allowed (a string of O_ codes as chars
 * offset from O_DB). Returns 0, or the exit code of a usage error. */
static int parse_args(int argc, char **argv, const char *cmd, const int *allowed, size_t nallowed,
                      struct args *a) {
    int c, idx;

    memset(a, 0, sizeof(*a));
    a->cmd = cmd;
    optind = 1;
    opterr = 0;
    while ((idx = -1, c = getopt_long(argc, argv, ":", all_opts, &idx)) != -1) {
        bool ok = c == O_HELP || c == O_VERSION;
        for (size_t i = 0; i < nallowed; i++)
            ok |= allowed[i] == c;
        if (c == ':')
            return srv_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        if (c == '?')
            return srv_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        /* an option of another command: named by itself, not by its value
         * (getopt has already taken that as the option's argument) */
        if (!ok)
            return srv_usage_error(cmd, "unknown option '--%s'",
                                   idx >= 0 ? all_opts[idx].name : "?");
        switch (c) {
        case O_DB:
            a->db = optarg;
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_HELP:
            a->help = true;
            break;
        case O_VERSION:
            a->version = true;
            break;
        case O_CODE:
            a->code = optarg;
            break;
        case O_PRODUCT:
            a->product = optarg;
            break;
        case O_CUSTOMER:
            a->customer = optarg;
            break;
        case O_TYPE:
            a->type = optarg;
            break;
        case O_EXPIRY:
            a->expiry = optarg;
            break;
        case O_FEATURES:
            a->features = optarg;
            break;
        case O_ALLOCATED:
            a->allocated = optarg;
            break;
        case O_CACHE:
            a->cache = optarg;
            break;
        case O_TICK:
            a->tick = optarg;
            break;
        case O_MAXACT:
            a->maxact = optarg;
            break;
        case O_OFFLINE:
            a->offline = true;
            break;
        case O_NO_OFFLINE:
            a->no_offline = true;
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
        }
    }
    for (; optind < argc; optind++) {
        if (a->npositional == (int)ARRAY_SIZE(a->positional))
            return srv_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
        a->positional[a->npositional++] = argv[optind];
    }
    return 0;
}

static int open_db(const char *path, bool create, sqlite3 **ret) {
    char err[512];
    int r = srv_db_open(path, create, ret, err, sizeof(err));
    if (r == -ENOENT)
        return srv_refuse("%s (make licenses with 'license create')", err);
    if (r < 0)
        return srv_refuse("%s", err);
    return 0;
}

static int print_json(json_t *o) {
    _cleanup_free_ char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!s)
        return srv_refuse("out of memory");
    printf("%s\n", s);
    return 0;
}

static void fmt_time(time_t t, char buf[21]) {
    if (t)
        rfc3339_format(t, buf);
    else
        snprintf(buf, 21, "-");
}

static bool is_identifier(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

static const char *license_state(const struct srv_license *l, time_t now) {
    if (l->suspended)
        return "suspended";
    if (l->expiry && now >= l->expiry)
        return "expired";
    return "active";
}

/* ---- JSON of licenses and activations ------------------------------------------------- */

static json_t *license_json(const struct srv_license *l, const struct srv_pool *p, time_t now) {
    char exp[21], created[21], updated[21];
    json_t *feats = json_array();

    for (size_t i = 0; feats && i < l->nfeatures; i++)
        json_array_append_new(feats, json_string(l->features[i]));
    rfc3339_format(l->expiry, exp);
    fmt_time(l->created, created);
    fmt_time(l->updated, updated);
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:I, s:I, s:i, s:i, s:b, s:b, s:s, s:s, s:s, "
                     "s:{s:I, s:I, s:I}, s:i}",
                     "code", l->code, "product", l->product, "customer_id",
                     (json_int_t)l->customer_id, "license_type", cert_license_type_name(l->type),
                     "subscription_expiry", l->expiry ? json_string(exp) : json_null(), "features",
                     feats, "secs_allocated", (json_int_t)l->secs_allocated, "cache_secs",
                     (json_int_t)l->cache_secs, "tick_secs", (int)l->tick_secs, "max_activations",
                     (int)l->max_activations, "offline_allowed", l->offline_allowed, "suspended",
                     l->suspended, "state", license_state(l, now), "created", created, "updated",
                     updated, "pool", "allocated", (json_int_t)p->allocated, "committed",
                     (json_int_t)p->committed, "free", (json_int_t)p->free, "active_activations",
                     (int)p->active);
}

static json_t *activation_json(const struct srv_activation *a, json_t *flags) {
    char created[21], seen[21], closed[21], name[2 * CERT_COUNTER_NAME_MAX + 1], index[11];

    fmt_time(a->created, created);
    fmt_time(a->last_seen, seen);
    fmt_time(a->closed, closed);
    for (size_t i = 0; i < a->counter.name_len; i++)
        snprintf(name + 2 * i, 3, "%02x", a->counter.name[i]);
    name[2 * a->counter.name_len] = '\0';
    snprintf(index, sizeof(index), "0x%08x", a->counter.index);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:{s:s, s:s, s:I}, s:I, s:i, s:s, s:s, s:o, "
        "s:o}",
        "id", a->id, "computer_id", a->computer_id, "kind",
        a->kind == SRV_OFFLINE ? "offline" : "online", "state",
        a->state == SRV_CLOSED ? "closed" : "active", "secs_granted", (json_int_t)a->secs_granted,
        "consumed_secs", (json_int_t)a->consumed_secs, "returned_secs",
        (json_int_t)a->returned_secs, "last_counter", (json_int_t)a->last_counter, "counter",
        "index", index, "name", name, "base", (json_int_t)a->counter.value, "final_secs",
        (json_int_t)a->final_secs, "tick_secs", (int)a->tick_secs, "created", created, "last_seen",
        seen, "closed", a->closed ? json_string(closed) : json_null(), "flags",
        flags ? flags : json_array());
}

/* ---- license create / update ------------------------------------------------------ */

/* Signs a made-up certificate under these terms with a throwaway key: the
 * license must be issuable (features valid, certificates within 1,536
 * bytes) before it is stored. */
static int check_issuable(const struct srv_license *l) {
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    _cleanup_free_ char *jws = NULL;
    struct cert_license c = {0};
    char err[300];

    if (!k)
        return srv_refuse("out of memory");
    snprintf(c.license, sizeof(c.license), "%s", l->code);
    snprintf(c.product, sizeof(c.product), "%s", l->product);
    c.customer_id = l->customer_id;
    snprintf(c.computer_id, sizeof(c.computer_id), "00000000-0000-8000-8000-000000000000");
    for (int i = 0; i < HWID_COMPONENT_MAX; i++) {
        memset(c.hwid.digest[i], 0xab, HWID_DIGEST_LEN);
        c.hwid.present[i] = true;
    }
    c.type = l->type;
    c.expiry = l->expiry;
    memcpy(c.features, l->features, sizeof(c.features));
    c.nfeatures = l->nfeatures;
    c.secs_allocated = c.secs_granted = l->secs_allocated;
    c.offline_allowed = c.activated_offline = true;
    c.tick_secs = l->tick_secs;
    c.counter.index = 0x01ffffff;
    c.counter.name_len = CERT_COUNTER_NAME_MAX;
    memset(c.counter.name, 0xcd, CERT_COUNTER_NAME_MAX);
    c.counter.value = JSON_INT_MAX;
    c.iat = (time_t)JSON_INT_MAX / 2;
    memset(c.jti, 'f', SRV_ID_HEX);
    if (cert_license_sign(&c, k, &jws, err, sizeof(err)) < 0)
        return srv_refuse("refused: no certificate could be issued for this license: %s", err);
    return 0;
}

/* The terms given on the command line into l (create: all; update: the
 * ones given). */
static int apply_terms(const struct args *a, struct srv_license *l, bool create, time_t now) {
    char err[160];
    uint64_t u;
    int r;

    if (a->product) {
        size_t n = strlen(a->product);
        if (n == 0 || n > CERT_TEXT_MAX)
            return srv_usage_error(a->cmd, "--product must be 1 to %d characters", CERT_TEXT_MAX);
        for (const unsigned char *p = (const unsigned char *)a->product; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return srv_usage_error(a->cmd, "--product has a control character");
        snprintf(l->product, sizeof(l->product), "%s", a->product);
    }
    if (a->customer) {
        if (parse_uint_strict(a->customer, JSON_INT_MAX, &u) < 0)
            return srv_usage_error(a->cmd, "--customer-id must be a whole number");
        l->customer_id = (long long)u;
    }
    if (a->type && cert_license_type_from_name(a->type, &l->type) < 0)
        return srv_usage_error(a->cmd, "--type must be perpetual, time-limited, subscription or "
                                       "consumption");
    if (a->expiry) {
        if (!strcmp(a->expiry, "none") && !create)
            l->expiry = 0;
        else if (rfc3339_parse(a->expiry, &l->expiry) < 0 || l->expiry == 0)
            return srv_usage_error(a->cmd, "--expiry must be an RFC 3339 UTC time like "
                                           "2027-01-31T00:00:00Z");
        else if (l->expiry <= now)
            return srv_refuse("--expiry %s is in the past", a->expiry);
    }
    if (a->features) {
        struct cert_license tmp = {0};
        r = cert_features_parse(a->features, &tmp, err, sizeof(err));
        if (r == -EINVAL)
            return srv_usage_error(a->cmd, "--features %s", err);
        if (r < 0)
            return srv_usage_error(a->cmd, "--features: %s", err);
        for (size_t i = 0; i < tmp.nfeatures; i++) {
            if (!is_identifier(tmp.features[i], CERT_FEATURE_MAX))
                return srv_usage_error(a->cmd,
                                       "--features: '%s' must be letters, digits, '.', '-' or '_'",
                                       tmp.features[i]);
            for (size_t j = 0; j < i; j++)
                if (!strcmp(tmp.features[i], tmp.features[j]))
                    return srv_usage_error(a->cmd, "--features: '%s' is listed twice",
                                           tmp.features[i]);
        }
        memcpy(l->features, tmp.features, sizeof(l->features));
        l->nfeatures = tmp.nfeatures;
    }
    if (a->allocated && parse_uint_strict(a->allocated, JSON_INT_MAX, &l->secs_allocated) < 0)
        return srv_usage_error(a->cmd, "--secs-allocated must be a whole number");
    if (a->cache) {
        if (parse_uint_strict(a->cache, JSON_INT_MAX, &l->cache_secs) < 0 || l->cache_secs == 0)
            return srv_usage_error(a->cmd, "--cache-secs must be a whole number above 0");
    }
    if (a->tick) {
        if (parse_uint_strict(a->tick, 86400, &u) < 0 || u == 0)
            return srv_usage_error(a->cmd, "--tick-secs must be 1 to 86400");
        l->tick_secs = (uint32_t)u;
    }
    if (a->maxact) {
        if (parse_uint_strict(a->maxact, 1000000, &u) < 0)
            return srv_usage_error(a->cmd, "--max-activations must be 0 to 1000000");
        l->max_activations = (uint32_t)u;
    }
    if (a->offline && a->no_offline)
        return srv_usage_error(a->cmd, "--offline-allowed and --no-offline-allowed exclude each "
                                       "other");
    if (a->offline)
        l->offline_allowed = true;
    if (a->no_offline)
        l->offline_allowed = false;

    if (l->type == CERT_PERPETUAL && l->expiry)
        return srv_refuse("a perpetual license has no expiry: drop --expiry or choose another "
                          "--type");
    if (l->type != CERT_PERPETUAL && !l->expiry)
        return srv_refuse("a %s license needs --expiry", cert_license_type_name(l->type));
    if (l->type == CERT_CONSUMPTION && l->secs_allocated == 0)
        return srv_refuse("a consumption license needs --secs-allocated above 0");
    return check_issuable(l);
}

static const char create_help[] =
    "Usage: " SRV_PROG " license create --db FILE --code CODE --product NAME --customer-id N\n"
    "        --type perpetual|time-limited|subscription|consumption [--expiry RFC3339]\n"
    "        [--features a,b] [--secs-allocated N] [--cache-secs N] [--tick-secs N]\n"
    "        [--max-activations N] [--offline-allowed] [--json]\n"
    "\n"
    "Adds a license to the database (created when missing) and shows it.\n"
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
    "  --offline-allowed     appliances may go offline, and 'offline sign' may be used\n";

static int show_license(sqlite3 *db, const struct srv_license *l, bool as_json, bool with_acts);

static int license_create(int argc, char **argv) {
    static const int allowed[] = {O_DB,   O_JSON,   O_CODE,     O_PRODUCT,   O_CUSTOMER,
                                  O_TYPE, O_EXPIRY, O_FEATURES, O_ALLOCATED, O_CACHE,
                                  O_TICK, O_MAXACT, O_OFFLINE};
    _cleanup_(srv_db_closep) sqlite3 *db = NULL;
    struct srv_license l = {.cache_secs = SRV_DEFAULT_CACHE_SECS,
                            .tick_secs = SRV_DEFAULT_TICK_SECS,
                            .max_activations = 1,
                            .terms = 1};
    struct args a;
    time_t now = time(NULL);
    int r;

    r = parse_args(argc, argv, "license create", allowed, ARRAY_SIZE(allowed), &a);
    if (r)
        return r;
    if (a.help) {
        fputs(create_help, stdout);
        return 0;
    }
    if (a.npositional)
        return srv_usage_error(a.cmd, "unexpected argument '%s'", a.positional[0]);
    if (!a.db || !a.code || !a.product || !a.customer || !a.type)
        return srv_usage_error(a.cmd,
                               "--db, --code, --product, --customer-id and --type are required");
    if (!is_identifier(a.code, CERT_TEXT_MAX))
        return srv_usage_error(a.cmd, "--code must be 1 to %d letters, digits, '.', '-' or '_'",
                               CERT_TEXT_MAX);
    snprintf(l.code, sizeof(l.code), "%s", a.code);
    r = apply_terms(&a, &l, true, now);
    if (r)
        return r;
    l.created = l.updated = now;
    r = open_db(a.db, true, &db);
    if (r)
        return r;
    r = srv_db_begin(db);
    if (r == 0) {
        r = srv_license_insert(db, &l);
        r = r == 0 ? srv_db_commit(db) : (srv_db_rollback(db), r);
    }
    if (r == -EEXIST)
        return srv_refuse("a license with the code %s exists already", l.code);
    if (r < 0)
        return srv_refuse("cannot store the license: %s", sqlite3_errmsg(db));
    if (!a.json)
        printf("license %s created\n\n", l.code);
    return show_license(db, &l, a.json, false);
}

static const char update_help[] =
    "Usage: " SRV_PROG " license update CODE --db FILE [--product NAME] [--expiry TIME|none]\n"
    "        [--features a,b] [--secs-allocated N] [--cache-secs N] [--max-activations N]\n"
    "        [--offline-allowed | --no-offline-allowed] [--json]\n"
    "\n"
    "Changes a license's terms. Appliances get a new license certificate at their\n"
    "next validation when a term their certificate carries changed (product,\n"
    "expiry, features, seconds allocated, offline allowed). The allocation cannot go\n"
    "below the seconds committed to activations. The type, customer and tick are\n"
    "fixed once created.\n";

static int license_update(int argc, char **argv) {
    static const int allowed[] = {O_DB,        O_JSON,  O_PRODUCT, O_EXPIRY,  O_FEATURES,
                                  O_ALLOCATED, O_CACHE, O_MAXACT,  O_OFFLINE, O_NO_OFFLINE};
    _cleanup_(srv_db_closep) sqlite3 *db = NULL;
    struct srv_license l, before;
    struct srv_pool pool;
    struct args a;
    int r;

    r = parse_args(argc, argv, "license update", allowed, ARRAY_SIZE(allowed), &a);
    if (r)
        return r;
    if (a.help) {
        fputs(update_help, stdout);
        return 0;
    }
    if (a.npositional > 1)
        return srv_usage_error(a.cmd, "unexpected argument '%s'", a.positional[1]);
    if (a.npositional != 1 || !a.db)
        return srv_usage_error(a.cmd, "CODE and --db are required");
    r = open_db(a.db, false, &db);
    if (r)
        return r;
    r = srv_db_begin(db);
    if (r < 0)
        return srv_refuse("cannot lock the database: %s", sqlite3_errmsg(db));
    r = srv_license_get(db, a.positional[0], &l);
    if (r == -ENOENT) {
        srv_db_rollback(db);
        return srv_refuse("no license has the code %s", a.positional[0]);
    }
    if (r == 0)
        r = srv_pool_get(db, &l, &pool);
    if (r < 0) {
        srv_db_rollback(db);
        return srv_refuse("cannot read the license: %s", sqlite3_errmsg(db));
    }
    before = l;
    r = apply_terms(&a, &l, false, time(NULL));
    if (r) {
        srv_db_rollback(db);
        return r;
    }
    if (l.secs_allocated < pool.committed) {
        srv_db_rollback(db);
        return srv_refuse("--secs-allocated %" PRIu64 " is below the %" PRIu64
                          " seconds committed to activations",
                          l.secs_allocated, pool.committed);
    }
    if (strcmp(l.product, before.product) || l.expiry != before.expiry ||
        l.nfeatures != before.nfeatures ||
        memcmp(l.features, before.features, sizeof(l.features)) ||
        l.secs_allocated != before.secs_allocated || l.offline_allowed != before.offline_allowed)
        l.terms++;
    l.updated = time(NULL);
    r = srv_license_update(db, &l);
    if (r == 0)
        r = srv_db_commit(db);
    else
        srv_db_rollback(db);
    if (r < 0)
        return srv_refuse("cannot update the license: %s", sqlite3_errmsg(db));
    if (!a.json)
        printf("license %s updated%s\n\n", l.code,
               l.terms != before.terms ? ": appliances get new certificates at their next "
                                         "validation"
                                       : "");
    return show_license(db, &l, a.json, false);
}

/* ---- list / show ------------------------------------------------------------------ */

static const char list_help[] =
    "Usage: " SRV_PROG " license list --db FILE [--json]\n"
    "\n"
    "Lists the licenses: code, product, customer, type, expiry, state, activations in\n"
    "use out of the maximum, and the pool of seconds (allocated, free).\n";

static const char show_help[] =
    "Usage: " SRV_PROG " license show CODE --db FILE [--json]\n"
    "\n"
    "Shows a license's terms, its pool of seconds (allocated, committed to\n"
    "activations, free) and its activations: ID, computer ID, kind (online or\n"
    "offline), state, seconds granted and consumed, the last counter reported, when\n"
    "it was last seen, and flags raised against it (stale_epoch: another copy of the\n"
    "appliance validated; counter_went_back: its counter was lower than before).\n";

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

static int show_license(sqlite3 *db, const struct srv_license *l, bool as_json, bool with_acts) {
    _cleanup_free_ struct srv_activation *acts = NULL;
    _cleanup_(json_decrefp) json_t *o = NULL;
    char feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 2) + 1], when[21];
    struct srv_pool pool;
    time_t now = time(NULL);
    size_t n = 0;
    int r;

    r = srv_pool_get(db, l, &pool);
    if (r == 0 && with_acts)
        r = srv_activation_list(db, l->id, &acts, &n);
    if (r < 0)
        return srv_refuse("cannot read the license: %s", sqlite3_errmsg(db));
    if (as_json) {
        json_t *arr;
        o = license_json(l, &pool, now);
        if (!o)
            return srv_refuse("out of memory");
        if (with_acts) {
            arr = json_array();
            json_object_set_new(o, "activations", arr);
            for (size_t i = 0; arr && i < n; i++) {
                json_t *flags = NULL;
                if (srv_flag_list(db, acts[i].id, &flags) < 0)
                    return srv_refuse("cannot read the flags: %s", sqlite3_errmsg(db));
                json_array_append_new(arr, activation_json(&acts[i], flags));
            }
        }
        return print_json(o);
    }
    feats[0] = '\0';
    for (size_t i = 0; i < l->nfeatures; i++) {
        strcat(feats, i ? ", " : "");
        strcat(feats, l->features[i]);
    }
    rfc3339_format(l->expiry, when);
    row_field("code", "%s", l->code);
    row_field("product", "%s", l->product);
    row_field("customer_id", "%lld", l->customer_id);
    row_field("license_type", "%s", cert_license_type_name(l->type));
    row_field("subscription_expiry", "%s", l->expiry ? when : "(none: perpetual)");
    row_field("features", "%s", l->nfeatures ? feats : "(none)");
    row_field("state", "%s", license_state(l, now));
    row_field("offline_allowed", "%s", l->offline_allowed ? "yes" : "no");
    row_field("cache_secs", "%" PRIu64, l->cache_secs);
    row_field("tick_secs", "%u", l->tick_secs);
    row_field("activations", "%u active of at most %u", pool.active, l->max_activations);
    row_field("secs_allocated", "%" PRIu64, pool.allocated);
    row_field("secs_committed", "%" PRIu64, pool.committed);
    row_field("secs_free", "%" PRIu64, pool.free);
    if (!with_acts)
        return 0;
    if (n == 0) {
        printf("\nno activations\n");
        return 0;
    }
    printf("\n%-32s  %-7s  %-6s  %-36s  %10s  %10s  %12s  %-20s  %s\n", "ACTIVATION", "KIND",
           "STATE", "COMPUTER ID", "GRANTED", "CONSUMED", "LAST COUNTER", "LAST SEEN", "FLAGS");
    for (size_t i = 0; i < n; i++) {
        const struct srv_activation *x = &acts[i];
        _cleanup_(json_decrefp) json_t *flags = NULL;
        char seen[21];
        size_t k;
        json_t *f;

        fmt_time(x->last_seen, seen);
        printf("%-32s  %-7s  %-6s  %-36s  %10" PRIu64 "  %10" PRIu64 "  %12" PRIu64 "  %-20s  %u\n",
               x->id, x->kind == SRV_OFFLINE ? "offline" : "online",
               x->state == SRV_CLOSED ? "closed" : "active", x->computer_id, x->secs_granted,
               x->state == SRV_CLOSED ? x->final_secs : x->consumed_secs, x->last_counter, seen,
               x->nflags);
        if (x->nflags && srv_flag_list(db, x->id, &flags) == 0)
            json_array_foreach(flags, k, f)
                printf("    flag %s %s: %s\n", json_string_value(json_object_get(f, "time")),
                       json_string_value(json_object_get(f, "reason")),
                       json_string_value(json_object_get(f, "detail")));
    }
    return 0;
}

static int license_list(int argc, char **argv) {
    static const int allowed[] = {O_DB, O_JSON};
    _cleanup_(srv_db_closep) sqlite3 *db = NULL;
    _cleanup_free_ struct srv_license *v = NULL;
    _cleanup_(json_decrefp) json_t *arr = NULL;
    int wcode = 4, wprod = 7;
    time_t now = time(NULL);
    struct args a;
    size_t n;
    int r;

    r = parse_args(argc, argv, "license list", allowed, ARRAY_SIZE(allowed), &a);
    if (r)
        return r;
    if (a.help) {
        fputs(list_help, stdout);
        return 0;
    }
    if (a.npositional)
        return srv_usage_error(a.cmd, "unexpected argument '%s'", a.positional[0]);
    if (!a.db)
        return srv_usage_error(a.cmd, "--db is required");
    r = open_db(a.db, false, &db);
    if (r)
        return r;
    r = srv_license_list(db, &v, &n);
    if (r < 0)
        return srv_refuse("cannot read the licenses: %s", sqlite3_errmsg(db));
    if (a.json)
        arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if ((int)strlen(v[i].code) > wcode)
            wcode = (int)strlen(v[i].code);
        if ((int)strlen(v[i].product) > wprod)
            wprod = (int)strlen(v[i].product);
    }
    if (!a.json)
        printf("%-*s  %-*s  %10s  %-12s  %-20s  %-9s  %11s  %14s  %14s\n", wcode, "CODE", wprod,
               "PRODUCT", "CUSTOMER", "TYPE", "EXPIRY", "STATE", "ACTIVATIONS", "ALLOCATED",
               "FREE");
    for (size_t i = 0; i < n; i++) {
        struct srv_pool p;
        char exp[21], act[24];

        r = srv_pool_get(db, &v[i], &p);
        if (r < 0)
            return srv_refuse("cannot read the licenses: %s", sqlite3_errmsg(db));
        if (a.json) {
            json_array_append_new(arr, license_json(&v[i], &p, now));
            continue;
        }
        fmt_time(v[i].expiry, exp);
        snprintf(act, sizeof(act), "%u/%u", p.active, v[i].max_activations);
        printf("%-*s  %-*s  %10lld  %-12s  %-20s  %-9s  %11s  %14" PRIu64 "  %14" PRIu64 "\n",
               wcode, v[i].code, wprod, v[i].product, v[i].customer_id,
               cert_license_type_name(v[i].type), exp, license_state(&v[i], now), act, p.allocated,
               p.free);
    }
    if (a.json)
        return print_json(arr);
    if (n == 0)
        printf("(no licenses)\n");
    return 0;
}

/* show, suspend, resume, delete: CODE --db FILE */
static int license_one(int argc, char **argv, const char *sub) {
    static const int allowed[] = {O_DB, O_JSON, O_FORCE};
    _cleanup_(srv_db_closep) sqlite3 *db = NULL;
    struct srv_license l;
    struct srv_pool pool;
    char cmd[32];
    struct args a;
    int r;

    snprintf(cmd, sizeof(cmd), "license %s", sub);
    r = parse_args(argc, argv, cmd, allowed, strcmp(sub, "delete") ? 2 : 3, &a);
    if (r)
        return r;
    if (a.help) {
        if (!strcmp(sub, "show"))
            fputs(show_help, stdout);
        else if (!strcmp(sub, "delete"))
            printf("Usage: " SRV_PROG " license delete CODE --db FILE [--force] [--json]\n"
                   "\n"
                   "Deletes a license with all its activations and their history. Refused\n"
                   "while activations are active, unless --force: their appliances then get\n"
                   "\"unknown_license\" at their next validation and remove the license. The\n"
                   "seconds they hold are not returned to anyone.\n");
        else
            printf("Usage: " SRV_PROG " license %s CODE --db FILE [--json]\n\n%s\n", sub,
                   !strcmp(sub, "suspend")
                       ? "Suspends a license: activations and validations are refused with\n"
                         "\"suspended\" (appliances show the license invalid) until 'license\n"
                         "resume'. Deactivations still return seconds to the pool."
                       : "Undoes 'license suspend'.");
        return 0;
    }
    if (a.npositional > 1)
        return srv_usage_error(cmd, "unexpected argument '%s'", a.positional[1]);
    if (a.npositional != 1 || !a.db)
        return srv_usage_error(cmd, "CODE and --db are required");
    r = open_db(a.db, false, &db);
    if (r)
        return r;
    if (!strcmp(sub, "show")) {
        r = srv_license_get(db, a.positional[0], &l);
        if (r == -ENOENT)
            return srv_refuse("no license has the code %s", a.positional[0]);
        if (r < 0)
            return srv_refuse("cannot read the license: %s", sqlite3_errmsg(db));
        return show_license(db, &l, a.json, true);
    }

    r = srv_db_begin(db);
    if (r < 0)
        return srv_refuse("cannot lock the database: %s", sqlite3_errmsg(db));
    r = srv_license_get(db, a.positional[0], &l);
    if (r == -ENOENT) {
        srv_db_rollback(db);
        return srv_refuse("no license has the code %s", a.positional[0]);
    }
    if (r == 0)
        r = srv_pool_get(db, &l, &pool);
    if (r < 0) {
        srv_db_rollback(db);
        return srv_refuse("cannot read the license: %s", sqlite3_errmsg(db));
    }
    if (!strcmp(sub, "delete")) {
        if (pool.active && !a.force) {
            srv_db_rollback(db);
            return srv_refuse("license %s has %u active activation(s): deactivate them, or "
                              "delete with --force",
                              l.code, pool.active);
        }
        r = srv_license_delete(db, l.id);
    } else {
        bool suspend = !strcmp(sub, "suspend");
        l.suspended = suspend;
        l.updated = time(NULL);
        r = srv_license_update(db, &l);
    }
    if (r == 0)
        r = srv_db_commit(db);
    else
        srv_db_rollback(db);
    if (r < 0)
        return srv_refuse("cannot change the license: %s", sqlite3_errmsg(db));
    if (a.json) {
        _cleanup_(json_decrefp) json_t *o =
            !strcmp(sub, "delete") ? json_pack("{s:s, s:b, s:i}", "code", l.code, "deleted", 1,
                                               "active_activations_deleted", (int)pool.active)
                                   : license_json(&l, &pool, time(NULL));
        return print_json(o);
    }
    if (!strcmp(sub, "delete"))
        printf("license %s deleted%s\n", l.code,
               pool.active ? " with its active activations (--force)" : "");
    else
        printf("license %s %s\n", l.code, !strcmp(sub, "suspend") ? "suspended" : "resumed");
    return 0;
}

static const char license_help[] =
    "Usage: " SRV_PROG " license COMMAND ... --db FILE [--json]\n"
    "\n"
    "  create --code CODE --product NAME --customer-id N --type TYPE ...\n"
    "  list\n"
    "  show CODE\n"
    "  update CODE [--expiry T] [--features a,b] [--secs-allocated N] ...\n"
    "  suspend CODE | resume CODE\n"
    "  delete CODE [--force]\n"
    "\n"
    "'" SRV_PROG " license COMMAND --help' describes each.\n";

int srv_cmd_license(int argc, char **argv) {
    if (argc < 2)
        return srv_usage_error("license", "a license command is needed");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(license_help, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "create"))
        return license_create(argc - 1, argv + 1);
    if (!strcmp(argv[1], "update"))
        return license_update(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list"))
        return license_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show") || !strcmp(argv[1], "suspend") || !strcmp(argv[1], "resume") ||
        !strcmp(argv[1], "delete"))
        return license_one(argc - 1, argv + 1, argv[1]);
    return srv_usage_error("license", "unknown license command '%s'", argv[1]);
}

/* ---- offline sign ---------------------------------------------------------------- */

static const char offline_help[] =
    "Usage: " SRV_PROG " offline sign --db FILE --key FILE [--in FILE] [--secs-granted N]\n"
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

static int read_certificate(const char *path, char **ret, size_t *ret_len) {
    char err[300];
    if (read_certificate_text(path, INPUT_MAX, "an activation certificate", ret, ret_len, err,
                              sizeof(err)) < 0)
        return srv_refuse("%s", err);
    return 0;
}

static void cert_activation_clearp(struct cert_activation *a) {
    cert_activation_clear(a);
}

int srv_cmd_offline(int argc, char **argv) {
    static const int allowed[] = {O_DB, O_KEY, O_IN, O_GRANTED};
    _cleanup_(srv_db_closep) sqlite3 *db = NULL;
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(cert_activation_clearp) struct cert_activation act = {0};
    _cleanup_free_ char *text = NULL, *jws = NULL;
    char msg[512], reason[32], recomputed[HWID_ID_STRLEN];
    uint64_t granted = UINT64_MAX;
    struct args a;
    size_t len = 0;
    int r;

    if (argc < 2)
        return srv_usage_error("offline", "a command is needed: offline sign");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(offline_help, stdout);
        return 0;
    }
    if (strcmp(argv[1], "sign") != 0)
        return srv_usage_error("offline", "unknown offline command '%s'", argv[1]);
    r = parse_args(argc - 1, argv + 1, "offline sign", allowed, ARRAY_SIZE(allowed), &a);
    if (r)
        return r;
    if (a.help) {
        fputs(offline_help, stdout);
        return 0;
    }
    if (a.npositional)
        return srv_usage_error(a.cmd, "unexpected argument '%s'", a.positional[0]);
    if (!a.db || !a.key)
        return srv_usage_error(a.cmd, "--db and --key are required");
    if (a.granted && parse_uint_strict(a.granted, JSON_INT_MAX, &granted) < 0)
        return srv_usage_error(a.cmd, "--secs-granted must be a whole number");
    r = srv_load_private_key(a.key, &key);
    if (r)
        return r;
    r = read_certificate(a.in, &text, &len);
    if (r)
        return r;
    if (cert_activation_decode(text, len, &act, msg, sizeof(msg)) != CERT_OK)
        return srv_refuse("refused: the activation certificate is %s", msg);
    if (!cert_activation_consistent(&act, recomputed, msg, sizeof(msg)))
        return srv_refuse("refused: %s", msg);
    r = open_db(a.db, false, &db);
    if (r)
        return r;
    r = srv_offline_sign(&(struct srv_ctx){.db = db, .key = key, .now = time(NULL)}, &act, granted,
                         &jws, reason, sizeof(reason), msg, sizeof(msg));
    if (r == 1)
        return srv_refuse("refused (%s): %s", reason, msg);
    if (r < 0)
        return srv_refuse("cannot record the offline activation: %s", sqlite3_errmsg(db));
    printf("%s\n", jws);
    fprintf(stderr, SRV_PROG ": offline activation %s %s\n", msg,
            !strcmp(reason, "existing") ? "signed again (this appliance had it already)"
                                        : "recorded");
    return fflush(stdout) == 0 ? 0 : srv_refuse("cannot write the license certificate");
}
