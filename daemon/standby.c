/* Standby replicas: which partitions to follow, the follower, the copies
 * (one store holding every followed partition, one restore accumulator per
 * partition) and the hand-over to the new owner. */
#include "daemon/standby.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "state/changelog.h"
#include "stream/changelog_topic.h"

typedef struct {
  int followed;
  int broken;               /* a record was refused (malformed, another partition's):
                             * the copy is not used */
  int64_t pos;              /* next changelog offset to apply (-1: from the start) */
  changelog_restore_t *rs;  /* the copy's accumulator (its states are in sb->copy) */
  metrics_gauge_t *lag;
} sbpart_t;

struct standby {
  changelog_follower_t *fol;
  store_t *copy;
  char *topic;
  int32_t n_parts;
  uint32_t replicas, fp;
  sbpart_t *parts;
  metrics_t *metrics;
  metrics_standby_t m;
  uint64_t applied;
};

size_t standby_want(const int32_t *owned, size_t n_owned, int32_t partitions, uint32_t replicas,
                    uint8_t *want) {
  memset(want, 0, (size_t)(partitions > 0 ? partitions : 0));
  if (!n_owned || partitions <= 0 || !replicas) return 0;
  uint8_t *own = calloc((size_t)partitions, 1);
  if (!own) return 0;
  size_t n_own = 0;
  for (size_t i = 0; i < n_owned; i++)
    if (owned[i] >= 0 && owned[i] < partitions && !own[owned[i]]) {
      own[owned[i]] = 1;
      n_own++;
    }
  size_t goal = (size_t)replicas * (n_own + 1), got = 0;
  if (goal > (size_t)partitions - n_own) goal = (size_t)partitions - n_own;
  /* walk forward from every owned partition at once, in partition order */
  for (int32_t step = 1; step < partitions && got < goal; step++)
    for (int32_t a = 0; a < partitions && got < goal; a++) {
      if (!own[a]) continue;
      int32_t q = (a + step) % partitions;
      if (!own[q] && !want[q]) {
        want[q] = 1;
        got++;
      }
    }
  free(own);
  return got;
}

/* A fresh copy of p, following it from the changelog's start. */
static void follow(standby_t *sb, int32_t p) {
  sbpart_t *sp = &sb->parts[p];
  store_drop_partition(sb->copy, p);
  changelog_restore_destroy(sp->rs);
  sp->rs = NULL;
  sp->broken = 0;
  sp->pos = -1;
  if (changelog_restore_new(sb->copy, p, sb->fp, &sp->rs) ||
      changelog_follower_add(sb->fol, p, -1)) {
    LOG_WARN("standby", "partition %d: cannot follow its changelog (out of memory or client "
             "error); no standby copy", (int)p);
    changelog_restore_destroy(sp->rs);
    sp->rs = NULL;
    return;
  }
  sp->followed = 1;
  if (!sp->lag) sp->lag = metrics_standby_lag(sb->metrics, p);
}

/* Stop following p and drop its copy. */
static void unfollow(standby_t *sb, int32_t p) {
  sbpart_t *sp = &sb->parts[p];
  if (sp->followed) changelog_follower_remove(sb->fol, p);
  sp->followed = 0;
  sp->broken = 0;
  sp->pos = -1;
  changelog_restore_destroy(sp->rs);
  sp->rs = NULL;
  store_drop_partition(sb->copy, p);
  metrics_gauge_delete(sb->metrics, sp->lag);
  sp->lag = NULL;
}

static void update_gauges(standby_t *sb) {
  store_stats_t s;
  store_get_stats(sb->copy, &s);
  metrics_gauge_set(sb->m.users, (double)s.users);
  metrics_gauge_set(sb->m.bytes, (double)s.bytes);
  metrics_gauge_set(sb->m.partitions, (double)standby_partitions(sb));
  for (int32_t p = 0; p < sb->n_parts; p++) {
    sbpart_t *sp = &sb->parts[p];
    if (!sp->followed || !sp->lag) continue;
    int64_t end = changelog_follower_end(sb->fol, p);
    if (end >= 0) metrics_gauge_set(sp->lag, (double)(end - (sp->pos > 0 ? sp->pos : 0)));
  }
}

