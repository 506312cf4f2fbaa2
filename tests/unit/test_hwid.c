/* Tests of the hwid collector on recorded machines: real libudev, pointed at
 * umockdev testbeds (the program re-executes itself under the umockdev
 * preload). KVM, VMware, Hyper-V, AWS Nitro and bare metal, each with and
 * without virtual interfaces; stability under reordering, renames, link
 * down; changes of EK, DMI UUID and NIC named by the match; placeholder,
 * missing and unreadable DMI; no physical NIC; no TPM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/macro.h"
#include "hwid/hwid.h"
#include "tests/unit/test_hwid_machines.h"

static uint8_t *ek_a, *ek_b;
static size_t ek_a_len, ek_b_len;

static const struct hwid_source src = {.permaddr = machine_permaddr};

static int make_ek(uint8_t **ret, size_t *ret_len) {
    EVP_PKEY *k = EVP_RSA_gen(2048);
    unsigned char *der = NULL;
    int len;
    if (!k)
        return -1;
    len = i2d_PUBKEY(k, &der);
    EVP_PKEY_free(k);
    if (len <= 0)
        return -1;
    *ret = der;
    *ret_len = (size_t)len;
    return 0;
}

static int group_setup(void **state) {
    return make_ek(&ek_a, &ek_a_len) < 0 || make_ek(&ek_b, &ek_b_len) < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
    OPENSSL_free(ek_a);
    OPENSSL_free(ek_b);
    return 0;
}

/* Collects the machine with EK a (or b, or none) and returns the info. */
static struct hwid_info *collect_ek(enum machine_kind kind, unsigned flags, const uint8_t *ek,
                                    size_t ek_len) {
    UMockdevTestbed *tb = machine_new(kind, flags);
    struct hwid_info *info = NULL;
    int r;

    assert_non_null(tb);
    r = hwid_collect(NULL, &src, ek, ek_len, ek ? "EK certificate at NV 0x01c00002" : NULL, &info);
    g_object_unref(tb);
    if (r < 0)
        fail_msg("%s flags 0x%x: hwid_collect: %s", machine_names[kind], flags, strerror(-r));
    return info;
}

static struct hwid_info *collect(enum machine_kind kind, unsigned flags) {
    return collect_ek(kind, flags, ek_a, ek_a_len);
}

static bool excluded_has(const struct hwid_info *info, int c, const char *name, const char *what) {
    const struct hwid_report *rep = &info->report[c];
    for (size_t i = 0; i < rep->n_excluded; i++)
        if (strcmp(rep->excluded[i].name, name) == 0 && strstr(rep->excluded[i].reason, what))
            return true;
    return false;
}

static char *explain(const struct hwid_info *info) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(hwid_explain_text(info, HWID_POLICY_DEFAULT, f), 0);
    fclose(f);
    return buf;
}

static void umockdev_active(void **state) {
    UMockdevTestbed *tb = machine_new(MACHINE_KVM, 0);
    assert_non_null(tb);
    /* the recorded machine is what the process sees, not the host */
    assert_int_equal(access("/sys/class/net/ens3/address", R_OK), 0);
    g_object_unref(tb);
}

static const size_t expected_nics[MACHINE_KIND_MAX] = {2, 1, 2, 1, 2};

static void machines_identified(void **state) {
    for (int k = 0; k < MACHINE_KIND_MAX; k++) {
        _cleanup_(hwid_info_freep) struct hwid_info *info = collect(k, 0);
        _cleanup_free_ char *text = explain(info);

        if (getenv("TPMLIC_HWID_SHOW")) /* print what --explain would show */
            printf("=== %s\n%s\n", machine_names[k], text);
        assert_true(info->tpm);
        assert_true(info->digests.present[HWID_EK]);
        assert_true(info->digests.present[HWID_DMI]);
        assert_true(info->digests.present[HWID_NIC]);
        assert_int_equal(info->report[HWID_NIC].n_entries, expected_nics[k]);
        assert_int_equal(strlen(info->computer_id), 36);
        assert_non_null(strstr(text, info->computer_id));
        assert_non_null(strstr(text, "EK certificate at NV 0x01c00002"));
        assert_non_null(strstr(text, "product_uuid"));
    }
}

