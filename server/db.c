/* The server's SQLite database: opening with the pragmas the server relies
 * on (WAL, busy timeout, foreign keys, synchronous=FULL), the schema as
 * numbered migrations recorded in PRAGMA user_version, and the rows. The
 * schema is described in docs/server.md. */
#include "server/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "common/timefmt.h"

/* Migration N brings the schema from version N-1 to N. Never edit a step
 * once released: add one. */
static const char *const migrations[] = {
    /* 1: licenses and their activations */
    "CREATE TABLE licenses ("
    "  id INTEGER PRIMARY KEY,"
    "  code TEXT NOT NULL UNIQUE,"
    "  product TEXT NOT NULL,"
    "  customer_id INTEGER NOT NULL,"
    "  license_type TEXT NOT NULL"
    "    CHECK (license_type IN ('perpetual','time-limited','subscription','consumption')),"
    "  expiry INTEGER NOT NULL DEFAULT 0,"
    "  features TEXT NOT NULL DEFAULT '',"
    "  secs_allocated INTEGER NOT NULL DEFAULT 0 CHECK (secs_allocated >= 0),"
    "  cache_secs INTEGER NOT NULL CHECK (cache_secs > 0),"
    "  tick_secs INTEGER NOT NULL CHECK (tick_secs BETWEEN 1 AND 86400),"
    "  max_activations INTEGER NOT NULL CHECK (max_activations >= 0),"
    "  offline_allowed INTEGER NOT NULL DEFAULT 0,"
    "  suspended INTEGER NOT NULL DEFAULT 0,"
    "  terms INTEGER NOT NULL DEFAULT 1,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ");"
    "CREATE TABLE activations ("
    "  id TEXT PRIMARY KEY,"
    "  license_id INTEGER NOT NULL REFERENCES licenses(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('online','offline')),"
    "  state TEXT NOT NULL CHECK (state IN ('active','closed')),"
    "  computer_id TEXT NOT NULL,"
    "  hwid_ek TEXT, hwid_dmi TEXT, hwid_nic TEXT,"
    "  ek_public BLOB NOT NULL,"
    "  ek_certificate BLOB,"
    "  counter_index INTEGER NOT NULL,"
    "  counter_name TEXT NOT NULL,"
    "  counter_base INTEGER NOT NULL,"
    "  tick_secs INTEGER NOT NULL,"
    "  epoch TEXT NOT NULL DEFAULT '',"
    "  secs_granted INTEGER NOT NULL CHECK (secs_granted >= 0),"
    "  consumed_secs INTEGER NOT NULL DEFAULT 0,"
    "  final_secs INTEGER NOT NULL DEFAULT 0,"
    "  returned_secs INTEGER NOT NULL DEFAULT 0,"
    "  last_counter INTEGER NOT NULL,"
    "  terms INTEGER NOT NULL,"
    "  username TEXT, email_address TEXT, company_name TEXT, hostname TEXT,"
    "  created INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  closed INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX activations_license ON activations(license_id, state);",

    /* 2: flags raised against an activation (clone defence) */
    "CREATE TABLE flags ("
    "  id INTEGER PRIMARY KEY,"
    "  activation_id TEXT NOT NULL REFERENCES activations(id) ON DELETE CASCADE,"
    "  time INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  detail TEXT NOT NULL"
    ");"
    "CREATE INDEX flags_activation ON flags(activation_id);",

    /* 3: the pool of each license kept on its row by triggers, so that an
     * activation reads one row instead of summing every activation the
     * license ever had (and a server on PostgreSQL locks that row: see
     * docs/server.md); the appliance lookup of an activation by index */
    "ALTER TABLE licenses ADD COLUMN committed_secs INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE licenses ADD COLUMN active_activations INTEGER NOT NULL DEFAULT 0;"
    "UPDATE licenses SET"
    "  committed_secs = (SELECT COALESCE(SUM(CASE state WHEN 'active' THEN secs_granted"
    "    ELSE final_secs END), 0) FROM activations WHERE license_id = licenses.id),"
    "  active_activations = (SELECT COUNT(*) FROM activations"
    "    WHERE license_id = licenses.id AND state = 'active');"
    "CREATE TRIGGER activations_pool_insert AFTER INSERT ON activations BEGIN"
    "  UPDATE licenses SET"
    "    committed_secs = committed_secs +"
    "      (CASE NEW.state WHEN 'active' THEN NEW.secs_granted ELSE NEW.final_secs END),"
    "    active_activations = active_activations + (NEW.state = 'active')"
    "  WHERE id = NEW.license_id;"
    "END;"
    "CREATE TRIGGER activations_pool_update AFTER UPDATE OF state, secs_granted, final_secs"
    "  ON activations WHEN OLD.state IS NOT NEW.state OR"
    "    OLD.secs_granted IS NOT NEW.secs_granted OR OLD.final_secs IS NOT NEW.final_secs BEGIN"
    "  UPDATE licenses SET"
    "    committed_secs = committed_secs"
    "      - (CASE OLD.state WHEN 'active' THEN OLD.secs_granted ELSE OLD.final_secs END)"
    "      + (CASE NEW.state WHEN 'active' THEN NEW.secs_granted ELSE NEW.final_secs END),"
    "    active_activations = active_activations - (OLD.state = 'active')"
    "      + (NEW.state = 'active')"
    "  WHERE id = NEW.license_id;"
    "END;"
    "CREATE TRIGGER activations_pool_delete AFTER DELETE ON activations BEGIN"
    "  UPDATE licenses SET"
    "    committed_secs = committed_secs -"
    "      (CASE OLD.state WHEN 'active' THEN OLD.secs_granted ELSE OLD.final_secs END),"
    "    active_activations = active_activations - (OLD.state = 'active')"
    "  WHERE id = OLD.license_id;"
    "END;"
    "CREATE INDEX activations_appliance ON activations(license_id, computer_id, counter_name,"
    "  state);",
};

