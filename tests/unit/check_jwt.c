/* check_jwt.c -- HS256 tokens: what is accepted, and every way a token is refused. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "test_suite.h"

#define SECRET "test-secret"
#define USER   "6F1C2B9E-0D4A-4C1B-9E3F-2A7B8C9D0E1F"
#define NOW    1800000000

/* Builds a token from raw header and claims JSON, signed with secret (or with
 * the given signature text when sig is not NULL), base64url by OpenSSL. */
static char *make(const char *header, const char *claims, const char *secret, const char *sig)
{
	static char out[4096];
	unsigned char mac[32], enc[1024];
	unsigned int maclen = 0;
	char part[2][1024];
	const char *src[2] = {header, claims};

	for (int i = 0; i < 2; i++) {
		int n = EVP_EncodeBlock(enc, (const unsigned char *)src[i], (int)strlen(src[i]));
		while (n > 0 && enc[n - 1] == '=')
			n--;
		enc[n] = '\0';
		for (int k = 0; k < n; k++)
			enc[k] = enc[k] == '+' ? '-' : enc[k] == '/' ? '_' : enc[k];
		snprintf(part[i], sizeof(part[i]), "%s", enc);
	}
	snprintf(out, sizeof(out), "%s.%s", part[0], part[1]);
	if (sig != NULL) {
		snprintf(out + strlen(out), sizeof(out) - strlen(out), ".%s", sig);
		return out;
	}
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, strlen(out), mac,
	     &maclen);
	int n = EVP_EncodeBlock(enc, mac, (int)maclen);
	while (n > 0 && enc[n - 1] == '=')
		n--;
	enc[n] = '\0';
	for (int k = 0; k < n; k++)
		enc[k] = enc[k] == '+' ? '-' : enc[k] == '/' ? '_' : enc[k];
	snprintf(out + strlen(out), sizeof(out) - strlen(out), ".%s", enc);
	return out;
}

static const char *HS256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verifies and returns the error text ("" when accepted). */
static const char *verify(const char *token)
{
	static char err[128];
	char sub[JWT_SUB_LEN];

	err[0] = '\0';
	if (jwt_verify(SECRET, token, NOW, sub, err, sizeof(err)) == 0)
		return "";
	ck_assert_msg(err[0] != '\0', "a refusal must say why");
	return err;
}

START_TEST(signed_token_round_trips_with_lowercased_subject)
{
	char *token = jwt_sign(SECRET, USER, NOW, 60);
	char sub[JWT_SUB_LEN], err[128];

	ck_assert_ptr_nonnull(token);
	ck_assert_int_eq(jwt_verify(SECRET, token, NOW, sub, err, sizeof(err)), 0);
	ck_assert_str_eq(sub, "6f1c2b9e-0d4a-4c1b-9e3f-2a7b8c9d0e1f");
	ck_assert_int_eq(jwt_verify(SECRET, token, NOW + 59, sub, err, sizeof(err)), 0);
	free(token);
}
END_TEST

