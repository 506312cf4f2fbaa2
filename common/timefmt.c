/* RFC 3339 UTC times (timefmt.h). */
#include "common/timefmt.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* The digits at s[from..to) as a number; false if any is not a digit. */
static bool number(const char *s, int from, int to, int *ret) {
    int v = 0;
    for (int i = from; i < to; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

int rfc3339_parse(const char *s, time_t *ret) {
    struct tm tm = {0}, check;
    int year, mon, day, hour, min, sec;
    time_t t;

    if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z')
        return -EINVAL;
    if (!number(s, 0, 4, &year) || !number(s, 5, 7, &mon) || !number(s, 8, 10, &day) ||
        !number(s, 11, 13, &hour) || !number(s, 14, 16, &min) || !number(s, 17, 19, &sec))
        return -EINVAL;
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 59)
        return -EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    check = tm;
    t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_year != check.tm_year || tm.tm_mon != check.tm_mon ||
        tm.tm_mday != check.tm_mday)
        return -EINVAL; /* 2026-02-30 and the like */
    *ret = t;
    return 0;
}

void rfc3339_format(time_t t, char buf[RFC3339_BUFLEN]) {
    struct tm tm;
    buf[0] = '\0';
    if (t < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 ||
        strftime(buf, RFC3339_BUFLEN, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
        buf[0] = '\0';
}
