/* jwt.h -- HS256 JSON Web Tokens: mint (for development) and verify (every request).
 *
 * HMAC-SHA256 and constant-time comparison come from OpenSSL's libcrypto,
 * base64 from its EVP encoder, claims parsing from json-c; this module only
 * adds the checks libjwt 1.10 lacks: alg must be exactly HS256 (never "none"),
 * exp is required and enforced, nbf enforced when present, sub must be a UUID.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_JWT_H
#define IMPORTER_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted; anything longer is rejected unread. */
#define JWT_MAX_TOKEN 8192

/* A UUID in canonical text form plus NUL. */
#define JWT_SUB_LEN 37

/* Mints a token for subject sub (a UUID) valid from now until now + ttl.
 * Returns: new string; caller frees with free(). NULL if sub is not a UUID. */
char *jwt_sign(const char *secret, const char *sub, int64_t now, int64_t ttl);

/* Verifies token with secret at time now (seconds since the epoch). On
 * success copies the lower-cased subject UUID into sub and returns 0; otherwise
 * returns -1 with a short reason in err (safe to show to the client). */
int jwt_verify(const char *secret, const char *token, int64_t now, char sub[JWT_SUB_LEN],
	       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Whether s is a UUID in 8-4-4-4-12 hex form (either case). */
int jwt_is_uuid(const char *s);

#endif
