/*
 * Full-text search (search.h): reads the postings of the query's terms
 * (fts.h), scores them with BM25 and returns the best documents. It must
 * never read the table, nor return more than HD_SEARCH_MAX_RESULTS
 * documents, nor leave out of the read set anything its result depends on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"
#include "search.h"
#include "store_priv.h"

#define BM25_K1 1.2
#define BM25_B  0.75

/* One posting read: a (document, query term) pair. */
typedef struct hit {
    uint8_t id[HERALD_ID_BYTES];
    uint8_t ct[8];
    uint32_t term; /* query term index */
    uint32_t slot; /* stored term (several per prefix term) */
    uint32_t tf, dl;
} hit;

typedef struct ranked {
    const uint8_t *id, *ct;
    double score;
} ranked;

typedef struct reader {
    herald_txn *t;
    MDB_dbi dbi;
    uint32_t iid;
    /* Wanted encoding of each filter field, NULL where unconstrained. */
    const hd_buf *want;
    size_t nfields;
    hit *hits;
    size_t nhits, cap;
    uint32_t *df; /* per slot */
    size_t nslots, capslots;
    herald_read_set *rs;
    herald_error *err;
} reader;

static const herald_search_index_def *find_index(const herald_table_def *t, const char *name)
{
    for (size_t i = 0; i < t->nsearch_indexes; i++)
        if (!strcmp(t->search_indexes[i].name, name)) return &t->search_indexes[i];
    return NULL;
}

static const char *str_of(const herald_value *spec, const char *key)
{
    const herald_value *v = herald_object_get(spec, key);
    return v && v->type == HERALD_STRING ? v->u.s.ptr : NULL;
}

static int oom(herald_error *err)
{
    return herald_fail(err, HERALD_ENOMEM, "out of memory");
}

static int new_slot(reader *r)
{
    if (r->nslots == r->capslots) {
        size_t cap = r->capslots ? r->capslots * 2 : 16;
        uint32_t *d = realloc(r->df, cap * sizeof *d);
        if (!d) return oom(r->err);
        r->df = d;
        r->capslots = cap;
    }
    r->df[r->nslots++] = 0;
    return 0;
}

/* True when the filter values at `p` (n bytes) have every wanted value. */
static bool filters_match(const reader *r, const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < r->nfields; k++) {
        const hd_buf *w = &r->want[k];
        if (w->p) {
            if (n < w->len || memcmp(p, w->p, w->len)) return false;
            p += w->len;
            n -= w->len;
            continue;
        }
        bool later = false;
        for (size_t j = k + 1; j < r->nfields; j++)
            later |= r->want[j].p != NULL;
        if (!later) return true;
        herald_value skip;
        size_t used;
        if (hd__key_decode(p, n, &used, &skip)) return false;
        herald_value_free(&skip);
        p += used;
        n -= used;
    }
    return true;
}

/*
 * Reads every posting whose full key starts with `prefix` into the hits of
 * query term `term` and records the range in the read set: that prefix, or
 * `registered` (not NULL), its keys by filter value (fts.c). An exact term has
 * one slot; a prefix term a slot per stored term it covers.
 */
