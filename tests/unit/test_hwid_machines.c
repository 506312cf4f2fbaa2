/* Recorded machines (see test_hwid_machines.h), written in the umockdev
 * record format: each physical NIC is a net device under its bus device,
 * with the sysfs attributes the collector reads (address, addr_assign_type,
 * type) and the udev properties (SUBSYSTEM, DEVTYPE, DRIVER). */
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/test_hwid_machines.h"

const char *const machine_names[MACHINE_KIND_MAX] = {
    "KVM/QEMU guest (virtio-net)", "VMware guest (vmxnet3)",      "Hyper-V guest (netvsc + VF)",
    "AWS Nitro instance (ENA)",    "bare metal (two Intel NICs)",
};

struct nic_def {
    const char *bus_records; /* the bus device and its parents, record format */
    const char *parent;      /* devpath of the bus device */
    const char *name, *renamed;
    const char *mac, *replaced_mac;
};

struct machine_def {
    const char *vendor, *product, *uuid, *other_uuid, *board_serial;
    struct nic_def nics[3];
};

#define PCI(path, drv) "P: " path "\nE: SUBSYSTEM=pci\nE: DRIVER=" drv "\nA: vendor=0x8086\n\n"

static const struct machine_def machines[MACHINE_KIND_MAX] = {
    [MACHINE_KVM] =
        {"QEMU",
         "Standard PC (Q35 + ICH9, 2009)",
         "5c1d2a3e-8f4b-4c6d-9e0f-1a2b3c4d5e6f",
         "5c1d2a3e-8f4b-4c6d-9e0f-1a2b3c4d5e70",
         NULL,
         {{"P: /devices/pci0000:00/0000:00:03.0/virtio0\nE: SUBSYSTEM=virtio\n"
           "E: DRIVER=virtio_net\n\n" PCI("/devices/pci0000:00/0000:00:03.0", "virtio-pci"),
           "/devices/pci0000:00/0000:00:03.0/virtio0", "ens3", "eth0", "52:54:00:12:34:56",
           "52:54:00:65:43:21"},
          {"P: /devices/pci0000:00/0000:00:04.0/virtio1\nE: SUBSYSTEM=virtio\n"
           "E: DRIVER=virtio_net\n\n" PCI("/devices/pci0000:00/0000:00:04.0", "virtio-pci"),
           "/devices/pci0000:00/0000:00:04.0/virtio1", "ens4", "eth1", "52:54:00:ab:cd:ef", NULL}}},
    [MACHINE_VMWARE] = {"VMware, Inc.",
                        "VMware Virtual Platform",
                        "420a1b2c-3d4e-5f60-7182-93a4b5c6d7e8",
                        "420a1b2c-3d4e-5f60-7182-93a4b5c6d7e9",
                        "None",
                        {{PCI("/devices/pci0000:00/0000:00:15.0/0000:0b:00.0", "vmxnet3")
                              PCI("/devices/pci0000:00/0000:00:15.0", "pcieport"),
                          "/devices/pci0000:00/0000:00:15.0/0000:0b:00.0", "ens192", "eth0",
                          "00:50:56:8a:12:34", "00:50:56:8a:99:99"}}},
    [MACHINE_HYPERV] =
        {"Microsoft Corporation",
         "Virtual Machine",
         "8f3e2d1c-0b9a-4877-a665-544332211000",
         "8f3e2d1c-0b9a-4877-a665-544332211001",
         "0000-0014-1234-5678-9012-3456-78",
         {{"P: /devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/"
           "f8615163-df3e-46c5-913f-f2d2f965ed0e\nE: SUBSYSTEM=vmbus\nE: DRIVER=hv_netvsc\n\n",
           "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/"
           "f8615163-df3e-46c5-913f-f2d2f965ed0e",
           "eth0", "ens1", "00:15:5d:01:02:03", "00:15:5d:01:02:99"},
          /* accelerated networking: the Mellanox VF carries the same address */
          {PCI("/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/"
               "9dbd6f62-7870-4e4e-a0a3-0ad4a2b6e1a2/pci7870:00/7870:00:02.0",
               "mlx5_core"),
           "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/"
           "9dbd6f62-7870-4e4e-a0a3-0ad4a2b6e1a2/pci7870:00/7870:00:02.0",
           "enP30832s1", "eth1", "00:15:5d:01:02:03", "00:15:5d:01:02:99"}}},
    [MACHINE_NITRO] = {"Amazon EC2",
                       "m5.large",
                       "ec2e1916-9a2b-7c3d-4e5f-60718293a4b5",
                       "ec2e1916-9a2b-7c3d-4e5f-60718293a4b6",
                       NULL,
                       {{PCI("/devices/pci0000:00/0000:00:05.0", "ena"),
                         "/devices/pci0000:00/0000:00:05.0", "ens5", "eth0", "0a:1b:2c:3d:4e:5f",
                         "0a:1b:2c:3d:4e:60"}}},
    [MACHINE_METAL] = {"Supermicro",
                       "SYS-5019C-MR",
                       "00000000-0000-0000-0000-ac1f6b123456",
                       "00000000-0000-0000-0000-ac1f6b654321",
                       "ZM18AS012345",
                       {{PCI("/devices/pci0000:00/0000:00:1f.6", "e1000e"),
                         "/devices/pci0000:00/0000:00:1f.6", "eno1", "eth0", "ac:1f:6b:12:34:56",
                         "ac:1f:6b:99:88:77"},
                        {PCI("/devices/pci0000:00/0000:00:1c.0/0000:02:00.0", "igb")
                             PCI("/devices/pci0000:00/0000:00:1c.0", "pcieport"),
                         "/devices/pci0000:00/0000:00:1c.0/0000:02:00.0", "enp2s0", "eth1",
                         "ac:1f:6b:12:34:57", NULL}}},
};