_Static_assert(ARRAY_SIZE(migrations) == SRV_SCHEMA_VERSION, "one migration per schema version");

static int exec(sqlite3 *db, const char *sql) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return -EBUSY;
    return rc == SQLITE_OK ? 0 : -EIO;
}

int srv_db_version(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int v = -EIO;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

int srv_db_begin(sqlite3 *db) {
    return exec(db, "BEGIN IMMEDIATE");
}

int srv_db_commit(sqlite3 *db) {
    int r = exec(db, "COMMIT");
    if (r < 0)
        srv_db_rollback(db);
    return r;
}

void srv_db_rollback(sqlite3 *db) {
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs the migrations still missing, each in its own transaction; the
 * version is re-read under the write lock, so two processes opening a new
 * file at once do not both run a step. */
static int migrate(sqlite3 *db, char *err, size_t errlen) {
    for (;;) {
        char sql[64];
        int v, r;

        r = srv_db_begin(db);
        if (r < 0) {
            snprintf(err, errlen, "cannot lock the database: %s", sqlite3_errmsg(db));
            return r;
        }
        v = srv_db_version(db);
        if (v < 0) {
            srv_db_rollback(db);
            snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
            return -EIO;
        }
        if (v > SRV_SCHEMA_VERSION) {
            srv_db_rollback(db);
            snprintf(err, errlen,
                     "the database has schema version %d, newer than this " SRV_PROG
                     " knows (%d): use a newer " SRV_PROG,
                     v, SRV_SCHEMA_VERSION);
            return -EPROTO;
        }
        if (v == SRV_SCHEMA_VERSION) {
            srv_db_rollback(db);
            return 0;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (exec(db, migrations[v]) < 0 || exec(db, sql) < 0) {
            snprintf(err, errlen, "migration to schema version %d failed: %s", v + 1,
                     sqlite3_errmsg(db));
            srv_db_rollback(db);
            return -EIO;
        }
        r = srv_db_commit(db);
        if (r < 0) {
            snprintf(err, errlen, "migration to schema version %d failed to commit", v + 1);
            return r;
        }
    }
}

int srv_db_open(const char *path, bool create, sqlite3 **ret, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    struct stat st;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    int rc, r;

    if (!create && stat(path, &st) < 0) {
        snprintf(err, errlen, "no database at %s (%s)", path, strerror(errno));
        return -ENOENT;
    }
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the database %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -EIO;
    }
    sqlite3_extended_result_codes(db, 0);
    sqlite3_busy_timeout(db, SRV_BUSY_TIMEOUT_MS);
    /* journal_mode answers with a row: not through exec's error path */
    if (exec(db, "PRAGMA journal_mode = WAL") < 0 || exec(db, "PRAGMA foreign_keys = ON") < 0 ||
        exec(db, "PRAGMA synchronous = FULL") < 0) {
        snprintf(err, errlen, "%s is not a usable SQLite database: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -EIO;
    }
    r = migrate(db, err, errlen);
    if (r < 0) {
        sqlite3_close(db);
        return r;
    }
    *ret = db;
    return 0;
}

void srv_db_close(sqlite3 *db) {
    if (db)
        sqlite3_close(db);
}

/* ---- statements ------------------------------------------------------------ */

static void finalizep(sqlite3_stmt **st) {
    sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(finalizep)

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret) {
    return sqlite3_prepare_v2(db, sql, -1, ret, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int step_done(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT)
        return -EEXIST;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return -EBUSY;
    return -EIO;
}

static int step_row(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return -EBUSY;
    return -EIO;
}

static void text_col(sqlite3_stmt *st, int col, char *out, size_t outlen) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

static uint64_t u64_col(sqlite3_stmt *st, int col) {
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v < 0 ? 0 : (uint64_t)v;
}

void srv_features_join(const char features[][CERT_FEATURE_MAX + 1], size_t n, char *out,
                       size_t outlen) {
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "," : "", features[i]);
}

/* ---- licenses ------------------------------------------------------------- */

#define LICENSE_COLS                                                                               \
    "id, code, product, customer_id, license_type, expiry, features, secs_allocated, "             \
    "cache_secs, tick_secs, max_activations, offline_allowed, suspended, terms, created, updated"

static int license_row(sqlite3_stmt *st, struct srv_license *l) {
    char type[20], feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 1) + 1];
    struct cert_license tmp;
    char err[128];

    memset(l, 0, sizeof(*l));
    l->id = sqlite3_column_int64(st, 0);
    text_col(st, 1, l->code, sizeof(l->code));
    text_col(st, 2, l->product, sizeof(l->product));
    l->customer_id = sqlite3_column_int64(st, 3);
    text_col(st, 4, type, sizeof(type));
    if (cert_license_type_from_name(type, &l->type) < 0)
        return -EIO;
    l->expiry = (time_t)sqlite3_column_int64(st, 5);
    text_col(st, 6, feats, sizeof(feats));
    if (cert_features_parse(feats, &tmp, err, sizeof(err)) < 0)
        return -EIO;
    memcpy(l->features, tmp.features, sizeof(l->features));
    l->nfeatures = tmp.nfeatures;
    l->secs_allocated = u64_col(st, 7);
    l->cache_secs = u64_col(st, 8);
    l->tick_secs = (uint32_t)u64_col(st, 9);
    l->max_activations = (uint32_t)u64_col(st, 10);
    l->offline_allowed = sqlite3_column_int(st, 11) != 0;
    l->suspended = sqlite3_column_int(st, 12) != 0;
    l->terms = sqlite3_column_int64(st, 13);
    l->created = (time_t)sqlite3_column_int64(st, 14);
    l->updated = (time_t)sqlite3_column_int64(st, 15);
    return 0;
}

int srv_license_get(sqlite3 *db, const char *code, struct srv_license *ret) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db, "SELECT " LICENSE_COLS " FROM licenses WHERE code = ?", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
    r = step_row(st);
    return r < 0 ? r : license_row(st, ret);
}

