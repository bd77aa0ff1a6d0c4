/*
 * JWT verification and auth providers (SPEC §6); see jwt.h.
 *
 * The module reads auth.config.json and the JWKS files it names once, at
 * load time, into OpenSSL keys; verification is then pure computation on
 * immutable data. Checks run in a fixed order: token structure, algorithm,
 * provider (by issuer), key, signature, then the time and audience claims,
 * so that nothing but the issuer (and the audience, to choose between two
 * providers of one issuer) is read from a token before its signature is
 * known to be good.
 *
 * It must never: accept `alg: none` or an algorithm outside the provider's
 * list; use a key with an algorithm of another family (the HS256-with-an-
 * RSA-public-key confusion, or an Ed25519 key for anything but EdDSA);
 * take a key from the token itself; fetch
 * anything over the network; or put a token, a claim value or key material
 * into an error message.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "base64.h"
#include "buf.h"
#include "jwt.h"

#define AUTH_FILE      "auth.config.json"
#define MAX_FILE_BYTES (1024 * 1024)
#define MAX_PROVIDERS  64
#define MAX_KEYS       64
#define MIN_RSA_BITS   2048
#define MAX_RSA_BITS   8192
#define MIN_HMAC_BYTES 32 /* RFC 7518 §3.2: at least the hash size */
#define MAX_HMAC_BYTES 1024

struct hd_jwk {
    unsigned serves;       /* the one HD_JWA_* algorithm its type can verify */
    char *kid;             /* NULL when the JWK has none */
    char *alg;             /* the JWK's own `alg`, NULL when absent */
    EVP_PKEY *pkey;        /* RSA, EC and OKP keys */
    unsigned char *secret; /* oct keys; wiped when freed */
    size_t secret_len;
};

typedef struct hd_provider {
    char *issuer;
    char *audience;
    unsigned algorithms; /* HD_JWA_* bits */
    double leeway;
    hd_jwk **keys;
    size_t nkeys;
} hd_provider;

struct hd_auth {
    hd_provider *providers;
    size_t nproviders;
};

static const struct {
    const char *name;
    unsigned bit;
    const char *key_type; /* for messages */
} jwa_table[] = {
    {"RS256", HD_JWA_RS256, "an RSA"},
    {"ES256", HD_JWA_ES256, "an EC P-256"},
    {"HS256", HD_JWA_HS256, "an oct"},
    {"EdDSA", HD_JWA_EDDSA, "an OKP Ed25519"},
};
#define NALGS (sizeof jwa_table / sizeof jwa_table[0])

static const char *alg_name(unsigned bit)
{
    for (size_t i = 0; i < NALGS; i++)
        if (jwa_table[i].bit == bit) return jwa_table[i].name;
    return "?";
}

static const char *alg_key_type(unsigned bit)
{
    for (size_t i = 0; i < NALGS; i++)
        if (jwa_table[i].bit == bit) return jwa_table[i].key_type;
    return "?";
}

static unsigned alg_bit(const char *s, size_t n)
{
    for (size_t i = 0; i < NALGS; i++)
        if (strlen(jwa_table[i].name) == n && memcmp(jwa_table[i].name, s, n) == 0)
            return jwa_table[i].bit;
    return 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static int nomem(herald_error *err)
{
    return herald_fail(err, HERALD_ENOMEM, "out of memory");
}

/* ---- Keys --------------------------------------------------------------- */

void hd__jwk_free(hd_jwk *k)
{
    if (!k) return;
    free(k->kid);
    free(k->alg);
    EVP_PKEY_free(k->pkey);
    if (k->secret) OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
    free(k);
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/*
 * Decodes the base64url string member `name` of a JWK into `out`. Returns
 * 0, HERALD_ENOMEM, or HERALD_ESCHEMA naming the member.
 */
static int jwk_bytes(const cJSON *j, const char *name, const char *where, hd_buf *out,
                     herald_error *err)
{
    const cJSON *m = member(j, name);
    if (!m) return herald_fail(err, HERALD_ESCHEMA, "%s: the key has no `%s`", where, name);
    if (!cJSON_IsString(m))
        return herald_fail(err, HERALD_ESCHEMA, "%s: the key's `%s` must be a string", where, name);
    const char *s = m->valuestring;
    if (!*s || !hd__base64_decode(out, s, strlen(s), true))
        return out->failed ? nomem(err)
                           : herald_fail(err, HERALD_ESCHEMA,
                                         "%s: the key's `%s` is not base64url without padding",
                                         where, name);
    return 0;
}

/*
 * Builds a public key of `type` ("RSA", "EC", "ED25519") from OSSL_PARAMs
 * and runs OpenSSL's public key check on it (EC: the point is on the curve
 * and of the group's order; RSA: the modulus is odd, composite and free of
 * small factors, the exponent odd and above 1; Ed25519: a key is there).
 * NULL if any of it fails.
 */
static EVP_PKEY *public_key_from(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        (void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    if (pkey) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        bool ok = check && EVP_PKEY_public_check(check) == 1;
        EVP_PKEY_CTX_free(check);
        if (!ok) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    ERR_clear_error();
    return pkey;
}

static int rsa_key(const cJSON *j, const char *where, hd_jwk *k, herald_error *err)
{
    hd_buf n = HD_BUF_INIT, e = HD_BUF_INIT;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    int rc = jwk_bytes(j, "n", where, &n, err);
    if (!rc) rc = jwk_bytes(j, "e", where, &e, err);
    if (rc) goto done;
    bn_n = BN_bin2bn(n.p, (int)n.len, NULL);
    bn_e = BN_bin2bn(e.p, (int)e.len, NULL);
    if (!bn_n || !bn_e) {
        rc = nomem(err);
        goto done;
    }
    int bits = BN_num_bits(bn_n);
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: the RSA modulus has %d bits; Herald accepts %d to %d", where, bits,
                         MIN_RSA_BITS, MAX_RSA_BITS);
        goto done;
    }
    if (BN_num_bits(bn_e) > 256) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: the RSA exponent is too large", where);
        goto done;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        rc = nomem(err);
        goto done;
    }
    k->pkey = public_key_from("RSA", params);
    if (!k->pkey)
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: not a valid RSA public key (n odd and composite, e odd and above 1)",
                         where);
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    hd__buf_free(&n);
    hd__buf_free(&e);
    ERR_clear_error();
    return rc;
}

