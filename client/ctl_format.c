/* tpmlicctl's formatting of durations and times (ctl_format.h). */
#include "client/ctl_format.h"

#include <stdio.h>

void ctl_format_secs(uint64_t secs, char *buf, size_t size) {
    if (secs < 60)
        snprintf(buf, size, "%llu s", (unsigned long long)secs);
    else if (secs < 3600 && secs % 60)
        snprintf(buf, size, "%llu min %llu s", (unsigned long long)(secs / 60),
                 (unsigned long long)(secs % 60));
    else if (secs < 3600)
        snprintf(buf, size, "%llu min", (unsigned long long)(secs / 60));
    else
        snprintf(buf, size, "%llu h %llu min", (unsigned long long)(secs / 3600),
                 (unsigned long long)(secs % 3600 / 60));
}

void ctl_format_relative(time_t t, time_t now, char *buf, size_t size) {
    long long d = (long long)t - (long long)now, a = d < 0 ? -d : d, n;
    const char *unit;

    if (a < 1) {
        snprintf(buf, size, "now");
        return;
    }
    /* the largest unit that gives at least 2 of it ("in 36 hours" rather
     * than "in 1 day"), rounded to the nearest: a license applied for 30
     * days reads "in 30 days", not "in 29 days" a second later */
    if (a >= 2 * 86400) {
        n = (a + 43200) / 86400;
        unit = "days";
    } else if (a >= 2 * 3600) {
        n = (a + 1800) / 3600;
        unit = "hours";
    } else if (a >= 2 * 60) {
        n = (a + 30) / 60;
        unit = "minutes";
    } else {
        n = a;
        unit = a == 1 ? "second" : "seconds";
    }
    if (d > 0)
        snprintf(buf, size, "in %lld %s", n, unit);
    else
        snprintf(buf, size, "%lld %s ago", n, unit);
}

void ctl_format_local(time_t t, char *buf, size_t size) {
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}
