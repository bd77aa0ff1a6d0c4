/*
 * Schemas: loading the canonical schema JSON into herald_schema, checking
 * every rule a schema must obey (SPEC §2, docs/schema.md), writing it back
 * out, and validating documents against a table's validator.
 *
 * Both schema forms end up here: schema.ts is first translated to the same
 * JSON by schema_ts.c, so there is exactly one place that decides whether a
 * schema is acceptable. A schema that loads is fully checked: the store and
 * the query planner may trust its names, paths and id tables.
 *
 * This module must never accept a schema it cannot write back identically
 * (from_json(to_json(s)) equals s), never let a malformed schema or
 * document crash it, and never look at stored data: deciding whether
 * existing documents fit a new schema is the store's job.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "schema_priv.h"

#define MAX_INDEX_FIELDS    16
#define MAX_IDENTIFIER      64
#define MAX_VALIDATOR_DEPTH HERALD_MAX_DEPTH
#define MIN_DIMENSIONS      2
#define MAX_DIMENSIONS      4096
#define MAX_SCHEMA_FILE     (16 * 1024 * 1024)

/* ---------------------------------------------------------------- freeing */

static void validator_free(herald_validator *v)
{
    if (!v) return;
    free(v->table);
    herald_value_free(&v->literal);
    validator_free(v->items);
    validator_free(v->keys);
    for (size_t i = 0; i < v->nfields; i++) {
        free(v->fields[i].name);
        validator_free(v->fields[i].v);
    }
    free(v->fields);
    for (size_t i = 0; i < v->nmembers; i++)
        validator_free(v->members[i]);
    free(v->members);
    free(v);
}

static void strings_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

static void table_free(herald_table_def *t)
{
    free(t->name);
    validator_free(t->document);
    for (size_t i = 0; i < t->nindexes; i++) {
        free(t->indexes[i].name);
        strings_free(t->indexes[i].fields, t->indexes[i].nfields);
    }
    free(t->indexes);
    for (size_t i = 0; i < t->nsearch_indexes; i++) {
        free(t->search_indexes[i].name);
        free(t->search_indexes[i].search_field);
        strings_free(t->search_indexes[i].filter_fields, t->search_indexes[i].nfilter_fields);
    }
    free(t->search_indexes);
    for (size_t i = 0; i < t->nvector_indexes; i++) {
        free(t->vector_indexes[i].name);
        free(t->vector_indexes[i].vector_field);
        strings_free(t->vector_indexes[i].filter_fields, t->vector_indexes[i].nfilter_fields);
    }
    free(t->vector_indexes);
}

void herald_schema_free(herald_schema *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->ntables; i++)
        table_free(&s->tables[i]);
    free(s->tables);
    free(s);
}

/* ---------------------------------------------------------------- loading */

/*
 * Loading state. `where` says what is being read ("table `users`: index
 * `by_x`") and prefixes every message after the source name.
 */
struct loader {
    const char *source;
    herald_error *err;
    const cJSON *tables;         /* the "tables" object, to resolve v.id() names */
    const herald_schema *schema; /* or a loaded schema (function validators) */
    bool system;                 /* loading Herald's own system tables */
    char where[300];
};

static int load_fail(struct loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int load_fail(struct loader *L, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herald_fail(L->err, HERALD_ESCHEMA, "%s: %s%s", L->source, L->where, msg);
}

static int load_oom(struct loader *L)
{
    return herald_fail(L->err, HERALD_ENOMEM, "%s: out of memory", L->source);
}

/* Appends to L->where; returns the old length so the caller can restore it. */
static size_t where_push(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t where_push(struct loader *L, const char *fmt, ...)
{
    size_t old = strlen(L->where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->where + old, sizeof L->where - old, fmt, ap);
    va_end(ap);
    return old;
}

static void where_pop(struct loader *L, size_t old)
{
    L->where[old] = 0;
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Letters, digits and `_`, not starting with a digit, at most 64 bytes. */
static bool is_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_IDENTIFIER || is_digit(s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_') return false;
    return true;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= need) return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

/*
 * A field name: non-empty, at most HERALD_MAX_FIELD_NAME bytes of UTF-8
 * without control characters, not starting with `$` (reserved for the JSON
 * encoding) nor, at the top of a document, with `_` (system fields).
 */
static int check_field_name(struct loader *L, const char *name, bool top)
{
    size_t n = strlen(name);
    if (n == 0) return load_fail(L, "empty field name");
    if (n > HERALD_MAX_FIELD_NAME)
        return load_fail(L, "field name `%.32s...` longer than %d bytes", name,
                         HERALD_MAX_FIELD_NAME);
    if (!valid_utf8((const unsigned char *)name, n))
        return load_fail(L, "field name is not valid UTF-8");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7F)
            return load_fail(L, "field name `%.64s` contains a control character", name);
    if (name[0] == '$') return load_fail(L, "field name `%.64s` must not start with `$`", name);
    if (top && name[0] == '_')
        return load_fail(L, "top-level field `%.64s` must not start with `_` (system fields)",
                         name);
    return 0;
}

/*
 * Checks the JSON object's keys against `allowed` (NULL-terminated):
 * unknown and repeated keys are errors.
 */
static int check_keys(struct loader *L, const cJSON *obj, const char *const *allowed,
                      const char *what)
{
    unsigned seen = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (strcmp(c->string, allowed[i]) == 0) break;
        if (!allowed[i]) return load_fail(L, "unknown key `%.64s` in %s", c->string, what);
        if (seen & (1u << i)) return load_fail(L, "key `%s` appears twice in %s", c->string, what);
        seen |= 1u << i;
    }
    return 0;
}

static int parse_validator(struct loader *L, const cJSON *j, int depth, bool *optional, bool top,
                           herald_validator **out);

static int field_cmp(const void *a, const void *b)
{
    return strcmp(((const herald_vfield *)a)->name, ((const herald_vfield *)b)->name);
}

static int parse_object_fields(struct loader *L, const cJSON *j, int depth, bool top,
                               herald_validator *v)
{
    int rc;
    if (!cJSON_IsObject(j)) return load_fail(L, "`fields` must be an object");
    size_t n = (size_t)cJSON_GetArraySize(j);
    if (n > HERALD_MAX_FIELDS)
        return load_fail(L, "object validator with more than %d fields", HERALD_MAX_FIELDS);
    if (n && !(v->fields = calloc(n, sizeof *v->fields))) return load_oom(L);
    v->nfields = n;
    size_t i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        size_t old;
        if ((rc = check_field_name(L, c->string, top)) < 0) return rc;
        if (!(v->fields[i].name = strdup(c->string))) return load_oom(L);
        old = where_push(L, "field `%.64s`: ", c->string);
        rc = parse_validator(L, c, depth + 1, &v->fields[i].optional, false, &v->fields[i].v);
        where_pop(L, old);
        if (rc < 0) return rc;
    }
    if (n > 1) qsort(v->fields, n, sizeof *v->fields, field_cmp);
    for (i = 1; i < n; i++)
        if (strcmp(v->fields[i - 1].name, v->fields[i].name) == 0)
            return load_fail(L, "duplicate field `%.64s`", v->fields[i].name);
    return 0;
}

