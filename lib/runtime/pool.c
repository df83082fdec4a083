/* pool.c - the warm pool (see pool.h). One mutex guards the keys and
 * their ready lists; the refill thread never holds it while it builds or
 * destroys a sandbox, so a claim waits at most for a list operation. */
#include "runtime/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "image/image.h"

#define DEMAND_WINDOW_S 10 /* target = most claims in one second of the last 10 */
#define HEALTH_CHECK_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000

struct pooled {
    struct sk_sandbox *sb;
    dev_t img_dev; /* its image's top layer when it was made */
    ino_t img_ino;
    char *layer; /* that layer's path */
    struct pooled *next;
};

struct key {
    char *image; /* "host" or an absolute rootfs path */
    int64_t disk;
    enum sk_net_mode net;
    char text[SK_POOL_KEY_MAX];
    unsigned min, max;
    struct pooled *head, *tail; /* oldest first: claims take the head */
    unsigned ready;
    bool refilling;
    uint64_t hits, misses, discarded, created, failed;
    uint32_t demand[DEMAND_WINDOW_S];
    int64_t demand_sec[DEMAND_WINDOW_S];
    int64_t last_claim_ns;
    int64_t backoff_until_ns;
    int64_t backoff_ms;
    uint64_t refill_buckets[8];
    uint64_t refill_count;
    double refill_sum_s;
};

struct sk_pool {
    struct sk_runtime *rt;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* the refill thread waits here */
    pthread_cond_t ready; /* sk_pool_wait_ready waits here */
    pthread_t thread;
    bool thread_started;
    bool stop;
    struct key keys[SK_POOL_KEYS_MAX];
    size_t n_keys;
    struct pooled *graveyard; /* unusable ready sandboxes, destroyed by the refill thread */
    unsigned max_per_key, max_total, total_ready;
    int64_t idle_ns;
    int64_t quiet_ns;
    int64_t last_claim_ns; /* of any key */
    bool adaptive_new_keys;
    int nice;
    int (*prepare)(void *ctx, struct sk_sandbox *sb);
    void *prepare_ctx;
};

static const double refill_bounds[8] = SK_POOL_REFILL_BUCKETS;

static int64_t disk_norm(int64_t disk)
{
    return disk > 0 ? disk : SK_SANDBOX_DEFAULT_DISK;
}

void sk_pool_key_format(const char *image, int64_t disk_bytes, enum sk_net_mode net, char *buf, size_t size)
{
    int64_t d = disk_norm(disk_bytes);
    const char *unit = "";
    if (d % (1024LL * 1024 * 1024) == 0) {
        d /= 1024LL * 1024 * 1024;
        unit = "g";
    } else if (d % (1024 * 1024) == 0) {
        d /= 1024 * 1024;
        unit = "m";
    } else if (d % 1024 == 0) {
        d /= 1024;
        unit = "k";
    }
    snprintf(buf, size, "%s/%lld%s/%s", image != NULL ? image : "host", (long long)d, unit, sk_net_mode_name(net));
}

/* image_identity - device and inode of the image's top layer now: a
 * pooled sandbox whose image was removed or replaced is not handed out. */
static int image_identity(struct sk_pool *p, const char *image, dev_t *dev, ino_t *ino, char **layer)
{
    struct sk_image img = {0};
    struct sk_error e = {0};
    int ret = sk_image_resolve(sk_runtime_state_dir(p->rt), image, &img, &e);
    if (ret == 0 && img.n_layers > 0) {
        struct stat st;
        if (stat(img.layers[img.n_layers - 1], &st) == 0) {
            *dev = st.st_dev;
            *ino = st.st_ino;
            if (layer != NULL)
                *layer = xstrdup(img.layers[img.n_layers - 1]);
        } else {
            ret = -errno;
        }
    } else if (ret == 0) {
        ret = -ENOENT;
    }
    sk_image_release(&img);
    return ret;
}

static struct key *key_find(struct sk_pool *p, const char *image, int64_t disk, enum sk_net_mode net)
{
    for (size_t i = 0; i < p->n_keys; i++) {
        struct key *k = &p->keys[i];
        if (k->disk == disk && k->net == net && strcmp(k->image, image) == 0)
            return k;
    }
    return NULL;
}

