/*
 * `herald codegen`: the `convex/_generated` folder of a Convex frontend,
 * written from an app's schema and its functions' validators.
 *
 * The layout follows what the `convex` package's own codegen writes when it
 * knows every function's validators (its "static" templates in
 * dist/esm/cli/codegen_templates: api.js, component_api.js, dataModel.js):
 * `api.js` is `anyApi`, whose references are only names at run time, and
 * `api.d.ts` spells out one FunctionReference<kind, visibility, Args,
 * Returns> per function, nested by module path, so that `useQuery`,
 * `useMutation` and ConvexHttpClient check arguments and results.
 * `dataModel.d.ts` declares DataModel, TableNames, Doc<T> and Id<T>.
 *
 * It must never run a function or touch a data folder: it reads a loaded
 * schema and runtime, and writes files.
 */
#include "codegen.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

static void indent(hd_buf *b, int n)
{
    for (int i = 0; i < n; i++)
        hd__buf_byte(b, ' ');
}

/*
 * A string as a TypeScript string literal in `quote` ('"' or '`'). Bytes
 * from 0x80 up are copied: Herald's strings and names are UTF-8. In a
 * template literal `${` is kept, as Convex writes its record field paths
 * (`metadata.${string}`).
 */
static void ts_string(hd_buf *b, const char *s, size_t len, char quote)
{
    hd__buf_byte(b, (uint8_t)quote);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)quote || c == '\\')
            hd__buf_printf(b, "\\%c", c);
        else if (c == '\n')
            hd__buf_str(b, "\\n");
        else if (c < 0x20 || c == 0x7f)
            hd__buf_printf(b, "\\u%04x", c);
        else
            hd__buf_byte(b, c);
    }
    hd__buf_byte(b, (uint8_t)quote);
}

static void ts_name(hd_buf *b, const char *s)
{
    ts_string(b, s, strlen(s), '"');
}

/* A literal validator's value as a literal type; a float that has none (NaN) is `number`. */
static void ts_literal(hd_buf *b, const herald_value *v)
{
    switch (v->type) {
    case HERALD_NULL:
        hd__buf_str(b, "null");
        return;
    case HERALD_BOOLEAN:
        hd__buf_str(b, v->u.b ? "true" : "false");
        return;
    case HERALD_INT64:
        hd__buf_printf(b, "%lldn", (long long)v->u.i);
        return;
    case HERALD_STRING:
        ts_string(b, v->u.s.ptr, v->u.s.len, '"');
        return;
    case HERALD_FLOAT64:
        if (!isfinite(v->u.f))
            hd__buf_str(b, "number");
        else if (v->u.f == 0)
            hd__buf_str(b, "0");
        else if (v->u.f == floor(v->u.f) && fabs(v->u.f) < 1e15)
            hd__buf_printf(b, "%.0f", v->u.f);
        else
            hd__buf_printf(b, "%.17g", v->u.f);
        return;
    default:
        hd__buf_str(b, "any");
        return;
    }
}

/* How ids are spelled: `Id` in api.d.ts (GenericId imported as Id), GenericId in dataModel.d.ts. */
typedef struct ts_style {
    const char *id_type;
} ts_style;

static void ts_type(hd_buf *b, const herald_validator *v, const ts_style *st, int depth);

static void ts_fields(hd_buf *b, const herald_vfield *fields, size_t n, const char *system_table,
                      const ts_style *st, int depth)
{
    if (n == 0 && !system_table) {
        hd__buf_str(b, "{}");
        return;
    }
    hd__buf_str(b, "{\n");
    for (size_t i = 0; i < n; i++) {
        indent(b, depth + 2);
        ts_name(b, fields[i].name);
        hd__buf_str(b, fields[i].optional ? "?: " : ": ");
        ts_type(b, fields[i].v, st, depth + 2);
        hd__buf_str(b, ";\n");
    }
    if (system_table) {
        indent(b, depth + 2);
        hd__buf_printf(b, "\"_id\": %s<", st->id_type);
        ts_name(b, system_table);
        hd__buf_str(b, ">;\n");
        indent(b, depth + 2);
        hd__buf_str(b, "\"_creationTime\": number;\n");
    }
    indent(b, depth);
    hd__buf_byte(b, '}');
}

