/* The PostgreSQL backend of sql.h, through libpq: a connection URI
 * (postgresql://...), statements prepared once per connection and kept
 * (the server's queries are a fixed set), parameters sent as text (blobs
 * in binary), results read as text. SQLSTATEs are mapped to the errnos of
 * sql.h; a deadlock or serialisation failure is -EAGAIN so that the caller
 * runs its transaction again. A connection found broken is reset once
 * before its next statement (PostgreSQL restarted, a failover). Notices
 * are not printed. */
#include "server/sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define MAX_PARAMS   32
#define MAX_PREPARED 192
#define SQL_MAX      8192
#define LOCK_TIMEOUT "5s"  /* like SQLite's busy timeout */
#define STMT_TIMEOUT "60s" /* nothing the server runs takes this long */

struct prepared {
    char *sql; /* with $n parameters */
    char name[12];
};

struct pg_db {
    struct srv_db base;
    PGconn *conn;
    struct prepared prep[MAX_PREPARED];
    unsigned nprep;
};

struct pg_stmt {
    struct srv_stmt base;
    struct pg_db *db;
    const char *name; /* prepared statement, or NULL: sent with its text */
    char *sql;
    int nparams;
    char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS];
    int formats[MAX_PARAMS];
    PGresult *res;
    int row, nrows;
    bool executed;
    unsigned char *blob; /* the last blob column read */
};

static const struct srv_db_ops pg_ops;

static void no_notices(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* The errno for a failed result, with its message kept. */
static int map_result(struct pg_db *d, const PGresult *res) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;

    srv_db_set_error(&d->base, "%s", msg && *msg ? msg : PQerrorMessage(d->conn));
    if (!state)
        return -EIO;
    if (!strcmp(state, "23505"))
        return -EEXIST;
    if (!strncmp(state, "23", 2))
        return -EINVAL;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
        return -EAGAIN;
    if (!strcmp(state, "55P03") || !strcmp(state, "57014"))
        return -EBUSY;
    if (!strcmp(state, "P0001"))
        return -EPERM;
    return -EIO;
}

static int session_settings(struct pg_db *d) {
    PGresult *res = PQexec(d->conn, "SET lock_timeout = '" LOCK_TIMEOUT "'; "
                                    "SET statement_timeout = '" STMT_TIMEOUT "'; "
                                    "SET client_min_messages = warning");
    int r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : map_result(d, res);
    PQclear(res);
    return r;
}

/* A connection that broke (the server restarted) is reset once; its
 * prepared statements went with it. */
static int ensure_connected(struct pg_db *d) {
    if (PQstatus(d->conn) == CONNECTION_OK)
        return 0;
    PQreset(d->conn);
    for (unsigned i = 0; i < d->nprep; i++)
        free(d->prep[i].sql);
    d->nprep = 0;
    if (PQstatus(d->conn) != CONNECTION_OK) {
        srv_db_set_error(&d->base, "the connection to PostgreSQL is lost: %s",
                         PQerrorMessage(d->conn));
        return -EIO;
    }
    return session_settings(d);
}

static int pg_exec(struct srv_db *db, const char *sql) {
    struct pg_db *d = (struct pg_db *)db;
    PGresult *res;
    int r = ensure_connected(d);

    if (r < 0)
        return r;
    res = PQexec(d->conn, sql);
    r = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK
            ? 0
            : map_result(d, res);
    PQclear(res);
    return r;
}

/* '?' -> $1, $2 ... outside quoted text. */
static int number_params(const char *sql, size_t len, char *out, size_t outlen, int *ret_n) {
    size_t o = 0;
    int n = 0;
    char quote = 0;

    for (size_t i = 0; i < len; i++) {
        char c = sql[i];
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '?') {
            int k = snprintf(out + o, outlen - o, "$%d", ++n);
            if (k < 0 || (size_t)k >= outlen - o || n > MAX_PARAMS)
                return -E2BIG;
            o += (size_t)k;
            continue;
        }
        if (o + 1 >= outlen)
            return -E2BIG;
        out[o++] = c;
    }
    out[o] = '\0';
    *ret_n = n;
    return 0;
}

static int pg_prepare(struct srv_db *db, const char *sql, struct srv_stmt **ret) {
    struct pg_db *d = (struct pg_db *)db;
    struct pg_stmt *s;
    char text[SQL_MAX];
    int n, r;

    r = number_params(sql, strlen(sql), text, sizeof(text), &n);
    if (r < 0) {
        srv_db_set_error(db, "a query is too long or has too many parameters");
        return r;
    }
    r = ensure_connected(d);
    if (r < 0)
        return r;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->base.ops = &pg_ops;
    s->db = d;
    s->nparams = n;
    for (unsigned i = 0; i < d->nprep; i++)
        if (!strcmp(d->prep[i].sql, text)) {
            s->name = d->prep[i].name;
            break;
        }
    if (!s->name && d->nprep < MAX_PREPARED) {
        struct prepared *p = &d->prep[d->nprep];
        PGresult *res;

        snprintf(p->name, sizeof(p->name), "q%u", d->nprep);
        res = PQprepare(d->conn, p->name, text, n, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            r = map_result(d, res);
            PQclear(res);
            free(s);
            return r;
        }
        PQclear(res);
        p->sql = strdup(text);
        if (p->sql) {
            s->name = p->name;
            d->nprep++;
        }
    }
    if (!s->name) {
        s->sql = strdup(text);
        if (!s->sql) {
            free(s);
            return -ENOMEM;
        }
    }
    *ret = &s->base;
    return 0;
}