int standby_new(const standby_opts_t *o, standby_t **out, char *errstr, size_t n) {
  standby_t *sb = calloc(1, sizeof *sb);
  if (!sb) return IX_ENOMEM;
  int rc = IX_ENOMEM;
  sb->n_parts = o->partitions;
  sb->replicas = o->replicas;
  sb->fp = o->fingerprint;
  sb->metrics = o->metrics;
  store_opts_t so = {.blob_size = o->blob_size, .pool = o->pool};
  if (!(sb->topic = strdup(o->topic)) ||
      !(sb->parts = calloc((size_t)(o->partitions > 0 ? o->partitions : 1), sizeof *sb->parts)) ||
      store_new(&so, &sb->copy)) {
    snprintf(errstr, n, "out of memory for the standby copies");
    goto err;
  }
  if ((rc = changelog_follower_new(o->brokers, o->props, o->topic, &sb->fol, errstr, n)))
    goto err;
  rc = metrics_standby_register(o->metrics, &sb->m);
  if (rc) {
    snprintf(errstr, n, "cannot register the standby metrics: %s", ix_strerror(rc));
    goto err;
  }
  *out = sb;
  return 0;
err:
  standby_destroy(sb);
  return rc;
}

void standby_destroy(standby_t *sb) {
  if (!sb) return;
  changelog_follower_destroy(sb->fol);
  for (int32_t p = 0; sb->parts && p < sb->n_parts; p++)
    changelog_restore_destroy(sb->parts[p].rs);
  store_destroy(sb->copy);
  free(sb->parts);
  free(sb->topic);
  free(sb);
}

void standby_set_owned(standby_t *sb, const int32_t *owned, size_t n) {
  if (!sb) return;
  /* owning nothing is a passing state (between a revocation and the next
   * assignment, or an assignment lost): the warm copies stay */
  if (!n) {
    update_gauges(sb);
    return;
  }
  uint8_t *want = calloc((size_t)sb->n_parts, 1);
  if (!want) return;
  standby_want(owned, n, sb->n_parts, sb->replicas, want);
  char added[256] = "", dropped[256] = "";
  size_t la = 0, ld = 0;
  for (int32_t p = 0; p < sb->n_parts; p++) {
    if (want[p] && !sb->parts[p].followed) {
      follow(sb, p);
      if (la < sizeof added - 12) la += (size_t)snprintf(added + la, sizeof added - la, "%s%d",
                                                        la ? "," : "", (int)p);
    } else if (!want[p] && (sb->parts[p].followed || sb->parts[p].rs)) {
      unfollow(sb, p);
      if (ld < sizeof dropped - 12) ld += (size_t)snprintf(dropped + ld, sizeof dropped - ld,
                                                          "%s%d", ld ? "," : "", (int)p);
    }
  }
  free(want);
  if (la || ld)
    LOG_INFO("standby", "standby copies: following [%s] from their start, dropped [%s]; now %zu "
             "partitions (%u replicas, %zu owned)", added, dropped, standby_partitions(sb),
             sb->replicas, n);
  update_gauges(sb);
}

static void apply(void *ctx, int32_t p, int64_t off, const void *k, size_t kl, const void *v,
                  size_t vl, const char *error) {
  standby_t *sb = ctx;
  if (p < 0 || p >= sb->n_parts) return;
  sbpart_t *sp = &sb->parts[p];
  if (!sp->followed || !sp->rs || sp->broken) return;
  if (error) {
    /* the position was deleted under the copy (retention, the mock's size
     * cap): what it holds can no longer be completed exactly; start over */
    LOG_WARN("standby", "partition %d: %s; the standby copy starts over from the changelog's "
             "start", (int)p, error);
    changelog_follower_remove(sb->fol, p);
    sp->followed = 0;
    follow(sb, p);
    return;
  }
  if (off < sp->pos) return; /* already applied */
  char why[300];
  /* records of another model are counted and ignored by the accumulator
   * (docs/STATE.md, "Model swaps"): only a malformed record breaks the copy */
  int rc = changelog_restore_add(sp->rs, off, k, kl, v, vl, why, sizeof why);
  if (rc) {
    /* the owner's restore reads the same record and reports it */
    LOG_WARN("standby", "partition %d: changelog offset %" PRId64 " refused (%s); the standby "
             "copy is not used", (int)p, off, why);
    sp->broken = 1;
    return;
  }
  sp->pos = off + 1;
  sb->applied++;
}

