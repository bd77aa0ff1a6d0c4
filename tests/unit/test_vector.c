/*
 * Vector search (src/vector.c): results against a brute-force model in
 * double precision, filters, snapshots (an old snapshot keeps its
 * neighbours after later commits), a mutation seeing its own writes, the
 * read set, random writes and searches, and every refused input.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "herald/query.h"
#include "herald/store.h"
#include "vector.h"

#define DIMS 5

static char dir_template[] = "/tmp/herald-test-vector-XXXXXX";

static const char *schema_json =
    "{\"tables\":{\"items\":{\"document\":{\"type\":\"any\"},\"indexes\":[],"
    "\"vectorIndexes\":[{\"name\":\"by_emb\",\"vectorField\":\"emb\",\"dimensions\":5,"
    "\"filterFields\":[\"kind\",\"n\"]}]},"
    "\"other\":{\"document\":{\"type\":\"any\"},\"indexes\":[]}}}";

static double rnd(void)
{
    return (double)(check_rand() % 2001) / 1000.0 - 1.0;
}

static herald_value number_array(const double *x, size_t n)
{
    herald_value a;
    herald_array_init(&a);
    for (size_t i = 0; i < n; i++)
        herald_array_push(&a, herald_float64(x[i]));
    return a;
}

/* A document {emb, kind, n}; emb left out when dims is 0. */
static herald_value make_doc(const double *emb, size_t dims, const char *kind, double n)
{
    herald_value d, s;
    herald_object_init(&d);
    if (dims) herald_object_set(&d, "emb", 3, number_array(emb, dims));
    herald_string(&s, kind, strlen(kind));
    herald_object_set(&d, "kind", 4, s);
    herald_object_set(&d, "n", 1, herald_float64(n));
    return d;
}

typedef struct spec_opts {
    const double *vec;
    size_t dims;
    double limit; /* 0: none */
    const char *filter_json; /* NULL: none */
    const char *index;
    const char *table;
} spec_opts;

static herald_value make_spec(spec_opts o)
{
    herald_value spec, s;
    herald_object_init(&spec);
    const char *table = o.table ? o.table : "items", *index = o.index ? o.index : "by_emb";
    herald_string(&s, table, strlen(table));
    herald_object_set(&spec, "table", 5, s);
    herald_string(&s, index, strlen(index));
    herald_object_set(&spec, "index", 5, s);
    herald_object_set(&spec, "vector", 6, number_array(o.vec, o.dims));
    if (o.limit) herald_object_set(&spec, "limit", 5, herald_float64(o.limit));
    if (o.filter_json) {
        herald_value f;
        herald_error err = {0};
        if (herald_value_from_json(o.filter_json, strlen(o.filter_json), &f, &err)) exit(1);
        herald_object_set(&spec, "filter", 6, f);
    }
    return spec;
}

static int search(herald_txn *t, spec_opts o, herald_value *out, herald_read_set *rs,
                  herald_error *err)
{
    herald_value spec = make_spec(o);
    int rc = hd__vector_search(t, &spec, out, rs, err);
    herald_value_free(&spec);
    return rc;
}

/* ---- the model: every document of a snapshot, scored in double ---- */

typedef struct ref_hit {
    double score;
    char id[64];
} ref_hit;

typedef struct model {
    const double *q;
    const char *kinds[4]; /* filter: kind in kinds (NULL-ended); kinds[0] NULL: all */
    ref_hit hits[4096];
    size_t n;
} model;

