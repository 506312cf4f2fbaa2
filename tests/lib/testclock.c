/* A movable clock for a test build of tpmlicd (agent/clock.h), linked with
 * -Wl,--wrap for agent_now, agent_mono and agent_clock_wait_cap_ms. The file
 * named by TPMLIC_TEST_CLOCK_FILE holds two offsets in seconds, "WALL MONO":
 * moving time forward adds to both, setting the wall clock back subtracts
 * from WALL only (a monotonic clock never goes back). It is re-read whenever
 * it changes. The TPM's own clock is not moved: that is what lets tests set
 * the wall clock back and see that the agent does not believe it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "agent/clock.h"

time_t __real_agent_now(void);
time_t __real_agent_mono(void);
time_t __wrap_agent_now(void);
time_t __wrap_agent_mono(void);
long __wrap_agent_clock_wait_cap_ms(void);

static void offsets(long long *ret_wall, long long *ret_mono) {
    static __thread struct timespec seen_mtime;
    static __thread long long wall, mono;
    const char *path = getenv("TPMLIC_TEST_CLOCK_FILE");
    struct stat st;

    if (path && stat(path, &st) == 0 &&
        (st.st_mtim.tv_sec != seen_mtime.tv_sec || st.st_mtim.tv_nsec != seen_mtime.tv_nsec)) {
        FILE *f = fopen(path, "re");
        long long w, m;
        if (f) {
            if (fscanf(f, "%lld %lld", &w, &m) == 2) {
                wall = w;
                mono = m;
                seen_mtime = st.st_mtim;
            }
            fclose(f);
        }
    }
    *ret_wall = wall;
    *ret_mono = mono;
}

time_t __wrap_agent_now(void) {
    long long w, m;
    offsets(&w, &m);
    return __real_agent_now() + (time_t)w;
}

time_t __wrap_agent_mono(void) {
    long long w, m;
    offsets(&w, &m);
    return __real_agent_mono() + (time_t)m;
}

long __wrap_agent_clock_wait_cap_ms(void) {
    return 100;
}
