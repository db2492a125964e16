/* The restore reader's hint (changelog_reader_prefetch, issue 14), on the
 * mock cluster: a topic of 6 partitions holding 0 to 2,600 records each
 * (value: the partition and the record's number in it), one reader, read in
 * an order other than the hint's, with tails (a `from` inside a partition
 * fetched ahead from its start), a partition outside the hint read while
 * the hinted ones are fetched ahead, an empty one, a `from` at the end, and
 * a second hint on the same reader. Every read must hand over exactly its
 * partition's records from `from` to the end, in offset order, each once:
 * records of partitions fetched ahead handed to the wrong read, dropped
 * instead of kept for their turn, or a tail read from the hint's start fail
 * it. */
#include "daemon_harness.h"

#include "stream/changelog_topic.h"

#define PARTS 6

static const int counts[PARTS] = {1200, 2600, 0, 900, 1700, 40};

typedef struct {
  int32_t p;
  int64_t next; /* the offset the next record must have */
  uint64_t bad;
  char why[200];
} chk_t;

static int check_rec(void *ctx, int64_t off, const void *k, size_t kl, const void *v, size_t vl) {
  chk_t *c = ctx;
  char want[64];
  int n = snprintf(want, sizeof want, "p%d-r%lld", (int)c->p, (long long)off);
  if (off != c->next || !v || vl != (size_t)n || memcmp(v, want, vl) != 0 || kl != 4) {
    if (!c->bad)
      snprintf(c->why, sizeof c->why, "partition %d: expected offset %lld (%s), got offset %lld "
               "value '%.*s'", (int)c->p, (long long)c->next, want, (long long)off,
               v ? (int)vl : 0, v ? (const char *)v : "");
    c->bad++;
  }
  c->next = off + 1;
  (void)k;
  return 0;
}

/* one read of p from `from`, checked against what the partition holds */
static void read_check(changelog_reader_t *r, int32_t p, int64_t from) {
  chk_t c = {.p = p, .next = from < 0 ? 0 : from};
  uint64_t recs = 0, bytes = 0;
  char err[512];
  double t0 = h_now();
  int rc = changelog_reader_read(r, p, from, 20000, NULL, check_rec, &c, &recs, &bytes, err,
                                 sizeof err);
  H_CHECK(rc == 0, "read of partition %d from %lld: %s", (int)p, (long long)from, err);
  int64_t start = from < 0 ? 0 : from > counts[p] ? counts[p] : from;
  uint64_t want = (uint64_t)(counts[p] - start);
  H_CHECK(c.bad == 0, "%" PRIu64 " wrong records: %s", c.bad, c.why);
  H_CHECK(recs == want, "partition %d from %lld: %" PRIu64 " records, expected %" PRIu64,
          (int)p, (long long)from, recs, want);
  printf("partition %d from %lld: %" PRIu64 " records in order (%.3f s)\n", (int)p,
         (long long)from, recs, h_now() - t0);
}

static size_t failed;
static void dr(void *ctx, const producer_report_t *rep) {
  (void)ctx;
  if (rep->err) failed++;
}

int main(void) {
  h_init("test_changelog_reader");
  char err[512];
  mockbroker_t *mb = h_mockbroker(PARTS);
  const char *brokers = mockbroker_bootstraps(mb);
  const char *topic = h_T("reader-state");
  H_CHECK(mockbroker_create_topic(mb, topic, PARTS, err, sizeof err) == 0, "%s", err);
  producer_opts_t po = {.brokers = brokers, .on_delivery = dr,
                        .props = (const char *const[]){"linger.ms=5", NULL}};
  producer_t *pr;
  H_CHECK(producer_new(&po, &pr, err, sizeof err) == 0, "%s", err);
  producer_topic_t *pt = producer_topic(pr, topic);
  for (int32_t p = 0; p < PARTS; p++)
    for (int i = 0; i < counts[p]; i++) {
      char v[64];
      int n = snprintf(v, sizeof v, "p%d-r%d", (int)p, i);
      int rc;
      while ((rc = producer_send(pr, pt, p, "key!", 4, v, (size_t)n, 0, NULL, 0, 0)) ==
             IX_EFULL)
        producer_poll(pr, 5);
      H_CHECK(rc == 0, "produce: %s", ix_strerror(rc));
    }
  H_CHECK(producer_flush(pr, 30000) == 0 && failed == 0, "fill: %zu failed", failed);
  producer_destroy(pr, 1000);

  changelog_reader_t *r;
  H_CHECK(changelog_reader_new(brokers, NULL, topic, &r, err, sizeof err) == 0, "%s", err);
  /* hinted 0..4 in this order; read 3 first, 5 (not hinted) while the
   * hinted ones are fetched ahead, 1 as a tail, 2 (empty), 0, 4 past its end */
  int32_t hint[] = {0, 1, 2, 3, 4};
  changelog_reader_prefetch(r, hint, 5, 10000);
  read_check(r, 3, -1);
  read_check(r, 5, -1);
  read_check(r, 1, 1234);
  read_check(r, 2, -1);
  read_check(r, 0, -1);
  read_check(r, 4, counts[4]);
  changelog_reader_prefetch(r, NULL, 0, 0);
  /* the same reader, a second hint: a tail of a partition fetched ahead, then
   * the whole of one read before, then one left unread when the hint is dropped */
  int32_t hint2[] = {4, 1, 0};
  changelog_reader_prefetch(r, hint2, 3, 10000);
  read_check(r, 4, 100);
  read_check(r, 1, -1);
  changelog_reader_prefetch(r, NULL, 0, 0);
  read_check(r, 0, 5);
  changelog_reader_destroy(r);
  mockbroker_destroy(mb);
  printf("test_changelog_reader: ok\n");
  return 0;
}
