/* The proxy for the license server (POST /v1/management/license/network),
 * kept in STATE_DIR/network.json (mode 0600): the license does not depend on
 * it. dirfd is the state directory (agent_state_dir_open); the file is read
 * and replaced without following a link planted at its name, and a file
 * others could have written is not read. The password is stored for the online part and never
 * echoed or logged. */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* Validates body ({"http_configuration": {"ip", "port", "user"?, "password"?}};
 * ip "" clears the proxy), stores it, and returns in *ret_shown what may be
 * shown (the password replaced by "password_set"). -EINVAL with a message
 * for bad input (nothing stored), other negative errno for I/O. */
int agent_netconf_set(int dirfd, json_t *body, json_t **ret_shown, char *err, size_t errlen);

/* The stored proxy for libcurl: *ret_url "http://HOST:PORT" or "" when none
 * is set; *ret_userpwd "USER:PASSWORD" or NULL. Both malloc'ed; the caller
 * wipes and frees *ret_userpwd. -EBADMSG when the file is damaged. */
int agent_netconf_proxy(int dirfd, char **ret_url, char **ret_userpwd);
