/* Standby replicas: which partitions to follow (the membership placement
 * from the group's description, or the own-assignment fallback), the
 * follower, the copies (one store holding every followed partition, one
 * restore accumulator per partition) and the hand-over to the new owner. */
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

/* The group is described after every assignment and revocation and every
 * DESCRIBE_PERIOD_MS; a description that is not yet consistent (a rebalance
 * in progress, this member's assignment not in it yet, a partition without
 * an owner) is asked again after DESCRIBE_RETRY_MS (at most DESCRIBE_RETRIES
 * times in a row; one with a partition without an owner is then used). The
 * membership rule gives way to the own-assignment rule after DESCRIBE_FAILS
 * failed descriptions in a row. */
#define DESCRIBE_PERIOD_MS 5000
#define DESCRIBE_TIMEOUT_MS 5000
#define DESCRIBE_RETRY_MS 1000
#define DESCRIBE_RETRIES 10
#define DESCRIBE_FAILS 3

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
  /* placement */
  standby_rule_t rule;
  int32_t *owned;           /* this member's partitions now, ascending */
  size_t n_owned;
  groupdesc_t *gd;          /* NULL: own-assignment rule only */
  uv_poll_t gd_poll;
  int gd_poll_on;
  uint64_t next_describe_ms;
  int describe_again;       /* the assignment changed while a request was in flight */
  unsigned fails, retries;  /* failed / inconsistent descriptions in a row */
  int fail_logged;
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

static int str0cmp(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

/* The ring's order: group.instance.id, member id, then the partitions (any
 * two distinct entries compare unequal, so every member sorts alike). */
static int member_cmp(const groupdesc_member_t *a, const groupdesc_member_t *b) {
  int c = str0cmp(a->instance_id, b->instance_id);
  if (!c) c = str0cmp(a->member_id, b->member_id);
  for (size_t i = 0; !c && i < a->n_parts && i < b->n_parts; i++)
    c = (a->parts[i] > b->parts[i]) - (a->parts[i] < b->parts[i]);
  if (!c) c = (a->n_parts > b->n_parts) - (a->n_parts < b->n_parts);
  return c;
}

static int member_claims(const groupdesc_member_t *m, int32_t p) {
  for (size_t i = 0; i < m->n_parts; i++)
    if (m->parts[i] == p) return 1;
  return 0;
}

size_t standby_place(const groupdesc_member_t *members, size_t n_members, size_t self,
                     int32_t partitions, uint32_t replicas, uint8_t *want) {
  memset(want, 0, (size_t)(partitions > 0 ? partitions : 0));
  if (partitions <= 0 || !replicas || self >= n_members) return 0;
  size_t *ring = malloc(n_members * sizeof *ring);
  int32_t *owner = malloc((size_t)partitions * sizeof *owner); /* lowest rank claiming p */
  size_t got = SIZE_MAX;
  if (!ring || !owner) goto out;
  got = 0;
  /* insertion sort of the member indices (groups are small) */
  for (size_t i = 0; i < n_members; i++) {
    size_t j = i;
    while (j > 0 && member_cmp(&members[ring[j - 1]], &members[i]) > 0) {
      ring[j] = ring[j - 1];
      j--;
    }
    ring[j] = i;
  }
  size_t me = 0;
  for (size_t r = 0; r < n_members; r++)
    if (ring[r] == self) me = r;
  for (int32_t p = 0; p < partitions; p++) owner[p] = -1;
  for (size_t r = n_members; r-- > 0;) {
    const groupdesc_member_t *m = &members[ring[r]];
    for (size_t i = 0; i < m->n_parts; i++)
      if (m->parts[i] >= 0 && m->parts[i] < partitions) owner[m->parts[i]] = (int32_t)r;
  }
  for (int32_t p = 0; p < partitions; p++) {
    if (member_claims(&members[self], p)) continue;
    /* an owned partition: the members after its owner; an unclaimed one
     * (nobody owns it in this description): from rank p mod |members| */
    size_t start = owner[p] >= 0 ? (size_t)owner[p] + 1 : (size_t)p % n_members;
    uint32_t taken = 0;
    for (size_t k = 0; k < n_members && taken < replicas; k++) {
      size_t r = (start + k) % n_members;
      if (member_claims(&members[ring[r]], p)) continue;
      taken++;
      if (r == me) {
        want[p] = 1;
        got++;
        break;
      }
    }
  }
out:
  free(ring);
  free(owner);
  return got;
}

static void set_rule(standby_t *sb, standby_rule_t r);

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
  set_rule(sb, STANDBY_RULE_ASSIGNMENT);
  *out = sb;
  return 0;
err:
  standby_destroy(sb);
  return rc;
}

