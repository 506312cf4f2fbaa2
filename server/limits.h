/* Limits on what one caller can take from tpmlic-server, and who the
 * caller is: open connections per address, a token bucket per address for
 * activations, the trusted proxies whose X-Forwarded-For names the client.
 * Pure logic (a clock passed in), thread-safe, unit-tested; http.c wires it
 * to libmicrohttpd. Addresses are IPv6, IPv4 as v4-mapped. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct srv_addr {
    uint8_t b[16];
};
#define SRV_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

/* From a socket address (AF_INET or AF_INET6): 0, or -EAFNOSUPPORT. */
int srv_addr_from_sockaddr(const struct sockaddr *sa, struct srv_addr *ret);
/* From text ("192.0.2.7", "2001:db8::1"): 0 or -EINVAL. */
int srv_addr_parse(const char *s, struct srv_addr *ret);
/* As text: IPv4 dotted, IPv6 compressed. */
void srv_addr_format(const struct srv_addr *a, char out[SRV_ADDR_STRLEN]);

/* A list of networks ("10.0.0.0/8", "192.0.2.1", "2001:db8::/32"). */
struct srv_cidr {
    struct srv_addr net;
    unsigned prefix; /* over the 128 bits */
};
struct srv_cidrs {
    struct srv_cidr *v;
    size_t n;
};
/* Parses a comma- or space-separated list and appends it to *list; -EINVAL
 * with the bad entry in bad (bad may be NULL). */
int srv_cidrs_parse(struct srv_cidrs *list, const char *text, char *bad, size_t badlen);
bool srv_cidrs_match(const struct srv_cidrs *list, const struct srv_addr *a);
void srv_cidrs_free(struct srv_cidrs *list);

/* The client behind a chain of proxies: peer is who connected; when it is
 * trusted, X-Forwarded-For (xff, may be NULL) is read from the right and
 * the client is the first address that is not a trusted proxy (the left-
 * most when all are). An entry that is not an address ends the walk: the
 * client is then the last hop read. Returns true when the client is not
 * the peer (forwarded). */
bool srv_client_address(const struct srv_addr *peer, const char *xff,
                        const struct srv_cidrs *trusted, struct srv_addr *ret);

/* Open connections per address, under a total. */
struct srv_conns {
    pthread_mutex_t lock;
    unsigned per_addr_max; /* 0: no limit per address */
    unsigned total, total_max;
    struct conn_slot *slots;
    size_t nslots; /* a power of two, at least twice total_max */
};
int srv_conns_init(struct srv_conns *c, unsigned per_addr_max, unsigned total_max);
void srv_conns_destroy(struct srv_conns *c);
/* Whether a new connection from a may be had: 0, -EMFILE when the total
 * is reached, -EUSERS when a has per_addr_max open already. The count is
 * kept by open and close, called when the connection starts and ends:
 * callers that check and open in separate steps from several threads may
 * go over by as many threads. */
int srv_conns_admit(struct srv_conns *c, const struct srv_addr *a);
void srv_conns_open(struct srv_conns *c, const struct srv_addr *a);
void srv_conns_close(struct srv_conns *c, const struct srv_addr *a);
unsigned srv_conns_count(struct srv_conns *c, const struct srv_addr *a);
unsigned srv_conns_total(struct srv_conns *c);

/* A token bucket per address: rate_per_min tokens a minute, at most burst
 * saved. Tables of at most max_addrs addresses: when full, addresses whose
 * bucket has filled again are forgotten first, then the oldest. */
struct srv_rate {
    pthread_mutex_t lock;
    double per_ms, burst;
    struct rate_slot *slots;
    size_t nslots, used, max_addrs;
};
int srv_rate_init(struct srv_rate *r, unsigned rate_per_min, unsigned burst, size_t max_addrs);
void srv_rate_destroy(struct srv_rate *r);
/* A token for a at now_ms: true; false with *retry_secs (rounded up) when
 * the bucket is empty. rate_per_min 0 (no limit) always gives true. */
bool srv_rate_take(struct srv_rate *r, const struct srv_addr *a, uint64_t now_ms,
                   unsigned *retry_secs);
