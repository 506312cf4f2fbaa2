/* Where the agent keeps its state in TPM NV (SPEC section 3, docs/tpm.md):
 * five indices at a configurable base in the TCG owner range. */
#pragma once

#include <stdint.h>

/* Default base; --nv-base / nv_base= move it (owner range only). */
#define AGENT_NV_BASE_DEFAULT 0x01a0c000u

enum agent_nv_slot {
    AGENT_NV_LICENSE = 0,   /* ordinary: the license certificate */
    AGENT_NV_COUNTER = 1,   /* counter: consumed usage ticks */
    AGENT_NV_STATE = 2,     /* ordinary, small: rarely-changing state */
    AGENT_NV_FLOOR = 3,     /* counter: hours of time the agent saw pass (the time floor) */
    AGENT_NV_LICENSE_B = 4, /* ordinary: the license certificate's second slot (store.h) */
    AGENT_NV_SLOTS = 5,
};

static inline uint32_t agent_nv_index(uint32_t base, enum agent_nv_slot slot) {
    return base + (uint32_t)slot;
}
