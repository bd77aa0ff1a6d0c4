/*
 * The full-text index (fts.h): tokenising, the registry of search indexes,
 * building postings for existing documents, and keeping them in step with
 * every document write. Searching them is search.c's job.
 *
 * It must never write a posting outside the mutation's transaction, nor
 * change one without recording its full key in the write set.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fts.h"
#include "keycodec.h"
#include "store_priv.h"

/* Bumped when the posting format changes: indexes of another format are rebuilt. */
#define FTS_FORMAT "fts1"

struct hd_fts {
    MDB_dbi dbi;
    bool has_dbi;
    hd_fts_index *v;
    size_t n;
};

/* ---- tokens ---- */

static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

int hd__fts_tokenize(const char *text, size_t n, char **lowered, hd_fts_token **tokens,
                     size_t *ntokens)
{
    *lowered = malloc(n ? n : 1);
    size_t cap = 16, len = 0;
    *tokens = malloc(cap * sizeof **tokens);
    *ntokens = 0;
    if (!*lowered || !*tokens) goto oom;
    char *low = *lowered;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    size_t i = 0;
    while (i < n) {
        while (i < n && !word_byte((unsigned char)low[i]))
            i++;
        size_t start = i;
        while (i < n && word_byte((unsigned char)low[i]))
            i++;
        if (i == start) continue;
        if (len == cap) {
            cap *= 2;
            hd_fts_token *t = realloc(*tokens, cap * sizeof *t);
            if (!t) goto oom;
            *tokens = t;
        }
        size_t tl = i - start;
        (*tokens)[len++] = (hd_fts_token){low + start, tl > HD_FTS_MAX_TERM ? HD_FTS_MAX_TERM : tl};
    }
    *ntokens = len;
    return 0;
oom:
    free(*lowered);
    free(*tokens);
    *lowered = NULL;
    *tokens = NULL;
    return HERALD_ENOMEM;
}