static void ts_type(hd_buf *b, const herald_validator *v, const ts_style *st, int depth)
{
    if (!v) {
        hd__buf_str(b, "any");
        return;
    }
    switch (v->kind) {
    case HERALD_V_ANY:
        hd__buf_str(b, "any");
        return;
    case HERALD_V_NULL:
        hd__buf_str(b, "null");
        return;
    case HERALD_V_NUMBER:
        hd__buf_str(b, "number");
        return;
    case HERALD_V_INT64:
        hd__buf_str(b, "bigint");
        return;
    case HERALD_V_BOOLEAN:
        hd__buf_str(b, "boolean");
        return;
    case HERALD_V_STRING:
        hd__buf_str(b, "string");
        return;
    case HERALD_V_BYTES:
        hd__buf_str(b, "ArrayBuffer");
        return;
    case HERALD_V_ID:
        hd__buf_printf(b, "%s<", st->id_type);
        ts_name(b, v->table ? v->table : "");
        hd__buf_byte(b, '>');
        return;
    case HERALD_V_LITERAL:
        ts_literal(b, &v->literal);
        return;
    case HERALD_V_ARRAY:
        hd__buf_str(b, "Array<");
        ts_type(b, v->items, st, depth);
        hd__buf_byte(b, '>');
        return;
    case HERALD_V_OBJECT:
        ts_fields(b, v->fields, v->nfields, NULL, st, depth);
        return;
    case HERALD_V_RECORD:
        hd__buf_str(b, "Record<");
        if (v->keys)
            ts_type(b, v->keys, st, depth);
        else
            hd__buf_str(b, "string");
        hd__buf_str(b, ", ");
        ts_type(b, v->items, st, depth);
        hd__buf_byte(b, '>');
        return;
    case HERALD_V_UNION:
        if (v->nmembers == 0) {
            hd__buf_str(b, "never");
            return;
        }
        /* Unparenthesised, as Convex writes it: every place a type goes here is delimited. */
        for (size_t i = 0; i < v->nmembers; i++) {
            if (i) hd__buf_str(b, " | ");
            ts_type(b, v->members[i], st, depth);
        }
        return;
    }
    /* A validator kind this file does not know yet: any, rather than a wrong type. */
    hd__buf_str(b, "any");
}

/* ------------------------------------------------------------ headers */

static void header(hd_buf *b, const char *what)
{
    hd__buf_printf(b,
                   "/* eslint-disable */\n"
                   "/**\n"
                   " * %s\n"
                   " *\n"
                   " * THIS CODE IS AUTOMATICALLY GENERATED by `herald codegen` from the app's\n"
                   " * schema and the validators of its functions (functions/ folder).\n"
                   " *\n"
                   " * To regenerate, run `herald codegen --app DIR --out convex/_generated`.\n"
                   " * @module\n"
                   " */\n\n",
                   what);
}

/* ------------------------------------------------------------ api.d.ts */

/* One name in `api`: a module folder, a module, or (leaf >= 0) a function. */
typedef struct api_node {
    char *name;
    struct api_node *kids;
    size_t nkids, cap;
    long leaf; /* index in the runtime, or -1 */
} api_node;

static void api_node_free(api_node *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        api_node_free(&n->kids[i]);
    free(n->kids);
    free(n->name);
}

static api_node *api_child(api_node *n, const char *name, size_t len, herald_error *err)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (strlen(n->kids[i].name) == len && !memcmp(n->kids[i].name, name, len))
            return &n->kids[i];
    if (n->nkids == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 8;
        api_node *k = realloc(n->kids, cap * sizeof *k);
        if (!k) goto nomem;
        n->kids = k;
        n->cap = cap;
    }
    api_node *k = &n->kids[n->nkids];
    *k = (api_node){.leaf = -1};
    if (!(k->name = strndup(name, len))) goto nomem;
    n->nkids++;
    return k;
