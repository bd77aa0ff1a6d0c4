/*
 * JWT verification (src/jwt.c).
 *
 * - The RFC 7515 A.1-A.3 and RFC 7519 §3.1 example tokens through the
 *   signature layer: they verify, and fail with any one bit of their
 *   signature flipped; A.5 (alg none) is refused.
 * - RFC 8037's EdDSA example: its key signs its input into exactly its
 *   signature, and JWTs signed with that key verify and fail when changed.
 * - Tokens minted here with OpenSSL (an RSA 2048 key, an EC P-256 key, an
 *   Ed25519 key and an HMAC secret generated at start, published in JWKS
 *   files in a temporary app folder): valid ones give the right identity; expired,
 *   not yet valid, wrong audience or issuer, unknown kid, tampered, alg
 *   none, unsupported algorithms and key confusion are refused with
 *   HERALD_EACCESS and the expected reason.
 * - Mutated and random tokens: always refused, never a crash, never a
 *   piece of token or key in the message.
 * - Configuration errors, allocation failure at every step, verification
 *   from several threads at once, job tokens.
 *
 * The test must never accept a wrong answer to make a case pass: every
 * refusal is checked for its code and reason, every success for its fields.
 *
 * Usage: test_jwt SOURCE_ROOT (the fixtures are SOURCE_ROOT/tests/fixtures/jwt).
 * HERALD_JWT_SEED overrides the seed of the random cases (default: time and
 * pid, printed).
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "base64.h"
#include "check.h"
#include "herald/value.h"
#include "jwt.h"

#include "failalloc.h"

/* ---- helpers (the test exits if the machine itself fails) ---------------- */

#define NOW 1700000000

static const char *fixtures; /* SOURCE_ROOT/tests/fixtures/jwt */
static char app_dir[] = "/tmp/herald-test-jwt-XXXXXX";
static EVP_PKEY *rsa_key, *rsa_other, *ec_key, *ed_key, *ed_other, *ed_rfc;
static unsigned char hs_secret[32];

static void die(const char *what)
{
    fprintf(stderr, "test_jwt: %s failed\n", what);
    exit(1);
}

static void *must(void *p)
{
    if (!p) die("allocation");
    return p;
}

static char *cat(const char *a, const char *sep, const char *b)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = must(malloc(la + ls + lb + 1));
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

static char *b64u(const void *p, size_t n)
{
    hd_buf b = HD_BUF_INIT;
    hd__base64_encode(&b, p, n, true);
    hd__buf_byte(&b, 0);
    if (b.failed) die("base64");
    return (char *)b.p;
}

/* Decodes base64url text into a new buffer; *len gets the byte count. */
static unsigned char *unb64u(const char *s, size_t n, size_t *len)
{
    hd_buf b = HD_BUF_INIT;
    if (!hd__base64_decode(&b, s, n, true)) die("base64url decoding of test data");
    hd__buf_byte(&b, 0);
    *len = b.len - 1;
    return b.p;
}

static char *read_text(const char *dir, const char *name)
{
    char *path = cat(dir, "/", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    hd_buf b = HD_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        hd__buf_append(&b, chunk, n);
    fclose(f);
    free(path);
    while (b.len && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == '\r'))
        b.len--;
    hd__buf_byte(&b, 0);
    if (b.failed) die("reading a fixture");
    return (char *)b.p;
}

static char *written[32];
static size_t nwritten;

static void write_text(const char *name, const char *text)
{
    char *path = cat(app_dir, "/", name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0)
        die("writing a test file");
    for (size_t i = 0; i < nwritten; i++) {
        if (strcmp(written[i], path) == 0) {
            free(path);
            return;
        }
    }
    if (nwritten == sizeof written / sizeof *written) die("too many test files");
    written[nwritten++] = path;
}

static bool is_str(const herald_value *v, const char *s)
{
    return v && v->type == HERALD_STRING && v->u.s.len == strlen(s) &&
           memcmp(v->u.s.ptr, s, v->u.s.len) == 0;
}

/* A message must never carry a token part, a claim value or key material:
 * no run of 20 or more base64url characters appears in Herald's wording. */
static bool message_leaks(const char *m)
{
    size_t run = 0;
    for (; *m; m++) {
        char c = *m;
        bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_';
        run = b64 ? run + 1 : 0;
        if (run >= 20) return true;
    }
    return false;
}

/* ---- minting ------------------------------------------------------------- */

enum signer {
    SIGN_RSA,       /* the RSA key in the JWKS */
    SIGN_RSA_OTHER, /* an RSA key nobody trusts */
    SIGN_EC,        /* the EC key, r||s as JWS wants */
    SIGN_EC_DER,    /* the EC key, OpenSSL's DER form (wrong for JWS) */
    SIGN_ED,        /* the Ed25519 key in the JWKS (kid ed2) */
    SIGN_ED_OTHER,  /* an Ed25519 key nobody trusts */
    SIGN_ED_RFC,    /* RFC 8037's Ed25519 key (kid ed1) */
    SIGN_HMAC,      /* HMAC-SHA256 with the given secret */
    SIGN_NONE,      /* an empty signature */
};

static char *mint_raw(const char *header, const char *claims, enum signer how, const void *secret,
                      size_t secret_len)
{
    char *h = b64u(header, strlen(header)), *c = b64u(claims, strlen(claims));
    char *input = cat(h, ".", c);
    free(h);
    free(c);
    unsigned char sig[1024];
    size_t sig_len = 0;
    if (how == SIGN_HMAC) {
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, secret_len,
                       (const unsigned char *)input, strlen(input), sig, sizeof sig, &sig_len))
            die("HMAC");
    } else if (how != SIGN_NONE) {
        EVP_PKEY *keys[] = {
            [SIGN_RSA] = rsa_key,   [SIGN_RSA_OTHER] = rsa_other, [SIGN_EC] = ec_key,
            [SIGN_EC_DER] = ec_key, [SIGN_ED] = ed_key,           [SIGN_ED_OTHER] = ed_other,
            [SIGN_ED_RFC] = ed_rfc};
        EVP_PKEY *k = keys[how];
        /* EdDSA hashes inside the scheme: no digest, one-shot signing. */
        const char *digest =
            how == SIGN_ED || how == SIGN_ED_OTHER || how == SIGN_ED_RFC ? NULL : "SHA256";
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        sig_len = sizeof sig;
        if (!md || EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, k, NULL) != 1 ||
            EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
            die("signing");
        EVP_MD_CTX_free(md);
        if (how == SIGN_EC) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            const BIGNUM *r, *s;
            if (!es) die("ECDSA signature decoding");
            ECDSA_SIG_get0(es, &r, &s);
            if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
                die("ECDSA r||s");
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    }
    char *s = b64u(sig, sig_len);
    char *token = cat(input, ".", s);
    free(input);
    free(s);
    return token;
}

static char *mint(const char *alg, const char *kid, const char *claims, enum signer how)
{
    char header[256];
    if (kid)
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 kid);
    else
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return mint_raw(header, claims, how, hs_secret, sizeof hs_secret);
}

/* Claims of a good token for provider 0, with `extra` (",\"k\":v" or "") appended. */
static char *claims_with(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"user-42\","
             "\"exp\":%d,\"iat\":%d%s}",
             NOW + 3600, NOW - 10, extra);
    return buf;
}

/* Replaces part `part` (0 header, 1 claims, 2 signature) of a token. */
static char *with_part(const char *token, int part, const char *text)
{
    const char *d1 = strchr(token, '.'), *d2 = strchr(d1 + 1, '.');
    char *a = must(strndup(token, (size_t)(d1 - token)));
    char *b = must(strndup(d1 + 1, (size_t)(d2 - d1 - 1)));
    char *c = must(strdup(d2 + 1));
    char *parts[3] = {a, b, c};
    char *ab = cat(part == 0 ? text : parts[0], ".", part == 1 ? text : parts[1]);
    char *out = cat(ab, ".", part == 2 ? text : parts[2]);
    free(ab);
    free(a);
    free(b);
    free(c);
    return out;
}

/* The token with bit `bit` of its decoded signature flipped. */
static char *flip_signature_bit(const char *token, size_t bit)
{
    const char *s = strrchr(token, '.') + 1;
    size_t n;
    unsigned char *sig = unb64u(s, strlen(s), &n);
    sig[bit / 8 % n] ^= (unsigned char)(1u << (bit % 8));
    char *text = b64u(sig, n);
    char *out = with_part(token, 2, text);
    free(sig);
    free(text);
    return out;
}

static size_t signature_bytes(const char *token)
{
    const char *s = strrchr(token, '.') + 1;
    size_t n;
    free(unb64u(s, strlen(s), &n));
    return n;
}

/* ---- expectations -------------------------------------------------------- */

/* Verifies `token` (taking it) and expects success; returns the identity. */
static herald_value accepted_at(int line, const hd_auth *a, char *token, double now)
{
    herald_value id;
    herald_error err = {0};
    int rc = hd__auth_verify(a, token, now, &id, &err);
    if (rc != 0 || id.type != HERALD_OBJECT) {
        fprintf(stderr, "line %d: token refused (%d): %s\n", line, rc, err.message);
        check_failures++;
    }
    free(token);
    return id;
}
#define ACCEPTED(a, token) accepted_at(__LINE__, a, token, NOW)

/* Verifies `token` (taking it) and expects HERALD_EACCESS with `why` in the message. */
static void refused_at(int line, const hd_auth *a, char *token, double now, const char *why)
{
    herald_value id;
    herald_error err = {0};
    double expires = -1;
    int rc = hd__auth_verify_until(a, token, now, &id, &expires, &err);
    if (rc != HERALD_EACCESS || !strstr(err.message, why)) {
        fprintf(stderr, "line %d: expected refusal \"%s\", got %d \"%s\"\n", line, why, rc,
                err.message);
        check_failures++;
    }
    CHECK(err.code == rc);
    CHECK(id.type == HERALD_UNDEFINED);
    /* A refused token leaves no expiry time behind (found by fuzz_jwt). */
    if (expires != 0) {
        fprintf(stderr, "line %d: refused, yet an expiry time %.0f\n", line, expires);
        check_failures++;
    }
    CHECK(!message_leaks(err.message));
    herald_value_free(&id);
    free(token);
}
#define REFUSED(a, token, why)         refused_at(__LINE__, a, token, NOW, why)
#define REFUSED_AT(a, token, now, why) refused_at(__LINE__, a, token, now, why)

