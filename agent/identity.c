/* This machine's computer ID at start-up (identity.h). */
#include "agent/identity.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent/tpmio.h"
#include "common/macro.h"
#include "hwid/hwid.h"

DEFINE_PTR_CLEANUP(struct tpmio, tpmio_free)

int agent_identity(const char *tcti, bool allow_no_tpm, struct tpmio **ret_tpm,
                   struct hwid_info **ret_info, struct tpm_ek *ret_ek, char *err, size_t errlen) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
    _cleanup_(tpmio_freep) struct tpmio *tpm = NULL;
    struct tpm_ek ek = {0};
    char terr[256];
    int r;

    r = hwid_info_new(&info);
    if (r < 0)
        return r;
    /* Components that cannot be read are recorded as absent with a reason;
     * only allocation failures come back here. */
    r = hwid_read_dmi(info, NULL);
    if (r < 0)
        goto fail_hwid;
    r = hwid_read_nics(info, NULL);
    if (r < 0)
        goto fail_hwid;

    r = tpmio_open(tcti, &tpm, &ek, terr, sizeof(terr));
    if (r == -EKEYREJECTED) {
        snprintf(err, errlen, "%s", terr);
        return r;
    }
    if (r < 0) {
        if (!allow_no_tpm) {
            snprintf(err, errlen,
                     "no usable TPM: %s (--allow-no-tpm starts without one, for "
                     "development only)",
                     terr);
            return r;
        }
        r = tpmio_new_absent("no TPM (started with --allow-no-tpm)", &tpm);
        if (r == 0)
            r = hwid_set_no_tpm(info, terr);
        if (r < 0)
            goto fail_hwid;
    } else {
        r = hwid_set_ek(info, ek.spki_der, ek.spki_len, ek.origin);
        if (r < 0) {
            tpm_ek_clear(&ek);
            goto fail_hwid;
        }
    }
    r = hwid_finish(info);
    if (r < 0) {
        tpm_ek_clear(&ek);
        snprintf(err, errlen,
                 "no hardware component could be read: no TPM, no DMI identity "
                 "and no physical NIC");
        return r;
    }
    *ret_ek = ek;
    *ret_tpm = TAKE_PTR(tpm);
    *ret_info = TAKE_PTR(info);
    return 0;

fail_hwid:
    snprintf(err, errlen, "collecting the hardware identity failed: %s", strerror(-r));
    return r;
}

int agent_print_computer_id(const char *tcti, bool allow_no_tpm, bool explain, bool json, char *err,
                            size_t errlen) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
    _cleanup_(tpmio_freep) struct tpmio *tpm = NULL;
    _cleanup_(json_decrefp) json_t *j = NULL;
    struct tpm_ek ek;
    int r;

    r = agent_identity(tcti, allow_no_tpm, &tpm, &info, &ek, err, errlen);
    if (r < 0)
        return r;
    tpm_ek_clear(&ek);
    if (json) {
        r = explain ? hwid_explain_json(info, HWID_POLICY_DEFAULT, &j) : hwid_id_json(info, &j);
        if (r < 0 || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
            snprintf(err, errlen, "rendering JSON failed");
            return r < 0 ? r : -ENOMEM;
        }
        putchar('\n');
    } else if (explain) {
        r = hwid_explain_text(info, HWID_POLICY_DEFAULT, stdout);
        if (r < 0) {
            snprintf(err, errlen, "rendering the explanation failed");
            return r;
        }
    } else {
        printf("%s%s\n", info->computer_id, info->tpm ? "" : " (no TPM: development only)");
    }
    return fflush(stdout) == 0 ? 0 : -EIO;
}