/* Record keys are strings: string, id, string literal, or a union of those. */
static bool valid_record_key(const herald_validator *k)
{
    switch (k->kind) {
    case HERALD_V_STRING:
    case HERALD_V_ID:
        return true;
    case HERALD_V_LITERAL:
        return k->literal.type == HERALD_STRING;
    case HERALD_V_UNION:
        for (size_t i = 0; i < k->nmembers; i++)
            if (!valid_record_key(k->members[i])) return false;
        return true;
    default:
        return false;
    }
}

static int parse_literal(struct loader *L, const cJSON *value, herald_validator *v)
{
    herald_error verr;
    char *text = cJSON_PrintUnformatted(value);
    if (!text) return load_oom(L);
    int rc = herald_value_from_json(text, strlen(text), &v->literal, &verr);
    free(text);
    if (rc == HERALD_ENOMEM) return load_oom(L);
    if (rc < 0) return load_fail(L, "bad literal value: %s", verr.message);
    switch (v->literal.type) {
    case HERALD_NULL:
    case HERALD_INT64:
    case HERALD_FLOAT64:
    case HERALD_BOOLEAN:
    case HERALD_STRING:
        return 0;
    default:
        return load_fail(L, "a literal must be a string, number, int64, boolean or null");
    }
}

static const struct {
    const char *name;
    herald_vkind kind;
} vkinds[] = {
    {"any", HERALD_V_ANY},     {"null", HERALD_V_NULL},       {"number", HERALD_V_NUMBER},
    {"int64", HERALD_V_INT64}, {"boolean", HERALD_V_BOOLEAN}, {"string", HERALD_V_STRING},
    {"bytes", HERALD_V_BYTES}, {"id", HERALD_V_ID},           {"literal", HERALD_V_LITERAL},
    {"array", HERALD_V_ARRAY}, {"object", HERALD_V_OBJECT},   {"record", HERALD_V_RECORD},
    {"union", HERALD_V_UNION},
};

static const char *vkind_name(herald_vkind k)
{
    for (size_t i = 0; i < sizeof vkinds / sizeof vkinds[0]; i++)
        if (vkinds[i].kind == k) return vkinds[i].name;
    return "?";
}

/*
 * One validator. `optional` is non-NULL only for an object field, the
 * one place where "optional" is allowed; `top` marks the document
 * validator (and members of a top-level union), whose fields may not
 * start with `_`.
 */
static int parse_validator_body(struct loader *L, const cJSON *j, int depth, bool *optional,
                                bool top, herald_validator *v)
{
    int rc;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    size_t k;

    if (!cJSON_IsString(type)) return load_fail(L, "validator without a string `type`");
    for (k = 0; k < sizeof vkinds / sizeof vkinds[0]; k++)
        if (strcmp(type->valuestring, vkinds[k].name) == 0) break;
    if (k == sizeof vkinds / sizeof vkinds[0])
        return load_fail(L, "unknown validator type `%.64s`", type->valuestring);
    v->kind = vkinds[k].kind;

    /* At most "type", two kind-specific keys, "optional", and a NULL end. */
    const char *keys[5] = {"type", NULL, NULL, NULL, NULL};
    size_t nkeys = 1;
    switch (v->kind) {
    case HERALD_V_ID:
        keys[nkeys++] = "table";
        break;
    case HERALD_V_LITERAL:
        keys[nkeys++] = "value";
        break;
    case HERALD_V_ARRAY:
        keys[nkeys++] = "items";
        break;
    case HERALD_V_OBJECT:
        keys[nkeys++] = "fields";
        break;
    case HERALD_V_UNION:
        keys[nkeys++] = "members";
        break;
    case HERALD_V_RECORD:
        keys[nkeys++] = "keys";
        keys[nkeys++] = "values";
        break;
    default:
        break;
    }
    if (optional) keys[nkeys++] = "optional";
    char what[48];
    snprintf(what, sizeof what, "%s %s validator", strchr("aeiou", vkinds[k].name[0]) ? "an" : "a",
             vkinds[k].name);
    if (!optional && cJSON_GetObjectItemCaseSensitive(j, "optional"))
        return load_fail(L, "`optional` is only allowed on an object field");
    if ((rc = check_keys(L, j, keys, what)) < 0) return rc;
    if (optional) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "optional");
        if (o && !cJSON_IsBool(o)) return load_fail(L, "`optional` must be true or false");
        *optional = cJSON_IsTrue(o);
    }

    const cJSON *a = keys[1] ? cJSON_GetObjectItemCaseSensitive(j, keys[1]) : NULL;
    if (keys[1] && !a && strcmp(keys[1], "optional") != 0)
        return load_fail(L, "%s needs `%s`", what, keys[1]);
    switch (v->kind) {
    case HERALD_V_ID: {
        if (!cJSON_IsString(a)) return load_fail(L, "`table` of an id validator must be a string");
        const char *t = a->valuestring;
        if (t[0] == '_') {
            if (!is_identifier(t + 1))
                return load_fail(L, "v.id(\"%.64s\"): not a system table name", t);
        } else if (L->schema ? !herald_schema_table(L->schema, t)
                             : L->tables && !cJSON_GetObjectItemCaseSensitive(L->tables, t)) {
            return load_fail(L, "v.id(\"%.64s\") names no table of the schema", t);
        }
        if (!(v->table = strdup(t))) return load_oom(L);
        return 0;
    }
    case HERALD_V_LITERAL:
        return parse_literal(L, a, v);
    case HERALD_V_ARRAY:
        return parse_validator(L, a, depth + 1, NULL, false, &v->items);
    case HERALD_V_OBJECT:
        return parse_object_fields(L, a, depth, top, v);
    case HERALD_V_RECORD: {
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(j, "values");
        if (!vals) return load_fail(L, "%s needs `values`", what);
        if ((rc = parse_validator(L, a, depth + 1, NULL, false, &v->keys)) < 0) return rc;
        if (!valid_record_key(v->keys))
            return load_fail(L,
                             "record keys must be string, id or string literal validators "
                             "(or a union of them), not %s",
                             vkind_name(v->keys->kind));
        return parse_validator(L, vals, depth + 1, NULL, false, &v->items);
    }
    case HERALD_V_UNION: {
        if (!cJSON_IsArray(a)) return load_fail(L, "`members` of a union must be an array");
        size_t n = (size_t)cJSON_GetArraySize(a);
        if (n == 0) return load_fail(L, "a union needs at least one member");
        if (!(v->members = calloc(n, sizeof *v->members))) return load_oom(L);
        v->nmembers = n;
        size_t i = 0;
        for (const cJSON *c = a->child; c; c = c->next, i++)
            if ((rc = parse_validator(L, c, depth + 1, NULL, top, &v->members[i])) < 0) return rc;
        return 0;
    }
    default:
        return 0;
    }
}