static int model_doc(void *ctx, const herald_value *doc)
{
    model *m = ctx;
    const herald_value *e = herald_object_get(doc, "emb");
    if (!e || e->type != HERALD_ARRAY || e->u.arr.len != DIMS) return 0;
    double dot = 0, nd = 0, nq = 0;
    for (size_t i = 0; i < DIMS; i++) {
        if (e->u.arr.items[i].type != HERALD_FLOAT64 || !isfinite(e->u.arr.items[i].u.f))
            return 0;
        double x = e->u.arr.items[i].u.f;
        dot += x * m->q[i];
        nd += x * x;
        nq += m->q[i] * m->q[i];
    }
    if (nd == 0) return 0;
    if (m->kinds[0]) {
        const herald_value *k = herald_object_get(doc, "kind");
        bool ok = false;
        for (size_t i = 0; m->kinds[i]; i++)
            ok |= k && k->type == HERALD_STRING && !strcmp(k->u.s.ptr, m->kinds[i]);
        if (!ok) return 0;
    }
    ref_hit *h = &m->hits[m->n++];
    h->score = dot / sqrt(nd) / sqrt(nq);
    snprintf(h->id, sizeof h->id, "%s", herald_object_get(doc, "_id")->u.s.ptr);
    return 0;
}

static int ref_cmp(const void *a, const void *b)
{
    const ref_hit *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score;
}

/* Checks `got` against the model of snapshot `t`. */
static void check_against_model(herald_txn *t, const herald_value *got, const double *q,
                                size_t limit, const char *k1, const char *k2)
{
    static model m;
    m = (model){.q = q, .kinds = {k1, k2, NULL}};
    herald_error err = {0};
    CHECK_OK(herald_table_scan(t, "items", model_doc, &m, &err));
    qsort(m.hits, m.n, sizeof *m.hits, ref_cmp);
    size_t want = m.n < limit ? m.n : limit;
    CHECK(got->type == HERALD_ARRAY);
    CHECK(got->u.arr.len == want);
    for (size_t i = 0; i < got->u.arr.len && i < want; i++) {
        const herald_value *h = &got->u.arr.items[i];
        const herald_value *id = herald_object_get(h, "_id"), *sc = herald_object_get(h, "_score");
        CHECK(id && id->type == HERALD_STRING && sc && sc->type == HERALD_FLOAT64);
        if (!id || !sc) continue;
        /* Rank by rank the scores agree (ties may swap ids) ... */
        CHECK(fabs(sc->u.f - m.hits[i].score) < 1e-5);
        /* ... and each id's score is its own. */
        bool found = false;
        for (size_t j = 0; j < m.n && !found; j++)
            if (!strcmp(m.hits[j].id, id->u.s.ptr)) {
                found = true;
                CHECK(fabs(m.hits[j].score - sc->u.f) < 1e-5);
            }
        CHECK(found);
        if (i) {
            const herald_value *prev = herald_object_get(&got->u.arr.items[i - 1], "_score");
            CHECK(prev->u.f >= sc->u.f);
        }
    }
}

/* ---- writes ---- */

static herald_group *group;
static herald_txn *mut;

static void begin(herald_store *s)
{
    herald_error err = {0};
    CHECK_OK(herald_group_begin(s, &group, &err));
    CHECK_OK(herald_mutation_begin(group, &mut, &err));
}

static void commit(void)
{
    herald_error err = {0};
    CHECK_OK(herald_mutation_commit(mut, NULL, &err));
    CHECK_OK(herald_group_commit(group, &err));
    herald_group_free(group);
    group = NULL;
    mut = NULL;
}

/* Writes document `d` (taken) as `id` in the open mutation: replaced if it is there, else inserted. */
static void upsert(char *id, herald_value *d)
{
    herald_error err = {0};
    herald_value cur;
    if (herald_get(mut, "items", id, &cur, NULL, &err) == 0) {
        herald_value_free(&cur);
        CHECK_OK(herald_replace(mut, id, d, &err));
    } else {
        CHECK_OK(herald_insert(mut, "items", d, id, &err));
    }
    herald_value_free(d);
}

static const char *kinds[] = {"a", "b", "c"};

