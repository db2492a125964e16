/* hiredis <-> libuv glue (sink/redis_uv.h). */
#include "sink/redis_uv.h"

#include <stdlib.h>

typedef struct {
  redisAsyncContext *ac;
  uv_poll_t poll;
  int events;
} uvev_t;

static void poll_cb(uv_poll_t *h, int status, int events) {
  uvev_t *p = h->data;
  /* an error wake-up: let hiredis read/write and meet the error itself */
  int ev = status ? p->events : events;
  if (p->ac && (ev & UV_READABLE)) redisAsyncHandleRead(p->ac);
  if (p->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void update(uvev_t *p, int events) {
  p->events = events;
  if (events) uv_poll_start(&p->poll, events, poll_cb);
  else uv_poll_stop(&p->poll);
}

static void add_read(void *d) { uvev_t *p = d; update(p, p->events | UV_READABLE); }
static void del_read(void *d) { uvev_t *p = d; update(p, p->events & ~UV_READABLE); }
static void add_write(void *d) { uvev_t *p = d; update(p, p->events | UV_WRITABLE); }
static void del_write(void *d) { uvev_t *p = d; update(p, p->events & ~UV_WRITABLE); }

static void closed(uv_handle_t *h) { free(h->data); }

static void cleanup(void *d) {
  uvev_t *p = d;
  p->ac = NULL;
  uv_close((uv_handle_t *)&p->poll, closed);
}

int rsink_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return REDIS_ERR;
  uvev_t *p = calloc(1, sizeof *p);
  if (!p) return REDIS_ERR;
  if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
    free(p);
    return REDIS_ERR;
  }
  p->ac = ac;
  p->poll.data = p;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}

int rsink_uv_events(const redisAsyncContext *ac) {
  const uvev_t *p = ac->ev.data;
  return p ? p->events : 0;
}
