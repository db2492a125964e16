/* libFuzzer target: the INI configuration loader on arbitrary file contents
 * (held in a memfd). Properties: never crash; a refusal always says why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(LOG_LVL_ERROR);
  int fd = memfd_create("fuzz_config", 0);
  if (fd < 0) return 0;
  if (size && write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  config_t *cfg = NULL;
  char err[512] = "";
  int rc = config_load(path, NULL, 0, &cfg, err, sizeof err);
  if (rc == 0) {
    if (!cfg) abort();
  } else if (err[0] == '\0' || cfg) {
    abort();
  }
  config_destroy(cfg);
  close(fd);
  return 0;
}