static int ec_key(const cJSON *j, const char *where, hd_jwk *k, herald_error *err)
{
    hd_buf x = HD_BUF_INIT, y = HD_BUF_INIT;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    int rc = jwk_bytes(j, "x", where, &x, err);
    if (!rc) rc = jwk_bytes(j, "y", where, &y, err);
    if (rc) goto done;
    if (x.len != 32 || y.len != 32) {
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: P-256 coordinates `x` and `y` must be 32 bytes each", where);
        goto done;
    }
    unsigned char point[65]; /* uncompressed: 0x04 || x || y */
    point[0] = 4;
    memcpy(point + 1, x.p, 32);
    memcpy(point + 33, y.p, 32);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        rc = nomem(err);
        goto done;
    }
    k->pkey = public_key_from("EC", params);
    if (!k->pkey)
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: `x`, `y` is not a point on the P-256 curve",
                         where);
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    hd__buf_free(&x);
    hd__buf_free(&y);
    ERR_clear_error();
    return rc;
}

/* RFC 8037 §2: an Ed25519 public key is `x`, the 32-byte encoded point. */
static int okp_key(const cJSON *j, const char *where, hd_jwk *k, herald_error *err)
{
    hd_buf x = HD_BUF_INIT;
    OSSL_PARAM params[2];
    int rc = jwk_bytes(j, "x", where, &x, err);
    if (rc) goto done;
    if (x.len != 32) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: an Ed25519 key's `x` must be 32 bytes", where);
        goto done;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, x.p, x.len);
    params[1] = OSSL_PARAM_construct_end();
    k->pkey = public_key_from("ED25519", params);
    if (!k->pkey)
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: `x` is not a valid Ed25519 public key", where);
done:
    hd__buf_free(&x);
    return rc;
}

static int oct_key(const cJSON *j, const char *where, hd_jwk *k, herald_error *err)
{
    hd_buf s = HD_BUF_INIT;
    int rc = jwk_bytes(j, "k", where, &s, err);
    if (!rc && (s.len < MIN_HMAC_BYTES || s.len > MAX_HMAC_BYTES))
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: an HS256 secret must be %d to %d bytes; this one has %zu", where,
                         MIN_HMAC_BYTES, MAX_HMAC_BYTES, s.len);
    if (rc) {
        if (s.p) OPENSSL_cleanse(s.p, s.len);
        hd__buf_free(&s);
        return rc;
    }
    k->secret = hd__buf_take(&s, &k->secret_len);
    return 0;
}

/* A JWK's `alg` must belong to its type's family (RFC 7518 §3.1, RFC 8037 §3.1). */
static bool alg_fits(unsigned serves, const char *alg)
{
    if (serves == HD_JWA_EDDSA) return strcmp(alg, "EdDSA") == 0;
    const char *family = serves == HD_JWA_RS256 ? "RS" : serves == HD_JWA_ES256 ? "ES" : "HS";
    if (serves == HD_JWA_RS256 && strncmp(alg, "PS", 2) == 0) return true;
    return strncmp(alg, family, 2) == 0;
}

#define JWK_SKIP 1 /* a well-formed key Herald cannot use; the JWKS loader passes over it */

/* An EC or OKP key's `crv` must be `curve`: 0, JWK_SKIP for another curve, HERALD_ESCHEMA. */
static int check_curve(const cJSON *crv, const char *kty, const char *curve, const char *where,
                       herald_error *err)
{
    if (!crv) return herald_fail(err, HERALD_ESCHEMA, "%s: the %s key has no `crv`", where, kty);
    if (strcmp(crv->valuestring, curve) == 0) return 0;
    herald_fail(err, HERALD_ESCHEMA, "%s: %s curve `%.16s` is not supported (%s is)", where, kty,
                crv->valuestring, curve);
    return JWK_SKIP;
}

/*
 * Parses one JWK into *out. Returns 0, JWK_SKIP (a key for encryption, or
 * of a type or curve Herald does not verify, as RFC 7517 §5 asks sets to
 * tolerate; `err` says which), HERALD_ESCHEMA or HERALD_ENOMEM.
 */
