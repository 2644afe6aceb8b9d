/* pgresolve.c -- DNS off the event loop for libpq connections (see pgresolve.h). */
#include "pgresolve.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "pgconn.h"

struct pgresolve {
	struct evdns_getaddrinfo_request *req; /* NULL once answered */
	char *url, *app;                       /* owned */
	char host[256];
	pgresolve_cb cb;
	void *arg;
	bool starting;  /* inside pgresolve_open(): an answer is only recorded */
	bool answered;
	bool cancelled;
	int result;
	char addr[64];  /* the first address, when result is 0 */
};

/* Copies to host the one DNS name url connects to, if that is what it does. */
static bool host_to_resolve(const char *url, char *host, size_t hostlen)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	const char *h = NULL, *hostaddr = NULL;
	unsigned char ip[16];
	bool name;

	if (opts == NULL)
		return false; /* libpq will report what is wrong with it */
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0)
			h = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	name = h != NULL && h[0] != '\0' && h[0] != '/' && h[0] != '@' &&
	       (hostaddr == NULL || hostaddr[0] == '\0') && strchr(h, ',') == NULL &&
	       strlen(h) < hostlen && evutil_inet_pton(AF_INET, h, ip) != 1 &&
	       evutil_inet_pton(AF_INET6, h, ip) != 1;
	if (name)
		snprintf(host, hostlen, "%s", h);
	PQconninfoFree(opts);
	return name;
}

static void finish(struct pgresolve *r)
{
	if (r->result == 0) {
		r->cb(pgconn_open_at(r->url, r->app, r->addr), NULL, r->arg);
	} else {
		char msg[512];

		snprintf(msg, sizeof(msg), "could not resolve host \"%s\": %s", r->host,
			 evutil_gai_strerror(r->result));
		r->cb(NULL, msg, r->arg);
	}
	free(r->url);
	free(r->app);
	free(r);
}

static void resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct pgresolve *r = arg;

	r->req = NULL;
	r->answered = true;
	r->result = result;
	if (result == 0 && res != NULL) {
		const void *ip = res->ai_family == AF_INET6
					 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
					 : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;

		if (evutil_inet_ntop(res->ai_family, ip, r->addr, sizeof(r->addr)) == NULL)
			r->result = EVUTIL_EAI_FAIL;
	} else if (result == 0) {
		r->result = EVUTIL_EAI_NONAME;
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	if (r->cancelled || result == EVUTIL_EAI_CANCEL) {
		free(r->url);
		free(r->app);
		free(r);
	} else if (!r->starting) {
		finish(r);
	}
}

struct pgresolve *pgresolve_open(struct evdns_base *dns, const char *url, const char *app,
				 pgresolve_cb cb, void *arg)
{
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
					.ai_socktype = SOCK_STREAM,
					.ai_protocol = IPPROTO_TCP,
					.ai_flags = EVUTIL_AI_ADDRCONFIG};
	struct pgresolve *r;
	char host[256];

	if (dns == NULL || !host_to_resolve(url, host, sizeof(host))) {
		cb(pgconn_open(url, app, 1), NULL, arg);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->url = strdup(url)) == NULL || (r->app = strdup(app)) == NULL) {
		if (r != NULL)
			free(r->url);
		free(r);
		cb(NULL, "out of memory", arg);
		return NULL;
	}
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->cb = cb;
	r->arg = arg;
	r->starting = true;
	r->req = evdns_getaddrinfo(dns, host, NULL, &hints, resolved_cb, r);
	r->starting = false;
	if (r->answered) { /* from the hosts file or a cache: already here */
		finish(r);
		return NULL;
	}
	if (r->req == NULL) { /* not started and not answered */
		r->result = EVUTIL_EAI_FAIL;
		finish(r);
		return NULL;
	}
	return r;
}

void pgresolve_cancel(struct pgresolve *r)
{
	if (r == NULL)
		return;
	r->cancelled = true;
	/* The answer (EVUTIL_EAI_CANCEL) comes from a deferred callback of the
	 * loop, which frees r: see the teardown in pgresolve.h. */
	evdns_getaddrinfo_cancel(r->req);
}
