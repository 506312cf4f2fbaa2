/* Per-address limits and the client address (limits.h). The tables are
 * open-addressing hash tables over the 16 address bytes with a random seed
 * (an attacker choosing addresses cannot make them collide on purpose). */
#include "server/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>

#include "common/macro.h"

struct conn_slot {
    struct srv_addr a;
    unsigned count; /* 0: free */
};

struct rate_slot {
    struct srv_addr a;
    double tokens;
    uint64_t last_ms;
    bool used;
};

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void make_seed(void) {
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = 0x9e3779b97f4a7c15ull;
}

static size_t hash(const struct srv_addr *a, size_t mask) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (int i = 0; i < 16; i++) {
        h ^= a->b[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    return (size_t)h & mask;
}

static size_t pow2_at_least(size_t n) {
    size_t p = 64;
    while (p < n)
        p *= 2;
    return p;
}

/* ---- addresses -------------------------------------------------------------------- */

int srv_addr_from_sockaddr(const struct sockaddr *sa, struct srv_addr *ret) {
    memset(ret, 0, sizeof(*ret));
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        ret->b[10] = ret->b[11] = 0xff;
        memcpy(ret->b + 12, &s4->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(ret->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -EAFNOSUPPORT;
}

int srv_addr_parse(const char *s, struct srv_addr *ret) {
    struct in_addr v4;
    memset(ret, 0, sizeof(*ret));
    if (inet_pton(AF_INET, s, &v4) == 1) {
        ret->b[10] = ret->b[11] = 0xff;
        memcpy(ret->b + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, s, ret->b) == 1 ? 0 : -EINVAL;
}

static bool is_v4(const struct srv_addr *a) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->b, prefix, sizeof(prefix)) == 0;
}

void srv_addr_format(const struct srv_addr *a, char out[SRV_ADDR_STRLEN]) {
    if (!inet_ntop(is_v4(a) ? AF_INET : AF_INET6, is_v4(a) ? a->b + 12 : a->b, out,
                   SRV_ADDR_STRLEN))
        snprintf(out, SRV_ADDR_STRLEN, "?");
}

/* ---- networks ----------------------------------------------------------------------- */

static int cidr_parse(const char *s, struct srv_cidr *ret) {
    char text[64];
    const char *slash = strchr(s, '/');
    unsigned long bits = 0;
    bool v4;

    if (strlen(s) >= sizeof(text))
        return -EINVAL;
    snprintf(text, sizeof(text), "%.*s", slash ? (int)(slash - s) : (int)strlen(s), s);
    if (srv_addr_parse(text, &ret->net) < 0)
        return -EINVAL;
    v4 = strchr(text, ':') == NULL;
    if (slash) {
        char *end;
        if (!slash[1] || slash[1] < '0' || slash[1] > '9')
            return -EINVAL;
        bits = strtoul(slash + 1, &end, 10);
        if (*end || bits > (v4 ? 32u : 128u))
            return -EINVAL;
    } else {
        bits = v4 ? 32 : 128;
    }
    ret->prefix = (unsigned)bits + (v4 ? 96 : 0);
    /* the host bits do not count */
    for (unsigned i = ret->prefix; i < 128; i++)
        ret->net.b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

int srv_cidrs_parse(struct srv_cidrs *list, const char *text, char *bad, size_t badlen) {
    const char *p = text ? text : "";

    while (*p) {
        size_t n;
        char item[64];
        struct srv_cidr c, *nv;

        p += strspn(p, ", \t");
        n = strcspn(p, ", \t");
        if (!n)
            break;
        if (n >= sizeof(item) ||
            (snprintf(item, sizeof(item), "%.*s", (int)n, p), cidr_parse(item, &c) < 0)) {
            if (bad)
                snprintf(bad, badlen, "%.*s", (int)(n < 60 ? n : 60), p);
            return -EINVAL;
        }
        nv = reallocarray(list->v, list->n + 1, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        list->v = nv;
        list->v[list->n++] = c;
        p += n;
    }
    return 0;
}

bool srv_cidrs_match(const struct srv_cidrs *list, const struct srv_addr *a) {
    for (size_t i = 0; list && i < list->n; i++) {
        const struct srv_cidr *c = &list->v[i];
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(a->b, c->net.b, full) != 0)
            continue;
        if (rest && ((a->b[full] ^ c->net.b[full]) & (uint8_t)(0xff00u >> rest)))
            continue;
        return true;
    }
    return false;
}

void srv_cidrs_free(struct srv_cidrs *list) {
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

bool srv_client_address(const struct srv_addr *peer, const char *xff,
                        const struct srv_cidrs *trusted, struct srv_addr *ret) {
    size_t end;

    *ret = *peer;
    if (!xff || !srv_cidrs_match(trusted, peer))
        return false;
    end = strlen(xff);
    while (end > 0) {
        size_t seg = end, start, n;
        char item[64];
        struct srv_addr a;

        while (seg > 0 && xff[seg - 1] != ',')
            seg--;
        /* the entry between seg and end, trimmed */
        start = seg;
        n = end - seg;
        while (n && (xff[start] == ' ' || xff[start] == '\t')) {
            start++;
            n--;
        }
        while (n && (xff[start + n - 1] == ' ' || xff[start + n - 1] == '\t'))
            n--;
        if (n == 0 || n >= sizeof(item))
            break;
        snprintf(item, sizeof(item), "%.*s", (int)n, xff + start);
        if (srv_addr_parse(item, &a) < 0)
            break;
        *ret = a;
        if (!srv_cidrs_match(trusted, &a) || seg == 0)
            break;
        end = seg - 1; /* the comma */
    }
    return memcmp(ret->b, peer->b, 16) != 0;
}

/* ---- connections per address ----------------------------------------------------------- */

int srv_conns_init(struct srv_conns *c, unsigned per_addr_max, unsigned total_max) {
    pthread_once(&seed_once, make_seed);
    memset(c, 0, sizeof(*c));
    c->per_addr_max = per_addr_max;
    c->total_max = total_max;
    /* the total can go over its maximum by the threads that admit at once
     * (at most 256): room for twice that keeps the table half empty */
    c->nslots = pow2_at_least(2 * ((size_t)total_max + 256));
    c->slots = calloc(c->nslots, sizeof(*c->slots));
    if (!c->slots)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    return 0;
}

void srv_conns_destroy(struct srv_conns *c) {
    if (!c->slots)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->slots);
    c->slots = NULL;
}

/* The slot of a, or the free slot where it would go. */
static size_t conn_find(const struct srv_conns *c, const struct srv_addr *a) {
    size_t mask = c->nslots - 1, i = hash(a, mask);
    while (c->slots[i].count && memcmp(c->slots[i].a.b, a->b, 16) != 0)
        i = (i + 1) & mask;
    return i;
}

int srv_conns_admit(struct srv_conns *c, const struct srv_addr *a) {
    int r = 0;

    pthread_mutex_lock(&c->lock);
    if (c->total >= c->total_max)
        r = -EMFILE;
    else if (c->per_addr_max && c->slots[conn_find(c, a)].count >= c->per_addr_max)
        r = -EUSERS;
    pthread_mutex_unlock(&c->lock);
    return r;
}

void srv_conns_open(struct srv_conns *c, const struct srv_addr *a) {
    size_t i;

    pthread_mutex_lock(&c->lock);
    i = conn_find(c, a);
    c->slots[i].a = *a;
    c->slots[i].count++;
    c->total++;
    pthread_mutex_unlock(&c->lock);
}

void srv_conns_close(struct srv_conns *c, const struct srv_addr *a) {
    size_t mask, i, j;

    pthread_mutex_lock(&c->lock);
    mask = c->nslots - 1;
    i = conn_find(c, a);
    if (c->slots[i].count) {
        c->total--;
        if (--c->slots[i].count == 0) {
            /* backward-shift deletion keeps every probe chain unbroken */
            j = i;
            for (;;) {
                size_t home;
                j = (j + 1) & mask;
                if (!c->slots[j].count)
                    break;
                home = hash(&c->slots[j].a, mask);
                if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
                    c->slots[i] = c->slots[j];
                    c->slots[j].count = 0;
                    i = j;
                }
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
}

unsigned srv_conns_count(struct srv_conns *c, const struct srv_addr *a) {
    unsigned n;
    pthread_mutex_lock(&c->lock);
    n = c->slots[conn_find(c, a)].count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

unsigned srv_conns_total(struct srv_conns *c) {
    unsigned n;
    pthread_mutex_lock(&c->lock);
    n = c->total;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- rate per address --------------------------------------------------------------------- */

int srv_rate_init(struct srv_rate *r, unsigned rate_per_min, unsigned burst, size_t max_addrs) {
    pthread_once(&seed_once, make_seed);
    memset(r, 0, sizeof(*r));
    r->per_ms = rate_per_min / 60000.0;
    r->burst = burst ? burst : 1;
    r->max_addrs = max_addrs ? max_addrs : 1;
    r->nslots = pow2_at_least(2 * r->max_addrs);
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    if (!r->slots)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    return 0;
}

void srv_rate_destroy(struct srv_rate *r) {
    if (!r->slots)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->slots);
    r->slots = NULL;
}

static double refilled(const struct srv_rate *r, const struct rate_slot *s, uint64_t now_ms) {
    double t = s->tokens + (double)(now_ms > s->last_ms ? now_ms - s->last_ms : 0) * r->per_ms;
    return t > r->burst ? r->burst : t;
}

static struct rate_slot *rate_find(struct srv_rate *r, const struct srv_addr *a) {
    size_t mask = r->nslots - 1, i = hash(a, mask);
    while (r->slots[i].used && memcmp(r->slots[i].a.b, a->b, 16) != 0)
        i = (i + 1) & mask;
    return &r->slots[i];
}

/* The table is full: forget the addresses whose bucket is full again (they
 * are as if never seen), and if that frees nothing, the older half. */
static void rate_compact(struct srv_rate *r, uint64_t now_ms) {
    struct rate_slot *old = r->slots;
    uint64_t cut = 0;
    size_t keep = 0;

    for (size_t i = 0; i < r->nslots; i++)
        if (old[i].used && refilled(r, &old[i], now_ms) < r->burst)
            keep++;
    if (keep >= r->max_addrs) {
        /* the median age, roughly: the mean of the last times */
        long double sum = 0;
        for (size_t i = 0; i < r->nslots; i++)
            if (old[i].used)
                sum += old[i].last_ms;
        cut = (uint64_t)(sum / (long double)r->used);
    }
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    if (!r->slots) {
        r->slots = old; /* keep going with the full table */
        return;
    }
    r->used = 0;
    for (size_t i = 0; i < r->nslots; i++) {
        struct rate_slot *s;
        if (!old[i].used || refilled(r, &old[i], now_ms) >= r->burst || old[i].last_ms < cut)
            continue;
        s = rate_find(r, &old[i].a);
        *s = old[i];
        r->used++;
    }
    free(old);
}

bool srv_rate_take(struct srv_rate *r, const struct srv_addr *a, uint64_t now_ms,
                   unsigned *retry_secs) {
    struct rate_slot *s;
    bool ok;

    if (r->per_ms <= 0)
        return true;
    pthread_mutex_lock(&r->lock);
    s = rate_find(r, a);
    if (!s->used) {
        if (r->used >= r->max_addrs) {
            rate_compact(r, now_ms);
            s = rate_find(r, a);
        }
        if (!s->used && r->used < r->max_addrs) {
            s->used = true;
            s->a = *a;
            s->tokens = r->burst;
            s->last_ms = now_ms;
            r->used++;
        }
    }
    if (!s->used) {
        pthread_mutex_unlock(&r->lock);
        return true; /* out of memory: fail open rather than refuse everyone */
    }
    s->tokens = refilled(r, s, now_ms);
    s->last_ms = now_ms;
    ok = s->tokens >= 1.0;
    if (ok)
        s->tokens -= 1.0;
    else if (retry_secs) {
        /* until a whole token is back, rounded up to a second */
        double secs = (1.0 - s->tokens) / r->per_ms / 1000.0;
        unsigned whole = (unsigned)secs;
        *retry_secs = whole + (secs > whole || whole == 0);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}
