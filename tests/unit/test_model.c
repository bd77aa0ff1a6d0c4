/*
 * Model-based randomised test of the store and the query engine.
 *
 * Thousands of random writes (insert, patch including removing a field,
 * replace, delete; in groups of mutations, some mutations aborted after
 * writing, some groups rolled back whole) and queries (every index, random
 * equality prefixes and bounds, filters, both orders, collect / take /
 * first / unique / paginate / get, small read limits) run against Herald
 * and against a tiny in-memory reference whose answers are obviously
 * right: it keeps the documents in a list, keeps those inside the range,
 * sorts them by (index values..., _creationTime, _id) and applies the
 * filter. Every answer must be identical.
 *
 * Beyond equal answers it checks the promises the live server builds on:
 * - pagination: walks page by page with random writes between pages; each
 *   page is exactly the model's page after the previous page's last key,
 *   and every document that stayed untouched for the whole walk is
 *   returned exactly once;
 * - read sets: a commit that changes the result of a query run before it
 *   always overlaps the query's read set (never a missed update), and a
 *   commit that only touches other feeds never overlaps a by_feed_position
 *   query on one feed; the false-positive rate is printed.
 * Some indexed strings are longer than LMDB's 511-byte key limit, sharing
 * long prefixes, so index keys are truncated (src/index.c) and runs of
 * equal prefixes must still come out in order. At the end the store is
 * checked, closed, reopened and compared once more.
 *
 * HERALD_MODEL_SEED and HERALD_MODEL_OPS override the seed (default: time
 * and pid, printed) and the number of write operations (default 10,000,
 * with at least 2 queries for every 5 of them). Ids come from OpenSSL, so
 * a seed replays the same operations, though not the same by_id order.
 *
 * The test must never paper over a difference: when Herald and the model
 * disagree it prints the seed, the query and both answers, and fails.
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "herald/query.h"
#include "herald/schema.h"
#include "herald/store.h"
#include "herald/value.h"

/* ---- the schema ---------------------------------------------------------- */

static const char schema_json[] =
    "{\"schemaValidation\":true,\"tables\":{"
    "\"reels\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"feedId\":{\"type\":\"string\"},"
    "  \"position\":{\"type\":\"number\"},"
    "  \"status\":{\"type\":\"string\",\"optional\":true},"
    "  \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"optional\":true},"
    "  \"meta\":{\"type\":\"object\",\"optional\":true,\"fields\":{"
    "     \"score\":{\"type\":\"number\",\"optional\":true},"
    "     \"note\":{\"type\":\"string\",\"optional\":true}}},"
    "  \"extra\":{\"type\":\"any\",\"optional\":true}}},"
    " \"indexes\":[{\"name\":\"by_feed_position\",\"fields\":[\"feedId\",\"position\"]},"
    "  {\"name\":\"by_status\",\"fields\":[\"status\"]},"
    "  {\"name\":\"by_score\",\"fields\":[\"meta.score\"]},"
    "  {\"name\":\"by_tags\",\"fields\":[\"tags\"]},"
    "  {\"name\":\"by_extra\",\"fields\":[\"extra\"]}]},"
    "\"jobs\":{\"document\":{\"type\":\"object\",\"fields\":{"
    "  \"reelId\":{\"type\":\"id\",\"table\":\"reels\",\"optional\":true},"
    "  \"count\":{\"type\":\"int64\"},"
    "  \"done\":{\"type\":\"boolean\"},"
    "  \"label\":{\"type\":\"union\",\"members\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}},"
    " \"indexes\":[{\"name\":\"by_done_count\",\"fields\":[\"done\",\"count\"]},"
    "  {\"name\":\"by_reel\",\"fields\":[\"reelId\"]},"
    "  {\"name\":\"by_label\",\"fields\":[\"label\"]}]}}}";

enum { T_REELS, T_JOBS, NTABLES };
enum { IX_BY_ID, IX_BY_CREATION_TIME, IX_FEED_POSITION };
enum { MODE_COLLECT, MODE_TAKE, MODE_FIRST, MODE_UNIQUE, MODE_PAGINATE, MODE_GET };

#define MAX_IX_FIELDS 2
#define MAX_TUPLE     (MAX_IX_FIELDS + 2) /* index values, _creationTime, _id */
#define MAX_INDEXES   7

typedef struct table_info {
    const char *name;
    size_t nindexes;
    const char *index[MAX_INDEXES];
    const char *fields[MAX_INDEXES][MAX_IX_FIELDS];
    size_t nfields[MAX_INDEXES];
    const char *paths[16]; /* what filters look at; NULL-terminated */
} table_info;

static const table_info tables[NTABLES] = {
    {"reels",
     7,
     {"by_id", "by_creation_time", "by_feed_position", "by_status", "by_score", "by_tags",
      "by_extra"},
     {{0}, {0}, {"feedId", "position"}, {"status"}, {"meta.score"}, {"tags"}, {"extra"}},
     {0, 0, 2, 1, 1, 1, 1},
     {"feedId", "position", "status", "tags", "meta", "meta.score", "meta.note", "extra", "extra.a",
      "_id", "_creationTime", "missing", NULL}},
    {"jobs",
     5,
     {"by_id", "by_creation_time", "by_done_count", "by_reel", "by_label"},
     {{0}, {0}, {"done", "count"}, {"reelId"}, {"label"}},
     {0, 0, 2, 1, 1},
     {"reelId", "count", "done", "label", "_id", "_creationTime", "missing", NULL}},
};

/* ---- small helpers ------------------------------------------------------- */

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "test_model: %s: %s\n", what, herald_strerror(rc));
        abort();
    }
}

static bool chance(unsigned percent)
{
    return check_below(100) < percent;
}

static herald_value vstr(const char *s, size_t n)
{
    herald_value v;
    must(herald_string(&v, s, n), "string");
    return v;
}

static herald_value vcstr(const char *s)
{
    return vstr(s, strlen(s));
}

static herald_value vcopy(const herald_value *in)
{
    herald_value v;
    must(herald_value_copy(&v, in), "copy");
    return v;
}

static herald_value vobj(void)
{
    herald_value v;
    herald_object_init(&v);
    return v;
}

static herald_value varr(void)
{
    herald_value v;
    herald_array_init(&v);
    return v;
}

static void oset(herald_value *o, const char *k, herald_value v)
{
    must(herald_object_set(o, k, strlen(k), v), "object set");
}

static void apush(herald_value *a, herald_value v)
{
    must(herald_array_push(a, v), "array push");
}

static const herald_value undef_value = {.type = HERALD_UNDEFINED};

/* Follows a dotted path without the library's help; NULL when missing. */
static const herald_value *ref_path(const herald_value *doc, const char *path)
{
    const herald_value *v = doc;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!v || v->type != HERALD_OBJECT) return NULL;
        const herald_value *next = NULL;
        for (size_t i = 0; i < v->u.obj.len; i++)
            if (v->u.obj.fields[i].key_len == n && memcmp(v->u.obj.fields[i].key, p, n) == 0)
                next = &v->u.obj.fields[i].val;
        v = next;
        if (!dot) return v;
        p = dot + 1;
    }
}

static const herald_value *path_or_undef(const herald_value *doc, const char *path)
{
    const herald_value *v = ref_path(doc, path);
    return v ? v : &undef_value;
}

/* ---- the reference's documents and states -------------------------------- */

/* An immutable document shared between states: a write makes a new one. */
typedef struct mdoc {
    int refs;
    int table;
    char id[HERALD_ID_CHARS + 1];
    double ct;
    herald_value v; /* with _id and _creationTime */
} mdoc;

typedef struct mstate {
    mdoc **d;
    size_t n, cap;
} mstate;

static mdoc *mdoc_new(int table, const char *id, herald_value v)
{
    mdoc *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->refs = 1;
    d->table = table;
    snprintf(d->id, sizeof d->id, "%s", id);
    d->v = v;
    const herald_value *ct = herald_object_get(&v, "_creationTime");
    d->ct = ct && ct->type == HERALD_FLOAT64 ? ct->u.f : 0;
    return d;
}

static mdoc *mdoc_ref(mdoc *d)
{
    d->refs++;
    return d;
}

static void mdoc_unref(mdoc *d)
{
    if (d && --d->refs == 0) {
        herald_value_free(&d->v);
        free(d);
    }
}

static void state_add(mstate *s, mdoc *d)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->d = realloc(s->d, s->cap * sizeof *s->d);
        if (!s->d) abort();
    }
    s->d[s->n++] = d;
}

static void state_copy(mstate *dst, const mstate *src)
{
    *dst = (mstate){0};
    for (size_t i = 0; i < src->n; i++)
        state_add(dst, mdoc_ref(src->d[i]));
}

static void state_free(mstate *s)
{
    for (size_t i = 0; i < s->n; i++)
        mdoc_unref(s->d[i]);
    free(s->d);
    *s = (mstate){0};
}

static long state_find(const mstate *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->d[i]->id, id) == 0) return (long)i;
    return -1;
}

static void state_set(mstate *s, size_t i, mdoc *d)
{
    mdoc_unref(s->d[i]);
    s->d[i] = d;
}

static void state_del(mstate *s, size_t i)
{
    mdoc_unref(s->d[i]);
    s->d[i] = s->d[--s->n];
}