static void machine_details(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *kvm = collect(MACHINE_KVM, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *vmw = collect(MACHINE_VMWARE, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *hv = collect(MACHINE_HYPERV, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *aws = collect(MACHINE_NITRO, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *metal = collect(MACHINE_METAL, 0);

    assert_string_equal(kvm->report[HWID_NIC].entries[0].value, "52:54:00:12:34:56");
    assert_non_null(strstr(kvm->report[HWID_NIC].entries[0].detail, "virtio bus (virtio_net)"));
    assert_true(excluded_has(kvm, HWID_DMI, "board_serial", "not provided"));
    assert_non_null(strstr(vmw->report[HWID_NIC].entries[0].detail, "PCI bus (vmxnet3)"));
    assert_true(excluded_has(vmw, HWID_DMI, "board_serial", "placeholder 'None'"));
    /* netvsc and its accelerated-networking VF share one address */
    assert_string_equal(hv->report[HWID_NIC].entries[0].value,
                        hv->report[HWID_NIC].entries[1].value);
    assert_non_null(strstr(hv->report[HWID_NIC].entries[1].detail, "Hyper-V VMBus (hv_netvsc)"));
    assert_non_null(strstr(hv->report[HWID_NIC].entries[1].detail, "counted once"));
    assert_non_null(strstr(hv->report[HWID_NIC].entries[0].detail, "PCI bus (mlx5_core)"));
    assert_non_null(strstr(aws->report[HWID_NIC].entries[0].detail, "locally administered"));
    assert_non_null(strstr(metal->report[HWID_NIC].entries[0].detail, "e1000e"));
    assert_non_null(strstr(metal->report[HWID_NIC].entries[1].detail, "igb"));
    assert_string_equal(metal->report[HWID_DMI].entries[0].value,
                        "00000000-0000-0000-0000-ac1f6b123456");
}

static void stable(void **state) {
    static const unsigned variations[] = {
        MF_VIRTUAL_IFS,
        MF_REVERSED,
        MF_RENAMED,
        MF_LINK_DOWN,
        MF_VIRTUAL_IFS | MF_REVERSED | MF_RENAMED | MF_LINK_DOWN,
        MF_BOND_SLAVE,
        MF_BOND_SLAVE | MF_VIRTUAL_IFS,
    };
    for (int k = 0; k < MACHINE_KIND_MAX; k++) {
        _cleanup_(hwid_info_freep) struct hwid_info *base = collect(k, 0);
        for (size_t v = 0; v < ARRAY_SIZE(variations); v++) {
            _cleanup_(hwid_info_freep) struct hwid_info *info = collect(k, variations[v]);
            if (strcmp(base->computer_id, info->computer_id) != 0)
                fail_msg("%s: ID changed under variation 0x%x", machine_names[k], variations[v]);
            assert_memory_equal(&base->digests, &info->digests, sizeof(base->digests));
        }
    }
}

static void virtual_interfaces_left_out(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = collect(MACHINE_KVM, MF_VIRTUAL_IFS);
    static const char *const names[] = {"lo",   "docker0", "veth3f2a1b0", "br0",   "tun0",
                                        "tap0", "wg0",     "vlan100",     "bond0", "macvlan0"};
    _cleanup_free_ char *text = explain(info);

    assert_int_equal(info->report[HWID_NIC].n_entries, 2);
    assert_int_equal(info->report[HWID_NIC].n_excluded, ARRAY_SIZE(names));
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        assert_true(excluded_has(info, HWID_NIC, names[i], "virtual device"));
    assert_true(
        excluded_has(info, HWID_NIC, "docker0", "virtual device (/devices/virtual/net/docker0)"));
    assert_true(excluded_has(info, HWID_NIC, "wg0", "virtual device (/devices/virtual/net/wg0)"));
    assert_non_null(strstr(text, "docker0"));
    assert_non_null(strstr(text, "left out:"));
}

static void changes_named(void **state) {
    struct {
        unsigned flags;
        bool other_ek;
        unsigned changed;
        bool matched_default, matched_all;
        const char *reason;
    } cases[] = {
        {MF_OTHER_UUID, false, 1u << HWID_DMI, true, false, "dmi changed"},
        {MF_NIC_REPLACED, false, 1u << HWID_NIC, true, false, "nic changed"},
        {0, true, 1u << HWID_EK, false, false, "EK changed (another TPM)"},
        {MF_OTHER_UUID | MF_NIC_REPLACED, false, (1u << HWID_DMI) | (1u << HWID_NIC), false, false,
         "DMI or NIC must match"},
    };
    for (int k = 0; k < MACHINE_KIND_MAX; k++) {
        _cleanup_(hwid_info_freep) struct hwid_info *base = collect(k, 0);
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
            _cleanup_(hwid_info_freep) struct hwid_info *info =
                collect_ek(k, cases[i].flags, cases[i].other_ek ? ek_b : ek_a,
                           cases[i].other_ek ? ek_b_len : ek_a_len);
            struct hwid_match m;

            assert_string_not_equal(base->computer_id, info->computer_id);
            assert_int_equal(hwid_match(&base->digests, &info->digests, HWID_POLICY_DEFAULT, &m),
                             0);
            if (m.changed != cases[i].changed || m.matched != cases[i].matched_default ||
                !strstr(m.reason, cases[i].reason))
                fail_msg("%s case %zu: changed 0x%x matched %d: %s", machine_names[k], i, m.changed,
                         m.matched, m.reason);
            assert_int_equal(m.missing, 0);
            assert_int_equal(hwid_match(&base->digests, &info->digests, HWID_POLICY_ALL, &m), 0);
            assert_int_equal(m.matched, cases[i].matched_all);
        }
    }
}

static void placeholder_dmi(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = collect(MACHINE_METAL, MF_PLACEHOLDER_DMI);
    _cleanup_(hwid_info_freep) struct hwid_info *none = collect(MACHINE_METAL, MF_NO_DMI);
    _cleanup_free_ char *text = explain(info);

    assert_false(info->digests.present[HWID_DMI]);
    assert_true(excluded_has(info, HWID_DMI, "product_uuid",
                             "placeholder UUID 03000200-0400-0500-0006-000700080009"));
    assert_true(excluded_has(info, HWID_DMI, "sys_vendor", "placeholder 'To Be Filled By O.E.M.'"));
    assert_true(excluded_has(info, HWID_DMI, "product_name", "placeholder 'Default string'"));
    assert_true(excluded_has(info, HWID_DMI, "board_serial", "placeholder"));
    assert_non_null(strstr(text, "dmi: ABSENT"));
    assert_non_null(strstr(text, "no usable DMI field"));
    assert_non_null(strstr(text, "no DMI here, so the EK and the NIC set must match"));
    /* placeholders are no identity: the same ID as without DMI at all */
    assert_string_equal(info->computer_id, none->computer_id);
}

static void no_dmi(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *with = collect(MACHINE_KVM, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *info = collect(MACHINE_KVM, MF_NO_DMI);
    _cleanup_free_ char *text = explain(info);
    struct hwid_match m;
    uint8_t zero[HWID_DIGEST_LEN] = {0};

    assert_false(info->digests.present[HWID_DMI]);
    assert_memory_equal(info->digests.digest[HWID_DMI], zero, HWID_DIGEST_LEN);
    assert_non_null(strstr(info->report[HWID_DMI].absent_reason, "no DMI/SMBIOS tables"));
    assert_non_null(strstr(text, "Firecracker"));
    assert_non_null(strstr(text, "digest: none"));
    assert_string_not_equal(with->computer_id, info->computer_id);
    /* a certificate recorded on the microVM: the NIC must match */
    assert_int_equal(hwid_match(&info->digests, &info->digests, HWID_POLICY_DEFAULT, &m), 0);
    assert_true(m.matched);
    assert_non_null(strstr(m.reason, "no DMI recorded: relies on EK and NIC"));
    {
        _cleanup_(hwid_info_freep) struct hwid_info *nic =
            collect(MACHINE_KVM, MF_NO_DMI | MF_NIC_REPLACED);
        assert_int_equal(hwid_match(&info->digests, &nic->digests, HWID_POLICY_DEFAULT, &m), 0);
        assert_false(m.matched);
        assert_non_null(strstr(m.reason, "no DMI recorded, so the NIC must match"));
    }
}

static void no_physical_nic(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *info =
        collect(MACHINE_NITRO, MF_NO_NIC | MF_VIRTUAL_IFS);
    _cleanup_(hwid_info_freep) struct hwid_info *bare =
        collect(MACHINE_NITRO, MF_NO_NIC | MF_NO_DMI);
    _cleanup_free_ char *text = explain(info);
    _cleanup_free_ char *bare_text = explain(bare);
    struct hwid_match m;

    assert_false(info->digests.present[HWID_NIC]);
    assert_non_null(strstr(info->report[HWID_NIC].absent_reason,
                           "no physical NIC with a permanent address (10 interfaces left out)"));
    assert_non_null(strstr(text, "no physical NIC here, so the EK and DMI must match"));
    assert_true(bare->digests.present[HWID_EK]);
    assert_int_equal(strlen(bare->computer_id), 36);
    assert_non_null(strstr(bare_text, "the EK alone identifies this machine"));
    assert_int_equal(hwid_match(&bare->digests, &bare->digests, HWID_POLICY_DEFAULT, &m), 0);
    assert_true(m.matched);
    assert_non_null(strstr(m.reason, "relies on the EK alone"));
}

static void no_tpm(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *with = collect(MACHINE_VMWARE, 0);
    _cleanup_(hwid_info_freep) struct hwid_info *info = collect_ek(MACHINE_VMWARE, 0, NULL, 0);
    _cleanup_free_ char *text = explain(info);
    json_t *j = NULL;
    struct hwid_match m;

    assert_false(info->tpm);
    assert_false(info->digests.present[HWID_EK]);
    assert_string_not_equal(with->computer_id, info->computer_id);
    assert_non_null(strstr(text, "tpm: no (--allow-no-tpm"));
    assert_non_null(strstr(text, "\"tpm\": false"));
    assert_int_equal(hwid_id_json(info, &j), 0);
    assert_true(json_is_false(json_object_get(j, "tpm")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "hwid"), "ek")));
    json_decref(j);
    assert_int_equal(hwid_match(&with->digests, &info->digests, HWID_POLICY_DEFAULT, &m), 0);
    assert_false(m.matched);
    assert_non_null(strstr(m.reason, "no TPM"));

    /* nothing at all: no ID, a clear error rather than an empty digest */
    UMockdevTestbed *tb = machine_new(MACHINE_KVM, MF_NO_DMI | MF_NO_NIC);
    struct hwid_info *none = NULL;
    assert_int_equal(hwid_collect(NULL, &src, NULL, 0, NULL, &none), -EINVAL);
    assert_null(none);
    g_object_unref(tb);
}

static int permaddr_none(const char *ifname, uint8_t mac[6], void *userdata) {
    return -ENODATA;
}

static void non_permanent_addresses(void **state) {
    UMockdevTestbed *tb = machine_new(MACHINE_METAL, MF_BOND_SLAVE);
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
    const struct hwid_source none = {.permaddr = permaddr_none};
    const struct hwid_source never = {.no_permaddr = true};

    assert_non_null(tb);
    /* ETHTOOL_GPERMADDR gives the slave's own address back */
    assert_int_equal(hwid_info_new(&info), 0);
    assert_int_equal(hwid_read_nics(info, &src), 0);
    assert_int_equal(info->report[HWID_NIC].n_entries, 2);
    assert_string_equal(info->report[HWID_NIC].entries[0].value, "ac:1f:6b:12:34:56");
    assert_non_null(strstr(info->report[HWID_NIC].entries[0].detail,
                           "ETHTOOL_GPERMADDR (current one was set)"));
    /* the device has no permanent address: left out, with the reason */
    assert_int_equal(hwid_read_nics(info, &none), 0);
    assert_int_equal(info->report[HWID_NIC].n_entries, 1);
    assert_true(excluded_has(info, HWID_NIC, "eno1",
                             "current address is set (addr_assign_type 3) and ETHTOOL_GPERMADDR "
                             "gave no permanent address"));
    assert_int_equal(hwid_read_nics(info, &never), 0);
    assert_true(excluded_has(info, HWID_NIC, "eno1", "permanent address not queried"));
    g_object_unref(tb);
}

static void json_rendering(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = collect(MACHINE_HYPERV, MF_VIRTUAL_IFS);
    json_t *j = NULL, *c;
    char *dump;
    json_error_t err;

    assert_int_equal(hwid_explain_json(info, HWID_POLICY_DEFAULT, &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "computer_id")), info->computer_id);
    assert_true(json_is_true(json_object_get(j, "tpm")));
    assert_string_equal(json_string_value(json_object_get(j, "policy")), "default");
    c = json_object_get(json_object_get(j, "components"), "nic");
    assert_true(json_is_true(json_object_get(c, "present")));
    assert_int_equal(json_array_size(json_object_get(c, "values")), 2);
    assert_int_equal(json_array_size(json_object_get(c, "excluded")), 10);
    assert_int_equal(strlen(json_string_value(json_object_get(c, "digest"))), 64);
    c = json_object_get(json_object_get(j, "components"), "dmi");
    assert_true(json_is_null(json_object_get(c, "absent_reason")));
    dump = json_dumps(j, JSON_COMPACT);
    assert_non_null(dump);
    json_decref(j);
    j = json_loads(dump, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(j);
    free(dump);
    json_decref(j);

    struct hwid_match m;
    struct hwid_digests other = info->digests;
    other.digest[HWID_EK][0] ^= 1;
    hwid_match(&info->digests, &other, HWID_POLICY_DEFAULT, &m);
    assert_int_equal(hwid_match_json(&m, &j), 0);
    assert_true(json_is_false(json_object_get(j, "matched")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "changed"), 0)), "ek");
    json_decref(j);
}

