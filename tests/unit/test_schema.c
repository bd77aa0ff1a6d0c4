/*
 * Unit tests for schemas: the five seed apps' schema.ts files, the JSON
 * form and its round trip, every load-time rule, the schema.ts subset's
 * errors with exact positions, document validation messages, and a crude
 * fuzz of both parsers (random bytes, truncations, mutations) that must
 * never crash or leak.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herald/schema.h"
#include "schema_priv.h"

/* ------------------------------------------------------------- helpers */

static char fixture_dir[1024];

/* The fixtures live next to this file; tests run from the build or source root. */
static void find_fixtures(void)
{
    const char *env = getenv("HERALD_FIXTURES");
    char from_file[1024];
    snprintf(from_file, sizeof from_file, "%s", __FILE__);
    char *slash = strrchr(from_file, '/');
    if (slash) {
        *slash = 0;
        slash = strrchr(from_file, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(from_file, sizeof from_file, ".");
    } else {
        snprintf(from_file, sizeof from_file, "..");
    }
    strncat(from_file, "/fixtures/schemas", sizeof from_file - strlen(from_file) - 1);
    const char *candidates[] = {env, from_file, "tests/fixtures/schemas",
                                "../tests/fixtures/schemas", "../../tests/fixtures/schemas"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!candidates[i]) continue;
        char probe[1100];
        snprintf(probe, sizeof probe, "%s/seed002_videos.ts", candidates[i]);
        FILE *f = fopen(probe, "rb");
        if (f) {
            fclose(f);
            snprintf(fixture_dir, sizeof fixture_dir, "%s", candidates[i]);
            return;
        }
    }
    fprintf(stderr, "cannot find tests/fixtures/schemas (set HERALD_FIXTURES)\n");
    exit(1);
}

static char *fixture_path(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

static char *read_fixture(const char *name, size_t *len)
{
    FILE *f = fopen(fixture_path(name), "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap + 1);
            if (!buf) exit(1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

#define CHECK_MSG(cond, err)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s (message: %s)\n", __FILE__, __LINE__, #cond,  \
                    (err).message);                                                                \
            if (++check_failures > 20) exit(1);                                                    \
        }                                                                                          \
    } while (0)

/* Loads a schema.ts source that must succeed. */
static herald_schema *ts_ok(const char *src, int line)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = herald_schema_from_ts(src, strlen(src), "t.ts", &s, &err);
    if (rc != 0) {
        fprintf(stderr, "%s:%d: schema.ts failed to load: %s\n", __FILE__, line, err.message);
        check_failures++;
    }
    return s;
}

/* Loads a source that must fail with `code` and exactly `message`. */
static void ts_err(const char *src, int code, const char *message, int line)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = herald_schema_from_ts(src, strlen(src), "t.ts", &s, &err);
    if (rc != code || s != NULL || strcmp(err.message, message) != 0) {
        fprintf(stderr, "%s:%d: expected %d \"%s\"\n    got %d \"%s\"\n", __FILE__, line, code,
                message, rc, err.message);
        check_failures++;
    }
    herald_schema_free(s);
}

/* Loads a JSON schema that must fail with HERALD_ESCHEMA and a message containing `part`. */
static void json_err(const char *src, const char *part, int line)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = herald_schema_from_json(src, strlen(src), "s.json", &s, &err);
    if (rc != HERALD_ESCHEMA || s != NULL || !strstr(err.message, part)) {
        fprintf(stderr, "%s:%d: expected ESCHEMA containing \"%s\"\n    got %d \"%s\"\n", __FILE__,
                line, part, rc, err.message);
        check_failures++;
    }
    herald_schema_free(s);
}

#define TS_OK(src)             ts_ok(src, __LINE__)
#define TS_ERR(src, code, msg) ts_err(src, code, msg, __LINE__)
#define JSON_ERR(src, part)    json_err(src, part, __LINE__)

static const herald_vfield *field(const herald_validator *obj, const char *name)
{
    for (size_t i = 0; obj && i < obj->nfields; i++)
        if (strcmp(obj->fields[i].name, name) == 0) return &obj->fields[i];
    return NULL;
}

/* to_json, from_json of that, to_json again: both texts equal, documents equal. */
static void check_round_trip(const herald_schema *s, int line)
{
    char *a = herald_schema_to_json(s);
    herald_schema *back = NULL;
    herald_error err = {0};
    if (!a || herald_schema_from_json(a, strlen(a), "round-trip", &back, &err) != 0) {
        fprintf(stderr, "%s:%d: round trip failed: %s\n", __FILE__, line, err.message);
        check_failures++;
        free(a);
        return;
    }
    char *b = herald_schema_to_json(back);
    if (!b || strcmp(a, b) != 0) {
        fprintf(stderr, "%s:%d: round trip changed the JSON\n", __FILE__, line);
        check_failures++;
    }
    bool same = back->ntables == s->ntables && back->schema_validation == s->schema_validation;
    for (size_t i = 0; same && i < s->ntables; i++)
        same = strcmp(s->tables[i].name, back->tables[i].name) == 0 &&
               hd__validator_equal(s->tables[i].document, back->tables[i].document);
    if (!same) {
        fprintf(stderr, "%s:%d: round trip changed the schema\n", __FILE__, line);
        check_failures++;
    }
    free(a);
    free(b);
    herald_schema_free(back);
}

static herald_schema *load_fixture(const char *name)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = herald_schema_load_file(fixture_path(name), &s, &err);
    CHECK_MSG(rc == 0 && s, err);
    if (s) check_round_trip(s, __LINE__);
    return s;
}

/* ------------------------------------------------------------ fixtures */

