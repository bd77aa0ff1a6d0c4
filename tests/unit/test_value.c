/*
 * Values and the key encoding: the encoding must order exactly as
 * herald_value_compare() does and decode back to the same value; the JSON
 * form must round-trip and refuse what breaks the limits.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "herald/value.h"
#include "keycodec.h"

static const double special_floats[] = {
    0.0,       -0.0,     1.0, -1.0, 1e-308, -1e-308, 5e-324, 1.7976931348623157e308,
    -INFINITY, INFINITY, 0.5, 3.0,  -2.5};

static void random_blob(char *buf, size_t *len, bool allow_nul)
{
    /* A tiny alphabet makes equal prefixes (the interesting cases) common. */
    static const char alpha[] = {'a', 'b', '\0', '\xff', '\x01', 'z'};
    *len = check_below(6);
    for (size_t i = 0; i < *len; i++) {
        char c = alpha[check_below(6)];
        buf[i] = (!allow_nul && (c == 0 || c == '\xff' || c == '\x01')) ? 'q' : c;
    }
}

static herald_value random_value(int depth, bool json_safe)
{
    unsigned t = check_below(depth > 2 ? 6 : 8) + 1;
    char buf[16];
    size_t len;
    herald_value v;
    switch (t) {
    case HERALD_NULL:
        return herald_null();
    case HERALD_INT64: {
        static const int64_t edges[] = {INT64_MIN, INT64_MIN + 1, -1,       0,
                                        1,         INT64_MAX - 1, INT64_MAX};
        if (check_below(3) == 0) return herald_int64(edges[check_below(7)]);
        return herald_int64((int64_t)check_rand() >> check_below(64));
    }
    case HERALD_FLOAT64: {
        unsigned k = check_below(4);
        if (k == 0) return herald_float64(special_floats[check_below(13)]);
        if (k == 1 && !json_safe) {
            /* NaNs of both signs and random payloads. */
            uint64_t u = 0x7FF0000000000001ULL | (check_rand() & 0x000FFFFFFFFFFFFFULL);
            if (check_below(2)) u |= 1ULL << 63;
            double f;
            memcpy(&f, &u, sizeof f);
            return herald_float64(f);
        }
        return herald_float64((double)((int64_t)check_rand() >> 40) / 7.0);
    }
    case HERALD_BOOLEAN:
        return herald_bool(check_below(2));
    case HERALD_STRING:
        random_blob(buf, &len, !json_safe);
        herald_string(&v, buf, len);
        return v;
    case HERALD_BYTES:
        random_blob(buf, &len, true);
        herald_bytes(&v, buf, len);
        return v;
    case HERALD_ARRAY: {
        herald_array_init(&v);
        unsigned n = check_below(4);
        for (unsigned i = 0; i < n; i++)
            herald_array_push(&v, random_value(depth + 1, json_safe));
        return v;
    }
    default: {
        herald_object_init(&v);
        unsigned n = check_below(4);
        static const char *keys[] = {"a", "b", "ab", "b\xc3\xa9", "z"};
        for (unsigned i = 0; i < n; i++) {
            const char *k = keys[check_below(5)];
            herald_object_set(&v, k, strlen(k), random_value(depth + 1, json_safe));
        }
        return v;
    }
    }
}

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static int enc_cmp(const hd_buf *a, const hd_buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static void test_order_randomised(void)
{
    const int pairs = 200000;
    int equal = 0;
    for (int i = 0; i < pairs; i++) {
        herald_value a = random_value(0, false), b = random_value(0, false);
        if (check_below(8) == 0) {
            herald_value_free(&b);
            herald_value_copy(&b, &a);
        }
        hd_buf ea = HD_BUF_INIT, eb = HD_BUF_INIT;
        hd__key_encode(&ea, &a);
        hd__key_encode(&eb, &b);
        int want = sign(herald_value_compare(&a, &b));
        int got = sign(enc_cmp(&ea, &eb));
        if (want == 0) equal++;
        if (want != got) {
            char *ja = herald_value_to_json(&a), *jb = herald_value_to_json(&b);
            fprintf(stderr, "order mismatch: %s vs %s: compare %d, memcmp %d\n", ja, jb, want, got);
            free(ja);
            free(jb);
        }
        CHECK(want == got);
        /* Decoding gives back the same value and consumes every byte. */
        herald_value d;
        size_t used = 0;
        CHECK_OK(hd__key_decode(ea.p, ea.len, &used, &d));
        CHECK(used == ea.len);
        CHECK(herald_value_compare(&d, &a) == 0);
        herald_value_free(&d);
        hd__buf_free(&ea);
        hd__buf_free(&eb);
        herald_value_free(&a);
        herald_value_free(&b);
    }
    CHECK(equal > 1000); /* the generator does produce ties */
}

static void test_edge_order(void)
{
    herald_value s_empty, s_nul, s_a, s_anul, b_empty;
    herald_string(&s_empty, "", 0);
    herald_string(&s_nul, "\0", 1);
    herald_string(&s_a, "a", 1);
    herald_string(&s_anul, "a\0", 2);
    herald_bytes(&b_empty, "", 0);
    herald_value arr_empty, obj_empty;
    herald_array_init(&arr_empty);
    herald_object_init(&obj_empty);
    /* Each strictly less than the next, across and within types. */
    herald_value chain[] = {herald_undefined(),
                            herald_null(),
                            herald_int64(INT64_MIN),
                            herald_int64(-1),
                            herald_int64(0),
                            herald_int64(INT64_MAX),
                            herald_float64(-NAN),
                            herald_float64(-INFINITY),
                            herald_float64(-1.0),
                            herald_float64(-0.0),
                            herald_float64(0.0),
                            herald_float64(5e-324),
                            herald_float64(INFINITY),
                            herald_float64(NAN),
                            herald_bool(false),
                            herald_bool(true),
                            s_empty,
                            s_nul,
                            s_a,
                            s_anul,
                            b_empty,
                            arr_empty,
                            obj_empty};
    size_t n = sizeof chain / sizeof chain[0];
    for (size_t i = 0; i + 1 < n; i++) {
        hd_buf a = HD_BUF_INIT, b = HD_BUF_INIT;
        hd__key_encode(&a, &chain[i]);
        hd__key_encode(&b, &chain[i + 1]);
        CHECK(herald_value_compare(&chain[i], &chain[i + 1]) < 0);
        CHECK(enc_cmp(&a, &b) < 0);
        hd__buf_free(&a);
        hd__buf_free(&b);
    }
    for (size_t i = 0; i < n; i++)
        herald_value_free(&chain[i]);
}

static void test_json_roundtrip(void)
{
    for (int i = 0; i < 20000; i++) {
        herald_value a = random_value(0, true);
        herald_value wrapper;
        herald_object_init(&wrapper);
        herald_object_set(&wrapper, "v", 1, a);
        char *text = herald_value_to_json(&wrapper);
        herald_value back;
        herald_error err = {0};
        int rc = herald_value_from_json(text, strlen(text), &back, &err);
        if (rc) fprintf(stderr, "json %s: %s\n", text, err.message);
        CHECK(rc == 0);
        CHECK(rc || herald_value_compare(&back, &wrapper) == 0);
        free(text);
        herald_value_free(&back);
        herald_value_free(&wrapper);
    }
}

static int parse(const char *text, herald_value *out, herald_error *err)
{
    return herald_value_from_json(text, strlen(text), out, err);
}

static void test_json_encoding(void)
{
    herald_value v;
    herald_error err;
    /* Convex's $integer: 8 little-endian bytes. */
    CHECK_OK(parse("{\"$integer\":\"AQAAAAAAAAA=\"}", &v, &err));
    CHECK(v.type == HERALD_INT64 && v.u.i == 1);
    char *t = herald_value_to_json(&v);
    CHECK(strcmp(t, "{\"$integer\":\"AQAAAAAAAAA=\"}") == 0);
    free(t);
    herald_value_free(&v);
    /* -0, NaN and infinities travel as $float. */
    v = herald_float64(-0.0);
    t = herald_value_to_json(&v);
    CHECK(strcmp(t, "{\"$float\":\"AAAAAAAAAIA=\"}") == 0);
    free(t);
    CHECK_OK(parse("{\"$float\":\"AAAAAAAA8H8=\"}", &v, &err));
    CHECK(v.type == HERALD_FLOAT64 && isinf(v.u.f) && v.u.f > 0);
    CHECK_OK(parse("{\"$bytes\":\"aGk=\"}", &v, &err));
    CHECK(v.type == HERALD_BYTES && v.u.s.len == 2 && memcmp(v.u.s.ptr, "hi", 2) == 0);
    herald_value_free(&v);
    CHECK_OK(parse(" [1.5, true, null, \"x\"] ", &v, &err));
    t = herald_value_to_json(&v);
    CHECK(strcmp(t, "[1.5,true,null,\"x\"]") == 0);
    free(t);
    herald_value_free(&v);
    CHECK_OK(parse("0.1", &v, &err));
    t = herald_value_to_json(&v);
    CHECK(strcmp(t, "0.1") == 0);
    free(t);
}

static void test_json_refusals(void)
{
    herald_value v;
    herald_error err;
    CHECK(parse("{\"a\":", &v, &err) == HERALD_EINVAL);
    CHECK(v.type == HERALD_UNDEFINED);
    CHECK(parse("{} x", &v, &err) == HERALD_EINVAL);
    CHECK(parse("{\"a\":1,\"a\":2}", &v, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "duplicate") != NULL);
    CHECK(parse("{\"$weird\":1}", &v, &err) == HERALD_EINVAL);
    CHECK(parse("{\"$integer\":\"AQ==\"}", &v, &err) == HERALD_EINVAL);
    CHECK(parse("{\"$integer\":\"!!!!\"}", &v, &err) == HERALD_EINVAL);
    CHECK(parse("\"a\\u0000b\"", &v, &err) == HERALD_EINVAL);
    CHECK(parse("\"\xff\"", &v, &err) == HERALD_EINVAL);
    /* Raw NULs and raw control characters would be cut or let through by cJSON. */
    CHECK(herald_value_from_json("\"a\0b\"", 5, &v, &err) == HERALD_EINVAL);
    CHECK(herald_value_from_json("{\"a\0b\":1}", 8, &v, &err) == HERALD_EINVAL);
    CHECK(parse("\"a\tb\"", &v, &err) == HERALD_EINVAL);
    /* A -0 at the deepest level travels as {"$float": ...} and must read back. */
    herald_value z;
    herald_array_init(&z);
    herald_value *deepest = &z;
    for (int i = 1; i < HERALD_MAX_DEPTH; i++) {
        herald_value inner;
        herald_array_init(&inner);
        herald_array_push(deepest, inner);
        deepest = &deepest->u.arr.items[0];
    }
    herald_array_push(deepest, herald_float64(-0.0));
    char *zt = herald_value_to_json(&z);
    CHECK_OK(parse(zt, &v, &err));
    CHECK(herald_value_equal(&v, &z));
    herald_value_free(&v);
    free(zt);
    herald_value_free(&z);
    CHECK(parse("", &v, &err) == HERALD_EINVAL);
    /* Depth: 64 nested arrays are fine, 65 are not. */
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = 0;
    CHECK_OK(parse(deep, &v, &err));
    herald_value_free(&v);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = 0;
    CHECK(parse(deep, &v, &err) == HERALD_ELIMIT);
    /* Far deeper than cJSON's own limit must fail cleanly too. */
    size_t n = 100000;
    char *huge = malloc(2 * n + 1);
    memset(huge, '[', n);
    memset(huge + n, ']', n);
    huge[2 * n] = 0;
    CHECK(parse(huge, &v, &err) != 0);
    free(huge);
    /* Array element limit. */
    size_t cap = 8193 * 2 + 3;
    char *arr = malloc(cap);
    size_t at = 0;
    arr[at++] = '[';
    for (int i = 0; i < 8193; i++) {
        arr[at++] = '0';
        arr[at++] = ',';
    }
    arr[at - 1] = ']';
    arr[at] = 0;
    CHECK(parse(arr, &v, &err) == HERALD_ELIMIT);
    free(arr);
}

static void test_corrupt_decode(void)
{
    /* Every prefix and every single-byte change of a valid encoding either
     * decodes or fails cleanly; never reads past the end. */
    herald_value v;
    herald_error err;
    CHECK_OK(parse("{\"a\":[1,\"x\",{\"b\":null}],\"c\":\"yy\"}", &v, &err));
    hd_buf e = HD_BUF_INIT;
    hd__key_encode(&e, &v);
    for (size_t cut = 0; cut < e.len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, e.p, cut);
        herald_value d;
        size_t used;
        CHECK(hd__key_decode(p, cut, &used, &d) != 0);
        free(p);
    }
    for (size_t i = 0; i < e.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *p = malloc(e.len);
            memcpy(p, e.p, e.len);
            p[i] ^= (uint8_t)(1 << bit);
            herald_value d;
            size_t used;
            if (hd__key_decode(p, e.len, &used, &d) == 0) herald_value_free(&d);
            free(p);
        }
    }
    hd__buf_free(&e);
    herald_value_free(&v);
}

int main(void)
{
    printf("seed %llu\n", check_rng_state);
    test_edge_order();
    test_order_randomised();
    test_json_roundtrip();
    test_json_encoding();
    test_json_refusals();
    test_corrupt_decode();
    CHECK_DONE();
}
