/* Load generator shared by the benchmarks: a raw AF_UNIX echo baseline, a
 * minimal HTTP/1.1 keep-alive client and a libcurl client, run from N
 * threads for lg_bench_secs each, with a latency histogram. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MSG 64 /* the raw round trip's message size */
/* Latency histogram: 100 ns buckets to 1 ms, 10 us buckets to 100 ms. */
#define FINE   10000
#define COARSE 10000

struct hist {
    uint64_t fine[FINE];
    uint64_t coarse[COARSE];
    uint64_t over;
    uint64_t n;
};
void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *h);
double hist_q(const struct hist *h, double q); /* microseconds */

enum client_kind { RAW, TINY, LIBCURL };

struct lg_result {
    double rate, p50, p99;
    bool failed;
};

extern double lg_bench_secs; /* seconds per case */
uint64_t lg_now_ns(void);
int lg_unix_connect(const char *path);
/* Accept loop of the raw echo server: pthread_create it with the listening fd. */
void *lg_echo_accept(void *listen_fd);
/* The request TINY and LIBCURL clients send (a JSON body, keep-alive); the
 * answer must be 200. */
void lg_set_request(const char *method, const char *path, const char *json_body);
/* Reads one whole HTTP/1.1 answer (with a Content-Length) from fd, each
 * read waiting at most timeout_ms (-1: no limit); its status, or -1 when
 * none came in time or it did not parse. */
int lg_read_answer(int fd, int timeout_ms);
struct lg_result lg_run_clients(enum client_kind kind, const char *socket_path, int nclients);
void lg_header(void);
/* One table row; base: the raw rate with as many clients (0: this is it). */
void lg_row(const char *what, int n, struct lg_result r, double base);

/* For benchmarks that time single operations. */
double lg_now_us(void);
int lg_cmp_double(const void *a, const void *b); /* qsort() of doubles */
