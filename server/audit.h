/* The audit log: one row per administrative action (who, what, when, the
 * state before and after), written in the transaction of the action. The
 * database refuses to change or delete a row (triggers of migration 4);
 * nothing in tpmlic-server offers to. */
#pragma once

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "server/db.h"

/* before / after: the object as JSON (borrowed), or NULL (a creation has
 * no before, a deletion no after). detail: one line, may be NULL. */
int srv_audit_add(struct srv_db *db, time_t now, const char *actor, const char *action,
                  const char *target, json_t *before, json_t *after, const char *detail);

struct srv_audit_filter {
    time_t since, until; /* 0: open */
    const char *actor;   /* exact, NULL: any */
    const char *action;  /* exact ("license.update") or a prefix ending in '.' ("license.") */
    const char *target;  /* exact */
    int64_t before_id;   /* only entries older than this one (paging); 0: from the newest */
    unsigned limit;      /* 0: 100 */
};
/* Entries newest first: [{id, time, actor, action, target, before, after,
 * detail}]. */
int srv_audit_list(struct srv_db *db, const struct srv_audit_filter *f, json_t **ret);
