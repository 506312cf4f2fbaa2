/* tpmlic-vendor: the vendor's side of licensing (SPEC section 9). Makes the
 * Ed25519 signing key, signs an appliance's activation certificate into a
 * license certificate after checking it, and verifies and shows either kind
 * of certificate. The formats are specified in docs/certificates.md. The
 * commands are one verb table (common/verbs.h), each reading its options
 * with getopt_long.
 *
 * Exit status: 0 success, 1 refused or invalid input (one line on stderr),
 * 2 usage error. Key material is never printed: only the key id (SHA-256 of
 * the public key). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#include "cert/cert.h"
#include "common/macro.h"
#include "common/hex.h"
#include "common/text.h"
#include "common/timefmt.h"
#include "common/verbs.h"
#include "hwid/encode.h"
#include "hwid/id.h"

#define PROG         "tpmlic-vendor"
#define EXIT_REFUSED VERB_EXIT_FAILED
/* More than either certificate may hold, so the decoders give the precise
 * "too large" message; anything beyond is not read at all. */
#define INPUT_MAX (CERT_ACTIVATION_MAX + 4096)

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_PTR_CLEANUP(BIO, BIO_free_all)

static void cert_activation_clearp(struct cert_activation *a) {
    cert_activation_clear(a);
}

_printf_(1, 2) static int refuse(const char *fmt, ...) {
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_REFUSED;
}

enum { OPT_HELP = 0x100, OPT_VERSION };

/* A command's --help (its text) or --version; the exit status. */
static int help_or_version(int opt, const char *help) {
    if (opt == OPT_HELP)
        fputs(help, stdout);
    else
        printf(PROG " " TPMLIC_VERSION "\n");
    return 0;
}

/* --- small parsers -------------------------------------------------------- */

/* A certificate from a file or standard input, white space dropped. */
static int read_certificate(const char *path, char **ret, size_t *ret_len) {
    char err[300];
    if (read_certificate_text(path, INPUT_MAX, "a certificate", ret, ret_len, err, sizeof(err)) < 0)
        return refuse("%s", err);
    return 0;
}

static int load_private_key(const char *path, EVP_PKEY **ret) {
    char err[300];
    bool exposed;

    if (cert_load_signing_key(path, ret, &exposed, err, sizeof(err)) < 0)
        return refuse("%s", err);
    if (exposed)
        fprintf(stderr, PROG ": warning: the private key %s can be read by others\n", path);
    return 0;
}

static int load_public_key(const char *path, EVP_PKEY **ret) {
    _cleanup_(BIO_free_allp) BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *key;

    if (!bio)
        return refuse("cannot read the public key %s: %s", path, strerror(errno));
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!key)
        return refuse("%s is not a PEM public key", path);
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        return refuse("%s is not an Ed25519 public key", path);
    }
    *ret = key;
    return 0;
}

/* --- keygen ---------------------------------------------------------------- */

static const char keygen_help[] =
    "Usage: " PROG " keygen --private FILE --public FILE [--force]\n"
    "\n"
    "Makes the vendor's Ed25519 signing key. The private key is written as PEM\n"
    "(PKCS#8) with mode 0600, the public key as PEM with mode 0644; the public key\n"
    "is what appliances trust (/etc/tpmlic/vendor.pub or compiled in). Existing\n"
    "files are not replaced unless --force is given. Prints the key id (SHA-256 of\n"
    "the public key, the 'kid' of every license certificate), never the key.\n";

/* Writes the key into a new file: O_EXCL, so a file that appears meanwhile is
 * never written through; with force an existing file is removed first. */
static int write_key_file(const char *path, EVP_PKEY *key, bool private_part, mode_t mode,
                          bool force) {
    _cleanup_close_ int fd = -1;
    BIO *bio;
    bool ok;

    if (force && unlink(path) < 0 && errno != ENOENT)
        return refuse("cannot replace %s: %s", path, strerror(errno));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno == EEXIST ? refuse("%s exists (use --force to replace it)", path)
                               : refuse("cannot create %s: %s", path, strerror(errno));
    if (fchmod(fd, mode) < 0) {
        unlink(path);
        return refuse("cannot set the mode of %s: %s", path, strerror(errno));
    }
    bio = BIO_new_fd(fd, BIO_NOCLOSE);
    ok = bio &&
         (private_part ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                       : PEM_write_bio_PUBKEY(bio, key)) == 1 &&
         BIO_flush(bio) == 1;
    BIO_free(bio);
    if (!ok || fsync(fd) < 0 || close(TAKE_FD(fd)) < 0) {
        unlink(path);
        return refuse("cannot write %s", path);
    }
    return 0;
}