static void test_seed_fixtures(void)
{
    const herald_table_def *t;
    const herald_vfield *f;

    herald_schema *s = load_fixture("seed002_videos.ts");
    if (s) {
        CHECK(s->ntables == 1 && s->schema_validation);
        CHECK((t = herald_schema_table(s, "videos")) != NULL);
        CHECK(t->document->kind == HERALD_V_OBJECT && t->document->nfields == 23);
        CHECK(t->nindexes == 4 && strcmp(t->indexes[3].name, "by_created_at") == 0);
        CHECK(t->indexes[1].nfields == 1 && strcmp(t->indexes[1].fields[0], "jobId") == 0);
        f = field(t->document, "stageProgress");
        CHECK(f && f->optional && f->v->kind == HERALD_V_OBJECT && f->v->nfields == 0);
        f = field(t->document, "twitchId");
        CHECK(f && !f->optional && f->v->kind == HERALD_V_STRING);
        f = field(t->document, "isRetryable");
        CHECK(f && f->optional && f->v->kind == HERALD_V_BOOLEAN);
        CHECK(herald_schema_table(s, "video") == NULL);
        herald_schema_free(s);
    }

    s = load_fixture("seed004_social.ts");
    if (s) {
        /* The seed's five tables, and the app's record of which document holds each file. */
        CHECK(s->ntables == 6);
        const char *names[] = {"conversations", "messages", "posts", "products", "profiles",
                               "uploads"};
        for (size_t i = 0; i < 6 && i < s->ntables; i++)
            CHECK(strcmp(s->tables[i].name, names[i]) == 0);
        CHECK((t = herald_schema_table(s, "messages")) != NULL);
        CHECK(t->nindexes == 2 && t->indexes[1].nfields == 2 &&
              strcmp(t->indexes[1].name, "by_conversationId_createdAt") == 0 &&
              strcmp(t->indexes[1].fields[1], "createdAt") == 0);
        f = field(t->document, "conversationId");
        CHECK(f && f->v->kind == HERALD_V_ID && strcmp(f->v->table, "conversations") == 0);
        t = herald_schema_table(s, "posts");
        f = t ? field(t->document, "mediaIds") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_ARRAY &&
              f->v->items->kind == HERALD_V_ID && strcmp(f->v->items->table, "_storage") == 0);
        herald_schema_free(s);
    }

    s = load_fixture("seed003_fondation.ts");
    if (s) {
        CHECK(s->ntables == 6); /* the seed's five, and the example's settings */
        t = herald_schema_table(s, "jobs");
        f = t ? field(t->document, "status") : NULL;
        CHECK(f && f->v->kind == HERALD_V_UNION && f->v->nmembers == 4);
        CHECK(f && f->v->members[3]->kind == HERALD_V_LITERAL &&
              f->v->members[3]->literal.type == HERALD_STRING &&
              strcmp(f->v->members[3]->literal.u.s.ptr, "failed") == 0);
        t = herald_schema_table(s, "documents");
        f = t ? field(t->document, "metadata") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_ANY);
        CHECK(t && t->nindexes == 1 && strcmp(t->indexes[0].name, "by_repository") == 0);
        CHECK(herald_schema_table(s, "messages") && herald_schema_table(s, "repositories") &&
              herald_schema_table(s, "users"));

        /* The canonical JSON fixture is the same schema. */
        herald_schema *j = load_fixture("seed003_fondation.json");
        if (j) {
            char *a = herald_schema_to_json(s), *b = herald_schema_to_json(j);
            CHECK(a && b && strcmp(a, b) == 0);
            free(a);
            free(b);
            herald_schema_free(j);
        }
        herald_schema_free(s);
    }

    s = load_fixture("seed001_artworks.ts");
    if (s) {
        CHECK(s->ntables == 9); /* the seed's eight, and the example's providers */
        t = herald_schema_table(s, "artworks");
        CHECK(t && t->nindexes == 4 && t->nsearch_indexes == 1);
        if (t && t->nsearch_indexes == 1) {
            const herald_search_index_def *si = &t->search_indexes[0];
            CHECK(strcmp(si->name, "search_prompt") == 0 &&
                  strcmp(si->search_field, "prompt") == 0);
            CHECK(si->nfilter_fields == 2 && strcmp(si->filter_fields[1], "visibility") == 0);
        }
        f = t ? field(t->document, "metadata") : NULL;
        CHECK(f && f->v->kind == HERALD_V_OBJECT && f->v->nfields == 7);
        CHECK(f && field(f->v, "style") && field(f->v, "style")->optional);
        f = t ? field(t->document, "visibility") : NULL;
        CHECK(f && f->v->kind == HERALD_V_UNION && f->v->nmembers == 3);
        t = herald_schema_table(s, "artworkEmbeddings");
        CHECK(t && t->nvector_indexes == 1);
        if (t && t->nvector_indexes == 1) {
            const herald_vector_index_def *vi = &t->vector_indexes[0];
            CHECK(strcmp(vi->name, "by_embedding") == 0 && vi->dimensions == 1536 &&
                  strcmp(vi->vector_field, "embedding") == 0 && vi->nfilter_fields == 1);
        }
        f = t ? field(t->document, "embedding") : NULL;
        CHECK(f && f->v->kind == HERALD_V_ARRAY && f->v->items->kind == HERALD_V_NUMBER);
        t = herald_schema_table(s, "userSettings");
        f = t ? field(t->document, "apiKeys") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_ARRAY &&
              f->v->items->kind == HERALD_V_OBJECT && f->v->items->nfields == 4);
        t = herald_schema_table(s, "files");
        f = t ? field(t->document, "storageId") : NULL;
        CHECK(f && f->v->kind == HERALD_V_ID && strcmp(f->v->table, "_storage") == 0);
        herald_schema_free(s);
    }

    /* The seed fixtures other than 002's verbatim text are the example apps' schemas. */
    s = load_fixture("seed000_reels.ts");
    if (s) {
        CHECK(s->ntables == 3);
        t = herald_schema_table(s, "users");
        CHECK(t && t->nindexes == 1 && strcmp(t->indexes[0].name, "by_auth0_id") == 0);
        t = herald_schema_table(s, "feeds");
        CHECK(t && t->nindexes == 3 && strcmp(t->indexes[1].name, "by_user_status") == 0 &&
              t->indexes[1].nfields == 2 && strcmp(t->indexes[2].name, "by_status") == 0);
        f = t ? field(t->document, "lastSeenReelId") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_ID && strcmp(f->v->table, "reels") == 0);
        t = herald_schema_table(s, "reels");
        CHECK(t && t->nindexes == 2 && strcmp(t->indexes[0].name, "by_feed_position") == 0 &&
              strcmp(t->indexes[0].fields[0], "feedId") == 0 &&
              strcmp(t->indexes[0].fields[1], "position") == 0);
        f = t ? field(t->document, "metadata") : NULL;
        CHECK(f && f->v->kind == HERALD_V_RECORD && f->v->keys->kind == HERALD_V_STRING &&
              f->v->items->kind == HERALD_V_ANY);
        herald_schema_free(s);
    }
}