void standby_destroy(standby_t *sb) {
  if (!sb) return;
  groupdesc_destroy(sb->gd);
  free(sb->owned);
  changelog_follower_destroy(sb->fol);
  for (int32_t p = 0; sb->parts && p < sb->n_parts; p++)
    changelog_restore_destroy(sb->parts[p].rs);
  store_destroy(sb->copy);
  free(sb->parts);
  free(sb->topic);
  free(sb);
}

static const char *rule_name(standby_rule_t r) {
  return r == STANDBY_RULE_MEMBERSHIP ? "membership" : "own-assignment";
}

static void set_rule(standby_t *sb, standby_rule_t r) {
  sb->rule = r;
  metrics_gauge_set(sb->m.rule[STANDBY_RULE_ASSIGNMENT], r == STANDBY_RULE_ASSIGNMENT);
  metrics_gauge_set(sb->m.rule[STANDBY_RULE_MEMBERSHIP], r == STANDBY_RULE_MEMBERSHIP);
}

/* Follow exactly the partitions of want[] (new ones from their start), drop
 * the others; one log line when the set changed. why: the rule's details. */
static void follow_set(standby_t *sb, const uint8_t *want, const char *why) {
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
  if (la || ld) {
    char now[256] = "";
    size_t ln = 0;
    for (int32_t p = 0; p < sb->n_parts && ln < sizeof now - 12; p++)
      if (sb->parts[p].followed)
        ln += (size_t)snprintf(now + ln, sizeof now - ln, "%s%d", ln ? "," : "", (int)p);
    LOG_INFO("standby", "standby copies (%s rule%s): following [%s] from their start, dropped "
             "[%s]; now %zu partitions [%s] (%u replicas, %zu owned)", rule_name(sb->rule), why,
             added, dropped, standby_partitions(sb), now, sb->replicas, sb->n_owned);
  }
  update_gauges(sb);
}

/* The own-assignment rule on the partitions owned now. */
static void follow_by_assignment(standby_t *sb) {
  /* owning nothing is a passing state (between a revocation and the next
   * assignment, or an assignment lost): the warm copies stay */
  if (!sb->n_owned) {
    update_gauges(sb);
    return;
  }
  uint8_t *want = calloc((size_t)sb->n_parts, 1);
  if (!want) return;
  standby_want(sb->owned, sb->n_owned, sb->n_parts, sb->replicas, want);
  follow_set(sb, want, "");
  free(want);
}

static void describe_now(standby_t *sb) {
  if (!sb->gd) return;
  if (groupdesc_in_flight(sb->gd)) {
    sb->describe_again = 1; /* its answer may predate this change */
    return;
  }
  sb->describe_again = 0;
  /* the answer sets the next time; out of memory: the next period */
  sb->next_describe_ms = groupdesc_request(sb->gd, DESCRIBE_TIMEOUT_MS) == 0
                             ? UINT64_MAX
                             : ix_mono_ms() + DESCRIBE_PERIOD_MS;
}

void standby_set_owned(standby_t *sb, const int32_t *owned, size_t n) {
  if (!sb) return;
  int32_t *copy = malloc((n ? n : 1) * sizeof *copy);
  if (!copy) return;
  memcpy(copy, owned, n * sizeof *copy);
  free(sb->owned);
  sb->owned = copy;
  sb->n_owned = n;
  sb->retries = 0;
  describe_now(sb);
  if (sb->rule == STANDBY_RULE_ASSIGNMENT)
    follow_by_assignment(sb);
  else
    update_gauges(sb); /* the copies stay until the group is described again */
}

standby_rule_t standby_rule(const standby_t *sb) {
  return sb ? sb->rule : STANDBY_RULE_ASSIGNMENT;
}

/* 1 when member m's partitions are exactly this member's owned set. */
static int same_as_owned(const standby_t *sb, const groupdesc_member_t *m) {
  if (m->n_parts != sb->n_owned) return 0;
  for (size_t i = 0; i < m->n_parts; i++) {
    int found = 0;
    for (size_t j = 0; j < sb->n_owned && !found; j++) found = sb->owned[j] == m->parts[i];
    if (!found) return 0;
  }
  return 1;
}

/* Partitions of the topic no member of the description owns. */
static size_t unclaimed(const standby_t *sb, const groupdesc_view_t *v) {
  uint8_t *owned = calloc((size_t)(sb->n_parts > 0 ? sb->n_parts : 1), 1);
  if (!owned) return 0;
  size_t n = (size_t)(sb->n_parts > 0 ? sb->n_parts : 0);
  for (size_t i = 0; i < v->n_members; i++)
    for (size_t j = 0; j < v->members[i].n_parts; j++) {
      int32_t p = v->members[i].parts[j];
      if (p >= 0 && p < sb->n_parts && !owned[p]) {
        owned[p] = 1;
        n--;
      }
    }
  free(owned);
  return n;
}