/* The same for the signature layer alone. */
static void jws_refused_at(int line, const char *token, const hd_jwk *key, unsigned algs,
                           const char *why)
{
    herald_value claims;
    herald_error err = {0};
    int rc = hd__jws_verify(token, key, algs, &claims, &err);
    if (rc != HERALD_EACCESS || !strstr(err.message, why)) {
        fprintf(stderr, "line %d: expected refusal \"%s\", got %d \"%s\"\n", line, why, rc,
                err.message);
        check_failures++;
    }
    CHECK(claims.type == HERALD_UNDEFINED);
    CHECK(!message_leaks(err.message));
    herald_value_free(&claims);
}
#define JWS_REFUSED(token, key, algs, why) jws_refused_at(__LINE__, token, key, algs, why)

static void config_error_at(int line, const char *text, int code, const char *why)
{
    hd_auth *a = (hd_auth *)1;
    herald_error err = {0};
    int rc = hd__auth_load_text(text, strlen(text), app_dir, &a, &err);
    if (rc != code || !strstr(err.message, why)) {
        fprintf(stderr, "line %d: expected config error %d \"%s\", got %d \"%s\"\n", line, code,
                why, rc, err.message);
        check_failures++;
    }
    CHECK(a == NULL);
    if (rc == 0) hd__auth_free(a);
}
#define CONFIG_ERROR(text, code, why) config_error_at(__LINE__, text, code, why)

/* ---- base64url, which the token format rests on -------------------------- */

static bool decodes_to(const char *s, const char *want)
{
    hd_buf b = HD_BUF_INIT;
    bool ok = hd__base64_decode(&b, s, strlen(s), true);
    ok = ok && b.len == strlen(want) && (b.len == 0 || memcmp(b.p, want, b.len) == 0);
    hd__buf_free(&b);
    return ok;
}

static bool refused_b64(const char *s)
{
    hd_buf b = HD_BUF_INIT;
    bool ok = hd__base64_decode(&b, s, strlen(s), true);
    hd__buf_free(&b);
    return !ok;
}

static void test_base64url(void)
{
    CHECK(decodes_to("", ""));
    CHECK(decodes_to("Zg", "f"));
    CHECK(decodes_to("Zm8", "fo"));
    CHECK(decodes_to("Zm9v", "foo"));
    CHECK(decodes_to("-_8", "\xfb\xff"));
    CHECK(refused_b64("Zg=="));  /* padding */
    CHECK(refused_b64("Zm8="));  /* padding */
    CHECK(refused_b64("Z"));     /* a lone sextet */
    CHECK(refused_b64("Zh"));    /* leftover bits must be zero: one encoding per byte string */
    CHECK(refused_b64("+_8"));   /* the standard alphabet's + and / */
    CHECK(refused_b64("Zm9v ")); /* whitespace */
    CHECK(refused_b64("Zm.v"));
    for (int round = 0; round < 200; round++) {
        unsigned char bytes[64];
        size_t n = check_below(sizeof bytes + 1);
        for (size_t i = 0; i < n; i++)
            bytes[i] = (unsigned char)check_rand();
        char *s = b64u(bytes, n);
        CHECK(strlen(s) == (n * 4 + 2) / 3 && !strchr(s, '='));
        size_t m;
        unsigned char *back = unb64u(s, strlen(s), &m);
        CHECK(m == n && memcmp(back, bytes, n) == 0);
        free(back);
        free(s);
    }
}

/* ---- the RFC example vectors --------------------------------------------- */

static hd_jwk *fixture_key(const char *name)
{
    char *text = read_text(fixtures, name);
    hd_jwk *k = NULL;
    herald_error err = {0};
    int rc = hd__jwk_parse(text, strlen(text), &k, &err);
    if (rc) fprintf(stderr, "%s: %s\n", name, err.message);
    CHECK(rc == 0 && k);
    free(text);
    return k;
}

static void check_rfc_claims(const herald_value *c)
{
    CHECK(c->type == HERALD_OBJECT && c->u.obj.len == 3);
    CHECK(is_str(herald_object_get(c, "iss"), "joe"));
    const herald_value *exp = herald_object_get(c, "exp");
    CHECK(exp && exp->type == HERALD_FLOAT64 && exp->u.f == 1300819380.0);
    const herald_value *root = herald_object_get(c, "http://example.com/is_root");
    CHECK(root && root->type == HERALD_BOOLEAN && root->u.b);
}

/*
 * Verifies a token of the RFC examples' claims signed with `key` in algorithm `alg`, then every
 * one-bit change of its signature, then a changed claim.
 */
static void rfc_claims_token(const char *token, const hd_jwk *key, unsigned alg)
{
    herald_value claims;
    herald_error err = {0};
    int rc = hd__jws_verify(token, key, HD_JWA_ALL, &claims, &err);
    if (rc) fprintf(stderr, "%.40s...: %s\n", token, err.message);
    CHECK(rc == 0);
    check_rfc_claims(&claims);
    herald_value_free(&claims);

    /* The same token is accepted with only its own algorithm allowed, refused without it. */
    CHECK(hd__jws_verify(token, key, alg, &claims, &err) == 0);
    herald_value_free(&claims);
    JWS_REFUSED(token, key, HD_JWA_ALL & ~alg, "is not allowed");

    size_t bits = signature_bytes(token) * 8;
    for (size_t bit = 0; bit < bits; bit++) {
        char *t = flip_signature_bit(token, bit);
        JWS_REFUSED(t, key, HD_JWA_ALL, "signature does not verify");
        free(t);
    }
    /* "joe" becomes "jof": a valid JSON object that was never signed. */
    const char *tampered = "{\"iss\":\"jof\",\r\n \"exp\":1300819380,\r\n"
                           " \"http://example.com/is_root\":true}";
    char *payload = b64u(tampered, strlen(tampered));
    char *t = with_part(token, 1, payload);
    JWS_REFUSED(t, key, HD_JWA_ALL, "signature does not verify");
    free(t);
    free(payload);
}

static void rfc_vector(const char *token_file, const char *key_file, unsigned alg)
{
    char *token = read_text(fixtures, token_file);
    hd_jwk *key = fixture_key(key_file);
    rfc_claims_token(token, key, alg);
    hd__jwk_free(key);
    free(token);
}