/* Each broken fixture fails with exactly this message. */
static void test_broken_fixtures(void)
{
    static const struct {
        const char *file, *message;
    } cases[] = {
        {"broken_syntax.ts", "broken_syntax.ts:7:33: expected `,` or `)` but found `;`"},
        {"broken_spread.ts", "broken_spread.ts:9:5: unsupported construct: spread `...`"},
        {"broken_unknown_v.ts", "broken_unknown_v.ts:6:11: unsupported construct: `v.date()`"},
        {"broken_template.ts", "broken_template.ts:7:22: unsupported construct: template "
                               "literal interpolation `${`"},
        {"broken_function.ts", "broken_function.ts:7:10: unsupported construct: call to "
                               "`makeTable()` where defineTable(...) was expected"},
        {"broken_index.ts", "broken_index.ts: table `notes`: index `by_time`: `_creationTime` "
                            "is implicit: every index ends with it"},
        {"broken_id_table.ts", "broken_id_table.ts: table `orders`: field `accountId`: "
                               "v.id(\"accounts\") names no table of the schema"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *src = read_fixture(cases[i].file, &len);
        CHECK(src != NULL);
        if (!src) continue;
        herald_schema *s = NULL;
        herald_error err = {0};
        int rc = herald_schema_from_ts(src, len, cases[i].file, &s, &err);
        if (rc != HERALD_ESCHEMA || s || strcmp(err.message, cases[i].message) != 0) {
            fprintf(stderr, "%s:%d: %s: expected \"%s\"\n    got %d \"%s\"\n", __FILE__, __LINE__,
                    cases[i].file, cases[i].message, rc, err.message);
            check_failures++;
        }
        herald_schema_free(s);
        free(src);
    }

    /* load_file names the path and picks the parser by extension. */
    herald_schema *s = NULL;
    herald_error err = {0};
    CHECK(herald_schema_load_file(fixture_path("missing.ts"), &s, &err) == HERALD_ENOTFOUND);
    CHECK(herald_schema_load_file(fixture_path("seed002_videos.txt"), &s, &err) == HERALD_EINVAL);
    CHECK(s == NULL);
    CHECK(herald_schema_load_file(fixture_path("broken_syntax.ts"), &s, &err) == HERALD_ESCHEMA);
    CHECK_MSG(strstr(err.message, "/broken_syntax.ts:7:33: expected") != NULL, err);
}

/* ------------------------------------------------------- schema.ts subset */

#define HDR                                                                                        \
    "import { defineSchema, defineTable } from \"convex/server\";\nimport { v } from "             \
    "\"convex/values\";\n"

static void test_ts_subset(void)
{
    herald_schema *s;
    const herald_table_def *t;
    const herald_vfield *f;

    /* Quoted keys, bindings of tables and field objects, chained indexes
     * on a bound table, no semicolons, trailing commas, options. */
    s = TS_OK(HDR "const fields = { 'first-name': v.string(), \"age\": v.optional(v.int64()), }\n"
                  "const base = defineTable(fields).index('by_age', ['age',],)\n"
                  "export default defineSchema({\n"
                  "  \"people\": base.index(`by_name`, [\"first-name\", \"age\"]),\n"
                  "  blobs: defineTable(v.object({ data: v.bytes(), n: v.bigint(), f: v.float64(),"
                  " nil: v.null(), b: v.boolean() })),\n"
                  "}, { schemaValidation: false, strictTableNameTypes: false, })\n");
    if (s) {
        CHECK(!s->schema_validation && s->ntables == 2);
        t = herald_schema_table(s, "people");
        CHECK(t && t->nindexes == 2 && strcmp(t->indexes[0].name, "by_age") == 0 &&
              strcmp(t->indexes[1].name, "by_name") == 0);
        f = t ? field(t->document, "age") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_INT64);
        CHECK(t && field(t->document, "first-name"));
        t = herald_schema_table(s, "blobs");
        CHECK(t && t->document->nfields == 5);
        CHECK(t && field(t->document, "data")->v->kind == HERALD_V_BYTES);
        CHECK(t && field(t->document, "n")->v->kind == HERALD_V_INT64);
        CHECK(t && field(t->document, "f")->v->kind == HERALD_V_NUMBER);
        CHECK(t && field(t->document, "nil")->v->kind == HERALD_V_NULL);
        check_round_trip(s, __LINE__);
        herald_schema_free(s);
    }

    /* convex/server's paginationOptsValidator, as a field and inside v.optional(). */
    s = TS_OK("import { defineSchema, defineTable, paginationOptsValidator } from "
              "\"convex/server\";\nimport { v } from \"convex/values\";\n"
              "export default defineSchema({ saved: defineTable({ opts: paginationOptsValidator,"
              " maybe: v.optional(paginationOptsValidator) }) })\n");
    if (s) {
        t = herald_schema_table(s, "saved");
        f = t ? field(t->document, "opts") : NULL;
        CHECK(f && !f->optional && f->v->kind == HERALD_V_OBJECT && f->v->nfields == 6);
        CHECK(f && field(f->v, "numItems") && field(f->v, "numItems")->v->kind == HERALD_V_NUMBER);
        CHECK(f && field(f->v, "cursor") && !field(f->v, "cursor")->optional &&
              field(f->v, "cursor")->v->kind == HERALD_V_UNION);
        CHECK(f && field(f->v, "endCursor") && field(f->v, "endCursor")->optional);
        f = t ? field(t->document, "maybe") : NULL;
        CHECK(f && f->optional && f->v->kind == HERALD_V_OBJECT && f->v->nfields == 6);
        check_round_trip(s, __LINE__);
        herald_schema_free(s);
    }

    /* Literals of every kind, including bigints, negatives and escapes. */
    s = TS_OK(HDR "export default defineSchema({ t: defineTable({\n"
                  "  a: v.literal(5n), b: v.literal(-9223372036854775808n), c: v.literal(-1.5),\n"
                  "  d: v.literal(true), e: v.literal(null), g: v.literal('\\u00e9\\n\\x41'),\n"
                  "  h: v.literal(0x10), i: v.literal(1_000), j: v.nullable(v.string()),\n"
                  "  k: v.record(v.union(v.literal('x'), v.id('t')), v.array(v.any())),\n"
                  "}) })");
    if (s) {
        const herald_validator *d = s->tables[0].document;
        f = field(d, "a");
        CHECK(f && f->v->literal.type == HERALD_INT64 && f->v->literal.u.i == 5);
        f = field(d, "b");
        CHECK(f && f->v->literal.type == HERALD_INT64 && f->v->literal.u.i == INT64_MIN);
        f = field(d, "c");
        CHECK(f && f->v->literal.type == HERALD_FLOAT64 && f->v->literal.u.f == -1.5);
        f = field(d, "d");
        CHECK(f && f->v->literal.type == HERALD_BOOLEAN && f->v->literal.u.b);
        f = field(d, "e");
        CHECK(f && f->v->literal.type == HERALD_NULL);
        f = field(d, "g");
        CHECK(f && f->v->literal.type == HERALD_STRING &&
              strcmp(f->v->literal.u.s.ptr, "\xc3\xa9\nA") == 0);
        f = field(d, "h");
        CHECK(f && f->v->literal.u.f == 16);
        f = field(d, "i");
        CHECK(f && f->v->literal.u.f == 1000);
        f = field(d, "j");
        CHECK(f && f->v->kind == HERALD_V_UNION && f->v->nmembers == 2 &&
              f->v->members[1]->kind == HERALD_V_NULL);
        f = field(d, "k");
        CHECK(f && f->v->kind == HERALD_V_RECORD && f->v->keys->kind == HERALD_V_UNION &&
              f->v->items->kind == HERALD_V_ARRAY);
        check_round_trip(s, __LINE__);
        herald_schema_free(s);
    }

    /* Comments anywhere, side-effect and type imports, `export default` of a binding. */
    s = TS_OK("#!/usr/bin/env node\n/* header */ import 'x';\nimport type { Foo } from './foo'\n"
              "import * as all from \"y\";\n"
              "const schema = defineSchema({ /* tables */ a: defineTable({ x: v.string() // c\n"
              "}).searchIndex('s', { searchField: 'x' })\n"
              ".vectorIndex('v', { vectorField: 'y', dimensions: 2, filterFields: ['x'] }), })\n"
              "export default schema;;\n");
    if (s) {
        t = herald_schema_table(s, "a");
        CHECK(t && t->nsearch_indexes == 1 && t->search_indexes[0].nfilter_fields == 0);
        CHECK(t && t->nvector_indexes == 1 && t->vector_indexes[0].dimensions == 2);
        herald_schema_free(s);
    }

    /* Syntax errors: exact line and column. */
    TS_ERR("export default defineSchema({\n  t: defineTable({ a: v.string() )\n})", HERALD_ESCHEMA,
           "t.ts:2:34: expected `,` or `}` but found `)`");
    TS_ERR("export default defineSchema({ t: defineTable({}) }", HERALD_ESCHEMA,
           "t.ts:1:51: expected `,` or `)` but found end of file");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string }) }) + 1", HERALD_ESCHEMA,
           "t.ts:1:66: expected `;` but found `+`");
    TS_ERR("const = 3", HERALD_ESCHEMA, "t.ts:1:7: expected a name but found `=`");
    TS_ERR("import { v } from\n", HERALD_ESCHEMA,
           "t.ts:2:1: expected a module name but found end of file");
    TS_ERR("import { v }\nconst x = 1;", HERALD_ESCHEMA,
           "t.ts:2:12: expected `from` but found `;`");
    TS_ERR("export default defineSchema({ t: 'abc\n })", HERALD_ESCHEMA,
           "t.ts:1:34: unterminated string");
    TS_ERR("/* never closed\n export default", HERALD_ESCHEMA, "t.ts:1:1: unterminated comment");
    TS_ERR("export default defineSchema({ t: 12abc })", HERALD_ESCHEMA,
           "t.ts:1:34: invalid number literal");
    TS_ERR("export default defineSchema({ \xc3\xa9: 1 })", HERALD_ESCHEMA,
           "t.ts:1:31: unsupported construct: non-ASCII character");
    TS_ERR("export default defineSchema({ t: \x01 })", HERALD_ESCHEMA,
           "t.ts:1:34: unexpected byte 0x01");
    TS_ERR("export default defineSchema({ t: '\\0' })", HERALD_ESCHEMA,
           "t.ts:1:35: unsupported construct: `\\0` escape");
    TS_ERR("export default defineSchema({ t: '\xff' })", HERALD_ESCHEMA,
           "t.ts:1:35: invalid UTF-8 in string");
    TS_ERR(
        "export default defineSchema({ t: defineTable({ a: v.literal(99999999999999999999n) }) })",
        HERALD_ESCHEMA, "t.ts:1:61: bigint literal out of range");
    TS_ERR(
        "export default defineSchema({ t: defineTable({ a: v.literal(9223372036854775808n) }) })",
        HERALD_ESCHEMA, "t.ts:1:61: bigint literal out of the int64 range");
    TS_ERR("const a = 1;\nconst a = 2;", HERALD_ESCHEMA, "t.ts:2:7: `a` is declared twice");
    TS_ERR("const a: number = 1;", HERALD_ESCHEMA,
           "t.ts:1:8: unsupported construct: type annotation");
    TS_ERR("function f() {}", HERALD_ESCHEMA,
           "t.ts:1:1: unsupported construct: statement starting with `function`");
    TS_ERR("export function f() {}", HERALD_ESCHEMA,
           "t.ts:1:8: expected `const` or `default` but found `function`");
    TS_ERR("export default defineSchema({})\nexport default defineSchema({})", HERALD_ESCHEMA,
           "t.ts:2:8: second `export default` (first at 1:8)");
    TS_ERR("// nothing\n", HERALD_ESCHEMA, "t.ts:2:1: no `export default defineSchema(...)`");
    TS_ERR("", HERALD_ESCHEMA, "t.ts:1:1: no `export default defineSchema(...)`");

    /* Unsupported constructs. */
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.foo() }) })", HERALD_ESCHEMA,
           "t.ts:1:53: unsupported construct: `v.foo()`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.union(v.string(), 'x') }) })",
           HERALD_ESCHEMA,
           "t.ts:1:71: unsupported construct: a string where a validator was expected");
    TS_ERR(
        "export default defineSchema({ t: defineTable({ a: v.array(v.optional(v.string())) }) })",
        HERALD_ESCHEMA, "t.ts:1:61: unsupported construct: `v.optional()` outside an object field");
    TS_ERR("export default defineSchema({ t: defineTable(v.optional(v.object({}))) })",
           HERALD_ESCHEMA,
           "t.ts:1:48: unsupported construct: `v.optional()` outside an object field");
    TS_ERR("export default defineSchema({ t: defineTable({ a: { b: v.string() } }) })",
           HERALD_ESCHEMA,
           "t.ts:1:51: unsupported construct: an object literal where a validator was expected "
           "(use v.object({...}))");
    TS_ERR("export default defineSchema({ ...other })", HERALD_ESCHEMA,
           "t.ts:1:31: unsupported construct: spread `...`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.union(...xs) }) })", HERALD_ESCHEMA,
           "t.ts:1:59: unsupported construct: spread `...` in the arguments of `v.union()`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string() }).unique('x') })",
           HERALD_ESCHEMA,
           "t.ts:1:65: unsupported construct: method call `.unique()` where defineTable(...) was "
           "expected");
    TS_ERR("export default defineSchema({ t: defineTable({ a: helper() }) })", HERALD_ESCHEMA,
           "t.ts:1:51: unsupported construct: call to `helper()` where a validator was expected");
    TS_ERR("export default defineSchema({ t: defineTable({ a: myValidator }) })", HERALD_ESCHEMA,
           "t.ts:1:51: unknown identifier `myValidator`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string(1) }) })", HERALD_ESCHEMA,
           "t.ts:1:51: `v.string()` takes 0 arguments, not 1");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.id(users) }) })", HERALD_ESCHEMA,
           "t.ts:1:56: unknown identifier `users`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.literal([1]) }) })", HERALD_ESCHEMA,
           "t.ts:1:61: unsupported construct: an array literal where a string, number, bigint, "
           "boolean or null was expected");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string() }).index('x', 'a') })",
           HERALD_ESCHEMA,
           "t.ts:1:76: unsupported construct: a string where an array of field names was expected");
    TS_ERR("export default defineSchema({ t: defineTable({}).searchIndex('s', { field: 'a' }) })",
           HERALD_ESCHEMA, "t.ts:1:69: unsupported construct: `.searchIndex()` option `field`");
    TS_ERR("export default defineSchema({ t: defineTable({}).vectorIndex('s', { vectorField: 'a' "
           "}) })",
           HERALD_ESCHEMA, "t.ts:1:67: `.vectorIndex()` needs `dimensions`");
    TS_ERR("export default defineSchema({}, { strict: true })", HERALD_ESCHEMA,
           "t.ts:1:35: unsupported construct: defineSchema option `strict`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string(), a: v.number() }) })",
           HERALD_ESCHEMA, "t.ts:1:63: duplicate field `a`");
    TS_ERR("export default defineSchema({ t: defineTable({}), t: defineTable({}) })",
           HERALD_ESCHEMA, "t.ts:1:51: duplicate table `t`");
    TS_ERR("export default defineSchema({ t: defineTable({ a: v.string() as any }) })",
           HERALD_ESCHEMA, "t.ts:1:62: unsupported construct: `as` expression");
    TS_ERR("export default defineSchema({ [name]: defineTable({}) })", HERALD_ESCHEMA,
           "t.ts:1:31: unsupported construct: computed property name");
    TS_ERR("export default defineSchema({ t: defineTable({ a: -v.number() }) })", HERALD_ESCHEMA,
           "t.ts:1:51: unsupported construct: `-` before a non-number");
    TS_ERR("export default makeSchema()", HERALD_ESCHEMA,
           "t.ts:1:16: unsupported construct: call to `makeSchema()` where defineSchema(...) was "
           "expected");

    TS_ERR("const x = 5\nexport default defineSchema({ t: defineTable({ a: x }) })", HERALD_ESCHEMA,
           "t.ts:2:51: unsupported construct: a number where a validator was expected");

    /* -0 survives as a float literal; 0.1 prints short in messages. */
    s = TS_OK("export default defineSchema({ t: defineTable({ z: v.literal(-0), p: "
              "v.literal(0.1) }) })");
    if (s) {
        const herald_validator *d = s->tables[0].document;
        f = field(d, "z");
        CHECK(f && f->v->literal.type == HERALD_FLOAT64 && f->v->literal.u.f == 0 &&
              signbit(f->v->literal.u.f));
        check_round_trip(s, __LINE__);
        herald_value zero = herald_float64(0), tenth = herald_float64(0.1);
        herald_error e = {0};
        CHECK(herald_validate(d, &zero, NULL, &e) == HERALD_EVALIDATION);
        CHECK(herald_validate(f->v, &zero, "z", &e) == HERALD_EVALIDATION);
        CHECK_MSG(strcmp(e.message, "z: expected -0, got 0") == 0, e);
        CHECK(herald_validate(field(d, "p")->v, &zero, "p", &e) == HERALD_EVALIDATION);
        CHECK_MSG(strcmp(e.message, "p: expected 0.1, got 0") == 0, e);
        CHECK(herald_validate(field(d, "p")->v, &tenth, "p", &e) == 0);
        herald_schema_free(s);
    }

    /* Semantic errors come from the shared JSON checks. */
    TS_ERR(
        "export default defineSchema({ t: defineTable({ a: v.string() }).index('by_id', ['a']) })",
        HERALD_ESCHEMA, "t.ts: table `t`: index name `by_id` is reserved for a system index");
    TS_ERR("export default defineSchema({ t: defineTable({ _a: v.string() }) })", HERALD_ESCHEMA,
           "t.ts: table `t`: top-level field `_a` must not start with `_` (system fields)");

    /* Nesting: 64 levels are fine to parse, 65 are refused. */
    char deep[1024];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "const x = ");
    for (int i = 0; i < 65; i++)
        deep[k++] = '[';
    deep[k] = 0;
    TS_ERR(deep, HERALD_ESCHEMA, "t.ts:1:75: nesting deeper than 64 levels");
    k = (size_t)snprintf(deep, sizeof deep, "const x = ");
    for (int i = 0; i < 64; i++)
        deep[k++] = '[';
    for (int i = 0; i < 64; i++)
        deep[k++] = ']';
    k += (size_t)snprintf(deep + k, sizeof deep - k, "\nexport default defineSchema({})");
    s = TS_OK(deep);
    herald_schema_free(s);

    /* Constants that double at each step are cut off, not expanded 2^40 times. */
    char blow[8192];
    k = (size_t)snprintf(blow, sizeof blow, "const a0 = v.string()\n");
    for (int i = 1; i <= 40; i++)
        k += (size_t)snprintf(blow + k, sizeof blow - k, "const a%d = v.union(a%d, a%d)\n", i,
                              i - 1, i - 1);
    snprintf(blow + k, sizeof blow - k,
             "export default defineSchema({ t: defineTable({ x: a40 }) })");
    herald_schema *sb = NULL;
    herald_error err = {0};
    CHECK(herald_schema_from_ts(blow, strlen(blow), "t.ts", &sb, &err) == HERALD_ESCHEMA);
    CHECK_MSG(strstr(err.message, "schema too large") || strstr(err.message, "nested deeper"), err);
    CHECK(sb == NULL);
}

