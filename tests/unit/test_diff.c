/*
 * Result diffs (src/diff.c): for any two results, applying diff(old, new)
 * to a copy of old must give exactly new, also after a trip through the
 * JSON text the wire carries; identical results give no diff; lists keep
 * their longest run of documents in place and move only the others; a
 * broken diff is refused and leaves its target untouched; running out of
 * memory at any allocation is an error, never a leak or a crash.
 *
 * The test must never accept a wrong result to make a case pass: every
 * pair is checked against the new result itself, not against the diff.
 *
 * HERALD_DIFF_SEED and HERALD_DIFF_PAIRS override the seed (default: time
 * and pid, printed) and the number of random pairs (default 40,000).
 *
 * `test_diff --emit FILE N` instead writes N JSON lines
 * {"old": ..., "diff": ..., "new": ...} (no "diff" when the results are
 * equal) for the JavaScript client's test, tests/js/test_diff.mjs.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "diff.h"
#include "herald/value.h"

#include "failalloc.h"

/* ---- building values (the test aborts if the machine is out of memory) -- */

static bool json_safe; /* only values whose JSON text reads back the same */

static herald_value str_n(const char *s, size_t n)
{
    herald_value v;
    if (herald_string(&v, s, n)) abort();
    return v;
}
static herald_value str(const char *s)
{
    return str_n(s, strlen(s));
}
static void set_field(herald_value *obj, const char *key, herald_value v)
{
    if (herald_object_set(obj, key, strlen(key), v)) abort();
}
static void push(herald_value *arr, herald_value v)
{
    if (herald_array_push(arr, v)) abort();
}
static herald_value copy_of(const herald_value *v)
{
    herald_value c;
    if (herald_value_copy(&c, v)) abort();
    return c;
}
static void arr_insert(herald_value *arr, size_t pos, herald_value v)
{
    push(arr, v);
    herald_value *it = arr->u.arr.items;
    memmove(it + pos + 1, it + pos, (arr->u.arr.len - 1 - pos) * sizeof *it);
    it[pos] = v;
}
static herald_value arr_take(herald_value *arr, size_t pos)
{
    herald_value *it = arr->u.arr.items, v = it[pos];
    memmove(it + pos, it + pos + 1, (arr->u.arr.len - 1 - pos) * sizeof *it);
    arr->u.arr.len--;
    return v;
}
static herald_value from_json(const char *text)
{
    herald_value v;
    herald_error err;
    if (herald_value_from_json(text, strlen(text), &v, &err)) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, err.message);
        abort();
    }
    return v;
}

/* ---- random values ------------------------------------------------------ */

static const char *const field_names[] = {
    "a",      "b",         "c",   "title",         "status",   "progressPercentage", "page",
    "isDone", "__proto__", "x.y", "_creationTime", "\xc3\xa9", "constructor"};

static const char *random_field_name(void)
{
    if (!json_safe && check_below(30) == 0) return check_below(2) ? "" : "$dollar";
    return field_names[check_below(sizeof field_names / sizeof *field_names)];
}

static herald_value random_text(bool bytes)
{
    static const char alpha[] = {'a', 'b', 'z', ' ', '"', '\\', '\n', '\0', '\xff', '\x01'};
    char buf[8];
    size_t n = check_below(8);
    for (size_t i = 0; i < n; i++) {
        buf[i] = alpha[check_below(sizeof alpha)];
        if (json_safe && !bytes && (buf[i] == 0 || (unsigned char)buf[i] == 0xff)) buf[i] = 'q';
    }
    herald_value v;
    if (bytes ? herald_bytes(&v, buf, n) : herald_string(&v, buf, n)) abort();
    return v;
}

static herald_value random_value(int depth)
{
    switch (check_below(depth < 2 ? 10 : 8)) {
    case 0:
        return herald_null();
    case 1: {
        static const int64_t edges[] = {INT64_MIN, -1, 0, 1, 41, 42, INT64_MAX};
        if (check_below(2)) return herald_int64(edges[check_below(7)]);
        return herald_int64((int64_t)check_rand() >> check_below(64));
    }
    case 2: {
        static const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, 0.5, 1e300, -2.25};
        unsigned k = check_below(4);
        if (k == 0) return herald_float64(specials[check_below(7)]);
        if (k == 1) {
            uint64_t u = 0x7FF8000000000000ULL | (check_rand() & 0xFULL);
            if (check_below(2)) u |= 1ULL << 63;
            double f;
            memcpy(&f, &u, sizeof f);
            return herald_float64(f); /* a NaN: equal only to the same NaN */
        }
        return herald_float64((double)((int64_t)(check_rand() >> 40) - (1LL << 23)) / 8.0);
    }
    case 3:
        return herald_bool(check_below(2));
    case 4:
        return random_text(false);
    case 5:
        return random_text(true);
    case 6:
    case 7:
        return herald_float64(
            (double)check_below(101)); /* small whole numbers: frequent collisions */
    case 8: {
        herald_value a;
        herald_array_init(&a);
        for (unsigned i = check_below(4); i > 0; i--)
            push(&a, random_value(depth + 1));
        return a;
    }
    default: {
        herald_value o;
        herald_object_init(&o);
        for (unsigned i = check_below(4); i > 0; i--)
            set_field(&o, random_field_name(), random_value(depth + 1));
        return o;
    }
    }
}

