/* store.c - skiffd's durable state in SQLite (see store.h).
 *
 * Every statement is prepared with bound parameters; the only SQL text built
 * at run time is the sandbox list query, and it is assembled from fixed
 * fragments chosen by which filters are set, never from values. Writes are
 * single autocommit statements or explicit BEGIN IMMEDIATE transactions, so
 * each one is committed (and, with synchronous=FULL in WAL mode, fsync'd)
 * before the function returns - except exec records, which are committed
 * but fsync'd lazily (see step_exec_write).
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

struct sk_store {
    sqlite3 *db;
    char *path;
    int version;
};

/* ---- migrations ---------------------------------------------------------------
 *
 * migrations[i] brings the schema from version i to version i + 1. Append new
 * steps; never edit a released one. Each step runs in its own transaction
 * together with the row that records it in schema_migrations. */

static const char *const migrations[] = {
    /* 1: tokens, sandboxes, execs */
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  hash BLOB NOT NULL CONSTRAINT token_hash_len CHECK (length(hash) = 32),"
    "  created_by TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL DEFAULT 0,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0,"
    "  last_used_at INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at = 0;"
    "CREATE INDEX tokens_created ON tokens(created_at);"
    ""
    "CREATE TABLE sandboxes ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT,"
    "  state TEXT NOT NULL,"
    "  spec_json TEXT NOT NULL CONSTRAINT spec_is_json CHECK (json_valid(spec_json)),"
    "  tags_json TEXT NOT NULL DEFAULT '{}'"
    "    CONSTRAINT tags_is_object CHECK (json_valid(tags_json) AND json_type(tags_json) = 'object'),"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER NOT NULL DEFAULT -1,"
    "  reason TEXT,"
    "  reason_detail TEXT,"
    "  host_pid INTEGER NOT NULL DEFAULT 0,"
    "  runtime_json TEXT"
    ") STRICT;"
    "CREATE UNIQUE INDEX sandboxes_name ON sandboxes(name) WHERE name IS NOT NULL;"
    "CREATE INDEX sandboxes_created ON sandboxes(created_at DESC, id DESC);"
    "CREATE INDEX sandboxes_state_created ON sandboxes(state, created_at DESC, id DESC);"
    "CREATE INDEX sandboxes_ended ON sandboxes(state, ended_at);"
    ""
    "CREATE TABLE execs ("
    "  id TEXT PRIMARY KEY,"
    "  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
    "  argv_json TEXT NOT NULL"
    "    CONSTRAINT argv_is_array CHECK (json_valid(argv_json) AND json_type(argv_json) = 'array'),"
    "  state TEXT NOT NULL,"
    "  exit_code INTEGER NOT NULL DEFAULT -1,"
    "  signal INTEGER NOT NULL DEFAULT 0,"
    "  timed_out INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  ended_at INTEGER NOT NULL DEFAULT 0,"
    "  pty INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE INDEX execs_sandbox ON execs(sandbox_id, created_at, id);",
    /* 2: skiff-init's id of an exec's process, recorded with the exec (it
     * was a sidecar file: one more file created per exec) */
    "ALTER TABLE execs ADD COLUMN proc_id INTEGER NOT NULL DEFAULT 0;",
};

#define SK_STORE_SCHEMA_VERSION ((int)SK_ARRAY_SIZE(migrations))

/* Bounds on list input that arrives from the network. */
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define LIST_TAGS_MAX 16
#define TAG_KEY_MAX 128
#define CURSOR_ID_MAX 256

/* ---- helpers ------------------------------------------------------------------ */

static int db_fail(struct sk_store *st, const char *what, struct sk_error *err)
{
    return sk_error_setv(err, EIO, "%s: %s", what, sqlite3_errmsg(st->db));
}

static int prepare(struct sk_store *st, const char *sql, sqlite3_stmt **stmt, struct sk_error *err)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK) {
        *stmt = NULL;
        return db_fail(st, "prepare statement", err);
    }
    return 0;
}

static void finalizep(sqlite3_stmt **stmt)
{
    if (*stmt != NULL)
        sqlite3_finalize(*stmt);
}
#define _cleanup_stmt_ __attribute__((cleanup(finalizep)))

/* Strings are bound SQLITE_STATIC: every statement is finalised before the
 * function that bound it returns, while the caller's strings still live. */
static int bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(stmt, i);
    return sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

static char *col_str(sqlite3_stmt *stmt, int i)
{
    const unsigned char *t = sqlite3_column_text(stmt, i);
    return t == NULL ? NULL : xstrdup((const char *)t);
}

/* col_str_nn - for NOT NULL columns: never returns NULL. */
static char *col_str_nn(sqlite3_stmt *stmt, int i)
{
    const unsigned char *t = sqlite3_column_text(stmt, i);
    return xstrdup(t == NULL ? "" : (const char *)t);
}

