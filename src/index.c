/*
 * Index entries and index scans.
 *
 * The full key of a document in an index is: the index id (4 bytes), the
 * encoded values of the indexed fields, the encoded _creationTime, the
 * 20-byte document id. LMDB keys are at most 511 bytes, so when the
 * encoded values take HD_MAX_VALUES bytes or more the stored key keeps only
 * their first HD_MAX_VALUES bytes (then the id), and is exactly 511 bytes
 * long. Keys truncated to the same prefix may be stored out of full-key
 * order; a scan reads each such run whole, recomputes the full keys from
 * the documents and sorts the run. Every other pair of keys is stored in
 * full-key order (the encoding is prefix-free), so scans stay exact.
 *
 * This module must never report a read range narrower than what a scan
 * actually looked at.
 */
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"
#include "store_priv.h"

void hd__index_key(hd_buf *out, const hd_index *ix, const herald_value *doc,
                   const uint8_t id[HERALD_ID_BYTES])
{
    uint8_t iid[4];
    hd__put_be32(iid, ix->id);
    hd__buf_append(out, iid, 4);
    if (ix->kind != HD_INDEX_BY_ID) {
        herald_value undef = herald_undefined();
        for (size_t i = 0; i < ix->nfields; i++) {
            const herald_value *v = herald_value_path(doc, ix->fields[i]);
            hd__key_encode(out, v ? v : &undef);
        }
        const herald_value *ct = herald_object_get(doc, "_creationTime");
        hd__key_encode(out, ct ? ct : &undef);
    }
    hd__buf_append(out, id, HERALD_ID_BYTES);
}

/* The stored form of a full key (at most HD_MAX_KEY bytes); returns its length. */
static size_t stored_key(const uint8_t *full, size_t len, uint8_t out[HD_MAX_KEY])
{
    size_t values = len - HD_IID_BYTES - HERALD_ID_BYTES;
    if (values < HD_MAX_VALUES) {
        memcpy(out, full, len);
        return len;
    }
    memcpy(out, full, HD_IID_BYTES + HD_MAX_VALUES);
    memcpy(out + HD_IID_BYTES + HD_MAX_VALUES, full + len - HERALD_ID_BYTES, HERALD_ID_BYTES);
    return HD_MAX_KEY;
}