static unsigned fresh_counter;

static herald_value fresh_id(void)
{
    char b[32];
    snprintf(b, sizeof b, "n%u", fresh_counter++);
    return str(b);
}

/* Ids from a small pool, so that lists built apart still share documents. */
static herald_value pool_id(void)
{
    unsigned k = check_below(52);
    if (k == 48) return str("");
    if (k == 49) return str("__proto__");
    if (k == 50) return str("constructor");
    if (k == 51) return json_safe ? str("\xc3\xa9t\xc3\xa9") : str_n("x\0y", 3);
    char b[16];
    snprintf(b, sizeof b, "d%u", k);
    return str(b);
}

static bool has_id(const herald_value *arr, const herald_value *id)
{
    for (size_t i = 0; i < arr->u.arr.len; i++) {
        const herald_value *x = herald_object_get(&arr->u.arr.items[i], "_id");
        if (x && herald_value_equal(x, id)) return true;
    }
    return false;
}

/* An id no document of `arr` has. */
static herald_value new_id_for(const herald_value *arr)
{
    herald_value id = pool_id();
    if (!has_id(arr, &id)) return id;
    herald_value_free(&id);
    return fresh_id();
}

static herald_value random_doc(herald_value id)
{
    herald_value d;
    herald_object_init(&d);
    set_field(&d, "_id", id);
    for (unsigned i = check_below(5); i > 0; i--) {
        const char *name = random_field_name();
        if (strcmp(name, "_id")) set_field(&d, name, random_value(1));
    }
    return d;
}

static herald_value random_id_list(size_t n)
{
    herald_value arr;
    herald_array_init(&arr);
    for (size_t i = 0; i < n; i++)
        push(&arr, random_doc(new_id_for(&arr)));
    return arr;
}

static size_t random_list_len(void)
{
    return check_below(12) == 0 ? 40 + check_below(260) : check_below(12);
}

static herald_value random_page(void)
{
    herald_value p;
    herald_object_init(&p);
    set_field(&p, "page", random_id_list(random_list_len()));
    set_field(&p, "isDone", herald_bool(check_below(2)));
    set_field(&p, "continueCursor", random_text(false));
    return p;
}

static herald_value random_result(void)
{
    unsigned k = check_below(100);
    if (k < 55) return random_id_list(random_list_len());
    if (k < 70) return random_page();
    if (k < 80) return random_doc(pool_id());
    if (k < 85) return herald_null();
    if (k < 90) return random_value(0);
    herald_value arr = random_id_list(1 + check_below(8));
    if (k < 95) {
        /* The same id twice. */
        size_t n = arr.u.arr.len;
        arr_insert(&arr, check_below(n + 1), copy_of(&arr.u.arr.items[check_below(n)]));
    } else {
        /* Elements that are not documents. */
        arr_insert(&arr, check_below(arr.u.arr.len + 1), random_value(1));
    }
    return arr;
}

/* ---- random edits ------------------------------------------------------- */

static void edit_doc(herald_value *doc)
{
    if (doc->type != HERALD_OBJECT) return;
    unsigned k = check_below(10);
    if (k < 6) {
        const char *name = random_field_name();
        if (strcmp(name, "_id")) set_field(doc, name, random_value(1));
    } else if (k < 9) {
        if (doc->u.obj.len) {
            herald_field *f = &doc->u.obj.fields[check_below((unsigned)doc->u.obj.len)];
            if (strcmp(f->key, "_id")) herald_object_remove(doc, f->key);
        }
    } else {
        set_field(doc, "_id", fresh_id());
    }
}

static void shuffle(herald_value *arr)
{
    herald_value *it = arr->u.arr.items;
    for (size_t i = arr->u.arr.len; i > 1; i--) {
        size_t j = check_below((unsigned)i);
        herald_value t = it[i - 1];
        it[i - 1] = it[j];
        it[j] = t;
    }
}

