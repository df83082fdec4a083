/* test_store.c - skiffd's durable state (lib/store) on real SQLite files in a
 * fresh directory under /var/tmp: file mode and WAL, migrations and their
 * refusal of a newer schema, the token, sandbox and exec tables, list
 * filters and pagination, purge, durability across a process that exits
 * without closing, and values that look like SQL stored verbatim. */
#include <errno.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "harness.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
};

static void fx_init(struct fx *f)
{
    snprintf(f->dir, sizeof(f->dir), "/var/tmp/skiff-test-store-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    snprintf(f->path, sizeof(f->path), "%s/skiff.db", f->dir);
}

static void fx_done(struct fx *f)
{
    struct sk_error err = {0};
    ASSERT_OK(sk_remove_tree(f->dir, &err));
}

static struct sk_store *fx_open(struct fx *f)
{
    struct sk_error err = {0};
    struct sk_store *st = NULL;
    ASSERT_OK(sk_store_open(f->path, &st, &err));
    ASSERT_TRUE(st != NULL);
    return st;
}

/* raw_int - one integer from a query run on a separate, plain connection. */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        FAIL("prepare '%s': %s", sql, sqlite3_errmsg(db));
    ASSERT_EQ_INT(sqlite3_step(stmt), SQLITE_ROW);
    long long v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        FAIL("'%s': %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

static void put_token(struct sk_store *st, const char *id, const char *name, const char *role, int64_t created_at,
                      int64_t expires_at)
{
    struct sk_error err = {0};
    struct sk_token_rec t = {0};
    snprintf(t.id, sizeof(t.id), "%s", id);
    t.name = (char *)name;
    t.role = (char *)role;
    for (int i = 0; i < SK_TOKEN_HASH_LEN; i++)
        t.hash[i] = (uint8_t)(id[0] + i);
    t.created_by = (char *)"";
    t.created_at = created_at;
    t.expires_at = expires_at;
    ASSERT_OK(sk_store_token_insert(st, &t, &err));
}

static void put_sandbox(struct sk_store *st, const char *id, const char *name, const char *state, const char *tags,
                        int64_t created_at)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec s = {0};
    s.id = (char *)id;
    s.name = (char *)name;
    s.state = (char *)state;
    s.spec_json = (char *)"{\"image\":\"python\"}";
    s.tags_json = (char *)tags;
    s.created_at = created_at;
    s.exit_code = -1;
    ASSERT_OK(sk_store_sandbox_insert(st, &s, &err));
}

static void put_exec(struct sk_store *st, const char *id, const char *sandbox_id, int64_t created_at)
{
    struct sk_error err = {0};
    struct sk_exec_rec e = {0};
    e.id = (char *)id;
    e.sandbox_id = (char *)sandbox_id;
    e.argv_json = (char *)"[\"echo\",\"hi\"]";
    e.state = (char *)"running";
    e.exit_code = -1;
    e.created_at = created_at;
    ASSERT_OK(sk_store_exec_insert(st, &e, &err));
}

static bool sandbox_exists(struct sk_store *st, const char *id)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec s;
    int r = sk_store_sandbox_get(st, id, &s, &err);
    if (r == 0) {
        sk_sandbox_rec_release(&s);
        return true;
    }
    ASSERT_EQ_INT(r, -ENOENT);
    return false;
}

static bool exec_exists(struct sk_store *st, const char *id)
{
    struct sk_error err = {0};
    struct sk_exec_rec e;
    int r = sk_store_exec_get(st, id, &e, &err);
    if (r == 0) {
        sk_exec_rec_release(&e);
        return true;
    }
    ASSERT_EQ_INT(r, -ENOENT);
    return false;
}

/* list_ids - run a list with f and return the ids as one space-separated string. */
static char *list_ids(struct sk_store *st, const struct sk_sandbox_filter *f)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec *v = NULL;
    size_t n = 0;
    char *next = NULL;
    ASSERT_OK(sk_store_sandbox_list(st, f, &v, &n, &next, &err));
    char *s = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *t = xasprintf("%s%s%s", s, i ? " " : "", v[i].id);
        free(s);
        s = t;
    }
    sk_sandbox_recs_free(v, n);
    free(next);
    return s;
}

