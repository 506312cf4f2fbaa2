/* Recorded machines for the hwid tests and benchmark: umockdev testbeds
 * that look like a KVM/QEMU guest, a VMware guest, a Hyper-V guest, an AWS
 * Nitro instance and a bare-metal server, with optional virtual interfaces
 * and variations (renames, link down, a replaced NIC, another DMI UUID). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <umockdev.h>

enum machine_kind {
    MACHINE_KVM,
    MACHINE_VMWARE,
    MACHINE_HYPERV,
    MACHINE_NITRO,
    MACHINE_METAL,
    MACHINE_KIND_MAX,
};

enum machine_flags {
    MF_VIRTUAL_IFS = 1u << 0,     /* docker0, veth, br0, tun0, wg0, VLAN, bond0, macvlan, lo */
    MF_REVERSED = 1u << 1,        /* net devices added in reverse order */
    MF_RENAMED = 1u << 2,         /* every physical NIC renamed (eth0 <-> ens3 style) */
    MF_LINK_DOWN = 1u << 3,       /* operstate down, carrier 0 */
    MF_NIC_REPLACED = 1u << 4,    /* the first NIC has another address */
    MF_OTHER_UUID = 1u << 5,      /* another DMI product_uuid */
    MF_NO_DMI = 1u << 6,          /* no /sys/class/dmi at all (microVM) */
    MF_NO_NIC = 1u << 7,          /* no physical NIC */
    MF_PLACEHOLDER_DMI = 1u << 8, /* only placeholder DMI values */
    MF_BOND_SLAVE = 1u << 9,      /* first NIC enslaved: its address was set (addr_assign_type 3) */
};

extern const char *const machine_names[MACHINE_KIND_MAX];

/* Sets up a fresh testbed for the machine (the umockdev preload must be
 * active: see machines_reexec_under_umockdev). Returns NULL on failure. */
UMockdevTestbed *machine_new(enum machine_kind kind, unsigned flags);

/* The permanent address a bond slave's ETHTOOL_GPERMADDR reports: the
 * injectable hook for struct hwid_source. */
int machine_permaddr(const char *ifname, uint8_t ret_mac[6], void *userdata);

/* Re-executes the program with the umockdev preload library in LD_PRELOAD
 * (after the ASan runtime when that is loaded, which must come first).
 * Returns only when the preload is already active (0) or on error (-errno). */
int machines_reexec_under_umockdev(char **argv);
