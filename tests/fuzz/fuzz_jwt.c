/*
 * Fuzz target for JWT verification (src/jwt.c, docs/auth.md): what a
 * client presents as a bearer token, on the WebSocket (`auth`) or in an
 * HTTP Authorization header.
 *
 * The providers are those of the fixtures: issuer `joe` with the RFC 7515
 * keys of tests/fixtures/jwt (HS256, RS256, ES256, one JWKS), and issuer
 * https://fuzz.herald.invalid twice, told apart by audience: once with the
 * RSA and EC keys of tests/fuzz/jwt/fuzz.jwks.json (made by
 * tests/fuzz/make_seeds.py, which signs the seeds with their private
 * halves), once with the RFC's HS256 key and no leeway, once with RFC
 * 8037's Ed25519 key (tests/fuzz/jwt/rfc8037.jwks.json), EdDSA only.
 *
 * Byte 0 of the input says how to read the rest:
 *   bit 0      0: the rest is a token, verified as it is;
 *              1: the rest is "HEADER\nCLAIMS" (any bytes): the target
 *                 encodes both and signs them with the RFC's HS256 key,
 *                 so claims of any shape get past the signature
 *   bits 1-3   the current time: 1.7e9, the RFC tokens' exp 1300819380,
 *              61 s after it, 0, year 2100, -1e300, NaN, infinity
 *
 * Every token is also checked against each fixture key alone
 * (hd__jws_verify), and against a configuration with no provider.
 * Refusals are expected; what must hold is the contract of src/jwt.h: a
 * success gives an identity object whose issuer, subject and
 * tokenIdentifier come from the claims, valid until a time not before
 * now; a failure gives no identity, no expiry time, HERALD_EACCESS (or
 * HERALD_ENOMEM) with a reason that does not quote the token; both verify
 * functions agree.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "fuzz_common.h"
#include "jwt.h"

#ifndef HERALD_SOURCE_ROOT
#define HERALD_SOURCE_ROOT "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "{\"providers\": ["
    " {\"issuer\": \"joe\", \"audience\": \"herald-test\","
    "  \"jwks\": \"tests/fixtures/jwt/app/keys/rfc7515.jwks.json\","
    "  \"algorithms\": [\"RS256\", \"ES256\", \"HS256\"], \"leeway\": 60},"
    " {\"issuer\": \"https://fuzz.herald.invalid\", \"audience\": \"herald-fuzz\","
    "  \"jwks\": \"tests/fuzz/jwt/fuzz.jwks.json\"},"
    " {\"issuer\": \"https://fuzz.herald.invalid\", \"audience\": \"herald-fuzz-hs\","
    "  \"jwks\": \"tests/fixtures/jwt/app/keys/rfc7515.jwks.json\","
    "  \"algorithms\": [\"HS256\"], \"leeway\": 0},"
    " {\"issuer\": \"https://fuzz.herald.invalid\", \"audience\": \"herald-fuzz-eddsa\","
    "  \"jwks\": \"tests/fuzz/jwt/rfc8037.jwks.json\", \"algorithms\": [\"EdDSA\"]}]}";

static const char *const key_files[] = {"rfc7515-a1.jwk.json", "rfc7515-a2.jwk.json",
                                        "rfc7515-a3.jwk.json", "rfc8037-a.jwk.json"};
#define NKEYS (sizeof key_files / sizeof *key_files)

static hd_auth *auth, *no_providers;
static hd_jwk *keys[NKEYS];
static hd_buf hs256_secret = HD_BUF_INIT;

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (text = malloc((size_t)n + 1)) && fread(text, 1, (size_t)n, f) == (size_t)n) {
        text[n] = 0;
        *len = (size_t)n;
    } else {
        perror(path);
        abort();
    }
    fclose(f);
    return text;
}

static void teardown(void)
{
    hd__auth_free(auth);
    hd__auth_free(no_providers);
    for (size_t i = 0; i < NKEYS; i++)
        hd__jwk_free(keys[i]);
    hd__buf_free(&hs256_secret);
}

static void setup(void)
{
    herald_error err = {0};
    if (hd__auth_load_text(config, strlen(config), HERALD_SOURCE_ROOT, &auth, &err))
        fz_die("the providers", &err);
    if (hd__auth_load_text("{\"providers\": []}", 17, NULL, &no_providers, &err))
        fz_die("no providers", &err);
    for (size_t i = 0; i < NKEYS; i++) {
        char path[4096];
        size_t len;
        snprintf(path, sizeof path, "%s/tests/fixtures/jwt/%s", HERALD_SOURCE_ROOT, key_files[i]);
        char *text = read_text(path, &len);
        if (hd__jwk_parse(text, len, &keys[i], &err)) fz_die(path, &err);
        if (i == 0) {
            /* The HS256 secret, to sign what the input asks. */
            cJSON *j = cJSON_ParseWithLength(text, len);
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "k");
            if (!cJSON_IsString(k) ||
                !hd__base64_decode(&hs256_secret, k->valuestring, strlen(k->valuestring), true))
                fz_die("the HS256 key", NULL);
            cJSON_Delete(j);
        }
        free(text);
    }
    atexit(teardown);
}

/* base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256 of the two), NUL-ended. */
static char *sign_hs256(const uint8_t *p, size_t n)
{
    const uint8_t *nl = memchr(p, '\n', n);
    size_t hlen = nl ? (size_t)(nl - p) : n;
    hd_buf t = HD_BUF_INIT;
    hd__base64_encode(&t, p, hlen, true);
    hd__buf_byte(&t, '.');
    if (nl) hd__base64_encode(&t, nl + 1, n - hlen - 1, true);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (t.failed ||
        !HMAC(EVP_sha256(), hs256_secret.p, (int)hs256_secret.len, t.p, t.len, mac, &mac_len)) {
        hd__buf_free(&t);
        return NULL;
    }
    hd__buf_byte(&t, '.');
    hd__base64_encode(&t, mac, mac_len, true);
    hd__buf_byte(&t, 0);
    if (t.failed) {
        hd__buf_free(&t);
        return NULL;
    }
    size_t len;
    return (char *)hd__buf_take(&t, &len);
}

