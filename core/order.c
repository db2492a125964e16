/* Oldest-first window order: prefix-max keys per partition, then a stable
 * natural merge sort of (key, index) pairs; see order.h. */
#include "core/order.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t key;
  uint32_t idx;
} item_t;

typedef struct {
  int32_t partition;
  int64_t max_ts;
} pmax_t;

struct order {
  size_t max;
  item_t *a, *b;    /* items and merge buffer */
  size_t *runs;     /* run starts, then n */
  rec_t *tmp;       /* permutation buffer */
  pmax_t *pm;       /* running maximum per partition seen in the window */
};

order_t *order_new(size_t max) {
  order_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->max = max;
  size_t m = max ? max : 1;
  o->a = malloc(m * sizeof *o->a);
  o->b = malloc(m * sizeof *o->b);
  o->runs = malloc((m + 1) * sizeof *o->runs);
  o->tmp = malloc(m * sizeof *o->tmp);
  o->pm = malloc(m * sizeof *o->pm);
  if (!o->a || !o->b || !o->runs || !o->tmp || !o->pm) {
    order_free(o);
    return NULL;
  }
  return o;
}

void order_free(order_t *o) {
  if (!o) return;
  free(o->a);
  free(o->b);
  free(o->runs);
  free(o->tmp);
  free(o->pm);
  free(o);
}

/* Merges the sorted runs src[lo..mid) and src[mid..hi) into dst; left wins ties. */
static void merge(const item_t *src, item_t *dst, size_t lo, size_t mid, size_t hi) {
  size_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) dst[k++] = src[j].key < src[i].key ? src[j++] : src[i++];
  while (i < mid) dst[k++] = src[i++];
  while (j < hi) dst[k++] = src[j++];
}

int order_oldest_first(order_t *o, rec_t *recs, size_t n) {
  if (n < 2 || n > o->max) return 0;
  /* keys: running maximum of the partition's timestamps (messages arrive in
   * runs of one partition, so the lookup is redone only when it changes),
   * and where each natural run of non-decreasing keys starts */
  size_t npm = 1, cur = 0, nr = 1;
  o->pm[0] = (pmax_t){recs[0].partition, INT64_MIN};
  o->runs[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (recs[i].partition != o->pm[cur].partition) {
      for (cur = 0; cur < npm && o->pm[cur].partition != recs[i].partition; cur++) {}
      if (cur == npm) o->pm[npm++] = (pmax_t){recs[i].partition, INT64_MIN};
    }
    if (recs[i].ts_ms > o->pm[cur].max_ts) o->pm[cur].max_ts = recs[i].ts_ms;
    o->a[i] = (item_t){o->pm[cur].max_ts, (uint32_t)i};
    if (i && o->a[i].key < o->a[i - 1].key) o->runs[nr++] = i;
  }
  if (nr == 1) return 0; /* already oldest first */
  /* bottom-up merges of neighbouring runs */
  o->runs[nr] = n;
  item_t *src = o->a, *dst = o->b;
  while (nr > 1) {
    size_t w = 0;
    for (size_t r = 0; r < nr; r += 2) {
      size_t lo = o->runs[r], mid = o->runs[r + 1], hi = r + 2 <= nr ? o->runs[r + 2] : mid;
      if (mid == hi) /* the odd run out is copied as it is */
        memcpy(dst + lo, src + lo, (hi - lo) * sizeof *src);
      else
        merge(src, dst, lo, mid, hi);
      o->runs[w++] = lo;
    }
    o->runs[w] = n;
    nr = w;
    item_t *t = src;
    src = dst;
    dst = t;
  }
  for (size_t k = 0; k < n; k++) o->tmp[k] = recs[src[k].idx];
  memcpy(recs, o->tmp, n * sizeof *recs);
  return 1;
}
