/* libFuzzer harness for the activation certificate decoder
 * (cert_activation_decode). An input starting with '{' is JSON: the
 * harness base64url-encodes it first, so mutations reach the JSON and field
 * checks instead of dying in base64url. Anything else is decoded as it is.
 * A certificate that decodes must encode again and decode to the same
 * (round trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert/cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, size_t len) {
    struct cert_activation a = {0}, b = {0};
    char msg[256], *again = NULL;

    if (cert_activation_decode(text, len, &a, msg, sizeof(msg)) != CERT_OK)
        return;
    if (cert_activation_encode(&a, &again, msg, sizeof(msg)) != 0 ||
        cert_activation_decode(again, strlen(again), &b, msg, sizeof(msg)) != CERT_OK ||
        strcmp(a.license, b.license) || strcmp(a.computer_id, b.computer_id) ||
        a.ek_public_len != b.ek_public_len || memcmp(a.ek_public, b.ek_public, a.ek_public_len) ||
        a.counter.value != b.counter.value || a.date != b.date || a.is_vm != b.is_vm ||
        strcmp(a.hostname, b.hostname))
        abort();
    free(again);
    cert_activation_clear(&a);
    cert_activation_clear(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy;

    if (size > 3 * CERT_ACTIVATION_MAX)
        return 0;
    if (size && data[0] == '{') {
        char *text = NULL;
        if (cert_b64url_encode(data, size, &text) == 0)
            check(text, strlen(text));
        free(text);
        return 0;
    }
    /* an exact-size copy without a NUL: any over-read is caught */
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    check(copy, size);
    free(copy);
    return 0;
}
