/*
 * Live pages (docs/queries.md, "Live pages"): a paginated query function
 * whose pages keep their end once fixed (the journal), so that inserts and
 * deletes around page boundaries never show a document twice or lose one;
 * the last page's end is the end of the range; split cursors; read sets
 * that cover exactly a page's range; InvalidCursor; v.paginationOpts().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "fn.h"
#include "herald/query.h"
#include "herald/store.h"

static char dir_template[] = "/tmp/herald-test-pages-XXXXXX";
static char data_dir[300], app_dir[300];
static herald_store *store;
static hd_fnrt *rt;

static const char *schema_json =
    "{\"tables\":{\"posts\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"n\":{\"type\":\"number\"}}}}}}";

static const char *posts_lua =
    "return {\n"
    "  list = herald.query{\n"
    "    args = {order = v.string(), paginationOpts = v.paginationOpts()},\n"
    "    handler = function(ctx, a)\n"
    "      return ctx.db:query('posts'):order(a.order):paginate(a.paginationOpts)\n"
    "    end},\n"
    "  twoPages = herald.query{\n"
    "    args = {paginationOpts = v.paginationOpts()},\n"
    "    handler = function(ctx, a)\n"
    "      local first = ctx.db:query('posts'):paginate(a.paginationOpts)\n"
    "      local second = ctx.db:query('posts'):paginate{numItems = 1, cursor = "
    "first.continueCursor}\n"
    "      return {first = first, second = second}\n"
    "    end},\n"
    "  count = herald.query{handler = function(ctx) return #ctx.db:query('posts'):collect() end},\n"
    "}\n";

/* ---- the store */

/* One mutation: inserts a post numbered `insert_n` (if >= 0) and deletes `delete_id` (if set). */
static void write(int insert_n, const char *delete_id, char *id_out, herald_write_set *ws_copy,
                  herald_group **group_out)
{
    herald_error err = {0};
    herald_group *g;
    herald_txn *m;
    CHECK_OK(herald_group_begin(store, &g, &err));
    CHECK_OK(herald_mutation_begin(g, &m, &err));
    if (insert_n >= 0) {
        char doc[64];
        snprintf(doc, sizeof doc, "{\"n\":%d}", insert_n);
        herald_value v = json(doc);
        char id[HERALD_ID_CHARS + 1];
        CHECK_OK(herald_insert(m, "posts", &v, id, &err));
        if (id_out) strcpy(id_out, id);
        herald_value_free(&v);
    }
    if (delete_id) CHECK_OK(herald_delete(m, delete_id, &err));
    CHECK_OK(herald_mutation_commit(m, NULL, &err));
    CHECK_OK(herald_group_commit(g, &err));
    if (ws_copy) *ws_copy = *herald_group_write_set(g, 0);
    if (group_out)
        *group_out = g;
    else
        herald_group_free(g);
}

/* ---- pages */

typedef struct page {
    char cursor[200];  /* where it starts ("" = the start) */
    char end[200];     /* endCursor passed explicitly ("" = none) */
    char journal[200]; /* what the last run gave back */
    herald_value result;
    herald_read_set rs;
} page;

/* Runs posts:list for `p` with its journal; keeps the result, read set and new journal. */
static int run_page(page *p, const char *order, int num_items, const char *extra_opts,
                    herald_error *err)
{
    char args[900];
    snprintf(args, sizeof args,
             "{\"order\":\"%s\",\"paginationOpts\":{\"numItems\":%d,\"id\":7,\"cursor\":%s%s%s%s%s%"
             "s%s}}",
             order, num_items, p->cursor[0] ? "\"" : "", p->cursor[0] ? p->cursor : "null",
             p->cursor[0] ? "\"" : "", p->end[0] ? ",\"endCursor\":\"" : "", p->end,
             p->end[0] ? "\"" : "", extra_opts ? extra_opts : "");
    herald_value a = json(args), data;
    herald_value_free(&p->result);
    herald_read_set_free(&p->rs);
    herald_read_set_init(&p->rs);
    char *journal_out = NULL;
    herald_txn *t;
    CHECK_OK(herald_read_begin(store, &t, err));
    hd_fncall c = {.path = "posts:list",
                   .args = &a,
                   .kind = HD_FN_QUERY,
                   .txn = t,
                   .rs = &p->rs,
                   .journal = p->journal[0] ? p->journal : NULL,
                   .journal_out = &journal_out};
    int rc = hd__fn_call(rt, &c, &p->result, &data, err);
    herald_txn_end(t);
    herald_value_free(&data);
    herald_value_free(&a);
    if (rc == 0) {
        CHECK(journal_out != NULL);
        /* The journal is the page's end: its continueCursor. */
        const herald_value *cc = herald_object_get(&p->result, "continueCursor");
        CHECK(cc && journal_out && !strcmp(cc->u.s.ptr, journal_out));
        snprintf(p->journal, sizeof p->journal, "%s", journal_out ? journal_out : "");
    } else {
        CHECK(journal_out == NULL);
    }
    free(journal_out);
    return rc;
}