TEST(open_creates_a_0600_database_in_wal_mode)
{
    struct fx f;
    fx_init(&f);
    umask(0); /* the mode must come from the store, not from the umask */
    struct sk_store *st = fx_open(&f);
    ASSERT_EQ_INT(sk_store_schema_version(st), 2);
    put_sandbox(st, "sb-1", NULL, "running", "{}", 1);
    struct stat sb;
    ASSERT_EQ_INT(stat(f.path, &sb), 0);
    ASSERT_EQ_INT(sb.st_mode & 07777, 0600);
    /* the write-ahead log exists while the store is open and inherits the mode */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f.path);
    ASSERT_EQ_INT(stat(wal, &sb), 0);
    ASSERT_EQ_INT(sb.st_mode & 07777, 0600);

    sqlite3 *db = NULL;
    ASSERT_EQ_INT(sqlite3_open_v2(f.path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    ASSERT_EQ_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_step(stmt), SQLITE_ROW);
    ASSERT_EQ_STR((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    sk_store_close(st);
    fx_done(&f);
}

TEST(open_fails_cleanly_on_a_missing_directory)
{
    struct sk_error err = {0};
    struct sk_store *st = (struct sk_store *)&err;
    ASSERT_EQ_INT(sk_store_open("/var/tmp/skiff-no-such-dir-x/db", &st, &err), -ENOENT);
    ASSERT_TRUE(st == NULL);
    ASSERT_CONTAINS(err.msg, "skiff-no-such-dir-x");
}

TEST(reopen_keeps_data_and_does_not_rerun_migrations)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    put_token(st, "00000000000000aa", "ci", "admin", 10, 0);
    sk_store_close(st);
    long long applied = raw_int(f.path, "SELECT applied_at FROM schema_migrations WHERE version = 1");
    ASSERT_GT_INT(applied, 0);
    usleep(20 * 1000);

    st = fx_open(&f);
    ASSERT_EQ_INT(sk_store_schema_version(st), 2);
    struct sk_error err = {0};
    struct sk_token_rec t;
    ASSERT_OK(sk_store_token_get(st, "00000000000000aa", &t, &err));
    ASSERT_EQ_STR(t.name, "ci");
    sk_token_rec_release(&t);
    sk_store_close(st);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM schema_migrations"), 2);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT applied_at FROM schema_migrations WHERE version = 1"), applied);
    fx_done(&f);
}

TEST(a_version_1_database_is_migrated_with_its_execs)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    put_sandbox(st, "sb-old", NULL, "running", "{}", 1);
    struct sk_error err = {0};
    char id_old[] = "ex-old", id_new[] = "ex-new", sid[] = "sb-old", argv[] = "[\"true\"]", state[] = "running";
    struct sk_exec_rec x = {.id = id_old,
                            .sandbox_id = sid,
                            .argv_json = argv,
                            .state = state,
                            .exit_code = -1,
                            .created_at = 5,
                            .proc_id = 9};
    ASSERT_OK(sk_store_exec_insert(st, &x, &err));
    sk_store_close(st);
    /* back to what a schema 1 server wrote: no proc_id column */
    raw_exec(f.path, "ALTER TABLE execs DROP COLUMN proc_id");
    raw_exec(f.path, "DELETE FROM schema_migrations WHERE version = 2");

    st = fx_open(&f);
    ASSERT_EQ_INT(sk_store_schema_version(st), 2);
    struct sk_exec_rec got;
    ASSERT_OK(sk_store_exec_get(st, "ex-old", &got, &err));
    ASSERT_EQ_STR(got.state, "running");
    ASSERT_EQ_INT(got.proc_id, 0); /* unknown: recovery falls back to the sidecar file */
    sk_exec_rec_release(&got);
    x.id = id_new;
    x.proc_id = 4000000000u;
    ASSERT_OK(sk_store_exec_insert(st, &x, &err));
    ASSERT_OK(sk_store_exec_get(st, "ex-new", &got, &err));
    ASSERT_TRUE(got.proc_id == 4000000000u);
    sk_exec_rec_release(&got);
    sk_store_close(st);
    fx_done(&f);
}

TEST(a_newer_schema_is_refused)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    put_sandbox(st, "sb-keep", NULL, "running", "{}", 1);
    sk_store_close(st);
    raw_exec(f.path, "INSERT INTO schema_migrations(version, applied_at) VALUES (7, 0)");

    struct sk_error err = {0};
    st = (struct sk_store *)&err;
    ASSERT_EQ_INT(sk_store_open(f.path, &st, &err), -EPROTO);
    ASSERT_TRUE(st == NULL);
    ASSERT_EQ_INT(err.code, EPROTO);
    ASSERT_EQ_STR(err.msg, "database schema version 7 is newer than this skiff (2)");
    /* nothing was changed or lost */
    ASSERT_EQ_INT(raw_int(f.path, "SELECT max(version) FROM schema_migrations"), 7);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM sandboxes"), 1);
    fx_done(&f);
}