static void test_rfc_vectors(void)
{
    rfc_vector("rfc7515-a1.jws", "rfc7515-a1.jwk.json", HD_JWA_HS256);
    rfc_vector("rfc7515-a2.jws", "rfc7515-a2.jwk.json", HD_JWA_RS256);
    rfc_vector("rfc7515-a3.jws", "rfc7515-a3.jwk.json", HD_JWA_ES256);
    rfc_vector("rfc7519-3.1.jws", "rfc7515-a1.jwk.json", HD_JWA_HS256);

    /* RFC 7519 §3.1's token is built from exactly this header and these claims. */
    char *token = read_text(fixtures, "rfc7519-3.1.jws");
    const char *d1 = strchr(token, '.'), *d2 = strchr(d1 + 1, '.');
    size_t n;
    char *header = (char *)unb64u(token, (size_t)(d1 - token), &n);
    CHECK(strcmp(header, "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}") == 0);
    char *payload = (char *)unb64u(d1 + 1, (size_t)(d2 - d1 - 1), &n);
    CHECK(strcmp(payload, "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n"
                          " \"http://example.com/is_root\":true}") == 0);
    free(header);
    free(payload);
    free(token);

    /* Each token with the other vectors' keys: the key type must fit the algorithm. */
    hd_jwk *oct = fixture_key("rfc7515-a1.jwk.json"), *rsa = fixture_key("rfc7515-a2.jwk.json"),
           *ec = fixture_key("rfc7515-a3.jwk.json");
    char *a1 = read_text(fixtures, "rfc7515-a1.jws"), *a2 = read_text(fixtures, "rfc7515-a2.jws"),
         *a3 = read_text(fixtures, "rfc7515-a3.jws"), *a5 = read_text(fixtures, "rfc7515-a5.jws");
    JWS_REFUSED(a1, rsa, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a1, ec, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a2, oct, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a2, ec, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a3, rsa, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a3, oct, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(a3, NULL, HD_JWA_ALL, "no key");
    /* A.5, the unsecured JWS, with every key. */
    JWS_REFUSED(a5, oct, HD_JWA_ALL, "algorithm none is not accepted");
    JWS_REFUSED(a5, rsa, HD_JWA_ALL, "algorithm none is not accepted");
    JWS_REFUSED(a5, ec, HD_JWA_ALL, "algorithm none is not accepted");

    /* The A.3 signature in DER form, as OpenSSL would write it: not a JWS signature. */
    const char *s = strrchr(a3, '.') + 1;
    unsigned char *raw = unb64u(s, strlen(s), &n);
    CHECK(n == 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *sv = BN_bin2bn(raw + 32, 32, NULL);
    if (!es || !r || !sv || !ECDSA_SIG_set0(es, r, sv)) die("ECDSA_SIG");
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    CHECK(der_len > 64);
    char *der_text = b64u(der, (size_t)der_len);
    char *t = with_part(a3, 2, der_text);
    JWS_REFUSED(t, ec, HD_JWA_ALL, "64 bytes");
    /* ...and r||s one byte short or long. */
    char *short_text = b64u(raw, 63), *t2 = with_part(a3, 2, short_text);
    JWS_REFUSED(t2, ec, HD_JWA_ALL, "64 bytes");
    free(t);
    free(t2);
    free(short_text);
    free(der_text);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    free(raw);

    /* The app folder in the fixtures trusts issuer "joe": the claims layer then refuses. */
    hd_auth *a = NULL;
    herald_error err = {0};
    char *app = cat(fixtures, "/", "app");
    CHECK_OK(hd__auth_load(app, &a, &err));
    CHECK(hd__auth_provider_count(a) == 1);
    double before = 1300819000, after = 1300819380 + 61, edge = 1300819380 + 59;
    REFUSED_AT(a, must(strdup(a1)), before, "token has no audience");
    REFUSED_AT(a, must(strdup(a2)), before, "token has no audience");
    REFUSED_AT(a, must(strdup(a3)), before, "token has no audience");
    REFUSED_AT(a, must(strdup(a2)), edge, "token has no audience"); /* within the leeway */
    REFUSED_AT(a, must(strdup(a1)), after, "token expired");
    REFUSED_AT(a, must(strdup(a2)), after, "token expired");
    REFUSED_AT(a, must(strdup(a3)), after, "token expired");
    REFUSED_AT(a, must(strdup(a5)), before, "algorithm none is not accepted");
    REFUSED_AT(a, flip_signature_bit(a2, 77), before, "signature does not verify");
    hd__auth_free(a);
    free(app);
    free(a1);
    free(a2);
    free(a3);
    free(a5);
    hd__jwk_free(oct);
    hd__jwk_free(rsa);
    hd__jwk_free(ec);
}

/* ---- the app folder with minted keys ------------------------------------- */

static char *bn_text(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    if (EVP_PKEY_get_bn_param(k, param, &bn) != 1) die("EVP_PKEY_get_bn_param");
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    if (n <= 0) die("BN_bn2bin");
    return b64u(buf, (size_t)n);
}

static char *rsa_n, *rsa_e, *ec_x, *ec_y, *ed_x, *hs_k;

/* RFC 8037 A.1: the private part `d` of the Ed25519 key whose public part is in the fixtures. */
static const char rfc8037_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
/* An Ed448 public key (RFC 8032 §7.4, the first test vector), which Herald passes over. */
static const char ed448_x[] =
    "X9dEm1m0Yf0s54fsYWrUah2hNCSFpw4fig6nXYDpZ3jt8SR2m0bHBhvWeD3x5Q9s0foavq_oJWGA";

static char *raw_public_text(EVP_PKEY *k)
{
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != 32) die("Ed25519 public key");
    return b64u(raw, n);
}
static char config_text[4096];

static void make_app(void)
{
    if (!mkdtemp(app_dir)) die("mkdtemp");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed_other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    size_t d_len;
    unsigned char *d = unb64u(rfc8037_d, strlen(rfc8037_d), &d_len);
    ed_rfc = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d, d_len);
    free(d);
    if (!rsa_key || !rsa_other || !ec_key || !ed_key || !ed_other || !ed_rfc ||
        RAND_bytes(hs_secret, sizeof hs_secret) != 1)
        die("key generation");
    ed_x = raw_public_text(ed_key);
    rsa_n = bn_text(rsa_key, OSSL_PKEY_PARAM_RSA_N, 0);
    rsa_e = bn_text(rsa_key, OSSL_PKEY_PARAM_RSA_E, 0);
    ec_x = bn_text(ec_key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    ec_y = bn_text(ec_key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    hs_k = b64u(hs_secret, sizeof hs_secret);

    static char text[8192];
    /* RFC 8037's Ed25519 key and a fresh one; an Ed448 key, an X25519 (key agreement) key and an
     * encryption key, which a set may hold and Herald passes over. */
    snprintf(text, sizeof text,
             "{\"keys\":[\n"
             " {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed1\","
             "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},\n"
             " {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\",\"use\":\"sig\","
             "\"kid\":\"ed2\",\"x\":\"%s\"},\n"
             " {\"kty\":\"OKP\",\"crv\":\"Ed448\",\"kid\":\"ed448\",\"x\":\"%s\"},\n"
             " {\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"x25519\",\"x\":\"%s\"},\n"
             " {\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"rsa-enc\",\"n\":\"%s\",\"e\":\"%s\"},\n"
             " {\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"rsa1\","
             "\"n\":\"%s\",\"e\":\"%s\"},\n"
             " {\"kty\":\"RSA\",\"alg\":\"PS256\",\"kid\":\"rsa-ps\",\"n\":\"%s\",\"e\":\"%s\"},\n"
             " {\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"x\":\"%s\",\"y\":\"%s\"},\n"
             " {\"kty\":\"oct\",\"alg\":\"HS256\",\"kid\":\"hs1\",\"k\":\"%s\"}\n]}\n",
             ed_x, ed448_x, ed_x, rsa_n, rsa_e, rsa_n, rsa_e, rsa_n, rsa_e, ec_x, ec_y, hs_k);
    write_text("keys.jwks.json", text);
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"n\":\"%s\",\"e\":\"%s\"}]}", rsa_n,
             rsa_e);
    write_text("rsa-only.jwks.json", text);
    snprintf(config_text, sizeof config_text,
             "{\"providers\": [\n"
             "  {\"issuer\": \"https://issuer.test/\", \"audience\": \"app\",\n"
             "   \"jwks\": \"keys.jwks.json\", \"algorithms\": [\"RS256\", \"ES256\", \"HS256\", "
             "\"EdDSA\"]},\n"
             "  {\"issuer\": \"https://confused.test/\", \"audience\": \"app\",\n"
             "   \"jwks\": \"rsa-only.jwks.json\", \"algorithms\": [\"RS256\", \"HS256\"]},\n"
             "  {\"domain\": \"https://convex-spelling.test\", \"applicationID\": \"app2\",\n"
             "   \"jwks\": \"%s/keys.jwks.json\", \"leeway\": 0},\n"
             "  {\"issuer\": \"https://issuer.test/\", \"audience\": \"other-app\",\n"
             "   \"jwks\": \"keys.jwks.json\", \"leeway\": 600}\n"
             "]}\n",
             app_dir);
    write_text("auth.config.json", config_text);
}

static hd_auth *load_app(void)
{
    hd_auth *a = NULL;
    herald_error err = {0};
    int rc = hd__auth_load(app_dir, &a, &err);
    if (rc) fprintf(stderr, "loading the test app: %s\n", err.message);
    CHECK(rc == 0 && hd__auth_provider_count(a) == 4);

    hd_auth *b = NULL;
    rc = hd__auth_load_text(config_text, strlen(config_text), app_dir, &b, &err);
    if (rc) fprintf(stderr, "loading the test config text: %s\n", err.message);
    CHECK(rc == 0 && hd__auth_provider_count(b) == 4);
    hd__auth_free(b);
    return a;
}

/* ---- valid tokens -------------------------------------------------------- */

static const char *profile_claims =
    ",\"nbf\":1699999990,\"jti\":\"j-1\",\"email\":\"ada@example.com\",\"email_verified\":true,"
    "\"name\":\"Ada Lovelace\",\"given_name\":\"Ada\",\"family_name\":\"Lovelace\","
    "\"nickname\":\"ada\",\"preferred_username\":\"ada_l\",\"picture\":\"https://img.test/a.png\","
    "\"profile\":\"https://ada.test\",\"phone_number\":\"+44 20 7946 0000\","
    "\"updated_at\":1699999999,\"role\":\"admin\",\"org\":{\"id\":\"o1\",\"tier\":2},"
    "\"tags\":[\"a\",\"b\"],\"tokenIdentifier\":\"forged\",\"issuer\":\"forged\","
    "\"subject\":\"forged\",\"givenName\":\"forged\"";

static void check_full_identity(const herald_value *id)
{
    CHECK(id->type == HERALD_OBJECT);
    if (id->type != HERALD_OBJECT) return;
    CHECK(is_str(herald_object_get(id, "subject"), "user-42"));
    CHECK(is_str(herald_object_get(id, "issuer"), "https://issuer.test/"));
    CHECK(is_str(herald_object_get(id, "tokenIdentifier"), "https://issuer.test/|user-42"));
    CHECK(is_str(herald_object_get(id, "email"), "ada@example.com"));
    const herald_value *v = herald_object_get(id, "emailVerified");
    CHECK(v && v->type == HERALD_BOOLEAN && v->u.b);
    CHECK(is_str(herald_object_get(id, "name"), "Ada Lovelace"));
    CHECK(is_str(herald_object_get(id, "givenName"), "Ada"));
    CHECK(is_str(herald_object_get(id, "familyName"), "Lovelace"));
    CHECK(is_str(herald_object_get(id, "nickname"), "ada"));
    CHECK(is_str(herald_object_get(id, "preferredUsername"), "ada_l"));
    CHECK(is_str(herald_object_get(id, "pictureUrl"), "https://img.test/a.png"));
    CHECK(is_str(herald_object_get(id, "profileUrl"), "https://ada.test"));
    CHECK(is_str(herald_object_get(id, "phoneNumber"), "+44 20 7946 0000"));
    CHECK(is_str(herald_object_get(id, "updatedAt"), "1699999999"));
    CHECK(is_str(herald_object_get(id, "role"), "admin"));
    CHECK(is_str(herald_value_path(id, "org.id"), "o1"));
    v = herald_value_path(id, "org.tier");
    CHECK(v && v->type == HERALD_FLOAT64 && v->u.f == 2.0);
    v = herald_object_get(id, "tags");
    CHECK(v && v->type == HERALD_ARRAY && v->u.arr.len == 2);
    /* Registered claims and the raw OIDC names are not copied. */
    const char *absent[] = {"iss",
                            "sub",
                            "aud",
                            "exp",
                            "nbf",
                            "iat",
                            "jti",
                            "email_verified",
                            "given_name",
                            "family_name",
                            "preferred_username",
                            "picture",
                            "profile",
                            "phone_number",
                            "updated_at"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        CHECK(herald_object_get(id, absent[i]) == NULL);
    CHECK(id->u.obj.len == 17);
}

static void test_valid(hd_auth *a)
{
    struct {
        const char *alg, *kid;
        enum signer how;
    } ways[] = {
        {"RS256", "rsa1", SIGN_RSA},  {"RS256", NULL, SIGN_RSA},   {"ES256", "ec1", SIGN_EC},
        {"ES256", NULL, SIGN_EC},     {"HS256", "hs1", SIGN_HMAC}, {"HS256", NULL, SIGN_HMAC},
        {"EdDSA", "ed2", SIGN_ED},    {"EdDSA", NULL, SIGN_ED},    {"EdDSA", "ed1", SIGN_ED_RFC},
        {"EdDSA", NULL, SIGN_ED_RFC},
    };
    for (size_t i = 0; i < sizeof ways / sizeof *ways; i++) {
        herald_value id =
            ACCEPTED(a, mint(ways[i].alg, ways[i].kid, claims_with(profile_claims), ways[i].how));
        check_full_identity(&id);
        herald_value_free(&id);
    }

    /* A minimal token: exactly the three fields every identity has. */
    herald_value id = ACCEPTED(a, mint("ES256", "ec1", claims_with(""), SIGN_EC));
    CHECK(id.type == HERALD_OBJECT && id.u.obj.len == 3);
    herald_value_free(&id);

    /* aud may be an array holding the audience. */
    char claims[512];
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://issuer.test/\",\"aud\":[\"x\",\"app\"],\"sub\":\"s\",\"exp\":%d}",
             NOW + 60);
    id = ACCEPTED(a, mint("RS256", "rsa1", claims, SIGN_RSA));
    herald_value_free(&id);

    /* Within the leeway (60 s by default) on every side. */
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,"
             "\"nbf\":%d,\"iat\":%d}",
             NOW - 59, NOW + 59, NOW + 59);
    id = ACCEPTED(a, mint("RS256", "rsa1", claims, SIGN_RSA));
    herald_value_free(&id);

    /* Times may be fractional, or Convex-encoded integers. */
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d.5}", NOW);
    id = ACCEPTED(a, mint("RS256", "rsa1", claims, SIGN_RSA));
    herald_value_free(&id);

    /* email_verified as the string some providers send; mistyped profile claims are left out. */
    id = ACCEPTED(a, mint("RS256", "rsa1",
                          claims_with(",\"email_verified\":\"true\",\"name\":7,\"picture\":null,"
                                      "\"updated_at\":\"2023-11-14T22:13:20Z\""),
                          SIGN_RSA));
    const herald_value *v = herald_object_get(&id, "emailVerified");
    CHECK(v && v->type == HERALD_BOOLEAN && v->u.b);
    CHECK(herald_object_get(&id, "name") == NULL && herald_object_get(&id, "pictureUrl") == NULL);
    CHECK(is_str(herald_object_get(&id, "updatedAt"), "2023-11-14T22:13:20Z"));
    herald_value_free(&id);

    /* A claim may not pose as a derived identity field: camelCase names are Herald's to fill. */
    id =
        ACCEPTED(a, mint("RS256", "rsa1",
                         claims_with(",\"emailVerified\":true,\"pictureUrl\":\"https://evil.test\","
                                     "\"tokenIdentifier\":\"forged\",\"subject\":\"root\""),
                         SIGN_RSA));
    CHECK(herald_object_get(&id, "emailVerified") == NULL);
    CHECK(herald_object_get(&id, "pictureUrl") == NULL);
    CHECK(is_str(herald_object_get(&id, "tokenIdentifier"), "https://issuer.test/|user-42"));
    CHECK(is_str(herald_object_get(&id, "subject"), "user-42"));
    CHECK(id.type == HERALD_OBJECT && id.u.obj.len == 3);
    herald_value_free(&id);

    /* Convex's spellings (domain, applicationID), an absolute jwks path, leeway 0. */
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://convex-spelling.test\",\"aud\":\"app2\",\"sub\":\"s\","
             "\"exp\":%d}",
             NOW);
    id = ACCEPTED(a, mint("ES256", "ec1", claims, SIGN_EC));
    CHECK(is_str(herald_object_get(&id, "tokenIdentifier"), "https://convex-spelling.test|s"));
    herald_value_free(&id);
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://convex-spelling.test\",\"aud\":\"app2\",\"sub\":\"s\","
             "\"exp\":%d}",
             NOW - 1);
    REFUSED(a, mint("ES256", "ec1", claims, SIGN_EC), "token expired");

    /* Same issuer, other audience: provider 3 with its own leeway (600 s). */
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"other-app\",\"sub\":\"s\",\"exp\":%d}",
             NOW - 500);
    id = ACCEPTED(a, mint("RS256", "rsa1", claims, SIGN_RSA));
    herald_value_free(&id);
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}",
             NOW - 500);
    REFUSED(a, mint("RS256", "rsa1", claims, SIGN_RSA), "token expired");
}

