/* The one SQL interface of tpmlic-server: a connection, transactions and
 * prepared statements with positional parameters, over two backends,
 * SQLite (sql_sqlite.c, the embedded default) and PostgreSQL through libpq
 * (sql_pg.c). Everything above this file (db.c's rows, logic.c, ops.c)
 * writes each query once, in the SQL both understand:
 *
 *   - parameters are '?' (the PostgreSQL backend numbers them $1, $2 ...);
 *   - a query that reads a row it is about to change ends in "FOR UPDATE"
 *     (OF table, SKIP LOCKED): PostgreSQL locks the rows; SQLite,
 *     whose BEGIN IMMEDIATE already holds the database's only write lock,
 *     runs the query without that suffix;
 *   - new row IDs come back with "RETURNING id".
 *
 * Return convention: 0 (or a count) on success, a negative errno on
 * failure: -EEXIST a unique key is taken, -EINVAL another constraint
 * failed, -EPERM a trigger refused (the audit log is append-only), -EBUSY
 * a lock was not had in time, -EAGAIN the transaction lost a race
 * (PostgreSQL deadlock or serialisation failure: roll back and run it
 * again), -EIO anything else. srv_db_errmsg() has the backend's message.
 * The library does not log. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum srv_db_backend {
    SRV_DB_SQLITE,
    SRV_DB_POSTGRESQL,
};

struct srv_db;
struct srv_stmt;

/* What a backend provides (sql_sqlite.c, sql_pg.c). */
struct srv_db_ops {
    const char *name;
    int (*exec)(struct srv_db *db, const char *sql); /* one or more statements, no parameters */
    int (*prepare)(struct srv_db *db, const char *sql, struct srv_stmt **ret);
    int (*bind_int)(struct srv_stmt *st, int idx, int64_t v);
    int (*bind_text)(struct srv_stmt *st, int idx, const char *s); /* NULL: SQL NULL */
    int (*bind_blob)(struct srv_stmt *st, int idx, const void *p, size_t n);
    int (*step)(struct srv_stmt *st); /* 1 a row, 0 done, -errno */
    int64_t (*col_int)(struct srv_stmt *st, int col);
    const char *(*col_text)(struct srv_stmt *st, int col); /* NULL for SQL NULL */
    const void *(*col_blob)(struct srv_stmt *st, int col, size_t *ret_len);
    uint64_t (*changes)(struct srv_stmt *st); /* rows written by the last step */
    void (*finalize)(struct srv_stmt *st);
    bool (*in_transaction)(struct srv_db *db);
    int (*ping)(struct srv_db *db);
    void (*close)(struct srv_db *db);
};

/* One connection, and one statement: backends embed these first in their
 * own structs. */
struct srv_db {
    const struct srv_db_ops *ops;
    enum srv_db_backend backend;
    char errmsg[256];
};
struct srv_stmt {
    const struct srv_db_ops *ops;
};

/* "postgresql://..." or "postgres://...": a PostgreSQL connection URI
 * (libpq's syntax); anything else is the path of a SQLite file. */
bool srv_db_spec_is_postgresql(const char *spec);

/* The backends' own openers (db.c's srv_db_open picks one, then runs the
 * migrations). create: SQLite creates a missing file; a PostgreSQL
 * database must exist. err gets one line for a person; the password of a
 * URI is never copied into it. */
int srv_sqlite_connect(const char *path, bool create, struct srv_db **ret, char *err,
                       size_t errlen);
int srv_pg_connect(const char *uri, struct srv_db **ret, char *err, size_t errlen);

const char *srv_db_errmsg(const struct srv_db *db);
void srv_db_set_error(struct srv_db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int srv_db_exec(struct srv_db *db, const char *sql);
/* SQLite: BEGIN IMMEDIATE (the write lock at once: no deferred upgrade
 * that could fail half-way). PostgreSQL: BEGIN (read committed; the rows a
 * decision changes are locked with FOR UPDATE). */
int srv_db_begin(struct srv_db *db);
/* On failure the transaction is rolled back. */
int srv_db_commit(struct srv_db *db);
void srv_db_rollback(struct srv_db *db);
/* A cheap query: 0 when the database answers. */
int srv_db_ping(struct srv_db *db);

int srv_sql_prepare(struct srv_db *db, const char *sql, struct srv_stmt **ret);
int srv_sql_bind_int(struct srv_stmt *st, int idx, int64_t v); /* idx from 1 */
int srv_sql_bind_text(struct srv_stmt *st, int idx, const char *s);
int srv_sql_bind_blob(struct srv_stmt *st, int idx, const void *p, size_t n);
int srv_sql_step(struct srv_stmt *st);
int64_t srv_sql_int(struct srv_stmt *st, int col);   /* col from 0 */
uint64_t srv_sql_uint(struct srv_stmt *st, int col); /* negative values read as 0 */
const char *srv_sql_text(struct srv_stmt *st, int col);
const void *srv_sql_blob(struct srv_stmt *st, int col, size_t *ret_len);
uint64_t srv_sql_changes(struct srv_stmt *st);
void srv_sql_finalize(struct srv_stmt *st);
static inline void srv_sql_finalizep(struct srv_stmt **st) {
    if (*st)
        srv_sql_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(srv_sql_finalizep)))

/* Runs a statement that returns no rows (or whose rows are not wanted). */
int srv_sql_run(struct srv_stmt *st);
/* The query's single integer (a COUNT, a MAX ...) into *ret; -ENOENT when
 * it returned no row. Parameters: n int64_t values. */
int srv_sql_scalar(struct srv_db *db, const char *sql, int64_t *ret, int n, ...);

/* For the backends: the length of sql without a trailing FOR UPDATE [OF
 * table] [SKIP LOCKED] (SQLite drops it). */
size_t srv_sql_strip_locking(const char *sql);
