/* metrics.c - a small Prometheus registry. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct series {
    char label[SK_METRICS_LABEL_MAX + 1];
    double value;                                       /* counter, gauge */
    double sum;                                         /* histogram */
    unsigned long long count;                           /* histogram */
    unsigned long long buckets[SK_METRICS_MAX_BUCKETS]; /* histogram, not cumulative */
};

struct sk_metric {
    const char *name;
    const char *help;
    const char *label; /* NULL: unlabelled */
    enum metric_type type;
    double bounds[SK_METRICS_MAX_BUCKETS];
    size_t n_bounds;
    struct series *series;
    size_t n_series;
    struct sk_metric *next;
};

struct sk_metrics {
    struct sk_metric *head, *tail;
};

const double sk_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};
const size_t sk_metrics_latency_buckets_len = SK_ARRAY_SIZE(sk_metrics_latency_buckets);

struct sk_metrics *sk_metrics_new(void)
{
    return xcalloc(1, sizeof(struct sk_metrics));
}

void sk_metrics_free(struct sk_metrics *m)
{
    if (m == NULL)
        return;
    for (struct sk_metric *x = m->head; x != NULL;) {
        struct sk_metric *next = x->next;
        free(x->series);
        free(x);
        x = next;
    }
    free(m);
}

static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static struct sk_metric *add(struct sk_metrics *m, enum metric_type type, const char *name, const char *help,
                             const char *label)
{
    if (!valid_name(name) || (label != NULL && (!valid_name(label) || strcmp(label, "le") == 0)))
        abort();
    struct sk_metric *x = xcalloc(1, sizeof(*x));
    x->name = name;
    x->help = help;
    x->label = label;
    x->type = type;
    x->series = xcalloc(SK_METRICS_MAX_SERIES, sizeof(*x->series));
    if (m->tail != NULL)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    return x;
}

struct sk_metric *sk_metrics_counter(struct sk_metrics *m, const char *name, const char *help, const char *label)
{
    return add(m, METRIC_COUNTER, name, help, label);
}

struct sk_metric *sk_metrics_gauge(struct sk_metrics *m, const char *name, const char *help, const char *label)
{
    return add(m, METRIC_GAUGE, name, help, label);
}

struct sk_metric *sk_metrics_histogram(struct sk_metrics *m, const char *name, const char *help, const char *label,
                                       const double *bounds, size_t n_bounds)
{
    if (n_bounds == 0 || n_bounds > SK_METRICS_MAX_BUCKETS)
        abort();
    for (size_t i = 1; i < n_bounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            abort();
    struct sk_metric *x = add(m, METRIC_HISTOGRAM, name, help, label);
    memcpy(x->bounds, bounds, n_bounds * sizeof(*bounds));
    x->n_bounds = n_bounds;
    return x;
}

/* find - the series for `value`, created when missing; the last free slot is
 * kept for "other" so a flood of distinct values cannot push it out. */
static struct series *find(struct sk_metric *x, const char *value, bool create)
{
    char key[SK_METRICS_LABEL_MAX + 1];
    snprintf(key, sizeof(key), "%s", x->label != NULL && value != NULL ? value : "");
    for (size_t i = 0; i < x->n_series; i++)
        if (strcmp(x->series[i].label, key) == 0)
            return &x->series[i];
    if (!create)
        return NULL;
    if (x->n_series >= SK_METRICS_MAX_SERIES - 1 && strcmp(key, "other") != 0) {
        for (size_t i = 0; i < x->n_series; i++)
            if (strcmp(x->series[i].label, "other") == 0)
                return &x->series[i];
        snprintf(key, sizeof(key), "other");
    }
    struct series *s = &x->series[x->n_series++];
    snprintf(s->label, sizeof(s->label), "%s", key);
    return s;
}

void sk_metric_touch(struct sk_metric *x, const char *value)
{
    find(x, value, true);
}

void sk_metric_add(struct sk_metric *x, const char *value, double v)
{
    if (x->type == METRIC_HISTOGRAM || !isfinite(v) || (x->type == METRIC_COUNTER && v < 0))
        return;
    find(x, value, true)->value += v;
}

void sk_metric_inc(struct sk_metric *x, const char *value)
{
    sk_metric_add(x, value, 1);
}

void sk_metric_set(struct sk_metric *x, const char *value, double v)
{
    if (x->type != METRIC_GAUGE || !isfinite(v))
        return;
    find(x, value, true)->value = v;
}

void sk_metric_observe(struct sk_metric *x, const char *value, double v)
{
    if (x->type != METRIC_HISTOGRAM || isnan(v))
        return;
    struct series *s = find(x, value, true);
    s->count++;
    s->sum += v;
    for (size_t i = 0; i < x->n_bounds; i++) {
        if (v <= x->bounds[i]) {
            s->buckets[i]++;
            break;
        }
    }
}

double sk_metric_get(const struct sk_metric *x, const char *value)
{
    struct series *s = find((struct sk_metric *)x, value, false);
    if (s == NULL)
        return 0;
    return x->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
}

/* ---- rendering -------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

/* Label values are escaped as the format requires: backslash, quote, newline. */
static void buf_label_value(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_printf(b, "\\\\");
        else if (*v == '"')
            buf_printf(b, "\\\"");
        else if (*v == '\n')
            buf_printf(b, "\\n");
        else
            buf_printf(b, "%c", *v);
    }
}

