/*
 * The store: documents, validation, ids, groups and nested mutations,
 * versions, schema changes, long index keys, map growth and the check;
 * idempotency records (scopes, conflicts, expiry, the purge) and the
 * data folder's writer lock.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "check.h"
#include "herald/query.h"
#include "herald/store.h"

static char dir_template[] = "/tmp/herald-test-store-XXXXXX";
static const char *dir;

static const char *schema_v1 =
    "{\"tables\":{"
    "\"feeds\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"userId\":{\"type\":\"string\"},"
    "  \"status\":{\"type\":\"union\",\"members\":[{\"type\":\"literal\",\"value\":\"pending\"},"
    "            {\"type\":\"literal\",\"value\":\"ready\"}]}}},"
    "  \"indexes\":[{\"name\":\"by_user\",\"fields\":[\"userId\"]}]},"
    "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"feedId\":{\"type\":\"id\",\"table\":\"feeds\"},"
    "  \"position\":{\"type\":\"number\"},"
    "  \"title\":{\"type\":\"string\"},"
    "  \"meta\":{\"type\":\"any\",\"optional\":true}}},"
    "  \"indexes\":[{\"name\":\"by_feed_position\",\"fields\":[\"feedId\",\"position\"]},"
    "             {\"name\":\"by_title\",\"fields\":[\"title\"]}]}}}";

static herald_schema *schema_of(const char *json)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = herald_schema_from_json(json, strlen(json), "test", &s, &err);
    if (rc) fprintf(stderr, "schema: %s\n", err.message);
    CHECK(rc == 0);
    return s;
}

static herald_store *open_store(const herald_store_options *o)
{
    herald_store *s = NULL;
    herald_error err = {0};
    int rc = herald_store_open(dir, o, &s, &err);
    if (rc) fprintf(stderr, "open: %s\n", err.message);
    CHECK(rc == 0);
    return s;
}

/* Runs one mutation that inserts `doc_json` into `table`; returns the rc. */
static int insert1(herald_store *s, const char *table, const char *doc_json, char *id,
                   herald_error *err)
{
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, err));
    CHECK_OK(herald_mutation_begin(g, &m, err));
    herald_value doc = json(doc_json);
    int rc = herald_insert(m, table, &doc, id, err);
    herald_value_free(&doc);
    if (rc)
        herald_mutation_abort(m);
    else
        CHECK_OK(herald_mutation_commit(m, NULL, err));
    CHECK_OK(herald_group_commit(g, err));
    herald_group_free(g);
    return rc;
}

static int count(herald_store *s, const char *table)
{
    herald_txn *t;
    herald_error err;
    uint64_t n = 0;
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_table_count(t, table, &n, &err));
    herald_txn_end(t);
    return (int)n;
}

static void check_ok(herald_store *s)
{
    herald_error err = {0};
    int rc = herald_store_check(s, NULL, NULL, &err);
    if (rc) fprintf(stderr, "check: %s\n", err.message);
    CHECK(rc == 0);
}

