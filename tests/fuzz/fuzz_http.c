/* libFuzzer target: the HTTP request-head parser (http_parse_request) on
 * arbitrary bytes, as the server hands it a head: NUL-free, NUL-terminated.
 * Properties: never crash or read past the head; 0 only with a known route
 * (and, for /v1/users/<id>, an id whose decimal text is in the head); any
 * other answer is 400, 404 or 405. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192 || memchr(data, '\0', size)) return 0; /* the server refuses these */
  char *req = malloc(size + 1);
  char *orig = malloc(size + 1);
  if (!req || !orig) abort();
  memcpy(req, data, size);
  req[size] = '\0';
  memcpy(orig, req, size + 1);
  http_request_t rq;
  int st = http_parse_request(req, size, &rq);
  if (st == 0) {
    if (rq.route != HTTP_ROUTE_METRICS && rq.route != HTTP_ROUTE_HEALTH &&
        rq.route != HTTP_ROUTE_USER)
      abort();
    if (rq.route == HTTP_ROUTE_USER) {
      char want[40];
      snprintf(want, sizeof want, "/v1/users/%" PRIu64, rq.user_id);
      if (!strstr(orig, want)) abort();
    }
  } else if (st != 400 && st != 404 && st != 405) {
    abort();
  }
  free(req);
  free(orig);
  return 0;
}
