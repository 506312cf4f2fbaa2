/* tpmlicd's daemon (run.c). */
#pragma once

struct agent_config;

/* Starts, serves until SIGTERM/SIGINT, stops. Returns 0 after an orderly
 * stop, or a negative errno after logging the one-line reason it could not
 * start. */
int agent_run(struct agent_config *cfg);
