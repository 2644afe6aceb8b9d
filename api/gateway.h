/* gateway.h -- one importer-gateway process: HTTP listener, LISTEN connection, shutdown.
 *
 * The gateway never blocks its event loop on PostgreSQL: the LISTEN
 * connection is asynchronous (pglisten) and request SQL will run over an
 * asynchronous pool. /healthz answers while the process runs; /readyz only
 * while the database connections are up.
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

/* Creates a gateway on base. Retains base and cfg until gateway_free().
 * Returns: new object; caller frees with gateway_free(). NULL on failure. */
struct gateway *gateway_new(struct event_base *base, const struct config *cfg);

/* Binds cfg->http_addr, starts the LISTEN connection and takes over
 * SIGTERM/SIGINT. Returns 0, or -1 with err. */
int gateway_start(struct gateway *gw, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The port actually bound (useful when http_addr asks for port 0). */
int gateway_port(const struct gateway *gw);

/* Frees gw, closing the listener and connections. NULL-safe. */
void gateway_free(struct gateway *gw);

#endif