TEST(tokens_insert_get_list_revoke)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_token(st, "bbbbbbbbbbbbbbbb", "second", "admin", 200, 0);
    put_token(st, "aaaaaaaaaaaaaaaa", "first", "admin", 100, 5000);

    struct sk_token_rec t;
    ASSERT_OK(sk_store_token_get(st, "aaaaaaaaaaaaaaaa", &t, &err));
    ASSERT_EQ_STR(t.id, "aaaaaaaaaaaaaaaa");
    ASSERT_EQ_STR(t.name, "first");
    ASSERT_EQ_STR(t.role, "admin");
    ASSERT_EQ_STR(t.created_by, "");
    for (int i = 0; i < SK_TOKEN_HASH_LEN; i++)
        ASSERT_EQ_INT(t.hash[i], 'a' + i);
    ASSERT_EQ_INT(t.created_at, 100);
    ASSERT_EQ_INT(t.expires_at, 5000);
    ASSERT_EQ_INT(t.revoked_at, 0);
    ASSERT_EQ_INT(t.last_used_at, 0);
    sk_token_rec_release(&t);

    /* oldest first, revoked ones included */
    ASSERT_OK(sk_store_token_revoke(st, "bbbbbbbbbbbbbbbb", 300, &err));
    struct sk_token_rec *v = NULL;
    size_t n = 0;
    ASSERT_OK(sk_store_token_list(st, &v, &n, &err));
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_STR(v[0].name, "first");
    ASSERT_EQ_STR(v[1].name, "second");
    ASSERT_EQ_INT(v[1].revoked_at, 300);
    sk_token_recs_free(v, n);

    /* revoking twice is fine and keeps the first time */
    ASSERT_OK(sk_store_token_revoke(st, "bbbbbbbbbbbbbbbb", 999, &err));
    ASSERT_OK(sk_store_token_get(st, "bbbbbbbbbbbbbbbb", &t, &err));
    ASSERT_EQ_INT(t.revoked_at, 300);
    sk_token_rec_release(&t);

    ASSERT_OK(sk_store_token_touch(st, "aaaaaaaaaaaaaaaa", 4242, &err));
    ASSERT_OK(sk_store_token_get(st, "aaaaaaaaaaaaaaaa", &t, &err));
    ASSERT_EQ_INT(t.last_used_at, 4242);
    sk_token_rec_release(&t);

    ASSERT_EQ_INT(sk_store_token_get(st, "cccccccccccccccc", &t, &err), -ENOENT);
    ASSERT_EQ_STR(err.msg, "token 'cccccccccccccccc' not found");
    ASSERT_EQ_INT(sk_store_token_revoke(st, "cccccccccccccccc", 1, &err), -ENOENT);
    ASSERT_EQ_INT(sk_store_token_touch(st, "cccccccccccccccc", 1, &err), -ENOENT);
    sk_store_close(st);
    fx_done(&f);
}

TEST(token_names_are_unique_among_live_tokens)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_token(st, "1111111111111111", "deploy", "admin", 1, 0);

    struct sk_token_rec t = {0};
    snprintf(t.id, sizeof(t.id), "2222222222222222");
    t.name = (char *)"deploy";
    t.role = (char *)"admin";
    t.created_at = 2;
    ASSERT_EQ_INT(sk_store_token_insert(st, &t, &err), -EEXIST);
    ASSERT_EQ_STR(err.msg, "a token named 'deploy' already exists");
    /* the same id is a clash too */
    snprintf(t.id, sizeof(t.id), "1111111111111111");
    t.name = (char *)"other";
    ASSERT_EQ_INT(sk_store_token_insert(st, &t, &err), -EEXIST);
    ASSERT_CONTAINS(err.msg, "'1111111111111111'");
    /* once the first is revoked its name is free again */
    ASSERT_OK(sk_store_token_revoke(st, "1111111111111111", 3, &err));
    snprintf(t.id, sizeof(t.id), "2222222222222222");
    t.name = (char *)"deploy";
    ASSERT_OK(sk_store_token_insert(st, &t, &err));
    sk_store_close(st);
    fx_done(&f);
}

TEST(count_admin_skips_revoked_expired_and_other_roles)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    int64_t now = 1000000;
    ASSERT_EQ_INT(sk_store_token_count_admin(st, now, &err), 0);
    put_token(st, "1000000000000000", "forever", "admin", 1, 0);
    put_token(st, "2000000000000000", "later", "admin", 1, now + 1);
    put_token(st, "3000000000000000", "expired", "admin", 1, now - 1);
    put_token(st, "4000000000000000", "just-expired", "admin", 1, now);
    put_token(st, "5000000000000000", "revoked", "admin", 1, 0);
    put_token(st, "6000000000000000", "reader", "viewer", 1, 0);
    ASSERT_OK(sk_store_token_revoke(st, "5000000000000000", 2, &err));
    ASSERT_EQ_INT(sk_store_token_count_admin(st, now, &err), 2);
    /* a moment later "later" has expired as well */
    ASSERT_EQ_INT(sk_store_token_count_admin(st, now + 1, &err), 1);
    sk_store_close(st);
    fx_done(&f);
}

