/* tpmlicd --tpm-info: what the agent sees of the TPM — manufacturer and
 * limits, the RSA EK it binds to (and where it came from), the other EK
 * certificates, and the state of the agent's own NV indices. For operators
 * and support; reads only, defines nothing. */
#include "agent/tpminfo.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "agent/nvlayout.h"
#include "common/macro.h"
#include "tpm/tpm.h"

static void print_hex(FILE *f, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

static void print_nv_slot(FILE *f, struct tpm_ctx *ctx, const char *what, uint32_t index) {
    struct tpm_nv_public pub;
    uint64_t v;
    int r = tpm_nv_public(ctx, index, &pub);

    fprintf(f, "  %-8s 0x%08x  ", what, index);
    if (r == -ENOENT) {
        fprintf(f, "not defined\n");
        return;
    }
    if (r < 0) {
        fprintf(f, "unreadable: %s\n", tpm_last_error(ctx));
        return;
    }
    if (pub.type == TPM_NV_COUNTER) {
        if (pub.written && tpm_counter_read(ctx, index, &v) == 0)
            fprintf(f, "counter, value %llu", (unsigned long long)v);
        else
            fprintf(f, "counter, never incremented");
    } else {
        fprintf(f, "ordinary, %u bytes, %s", pub.size, pub.written ? "written" : "never written");
    }
    fprintf(f, "%s, name ", pub.no_da ? "" : ", NOT noDA");
    print_hex(f, pub.name, pub.name_len);
    fprintf(f, "\n");
}

int agent_print_tpm_info(FILE *f, const char *tcti, uint32_t nv_base, char *errbuf, size_t errlen) {
    _cleanup_(tpm_closep) struct tpm_ctx *ctx = NULL;
    struct tpm_ek_other others[16];
    struct tpm_info info;
    struct tpm_clock clk;
    struct tpm_ek ek = {0};
    uint8_t fp[SHA256_DIGEST_LENGTH];
    int r, n;

    r = tpm_open(tcti, 0, &ctx, errbuf, errlen);
    if (r < 0)
        return r;
    tpm_get_info(ctx, &info);
    fprintf(f, "TPM\n");
    fprintf(f, "  TCTI            %s\n", tcti);
    fprintf(f, "  manufacturer    %s (vendor \"%s\", firmware %08llx.%08llx)\n", info.manufacturer,
            info.vendor, (unsigned long long)(info.firmware_version >> 32),
            (unsigned long long)(info.firmware_version & 0xffffffffu));
    fprintf(f, "  software TPM    %s\n", info.is_software ? "yes" : "no");
    fprintf(f, "  NV limits       %u bytes per command, %u bytes per index, ", info.nv_buffer_max,
            info.nv_index_max);
    if (info.nv_counters_max)
        fprintf(f, "at most %u counters\n", info.nv_counters_max);
    else
        fprintf(f, "no separate limit on counters\n");

    r = tpm_ek_rsa(ctx, 0, &ek);
    if (r < 0) {
        snprintf(errbuf, errlen, "reading the endorsement key: %s", tpm_last_error(ctx));
        return r;
    }
    SHA256(ek.spki_der, ek.spki_len, fp);
    fprintf(f, "Endorsement key (RSA-2048, TCG template L-1)\n");
    fprintf(f, "  from            %s\n", ek.origin);
    fprintf(f, "  SHA-256 of key  ");
    print_hex(f, fp, sizeof(fp));
    fprintf(f, "\n");
    if (ek.cert_der)
        fprintf(f, "  certificate     %zu bytes (DER)\n", ek.cert_len);
    tpm_ek_clear(&ek);
    n = tpm_ek_list_others(ctx, others, ARRAY_SIZE(others));
    if (n < 0)
        fprintf(f, "  other EKs       unreadable: %s\n", tpm_last_error(ctx));
    else if (n == 0)
        fprintf(f, "  other EKs       none\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "  other EK        0x%08x %s, %u bytes (reported, not used)\n", others[i].index,
                others[i].what, others[i].size);

    fprintf(f, "Agent NV indices (base 0x%08x)\n", nv_base);
    print_nv_slot(f, ctx, "license", agent_nv_index(nv_base, AGENT_NV_LICENSE));
    print_nv_slot(f, ctx, "counter", agent_nv_index(nv_base, AGENT_NV_COUNTER));
    print_nv_slot(f, ctx, "state", agent_nv_index(nv_base, AGENT_NV_STATE));
    print_nv_slot(f, ctx, "floor", agent_nv_index(nv_base, AGENT_NV_FLOOR));
    print_nv_slot(f, ctx, "license2", agent_nv_index(nv_base, AGENT_NV_LICENSE_B));

    if (tpm_read_clock(ctx, &clk) == 0)
        fprintf(f, "TPM clock\n  clock %llu ms, resets %u, restarts %u, safe %s\n",
                (unsigned long long)clk.clock_ms, clk.reset_count, clk.restart_count,
                clk.safe ? "yes" : "no");
    fprintf(f, "TPM commands sent: %lu\n", tpm_command_count(ctx));
    return 0;
}