static const herald_value *page_items(const page *p)
{
    return herald_object_get(&p->result, "page");
}

static bool page_done(const page *p)
{
    return herald_object_get(&p->result, "isDone")->u.b;
}

static const char *page_continue(const page *p)
{
    return herald_object_get(&p->result, "continueCursor")->u.s.ptr;
}

/* The numbers of the page's posts, as "1,2,3". */
static void page_numbers(const page *p, char *out, size_t size)
{
    out[0] = 0;
    const herald_value *items = page_items(p);
    for (size_t i = 0; items && i < items->u.arr.len; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%g", i ? "," : "",
                 herald_object_get(&items->u.arr.items[i], "n")->u.f);
    }
}

static void expect_page(const page *p, const char *want, bool done)
{
    char got[400];
    page_numbers(p, got, sizeof got);
    if (strcmp(got, want) || page_done(p) != done) {
        fprintf(stderr, "page [%s] isDone %d, expected [%s] isDone %d\n", got, page_done(p), want,
                done);
        CHECK(0);
    }
}

/* Every post in the table appears in exactly one of the pages. */
static void expect_each_once(page *pages, size_t npages)
{
    herald_txn *t;
    herald_error err = {0};
    uint64_t total = 0;
    CHECK_OK(herald_read_begin(store, &t, &err));
    CHECK_OK(herald_table_count(t, "posts", &total, &err));
    herald_txn_end(t);
    size_t seen = 0;
    for (size_t i = 0; i < npages; i++) {
        const herald_value *items = page_items(&pages[i]);
        for (size_t k = 0; k < items->u.arr.len; k++) {
            const char *id = herald_object_get(&items->u.arr.items[k], "_id")->u.s.ptr;
            for (size_t j = 0; j < npages; j++) {
                const herald_value *other = page_items(&pages[j]);
                for (size_t l = 0; l < other->u.arr.len; l++)
                    if ((j != i || l != k) &&
                        !strcmp(id, herald_object_get(&other->u.arr.items[l], "_id")->u.s.ptr)) {
                        fprintf(stderr, "post %s is in pages %zu and %zu\n", id, i, j);
                        CHECK(0);
                    }
            }
            seen++;
        }
    }
    if (seen != total)
        fprintf(stderr, "%zu posts in pages, %llu in the table\n", seen, (unsigned long long)total);
    CHECK(seen == total);
}

static void page_free(page *p)
{
    herald_value_free(&p->result);
    herald_read_set_free(&p->rs);
}

/* Loads the first pages of three, following continueCursor as the client does. */
static size_t load_pages(page *pages, size_t max, const char *order)
{
    herald_error err = {0};
    size_t n = 0;
    for (; n < max; n++) {
        if (n)
            snprintf(pages[n].cursor, sizeof pages[n].cursor, "%s", page_continue(&pages[n - 1]));
        CHECK_OK(run_page(&pages[n], order, 3, NULL, &err));
        if (page_done(&pages[n])) return n + 1;
    }
    return n;
}

static void rerun_all(page *pages, size_t n, const char *order)
{
    herald_error err = {0};
    for (size_t i = 0; i < n; i++)
        CHECK_OK(run_page(&pages[i], order, 3, NULL, &err));
}

