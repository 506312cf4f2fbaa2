/* Offline activation (SPEC sections 5 and 6, seed 000): POST makes an
 * activation certificate carrying this machine's digests, its EK and the
 * current value of its usage counter; the vendor signs it into a license
 * certificate; PUT verifies that and keeps it in TPM NV. The request holds
 * nothing that must survive until the PUT, so the appliance may reboot in
 * between. */
#include "agent/activation.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "agent/agent.h"
#include "agent/api.h"
#include "agent/clock.h"
#include "agent/http.h"
#include "cert/cert.h"
#include "common/log.h"
#include "common/macro.h"
#include "hwid/hwid.h"
#include "tpm/tpm.h"

static void view_from_cert(const struct cert_license *c, struct license_view *v) {
    struct license_online online = v->online;
    memset(v, 0, sizeof(*v));
    v->online = online;
    snprintf(v->jti, sizeof(v->jti), "%s", c->jti);
    v->present = true;
    snprintf(v->code, sizeof(v->code), "%s", c->license);
    snprintf(v->product, sizeof(v->product), "%s", c->product);
    v->customer_id = c->customer_id;
    v->type = c->type;
    v->expiry = c->expiry;
    v->not_before = c->not_before;
    for (size_t i = 0; i < c->nfeatures && i < LICENSE_FEATURES_MAX; i++)
        snprintf(v->features[i], sizeof(v->features[i]), "%s", c->features[i]);
    v->nfeatures = c->nfeatures;
    v->secs_allocated = c->secs_allocated;
    v->secs_granted = c->secs_granted;
    v->offline_allowed = c->offline_allowed;
    v->activated_offline = c->activated_offline;
    v->tick_secs = c->tick_secs;
}

int agent_license_apply(struct agent *a, const char *cert, size_t len, const char *expect_code,
                        bool store, char *reason, size_t reasonlen) {
    struct cert_license l;
    struct hwid_match m;
    struct store_state st;
    char msg[300];
    enum cert_status s;
    bool same_base;
    int r;

    s = cert_license_verify(cert, len, a->vendor_key, agent_now(), &l, msg, sizeof(msg));
    if (s != CERT_OK) {
        snprintf(reason, reasonlen, "%s", msg);
        return -EINVAL;
    }
    if (!a->hwid || cert_license_match(&l, &a->hwid->digests, &m, msg, sizeof(msg)) != CERT_OK) {
        snprintf(reason, reasonlen, "%s", msg);
        return -EINVAL;
    }
    if (expect_code && strcmp(expect_code, l.license) != 0) {
        snprintf(reason, reasonlen, "the certificate is for license %s, not %s", l.license,
                 expect_code);
        return -EINVAL;
    }

    /* lock order: a->lock, then usage.lock, then tpm_lock */
    pthread_rwlock_rdlock(&a->lock);
    st = a->state;
    same_base = a->lic.present && a->lic_counter.base == l.counter.value;
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_lock(&a->usage.lock);
    pthread_mutex_lock(&a->tpm_lock);
    if (l.counter.index != a->counter.index || l.counter.name_len != a->counter.name_len ||
        memcmp(l.counter.name, a->counter.name, a->counter.name_len) != 0) {
        pthread_mutex_unlock(&a->tpm_lock);
        pthread_mutex_unlock(&a->usage.lock);
        snprintf(reason, reasonlen,
                 "the certificate is bound to usage counter 0x%08x of another TPM (or one "
                 "defined anew since the activation request); request a new activation",
                 l.counter.index);
        return -EINVAL;
    }
    if (l.counter.value > a->counter_value) {
        pthread_mutex_unlock(&a->tpm_lock);
        pthread_mutex_unlock(&a->usage.lock);
        snprintf(reason, reasonlen,
                 "the certificate's usage counter base %llu is ahead of this TPM's counter "
                 "(%llu): it was not made from this appliance's request",
                 (unsigned long long)l.counter.value, (unsigned long long)a->counter_value);
        return -EINVAL;
    }
    if (store) {
        if (!a->tpm) {
            pthread_mutex_unlock(&a->tpm_lock);
            pthread_mutex_unlock(&a->usage.lock);
            snprintf(reason, reasonlen, "the TPM is not available: %s", a->tpm_error);
            return -ENODEV;
        }
        r = agent_store_write_license(a->tpm, a->cfg->nv_base, cert, len);
        if (r == 0) {
            if (l.activated_offline)
                st.flags |= STORE_OFFLINE_MODE;
            if (l.secs_granted > st.granted_secs)
                st.granted_secs = l.secs_granted;
            r = agent_store_write_state(a->tpm, a->cfg->nv_base, &st);
        }
        if (r < 0) {
            agent_tpm_failed(a, r, "storing the license certificate");
            pthread_mutex_unlock(&a->tpm_lock);
            pthread_mutex_unlock(&a->usage.lock);
            snprintf(reason, reasonlen, "the license could not be stored in the TPM: %s",
                     a->tpm_error);
            return r;
        }
    }
    /* a certificate with another base: the covered seconds start from it
     * (a refill keeps the base, and so the pool) */
    if (!same_base)
        a->usage.pool = 0;
    pthread_mutex_unlock(&a->tpm_lock);
    pthread_mutex_unlock(&a->usage.lock);

    pthread_rwlock_wrlock(&a->lock);
    view_from_cert(&l, &a->lic);
    a->lic_counter.index = l.counter.index;
    a->lic_counter.base = l.counter.value;
    a->license_problem[0] = '\0';
    if (store) {
        if (l.activated_offline)
            a->state.flags |= STORE_OFFLINE_MODE;
        if (l.secs_granted > a->state.granted_secs)
            a->state.granted_secs = l.secs_granted;
    }
    pthread_rwlock_unlock(&a->lock);
    return 0;
}

