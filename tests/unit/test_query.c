/*
 * The JSON query form: ranges, order, filters, result shapes, pagination,
 * limits, parse errors, and the read sets that decide invalidation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herald/query.h"
#include "herald/store.h"

static const char *schema_json =
    "{\"tables\":{"
    "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"feed\":{\"type\":\"string\"},"
    "  \"position\":{\"type\":\"number\"},"
    "  \"status\":{\"type\":\"string\",\"optional\":true},"
    "  \"meta\":{\"type\":\"object\",\"optional\":true,\"fields\":{"
    "     \"score\":{\"type\":\"number\"}}}}},"
    "  \"indexes\":[{\"name\":\"by_feed_position\",\"fields\":[\"feed\",\"position\"]},"
    "             {\"name\":\"by_score\",\"fields\":[\"meta.score\"]}]}}}";

static herald_store *store;
static char ids[40][HERALD_ID_CHARS + 1];

static herald_value run(const char *q_json, herald_read_set *rs, int want_rc)
{
    herald_query *q = NULL;
    herald_error err = {0};
    herald_value r = herald_undefined();
    int rc = herald_query_parse(q_json, strlen(q_json), herald_store_schema(store), &q, &err);
    herald_txn *t = NULL;
    if (!rc) rc = herald_read_begin(store, &t, &err);
    if (!rc) rc = herald_query_run(q, t, NULL, &r, rs, &err);
    if (rc != want_rc)
        fprintf(stderr, "query %s: rc %d (%s), wanted %d\n", q_json, rc, err.message, want_rc);
    CHECK(rc == want_rc);
    herald_txn_end(t);
    herald_query_free(q);
    return r;
}

static double pos(const herald_value *doc)
{
    return herald_object_get(doc, "position")->u.f;
}

static const char *feed_of(const herald_value *doc)
{
    return herald_object_get(doc, "feed")->u.s.ptr;
}

/* Feeds a, b, c with positions 0..9 each (b has statuses, c has scores). */
static void load(void)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(store, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    int n = 0;
    for (int f = 0; f < 3; f++)
        for (int p = 9; p >= 0; p--) {
            char doc[200];
            if (f == 1)
                snprintf(doc, sizeof doc, "{\"feed\":\"b\",\"position\":%d,\"status\":\"%s\"}", p,
                         p % 2 ? "ready" : "pending");
            else if (f == 2)
                snprintf(doc, sizeof doc,
                         "{\"feed\":\"c\",\"position\":%d,\"meta\":{\"score\":%d}}", p,
                         (p * 7) % 10);
            else
                snprintf(doc, sizeof doc, "{\"feed\":\"a\",\"position\":%d}", p);
            herald_value v;
            CHECK_OK(herald_value_from_json(doc, strlen(doc), &v, &err));
            CHECK_OK(herald_insert(m, "reels", &v, ids[n++], &err));
            herald_value_free(&v);
        }
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
}

