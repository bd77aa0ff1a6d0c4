/*
 * Full-text search (search.h): tokenising, matching and ranking on top of
 * an ordinary index scan. It must never read outside the table it names
 * or return more than HD_SEARCH_MAX_RESULTS documents.
 */
#include <stdlib.h>
#include <string.h>

#include "search.h"

#define MAX_TERMS    16
#define MAX_TERM_LEN 64

typedef struct terms {
    char t[MAX_TERMS][MAX_TERM_LEN + 1];
    size_t n;
} terms;

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Calls fn for every term of `s` (lowercased, cut at MAX_TERM_LEN bytes). */
static void each_term(const char *s, size_t n, void (*fn)(void *, const char *, size_t), void *ctx)
{
    char buf[MAX_TERM_LEN + 1];
    size_t i = 0;
    while (i < n) {
        while (i < n && !word_byte((unsigned char)s[i]))
            i++;
        size_t len = 0;
        while (i < n && word_byte((unsigned char)s[i])) {
            if (len < MAX_TERM_LEN) buf[len++] = (char)lower((unsigned char)s[i]);
            i++;
        }
        if (len) {
            buf[len] = 0;
            fn(ctx, buf, len);
        }
    }
}

static void add_query_term(void *ctx, const char *term, size_t len)
{
    terms *q = ctx;
    (void)len;
    if (q->n < MAX_TERMS) strcpy(q->t[q->n++], term);
}

typedef struct scoring {
    const terms *q;
    bool hit[MAX_TERMS];
    size_t occurrences;
} scoring;

static void score_term(void *ctx, const char *term, size_t len)
{
    scoring *sc = ctx;
    for (size_t k = 0; k < sc->q->n; k++) {
        const char *want = sc->q->t[k];
        size_t wl = strlen(want);
        bool last = k + 1 == sc->q->n;
        if ((len == wl || (last && len > wl)) && !memcmp(term, want, wl)) {
            sc->hit[k] = true;
            sc->occurrences++;
        }
    }
}

typedef struct ranked {
    size_t distinct, occurrences;
    double created;
    herald_value *doc;
} ranked;

static int rank_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->distinct != y->distinct) return x->distinct > y->distinct ? -1 : 1;
    if (x->occurrences != y->occurrences) return x->occurrences > y->occurrences ? -1 : 1;
    if (x->created != y->created) return x->created > y->created ? -1 : 1;
    return 0;
}

static const herald_search_index_def *find_index(const herald_table_def *t, const char *name)
{
    for (size_t i = 0; i < t->nsearch_indexes; i++)
        if (!strcmp(t->search_indexes[i].name, name)) return &t->search_indexes[i];
    return NULL;
}

static const char *str_of(const herald_value *spec, const char *key)
{
    const herald_value *v = herald_object_get(spec, key);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

/* The scan: every document of the table that passes the filters, as one array. */
static int scan(herald_txn *t, const herald_schema *schema, const char *table,
                const herald_value *filters, herald_value *docs, herald_read_set *rs,
                herald_error *err)
{
    herald_value q, v;
    int rc = 0;
    herald_object_init(&q);
    if (herald_string(&v, table, strlen(table)) || herald_object_set(&q, "table", 5, v))
        rc = HERALD_ENOMEM;
    if (!rc && herald_object_set(&q, "collect", 7, herald_bool(true))) rc = HERALD_ENOMEM;
    if (!rc && filters && filters->u.arr.len) {
        /* {"and": [{"eq": [{"field": F}, {"literal": V}]}, ...]} */
        herald_value all;
        herald_array_init(&all);
        for (size_t i = 0; !rc && i < filters->u.arr.len; i++) {
            const herald_value *pair = &filters->u.arr.items[i];
            herald_value eq, operands, field, lit, path;
            herald_object_init(&eq);
            herald_array_init(&operands);
            herald_object_init(&field);
            herald_object_init(&lit);
            rc = herald_value_copy(&path, &pair->u.arr.items[0]);
            if (!rc) rc = herald_object_set(&field, "field", 5, path);
            if (!rc) rc = herald_value_copy(&v, &pair->u.arr.items[1]);
            if (!rc) rc = herald_object_set(&lit, "literal", 7, v);
            if (!rc)
                rc = herald_array_push(&operands, field);
            else
                herald_value_free(&field);
            if (!rc)
                rc = herald_array_push(&operands, lit);
            else
                herald_value_free(&lit);
            if (!rc)
                rc = herald_object_set(&eq, "eq", 2, operands);
            else
                herald_value_free(&operands);
            if (!rc)
                rc = herald_array_push(&all, eq);
            else
                herald_value_free(&eq);
        }
        herald_value and_expr;
        herald_object_init(&and_expr);
        if (!rc)
            rc = herald_object_set(&and_expr, "and", 3, all);
        else
            herald_value_free(&all);
        if (!rc)
            rc = herald_object_set(&q, "filter", 6, and_expr);
        else
            herald_value_free(&and_expr);
    }
    herald_query *query = NULL;
    if (rc) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc) rc = herald_query_from_value(&q, schema, &query, err);
    herald_value_free(&q);
    if (!rc) rc = herald_query_run(query, t, NULL, docs, rs, err);
    herald_query_free(query);
    return rc;
}

