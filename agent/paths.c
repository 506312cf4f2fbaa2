/* Trusted paths, the state directory and its secret (paths.h). */
#include "agent/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/macro.h"

static bool owner_ok(uid_t uid) {
    return uid == 0 || uid == geteuid();
}

static int refuse(char *err, size_t errlen, const char *what, const char *path,
                  const struct stat *st, const char *detail) {
    snprintf(err, errlen,
             "%s %s can be changed by others than root (%s: owner uid %u, mode %04o): make it "
             "writable by root alone (chown root; chmod go-w)",
             what, path, detail, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
    return -EPERM;
}

/* Every directory from dir up to /. */
static int check_parents(const char *resolved, const char *what, char *err, size_t errlen) {
    char buf[PATH_MAX];
    struct stat st;

    snprintf(buf, sizeof(buf), "%s", resolved);
    for (;;) {
        char *slash = strrchr(buf, '/');
        if (!slash)
            return 0;
        if (slash == buf)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(buf, &st) < 0) {
            int r = -errno;
            snprintf(err, errlen, "%s: cannot look at %s: %s", what, buf, strerror(errno));
            return r;
        }
        if (!owner_ok(st.st_uid) ||
            ((st.st_mode & 022) && !((st.st_mode & S_ISVTX) && st.st_uid == 0)))
            return refuse(err, errlen, what, buf, &st, "a directory above it");
        if (!strcmp(buf, "/"))
            return 0;
    }
}

int agent_path_trusted(const char *path, const char *what, char *err, size_t errlen) {
    char resolved[PATH_MAX];
    struct stat st;

    if (!realpath(path, resolved) || stat(resolved, &st) < 0) {
        int r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return r;
    }
    /* /dev/null: nothing can be written into it */
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
        return 0;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s %s is not a regular file", what, path);
        return -EINVAL;
    }
    /* a directory like /tmp (root's, sticky) is as safe here as above */
    if (!owner_ok(st.st_uid) ||
        ((st.st_mode & 022) && !(S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) && st.st_uid == 0)))
        return refuse(err, errlen, what, resolved, &st,
                      strcmp(resolved, path) ? "the file it leads to" : "the file itself");
    return check_parents(resolved, what, err, errlen);
}

int agent_dir_trusted(const char *path, const char *what, char *err, size_t errlen) {
    DIR *d;
    struct dirent *e;
    int r = agent_path_trusted(path, what, err, errlen);

    if (r < 0)
        return r;
    d = opendir(path);
    if (!d) {
        r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return r;
    }
    while (r == 0 && (e = readdir(d))) {
        char file[PATH_MAX];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        r = agent_path_trusted(file, what, err, errlen);
    }
    closedir(d);
    return r;
}

int agent_state_dir_open(const char *path, uid_t uid, gid_t gid, int *ret_fd, char *err,
                         size_t errlen) {
    _cleanup_free_ char *copy1 = strdup(path), *copy2 = strdup(path);
    _cleanup_close_ int parent = -1;
    const char *dir, *base;
    struct stat st;
    int fd, r;

    if (!copy1 || !copy2)
        return -ENOMEM;
    dir = dirname(copy1);
    base = basename(copy2);
    r = agent_path_trusted(dir, "the state directory's parent", err, errlen);
    if (r < 0)
        return r;
    parent = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        return r;
    }
    if (mkdirat(parent, base, 0750) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create state directory %s: %s", path, strerror(errno));
        return r;
    }
    /* O_PATH: root without CAP_DAC_OVERRIDE may not read a directory its
     * service user owns, but may hold it; the user opens files in it later */
    fd = openat(parent, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open state directory %s: %s", path,
                 errno == ELOOP || errno == ENOTDIR ? "it is a symbolic link or not a directory"
                                                    : strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0 || (st.st_mode & 022) ||
        (st.st_uid != 0 && st.st_uid != geteuid() && (uid == (uid_t)-1 || st.st_uid != uid))) {
        r = refuse(err, errlen, "state directory", path, &st, "the directory itself");
        close(fd);
        return r;
    }
    if (uid != (uid_t)-1 && (st.st_uid != uid || (gid != (gid_t)-1 && st.st_gid != gid)) &&
        fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot give %s to uid %u: %s", path, (unsigned)uid, strerror(errno));
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

static int read_exact(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        got += (size_t)k;
    }
    return 0;
}

int agent_nv_auth_load(int dirfd, uint8_t ret[AGENT_NV_AUTH_LEN], bool *ret_created, char *err,
                       size_t errlen) {
    _cleanup_close_ int fd = -1;
    char hex[HEX_BUFLEN(AGENT_NV_AUTH_LEN)];
    struct stat st;
    int r;

    *ret_created = false;
    fd = openat(dirfd, "nv.auth", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = openat(dirfd, "nv.auth", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0) {
            r = -errno;
            snprintf(err, errlen, "cannot create nv.auth in the state directory: %s",
                     strerror(errno));
            return r;
        }
        r = hex_random(hex, AGENT_NV_AUTH_LEN);
        if (r == 0 && hex_decode_exact(hex, ret, AGENT_NV_AUTH_LEN) < 0)
            r = -EIO;
        secure_wipe(hex, sizeof(hex));
        if (r == 0 && write(fd, ret, AGENT_NV_AUTH_LEN) != AGENT_NV_AUTH_LEN)
            r = -EIO;
        if (r == 0 && fsync(fd) < 0)
            r = -errno;
        if (r == 0) {
            /* the directory entry too (dirfd is O_PATH: a readable one) */
            int d = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (d < 0 || fsync(d) < 0)
                r = -errno;
            if (d >= 0)
                close(d);
        }
        if (r < 0) {
            unlinkat(dirfd, "nv.auth", 0);
            snprintf(err, errlen, "cannot write nv.auth in the state directory: %s", strerror(-r));
            return r;
        }
        *ret_created = true;
        return 0;
    }
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot read nv.auth in the state directory: %s",
                 errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !owner_ok(st.st_uid) || (st.st_mode & 077) ||
        st.st_size != AGENT_NV_AUTH_LEN) {
        snprintf(err, errlen,
                 "nv.auth in the state directory must be a file of %d bytes that only root can "
                 "read (owner uid %u, mode %04o, %lld bytes)",
                 AGENT_NV_AUTH_LEN, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                 (long long)st.st_size);
        return -EPERM;
    }
    r = read_exact(fd, ret, AGENT_NV_AUTH_LEN);
    if (r < 0)
        snprintf(err, errlen, "cannot read nv.auth in the state directory: %s", strerror(-r));
    return r;
}

int agent_secret_file_read(const char *path, const char *what, uint8_t *buf, size_t max,
                           size_t *ret_len, char *err, size_t errlen) {
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r = agent_path_trusted(path, what, err, errlen);

    if (r < 0)
        return r;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return r;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s %s can be read by others than root (mode %04o): chmod 0400 it",
                 what, path, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    if ((size_t)st.st_size > max) {
        snprintf(err, errlen, "%s %s is larger than %zu bytes", what, path, max);
        return -EFBIG;
    }
    r = read_exact(fd, buf, (size_t)st.st_size);
    if (r < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(-r));
        return r;
    }
    /* a password typed into an editor ends with a line end: not part of it */
    *ret_len = (size_t)st.st_size;
    while (*ret_len && (buf[*ret_len - 1] == '\n' || buf[*ret_len - 1] == '\r'))
        (*ret_len)--;
    return 0;
}