static void test_ranges(void)
{
    herald_value r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
                         "\"range\":[{\"eq\":[\"feed\",\"b\"]},{\"gt\":[\"position\",2]},"
                         "{\"lte\":[\"position\",6]}]}",
                         NULL, 0);
    CHECK(r.u.arr.len == 4);
    for (size_t i = 0; i < r.u.arr.len; i++) {
        CHECK(pos(&r.u.arr.items[i]) == 3.0 + (double)i);
        CHECK(strcmp(feed_of(&r.u.arr.items[i]), "b") == 0);
    }
    herald_value_free(&r);
    r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\",\"order\":\"desc\","
            "\"range\":[{\"eq\":[\"feed\",\"a\"]},{\"gte\":[\"position\",7]}]}",
            NULL, 0);
    CHECK(r.u.arr.len == 3 && pos(&r.u.arr.items[0]) == 9 && pos(&r.u.arr.items[2]) == 7);
    herald_value_free(&r);
    /* Default index by_creation_time: insertion order. */
    r = run("{\"table\":\"reels\",\"take\":3}", NULL, 0);
    CHECK(r.u.arr.len == 3 && pos(&r.u.arr.items[0]) == 9 && pos(&r.u.arr.items[2]) == 7);
    herald_value_free(&r);
    /* A missing nested field sorts first: feeds a and b have no meta.score. */
    r = run("{\"table\":\"reels\",\"index\":\"by_score\",\"range\":[{\"gte\":[\"meta.score\",5]}]}",
            NULL, 0);
    CHECK(r.u.arr.len == 5);
    for (size_t i = 0; i < r.u.arr.len; i++)
        CHECK(herald_value_path(&r.u.arr.items[i], "meta.score")->u.f >= 5);
    herald_value_free(&r);
    /* by_id with eq. */
    char q[300];
    snprintf(q, sizeof q,
             "{\"table\":\"reels\",\"index\":\"by_id\",\"range\":[{\"eq\":[\"_id\",\"%s\"]}]}",
             ids[5]);
    r = run(q, NULL, 0);
    CHECK(r.u.arr.len == 1 &&
          strcmp(herald_object_get(&r.u.arr.items[0], "_id")->u.s.ptr, ids[5]) == 0);
    herald_value_free(&r);
    /* by_id over the whole table: this table's documents only, in id order. */
    r = run("{\"table\":\"reels\",\"index\":\"by_id\"}", NULL, 0);
    CHECK(r.u.arr.len == 30);
    for (size_t i = 1; i < r.u.arr.len; i++)
        CHECK(strcmp(herald_object_get(&r.u.arr.items[i - 1], "_id")->u.s.ptr,
                     herald_object_get(&r.u.arr.items[i], "_id")->u.s.ptr) < 0);
    herald_value_free(&r);
}

static void test_filters_and_shapes(void)
{
    herald_value r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
                         "\"range\":[{\"eq\":[\"feed\",\"b\"]}],"
                         "\"filter\":{\"and\":[{\"eq\":[{\"field\":\"status\"},\"ready\"]},"
                         "{\"not\":{\"lt\":[{\"field\":\"position\"},4]}}]}}",
                         NULL, 0);
    CHECK(r.u.arr.len == 3); /* 5, 7, 9 */
    herald_value_free(&r);
    r = run("{\"table\":\"reels\",\"filter\":{\"or\":[{\"eq\":[{\"field\":\"position\"},3]},"
            "{\"eq\":[{\"field\":\"status\"},\"nope\"]}]}}",
            NULL, 0);
    CHECK(r.u.arr.len == 3);
    herald_value_free(&r);
    /* An expression as an operand stands for its boolean value. */
    r = run("{\"table\":\"reels\",\"filter\":{\"eq\":[{\"not\":{\"eq\":[1,1]}},false]}}", NULL, 0);
    CHECK(r.type == HERALD_ARRAY && r.u.arr.len == 30);
    herald_value_free(&r);
    /* first / unique / get. */
    r = run(
        "{\"table\":\"reels\",\"index\":\"by_feed_position\",\"range\":[{\"eq\":[\"feed\",\"c\"]}],"
        "\"order\":\"desc\",\"first\":true}",
        NULL, 0);
    CHECK(r.type == HERALD_OBJECT && pos(&r) == 9);
    herald_value_free(&r);
    r = run(
        "{\"table\":\"reels\",\"index\":\"by_feed_position\",\"range\":[{\"eq\":[\"feed\",\"z\"]}],"
        "\"first\":true}",
        NULL, 0);
    CHECK(r.type == HERALD_NULL);
    r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
            "\"range\":[{\"eq\":[\"feed\",\"c\"]},{\"eq\":[\"position\",4]}],\"unique\":true}",
            NULL, 0);
    CHECK(r.type == HERALD_OBJECT);
    herald_value_free(&r);
    r = run(
        "{\"table\":\"reels\",\"index\":\"by_feed_position\",\"range\":[{\"eq\":[\"feed\",\"c\"]}],"
        "\"unique\":true}",
        NULL, HERALD_EUNIQUE);
    char q[200];
    snprintf(q, sizeof q, "{\"table\":\"reels\",\"get\":\"%s\"}", ids[0]);
    r = run(q, NULL, 0);
    CHECK(r.type == HERALD_OBJECT);
    herald_value_free(&r);
}

