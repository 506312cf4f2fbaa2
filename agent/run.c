/* tpmlicd's daemon: start-up in the order SPEC section 9 and STYLE habit 9
 * ask for (root-only inputs, TPM, computer ID, license from NV, socket,
 * privilege drop, serve), READY=1 to systemd, housekeeping on the main
 * thread between signals, and a stop in reverse order that joins every
 * thread before freeing what it uses. */
#include "agent/run.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <systemd/sd-daemon.h>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/http.h"
#include "agent/identity.h"
#include "agent/ledger.h"
#include "agent/online.h"
#include "agent/paths.h"
#include "agent/privs.h"
#include "agent/routes.h"
#include "agent/tpmio.h"
#include "agent/validator.h"
#include "common/json.h"
#include "common/licensecode.h"
#include "common/log.h"
#include "hwid/hwid.h"

/* Everything the daemon holds; freed in reverse order of creation. */
struct daemon {
    struct agent_config *cfg;
    EVP_PKEY *vendor_key;
    struct tpmio *tpm;
    struct hwid_info *hwid;
    struct tpm_ek ek;
    struct ledger *ledger;
    struct validator *validator;
    struct cert_ek_trust ek_trust;
    struct activation_fields zero_touch; /* from the license file */
    bool have_zero_touch;
    struct routes_ctx routes;
    struct http_server *http;
    int listen_fd;
    int state_fd;
    bool curl;
};

/* What decides trust is root's alone, or the agent does not start. */
static int check_trusted_files(struct daemon *d, char *err, size_t errlen) {
    const struct agent_config *c = d->cfg;
    struct stat st;
    int r;

    if (access(c->config_file, F_OK) == 0 &&
        (r = agent_path_trusted(c->config_file, "the config file", err, errlen)) < 0)
        return r;
    if ((r = agent_path_trusted(c->vendor_key, "the vendor key", err, errlen)) < 0) {
        if (r == -ENOENT)
            snprintf(err, errlen, "cannot read the vendor public key %s: %s", c->vendor_key,
                     strerror(ENOENT));
        return r;
    }
    if (c->server_ca && *c->server_ca &&
        (r = agent_path_trusted(c->server_ca, "the license server's CA", err, errlen)) < 0)
        return r;
    if (c->ek_ca_dir && *c->ek_ca_dir && stat(c->ek_ca_dir, &st) == 0 &&
        (r = agent_dir_trusted(c->ek_ca_dir, "the EK trust store", err, errlen)) < 0)
        return r;
    return 0;
}

/* Before the privilege drop: the owner authorization (a root-only file)
 * when one is configured, and the state directory (made and given to the
 * service user only when it is missing or not the user's yet: a packaged
 * image has it from tmpfiles.d, so the unit needs no CAP_CHOWN). */
static int prepare_as_root(struct daemon *d, char *err, size_t errlen) {
    struct passwd pw, *res = NULL;
    uint8_t owner[64];
    size_t owner_len = 0;
    char buf[4096];
    int r;

    if (d->cfg->user && (getpwnam_r(d->cfg->user, &pw, buf, sizeof(buf), &res) != 0 || !res)) {
        snprintf(err, errlen, "user '%s' does not exist", d->cfg->user);
        return -ESRCH;
    }
    r = agent_state_dir_open(d->cfg->state_dir, res ? res->pw_uid : (uid_t)-1,
                             res ? res->pw_gid : (gid_t)-1, &d->state_fd, err, errlen);
    if (r < 0 || !d->cfg->owner_auth_file || !*d->cfg->owner_auth_file)
        return r;
    r = agent_secret_file_read(d->cfg->owner_auth_file, "the owner authorization file", owner,
                               sizeof(owner), &owner_len, err, errlen);
    if (r == 0 && (r = tpmio_set_owner_auth(d->tpm, owner, owner_len)) < 0)
        snprintf(err, errlen, "setting the owner authorization failed");
    secure_wipe(owner, sizeof(owner));
    return r;
}

