/*
 * The JSON query form: parsing, execution over an index scan, filters,
 * pagination cursors and read sets. See docs/queries.md.
 *
 * Execution must never read past its limits without failing, and must
 * record in the read set every key range it looked at, so that a commit
 * outside these ranges provably cannot change the result.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "keycodec.h"
#include "schema_priv.h"
#include "store_priv.h"

#define DEFAULT_MAX_DOCS  32768
#define DEFAULT_MAX_BYTES ((size_t)16 << 20)
#define MAX_TAKE          100000
#define MAX_FILTER_DEPTH  32
#define CURSOR_VERSION    1 /* 1, then a full index key: a position after that key */
#define CURSOR_END        2 /* 2, then the index id: the end of the query's range */

typedef enum expr_op {
    OP_EQ,
    OP_NEQ,
    OP_LT,
    OP_LTE,
    OP_GT,
    OP_GTE,
    OP_AND,
    OP_OR,
    OP_NOT,
    OP_FIELD,
    OP_LITERAL,
} expr_op;

static const char *const op_names[] = {"eq", "neq", "lt", "lte", "gt", "gte", "and", "or", "not"};

typedef struct expr {
    expr_op op;
    char *path;           /* OP_FIELD */
    herald_value literal; /* OP_LITERAL */
    struct expr **kids;
    size_t nkids;
} expr;

typedef enum mode {
    MODE_COLLECT,
    MODE_TAKE,
    MODE_FIRST,
    MODE_UNIQUE,
    MODE_PAGINATE,
    MODE_GET
} mode;

struct herald_query {
    char *table;
    char *index;
    herald_value *eq; /* values of the first neq index fields */
    size_t neq;
    bool has_lower, lower_incl, has_upper, upper_incl;
    herald_value lower, upper;
    bool desc;
    expr *filter;
    mode mode;
    size_t n;          /* take / numItems */
    char *cursor;      /* paginate: NULL = from the start */
    char *end_cursor;  /* paginate: the page's fixed end (endCursor or the journal), or NULL */
    size_t soft_rows;  /* paginate: maximumRowsRead, 0 = none */
    size_t soft_bytes; /* paginate: maximumBytesRead, 0 = none */
    char *get_id;      /* MODE_GET */
};

/* ---- read sets ---- */

void herald_read_set_init(herald_read_set *rs)
{
    *rs = (herald_read_set){0};
}

void herald_read_set_free(herald_read_set *rs)
{
    for (size_t i = 0; i < rs->len; i++) {
        free(rs->ranges[i].lo);
        free(rs->ranges[i].hi);
    }
    free(rs->ranges);
    *rs = (herald_read_set){0};
}

int hd__read_set_add(herald_read_set *rs, uint32_t iid, const uint8_t *lo, size_t lo_len,
                     const uint8_t *hi, size_t hi_len)
{
    if (rs->len == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 4;
        herald_read_range *r = realloc(rs->ranges, cap * sizeof *r);
        if (!r) return HERALD_ENOMEM;
        rs->ranges = r;
        rs->cap = cap;
    }
    herald_read_range r = {.index_id = iid, .lo_len = lo_len, .hi_len = hi_len};
    r.lo = malloc(lo_len ? lo_len : 1);
    r.hi = hi ? malloc(hi_len ? hi_len : 1) : NULL;
    if (!r.lo || (hi && !r.hi)) {
        free(r.lo);
        free(r.hi);
        return HERALD_ENOMEM;
    }
    memcpy(r.lo, lo, lo_len);
    if (hi) memcpy(r.hi, hi, hi_len);
    rs->ranges[rs->len++] = r;
    return 0;
}

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

bool herald_read_range_contains(const herald_read_range *r, uint32_t index_id, const uint8_t *key,
                                size_t key_len)
{
    if (r->index_id != index_id) return false;
    if (cmp_bytes(key, key_len, r->lo, r->lo_len) < 0) return false;
    return !r->hi || cmp_bytes(key, key_len, r->hi, r->hi_len) < 0;
}

static bool keys_overlap(const herald_read_set *rs, const herald_write_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < rs->len; j++)
            if (herald_read_range_contains(&rs->ranges[j], keys[i].index_id, keys[i].key,
                                           keys[i].key_len))
                return true;
    return false;
}

bool herald_read_set_overlaps(const herald_read_set *rs, const herald_write_set *ws)
{
    return keys_overlap(rs, ws->removed, ws->nremoved) || keys_overlap(rs, ws->added, ws->nadded);
}

/* ---- parsing ---- */

static void expr_free(expr *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->nkids; i++)
        expr_free(e->kids[i]);
    free(e->kids);
    free(e->path);
    herald_value_free(&e->literal);
    free(e);
}