/* ---- refused tokens ------------------------------------------------------ */

static void test_refused(hd_auth *a)
{
    char c[1024];
#define CLAIMS(...) (snprintf(c, sizeof c, __VA_ARGS__), c)
    const char *iss = "\"iss\":\"https://issuer.test/\"";

    /* Time. */
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}", iss, NOW - 61), SIGN_RSA),
            "token expired");
    REFUSED(a,
            mint("ES256", "ec1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}", iss, NOW - 3600), SIGN_EC),
            "token expired");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,\"nbf\":%d}", iss, NOW + 3600,
                        NOW + 61),
                 SIGN_RSA),
            "not valid yet");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,\"iat\":%d}", iss, NOW + 3600,
                        NOW + 61),
                 SIGN_RSA),
            "issued in the future");
    REFUSED(a, mint("RS256", "rsa1", CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\"}", iss), SIGN_RSA),
            "no expiry time");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":\"%d\"}", iss, NOW + 60),
                 SIGN_RSA),
            "exp is not a number");
    REFUSED(
        a,
        mint("RS256", "rsa1",
             CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,\"nbf\":true}", iss, NOW + 60),
             SIGN_RSA),
        "nbf is not a number");
    REFUSED(
        a,
        mint("RS256", "rsa1",
             CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,\"iat\":null}", iss, NOW + 60),
             SIGN_RSA),
        "iat is not a number");
    REFUSED_AT(a, mint("RS256", "rsa1", claims_with(""), SIGN_RSA), NAN, "time is not a number");

    /* Audience, subject, issuer. */
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"not-app\",\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60),
                 SIGN_RSA),
            "audience does not match");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":[\"x\",\"y\"],\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60),
                 SIGN_RSA),
            "audience does not match");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":[[\"app\"]],\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60),
                 SIGN_RSA),
            "audience does not match");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"APP\",\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60), SIGN_RSA),
            "audience does not match");
    REFUSED(a,
            mint("RS256", "rsa1", CLAIMS("{%s,\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60), SIGN_RSA),
            "no audience");
    REFUSED(
        a,
        mint("RS256", "rsa1", CLAIMS("{%s,\"aud\":\"app\",\"exp\":%d}", iss, NOW + 60), SIGN_RSA),
        "no subject");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":42,\"exp\":%d}", iss, NOW + 60), SIGN_RSA),
            "no subject");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{%s,\"aud\":\"app\",\"sub\":\"\",\"exp\":%d}", iss, NOW + 60), SIGN_RSA),
            "no subject");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{\"iss\":\"https://evil.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}",
                        NOW + 60),
                 SIGN_RSA),
            "unknown issuer");
    /* Issuers match exactly: no trailing-slash or case folding. */
    REFUSED(
        a,
        mint("RS256", "rsa1",
             CLAIMS("{\"iss\":\"https://issuer.test\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}",
                    NOW + 60),
             SIGN_RSA),
        "unknown issuer");
    REFUSED(
        a,
        mint("RS256", "rsa1",
             CLAIMS("{\"iss\":\"HTTPS://ISSUER.TEST/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}",
                    NOW + 60),
             SIGN_RSA),
        "unknown issuer");
    REFUSED(a,
            mint("RS256", "rsa1", CLAIMS("{\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}", NOW + 60),
                 SIGN_RSA),
            "no issuer");
    REFUSED(a,
            mint("RS256", "rsa1",
                 CLAIMS("{\"iss\":7,\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}", NOW + 60),
                 SIGN_RSA),
            "no issuer");

    /* Keys. */
    REFUSED(a, mint("RS256", "nope", claims_with(""), SIGN_RSA), "unknown key id");
    REFUSED(a, mint("RS256", "rsa-enc", claims_with(""), SIGN_RSA), "unknown key id");
    REFUSED(a, mint("RS256", "ed448", claims_with(""), SIGN_RSA), "unknown key id");
    REFUSED(a, mint("EdDSA", "x25519", claims_with(""), SIGN_ED), "unknown key id");
    REFUSED(a, mint("RS256", "RSA1", claims_with(""), SIGN_RSA), "unknown key id");
    REFUSED(a, mint("RS256", "rsa-ps", claims_with(""), SIGN_RSA), "own alg is not the token's");
    REFUSED(a, mint("ES256", "rsa1", claims_with(""), SIGN_EC), "key type does not match");
    REFUSED(a, mint("RS256", "ec1", claims_with(""), SIGN_RSA), "key type does not match");
    REFUSED(a, mint("RS256", "rsa1", claims_with(""), SIGN_RSA_OTHER), "signature does not verify");
    REFUSED(a, mint("RS256", NULL, claims_with(""), SIGN_RSA_OTHER), "signature does not verify");
    REFUSED(a, mint("HS256", "hs1", claims_with(""), SIGN_NONE), "no signature");
    REFUSED(a, mint("ES256", "ec1", claims_with(""), SIGN_EC_DER), "64 bytes");

    /* Tampering: claims changed after signing, signatures with a bit flipped. */
    enum signer signers[] = {SIGN_RSA, SIGN_EC, SIGN_HMAC};
    const char *algs[] = {"RS256", "ES256", "HS256"}, *kids[] = {"rsa1", "ec1", "hs1"};
    for (int s = 0; s < 3; s++) {
        char *good = mint(algs[s], kids[s], claims_with(""), signers[s]);
        const char *forged = "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\","
                             "\"sub\":\"admin\",\"exp\":1700003600,\"iat\":1699999990}";
        char *payload = b64u(forged, strlen(forged));
        REFUSED(a, with_part(good, 1, payload), "signature does not verify");
        free(payload);
        size_t bits = signature_bytes(good) * 8;
        for (int i = 0; i < 24; i++)
            REFUSED(a, flip_signature_bit(good, check_below((unsigned)bits)),
                    "signature does not verify");
        /* Another token's signature. */
        char *other = mint(algs[s], kids[s], claims_with(",\"x\":1"), signers[s]);
        const char *sig = strrchr(other, '.') + 1;
        REFUSED(a, with_part(good, 2, sig), "signature does not verify");
        free(other);
        /* A kid changed in the header breaks the signature too. */
        char header[128];
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[s]);
        char *h = b64u(header, strlen(header));
        REFUSED(a, with_part(good, 0, h), "signature does not verify");
        free(h);
        free(good);
    }

    /* Algorithms. */
    const char *nones[] = {"none", "None", "NONE", "nOnE"};
    for (int i = 0; i < 4; i++) {
        REFUSED(a, mint(nones[i], NULL, claims_with(""), SIGN_NONE),
                "algorithm none is not accepted");
        REFUSED(a, mint(nones[i], "hs1", claims_with(""), SIGN_HMAC),
                "algorithm none is not accepted");
    }
    REFUSED(a, mint("HS512", "hs1", claims_with(""), SIGN_HMAC), "not supported");
    REFUSED(a, mint("foo", "rsa1", claims_with(""), SIGN_RSA), "not supported");
    REFUSED(a, mint("rs256", "rsa1", claims_with(""), SIGN_RSA), "not supported");
    REFUSED(a, mint("PS256", "rsa-ps", claims_with(""), SIGN_RSA), "not supported");
    REFUSED(a, mint("ES384", "ec1", claims_with(""), SIGN_EC), "not supported");
    REFUSED(a, mint("", "rsa1", claims_with(""), SIGN_RSA), "not supported");
    /* HS256 is not in the default list (provider 3). */
    REFUSED(a,
            mint("HS256", "hs1",
                 CLAIMS("{%s,\"aud\":\"other-app\",\"sub\":\"s\",\"exp\":%d}", iss, NOW + 60),
                 SIGN_HMAC),
            "algorithm HS256 is not allowed for this issuer");
