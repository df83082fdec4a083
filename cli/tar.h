/* tar.h - directory trees as tar streams for `skiff sandbox cp`, on
 * libarchive: a local tree produced as an archive step by step (for a
 * streamed upload, never held whole), and an archive from a sandbox
 * extracted below a local directory without trusting its names.
 *
 * Host files named by a sandbox are written carefully (the sandbox is
 * untrusted): every name must be relative with no "", "." or ".." parts;
 * directories are walked and created one component at a time with
 * O_NOFOLLOW below an fd of the destination, so a symlink - planted there
 * beforehand or by a hostile archive - cannot redirect a write outside it;
 * a file goes to a temporary name and is renamed into place when complete;
 * only permission bits 0777 are applied (never setuid/setgid, never the
 * archive's owners). The helpers for that are exported for cp's walk. */
#ifndef SK_CLI_TAR_H
#define SK_CLI_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

/* ---- a local tree as a tar stream ---------------------------------------------- */

struct sk_tar_src;

/* sk_tar_src_new - an archive of the directory `dir`'s contents (names
 * relative to it), produced as it is read. Symlinks and special files are
 * skipped with a warning on stderr. Free with sk_tar_src_free. */
int sk_tar_src_new(const char *dir, struct sk_tar_src **out, struct sk_client_error *e);

/* sk_tar_src_read - a curl read callback (ctx: the sk_tar_src): the next
 * bytes of the archive, 0 at its end, CURL_READFUNC_ABORT after a local
 * error (see sk_tar_src_error). */
size_t sk_tar_src_read(char *buf, size_t size, size_t nmemb, void *ctx);

/* sk_tar_src_error - the local error that stopped the archive, or NULL. */
const struct sk_client_error *sk_tar_src_error(const struct sk_tar_src *s);
unsigned sk_tar_src_skipped(const struct sk_tar_src *s);
void sk_tar_src_free(struct sk_tar_src *s);

/* ---- a tar stream into a local tree ---------------------------------------------- */

struct sk_tar_stats {
    uint64_t files, dirs, bytes, skipped;
};

/* sk_tar_read_fn - the archive's next piece (as sk_client_pull_read). */
typedef ssize_t (*sk_tar_read_fn)(void *ctx, const void **data, struct sk_client_error *e);

/* sk_tar_extract - read an archive (plain or compressed) through `read` and
 * write its directories and regular files below rootfd (`shown` names it
 * in messages); other entry types are skipped with a warning. Returns 0 or
 * -1 (e set); what was extracted before an error stays. */
int sk_tar_extract(int rootfd, const char *shown, sk_tar_read_fn read, void *ctx, struct sk_tar_stats *st,
                   struct sk_client_error *e);

/* ---- careful local writes ---------------------------------------------------------- */

/* sk_tar_safe_rel - a relative path of plain components (no "", ".", ".."). */
bool sk_tar_safe_rel(const char *p);

/* sk_tar_open_dirs - walk `rel` below rootfd one component at a time,
 * creating directories (0755) as needed and following no symlink; with
 * leave_leaf the last component is not walked and *leaf points at it in
 * rel. Returns a directory fd (O_CLOEXEC) or -1 (errno set). */
int sk_tar_open_dirs(int rootfd, const char *rel, bool leave_leaf, const char **leaf);

/* sk_tar_tmpfile - create a new temporary file in dirfd (mode 0600, its
 * name in tmp); returns the fd or -1 (errno set). */
int sk_tar_tmpfile(int dirfd, char tmp[64]);

#endif