int hd__keys_push(hd_keys *k, uint32_t index_id, const uint8_t *key, size_t len)
{
    if (k->len == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 8;
        herald_write_key *v = realloc(k->v, cap * sizeof *v);
        if (!v) return HERALD_ENOMEM;
        k->v = v;
        k->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return HERALD_ENOMEM;
    memcpy(copy, key, len);
    k->v[k->len++] = (herald_write_key){index_id, copy, len};
    return 0;
}

void hd__keys_free(hd_keys *k)
{
    for (size_t i = 0; i < k->len; i++)
        free(k->v[i].key);
    free(k->v);
    *k = (hd_keys){0};
}

void hd__key_successor(hd_buf *b)
{
    while (b->len && b->p[b->len - 1] == 0xFF)
        b->len--;
    if (b->len) b->p[b->len - 1]++;
}

int hd__index_put(herald_txn *t, const hd_table *tab, const herald_value *doc,
                  const uint8_t id[HERALD_ID_BYTES], bool add, hd_keys *record, herald_error *err)
{
    for (size_t i = 0; i < tab->nindexes; i++) {
        const hd_index *ix = &tab->indexes[i];
        if (ix->kind == HD_INDEX_BY_ID) continue;
        hd_buf full = HD_BUF_INIT;
        hd__index_key(&full, ix, doc, id);
        if (full.failed || (record && hd__keys_push(record, ix->id, full.p, full.len))) {
            hd__buf_free(&full);
            return herald_fail(err, HERALD_ENOMEM, "out of memory");
        }
        uint8_t sk[HD_MAX_KEY];
        MDB_val k = {stored_key(full.p, full.len, sk), sk}, v = {0, NULL};
        hd__buf_free(&full);
        int rc = add ? mdb_put(t->txn, t->s->idx, &k, &v, 0) : mdb_del(t->txn, t->s->idx, &k, NULL);
        if (rc == MDB_NOTFOUND && !add) rc = 0; /* already absent: nothing to undo */
        if (rc)
            return hd__mdb_fail(err, rc,
                                add ? "writing an index entry" : "removing an index entry");
    }
    return 0;
}

/* ---- scans ---- */

struct hd_scan {
    herald_txn *t;
    const hd_table *tab;
    const hd_index *ix;
    MDB_cursor *cur;
    bool by_id, desc, has_hi, positioned, ended;
    hd_buf lo, hi;   /* full-key bounds */
    hd_buf slo, shi; /* stored-key bounds covering them */
    bool has_shi;
    hd_scan_entry *batch;
    size_t nbatch, pos, capbatch;
};

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

static void clear_batch(hd_scan *sc)
{
    for (size_t i = 0; i < sc->nbatch; i++) {
        free(sc->batch[i].key);
        herald_value_free(&sc->batch[i].doc);
    }
    sc->nbatch = sc->pos = 0;
}

int hd__scan_open(herald_txn *t, const hd_table *tab, const hd_index *ix, const uint8_t *lo,
                  size_t lo_len, const uint8_t *hi, size_t hi_len, bool desc, hd_scan **out,
                  herald_error *err)
{
    hd_scan *sc = calloc(1, sizeof *sc);
    if (!sc) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    sc->t = t;
    sc->tab = tab;
    sc->ix = ix;
    sc->desc = desc;
    sc->by_id = ix->kind == HD_INDEX_BY_ID;
    sc->has_hi = hi != NULL;
    hd__buf_append(&sc->lo, lo, lo_len);
    if (hi) hd__buf_append(&sc->hi, hi, hi_len);
    if (sc->by_id) {
        /* Stored keys are the ids; only this table's ids (its number prefix). */
        uint8_t prefix[4];
        hd__put_be32(prefix, tab->number);
        if (lo_len > HD_IID_BYTES)
            hd__buf_append(&sc->slo, lo + HD_IID_BYTES, lo_len - HD_IID_BYTES);
        else
            hd__buf_append(&sc->slo, prefix, 4);
        if (hi && hi_len > HD_IID_BYTES && hd__get_be32(hi) == ix->id) {
            hd__buf_append(&sc->shi, hi + HD_IID_BYTES, hi_len - HD_IID_BYTES);
        } else {
            hd__buf_append(&sc->shi, prefix, 4);
            hd__key_successor(&sc->shi);
        }
        sc->has_shi = true;
    } else {
        size_t cut = HD_IID_BYTES + HD_MAX_VALUES;
        hd__buf_append(&sc->slo, lo, lo_len < cut ? lo_len : cut);
        if (hi) {
            hd__buf_append(&sc->shi, hi, hi_len < cut ? hi_len : cut);
            if (hi_len >= cut) hd__key_successor(&sc->shi);
            sc->has_shi = true;
        }
    }
    int rc = mdb_cursor_open(t->txn, sc->by_id ? t->s->docs : t->s->idx, &sc->cur);
    if (rc || sc->lo.failed || sc->hi.failed || sc->slo.failed || sc->shi.failed) {
        hd__scan_close(sc);
        return rc ? hd__mdb_fail(err, rc, "opening a scan")
                  : herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    *out = sc;
    return 0;
}

void hd__scan_close(hd_scan *sc)
{
    if (!sc) return;
    clear_batch(sc);
    free(sc->batch);
    if (sc->cur) mdb_cursor_close(sc->cur);
    hd__buf_free(&sc->lo);
    hd__buf_free(&sc->hi);
    hd__buf_free(&sc->slo);
    hd__buf_free(&sc->shi);
    free(sc);
}

static bool in_stored_bounds(hd_scan *sc, const MDB_val *k)
{
    if (cmp_bytes(k->mv_data, k->mv_size, sc->slo.p, sc->slo.len) < 0) return false;
    if (sc->has_shi && cmp_bytes(k->mv_data, k->mv_size, sc->shi.p, sc->shi.len) >= 0) return false;
    return true;
}

/* Moves the cursor to the first (or, descending, last) stored key in bounds. */
static int position(hd_scan *sc, MDB_val *k, MDB_val *v)
{
    int rc;
    if (!sc->desc) {
        *k = (MDB_val){sc->slo.len, sc->slo.p};
        return mdb_cursor_get(sc->cur, k, v, sc->slo.len ? MDB_SET_RANGE : MDB_FIRST);
    }
    if (sc->has_shi) {
        *k = (MDB_val){sc->shi.len, sc->shi.p};
        rc = mdb_cursor_get(sc->cur, k, v, MDB_SET_RANGE);
        if (rc == 0) return mdb_cursor_get(sc->cur, k, v, MDB_PREV);
        if (rc != MDB_NOTFOUND) return rc;
    }
    return mdb_cursor_get(sc->cur, k, v, MDB_LAST);
}

static int push_entry(hd_scan *sc, const uint8_t *id, const MDB_val *stored_k, const MDB_val *docv,
                      herald_error *err)
{
    if (sc->nbatch == sc->capbatch) {
        size_t cap = sc->capbatch ? sc->capbatch * 2 : 4;
        hd_scan_entry *b = realloc(sc->batch, cap * sizeof *b);
        if (!b) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        sc->batch = b;
        sc->capbatch = cap;
    }
    hd_scan_entry *e = &sc->batch[sc->nbatch];
    int rc = hd__doc_decode(id, docv, &e->doc, err);
    if (rc) return rc;
    hd_buf full = HD_BUF_INIT;
    if (sc->by_id) {
        uint8_t iid[4];
        hd__put_be32(iid, sc->ix->id);
        hd__buf_append(&full, iid, 4);
        hd__buf_append(&full, id, HERALD_ID_BYTES);
    } else if (stored_k->mv_size < HD_MAX_KEY) {
        hd__buf_append(&full, stored_k->mv_data, stored_k->mv_size);
    } else {
        hd__index_key(&full, sc->ix, &e->doc, id);
    }
    if (full.failed) {
        herald_value_free(&e->doc);
        return herald_fail(err, HERALD_ENOMEM, "out of memory");
    }
    e->key = hd__buf_take(&full, &e->key_len);
    sc->nbatch++;
    return 0;
}

static int entry_cmp_asc(const void *a, const void *b)
{
    const hd_scan_entry *x = a, *y = b;
    return cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

static int entry_cmp_desc(const void *a, const void *b)
{
    return -entry_cmp_asc(a, b);
}

/* Reads the next stored entry, or the whole run of truncated keys it starts. */
static int fill(hd_scan *sc, size_t *bytes_read, herald_error *err)
{
    clear_batch(sc);
    MDB_val k, v;
    MDB_cursor_op step = sc->desc ? MDB_PREV : MDB_NEXT;
    int rc;
    if (!sc->positioned) {
        sc->positioned = true;
        rc = position(sc, &k, &v);
    } else {
        rc = mdb_cursor_get(sc->cur, &k, &v, MDB_GET_CURRENT);
        if (rc == 0) rc = mdb_cursor_get(sc->cur, &k, &v, step);
    }
    uint8_t run_prefix[HD_IID_BYTES + HD_MAX_VALUES];
    bool in_run = false;
    for (; rc == 0; rc = mdb_cursor_get(sc->cur, &k, &v, step)) {
        if (!in_stored_bounds(sc, &k)) break;
        bool truncated = !sc->by_id && k.mv_size == HD_MAX_KEY;
        if (in_run && (!truncated || memcmp(k.mv_data, run_prefix, sizeof run_prefix) != 0)) {
            /* The run ended; step back so the next fill starts here. */
            mdb_cursor_get(sc->cur, &k, &v, sc->desc ? MDB_NEXT : MDB_PREV);
            break;
        }
        const uint8_t *id = (const uint8_t *)k.mv_data + k.mv_size - HERALD_ID_BYTES;
        if (k.mv_size < (sc->by_id ? HERALD_ID_BYTES : HD_IID_BYTES + HERALD_ID_BYTES + 1))
            return herald_fail(err, HERALD_ECORRUPT, "index entry is too short");
        MDB_val docv = v;
        if (!sc->by_id) {
            MDB_val dk = {HERALD_ID_BYTES, (void *)id};
            int r = mdb_get(sc->t->txn, sc->t->s->docs, &dk, &docv);
            if (r == MDB_NOTFOUND)
                return herald_fail(err, HERALD_ECORRUPT, "index entry without its document");
            if (r) return hd__mdb_fail(err, r, "reading a document");
        }
        *bytes_read += k.mv_size + docv.mv_size;
        if ((rc = push_entry(sc, id, &k, &docv, err))) return rc;
        if (!truncated) {
            rc = 0;
            goto sorted;
        }
        in_run = true;
        memcpy(run_prefix, k.mv_data, sizeof run_prefix);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return hd__mdb_fail(err, rc, "scanning an index");
    if (sc->nbatch == 0) sc->ended = true;
sorted:
    if (sc->nbatch > 1)
        qsort(sc->batch, sc->nbatch, sizeof *sc->batch, sc->desc ? entry_cmp_desc : entry_cmp_asc);
    return 0;
}

int hd__scan_next(hd_scan *sc, hd_scan_entry **e, size_t *bytes_read, herald_error *err)
{
    for (;;) {
        while (sc->pos < sc->nbatch) {
            hd_scan_entry *c = &sc->batch[sc->pos++];
            bool below = cmp_bytes(c->key, c->key_len, sc->lo.p, sc->lo.len) < 0;
            bool above = sc->has_hi && cmp_bytes(c->key, c->key_len, sc->hi.p, sc->hi.len) >= 0;
            if (below || above) continue;
            *e = c;
            return 1;
        }
        if (sc->ended) return 0;
        int rc = fill(sc, bytes_read, err);
        if (rc) return rc;
    }
}