static void test_paginate(void)
{
    /* Walk feed a two at a time while inserting and deleting around the cursor. */
    char cursor[200] = "";
    double seen[40];
    size_t nseen = 0;
    for (int page = 0; page < 20; page++) {
        char q[400];
        snprintf(q, sizeof q,
                 "{\"table\":\"reels\",\"index\":\"by_feed_position\",\"range\":[{\"eq\":[\"feed\","
                 "\"a\"]}],"
                 "\"paginate\":{\"numItems\":2,\"cursor\":%s%s%s}}",
                 cursor[0] ? "\"" : "", cursor[0] ? cursor : "null", cursor[0] ? "\"" : "");
        herald_value r = run(q, NULL, 0);
        const herald_value *items = herald_object_get(&r, "page");
        for (size_t i = 0; i < items->u.arr.len; i++)
            seen[nseen++] = pos(&items->u.arr.items[i]);
        const herald_value *c = herald_object_get(&r, "continueCursor");
        snprintf(cursor, sizeof cursor, "%s", c->u.s.ptr);
        bool done = herald_object_get(&r, "isDone")->u.b;
        herald_value_free(&r);
        if (page == 1) {
            /* Insert before the cursor (not seen) and after it (seen); delete a later one. */
            herald_error err = {0};
            herald_group *g;
            herald_txn *m;
            CHECK_OK(herald_group_begin(store, &g, &err));
            CHECK_OK(herald_mutation_begin(g, &m, &err));
            herald_value v;
            CHECK_OK(herald_value_from_json("{\"feed\":\"a\",\"position\":0.5}",
                                            strlen("{\"feed\":\"a\",\"position\":0.5}"), &v, &err));
            CHECK_OK(herald_insert(m, "reels", &v, NULL, &err));
            herald_value_free(&v);
            CHECK_OK(herald_value_from_json("{\"feed\":\"a\",\"position\":7.5}",
                                            strlen("{\"feed\":\"a\",\"position\":7.5}"), &v, &err));
            CHECK_OK(herald_insert(m, "reels", &v, NULL, &err));
            herald_value_free(&v);
            CHECK_OK(herald_delete(m, ids[1], &err)); /* feed a, position 8 */
            CHECK_OK(herald_mutation_commit(m, NULL, &err));
            CHECK_OK(herald_group_commit(g, &err));
            herald_group_free(g);
        }
        if (done) break;
    }
    double want[] = {0, 1, 2, 3, 4, 5, 6, 7, 7.5, 9};
    CHECK(nseen == 10);
    for (size_t i = 0; i < nseen && i < 10; i++)
        CHECK(seen[i] == want[i]);
    /* A cursor of another index is refused. */
    char q[400];
    snprintf(q, sizeof q, "{\"table\":\"reels\",\"paginate\":{\"numItems\":2,\"cursor\":\"%s\"}}",
             cursor);
    run(q, NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"paginate\":{\"numItems\":2,\"cursor\":\"!!\"}}", NULL,
        HERALD_EINVAL);
}

static void test_errors_and_limits(void)
{
    run("{\"table\":\"nope\"}", NULL, HERALD_ENOTFOUND);
    run("{\"table\":\"reels\",\"index\":\"nope\",\"range\":[]}", NULL, HERALD_ENOTFOUND);
    run("{\"table\":\"reels\",\"index\":\"by_feed_position\",\"range\":[{\"eq\":[\"position\",1]}]"
        "}",
        NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
        "\"range\":[{\"gt\":[\"feed\",\"a\"]},{\"eq\":[\"position\",1]}]}",
        NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"take\":-1}", NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"paginate\":{\"numItems\":0}}", NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"take\":1,\"first\":true}", NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"filter\":{\"like\":[1,2]}}", NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\",\"bogus\":1}", NULL, HERALD_EINVAL);
    run("[1]", NULL, HERALD_EINVAL);
    run("{\"table\":\"reels\"", NULL, HERALD_EINVAL);
    /* Deeply nested filters are refused, not recursed into without end. */
    char deep[4000] = "{\"table\":\"reels\",\"filter\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"not\":");
    strcat(deep, "{\"eq\":[1,1]}");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    strcat(deep, "}");
    run(deep, NULL, HERALD_ELIMIT);
    /* The read limit. */
    herald_query *q;
    herald_error err = {0};
    const char *all = "{\"table\":\"reels\"}";
    CHECK_OK(herald_query_parse(all, strlen(all), herald_store_schema(store), &q, &err));
    herald_txn *t;
    CHECK_OK(herald_read_begin(store, &t, &err));
    herald_query_limits lim = {.max_docs = 5};
    herald_value r;
    CHECK(herald_query_run(q, t, &lim, &r, NULL, &err) == HERALD_ELIMIT);
    CHECK(strstr(err.message, "5 documents") != NULL);
    herald_txn_end(t);
    herald_query_free(q);
}