#undef CLAIMS
}

/*
 * The classic confusion: an HS256 token whose HMAC secret is the RSA
 * public key (its PEM text or DER bytes), which a verifier that lets the
 * token pick the algorithm would check with the RSA key's bytes.
 */
static void test_key_confusion(hd_auth *a)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PUBKEY(bio, rsa_key) != 1) die("PEM_write_bio_PUBKEY");
    char *pem_data = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem_data);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(rsa_key, &der);
    if (pem_len <= 0 || der_len <= 0) die("public key encoding");
    struct {
        const void *p;
        size_t n;
    } secrets[] = {{pem_data, (size_t)pem_len},
                   {pem_data, (size_t)pem_len - 1}, /* without the final newline */
                   {der, (size_t)der_len}};
    char claims[512];
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        for (int p = 0; p < 2; p++) {
            const char *issuer = p ? "https://confused.test/" : "https://issuer.test/";
            snprintf(claims, sizeof claims,
                     "{\"iss\":\"%s\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}", issuer, NOW + 60);
            REFUSED(a,
                    mint_raw("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", claims, SIGN_HMAC,
                             secrets[i].p, secrets[i].n),
                    "key type does not match the algorithm");
            /* Without a kid: the confused provider has no oct key at all; provider 0 tries its
             * oct key, which is not the RSA key's bytes. */
            REFUSED(a,
                    mint_raw("{\"alg\":\"HS256\"}", claims, SIGN_HMAC, secrets[i].p, secrets[i].n),
                    p ? "key type does not match the algorithm" : "signature does not verify");
        }
    }
    /* The confused provider still accepts RS256 from its RSA key. */
    snprintf(claims, sizeof claims,
             "{\"iss\":\"https://confused.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d}",
             NOW + 60);
    herald_value id = ACCEPTED(a, mint("RS256", "rsa1", claims, SIGN_RSA));
    herald_value_free(&id);
    OPENSSL_free(der);
    BIO_free(bio);
}

/* ---- malformed tokens ---------------------------------------------------- */

static char *token_of(const char *header, const char *claims, const char *sig)
{
    char *h = b64u(header, strlen(header)), *c = b64u(claims, strlen(claims));
    char *hc = cat(h, ".", c), *t = cat(hc, ".", sig);
    free(h);
    free(c);
    free(hc);
    return t;
}

/* ---- EdDSA (RFC 8037) ---------------------------------------------------- */

/* RFC 8037 A.4 signs a payload that is not JSON: the test's signer reproduces its signature
 * exactly, and JWTs signed with the RFC's key go through the signature layer. */