/* {"license": CODE, "username"?, "email_address"?, "company_name"?}; the
 * caller has refused "certificate" already. */
static bool read_request(json_t *body, struct cert_activation *act, struct http_response *resp) {
    static const struct {
        const char *key;
        size_t off, size;
    } optional[] = {
        {"username", offsetof(struct cert_activation, username), 129},
        {"email_address", offsetof(struct cert_activation, email_address), 129},
        {"company_name", offsetof(struct cert_activation, company_name), 129},
    };
    json_t *lic = json_object_get(body, "license");
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        if (strcmp(key, "license") && strcmp(key, "username") && strcmp(key, "email_address") &&
            strcmp(key, "company_name")) {
            http_respond_error(resp, 400, "unknown field '%.40s'", key);
            return false;
        }
    }
    if (!json_is_string(lic) || json_string_length(lic) == 0 || json_string_length(lic) > 64 ||
        strspn(json_string_value(lic), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789._-") != json_string_length(lic)) {
        http_respond_error(resp, 400,
                           "Invalid license code: 'license' must be 1 to 64 letters, "
                           "digits, '.', '-' or '_'");
        return false;
    }
    snprintf(act->license, sizeof(act->license), "%s", json_string_value(lic));
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        v = json_object_get(body, optional[i].key);
        if (!v)
            continue;
        if (!json_is_string(v) || json_string_length(v) >= optional[i].size ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            http_respond_error(resp, 400, "field '%s' must be a string of at most %zu characters",
                               optional[i].key, optional[i].size - 1);
            return false;
        }
        for (const char *p = json_string_value(v); *p; p++)
            if ((unsigned char)*p < 0x20) {
                http_respond_error(resp, 400, "field '%s' contains control characters",
                                   optional[i].key);
                return false;
            }
        memcpy((char *)act + optional[i].off, json_string_value(v), json_string_length(v) + 1);
    }
    return true;
}