static int parse_validator(struct loader *L, const cJSON *j, int depth, bool *optional, bool top,
                           herald_validator **out)
{
    if (depth > MAX_VALIDATOR_DEPTH)
        return load_fail(L, "validators nested deeper than %d levels", MAX_VALIDATOR_DEPTH);
    if (!cJSON_IsObject(j)) return load_fail(L, "a validator must be a JSON object");
    herald_validator *v = calloc(1, sizeof *v);
    if (!v) return load_oom(L);
    *out = v; /* freed with the schema on failure */
    return parse_validator_body(L, j, depth, optional, top, v);
}

int hd__validator_from_cjson(const cJSON *j, const herald_schema *schema, const char *source,
                             bool *optional, herald_validator **out, herald_error *err)
{
    struct loader L = {.source = source ? source : "validator", .err = err, .schema = schema};
    herald_validator *v = NULL;
    *out = NULL;
    int rc = parse_validator(&L, j, 0, optional, false, &v);
    if (rc < 0) {
        validator_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void hd__validator_free(herald_validator *v)
{
    validator_free(v);
}

/*
 * An index path: dotted segments, each a field name; the first may not
 * name a system field (`_id` has `by_id`, `_creationTime` ends every index).
 */
static int check_path(struct loader *L, const char *path)
{
    int rc;
    if (path[0] == 0) return load_fail(L, "empty field path");
    if (strncmp(path, "_creationTime", 13) == 0 && (path[13] == 0 || path[13] == '.'))
        return load_fail(L, "`_creationTime` is implicit: every index ends with it");
    if (strncmp(path, "_id", 3) == 0 && (path[3] == 0 || path[3] == '.'))
        return load_fail(L, "`_id` cannot be an index field (use the system index by_id)");
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        char name[HERALD_MAX_FIELD_NAME + 2];
        if (n == 0) return load_fail(L, "field path `%.64s` has an empty segment", path);
        if (n > HERALD_MAX_FIELD_NAME)
            return load_fail(L, "field path `%.32s...` has a segment longer than %d bytes", path,
                             HERALD_MAX_FIELD_NAME);
        memcpy(name, seg, n);
        name[n] = 0;
        if ((rc = check_field_name(L, name, seg == path)) < 0) return rc;
        if (!dot) return 0;
        seg = dot + 1;
    }
}

/* A JSON array of field paths: at most `max`, no duplicates. */
static int parse_paths(struct loader *L, const cJSON *j, const char *what, size_t max, char ***out,
                       size_t *nout)
{
    int rc;
    if (!cJSON_IsArray(j)) return load_fail(L, "`%s` must be an array of strings", what);
    size_t n = (size_t)cJSON_GetArraySize(j);
    if (n > max) return load_fail(L, "`%s` has more than %zu fields", what, max);
    if (n && !(*out = calloc(n, sizeof **out))) return load_oom(L);
    *nout = n;
    size_t i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) return load_fail(L, "`%s` must be an array of strings", what);
        if ((rc = check_path(L, c->valuestring)) < 0) return rc;
        for (size_t k = 0; k < i; k++)
            if (strcmp((*out)[k], c->valuestring) == 0)
                return load_fail(L, "field `%.64s` appears twice in `%s`", c->valuestring, what);
        if (!((*out)[i] = strdup(c->valuestring))) return load_oom(L);
    }
    return 0;
}

static int check_index_name(struct loader *L, const cJSON *name)
{
    if (!cJSON_IsString(name)) return load_fail(L, "index without a string `name`");
    const char *s = name->valuestring;
    if (s[0] == '_') return load_fail(L, "index name `%.64s` must not start with `_`", s);
    if (!is_identifier(s))
        return load_fail(L, "index name `%.64s` is not an identifier (letters, digits, `_`)", s);
    if (strcmp(s, "by_id") == 0 || strcmp(s, "by_creation_time") == 0)
        return load_fail(L, "index name `%s` is reserved for a system index", s);
    return 0;
}

/* Array `key` of the table, or an empty list when it is absent. */
static int table_list(struct loader *L, const cJSON *table, const char *key, const cJSON **out,
                      size_t *n)
{
    *out = cJSON_GetObjectItemCaseSensitive(table, key);
    *n = 0;
    if (!*out) return 0;
    if (!cJSON_IsArray(*out)) return load_fail(L, "`%s` must be an array", key);
    *n = (size_t)cJSON_GetArraySize(*out);
    return 0;
}

/*
 * What search and vector indexes share: an object with a checked name, the
 * indexed field under `field_key`, and optional filter fields. Leaves the
 * "<kind> index `name`: " context pushed (*old) for the caller's own checks.
 */
