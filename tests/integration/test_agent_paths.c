/* The state directory and its files against planted links and a hostile
 * parent directory, on the real file system (agent/paths.c,
 * agent/netconf.c). Runs as root, like the agent before its privilege
 * drop; uid 65534 plays the agent's user and the attacker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/netconf.h"
#include "agent/paths.h"

#define OTHER 65534

struct fixture {
    char base[64];
    char err[512];
};

static void path(const struct fixture *f, const char *name, char *out) {
    snprintf(out, PATH_MAX, "%s/%s", f->base, name);
}

static void write_file(const char *p, const char *text, mode_t mode) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

static char *read_text(const char *p) {
    static char buf[4096];
    ssize_t n;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->base, sizeof(f->base), "/tmp/tpmlic-paths-XXXXXX");
    if (!mkdtemp(f->base) || chmod(f->base, 0755) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int open_state(struct fixture *f, const char *name, int *fd) {
    char p[PATH_MAX];
    path(f, name, p);
    return agent_state_dir_open(p, OTHER, OTHER, fd, f->err, sizeof(f->err));
}

/* A fresh directory is made 0750 and given to the agent's user. */
static void fresh_directory_is_made_and_given(void **state) {
    struct fixture *f = *state;
    char p[PATH_MAX];
    struct stat st;
    int fd = -1;

    assert_int_equal(open_state(f, "state", &fd), 0);
    close(fd);
    path(f, "state", p);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_int_equal(st.st_uid, OTHER);
    assert_int_equal(st.st_gid, OTHER);
}

/* A link at the state directory's path is refused and its target keeps
 * its owner: the agent never gives away what the link points at. */
static void link_at_the_state_directory_is_refused(void **state) {
    struct fixture *f = *state;
    char target[PATH_MAX], link[PATH_MAX];
    struct stat st;
    int fd = -1;

    path(f, "etc-shadow-dir", target);
    path(f, "state", link);
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, link), 0);
    assert_true(open_state(f, "state", &fd) < 0);
    assert_non_null(strstr(f->err, "symbolic link"));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_mode & 07777, 0700);
}

/* A parent directory others can write (where they could swap the state
 * directory for a link between two looks) is refused before anything is
 * made in it. */
static void hostile_parent_is_refused(void **state) {
    struct fixture *f = *state;
    char parent[PATH_MAX], p[PATH_MAX];
    int fd = -1;

    path(f, "open", parent);
    assert_int_equal(mkdir(parent, 0777), 0);
    assert_int_equal(chmod(parent, 0777), 0);
    assert_true(open_state(f, "open/state", &fd) < 0);
    assert_non_null(strstr(f->err, parent));
    assert_non_null(strstr(f->err, "mode 0777"));
    path(f, "open/state", p);
    assert_int_equal(access(p, F_OK), -1);

    /* owned by someone else, even 0755 */
    assert_int_equal(chmod(parent, 0755), 0);
    assert_int_equal(chown(parent, OTHER, OTHER), 0);
    assert_true(open_state(f, "open/state", &fd) < 0);
    assert_non_null(strstr(f->err, "owner uid 65534"));
    assert_int_equal(access(p, F_OK), -1);
}

/* Straight in a directory like /tmp (root's, sticky): others can neither
 * move nor replace the state directory there, and one they made first is
 * refused for its owner. */
static void sticky_parent_like_tmp_is_accepted(void **state) {
    struct fixture *f = *state;
    char parent[PATH_MAX], p[PATH_MAX];
    struct stat st;
    int fd = -1;

    path(f, "tmp", parent);
    assert_int_equal(mkdir(parent, 0755), 0);
    assert_int_equal(chmod(parent, 01777), 0);
    assert_int_equal(open_state(f, "tmp/state", &fd), 0);
    close(fd);
    path(f, "tmp/squatted", p);
    assert_int_equal(mkdir(p, 0750), 0);
    assert_int_equal(chown(p, 1234, 1234), 0);
    assert_int_equal(open_state(f, "tmp/squatted", &fd), -EPERM);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, 1234);
}

static void state_directory_others_can_write_is_refused(void **state) {
    struct fixture *f = *state;
    char p[PATH_MAX];
    int fd = -1;

    path(f, "state", p);
    assert_int_equal(mkdir(p, 0777), 0);
    assert_int_equal(chmod(p, 0777), 0);
    assert_int_equal(open_state(f, "state", &fd), -EPERM);
    assert_non_null(strstr(f->err, "the directory itself"));
}