static int read_range(reader *r, const uint8_t *prefix, size_t plen, uint32_t term,
                      const hd_buf *registered)
{
    int rc = 0;
    MDB_cursor *cur = NULL;
    hd_buf full = HD_BUF_INIT, hi = HD_BUF_INIT;
    size_t spl = plen < HD_FTS_CUT ? plen : HD_FTS_CUT; /* stored keys keep this much */
    const uint8_t *last_term = NULL;
    size_t last_len = 0;
    uint8_t last_buf[4 + HD_FTS_MAX_TERM + 1];
    if ((rc = mdb_cursor_open(r->t->txn, r->dbi, &cur))) {
        rc = hd__mdb_fail(r->err, rc, "reading postings");
        goto done;
    }
    MDB_val k = {spl, (void *)prefix}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < spl || memcmp(k.mv_data, prefix, spl)) break;
        if (!hd__fts_full_key(&k, &v, &full)) {
            rc = full.failed ? oom(r->err)
                             : herald_fail(r->err, HERALD_ECORRUPT, "malformed posting");
            goto done;
        }
        if (full.len < plen || memcmp(full.p, prefix, plen)) continue;
        const uint8_t *end = memchr(full.p + 4, 0, full.len - 4 - HERALD_ID_BYTES);
        if (!end) {
            rc = herald_fail(r->err, HERALD_ECORRUPT, "malformed posting");
            goto done;
        }
        size_t tl = (size_t)(end - full.p) + 1; /* iid, term and its 0 */
        if (!last_term || tl != last_len || memcmp(last_term, full.p, tl)) {
            if (tl > sizeof last_buf) {
                rc = herald_fail(r->err, HERALD_ECORRUPT, "malformed posting");
                goto done;
            }
            memcpy(last_buf, full.p, tl);
            last_term = last_buf;
            last_len = tl;
            if ((rc = new_slot(r))) goto done;
        }
        const uint8_t *fv = full.p + tl;
        if (!filters_match(r, fv, full.len - tl - HERALD_ID_BYTES)) continue;
        if (r->nhits == HD_SEARCH_MAX_POSTINGS) {
            rc = herald_fail(r->err, HERALD_ELIMIT,
                             "the search would read more than %d postings; use more specific "
                             "terms or a filter",
                             HD_SEARCH_MAX_POSTINGS);
            goto done;
        }
        if (r->nhits == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 64;
            hit *h = realloc(r->hits, cap * sizeof *h);
            if (!h) {
                rc = oom(r->err);
                goto done;
            }
            r->hits = h;
            r->cap = cap;
        }
        hit *h = &r->hits[r->nhits++];
        const uint8_t *val = v.mv_data;
        memcpy(h->id, full.p + full.len - HERALD_ID_BYTES, HERALD_ID_BYTES);
        memcpy(h->ct, val + 8, 8);
        h->term = term;
        h->slot = (uint32_t)(r->nslots - 1);
        h->tf = hd__get_be32(val);
        h->dl = hd__get_be32(val + 4);
        r->df[h->slot]++;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
    if (rc) {
        rc = hd__mdb_fail(r->err, rc, "reading postings");
        goto done;
    }
    if (r->rs) {
        const uint8_t *lo = registered ? registered->p : prefix;
        size_t lo_len = registered ? registered->len : plen;
        hd__buf_append(&hi, lo, lo_len);
        hd__key_successor(&hi);
        if (hi.failed || hd__read_set_add(r->rs, r->iid, lo, lo_len, hi.p, hi.len))
            rc = oom(r->err);
    }
done:
    if (cur) mdb_cursor_close(cur);
    hd__buf_free(&full);
    hd__buf_free(&hi);
    return rc;
}

static int rank_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    int c = memcmp(y->ct, x->ct, 8); /* newer first */
    if (c) return c;
    return memcmp(x->id, y->id, HERALD_ID_BYTES);
}

/* Ids are random past their 4-byte table number: 8 of those bytes hash them. */
static uint64_t id_hash(const uint8_t *id)
{
    uint64_t h;
    memcpy(&h, id + 4, 8);
    return h;
}

/*
 * Scores the hits into one entry per document (in no particular order).
 * Hits come in query-term order, so each document's score adds its terms'
 * contributions in that order; the last term (the prefix) adds the best of
 * the words it covered. Documents are grouped through a hash table, not by
 * sorting: this runs once per posting read.
 */
static ranked *score(const reader *r, size_t *ndocs, herald_error *err)
{
    size_t cap = 16;
    while (cap < r->nhits * 2)
        cap *= 2;
    uint32_t *slot = malloc(cap * sizeof *slot); /* doc index + 1, 0 = empty */
    uint32_t *doc_of = malloc((r->nhits ? r->nhits : 1) * sizeof *doc_of);
    ranked *docs = malloc((r->nhits ? r->nhits : 1) * sizeof *docs);
    double *best = malloc((r->nhits ? r->nhits : 1) * sizeof *best);
    uint32_t *dl = malloc((r->nhits ? r->nhits : 1) * sizeof *dl);
    if (!slot || !doc_of || !docs || !best || !dl) {
        free(docs);
        docs = NULL;
        oom(err);
        goto done;
    }
    memset(slot, 0, cap * sizeof *slot);
    size_t n = 0;
    double total_dl = 0;
    for (size_t i = 0; i < r->nhits; i++) {
        const hit *h = &r->hits[i];
        size_t j = id_hash(h->id) & (cap - 1);
        while (slot[j] && memcmp(docs[slot[j] - 1].id, h->id, HERALD_ID_BYTES))
            j = (j + 1) & (cap - 1);
        if (!slot[j]) {
            docs[n] = (ranked){h->id, h->ct, 0};
            best[n] = 0;
            dl[n] = h->dl;
            total_dl += h->dl;
            slot[j] = (uint32_t)++n;
        }
        doc_of[i] = slot[j] - 1;
    }
    double avgdl = n && total_dl > 0 ? total_dl / (double)n : 1;
    uint32_t last_term = r->nhits ? r->hits[r->nhits - 1].term : 0;
    for (size_t i = 0; i < r->nhits; i++) {
        const hit *x = &r->hits[i];
        double df = r->df[x->slot];
        double idf = log(1 + ((double)n - df + 0.5) / (df + 0.5));
        double norm = BM25_K1 * (1 - BM25_B + BM25_B * (double)dl[doc_of[i]] / avgdl);
        double c = idf * (double)x->tf * (BM25_K1 + 1) / ((double)x->tf + norm);
        if (x->term != last_term)
            docs[doc_of[i]].score += c; /* a whole term: one posting per document */
        else if (c > best[doc_of[i]])
            best[doc_of[i]] = c;
    }
    for (size_t d = 0; d < n; d++)
        docs[d].score += best[d];
    *ndocs = n;
done:
    free(slot);
    free(doc_of);
    free(best);
    free(dl);
    return docs;
}