static void test_eddsa_rfc_vector(void)
{
    char *rfc = read_text(fixtures, "rfc8037-a4.jws");
    hd_jwk *key = fixture_key("rfc8037-a.jwk.json");
    const char *dot = strrchr(rfc, '.');
    CHECK(strncmp(rfc, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.",
                  (size_t)(dot - rfc + 1)) == 0);
    char *pub = raw_public_text(ed_rfc);
    CHECK(strcmp(pub, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo") == 0);
    free(pub);
    char *again =
        mint_raw("{\"alg\":\"EdDSA\"}", "Example of Ed25519 signing", SIGN_ED_RFC, NULL, 0);
    CHECK(strcmp(again, rfc) == 0);
    free(again);
    /* A JWS, not a JWT: its algorithm and shape pass, its payload is refused as claims. */
    JWS_REFUSED(rfc, key, HD_JWA_ALL, "token payload is not valid JSON");

    const char *claims = "{\"iss\":\"joe\",\"exp\":1300819380,\"http://example.com/is_root\":true}";
    char *token = mint_raw("{\"alg\":\"EdDSA\"}", claims, SIGN_ED_RFC, NULL, 0);
    CHECK(signature_bytes(token) == 64);
    rfc_claims_token(token, key, HD_JWA_EDDSA);

    /* An Ed25519 key verifies EdDSA only, and EdDSA needs an Ed25519 key: both ways round. */
    hd_jwk *oct = fixture_key("rfc7515-a1.jwk.json"), *rsa = fixture_key("rfc7515-a2.jwk.json"),
           *ec = fixture_key("rfc7515-a3.jwk.json");
    JWS_REFUSED(token, rsa, HD_JWA_ALL, "EdDSA needs an OKP Ed25519 key");
    JWS_REFUSED(token, ec, HD_JWA_ALL, "key type does not match the algorithm");
    JWS_REFUSED(token, oct, HD_JWA_ALL, "key type does not match the algorithm");
    const char *others[] = {"rfc7515-a1.jws", "rfc7515-a2.jws", "rfc7515-a3.jws"};
    for (size_t i = 0; i < 3; i++) {
        char *o = read_text(fixtures, others[i]);
        JWS_REFUSED(o, key, HD_JWA_ALL, "key type does not match the algorithm");
        free(o);
    }
    /* The same signature under another algorithm name, with the Ed25519 key. */
    char *sig_text = must(strdup(strrchr(token, '.') + 1));
    char *renamed = token_of("{\"alg\":\"RS256\"}", claims, sig_text);
    JWS_REFUSED(renamed, key, HD_JWA_ALL, "RS256 needs an RSA key");
    free(renamed);
    free(sig_text);
    hd__jwk_free(oct);
    hd__jwk_free(rsa);
    hd__jwk_free(ec);
    hd__jwk_free(key);
    free(token);
    free(rfc);
}

/* Minimal claims: issuer, audience, subject "s" and expiry. The text lives until the next call. */
static const char *claims_of(const char *iss, const char *aud, int exp)
{
    static char c[512];
    snprintf(c, sizeof c, "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"s\",\"exp\":%d}", iss, aud,
             exp);
    return c;
}

/* Ed25519 tokens through the providers: the fresh key (ed2), refusals of every kind. */
static void test_eddsa(hd_auth *a)
{
    test_eddsa_rfc_vector();
    char *good = mint("EdDSA", "ed2", claims_with(""), SIGN_ED);
    herald_value id = ACCEPTED(a, must(strdup(good)));
    CHECK(is_str(herald_object_get(&id, "tokenIdentifier"), "https://issuer.test/|user-42"));
    herald_value_free(&id);

    /* Tampered: a changed payload, each bit of the signature, another key's signature. */
    const char *other = claims_with(",\"role\":\"admin\"");
    char *payload = b64u(other, strlen(other));
    REFUSED(a, with_part(good, 1, payload), "signature does not verify");
    free(payload);
    for (size_t bit = 0; bit < 64 * 8; bit += 7)
        REFUSED(a, flip_signature_bit(good, bit), "signature does not verify");
    REFUSED(a, mint("EdDSA", "ed2", claims_with(""), SIGN_ED_OTHER), "signature does not verify");
    REFUSED(a, mint("EdDSA", NULL, claims_with(""), SIGN_ED_OTHER), "signature does not verify");
    /* RFC 8037's key (ed1) did not sign a token signed by ed2's, and the other way round. */
    REFUSED(a, mint("EdDSA", "ed1", claims_with(""), SIGN_ED), "signature does not verify");
    REFUSED(a, mint("EdDSA", "ed2", claims_with(""), SIGN_ED_RFC), "signature does not verify");

    /* Signatures of the wrong length, and none. */
    const char *s = strrchr(good, '.') + 1;
    size_t n;
    unsigned char *raw = unb64u(s, strlen(s), &n);
    CHECK(n == 64);
    unsigned char longer[65];
    memcpy(longer, raw, 64);
    longer[64] = 0;
    char *short_text = b64u(raw, 63), *long_text = b64u(longer, 65);
    REFUSED(a, with_part(good, 2, short_text), "an Ed25519 signature is 64 bytes");
    REFUSED(a, with_part(good, 2, long_text), "an Ed25519 signature is 64 bytes");
    REFUSED(a, mint("EdDSA", "ed2", claims_with(""), SIGN_NONE), "no signature");
    free(short_text);
    free(long_text);
    free(raw);

    /* Key types and algorithms: an OKP key serves EdDSA only, EdDSA only OKP Ed25519 keys. */
    REFUSED(a, mint("EdDSA", "rsa1", claims_with(""), SIGN_ED), "EdDSA needs an OKP Ed25519 key");
    REFUSED(a, mint("EdDSA", "ec1", claims_with(""), SIGN_ED), "key type does not match");
    REFUSED(a, mint("EdDSA", "hs1", claims_with(""), SIGN_ED), "key type does not match");
    REFUSED(a, mint("RS256", "ed2", claims_with(""), SIGN_RSA), "RS256 needs an RSA key");
    REFUSED(a, mint("ES256", "ed1", claims_with(""), SIGN_EC), "key type does not match");
    /* HS256 keyed with the Ed25519 public key's bytes (the key confusion, Ed25519 flavour). */
    size_t pub_len;
    unsigned char *pub = unb64u(ed_x, strlen(ed_x), &pub_len);
    REFUSED(
        a,
        mint_raw("{\"alg\":\"HS256\",\"kid\":\"ed2\"}", claims_with(""), SIGN_HMAC, pub, pub_len),
        "key type does not match");
    REFUSED(a, mint_raw("{\"alg\":\"HS256\"}", claims_with(""), SIGN_HMAC, pub, pub_len),
            "signature does not verify");
    free(pub);
    /* Names that are not EdDSA: JWS algorithm names are case-sensitive; Ed448 is refused. */
    REFUSED(a, mint("EDDSA", "ed2", claims_with(""), SIGN_ED), "token algorithm is not supported");
    REFUSED(a, mint("Ed25519", "ed2", claims_with(""), SIGN_ED),
            "token algorithm is not supported");
    REFUSED(a, mint("Ed448", "ed448", claims_with(""), SIGN_ED),
            "token algorithm is not supported");

    /* A provider that does not list EdDSA refuses it; one that lists nothing allows it. */
    REFUSED(a, mint("EdDSA", "ed2", claims_of("https://confused.test/", "app", NOW + 60), SIGN_ED),
            "algorithm EdDSA is not allowed for this issuer");
    id = ACCEPTED(
        a, mint("EdDSA", "ed2", claims_of("https://convex-spelling.test", "app2", NOW), SIGN_ED));
    herald_value_free(&id);
    /* Claims are checked after the signature as for any algorithm. */
    REFUSED(a, mint("EdDSA", "ed2", claims_of("https://issuer.test/", "app", NOW - 61), SIGN_ED),
            "token expired");
    REFUSED(a, mint("EdDSA", "ed2", claims_of("https://issuer.test/", "nope", NOW + 60), SIGN_ED),
            "audience does not match");
    free(good);
}

static void test_malformed(hd_auth *a)
{
    const char *claims = claims_with("");
    REFUSED(a, NULL, "no token");
    REFUSED(a, must(strdup("")), "token is empty");
    REFUSED(a, must(strdup("abc")), "three base64url parts");
    REFUSED(a, must(strdup("a.b")), "three base64url parts");
    REFUSED(a, must(strdup("a.b.c.d")), "three base64url parts");
    REFUSED(a, must(strdup("..")), "header is not base64url");
    REFUSED(a, must(strdup("...")), "three base64url parts");

    char *good = mint("RS256", "rsa1", claims, SIGN_RSA);
    /* Padding, the standard alphabet, whitespace: not base64url. */
    char *padded = cat(good, "", "=");
    REFUSED(a, padded, "signature is not base64url");
    char *t = must(strdup(good));
    *strchr(t, '.') = '\0';
    char *h = cat(t, "=", "");
    REFUSED(a, with_part(good, 0, h), "header is not base64url");
    free(h);
    free(t);
    t = must(strdup(good));
    char *sig = strrchr(t, '.') + 1;
    sig[3] = '+';
    REFUSED(a, t, "signature is not base64url");
    t = cat(" ", "", good);
    REFUSED(a, t, "header is not base64url");
    REFUSED(a, with_part(good, 1, ""), "payload is not base64url");

    /* Headers and claims that are not JSON objects. */
    REFUSED(a, token_of("{\"alg\":\"RS256\"", claims, "AAAA"), "header is not valid JSON");
    REFUSED(a, token_of("[\"RS256\"]", claims, "AAAA"), "header is not a JSON object");
    REFUSED(a, token_of("\"RS256\"", claims, "AAAA"), "header is not a JSON object");
    REFUSED(a, token_of("{\"alg\":\"RS256\"} x", claims, "AAAA"), "header is not valid JSON");
    REFUSED(a, token_of("{\"alg\":\"RS256\",\"alg\":\"none\"}", claims, "AAAA"),
            "header is not valid JSON");
    REFUSED(a, token_of("{\"typ\":\"JWT\"}", claims, "AAAA"), "no alg");
    REFUSED(a, token_of("{\"alg\":256}", claims, "AAAA"), "no alg");
    REFUSED(a, token_of("{\"alg\":null}", claims, "AAAA"), "no alg");
    REFUSED(a, token_of("{\"alg\":\"RS256\",\"kid\":1}", claims, "AAAA"), "kid is not a string");
    REFUSED(a, token_of("{\"alg\":\"RS256\",\"typ\":[]}", claims, "AAAA"), "typ is not a string");
    REFUSED(a, token_of("{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", claims, "AAAA"),
            "critical extensions");
    REFUSED(a, token_of("{\"alg\":\"RS256\"}", "[1,2]", "AAAA"), "payload is not a JSON object");
    REFUSED(a, token_of("{\"alg\":\"RS256\"}", "null", "AAAA"), "payload is not a JSON object");
    REFUSED(a, token_of("{\"alg\":\"RS256\"}", "{\"iss\":", "AAAA"), "payload is not valid JSON");
    REFUSED(a, token_of("{\"alg\":\"RS256\"}", "{\"a\":\"\\u0000\"}", "AAAA"),
            "payload is not valid JSON");
    REFUSED(a, token_of("{\"alg\":\"RS256\"}", "{\"a\":\"\xff\"}", "AAAA"),
            "payload is not valid JSON");
    REFUSED(a, token_of("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims, "AAAA"),
            "signature does not verify");

    /* A header that brings its own key is not trusted: the key is ignored. */
    char header[2048];
    snprintf(header, sizeof header,
             "{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"},"
             "\"jku\":\"https://evil.test/jwks\"}",
             rsa_n);
    REFUSED(a, mint_raw(header, claims, SIGN_RSA_OTHER, NULL, 0), "signature does not verify");

    /* The length limit. */
    size_t n = HD_JWT_MAX_BYTES + 1;
    t = must(malloc(n + 1));
    memset(t, 'A', n);
    t[n] = 0;
    REFUSED(a, t, "longer than 16384 bytes");
    /* A signed token just over the limit is refused unread; one within it is verified. */
    char *big_claims = must(malloc(HD_JWT_MAX_BYTES));
    snprintf(big_claims, HD_JWT_MAX_BYTES,
             "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":%d,"
             "\"pad\":\"",
             NOW + 60);
    size_t len = strlen(big_claims);
    size_t fill = 11000; /* base64 grows it by 4/3: about 14.7 KiB of token */
    memset(big_claims + len, 'x', fill);
    strcpy(big_claims + len + fill, "\"}");
    herald_value id = ACCEPTED(a, mint("ES256", "ec1", big_claims, SIGN_EC));
    herald_value_free(&id);
    memset(big_claims + len, 'x', fill + 1500);
    strcpy(big_claims + len + fill + 1500, "\"}");
    REFUSED(a, mint("ES256", "ec1", big_claims, SIGN_EC), "longer than 16384 bytes");
    free(big_claims);
    free(good);
}

/* ---- mutation and garbage ------------------------------------------------ */

static const char token_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x01\xff";

static char *mutate(const char *base)
{
    size_t n = strlen(base);
    char *m = must(malloc(n + 64));
    memcpy(m, base, n + 1);
    size_t at = check_below((unsigned)n);
    char c = token_chars[check_below(sizeof token_chars - 1)];
    switch (check_below(7)) {
    case 0: /* flip a bit */
        m[at] = (char)(m[at] ^ (1 << check_below(8)));
        if (!m[at]) m[at] = 'A';
        break;
    case 1: /* replace a character */
        m[at] = c;
        break;
    case 2: /* delete a character */
        memmove(m + at, m + at + 1, n - at);
        break;
    case 3: /* insert a character */
        memmove(m + at + 1, m + at, n - at + 1);
        m[at] = c;
        break;
    case 4: /* truncate */
        m[at] = 0;
        break;
    case 5: { /* swap two characters */
        size_t b = check_below((unsigned)n);
        char x = m[at];
        m[at] = m[b];
        m[b] = x;
        break;
    }
    default: { /* several changes at once */
        for (int i = 0; i < 4; i++)
            m[check_below((unsigned)n)] = token_chars[check_below(sizeof token_chars - 1)];
        break;
    }
    }
    return m;
}

/* Tokens of the right shape with random headers, claims and signatures. */
static char *random_shaped(void)
{
    static const char *headers[] = {"{\"alg\":\"RS256\"}",
                                    "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
                                    "{\"alg\":\"HS256\",\"kid\":\"hs1\"}",
                                    "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
                                    "{\"alg\":\"ES256\"}",
                                    "{\"alg\":\"HS256\"}",
                                    "{}",
                                    "{\"alg\":\"none\"}"};
    static const char *claims[] = {
        "{}", "{\"iss\":\"https://issuer.test/\"}",
        "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\",\"exp\":1800000000}",
        "{\"iss\":\"https://confused.test/\",\"exp\":1}", "{\"iss\":[]}"};
    unsigned char sig[600];
    size_t sig_len = check_below(4) == 0 ? 64 : check_below(4) == 0 ? 32 : check_below(600);
    if (check_below(3) == 0) sig_len = 256;
    for (size_t i = 0; i < sig_len; i++)
        sig[i] = (unsigned char)check_rand();
    char *s = b64u(sig, sig_len);
    char *t = token_of(headers[check_below(8)], claims[check_below(5)], s);
    free(s);
    return t;
}

static void test_mutations(hd_auth *a)
{
    char *bases[] = {
        mint("RS256", "rsa1", claims_with(profile_claims), SIGN_RSA),
        mint("ES256", "ec1", claims_with(""), SIGN_EC),
        mint("HS256", "hs1", claims_with(""), SIGN_HMAC),
        mint("ES256", NULL, claims_with(""), SIGN_EC),
    };
    size_t accepted = 0, refused = 0;
    for (int i = 0; i < 12000; i++) {
        const char *base = bases[check_below(4)];
        char *t = i % 4 == 3 ? random_shaped() : mutate(base);
        herald_value id;
        herald_error err = {0};
        int rc = hd__auth_verify(a, t, NOW, &id, &err);
        if (strcmp(t, base) == 0) {
            CHECK(rc == 0); /* the mutation changed nothing */
            accepted++;
        } else {
            if (rc != HERALD_EACCESS) fprintf(stderr, "mutated token: %d %s\n", rc, err.message);
            CHECK(rc == HERALD_EACCESS && err.message[0]);
            CHECK(id.type == HERALD_UNDEFINED);
            CHECK(!message_leaks(err.message));
            refused++;
        }
        herald_value_free(&id);
        free(t);
    }
    /* Pure noise. */
    for (int i = 0; i < 3000; i++) {
        size_t n = check_below(400);
        char *t = must(malloc(n + 1));
        for (size_t j = 0; j < n; j++)
            t[j] = check_below(8) ? token_chars[check_below(sizeof token_chars - 1)]
                                  : (char)(check_below(255) + 1);
        t[n] = 0;
        herald_value id;
        herald_error err = {0};
        CHECK(hd__auth_verify(a, t, NOW, &id, &err) == HERALD_EACCESS);
        CHECK(!message_leaks(err.message));
        free(t);
    }
    /* The RFC tokens mutated, through the signature layer. */
    hd_jwk *rsa = fixture_key("rfc7515-a2.jwk.json");
    char *a2 = read_text(fixtures, "rfc7515-a2.jws");
    for (int i = 0; i < 2000; i++) {
        char *t = mutate(a2);
        herald_value claims;
        herald_error err = {0};
        int rc = hd__jws_verify(t, rsa, HD_JWA_ALL, &claims, &err);
        CHECK(strcmp(t, a2) == 0 ? rc == 0 : rc == HERALD_EACCESS);
        herald_value_free(&claims);
        free(t);
    }
    free(a2);
    hd__jwk_free(rsa);
    printf("  mutations: %zu refused, %zu unchanged and accepted\n", refused, accepted);
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++)
        free(bases[i]);
}

/* ---- configuration errors ------------------------------------------------ */

static void jwks_error_at(int line, const char *jwks_text, const char *why)
{
    write_text("bad.jwks.json", jwks_text);
    char config[256];
    snprintf(config, sizeof config,
             "{\"providers\":[{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"bad.jwks.json\","
             "\"algorithms\":[\"RS256\",\"ES256\",\"HS256\"]}]}");
    config_error_at(line, config, HERALD_ESCHEMA, why);
    /* The message names the file. */
    hd_auth *a = NULL;
    herald_error err = {0};
    hd__auth_load_text(config, strlen(config), app_dir, &a, &err);
    CHECK(strstr(err.message, "bad.jwks.json"));
    hd__auth_free(a);
}
#define JWKS_ERROR(text, why) jwks_error_at(__LINE__, text, why)

/* A JWK Set text whose keys are the printf-style `fmt`. */
static const char *jwks_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *jwks_of(const char *fmt, ...)
{
    static char text[4096];
    char keys[4000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(keys, sizeof keys, fmt, ap);
    va_end(ap);
    snprintf(text, sizeof text, "{\"keys\":[%s]}", keys);
    return text;
}

static void test_config_errors(void)
{
    char text[4096];
#define PROVIDER(...) (snprintf(text, sizeof text, "{\"providers\":[{" __VA_ARGS__ "}]}"), text)
    /* Shape and unknown keys. */
    CONFIG_ERROR("", HERALD_ESCHEMA, "not valid JSON");
    CONFIG_ERROR("{\"providers\":[]", HERALD_ESCHEMA, "not valid JSON");
    CONFIG_ERROR("{\"providers\":[]} []", HERALD_ESCHEMA, "not valid JSON");
    CONFIG_ERROR("[]", HERALD_ESCHEMA, "must be a JSON object");
    CONFIG_ERROR("{}", HERALD_ESCHEMA, "`providers` (an array) is required");
    CONFIG_ERROR("{\"providers\":{}}", HERALD_ESCHEMA, "`providers` (an array) is required");
    CONFIG_ERROR("{\"providers\":[],\"extra\":1}", HERALD_ESCHEMA, "unknown key `extra`");
    CONFIG_ERROR("{\"providers\":[],\"providers\":[]}", HERALD_ESCHEMA, "appears twice");
    CONFIG_ERROR("{\"providers\":[\"https://issuer.test/\"]}", HERALD_ESCHEMA,
                 "providers[0]: a provider must be a JSON object");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"keys.jwks.json\","
                          "\"algorithm\":\"RS256\""),
                 HERALD_ESCHEMA, "providers[0]: unknown key `algorithm`");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"keys.jwks.json\","
                          "\"type\":\"customJwt\""),
                 HERALD_ESCHEMA, "unknown key `type`");
    /* Issuer and audience. */
    CONFIG_ERROR(PROVIDER("\"audience\":\"a\",\"jwks\":\"keys.jwks.json\""), HERALD_ESCHEMA,
                 "`issuer` (or `domain`) is required");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"\",\"audience\":\"a\",\"jwks\":\"keys.jwks.json\""),
                 HERALD_ESCHEMA, "`issuer` must be a non-empty string");
    CONFIG_ERROR(PROVIDER("\"domain\":5,\"audience\":\"a\",\"jwks\":\"keys.jwks.json\""),
                 HERALD_ESCHEMA, "`domain` must be a non-empty string");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"domain\":\"i\",\"audience\":\"a\","
                          "\"jwks\":\"keys.jwks.json\""),
                 HERALD_ESCHEMA, "give `issuer` or `domain`, not both");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"jwks\":\"keys.jwks.json\""), HERALD_ESCHEMA,
                 "`audience` (or `applicationID`) is required");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"applicationID\":\"a\","
                          "\"jwks\":\"keys.jwks.json\""),
                 HERALD_ESCHEMA, "not both");
    /* Keys. */
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\""), HERALD_ESCHEMA, "`jwks`");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\","
                          "\"jwks\":\"https://i.test/.well-known/jwks.json\""),
                 HERALD_ESCHEMA, "does not fetch keys over the network");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"nope.jwks.json\""),
                 HERALD_ENOTFOUND, "nope.jwks.json: no such file");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"/nonexistent/k.json\""),
                 HERALD_ENOTFOUND, "/nonexistent/k.json");
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\".\""), HERALD_EIO,
                 "cannot be read");
    /* Algorithms and leeway. */
    const char *base = "\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"keys.jwks.json\",";
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":[\"none\"]}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "not `none`");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":[\"RS256\",\"HS512\"]}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "not `HS512`");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":[\"rs256\"]}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "not `rs256`");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":[]}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "non-empty array");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":\"RS256\"}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "non-empty array");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"algorithms\":[256]}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "not a string");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"leeway\":601}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "`leeway` must be a number of seconds, 0 to 600");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"leeway\":-1}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "`leeway`");
    snprintf(text, sizeof text, "{\"providers\":[{%s\"leeway\":\"60\"}]}", base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "`leeway`");
    /* HS256 only, with a set that holds RSA keys only: nothing could ever verify. */
    CONFIG_ERROR(PROVIDER("\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"rsa-only.jwks.json\","
                          "\"algorithms\":[\"HS256\"]"),
                 HERALD_ESCHEMA, "can verify the allowed `algorithms`");
    /* Two providers for the same issuer and audience. */
    snprintf(text, sizeof text,
             "{\"providers\":[{%s\"leeway\":1},{\"domain\":\"i\",\"applicationID\":\"a\","
             "\"jwks\":\"rsa-only.jwks.json\"}]}",
             base);
    CONFIG_ERROR(text, HERALD_ESCHEMA, "providers[1]: same issuer and audience as providers[0]");