/* exec_sql - run fixed SQL text (no values) such as a migration step. */
static int exec_sql(struct sk_store *st, const char *sql, const char *what, struct sk_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sk_error_setv(err, EIO, "%s: %s", what, msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static void rollback(struct sk_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* step_done - step a statement that returns no rows. Constraint failures are
 * returned as the (positive) extended SQLite code through *constraint so the
 * caller can phrase them; everything else is EIO. */
static int step_done(struct sk_store *st, sqlite3_stmt *stmt, int *constraint, const char *what, struct sk_error *err)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(st->db);
    if (constraint != NULL && (ext & 0xff) == SQLITE_CONSTRAINT) {
        *constraint = ext;
        /* keep the message for constraints the caller does not phrase */
        sk_error_setv(err, EINVAL, "%s: %s", what, sqlite3_errmsg(st->db));
        return -EINVAL;
    }
    return db_fail(st, what, err);
}

/* ---- open / close / migrations -------------------------------------------------- */

static int read_version(struct sk_store *st, int *version, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "SELECT coalesce(max(version), 0) FROM schema_migrations", &stmt, err);
    if (ret < 0)
        return ret;
    if (sqlite3_step(stmt) != SQLITE_ROW)
        return db_fail(st, "read schema version", err);
    sqlite3_int64 v = sqlite3_column_int64(stmt, 0);
    if (v < 0 || v > INT_MAX)
        return sk_error_setv(err, EPROTO, "database schema version %lld is not valid", (long long)v);
    *version = (int)v;
    return 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int refuse_newer(int version, struct sk_error *err)
{
    return sk_error_setv(err, EPROTO, "database schema version %d is newer than this skiff (%d)", version,
                         SK_STORE_SCHEMA_VERSION);
}

/* apply_migration - bring the schema to version `to` in one transaction.
 * The version is read again under the write lock so that two processes
 * opening the same new database cannot both apply a step. */
static int apply_migration(struct sk_store *st, int to, struct sk_error *err)
{
    int ret = exec_sql(st, "BEGIN IMMEDIATE", "begin migration", err);
    if (ret < 0)
        return ret;
    int current = 0;
    ret = read_version(st, &current, err);
    if (ret < 0)
        goto fail;
    if (current > SK_STORE_SCHEMA_VERSION) {
        ret = refuse_newer(current, err);
        goto fail;
    }
    if (current < to) {
        char what[64];
        snprintf(what, sizeof(what), "schema migration %d", to);
        ret = exec_sql(st, migrations[to - 1], what, err);
        if (ret < 0)
            goto fail;
        _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
        ret = prepare(st, "INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)", &stmt, err);
        if (ret < 0)
            goto fail;
        sqlite3_bind_int(stmt, 1, to);
        sqlite3_bind_int64(stmt, 2, wall_ms());
        ret = step_done(st, stmt, NULL, "record schema migration", err);
        if (ret < 0)
            goto fail;
    }
    ret = exec_sql(st, "COMMIT", "commit migration", err);
    if (ret < 0)
        goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int migrate(struct sk_store *st, struct sk_error *err)
{
    int ret = exec_sql(st,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "  version INTEGER PRIMARY KEY,"
                       "  applied_at INTEGER NOT NULL)",
                       "create schema_migrations", err);
    if (ret < 0)
        return ret;
    int version = 0;
    ret = read_version(st, &version, err);
    if (ret < 0)
        return ret;
    if (version > SK_STORE_SCHEMA_VERSION)
        return refuse_newer(version, err);
    for (int v = version + 1; v <= SK_STORE_SCHEMA_VERSION; v++) {
        ret = apply_migration(st, v, err);
        if (ret < 0)
            return ret;
    }
    ret = read_version(st, &st->version, err);
    if (ret < 0)
        return ret;
    if (st->version != SK_STORE_SCHEMA_VERSION)
        return refuse_newer(st->version, err);
    return 0;
}

/* pragma_expect - run a PRAGMA that answers with one text value and check it. */
static int pragma_expect(struct sk_store *st, const char *sql, const char *want, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, sql, &stmt, err);
    if (ret < 0)
        return ret;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW)
        return db_fail(st, sql, err);
    const char *got = (const char *)sqlite3_column_text(stmt, 0);
    if (got == NULL || strcasecmp(got, want) != 0)
        return sk_error_setv(err, EIO, "'%s' answered '%s', expected '%s'", sql, got ? got : "(null)", want);
    return 0;
}

static int configure(struct sk_store *st, struct sk_error *err)
{
    sqlite3_extended_result_codes(st->db, 1);
    /* Refuse writes to the schema through PRAGMA writable_schema and other
     * ways to corrupt the file from SQL; we only ever run our own SQL. The
     * schema stays trusted: its CHECK constraints call json_valid(), which
     * SQLite 3.40 does not mark innocuous, and a person who can rewrite the
     * file's schema already holds everything in it. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK)
        return db_fail(st, "set busy timeout", err);
    int ret = pragma_expect(st, "PRAGMA journal_mode=WAL", "wal", err);
    if (ret < 0)
        return ret;
    /* FULL: in WAL mode NORMAL may lose the last commits on power loss; an
     * acknowledged change must survive it. */
    ret = exec_sql(st, "PRAGMA synchronous=FULL", "set synchronous", err);
    if (ret < 0)
        return ret;
    ret = exec_sql(st, "PRAGMA foreign_keys=ON", "enable foreign keys", err);
    if (ret < 0)
        return ret;
    return pragma_expect(st, "PRAGMA foreign_keys", "1", err);
}

int sk_store_open(const char *path, struct sk_store **out, struct sk_error *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return sk_error_setv(err, EINVAL, "database path is empty");
    /* Create the file ourselves so it is 0600 from the first byte; SQLite
     * would use 0644, and it gives the -wal and -shm files the main file's
     * mode. */
    int fd = SK_RETRY_EINTR(open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (fd < 0)
        return sk_error_set(err, errno, "open database '%s'", path);
    close(fd);

    struct sk_store *st = xcalloc(1, sizeof(*st));
    st->path = xstrdup(path);
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (st->db != NULL)
            sk_error_setv(err, EIO, "open database '%s': %s", path, sqlite3_errmsg(st->db));
        else
            sk_error_setv(err, EIO, "open database '%s': %s", path, sqlite3_errstr(rc));
        sk_store_close(st);
        return -EIO;
    }
    int ret = configure(st, err);
    if (ret < 0)
        goto fail;
    ret = migrate(st, err);
    if (ret < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    if (err != NULL && err->code != EPROTO)
        sk_error_prefix(err, "open database '%s'", path);
    sk_store_close(st);
    return ret;
}

void sk_store_close(struct sk_store *st)
{
    if (st == NULL)
        return;
    if (st->db != NULL)
        sqlite3_close(st->db);
    free(st->path);
    free(st);
}

int sk_store_schema_version(struct sk_store *st)
{
    return st->version;
}

/* ---- tokens ------------------------------------------------------------------- */

void sk_token_rec_release(struct sk_token_rec *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->role);
    free(t->created_by);
    t->name = t->role = t->created_by = NULL;
}

void sk_token_recs_free(struct sk_token_rec *t, size_t n)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sk_token_rec_release(&t[i]);
    free(t);
}

