/* import.c -- `importctl import FILE`: upload, submit, and maybe follow.
 *
 * The file is read in pieces and never whole: up to SINGLE_MAX bytes go in
 * one POST /api/jobs; a larger file (or one the gateway answers 413, its
 * IMPORTER_MAX_UPLOAD_BYTES being lower) goes through POST /api/uploads and
 * PUT /api/uploads/{id}/chunks/{seq} in CHUNK-byte pieces, the size of the
 * database's own chunks, and is then submitted with upload_id.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "follow.h"
#include "jsonutil.h"
#include "progress.h"

#define SINGLE_MAX (8 * 1024 * 1024) /* at most this in one request */
#define CHUNK      (1024 * 1024)     /* chunked upload piece (DESIGN.md: 1 MiB chunks) */

struct upload {
	struct cli *cli;  /* borrowed */
	const char *path; /* borrowed; for messages */
	int fd;
	int64_t size; /* -1 when unknown (not a regular file) */
	int64_t sent; /* bytes stored so far (chunked) */
	bool drawn;   /* a TTY upload line is on screen */
};

/* Reads up to len bytes (fewer only at end of file). Returns the count, or -1. */
static ssize_t read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int file_error(struct upload *u)
{
	return cli_error(u->cli, CLI_FILE, "cannot read %s: %s", u->path, strerror(errno));
}

/* "kind=csv&collection=...&file_name=..." (values encoded). Returns: new
 * string, caller frees; NULL when out of memory. */
static char *job_query(const struct cli_args *a, const char *kind, const char *upload_id)
{
	const char *base = strrchr(a->file, '/') != NULL ? strrchr(a->file, '/') + 1 : a->file;
	struct {
		const char *key, *value;
	} kv[] = {
	    {"kind", kind},
	    {"file_name", strcmp(a->file, "-") == 0 ? NULL : base},
	    {"collection", a->collection},
	    {"mode", a->mode},
	    {"key", a->key},
	    {"delimiter", a->delimiter},
	    {"dry_run", a->dry_run ? "true" : NULL},
	    {"upload_id", upload_id},
	};
	char batch[32];
	struct evbuffer *b = evbuffer_new();
	char *out = NULL;

	if (b == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		char *enc;

		if (kv[i].value == NULL)
			continue;
		if ((enc = http_encode(kv[i].value)) == NULL)
			goto out;
		evbuffer_add_printf(b, "%s%s=%s", evbuffer_get_length(b) > 0 ? "&" : "", kv[i].key,
		                    enc);
		free(enc);
	}
	if (a->batch_size > 0) {
		snprintf(batch, sizeof(batch), "&batch_size=%" PRId64, a->batch_size);
		evbuffer_add(b, batch, strlen(batch));
	}
	out = malloc(evbuffer_get_length(b) + 1);
	if (out != NULL) {
		size_t n = evbuffer_get_length(b);

		evbuffer_remove(b, out, n);
		out[n] = '\0';
	}
out:
	evbuffer_free(b);
	return out;
}

static const char *content_type(const char *kind)
{
	if (strcmp(kind, "csv") == 0)
		return "text/csv";
	if (strcmp(kind, "ndjson") == 0)
		return "application/x-ndjson";
	if (strcmp(kind, "backup") == 0)
		return "application/json";
	return "application/octet-stream";
}

static void draw_upload(struct upload *u)
{
	char line[128];

	if (!u->cli->tty || u->cli->args->json)
		return;
	if (u->size > 0)
		snprintf(line, sizeof(line), "uploading %s: %d%% (%.1f of %.1f MiB)", u->path,
		         (int)(100 * u->sent / u->size), (double)u->sent / (1 << 20),
		         (double)u->size / (1 << 20));
	else
		snprintf(line, sizeof(line), "uploading %s: %.1f MiB", u->path,
		         (double)u->sent / (1 << 20));
	fprintf(u->cli->out, "\r%.*s\033[K", 200, line);
	fflush(u->cli->out);
	u->drawn = true;
}

static void clear_upload(struct upload *u)
{
	if (u->drawn)
		fputs("\r\033[K", u->cli->out);
	u->drawn = false;
}