#undef PROVIDER

    /* JWKS files. */
    JWKS_ERROR("{", "not valid JSON");
    JWKS_ERROR("[]", "not a JWK Set");
    JWKS_ERROR("{\"kty\":\"oct\",\"k\":\"AAAA\"}", "not a JWK Set");
    JWKS_ERROR("{\"keys\":[]}", "holds no key Herald can use");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"%s\"}", ed448_x),
               "holds no key Herald can use");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"%s\"}", ed_x),
               "holds no key Herald can use");
    JWKS_ERROR(jwks_of("{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}"),
               "holds no key Herald can use");
    JWKS_ERROR(jwks_of("7"), "keys[0]: a key must be a JSON object");
    JWKS_ERROR(jwks_of("{\"n\":\"%s\",\"e\":\"AQAB\"}", rsa_n), "keys[0]: the key has no `kty`");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"e\":\"AQAB\"}"), "the key has no `n`");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%s\"}", rsa_n), "the key has no `e`");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":5,\"e\":\"AQAB\"}"), "`n` must be a string");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%s=\",\"e\":\"AQAB\"}", rsa_n), "not base64url");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}"), "not base64url");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%.172s\",\"e\":\"AQAB\"}", rsa_n),
               "bits; Herald accepts 2048 to 8192");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"Ag\"}", rsa_n),
               "not a valid RSA public key");
    {
        /* An even modulus of the right size. */
        size_t n;
        unsigned char *m = unb64u(rsa_n, strlen(rsa_n), &n);
        m[n - 1] &= 0xfe;
        char *even = b64u(m, n);
        JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", even),
                   "not a valid RSA public key");
        free(even);
        free(m);
    }
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"d\":\"AQAB\"}", rsa_n),
               "private part");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"alg\":\"ES256\",\"n\":\"%s\",\"e\":\"AQAB\"}", rsa_n),
               "`alg` ES256 does not fit a RSA key");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"alg\":\"none\",\"n\":\"%s\",\"e\":\"AQAB\"}", rsa_n),
               "cannot have `alg` none");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"kid\":7,\"n\":\"%s\",\"e\":\"AQAB\"}", rsa_n),
               "must be strings");
    JWKS_ERROR(jwks_of("{\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ec_x, ec_y), "has no `crv`");
    JWKS_ERROR(
        jwks_of("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.40s\",\"y\":\"%s\"}", ec_x, ec_y),
        "32 bytes each");
    JWKS_ERROR(jwks_of("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", ec_x, ec_x),
               "not a point on the P-256 curve");
    JWKS_ERROR(jwks_of("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}",
                       ec_x, ec_y, ec_x),
               "private part");
    JWKS_ERROR(jwks_of("{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"HS256\",\"x\":\"%s\","
                       "\"y\":\"%s\"}",
                       ec_x, ec_y),
               "does not fit");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"x\":\"%s\"}", ed_x), "the OKP key has no `crv`");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}"), "the key has no `x`");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%.40s\"}", ed_x),
               "an Ed25519 key's `x` must be 32 bytes");
    JWKS_ERROR(jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s=\"}", ed_x),
               "not base64url");
    JWKS_ERROR(
        jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"d\":\"%s\"}", ed_x, rfc8037_d),
        "private part");
    JWKS_ERROR(
        jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\",\"x\":\"%s\"}", ed_x),
        "`alg` ES256 does not fit a OKP key");
    JWKS_ERROR(jwks_of("{\"kty\":\"RSA\",\"alg\":\"EdDSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", rsa_n),
               "`alg` EdDSA does not fit a RSA key");
    /* EdDSA only, with a set that holds RSA keys only; and the other way round. */
    snprintf(text, sizeof text,
             "{\"providers\":[{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"rsa-only.jwks.json\","
             "\"algorithms\":[\"EdDSA\"]}]}");
    CONFIG_ERROR(text, HERALD_ESCHEMA, "can verify the allowed `algorithms`");
    write_text("ed-only.jwks.json",
               jwks_of("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", ed_x));
    snprintf(text, sizeof text,
             "{\"providers\":[{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"ed-only.jwks.json\","
             "\"algorithms\":[\"RS256\",\"ES256\"]}]}");
    CONFIG_ERROR(text, HERALD_ESCHEMA, "can verify the allowed `algorithms`");
    snprintf(text, sizeof text,
             "{\"providers\":[{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"ed-only.jwks.json\","
             "\"algorithms\":[\"Ed448\"]}]}");
    CONFIG_ERROR(text, HERALD_ESCHEMA, "`algorithms` may hold RS256, ES256, EdDSA and HS256");
    {
        /* An Ed25519-only set with the default algorithms: Better Auth's default keys load. */
        hd_auth *ed = NULL;
        herald_error e = {0};
        snprintf(text, sizeof text,
                 "{\"providers\":[{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":\"ed-only.jwks."
                 "json\"}]}");
        CHECK_OK(hd__auth_load_text(text, strlen(text), app_dir, &ed, &e));
        hd__auth_free(ed);
    }
    JWKS_ERROR(jwks_of("{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}"),
               "an HS256 secret must be 32 to 1024 bytes; this one has 16");
    JWKS_ERROR(jwks_of("{\"kty\":\"oct\"}"), "the key has no `k`");
    JWKS_ERROR(jwks_of("{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"%s\"}", hs_k), "does not fit");
    /* One bad key spoils the set, even next to good ones: the message names it. */
    JWKS_ERROR(jwks_of("{\"kty\":\"oct\",\"k\":\"%s\"},{\"kty\":\"RSA\",\"e\":\"AQAB\"}", hs_k),
               "keys[1]: the key has no `n`");

    /* hd__jwk_parse: one key, unsupported types are errors there. */
    hd_jwk *k = NULL;
    herald_error err = {0};
    const char *okp = "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AA\"}";
    CHECK(hd__jwk_parse(okp, strlen(okp), &k, &err) == HERALD_ESCHEMA && !k);
    CHECK(strstr(err.message, "OKP curve `Ed448` is not supported (Ed25519 is)"));
    const char *rsa_kty = "{\"kty\":\"RSA-OAEP\"}";
    CHECK(hd__jwk_parse(rsa_kty, strlen(rsa_kty), &k, &err) == HERALD_ESCHEMA && !k);
    CHECK(strstr(err.message, "key type `RSA-OAEP` is not supported"));
    CHECK(hd__jwk_parse("{", 1, &k, &err) == HERALD_ESCHEMA && !k);
    hd__jwk_free(NULL);

    /* An app folder without auth.config.json: no providers, every token refused. */
    hd_auth *a = NULL;
    char *empty_dir = cat(app_dir, "/", "empty");
    if (mkdir(empty_dir, 0700) != 0) die("mkdir");
    CHECK_OK(hd__auth_load(empty_dir, &a, &err));
    CHECK(a && hd__auth_provider_count(a) == 0);
    REFUSED(a, mint("RS256", "rsa1", claims_with(""), SIGN_RSA), "no auth providers");
    REFUSED(NULL, mint("RS256", "rsa1", claims_with(""), SIGN_RSA), "no auth providers");
    CHECK(hd__auth_provider_count(NULL) == 0);
    hd__auth_free(a);
    hd__auth_free(NULL);
    /* A broken auth.config.json: the message names the file by its path. */
    char *bad_dir = cat(app_dir, "/", "bad");
    if (mkdir(bad_dir, 0700) != 0) die("mkdir");
    char *bad_file = cat(bad_dir, "/", "auth.config.json");
    FILE *f = fopen(bad_file, "w");
    if (!f) die("fopen");
    fputs("{\"providers\":[{\"issuer\":\"i\",\"audiance\":\"a\"}]}", f);
    fclose(f);
    a = (hd_auth *)1;
    CHECK(hd__auth_load(bad_dir, &a, &err) == HERALD_ESCHEMA && a == NULL);
    CHECK(strstr(err.message, bad_file) && strstr(err.message, "unknown key `audiance`"));
    unlink(bad_file);
    rmdir(bad_dir);
    rmdir(empty_dir);
    free(bad_file);
    free(bad_dir);
    free(empty_dir);
}

