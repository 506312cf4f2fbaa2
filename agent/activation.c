/* Activation requests (activation.h). */
#include "agent/activation.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/clock.h"
#include "common/hex.h"
#include "common/macro.h"

bool activation_build(const struct activation_machine *m, const struct activation_fields *f,
                      char **ret_text, char ret_nonce[33], struct outcome *o) {
    struct cert_activation act = {.is_vm = -1};
    char err[256];

    snprintf(act.license, sizeof(act.license), "%s", f->license);
    snprintf(act.username, sizeof(act.username), "%s", f->username);
    snprintf(act.email_address, sizeof(act.email_address), "%s", f->email_address);
    snprintf(act.company_name, sizeof(act.company_name), "%s", f->company_name);
    snprintf(act.computer_id, sizeof(act.computer_id), "%s", m->computer_id);
    act.hwid = *m->digests;
    /* the EK buffers stay the caller's: act is not cleared */
    act.ek_public = (uint8_t *)m->ek_spki;
    act.ek_public_len = m->ek_spki_len;
    act.ek_certificate = (uint8_t *)m->ek_cert;
    act.ek_certificate_len = m->ek_cert_len;
    act.counter.index = m->counter_index;
    if (m->counter_name_len > sizeof(act.counter.name))
        return outcome_set(o, OUTCOME_INTERNAL, "the usage counter's name is too long");
    memcpy(act.counter.name, m->counter_name, m->counter_name_len);
    act.counter.name_len = m->counter_name_len;
    act.counter.value = m->counter_value;
    if (m->floor_index) {
        if (m->floor_name_len > sizeof(act.time_floor.name))
            return outcome_set(o, OUTCOME_INTERNAL, "the hour counter's name is too long");
        act.time_floor.index = m->floor_index;
        memcpy(act.time_floor.name, m->floor_name, m->floor_name_len);
        act.time_floor.name_len = m->floor_name_len;
        act.time_floor.value = m->floor_value;
    }
    if (m->supersedes_jti && *m->supersedes_jti) {
        snprintf(act.supersedes_jti, sizeof(act.supersedes_jti), "%s", m->supersedes_jti);
        act.supersedes_ceiling = m->supersedes_ceiling;
    }
    if (m->ek_issuer)
        snprintf(act.ek_issuer, sizeof(act.ek_issuer), "%s", m->ek_issuer);
    if (hex_random(act.nonce, 16) < 0)
        return outcome_set(o, OUTCOME_INTERNAL, "no random numbers for the nonce");
    act.date = agent_now();
    if (gethostname(act.hostname, sizeof(act.hostname) - 1) < 0)
        act.hostname[0] = '\0';
    act.is_vm = m->tpm_software ? 1 : -1;
    snprintf(act.app_ver, sizeof(act.app_ver), "tpmlicd %s", TPMLIC_VERSION);
    if (cert_activation_encode(&act, ret_text, err, sizeof(err)) < 0)
        return outcome_set(o, OUTCOME_INTERNAL, "%s", err);
    memcpy(ret_nonce, act.nonce, 33);
    return true;
}
