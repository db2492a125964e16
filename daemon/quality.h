/* Live quality metrics: the processing core's per-event ranks (core/pipeline.h,
 * pipeline_quality) exported to Prometheus per model fingerprint and
 * predictor (the served model, and the heuristics its states carry), so an
 * operator sees the model's margin over the heuristics on live traffic:
 *   interestd_quality_targets_total{model,predictor}
 *   interestd_quality_hits_total{model,predictor,k="1"|"5"|"10"}
 *   interestd_quality_reciprocal_rank_sum{model,predictor}   (gauge, rises)
 * Acc@1 = hits{k="1"} / targets, Recall@k likewise, MRR@10 =
 * reciprocal_rank_sum / targets (over a window: increase() of each).
 * Loop thread only. */
#ifndef IX_DAEMON_QUALITY_H
#define IX_DAEMON_QUALITY_H

#include <stdint.h>

#include "core/pipeline.h"
#include "daemon/metrics.h"

typedef struct {
  uint32_t fingerprint;
  metrics_counter_t *targets[PIPELINE_Q_N];
  metrics_counter_t *hits[PIPELINE_Q_N][3]; /* k = 1, 5, 10 */
  metrics_gauge_t *rr_sum[PIPELINE_Q_N];
} quality_metrics_t;

/* Register (or find) the series of the model with this fingerprint; the
 * pointers are borrowed from reg. Returns 0, IX_EINVAL or IX_ENOMEM. */
int quality_metrics_bind(quality_metrics_t *qm, metrics_t *reg, uint32_t fingerprint);
/* Set the series to the pipeline's totals (cheap: 15 stores). */
void quality_metrics_update(quality_metrics_t *qm, const pipeline_t *p);

#endif
