/* Benchmark: time to collect the hardware components and derive the
 * computer ID, excluding the TPM (the EK arrives as DER bytes, as tpm/
 * hands it over; its digest is included). First on this machine's real
 * /sys, then on the recorded machines (umockdev testbeds; the preload's
 * path redirection is included in those figures, so they are an upper
 * bound). Target: under 5 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench/lib/loadgen.h"
#include "hwid/hwid.h"
#include "tests/unit/test_hwid_machines.h"

#define RUNS 1000

static int measure(const char *label, const struct hwid_source *src, const uint8_t *ek,
                   size_t ek_len) {
    static double t[RUNS];
    char id[HWID_ID_STRLEN] = "";
    size_t nics = 0, left_out = 0;

    for (int i = 0; i < RUNS; i++) {
        struct hwid_info *info = NULL;
        double t0 = lg_now_us();
        int r = hwid_collect(NULL, src, ek, ek_len, "benchmark EK", &info);
        t[i] = lg_now_us() - t0;
        if (r < 0) {
            fprintf(stderr, "%s: hwid_collect: %s\n", label, strerror(-r));
            return -1;
        }
        memcpy(id, info->computer_id, sizeof(id));
        nics = info->report[HWID_NIC].n_entries;
        left_out = info->report[HWID_NIC].n_excluded;
        hwid_info_free(info);
    }
    qsort(t, RUNS, sizeof(*t), lg_cmp_double);
    printf("%-46s median %7.1f us  p99 %7.1f us  (%zu NIC, %zu left out) %s\n", label, t[RUNS / 2],
           t[(RUNS * 99) / 100], nics, left_out, id);
    return 0;
}

int main(int argc, char **argv) {
    const struct hwid_source src = {.permaddr = machine_permaddr};
    EVP_PKEY *k = EVP_RSA_gen(2048);
    unsigned char *ek = NULL;
    int ek_len, status = 0, r;

    if (!k || (ek_len = i2d_PUBKEY(k, &ek)) <= 0) {
        fprintf(stderr, "cannot make an RSA key\n");
        return 1;
    }
    EVP_PKEY_free(k);

    if (!getenv("TPMLIC_HWID_REEXEC")) {
        printf("hwid: collect DMI + NICs + EK digest and derive the ID, %d runs each\n", RUNS);
        if (measure("this machine (real /sys)", NULL, ek, (size_t)ek_len) < 0)
            status = 1;
        fflush(stdout);
    }
    r = machines_reexec_under_umockdev(argv);
    if (r < 0) {
        fprintf(stderr, "bench_hwid: cannot run under the umockdev preload (%s)\n", strerror(-r));
        return 1;
    }
    for (int m = 0; m < MACHINE_KIND_MAX; m++) {
        for (int v = 0; v < 2; v++) {
            char label[96];
            UMockdevTestbed *tb = machine_new(m, v ? MF_VIRTUAL_IFS : 0);
            if (!tb) {
                status = 1;
                continue;
            }
            snprintf(label, sizeof(label), "%s%s", machine_names[m], v ? " +10 virtual" : "");
            if (measure(label, &src, ek, (size_t)ek_len) < 0)
                status = 1;
            g_object_unref(tb);
        }
    }
    OPENSSL_free(ek);
    return status;
}