#define TOKEN_COLS "id, name, role, hash, created_by, created_at, expires_at, revoked_at, last_used_at"

static int token_from_row(sqlite3_stmt *stmt, struct sk_token_rec *t, struct sk_error *err)
{
    memset(t, 0, sizeof(*t));
    const char *id = (const char *)sqlite3_column_text(stmt, 0);
    const void *hash = sqlite3_column_blob(stmt, 3);
    if (id == NULL || strlen(id) > SK_TOKEN_ID_LEN || hash == NULL ||
        sqlite3_column_bytes(stmt, 3) != SK_TOKEN_HASH_LEN)
        return sk_error_setv(err, EIO, "token '%s' has a corrupt record", id ? id : "");
    memcpy(t->id, id, strlen(id) + 1);
    memcpy(t->hash, hash, SK_TOKEN_HASH_LEN);
    t->name = col_str_nn(stmt, 1);
    t->role = col_str_nn(stmt, 2);
    t->created_by = col_str_nn(stmt, 4);
    t->created_at = sqlite3_column_int64(stmt, 5);
    t->expires_at = sqlite3_column_int64(stmt, 6);
    t->revoked_at = sqlite3_column_int64(stmt, 7);
    t->last_used_at = sqlite3_column_int64(stmt, 8);
    return 0;
}

int sk_store_token_insert(struct sk_store *st, const struct sk_token_rec *t, struct sk_error *err)
{
    size_t idlen = strnlen(t->id, sizeof(t->id));
    if (idlen == 0 || idlen > SK_TOKEN_ID_LEN)
        return sk_error_setv(err, EINVAL, "token id must be 1 to %d characters", SK_TOKEN_ID_LEN);
    if (t->name == NULL || t->role == NULL)
        return sk_error_setv(err, EINVAL, "token '%s' needs a name and a role", t->id);
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "INSERT INTO tokens(" TOKEN_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", &stmt, err);
    if (ret < 0)
        return ret;
    sqlite3_bind_text(stmt, 1, t->id, (int)idlen, SQLITE_STATIC);
    bind_text(stmt, 2, t->name);
    bind_text(stmt, 3, t->role);
    sqlite3_bind_blob(stmt, 4, t->hash, SK_TOKEN_HASH_LEN, SQLITE_STATIC);
    bind_text(stmt, 5, t->created_by != NULL ? t->created_by : "");
    sqlite3_bind_int64(stmt, 6, t->created_at);
    sqlite3_bind_int64(stmt, 7, t->expires_at);
    sqlite3_bind_int64(stmt, 8, t->revoked_at);
    sqlite3_bind_int64(stmt, 9, t->last_used_at);
    int constraint = 0;
    ret = step_done(st, stmt, &constraint, "insert token", err);
    if (constraint == SQLITE_CONSTRAINT_PRIMARYKEY)
        return sk_error_setv(err, EEXIST, "a token with id '%s' already exists", t->id);
    if (constraint == SQLITE_CONSTRAINT_UNIQUE)
        return sk_error_setv(err, EEXIST, "a token named '%s' already exists", t->name);
    return ret;
}