static size_t state_count(const mstate *s, int table)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->d[i]->table == table;
    return n;
}

static long state_pick(const mstate *s, int table)
{
    size_t n = state_count(s, table);
    if (!n) return -1;
    size_t k = check_below((unsigned)n);
    for (size_t i = 0; i < s->n; i++)
        if (s->d[i]->table == table && k-- == 0) return (long)i;
    return -1;
}

static double state_max_ct(const mstate *s)
{
    double m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->d[i]->ct > m) m = s->d[i]->ct;
    return m;
}

/* ---- the run ------------------------------------------------------------- */

typedef struct known_id {
    char id[HERALD_ID_CHARS + 1];
    int table;
} known_id;

static struct {
    unsigned long long seed;
    long target_ops;
    herald_store *s;
    char dir[512];
    mstate committed;
    uint64_t version; /* of the last committed mutation */
    known_id *ids;    /* every id Herald handed out, kept or not */
    size_t nids, capids;
    long step, ops, queries, queries_in_mutations, expected_errors;
    long mutations, aborted_mutations, groups, rolled_back;
    long walks_done, walks_abandoned, walk_pages;
    long rs_checked, rs_changed, rs_overlap, rs_false_pos, rs_feed_checks;
    long limit_hits, unique_errors;
} M;

static herald_value feeds[16];
static size_t nfeeds;
static char long_base[800];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nMODEL MISMATCH (HERALD_MODEL_SEED=%llu, step %ld, op %ld): ", M.seed, M.step,
            M.ops);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (++check_failures > 10) {
        fprintf(stderr, "test_model: too many failures, stopping\n");
        exit(1);
    }
}

static void print_value(const char *label, const herald_value *v)
{
    char *j = herald_value_to_json(v);
    size_t n = j ? strlen(j) : 0;
    fprintf(stderr, "  %s: %.1500s%s\n", label, j ? j : "(unprintable)", n > 1500 ? " ..." : "");
    free(j);
}

/* For arrays of documents: their ids, which say more than 600-byte strings. */
static void print_docs(const char *label, const herald_value *v)
{
    if (!v || v->type != HERALD_ARRAY) {
        print_value(label, v ? v : &undef_value);
        return;
    }
    fprintf(stderr, "  %s: %zu documents:", label, v->u.arr.len);
    for (size_t i = 0; i < v->u.arr.len && i < 40; i++) {
        const herald_value *id = herald_object_get(&v->u.arr.items[i], "_id");
        fprintf(stderr, " %.8s", id && id->type == HERALD_STRING ? id->u.s.ptr : "?");
    }
    fputc('\n', stderr);
}

static void remember_id(const char *id, int table)
{
    if (M.nids == M.capids) {
        M.capids = M.capids ? M.capids * 2 : 256;
        M.ids = realloc(M.ids, M.capids * sizeof *M.ids);
        if (!M.ids) abort();
    }
    snprintf(M.ids[M.nids].id, sizeof M.ids[M.nids].id, "%s", id);
    M.ids[M.nids++].table = table;
}

/* A random id of `table` that Herald once handed out (it may be gone), or NULL. */
static const char *random_known_id(int table)
{
    if (!M.nids) return NULL;
    for (int tries = 0; tries < 20; tries++) {
        const known_id *k = &M.ids[check_below((unsigned)M.nids)];
        if (k->table == table) return k->id;
    }
    return NULL;
}

/* ---- value generators ---------------------------------------------------- */

static void init_feeds(void)
{
    for (size_t i = 0; i < sizeof long_base - 1; i++)
        long_base[i] = (char)('a' + (i * 7 + i / 26) % 26);
    static const char *const short_feeds[] = {"feed-a", "feed-b", "feed-c", ""};
    for (size_t i = 0; i < 4; i++)
        feeds[nfeeds++] = vcstr(short_feeds[i]);
    /* Long feeds share their first 470+ bytes, so their keys share a
     * truncated prefix and form runs that the store must sort itself. */
    static const struct {
        size_t len;
        const char *suffix;
    } longs[] = {{300, "x"}, {478, "q"}, {484, "a"}, {485, ""}, {486, "a"},
                 {486, "b"}, {487, "c"}, {490, "a"}, {600, "z"}};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        char buf[700];
        size_t n = longs[i].len, k = strlen(longs[i].suffix);
        memcpy(buf, long_base, n);
        memcpy(buf + n, longs[i].suffix, k);
        feeds[nfeeds++] = vstr(buf, n + k);
    }
}

static herald_value gen_long_string(void)
{
    static const size_t lens[] = {300, 470, 480, 484, 486, 487, 490, 500, 520, 600};
    size_t n = lens[check_below(sizeof lens / sizeof lens[0])];
    char buf[700];
    memcpy(buf, long_base, n);
    size_t k = check_below(3);
    for (size_t i = 0; i < k; i++)
        buf[n + i] = (char)('a' + check_below(3));
    return vstr(buf, n + k);
}

static herald_value gen_short_string(void)
{
    static const char *const pool[] = {"",      "a",     "ab", "b",
                                       "ready", "draft", "zz", "\xc3\xa9t\xc3\xa9"};
    unsigned r = check_below(10);
    if (r == 8) return vstr("b\0c", 3); /* an embedded NUL */
    if (r == 9) return vstr("b\0", 2);
    return vcstr(pool[r]);
}

static herald_value gen_number(void)
{
    unsigned r = check_below(100);
    if (r < 60) return herald_float64((double)check_below(10));
    if (r < 80) return herald_float64(((double)check_below(20001) - 10000.0) / 100.0);
    static const double specials[] = {-0.0, 0.0, INFINITY, -INFINITY, 1e300, -1e-300, 0.5, 9.5};
    if (r < 95) return herald_float64(specials[check_below(8)]);
    return herald_float64(r < 98 ? NAN : -NAN);
}

static herald_value gen_int64(void)
{
    unsigned r = check_below(20);
    if (r == 0) return herald_int64(INT64_MIN);
    if (r == 1) return herald_int64(INT64_MAX);
    return herald_int64((int64_t)check_below(11) - 5);
}

static herald_value gen_any(int depth)
{
    switch (check_below(depth < 2 ? 10 : 8)) {
    case 0:
        return herald_null();
    case 1:
        return gen_int64();
    case 2:
        return gen_number();
    case 3:
        return herald_bool(check_below(2));
    case 4:
        return chance(15) ? gen_long_string() : gen_short_string();
    case 5: {
        static const uint8_t raw[] = {0x00, 0xff, 0x01, 0x00};
        herald_value v;
        must(herald_bytes(&v, raw + check_below(2), check_below(3)), "bytes");
        return v;
    }
    case 6:
        return herald_bool(false);
    case 7:
        return herald_float64((double)check_below(3));
    case 8: {
        herald_value a = varr();
        for (unsigned i = check_below(4); i > 0; i--)
            apush(&a, gen_any(depth + 1));
        return a;
    }
    default: {
        herald_value o = vobj();
        static const char *const keys[] = {"a", "b", "c", "d"};
        for (unsigned i = check_below(4); i > 0; i--)
            oset(&o, keys[check_below(4)], gen_any(depth + 1));
        return o;
    }
    }
}

static herald_value gen_feed(void)
{
    return vcopy(&feeds[check_below((unsigned)nfeeds)]);
}

static herald_value gen_status(void)
{
    static const char *const st[] = {"draft", "ready", "failed", ""};
    unsigned r = check_below(10);
    if (r < 6) return vcstr(st[r % 4]);
    if (r < 9) return gen_long_string();
    return gen_short_string();
}

static herald_value gen_tags(void)
{
    static const char *const pool[] = {"x", "y", "news", ""};
    herald_value a = varr();
    for (unsigned i = check_below(4); i > 0; i--)
        apush(&a, chance(15) ? gen_long_string() : vcstr(pool[check_below(4)]));
    return a;
}

static herald_value gen_meta(void)
{
    herald_value o = vobj();
    if (chance(75)) oset(&o, "score", gen_number());
    if (chance(40)) oset(&o, "note", gen_short_string());
    return o;
}

static herald_value gen_label(void)
{
    unsigned r = check_below(10);
    if (r < 2) return herald_null();
    if (r < 4) return gen_long_string();
    return gen_short_string();
}

static herald_value gen_reel_id(const mstate *st)
{
    long i = state_pick(st, T_REELS);
    if (i >= 0 && chance(80)) return vcstr(st->d[i]->id);
    const char *k = random_known_id(T_REELS);
    return k ? vcstr(k) : herald_undefined();
}

static herald_value gen_reel(void)
{
    herald_value o = vobj();
    oset(&o, "feedId", gen_feed());
    oset(&o, "position", gen_number());
    if (chance(60)) oset(&o, "status", gen_status());
    if (chance(40)) oset(&o, "tags", gen_tags());
    if (chance(60)) oset(&o, "meta", gen_meta());
    if (chance(40)) oset(&o, "extra", gen_any(0));
    return o;
}

static herald_value gen_job(const mstate *st)
{
    herald_value o = vobj();
    if (chance(70)) {
        herald_value r = gen_reel_id(st);
        if (r.type != HERALD_UNDEFINED) oset(&o, "reelId", r);
    }
    oset(&o, "count", gen_int64());
    oset(&o, "done", herald_bool(check_below(2)));
    oset(&o, "label", gen_label());
    return o;
}

