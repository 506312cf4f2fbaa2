/* The real wall clock (clock.h). */
#include "agent/clock.h"

time_t agent_now(void) {
    return time(NULL);
}

long agent_clock_wait_cap_ms(void) {
    return 0;
}

time_t agent_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}
