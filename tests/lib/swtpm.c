/* Test harness: one swtpm per test over a UNIX socket (see swtpm.h). */
#include "tests/lib/swtpm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *test_srcdir(void) {
    const char *s = getenv("TPMLIC_SRCDIR");
    return s && *s ? s : ".";
}

static int run(char *out, size_t outlen, const char *cmd) {
    FILE *p;
    size_t n = 0;
    int st;

    p = popen(cmd, "r");
    if (!p)
        return -1;
    if (out && outlen) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
    }
    {
        char sink[4096];
        while (fread(sink, 1, sizeof(sink), p) > 0)
            ;
    }
    st = pclose(p);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void ca_dir(char *buf, size_t len) {
    const char *ca = getenv("TPMLIC_TEST_CA");
    if (ca && *ca)
        snprintf(buf, len, "%s", ca);
    else
        snprintf(buf, len, "/tmp/tpmlic-test-ca-%u", (unsigned)getuid());
}

int swtpm_ctl(struct swtpm *s, const char *cmd, const char *args) {
    char line[1024], out[512];
    snprintf(line, sizeof(line), "'%s/swtpm-scripts/swtpm-ctl' %s '%s' %s 2>&1", test_srcdir(), cmd,
             s->dir, args ? args : "");
    if (run(out, sizeof(out), line) != 0) {
        if (strcmp(cmd, "running") == 0)
            return -1;
        fprintf(stderr, "swtpm-ctl %s %s failed: %s\n", cmd, s->dir, out);
        return -1;
    }
    return 0;
}

int swtpm_new(struct swtpm *s, const char *options) {
    char ca[PATH_MAX], args[PATH_MAX + 128];

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/tpmlic-swtpm.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        return -1;
    }
    ca_dir(ca, sizeof(ca));
    snprintf(args, sizeof(args), "--ca '%s' %s", ca, options ? options : "");
    if (swtpm_ctl(s, "manufacture", args) < 0 || swtpm_ctl(s, "start", NULL) < 0)
        return -1;
    snprintf(s->tcti, sizeof(s->tcti), "swtpm:path=%s/tpm.sock", s->dir);
    return 0;
}

void swtpm_destroy(struct swtpm *s) {
    if (s->dir[0])
        swtpm_ctl(s, "wipe", NULL);
    s->dir[0] = '\0';
}

int swtpm_sh(struct swtpm *s, char *out, size_t outlen, const char *fmt, ...) {
    char cmd[2048], line[2600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "TPM2TOOLS_TCTI='%s' TSS2_LOG=all+NONE sh -c '%s' 2>&1", s->tcti,
             cmd);
    return run(out, outlen, line);
}

int swtpm_transient_count(struct swtpm *s) {
    char out[4096];
    int n = 0;
    if (swtpm_sh(s, out, sizeof(out), "tpm2_getcap handles-transient") != 0)
        return -1;
    for (char *p = out; (p = strstr(p, "0x")); p += 2)
        n++;
    return n;
}
