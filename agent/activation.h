/* Applying a license certificate (verify, bind to this machine and this
 * TPM's counter, store in NV, take into memory) and the offline activation
 * endpoints that use it (activation.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct agent;
struct http_request;
struct http_response;

/* Verifies cert against the vendor key, this machine's digests and this
 * TPM's usage counter; with expect_code, that it is for that license code.
 * With store, writes it to the TPM first. Only then does the in-memory
 * license change. Returns 0, or -EINVAL (refused: reason says why), or
 * another negative errno (TPM failure: reason says why). */
int agent_license_apply(struct agent *a, const char *cert, size_t len, const char *expect_code,
                        bool store, char *reason, size_t reasonlen);

void agent_post_offlineactivation(void *ud, const struct http_request *req,
                                  struct http_response *resp);
void agent_put_offlineactivation(void *ud, const struct http_request *req,
                                 struct http_response *resp);