static int parse_special_index(struct loader *L, const cJSON *c, const char *kind,
                               const char *const *keys, const char *field_key, size_t *old,
                               char **name_out, char **field_out, char ***filter, size_t *nfilter)
{
    int rc;
    char what[32];
    snprintf(what, sizeof what, "a %s index", kind);
    if (!cJSON_IsObject(c)) return load_fail(L, "%s must be an object", what);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
    if ((rc = check_index_name(L, name)) < 0) return rc;
    *old = where_push(L, "%s index `%s`: ", kind, name->valuestring);
    if ((rc = check_keys(L, c, keys, what)) < 0) return rc;
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(c, field_key);
    if (!cJSON_IsString(field)) return load_fail(L, "`%s` must be a string", field_key);
    if ((rc = check_path(L, field->valuestring)) < 0) return rc;
    const cJSON *filter_json = cJSON_GetObjectItemCaseSensitive(c, "filterFields");
    if (filter_json &&
        (rc = parse_paths(L, filter_json, "filterFields", MAX_INDEX_FIELDS, filter, nfilter)) < 0)
        return rc;
    if (!(*name_out = strdup(name->valuestring)) || !(*field_out = strdup(field->valuestring)))
        return load_oom(L);
    return 0;
}

static int parse_indexes(struct loader *L, const cJSON *table, herald_table_def *t)
{
    static const char *const index_keys[] = {"name", "fields", NULL};
    static const char *const search_keys[] = {"name", "searchField", "filterFields", NULL};
    static const char *const vector_keys[] = {"name", "vectorField", "dimensions", "filterFields",
                                              NULL};
    const cJSON *list, *c;
    size_t n, i, old;
    int rc;

    if ((rc = table_list(L, table, "indexes", &list, &n)) < 0) return rc;
    if (n && !(t->indexes = calloc(n, sizeof *t->indexes))) return load_oom(L);
    t->nindexes = n;
    for (c = list ? list->child : NULL, i = 0; c; c = c->next, i++) {
        herald_index_def *d = &t->indexes[i];
        if (!cJSON_IsObject(c)) return load_fail(L, "an index must be an object");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        if ((rc = check_index_name(L, name)) < 0) return rc;
        old = where_push(L, "index `%s`: ", name->valuestring);
        if ((rc = check_keys(L, c, index_keys, "an index")) < 0) return rc;
        const cJSON *fields = cJSON_GetObjectItemCaseSensitive(c, "fields");
        if (!fields) return load_fail(L, "no `fields`");
        if ((rc = parse_paths(L, fields, "fields", MAX_INDEX_FIELDS, &d->fields, &d->nfields)) < 0)
            return rc;
        if (d->nfields == 0) return load_fail(L, "`fields` is empty");
        where_pop(L, old);
        if (!(d->name = strdup(name->valuestring))) return load_oom(L);
    }

    if ((rc = table_list(L, table, "searchIndexes", &list, &n)) < 0) return rc;
    if (n && !(t->search_indexes = calloc(n, sizeof *t->search_indexes))) return load_oom(L);
    t->nsearch_indexes = n;
    for (c = list ? list->child : NULL, i = 0; c; c = c->next, i++) {
        herald_search_index_def *d = &t->search_indexes[i];
        if ((rc = parse_special_index(L, c, "search", search_keys, "searchField", &old, &d->name,
                                      &d->search_field, &d->filter_fields, &d->nfilter_fields)) < 0)
            return rc;
        where_pop(L, old);
    }

    if ((rc = table_list(L, table, "vectorIndexes", &list, &n)) < 0) return rc;
    if (n && !(t->vector_indexes = calloc(n, sizeof *t->vector_indexes))) return load_oom(L);
    t->nvector_indexes = n;
    for (c = list ? list->child : NULL, i = 0; c; c = c->next, i++) {
        herald_vector_index_def *d = &t->vector_indexes[i];
        if ((rc = parse_special_index(L, c, "vector", vector_keys, "vectorField", &old, &d->name,
                                      &d->vector_field, &d->filter_fields, &d->nfilter_fields)) < 0)
            return rc;
        const cJSON *dims = cJSON_GetObjectItemCaseSensitive(c, "dimensions");
        /* Range first: converting an out-of-range double to int is undefined. */
        if (!cJSON_IsNumber(dims) || !(dims->valuedouble >= MIN_DIMENSIONS) ||
            !(dims->valuedouble <= MAX_DIMENSIONS) ||
            dims->valuedouble != (double)(int)dims->valuedouble)
            return load_fail(L, "`dimensions` must be an integer from %d to %d", MIN_DIMENSIONS,
                             MAX_DIMENSIONS);
        d->dimensions = (int)dims->valuedouble;
        where_pop(L, old);
    }

    /* One namespace for all the indexes of a table. */
    const char **names =
        calloc(t->nindexes + t->nsearch_indexes + t->nvector_indexes + 1, sizeof *names);
    if (!names) return load_oom(L);
    size_t nn = 0;
    for (i = 0; i < t->nindexes; i++)
        names[nn++] = t->indexes[i].name;
    for (i = 0; i < t->nsearch_indexes; i++)
        names[nn++] = t->search_indexes[i].name;
    for (i = 0; i < t->nvector_indexes; i++)
        names[nn++] = t->vector_indexes[i].name;
    rc = 0;
    for (i = 0; i < nn && rc == 0; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(names[i], names[k]) == 0) {
                rc = load_fail(L, "duplicate index name `%s`", names[i]);
                break;
            }
    free(names);
    return rc;
}

static int parse_table(struct loader *L, const cJSON *j, herald_table_def *t)
{
    static const char *const table_keys[] = {"document", "indexes", "searchIndexes",
                                             "vectorIndexes", NULL};
    int rc;
    const char *name = j->string;

    if (name[0] == '_' && !L->system)
        return load_fail(L, "table name `%.64s` must not start with `_` (system tables)", name);
    if (!is_identifier(name))
        return load_fail(L, "table name `%.64s` is not an identifier (letters, digits, `_`)", name);
    if (!(t->name = strdup(name))) return load_oom(L);
    snprintf(L->where, sizeof L->where, "table `%s`: ", name);
    if (!cJSON_IsObject(j)) return load_fail(L, "a table must be an object");
    if ((rc = check_keys(L, j, table_keys, "a table")) < 0) return rc;
    const cJSON *doc = cJSON_GetObjectItemCaseSensitive(j, "document");
    if (!doc) return load_fail(L, "no `document` validator");
    if ((rc = parse_validator(L, doc, 1, NULL, true, &t->document)) < 0) return rc;
    herald_validator *d = t->document;
    bool ok = d->kind == HERALD_V_OBJECT || d->kind == HERALD_V_ANY;
    if (d->kind == HERALD_V_UNION) {
        ok = true;
        for (size_t i = 0; i < d->nmembers; i++)
            if (d->members[i]->kind != HERALD_V_OBJECT) ok = false;
    }
    if (!ok)
        return load_fail(L,
                         "the document validator must be an object, any, or a union of "
                         "objects, not %s",
                         vkind_name(d->kind));
    if ((rc = parse_indexes(L, j, t)) < 0) return rc;
    L->where[0] = 0;
    return 0;
}

