/* Published views of the license state (snapshot.h). */
#include "agent/snapshot.h"

#include <stdlib.h>

void snapshot_box_init(struct snapshot_box *b) {
    pthread_mutex_init(&b->lock, NULL);
    b->cur = NULL;
}

void snapshot_box_clear(struct snapshot_box *b) {
    pthread_mutex_lock(&b->lock);
    if (b->cur)
        snapshot_put(b->cur);
    b->cur = NULL;
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_destroy(&b->lock);
}

void snapshot_publish(struct snapshot_box *b, struct snapshot *s) {
    struct snapshot *old;

    atomic_store(&s->refs, 1);
    pthread_mutex_lock(&b->lock);
    old = b->cur;
    s->generation = old ? old->generation + 1 : 1;
    b->cur = s;
    pthread_mutex_unlock(&b->lock);
    if (old)
        snapshot_put(old);
}

const struct snapshot *snapshot_get(struct snapshot_box *b) {
    struct snapshot *s;
    pthread_mutex_lock(&b->lock);
    s = b->cur;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&b->lock);
    return s;
}

void snapshot_put(const struct snapshot *s) {
    struct snapshot *m = (struct snapshot *)s;
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        free(m);
}