int srv_license_get_by_id(sqlite3 *db, int64_t id, struct srv_license *ret) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db, "SELECT " LICENSE_COLS " FROM licenses WHERE id = ?", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    r = step_row(st);
    return r < 0 ? r : license_row(st, ret);
}

static void bind_license(sqlite3_stmt *st, const struct srv_license *l, char *feats,
                         size_t featslen) {
    srv_features_join(l->features, l->nfeatures, feats, featslen);
    sqlite3_bind_text(st, 1, l->code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->product, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, l->customer_id);
    sqlite3_bind_text(st, 4, cert_license_type_name(l->type), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)l->expiry);
    sqlite3_bind_text(st, 6, feats, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)l->secs_allocated);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)l->cache_secs);
    sqlite3_bind_int64(st, 9, l->tick_secs);
    sqlite3_bind_int64(st, 10, l->max_activations);
    sqlite3_bind_int(st, 11, l->offline_allowed);
    sqlite3_bind_int(st, 12, l->suspended);
    sqlite3_bind_int64(st, 13, l->terms);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)l->created);
    sqlite3_bind_int64(st, 15, (sqlite3_int64)l->updated);
}

int srv_license_insert(sqlite3 *db, struct srv_license *l) {
    char feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 1) + 1];
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db,
                    "INSERT INTO licenses (code, product, customer_id, license_type, expiry, "
                    "features, secs_allocated, cache_secs, tick_secs, max_activations, "
                    "offline_allowed, suspended, terms, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &st);
    if (r < 0)
        return r;
    bind_license(st, l, feats, sizeof(feats));
    r = step_done(st);
    if (r == 0)
        l->id = sqlite3_last_insert_rowid(db);
    return r;
}

