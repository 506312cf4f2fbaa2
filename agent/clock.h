/* The agent's wall clock. Every licensing decision asks agent_now(), so that
 * the tests' clock (tests/lib/testclock.c, linked only into a test build of
 * the agent with -Wl,--wrap=agent_now) can move time by hours or days. The
 * release build has no way to change it. */
#pragma once

#include <time.h>

time_t agent_now(void);
/* Seconds on a clock that never jumps (CLOCK_MONOTONIC): for scheduling.
 * The test clock moves it by the same offset. */
time_t agent_mono(void);
/* The longest a timed wait may sleep before it looks at agent_now() again:
 * 0 = no limit (the real clock); the test clock returns a short one so that
 * moving its time wakes sleepers. Milliseconds. */
long agent_clock_wait_cap_ms(void);