static void test_documents(herald_store *s)
{
    herald_error err = {0};
    char feed[HERALD_ID_CHARS + 1], reel[HERALD_ID_CHARS + 1];
    CHECK_OK(insert1(s, "feeds", "{\"userId\":\"u1\",\"status\":\"pending\"}", feed, &err));
    CHECK(strlen(feed) == HERALD_ID_CHARS);
    char doc[300];
    snprintf(doc, sizeof doc, "{\"feedId\":\"%s\",\"position\":1,\"title\":\"a\"}", feed);
    CHECK_OK(insert1(s, "reels", doc, reel, &err));

    /* Validation: wrong type, missing field, extra field, unknown literal. */
    CHECK(insert1(s, "feeds", "{\"userId\":5,\"status\":\"pending\"}", NULL, &err) ==
          HERALD_EVALIDATION);
    CHECK(strstr(err.message, "userId") != NULL);
    CHECK(insert1(s, "feeds", "{\"status\":\"pending\"}", NULL, &err) == HERALD_EVALIDATION);
    CHECK(insert1(s, "feeds", "{\"userId\":\"u\",\"status\":\"pending\",\"x\":1}", NULL, &err) ==
          HERALD_EVALIDATION);
    CHECK(insert1(s, "feeds", "{\"userId\":\"u\",\"status\":\"gone\"}", NULL, &err) ==
          HERALD_EVALIDATION);
    CHECK(insert1(s, "nope", "{}", NULL, &err) == HERALD_ENOTFOUND);
    /* System fields cannot be written. */
    CHECK(insert1(s, "feeds", "{\"userId\":\"u\",\"status\":\"ready\",\"_id\":\"x\"}", NULL,
                  &err) == HERALD_EINVAL);
    /* v.id("feeds") refuses an id of another table, and garbage. */
    snprintf(doc, sizeof doc, "{\"feedId\":\"%s\",\"position\":1,\"title\":\"a\"}", reel);
    CHECK(insert1(s, "reels", doc, NULL, &err) == HERALD_EVALIDATION);
    CHECK(insert1(s, "reels", "{\"feedId\":\"zzz\",\"position\":1,\"title\":\"a\"}", NULL, &err) ==
          HERALD_EVALIDATION);

    herald_group *g;
    herald_txn *m, *t;
    herald_value v;
    /* get: by id, of the right table only. */
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_get(t, "feeds", feed, &v, NULL, &err));
    CHECK(strcmp(herald_object_get(&v, "userId")->u.s.ptr, "u1") == 0);
    CHECK(herald_object_get(&v, "_creationTime")->type == HERALD_FLOAT64);
    CHECK(strcmp(herald_object_get(&v, "_id")->u.s.ptr, feed) == 0);
    herald_value_free(&v);
    CHECK(herald_get(t, "reels", feed, &v, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "reels") != NULL);
    /* A forged id: the feed's random part under the reels table number. */
    CHECK(herald_get(t, NULL, "not-an-id", &v, NULL, &err) == HERALD_EINVAL);
    CHECK(strcmp(herald_id_table(t, reel), "reels") == 0);
    herald_txn_end(t);

    /* patch: merge, remove a field with undefined, refuse invalid results. */
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value p = json("{\"position\":2,\"meta\":{\"k\":[1,2]}}");
    CHECK_OK(herald_patch(m, reel, &p, &err));
    herald_value_free(&p);
    herald_object_init(&p);
    herald_object_set(&p, "meta", 4, herald_undefined());
    CHECK_OK(herald_patch(m, reel, &p, &err));
    herald_value_free(&p);
    p = json("{\"position\":\"two\"}");
    CHECK(herald_patch(m, reel, &p, &err) == HERALD_EVALIDATION);
    herald_value_free(&p);
    CHECK_OK(herald_get(m, "reels", reel, &v, NULL, &err));
    CHECK(herald_object_get(&v, "position")->u.f == 2.0);
    CHECK(herald_object_get(&v, "meta") == NULL);
    /* replace keeps _id and _creationTime, may carry them unchanged. */
    double ct = herald_object_get(&v, "_creationTime")->u.f;
    herald_object_set(&v, "title", 5, json("\"b\""));
    CHECK_OK(herald_replace(m, reel, &v, &err));
    herald_value_free(&v);
    CHECK_OK(herald_get(m, "reels", reel, &v, NULL, &err));
    CHECK(herald_object_get(&v, "_creationTime")->u.f == ct);
    CHECK(strcmp(herald_object_get(&v, "title")->u.s.ptr, "b") == 0);
    herald_value_free(&v);
    uint64_t version = 0;
    CHECK_OK(herald_mutation_commit(m, &version, &err));
    CHECK_OK(herald_group_commit(g, &err));
    CHECK(herald_group_count(g) == 1);
    const herald_write_set *ws = herald_group_write_set(g, 0);
    CHECK(ws->version == version);
    /* by_id, by_creation_time, two user indexes: old and new entry of each, 3 writes. */
    CHECK(ws->nremoved == 12 && ws->nadded == 12);
    herald_group_free(g);
    CHECK(herald_store_version(s) == version);
    check_ok(s);
}

