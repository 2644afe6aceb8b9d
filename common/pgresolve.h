/* pgresolve.h -- opening a nonblocking PostgreSQL connection without blocking
 * the event loop on DNS.
 *
 * PQconnectStart() resolves a host name with a blocking getaddrinfo(): one
 * slow DNS server would stall every client of the loop on each reconnect.
 * When the URL names exactly one host by name (no hostaddr, not an IP
 * literal, not a socket directory, not a list), the name is resolved with
 * libevent's evdns first and the connection is started with hostaddr= set to
 * the first address (host= stays, for TLS and .pgpass). Anything else is
 * handed to libpq as it is. A host taken from PGHOST rather than the URL is
 * left to libpq.
 */
#ifndef IMPORTER_PGRESOLVE_H
#define IMPORTER_PGRESOLVE_H

#include <event2/dns.h>
#include <libpq-fe.h>

/* conn: a started nonblocking connection (check PQstatus; the callee owns
 * it), or NULL with error (borrowed for the call) when resolving failed. */
typedef void (*pgresolve_cb)(PGconn *conn, const char *error, void *arg);

struct pgresolve;

/* Starts opening url (application name app); cb runs exactly once, possibly
 * before this returns (then the result is NULL), unless cancelled. dns may be
 * NULL: then libpq resolves (blocking). Returns a handle for
 * pgresolve_cancel() while the lookup is pending, else NULL. */
struct pgresolve *pgresolve_open(struct evdns_base *dns, const char *url, const char *app,
				 pgresolve_cb cb, void *arg);

/* Abandons a pending open: cb will not run. r may be NULL. The handle is
 * freed by the loop's next iteration (libevent answers a cancelled lookup
 * from a deferred callback): a program tearing down calls evdns_base_free()
 * and then runs the loop once (EVLOOP_NONBLOCK) before freeing the base. */
void pgresolve_cancel(struct pgresolve *r);

#endif
