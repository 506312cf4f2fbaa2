/* Faults for the test build of tpmlicd (tpmlicd-testclock) that a real
 * component cannot produce on demand, linked with -Wl,--wrap: with
 * TPMLIC_TEST_CURL_INIT_FAILS set, libcurl's global initialisation fails,
 * as it does when its TLS backend cannot be loaded. */
#include <stdlib.h>

#include <curl/curl.h>

CURLcode __real_curl_global_init(long flags);
CURLcode __wrap_curl_global_init(long flags);

CURLcode __wrap_curl_global_init(long flags) {
    if (getenv("TPMLIC_TEST_CURL_INIT_FAILS"))
        return CURLE_FAILED_INIT;
    return __real_curl_global_init(flags);
}
