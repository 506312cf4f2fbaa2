/* License codes (licensecode.h). */
#include "common/licensecode.h"

#include <stdio.h>
#include <string.h>

bool license_code_valid(const char *s) {
    size_t n;
    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > LICENSE_CODE_MAX)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

const char *license_code_for_log(const char *code, char buf[LICENSE_CODE_LOG_BUFLEN]) {
    size_t n = code ? strlen(code) : 0, show = n > 8 ? 4 : n / 2;
    snprintf(buf, LICENSE_CODE_LOG_BUFLEN, "...%s", code ? code + n - show : "");
    return buf;
}
