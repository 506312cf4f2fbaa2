/* The collection of the three components into struct hwid_info and the
 * derivation of the computer ID (hwid/hwid.h). DMI is read in dmi.c, NICs
 * in nic.c; the text and JSON renderings are in explain.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwid/hwid-internal.h"

char *printable_dup(const char *s, size_t max) {
    size_t n = strnlen(s, max), o = 0;
    char *out = malloc(4 * n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)sprintf(out + o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

int report_set(char **field, const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    free(*field);
    *field = s;
    return 0;
}

int report_add_entry(struct hwid_report *r, const char *name, const char *value,
                     const char *detail) {
    struct hwid_entry *e = reallocarray(r->entries, r->n_entries + 1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    r->entries = e;
    e = &r->entries[r->n_entries];
    *e = (struct hwid_entry){
        .name = strdup(name),
        .value = strdup(value),
        .detail = strdup(detail ? detail : ""),
    };
    if (!e->name || !e->value || !e->detail) {
        free(e->name);
        free(e->value);
        free(e->detail);
        return -ENOMEM;
    }
    r->n_entries++;
    return 0;
}

int report_add_exclusion(struct hwid_report *r, const char *name, const char *fmt, ...) {
    struct hwid_exclusion *x = reallocarray(r->excluded, r->n_excluded + 1, sizeof(*x));
    char *reason = NULL;
    va_list ap;
    int n;

    if (!x)
        return -ENOMEM;
    r->excluded = x;
    va_start(ap, fmt);
    n = vasprintf(&reason, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    x = &r->excluded[r->n_excluded];
    *x = (struct hwid_exclusion){.name = strdup(name), .reason = reason};
    if (!x->name) {
        free(reason);
        return -ENOMEM;
    }
    r->n_excluded++;
    return 0;
}

void report_clear(struct hwid_report *r) {
    for (size_t i = 0; i < r->n_entries; i++) {
        free(r->entries[i].name);
        free(r->entries[i].value);
        free(r->entries[i].detail);
    }
    for (size_t i = 0; i < r->n_excluded; i++) {
        free(r->excluded[i].name);
        free(r->excluded[i].reason);
    }
    free(r->entries);
    free(r->excluded);
    free(r->source);
    free(r->absent_reason);
    *r = (struct hwid_report){0};
}

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
