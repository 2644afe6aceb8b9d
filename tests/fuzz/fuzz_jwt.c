/* fuzz_jwt.c -- libFuzzer harness for api/jwt.c.
 *
 * (1) Any input as a token: jwt_verify never crashes, never reads outside the
 * token, and accepts only with a canonical lower-case UUID subject. (2) A
 * token minted with jwt_sign verifies at a time inside its window, is refused
 * before nbf and at exp, and is refused once any one character of it is
 * replaced by another base64url character (chosen by the input) -- so no
 * header, claim or signature byte is ignored, and there is no second
 * spelling of a valid signature.
 * Built and run by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                      \
	do {                                                                          \
		if (!(x)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#x);                                                  \
			abort();                                                      \
		}                                                                     \
	} while (0)

static const char SECRET[] = "fuzz-secret";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void arbitrary(const uint8_t *data, size_t size)
{
	char *token = malloc(size + 1), sub[JWT_SUB_LEN], err[128];

	CHECK(token != NULL);
	memcpy(token, data, size);
	token[size] = '\0';
	if (jwt_verify(SECRET, token, 1800000000, sub, err, sizeof(err)) == 0) {
		CHECK(strlen(sub) == 36 && jwt_is_uuid(sub));
		for (const char *p = sub; *p != '\0'; p++)
			CHECK(!(*p >= 'A' && *p <= 'F'));
	} else {
		CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
	}
	free(token);
}

static void minted(const uint8_t *data, size_t size)
{
	char subject[37], sub[JWT_SUB_LEN], err[128];
	const int64_t now = 1800000000, ttl = 600;
	char *token;
	size_t len, pos;
	char was;

	if (size < 19)
		return;
	/* a UUID from the first 16 bytes, in upper case to test normalising */
	snprintf(subject, sizeof(subject),
		 "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", data[0],
		 data[1], data[2], data[3], data[4], data[5], data[6], data[7], data[8], data[9],
		 data[10], data[11], data[12], data[13], data[14], data[15]);
	token = jwt_sign(SECRET, subject, now, ttl);
	CHECK(token != NULL);
	CHECK(jwt_verify(SECRET, token, now + data[16] % ttl, sub, err, sizeof(err)) == 0);
	for (int i = 0; i < 36; i++)
		CHECK(sub[i] == (subject[i] >= 'A' && subject[i] <= 'F' ? subject[i] + 32 : subject[i]));
	CHECK(jwt_verify(SECRET, token, now + ttl, sub, err, sizeof(err)) != 0);
	CHECK(jwt_verify(SECRET, token, now - 1 - data[16] % 60, sub, err, sizeof(err)) != 0);
	CHECK(jwt_verify("other-secret", token, now, sub, err, sizeof(err)) != 0);
	/* one character replaced by another base64url character (dots stay) */
	len = strlen(token);
	pos = ((size_t)data[17] << 8 | data[18]) % len;
	if (token[pos] != '.') {
		was = token[pos];
		token[pos] = B64URL[(strchr(B64URL, was) - B64URL + 1 + data[16] % 63) % 64];
		CHECK(token[pos] != was);
		CHECK(jwt_verify(SECRET, token, now, sub, err, sizeof(err)) != 0);
	}
	free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arbitrary(data, size);
	minted(data, size);
	return 0;
}
