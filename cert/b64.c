/* base64url without padding (RFC 4648 section 5), strict on decode. */
#include "cert/cert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int cert_b64url_encode(const uint8_t *data, size_t len, char **ret) {
    size_t out_len = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
    char *out = malloc(out_len + 1), *p = out;
    size_t i;

    if (!out)
        return -ENOMEM;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
        *p++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
    }
    *p = '\0';
    *ret = out;
    return 0;
}

static int value_of(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int cert_b64url_decode(const char *text, size_t len, uint8_t **ret, size_t *ret_len) {
    size_t out_len, o = 0;
    uint8_t *out;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -EINVAL; /* no encoding ends with a single character */
    out_len = (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0);
    out = malloc(out_len ? out_len : 1);
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        int v = value_of(text[i]);
        if (v < 0) {
            free(out);
            return -EINVAL; /* padding, whitespace, standard-base64 characters */
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* canonical: the unused low bits of the last character are zero */
    if (bits && (acc & ((1u << bits) - 1))) {
        free(out);
        return -EINVAL;
    }
    *ret = out;
    *ret_len = o;
    return 0;
}
