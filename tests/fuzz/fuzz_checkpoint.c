/* libFuzzer target: the checkpoint reader on arbitrary bytes, both as a
 * validator (no store) and loading into a store with 16-byte blobs. The
 * bytes are served from a memfd so the reader's fstat/lseek/read path is
 * the one used on real files. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "state/checkpoint.h"
#include "state/store.h"

static store_t *g_store;
static int g_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_store) {
    log_set_level(LOG_LVL_ERROR);
    store_opts_t o = {.blob_size = 16, .small_pages = 1};
    if (store_new(&o, &g_store) != 0) __builtin_trap();
    g_fd = memfd_create("fuzz_checkpoint", 0);
    if (g_fd < 0) __builtin_trap();
  }
  if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size) __builtin_trap();
  char err[512];
  ckpt_file_info_t info;
  lseek(g_fd, 0, SEEK_SET);
  int rc = ckpt_load_fd(g_fd, "fuzz", 0, 0, NULL, &info, err, sizeof err);
  if (rc > 0 || (rc < 0 && err[0] == '\0')) __builtin_trap(); /* errors always explained */
  lseek(g_fd, 0, SEEK_SET);
  rc = ckpt_load_fd(g_fd, "fuzz", 0, 0x5EED, g_store, &info, err, sizeof err);
  if (rc > 0 || (rc < 0 && err[0] == '\0')) __builtin_trap();
  if (rc == 0 && store_partition_users(g_store, 0) != info.users) __builtin_trap();
  store_drop_partition(g_store, 0);
  return 0;
}