int srv_license_update(sqlite3 *db, const struct srv_license *l) {
    char feats[CERT_FEATURES_MAX * (CERT_FEATURE_MAX + 1) + 1];
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db,
                    "UPDATE licenses SET code = ?, product = ?, customer_id = ?, license_type = ?, "
                    "expiry = ?, features = ?, secs_allocated = ?, cache_secs = ?, tick_secs = ?, "
                    "max_activations = ?, offline_allowed = ?, suspended = ?, terms = ?, "
                    "created = ?, updated = ? WHERE id = ?",
                    &st);
    if (r < 0)
        return r;
    bind_license(st, l, feats, sizeof(feats));
    sqlite3_bind_int64(st, 16, l->id);
    return step_done(st);
}

int srv_license_delete(sqlite3 *db, int64_t id) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db, "DELETE FROM licenses WHERE id = ?", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    return step_done(st);
}

/* The pool columns are kept by the triggers of migration 3 in the same
 * transaction as every change to an activation. */
int srv_pool_get(sqlite3 *db, const struct srv_license *l, struct srv_pool *ret) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        prepare(db, "SELECT committed_secs, active_activations FROM licenses WHERE id = ?", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, l->id);
    r = step_row(st);
    if (r < 0)
        return r;
    ret->allocated = l->secs_allocated;
    ret->committed = u64_col(st, 0);
    ret->active = (unsigned)u64_col(st, 1);
    ret->free = ret->committed < ret->allocated ? ret->allocated - ret->committed : 0;
    return 0;
}

/* ---- activations ------------------------------------------------------------ */

#define ACTIVATION_COLS                                                                            \
    "id, license_id, kind, state, computer_id, hwid_ek, hwid_dmi, hwid_nic, counter_index, "       \
    "counter_name, counter_base, tick_secs, epoch, secs_granted, consumed_secs, final_secs, "      \
    "returned_secs, last_counter, terms, created, last_seen, closed, "                             \
    "(SELECT COUNT(*) FROM flags WHERE flags.activation_id = activations.id)"

static int hex_to_bytes(const char *hex, uint8_t *out, size_t max, size_t *ret_len) {
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max)
        return -EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (uint8_t)v;
    }
    *ret_len = n / 2;
    return 0;
}

static int activation_row(sqlite3_stmt *st, struct srv_activation *a) {
    char kind[10], state[10], name[2 * CERT_COUNTER_NAME_MAX + 1];

    memset(a, 0, sizeof(*a));
    text_col(st, 0, a->id, sizeof(a->id));
    a->license_id = sqlite3_column_int64(st, 1);
    text_col(st, 2, kind, sizeof(kind));
    a->kind = strcmp(kind, "offline") == 0 ? SRV_OFFLINE : SRV_ONLINE;
    text_col(st, 3, state, sizeof(state));
    a->state = strcmp(state, "closed") == 0 ? SRV_CLOSED : SRV_ACTIVE;
    text_col(st, 4, a->computer_id, sizeof(a->computer_id));
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        const unsigned char *t = sqlite3_column_text(st, 5 + c);
        if (t && hwid_digest_from_hex((const char *)t, a->hwid.digest[c]) == 0)
            a->hwid.present[c] = true;
    }
    a->counter.index = (uint32_t)u64_col(st, 8);
    text_col(st, 9, name, sizeof(name));
    if (hex_to_bytes(name, a->counter.name, sizeof(a->counter.name), &a->counter.name_len) < 0)
        return -EIO;
    a->counter.value = u64_col(st, 10);
    a->tick_secs = (uint32_t)u64_col(st, 11);
    text_col(st, 12, a->epoch, sizeof(a->epoch));
    a->secs_granted = u64_col(st, 13);
    a->consumed_secs = u64_col(st, 14);
    a->final_secs = u64_col(st, 15);
    a->returned_secs = u64_col(st, 16);
    a->last_counter = u64_col(st, 17);
    a->terms = sqlite3_column_int64(st, 18);
    a->created = (time_t)sqlite3_column_int64(st, 19);
    a->last_seen = (time_t)sqlite3_column_int64(st, 20);
    a->closed = (time_t)sqlite3_column_int64(st, 21);
    a->nflags = (unsigned)u64_col(st, 22);
    return 0;
}