static int cmd_keygen(int argc, char **argv, void *userdata) {
    static const struct option opts[] = {
        {"private", required_argument, NULL, 'k'},   {"public", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},           {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION}, {0},
    };
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    const char *priv = NULL, *pub = NULL;
    bool force = false;
    struct stat st;
    char kid[65];
    int c, state = 0, rc = 0, r;

    while ((c = verb_getopt(argc, argv, PROG " keygen", opts, false, &state, &rc)) != -1) {
        switch (c) {
        case 'k':
            priv = optarg;
            break;
        case 'p':
            pub = optarg;
            break;
        case 'f':
            force = true;
            break;
        case OPT_HELP:
        case OPT_VERSION:
            return help_or_version(c, keygen_help);
        }
    }
    if (rc)
        return rc;
    if (!priv || !pub)
        return verb_usage_error(PROG " keygen", "--private FILE and --public FILE are required");
    if (strcmp(priv, pub) == 0)
        return verb_usage_error(PROG " keygen", "--private and --public name the same file");
    /* Refuse before writing anything, so that a refusal leaves no half pair. */
    if (!force && lstat(priv, &st) == 0)
        return refuse("%s exists (use --force to replace it)", priv);
    if (!force && lstat(pub, &st) == 0)
        return refuse("%s exists (use --force to replace it)", pub);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!key)
        return refuse("cannot generate an Ed25519 key");
    r = write_key_file(priv, key, true, 0600, force);
    if (r)
        return r;
    r = write_key_file(pub, key, false, 0644, force);
    if (r) {
        unlink(priv);
        return r;
    }
    if (cert_key_id(key, kid) < 0)
        return refuse("cannot compute the key id");
    printf("private key: %s (mode 0600: keep it secret, it signs every license)\n", priv);
    printf("public key:  %s (install on appliances as /etc/tpmlic/vendor.pub)\n", pub);
    printf("key id:      %s\n", kid);
    return 0;
}

/* --- sign-activation ---------------------------------------------------------- */

static const char sign_help[] =
    "Usage: " PROG " sign-activation --key FILE [--in FILE] --product NAME --customer-id N\n"
    "        --type perpetual|time-limited|subscription|consumption [--expiry RFC3339]\n"
    "        [--features a,b] [--secs-allocated N] [--secs-granted N] [--tick-secs N]\n"
    "        [--offline-allowed] [--hwid-policy default|all] [--not-before RFC3339]\n"
    "        [--license CODE] [--tpm-trust any|certified|KEYID,...] [--ek-ca-dir DIR]\n"
    "\n"
    "Reads an activation certificate (from FILE or standard input; line breaks are\n"
    "ignored), checks it (its computer ID and EK match its hardware digests) and\n"
    "prints the license certificate for that appliance, signed with the private key.\n"
    "\n"
    "  --key FILE            the vendor's Ed25519 private key (PEM)\n"
    "  --in FILE             the activation certificate (default: standard input)\n"
    "  --product NAME        product name, at most 64 characters\n"
    "  --customer-id N       the customer's number\n"
    "  --type TYPE           perpetual, time-limited, subscription or consumption\n"
    "  --expiry TIME         end of validity, e.g. 2027-01-31T00:00:00Z; required for\n"
    "                        every type except perpetual, refused for perpetual\n"
    "  --not-before TIME     start of validity (default: valid at once)\n"
    "  --features a,b        feature names (letters, digits, '.', '-', '_'), at most 16\n"
    "  --secs-allocated N    the customer's pool of usage seconds (default 0; a\n"
    "                        consumption license needs some)\n"
    "  --secs-granted N      seconds this appliance may consume (default: all allocated)\n"
    "  --tick-secs N         seconds per tick of the usage counter (default 60)\n"
    "  --offline-allowed     accepted for symmetry with the server: a license made from\n"
    "                        an activation certificate is an offline activation and\n"
    "                        always allows offline mode\n"
    "  --hwid-policy P       default (EK and DMI or NIC must match) or all (every\n"
    "                        component must match)\n"
    "  --license CODE        refuse unless the activation certificate is for this code\n"
    "  --tpm-trust T         which TPMs the license accepts: any (default: every TPM that\n"
    "                        proves it holds its endorsement key), certified (its EK\n"
    "                        certificate chains to a CA of the appliance's EK trust\n"
    "                        store), or CA key ids (SHA-256 of a CA's public key, as\n"
    "                        'inspect' shows them) separated by commas; anything but\n"
    "                        any needs --ek-ca-dir\n"
    "  --ek-ca-dir DIR       the vendor's EK trust store (CA certificates, PEM or DER):\n"
    "                        with --tpm-trust, the request's EK certificate must meet\n"
    "                        it here, since the appliance's root controls the store\n"
    "                        on the appliance\n"
    "\n"
    "An activation request made while a license was in force names that license:\n"
    "the new certificate's usage counter base is then that license's ceiling plus\n"
    "one, and applying it ends the old one. A request dated more than 30 days ago\n"
    "is refused (its date anchors the appliance's time floor).\n";