void herald_query_free(herald_query *q)
{
    if (!q) return;
    free(q->table);
    free(q->index);
    for (size_t i = 0; i < q->neq; i++)
        herald_value_free(&q->eq[i]);
    free(q->eq);
    herald_value_free(&q->lower);
    herald_value_free(&q->upper);
    expr_free(q->filter);
    free(q->cursor);
    free(q->end_cursor);
    free(q->get_id);
    free(q);
}

static int op_lookup(const char *name)
{
    for (int i = 0; i < (int)(sizeof op_names / sizeof op_names[0]); i++)
        if (strcmp(name, op_names[i]) == 0) return i;
    return -1;
}

static char *dup_string(const herald_value *v)
{
    return v && v->type == HERALD_STRING ? strdup(v->u.s.ptr) : NULL;
}

static int parse_expr(const herald_value *v, int depth, expr **out, herald_error *err);

static int parse_operand(const herald_value *v, int depth, expr **out, herald_error *err)
{
    expr *e = calloc(1, sizeof *e);
    if (!e) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    *out = e;
    if (v->type == HERALD_OBJECT && v->u.obj.len == 1) {
        const herald_field *f = &v->u.obj.fields[0];
        if (strcmp(f->key, "field") == 0) {
            if (f->val.type != HERALD_STRING || f->val.u.s.len == 0)
                return herald_fail(err, HERALD_EINVAL, "filter: `field` needs a field path");
            e->op = OP_FIELD;
            e->path = strdup(f->val.u.s.ptr);
            return e->path ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
        }
        if (strcmp(f->key, "literal") == 0) {
            e->op = OP_LITERAL;
            return herald_value_copy(&e->literal, &f->val);
        }
        if (op_lookup(f->key) >= 0) {
            free(e);
            return parse_expr(v, depth, out, err);
        }
    }
    e->op = OP_LITERAL;
    return herald_value_copy(&e->literal, v);
}

static int parse_expr(const herald_value *v, int depth, expr **out, herald_error *err)
{
    *out = NULL;
    if (depth > MAX_FILTER_DEPTH)
        return herald_fail(err, HERALD_ELIMIT, "filter is nested deeper than %d levels",
                           MAX_FILTER_DEPTH);
    if (v->type != HERALD_OBJECT || v->u.obj.len != 1)
        return herald_fail(err, HERALD_EINVAL,
                           "filter: an expression is an object with one operator, like "
                           "{\"eq\": [{\"field\": \"status\"}, \"ready\"]}");
    const herald_field *f = &v->u.obj.fields[0];
    int op = op_lookup(f->key);
    if (op < 0) return herald_fail(err, HERALD_EINVAL, "filter: unknown operator `%.40s`", f->key);
    expr *e = calloc(1, sizeof *e);
    if (!e) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    e->op = (expr_op)op;
    *out = e;
    const herald_value *args = &f->val;
    if (op == OP_NOT) {
        e->kids = calloc(1, sizeof *e->kids);
        if (!e->kids) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        e->nkids = 1;
        const herald_value *inner =
            args->type == HERALD_ARRAY && args->u.arr.len == 1 ? &args->u.arr.items[0] : args;
        return parse_expr(inner, depth + 1, &e->kids[0], err);
    }
    if (args->type != HERALD_ARRAY)
        return herald_fail(err, HERALD_EINVAL, "filter: `%s` takes an array", f->key);
    size_t n = args->u.arr.len;
    bool logical = op == OP_AND || op == OP_OR;
    if (!logical && n != 2)
        return herald_fail(err, HERALD_EINVAL, "filter: `%s` takes two operands", f->key);
    if (n > 256) return herald_fail(err, HERALD_ELIMIT, "filter: too many operands");
    e->kids = calloc(n ? n : 1, sizeof *e->kids);
    if (!e->kids) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        e->nkids++;
        int rc = logical ? parse_expr(&args->u.arr.items[i], depth + 1, &e->kids[i], err)
                         : parse_operand(&args->u.arr.items[i], depth + 1, &e->kids[i], err);
        if (rc) return rc;
    }
    return 0;
}

/* The fields a range may constrain: the index fields, then _creationTime. */
static size_t range_fields(const hd_index *ix, const char *out[17])
{
    if (ix->kind == HD_INDEX_BY_ID) {
        out[0] = "_id";
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < ix->nfields && i < 16; i++)
        out[n++] = ix->fields[i];
    out[n++] = "_creationTime";
    return n;
}