/* A value for a field path of `table`, of the kind documents hold there. */
static herald_value gen_for_path(int table, const char *path, const mstate *st)
{
    if (!strcmp(path, "_id")) {
        const char *k = random_known_id(check_below(4) ? table : 1 - table);
        return k ? vcstr(k) : vcstr("nope");
    }
    if (!strcmp(path, "_creationTime")) {
        double m = state_max_ct(st);
        return herald_float64(m ? m - (double)check_below(2000) : (double)check_below(10));
    }
    if (table == T_REELS) {
        if (!strcmp(path, "feedId")) return gen_feed();
        if (!strcmp(path, "position") || !strcmp(path, "meta.score")) return gen_number();
        if (!strcmp(path, "status")) return gen_status();
        if (!strcmp(path, "tags")) return gen_tags();
        if (!strcmp(path, "meta")) return gen_meta();
        if (!strcmp(path, "meta.note")) return gen_short_string();
    } else {
        if (!strcmp(path, "reelId")) {
            herald_value v = gen_reel_id(st);
            return v.type == HERALD_UNDEFINED ? herald_null() : v;
        }
        if (!strcmp(path, "count")) return gen_int64();
        if (!strcmp(path, "done")) return herald_bool(check_below(2));
        if (!strcmp(path, "label")) return gen_label();
    }
    return gen_any(1);
}

/* Mostly a value some document has at `path`, so that ranges and filters match. */
static herald_value pick_value(int table, const char *path, const mstate *st)
{
    long i = state_pick(st, table);
    if (i >= 0 && chance(70)) {
        const herald_value *v = ref_path(&st->d[i]->v, path);
        if (v && v->type != HERALD_UNDEFINED) return vcopy(v);
    }
    return gen_for_path(table, path, st);
}

/* ---- queries: the spec, its JSON form, and the reference's answer ------- */

typedef struct qspec {
    int table, index;
    herald_value eq[MAX_TUPLE];
    size_t neq;
    bool has_lower, lower_incl, has_upper, upper_incl;
    herald_value lower, upper;
    bool desc, omit_order, omit_index, explicit_collect;
    herald_value filter; /* HERALD_UNDEFINED: none */
    int mode;
    size_t n; /* take, numItems */
    char get_id[HERALD_ID_CHARS + 1];
    size_t max_docs;             /* 0: the default limit */
    char *cursor;                /* paginate: NULL from the start */
    herald_value pos[MAX_TUPLE]; /* the model's view of the cursor */
    size_t npos;                 /* 0: from the start */
} qspec;

static void qspec_free(qspec *q)
{
    for (size_t i = 0; i < MAX_TUPLE; i++) {
        herald_value_free(&q->eq[i]);
        herald_value_free(&q->pos[i]);
    }
    herald_value_free(&q->lower);
    herald_value_free(&q->upper);
    herald_value_free(&q->filter);
    free(q->cursor);
    memset(q, 0, sizeof *q);
}

static void qspec_copy(qspec *dst, const qspec *src)
{
    *dst = *src;
    for (size_t i = 0; i < MAX_TUPLE; i++) {
        dst->eq[i] = vcopy(&src->eq[i]);
        dst->pos[i] = vcopy(&src->pos[i]);
    }
    dst->lower = vcopy(&src->lower);
    dst->upper = vcopy(&src->upper);
    dst->filter = vcopy(&src->filter);
    dst->cursor = src->cursor ? strdup(src->cursor) : NULL;
}

/* The fields a range may name: the index fields then _creationTime (by_id: _id). */
static size_t range_field_count(int table, int index)
{
    return index == IX_BY_ID ? 1 : tables[table].nfields[index] + 1;
}

static const char *range_field_name(int table, int index, size_t i)
{
    if (index == IX_BY_ID) return "_id";
    return i < tables[table].nfields[index] ? tables[table].fields[index][i] : "_creationTime";
}

/* The sort key of a document in an index: values..., _creationTime, _id. */
static size_t doc_tuple(int table, int index, const herald_value *doc, const herald_value **out)
{
    size_t n = 0;
    if (index != IX_BY_ID) {
        for (size_t i = 0; i < tables[table].nfields[index]; i++)
            out[n++] = path_or_undef(doc, tables[table].fields[index][i]);
        out[n++] = path_or_undef(doc, "_creationTime");
    }
    /* Id text is base32 in an ascending alphabet, so it sorts like the binary id. */
    out[n++] = path_or_undef(doc, "_id");
    return n;
}

static int tuple_cmp(const herald_value *const *a, const herald_value *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = herald_value_compare(a[i], b[i]);
        if (c) return c;
    }
    return 0;
}

typedef struct range_cond {
    const char *op;
    const herald_value *val;
} range_cond;

static herald_value build_query(const qspec *q)
{
    const table_info *ti = &tables[q->table];
    herald_value v = vobj();
    oset(&v, "table", vcstr(ti->name));
    if (!q->omit_index) oset(&v, "index", vcstr(ti->index[q->index]));
    if (q->neq || q->has_lower || q->has_upper) {
        herald_value r = varr();
        range_cond conds[MAX_TUPLE + 2];
        size_t nc = 0;
        for (size_t i = 0; i < q->neq; i++)
            conds[nc++] = (range_cond){"eq", &q->eq[i]};
        range_cond lower = {q->lower_incl ? "gte" : "gt", &q->lower};
        range_cond upper = {q->upper_incl ? "lte" : "lt", &q->upper};
        bool upper_first = chance(50); /* bounds may come in either order */
        if (q->has_upper && upper_first) conds[nc++] = upper;
        if (q->has_lower) conds[nc++] = lower;
        if (q->has_upper && !upper_first) conds[nc++] = upper;
        for (size_t k = 0; k < nc; k++) {
            size_t field = k < q->neq ? k : q->neq;
            herald_value pair = varr(), c = vobj();
            apush(&pair, vcstr(range_field_name(q->table, q->index, field)));
            apush(&pair, vcopy(conds[k].val));
            oset(&c, conds[k].op, pair);
            apush(&r, c);
        }
        oset(&v, "range", r);
    }
    if (!q->omit_order) oset(&v, "order", vcstr(q->desc ? "desc" : "asc"));
    if (q->filter.type != HERALD_UNDEFINED) oset(&v, "filter", vcopy(&q->filter));
    switch (q->mode) {
    case MODE_COLLECT:
        if (q->explicit_collect) oset(&v, "collect", herald_bool(true));
        break;
    case MODE_TAKE:
        oset(&v, "take", chance(20) ? herald_int64((int64_t)q->n) : herald_float64((double)q->n));
        break;
    case MODE_FIRST:
        oset(&v, "first", herald_bool(true));
        break;
    case MODE_UNIQUE:
        oset(&v, "unique", herald_bool(true));
        break;
    case MODE_PAGINATE: {
        herald_value p = vobj();
        oset(&p, "numItems", herald_float64((double)q->n));
        if (q->cursor)
            oset(&p, "cursor", vcstr(q->cursor));
        else if (chance(70))
            oset(&p, "cursor", herald_null());
        oset(&v, "paginate", p);
        break;
    }
    default:
        oset(&v, "get", vcstr(q->get_id));
    }
    return v;
}

/* An operand as Herald reads it: {"field": p}, {"literal": v}, or a literal. */
static const herald_value *ref_operand(const herald_value *e, const herald_value *doc)
{
    if (e->type == HERALD_OBJECT && e->u.obj.len == 1) {
        const herald_field *f = &e->u.obj.fields[0];
        if (!strcmp(f->key, "field")) return path_or_undef(doc, f->val.u.s.ptr);
        if (!strcmp(f->key, "literal")) return &f->val;
    }
    return e;
}

static bool ref_eval(const herald_value *e, const herald_value *doc)
{
    const herald_field *f = &e->u.obj.fields[0];
    const herald_value *a = &f->val;
    if (!strcmp(f->key, "and") || !strcmp(f->key, "or")) {
        bool is_and = f->key[0] == 'a';
        for (size_t i = 0; i < a->u.arr.len; i++)
            if (ref_eval(&a->u.arr.items[i], doc) != is_and) return !is_and;
        return is_and;
    }
    if (!strcmp(f->key, "not"))
        return !ref_eval(a->type == HERALD_ARRAY ? &a->u.arr.items[0] : a, doc);
    int c = herald_value_compare(ref_operand(&a->u.arr.items[0], doc),
                                 ref_operand(&a->u.arr.items[1], doc));
    if (!strcmp(f->key, "eq")) return c == 0;
    if (!strcmp(f->key, "neq")) return c != 0;
    if (!strcmp(f->key, "lt")) return c < 0;
    if (!strcmp(f->key, "lte")) return c <= 0;
    if (!strcmp(f->key, "gt")) return c > 0;
    return c >= 0;
}

typedef struct ref_entry {
    mdoc *d;
    const herald_value *t[MAX_TUPLE];
    size_t nt;
} ref_entry;

static int ref_entry_cmp(const void *a, const void *b)
{
    const ref_entry *x = a, *y = b;
    return tuple_cmp(x->t, y->t, x->nt);
}