static void edit_list(herald_value *arr)
{
    unsigned edits = check_below(4) == 0 ? check_below(24) : 1 + check_below(3);
    for (unsigned e = 0; e < edits; e++) {
        size_t n = arr->u.arr.len;
        unsigned i = check_below((unsigned)n), op = check_below(100);
        herald_value *it = arr->u.arr.items;
        if (op < 18) {
            arr_insert(arr, check_below((unsigned)n + 1), random_doc(new_id_for(arr)));
        } else if (!n) {
            continue;
        } else if (op < 34) {
            herald_value v = arr_take(arr, i);
            herald_value_free(&v);
        } else if (op < 50) {
            herald_value v = arr_take(arr, i);
            arr_insert(arr, check_below((unsigned)n), v);
        } else if (op < 72) {
            edit_doc(&it[i]);
        } else if (op < 78) {
            const herald_value *id = herald_object_get(&it[i], "_id");
            herald_value doc = random_doc(id ? copy_of(id) : pool_id());
            herald_value_free(&it[i]);
            it[i] = doc;
        } else if (op < 82) {
            shuffle(arr);
        } else if (op < 85) {
            for (size_t a = 0, b = n - 1; a < b; a++, b--) {
                herald_value t = it[a];
                it[a] = it[b];
                it[b] = t;
            }
        } else if (op < 89) {
            herald_value v = arr_take(arr, n - 1);
            arr_insert(arr, 0, v);
        } else if (op < 92) {
            herald_value v = arr_take(arr, 0);
            arr_insert(arr, n - 1, v);
        } else if (op < 94) {
            arr_insert(arr, check_below((unsigned)n + 1), copy_of(&it[i])); /* a repeated id */
        } else if (op < 96) {
            arr_insert(arr, check_below((unsigned)n + 1), random_value(1));
        } else if (op < 97) {
            if (it[i].type == HERALD_OBJECT) set_field(&it[i], "_id", herald_int64(7));
        } else {
            herald_value v = arr_take(arr, i);
            herald_value_free(&v);
            arr_insert(arr, check_below((unsigned)n), random_doc(new_id_for(arr)));
        }
    }
}

static herald_value new_from(const herald_value *old)
{
    unsigned k = check_below(100);
    if (k < 4) return copy_of(old);
    if (k < 18) return random_result();
    herald_value v = copy_of(old);
    herald_value *page = (herald_value *)herald_object_get(&v, "page");
    if (v.type == HERALD_ARRAY) {
        edit_list(&v);
    } else if (page && page->type == HERALD_ARRAY) {
        if (check_below(5)) edit_list(page);
        if (check_below(3) == 0) set_field(&v, "isDone", herald_bool(check_below(2)));
        if (check_below(3) == 0) set_field(&v, "continueCursor", random_text(false));
        if (check_below(10) == 0) set_field(&v, "extra", random_value(1));
        if (check_below(10) == 0) herald_object_remove(&v, "isDone");
    } else if (v.type == HERALD_OBJECT) {
        for (unsigned e = 1 + check_below(3); e > 0; e--)
            edit_doc(&v);
    } else {
        herald_value_free(&v);
        return random_result();
    }
    return v;
}

/* ---- checks --------------------------------------------------------------- */

static bool is_id_list(const herald_value *v)
{
    if (v->type != HERALD_ARRAY) return false;
    const herald_value *it = v->u.arr.items;
    for (size_t i = 0; i < v->u.arr.len; i++) {
        const herald_value *id = herald_object_get(&it[i], "_id");
        if (!id || id->type != HERALD_STRING) return false;
        for (size_t j = 0; j < i; j++)
            if (herald_value_equal(id, herald_object_get(&it[j], "_id"))) return false;
    }
    return true;
}

static long find_by_id(const herald_value *arr, const herald_value *id)
{
    for (size_t i = 0; i < arr->u.arr.len; i++)
        if (herald_value_equal(herald_object_get(&arr->u.arr.items[i], "_id"), id)) return (long)i;
    return -1;
}

static size_t list_len(const herald_value *d, const char *key)
{
    const herald_value *v = herald_object_get(d, key);
    return v ? v->u.arr.len : 0;
}

/*
 * A LIST against a model: removals and inserts are exactly the ids that
 * left and came, changes exactly the surviving documents that differ, and
 * moves exactly the survivors outside one longest increasing run (an
 * O(n^2) longest increasing subsequence, obviously right).
 */
static void check_list_diff(const herald_value *old, const herald_value *new, const herald_value *d)
{
    size_t n = old->u.arr.len, survivors = 0, changed = 0, best = 0;
    long *seq = calloc(n + 1, sizeof *seq);
    size_t *run = calloc(n + 1, sizeof *run);
    if (!seq || !run) abort();
    for (size_t i = 0; i < n; i++) {
        const herald_value *doc = &old->u.arr.items[i];
        long j = find_by_id(new, herald_object_get(doc, "_id"));
        if (j < 0) continue;
        seq[survivors] = j;
        run[survivors] = 1;
        for (size_t k = 0; k < survivors; k++)
            if (seq[k] < j && run[k] + 1 > run[survivors]) run[survivors] = run[k] + 1;
        if (run[survivors] > best) best = run[survivors];
        survivors++;
        if (!herald_value_equal(doc, &new->u.arr.items[j])) changed++;
    }
    CHECK(list_len(d, "r") == n - survivors);
    CHECK(list_len(d, "i") == new->u.arr.len - survivors);
    CHECK(list_len(d, "c") == changed);
    CHECK(list_len(d, "m") == survivors - best);
    free(seq);
    free(run);
}

static bool is_paginate(const herald_value *v)
{
    const herald_value *p = herald_object_get(v, "page");
    return p && p->type == HERALD_ARRAY && !herald_object_get(v, "_id");
}

