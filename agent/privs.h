/* Dropping root for good after start-up (STYLE habit 9): the service user's
 * groups, gid and uid, then a check that root cannot be regained. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Looks up user (name or numeric uid) and switches to it with its
 * supplementary groups. Returns 0, or a negative errno with a reason in
 * errbuf; -EPERM when root could still be regained afterwards. */
int agent_drop_privileges(const char *user, char *errbuf, size_t errlen);