int srv_activation_get(sqlite3 *db, const char *id, struct srv_activation *ret) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db, "SELECT " ACTIVATION_COLS " FROM activations WHERE id = ?", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    r = step_row(st);
    return r < 0 ? r : activation_row(st, ret);
}

int srv_activation_find(sqlite3 *db, int64_t license_id, const char *computer_id,
                        const struct cert_counter *counter, struct srv_activation *ret) {
    char name[2 * CERT_COUNTER_NAME_MAX + 1];
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db,
                    "SELECT " ACTIVATION_COLS " FROM activations WHERE license_id = ? AND "
                    "state = 'active' AND computer_id = ? AND counter_name = ? "
                    "ORDER BY created DESC LIMIT 1",
                    &st);
    if (r < 0)
        return r;
    for (size_t i = 0; i < counter->name_len; i++)
        snprintf(name + 2 * i, 3, "%02x", counter->name[i]);
    name[2 * counter->name_len] = '\0';
    sqlite3_bind_int64(st, 1, license_id);
    sqlite3_bind_text(st, 2, computer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    r = step_row(st);
    return r < 0 ? r : activation_row(st, ret);
}

static void bind_text_or_null(sqlite3_stmt *st, int col, const char *s) {
    if (s && *s)
        sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, col);
}

int srv_activation_insert(sqlite3 *db, const struct srv_activation *a,
                          const struct cert_activation *req) {
    char name[2 * CERT_COUNTER_NAME_MAX + 1];
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db,
                    "INSERT INTO activations (id, license_id, kind, state, computer_id, hwid_ek, "
                    "hwid_dmi, hwid_nic, ek_public, ek_certificate, counter_index, counter_name, "
                    "counter_base, tick_secs, epoch, secs_granted, consumed_secs, last_counter, "
                    "terms, username, email_address, company_name, hostname, created, last_seen) "
                    "VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, "
                    "?, ?, ?, ?, ?)",
                    &st);
    if (r < 0)
        return r;
    for (size_t i = 0; i < a->counter.name_len; i++)
        snprintf(name + 2 * i, 3, "%02x", a->counter.name[i]);
    name[2 * a->counter.name_len] = '\0';
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->license_id);
    sqlite3_bind_text(st, 3, a->kind == SRV_OFFLINE ? "offline" : "online", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->computer_id, -1, SQLITE_STATIC);
    for (int c = 0; c < HWID_COMPONENT_MAX; c++) {
        char hex[HWID_DIGEST_HEXLEN];
        if (a->hwid.present[c]) {
            hwid_digest_to_hex(a->hwid.digest[c], hex);
            sqlite3_bind_text(st, 5 + c, hex, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(st, 5 + c);
        }
    }
    sqlite3_bind_blob(st, 8, req->ek_public, (int)req->ek_public_len, SQLITE_STATIC);
    if (req->ek_certificate)
        sqlite3_bind_blob(st, 9, req->ek_certificate, (int)req->ek_certificate_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 9);
    sqlite3_bind_int64(st, 10, a->counter.index);
    sqlite3_bind_text(st, 11, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)a->counter.value);
    sqlite3_bind_int64(st, 13, a->tick_secs);
    sqlite3_bind_text(st, 14, a->epoch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, (sqlite3_int64)a->secs_granted);
    sqlite3_bind_int64(st, 16, (sqlite3_int64)a->last_counter);
    sqlite3_bind_int64(st, 17, a->terms);
    bind_text_or_null(st, 18, req->username);
    bind_text_or_null(st, 19, req->email_address);
    bind_text_or_null(st, 20, req->company_name);
    bind_text_or_null(st, 21, req->hostname);
    sqlite3_bind_int64(st, 22, (sqlite3_int64)a->created);
    sqlite3_bind_int64(st, 23, (sqlite3_int64)a->last_seen);
    return step_done(st);
}