static int parse_jwk(const cJSON *j, const char *where, hd_jwk **out, herald_error *err)
{
    *out = NULL;
    if (!cJSON_IsObject(j))
        return herald_fail(err, HERALD_ESCHEMA, "%s: a key must be a JSON object", where);
    const cJSON *kty = member(j, "kty"), *crv = member(j, "crv");
    const cJSON *kid = member(j, "kid"), *alg = member(j, "alg"), *use = member(j, "use");
    if (!cJSON_IsString(kty))
        return herald_fail(err, HERALD_ESCHEMA, "%s: the key has no `kty` string", where);
    if ((kid && !cJSON_IsString(kid)) || (alg && !cJSON_IsString(alg)) ||
        (use && !cJSON_IsString(use)) || (crv && !cJSON_IsString(crv)))
        return herald_fail(err, HERALD_ESCHEMA,
                           "%s: the key's `kid`, `alg`, `use` and `crv` must be strings", where);
    if (alg && strcasecmp(alg->valuestring, "none") == 0)
        return herald_fail(err, HERALD_ESCHEMA, "%s: a key cannot have `alg` none", where);
    if (use && strcmp(use->valuestring, "sig") != 0) {
        herald_fail(err, HERALD_ESCHEMA, "%s: the key is not for signatures", where);
        return JWK_SKIP;
    }
    unsigned serves;
    const char *t = kty->valuestring;
    if (strcmp(t, "RSA") == 0) {
        serves = HD_JWA_RS256;
    } else if (strcmp(t, "EC") == 0 || strcmp(t, "OKP") == 0) {
        /* One curve each: OKP's Ed448 signs too but Herald does not verify it, and X25519 and
         * X448 are for key agreement. */
        bool ec = strcmp(t, "EC") == 0;
        int rc = check_curve(crv, t, ec ? "P-256" : "Ed25519", where, err);
        if (rc) return rc;
        serves = ec ? HD_JWA_ES256 : HD_JWA_EDDSA;
    } else if (strcmp(t, "oct") == 0) {
        serves = HD_JWA_HS256;
    } else {
        herald_fail(err, HERALD_ESCHEMA,
                    "%s: key type `%.16s` is not supported (RSA, EC P-256, OKP Ed25519 and oct "
                    "are)",
                    where, t);
        return JWK_SKIP;
    }
    if (alg && !alg_fits(serves, alg->valuestring))
        return herald_fail(err, HERALD_ESCHEMA, "%s: `alg` %.16s does not fit a %s key", where,
                           alg->valuestring, t);
    /* Verification needs public keys only; a private one here is a key leaked into a config. */
    if (serves != HD_JWA_HS256 && member(j, "d"))
        return herald_fail(err, HERALD_ESCHEMA,
                           "%s: the key holds a private part (`d`); give the public key only",
                           where);

    hd_jwk *k = calloc(1, sizeof *k);
    if (!k) return nomem(err);
    k->serves = serves;
    int rc = 0;
    if ((kid && !(k->kid = dup_str(kid->valuestring))) ||
        (alg && !(k->alg = dup_str(alg->valuestring))))
        rc = nomem(err);
    else if (serves == HD_JWA_RS256)
        rc = rsa_key(j, where, k, err);
    else if (serves == HD_JWA_ES256)
        rc = ec_key(j, where, k, err);
    else if (serves == HD_JWA_EDDSA)
        rc = okp_key(j, where, k, err);
    else
        rc = oct_key(j, where, k, err);
    if (rc) {
        hd__jwk_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* cJSON with nothing but whitespace after the value. NULL if malformed. */
static cJSON *parse_json(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j) return NULL;
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

int hd__jwk_parse(const char *json, size_t len, hd_jwk **out, herald_error *err)
{
    *out = NULL;
    cJSON *j = parse_json(json, len);
    if (!j) return herald_fail(err, HERALD_ESCHEMA, "JWK: not valid JSON");
    int rc = parse_jwk(j, "JWK", out, err);
    cJSON_Delete(j);
    return rc == JWK_SKIP ? HERALD_ESCHEMA : rc;
}

/* ---- Files -------------------------------------------------------------- */

/* Reads a whole file, NUL-terminated, into *text (caller frees). */
static int read_file(const char *path, char **text, size_t *len, herald_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return herald_fail(err, HERALD_ENOTFOUND, "%s: no such file", path);
        return herald_fail(err, HERALD_EIO, "%s: %s", path, strerror(errno));
    }
    hd_buf b = HD_BUF_INIT;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_FILE_BYTES) {
            rc = herald_fail(err, HERALD_ESCHEMA, "%s: larger than %d bytes", path, MAX_FILE_BYTES);
            goto done;
        }
        hd__buf_append(&b, chunk, n);
    }
    if (ferror(f)) {
        rc = herald_fail(err, HERALD_EIO, "%s: cannot be read", path);
        goto done;
    }
    hd__buf_byte(&b, 0);
    if (b.failed) {
        rc = nomem(err);
        goto done;
    }
    *text = (char *)hd__buf_take(&b, len);
    (*len)--;
done:
    fclose(f);
    hd__buf_free(&b);
    return rc;
}

static char *join_path(const char *dir, const char *name)
{
    if (name[0] == '/' || !dir || !*dir) return dup_str(name);
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static void free_keys(hd_jwk **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hd__jwk_free(keys[i]);
    free(keys);
}

/* Loads the usable keys of the JWKS file at `path`; at least one. */
static int load_jwks(const char *path, hd_jwk ***out, size_t *nout, herald_error *err)
{
    *out = NULL;
    *nout = 0;
    char *text = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    hd_jwk **keys = NULL;
    size_t n = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc) goto done;
    j = parse_json(text, len);
    if (!j) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: not valid JSON", path);
        goto done;
    }
    const cJSON *list = member(j, "keys");
    if (!cJSON_IsObject(j) || !cJSON_IsArray(list)) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: not a JWK Set (an object with a `keys` array)",
                         path);
        goto done;
    }
    int count = cJSON_GetArraySize(list);
    if (count > MAX_KEYS) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: more than %d keys", path, MAX_KEYS);
        goto done;
    }
    keys = calloc(count ? (size_t)count : 1, sizeof *keys);
    if (!keys) {
        rc = nomem(err);
        goto done;
    }
    int i = 0;
    for (const cJSON *c = list->child; c; c = c->next, i++) {
        char where[600];
        snprintf(where, sizeof where, "%.500s: keys[%d]", path, i);
        rc = parse_jwk(c, where, &keys[n], err);
        if (rc == JWK_SKIP) {
            rc = 0;
            continue;
        }
        if (rc) goto done;
        n++;
    }
    if (n == 0)
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: holds no key Herald can use (RSA, EC P-256, OKP Ed25519 or oct "
                         "signing keys)",
                         path);
