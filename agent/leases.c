/* The lease table (leases.h). */
#include "agent/leases.h"

#include <errno.h>
#include <string.h>

uint64_t leases_expire(struct leases *t, time_t now) {
    uint64_t charged = 0;
    for (size_t i = 0; i < LEASES_MAX && t->open; i++) {
        struct lease *l = &t->slot[i];
        if (l->id[0] && now >= l->expires) {
            charged += l->secs;
            l->id[0] = '\0';
            t->open--;
        }
    }
    t->charged_total += charged;
    return charged;
}

int leases_room(const struct leases *t, uid_t uid, size_t *ret_mine) {
    size_t mine = 0;
    for (size_t i = 0, seen = 0; i < LEASES_MAX && seen < t->open; i++)
        if (t->slot[i].id[0]) {
            seen++;
            mine += t->slot[i].uid == uid;
        }
    if (ret_mine)
        *ret_mine = mine;
    if (mine >= LEASES_PER_CALLER)
        return -EUSERS;
    if (t->open >= LEASES_MAX)
        return -ENOSPC;
    return 0;
}

int leases_add(struct leases *t, const char *id, uid_t uid, uint64_t secs, time_t now) {
    int r = leases_room(t, uid, NULL);
    if (r < 0)
        return r;
    if (!id || strlen(id) != LEASE_ID_LEN)
        return -EINVAL;
    for (size_t i = 0; i < LEASES_MAX; i++) {
        struct lease *l = &t->slot[i];
        if (l->id[0])
            continue;
        memcpy(l->id, id, LEASE_ID_LEN + 1);
        l->uid = uid;
        l->secs = secs;
        l->expires = now + (time_t)secs + LEASE_SLACK;
        t->open++;
        t->reserved_total += secs;
        return 0;
    }
    return -ENOSPC;
}

int leases_commit(struct leases *t, const char *id, uid_t uid, bool any_uid, uint64_t used,
                  uint64_t *ret_returned, uint64_t *ret_held) {
    for (size_t i = 0; i < LEASES_MAX; i++) {
        struct lease *l = &t->slot[i];
        if (!l->id[0] || strcmp(l->id, id) != 0)
            continue;
        if (l->uid != uid && !any_uid)
            return -EPERM;
        if (ret_held)
            *ret_held = l->secs;
        if (used > l->secs)
            return -ERANGE;
        *ret_returned = l->secs - used;
        t->charged_total += used;
        t->returned_total += l->secs - used;
        l->id[0] = '\0';
        t->open--;
        return 0;
    }
    return -ENOENT;
}

void leases_clear(struct leases *t) {
    for (size_t i = 0; i < LEASES_MAX; i++)
        t->slot[i].id[0] = '\0';
    t->open = 0;
}