/* PUTs one chunk. Returns 0 or an exit code. */
static int put_chunk(struct upload *u, const char *upload_id, int seq, const char *data, size_t len)
{
	struct evbuffer *body = evbuffer_new();
	struct http_response res;
	char path[160], what[64];
	int rc = 0;

	if (body == NULL || evbuffer_add(body, data, len) != 0) {
		if (body != NULL)
			evbuffer_free(body);
		return cli_error(u->cli, CLI_SERVER, "out of memory");
	}
	snprintf(path, sizeof(path), "/api/uploads/%s/chunks/%d", upload_id, seq);
	snprintf(what, sizeof(what), "upload chunk %d", seq);
	if (http_call(u->cli->client, EVHTTP_REQ_PUT, path, "application/octet-stream", NULL, body,
	              &res) != 0)
		rc = cli_error(u->cli, CLI_UNREACHABLE, "%s: %s", what, res.error);
	else if (res.status != 200 && res.status != 201 && res.status != 204) {
		clear_upload(u);
		rc = cli_fail_response(u->cli, &res, what);
	}
	http_response_free(&res);
	evbuffer_free(body);
	if (rc == 0) {
		u->sent += (int64_t)len;
		draw_upload(u);
	}
	return rc;
}

/* Chunked upload: head (already read) then the rest of the file. On success
 * upload_id holds the id. Returns 0 or an exit code. */
static int upload_chunked(struct upload *u, const char *head, size_t head_len, char *upload_id,
                          size_t idlen)
{
	struct http_response res;
	struct json_object *o;
	char path[400];
	char *name = NULL, *buf = NULL;
	const char *base = strrchr(u->path, '/') != NULL ? strrchr(u->path, '/') + 1 : u->path;
	int seq = 0, rc = 0;

	name = http_encode(base);
	snprintf(path, sizeof(path), "/api/uploads?file_name=%s", name != NULL ? name : "");
	free(name);
	if (http_call(u->cli->client, EVHTTP_REQ_POST, path, NULL, NULL, NULL, &res) != 0) {
		rc = cli_error(u->cli, CLI_UNREACHABLE, "upload: %s", res.error);
		goto out;
	}
	if (res.status != 201 && res.status != 200) {
		rc = cli_fail_response(u->cli, &res, "upload");
		http_response_free(&res);
		goto out;
	}
	o = cli_parse_body(u->cli, &res);
	http_response_free(&res);
	if (o == NULL || jsonutil_get_string(o, "upload_id") == NULL) {
		json_object_put(o);
		rc = cli_error(u->cli, CLI_SERVER, "upload: no upload_id in the answer");
		goto out;
	}
	snprintf(upload_id, idlen, "%s", jsonutil_get_string(o, "upload_id"));
	json_object_put(o);
	u->sent = 0;
	draw_upload(u);
	for (size_t off = 0; off < head_len; off += CHUNK) {
		size_t n = head_len - off < CHUNK ? head_len - off : CHUNK;

		if ((rc = put_chunk(u, upload_id, seq++, head + off, n)) != 0)
			goto out;
	}
	if ((buf = malloc(CHUNK)) == NULL) {
		rc = cli_error(u->cli, CLI_SERVER, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read_full(u->fd, buf, CHUNK);

		if (n < 0) {
			clear_upload(u);
			rc = file_error(u);
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = put_chunk(u, upload_id, seq++, buf, (size_t)n)) != 0)
			goto out;
	}
out:
	clear_upload(u);
	free(buf);
	return rc;
}

/* POST /api/jobs?query with body (may be NULL) and an Idempotency-Key, so
 * that a submit repeated after a lost answer finds the first job instead of
 * making a second. Returns 0 with *res filled (any status), or an exit code
 * (not sent; nothing to free). */
static int submit(struct cli *cli, const char *query, const char *idem_key, const char *ctype,
                  const char *data, size_t len, struct http_response *res)
{
	const char *const headers[] = {"Idempotency-Key", idem_key, NULL};
	struct evbuffer *body = NULL;
	char *path;
	size_t plen = strlen(query) + 16;
	int rc = 0;

	if ((path = malloc(plen)) == NULL)
		return cli_error(cli, CLI_SERVER, "out of memory");
	snprintf(path, plen, "/api/jobs?%s", query);
	if (data != NULL && ((body = evbuffer_new()) == NULL ||
	                     evbuffer_add_reference(body, data, len, NULL, NULL) != 0))
		rc = cli_error(cli, CLI_SERVER, "out of memory");
	else if (http_call(cli->client, EVHTTP_REQ_POST, path, data != NULL ? ctype : NULL, headers,
	                   body, res) != 0)
		rc = cli_error(cli, CLI_UNREACHABLE, "submit: %s", res->error);
	if (body != NULL)
		evbuffer_free(body);
	free(path);
	return rc;
}

