/* tpmlicd: the licensing agent (SPEC section 9). This build answers the
 * diagnostic modes (--tpm-info); the UNIX-socket service comes with the
 * agent itself. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nvlayout.h"
#include "agent/tpminfo.h"
#include "common/log.h"
#include "tpm/tpm.h"

#define DEFAULT_TCTI "device:/dev/tpmrm0"

static void usage(FILE *f) {
    fprintf(f, "Usage: tpmlicd [OPTIONS]\n"
               "       tpmlicd --tpm-info [--tcti STRING] [--nv-base INDEX]\n"
               "\n"
               "The tpmlic licensing agent.\n"
               "\n"
               "  --tcti STRING        TPM to use (default " DEFAULT_TCTI ")\n"
               "  --nv-base INDEX      first of the agent's NV indices (default 0x%08x,\n"
               "                       TCG owner range 0x01800000-0x01bfffff)\n"
               "  --tpm-info           print the TPM, its endorsement key and the agent's\n"
               "                       NV indices, then exit\n"
               "  --log-level LEVEL    error, warn, info or debug (default info)\n"
               "  -h, --help           this text\n"
               "  --version            print the version\n",
            AGENT_NV_BASE_DEFAULT);
}

static int parse_nv_base(const char *s, uint32_t *ret) {
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno || *end || end == s || !tpm_nv_index_is_owner((uint32_t)v) ||
        !tpm_nv_index_is_owner((uint32_t)v + AGENT_NV_SLOTS - 1))
        return -EINVAL;
    *ret = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv) {
    enum { OPT_TCTI = 256, OPT_NV_BASE, OPT_TPM_INFO, OPT_LOG_LEVEL, OPT_VERSION };
    static const struct option opts[] = {
        {"tcti", required_argument, NULL, OPT_TCTI},
        {"nv-base", required_argument, NULL, OPT_NV_BASE},
        {"tpm-info", no_argument, NULL, OPT_TPM_INFO},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {0},
    };
    const char *tcti = DEFAULT_TCTI;
    uint32_t nv_base = AGENT_NV_BASE_DEFAULT;
    bool tpm_info = false;
    enum log_level level;
    char err[512];
    int c, r;

    log_set_program("tpmlicd");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_TCTI:
            tcti = optarg;
            break;
        case OPT_NV_BASE:
            if (parse_nv_base(optarg, &nv_base) < 0) {
                log_error("--nv-base %s: not an index in the owner range 0x01800000-0x01bfffff",
                          optarg);
                return 2;
            }
            break;
        case OPT_TPM_INFO:
            tpm_info = true;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(optarg, &level) < 0) {
                log_error("--log-level %s: expected error, warn, info or debug", optarg);
                return 2;
            }
            log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("tpmlicd %s\n", TPMLIC_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (tpm_info) {
        r = agent_print_tpm_info(stdout, tcti, nv_base, err, sizeof(err));
        if (r < 0) {
            log_error("%s", err);
            return 1;
        }
        return 0;
    }
    log_error("this build of tpmlicd has only --tpm-info; the socket service is not built yet");
    return 1;
}
