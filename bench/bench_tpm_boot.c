/* Benchmark: the agent's TPM boot path on swtpm (open, EK identity, the
 * proof that the TPM holds the EK, read a 2 KB index, read a counter,
 * ReadClock): TPM commands sent and wall time, for each way of getting the
 * EK, next to the round trip of a single TPM command (ReadClock) measured in
 * the same run; and what the authenticated session costs per NV command
 * (the same read and increment with a password and in the salted session).
 * The command count is the machine-independent figure: a real chip takes
 * roughly 3 ms per command, and its RSA decryption in StartAuthSession
 * far more (docs/tpm.md). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/lib/loadgen.h"
#include "tpm/tpm.h"
#include "tests/lib/swtpm.h"

#define IDX  0x01a0c000u
#define RUNS 200

static void report(const char *what, double *t, int n, unsigned long cmds) {
    qsort(t, (size_t)n, sizeof(*t), lg_cmp_double);
    printf("%-44s median %8.1f us  p99 %8.1f us  commands %lu\n", what, t[n / 2], t[(n * 99) / 100],
           cmds);
}

static int boot_path(const char *tcti, bool prove, unsigned long *ret_cmds, enum tpm_ek_source *src,
                     char *how, size_t howlen) {
    struct tpm_ctx *ctx = NULL;
    struct tpm_ek ek = {0};
    struct tpm_ek_proof proof;
    struct tpm_clock clk;
    uint8_t *data = NULL;
    size_t len;
    uint64_t v;
    char err[256];

    if (tpm_open(tcti, 0, &ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    if (tpm_ek_rsa(ctx, TPM_EK_PERSIST, &ek) < 0 ||
        (prove && tpm_prove_ek(ctx, &ek, TPM_EK_PERSIST, &proof) < 0) ||
        tpm_nv_read(ctx, IDX, &data, &len) < 0 || tpm_counter_read(ctx, IDX + 1, &v) < 0 ||
        tpm_read_clock(ctx, &clk) < 0) {
        fprintf(stderr, "boot path: %s\n", tpm_last_error(ctx));
        tpm_close(ctx);
        return -1;
    }
    *src = ek.source;
    if (prove)
        snprintf(how, howlen, "%s", proof.how);
    *ret_cmds = tpm_command_count(ctx);
    free(data);
    tpm_ek_clear(&ek);
    tpm_close(ctx);
    return 0;
}

static int run(const char *label, const char *opts) {
    static double t[RUNS];
    static const char *const srcs[] = {"EK certificate", "persistent EK", "CreatePrimary"};
    struct swtpm s;
    struct tpm_ctx *ctx = NULL;
    uint8_t blob[2048];
    unsigned long cmds = 0;
    enum tpm_ek_source src = TPM_EK_CREATED;
    struct tpm_clock clk;
    char err[256], what[128];
    int runs = RUNS;

    if (swtpm_new(&s, opts) < 0)
        return -1;
    memset(blob, 0x5a, sizeof(blob));
    if (tpm_open(s.tcti, 0, &ctx, err, sizeof(err)) < 0 || tpm_nv_define(ctx, IDX, 2048) < 0 ||
        tpm_nv_write(ctx, IDX, blob, sizeof(blob)) < 0 || tpm_counter_define(ctx, IDX + 1) < 0) {
        fprintf(stderr, "setup failed: %s\n", ctx ? tpm_last_error(ctx) : err);
        return -1;
    }
    /* baseline: one TPM command round trip on the same connection */
    for (int i = 0; i < RUNS; i++) {
        double t0 = lg_now_us();
        tpm_read_clock(ctx, &clk);
        t[i] = lg_now_us() - t0;
    }
    snprintf(what, sizeof(what), "%s: one TPM command (ReadClock)", label);
    report(what, t, RUNS, 1);
    tpm_close(ctx);

    /* the first start: with no persistent EK, CreatePrimary, then made
     * persistent (once) */
    {
        char how[96] = "";
        double t0 = lg_now_us();
        if (boot_path(s.tcti, true, &cmds, &src, how, sizeof(how)) < 0)
            return -1;
        t[0] = lg_now_us() - t0;
        snprintf(what, sizeof(what), "%s: first start, proven by %s", label, how);
        report(what, t, 1, cmds);
    }
    for (int prove = 0; prove <= 1; prove++) {
        char how[96] = "";
        for (int i = 0; i < runs; i++) {
            double t0 = lg_now_us();
            if (boot_path(s.tcti, prove, &cmds, &src, how, sizeof(how)) < 0)
                return -1;
            t[i] = lg_now_us() - t0;
        }
        snprintf(what, sizeof(what), "%s: EK via %s, %s", label, srcs[src],
                 prove ? "proven (later starts)" : "not proven");
        report(what, t, runs, cmds);
    }
    swtpm_destroy(&s);
    return 0;
}

/* One NV read of 64 bytes and one counter increment, with a password and in
 * the session salted to the EK. */
static int session_cost(void) {
    static double t[RUNS];
    struct swtpm s;
    struct tpm_ctx *ctx = NULL;
    struct tpm_ek ek = {0};
    struct tpm_ek_proof proof;
    uint8_t blob[64] = {1}, *data = NULL;
    char err[256];
    size_t len;

    if (swtpm_new(&s, "") < 0 || tpm_open(s.tcti, 0, &ctx, err, sizeof(err)) < 0 ||
        tpm_nv_define(ctx, IDX, sizeof(blob)) < 0 ||
        tpm_nv_write(ctx, IDX, blob, sizeof(blob)) < 0 || tpm_counter_define(ctx, IDX + 1) < 0 ||
        tpm_ek_rsa(ctx, 0, &ek) < 0)
        return -1;
    for (int proven = 0; proven <= 1; proven++) {
        char what[96];
        if (proven && tpm_prove_ek(ctx, &ek, 0, &proof) < 0)
            return -1;
        for (int i = 0; i < RUNS; i++) {
            double t0 = lg_now_us();
            if (tpm_nv_read(ctx, IDX, &data, &len) < 0)
                return -1;
            free(data);
            t[i] = lg_now_us() - t0;
        }
        snprintf(what, sizeof(what), "NV read (ReadPublic + Read), %s",
                 proven ? "salted session" : "password");
        report(what, t, RUNS, 2);
        for (int i = 0; i < RUNS; i++) {
            double t0 = lg_now_us();
            if (tpm_counter_increment(ctx, IDX + 1) < 0)
                return -1;
            t[i] = lg_now_us() - t0;
        }
        snprintf(what, sizeof(what), "counter increment (ReadPublic + Increment), %s",
                 proven ? "salted session" : "password");
        report(what, t, RUNS, 2);
    }
    tpm_ek_clear(&ek);
    tpm_close(ctx);
    swtpm_destroy(&s);
    return 0;
}

int main(void) {
    printf("TPM boot path on swtpm: open + EK + proof of possession + 2 KB NV read + counter "
           "read + ReadClock\n");
    if (run("certificate and persistent EK", "") < 0 ||
        run("certificate, no persistent EK", "--no-persistent-ek") < 0 ||
        run("persistent EK, no certificate", "--no-certs") < 0 ||
        run("no certificate, no persistent EK", "--no-certs --no-persistent-ek") < 0)
        return 1;
    printf("\nThe authenticated session per NV command (same TPM, same run)\n");
    return session_cost() < 0 ? 1 : 0;
}