/* -------------------------------------------------------- JSON load rules */

#define TABLE(doc)  "{\"tables\":{\"t\":{\"document\":" doc "}}}"
#define OBJ(fields) "{\"type\":\"object\",\"fields\":{" fields "}}"
#define IDX(idx)                                                                                   \
    "{\"tables\":{\"t\":{\"document\":" OBJ("\"a\":{\"type\":\"string\"}") "," idx "}}}"

static void test_json_rules(void)
{
    herald_schema *s = NULL;
    herald_error err = {0};

    /* Minimal forms and defaults. */
    const char *min = "{\"tables\":{\"t\":{\"document\":{\"type\":\"any\"}}}}";
    CHECK_MSG(herald_schema_from_json(min, strlen(min), "s.json", &s, &err) == 0, err);
    if (s) {
        CHECK(s->schema_validation && s->ntables == 1 && s->tables[0].nindexes == 0);
        char *j = herald_schema_to_json(s);
        CHECK(j && strcmp(j, "{\"schemaValidation\":true,\"tables\":{\"t\":{\"document\":{"
                             "\"type\":\"any\"},\"indexes\":[],\"searchIndexes\":[],"
                             "\"vectorIndexes\":[]}}}") == 0);
        free(j);
        herald_schema_free(s);
        s = NULL;
    }
    const char *empty = " {\"schemaValidation\": false, \"tables\": {}}\n";
    CHECK_MSG(herald_schema_from_json(empty, strlen(empty), "s.json", &s, &err) == 0, err);
    CHECK(s && !s->schema_validation && s->ntables == 0);
    CHECK(herald_schema_table(s, "t") == NULL);
    herald_schema_free(s);
    s = NULL;

    /* A union of objects is a valid document; tables sort by name. */
    const char *u =
        "{\"tables\":{\"zeta\":{\"document\":{\"type\":\"any\"}},\"alpha\":{\"document\":"
        "{\"type\":\"union\",\"members\":[" OBJ(
            "\"k\":{\"type\":\"literal\",\"value\":"
            "\"a\"}") "," OBJ("\"k\":{\"type\":\"literal\",\"value\":{\"$integer\":"
                              "\"AQAAAAAAAAA=\"}},\"n\":{\"type\":\"number\",\"optional\":"
                              "false}") "]}}}}";
    CHECK_MSG(herald_schema_from_json(u, strlen(u), "s.json", &s, &err) == 0, err);
    if (s) {
        CHECK(strcmp(s->tables[0].name, "alpha") == 0 && strcmp(s->tables[1].name, "zeta") == 0);
        CHECK(herald_schema_table(s, "zeta") == &s->tables[1]);
        const herald_validator *m1 = s->tables[0].document->members[1];
        CHECK(field(m1, "k")->v->literal.type == HERALD_INT64 &&
              field(m1, "k")->v->literal.u.i == 1);
        CHECK(!field(m1, "n")->optional);
        check_round_trip(s, __LINE__);
        char *vj = herald_validator_to_json(field(m1, "k")->v);
        CHECK(vj &&
              strcmp(vj, "{\"type\":\"literal\",\"value\":{\"$integer\":\"AQAAAAAAAAA=\"}}") == 0);
        free(vj);
        herald_schema_free(s);
        s = NULL;
    }

    /* Malformed JSON names the position. */
    JSON_ERR("{\"tables\":\n  {,}}", "s.json:2:");
    JSON_ERR("{\"tables\":{}} x", "s.json:1:15: invalid JSON");
    JSON_ERR("", "s.json:1:1: invalid JSON");
    JSON_ERR("[]", "s.json: the schema must be a JSON object");

    /* Unknown or repeated keys. */
    JSON_ERR("{\"tables\":{},\"tabels\":{}}", "s.json: unknown key `tabels` in the schema");
    JSON_ERR("{\"tables\":{},\"tables\":{}}", "key `tables` appears twice in the schema");
    JSON_ERR("{\"schemaValidation\":1,\"tables\":{}}", "`schemaValidation` must be true or false");
    JSON_ERR("{}", "`tables` must be an object");
    JSON_ERR("{\"tables\":{\"t\":{\"document\":{\"type\":\"any\"},\"idx\":[]}}}",
             "table `t`: unknown key `idx` in a table");
    JSON_ERR("{\"tables\":{\"t\":{}}}", "table `t`: no `document` validator");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"string\",\"max\":3}")),
             "table `t`: field `a`: unknown key `max` in a string validator");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"strng\"}")), "field `a`: unknown validator type `strng`");
    JSON_ERR(TABLE(OBJ("\"a\":{\"kind\":\"string\"}")), "validator without a string `type`");
    JSON_ERR(TABLE(OBJ("\"a\":\"string\"")), "field `a`: a validator must be a JSON object");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"array\"}")), "an array validator needs `items`");

    /* Table names. */
    JSON_ERR("{\"tables\":{\"_t\":{\"document\":{\"type\":\"any\"}}}}",
             "table name `_t` must not start with `_`");
    JSON_ERR("{\"tables\":{\"my-table\":{\"document\":{\"type\":\"any\"}}}}",
             "table name `my-table` is not an identifier");
    JSON_ERR("{\"tables\":{\"1t\":{\"document\":{\"type\":\"any\"}}}}", "not an identifier");
    JSON_ERR("{\"tables\":{\"t\":{\"document\":{\"type\":\"any\"}},\"t\":{\"document\":"
             "{\"type\":\"any\"}}}}",
             "duplicate table `t`");

    /* Document validators and field names. */
    JSON_ERR(TABLE("{\"type\":\"string\"}"),
             "table `t`: the document validator must be an object, any, or a union of objects, "
             "not string");
    JSON_ERR(TABLE("{\"type\":\"union\",\"members\":[" OBJ("") ",{\"type\":\"null\"}]}"),
             "not union");
    JSON_ERR(TABLE(OBJ("\"_secret\":{\"type\":\"string\"}")),
             "top-level field `_secret` must not start with `_`");
    JSON_ERR(TABLE("{\"type\":\"union\",\"members\":[" OBJ("\"_x\":{\"type\":\"any\"}") "]}"),
             "top-level field `_x` must not start with `_`");
    JSON_ERR(TABLE(OBJ("\"$x\":{\"type\":\"string\"}")), "field name `$x` must not start with `$`");
    JSON_ERR(TABLE(OBJ("\"a\":" OBJ("\"$b\":{\"type\":\"any\"}"))),
             "field `a`: field name `$b` must not start with `$`");
    JSON_ERR(TABLE(OBJ("\"\":{\"type\":\"any\"}")), "empty field name");
    JSON_ERR(TABLE(OBJ("\"a\\u0001\":{\"type\":\"any\"}")), "contains a control character");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"any\"},\"a\":{\"type\":\"any\"}")),
             "duplicate field `a`");
    JSON_ERR(
        TABLE(OBJ("\"a\":{\"type\":\"array\",\"items\":{\"type\":\"any\",\"optional\":true}}")),
        "field `a`: `optional` is only allowed on an object field");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"any\",\"optional\":1}")),
             "`optional` must be true or false");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"id\",\"table\":\"nope\"}")),
             "field `a`: v.id(\"nope\") names no table of the schema");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"id\",\"table\":\"_no-pe\"}")), "not a system table name");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"id\",\"table\":3}")), "must be a string");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"record\",\"keys\":{\"type\":\"number\"},\"values\":"
                       "{\"type\":\"any\"}}")),
             "record keys must be string, id or string literal validators (or a union of them), "
             "not number");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"record\",\"keys\":{\"type\":\"literal\",\"value\":1},"
                       "\"values\":{\"type\":\"any\"}}")),
             "record keys must be");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"record\",\"keys\":{\"type\":\"string\"}}")),
             "needs `values`");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"union\",\"members\":[]}")),
             "a union needs at least one member");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"literal\",\"value\":[1]}")),
             "a literal must be a string, number, int64, boolean or null");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"literal\",\"value\":{\"$bytes\":\"AA==\"}}")),
             "a literal must be");
    JSON_ERR(TABLE(OBJ("\"a\":{\"type\":\"literal\",\"value\":{\"$integer\":\"xx\"}}")),
             "bad literal value");

    /* Validators nested too deep. */
    char deep[8192];
    size_t k = (size_t)snprintf(deep, sizeof deep, "{\"tables\":{\"t\":{\"document\":");
    for (int i = 0; i < 70; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "{\"type\":\"array\",\"items\":");
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{\"type\":\"any\"}");
    for (int i = 0; i < 70; i++)
        deep[k++] = '}';
    snprintf(deep + k, sizeof deep - k, "}}}");
    JSON_ERR(deep, "validators nested deeper than 64 levels");

    /* Indexes. */
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"by_id\",\"fields\":[\"a\"]}]"),
             "table `t`: index name `by_id` is reserved for a system index");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"by_creation_time\",\"fields\":[\"a\"]}]"), "reserved");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"_a\",\"fields\":[\"a\"]}]"),
             "index name `_a` must not start with `_`");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"by a\",\"fields\":[\"a\"]}]"), "is not an identifier");
    JSON_ERR(IDX("\"indexes\":[{\"fields\":[\"a\"]}]"), "index without a string `name`");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\"}]"), "index `x`: no `fields`");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[]}]"), "index `x`: `fields` is empty");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a\",\"a\"]}]"),
             "index `x`: field `a` appears twice in `fields`");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"_id\"]}]"),
             "`_id` cannot be an index field");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a\",\"_creationTime\"]}]"),
             "`_creationTime` is implicit");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"_other\"]}]"),
             "top-level field `_other` must not start with `_`");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a..b\"]}]"),
             "field path `a..b` has an empty segment");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"\"]}]"), "empty field path");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[1]}]"),
             "`fields` must be an array of strings");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a\"],\"unique\":true}]"),
             "index `x`: unknown key `unique` in an index");
    JSON_ERR(IDX("\"indexes\":{}"), "`indexes` must be an array");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\","
                 "\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}]"),
             "`fields` has more than 16 fields");
    JSON_ERR(IDX("\"indexes\":[{\"name\":\"x\",\"fields\":[\"a\"]}],\"searchIndexes\":[{\"name\":"
                 "\"x\",\"searchField\":\"a\"}]"),
             "table `t`: duplicate index name `x`");
    JSON_ERR(IDX("\"searchIndexes\":[{\"name\":\"s\"}]"),
             "search index `s`: `searchField` must be a string");
    JSON_ERR(IDX("\"searchIndexes\":[{\"name\":\"s\",\"searchField\":\"a\",\"filterFields\":"
                 "[\"b\",\"b\"]}]"),
             "field `b` appears twice in `filterFields`");
    JSON_ERR(IDX("\"vectorIndexes\":[{\"name\":\"v\",\"vectorField\":\"a\",\"dimensions\":1}]"),
             "vector index `v`: `dimensions` must be an integer from 2 to 4096");
    JSON_ERR(IDX("\"vectorIndexes\":[{\"name\":\"v\",\"vectorField\":\"a\",\"dimensions\":4097}]"),
             "`dimensions` must be an integer");
    JSON_ERR(IDX("\"vectorIndexes\":[{\"name\":\"v\",\"vectorField\":\"a\",\"dimensions\":3.5}]"),
             "`dimensions` must be an integer");
    JSON_ERR(IDX("\"vectorIndexes\":[{\"name\":\"v\",\"vectorField\":\"a\"}]"),
             "`dimensions` must be an integer");
    JSON_ERR(IDX("\"vectorIndexes\":[{\"name\":\"v\",\"dimensions\":4}]"),
             "`vectorField` must be a string");

    /* Nested paths and system-table ids are fine. */
    const char *ok = IDX("\"indexes\":[{\"name\":\"by_nested\",\"fields\":[\"a.b.c\",\"a\"]}],"
                         "\"vectorIndexes\":[{\"name\":\"v\",\"vectorField\":\"a\",\"dimensions\":"
                         "4096,\"filterFields\":[\"a\"]}]");
    CHECK_MSG(herald_schema_from_json(ok, strlen(ok), "s.json", &s, &err) == 0, err);
    if (s) {
        CHECK(s->tables[0].nindexes == 1 && s->tables[0].indexes[0].nfields == 2 &&
              strcmp(s->tables[0].indexes[0].fields[0], "a.b.c") == 0);
        CHECK(s->tables[0].vector_indexes[0].dimensions == 4096);
        check_round_trip(s, __LINE__);
        herald_schema_free(s);
        s = NULL;
    }
}