/* Which form the diff of a pair must take: 0 for none, else 'v', 'a' or 'o'. */
static char expected_form(const herald_value *old, const herald_value *new)
{
    if (herald_value_equal(old, new)) return 0;
    if (old->type == HERALD_ARRAY && new->type == HERALD_ARRAY) {
        if (!is_id_list(old) || !is_id_list(new)) return 'v';
        for (size_t i = 0; i < old->u.arr.len; i++)
            if (find_by_id(new, herald_object_get(&old->u.arr.items[i], "_id")) >= 0) return 'a';
        return 'v';
    }
    if (old->type == HERALD_OBJECT && new->type == HERALD_OBJECT) {
        if (is_paginate(old) && is_paginate(new)) return 'o';
        const herald_value *a = herald_object_get(old, "_id"), *b = herald_object_get(new, "_id");
        if (a && b && a->type == HERALD_STRING && herald_value_equal(a, b)) return 'o';
    }
    return 'v';
}

static herald_value json_trip(const herald_value *v)
{
    char *text = herald_value_to_json(v);
    herald_value out;
    herald_error err;
    if (!text) abort();
    if (herald_value_from_json(text, strlen(text), &out, &err)) {
        fprintf(stderr, "JSON did not read back (%s): %.200s\n", err.message, text);
        check_failures++;
        out = herald_null();
    }
    free(text);
    return out;
}

/* Every node of a value tree, parents first. */
typedef struct node_list {
    herald_value **v;
    size_t len, cap;
} node_list;

static void collect_nodes(herald_value *v, node_list *nl)
{
    if (nl->len == nl->cap) {
        nl->cap = nl->cap ? nl->cap * 2 : 32;
        nl->v = realloc(nl->v, nl->cap * sizeof *nl->v);
        if (!nl->v) abort();
    }
    nl->v[nl->len++] = v;
    if (v->type == HERALD_ARRAY)
        for (size_t i = 0; i < v->u.arr.len; i++)
            collect_nodes(&v->u.arr.items[i], nl);
    if (v->type == HERALD_OBJECT)
        for (size_t i = 0; i < v->u.obj.len; i++)
            collect_nodes(&v->u.obj.fields[i].val, nl);
}

/* One random damage to a diff: what a buggy peer or a corrupted message could send. */
static void damage(herald_value *d)
{
    node_list nl = {0};
    collect_nodes(d, &nl);
    herald_value *v = nl.v[check_below((unsigned)nl.len)];
    free(nl.v);
    unsigned k = check_below(6);
    if (k == 0 && v->type == HERALD_ARRAY && v->u.arr.len) {
        herald_value x = arr_take(v, check_below((unsigned)v->u.arr.len));
        herald_value_free(&x);
    } else if (k == 1 && v->type == HERALD_ARRAY && v->u.arr.len) {
        herald_value *it = v->u.arr.items;
        arr_insert(v, check_below((unsigned)v->u.arr.len + 1),
                   copy_of(&it[check_below((unsigned)v->u.arr.len)]));
    } else if (k == 2 && v->type == HERALD_FLOAT64) {
        v->u.f += check_below(2) ? 1 : -1;
    } else if (k == 3 && v->type == HERALD_OBJECT && v->u.obj.len) {
        herald_object_remove(v, v->u.obj.fields[check_below((unsigned)v->u.obj.len)].key);
    } else if (k == 4 && v->type == HERALD_STRING) {
        herald_value_free(v);
        *v = pool_id();
    } else {
        herald_value_free(v);
        *v = random_value(1);
    }
}

static unsigned long form_counts[4];

static void check_pair(const herald_value *old, const herald_value *new)
{
    herald_value d, t;
    herald_error err;
    CHECK_OK(hd__diff(old, new, &d, &err));
    char form = d.type == HERALD_OBJECT && d.u.obj.len == 1 ? d.u.obj.fields[0].key[0] : 0;
    CHECK(d.type == HERALD_UNDEFINED || form);
    char want = expected_form(old, new);
    CHECK(form == want);
    form_counts[form == 'v' ? 1 : form == 'a' ? 2 : form == 'o' ? 3 : 0]++;
    if (form == 'a' && want == 'a') check_list_diff(old, new, &d.u.obj.fields[0].val);

    t = copy_of(old);
    CHECK_OK(hd__diff_apply(&t, &d, &err));
    CHECK(herald_value_equal(&t, new));
    herald_value_free(&t);

    if (json_safe) {
        /* What a client gets: the diff as JSON text, applied to the old result as JSON text. */
        herald_value jd = json_trip(&d), jo = json_trip(old), jn = json_trip(new);
        CHECK_OK(hd__diff_apply(&jo, &jd, &err));
        CHECK(herald_value_equal(&jo, &jn));
        herald_value_free(&jd);
        herald_value_free(&jo);
        herald_value_free(&jn);
    }

    if (d.type != HERALD_UNDEFINED && check_below(4) == 0) {
        /* A damaged diff either applies or is refused with the target untouched. */
        damage(&d);
        t = copy_of(old);
        int rc = hd__diff_apply(&t, &d, &err);
        CHECK(rc == 0 || rc == HERALD_EINVAL);
        if (rc) CHECK(herald_value_equal(&t, old));
        herald_value_free(&t);
    }
    herald_value_free(&d);
}

