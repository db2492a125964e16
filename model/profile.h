/* The long-term profile kept in the state: ARCH_P (category, weight) slots,
 * weights decayed by 2^(-dt / half_life) and +1 per event; p_long is the
 * normalised weights. Plus the divergence between p_next and p_long. */
#ifndef IX_MODEL_PROFILE_H
#define IX_MODEL_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "model/arch.h"

/* Decay every weight from s->profile_ts_ms to ts_ms (never forwards in time:
 * an older ts decays nothing) and set profile_ts_ms = max(old, ts_ms). */
void profile_decay(arch_state_t *s, int64_t ts_ms, float half_life_s);

/* Add 1 to category cat (idx = its vocab index). When cat is absent and all
 * ARCH_P slots are full, the smallest-weight slot (lowest slot index on ties)
 * is replaced by (cat, 1). */
void profile_add(arch_state_t *s, uint64_t cat, int32_t idx);

/* p_long over the filled slots: p[j] = weight_j / sum (slot order, s->n_profile
 * entries). Returns the weight sum (0 for an empty profile, then p is all 0). */
float profile_plong(const arch_state_t *s, float *p);

/* Jensen-Shannon divergence, base 2, in [0, 1], between p_next and p_long,
 * where p_long lives on the n profile categories (plong[j]) and pnext[j] is
 * p_next of the same categories; the rest of p_next's mass (1 - sum pnext)
 * lies outside the profile. Exact for that support: outside mass contributes
 * half its mass. */
float profile_js(size_t n, const float *pnext, const float *plong);

/* Derived shift probability: 1 - sum_j pnext[j], clamped to [0, 1]. */
float profile_shift_prob(size_t n, const float *pnext);

/* Rising categories: among candidates (cat, p_next) plus the profile, the
 * largest p_next(c) - p_long(c) > 0, descending, at most k. cand must hold
 * every category whose p_next could rank (the top k + ARCH_P of p_next is
 * enough). Returns how many were written. */
size_t profile_rising(const arch_state_t *s, const float *plong, const float *pnext_prof,
                      size_t n_cand, const uint64_t *cand_cat, const float *cand_p,
                      size_t k, uint64_t *out_cat, float *out_diff);

/* Falling categories: the profile's categories with the largest
 * p_long(c) - p_next(c) > 0 (pnext_prof[j] = p_next of profile slot j),
 * descending, ties in slot order, at most k. Only profile categories have
 * p_long > 0, so only they can fall. Returns how many were written. */
size_t profile_falling(const arch_state_t *s, const float *plong, const float *pnext_prof,
                       size_t k, uint64_t *out_cat, float *out_diff);

#endif
