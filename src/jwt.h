/*
 * JWT verification, auth providers and job callback tokens (SPEC §6).
 *
 * An app trusts the identity providers listed in `<app>/auth.config.json`
 * (docs/auth.md): each names an issuer, an audience, a JWKS file and the
 * algorithms it signs with. hd__auth_verify() turns a compact JWS bearer
 * token into a user identity shaped like Convex's UserIdentity, or refuses
 * it with a reason.
 *
 * Caveats
 * - An hd_auth is immutable once loaded: any number of threads may verify
 *   against one concurrently. Reloading means loading a new one and freeing
 *   the old one when no thread uses it any more.
 * - Keys come only from the JWKS files the configuration names, read at
 *   load time. Nothing is fetched over the network, and keys a token names
 *   or carries (`jwk`, `jku`, `x5u`, `x5c` header parameters) are ignored.
 * - Error messages say why a token was refused; they never contain the
 *   token, claim values or key material, so they may be sent to clients
 *   and logged.
 * - Out of memory is HERALD_ENOMEM, also from the verify functions; every
 *   other failure to verify is HERALD_EACCESS.
 */
#ifndef HD_JWT_H
#define HD_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/error.h"
#include "herald/value.h"

/* The signature algorithms Herald verifies, as bits of an allowed set. */
enum hd_jwa {
    HD_JWA_RS256 = 1, /* RSASSA-PKCS1-v1_5 with SHA-256; RSA keys only */
    HD_JWA_ES256 = 2, /* ECDSA P-256 with SHA-256, r||s signatures; EC P-256 keys only */
    HD_JWA_HS256 = 4, /* HMAC SHA-256; oct (symmetric) keys only */
    HD_JWA_EDDSA = 8, /* EdDSA (RFC 8037) on Ed25519, 64-byte signatures; OKP Ed25519 keys only */
};
#define HD_JWA_ALL (HD_JWA_RS256 | HD_JWA_ES256 | HD_JWA_HS256 | HD_JWA_EDDSA)

#define HD_JWT_MAX_BYTES       16384 /* longer tokens are refused unread */
#define HD_AUTH_DEFAULT_LEEWAY 60    /* seconds of clock skew allowed for exp, nbf and iat */
#define HD_AUTH_MAX_LEEWAY     600

/* The app's providers and their keys; immutable after load, shareable read-only between threads. */
typedef struct hd_auth hd_auth;

/*
 * One public key (RSA, EC P-256 or OKP Ed25519) or symmetric secret (oct)
 * parsed from a JWK, with its optional `kid` and `alg`. Immutable once parsed.
 */
typedef struct hd_jwk hd_jwk;

/*
 * Loads the app's auth configuration `<app_dir>/auth.config.json` if it
 * exists; no file = no providers (*out is still a valid empty hd_auth).
 * JWKS paths in the file are relative to `app_dir` (absolute allowed).
 * On success the caller owns *out (hd__auth_free()); on failure *out is
 * NULL. Errors name the file and the problem:
 *   HERALD_ESCHEMA    the configuration or a JWKS file is malformed, names
 *                     an unknown key, or a provider has no usable key
 *   HERALD_ENOTFOUND  a JWKS file named by the configuration is missing
 *   HERALD_EIO        a file exists but cannot be read
 *   HERALD_ENOMEM
 */
int hd__auth_load(const char *app_dir, hd_auth **out, herald_error *err);

/*
 * Same from text (for tests); `base_dir` resolves relative jwks paths
 * (NULL: the current directory). Messages call the text "auth.config.json".
 */
int hd__auth_load_text(const char *text, size_t len, const char *base_dir, hd_auth **out,
                       herald_error *err);

/* Frees everything `a` owns, wiping secrets. NULL is allowed. */
void hd__auth_free(hd_auth *a);

size_t hd__auth_provider_count(const hd_auth *a);

/*
 * Verifies a compact JWS token against the providers. `now` is Unix
 * seconds (the caller passes time(NULL); tests pass fixed times).
 *
 * The provider is the one whose issuer equals the `iss` claim (among
 * several with that issuer, the one whose audience the token names); the
 * key is the provider's key with the token's `kid`, or without a `kid`
 * each of its keys of the algorithm's type in turn. Then exp, nbf, iat
 * (with the provider's leeway), aud and sub are checked.
 *
 * On success *identity is a new herald_value object (caller frees with
 * herald_value_free) and 0 is returned: `subject`, `issuer`,
 * `tokenIdentifier` ("<iss>|<sub>"), the OIDC profile claims under their
 * Convex names (docs/auth.md), and every other claim under its own name
 * except the registered ones (iss sub aud exp nbf iat jti) and names the
 * identity already uses. On failure *identity is HERALD_UNDEFINED and the
 * return is HERALD_EACCESS with a message saying why ("token expired",
 * "audience does not match", "unknown key id", "algorithm none is not
 * accepted", "signature does not verify" ...), or HERALD_ENOMEM. `token`
 * is only read; it may be NULL (refused).
 */
int hd__auth_verify(const hd_auth *a, const char *token, double now, herald_value *identity,
                    herald_error *err);
/* The same, and *expires: the Unix time (exp plus the provider's leeway) after which the
 * identity must no longer be used (0 on failure). */
int hd__auth_verify_until(const hd_auth *a, const char *token, double now, herald_value *identity,
                          double *expires, herald_error *err);

/*
 * The signature layer alone, for tests and tools: parses one JWK (an
 * object with `kty` RSA, EC with `crv` P-256, OKP with `crv` Ed25519, or
 * oct). The caller owns
 * *out (hd__jwk_free()). HERALD_ESCHEMA for a malformed or unsupported
 * key, HERALD_ENOMEM.
 */
int hd__jwk_parse(const char *json, size_t len, hd_jwk **out, herald_error *err);
void hd__jwk_free(hd_jwk *k);

/*
 * Checks the structure of `token`, that its header names an algorithm in
 * `algorithms` (HD_JWA_* bits) that fits the key's type and the key's own
 * `alg` if it has one, and its signature with `key`. The token's `kid` is
 * not compared and no claim is checked: that is hd__auth_verify()'s work.
 * On success *claims is a new herald_value object holding the token's
 * claims (caller frees with herald_value_free). Failures as for
 * hd__auth_verify(), *claims left HERALD_UNDEFINED.
 */
int hd__jws_verify(const char *token, const hd_jwk *key, unsigned algorithms, herald_value *claims,
                   herald_error *err);

/*
 * Per-job callback tokens.
 *
 * Fills `out` (HD_TOKEN_CHARS + 1 bytes) with a new random token: 32 bytes
 * from RAND_bytes, base64url, NUL-terminated. On failure `out` is the
 * empty string and the return is HERALD_EIO (the random generator failed)
 * or HERALD_ENOMEM.
 */
#define HD_TOKEN_CHARS 43
int hd__token_new(char *out, herald_error *err);

/*
 * Constant-time equality of two NUL-terminated strings (lengths compared
 * without early exit on content). NULL or empty strings equal nothing, so
 * a token that was never set never matches.
 */
bool hd__token_equal(const char *a, const char *b);

#endif