/* ---- DMI from constructed sysfs trees (plain directories) ------------------ */

static char *make_dmi_dir(const char *const kv[][2], size_t n) {
    char tmpl[] = "/tmp/hwid-dmi-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    chmod(dir, 0755);
    for (size_t i = 0; i < n; i++) {
        char path[256];
        int fd;
        snprintf(path, sizeof(path), "%s/%s", dir, kv[i][0]);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0400);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, kv[i][1], strlen(kv[i][1])), (ssize_t)strlen(kv[i][1]));
        close(fd);
    }
    return strdup(dir);
}

static void remove_dmi_dir(char *dir, const char *const kv[][2], size_t n) {
    char path[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, kv[i][0]);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
}

static void dmi_normalised(void **state) {
    static const char *const a[][2] = {
        {"product_uuid", "  4C4C4544-0042-3510-8051-B7C04F4E3132\n"},
        {"sys_vendor", "Dell Inc.   \n"},
        {"product_name", "PowerEdge R640\n"},
        {"board_serial", ".CNFCP0089B00XY.\n"},
    };
    static const char *const b[][2] = {
        {"product_uuid", "4c4c4544-0042-3510-8051-b7c04f4e3132"},
        {"sys_vendor", "Dell Inc."},
        {"product_name", "PowerEdge R640"},
        {"board_serial", ".CNFCP0089B00XY."},
    };
    static const char *const odd[][2] = {
        {"product_uuid", "not-a-uuid"},
        {"board_serial", "SN\x01\xff"
                         "42"},
        {"sys_vendor", "0000000"},
    };
    char *da = make_dmi_dir(a, ARRAY_SIZE(a)), *db = make_dmi_dir(b, ARRAY_SIZE(b));
    char *dodd = make_dmi_dir(odd, ARRAY_SIZE(odd));
    _cleanup_(hwid_info_freep) struct hwid_info *ia = NULL;
    _cleanup_(hwid_info_freep) struct hwid_info *ib = NULL;
    _cleanup_(hwid_info_freep) struct hwid_info *io = NULL;

    assert_int_equal(hwid_info_new(&ia), 0);
    assert_int_equal(hwid_info_new(&ib), 0);
    assert_int_equal(hwid_info_new(&io), 0);
    assert_int_equal(hwid_read_dmi(ia, da), 0);
    assert_int_equal(hwid_read_dmi(ib, db), 0);
    assert_int_equal(hwid_read_dmi(io, dodd), 0);
    assert_true(ia->digests.present[HWID_DMI]);
    assert_memory_equal(ia->digests.digest[HWID_DMI], ib->digests.digest[HWID_DMI],
                        HWID_DIGEST_LEN);
    assert_true(io->digests.present[HWID_DMI]);
    assert_true(excluded_has(io, HWID_DMI, "product_uuid", "not a UUID: 'not-a-uuid'"));
    assert_true(excluded_has(io, HWID_DMI, "sys_vendor", "placeholder '0000000'"));
    assert_string_equal(io->report[HWID_DMI].entries[0].value, "SN\\x01\\xff42");
    remove_dmi_dir(da, a, ARRAY_SIZE(a));
    remove_dmi_dir(db, b, ARRAY_SIZE(b));
    remove_dmi_dir(dodd, odd, ARRAY_SIZE(odd));
}

