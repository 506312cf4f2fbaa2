/* The agent's in-memory license decisions (license.h). */
#include "agent/license.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void license_format_time(time_t t, char *buf, size_t len) {
    struct tm tm;
    if (t == 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "%s", "");
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

enum license_verdict license_decide(const struct license_view *l, const char *feature, time_t now,
                                    char *reason, size_t reasonlen) {
    char when[32];

    if (!l->present) {
        snprintf(reason, reasonlen, "License is invalid");
        return VERDICT_NO_LICENSE;
    }
    if (l->online.refused) {
        snprintf(reason, reasonlen, "License refused by the license server: %s",
                 l->online.refused_reason);
        return VERDICT_REFUSED;
    }
    if (l->online.grace_over || (l->online.grace_end && now >= l->online.grace_end)) {
        license_format_time(l->online.grace_end, when, sizeof(when));
        snprintf(reason, reasonlen,
                 "License could not be validated with the license server and the grace period "
                 "is over%s%s",
                 l->online.grace_end ? " since " : "", l->online.grace_end ? when : "");
        return VERDICT_NOT_VALIDATED;
    }
    if (l->not_before && now < l->not_before) {
        license_format_time(l->not_before, when, sizeof(when));
        snprintf(reason, reasonlen, "License is not valid before %s", when);
        return VERDICT_NOT_YET_VALID;
    }
    if (l->expiry && now >= l->expiry) {
        license_format_time(l->expiry, when, sizeof(when));
        snprintf(reason, reasonlen, "License expired on %s", when);
        return VERDICT_EXPIRED;
    }
    if (feature && *feature) {
        size_t i;
        for (i = 0; i < l->nfeatures; i++)
            if (strcmp(l->features[i], feature) == 0)
                break;
        if (i == l->nfeatures) {
            snprintf(reason, reasonlen, "License does not include feature '%.40s'", feature);
            return VERDICT_FEATURE_MISSING;
        }
    }
    snprintf(reason, reasonlen, "License is valid");
    return VERDICT_ALLOWED;
}

const char *license_code_tail(const char *code) {
    size_t n = strlen(code);
    return n > 4 ? code + n - 4 : code;
}