/*
 * The system tables' definitions: `_storage`, one row per stored file
 * (docs/storage.md, "Files"), as Convex has it; `_scheduled_functions` and
 * `_cron_jobs` (docs/functions.md). Parsed once, kept for the life of the
 * process.
 */
static const char system_tables_json[] =
    "{\"_storage\": {\"document\": {\"type\": \"object\", \"fields\": {"
    "\"sha256\": {\"type\": \"string\"}, \"size\": {\"type\": \"number\"}, "
    "\"contentType\": {\"type\": \"string\", \"optional\": true}}}},"
    /* _scheduled_functions: ctx.scheduler's runs, by state and time (docs/functions.md). */
    "\"_scheduled_functions\": {\"document\": {\"type\": \"object\", \"fields\": {"
    "\"name\": {\"type\": \"string\"}, \"args\": {\"type\": \"any\"}, "
    "\"scheduledTime\": {\"type\": \"number\"}, "
    "\"completedTime\": {\"type\": \"number\", \"optional\": true}, "
    "\"state\": {\"type\": \"object\", \"fields\": {\"kind\": {\"type\": \"string\"}, "
    "\"error\": {\"type\": \"string\", \"optional\": true}}}}}, "
    "\"indexes\": [{\"name\": \"by_state_time\", \"fields\": [\"state.kind\", "
    "\"scheduledTime\"]}]},"
    /* _cron_jobs: when each cron of functions/crons.lua last ran (docs/functions.md, "Crons"). */
    "\"_cron_jobs\": {\"document\": {\"type\": \"object\", \"fields\": {"
    "\"name\": {\"type\": \"string\"}, \"lastRun\": {\"type\": \"number\"}}}, "
    "\"indexes\": [{\"name\": \"by_name\", \"fields\": [\"name\"]}]}}";
static herald_schema *system_schema;

static int table_cmp(const void *a, const void *b);

static void parse_system_tables(void)
{
    cJSON *root = cJSON_Parse(system_tables_json);
    herald_error err = {0};
    struct loader L = {.source = "system tables", .err = &err, .system = true};
    herald_schema *s = root ? calloc(1, sizeof *s) : NULL;
    size_t n = root ? (size_t)cJSON_GetArraySize(root) : 0;
    if (s && (s->tables = calloc(n, sizeof *s->tables))) {
        L.tables = root;
        for (const cJSON *t = root->child; t; t = t->next, s->ntables++)
            if (parse_table(&L, t, &s->tables[s->ntables]) < 0) break;
        for (size_t i = 0; i < s->ntables; i++)
            s->tables[i].system = true;
        qsort(s->tables, s->ntables, sizeof *s->tables, table_cmp); /* herald_schema_table */
    }
    if (s && s->ntables == n && n) {
        system_schema = s;
    } else if (s) {
        herald_schema_free(s);
    }
    cJSON_Delete(root);
}

const herald_schema *hd__system_schema(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, parse_system_tables);
    return system_schema;
}

static int table_cmp(const void *a, const void *b)
{
    return strcmp(((const herald_table_def *)a)->name, ((const herald_table_def *)b)->name);
}

int hd__schema_from_cjson(const cJSON *root, const char *source, herald_schema **out,
                          herald_error *err)
{
    static const char *const root_keys[] = {"schemaValidation", "tables", NULL};
    struct loader L = {.source = source ? source : "schema", .err = err};
    herald_schema *s = NULL;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(root)) return load_fail(&L, "the schema must be a JSON object");
    if ((rc = check_keys(&L, root, root_keys, "the schema")) < 0) return rc;
    const cJSON *validation = cJSON_GetObjectItemCaseSensitive(root, "schemaValidation");
    if (validation && !cJSON_IsBool(validation))
        return load_fail(&L, "`schemaValidation` must be true or false");
    L.tables = cJSON_GetObjectItemCaseSensitive(root, "tables");
    if (!cJSON_IsObject(L.tables)) return load_fail(&L, "`tables` must be an object");

    if (!(s = calloc(1, sizeof *s))) return load_oom(&L);
    s->schema_validation = !validation || cJSON_IsTrue(validation);
    size_t n = (size_t)cJSON_GetArraySize(L.tables);
    if (n && !(s->tables = calloc(n, sizeof *s->tables))) {
        rc = load_oom(&L);
        goto fail;
    }
    s->ntables = n; /* all of them: one that fails half-parsed is freed with the rest */
    size_t i = 0;
    for (const cJSON *t = L.tables->child; t; t = t->next, i++)
        if ((rc = parse_table(&L, t, &s->tables[i])) < 0) goto fail;
    if (n > 1) qsort(s->tables, n, sizeof *s->tables, table_cmp);
    for (i = 1; i < n; i++) {
        if (strcmp(s->tables[i - 1].name, s->tables[i].name) == 0) {
            rc = load_fail(&L, "duplicate table `%s`", s->tables[i].name);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    herald_schema_free(s);
    return rc;
}

int herald_schema_from_json(const char *text, size_t len, const char *source, herald_schema **out,
                            herald_error *err)
{
    const char *end = NULL;
    const char *src = source ? source : "schema.json";
    *out = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root || end < text + len) {
        /* Only whitespace may follow the JSON value. */
        if (root)
            while (end < text + len && strchr(" \t\r\n", *end) && *end)
                end++;
        if (!root || end < text + len) {
            size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
            int line = 1, col = 1;
            for (size_t i = 0; i < off; i++) {
                if (text[i] == '\n') {
                    line++;
                    col = 1;
                } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
                    col++;
                }
            }
            cJSON_Delete(root);
            return herald_fail(err, HERALD_ESCHEMA, "%s:%d:%d: invalid JSON", src, line, col);
        }
    }
    int rc = hd__schema_from_cjson(root, src, out, err);
    cJSON_Delete(root);
    return rc;
}

