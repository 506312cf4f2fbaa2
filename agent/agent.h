/* The running agent: its settings, its TPM, this machine's identity, the
 * license as verified from TPM NV, and the counters /metrics shows. One
 * lock guards the license view (readers on the hot path); another
 * serialises TPM commands (the ESAPI context is not thread-safe). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include "agent/config.h"
#include "agent/license.h"
#include "agent/store.h"
#include "agent/usage.h"
#include "hwid/id.h"

struct hwid_info;
struct tpm_ctx;
struct http_server;

/* The usage counter the license certificate is bound to. */
struct counter_ref {
    uint32_t index;
    uint8_t name[34];
    size_t name_len;
    uint64_t base; /* counter value at activation request: consumption starts here */
};

struct agent {
    struct agent_config *cfg;
    EVP_PKEY *vendor_key;

    /* TPM: tpm_lock serialises every TPM command */
    pthread_mutex_t tpm_lock;
    struct tpm_ctx *tpm;        /* NULL: no TPM (--allow-no-tpm) or lost */
    bool tpm_present;           /* a TPM was found at start */
    char tpm_error[256];        /* "" while the TPM answers */
    struct counter_ref counter; /* our counter: index and TPM name */
    uint64_t counter_value;     /* last value read or written */

    /* identity, fixed after start */
    struct hwid_info *hwid;
    uint8_t *ek_spki; /* the RSA EK, DER SubjectPublicKeyInfo (NULL without a TPM) */
    size_t ek_spki_len;
    uint8_t *ek_cert; /* its certificate, when the TPM has one */
    size_t ek_cert_len;
    bool tpm_software; /* a software or virtual TPM */
    char computer_id[HWID_ID_STRLEN];

    /* license: lock guards everything below */
    pthread_rwlock_t lock;
    struct license_view lic;
    struct counter_ref lic_counter; /* the counter named by the certificate */
    char license_problem[256];      /* why a stored license was not accepted, "" if none */
    struct store_state state;

    /* usage seconds: its own lock, taken before tpm_lock */
    struct usage usage;

    /* online licensing (licensing.c): its own locks, taken before a->lock.
     * exchange serialises activation, validation and removal; mu guards
     * the fields below it and the condition the validation thread waits on. */
    struct {
        pthread_mutex_t exchange;
        pthread_mutex_t mu;
        pthread_cond_t wake;
        pthread_t thread;
        bool thread_started;
        bool stop;
        bool poke;                /* validate now (refill, start) */
        bool validated_this_boot; /* a validation succeeded since the license was applied */
        bool connected;           /* the last exchange got a valid answer */
        unsigned failures;        /* failed exchanges in a row */
        time_t next_due;          /* agent_mono() when the next validation is due; 0: none */
        uint64_t cache_secs;      /* the server's refill step */
        char last_error[400];
        atomic_uint_fast64_t ok, failed, refused; /* validations, by result */
    } online;

    /* metrics */
    atomic_uint_fast64_t checks_allowed;
    atomic_uint_fast64_t checks_denied;
    atomic_uint_fast64_t tpm_errors;
    time_t started;

    struct http_server *http;
};

/* Seconds this appliance may still use: the signed ceiling minus what the
 * counter says was consumed (covered and not in the pool). Caller holds
 * a->lock; takes the usage lock. */
uint64_t agent_secs_remaining(struct agent *a);

/* Records a TPM failure (for status and metrics); caller holds tpm_lock. */
void agent_tpm_failed(struct agent *a, int err, const char *what);