static void insert_random(herald_store *s, size_t n, char ids[][HERALD_ID_CHARS + 1])
{
    herald_error err = {0};
    begin(s);
    for (size_t i = 0; i < n; i++) {
        double e[DIMS];
        for (size_t k = 0; k < DIMS; k++)
            e[k] = rnd();
        size_t dims = DIMS;
        if (i % 17 == 3) dims = 0;        /* no vector: not in the index */
        if (i % 19 == 4) dims = DIMS - 1; /* wrong length: not in the index */
        herald_value d = make_doc(e, dims, kinds[i % 3], (double)(i % 4));
        CHECK_OK(herald_insert(mut, "items", &d, ids[i], &err));
        herald_value_free(&d);
    }
    commit();
}

static void test_basic(herald_store *s, char ids[][HERALD_ID_CHARS + 1], size_t n)
{
    herald_error err = {0};
    herald_txn *t;
    CHECK_OK(herald_read_begin(s, &t, &err));
    for (int round = 0; round < 20; round++) {
        double q[DIMS];
        for (size_t k = 0; k < DIMS; k++)
            q[k] = rnd();
        herald_value got;
        CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS}, &got, NULL, &err));
        check_against_model(t, &got, q, HD_VECTOR_DEFAULT_LIMIT, NULL, NULL);
        herald_value_free(&got);
        CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 256}, &got, NULL, &err));
        check_against_model(t, &got, q, 256, NULL, NULL);
        herald_value_free(&got);
        CHECK_OK(search(t,
                        (spec_opts){.vec = q, .dims = DIMS, .limit = 7,
                                    .filter_json = "[[\"kind\",\"b\"]]"},
                        &got, NULL, &err));
        check_against_model(t, &got, q, 7, "b", NULL);
        herald_value_free(&got);
        CHECK_OK(search(t,
                        (spec_opts){.vec = q, .dims = DIMS, .limit = 30,
                                    .filter_json = "[[\"kind\",\"a\"],[\"kind\",\"c\"]]"},
                        &got, NULL, &err));
        check_against_model(t, &got, q, 30, "a", "c");
        herald_value_free(&got);
        /* An empty q.or() matches nothing; a value nobody has, nothing. */
        CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS, .filter_json = "[]"}, &got, NULL,
                        &err));
        CHECK(got.type == HERALD_ARRAY && got.u.arr.len == 0);
        herald_value_free(&got);
        CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS, .filter_json = "[[\"n\",9]]"},
                        &got, NULL, &err));
        CHECK(got.type == HERALD_ARRAY && got.u.arr.len == 0);
        herald_value_free(&got);
    }
    /* The exact vector of a document finds it first, with score 1. */
    herald_value doc;
    CHECK_OK(herald_get(t, "items", ids[0], &doc, NULL, &err));
    const herald_value *e = herald_object_get(&doc, "emb");
    double q[DIMS];
    for (size_t k = 0; k < DIMS; k++)
        q[k] = e->u.arr.items[k].u.f * 3; /* the length does not matter */
    herald_value got;
    CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 1}, &got, NULL, &err));
    CHECK(got.u.arr.len == 1);
    CHECK(!strcmp(herald_object_get(&got.u.arr.items[0], "_id")->u.s.ptr, ids[0]));
    CHECK(fabs(herald_object_get(&got.u.arr.items[0], "_score")->u.f - 1) < 1e-6);
    herald_value_free(&got);
    herald_value_free(&doc);
    herald_txn_end(t);
    (void)n;
}

