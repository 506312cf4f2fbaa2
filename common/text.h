/* Small input helpers the command-line programs share: strict whole
 * numbers, and certificates read from a file or standard input. They do not
 * log: errors come back as -errno with a message for a person. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Decimal digits only (no sign, no space, no 0x), at most max: 0, -EINVAL
 * for anything that is not a number, -ERANGE above max. */
int parse_uint_strict(const char *s, uint64_t max, uint64_t *ret);

/* Reads a certificate from path (NULL or "-": standard input), at most max
 * bytes, and drops every ASCII space, tab and line end: neither base64url
 * nor a compact JWS contains them, and mail clients wrap long lines.
 * *ret is malloc'ed and NUL-terminated. -EFBIG over max, -ENODATA when
 * nothing is left, -errno from reading; what says what a certificate is for
 * the messages ("a certificate", "an activation certificate"). */
int read_certificate_text(const char *path, size_t max, const char *what, char **ret,
                          size_t *ret_len, char *err, size_t errlen);
