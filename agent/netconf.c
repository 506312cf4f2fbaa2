/* The license-server proxy settings (netconf.h). */
#include "agent/netconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/macro.h"

#define NETCONF_FILE "network.json"
#define NETCONF_TMP  "network.json.tmp"
#define NETCONF_MAX  4096

/* What goes between "http://" and ":PORT" of the proxy URL: a host name or
 * an IPv4 address ([A-Za-z0-9._-]), or an IPv6 address, bare or in
 * brackets. A stray ':', '[' or ']' would make a URL libcurl cannot parse. */
static bool host_ok(const char *s) {
    size_t n = strlen(s);
    char v6[INET6_ADDRSTRLEN];
    struct in6_addr a;

    if (n == 0 || n > 253)
        return false;
    if (s[0] == '[' || strchr(s, ':')) {
        const char *p = s;
        size_t len = n;
        if (s[0] == '[') {
            if (n < 3 || s[n - 1] != ']')
                return false;
            p++;
            len -= 2;
        }
        if (len >= sizeof(v6))
            return false;
        memcpy(v6, p, len);
        v6[len] = '\0';
        return inet_pton(AF_INET6, v6, &a) == 1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int parse_port(json_t *p, long *ret) {
    char *end;
    long v;
    if (json_is_integer(p))
        v = (long)json_integer_value(p);
    else if (json_is_string(p)) {
        const char *s = json_string_value(p);
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || !*s || *end)
            return -EINVAL;
    } else
        return -EINVAL;
    if (v < 1 || v > 65535)
        return -EINVAL;
    *ret = v;
    return 0;
}

int agent_netconf_set(int dirfd, json_t *body, json_t **ret_shown, char *err, size_t errlen) {
    static const char *const top[] = {"http_configuration", NULL};
    static const char *const keys[] = {"ip", "port", "user", "password", NULL};
    json_t *hc = json_object_get(body, "http_configuration");
    json_t *ip, *port, *user, *pass, *stored = NULL, *shown = NULL;
    char msg[200], text[257];
    struct cj c = {.msg = msg, .msglen = sizeof(msg)};
    long portnum = 0;
    int fd, r;

    if (!json_is_object(hc) || !cj_only_keys(&c, body, "", top)) {
        snprintf(err, errlen,
                 "the body must be {\"http_configuration\": {\"ip\": ..., \"port\": "
                 "..., \"user\": ..., \"password\": ...}}");
        return -EINVAL;
    }
    if (!cj_only_keys(&c, hc, "http_configuration: ", keys)) {
        snprintf(err, errlen, "%s", msg);
        return -EINVAL;
    }
    ip = json_object_get(hc, "ip");
    port = json_object_get(hc, "port");
    user = json_object_get(hc, "user");
    pass = json_object_get(hc, "password");
    if (!json_is_string(ip)) {
        snprintf(err, errlen, "http_configuration.ip must be a string (\"\" for no proxy)");
        return -EINVAL;
    }
    if (!cj_string(&c, hc, "user", CJ_OPTIONAL, CJ_TEXT, 128, text, sizeof(text)) ||
        !cj_string(&c, hc, "password", CJ_OPTIONAL, CJ_TEXT, 256, text, sizeof(text))) {
        secure_wipe(text, sizeof(text));
        snprintf(err, errlen, "http_configuration: %s", msg);
        return -EINVAL;
    }
    secure_wipe(text, sizeof(text));
    /* libcurl takes "USER:PASSWORD" and cuts it at the first ':' */
    if (json_is_string(user) && strchr(json_string_value(user), ':')) {
        snprintf(err, errlen, "http_configuration.user may not contain ':'");
        return -EINVAL;
    }
    if (json_string_length(ip) == 0) {
        stored = json_pack("{s:s}", "ip", "");
    } else {
        if (!host_ok(json_string_value(ip))) {
            snprintf(err, errlen, "http_configuration.ip: '%.64s' is not a host name or address",
                     json_string_value(ip));
            return -EINVAL;
        }
        if (parse_port(port, &portnum) < 0) {
            snprintf(err, errlen, "http_configuration.port must be a port number from 1 to 65535");
            return -EINVAL;
        }
        if (pass && !user) {
            snprintf(err, errlen, "http_configuration.password needs a user");
            return -EINVAL;
        }
        stored = json_pack("{s:O, s:I, s:O?, s:O?}", "ip", ip, "port", (json_int_t)portnum, "user",
                           user, "password", pass);
    }
    if (!stored)
        return -ENOMEM;

    fd = openat(dirfd, NETCONF_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    r = fd < 0 ? -errno : 0;
    if (r == 0 && json_dumpfd(stored, fd, JSON_COMPACT) < 0)
        r = -EIO;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    /* renameat replaces a link planted at the name, never its target */
    if (r == 0 && renameat(dirfd, NETCONF_TMP, dirfd, NETCONF_FILE) < 0)
        r = -errno;
    if (r < 0) {
        if (r != -ELOOP)
            unlinkat(dirfd, NETCONF_TMP, 0);
        snprintf(err, errlen, "cannot store the proxy settings in the state directory's %s: %s",
                 NETCONF_FILE, r == -ELOOP ? "a symbolic link is in the way" : strerror(-r));
        json_decref(stored);
        return r;
    }
    /* what may be shown: everything but the password */
    json_object_del(stored, "password");
    json_object_set_new(stored, "password_set", json_boolean(pass && json_string_length(pass)));
    shown = json_pack("{s:o}", "http_configuration", stored);
    if (!shown)
        return -ENOMEM;
    *ret_shown = shown;
    return 0;
}

int agent_netconf_proxy(int dirfd, char **ret_url, char **ret_userpwd) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    _cleanup_close_ int fd = -1;
    const char *ip, *user, *pass;
    char *url = NULL, *userpwd = NULL;
    json_int_t port;
    struct stat st;

    fd = openat(dirfd, NETCONF_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *ret_url = strdup("");
        *ret_userpwd = NULL;
        return *ret_url ? 0 : -ENOMEM;
    }
    /* a link, or a file the agent did not write, is not read */
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) ||
        st.st_size > NETCONF_MAX)
        return -EBADMSG;
    o = json_loadfd(fd, JSON_REJECT_DUPLICATES, NULL);
    if (!o)
        return -EBADMSG;
    ip = json_string_value(json_object_get(o, "ip"));
    if (!ip)
        return -EBADMSG;
    if (!*ip) {
        *ret_url = strdup("");
        *ret_userpwd = NULL;
        return *ret_url ? 0 : -ENOMEM;
    }
    port = json_integer_value(json_object_get(o, "port"));
    if (!host_ok(ip) || port < 1 || port > 65535)
        return -EBADMSG;
    if (asprintf(&url, strchr(ip, ':') && ip[0] != '[' ? "http://[%s]:%lld" : "http://%s:%lld", ip,
                 (long long)port) < 0)
        return -ENOMEM;
    user = json_string_value(json_object_get(o, "user"));
    pass = json_string_value(json_object_get(o, "password"));
    if (user && strchr(user, ':')) {
        free(url);
        return -EBADMSG;
    }
    if (user && asprintf(&userpwd, "%s:%s", user, pass ? pass : "") < 0) {
        free(url);
        return -ENOMEM;
    }
    *ret_url = url;
    *ret_userpwd = userpwd;
    return 0;
}