TEST(sandbox_insert_get_update_and_tags)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    struct sk_sandbox_rec s = {0};
    s.id = (char *)"sb-abc";
    s.name = (char *)"web";
    s.state = (char *)"creating";
    s.spec_json = (char *)"{\"image\":\"python:3.12\",\"cpu\":1}";
    s.tags_json = (char *)"{\"team\":\"ml\"}";
    s.created_at = 1700000000123;
    s.exit_code = -1;
    s.runtime_json = (char *)"{\"cgroup\":\"/skiff/sb-abc\"}";
    ASSERT_OK(sk_store_sandbox_insert(st, &s, &err));

    struct sk_sandbox_rec g;
    for (int by_name = 0; by_name < 2; by_name++) {
        ASSERT_OK(sk_store_sandbox_get(st, by_name ? "web" : "sb-abc", &g, &err));
        ASSERT_EQ_STR(g.id, "sb-abc");
        ASSERT_EQ_STR(g.name, "web");
        ASSERT_EQ_STR(g.state, "creating");
        ASSERT_EQ_STR(g.spec_json, s.spec_json);
        ASSERT_EQ_STR(g.tags_json, s.tags_json);
        ASSERT_EQ_INT(g.created_at, 1700000000123);
        ASSERT_EQ_INT(g.started_at, 0);
        ASSERT_EQ_INT(g.exit_code, -1);
        ASSERT_TRUE(g.reason == NULL);
        ASSERT_TRUE(g.reason_detail == NULL);
        ASSERT_EQ_STR(g.runtime_json, s.runtime_json);
        sk_sandbox_rec_release(&g);
    }

    /* update changes the mutable columns and nothing else */
    struct sk_sandbox_rec u = {0};
    u.id = (char *)"sb-abc";
    u.name = (char *)"ignored";
    u.spec_json = (char *)"{\"ignored\":true}";
    u.state = (char *)"terminated";
    u.started_at = 1700000000200;
    u.ended_at = 1700000009000;
    u.exit_code = 3;
    u.reason = (char *)"exited";
    u.reason_detail = (char *)"exit status 3";
    u.host_pid = 4321;
    u.runtime_json = NULL;
    ASSERT_OK(sk_store_sandbox_update(st, &u, &err));
    ASSERT_OK(sk_store_sandbox_get(st, "sb-abc", &g, &err));
    ASSERT_EQ_STR(g.name, "web");
    ASSERT_EQ_STR(g.spec_json, s.spec_json);
    ASSERT_EQ_INT(g.created_at, 1700000000123);
    ASSERT_EQ_STR(g.state, "terminated");
    ASSERT_EQ_INT(g.started_at, 1700000000200);
    ASSERT_EQ_INT(g.ended_at, 1700000009000);
    ASSERT_EQ_INT(g.exit_code, 3);
    ASSERT_EQ_STR(g.reason, "exited");
    ASSERT_EQ_STR(g.reason_detail, "exit status 3");
    ASSERT_EQ_INT(g.host_pid, 4321);
    ASSERT_TRUE(g.runtime_json == NULL);
    sk_sandbox_rec_release(&g);

    ASSERT_OK(sk_store_sandbox_set_tags(st, "sb-abc", "{\"team\":\"infra\",\"env\":\"prod\"}", &err));
    ASSERT_OK(sk_store_sandbox_get(st, "web", &g, &err));
    ASSERT_EQ_STR(g.tags_json, "{\"team\":\"infra\",\"env\":\"prod\"}");
    sk_sandbox_rec_release(&g);
    /* tags must stay a JSON object: the list filter depends on it */
    ASSERT_EQ_INT(sk_store_sandbox_set_tags(st, "sb-abc", "[1,2]", &err), -EINVAL);
    ASSERT_EQ_INT(sk_store_sandbox_set_tags(st, "sb-abc", "{not json", &err), -EINVAL);
    s.id = (char *)"sb-bad";
    s.name = NULL;
    s.tags_json = (char *)"\"a string\"";
    ASSERT_EQ_INT(sk_store_sandbox_insert(st, &s, &err), -EINVAL);
    ASSERT_FALSE(sandbox_exists(st, "sb-bad"));
    sk_store_close(st);
    fx_done(&f);
}

TEST(unknown_sandbox_is_enoent)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    struct sk_sandbox_rec g;
    ASSERT_EQ_INT(sk_store_sandbox_get(st, "sb-nope", &g, &err), -ENOENT);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_EQ_STR(err.msg, "sandbox 'sb-nope' not found");
    struct sk_sandbox_rec u = {.id = (char *)"sb-nope", .state = (char *)"running"};
    ASSERT_EQ_INT(sk_store_sandbox_update(st, &u, &err), -ENOENT);
    ASSERT_EQ_STR(err.msg, "sandbox 'sb-nope' not found");
    ASSERT_EQ_INT(sk_store_sandbox_set_tags(st, "sb-nope", "{}", &err), -ENOENT);
    struct sk_exec_rec *v = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(sk_store_exec_list(st, "sb-nope", &v, &n, &err), -ENOENT);
    sk_store_close(st);
    fx_done(&f);
}

