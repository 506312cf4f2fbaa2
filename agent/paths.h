/* The files and directories tpmlicd trusts (SPEC section 11,
 * docs/security.md): what decides trust (the config file, the vendor key,
 * the license server's CA, the EK trust store, the owner authorization)
 * must be writable by root alone, with every directory above it, or the
 * agent refuses to start, naming the path and its mode (as sshd's
 * StrictModes does); the state directory is opened without following a
 * link planted at its path, and the secret it keeps (the auth value of the
 * agent's NV indices) is read and made without following links. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_NV_AUTH_LEN 32

/* 0 when path (a file; /dev/null is fine) and every directory above it can
 * be written by root alone (or by the user the agent runs as, when it does
 * not run as root); a world-writable directory with the sticky bit, owned
 * by root (/tmp), counts as safe. -EPERM with the path, owner and mode in
 * err otherwise; -errno when it cannot be looked at. what names it ("the
 * vendor key"). */
int agent_path_trusted(const char *path, const char *what, char *err, size_t errlen);
/* The same for a directory and every file in it. */
int agent_dir_trusted(const char *path, const char *what, char *err, size_t errlen);

/* Opens the state directory (made with mode 0750 when missing) without
 * following a link at its path, after checking its parent as above; gives
 * it to uid:gid (-1: unchanged) when it is not theirs yet. It must not be
 * writable by others. *ret_fd is an O_PATH descriptor, for openat() by the
 * user the agent runs as. */
int agent_state_dir_open(const char *path, uid_t uid, gid_t gid, int *ret_fd, char *err,
                         size_t errlen);

/* The auth value of the agent's NV indices, kept in the state directory as
 * nv.auth (mode 0400, the agent's user's: after the privilege drop only the
 * agent and root can read it): read, or made (random) when missing, in
 * which case *ret_created is set. A link, a file others may read or one of
 * another size is refused. */
int agent_nv_auth_load(int dirfd, uint8_t ret[AGENT_NV_AUTH_LEN], bool *ret_created, char *err,
                       size_t errlen);

/* A secret of at most max bytes from a file only root can read (the
 * owner authorization): -EPERM when others may read or write it. */
int agent_secret_file_read(const char *path, const char *what, uint8_t *buf, size_t max,
                           size_t *ret_len, char *err, size_t errlen);
