/* hwid/: collects the three hardware components of the computer ID (SPEC
 * section 4, docs/computer-id.md) and explains them.
 *
 *   EK   the DER SubjectPublicKeyInfo handed over by tpm/ (hwid_set_ek), or
 *        no TPM at all (hwid_set_no_tpm, --allow-no-tpm);
 *   DMI  product_uuid, sys_vendor, product_name, board_serial read from a
 *        sysfs directory (hwid_read_dmi) -- product_uuid and board_serial
 *        are mode 0400: call it before dropping privileges;
 *   NIC  the permanent MAC addresses of the physical NICs enumerated with
 *        libudev (hwid_read_nics).
 *
 * Typical use in the agent:
 *
 *   _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
 *   hwid_info_new(&info);
 *   hwid_read_dmi(info, NULL);                  as root, before the drop
 *   hwid_read_nics(info, NULL);
 *   hwid_set_ek(info, ek.spki_der, ek.spki_len, ek.origin);  or hwid_set_no_tpm()
 *   hwid_finish(info);                          info->computer_id, info->digests
 *   hwid_explain_text(info, HWID_POLICY_DEFAULT, stdout);   --explain
 *
 * Everything returns 0 or a negative errno; nothing logs. A component that
 * cannot be read is not an error: it is recorded as absent, with the reason,
 * and the reason is what --explain prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "hwid/encode.h"
#include "hwid/id.h"

struct udev;

#define HWID_DMI_DIR_DEFAULT "/sys/class/dmi/id"

/* Where the NICs come from. All fields optional (a NULL source = defaults). */
struct hwid_source {
    /* NULL: udev_new() for the call. Tests point libudev at a recorded
     * machine with umockdev (LD_PRELOAD + UMOCKDEV_DIR), not through here. */
    struct udev *udev;
    /* Reads the permanent address of an interface whose current address is
     * not permanent (addr_assign_type != 0). NULL: ETHTOOL_GPERMADDR on the
     * running system. Returns 0, -ENODATA when the device reports none (all
     * zero), or another negative errno. Tests inject their own. */
    int (*permaddr)(const char *ifname, uint8_t ret_mac[HWID_MAC_LEN], void *userdata);
    void *userdata;
    /* true: never ask for the permanent address (addresses that are not
     * permanent in sysfs are left out). */
    bool no_permaddr;
};

/* One value that went into a component. */
struct hwid_entry {
    char *name;   /* "product_uuid", "ens3", "public key" */
    char *value;  /* printable ASCII (other bytes shown as \xNN) */
    char *detail; /* where it was read and why it counts */
};

/* Something that was looked at and left out. */
struct hwid_exclusion {
    char *name;   /* "board_serial", "docker0" */
    char *reason; /* "placeholder 'To Be Filled By O.E.M.'", "virtual device (...)" */
};

struct hwid_report {
    bool collected;      /* the reader ran (or the EK was set) */
    char *source;        /* "/sys/class/dmi/id", "udev: subsystem net", the EK origin */
    char *absent_reason; /* when absent: one sentence, for a person */
    struct hwid_entry *entries;
    size_t n_entries;
    struct hwid_exclusion *excluded;
    size_t n_excluded;
};

struct hwid_info {
    struct hwid_digests digests; /* present[]/digest[] per component */
    struct hwid_report report[HWID_COMPONENT_MAX];
    bool tpm;                         /* false after hwid_set_no_tpm() */
    char computer_id[HWID_ID_STRLEN]; /* "" until hwid_finish() succeeds */
};

/* Allocates an empty info; free with hwid_info_free() (accepts NULL). */
int hwid_info_new(struct hwid_info **ret);
void hwid_info_free(struct hwid_info *info);
static inline void hwid_info_freep(struct hwid_info **p) {
    hwid_info_free(*p);
}

/* Reads DMI from dir (NULL: HWID_DMI_DIR_DEFAULT). Missing directory,
 * placeholders and unreadable files make fields (or the component) absent,
 * with reasons; only -ENOMEM and bad arguments fail. */
int hwid_read_dmi(struct hwid_info *info, const char *dir);

/* Enumerates net devices with libudev and keeps the physical NICs' permanent
 * addresses. Returns 0 (also when none qualifies: the component is then
 * absent with a reason), or a negative errno when udev cannot enumerate. */
int hwid_read_nics(struct hwid_info *info, const struct hwid_source *src);

/* The EK public key as DER SubjectPublicKeyInfo (RSA) and where it came
 * from (e.g. "EK certificate at NV 0x01c00002"); the bytes are not kept.
 * -EINVAL for bad DER, -EOPNOTSUPP for a key that is not RSA >= 2048. */
int hwid_set_ek(struct hwid_info *info, const uint8_t *spki_der, size_t len, const char *origin);

/* No TPM (--allow-no-tpm): the EK is absent and the ID is marked
 * "tpm": false. why: shown by --explain (NULL for a default text). */
int hwid_set_no_tpm(struct hwid_info *info, const char *why);

/* Derives the computer ID from what was collected. -EINVAL when the EK was
 * neither set nor declared missing, or when no component is present. */
int hwid_finish(struct hwid_info *info);

/* Convenience: DMI from dmi_dir (NULL: default), NICs from src (NULL:
 * defaults), the EK from spki_der (NULL: no TPM), then hwid_finish(). */
int hwid_collect(const char *dmi_dir, const struct hwid_source *src, const uint8_t *spki_der,
                 size_t spki_len, const char *ek_origin, struct hwid_info **ret);

/* What the match policy relies on for a machine with these components, one
 * sentence into buf (always NUL-terminated). */
void hwid_policy_reliance(const struct hwid_digests *d, enum hwid_policy policy, char *buf,
                          size_t len);

/* --explain: every component (status, source, values, what was left out and
 * why, digest), then the computer ID and what the policy relies on. */
int hwid_explain_text(const struct hwid_info *info, enum hwid_policy policy, FILE *f);

/* The same as JSON: {"computer_id", "tpm", "policy", "relies_on",
 * "components": {"ek"|"dmi"|"nic": {"present", "source", "digest",
 * "absent_reason", "values": [...], "excluded": [...]}}}. *ret is new
 * (json_decref). */
int hwid_explain_json(const struct hwid_info *info, enum hwid_policy policy, json_t **ret);

/* --print-computer-id --json without --explain: {"computer_id", "tpm",
 * "hwid": {"ek", "dmi", "nic"}} with digests in hex or null when absent.
 * The "hwid" object is the one a license certificate records. */
int hwid_id_json(const struct hwid_info *info, json_t **ret);

/* A match result as JSON: {"matched", "changed": [...], "missing": [...],
 * "reason"}. */
int hwid_match_json(const struct hwid_match *m, json_t **ret);
