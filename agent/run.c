/* tpmlicd's daemon: start-up in the order SPEC section 9 and STYLE habit 9
 * ask for (root-only inputs, TPM, computer ID, license from NV, socket,
 * privilege drop, serve), READY=1 to systemd, a TPM health watch, and an
 * orderly stop on SIGTERM/SIGINT. */
#include "agent/run.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <systemd/sd-daemon.h>

#include "agent/activation.h"
#include "agent/agent.h"
#include "agent/api.h"
#include "agent/http.h"
#include "agent/identity.h"
#include "agent/licensing.h"
#include "agent/online.h"
#include "agent/nvlayout.h"
#include "agent/privs.h"
#include "common/log.h"
#include "hwid/hwid.h"
#include "tpm/tpm.h"

void agent_tpm_failed(struct agent *a, int err, const char *what) {
    atomic_fetch_add(&a->tpm_errors, 1);
    snprintf(a->tpm_error, sizeof(a->tpm_error), "%s: %s", what,
             a->tpm ? tpm_last_error(a->tpm) : strerror(-err));
    log_error("%s", a->tpm_error);
    if (err == -ENODEV && a->tpm) {
        /* the connection is gone: the watch reopens it when the TPM is back */
        tpm_close(a->tpm);
        a->tpm = NULL;
    }
}

/* The counter our certificates are bound to: its TPM name and value. */
static int read_counter(struct agent *a) {
    uint32_t index = agent_nv_index(a->cfg->nv_base, AGENT_NV_COUNTER);
    struct tpm_nv_public pub;
    int r;

    r = tpm_nv_public(a->tpm, index, &pub);
    if (r == 0)
        r = tpm_counter_read(a->tpm, index, &a->counter_value);
    if (r < 0)
        return r;
    a->counter.index = index;
    a->counter.name_len = pub.name_len;
    memcpy(a->counter.name, pub.name, pub.name_len);
    return 0;
}

/* Watches the TPM: a failing ReadClock marks it lost (status, metrics);
 * a lost TPM is reopened when it answers again. Checks keep being answered
 * from memory either way. */
static void *tpm_watch(void *arg) {
    struct agent *a = arg;
    struct tpm_clock clk;
    char err[256];

    for (;;) {
        sleep(a->cfg->tpm_watch_secs);
        pthread_mutex_lock(&a->usage.lock); /* read_counter sets counter_value */
        pthread_mutex_lock(&a->tpm_lock);
        if (a->tpm && tpm_read_clock(a->tpm, &clk) < 0) {
            agent_tpm_failed(a, -ENODEV, "TPM lost");
            tpm_close(a->tpm);
            a->tpm = NULL;
        }
        if (!a->tpm && a->tpm_present) {
            struct tpm_ctx *t = NULL;
            if (tpm_open(a->cfg->tcti, 0, &t, err, sizeof(err)) == 0) {
                a->tpm = t;
                if (read_counter(a) == 0) {
                    a->tpm_error[0] = '\0';
                    log_info("TPM answers again at %s", a->cfg->tcti);
                }
            }
        }
        pthread_mutex_unlock(&a->tpm_lock);
        pthread_mutex_unlock(&a->usage.lock);
    }
    return NULL;
}

static int load_vendor_key(struct agent *a, char *err, size_t errlen) {
    FILE *f = fopen(a->cfg->vendor_key, "re");
    if (!f) {
        int r = -errno;
        snprintf(err, errlen, "cannot read the vendor public key %s: %s", a->cfg->vendor_key,
                 strerror(errno));
        return r;
    }
    a->vendor_key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!a->vendor_key || EVP_PKEY_get_base_id(a->vendor_key) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s is not an Ed25519 public key in PEM", a->cfg->vendor_key);
        return -EINVAL;
    }
    return 0;
}

/* Reads the license from NV and verifies it; a stored license that does not
 * verify leaves the agent unlicensed with the reason in license_problem. */
