/*
 * Values: construction, comparison and the Convex JSON encoding.
 *
 * This module never touches storage; it must accept any input text without
 * crashing and refuse, with a message, whatever breaks SPEC §1's limits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"
#include "buf.h"
#include "herald/value.h"

herald_value herald_null(void)
{
    return (herald_value){.type = HERALD_NULL};
}
herald_value herald_undefined(void)
{
    return (herald_value){.type = HERALD_UNDEFINED};
}
herald_value herald_int64(int64_t i)
{
    return (herald_value){.type = HERALD_INT64, .u.i = i};
}
herald_value herald_float64(double f)
{
    return (herald_value){.type = HERALD_FLOAT64, .u.f = f};
}
herald_value herald_bool(bool b)
{
    return (herald_value){.type = HERALD_BOOLEAN, .u.b = b};
}

static int make_blob(herald_value *out, herald_type t, const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) {
        *out = herald_undefined();
        return HERALD_ENOMEM;
    }
    if (len) memcpy(s, p, len);
    s[len] = 0;
    *out = (herald_value){.type = t, .u.s = {s, len}};
    return 0;
}

int herald_string(herald_value *out, const char *s, size_t len)
{
    return make_blob(out, HERALD_STRING, s, len);
}

int herald_bytes(herald_value *out, const void *p, size_t len)
{
    return make_blob(out, HERALD_BYTES, p, len);
}

void herald_array_init(herald_value *out)
{
    *out = (herald_value){.type = HERALD_ARRAY};
}

void herald_object_init(herald_value *out)
{
    *out = (herald_value){.type = HERALD_OBJECT};
}

int herald_array_push(herald_value *arr, herald_value item)
{
    if (arr->u.arr.len == arr->u.arr.cap) {
        size_t cap = arr->u.arr.cap ? arr->u.arr.cap * 2 : 4;
        herald_value *items = realloc(arr->u.arr.items, cap * sizeof *items);
        if (!items) {
            herald_value_free(&item);
            return HERALD_ENOMEM;
        }
        arr->u.arr.items = items;
        arr->u.arr.cap = cap;
    }
    arr->u.arr.items[arr->u.arr.len++] = item;
    return 0;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of `key` in the sorted fields, or the insertion point encoded as -(pos+1). */
static long field_search(const herald_value *obj, const char *key, size_t key_len)
{
    size_t lo = 0, hi = obj->u.obj.len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const herald_field *f = &obj->u.obj.fields[mid];
        int c = key_cmp(f->key, f->key_len, key, key_len);
        if (c == 0) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

int herald_object_set(herald_value *obj, const char *key, size_t key_len, herald_value val)
{
    long at = field_search(obj, key, key_len);
    if (at >= 0) {
        herald_value_free(&obj->u.obj.fields[at].val);
        obj->u.obj.fields[at].val = val;
        return 0;
    }
    size_t pos = (size_t)(-at - 1);
    if (obj->u.obj.len == obj->u.obj.cap) {
        size_t cap = obj->u.obj.cap ? obj->u.obj.cap * 2 : 4;
        herald_field *fields = realloc(obj->u.obj.fields, cap * sizeof *fields);
        if (!fields) goto nomem;
        obj->u.obj.fields = fields;
        obj->u.obj.cap = cap;
    }
    char *k = malloc(key_len + 1);
    if (!k) goto nomem;
    memcpy(k, key, key_len);
    k[key_len] = 0;
    herald_field *f = obj->u.obj.fields;
    memmove(f + pos + 1, f + pos, (obj->u.obj.len - pos) * sizeof *f);
    f[pos] = (herald_field){k, key_len, val};
    obj->u.obj.len++;
    return 0;
nomem:
    herald_value_free(&val);
    return HERALD_ENOMEM;
}

bool herald_object_remove(herald_value *obj, const char *key)
{
    if (obj->type != HERALD_OBJECT) return false;
    long at = field_search(obj, key, strlen(key));
    if (at < 0) return false;
    herald_field *f = obj->u.obj.fields;
    free(f[at].key);
    herald_value_free(&f[at].val);
    memmove(f + at, f + at + 1, (obj->u.obj.len - (size_t)at - 1) * sizeof *f);
    obj->u.obj.len--;
    return true;
}

const herald_value *herald_object_get(const herald_value *obj, const char *key)
{
    if (!obj || obj->type != HERALD_OBJECT) return NULL;
    long at = field_search(obj, key, strlen(key));
    return at < 0 ? NULL : &obj->u.obj.fields[at].val;
}

const herald_value *herald_value_path(const herald_value *v, const char *path)
{
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (v->type != HERALD_OBJECT) return NULL;
        long at = field_search(v, path, n);
        if (at < 0) return NULL;
        v = &v->u.obj.fields[at].val;
        path += n + (dot ? 1 : 0);
    }
    return v;
}

