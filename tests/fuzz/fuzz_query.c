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
#include <stdint.h>

#include "fuzz_common.h"
#include "herald/query.h"

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

static void close_store(void)
{
    herald_store_close(store);
    store = NULL;
}

static void open_store(void)
{
    herald_store_options opts = {.no_sync = true, .initial_map_size = 4 << 20};
    const fz_table tables[] = {
        {"reels", reels, sizeof reels / sizeof *reels, NULL, 0},
        {"users", users, sizeof users / sizeof *users, NULL, 0},
    };
    store = fz_store_new(store_dir, &opts, fz_schema(schema_json), tables,
                         sizeof tables / sizeof *tables);
    atexit(close_store);
    /*
     * The store keeps its files open, so the folder can go as soon as the
     * store is set up: nothing is left behind however the process ends
     * (libFuzzer leaves through _Exit on crashes and timeouts).
     */
    fz_remove_dir(store_dir);
}

/* Runs `q`; returns the continueCursor of a page that is not the last one. */
static char *run(const herald_query *q, const herald_query_limits *limits)
{
    herald_error err = {0};
    herald_txn *t = NULL;
    if (herald_read_begin(store, &t, &err)) fz_die("read", &err);
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