/* nv.auth: made once, read back the same; a link or a readable file is
 * refused and the link's target is neither read nor written. */
static void nv_auth_is_made_once_and_links_are_refused(void **state) {
    struct fixture *f = *state;
    uint8_t a[AGENT_NV_AUTH_LEN], b[AGENT_NV_AUTH_LEN];
    char p[PATH_MAX], victim[PATH_MAX];
    bool created;
    struct stat st;
    int fd = -1;

    assert_int_equal(open_state(f, "state", &fd), 0);
    assert_int_equal(agent_nv_auth_load(fd, a, &created, f->err, sizeof(f->err)), 0);
    assert_true(created);
    assert_int_equal(agent_nv_auth_load(fd, b, &created, f->err, sizeof(f->err)), 0);
    assert_false(created);
    assert_memory_equal(a, b, sizeof(a));
    path(f, "state/nv.auth", p);
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0400);

    assert_int_equal(chmod(p, 0444), 0);
    assert_int_equal(agent_nv_auth_load(fd, b, &created, f->err, sizeof(f->err)), -EPERM);
    assert_non_null(strstr(f->err, "mode 0444"));

    /* a link planted in place of it: not followed, not replaced */
    path(f, "secret", victim);
    write_file(victim, "0123456789abcdef0123456789abcdef", 0400);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(symlink(victim, p), 0);
    assert_int_equal(agent_nv_auth_load(fd, b, &created, f->err, sizeof(f->err)), -ELOOP);
    assert_non_null(strstr(f->err, "symbolic link"));
    assert_string_equal(read_text(victim), "0123456789abcdef0123456789abcdef");
    close(fd);
}

static int set_proxy(int fd, char *err, size_t errlen) {
    json_t *shown = NULL, *body = json_pack("{s:{s:s, s:i}}", "http_configuration", "ip",
                                            "192.0.2.7", "port", 3128);
    int r = agent_netconf_set(fd, body, &shown, err, errlen);
    json_decref(body);
    json_decref(shown);
    return r;
}

/* network.json: a link at its name is neither read nor written through;
 * storing replaces the link itself; a link at the temporary name stops the
 * write with a message; a file another user wrote is not read. */
static void network_settings_do_not_follow_links(void **state) {
    struct fixture *f = *state;
    const char *planted = "{\"ip\":\"203.0.113.9\",\"port\":8080}";
    char p[PATH_MAX], tmp[PATH_MAX], victim[PATH_MAX];
    char *url = NULL, *userpwd = NULL;
    struct stat st;
    int fd = -1;

    assert_int_equal(open_state(f, "state", &fd), 0);
    path(f, "state/network.json", p);
    path(f, "state/network.json.tmp", tmp);
    path(f, "victim.json", victim);
    write_file(victim, planted, 0644);

    /* none yet: no proxy */
    assert_int_equal(agent_netconf_proxy(fd, &url, &userpwd), 0);
    assert_string_equal(url, "");
    free(url);

    assert_int_equal(symlink(victim, p), 0);
    assert_int_equal(agent_netconf_proxy(fd, &url, &userpwd), -EBADMSG);
    assert_int_equal(set_proxy(fd, f->err, sizeof(f->err)), 0);
    assert_string_equal(read_text(victim), planted);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(agent_netconf_proxy(fd, &url, &userpwd), 0);
    assert_string_equal(url, "http://192.0.2.7:3128");
    free(url);

    assert_int_equal(symlink(victim, tmp), 0);
    assert_int_equal(set_proxy(fd, f->err, sizeof(f->err)), -ELOOP);
    assert_non_null(strstr(f->err, "symbolic link"));
    assert_string_equal(read_text(victim), planted);
    assert_int_equal(unlink(tmp), 0);

    /* a file of another user's making is not read */
    assert_int_equal(unlink(p), 0);
    write_file(p, planted, 0600);
    assert_int_equal(chown(p, OTHER, OTHER), 0);
    assert_int_equal(agent_netconf_proxy(fd, &url, &userpwd), -EBADMSG);
    close(fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
        T(fresh_directory_is_made_and_given),
        T(link_at_the_state_directory_is_refused),
        T(hostile_parent_is_refused),
        T(sticky_parent_like_tmp_is_accepted),
        T(state_directory_others_can_write_is_refused),
        T(nv_auth_is_made_once_and_links_are_refused),
        T(network_settings_do_not_follow_links),
    };
    if (geteuid() != 0) {
        printf("test_agent_paths: needs root (it gives files to another uid); skipped\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