static void random_pairs(long pairs)
{
    for (long p = 0; p < pairs; p++) {
        json_safe = p % 2;
        herald_value old = random_result(), new = new_from(&old);
        check_pair(&old, &new);
        /* The same diff on a result it was not made for: applied or refused, never a crash. */
        if (p % 8 == 0) {
            herald_value d, other = random_result();
            herald_error err;
            CHECK_OK(hd__diff(&old, &new, &d, &err));
            herald_value keep = copy_of(&other);
            int rc = hd__diff_apply(&other, &d, &err);
            CHECK(rc == 0 || rc == HERALD_EINVAL);
            if (rc) CHECK(herald_value_equal(&other, &keep));
            herald_value_free(&keep);
            herald_value_free(&other);
            herald_value_free(&d);
        }
        herald_value_free(&old);
        herald_value_free(&new);
    }
    printf("  %ld pairs: %lu equal, %lu replaced, %lu list patches, %lu object patches\n", pairs,
           form_counts[0], form_counts[1], form_counts[2], form_counts[3]);
}

/* ---- targeted cases ------------------------------------------------------- */

static char *diff_json(const herald_value *old, const herald_value *new)
{
    herald_value d;
    herald_error err;
    CHECK_OK(hd__diff(old, new, &d, &err));
    char *text = herald_value_to_json(&d);
    herald_value t = copy_of(old);
    CHECK_OK(hd__diff_apply(&t, &d, &err));
    CHECK(herald_value_equal(&t, new));
    herald_value_free(&t);
    herald_value_free(&d);
    return text;
}

/* A Convex-looking id: 32 characters of base32. */
static herald_value convex_id(unsigned i)
{
    static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
    char b[33];
    unsigned long long x = 0x9E3779B97F4A7C15ULL * (i + 1);
    for (int k = 0; k < 32; k++) {
        b[k] = b32[(x >> (k % 12 * 5)) & 31];
        if (k % 12 == 11) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    b[32] = 0;
    return str(b);
}

static herald_value jobs_doc(unsigned i, herald_value progress)
{
    char title[64];
    snprintf(title, sizeof title, "Transcribe episode %u of the autumn series", i);
    herald_value d;
    herald_object_init(&d);
    set_field(&d, "_id", convex_id(i));
    set_field(&d, "_creationTime", herald_float64(1718000000000.0 + i * 1000.5));
    set_field(&d, "title", str(title));
    set_field(&d, "status", str("Transcribing"));
    set_field(&d, "progressPercentage", progress);
    set_field(&d, "ownerId", convex_id(100000 + i % 17));
    return d;
}

static void test_thousand_docs_one_field(void)
{
    for (int as_int = 0; as_int < 2; as_int++) {
        herald_value old, new;
        herald_array_init(&old);
        for (unsigned i = 0; i < 1000; i++)
            push(&old, jobs_doc(i, as_int ? herald_int64(41) : herald_float64(41)));
        new = copy_of(&old);
        herald_value *doc = &new.u.arr.items[637];
        set_field(doc, "progressPercentage", as_int ? herald_int64(42) : herald_float64(42));
        char *text = diff_json(&old, &new), *whole = herald_value_to_json(&new);
        size_t len = text ? strlen(text) : 0;
        printf("  1,000 documents, one %s field changed: diff %zu bytes (result %zu bytes): %s\n",
               as_int ? "int64" : "float64", len, whole ? strlen(whole) : 0, text ? text : "?");
        CHECK(text && len < 200);
        free(text);
        free(whole);
        herald_value_free(&old);
        herald_value_free(&new);
    }
}

static herald_value numbered_list(unsigned n)
{
    herald_value arr;
    herald_array_init(&arr);
    for (unsigned i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "d%u", i);
        herald_value d;
        herald_object_init(&d);
        set_field(&d, "_id", str(id));
        set_field(&d, "n", herald_float64(i));
        push(&arr, d);
    }
    return arr;
}

