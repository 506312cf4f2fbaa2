/* The agent's in-memory view of its license: what the verified certificate
 * says, and the decisions the hot path makes from it (valid? feature
 * allowed?) without touching the TPM or the disk. Pure logic, unit-tested;
 * the caller holds the agent's lock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cert/cert.h"

#define LICENSE_FEATURES_MAX 16
#define LICENSE_FEATURE_LEN  32

struct license_view {
    bool present;
    char code[65];
    char product[65];
    long long customer_id;
    enum cert_license_type type; /* 0 when none */
    time_t expiry;               /* 0: none (perpetual) */
    time_t not_before;           /* 0: none */
    char features[LICENSE_FEATURES_MAX][LICENSE_FEATURE_LEN];
    size_t nfeatures;
    uint64_t secs_allocated;
    uint64_t secs_granted;
    bool offline_allowed;
    bool activated_offline;
    uint32_t tick_secs;
    char jti[65];     /* the certificate's serial: the activation ID for online licenses */
    uint64_t ceiling; /* the usage counter past this: the certificate is dead */
    bool dead;        /* the counter is past the ceiling: superseded, removed or refused */
    /* online certificates: the signed validity window */
    time_t window_until; /* its end, judged on the agent's time floor; 0: none */
    bool window_over;    /* the TPM clock is past its end */
    /* Online validation (licensing.c); survives a new certificate. */
    struct license_online {
        bool refused; /* the license server refused the license */
        char refused_reason[200];
        time_t grace_end; /* a grace period runs until then (wall clock); 0: none */
        bool grace_over;  /* measured on the TPM's clock too: over whatever the wall clock says */
    } online;
};

enum license_verdict {
    VERDICT_ALLOWED = 0,
    VERDICT_NO_LICENSE, /* "License is invalid" (no license applied) */
    VERDICT_EXPIRED,
    VERDICT_NOT_YET_VALID,
    VERDICT_FEATURE_MISSING, /* the license does not include the feature */
    VERDICT_TPM_LOST,        /* reserved: the ledger cannot be kept */
    VERDICT_REFUSED,         /* the license server refused it (suspended, clone, ...) */
    VERDICT_NOT_VALIDATED,   /* validation failed and the grace period is over */
    VERDICT_ENDED,           /* the counter is past the certificate's ceiling */
    VERDICT_WINDOW_OVER,     /* an online license's signed validity is over */
};

/* Is the license valid at now (the agent's time: never earlier than its
 * time floor), and (feature != NULL) does it include feature? Writes a
 * one-line reason (no prefix) into reason. */
enum license_verdict license_decide(const struct license_view *l, const char *feature, time_t now,
                                    char *reason, size_t reasonlen);
