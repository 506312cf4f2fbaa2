/* Starting and licensing a real tpmlicd for the benchmarks (benchagent.h). */
#include "bench/lib/benchagent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cert/cert.h"

pid_t bench_spawn_agent(const char *tcti, const char *sock, const char *state_dir,
                        const char *vendor_pub, const char *logfile) {
    char tpmlicd[300];
    const char *b = getenv("B");
    pid_t pid;

    snprintf(tpmlicd, sizeof(tpmlicd), "%s/tpmlicd", b && *b ? b : "build/rel");
    unlink(sock);
    pid = fork();
    if (pid == 0) {
        FILE *f = freopen(logfile, "a", stderr);
        (void)f;
        execl(tpmlicd, "tpmlicd", "--config", "/dev/null", "--tcti", tcti, "--socket", sock,
              "--state-dir", state_dir, "--vendor-key", vendor_pub, "--tpm-watch", "60",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

int bench_sign_license(const char *activation_certificate, EVP_PKEY *key, uint32_t tick,
                       uint64_t granted, char **ret_jws) {
    struct cert_activation act;
    struct cert_license lic = {0};
    char msg[256];
    uint8_t r[8];
    int rc;

    if (!activation_certificate ||
        cert_activation_decode(activation_certificate, strlen(activation_certificate), &act, msg,
                               sizeof(msg)) != CERT_OK)
        return -1;
    snprintf(lic.license, sizeof(lic.license), "%s", act.license);
    snprintf(lic.product, sizeof(lic.product), "bench");
    snprintf(lic.computer_id, sizeof(lic.computer_id), "%s", act.computer_id);
    lic.hwid = act.hwid;
    lic.type = CERT_PERPETUAL;
    snprintf(lic.features[0], sizeof(lic.features[0]), "standard");
    snprintf(lic.features[1], sizeof(lic.features[1]), "enhanced");
    lic.nfeatures = 2;
    lic.secs_allocated = lic.secs_granted = granted;
    lic.offline_allowed = lic.activated_offline = true;
    lic.tick_secs = tick;
    lic.counter = act.counter;
    lic.iat = time(NULL);
    RAND_bytes(r, sizeof(r));
    snprintf(lic.jti, sizeof(lic.jti), "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7]);
    cert_activation_clear(&act);
    rc = cert_license_sign(&lic, key, ret_jws, msg, sizeof(msg));
    return rc < 0 ? -1 : 0;
}