TEST(a_name_clash_is_eexist_and_loses_nothing)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_sandbox(st, "sb-1", "web", "running", "{\"k\":\"v\"}", 10);
    struct sk_sandbox_rec s = {.id = (char *)"sb-2",
                               .name = (char *)"web",
                               .state = (char *)"creating",
                               .tags_json = (char *)"{}",
                               .created_at = 20,
                               .exit_code = -1};
    ASSERT_EQ_INT(sk_store_sandbox_insert(st, &s, &err), -EEXIST);
    ASSERT_EQ_INT(err.code, EEXIST);
    ASSERT_EQ_STR(err.msg, "a sandbox named 'web' already exists");
    ASSERT_FALSE(sandbox_exists(st, "sb-2"));
    struct sk_sandbox_rec g;
    ASSERT_OK(sk_store_sandbox_get(st, "web", &g, &err));
    ASSERT_EQ_STR(g.id, "sb-1");
    ASSERT_EQ_STR(g.state, "running");
    ASSERT_EQ_STR(g.tags_json, "{\"k\":\"v\"}");
    sk_sandbox_rec_release(&g);
    /* an id clash is EEXIST too, and names it */
    s.name = (char *)"other";
    s.id = (char *)"sb-1";
    ASSERT_EQ_INT(sk_store_sandbox_insert(st, &s, &err), -EEXIST);
    ASSERT_EQ_STR(err.msg, "a sandbox with id 'sb-1' already exists");
    /* any number of sandboxes may go without a name */
    put_sandbox(st, "sb-3", NULL, "running", "{}", 30);
    put_sandbox(st, "sb-4", NULL, "running", "{}", 40);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM sandboxes"), 3);
    sk_store_close(st);
    fx_done(&f);
}

TEST(list_filters_by_state_name_and_tags)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    put_sandbox(st, "sb-1", "a", "running", "{\"team\":\"ml\",\"env\":\"prod\"}", 1);
    put_sandbox(st, "sb-2", "b", "running", "{\"team\":\"ml\"}", 2);
    put_sandbox(st, "sb-3", "c", "terminated", "{\"env\":\"prod\",\"team\":\"ml\"}", 3);
    put_sandbox(st, "sb-4", NULL, "running", "{\"env\":\"prod\",\"team\":\"web\"}", 4);
    put_sandbox(st, "sb-5", NULL, "creating", "{\"app.kubernetes.io/name\":\"x:y\"}", 5);
    char *ids;

    struct sk_sandbox_filter all = {0};
    ids = list_ids(st, &all);
    ASSERT_EQ_STR(ids, "sb-5 sb-4 sb-3 sb-2 sb-1");
    free(ids);

    struct sk_sandbox_filter by_state = {.state = "running"};
    ids = list_ids(st, &by_state);
    ASSERT_EQ_STR(ids, "sb-4 sb-2 sb-1");
    free(ids);

    struct sk_sandbox_filter by_name = {.name = "b"};
    ids = list_ids(st, &by_name);
    ASSERT_EQ_STR(ids, "sb-2");
    free(ids);

    const char *keys[] = {"team", "env"};
    const char *vals[] = {"ml", "prod"};
    struct sk_sandbox_filter by_tags = {.tag_keys = keys, .tag_values = vals, .n_tags = 2};
    ids = list_ids(st, &by_tags);
    ASSERT_EQ_STR(ids, "sb-3 sb-1");
    free(ids);
    by_tags.state = "running";
    ids = list_ids(st, &by_tags);
    ASSERT_EQ_STR(ids, "sb-1");
    free(ids);

    const char *k2[] = {"app.kubernetes.io/name"};
    const char *v2[] = {"x:y"};
    struct sk_sandbox_filter dotted = {.tag_keys = k2, .tag_values = v2, .n_tags = 1};
    ids = list_ids(st, &dotted);
    ASSERT_EQ_STR(ids, "sb-5");
    free(ids);

    const char *v3[] = {"nobody"};
    struct sk_sandbox_filter none = {.tag_keys = keys, .tag_values = v3, .n_tags = 1};
    ids = list_ids(st, &none);
    ASSERT_EQ_STR(ids, "");
    free(ids);
    sk_store_close(st);
    fx_done(&f);
}