typedef struct ref_result {
    int code;           /* 0, HERALD_EUNIQUE or HERALD_ELIMIT */
    herald_value value; /* paginate: {"page", "isDone"} without the cursor */
    mdoc *last;         /* paginate: the page's last document */
} ref_result;

static bool ref_in_range(const qspec *q, const herald_value *const *t)
{
    for (size_t i = 0; i < q->neq; i++)
        if (herald_value_compare(t[i], &q->eq[i]) != 0) return false;
    if (q->has_lower) {
        int c = herald_value_compare(t[q->neq], &q->lower);
        if (c < 0 || (c == 0 && !q->lower_incl)) return false;
    }
    if (q->has_upper) {
        int c = herald_value_compare(t[q->neq], &q->upper);
        if (c > 0 || (c == 0 && !q->upper_incl)) return false;
    }
    return true;
}

/* The obviously-correct answer: filter the list, sort it, walk it. */
static void ref_run(const qspec *q, const mstate *st, ref_result *out)
{
    *out = (ref_result){0};
    if (q->mode == MODE_GET) {
        long i = state_find(st, q->get_id);
        out->value = i >= 0 && st->d[i]->table == q->table ? vcopy(&st->d[i]->v) : herald_null();
        return;
    }
    ref_entry *es = malloc((st->n + 1) * sizeof *es);
    if (!es) abort();
    size_t ne = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->d[i]->table != q->table) continue;
        ref_entry *e = &es[ne];
        e->d = st->d[i];
        e->nt = doc_tuple(q->table, q->index, &e->d->v, e->t);
        if (!ref_in_range(q, e->t)) continue;
        if (q->npos) {
            const herald_value *pos[MAX_TUPLE];
            for (size_t k = 0; k < q->npos; k++)
                pos[k] = &q->pos[k];
            int c = tuple_cmp(e->t, pos, e->nt);
            if (q->desc ? c >= 0 : c <= 0) continue; /* not after the cursor */
        }
        ne++;
    }
    qsort(es, ne, sizeof *es, ref_entry_cmp);
    size_t want = q->mode == MODE_FIRST     ? 1
                  : q->mode == MODE_UNIQUE  ? 2
                  : q->mode == MODE_COLLECT ? SIZE_MAX
                                            : q->n;
    herald_value items = varr();
    size_t reads = 0, matched = 0;
    for (size_t k = 0; k < ne && matched < want; k++) {
        ref_entry *e = &es[q->desc ? ne - 1 - k : k];
        reads++;
        if (q->filter.type == HERALD_UNDEFINED || ref_eval(&q->filter, &e->d->v)) {
            apush(&items, vcopy(&e->d->v));
            matched++;
            out->last = e->d;
        }
    }
    free(es);
    bool exhausted = want > 0 && matched < want;
    if (reads > (q->max_docs ? q->max_docs : 32768)) {
        out->code = HERALD_ELIMIT;
        herald_value_free(&items);
        return;
    }
    switch (q->mode) {
    case MODE_FIRST:
    case MODE_UNIQUE:
        if (q->mode == MODE_UNIQUE && items.u.arr.len > 1) {
            out->code = HERALD_EUNIQUE;
            herald_value_free(&items);
        } else if (items.u.arr.len) {
            out->value = vcopy(&items.u.arr.items[0]);
            herald_value_free(&items);
        } else {
            out->value = herald_null();
            herald_value_free(&items);
        }
        break;
    case MODE_PAGINATE:
        out->value = vobj();
        oset(&out->value, "page", items);
        oset(&out->value, "isDone", herald_bool(exhausted));
        break;
    default:
        out->value = items;
    }
}

/* ---- random queries ------------------------------------------------------ */

static herald_value gen_filter(int table, const mstate *st, int depth)
{
    unsigned r = check_below(12);
    if (depth < 3 && r < 2) {
        herald_value kids = varr();
        for (unsigned i = check_below(4); i > 0; i--)
            apush(&kids, gen_filter(table, st, depth + 1));
        herald_value e = vobj();
        oset(&e, r == 0 ? "and" : "or", kids);
        return e;
    }
    if (depth < 3 && r == 2) {
        herald_value inner = gen_filter(table, st, depth + 1), e = vobj();
        if (chance(50)) {
            herald_value a = varr();
            apush(&a, inner);
            inner = a;
        }
        oset(&e, "not", inner);
        return e;
    }
    static const char *const ops[] = {"eq", "neq", "lt", "lte", "gt", "gte"};
    const char *const *paths = tables[table].paths;
    size_t npaths = 0;
    while (paths[npaths])
        npaths++;
    const char *path = paths[check_below((unsigned)npaths)];
    herald_value field = vobj();
    oset(&field, "field", vcstr(path));
    herald_value lit = pick_value(table, path, st);
    if (lit.type == HERALD_OBJECT || lit.type == HERALD_ARRAY || chance(25)) {
        herald_value w = vobj();
        oset(&w, "literal", lit);
        lit = w;
    }
    herald_value args = varr();
    unsigned form = check_below(20);
    if (form < 12) {
        apush(&args, field);
        apush(&args, lit);
    } else if (form < 17) {
        apush(&args, lit);
        apush(&args, field);
    } else {
        herald_value other = vobj();
        oset(&other, "field", vcstr(paths[check_below((unsigned)npaths)]));
        apush(&args, field);
        apush(&args, other);
        herald_value_free(&lit);
    }
    herald_value e = vobj();
    oset(&e, ops[check_below(6)], args);
    return e;
}

/* A range value for range field `i`: mostly taken from document `tpl`. */
static herald_value range_value(const qspec *q, size_t i, const mstate *st, long tpl)
{
    const char *f = range_field_name(q->table, q->index, i);
    if (tpl >= 0 && chance(75)) {
        const herald_value *v = path_or_undef(&st->d[tpl]->v, f);
        return v->type == HERALD_UNDEFINED ? herald_null() : vcopy(v);
    }
    if (q->index == IX_BY_ID) {
        const char *k = random_known_id(q->table);
        return vcstr(k ? k : st->d[tpl]->id);
    }
    return gen_for_path(q->table, f, st);
}

static void gen_query(qspec *q, const mstate *st, bool walk)
{
    memset(q, 0, sizeof *q);
    q->table = check_below(4) ? T_REELS : T_JOBS;
    const table_info *ti = &tables[q->table];
    q->index = (int)check_below((unsigned)ti->nindexes);
    if (q->table == T_REELS && chance(30)) q->index = IX_FEED_POSITION;
    long tpl = state_pick(st, q->table);
    size_t nrf = range_field_count(q->table, q->index);
    size_t neq = check_below((unsigned)nrf + 1);
    if (q->index == IX_FEED_POSITION && neq == 0 && chance(60)) neq = 1;
    if (q->index == IX_BY_ID && tpl < 0) neq = 0; /* no id to name */
    for (size_t i = 0; i < neq; i++) {
        /* Mostly one template document for the whole prefix, so it matches. */
        long from = chance(85) ? tpl : state_pick(st, q->table);
        q->eq[i] = range_value(q, i, st, from);
    }
    q->neq = neq;
    if (neq < nrf && !(q->index == IX_BY_ID && tpl < 0)) {
        if (chance(45)) {
            q->has_lower = true;
            q->lower_incl = chance(50);
            q->lower = range_value(q, neq, st, state_pick(st, q->table));
        }
        if (chance(45)) {
            q->has_upper = true;
            q->upper_incl = chance(50);
            q->upper = range_value(q, neq, st, state_pick(st, q->table));
        }
    }
    q->desc = chance(50);
    q->omit_order = !q->desc && chance(40);
    q->omit_index = q->index == IX_BY_CREATION_TIME && chance(40);
    if (chance(45)) q->filter = gen_filter(q->table, st, 0);
    if (chance(6)) q->max_docs = 1 + check_below(40);
    if (walk) {
        q->mode = MODE_PAGINATE;
        return;
    }
    unsigned r = check_below(100);
    if (r < 30) {
        q->mode = MODE_COLLECT;
        q->explicit_collect = chance(50);
    } else if (r < 50) {
        q->mode = MODE_TAKE;
        q->n = check_below(12);
    } else if (r < 62) {
        q->mode = MODE_FIRST;
    } else if (r < 72) {
        q->mode = MODE_UNIQUE;
    } else if (r < 86) {
        q->mode = MODE_PAGINATE;
        q->n = 1 + check_below(9); /* numItems 0 is refused (test_query checks it) */
    } else {
        /* get ignores index, range, order and filter: send it alone. */
        const char *k = random_known_id(q->table);
        if (tpl < 0 && !k) {
            q->mode = MODE_COLLECT;
            return;
        }
        int table = q->table;
        qspec_free(q);
        q->table = table;
        q->mode = MODE_GET;
        snprintf(q->get_id, sizeof q->get_id, "%s",
                 tpl >= 0 && (chance(60) || !k) ? st->d[tpl]->id : k);
        q->omit_index = q->omit_order = true;
    }
}

/* ---- running queries against both ---------------------------------------- */

typedef struct pending {
    qspec q;
    herald_value expected;
    herald_read_set rs;
} pending;

static pending *P;
static size_t np, capp;

static void pending_clear(void)
{
    for (size_t i = 0; i < np; i++) {
        qspec_free(&P[i].q);
        herald_value_free(&P[i].expected);
        herald_read_set_free(&P[i].rs);
    }
    np = 0;
}