static struct key *key_add(struct sk_pool *p, const char *image, int64_t disk, enum sk_net_mode net, unsigned min,
                           unsigned max)
{
    if (p->n_keys >= SK_POOL_KEYS_MAX)
        return NULL;
    struct key *k = &p->keys[p->n_keys++];
    memset(k, 0, sizeof(*k));
    k->image = xstrdup(image);
    k->disk = disk;
    k->net = net;
    k->min = min;
    k->max = max;
    sk_pool_key_format(image, disk, net, k->text, sizeof(k->text));
    return k;
}

static void note_demand(struct key *k, int64_t now_ns)
{
    int64_t sec = now_ns / 1000000000;
    size_t slot = (size_t)(sec % DEMAND_WINDOW_S);
    if (k->demand_sec[slot] != sec) {
        k->demand_sec[slot] = sec;
        k->demand[slot] = 0;
    }
    k->demand[slot]++;
    k->last_claim_ns = now_ns;
}

/* key_target - how many ready sandboxes the key should hold now. */
static unsigned key_target(const struct sk_pool *p, const struct key *k, int64_t now_ns)
{
    unsigned t = k->min;
    if (k->last_claim_ns != 0 && now_ns - k->last_claim_ns < p->idle_ns) {
        int64_t sec = now_ns / 1000000000;
        for (size_t i = 0; i < DEMAND_WINDOW_S; i++)
            if (sec - k->demand_sec[i] < DEMAND_WINDOW_S && k->demand[i] > t)
                t = k->demand[i];
    }
    return t < k->max ? t : k->max;
}

static void push_ready(struct sk_pool *p, struct key *k, struct pooled *e)
{
    e->next = NULL;
    if (k->tail != NULL)
        k->tail->next = e;
    else
        k->head = e;
    k->tail = e;
    k->ready++;
    p->total_ready++;
}

static struct pooled *pop_ready(struct sk_pool *p, struct key *k)
{
    struct pooled *e = k->head;
    if (e == NULL)
        return NULL;
    k->head = e->next;
    if (k->head == NULL)
        k->tail = NULL;
    k->ready--;
    p->total_ready--;
    e->next = NULL;
    return e;
}

/* unlink_dead - take every ready sandbox of k whose pid 1 is gone, or
 * whose image is not (dev, ino) any more (ino 0: unknown, keep), off its
 * list onto *dead (caller holds the lock). */