/* Writes one document change and reports whether it overlaps `rs`. */
static bool write_overlaps(const herald_read_set *rs, const char *id, const char *patch_json)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(store, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value p;
    CHECK_OK(herald_value_from_json(patch_json, strlen(patch_json), &p, &err));
    CHECK_OK(herald_patch(m, id, &p, &err));
    herald_value_free(&p);
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    bool o = herald_read_set_overlaps(rs, herald_group_write_set(g, 0));
    herald_group_free(g);
    return o;
}

static void test_read_sets(void)
{
    /* A query over feed b's reels is not touched by writes to feed c... */
    herald_read_set rs;
    herald_read_set_init(&rs);
    herald_value r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
                         "\"range\":[{\"eq\":[\"feed\",\"b\"]}]}",
                         &rs, 0);
    herald_value_free(&r);
    CHECK(rs.len == 1);
    CHECK(!write_overlaps(&rs, ids[25], "{\"position\":100}")); /* a reel of feed c */
    /* ...but is by a write to one of its reels, and by a reel moving into it. */
    CHECK(write_overlaps(&rs, ids[12], "{\"status\":\"x\"}"));
    CHECK(write_overlaps(&rs, ids[26], "{\"feed\":\"b\"}"));
    herald_read_set_free(&rs);

    /* take(2) reads only the first two: a change far down the range does not touch it. */
    herald_read_set_init(&rs);
    r = run("{\"table\":\"reels\",\"index\":\"by_feed_position\","
            "\"range\":[{\"eq\":[\"feed\",\"c\"]}],\"take\":2}",
            &rs, 0);
    CHECK(r.u.arr.len == 2);
    herald_value_free(&r);
    CHECK(!write_overlaps(&rs, ids[20], "{\"meta\":{\"score\":1}}")); /* c, position 9 */
    /* A new document at the front of the range does. */
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(store, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value v;
    CHECK_OK(herald_value_from_json("{\"feed\":\"c\",\"position\":-1}",
                                    strlen("{\"feed\":\"c\",\"position\":-1}"), &v, &err));
    CHECK_OK(herald_insert(m, "reels", &v, NULL, &err));
    herald_value_free(&v);
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    CHECK(herald_read_set_overlaps(&rs, herald_group_write_set(g, 0)));
    herald_group_free(g);
    herald_read_set_free(&rs);

    /* A get reads one document: only writes to it overlap, also after a delete. */
    herald_read_set_init(&rs);
    char q[200];
    snprintf(q, sizeof q, "{\"table\":\"reels\",\"get\":\"%s\"}", ids[3]);
    r = run(q, &rs, 0);
    herald_value_free(&r);
    CHECK(!write_overlaps(&rs, ids[4], "{\"position\":44}"));
    CHECK(write_overlaps(&rs, ids[3], "{\"position\":33}"));
    herald_read_set_free(&rs);
}

int main(void)
{
    char tmpl[] = "/tmp/herald-test-query-XXXXXX";
    const char *dir = mkdtemp(tmpl);
    herald_store_options o = {.no_sync = true};
    herald_error err = {0};
    herald_schema *schema;
    CHECK_OK(herald_store_open(dir, &o, &store, &err));
    CHECK_OK(herald_schema_from_json(schema_json, strlen(schema_json), "test", &schema, &err));
    CHECK_OK(herald_store_set_schema(store, schema, &err));
    load();
    test_ranges();
    test_filters_and_shapes();
    test_errors_and_limits();
    test_paginate();
    test_read_sets();
    CHECK_OK(herald_store_check(store, NULL, NULL, &err));
    herald_store_close(store);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    CHECK_DONE();
}