static void broken(const char *what, const char *token, int rc, const herald_error *err)
{
    fprintf(stderr, "fuzz_jwt: %s (rc %d, `%s`) for token %.2000s\n", what, rc,
            err ? err->message : "", token);
    abort();
}

/* A refusal: the right code, a reason, and none of the token's parts in it. */
static void check_refusal(const char *token, int rc, const herald_error *err)
{
    if (rc != HERALD_EACCESS && rc != HERALD_ENOMEM)
        broken("refused with another code", token, rc, err);
    if (err->code != rc || !err->message[0]) broken("refused without a reason", token, rc, err);
    const char *part = token;
    while (part && *part) {
        const char *dot = strchr(part, '.');
        size_t n = dot ? (size_t)(dot - part) : strlen(part);
        if (n >= 12 && memmem(err->message, strlen(err->message), part, n))
            broken("the reason quotes the token", token, rc, err);
        part = dot ? dot + 1 : NULL;
    }
}

static bool string_is(const herald_value *v, const char *s, size_t n)
{
    return v && v->type == HERALD_STRING && v->u.s.len == n && !memcmp(v->u.s.ptr, s, n);
}

/* An identity: issuer, subject and tokenIdentifier as the claims say, usable now. */
static void check_identity(const char *token, const herald_value *id, double now, double expires)
{
    herald_value claims;
    herald_error err = {0};
    /* The claims are the second part; decode_token accepted it, so this cannot fail. */
    const char *p1 = strchr(token, '.') + 1, *p2 = strchr(p1, '.');
    hd_buf json = HD_BUF_INIT;
    if (!hd__base64_decode(&json, p1, (size_t)(p2 - p1), true) || json.failed ||
        herald_value_from_json((const char *)json.p, json.len, &claims, &err))
        broken("accepted claims that do not decode", token, 0, &err);
    hd__buf_free(&json);
    const herald_value *iss = herald_object_get(&claims, "iss");
    const herald_value *sub = herald_object_get(&claims, "sub");
    const herald_value *tid = herald_object_get(id, "tokenIdentifier");
    if (id->type != HERALD_OBJECT || !iss || !sub || iss->type != HERALD_STRING ||
        sub->type != HERALD_STRING || sub->u.s.len == 0)
        broken("accepted without an issuer and a subject", token, 0, NULL);
    if (!string_is(herald_object_get(id, "issuer"), iss->u.s.ptr, iss->u.s.len) ||
        !string_is(herald_object_get(id, "subject"), sub->u.s.ptr, sub->u.s.len) || !tid ||
        tid->type != HERALD_STRING || tid->u.s.len != iss->u.s.len + 1 + sub->u.s.len ||
        memcmp(tid->u.s.ptr, iss->u.s.ptr, iss->u.s.len) || tid->u.s.ptr[iss->u.s.len] != '|' ||
        memcmp(tid->u.s.ptr + iss->u.s.len + 1, sub->u.s.ptr, sub->u.s.len))
        broken("the identity does not match the claims", token, 0, NULL);
    if (!(expires >= now)) broken("accepted a token that is no longer valid", token, 0, NULL);
    herald_value_free(&claims);
}

static void verify(const hd_auth *a, const char *token, double now)
{
    herald_value id, again;
    herald_error err = {0}, err2 = {0};
    double expires = -1;
    int rc = hd__auth_verify_until(a, token, now, &id, &expires, &err);
    int rc2 = hd__auth_verify(a, token, now, &again, &err2);
    if (rc != rc2 && rc != HERALD_ENOMEM && rc2 != HERALD_ENOMEM)
        broken("the two verify functions disagree", token, rc, &err);
    if (rc == 0) {
        check_identity(token, &id, now, expires);
    } else {
        check_refusal(token, rc, &err);
        if (id.type != HERALD_UNDEFINED) broken("refused, with an identity", token, rc, &err);
        if (expires != 0) broken("refused, with an expiry time", token, rc, &err);
    }
    herald_value_free(&id);
    herald_value_free(&again);
}

static void verify_each_key(const char *token)
{
    for (size_t i = 0; i < NKEYS; i++) {
        herald_value claims;
        herald_error err = {0};
        int rc = hd__jws_verify(token, keys[i], HD_JWA_ALL, &claims, &err);
        if (rc == 0 && claims.type != HERALD_OBJECT)
            broken("claims that are not an object", token, rc, &err);
        if (rc) {
            check_refusal(token, rc, &err);
            if (claims.type != HERALD_UNDEFINED) broken("refused, with claims", token, rc, &err);
        }
        herald_value_free(&claims);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double nows[] = {1.7e9,        1300819380, 1300819441, 0,
                                  4102444800.0, -1e300,     NAN,        INFINITY};
    if (size < 1) return 0;
    if (!auth) setup();
    double now = nows[(data[0] >> 1) & 7];
    char *token;
    if (data[0] & 1) {
        token = sign_hs256(data + 1, size - 1);
        if (!token) return 0;
    } else {
        /* A string, as server.c and proto.c hand it over: it ends at the first NUL. */
        token = malloc(size);
        if (!token) return 0;
        memcpy(token, data + 1, size - 1);
        token[size - 1] = 0;
    }
    verify(auth, token, now);
    verify(no_providers, token, now);
    verify_each_key(token);
    free(token);
    return 0;
}