static void unlink_dead(struct sk_pool *p, struct key *k, dev_t dev, ino_t ino, struct pooled **dead)
{
    struct pooled **pp = &k->head, *prev = NULL;
    while (*pp != NULL) {
        struct pooled *e = *pp;
        bool same_image = ino == 0 || (e->img_dev == dev && e->img_ino == ino);
        if (same_image && sk_sandbox_is_alive(e->sb)) {
            prev = e;
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        if (k->tail == e)
            k->tail = prev;
        k->ready--;
        p->total_ready--;
        k->discarded++;
        e->next = *dead;
        *dead = e;
    }
}

static void destroy_list(struct pooled *list)
{
    while (list != NULL) {
        struct pooled *next = list->next;
        sk_sandbox_free(list->sb);
        free(list->layer);
        free(list);
        list = next;
    }
}

static void note_refill(struct key *k, double secs)
{
    for (size_t i = 0; i < SK_ARRAY_SIZE(refill_bounds); i++)
        if (secs <= refill_bounds[i])
            k->refill_buckets[i]++;
    k->refill_count++;
    k->refill_sum_s += secs;
}

/* pick_work - under the lock: the key most short of its target (a refill),
 * else a key holding more than its target (a shrink: *surplus gets the
 * sandbox to destroy). NULL when there is nothing to do. */
static struct key *pick_work(struct sk_pool *p, int64_t now, struct pooled **surplus)
{
    struct key *best = NULL;
    unsigned best_gap = 0;
    for (size_t i = 0; i < p->n_keys; i++) {
        struct key *k = &p->keys[i];
        unsigned t = key_target(p, k, now);
        if (k->ready > t && *surplus == NULL) {
            *surplus = pop_ready(p, k);
            continue;
        }
        if (k->ready >= t || now < k->backoff_until_ns)
            continue;
        /* A claim just happened: let its first commands run - unless the
         * key is running low (half its target or less), when a refill
         * matters more than the moment of contention it costs. */
        if (k->ready > 0 && k->ready * 2 > t && now - p->last_claim_ns < p->quiet_ns)
            continue;
        if (t - k->ready > best_gap) {
            best_gap = t - k->ready;
            best = k;
        }
    }
    if (best != NULL && p->total_ready >= p->max_total)
        best = NULL;
    return best;
}

static void *refill_main(void *arg)
{
    struct sk_pool *p = arg;
    /* Below the event loop: setup processes forked from here inherit it. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->nice);
    int64_t next_check = sk_now_ns() + (int64_t)HEALTH_CHECK_MS * 1000000;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int64_t now = sk_now_ns();
        struct pooled *dead = steal_pointer(&p->graveyard);
        if (now >= next_check) {
            /* Each image's identity, looked up without the lock (a claim must
             * never wait for file system calls of this low-priority thread):
             * a key's image string never changes, and keys are only added. */
            size_t n = p->n_keys;
            dev_t devs[SK_POOL_KEYS_MAX];
            ino_t inos[SK_POOL_KEYS_MAX];
            pthread_mutex_unlock(&p->mu);
            for (size_t i = 0; i < n; i++)
                if (image_identity(p, p->keys[i].image, &devs[i], &inos[i], NULL) < 0)
                    devs[i] = 0, inos[i] = (ino_t)-1; /* gone: matches no sandbox */
            pthread_mutex_lock(&p->mu);
            for (size_t i = 0; i < n; i++)
                unlink_dead(p, &p->keys[i], devs[i], inos[i], &dead);
            next_check = now + (int64_t)HEALTH_CHECK_MS * 1000000;
        }
        struct pooled *surplus = NULL;
        struct key *k = pick_work(p, now, &surplus);
        if (surplus != NULL) {
            surplus->next = dead;
            dead = surplus;
        }
        if (dead != NULL) {
            pthread_mutex_unlock(&p->mu);
            destroy_list(dead);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (k == NULL) {
            /* Re-check as demand ages out, or when a claim's quiet period
             * (see pick_work) ends; a claim wakes us at once. */
            int64_t wait_ns = 200 * 1000000LL;
            int64_t since = now - p->last_claim_ns;
            if (since < p->quiet_ns && p->quiet_ns - since + 1000000 < wait_ns)
                wait_ns = p->quiet_ns - since + 1000000;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + wait_ns;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&p->wake, &p->mu, &ts);
            continue;
        }
        k->refilling = true;
        _cleanup_free_ char *image = xstrdup(k->image);
        struct sk_sandbox_spec spec = {.image = image, .disk_bytes = k->disk, .net = k->net, .persistent = true};
        pthread_mutex_unlock(&p->mu);

        struct sk_error err = {0};
        struct sk_sandbox *sb = NULL;
        int64_t t0 = sk_now_ns();
        int ret = sk_sandbox_create(p->rt, &spec, &sb, &err);
        double secs = (double)(sk_now_ns() - t0) / 1e9;
        struct pooled *e = NULL;
        if (ret == 0) {
            sk_sandbox_mark_cpu_baseline(sb);
            e = xcalloc(1, sizeof(*e));
            e->sb = sb;
            if (image_identity(p, image, &e->img_dev, &e->img_ino, &e->layer) < 0) {
                ret = sk_error_setv(&err, ENOENT, "image '%s' is gone", image);
                destroy_list(steal_pointer(&e));
            } else if (p->prepare != NULL && p->prepare(p->prepare_ctx, sb) < 0) {
                ret = sk_error_setv(&err, EIO, "preparing sandbox '%s' failed", sk_sandbox_id(sb));
                destroy_list(steal_pointer(&e));
            }
        }

        pthread_mutex_lock(&p->mu);
        k->refilling = false;
        if (ret == 0) {
            k->created++;
            k->backoff_ms = 0;
            note_refill(k, secs);
            push_ready(p, k, steal_pointer(&e));
            pthread_cond_broadcast(&p->ready);
        } else {
            k->failed++;
            k->backoff_ms = k->backoff_ms == 0 ? BACKOFF_MIN_MS : k->backoff_ms * 2;
            if (k->backoff_ms > BACKOFF_MAX_MS)
                k->backoff_ms = BACKOFF_MAX_MS;
            k->backoff_until_ns = sk_now_ns() + k->backoff_ms * 1000000;
            sk_log_warn("pool '%s': refill failed (retry in %lld ms): %s", k->text, (long long)k->backoff_ms, err.msg);
            pthread_cond_broadcast(&p->ready);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int sk_pool_new(struct sk_runtime *rt, const struct sk_pool_config *cfg, struct sk_pool **out, struct sk_error *err)
{
    *out = NULL;
    struct sk_pool *p = xcalloc(1, sizeof(*p));
    p->rt = rt;
    p->max_per_key = cfg->max_per_key > 0 ? cfg->max_per_key : 64;
    p->max_total = cfg->max_total > 0 ? cfg->max_total : 256;
    p->idle_ns = (cfg->idle_ms > 0 ? cfg->idle_ms : 60000) * 1000000;
    p->adaptive_new_keys = cfg->adaptive_new_keys;
    p->nice = cfg->nice != 0 ? cfg->nice : 10;
    p->quiet_ns = (cfg->quiet_ms > 0 ? cfg->quiet_ms : 20) * 1000000;
    p->prepare = cfg->prepare;
    p->prepare_ctx = cfg->prepare_ctx;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&p->wake, &ca);
    pthread_cond_init(&p->ready, &ca);
    pthread_condattr_destroy(&ca);
    int ret = 0;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        const struct sk_pool_key_config *kc = &cfg->keys[i];
        const char *image = kc->image != NULL ? kc->image : "host";
        struct sk_sandbox_spec spec = {
            .image = image, .disk_bytes = kc->disk_bytes, .net = kc->net, .persistent = true};
        char text[SK_POOL_KEY_MAX];
        sk_pool_key_format(image, kc->disk_bytes, kc->net, text, sizeof(text));
        unsigned max = kc->max > 0 ? kc->max : p->max_per_key;
        if ((ret = sk_sandbox_spec_validate(&spec, err)) < 0) {
            sk_error_prefix(err, "pool key '%s'", text);
            goto fail;
        }
        if (strcmp(image, "host") != 0 && image[0] != '/') {
            ret = sk_error_setv(err, EINVAL, "pool key '%s': image must be 'host' or an absolute rootfs path", text);
            goto fail;
        }
        if (kc->min > max) {
            ret = sk_error_setv(err, EINVAL, "pool key '%s': min %u is above max %u", text, kc->min, max);
            goto fail;
        }
        if (key_find(p, image, disk_norm(kc->disk_bytes), kc->net) != NULL) {
            ret = sk_error_setv(err, EINVAL, "pool key '%s' is configured twice", text);
            goto fail;
        }
        if (key_add(p, image, disk_norm(kc->disk_bytes), kc->net, kc->min, max) == NULL) {
            ret = sk_error_setv(err, E2BIG, "at most %d pool keys", SK_POOL_KEYS_MAX);
            goto fail;
        }
    }
    int e = pthread_create(&p->thread, NULL, refill_main, p);
    if (e != 0) {
        ret = sk_error_set(err, e, "start the pool's refill thread");
        goto fail;
    }
    p->thread_started = true;
    for (size_t i = 0; i < p->n_keys; i++)
        sk_log_info("pool '%s': min %u, max %u", p->keys[i].text, p->keys[i].min, p->keys[i].max);
    *out = p;
    return 0;
fail:
    sk_pool_free(p);
    return ret;
}

