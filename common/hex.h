/* Lower-case hexadecimal, the one encoding of bytes as text that every
 * module uses (digests, TPM names, nonces, epochs, lease ids). Decoding is
 * strict: lower case only, an even number of digits, nothing else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters (NUL included) that hex_encode writes for n bytes. */
#define HEX_BUFLEN(n) (2 * (n) + 1)

/* Writes 2n lower-case hex digits and a NUL into out. */
void hex_encode(const void *p, size_t n, char *out);

/* Decodes the slen characters at s (slen even, [0-9a-f] only) into out,
 * which holds max bytes. Returns 0 and the byte count in *ret_len (may be
 * NULL), -EINVAL for anything that is not lower-case hex of even length,
 * -EFBIG when it decodes to more than max bytes. out is undefined on
 * failure. */
int hex_decode(const char *s, size_t slen, void *out, size_t max, size_t *ret_len);

/* s (NUL-terminated, may be NULL) is exactly 2n lower-case hex digits:
 * decodes it into out and returns 0, else -EINVAL. */
int hex_decode_exact(const char *s, void *out, size_t n);

/* nbytes random bytes (OpenSSL's CSPRNG) as 2*nbytes hex digits and a NUL.
 * -EIO when no random numbers can be had. */
int hex_random(char *out, size_t nbytes);