int herald_schema_from_ts(const char *text, size_t len, const char *filename, herald_schema **out,
                          herald_error *err)
{
    cJSON *root;
    *out = NULL;
    int rc = hd__schema_ts_to_json(text, len, filename, &root, err);
    if (rc < 0) return rc;
    rc = hd__schema_from_cjson(root, filename ? filename : "schema.ts", out, err);
    cJSON_Delete(root);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int herald_schema_load_file(const char *path, herald_schema **out, herald_error *err)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc;
    bool json = ends_with(path, ".json"), ts = ends_with(path, ".ts");

    *out = NULL;
    if (!json && !ts)
        return herald_fail(err, HERALD_EINVAL, "%s: a schema file must end in .json or .ts", path);
    if (!(f = fopen(path, "rb"))) {
        return herald_fail(err, errno == ENOENT ? HERALD_ENOTFOUND : HERALD_EIO, "%s: %s", path,
                           strerror(errno));
    }
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_SCHEMA_FILE) {
                rc = herald_fail(err, HERALD_ELIMIT, "%s: larger than %d bytes", path,
                                 MAX_SCHEMA_FILE);
                goto done;
            }
            cap = cap ? cap * 2 : 16384;
            char *t = realloc(text, cap + 1);
            if (!t) {
                rc = herald_fail(err, HERALD_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rc = herald_fail(err, HERALD_EIO, "%s: read error", path);
        goto done;
    }
    text[len] = 0;
    rc = json ? herald_schema_from_json(text, len, path, out, err)
              : herald_schema_from_ts(text, len, path, out, err);
done:
    free(text);
    fclose(f);
    return rc;
}

int hd__schema_app_path(const char *app, char *out, size_t n)
{
    static const char *const names[] = {"schema.json", "schema.ts"};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        int len = snprintf(out, n, "%s/%s", app, names[i]);
        if (len > 0 && (size_t)len < n && stat(out, &st) == 0) return 0;
    }
    return -1;
}

int hd__schema_load_app(const char *app, herald_schema **out, herald_error *err)
{
    char path[4096];
    *out = NULL;
    if (hd__schema_app_path(app, path, sizeof path) != 0)
        return herald_fail(err, HERALD_ENOTFOUND, "%s has no schema.json or schema.ts", app);
    return herald_schema_load_file(path, out, err);
}

const herald_table_def *herald_schema_table(const herald_schema *s, const char *name)
{
    if (!s || !name) return NULL;
    size_t lo = 0, hi = s->ntables;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->tables[mid].name);
        if (c == 0) return &s->tables[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- writing */

static cJSON *validator_json(const herald_validator *v, bool optional);

static bool add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (item && (key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item)))
        return true;
    cJSON_Delete(item);
    return false;
}

static cJSON *validator_json(const herald_validator *v, bool optional)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddStringToObject(j, "type", vkind_name(v->kind));
    if (!ok) goto fail;
    switch (v->kind) {
    case HERALD_V_ID:
        ok = cJSON_AddStringToObject(j, "table", v->table) != NULL;
        break;
    case HERALD_V_LITERAL: {
        char *text = herald_value_to_json(&v->literal);
        ok = text && add_item(j, "value", cJSON_Parse(text));
        free(text);
        break;
    }
    case HERALD_V_ARRAY:
        ok = add_item(j, "items", validator_json(v->items, false));
        break;
    case HERALD_V_OBJECT: {
        cJSON *fields = cJSON_AddObjectToObject(j, "fields");
        ok = fields != NULL;
        for (size_t i = 0; ok && i < v->nfields; i++)
            ok = add_item(fields, v->fields[i].name,
                          validator_json(v->fields[i].v, v->fields[i].optional));
        break;
    }
    case HERALD_V_RECORD:
        ok = add_item(j, "keys", validator_json(v->keys, false)) &&
             add_item(j, "values", validator_json(v->items, false));
        break;
    case HERALD_V_UNION: {
        cJSON *members = cJSON_AddArrayToObject(j, "members");
        ok = members != NULL;
        for (size_t i = 0; ok && i < v->nmembers; i++)
            ok = add_item(members, NULL, validator_json(v->members[i], false));
        break;
    }
    default:
        break;
    }
    if (ok && optional) ok = cJSON_AddTrueToObject(j, "optional") != NULL;
    if (ok) return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