static int parse_range(herald_query *q, const hd_index *ix, const herald_value *range,
                       herald_error *err)
{
    if (range->type != HERALD_ARRAY)
        return herald_fail(err, HERALD_EINVAL, "`range` must be an array of conditions");
    const char *fields[17];
    size_t nfields = range_fields(ix, fields);
    q->eq = calloc(nfields, sizeof *q->eq);
    if (!q->eq) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    size_t next = 0; /* index of the next field an eq may name */
    bool bounded = false;
    for (size_t i = 0; i < range->u.arr.len; i++) {
        const herald_value *c = &range->u.arr.items[i];
        if (c->type != HERALD_OBJECT || c->u.obj.len != 1 ||
            c->u.obj.fields[0].val.type != HERALD_ARRAY || c->u.obj.fields[0].val.u.arr.len != 2 ||
            c->u.obj.fields[0].val.u.arr.items[0].type != HERALD_STRING)
            return herald_fail(err, HERALD_EINVAL,
                               "range condition %zu must look like {\"eq\": [\"field\", value]}",
                               i);
        const char *op = c->u.obj.fields[0].key;
        const char *field = c->u.obj.fields[0].val.u.arr.items[0].u.s.ptr;
        const herald_value *val = &c->u.obj.fields[0].val.u.arr.items[1];
        int o = op_lookup(op);
        if (o != OP_EQ && o != OP_LT && o != OP_LTE && o != OP_GT && o != OP_GTE)
            return herald_fail(err, HERALD_EINVAL, "range: `%.40s` is not eq, lt, lte, gt or gte",
                               op);
        herald_value *slot;
        if (o == OP_EQ) {
            if (bounded || next >= nfields || strcmp(fields[next], field) != 0)
                return herald_fail(err, HERALD_EINVAL,
                                   "range: eq on `%.64s` must follow the index order (%s expected "
                                   "next) and come before bounds",
                                   field, next < nfields && !bounded ? fields[next] : "nothing");
            slot = &q->eq[next++];
            q->neq = next;
        } else {
            bool lower = o == OP_GT || o == OP_GTE;
            if (next >= nfields || strcmp(fields[next], field) != 0 ||
                (lower ? q->has_lower : q->has_upper))
                return herald_fail(err, HERALD_EINVAL,
                                   "range: a bound must be on the field after the eq conditions "
                                   "(`%s`), at most one lower and one upper",
                                   next < nfields ? fields[next] : "none left");
            bounded = true;
            if (lower) {
                q->has_lower = true;
                q->lower_incl = o == OP_GTE;
                slot = &q->lower;
            } else {
                q->has_upper = true;
                q->upper_incl = o == OP_LTE;
                slot = &q->upper;
            }
        }
        if (ix->kind == HD_INDEX_BY_ID && val->type != HERALD_STRING)
            return herald_fail(err, HERALD_EINVAL, "range: `_id` is compared with an id string");
        if (herald_value_copy(slot, val)) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    return 0;
}

static int take_count(const herald_value *v, const char *what, size_t *out, herald_error *err)
{
    double d = v->type == HERALD_FLOAT64 ? v->u.f : v->type == HERALD_INT64 ? (double)v->u.i : -1;
    if (!(d >= 0 && d <= MAX_TAKE) || d != (double)(size_t)d)
        return herald_fail(err, HERALD_EINVAL, "`%s` must be a whole number from 0 to %d", what,
                           MAX_TAKE);
    *out = (size_t)d;
    return 0;
}

/* An optional cursor option: absent, null or "" leave *out NULL. */
static int cursor_option(const herald_value *c, const char *what, char **out, herald_error *err)
{
    if (!c || c->type == HERALD_NULL || c->type == HERALD_UNDEFINED) return 0;
    if (c->type != HERALD_STRING)
        return herald_fail(err, HERALD_EINVAL, "`%s` must be a string or null", what);
    if (c->u.s.len && !(*out = strdup(c->u.s.ptr)))
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    return 0;
}

/* maximumRowsRead / maximumBytesRead: a positive number; smaller values read one row. */
static int soft_limit(const herald_value *v, const char *what, size_t *out, herald_error *err)
{
    if (!v || v->type == HERALD_NULL || v->type == HERALD_UNDEFINED) return 0;
    double d = v->type == HERALD_FLOAT64 ? v->u.f : v->type == HERALD_INT64 ? (double)v->u.i : NAN;
    if (d != d) return herald_fail(err, HERALD_EINVAL, "`%s` must be a number", what);
    *out = d < 1 ? 1 : d > 1e15 ? (size_t)1e15 : (size_t)d;
    return 0;
}

/*
 * Convex's paginationOpts: numItems, cursor, endCursor, maximumRowsRead,
 * maximumBytesRead; `id` (the client's name for the paginated query) and
 * other keys are ignored.
 */
static int parse_paginate(herald_query *q, const herald_value *x, herald_error *err)
{
    const herald_value *n = herald_object_get(x, "numItems");
    if (x->type != HERALD_OBJECT || !n)
        return herald_fail(err, HERALD_EINVAL,
                           "`paginate` needs {\"numItems\": n, \"cursor\": null}");
    int rc = take_count(n, "numItems", &q->n, err);
    if (!rc && q->n == 0) rc = herald_fail(err, HERALD_EINVAL, "`numItems` must be at least 1");
    if (!rc) rc = cursor_option(herald_object_get(x, "cursor"), "cursor", &q->cursor, err);
    if (!rc)
        rc = cursor_option(herald_object_get(x, "endCursor"), "endCursor", &q->end_cursor, err);
    if (!rc)
        rc = soft_limit(herald_object_get(x, "maximumRowsRead"), "maximumRowsRead", &q->soft_rows,
                        err);
    if (!rc)
        rc = soft_limit(herald_object_get(x, "maximumBytesRead"), "maximumBytesRead",
                        &q->soft_bytes, err);
    return rc;
}

bool herald_query_paginates(const herald_query *q)
{
    return q && q->mode == MODE_PAGINATE;
}

const char *herald_query_end_cursor(const herald_query *q)
{
    return q && q->mode == MODE_PAGINATE ? q->end_cursor : NULL;
}

int herald_query_set_journal(herald_query *q, const char *journal)
{
    if (!q || q->mode != MODE_PAGINATE || q->end_cursor || !journal || !journal[0]) return 0;
    if (!(q->end_cursor = strdup(journal))) return HERALD_ENOMEM;
    return 0;
}

int herald_query_from_value(const herald_value *v, const herald_schema *schema, herald_query **out,
                            herald_error *err)
{
    (void)schema;
    *out = NULL;
    if (v->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "a query is a JSON object");
    herald_query *q = calloc(1, sizeof *q);
    if (!q) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = 0;
    int modes = 0;
    for (size_t i = 0; i < v->u.obj.len && !rc; i++) {
        const herald_field *f = &v->u.obj.fields[i];
        const char *k = f->key;
        const herald_value *x = &f->val;
        if (!strcmp(k, "table")) {
            if (!(q->table = dup_string(x)))
                rc = herald_fail(err, HERALD_EINVAL, "`table` must be a string");
        } else if (!strcmp(k, "index")) {
            if (!(q->index = dup_string(x)))
                rc = herald_fail(err, HERALD_EINVAL, "`index` must be a string");
        } else if (!strcmp(k, "range") || !strcmp(k, "filter")) {
            /* handled once table and index are known */
        } else if (!strcmp(k, "order")) {
            if (x->type != HERALD_STRING ||
                (strcmp(x->u.s.ptr, "asc") && strcmp(x->u.s.ptr, "desc")))
                rc = herald_fail(err, HERALD_EINVAL, "`order` must be \"asc\" or \"desc\"");
            else
                q->desc = x->u.s.ptr[0] == 'd';
        } else if (!strcmp(k, "take")) {
            modes++;
            q->mode = MODE_TAKE;
            rc = take_count(x, "take", &q->n, err);
        } else if (!strcmp(k, "first") || !strcmp(k, "unique") || !strcmp(k, "collect")) {
            modes++;
            if (x->type != HERALD_BOOLEAN || !x->u.b)
                rc = herald_fail(err, HERALD_EINVAL, "`%s` must be true", k);
            q->mode = k[0] == 'f' ? MODE_FIRST : k[0] == 'u' ? MODE_UNIQUE : MODE_COLLECT;
        } else if (!strcmp(k, "paginate")) {
            modes++;
            q->mode = MODE_PAGINATE;
            rc = parse_paginate(q, x, err);
        } else if (!strcmp(k, "get")) {
            modes++;
            q->mode = MODE_GET;
            if (!(q->get_id = dup_string(x)))
                rc = herald_fail(err, HERALD_EINVAL, "`get` must be an id string");
        } else {
            rc = herald_fail(err, HERALD_EINVAL, "unknown query key `%.40s`", k);
        }
    }
    if (!rc && !q->table) rc = herald_fail(err, HERALD_EINVAL, "a query needs a `table`");
    if (!rc && modes > 1)
        rc = herald_fail(err, HERALD_EINVAL,
                         "use only one of collect, take, first, unique, paginate, get");
    if (!rc && !q->index && !(q->index = strdup("by_creation_time")))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (rc) {
        herald_query_free(q);
        return rc;
    }
    /* Range and filter need the index; check names against a schema when given. */
    const herald_value *range = herald_object_get(v, "range");
    const herald_value *filter = herald_object_get(v, "filter");
    if (schema) {
        const herald_table_def *def = herald_schema_table(schema, q->table);
        /* The system tables (`_storage`) are in every store, in no schema. */
        if (!def && q->table[0] == '_') def = herald_schema_table(hd__system_schema(), q->table);
        if (!def) {
            rc = herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", q->table);
            goto done;
        }
    }
    if (range) {
        /* A temporary view of the index fields from the schema definition. */
        hd_index ix = {.kind = HD_INDEX_USER};
        const herald_table_def *def = schema ? herald_schema_table(schema, q->table) : NULL;
        if (schema && !def && q->table[0] == '_')
            def = herald_schema_table(hd__system_schema(), q->table);
        if (!strcmp(q->index, "by_id")) {
            ix.kind = HD_INDEX_BY_ID;
        } else if (!strcmp(q->index, "by_creation_time")) {
            ix.kind = HD_INDEX_BY_CREATION_TIME;
        } else if (def) {
            for (size_t i = 0; i < def->nindexes; i++)
                if (!strcmp(def->indexes[i].name, q->index)) {
                    ix.fields = def->indexes[i].fields;
                    ix.nfields = def->indexes[i].nfields;
                }
            if (!ix.fields) {
                rc = herald_fail(err, HERALD_ENOTFOUND, "table `%s` has no index `%.64s`", q->table,
                                 q->index);
                goto done;
            }
        } else {
            rc = herald_fail(err, HERALD_EINVAL, "a range needs the schema");
            goto done;
        }
        if ((rc = parse_range(q, &ix, range, err))) goto done;
    }
    if (filter && (rc = parse_expr(filter, 0, &q->filter, err))) goto done;
done:
    if (rc) {
        herald_query_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int herald_query_parse(const char *text, size_t len, const herald_schema *schema,
                       herald_query **out, herald_error *err)
{
    herald_value v;
    int rc = herald_value_from_json(text, len, &v, err);
    if (rc) return rc;
    rc = herald_query_from_value(&v, schema, out, err);
    herald_value_free(&v);
    return rc;
}

/* ---- execution ---- */

static bool eval(const expr *e, const herald_value *doc);

static const herald_value *operand(const expr *e, const herald_value *doc)
{
    static const herald_value undef = {.type = HERALD_UNDEFINED};
    static const herald_value yes = {.type = HERALD_BOOLEAN, .u.b = true};
    static const herald_value no = {.type = HERALD_BOOLEAN, .u.b = false};
    if (e->op == OP_LITERAL) return &e->literal;
    /* An expression used as an operand stands for its boolean value. */
    if (e->op != OP_FIELD) return eval(e, doc) ? &yes : &no;
    const herald_value *v = herald_value_path(doc, e->path);
    return v ? v : &undef;
}

static bool eval(const expr *e, const herald_value *doc)
{
    switch (e->op) {
    case OP_AND:
        for (size_t i = 0; i < e->nkids; i++)
            if (!eval(e->kids[i], doc)) return false;
        return true;
    case OP_OR:
        for (size_t i = 0; i < e->nkids; i++)
            if (eval(e->kids[i], doc)) return true;
        return false;
    case OP_NOT:
        return !eval(e->kids[0], doc);
    default: {
        int c = herald_value_compare(operand(e->kids[0], doc), operand(e->kids[1], doc));
        switch (e->op) {
        case OP_EQ:
            return c == 0;
        case OP_NEQ:
            return c != 0;
        case OP_LT:
            return c < 0;
        case OP_LTE:
            return c <= 0;
        case OP_GT:
            return c > 0;
        default:
            return c >= 0;
        }
    }
    }
}

/* Encodes one range value: ids of by_id as their binary form, others with the codec. */
static int encode_range_value(hd_buf *b, const hd_table *tab, const hd_index *ix,
                              const herald_value *v, herald_error *err)
{
    if (ix->kind != HD_INDEX_BY_ID) {
        hd__key_encode(b, v);
        return 0;
    }
    uint8_t id[HERALD_ID_BYTES];
    if (!hd__id_parse(v->u.s.ptr, v->u.s.len, id))
        return herald_fail(err, HERALD_EINVAL, "`%.64s` is not a document id", v->u.s.ptr);
    /* An id of another table must not open a window onto that table. */
    if (hd__get_be32(id) != tab->number)
        return herald_fail(err, HERALD_EINVAL, "id %s is not an id of table `%s`", v->u.s.ptr,
                           tab->def->name);
    hd__buf_append(b, id, HERALD_ID_BYTES);
    return 0;
}

static int compute_bounds(const herald_query *q, const hd_table *tab, const hd_index *ix,
                          hd_buf *lo, hd_buf *hi, bool *has_hi, herald_error *err)
{
    hd_buf prefix = HD_BUF_INIT;
    uint8_t iid[4];
    hd__put_be32(iid, ix->id);
    hd__buf_append(&prefix, iid, 4);
    int rc = 0;
    for (size_t i = 0; i < q->neq && !rc; i++)
        rc = encode_range_value(&prefix, tab, ix, &q->eq[i], err);
    if (rc) goto done;
    hd__buf_append(lo, prefix.p, prefix.len);
    if (q->has_lower) {
        if ((rc = encode_range_value(lo, tab, ix, &q->lower, err))) goto done;
        if (!q->lower_incl) hd__key_successor(lo);
    }
    hd__buf_append(hi, prefix.p, prefix.len);
    if (q->has_upper) {
        if ((rc = encode_range_value(hi, tab, ix, &q->upper, err))) goto done;
        if (q->upper_incl) hd__key_successor(hi);
    } else {
        hd__key_successor(hi);
    }
    *has_hi = true;
    if (lo->failed || hi->failed) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
done:
    hd__buf_free(&prefix);
    return rc;
}

/*
 * Decodes a cursor of index `iid`: *at_end for the end of the query's
 * range, else the full key it points after, appended to `key`. Anything
 * else fails with a message that starts with InvalidCursor, the word the
 * official React client resets its pages on.
 */
static int cursor_decode(const char *text, uint32_t iid, hd_buf *key, bool *at_end,
                         herald_error *err)
{
    hd_buf raw = HD_BUF_INIT;
    bool ok = hd__base64_decode(&raw, text, strlen(text), true) && raw.len >= 1 + HD_IID_BYTES &&
              hd__get_be32(raw.p + 1) == iid;
    *at_end = ok && raw.p[0] == CURSOR_END && raw.len == 1 + HD_IID_BYTES;
    ok = ok && (*at_end || (raw.p[0] == CURSOR_VERSION && raw.len > 1 + HD_IID_BYTES));
    if (ok && !*at_end) hd__buf_append(key, raw.p + 1, raw.len - 1);
    hd__buf_free(&raw);
    if (!ok)
        return herald_fail(err, HERALD_EINVAL,
                           "InvalidCursor: the cursor does not belong to this query");
    return key->failed ? herald_fail(err, HERALD_ENOMEM, "out of memory") : 0;
}

static int cursor_encode(herald_value *out, const hd_buf *raw)
{
    hd_buf b = HD_BUF_INIT;
    hd__base64_encode(&b, raw->p, raw->len, true);
    int rc = b.failed || raw->failed ? HERALD_ENOMEM : herald_string(out, (char *)b.p, b.len);
    hd__buf_free(&b);
    return rc;
}

static int cursor_value(herald_value *out, const uint8_t *key, size_t len)
{
    hd_buf raw = HD_BUF_INIT;
    hd__buf_byte(&raw, CURSOR_VERSION);
    hd__buf_append(&raw, key, len);
    int rc = cursor_encode(out, &raw);
    hd__buf_free(&raw);
    return rc;
}

static int cursor_end_value(herald_value *out, uint32_t iid)
{
    hd_buf raw = HD_BUF_INIT;
    uint8_t be[4];
    hd__put_be32(be, iid);
    hd__buf_byte(&raw, CURSOR_END);
    hd__buf_append(&raw, be, 4);
    int rc = cursor_encode(out, &raw);
    hd__buf_free(&raw);
    return rc;
}

static void buf_set(hd_buf *dst, const hd_buf *src)
{
    dst->len = 0;
    hd__buf_append(dst, src->p, src->len);
}

/*
 * Narrows [lo, hi) to a page: strictly after `cursor` and up to and
 * including `end_cursor`, in the query's order (descending: [end, cursor)).
 * Sets *end_at_end when the page's end is the end of the range.
 */
static int page_bounds(const herald_query *q, const hd_index *ix, hd_buf *lo, hd_buf *hi,
                       bool *end_at_end, herald_error *err)
{
    hd_buf key = HD_BUF_INIT;
    bool at_end = false;
    int rc = 0;
    *end_at_end = false;
    if (q->cursor) {
        if ((rc = cursor_decode(q->cursor, ix->id, &key, &at_end, err))) goto done;
        if (at_end) {
            /* After the end: an empty page. */
            if (!q->desc)
                buf_set(lo, hi);
            else
                buf_set(hi, lo);
        } else if (!q->desc) {
            hd__buf_byte(&key, 0);
            if (cmp_bytes(key.p, key.len, lo->p, lo->len) > 0) buf_set(lo, &key);
        } else if (cmp_bytes(key.p, key.len, hi->p, hi->len) < 0) {
            buf_set(hi, &key);
        }
    }
    if (q->end_cursor) {
        key.len = 0;
        if ((rc = cursor_decode(q->end_cursor, ix->id, &key, end_at_end, err))) goto done;
        if (*end_at_end) {
            /* The range's own end: documents appended later belong to this page. */
        } else if (!q->desc) {
            hd__buf_byte(&key, 0);
            if (cmp_bytes(key.p, key.len, hi->p, hi->len) < 0) buf_set(hi, &key);
        } else if (cmp_bytes(key.p, key.len, lo->p, lo->len) > 0) {
            buf_set(lo, &key);
        }
    }
    /* An end before the start: an empty page, and an empty read set. */
    if (cmp_bytes(lo->p, lo->len, hi->p, hi->len) > 0) buf_set(hi, lo);
    if (lo->failed || hi->failed || key.failed)
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
done:
    hd__buf_free(&key);
    return rc;
}

/*
 * The keys a page with a fixed end read, in scan order, to choose a split
 * cursor from: row i's key is keys.p[off[i] .. off[i + 1]), and item j of
 * the page came from row item_row[j].
 */
typedef struct page_rows {
    hd_buf keys;
    size_t *off;
    size_t nrows, caprows;
    size_t *item_row;
    size_t nitems, capitems;
} page_rows;

static bool grow(size_t **arr, size_t *cap, size_t n)
{
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 64;
    size_t *a = realloc(*arr, c * sizeof *a);
    if (!a) return false;
    *arr = a;
    *cap = c;
    return true;
}

static bool page_rows_add(page_rows *pr, const uint8_t *key, size_t len)
{
    if (!grow(&pr->off, &pr->caprows, pr->nrows + 1)) return false;
    pr->off[pr->nrows++] = pr->keys.len;
    pr->off[pr->nrows] = pr->keys.len + len;
    hd__buf_append(&pr->keys, key, len);
    return !pr->keys.failed;
}

static bool page_rows_item(page_rows *pr)
{
    if (!grow(&pr->item_row, &pr->capitems, pr->nitems)) return false;
    pr->item_row[pr->nitems++] = pr->nrows - 1;
    return true;
}

static void page_rows_free(page_rows *pr)
{
    hd__buf_free(&pr->keys);
    free(pr->off);
    free(pr->item_row);
}

/*
 * The row to split a page at: after the middle document, so that both
 * halves hold about half the page; for a page of fewer than two documents,
 * the middle row read. -1 when there is nothing to split.
 */
static ptrdiff_t split_row(const page_rows *pr, bool required)
{
    if (pr->nitems >= 2) return (ptrdiff_t)pr->item_row[pr->nitems / 2 - 1];
    if (pr->nrows >= 2) return (ptrdiff_t)(pr->nrows / 2 - 1);
    return required && pr->nrows == 1 ? 0 : -1;
}

static int run_get(const herald_query *q, herald_txn *t, herald_value *result, herald_read_set *rs,
                   herald_error *err)
{
    int rc = herald_get(t, q->table, q->get_id, result, rs, err);
    if (rc == HERALD_ENOTFOUND || (rc == 0 && q->filter && !eval(q->filter, result))) {
        herald_value_free(result);
        *result = herald_null();
        return 0;
    }
    return rc;
}

/* Adds the fields of a page to *result (an object). */
static int page_result(const herald_query *q, const hd_index *ix, herald_value *result,
                       herald_value *items, bool exhausted, bool fixed, bool end_at_end,
                       const hd_buf *last, const page_rows *pr, bool over_soft, bool required)
{
    herald_object_init(result);
    herald_value cursor;
    int rc;
    if (fixed) /* the page's end stays where it is */
        rc = herald_string(&cursor, q->end_cursor, strlen(q->end_cursor));
    else if (exhausted) /* the last page ends with the range, wherever that moves */
        rc = cursor_end_value(&cursor, ix->id);
    else if (last->len)
        rc = cursor_value(&cursor, last->p, last->len);
    else if (q->cursor)
        rc = herald_string(&cursor, q->cursor, strlen(q->cursor));
    else
        rc = herald_string(&cursor, "", 0);
    if (!rc) rc = herald_object_set(result, "continueCursor", 14, cursor);
    if (!rc)
        rc = herald_object_set(result, "isDone", 6, herald_bool(fixed ? end_at_end : exhausted));
    if (!rc) {
        rc = herald_object_set(result, "page", 4, *items);
        herald_array_init(items);
    }
    if (!rc && fixed && (required || over_soft || pr->nitems > 2 * q->n)) {
        ptrdiff_t row = split_row(pr, required);
        if (row >= 0) {
            size_t r = (size_t)row;
            const char *status = required ? "SplitRequired" : "SplitRecommended";
            rc = cursor_value(&cursor, pr->keys.p + pr->off[r], pr->off[r + 1] - pr->off[r]);
            if (!rc) rc = herald_object_set(result, "splitCursor", 11, cursor);
            if (!rc) rc = herald_string(&cursor, status, strlen(status));
            if (!rc) rc = herald_object_set(result, "pageStatus", 10, cursor);
        }
    }
    return rc;
}

int herald_query_run(const herald_query *q, herald_txn *t, const herald_query_limits *limits,
                     herald_value *result, herald_read_set *rs, herald_error *err)
{
    *result = herald_undefined();
    if (q->mode == MODE_GET) return run_get(q, t, result, rs, err);
    size_t max_docs = limits && limits->max_docs ? limits->max_docs : DEFAULT_MAX_DOCS;
    size_t max_bytes = limits && limits->max_bytes ? limits->max_bytes : DEFAULT_MAX_BYTES;
    const hd_table *tab = hd__table_by_name(t->s, q->table);
    if (!tab) return herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", q->table);
    const hd_index *ix = hd__index_by_name(tab, q->index);
    if (!ix)
        return herald_fail(err, HERALD_ENOTFOUND, "table `%s` has no index `%.64s`", q->table,
                           q->index);
    hd_buf lo = HD_BUF_INIT, hi = HD_BUF_INIT, last = HD_BUF_INIT; /* last: full key last read */
    bool has_hi = false;
    hd_scan *sc = NULL;
    herald_value items;
    herald_array_init(&items);
    page_rows pr = {.keys = HD_BUF_INIT};
    bool paginate = q->mode == MODE_PAGINATE;
    bool fixed = paginate && q->end_cursor; /* a live page whose end is known */
    bool end_at_end = false, required = false;
    int rc = compute_bounds(q, tab, ix, &lo, &hi, &has_hi, err);
    if (rc) goto done;
    if (paginate && (rc = page_bounds(q, ix, &lo, &hi, &end_at_end, err))) goto done;
    size_t want = q->mode == MODE_FIRST     ? 1
                  : q->mode == MODE_UNIQUE  ? 2
                  : q->mode == MODE_COLLECT ? SIZE_MAX
                  : fixed                   ? SIZE_MAX
                                            : q->n;
    if ((rc = hd__scan_open(t, tab, ix, lo.p, lo.len, has_hi ? hi.p : NULL, hi.len, q->desc, &sc,
                            err)))
        goto done;
    size_t docs = 0, bytes = 0;
    bool exhausted = want == 0 ? false : true;
    while (items.u.arr.len < want) {
        /* A page without a fixed end stops at maximumRowsRead / maximumBytesRead. */
        if (paginate && !fixed && docs &&
            ((q->soft_rows && docs >= q->soft_rows) || (q->soft_bytes && bytes >= q->soft_bytes)))
            break;
        hd_scan_entry *e;
        rc = hd__scan_next(sc, &e, &bytes, err);
        if (rc < 0) break;
        if (rc == 0) {
            exhausted = true;
            break;
        }
        rc = 0;
        exhausted = false;
        if (++docs > max_docs || bytes > max_bytes) {
            if (fixed) {
                /* A fixed page too large to read: what was read, and where to split it. */
                required = true;
                docs--;
                break;
            }
            rc = herald_fail(err, HERALD_ELIMIT,
                             "query read more than %zu documents or %zu bytes; narrow it with an "
                             "index range or paginate",
                             max_docs, max_bytes);
            break;
        }
        last.len = 0;
        hd__buf_append(&last, e->key, e->key_len);
        if (fixed && !page_rows_add(&pr, e->key, e->key_len)) {
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            break;
        }
        if (q->filter && !eval(q->filter, &e->doc)) continue;
        if (fixed && !page_rows_item(&pr)) {
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            break;
        }
        herald_value doc = e->doc;
        e->doc = herald_undefined();
        if ((rc = herald_array_push(&items, doc))) break;
    }
    if (!rc && last.failed) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (rc) goto done;
    if (rs) {
        /* What was read: up to the last key read when the scan stopped early,
         * else the whole range (for a page with a fixed end: exactly its range). */
        if (exhausted)
            rc = hd__read_set_add(rs, ix->id, lo.p, lo.len, has_hi ? hi.p : NULL, hi.len);
        else if (last.len == 0) /* take(0) reads nothing */
            rc = hd__read_set_add(rs, ix->id, lo.p, lo.len, lo.p, lo.len);
        else if (!q->desc) {
            hd__buf_byte(&last, 0);
            rc = hd__read_set_add(rs, ix->id, lo.p, lo.len, last.p, last.len);
            last.len--;
        } else
            rc = hd__read_set_add(rs, ix->id, last.p, last.len, has_hi ? hi.p : NULL, hi.len);
        if (rc || last.failed) {
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            goto done;
        }
    }
    switch (q->mode) {
    case MODE_FIRST:
    case MODE_UNIQUE:
        if (q->mode == MODE_UNIQUE && items.u.arr.len > 1) {
            rc = herald_fail(err, HERALD_EUNIQUE, "unique() found more than one document in `%s`",
                             q->table);
            break;
        }
        if (items.u.arr.len) {
            *result = items.u.arr.items[0];
            items.u.arr.len = 0;
        } else {
            *result = herald_null();
        }
        break;
    case MODE_PAGINATE: {
        bool over_soft =
            (q->soft_rows && docs > q->soft_rows) || (q->soft_bytes && bytes > q->soft_bytes);
        if (page_result(q, ix, result, &items, exhausted, fixed, end_at_end, &last, &pr, over_soft,
                        required))
            rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        break;
    }
    default:
        *result = items;
        herald_array_init(&items);
    }
done:
    if (rc) herald_value_free(result);
    herald_value_free(&items);
    hd__scan_close(sc);
    hd__buf_free(&lo);
    hd__buf_free(&hi);
    hd__buf_free(&last);
    page_rows_free(&pr);
    return rc;
}