static void dmi_model_only(void **state) {
    static const char *const kv[][2] = {{"sys_vendor", "QEMU"},
                                        {"product_name", "Standard PC (i440FX + PIIX, 1996)"}};
    char *dir = make_dmi_dir(kv, ARRAY_SIZE(kv));
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;

    assert_int_equal(hwid_info_new(&info), 0);
    assert_int_equal(hwid_read_dmi(info, dir), 0);
    assert_false(info->digests.present[HWID_DMI]);
    assert_non_null(strstr(info->report[HWID_DMI].absent_reason, "name a model, not a machine"));
    remove_dmi_dir(dir, kv, ARRAY_SIZE(kv));
}

/* As the agent would after dropping privileges: product_uuid and
 * board_serial (mode 0400, owned by root) are unreadable. */
static void dmi_permission_denied(void **state) {
    static const char *const kv[][2] = {{"product_uuid", "5c1d2a3e-8f4b-4c6d-9e0f-1a2b3c4d5e6f"},
                                        {"board_serial", "ZM18AS012345"},
                                        {"sys_vendor", "QEMU"}};
    char *dir = make_dmi_dir(kv, ARRAY_SIZE(kv));
    char path[256];
    pid_t pid;
    int status;

    snprintf(path, sizeof(path), "%s/sys_vendor", dir);
    chmod(path, 0444);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hwid_info *info = NULL;
        if (geteuid() == 0) {
            if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                setresuid(65534, 65534, 65534) < 0)
                _exit(10);
        } else {
            snprintf(path, sizeof(path), "%s/product_uuid", dir);
            chmod(path, 0);
            snprintf(path, sizeof(path), "%s/board_serial", dir);
            chmod(path, 0);
        }
        if (hwid_info_new(&info) < 0 || hwid_read_dmi(info, dir) < 0)
            _exit(11);
        if (info->digests.present[HWID_DMI])
            _exit(12);
        if (!excluded_has(info, HWID_DMI, "product_uuid",
                          "unreadable: permission denied (root-only; read before dropping "
                          "privileges)") ||
            !excluded_has(info, HWID_DMI, "board_serial", "permission denied"))
            _exit(13);
        hwid_info_free(info);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    remove_dmi_dir(dir, kv, ARRAY_SIZE(kv));
}

