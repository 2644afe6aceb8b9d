/* pglisten.h -- one LISTEN connection driven by a libevent loop, with reconnect.
 *
 * Connects asynchronously (never blocks the loop), LISTENs on a fixed set of
 * channels, hands every notification to a callback and, when the connection
 * drops, reconnects with exponential backoff and jitter. LISTEN does not
 * survive a reconnect and notifications sent meanwhile are lost, so the owner
 * is told through on_state(true) after every (re)connect and must then catch
 * up from the tables: NOTIFY is a hint, the table is the truth. This
 * connection never runs job SQL.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_PGLISTEN_H
#define IMPORTER_PGLISTEN_H

#include <event2/dns.h>
#include <event2/event.h>
#include <stdbool.h>

struct pglisten;

/* A notification arrived. channel and payload are borrowed for the call. */
typedef void (*pglisten_notify_cb)(const char *channel, const char *payload, void *arg);
/* ready=true: connected and listening (catch up now); false: connection lost. */
typedef void (*pglisten_state_cb)(bool ready, void *arg);

/* Creates a listener for the NULL-terminated list of channel names (fixed
 * identifiers such as those of channels.h, never user input). Nothing happens
 * until pglisten_start(). url, app and the channel strings are copied.
 * dns resolves the URL's host name off the loop (see pgresolve.h); NULL lets
 * libpq resolve it, blocking. Retains base, dns and arg until pglisten_free().
 * Returns: new object; caller frees with pglisten_free(). NULL on failure. */
struct pglisten *pglisten_new(struct event_base *base, struct evdns_base *dns, const char *url,
			      const char *app, const char *const *channels,
			      pglisten_notify_cb on_notify, pglisten_state_cb on_state, void *arg);

/* Begins connecting; failures are retried from the loop. */
void pglisten_start(struct pglisten *pl);

/* Whether the connection is up and the LISTENs are acknowledged. */
bool pglisten_ready(const struct pglisten *pl);

/* Closes the connection and frees pl. NULL-safe. Must not be called from
 * pl's own callbacks. */
void pglisten_free(struct pglisten *pl);

#endif