static void clear_posts(void)
{
    herald_txn *t;
    herald_error err = {0};
    herald_query *q = NULL;
    herald_value all;
    CHECK_OK(herald_query_parse("{\"table\":\"posts\"}", 17, NULL, &q, &err));
    CHECK_OK(herald_read_begin(store, &t, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &all, NULL, &err));
    herald_txn_end(t);
    herald_query_free(q);
    for (size_t i = 0; i < all.u.arr.len; i++)
        write(-1, herald_object_get(&all.u.arr.items[i], "_id")->u.s.ptr, NULL, NULL, NULL);
    herald_value_free(&all);
}

/*
 * Newest first, as a feed: [7,6,5] [4,3,2] [1]. A new post goes into page
 * 1 (whose end stays at 5, so 5 stays in page 1 and page 2 is unchanged);
 * deleting 5, then 4 (the boundaries) touches only their pages.
 */
static void test_feed_desc(void)
{
    char ids[10][HERALD_ID_CHARS + 1];
    for (int i = 1; i <= 7; i++)
        write(i, NULL, ids[i], NULL, NULL);
    page pages[4] = {0};
    size_t n = load_pages(pages, 4, "desc");
    CHECK(n == 3);
    expect_page(&pages[0], "7,6,5", false);
    expect_page(&pages[1], "4,3,2", false);
    expect_page(&pages[2], "1", true);

    /* A new post: only page 1's read set holds it. */
    herald_write_set ws;
    herald_group *g;
    write(8, NULL, ids[8], &ws, &g);
    CHECK(herald_read_set_overlaps(&pages[0].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[1].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[2].rs, &ws));
    herald_group_free(g);
    rerun_all(pages, n, "desc");
    /* Without the journal this would be [8,7,6] [4,3,2] [1]: 5 in no page. */
    expect_page(&pages[0], "8,7,6,5", false);
    expect_page(&pages[1], "4,3,2", false);
    expect_page(&pages[2], "1", true);
    expect_each_once(pages, n);

    /* Deleting the boundaries: 5 (page 1's end), then 2 (page 2's end). */
    write(-1, ids[5], NULL, &ws, &g);
    CHECK(herald_read_set_overlaps(&pages[0].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[1].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[2].rs, &ws));
    herald_group_free(g);
    write(-1, ids[2], NULL, &ws, &g);
    CHECK(!herald_read_set_overlaps(&pages[0].rs, &ws));
    CHECK(herald_read_set_overlaps(&pages[1].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[2].rs, &ws));
    herald_group_free(g);
    rerun_all(pages, n, "desc");
    expect_page(&pages[0], "8,7,6", false);
    expect_page(&pages[1], "4,3", false);
    expect_page(&pages[2], "1", true);
    expect_each_once(pages, n);

    /* A fresh client (no journals) sees the same posts, each once. */
    page fresh[5] = {0};
    size_t nf = load_pages(fresh, 5, "desc");
    expect_each_once(fresh, nf);
    for (size_t i = 0; i < nf; i++)
        page_free(&fresh[i]);
    for (size_t i = 0; i < n; i++)
        page_free(&pages[i]);
    clear_posts();
}

/*
 * Oldest first: new posts are appended at the end of the index, and the
 * last page (whose end is the end of the range) takes them; past twice
 * numItems it carries a split cursor, and its two halves hold it exactly.
 */