int srv_activation_update(sqlite3 *db, const struct srv_activation *a) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(db,
                    "UPDATE activations SET state = ?, epoch = ?, secs_granted = ?, "
                    "consumed_secs = ?, final_secs = ?, returned_secs = ?, last_counter = ?, "
                    "terms = ?, last_seen = ?, closed = ? WHERE id = ?",
                    &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, a->state == SRV_CLOSED ? "closed" : "active", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->epoch, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)a->secs_granted);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->consumed_secs);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)a->final_secs);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)a->returned_secs);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)a->last_counter);
    sqlite3_bind_int64(st, 8, a->terms);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)a->last_seen);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)a->closed);
    sqlite3_bind_text(st, 11, a->id, -1, SQLITE_STATIC);
    r = step_done(st);
    if (r == 0 && sqlite3_changes(db) != 1)
        return -ENOENT;
    return r;
}

int srv_flag_add(sqlite3 *db, const char *activation_id, time_t when, const char *reason,
                 const char *detail) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare(
        db, "INSERT INTO flags (activation_id, time, reason, detail) VALUES (?, ?, ?, ?)", &st);
    if (r < 0)
        return r;
    sqlite3_bind_text(st, 1, activation_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
    return step_done(st);
}

/* ---- lists (admin) --------------------------------------------------------------- */

int srv_license_list(sqlite3 *db, struct srv_license **ret, size_t *ret_n) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ struct srv_license *v = NULL;
    size_t n = 0, cap = 0;
    int r = prepare(db, "SELECT " LICENSE_COLS " FROM licenses ORDER BY code", &st);

    if (r < 0)
        return r;
    while ((r = step_row(st)) == 0) {
        if (n == cap) {
            struct srv_license *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof(*v));
            if (!nv)
                return -ENOMEM;
            v = nv;
            cap = cap ? cap * 2 : 16;
        }
        r = license_row(st, &v[n++]);
        if (r < 0)
            return r;
    }
    if (r != -ENOENT)
        return r;
    *ret = TAKE_PTR(v);
    *ret_n = n;
    return 0;
}

int srv_activation_list(sqlite3 *db, int64_t license_id, struct srv_activation **ret,
                        size_t *ret_n) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ struct srv_activation *v = NULL;
    size_t n = 0, cap = 0;
    int r = prepare(db,
                    "SELECT " ACTIVATION_COLS " FROM activations WHERE license_id = ? "
                    "ORDER BY state, created, id",
                    &st);

    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, license_id);
    while ((r = step_row(st)) == 0) {
        if (n == cap) {
            struct srv_activation *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof(*v));
            if (!nv)
                return -ENOMEM;
            v = nv;
            cap = cap ? cap * 2 : 16;
        }
        r = activation_row(st, &v[n++]);
        if (r < 0)
            return r;
    }
    if (r != -ENOENT)
        return r;
    *ret = TAKE_PTR(v);
    *ret_n = n;
    return 0;
}

int srv_flag_list(sqlite3 *db, const char *activation_id, json_t **ret) {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_(json_decrefp) json_t *a = json_array();
    int r = prepare(
        db, "SELECT time, reason, detail FROM flags WHERE activation_id = ? ORDER BY id", &st);

    if (r < 0)
        return r;
    if (!a)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, activation_id, -1, SQLITE_STATIC);
    while ((r = step_row(st)) == 0) {
        char when[21];
        rfc3339_format((time_t)sqlite3_column_int64(st, 0), when);
        if (json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "time", when, "reason",
                                               (const char *)sqlite3_column_text(st, 1), "detail",
                                               (const char *)sqlite3_column_text(st, 2))) < 0)
            return -ENOMEM;
    }
    if (r != -ENOENT)
        return r;
    *ret = TAKE_PTR(a);
    return 0;
}
