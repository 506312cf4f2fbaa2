/* Dropping root for good (privs.h). */
#include "agent/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int agent_drop_privileges(const char *user, char *err, size_t errlen) {
    struct passwd pw, *res = NULL;
    char buf[4096];
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    char *end;
    int r;

    r = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (!res) {
        unsigned long id;
        errno = 0;
        id = strtoul(user, &end, 10);
        if (!errno && *user && !*end)
            r = getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res);
    }
    if (!res) {
        snprintf(err, errlen, "user '%s' does not exist%s%s", user, r ? ": " : "",
                 r ? strerror(r) : "");
        return -ESRCH;
    }
    if (pw.pw_uid == 0) {
        snprintf(err, errlen, "user '%s' is root: nothing to drop", user);
        return -EINVAL;
    }
    if (initgroups(pw.pw_name, pw.pw_gid) < 0 || setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) < 0 ||
        setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) < 0) {
        r = -errno;
        snprintf(err, errlen, "switching to user '%s' failed: %s", user, strerror(errno));
        return r;
    }
    /* Verify: every id is the service user's, and root cannot come back. */
    if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
        ruid != pw.pw_uid || euid != pw.pw_uid || suid != pw.pw_uid || rgid != pw.pw_gid ||
        egid != pw.pw_gid || sgid != pw.pw_gid) {
        snprintf(err, errlen, "after switching to '%s' some ids are still not the user's", user);
        return -EPERM;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, errlen, "root could be regained after switching to '%s'", user);
        return -EPERM;
    }
    return 0;
}