nomem:
    herald_fail(err, HERALD_ENOMEM, "out of memory");
    return NULL;
}

/*
 * Places "folder/module:name" at api.folder.module.name. A path that is
 * both a function and a folder of others cannot be typed: Convex's codegen
 * refuses it as an ambiguous name too.
 */
static int api_add(api_node *root, const char *path, long leaf, herald_error *err)
{
    const char *colon = strrchr(path, ':');
    if (!colon) return herald_fail(err, HERALD_EINVAL, "%s: function path without ':'", path);
    api_node *n = root;
    const char *seg = path;
    for (;;) {
        const char *end = seg;
        while (end < colon && *end != '/')
            end++;
        if (!(n = api_child(n, seg, (size_t)(end - seg), err))) return HERALD_ENOMEM;
        if (n->leaf >= 0)
            return herald_fail(err, HERALD_EINVAL,
                               "%s: its module %.*s is also a function's name, and `api` cannot "
                               "hold both",
                               path, (int)(colon - path), path);
        if (end == colon) break;
        seg = end + 1;
    }
    const char *name = colon + 1;
    size_t before = n->nkids;
    api_node *f = api_child(n, name, strlen(name), err);
    if (!f) return HERALD_ENOMEM;
    if (n->nkids == before)
        return herald_fail(err, HERALD_EINVAL,
                           "%s: the module %.*s/%s exists too, and `api` cannot hold both", path,
                           (int)(colon - path), path, name);
    f->leaf = leaf;
    return 0;
}

static void api_emit(hd_buf *b, const api_node *n, const hd_fnrt *rt, bool internal, int depth)
{
    ts_style st = {"Id"};
    if (n->nkids == 0) {
        hd__buf_str(b, "{}");
        return;
    }
    hd__buf_str(b, "{\n");
    for (size_t i = 0; i < n->nkids; i++) {
        const api_node *k = &n->kids[i];
        indent(b, depth + 2);
        ts_name(b, k->name);
        hd__buf_str(b, ": ");
        if (k->leaf < 0) {
            api_emit(b, k, rt, internal, depth + 2);
        } else {
            hd_fn_kind kind = HD_FN_QUERY;
            const herald_validator *args = NULL, *returns = NULL;
            hd__fnrt_def(rt, (size_t)k->leaf, &kind, NULL, &args, &returns);
            hd__buf_printf(b, "FunctionReference<\"%s\", \"%s\", ", hd__fn_kind_name(kind),
                           internal ? "internal" : "public");
            /* Without `args` any object is accepted; Convex writes `any` there too. */
            if (args && args->kind == HERALD_V_OBJECT)
                ts_type(b, args, &st, depth + 2);
            else
                hd__buf_str(b, "any");
            hd__buf_str(b, ", ");
            ts_type(b, returns, &st, depth + 2);
            hd__buf_byte(b, '>');
        }
        hd__buf_str(b, ";\n");
    }
    indent(b, depth);
    hd__buf_byte(b, '}');
}

static int api_dts(hd_buf *b, const hd_fnrt *rt, herald_error *err)
{
    api_node roots[2] = {{.leaf = -1}, {.leaf = -1}}; /* public, internal */
    int rc = 0;
    for (size_t i = 0; !rc && i < hd__fnrt_count(rt); i++) {
        bool internal = false;
        hd__fnrt_def(rt, i, NULL, &internal, NULL, NULL);
        rc = api_add(&roots[internal], hd__fnrt_path(rt, i), (long)i, err);
    }
    if (!rc) {
        header(b, "Generated `api` utility.");
        hd__buf_str(b, "import type { FunctionReference } from \"convex/server\";\n"
                       "import type { GenericId as Id } from \"convex/values\";\n\n"
                       "/**\n"
                       " * A utility for referencing Herald functions in your app's public API.\n"
                       " *\n"
                       " * Usage:\n"
                       " * ```js\n"
                       " * const myFunctionReference = api.myModule.myFunction;\n"
                       " * ```\n"
                       " */\n"
                       "export declare const api: ");
        api_emit(b, &roots[0], rt, false, 0);
        hd__buf_str(b, ";\n\n"
                       "/**\n"
                       " * A utility for referencing Herald functions in your app's internal API\n"
                       " * (callable with the admin key only).\n"
                       " *\n"
                       " * Usage:\n"
                       " * ```js\n"
                       " * const myFunctionReference = internal.myModule.myFunction;\n"
                       " * ```\n"
                       " */\n"
                       "export declare const internal: ");
        api_emit(b, &roots[1], rt, true, 0);
        hd__buf_str(b, ";\n");
    }
    api_node_free(&roots[0]);
    api_node_free(&roots[1]);
    return rc;
}

