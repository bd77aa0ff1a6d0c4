/*
 * Fuzz target for the JSON query form: herald_query_parse against a fixed
 * schema, and herald_query_run of every query that parses, on a small
 * store that holds a few documents of varied shapes.
 *
 * Errors are expected (bad ranges, unknown indexes, limits, bad cursors);
 * crashes, leaks and out-of-bounds reads are not. Each query runs with the
 * default limits and with tiny ones, and a paginated query follows its
 * continueCursor for a few pages, so the cursor decoder sees real cursors
 * as well as fuzzed ones.
 *
 * The store lives in a fresh temporary folder, opened once per process on
 * first use (no_sync) and unlinked once filled. Its documents get fixed ids and
 * creation times, so runs are deterministic and `get` or `_id` ranges in
 * the corpus can hit real documents.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/query.h"
#include "herald/schema.h"
#include "herald/store.h"
#include "herald/value.h"
#include "store_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema_json[] =
    "{\"tables\":{"
    "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"feed\":{\"type\":\"string\"},"
    "  \"position\":{\"type\":\"number\"},"
    "  \"status\":{\"type\":\"union\",\"optional\":true,"
    "             \"members\":[{\"type\":\"string\"},{\"type\":\"null\"}]},"
    "  \"meta\":{\"type\":\"any\",\"optional\":true},"
    "  \"tags\":{\"type\":\"array\",\"optional\":true,\"items\":{\"type\":\"any\"}}}},"
    "  \"indexes\":[{\"name\":\"by_feed_position\",\"fields\":[\"feed\",\"position\"]},"
    "             {\"name\":\"by_score\",\"fields\":[\"meta.score\"]},"
    "             {\"name\":\"by_status\",\"fields\":[\"status\"]}]},"
    "\"users\":{\"document\":{\"type\":\"any\"},"
    "  \"indexes\":[{\"name\":\"by_name\",\"fields\":[\"name\"]},"
    "             {\"name\":\"by_org_age\",\"fields\":[\"org.id\",\"age\"]}]}}}";

/* Documents of both tables, with missing fields and values of many types. */
static const char *const reels[] = {
    "{\"feed\":\"a\",\"position\":0}",
    "{\"feed\":\"a\",\"position\":1,\"status\":\"ready\"}",
    "{\"feed\":\"a\",\"position\":2,\"status\":null,\"tags\":[]}",
    "{\"feed\":\"a\",\"position\":-1.5,\"meta\":{\"score\":3}}",
    "{\"feed\":\"b\",\"position\":0,\"meta\":{\"score\":{\"$integer\":\"BwAAAAAAAAA=\"}}}",
    "{\"feed\":\"b\",\"position\":{\"$float\":\"AAAAAAAA8H8=\"},\"status\":\"pending\"}",
    "{\"feed\":\"b\",\"position\":1e300,\"meta\":{\"score\":\"high\"},\"tags\":[1,\"x\",null]}",
    "{\"feed\":\"\",\"position\":{\"$float\":\"AAAAAAAAAIA=\"}}",
    "{\"feed\":\"b\",\"position\":2,\"meta\":{\"score\":{\"$bytes\":\"AAE=\"}}}",
    "{\"feed\":\"c\\u00e9\",\"position\":7,\"meta\":[1,2],\"status\":\"ready\"}",
    "{\"feed\":\"c\",\"position\":8,\"meta\":{\"score\":[{\"a\":1}]},\"tags\":[[[]]]}",
};
static const char *const users[] = {
    "{\"name\":\"ada\",\"age\":36,\"org\":{\"id\":\"o1\"}}",
    "{\"name\":\"bob\",\"age\":{\"$integer\":\"KgAAAAAAAAA=\"},\"org\":{\"id\":\"o1\"}}",
    "{\"name\":\"cy\",\"org\":{\"id\":7}}",
    "{\"age\":true}",
    "{}",
};

static herald_store *store;
static char store_dir[] = "/tmp/herald-fuzz-query-XXXXXX";

static void die(const char *what, const herald_error *err)
{
    fprintf(stderr, "fuzz_query: %s: %s\n", what, err->message);
    abort();
}

/*
 * The store keeps its files open, so the folder can go as soon as the
 * store is set up: nothing is left behind however the process ends
 * (libFuzzer leaves through _Exit on crashes and timeouts).
 */