TEST(list_pages_without_duplicates_or_gaps)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    char id[32];
    /* three rows share each created_at, so the id must break ties */
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "sb-%02d", (i * 7) % 25);
        put_sandbox(st, id, NULL, "running", "{}", 1000 + i / 3);
    }
    bool seen[25] = {false};
    int sizes[4] = {0};
    int pages = 0;
    char *cursor = NULL;
    int64_t last_at = INT64_MAX;
    char last_id[32] = "~";
    do {
        struct sk_sandbox_filter flt = {.limit = 10, .cursor = cursor};
        struct sk_sandbox_rec *v = NULL;
        size_t n = 0;
        char *next = NULL;
        ASSERT_OK(sk_store_sandbox_list(st, &flt, &v, &n, &next, &err));
        ASSERT_LT_INT(pages, 3);
        sizes[pages++] = (int)n;
        for (size_t i = 0; i < n; i++) {
            int k = atoi(v[i].id + 3);
            ASSERT_FALSE(seen[k]);
            seen[k] = true;
            /* strictly newest first by (created_at, id) */
            ASSERT_TRUE(v[i].created_at < last_at || (v[i].created_at == last_at && strcmp(v[i].id, last_id) < 0));
            last_at = v[i].created_at;
            snprintf(last_id, sizeof(last_id), "%s", v[i].id);
        }
        sk_sandbox_recs_free(v, n);
        free(cursor);
        cursor = next;
    } while (cursor != NULL);
    ASSERT_EQ_INT(pages, 3);
    ASSERT_EQ_INT(sizes[0], 10);
    ASSERT_EQ_INT(sizes[1], 10);
    ASSERT_EQ_INT(sizes[2], 5);
    for (int i = 0; i < 25; i++)
        ASSERT_TRUE(seen[i]);

    /* a page that ends exactly at the last row has no next cursor */
    struct sk_sandbox_filter exact = {.limit = 25};
    struct sk_sandbox_rec *v = NULL;
    size_t n = 0;
    char *next = (char *)"x";
    ASSERT_OK(sk_store_sandbox_list(st, &exact, &v, &n, &next, &err));
    ASSERT_EQ_INT(n, 25);
    ASSERT_TRUE(next == NULL);
    sk_sandbox_recs_free(v, n);
    /* limit 0 means 100 */
    struct sk_sandbox_filter dflt = {0};
    ASSERT_OK(sk_store_sandbox_list(st, &dflt, &v, &n, &next, &err));
    ASSERT_EQ_INT(n, 25);
    ASSERT_TRUE(next == NULL);
    sk_sandbox_recs_free(v, n);
    struct sk_sandbox_filter big = {.limit = 1001};
    ASSERT_EQ_INT(sk_store_sandbox_list(st, &big, &v, &n, &next, &err), -EINVAL);
    sk_store_close(st);
    fx_done(&f);
}

TEST(list_rejects_a_garbage_cursor)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_sandbox(st, "sb-1", NULL, "running", "{}", 1);
    static const char *const bad[] = {
        "",         "abc",      "12",    "12.",   ".sb-1",   "-1.sb-1", "99999999999999999999.sb-1",
        "12x.sb-1", "1 2.sb-1", "1.a b", "1.a\n", "+1.sb-1",
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        struct sk_sandbox_filter flt = {.cursor = bad[i]};
        struct sk_sandbox_rec *v = NULL;
        size_t n = 0;
        char *next = NULL;
        int r = sk_store_sandbox_list(st, &flt, &v, &n, &next, &err);
        if (r != -EINVAL)
            FAIL("cursor '%s' gave %d, expected -EINVAL", bad[i], r);
        ASSERT_EQ_STR(err.msg, "invalid cursor");
        ASSERT_TRUE(v == NULL && n == 0 && next == NULL);
    }
    /* a well-formed cursor past every row is an empty page, not an error */
    struct sk_sandbox_filter flt = {.cursor = "0.sb-0"};
    char *ids = list_ids(st, &flt);
    ASSERT_EQ_STR(ids, "");
    free(ids);
    sk_store_close(st);
    fx_done(&f);
}

TEST(list_rejects_a_bad_tag_key)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_sandbox(st, "sb-1", NULL, "running", "{\"a\":\"1\"}", 1);
    static const char *const bad[] = {
        "",
        "a\"b",
        "a'b",
        "a b",
        "$",
        "a]",
        "a[0]",
        "a\\b",
        "a*",
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        const char *keys[] = {bad[i]};
        const char *vals[] = {"1"};
        struct sk_sandbox_filter flt = {.tag_keys = keys, .tag_values = vals, .n_tags = 1};
        struct sk_sandbox_rec *v = NULL;
        size_t n = 0;
        char *next = NULL;
        int r = sk_store_sandbox_list(st, &flt, &v, &n, &next, &err);
        if (r != -EINVAL)
            FAIL("tag key '%s' gave %d, expected -EINVAL", bad[i], r);
        ASSERT_CONTAINS(err.msg, "invalid tag key");
    }
    const char *keys[] = {"a"};
    const char *vals[] = {NULL};
    struct sk_sandbox_filter flt = {.tag_keys = keys, .tag_values = vals, .n_tags = 1};
    struct sk_sandbox_rec *v = NULL;
    size_t n = 0;
    char *next = NULL;
    ASSERT_EQ_INT(sk_store_sandbox_list(st, &flt, &v, &n, &next, &err), -EINVAL);
    sk_store_close(st);
    fx_done(&f);
}