int sk_store_token_get(struct sk_store *st, const char *id, struct sk_token_rec *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        return sk_error_setv(err, ENOENT, "token '%s' not found", id ? id : "");
    if (rc != SQLITE_ROW)
        return db_fail(st, "get token", err);
    return token_from_row(stmt, out, err);
}

int sk_store_token_list(struct sk_store *st, struct sk_token_rec **out, size_t *n, struct sk_error *err)
{
    *out = NULL;
    *n = 0;
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "SELECT " TOKEN_COLS " FROM tokens ORDER BY created_at, rowid", &stmt, err);
    if (ret < 0)
        return ret;
    struct sk_token_rec *v = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            v = xrealloc(v, cap * sizeof(*v));
        }
        ret = token_from_row(stmt, &v[len], err);
        if (ret < 0) {
            sk_token_recs_free(v, len);
            return ret;
        }
        len++;
    }
    if (rc != SQLITE_DONE) {
        sk_token_recs_free(v, len);
        return db_fail(st, "list tokens", err);
    }
    *out = v;
    *n = len;
    return 0;
}

static int token_exists(struct sk_store *st, const char *id, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "SELECT 1 FROM tokens WHERE id = ?", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return sk_error_setv(err, ENOENT, "token '%s' not found", id ? id : "");
    return db_fail(st, "get token", err);
}

int sk_store_token_revoke(struct sk_store *st, const char *id, int64_t now, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    /* revoked_at = 0 in the WHERE clause: revoking twice keeps the first time */
    int ret = prepare(st, "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at = 0", &stmt, err);
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(stmt, 1, now);
    bind_text(stmt, 2, id);
    ret = step_done(st, stmt, NULL, "revoke token", err);
    if (ret < 0)
        return ret;
    if (sqlite3_changes(st->db) == 0)
        return token_exists(st, id, err);
    return 0;
}

int sk_store_token_touch(struct sk_store *st, const char *id, int64_t now, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2", &stmt, err);
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(stmt, 1, now);
    bind_text(stmt, 2, id);
    ret = step_done(st, stmt, NULL, "touch token", err);
    if (ret < 0)
        return ret;
    if (sqlite3_changes(st->db) == 0)
        return sk_error_setv(err, ENOENT, "token '%s' not found", id ? id : "");
    return 0;
}

int sk_store_token_count_admin(struct sk_store *st, int64_t now, struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st,
                      "SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at = 0"
                      " AND (expires_at = 0 OR expires_at > ?)",
                      &stmt, err);
    if (ret < 0)
        return ret;
    sqlite3_bind_int64(stmt, 1, now);
    if (sqlite3_step(stmt) != SQLITE_ROW)
        return db_fail(st, "count admin tokens", err);
    sqlite3_int64 c = sqlite3_column_int64(stmt, 0);
    return c > INT_MAX ? INT_MAX : (int)c;
}

/* ---- sandboxes ------------------------------------------------------------------ */

void sk_sandbox_rec_release(struct sk_sandbox_rec *s)
{
    if (s == NULL)
        return;
    free(s->id);
    free(s->name);
    free(s->state);
    free(s->spec_json);
    free(s->tags_json);
    free(s->reason);
    free(s->reason_detail);
    free(s->runtime_json);
    s->id = s->name = s->state = s->spec_json = s->tags_json = NULL;
    s->reason = s->reason_detail = s->runtime_json = NULL;
}

void sk_sandbox_recs_free(struct sk_sandbox_rec *s, size_t n)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sk_sandbox_rec_release(&s[i]);
    free(s);
}

#define SANDBOX_COLS \
    "id, name, state, spec_json, tags_json, created_at, started_at, ended_at, exit_code, reason, " \
    "reason_detail, host_pid, runtime_json"

static void sandbox_from_row(sqlite3_stmt *stmt, struct sk_sandbox_rec *s)
{
    memset(s, 0, sizeof(*s));
    s->id = col_str_nn(stmt, 0);
    s->name = col_str(stmt, 1);
    s->state = col_str_nn(stmt, 2);
    s->spec_json = col_str_nn(stmt, 3);
    s->tags_json = col_str_nn(stmt, 4);
    s->created_at = sqlite3_column_int64(stmt, 5);
    s->started_at = sqlite3_column_int64(stmt, 6);
    s->ended_at = sqlite3_column_int64(stmt, 7);
    s->exit_code = sqlite3_column_int(stmt, 8);
    s->reason = col_str(stmt, 9);
    s->reason_detail = col_str(stmt, 10);
    s->host_pid = sqlite3_column_int64(stmt, 11);
    s->runtime_json = col_str(stmt, 12);
}

