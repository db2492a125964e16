/* libFuzzer target: the changelog record decoder and the restore accumulator
 * on arbitrary bytes. The first byte picks the key length (0..15), the next
 * bytes are the key and the rest the value; each input is decoded, then fed
 * to a restore of partition 0 with 16-byte blobs (records that decode must
 * never crash the restore, whatever their fields say). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "state/changelog.h"
#include "state/store.h"

static store_t *g_store;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_store) {
    log_set_level(LOG_LVL_ERROR);
    store_opts_t o = {.blob_size = 16, .small_pages = 1};
    if (store_new(&o, &g_store) != 0) __builtin_trap();
  }
  if (size < 1) return 0;
  size_t klen = data[0] & 15u;
  if (size - 1 < klen) return 0;
  const uint8_t *key = data + 1, *val = data + 1 + klen;
  size_t vlen = size - 1 - klen;
  char err[300];
  changelog_rec_t rec;
  if (changelog_decode(key, klen, val, vlen, &rec, err, sizeof err) == 0) {
    if (rec.kind == CHANGELOG_USER && rec.blob_size && ((const uint8_t *)rec.blob)[0] == 0x5a &&
        ((const uint8_t *)rec.blob)[rec.blob_size - 1] == 0xa5)
      err[0] = 0; /* touch the whole blob range */
  } else if (err[0] == 0) {
    __builtin_trap(); /* a refusal always says why */
  }
  changelog_restore_t *rs;
  if (changelog_restore_new(g_store, 0, rec.fingerprint, &rs) != 0) return 0;
  (void)changelog_restore_add(rs, 0, key, klen, val, vlen, err, sizeof err);
  changelog_restore_info_t info;
  changelog_restore_finish(rs, &info);
  (void)changelog_restore_skip(rs, rec.user_id, rec.offset);
  changelog_restore_destroy(rs);
  store_drop_partition(g_store, 0);
  return 0;
}