static void buf_number(struct buf *b, double v)
{
    if (isinf(v))
        buf_printf(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_printf(b, "%.0f", v);
    else
        buf_printf(b, "%.17g", v);
}

/* labels - "{label="value"}" or "{label="value",le="x"}" or "" */
static void buf_labels(struct buf *b, const struct sk_metric *x, const struct series *s, const char *le)
{
    if (x->label == NULL && le == NULL)
        return;
    buf_printf(b, "{");
    if (x->label != NULL) {
        buf_printf(b, "%s=\"", x->label);
        buf_label_value(b, s->label);
        buf_printf(b, "\"%s", le != NULL ? "," : "");
    }
    if (le != NULL)
        buf_printf(b, "le=\"%s\"", le);
    buf_printf(b, "}");
}

static void render_metric(struct buf *b, const struct sk_metric *x)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, types[x->type]);
    /* An unlabelled metric is exported as 0 before its first update. */
    struct series zero;
    memset(&zero, 0, sizeof(zero));
    const struct series *list = x->series;
    size_t n = x->n_series;
    if (n == 0 && x->label == NULL) {
        list = &zero;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct series *s = &list[i];
        if (x->type != METRIC_HISTOGRAM) {
            buf_printf(b, "%s", x->name);
            buf_labels(b, x, s, NULL);
            buf_printf(b, " ");
            buf_number(b, s->value);
            buf_printf(b, "\n");
            continue;
        }
        unsigned long long cum = 0;
        for (size_t j = 0; j < x->n_bounds; j++) {
            char le[64];
            cum += s->buckets[j];
            snprintf(le, sizeof(le), "%g", x->bounds[j]);
            buf_printf(b, "%s_bucket", x->name);
            buf_labels(b, x, s, le);
            buf_printf(b, " %llu\n", cum);
        }
        buf_printf(b, "%s_bucket", x->name);
        buf_labels(b, x, s, "+Inf");
        buf_printf(b, " %llu\n%s_sum", s->count, x->name);
        buf_labels(b, x, s, NULL);
        buf_printf(b, " ");
        buf_number(b, s->sum);
        buf_printf(b, "\n%s_count", x->name);
        buf_labels(b, x, s, NULL);
        buf_printf(b, " %llu\n", s->count);
    }
}

char *sk_metrics_render(const struct sk_metrics *m, size_t *len)
{
    struct buf b = {.p = xmalloc(4096), .len = 0, .cap = 4096};
    b.p[0] = '\0';
    for (const struct sk_metric *x = m->head; x != NULL; x = x->next)
        render_metric(&b, x);
    *len = b.len;
    return b.p;
}
