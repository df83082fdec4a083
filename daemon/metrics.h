/* metrics.h - counters, gauges and histograms rendered in the Prometheus
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * A metric has at most one label (a fixed label name chosen at
 * registration, e.g. "code" or "state"). Series are created on first use of
 * a label value; a metric holds at most SK_METRICS_MAX_SERIES of them and
 * folds any further value into the series "other", so label values that
 * arrive from outside cannot grow memory. Histograms have fixed bucket
 * bounds. Not thread-safe: the daemon's loop owns the registry.
 */
#ifndef SK_DAEMON_METRICS_H
#define SK_DAEMON_METRICS_H

#include <stddef.h>

#define SK_METRICS_MAX_SERIES 64
#define SK_METRICS_MAX_BUCKETS 24
#define SK_METRICS_LABEL_MAX 64

struct sk_metrics;
struct sk_metric;

struct sk_metrics *sk_metrics_new(void);
/* sk_metrics_free - free the registry and every metric in it (NULL: no-op). */
void sk_metrics_free(struct sk_metrics *m);

/* Registration: name and help are borrowed and must outlive the registry
 * (string literals). `label` is the label name, or NULL for a metric
 * without labels. The returned handle belongs to the registry. Aborts on a
 * programming error (bad name, too many buckets). */
struct sk_metric *sk_metrics_counter(struct sk_metrics *m, const char *name, const char *help, const char *label);
struct sk_metric *sk_metrics_gauge(struct sk_metrics *m, const char *name, const char *help, const char *label);
/* bounds: strictly increasing upper bounds, without +Inf (added). Copied. */
struct sk_metric *sk_metrics_histogram(struct sk_metrics *m, const char *name, const char *help, const char *label,
                                       const double *bounds, size_t n_bounds);

/* Default latency buckets in seconds, 1 ms .. 60 s. */
extern const double sk_metrics_latency_buckets[];
extern const size_t sk_metrics_latency_buckets_len;

/* Updates. `value` is the label value (copied; NULL for unlabelled
 * metrics). sk_metric_touch creates the series with value 0 so that it is
 * exported before anything happened. */
void sk_metric_touch(struct sk_metric *x, const char *value);
void sk_metric_inc(struct sk_metric *x, const char *value);
void sk_metric_add(struct sk_metric *x, const char *value, double v);     /* counters: v >= 0 */
void sk_metric_set(struct sk_metric *x, const char *value, double v);     /* gauges */
void sk_metric_observe(struct sk_metric *x, const char *value, double v); /* histograms */
/* sk_metric_get - current value of a counter or gauge series (0 if absent);
 * for histograms, the observation count. */
double sk_metric_get(const struct sk_metric *x, const char *value);

/* sk_metrics_render - the whole registry in text format; *len receives the
 * length. The caller frees the returned buffer. */
char *sk_metrics_render(const struct sk_metrics *m, size_t *len);

#endif