static void test_refusals(herald_store *s)
{
    herald_error err = {0};
    herald_txn *t;
    CHECK_OK(herald_read_begin(s, &t, &err));
    double q[DIMS + 1] = {1, 2, 3, 4, 5, 6};
    herald_value got;
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS - 1}, &got, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "has 4 dimensions; vector index `by_emb` has 5"));
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS + 1}, &got, NULL, &err) == HERALD_EINVAL);
    double bad[DIMS] = {1, NAN, 0, 0, 0};
    CHECK(search(t, (spec_opts){.vec = bad, .dims = DIMS}, &got, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "vector[1] is NaN"));
    bad[1] = INFINITY;
    CHECK(search(t, (spec_opts){.vec = bad, .dims = DIMS}, &got, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "infinite"));
    double zero[DIMS] = {0};
    CHECK(search(t, (spec_opts){.vec = zero, .dims = DIMS}, &got, NULL, &err) == HERALD_EINVAL);
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = -1}, &got, NULL, &err) ==
          HERALD_EINVAL);
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 257}, &got, NULL, &err) ==
          HERALD_EINVAL);
    CHECK(strstr(err.message, "limit must be 1 to 256"));
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 2.5}, &got, NULL, &err) ==
          HERALD_EINVAL);
    /* limit 0: spec_opts treats 0 as absent, so build it by hand. */
    herald_value spec = make_spec((spec_opts){.vec = q, .dims = DIMS});
    herald_object_set(&spec, "limit", 5, herald_float64(0));
    CHECK(hd__vector_search(t, &spec, &got, NULL, &err) == HERALD_EINVAL);
    herald_value_free(&spec);
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .filter_json = "[[\"emb\",1]]"}, &got,
                 NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "`emb` is not a filter field of vector index `by_emb`"));
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .index = "by_nothing"}, &got, NULL,
                 &err) == HERALD_ENOTFOUND);
    CHECK(strstr(err.message, "no vector index `by_nothing`"));
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .table = "other"}, &got, NULL, &err) ==
          HERALD_ENOTFOUND);
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .table = "nope"}, &got, NULL, &err) ==
          HERALD_ENOTFOUND);
    /* Not numbers. */
    herald_value spec2 = make_spec((spec_opts){.vec = q, .dims = DIMS});
    herald_value *vec = (herald_value *)herald_object_get(&spec2, "vector");
    herald_value_free(&vec->u.arr.items[2]);
    herald_string(&vec->u.arr.items[2], "x", 1);
    CHECK(hd__vector_search(t, &spec2, &got, NULL, &err) == HERALD_EINVAL);
    herald_value_free(&spec2);
    herald_txn_end(t);
}

