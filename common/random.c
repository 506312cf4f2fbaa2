/* Random hex strings (hex.h): kept apart from hex.c so that code without
 * OpenSSL (libtpmlic) can use the encoder alone. */
#include "common/hex.h"

#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

int hex_random(char *out, size_t nbytes) {
    uint8_t b[64];

    if (nbytes > sizeof(b))
        return -EINVAL;
    if (RAND_bytes(b, (int)nbytes) != 1)
        return -EIO;
    hex_encode(b, nbytes, out);
    OPENSSL_cleanse(b, nbytes);
    return 0;
}