static void test_groups(herald_store *s)
{
    herald_error err = {0};
    int before = count(s, "feeds");
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, &err));
    /* Only one group and one mutation at a time. */
    herald_group *g2;
    CHECK(herald_group_begin(s, &g2, &err) == HERALD_EBUSY);
    uint64_t v1, v2;
    herald_value a = json("{\"userId\":\"g1\",\"status\":\"ready\"}");
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_txn *m2;
    CHECK(herald_mutation_begin(g, &m2, &err) == HERALD_EBUSY);
    CHECK_OK(herald_insert(m, "feeds", &a, NULL, &err));
    CHECK_OK(herald_mutation_commit(m, &v1, &err));
    /* A failing mutation rolls back only itself, including its good writes. */
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK_OK(herald_insert(m, "feeds", &a, NULL, &err));
    herald_mutation_abort(m);
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK_OK(herald_insert(m, "feeds", &a, NULL, &err));
    CHECK_OK(herald_mutation_commit(m, &v2, &err));
    CHECK(v2 == v1 + 1);
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    CHECK(count(s, "feeds") == before + 2);
    /* A group freed without commit keeps nothing. */
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK_OK(herald_insert(m, "feeds", &a, NULL, &err));
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    herald_group_free(g);
    CHECK(count(s, "feeds") == before + 2);
    CHECK(herald_store_version(s) == v2);
    /* A snapshot cannot write. */
    herald_txn *t;
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK(herald_insert(t, "feeds", &a, NULL, &err) == HERALD_EBUSY);
    herald_txn_end(t);
    herald_value_free(&a);
}

static void test_limits(herald_store *s)
{
    herald_error err = {0};
    char feed[HERALD_ID_CHARS + 1];
    CHECK_OK(insert1(s, "feeds", "{\"userId\":\"lim\",\"status\":\"ready\"}", feed, &err));
    /* A document over 1 MiB is refused with a clear error. */
    size_t n = 1100 * 1024;
    char *big = malloc(n + 200);
    int at = snprintf(big, 200, "{\"feedId\":\"%s\",\"position\":1,\"title\":\"", feed);
    memset(big + at, 'x', n);
    strcpy(big + at + n, "\"}");
    CHECK(insert1(s, "reels", big, NULL, &err) == HERALD_ELIMIT);
    CHECK(strstr(err.message, "larger") != NULL);
    free(big);
    /* Nesting deeper than 64 built by hand (not through JSON) is refused too. */
    herald_value deep, *cur;
    herald_object_init(&deep);
    herald_object_set(&deep, "feedId", 6, herald_null());
    cur = &deep;
    herald_value inner;
    herald_array_init(&inner);
    herald_object_set(cur, "meta", 4, inner);
    cur = (herald_value *)herald_object_get(cur, "meta");
    for (int i = 0; i < 70; i++) {
        herald_value next;
        herald_array_init(&next);
        herald_array_push(cur, next);
        cur = &cur->u.arr.items[0];
    }
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK(herald_insert(m, "reels", &deep, NULL, &err) == HERALD_ELIMIT);
    herald_mutation_abort(m);
    herald_group_free(g);
    herald_value_free(&deep);
}

