/* The SQLite backend of sql.h: one file, opened with the pragmas the server
 * relies on (WAL, a busy timeout, foreign keys, synchronous=FULL). SQLite
 * has no row locks: a transaction is BEGIN IMMEDIATE, which takes the
 * database's write lock at once, so a trailing FOR UPDATE is dropped. */
#include "server/sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#define BUSY_TIMEOUT_MS 5000

struct lite_db {
    struct srv_db base;
    sqlite3 *h;
};

struct lite_stmt {
    struct srv_stmt base;
    struct lite_db *db;
    sqlite3_stmt *st;
};

static const struct srv_db_ops lite_ops;

static int map_rc(struct lite_db *d, int rc) {
    int ext = sqlite3_extended_errcode(d->h);

    srv_db_set_error(&d->base, "%s", sqlite3_errmsg(d->h));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            return -EEXIST;
        if (ext == SQLITE_CONSTRAINT_TRIGGER)
            return -EPERM;
        return -EINVAL;
    default:
        return -EIO;
    }
}

static int lite_exec(struct srv_db *db, const char *sql) {
    struct lite_db *d = (struct lite_db *)db;
    int rc = sqlite3_exec(d->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : map_rc(d, rc);
}

static int lite_prepare(struct srv_db *db, const char *sql, struct srv_stmt **ret) {
    struct lite_db *d = (struct lite_db *)db;
    struct lite_stmt *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return -ENOMEM;
    rc = sqlite3_prepare_v2(d->h, sql, (int)srv_sql_strip_locking(sql), &s->st, NULL);
    if (rc != SQLITE_OK) {
        int r = map_rc(d, rc);
        free(s);
        return r;
    }
    s->base.ops = &lite_ops;
    s->db = d;
    *ret = &s->base;
    return 0;
}

static int bind_rc(struct lite_stmt *s, int rc) {
    return rc == SQLITE_OK ? 0 : map_rc(s->db, rc);
}

static int lite_bind_int(struct srv_stmt *st, int idx, int64_t v) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    return bind_rc(s, sqlite3_bind_int64(s->st, idx, v));
}

static int lite_bind_text(struct srv_stmt *st, int idx, const char *v) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    return bind_rc(s, v ? sqlite3_bind_text(s->st, idx, v, -1, SQLITE_TRANSIENT)
                        : sqlite3_bind_null(s->st, idx));
}

static int lite_bind_blob(struct srv_stmt *st, int idx, const void *p, size_t n) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    return bind_rc(s, p ? sqlite3_bind_blob64(s->st, idx, p, n, SQLITE_TRANSIENT)
                        : sqlite3_bind_null(s->st, idx));
}

static int lite_step(struct srv_stmt *st) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return map_rc(s->db, rc);
}

static int64_t lite_col_int(struct srv_stmt *st, int col) {
    return sqlite3_column_int64(((struct lite_stmt *)st)->st, col);
}

static const char *lite_col_text(struct srv_stmt *st, int col) {
    return (const char *)sqlite3_column_text(((struct lite_stmt *)st)->st, col);
}

static const void *lite_col_blob(struct srv_stmt *st, int col, size_t *ret_len) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    const void *p = sqlite3_column_blob(s->st, col);
    *ret_len = (size_t)sqlite3_column_bytes(s->st, col);
    return p;
}

static uint64_t lite_changes(struct srv_stmt *st) {
    return (uint64_t)sqlite3_changes(((struct lite_stmt *)st)->db->h);
}

static void lite_finalize(struct srv_stmt *st) {
    struct lite_stmt *s = (struct lite_stmt *)st;
    sqlite3_finalize(s->st);
    free(s);
}

static bool lite_in_transaction(struct srv_db *db) {
    return !sqlite3_get_autocommit(((struct lite_db *)db)->h);
}

static int lite_ping(struct srv_db *db) {
    return lite_exec(db, "SELECT 1");
}

static void lite_close(struct srv_db *db) {
    struct lite_db *d = (struct lite_db *)db;
    sqlite3_close(d->h);
    free(d);
}

static const struct srv_db_ops lite_ops = {
    .name = "SQLite",
    .exec = lite_exec,
    .prepare = lite_prepare,
    .bind_int = lite_bind_int,
    .bind_text = lite_bind_text,
    .bind_blob = lite_bind_blob,
    .step = lite_step,
    .col_int = lite_col_int,
    .col_text = lite_col_text,
    .col_blob = lite_col_blob,
    .changes = lite_changes,
    .finalize = lite_finalize,
    .in_transaction = lite_in_transaction,
    .ping = lite_ping,
    .close = lite_close,
};

int srv_sqlite_connect(const char *path, bool create, struct srv_db **ret, char *err,
                       size_t errlen) {
    struct lite_db *d;
    struct stat st;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    int rc;

    if (!create && stat(path, &st) < 0) {
        snprintf(err, errlen, "no database at %s (%s)", path, strerror(errno));
        return -ENOENT;
    }
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->base.ops = &lite_ops;
    d->base.backend = SRV_DB_SQLITE;
    rc = sqlite3_open_v2(path, &d->h, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the database %s: %s", path,
                 d->h ? sqlite3_errmsg(d->h) : sqlite3_errstr(rc));
        sqlite3_close(d->h);
        free(d);
        return -EIO;
    }
    sqlite3_extended_result_codes(d->h, 1);
    sqlite3_busy_timeout(d->h, BUSY_TIMEOUT_MS);
    /* journal_mode answers with a row: not through exec's error path */
    if (lite_exec(&d->base, "PRAGMA journal_mode = WAL") < 0 ||
        lite_exec(&d->base, "PRAGMA foreign_keys = ON") < 0 ||
        lite_exec(&d->base, "PRAGMA synchronous = FULL") < 0) {
        snprintf(err, errlen, "%s is not a usable SQLite database: %s", path, sqlite3_errmsg(d->h));
        lite_close(&d->base);
        return -EIO;
    }
    *ret = &d->base;
    return 0;
}