int hd__search_run(herald_txn *t, const herald_schema *schema, const herald_value *spec,
                   herald_value *result, herald_read_set *rs, herald_error *err)
{
    *result = herald_undefined();
    const char *table = str_of(spec, "table"), *index = str_of(spec, "index");
    const herald_value *text = herald_object_get(spec, "search");
    const herald_value *filters = herald_object_get(spec, "filters");
    const herald_value *take = herald_object_get(spec, "take");
    bool first = herald_object_get(spec, "first") != NULL;
    const herald_table_def *td = table ? herald_schema_table(schema, table) : NULL;
    if (!td) return herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", table ? table : "");
    const herald_search_index_def *si = index ? find_index(td, index) : NULL;
    if (!si)
        return herald_fail(err, HERALD_ENOTFOUND, "table `%s` has no search index `%.64s`", table,
                           index ? index : "");
    if (!text || text->type != HERALD_STRING)
        return herald_fail(err, HERALD_EINVAL, "withSearchIndex needs q:search(\"%s\", text)",
                           si->search_field);
    const herald_value *field = herald_object_get(spec, "field");
    if (!field || field->type != HERALD_STRING || strcmp(field->u.s.ptr, si->search_field))
        return herald_fail(err, HERALD_EINVAL, "search index `%s` searches `%s`", index,
                           si->search_field);
    size_t limit = HD_SEARCH_MAX_RESULTS;
    if (take) {
        if (take->type != HERALD_FLOAT64 || take->u.f < 0 || take->u.f > HD_SEARCH_MAX_RESULTS ||
            take->u.f != (double)(size_t)take->u.f)
            return herald_fail(err, HERALD_EINVAL, "take of a search: 0 to %d",
                               HD_SEARCH_MAX_RESULTS);
        limit = (size_t)take->u.f;
    }
    if (first) limit = 1;
    if (filters) {
        if (filters->type != HERALD_ARRAY) return herald_fail(err, HERALD_EINVAL, "bad filters");
        for (size_t i = 0; i < filters->u.arr.len; i++) {
            const herald_value *p = &filters->u.arr.items[i];
            if (p->type != HERALD_ARRAY || p->u.arr.len != 2 ||
                p->u.arr.items[0].type != HERALD_STRING)
                return herald_fail(err, HERALD_EINVAL, "bad search filter");
            size_t k = 0;
            while (k < si->nfilter_fields &&
                   strcmp(si->filter_fields[k], p->u.arr.items[0].u.s.ptr))
                k++;
            if (k == si->nfilter_fields)
                return herald_fail(err, HERALD_EINVAL,
                                   "`%.64s` is not a filter field of search index `%s`",
                                   p->u.arr.items[0].u.s.ptr, index);
        }
    }
    terms q = {0};
    each_term(text->u.s.ptr, text->u.s.len, add_query_term, &q);
    herald_value docs;
    int rc = scan(t, schema, table, filters, &docs, rs, err);
    if (rc) return rc;
    ranked *hits = docs.u.arr.len ? calloc(docs.u.arr.len, sizeof *hits) : NULL;
    size_t nhits = 0;
    if (docs.u.arr.len && !hits) {
        herald_value_free(&docs);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; q.n && i < docs.u.arr.len; i++) {
        herald_value *doc = &docs.u.arr.items[i];
        const herald_value *body = herald_value_path(doc, si->search_field);
        if (!body || body->type != HERALD_STRING) continue;
        scoring sc = {.q = &q};
        each_term(body->u.s.ptr, body->u.s.len, score_term, &sc);
        size_t distinct = 0;
        for (size_t k = 0; k < q.n; k++)
            distinct += sc.hit[k];
        if (!distinct) continue;
        const herald_value *ct = herald_object_get(doc, "_creationTime");
        hits[nhits++] =
            (ranked){distinct, sc.occurrences, ct && ct->type == HERALD_FLOAT64 ? ct->u.f : 0, doc};
    }
    if (nhits > 1) qsort(hits, nhits, sizeof *hits, rank_cmp);
    if (nhits > limit) nhits = limit;
    if (first) {
        *result = herald_null();
        if (nhits) {
            *result = *hits[0].doc;
            *hits[0].doc = herald_undefined();
        }
    } else {
        herald_array_init(result);
        for (size_t i = 0; i < nhits && !rc; i++) {
            rc = herald_array_push(result, *hits[i].doc);
            *hits[i].doc = herald_undefined();
        }
        if (rc) {
            herald_value_free(result);
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        }
    }
    free(hits);
    herald_value_free(&docs);
    return rc;
}