/* Index keys longer than LMDB's 511 bytes still work and keep their order. */
static void test_long_keys(herald_store *s)
{
    herald_error err = {0};
    char feed[HERALD_ID_CHARS + 1];
    CHECK_OK(insert1(s, "feeds", "{\"userId\":\"long\",\"status\":\"ready\"}", feed, &err));
    /* Titles share a 600-byte prefix and differ after it, inserted out of order. */
    const char tails[] = {'m', 'c', 'x', 'a', 'q', 'b'};
    for (int i = 0; i < 6; i++) {
        char doc[1000];
        int at =
            snprintf(doc, sizeof doc, "{\"feedId\":\"%s\",\"position\":%d,\"title\":\"", feed, i);
        memset(doc + at, 'p', 600);
        snprintf(doc + at + 600, sizeof doc - (size_t)at - 600, "%c\"}", tails[i]);
        CHECK_OK(insert1(s, "reels", doc, NULL, &err));
    }
    herald_txn *t;
    herald_query *q;
    herald_value r;
    char qtext[2000];
    CHECK_OK(herald_read_begin(s, &t, &err));
    const char *orders[] = {"asc", "desc"};
    for (int o = 0; o < 2; o++) {
        /* All titles >= "ppp...p" (600 p's): exactly the six long ones. */
        int at = snprintf(qtext, sizeof qtext,
                          "{\"table\":\"reels\",\"index\":\"by_title\",\"order\":\"%s\","
                          "\"range\":[{\"gte\":[\"title\",\"",
                          orders[o]);
        memset(qtext + at, 'p', 600);
        snprintf(qtext + at + 600, sizeof qtext - (size_t)at - 600, "\"]}]}");
        CHECK_OK(herald_query_parse(qtext, strlen(qtext), herald_store_schema(s), &q, &err));
        CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
        CHECK(r.type == HERALD_ARRAY && r.u.arr.len == 6);
        const char want[] = "abcmqx";
        for (size_t i = 0; i < r.u.arr.len && i < 6; i++) {
            const herald_value *title = herald_object_get(&r.u.arr.items[i], "title");
            char got = title->u.s.ptr[600];
            CHECK(got == want[o ? 5 - i : i]);
        }
        herald_value_free(&r);
        herald_query_free(q);
    }
    /* An exact long bound in the middle of the run. */
    int at =
        snprintf(qtext, sizeof qtext,
                 "{\"table\":\"reels\",\"index\":\"by_title\",\"range\":[{\"gt\":[\"title\",\"");
    memset(qtext + at, 'p', 600);
    snprintf(qtext + at + 600, sizeof qtext - (size_t)at - 600, "c\"]}]}");
    CHECK_OK(herald_query_parse(qtext, strlen(qtext), herald_store_schema(s), &q, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
    CHECK(r.u.arr.len == 3); /* m, q, x */
    herald_value_free(&r);
    herald_query_free(q);
    herald_txn_end(t);
    check_ok(s);
}

static void test_schema_changes(herald_store **sp)
{
    herald_store *s = *sp;
    herald_error err = {0};
    int reels = count(s, "reels");
    /* A new index is backfilled. */
    const char *v2 =
        "{\"tables\":{"
        "\"feeds\":{\"document\":{\"type\":\"object\",\"fields\":{"
        "  \"userId\":{\"type\":\"string\"},"
        "  "
        "\"status\":{\"type\":\"union\",\"members\":[{\"type\":\"literal\",\"value\":\"pending\"},"
        "            {\"type\":\"literal\",\"value\":\"ready\"}]}}},"
        "  \"indexes\":[{\"name\":\"by_user\",\"fields\":[\"userId\"]},"
        "             {\"name\":\"by_status\",\"fields\":[\"status\",\"userId\"]}]},"
        "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
        "  \"feedId\":{\"type\":\"id\",\"table\":\"feeds\"},"
        "  \"position\":{\"type\":\"number\"},"
        "  \"title\":{\"type\":\"string\"},"
        "  \"rating\":{\"type\":\"number\",\"optional\":true},"
        "  \"meta\":{\"type\":\"any\",\"optional\":true}}},"
        "  \"indexes\":[{\"name\":\"by_feed_position\",\"fields\":[\"feedId\",\"position\"]}]}}}";
    CHECK_OK(herald_store_set_schema(s, schema_of(v2), &err));
    check_ok(s);
    herald_txn *t;
    herald_query *q;
    herald_value r;
    const char *qs = "{\"table\":\"feeds\",\"index\":\"by_status\","
                     "\"range\":[{\"eq\":[\"status\",\"ready\"]}]}";
    CHECK_OK(herald_query_parse(qs, strlen(qs), herald_store_schema(s), &q, &err));
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
    CHECK(r.u.arr.len >= 3);
    herald_value_free(&r);
    herald_txn_end(t);
    herald_query_free(q);
    /* The dropped index is gone: querying it fails, the check still passes. */
    qs = "{\"table\":\"reels\",\"index\":\"by_title\"}";
    CHECK_OK(herald_query_parse(qs, strlen(qs), herald_store_schema(s), &q, &err));
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK(herald_query_run(q, t, NULL, &r, NULL, &err) == HERALD_ENOTFOUND);
    herald_txn_end(t);
    herald_query_free(q);
    /* A required field existing documents lack: refused, naming table and documents. */
    const char *bad = "{\"tables\":{"
                      "\"feeds\":{\"document\":{\"type\":\"object\",\"fields\":{"
                      "  \"userId\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"}}}},"
                      "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
                      "  \"feedId\":{\"type\":\"id\",\"table\":\"feeds\"},"
                      "  \"position\":{\"type\":\"number\"},"
                      "  \"title\":{\"type\":\"string\"},"
                      "  \"rating\":{\"type\":\"number\"},"
                      "  \"meta\":{\"type\":\"any\",\"optional\":true}}}}}}";
    CHECK(herald_store_set_schema(s, schema_of(bad), &err) == HERALD_ESCHEMA);
    CHECK(strstr(err.message, "reels") && strstr(err.message, "rating"));
    /* Nothing changed: by_status still answers. */
    CHECK(herald_schema_table(herald_store_schema(s), "feeds")->nindexes == 2);
    /* Removing a table that has documents is refused. */
    const char *drop = "{\"tables\":{\"feeds\":{\"document\":{\"type\":\"any\"}}}}";
    CHECK(herald_store_set_schema(s, schema_of(drop), &err) == HERALD_ESCHEMA);
    CHECK(strstr(err.message, "reels") != NULL);
    /* The schema, versions and data survive a reopen. */
    uint64_t version = herald_store_version(s);
    herald_store_close(s);
    s = *sp = open_store(NULL);
    CHECK(herald_store_version(s) == version);
    CHECK(count(s, "reels") == reels);
    CHECK(herald_schema_table(herald_store_schema(s), "reels")->nindexes == 1);
    check_ok(s);
}

