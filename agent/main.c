/* tpmlicd: the licensing agent (SPEC section 9): the diagnostic modes
 * (--tpm-info, --print-computer-id) and the daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/identity.h"
#include "agent/run.h"
#include "agent/tpminfo.h"
#include "common/log.h"
#include "tpm/tpm.h"

int main(int argc, char **argv) {
    struct agent_config cfg;
    struct agent_modes modes;
    char err[512];
    int r;

    log_set_program("tpmlicd");
    r = agent_config_parse(argc, argv, &cfg, &modes, err, sizeof(err));
    if (r != 0) {
        if (r < 0)
            log_error("%s", err);
        agent_config_free(&cfg);
        return r > 0 ? 0 : (r == -EINVAL ? 2 : 1);
    }
    log_set_level(cfg.log_level);
    if (modes.tpm_info) {
        r = agent_print_tpm_info(stdout, cfg.tcti, cfg.nv_base, err, sizeof(err));
        if (r < 0)
            log_error("%s", err);
        agent_config_free(&cfg);
        return r < 0 ? 1 : 0;
    }
    if (modes.print_computer_id) {
        r = agent_print_computer_id(cfg.tcti, cfg.allow_no_tpm, modes.explain, modes.json, err,
                                    sizeof(err));
        if (r < 0)
            log_error("%s", err);
        agent_config_free(&cfg);
        return r < 0 ? 1 : 0;
    }
    r = agent_run(&cfg);
    agent_config_free(&cfg);
    return r != 0 ? 1 : 0;
}