int agent_activation_make(struct agent *a, json_t *body, const char *what, char **ret_text,
                          char ret_nonce[33], struct http_response *resp) {
    struct cert_activation act = {.is_vm = -1};
    uint8_t nonce[16];
    char err[256];
    uint64_t value = 0;
    int r;

    if (!read_request(body, &act, resp))
        return -EINVAL;
    if (!a->ek_spki) {
        http_respond_error(resp, 503, "%s: no TPM (the agent runs with --allow-no-tpm)", what);
        return -ENODEV;
    }
    /* the counter's value now: the vendor signs it back as the base */
    pthread_mutex_lock(&a->usage.lock);
    pthread_mutex_lock(&a->tpm_lock);
    r = a->tpm ? tpm_counter_read(a->tpm, a->counter.index, &value) : -ENODEV;
    if (r < 0)
        agent_tpm_failed(a, r, "reading the usage counter");
    else
        a->counter_value = value;
    pthread_mutex_unlock(&a->tpm_lock);
    pthread_mutex_unlock(&a->usage.lock);
    if (r < 0) {
        http_respond_error(resp, 503, "%s: the TPM is not available", what);
        return r;
    }
    snprintf(act.computer_id, sizeof(act.computer_id), "%s", a->computer_id);
    act.hwid = a->hwid->digests;
    act.ek_public = a->ek_spki;
    act.ek_public_len = a->ek_spki_len;
    act.ek_certificate = a->ek_cert;
    act.ek_certificate_len = a->ek_cert_len;
    act.counter.index = a->counter.index;
    memcpy(act.counter.name, a->counter.name, a->counter.name_len);
    act.counter.name_len = a->counter.name_len;
    act.counter.value = value;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        http_respond_error(resp, 500, "no random numbers for the nonce");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(nonce); i++)
        snprintf(act.nonce + 2 * i, 3, "%02x", nonce[i]);
    act.date = agent_now();
    if (gethostname(act.hostname, sizeof(act.hostname) - 1) < 0)
        act.hostname[0] = '\0';
    act.is_vm = a->tpm_software ? 1 : -1;
    snprintf(act.app_ver, sizeof(act.app_ver), "tpmlicd %s", TPMLIC_VERSION);
    r = cert_activation_encode(&act, ret_text, err, sizeof(err));
    if (r < 0) {
        http_respond_error(resp, 500, "%s: %s", what, err);
        return r;
    }
    memcpy(ret_nonce, act.nonce, 33); /* 32 hex digits and the NUL */
    log_info("activation certificate made for license ...%s (counter value %llu)",
             license_code_tail(act.license), (unsigned long long)value);
    /* the EK buffers belong to the agent: act is not cleared */
    return 0;
}

void agent_post_offlineactivation(void *ud, const struct http_request *req,
                                  struct http_response *resp) {
    struct agent *a = ud;
    _cleanup_(json_decrefp) json_t *body = NULL;
    _cleanup_free_ char *text = NULL;
    char nonce[33];

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    if (json_object_get(body, "certificate")) {
        http_respond_error(resp, 400,
                           "Unable to request activation certificate: this request carries a "
                           "license certificate. To apply it, send the same body with PUT "
                           "/v1/management/license/offlineactivation");
        return;
    }
    if (agent_activation_make(a, body, "Unable to request activation certificate", &text, nonce,
                              resp) < 0)
        return;
    http_respond_json(resp, 200, json_pack("{s:s}", "activation_certificate", text));
}

void agent_put_offlineactivation(void *ud, const struct http_request *req,
                                 struct http_response *resp) {
    struct agent *a = ud;
    json_t *body = NULL, *lic, *cert;
    const char *key, *c;
    char reason[400];
    size_t n;
    json_t *v;
    int r;

    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "license") && strcmp(key, "certificate")) {
            http_respond_error(resp, 400, "unknown field '%.40s'", key);
            goto out;
        }
    }
    lic = json_object_get(body, "license");
    cert = json_object_get(body, "certificate");
    if (!json_is_string(lic) || !json_is_string(cert)) {
        http_respond_error(resp, 400,
                           "the body must be {\"license\": CODE, \"certificate\": "
                           "LICENSE_CERTIFICATE}");
        goto out;
    }
    /* a certificate pasted from an e-mail may carry white space around it */
    c = json_string_value(cert);
    n = json_string_length(cert);
    while (n && (*c == ' ' || *c == '\n' || *c == '\r' || *c == '\t'))
        c++, n--;
    while (n && (c[n - 1] == ' ' || c[n - 1] == '\n' || c[n - 1] == '\r' || c[n - 1] == '\t'))
        n--;
    r = agent_license_apply(a, c, n, json_string_value(lic), true, reason, sizeof(reason));
    if (r == -EINVAL) {
        log_warn("license certificate refused: %s", reason);
        http_respond_error(resp, 400, "License certificate refused: %s", reason);
        goto out;
    }
    if (r < 0) {
        http_respond_error(resp, 503, "License certificate not applied: %s", reason);
        goto out;
    }
    log_info("license ...%s applied by offline activation",
             license_code_tail(json_string_value(lic)));
    pthread_rwlock_rdlock(&a->lock);
    http_respond_json(resp, 200, agent_license_status_json(a));
    pthread_rwlock_unlock(&a->lock);
out:
    json_decref(body);
}