static void report_query(const qspec *q, int rc, const herald_error *err, const herald_value *got,
                         const ref_result *want)
{
    herald_value qv = build_query(q);
    print_value("query", &qv);
    herald_value_free(&qv);
    if (q->npos) {
        herald_value pos = varr();
        for (size_t i = 0; i < q->npos; i++)
            apush(&pos, vcopy(&q->pos[i]));
        print_value("model's cursor position", &pos);
        herald_value_free(&pos);
    }
    fprintf(stderr, "  herald: rc %d (%s)%s%s\n", rc, herald_errcode_name(rc), rc ? ": " : "",
            rc ? err->message : "");
    fprintf(stderr, "  model:  rc %d (%s)\n", want->code, herald_errcode_name(want->code));
    if (!rc && want->code == 0 && got) {
        const herald_value *g = got, *w = &want->value;
        if (q->mode == MODE_PAGINATE) {
            print_value("herald isDone", herald_object_get(got, "isDone"));
            print_value("model isDone", herald_object_get(&want->value, "isDone"));
            g = herald_object_get(got, "page");
            w = herald_object_get(&want->value, "page");
        }
        print_docs("herald", g);
        print_docs("model", w);
        if (g && w && g->type == HERALD_ARRAY && w->type == HERALD_ARRAY) {
            for (size_t i = 0; i < g->u.arr.len && i < w->u.arr.len; i++)
                if (!herald_value_equal(&g->u.arr.items[i], &w->u.arr.items[i])) {
                    fprintf(stderr, "  first difference at item %zu\n", i);
                    print_value("herald item", &g->u.arr.items[i]);
                    print_value("model item", &w->u.arr.items[i]);
                    break;
                }
        } else if (g && w) {
            print_value("herald", g);
            print_value("model", w);
        }
    }
}

/* Checks the shape of a paginate answer and compares page and isDone. */
static bool page_matches(const herald_value *got, const herald_value *want)
{
    if (got->type != HERALD_OBJECT) return false;
    const herald_value *page = herald_object_get(got, "page");
    const herald_value *done = herald_object_get(got, "isDone");
    const herald_value *cur = herald_object_get(got, "continueCursor");
    if (!page || !done || !cur || page->type != HERALD_ARRAY || done->type != HERALD_BOOLEAN ||
        cur->type != HERALD_STRING || got->u.obj.len != 3)
        return false;
    if (!done->u.b && page->u.arr.len && cur->u.s.len == 0) return false; /* more needs a cursor */
    return herald_value_equal(page, herald_object_get(want, "page")) &&
           herald_value_equal(done, herald_object_get(want, "isDone"));
}

/*
 * Runs `q` in `t` and compares the answer with the model's on `st`.
 * Returns true when they agree; *got (if not NULL) then holds Herald's
 * answer and *want the model's. With `keep`, the read set of a successful
 * run waits for the next commit.
 */
static bool run_query(const qspec *q, herald_txn *t, const mstate *st, bool keep,
                      herald_value *got_out, ref_result *want_out)
{
    M.queries++;
    herald_value qv = build_query(q);
    herald_query *hq = NULL;
    herald_error err = {0};
    int rc = herald_query_from_value(&qv, herald_store_schema(M.s), &hq, &err);
    herald_value_free(&qv);
    if (rc) {
        fail("query did not parse: %s", err.message);
        ref_result none = {.code = 0};
        report_query(q, rc, &err, NULL, &none);
        return false;
    }
    herald_query_limits lim = {.max_docs = q->max_docs};
    herald_read_set rs;
    herald_read_set_init(&rs);
    herald_value got = herald_undefined();
    rc = herald_query_run(hq, t, q->max_docs ? &lim : NULL, &got, &rs, &err);
    herald_query_free(hq);
    ref_result want;
    ref_run(q, st, &want);
    bool ok = rc == want.code;
    if (ok && !rc)
        ok = q->mode == MODE_PAGINATE ? page_matches(&got, &want.value)
                                      : herald_value_equal(&got, &want.value);
    if (!ok) {
        fail("%s query answers differ", tables[q->table].name);
        report_query(q, rc, &err, &got, &want);
    }
    M.limit_hits += rc == HERALD_ELIMIT;
    M.unique_errors += rc == HERALD_EUNIQUE;
    if (ok && !rc && keep) {
        if (np == capp) {
            capp = capp ? capp * 2 : 64;
            P = realloc(P, capp * sizeof *P);
            if (!P) abort();
        }
        pending *p = &P[np++];
        qspec_copy(&p->q, q);
        p->expected = vcopy(&want.value);
        p->rs = rs;
        herald_read_set_init(&rs);
    }
    herald_read_set_free(&rs);
    if (ok && got_out) {
        *got_out = got;
        *want_out = want;
    } else {
        herald_value_free(&got);
        herald_value_free(&want.value);
    }
    return ok;
}

/* ---- pagination walks ---------------------------------------------------- */

typedef struct walk {
    bool active;
    qspec q;
    mdoc **stable; /* matching documents at the start; references held */
    size_t nstable;
    char **seen; /* ids returned so far */
    size_t nseen, capseen;
    int pages;
} walk;

#define MAX_WALKS 3
static walk walks[MAX_WALKS];

static void walk_end(walk *w)
{
    for (size_t i = 0; i < w->nstable; i++)
        mdoc_unref(w->stable[i]);
    free(w->stable);
    for (size_t i = 0; i < w->nseen; i++)
        free(w->seen[i]);
    free(w->seen);
    qspec_free(&w->q);
    memset(w, 0, sizeof *w);
}

static void walk_start(walk *w)
{
    memset(w, 0, sizeof *w);
    gen_query(&w->q, &M.committed, true);
    w->active = true;
    /* What matches now, ignoring the read limit: these must all come out
     * exactly once if nobody touches them during the walk. */
    qspec all;
    qspec_copy(&all, &w->q);
    all.mode = MODE_COLLECT;
    all.max_docs = 0;
    ref_result r;
    ref_run(&all, &M.committed, &r);
    qspec_free(&all);
    const herald_value *items = &r.value;
    w->stable = calloc(items->u.arr.len + 1, sizeof *w->stable);
    if (!w->stable) abort();
    for (size_t i = 0; i < items->u.arr.len; i++) {
        const herald_value *id = herald_object_get(&items->u.arr.items[i], "_id");
        long k = state_find(&M.committed, id->u.s.ptr);
        w->stable[w->nstable++] = mdoc_ref(M.committed.d[k]);
    }
    herald_value_free(&r.value);
}

static void walk_finish(walk *w)
{
    for (size_t i = 0; i < w->nstable; i++) {
        mdoc *d = w->stable[i];
        long k = state_find(&M.committed, d->id);
        if (k < 0 || M.committed.d[k] != d) continue; /* written during the walk */
        size_t times = 0;
        for (size_t j = 0; j < w->nseen; j++)
            times += strcmp(w->seen[j], d->id) == 0;
        if (times != 1) {
            fail("pagination walk returned untouched document %s %zu times", d->id, times);
            herald_value qv = build_query(&w->q);
            print_value("query", &qv);
            herald_value_free(&qv);
        }
    }
    M.walks_done++;
    walk_end(w);
}

/* Reads the next page of walk `w` in snapshot `t`. */
static void walk_step(walk *w, herald_txn *t)
{
    w->q.n = 1 + check_below(8);
    w->q.max_docs = chance(5) ? 1 + check_below(20) : 0;
    herald_value got;
    ref_result want;
    if (!run_query(&w->q, t, &M.committed, true, &got, &want)) {
        walk_end(w); /* already reported */
        return;
    }
    M.walk_pages++;
    if (want.code) { /* the read limit: try again with other sizes */
        herald_value_free(&got);
        return;
    }
    const herald_value *page = herald_object_get(&got, "page");
    /* Every document must lie after the previous page's last key. */
    for (size_t i = 0; i < page->u.arr.len; i++) {
        const herald_value *doc = &page->u.arr.items[i];
        const herald_value *t1[MAX_TUPLE], *t0[MAX_TUPLE];
        size_t n = doc_tuple(w->q.table, w->q.index, doc, t1);
        if (w->q.npos) {
            for (size_t k = 0; k < n; k++)
                t0[k] = &w->q.pos[k];
            int c = tuple_cmp(t1, t0, n);
            if (w->q.desc ? c >= 0 : c <= 0) fail("a page went back before its cursor");
        }
        if (w->nseen == w->capseen) {
            w->capseen = w->capseen ? w->capseen * 2 : 32;
            w->seen = realloc(w->seen, w->capseen * sizeof *w->seen);
            if (!w->seen) abort();
        }
        w->seen[w->nseen++] = strdup(herald_object_get(doc, "_id")->u.s.ptr);
        for (size_t k = 0; k < n; k++) {
            herald_value_free(&w->q.pos[k]);
            w->q.pos[k] = vcopy(t1[k]);
        }
        w->q.npos = n;
    }
    bool done = herald_object_get(&got, "isDone")->u.b;
    if (!done) {
        free(w->q.cursor);
        w->q.cursor = strdup(herald_object_get(&got, "continueCursor")->u.s.ptr);
    }
    herald_value_free(&got);
    herald_value_free(&want.value);
    if (done)
        walk_finish(w);
    else if (++w->pages > 300) {
        M.walks_abandoned++;
        walk_end(w);
    }
}

