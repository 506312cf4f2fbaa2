/* The physical NICs and their permanent MAC addresses, enumerated with
 * libudev (subsystem "net"). A NIC counts when it hangs off a bus device
 * (PCI, virtio, VMBus, Xen, platform, ccwgroup), is Ethernet, and has a
 * permanent address: sysfs addr_assign_type 0, or else ETHTOOL_GPERMADDR.
 * Everything else is left out with its reason, for --explain. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/ethtool.h>
#include <linux/sockios.h>

#include <libudev.h>

#include "hwid/report.h"

#define PERMADDR_MAX 32 /* MAX_ADDR_LEN of the kernel */

DEFINE_PTR_CLEANUP(struct udev, udev_unref)
DEFINE_PTR_CLEANUP(struct udev_enumerate, udev_enumerate_unref)
DEFINE_PTR_CLEANUP(struct udev_device, udev_device_unref)

/* Buses a physical (or paravirtual) NIC sits on. */
static const struct {
    const char *subsystem;
    const char *what;
} nic_buses[] = {
    {"pci", "PCI bus"}, {"virtio", "virtio bus"},           {"vmbus", "Hyper-V VMBus"},
    {"xen", "Xen bus"}, {"platform", "platform bus (SoC)"}, {"ccwgroup", "s390 ccwgroup bus"},
};

/* DEVTYPEs that are never an identity even on a bus device. */
static const struct {
    const char *devtype;
    const char *reason;
} excluded_devtypes[] = {
    {"wlan", "wireless (DEVTYPE wlan): not used as an identity"},
    {"wwan", "mobile broadband (DEVTYPE wwan): not used as an identity"},
    {"bridge", "bridge"},
    {"bond", "bond"},
    {"vlan", "VLAN"},
    {"wireguard", "WireGuard tunnel"},
};

static const char *const assign_types[] = {"permanent", "random", "stolen", "set"};

struct nic {
    uint8_t mac[HWID_MAC_LEN];
    char *name;
    char *detail;
};

static int ethtool_permaddr(const char *ifname, uint8_t ret_mac[HWID_MAC_LEN], void *userdata) {
    _cleanup_close_ int fd = -1;
    /* the header and room for the address its flexible member points to */
    union {
        struct ethtool_perm_addr epa;
        uint8_t raw[sizeof(struct ethtool_perm_addr) + PERMADDR_MAX];
    } req = {.epa = {.cmd = ETHTOOL_GPERMADDR, .size = PERMADDR_MAX}};
    struct ifreq ifr = {0};
    static const uint8_t zero[HWID_MAC_LEN];

    if (strlen(ifname) >= sizeof(ifr.ifr_name))
        return -EINVAL;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    strncpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name) - 1);
    ifr.ifr_data = (void *)&req;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
        return -errno;
    if (req.epa.size != HWID_MAC_LEN || memcmp(req.epa.data, zero, HWID_MAC_LEN) == 0)
        return -ENODATA;
    memcpy(ret_mac, req.epa.data, HWID_MAC_LEN);
    return 0;
}

static int parse_mac(const char *s, uint8_t ret[HWID_MAC_LEN]) {
    unsigned v[HWID_MAC_LEN];
    int n = 0;
    if (!s || strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &n) != 6 ||
        n != 17)
        return -EINVAL;
    for (int i = 0; i < HWID_MAC_LEN; i++)
        ret[i] = (uint8_t)v[i];
    return 0;
}