/* An old snapshot keeps its neighbours; a new one sees the writes; a mutation its own. */
static void test_snapshots(herald_store *s, char ids[][HERALD_ID_CHARS + 1])
{
    herald_error err = {0};
    double q[DIMS] = {0.3, -0.2, 0.9, 0.1, -0.5};
    herald_txn *old;
    CHECK_OK(herald_read_begin(s, &old, &err));
    herald_value before;
    CHECK_OK(search(old, (spec_opts){.vec = q, .dims = DIMS}, &before, NULL, &err));
    check_against_model(old, &before, q, 10, NULL, NULL);

    /* Move ids[5] onto the query, delete the current best. */
    const char *best = herald_object_get(&before.u.arr.items[0], "_id")->u.s.ptr;
    begin(s);
    herald_value d = make_doc(q, DIMS, "a", 1);
    CHECK_OK(herald_replace(mut, ids[5], &d, &err));
    herald_value_free(&d);
    if (strcmp(best, ids[5])) CHECK_OK(herald_delete(mut, best, &err));
    /* The mutation sees its own writes. */
    herald_value mine;
    CHECK_OK(search(mut, (spec_opts){.vec = q, .dims = DIMS}, &mine, NULL, &err));
    CHECK(!strcmp(herald_object_get(&mine.u.arr.items[0], "_id")->u.s.ptr, ids[5]));
    check_against_model(mut, &mine, q, 10, NULL, NULL);
    herald_value_free(&mine);
    /* A read set over the table overlaps the write. */
    herald_read_set rs;
    herald_read_set_init(&rs);
    herald_txn *r0;
    CHECK_OK(herald_read_begin(s, &r0, &err));
    herald_value tmp;
    CHECK_OK(search(r0, (spec_opts){.vec = q, .dims = DIMS}, &tmp, &rs, &err));
    herald_value_free(&tmp);
    herald_txn_end(r0);
    commit();

    herald_txn *now;
    CHECK_OK(herald_read_begin(s, &now, &err));
    herald_value after;
    CHECK_OK(search(now, (spec_opts){.vec = q, .dims = DIMS}, &after, NULL, &err));
    CHECK(!strcmp(herald_object_get(&after.u.arr.items[0], "_id")->u.s.ptr, ids[5]));
    check_against_model(now, &after, q, 10, NULL, NULL);
    herald_value_free(&after);
    herald_txn_end(now);

    /* The old snapshot, searched after the new one applied the writes. */
    herald_value again;
    CHECK_OK(search(old, (spec_opts){.vec = q, .dims = DIMS}, &again, NULL, &err));
    CHECK(herald_value_compare(&before, &again) == 0);
    herald_value_free(&again);
    herald_value_free(&before);
    herald_txn_end(old);

    /* The next write to the table is in the read set. */
    begin(s);
    double e[DIMS] = {1, 1, 1, 1, 1};
    herald_value d2 = make_doc(e, DIMS, "b", 2);
    char id[HERALD_ID_CHARS + 1];
    CHECK_OK(herald_insert(mut, "items", &d2, id, &err));
    herald_value_free(&d2);
    CHECK_OK(herald_mutation_commit(mut, NULL, &err));
    CHECK(herald_read_set_overlaps(&rs, herald_group_write_set(group, 0)));
    CHECK_OK(herald_group_commit(group, &err));
    herald_group_free(group);
    herald_read_set_free(&rs);
    /* A write to another table is not. */
    herald_read_set_init(&rs);
    CHECK_OK(herald_read_begin(s, &r0, &err));
    CHECK_OK(search(r0, (spec_opts){.vec = q, .dims = DIMS}, &tmp, &rs, &err));
    herald_value_free(&tmp);
    herald_txn_end(r0);
    CHECK_OK(herald_group_begin(s, &group, &err));
    CHECK_OK(herald_mutation_begin(group, &mut, &err));
    herald_value other;
    herald_object_init(&other);
    CHECK_OK(herald_insert(mut, "other", &other, id, &err));
    herald_value_free(&other);
    CHECK_OK(herald_mutation_commit(mut, NULL, &err));
    CHECK(!herald_read_set_overlaps(&rs, herald_group_write_set(group, 0)));
    CHECK_OK(herald_group_commit(group, &err));
    herald_group_free(group);
    herald_read_set_free(&rs);
}

static void replace_random(herald_store *s, char ids[][HERALD_ID_CHARS + 1], size_t n,
                           size_t count)
{
    begin(s);
    for (size_t c = 0; c < count; c++) {
        size_t i = c < n ? c : check_rand() % n;
        double e[DIMS];
        for (size_t k = 0; k < DIMS; k++)
            e[k] = rnd();
        herald_value d = make_doc(e, DIMS, kinds[i % 3], 2);
        upsert(ids[i], &d);
    }
    commit();
}

static void search_matches_model(herald_txn *t, const char *what)
{
    herald_error err = {0};
    for (int k = 0; k < 5; k++) {
        double q[DIMS];
        for (size_t j = 0; j < DIMS; j++)
            q[j] = rnd();
        herald_value got;
        int rc = search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 50}, &got, NULL, &err);
        CHECK(rc == 0);
        if (rc) {
            fprintf(stderr, "%s: %s\n", what, err.message);
            continue;
        }
        check_against_model(t, &got, q, 50, NULL, NULL);
        herald_value_free(&got);
    }
}

/*
 * Older snapshots after a newer search applied writes: a document written
 * twice between two searches (its state in between is in no row), and
 * rows dropped by a compaction.
 */
