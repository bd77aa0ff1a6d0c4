/*
 * Result diffs: build the change between two query results, and apply one
 * (the format is in diff.h and docs/diffs.md).
 *
 * hd__diff must never produce a diff whose application gives anything but
 * the new result. hd__diff_apply must never crash, whatever value it is
 * handed (it is the reference for clients that read diffs off the wire),
 * and must never leave a half-applied target: it checks and prepares
 * everything first and only then moves memory, in steps that cannot fail.
 * This module works on values only; it never touches storage or
 * connections.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"

/* ---- helpers ------------------------------------------------------------ */

/* Bytewise with the shorter first on a tie: the order of object keys and of strings. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* calloc that never returns NULL for an empty array, so NULL always means out of memory. */
static void *alloc_array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

static int nomem(herald_error *err)
{
    return herald_fail(err, HERALD_ENOMEM, "diff: out of memory");
}

/* The _id of a document when it is a string, else NULL. */
static const herald_value *doc_id(const herald_value *doc)
{
    const herald_value *id = herald_object_get(doc, "_id");
    return id && id->type == HERALD_STRING ? id : NULL;
}

/* Index of field `key` in object `obj`, or -1. Keys may hold any bytes. */
static long field_find(const herald_value *obj, const char *key, size_t key_len)
{
    size_t lo = 0, hi = obj->u.obj.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const herald_field *f = &obj->u.obj.fields[mid];
        int c = key_cmp(f->key, f->key_len, key, key_len);
        if (c == 0) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/*
 * One step of a merge of two sorted field arrays: below zero when a[i]
 * comes first (or b is done), above zero when b[j] does, zero on equal keys.
 */
static int merge_step(const herald_field *a, size_t i, size_t na, const herald_field *b, size_t j,
                      size_t nb)
{
    if (i == na) return 1;
    if (j == nb) return -1;
    return key_cmp(a[i].key, a[i].key_len, b[j].key, b[j].key_len);
}

/* True if every key of object `o` is one of the one-letter keys in `allowed`. */
static bool keys_within(const herald_value *o, const char *allowed)
{
    for (size_t i = 0; i < o->u.obj.len; i++) {
        const herald_field *f = &o->u.obj.fields[i];
        if (f->key_len != 1 || f->key[0] == 0 || !strchr(allowed, f->key[0])) return false;
    }
    return true;
}

/* A result list seen through its ids: the element indexes sorted by _id. */
typedef struct id_slot {
    const herald_value *id;
    size_t at;
} id_slot;

static int slot_cmp(const void *a, const void *b)
{
    const herald_value *x = ((const id_slot *)a)->id, *y = ((const id_slot *)b)->id;
    return key_cmp(x->u.s.ptr, x->u.s.len, y->u.s.ptr, y->u.s.len);
}

/*
 * Sorts the ids of array `arr` into *out (free() it). Returns 0 when every
 * element is an object with a string _id and no id repeats, 1 when not
 * (*out is then NULL), or HERALD_ENOMEM.
 */
static int id_index(const herald_value *arr, id_slot **out)
{
    size_t n = arr->u.arr.len;
    *out = NULL;
    id_slot *ix = alloc_array(n, sizeof *ix);
    if (!ix) return HERALD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ix[i].id = doc_id(&arr->u.arr.items[i]);
        ix[i].at = i;
        if (!ix[i].id) goto not_ids;
    }
    qsort(ix, n, sizeof *ix, slot_cmp);
    for (size_t i = 1; i < n; i++)
        if (slot_cmp(&ix[i - 1], &ix[i]) == 0) goto not_ids;
    *out = ix;
    return 0;
not_ids:
    free(ix);
    return 1;
}

