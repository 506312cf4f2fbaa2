/* The audit log (audit.h). */
#include "server/audit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"
#include "common/timefmt.h"

int srv_audit_add(struct srv_db *db, time_t now, const char *actor, const char *action,
                  const char *target, json_t *before, json_t *after, const char *detail) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    _cleanup_free_ char *b = before ? json_dumps(before, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    _cleanup_free_ char *a = after ? json_dumps(after, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    int r;

    if ((before && !b) || (after && !a))
        return -ENOMEM;
    r = srv_sql_prepare(db,
                        "INSERT INTO audit (time, actor, action, target, state_before, "
                        "state_after, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        &st);
    if (r == 0)
        r = srv_sql_bind_int(st, 1, (int64_t)now);
    if (r == 0)
        r = srv_sql_bind_text(st, 2, actor);
    if (r == 0)
        r = srv_sql_bind_text(st, 3, action);
    if (r == 0)
        r = srv_sql_bind_text(st, 4, target);
    if (r == 0)
        r = srv_sql_bind_text(st, 5, b);
    if (r == 0)
        r = srv_sql_bind_text(st, 6, a);
    if (r == 0)
        r = srv_sql_bind_text(st, 7, detail ? detail : "");
    return r < 0 ? r : srv_sql_run(st);
}

static json_t *stored_json(const char *text) {
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *entry_row(struct srv_stmt *st, void *arg, int *err) {
    return json_pack("{s:I, s:o, s:s, s:s, s:s, s:o, s:o, s:s}", "id",
                     (json_int_t)srv_sql_int(st, 0), "time", srv_time_json(srv_sql_int(st, 1)),
                     "actor", srv_sql_text(st, 2) ?: "", "action", srv_sql_text(st, 3) ?: "",
                     "target", srv_sql_text(st, 4) ?: "", "before",
                     stored_json(srv_sql_text(st, 5)), "after", stored_json(srv_sql_text(st, 6)),
                     "detail", srv_sql_text(st, 7) ?: "");
}

int srv_audit_list(struct srv_db *db, const struct srv_audit_filter *f, json_t **ret) {
    _cleanup_stmt_ struct srv_stmt *st = NULL;
    bool prefix = f->action && *f->action && f->action[strlen(f->action) - 1] == '.';
    char sql[640], pattern[80];
    size_t o;
    int r, n = 0;

    o = (size_t)snprintf(sql, sizeof(sql),
                         "SELECT id, time, actor, action, target, state_before, state_after, "
                         "detail FROM audit WHERE 1 = 1");
    if (f->since)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " AND time >= ?");
    if (f->until)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " AND time < ?");
    if (f->actor && *f->actor)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " AND actor = ?");
    if (f->action && *f->action)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o,
                              prefix ? " AND substr(action, 1, ?) = ?" : " AND action = ?");
    if (f->target && *f->target)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " AND target = ?");
    if (f->before_id)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " AND id < ?");
    snprintf(sql + o, sizeof(sql) - o, " ORDER BY id DESC LIMIT ?");
    r = srv_sql_prepare(db, sql, &st);
    if (r == 0 && f->since)
        r = srv_sql_bind_int(st, ++n, (int64_t)f->since);
    if (r == 0 && f->until)
        r = srv_sql_bind_int(st, ++n, (int64_t)f->until);
    if (r == 0 && f->actor && *f->actor)
        r = srv_sql_bind_text(st, ++n, f->actor);
    if (r == 0 && f->action && *f->action) {
        snprintf(pattern, sizeof(pattern), "%s", f->action);
        if (prefix)
            r = srv_sql_bind_int(st, ++n, (int64_t)strlen(pattern));
        if (r == 0)
            r = srv_sql_bind_text(st, ++n, pattern);
    }
    if (r == 0 && f->target && *f->target)
        r = srv_sql_bind_text(st, ++n, f->target);
    if (r == 0 && f->before_id)
        r = srv_sql_bind_int(st, ++n, f->before_id);
    if (r == 0)
        r = srv_sql_bind_int(st, ++n, f->limit ? f->limit : 100);
    return r < 0 ? r : srv_sql_json_rows(st, entry_row, NULL, ret);
}