/* constraint_einval - phrase a CHECK/NOT NULL failure on a record. */
static int constraint_einval(struct sk_store *st, const char *kind, const char *id, struct sk_error *err)
{
    return sk_error_setv(err, EINVAL, "invalid %s '%s': %s", kind, id, sqlite3_errmsg(st->db));
}

int sk_store_sandbox_insert(struct sk_store *st, const struct sk_sandbox_rec *s, struct sk_error *err)
{
    if (s->id == NULL || s->id[0] == '\0' || s->state == NULL)
        return sk_error_setv(err, EINVAL, "a sandbox record needs an id and a state");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "INSERT INTO sandboxes(" SANDBOX_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, s->id);
    bind_text(stmt, 2, s->name);
    bind_text(stmt, 3, s->state);
    bind_text(stmt, 4, s->spec_json != NULL ? s->spec_json : "{}");
    bind_text(stmt, 5, s->tags_json != NULL ? s->tags_json : "{}");
    sqlite3_bind_int64(stmt, 6, s->created_at);
    sqlite3_bind_int64(stmt, 7, s->started_at);
    sqlite3_bind_int64(stmt, 8, s->ended_at);
    sqlite3_bind_int(stmt, 9, s->exit_code);
    bind_text(stmt, 10, s->reason);
    bind_text(stmt, 11, s->reason_detail);
    sqlite3_bind_int64(stmt, 12, s->host_pid);
    bind_text(stmt, 13, s->runtime_json);
    int constraint = 0;
    ret = step_done(st, stmt, &constraint, "insert sandbox", err);
    if (constraint == SQLITE_CONSTRAINT_PRIMARYKEY)
        return sk_error_setv(err, EEXIST, "a sandbox with id '%s' already exists", s->id);
    if (constraint == SQLITE_CONSTRAINT_UNIQUE)
        return sk_error_setv(err, EEXIST, "a sandbox named '%s' already exists", s->name ? s->name : "");
    if (constraint != 0)
        return constraint_einval(st, "sandbox", s->id, err);
    return ret;
}

/* sandbox_get_by - one row where `col` = value; 1 found, 0 not found. */
static int sandbox_get_by(struct sk_store *st, const char *sql, const char *value, struct sk_sandbox_rec *out,
                          struct sk_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, sql, &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, value);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_fail(st, "get sandbox", err);
    sandbox_from_row(stmt, out);
    return 1;
}

int sk_store_sandbox_get(struct sk_store *st, const char *id_or_name, struct sk_sandbox_rec *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    if (id_or_name == NULL)
        return sk_error_setv(err, EINVAL, "sandbox id or name is missing");
    /* An id wins over a name that happens to spell another sandbox's id. */
    int ret = sandbox_get_by(st, "SELECT " SANDBOX_COLS " FROM sandboxes WHERE id = ?", id_or_name, out, err);
    if (ret != 0)
        return ret < 0 ? ret : 0;
    ret = sandbox_get_by(st, "SELECT " SANDBOX_COLS " FROM sandboxes WHERE name = ?", id_or_name, out, err);
    if (ret != 0)
        return ret < 0 ? ret : 0;
    return sk_error_setv(err, ENOENT, "sandbox '%s' not found", id_or_name);
}

int sk_store_sandbox_update(struct sk_store *st, const struct sk_sandbox_rec *s, struct sk_error *err)
{
    if (s->id == NULL || s->state == NULL)
        return sk_error_setv(err, EINVAL, "a sandbox record needs an id and a state");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st,
                      "UPDATE sandboxes SET state = ?2, started_at = ?3, ended_at = ?4, exit_code = ?5, reason = ?6,"
                      " reason_detail = ?7, host_pid = ?8, runtime_json = ?9 WHERE id = ?1",
                      &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, s->id);
    bind_text(stmt, 2, s->state);
    sqlite3_bind_int64(stmt, 3, s->started_at);
    sqlite3_bind_int64(stmt, 4, s->ended_at);
    sqlite3_bind_int(stmt, 5, s->exit_code);
    bind_text(stmt, 6, s->reason);
    bind_text(stmt, 7, s->reason_detail);
    sqlite3_bind_int64(stmt, 8, s->host_pid);
    bind_text(stmt, 9, s->runtime_json);
    int constraint = 0;
    ret = step_done(st, stmt, &constraint, "update sandbox", err);
    if (constraint != 0)
        return constraint_einval(st, "sandbox", s->id, err);
    if (ret < 0)
        return ret;
    if (sqlite3_changes(st->db) == 0)
        return sk_error_setv(err, ENOENT, "sandbox '%s' not found", s->id);
    return 0;
}