static int token_cmp(const void *a, const void *b)
{
    const hd_fts_token *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* ---- the postings of one document in one index ---- */

typedef struct term_count {
    const char *p;
    size_t len;
    uint32_t tf;
} term_count;

typedef struct doc_postings {
    char *lowered;
    hd_fts_token *tokens;
    term_count *terms; /* distinct, in key order */
    size_t nterms;
    uint32_t length; /* terms in the text, repeats included */
    hd_buf filters;  /* encoded filter values */
    size_t *fend;    /* where each filter field's value ends in `filters` */
    size_t nfields;
    uint8_t ct[8];
} doc_postings;

static void postings_free(doc_postings *d)
{
    free(d->lowered);
    free(d->tokens);
    free(d->terms);
    free(d->fend);
    hd__buf_free(&d->filters);
    *d = (doc_postings){0};
}

/* The postings `doc` calls for in `ix` (none when the search field is no string). */
static int postings_of(const hd_fts_index *ix, const herald_value *doc, doc_postings *d)
{
    *d = (doc_postings){.filters = HD_BUF_INIT};
    if (!doc) return 0;
    const herald_value *body = herald_value_path(doc, ix->def->search_field);
    if (!body || body->type != HERALD_STRING) return 0;
    size_t ntok;
    if (hd__fts_tokenize(body->u.s.ptr, body->u.s.len, &d->lowered, &d->tokens, &ntok))
        return HERALD_ENOMEM;
    if (!ntok) return 0;
    d->length = ntok > UINT32_MAX ? UINT32_MAX : (uint32_t)ntok;
    qsort(d->tokens, ntok, sizeof *d->tokens, token_cmp);
    d->terms = malloc(ntok * sizeof *d->terms);
    if (!d->terms) return HERALD_ENOMEM;
    for (size_t i = 0; i < ntok; i++) {
        if (d->nterms && !token_cmp(&d->tokens[i], &(hd_fts_token){d->terms[d->nterms - 1].p,
                                                                    d->terms[d->nterms - 1].len})) {
            d->terms[d->nterms - 1].tf++;
            continue;
        }
        d->terms[d->nterms++] = (term_count){d->tokens[i].p, d->tokens[i].len, 1};
    }
    herald_value undef = herald_undefined();
    d->fend = malloc((ix->def->nfilter_fields + 1) * sizeof *d->fend);
    if (!d->fend) return HERALD_ENOMEM;
    for (size_t i = 0; i < ix->def->nfilter_fields; i++) {
        const herald_value *v = herald_value_path(doc, ix->def->filter_fields[i]);
        hd__key_encode(&d->filters, v ? v : &undef);
        d->fend[d->nfields++] = d->filters.len;
    }
    const herald_value *ct = herald_object_get(doc, "_creationTime");
    hd_buf cb = HD_BUF_INIT;
    hd__key_encode(&cb, ct ? ct : &undef);
    if (!cb.failed && cb.len == 9) memcpy(d->ct, cb.p + 1, 8);
    hd__buf_free(&cb);
    return d->filters.failed ? HERALD_ENOMEM : 0;
}

static void full_key(hd_buf *b, uint32_t iid, const term_count *t, const hd_buf *filters,
                     const uint8_t *id)
{
    uint8_t iidb[4];
    hd__put_be32(iidb, iid);
    b->len = 0;
    hd__buf_append(b, iidb, 4);
    hd__buf_append(b, t->p, t->len);
    hd__buf_byte(b, 0);
    hd__buf_append(b, filters->p, filters->len);
    hd__buf_append(b, id, HERALD_ID_BYTES);
}

static void posting_value(hd_buf *b, const term_count *t, const doc_postings *d, bool cut)
{
    uint8_t v[HD_FTS_VALUE_BYTES];
    hd__put_be32(v, t->tf);
    hd__put_be32(v + 4, d->length);
    memcpy(v + 8, d->ct, 8);
    b->len = 0;
    hd__buf_append(b, v, sizeof v);
    if (cut) hd__buf_append(b, d->filters.p, d->filters.len);
}

bool hd__fts_full_key(const MDB_val *k, const MDB_val *v, hd_buf *out)
{
    const uint8_t *p = k->mv_data;
    out->len = 0;
    if (k->mv_size < 4 + 1 + HERALD_ID_BYTES || v->mv_size < HD_FTS_VALUE_BYTES) return false;
    if (k->mv_size < HD_FTS_CUT + HERALD_ID_BYTES) {
        hd__buf_append(out, p, k->mv_size);
        return !out->failed;
    }
    const uint8_t *end = memchr(p + 4, 0, k->mv_size - 4 - HERALD_ID_BYTES);
    if (!end) return false;
    size_t head = (size_t)(end - p) + 1;
    hd__buf_append(out, p, head);
    hd__buf_append(out, (const uint8_t *)v->mv_data + HD_FTS_VALUE_BYTES,
                   v->mv_size - HD_FTS_VALUE_BYTES);
    hd__buf_append(out, p + k->mv_size - HERALD_ID_BYTES, HERALD_ID_BYTES);
    return !out->failed;
}

/*
 * The posting's keys by filter value, which are only ever recorded in
 * write sets, never stored: for each filter field i, index id · 0x00 ·
 * the byte i + 1 · the field's encoded value · term · 0x00 · id. No stored
 * key has a 0x00 after the index id (terms are not empty and hold no
 * 0x00), so these never meet the postings' own keys. A search whose
 * postings are not one range in term-first order (a term prefix, or a
 * filter on a field other than the leading ones) registers the range of
 * one filter value and its term here instead (search.c).
 */
static int record_by_filter(hd_keys *record, uint32_t iid, const term_count *t,
                            const doc_postings *d, const uint8_t *id)
{
    int rc = 0;
    hd_buf b = HD_BUF_INIT;
    uint8_t iidb[4];
    hd__put_be32(iidb, iid);
    for (size_t i = 0; i < d->nfields && !rc; i++) {
        size_t from = i ? d->fend[i - 1] : 0;
        b.len = 0;
        hd__buf_append(&b, iidb, 4);
        hd__buf_byte(&b, 0);
        hd__buf_byte(&b, (uint8_t)(i + 1));
        hd__buf_append(&b, d->filters.p + from, d->fend[i] - from);
        hd__buf_append(&b, t->p, t->len);
        hd__buf_byte(&b, 0);
        hd__buf_append(&b, id, HERALD_ID_BYTES);
        rc = b.failed ? HERALD_ENOMEM : hd__keys_push(record, iid, b.p, b.len);
    }
    hd__buf_free(&b);
    return rc;
}

/* Writes (add) or deletes one posting, and records its full key. */
static int put_posting(herald_txn *m, MDB_dbi dbi, const hd_fts_index *ix, const term_count *t,
                       const doc_postings *d, const uint8_t *id, bool add, hd_keys *record,
                       herald_error *err)
{
    hd_buf key = HD_BUF_INIT, val = HD_BUF_INIT;
    full_key(&key, ix->id, t, &d->filters, id);
    bool cut = key.len >= HD_FTS_CUT + HERALD_ID_BYTES;
    posting_value(&val, t, d, cut);
    int rc = 0;
    if (key.failed || val.failed || (record && hd__keys_push(record, ix->id, key.p, key.len)) ||
        (record && record_by_filter(record, ix->id, t, d, id))) {
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        goto done;
    }
    if (cut) {
        memcpy(key.p + HD_FTS_CUT, id, HERALD_ID_BYTES);
        key.len = HD_FTS_CUT + HERALD_ID_BYTES;
    }
    MDB_val k = {key.len, key.p}, v = {val.len, val.p};
    rc = add ? mdb_put(m->txn, dbi, &k, &v, 0) : mdb_del(m->txn, dbi, &k, NULL);
    if (rc == MDB_NOTFOUND && !add) rc = 0;
    if (rc) rc = hd__mdb_fail(err, rc, add ? "writing a posting" : "removing a posting");
done:
    hd__buf_free(&key);
    hd__buf_free(&val);
    return rc;
}

static int term_cmp(const term_count *a, const term_count *b)
{
    int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Moves one document's postings in one index from `od` to `nd`. */
static int write_index(herald_txn *m, MDB_dbi dbi, const hd_fts_index *ix, const uint8_t *id,
                       const doc_postings *od, const doc_postings *nd, hd_keys *removed,
                       hd_keys *added, herald_error *err)
{
    int rc = 0;
    bool same_filters = od->filters.len == nd->filters.len &&
                        (!nd->filters.len || !memcmp(od->filters.p, nd->filters.p, nd->filters.len));
    size_t i = 0, j = 0;
    while (!rc && (i < od->nterms || j < nd->nterms)) {
        int c;
        if (!same_filters)
            c = i < od->nterms ? -1 : 1; /* every key differs: all out, then all in */
        else if (i == od->nterms)
            c = 1;
        else if (j == nd->nterms)
            c = -1;
        else
            c = term_cmp(&od->terms[i], &nd->terms[j]);
        if (c < 0) {
            rc = put_posting(m, dbi, ix, &od->terms[i++], od, id, false, removed, err);
        } else if (c > 0) {
            rc = put_posting(m, dbi, ix, &nd->terms[j++], nd, id, true, added, err);
        } else {
            /* Same key: rewrite only when what relevance reads changed. */
            const term_count *a = &od->terms[i++], *b = &nd->terms[j++];
            if (a->tf == b->tf && od->length == nd->length && !memcmp(od->ct, nd->ct, 8)) continue;
            hd_buf key = HD_BUF_INIT;
            full_key(&key, ix->id, a, &od->filters, id);
            if (key.failed || (removed && hd__keys_push(removed, ix->id, key.p, key.len)) ||
                (removed && record_by_filter(removed, ix->id, a, od, id)))
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            hd__buf_free(&key);
            if (!rc) rc = put_posting(m, dbi, ix, b, nd, id, true, added, err);
        }
    }
    return rc;
}

int hd__fts_write(herald_txn *m, const struct hd_table *tab, const uint8_t id[HERALD_ID_BYTES],
                  const herald_value *old, const herald_value *doc, herald_error *err)
{
    const hd_fts *f = m->s->fts;
    if (!f) return 0;
    for (size_t x = 0; x < f->n; x++) {
        const hd_fts_index *ix = &f->v[x];
        if (ix->table_number != tab->number) continue;
        if (!f->has_dbi || !ix->built)
            return herald_fail(err, HERALD_EBUSY, "search index `%s` is not built", ix->def->name);
        doc_postings od, nd;
        int rc = postings_of(ix, old, &od);
        if (!rc) rc = postings_of(ix, doc, &nd);
        else
            nd = (doc_postings){0};
        if (rc) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        if (!rc) rc = write_index(m, f->dbi, ix, id, &od, &nd, &m->removed, &m->added, err);
        postings_free(&od);
        postings_free(&nd);
        if (rc) return rc;
    }
    return 0;
}

/* ---- registry and building ---- */

void hd__fts_free(hd_fts *f)
{
    if (!f) return;
    free(f->v);
    free(f);
}

const hd_fts_index *hd__fts_index(const hd_fts *f, const char *table, const char *name)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (!strcmp(f->v[i].table, table) && !strcmp(f->v[i].def->name, name)) return &f->v[i];
    return NULL;
}

bool hd__fts_dbi(const hd_fts *f, MDB_dbi *out)
{
    if (!f || !f->has_dbi) return false;
    *out = f->dbi;
    return true;
}

static void fingerprint(hd_buf *b, uint32_t id, const herald_search_index_def *def)
{
    uint8_t idb[4];
    hd__put_be32(idb, id);
    hd__buf_append(b, idb, 4);
    hd__buf_str(b, FTS_FORMAT);
    hd__buf_byte(b, 0);
    hd__buf_str(b, def->search_field);
    hd__buf_byte(b, 0);
    for (size_t i = 0; i < def->nfilter_fields; i++) {
        hd__buf_str(b, def->filter_fields[i]);
        hd__buf_byte(b, 0);
    }
}

/*
 * The next index id: the same "next_index" counter of meta that store.c
 * uses for indexes (u32 big-endian, starting at 1), so that search index
 * ids and index ids never meet in a read or write set.
 */
static int next_index_id(herald_store *s, MDB_txn *txn, uint32_t *out)
{
    MDB_val k = {10, "next_index"}, v;
    uint32_t n = 1;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 4)
        n = hd__get_be32(v.mv_data);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    *out = n;
    uint8_t b[4];
    hd__put_be32(b, n + 1);
    v = (MDB_val){4, b};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Writes the postings of every document of the index's table. */
static int build(herald_store *s, MDB_txn *txn, MDB_dbi dbi, const hd_fts_index *ix,
                 herald_error *err)
{
    herald_txn t = {.s = s, .txn = txn};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->docs, &cur);
    if (rc) return hd__mdb_fail(err, rc, "building a search index");
    uint8_t prefix[4];
    hd__put_be32(prefix, ix->table_number);
    MDB_val k = {4, prefix}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != HERALD_ID_BYTES || memcmp(k.mv_data, prefix, 4)) break;
        uint8_t id[HERALD_ID_BYTES];
        memcpy(id, k.mv_data, HERALD_ID_BYTES);
        herald_value doc;
        if ((rc = hd__doc_decode(id, &v, &doc, err))) break;
        doc_postings none = {.filters = HD_BUF_INIT}, nd;
        rc = postings_of(ix, &doc, &nd);
        if (rc) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
        if (!rc) rc = write_index(&t, dbi, ix, id, &none, &nd, NULL, NULL, err);
        postings_free(&nd);
        herald_value_free(&doc);
        if (rc) break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (rc > 0) rc = hd__mdb_fail(err, rc, "building a search index");
    return rc;
}

