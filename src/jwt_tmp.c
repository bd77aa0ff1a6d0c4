/* TEMPORARY stand-in; not committed. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include "base64.h"
#include "jwt.h"
struct hd_auth {
    int n;
};
int hd__auth_load(const char *app_dir, hd_auth **out, herald_error *err)
{
    (void)app_dir;
    (void)err;
    *out = calloc(1, sizeof **out);
    return 0;
}
void hd__auth_free(hd_auth *a)
{
    free(a);
}
size_t hd__auth_provider_count(const hd_auth *a)
{
    (void)a;
    return 0;
}
int hd__auth_verify(const hd_auth *a, const char *token, double now, herald_value *identity,
                    herald_error *err)
{
    (void)a;
    (void)token;
    (void)now;
    *identity = herald_undefined();
    return herald_fail(err, HERALD_EACCESS, "no providers");
}
int hd__token_new(char *out, herald_error *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, 32) != 1) return herald_fail(err, HERALD_ESTORE, "no randomness");
    hd_buf b = HD_BUF_INIT;
    hd__base64_encode(&b, raw, 32, true);
    if (b.failed || b.len != HD_TOKEN_CHARS) {
        hd__buf_free(&b);
        return herald_fail(err, HERALD_ENOMEM, "oom");
    }
    memcpy(out, b.p, HD_TOKEN_CHARS);
    out[HD_TOKEN_CHARS] = 0;
    hd__buf_free(&b);
    return 0;
}
bool hd__token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}