static void mac_text(const uint8_t m[HWID_MAC_LEN], char ret[18]) {
    snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static int cmp_nic(const void *a, const void *b) {
    const struct nic *x = a, *y = b;
    int c = memcmp(x->mac, y->mac, HWID_MAC_LEN);
    return c ? c : strcmp(x->name, y->name);
}

static int cmp_exclusion(const void *a, const void *b) {
    const struct hwid_exclusion *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Decides about one net device: fills *ret (name/detail allocated) and
 * returns 1 when it counts, 0 when left out (recorded in rep), -errno. */
static int examine(struct udev_device *dev, const struct hwid_source *src, struct hwid_report *rep,
                   struct nic *ret) {
    const char *name = udev_device_get_sysname(dev);
    const char *devpath = udev_device_get_devpath(dev);
    const char *devtype = udev_device_get_devtype(dev);
    const char *type, *aat, *bus, *driver, *bus_what = NULL, *how;
    struct udev_device *parent;
    uint8_t mac[HWID_MAC_LEN];
    char text[18];
    long assign = -1;
    int r;

    if (!name || !devpath)
        return 0;
    if (strncmp(devpath, "/devices/virtual/", 17) == 0) {
        if (devtype)
            return report_add_exclusion(rep, name, "virtual device, %s (%s)", devtype, devpath);
        return report_add_exclusion(rep, name, "virtual device (%s)", devpath);
    }
    for (size_t i = 0; devtype && i < ARRAY_SIZE(excluded_devtypes); i++)
        if (strcmp(devtype, excluded_devtypes[i].devtype) == 0)
            return report_add_exclusion(rep, name, "%s (%s)", excluded_devtypes[i].reason, devpath);

    parent = udev_device_get_parent(dev);
    bus = parent ? udev_device_get_subsystem(parent) : NULL;
    if (!bus)
        return report_add_exclusion(rep, name, "no bus device (%s)", devpath);
    for (size_t i = 0; i < ARRAY_SIZE(nic_buses); i++)
        if (strcmp(bus, nic_buses[i].subsystem) == 0)
            bus_what = nic_buses[i].what;
    if (!bus_what) {
        if (strcmp(bus, "usb") == 0)
            return report_add_exclusion(rep, name, "USB adapter: removable, not an identity (%s)",
                                        devpath);
        return report_add_exclusion(rep, name, "on bus '%s', not a NIC bus (%s)", bus, devpath);
    }

    type = udev_device_get_sysattr_value(dev, "type");
    if (!type)
        return report_add_exclusion(rep, name, "no link type in sysfs (%s)", devpath);
    if (strcmp(type, "1") != 0)
        return report_add_exclusion(rep, name, "link type %s is not Ethernet (ARPHRD_ETHER = 1)",
                                    type);

    aat = udev_device_get_sysattr_value(dev, "addr_assign_type");
    if (aat && aat[0] >= '0' && aat[0] <= '3' && aat[1] == '\0')
        assign = aat[0] - '0';

    if (assign == 0) {
        if (parse_mac(udev_device_get_sysattr_value(dev, "address"), mac) < 0)
            return report_add_exclusion(rep, name, "no readable Ethernet address in sysfs");
        how = "permanent (addr_assign_type 0)";
    } else {
        const char *kind = assign > 0 ? assign_types[assign] : "of unknown origin";
        if (src->no_permaddr)
            return report_add_exclusion(rep, name,
                                        "current address is %s (addr_assign_type %s), not "
                                        "permanent; permanent address not queried",
                                        kind, aat ? aat : "unreadable");
        r = (src->permaddr ? src->permaddr : ethtool_permaddr)(name, mac, src->userdata);
        if (r < 0)
            return report_add_exclusion(rep, name,
                                        "current address is %s (addr_assign_type %s) and "
                                        "ETHTOOL_GPERMADDR gave %s",
                                        kind, aat ? aat : "unreadable",
                                        r == -ENODATA ? "no permanent address" : strerror(-r));
        how = assign == 1   ? "permanent address from ETHTOOL_GPERMADDR (current one is random)"
              : assign == 2 ? "permanent address from ETHTOOL_GPERMADDR (current one is stolen)"
              : assign == 3 ? "permanent address from ETHTOOL_GPERMADDR (current one was set)"
                            : "permanent address from ETHTOOL_GPERMADDR";
    }

    mac_text(mac, text);
    if (memcmp(mac, "\0\0\0\0\0\0", HWID_MAC_LEN) == 0)
        return report_add_exclusion(rep, name, "all-zero address");
    if (mac[0] & 1)
        return report_add_exclusion(rep, name, "%s is a multicast address", text);

    driver = udev_device_get_driver(parent);
    if (!driver)
        driver = udev_device_get_property_value(parent, "DRIVER");
    if (!driver)
        driver = udev_device_get_property_value(dev, "ID_NET_DRIVER");
    ret->name = strdup(name);
    if (asprintf(&ret->detail, "%s%s%s%s, %s%s, %s", bus_what, driver ? " (" : "",
                 driver ? driver : "", driver ? ")" : "", how,
                 (mac[0] & 2) ? ", locally administered" : "", devpath) < 0)
        ret->detail = NULL;
    if (!ret->name || !ret->detail) {
        free(ret->name);
        free(ret->detail);
        return -ENOMEM;
    }
    memcpy(ret->mac, mac, HWID_MAC_LEN);
    return 1;
}

static void nics_free(struct nic *nics, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(nics[i].name);
        free(nics[i].detail);
    }
    free(nics);
}

int hwid_read_nics(struct hwid_info *info, const struct hwid_source *src) {
    static const struct hwid_source defaults = {0};
    _cleanup_(udev_unrefp) struct udev *own = NULL;
    _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = NULL;
    struct udev *udev;
    struct hwid_report *rep;
    struct udev_list_entry *le;
    struct nic *nics = NULL;
    size_t n = 0;
    uint8_t macs[HWID_NIC_MAX][HWID_MAC_LEN];
    uint8_t d[HWID_DIGEST_LEN];
    int r;

    if (!info)
        return -EINVAL;
    if (!src)
        src = &defaults;
    report_clear(&info->report[HWID_NIC]);
    info->digests.present[HWID_NIC] = false;
    memset(info->digests.digest[HWID_NIC], 0, HWID_DIGEST_LEN);
    info->computer_id[0] = '\0';
    rep = &info->report[HWID_NIC];
    rep->collected = true;
    if ((r = report_set(&rep->source, "udev: subsystem net")) < 0)
        return r;

    udev = src->udev;
    if (!udev) {
        errno = 0;
        own = udev_new();
        if (!own)
            return errno > 0 ? -errno : -ENOMEM;
        udev = own;
    }
    e = udev_enumerate_new(udev);
    if (!e)
        return -ENOMEM;
    if ((r = udev_enumerate_add_match_subsystem(e, "net")) < 0 ||
        (r = udev_enumerate_scan_devices(e)) < 0)
        return r;

    udev_list_entry_foreach(le, udev_enumerate_get_list_entry(e)) {
        const char *syspath = udev_list_entry_get_name(le);
        _cleanup_(udev_device_unrefp) struct udev_device *dev = NULL;
        struct nic one = {0};
        struct nic *grown;

        /* Virtual devices are known from the path alone: leave them out
         * without building a udev device (the cost of the collection is in
         * those lookups). */
        if (syspath && strncmp(syspath, "/sys/devices/virtual/", 21) == 0) {
            const char *name = strrchr(syspath, '/') + 1;
            if ((r = report_add_exclusion(rep, name, "virtual device (%s)", syspath + 4)) < 0)
                goto out;
            continue;
        }
        dev = udev_device_new_from_syspath(udev, syspath);
        if (!dev)
            continue; /* gone since the scan */
        r = examine(dev, src, rep, &one);
        if (r < 0)
            goto out;
        if (r == 0)
            continue;
        if (n == HWID_NIC_MAX) {
            free(one.name);
            free(one.detail);
            r = -E2BIG;
            goto out;
        }
        grown = reallocarray(nics, n + 1, sizeof(*nics));
        if (!grown) {
            free(one.name);
            free(one.detail);
            r = -ENOMEM;
            goto out;
        }
        nics = grown;
        nics[n++] = one;
    }

    /* Sorted by address, so that the explanation does not depend on the
     * enumeration order either. */
    if (n)
        qsort(nics, n, sizeof(*nics), cmp_nic);
    if (rep->n_excluded)
        qsort(rep->excluded, rep->n_excluded, sizeof(*rep->excluded), cmp_exclusion);
    for (size_t i = 0; i < n; i++) {
        char text[18];
        _cleanup_free_ char *detail = NULL;
        mac_text(nics[i].mac, text);
        if (i > 0 && memcmp(nics[i].mac, nics[i - 1].mac, HWID_MAC_LEN) == 0) {
            if (asprintf(&detail, "%s; same address as %s: counted once", nics[i].detail,
                         nics[i - 1].name) < 0) {
                r = -ENOMEM;
                goto out;
            }
        }
        if ((r = report_add_entry(rep, nics[i].name, text, detail ? detail : nics[i].detail)) < 0)
            goto out;
        memcpy(macs[i], nics[i].mac, HWID_MAC_LEN);
    }

    if (n == 0) {
        r = report_set(&rep->absent_reason,
                       "no physical NIC with a permanent address (%zu interface%s left out)",
                       rep->n_excluded, rep->n_excluded == 1 ? "" : "s");
        goto out;
    }
    r = hwid_digest_nic((const uint8_t(*)[HWID_MAC_LEN])macs, n, d);
    if (r < 0)
        goto out;
    memcpy(info->digests.digest[HWID_NIC], d, HWID_DIGEST_LEN);
    info->digests.present[HWID_NIC] = true;
    r = 0;
out:
    nics_free(nics, n);
    return r;
}