static void test_minimal_moves(void)
{
    herald_value old = numbered_list(100), new = copy_of(&old);
    arr_insert(&new, 0, arr_take(&new, 99));
    char *text = diff_json(&old, &new);
    CHECK(text && !strcmp(text, "{\"a\":{\"m\":[[\"d99\",0]]}}"));
    free(text);

    /* First to last: one move as well (the other 99 form the longest run). */
    herald_value_free(&new);
    new = copy_of(&old);
    arr_insert(&new, 99, arr_take(&new, 0));
    text = diff_json(&old, &new);
    CHECK(text && !strcmp(text, "{\"a\":{\"m\":[[\"d0\",99]]}}"));
    free(text);

    /* Reversed: every document but one moves. */
    herald_value_free(&new);
    new = copy_of(&old);
    for (unsigned a = 0, b = 99; a < b; a++, b--) {
        herald_value t = new.u.arr.items[a];
        new.u.arr.items[a] = new.u.arr.items[b];
        new.u.arr.items[b] = t;
    }
    herald_value d;
    herald_error err;
    CHECK_OK(hd__diff(&old, &new, &d, &err));
    const herald_value *list = herald_object_get(&d, "a");
    CHECK(list && herald_object_get(list, "m") && herald_object_get(list, "m")->u.arr.len == 99);
    CHECK(list && list->u.obj.len == 1);
    herald_value_free(&d);

    /* Remove one, insert one, change one: one entry each, nothing moves. */
    herald_value_free(&new);
    new = copy_of(&old);
    herald_value gone = arr_take(&new, 10);
    herald_value_free(&gone);
    herald_value ins;
    herald_object_init(&ins);
    set_field(&ins, "_id", str("new"));
    arr_insert(&new, 50, ins);
    set_field(&new.u.arr.items[70], "n", str("seventy"));
    herald_object_remove(&new.u.arr.items[80], "n");
    text = diff_json(&old, &new);
    CHECK(text && !strcmp(text, "{\"a\":{\"c\":[[\"d70\",{\"s\":{\"n\":\"seventy\"}}],"
                                "[\"d80\",{\"u\":[\"n\"]}]],\"i\":[[50,{\"_id\":\"new\"}]],"
                                "\"r\":[\"d10\"]}}"));
    free(text);
    herald_value_free(&new);
    herald_value_free(&old);
}

static void expect_form(const char *old_json, const char *new_json, const char *want)
{
    herald_value old = from_json(old_json), new = from_json(new_json);
    char *text = diff_json(&old, &new);
    if (!text || strcmp(text, want)) {
        fprintf(stderr, "diff(%s, %s)\n  = %s\n  want %s\n", old_json, new_json, text, want);
        check_failures++;
    }
    free(text);
    herald_value_free(&old);
    herald_value_free(&new);
}

static void test_forms(void)
{
    /* Identical results, NaN included (it equals itself in the total order): nothing. */
    herald_value a = from_json("[{\"_id\":\"x\",\"f\":{\"$float\":\"AAAAAAAA+H8=\"}}]");
    herald_value b = copy_of(&a), d;
    herald_error err;
    CHECK_OK(hd__diff(&a, &b, &d, &err));
    CHECK(d.type == HERALD_UNDEFINED);
    CHECK_OK(hd__diff_apply(&b, &d, &err));
    CHECK(herald_value_equal(&a, &b));
    herald_value_free(&a);
    herald_value_free(&b);

    expect_form("[]", "[]", "null"); /* no diff: to_json of undefined */
    expect_form("[]", "[{\"_id\":\"a\"}]", "{\"v\":[{\"_id\":\"a\"}]}");
    expect_form("[{\"_id\":\"a\"}]", "[]", "{\"v\":[]}");
    expect_form("[{\"_id\":\"a\"}]", "[{\"_id\":\"b\"}]", "{\"v\":[{\"_id\":\"b\"}]}");
    expect_form("[{\"_id\":\"a\"},{\"_id\":\"b\"}]", "[{\"_id\":\"b\"}]",
                "{\"a\":{\"r\":[\"a\"]}}");
    expect_form("[{\"_id\":\"a\"}]", "[1,2]", "{\"v\":[1,2]}");
    expect_form("[{\"_id\":\"a\"}]", "[{\"_id\":\"a\"},{\"_id\":\"a\"}]",
                "{\"v\":[{\"_id\":\"a\"},{\"_id\":\"a\"}]}");
    expect_form("[{\"_id\":\"a\"},{\"_id\":\"a\"}]", "[{\"_id\":\"a\"}]",
                "{\"v\":[{\"_id\":\"a\"}]}");
    expect_form("[1,2]", "[1,3]", "{\"v\":[1,3]}");
    expect_form("null", "{\"_id\":\"a\"}", "{\"v\":{\"_id\":\"a\"}}");
    expect_form("{\"_id\":\"a\"}", "null", "{\"v\":null}");
    expect_form("{\"_id\":\"a\",\"x\":1,\"y\":2}", "{\"_id\":\"a\",\"x\":1,\"z\":[3]}",
                "{\"o\":{\"s\":{\"z\":[3]},\"u\":[\"y\"]}}");
    expect_form("{\"_id\":\"a\",\"x\":1}", "{\"_id\":\"b\",\"x\":1}",
                "{\"v\":{\"_id\":\"b\",\"x\":1}}");
    expect_form("{\"x\":1}", "{\"x\":2}", "{\"v\":{\"x\":2}}");
    expect_form("5", "6", "{\"v\":6}");
    expect_form(
        "{\"page\":[{\"_id\":\"a\"},{\"_id\":\"b\"}],\"isDone\":false,\"continueCursor\":\"c1\"}",
        "{\"page\":[{\"_id\":\"b\"},{\"_id\":\"c\"}],\"isDone\":true,\"continueCursor\":\"c1\"}",
        "{\"o\":{\"p\":{\"i\":[[1,{\"_id\":\"c\"}]],\"r\":[\"a\"]},\"s\":{\"isDone\":true}}}");
    expect_form("{\"page\":[{\"_id\":\"a\"}],\"isDone\":false,\"continueCursor\":\"c1\"}",
                "{\"page\":[{\"_id\":\"b\"}],\"isDone\":false,\"continueCursor\":\"c2\"}",
                "{\"o\":{\"s\":{\"continueCursor\":\"c2\",\"page\":[{\"_id\":\"b\"}]}}}");

    /* No previous result: a replacement. A missing new result is refused. */
    herald_value undef = herald_undefined(), one = from_json("[{\"_id\":\"a\"}]");
    char *text = diff_json(&undef, &one);
    CHECK(text && !strcmp(text, "{\"v\":[{\"_id\":\"a\"}]}"));
    free(text);
    d = herald_null();
    CHECK(hd__diff(&one, &undef, &d, &err) == HERALD_EINVAL);
    CHECK(d.type == HERALD_UNDEFINED);
    CHECK(hd__diff(NULL, &one, &d, &err) == HERALD_EINVAL);
    CHECK(hd__diff(&one, &one, NULL, &err) == HERALD_EINVAL);
    herald_value_free(&one);
}

