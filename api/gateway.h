/* gateway.h -- one importer-gateway process: HTTP API, SSE relay, readiness, shutdown.
 *
 * The gateway never blocks its event loop on PostgreSQL: request SQL runs over
 * an asynchronous pool (pgpool), events come from one asynchronous LISTEN
 * connection (pglisten) and reach browsers through the hub. /healthz answers
 * while the process runs; /readyz only while the pool has a live connection
 * and the LISTEN connection is listening.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_GATEWAY_H
#define IMPORTER_GATEWAY_H

#include <event2/event.h>
#include <stddef.h>

#include "config.h"

struct gateway;

/* Tunables that are not part of DESIGN.md's configuration. */
struct gateway_options {
	int heartbeat_ms;      /* SSE ": ping" interval (IMPORTER_SSE_HEARTBEAT_MS), <= 15000 */
	int http_timeout_s;    /* read/write timeout of ordinary requests; streams are exempt */
	int max_queue;         /* requests waiting for a pool connection before 503 */
	int max_uploads;       /* concurrent request bodies over 1 MiB before 503 */
	size_t max_headers;    /* bytes of request headers before 431/413 */
	size_t sse_queue_bytes; /* per-stream output beyond which progress/logs are dropped
				 * until it drains; closed at 16x (IMPORTER_SSE_QUEUE_BYTES) */
	int drain_ms;          /* after SIGTERM, how long requests waiting on the database
				* may still finish before they get 503 */
};

/* Fills o with the defaults (heartbeat 15 s, timeout 30 s, queue 1024,
 * uploads 8, headers 16 KiB, SSE queue 256 KiB, drain 3 s). */
void gateway_options_default(struct gateway_options *o);

/* Creates a gateway on base. opts NULL means the defaults; it is copied.
 * Retains base and cfg until gateway_free().
 * Returns: new object; caller frees with gateway_free(). NULL on failure. */
struct gateway *gateway_new(struct event_base *base, const struct config *cfg,
			    const struct gateway_options *opts);

/* Binds cfg->http_addr, starts the pool and the LISTEN connection (the latter
 * once the pool's first connection attempt settled) and takes over
 * SIGTERM/SIGINT. The first signal stops accepting, ends every stream with a
 * retry: hint, lets requests waiting on the database finish for up to
 * opts->drain_ms (then they get 503), flushes the replies and leaves the loop;
 * a second signal leaves at once. Returns 0, or -1 with err. */
int gateway_start(struct gateway *gw, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The port actually bound (useful when http_addr asks for port 0). */
int gateway_port(const struct gateway *gw);

/* Frees gw, ending streams and failing queued requests (503) first. NULL-safe. */
void gateway_free(struct gateway *gw);

#endif