int herald_value_copy(herald_value *out, const herald_value *in)
{
    switch (in->type) {
    case HERALD_STRING:
    case HERALD_BYTES:
        return make_blob(out, in->type, in->u.s.ptr, in->u.s.len);
    case HERALD_ARRAY:
        herald_array_init(out);
        for (size_t i = 0; i < in->u.arr.len; i++) {
            herald_value c;
            if (herald_value_copy(&c, &in->u.arr.items[i]) || herald_array_push(out, c)) goto nomem;
        }
        return 0;
    case HERALD_OBJECT:
        herald_object_init(out);
        for (size_t i = 0; i < in->u.obj.len; i++) {
            const herald_field *f = &in->u.obj.fields[i];
            herald_value c;
            if (herald_value_copy(&c, &f->val) || herald_object_set(out, f->key, f->key_len, c))
                goto nomem;
        }
        return 0;
    default:
        *out = *in;
        return 0;
    }
nomem:
    herald_value_free(out);
    return HERALD_ENOMEM;
}

void herald_value_free(herald_value *v)
{
    if (!v) return;
    switch (v->type) {
    case HERALD_STRING:
    case HERALD_BYTES:
        free(v->u.s.ptr);
        break;
    case HERALD_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            herald_value_free(&v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case HERALD_OBJECT:
        for (size_t i = 0; i < v->u.obj.len; i++) {
            free(v->u.obj.fields[i].key);
            herald_value_free(&v->u.obj.fields[i].val);
        }
        free(v->u.obj.fields);
        break;
    default:
        break;
    }
    *v = herald_undefined();
}

/* IEEE total order as an unsigned integer: flip all bits of negatives, the sign of others. */
static uint64_t float_order_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    return (u >> 63) ? ~u : u | (1ULL << 63);
}

int herald_value_compare(const herald_value *a, const herald_value *b)
{
    if (a->type != b->type) return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case HERALD_UNDEFINED:
    case HERALD_NULL:
        return 0;
    case HERALD_INT64:
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    case HERALD_FLOAT64: {
        uint64_t x = float_order_bits(a->u.f), y = float_order_bits(b->u.f);
        return x < y ? -1 : x > y;
    }
    case HERALD_BOOLEAN:
        return (int)a->u.b - (int)b->u.b;
    case HERALD_STRING:
    case HERALD_BYTES:
        return key_cmp(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len);
    case HERALD_ARRAY:
        for (size_t i = 0; i < a->u.arr.len && i < b->u.arr.len; i++) {
            int c = herald_value_compare(&a->u.arr.items[i], &b->u.arr.items[i]);
            if (c) return c;
        }
        return a->u.arr.len < b->u.arr.len ? -1 : a->u.arr.len > b->u.arr.len;
    case HERALD_OBJECT:
        for (size_t i = 0; i < a->u.obj.len && i < b->u.obj.len; i++) {
            const herald_field *x = &a->u.obj.fields[i], *y = &b->u.obj.fields[i];
            int c = key_cmp(x->key, x->key_len, y->key, y->key_len);
            if (c) return c;
            c = herald_value_compare(&x->val, &y->val);
            if (c) return c;
        }
        return a->u.obj.len < b->u.obj.len ? -1 : a->u.obj.len > b->u.obj.len;
    }
    return 0;
}

bool herald_value_equal(const herald_value *a, const herald_value *b)
{
    return herald_value_compare(a, b) == 0;
}

/* ---- JSON in ------------------------------------------------------------ */

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/*
 * cJSON stores strings NUL-terminated, so a U+0000 (escaped or raw) would
 * silently cut a string short, and it lets raw control characters through.
 * Check the text before parsing; returns NULL or what is wrong.
 */
static const char *check_text(const char *t, size_t n)
{
    bool in_string = false;
    if (memchr(t, 0, n)) return "JSON text contains a NUL byte";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!in_string) {
            if (c == '"') in_string = true;
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c < 0x20) {
            return "a control character in a string must be escaped";
        } else if (c == '\\' && i + 1 < n) {
            if (t[i + 1] == 'u' && i + 5 < n && memcmp(t + i + 2, "0000", 4) == 0)
                return "strings containing U+0000 are not supported; use bytes";
            i++;
        }
    }
    return NULL;
}