/* ------------------------------------------------------------ validation */

static herald_value json_value(const char *text)
{
    herald_value v;
    herald_error err = {0};
    if (herald_value_from_json(text, strlen(text), &v, &err) != 0) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, err.message);
        exit(1);
    }
    return v;
}

static void expect_valid(const herald_validator *val, const char *doc, int line)
{
    herald_value v = json_value(doc);
    herald_error err = {0};
    int rc = herald_validate(val, &v, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "%s:%d: %s should be valid: %s\n", __FILE__, line, doc, err.message);
        check_failures++;
    }
    herald_value_free(&v);
}

static void expect_invalid(const herald_validator *val, const char *doc, const char *path,
                           const char *message, int line)
{
    herald_value v = json_value(doc);
    herald_error err = {0};
    int rc = herald_validate(val, &v, path, &err);
    if (rc != HERALD_EVALIDATION || strcmp(err.message, message) != 0) {
        fprintf(stderr, "%s:%d: %s: expected \"%s\"\n    got %d \"%s\"\n", __FILE__, line, doc,
                message, rc, err.message);
        check_failures++;
    }
    herald_value_free(&v);
}

#define VALID(val, doc)                 expect_valid(val, doc, __LINE__)
#define INVALID(val, doc, msg)          expect_invalid(val, doc, NULL, msg, __LINE__)
#define INVALID_AT(val, doc, path, msg) expect_invalid(val, doc, path, msg, __LINE__)

