/* pool.h - the warm pool: sandboxes made ahead of demand.
 *
 * A pool holds, per key (image, writable-layer size, network mode), ready
 * sandboxes whose namespaces, cgroup, root filesystem and skiff-init exist
 * and answer. sk_pool_claim() hands one out and applies what is particular
 * to the request (cgroup limits, lifetime) with a few cgroup writes, no
 * mounts and no namespace creation; a miss tells the caller to create one
 * cold. A claimed sandbox is removed from the pool under its lock before it
 * is returned, so it is never handed out twice.
 *
 * Refill runs on a thread of its own, one sandbox at a time, at a lower CPU
 * priority (nice +10, inherited by the setup processes it forks), so that
 * requests are served first when CPUs are short. Each key's target size
 * follows demand: the most claims (hits and misses) seen in any one second
 * of the last ten, bounded by the key's configured minimum and maximum, and
 * falls back to the minimum once no claim came for idle_ms. Keys nobody
 * configured appear on their first claim (minimum 0), up to SK_POOL_KEYS_MAX.
 *
 * Pooled sandboxes are persistent (runtime/sandbox.h) but known to no
 * store: after a crash of their owner the next start's stale sweep
 * (sk_runtime_cleanup_stale) removes them; sk_pool_free() destroys them.
 * A ready sandbox whose pid 1 died, or whose image directory changed or
 * disappeared since it was made, is discarded at claim (and by the refill
 * thread's periodic check) instead of being handed out.
 *
 * Threads: the sk_pool_* functions may be called from any one thread (the
 * owner's event loop); the refill thread is internal. The runtime must not
 * be used by other threads than the owner and this pool.
 */
#ifndef SK_RUNTIME_POOL_H
#define SK_RUNTIME_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"

#define SK_POOL_KEYS_MAX 16
#define SK_POOL_KEY_MAX 160 /* bytes of a key's text form, NUL included */

/* One configured key. image NULL is "host"; disk_bytes 0 is the default. */
struct sk_pool_key_config {
    const char *image;
    int64_t disk_bytes;
    enum sk_net_mode net;
    unsigned min; /* always keep this many ready */
    unsigned max; /* never more than this many ready; 0: the pool's max_per_key */
};

struct sk_pool_config {
    const struct sk_pool_key_config *keys; /* configured keys (copied) */
    size_t n_keys;
    unsigned max_per_key;   /* bound of adaptive growth for every key; 0: 64 */
    unsigned max_total;     /* ready sandboxes over all keys; 0: 256 */
    int64_t idle_ms;        /* no claim for this long: back to the minimum; 0: 60 s */
    bool adaptive_new_keys; /* pool keys first seen in a claim (else: only configured ones) */
    int nice;               /* refill thread's nice value; 0: 10 */
    /* A refill waits until no claim came for quiet_ms (0: 20 ms) while its
     * key holds more than half its target: making one takes locks that
     * stall every fork on the host for a moment (cgroup v1 migration),
     * which the first commands of a just-claimed sandbox should not meet.
     * Below that, refills go on regardless. */
    int64_t quiet_ms;
    /* Optional: called on the refill thread for each new sandbox before it
     * is offered (e.g. to create the owner's per-sandbox directories); a
     * negative return discards the sandbox. */
    int (*prepare)(void *ctx, struct sk_sandbox *sb);
    void *prepare_ctx;
};

struct sk_pool;

/* sk_pool_new - a pool for runtime rt (borrowed; must outlive the pool),
 * its refill thread started. EINVAL for a bad key (message names it). */
int sk_pool_new(struct sk_runtime *rt, const struct sk_pool_config *cfg, struct sk_pool **out, struct sk_error *err);

/* sk_pool_free - stop the refill thread (waiting for a creation in
 * progress) and destroy every ready sandbox. NULL is a no-op. */
void sk_pool_free(struct sk_pool *p);

/* sk_pool_claim - take a ready sandbox for spec (its image, disk_bytes and
 * net choose the key; spec must be persistent and not die_with_owner, as
 * the pool's sandboxes are) and apply spec's limits and timeout to it.
 * Returns 1 with *out (the caller owns it now), or 0 on a miss (no ready
 * sandbox for that key, or the one found was unusable and discarded): then
 * create it cold with sk_sandbox_create. Negative only when applying the
 * limits failed (the claimed sandbox is destroyed; EINVAL for limits the
 * cgroup refuses). Every call counts as demand for the key. */
int sk_pool_claim(struct sk_pool *p, const struct sk_sandbox_spec *spec, struct sk_sandbox **out, struct sk_error *err);

/* sk_pool_key_format - the text form of a key: "<image>/<disk>/<net>",
 * e.g. "host/1g/none" (disk in the largest exact unit: k, m, g). */
void sk_pool_key_format(const char *image, int64_t disk_bytes, enum sk_net_mode net, char *buf, size_t size);

/* What sk_pool_stats reports per key. */
struct sk_pool_key_stats {
    char key[SK_POOL_KEY_MAX];
    unsigned ready, target, min, max;
    uint64_t hits, misses, discarded, created, failed;
    bool refilling; /* the refill thread is making one for this key now */
    /* refill latency (one sandbox made by the refill thread): a histogram
     * with cumulative bucket counts for SK_POOL_REFILL_BUCKETS bounds */
    uint64_t refill_buckets[8];
    uint64_t refill_count;
    double refill_sum_s;
};
#define SK_POOL_REFILL_BUCKETS \
    { \
        0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0 \
    }

/* sk_pool_stats - a snapshot of every key (at most `max`); returns the
 * number of keys. */
size_t sk_pool_stats(struct sk_pool *p, struct sk_pool_key_stats *out, size_t max);

/* sk_pool_wait_ready - block up to timeout_ms until every key holds at
 * least its target (for tests and benchmarks). true when it does. */
bool sk_pool_wait_ready(struct sk_pool *p, int64_t timeout_ms);

#endif
