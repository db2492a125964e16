/* Live quality metrics (daemon/quality.h): pipeline totals -> Prometheus. */
#include "daemon/quality.h"

#include <stdio.h>
#include <string.h>

int quality_metrics_bind(quality_metrics_t *qm, metrics_t *reg, uint32_t fingerprint) {
  static const char *const ks[3] = {"1", "5", "10"};
  char fp[16];
  snprintf(fp, sizeof fp, "%08x", fingerprint);
  memset(qm, 0, sizeof *qm);
  qm->fingerprint = fingerprint;
  for (unsigned q = 0; q < PIPELINE_Q_N; q++) {
    const char *name = pipeline_quality_name(q);
    int rc = metrics_counter_new(reg, &qm->targets[q], "interestd_quality_targets_total",
                                 "Events scored against the user's previous prediction, by model "
                                 "fingerprint and predictor (lstm = the served model).",
                                 "model", fp, "predictor", name, NULL);
    if (rc) return rc;
    for (unsigned k = 0; k < 3; k++)
      if ((rc = metrics_counter_new(reg, &qm->hits[q][k], "interestd_quality_hits_total",
                                    "Scored events whose category was in the previous "
                                    "prediction's top k.",
                                    "model", fp, "predictor", name, "k", ks[k], NULL)))
        return rc;
    if ((rc = metrics_gauge_new(reg, &qm->rr_sum[q], "interestd_quality_reciprocal_rank_sum",
                                "Sum of 1/rank over scored events in the previous prediction's "
                                "top 10 (MRR@10 = this / targets).",
                                "model", fp, "predictor", name, NULL)))
      return rc;
  }
  return 0;
}

void quality_metrics_update(quality_metrics_t *qm, const pipeline_t *p) {
  for (unsigned q = 0; q < PIPELINE_Q_N; q++) {
    const pipeline_quality_t *pq = pipeline_quality(p, q);
    if (!qm->targets[q] || !pq) continue;
    metrics_counter_set(qm->targets[q], pq->targets);
    metrics_counter_set(qm->hits[q][0], pq->hit1);
    metrics_counter_set(qm->hits[q][1], pq->hit5);
    metrics_counter_set(qm->hits[q][2], pq->hit10);
    metrics_gauge_set(qm->rr_sum[q], pq->rr_sum);
  }
}