done:
    if (rc) {
        free_keys(keys, n);
    } else {
        *out = keys;
        *nout = n;
    }
    cJSON_Delete(j);
    free(text);
    return rc;
}

/* ---- Configuration ------------------------------------------------------ */

static void free_provider(hd_provider *p)
{
    free(p->issuer);
    free(p->audience);
    free_keys(p->keys, p->nkeys);
}

void hd__auth_free(hd_auth *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->nproviders; i++)
        free_provider(&a->providers[i]);
    free(a->providers);
    free(a);
}

size_t hd__auth_provider_count(const hd_auth *a)
{
    return a ? a->nproviders : 0;
}

/* Every member of `obj` must be one of `allowed` (NULL-terminated) and appear once. */
static int check_members(const cJSON *obj, const char *const *allowed, const char *where,
                         herald_error *err)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, c->string) == 0;
        if (!known) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *a, sizeof list - strlen(list) - 1);
            }
            return herald_fail(err, HERALD_ESCHEMA, "%s: unknown key `%.64s` (known: %s)", where,
                               c->string, list);
        }
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return herald_fail(err, HERALD_ESCHEMA, "%s: key `%.64s` appears twice", where,
                                   c->string);
    }
    return 0;
}

/*
 * A required non-empty string given under `name` or its Convex spelling
 * `alias`, copied into *out.
 */
static int either_string(const cJSON *p, const char *name, const char *alias, const char *where,
                         char **out, herald_error *err)
{
    const cJSON *a = member(p, name), *b = member(p, alias);
    if (a && b)
        return herald_fail(err, HERALD_ESCHEMA, "%s: give `%s` or `%s`, not both", where, name,
                           alias);
    const cJSON *v = a ? a : b;
    if (!v)
        return herald_fail(err, HERALD_ESCHEMA, "%s: `%s` (or `%s`) is required", where, name,
                           alias);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return herald_fail(err, HERALD_ESCHEMA, "%s: `%s` must be a non-empty string", where,
                           a ? name : alias);
    *out = dup_str(v->valuestring);
    return *out ? 0 : nomem(err);
}

static int parse_provider(const cJSON *p, const char *where, const char *base_dir, hd_provider *out,
                          herald_error *err)
{
    static const char *const allowed[] = {"issuer", "domain",     "audience", "applicationID",
                                          "jwks",   "algorithms", "leeway",   NULL};
    char *path = NULL;
    memset(out, 0, sizeof *out);
    out->algorithms = HD_JWA_RS256 | HD_JWA_ES256 | HD_JWA_EDDSA;
    out->leeway = HD_AUTH_DEFAULT_LEEWAY;
    int rc = 0;
    if (!cJSON_IsObject(p)) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: a provider must be a JSON object", where);
        goto done;
    }
    rc = check_members(p, allowed, where, err);
    if (!rc) rc = either_string(p, "issuer", "domain", where, &out->issuer, err);
    if (!rc) rc = either_string(p, "audience", "applicationID", where, &out->audience, err);
    if (rc) goto done;

    const cJSON *algs = member(p, "algorithms");
    if (algs) {
        if (!cJSON_IsArray(algs) || cJSON_GetArraySize(algs) == 0) {
            rc = herald_fail(err, HERALD_ESCHEMA,
                             "%s: `algorithms` must be a non-empty array of strings", where);
            goto done;
        }
        out->algorithms = 0;
        for (const cJSON *c = algs->child; c; c = c->next) {
            unsigned bit = cJSON_IsString(c) ? alg_bit(c->valuestring, strlen(c->valuestring)) : 0;
            if (!bit) {
                rc = herald_fail(err, HERALD_ESCHEMA,
                                 "%s: `algorithms` may hold RS256, ES256, EdDSA and HS256, not "
                                 "`%.16s`",
                                 where, cJSON_IsString(c) ? c->valuestring : "(not a string)");
                goto done;
            }
            out->algorithms |= bit;
        }
    }
    const cJSON *leeway = member(p, "leeway");
    if (leeway) {
        if (!cJSON_IsNumber(leeway) || !(leeway->valuedouble >= 0) ||
            leeway->valuedouble > HD_AUTH_MAX_LEEWAY) {
            rc = herald_fail(err, HERALD_ESCHEMA,
                             "%s: `leeway` must be a number of seconds, 0 to %d", where,
                             HD_AUTH_MAX_LEEWAY);
            goto done;
        }
        out->leeway = leeway->valuedouble;
    }

    const cJSON *jwks = member(p, "jwks");
    if (!jwks || !cJSON_IsString(jwks) || !jwks->valuestring[0]) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: `jwks` (the path of a JWKS file) is required",
                         where);
        goto done;
    }
    if (strstr(jwks->valuestring, "://")) {
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: `jwks` must be a file path; Herald does not fetch keys over the "
                         "network (save the provider's JWKS document to a file)",
                         where);
        goto done;
    }
    path = join_path(base_dir, jwks->valuestring);
    if (!path) {
        rc = nomem(err);
        goto done;
    }
    rc = load_jwks(path, &out->keys, &out->nkeys, err);
    if (rc) goto done;
    unsigned served = 0;
    for (size_t i = 0; i < out->nkeys; i++)
        served |= out->keys[i]->serves;
    if (!(served & out->algorithms)) {
        rc = herald_fail(err, HERALD_ESCHEMA,
                         "%s: no key in %.300s can verify the allowed `algorithms`", where, path);
        goto done;
    }
