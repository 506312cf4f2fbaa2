/* Dropping privileges for real (needs root, as CI and `make check` run):
 * each case runs in a forked child so the test process stays root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/privs.h"

/* Runs fn in a child; returns its exit status. */
static int in_child(int (*fn)(const char *), const char *arg) {
    int st;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static int drop_and_check(const char *user) {
    char err[256];
    struct passwd *pw = getpwnam("nobody");
    gid_t groups[8];

    if (agent_drop_privileges(user, err, sizeof(err)) < 0) {
        fprintf(stderr, "drop: %s\n", err);
        return 1;
    }
    if (!pw || getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid)
        return 2;
    if (setuid(0) == 0 || seteuid(0) == 0)
        return 3;
    if (getgroups(8, groups) < 0)
        return 4;
    for (int i = 0; i < getgroups(0, NULL); i++)
        if (groups[i] == 0)
            return 5; /* root's group kept */
    return 0;
}

static int expect_error(const char *user) {
    char err[256] = "";
    int r = agent_drop_privileges(user, err, sizeof(err));
    if (getuid() != 0)
        return 10; /* nothing may change on failure */
    if (r == -ESRCH && strstr(err, "does not exist"))
        return 20;
    if (r == -EINVAL && strstr(err, "is root"))
        return 30;
    fprintf(stderr, "unexpected: %d %s\n", r, err);
    return 40;
}

static void requires_root(void **state) {
    if (getuid() != 0)
        fail_msg("these tests switch users and must run as root (CI and make check do)");
}

static void drops_for_good(void **state) {
    assert_int_equal(getuid(), 0);
    assert_int_equal(in_child(drop_and_check, "nobody"), 0);
    {
        char uid[16];
        snprintf(uid, sizeof(uid), "%u", (unsigned)getpwnam("nobody")->pw_uid);
        assert_int_equal(in_child(drop_and_check, uid), 0);
    }
}

static void refuses_unknown_and_root(void **state) {
    assert_int_equal(in_child(expect_error, "no-such-user-tpmlic"), 20);
    assert_int_equal(in_child(expect_error, "root"), 30);
    assert_int_equal(in_child(expect_error, "0"), 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requires_root),
        cmocka_unit_test(drops_for_good),
        cmocka_unit_test(refuses_unknown_and_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