static void test_appended_and_split(void)
{
    char ids[20][HERALD_ID_CHARS + 1];
    for (int i = 1; i <= 7; i++)
        write(i, NULL, ids[i], NULL, NULL);
    page pages[4] = {0};
    size_t n = load_pages(pages, 4, "asc");
    CHECK(n == 3);
    expect_page(&pages[0], "1,2,3", false);
    expect_page(&pages[1], "4,5,6", false);
    expect_page(&pages[2], "7", true);

    herald_write_set ws;
    herald_group *g;
    write(8, NULL, ids[8], &ws, &g);
    CHECK(!herald_read_set_overlaps(&pages[0].rs, &ws));
    CHECK(!herald_read_set_overlaps(&pages[1].rs, &ws));
    CHECK(herald_read_set_overlaps(&pages[2].rs, &ws));
    herald_group_free(g);
    write(-1, ids[3], NULL, NULL, NULL); /* page 1's last post */
    rerun_all(pages, n, "asc");
    expect_page(&pages[0], "1,2", false);
    expect_page(&pages[1], "4,5,6", false);
    expect_page(&pages[2], "7,8", true);
    expect_each_once(pages, n);
    CHECK(!herald_object_get(&pages[2].result, "splitCursor"));

    /* Grows to 7 > 2 x 3 posts: split recommended, after the middle post. */
    for (int i = 9; i <= 13; i++)
        write(i, NULL, ids[i], NULL, NULL);
    rerun_all(pages, n, "asc");
    expect_page(&pages[2], "7,8,9,10,11,12,13", true);
    const herald_value *split = herald_object_get(&pages[2].result, "splitCursor");
    const herald_value *status = herald_object_get(&pages[2].result, "pageStatus");
    CHECK(split && split->type == HERALD_STRING);
    CHECK(status && !strcmp(status->u.s.ptr, "SplitRecommended"));
    if (!split) return;
    /* The halves, as the client asks for them: [cursor, split] and [split, continueCursor]. */
    page halves[2] = {0};
    snprintf(halves[0].cursor, sizeof halves[0].cursor, "%s", pages[2].cursor);
    snprintf(halves[0].end, sizeof halves[0].end, "%s", split->u.s.ptr);
    snprintf(halves[1].cursor, sizeof halves[1].cursor, "%s", split->u.s.ptr);
    snprintf(halves[1].end, sizeof halves[1].end, "%s", page_continue(&pages[2]));
    herald_error err = {0};
    CHECK_OK(run_page(&halves[0], "asc", 3, NULL, &err));
    CHECK_OK(run_page(&halves[1], "asc", 3, NULL, &err));
    expect_page(&halves[0], "7,8,9", false);
    expect_page(&halves[1], "10,11,12,13", true);
    CHECK(!herald_object_get(&halves[0].result, "splitCursor"));
    /* The halves' journals are the ends they were given. */
    CHECK(!strcmp(halves[0].journal, split->u.s.ptr));
    page all[4] = {pages[0], pages[1], halves[0], halves[1]};
    expect_each_once(all, 4);
    /* The second half is the last page now: it takes appended posts. */
    write(14, NULL, ids[14], NULL, NULL);
    CHECK_OK(run_page(&halves[1], "asc", 3, NULL, &err));
    expect_page(&halves[1], "10,11,12,13,14", true);

    /* maximumRowsRead: a page without an end stops there; one with an end
     * reads on and recommends a split. */
    page small = {0};
    CHECK_OK(run_page(&small, "asc", 3, ",\"maximumRowsRead\":2", &err));
    expect_page(&small, "1,2", false);
    page capped = {0};
    snprintf(capped.cursor, sizeof capped.cursor, "%s", pages[1].cursor);
    snprintf(capped.journal, sizeof capped.journal, "%s", pages[1].journal);
    CHECK_OK(run_page(&capped, "asc", 3, ",\"maximumRowsRead\":2", &err));
    expect_page(&capped, "4,5,6", false);
    status = herald_object_get(&capped.result, "pageStatus");
    CHECK(status && !strcmp(status->u.s.ptr, "SplitRecommended"));
    page_free(&small);
    page_free(&capped);

    for (size_t i = 0; i < n; i++)
        page_free(&pages[i]);
    page_free(&halves[0]);
    page_free(&halves[1]);
    clear_posts();
}