done:
    free(path);
    if (rc) free_provider(out);
    return rc;
}

static int load_config(const char *text, size_t len, const char *base_dir, const char *label,
                       hd_auth **out, herald_error *err)
{
    static const char *const allowed[] = {"providers", NULL};
    *out = NULL;
    hd_auth *a = calloc(1, sizeof *a);
    if (!a) return nomem(err);
    int rc = 0;
    cJSON *j = parse_json(text, len);
    if (!j) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: not valid JSON", label);
        goto done;
    }
    if (!cJSON_IsObject(j)) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: must be a JSON object", label);
        goto done;
    }
    rc = check_members(j, allowed, label, err);
    if (rc) goto done;
    const cJSON *list = member(j, "providers");
    if (!cJSON_IsArray(list)) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: `providers` (an array) is required", label);
        goto done;
    }
    int count = cJSON_GetArraySize(list);
    if (count > MAX_PROVIDERS) {
        rc = herald_fail(err, HERALD_ESCHEMA, "%s: more than %d providers", label, MAX_PROVIDERS);
        goto done;
    }
    if (count) {
        a->providers = calloc((size_t)count, sizeof *a->providers);
        if (!a->providers) {
            rc = nomem(err);
            goto done;
        }
    }
    for (const cJSON *c = list->child; c; c = c->next) {
        char where[600];
        snprintf(where, sizeof where, "%.500s: providers[%zu]", label, a->nproviders);
        rc = parse_provider(c, where, base_dir, &a->providers[a->nproviders], err);
        if (rc) goto done;
        const hd_provider *p = &a->providers[a->nproviders++];
        for (size_t i = 0; i + 1 < a->nproviders; i++) {
            if (strcmp(a->providers[i].issuer, p->issuer) == 0 &&
                strcmp(a->providers[i].audience, p->audience) == 0) {
                rc = herald_fail(err, HERALD_ESCHEMA,
                                 "%s: same issuer and audience as providers[%zu]", where, i);
                goto done;
            }
        }
    }
done:
    cJSON_Delete(j);
    if (rc) {
        hd__auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int hd__auth_load_text(const char *text, size_t len, const char *base_dir, hd_auth **out,
                       herald_error *err)
{
    return load_config(text, len, base_dir, AUTH_FILE, out, err);
}

int hd__auth_load(const char *app_dir, hd_auth **out, herald_error *err)
{
    *out = NULL;
    char *path = join_path(app_dir, AUTH_FILE);
    if (!path) return nomem(err);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc == HERALD_ENOTFOUND) {
        /* No configuration: an app without providers, where every token is refused. */
        *out = calloc(1, sizeof **out);
        rc = *out ? 0 : nomem(err);
    } else if (rc == 0) {
        rc = load_config(text, len, app_dir, path, out, err);
    }
    free(text);
    free(path);
    return rc;
}

/* ---- Tokens: structure -------------------------------------------------- */

static int deny(herald_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int deny(herald_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = HERALD_EACCESS;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return HERALD_EACCESS;
}

/* A compact JWS taken apart. The strings point into `header`. */
typedef struct jws {
    unsigned alg; /* one HD_JWA_* bit */
    const herald_value *kid;
    herald_value header, claims;
    size_t signing_len; /* the signing input is the token's first signing_len bytes */
    hd_buf sig;
} jws;

static void jws_free(jws *t)
{
    herald_value_free(&t->header);
    herald_value_free(&t->claims);
    hd__buf_free(&t->sig);
}

static bool is_string(const herald_value *v, const char *s)
{
    return v && v->type == HERALD_STRING && v->u.s.len == strlen(s) &&
           memcmp(v->u.s.ptr, s, v->u.s.len) == 0;
}

/* Decodes one base64url part holding a JSON object. */
static int json_part(const char *s, size_t n, const char *what, herald_value *out,
                     herald_error *err)
{
    hd_buf b = HD_BUF_INIT;
    int rc = 0;
    if (n == 0 || !hd__base64_decode(&b, s, n, true)) {
        rc = b.failed ? nomem(err) : deny(err, "token %s is not base64url without padding", what);
        goto done;
    }
    rc = herald_value_from_json((const char *)b.p, b.len, out, NULL);
    if (rc == HERALD_ENOMEM) {
        rc = nomem(err);
    } else if (rc) {
        rc = deny(err, "token %s is not valid JSON within Herald's limits", what);
    } else if (out->type != HERALD_OBJECT) {
        herald_value_free(out);
        rc = deny(err, "token %s is not a JSON object", what);
    }
done:
    hd__buf_free(&b);
    return rc;
}

/* Takes `token` apart and checks everything that needs no key. */
static int decode_token(const char *token, jws *t, herald_error *err)
{
    memset(t, 0, sizeof *t);
    if (!token) return deny(err, "no token");
    size_t n = strnlen(token, HD_JWT_MAX_BYTES + 1);
    if (n == 0) return deny(err, "token is empty");
    if (n > HD_JWT_MAX_BYTES) return deny(err, "token is longer than %d bytes", HD_JWT_MAX_BYTES);
    const char *end = token + n;
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return deny(err, "token is not three base64url parts separated by dots");

    int rc = json_part(token, (size_t)(dot1 - token), "header", &t->header, err);
    if (rc) return rc;
    const herald_value *alg = herald_object_get(&t->header, "alg");
    if (!alg || alg->type != HERALD_STRING) return deny(err, "token header has no alg string");
    if (alg->u.s.len == 4 && strncasecmp(alg->u.s.ptr, "none", 4) == 0)
        return deny(err, "algorithm none is not accepted");
    t->alg = alg_bit(alg->u.s.ptr, alg->u.s.len);
    if (!t->alg)
        return deny(err, "token algorithm is not supported (RS256, ES256, EdDSA and HS256 are)");
    t->kid = herald_object_get(&t->header, "kid");
    if (t->kid && t->kid->type != HERALD_STRING) return deny(err, "token kid is not a string");
    const herald_value *typ = herald_object_get(&t->header, "typ");
    if (typ && typ->type != HERALD_STRING) return deny(err, "token typ is not a string");
    /* RFC 7515 §4.1.11: extensions marked critical must be understood; Herald knows none. */
    if (herald_object_get(&t->header, "crit"))
        return deny(err, "token header lists critical extensions (crit), which are not supported");

    rc = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &t->claims, err);
    if (rc) return rc;
    size_t sig_len = (size_t)(end - dot2 - 1);
    if (sig_len == 0) return deny(err, "token has no signature");
    if (!hd__base64_decode(&t->sig, dot2 + 1, sig_len, true))
        return t->sig.failed ? nomem(err)
                             : deny(err, "token signature is not base64url without padding");
    t->signing_len = (size_t)(dot2 - token);
    return 0;
}

