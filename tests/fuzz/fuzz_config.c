/* libFuzzer harness for the config files: tpmlicd's (agent_config_parse,
 * agent/config.c) and tpmlic-server serve's (srv_serve_config_parse,
 * server/config.c), both INI read with libinih. The input is written to a
 * file in a temporary directory and the real reader is called on it, as
 * `--config FILE`. The first byte picks: bit 0 the server (else the agent),
 * bit 1 a few settings on the command line as well (which must win over
 * the file). Checked besides the sanitizers: a config that is accepted
 * holds every value within its rule, and the command line's value where it
 * gave one. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/config.h"
#include "server/config.h"
#include "tpm/tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[128];
static FILE *devnull;

static void cleanup(void) {
    unlink(path);
    rmdir(dir);
}

static void setup(void) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/fuzz-config.XXXXXX", base);
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/test.conf", dir);
    devnull = fopen("/dev/null", "we");
    if (!devnull)
        abort();
    atexit(cleanup);
}

static void agent(bool cli) {
    char *argv[] = {"tpmlicd", "--config", path, "--threads", "3", "--log-level", "debug", NULL};
    int argc = cli ? 7 : 3;
    struct agent_config cfg;
    struct agent_modes modes;
    char err[512];
    int r;

    r = agent_config_parse(argc, argv, &cfg, &modes, err, sizeof(err));
    if (r == 0) {
        if (!cfg.tcti || !cfg.tcti[0] || !cfg.socket_path || !cfg.state_dir || !cfg.vendor_key ||
            !cfg.service_group || !cfg.admin_group || cfg.threads < 1 || cfg.threads > 100000 ||
            cfg.max_connections < 1 || cfg.max_connections > 100000 || cfg.timeout_secs < 1 ||
            cfg.tpm_watch_secs < 1 || cfg.server_timeout_secs < 1 ||
            (cfg.socket_mode & 0600) != 0600 || cfg.socket_mode > 0777 ||
            !tpm_nv_index_is_owner(cfg.nv_base) || modes.print_computer_id || modes.tpm_info)
            abort();
        if (cli && (cfg.threads != 3 || cfg.log_level != LOG_LVL_DEBUG))
            abort();
    } else if (r < 0 && strlen(err) >= sizeof(err)) {
        abort();
    } else if (r > 0) {
        abort(); /* --help and --version are not in argv */
    }
    agent_config_free(&cfg);
}

static void server(bool cli) {
    char *argv[] = {"serve",       "--config",   path,   "--threads", "4", "--trusted-proxy",
                    "10.0.0.1",    "--db",       "x.db", "--key",     "k", "--listen",
                    "127.0.0.1:0", "--tls-cert", "c",    "--tls-key", "t", NULL};
    int argc = cli ? (int)(sizeof(argv) / sizeof(argv[0])) - 1 : 3, code = 0;
    struct srv_serve_config cfg;
    FILE *saved = stderr;
    bool ok;

    /* its messages go to stderr: not at every run */
    stderr = devnull;
    ok = srv_serve_config_parse(argc, argv, &cfg, &code);
    stderr = saved;
    if (ok) {
        if (!cfg.db || !cfg.key || !cfg.listen || !cfg.tls_cert || !cfg.tls_key ||
            cfg.threads < 1 || cfg.threads > 256 || cfg.max_connections < cfg.threads ||
            cfg.timeout < 1 || cfg.validity_window < 3600 ||
            (cfg.admin_port_file && !cfg.admin_listen))
            abort();
        if (cli && (cfg.threads != 4 || strcmp(cfg.db, "x.db") != 0 || !cfg.trusted_proxy ||
                    !strstr(cfg.trusted_proxy, "10.0.0.1")))
            abort();
    } else if (code != 1 && code != 2) {
        abort();
    }
    srv_serve_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd;

    if (size < 1 || size > 65536)
        return 0;
    if (!devnull)
        setup();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)))
        abort();
    close(fd);
    if (data[0] & 1)
        server(data[0] & 2);
    else
        agent(data[0] & 2);
    return 0;
}
