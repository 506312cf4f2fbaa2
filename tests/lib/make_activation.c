/* test-make-activation: prints an activation certificate as an appliance's
 * agent would make it, for the vendor CLI tests (tests/integration/
 * vendor_cli.sh) without a TPM: a fresh RSA-2048 key stands in for the EK,
 * DMI and NIC digests come from fixed values. Built, never installed. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cert/cert.h"
#include "common/macro.h"
#include "hwid/encode.h"
#include "hwid/id.h"
#include "common/timefmt.h"

DEFINE_PTR_CLEANUP(EVP_PKEY, EVP_PKEY_free)
DEFINE_PTR_CLEANUP(X509, X509_free)

static const char help[] =
    "Usage: test-make-activation [--license CODE] [--counter-value N] [--date RFC3339]\n"
    "        [--dmi-serial S] [--no-nic] [--ek-cert] [--ek-cert-other] [--details]\n"
    "Prints an activation certificate made with a fresh RSA-2048 stand-in EK.\n";

/* A self-signed certificate for key (a stand-in for the manufacturer's). */
static int make_cert(EVP_PKEY *key, uint8_t **ret, size_t *ret_len) {
    _cleanup_(X509_freep) X509 *x = X509_new();
    unsigned char *der = NULL;
    int len;

    if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"test EK", -1, -1, 0) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)) || !X509_sign(x, key, EVP_sha256()))
        return -1;
    len = i2d_X509(x, &der);
    if (len <= 0)
        return -1;
    *ret = der;
    *ret_len = (size_t)len;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"license", required_argument, NULL, 'l'}, {"counter-value", required_argument, NULL, 'c'},
        {"date", required_argument, NULL, 'd'},    {"dmi-serial", required_argument, NULL, 's'},
        {"no-nic", no_argument, NULL, 'n'},        {"ek-cert", no_argument, NULL, 'e'},
        {"ek-cert-other", no_argument, NULL, 'o'}, {"details", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    static const uint8_t macs[2][HWID_MAC_LEN] = {{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
                                                  {0x52, 0x54, 0x00, 0x12, 0x34, 0x57}};
    const char *dmi[HWID_DMI_FIELD_MAX] = {"4c4c4544-0042-3510-8056-b4c04f4e3232", "QEMU",
                                           "Standard PC (Q35 + ICH9, 2009)", "SERIAL-0001"};
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ek = NULL, *other = NULL;
    struct cert_activation a = {.is_vm = -1};
    unsigned char *spki = NULL;
    char *text = NULL, err[256];
    bool nic = true, ek_cert = false, ek_other = false, details = false;
    unsigned long long v;
    int c, len;

    snprintf(a.license, sizeof(a.license), "TEST-LIC-0001");
    a.counter.value = 42;
    a.date = time(NULL);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            snprintf(a.license, sizeof(a.license), "%s", optarg);
            break;
        case 'c':
            if (sscanf(optarg, "%llu", &v) != 1)
                return 2;
            a.counter.value = v;
            break;
        case 'd':
            if (rfc3339_parse(optarg, &a.date) < 0)
                return 2;
            break;
        case 's':
            dmi[HWID_DMI_BOARD_SERIAL] = optarg;
            break;
        case 'n':
            nic = false;
            break;
        case 'e':
            ek_cert = true;
            break;
        case 'o':
            ek_cert = ek_other = true;
            break;
        case 'D':
            details = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return 2;
        }
    }

    ek = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    len = ek ? i2d_PUBKEY(ek, &spki) : -1;
    if (len <= 0 || hwid_digest_ek(spki, (size_t)len, a.hwid.digest[HWID_EK]) < 0 ||
        hwid_digest_dmi(dmi, a.hwid.digest[HWID_DMI]) < 0 ||
        (nic && hwid_digest_nic(macs, 2, a.hwid.digest[HWID_NIC]) < 0)) {
        fprintf(stderr, "test-make-activation: cannot make the digests\n");
        return 1;
    }
    a.hwid.present[HWID_EK] = a.hwid.present[HWID_DMI] = true;
    a.hwid.present[HWID_NIC] = nic;
    a.ek_public = spki;
    a.ek_public_len = (size_t)len;
    if (ek_cert) {
        if (ek_other)
            other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        if ((ek_other && !other) ||
            make_cert(ek_other ? other : ek, &a.ek_certificate, &a.ek_certificate_len) < 0) {
            fprintf(stderr, "test-make-activation: cannot make the EK certificate\n");
            return 1;
        }
    }
    if (hwid_computer_id(&a.hwid, a.computer_id) < 0)
        return 1;
    a.counter.index = 0x01a0c001;
    a.counter.name[0] = 0x00; /* nameAlg SHA-256, then a made-up digest */
    a.counter.name[1] = 0x0b;
    for (int i = 2; i < 34; i++)
        a.counter.name[i] = (uint8_t)(0xa0 + i);
    a.counter.name_len = 34;
    snprintf(a.nonce, sizeof(a.nonce), "00112233445566778899aabbccddeeff");
    if (details) {
        snprintf(a.username, sizeof(a.username), "Ada Lovelace");
        snprintf(a.email_address, sizeof(a.email_address), "ada@example.com");
        snprintf(a.company_name, sizeof(a.company_name), "Example Ltd");
        snprintf(a.hostname, sizeof(a.hostname), "appliance-01");
        a.is_vm = 1;
        snprintf(a.vm_info, sizeof(a.vm_info), "QEMU");
        snprintf(a.app_ver, sizeof(a.app_ver), "tpmlicd " TPMLIC_VERSION);
    }
    if (cert_activation_encode(&a, &text, err, sizeof(err)) < 0) {
        fprintf(stderr, "test-make-activation: %s\n", err);
        return 1;
    }
    printf("%s\n", text);
    free(text);
    OPENSSL_free(spki);
    OPENSSL_free(a.ek_certificate);
    return 0;
}
