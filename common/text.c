/* Input helpers (text.h). */
#include "common/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

int parse_uint_strict(const char *s, uint64_t max, uint64_t *ret) {
    uint64_t v = 0;
    if (!s || !*s || strlen(s) > 20)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

int read_certificate_text(const char *path, size_t max, const char *what, char **ret,
                          size_t *ret_len, char *err, size_t errlen) {
    _cleanup_fclose_ FILE *owned = NULL;
    _cleanup_free_ char *buf = malloc(max + 1);
    const char *name = path && strcmp(path, "-") != 0 ? path : "standard input";
    FILE *f = stdin;
    size_t n, o = 0;
    int r;

    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (path && strcmp(path, "-") != 0) {
        owned = fopen(path, "re");
        if (!owned) {
            r = -errno;
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            return r;
        }
        f = owned;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s", name);
        return -EIO;
    }
    if (n > max) {
        snprintf(err, errlen, "%s is larger than %zu bytes: not %s", name, max, what);
        return -EFBIG;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\n')
            buf[o++] = buf[i];
    if (o == 0) {
        snprintf(err, errlen, "%s is empty", name);
        return -ENODATA;
    }
    buf[o] = '\0';
    *ret = TAKE_PTR(buf);
    *ret_len = o;
    return 0;
}
