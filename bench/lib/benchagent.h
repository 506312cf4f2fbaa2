/* What the benchmarks that run a real tpmlicd share: starting it on a
 * swtpm, and licensing it with an offline activation signed by a vendor key
 * made in the benchmark. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

/* Forks and execs $B/tpmlicd (default build/rel) with its socket, state
 * directory and vendor key, stderr appended to logfile; returns its pid
 * (-1 when fork failed). The caller waits for the socket to answer. */
pid_t bench_spawn_agent(const char *tcti, const char *sock, const char *state_dir,
                        const char *vendor_pub, const char *logfile);

/* The vendor's side of the offline round trip: decodes the activation
 * certificate the agent made and signs a perpetual license with features
 * standard and enhanced, tick_secs tick and granted seconds, bound to the
 * agent's counter. 0 and a malloc'ed JWS in *ret_jws, or -1. */
int bench_sign_license(const char *activation_certificate, EVP_PKEY *key, uint32_t tick,
                       uint64_t granted, char **ret_jws);