static void api_js(hd_buf *b)
{
    header(b, "Generated `api` utility.");
    hd__buf_str(b, "import { anyApi } from \"convex/server\";\n\n"
                   "/**\n"
                   " * A utility for referencing Herald functions in your app's API.\n"
                   " *\n"
                   " * Usage:\n"
                   " * ```js\n"
                   " * const myFunctionReference = api.myModule.myFunction;\n"
                   " * ```\n"
                   " */\n"
                   "export const api = anyApi;\n"
                   "export const internal = anyApi;\n");
}

/* ------------------------------------------------------ dataModel.d.ts */

typedef struct strlist {
    char **items;
    size_t n, cap;
    bool failed;
} strlist;

static void strlist_add(strlist *l, const char *prefix, const char *name)
{
    if (l->failed) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            l->failed = true;
            return;
        }
        l->items = items;
        l->cap = cap;
    }
    size_t a = strlen(prefix), b = strlen(name);
    char *s = malloc(a + b + 1);
    if (!s) {
        l->failed = true;
        return;
    }
    memcpy(s, prefix, a);
    memcpy(s + a, name, b + 1);
    l->items[l->n++] = s;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The dotted paths a filter or index may name, as Convex's codegen lists
 * them: every field of every object, through unions, and `${string}` for
 * the keys of a record.
 */
static void field_paths(const herald_validator *v, const char *prefix, strlist *out)
{
    if (!v || out->failed) return;
    if (v->kind == HERALD_V_UNION) {
        for (size_t i = 0; i < v->nmembers; i++)
            field_paths(v->members[i], prefix, out);
    } else if (v->kind == HERALD_V_RECORD) {
        strlist_add(out, prefix, "${string}");
    } else if (v->kind == HERALD_V_OBJECT) {
        for (size_t i = 0; i < v->nfields; i++) {
            strlist_add(out, prefix, v->fields[i].name);
            if (out->failed) return;
            size_t len = strlen(prefix) + strlen(v->fields[i].name) + 2;
            char *sub = malloc(len);
            if (!sub) {
                out->failed = true;
                return;
            }
            snprintf(sub, len, "%s%s.", prefix, v->fields[i].name);
            field_paths(v->fields[i].v, sub, out);
            free(sub);
        }
    }
}

static void string_union(hd_buf *b, char *const *items, size_t n)
{
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && !strcmp(items[i], items[i - 1])) continue;
        if (written++) hd__buf_str(b, " | ");
        ts_string(b, items[i], strlen(items[i]), strstr(items[i], "${") ? '`' : '"');
    }
    if (!written) hd__buf_str(b, "never");
}

/* A document: the table's validator with `_id` and `_creationTime` in every object. */
static void document_type(hd_buf *b, const herald_table_def *t, const ts_style *st, int depth)
{
    const herald_validator *v = t->document;
    if (v && v->kind == HERALD_V_OBJECT) {
        ts_fields(b, v->fields, v->nfields, t->name, st, depth);
    } else if (v && v->kind == HERALD_V_UNION && v->nmembers > 0) {
        for (size_t i = 0; i < v->nmembers; i++) {
            const herald_validator *m = v->members[i];
            if (i) {
                hd__buf_str(b, "\n");
                indent(b, depth);
                hd__buf_str(b, "| ");
            }
            if (m->kind == HERALD_V_OBJECT)
                ts_fields(b, m->fields, m->nfields, t->name, st, depth);
            else
                ts_type(b, m, st, depth);
        }
    } else {
        hd__buf_str(b, "any");
    }
}

