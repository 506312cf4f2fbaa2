/* The lease table (SPEC section 7, docs/usage.md): seconds handed to
 * services, each lease held by the uid that reserved it, charged in full
 * when it expires uncommitted. Pure logic, no locks, no TPM: the ledger
 * owns one table and calls these under its lock. Unit-tested in
 * tests/unit/test_agent_leases.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define LEASES_MAX        1024  /* open leases in all */
#define LEASES_PER_CALLER 256   /* open leases per calling uid */
#define LEASE_SLACK       60    /* a lease expires this long after its seconds run out */
#define LEASE_RESERVE_MAX 86400 /* seconds in one reservation */
#define LEASE_ID_LEN      32    /* hex characters */

struct lease {
    char id[LEASE_ID_LEN + 1]; /* "" when the slot is free */
    uid_t uid;
    uint64_t secs;
    time_t expires;
};

struct leases {
    struct lease slot[LEASES_MAX];
    size_t open;
    uint64_t reserved_total; /* seconds handed out in leases */
    uint64_t charged_total;  /* committed as used, or expired */
    uint64_t returned_total; /* committed as unused */
};

/* Charges every lease past its time in full and frees its slot; returns
 * the seconds charged. */
uint64_t leases_expire(struct leases *t, time_t now);

/* Is there room for one more lease of uid? 0, or -EUSERS when uid holds
 * LEASES_PER_CALLER, -ENOSPC when the table is full. *ret_mine (may be
 * NULL): how many uid holds. */
int leases_room(const struct leases *t, uid_t uid, size_t *ret_mine);

/* Records a lease (call leases_room first): id is LEASE_ID_LEN hex digits. */
int leases_add(struct leases *t, const char *id, uid_t uid, uint64_t secs, time_t now);

/* Commits lease id as used seconds: -ENOENT when no such lease is open,
 * -EPERM when it is another uid's (unless any_uid), -ERANGE when used is
 * more than it holds. On success the unused seconds are in *ret_returned
 * and the slot is free. */
int leases_commit(struct leases *t, const char *id, uid_t uid, bool any_uid, uint64_t used,
                  uint64_t *ret_returned, uint64_t *ret_held);

/* Drops every open lease, charging nothing: the license is gone. */
void leases_clear(struct leases *t);
