/* The agent's in-memory license decisions (license.h). */
#include "agent/license.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"

enum license_verdict license_decide(const struct license_view *l, const char *feature, time_t now,
                                    char *reason, size_t reasonlen) {
    char when[RFC3339_BUFLEN];

    if (!l->present) {
        snprintf(reason, reasonlen, "License is invalid");
        return VERDICT_NO_LICENSE;
    }
    if (l->online.refused) {
        snprintf(reason, reasonlen, "License refused by the license server: %s",
                 l->online.refused_reason);
        return VERDICT_REFUSED;
    }
    if (l->dead) {
        snprintf(reason, reasonlen,
                 "License certificate is no longer in force: the TPM's usage counter is past its "
                 "ceiling (the license was removed, refused by the license server, or replaced "
                 "by another certificate)");
        return VERDICT_ENDED;
    }
    if (l->online.grace_over || (l->online.grace_end && now >= l->online.grace_end)) {
        rfc3339_format(l->online.grace_end, when);
        snprintf(reason, reasonlen,
                 "License could not be validated with the license server and the grace period "
                 "is over%s%s",
                 l->online.grace_end ? " since " : "", l->online.grace_end ? when : "");
        return VERDICT_NOT_VALIDATED;
    }
    if (l->window_until && (l->window_over || now >= l->window_until)) {
        rfc3339_format(l->window_until, when);
        snprintf(reason, reasonlen,
                 "License could not be validated with the license server within its signed "
                 "validity (until %s)",
                 when);
        return VERDICT_WINDOW_OVER;
    }
    if (l->not_before && now < l->not_before) {
        rfc3339_format(l->not_before, when);
        snprintf(reason, reasonlen, "License is not valid before %s", when);
        return VERDICT_NOT_YET_VALID;
    }
    if (l->expiry && now >= l->expiry) {
        rfc3339_format(l->expiry, when);
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