/* Ids in these tests are "<table>:<anything>". */
static const char *id_table(void *ctx, const char *id, size_t len)
{
    static char table[64];
    (void)ctx;
    const char *colon = memchr(id, ':', len);
    if (!colon || (size_t)(colon - id) >= sizeof table) return NULL;
    memcpy(table, id, (size_t)(colon - id));
    table[colon - id] = 0;
    return table;
}

static void test_validation(void)
{
    herald_schema *s = load_fixture("seed001_artworks.ts");
    if (!s) return;
    const herald_validator *art = herald_schema_table(s, "artworks")->document;
    const char *good = "{\"userId\":\"user_1\",\"prompt\":\"a cat\",\"frames\":[\"f0\",\"f1\"],"
                       "\"metadata\":{\"width\":640,\"height\":480,\"fps\":12,\"generator\":\"g\","
                       "\"model\":\"m\",\"createdAt\":\"2024\"},\"visibility\":\"public\","
                       "\"createdAt\":\"2024\",\"updatedAt\":\"2024\"}";
    VALID(art, good);
    VALID(art, "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":1,"
               "\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"style\":\"s\","
               "\"createdAt\":\"c\"},\"visibility\":\"unlisted\",\"featured\":true,\"likes\":3,"
               "\"views\":0,\"createdAt\":\"c\",\"updatedAt\":\"u\"}");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":\"640\","
            "\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"createdAt\":\"c\"},"
            "\"visibility\":\"public\",\"createdAt\":\"c\",\"updatedAt\":\"u\"}",
            "metadata.width: expected number, got string");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[\"a\",\"b\",\"c\",4],\"metadata\":{"
            "\"width\":1,\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"createdAt\":"
            "\"c\"},\"visibility\":\"public\",\"createdAt\":\"c\",\"updatedAt\":\"u\"}",
            "frames[3]: expected string, got number");
    INVALID(art,
            "{\"userId\":\"u\",\"frames\":[],\"metadata\":{\"width\":1,\"height\":1,\"fps\":1,"
            "\"generator\":\"g\",\"model\":\"m\",\"createdAt\":\"c\"},\"visibility\":\"public\","
            "\"createdAt\":\"c\",\"updatedAt\":\"u\"}",
            "missing required field `prompt`");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":1,"
            "\"height\":1,\"fps\":1,\"generator\":\"g\",\"createdAt\":\"c\"},\"visibility\":"
            "\"public\",\"createdAt\":\"c\",\"updatedAt\":\"u\"}",
            "metadata: missing required field `model`");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":1,"
            "\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"createdAt\":\"c\"},"
            "\"visibility\":\"public\",\"createdAt\":\"c\",\"updatedAt\":\"u\",\"x\":1}",
            "extra field `x`");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":1,"
            "\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"createdAt\":\"c\"},"
            "\"visibility\":\"secret\",\"createdAt\":\"c\",\"updatedAt\":\"u\"}",
            "visibility: no member of the union matched: expected \"public\" | \"private\" | "
            "\"unlisted\", got \"secret\"");
    INVALID(art,
            "{\"userId\":\"u\",\"prompt\":\"p\",\"frames\":[],\"metadata\":{\"width\":1,"
            "\"height\":1,\"fps\":1,\"generator\":\"g\",\"model\":\"m\",\"createdAt\":\"c\"},"
            "\"visibility\":\"public\",\"likes\":{\"$integer\":\"AQAAAAAAAAA=\"},\"createdAt\":"
            "\"c\",\"updatedAt\":\"u\"}",
            "likes: expected number, got int64");
    INVALID_AT(art, "[]", "doc", "doc: expected object, got array");

    /* A field whose value is undefined counts as missing. */
    herald_value doc = json_value(good);
    herald_error err = {0};
    CHECK(herald_object_set(&doc, "featured", 8, herald_undefined()) == 0);
    CHECK_MSG(herald_validate(art, &doc, NULL, &err) == 0, err);
    CHECK(herald_object_set(&doc, "prompt", 6, herald_undefined()) == 0);
    CHECK(herald_validate(art, &doc, NULL, &err) == HERALD_EVALIDATION);
    CHECK_MSG(strcmp(err.message, "missing required field `prompt`") == 0, err);
    herald_value_free(&doc);

    /* Ids: a string, and with a resolver, of the right table. */
    const herald_validator *files = herald_schema_table(s, "files")->document;
    const char *file_doc = "{\"storageId\":\"_storage:1\",\"userId\":\"users:9\",\"filename\":"
                           "\"a\",\"mimeType\":\"b\",\"size\":3,\"createdAt\":\"c\"}";
    doc = json_value(file_doc);
    CHECK_MSG(hd__validate(files, &doc, NULL, id_table, NULL, &err) == 0, err);
    herald_value_free(&doc);
    doc = json_value("{\"storageId\":\"_storage:1\",\"userId\":\"artworks:9\",\"filename\":"
                     "\"a\",\"mimeType\":\"b\",\"size\":3,\"createdAt\":\"c\"}");
    CHECK(hd__validate(files, &doc, NULL, NULL, NULL, &err) == 0);
    CHECK(hd__validate(files, &doc, NULL, id_table, NULL, &err) == HERALD_EVALIDATION);
    CHECK_MSG(strcmp(err.message, "userId: expected an id of table `users`") == 0, err);
    herald_value_free(&doc);
    doc = json_value("{\"storageId\":\"nocolon\",\"userId\":\"users:9\",\"filename\":"
                     "\"a\",\"mimeType\":\"b\",\"size\":3,\"createdAt\":\"c\"}");
    CHECK(hd__validate(files, &doc, NULL, id_table, NULL, &err) == HERALD_EVALIDATION);
    CHECK_MSG(strcmp(err.message, "storageId: expected an id of table `_storage`") == 0, err);
    herald_value_free(&doc);
    INVALID(files,
            "{\"storageId\":5,\"userId\":\"users:9\",\"filename\":\"a\",\"mimeType\":\"b\","
            "\"size\":3,\"createdAt\":\"c\"}",
            "storageId: expected an id of table `_storage`, got number");

    /* Arrays of objects name the element. */
    const herald_validator *settings = herald_schema_table(s, "userSettings")->document;
    INVALID(settings,
            "{\"userId\":\"users:1\",\"theme\":\"dark\",\"defaultVisibility\":\"public\","
            "\"emailNotifications\":false,\"apiKeys\":[{\"name\":\"n\",\"key\":\"k\",\"provider\":"
            "\"p\",\"createdAt\":\"c\"},{\"name\":\"n\",\"key\":null,\"provider\":\"p\","
            "\"createdAt\":\"c\"}],\"updatedAt\":\"u\"}",
            "apiKeys[1].key: expected string, got null");
    herald_schema_free(s);

    /* Scalars, records, literals, unions, any. */
    s = TS_OK("export default defineSchema({ t: defineTable({\n"
              " n: v.optional(v.number()), i: v.optional(v.int64()), b: v.optional(v.boolean()),\n"
              " z: v.optional(v.null()), by: v.optional(v.bytes()), a: v.optional(v.any()),\n"
              " five: v.optional(v.literal(5n)), half: v.optional(v.literal(0.5)),\n"
              " r: v.optional(v.record(v.union(v.literal('x'), v.literal('y')), v.number())),\n"
              " ri: v.optional(v.record(v.id('t'), v.string())),\n"
              " u: v.optional(v.union(v.object({ kind: v.literal('a'), n: v.number() }),\n"
              "                       v.object({ kind: v.literal('b'), s: v.string() }))),\n"
              " nn: v.optional(v.union(v.string(), v.null())),\n"
              "}) })");
    if (!s) return;
    const herald_validator *t = s->tables[0].document;
    VALID(t, "{}");
    VALID(t, "{\"n\":1.5,\"i\":{\"$integer\":\"AQAAAAAAAAA=\"},\"b\":false,\"z\":null,"
             "\"by\":{\"$bytes\":\"AAE=\"},\"a\":[1,{\"x\":null}],\"five\":{\"$integer\":"
             "\"BQAAAAAAAAA=\"},\"half\":0.5,\"r\":{\"x\":1,\"y\":2},\"ri\":{\"t:1\":\"a\"},"
             "\"u\":{\"kind\":\"b\",\"s\":\"s\"},\"nn\":null}");
    INVALID(t, "{\"i\":3}", "i: expected int64, got number");
    INVALID(t, "{\"b\":\"true\"}", "b: expected boolean, got string");
    INVALID(t, "{\"z\":0}", "z: expected null, got number");
    INVALID(t, "{\"by\":\"AAE=\"}", "by: expected bytes, got string");
    INVALID(t, "{\"five\":5}", "five: expected 5n, got 5");
    INVALID(t, "{\"half\":0.25}", "half: expected 0.5, got 0.25");
    INVALID(t, "{\"r\":{\"x\":1,\"q\":2}}",
            "r: key `q`: no member of the union matched: expected \"x\" | \"y\", got \"q\"");
    INVALID(t, "{\"r\":{\"x\":\"1\"}}", "r.x: expected number, got string");
    INVALID(t, "{\"r\":[]}", "r: expected record (object), got array");
    INVALID(t, "{\"u\":{\"kind\":\"a\",\"n\":\"1\"}}",
            "u: no member of the union matched: u.n: expected number, got string");
    INVALID(t, "{\"u\":{\"kind\":\"c\"}}",
            "u: no member of the union matched: u.kind: expected \"a\", got \"c\"");
    INVALID(t, "{\"u\":3}", "u: no member of the union matched: expected object | object, got 3");
    INVALID(t, "{\"nn\":true}",
            "nn: no member of the union matched: expected string | null, got true");
    INVALID_AT(t, "{\"n\":\"x\"}", "args", "args.n: expected number, got string");

    doc = json_value("{\"ri\":{\"users:1\":\"a\"}}");
    CHECK(hd__validate(t, &doc, NULL, NULL, NULL, &err) == 0);
    CHECK(hd__validate(t, &doc, NULL, id_table, NULL, &err) == HERALD_EVALIDATION);
    CHECK_MSG(strcmp(err.message, "ri: key `users:1`: expected an id of table `t`") == 0, err);
    herald_value_free(&doc);

    /* any accepts everything but undefined. */
    const herald_validator *any = field(t, "a")->v;
    herald_value undef = herald_undefined();
    CHECK(herald_validate(any, &undef, "x", &err) == HERALD_EVALIDATION);
    CHECK_MSG(strcmp(err.message, "x: expected a value, got undefined") == 0, err);
    herald_value nul = herald_null();
    CHECK(herald_validate(any, &nul, NULL, NULL) == 0);
    CHECK(herald_validate(t, &nul, NULL, NULL) == HERALD_EVALIDATION); /* err may be NULL */

    /* Validators compare structurally. */
    CHECK(hd__validator_equal(t, t));
    CHECK(!hd__validator_equal(field(t, "five")->v, field(t, "half")->v));
    CHECK(!hd__validator_equal(field(t, "r")->v, field(t, "ri")->v));
    CHECK(hd__validator_equal(field(t, "n")->v, field(t, "n")->v));
    herald_schema_free(s);
}