void sk_pool_free(struct sk_pool *p)
{
    if (p == NULL)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    destroy_list(steal_pointer(&p->graveyard));
    for (size_t i = 0; i < p->n_keys; i++) {
        struct key *k = &p->keys[i];
        struct pooled *list = NULL;
        struct pooled *e;
        while ((e = pop_ready(p, k)) != NULL) {
            e->next = list;
            list = e;
        }
        destroy_list(list);
        free(k->image);
    }
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->ready);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int sk_pool_claim(struct sk_pool *p, const struct sk_sandbox_spec *spec, struct sk_sandbox **out, struct sk_error *err)
{
    *out = NULL;
    /* What a pooled sandbox cannot become: those are always made cold. */
    if (!spec->persistent || spec->die_with_owner || spec->n_mounts > 0 || spec->hostname != NULL)
        return 0;
    const char *image = spec->image != NULL ? spec->image : "host";
    int64_t disk = disk_norm(spec->disk_bytes);
    int ret = sk_sandbox_spec_validate(spec, err);
    if (ret < 0)
        return ret;

    int64_t now = sk_now_ns();
    pthread_mutex_lock(&p->mu);
    struct key *k = key_find(p, image, disk, spec->net);
    if (k == NULL && p->adaptive_new_keys && (strcmp(image, "host") == 0 || image[0] == '/'))
        k = key_add(p, image, disk, spec->net, 0, p->max_per_key);
    if (k == NULL) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    note_demand(k, now);
    p->last_claim_ns = now;
    struct pooled *e = pop_ready(p, k);
    if (e == NULL)
        k->misses++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (e == NULL)
        return 0;

    /* Checked outside the lock: a dead sandbox or a changed image is
     * discarded (destroyed here: it is ours now) and the claim misses. */
    /* One stat of the layer the sandbox was made from (the refill thread's
     * check each second resolves the image afresh, symlinks included). */
    struct stat lst;
    dev_t dev = 0;
    ino_t ino = (ino_t)-1; /* gone: matches no sandbox */
    if (stat(e->layer, &lst) == 0)
        dev = lst.st_dev, ino = lst.st_ino;
    bool usable = sk_sandbox_is_alive(e->sb) && dev == e->img_dev && ino == e->img_ino;
    if (!usable) {
        pthread_mutex_lock(&p->mu);
        k->discarded++;
        k->misses++;
        if (sk_sandbox_is_alive(e->sb)) {
            /* its image changed: so did every ready one's of the key made
             * before; the refill thread destroys them */
            unlink_dead(p, k, dev, ino, &p->graveyard);
            pthread_cond_signal(&p->wake);
        }
        pthread_mutex_unlock(&p->mu);
        sk_log_info("pool '%s': discarded sandbox '%s' (%s)", k->text, sk_sandbox_id(e->sb),
                    sk_sandbox_is_alive(e->sb) ? "its image changed" : "its init is gone");
        destroy_list(e);
        return 0;
    }
    struct sk_sandbox *sb = e->sb;
    free(e->layer);
    free(e);
    ret = sk_sandbox_claim(sb, &spec->limits, spec->timeout_ms, err);
    pthread_mutex_lock(&p->mu);
    if (ret == 0)
        k->hits++;
    else
        k->misses++;
    pthread_mutex_unlock(&p->mu);
    if (ret < 0) {
        sk_sandbox_free(sb);
        return ret;
    }
    *out = sb;
    return 1;
}

