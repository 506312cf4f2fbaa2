/* Benchmark: the agent's TPM boot path on swtpm (open, EK identity, read a
 * 2 KB index, read a counter, ReadClock): TPM commands sent and wall time,
 * next to the round trip of a single TPM command (ReadClock) measured in the
 * same run. The command count is the machine-independent figure: a real chip
 * takes roughly 3 ms per command. */
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

static int boot_path(const char *tcti, unsigned long *ret_cmds, enum tpm_ek_source *src) {
    struct tpm_ctx *ctx = NULL;
    struct tpm_ek ek = {0};
    struct tpm_clock clk;
    uint8_t *data = NULL;
    size_t len;
    uint64_t v;
    char err[256];

    if (tpm_open(tcti, 0, &ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    if (tpm_ek_rsa(ctx, 0, &ek) < 0 || tpm_nv_read(ctx, IDX, &data, &len) < 0 ||
        tpm_counter_read(ctx, IDX + 1, &v) < 0 || tpm_read_clock(ctx, &clk) < 0) {
        fprintf(stderr, "boot path: %s\n", tpm_last_error(ctx));
        tpm_close(ctx);
        return -1;
    }
    *src = ek.source;
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

    if (strstr(opts, "--no-persistent-ek") && strstr(opts, "--no-certs"))
        runs = 5; /* CreatePrimary each time: RSA key generation */
    for (int i = 0; i < runs; i++) {
        double t0 = lg_now_us();
        if (boot_path(s.tcti, &cmds, &src) < 0)
            return -1;
        t[i] = lg_now_us() - t0;
    }
    snprintf(what, sizeof(what), "%s: boot path via %s", label, srcs[src]);
    report(what, t, runs, cmds);
    swtpm_destroy(&s);
    return 0;
}

int main(void) {
    printf("TPM boot path on swtpm: open + EK + 2 KB NV read + counter read + ReadClock\n");
    if (run("with EK certificate", "") < 0 ||
        run("persistent EK, no certificate", "--no-certs") < 0 ||
        run("no certificate, no persistent EK", "--no-certs --no-persistent-ek") < 0)
        return 1;
    return 0;
}