static void test_history(herald_store *s, char ids[][HERALD_ID_CHARS + 1], size_t n)
{
    herald_error err = {0};
    herald_txn *fresh;
    CHECK_OK(herald_read_begin(s, &fresh, &err));
    search_matches_model(fresh, "rows up to date");
    herald_txn_end(fresh);
    herald_txn *before, *between;
    CHECK_OK(herald_read_begin(s, &before, &err));
    replace_random(s, ids, 20, 20);
    CHECK_OK(herald_read_begin(s, &between, &err));
    replace_random(s, ids, 20, 20);
    CHECK_OK(herald_read_begin(s, &fresh, &err));
    search_matches_model(fresh, "after two writes to the same documents");
    herald_txn_end(fresh);
    search_matches_model(between, "a snapshot between the two writes");
    search_matches_model(before, "a snapshot before both");
    herald_txn_end(between);
    /* Enough replaced rows for a compaction. */
    replace_random(s, ids, n, n);
    CHECK_OK(herald_read_begin(s, &fresh, &err));
    search_matches_model(fresh, "after the compaction");
    herald_txn_end(fresh);
    search_matches_model(before, "a snapshot older than the compaction");
    herald_txn_end(before);
}

/* Random inserts, replaces and deletes, several mutations per group, searched throughout. */
static void test_random(herald_store *s, char ids[][HERALD_ID_CHARS + 1], size_t n)
{
    herald_error err = {0};
    for (int round = 0; round < 150; round++) {
        CHECK_OK(herald_group_begin(s, &group, &err));
        int muts = 1 + (int)(check_rand() % 3);
        for (int mi = 0; mi < muts; mi++) {
            CHECK_OK(herald_mutation_begin(group, &mut, &err));
            int ops = 1 + (int)(check_rand() % 4);
            for (int o = 0; o < ops; o++) {
                size_t i = check_rand() % n;
                double e[DIMS];
                for (size_t k = 0; k < DIMS; k++)
                    e[k] = rnd();
                unsigned what = (unsigned)(check_rand() % 4);
                herald_value d = make_doc(e, what == 3 ? 0 : DIMS, kinds[check_rand() % 3], 0);
                herald_value cur;
                bool exists = herald_get(mut, "items", ids[i], &cur, NULL, &err) == 0;
                if (exists) herald_value_free(&cur);
                if (!exists)
                    CHECK_OK(herald_insert(mut, "items", &d, ids[i], &err));
                else if (what == 0)
                    CHECK_OK(herald_delete(mut, ids[i], &err));
                else
                    CHECK_OK(herald_replace(mut, ids[i], &d, &err));
                herald_value_free(&d);
            }
            double q[DIMS];
            for (size_t k = 0; k < DIMS; k++)
                q[k] = rnd();
            herald_value got;
            CHECK_OK(search(mut, (spec_opts){.vec = q, .dims = DIMS, .limit = 20}, &got, NULL,
                            &err));
            check_against_model(mut, &got, q, 20, NULL, NULL);
            herald_value_free(&got);
            if (check_rand() % 5 == 0)
                herald_mutation_abort(mut);
            else
                CHECK_OK(herald_mutation_commit(mut, NULL, &err));
        }
        CHECK_OK(herald_group_commit(group, &err));
        herald_group_free(group);
        if (round % 3 == 0) continue; /* let notes pile up between searches */
        herald_txn *t;
        CHECK_OK(herald_read_begin(s, &t, &err));
        double q[DIMS];
        for (size_t k = 0; k < DIMS; k++)
            q[k] = rnd();
        herald_value got;
        CHECK_OK(search(t,
                        (spec_opts){.vec = q, .dims = DIMS, .limit = 15,
                                    .filter_json = "[[\"kind\",\"c\"],[\"kind\",\"b\"]]"},
                        &got, NULL, &err));
        check_against_model(t, &got, q, 15, "c", "b");
        herald_value_free(&got);
        herald_txn_end(t);
    }
}