size_t standby_pump(standby_t *sb, uint64_t budget_us) {
  if (!sb) return 0;
  uint64_t t0 = ix_mono_ns(), before = sb->applied;
  /* small slices: each costs a few hundred microseconds at most */
  while (changelog_follower_poll(sb->fol, 256, apply, sb) == 256 &&
         ix_mono_ns() - t0 < budget_us * 1000u) {
  }
  update_gauges(sb);
  return (size_t)(sb->applied - before);
}

int standby_assign(standby_t *sb, clog_t *c, int32_t p, store_t *st, uint32_t fingerprint,
                   int64_t local_next, int64_t local_created_ms, clog_source_t *source,
                   int64_t *next_offset, char *errstr, size_t n) {
  if (!sb || p < 0 || p >= sb->n_parts || !sb->parts[p].rs || sb->parts[p].broken ||
      sb->parts[p].pos < 0) {
    if (sb && p >= 0 && p < sb->n_parts && sb->parts[p].followed)
      LOG_WARN("standby", "partition %d: its standby copy is %s; restoring from the whole "
               "changelog", (int)p, sb->parts[p].broken ? "unusable" : "still empty");
    if (sb && p >= 0 && p < sb->n_parts) unfollow(sb, p);
    return clog_assign(c, p, st, fingerprint, local_next, local_created_ms, source, next_offset,
                       errstr, n);
  }
  sbpart_t *sp = &sb->parts[p];
  /* take what was fetched and not applied yet first: the tail read is then shorter */
  standby_pump(sb, 5000);
  if (sp->followed) changelog_follower_remove(sb->fol, p);
  sp->followed = 0;
  changelog_restore_t *rs = sp->rs;
  sp->rs = NULL;
  int64_t from = sp->pos;
  int64_t end = changelog_follower_end(sb->fol, p);
  LOG_INFO("standby", "partition %d: assigned; its standby copy holds %zu users up to changelog "
           "offset %" PRId64 " (end last seen %" PRId64 ")", (int)p,
           store_partition_users(sb->copy, p), from, end);
  int rc = clog_assign_copy(c, p, st, fingerprint, local_next, sb->copy, rs, from, source,
                            next_offset, errstr, n);
  if (rc == IX_ERANGE) {
    LOG_WARN("standby", "partition %d: %s; restoring from the whole changelog", (int)p, errstr);
    unfollow(sb, p);
    rc = clog_assign(c, p, st, fingerprint, local_next, local_created_ms, source, next_offset,
                     errstr, n);
  }
  unfollow(sb, p);
  update_gauges(sb);
  return rc;
}

int standby_switch_model(standby_t *sb, uint32_t fingerprint, size_t blob_size) {
  if (!sb || (fingerprint == sb->fp && blob_size == store_blob_size(sb->copy))) return 0;
  store_t *copy;
  store_opts_t so = {.blob_size = blob_size, .pool = store_slab_pool(sb->copy)};
  if (store_new(&so, &copy)) return IX_ENOMEM;
  uint8_t *was = calloc((size_t)(sb->n_parts > 0 ? sb->n_parts : 1), 1);
  if (!was) {
    store_destroy(copy);
    return IX_ENOMEM;
  }
  size_t n = 0;
  for (int32_t p = 0; p < sb->n_parts; p++)
    if (sb->parts[p].followed || sb->parts[p].rs) {
      was[p] = 1;
      unfollow(sb, p);
      n++;
    }
  store_destroy(sb->copy);
  sb->copy = copy;
  sb->fp = fingerprint;
  for (int32_t p = 0; p < sb->n_parts; p++)
    if (was[p]) follow(sb, p);
  free(was);
  LOG_INFO("standby", "model switch: the %zu standby copies follow their changelogs again from "
           "the start for fingerprint %08x (the new model's epoch supersedes what they held)", n,
           fingerprint);
  update_gauges(sb);
  return 0;
}

int standby_has_copy(const standby_t *sb, int32_t p) {
  return sb && p >= 0 && p < sb->n_parts && sb->parts[p].rs && !sb->parts[p].broken &&
         sb->parts[p].pos >= 0;
}

size_t standby_partitions(const standby_t *sb) {
  size_t k = 0;
  for (int32_t p = 0; sb && p < sb->n_parts; p++) k += sb->parts[p].followed;
  return k;
}

size_t standby_users(const standby_t *sb) { return sb ? store_users(sb->copy) : 0; }