static const char *type_name(const cJSON *j)
{
    if (cJSON_IsObject(j)) return "object";
    if (cJSON_IsArray(j)) return "array";
    if (cJSON_IsString(j)) return "string";
    if (cJSON_IsNumber(j)) return "number";
    return "value";
}

static int decode_special(const cJSON *j, herald_value *out, herald_error *err)
{
    const cJSON *inner = j->child;
    const char *tag = inner->string;
    if (!cJSON_IsString(inner))
        return herald_fail(err, HERALD_EINVAL, "%s must hold a base64 string, not a %s", tag,
                           type_name(inner));
    hd_buf b = HD_BUF_INIT;
    const char *s = inner->valuestring;
    int rc = 0;
    if (!hd__base64_decode(&b, s, strlen(s), false)) {
        rc = b.failed ? HERALD_ENOMEM
                      : herald_fail(err, HERALD_EINVAL, "%s holds malformed base64", tag);
        goto done;
    }
    if (strcmp(tag, "$bytes") == 0) {
        rc = herald_bytes(out, b.p, b.len);
        goto done;
    }
    if (b.len != 8) {
        rc = herald_fail(err, HERALD_EINVAL, "%s must encode exactly 8 bytes", tag);
        goto done;
    }
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | b.p[i];
    if (strcmp(tag, "$integer") == 0) {
        *out = herald_int64((int64_t)u);
    } else {
        double f;
        memcpy(&f, &u, sizeof f);
        *out = herald_float64(f);
    }
done:
    hd__buf_free(&b);
    return rc;
}

static int from_cjson(const cJSON *j, int depth, herald_value *out, herald_error *err)
{
    *out = herald_undefined();
    if (cJSON_IsNull(j)) {
        *out = herald_null();
        return 0;
    }
    if (cJSON_IsBool(j)) {
        *out = herald_bool(cJSON_IsTrue(j));
        return 0;
    }
    if (cJSON_IsNumber(j)) {
        *out = herald_float64(j->valuedouble);
        return 0;
    }
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        if (!utf8_valid((const unsigned char *)j->valuestring, n))
            return herald_fail(err, HERALD_EINVAL, "string is not valid UTF-8");
        return herald_string(out, j->valuestring, n);
    }
    /* $integer, $float and $bytes are scalars in an object's clothing: no nesting level. */
    const cJSON *first = cJSON_IsObject(j) ? j->child : NULL;
    if (first && !first->next && first->string && first->string[0] == '$' &&
        (!strcmp(first->string, "$integer") || !strcmp(first->string, "$float") ||
         !strcmp(first->string, "$bytes")))
        return decode_special(j, out, err);
    if (depth >= HERALD_MAX_DEPTH)
        return herald_fail(err, HERALD_ELIMIT, "value is nested deeper than %d levels",
                           HERALD_MAX_DEPTH);
    if (cJSON_IsArray(j)) {
        herald_array_init(out);
        size_t n = 0;
        for (const cJSON *c = j->child; c; c = c->next) {
            if (++n > HERALD_MAX_ARRAY) {
                herald_value_free(out);
                return herald_fail(err, HERALD_ELIMIT, "array has more than %d elements",
                                   HERALD_MAX_ARRAY);
            }
            herald_value item;
            int rc = from_cjson(c, depth + 1, &item, err);
            if (!rc) rc = herald_array_push(out, item);
            if (rc) {
                herald_value_free(out);
                return rc;
            }
        }
        return 0;
    }
    if (!cJSON_IsObject(j)) return herald_fail(err, HERALD_EINVAL, "unsupported JSON value");
    herald_object_init(out);
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        size_t klen = strlen(c->string);
        int rc = 0;
        if (++n > HERALD_MAX_FIELDS)
            rc = herald_fail(err, HERALD_ELIMIT, "object has more than %d fields",
                             HERALD_MAX_FIELDS);
        else if (klen == 0)
            rc = herald_fail(err, HERALD_EINVAL, "empty field name");
        else if (klen > HERALD_MAX_FIELD_NAME)
            rc = herald_fail(err, HERALD_ELIMIT, "field name longer than %d bytes",
                             HERALD_MAX_FIELD_NAME);
        else if (c->string[0] == '$')
            rc = herald_fail(err, HERALD_EINVAL, "field name `%.64s` starts with `$`", c->string);
        else if (!utf8_valid((const unsigned char *)c->string, klen))
            rc = herald_fail(err, HERALD_EINVAL, "field name is not valid UTF-8");
        else if (herald_object_get(out, c->string))
            rc = herald_fail(err, HERALD_EINVAL, "duplicate field `%.64s`", c->string);
        herald_value item;
        if (!rc) rc = from_cjson(c, depth + 1, &item, err);
        if (!rc) rc = herald_object_set(out, c->string, klen, item);
        if (rc) {
            herald_value_free(out);
            return rc;
        }
    }
    return 0;
}