static int table_info(hd_buf *b, const herald_table_def *t, const ts_style *st)
{
    hd__buf_str(b, "    document: ");
    document_type(b, t, st, 4);
    hd__buf_str(b, ";\n    fieldPaths: ");
    if (!t->document || t->document->kind == HERALD_V_ANY) {
        hd__buf_str(b, "string");
    } else {
        strlist paths = {0};
        strlist_add(&paths, "", "_id");
        strlist_add(&paths, "", "_creationTime");
        field_paths(t->document, "", &paths);
        if (paths.failed) {
            strlist_free(&paths);
            return HERALD_ENOMEM;
        }
        qsort(paths.items, paths.n, sizeof *paths.items, cmp_str);
        string_union(b, paths.items, paths.n);
        strlist_free(&paths);
    }
    hd__buf_str(b, ";\n    indexes: {\n"
                   "      \"by_id\": [\"_id\"];\n"
                   "      \"by_creation_time\": [\"_creationTime\"];\n");
    for (size_t i = 0; i < t->nindexes; i++) {
        const herald_index_def *ix = &t->indexes[i];
        hd__buf_str(b, "      ");
        ts_name(b, ix->name);
        hd__buf_str(b, ": [");
        for (size_t j = 0; j < ix->nfields; j++) {
            ts_name(b, ix->fields[j]);
            hd__buf_str(b, ", ");
        }
        /* Every index ends with the creation time, which orders ties (Convex's too). */
        hd__buf_str(b, "\"_creationTime\"];\n");
    }
    hd__buf_str(b, "    };\n    searchIndexes: {");
    for (size_t i = 0; i < t->nsearch_indexes; i++) {
        const herald_search_index_def *ix = &t->search_indexes[i];
        hd__buf_str(b, "\n      ");
        ts_name(b, ix->name);
        hd__buf_str(b, ": { searchField: ");
        ts_name(b, ix->search_field);
        hd__buf_str(b, "; filterFields: ");
        string_union(b, ix->filter_fields, ix->nfilter_fields);
        hd__buf_str(b, " };");
    }
    hd__buf_str(b, t->nsearch_indexes ? "\n    };\n" : "};\n");
    hd__buf_str(b, "    vectorIndexes: {");
    for (size_t i = 0; i < t->nvector_indexes; i++) {
        const herald_vector_index_def *ix = &t->vector_indexes[i];
        hd__buf_str(b, "\n      ");
        ts_name(b, ix->name);
        hd__buf_str(b, ": { vectorField: ");
        ts_name(b, ix->vector_field);
        hd__buf_str(b, "; dimensions: number; filterFields: ");
        string_union(b, ix->filter_fields, ix->nfilter_fields);
        hd__buf_str(b, " };");
    }
    hd__buf_str(b, t->nvector_indexes ? "\n    };\n" : "};\n");
    return 0;
}

static int data_model_dts(hd_buf *b, const herald_schema *schema)
{
    ts_style st = {"GenericId"};
    header(b, "Generated data model types.");
    hd__buf_str(b, "import type {\n"
                   "  AnyDataModel,\n"
                   "  DocumentByName,\n"
                   "  SystemTableNames,\n"
                   "  TableNamesInDataModel,\n"
                   "} from \"convex/server\";\n"
                   "import type { GenericId } from \"convex/values\";\n\n"
                   "/**\n"
                   " * A type describing your app's data model: its tables, the type of the\n"
                   " * documents stored in them, and their indexes.\n"
                   " */\n"
                   "export type DataModel = {");
    for (size_t i = 0; i < schema->ntables; i++) {
        const herald_table_def *t = &schema->tables[i];
        hd__buf_str(b, "\n  ");
        ts_name(b, t->name);
        hd__buf_str(b, ": {\n");
        int rc = table_info(b, t, &st);
        if (rc) return rc;
        hd__buf_str(b, "  };");
    }
    hd__buf_str(b, schema->ntables ? "\n}" : "}");
    /* Without schema validation a table may hold any document (as Convex types it). */
    hd__buf_str(b, schema->schema_validation ? ";\n\n" : " & AnyDataModel;\n\n");
    hd__buf_str(
        b,
        "/**\n"
        " * The names of all of your tables.\n"
        " */\n"
        "export type TableNames = TableNamesInDataModel<DataModel>;\n\n"
        "/**\n"
        " * The type of a document stored in a table.\n"
        " *\n"
        " * @typeParam TableName - A string literal type of the table name (like \"users\").\n"
        " */\n"
        "export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;\n\n"
        "/**\n"
        " * An identifier for a document: a string at run time, a distinct type per\n"
        " * table when type checking.\n"
        " *\n"
        " * @typeParam TableName - A string literal type of the table name (like \"users\").\n"
        " */\n"
        "export type Id<TableName extends TableNames | SystemTableNames> = "
        "GenericId<TableName>;\n");
    return 0;
}