START_TEST(expired_and_not_yet_valid_are_refused)
{
	char *token = jwt_sign(SECRET, USER, NOW, 60);
	char sub[JWT_SUB_LEN], err[128];

	ck_assert_int_eq(jwt_verify(SECRET, token, NOW + 60, sub, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "token expired");
	ck_assert_int_eq(jwt_verify(SECRET, token, NOW - 1, sub, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "token not yet valid");
	free(token);
}
END_TEST

START_TEST(wrong_secret_and_tampering_are_refused)
{
	char *token = jwt_sign(SECRET, USER, NOW, 60);
	char sub[JWT_SUB_LEN], err[128];
	char *dot;

	ck_assert_int_eq(jwt_verify("other", token, NOW, sub, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "bad token signature");
	/* Claims swapped for another user's, signature kept. */
	dot = strrchr(token, '.');
	char forged[4096];
	snprintf(forged, sizeof(forged), "%s",
		 make(HS256,
		      "{\"sub\":\"00000000-0000-4000-8000-000000000002\",\"exp\":1900000000}",
		      SECRET, dot + 1));
	ck_assert_str_eq(verify(forged), "bad token signature");
	/* A flipped last signature character. */
	token[strlen(token) - 1] = token[strlen(token) - 1] == 'A' ? 'B' : 'A';
	ck_assert_str_eq(verify(token), "bad token signature");
	free(token);
}
END_TEST

/* Found by tests/fuzz/fuzz_jwt.c: the signature's 43rd character carries 4
 * bits of data and 2 unused ones, so 'A'..'D' (and other such groups)
 * decoded to the same signature and a token had four valid spellings. */
START_TEST(only_the_canonical_signature_spelling_is_accepted)
{
	char *token = jwt_sign(SECRET, USER, NOW, 60);
	char *last = token + strlen(token) - 1;
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t v = (size_t)(strchr(alphabet, *last) - alphabet);

	ck_assert_str_eq(verify(token), "");
	ck_assert_uint_eq(v & 3, 0); /* jwt_sign writes the canonical form */
	for (size_t low = 1; low < 4; low++) {
		*last = alphabet[v | low]; /* same 4 data bits, unused bits set */
		ck_assert_str_eq(verify(token), "bad token signature");
	}
	free(token);
}
END_TEST

START_TEST(only_hs256_is_accepted)
{
	const char *claims = "{\"sub\":\"" USER "\",\"exp\":1900000000}";

	ck_assert_str_eq(verify(make(HS256, claims, SECRET, NULL)), "");
	/* alg none with an empty signature: the classic bypass. */
	ck_assert_str_eq(verify(make("{\"alg\":\"none\"}", claims, SECRET, "")),
			 "unsupported token algorithm (only HS256)");
	ck_assert_str_eq(verify(make("{\"alg\":\"HS512\"}", claims, SECRET, NULL)),
			 "unsupported token algorithm (only HS256)");
	ck_assert_str_eq(verify(make("{\"alg\":\"hs256\"}", claims, SECRET, NULL)),
			 "unsupported token algorithm (only HS256)");
	ck_assert_str_eq(verify(make("{\"typ\":\"JWT\"}", claims, SECRET, NULL)),
			 "unsupported token algorithm (only HS256)");
	ck_assert_str_eq(verify(make("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", claims, SECRET,
				     NULL)),
			 "unsupported critical token header");
}
END_TEST

START_TEST(claims_are_required_and_typed)
{
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":\"" USER "\"}", SECRET, NULL)),
			 "token has no valid exp claim");
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":\"" USER "\",\"exp\":\"1900000000\"}",
				     SECRET, NULL)),
			 "token has no valid exp claim");
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":\"" USER "\",\"exp\":1900000000,"
					    "\"nbf\":\"0\"}",
				     SECRET, NULL)),
			 "token not yet valid");
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":\"alice\",\"exp\":1900000000}", SECRET,
				     NULL)),
			 "token subject is not a user id");
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":42,\"exp\":1900000000}", SECRET, NULL)),
			 "token subject is not a user id");
	ck_assert_str_eq(verify(make(HS256, "{\"exp\":1900000000}", SECRET, NULL)),
			 "token subject is not a user id");
	/* Fractional NumericDates are allowed. */
	ck_assert_str_eq(verify(make(HS256, "{\"sub\":\"" USER "\",\"exp\":1800000000.5}",
				     SECRET, NULL)),
			 "");
}
END_TEST

START_TEST(malformed_tokens_are_refused)
{
	char big[JWT_MAX_TOKEN + 2];

	ck_assert_str_eq(verify(""), "missing or oversized token");
	ck_assert_str_eq(verify("abc"), "malformed token");
	ck_assert_str_eq(verify("a.b"), "malformed token");
	ck_assert_str_eq(verify("a.b.c.d"), "malformed token");
	ck_assert_str_eq(verify("!!!.e30.sig"), "malformed token header");
	ck_assert_str_eq(verify(make("[1]", "{}", SECRET, NULL)), "malformed token header");
	ck_assert_str_eq(verify(make(HS256, "not json", SECRET, NULL)), "malformed token claims");
	ck_assert_str_eq(verify(make(HS256, "{\"exp\":1}xx", SECRET, NULL)),
			 "malformed token claims");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_str_eq(verify(big), "missing or oversized token");
}
END_TEST

START_TEST(uuids_are_recognised)
{
	ck_assert(jwt_is_uuid("00000000-0000-4000-8000-000000000001"));
	ck_assert(!jwt_is_uuid("00000000-0000-4000-8000-00000000000"));
	ck_assert(!jwt_is_uuid("00000000x0000-4000-8000-000000000001"));
	ck_assert(!jwt_is_uuid("g0000000-0000-4000-8000-000000000001"));
	ck_assert(!jwt_is_uuid(NULL));
	ck_assert_ptr_null(jwt_sign(SECRET, "not-a-uuid", NOW, 60));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, signed_token_round_trips_with_lowercased_subject);
	tcase_add_test(tc, expired_and_not_yet_valid_are_refused);
	tcase_add_test(tc, wrong_secret_and_tampering_are_refused);
	tcase_add_test(tc, only_hs256_is_accepted);
	tcase_add_test(tc, claims_are_required_and_typed);
	tcase_add_test(tc, malformed_tokens_are_refused);
	tcase_add_test(tc, uuids_are_recognised);
	tcase_add_test(tc, only_the_canonical_signature_spelling_is_accepted);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
