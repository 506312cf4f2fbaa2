/* --explain and --json renderings of a struct hwid_info: for each component
 * what was read, from where, what was left out and why, and its digest;
 * then the computer ID and what the match policy relies on here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "hwid/hwid.h"

/* json_decrefp comes with jansson (json_auto_t). */

static const char *const component_titles[HWID_COMPONENT_MAX] = {
    [HWID_EK] = "TPM endorsement key",
    [HWID_DMI] = "DMI/SMBIOS identity",
    [HWID_NIC] = "physical NICs, permanent MAC addresses",
};

void hwid_policy_reliance(const struct hwid_digests *d, enum hwid_policy policy, char *buf,
                          size_t len) {
    bool ek, dmi, nic;

    if (!buf || len == 0)
        return;
    if (!d) {
        snprintf(buf, len, "nothing collected");
        return;
    }
    ek = d->present[HWID_EK];
    dmi = d->present[HWID_DMI];
    nic = d->present[HWID_NIC];
    if (!ek) {
        snprintf(buf, len,
                 "no TPM: the ID carries no EK (\"tpm\": false); a license certificate that "
                 "records an EK cannot match; one made without a TPM needs %s",
                 policy == HWID_POLICY_ALL ? "DMI and NIC as recorded"
                 : dmi && nic              ? "DMI or NIC to match"
                 : dmi                     ? "DMI to match"
                 : nic                     ? "the NIC set to match"
                                           : "nothing else (no DMI, no NIC)");
        return;
    }
    if (policy == HWID_POLICY_ALL) {
        snprintf(buf, len, "policy all: the EK%s%s must match%s", dmi ? ", DMI" : "",
                 nic ? ", the NIC set" : "",
                 !dmi && !nic ? " (no DMI and no physical NIC here)"
                 : !dmi       ? " (no DMI here)"
                 : !nic       ? " (no physical NIC here)"
                              : "");
        return;
    }
    if (dmi && nic)
        snprintf(buf, len, "policy default: the EK must match, and DMI or the NIC set must match");
    else if (nic)
        snprintf(buf, len, "policy default: no DMI here, so the EK and the NIC set must match");
    else if (dmi)
        snprintf(buf, len, "policy default: no physical NIC here, so the EK and DMI must match");
    else
        snprintf(buf, len,
                 "policy default: no DMI and no physical NIC here, so the EK alone identifies "
                 "this machine");
}

int hwid_explain_text(const struct hwid_info *info, enum hwid_policy policy, FILE *f) {
    char hex[HWID_DIGEST_HEXLEN], reliance[256];

    if (!info || !f)
        return -EINVAL;
    fprintf(f, "computer ID: %s\n", info->computer_id[0] ? info->computer_id : "(none)");
    fprintf(f, "tpm: %s\n", info->tpm ? "yes" : "no (--allow-no-tpm: development only)");
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        const struct hwid_report *rep = &info->report[c];
        bool present = info->digests.present[c];

        fprintf(f, "\n%s: %s - %s\n", hwid_component_name(c), present ? "present" : "ABSENT",
                component_titles[c]);
        fprintf(f, "  source: %s\n", rep->source ? rep->source : "(not collected)");
        if (!present)
            fprintf(f, "  absent: %s\n", rep->absent_reason ? rep->absent_reason : "not collected");
        if (rep->n_entries) {
            fprintf(f, "  used:\n");
            for (size_t i = 0; i < rep->n_entries; i++)
                fprintf(f, "    %-14s %s  [%s]\n", rep->entries[i].name, rep->entries[i].value,
                        rep->entries[i].detail);
        }
        if (rep->n_excluded) {
            fprintf(f, "  left out:\n");
            for (size_t i = 0; i < rep->n_excluded; i++)
                fprintf(f, "    %-14s %s\n", rep->excluded[i].name, rep->excluded[i].reason);
        }
        if (present) {
            hwid_digest_to_hex(info->digests.digest[c], hex);
            fprintf(f, "  digest: %s\n", hex);
        } else
            fprintf(f, "  digest: none (enters the ID as absent)\n");
    }
    hwid_policy_reliance(&info->digests, policy, reliance, sizeof(reliance));
    fprintf(f, "\nmatch: %s\n", reliance);
    return ferror(f) ? -EIO : 0;
}

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static int set_new(json_t *obj, const char *key, json_t *v) {
    if (!v || json_object_set_new(obj, key, v) < 0)
        return -ENOMEM;
    return 0;
}