/* After the drop: the auth value of the NV indices, kept in the state
 * directory readable by the agent's user alone (nv.auth), made at the first
 * start. */
static int load_nv_auth(struct daemon *d, char *err, size_t errlen) {
    uint8_t auth[AGENT_NV_AUTH_LEN];
    bool created;
    int r = agent_nv_auth_load(d->state_fd, auth, &created, err, errlen);

    if (r < 0)
        return r;
    if (created)
        log_info("made the auth value for the agent's NV indices (%s/nv.auth)", d->cfg->state_dir);
    r = tpmio_set_nv_auth(d->tpm, auth, sizeof(auth));
    secure_wipe(auth, sizeof(auth));
    if (r < 0)
        snprintf(err, errlen, "setting the NV auth value failed");
    return r;
}

/* The license file for zero-touch provisioning (docs/packaging.md): the
 * license code and the operator's fields, as a POST of
 * /v1/management/license would carry them. It decides which license the
 * appliance takes, so it must be root's alone like the other trust files. */
static int read_license_file(struct daemon *d, char *err, size_t errlen) {
    static const char *const keys[] = {"license", "username", "email_address", "company_name",
                                       NULL};
    const char *path = d->cfg->license_file;
    _cleanup_(json_decrefp) json_t *o = NULL;
    _cleanup_free_ char *text = NULL;
    char msg[200], tail[LICENSE_CODE_LOG_BUFLEN];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    struct activation_fields *f = &d->zero_touch;
    size_t len = 0;
    FILE *fp;
    int r;

    if (!path || !*path || access(path, F_OK) < 0)
        return 0;
    r = agent_path_trusted(path, "the license file", err, errlen);
    if (r < 0)
        return r;
    fp = fopen(path, "re");
    if (!fp) {
        r = -errno;
        snprintf(err, errlen, "cannot read the license file %s: %s", path, strerror(errno));
        return r;
    }
    text = calloc(1, 4097);
    len = text ? fread(text, 1, 4097, fp) : 0;
    fclose(fp);
    if (!text)
        return -ENOMEM;
    if (len > 4096) {
        snprintf(err, errlen, "the license file %s is larger than 4096 bytes", path);
        return -EFBIG;
    }
    if (cj_load_object(text, len, false, &o, msg, sizeof(msg)) < 0 ||
        !cj_only_keys(&c, o, "", keys) ||
        !cj_license_code(&c, o, "license", true, f->license, sizeof(f->license)) ||
        !cj_string(&c, o, "username", CJ_OPTIONAL, CJ_TEXT, 128, f->username,
                   sizeof(f->username)) ||
        !cj_string(&c, o, "email_address", CJ_OPTIONAL, CJ_TEXT, 128, f->email_address,
                   sizeof(f->email_address)) ||
        !cj_string(&c, o, "company_name", CJ_OPTIONAL, CJ_TEXT, 128, f->company_name,
                   sizeof(f->company_name))) {
        secure_wipe(text, len);
        snprintf(err, errlen, "the license file %s: %s", path, msg);
        return -EINVAL;
    }
    secure_wipe(text, len);
    d->have_zero_touch = true;
    if (!d->cfg->server || !*d->cfg->server)
        log_warn("the license file %s names license %s, but no license server is configured to "
                 "activate it with",
                 path, license_code_for_log(f->license, tail));
    return 0;
}

static int load_vendor_key(struct daemon *d, char *err, size_t errlen) {
    FILE *f = fopen(d->cfg->vendor_key, "re");
    if (!f) {
        int r = -errno;
        snprintf(err, errlen, "cannot read the vendor public key %s: %s", d->cfg->vendor_key,
                 strerror(errno));
        return r;
    }
    d->vendor_key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!d->vendor_key || EVP_PKEY_get_base_id(d->vendor_key) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s is not an Ed25519 public key in PEM", d->cfg->vendor_key);
        return -EINVAL;
    }
    return 0;
}