int herald_value_from_json(const char *text, size_t len, herald_value *out, herald_error *err)
{
    *out = herald_undefined();
    const char *bad = check_text(text, len);
    if (bad) return herald_fail(err, HERALD_EINVAL, "%s", bad);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return herald_fail(err, HERALD_EINVAL, "malformed JSON near byte %zu", at);
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(j);
            return herald_fail(err, HERALD_EINVAL, "unexpected text after JSON value at byte %zu",
                               (size_t)(p - text));
        }
    }
    int rc = from_cjson(j, 0, out, err);
    cJSON_Delete(j);
    return rc;
}

/* ---- JSON out ----------------------------------------------------------- */

static void json_string(hd_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    hd__buf_byte(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        hd__buf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"':
            hd__buf_str(b, "\\\"");
            break;
        case '\\':
            hd__buf_str(b, "\\\\");
            break;
        case '\n':
            hd__buf_str(b, "\\n");
            break;
        case '\r':
            hd__buf_str(b, "\\r");
            break;
        case '\t':
            hd__buf_str(b, "\\t");
            break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            hd__buf_append(b, e, 6);
        }
        }
    }
    hd__buf_append(b, s + start, n - start);
    hd__buf_byte(b, '"');
}

static void json_special(hd_buf *b, const char *tag, const void *p, size_t n)
{
    hd__buf_str(b, "{\"");
    hd__buf_str(b, tag);
    hd__buf_str(b, "\":\"");
    hd__base64_encode(b, p, n, false);
    hd__buf_str(b, "\"}");
}

static void json_le64(hd_buf *b, const char *tag, uint64_t u)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(u >> (8 * i));
    json_special(b, tag, le, 8);
}

static void json_value(hd_buf *b, const herald_value *v)
{
    char num[40];
    switch (v->type) {
    case HERALD_UNDEFINED:
    case HERALD_NULL:
        hd__buf_str(b, "null");
        break;
    case HERALD_INT64:
        json_le64(b, "$integer", (uint64_t)v->u.i);
        break;
    case HERALD_FLOAT64: {
        double f = v->u.f;
        if (!isfinite(f) || (f == 0 && signbit(f))) {
            uint64_t u;
            memcpy(&u, &f, sizeof u);
            json_le64(b, "$float", u);
            break;
        }
        /* Shortest of %.15g / %.17g that reads back as the same double. */
        snprintf(num, sizeof num, "%.15g", f);
        if (strtod(num, NULL) != f) snprintf(num, sizeof num, "%.17g", f);
        hd__buf_str(b, num);
        break;
    }
    case HERALD_BOOLEAN:
        hd__buf_str(b, v->u.b ? "true" : "false");
        break;
    case HERALD_STRING:
        json_string(b, v->u.s.ptr, v->u.s.len);
        break;
    case HERALD_BYTES:
        json_special(b, "$bytes", v->u.s.ptr, v->u.s.len);
        break;
    case HERALD_ARRAY:
        hd__buf_byte(b, '[');
        for (size_t i = 0; i < v->u.arr.len; i++) {
            if (i) hd__buf_byte(b, ',');
            json_value(b, &v->u.arr.items[i]);
        }
        hd__buf_byte(b, ']');
        break;
    case HERALD_OBJECT: {
        bool first = true;
        hd__buf_byte(b, '{');
        for (size_t i = 0; i < v->u.obj.len; i++) {
            const herald_field *f = &v->u.obj.fields[i];
            if (f->val.type == HERALD_UNDEFINED) continue;
            if (!first) hd__buf_byte(b, ',');
            first = false;
            json_string(b, f->key, f->key_len);
            hd__buf_byte(b, ':');
            json_value(b, &f->val);
        }
        hd__buf_byte(b, '}');
        break;
    }
    }
}

char *herald_value_to_json(const herald_value *v)
{
    hd_buf b = HD_BUF_INIT;
    json_value(&b, v);
    hd__buf_byte(&b, 0);
    if (b.failed) {
        hd__buf_free(&b);
        return NULL;
    }
    return (char *)hd__buf_take(&b, NULL);
}
