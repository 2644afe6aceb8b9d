/* jwt.c -- HS256 JWT signing and verification (see jwt.h). */
#include "jwt.h"

#include <ctype.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

#define SIG_LEN 32 /* SHA-256 */

int jwt_is_uuid(const char *s)
{
	static const int dash[] = {8, 13, 18, 23};
	size_t d = 0;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return 0;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* base64url without padding, via OpenSSL's standard-alphabet encoder. */
static char *b64url_encode(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n;

	if (out == NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

/* The 6-bit value of a base64url character (which must be one). */
static unsigned b64url_value(char c)
{
	return c >= 'A' && c <= 'Z'   ? (unsigned)(c - 'A')
	       : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 26)
	       : c >= '0' && c <= '9' ? (unsigned)(c - '0' + 52)
	       : c == '-'             ? 62
				      : 63;
}

/* Decodes len base64url characters. Returns the decoded length or -1; out must
 * hold len bytes. Rejects the standard alphabet's '+', '/' and padding, and
 * non-canonical text: the bits the last character carries beyond the data
 * must be zero, or four spellings of one signature would all verify. */
static int b64url_decode(const char *in, size_t len, unsigned char *out)
{
	size_t padded = (len + 3) / 4 * 4;
	unsigned char *buf;
	int n;

	if (len % 4 == 1)
		return -1;
	buf = malloc(padded + 1);
	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) {
			free(buf);
			return -1;
		}
		buf[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
	}
	if ((len % 4 == 2 && (b64url_value(in[len - 1]) & 0x0f) != 0) ||
	    (len % 4 == 3 && (b64url_value(in[len - 1]) & 0x03) != 0)) {
		free(buf);
		return -1;
	}
	for (size_t i = len; i < padded; i++)
		buf[i] = '=';
	n = padded > 0 ? EVP_DecodeBlock(out, buf, (int)padded) : 0;
	free(buf);
	if (n < 0)
		return -1;
	return n - (int)(padded - len); /* EVP_DecodeBlock counts the padding as zero bytes */
}

static bool hmac_sha256(const char *secret, const char *data, size_t len,
			unsigned char out[SIG_LEN])
{
	unsigned int outlen = 0;

	return HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, len,
		    out, &outlen) != NULL &&
	       outlen == SIG_LEN;
}

char *jwt_sign(const char *secret, const char *sub, int64_t now, int64_t ttl)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	struct json_object *claims;
	char *h = NULL, *c = NULL, *s = NULL, *signing = NULL, *token = NULL;
	unsigned char sig[SIG_LEN];
	const char *text;

	if (!jwt_is_uuid(sub))
		return NULL;
	claims = json_object_new_object();
	jsonutil_add(claims, "sub", json_object_new_string(sub));
	jsonutil_add(claims, "iat", json_object_new_int64(now));
	jsonutil_add(claims, "nbf", json_object_new_int64(now));
	jsonutil_add(claims, "exp", json_object_new_int64(now + ttl));
	text = json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN);
	h = b64url_encode((const unsigned char *)header, strlen(header));
	c = b64url_encode((const unsigned char *)text, strlen(text));
	if (h == NULL || c == NULL)
		goto out;
	signing = malloc(strlen(h) + strlen(c) + 2);
	if (signing == NULL)
		goto out;
	sprintf(signing, "%s.%s", h, c);
	if (!hmac_sha256(secret, signing, strlen(signing), sig))
		goto out;
	s = b64url_encode(sig, sizeof(sig));
	if (s == NULL)
		goto out;
	token = malloc(strlen(signing) + strlen(s) + 2);
	if (token != NULL)
		sprintf(token, "%s.%s", signing, s);
out:
	json_object_put(claims);
	free(h);
	free(c);
	free(s);
	free(signing);
	return token;
}

/* Decodes and parses one base64url JSON part; NULL unless it is an object.
 * Returns: new object; caller frees with json_object_put(). */