/* Two threads search (each checks its snapshot against the model) while this one writes. */
typedef struct reader_arg {
    herald_store *s;
    int searches;
    unsigned long long seed;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    herald_error err = {0};
    unsigned long long x = a->seed;
    for (int i = 0; i < a->searches; i++) {
        herald_txn *t;
        if (herald_read_begin(a->s, &t, &err)) continue;
        double q[DIMS];
        for (size_t k = 0; k < DIMS; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            q[k] = (double)(x % 2001) / 1000.0 - 1.0;
        }
        herald_value got;
        int rc = search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 12}, &got, NULL, &err);
        CHECK(rc == 0);
        /* The model's scan runs after the search, in the same snapshot. */
        if (!rc) {
            static pthread_mutex_t model_lock = PTHREAD_MUTEX_INITIALIZER;
            pthread_mutex_lock(&model_lock);
            check_against_model(t, &got, q, 12, NULL, NULL);
            pthread_mutex_unlock(&model_lock);
            herald_value_free(&got);
        }
        herald_txn_end(t);
    }
    return NULL;
}

static void test_threads(herald_store *s, char ids[][HERALD_ID_CHARS + 1], size_t n)
{
    pthread_t th[2];
    reader_arg args[2] = {{s, 300, 11}, {s, 300, 12345}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reader, &args[i]);
    for (int round = 0; round < 200; round++) {
        begin(s);
        size_t i = check_rand() % n;
        double e[DIMS];
        for (size_t k = 0; k < DIMS; k++)
            e[k] = rnd();
        herald_value d = make_doc(e, DIMS, kinds[i % 3], 1);
        upsert(ids[i], &d);
        commit();
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
}

int main(void)
{
    const char *dir = mkdtemp(dir_template);
    CHECK(dir != NULL);
    herald_store *s = NULL;
    herald_error err = {0};
    herald_store_options o = {.no_sync = true};
    CHECK_OK(herald_store_open(dir, &o, &s, &err));
    herald_schema *schema = NULL;
    CHECK_OK(herald_schema_from_json(schema_json, strlen(schema_json), "test", &schema, &err));
    if (err.message[0]) fprintf(stderr, "%s\n", err.message);
    CHECK_OK(herald_store_set_schema(s, schema, &err));
    enum { N = 400 };
    static char ids[N][HERALD_ID_CHARS + 1];
    insert_random(s, N, ids);
    test_basic(s, ids, N);
    test_refusals(s);
    test_snapshots(s, ids);
    test_history(s, ids, N);
    test_random(s, ids, N);
    test_threads(s, ids, N);
    /* A schema change drops the rows; the next search builds them for the new index. */
    const char *schema2 =
        "{\"tables\":{\"items\":{\"document\":{\"type\":\"any\"},\"indexes\":[],"
        "\"vectorIndexes\":[{\"name\":\"by_emb\",\"vectorField\":\"emb\",\"dimensions\":5,"
        "\"filterFields\":[\"kind\"]}]},"
        "\"other\":{\"document\":{\"type\":\"any\"},\"indexes\":[]}}}";
    CHECK_OK(herald_schema_from_json(schema2, strlen(schema2), "test", &schema, &err));
    CHECK_OK(herald_store_set_schema(s, schema, &err));
    herald_txn *t;
    CHECK_OK(herald_read_begin(s, &t, &err));
    double q[DIMS] = {0.5, 0.1, -0.3, 0.7, 0.2};
    herald_value got;
    CHECK(search(t, (spec_opts){.vec = q, .dims = DIMS, .filter_json = "[[\"n\",1]]"}, &got, NULL,
                 &err) == HERALD_EINVAL);
    CHECK_OK(search(t, (spec_opts){.vec = q, .dims = DIMS, .limit = 40,
                                   .filter_json = "[[\"kind\",\"a\"]]"},
                    &got, NULL, &err));
    check_against_model(t, &got, q, 40, "a", NULL);
    herald_value_free(&got);
    herald_txn_end(t);
    herald_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
