/* libFuzzer harness for libtpmlic's reading of tpmlicd's answers: the
 * input is what the agent sends back, fed over a real socketpair to the
 * library's HTTP exchange (client/conn.c: status line, headers, body), and
 * a body that arrives is then read as the library reads answers
 * (client/answer.c: the error text, and the status, reservation and commit
 * decoders). The first byte chooses the request: bit 0 set, a HEAD (whose
 * answer has no body). Checked besides the sanitizers: an answer that is
 * accepted has a status of 200 to 599, a NUL-terminated body within the
 * cap, and a non-2xx status always gives a negative errno. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/answer.h"
#include "client/conn.h"
#include "tests/lib/client_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(const struct client_answer *a) {
    char msg[512];
    json_t *o = NULL;
    struct tpmlic_status st;
    struct tpmlic_lease l;
    uint64_t charged, returned;
    int r = client_answer_error(a->status, a->body, a->body_len, msg, sizeof(msg));

    if ((a->status >= 200 && a->status < 300) != (r == 0) || strlen(msg) >= sizeof(msg))
        abort();
    if (r < 0 || client_decode_object(a->body, a->body_len, &o, msg, sizeof(msg)) < 0)
        return;
    if (client_decode_status(o, &st, msg, sizeof(msg)) == 0 &&
        (strlen(st.features) >= sizeof(st.features) || strlen(st.reason) >= sizeof(st.reason)))
        abort();
    if (client_decode_lease(o, &l, msg, sizeof(msg)) == 0 && (!l.id[0] || strlen(l.id) >= 64))
        abort();
    (void)client_decode_commit(o, &charged, &returned, msg, sizeof(msg));
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct client_answer a = {0};
    enum client_stage stage;
    char err[512];

    if (size < 1 || size > 1u << 20)
        return 0;
    if (client_feed(data + 1, size - 1, data[0] & 1, false, 2000, &a, &stage, err, sizeof(err)) ==
        0) {
        if (a.status < 200 || a.status > 599 || a.body_len > CLIENT_BODY_MAX ||
            a.body[a.body_len] != '\0' || ((data[0] & 1) && a.body_len))
            abort();
        decode(&a);
        free(a.body);
    } else if (strlen(err) >= sizeof(err))
        abort();
    return 0;
}