TEST(purge_deletes_only_old_terminated_sandboxes_and_their_execs)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_sandbox(st, "sb-old", "old", "running", "{}", 1);
    put_sandbox(st, "sb-edge", NULL, "running", "{}", 2);
    put_sandbox(st, "sb-new", NULL, "running", "{}", 3);
    put_sandbox(st, "sb-live", NULL, "running", "{}", 4);
    put_exec(st, "ex-old-1", "sb-old", 10);
    put_exec(st, "ex-old-2", "sb-old", 11);
    put_exec(st, "ex-live", "sb-live", 12);
    put_exec(st, "ex-new", "sb-new", 13);
    const char *ended[][2] = {{"sb-old", "100"}, {"sb-edge", "500"}, {"sb-new", "900"}};
    for (size_t i = 0; i < SK_ARRAY_SIZE(ended); i++) {
        struct sk_sandbox_rec u = {.id = (char *)ended[i][0],
                                   .state = (char *)"terminated",
                                   .ended_at = atoi(ended[i][1]),
                                   .exit_code = 0,
                                   .reason = (char *)"exited"};
        ASSERT_OK(sk_store_sandbox_update(st, &u, &err));
    }
    ASSERT_EQ_INT(sk_store_sandbox_purge(st, 500, &err), 1);
    ASSERT_FALSE(sandbox_exists(st, "sb-old"));
    ASSERT_FALSE(exec_exists(st, "ex-old-1"));
    ASSERT_FALSE(exec_exists(st, "ex-old-2"));
    ASSERT_TRUE(sandbox_exists(st, "sb-edge")); /* ended exactly at the cutoff */
    ASSERT_TRUE(sandbox_exists(st, "sb-new"));
    ASSERT_TRUE(sandbox_exists(st, "sb-live"));
    ASSERT_TRUE(exec_exists(st, "ex-live"));
    ASSERT_TRUE(exec_exists(st, "ex-new"));
    /* the purged name is free again */
    put_sandbox(st, "sb-again", "old", "running", "{}", 5);
    ASSERT_EQ_INT(sk_store_sandbox_purge(st, 500, &err), 0);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM execs"), 2);
    sk_store_close(st);
    fx_done(&f);
}

TEST(execs_insert_get_update_list)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    put_sandbox(st, "sb-1", NULL, "running", "{}", 1);
    put_sandbox(st, "sb-2", NULL, "running", "{}", 2);
    put_exec(st, "ex-b", "sb-1", 20);
    put_exec(st, "ex-a", "sb-1", 10);
    put_exec(st, "ex-c", "sb-2", 15);
    struct sk_exec_rec e = {.id = (char *)"ex-p",
                            .sandbox_id = (char *)"sb-1",
                            .argv_json = (char *)"[\"bash\"]",
                            .state = (char *)"running",
                            .exit_code = -1,
                            .created_at = 30,
                            .pty = true};
    ASSERT_OK(sk_store_exec_insert(st, &e, &err));

    struct sk_exec_rec g;
    ASSERT_OK(sk_store_exec_get(st, "ex-p", &g, &err));
    ASSERT_EQ_STR(g.id, "ex-p");
    ASSERT_EQ_STR(g.sandbox_id, "sb-1");
    ASSERT_EQ_STR(g.argv_json, "[\"bash\"]");
    ASSERT_EQ_STR(g.state, "running");
    ASSERT_EQ_INT(g.exit_code, -1);
    ASSERT_EQ_INT(g.signal, 0);
    ASSERT_FALSE(g.timed_out);
    ASSERT_EQ_INT(g.created_at, 30);
    ASSERT_TRUE(g.pty);
    sk_exec_rec_release(&g);

    struct sk_exec_rec u = {.id = (char *)"ex-p",
                            .state = (char *)"exited",
                            .exit_code = 137,
                            .signal = 9,
                            .timed_out = true,
                            .ended_at = 99};
    ASSERT_OK(sk_store_exec_update(st, &u, &err));
    ASSERT_OK(sk_store_exec_get(st, "ex-p", &g, &err));
    ASSERT_EQ_STR(g.state, "exited");
    ASSERT_EQ_INT(g.exit_code, 137);
    ASSERT_EQ_INT(g.signal, 9);
    ASSERT_TRUE(g.timed_out);
    ASSERT_EQ_INT(g.ended_at, 99);
    ASSERT_EQ_STR(g.argv_json, "[\"bash\"]");
    ASSERT_TRUE(g.pty);
    sk_exec_rec_release(&g);

    struct sk_exec_rec *v = NULL;
    size_t n = 0;
    ASSERT_OK(sk_store_exec_list(st, "sb-1", &v, &n, &err));
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_STR(v[0].id, "ex-a");
    ASSERT_EQ_STR(v[1].id, "ex-b");
    ASSERT_EQ_STR(v[2].id, "ex-p");
    sk_exec_recs_free(v, n);
    put_sandbox(st, "sb-empty", NULL, "running", "{}", 3);
    ASSERT_OK(sk_store_exec_list(st, "sb-empty", &v, &n, &err));
    ASSERT_EQ_INT(n, 0);
    sk_exec_recs_free(v, n);

    ASSERT_EQ_INT(sk_store_exec_get(st, "ex-zzz", &g, &err), -ENOENT);
    ASSERT_EQ_STR(err.msg, "exec 'ex-zzz' not found");
    u.id = (char *)"ex-zzz";
    ASSERT_EQ_INT(sk_store_exec_update(st, &u, &err), -ENOENT);
    e.id = (char *)"ex-orphan";
    e.sandbox_id = (char *)"sb-gone";
    ASSERT_EQ_INT(sk_store_exec_insert(st, &e, &err), -ENOENT);
    ASSERT_EQ_STR(err.msg, "sandbox 'sb-gone' not found");
    ASSERT_FALSE(exec_exists(st, "ex-orphan"));
    e.id = (char *)"ex-a";
    e.sandbox_id = (char *)"sb-1";
    ASSERT_EQ_INT(sk_store_exec_insert(st, &e, &err), -EEXIST);
    ASSERT_EQ_STR(err.msg, "an exec with id 'ex-a' already exists");
    sk_store_close(st);
    fx_done(&f);
}