/* Moves the best `k` of `n` documents, in rank order, to the front. */
static void top(ranked *docs, size_t n, size_t k)
{
    if (k >= n || k > n / 8) {
        qsort(docs, n, sizeof *docs, rank_cmp);
        return;
    }
    /* A heap of the best k so far, the worst of them on top. */
    for (size_t i = 0; i < n; i++) {
        ranked x = docs[i];
        size_t len = i < k ? i : k, at;
        if (i < k) {
            at = len; /* sift up */
            while (at && rank_cmp(&docs[(at - 1) / 2], &x) < 0) {
                docs[at] = docs[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            docs[at] = x;
            continue;
        }
        if (rank_cmp(&x, &docs[0]) >= 0) continue; /* no better than the worst kept */
        at = 0; /* replace the top and sift down */
        for (;;) {
            size_t c = 2 * at + 1;
            if (c >= k) break;
            if (c + 1 < k && rank_cmp(&docs[c + 1], &docs[c]) > 0) c++;
            if (rank_cmp(&docs[c], &x) <= 0) break;
            docs[at] = docs[c];
            at = c;
        }
        docs[at] = x;
    }
    qsort(docs, k, sizeof *docs, rank_cmp);
}

/* Reads a returned document and adds its by_id entry to the read set. */
static int read_doc(herald_txn *t, uint32_t by_id, const uint8_t *id, herald_value *out,
                    size_t *bytes, herald_read_set *rs, herald_error *err)
{
    MDB_val k = {HERALD_ID_BYTES, (void *)id}, v;
    int rc = mdb_get(t->txn, t->s->docs, &k, &v);
    if (rc == MDB_NOTFOUND) return herald_fail(err, HERALD_ECORRUPT, "posting without its document");
    if (rc) return hd__mdb_fail(err, rc, "reading a document");
    if ((*bytes += v.mv_size) > HD_SEARCH_MAX_BYTES)
        return herald_fail(err, HERALD_ELIMIT,
                           "the search's results are larger than %d bytes; take fewer",
                           HD_SEARCH_MAX_BYTES);
    if ((rc = hd__doc_decode(id, &v, out, err))) return rc;
    if (rs) {
        uint8_t lo[HD_IID_BYTES + HERALD_ID_BYTES + 1];
        hd__put_be32(lo, by_id);
        memcpy(lo + HD_IID_BYTES, id, HERALD_ID_BYTES);
        lo[sizeof lo - 1] = 0;
        if (hd__read_set_add(rs, by_id, lo, sizeof lo - 1, lo, sizeof lo)) {
            herald_value_free(out);
            return oom(err);
        }
    }
    return 0;
}

int hd__search_run(herald_txn *t, const herald_schema *schema, const herald_value *spec,
                   herald_value *result, herald_read_set *rs, herald_error *err)
{
    *result = herald_undefined();
    const char *table = str_of(spec, "table"), *index = str_of(spec, "index");
    const herald_value *text = herald_object_get(spec, "search");
    const herald_value *filters = herald_object_get(spec, "filters");
    const herald_value *take = herald_object_get(spec, "take");
    bool first = herald_object_get(spec, "first") != NULL;
    const herald_table_def *td = table ? herald_schema_table(schema, table) : NULL;
    if (!td) return herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", table ? table : "");
    const herald_search_index_def *si = index ? find_index(td, index) : NULL;
    if (!si)
        return herald_fail(err, HERALD_ENOTFOUND, "table `%s` has no search index `%.64s`", table,
                           index ? index : "");
    if (!text || text->type != HERALD_STRING)
        return herald_fail(err, HERALD_EINVAL, "withSearchIndex needs q:search(\"%s\", text)",
                           si->search_field);
    const herald_value *field = herald_object_get(spec, "field");
    if (!field || field->type != HERALD_STRING || strcmp(field->u.s.ptr, si->search_field))
        return herald_fail(err, HERALD_EINVAL, "search index `%s` searches `%s`", index,
                           si->search_field);
    size_t limit = HD_SEARCH_MAX_RESULTS;
    if (take) {
        if (take->type != HERALD_FLOAT64 || take->u.f < 0 || take->u.f > HD_SEARCH_MAX_RESULTS ||
            take->u.f != (double)(size_t)take->u.f)
            return herald_fail(err, HERALD_EINVAL, "take of a search: 0 to %d",
                               HD_SEARCH_MAX_RESULTS);
        limit = (size_t)take->u.f;
    }
    if (first) limit = 1;
    if (filters) {
        if (filters->type != HERALD_ARRAY) return herald_fail(err, HERALD_EINVAL, "bad filters");
        if (filters->u.arr.len > HD_SEARCH_MAX_FILTERS)
            return herald_fail(err, HERALD_EINVAL, "a search has at most %d filters (%zu given)",
                               HD_SEARCH_MAX_FILTERS, filters->u.arr.len);
        for (size_t i = 0; i < filters->u.arr.len; i++) {
            const herald_value *p = &filters->u.arr.items[i];
            if (p->type != HERALD_ARRAY || p->u.arr.len != 2 ||
                p->u.arr.items[0].type != HERALD_STRING)
                return herald_fail(err, HERALD_EINVAL, "bad search filter");
            size_t k = 0;
            while (k < si->nfilter_fields &&
                   strcmp(si->filter_fields[k], p->u.arr.items[0].u.s.ptr))
                k++;
            if (k == si->nfilter_fields)
                return herald_fail(err, HERALD_EINVAL,
                                   "`%.64s` is not a filter field of search index `%s`",
                                   p->u.arr.items[0].u.s.ptr, index);
        }
    }
    char *lowered = NULL;
    hd_fts_token *tokens = NULL;
    size_t ntok = 0;
    if (hd__fts_tokenize(text->u.s.ptr, text->u.s.len, &lowered, &tokens, &ntok)) return oom(err);
    int rc = 0;
    hd_buf *want = NULL;
    reader r = {.t = t, .rs = rs, .err = err};
    hd_buf prefix = HD_BUF_INIT;
    ranked *docs = NULL;
    size_t ndocs = 0;
    if (!ntok) {
        rc = herald_fail(err, HERALD_EINVAL, "the search text has no terms (letters or digits)");
        goto done;
    }
    if (ntok > HD_SEARCH_MAX_TERMS) {
        rc = herald_fail(err, HERALD_EINVAL, "a search text has at most %d terms (%zu given)",
                         HD_SEARCH_MAX_TERMS, ntok);
        goto done;
    }
    const hd_fts_index *fx = hd__fts_index(t->s->fts, table, index);
    if (!fx || !fx->built || !hd__fts_dbi(t->s->fts, &r.dbi)) {
        rc = herald_fail(err, HERALD_EBUSY,
                         "search index `%s` of `%s` is not built yet: open the data folder for "
                         "writing once (herald serve, schema apply) to build it",
                         index, table);
        goto done;
    }
    r.iid = fx->id;
    const hd_table *tab = hd__table_by_name(t->s, table);
    if (!tab) {
        rc = herald_fail(err, HERALD_ENOTFOUND, "no table `%.64s`", table);
        goto done;
    }
    /* The wanted value of each filter field; two different ones match nothing. */
    r.nfields = si->nfilter_fields;
    want = calloc(r.nfields ? r.nfields : 1, sizeof *want);
    if (!want) {
        rc = oom(err);
        goto done;
    }
    r.want = want;
    bool contradiction = false;
    for (size_t i = 0; filters && i < filters->u.arr.len; i++) {
        const herald_value *p = &filters->u.arr.items[i];
        size_t k = 0;
        while (strcmp(si->filter_fields[k], p->u.arr.items[0].u.s.ptr))
            k++;
        hd_buf enc = HD_BUF_INIT;
        hd__key_encode(&enc, &p->u.arr.items[1]);
        if (enc.failed) {
            rc = oom(err);
            goto done;
        }
        if (want[k].p && (want[k].len != enc.len || memcmp(want[k].p, enc.p, enc.len)))
            contradiction = true;
        hd__buf_free(&want[k]);
        want[k] = enc;
    }
    if (contradiction || limit == 0) goto results; /* the result is empty whatever is stored */
    /* Full terms: each once, and not the last one, which is read as a prefix. */
    const hd_fts_token *last = &tokens[ntok - 1];
    uint8_t iid[4];
    hd__put_be32(iid, fx->id);
    for (size_t i = 0; i + 1 < ntok && !rc; i++) {
        bool again = tokens[i].len == last->len && !memcmp(tokens[i].p, last->p, last->len);
        for (size_t j = 0; j < i && !again; j++)
            again = tokens[j].len == tokens[i].len && !memcmp(tokens[j].p, tokens[i].p, tokens[i].len);
        if (again) continue;
        prefix.len = 0;
        hd__buf_append(&prefix, iid, 4);
        hd__buf_append(&prefix, tokens[i].p, tokens[i].len);
        hd__buf_byte(&prefix, 0);
        /* Equality filters on the leading filter fields narrow the range. */
        for (size_t k = 0; k < r.nfields && want[k].p; k++)
            hd__buf_append(&prefix, want[k].p, want[k].len);
        /* A filter on a later field only: register by that filter value. */
        hd_buf byf = HD_BUF_INIT;
        for (size_t k = 1; r.nfields && !want[0].p && k < r.nfields; k++) {
            if (!want[k].p) continue;
            hd__buf_append(&byf, iid, 4);
            hd__buf_byte(&byf, 0);
            hd__buf_byte(&byf, (uint8_t)(k + 1));
            hd__buf_append(&byf, want[k].p, want[k].len);
            hd__buf_append(&byf, tokens[i].p, tokens[i].len);
            hd__buf_byte(&byf, 0);
            break;
        }
        if (prefix.failed || byf.failed)
            rc = oom(err);
        else
            rc = read_range(&r, prefix.p, prefix.len, (uint32_t)i, byf.len ? &byf : NULL);
        hd__buf_free(&byf);
    }
    if (rc) goto done;
    prefix.len = 0;
    hd__buf_append(&prefix, iid, 4);
    hd__buf_append(&prefix, last->p, last->len);
    if (prefix.failed) {
        rc = oom(err);
        goto done;
    }
    /* With an equality filter, the prefix's read set is narrower by filter
     * value (fts.c): that field's value, then the prefix. */
    hd_buf ff = HD_BUF_INIT;
    for (size_t k = 0; k < r.nfields; k++) {
        if (!want[k].p) continue;
        hd__buf_append(&ff, iid, 4);
        hd__buf_byte(&ff, 0);
        hd__buf_byte(&ff, (uint8_t)(k + 1));
        hd__buf_append(&ff, want[k].p, want[k].len);
        hd__buf_append(&ff, last->p, last->len);
        break;
    }
    if (ff.failed) rc = oom(err);
    if (!rc) rc = read_range(&r, prefix.p, prefix.len, (uint32_t)(ntok - 1), ff.len ? &ff : NULL);
    hd__buf_free(&ff);
    if (rc) goto done;
    if (!(docs = score(&r, &ndocs, err))) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    top(docs, ndocs, limit);
    if (ndocs > limit) ndocs = limit;
results:;
    size_t bytes = 0;
    if (first) {
        *result = herald_null();
        if (ndocs) rc = read_doc(t, tab->indexes[0].id, docs[0].id, result, &bytes, rs, err);
        if (rc) *result = herald_undefined();
        goto done;
    }
    herald_array_init(result);
    for (size_t i = 0; i < ndocs && !rc; i++) {
        herald_value doc;
        if ((rc = read_doc(t, tab->indexes[0].id, docs[i].id, &doc, &bytes, rs, err))) break;
        if (herald_array_push(result, doc)) rc = oom(err);
    }
    if (rc) herald_value_free(result);
done:
    for (size_t k = 0; want && k < r.nfields; k++)
        hd__buf_free(&want[k]);
    free(want);
    free(r.hits);
    free(r.df);
    free(docs);
    hd__buf_free(&prefix);
    free(lowered);
    free(tokens);
    return rc;
}
