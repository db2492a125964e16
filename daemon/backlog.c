/* The retry backlog (backlog.h): a singly linked FIFO of message copies. */
#include "daemon/backlog.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

typedef struct node {
  struct node *next;
  backlog_msg_t msg;
  producer_header_t headers[PRODUCER_MAX_HEADERS];
  char *mem[PRODUCER_MAX_HEADERS * 2 + 2]; /* key, value, then header names and values */
} node_t;

struct backlog {
  node_t *head, *tail;
  uint64_t len;
};

int backlog_new(backlog_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : IX_ENOMEM;
}

static void node_free(node_t *n) {
  for (size_t i = 0; i < sizeof n->mem / sizeof n->mem[0]; i++) free(n->mem[i]);
  free(n);
}

void backlog_destroy(backlog_t *bl) {
  if (!bl) return;
  while (bl->head) backlog_pop(bl);
  free(bl);
}

static char *copy(const void *src, size_t len) {
  char *p = malloc(len ? len : 1);
  if (p && len) memcpy(p, src, len);
  return p;
}

int backlog_push(backlog_t *bl, uint64_t opaque, const void *key, size_t key_len,
                 const void *value, size_t value_len, const producer_header_t *headers,
                 size_t n_headers, uint32_t attempts, int64_t not_before_ms) {
  node_t *n = calloc(1, sizeof *n);
  if (!n) return IX_ENOMEM;
  n->mem[0] = copy(key, key_len);
  n->mem[1] = copy(value, value_len);
  if (!n->mem[0] || !n->mem[1]) goto err;
  if (n_headers > PRODUCER_MAX_HEADERS) n_headers = PRODUCER_MAX_HEADERS;
  for (size_t i = 0; i < n_headers; i++) {
    n->mem[2 + 2 * i] = strdup(headers[i].name);
    n->mem[3 + 2 * i] = strdup(headers[i].value);
    if (!n->mem[2 + 2 * i] || !n->mem[3 + 2 * i]) goto err;
    n->headers[i] = (producer_header_t){n->mem[2 + 2 * i], n->mem[3 + 2 * i]};
  }
  n->msg = (backlog_msg_t){.opaque = opaque, .not_before_ms = not_before_ms,
                           .attempts = attempts, .key = n->mem[0], .key_len = key_len,
                           .value = n->mem[1], .value_len = value_len, .n_headers = n_headers,
                           .headers = n->headers};
  if (bl->tail) bl->tail->next = n;
  else bl->head = n;
  bl->tail = n;
  bl->len++;
  return 0;
err:
  node_free(n);
  return IX_ENOMEM;
}

const backlog_msg_t *backlog_head(const backlog_t *bl) { return bl->head ? &bl->head->msg : NULL; }

void backlog_pop(backlog_t *bl) {
  node_t *n = bl->head;
  if (!n) return;
  bl->head = n->next;
  if (!bl->head) bl->tail = NULL;
  bl->len--;
  node_free(n);
}

uint32_t backlog_defer_head(backlog_t *bl, int64_t not_before_ms) {
  if (!bl->head) return 0;
  bl->head->msg.not_before_ms = not_before_ms;
  return ++bl->head->msg.attempts;
}

uint64_t backlog_len(const backlog_t *bl) { return bl->len; }