/* Diffs that must be refused, each leaving the target as it was. */
static void test_bad_diffs(void)
{
    static const char *const bad[] = {
        "{}",
        "[]",
        "5",
        "{\"x\":1}",
        "{\"v\":1,\"a\":{}}",
        "{\"a\":5}",
        "{\"a\":{\"q\":[]}}",
        "{\"a\":{\"r\":\"a\"}}",
        "{\"a\":{\"r\":[\"zz\"]}}",
        "{\"a\":{\"r\":[\"a\",\"a\"]}}",
        "{\"a\":{\"r\":[1]}}",
        "{\"a\":{\"m\":[[\"a\",5]]}}",
        "{\"a\":{\"m\":[[\"a\",-1]]}}",
        "{\"a\":{\"m\":[[\"a\",0.5]]}}",
        "{\"a\":{\"m\":[[\"a\",{\"$float\":\"AAAAAAAA+H8=\"}]]}}",
        "{\"a\":{\"m\":[[\"a\",1],[\"b\",0]]}}",
        "{\"a\":{\"m\":[[\"a\",1],[\"a\",2]]}}",
        "{\"a\":{\"m\":[\"a\",1]}}",
        "{\"a\":{\"r\":[\"a\"],\"m\":[[\"a\",1]]}}",
        "{\"a\":{\"i\":[[4,{\"_id\":\"z\"}]]}}",
        "{\"a\":{\"i\":[[0,{}],[0,{}]]}}",
        "{\"a\":{\"i\":[[1,{}]],\"m\":[[\"a\",1]]}}",
        "{\"a\":{\"c\":[[\"zz\",{}]]}}",
        "{\"a\":{\"c\":[[\"a\",{\"s\":{\"x\":1}}],[\"a\",{\"s\":{\"x\":1}}]]}}",
        "{\"a\":{\"r\":[\"a\"],\"c\":[[\"a\",{\"s\":{\"x\":1}}]]}}",
        "{\"a\":{\"c\":[[\"a\",{\"u\":[\"nope\"]}]]}}",
        "{\"a\":{\"c\":[[\"a\",{\"s\":5}]]}}",
        "{\"a\":{\"c\":[[\"a\",{\"s\":{\"x\":1},\"u\":[\"x\"]}]]}}",
        "{\"a\":{\"c\":[[\"a\",5]]}}",
        "{\"a\":{\"c\":[[\"a\",{\"p\":{}}]]}}",
        "{\"o\":{}}",
        "{\"a\":{\"i\":[[1e300,{}]]}}",
        "{\"a\":{\"m\":[[\"b\",0]],\"c\":[[\"c\",{\"s\":{\"x\":1}}]],\"r\":[\"c\"]}}"};
    herald_value target = from_json("[{\"_id\":\"a\",\"x\":0},{\"_id\":\"b\"},{\"_id\":\"c\"}]");
    herald_value keep = copy_of(&target);
    herald_error err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        herald_value d = from_json(bad[i]);
        int rc = hd__diff_apply(&target, &d, &err);
        if (rc != HERALD_EINVAL) {
            fprintf(stderr, "bad diff %s: rc %d\n", bad[i], rc);
            check_failures++;
        }
        CHECK(herald_value_equal(&target, &keep));
        herald_value_free(&d);
    }
    /* An object patch on a list, a list patch on an object, a page patch without a page. */
    herald_value obj = from_json("{\"_id\":\"a\",\"x\":1}"), keep_obj = copy_of(&obj);
    static const char *const bad_obj[] = {"{\"a\":{}}", "{\"o\":{\"p\":{}}}",
                                          "{\"o\":{\"u\":[\"y\"]}}", "{\"o\":{\"z\":1}}"};
    for (size_t i = 0; i < sizeof bad_obj / sizeof *bad_obj; i++) {
        herald_value d = from_json(bad_obj[i]);
        CHECK(hd__diff_apply(&obj, &d, &err) == HERALD_EINVAL);
        CHECK(herald_value_equal(&obj, &keep_obj));
        herald_value_free(&d);
    }
    herald_value d = from_json("{\"o\":{\"s\":{\"y\":2}}}");
    CHECK(hd__diff_apply(&target, &d, &err) == HERALD_EINVAL);
    CHECK(herald_value_equal(&target, &keep));
    /* A null diff and an int64 position are accepted. */
    CHECK_OK(hd__diff_apply(&obj, &(herald_value){.type = HERALD_NULL}, &err));
    CHECK(herald_value_equal(&obj, &keep_obj));
    herald_value_free(&d);
    d = from_json("{\"a\":{\"m\":[[\"a\",{\"$integer\":\"AgAAAAAAAAA=\"}]]}}");
    CHECK_OK(hd__diff_apply(&target, &d, &err));
    herald_value want = from_json("[{\"_id\":\"b\"},{\"_id\":\"c\"},{\"_id\":\"a\",\"x\":0}]");
    CHECK(herald_value_equal(&target, &want));
    herald_value_free(&want);
    herald_value_free(&d);
    herald_value_free(&obj);
    herald_value_free(&keep_obj);
    herald_value_free(&target);
    herald_value_free(&keep);
}