/* ----------------------------------------------------------------- fuzz */

static void parse_any(const char *src, size_t len, bool ts)
{
    herald_schema *s = NULL;
    herald_error err = {0};
    int rc = ts ? herald_schema_from_ts(src, len, "f.ts", &s, &err)
                : herald_schema_from_json(src, len, "f.json", &s, &err);
    if (rc == 0) {
        CHECK(s != NULL);
        char *j = herald_schema_to_json(s);
        CHECK(j != NULL);
        free(j);
        herald_schema_free(s);
    } else {
        CHECK(rc < 0 && s == NULL && err.message[0] != 0);
    }
}

static void test_fuzz(void)
{
    static const char *files[] = {"seed000_reels.ts",  "seed001_artworks.ts",
                                  "seed002_videos.ts", "seed003_fondation.ts",
                                  "seed004_social.ts", "seed003_fondation.json"};
    static const char alphabet[] = "v.({[]})\"'`,:;-/*\n defineTablSchm0123456789n_$\\x";
    fprintf(stderr, "test_schema: fuzz seed %llu\n", check_rng_state);

    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        size_t len;
        char *src = read_fixture(files[fi], &len);
        CHECK(src != NULL);
        if (!src) continue;
        bool ts = strstr(files[fi], ".ts") != NULL;
        /* Every prefix, in exact-size copies so ASan sees reads past the end. */
        for (size_t cut = 0; cut < len; cut += ts ? 1 : 7) {
            char *p = malloc(cut ? cut : 1);
            memcpy(p, src, cut);
            parse_any(p, cut, ts);
            free(p);
        }
        /* Random byte edits. */
        for (int round = 0; round < 400; round++) {
            char *p = malloc(len);
            memcpy(p, src, len);
            int edits = 1 + (int)check_below(4);
            for (int e = 0; e < edits; e++) {
                size_t at = check_below((unsigned)len);
                p[at] = check_below(4) == 0 ? (char)check_below(256)
                                            : alphabet[check_below(sizeof alphabet - 1)];
            }
            parse_any(p, len, ts);
            free(p);
        }
        free(src);
    }
    /* Random token soup. */
    for (int round = 0; round < 2000; round++) {
        size_t n = check_below(300);
        char *p = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            p[i] = check_below(8) == 0 ? (char)check_below(256)
                                       : alphabet[check_below(sizeof alphabet - 1)];
        parse_any(p, n, true);
        parse_any(p, n, false);
        free(p);
    }
}

int main(void)
{
    find_fixtures();
    test_seed_fixtures();
    test_broken_fixtures();
    test_ts_subset();
    test_json_rules();
    test_validation();
    test_fuzz();
    CHECK_DONE();
}