/* ------------------------------------------------------------- files */

/* Creates `dir` and its missing parents (mkdir -p). */
static int make_dirs(const char *dir, herald_error *err)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) return herald_fail(err, HERALD_EINVAL, "bad folder name");
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        char c = path[i];
        path[i] = 0;
        struct stat st;
        if (stat(path, &st) != 0) {
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return herald_fail(err, HERALD_EIO, "cannot create %s: %s", path, strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            return herald_fail(err, HERALD_EIO, "%s is not a folder", path);
        }
        path[i] = c;
    }
    return 0;
}

static int write_file(const char *path, const hd_buf *b, herald_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return herald_fail(err, HERALD_EIO, "cannot write %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = write(fd, b->p + done, b->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        done += (size_t)n;
    }
    if (fsync(fd) != 0) goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    herald_fail(err, HERALD_EIO, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(path);
    return HERALD_EIO;
}

enum { NFILES = 3 };

int hd__codegen_write(const herald_schema *schema, const hd_fnrt *rt, const char *out_dir,
                      herald_error *err)
{
    static const char *const names[NFILES] = {"api.js", "api.d.ts", "dataModel.d.ts"};
    hd_buf text[NFILES] = {HD_BUF_INIT, HD_BUF_INIT, HD_BUF_INIT};
    char tmp[NFILES][4200], final[NFILES][4200];
    size_t written = 0;
    int rc;

    api_js(&text[0]);
    if ((rc = api_dts(&text[1], rt, err))) goto cleanup;
    if ((rc = data_model_dts(&text[2], schema))) goto nomem;
    for (size_t i = 0; i < NFILES; i++)
        if (hd__buf_failed(&text[i])) goto nomem;

    for (size_t i = 0; i < NFILES; i++) {
        int a = snprintf(final[i], sizeof final[i], "%s/%s", out_dir, names[i]);
        int t = snprintf(tmp[i], sizeof tmp[i], "%s/.%s.tmp", out_dir, names[i]);
        if (a < 0 || t < 0 || (size_t)t >= sizeof tmp[i]) {
            rc = herald_fail(err, HERALD_EINVAL, "folder name too long: %s", out_dir);
            goto cleanup;
        }
    }
    if ((rc = make_dirs(out_dir, err))) goto cleanup;
    for (; written < NFILES; written++)
        if ((rc = write_file(tmp[written], &text[written], err))) goto cleanup;
    for (size_t i = 0; i < NFILES; i++) {
        if (rename(tmp[i], final[i]) != 0) {
            rc = herald_fail(err, HERALD_EIO, "cannot write %s: %s", final[i], strerror(errno));
            goto cleanup;
        }
    }
    written = 0; /* renamed: nothing left to remove */
    /* The renames themselves are durable once the folder is synced. */
    int dfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rc = herald_fail(err, HERALD_EIO, "cannot sync %s: %s", out_dir, strerror(errno));
    }
    if (dfd >= 0) close(dfd);
    goto cleanup;

nomem:
    rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
cleanup:
    for (size_t i = 0; i < written; i++)
        unlink(tmp[i]);
    for (size_t i = 0; i < NFILES; i++)
        hd__buf_free(&text[i]);
    return rc;
}