/* Virtual interfaces a running appliance tends to have. */
static const char virtual_ifs[] =
    "P: /devices/virtual/net/lo\nE: SUBSYSTEM=net\nE: INTERFACE=lo\n"
    "A: address=00:00:00:00:00:00\nA: addr_assign_type=0\nA: type=772\n\n"
    "P: /devices/virtual/net/docker0\nE: SUBSYSTEM=net\nE: DEVTYPE=bridge\nE: INTERFACE=docker0\n"
    "A: address=02:42:ac:11:00:01\nA: addr_assign_type=3\nA: type=1\n\n"
    "P: /devices/virtual/net/veth3f2a1b0\nE: SUBSYSTEM=net\nE: INTERFACE=veth3f2a1b0\n"
    "A: address=6e:3c:1d:2a:9b:01\nA: addr_assign_type=1\nA: type=1\n\n"
    "P: /devices/virtual/net/br0\nE: SUBSYSTEM=net\nE: DEVTYPE=bridge\nE: INTERFACE=br0\n"
    "A: address=52:54:00:aa:bb:cc\nA: addr_assign_type=3\nA: type=1\n\n"
    "P: /devices/virtual/net/tun0\nE: SUBSYSTEM=net\nE: INTERFACE=tun0\n"
    "A: address=\nA: addr_assign_type=0\nA: type=65534\nA: tun_flags=0x1001\n\n"
    "P: /devices/virtual/net/tap0\nE: SUBSYSTEM=net\nE: INTERFACE=tap0\n"
    "A: address=de:ad:be:ef:00:01\nA: addr_assign_type=1\nA: type=1\nA: tun_flags=0x1002\n\n"
    "P: /devices/virtual/net/wg0\nE: SUBSYSTEM=net\nE: DEVTYPE=wireguard\nE: INTERFACE=wg0\n"
    "A: addr_assign_type=0\nA: type=65534\n\n"
    "P: /devices/virtual/net/vlan100\nE: SUBSYSTEM=net\nE: DEVTYPE=vlan\nE: INTERFACE=vlan100\n"
    "A: address=52:54:00:12:34:56\nA: addr_assign_type=2\nA: type=1\n\n"
    "P: /devices/virtual/net/bond0\nE: SUBSYSTEM=net\nE: DEVTYPE=bond\nE: INTERFACE=bond0\n"
    "A: address=52:54:00:dd:ee:ff\nA: addr_assign_type=3\nA: type=1\n\n"
    "P: /devices/virtual/net/macvlan0\nE: SUBSYSTEM=net\nE: INTERFACE=macvlan0\n"
    "A: address=9a:2b:3c:4d:5e:6f\nA: addr_assign_type=1\nA: type=1\n\n";

static const char placeholder_dmi[] =
    "P: /devices/virtual/dmi/id\nE: SUBSYSTEM=dmi\n"
    "A: product_uuid=03000200-0400-0500-0006-000700080009\n"
    "A: sys_vendor=To Be Filled By O.E.M.\nA: product_name=Default string\n"
    "A: board_serial=To be filled by O.E.M.\n\n";

/* The bond slave's permanent address: the one the machine table lists. */
static const char *bond_slave_name, *bond_slave_mac;

