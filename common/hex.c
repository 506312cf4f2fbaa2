/* Hexadecimal (hex.h). */
#include "common/hex.h"

#include <errno.h>
#include <string.h>

static int digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is not canonical */
}

void hex_encode(const void *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_decode(const char *s, size_t slen, void *out, size_t max, size_t *ret_len) {
    uint8_t *b = out;

    if (!s || slen % 2)
        return -EINVAL;
    if (slen / 2 > max)
        return -EFBIG;
    for (size_t i = 0; i < slen / 2; i++) {
        int hi = digit(s[2 * i]), lo = digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (ret_len)
        *ret_len = slen / 2;
    return 0;
}

int hex_decode_exact(const char *s, void *out, size_t n) {
    if (!s || strlen(s) != 2 * n)
        return -EINVAL;
    return hex_decode(s, 2 * n, out, n, NULL);
}