int sk_store_sandbox_set_tags(struct sk_store *st, const char *id, const char *tags_json, struct sk_error *err)
{
    if (id == NULL || tags_json == NULL)
        return sk_error_setv(err, EINVAL, "set tags needs a sandbox id and a JSON object");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "UPDATE sandboxes SET tags_json = ?2 WHERE id = ?1", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, id);
    bind_text(stmt, 2, tags_json);
    int constraint = 0;
    ret = step_done(st, stmt, &constraint, "set sandbox tags", err);
    if (constraint != 0)
        return sk_error_setv(err, EINVAL, "tags of sandbox '%s' must be a JSON object", id);
    if (ret < 0)
        return ret;
    if (sqlite3_changes(st->db) == 0)
        return sk_error_setv(err, ENOENT, "sandbox '%s' not found", id);
    return 0;
}

/* Tag keys become part of a JSON path ('$."key"'), which is bound as a
 * parameter but still interpreted by json_extract. Rather than escape, we
 * accept only characters that cannot end the quoted label or start another
 * path step: [A-Za-z0-9._:/-], 1..128 of them. */
static bool tag_key_is_valid(const char *k)
{
    size_t n = 0;
    for (; k[n] != '\0'; n++) {
        char c = k[n];
        if (n >= TAG_KEY_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '/' || c == '-'))
            return false;
    }
    return n > 0;
}

/* The cursor is "<created_at>.<id>" of the last row of the previous page:
 * created_at in decimal, then the id verbatim (printable ASCII, no space). */
static int parse_cursor(const char *cursor, int64_t *created_at, const char **id, struct sk_error *err)
{
    const char *p = cursor;
    int64_t v = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        int d = *p - '0';
        if (digits >= 19 || v > (INT64_MAX - d) / 10)
            goto bad;
        v = v * 10 + d;
    }
    if (digits == 0 || *p != '.')
        goto bad;
    p++;
    size_t n = 0;
    for (; p[n] != '\0'; n++) {
        if (n >= CURSOR_ID_MAX || p[n] <= ' ' || p[n] > '~')
            goto bad;
    }
    if (n == 0)
        goto bad;
    *created_at = v;
    *id = p;
    return 0;
bad:
    return sk_error_setv(err, EINVAL, "invalid cursor");
}

int sk_store_sandbox_list(struct sk_store *st, const struct sk_sandbox_filter *f, struct sk_sandbox_rec **out,
                          size_t *n, char **next_cursor, struct sk_error *err)
{
    *out = NULL;
    *n = 0;
    *next_cursor = NULL;
    size_t limit = f->limit == 0 ? LIST_LIMIT_DEFAULT : f->limit;
    if (limit > LIST_LIMIT_MAX)
        return sk_error_setv(err, EINVAL, "limit must be between 1 and %d (got %zu)", LIST_LIMIT_MAX, f->limit);
    if (f->n_tags > LIST_TAGS_MAX)
        return sk_error_setv(err, EINVAL, "at most %d tag filters are allowed (got %zu)", LIST_TAGS_MAX, f->n_tags);
    for (size_t i = 0; i < f->n_tags; i++) {
        if (f->tag_keys == NULL || f->tag_values == NULL || f->tag_keys[i] == NULL || f->tag_values[i] == NULL)
            return sk_error_setv(err, EINVAL, "tag filter %zu is missing its key or value", i);
        if (!tag_key_is_valid(f->tag_keys[i]))
            return sk_error_setv(err, EINVAL,
                                 "invalid tag key '%.*s' (use 1 to %d of the characters A-Z a-z 0-9 . _ : / -)",
                                 TAG_KEY_MAX, f->tag_keys[i], TAG_KEY_MAX);
    }
    int64_t cursor_at = 0;
    const char *cursor_id = NULL;
    if (f->cursor != NULL) {
        int ret = parse_cursor(f->cursor, &cursor_at, &cursor_id, err);
        if (ret < 0)
            return ret;
    }

    /* Built from fixed fragments only; every value is a bound parameter. */
    char sql[2048];
    size_t off = 0;
#define SQL_ADD(frag) \
    do { \
        size_t _l = strlen(frag); \
        if (off + _l >= sizeof(sql)) \
            return sk_error_setv(err, EINVAL, "sandbox list query is too long"); \
        memcpy(sql + off, frag, _l + 1); \
        off += _l; \
    } while (0)
    SQL_ADD("SELECT " SANDBOX_COLS " FROM sandboxes WHERE 1");
    if (f->state != NULL)
        SQL_ADD(" AND state = ?");
    if (f->name != NULL)
        SQL_ADD(" AND name = ?");
    for (size_t i = 0; i < f->n_tags; i++)
        SQL_ADD(" AND json_extract(tags_json, ?) = ?");
    if (cursor_id != NULL)
        SQL_ADD(" AND (created_at, id) < (?, ?)");
    SQL_ADD(" ORDER BY created_at DESC, id DESC LIMIT ?");
#undef SQL_ADD

    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, sql, &stmt, err);
    if (ret < 0)
        return ret;
    char paths[LIST_TAGS_MAX][TAG_KEY_MAX + 8];
    int p = 1;
    if (f->state != NULL)
        bind_text(stmt, p++, f->state);
    if (f->name != NULL)
        bind_text(stmt, p++, f->name);
    for (size_t i = 0; i < f->n_tags; i++) {
        snprintf(paths[i], sizeof(paths[i]), "$.\"%s\"", f->tag_keys[i]);
        bind_text(stmt, p++, paths[i]);
        bind_text(stmt, p++, f->tag_values[i]);
    }
    if (cursor_id != NULL) {
        sqlite3_bind_int64(stmt, p++, cursor_at);
        bind_text(stmt, p++, cursor_id);
    }
    /* one extra row tells whether another page follows */
    sqlite3_bind_int64(stmt, p, (sqlite3_int64)limit + 1);

    struct sk_sandbox_rec *v = xcalloc(limit, sizeof(*v));
    size_t len = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (len == limit) {
            more = true;
            break;
        }
        sandbox_from_row(stmt, &v[len++]);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sk_sandbox_recs_free(v, len);
        return db_fail(st, "list sandboxes", err);
    }
    if (more)
        *next_cursor = xasprintf("%" PRId64 ".%s", v[len - 1].created_at, v[len - 1].id);
    if (len == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = len;
    return 0;
}