int machine_permaddr(const char *ifname, uint8_t ret_mac[6], void *userdata) {
    unsigned v[6];
    if (!bond_slave_name || strcmp(ifname, bond_slave_name) != 0)
        return -ENODATA;
    if (sscanf(bond_slave_mac, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        ret_mac[i] = (uint8_t)v[i];
    return 0;
}

static bool add(UMockdevTestbed *tb, const char *records) {
    GError *err = NULL;
    if (!umockdev_testbed_add_from_string(tb, records, &err)) {
        fprintf(stderr, "umockdev: %s\n", err ? err->message : "?");
        g_clear_error(&err);
        return false;
    }
    return true;
}

UMockdevTestbed *machine_new(enum machine_kind kind, unsigned flags) {
    const struct machine_def *m = &machines[kind];
    UMockdevTestbed *tb = umockdev_testbed_new();
    char *net[8] = {NULL};
    size_t n = 0;
    bool ok = true;

    if (!tb)
        return NULL;
    if (flags & MF_PLACEHOLDER_DMI)
        ok = add(tb, placeholder_dmi);
    else if (!(flags & MF_NO_DMI)) {
        char *dmi = NULL;
        if (asprintf(&dmi,
                     "P: /devices/virtual/dmi/id\nE: SUBSYSTEM=dmi\nA: product_uuid=%s\n"
                     "A: sys_vendor=%s\nA: product_name=%s\n%s%s%s\n",
                     (flags & MF_OTHER_UUID) ? m->other_uuid : m->uuid, m->vendor, m->product,
                     m->board_serial ? "A: board_serial=" : "",
                     m->board_serial ? m->board_serial : "", m->board_serial ? "\n" : "") < 0)
            ok = false;
        else
            ok = add(tb, dmi);
        free(dmi);
    }

    bond_slave_name = bond_slave_mac = NULL;
    for (size_t i = 0; ok && !(flags & MF_NO_NIC) && i < 3 && m->nics[i].name; i++) {
        const struct nic_def *nd = &m->nics[i];
        const char *name = (flags & MF_RENAMED) ? nd->renamed : nd->name;
        const char *mac = nd->mac;
        int aat = 0;
        if ((flags & MF_NIC_REPLACED) && i == 0)
            mac = nd->replaced_mac;
        if ((flags & MF_BOND_SLAVE) && i == 0) {
            bond_slave_name = name;
            bond_slave_mac = mac;
            mac = "52:54:00:dd:ee:ff"; /* the bond's address */
            aat = 3;
        }
        if (asprintf(&net[n++],
                     "P: %s/net/%s\nE: SUBSYSTEM=net\nE: INTERFACE=%s\nA: address=%s\n"
                     "A: addr_assign_type=%d\nA: type=1\nA: operstate=%s\nA: carrier=%d\n\n%s",
                     nd->parent, name, name, mac, aat, (flags & MF_LINK_DOWN) ? "down" : "up",
                     (flags & MF_LINK_DOWN) ? 0 : 1, nd->bus_records) < 0)
            ok = false;
    }
    if (ok && (flags & MF_VIRTUAL_IFS))
        net[n++] = strdup(virtual_ifs);
    for (size_t i = 0; i < n; i++) {
        size_t j = (flags & MF_REVERSED) ? n - 1 - i : i;
        if (ok && net[j])
            ok = add(tb, net[j]);
        else
            ok = false;
    }
    for (size_t i = 0; i < n; i++)
        free(net[i]);
    if (!ok) {
        g_object_unref(tb);
        return NULL;
    }
    return tb;
}

static int find_asan(struct dl_phdr_info *info, size_t size, void *data) {
    if (info->dlpi_name && strstr(info->dlpi_name, "libasan.so")) {
        *(const char **)data = info->dlpi_name;
        return 1;
    }
    return 0;
}

int machines_reexec_under_umockdev(char **argv) {
    const char *pre = getenv("LD_PRELOAD");
    const char *asan = NULL;
    char *value = NULL;

    if (pre && strstr(pre, "libumockdev-preload.so")) {
        /* Check that the preload took: a testbed path must be visible. */
        return getenv("TPMLIC_HWID_REEXEC") ? 0 : -ENOEXEC;
    }
    if (getenv("TPMLIC_HWID_REEXEC"))
        return -ELOOP;
    dl_iterate_phdr(find_asan, &asan);
    if (asprintf(&value, "%s%slibumockdev-preload.so.0%s%s", asan ? asan : "", asan ? ":" : "",
                 pre && pre[0] ? ":" : "", pre ? pre : "") < 0)
        return -ENOMEM;
    setenv("LD_PRELOAD", value, 1);
    setenv("TPMLIC_HWID_REEXEC", "1", 1);
    free(value);
    execv("/proc/self/exe", argv);
    return -errno;
}