/* Deletes the registry entries and postings of search indexes not in `f`. */
static int drop_unused(herald_store *s, MDB_txn *txn, const hd_fts *f)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->meta, &cur);
    if (rc) return rc;
    MDB_val k = {2, "s:"}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;) {
        if (k.mv_size < 2 || memcmp(k.mv_data, "s:", 2) != 0) break;
        uint32_t iid = v.mv_size >= 4 ? hd__get_be32(v.mv_data) : 0;
        bool used = false;
        for (size_t i = 0; i < f->n && !used; i++)
            used = f->v[i].id == iid;
        if (used) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        uint8_t prefix[4];
        hd__put_be32(prefix, iid);
        if ((rc = hd__delete_prefix(txn, f->dbi, prefix, 4))) break;
        if ((rc = mdb_cursor_del(cur, 0))) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Finds (or, writable, registers and builds) one search index. */
static int load_one(herald_store *s, MDB_txn *txn, hd_fts *f, hd_fts_index *ix, bool writable,
                    herald_error *err)
{
    char key[600];
    snprintf(key, sizeof key, "s:%s/%s", ix->table, ix->def->name);
    MDB_val k = {strlen(key), key}, v;
    hd_buf want = HD_BUF_INIT;
    fingerprint(&want, 0, ix->def);
    if (want.failed) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == want.len &&
        !memcmp((uint8_t *)v.mv_data + 4, want.p + 4, want.len - 4)) {
        ix->id = hd__get_be32(v.mv_data);
        ix->built = f->has_dbi;
        hd__buf_free(&want);
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND) {
        hd__buf_free(&want);
        return hd__mdb_fail(err, rc, "reading the search index registry");
    }
    if (!writable) { /* searched, it says how to build it */
        hd__buf_free(&want);
        return 0;
    }
    /* New, or defined otherwise: a new id; drop_unused() removes the old postings. */
    if ((rc = next_index_id(s, txn, &ix->id))) goto mdb_fail;
    hd__put_be32(want.p, ix->id);
    v = (MDB_val){want.len, want.p};
    if ((rc = mdb_put(txn, s->meta, &k, &v, 0))) goto mdb_fail;
    hd__buf_free(&want);
    ix->built = true;
    return build(s, txn, f->dbi, ix, err);
mdb_fail:
    hd__buf_free(&want);
    return hd__mdb_fail(err, rc, "registering a search index");
}