static struct json_object *decode_part(const char *part, size_t len)
{
	unsigned char *buf = malloc(len + 1);
	struct json_object *obj = NULL;
	struct json_tokener *tok;
	int n;

	if (buf == NULL)
		return NULL;
	n = b64url_decode(part, len, buf);
	if (n > 0) {
		tok = json_tokener_new();
		obj = json_tokener_parse_ex(tok, (const char *)buf, n);
		/* Trailing bytes after the object are as bad as a malformed one. */
		if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
				    json_tokener_get_parse_end(tok) != (size_t)n ||
				    !json_object_is_type(obj, json_type_object))) {
			json_object_put(obj);
			obj = NULL;
		}
		json_tokener_free(tok);
	}
	free(buf);
	return obj;
}

/* Reads a NumericDate claim. Returns 1 if present and numeric, 0 if absent,
 * -1 if present but not a number. */
static int numeric_claim(struct json_object *claims, const char *key, double *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(claims, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	*out = json_object_get_double(v);
	return 1;
}

int jwt_verify(const char *secret, const char *token, int64_t now, char sub[JWT_SUB_LEN],
	       char *err, size_t errlen)
{
	struct json_object *header = NULL, *claims = NULL;
	unsigned char want[SIG_LEN], got[SIG_LEN + 3];
	const char *dot1, *dot2, *alg, *s;
	double exp = 0, nbf = 0;
	int rc = -1, has;
	size_t len;

	len = token != NULL ? strnlen(token, JWT_MAX_TOKEN + 1) : 0;
	if (len == 0 || len > JWT_MAX_TOKEN) {
		snprintf(err, errlen, "missing or oversized token");
		return -1;
	}
	dot1 = strchr(token, '.');
	dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
	if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
		snprintf(err, errlen, "malformed token");
		return -1;
	}
	header = decode_part(token, (size_t)(dot1 - token));
	if (header == NULL) {
		snprintf(err, errlen, "malformed token header");
		goto out;
	}
	alg = jsonutil_get_string(header, "alg");
	if (alg == NULL || strcmp(alg, "HS256") != 0) {
		snprintf(err, errlen, "unsupported token algorithm (only HS256)");
		goto out;
	}
	if (json_object_object_get_ex(header, "crit", NULL)) {
		snprintf(err, errlen, "unsupported critical token header");
		goto out;
	}
	/* The signature covers the encoded header and claims as sent. */
	if (!hmac_sha256(secret, token, (size_t)(dot2 - token), want) ||
	    strlen(dot2 + 1) > 4 * ((SIG_LEN + 2) / 3) ||
	    b64url_decode(dot2 + 1, strlen(dot2 + 1), got) != SIG_LEN ||
	    CRYPTO_memcmp(want, got, SIG_LEN) != 0) {
		snprintf(err, errlen, "bad token signature");
		goto out;
	}
	claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (claims == NULL) {
		snprintf(err, errlen, "malformed token claims");
		goto out;
	}
	if (numeric_claim(claims, "exp", &exp) != 1) {
		snprintf(err, errlen, "token has no valid exp claim");
		goto out;
	}
	if ((double)now >= exp) {
		snprintf(err, errlen, "token expired");
		goto out;
	}
	has = numeric_claim(claims, "nbf", &nbf);
	if (has < 0 || (has > 0 && (double)now < nbf)) {
		snprintf(err, errlen, "token not yet valid");
		goto out;
	}
	s = jsonutil_get_string(claims, "sub");
	if (!jwt_is_uuid(s)) {
		snprintf(err, errlen, "token subject is not a user id");
		goto out;
	}
	for (int i = 0; i < 36; i++)
		sub[i] = (char)tolower((unsigned char)s[i]);
	sub[36] = '\0';
	rc = 0;
out:
	json_object_put(header);
	json_object_put(claims);
	return rc;
}