size_t sk_pool_stats(struct sk_pool *p, struct sk_pool_key_stats *out, size_t max)
{
    int64_t now = sk_now_ns();
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (; n < p->n_keys && n < max; n++) {
        const struct key *k = &p->keys[n];
        struct sk_pool_key_stats *s = &out[n];
        memset(s, 0, sizeof(*s));
        snprintf(s->key, sizeof(s->key), "%s", k->text);
        s->ready = k->ready;
        s->target = key_target(p, k, now);
        s->min = k->min;
        s->max = k->max;
        s->hits = k->hits;
        s->misses = k->misses;
        s->discarded = k->discarded;
        s->created = k->created;
        s->failed = k->failed;
        s->refilling = k->refilling;
        memcpy(s->refill_buckets, k->refill_buckets, sizeof(s->refill_buckets));
        s->refill_count = k->refill_count;
        s->refill_sum_s = k->refill_sum_s;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

static bool all_ready(const struct sk_pool *p, int64_t now)
{
    for (size_t i = 0; i < p->n_keys; i++) {
        const struct key *k = &p->keys[i];
        unsigned t = key_target(p, k, now);
        if (k->ready < t && p->total_ready < p->max_total)
            return false;
    }
    return true;
}

bool sk_pool_wait_ready(struct sk_pool *p, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (timeout_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&p->mu);
    bool ok;
    while (!(ok = all_ready(p, sk_now_ns())))
        if (pthread_cond_timedwait(&p->ready, &p->mu, &ts) == ETIMEDOUT) {
            ok = all_ready(p, sk_now_ns());
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return ok;
}