static int open_socket(struct daemon *d, gid_t gid, bool have_gid, char *err, size_t errlen) {
    int r = http_listen_systemd(&d->listen_fd);
    if (r == 0) {
        log_info("serving on the socket passed by systemd");
        return 0;
    }
    if (r != -ENOENT) {
        snprintf(err, errlen,
                 "the socket passed by systemd is not one listening AF_UNIX stream socket");
        return r;
    }
    r = http_listen_unix(d->cfg->socket_path, (mode_t)d->cfg->socket_mode,
                         have_gid ? gid : (gid_t)-1, &d->listen_fd);
    if (r < 0)
        snprintf(err, errlen, "cannot listen on %s: %s", d->cfg->socket_path,
                 r == -EADDRINUSE ? "another agent is serving there" : strerror(-r));
    return r;
}

static int start(struct daemon *d, char *err, size_t errlen) {
    struct agent_config *cfg = d->cfg;
    struct http_server_config hc = {0};
    gid_t service_gid = 0, admin_gid = 0;
    bool have_service, have_admin;
    struct tpmio_health h;
    int r;

    if (online_global_init() < 0) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -EIO;
    }
    d->curl = true;

    /* 1. root-only inputs, the TPM (which proves its EK), the computer ID */
    r = check_trusted_files(d, err, errlen);
    if (r < 0)
        return r;
    r = load_vendor_key(d, err, errlen);
    if (r < 0)
        return r;
    r = agent_identity(cfg->tcti, cfg->allow_no_tpm, &d->tpm, &d->hwid, &d->ek, err, errlen);
    if (r < 0)
        return r;
    tpmio_health(d->tpm, &h);
    log_info("computer ID %s%s", d->hwid->computer_id,
             h.present ? "" : " (no TPM: development only)");
    r = cert_ek_trust(d->ek.cert_der, d->ek.cert_len, cfg->ek_ca_dir, &d->ek_trust);
    if (r < 0) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    if (h.present)
        log_info("EK certificate: %s",
                 d->ek_trust.certified ? "chains to the EK trust store" : d->ek_trust.why);
    r = prepare_as_root(d, err, errlen);
    if (r == 0)
        r = read_license_file(d, err, errlen);
    if (r < 0)
        return r;

    /* 2. the socket, owned by the service group */
    have_service = http_resolve_group(cfg->service_group, &service_gid) == 0;
    have_admin = http_resolve_group(cfg->admin_group, &admin_gid) == 0;
    if (!have_service)
        log_warn("group %s does not exist: only root may use the service endpoints",
                 cfg->service_group);
    if (!have_admin)
        log_warn("group %s does not exist: only root may use the management endpoints",
                 cfg->admin_group);
    r = open_socket(d, service_gid, have_service, err, errlen);
    if (r < 0)
        return r;

    /* 3. root is no longer needed */
    if (cfg->user) {
        r = agent_drop_privileges(cfg->user, err, errlen);
        if (r < 0)
            return r;
        log_info("running as user %s", cfg->user);
    }

    /* 4. the license from NV */
    if (h.present) {
        r = load_nv_auth(d, err, errlen);
        if (r < 0)
            return r;
    }
    {
        struct tpm_info info = {0};
        struct ledger_config lc = {
            .nv_base = cfg->nv_base,
            .vendor_key = d->vendor_key,
            .server_configured = cfg->server && *cfg->server,
            .computer_id = d->hwid->computer_id,
            .digests = &d->hwid->digests,
            .ek_spki = d->ek.spki_der,
            .ek_spki_len = d->ek.spki_len,
            .ek_cert = d->ek.cert_der,
            .ek_cert_len = d->ek.cert_len,
            .ek_trust = &d->ek_trust,
        };
        if (h.present && tpmio_info(d->tpm, &info) == 0)
            lc.tpm_software = info.is_software;
        r = ledger_new(&lc, d->tpm, &d->ledger);
        if (r < 0) {
            snprintf(err, errlen, "out of memory");
            return r;
        }
    }
    r = ledger_load(d->ledger, h.present, err, errlen);
    if (r < 0)
        return r;

    /* 5. serve */
    r = validator_new(
        &(struct validator_config){.server = cfg->server,
                                   .server_ca = cfg->server_ca,
                                   .state_fd = d->state_fd,
                                   .timeout_secs = cfg->server_timeout_secs,
                                   .vendor_key = d->vendor_key,
                                   .zero_touch = d->have_zero_touch ? &d->zero_touch : NULL},
        d->ledger, &d->validator);
    if (r < 0) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    d->routes.ledger = d->ledger;
    d->routes.validator = d->validator;
    d->routes.tpm = d->tpm;
    d->routes.state_fd = d->state_fd;
    hc.listen_fd = d->listen_fd;
    hc.routes = agent_routes(&hc.nroutes);
    hc.userdata = &d->routes;
    hc.service_gid = service_gid;
    hc.admin_gid = admin_gid;
    hc.have_service_gid = have_service;
    hc.have_admin_gid = have_admin;
    hc.service_group = cfg->service_group;
    hc.admin_group = cfg->admin_group;
    hc.max_connections = cfg->max_connections;
    hc.timeout_secs = cfg->timeout_secs;
    hc.threads = cfg->threads;
    /* changes run aside (they may wait on the TPM); as many may wait for
     * their turn as there can be connections, rather than get 503 */
    hc.max_blocking = cfg->max_connections;
    r = validator_start(d->validator);
    if (r < 0) {
        snprintf(err, errlen, "cannot start the validation thread: %s", strerror(-r));
        return r;
    }
    r = http_server_start(&hc, &d->http);
    if (r < 0) {
        snprintf(err, errlen, "cannot start the API server: %s", strerror(-r));
        return r;
    }
    d->routes.http = d->http;
    r = tpmio_start_watch(d->tpm, cfg->tpm_watch_secs);
    if (r < 0) {
        snprintf(err, errlen, "cannot start the TPM watch: %s", strerror(-r));
        return r;
    }
    return 0;
}