/* ---- Tokens: signatures ------------------------------------------------- */

/* JWS carries ES256 signatures as r||s (RFC 7518 §3.4); OpenSSL wants DER. */
static int es256_der(const unsigned char *raw, unsigned char **der, int *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return HERALD_ENOMEM;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    return *der_len > 0 ? 0 : HERALD_ENOMEM;
}

/* `digest` NULL for EdDSA, which hashes inside the signature scheme (one-shot only). */
static int digest_verify(EVP_PKEY *pkey, const char *digest, const unsigned char *sig,
                         size_t sig_len, const unsigned char *data, size_t len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) return HERALD_ENOMEM;
    int ok = EVP_DigestVerifyInit_ex(md, NULL, digest, NULL, NULL, pkey, NULL) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* 1 if `key` signed `t`, 0 if not, HERALD_ENOMEM. The key's type fits t->alg. */
static int signature_ok(const jws *t, const char *token, const hd_jwk *key)
{
    const unsigned char *data = (const unsigned char *)token;
    int ok = 0;
    if (t->alg == HD_JWA_RS256) {
        ok = digest_verify(key->pkey, "SHA256", t->sig.p, t->sig.len, data, t->signing_len);
    } else if (t->alg == HD_JWA_EDDSA) {
        ok = digest_verify(key->pkey, NULL, t->sig.p, t->sig.len, data, t->signing_len);
    } else if (t->alg == HD_JWA_ES256) {
        unsigned char *der = NULL;
        int der_len = 0;
        if (es256_der(t->sig.p, &der, &der_len))
            ok = HERALD_ENOMEM;
        else
            ok = digest_verify(key->pkey, "SHA256", der, (size_t)der_len, data, t->signing_len);
        OPENSSL_free(der);
    } else if (t->alg == HD_JWA_HS256 && t->sig.len == 32) {
        unsigned char mac[32];
        size_t mac_len = 0;
        if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key->secret, key->secret_len, data,
                      t->signing_len, mac, sizeof mac, &mac_len))
            ok = mac_len == 32 && CRYPTO_memcmp(mac, t->sig.p, 32) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
    }
    ERR_clear_error();
    return ok;
}

/*
 * Verifies `t` with the first of `keys` that fits and signed it. With
 * `by_kid`, a token that names a kid is only tried with keys of that kid.
 */
static int verify_with(const jws *t, const char *token, const hd_jwk *const *keys, size_t n,
                       bool by_kid, herald_error *err)
{
    if (t->alg == HD_JWA_ES256 && t->sig.len != 64)
        return deny(err, "signature does not verify: an ES256 signature is 64 bytes (r||s)");
    if (t->alg == HD_JWA_EDDSA && t->sig.len != 64)
        return deny(err, "signature does not verify: an Ed25519 signature is 64 bytes");
    bool kid_known = false, type_fits = false, alg_fits_key = false;
    const char *name = alg_name(t->alg);
    for (size_t i = 0; i < n; i++) {
        const hd_jwk *k = keys[i];
        if (by_kid && t->kid) {
            if (!k->kid || strlen(k->kid) != t->kid->u.s.len ||
                memcmp(k->kid, t->kid->u.s.ptr, t->kid->u.s.len) != 0)
                continue;
            kid_known = true;
        }
        if (k->serves != t->alg) continue;
        type_fits = true;
        if (k->alg && strcmp(k->alg, name) != 0) continue;
        alg_fits_key = true;
        int ok = signature_ok(t, token, k);
        if (ok < 0) return nomem(err);
        if (ok) return 0;
    }
    if (by_kid && t->kid && !kid_known) return deny(err, "unknown key id");
    if (!type_fits)
        return deny(err, "key type does not match the algorithm: %s needs %s key", name,
                    alg_key_type(t->alg));
    if (!alg_fits_key) return deny(err, "the key's own alg is not the token's algorithm %s", name);
    return deny(err, "signature does not verify");
}