void standby_described(standby_t *sb, const groupdesc_view_t *v) {
  uint64_t now = ix_mono_ms();
  sb->next_describe_ms = now + DESCRIBE_PERIOD_MS;
  if (v->err) {
    metrics_counter_inc(sb->m.describes_failed);
    sb->fails++;
    if (sb->rule == STANDBY_RULE_MEMBERSHIP && sb->fails >= DESCRIBE_FAILS) {
      LOG_WARN("standby", "the group could not be described %u times in a row (%s): standby "
               "placement falls back to the own-assignment rule", sb->fails, v->error);
      set_rule(sb, STANDBY_RULE_ASSIGNMENT);
      sb->fail_logged = 1;
      follow_by_assignment(sb);
    } else if (!sb->fail_logged) {
      LOG_INFO("standby", "the group cannot be described (%s, after %" PRIu64 " ms); the %s rule "
               "stays in force, asking again every %d s", v->error, v->took_ms,
               rule_name(sb->rule), DESCRIBE_PERIOD_MS / 1000);
      sb->fail_logged = 1;
    }
  } else {
    metrics_counter_inc(sb->m.describes_ok);
    sb->fails = 0;
    /* this member is the one whose assignment is its own: unique when it
     * owns a partition (a consistent description gives each partition one
     * owner); among several members without partitions it cannot tell
     * itself apart (rd_kafka_memberid() is not asked: stream/groupdesc.h) */
    size_t self = SIZE_MAX, matches = 0;
    for (size_t i = 0; i < v->n_members; i++)
      if (same_as_owned(sb, &v->members[i])) {
        self = i;
        matches++;
      }
    /* a partition nobody owns: the first round of a cooperative rebalance
     * (the second follows at once); placed anyway after the retries */
    size_t unowned = unclaimed(sb, v);
    if (!v->stable || matches != 1 || !sb->owned /* no assignment seen yet */ ||
        (unowned && sb->retries < DESCRIBE_RETRIES)) {
      /* a rebalance in progress, or a description older than this
       * member's assignment: placement waits for a consistent one */
      LOG_DEBUG("standby", "group description not used: state %s, %zu members, %zu with this "
                "member's assignment, %zu partitions without an owner", v->state, v->n_members,
                matches, unowned);
      if (sb->retries++ < DESCRIBE_RETRIES) sb->next_describe_ms = now + DESCRIBE_RETRY_MS;
    } else {
      sb->retries = 0;
      uint8_t *want = calloc((size_t)sb->n_parts, 1);
      if (want && standby_place(v->members, v->n_members, self, sb->n_parts, sb->replicas,
                                want) != SIZE_MAX) {
        if (sb->rule != STANDBY_RULE_MEMBERSHIP) {
          LOG_INFO("standby", "the group is described (%zu members, %" PRIu64 " ms): standby "
                   "placement by the membership rule", v->n_members, v->took_ms);
          set_rule(sb, STANDBY_RULE_MEMBERSHIP);
          sb->fail_logged = 0;
        }
        char why[96];
        snprintf(why, sizeof why, ", %zu members", v->n_members);
        follow_set(sb, want, why);
      }
      free(want);
    }
  }
  if (sb->describe_again) describe_now(sb);
}

static void gd_poll_cb(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  standby_t *sb = h->data;
  groupdesc_view_t v;
  while (sb->gd && groupdesc_take(sb->gd, &v)) standby_described(sb, &v);
}

int standby_watch_group(standby_t *sb, uv_loop_t *loop, consumer_t *c, const char *group,
                        char *errstr, size_t n) {
  int rc = groupdesc_new(c, group, &sb->gd, errstr, n);
  if (rc) return rc;
  int uvrc = uv_poll_init(loop, &sb->gd_poll, groupdesc_fd(sb->gd));
  if (uvrc) goto uverr;
  sb->gd_poll_on = 1;
  sb->gd_poll.data = sb;
  if ((uvrc = uv_poll_start(&sb->gd_poll, UV_READABLE, gd_poll_cb))) goto uverr;
  sb->next_describe_ms = ix_mono_ms(); /* the first pump asks */
  return 0;
uverr:
  snprintf(errstr, n, "cannot watch the group descriptions: %s", uv_strerror(uvrc));
  return IX_ESYS;
}

void standby_stop(standby_t *sb) {
  if (!sb || !sb->gd_poll_on) return;
  if (!uv_is_closing((uv_handle_t *)&sb->gd_poll)) uv_close((uv_handle_t *)&sb->gd_poll, NULL);
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
  if (sb->gd && ix_mono_ms() >= sb->next_describe_ms) describe_now(sb);
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
