/* hiredis's async context on a libuv loop (private to sink/). Debian's
 * hiredis 0.14 ships <hiredis/adapters/libuv.h>, whose poll callback returns
 * on a non-zero status: libuv reports a refused or reset connection as
 * status UV_EBADF with the poll stopped, so a connect to a port where nothing
 * listens would wait forever. This adapter hands such a wake-up to hiredis as
 * readable/writable, which then sees the socket error (as hiredis 1.x's
 * adapter does). */
#ifndef IX_SINK_REDIS_UV_H
#define IX_SINK_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop; REDIS_OK or REDIS_ERR. The handle is closed (and its
 * memory freed in the close callback) when hiredis frees ac. */
int rsink_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* The events (UV_READABLE | UV_WRITABLE) hiredis waits for on ac. */
int rsink_uv_events(const redisAsyncContext *ac);

#endif