int hd__jws_verify(const char *token, const hd_jwk *key, unsigned algorithms, herald_value *claims,
                   herald_error *err)
{
    *claims = herald_undefined();
    jws t;
    int rc = decode_token(token, &t, err);
    if (rc) goto done;
    if (!(algorithms & t.alg)) {
        rc = deny(err, "algorithm %s is not allowed here", alg_name(t.alg));
        goto done;
    }
    if (!key) {
        rc = deny(err, "no key to verify with");
        goto done;
    }
    rc = verify_with(&t, token, &key, 1, false, err);
    if (rc) goto done;
    *claims = t.claims;
    t.claims = herald_undefined();
done:
    jws_free(&t);
    return rc;
}

/* ---- Tokens: claims and identity --------------------------------------- */

static bool claim_time(const herald_value *v, double *out)
{
    if (v->type == HERALD_FLOAT64 && isfinite(v->u.f)) {
        *out = v->u.f;
        return true;
    }
    if (v->type == HERALD_INT64) {
        *out = (double)v->u.i;
        return true;
    }
    return false;
}

static bool audience_matches(const herald_value *aud, const char *audience)
{
    if (!aud) return false;
    if (aud->type == HERALD_STRING) return is_string(aud, audience);
    if (aud->type != HERALD_ARRAY) return false;
    for (size_t i = 0; i < aud->u.arr.len; i++)
        if (is_string(&aud->u.arr.items[i], audience)) return true;
    return false;
}

static int check_claims(const hd_provider *p, const herald_value *claims, double now,
                        double *expires, herald_error *err)
{
    double at;
    const herald_value *v = herald_object_get(claims, "exp");
    if (!v) return deny(err, "token has no expiry time (exp)");
    if (!claim_time(v, &at)) return deny(err, "token exp is not a number");
    if (now > at + p->leeway) return deny(err, "token expired");
    *expires = at + p->leeway;
    if ((v = herald_object_get(claims, "nbf"))) {
        if (!claim_time(v, &at)) return deny(err, "token nbf is not a number");
        if (now + p->leeway < at) return deny(err, "token is not valid yet (nbf)");
    }
    if ((v = herald_object_get(claims, "iat"))) {
        if (!claim_time(v, &at)) return deny(err, "token iat is not a number");
        if (now + p->leeway < at) return deny(err, "token was issued in the future (iat)");
    }
    v = herald_object_get(claims, "aud");
    if (!v) return deny(err, "token has no audience (aud)");
    if (!audience_matches(v, p->audience)) return deny(err, "audience does not match");
    v = herald_object_get(claims, "sub");
    if (!v || v->type != HERALD_STRING || v->u.s.len == 0)
        return deny(err, "token has no subject (sub) string");
    return 0;
}

/* JWT claims that describe the token rather than the user (RFC 7519 §4.1). */
static const char *const registered_claims[] = {"iss", "sub", "aud", "exp", "nbf", "iat", "jti"};

/* OIDC profile claims under their Convex UserIdentity names. */
static const struct {
    const char *claim, *field;
    bool boolean;
} profile_claims[] = {
    {"email", "email", false},
    {"email_verified", "emailVerified", true},
    {"name", "name", false},
    {"given_name", "givenName", false},
    {"family_name", "familyName", false},
    {"nickname", "nickname", false},
    {"preferred_username", "preferredUsername", false},
    {"picture", "pictureUrl", false},
    {"profile", "profileUrl", false},
    {"phone_number", "phoneNumber", false},
    {"updated_at", "updatedAt", false},
};
#define NPROFILE (sizeof profile_claims / sizeof profile_claims[0])

/* Whether a custom claim called `key` would collide with a field the identity derives. */
static bool identity_field(const char *key)
{
    if (!strcmp(key, "subject") || !strcmp(key, "issuer") || !strcmp(key, "tokenIdentifier"))
        return true;
    for (size_t i = 0; i < NPROFILE; i++)
        if (!strcmp(key, profile_claims[i].field)) return true;
    return false;
}

/*
 * The identity value of a profile claim, or HERALD_UNDEFINED when its type
 * does not fit (the claim is then left out rather than passed on mistyped).
 * Some providers send email_verified as "true"/"false", OIDC sends
 * updated_at as seconds; both are normalised.
 */
static int profile_value(const herald_value *v, bool boolean, bool is_updated_at, herald_value *out)
{
    *out = herald_undefined();
    if (boolean) {
        if (v->type == HERALD_BOOLEAN) *out = herald_bool(v->u.b);
        if (is_string(v, "true")) *out = herald_bool(true);
        if (is_string(v, "false")) *out = herald_bool(false);
        return 0;
    }
    if (v->type == HERALD_STRING) return herald_string(out, v->u.s.ptr, v->u.s.len);
    double seconds;
    if (is_updated_at && claim_time(v, &seconds)) {
        char text[64];
        if (seconds == floor(seconds) && fabs(seconds) < 9007199254740992.0)
            snprintf(text, sizeof text, "%.0f", seconds);
        else
            snprintf(text, sizeof text, "%.17g", seconds);
        return herald_string(out, text, strlen(text));
    }
    return 0;
}

static int set_string(herald_value *obj, const char *key, const char *s, size_t n)
{
    herald_value v;
    int rc = herald_string(&v, s, n);
    return rc ? rc : herald_object_set(obj, key, strlen(key), v);
}