struct sign_args {
    const char *key, *in, *product, *expiry, *not_before, *features, *license;
    const char *customer_id, *type, *secs_allocated, *secs_granted, *tick_secs, *policy;
    const char *tpm_trust, *ek_ca_dir;
};

static int build_license(const struct sign_args *o, const struct cert_activation *a, time_t now,
                         struct cert_license *l) {
    char msg[256];
    uint64_t u;
    int r;

    memset(l, 0, sizeof(*l));
    if (cert_license_type_from_name(o->type, &l->type) < 0)
        return verb_usage_error(
            PROG " sign-activation",
            "--type must be perpetual, time-limited, subscription or consumption");
    if (parse_uint_strict(o->customer_id, 9007199254740992ull, &u) < 0)
        return verb_usage_error(PROG " sign-activation", "--customer-id must be a whole number");
    l->customer_id = (long long)u;
    if (o->expiry && rfc3339_parse(o->expiry, &l->expiry) < 0)
        return verb_usage_error(PROG " sign-activation",
                                "--expiry must be an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
    if (o->not_before && (rfc3339_parse(o->not_before, &l->not_before) < 0 || !l->not_before))
        return verb_usage_error(
            PROG " sign-activation",
            "--not-before must be an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
    if (parse_uint_strict(o->secs_allocated ? o->secs_allocated : "0", 9007199254740992ull,
                          &l->secs_allocated) < 0)
        return verb_usage_error(PROG " sign-activation", "--secs-allocated must be a whole number");
    if (parse_uint_strict(o->secs_granted     ? o->secs_granted
                          : o->secs_allocated ? o->secs_allocated
                                              : "0",
                          9007199254740992ull, &l->secs_granted) < 0)
        return verb_usage_error(PROG " sign-activation", "--secs-granted must be a whole number");
    if (parse_uint_strict(o->tick_secs ? o->tick_secs : "60", 86400, &u) < 0 || u == 0)
        return verb_usage_error(PROG " sign-activation", "--tick-secs must be 1 to 86400");
    l->tick_secs = (uint32_t)u;
    if (hwid_policy_from_name(o->policy ? o->policy : "default", &l->hwid_policy) < 0)
        return verb_usage_error(PROG " sign-activation", "--hwid-policy must be default or all");
    if (cert_tpm_trust_parse(o->tpm_trust, &l->tpm_trust, msg, sizeof(msg)) < 0)
        return verb_usage_error(PROG " sign-activation", "--%s", msg);
    r = cert_features_parse(o->features, l, msg, sizeof(msg));
    if (r == -EINVAL)
        return verb_usage_error(PROG " sign-activation", "--features %s", msg);
    if (r < 0)
        return refuse("%s", msg);
    if (strlen(o->product) > CERT_TEXT_MAX)
        return refuse("--product is longer than %d characters", CERT_TEXT_MAX);
    snprintf(l->product, sizeof(l->product), "%s", o->product);

    /* the license terms */
    if (l->type == CERT_PERPETUAL && o->expiry)
        return refuse("a perpetual license has no expiry: drop --expiry or choose another --type");
    if (l->type != CERT_PERPETUAL && !o->expiry)
        return refuse("a %s license needs --expiry", cert_license_type_name(l->type));
    if (o->expiry && l->expiry <= now)
        return refuse("--expiry %s is in the past", o->expiry);
    if (l->not_before && l->expiry && l->not_before >= l->expiry)
        return refuse("--not-before is not before --expiry");
    if (l->secs_granted > l->secs_allocated)
        return refuse("--secs-granted (%llu) is more than --secs-allocated (%llu)",
                      (unsigned long long)l->secs_granted, (unsigned long long)l->secs_allocated);
    if (l->type == CERT_CONSUMPTION && l->secs_granted == 0)
        return refuse("a consumption license needs --secs-allocated (and --secs-granted) above 0");

    /* the TPM trust the license asks for, judged on the vendor's store */
    if (l->tpm_trust.kind != CERT_TPM_TRUST_ANY) {
        struct cert_ek_trust t;
        if (!o->ek_ca_dir)
            return verb_usage_error(PROG " sign-activation",
                                    "--tpm-trust %s needs --ek-ca-dir: the EK certificate is "
                                    "checked against the vendor's trust store",
                                    o->tpm_trust);
        if (cert_ek_trust(a->ek_certificate, a->ek_certificate_len, o->ek_ca_dir, &t) < 0)
            return refuse("out of memory");
        if (!cert_tpm_trust_met(l, &t, msg, sizeof(msg)))
            return refuse("refused: %s", msg);
    }

    /* what the appliance said about itself, checked by the caller */
    l->offline_allowed = true;
    l->activated_offline = true;
    r = cert_license_bind(l, a, now);
    if (r == -ESTALE) {
        char when[RFC3339_BUFLEN];
        rfc3339_format(a->date, when);
        return refuse("the activation request is dated %s: more than %d days old or in the "
                      "future (ask the appliance for a new one)",
                      when, CERT_REQUEST_MAX_AGE / 86400);
    }
    if (r < 0)
        return refuse("no random numbers for the serial (jti)");
    return 0;
}

static int cmd_sign_activation(int argc, char **argv, void *userdata) {
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"in", required_argument, NULL, 'i'},
        {"product", required_argument, NULL, 'p'},
        {"customer-id", required_argument, NULL, 'c'},
        {"type", required_argument, NULL, 't'},
        {"expiry", required_argument, NULL, 'e'},
        {"not-before", required_argument, NULL, 'n'},
        {"features", required_argument, NULL, 'f'},
        {"secs-allocated", required_argument, NULL, 'a'},
        {"secs-granted", required_argument, NULL, 'g'},
        {"tick-secs", required_argument, NULL, 'T'},
        {"offline-allowed", no_argument, NULL, 'o'},
        {"hwid-policy", required_argument, NULL, 'P'},
        {"license", required_argument, NULL, 'l'},
        {"tpm-trust", required_argument, NULL, 'R'},
        {"ek-ca-dir", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {0},
    };
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    _cleanup_(cert_activation_clearp) struct cert_activation act = {0};
    _cleanup_free_ char *text = NULL, *jws = NULL;
    struct sign_args o = {0};
    struct cert_license lic;
    char msg[512], recomputed[HWID_ID_STRLEN];
    time_t now = time(NULL);
    enum cert_status s;
    size_t len;
    int c, state = 0, rc = 0, r;

    while ((c = verb_getopt(argc, argv, PROG " sign-activation", opts, false, &state, &rc)) != -1) {
        switch (c) {
        case 'k':
            o.key = optarg;
            break;
        case 'i':
            o.in = optarg;
            break;
        case 'p':
            o.product = optarg;
            break;
        case 'c':
            o.customer_id = optarg;
            break;
        case 't':
            o.type = optarg;
            break;
        case 'e':
            o.expiry = optarg;
            break;
        case 'n':
            o.not_before = optarg;
            break;
        case 'f':
            o.features = optarg;
            break;
        case 'a':
            o.secs_allocated = optarg;
            break;
        case 'g':
            o.secs_granted = optarg;
            break;
        case 'T':
            o.tick_secs = optarg;
            break;
        case 'o':
            break; /* implied: see the help text */
        case 'P':
            o.policy = optarg;
            break;
        case 'l':
            o.license = optarg;
            break;
        case 'R':
            o.tpm_trust = optarg;
            break;
        case 'E':
            o.ek_ca_dir = optarg;
            break;
        case OPT_HELP:
        case OPT_VERSION:
            return help_or_version(c, sign_help);
        }
    }
    if (rc)
        return rc;
    if (!o.key || !o.product || !o.customer_id || !o.type)
        return verb_usage_error(PROG " sign-activation",
                                "--key, --product, --customer-id and --type are required");

    r = load_private_key(o.key, &key);
    if (r)
        return r;
    r = read_certificate(o.in, &text, &len);
    if (r)
        return r;
    s = cert_activation_decode(text, len, &act, msg, sizeof(msg));
    if (s != CERT_OK)
        return refuse("refused: the activation certificate is %s", msg);
    if (!cert_activation_consistent(&act, recomputed, msg, sizeof(msg)))
        return refuse("refused: %s", msg);
    if (o.license && strcmp(o.license, act.license) != 0)
        return refuse("refused: the activation certificate is for another license code than "
                      "--license");
    r = build_license(&o, &act, now, &lic);
    if (r)
        return r;
    r = cert_license_sign(&lic, key, &jws, msg, sizeof(msg));
    if (r < 0)
        return refuse("cannot sign: %s", msg);
    printf("%s\n", jws);
    return fflush(stdout) == 0 ? 0 : refuse("cannot write the license certificate");
}

/* --- inspect ------------------------------------------------------------------ */

static const char inspect_help[] =
    "Usage: " PROG " inspect --public FILE [--in FILE] [--json] [--ek-ca-dir DIR]\n"
    "\n"
    "Verifies a license certificate against the vendor's public key and shows every\n"
    "field, or checks an activation certificate for consistency and shows its fields\n"
    "(activation certificates are not signed; --public is then optional). Reads FILE\n"
    "or standard input (line breaks and spaces are ignored). Exit status 0 when\n"
    "the certificate is valid (consistent), 1 otherwise, with the reason in the\n"
    "status line.\n"
    "\n"
    "  --public FILE   the vendor's Ed25519 public key (PEM)\n"
    "  --in FILE       the certificate (default: standard input)\n"
    "  --json          one JSON object: kind, status, message and the fields\n"
    "  --ek-ca-dir DIR with an activation certificate: check its EK certificate\n"
    "                  against the CA certificates in DIR and show the CA key ids a\n"
    "                  license's tpm trust (sign-activation) can name\n";

static const char *status_token(enum cert_status s) {
    static const char *const t[] = {
        [CERT_OK] = "valid",
        [CERT_MALFORMED] = "malformed",
        [CERT_UNSUPPORTED_VERSION] = "unsupported_version",
        [CERT_WRONG_KEY] = "wrong_key",
        [CERT_BAD_SIGNATURE] = "bad_signature",
        [CERT_EXPIRED] = "expired",
        [CERT_NOT_YET_VALID] = "not_yet_valid",
        [CERT_WRONG_MACHINE] = "wrong_machine",
    };
    return (unsigned)s < ARRAY_SIZE(t) ? t[s] : "unknown";
}

_printf_(2, 3) static void field(const char *key, const char *fmt, ...) {
    char k[40];
    va_list ap;
    snprintf(k, sizeof(k), "%s:", key);
    printf("%-21s", k);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void print_time(const char *key, time_t t) {
    char when[21];
    rfc3339_format(t, when);
    field(key, "%s", when[0] ? when : "(out of range)");
}

static void print_hwid(const struct hwid_digests *d) {
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        char key[16], hex[HWID_DIGEST_HEXLEN];
        snprintf(key, sizeof(key), "hwid.%s", hwid_component_name((enum hwid_component)c));
        if (d->present[c]) {
            hwid_digest_to_hex(d->digest[c], hex);
            field(key, "%s", hex);
        } else {
            field(key, "(absent)");
        }
    }
}

static void print_counter(const struct cert_counter *k, const char *value_key) {
    char name[2 * CERT_COUNTER_NAME_MAX + 1], key[24];
    hex_encode(k->name, k->name_len, name);
    field("counter.index", "0x%08x", k->index);
    field("counter.name", "%s", name);
    snprintf(key, sizeof(key), "counter.%s", value_key);
    field(key, "%llu", (unsigned long long)k->value);
}

static void print_license(const struct cert_license *l) {
    char feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 2) + 1] = "";
    for (size_t i = 0; i < l->nfeatures; i++) {
        strcat(feats, i ? ", " : "");
        strcat(feats, l->features[i]);
    }
    field("license", "%s", l->license);
    field("product", "%s", l->product);
    field("customer_id", "%lld", l->customer_id);
    field("computer_id", "%s", l->computer_id);
    field("hwid_policy", "%s", hwid_policy_name(l->hwid_policy));
    print_hwid(&l->hwid);
    field("license_type", "%s", cert_license_type_name(l->type));
    if (l->expiry)
        print_time("subscription_expiry", l->expiry);
    else
        field("subscription_expiry", "(none: perpetual)");
    if (l->not_before)
        print_time("nbf", l->not_before);
    field("features", "%s", l->nfeatures ? feats : "(none)");
    field("secs_allocated", "%llu", (unsigned long long)l->secs_allocated);
    field("secs_granted", "%llu", (unsigned long long)l->secs_granted);
    field("offline_allowed", "%s", l->offline_allowed ? "true" : "false");
    field("activation_type", "%s", l->activated_offline ? "offline" : "online");
    field("tick_secs", "%u", l->tick_secs);
    print_counter(&l->counter, "base");
    field("counter.ceiling", "%llu", (unsigned long long)cert_license_ceiling(l));
    {
        char trust[CERT_TPM_TRUST_KEYS_MAX * 66];
        cert_tpm_trust_format(&l->tpm_trust, trust, sizeof(trust));
        field("tpm_trust", "%s", trust);
    }
    if (l->time_floor.present) {
        field("time_floor.index", "0x%08x", l->time_floor.counter.index);
        field("time_floor.base", "%llu", (unsigned long long)l->time_floor.counter.value);
        print_time("time_floor.at", l->time_floor.at);
    }
    if (l->window.present) {
        field("online_window", "TPM clock %llu to %llu ms", (unsigned long long)l->window.tpm_clock,
              (unsigned long long)l->window.tpm_clock_until);
        print_time("online_window.until", l->window.until);
    }
    print_time("iat", l->iat);
    field("jti", "%s", l->jti);
}