/* ---- out of memory ------------------------------------------------------- */

static void test_out_of_memory(void)
{
    alloc_calls = 0;
    herald_value probe;
    herald_string(&probe, "probe", 5);
    herald_value_free(&probe);
    if (alloc_calls == 0) {
        printf("  out-of-memory cases skipped: not linked with --wrap=malloc\n");
        return;
    }
    unsigned long failures = 0;
    hd_auth *a = NULL;
    herald_error err;
    for (long budget = 0;; budget++) {
        alloc_budget = budget;
        int rc = hd__auth_load(app_dir, &a, &err);
        alloc_budget = -1;
        if (rc == 0) break;
        CHECK(rc == HERALD_ENOMEM && a == NULL);
        failures++;
    }
    CHECK(hd__auth_provider_count(a) == 4);
    char *goods[] = {mint("RS256", "rsa1", claims_with(profile_claims), SIGN_RSA),
                     mint("EdDSA", "ed2", claims_with(profile_claims), SIGN_ED)};
    char *expired = mint("ES256", "ec1",
                         "{\"iss\":\"https://issuer.test/\",\"aud\":\"app\",\"sub\":\"s\","
                         "\"exp\":1600000000}",
                         SIGN_EC);
    for (size_t g = 0; g < sizeof goods / sizeof *goods; g++) {
        for (long budget = 0;; budget++) {
            herald_value id;
            alloc_budget = budget;
            int rc = hd__auth_verify(a, goods[g], NOW, &id, &err);
            alloc_budget = -1;
            if (rc == 0) {
                check_full_identity(&id);
                herald_value_free(&id);
                break;
            }
            CHECK(rc == HERALD_ENOMEM && id.type == HERALD_UNDEFINED);
            failures++;
        }
    }
    for (long budget = 0;; budget++) {
        herald_value id;
        alloc_budget = budget;
        int rc = hd__auth_verify(a, expired, NOW, &id, &err);
        alloc_budget = -1;
        CHECK(id.type == HERALD_UNDEFINED);
        if (rc == HERALD_EACCESS) {
            CHECK(strstr(err.message, "token expired"));
            break;
        }
        CHECK(rc == HERALD_ENOMEM);
        failures++;
    }
    for (long budget = 0;; budget++) {
        char t[HD_TOKEN_CHARS + 1];
        alloc_budget = budget;
        int rc = hd__token_new(t, &err);
        alloc_budget = -1;
        if (rc == 0) {
            CHECK(strlen(t) == HD_TOKEN_CHARS);
            break;
        }
        CHECK(rc == HERALD_ENOMEM && t[0] == 0);
        failures++;
    }
    printf("  out of memory: %lu failed allocations handled\n", failures);
    CHECK(failures > 20);
    free(goods[0]);
    free(goods[1]);
    free(expired);
    hd__auth_free(a);
}

/* ---- threads ------------------------------------------------------------- */

/* One hd_auth verified against from several threads at once, as the server will. */
struct verifier {
    const hd_auth *auth;
    char *tokens[3];
    int failures;
};

static void *verify_many(void *arg)
{
    struct verifier *v = arg;
    for (int i = 0; i < 300; i++) {
        herald_value id;
        herald_error err;
        if (hd__auth_verify(v->auth, v->tokens[i % 3], NOW, &id, &err) != 0 ||
            !is_str(herald_object_get(&id, "subject"), "user-42"))
            v->failures++;
        herald_value_free(&id);
    }
    return NULL;
}

static void test_threads(const hd_auth *a)
{
    struct verifier v[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        v[t] = (struct verifier){.auth = a};
        v[t].tokens[0] = mint("RS256", t % 2 ? "rsa1" : NULL, claims_with(""), SIGN_RSA);
        v[t].tokens[1] = mint("ES256", "ec1", claims_with(""), SIGN_EC);
        v[t].tokens[2] = mint("HS256", t % 2 ? "hs1" : NULL, claims_with(""), SIGN_HMAC);
        if (pthread_create(&threads[t], NULL, verify_many, &v[t]) != 0) die("pthread_create");
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        CHECK(v[t].failures == 0);
        for (int i = 0; i < 3; i++)
            free(v[t].tokens[i]);
    }
}

/* ---- job callback tokens ------------------------------------------------- */

static void test_callback_tokens(void)
{
    char prev[HD_TOKEN_CHARS + 1] = "";
    for (int i = 0; i < 200; i++) {
        char t[HD_TOKEN_CHARS + 1];
        herald_error err = {0};
        CHECK_OK(hd__token_new(t, &err));
        CHECK(strlen(t) == HD_TOKEN_CHARS);
        CHECK(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
              HD_TOKEN_CHARS);
        size_t n;
        free(unb64u(t, strlen(t), &n));
        CHECK(n == 32);
        CHECK(!hd__token_equal(t, prev));
        memcpy(prev, t, sizeof t);

        char copy[HD_TOKEN_CHARS + 1];
        memcpy(copy, t, sizeof t);
        CHECK(hd__token_equal(t, copy));
        copy[i % HD_TOKEN_CHARS] = copy[i % HD_TOKEN_CHARS] == 'A' ? 'B' : 'A';
        CHECK(!hd__token_equal(t, copy));
        memcpy(copy, t, sizeof t);
        copy[HD_TOKEN_CHARS - 1] = 0; /* a prefix */
        CHECK(!hd__token_equal(t, copy));
        CHECK(!hd__token_equal(copy, t));
    }
    CHECK(hd__token_equal("a", "a"));
    CHECK(!hd__token_equal("a", "b"));
    CHECK(!hd__token_equal("abc", "abd"));
    CHECK(!hd__token_equal("abc", "abcd"));
    CHECK(!hd__token_equal("", ""));
    CHECK(!hd__token_equal("", "a"));
    CHECK(!hd__token_equal(NULL, "a"));
    CHECK(!hd__token_equal("a", NULL));
    CHECK(!hd__token_equal(NULL, NULL));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_jwt SOURCE_ROOT\n");
        return 2;
    }
    char *dir = cat(argv[1], "/", "tests/fixtures/jwt");
    fixtures = dir;
    const char *seed_env = getenv("HERALD_JWT_SEED");
    unsigned long long seed =
        seed_env ? strtoull(seed_env, NULL, 10)
                 : (unsigned long long)time(NULL) * 1000003u ^ (unsigned long long)getpid();
    if (!seed) seed = 1;
    check_rng_state = seed;
    printf("test_jwt: seed %llu (HERALD_JWT_SEED)\n", seed);

    make_app();
    hd_auth *a = load_app();
    test_base64url();
    test_rfc_vectors();
    test_valid(a);
    test_refused(a);
    test_key_confusion(a);
    test_eddsa(a);
    test_malformed(a);
    test_mutations(a);
    test_threads(a);
    test_config_errors();
    test_out_of_memory();
    test_callback_tokens();
    hd__auth_free(a);

    for (size_t i = 0; i < nwritten; i++) {
        unlink(written[i]);
        free(written[i]);
    }
    rmdir(app_dir);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ed_key);
    EVP_PKEY_free(ed_other);
    EVP_PKEY_free(ed_rfc);
    free(ed_x);
    free(rsa_n);
    free(rsa_e);
    free(ec_x);
    free(ec_y);
    free(hs_k);
    free(dir);
    CHECK_DONE();
}
