/* Grace periods and back-off (grace.h). */
#include "agent/grace.h"

#include <string.h>

bool grace_begin(struct store_state *s, enum online_failure f, bool validated_this_boot, time_t now,
                 uint64_t tpm_ms) {
    if (s->grace_start)
        return false;
    s->grace_start = now > 0 ? (uint64_t)now : 1;
    s->grace_secs =
        f == FAILURE_UNREACHABLE && validated_this_boot ? GRACE_LONG_SECS : GRACE_SHORT_SECS;
    s->grace_seen_ms = 0;
    s->clock_anchor_ms = tpm_ms;
    s->grace_ended = 0;
    return true;
}

bool grace_observe(struct store_state *s, time_t now, uint64_t tpm_ms, bool tpm_ok) {
    uint64_t seen = s->grace_seen_ms, wall = 0, anchor = s->clock_anchor_ms;

    if (!s->grace_start)
        return false;
    if (now > 0 && (uint64_t)now > s->grace_start)
        wall = ((uint64_t)now - s->grace_start) * 1000;
    if (wall > seen)
        seen = wall;
    /* The TPM clock counts on from the last observation; when it stepped
     * back (power loss) it counts on from where it is now. */
    if (tpm_ok) {
        if (tpm_ms > anchor && s->grace_seen_ms + (tpm_ms - anchor) > seen)
            seen = s->grace_seen_ms + (tpm_ms - anchor);
        anchor = tpm_ms;
    }
    if (seen == s->grace_seen_ms && anchor == s->clock_anchor_ms)
        return false;
    /* the moment it ran out, on the wall clock: what is shown from then on */
    if (!s->grace_ended && seen >= (uint64_t)s->grace_secs * 1000 && now > 0) {
        uint64_t over_by_ms = seen - (uint64_t)s->grace_secs * 1000;
        s->grace_ended = (uint64_t)now > over_by_ms / 1000 ? (uint64_t)now - over_by_ms / 1000 : 1;
    }
    s->grace_seen_ms = seen;
    s->clock_anchor_ms = anchor;
    return true;
}

bool grace_over(const struct store_state *s) {
    return s->grace_start && s->grace_seen_ms >= (uint64_t)s->grace_secs * 1000;
}

uint64_t grace_left_ms(const struct store_state *s) {
    uint64_t len = (uint64_t)s->grace_secs * 1000;
    return s->grace_start && s->grace_seen_ms < len ? len - s->grace_seen_ms : 0;
}

time_t grace_end(const struct store_state *s, time_t now) {
    if (!s->grace_start)
        return 0;
    if (grace_over(s))
        return s->grace_ended ? (time_t)s->grace_ended : (time_t)(s->grace_start + s->grace_secs);
    return now + (time_t)((grace_left_ms(s) + 999) / 1000);
}

void grace_succeeded(struct store_state *s, time_t now) {
    s->grace_start = 0;
    s->grace_secs = 0;
    s->grace_seen_ms = 0;
    s->clock_anchor_ms = 0;
    s->grace_ended = 0;
    s->flags &= ~(uint32_t)STORE_REFUSED;
    s->refusal = 0;
    s->last_success = now > 0 ? (uint64_t)now : 0;
}

unsigned backoff_minutes(unsigned n) {
    if (n == 0)
        return 0;
    if (n > 11)
        return BACKOFF_MAX_MINUTES;
    return 1u << (n - 1);
}

void grace_from_record(struct store_state *s) {
    /* the length comes from the failure class, never from NV as it is */
    if (!s->grace_start) {
        s->grace_secs = 0;
        s->grace_seen_ms = 0;
        s->clock_anchor_ms = 0;
        s->grace_ended = 0;
        return;
    }
    s->grace_secs = s->grace_secs == GRACE_LONG_SECS ? GRACE_LONG_SECS : GRACE_SHORT_SECS;
}

void grace_least_favourable(struct store_state *s) {
    memset(s, 0, sizeof(*s));
    s->grace_start = 1;
    s->grace_secs = GRACE_SHORT_SECS;
    s->grace_seen_ms = (uint64_t)GRACE_SHORT_SECS * 1000;
}
