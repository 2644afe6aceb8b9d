/* static.h -- the web UI's assets, embedded at build time, served by the gateway.
 *
 * cmake/embed_web.cmake turns every file of web/ into one entry of
 * static_assets (sorted by path). Serving never touches the filesystem: a
 * path is either exactly one of the table's or 404, so there is nothing to
 * traverse.
 */
#ifndef IMPORTER_STATIC_H
#define IMPORTER_STATIC_H

#include <event2/http.h>
#include <stddef.h>

struct static_asset {
	const char *path; /* URL path, "/index.html" */
	const char *content_type;
	const char *etag; /* quoted strong ETag: a hash of the content */
	const unsigned char *data;
	size_t len;
};

extern const struct static_asset static_assets[];
extern const size_t static_assets_count;

/* The asset for a URL path ("/" is "/index.html"), or NULL. The path is
 * compared as sent (no decoding, no normalisation). */
const struct static_asset *static_find(const char *path);

/* Answers req from the table: GET/HEAD 200 (or 304 when If-None-Match
 * matches), 404 for a path not in the table, 405 (Allow: GET, HEAD) for other
 * methods (both with DESIGN.md's JSON error body). Every reply carries the security headers (CSP 'self' only, nosniff,
 * no referrer, no framing). Returns the status sent. */
int static_serve(struct evhttp_request *req);

#endif