static void bad_arguments(void **state) {
    _cleanup_(hwid_info_freep) struct hwid_info *info = NULL;
    assert_int_equal(hwid_info_new(&info), 0);
    assert_int_equal(hwid_finish(info), -EINVAL); /* EK neither set nor declared missing */
    assert_int_equal(hwid_set_ek(info, (const uint8_t *)"junk", 4, "x"), -EINVAL);
    assert_int_equal(hwid_read_dmi(NULL, NULL), -EINVAL);
    assert_int_equal(hwid_read_nics(NULL, NULL), -EINVAL);
    assert_int_equal(hwid_explain_text(info, HWID_POLICY_DEFAULT, NULL), -EINVAL);
    hwid_info_free(NULL);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(umockdev_active),
        cmocka_unit_test(machines_identified),
        cmocka_unit_test(machine_details),
        cmocka_unit_test(stable),
        cmocka_unit_test(virtual_interfaces_left_out),
        cmocka_unit_test(changes_named),
        cmocka_unit_test(placeholder_dmi),
        cmocka_unit_test(no_dmi),
        cmocka_unit_test(no_physical_nic),
        cmocka_unit_test(no_tpm),
        cmocka_unit_test(non_permanent_addresses),
        cmocka_unit_test(json_rendering),
        cmocka_unit_test(dmi_normalised),
        cmocka_unit_test(dmi_model_only),
        cmocka_unit_test(dmi_permission_denied),
        cmocka_unit_test(bad_arguments),
    };
    int r = machines_reexec_under_umockdev(argv);
    if (r < 0) {
        fprintf(stderr, "test_hwid: cannot run under the umockdev preload (%s); install umockdev\n",
                strerror(-r));
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
