/* libFuzzer harness for what the computer ID reads (hwid/): the EK public
 * key as DER (hwid_digest_ek_bits, fed from activation certificates that
 * the vendor decodes), digests as hex (hwid_digest_from_hex, from
 * certificates and the server's database), the DMI and NIC encoders, and
 * the DMI reader on files whose contents are the input (hwid_read_dmi:
 * firmware strings that whoever owns the hypervisor writes) rendered by
 * --explain. The first byte chooses which; the rest is its input.
 * Checked besides the sanitizers: hex that decodes encodes back to the
 * same text, the NIC digest does not depend on the order of the addresses,
 * an EK digest is the same twice, the rendering never fails but for
 * memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hwid/encode.h"
#include "hwid/hwid.h"
#include "hwid/id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dmi_dir[64];
static FILE *devnull;

static void ek(const uint8_t *p, size_t n) {
    uint8_t d1[HWID_DIGEST_LEN], d2[HWID_DIGEST_LEN];
    int bits = 0;
    if (hwid_digest_ek_bits(p, n, d1, &bits) < 0)
        return;
    if (bits < 2048 || hwid_digest_ek(p, n, d2) < 0 || memcmp(d1, d2, sizeof(d1)))
        abort();
}

static void hex(const uint8_t *p, size_t n) {
    char *s = strndup((const char *)p, n), again[HWID_DIGEST_HEXLEN];
    uint8_t d[HWID_DIGEST_LEN];
    if (!s)
        return;
    if (hwid_digest_from_hex(s, d) == 0) {
        hwid_digest_to_hex(d, again);
        if (strcmp(s, again) != 0)
            abort();
    }
    free(s);
}

/* Up to four NUL-separated values; an empty one is absent. */
static int split(const uint8_t *p, size_t n, char vals[HWID_DMI_FIELD_MAX][1100],
                 bool present[HWID_DMI_FIELD_MAX]) {
    size_t f = 0, at = 0;
    memset(present, 0, HWID_DMI_FIELD_MAX * sizeof(bool));
    for (size_t i = 0; i <= n && f < HWID_DMI_FIELD_MAX; i++) {
        if (i < n && p[i] != 0)
            continue;
        if (i - at >= 1100)
            return -1;
        memcpy(vals[f], p + at, i - at);
        vals[f][i - at] = '\0';
        present[f] = i > at;
        f++;
        at = i + 1;
    }
    return 0;
}

static void dmi_digest(const uint8_t *p, size_t n) {
    char vals[HWID_DMI_FIELD_MAX][1100];
    bool present[HWID_DMI_FIELD_MAX];
    const char *use[HWID_DMI_FIELD_MAX];
    uint8_t d[HWID_DIGEST_LEN];
    if (split(p, n, vals, present) < 0)
        return;
    for (int f = 0; f < HWID_DMI_FIELD_MAX; f++)
        use[f] = present[f] ? vals[f] : NULL;
    (void)hwid_digest_dmi(use, d);
}

static void nic_digest(const uint8_t *p, size_t n) {
    uint8_t macs[HWID_NIC_MAX + 4][HWID_MAC_LEN], rev[HWID_NIC_MAX + 4][HWID_MAC_LEN];
    uint8_t d1[HWID_DIGEST_LEN], d2[HWID_DIGEST_LEN];
    size_t k = n / HWID_MAC_LEN;
    int r1, r2;
    if (k > HWID_NIC_MAX + 4)
        k = HWID_NIC_MAX + 4;
    memcpy(macs, p, k * HWID_MAC_LEN);
    for (size_t i = 0; i < k; i++)
        memcpy(rev[i], macs[k - 1 - i], HWID_MAC_LEN);
    r1 = hwid_digest_nic(macs, k, d1);
    r2 = hwid_digest_nic(rev, k, d2);
    if (r1 != r2 || (r1 == 0 && memcmp(d1, d2, sizeof(d1))))
        abort();
}

static void dmi_files(const uint8_t *p, size_t n) {
    char vals[HWID_DMI_FIELD_MAX][1100];
    bool present[HWID_DMI_FIELD_MAX];
    struct hwid_info *info = NULL;
    json_t *j = NULL;

    if (split(p, n, vals, present) < 0)
        return;
    for (int f = 0; f < HWID_DMI_FIELD_MAX; f++) {
        char path[128];
        int fd;
        snprintf(path, sizeof(path), "%s/%s", dmi_dir, hwid_dmi_field_name(f));
        unlink(path);
        if (!present[f])
            continue; /* not provided by this firmware */
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, vals[f], strlen(vals[f])) < 0)
            abort();
        close(fd);
    }
    if (hwid_info_new(&info) < 0)
        return;
    if (hwid_read_dmi(info, dmi_dir) < 0 || hwid_set_no_tpm(info, NULL) < 0) {
        hwid_info_free(info);
        return;
    }
    (void)hwid_finish(info); /* -EINVAL: no component present */
    if (hwid_explain_text(info, HWID_POLICY_DEFAULT, devnull) == -EINVAL ||
        hwid_explain_json(info, HWID_POLICY_ALL, &j) == -EINVAL)
        abort();
    json_decref(j);
    hwid_info_free(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!devnull) {
        snprintf(dmi_dir, sizeof(dmi_dir), "/tmp/fuzz-hwid-dmi.%d", (int)getpid());
        if (mkdir(dmi_dir, 0700) < 0 && errno != EEXIST)
            abort();
        devnull = fopen("/dev/null", "we");
        if (!devnull)
            abort();
    }
    if (size < 1 || size > 8192)
        return 0;
    switch (data[0] % 5) {
    case 0:
        ek(data + 1, size - 1);
        break;
    case 1:
        hex(data + 1, size - 1);
        break;
    case 2:
        dmi_digest(data + 1, size - 1);
        break;
    case 3:
        nic_digest(data + 1, size - 1);
        break;
    case 4:
        dmi_files(data + 1, size - 1);
        break;
    }
    return 0;
}