/* The signed payload exactly as it was signed (after verification). */
static json_t *payload_of(const char *jws) {
    const char *dot1 = strchr(jws, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    _cleanup_free_ uint8_t *raw = NULL;
    size_t n;

    if (!dot2 || cert_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &n) < 0)
        return NULL;
    return json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
}

static int print_json(json_t *o) {
    _cleanup_free_ char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!s)
        return -ENOMEM;
    printf("%s\n", s);
    return 0;
}

static int inspect_license(const char *text, size_t len, EVP_PKEY *pub, bool as_json) {
    struct cert_license l;
    char msg[512], kid[65] = "";
    enum cert_status s;
    bool have_fields;

    s = cert_license_verify(text, len, pub, time(NULL), &l, msg, sizeof(msg));
    have_fields = s == CERT_OK || s == CERT_EXPIRED || s == CERT_NOT_YET_VALID;
    if (cert_key_id(pub, kid) < 0)
        kid[0] = '\0';
    if (as_json) {
        _cleanup_(json_decrefp) json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind", "license", "status", status_token(s),
                      "message", msg, "key_id", kid, "bytes", (json_int_t)len);
        if (!o || (have_fields && json_object_update_new(o, payload_of(text)) < 0) ||
            print_json(o) < 0)
            return refuse("out of memory");
    } else {
        field("kind", "license certificate (compact JWS, EdDSA)");
        field("status", "%s", msg);
        field("signature", "%s",
              s == CERT_OK || have_fields ? "verified with the vendor key" : "not verified");
        field("key_id", "%s", kid);
        field("bytes", "%zu (at most %d)", len, CERT_LICENSE_MAX);
        if (have_fields)
            print_license(&l);
    }
    return s == CERT_OK ? 0 : EXIT_REFUSED;
}

