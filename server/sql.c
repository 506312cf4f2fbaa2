/* The backend-neutral half of the SQL interface (sql.h): dispatch to the
 * backend, transactions, and small helpers written once for both. */
#include "server/sql.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool srv_db_spec_is_postgresql(const char *spec) {
    return spec && (!strncmp(spec, "postgresql://", 13) || !strncmp(spec, "postgres://", 11));
}

const char *srv_db_errmsg(const struct srv_db *db) {
    return db && db->errmsg[0] ? db->errmsg : "no details";
}

void srv_db_set_error(struct srv_db *db, const char *fmt, ...) {
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
    va_end(ap);
    /* one line: backends end their messages with a line break */
    n = strcspn(db->errmsg, "\r\n");
    db->errmsg[n] = '\0';
}

int srv_db_exec(struct srv_db *db, const char *sql) {
    return db->ops->exec(db, sql);
}

int srv_db_begin(struct srv_db *db) {
    return db->ops->exec(db, db->backend == SRV_DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
}

int srv_db_commit(struct srv_db *db) {
    int r = db->ops->exec(db, "COMMIT");
    if (r < 0)
        srv_db_rollback(db);
    return r;
}

void srv_db_rollback(struct srv_db *db) {
    char keep[sizeof(db->errmsg)];
    if (!db->ops->in_transaction(db))
        return;
    /* the error that made us roll back is the one worth reporting */
    memcpy(keep, db->errmsg, sizeof(keep));
    db->ops->exec(db, "ROLLBACK");
    memcpy(db->errmsg, keep, sizeof(keep));
}

int srv_db_ping(struct srv_db *db) {
    return db->ops->ping(db);
}

int srv_sql_prepare(struct srv_db *db, const char *sql, struct srv_stmt **ret) {
    return db->ops->prepare(db, sql, ret);
}

int srv_sql_bind_int(struct srv_stmt *st, int idx, int64_t v) {
    return st->ops->bind_int(st, idx, v);
}

int srv_sql_bind_text(struct srv_stmt *st, int idx, const char *s) {
    return st->ops->bind_text(st, idx, s);
}

int srv_sql_bind_blob(struct srv_stmt *st, int idx, const void *p, size_t n) {
    return st->ops->bind_blob(st, idx, p, n);
}

int srv_sql_step(struct srv_stmt *st) {
    return st->ops->step(st);
}

int64_t srv_sql_int(struct srv_stmt *st, int col) {
    return st->ops->col_int(st, col);
}

uint64_t srv_sql_uint(struct srv_stmt *st, int col) {
    int64_t v = st->ops->col_int(st, col);
    return v < 0 ? 0 : (uint64_t)v;
}

const char *srv_sql_text(struct srv_stmt *st, int col) {
    return st->ops->col_text(st, col);
}

const void *srv_sql_blob(struct srv_stmt *st, int col, size_t *ret_len) {
    return st->ops->col_blob(st, col, ret_len);
}

uint64_t srv_sql_changes(struct srv_stmt *st) {
    return st->ops->changes(st);
}

void srv_sql_finalize(struct srv_stmt *st) {
    if (st)
        st->ops->finalize(st);
}

int srv_sql_run(struct srv_stmt *st) {
    int r;
    while ((r = srv_sql_step(st)) == 1)
        ;
    return r;
}

int srv_sql_scalar(struct srv_db *db, const char *sql, int64_t *ret, int n, ...) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    va_list ap;
    int r = srv_sql_prepare(db, sql, &st);

    if (r < 0)
        return r;
    va_start(ap, n);
    for (int i = 0; i < n && r == 0; i++)
        r = srv_sql_bind_int(st, i + 1, va_arg(ap, int64_t));
    va_end(ap);
    if (r < 0)
        return r;
    r = srv_sql_step(st);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    *ret = srv_sql_int(st, 0);
    return 0;
}

size_t srv_sql_strip_locking(const char *sql) {
    size_t n = strlen(sql), k = strlen("FOR UPDATE");

    /* the last "FOR UPDATE", followed only by table names, OF, SKIP LOCKED */
    for (size_t i = n; i-- > 0;) {
        if (i + k > n || strncasecmp(sql + i, "FOR UPDATE", k) != 0)
            continue;
        for (size_t j = i + k; j < n; j++)
            if (!(sql[j] == ' ' || sql[j] == '_' || sql[j] == ',' || sql[j] == ';' ||
                  (sql[j] >= 'a' && sql[j] <= 'z') || (sql[j] >= 'A' && sql[j] <= 'Z')))
                return n;
        while (i && sql[i - 1] == ' ')
            i--;
        return i;
    }
    return n;
}