/* Raw queries: the journal through herald_query_set_journal; SplitRequired at the hard limits. */
static void test_raw_queries(void)
{
    for (int i = 1; i <= 7; i++)
        write(i, NULL, NULL, NULL, NULL);
    herald_error err = {0};
    herald_query *q = NULL;
    herald_value r;
    herald_txn *t;
    const char *first = "{\"table\":\"posts\",\"paginate\":{\"numItems\":3,\"cursor\":null}}";
    CHECK_OK(herald_query_parse(first, strlen(first), NULL, &q, &err));
    CHECK(herald_query_paginates(q) && herald_query_end_cursor(q) == NULL);
    CHECK_OK(herald_read_begin(store, &t, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
    herald_txn_end(t);
    herald_query_free(q);
    char journal[200];
    snprintf(journal, sizeof journal, "%s", herald_object_get(&r, "continueCursor")->u.s.ptr);
    herald_value_free(&r);

    write(8, NULL, NULL, NULL, NULL);
    write(0, NULL, NULL, NULL, NULL); /* creation order: it is 9th */
    /* The journal keeps the first page at its three posts. */
    CHECK_OK(herald_query_parse(first, strlen(first), NULL, &q, &err));
    CHECK_OK(herald_query_set_journal(q, journal));
    CHECK(herald_query_end_cursor(q) && !strcmp(herald_query_end_cursor(q), journal));
    CHECK_OK(herald_read_begin(store, &t, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
    CHECK(herald_object_get(&r, "page")->u.arr.len == 3);
    herald_value_free(&r);
    herald_query_free(q);
    const char *whole = "{\"table\":\"posts\",\"paginate\":{\"numItems\":3,\"cursor\":null,"
                        "\"endCursor\":\"%s\"}}";
    /* The end of the range, from a last page. */
    const char *last = "{\"table\":\"posts\",\"paginate\":{\"numItems\":100,\"cursor\":null}}";
    CHECK_OK(herald_query_parse(last, strlen(last), NULL, &q, &err));
    CHECK_OK(herald_query_run(q, t, NULL, &r, NULL, &err));
    CHECK(herald_object_get(&r, "isDone")->u.b);
    char end[200], text[400];
    snprintf(end, sizeof end, "%s", herald_object_get(&r, "continueCursor")->u.s.ptr);
    herald_value_free(&r);
    herald_query_free(q);
    snprintf(text, sizeof text, whole, end);
    CHECK_OK(herald_query_parse(text, strlen(text), NULL, &q, &err));
    herald_query_limits lim = {.max_docs = 4};
    CHECK_OK(herald_query_run(q, t, &lim, &r, NULL, &err));
    const herald_value *status = herald_object_get(&r, "pageStatus");
    CHECK(status && !strcmp(status->u.s.ptr, "SplitRequired"));
    CHECK(herald_object_get(&r, "splitCursor") != NULL);
    CHECK(herald_object_get(&r, "page")->u.arr.len == 4);
    CHECK(!strcmp(herald_object_get(&r, "continueCursor")->u.s.ptr, end));
    herald_value_free(&r);
    /* Without a fixed end the hard limit is still an error. */
    herald_query_free(q);
    CHECK_OK(herald_query_parse(last, strlen(last), NULL, &q, &err));
    CHECK(herald_query_run(q, t, &lim, &r, NULL, &err) == HERALD_ELIMIT);
    herald_query_free(q);

    /* A cursor that is not one of this query's: InvalidCursor. */
    const char *bad[] = {"!!", "AQ", "garbage-cursor"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int as_end = 0; as_end < 2; as_end++) {
            if (as_end)
                snprintf(text, sizeof text,
                         "{\"table\":\"posts\",\"paginate\":{\"numItems\":3,\"cursor\":null,"
                         "\"endCursor\":\"%s\"}}",
                         bad[i]);
            else
                snprintf(text, sizeof text,
                         "{\"table\":\"posts\",\"paginate\":{\"numItems\":3,\"cursor\":\"%s\"}}",
                         bad[i]);
            CHECK_OK(herald_query_parse(text, strlen(text), NULL, &q, &err));
            herald_error e = {0};
            CHECK(herald_query_run(q, t, NULL, &r, NULL, &e) == HERALD_EINVAL);
            CHECK(strstr(e.message, "InvalidCursor") != NULL);
            herald_query_free(q);
        }
    }
    /* A cursor of another index. */
    snprintf(
        text, sizeof text,
        "{\"table\":\"posts\",\"index\":\"by_id\",\"paginate\":{\"numItems\":3,\"cursor\":\"%s\"}}",
        journal);
    CHECK_OK(herald_query_parse(text, strlen(text), NULL, &q, &err));
    CHECK(herald_query_run(q, t, NULL, &r, NULL, &err) == HERALD_EINVAL &&
          strstr(err.message, "InvalidCursor"));
    herald_query_free(q);
    herald_txn_end(t);
    clear_posts();
}

/* Through a function: InvalidCursor, the validator, no journal without paginate, the first page's.
 */
static void test_function_edges(void)
{
    for (int i = 1; i <= 3; i++)
        write(i, NULL, NULL, NULL, NULL);
    herald_error err = {0};
    page p = {0};
    snprintf(p.cursor, sizeof p.cursor, "not-a-cursor");
    CHECK(run_page(&p, "asc", 3, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "InvalidCursor") != NULL);
    p.cursor[0] = 0;
    snprintf(p.journal, sizeof p.journal, "not-a-journal");
    CHECK(run_page(&p, "asc", 3, NULL, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "InvalidCursor") != NULL);
    p.journal[0] = 0;
    /* v.paginationOpts(): numItems must be a number. */
    herald_value a = json(
                     "{\"order\":\"asc\",\"paginationOpts\":{\"numItems\":\"3\",\"cursor\":null}}"),
                 result, data;
    herald_txn *t;
    CHECK_OK(herald_read_begin(store, &t, &err));
    char *journal_out = (char *)1;
    hd_fncall c = {.path = "posts:list",
                   .args = &a,
                   .kind = HD_FN_QUERY,
                   .txn = t,
                   .journal_out = &journal_out};
    CHECK(hd__fn_call(rt, &c, &result, &data, &err) == HERALD_EVALIDATION);
    CHECK(journal_out == NULL);
    herald_value_free(&data);
    herald_value_free(&a);
    /* No paginate: no journal. */
    a = json("{}");
    c.path = "posts:count";
    journal_out = (char *)1;
    CHECK_OK(hd__fn_call(rt, &c, &result, &data, &err));
    CHECK(journal_out == NULL);
    herald_value_free(&result);
    herald_value_free(&data);
    herald_value_free(&a);
    /* Two paginate() calls: the journal is the first's end, and applies only to it. */
    a = json("{\"paginationOpts\":{\"numItems\":1,\"cursor\":null}}");
    c.path = "posts:twoPages";
    c.journal = NULL;
    CHECK_OK(hd__fn_call(rt, &c, &result, &data, &err));
    const herald_value *first = herald_object_get(&result, "first");
    CHECK(journal_out && !strcmp(journal_out, herald_object_get(first, "continueCursor")->u.s.ptr));
    herald_value_free(&result);
    herald_value_free(&data);
    char *j = journal_out;
    write(0, NULL, NULL, NULL, NULL); /* appended: not in the first page with its end fixed */
    herald_txn_end(t);
    CHECK_OK(herald_read_begin(store, &t, &err));
    c.txn = t;
    c.journal = j;
    CHECK_OK(hd__fn_call(rt, &c, &result, &data, &err));
    first = herald_object_get(&result, "first");
    const herald_value *second = herald_object_get(&result, "second");
    CHECK(herald_object_get(first, "page")->u.arr.len == 1);
    CHECK(herald_object_get(second, "page")->u.arr.len == 1);
    CHECK(journal_out && !strcmp(journal_out, j));
    free(j);
    free(journal_out);
    herald_value_free(&result);
    herald_value_free(&data);
    herald_value_free(&a);
    herald_txn_end(t);
    page_free(&p);
    clear_posts();
}

int main(void)
{
    const char *base = mkdtemp(dir_template);
    if (!base) return 1;
    snprintf(data_dir, sizeof data_dir, "%s/data", base);
    snprintf(app_dir, sizeof app_dir, "%s/app", base);
    char path[500];
    mkdir(app_dir, 0700);
    snprintf(path, sizeof path, "%s/functions", app_dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/functions/posts.lua", app_dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(posts_lua, f);
    fclose(f);
    herald_error err = {0};
    herald_store_options so = {.no_sync = true};
    CHECK_OK(herald_store_open(data_dir, &so, &store, &err));
    herald_schema *schema = NULL;
    CHECK_OK(herald_schema_from_json(schema_json, strlen(schema_json), "test", &schema, &err));
    CHECK_OK(herald_store_set_schema(store, schema, &err));
    hd_fnbundle *b = NULL;
    CHECK_OK(hd__fnbundle_read(app_dir, &b, &err));
    if (hd__fnrt_new(b, herald_store_schema(store), NULL, &rt, &err)) {
        fprintf(stderr, "load: %s\n", err.message);
        return 1;
    }
    hd__fnbundle_unref(b);
    test_feed_desc();
    test_appended_and_split();
    test_raw_queries();
    test_function_edges();
    hd__fnrt_free(rt);
    herald_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    CHECK_DONE();
}