static void stop(struct daemon *d) {
    /* handlers first (they use everything), then the validator's thread
     * (it uses the ledger), then the ledger, then the TPM */
    http_server_stop(d->http);
    validator_free(d->validator);
    ledger_free(d->ledger);
    tpmio_free(d->tpm);
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    if (d->state_fd >= 0)
        close(d->state_fd);
    hwid_info_free(d->hwid);
    tpm_ek_clear(&d->ek);
    EVP_PKEY_free(d->vendor_key);
    secure_wipe(&d->zero_touch, sizeof(d->zero_touch));
    if (d->curl)
        online_global_cleanup();
}

/* Waits for SIGTERM or SIGINT, doing the ledger's housekeeping about once
 * a second meanwhile. */
static int serve(struct daemon *d, const sigset_t *sigs) {
    for (;;) {
        long cap = agent_clock_wait_cap_ms(), ms = cap > 0 && cap < 1000 ? cap : 1000;
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        int sig = sigtimedwait(sigs, NULL, &ts);

        if (sig == SIGTERM || sig == SIGINT)
            return sig;
        ledger_tick(d->ledger);
    }
}

int agent_run(struct agent_config *cfg) {
    struct daemon d = {.cfg = cfg, .listen_fd = -1, .state_fd = -1};
    sigset_t sigs;
    char err[512];
    int r, sig;

    /* Signals are taken by sigtimedwait; block them before any thread. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    r = start(&d, err, sizeof(err));
    if (r < 0) {
        log_error("%s", err);
        stop(&d);
        return r;
    }
    sd_notify(0, "READY=1\nSTATUS=serving");
    log_info("ready on %s (start-up took %lu TPM commands)", cfg->socket_path,
             tpmio_command_count(d.tpm));
    sig = serve(&d, &sigs);
    sd_notify(0, "STOPPING=1");
    log_info("stopping on signal %d", sig);
    stop(&d);
    return 0;
}
