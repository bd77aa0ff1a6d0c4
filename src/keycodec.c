/*
 * Order-preserving value encoding; see keycodec.h for the layout. The
 * decoder reads untrusted bytes (a corrupted file): it must bounds-check
 * everything and never recurse past HERALD_MAX_DEPTH.
 */
#include <string.h>

#include "keycodec.h"

static void put_be64(hd_buf *out, uint64_t u)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(u >> (56 - 8 * i));
    hd__buf_append(out, b, 8);
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return u;
}

static void put_escaped(hd_buf *out, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != 0) continue;
        hd__buf_append(out, s + start, i - start + 1);
        hd__buf_byte(out, 0xFF);
        start = i + 1;
    }
    hd__buf_append(out, s + start, n - start);
    hd__buf_byte(out, 0x00);
    hd__buf_byte(out, 0x01);
}

void hd__key_encode(hd_buf *out, const herald_value *v)
{
    hd__buf_byte(out, (uint8_t)(v->type + 1));
    switch (v->type) {
    case HERALD_UNDEFINED:
    case HERALD_NULL:
        break;
    case HERALD_INT64:
        put_be64(out, (uint64_t)v->u.i ^ (1ULL << 63));
        break;
    case HERALD_FLOAT64: {
        uint64_t u;
        memcpy(&u, &v->u.f, sizeof u);
        put_be64(out, (u >> 63) ? ~u : u | (1ULL << 63));
        break;
    }
    case HERALD_BOOLEAN:
        hd__buf_byte(out, v->u.b ? 1 : 0);
        break;
    case HERALD_STRING:
    case HERALD_BYTES:
        put_escaped(out, v->u.s.ptr, v->u.s.len);
        break;
    case HERALD_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            hd__key_encode(out, &v->u.arr.items[i]);
        hd__buf_byte(out, 0x00);
        break;
    case HERALD_OBJECT:
        for (size_t i = 0; i < v->u.obj.len; i++) {
            const herald_field *f = &v->u.obj.fields[i];
            if (f->val.type == HERALD_UNDEFINED) continue;
            hd__buf_byte(out, 0x01);
            put_escaped(out, f->key, f->key_len);
            hd__key_encode(out, &f->val);
        }
        hd__buf_byte(out, 0x00);
        break;
    }
}

/* Reads an escaped string at p; appends raw bytes to `raw` if not NULL. */
static size_t get_escaped(const uint8_t *p, size_t n, hd_buf *raw)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] != 0) {
            size_t j = i;
            while (j < n && p[j] != 0)
                j++;
            if (raw) hd__buf_append(raw, p + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= n) return 0;
        if (p[i + 1] == 0x01) return i + 2;
        if (p[i + 1] != 0xFF) return 0;
        if (raw) hd__buf_byte(raw, 0);
        i += 2;
    }
    return 0;
}

static int decode(const uint8_t *p, size_t n, size_t *used, herald_value *out, int depth)
{
    *out = herald_undefined();
    if (n < 1) return HERALD_ECORRUPT;
    uint8_t tag = p[0];
    size_t at = 1;
    switch (tag) {
    case HERALD_UNDEFINED + 1:
        break;
    case HERALD_NULL + 1:
        *out = herald_null();
        break;
    case HERALD_INT64 + 1:
    case HERALD_FLOAT64 + 1: {
        if (n < 9) return HERALD_ECORRUPT;
        uint64_t u = get_be64(p + 1);
        if (tag == HERALD_INT64 + 1) {
            *out = herald_int64((int64_t)(u ^ (1ULL << 63)));
        } else {
            u = (u >> 63) ? u & ~(1ULL << 63) : ~u;
            double f;
            memcpy(&f, &u, sizeof f);
            *out = herald_float64(f);
        }
        at = 9;
        break;
    }
    case HERALD_BOOLEAN + 1:
        if (n < 2 || p[1] > 1) return HERALD_ECORRUPT;
        *out = herald_bool(p[1]);
        at = 2;
        break;
    case HERALD_STRING + 1:
    case HERALD_BYTES + 1: {
        hd_buf raw = HD_BUF_INIT;
        size_t k = get_escaped(p + 1, n - 1, &raw);
        int rc = k == 0 ? HERALD_ECORRUPT : raw.failed ? HERALD_ENOMEM : 0;
        if (!rc)
            rc = tag == HERALD_STRING + 1 ? herald_string(out, (char *)raw.p, raw.len)
                                          : herald_bytes(out, raw.p, raw.len);
        hd__buf_free(&raw);
        if (rc) return rc;
        at = 1 + k;
        break;
    }
    case HERALD_ARRAY + 1:
    case HERALD_OBJECT + 1: {
        if (depth >= HERALD_MAX_DEPTH) return HERALD_ELIMIT;
        bool is_obj = tag == HERALD_OBJECT + 1;
        if (is_obj)
            herald_object_init(out);
        else
            herald_array_init(out);
        for (;;) {
            if (at >= n) goto corrupt;
            if (p[at] == 0x00) {
                at++;
                break;
            }
            hd_buf key = HD_BUF_INIT;
            if (is_obj) {
                if (p[at] != 0x01) goto corrupt;
                size_t k = get_escaped(p + at + 1, n - at - 1, &key);
                hd__buf_byte(&key, 0);
                if (k == 0 || key.failed) {
                    hd__buf_free(&key);
                    goto corrupt;
                }
                at += 1 + k;
            }
            herald_value item;
            size_t k;
            int rc = decode(p + at, n - at, &k, &item, depth + 1);
            if (!rc)
                rc = is_obj ? herald_object_set(out, (char *)key.p, key.len - 1, item)
                            : herald_array_push(out, item);
            hd__buf_free(&key);
            if (rc) {
                herald_value_free(out);
                return rc;
            }
            at += k;
        }
        break;
    corrupt:
        herald_value_free(out);
        return HERALD_ECORRUPT;
    }
    default:
        return HERALD_ECORRUPT;
    }
    *used = at;
    return 0;
}

int hd__key_decode(const uint8_t *p, size_t n, size_t *used, herald_value *out)
{
    size_t dummy;
    return decode(p, n, used ? used : &dummy, out, 0);
}