static json_t *hwid_json(const struct hwid_digests *d) {
    json_t *o = json_object();
    for (int c = 0; o && c < HWID_COMPONENT_MAX; c++) {
        char hex[HWID_DIGEST_HEXLEN];
        hwid_digest_to_hex(d->digest[c], hex);
        json_object_set_new(o, hwid_component_name((enum hwid_component)c),
                            d->present[c] ? json_string(hex) : json_null());
    }
    return o;
}

/* The EK certificate an activation carries, against a store of CA
 * certificates: whether it chains, and the CA key ids a license's
 * tpm_trust may name. */
static json_t *ek_trust_json(const struct cert_activation *a, const char *ca_dir,
                             struct cert_ek_trust *t) {
    json_t *ids = json_array();
    if (cert_ek_trust(a->ek_certificate, a->ek_certificate_len, ca_dir, t) < 0 || !ids) {
        json_decref(ids);
        return NULL;
    }
    for (size_t i = 0; i < t->nkeys; i++)
        json_array_append_new(ids, json_string(t->ca_key_ids[i]));
    return json_pack("{s:b, s:s, s:o}", "certified", t->certified, "why", t->why, "ca_key_ids",
                     ids);
}

static int inspect_activation(const char *text, size_t len, const char *ek_ca_dir, bool as_json) {
    _cleanup_(cert_activation_clearp) struct cert_activation a = {0};
    struct cert_ek_trust trust = {0};
    char msg[512], recomputed[HWID_ID_STRLEN] = "", ekhex[HWID_DIGEST_HEXLEN] = "", when[21];
    char name[2 * CERT_COUNTER_NAME_MAX + 1], index[11];
    uint8_t ekd[HWID_DIGEST_LEN];
    enum cert_status s;
    bool ok = false;
    int bits = 0;

    s = cert_activation_decode(text, len, &a, msg, sizeof(msg));
    if (s == CERT_OK) {
        ok = cert_activation_consistent(&a, recomputed, msg, sizeof(msg));
        if (hwid_digest_ek_bits(a.ek_public, a.ek_public_len, ekd, &bits) == 0)
            hwid_digest_to_hex(ekd, ekhex);
        rfc3339_format(a.date, when);
        hex_encode(a.counter.name, a.counter.name_len, name);
        snprintf(index, sizeof(index), "0x%08x", a.counter.index);
    }
    if (as_json) {
        _cleanup_(json_decrefp) json_t *o =
            json_pack("{s:s, s:s, s:s, s:b}", "kind", "activation", "status",
                      s != CERT_OK ? status_token(s)
                      : ok         ? "consistent"
                                   : "inconsistent",
                      "message", msg, "signed", 0);
        if (o && s == CERT_OK) {
            json_object_update_new(
                o,
                json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:I, s:{s:s, s:s, s:I}, s:s, s:s}",
                          "license", a.license, "computer_id", a.computer_id,
                          "computer_id_recomputed", recomputed, "hwid", hwid_json(&a.hwid),
                          "ek_digest", ekhex, "ek_bits", bits, "ek_certificate_bytes",
                          (json_int_t)a.ek_certificate_len, "counter", "index", index, "name", name,
                          "value", (json_int_t)a.counter.value, "nonce", a.nonce, "date", when));
            const struct {
                const char *key, *value;
            } opt[] = {{"username", a.username},         {"email_address", a.email_address},
                       {"company_name", a.company_name}, {"hostname", a.hostname},
                       {"vm_info", a.vm_info},           {"app_ver", a.app_ver}};
            for (size_t i = 0; i < ARRAY_SIZE(opt); i++)
                if (opt[i].value[0])
                    json_object_set_new(o, opt[i].key, json_string(opt[i].value));
            if (a.is_vm >= 0)
                json_object_set_new(o, "is_vm", json_boolean(a.is_vm));
            if (a.ek_issuer[0])
                json_object_set_new(o, "ek_issuer", json_string(a.ek_issuer));
            if (a.time_floor.index)
                json_object_set_new(o, "time_floor",
                                    json_pack("{s:I, s:I}", "index", (json_int_t)a.time_floor.index,
                                              "value", (json_int_t)a.time_floor.value));
            if (a.supersedes_jti[0])
                json_object_set_new(o, "supersedes",
                                    json_pack("{s:s, s:I}", "jti", a.supersedes_jti, "ceiling",
                                              (json_int_t)a.supersedes_ceiling));
            if (ek_ca_dir)
                json_object_set_new(o, "ek_trust", ek_trust_json(&a, ek_ca_dir, &trust));
        }
        if (print_json(o) < 0)
            return refuse("out of memory");
    } else {
        field("kind", "activation certificate (base64url JSON)");
        field("status", "%s", msg);
        field("signature", "none: an activation certificate is not signed; the vendor checks "
                           "it and signs the license");
        field("bytes", "%zu (at most %d)", len, CERT_ACTIVATION_MAX);
        if (s == CERT_OK) {
            field("license", "%s", a.license);
            field("computer_id", "%s", a.computer_id);
            field("computer_id_check", "%s (from the digests)", recomputed);
            print_hwid(&a.hwid);
            field("ek_public", "RSA %d bits, digest %s (matches hwid.ek)", bits, ekhex);
            if (a.ek_certificate)
                field("ek_certificate", "%zu bytes DER", a.ek_certificate_len);
            else
                field("ek_certificate", "(absent)");
            print_counter(&a.counter, "value");
            field("nonce", "%s", a.nonce);
            field("date", "%s", when);
            if (a.username[0])
                field("username", "%s", a.username);
            if (a.email_address[0])
                field("email_address", "%s", a.email_address);
            if (a.company_name[0])
                field("company_name", "%s", a.company_name);
            if (a.hostname[0])
                field("hostname", "%s", a.hostname);
            if (a.is_vm >= 0)
                field("is_vm", "%s", a.is_vm ? "true" : "false");
            if (a.vm_info[0])
                field("vm_info", "%s", a.vm_info);
            if (a.app_ver[0])
                field("app_ver", "%s", a.app_ver);
            field("ek_issuer", "%s", a.ek_issuer[0] ? a.ek_issuer : "(no EK certificate)");
            if (a.time_floor.index)
                field("time_floor", "counter 0x%08x at %llu", a.time_floor.index,
                      (unsigned long long)a.time_floor.value);
            if (a.supersedes_jti[0])
                field("supersedes", "%s (its ceiling %llu)", a.supersedes_jti,
                      (unsigned long long)a.supersedes_ceiling);
            if (ek_ca_dir &&
                cert_ek_trust(a.ek_certificate, a.ek_certificate_len, ek_ca_dir, &trust) == 0) {
                field("ek_trust", "%s",
                      trust.certified ? "chains to a CA in the store" : trust.why);
                for (size_t i = 0; i < trust.nkeys; i++)
                    field("ek_ca_key_id", "%s", trust.ca_key_ids[i]);
            }
        }
    }
    return s == CERT_OK && ok ? 0 : EXIT_REFUSED;
}

