/* DMI/SMBIOS identity from sysfs (/sys/class/dmi/id or a recorded tree):
 * product_uuid, sys_vendor, product_name, board_serial, normalised, with
 * firmware placeholders treated as absent. product_uuid and board_serial
 * are root-only: the agent reads them before it drops privileges. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hwid/report.h"

#define DMI_READ_MAX 1024

/* Values that firmware writes when the vendor filled nothing in. Compared
 * case-insensitively after trimming. */
static const char *const placeholders[] = {
    "Not Specified",
    "Not Specified.",
    "To Be Filled By O.E.M.",
    "To be filled by O.E.M.",
    "Default string",
    "Default String",
    "None",
    "Not Applicable",
    "Not Available",
    "Not Present",
    "Not Settable",
    "N/A",
    "NA",
    "Unknown",
    "Undefined",
    "OEM",
    "O.E.M.",
    "System Serial Number",
    "System Product Name",
    "System manufacturer",
    "System Version",
    "Base Board Serial Number",
    "Chassis Serial Number",
    "Serial Number",
    "SerialNumber",
    "Type1ProductConfigId",
    "123456789",
    "0123456789",
    "1234567890",
    "Default",
    "INVALID",
    "Empty",
};

static const char *const placeholder_uuids[] = {
    "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009", "00020003-0004-0005-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc",
};

/* A value with no letter or digit, or whose letters and digits are all one
 * of 0, f, x or * ("0000000", "FFFFFFFF", "xxxx-xxxx"). */
static bool is_filler(const char *v) {
    char first = 0;
    for (const char *p = v; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (!isalnum((unsigned char)c) && c != '*')
            continue;
        if (!first)
            first = c;
        else if (c != first)
            return false;
    }
    return first == 0 || first == '0' || first == 'f' || first == 'x' || first == '*';
}

static bool is_placeholder(const char *v) {
    for (size_t i = 0; i < ARRAY_SIZE(placeholders); i++)
        if (strcasecmp(v, placeholders[i]) == 0)
            return true;
    return is_filler(v);
}

static bool is_uuid(const char *v) {
    if (strlen(v) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (v[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)v[i]))
            return false;
    }
    return true;
}

/* Reads dir/name into buf (trimmed). 0, or -errno of open/read. */
static int read_field(int dirfd, const char *name, char *buf, size_t size) {
    _cleanup_close_ int fd = -1;
    size_t n = 0, start = 0;
    ssize_t k;

    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    while (n < size - 1) {
        k = read(fd, buf + n, size - 1 - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n))
        n = strlen(buf);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    while (start < n && isspace((unsigned char)buf[start]))
        start++;
    memmove(buf, buf + start, n - start + 1);
    return 0;
}

static int exclude_unreadable(struct hwid_report *rep, const char *name, int err) {
    if (err == -ENOENT)
        return report_add_exclusion(rep, name, "not provided by this firmware");
    if (err == -EACCES || err == -EPERM)
        return report_add_exclusion(
            rep, name,
            "unreadable: permission denied (root-only; read before dropping privileges)");
    return report_add_exclusion(rep, name, "unreadable: %s", strerror(-err));
}

int hwid_read_dmi(struct hwid_info *info, const char *dir) {
    struct hwid_report *rep;
    _cleanup_close_ int dirfd = -1;
    char values[HWID_DMI_FIELD_MAX][DMI_READ_MAX];
    const char *use[HWID_DMI_FIELD_MAX] = {NULL};
    uint8_t d[HWID_DIGEST_LEN];
    int r;

    if (!info)
        return -EINVAL;
    if (!dir)
        dir = HWID_DMI_DIR_DEFAULT;
    report_clear(&info->report[HWID_DMI]);
    info->digests.present[HWID_DMI] = false;
    memset(info->digests.digest[HWID_DMI], 0, HWID_DIGEST_LEN);
    info->computer_id[0] = '\0';
    rep = &info->report[HWID_DMI];
    rep->collected = true;
    if ((r = report_set(&rep->source, "%s", dir)) < 0)
        return r;

    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT)
            return report_set(&rep->absent_reason,
                              "no DMI/SMBIOS tables: %s does not exist (microVMs such as "
                              "Firecracker expose none)",
                              dir);
        return report_set(&rep->absent_reason, "no DMI: cannot open %s: %s", dir, strerror(errno));
    }

    for (int f = 0; f < HWID_DMI_FIELD_MAX; f++) {
        const char *name = hwid_dmi_field_name(f);
        _cleanup_free_ char *shown = NULL;
        _cleanup_free_ char *path = NULL;
        char *v = values[f];

        r = read_field(dirfd, name, v, sizeof(values[f]));
        if (r < 0) {
            if ((r = exclude_unreadable(rep, name, r)) < 0)
                return r;
            continue;
        }
        shown = printable_dup(v, HWID_DMI_VALUE_MAX + 1);
        if (!shown)
            return -ENOMEM;
        if (v[0] == '\0')
            r = report_add_exclusion(rep, name, "empty");
        else if (strlen(v) > HWID_DMI_VALUE_MAX)
            r = report_add_exclusion(rep, name, "longer than %d bytes", HWID_DMI_VALUE_MAX);
        else if (f == HWID_DMI_PRODUCT_UUID) {
            for (char *p = v; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            bool bogus = false;
            for (size_t i = 0; i < ARRAY_SIZE(placeholder_uuids); i++)
                bogus = bogus || strcmp(v, placeholder_uuids[i]) == 0;
            if (!is_uuid(v))
                r = is_placeholder(v) ? report_add_exclusion(rep, name, "placeholder '%s'", shown)
                                      : report_add_exclusion(rep, name, "not a UUID: '%s'", shown);
            else if (bogus)
                r = report_add_exclusion(rep, name, "placeholder UUID %s (firmware default)", v);
            else
                use[f] = v;
        } else if (is_placeholder(v))
            r = report_add_exclusion(rep, name, "placeholder '%s'", shown);
        else
            use[f] = v;
        if (r < 0)
            return r;
        if (use[f]) {
            _cleanup_free_ char *val = printable_dup(v, HWID_DMI_VALUE_MAX);
            if (!val || asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
            if ((r = report_add_entry(rep, name, val, path)) < 0)
                return r;
        }
    }

    r = hwid_digest_dmi(use, d);
    if (r == -ENODATA) {
        if (use[HWID_DMI_SYS_VENDOR] || use[HWID_DMI_PRODUCT_NAME])
            return report_set(&rep->absent_reason,
                              "no identifying DMI field (product_uuid or board_serial): "
                              "sys_vendor and product_name name a model, not a machine");
        return report_set(&rep->absent_reason, "no usable DMI field in %s", dir);
    }
    if (r < 0)
        return r;
    memcpy(info->digests.digest[HWID_DMI], d, HWID_DIGEST_LEN);
    info->digests.present[HWID_DMI] = true;
    return 0;
}