int sk_store_sandbox_purge(struct sk_store *st, int64_t before, struct sk_error *err)
{
    int ret = exec_sql(st, "BEGIN IMMEDIATE", "begin purge", err);
    if (ret < 0)
        return ret;
    int deleted = 0;
    {
        /* Execs go explicitly as well as through ON DELETE CASCADE, so the
         * purge does not depend on the connection's foreign_keys setting. */
        _cleanup_stmt_ sqlite3_stmt *ex = NULL;
        ret = prepare(st,
                      "DELETE FROM execs WHERE sandbox_id IN"
                      " (SELECT id FROM sandboxes WHERE state = 'terminated' AND ended_at < ?)",
                      &ex, err);
        if (ret < 0)
            goto fail;
        sqlite3_bind_int64(ex, 1, before);
        ret = step_done(st, ex, NULL, "purge execs", err);
        if (ret < 0)
            goto fail;
        _cleanup_stmt_ sqlite3_stmt *sb = NULL;
        ret = prepare(st, "DELETE FROM sandboxes WHERE state = 'terminated' AND ended_at < ?", &sb, err);
        if (ret < 0)
            goto fail;
        sqlite3_bind_int64(sb, 1, before);
        ret = step_done(st, sb, NULL, "purge sandboxes", err);
        if (ret < 0)
            goto fail;
        deleted = sqlite3_changes(st->db);
    }
    ret = exec_sql(st, "COMMIT", "commit purge", err);
    if (ret < 0)
        goto fail;
    return deleted;
fail:
    rollback(st);
    return ret;
}

/* ---- execs ------------------------------------------------------------------------ */

void sk_exec_rec_release(struct sk_exec_rec *e)
{
    if (e == NULL)
        return;
    free(e->id);
    free(e->sandbox_id);
    free(e->argv_json);
    free(e->state);
    e->id = e->sandbox_id = e->argv_json = e->state = NULL;
}

void sk_exec_recs_free(struct sk_exec_rec *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sk_exec_rec_release(&e[i]);
    free(e);
}

#define EXEC_COLS "id, sandbox_id, argv_json, state, exit_code, signal, timed_out, created_at, ended_at, pty, proc_id"

static void exec_from_row(sqlite3_stmt *stmt, struct sk_exec_rec *e)
{
    memset(e, 0, sizeof(*e));
    e->id = col_str_nn(stmt, 0);
    e->sandbox_id = col_str_nn(stmt, 1);
    e->argv_json = col_str_nn(stmt, 2);
    e->state = col_str_nn(stmt, 3);
    e->exit_code = sqlite3_column_int(stmt, 4);
    e->signal = sqlite3_column_int(stmt, 5);
    e->timed_out = sqlite3_column_int(stmt, 6) != 0;
    e->created_at = sqlite3_column_int64(stmt, 7);
    e->ended_at = sqlite3_column_int64(stmt, 8);
    e->pty = sqlite3_column_int(stmt, 9) != 0;
    e->proc_id = (uint32_t)sqlite3_column_int64(stmt, 10);
}

/* step_exec_write - run a write of an exec record with synchronous=NORMAL:
 * committed to the WAL (so it survives a crash of skiffd, kill -9
 * included) but fsync'd only with the next FULL commit or checkpoint. An
 * exec cannot outlive a power loss or a reboot anyway (its process dies
 * with the machine, and its sandbox is then recorded lost with every exec
 * it had), and two fsyncs per exec were most of an exec round trip. Every
 * other record stays FULL. */