static void load_license(struct agent *a) {
    _cleanup_free_ char *cert = NULL;
    size_t len = 0;
    int r;

    r = agent_store_read_state(a->tpm, a->cfg->nv_base, &a->state);
    if (r < 0) {
        log_warn("agent state in NV is unreadable (%s); starting from defaults",
                 r == -EBADMSG ? "damaged record" : tpm_last_error(a->tpm));
        memset(&a->state, 0, sizeof(a->state));
    }
    r = agent_store_read_license(a->tpm, a->cfg->nv_base, &cert, &len);
    if (r == -EBADMSG) {
        snprintf(a->license_problem, sizeof(a->license_problem),
                 "the license record in the TPM is damaged (interrupted write): apply the license "
                 "certificate again");
        log_error("%s", a->license_problem);
        return;
    }
    if (r < 0) {
        snprintf(a->license_problem, sizeof(a->license_problem),
                 "the license record in the TPM is unreadable: %s", tpm_last_error(a->tpm));
        log_error("%s", a->license_problem);
        return;
    }
    if (!cert) {
        log_info("no license applied");
        return;
    }
    r = agent_license_apply(a, cert, len, NULL, false, a->license_problem,
                            sizeof(a->license_problem));
    if (r < 0)
        log_error("the stored license is not accepted: %s", a->license_problem);
    else
        log_info("license ...%s for product %s loaded from the TPM", license_code_tail(a->lic.code),
                 a->lic.product);
}

static int open_socket(struct agent *a, gid_t gid, bool have_gid, int *ret_fd, char *err,
                       size_t errlen) {
    int r = http_listen_systemd(ret_fd);
    if (r == 0) {
        log_info("serving on the socket passed by systemd");
        return 0;
    }
    if (r != -ENOENT) {
        snprintf(err, errlen,
                 "the socket passed by systemd is not one listening AF_UNIX stream "
                 "socket");
        return r;
    }
    r = http_listen_unix(a->cfg->socket_path, (mode_t)a->cfg->socket_mode,
                         have_gid ? gid : (gid_t)-1, ret_fd);
    if (r < 0)
        snprintf(err, errlen, "cannot listen on %s: %s", a->cfg->socket_path,
                 r == -EADDRINUSE ? "another agent is serving there" : strerror(-r));
    return r;
}

/* The state directory belongs to the service user, so the agent can still
 * write it after dropping root. */
static int prepare_state_dir(struct agent *a, char *err, size_t errlen) {
    struct passwd pw, *res = NULL;
    char buf[4096];

    if (mkdir(a->cfg->state_dir, 0750) < 0 && errno != EEXIST) {
        int r = -errno;
        snprintf(err, errlen, "cannot create state directory %s: %s", a->cfg->state_dir,
                 strerror(errno));
        return r;
    }
    if (a->cfg->user && getpwnam_r(a->cfg->user, &pw, buf, sizeof(buf), &res) == 0 && res &&
        chown(a->cfg->state_dir, pw.pw_uid, pw.pw_gid) < 0) {
        int r = -errno;
        snprintf(err, errlen, "cannot give %s to user %s: %s", a->cfg->state_dir, a->cfg->user,
                 strerror(errno));
        return r;
    }
    return 0;
}

