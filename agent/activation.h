/* Applying a license certificate (verify, bind to this machine and this
 * TPM's counter, store in NV, take into memory) and the offline activation
 * endpoints that use it (activation.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

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

/* Builds an activation certificate (malloc'ed text) from a request body
 * {"license", "username"?, "email_address"?, "company_name"?}: this
 * machine's digests, its EK, and the usage counter's value now; ret_nonce
 * gets its nonce. On failure the response is set (messages start with
 * what) and a negative errno returned. */
int agent_activation_make(struct agent *a, json_t *body, const char *what, char **ret_text,
                          char ret_nonce[33], struct http_response *resp);

void agent_post_offlineactivation(void *ud, const struct http_request *req,
                                  struct http_response *resp);
void agent_put_offlineactivation(void *ud, const struct http_request *req,
                                 struct http_response *resp);