static cJSON *strings_json(char *const *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        if (!add_item(a, NULL, cJSON_CreateString(s[i]))) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *table_json(const herald_table_def *t)
{
    cJSON *j = cJSON_CreateObject(), *list, *d;
    if (!j || !add_item(j, "document", validator_json(t->document, false))) goto fail;
    if (!(list = cJSON_AddArrayToObject(j, "indexes"))) goto fail;
    for (size_t i = 0; i < t->nindexes; i++) {
        const herald_index_def *x = &t->indexes[i];
        if (!add_item(list, NULL, d = cJSON_CreateObject()) ||
            !cJSON_AddStringToObject(d, "name", x->name) ||
            !add_item(d, "fields", strings_json(x->fields, x->nfields)))
            goto fail;
    }
    if (!(list = cJSON_AddArrayToObject(j, "searchIndexes"))) goto fail;
    for (size_t i = 0; i < t->nsearch_indexes; i++) {
        const herald_search_index_def *x = &t->search_indexes[i];
        if (!add_item(list, NULL, d = cJSON_CreateObject()) ||
            !cJSON_AddStringToObject(d, "name", x->name) ||
            !cJSON_AddStringToObject(d, "searchField", x->search_field) ||
            !add_item(d, "filterFields", strings_json(x->filter_fields, x->nfilter_fields)))
            goto fail;
    }
    if (!(list = cJSON_AddArrayToObject(j, "vectorIndexes"))) goto fail;
    for (size_t i = 0; i < t->nvector_indexes; i++) {
        const herald_vector_index_def *x = &t->vector_indexes[i];
        if (!add_item(list, NULL, d = cJSON_CreateObject()) ||
            !cJSON_AddStringToObject(d, "name", x->name) ||
            !cJSON_AddStringToObject(d, "vectorField", x->vector_field) ||
            !cJSON_AddNumberToObject(d, "dimensions", x->dimensions) ||
            !add_item(d, "filterFields", strings_json(x->filter_fields, x->nfilter_fields)))
            goto fail;
    }
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

char *herald_schema_to_json(const herald_schema *s)
{
    char *text = NULL;
    cJSON *root = cJSON_CreateObject(), *tables;
    if (!root || !cJSON_AddBoolToObject(root, "schemaValidation", s->schema_validation) ||
        !(tables = cJSON_AddObjectToObject(root, "tables")))
        goto done;
    for (size_t i = 0; i < s->ntables; i++)
        if (!add_item(tables, s->tables[i].name, table_json(&s->tables[i]))) goto done;
    text = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return text;
}

char *herald_validator_to_json(const herald_validator *v)
{
    cJSON *j = validator_json(v, false);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return text;
}

int hd__validator_equal(const herald_validator *a, const herald_validator *b)
{
    if (a == b) return 1;
    if (!a || !b || a->kind != b->kind) return 0;
    switch (a->kind) {
    case HERALD_V_ID:
        return strcmp(a->table, b->table) == 0;
    case HERALD_V_LITERAL:
        /* Equal values of different types (int64 5 and float64 5) are different literals. */
        return a->literal.type == b->literal.type && herald_value_equal(&a->literal, &b->literal);
    case HERALD_V_ARRAY:
        return hd__validator_equal(a->items, b->items);
    case HERALD_V_RECORD:
        return hd__validator_equal(a->keys, b->keys) && hd__validator_equal(a->items, b->items);
    case HERALD_V_OBJECT:
        if (a->nfields != b->nfields) return 0;
        for (size_t i = 0; i < a->nfields; i++)
            if (strcmp(a->fields[i].name, b->fields[i].name) != 0 ||
                a->fields[i].optional != b->fields[i].optional ||
                !hd__validator_equal(a->fields[i].v, b->fields[i].v))
                return 0;
        return 1;
    case HERALD_V_UNION:
        if (a->nmembers != b->nmembers) return 0;
        for (size_t i = 0; i < a->nmembers; i++)
            if (!hd__validator_equal(a->members[i], b->members[i])) return 0;
        return 1;
    default:
        return 1;
    }
}

/* ------------------------------------------------------------- validation */

/* Validation state: the path of the value being checked, built as we descend. */
struct vctx {
    hd_id_table_fn fn;
    void *fn_ctx;
    herald_error *err;
    int level;      /* how deep in the value we are */
    int fail_level; /* `level` where the last failure was found */
    size_t len;
    char path[256];
};

static int vfail(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int vfail(struct vctx *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->fail_level = c->level;
    if (c->len == 0) return herald_fail(c->err, HERALD_EVALIDATION, "%s", msg);
    return herald_fail(c->err, HERALD_EVALIDATION, "%s: %s", c->path, msg);
}

/* Appends to the path (truncating quietly) and returns the old length. */
static size_t path_push(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(struct vctx *c, const char *fmt, ...)
{
    size_t old = c->len;
    if (old < sizeof c->path - 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->path + old, sizeof c->path - old, fmt, ap);
        va_end(ap);
        c->len = strlen(c->path);
    }
    c->level++;
    return old;
}

static void path_pop(struct vctx *c, size_t old)
{
    c->len = old;
    c->path[old] = 0;
    c->level--;
}

static size_t push_field(struct vctx *c, const char *name)
{
    return path_push(c, "%s%s", c->len ? "." : "", name);
}

static const char *type_name(const herald_value *v)
{
    switch (v->type) {
    case HERALD_UNDEFINED:
        return "undefined";
    case HERALD_NULL:
        return "null";
    case HERALD_INT64:
        return "int64";
    case HERALD_FLOAT64:
        return "number";
    case HERALD_BOOLEAN:
        return "boolean";
    case HERALD_STRING:
        return "string";
    case HERALD_BYTES:
        return "bytes";
    case HERALD_ARRAY:
        return "array";
    case HERALD_OBJECT:
        return "object";
    }
    return "?";
}

/* A short description of a value: scalars by value, the rest by type. */
static void value_desc(const herald_value *v, char *buf, size_t size)
{
    switch (v->type) {
    case HERALD_INT64:
        snprintf(buf, size, "%lldn", (long long)v->u.i);
        break;
    case HERALD_FLOAT64:
        /* The shorter of %.15g and %.17g that reads back as the same number. */
        snprintf(buf, size, "%.15g", v->u.f);
        if (strtod(buf, NULL) != v->u.f) snprintf(buf, size, "%.17g", v->u.f);
        break;
    case HERALD_BOOLEAN:
        snprintf(buf, size, "%s", v->u.b ? "true" : "false");
        break;
    case HERALD_STRING: {
        size_t n = v->u.s.len > 40 ? 40 : v->u.s.len;
        while (n < v->u.s.len && n > 0 && ((unsigned char)v->u.s.ptr[n] & 0xC0) == 0x80)
            n--;
        size_t k = 0;
        if (k + 1 < size) buf[k++] = '"';
        for (size_t i = 0; i < n && k + 6 < size; i++) {
            unsigned char ch = (unsigned char)v->u.s.ptr[i];
            if (ch < 0x20 || ch == '"' || ch == '\\') {
                k += (size_t)snprintf(buf + k, size - k, "\\x%02x", ch);
            } else {
                buf[k++] = (char)ch;
            }
        }
        snprintf(buf + k, size - k, "%s\"", n < v->u.s.len ? "..." : "");
        break;
    }
    default:
        snprintf(buf, size, "%s", type_name(v));
        break;
    }
}

/* A short description of what a validator accepts, for union messages. */
static void validator_desc(const herald_validator *v, char *buf, size_t size)
{
    switch (v->kind) {
    case HERALD_V_LITERAL:
        value_desc(&v->literal, buf, size);
        break;
    case HERALD_V_ID:
        snprintf(buf, size, "id(\"%.40s\")", v->table);
        break;
    default:
        snprintf(buf, size, "%s", vkind_name(v->kind));
        break;
    }
}

static int validate(const herald_validator *val, const herald_value *v, struct vctx *c);

static int validate_object(const herald_validator *val, const herald_value *v, struct vctx *c)
{
    int rc;
    for (size_t i = 0; i < val->nfields; i++) {
        const herald_vfield *f = &val->fields[i];
        const herald_value *fv = herald_object_get(v, f->name);
        if (!fv || fv->type == HERALD_UNDEFINED) {
            if (f->optional) continue;
            return vfail(c, "missing required field `%s`", f->name);
        }
        size_t old = push_field(c, f->name);
        rc = validate(f->v, fv, c);
        path_pop(c, old);
        if (rc < 0) return rc;
    }
    for (size_t i = 0; i < v->u.obj.len; i++) {
        const herald_field *f = &v->u.obj.fields[i];
        if (f->val.type == HERALD_UNDEFINED) continue;
        herald_vfield key = {.name = f->key};
        if (val->nfields == 0 ||
            !bsearch(&key, val->fields, val->nfields, sizeof *val->fields, field_cmp))
            return vfail(c, "extra field `%s`", f->key);
    }
    return 0;
}

static int validate_record(const herald_validator *val, const herald_value *v, struct vctx *c)
{
    int rc;
    for (size_t i = 0; i < v->u.obj.len; i++) {
        const herald_field *f = &v->u.obj.fields[i];
        if (f->val.type == HERALD_UNDEFINED) continue;
        herald_value key;
        key.type = HERALD_STRING;
        key.u.s.ptr = f->key;
        key.u.s.len = f->key_len;
        /* Check the key with an empty path, then name it in our own message. */
        herald_error kerr;
        struct vctx kc = *c;
        kc.err = &kerr;
        kc.len = 0;
        kc.path[0] = 0;
        if (validate(val->keys, &key, &kc) < 0)
            return vfail(c, "key `%s`: %s", f->key, kerr.message);
        size_t old = push_field(c, f->key);
        rc = validate(val->items, &f->val, c);
        path_pop(c, old);
        if (rc < 0) return rc;
    }
    return 0;
}

static int validate_union(const herald_validator *val, const herald_value *v, struct vctx *c)
{
    herald_error best, tmp;
    int best_level = -1;
    herald_error *outer = c->err;

    best.message[0] = 0;
    for (size_t i = 0; i < val->nmembers; i++) {
        c->err = &tmp;
        int rc = validate(val->members[i], v, c);
        c->err = outer;
        if (rc == 0) return 0;
        if (c->fail_level > best_level) {
            best_level = c->fail_level;
            best = tmp;
        }
    }
    /* A member that matched part of the way explains the failure best. */
    if (best_level > c->level) return vfail(c, "no member of the union matched: %s", best.message);
    char expect[200], got[64], one[64];
    size_t k = 0;
    expect[0] = 0;
    for (size_t i = 0; i < val->nmembers && k < sizeof expect - 8; i++) {
        validator_desc(val->members[i], one, sizeof one);
        k += (size_t)snprintf(expect + k, sizeof expect - k, "%s%s", i ? " | " : "", one);
    }
    if (k >= sizeof expect - 8) snprintf(expect + sizeof expect - 8, 8, " | ...");
    value_desc(v, got, sizeof got);
    return vfail(c, "no member of the union matched: expected %s, got %s", expect, got);
}

static int validate(const herald_validator *val, const herald_value *v, struct vctx *c)
{
    int rc;
    switch (val->kind) {
    case HERALD_V_ANY:
        if (v->type == HERALD_UNDEFINED) return vfail(c, "expected a value, got undefined");
        return 0;
    case HERALD_V_NULL:
        if (v->type != HERALD_NULL) return vfail(c, "expected null, got %s", type_name(v));
        return 0;
    case HERALD_V_NUMBER:
        if (v->type != HERALD_FLOAT64) return vfail(c, "expected number, got %s", type_name(v));
        return 0;
    case HERALD_V_INT64:
        if (v->type != HERALD_INT64) return vfail(c, "expected int64, got %s", type_name(v));
        return 0;
    case HERALD_V_BOOLEAN:
        if (v->type != HERALD_BOOLEAN) return vfail(c, "expected boolean, got %s", type_name(v));
        return 0;
    case HERALD_V_STRING:
        if (v->type != HERALD_STRING) return vfail(c, "expected string, got %s", type_name(v));
        return 0;
    case HERALD_V_BYTES:
        if (v->type != HERALD_BYTES) return vfail(c, "expected bytes, got %s", type_name(v));
        return 0;
    case HERALD_V_ID:
        if (v->type != HERALD_STRING)
            return vfail(c, "expected an id of table `%s`, got %s", val->table, type_name(v));
        if (c->fn) {
            const char *table = c->fn(c->fn_ctx, v->u.s.ptr, v->u.s.len);
            if (!table || strcmp(table, val->table) != 0)
                return vfail(c, "expected an id of table `%s`", val->table);
        }
        return 0;
    case HERALD_V_LITERAL:
        if (v->type != val->literal.type || !herald_value_equal(v, &val->literal)) {
            char want[64], got[64];
            value_desc(&val->literal, want, sizeof want);
            value_desc(v, got, sizeof got);
            return vfail(c, "expected %s, got %s", want, got);
        }
        return 0;
    case HERALD_V_ARRAY:
        if (v->type != HERALD_ARRAY) return vfail(c, "expected array, got %s", type_name(v));
        for (size_t i = 0; i < v->u.arr.len; i++) {
            size_t old = path_push(c, "[%zu]", i);
            rc = validate(val->items, &v->u.arr.items[i], c);
            path_pop(c, old);
            if (rc < 0) return rc;
        }
        return 0;
    case HERALD_V_OBJECT:
        if (v->type != HERALD_OBJECT) return vfail(c, "expected object, got %s", type_name(v));
        return validate_object(val, v, c);
    case HERALD_V_RECORD:
        if (v->type != HERALD_OBJECT)
            return vfail(c, "expected record (object), got %s", type_name(v));
        return validate_record(val, v, c);
    case HERALD_V_UNION:
        return validate_union(val, v, c);
    }
    return vfail(c, "unknown validator kind %d", (int)val->kind);
}

int hd__validate(const herald_validator *val, const herald_value *v, const char *path,
                 hd_id_table_fn fn, void *ctx, herald_error *err)
{
    struct vctx c;
    c.fn = fn;
    c.fn_ctx = ctx;
    c.err = err;
    c.level = 0;
    c.fail_level = 0;
    c.len = 0;
    c.path[0] = 0;
    if (path && path[0]) {
        snprintf(c.path, sizeof c.path, "%s", path);
        c.len = strlen(c.path);
    }
    return validate(val, v, &c);
}

int herald_validate(const herald_validator *val, const herald_value *v, const char *path,
                    herald_error *err)
{
    return hd__validate(val, v, path, NULL, NULL, err);
}