static int cmd_inspect(int argc, char **argv, void *userdata) {
    static const struct option opts[] = {
        {"public", required_argument, NULL, 'p'},
        {"in", required_argument, NULL, 'i'},
        {"json", no_argument, NULL, 'j'},
        {"ek-ca-dir", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {0},
    };
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
    _cleanup_free_ char *text = NULL;
    const char *pubfile = NULL, *in = NULL, *ek_ca_dir = NULL;
    bool as_json = false;
    size_t len;
    int c, state = 0, rc = 0, r;

    while ((c = verb_getopt(argc, argv, PROG " inspect", opts, false, &state, &rc)) != -1) {
        switch (c) {
        case 'p':
            pubfile = optarg;
            break;
        case 'i':
            in = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'E':
            ek_ca_dir = optarg;
            break;
        case OPT_HELP:
        case OPT_VERSION:
            return help_or_version(c, inspect_help);
        }
    }
    if (rc)
        return rc;
    if (pubfile) {
        r = load_public_key(pubfile, &pub);
        if (r)
            return r;
    }
    r = read_certificate(in, &text, &len);
    if (r)
        return r;
    /* base64url has no '.': a dot means the three parts of a JWS */
    if (!memchr(text, '.', len))
        return inspect_activation(text, len, ek_ca_dir, as_json);
    if (!pub)
        return verb_usage_error(PROG " inspect",
                                "--public FILE is needed to verify a license certificate");
    return inspect_license(text, len, pub, as_json);
}

/* --- main ----------------------------------------------------------------------- */

static const char main_help[] =
    "Usage: " PROG " COMMAND [OPTIONS]\n"
    "\n"
    "The vendor's side of tpmlic licensing.\n"
    "\n"
    "  keygen --private FILE --public FILE [--force]\n"
    "      make the Ed25519 signing key pair\n"
    "  sign-activation --key FILE [--in FILE] --product NAME --customer-id N --type TYPE ...\n"
    "      check an appliance's activation certificate and print its license certificate\n"
    "  inspect --public FILE [--in FILE] [--json]\n"
    "      verify and show a license or activation certificate\n"
    "\n"
    "'" PROG " COMMAND --help' describes each command. Exit status: 0 success,\n"
    "1 refused or invalid input, 2 usage error.\n";

int main(int argc, char **argv) {
    static const struct verb commands[] = {
        {"keygen", cmd_keygen, NULL, NULL},
        {"sign-activation", cmd_sign_activation, NULL, NULL},
        {"inspect", cmd_inspect, NULL, NULL},
        {NULL, NULL, NULL, NULL},
    };

    return verb_dispatch(PROG, commands, main_help, PROG " " TPMLIC_VERSION, argc - 1, argv + 1,
                         NULL);
}