static void remove_store_dir(void)
{
    DIR *d = opendir(store_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char path[sizeof store_dir + 256];
            snprintf(path, sizeof path, "%s/%s", store_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(store_dir);
}

static void close_store(void)
{
    herald_store_close(store);
    store = NULL;
}

/*
 * Inserts `docs` with fixed ids and creation times (herald_insert_raw), so
 * every process builds the same store and corpus inputs can name real
 * ids: document i of table number T has id bytes T (big-endian), then
 * sixteen bytes of value i + 1, and _creationTime 1.7e12 + 1000 T + i.
 */
static void insert_all(herald_txn *m, const char *table, const char *const *docs, size_t n)
{
    herald_error err = {0};
    uint32_t number;
    if (herald_table_number(m, table, &number)) die(table, &err);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[HERALD_ID_BYTES];
        char id_text[HERALD_ID_CHARS + 1];
        hd__put_be32(id, number);
        memset(id + 4, (int)i + 1, HERALD_ID_BYTES - 4);
        hd__id_format(id, id_text);
        herald_value v, field;
        if (herald_value_from_json(docs[i], strlen(docs[i]), &v, &err)) die(docs[i], &err);
        if (herald_string(&field, id_text, HERALD_ID_CHARS) ||
            herald_object_set(&v, "_id", 3, field) ||
            herald_object_set(&v, "_creationTime", 13,
                              herald_float64(1.7e12 + 1000.0 * number + (double)i)))
            abort();
        if (herald_insert_raw(m, table, &v, &err)) die(docs[i], &err);
        herald_value_free(&v);
    }
}

static void open_store(void)
{
    herald_error err = {0};
    if (!mkdtemp(store_dir)) {
        perror("fuzz_query: mkdtemp");
        abort();
    }
    herald_store_options opts = {.no_sync = true, .initial_map_size = 4 << 20};
    if (herald_store_open(store_dir, &opts, &store, &err)) die("open", &err);
    atexit(close_store);
    herald_schema *schema = NULL;
    if (herald_schema_from_json(schema_json, strlen(schema_json), "fuzz.json", &schema, &err))
        die("schema", &err);
    if (herald_store_set_schema(store, schema, &err)) die("set schema", &err);

    herald_group *g;
    herald_txn *m;
    if (herald_group_begin(store, &g, &err)) die("group", &err);
    if (herald_mutation_begin(g, &m, &err)) die("mutation", &err);
    insert_all(m, "reels", reels, sizeof reels / sizeof *reels);
    insert_all(m, "users", users, sizeof users / sizeof *users);
    if (herald_mutation_commit(m, NULL, &err)) die("commit", &err);
    if (herald_group_commit(g, &err)) die("group commit", &err);
    herald_group_free(g);
    remove_store_dir();
}

/* Runs `q`; returns the continueCursor of a page that is not the last one. */
static char *run(const herald_query *q, const herald_query_limits *limits)
{
    herald_error err = {0};
    herald_txn *t = NULL;
    if (herald_read_begin(store, &t, &err)) die("read", &err);
    herald_value result = herald_undefined();
    herald_read_set rs;
    herald_read_set_init(&rs);
    char *cursor = NULL;
    if (herald_query_run(q, t, limits, &result, &rs, &err) == 0) {
        free(herald_value_to_json(&result));
        const herald_value *done = herald_object_get(&result, "isDone");
        const herald_value *next = herald_object_get(&result, "continueCursor");
        if (result.type == HERALD_OBJECT && done && done->type == HERALD_BOOLEAN && !done->u.b &&
            next && next->type == HERALD_STRING)
            cursor = strdup(next->u.s.ptr);
    } else if (result.type != HERALD_UNDEFINED) {
        fprintf(stderr, "fuzz_query: failed run left a result behind\n");
        abort();
    }
    herald_value_free(&result);
    herald_read_set_free(&rs);
    herald_txn_end(t);
    return cursor;
}

/* Follows the pages of a paginated query `v` from `cursor` on. */
static void follow_pages(herald_value *v, char *cursor)
{
    herald_value *page = NULL;
    for (size_t i = 0; i < v->u.obj.len; i++)
        if (!strcmp(v->u.obj.fields[i].key, "paginate")) page = &v->u.obj.fields[i].val;
    for (int n = 0; cursor && page && page->type == HERALD_OBJECT && n < 4; n++) {
        herald_value c;
        herald_query *q = NULL;
        herald_error err = {0};
        int rc = herald_string(&c, cursor, strlen(cursor));
        if (!rc) rc = herald_object_set(page, "cursor", 6, c);
        free(cursor);
        cursor = NULL;
        if (!rc && herald_query_from_value(v, herald_store_schema(store), &q, &err) == 0) {
            cursor = run(q, NULL);
            herald_query_free(q);
        }
    }
    free(cursor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) open_store();
    herald_query *q = NULL;
    herald_error err = {0};
    if (herald_query_parse((const char *)data, size, herald_store_schema(store), &q, &err))
        return 0;
    static const herald_query_limits tiny = {.max_docs = 3, .max_bytes = 200};
    free(run(q, &tiny));
    char *cursor = run(q, NULL);
    herald_query_free(q);
    if (cursor) {
        herald_value v;
        if (herald_value_from_json((const char *)data, size, &v, &err) == 0) {
            follow_pages(&v, cursor);
            herald_value_free(&v);
        } else {
            free(cursor);
        }
    }
    return 0;
}