/* A key unique to this run: "importctl-" and 32 hex digits from /dev/urandom. */
static int new_idempotency_key(char *buf, size_t len)
{
	unsigned char r[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	size_t o;

	if (fd < 0 || read_full(fd, (char *)r, sizeof(r)) != (ssize_t)sizeof(r)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	o = (size_t)snprintf(buf, len, "importctl-");
	for (size_t i = 0; i < sizeof(r) && o + 2 < len; i++, o += 2)
		snprintf(buf + o, len - o, "%02x", r[i]);
	return 0;
}

int cmd_import(struct cli *cli)
{
	const struct cli_args *a = cli->args;
	const char *kind = a->kind != NULL ? a->kind : args_kind_from_file(a->file);
	struct upload u = {cli, a->file, -1, -1, 0, false};
	struct http_response res = {0};
	struct json_object *job = NULL;
	char upload_id[64] = "", idem[48], *query = NULL, *head = NULL;
	ssize_t head_len;
	struct stat st;
	int rc;

	u.fd = strcmp(a->file, "-") == 0 ? STDIN_FILENO : open(a->file, O_RDONLY | O_CLOEXEC);
	if (u.fd < 0)
		return file_error(&u);
	if (fstat(u.fd, &st) != 0) {
		rc = file_error(&u);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = cli_error(cli, CLI_FILE, "cannot read %s: it is a directory", a->file);
		goto out;
	}
	if (S_ISREG(st.st_mode))
		u.size = (int64_t)st.st_size;
	if (new_idempotency_key(idem, sizeof(idem)) != 0) {
		rc = cli_error(cli, CLI_SERVER, "cannot read /dev/urandom: %s", strerror(errno));
		goto out;
	}
	/* One more byte than one request takes tells whether the file is larger. */
	if ((head = malloc(SINGLE_MAX + 1)) == NULL) {
		rc = cli_error(cli, CLI_SERVER, "out of memory");
		goto out;
	}
	if ((head_len = read_full(u.fd, head, SINGLE_MAX + 1)) < 0) {
		rc = file_error(&u);
		goto out;
	}
	if (head_len <= SINGLE_MAX) {
		if ((query = job_query(a, kind, NULL)) == NULL) {
			rc = cli_error(cli, CLI_SERVER, "out of memory");
			goto out;
		}
		if ((rc = submit(cli, query, idem, content_type(kind), head, (size_t)head_len,
		                 &res)) != 0)
			goto out;
		if (res.status != 413 && res.status != 0)
			goto submitted;
		/* The gateway takes less in one request than this: it answers
		 * 413, or (libevent, Content-Length over its limit) closes the
		 * connection before reading the body. Try chunks; if the gateway
		 * is simply down, the upload says so. Should the first submit have
		 * gone through after all, the same Idempotency-Key returns its job. */
		http_response_free(&res);
		free(query);
		query = NULL;
	}
	rc = upload_chunked(&u, head, (size_t)head_len, upload_id, sizeof(upload_id));
	if (rc != 0)
		goto out;
	free(head);
	head = NULL;
	if ((query = job_query(a, kind, upload_id)) == NULL) {
		rc = cli_error(cli, CLI_SERVER, "out of memory");
		goto out;
	}
	if ((rc = submit(cli, query, idem, NULL, NULL, 0, &res)) != 0)
		goto out;
submitted:
	if (res.status != 200 && res.status != 202) {
		rc = cli_fail_response(cli, &res, "submit");
		goto out;
	}
	if ((job = cli_parse_body(cli, &res)) == NULL || jsonutil_get_string(job, "id") == NULL) {
		rc = job != NULL ? cli_error(cli, CLI_SERVER, "submit: no job id in the answer")
		                 : CLI_SERVER;
		goto out;
	}
	if (!a->follow) {
		if (a->json)
			fprintf(cli->out, "%s\n", res.body);
		else
			fprintf(cli->out, "%s\n", jsonutil_get_string(job, "id"));
		rc = CLI_OK;
		goto out;
	}
	if (!a->json) {
		fprintf(cli->out, "job %s: %s\n", jsonutil_get_string(job, "id"), a->file);
		fflush(cli->out);
	}
	if (u.fd != STDIN_FILENO) {
		close(u.fd);
		u.fd = -1;
	}
	rc = follow_job(cli, jsonutil_get_string(job, "id"), FOLLOW_PROGRESS, 0);
out:
	http_response_free(&res);
	json_object_put(job);
	free(query);
	free(head);
	if (u.fd >= 0 && u.fd != STDIN_FILENO)
		close(u.fd);
	return rc;
}