static int set_param(struct pg_stmt *s, int idx, char *v, int len, int format) {
    if (idx < 1 || idx > s->nparams) {
        free(v);
        srv_db_set_error(&s->db->base, "parameter %d of %d bound", idx, s->nparams);
        return -EINVAL;
    }
    free(s->values[idx - 1]);
    s->values[idx - 1] = v;
    s->lengths[idx - 1] = len;
    s->formats[idx - 1] = format;
    return 0;
}

static int pg_bind_int(struct srv_stmt *st, int idx, int64_t v) {
    char *t = NULL;
    if (asprintf(&t, "%lld", (long long)v) < 0)
        return -ENOMEM;
    return set_param((struct pg_stmt *)st, idx, t, 0, 0);
}

static int pg_bind_text(struct srv_stmt *st, int idx, const char *v) {
    char *t = v ? strdup(v) : NULL;
    if (v && !t)
        return -ENOMEM;
    return set_param((struct pg_stmt *)st, idx, t, 0, 0);
}

static int pg_bind_blob(struct srv_stmt *st, int idx, const void *p, size_t n) {
    char *t = NULL;
    if (p) {
        t = malloc(n ? n : 1);
        if (!t)
            return -ENOMEM;
        memcpy(t, p, n);
    }
    return set_param((struct pg_stmt *)st, idx, t, (int)n, 1);
}

static int pg_step(struct srv_stmt *st) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    ExecStatusType es;

    if (!s->executed) {
        s->executed = true;
        s->res = s->name ? PQexecPrepared(s->db->conn, s->name, s->nparams,
                                          (const char *const *)s->values, s->lengths, s->formats, 0)
                         : PQexecParams(s->db->conn, s->sql, s->nparams, NULL,
                                        (const char *const *)s->values, s->lengths, s->formats, 0);
        es = PQresultStatus(s->res);
        if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
            int r = map_result(s->db, s->res);
            PQclear(s->res);
            s->res = NULL;
            return r;
        }
        s->nrows = es == PGRES_TUPLES_OK ? PQntuples(s->res) : 0;
        s->row = -1;
    }
    if (!s->res || s->row + 1 >= s->nrows)
        return 0;
    s->row++;
    return 1;
}

static int64_t pg_col_int(struct srv_stmt *st, int col) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    if (!s->res || s->row < 0 || PQgetisnull(s->res, s->row, col))
        return 0;
    return strtoll(PQgetvalue(s->res, s->row, col), NULL, 10);
}

static const char *pg_col_text(struct srv_stmt *st, int col) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    if (!s->res || s->row < 0 || PQgetisnull(s->res, s->row, col))
        return NULL;
    return PQgetvalue(s->res, s->row, col);
}

static const void *pg_col_blob(struct srv_stmt *st, int col, size_t *ret_len) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    const char *t = pg_col_text(st, col);
    size_t n = 0;

    *ret_len = 0;
    if (!t)
        return NULL;
    PQfreemem(s->blob);
    s->blob = PQunescapeBytea((const unsigned char *)t, &n);
    *ret_len = n;
    return s->blob;
}

static uint64_t pg_changes(struct srv_stmt *st) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    return s->res ? strtoull(PQcmdTuples(s->res), NULL, 10) : 0;
}

static void pg_finalize(struct srv_stmt *st) {
    struct pg_stmt *s = (struct pg_stmt *)st;
    for (int i = 0; i < s->nparams; i++)
        free(s->values[i]);
    PQclear(s->res);
    PQfreemem(s->blob);
    free(s->sql);
    free(s);
}

static bool pg_in_transaction(struct srv_db *db) {
    PGTransactionStatusType t = PQtransactionStatus(((struct pg_db *)db)->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pg_ping(struct srv_db *db) {
    return pg_exec(db, "SELECT 1");
}

static void pg_close(struct srv_db *db) {
    struct pg_db *d = (struct pg_db *)db;
    for (unsigned i = 0; i < d->nprep; i++)
        free(d->prep[i].sql);
    PQfinish(d->conn);
    free(d);
}

static const struct srv_db_ops pg_ops = {
    .name = "PostgreSQL",
    .exec = pg_exec,
    .prepare = pg_prepare,
    .bind_int = pg_bind_int,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .step = pg_step,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .changes = pg_changes,
    .finalize = pg_finalize,
    .in_transaction = pg_in_transaction,
    .ping = pg_ping,
    .close = pg_close,
};

int srv_pg_connect(const char *uri, struct srv_db **ret, char *err, size_t errlen) {
    struct pg_db *d = calloc(1, sizeof(*d));
    int r;

    if (!d)
        return -ENOMEM;
    d->base.ops = &pg_ops;
    d->base.backend = SRV_DB_POSTGRESQL;
    d->conn = PQconnectdb(uri);
    if (!d->conn || PQstatus(d->conn) != CONNECTION_OK) {
        const char *m = d->conn ? PQerrorMessage(d->conn) : "out of memory";
        snprintf(err, errlen, "cannot connect to PostgreSQL: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(d->conn);
        free(d);
        return -EIO;
    }
    PQsetNoticeProcessor(d->conn, no_notices, NULL);
    r = session_settings(d);
    if (r < 0) {
        snprintf(err, errlen, "PostgreSQL refused the session settings: %s",
                 srv_db_errmsg(&d->base));
        pg_close(&d->base);
        return r;
    }
    *ret = &d->base;
    return 0;
}