int hd__fts_load(herald_store *s, MDB_txn *txn, const struct hd_table *tables, size_t ntables,
                 bool writable, hd_fts **out, herald_error *err)
{
    *out = NULL;
    hd_fts *f = calloc(1, sizeof *f);
    if (!f) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < ntables; i++)
        n += tables[i].def->nsearch_indexes;
    f->v = calloc(n ? n : 1, sizeof *f->v);
    if (!f->v) {
        hd__fts_free(f);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    int rc = mdb_dbi_open(txn, "fts", writable ? MDB_CREATE : 0, &f->dbi);
    f->has_dbi = rc == 0;
    if (rc && !(rc == MDB_NOTFOUND && !writable)) {
        hd__fts_free(f);
        return hd__mdb_fail(err, rc, "opening the search indexes");
    }
    rc = 0;
    for (size_t i = 0; i < ntables && !rc; i++) {
        const herald_table_def *def = tables[i].def;
        for (size_t j = 0; j < def->nsearch_indexes && !rc; j++) {
            hd_fts_index *ix = &f->v[f->n++];
            *ix = (hd_fts_index){.table_number = tables[i].number,
                                 .table = def->name,
                                 .def = &def->search_indexes[j]};
            rc = load_one(s, txn, f, ix, writable, err);
        }
    }
    if (!rc && writable && (rc = drop_unused(s, txn, f)))
        rc = hd__mdb_fail(err, rc, "dropping a search index");
    if (rc) {
        hd__fts_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- herald check ---- */

static void report(void (*problem)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(void (*problem)(void *, const char *), void *ctx, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    problem(ctx, line);
}

int hd__fts_check(herald_txn *t, void (*problem)(void *ctx, const char *line), void *ctx,
                  herald_error *err)
{
    const hd_fts *f = t->s->fts;
    if (!f || !f->has_dbi) return 0;
    uint64_t want = 0, seen = 0;
    int rc = 0;
    hd_buf key = HD_BUF_INIT, val = HD_BUF_INIT;
    MDB_cursor *cur = NULL;
    /* Every document has exactly its postings, with their values. */
    for (size_t x = 0; x < f->n && !rc; x++) {
        const hd_fts_index *ix = &f->v[x];
        if (!ix->built) continue;
        if ((rc = mdb_cursor_open(t->txn, t->s->docs, &cur))) break;
        uint8_t prefix[4];
        hd__put_be32(prefix, ix->table_number);
        MDB_val k = {4, prefix}, v;
        int mrc;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && !rc;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != HERALD_ID_BYTES || memcmp(k.mv_data, prefix, 4)) break;
            uint8_t id[HERALD_ID_BYTES];
            char idtext[HERALD_ID_CHARS + 1];
            memcpy(id, k.mv_data, HERALD_ID_BYTES);
            hd__id_format(id, idtext);
            herald_value doc;
            if ((rc = hd__doc_decode(id, &v, &doc, err))) break;
            doc_postings d;
            if (postings_of(ix, &doc, &d)) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
            for (size_t i = 0; !rc && i < d.nterms; i++) {
                full_key(&key, ix->id, &d.terms[i], &d.filters, id);
                bool cut = key.len >= HD_FTS_CUT + HERALD_ID_BYTES;
                posting_value(&val, &d.terms[i], &d, cut);
                if (key.failed || val.failed) {
                    rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
                    break;
                }
                if (cut) {
                    memcpy(key.p + HD_FTS_CUT, id, HERALD_ID_BYTES);
                    key.len = HD_FTS_CUT + HERALD_ID_BYTES;
                }
                want++;
                MDB_val pk = {key.len, key.p}, pv;
                int g = mdb_get(t->txn, f->dbi, &pk, &pv);
                if (g == MDB_NOTFOUND)
                    report(problem, ctx, "%s: search index %s lacks the posting of `%.*s` for %s",
                           ix->table, ix->def->name, (int)d.terms[i].len, d.terms[i].p, idtext);
                else if (g)
                    rc = hd__mdb_fail(err, g, "checking a search index");
                else if (pv.mv_size != val.len || memcmp(pv.mv_data, val.p, val.len))
                    report(problem, ctx, "%s: search index %s has a wrong posting of `%.*s` for %s",
                           ix->table, ix->def->name, (int)d.terms[i].len, d.terms[i].p, idtext);
            }
            postings_free(&d);
            herald_value_free(&doc);
        }
        mdb_cursor_close(cur);
        cur = NULL;
        if (!rc && mrc && mrc != MDB_NOTFOUND) rc = hd__mdb_fail(err, mrc, "checking a search index");
    }
    /* Every posting belongs to a search index and an existing document; none is left over. */
    if (!rc && (rc = mdb_cursor_open(t->txn, f->dbi, &cur))) rc = hd__mdb_fail(err, rc, "check");
    MDB_val k, v;
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0 && !rc; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        seen++;
        if (k.mv_size < 4 + 2 + HERALD_ID_BYTES) {
            report(problem, ctx, "posting of %zu bytes is too short", k.mv_size);
            continue;
        }
        uint32_t iid = hd__get_be32(k.mv_data);
        const hd_fts_index *ix = NULL;
        for (size_t x = 0; x < f->n && !ix; x++)
            if (f->v[x].id == iid) ix = &f->v[x];
        const uint8_t *id = (const uint8_t *)k.mv_data + k.mv_size - HERALD_ID_BYTES;
        char idtext[HERALD_ID_CHARS + 1];
        hd__id_format(id, idtext);
        MDB_val dk = {HERALD_ID_BYTES, (void *)id}, dv;
        if (!ix)
            report(problem, ctx, "posting for document %s belongs to unknown search index %u",
                   idtext, iid);
        else if (hd__get_be32(id) != ix->table_number || mdb_get(t->txn, t->s->docs, &dk, &dv))
            report(problem, ctx, "%s: search index %s has a posting for missing document %s",
                   ix->table, ix->def->name, idtext);
    }
    if (cur) mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND) rc = hd__mdb_fail(err, mrc, "check");
    if (!rc && seen != want)
        report(problem, ctx, "the search indexes hold %llu postings but the documents call for %llu",
               (unsigned long long)seen, (unsigned long long)want);
    hd__buf_free(&key);
    hd__buf_free(&val);
    if (rc > 0) rc = hd__mdb_fail(err, rc, "checking a search index");
    return rc;
}