int agent_run(struct agent_config *cfg) {
    struct agent a = {.cfg = cfg};
    struct http_server_config hc = {0};
    struct tpm_ek ek = {0};
    gid_t service_gid = 0, admin_gid = 0;
    bool have_service, have_admin;
    pthread_t watch;
    sigset_t sigs;
    char err[512];
    int fd = -1, sig, r;

    pthread_mutex_init(&a.tpm_lock, NULL);
    pthread_rwlock_init(&a.lock, NULL);
    agent_usage_init(&a.usage);
    a.started = time(NULL);
    if (online_global_init() < 0) {
        log_error("cannot initialise libcurl");
        return 1;
    }

    /* Signals are taken by sigwait below; block them before any thread. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* 1. root-only inputs, the TPM, the computer ID */
    r = load_vendor_key(&a, err, sizeof(err));
    if (r < 0)
        goto fail;
    r = agent_identity(cfg->tcti, cfg->allow_no_tpm, &a.tpm, &a.hwid, &ek, err, sizeof(err));
    if (r < 0)
        goto fail;
    a.ek_spki = ek.spki_der;
    a.ek_spki_len = ek.spki_len;
    a.ek_cert = ek.cert_der;
    a.ek_cert_len = ek.cert_len;
    if (a.tpm) {
        struct tpm_info info;
        tpm_get_info(a.tpm, &info);
        a.tpm_software = info.is_software;
    }
    a.tpm_present = a.tpm != NULL;
    snprintf(a.computer_id, sizeof(a.computer_id), "%s", a.hwid->computer_id);
    log_info("computer ID %s%s", a.computer_id, a.tpm ? "" : " (no TPM: development only)");

    /* 2. our NV indices, then the license from NV */
    if (a.tpm) {
        unsigned created = 0;
        r = agent_store_ensure(a.tpm, cfg->nv_base, &created);
        if (r < 0) {
            snprintf(err, sizeof(err), "the agent's NV indices at 0x%08x: %s", cfg->nv_base,
                     tpm_last_error(a.tpm));
            goto fail;
        }
        if (created)
            log_info("defined the agent's NV indices at 0x%08x", cfg->nv_base);
        r = read_counter(&a);
        if (r < 0) {
            snprintf(err, sizeof(err), "reading the usage counter: %s", tpm_last_error(a.tpm));
            goto fail;
        }
        load_license(&a);
    } else {
        snprintf(a.tpm_error, sizeof(a.tpm_error), "no TPM (started with --allow-no-tpm)");
        snprintf(a.license_problem, sizeof(a.license_problem),
                 "no TPM: a license cannot be kept without one");
    }

    /* 3. the socket, owned by the service group */
    have_service = http_resolve_group(cfg->service_group, &service_gid) == 0;
    have_admin = http_resolve_group(cfg->admin_group, &admin_gid) == 0;
    if (!have_service)
        log_warn("group %s does not exist: only root may use the service endpoints",
                 cfg->service_group);
    if (!have_admin)
        log_warn("group %s does not exist: only root may use the management endpoints",
                 cfg->admin_group);
    r = prepare_state_dir(&a, err, sizeof(err));
    if (r < 0)
        goto fail;
    r = open_socket(&a, service_gid, have_service, &fd, err, sizeof(err));
    if (r < 0)
        goto fail;

    /* 4. root is no longer needed */
    if (cfg->user) {
        r = agent_drop_privileges(cfg->user, err, sizeof(err));
        if (r < 0)
            goto fail;
        log_info("running as user %s", cfg->user);
    }

    /* 5. serve */
    hc.listen_fd = fd;
    hc.routes = agent_routes(&hc.nroutes);
    hc.userdata = &a;
    hc.service_gid = service_gid;
    hc.admin_gid = admin_gid;
    hc.have_service_gid = have_service;
    hc.have_admin_gid = have_admin;
    hc.service_group = cfg->service_group;
    hc.admin_group = cfg->admin_group;
    hc.max_connections = cfg->max_connections;
    hc.timeout_secs = cfg->timeout_secs;
    hc.threads = cfg->threads;
    /* reservations run aside (they may write the TPM); as many may wait
     * for their turn as there can be connections, rather than get 503 */
    hc.max_blocking = cfg->max_connections;
    r = agent_online_start(&a);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot start the validation thread: %s", strerror(-r));
        goto fail;
    }
    r = http_server_start(&hc, &a.http);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot start the API server: %s", strerror(-r));
        goto fail;
    }
    if (pthread_create(&watch, NULL, tpm_watch, &a) == 0)
        pthread_detach(watch);
    sd_notify(0, "READY=1\nSTATUS=serving");
    log_info("ready on %s (start-up took %lu TPM commands)", cfg->socket_path,
             a.tpm ? tpm_command_count(a.tpm) : 0ul);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
    }
    sd_notify(0, "STOPPING=1");
    log_info("stopping on signal %d", sig);
    http_server_stop(a.http);
    agent_online_stop(&a);
    close(fd);
    pthread_mutex_lock(&a.tpm_lock);
    tpm_close(a.tpm);
    a.tpm = NULL;
    pthread_mutex_unlock(&a.tpm_lock);
    hwid_info_free(a.hwid);
    EVP_PKEY_free(a.vendor_key);
    tpm_ek_clear(&ek);
    online_global_cleanup();
    return 0;

fail:
    log_error("%s", err);
    agent_online_stop(&a);
    online_global_cleanup();
    if (fd >= 0)
        close(fd);
    tpm_close(a.tpm);
    hwid_info_free(a.hwid);
    EVP_PKEY_free(a.vendor_key);
    tpm_ek_clear(&ek);
    return r;
}