TEST(a_write_survives_a_process_that_exits_without_closing)
{
    struct fx f;
    fx_init(&f);
    sk_store_close(fx_open(&f));
    pid_t pid = fork();
    ASSERT_GE_INT(pid, 0);
    if (pid == 0) {
        struct sk_error err = {0};
        struct sk_store *st = NULL;
        if (sk_store_open(f.path, &st, &err) < 0)
            _exit(2);
        struct sk_sandbox_rec s = {.id = (char *)"sb-durable",
                                   .name = (char *)"keep",
                                   .state = (char *)"running",
                                   .created_at = 77,
                                   .exit_code = -1};
        if (sk_store_sandbox_insert(st, &s, &err) < 0)
            _exit(3);
        struct sk_token_rec t = {.id = "feedfacefeedface", .name = (char *)"t", .role = (char *)"admin"};
        if (sk_store_token_insert(st, &t, &err) < 0)
            _exit(4);
        _exit(0); /* no close, no checkpoint, no atexit */
    }
    int status = 0;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);

    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    struct sk_sandbox_rec g;
    ASSERT_OK(sk_store_sandbox_get(st, "keep", &g, &err));
    ASSERT_EQ_STR(g.id, "sb-durable");
    ASSERT_EQ_INT(g.created_at, 77);
    sk_sandbox_rec_release(&g);
    struct sk_token_rec t;
    ASSERT_OK(sk_store_token_get(st, "feedfacefeedface", &t, &err));
    sk_token_rec_release(&t);
    sk_store_close(st);
    fx_done(&f);
}

TEST(values_that_look_like_sql_are_stored_verbatim)
{
    struct fx f;
    fx_init(&f);
    struct sk_store *st = fx_open(&f);
    struct sk_error err = {0};
    const char *evil_name = "x'); DROP TABLE sandboxes; --";
    const char *evil_tags = "{\"k\":\"v' OR '1'='1\",\"q\":\"\\\"; DELETE FROM tokens; --\"}";
    put_token(st, "abcdefabcdefabcd", "Robert'); DROP TABLE tokens;--", "admin", 1, 0);
    put_sandbox(st, "sb-evil", evil_name, "running", evil_tags, 1);
    put_sandbox(st, "sb-plain", "plain", "running", "{\"k\":\"v\"}", 2);

    struct sk_sandbox_rec g;
    ASSERT_OK(sk_store_sandbox_get(st, evil_name, &g, &err));
    ASSERT_EQ_STR(g.id, "sb-evil");
    ASSERT_EQ_STR(g.name, evil_name);
    ASSERT_EQ_STR(g.tags_json, evil_tags);
    sk_sandbox_rec_release(&g);

    /* the injected value matches only itself */
    const char *keys[] = {"k"};
    const char *vals[] = {"v' OR '1'='1"};
    struct sk_sandbox_filter flt = {.tag_keys = keys, .tag_values = vals, .n_tags = 1};
    char *ids = list_ids(st, &flt);
    ASSERT_EQ_STR(ids, "sb-evil");
    free(ids);
    const char *k2[] = {"q"};
    const char *v2[] = {"\"; DELETE FROM tokens; --"};
    struct sk_sandbox_filter flt2 = {.tag_keys = k2, .tag_values = v2, .n_tags = 1};
    ids = list_ids(st, &flt2);
    ASSERT_EQ_STR(ids, "sb-evil");
    free(ids);
    struct sk_sandbox_filter by_name = {.name = "plain' OR 1=1 --"};
    ids = list_ids(st, &by_name);
    ASSERT_EQ_STR(ids, "");
    free(ids);

    struct sk_token_rec t;
    ASSERT_OK(sk_store_token_get(st, "abcdefabcdefabcd", &t, &err));
    ASSERT_EQ_STR(t.name, "Robert'); DROP TABLE tokens;--");
    sk_token_rec_release(&t);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM sandboxes"), 2);
    ASSERT_EQ_INT(raw_int(f.path, "SELECT count(*) FROM tokens"), 1);
    sk_store_close(st);
    fx_done(&f);
}