static int report_json(const struct hwid_info *info, int c, json_t **ret) {
    const struct hwid_report *rep = &info->report[c];
    _cleanup_(json_decrefp) json_t *o = json_object();
    _cleanup_(json_decrefp) json_t *values = json_array();
    _cleanup_(json_decrefp) json_t *excluded = json_array();
    char hex[HWID_DIGEST_HEXLEN];
    bool present = info->digests.present[c];
    int r;

    if (!o || !values || !excluded)
        return -ENOMEM;
    for (size_t i = 0; i < rep->n_entries; i++)
        if (json_array_append_new(values, json_pack("{s:s, s:s, s:s}", "name", rep->entries[i].name,
                                                    "value", rep->entries[i].value, "detail",
                                                    rep->entries[i].detail)) < 0)
            return -ENOMEM;
    for (size_t i = 0; i < rep->n_excluded; i++)
        if (json_array_append_new(excluded, json_pack("{s:s, s:s}", "name", rep->excluded[i].name,
                                                      "reason", rep->excluded[i].reason)) < 0)
            return -ENOMEM;
    if (present)
        hwid_digest_to_hex(info->digests.digest[c], hex);
    if ((r = set_new(o, "present", json_boolean(present))) < 0 ||
        (r = set_new(o, "source", str_or_null(rep->source))) < 0 ||
        (r = set_new(o, "digest", present ? json_string(hex) : json_null())) < 0 ||
        (r = set_new(o, "absent_reason",
                     present ? json_null()
                             : json_string(rep->absent_reason ? rep->absent_reason
                                                              : "not collected"))) < 0 ||
        (r = set_new(o, "values", TAKE_PTR(values))) < 0 ||
        (r = set_new(o, "excluded", TAKE_PTR(excluded))) < 0)
        return r;
    *ret = TAKE_PTR(o);
    return 0;
}

static int digests_json(const struct hwid_digests *d, json_t **ret) {
    _cleanup_(json_decrefp) json_t *o = json_object();
    char hex[HWID_DIGEST_HEXLEN];
    int r;

    if (!o)
        return -ENOMEM;
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        if (d->present[c])
            hwid_digest_to_hex(d->digest[c], hex);
        if ((r = set_new(o, hwid_component_name(c),
                         d->present[c] ? json_string(hex) : json_null())) < 0)
            return r;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

int hwid_id_json(const struct hwid_info *info, json_t **ret) {
    _cleanup_(json_decrefp) json_t *o = json_object();
    json_t *hw = NULL;
    int r;

    if (!info || !ret || !info->computer_id[0])
        return -EINVAL;
    if (!o)
        return -ENOMEM;
    if ((r = set_new(o, "computer_id", json_string(info->computer_id))) < 0 ||
        (r = set_new(o, "tpm", json_boolean(info->tpm))) < 0 ||
        (r = digests_json(&info->digests, &hw)) < 0 || (r = set_new(o, "hwid", hw)) < 0)
        return r;
    *ret = TAKE_PTR(o);
    return 0;
}

int hwid_explain_json(const struct hwid_info *info, enum hwid_policy policy, json_t **ret) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    _cleanup_(json_decrefp) json_t *comps = json_object();
    char reliance[256];
    int r;

    if (!info || !ret)
        return -EINVAL;
    if (!comps)
        return -ENOMEM;
    if (info->computer_id[0]) {
        if ((r = hwid_id_json(info, &o)) < 0)
            return r;
    } else {
        o = json_object();
        if (!o || (r = set_new(o, "computer_id", json_null())) < 0 ||
            (r = set_new(o, "tpm", json_boolean(info->tpm))) < 0)
            return -ENOMEM;
    }
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        json_t *one = NULL;
        if ((r = report_json(info, c, &one)) < 0 ||
            (r = set_new(comps, hwid_component_name(c), one)) < 0)
            return r;
    }
    hwid_policy_reliance(&info->digests, policy, reliance, sizeof(reliance));
    if ((r = set_new(o, "policy", json_string(hwid_policy_name(policy)))) < 0 ||
        (r = set_new(o, "relies_on", json_string(reliance))) < 0 ||
        (r = set_new(o, "components", TAKE_PTR(comps))) < 0)
        return r;
    *ret = TAKE_PTR(o);
    return 0;
}

int hwid_match_json(const struct hwid_match *m, json_t **ret) {
    _cleanup_(json_decrefp) json_t *o = json_object();
    _cleanup_(json_decrefp) json_t *changed = json_array();
    _cleanup_(json_decrefp) json_t *missing = json_array();
    int r;

    if (!m || !ret)
        return -EINVAL;
    if (!o || !changed || !missing)
        return -ENOMEM;
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        if ((m->changed & (1u << c)) &&
            json_array_append_new(changed, json_string(hwid_component_name(c))) < 0)
            return -ENOMEM;
        if ((m->missing & (1u << c)) &&
            json_array_append_new(missing, json_string(hwid_component_name(c))) < 0)
            return -ENOMEM;
    }
    if ((r = set_new(o, "matched", json_boolean(m->matched))) < 0 ||
        (r = set_new(o, "changed", TAKE_PTR(changed))) < 0 ||
        (r = set_new(o, "missing", TAKE_PTR(missing))) < 0 ||
        (r = set_new(o, "reason", json_string(m->reason))) < 0)
        return r;
    *ret = TAKE_PTR(o);
    return 0;
}