/* Every allocation of diff and apply failing in turn: an error, never a leak or a torn target. */
static void test_out_of_memory(void)
{
    alloc_calls = 0;
    herald_value probe = str("probe");
    herald_value_free(&probe);
    if (alloc_calls == 0) {
        printf("  out-of-memory cases skipped: not linked with --wrap=malloc\n");
        return;
    }
    unsigned long failures = 0;
    for (int p = 0; p < 300; p++) {
        json_safe = false;
        herald_value old = random_result(), new = new_from(&old), d;
        herald_error err;
        for (long budget = 0;; budget++) {
            alloc_budget = budget;
            int rc = hd__diff(&old, &new, &d, &err);
            alloc_budget = -1;
            if (rc == 0) break;
            CHECK(rc == HERALD_ENOMEM && d.type == HERALD_UNDEFINED);
            failures++;
        }
        for (long budget = 0;; budget++) {
            herald_value t = copy_of(&old);
            alloc_budget = budget;
            int rc = hd__diff_apply(&t, &d, &err);
            alloc_budget = -1;
            CHECK(herald_value_equal(&t, rc ? &old : &new));
            herald_value_free(&t);
            if (rc == 0) break;
            CHECK(rc == HERALD_ENOMEM);
            failures++;
        }
        herald_value_free(&d);
        herald_value_free(&old);
        herald_value_free(&new);
    }
    printf("  out of memory: %lu failed allocations, each refused cleanly\n", failures);
}

/* ---- the JavaScript client's cases ---------------------------------------- */

static int emit(const char *path, long pairs)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    json_safe = true;
    for (long p = 0; p < pairs; p++) {
        herald_value old = random_result(), new = new_from(&old), d, line;
        herald_error err;
        if (hd__diff(&old, &new, &d, &err)) abort();
        herald_object_init(&line);
        set_field(&line, "old", old);
        set_field(&line, "new", new);
        set_field(&line, "diff", d); /* undefined (no diff) leaves the key out */
        char *text = herald_value_to_json(&line);
        if (!text) abort();
        fprintf(f, "%s\n", text);
        free(text);
        herald_value_free(&line);
    }
    if (fclose(f)) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("HERALD_DIFF_SEED");
    unsigned long long seed =
        env && *env ? strtoull(env, NULL, 0)
                    : ((unsigned long long)time(NULL) << 20) ^ (unsigned long long)getpid();
    check_rng_state = seed ? seed : 1;
    if (argc == 4 && !strcmp(argv[1], "--emit")) {
        fprintf(stderr, "test_diff --emit: seed %llu\n", check_rng_state);
        return emit(argv[2], strtol(argv[3], NULL, 0));
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_diff [--emit FILE N]\n");
        return 2;
    }
    env = getenv("HERALD_DIFF_PAIRS");
    long pairs = env && *env ? strtol(env, NULL, 0) : 40000;
    printf("test_diff: seed %llu (rerun with HERALD_DIFF_SEED=%llu)\n", check_rng_state,
           check_rng_state);
    fflush(stdout);
    test_thousand_docs_one_field();
    test_minimal_moves();
    test_forms();
    test_bad_diffs();
    test_out_of_memory();
    random_pairs(pairs);
    if (check_failures) printf("test_diff: FAILED (HERALD_DIFF_SEED=%llu)\n", seed);
    CHECK_DONE();
}