/* ---- writes -------------------------------------------------------------- */

typedef struct mut_ctx {
    herald_txn *m;
    mstate st;
    herald_value feeds; /* feedIds of the reels it wrote, before and after */
    size_t writes;
} mut_ctx;

static void touch_feed(mut_ctx *mc, const mdoc *d)
{
    if (d && d->table == T_REELS) apush(&mc->feeds, vcopy(path_or_undef(&d->v, "feedId")));
}

/* Reads a document back inside the mutation and compares it with the model. */
static void check_get(herald_txn *t, const mdoc *d, const char *id, int table)
{
    herald_value back;
    herald_error err = {0};
    int rc = herald_get(t, tables[table].name, id, &back, NULL, &err);
    if (d && (rc || !herald_value_equal(&back, &d->v))) {
        fail("get %s: rc %d (%s), or not the model's document", id, rc, err.message);
        if (!rc) print_value("herald", &back);
        print_value("model", &d->v);
    } else if (!d && rc != HERALD_ENOTFOUND) {
        fail("get %s of a missing document: rc %d, wanted ENOTFOUND", id, rc);
    }
    if (!rc) herald_value_free(&back);
}

static herald_value gen_patch(int table, const mstate *st)
{
    static const char *const reel_fields[] = {"feedId", "position", "status",
                                              "tags",   "meta",     "extra"};
    static const char *const job_fields[] = {"reelId", "count", "done", "label"};
    herald_value p = vobj();
    for (unsigned i = 1 + check_below(3); i > 0; i--) {
        const char *f = table == T_REELS ? reel_fields[check_below(6)] : job_fields[check_below(4)];
        bool optional = !strcmp(f, "status") || !strcmp(f, "tags") || !strcmp(f, "meta") ||
                        !strcmp(f, "extra") || !strcmp(f, "reelId");
        if (optional && chance(30)) {
            oset(&p, f, herald_undefined()); /* removes the field */
            continue;
        }
        herald_value v = !strcmp(f, "extra")    ? gen_any(0)
                         : !strcmp(f, "reelId") ? gen_reel_id(st)
                                                : gen_for_path(table, f, st);
        if (v.type == HERALD_UNDEFINED) continue; /* no reel to point at yet */
        oset(&p, f, v);
    }
    return p;
}

/* Returns 0 when the write went through, 1 when the mutation must be aborted. */
static int op_insert(mut_ctx *mc, int table)
{
    herald_value doc = table == T_REELS ? gen_reel() : gen_job(&mc->st);
    char id[HERALD_ID_CHARS + 1] = "";
    herald_error err = {0};
    M.ops++;
    int rc = herald_insert(mc->m, tables[table].name, &doc, id, &err);
    if (rc) {
        fail("insert into %s failed: %s", tables[table].name, err.message);
        print_value("document", &doc);
        herald_value_free(&doc);
        return 1;
    }
    remember_id(id, table);
    herald_value back;
    rc = herald_get(mc->m, tables[table].name, id, &back, NULL, &err);
    if (rc) {
        fail("get of the document just inserted failed: %s", err.message);
        herald_value_free(&doc);
        return 1;
    }
    const herald_value *ct = herald_object_get(&back, "_creationTime");
    double max_ct = state_max_ct(&mc->st);
    if (!ct || ct->type != HERALD_FLOAT64 || !(ct->u.f > max_ct)) {
        fail("new document's _creationTime is not a float above every other (%.17g)", max_ct);
        herald_value_free(&back);
        herald_value_free(&doc);
        return 1;
    }
    oset(&doc, "_id", vcstr(id));
    oset(&doc, "_creationTime", herald_float64(ct->u.f));
    if (!herald_value_equal(&doc, &back)) {
        fail("inserted document reads back different");
        print_value("wrote", &doc);
        print_value("read", &back);
    }
    herald_value_free(&back);
    mdoc *d = mdoc_new(table, id, doc);
    state_add(&mc->st, d);
    touch_feed(mc, d);
    mc->writes++;
    return 0;
}

static int op_patch(mut_ctx *mc, int table)
{
    long i = state_pick(&mc->st, table);
    if (i < 0) return op_insert(mc, table);
    mdoc *old = mc->st.d[i];
    herald_value fields = gen_patch(table, &mc->st);
    herald_value next = vcopy(&old->v);
    for (size_t k = 0; k < fields.u.obj.len; k++) {
        const herald_field *f = &fields.u.obj.fields[k];
        if (f->val.type == HERALD_UNDEFINED)
            herald_object_remove(&next, f->key);
        else
            oset(&next, f->key, vcopy(&f->val));
    }
    herald_error err = {0};
    M.ops++;
    int rc = herald_patch(mc->m, old->id, &fields, &err);
    if (rc) {
        fail("patch of %s failed: %s", old->id, err.message);
        print_value("fields", &fields);
        herald_value_free(&fields);
        herald_value_free(&next);
        return 1;
    }
    herald_value_free(&fields);
    touch_feed(mc, old);
    mdoc *d = mdoc_new(table, old->id, next);
    touch_feed(mc, d);
    state_set(&mc->st, (size_t)i, d);
    mc->writes++;
    if (chance(50)) check_get(mc->m, d, d->id, table);
    return 0;
}

static int op_replace(mut_ctx *mc, int table)
{
    long i = state_pick(&mc->st, table);
    if (i < 0) return op_insert(mc, table);
    mdoc *old = mc->st.d[i];
    herald_value doc = table == T_REELS ? gen_reel() : gen_job(&mc->st);
    herald_value sent = vcopy(&doc);
    if (chance(20)) { /* Convex lets a replacement carry its own system fields */
        oset(&sent, "_id", vcstr(old->id));
        oset(&sent, "_creationTime", herald_float64(old->ct));
    }
    herald_error err = {0};
    M.ops++;
    int rc = herald_replace(mc->m, old->id, &sent, &err);
    herald_value_free(&sent);
    if (rc) {
        fail("replace of %s failed: %s", old->id, err.message);
        herald_value_free(&doc);
        return 1;
    }
    oset(&doc, "_id", vcstr(old->id));
    oset(&doc, "_creationTime", herald_float64(old->ct));
    touch_feed(mc, old);
    mdoc *d = mdoc_new(table, old->id, doc);
    touch_feed(mc, d);
    state_set(&mc->st, (size_t)i, d);
    mc->writes++;
    if (chance(50)) check_get(mc->m, d, d->id, table);
    return 0;
}

static int op_delete(mut_ctx *mc, int table)
{
    long i = state_pick(&mc->st, table);
    if (i < 0) return op_insert(mc, table);
    mdoc *old = mc->st.d[i];
    herald_error err = {0};
    M.ops++;
    int rc = herald_delete(mc->m, old->id, &err);
    if (rc) {
        fail("delete of %s failed: %s", old->id, err.message);
        return 1;
    }
    touch_feed(mc, old);
    char id[HERALD_ID_CHARS + 1];
    memcpy(id, old->id, sizeof id);
    state_del(&mc->st, (size_t)i);
    mc->writes++;
    if (chance(30)) check_get(mc->m, NULL, id, table);
    return 0;
}

/* An id of `table` in the right form whose document does not exist. */
static bool missing_id(const mstate *st, int table, char out[HERALD_ID_CHARS + 1])
{
    const char *k = random_known_id(table);
    if (!k) return false;
    snprintf(out, HERALD_ID_CHARS + 1, "%s", k);
    if (state_find(st, out) < 0) return true; /* deleted, or never committed */
    /* The last character carries the low bits of the random part only. */
    out[HERALD_ID_CHARS - 1] = out[HERALD_ID_CHARS - 1] == '0' ? '1' : '0';
    return state_find(st, out) < 0;
}