/* The element index of the document whose _id is the string `id`, or -1. */
static long id_find(const id_slot *ix, size_t n, const herald_value *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const herald_value *m = ix[mid].id;
        int c = key_cmp(m->u.s.ptr, m->u.s.len, id->u.s.ptr, id->u.s.len);
        if (c == 0) return (long)ix[mid].at;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- building a diff ---------------------------------------------------- */

static int push_copy(herald_value *arr, const herald_value *v)
{
    herald_value c;
    int rc = herald_value_copy(&c, v);
    return rc ? rc : herald_array_push(arr, c);
}

/* Appends [a, b] to `arr`, taking ownership of both (also on failure). */
static int push_pair(herald_value *arr, herald_value a, herald_value b)
{
    herald_value pair;
    herald_array_init(&pair);
    int rc = herald_array_push(&pair, a);
    if (rc) {
        herald_value_free(&b);
        return rc;
    }
    rc = herald_array_push(&pair, b);
    return rc ? rc : herald_array_push(arr, pair);
}

/* Sets obj[key] = *val unless *val is empty; takes ownership of *val either way. */
static int put_nonempty(herald_value *obj, const char *key, herald_value *val)
{
    herald_value v = *val;
    *val = herald_undefined();
    bool empty = v.type == HERALD_UNDEFINED || (v.type == HERALD_ARRAY && v.u.arr.len == 0) ||
                 (v.type == HERALD_OBJECT && v.u.obj.len == 0);
    if (empty) {
        herald_value_free(&v);
        return 0;
    }
    return herald_object_set(obj, key, strlen(key), v);
}

/*
 * Marks in keep[] a longest increasing subsequence of seq[] (entries below
 * zero are not part of the sequence). Those documents stay where they are
 * and every other survivor moves, so the moves are as few as can be.
 * Patience sorting, O(n log n).
 */
static int mark_lis(const long *seq, size_t n, bool *keep)
{
    size_t *tails = alloc_array(n, sizeof *tails); /* tails[k]: end of the best run of length k+1 */
    size_t *prev = alloc_array(n, sizeof *prev);
    if (!tails || !prev) {
        free(tails);
        free(prev);
        return HERALD_ENOMEM;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (seq[i] < 0) continue;
        size_t lo = 0, hi = len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (seq[tails[mid]] < seq[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        prev[i] = lo ? tails[lo - 1] : SIZE_MAX;
        tails[lo] = i;
        if (lo == len) len++;
    }
    for (size_t i = len ? tails[len - 1] : SIZE_MAX; i != SIZE_MAX; i = prev[i])
        keep[i] = true;
    free(tails);
    free(prev);
    return 0;
}

static int patch_diff(const herald_value *old, const herald_value *new, bool page_list,
                      herald_value *out);

/*
 * Builds the LIST turning array `old` into array `new`. Returns 0, or 1
 * when the form does not apply: an array is not a list of documents with
 * unique string ids, or no document survives (the whole new array is then
 * the smaller message). *out is left undefined unless 0 is returned.
 */
static int list_diff(const herald_value *old, const herald_value *new, herald_value *out)
{
    size_t n = old->u.arr.len, m = new->u.arr.len, survivors = 0;
    const herald_value *oi = old->u.arr.items, *ni = new->u.arr.items;
    id_slot *oix = NULL, *nix = NULL;
    long *old_to_new = NULL, *new_to_old = NULL;
    bool *stable = NULL;
    herald_value rem, chg, mov, ins;
    herald_array_init(&rem);
    herald_array_init(&chg);
    herald_array_init(&mov);
    herald_array_init(&ins);
    *out = herald_undefined();

    int rc = id_index(old, &oix);
    if (!rc) rc = id_index(new, &nix); /* only to refuse repeated ids in `new` */
    if (rc) goto done;
    old_to_new = alloc_array(n, sizeof *old_to_new);
    new_to_old = alloc_array(m, sizeof *new_to_old);
    stable = alloc_array(n, sizeof *stable);
    if (!old_to_new || !new_to_old || !stable) {
        rc = HERALD_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        old_to_new[i] = -1;
    for (size_t j = 0; j < m; j++) {
        long at = id_find(oix, n, doc_id(&ni[j]));
        new_to_old[j] = at;
        if (at >= 0) {
            old_to_new[at] = (long)j;
            survivors++;
        }
    }
    if (survivors == 0) {
        rc = 1;
        goto done;
    }
    rc = mark_lis(old_to_new, n, stable);
    for (size_t i = 0; !rc && i < n; i++)
        if (old_to_new[i] < 0) rc = push_copy(&rem, doc_id(&oi[i]));
    for (size_t j = 0; !rc && j < m; j++) {
        long at = new_to_old[j];
        herald_value a = herald_undefined(), b = herald_undefined();
        if (at < 0) {
            rc = herald_value_copy(&b, &ni[j]);
            if (!rc) rc = push_pair(&ins, herald_float64((double)j), b);
            continue;
        }
        if (!stable[at]) {
            rc = herald_value_copy(&a, doc_id(&ni[j]));
            if (!rc) rc = push_pair(&mov, a, herald_float64((double)j));
        }
        if (!rc && !herald_value_equal(&oi[at], &ni[j])) {
            rc = patch_diff(&oi[at], &ni[j], false, &b);
            if (!rc) rc = herald_value_copy(&a, doc_id(&ni[j]));
            if (rc)
                herald_value_free(&b);
            else
                rc = push_pair(&chg, a, b);
        }
    }
    if (!rc) {
        herald_object_init(out);
        rc = put_nonempty(out, "r", &rem);
        if (!rc) rc = put_nonempty(out, "c", &chg);
        if (!rc) rc = put_nonempty(out, "m", &mov);
        if (!rc) rc = put_nonempty(out, "i", &ins);
        if (rc) herald_value_free(out);
    }
done:
    herald_value_free(&rem);
    herald_value_free(&chg);
    herald_value_free(&mov);
    herald_value_free(&ins);
    free(oix);
    free(nix);
    free(old_to_new);
    free(new_to_old);
    free(stable);
    return rc;
}

/*
 * Builds the PATCH turning object `old` into object `new`: the fields to
 * set (whole top-level values) and the fields to remove. With `page_list`,
 * a "page" array gets a LIST when that form applies.
 */
static int patch_diff(const herald_value *old, const herald_value *new, bool page_list,
                      herald_value *out)
{
    const herald_field *of = old->u.obj.fields, *nf = new->u.obj.fields;
    size_t on = old->u.obj.len, nn = new->u.obj.len, i = 0, j = 0;
    herald_value set, unset, page = herald_undefined();
    herald_object_init(&set);
    herald_array_init(&unset);
    herald_object_init(out);
    int rc = 0;
    while (!rc && (i < on || j < nn)) {
        int c = merge_step(of, i, on, nf, j, nn);
        herald_value v;
        if (c < 0) {
            rc = herald_string(&v, of[i].key, of[i].key_len);
            if (!rc) rc = herald_array_push(&unset, v);
            i++;
            continue;
        }
        if (c == 0) {
            bool same = herald_value_equal(&of[i].val, &nf[j].val);
            i++;
            if (same) {
                j++;
                continue;
            }
            if (page_list && nf[j].key_len == 4 && !memcmp(nf[j].key, "page", 4) &&
                of[i - 1].val.type == HERALD_ARRAY && nf[j].val.type == HERALD_ARRAY) {
                rc = list_diff(&of[i - 1].val, &nf[j].val, &page);
                if (rc <= 0) {
                    j++;
                    continue;
                }
                rc = 0; /* the LIST form does not apply: set the whole page */
            }
        }
        rc = herald_value_copy(&v, &nf[j].val);
        if (!rc) rc = herald_object_set(&set, nf[j].key, nf[j].key_len, v);
        j++;
    }
    if (!rc) rc = put_nonempty(out, "s", &set);
    if (!rc) rc = put_nonempty(out, "u", &unset);
    if (!rc) rc = put_nonempty(out, "p", &page);
    herald_value_free(&set);
    herald_value_free(&unset);
    herald_value_free(&page);
    if (rc) herald_value_free(out);
    return rc;
}

/* A paginate result: an object with a "page" array that is not itself a document. */
static bool is_page(const herald_value *v)
{
    const herald_value *page = herald_object_get(v, "page");
    return page && page->type == HERALD_ARRAY && !herald_object_get(v, "_id");
}

int hd__diff(const herald_value *old_result, const herald_value *new_result, herald_value *out,
             herald_error *err)
{
    if (!out) return herald_fail(err, HERALD_EINVAL, "diff: no output value");
    *out = herald_undefined();
    if (!old_result || !new_result) return herald_fail(err, HERALD_EINVAL, "diff: missing result");
    if (new_result->type == HERALD_UNDEFINED)
        return herald_fail(err, HERALD_EINVAL, "diff: the new result is undefined");
    if (herald_value_equal(old_result, new_result)) return 0;

    const herald_value *old = old_result, *new = new_result;
    herald_value body = herald_undefined();
    const char *tag = "v";
    int rc = 1;
    if (old->type == HERALD_ARRAY && new->type == HERALD_ARRAY) {
        rc = list_diff(old, new, &body);
        tag = "a";
    } else if (old->type == HERALD_OBJECT && new->type == HERALD_OBJECT) {
        bool pages = is_page(old) && is_page(new);
        const herald_value *oid = doc_id(old), *nid = doc_id(new);
        if (pages || (oid && nid && herald_value_equal(oid, nid))) {
            rc = patch_diff(old, new, pages, &body);
            tag = "o";
        }
    }
    if (rc == 1) {
        rc = herald_value_copy(&body, new);
        tag = "v";
    }
    if (!rc) {
        herald_object_init(out);
        rc = herald_object_set(out, tag, 1, body);
    }
    if (rc) {
        herald_value_free(out);
        return nomem(err);
    }
    return 0;
}

/* ---- applying a diff ---------------------------------------------------- */

/* A position: a whole float64 (as JSON numbers arrive) or an int64, >= 0. */
static bool get_pos(const herald_value *v, size_t *out)
{
    if (v->type == HERALD_INT64 && v->u.i >= 0 && (uint64_t)v->u.i <= SIZE_MAX) {
        *out = (size_t)v->u.i;
        return true;
    }
    if (v->type == HERALD_FLOAT64 && v->u.f >= 0 && v->u.f < 9007199254740992.0) {
        size_t p = (size_t)v->u.f;
        if ((double)p != v->u.f) return false;
        *out = p;
        return true;
    }
    return false;
}

static bool is_pair(const herald_value *v)
{
    return v->type == HERALD_ARRAY && v->u.arr.len == 2;
}

/* The elements of an optional array field of a diff, checked to be an array. */
static bool diff_list(const herald_value *d, const char *key, const herald_value **items, size_t *n)
{
    const herald_value *v = herald_object_get(d, key);
    *items = NULL;
    *n = 0;
    if (!v) return true;
    if (v->type != HERALD_ARRAY) return false;
    *items = v->u.arr.items;
    *n = v->u.arr.len;
    return true;
}

static int id_error(herald_error *err, const char *what, const herald_value *id)
{
    int len = id->u.s.len < 64 ? (int)id->u.s.len : 64;
    return herald_fail(err, HERALD_EINVAL, "diff: %s `%.*s`", what, len, id->u.s.ptr);
}

enum { KEEP, DROP, MOVE };

/*
 * A LIST checked against its target array, with every allocation done:
 * list_commit() then cannot fail, and list_abort() forgets it.
 */
typedef struct list_plan {
    herald_value *arr;     /* the target; untouched until list_commit */
    size_t n;              /* its length */
    unsigned char *fate;   /* per element: KEEP, DROP or MOVE */
    herald_value *patched; /* per element: its changed copy, or undefined */
    size_t nmoves, ninserts;
    size_t *move_from;      /* per move: the element */
    size_t *move_pos;       /* per move: where it goes */
    size_t *insert_pos;     /* per insert: where it goes */
    herald_value *inserted; /* per insert: a copy of the new document */
    herald_value *items;    /* the new element array */
    size_t len;             /* its length */
} list_plan;

static int patch_apply(herald_value *obj, const herald_value *d, herald_error *err);

static void list_abort(list_plan *p)
{
    for (size_t i = 0; p->patched && i < p->n; i++)
        herald_value_free(&p->patched[i]);
    for (size_t i = 0; p->inserted && i < p->ninserts; i++)
        herald_value_free(&p->inserted[i]);
    free(p->fate);
    free(p->patched);
    free(p->move_from);
    free(p->move_pos);
    free(p->insert_pos);
    free(p->inserted);
    free(p->items);
    memset(p, 0, sizeof *p);
}

static int list_prepare(list_plan *p, herald_value *arr, const herald_value *d, herald_error *err)
{
    const herald_value *rem, *chg, *mov, *ins;
    size_t nrem, nchg;
    id_slot *ix = NULL;
    int rc;
    memset(p, 0, sizeof *p);
    p->arr = arr;
    if (arr->type != HERALD_ARRAY)
        return herald_fail(err, HERALD_EINVAL, "diff: a list patch needs an array");
    if (d->type != HERALD_OBJECT || !keys_within(d, "rcmi") || !diff_list(d, "r", &rem, &nrem) ||
        !diff_list(d, "c", &chg, &nchg) || !diff_list(d, "m", &mov, &p->nmoves) ||
        !diff_list(d, "i", &ins, &p->ninserts))
        return herald_fail(err, HERALD_EINVAL,
                           "diff: a list patch is an object of arrays r, c, m and i");
    rc = id_index(arr, &ix);
    if (rc == 1)
        return herald_fail(err, HERALD_EINVAL,
                           "diff: the target is not a list of documents with unique ids");
    if (rc) return nomem(err);
    p->n = arr->u.arr.len;
    p->fate = alloc_array(p->n, 1);
    p->patched = alloc_array(p->n, sizeof *p->patched);
    p->move_from = alloc_array(p->nmoves, sizeof *p->move_from);
    p->move_pos = alloc_array(p->nmoves, sizeof *p->move_pos);
    p->insert_pos = alloc_array(p->ninserts, sizeof *p->insert_pos);
    p->inserted = alloc_array(p->ninserts, sizeof *p->inserted);
    if (!p->fate || !p->patched || !p->move_from || !p->move_pos || !p->insert_pos ||
        !p->inserted) {
        rc = nomem(err);
        goto fail;
    }

    for (size_t k = 0; k < nrem; k++) {
        const herald_value *id = &rem[k];
        long at = id->type == HERALD_STRING ? id_find(ix, p->n, id) : -1;
        if (id->type != HERALD_STRING) {
            rc = herald_fail(err, HERALD_EINVAL, "diff: removed ids must be strings");
            goto fail;
        }
        if (at < 0 || p->fate[at] != KEEP) {
            rc = id_error(err, at < 0 ? "no document to remove with id" : "removed twice:", id);
            goto fail;
        }
        p->fate[at] = DROP;
    }
    for (size_t k = 0; k < p->nmoves; k++) {
        const herald_value *e = &mov[k];
        if (!is_pair(e) || e->u.arr.items[0].type != HERALD_STRING ||
            !get_pos(&e->u.arr.items[1], &p->move_pos[k]) ||
            (k && p->move_pos[k] <= p->move_pos[k - 1])) {
            rc = herald_fail(err, HERALD_EINVAL,
                             "diff: moves are [id, position] pairs in ascending position order");
            goto fail;
        }
        long at = id_find(ix, p->n, &e->u.arr.items[0]);
        if (at < 0 || p->fate[at] != KEEP) {
            rc = id_error(err, at < 0 ? "no document to move with id" : "moved after removal:",
                          &e->u.arr.items[0]);
            goto fail;
        }
        p->fate[at] = MOVE;
        p->move_from[k] = (size_t)at;
    }
    for (size_t k = 0; k < p->ninserts; k++) {
        const herald_value *e = &ins[k];
        if (!is_pair(e) || !get_pos(&e->u.arr.items[0], &p->insert_pos[k]) ||
            (k && p->insert_pos[k] <= p->insert_pos[k - 1])) {
            rc = herald_fail(err, HERALD_EINVAL,
                             "diff: inserts are [position, document] pairs in ascending order");
            goto fail;
        }
        if (herald_value_copy(&p->inserted[k], &e->u.arr.items[1])) {
            rc = nomem(err);
            goto fail;
        }
    }
    for (size_t k = 0; k < nchg; k++) {
        const herald_value *e = &chg[k];
        if (!is_pair(e) || e->u.arr.items[0].type != HERALD_STRING) {
            rc = herald_fail(err, HERALD_EINVAL, "diff: changes are [id, patch] pairs");
            goto fail;
        }
        long at = id_find(ix, p->n, &e->u.arr.items[0]);
        if (at < 0 || p->fate[at] == DROP || p->patched[at].type != HERALD_UNDEFINED) {
            rc = id_error(
                err, at < 0 ? "no document to change with id" : "changed after removal, or twice:",
                &e->u.arr.items[0]);
            goto fail;
        }
        herald_value copy;
        if (herald_value_copy(&copy, &p->arr->u.arr.items[at])) {
            rc = nomem(err);
            goto fail;
        }
        rc = patch_apply(&copy, &e->u.arr.items[1], err);
        if (rc) {
            herald_value_free(&copy);
            goto fail;
        }
        p->patched[at] = copy;
    }

    /* Removals are distinct elements, so nrem <= n. */
    p->len = p->n - nrem + p->ninserts;
    for (size_t a = 0, b = 0; a < p->nmoves || b < p->ninserts;) {
        size_t pos;
        if (b == p->ninserts || (a < p->nmoves && p->move_pos[a] < p->insert_pos[b]))
            pos = p->move_pos[a++];
        else if (a == p->nmoves || p->insert_pos[b] < p->move_pos[a])
            pos = p->insert_pos[b++];
        else
            pos = SIZE_MAX; /* a move and an insert at the same place */
        if (pos >= p->len) {
            rc = herald_fail(err, HERALD_EINVAL,
                             "diff: a position is repeated or past the end of the new list");
            goto fail;
        }
    }
    p->items = alloc_array(p->len, sizeof *p->items);
    if (!p->items) {
        rc = nomem(err);
        goto fail;
    }
    free(ix);
    return 0;
fail:
    free(ix);
    list_abort(p);
    return rc;
}

/* Element `i` of the old array as it goes into the new one: its changed copy, if any. */
static herald_value take_element(list_plan *p, size_t i)
{
    herald_value *old = &p->arr->u.arr.items[i];
    if (p->patched[i].type == HERALD_UNDEFINED) return *old;
    herald_value_free(old);
    herald_value v = p->patched[i];
    p->patched[i] = herald_undefined();
    return v;
}

/*
 * Fills the new array: moves and inserts at their positions, the elements
 * that stay in their old order in the gaps. The counts were checked in
 * list_prepare, so the gaps and the staying elements match exactly.
 */
static void list_commit(list_plan *p)
{
    size_t a = 0, b = 0, s = 0;
    for (size_t k = 0; k < p->len; k++) {
        if (a < p->nmoves && p->move_pos[a] == k) {
            p->items[k] = take_element(p, p->move_from[a++]);
        } else if (b < p->ninserts && p->insert_pos[b] == k) {
            p->items[k] = p->inserted[b];
            p->inserted[b++] = herald_undefined();
        } else {
            while (p->fate[s] != KEEP)
                s++;
            p->items[k] = take_element(p, s++);
        }
    }
    herald_value *old = p->arr->u.arr.items;
    for (size_t i = 0; i < p->n; i++)
        if (p->fate[i] == DROP) herald_value_free(&old[i]);
    free(old);
    p->arr->u.arr.items = p->len ? p->items : NULL;
    p->arr->u.arr.len = p->arr->u.arr.cap = p->len;
    if (p->len) p->items = NULL;
    list_abort(p);
}

/* A PATCH checked against its target object, with every allocation done. */
typedef struct patch_plan {
    herald_value *obj;    /* the target; untouched until patch_commit */
    herald_field *fields; /* the new field array */
    long *from;           /* per new field: the old field it keeps, or -1 (owned here) */
    size_t len;           /* new fields so far */
    unsigned char *drop;  /* per old field: removed or replaced */
    bool has_page;
    list_plan page; /* the LIST of the "page" field */
} patch_plan;

static void patch_abort(patch_plan *pp)
{
    for (size_t k = 0; pp->from && k < pp->len; k++) {
        if (pp->from[k] >= 0) continue;
        free(pp->fields[k].key);
        herald_value_free(&pp->fields[k].val);
    }
    free(pp->fields);
    free(pp->from);
    free(pp->drop);
    if (pp->has_page) list_abort(&pp->page);
    memset(pp, 0, sizeof *pp);
}

/* Appends to the plan a new field: copies of `key` and `val`. */
static int plan_new_field(patch_plan *pp, const herald_field *f)
{
    herald_field *nf = &pp->fields[pp->len];
    nf->key = malloc(f->key_len + 1);
    if (!nf->key) return HERALD_ENOMEM;
    memcpy(nf->key, f->key, f->key_len);
    nf->key[f->key_len] = 0;
    nf->key_len = f->key_len;
    if (herald_value_copy(&nf->val, &f->val)) {
        free(nf->key);
        return HERALD_ENOMEM;
    }
    pp->from[pp->len++] = -1;
    return 0;
}

static int patch_prepare(patch_plan *pp, herald_value *obj, const herald_value *d,
                         herald_error *err)
{
    const herald_value *unset;
    size_t nunset;
    int rc = 0;
    memset(pp, 0, sizeof *pp);
    pp->obj = obj;
    if (obj->type != HERALD_OBJECT)
        return herald_fail(err, HERALD_EINVAL, "diff: an object patch needs an object");
    const herald_value *set = herald_object_get(d, "s");
    const herald_value *page = herald_object_get(d, "p");
    if (d->type != HERALD_OBJECT || !keys_within(d, "sup") || (set && set->type != HERALD_OBJECT) ||
        !diff_list(d, "u", &unset, &nunset))
        return herald_fail(err, HERALD_EINVAL,
                           "diff: an object patch is {\"s\": object, \"u\": array, \"p\": list}");
    size_t on = obj->u.obj.len, sn = set ? set->u.obj.len : 0;
    pp->drop = alloc_array(on, 1);
    pp->fields = alloc_array(on + sn, sizeof *pp->fields);
    pp->from = alloc_array(on + sn, sizeof *pp->from);
    if (!pp->drop || !pp->fields || !pp->from) {
        rc = nomem(err);
        goto fail;
    }
    for (size_t k = 0; k < nunset; k++) {
        const herald_value *name = &unset[k];
        if (name->type != HERALD_STRING) {
            rc = herald_fail(err, HERALD_EINVAL, "diff: removed field names must be strings");
            goto fail;
        }
        long at = field_find(obj, name->u.s.ptr, name->u.s.len);
        if (at < 0 || pp->drop[at] || (set && field_find(set, name->u.s.ptr, name->u.s.len) >= 0)) {
            rc = id_error(err, "cannot remove field", name);
            goto fail;
        }
        pp->drop[at] = 1;
    }
    if (page) {
        long at = field_find(obj, "page", 4);
        if (at < 0 || pp->drop[at] || (set && field_find(set, "page", 4) >= 0)) {
            rc = herald_fail(err, HERALD_EINVAL, "diff: a page patch needs a kept page field");
            goto fail;
        }
        rc = list_prepare(&pp->page, &obj->u.obj.fields[at].val, page, err);
        if (rc) goto fail;
        pp->has_page = true;
    }
    /* Merge the kept old fields with the set ones, both sorted by key. */
    const herald_field *of = obj->u.obj.fields, *sf = sn ? set->u.obj.fields : NULL;
    for (size_t i = 0, j = 0; i < on || j < sn;) {
        int c = merge_step(of, i, on, sf, j, sn);
        if (c < 0) {
            if (!pp->drop[i]) pp->from[pp->len++] = (long)i;
            i++;
            continue;
        }
        if (c == 0) pp->drop[i++] = 1;
        if (plan_new_field(pp, &sf[j++])) {
            rc = nomem(err);
            goto fail;
        }
    }
    return 0;
fail:
    patch_abort(pp);
    return rc;
}

static void patch_commit(patch_plan *pp)
{
    /* The page array changes in place first; its field is then kept as it is. */
    if (pp->has_page) list_commit(&pp->page);
    pp->has_page = false;
    herald_value *obj = pp->obj;
    herald_field *old = obj->u.obj.fields;
    for (size_t k = 0; k < pp->len; k++)
        if (pp->from[k] >= 0) pp->fields[k] = old[pp->from[k]];
    for (size_t i = 0; i < obj->u.obj.len; i++) {
        if (!pp->drop[i]) continue;
        free(old[i].key);
        herald_value_free(&old[i].val);
    }
    free(old);
    obj->u.obj.fields = pp->fields;
    obj->u.obj.len = obj->u.obj.cap = pp->len;
    pp->fields = NULL;
    pp->len = 0;
    patch_abort(pp);
}

static int patch_apply(herald_value *obj, const herald_value *d, herald_error *err)
{
    patch_plan pp;
    int rc = patch_prepare(&pp, obj, d, err);
    if (!rc) patch_commit(&pp);
    return rc;
}

int hd__diff_apply(herald_value *target, const herald_value *diff, herald_error *err)
{
    if (!target || !diff) return herald_fail(err, HERALD_EINVAL, "diff: missing argument");
    if (diff->type == HERALD_UNDEFINED || diff->type == HERALD_NULL) return 0;
    if (diff->type != HERALD_OBJECT || diff->u.obj.len != 1 || !keys_within(diff, "vao"))
        return herald_fail(err, HERALD_EINVAL, "diff: a diff is an object with one key: v, a or o");
    const herald_field *f = &diff->u.obj.fields[0];
    if (f->key[0] == 'o') return patch_apply(target, &f->val, err);
    if (f->key[0] == 'a') {
        list_plan p;
        int rc = list_prepare(&p, target, &f->val, err);
        if (!rc) list_commit(&p);
        return rc;
    }
    herald_value copy;
    if (herald_value_copy(&copy, &f->val)) return nomem(err);
    herald_value_free(target);
    *target = copy;
    return 0;
}