static int build_identity(const herald_value *claims, herald_value *id)
{
    herald_object_init(id);
    int rc = 0;
    for (size_t i = 0; i < claims->u.obj.len && !rc; i++) {
        const herald_field *f = &claims->u.obj.fields[i];
        bool skip = false;
        for (size_t r = 0; r < sizeof registered_claims / sizeof *registered_claims; r++)
            skip = skip || strcmp(f->key, registered_claims[r]) == 0;
        if (skip) continue;
        size_t m = 0;
        while (m < NPROFILE && strcmp(f->key, profile_claims[m].claim) != 0)
            m++;
        herald_value v;
        if (m < NPROFILE) {
            rc = profile_value(&f->val, profile_claims[m].boolean,
                               strcmp(f->key, "updated_at") == 0, &v);
            if (!rc && v.type != HERALD_UNDEFINED)
                rc = herald_object_set(id, profile_claims[m].field, strlen(profile_claims[m].field),
                                       v);
            continue;
        }
        if (identity_field(f->key)) continue;
        rc = herald_value_copy(&v, &f->val);
        if (!rc) rc = herald_object_set(id, f->key, f->key_len, v);
    }
    const herald_value *iss = herald_object_get(claims, "iss");
    const herald_value *sub = herald_object_get(claims, "sub");
    if (!rc) rc = set_string(id, "issuer", iss->u.s.ptr, iss->u.s.len);
    if (!rc) rc = set_string(id, "subject", sub->u.s.ptr, sub->u.s.len);
    if (!rc) {
        /* Convex's tokenIdentifier: unique across providers because it includes the issuer. */
        size_t n = iss->u.s.len + 1 + sub->u.s.len;
        char *s = malloc(n);
        if (!s) {
            rc = HERALD_ENOMEM;
        } else {
            memcpy(s, iss->u.s.ptr, iss->u.s.len);
            s[iss->u.s.len] = '|';
            memcpy(s + iss->u.s.len + 1, sub->u.s.ptr, sub->u.s.len);
            rc = set_string(id, "tokenIdentifier", s, n);
            free(s);
        }
    }
    if (rc) herald_value_free(id);
    return rc;
}

/* The provider for the token's issuer; among several, the one for its audience. */
static const hd_provider *find_provider(const hd_auth *a, const herald_value *iss,
                                        const herald_value *aud)
{
    const hd_provider *first = NULL;
    for (size_t i = 0; i < a->nproviders; i++) {
        const hd_provider *p = &a->providers[i];
        if (!is_string(iss, p->issuer)) continue;
        if (audience_matches(aud, p->audience)) return p;
        if (!first) first = p;
    }
    return first;
}

int hd__auth_verify(const hd_auth *a, const char *token, double now, herald_value *identity,
                    herald_error *err)
{
    double expires;
    return hd__auth_verify_until(a, token, now, identity, &expires, err);
}

int hd__auth_verify_until(const hd_auth *a, const char *token, double now, herald_value *identity,
                          double *expires, herald_error *err)
{
    *identity = herald_undefined();
    *expires = 0;
    jws t;
    memset(&t, 0, sizeof t);
    int rc = 0;
    if (!a || a->nproviders == 0) {
        rc = deny(err, "no auth providers are configured");
        goto done;
    }
    if (!isfinite(now)) {
        rc = deny(err, "the current time is not a number");
        goto done;
    }
    rc = decode_token(token, &t, err);
    if (rc) goto done;
    const herald_value *iss = herald_object_get(&t.claims, "iss");
    if (!iss || iss->type != HERALD_STRING) {
        rc = deny(err, "token has no issuer (iss) string");
        goto done;
    }
    const hd_provider *p = find_provider(a, iss, herald_object_get(&t.claims, "aud"));
    if (!p) {
        rc = deny(err, "unknown issuer");
        goto done;
    }
    if (!(p->algorithms & t.alg)) {
        rc = deny(err, "algorithm %s is not allowed for this issuer", alg_name(t.alg));
        goto done;
    }
    rc = verify_with(&t, token, (const hd_jwk *const *)p->keys, p->nkeys, true, err);
    if (!rc) rc = check_claims(p, &t.claims, now, expires, err);
    if (!rc) {
        rc = build_identity(&t.claims, identity);
        if (rc) rc = nomem(err);
    }
done:
    jws_free(&t);
    /* A refused token leaves nothing behind: no identity, no expiry time (a signed-out
     * connection must not later be told that a token it does not hold expired). */
    if (rc) {
        herald_value_free(identity);
        *identity = herald_undefined();
        *expires = 0;
    }
    return rc;
}

/* ---- Job callback tokens ------------------------------------------------ */

int hd__token_new(char *out, herald_error *err)
{
    unsigned char raw[32];
    out[0] = 0;
    if (RAND_bytes(raw, sizeof raw) != 1) {
        ERR_clear_error();
        return herald_fail(err, HERALD_EIO, "the random number generator failed");
    }
    hd_buf b = HD_BUF_INIT;
    hd__base64_encode(&b, raw, sizeof raw, true);
    OPENSSL_cleanse(raw, sizeof raw);
    int rc = 0;
    if (b.failed || b.len != HD_TOKEN_CHARS) {
        rc = nomem(err);
    } else {
        memcpy(out, b.p, HD_TOKEN_CHARS);
        out[HD_TOKEN_CHARS] = 0;
    }
    if (b.p) OPENSSL_cleanse(b.p, b.len);
    hd__buf_free(&b);
    return rc;
}

bool hd__token_equal(const char *a, const char *b)
{
    if (!a || !b) return false;
    size_t la = strlen(a), lb = strlen(b);
    /* CRYPTO_memcmp reads all of the common length whatever the bytes; only lengths leak. */
    int diff = CRYPTO_memcmp(a, b, la < lb ? la : lb);
    return (la == lb) & (diff == 0) & (la > 0);
}
