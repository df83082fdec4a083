/* store.h - skiffd's durable state: an embedded SQLite database (WAL) in the
 * data directory, with versioned schema migrations.
 *
 * Every user-visible state change is committed here before it is
 * acknowledged (each write function commits before it returns). One
 * struct sk_store per process; not thread-safe (the daemon's event loop owns
 * it). Times are Unix epoch milliseconds. Strings are copied in and out; a
 * record's heap fields are released with the matching _release function.
 *
 * Errors: ENOENT for an unknown id, EEXIST for a unique-key clash (sandbox
 * name, token name), EIO for SQLite failures (message carries sqlite3_errmsg),
 * EINVAL for bad arguments.
 */
#ifndef SK_STORE_STORE_H
#define SK_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct sk_store;

/* sk_store_open - open (creating if needed) the database at `path`, switch
 * it to WAL with synchronous=FULL (an acknowledged change survives a power
 * loss), and apply pending migrations in order, each in its own
 * transaction, recording the schema version. The caller closes it. */
int sk_store_open(const char *path, struct sk_store **out, struct sk_error *err);
void sk_store_close(struct sk_store *st);
/* sk_store_schema_version - the applied schema version (>= 1). */
int sk_store_schema_version(struct sk_store *st);

/* ---- tokens ---------------------------------------------------------------- */

#define SK_TOKEN_ID_LEN 16   /* hex characters */
#define SK_TOKEN_HASH_LEN 32 /* BLAKE2b-256 of the secret */

struct sk_token_rec {
    char id[SK_TOKEN_ID_LEN + 1];
    char *name; /* unique among live tokens */
    char *role; /* "admin" for now; roles arrive in a later issue */
    uint8_t hash[SK_TOKEN_HASH_LEN];
    char *created_by; /* token id that created it, or "" for the first admin token */
    int64_t created_at;
    int64_t expires_at; /* 0 = never */
    int64_t revoked_at; /* 0 = live */
    int64_t last_used_at;
};
void sk_token_rec_release(struct sk_token_rec *t);

int sk_store_token_insert(struct sk_store *st, const struct sk_token_rec *t, struct sk_error *err);
int sk_store_token_get(struct sk_store *st, const char *id, struct sk_token_rec *out, struct sk_error *err);
/* List all tokens (revoked ones too), oldest first; *out freed with
 * sk_token_recs_free. */
int sk_store_token_list(struct sk_store *st, struct sk_token_rec **out, size_t *n, struct sk_error *err);
void sk_token_recs_free(struct sk_token_rec *t, size_t n);
/* Revoke: sets revoked_at (ENOENT if unknown; revoking twice is fine). */
int sk_store_token_revoke(struct sk_store *st, const char *id, int64_t now, struct sk_error *err);
int sk_store_token_touch(struct sk_store *st, const char *id, int64_t now, struct sk_error *err);
/* Number of live (not revoked, not expired at `now`) admin tokens. */
int sk_store_token_count_admin(struct sk_store *st, int64_t now, struct sk_error *err);

/* ---- sandboxes ------------------------------------------------------------- */

struct sk_sandbox_rec {
    char *id;        /* "sb-..." */
    char *name;      /* NULL or unique among sandboxes not yet deleted */
    char *state;     /* "creating", "running", "terminated" */
    char *spec_json; /* the create request as accepted (JSON object text) */
    char *tags_json; /* JSON object of string -> string */
    int64_t created_at, started_at, ended_at;
    int exit_code;       /* of the entrypoint, -1 when none/unknown */
    char *reason;        /* NULL while running; "exited", "timeout", "idle", "oom",
                         "terminated", "error", "lost" */
    char *reason_detail; /* error message, or the terminating token id */
    int64_t host_pid;    /* pid 1 of the sandbox on the host, 0 when none */
    char *runtime_json;  /* what re-adoption needs (cgroup, uid slot, ...) */
};
void sk_sandbox_rec_release(struct sk_sandbox_rec *s);

int sk_store_sandbox_insert(struct sk_store *st, const struct sk_sandbox_rec *s, struct sk_error *err);
int sk_store_sandbox_get(struct sk_store *st, const char *id_or_name, struct sk_sandbox_rec *out, struct sk_error *err);
/* Update the mutable columns of an existing row from `s` (state, started_at,
 * ended_at, exit_code, reason, reason_detail, host_pid, runtime_json). */
int sk_store_sandbox_update(struct sk_store *st, const struct sk_sandbox_rec *s, struct sk_error *err);
int sk_store_sandbox_set_tags(struct sk_store *st, const char *id, const char *tags_json, struct sk_error *err);

struct sk_sandbox_filter {
    const char *state;           /* NULL = any */
    const char *name;            /* NULL = any */
    const char *const *tag_keys; /* every key=value pair must match */
    const char *const *tag_values;
    size_t n_tags;
    size_t limit;       /* 1..1000; 0 = 100 */
    const char *cursor; /* opaque, from a previous page; NULL = first page */
};
/* List newest first. *next_cursor (heap, may be NULL when no more) is passed
 * back for the next page; *out freed with sk_sandbox_recs_free. */
int sk_store_sandbox_list(struct sk_store *st, const struct sk_sandbox_filter *f, struct sk_sandbox_rec **out,
                          size_t *n, char **next_cursor, struct sk_error *err);
void sk_sandbox_recs_free(struct sk_sandbox_rec *s, size_t n);
/* Delete terminated sandboxes (and their execs) that ended before `before`.
 * Returns how many were deleted. */
int sk_store_sandbox_purge(struct sk_store *st, int64_t before, struct sk_error *err);

/* ---- execs ------------------------------------------------------------------- */

struct sk_exec_rec {
    char *id; /* "ex-..." */
    char *sandbox_id;
    char *argv_json; /* JSON array */
    char *state;     /* "running", "exited" */
    int exit_code;   /* -1 while running */
    int signal;      /* 0 unless killed by a signal */
    bool timed_out;
    int64_t created_at, ended_at;
    bool pty;
    uint32_t proc_id; /* skiff-init's id of its process (0: unknown) */
};
void sk_exec_rec_release(struct sk_exec_rec *e);

/* Exec writes are committed before they return (a crash of the process
 * loses nothing) but fsync'd with the next sandbox or token write: an exec
 * does not outlive a power loss anyway. */
int sk_store_exec_insert(struct sk_store *st, const struct sk_exec_rec *e, struct sk_error *err);
int sk_store_exec_get(struct sk_store *st, const char *id, struct sk_exec_rec *out, struct sk_error *err);
int sk_store_exec_update(struct sk_store *st, const struct sk_exec_rec *e, struct sk_error *err);
/* Execs of one sandbox, oldest first. */
int sk_store_exec_list(struct sk_store *st, const char *sandbox_id, struct sk_exec_rec **out, size_t *n,
                       struct sk_error *err);
void sk_exec_recs_free(struct sk_exec_rec *e, size_t n);

#endif