/* A write Herald must refuse; the mutation is then aborted. Returns 1. */
static int op_bad(mut_ctx *mc)
{
    herald_error err = {0};
    int rc, want;
    const char *what;
    long reel = state_pick(&mc->st, T_REELS), job = state_pick(&mc->st, T_JOBS);
    char id[HERALD_ID_CHARS + 1];
    unsigned kind = check_below(8);
    M.ops++;
    if ((kind == 2 || kind == 5 || kind == 6) && reel < 0) kind = 0;
    if (kind == 4 && job < 0) kind = 1;
    if (kind == 6 && job < 0) kind = 7;
    if (kind == 3 && !missing_id(&mc->st, check_below(2) ? T_REELS : T_JOBS, id)) kind = 1;
    if (kind == 0) {
        herald_value doc = gen_reel();
        herald_object_remove(&doc, "feedId");
        what = "insert without a required field";
        want = HERALD_EVALIDATION;
        rc = herald_insert(mc->m, "reels", &doc, NULL, &err);
        herald_value_free(&doc);
    } else if (kind == 1) {
        herald_value doc = gen_reel();
        oset(&doc, "position", vcstr("3"));
        what = "insert with a string for a number";
        want = HERALD_EVALIDATION;
        rc = herald_insert(mc->m, "reels", &doc, NULL, &err);
        herald_value_free(&doc);
    } else if (kind == 2) {
        herald_value p = vobj();
        oset(&p, "feedId", herald_undefined());
        what = "patch removing a required field";
        want = HERALD_EVALIDATION;
        rc = herald_patch(mc->m, mc->st.d[reel]->id, &p, &err);
        herald_value_free(&p);
    } else if (kind == 3) {
        unsigned how = check_below(3);
        herald_value doc = gen_reel();
        what = how == 0   ? "patch of a missing document"
               : how == 1 ? "replace of a missing document"
                          : "delete of a missing document";
        want = HERALD_ENOTFOUND;
        rc = how == 0   ? herald_patch(mc->m, id, &doc, &err)
             : how == 1 ? herald_replace(mc->m, id, &doc, &err)
                        : herald_delete(mc->m, id, &err);
        herald_value_free(&doc);
    } else if (kind == 4) {
        herald_value doc = gen_job(&mc->st);
        oset(&doc, "reelId", vcstr(mc->st.d[job]->id));
        what = "insert with an id of the wrong table";
        want = HERALD_EVALIDATION;
        rc = herald_insert(mc->m, "jobs", &doc, NULL, &err);
        herald_value_free(&doc);
    } else if (kind == 5) {
        herald_value p = vobj();
        oset(&p, "_creationTime", herald_float64(1));
        what = "patch of a system field";
        want = HERALD_EINVAL;
        rc = herald_patch(mc->m, mc->st.d[reel]->id, &p, &err);
        herald_value_free(&p);
    } else if (kind == 6) {
        herald_value doc = gen_reel();
        oset(&doc, "_id", vcstr(mc->st.d[job]->id));
        what = "replace that changes _id";
        want = HERALD_EINVAL;
        rc = herald_replace(mc->m, mc->st.d[reel]->id, &doc, &err);
        herald_value_free(&doc);
    } else {
        herald_value doc = gen_job(&mc->st);
        oset(&doc, "count", herald_float64(1));
        what = "insert of a float into an int64 field";
        want = HERALD_EVALIDATION;
        rc = herald_insert(mc->m, "jobs", &doc, NULL, &err);
        herald_value_free(&doc);
    }
    M.expected_errors++;
    if (rc != want)
        fail("%s: rc %d (%s), wanted %d (%s)%s%s", what, rc, herald_errcode_name(rc), want,
             herald_errcode_name(want), rc ? ": " : "", rc ? err.message : "");
    return 1;
}

typedef struct mut_record {
    herald_value feeds;
    size_t writes;
    uint64_t version;
} mut_record;

static bool feeds_touch(const herald_value *feeds, const herald_value *feed)
{
    for (size_t i = 0; i < feeds->u.arr.len; i++)
        if (herald_value_equal(&feeds->u.arr.items[i], feed)) return true;
    return false;
}

/*
 * After a commit: for every query run before it, a changed answer must
 * come with an overlapping read set, and a query on one feed's reels must
 * not overlap a mutation that only wrote other feeds.
 */
static void check_read_sets(herald_group *g, const mut_record *muts, size_t nmuts)
{
    for (size_t i = 0; i < np; i++) {
        pending *p = &P[i];
        ref_result now;
        ref_run(&p->q, &M.committed, &now);
        bool changed = now.code != 0 || !herald_value_equal(&now.value, &p->expected);
        herald_value_free(&now.value);
        bool any = false;
        bool feed_query = p->q.table == T_REELS && p->q.index == IX_FEED_POSITION && p->q.neq >= 1;
        for (size_t k = 0; k < nmuts; k++) {
            bool ov = herald_read_set_overlaps(&p->rs, herald_group_write_set(g, k));
            any |= ov;
            if (feed_query && !feeds_touch(&muts[k].feeds, &p->q.eq[0])) {
                M.rs_feed_checks++;
                if (ov) {
                    fail("read set of a by_feed_position query on one feed overlaps a mutation "
                         "that wrote only other feeds");
                    ref_result none = {.code = 0};
                    report_query(&p->q, 0, NULL, NULL, &none);
                    print_value("feeds the mutation wrote", &muts[k].feeds);
                }
            }
        }
        M.rs_checked++;
        M.rs_changed += changed;
        M.rs_overlap += any;
        M.rs_false_pos += any && !changed;
        if (changed && !any) {
            fail("a commit changed a query's answer but overlaps none of its read set");
            ref_result now2;
            ref_run(&p->q, &M.committed, &now2);
            report_query(&p->q, 0, NULL, &p->expected, &now2);
            fprintf(stderr, "  (\"herald\" above is the answer before the commit, \"model\" the "
                            "answer after it)\n");
            herald_value_free(&now2.value);
        }
    }
    pending_clear();
}

/* One group: a few mutations, some aborted; then committed or rolled back. */
static void group_step(void)
{
    herald_group *g;
    herald_error err = {0};
    must(herald_group_begin(M.s, &g, &err), "group begin");
    mstate gstate;
    state_copy(&gstate, &M.committed);
    mut_record muts[8];
    size_t nmuts = 0;
    uint64_t last_version = M.version;
    for (unsigned nm = 1 + check_below(4); nm > 0; nm--) {
        mut_ctx mc = {0};
        if (herald_mutation_begin(g, &mc.m, &err)) {
            fail("mutation begin: %s", err.message);
            break;
        }
        state_copy(&mc.st, &gstate);
        mc.feeds = varr();
        bool bad = false;
        for (unsigned nw = 1 + check_below(5); nw > 0 && !bad; nw--) {
            size_t reels = state_count(&mc.st, T_REELS), jobs = state_count(&mc.st, T_JOBS);
            int table = check_below(3) ? T_REELS : T_JOBS;
            size_t have = table == T_REELS ? reels : jobs, target = table == T_REELS ? 220 : 90;
            unsigned r = check_below(100);
            unsigned p_insert = have < target / 2 ? 70 : have < target ? 40 : 20;
            if (chance(4))
                bad = op_bad(&mc);
            else if (r < p_insert)
                bad = op_insert(&mc, table);
            else if (r < p_insert + (100 - p_insert) * 4 / 10)
                bad = op_patch(&mc, table);
            else if (r < p_insert + (100 - p_insert) * 7 / 10)
                bad = op_replace(&mc, table);
            else
                bad = op_delete(&mc, table);
            if (!bad && chance(8)) { /* queries see the mutation's own writes */
                qspec q;
                gen_query(&q, &mc.st, false);
                run_query(&q, mc.m, &mc.st, false, NULL, NULL);
                M.queries_in_mutations++;
                qspec_free(&q);
            }
        }
        M.mutations++;
        if (bad || chance(12)) {
            herald_mutation_abort(mc.m);
            state_free(&mc.st);
            herald_value_free(&mc.feeds);
            M.aborted_mutations++;
            continue;
        }
        uint64_t v = 0;
        if (herald_mutation_commit(mc.m, &v, &err)) {
            fail("mutation commit: %s", err.message);
            state_free(&mc.st);
            herald_value_free(&mc.feeds);
            continue;
        }
        if (v <= last_version)
            fail("mutation version %llu after %llu", (unsigned long long)v,
                 (unsigned long long)last_version);
        last_version = v;
        state_free(&gstate);
        gstate = mc.st;
        muts[nmuts++] = (mut_record){mc.feeds, mc.writes, v};
    }
    M.groups++;
    if (herald_group_count(g) != nmuts)
        fail("group holds %zu mutations, the model %zu", herald_group_count(g), nmuts);
    for (size_t k = 0; k < nmuts && k < herald_group_count(g); k++) {
        const herald_write_set *ws = herald_group_write_set(g, k);
        if (ws->version != muts[k].version || ws->ndocs != muts[k].writes)
            fail("write set %zu: version %llu docs %zu, wanted %llu and %zu", k,
                 (unsigned long long)ws->version, ws->ndocs, (unsigned long long)muts[k].version,
                 muts[k].writes);
    }
    if (chance(10)) {
        herald_group_free(g); /* the whole group rolls back */
        state_free(&gstate);
        M.rolled_back++;
        if (herald_store_version(M.s) != M.version) fail("a rolled-back group moved the version");
    } else {
        if (herald_group_commit(g, &err)) fail("group commit: %s", err.message);
        state_free(&M.committed);
        M.committed = gstate;
        if (nmuts) M.version = last_version;
        if (herald_store_version(M.s) != M.version)
            fail("store version %llu, wanted %llu", (unsigned long long)herald_store_version(M.s),
                 (unsigned long long)M.version);
        check_read_sets(g, muts, nmuts);
        herald_group_free(g);
    }
    for (size_t k = 0; k < nmuts; k++)
        herald_value_free(&muts[k].feeds);
}

/* ---- whole-table comparisons -------------------------------------------- */

typedef struct scan_ctx {
    herald_value docs;
} scan_ctx;

static int scan_fn(void *ctx, const herald_value *doc)
{
    apush(&((scan_ctx *)ctx)->docs, vcopy(doc));
    return 0;
}

