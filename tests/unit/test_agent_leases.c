/* Unit tests for the lease table (agent/leases.c): room per caller and in
 * all, commits by the holder only (or root), expiry charged in full, and the
 * totals adding up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/leases.h"

static void id_of(unsigned n, char id[LEASE_ID_LEN + 1]) {
    snprintf(id, LEASE_ID_LEN + 1, "%032x", n);
}

static struct leases *table(void) {
    struct leases *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    return t;
}

static void add_commit_expire(void **state) {
    struct leases *t = table();
    char a[LEASE_ID_LEN + 1], b[LEASE_ID_LEN + 1];
    uint64_t returned = 0, held = 0;

    id_of(1, a);
    id_of(2, b);
    assert_int_equal(leases_add(t, a, 1000, 30, 100), 0);
    assert_int_equal(leases_add(t, b, 1001, 20, 100), 0);
    assert_int_equal(t->open, 2);
    assert_int_equal(t->reserved_total, 50);
    /* only its holder (or any_uid: root) commits it */
    assert_int_equal(leases_commit(t, a, 1001, false, 5, &returned, &held), -EPERM);
    assert_int_equal(leases_commit(t, a, 1000, false, 31, &returned, &held), -ERANGE);
    assert_int_equal(held, 30);
    assert_int_equal(leases_commit(t, a, 1000, false, 5, &returned, &held), 0);
    assert_int_equal(returned, 25);
    assert_int_equal(leases_commit(t, a, 1000, false, 5, &returned, &held), -ENOENT);
    /* b expires at 100 + 20 + LEASE_SLACK: not a second before */
    assert_int_equal(leases_expire(t, 100 + 20 + LEASE_SLACK - 1), 0);
    assert_int_equal(leases_expire(t, 100 + 20 + LEASE_SLACK), 20);
    assert_int_equal(leases_commit(t, b, 0, true, 1, &returned, &held), -ENOENT);
    assert_int_equal(t->open, 0);
    assert_int_equal(t->charged_total, 5 + 20);
    assert_int_equal(t->returned_total, 25);
    assert_int_equal(t->reserved_total, t->charged_total + t->returned_total);
    free(t);
}

static void limits(void **state) {
    struct leases *t = table();
    char id[LEASE_ID_LEN + 1];
    size_t mine = 0;
    unsigned n = 0;

    for (uid_t u = 0; u < LEASES_MAX / LEASES_PER_CALLER; u++)
        for (int i = 0; i < LEASES_PER_CALLER; i++) {
            id_of(++n, id);
            assert_int_equal(leases_add(t, id, u, 1, 0), 0);
        }
    assert_int_equal(leases_room(t, 0, &mine), -EUSERS);
    assert_int_equal(mine, LEASES_PER_CALLER);
    assert_int_equal(leases_room(t, 4242, &mine), -ENOSPC);
    assert_int_equal(mine, 0);
    id_of(++n, id);
    assert_int_equal(leases_add(t, id, 4242, 1, 0), -ENOSPC);
    assert_int_equal(leases_add(t, "short", 4242, 1, 0), -ENOSPC);
    leases_clear(t);
    assert_int_equal(leases_room(t, 0, NULL), 0);
    assert_int_equal(leases_add(t, "short", 0, 1, 0), -EINVAL);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_commit_expire),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