static void test_creation_time(herald_store *s)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m, *t;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value a = json("{\"userId\":\"ct\",\"status\":\"ready\"}");
    char ids[50][HERALD_ID_CHARS + 1];
    for (int i = 0; i < 50; i++)
        CHECK_OK(herald_insert(m, "feeds", &a, ids[i], &err));
    herald_value_free(&a);
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    CHECK_OK(herald_read_begin(s, &t, &err));
    double last = -INFINITY;
    for (int i = 0; i < 50; i++) {
        herald_value d;
        CHECK_OK(herald_get(t, "feeds", ids[i], &d, NULL, &err));
        double ct = herald_object_get(&d, "_creationTime")->u.f;
        CHECK(ct > last);
        last = ct;
        herald_value_free(&d);
    }
    herald_txn_end(t);
}

/* A store with a tiny maximum map: growth first, then a clean DatabaseFull. */
static void test_map_full(void)
{
    char tmpl[] = "/tmp/herald-test-map-XXXXXX";
    const char *d = mkdtemp(tmpl);
    herald_store_options o = {
        .initial_map_size = 256 * 1024, .max_map_size = 2 * 1024 * 1024, .no_sync = true};
    herald_store *s;
    herald_error err = {0};
    CHECK_OK(herald_store_open(d, &o, &s, &err));
    CHECK_OK(herald_store_set_schema(s, schema_of(schema_v1), &err));
    char doc[4200];
    int at = snprintf(doc, sizeof doc, "{\"userId\":\"");
    memset(doc + at, 'u', 4000);
    strcpy(doc + at + 4000, "\",\"status\":\"ready\"}");
    int ok = 0, full = 0;
    size_t grown = 0;
    for (int i = 0; i < 2000 && full < 3; i++) {
        herald_group *g;
        herald_txn *m;
        CHECK_OK(herald_group_begin(s, &g, &err));
        CHECK_OK(herald_mutation_begin(g, &m, &err));
        herald_value v = json(doc);
        int rc = herald_insert(m, "feeds", &v, NULL, &err);
        herald_value_free(&v);
        if (rc == 0)
            rc = herald_mutation_commit(m, NULL, &err);
        else
            herald_mutation_abort(m);
        int crc = herald_group_commit(g, &err);
        herald_group_free(g);
        CHECK(rc == 0 || rc == HERALD_EMAPFULL);
        CHECK(crc == 0 || crc == HERALD_EMAPFULL);
        if (rc == 0 && crc == 0)
            ok++;
        else
            full++;
        size_t map;
        herald_store_map_info(s, &map, NULL, NULL);
        if (map > grown) grown = map;
    }
    CHECK(full >= 1);
    CHECK(grown > 256 * 1024); /* it grew before it gave up */
    CHECK(count(s, "feeds") == ok);
    check_ok(s);
    herald_store_close(s);
    /* The file reopens intact. */
    CHECK_OK(herald_store_open(d, &o, &s, &err));
    CHECK(count(s, "feeds") == ok);
    check_ok(s);
    herald_store_close(s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

static void count_line(void *ctx, const char *line)
{
    (void)line;
    (*(int *)ctx)++;
}

/* `herald check` notices an index entry removed behind the store's back. */
static void test_check_detects_damage(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi idx;
    MDB_cursor *cur;
    MDB_val k, v;
    CHECK_OK(mdb_env_create(&env));
    mdb_env_set_maxdbs(env, 4);
    CHECK_OK(mdb_env_open(env, dir, 0, 0600));
    CHECK_OK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK_OK(mdb_dbi_open(txn, "idx", 0, &idx));
    CHECK_OK(mdb_cursor_open(txn, idx, &cur));
    CHECK_OK(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    CHECK_OK(mdb_cursor_del(cur, 0));
    mdb_cursor_close(cur);
    CHECK_OK(mdb_txn_commit(txn));
    mdb_env_close(env);
    herald_store *s = open_store(NULL);
    herald_error err = {0};
    int lines = 0;
    CHECK(herald_store_check(s, count_line, &lines, &err) == HERALD_ECORRUPT);
    CHECK(lines >= 1);
    herald_store_close(s);
}

/* Runs one mutation that records `result_json` under `req`; returns its version. */
static uint64_t idem_commit(herald_store *s, const herald_idem *req, const char *result_json)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    uint64_t version = 0;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    herald_value doc = json("{\"userId\":\"idem\",\"status\":\"ready\"}");
    CHECK_OK(herald_insert(m, "feeds", &doc, NULL, &err));
    herald_value_free(&doc);
    herald_value result = json(result_json);
    CHECK_OK(herald_idem_put(m, req, &result, &err));
    herald_value_free(&result);
    CHECK_OK(herald_mutation_commit(m, &version, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    return version;
}

/* What herald_idem_get says about `req` now, with the result's JSON in `out`. */
static int idem_lookup(herald_store *s, const herald_idem *req, char *out, size_t size,
                       uint64_t *version, herald_error *err)
{
    herald_txn *t;
    herald_value result;
    CHECK_OK(herald_read_begin(s, &t, err));
    int rc = herald_idem_get(t, req, &result, version, err);
    if (rc == 0) {
        char *j = herald_value_to_json(&result);
        snprintf(out, size, "%s", j ? j : "");
        free(j);
    } else {
        CHECK(result.type == HERALD_UNDEFINED);
    }
    herald_value_free(&result);
    herald_txn_end(t);
    return rc;
}

static uint64_t idem_records(herald_store *s)
{
    herald_error err = {0};
    herald_txn *t;
    uint64_t n = 0;
    CHECK_OK(herald_read_begin(s, &t, &err));
    CHECK_OK(herald_idem_count(t, &n, &err));
    herald_txn_end(t);
    return n;
}

static size_t idem_purge(herald_store *s, size_t max)
{
    herald_error err = {0};
    herald_group *g;
    size_t n = 0;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_idem_purge(g, max, &n, &err));
    CHECK_OK(herald_group_commit(g, &err));
    herald_group_free(g);
    return n;
}

/*
 * Idempotency records belong to a scope and remember their request; they
 * expire after the store's retention and the purge takes the oldest first.
 */
static void test_idempotency(void)
{
    char tmpl[] = "/tmp/herald-test-idem-XXXXXX";
    const char *d = mkdtemp(tmpl);
    herald_store_options o = {.no_sync = true, .idem_retention = 0.3};
    herald_store *s;
    herald_error err = {0};
    CHECK_OK(herald_store_open(d, &o, &s, &err));
    CHECK_OK(herald_store_set_schema(s, schema_of(schema_v1), &err));
    herald_idem alice = {"k-1", "alice", 5, "add(1)", 6};
    herald_idem bob = {"k-1", "bob", 3, "add(1)", 6};
    herald_idem alice_other = {"k-1", "alice", 5, "add(2)", 6};
    herald_idem alice_k2 = {"k-2", "alice", 5, "add(1)", 6};
    char got[200];
    uint64_t version = 0;
    CHECK(idem_lookup(s, &alice, got, sizeof got, &version, &err) == HERALD_ENOTFOUND);
    uint64_t first = idem_commit(s, &alice, "{\"id\":\"first\"}");
    /* The same request in the same scope: the first answer. */
    CHECK_OK(idem_lookup(s, &alice, got, sizeof got, &version, &err));
    CHECK(strcmp(got, "{\"id\":\"first\"}") == 0 && version == first);
    /* Another scope never sees it; the same scope with another request is refused. */
    CHECK(idem_lookup(s, &bob, got, sizeof got, &version, &err) == HERALD_ENOTFOUND);
    CHECK(idem_lookup(s, &alice_other, got, sizeof got, &version, &err) == HERALD_ECONFLICT);
    CHECK(strstr(err.message, "k-1") != NULL);
    CHECK(strcmp(herald_errcode_name(HERALD_ECONFLICT), "IdempotencyConflict") == 0);
    CHECK(idem_lookup(s, &alice_k2, got, sizeof got, &version, &err) == HERALD_ENOTFOUND);
    uint64_t bobs = idem_commit(s, &bob, "{\"id\":\"bob\"}");
    CHECK_OK(idem_lookup(s, &bob, got, sizeof got, &version, &err));
    CHECK(strcmp(got, "{\"id\":\"bob\"}") == 0 && version == bobs);
    CHECK_OK(idem_lookup(s, &alice, got, sizeof got, &version, &err));
    CHECK(strcmp(got, "{\"id\":\"first\"}") == 0 && version == first);
    /* Keys of 1 to HERALD_MAX_IDEM_KEY bytes. */
    char longkey[HERALD_MAX_IDEM_KEY + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    herald_idem bad = {longkey, "alice", 5, "x", 1};
    CHECK(idem_lookup(s, &bad, got, sizeof got, &version, &err) == HERALD_EINVAL);
    bad.key = "";
    CHECK(idem_lookup(s, &bad, got, sizeof got, &version, &err) == HERALD_EINVAL);
    CHECK(idem_records(s) == 2);
    /* Nothing has expired yet: the purge deletes nothing. */
    CHECK(idem_purge(s, 100) == 0);
    check_ok(s);

    /* Past the retention a record answers no more, and a new one replaces it. */
    usleep(400 * 1000);
    idem_commit(s, &alice_k2, "1");
    CHECK(idem_lookup(s, &alice, got, sizeof got, &version, &err) == HERALD_ENOTFOUND);
    CHECK(idem_lookup(s, &alice_other, got, sizeof got, &version, &err) == HERALD_ENOTFOUND);
    uint64_t again = idem_commit(s, &alice, "{\"id\":\"again\"}");
    CHECK(again > first);
    CHECK_OK(idem_lookup(s, &alice, got, sizeof got, &version, &err));
    CHECK(strcmp(got, "{\"id\":\"again\"}") == 0 && version == again);
    CHECK(idem_records(s) == 3);
    check_ok(s); /* the replaced record's time entry went with it */
    /* The purge takes expired records only (bob's), in batches of `max`. */
    CHECK(idem_purge(s, 100) == 1);
    CHECK(idem_records(s) == 2);
    usleep(400 * 1000);
    CHECK(idem_purge(s, 1) == 1);
    CHECK(idem_records(s) == 1);
    CHECK(idem_purge(s, 1) == 1);
    CHECK(idem_records(s) == 0);
    CHECK(idem_purge(s, 1) == 0);
    check_ok(s);
    /* A purge inside a group with an open mutation is refused. */
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(s, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    CHECK(herald_idem_purge(g, 1, NULL, &err) == HERALD_EBUSY);
    herald_group_free(g);
    herald_store_close(s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

/*
 * One writer per data folder, also within one process; read-only stores
 * run beside it, see its commits and never create anything.
 */
static void test_writer_lock(void)
{
    char tmpl[] = "/tmp/herald-test-lock-XXXXXX";
    const char *d = mkdtemp(tmpl);
    herald_store_options w = {.no_sync = true, .owner = "test writer"};
    herald_store_options r = {.read_only = true};
    herald_store *s, *s2 = NULL, *ro;
    herald_error err = {0};
    long pid;
    char owner[64];
    CHECK(herald_store_writer(d, &pid, owner, sizeof owner, &err) == 0);
    CHECK_OK(herald_store_open(d, &w, &s, &err));
    CHECK(herald_store_writer(d, &pid, owner, sizeof owner, &err) == 1);
    CHECK(pid == (long)getpid() && strcmp(owner, "test writer") == 0);
    CHECK(herald_store_open(d, &w, &s2, &err) == HERALD_EBUSY && s2 == NULL);
    char pidtext[40];
    snprintf(pidtext, sizeof pidtext, "pid %ld", (long)getpid());
    CHECK(strstr(err.message, "test writer") && strstr(err.message, pidtext) &&
          strstr(err.message, d));
    CHECK_OK(herald_store_set_schema(s, schema_of(schema_v1), &err));
    CHECK_OK(insert1(s, "feeds", "{\"userId\":\"u\",\"status\":\"ready\"}", NULL, &err));
    /* A reader beside the writer sees its commits and cannot write. */
    CHECK_OK(herald_store_open(d, &r, &ro, &err));
    CHECK(count(ro, "feeds") == 1 && herald_store_version(ro) == herald_store_version(s));
    herald_group *g;
    CHECK(herald_group_begin(ro, &g, &err) == HERALD_EBUSY);
    CHECK(strstr(err.message, "read-only") != NULL);
    CHECK(herald_store_set_schema(ro, schema_of(schema_v1), &err) == HERALD_EBUSY);
    CHECK(herald_store_reserve_table(ro, "x", 99, &err) == HERALD_EBUSY);
    check_ok(ro);
    herald_store_close(ro);
    /* Closed, the folder takes the next writer. */
    herald_store_close(s);
    CHECK(herald_store_writer(d, &pid, owner, sizeof owner, &err) == 0);
    CHECK_OK(herald_store_open(d, &w, &s, &err));
    herald_store_close(s);
    /* A reader never creates a folder or a database. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing", d);
    CHECK(herald_store_open(missing, &r, &ro, &err) == HERALD_ENOTFOUND);
    CHECK(strstr(err.message, "no Herald database") != NULL);
    struct stat st;
    CHECK(stat(missing, &st) != 0);
    CHECK(mkdir(missing, 0700) == 0);
    CHECK(herald_store_open(missing, &r, &ro, &err) == HERALD_ENOTFOUND);
    char file[400];
    snprintf(file, sizeof file, "%s/data.mdb", missing);
    CHECK(stat(file, &st) != 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    dir = mkdtemp(dir_template);
    herald_store_options o = {.no_sync = true};
    herald_store *s = open_store(&o);
    herald_error err = {0};
    CHECK(herald_store_schema(s) == NULL);
    CHECK_OK(herald_store_set_schema(s, schema_of(schema_v1), &err));
    test_documents(s);
    test_groups(s);
    test_limits(s);
    test_long_keys(s);
    test_creation_time(s);
    test_schema_changes(&s);
    herald_store_close(s);
    test_check_detects_damage();
    test_map_full();
    test_idempotency();
    test_writer_lock();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    CHECK_DONE();
}
