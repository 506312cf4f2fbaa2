/* The collection of the three components into struct hwid_info and the
 * derivation of the computer ID (hwid/hwid.h). DMI is read in dmi.c, NICs
 * in nic.c, each into its component's report (report.c); the text and JSON
 * renderings are in explain.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwid/report.h"

int hwid_info_new(struct hwid_info **ret) {
    struct hwid_info *info;
    if (!ret)
        return -EINVAL;
    info = calloc(1, sizeof(*info));
    if (!info)
        return -ENOMEM;
    info->tpm = true;
    *ret = info;
    return 0;
}

void hwid_info_free(struct hwid_info *info) {
    if (!info)
        return;
    for (int c = 0; c < HWID_COMPONENT_MAX; c++)
        report_clear(&info->report[c]);
    free(info);
}

static void component_reset(struct hwid_info *info, enum hwid_component c) {
    report_clear(&info->report[c]);
    info->digests.present[c] = false;
    memset(info->digests.digest[c], 0, HWID_DIGEST_LEN);
    info->computer_id[0] = '\0';
}

int hwid_set_ek(struct hwid_info *info, const uint8_t *spki_der, size_t len, const char *origin) {
    struct hwid_report *rep;
    uint8_t d[HWID_DIGEST_LEN];
    char value[64], detail[64];
    int bits = 0, r;

    if (!info || !spki_der || len == 0)
        return -EINVAL;
    r = hwid_digest_ek_bits(spki_der, len, d, &bits);
    if (r < 0)
        return r;

    component_reset(info, HWID_EK);
    rep = &info->report[HWID_EK];
    rep->collected = true;
    info->tpm = true;
    snprintf(value, sizeof(value), "RSA-%d", bits);
    snprintf(detail, sizeof(detail), "DER SubjectPublicKeyInfo, %zu bytes", len);
    if ((r = report_set(&rep->source, "%s", origin && origin[0] ? origin : "given by the caller")) <
            0 ||
        (r = report_add_entry(rep, "public key", value, detail)) < 0)
        return r;
    memcpy(info->digests.digest[HWID_EK], d, HWID_DIGEST_LEN);
    info->digests.present[HWID_EK] = true;
    return 0;
}

int hwid_set_no_tpm(struct hwid_info *info, const char *why) {
    struct hwid_report *rep;
    int r;

    if (!info)
        return -EINVAL;
    component_reset(info, HWID_EK);
    rep = &info->report[HWID_EK];
    rep->collected = true;
    info->tpm = false;
    if ((r = report_set(&rep->source, "none (--allow-no-tpm)")) < 0 ||
        (r = report_set(&rep->absent_reason,
                        "no TPM (%s): the ID is marked \"tpm\": false and no license certificate "
                        "that records an EK can match it",
                        why && why[0] ? why : "started with --allow-no-tpm")) < 0)
        return r;
    return 0;
}

int hwid_finish(struct hwid_info *info) {
    if (!info || !info->report[HWID_EK].collected)
        return -EINVAL;
    return hwid_computer_id(&info->digests, info->computer_id);
}

int hwid_collect(const char *dmi_dir, const struct hwid_source *src, const uint8_t *spki_der,
                 size_t spki_len, const char *ek_origin, struct hwid_info **ret) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
    int r;

    if (!ret)
        return -EINVAL;
    if ((r = hwid_info_new(&info)) < 0 || (r = hwid_read_dmi(info, dmi_dir)) < 0 ||
        (r = hwid_read_nics(info, src)) < 0)
        return r;
    r = spki_der ? hwid_set_ek(info, spki_der, spki_len, ek_origin) : hwid_set_no_tpm(info, NULL);
    if (r < 0)
        return r;
    r = hwid_finish(info);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(info);
    return 0;
}