static int step_exec_write(struct sk_store *st, sqlite3_stmt *stmt, int *constraint, const char *what,
                           struct sk_error *err)
{
    sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int ret = step_done(st, stmt, constraint, what, err);
    if (sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK && ret == 0)
        ret = sk_error_setv(err, EIO, "restore synchronous=FULL: %s", sqlite3_errmsg(st->db));
    return ret;
}

int sk_store_exec_insert(struct sk_store *st, const struct sk_exec_rec *e, struct sk_error *err)
{
    if (e->id == NULL || e->id[0] == '\0' || e->sandbox_id == NULL || e->state == NULL || e->argv_json == NULL)
        return sk_error_setv(err, EINVAL, "an exec record needs an id, a sandbox id, argv and a state");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "INSERT INTO execs(" EXEC_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, e->id);
    bind_text(stmt, 2, e->sandbox_id);
    bind_text(stmt, 3, e->argv_json);
    bind_text(stmt, 4, e->state);
    sqlite3_bind_int(stmt, 5, e->exit_code);
    sqlite3_bind_int(stmt, 6, e->signal);
    sqlite3_bind_int(stmt, 7, e->timed_out ? 1 : 0);
    sqlite3_bind_int64(stmt, 8, e->created_at);
    sqlite3_bind_int64(stmt, 9, e->ended_at);
    sqlite3_bind_int(stmt, 10, e->pty ? 1 : 0);
    sqlite3_bind_int64(stmt, 11, (sqlite3_int64)e->proc_id);
    int constraint = 0;
    ret = step_exec_write(st, stmt, &constraint, "insert exec", err);
    if (constraint == SQLITE_CONSTRAINT_PRIMARYKEY)
        return sk_error_setv(err, EEXIST, "an exec with id '%s' already exists", e->id);
    if (constraint == SQLITE_CONSTRAINT_FOREIGNKEY)
        return sk_error_setv(err, ENOENT, "sandbox '%s' not found", e->sandbox_id);
    if (constraint != 0)
        return constraint_einval(st, "exec", e->id, err);
    return ret;
}

int sk_store_exec_get(struct sk_store *st, const char *id, struct sk_exec_rec *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st, "SELECT " EXEC_COLS " FROM execs WHERE id = ?", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        return sk_error_setv(err, ENOENT, "exec '%s' not found", id ? id : "");
    if (rc != SQLITE_ROW)
        return db_fail(st, "get exec", err);
    exec_from_row(stmt, out);
    return 0;
}

int sk_store_exec_update(struct sk_store *st, const struct sk_exec_rec *e, struct sk_error *err)
{
    if (e->id == NULL || e->state == NULL)
        return sk_error_setv(err, EINVAL, "an exec record needs an id and a state");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret = prepare(st,
                      "UPDATE execs SET state = ?2, exit_code = ?3, signal = ?4, timed_out = ?5, ended_at = ?6"
                      " WHERE id = ?1",
                      &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, e->id);
    bind_text(stmt, 2, e->state);
    sqlite3_bind_int(stmt, 3, e->exit_code);
    sqlite3_bind_int(stmt, 4, e->signal);
    sqlite3_bind_int(stmt, 5, e->timed_out ? 1 : 0);
    sqlite3_bind_int64(stmt, 6, e->ended_at);
    ret = step_exec_write(st, stmt, NULL, "update exec", err);
    if (ret < 0)
        return ret;
    if (sqlite3_changes(st->db) == 0)
        return sk_error_setv(err, ENOENT, "exec '%s' not found", e->id);
    return 0;
}

int sk_store_exec_list(struct sk_store *st, const char *sandbox_id, struct sk_exec_rec **out, size_t *n,
                       struct sk_error *err)
{
    *out = NULL;
    *n = 0;
    if (sandbox_id == NULL)
        return sk_error_setv(err, EINVAL, "sandbox id is missing");
    _cleanup_stmt_ sqlite3_stmt *stmt = NULL;
    int ret =
        prepare(st, "SELECT " EXEC_COLS " FROM execs WHERE sandbox_id = ? ORDER BY created_at, rowid", &stmt, err);
    if (ret < 0)
        return ret;
    bind_text(stmt, 1, sandbox_id);
    struct sk_exec_rec *v = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            v = xrealloc(v, cap * sizeof(*v));
        }
        exec_from_row(stmt, &v[len++]);
    }
    if (rc != SQLITE_DONE) {
        sk_exec_recs_free(v, len);
        return db_fail(st, "list execs", err);
    }
    if (len == 0) {
        /* no execs, or no such sandbox: say which */
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        ret = prepare(st, "SELECT 1 FROM sandboxes WHERE id = ?", &q, err);
        if (ret < 0)
            return ret;
        bind_text(q, 1, sandbox_id);
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            return sk_error_setv(err, ENOENT, "sandbox '%s' not found", sandbox_id);
        if (rc != SQLITE_ROW)
            return db_fail(st, "list execs", err);
    }
    *out = v;
    *n = len;
    return 0;
}