/* Every index of every table, both orders, and a table scan in id order. */
static void compare_everything(herald_txn *t)
{
    for (int table = 0; table < NTABLES; table++) {
        for (size_t ix = 0; ix < tables[table].nindexes; ix++)
            for (int desc = 0; desc < 2; desc++) {
                qspec q = {.table = table, .index = (int)ix, .desc = desc, .mode = MODE_COLLECT};
                run_query(&q, t, &M.committed, false, NULL, NULL);
            }
        uint64_t count = 0;
        herald_error err = {0};
        if (herald_table_count(t, tables[table].name, &count, &err) ||
            count != state_count(&M.committed, table))
            fail("%s holds %llu documents, the model %zu", tables[table].name,
                 (unsigned long long)count, state_count(&M.committed, table));
        scan_ctx sc = {varr()};
        if (herald_table_scan(t, tables[table].name, scan_fn, &sc, &err))
            fail("table scan: %s", err.message);
        qspec q = {.table = table, .index = IX_BY_ID, .mode = MODE_COLLECT};
        ref_result want;
        ref_run(&q, &M.committed, &want);
        if (!herald_value_equal(&sc.docs, &want.value)) {
            fail("table scan of %s is not the model's documents in id order", tables[table].name);
            print_docs("herald", &sc.docs);
            print_docs("model", &want.value);
        }
        herald_value_free(&want.value);
        herald_value_free(&sc.docs);
    }
}

static void report_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "  check: %s\n", line);
}

static void store_check(void)
{
    herald_error err = {0};
    int rc = herald_store_check(M.s, report_line, NULL, &err);
    if (rc) fail("herald_store_check: rc %d: %s", rc, err.message);
}

/* ---- reads between groups ----------------------------------------------- */

static void read_step(void)
{
    herald_txn *t;
    herald_error err = {0};
    must(herald_read_begin(M.s, &t, &err), "read begin");
    if (herald_txn_version(t) != M.version)
        fail("snapshot version %llu, wanted %llu", (unsigned long long)herald_txn_version(t),
             (unsigned long long)M.version);
    for (unsigned nq = 1 + check_below(5); nq > 0; nq--) {
        qspec q;
        gen_query(&q, &M.committed, false);
        run_query(&q, t, &M.committed, true, NULL, NULL);
        qspec_free(&q);
    }
    for (int i = 0; i < MAX_WALKS; i++) {
        if (!walks[i].active && chance(15)) walk_start(&walks[i]);
        if (walks[i].active && chance(60)) walk_step(&walks[i], t);
    }
    if (chance(3)) compare_everything(t);
    herald_txn_end(t);
}

/* ---- targeted checks ----------------------------------------------------- */

/*
 * An id names its table and must never be forged into another: a by_id
 * range or a get on `reels` given a `jobs` id may fail or find nothing,
 * but must not return the job.
 */
static void check_foreign_ids(void)
{
    static bool reported; /* once is loud enough */
    if (reported) return;
    long job = state_pick(&M.committed, T_JOBS);
    if (job < 0) return;
    const char *jid = M.committed.d[job]->id;
    static const char *const forms[] = {
        "{\"table\":\"reels\",\"index\":\"by_id\",\"range\":[{\"eq\":[\"_id\",\"%s\"]}]}",
        "{\"table\":\"reels\",\"index\":\"by_id\",\"range\":[{\"gte\":[\"_id\",\"%s\"]}]}",
        "{\"table\":\"reels\",\"index\":\"by_id\",\"range\":[{\"lte\":[\"_id\",\"%s\"]}]}",
        "{\"table\":\"reels\",\"get\":\"%s\"}",
    };
    herald_txn *t;
    herald_error err = {0};
    must(herald_read_begin(M.s, &t, &err), "read begin");
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        char text[512];
        snprintf(text, sizeof text, forms[f], jid);
        herald_query *q;
        herald_value r = herald_undefined();
        int rc = herald_query_parse(text, strlen(text), herald_store_schema(M.s), &q, &err);
        if (!rc) {
            rc = herald_query_run(q, t, NULL, &r, NULL, &err);
            herald_query_free(q);
        }
        if (rc) continue; /* refusing is fine */
        bool leaked = false;
        const herald_value *docs = r.type == HERALD_ARRAY ? r.u.arr.items : &r;
        size_t ndocs = r.type == HERALD_ARRAY ? r.u.arr.len : r.type == HERALD_OBJECT;
        for (size_t i = 0; i < ndocs; i++) {
            const herald_value *id = herald_object_get(&docs[i], "_id");
            const char *tab =
                id && id->type == HERALD_STRING ? herald_id_table(t, id->u.s.ptr) : NULL;
            if (!tab || strcmp(tab, "reels") != 0) leaked = true;
        }
        if (leaked) {
            reported = true;
            fail("a query on `reels` returned a document of `jobs` (its id was forged into the "
                 "by_id range): %s",
                 text);
            print_docs("returned", &r);
        }
        herald_value_free(&r);
    }
    herald_txn_end(t);
}

/* ---- setup, main --------------------------------------------------------- */

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static void open_store(bool fresh)
{
    herald_store_options opts = {.no_sync = true};
    herald_error err = {0};
    if (herald_store_open(M.dir, &opts, &M.s, &err)) {
        fprintf(stderr, "test_model: opening %s: %s\n", M.dir, err.message);
        exit(1);
    }
    if (!fresh) return;
    herald_schema *schema;
    if (herald_schema_from_json(schema_json, strlen(schema_json), "model", &schema, &err) ||
        herald_store_set_schema(M.s, schema, &err)) {
        fprintf(stderr, "test_model: schema: %s\n", err.message);
        exit(1);
    }
}

static void print_stats(double secs)
{
    printf("test_model: %ld ops (%ld refused as expected) in %ld mutations (%ld aborted), %ld "
           "groups (%ld rolled back)\n",
           M.ops, M.expected_errors, M.mutations, M.aborted_mutations, M.groups, M.rolled_back);
    printf("test_model: %ld queries (%ld inside mutations, %ld hit the read limit, %ld not "
           "unique), %ld pagination walks done (%ld pages, %ld abandoned)\n",
           M.queries, M.queries_in_mutations, M.limit_hits, M.unique_errors, M.walks_done,
           M.walk_pages, M.walks_abandoned);
    printf("test_model: read sets: %ld checked, %ld answers changed, %ld overlapped, %ld false "
           "positives (%.1f%% of unchanged), %ld other-feed checks\n",
           M.rs_checked, M.rs_changed, M.rs_overlap, M.rs_false_pos,
           M.rs_checked > M.rs_changed
               ? 100.0 * (double)M.rs_false_pos / (double)(M.rs_checked - M.rs_changed)
               : 0.0,
           M.rs_feed_checks);
    printf("test_model: %zu reels, %zu jobs at the end; %.1f s\n",
           state_count(&M.committed, T_REELS), state_count(&M.committed, T_JOBS), secs);
}

int main(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *env = getenv("HERALD_MODEL_SEED");
    M.seed = env && *env ? strtoull(env, NULL, 0)
                         : ((unsigned long long)time(NULL) << 20) ^ (unsigned long long)getpid();
    if (!M.seed) M.seed = 1;
    check_rng_state = M.seed;
    env = getenv("HERALD_MODEL_OPS");
    M.target_ops = env && *env ? strtol(env, NULL, 0) : 10000;
    printf("test_model: seed %llu (rerun with HERALD_MODEL_SEED=%llu), %ld ops\n", M.seed, M.seed,
           M.target_ops);
    fflush(stdout);

    const char *tmp = getenv("TMPDIR");
    snprintf(M.dir, sizeof M.dir, "%s/herald-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(M.dir)) {
        perror("mkdtemp");
        return 1;
    }
    init_feeds();
    open_store(true);

    long min_queries = M.target_ops * 2 / 5;
    while (M.ops < M.target_ops || M.queries < min_queries) {
        M.step++;
        if (chance(45))
            group_step();
        else
            read_step();
        if (M.step % 250 == 0) store_check();
        if (M.step % 100 == 0) check_foreign_ids();
    }
    for (int i = 0; i < MAX_WALKS; i++)
        if (walks[i].active) walk_end(&walks[i]);
    pending_clear();

    /* The end: check, compare, close, reopen, compare again. */
    store_check();
    check_foreign_ids();
    herald_txn *t;
    herald_error err = {0};
    must(herald_read_begin(M.s, &t, &err), "read begin");
    compare_everything(t);
    herald_txn_end(t);
    herald_store_close(M.s);
    open_store(false);
    if (!herald_store_schema(M.s)) fail("the reopened store has no schema");
    if (herald_store_version(M.s) != M.version)
        fail("reopened at version %llu, wanted %llu", (unsigned long long)herald_store_version(M.s),
             (unsigned long long)M.version);
    store_check();
    must(herald_read_begin(M.s, &t, &err), "read begin");
    compare_everything(t);
    for (int i = 0; i < 200; i++) {
        qspec q;
        gen_query(&q, &M.committed, false);
        run_query(&q, t, &M.committed, false, NULL, NULL);
        qspec_free(&q);
    }
    herald_txn_end(t);
    /* Versions and creation times keep growing across the restart. */
    group_step();
    group_step();
    store_check();

    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_stats((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    pending_clear();
    free(P);
    herald_store_close(M.s);
    remove_dir(M.dir);
    state_free(&M.committed);
    free(M.ids);
    for (size_t i = 0; i < nfeeds; i++)
        herald_value_free(&feeds[i]);
    if (check_failures) printf("test_model: FAILED (seed %llu)\n", M.seed);
    CHECK_DONE();
}
